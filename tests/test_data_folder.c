/* test_data_folder.c: Criterion suite "data" (declared with its fixture in
   test_data_idx_cifar.c): the folder dataset of PNG/JPEG images: class subdirectories, flat
   unlabeled folders, gray/palette/RGBA/16-bit PNGs, JPEG, corrupt or truncated files named in the
   error, size mismatches, train/test subfolders; colour conversion (a greyscale JPEG or gray +
   alpha PNG among colour images, CMYK and YCCK JPEG with and without Adobe's inversion), the
   resize and centre crop against hand-computed PIL values, the Tiny-ImageNet layout, and the
   streamed dataset's hold-out and change detection. Files go under the suite's per-test scratch
   directory (sqt_scratch_dir). Folder datasets are streamed: pixels are read with
   sq_dataset_fetch. */
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

/* ---------------------------------------------------------------- helpers (PNG and JPEG files: util_fixtures.h) */

/* pixel (y, x, ch) of a test RGB image with seed s */
static uint8_t rgb_px(int s, int y, int x, int ch) { return (uint8_t)(s * 50 + y * 20 + x * 5 + ch * 70); }

static void write_rgb_png(const char *path, int w, int h, int s)
{
    uint8_t *px = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < 3; ch++) px[((size_t)y * w + x) * 3 + ch] = rgb_px(s, y, x, ch);
    sqt_write_png(path, w, h, PNG_COLOR_TYPE_RGB, 8, px, NULL, 0);
    free(px);
}

/* every sample's pixels, (N, C, H, W) as an in-memory dataset holds them (malloc'ed) */
static uint8_t *fetch_all(const sq_dataset *ds)
{
    const size_t sample = (size_t)ds->c * ds->h * ds->w;
    uint8_t *all = malloc((size_t)ds->n * sample + 1);
    cr_assert_not_null(all);
    for (int i = 0; i < ds->n; i++)
        cr_assert_eq(sq_dataset_fetch(ds, i, all + (size_t)i * sample), SQ_OK, "sample %d: %s", i, sq_last_error());
    return all;
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
    cr_expect_null(ds.images, "streamed: nothing decoded at open");
    cr_expect_not_null(ds.stream);
    cr_expect_str_eq(sq_dataset_path(&ds, 2), sqt_tpath("f/dog/z.png"));
    uint8_t *img = fetch_all(&ds);
    const int want_lab[3] = {0, 0, 1}, want_seed[3] = {0, 1, 2}; /* cat/a, cat/b, dog/z */
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(ds.labels[i], want_lab[i], "label %d", i);
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < 3; y++)
                for (int x = 0; x < 4; x++) {
                    uint8_t got = img[((size_t)(i * 3 + ch) * 3 + y) * 4 + x];
                    uint8_t want = rgb_px(want_seed[i], y, x, ch);
                    cr_expect_eq(got, want, "img %d c%d y%d x%d: got %d want %d", i, ch, y, x, got, want);
                }
    }
    free(img);
    sq_dataset_free(&ds);
    cr_expect_eq(sq_dataset_open(spec, SQ_SPLIT_TEST, 1, &ds), SQ_EARG, "no test split");
}

Test(data, folder_unlabeled_gray_palette_rgba_16bit)
{
    sqt_tmkdir("u");
    uint8_t g[6] = {0, 10, 20, 30, 40, 255};
    sqt_write_png(sqt_tpath("u/1.png"), 3, 2, PNG_COLOR_TYPE_GRAY, 8, g, NULL, 0);
    uint8_t g16[12];
    for (int i = 0; i < 6; i++) g16[2 * i] = (uint8_t)(100 + i), g16[2 * i + 1] = 0x7F;
    sqt_write_png(sqt_tpath("u/2.png"), 3, 2, PNG_COLOR_TYPE_GRAY, 16, g16, NULL, 0);
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("u"));
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 1, &ds), SQ_OK, "%s", sq_last_error());
    cr_expect(ds.n == 2 && ds.c == 1 && ds.h == 2 && ds.w == 3);
    cr_expect_null(ds.labels, "flat folder is unlabeled");
    cr_expect_eq(ds.classes, 0);
    uint8_t *img = fetch_all(&ds);
    cr_expect_eq(img[5], 255);
    cr_expect_eq(img[6 + 2], 102, "16-bit stripped to its high byte");
    free(img);
    /* mean computed from the pixels: (0+10+20+30+40+255 + 100+..+105) / 12 / 255 */
    double m = (355.0 + 615.0) / 12.0 / 255.0;
    cr_expect(fabsf(ds.mean[0] - (float)m) <= 1e-6f, "mean %g want %g", ds.mean[0], m); /* float rounding */
    sq_dataset_free(&ds);

    sqt_tmkdir("p");
    png_color pal[2] = {{10, 20, 30}, {200, 100, 50}};
    uint8_t idx[4] = {0, 1, 1, 0};
    sqt_write_png(sqt_tpath("p/pal.png"), 2, 2, PNG_COLOR_TYPE_PALETTE, 8, idx, pal, 2);
    uint8_t rgba[16];
    for (int i = 0; i < 16; i++) rgba[i] = (uint8_t)(i * 16 + 1);
    sqt_write_png(sqt_tpath("p/rgba.png"), 2, 2, PNG_COLOR_TYPE_RGBA, 8, rgba, NULL, 0);
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("p"));
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_OK, "%s", sq_last_error());
    cr_expect(ds.n == 2 && ds.c == 3);
    img = fetch_all(&ds);
    cr_expect_eq(img[1], 200, "palette expanded: R of pixel (0,1)");
    cr_expect_eq(img[4 + 1], 100, "palette expanded: G of pixel (0,1)");
    /* rgba.png: pixel p has R = rgba[4p], G = rgba[4p+1]; alpha dropped */
    cr_expect_eq(img[12 + 3], rgba[12], "R of pixel 3");
    cr_expect_eq(img[12 + 4 + 0], rgba[1], "G of pixel 0");
    free(img);
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
    sqt_write_jpeg(sqt_tpath("j/a.jpg"), 8, 8, 3, px, 100);
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("j"));
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_OK, "%s", sq_last_error());
    cr_assert(ds.n == 1 && ds.c == 3 && ds.h == 8 && ds.w == 8);
    /* JPEG quality 100 of a flat colour: only YCbCr rounding error, well within 3 levels */
    const int want[3] = {200, 100, 30};
    uint8_t *img = fetch_all(&ds);
    for (int ch = 0; ch < 3; ch++)
        for (int p = 0; p < 64; p++) {
            int got = img[ch * 64 + p];
            cr_expect(abs(got - want[ch]) <= 3, "c%d p%d: got %d want %d", ch, p, got, want[ch]);
        }
    free(img);
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
    sqt_expect_error_has("is 4x5 (HxW)");
    sqt_expect_error_has(sqt_tpath("f/a.png"));
    sqt_expect_error_has("is 4x4");
    sqt_expect_error_has("--resize HxW");
    /* with a resize both become 3x3 */
    sq_data_opts o = {.resize_h = 3, .resize_w = 3};
    cr_assert_eq(sq_dataset_open_ex(spec, SQ_SPLIT_TRAIN, 0, &o, &ds), SQ_OK, "%s", sq_last_error());
    cr_expect(ds.n == 2 && ds.c == 3 && ds.h == 3 && ds.w == 3, "%dx%dx%dx%d", ds.n, ds.c, ds.h, ds.w);
    free(fetch_all(&ds));
    sq_dataset_free(&ds);
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

/* ---------------------------------------------------------------- colour conversion */

/* A 4x4 JPEG of flat 4-component samples px4 (as stored in the file) in colour space jcs
   (JCS_CMYK or JCS_YCCK), with or without the Adobe APP14 marker, quality 100. */
static void write_cmyk_jpeg(const char *path, J_COLOR_SPACE jcs, int adobe, const uint8_t px4[4])
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "fopen %s", path);
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr err;
    ci.err = jpeg_std_error(&err);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = 4, ci.image_height = 4, ci.input_components = 4, ci.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&ci);
    jpeg_set_colorspace(&ci, jcs);
    ci.write_Adobe_marker = adobe ? TRUE : FALSE;
    jpeg_set_quality(&ci, 100, TRUE);
    jpeg_start_compress(&ci, TRUE);
    uint8_t row[16];
    for (int x = 0; x < 4; x++) memcpy(row + 4 * x, px4, 4);
    while (ci.next_scanline < 4) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    fclose(f);
}

/* PIL's cmyk2rgb of one channel: (255 - K) - round(C * (255 - K) / 255) */
static int pil_cmyk(int c, int k)
{
    int nk = 255 - k, t = c * nk + 128;
    return nk - (((t >> 8) + t) >> 8);
}

/* The old reader refused a greyscale JPEG among colour images ("must share one size"): now the
   gray JPEG and a gray + alpha PNG are RGB with three equal planes, alpha dropped. */
Test(data, folder_greyscale_among_colour_becomes_rgb)
{
    sqt_tmkdir("g");
    write_rgb_png(sqt_tpath("g/a_rgb.png"), 4, 3, 1);
    uint8_t grey[12];
    for (int i = 0; i < 12; i++) grey[i] = 90;
    sqt_write_jpeg(sqt_tpath("g/b_grey.jpg"), 4, 3, 1, grey, 100);
    uint8_t ga[24];
    for (int i = 0; i < 12; i++) ga[2 * i] = (uint8_t)(10 * i), ga[2 * i + 1] = (uint8_t)(i * 20); /* gray, alpha */
    sqt_write_png(sqt_tpath("g/c_ga.png"), 4, 3, PNG_COLOR_TYPE_GRAY_ALPHA, 8, ga, NULL, 0);
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("g"));
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_OK, "%s", sq_last_error());
    cr_assert(ds.n == 3 && ds.c == 3 && ds.h == 3 && ds.w == 4, "%dx%dx%dx%d", ds.n, ds.c, ds.h, ds.w);
    uint8_t *img = fetch_all(&ds);
    for (int ch = 0; ch < 3; ch++)
        for (int p = 0; p < 12; p++) {
            cr_expect_eq(img[36 + ch * 12 + p], 90, "grey JPEG plane %d pixel %d: %d", ch, p, img[36 + ch * 12 + p]);
            cr_expect_eq(img[72 + ch * 12 + p], 10 * p, "gray + alpha plane %d pixel %d: %d", ch, p, img[72 + ch * 12 + p]);
        }
    free(img);
    sq_dataset_free(&ds);
}

/* CMYK and YCCK JPEG become RGB as PIL's convert("RGB"): with Adobe's marker (Photoshop) the file
   stores 255 - C (inverted), without it C itself. */
Test(data, folder_cmyk_and_ycck_jpeg_become_rgb)
{
    sqt_tmkdir("k");
    const uint8_t cmyk[4] = {20, 100, 200, 30};                                   /* C, M, Y, K */
    const uint8_t inv[4] = {255 - 20, 255 - 100, 255 - 200, 255 - 30};
    write_cmyk_jpeg(sqt_tpath("k/1_adobe_cmyk.jpg"), JCS_CMYK, 1, inv);
    write_cmyk_jpeg(sqt_tpath("k/2_adobe_ycck.jpg"), JCS_YCCK, 1, inv);
    write_cmyk_jpeg(sqt_tpath("k/3_plain_cmyk.jpg"), JCS_CMYK, 0, cmyk);
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("k"));
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_OK, "%s", sq_last_error());
    cr_assert(ds.n == 3 && ds.c == 3 && ds.h == 4 && ds.w == 4);
    uint8_t *img = fetch_all(&ds);
    const int want[3] = {pil_cmyk(20, 30), pil_cmyk(100, 30), pil_cmyk(200, 30)}; /* 207, 137, 49 */
    cr_expect(want[0] == 207 && want[1] == 137 && want[2] == 49, "PIL's formula: %d %d %d", want[0], want[1], want[2]);
    for (int i = 0; i < 3; i++)
        for (int ch = 0; ch < 3; ch++)
            for (int p = 0; p < 16; p++) {
                int got = img[(size_t)i * 48 + ch * 16 + p];
                /* quality 100 of a flat colour: CMYK is stored as is; YCCK adds YCbCr rounding */
                cr_expect(abs(got - want[ch]) <= 2, "image %d channel %d pixel %d: %d, want %d", i, ch, p, got, want[ch]);
            }
    free(img);
    sq_dataset_free(&ds);
}

/* ---------------------------------------------------------------- resize */

/* sq_image_resize_crop against values computed by hand from PIL's Resample.c and torchvision's
   Resize + CenterCrop (the comparison with torchvision itself is test_data_pil.c) */
Test(data, resize_crop_hand_computed)
{
    uint8_t out[64];
    /* a 2x2 upscaled to 4x4: rows and columns 0, 0.75a + 0.25b, 0.25a + 0.75b, b; fixed point
       rounds 63.75 to 64 and 191.25 to 191 */
    const uint8_t up[4] = {0, 255, 0, 255};
    cr_assert_eq(sq_image_resize_crop(up, 1, 2, 2, out, 4, 4), SQ_OK, "%s", sq_last_error());
    const uint8_t row[4] = {0, 64, 191, 255};
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++) cr_expect_eq(out[y * 4 + x], row[x], "up (%d, %d): %d", y, x, out[y * 4 + x]);
    /* a 2x4 to 1x1: Resize(1) makes it 1x2 (a triangle of support 2 over 4 columns: weights 3/7,
       3/7, 1/7 for the first output column; 1/2, 1/2 over the rows), CenterCrop(1) keeps column
       round(0.5) = 0: rows 17 and 57 (fixed point), then 37 */
    const uint8_t dn[8] = {10, 20, 30, 40, 50, 60, 70, 80};
    cr_assert_eq(sq_image_resize_crop(dn, 1, 2, 4, out, 1, 1), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(out[0], 37, "down: %d", out[0]);
    /* no resize needed (shorter side already the target): centre crops only, the start rounded
       half to even: 4 -> 2, 3 -> round(1.5) = 2, 5 -> round(2.5) = 2 */
    uint8_t wide[4 * 9];
    for (int i = 0; i < 36; i++) wide[i] = (uint8_t)(i % 9);
    const int widths[3] = {8, 7, 9}, starts[3] = {2, 2, 2};
    for (int k = 0; k < 3; k++) {
        uint8_t src[36];
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < widths[k]; x++) src[y * widths[k] + x] = (uint8_t)x;
        cr_assert_eq(sq_image_resize_crop(src, 1, 4, widths[k], out, 4, 4), SQ_OK);
        for (int x = 0; x < 4; x++) cr_expect_eq(out[x], starts[k] + x, "width %d column %d: %d", widths[k], x, out[x]);
    }
    (void)wide;
    /* 2 planes: each plane resized alike (a copy here) */
    uint8_t two[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    cr_assert_eq(sq_image_resize_crop(two, 2, 2, 2, out, 2, 2), SQ_OK);
    cr_expect_eq(memcmp(out, two, 8), 0);
    /* a non-square crop larger than the resized image along one axis: zero padding, (8 - 4) // 2
       = 2 columns before (torchvision's CenterCrop pads first) */
    uint8_t sq4[16];
    memset(sq4, 9, 16);
    cr_assert_eq(sq_image_resize_crop(sq4, 1, 4, 4, out, 4, 8), SQ_OK);
    for (int x = 0; x < 8; x++) cr_expect_eq(out[x], x >= 2 && x < 6 ? 9 : 0, "padded column %d: %d", x, out[x]);
    cr_expect_eq(sq_image_resize_crop(sq4, 1, 4, 4, out, 0, 4), SQ_EARG);
}

/* ---------------------------------------------------------------- Tiny-ImageNet */

/* DIR/wnids.txt (the class order: n02 before n01), train/<wnid>/images and a boxes file,
   val/images with val_annotations.txt, test/images (unlabeled, not read) */
static void tiny_tree(const char *root, const char *annotations)
{
    char p[600];
    const char *dirs[] = {"", "/train", "/train/n01", "/train/n01/images", "/train/n02", "/train/n02/images", "/val",
                          "/val/images", "/test", "/test/images"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        snprintf(p, sizeof p, "%s%s", root, dirs[i]);
        sqt_tmkdir(p);
    }
    snprintf(p, sizeof p, "%s/wnids.txt", root);
    sqt_write_bytes(sqt_tpath(p), "n02\r\nn01\n\n", 10, 0);
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/train/n01/images/n01_%d.JPEG", root, i);
        write_rgb_png(sqt_tpath(p), 4, 4, i); /* a PNG named .JPEG: the magic bytes decide */
        snprintf(p, sizeof p, "%s/train/n02/images/n02_%d.JPEG", root, i);
        write_rgb_png(sqt_tpath(p), 4, 4, 3 + i);
        snprintf(p, sizeof p, "%s/val/images/val_%d.JPEG", root, i);
        write_rgb_png(sqt_tpath(p), 4, 4, 6 + i);
    }
    snprintf(p, sizeof p, "%s/train/n01/n01_boxes.txt", root);
    sqt_write_bytes(sqt_tpath(p), "n01_0.JPEG\t0\t0\t3\t3\n", 20, 0);
    snprintf(p, sizeof p, "%s/test/images/test_0.JPEG", root);
    sqt_write_bytes(sqt_tpath(p), "not read", 8, 0);
    snprintf(p, sizeof p, "%s/val/val_annotations.txt", root);
    sqt_write_bytes(sqt_tpath(p), annotations, strlen(annotations), 0);
}

Test(data, folder_tiny_imagenet_layout)
{
    tiny_tree("t", "val_0.JPEG\tn01\t0\t0\t3\t3\nval_1.JPEG\tn02\t1\t1\t2\t2\r\nval_2.JPEG\tn01\t0\t0\t1\t1\n");
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("t"));
    sq_dataset tr, te;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 1, &tr), SQ_OK, "%s", sq_last_error());
    cr_expect_str_eq(tr.name, "tiny-imagenet");
    cr_assert_eq(tr.n, 6);
    cr_expect_eq(tr.classes, 2);
    /* class 0 is n02 (first line of wnids.txt), so its images come first */
    for (int i = 0; i < 6; i++) cr_expect_eq(tr.labels[i], i < 3 ? 0 : 1, "train label %d: %d", i, tr.labels[i]);
    cr_expect(strstr(sq_dataset_path(&tr, 0), "train/n02/images/n02_0.JPEG") != NULL, "%s", sq_dataset_path(&tr, 0));
    uint8_t *img = fetch_all(&tr);
    cr_expect_eq(img[3 * 48], rgb_px(0, 0, 0, 0), "n01_0 is sample 3");
    free(img);
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TEST, 1, &te), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(te.n, 3, "val/ is the test split (test/ is not read)");
    cr_expect_eq(te.classes, 2);
    /* ordered by (class, path) as every split: val_1 (n02, class 0), val_0 and val_2 (n01) */
    const int want[3] = {0, 1, 1};
    for (int i = 0; i < 3; i++) cr_expect_eq(te.labels[i], want[i], "val label %d: %d", i, te.labels[i]);
    cr_expect(strstr(sq_dataset_path(&te, 0), "val/images/val_1.JPEG") != NULL, "%s", sq_dataset_path(&te, 0));
    img = fetch_all(&te);
    cr_expect_eq(img[5], rgb_px(7, 1, 1, 0), "val_1 pixel (1, 1)");
    free(img);
    sq_dataset_free(&te);
    /* label-free: the train split without labels */
    sq_dataset_free(&tr);
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &tr), SQ_OK, "%s", sq_last_error());
    cr_expect_null(tr.labels);
    cr_expect_eq(tr.classes, 2);
    sq_dataset_free(&tr);
}

Test(data, folder_tiny_imagenet_errors_name_the_line)
{
    char spec[600];
    sq_dataset ds;
    /* a class that wnids.txt does not list */
    tiny_tree("a", "val_0.JPEG\tn01\t0\t0\t3\t3\nval_1.JPEG\tn09\t0\t0\t3\t3\nval_2.JPEG\tn01\t0\t0\t1\t1\n");
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("a"));
    cr_expect_eq(sq_dataset_open(spec, SQ_SPLIT_TEST, 1, &ds), SQ_EFORMAT);
    sqt_expect_error_has("val_annotations.txt line 2: class 'n09' is not in wnids.txt");
    /* an image without a line */
    tiny_tree("b", "val_0.JPEG\tn01\t0\t0\t3\t3\nval_2.JPEG\tn01\t0\t0\t1\t1\n");
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("b"));
    cr_expect_eq(sq_dataset_open(spec, SQ_SPLIT_TEST, 1, &ds), SQ_EFORMAT);
    sqt_expect_error_has("val/images/val_1.JPEG' has no line in");
    /* a line without an image, and a file labelled twice */
    tiny_tree("c", "val_0.JPEG\tn01\nval_1.JPEG\tn01\nval_2.JPEG\tn01\nval_7.JPEG\tn02\n");
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("c"));
    cr_expect_eq(sq_dataset_open(spec, SQ_SPLIT_TEST, 1, &ds), SQ_EFORMAT);
    sqt_expect_error_has("line 4 names 'val_7.JPEG', which is not an image in");
    tiny_tree("d", "val_0.JPEG\tn01\nval_1.JPEG\tn01\nval_2.JPEG\tn01\nval_1.JPEG\tn02\n");
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("d"));
    cr_expect_eq(sq_dataset_open(spec, SQ_SPLIT_TEST, 1, &ds), SQ_EFORMAT);
    sqt_expect_error_has("lines 2 and 4 both label 'val_1.JPEG'");
    /* a train class folder that wnids.txt does not list */
    tiny_tree("e", "val_0.JPEG\tn01\nval_1.JPEG\tn01\nval_2.JPEG\tn01\n");
    sqt_tmkdir("e/train/n03");
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("e"));
    cr_expect_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 1, &ds), SQ_EFORMAT);
    sqt_expect_error_has("train/n03' is not a class of wnids.txt");
    sqt_expect_error_printable();
}

/* ---------------------------------------------------------------- streamed dataset */

/* A hold-out of a streamed dataset maps indices into the one stream: its samples are the
   original's, and the parts outlive the original. */
Test(data, folder_holdout_shares_the_stream)
{
    sqt_tmkdir("h");
    char name[64];
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "h/%02d.png", i);
        write_rgb_png(sqt_tpath(name), 3, 2, i);
    }
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("h"));
    sq_dataset ds, rest, held;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_OK, "%s", sq_last_error());
    uint8_t *all = fetch_all(&ds);
    cr_assert_eq(sq_dataset_holdout(&ds, 0.25f, 3, &rest, &held), SQ_OK, "%s", sq_last_error());
    cr_assert(rest.n == 15 && held.n == 5);
    cr_expect(rest.stream == ds.stream && held.stream == ds.stream && rest.images == NULL);
    cr_expect_eq(ds.mean[0], held.mean[0]);
    uint8_t *r = fetch_all(&rest), *h = fetch_all(&held);
    sq_dataset_free(&ds); /* the parts keep the stream */
    int seen[20] = {0};
    for (int i = 0; i < 20; i++) {
        const sq_dataset *part = i < 15 ? &rest : &held;
        int k = i < 15 ? i : i - 15, item = part->items[k];
        cr_assert(item >= 0 && item < 20);
        seen[item]++;
        cr_expect_eq(memcmp((i < 15 ? r : h) + (size_t)k * 18, all + (size_t)item * 18, 18), 0, "sample %d", i);
        snprintf(name, sizeof name, "h/%02d.png", item);
        cr_expect_str_eq(sq_dataset_path(part, k), sqt_tpath(name));
    }
    for (int i = 0; i < 20; i++) cr_expect_eq(seen[i], 1, "file %d in %d parts", i, seen[i]);
    free(all), free(r), free(h);
    sq_dataset_free(&rest);
    sq_dataset_free(&held);
}

/* A file replaced after the dataset was opened (another size, or colour in a greyscale dataset)
   is an error naming it when its sample is fetched, not a silently different sample. */
Test(data, folder_changed_file_is_an_error_when_fetched)
{
    sqt_tmkdir("c");
    uint8_t g[20] = {0}; /* room for the 5x4 image below */
    sqt_write_png(sqt_tpath("c/a.png"), 4, 4, PNG_COLOR_TYPE_GRAY, 8, g, NULL, 0);
    sqt_write_png(sqt_tpath("c/b.png"), 4, 4, PNG_COLOR_TYPE_GRAY, 8, g, NULL, 0);
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("c"));
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(ds.c, 1);
    uint8_t px[16];
    write_rgb_png(sqt_tpath("c/b.png"), 4, 4, 0);
    cr_expect_eq(sq_dataset_fetch(&ds, 1, px), SQ_EFORMAT);
    sqt_expect_error_has(sqt_tpath("c/b.png"));
    sqt_expect_error_has("greyscale when the dataset was opened");
    sqt_write_png(sqt_tpath("c/b.png"), 5, 4, PNG_COLOR_TYPE_GRAY, 8, g, NULL, 0);
    cr_expect_eq(sq_dataset_fetch(&ds, 1, px), SQ_EFORMAT);
    sqt_expect_error_has("is 4x5 (HxW) now");
    cr_expect_eq(sq_dataset_fetch(&ds, 0, px), SQ_OK);
    cr_expect_eq(sq_dataset_fetch(&ds, 2, px), SQ_EARG, "out of range");
    sq_dataset_free(&ds);
}

/* sq_data_opts.channels: a split of greyscale images made RGB to match a colour train split (the
   CLI opens the test split so), and a colour image refused where the other split is greyscale */
Test(data, folder_split_takes_the_given_channels)
{
    sqt_tmkdir("s");
    sqt_tmkdir("s/train");
    sqt_tmkdir("s/test");
    write_rgb_png(sqt_tpath("s/train/1.png"), 2, 2, 0);
    uint8_t g[4] = {7, 8, 9, 10};
    sqt_write_png(sqt_tpath("s/test/1.png"), 2, 2, PNG_COLOR_TYPE_GRAY, 8, g, NULL, 0);
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("s"));
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TEST, 0, &ds), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(ds.c, 1, "on its own the grey split is one channel");
    sq_dataset_free(&ds);
    sq_data_opts o = {.channels = 3};
    cr_assert_eq(sq_dataset_open_ex(spec, SQ_SPLIT_TEST, 0, &o, &ds), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(ds.c, 3);
    uint8_t *img = fetch_all(&ds);
    for (int ch = 0; ch < 3; ch++)
        for (int p = 0; p < 4; p++) cr_expect_eq(img[ch * 4 + p], g[p]);
    free(img);
    sq_dataset_free(&ds);
    o.channels = 1;
    cr_expect_eq(sq_dataset_open_ex(spec, SQ_SPLIT_TRAIN, 0, &o, &ds), SQ_EFORMAT);
    sqt_expect_error_has(sqt_tpath("s/train/1.png"));
    sqt_expect_error_has("is in colour, but the other split's images are all greyscale");
}
