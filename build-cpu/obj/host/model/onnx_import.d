build-cpu/obj/host/model/onnx_import.o: host/model/onnx_import.c \
 host/model/model_internal.h include/sqakd/model.h \
 include/sqakd/backend.h include/sqakd/common.h include/sqakd/quant.h \
 include/sqakd/import.h include/sqakd/onnx.h
host/model/model_internal.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
include/sqakd/import.h:
include/sqakd/onnx.h:
