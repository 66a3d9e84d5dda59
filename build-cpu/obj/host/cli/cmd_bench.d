build-cpu/obj/host/cli/cmd_bench.o: host/cli/cmd_bench.c host/cli/cli.h \
 include/sqakd/common.h include/sqakd/checkpoint.h include/sqakd/model.h \
 include/sqakd/backend.h include/sqakd/quant.h include/sqakd/import.h \
 include/sqakd/json.h include/sqakd/teacher_prec.h include/sqakd/train.h \
 include/sqakd/data.h host/train/train_internal.h include/sqakd/rng.h
host/cli/cli.h:
include/sqakd/common.h:
include/sqakd/checkpoint.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/quant.h:
include/sqakd/import.h:
include/sqakd/json.h:
include/sqakd/teacher_prec.h:
include/sqakd/train.h:
include/sqakd/data.h:
host/train/train_internal.h:
include/sqakd/rng.h:
