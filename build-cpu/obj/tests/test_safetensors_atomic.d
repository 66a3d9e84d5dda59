build-cpu/obj/tests/test_safetensors_atomic.o: \
 tests/test_safetensors_atomic.c include/sqakd/safetensors.h \
 include/sqakd/common.h tests/util_fixtures.h include/sqakd/backend.h \
 include/sqakd/quant.h include/sqakd/data.h
include/sqakd/safetensors.h:
include/sqakd/common.h:
tests/util_fixtures.h:
include/sqakd/backend.h:
include/sqakd/quant.h:
include/sqakd/data.h:
