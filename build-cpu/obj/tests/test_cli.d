build-cpu/obj/tests/test_cli.o: tests/test_cli.c \
 include/sqakd/checkpoint.h include/sqakd/model.h include/sqakd/backend.h \
 include/sqakd/common.h include/sqakd/quant.h include/sqakd/json.h \
 tests/util_check.h tests/util_fixtures.h include/sqakd/data.h \
 include/sqakd/safetensors.h
include/sqakd/checkpoint.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
include/sqakd/json.h:
tests/util_check.h:
tests/util_fixtures.h:
include/sqakd/data.h:
include/sqakd/safetensors.h:
