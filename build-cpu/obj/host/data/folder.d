build-cpu/obj/host/data/folder.o: host/data/folder.c \
 host/data/data_internal.h include/sqakd/data.h include/sqakd/common.h
host/data/data_internal.h:
include/sqakd/data.h:
include/sqakd/common.h:
