build-cpu/obj/host/train/eval.o: host/train/eval.c \
 include/sqakd/teacher_prec.h include/sqakd/model.h \
 include/sqakd/backend.h include/sqakd/common.h include/sqakd/quant.h \
 include/sqakd/train.h include/sqakd/checkpoint.h include/sqakd/data.h \
 host/train/feeder.h
include/sqakd/teacher_prec.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
include/sqakd/train.h:
include/sqakd/checkpoint.h:
include/sqakd/data.h:
host/train/feeder.h:
