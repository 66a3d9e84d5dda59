build-cpu/obj/host/cli/main.o: host/cli/main.c host/cli/cli.h \
 include/sqakd/common.h
host/cli/cli.h:
include/sqakd/common.h:
