build-cpu/obj/host/cli/sweep_config.o: host/cli/sweep_config.c \
 host/cli/sweep.h host/cli/distill_common.h include/sqakd/multi.h \
 include/sqakd/train.h include/sqakd/checkpoint.h include/sqakd/model.h \
 include/sqakd/backend.h include/sqakd/common.h include/sqakd/quant.h \
 include/sqakd/data.h host/cli/train_common.h host/cli/cli.h \
 include/sqakd/import.h include/sqakd/json.h
host/cli/sweep.h:
host/cli/distill_common.h:
include/sqakd/multi.h:
include/sqakd/train.h:
include/sqakd/checkpoint.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
include/sqakd/data.h:
host/cli/train_common.h:
host/cli/cli.h:
include/sqakd/import.h:
include/sqakd/json.h:
