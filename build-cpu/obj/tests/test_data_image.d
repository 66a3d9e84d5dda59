build-cpu/obj/tests/test_data_image.o: tests/test_data_image.c \
 include/sqakd/data.h include/sqakd/common.h tests/util_fixtures.h \
 include/sqakd/backend.h include/sqakd/quant.h \
 include/sqakd/safetensors.h
include/sqakd/data.h:
include/sqakd/common.h:
tests/util_fixtures.h:
include/sqakd/backend.h:
include/sqakd/quant.h:
include/sqakd/safetensors.h:
