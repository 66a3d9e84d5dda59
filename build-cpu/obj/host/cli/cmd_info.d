build-cpu/obj/host/cli/cmd_info.o: host/cli/cmd_info.c host/cli/cli.h \
 include/sqakd/common.h include/sqakd/checkpoint.h include/sqakd/model.h \
 include/sqakd/backend.h include/sqakd/quant.h include/sqakd/import.h \
 include/sqakd/safetensors.h
host/cli/cli.h:
include/sqakd/common.h:
include/sqakd/checkpoint.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/quant.h:
include/sqakd/import.h:
include/sqakd/safetensors.h:
