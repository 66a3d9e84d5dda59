/* report.h: the rows of a sweep report (one per DIR/tasks/<id>/result.json) and the plot of
   accuracy (or teacher agreement) against model size drawn from them. */
#ifndef SQAKD_REPORT_H
#define SQAKD_REPORT_H
#include "sqakd/common.h"

typedef struct sq_report_row {
    char id[64], role[16], model[32], quantizer[16], status[16];
    int wbits, abits;
    long long seed;
    double top1, agreement, kl, model_bytes, train_seconds;   /* NAN when absent */
} sq_report_row;

#define SQ_REPORT_W 800
#define SQ_REPORT_H 500

/* Accuracy (top-1 when every finished student has it, else agreement with the teacher) against
   model size in bytes (log axis): one line per quantizer through the seed means of each
   bit-width, the teacher as a dashed horizontal reference line; axes, ticks, labels, a legend.
   A SQ_REPORT_W x SQ_REPORT_H PNG written atomically. */
sq_status sq_report_plot(const sq_report_row *rows, int n, const char *path);
#endif
