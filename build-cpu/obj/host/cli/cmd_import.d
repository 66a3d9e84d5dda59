build-cpu/obj/host/cli/cmd_import.o: host/cli/cmd_import.c host/cli/cli.h \
 include/sqakd/common.h include/sqakd/checkpoint.h include/sqakd/model.h \
 include/sqakd/backend.h include/sqakd/quant.h include/sqakd/import.h \
 include/sqakd/onnx.h
host/cli/cli.h:
include/sqakd/common.h:
include/sqakd/checkpoint.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/quant.h:
include/sqakd/import.h:
include/sqakd/onnx.h:
