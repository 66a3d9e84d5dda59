build-cpu/obj/host/model/zz_stub_ops.o: host/model/zz_stub_ops.c \
 host/model/model_internal.h include/sqakd/model.h \
 include/sqakd/backend.h include/sqakd/common.h include/sqakd/quant.h \
 include/sqakd/onnx.h
host/model/model_internal.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
include/sqakd/onnx.h:
