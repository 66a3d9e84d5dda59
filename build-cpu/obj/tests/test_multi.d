build-cpu/obj/tests/test_multi.o: tests/test_multi.c \
 include/sqakd/checkpoint.h include/sqakd/model.h include/sqakd/backend.h \
 include/sqakd/common.h include/sqakd/quant.h include/sqakd/multi.h \
 include/sqakd/train.h include/sqakd/data.h include/sqakd/safetensors.h \
 tests/util_check.h tests/util_fixtures.h
include/sqakd/checkpoint.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
include/sqakd/multi.h:
include/sqakd/train.h:
include/sqakd/data.h:
include/sqakd/safetensors.h:
tests/util_check.h:
tests/util_fixtures.h:
