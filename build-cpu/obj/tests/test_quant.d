build-cpu/obj/tests/test_quant.o: tests/test_quant.c \
 tests/../kernels/cpu/cpu_ops.h include/sqakd/backend.h \
 include/sqakd/common.h include/sqakd/quant.h
tests/../kernels/cpu/cpu_ops.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
