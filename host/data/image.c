/* image.c: PNG (libpng) and JPEG (libjpeg) decoding to 8-bit gray or RGB pixels, header probing,
   and the torchvision/PIL resize with centre crop. Colour conversions, as PIL's convert("RGB"):
   palette expanded, gray + alpha and RGBA lose their alpha (no compositing), 16-bit samples keep
   their high byte (as PIL does for colour; a 16-bit greyscale PNG, which PIL reads as 32-bit
   integers and clips at 255, differs), CMYK and YCCK JPEG (YCCK -> CMYK by libjpeg) give
   R = (255 - C)(255 - K) / 255 with PIL's integer rounding, where a file with an Adobe APP14
   marker (Photoshop's) stores inverted CMYK, read as C = 255 - stored (the convention of
   libjpeg's djpeg users, Chromium, libvips; PIL assumes it for every CMYK JPEG). Library errors
   never reach exit(): libpng's error callback and libjpeg's error_exit longjmp back here and the
   file is reported as corrupt. libjpeg warnings (e.g. premature end of data) also count as
   corruption, so a truncated JPEG is an error rather than a silently grey image; decoding stops at
   the first one, so a short file costs little whatever size it declares. The size in the header
   (PNG IHDR, JPEG SOF) is checked against SQ_IMAGE_MAX_PIXELS before any pixel memory is
   allocated or anything decoded: a tiny file declaring 30000x30000 pixels is refused at once.
   Paths and library messages are quoted through sq_printable (a file name may hold anything). */
#include "data/data_internal.h"

#include <errno.h>
#include <math.h>
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

/* pix NULL: the header only (size, and c = 1 for a gray or gray + alpha image, else 3) */
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
    if (!pix) {
        int ct = png_get_color_type(png, info);
        *h = (int)dh;
        *w = (int)dw;
        *c = ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA ? 1 : 3;
        png_destroy_read_struct(&png, &info, NULL);
        free(ctx);
        return SQ_OK;
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
    uint8_t *row; /* one CMYK scanline */
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

/* PIL's cmyk2rgb (libImaging/Convert.c): v = (255 - K) - round(C * (255 - K) / 255) */
static inline uint8_t cmyk_channel(int c, int nk)
{
    int t = c * nk + 128;
    int v = nk - (((t >> 8) + t) >> 8);
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* pix NULL: the header only (size, and c = 1 for one component, 3 for YCbCr/RGB/CMYK/YCCK) */
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
        free(ctx->row);
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
    int cmyk = 0;
    if (ctx->ci.num_components == 1) {
        ctx->ci.out_color_space = JCS_GRAYSCALE;
    } else if (ctx->ci.num_components == 3 &&
               (ctx->ci.jpeg_color_space == JCS_YCbCr || ctx->ci.jpeg_color_space == JCS_RGB)) {
        ctx->ci.out_color_space = JCS_RGB;
    } else if (ctx->ci.num_components == 4 &&
               (ctx->ci.jpeg_color_space == JCS_CMYK || ctx->ci.jpeg_color_space == JCS_YCCK)) {
        ctx->ci.out_color_space = JCS_CMYK; /* libjpeg converts YCCK to CMYK */
        cmyk = 1;
    } else {
        snprintf(ctx->msg, sizeof ctx->msg, "unsupported colour space %d with %d components",
                 (int)ctx->ci.jpeg_color_space, ctx->ci.num_components);
        longjmp(ctx->jb, 1);
    }
    if (!pix) {
        *h = (int)ctx->ci.image_height;
        *w = (int)ctx->ci.image_width;
        *c = ctx->ci.num_components == 1 ? 1 : 3;
        jpeg_destroy_decompress(&ctx->ci);
        free(ctx);
        return SQ_OK;
    }
    jpeg_start_decompress(&ctx->ci);
    int ow = (int)ctx->ci.output_width, oh = (int)ctx->ci.output_height;
    int oc = cmyk ? 3 : ctx->ci.output_components;
    size_t stride = (size_t)ow * oc;
    ctx->pix = malloc((size_t)oh * stride);
    if (cmyk) ctx->row = malloc((size_t)ow * 4);
    if (!ctx->pix || (cmyk && !ctx->row)) {
        snprintf(ctx->msg, sizeof ctx->msg, "out of memory for %dx%d pixels", ow, oh);
        longjmp(ctx->jb, 1);
    }
    const int inverted = ctx->ci.saw_Adobe_marker;
    while (ctx->ci.output_scanline < ctx->ci.output_height) {
        uint8_t *dst = ctx->pix + (size_t)ctx->ci.output_scanline * stride;
        JSAMPROW row = cmyk ? ctx->row : dst;
        jpeg_read_scanlines(&ctx->ci, &row, 1);
        if (!cmyk) continue;
        for (int x = 0; x < ow; x++) {
            const uint8_t *q = ctx->row + 4 * (size_t)x;
            int k = inverted ? q[3] : 255 - q[3]; /* 255 - K */
            for (int ch = 0; ch < 3; ch++) dst[3 * (size_t)x + ch] = cmyk_channel(inverted ? 255 - q[ch] : q[ch], k);
        }
    }
    jpeg_finish_decompress(&ctx->ci);
    jpeg_destroy_decompress(&ctx->ci);
    *pix = ctx->pix;
    *h = oh;
    *w = ow;
    *c = oc;
    free(ctx->row);
    free(ctx);
    return SQ_OK;
}

/* decode (pix set) or probe (pix NULL) by the file's magic bytes */
static sq_status read_image(const char *path, uint8_t **pix, int *h, int *w, int *c)
{
    if (pix) *pix = NULL;
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

sq_status sq_image_decode(const char *path, uint8_t **pix, int *h, int *w, int *c)
{
    return read_image(path, pix, h, w, c);
}

sq_status sq_image_probe(const char *path, int *h, int *w, int *c)
{
    return read_image(path, NULL, h, w, c);
}

/* ---- resize (PIL's Image.resize(BILINEAR), libImaging/Resample.c) and centre crop ---- */

#define RS_PRECISION_BITS (32 - 8 - 2)

/* PIL's coefficients of output positions first..first+count-1 of out_size along an axis of
   in_size (the box is the whole axis), normalized to fixed point: bounds[2j] = first input
   index, bounds[2j + 1] = how many; k[j * ksize ...]. Returns ksize. */
static int rs_coeffs(int in_size, int out_size, int first, int count, int **bounds, int32_t **kk)
{
    double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale; /* bilinear: support 1 */
    int ksize = (int)ceil(support) * 2 + 1;
    *bounds = sq_xmalloc((size_t)count * 2 * sizeof(int));
    *kk = sq_xmalloc((size_t)count * ksize * sizeof(int32_t));
    double *k = sq_xmalloc((size_t)ksize * sizeof(double));
    for (int j = 0; j < count; j++) {
        int xx = first + j;
        double center = 0.0 + (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        int x;
        for (x = 0; x < xmax; x++) {
            double t = (x + xmin - center + 0.5) * ss;
            if (t < 0.0) t = -t;
            double wgt = t < 1.0 ? 1.0 - t : 0.0;
            k[x] = wgt;
            ww += wgt;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++) k[x] = 0;
        for (x = 0; x < ksize; x++)
            (*kk)[(size_t)j * ksize + x] = k[x] < 0 ? (int32_t)(-0.5 + k[x] * (1 << RS_PRECISION_BITS))
                                                    : (int32_t)(0.5 + k[x] * (1 << RS_PRECISION_BITS));
        (*bounds)[2 * j] = xmin;
        (*bounds)[2 * j + 1] = xmax;
    }
    free(k);
    return ksize;
}

static inline uint8_t rs_clip8(int32_t in)
{
    if (in >= (1 << RS_PRECISION_BITS << 8)) return 255;
    if (in <= 0) return 0;
    return (uint8_t)(in >> RS_PRECISION_BITS);
}

/* Python's round(d / 2.0) for an integer d (half to even) */
static int half_even(int d)
{
    int q = d >= 0 ? d / 2 : -((-d) / 2);
    if (d % 2 == 0) return q;
    /* d / 2 is q + 0.5 (d > 0) or q - 0.5 (d < 0): round to the even neighbour */
    int lo = d > 0 ? q : q - 1, hi = lo + 1;
    return lo % 2 == 0 ? lo : hi;
}

/* torchvision's resize target for Resize(s) of an sh x sw image, and CenterCrop's start of the
   crop on each axis in the resized image (negative: zero padding) */
static void rs_plan(int sh, int sw, int th, int tw, int *nh, int *nw, int *top, int *left)
{
    int s = th < tw ? th : tw;
    if (sw <= sh) {
        *nw = s;
        *nh = (int)((double)s * sh / sw);
    } else {
        *nh = s;
        *nw = (int)((double)s * sw / sh);
    }
    /* CenterCrop: pad an axis shorter than the crop by (crop - size) // 2 before, then crop at
       round((size - crop) / 2) (0 once padded to the crop size) */
    *top = th > *nh ? -((th - *nh) / 2) : half_even(*nh - th);
    *left = tw > *nw ? -((tw - *nw) / 2) : half_even(*nw - tw);
}

sq_status sq_image_resize_crop(const uint8_t *src, int c, int sh, int sw, uint8_t *dst, int th, int tw)
{
    if (!src || !dst || c < 1 || sh < 1 || sw < 1 || th < 1 || tw < 1) {
        sq_set_error("resize: bad arguments (%d planes of %dx%d to %dx%d)", c, sh, sw, th, tw);
        return SQ_EARG;
    }
    int nh, nw, top, left;
    rs_plan(sh, sw, th, tw, &nh, &nw, &top, &left);
    if (nh < 1 || nw < 1) {
        sq_set_error("resize: %dx%d cannot be resized to a shorter side of %d", sh, sw, th < tw ? th : tw);
        return SQ_EARG;
    }
    /* the output window inside the resized image: rows y0..y1-1, columns x0..x1-1 */
    int y0 = top < 0 ? 0 : top, y1 = top + th > nh ? nh : top + th;
    int x0 = left < 0 ? 0 : left, x1 = left + tw > nw ? nw : left + tw;
    const size_t splane = (size_t)sh * sw, dplane = (size_t)th * tw;
    memset(dst, 0, (size_t)c * dplane);
    if (y1 <= y0 || x1 <= x0) return SQ_OK;
    const int need_h = nw != sw, need_v = nh != sh;
    int *bh = NULL, *bv = NULL;
    int32_t *kh = NULL, *kv = NULL;
    int ksh = need_h ? rs_coeffs(sw, nw, x0, x1 - x0, &bh, &kh) : 0;
    int ksv = need_v ? rs_coeffs(sh, nh, y0, y1 - y0, &bv, &kv) : 0;
    /* input rows the vertical pass reads */
    int r0 = need_v ? bv[0] : y0, r1 = need_v ? bv[2 * (y1 - y0 - 1)] + bv[2 * (y1 - y0 - 1) + 1] : y1;
    const int tw_ = x1 - x0, trows = r1 - r0;
    uint8_t *tmp = sq_xmalloc((size_t)trows * tw_ + 1);
    for (int ch = 0; ch < c; ch++) {
        const uint8_t *in = src + (size_t)ch * splane;
        uint8_t *out = dst + (size_t)ch * dplane;
        /* horizontal pass over the rows needed: tmp[r - r0][x - x0] */
        for (int r = r0; r < r1; r++) {
            const uint8_t *row = in + (size_t)r * sw;
            uint8_t *trow = tmp + (size_t)(r - r0) * tw_;
            if (!need_h) {
                memcpy(trow, row + x0, (size_t)tw_);
                continue;
            }
            for (int j = 0; j < tw_; j++) {
                const int32_t *k = kh + (size_t)j * ksh;
                int xmin = bh[2 * j], xmax = bh[2 * j + 1];
                int32_t ss = 1 << (RS_PRECISION_BITS - 1);
                for (int x = 0; x < xmax; x++) ss += row[x + xmin] * k[x];
                trow[j] = rs_clip8(ss);
            }
        }
        /* vertical pass into the crop window */
        for (int i = 0; i < y1 - y0; i++) {
            uint8_t *orow = out + (size_t)(y0 + i - top) * tw + (x0 - left);
            if (!need_v) {
                memcpy(orow, tmp + (size_t)(y0 + i - r0) * tw_, (size_t)tw_);
                continue;
            }
            const int32_t *k = kv + (size_t)i * ksv;
            int ymin = bv[2 * i] - r0, ymax = bv[2 * i + 1];
            for (int j = 0; j < tw_; j++) {
                int32_t ss = 1 << (RS_PRECISION_BITS - 1);
                for (int y = 0; y < ymax; y++) ss += tmp[(size_t)(y + ymin) * tw_ + j] * k[y];
                orow[j] = rs_clip8(ss);
            }
        }
    }
    free(tmp);
    free(bh);
    free(kh);
    free(bv);
    free(kv);
    return SQ_OK;
}
