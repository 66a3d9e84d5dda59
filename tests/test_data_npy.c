/* test_data_npy.c: Criterion suite "npy_data": the npy:IMAGES.npy[,LABELS.npy] data spec
   (host/data/npy_data.c): uint8 NCHW / NHWC / NHW and float32 / float64 images, integer labels
   of every width, the refusals (types, shapes, NaN and out-of-range pixels, label count and
   range), no test split, labels never opened without with_labels, and a short 'sqakd train' and
   label-free 'sqakd distill' on such arrays through the executable. The .npy files are written
   here byte for byte (NumPy's version 1.0 layout), so the suite needs no NumPy. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqakd/data.h"
#include "util_fixtures.h"

static void setup(void)
{
    snprintf(sqt_scratch_dir, sizeof sqt_scratch_dir, "/tmp/sqakd_npy_XXXXXX");
    cr_assert_not_null(mkdtemp(sqt_scratch_dir), "mkdtemp failed");
}

static void teardown(void) { sqt_rmtree(sqt_scratch_dir); }

TestSuite(npy_data, .init = setup, .fini = teardown, .timeout = 60);

/* a .npy v1.0 file: header {'descr': DESCR, 'fortran_order': False, 'shape': SHAPE, } padded to
   64 bytes, then nbytes of data */
static void write_npy(const char *path, const char *descr, const char *shape, const void *data, size_t nbytes)
{
    char hdr[256];
    int n = snprintf(hdr + 10, sizeof hdr - 10, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr,
                     shape);
    size_t total = ((10 + (size_t)n + 1) + 63) & ~(size_t)63;
    memset(hdr + 10 + n, ' ', total - 10 - (size_t)n - 1);
    hdr[total - 1] = '\n';
    memcpy(hdr, "\x93NUMPY\x01\x00", 8);
    hdr[8] = (char)(total - 10);
    hdr[9] = 0;
    unsigned char *b = malloc(total + nbytes + 1);
    memcpy(b, hdr, total);
    if (nbytes) memcpy(b + total, data, nbytes);
    sqt_write_bytes(path, b, total + nbytes, 0);
    free(b);
}

static sq_status open_spec(const char *images, const char *labels, int with_labels, sq_dataset *ds)
{
    char spec[1200];
    if (labels) snprintf(spec, sizeof spec, "npy:%s,%s", sqt_tpath(images), sqt_tpath(labels));
    else snprintf(spec, sizeof spec, "npy:%s", sqt_tpath(images));
    return sq_dataset_open(spec, SQ_SPLIT_TRAIN, with_labels, ds);
}

Test(npy_data, uint8_nchw_with_int64_labels)
{
    uint8_t px[2 * 3 * 2 * 2];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 7);
    write_npy(sqt_tpath("x.npy"), "|u1", "(2, 3, 2, 2)", px, sizeof px);
    int64_t lab[2] = {4, 1};
    write_npy(sqt_tpath("y.npy"), "<i8", "(2,)", lab, sizeof lab);
    sq_dataset ds;
    cr_assert_eq(open_spec("x.npy", "y.npy", 1, &ds), SQ_OK, "%s", sq_last_error());
    cr_expect(ds.n == 2 && ds.c == 3 && ds.h == 2 && ds.w == 2, "shape %d %d %d %d", ds.n, ds.c, ds.h, ds.w);
    cr_expect_eq(memcmp(ds.images, px, sizeof px), 0);
    cr_assert_not_null(ds.labels);
    cr_expect(ds.labels[0] == 4 && ds.labels[1] == 1);
    cr_expect_eq(ds.classes, 5);
    cr_expect_str_eq(ds.name, "npy");
    /* normalisation from the images (an unknown dataset): mean of pixel / 255 */
    double s = 0;
    for (int i = 0; i < 2; i++)
        for (int p = 0; p < 4; p++) s += px[i * 12 + p] / 255.0;
    cr_expect_float_eq(ds.mean[0], s / 8, 1e-5);
    sq_dataset_free(&ds);
}

Test(npy_data, uint8_nhwc_is_transposed_and_nhw_is_one_channel)
{
    /* (1, 5, 6, 3): pixel (y, x) channel ch = 100 * ch + 10 * y + x; a 4-D array is NHWC only when
       its second dimension cannot be a channel count (more than 4) */
    uint8_t px[5 * 6 * 3];
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 6; x++)
            for (int ch = 0; ch < 3; ch++) px[(y * 6 + x) * 3 + ch] = (uint8_t)(100 * ch + 10 * y + x);
    write_npy(sqt_tpath("x.npy"), "|u1", "(1, 5, 6, 3)", px, sizeof px);
    sq_dataset ds;
    cr_assert_eq(open_spec("x.npy", NULL, 1, &ds), SQ_OK, "%s", sq_last_error());
    cr_expect(ds.n == 1 && ds.c == 3 && ds.h == 5 && ds.w == 6);
    for (int ch = 0; ch < 3; ch++)
        for (int p = 0; p < 30; p++)
            cr_expect_eq(ds.images[ch * 30 + p], 100 * ch + 10 * (p / 6) + p % 6, "channel %d pixel %d", ch, p);
    cr_expect_null(ds.labels);
    cr_expect_eq(ds.classes, 0);
    sq_dataset_free(&ds);
    write_npy(sqt_tpath("g.npy"), "|u1", "(3, 5, 6)", px, sizeof px);
    cr_assert_eq(open_spec("g.npy", NULL, 1, &ds), SQ_OK, "%s", sq_last_error());
    cr_expect(ds.n == 3 && ds.c == 1 && ds.h == 5 && ds.w == 6);
    cr_expect_eq(memcmp(ds.images, px, sizeof px), 0);
    sq_dataset_free(&ds);
}

Test(npy_data, float_pixels_in_0_1_round_to_the_nearest_level)
{
    float fx[4] = {0.0f, 1.0f, 0.5f, 10.0f / 255.0f};
    write_npy(sqt_tpath("f4.npy"), "<f4", "(1, 1, 2, 2)", fx, sizeof fx);
    sq_dataset ds;
    cr_assert_eq(open_spec("f4.npy", NULL, 0, &ds), SQ_OK, "%s", sq_last_error());
    cr_expect(ds.images[0] == 0 && ds.images[1] == 255 && ds.images[2] == 128 && ds.images[3] == 10,
              "%d %d %d %d", ds.images[0], ds.images[1], ds.images[2], ds.images[3]);
    sq_dataset_free(&ds);
    double dx[4] = {0.25, 0.75, 1.0, 0.0};
    write_npy(sqt_tpath("f8.npy"), "<f8", "(1, 2, 2)", dx, sizeof dx);
    cr_assert_eq(open_spec("f8.npy", NULL, 0, &ds), SQ_OK, "%s", sq_last_error());
    cr_expect(ds.c == 1 && ds.images[0] == 64 && ds.images[1] == 191 && ds.images[2] == 255);
    sq_dataset_free(&ds);
}

Test(npy_data, labels_of_every_integer_width)
{
    uint8_t px[3 * 4] = {0};
    write_npy(sqt_tpath("x.npy"), "|u1", "(3, 1, 2, 2)", px, sizeof px);
    const struct { const char *descr; size_t size; } types[] = {
        {"|u1", 1}, {"|i1", 1}, {"<u2", 2}, {"<i2", 2}, {"<u4", 4}, {"<i4", 4}, {"<u8", 8}, {"<i8", 8}};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        unsigned char b[24] = {0};
        const int v[3] = {2, 0, 9};
        for (int i = 0; i < 3; i++) b[i * types[k].size] = (unsigned char)v[i];   /* little-endian */
        write_npy(sqt_tpath("y.npy"), types[k].descr, "(3,)", b, 3 * types[k].size);
        sq_dataset ds;
        cr_assert_eq(open_spec("x.npy", "y.npy", 1, &ds), SQ_OK, "%s: %s", types[k].descr, sq_last_error());
        cr_expect(ds.labels[0] == 2 && ds.labels[1] == 0 && ds.labels[2] == 9, "%s", types[k].descr);
        cr_expect_eq(ds.classes, 10);
        sq_dataset_free(&ds);
    }
}

/* one refusal: SQ_EFORMAT (or want) and a message holding each of the given fragments */
static void expect_refused(const char *images, const char *labels, sq_status want, const char *frag1,
                           const char *frag2)
{
    sq_dataset ds;
    sq_status st = open_spec(images, labels, 1, &ds);
    cr_expect_eq(st, want, "%s%s%s: status %d (%s)", images, labels ? "," : "", labels ? labels : "", st,
                 sq_last_error());
    if (frag1) sqt_expect_error_has(frag1);
    if (frag2) sqt_expect_error_has(frag2);
    sqt_expect_error_printable();
    cr_expect_null(ds.images);
}

Test(npy_data, bad_images_are_refused_with_one_line)
{
    float fx[8] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};
    fx[5] = NAN;
    write_npy(sqt_tpath("nan.npy"), "<f4", "(2, 1, 2, 2)", fx, sizeof fx);
    expect_refused("nan.npy", NULL, SQ_EFORMAT, "pixel 5 (image 1) is nan", "[0, 1]");
    fx[5] = 0.5f, fx[2] = 1.5f;
    write_npy(sqt_tpath("big.npy"), "<f4", "(2, 1, 2, 2)", fx, sizeof fx);
    expect_refused("big.npy", NULL, SQ_EFORMAT, "pixel 2 (image 0) is 1.5", NULL);
    fx[2] = -0.25f;
    write_npy(sqt_tpath("neg.npy"), "<f4", "(2, 1, 2, 2)", fx, sizeof fx);
    expect_refused("neg.npy", NULL, SQ_EFORMAT, "is -0.25", NULL);
    float fz[2 * 6 * 6] = {0};
    write_npy(sqt_tpath("nhwcf.npy"), "<f4", "(2, 6, 6, 1)", fz, sizeof fz);
    expect_refused("nhwcf.npy", NULL, SQ_EFORMAT, "channels-last", "transpose(0, 3, 1, 2)");
    uint8_t px[5 * 5 * 5 * 2] = {0};
    write_npy(sqt_tpath("c5.npy"), "|u1", "(2, 5, 5, 5)", px, sizeof px);
    expect_refused("c5.npy", NULL, SQ_EFORMAT, "shape (2, 5, 5, 5)", "1 to 4 channels");
    write_npy(sqt_tpath("2d.npy"), "|u1", "(2, 4)", px, 8);
    expect_refused("2d.npy", NULL, SQ_EFORMAT, "shape (2, 4)", NULL);
    write_npy(sqt_tpath("empty.npy"), "|u1", "(0, 1, 2, 2)", px, 0);
    expect_refused("empty.npy", NULL, SQ_EFORMAT, "at least one image", NULL);
    int32_t ix[4] = {0};
    write_npy(sqt_tpath("i4.npy"), "<i4", "(1, 1, 2, 2)", ix, sizeof ix);
    expect_refused("i4.npy", NULL, SQ_EFORMAT, "images of type int32", "astype(np.uint8)");
    write_npy(sqt_tpath("c16.npy"), "<c16", "(1,)", ix, 16);
    expect_refused("c16.npy", NULL, SQ_EFORMAT, "data type '<c16'", NULL);
    sqt_write_bytes(sqt_tpath("junk.npy"), "not a numpy file", 16, 0);
    expect_refused("junk.npy", NULL, SQ_EFORMAT, "junk.npy", "not a .npy file");
    expect_refused("missing.npy", NULL, SQ_EIO, "missing.npy", "cannot open");
}

Test(npy_data, bad_labels_are_refused_with_one_line)
{
    uint8_t px[3 * 4] = {0};
    write_npy(sqt_tpath("x.npy"), "|u1", "(3, 1, 2, 2)", px, sizeof px);
    int64_t lab[3] = {0, 1, 2};
    write_npy(sqt_tpath("two.npy"), "<i8", "(2,)", lab, 16);
    expect_refused("x.npy", "two.npy", SQ_EFORMAT, "shape (2,) for 3 images", "shape (3,)");
    write_npy(sqt_tpath("col.npy"), "<i8", "(3, 1)", lab, sizeof lab);
    expect_refused("x.npy", "col.npy", SQ_EFORMAT, "shape (3, 1)", NULL);
    lab[1] = -1;
    write_npy(sqt_tpath("neg.npy"), "<i8", "(3,)", lab, sizeof lab);
    expect_refused("x.npy", "neg.npy", SQ_EFORMAT, "label -1 of image 1", NULL);
    lab[1] = SQ_MAX_CLASSES;
    write_npy(sqt_tpath("big.npy"), "<i8", "(3,)", lab, sizeof lab);
    expect_refused("x.npy", "big.npy", SQ_EFORMAT, "label 1000 of image 1", "outside 0..999");
    float fl[3] = {0, 1, 2};
    write_npy(sqt_tpath("fl.npy"), "<f4", "(3,)", fl, sizeof fl);
    expect_refused("x.npy", "fl.npy", SQ_EFORMAT, "labels of type float32", "integer");
    expect_refused("x.npy", "missing.npy", SQ_EIO, "missing.npy", NULL);
}

Test(npy_data, labels_unread_without_with_labels_and_no_test_split)
{
    uint8_t px[4] = {1, 2, 3, 4};
    write_npy(sqt_tpath("x.npy"), "|u1", "(1, 1, 2, 2)", px, sizeof px);
    sq_dataset ds;
    /* a label file that does not exist is never opened when labels are not wanted */
    cr_assert_eq(open_spec("x.npy", "missing.npy", 0, &ds), SQ_OK, "%s", sq_last_error());
    cr_expect_null(ds.labels);
    sq_dataset_free(&ds);
    char spec[700];
    snprintf(spec, sizeof spec, "npy:%s", sqt_tpath("x.npy"));
    cr_expect_eq(sq_dataset_open(spec, SQ_SPLIT_TEST, 1, &ds), SQ_EARG);
    sqt_expect_error_has("no test split");
    cr_expect_eq(sq_dataset_open("npy:", SQ_SPLIT_TRAIN, 1, &ds), SQ_EARG);
    sqt_expect_error_has("npy:IMAGES.npy[,LABELS.npy]");
    snprintf(spec, sizeof spec, "npy:%s,", sqt_tpath("x.npy"));
    cr_expect_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 1, &ds), SQ_EARG);
    cr_expect_eq(sq_dataset_open("nope:x", SQ_SPLIT_TRAIN, 1, &ds), SQ_EARG);
    sqt_expect_error_has("npy:IMAGES.npy");
}

/* 96 labelled 1x12x12 images (class k: a bright row band k, plus noise) */
static void write_pattern(const char *images, const char *labels)
{
    enum { N = 96, S = 12 };
    static uint8_t px[N * S * S];
    int64_t lab[N];
    uint64_t r = 12345;
    for (int i = 0; i < N; i++) {
        lab[i] = i % 3;
        for (int p = 0; p < S * S; p++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            px[i * S * S + p] = (uint8_t)((p / S) / 4 == lab[i] ? 200 : 30) + (uint8_t)(r >> 59);
        }
    }
    write_npy(images, "|u1", "(96, 1, 12, 12)", px, sizeof px);
    write_npy(labels, "<i8", "(96,)", lab, sizeof lab);
}

Test(npy_data, train_and_label_free_distill_through_the_cli)
{
    char dir[256], out[16384];
    sqt_cli_setup(dir, sizeof dir, "sqakd_npy_cli");
    char x[300], y[300];
    snprintf(x, sizeof x, "%s/x.npy", dir);
    snprintf(y, sizeof y, "%s/y.npy", dir);
    write_pattern(x, y);
    int rc = sqt_run(out, sizeof out, "train --model smallcnn --data npy:%s,%s --epochs 1 --batch 16 --threads 2 "
                     "--quiet --out %s/t", x, y, dir);
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect_not_null(strstr(out, "holding out"), "%s", out);
    /* the label file is not needed (not even present) for the label-free distillation */
    rc = sqt_run(out, sizeof out, "distill --teacher %s/t/best.safetensors --data npy:%s,%s/none.npy --epochs 1 "
                 "--max-steps 2 --batch 16 --threads 2 --wbits 2 --abits 2 --quiet --out %s/s", dir, x, dir, dir);
    cr_assert_eq(rc, 0, "%s", out);
    char p[400];
    snprintf(p, sizeof p, "%s/s/best.safetensors", dir);
    FILE *f = fopen(p, "rb");
    cr_expect_not_null(f, "no student checkpoint: %s", out);
    if (f) fclose(f);
    rc = sqt_run(out, sizeof out, "train --model smallcnn --data npy:%s/missing.npy --epochs 1 --out %s/u", dir, dir);
    cr_expect_eq(rc, 2, "%s", out);
    cr_expect_not_null(strstr(out, "sqakd train: "), "%s", out);
    cr_expect_not_null(strstr(out, "missing.npy"), "%s", out);
    sqt_rmtree(dir);
}
