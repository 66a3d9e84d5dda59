build-cpu/obj/host/data/loader.o: host/data/loader.c \
 host/data/data_internal.h include/sqakd/data.h include/sqakd/common.h
host/data/data_internal.h:
include/sqakd/data.h:
include/sqakd/common.h:
