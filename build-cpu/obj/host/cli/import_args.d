build-cpu/obj/host/cli/import_args.o: host/cli/import_args.c \
 host/cli/cli.h include/sqakd/common.h include/sqakd/import.h \
 include/sqakd/model.h include/sqakd/backend.h include/sqakd/quant.h
host/cli/cli.h:
include/sqakd/common.h:
include/sqakd/import.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/quant.h:
