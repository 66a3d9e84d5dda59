build-cpu/obj/tests/test_onnx_io.o: tests/test_onnx_io.c \
 include/sqakd/onnx.h include/sqakd/common.h tests/util_fixtures.h \
 include/sqakd/backend.h include/sqakd/quant.h include/sqakd/data.h \
 include/sqakd/safetensors.h
include/sqakd/onnx.h:
include/sqakd/common.h:
tests/util_fixtures.h:
include/sqakd/backend.h:
include/sqakd/quant.h:
include/sqakd/data.h:
include/sqakd/safetensors.h:
