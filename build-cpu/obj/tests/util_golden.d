build-cpu/obj/tests/util_golden.o: tests/util_golden.c \
 tests/util_golden.h include/sqakd/common.h
tests/util_golden.h:
include/sqakd/common.h:
