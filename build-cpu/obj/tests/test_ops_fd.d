build-cpu/obj/tests/test_ops_fd.o: tests/test_ops_fd.c \
 tests/../kernels/cpu/cpu_ops.h include/sqakd/backend.h \
 include/sqakd/common.h include/sqakd/quant.h tests/util_check.h
tests/../kernels/cpu/cpu_ops.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
tests/util_check.h:
