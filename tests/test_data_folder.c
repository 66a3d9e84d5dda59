/* test_data_folder.c: Criterion suite "data" (declared with its fixture in
   test_data_idx_cifar.c): the folder dataset of PNG/JPEG images: class subdirectories, flat
   unlabeled folders, gray/palette/RGBA/16-bit PNGs, JPEG, corrupt or truncated files named in the
   error, size mismatches, train/test subfolders. Files go under the suite's per-test scratch
   directory (sqt_scratch_dir). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#include "sqakd/data.h"
#include "util_fixtures.h"

/* ---------------------------------------------------------------- helpers: PNG and JPEG writers */

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

/* ---------------------------------------------------------------- folder */

Test(data, folder_classes_png)
{
    sqt_tmkdir("f");
    sqt_tmkdir("f/dog");
    sqt_tmkdir("f/cat");
    write_rgb_png(sqt_tpath("f/dog/z.png"), 4, 3, 2);
    write_rgb_png(sqt_tpath("f/cat/b.PNG"), 4, 3, 1);
    write_rgb_png(sqt_tpath("f/cat/a.png"), 4, 3, 0);
    sqt_write_bytes(sqt_tpath("f/cat/notes.txt"), "x", 1, 0);
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("f"));
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
    sqt_tmkdir("u");
    uint8_t g[6] = {0, 10, 20, 30, 40, 255};
    write_png(sqt_tpath("u/1.png"), 3, 2, PNG_COLOR_TYPE_GRAY, 8, g, NULL, 0);
    uint8_t g16[12];
    for (int i = 0; i < 6; i++) g16[2 * i] = (uint8_t)(100 + i), g16[2 * i + 1] = 0x7F;
    write_png(sqt_tpath("u/2.png"), 3, 2, PNG_COLOR_TYPE_GRAY, 16, g16, NULL, 0);
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("u"));
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

    sqt_tmkdir("p");
    png_color pal[2] = {{10, 20, 30}, {200, 100, 50}};
    uint8_t idx[4] = {0, 1, 1, 0};
    write_png(sqt_tpath("p/pal.png"), 2, 2, PNG_COLOR_TYPE_PALETTE, 8, idx, pal, 2);
    uint8_t rgba[16];
    for (int i = 0; i < 16; i++) rgba[i] = (uint8_t)(i * 16 + 1);
    write_png(sqt_tpath("p/rgba.png"), 2, 2, PNG_COLOR_TYPE_RGBA, 8, rgba, NULL, 0);
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("p"));
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
    sqt_tmkdir("f");
    write_rgb_png(sqt_tpath("f/good.png"), 4, 4, 0);
    FILE *fp = fopen(sqt_tpath("f/good.png"), "rb");
    uint8_t buf[4096];
    size_t k = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    sqt_write_bytes(sqt_tpath("f/half.png"), buf, k - 20, 0); /* signature intact, data cut */
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("f"));
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    sqt_expect_error_has(sqt_tpath("f/half.png"));
    remove(sqt_tpath("f/half.png"));
    sqt_write_bytes(sqt_tpath("f/junk.png"), "hello, not a png", 16, 0);
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    sqt_expect_error_has(sqt_tpath("f/junk.png"));
    memcpy(buf + 40, "garbagegarbage", 14); /* corrupt the IHDR/IDAT bytes, keep the signature */
    sqt_write_bytes(sqt_tpath("f/junk.png"), buf, k, 0);
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    sqt_expect_error_has(sqt_tpath("f/junk.png"));
}

Test(data, folder_jpeg)
{
    sqt_tmkdir("j");
    uint8_t px[8 * 8 * 3];
    for (int i = 0; i < 64; i++) px[3 * i] = 200, px[3 * i + 1] = 100, px[3 * i + 2] = 30;
    write_jpeg(sqt_tpath("j/a.jpg"), 8, 8, 3, px);
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("j"));
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
    FILE *fp = fopen(sqt_tpath("j/a.jpg"), "rb");
    uint8_t buf[8192];
    size_t k = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    sqt_write_bytes(sqt_tpath("j/a.jpg"), buf, k / 2, 0);
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    sqt_expect_error_has(sqt_tpath("j/a.jpg"));
}

Test(data, folder_size_mismatch)
{
    sqt_tmkdir("f");
    write_rgb_png(sqt_tpath("f/a.png"), 4, 4, 0);
    write_rgb_png(sqt_tpath("f/b.png"), 5, 4, 0);
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("f"));
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    sqt_expect_error_has(sqt_tpath("f/b.png"));
    sqt_expect_error_has("4x5x3");
    sqt_expect_error_has("4x4x3");
}

Test(data, folder_train_test_split)
{
    sqt_tmkdir("s");
    sqt_tmkdir("s/train");
    sqt_tmkdir("s/test");
    sqt_tmkdir("s/train/a");
    sqt_tmkdir("s/train/b");
    sqt_tmkdir("s/test/b");
    write_rgb_png(sqt_tpath("s/train/a/1.png"), 2, 2, 0);
    write_rgb_png(sqt_tpath("s/train/b/1.png"), 2, 2, 1);
    write_rgb_png(sqt_tpath("s/test/b/9.png"), 2, 2, 3);
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("s"));
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

/* Two links back to their own folder: following them blindly walks 2^64 paths. Each directory is
   walked once; reaching one again is an error naming both paths, at once. */
Test(data, folder_symlink_loops_fail_at_once)
{
    sqt_tmkdir("l");
    write_rgb_png(sqt_tpath("l/1.png"), 2, 2, 0);
    cr_assert_eq(symlink(".", sqt_tpath("l/a")), 0);
    cr_assert_eq(symlink(".", sqt_tpath("l/b")), 0);
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("l"));
    sq_dataset ds;
    double t0 = sq_now();
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    cr_expect(sq_now() - t0 < 1.0, "took %.1f s", sq_now() - t0);
    sqt_expect_error_has("again (symbolic links)");
    sqt_expect_error_has(sqt_tpath("l"));
    /* two class folders that are one directory: each image would get two labels */
    sqt_tmkdir("c");
    sqt_tmkdir("c/cat");
    write_rgb_png(sqt_tpath("c/cat/1.png"), 2, 2, 0);
    cr_assert_eq(symlink("cat", sqt_tpath("c/dog")), 0);
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("c"));
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 1, &ds), SQ_EFORMAT);
    sqt_expect_error_has("again (symbolic links)");
}

/* A class folder reached through one link is followed as before. */
Test(data, folder_class_folder_through_a_symlink)
{
    sqt_tmkdir("real");
    write_rgb_png(sqt_tpath("real/1.png"), 2, 2, 0);
    sqt_tmkdir("f");
    sqt_tmkdir("f/a");
    write_rgb_png(sqt_tpath("f/a/2.png"), 2, 2, 1);
    cr_assert_eq(symlink(sqt_tpath("real"), sqt_tpath("f/b")), 0);
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("f"));
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 1, &ds), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(ds.n, 2);
    cr_expect_eq(ds.labels[1], 1, "the linked folder is class b");
    sq_dataset_free(&ds);
}
