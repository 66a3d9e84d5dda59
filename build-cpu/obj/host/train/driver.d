build-cpu/obj/host/train/driver.o: host/train/driver.c \
 include/sqakd/multi.h include/sqakd/train.h include/sqakd/checkpoint.h \
 include/sqakd/model.h include/sqakd/backend.h include/sqakd/common.h \
 include/sqakd/quant.h include/sqakd/data.h include/sqakd/teacher_prec.h \
 host/train/feeder.h host/train/train_internal.h include/sqakd/json.h \
 include/sqakd/safetensors.h
include/sqakd/multi.h:
include/sqakd/train.h:
include/sqakd/checkpoint.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
include/sqakd/data.h:
include/sqakd/teacher_prec.h:
host/train/feeder.h:
host/train/train_internal.h:
include/sqakd/json.h:
include/sqakd/safetensors.h:
