build-cpu/obj/host/cli/cmd_train.o: host/cli/cmd_train.c \
 host/cli/cli_data.h host/cli/cli.h include/sqakd/common.h \
 include/sqakd/data.h host/cli/train_common.h include/sqakd/import.h \
 include/sqakd/model.h include/sqakd/backend.h include/sqakd/quant.h \
 include/sqakd/train.h include/sqakd/checkpoint.h
host/cli/cli_data.h:
host/cli/cli.h:
include/sqakd/common.h:
include/sqakd/data.h:
host/cli/train_common.h:
include/sqakd/import.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/quant.h:
include/sqakd/train.h:
include/sqakd/checkpoint.h:
