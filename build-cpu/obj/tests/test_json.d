build-cpu/obj/tests/test_json.o: tests/test_json.c include/sqakd/json.h \
 include/sqakd/common.h
include/sqakd/json.h:
include/sqakd/common.h:
