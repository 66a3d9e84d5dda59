build-cpu/obj/host/data/spec.o: host/data/spec.c \
 host/data/data_internal.h include/sqakd/data.h include/sqakd/common.h
host/data/data_internal.h:
include/sqakd/data.h:
include/sqakd/common.h:
