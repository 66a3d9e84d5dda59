build-cpu/obj/host/io/checkpoint.o: host/io/checkpoint.c \
 include/sqakd/checkpoint.h include/sqakd/model.h include/sqakd/backend.h \
 include/sqakd/common.h include/sqakd/quant.h include/sqakd/data.h \
 include/sqakd/safetensors.h
include/sqakd/checkpoint.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
include/sqakd/data.h:
include/sqakd/safetensors.h:
