build-cpu/obj/host/io/atomic_write.o: host/io/atomic_write.c \
 host/io/atomic_write.h include/sqakd/common.h \
 include/sqakd/safetensors.h
host/io/atomic_write.h:
include/sqakd/common.h:
include/sqakd/safetensors.h:
