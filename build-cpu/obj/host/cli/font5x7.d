build-cpu/obj/host/cli/font5x7.o: host/cli/font5x7.c host/cli/plot.h \
 include/sqakd/common.h
host/cli/plot.h:
include/sqakd/common.h:
