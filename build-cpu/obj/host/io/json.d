build-cpu/obj/host/io/json.o: host/io/json.c include/sqakd/json.h \
 include/sqakd/common.h
include/sqakd/json.h:
include/sqakd/common.h:
