build-cpu/obj/tests/util_fixtures.o: tests/util_fixtures.c \
 tests/util_fixtures.h include/sqakd/backend.h include/sqakd/common.h \
 include/sqakd/quant.h include/sqakd/data.h include/sqakd/safetensors.h \
 host/io/atomic_write.h tests/util_check.h
tests/util_fixtures.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
include/sqakd/data.h:
include/sqakd/safetensors.h:
host/io/atomic_write.h:
tests/util_check.h:
