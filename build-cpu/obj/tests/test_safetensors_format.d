build-cpu/obj/tests/test_safetensors_format.o: \
 tests/test_safetensors_format.c include/sqakd/checkpoint.h \
 include/sqakd/model.h include/sqakd/backend.h include/sqakd/common.h \
 include/sqakd/quant.h include/sqakd/json.h include/sqakd/safetensors.h \
 tests/util_fixtures.h include/sqakd/data.h
include/sqakd/checkpoint.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
include/sqakd/json.h:
include/sqakd/safetensors.h:
tests/util_fixtures.h:
include/sqakd/data.h:
