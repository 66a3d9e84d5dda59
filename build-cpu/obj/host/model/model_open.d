build-cpu/obj/host/model/model_open.o: host/model/model_open.c \
 include/sqakd/checkpoint.h include/sqakd/model.h include/sqakd/backend.h \
 include/sqakd/common.h include/sqakd/quant.h include/sqakd/import.h
include/sqakd/checkpoint.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
include/sqakd/import.h:
