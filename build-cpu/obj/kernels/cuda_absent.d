build-cpu/obj/kernels/cuda_absent.o: kernels/cuda_absent.c \
 include/sqakd/backend.h include/sqakd/common.h include/sqakd/quant.h
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
