build-cpu/obj/kernels/cpu/conv_fast.o: kernels/cpu/conv_fast.c \
 kernels/cpu/cpu_ops.h include/sqakd/backend.h include/sqakd/common.h \
 include/sqakd/quant.h
kernels/cpu/cpu_ops.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
