build-cpu/obj/kernels/base/common.o: kernels/base/common.c \
 include/sqakd/common.h
include/sqakd/common.h:
