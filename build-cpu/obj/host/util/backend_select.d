build-cpu/obj/host/util/backend_select.o: host/util/backend_select.c \
 include/sqakd/backend.h include/sqakd/common.h include/sqakd/quant.h
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
