build-cpu/obj/tests/test_data_loader.o: tests/test_data_loader.c \
 include/sqakd/data.h include/sqakd/common.h
include/sqakd/data.h:
include/sqakd/common.h:
