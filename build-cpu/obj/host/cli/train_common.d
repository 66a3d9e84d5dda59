build-cpu/obj/host/cli/train_common.o: host/cli/train_common.c \
 host/cli/train_common.h host/cli/cli.h include/sqakd/common.h \
 include/sqakd/import.h include/sqakd/model.h include/sqakd/backend.h \
 include/sqakd/quant.h include/sqakd/train.h include/sqakd/checkpoint.h \
 include/sqakd/data.h host/io/atomic_write.h include/sqakd/json.h
host/cli/train_common.h:
host/cli/cli.h:
include/sqakd/common.h:
include/sqakd/import.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/quant.h:
include/sqakd/train.h:
include/sqakd/checkpoint.h:
include/sqakd/data.h:
host/io/atomic_write.h:
include/sqakd/json.h:
