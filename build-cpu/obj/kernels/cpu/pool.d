build-cpu/obj/kernels/cpu/pool.o: kernels/cpu/pool.c \
 kernels/cpu/cpu_ops.h include/sqakd/backend.h include/sqakd/common.h \
 include/sqakd/quant.h
kernels/cpu/cpu_ops.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
