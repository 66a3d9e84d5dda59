build-cpu/obj/host/cli/cmd_bench_kernels.o: host/cli/cmd_bench_kernels.c \
 host/cli/cli.h include/sqakd/common.h include/sqakd/backend.h \
 include/sqakd/quant.h include/sqakd/json.h include/sqakd/rng.h
host/cli/cli.h:
include/sqakd/common.h:
include/sqakd/backend.h:
include/sqakd/quant.h:
include/sqakd/json.h:
include/sqakd/rng.h:
