build-cpu/obj/tests/test_golden.o: tests/test_golden.c \
 include/sqakd/backend.h include/sqakd/common.h include/sqakd/quant.h \
 tests/util_golden.h
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
tests/util_golden.h:
