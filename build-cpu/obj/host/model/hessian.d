build-cpu/obj/host/model/hessian.o: host/model/hessian.c \
 host/model/model_internal.h include/sqakd/model.h \
 include/sqakd/backend.h include/sqakd/common.h include/sqakd/quant.h \
 include/sqakd/rng.h
host/model/model_internal.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
include/sqakd/rng.h:
