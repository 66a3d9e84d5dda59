build-cpu/obj/gen/onnx.pb-c.o: build-cpu/gen/onnx.pb-c.c \
 build-cpu/gen/onnx.pb-c.h
build-cpu/gen/onnx.pb-c.h:
