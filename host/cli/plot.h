/* plot.h: a small RGB raster for the report plot: pixels, thick and dashed lines, rectangles,
   text in a built-in 5x7 bitmap font (scaled, horizontal or rotated), and PNG output (libpng,
   written atomically). */
#ifndef SQAKD_PLOT_H
#define SQAKD_PLOT_H
#include "sqakd/common.h"

typedef struct sq_rgb { uint8_t r, g, b; } sq_rgb;

typedef struct sq_img {
    int w, h;
    uint8_t *px;   /* (h, w, 3) */
} sq_img;

void sq_img_init(sq_img *im, int w, int h, sq_rgb bg);
void sq_img_free(sq_img *im);
void sq_img_pixel(sq_img *im, int x, int y, sq_rgb c);   /* clipped */
void sq_img_fill(sq_img *im, int x0, int y0, int x1, int y1, sq_rgb c);   /* inclusive corners */
void sq_img_frame(sq_img *im, int x0, int y0, int x1, int y1, sq_rgb c);
/* a line of the given thickness; dash > 0 draws dash pixels on, dash off */
void sq_img_line(sq_img *im, int x0, int y0, int x1, int y1, sq_rgb c, int thick, int dash);
/* text with its top-left corner at (x, y), each font pixel scale x scale */
void sq_img_text(sq_img *im, int x, int y, const char *s, sq_rgb c, int scale);
/* text rotated 90 degrees counter-clockwise (reads bottom to top), bottom-left corner at (x, y) */
void sq_img_text_up(sq_img *im, int x, int y, const char *s, sq_rgb c, int scale);
int sq_text_width(const char *s, int scale);    /* 6 * scale per character, less the last gap */
int sq_text_height(int scale);                  /* 7 * scale (capitals; descenders go one below) */
sq_status sq_img_write_png(const sq_img *im, const char *path);

/* the 8 row bitmaps of character c (7 rows and a descender row; font5x7.c) */
const uint8_t *sq_font5x7(int c);
#endif
