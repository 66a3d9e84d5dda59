/* plot.c: the raster behind the report plot (see plot.h): drawing primitives, bitmap text, and PNG
   encoding with libpng into memory, then an atomic write. */
#include "plot.h"
#include "sqakd/safetensors.h"
#include <png.h>
#include <stdlib.h>
#include <string.h>

void sq_img_init(sq_img *im, int w, int h, sq_rgb bg)
{
    im->w = w;
    im->h = h;
    im->px = sq_xmalloc((size_t)w * h * 3);
    for (size_t i = 0; i < (size_t)w * h; i++) {
        im->px[3 * i] = bg.r;
        im->px[3 * i + 1] = bg.g;
        im->px[3 * i + 2] = bg.b;
    }
}

void sq_img_free(sq_img *im)
{
    free(im->px);
    im->px = NULL;
}

void sq_img_pixel(sq_img *im, int x, int y, sq_rgb c)
{
    if (x < 0 || y < 0 || x >= im->w || y >= im->h) return;
    uint8_t *p = im->px + 3 * ((size_t)y * im->w + x);
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
}

void sq_img_fill(sq_img *im, int x0, int y0, int x1, int y1, sq_rgb c)
{
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) sq_img_pixel(im, x, y, c);
}

void sq_img_frame(sq_img *im, int x0, int y0, int x1, int y1, sq_rgb c)
{
    sq_img_fill(im, x0, y0, x1, y0, c);
    sq_img_fill(im, x0, y1, x1, y1, c);
    sq_img_fill(im, x0, y0, x0, y1, c);
    sq_img_fill(im, x1, y0, x1, y1, c);
}

void sq_img_line(sq_img *im, int x0, int y0, int x1, int y1, sq_rgb c, int thick, int dash)
{
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy, k = 0, lo = -(thick - 1) / 2, hi = thick / 2;
    for (;;) {
        if (dash <= 0 || (k / dash) % 2 == 0)
            sq_img_fill(im, x0 + lo, y0 + lo, x0 + hi, y0 + hi, c);
        k++;
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * err;
        if (e2 >= dy) { err += dy; x0 += sx; }
        if (e2 <= dx) { err += dx; y0 += sy; }
    }
}

int sq_text_width(const char *s, int scale)
{
    int n = (int)strlen(s);
    return n ? (6 * n - 1) * scale : 0;
}

int sq_text_height(int scale) { return 7 * scale; }

void sq_img_text(sq_img *im, int x, int y, const char *s, sq_rgb c, int scale)
{
    for (; *s; s++, x += 6 * scale) {
        const uint8_t *g = sq_font5x7((unsigned char)*s);
        for (int r = 0; r < 8; r++)
            for (int col = 0; col < 5; col++)
                if (g[r] & (0x10 >> col))
                    sq_img_fill(im, x + col * scale, y + r * scale, x + col * scale + scale - 1,
                                y + r * scale + scale - 1, c);
    }
}

void sq_img_text_up(sq_img *im, int x, int y, const char *s, sq_rgb c, int scale)
{
    /* glyph row r becomes column x + r, glyph column col becomes row y - col */
    for (; *s; s++, y -= 6 * scale) {
        const uint8_t *g = sq_font5x7((unsigned char)*s);
        for (int r = 0; r < 8; r++)
            for (int col = 0; col < 5; col++)
                if (g[r] & (0x10 >> col))
                    sq_img_fill(im, x + r * scale, y - col * scale - scale + 1, x + r * scale + scale - 1,
                                y - col * scale, c);
    }
}

typedef struct { uint8_t *buf; size_t len, cap; } membuf;

static void png_mem_write(png_structp png, png_bytep data, png_size_t n)
{
    membuf *m = png_get_io_ptr(png);
    if (m->len + n > m->cap) {
        m->cap = (m->len + n) * 2;
        m->buf = realloc(m->buf, m->cap);
        if (!m->buf) png_error(png, "out of memory");
    }
    memcpy(m->buf + m->len, data, n);
    m->len += n;
}

static void png_mem_flush(png_structp png) { (void)png; }

sq_status sq_img_write_png(const sq_img *im, const char *path)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    membuf m = {0};
    png_bytep *rows = sq_xcalloc(im->h, sizeof *rows);
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(m.buf);
        free(rows);
        sq_set_error("cannot encode the PNG for %s", path);
        return SQ_ENOMEM;
    }
    png_set_write_fn(png, &m, png_mem_write, png_mem_flush);
    png_set_IHDR(png, info, im->w, im->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    for (int y = 0; y < im->h; y++) rows[y] = im->px + (size_t)y * im->w * 3;
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    sq_status st = sq_write_file_atomic(path, m.buf, m.len);
    free(m.buf);
    return st;
}
