build-cpu/obj/host/model/zoo.o: host/model/zoo.c \
 host/model/model_internal.h include/sqakd/model.h \
 include/sqakd/backend.h include/sqakd/common.h include/sqakd/quant.h
host/model/model_internal.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
