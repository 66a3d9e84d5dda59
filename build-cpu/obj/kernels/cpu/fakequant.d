build-cpu/obj/kernels/cpu/fakequant.o: kernels/cpu/fakequant.c \
 kernels/cpu/cpu_ops.h include/sqakd/backend.h include/sqakd/common.h \
 include/sqakd/quant.h include/sqakd/quant_math.h
kernels/cpu/cpu_ops.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
include/sqakd/quant_math.h:
