build-cpu/obj/host/cli/cmd_eval.o: host/cli/cmd_eval.c \
 host/cli/cli_data.h host/cli/cli.h include/sqakd/common.h \
 include/sqakd/data.h include/sqakd/import.h include/sqakd/model.h \
 include/sqakd/backend.h include/sqakd/quant.h include/sqakd/json.h \
 include/sqakd/onnx.h include/sqakd/train.h include/sqakd/checkpoint.h
host/cli/cli_data.h:
host/cli/cli.h:
include/sqakd/common.h:
include/sqakd/data.h:
include/sqakd/import.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/quant.h:
include/sqakd/json.h:
include/sqakd/onnx.h:
include/sqakd/train.h:
include/sqakd/checkpoint.h:
