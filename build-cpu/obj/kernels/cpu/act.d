build-cpu/obj/kernels/cpu/act.o: kernels/cpu/act.c kernels/cpu/cpu_ops.h \
 include/sqakd/backend.h include/sqakd/common.h include/sqakd/quant.h
kernels/cpu/cpu_ops.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
