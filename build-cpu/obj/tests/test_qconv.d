build-cpu/obj/tests/test_qconv.o: tests/test_qconv.c \
 tests/../kernels/cpu/cpu_ops.h include/sqakd/backend.h \
 include/sqakd/common.h include/sqakd/quant.h include/sqakd/model.h \
 include/sqakd/quant_math.h tests/util_check.h
tests/../kernels/cpu/cpu_ops.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
include/sqakd/model.h:
include/sqakd/quant_math.h:
tests/util_check.h:
