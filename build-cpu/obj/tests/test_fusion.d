build-cpu/obj/tests/test_fusion.o: tests/test_fusion.c \
 include/sqakd/model.h include/sqakd/backend.h include/sqakd/common.h \
 include/sqakd/quant.h tests/util_check.h tests/util_fixtures.h \
 include/sqakd/data.h include/sqakd/safetensors.h
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
tests/util_check.h:
tests/util_fixtures.h:
include/sqakd/data.h:
include/sqakd/safetensors.h:
