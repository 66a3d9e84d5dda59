build-cpu/obj/host/train/feeder.o: host/train/feeder.c \
 host/train/feeder.h include/sqakd/model.h include/sqakd/backend.h \
 include/sqakd/common.h include/sqakd/quant.h
host/train/feeder.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
