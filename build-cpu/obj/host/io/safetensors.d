build-cpu/obj/host/io/safetensors.o: host/io/safetensors.c \
 include/sqakd/safetensors.h include/sqakd/common.h include/sqakd/json.h \
 host/io/atomic_write.h
include/sqakd/safetensors.h:
include/sqakd/common.h:
include/sqakd/json.h:
host/io/atomic_write.h:
