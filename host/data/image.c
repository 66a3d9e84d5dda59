/* image.c: PNG (libpng) and JPEG (libjpeg) decoding to 8-bit gray or RGB pixels. Library errors
   never reach exit(): libpng's error callback and libjpeg's error_exit longjmp back here and the
   file is reported as corrupt. libjpeg warnings (e.g. premature end of data) also count as
   corruption, so a truncated JPEG is an error rather than a silently grey image; decoding stops at
   the first one, so a short file costs little whatever size it declares. The size in the header
   (PNG IHDR, JPEG SOF) is checked against SQ_IMAGE_MAX_PIXELS before any pixel memory is
   allocated or anything decoded: a tiny file declaring 30000x30000 pixels is refused at once.
   Paths and library messages are quoted through sq_printable (a file name may hold anything). */
#include "data/data_internal.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which needs FILE */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

/* All state touched after setjmp lives on the heap behind pointers that setjmp's caller never
   modifies, so it is well defined after a longjmp. */
typedef struct png_ctx {
    char msg[256];
    uint8_t *pix;
    png_bytep *rows;
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_ctx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

/* The refusal of an image whose header declares more than SQ_IMAGE_MAX_PIXELS pixels. */
static sq_status too_big(const char *path, const char *kind, unsigned long long w, unsigned long long h)
{
    char pp[512];
    sq_set_error("image '%s': the %s header declares %llux%llu = %llu pixels, more than the budget of "
                 "%llu (8192x8192) pixels per image; refused before decoding (resize it first)",
                 sq_printable(path, pp, sizeof pp), kind, w, h, w * h,
                 (unsigned long long)SQ_IMAGE_MAX_PIXELS);
    return SQ_EFORMAT;
}

static sq_status decode_png(const char *path, FILE *fp, uint8_t **pix, int *h, int *w, int *c)
{
    png_ctx *ctx = sq_xcalloc(1, sizeof *ctx);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx, png_on_error,
                                             png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    char pp[512], pm[300];
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        free(ctx);
        sq_set_error("cannot decode PNG '%s': libpng initialisation failed",
                     sq_printable(path, pp, sizeof pp));
        return SQ_ENOMEM;
    }
    if (setjmp(png_jmpbuf(png))) {
        sq_set_error("cannot decode PNG '%s': %s; the file is corrupt or truncated",
                     sq_printable(path, pp, sizeof pp),
                     sq_printable(ctx->msg[0] ? ctx->msg : "libpng error", pm, sizeof pm));
        png_destroy_read_struct(&png, &info, NULL);
        free(ctx->pix);
        free(ctx->rows);
        free(ctx);
        return SQ_EFORMAT;
    }
    png_init_io(png, fp);
    png_read_info(png, info);   /* IHDR and the chunks before the image data: no pixels yet */
    png_uint_32 dw = png_get_image_width(png, info), dh = png_get_image_height(png, info);
    if ((uint64_t)dw * dh > SQ_IMAGE_MAX_PIXELS) {
        png_destroy_read_struct(&png, &info, NULL);
        free(ctx);
        return too_big(path, "PNG", dw, dh);
    }
    png_set_expand(png);      /* palette -> RGB, gray < 8 bit -> 8 bit, tRNS -> alpha */
    png_set_strip_16(png);    /* 16-bit -> 8-bit */
    png_set_strip_alpha(png); /* RGBA -> RGB, gray + alpha -> gray */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    png_uint_32 pw = png_get_image_width(png, info), ph = png_get_image_height(png, info);
    int ch = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if ((ch != 1 && ch != 3) || rowbytes != (size_t)pw * ch) {
        snprintf(ctx->msg, sizeof ctx->msg, "unsupported layout (%d channels)", ch);
        png_longjmp(png, 1);
    }
    ctx->pix = malloc((size_t)ph * rowbytes);
    ctx->rows = malloc((size_t)ph * sizeof *ctx->rows);
    if (!ctx->pix || !ctx->rows) {
        snprintf(ctx->msg, sizeof ctx->msg, "out of memory for %ux%u pixels", pw, ph);
        png_longjmp(png, 1);
    }
    for (png_uint_32 y = 0; y < ph; y++) ctx->rows[y] = ctx->pix + (size_t)y * rowbytes;
    png_read_image(png, ctx->rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    *pix = ctx->pix;
    *h = (int)ph;
    *w = (int)pw;
    *c = ch;
    free(ctx->rows);
    free(ctx);
    return SQ_OK;
}

typedef struct jpeg_ctx {
    struct jpeg_decompress_struct ci;
    struct jpeg_error_mgr err;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    uint8_t *pix;
} jpeg_ctx;

static void jpeg_on_error_exit(j_common_ptr ci)
{
    jpeg_ctx *ctx = (jpeg_ctx *)ci->client_data;
    ci->err->format_message(ci, ctx->msg);
    longjmp(ctx->jb, 1);
}

/* Warnings (level -1) stop the decoding as errors do: they mean corrupt or missing data, and
   going on would cost the time of decoding every declared pixel from nothing. Trace messages
   (level >= 0) are ignored. */
static void jpeg_on_emit(j_common_ptr ci, int level)
{
    if (level < 0) jpeg_on_error_exit(ci);
}

static void jpeg_no_output(j_common_ptr ci) { (void)ci; }

static sq_status decode_jpeg(const char *path, FILE *fp, uint8_t **pix, int *h, int *w, int *c)
{
    jpeg_ctx *ctx = sq_xcalloc(1, sizeof *ctx);
    ctx->ci.err = jpeg_std_error(&ctx->err);
    ctx->err.error_exit = jpeg_on_error_exit;
    ctx->err.emit_message = jpeg_on_emit;
    ctx->err.output_message = jpeg_no_output;
    ctx->ci.client_data = ctx;
    char pp[512], pm[JMSG_LENGTH_MAX + 64];
    if (setjmp(ctx->jb)) {
        sq_set_error("cannot decode JPEG '%s': %s; the file is corrupt or truncated",
                     sq_printable(path, pp, sizeof pp),
                     sq_printable(ctx->msg[0] ? ctx->msg : "libjpeg error", pm, sizeof pm));
        jpeg_destroy_decompress(&ctx->ci);
        free(ctx->pix);
        free(ctx);
        return SQ_EFORMAT;
    }
    jpeg_create_decompress(&ctx->ci);
    ctx->ci.client_data = ctx;
    jpeg_stdio_src(&ctx->ci, fp);
    jpeg_read_header(&ctx->ci, TRUE);   /* up to the SOF and scan header: no pixels yet */
    if ((uint64_t)ctx->ci.image_width * ctx->ci.image_height > SQ_IMAGE_MAX_PIXELS) {
        sq_status st = too_big(path, "JPEG", ctx->ci.image_width, ctx->ci.image_height);
        jpeg_destroy_decompress(&ctx->ci);
        free(ctx);
        return st;
    }
    if (ctx->ci.num_components == 1) {
        ctx->ci.out_color_space = JCS_GRAYSCALE;
    } else if (ctx->ci.jpeg_color_space == JCS_YCbCr || ctx->ci.jpeg_color_space == JCS_RGB) {
        ctx->ci.out_color_space = JCS_RGB;
    } else {
        snprintf(ctx->msg, sizeof ctx->msg, "unsupported colour space %d (CMYK/YCCK?)",
                 (int)ctx->ci.jpeg_color_space);
        longjmp(ctx->jb, 1);
    }
    jpeg_start_decompress(&ctx->ci);
    int ow = (int)ctx->ci.output_width, oh = (int)ctx->ci.output_height;
    int oc = ctx->ci.output_components;
    size_t stride = (size_t)ow * oc;
    ctx->pix = malloc((size_t)oh * stride);
    if (!ctx->pix) {
        snprintf(ctx->msg, sizeof ctx->msg, "out of memory for %dx%d pixels", ow, oh);
        longjmp(ctx->jb, 1);
    }
    while (ctx->ci.output_scanline < ctx->ci.output_height) {
        JSAMPROW row = ctx->pix + (size_t)ctx->ci.output_scanline * stride;
        jpeg_read_scanlines(&ctx->ci, &row, 1);
    }
    jpeg_finish_decompress(&ctx->ci);
    jpeg_destroy_decompress(&ctx->ci);
    *pix = ctx->pix;
    *h = oh;
    *w = ow;
    *c = oc;
    free(ctx);
    return SQ_OK;
}

sq_status sq_image_decode(const char *path, uint8_t **pix, int *h, int *w, int *c)
{
    *pix = NULL;
    FILE *fp = fopen(path, "rb");
    char pp[512];
    if (!fp) {
        sq_set_error("cannot open image '%s': %s", sq_printable(path, pp, sizeof pp), strerror(errno));
        return SQ_EIO;
    }
    unsigned char m[8] = {0};
    size_t k = fread(m, 1, sizeof m, fp);
    rewind(fp);
    sq_status st;
    if (k == 8 && png_sig_cmp(m, 0, 8) == 0) {
        st = decode_png(path, fp, pix, h, w, c);
    } else if (k >= 3 && m[0] == 0xFF && m[1] == 0xD8 && m[2] == 0xFF) {
        st = decode_jpeg(path, fp, pix, h, w, c);
    } else {
        sq_set_error("image '%s' is neither PNG nor JPEG (first bytes %02x %02x %02x %02x); the "
                     "file is corrupt or of another format", sq_printable(path, pp, sizeof pp), m[0], m[1],
                     m[2], m[3]);
        st = SQ_EFORMAT;
    }
    fclose(fp);
    return st;
}
