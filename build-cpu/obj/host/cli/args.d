build-cpu/obj/host/cli/args.o: host/cli/args.c host/cli/cli.h \
 include/sqakd/common.h include/sqakd/json.h include/sqakd/safetensors.h
host/cli/cli.h:
include/sqakd/common.h:
include/sqakd/json.h:
include/sqakd/safetensors.h:
