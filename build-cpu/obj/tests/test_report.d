build-cpu/obj/tests/test_report.o: tests/test_report.c host/cli/cli.h \
 include/sqakd/common.h tests/util_fixtures.h include/sqakd/backend.h \
 include/sqakd/quant.h include/sqakd/data.h include/sqakd/safetensors.h
host/cli/cli.h:
include/sqakd/common.h:
tests/util_fixtures.h:
include/sqakd/backend.h:
include/sqakd/quant.h:
include/sqakd/data.h:
include/sqakd/safetensors.h:
