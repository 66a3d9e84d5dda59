/* plot_cairo.c: the drawing primitives of the report's figures (plot_cairo.h). */
#include "plot_cairo.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *FONT = "DejaVu Sans";

void sq_plot_color(cairo_t *cr, rgb c) { cairo_set_source_rgb(cr, c.r, c.g, c.b); }

/* a dash pattern per palette cycle, so that more series than colours stay apart */
void sq_plot_series_style(cairo_t *cr, int k)
{
    static const double dashes[][2] = {{0, 0}, {6, 3}, {2, 2}, {8, 2}};
    sq_plot_color(cr, PALETTE[k % NPAL]);
    int d = (k / NPAL) % 4;
    cairo_set_dash(cr, dashes[d], d ? 2 : 0, 0);
}

/* text anchored at (x, y): ax 0 / 0.5 / 1 = left / centre / right of it, ay 0 / 0.5 / 1 = top /
   middle / baseline of capitals at y; vertical: rotated to read bottom to top */
void sq_plot_text(cairo_t *cr, double x, double y, const char *s, double size, double ax, double ay, int bold,
                  int vertical, rgb c)
{
    cairo_save(cr);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_translate(cr, x, y);
    if (vertical) cairo_rotate(cr, -M_PI / 2);
    double cap = 0.73 * size;   /* DejaVu Sans' capital height */
    cairo_move_to(cr, -ax * e.x_advance, (1 - ay) * cap);
    sq_plot_color(cr, c);
    cairo_show_text(cr, s);
    cairo_restore(cr);
}

double sq_plot_text_width(cairo_t *cr, const char *s, double size)
{
    cairo_save(cr);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_restore(cr);
    return e.x_advance;
}


/* a device coordinate kept within reach of the page (data of any size stays drawable) */
double sq_plot_reach(double v)
{
    if (!(v > -1e4)) return -1e4;   /* NAN too */
    return v > 1e4 ? 1e4 : v;
}
double sq_plot_x(const axes *a, double v)
{
    double u = a->logx ? log10(v) : v;
    return sq_plot_reach(a->l + (u - a->x0) / (a->x1 - a->x0) * (a->r - a->l));
}
double sq_plot_y(const axes *a, double v) { return sq_plot_reach(a->b - (v - a->y0) / (a->y1 - a->y0) * (a->b - a->t)); }

/* a tick step of about (hi - lo) / target from 1, 2, 2.5, 5 x 10^k (integers only: 1, 2, 5);
   0 when there is no sane one */
static double nice_step(double lo, double hi, int target, int integer)
{
    double raw = (hi - lo) / target;
    if (!(raw > 0) || !isfinite(raw)) return 0;
    double mag = pow(10, floor(log10(raw)));
    const double m[] = {1, 2, 2.5, 5, 10};
    for (int i = 0; i < 5; i++) {
        if (integer && m[i] == 2.5) continue;
        if (m[i] * mag >= raw) {
            double s = m[i] * mag;
            return integer && s < 1 ? 1 : s;
        }
    }
    return 10 * mag;
}

/* decimals that print every multiple of step exactly */
static int decimals(double step)
{
    int d = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (d < 12 && fabs(step * pow(10, d) - round(step * pow(10, d))) > 1e-6) d++;   /* 2.5, 0.25 */
    return d;
}

void sq_plot_frame_grid_y(cairo_t *cr, const axes *a)
{
    double step = nice_step(a->y0, a->y1, 6, 0);
    if (step > 0 && (a->y1 - a->y0) / step < 64) {
        int dec = decimals(step);
        for (double v = ceil(a->y0 / step - 1e-9) * step; v <= a->y1 + 1e-9 * step; v += step) {
            double y = sq_plot_y(a, v);
            sq_plot_color(cr, GRID);
            cairo_set_line_width(cr, 0.6);
            cairo_move_to(cr, a->l, y);
            cairo_line_to(cr, a->r, y);
            cairo_stroke(cr);
            sq_plot_color(cr, FRAME);
            cairo_set_line_width(cr, 0.8);
            cairo_move_to(cr, a->l - 4, y);
            cairo_line_to(cr, a->l, y);
            cairo_stroke(cr);
            char lab[64];
            snprintf(lab, sizeof lab, "%.*f", dec, fabs(v) < step * 1e-6 ? 0.0 : v);
            sq_plot_text(cr, a->l - 7, y, lab, 9, 1, 0.5, 0, 0, BLACK);
        }
    }
}

static void fmt_bytes(double v, char *buf, size_t n)
{
    if (v >= 1e9) snprintf(buf, n, "%gG", v / 1e9);
    else if (v >= 1e6) snprintf(buf, n, "%gM", v / 1e6);
    else if (v >= 1e3) snprintf(buf, n, "%gK", v / 1e3);
    else snprintf(buf, n, "%g", v);
}

/* an x tick at x: a major one (5 pt, with its grid line across the axes) or a minor one (3 pt) */
static void x_tick(cairo_t *cr, const axes *a, double x, int major)
{
    if (major) {
        sq_plot_color(cr, GRID);
        cairo_set_line_width(cr, 0.6);
        cairo_move_to(cr, x, a->t);
        cairo_line_to(cr, x, a->b);
        cairo_stroke(cr);
    }
    sq_plot_color(cr, FRAME);
    cairo_set_line_width(cr, 0.8);
    cairo_move_to(cr, x, a->b);
    cairo_line_to(cr, x, a->b + (major ? 5 : 3));
    cairo_stroke(cr);
}

/* a log axis: a tick at every 1..9 x 10^d, grid lines and labels at 1, and with room at 2 and 5,
   or at every tick (a range of less than about a decade) */
void sq_plot_x_axis_log(cairo_t *cr, const axes *a)
{
    double per_decade = (a->r - a->l) / (a->x1 - a->x0);
    int every = per_decade * log10(10.0 / 9) > 40, all = per_decade * log10(2.0) > 45;
    if (!(a->x1 - a->x0 < 400)) return;
    for (int d = (int)floor(a->x0); d <= (int)ceil(a->x1); d++)
        for (int m = 1; m <= 9; m++) {
            double lv = log10((double)m) + d;
            if (lv < a->x0 - 1e-9 || lv > a->x1 + 1e-9) continue;
            double x = sq_plot_x(a, pow(10, lv));
            int major = m == 1 || every || (all && (m == 2 || m == 5));
            x_tick(cr, a, x, major);
            if (!major) continue;
            char lab[64];
            fmt_bytes(m * pow(10, d), lab, sizeof lab);
            sq_plot_text(cr, x, a->b + 9, lab, 9, 0.5, 0, 0, 0, BLACK);
        }
}

/* a linear integer axis (epochs) */
void sq_plot_x_axis_int(cairo_t *cr, const axes *a)
{
    double step = nice_step(a->x0, a->x1, 6, 1);
    if (!(step > 0) || (a->x1 - a->x0) / step > 64) return;
    for (double v = ceil(a->x0 / step - 1e-9) * step; v <= a->x1 + 1e-9; v += step) {
        if (v < 1) continue;
        double x = sq_plot_x(a, v);
        x_tick(cr, a, x, 1);
        char lab[32];
        snprintf(lab, sizeof lab, "%.0f", v);
        sq_plot_text(cr, x, a->b + 9, lab, 9, 0.5, 0, 0, 0, BLACK);
    }
}

void sq_plot_frame_box(cairo_t *cr, const axes *a)
{
    sq_plot_color(cr, FRAME);
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, a->l, a->t, a->r - a->l, a->b - a->t);
    cairo_stroke(cr);
}

void sq_plot_clip_to(cairo_t *cr, const axes *a)
{
    cairo_rectangle(cr, a->l, a->t, a->r - a->l, a->b - a->t);
    cairo_clip(cr);
}

void sq_plot_marker(cairo_t *cr, double x, double y, rgb c)
{
    cairo_save(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_new_sub_path(cr);
    cairo_arc(cr, x, y, 3.6, 0, 2 * M_PI);
    sq_plot_color(cr, c);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    cairo_restore(cr);
}

/* the data range lo..hi (with the values given) padded by a tenth, at least min_span wide */
void sq_plot_padded(double *lo, double *hi, double min_span)
{
    if (!isfinite(*lo) || !isfinite(*hi)) { *lo = 0; *hi = 1; }
    double span = *hi - *lo;
    if (!isfinite(span)) { *lo = -1e300; *hi = 1e300; return; }
    if (span < min_span) {
        double c = (*lo + *hi) / 2;
        *lo = c - min_span / 2;
        *hi = c + min_span / 2;
        span = min_span;
    }
    *lo -= 0.1 * span;
    *hi += 0.1 * span;
}

