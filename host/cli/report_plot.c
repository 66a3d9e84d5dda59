/* report_plot.c: the sweep plot: accuracy (or teacher agreement) against model size in bytes on
   a log axis, one coloured line per quantizer through the seed means of its bit-widths, the
   teacher as a dashed reference line, with grid, ticks, labels and a legend. */
#include "plot.h"
#include "report.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_SERIES 8
#define MAX_POINTS 16

typedef struct {
    char name[16];
    int npts;
    double x[MAX_POINTS], y[MAX_POINTS];
    int wbits[MAX_POINTS], abits[MAX_POINTS], count[MAX_POINTS];
} series;

static const sq_rgb BLACK = {0, 0, 0}, GRID = {226, 226, 226}, FRAME = {90, 90, 90}, TEACHER = {80, 80, 80},
                    LABEL = {110, 110, 110}, WHITE = {255, 255, 255};
static const sq_rgb PALETTE[MAX_SERIES] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40},
                                           {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {188, 189, 34}};

typedef struct {
    int left, right, top, bottom;
    double lx0, lx1, y0, y1;
} frame;

/* a pixel coordinate, kept within a margin around the image: a value far outside the frame (a
   result edited by hand, say) must not become an int overflow or a line of a billion steps */
static int clamp_px(double v) { return v >= -1000 ? v <= 2000 ? (int)lround(v) : 2000 : -1000; }
static int px(const frame *f, double x) { return clamp_px(f->left + (log10(x) - f->lx0) / (f->lx1 - f->lx0) * (f->right - f->left)); }
static int py(const frame *f, double y) { return clamp_px(f->bottom - (y - f->y0) / (f->y1 - f->y0) * (f->bottom - f->top)); }

static double metric_of(const sq_report_row *r, int use_top1) { return use_top1 ? r->top1 : r->agreement; }

/* seed means per (quantizer, bit-width), sorted by size */
static int collect(const sq_report_row *rows, int n, int use_top1, series *s)
{
    int ns = 0;
    for (int i = 0; i < n; i++) {
        const sq_report_row *r = &rows[i];
        double y = metric_of(r, use_top1);
        if (strcmp(r->role, "student") || strcmp(r->status, "ok") || !isfinite(y) || !(r->model_bytes > 0)) continue;
        int k = 0;
        while (k < ns && strcmp(s[k].name, r->quantizer)) k++;
        if (k == ns) {
            if (ns == MAX_SERIES) continue;
            memset(&s[ns], 0, sizeof s[ns]);
            snprintf(s[ns].name, sizeof s[ns].name, "%s", r->quantizer);
            ns++;
        }
        series *se = &s[k];
        int p = 0;
        while (p < se->npts && (se->wbits[p] != r->wbits || se->abits[p] != r->abits)) p++;
        if (p == se->npts) {
            if (p == MAX_POINTS) continue;
            se->wbits[p] = r->wbits;
            se->abits[p] = r->abits;
            se->npts++;
        }
        se->x[p] += r->model_bytes;
        se->y[p] += y;
        se->count[p]++;
    }
    for (int k = 0; k < ns; k++) {
        series *se = &s[k];
        for (int p = 0; p < se->npts; p++) { se->x[p] /= se->count[p]; se->y[p] /= se->count[p]; }
        for (int a = 1; a < se->npts; a++)   /* insertion sort by size */
            for (int b = a; b > 0 && se->x[b] < se->x[b - 1]; b--) {
                double tx = se->x[b], ty = se->y[b];
                int tw = se->wbits[b], ta = se->abits[b], tc = se->count[b];
                se->x[b] = se->x[b - 1]; se->y[b] = se->y[b - 1]; se->wbits[b] = se->wbits[b - 1];
                se->abits[b] = se->abits[b - 1]; se->count[b] = se->count[b - 1];
                se->x[b - 1] = tx; se->y[b - 1] = ty; se->wbits[b - 1] = tw; se->abits[b - 1] = ta; se->count[b - 1] = tc;
            }
    }
    return ns;
}

static void fmt_bytes(double v, char *buf, size_t n)
{
    if (v >= 1e9) snprintf(buf, n, "%gG", v / 1e9);
    else if (v >= 1e6) snprintf(buf, n, "%gM", v / 1e6);
    else if (v >= 1e3) snprintf(buf, n, "%gK", v / 1e3);
    else snprintf(buf, n, "%g", v);
}

static void x_axis(sq_img *im, const frame *f)
{
    double per_decade = (f->right - f->left) / (f->lx1 - f->lx0);
    int labelled_all = per_decade * log10(2.0) > 70;   /* room to label 1, 2 and 5 of each decade */
    for (int d = (int)floor(f->lx0); d <= (int)ceil(f->lx1); d++)
        for (int m = 1; m <= 9; m++) {
            double v = m * pow(10, d), lv = log10(v);
            if (lv < f->lx0 - 1e-9 || lv > f->lx1 + 1e-9) continue;
            int x = px(f, v), major = m == 1 || (labelled_all && (m == 2 || m == 5));
            if (major) sq_img_line(im, x, f->top, x, f->bottom, GRID, 1, 0);
            sq_img_line(im, x, f->bottom, x, f->bottom + (major ? 7 : 4), FRAME, 1, 0);
            if (!major) continue;
            char lab[32];
            fmt_bytes(v, lab, sizeof lab);
            sq_img_text(im, x - sq_text_width(lab, 2) / 2, f->bottom + 12, lab, BLACK, 2);
        }
}

static void y_axis(sq_img *im, const frame *f)
{
    double raw = (f->y1 - f->y0) / 6, mag = pow(10, floor(log10(raw))), step = mag;
    const double mult[] = {1, 2, 2.5, 5, 10};
    for (int i = 0; i < 5; i++)
        if (mult[i] * mag >= raw) { step = mult[i] * mag; break; }
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(step * pow(10, dec) - round(step * pow(10, dec))) > 1e-6) dec++;   /* 2.5, 0.25 */
    for (double v = ceil(f->y0 / step - 1e-9) * step; v <= f->y1 + 1e-9; v += step) {
        int y = py(f, v);
        sq_img_line(im, f->left, y, f->right, y, GRID, 1, 0);
        sq_img_line(im, f->left - 6, y, f->left, y, FRAME, 1, 0);
        char lab[32];
        snprintf(lab, sizeof lab, "%.*f", dec, fabs(v) < step * 1e-6 ? 0.0 : v);
        sq_img_text(im, f->left - 10 - sq_text_width(lab, 2), y - sq_text_height(2) / 2, lab, BLACK, 2);
    }
}

static void marker(sq_img *im, int x, int y, sq_rgb c)
{
    sq_img_fill(im, x - 4, y - 4, x + 4, y + 4, WHITE);
    sq_img_fill(im, x - 3, y - 3, x + 3, y + 3, c);
}

static void legend(sq_img *im, const frame *f, const series *s, int ns, int have_teacher)
{
    int rows = ns + have_teacher, w = 0;
    for (int k = 0; k < ns; k++) if (sq_text_width(s[k].name, 2) > w) w = sq_text_width(s[k].name, 2);
    if (have_teacher && sq_text_width("teacher", 2) > w) w = sq_text_width("teacher", 2);
    int bw = 12 + 30 + 10 + w + 12, bh = 10 + rows * 22 + 2;
    int x0 = f->right - 12 - bw, y0 = f->bottom - 12 - bh;
    sq_img_fill(im, x0, y0, x0 + bw, y0 + bh, WHITE);
    sq_img_frame(im, x0, y0, x0 + bw, y0 + bh, FRAME);
    for (int k = 0; k < rows; k++) {
        int y = y0 + 10 + k * 22 + 7, xs = x0 + 12;
        if (k < ns) {
            sq_img_line(im, xs, y, xs + 30, y, PALETTE[k], 2, 0);
            marker(im, xs + 15, y, PALETTE[k]);
            sq_img_text(im, xs + 40, y - 7, s[k].name, BLACK, 2);
        } else {
            sq_img_line(im, xs, y, xs + 30, y, TEACHER, 2, 5);
            sq_img_text(im, xs + 40, y - 7, "teacher", BLACK, 2);
        }
    }
}

sq_status sq_report_plot(const sq_report_row *rows, int n, const char *path)
{
    int use_top1 = 0, students = 0;
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].role, "student") && !strcmp(rows[i].status, "ok")) {
            if (!students++) use_top1 = 1;
            if (!isfinite(rows[i].top1)) use_top1 = 0;
        }
    series s[MAX_SERIES];
    int ns = collect(rows, n, use_top1, s);
    const sq_report_row *t = NULL;
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].role, "teacher") && isfinite(metric_of(&rows[i], use_top1))) { t = &rows[i]; break; }
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int p = 0; p < s[k].npts; p++) {
            xmin = fmin(xmin, s[k].x[p]); xmax = fmax(xmax, s[k].x[p]);
            ymin = fmin(ymin, s[k].y[p]); ymax = fmax(ymax, s[k].y[p]);
        }
    if (t) {
        double ty = metric_of(t, use_top1);
        ymin = fmin(ymin, ty);
        ymax = fmax(ymax, ty);
        if (t->model_bytes > 0) { xmin = fmin(xmin, t->model_bytes); xmax = fmax(xmax, t->model_bytes); }
    }
    if (!isfinite(xmin)) { xmin = 1e3; xmax = 1e6; }
    if (!isfinite(ymin)) { ymin = 0; ymax = 100; }
    double yr = fmax(ymax - ymin, 1.0);
    frame f = {.left = 100, .right = SQ_REPORT_W - 24, .top = 48, .bottom = SQ_REPORT_H - 72,
               .lx0 = log10(xmin) - 0.08, .lx1 = log10(xmax) + 0.08, .y0 = ymin - 0.1 * yr, .y1 = ymax + 0.1 * yr};
    if (f.lx1 - f.lx0 < 0.5) { double c = (f.lx0 + f.lx1) / 2; f.lx0 = c - 0.25; f.lx1 = c + 0.25; }
    if (use_top1 || t) { f.y0 = fmax(f.y0, 0); f.y1 = fmin(f.y1, 100.5); }
    /* sizes whose logarithm overflows, or metrics outside 0..100 that leave no range after the
       clipping above (a corrupt or hand-edited result), still give a drawable frame */
    if (!isfinite(f.lx0) || !isfinite(f.lx1)) { f.lx0 = 3; f.lx1 = 6; }
    if (!isfinite(f.y0) || !isfinite(f.y1) || !(f.y1 - f.y0 > 1e-6 * fmax(fabs(f.y0), fabs(f.y1)))) {
        f.y0 = 0;
        f.y1 = 100.5;
    }
    sq_img im;
    sq_img_init(&im, SQ_REPORT_W, SQ_REPORT_H, WHITE);
    x_axis(&im, &f);
    y_axis(&im, &f);
    sq_img_frame(&im, f.left, f.top, f.right, f.bottom, FRAME);
    const char *what = use_top1 ? "top-1 accuracy (%)" : "agreement with the teacher (%)";
    char title[128];
    snprintf(title, sizeof title, "%s%s%s vs model size", n ? rows[0].model : "", n ? ": " : "",
             use_top1 ? "top-1 accuracy" : "teacher agreement");
    sq_img_text(&im, (SQ_REPORT_W - sq_text_width(title, 2)) / 2, 16, title, BLACK, 2);
    const char *xl = "model size (bytes, log scale)";
    sq_img_text(&im, (f.left + f.right - sq_text_width(xl, 2)) / 2, f.bottom + 40, xl, BLACK, 2);
    sq_img_text_up(&im, 14, (f.top + f.bottom + sq_text_width(what, 2)) / 2, what, BLACK, 2);
    if (t) {
        int y = py(&f, metric_of(t, use_top1));
        sq_img_line(&im, f.left + 1, y, f.right - 1, y, TEACHER, 2, 6);
        if (t->model_bytes > 0) marker(&im, px(&f, t->model_bytes), y, TEACHER);
    }
    for (int k = 0; k < ns; k++) {   /* bit-width labels above the x axis, once per size */
        for (int p = 0; p < s[k].npts; p++) {
            int dup = 0;
            for (int j = 0; j < k && !dup; j++)
                for (int q = 0; q < s[j].npts; q++)
                    dup |= s[j].wbits[q] == s[k].wbits[p] && s[j].abits[q] == s[k].abits[p];
            if (dup) continue;
            char lab[16];
            snprintf(lab, sizeof lab, "W%dA%d", s[k].wbits[p], s[k].abits[p]);
            sq_img_text(&im, px(&f, s[k].x[p]) - sq_text_width(lab, 1) / 2, f.bottom - 12, lab, LABEL, 1);
        }
    }
    for (int k = 0; k < ns; k++) {
        for (int p = 1; p < s[k].npts; p++)
            sq_img_line(&im, px(&f, s[k].x[p - 1]), py(&f, s[k].y[p - 1]), px(&f, s[k].x[p]), py(&f, s[k].y[p]),
                        PALETTE[k], 2, 0);
        for (int p = 0; p < s[k].npts; p++) marker(&im, px(&f, s[k].x[p]), py(&f, s[k].y[p]), PALETTE[k]);
    }
    if (!ns) {
        const char *msg = "no finished students";
        sq_img_text(&im, (f.left + f.right - sq_text_width(msg, 2)) / 2, (f.top + f.bottom) / 2, msg, LABEL, 2);
    }
    legend(&im, &f, s, ns, t != NULL);
    sq_status st = sq_img_write_png(&im, path);
    sq_img_free(&im);
    return st;
}
