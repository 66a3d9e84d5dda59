/* make_corpus.c: writes the fuzz seed corpora, tests/fuzz/corpus/<harness>/ (`make fuzz-corpus`):
   small valid files of each format, written by the project's own writers (sq_st_write, sq_jbuf,
   sq_sweep_to_json, sq_onnx_write, sq_npy_write), libpng, libjpeg and zlib, models and tensors of
   ONNX's backend tests (libonnx-testdata, when installed), plus a few edge cases (truncated, trailing bytes,
   empty, odd but legal layouts). Deterministic: running it again gives the same bytes. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include "cli/sweep.h"
#include "sqakd/json.h"
#include "sqakd/onnx.h"
#include "sqakd/safetensors.h"

static const char *g_out;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("make_corpus: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void path_of(char *p, size_t n, const char *harness, const char *name)
{
    snprintf(p, n, "%s/%s", g_out, harness);
    mkdir(p, 0755);
    snprintf(p, n, "%s/%s/%s", g_out, harness, name);
}

static void put(const char *harness, const char *name, const void *d, size_t n)
{
    char p[1024];
    path_of(p, sizeof p, harness, name);
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(d, 1, n, f) != n) || fclose(f)) die("cannot write %s: %s", p, strerror(errno));
}

static void put_str(const char *harness, const char *name, const char *s) { put(harness, name, s, strlen(s)); }

/* a growable byte buffer */
typedef struct buf {
    unsigned char *p;
    size_t n, cap;
} buf;

static void add(buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        while (b->n + n > b->cap) b->cap = b->cap ? 2 * b->cap : 4096;
        b->p = realloc(b->p, b->cap);
        if (!b->p) die("out of memory");
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void add_u8(buf *b, int v)
{
    unsigned char c = (unsigned char)v;
    add(b, &c, 1);
}

static void add_be32(buf *b, uint32_t v)
{
    unsigned char c[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
    add(b, c, 4);
}

static buf slurp(const char *path)
{
    buf b = {0};
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot read %s", path);
    unsigned char tmp[4096];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0) add(&b, tmp, k);
    fclose(f);
    return b;
}

/* one gzip member of d[0..n) appended to out */
static void add_gzip(buf *out, const void *d, size_t n)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) die("deflateInit2");
    size_t cap = n + n / 8 + 64;
    unsigned char *tmp = malloc(cap);
    z.next_in = (Bytef *)d;
    z.avail_in = (uInt)n;
    z.next_out = tmp;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) die("deflate");
    add(out, tmp, z.total_out);
    deflateEnd(&z);
    free(tmp);
}

/* ---------------------------------------------------------------- safetensors and checkpoints */

static char g_tmp[512];

/* writes f with sq_st_write to a scratch file and stores its bytes as harness/name */
static void put_st(const char *harness, const char *name, const sq_st_file *f)
{
    char p[600];
    snprintf(p, sizeof p, "%s/st.tmp", g_tmp);
    if (sq_st_write(p, f) != SQ_OK) die("sq_st_write: %s", sq_last_error());
    buf b = slurp(p);
    put(harness, name, b.p, b.n);
    free(b.p);
    remove(p);
}

/* a safetensors file from a literal header (padded with spaces to 8 bytes) and n data bytes */
static void put_st_raw(const char *harness, const char *name, const char *hdr, size_t ndata, int pad)
{
    buf b = {0};
    size_t h = strlen(hdr), hp = pad ? (h + 7) / 8 * 8 : h;
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)hp >> (8 * i));
    add(&b, len, 8);
    add(&b, hdr, h);
    for (size_t i = h; i < hp; i++) add_u8(&b, ' ');
    for (size_t i = 0; i < ndata; i++) add_u8(&b, (int)(i * 37 + 1));
    put(harness, name, b.p, b.n);
    free(b.p);
}

static void make_safetensors(void)
{
    static float f32[6] = {1, -2.5f, 3e-3f, 0, 1e30f, -0.0f};
    static int64_t i64[3] = {-1, 0, 1ll << 40};
    static int32_t i32[2] = {7, -7};
    static uint8_t u8[5] = {0, 1, 2, 254, 255};
    static float scalar = 42;
    sq_st_tensor t[6] = {
        {.name = "conv1.weight", .dtype = SQ_ST_F32, .ndim = 2, .shape = {2, 3}, .data = f32, .nbytes = 24},
        {.name = "bn1.num_batches_tracked", .dtype = SQ_ST_I64, .ndim = 1, .shape = {3}, .data = i64, .nbytes = 24},
        {.name = "i32", .dtype = SQ_ST_I32, .ndim = 1, .shape = {2}, .data = i32, .nbytes = 8},
        {.name = "bytes \"q\" \xc3\xa9", .dtype = SQ_ST_U8, .ndim = 1, .shape = {5}, .data = u8, .nbytes = 5},
        {.name = "scalar", .dtype = SQ_ST_F32, .ndim = 0, .data = &scalar, .nbytes = 4},
        {.name = "empty", .dtype = SQ_ST_F32, .ndim = 2, .shape = {0, 4}, .data = NULL, .nbytes = 0},
    };
    sq_st_kv meta[2] = {{"format", "pt"}, {"note", "tab\there, quote \" and \xe2\x82\xac"}};
    sq_st_file f = {.ntensors = 6, .tensors = t, .nmeta = 2, .meta = meta};
    put_st("safetensors", "sample_every_dtype", &f);
    sq_st_file e = {0};
    put_st("safetensors", "empty_file", &e);
    sq_st_file mo = {.nmeta = 1, .meta = meta};
    put_st("safetensors", "metadata_only", &mo);
    /* written by another tool: no padding, keys in another order, unicode escapes */
    put_st_raw("safetensors", "unpadded_reordered",
               "{\"b\":{\"shape\":[2],\"data_offsets\":[8,16],\"dtype\":\"F32\"},"
               "\"a\\u00e9\\ud83d\\ude00\":{\"dtype\":\"I32\",\"shape\":[1,2],\"data_offsets\":[0,8]}}",
               16, 0);
    /* edge cases: overlapping offsets, trailing data, a header length past the end */
    put_st_raw("safetensors", "overlap",
               "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}", 6, 1);
    put_st_raw("safetensors", "trailing_data", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 5, 1);
    unsigned char big[8] = {0xff, 0xff, 0, 0, 0, 0, 0, 0};
    put("safetensors", "header_length_past_end", big, 8);
}

/* the metadata sqakd writes (checkpoint.c meta_to_kv) */
static void make_checkpoints(void)
{
    static float w[4] = {0.5f, -0.5f, 0.25f, 1};
    static int64_t tracked = 3;
    static float delta = 0.01f;
    sq_st_tensor t[3] = {
        {.name = "conv1.weight", .dtype = SQ_ST_F32, .ndim = 4, .shape = {1, 1, 2, 2}, .data = w, .nbytes = 16},
        {.name = "bn1.num_batches_tracked", .dtype = SQ_ST_I64, .ndim = 0, .data = &tracked, .nbytes = 8},
        {.name = "layer1.0.conv1.bkwd_scaling_factorW", .dtype = SQ_ST_F32, .ndim = 0, .data = &delta, .nbytes = 4},
    };
    sq_st_kv teacher[] = {
        {"format", "sqakd"}, {"format_version", "1"}, {"arch", "smallcnn"}, {"input_shape", "1,28,28"},
        {"classes", "10"}, {"norm_mean", "0.2860,0,0"}, {"norm_std", "0.3530,1,1"}, {"dataset", "fashion-mnist"},
        {"epoch", "6"}, {"step", "2814"}, {"role", "teacher"}, {"quantizer", "none"}, {"wbits", "32"},
        {"abits", "32"}, {"delta_w", "0"}, {"delta_a", "0"}, {"quant_first_last", "0"}, {"metric", "91.230000"},
    };
    sq_st_file f = {.ntensors = 2, .tensors = t, .nmeta = (int)(sizeof teacher / sizeof teacher[0]), .meta = teacher};
    put_st("checkpoint", "teacher_smallcnn", &f);
    sq_st_kv student[] = {
        {"format", "sqakd"}, {"format_version", "1"}, {"arch", "resnet20"}, {"input_shape", "3,32,32"},
        {"classes", "100"}, {"norm_mean", "0.5071,0.4865,0.4409"}, {"norm_std", "0.2673,0.2564,0.2762"},
        {"dataset", "cifar100"}, {"epoch", "10"}, {"step", "3910"}, {"role", "student"}, {"quantizer", "ewgs"},
        {"wbits", "2"}, {"abits", "2"}, {"delta_w", "0.00100000005"}, {"delta_a", "0.00100000005"},
        {"quant_first_last", "1"}, {"metric", "68.400000"}, {"extra", "18446744073709551615"},
    };
    sq_st_file g = {.ntensors = 3, .tensors = t, .nmeta = (int)(sizeof student / sizeof student[0]), .meta = student};
    put_st("checkpoint", "student_resnet20_ewgs_w2a2", &g);
    sq_st_kv minimal[] = {{"format", "sqakd"}, {"arch", "vgg8"}, {"input_shape", "3,32,32"}, {"classes", "10"}};
    sq_st_file h = {.nmeta = 4, .meta = minimal};
    put_st("checkpoint", "minimal_metadata", &h);
    sq_st_kv bad[] = {{"format", "sqakd"}, {"arch", "smallcnn"}, {"input_shape", "1,x,28"}, {"classes", "10"}};
    sq_st_file k = {.nmeta = 4, .meta = bad};
    put_st("checkpoint", "bad_input_shape", &k);
    sq_st_kv badq[] = {{"format", "sqakd"}, {"arch", "smallcnn"}, {"input_shape", "1,28,28"}, {"classes", "10"},
                       {"quantizer", "ternary"}};
    sq_st_file q = {.nmeta = 5, .meta = badq};
    put_st("checkpoint", "unknown_quantizer", &q);
}

/* ---------------------------------------------------------------- IDX and CIFAR */

static void idx_images(buf *b, int n, int h, int w)
{
    add_be32(b, 0x803), add_be32(b, (uint32_t)n), add_be32(b, (uint32_t)h), add_be32(b, (uint32_t)w);
    for (int i = 0; i < n * h * w; i++) add_u8(b, i * 31 + 7);
}

static void idx_labels(buf *b, int n, int classes)
{
    add_be32(b, 0x801), add_be32(b, (uint32_t)n);
    for (int i = 0; i < n; i++) add_u8(b, (i * 7) % classes);
}

static void make_idx(void)
{
    buf img = {0}, lab = {0}, b = {0};
    idx_images(&img, 3, 4, 5);
    idx_labels(&lab, 3, 10);
    put("idx", "images_raw", img.p, img.n);
    add_gzip(&b, img.p, img.n);
    put("idx", "images_gz", b.p, b.n);
    b.n = 0;
    add(&b, img.p, img.n), add(&b, "--LABELS", 8), add(&b, lab.p, lab.n);
    put("idx", "images_and_labels_raw", b.p, b.n);
    b.n = 0;
    add_gzip(&b, img.p, img.n), add(&b, "--LABELS", 8), add_gzip(&b, lab.p, lab.n);
    put("idx", "images_and_labels_gz", b.p, b.n);
    b.n = 0;   /* two gzip members */
    add_gzip(&b, img.p, 20), add_gzip(&b, img.p + 20, img.n - 20);
    put("idx", "images_two_members_gz", b.p, b.n);
    b.n = 0;   /* edge cases: trailing bytes, truncated payload, labels out of count */
    add(&b, img.p, img.n), add(&b, "\xAB\xAB", 2);
    put("idx", "images_trailing_raw", b.p, b.n);
    put("idx", "images_truncated_raw", img.p, img.n - 3);
    b.n = 0;
    add_gzip(&b, img.p, img.n), add(&b, "junk", 4);
    put("idx", "images_gz_then_junk", b.p, b.n);
    /* idx_gz: mode byte, then the decompressed file */
    static const int modes[] = {0x00, 0x81, 0x02, 0x26, 0x03, 0x43};
    static const char *names[] = {"one_member", "two_members", "garbage_after", "zeros_after", "cut_by_1", "cut_by_17"};
    for (int i = 0; i < 6; i++) {
        b.n = 0;
        add_u8(&b, modes[i]);
        add(&b, img.p, img.n);
        put("idx_gz", names[i], b.p, b.n);
    }
    b.n = 0;
    add_u8(&b, 0);
    add(&b, lab.p, lab.n);
    put("idx_gz", "labels_file_as_images", b.p, b.n);
    free(img.p), free(lab.p), free(b.p);
}

static void cifar_records(buf *b, int n, int lab_bytes, int classes)
{
    for (int r = 0; r < n; r++) {
        for (int k = 0; k < lab_bytes; k++) add_u8(b, (r * 3 + k) % classes);
        for (int p = 0; p < 3072; p++) add_u8(b, r * 13 + p);
    }
}

static void make_cifar(void)
{
    buf b = {0};
    add_u8(&b, 0), cifar_records(&b, 2, 1, 10);
    put("cifar", "cifar10_test_2_records", b.p, b.n);
    b.n = 0;
    add_u8(&b, 1), cifar_records(&b, 2, 2, 100);
    put("cifar", "cifar100_train_2_records", b.p, b.n);
    b.n = 0;
    add_u8(&b, 3), cifar_records(&b, 5, 1, 10);
    put("cifar", "cifar10_train_5_files", b.p, b.n);
    b.n = 0;
    add_u8(&b, 4), cifar_records(&b, 1, 1, 10);
    put("cifar", "cifar10_test_no_labels", b.p, b.n);
    b.n = 0;
    add_u8(&b, 0), cifar_records(&b, 1, 1, 10), add(&b, "short", 5);
    put("cifar", "cifar10_incomplete_record", b.p, b.n);
    b.n = 0;
    add_u8(&b, 2), cifar_records(&b, 1, 2, 100);
    b.p[2] = 200;   /* fine label out of range */
    put("cifar", "cifar100_test_bad_label", b.p, b.n);
    free(b.p);
}

/* ---------------------------------------------------------------- PNG and JPEG */

static void png_to_buf(png_structp png, png_bytep d, png_size_t n) { add(png_get_io_ptr(png), d, n); }
static void png_flush_none(png_structp png) { (void)png; }

/* a w x h PNG of colour type color and bit depth depth with a deterministic pattern */
static buf make_png(int w, int h, int color, int depth, int interlace)
{
    buf b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (!png || !info || setjmp(png_jmpbuf(png))) die("libpng write failed");
    png_set_write_fn(png, &b, png_to_buf, png_flush_none);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (color == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {20, 40, 60}};
        png_byte trans[2] = {0, 128};
        png_set_PLTE(png, info, pal, 4);
        png_set_tRNS(png, info, trans, 2, NULL);
    }
    png_write_info(png, info);
    int ch = color == PNG_COLOR_TYPE_RGB ? 3 : color == PNG_COLOR_TYPE_RGBA ? 4 :
             color == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
    size_t stride = ((size_t)w * ch * depth + 7) / 8;
    unsigned char *px = calloc((size_t)h, stride);
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    for (int y = 0; y < h; y++) {
        rows[y] = px + (size_t)y * stride;
        for (size_t x = 0; x < stride; x++) rows[y][x] = (unsigned char)(y * 40 + x * 9);
        if (color == PNG_COLOR_TYPE_PALETTE)
            for (size_t x = 0; x < stride; x++) rows[y][x] &= depth == 8 ? 3 : 0x55;
    }
    png_write_image(png, rows);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(rows);
    free(px);
    return b;
}

/* a w x h JPEG with comps components (1 or 3) */
static buf make_jpeg(int w, int h, int comps, int progressive, int restart, int arith)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr err;
    ci.err = jpeg_std_error(&err);
    jpeg_create_compress(&ci);
    unsigned char *mem = NULL;
    unsigned long mlen = 0;
    jpeg_mem_dest(&ci, &mem, &mlen);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = comps;
    ci.in_color_space = comps == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 75, TRUE);
    if (progressive) jpeg_simple_progression(&ci);
    ci.restart_interval = (unsigned)restart;
    ci.arith_code = arith ? TRUE : FALSE;
    jpeg_start_compress(&ci, TRUE);
    unsigned char *row = malloc((size_t)w * comps);
    while (ci.next_scanline < ci.image_height) {
        for (int x = 0; x < w * comps; x++) row[x] = (unsigned char)(ci.next_scanline * 30 + x * 11);
        JSAMPROW r = row;
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    free(row);
    buf b = {0};
    add(&b, mem, mlen);
    free(mem);
    return b;
}

static void put_buf(const char *harness, const char *name, buf b)
{
    put(harness, name, b.p, b.n);
    free(b.p);
}

static void make_images(void)
{
    put_buf("image", "png_gray8", make_png(5, 3, PNG_COLOR_TYPE_GRAY, 8, 0));
    put_buf("image", "png_gray1", make_png(9, 2, PNG_COLOR_TYPE_GRAY, 1, 0));
    put_buf("image", "png_gray16", make_png(3, 3, PNG_COLOR_TYPE_GRAY, 16, 0));
    put_buf("image", "png_gray_alpha", make_png(4, 2, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0));
    put_buf("image", "png_rgb8", make_png(4, 4, PNG_COLOR_TYPE_RGB, 8, 0));
    put_buf("image", "png_rgba8", make_png(3, 2, PNG_COLOR_TYPE_RGBA, 8, 0));
    put_buf("image", "png_rgb16", make_png(2, 3, PNG_COLOR_TYPE_RGB, 16, 0));
    put_buf("image", "png_palette_trns", make_png(6, 2, PNG_COLOR_TYPE_PALETTE, 8, 0));
    put_buf("image", "png_palette2", make_png(7, 3, PNG_COLOR_TYPE_PALETTE, 2, 0));
    put_buf("image", "png_rgb_interlaced", make_png(9, 9, PNG_COLOR_TYPE_RGB, 8, 1));
    put_buf("image", "jpeg_gray", make_jpeg(8, 8, 1, 0, 0, 0));
    put_buf("image", "jpeg_rgb", make_jpeg(16, 9, 3, 0, 0, 0));
    put_buf("image", "jpeg_rgb_progressive", make_jpeg(17, 10, 3, 1, 0, 0));
    put_buf("image", "jpeg_rgb_restart", make_jpeg(24, 16, 3, 0, 1, 0));
    put_buf("image", "jpeg_gray_arithmetic", make_jpeg(8, 8, 1, 0, 0, 1));
    /* edge cases: both cut short */
    buf p = make_png(4, 4, PNG_COLOR_TYPE_RGB, 8, 0);
    put("image", "png_truncated", p.p, p.n - 20);
    free(p.p);
    buf j = make_jpeg(16, 16, 3, 0, 0, 0);
    put("image", "jpeg_truncated", j.p, j.n / 2);
    free(j.p);
}

/* ---------------------------------------------------------------- folder trees */

/* folder harness records: kind, name; file: u16 length + bytes; link: u8 length + target */
static void rec_file(buf *b, const char *name, buf content)
{
    add_u8(b, 0), add_u8(b, (int)strlen(name)), add(b, name, strlen(name));
    add_u8(b, (int)(content.n & 255)), add_u8(b, (int)(content.n >> 8)), add(b, content.p, content.n);
    free(content.p);
}

static void rec_dir(buf *b, const char *name) { add_u8(b, 1), add_u8(b, (int)strlen(name)), add(b, name, strlen(name)); }

static void rec_link(buf *b, const char *name, const char *target)
{
    add_u8(b, 2), add_u8(b, (int)strlen(name)), add(b, name, strlen(name));
    add_u8(b, (int)strlen(target)), add(b, target, strlen(target));
}

static void make_folders(void)
{
    buf b = {0};
    add_u8(&b, 2);   /* train split, labels */
    rec_file(&b, "train/cat/a.png", make_png(4, 4, PNG_COLOR_TYPE_RGB, 8, 0));
    rec_file(&b, "train/cat/b.png", make_png(4, 4, PNG_COLOR_TYPE_RGB, 8, 0));
    rec_file(&b, "train/dog/c.jpg", make_jpeg(4, 4, 3, 0, 0, 0));
    rec_file(&b, "test/dog/d.JPEG", make_jpeg(4, 4, 3, 0, 0, 0));
    rec_file(&b, "train/dog/notes.txt", (buf){0});
    put("folder", "labeled_train", b.p, b.n);
    b.p[0] = 3;   /* the test split of the same tree */
    put("folder", "labeled_test", b.p, b.n);
    b.n = 0;
    add_u8(&b, 0);   /* flat, unlabeled, gray */
    rec_file(&b, "x.png", make_png(3, 2, PNG_COLOR_TYPE_GRAY, 8, 0));
    rec_file(&b, "sub/y.png", make_png(3, 2, PNG_COLOR_TYPE_GRAY, 1, 0));
    rec_file(&b, ".hidden.png", make_png(3, 2, PNG_COLOR_TYPE_GRAY, 8, 0));
    put("folder", "flat_unlabeled", b.p, b.n);
    b.n = 0;
    add_u8(&b, 2);   /* a size mismatch */
    rec_file(&b, "a/1.png", make_png(2, 2, PNG_COLOR_TYPE_GRAY, 8, 0));
    rec_file(&b, "b/2.png", make_png(3, 2, PNG_COLOR_TYPE_GRAY, 8, 0));
    put("folder", "size_mismatch", b.p, b.n);
    b.n = 0;
    add_u8(&b, 2);   /* symbolic links: a class folder reached through a link, and a loop */
    rec_file(&b, "real/1.png", make_png(2, 2, PNG_COLOR_TYPE_GRAY, 8, 0));
    rec_link(&b, "c", "real");
    rec_link(&b, "loop/self", ".");
    rec_file(&b, "loop/2.png", make_png(2, 2, PNG_COLOR_TYPE_GRAY, 8, 0));
    put("folder", "symlinks", b.p, b.n);
    b.n = 0;
    add_u8(&b, 0);
    rec_dir(&b, "empty");
    put("folder", "no_images", b.p, b.n);
    free(b.p);
}

/* ---------------------------------------------------------------- JSON, sweep configs, results */

static void make_json(void)
{
    put_str("json", "object", "{\"a\": 1, \"b\": [true, false, null], \"c\": {\"d\": \"e\"}}");
    put_str("json", "numbers", "[0, -0, 1.5, -2e-3, 1E+300, 123456789012345678901234567890, 4.9e-324, 0.1]");
    put_str("json", "escapes", "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\", \"\\u0000\\u001f\\u00e9\\u20ac\\ud83d\\ude00\", \"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"]");
    put_str("json", "nested", "[[[[[[[[[[{\"k\":[[[[[]]]]]}]]]]]]]]]]");
    put_str("json", "whitespace", " \t\r\n{ \"k\" :\n[ 1 ,2 ] }\n ");
    put_str("json", "scalar_string", "\"just a string\"");
    put_str("json", "safetensors_header",
            "{\"__metadata__\":{\"format\":\"sqakd\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}");
    put_str("json", "metrics_line",
            "{\"epoch\":1,\"step\":469,\"loss\":0.512345679,\"top1\":88.5,\"lr\":0.05,\"images_per_s\":12345.6,\"time\":3.2}");
    put_str("json", "bad_trailing_comma", "{\"a\": [1, 2,]}");
    put_str("json", "bad_lone_surrogate", "\"\\ud800\"");
}

static void make_sweeps(void)
{
    sq_sweep sw;
    sq_sweep_defaults(&sw);
    snprintf(sw.model, sizeof sw.model, "resnet20");
    snprintf(sw.data, sizeof sw.data, "cifar10:data/cache/cifar10");
    snprintf(sw.out, sizeof sw.out, "runs/sweep1");
    snprintf(sw.augment, sizeof sw.augment, "crop,flip");
    sw.train_teacher_epochs = 30;
    if (sq_sweep_parse_quantizers("corpus", "ewgs,pact,lsq,dorefa", &sw) ||
        sq_sweep_parse_bits("corpus", "1,2,w4a8", &sw) || sq_sweep_parse_seeds("corpus", "0,1,2", &sw))
        die("sweep lists");
    sq_jbuf jb;
    sq_jbuf_init(&jb);
    sq_sweep_to_json(&sw, 0, &jb);
    put_str("sweep_config", "saved_sweep_json", jb.buf);
    sq_jbuf_reset(&jb);
    sq_sweep_to_json(&sw, 1, &jb);
    put_str("sweep_config", "training_only_json", jb.buf);
    sq_jbuf_free(&jb);
    put_str("sweep_config", "string_lists",
            "{\"teacher\": \"runs/t/best.safetensors\", \"data\": \"fashion-mnist\", \"quantizers\": \"ewgs, lsq\","
            " \"bits\": \"w2a2,4\", \"seeds\": \"7\", \"epochs\": 2, \"holdout\": 0.1, \"device\": \"cpu\"}");
    put_str("sweep_config", "slurm",
            "{\"data\": \"fashion-mnist\", \"quantizers\": [\"pact\"], \"bits\": [2, 3], \"seeds\": [0, 9007199254740992],"
            " \"partition\": \"gpu\", \"time\": \"02:00:00\", \"gpus\": 1, \"cpus_per_task\": 8, \"max_running\": 4}");
    put_str("sweep_config", "unknown_key", "{\"epochs\": 3, \"colour\": \"blue\"}");
    put_str("sweep_config", "empty_object", "{}");
}

static void make_results(void)
{
    put_str("report", "student_ok",
            "{\"id\":\"ewgs_w2a2_s0\",\"role\":\"student\",\"model\":\"smallcnn\",\"quantizer\":\"ewgs\",\"wbits\":2,"
            "\"abits\":2,\"seed\":0,\"group\":0,\"status\":\"ok\",\"epochs\":2,\"steps\":938,\"data\":\"fashion-mnist\","
            "\"eval_n\":10000,\"top1\":89.12,\"top5\":99.7,\"agreement\":93.5,\"kl\":0.0412,\"model_bytes\":120456,"
            "\"train_seconds\":35.2,\"eval_seconds\":1.5}");
    put_str("report", "teacher",
            "{\"id\":\"teacher\",\"role\":\"teacher\",\"model\":\"smallcnn\",\"quantizer\":\"fp32\",\"wbits\":32,"
            "\"abits\":32,\"seed\":0,\"status\":\"ok\",\"checkpoint\":\"tasks/teacher/best.safetensors\","
            "\"data\":\"fashion-mnist\",\"top1\":91.2,\"agreement\":100,\"kl\":0,\"model_bytes\":963624,"
            "\"train_seconds\":120.5}");
    put_str("report", "diverged_no_labels",
            "{\"id\":\"lsq_w1a1_s3\",\"role\":\"student\",\"model\":\"resnet20\",\"quantizer\":\"lsq\",\"wbits\":1,"
            "\"abits\":1,\"seed\":3,\"status\":\"diverged\",\"error\":\"non-finite loss at step 12\",\"top1\":null,"
            "\"top5\":null,\"agreement\":null,\"kl\":null,\"model_bytes\":35000,\"train_seconds\":2.5}");
    put_str("report", "minimal", "{\"id\":\"x\"}");
    put_str("report", "no_id", "{\"role\":\"student\"}");
}

/* ---------------------------------------------------------------- ONNX models, tensors, .npy */

#define ONNX_TESTDATA "/usr/share/libonnx-testdata/data"

/* copies an installed backend-test file, with an optional tag byte before it (-1: none); 0 when
   the file is absent */
static int put_file(const char *harness, const char *name, const char *path, int tag)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    buf b = slurp(path), o = {0};
    if (tag >= 0) add_u8(&o, tag);
    add(&o, b.p, b.n);
    put(harness, name, o.p, o.n);
    free(b.p);
    free(o.p);
    return 1;
}

static void make_onnx(void)
{
    /* the project's writer: every attribute kind, float/int8/uint8/int64 initializers */
    sq_onnx_graph *g = sq_onnx_new("corpus", 13);
    const int64_t xd[4] = { -1, 1, 4, 4 }, wd[4] = { 2, 1, 3, 3 }, two[1] = { 2 }, yd[4] = { -1, 2, 4, 4 };
    float w[18];
    for (int k = 0; k < 18; k++) w[k] = (float)k / 8 - 1;
    const int64_t q[2] = { -5, 7 }, u[2] = { 0, 255 }, shp[2] = { 1, 2 };
    sq_onnx_add_input(g, "x", SQ_ONNX_FLOAT, 4, xd);
    sq_onnx_add_output(g, "y", SQ_ONNX_FLOAT, 4, yd);
    sq_onnx_add_init(g, "W", SQ_ONNX_FLOAT, 4, wd, w);
    sq_onnx_add_init(g, "q", SQ_ONNX_INT8, 1, two, q);
    sq_onnx_add_init(g, "u", SQ_ONNX_UINT8, 1, two, u);
    sq_onnx_add_init(g, "shp", SQ_ONNX_INT64, 1, two, shp);
    const char *in[2] = { "x", "W" }, *out[1] = { "c" }, *rin[1] = { "c" }, *rout[1] = { "y" }, *kout[1] = { "k" };
    sq_onnx_node *n = sq_onnx_add_node(g, "Conv", "conv", 2, in, 1, out);
    const int64_t ks[2] = { 3, 3 }, pads[4] = { 1, 1, 1, 1 };
    sq_onnx_attr_ints(n, "kernel_shape", 2, ks);
    sq_onnx_attr_ints(n, "pads", 4, pads);
    sq_onnx_attr_int(n, "group", 1);
    sq_onnx_attr_string(n, "auto_pad", "NOTSET");
    n = sq_onnx_add_node(g, "LeakyRelu", "", 1, rin, 1, rout);
    sq_onnx_attr_float(n, "alpha", 0.1f);
    n = sq_onnx_add_node(g, "Constant", "k", 0, NULL, 1, kout);
    const float kv[2] = { 1.5f, -2 };
    sq_onnx_attr_tensor(n, "value", SQ_ONNX_FLOAT, 1, two, kv);
    sq_onnx_attr_floats(n, "unused_floats", 2, kv);
    void *mb;
    size_t ml;
    if (sq_onnx_encode(g, &mb, &ml) != SQ_OK) die("sq_onnx_encode: %s", sq_last_error());
    put("onnx", "sqakd_writer", mb, ml);
    put("onnx", "sqakd_writer_truncated", mb, ml - 7);
    free(mb);
    sq_onnx_free(g);
    static const char *const models[][2] = {
        { "conv_with_strides_padding", "node/test_conv_with_strides_padding/model.onnx" },
        { "constantofshape_tensor_attr", "node/test_constantofshape_int_shape_zero/model.onnx" },
        { "sequence_map_dim_param", "node/test_sequence_map_identity_1_sequence_1_tensor/model.onnx" },
        { "pytorch_conv2d_ir3", "pytorch-converted/test_Conv2d/model.onnx" },
        { "dequantizelinear", "node/test_dequantizelinear/model.onnx" },
    };
    static const char *const tensors[][2] = {
        { "pb_float", "node/test_conv_with_strides_padding/test_data_set_0/input_1.pb" },
        { "pb_float16", "node/test_cast_DOUBLE_to_FLOAT16/test_data_set_0/output_0.pb" },
        { "pb_double", "node/test_cast_DOUBLE_to_FLOAT16/test_data_set_0/input_0.pb" },
        { "pb_uint8", "node/test_add_uint8/test_data_set_0/input_0.pb" },
        { "pb_int8", "node/test_clip_default_int8_inbounds/test_data_set_0/input_0.pb" },
        { "pb_bool", "node/test_and2d/test_data_set_0/input_0.pb" },
        { "pb_uint64", "node/test_bitshift_left_uint64/test_data_set_0/input_0.pb" },
    };
    char p[512];
    int missing = 0;
    for (size_t k = 0; k < sizeof models / sizeof *models; k++) {
        snprintf(p, sizeof p, "%s/%s", ONNX_TESTDATA, models[k][1]);
        missing += !put_file("onnx", models[k][0], p, -1);
    }
    for (size_t k = 0; k < sizeof tensors / sizeof *tensors; k++) {
        snprintf(p, sizeof p, "%s/%s", ONNX_TESTDATA, tensors[k][1]);
        missing += !put_file("onnx_tensor", tensors[k][0], p, 0);
    }
    if (missing) fprintf(stderr, "make_corpus: %d ONNX backend-test files missing (libonnx-testdata)\n", missing);
    /* .npy files (tag byte 1): the project's writer, scalar, vector, an f8 file and a version 2.0 one */
    static const int64_t dims[3] = { 2, 3, 4 }, five[1] = { 5 };
    float v[24];
    for (int k = 0; k < 24; k++) v[k] = (float)k - 3.5f;
    struct { const char *name; int nd; const int64_t *d; } arr[] = {
        { "npy_f4_2x3x4", 3, dims }, { "npy_f4_vector", 1, five }, { "npy_f4_scalar", 0, NULL } };
    snprintf(p, sizeof p, "%s/npy.tmp", g_tmp);
    for (size_t k = 0; k < sizeof arr / sizeof *arr; k++) {
        if (sq_npy_write(p, v, arr[k].nd, arr[k].d) != SQ_OK) die("sq_npy_write: %s", sq_last_error());
        put_file("onnx_tensor", arr[k].name, p, 1);
    }
    remove(p);
    static const char h8[] = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }";
    static const char h2[] = "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 1)}";
    for (int k = 0; k < 2; k++) {
        const char *h = k ? h2 : h8;
        size_t hl = strlen(h), pre = k ? 12 : 10, total = (pre + hl + 1 + 63) & ~(size_t)63;
        buf b = {0};
        add_u8(&b, 1);
        add(&b, "\x93NUMPY", 6);
        add_u8(&b, k ? 2 : 1);
        add_u8(&b, 0);
        add_u8(&b, (int)((total - pre) & 0xff));
        add_u8(&b, (int)((total - pre) >> 8));
        if (k) add_u8(&b, 0), add_u8(&b, 0);
        add(&b, h, hl);
        for (size_t j = pre + hl; j + 1 < total; j++) add_u8(&b, ' ');
        add_u8(&b, '\n');
        const double d[3] = { 0.5, -1.25, 1e300 };
        if (k) add(&b, v, 8);
        else add(&b, d, sizeof d);
        put("onnx_tensor", k ? "npy_v2" : "npy_f8", b.p, b.n);
        free(b.p);
    }
}

/* ---------------------------------------------------------------- npy: data spec */

/* a .npy v1.0 file (header DESCR, SHAPE as NumPy writes them) of nbytes of d, appended to b */
static void add_npy(buf *b, const char *descr, const char *shape, const void *d, size_t nbytes)
{
    char h[160];
    int hl = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    size_t total = (10 + (size_t)hl + 1 + 63) & ~(size_t)63;
    add(b, "\x93NUMPY\x01\x00", 8);
    add_u8(b, (int)((total - 10) & 0xff));
    add_u8(b, (int)((total - 10) >> 8));
    add(b, h, (size_t)hl);
    for (size_t j = 10 + (size_t)hl; j + 1 < total; j++) add_u8(b, ' ');
    add_u8(b, '\n');
    add(b, d, nbytes);
}

/* fuzz_npy_data inputs: flags byte, u16 LE image-file length, the image file, the label file */
static void put_npy_data(const char *name, int flags, const char *xd, const char *xs, const void *x, size_t xn,
                         const char *yd, const char *ys, const void *y, size_t yn)
{
    buf img = {0}, o = {0};
    add_npy(&img, xd, xs, x, xn);
    add_u8(&o, flags);
    add_u8(&o, (int)(img.n & 0xff));
    add_u8(&o, (int)(img.n >> 8));
    add(&o, img.p, img.n);
    if (yd) add_npy(&o, yd, ys, y, yn);
    put("npy_data", name, o.p, o.n);
    free(img.p);
    free(o.p);
}

static void make_npy_data(void)
{
    uint8_t px[2 * 6 * 5 * 3];
    for (size_t k = 0; k < sizeof px; k++) px[k] = (uint8_t)(k * 37 + 11);
    float f[18];
    for (int k = 0; k < 18; k++) f[k] = (float)k / 17;
    const double d[16] = { 0, 0.25, 0.5, 1, 0.125, 0.75, 1, 0, 0.3, 0.6, 0.9, 0.1, 0.2, 0.4, 0.8, 1 };
    const int64_t l8[3] = { 0, 2, 1 };
    const uint8_t l1[2] = { 1, 0 };
    const int32_t l4[2] = { 4, 1 };
    const int16_t l2[1] = { 0 };
    put_npy_data("u8_nchw_i8labels", 3, "|u1", "(3, 1, 4, 5)", px, 60, "<i8", "(3,)", l8, sizeof l8);
    put_npy_data("u8_nhwc_u1labels", 3, "|u1", "(2, 6, 5, 3)", px, sizeof px, "|u1", "(2,)", l1, sizeof l1);
    put_npy_data("u8_nhw", 0, "|u1", "(2, 3, 3)", px, 18, NULL, NULL, NULL, 0);
    put_npy_data("f4_nchw_i4labels", 3, "<f4", "(2, 1, 3, 3)", f, sizeof f, "<i4", "(2,)", l4, sizeof l4);
    put_npy_data("f8_nhw_nolabels", 2, "<f8", "(1, 4, 4)", d, sizeof d, "<i2", "(1,)", l2, sizeof l2);
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    if (argc != 2) die("usage: make_corpus OUTDIR");
    g_out = argv[1];
    mkdir(g_out, 0755);
    snprintf(g_tmp, sizeof g_tmp, "%s/.tmp", g_out);
    mkdir(g_tmp, 0755);
    make_safetensors();
    make_checkpoints();
    make_idx();
    make_cifar();
    make_images();
    make_folders();
    make_json();
    make_sweeps();
    make_results();
    make_onnx();
    make_npy_data();
    rmdir(g_tmp);
    return 0;
}
