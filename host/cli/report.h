/* report.h: the rows of a sweep report (one per DIR/tasks/<id>/result.json, with the per-epoch
   values of its metrics.jsonl), the per-configuration means over seeds that the Markdown table
   and the figures share, and the two figures drawn from them with cairo (report_plot.c). */
#ifndef SQAKD_REPORT_H
#define SQAKD_REPORT_H
#include "sqakd/common.h"

typedef struct sq_report_row {
    char id[64], role[16], model[32], quantizer[16], status[16];
    int wbits, abits;
    long long seed;
    double top1, agreement, kl, model_bytes, train_seconds;   /* NAN when absent */
    /* from DIR/tasks/<id>/metrics.jsonl: epochs 1..nep (index epoch - 1), NAN where a line has no
       value; nep 0 and NULL without that file (owned: sq_report_rows_free) */
    int nep;
    double *ep_agreement, *ep_kl;
} sq_report_row;

void sq_report_rows_free(sq_report_row *rows, int n);

/* mean and sample standard deviation of the finite values of v[0..n): NAN when there are none,
   sd NAN with fewer than two */
void sq_report_mean_sd(const double *v, int n, double *mean, double *sd);

/* A configuration: the consecutive rows (sorted as the report sorts them) of one role, quantizer
   and bit-width, i.e. one configuration over its seeds, and the mean and sample s.d. of the
   finished ("ok") ones, as the table's "Mean over seeds" prints them. */
typedef struct sq_report_config {
    int first, n, ok;                     /* rows[first .. first + n); ok of them finished */
    double top1, top1_sd, agreement, agreement_sd;
    double bytes;                         /* the model size of the first finished row with one */
} sq_report_config;
/* fills out (room for n) and returns the number of configurations */
int sq_report_configs(const sq_report_row *rows, int n, sq_report_config *out);

/* A point of the summary figure: one student configuration with a finished seed, its mean metric
   (top-1 when every finished student has one, else agreement with the teacher) at its model size,
   and its error bar (mean +- sd; sd NAN, no bar, with one finished seed). series is the index of
   its quantizer in the order quantizers first appear. */
typedef struct sq_report_point {
    int series, wbits, abits, seeds;
    double bytes, mean, sd;
} sq_report_point;
/* the points, sorted by series then size, into pts (room for n); *use_top1 says which metric */
int sq_report_points(const sq_report_row *rows, int n, int *use_top1, sq_report_point *pts);

/* Figure sizes in points (1/72 in; SVG and PDF); the PNGs are drawn at SQ_REPORT_PNG_SCALE pixels
   per point. */
#define SQ_REPORT_W 720
#define SQ_REPORT_H 450
#define SQ_CURVES_W 720
#define SQ_CURVES_H 400
#define SQ_REPORT_PNG_SCALE 2

/* Draws the two figures with cairo, each once per output: DIR/report.{svg,pdf,png} (the metric
   against model size on a log axis, one line per quantizer through its configurations' means,
   error bars over seeds, the teacher as a dashed reference) and DIR/report_curves.{svg,pdf,png}
   (per-epoch agreement with the teacher and KL(teacher || student), one curve per configuration:
   the mean over its finished seeds with a band of +- 1 s.d.). Text is drawn with cairo's toy
   font API in DejaVu Sans (fontconfig): glyphs, never markup. Every file is written atomically;
   an error names the file. */
sq_status sq_report_plot(const sq_report_row *rows, int n, const char *dir);
#endif
