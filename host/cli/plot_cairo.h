/* plot_cairo.h: the drawing primitives of the report's figures (report_plot.c) on cairo: colours,
   text in DejaVu Sans through cairo's toy font API (drawn as glyphs, never interpreted), plot
   areas with their axes, ticks and grid, markers. Internal to host/cli. */
#ifndef SQAKD_CLI_PLOT_CAIRO_H
#define SQAKD_CLI_PLOT_CAIRO_H
#include <cairo/cairo.h>

typedef struct { double r, g, b; } rgb;
#define NPAL 10
static const rgb PALETTE[NPAL] = {{0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173},
                                  {0.839, 0.153, 0.157}, {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294},
                                  {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498}, {0.737, 0.741, 0.133},
                                  {0.090, 0.745, 0.812}};
static const rgb BLACK = {0, 0, 0}, GRID = {0.88, 0.88, 0.88}, FRAME = {0.35, 0.35, 0.35}, TEACHER = {0.3, 0.3, 0.3},
                 MUTED = {0.45, 0.45, 0.45};

/* a plot area (l, r, t, b in points) over data x0..x1 (log10 of the values when logx), y0..y1 */
typedef struct {
    double l, r, t, b;
    double x0, x1, y0, y1;
    int logx;
} axes;

/* the source colour; a series' colour and dash pattern (palette cycles get other dashes) */
void sq_plot_color(cairo_t *cr, rgb c);
void sq_plot_series_style(cairo_t *cr, int k);
/* text anchored at (x, y): ax 0 / 0.5 / 1 = left / centre / right of it, ay 0 / 0.5 / 1 = top /
   middle / baseline of capitals at y; vertical: rotated to read bottom to top */
void sq_plot_text(cairo_t *cr, double x, double y, const char *s, double size, double ax, double ay, int bold,
                  int vertical, rgb c);
double sq_plot_text_width(cairo_t *cr, const char *s, double size);
/* a device coordinate kept within reach of the page; data x, y to device coordinates */
double sq_plot_reach(double v);
double sq_plot_x(const axes *a, double v);
double sq_plot_y(const axes *a, double v);
/* the frame, the y grid with its labels; the x axis on a log scale (bytes) or of integers (epochs) */
void sq_plot_frame_grid_y(cairo_t *cr, const axes *a);
void sq_plot_x_axis_log(cairo_t *cr, const axes *a);
void sq_plot_x_axis_int(cairo_t *cr, const axes *a);
void sq_plot_frame_box(cairo_t *cr, const axes *a);
void sq_plot_clip_to(cairo_t *cr, const axes *a);
/* a filled circle with a white rim */
void sq_plot_marker(cairo_t *cr, double x, double y, rgb c);
/* the data range lo..hi padded by a tenth, at least min_span wide */
void sq_plot_padded(double *lo, double *hi, double min_span);

#endif
