build-cpu/obj/host/model/graph_json.o: host/model/graph_json.c \
 host/model/model_internal.h include/sqakd/model.h \
 include/sqakd/backend.h include/sqakd/common.h include/sqakd/quant.h \
 include/sqakd/json.h
host/model/model_internal.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
include/sqakd/json.h:
