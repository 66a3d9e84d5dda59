build-cpu/obj/host/cli/data_open.o: host/cli/data_open.c \
 host/cli/cli_data.h host/cli/cli.h include/sqakd/common.h \
 include/sqakd/data.h
host/cli/cli_data.h:
host/cli/cli.h:
include/sqakd/common.h:
include/sqakd/data.h:
