build-cpu/obj/tests/test_model.o: tests/test_model.c \
 include/sqakd/checkpoint.h include/sqakd/model.h include/sqakd/backend.h \
 include/sqakd/common.h include/sqakd/quant.h include/sqakd/safetensors.h \
 include/sqakd/train.h include/sqakd/data.h tests/util_check.h \
 tests/util_fixtures.h tests/util_golden.h
include/sqakd/checkpoint.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
include/sqakd/safetensors.h:
include/sqakd/train.h:
include/sqakd/data.h:
tests/util_check.h:
tests/util_fixtures.h:
tests/util_golden.h:
