build-cpu/obj/host/data/augment.o: host/data/augment.c \
 host/data/data_internal.h include/sqakd/data.h include/sqakd/common.h
host/data/data_internal.h:
include/sqakd/data.h:
include/sqakd/common.h:
