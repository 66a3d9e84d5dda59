/* report_plot.c: the sweep report's figures, drawn with cairo. One drawing function per figure
   draws it on each of three surfaces: SVG and PDF (vector, fonts embedded as glyph outlines) and
   an image surface saved as PNG, so the three files show the same figure. Text goes through
   cairo's toy font API (DejaVu Sans through fontconfig): a name from a result.json is drawn as
   glyphs and never interpreted. Figure 1: the metric against model size (log axis), one line per
   quantizer through the means over seeds of its bit-widths, error bars of +- 1 sample s.d. where
   a configuration has finished seeds > 1 (the same numbers as the table's "Mean over seeds"), the
   teacher as a dashed reference line. Figure 2: per-epoch agreement with the teacher and KL, one
   curve per configuration (mean over finished seeds, band of +- 1 s.d.). */
#include "report.h"
#include "plot_cairo.h"
#include "sqakd/safetensors.h"
#include <cairo/cairo-pdf.h>
#include <cairo/cairo-svg.h>
#include <cairo/cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the numbers the table and the figures share ---- */

void sq_report_mean_sd(const double *v, int n, double *mean, double *sd)
{
    double s = 0, s2 = 0;
    int k = 0;
    for (int i = 0; i < n; i++) if (isfinite(v[i])) { s += v[i]; k++; }
    *mean = k ? s / k : NAN;
    for (int i = 0; i < n; i++) if (isfinite(v[i])) s2 += (v[i] - *mean) * (v[i] - *mean);
    *sd = k > 1 ? sqrt(s2 / (k - 1)) : NAN;
}

static int same_config(const sq_report_row *a, const sq_report_row *b)
{
    return !strcmp(a->role, b->role) && !strcmp(a->quantizer, b->quantizer) && a->wbits == b->wbits &&
           a->abits == b->abits;
}

static int is_ok(const sq_report_row *r) { return !strcmp(r->status, "ok"); }

int sq_report_configs(const sq_report_row *rows, int n, sq_report_config *out)
{
    double *t1 = sq_xcalloc(n ? n : 1, sizeof *t1), *ag = sq_xcalloc(n ? n : 1, sizeof *ag);
    int nc = 0;
    for (int i = 0; i < n;) {
        sq_report_config *c = &out[nc++];
        int j = i, k = 0;
        c->first = i;
        c->bytes = NAN;
        for (; j < n && same_config(&rows[j], &rows[i]); j++) {
            if (!is_ok(&rows[j])) continue;
            t1[k] = rows[j].top1;
            ag[k] = rows[j].agreement;
            k++;
            if (!isfinite(c->bytes) && rows[j].model_bytes > 0 && isfinite(rows[j].model_bytes))
                c->bytes = rows[j].model_bytes;
        }
        c->n = j - i;
        c->ok = k;
        sq_report_mean_sd(t1, k, &c->top1, &c->top1_sd);
        sq_report_mean_sd(ag, k, &c->agreement, &c->agreement_sd);
        i = j;
    }
    free(t1);
    free(ag);
    return nc;
}

/* the index of name among names[0..*ns), added when absent */
static int series_of(const char **names, int *ns, const char *name)
{
    for (int k = 0; k < *ns; k++)
        if (!strcmp(names[k], name)) return k;
    names[*ns] = name;
    return (*ns)++;
}

static int use_top1_of(const sq_report_row *rows, int n)
{
    int use = 0, students = 0;
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].role, "student") && is_ok(&rows[i])) {
            if (!students++) use = 1;
            if (!isfinite(rows[i].top1)) use = 0;
        }
    return use;
}

static int point_cmp(const void *pa, const void *pb)
{
    const sq_report_point *a = pa, *b = pb;
    if (a->series != b->series) return a->series < b->series ? -1 : 1;
    return (a->bytes > b->bytes) - (a->bytes < b->bytes);
}

/* the points and the names of their series (names: room for n) */
static int points_named(const sq_report_row *rows, int n, int *use_top1, sq_report_point *pts, const char **names,
                        int *ns)
{
    *use_top1 = use_top1_of(rows, n);
    *ns = 0;
    sq_report_config *cf = sq_xcalloc(n ? n : 1, sizeof *cf);
    int nc = sq_report_configs(rows, n, cf), np = 0;
    for (int c = 0; c < nc; c++) {
        const sq_report_row *r = &rows[cf[c].first];
        double m = *use_top1 ? cf[c].top1 : cf[c].agreement, sd = *use_top1 ? cf[c].top1_sd : cf[c].agreement_sd;
        if (strcmp(r->role, "student") || !cf[c].ok || !isfinite(m) || !isfinite(cf[c].bytes)) continue;
        sq_report_point *p = &pts[np++];
        p->series = series_of(names, ns, r->quantizer);
        p->wbits = r->wbits;
        p->abits = r->abits;
        p->seeds = cf[c].ok;
        p->bytes = cf[c].bytes;
        p->mean = m;
        p->sd = isfinite(sd) ? sd : NAN;
    }
    free(cf);
    qsort(pts, np, sizeof *pts, point_cmp);
    return np;
}

int sq_report_points(const sq_report_row *rows, int n, int *use_top1, sq_report_point *pts)
{
    const char **names = sq_xcalloc(n ? n : 1, sizeof *names);
    int ns, np = points_named(rows, n, use_top1, pts, names, &ns);
    free(names);
    return np;
}

/* ---- figure 1: the metric against model size ---- */

typedef struct {
    const sq_report_row *rows, *teacher;
    int n, np, ns, use_top1;
    const sq_report_point *pts;
    const char **names;
} summary_fig;

static double metric_of(const sq_report_row *r, int use_top1) { return use_top1 ? r->top1 : r->agreement; }

/* the error bar of a point: a vertical line mean - sd .. mean + sd with caps, one path, the only
   strokes of the figures with square caps (tests count them in the SVG) */
static void error_bar(cairo_t *cr, const axes *a, const sq_report_point *p)
{
    double x = sq_plot_x(a, p->bytes), lo = sq_plot_y(a, p->mean - p->sd), hi = sq_plot_y(a, p->mean + p->sd);
    cairo_save(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    sq_plot_color(cr, PALETTE[p->series % NPAL]);
    cairo_set_line_width(cr, 1.2);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_SQUARE);
    cairo_move_to(cr, x, lo);
    cairo_line_to(cr, x, hi);
    cairo_move_to(cr, x - 3.5, lo);
    cairo_line_to(cr, x + 3.5, lo);
    cairo_move_to(cr, x - 3.5, hi);
    cairo_line_to(cr, x + 3.5, hi);
    cairo_stroke(cr);
    cairo_restore(cr);
}

#define LEGEND_MAX 12   /* series named in the summary's legend; the others are counted */

static void summary_legend(cairo_t *cr, const axes *a, const summary_fig *f, int bars)
{
    int named = f->ns > LEGEND_MAX ? LEGEND_MAX - 1 : f->ns, more = f->ns > named;
    int rows = named + more + (f->teacher != NULL) + bars;
    if (!rows) return;
    double w = 0, fs = 9.5, lh = 15;
    char more_text[64];
    snprintf(more_text, sizeof more_text, "and %d more", f->ns - named);
    for (int k = 0; k < named; k++) w = fmax(w, sq_plot_text_width(cr, f->names[k], fs));
    if (more) w = fmax(w, sq_plot_text_width(cr, more_text, fs));
    if (f->teacher) w = fmax(w, sq_plot_text_width(cr, "teacher", fs));
    const char *note = "error bars: mean \xc2\xb1 1 s.d. over seeds";
    double wn = bars ? sq_plot_text_width(cr, note, 8.5) : 0;
    double bw = fmax(10 + 26 + 8 + w + 10, wn + 20), bh = 8 + rows * lh;
    double x0 = a->r - 10 - bw, y0 = a->b - 10 - bh;
    cairo_save(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_rectangle(cr, x0, y0, bw, bh);
    cairo_set_source_rgba(cr, 1, 1, 1, 0.92);
    cairo_fill_preserve(cr);
    sq_plot_color(cr, FRAME);
    cairo_set_line_width(cr, 0.8);
    cairo_stroke(cr);
    for (int k = 0; k < rows; k++) {
        double y = y0 + 4 + lh * k + lh / 2, xs = x0 + 10;
        if (k < named) {
            sq_plot_series_style(cr, k);
            cairo_set_line_width(cr, 1.8);
            cairo_move_to(cr, xs, y);
            cairo_line_to(cr, xs + 26, y);
            cairo_stroke(cr);
            sq_plot_marker(cr, xs + 13, y, PALETTE[k % NPAL]);
            sq_plot_text(cr, xs + 34, y, f->names[k], fs, 0, 0.5, 0, 0, BLACK);
        } else if (k == named && more) {
            sq_plot_text(cr, xs + 34, y, more_text, fs, 0, 0.5, 0, 0, MUTED);
        } else if (k == named + more && f->teacher) {
            const double dash[] = {5, 3};
            sq_plot_color(cr, TEACHER);
            cairo_set_dash(cr, dash, 2, 0);
            cairo_set_line_width(cr, 1.5);
            cairo_move_to(cr, xs, y);
            cairo_line_to(cr, xs + 26, y);
            cairo_stroke(cr);
            cairo_set_dash(cr, NULL, 0, 0);
            sq_plot_text(cr, xs + 34, y, "teacher", fs, 0, 0.5, 0, 0, BLACK);
        } else {
            sq_plot_text(cr, xs, y, note, 8.5, 0, 0.5, 0, 0, MUTED);
        }
    }
    cairo_restore(cr);
}

static void draw_summary(cairo_t *cr, const void *ctx)
{
    const summary_fig *f = ctx;
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int p = 0; p < f->np; p++) {
        const sq_report_point *q = &f->pts[p];
        double s = isfinite(q->sd) ? q->sd : 0;
        xmin = fmin(xmin, q->bytes);
        xmax = fmax(xmax, q->bytes);
        ymin = fmin(ymin, q->mean - s);
        ymax = fmax(ymax, q->mean + s);
    }
    const sq_report_row *t = f->teacher;
    if (t) {
        double ty = metric_of(t, f->use_top1);
        ymin = fmin(ymin, ty);
        ymax = fmax(ymax, ty);
        if (t->model_bytes > 0 && isfinite(t->model_bytes)) {
            xmin = fmin(xmin, t->model_bytes);
            xmax = fmax(xmax, t->model_bytes);
        }
    }
    if (!isfinite(xmin)) { xmin = 1e3; xmax = 1e6; }
    if (!isfinite(ymin)) { ymin = 0; ymax = 100; }
    axes a = {.l = 66, .r = SQ_REPORT_W - 18, .t = 40, .b = SQ_REPORT_H - 52, .logx = 1,
              .x0 = log10(xmin) - 0.08, .x1 = log10(xmax) + 0.08, .y0 = ymin, .y1 = ymax};
    if (a.x1 - a.x0 < 0.5) { double c = (a.x0 + a.x1) / 2; a.x0 = c - 0.25; a.x1 = c + 0.25; }
    sq_plot_padded(&a.y0, &a.y1, 1.0);
    if (f->use_top1 || t) { a.y0 = fmax(a.y0, 0); a.y1 = fmin(a.y1, 100.5); }
    if (!(a.y1 > a.y0)) { a.y0 = 0; a.y1 = 100.5; }
    sq_plot_x_axis_log(cr, &a);
    sq_plot_frame_grid_y(cr, &a);
    char title[160];
    snprintf(title, sizeof title, "%s%s%s against model size", f->n ? f->rows[0].model : "", f->n ? ": " : "",
             f->use_top1 ? "top-1 accuracy" : "agreement with the teacher");
    sq_plot_text(cr, SQ_REPORT_W / 2.0, 18, title, 13, 0.5, 0.5, 1, 0, BLACK);
    sq_plot_text(cr, (a.l + a.r) / 2, a.b + 32, "model size (bytes, log scale)", 10.5, 0.5, 0.5, 0, 0, BLACK);
    sq_plot_text(cr, 16, (a.t + a.b) / 2, f->use_top1 ? "top-1 accuracy (%)" : "agreement with the teacher (%)", 10.5, 0.5,
         0.5, 0, 1, BLACK);
    cairo_save(cr);
    sq_plot_clip_to(cr, &a);
    if (t) {
        const double dash[] = {5, 3};
        double y = sq_plot_y(&a, metric_of(t, f->use_top1));
        sq_plot_color(cr, TEACHER);
        cairo_set_dash(cr, dash, 2, 0);
        cairo_set_line_width(cr, 1.5);
        cairo_move_to(cr, a.l, y);
        cairo_line_to(cr, a.r, y);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        if (t->model_bytes > 0 && isfinite(t->model_bytes)) sq_plot_marker(cr, sq_plot_x(&a, t->model_bytes), y, TEACHER);
    }
    /* bit-width labels along the bottom, once per size */
    for (int p = 0; p < f->np; p++) {
        int dup = 0;
        for (int q = 0; q < p && !dup; q++)
            dup = f->pts[q].wbits == f->pts[p].wbits && f->pts[q].abits == f->pts[p].abits;
        if (dup) continue;
        char lab[32];
        snprintf(lab, sizeof lab, "W%dA%d", f->pts[p].wbits, f->pts[p].abits);
        sq_plot_text(cr, sq_plot_x(&a, f->pts[p].bytes), a.b - 8, lab, 8, 0.5, 1, 0, 0, MUTED);
    }
    int bars = 0;
    for (int p = 0; p < f->np; p++)
        if (isfinite(f->pts[p].sd)) { error_bar(cr, &a, &f->pts[p]); bars++; }
    for (int p = 0; p < f->np;) {   /* one line per series through its points (sorted by size) */
        int q = p;
        sq_plot_series_style(cr, f->pts[p].series);
        cairo_set_line_width(cr, 1.8);
        cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
        for (; q < f->np && f->pts[q].series == f->pts[p].series; q++) {
            if (q == p) cairo_move_to(cr, sq_plot_x(&a, f->pts[q].bytes), sq_plot_y(&a, f->pts[q].mean));
            else cairo_line_to(cr, sq_plot_x(&a, f->pts[q].bytes), sq_plot_y(&a, f->pts[q].mean));
        }
        cairo_stroke(cr);
        for (int k = p; k < q; k++)
            sq_plot_marker(cr, sq_plot_x(&a, f->pts[k].bytes), sq_plot_y(&a, f->pts[k].mean), PALETTE[f->pts[k].series % NPAL]);
        p = q;
    }
    cairo_restore(cr);
    if (!f->np) sq_plot_text(cr, (a.l + a.r) / 2, (a.t + a.b) / 2, "no finished students", 12, 0.5, 0.5, 0, 0, MUTED);
    sq_plot_frame_box(cr, &a);
    summary_legend(cr, &a, f, bars > 0);
}

/* ---- figure 2: per-epoch agreement and KL ---- */

typedef struct {
    char label[64];
    int series, seeds, nep;
    double *m[2], *s[2];   /* per epoch: mean and s.d. of agreement (0) and KL (1); NAN where none */
} curve;

typedef struct {
    const sq_report_row *rows;
    int n, nc;
    curve *c;
} curves_fig;

/* the curves of the student configurations whose finished seeds have per-epoch values */
static int make_curves(const sq_report_row *rows, int n, curve **out)
{
    sq_report_config *cf = sq_xcalloc(n ? n : 1, sizeof *cf);
    int nc = sq_report_configs(rows, n, cf), k = 0;
    curve *c = sq_xcalloc(nc ? nc : 1, sizeof *c);
    double *v = sq_xcalloc(n ? n : 1, sizeof *v);
    for (int i = 0; i < nc; i++) {
        const sq_report_row *r0 = &rows[cf[i].first];
        if (strcmp(r0->role, "student")) continue;
        int nep = 0, seeds = 0;
        for (int j = cf[i].first; j < cf[i].first + cf[i].n; j++)
            if (is_ok(&rows[j]) && rows[j].nep > 0) { nep = rows[j].nep > nep ? rows[j].nep : nep; seeds++; }
        if (!nep) continue;
        curve *cv = &c[k];
        cv->nep = nep;
        cv->seeds = seeds;
        snprintf(cv->label, sizeof cv->label, "%s W%dA%d (%d seed%s)", r0->quantizer, r0->wbits, r0->abits, seeds,
                 seeds == 1 ? "" : "s");
        int any = 0;
        for (int w = 0; w < 2; w++) {
            cv->m[w] = sq_xcalloc(nep, sizeof(double));
            cv->s[w] = sq_xcalloc(nep, sizeof(double));
            for (int e = 0; e < nep; e++) {
                int m = 0;
                for (int j = cf[i].first; j < cf[i].first + cf[i].n; j++)
                    if (is_ok(&rows[j]) && e < rows[j].nep) v[m++] = w ? rows[j].ep_kl[e] : rows[j].ep_agreement[e];
                sq_report_mean_sd(v, m, &cv->m[w][e], &cv->s[w][e]);
                any |= isfinite(cv->m[w][e]);
            }
        }
        if (!any) {
            for (int w = 0; w < 2; w++) { free(cv->m[w]); free(cv->s[w]); }
            memset(cv, 0, sizeof *cv);
            continue;
        }
        cv->series = k++;
    }
    free(v);
    free(cf);
    *out = c;
    return k;
}

static void free_curves(curve *c, int n)
{
    for (int i = 0; i < n; i++)
        for (int w = 0; w < 2; w++) { free(c[i].m[w]); free(c[i].s[w]); }
    free(c);
}

/* the band mean +- sd over each run of epochs that have both, as one filled path per run */
static void band(cairo_t *cr, const axes *a, const curve *cv, int w)
{
    const double *m = cv->m[w], *s = cv->s[w];
    rgb c = PALETTE[cv->series % NPAL];
    for (int e = 0; e < cv->nep;) {
        if (!isfinite(m[e]) || !isfinite(s[e])) { e++; continue; }
        int f = e;
        while (f < cv->nep && isfinite(m[f]) && isfinite(s[f])) f++;
        if (f - e == 1) {   /* one epoch: a bar instead of a band */
            double x = sq_plot_x(a, e + 1);
            cairo_rectangle(cr, x - 2.5, sq_plot_y(a, m[e] + s[e]), 5, sq_plot_y(a, m[e] - s[e]) - sq_plot_y(a, m[e] + s[e]));
        } else {
            for (int k = e; k < f; k++) (k == e ? cairo_move_to : cairo_line_to)(cr, sq_plot_x(a, k + 1), sq_plot_y(a, m[k] + s[k]));
            for (int k = f - 1; k >= e; k--) cairo_line_to(cr, sq_plot_x(a, k + 1), sq_plot_y(a, m[k] - s[k]));
            cairo_close_path(cr);
        }
        cairo_set_source_rgba(cr, c.r, c.g, c.b, 0.2);
        cairo_fill(cr);
        e = f;
    }
}

static void curve_line(cairo_t *cr, const axes *a, const curve *cv, int w, int markers)
{
    const double *m = cv->m[w];
    sq_plot_series_style(cr, cv->series);
    cairo_set_line_width(cr, 1.6);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    int pen = 0;
    for (int e = 0; e < cv->nep; e++) {
        if (!isfinite(m[e])) { pen = 0; continue; }
        (pen ? cairo_line_to : cairo_move_to)(cr, sq_plot_x(a, e + 1), sq_plot_y(a, m[e]));
        pen = 1;
    }
    cairo_stroke(cr);
    if (markers)
        for (int e = 0; e < cv->nep; e++)
            if (isfinite(m[e])) sq_plot_marker(cr, sq_plot_x(a, e + 1), sq_plot_y(a, m[e]), PALETTE[cv->series % NPAL]);
}

static void panel(cairo_t *cr, const curves_fig *f, axes *a, int w, const char *ylabel)
{
    int nep = 1;
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < f->nc; i++) {
        const curve *cv = &f->c[i];
        nep = cv->nep > nep ? cv->nep : nep;
        for (int e = 0; e < cv->nep; e++) {
            double m = cv->m[w][e], s = isfinite(cv->s[w][e]) ? cv->s[w][e] : 0;
            if (!isfinite(m)) continue;
            lo = fmin(lo, m - s);
            hi = fmax(hi, m + s);
        }
    }
    a->x0 = nep > 1 ? 1 - 0.03 * (nep - 1) : 0.5;
    a->x1 = nep > 1 ? nep + 0.03 * (nep - 1) : 1.5;
    a->y0 = lo;
    a->y1 = hi;
    sq_plot_padded(&a->y0, &a->y1, w ? 1e-3 : 1.0);
    if (w == 0) { a->y0 = fmax(a->y0, 0); a->y1 = fmin(a->y1, 100.5); }
    else a->y0 = fmax(a->y0, lo >= 0 ? 0 : a->y0);
    if (!(a->y1 > a->y0)) { a->y0 = 0; a->y1 = 1; }
    sq_plot_x_axis_int(cr, a);
    sq_plot_frame_grid_y(cr, a);
    sq_plot_text(cr, (a->l + a->r) / 2, a->b + 32, "epoch", 10.5, 0.5, 0.5, 0, 0, BLACK);
    sq_plot_text(cr, a->l - 46, (a->t + a->b) / 2, ylabel, 10.5, 0.5, 0.5, 0, 1, BLACK);
    cairo_save(cr);
    sq_plot_clip_to(cr, a);
    for (int i = 0; i < f->nc; i++) band(cr, a, &f->c[i], w);
    for (int i = 0; i < f->nc; i++) curve_line(cr, a, &f->c[i], w, nep <= 30);
    cairo_restore(cr);
    if (!f->nc)
        sq_plot_text(cr, (a->l + a->r) / 2, (a->t + a->b) / 2, "no per-epoch values (tasks/<id>/metrics.jsonl)", 10, 0.5, 0.5,
             0, 0, MUTED);
    sq_plot_frame_box(cr, a);
}

#define LEGEND_COLS 3
#define LEGEND_ROWS 3

static void draw_curves(cairo_t *cr, const void *ctx)
{
    const curves_fig *f = ctx;
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    char title[160];
    snprintf(title, sizeof title, "%s%sper-epoch agreement and KL (mean over seeds, band: \xc2\xb1 1 s.d.)",
             f->n ? f->rows[0].model : "", f->n ? ": " : "");
    sq_plot_text(cr, SQ_CURVES_W / 2.0, 18, title, 13, 0.5, 0.5, 1, 0, BLACK);
    double b = SQ_CURVES_H - 52 - 15.0 * LEGEND_ROWS;
    axes left = {.l = 66, .r = SQ_CURVES_W / 2.0 - 12, .t = 40, .b = b};
    axes right = {.l = SQ_CURVES_W / 2.0 + 62, .r = SQ_CURVES_W - 18, .t = 40, .b = b};
    panel(cr, f, &left, 0, "agreement with the teacher (%)");
    panel(cr, f, &right, 1, "KL(teacher || student)");
    /* the legend below the panels, in columns; what does not fit is counted */
    int shown = f->nc < LEGEND_COLS * LEGEND_ROWS ? f->nc : LEGEND_COLS * LEGEND_ROWS - (f->nc > LEGEND_COLS * LEGEND_ROWS);
    double colw = (SQ_CURVES_W - 2 * 66.0) / LEGEND_COLS, y0 = b + 48;
    for (int i = 0; i < shown; i++) {
        double x = 66 + (i % LEGEND_COLS) * colw, y = y0 + (i / LEGEND_COLS) * 15;
        sq_plot_series_style(cr, f->c[i].series);
        cairo_set_line_width(cr, 1.8);
        cairo_move_to(cr, x, y);
        cairo_line_to(cr, x + 24, y);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        sq_plot_text(cr, x + 30, y, f->c[i].label, 9, 0, 0.5, 0, 0, BLACK);
    }
    if (shown < f->nc) {
        char more[64];
        snprintf(more, sizeof more, "and %d more (see report.csv)", f->nc - shown);
        int i = shown;
        sq_plot_text(cr, 66 + (i % LEGEND_COLS) * colw, y0 + (i / LEGEND_COLS) * 15, more, 9, 0, 0.5, 0, 0, MUTED);
    }
}

/* ---- output: each figure drawn on an SVG, a PDF and an image surface, written atomically ---- */

typedef struct { unsigned char *p; size_t n, cap; } membuf;

static cairo_status_t mem_write(void *closure, const unsigned char *data, unsigned int len)
{
    membuf *b = closure;
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->n + len) cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) return CAIRO_STATUS_NO_MEMORY;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, len);
    b->n += len;
    return CAIRO_STATUS_SUCCESS;
}

typedef void (*draw_fn)(cairo_t *cr, const void *ctx);

static sq_status render(const char *dir, const char *name, int w, int h, draw_fn draw, const void *ctx)
{
    const char *ext[3] = {"svg", "pdf", "png"};
    for (int k = 0; k < 3; k++) {
        membuf mb = {0};
        cairo_surface_t *s;
        if (k == 0) {
            s = cairo_svg_surface_create_for_stream(mem_write, &mb, w, h);
            cairo_svg_surface_restrict_to_version(s, CAIRO_SVG_VERSION_1_1);
        } else if (k == 1) {
            s = cairo_pdf_surface_create_for_stream(mem_write, &mb, w, h);
            /* no creation date: the same inputs give the same bytes */
            cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATE_DATE, "");
        } else {
            s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w * SQ_REPORT_PNG_SCALE, h * SQ_REPORT_PNG_SCALE);
        }
        cairo_t *cr = cairo_create(s);
        if (k == 2) cairo_scale(cr, SQ_REPORT_PNG_SCALE, SQ_REPORT_PNG_SCALE);
        draw(cr, ctx);
        cairo_status_t cs = cairo_status(cr);
        cairo_destroy(cr);
        if (k == 2 && cs == CAIRO_STATUS_SUCCESS) cs = cairo_surface_write_to_png_stream(s, mem_write, &mb);
        cairo_surface_finish(s);   /* SVG and PDF reach the stream here */
        if (cs == CAIRO_STATUS_SUCCESS) cs = cairo_surface_status(s);
        cairo_surface_destroy(s);
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.%s", dir, name, ext[k]);
        sq_status st = SQ_OK;
        if (cs != CAIRO_STATUS_SUCCESS) {
            sq_set_error_in(path, "cairo could not draw the figure: %s", cairo_status_to_string(cs));
            st = SQ_EIO;
        } else {
            st = sq_write_file_atomic(path, mb.p, mb.n);
        }
        free(mb.p);
        if (st) return st;
    }
    return SQ_OK;
}

sq_status sq_report_plot(const sq_report_row *rows, int n, const char *dir)
{
    summary_fig sf = {.rows = rows, .n = n};
    sq_report_point *pts = sq_xcalloc(n ? n : 1, sizeof *pts);
    const char **names = sq_xcalloc(n ? n : 1, sizeof *names);
    sf.np = points_named(rows, n, &sf.use_top1, pts, names, &sf.ns);
    sf.pts = pts;
    sf.names = names;
    for (int i = 0; i < n && !sf.teacher; i++)
        if (!strcmp(rows[i].role, "teacher") && isfinite(metric_of(&rows[i], sf.use_top1))) sf.teacher = &rows[i];
    sq_status st = render(dir, "report", SQ_REPORT_W, SQ_REPORT_H, draw_summary, &sf);
    free(pts);
    free(names);
    if (st) return st;
    curves_fig cf = {.rows = rows, .n = n};
    cf.nc = make_curves(rows, n, &cf.c);
    st = render(dir, "report_curves", SQ_CURVES_W, SQ_CURVES_H, draw_curves, &cf);
    free_curves(cf.c, cf.nc);
    return st;
}
