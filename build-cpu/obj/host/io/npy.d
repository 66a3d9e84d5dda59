build-cpu/obj/host/io/npy.o: host/io/npy.c include/sqakd/onnx.h \
 include/sqakd/common.h host/io/atomic_write.h
include/sqakd/onnx.h:
include/sqakd/common.h:
host/io/atomic_write.h:
