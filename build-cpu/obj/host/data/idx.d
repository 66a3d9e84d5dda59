build-cpu/obj/host/data/idx.o: host/data/idx.c host/data/data_internal.h \
 include/sqakd/data.h include/sqakd/common.h
host/data/data_internal.h:
include/sqakd/data.h:
include/sqakd/common.h:
