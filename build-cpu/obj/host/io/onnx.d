build-cpu/obj/host/io/onnx.o: host/io/onnx.c include/sqakd/onnx.h \
 include/sqakd/common.h host/io/atomic_write.h build-cpu/gen/onnx.pb-c.h
include/sqakd/onnx.h:
include/sqakd/common.h:
host/io/atomic_write.h:
build-cpu/gen/onnx.pb-c.h:
