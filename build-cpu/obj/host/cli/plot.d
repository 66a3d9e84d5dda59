build-cpu/obj/host/cli/plot.o: host/cli/plot.c host/cli/plot.h \
 include/sqakd/common.h include/sqakd/safetensors.h
host/cli/plot.h:
include/sqakd/common.h:
include/sqakd/safetensors.h:
