build-cpu/obj/kernels/cpu/backend_cpu.o: kernels/cpu/backend_cpu.c \
 kernels/cpu/cpu_ops.h include/sqakd/backend.h include/sqakd/common.h \
 include/sqakd/quant.h
kernels/cpu/cpu_ops.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
