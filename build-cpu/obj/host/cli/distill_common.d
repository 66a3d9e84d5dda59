build-cpu/obj/host/cli/distill_common.o: host/cli/distill_common.c \
 host/cli/cli_data.h host/cli/cli.h include/sqakd/common.h \
 include/sqakd/data.h host/cli/distill_common.h include/sqakd/multi.h \
 include/sqakd/train.h include/sqakd/checkpoint.h include/sqakd/model.h \
 include/sqakd/backend.h include/sqakd/quant.h host/cli/train_common.h \
 include/sqakd/import.h
host/cli/cli_data.h:
host/cli/cli.h:
include/sqakd/common.h:
include/sqakd/data.h:
host/cli/distill_common.h:
include/sqakd/multi.h:
include/sqakd/train.h:
include/sqakd/checkpoint.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/quant.h:
host/cli/train_common.h:
include/sqakd/import.h:
