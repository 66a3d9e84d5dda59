/* test_data.c: Criterion suite "data": IDX (raw, gzip, corrupt), CIFAR-10/100 binary (synthetic
   and, when present, real), folder of PNG/JPEG images, hold-out split, and the background loader
   (coverage, determinism, crop/flip values, normalization, drop_last, skip). Every test writes its
   files under its own mkdtemp directory, removed in the fini fixture. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <criterion/criterion.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <jpeglib.h>
#include <png.h>

#include "sqakd/data.h"

static char g_dir[64];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void setup(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/sqakd_data_XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir), "mkdtemp failed");
}

static void teardown(void) { nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

TestSuite(data, .init = setup, .fini = teardown, .timeout = 30);

/* ---------------------------------------------------------------- helpers: writers */

static const char *tpath(const char *name)
{
    static char buf[8][512];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 512, "%s/%s", g_dir, name);
    return p;
}

static void mkdir_t(const char *name) { cr_assert_eq(mkdir(tpath(name), 0755), 0, "mkdir %s", name); }

static void write_bytes(const char *path, const void *data, size_t n, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        cr_assert_not_null(f, "gzopen %s", path);
        if (n) cr_assert_eq(gzwrite(f, data, (unsigned)n), (int)n);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f, "fopen %s", path);
        if (n) cr_assert_eq(fwrite(data, 1, n, f), n);
        fclose(f);
    }
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* IDX images (n, h, w) with pixel (i, y, x) = (i * 31 + y * 7 + x) & 255; `adjust` bytes are
   appended (> 0, as 0xAB) or cut from the end (< 0). Returns the file size before adjusting. */
static size_t write_idx_images(const char *path, uint32_t magic, int n, int h, int w, int adjust,
                               int gz)
{
    size_t len = 16 + (size_t)n * h * w;
    uint8_t *b = calloc(len + 64, 1);
    put_be32(b, magic), put_be32(b + 4, (uint32_t)n), put_be32(b + 8, (uint32_t)h);
    put_be32(b + 12, (uint32_t)w);
    for (int i = 0; i < n; i++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) b[16 + ((size_t)i * h + y) * w + x] = (uint8_t)(i * 31 + y * 7 + x);
    for (int k = 0; k < adjust; k++) b[len + k] = 0xAB;
    write_bytes(path, b, (size_t)((long)len + adjust), gz);
    free(b);
    return len;
}

static void write_idx_labels(const char *path, int n, const uint8_t *lab, int gz)
{
    uint8_t *b = calloc(8 + (size_t)n, 1);
    put_be32(b, 0x00000801), put_be32(b + 4, (uint32_t)n);
    memcpy(b + 8, lab, (size_t)n);
    write_bytes(path, b, 8 + (size_t)n, gz);
    free(b);
}

/* color: PNG_COLOR_TYPE_*; px holds rows of w * channels samples of `depth` bits (8 or 16,
   16-bit as big-endian byte pairs). A palette image uses pal (npal RGB entries). */
static void write_png(const char *path, int w, int h, int color, int depth, const uint8_t *px,
                      const png_color *pal, int npal)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "fopen %s", path);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    cr_assert(png && info);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    png_write_info(png, info);
    int ch = color == PNG_COLOR_TYPE_RGB ? 3 : color == PNG_COLOR_TYPE_RGBA ? 4 :
             color == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
    size_t stride = (size_t)w * ch * depth / 8;
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(px + (size_t)y * stride));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

/* pixel (y, x, ch) of a test RGB image with seed s */
static uint8_t rgb_px(int s, int y, int x, int ch) { return (uint8_t)(s * 50 + y * 20 + x * 5 + ch * 70); }

static void write_rgb_png(const char *path, int w, int h, int s)
{
    uint8_t *px = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < 3; ch++) px[((size_t)y * w + x) * 3 + ch] = rgb_px(s, y, x, ch);
    write_png(path, w, h, PNG_COLOR_TYPE_RGB, 8, px, NULL, 0);
    free(px);
}

static void write_jpeg(const char *path, int w, int h, int comps, const uint8_t *px)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "fopen %s", path);
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr err;
    ci.err = jpeg_std_error(&err);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = comps;
    ci.in_color_space = comps == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 100, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)ci.next_scanline * w * comps);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    fclose(f);
}

/* CIFAR record r of file-seed s: label = lab, pixel p = (s * 13 + r * 7 + p) & 255. */
static void write_cifar(const char *path, int nrec, int lab_bytes, const uint8_t *labs, int s)
{
    size_t rec = (size_t)lab_bytes + 3072;
    uint8_t *b = malloc(rec * nrec);
    for (int r = 0; r < nrec; r++) {
        for (int k = 0; k < lab_bytes; k++) b[rec * r + k] = labs[r * lab_bytes + k];
        for (int p = 0; p < 3072; p++) b[rec * r + lab_bytes + p] = (uint8_t)(s * 13 + r * 7 + p);
    }
    write_bytes(path, b, rec * nrec, 0);
    free(b);
}

static void expect_error_has(const char *what)
{
    cr_expect(strstr(sq_last_error(), what) != NULL, "error message '%s' should contain '%s'",
              sq_last_error(), what);
}

/* ---------------------------------------------------------------- IDX */

static void check_idx_roundtrip(int gz)
{
    const char *ip = tpath(gz ? "img.gz" : "img"), *lp = tpath(gz ? "lab.gz" : "lab");
    write_idx_images(ip, 0x00000803, 5, 3, 4, 0, gz);
    uint8_t lab[5] = {2, 0, 4, 1, 2};
    write_idx_labels(lp, 5, lab, gz);
    char spec[1100];
    snprintf(spec, sizeof spec, "idx:%s,%s", ip, lp);
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 1, &ds), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(ds.n, 5);
    cr_assert_eq(ds.c, 1);
    cr_assert_eq(ds.h, 3);
    cr_assert_eq(ds.w, 4);
    cr_expect_eq(ds.classes, 5, "classes = max label + 1");
    cr_expect_str_eq(ds.name, "idx");
    for (int i = 0; i < 5 * 12; i++) {
        int n = i / 12, y = i % 12 / 4, x = i % 4;
        uint8_t want = (uint8_t)(n * 31 + y * 7 + x);
        cr_expect_eq(ds.images[i], want, "pixel %d: got %d want %d", i, ds.images[i], want);
    }
    cr_assert_not_null(ds.labels);
    for (int i = 0; i < 5; i++) cr_expect_eq(ds.labels[i], lab[i], "label %d", i);
    sq_dataset_free(&ds);
    cr_expect_eq(sq_dataset_open(spec, SQ_SPLIT_TEST, 1, &ds), SQ_EARG, "idx: has no test split");
    expect_error_has("holdout");
}

Test(data, idx_roundtrip_raw) { check_idx_roundtrip(0); }
Test(data, idx_roundtrip_gz) { check_idx_roundtrip(1); }

Test(data, idx_mnist_dir_gz_and_raw)
{
    mkdir_t("m");
    uint8_t lab[4] = {9, 0, 3, 7};
    write_idx_images(tpath("m/train-images-idx3-ubyte.gz"), 0x803, 4, 2, 2, 0, 1);
    write_idx_labels(tpath("m/train-labels-idx1-ubyte.gz"), 4, lab, 1);
    write_idx_images(tpath("m/t10k-images-idx3-ubyte"), 0x803, 2, 2, 2, 0, 0);
    write_idx_labels(tpath("m/t10k-labels-idx1-ubyte"), 2, lab, 0);
    char spec[600];
    snprintf(spec, sizeof spec, "mnist:%s", tpath("m"));
    sq_dataset tr, te;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 1, &tr), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TEST, 1, &te), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(tr.n, 4);
    cr_expect_eq(te.n, 2);
    cr_expect_eq(tr.classes, 10);
    cr_expect_eq(tr.labels[0], 9);
    cr_expect_eq(te.labels[1], 0);
    cr_expect_eq(tr.mean[0], 0.1307f, "mnist mean");
    cr_expect_eq(tr.std[0], 0.3081f, "mnist std");
    sq_dataset_free(&tr);
    sq_dataset_free(&te);
    /* with_labels = 0 never touches the label file */
    remove(tpath("m/train-labels-idx1-ubyte.gz"));
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &tr), SQ_OK, "%s", sq_last_error());
    cr_expect_null(tr.labels);
    sq_dataset_free(&tr);
    cr_expect_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 1, &tr), SQ_EIO);
    expect_error_has("train-labels-idx1-ubyte");
}

Test(data, idx_truncated)
{
    const char *ip = tpath("trunc-images");
    size_t full = write_idx_images(ip, 0x803, 6, 4, 4, -7, 0);
    char spec[600], off[64];
    snprintf(spec, sizeof spec, "idx:%s", ip);
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    expect_error_has(ip);
    expect_error_has("truncated");
    snprintf(off, sizeof off, "byte %zu", full - 7);
    expect_error_has(off);
    /* same through gzip: the offset counts decompressed bytes */
    const char *gp = tpath("trunc-images.gz");
    write_idx_images(gp, 0x803, 6, 4, 4, -7, 1);
    snprintf(spec, sizeof spec, "idx:%s", gp);
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    expect_error_has(gp);
    expect_error_has(off);
    /* a gzip stream cut in the middle */
    FILE *f = fopen(gp, "rb");
    uint8_t buf[4096];
    size_t k = fread(buf, 1, sizeof buf, f);
    fclose(f);
    write_bytes(gp, buf, k / 2, 0);
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    expect_error_has(gp);
    expect_error_has("truncated");
    /* header itself cut short */
    write_bytes(ip, "\0\0\x08\x03\0\0", 6, 0);
    snprintf(spec, sizeof spec, "idx:%s", ip);
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    expect_error_has("byte 6");
}

Test(data, idx_bad_magic_and_zero_dim)
{
    const char *ip = tpath("bad-images");
    write_idx_images(ip, 0x00000801, 2, 2, 2, 0, 0);
    char spec[600];
    snprintf(spec, sizeof spec, "idx:%s", ip);
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    expect_error_has("magic 0x00000801");
    expect_error_has(ip);
    write_idx_images(ip, 0x803, 2, 0, 2, 0, 0);
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    expect_error_has("dimension 1");
}

Test(data, idx_count_mismatch_and_label_range)
{
    const char *ip = tpath("i"), *lp = tpath("l");
    write_idx_images(ip, 0x803, 5, 2, 2, 0, 0);
    uint8_t lab[5] = {1, 2, 3, 4, 11};
    write_idx_labels(lp, 4, lab, 0);
    char spec[1100];
    snprintf(spec, sizeof spec, "idx:%s,%s", ip, lp);
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 1, &ds), SQ_EFORMAT);
    expect_error_has("4 labels");
    expect_error_has("5 images");
    /* mnist: has 10 classes; label 11 is out of range */
    mkdir_t("m");
    write_idx_images(tpath("m/train-images-idx3-ubyte"), 0x803, 5, 2, 2, 0, 0);
    write_idx_labels(tpath("m/train-labels-idx1-ubyte"), 5, lab, 0);
    snprintf(spec, sizeof spec, "mnist:%s", tpath("m"));
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 1, &ds), SQ_EFORMAT);
    expect_error_has("label 11 at byte 12");
}

Test(data, idx_trailing_bytes)
{
    for (int gz = 0; gz < 2; gz++) {
        const char *ip = tpath(gz ? "t.gz" : "t");
        size_t full = write_idx_images(ip, 0x803, 3, 2, 2, 3, gz);
        char spec[600], msg[64];
        snprintf(spec, sizeof spec, "idx:%s", ip);
        sq_dataset ds;
        cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT, "gz=%d", gz);
        snprintf(msg, sizeof msg, "3 trailing bytes after byte %zu", full);
        expect_error_has(msg);
        expect_error_has(ip);
    }
}

Test(data, fashion_mnist_real)
{
    const char *d = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
    if (access(d, R_OK) != 0) cr_skip_test("Fashion-MNIST not installed (%s missing)", d);
    sq_dataset tr, te;
    cr_assert_eq(sq_dataset_open("fashion-mnist", SQ_SPLIT_TRAIN, 1, &tr), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_dataset_open("fashion-mnist", SQ_SPLIT_TEST, 1, &te), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(tr.n, 60000);
    cr_expect_eq(te.n, 10000);
    cr_expect(tr.c == 1 && tr.h == 28 && tr.w == 28, "shape %dx%dx%d", tr.c, tr.h, tr.w);
    cr_expect_eq(tr.labels[0], 9, "first train label is 9 (ankle boot), got %d", tr.labels[0]);
    cr_expect_eq(tr.classes, 10);
    cr_expect_str_eq(tr.name, "fashion-mnist");
    cr_expect_eq(tr.mean[0], 0.2860f);
    cr_expect_eq(tr.std[0], 0.3530f);
    sq_dataset_free(&tr);
    sq_dataset_free(&te);
}

/* ---------------------------------------------------------------- CIFAR */

Test(data, cifar10_synthetic)
{
    mkdir_t("c");
    const int counts[5] = {2, 1, 1, 1, 3};
    uint8_t labs[3] = {3, 9, 0};
    char name[64];
    for (int b = 0; b < 5; b++) {
        snprintf(name, sizeof name, "c/data_batch_%d.bin", b + 1);
        write_cifar(tpath(name), counts[b], 1, labs, b);
    }
    write_cifar(tpath("c/test_batch.bin"), 2, 1, labs + 1, 7);
    char spec[600];
    snprintf(spec, sizeof spec, "cifar10:%s", tpath("c"));
    sq_dataset tr, te;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 1, &tr), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(tr.n, 8);
    cr_expect(tr.c == 3 && tr.h == 32 && tr.w == 32);
    cr_expect_eq(tr.classes, 10);
    int at = 0;
    for (int b = 0; b < 5; b++)
        for (int r = 0; r < counts[b]; r++, at++) {
            cr_expect_eq(tr.labels[at], labs[r], "sample %d label %d want %d", at, tr.labels[at], labs[r]);
            for (int p = 0; p < 3072; p += 511) {
                uint8_t want = (uint8_t)(b * 13 + r * 7 + p);
                cr_expect_eq(tr.images[(size_t)at * 3072 + p], want, "sample %d pixel %d", at, p);
            }
        }
    cr_expect_eq(tr.mean[2], 0.4465f);
    cr_expect_eq(tr.std[0], 0.2023f);
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TEST, 1, &te), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(te.n, 2);
    cr_expect_eq(te.labels[0], 9);
    cr_expect_eq(te.images[3071], (uint8_t)(7 * 13 + 3071));
    sq_dataset_free(&tr);
    sq_dataset_free(&te);
    /* with_labels = 0: label bytes skipped, labels NULL, pixels unchanged */
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &tr), SQ_OK, "%s", sq_last_error());
    cr_expect_null(tr.labels);
    cr_expect_eq(tr.images[3072 + 5], (uint8_t)(7 + 5));
    sq_dataset_free(&tr);
    /* a missing batch is named */
    remove(tpath("c/data_batch_3.bin"));
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 1, &tr), SQ_EIO);
    expect_error_has("data_batch_3.bin");
}

Test(data, cifar_truncated_and_bad_label)
{
    mkdir_t("c");
    uint8_t labs[2] = {1, 2};
    write_cifar(tpath("c/test_batch.bin"), 2, 1, labs, 0);
    cr_assert_eq(truncate(tpath("c/test_batch.bin"), 2 * 3073 - 5), 0);
    char spec[600];
    snprintf(spec, sizeof spec, "cifar10:%s", tpath("c"));
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TEST, 1, &ds), SQ_EFORMAT);
    expect_error_has(tpath("c/test_batch.bin"));
    expect_error_has("byte 3073");
    uint8_t bad[2] = {1, 10};
    write_cifar(tpath("c/test_batch.bin"), 2, 1, bad, 0);
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TEST, 1, &ds), SQ_EFORMAT);
    expect_error_has("label 10 at byte 3073");
}

Test(data, cifar10_real_test_labels)
{
    /* the shared data sit beside the checkout (../shared) in CI and at /work/shared here */
    const char *dir = access("../shared/data/cifar10/test_batch.bin", R_OK) == 0 ? "../shared/data/cifar10"
                                                                               : "/work/shared/data/cifar10";
    char p[256], spec[256];
    snprintf(p, sizeof p, "%s/test_batch.bin", dir);
    snprintf(spec, sizeof spec, "cifar10:%s", dir);
    if (access(p, R_OK) != 0) cr_skip_test("real CIFAR-10 not present (%s missing)", p);
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TEST, 1, &ds), SQ_OK,
                 "%s", sq_last_error());
    static const int want[20] = {3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6};
    cr_expect_eq(ds.n, 10000);
    for (int i = 0; i < 20; i++)
        cr_expect_eq(ds.labels[i], want[i], "test label %d: got %d want %d", i, ds.labels[i], want[i]);
    sq_dataset_free(&ds);
}

Test(data, cifar100_synthetic)
{
    mkdir_t("c");
    uint8_t labs[6] = {19, 99, 0, 5, 7, 42}; /* (coarse, fine) pairs */
    write_cifar(tpath("c/train.bin"), 3, 2, labs, 1);
    write_cifar(tpath("c/test.bin"), 1, 2, labs + 2, 2);
    char spec[600];
    snprintf(spec, sizeof spec, "cifar100:%s", tpath("c"));
    sq_dataset tr, te;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 1, &tr), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(tr.n, 3);
    cr_expect_eq(tr.classes, 100);
    cr_expect_eq(tr.labels[0], 99, "fine label used");
    cr_expect_eq(tr.labels[1], 5);
    cr_expect_eq(tr.labels[2], 42);
    cr_expect_eq(tr.images[3072 * 2 + 10], (uint8_t)(13 + 14 + 10), "pixels after 2 label bytes");
    cr_expect_eq(tr.mean[1], 0.4867f);
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TEST, 0, &te), SQ_OK, "%s", sq_last_error());
    cr_expect_null(te.labels);
    cr_expect_eq(te.images[0], (uint8_t)26);
    sq_dataset_free(&tr);
    sq_dataset_free(&te);
}

/* ---------------------------------------------------------------- folder */

Test(data, folder_classes_png)
{
    mkdir_t("f");
    mkdir_t("f/dog");
    mkdir_t("f/cat");
    write_rgb_png(tpath("f/dog/z.png"), 4, 3, 2);
    write_rgb_png(tpath("f/cat/b.PNG"), 4, 3, 1);
    write_rgb_png(tpath("f/cat/a.png"), 4, 3, 0);
    write_bytes(tpath("f/cat/notes.txt"), "x", 1, 0);
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", tpath("f"));
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 1, &ds), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(ds.n, 3);
    cr_expect(ds.c == 3 && ds.h == 3 && ds.w == 4, "shape %dx%dx%d", ds.c, ds.h, ds.w);
    cr_expect_eq(ds.classes, 2);
    cr_assert_not_null(ds.labels);
    const int want_lab[3] = {0, 0, 1}, want_seed[3] = {0, 1, 2}; /* cat/a, cat/b, dog/z */
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(ds.labels[i], want_lab[i], "label %d", i);
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < 3; y++)
                for (int x = 0; x < 4; x++) {
                    uint8_t got = ds.images[((size_t)(i * 3 + ch) * 3 + y) * 4 + x];
                    uint8_t want = rgb_px(want_seed[i], y, x, ch);
                    cr_expect_eq(got, want, "img %d c%d y%d x%d: got %d want %d", i, ch, y, x, got, want);
                }
    }
    sq_dataset_free(&ds);
    cr_expect_eq(sq_dataset_open(spec, SQ_SPLIT_TEST, 1, &ds), SQ_EARG, "no test split");
}

Test(data, folder_unlabeled_gray_palette_rgba_16bit)
{
    mkdir_t("u");
    uint8_t g[6] = {0, 10, 20, 30, 40, 255};
    write_png(tpath("u/1.png"), 3, 2, PNG_COLOR_TYPE_GRAY, 8, g, NULL, 0);
    uint8_t g16[12];
    for (int i = 0; i < 6; i++) g16[2 * i] = (uint8_t)(100 + i), g16[2 * i + 1] = 0x7F;
    write_png(tpath("u/2.png"), 3, 2, PNG_COLOR_TYPE_GRAY, 16, g16, NULL, 0);
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", tpath("u"));
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 1, &ds), SQ_OK, "%s", sq_last_error());
    cr_expect(ds.n == 2 && ds.c == 1 && ds.h == 2 && ds.w == 3);
    cr_expect_null(ds.labels, "flat folder is unlabeled");
    cr_expect_eq(ds.classes, 0);
    cr_expect_eq(ds.images[5], 255);
    cr_expect_eq(ds.images[6 + 2], 102, "16-bit stripped to its high byte");
    /* mean computed from the pixels: (0+10+20+30+40+255 + 100+..+105) / 12 / 255 */
    double m = (355.0 + 615.0) / 12.0 / 255.0;
    cr_expect(fabsf(ds.mean[0] - (float)m) <= 1e-6f, "mean %g want %g", ds.mean[0], m); /* float rounding */
    sq_dataset_free(&ds);

    mkdir_t("p");
    png_color pal[2] = {{10, 20, 30}, {200, 100, 50}};
    uint8_t idx[4] = {0, 1, 1, 0};
    write_png(tpath("p/pal.png"), 2, 2, PNG_COLOR_TYPE_PALETTE, 8, idx, pal, 2);
    uint8_t rgba[16];
    for (int i = 0; i < 16; i++) rgba[i] = (uint8_t)(i * 16 + 1);
    write_png(tpath("p/rgba.png"), 2, 2, PNG_COLOR_TYPE_RGBA, 8, rgba, NULL, 0);
    snprintf(spec, sizeof spec, "folder:%s", tpath("p"));
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_OK, "%s", sq_last_error());
    cr_expect(ds.n == 2 && ds.c == 3);
    cr_expect_eq(ds.images[1], 200, "palette expanded: R of pixel (0,1)");
    cr_expect_eq(ds.images[4 + 1], 100, "palette expanded: G of pixel (0,1)");
    /* rgba.png: pixel p has R = rgba[4p], G = rgba[4p+1]; alpha dropped */
    cr_expect_eq(ds.images[12 + 3], rgba[12], "R of pixel 3");
    cr_expect_eq(ds.images[12 + 4 + 0], rgba[1], "G of pixel 0");
    sq_dataset_free(&ds);
}

Test(data, folder_corrupt_png_named)
{
    mkdir_t("f");
    write_rgb_png(tpath("f/good.png"), 4, 4, 0);
    FILE *fp = fopen(tpath("f/good.png"), "rb");
    uint8_t buf[4096];
    size_t k = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    write_bytes(tpath("f/half.png"), buf, k - 20, 0); /* signature intact, data cut */
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", tpath("f"));
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    expect_error_has(tpath("f/half.png"));
    remove(tpath("f/half.png"));
    write_bytes(tpath("f/junk.png"), "hello, not a png", 16, 0);
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    expect_error_has(tpath("f/junk.png"));
    memcpy(buf + 40, "garbagegarbage", 14); /* corrupt the IHDR/IDAT bytes, keep the signature */
    write_bytes(tpath("f/junk.png"), buf, k, 0);
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    expect_error_has(tpath("f/junk.png"));
}

Test(data, folder_jpeg)
{
    mkdir_t("j");
    uint8_t px[8 * 8 * 3];
    for (int i = 0; i < 64; i++) px[3 * i] = 200, px[3 * i + 1] = 100, px[3 * i + 2] = 30;
    write_jpeg(tpath("j/a.jpg"), 8, 8, 3, px);
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", tpath("j"));
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_OK, "%s", sq_last_error());
    cr_assert(ds.n == 1 && ds.c == 3 && ds.h == 8 && ds.w == 8);
    /* JPEG quality 100 of a flat colour: only YCbCr rounding error, well within 3 levels */
    const int want[3] = {200, 100, 30};
    for (int ch = 0; ch < 3; ch++)
        for (int p = 0; p < 64; p++) {
            int got = ds.images[ch * 64 + p];
            cr_expect(abs(got - want[ch]) <= 3, "c%d p%d: got %d want %d", ch, p, got, want[ch]);
        }
    sq_dataset_free(&ds);
    /* a truncated JPEG is an error naming the file, not a crash or exit */
    FILE *fp = fopen(tpath("j/a.jpg"), "rb");
    uint8_t buf[8192];
    size_t k = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    write_bytes(tpath("j/a.jpg"), buf, k / 2, 0);
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    expect_error_has(tpath("j/a.jpg"));
}

Test(data, folder_size_mismatch)
{
    mkdir_t("f");
    write_rgb_png(tpath("f/a.png"), 4, 4, 0);
    write_rgb_png(tpath("f/b.png"), 5, 4, 0);
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", tpath("f"));
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    expect_error_has(tpath("f/b.png"));
    expect_error_has("4x5x3");
    expect_error_has("4x4x3");
}

Test(data, folder_train_test_split)
{
    mkdir_t("s");
    mkdir_t("s/train");
    mkdir_t("s/test");
    mkdir_t("s/train/a");
    mkdir_t("s/train/b");
    mkdir_t("s/test/b");
    write_rgb_png(tpath("s/train/a/1.png"), 2, 2, 0);
    write_rgb_png(tpath("s/train/b/1.png"), 2, 2, 1);
    write_rgb_png(tpath("s/test/b/9.png"), 2, 2, 3);
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", tpath("s"));
    sq_dataset tr, te;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 1, &tr), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TEST, 1, &te), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(tr.n, 2);
    cr_expect_eq(te.n, 1);
    cr_expect_eq(te.labels[0], 1, "test class b maps to train class index 1");
    cr_expect_eq(te.classes, 2);
    sq_dataset_free(&tr);
    sq_dataset_free(&te);
}

/* ---------------------------------------------------------------- holdout */

static sq_dataset make_ds(int n, int c, int h, int w, int labeled)
{
    sq_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.n = n, ds.c = c, ds.h = h, ds.w = w;
    ds.images = malloc((size_t)n * c * h * w);
    for (size_t i = 0; i < (size_t)n * c * h * w; i++) ds.images[i] = (uint8_t)(i / ((size_t)c * h * w));
    if (labeled) {
        ds.labels = malloc((size_t)n * sizeof(int32_t));
        for (int i = 0; i < n; i++) ds.labels[i] = i;
    }
    for (int k = 0; k < 4; k++) ds.mean[k] = 0.0f, ds.std[k] = 1.0f;
    snprintf(ds.name, sizeof ds.name, "synthetic");
    return ds;
}

Test(data, holdout_deterministic)
{
    sq_dataset ds = make_ds(50, 1, 2, 2, 1), r1, h1, r2, h2, r3, h3;
    ds.mean[0] = 0.25f;
    cr_assert_eq(sq_dataset_holdout(&ds, 0.2f, 7, &r1, &h1), SQ_OK);
    cr_assert_eq(sq_dataset_holdout(&ds, 0.2f, 7, &r2, &h2), SQ_OK);
    cr_assert_eq(sq_dataset_holdout(&ds, 0.2f, 8, &r3, &h3), SQ_OK);
    cr_assert_eq(r1.n, 40);
    cr_assert_eq(h1.n, 10);
    int seen[50] = {0}, same = 1, diff = 0;
    for (int i = 0; i < 40; i++) seen[r1.labels[i]]++;
    for (int i = 0; i < 10; i++) {
        seen[h1.labels[i]]++;
        same &= h1.labels[i] == h2.labels[i];
        diff |= h1.labels[i] != h3.labels[i];
        cr_expect_eq(h1.images[4 * i], (uint8_t)h1.labels[i], "image follows its label");
    }
    for (int i = 0; i < 50; i++) cr_expect_eq(seen[i], 1, "sample %d appears %d times", i, seen[i]);
    cr_expect(same, "same seed -> same split");
    cr_expect(diff, "another seed -> another split");
    cr_expect(h1.images != ds.images && r1.images != ds.images, "copies");
    cr_expect_eq(h1.mean[0], 0.25f, "normalization carried over");
    cr_expect_eq(sq_dataset_holdout(&ds, 0.0f, 7, &r2, &h2), SQ_EARG);
    cr_expect_eq(sq_dataset_holdout(&ds, 1.0f, 7, &r2, &h2), SQ_EARG);
    sq_dataset_free(&r1), sq_dataset_free(&h1), sq_dataset_free(&r2), sq_dataset_free(&h2);
    sq_dataset_free(&r3), sq_dataset_free(&h3), sq_dataset_free(&ds);
}

/* ---------------------------------------------------------------- loader */

static sq_loader *mk_loader(const sq_dataset *ds, int batch, int shuffle, int pad, int flip,
                            int drop_last, uint64_t seed)
{
    sq_loader_opts o = {.batch = batch, .shuffle = shuffle, .crop_pad = pad, .flip = flip,
                        .drop_last = drop_last, .seed = seed};
    sq_loader *l = NULL;
    cr_assert_eq(sq_loader_create(ds, &o, &l), SQ_OK, "%s", sq_last_error());
    return l;
}

/* Reads one epoch of labels (sample ids) into ids; returns the count. */
static int epoch_ids(sq_loader *l, int epoch, int *ids, int *sizes)
{
    sq_loader_start_epoch(l, epoch);
    const float *x;
    const int32_t *y;
    int n, k = 0, b = 0;
    while ((n = sq_loader_next(l, &x, &y)) > 0) {
        if (sizes) sizes[b] = n;
        b++;
        for (int i = 0; i < n; i++) {
            cr_assert_eq(x[i], (float)y[i] / 255.0f, "pixel follows label %d", y[i]); /* mean 0 std 1 */
            ids[k++] = y[i];
        }
    }
    return k;
}

Test(data, loader_each_index_once_and_deterministic)
{
    sq_dataset ds = make_ds(37, 1, 1, 1, 1);
    sq_loader *a = mk_loader(&ds, 8, 1, 0, 0, 0, 42), *b = mk_loader(&ds, 8, 1, 0, 0, 0, 42);
    cr_assert_eq(sq_loader_batches(a), 5);
    int ia[37], ib[37], ic[37], sizes[5];
    for (int e = 0; e < 3; e++) {
        cr_assert_eq(epoch_ids(a, e, ia, sizes), 37);
        cr_expect_eq(sizes[4], 5, "last partial batch kept without drop_last");
        int seen[37] = {0};
        for (int i = 0; i < 37; i++) seen[ia[i]]++;
        for (int i = 0; i < 37; i++) cr_expect_eq(seen[i], 1, "epoch %d index %d seen %d times", e, i, seen[i]);
        cr_assert_eq(epoch_ids(b, e, ib, NULL), 37);
        for (int i = 0; i < 37; i++) cr_expect_eq(ia[i], ib[i], "epoch %d pos %d: %d vs %d", e, i, ia[i], ib[i]);
    }
    epoch_ids(a, 0, ia, NULL);
    epoch_ids(a, 1, ic, NULL);
    int differ = 0;
    for (int i = 0; i < 37; i++) differ |= ia[i] != ic[i];
    cr_expect(differ, "epochs 0 and 1 must have different orders");
    sq_loader_free(a);
    sq_loader_free(b);
    sq_dataset_free(&ds);
}

Test(data, loader_drop_last_counts)
{
    sq_dataset ds = make_ds(37, 1, 1, 1, 1);
    sq_loader *l = mk_loader(&ds, 8, 0, 0, 0, 1, 1);
    cr_expect_eq(sq_loader_batches(l), 4);
    int ids[37], sizes[8] = {0};
    cr_expect_eq(epoch_ids(l, 0, ids, sizes), 32);
    for (int b = 0; b < 4; b++) cr_expect_eq(sizes[b], 8, "batch %d size %d", b, sizes[b]);
    for (int i = 0; i < 32; i++) cr_expect_eq(ids[i], i, "no shuffle keeps order");
    const float *x;
    cr_expect_eq(sq_loader_next(l, &x, NULL), 0, "still 0 after the end");
    sq_loader_free(l);
    sq_loader_opts o = {.batch = 64, .drop_last = 1};
    cr_expect_eq(sq_loader_create(&ds, &o, &l), SQ_EARG, "fewer samples than one batch");
    sq_dataset_free(&ds);
}

Test(data, loader_skip_and_restart)
{
    sq_dataset ds = make_ds(40, 1, 1, 1, 1);
    sq_loader *l = mk_loader(&ds, 4, 1, 0, 0, 1, 9);
    int full[40];
    epoch_ids(l, 3, full, NULL);
    cr_expect_eq(sq_loader_skip(l, 11), SQ_EARG, "out of range");
    sq_loader_start_epoch(l, 3);
    const float *x;
    const int32_t *y;
    cr_assert_eq(sq_loader_next(l, &x, &y), 4);
    cr_assert_eq(sq_loader_next(l, &x, &y), 4);
    /* restart mid-epoch: the epoch begins again from batch 0 */
    sq_loader_start_epoch(l, 3);
    cr_assert_eq(sq_loader_next(l, &x, &y), 4);
    for (int i = 0; i < 4; i++) cr_expect_eq(y[i], full[i], "restart pos %d", i);
    cr_assert_eq(sq_loader_skip(l, 7), SQ_OK, "%s", sq_last_error());
    int k = 28, n;
    while ((n = sq_loader_next(l, &x, &y)) > 0)
        for (int i = 0; i < n; i++, k++) cr_expect_eq(y[i], full[k], "after skip pos %d: %d vs %d", k, y[i], full[k]);
    cr_expect_eq(k, 40);
    sq_loader_free(l);
    l = mk_loader(&ds, 4, 1, 0, 0, 1, 9);
    cr_expect_eq(sq_loader_skip(l, 1), SQ_EARG, "skip before start_epoch");
    sq_loader_free(l);
    sq_dataset_free(&ds);
}

Test(data, loader_flip_mirrors_exactly)
{
    sq_dataset ds = make_ds(200, 2, 3, 4, 0);
    for (int i = 0; i < 200; i++)
        for (int p = 0; p < 24; p++) ds.images[i * 24 + p] = (uint8_t)(p * 10 + 1);
    sq_loader *l = mk_loader(&ds, 50, 0, 0, 1, 0, 5);
    sq_loader_start_epoch(l, 0);
    const float *x;
    int32_t sentinel = -7;
    const int32_t *y = &sentinel;
    int n, nflip = 0, nid = 0;
    while ((n = sq_loader_next(l, &x, &y)) > 0)
        for (int i = 0; i < n; i++) {
            const float *s = x + i * 24;
            int id = 1, fl = 1;
            for (int c = 0; c < 2; c++)
                for (int r = 0; r < 3; r++)
                    for (int q = 0; q < 4; q++) {
                        float v = s[(c * 3 + r) * 4 + q];
                        id &= v == (float)(((c * 3 + r) * 4 + q) * 10 + 1) / 255.0f;
                        fl &= v == (float)(((c * 3 + r) * 4 + (3 - q)) * 10 + 1) / 255.0f;
                    }
            cr_expect(id || fl, "sample %d is neither the image nor its exact mirror", i);
            nflip += fl, nid += id;
        }
    cr_expect(y == &sentinel, "unlabeled data leaves y untouched");
    /* 200 fair coin flips: both outcomes occur (probability of failure 2^-199) */
    cr_expect(nflip > 0 && nid > 0, "flips %d identities %d", nflip, nid);
    cr_expect_eq(nflip + nid, 200);
    sq_loader_free(l);
    sq_dataset_free(&ds);
}

Test(data, loader_crop_values_and_batching_independence)
{
    /* 1000 copies of a 4x5 image with values 1..20 (never 0, so padding is recognisable) */
    const int H = 4, W = 5, P = 2, N = 1000;
    sq_dataset ds = make_ds(N, 1, H, W, 0);
    for (int i = 0; i < N; i++)
        for (int p = 0; p < H * W; p++) ds.images[i * H * W + p] = (uint8_t)(p + 1);
    sq_loader *a = mk_loader(&ds, 100, 0, P, 1, 0, 11), *b = mk_loader(&ds, 7, 0, P, 1, 0, 11);
    sq_loader_start_epoch(a, 2);
    sq_loader_start_epoch(b, 2);
    int combos[5][5][2] = {{{0}}}, k = 0, kb = 0, n, nbat = 0;
    const float *x, *xb = NULL;
    float *all = malloc(sizeof(float) * N * H * W);
    while ((n = sq_loader_next(a, &x, NULL)) > 0)
        for (int i = 0; i < n; i++, k++) memcpy(all + (size_t)k * H * W, x + i * H * W, sizeof(float) * H * W);
    for (int i = 0; i < N; i++) {
        const float *s = all + (size_t)i * H * W;
        int found = 0;
        for (int oy = -P; oy <= P && !found; oy++)
            for (int ox = -P; ox <= P && !found; ox++)
                for (int f = 0; f < 2 && !found; f++) {
                    int ok = 1;
                    for (int y = 0; y < H && ok; y++)
                        for (int xx = 0; xx < W && ok; xx++) {
                            int sy = y + oy, sx = (f ? W - 1 - xx : xx) + ox;
                            int v = (sy >= 0 && sy < H && sx >= 0 && sx < W) ? sy * W + sx + 1 : 0;
                            ok = s[y * W + xx] == (float)v / 255.0f;
                        }
                    if (ok) combos[oy + P][ox + P][f]++, found = 1;
                }
        cr_expect(found, "sample %d is no zero-padded crop/flip of the image", i);
    }
    int distinct = 0;
    for (int i = 0; i < 50; i++) distinct += ((int *)combos)[i] > 0;
    /* 1000 uniform draws over 50 outcomes: all appear (miss probability < 1e-7) */
    cr_expect_eq(distinct, 50, "only %d of 50 crop/flip outcomes seen", distinct);
    /* same seed and epoch with another batch size gives the same per-sample values */
    while ((n = sq_loader_next(b, &xb, NULL)) > 0) {
        nbat++;
        for (int i = 0; i < n * H * W; i++, kb++)
            if (xb[i] != all[kb]) {
                cr_expect_eq(xb[i], all[kb], "batch-7 loader differs at %d", kb);
                break;
            }
    }
    cr_expect_eq(kb, N * H * W);
    cr_expect_eq(nbat, (N + 6) / 7);
    free(all);
    sq_loader_free(a);
    sq_loader_free(b);
    sq_dataset_free(&ds);
}

Test(data, loader_normalization_exact)
{
    sq_dataset ds = make_ds(3, 2, 1, 2, 1);
    const uint8_t px[12] = {0, 255, 51, 128, 1, 2, 3, 4, 200, 201, 254, 7};
    memcpy(ds.images, px, 12);
    ds.mean[0] = 0.5f, ds.std[0] = 0.25f, ds.mean[1] = 0.4822f, ds.std[1] = 0.1994f;
    sq_loader *l = mk_loader(&ds, 3, 0, 0, 0, 0, 0);
    sq_loader_start_epoch(l, 0);
    const float *x;
    const int32_t *y;
    cr_assert_eq(sq_loader_next(l, &x, &y), 3);
    for (int i = 0; i < 12; i++) {
        int c = (i / 2) % 2;
        float want = ((float)px[i] / 255.0f - ds.mean[c]) / ds.std[c];
        double ref = (px[i] / 255.0 - ds.mean[c]) / ds.std[c];
        cr_expect_eq(x[i], want, "x[%d] = %.9g, want %.9g", i, x[i], want);
        /* the float formula itself within 3 float ulps of the double reference */
        cr_expect(fabs(x[i] - ref) <= 1e-6 + 4e-7 * fabs(ref), "x[%d] = %.9g, ref %.9g", i, x[i], ref);
    }
    cr_expect_eq(x[0], -2.0f, "(0 - 0.5) / 0.25");
    cr_expect_eq(x[1], 2.0f, "(1 - 0.5) / 0.25");
    sq_loader_free(l);
    /* computed normalization for an unknown dataset: mean and population std per channel */
    sq_dataset_set_default_norm(&ds);
    double m0 = (0 + 255 + 1 + 2 + 200 + 201) / 6.0 / 255.0;
    cr_expect(fabsf(ds.mean[0] - (float)m0) <= 1e-6f, "mean %g want %g", ds.mean[0], m0); /* float rounding */
    sq_dataset_free(&ds);
}
