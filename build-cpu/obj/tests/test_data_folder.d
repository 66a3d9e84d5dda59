build-cpu/obj/tests/test_data_folder.o: tests/test_data_folder.c \
 include/sqakd/data.h include/sqakd/common.h tests/util_fixtures.h \
 include/sqakd/backend.h include/sqakd/quant.h \
 include/sqakd/safetensors.h
include/sqakd/data.h:
include/sqakd/common.h:
tests/util_fixtures.h:
include/sqakd/backend.h:
include/sqakd/quant.h:
include/sqakd/safetensors.h:
