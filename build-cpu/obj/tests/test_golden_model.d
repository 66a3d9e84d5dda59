build-cpu/obj/tests/test_golden_model.o: tests/test_golden_model.c \
 include/sqakd/backend.h include/sqakd/common.h include/sqakd/quant.h \
 include/sqakd/model.h tests/util_golden.h
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
include/sqakd/model.h:
tests/util_golden.h:
