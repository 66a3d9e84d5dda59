build-cpu/obj/host/cli/report_plot.o: host/cli/report_plot.c \
 host/cli/plot.h include/sqakd/common.h host/cli/report.h
host/cli/plot.h:
include/sqakd/common.h:
host/cli/report.h:
