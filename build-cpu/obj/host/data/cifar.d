build-cpu/obj/host/data/cifar.o: host/data/cifar.c \
 host/data/data_internal.h include/sqakd/data.h include/sqakd/common.h
host/data/data_internal.h:
include/sqakd/data.h:
include/sqakd/common.h:
