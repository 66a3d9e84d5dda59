build-cpu/obj/host/cli/cmd_report.o: host/cli/cmd_report.c host/cli/cli.h \
 include/sqakd/common.h host/cli/report.h include/sqakd/json.h \
 include/sqakd/safetensors.h
host/cli/cli.h:
include/sqakd/common.h:
host/cli/report.h:
include/sqakd/json.h:
include/sqakd/safetensors.h:
