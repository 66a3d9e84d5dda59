build-cpu/obj/host/quant/quant.o: host/quant/quant.c \
 include/sqakd/quant.h include/sqakd/common.h include/sqakd/quant_math.h
include/sqakd/quant.h:
include/sqakd/common.h:
include/sqakd/quant_math.h:
