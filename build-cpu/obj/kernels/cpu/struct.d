build-cpu/obj/kernels/cpu/struct.o: kernels/cpu/struct.c \
 kernels/cpu/cpu_ops.h include/sqakd/backend.h include/sqakd/common.h \
 include/sqakd/quant.h
kernels/cpu/cpu_ops.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
