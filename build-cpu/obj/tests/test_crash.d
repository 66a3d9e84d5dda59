build-cpu/obj/tests/test_crash.o: tests/test_crash.c host/cli/cli.h \
 include/sqakd/common.h host/io/atomic_write.h tests/util_check.h \
 tests/util_fixtures.h include/sqakd/backend.h include/sqakd/quant.h \
 include/sqakd/data.h include/sqakd/safetensors.h
host/cli/cli.h:
include/sqakd/common.h:
host/io/atomic_write.h:
tests/util_check.h:
tests/util_fixtures.h:
include/sqakd/backend.h:
include/sqakd/quant.h:
include/sqakd/data.h:
include/sqakd/safetensors.h:
