build-cpu/obj/host/train/step.o: host/train/step.c include/sqakd/json.h \
 include/sqakd/common.h include/sqakd/safetensors.h \
 include/sqakd/teacher_prec.h include/sqakd/model.h \
 include/sqakd/backend.h include/sqakd/quant.h host/train/feeder.h \
 host/train/train_internal.h include/sqakd/train.h \
 include/sqakd/checkpoint.h include/sqakd/data.h
include/sqakd/json.h:
include/sqakd/common.h:
include/sqakd/safetensors.h:
include/sqakd/teacher_prec.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/quant.h:
host/train/feeder.h:
host/train/train_internal.h:
include/sqakd/train.h:
include/sqakd/checkpoint.h:
include/sqakd/data.h:
