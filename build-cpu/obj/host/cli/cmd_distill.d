build-cpu/obj/host/cli/cmd_distill.o: host/cli/cmd_distill.c \
 host/cli/distill_common.h include/sqakd/multi.h include/sqakd/train.h \
 include/sqakd/checkpoint.h include/sqakd/model.h include/sqakd/backend.h \
 include/sqakd/common.h include/sqakd/quant.h include/sqakd/data.h \
 host/cli/train_common.h host/cli/cli.h include/sqakd/import.h \
 include/sqakd/teacher_prec.h
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
include/sqakd/teacher_prec.h:
