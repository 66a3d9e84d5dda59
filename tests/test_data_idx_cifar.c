/* test_data_idx_cifar.c: Criterion suite "data" (shared with test_data_folder.c and
   test_data_loader.c; this file declares the suite and its fixture): IDX files (raw, gzip,
   truncated, bad magic, count mismatch, trailing bytes), the MNIST directory layout, real
   Fashion-MNIST when installed, CIFAR-10/100 binaries (synthetic, truncated, bad label, and real
   CIFAR-10 test labels when present). Every test writes its files under its own mkdtemp directory
   (sqt_scratch_dir), removed in the fini fixture. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqakd/data.h"
#include "util_fixtures.h"

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void setup(void)
{
    snprintf(sqt_scratch_dir, sizeof sqt_scratch_dir, "/tmp/sqakd_data_XXXXXX");
    cr_assert_not_null(mkdtemp(sqt_scratch_dir), "mkdtemp failed");
}

static void teardown(void) { nftw(sqt_scratch_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

TestSuite(data, .init = setup, .fini = teardown, .timeout = 30);

/* ---------------------------------------------------------------- helpers: IDX and CIFAR writers */

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
    sqt_write_bytes(path, b, (size_t)((long)len + adjust), gz);
    free(b);
    return len;
}

static void write_idx_labels(const char *path, int n, const uint8_t *lab, int gz)
{
    uint8_t *b = calloc(8 + (size_t)n, 1);
    put_be32(b, 0x00000801), put_be32(b + 4, (uint32_t)n);
    memcpy(b + 8, lab, (size_t)n);
    sqt_write_bytes(path, b, 8 + (size_t)n, gz);
    free(b);
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
    sqt_write_bytes(path, b, rec * nrec, 0);
    free(b);
}

/* ---------------------------------------------------------------- IDX */

static void check_idx_roundtrip(int gz)
{
    const char *ip = sqt_tpath(gz ? "img.gz" : "img"), *lp = sqt_tpath(gz ? "lab.gz" : "lab");
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
    sqt_expect_error_has("holdout");
}

Test(data, idx_roundtrip_raw) { check_idx_roundtrip(0); }
Test(data, idx_roundtrip_gz) { check_idx_roundtrip(1); }

Test(data, idx_mnist_dir_gz_and_raw)
{
    sqt_tmkdir("m");
    uint8_t lab[4] = {9, 0, 3, 7};
    write_idx_images(sqt_tpath("m/train-images-idx3-ubyte.gz"), 0x803, 4, 2, 2, 0, 1);
    write_idx_labels(sqt_tpath("m/train-labels-idx1-ubyte.gz"), 4, lab, 1);
    write_idx_images(sqt_tpath("m/t10k-images-idx3-ubyte"), 0x803, 2, 2, 2, 0, 0);
    write_idx_labels(sqt_tpath("m/t10k-labels-idx1-ubyte"), 2, lab, 0);
    char spec[600];
    snprintf(spec, sizeof spec, "mnist:%s", sqt_tpath("m"));
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
    remove(sqt_tpath("m/train-labels-idx1-ubyte.gz"));
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &tr), SQ_OK, "%s", sq_last_error());
    cr_expect_null(tr.labels);
    sq_dataset_free(&tr);
    cr_expect_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 1, &tr), SQ_EIO);
    sqt_expect_error_has("train-labels-idx1-ubyte");
}

Test(data, idx_truncated)
{
    const char *ip = sqt_tpath("trunc-images");
    size_t full = write_idx_images(ip, 0x803, 6, 4, 4, -7, 0);
    char spec[600], off[64];
    snprintf(spec, sizeof spec, "idx:%s", ip);
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    sqt_expect_error_has(ip);
    sqt_expect_error_has("truncated");
    snprintf(off, sizeof off, "byte %zu", full - 7);
    sqt_expect_error_has(off);
    /* same through gzip: the offset counts decompressed bytes */
    const char *gp = sqt_tpath("trunc-images.gz");
    write_idx_images(gp, 0x803, 6, 4, 4, -7, 1);
    snprintf(spec, sizeof spec, "idx:%s", gp);
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    sqt_expect_error_has(gp);
    sqt_expect_error_has(off);
    /* a gzip stream cut in the middle */
    FILE *f = fopen(gp, "rb");
    uint8_t buf[4096];
    size_t k = fread(buf, 1, sizeof buf, f);
    fclose(f);
    sqt_write_bytes(gp, buf, k / 2, 0);
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    sqt_expect_error_has(gp);
    sqt_expect_error_has("truncated");
    /* header itself cut short */
    sqt_write_bytes(ip, "\0\0\x08\x03\0\0", 6, 0);
    snprintf(spec, sizeof spec, "idx:%s", ip);
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    sqt_expect_error_has("byte 6");
}

Test(data, idx_bad_magic_and_zero_dim)
{
    const char *ip = sqt_tpath("bad-images");
    write_idx_images(ip, 0x00000801, 2, 2, 2, 0, 0);
    char spec[600];
    snprintf(spec, sizeof spec, "idx:%s", ip);
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    sqt_expect_error_has("magic 0x00000801");
    sqt_expect_error_has(ip);
    write_idx_images(ip, 0x803, 2, 0, 2, 0, 0);
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    sqt_expect_error_has("dimension 1");
}

Test(data, idx_count_mismatch_and_label_range)
{
    const char *ip = sqt_tpath("i"), *lp = sqt_tpath("l");
    write_idx_images(ip, 0x803, 5, 2, 2, 0, 0);
    uint8_t lab[5] = {1, 2, 3, 4, 11};
    write_idx_labels(lp, 4, lab, 0);
    char spec[1100];
    snprintf(spec, sizeof spec, "idx:%s,%s", ip, lp);
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 1, &ds), SQ_EFORMAT);
    sqt_expect_error_has("4 labels");
    sqt_expect_error_has("5 images");
    /* mnist: has 10 classes; label 11 is out of range */
    sqt_tmkdir("m");
    write_idx_images(sqt_tpath("m/train-images-idx3-ubyte"), 0x803, 5, 2, 2, 0, 0);
    write_idx_labels(sqt_tpath("m/train-labels-idx1-ubyte"), 5, lab, 0);
    snprintf(spec, sizeof spec, "mnist:%s", sqt_tpath("m"));
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 1, &ds), SQ_EFORMAT);
    sqt_expect_error_has("label 11 at byte 12");
}

Test(data, idx_trailing_bytes)
{
    for (int gz = 0; gz < 2; gz++) {
        const char *ip = sqt_tpath(gz ? "t.gz" : "t");
        size_t full = write_idx_images(ip, 0x803, 3, 2, 2, 3, gz);
        char spec[600], msg[64];
        snprintf(spec, sizeof spec, "idx:%s", ip);
        sq_dataset ds;
        cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT, "gz=%d", gz);
        snprintf(msg, sizeof msg, "3 trailing bytes after byte %zu", full);
        sqt_expect_error_has(msg);
        sqt_expect_error_has(ip);
    }
}

/* gzip IDX: a file is a series of gzip members (RFC 1952), so two members read as one stream;
   anything after the last member (junk or zero padding) and a member cut inside its 8-byte
   trailer are refused, naming the file. */
Test(data, idx_gzip_members_trailing_garbage_and_cut_trailer)
{
    const char *raw = sqt_tpath("i"), *gp = sqt_tpath("i.gz");
    size_t len = write_idx_images(raw, 0x803, 3, 2, 2, 0, 0);
    size_t n;
    unsigned char *b = sqt_slurp(raw, &n);
    cr_assert_eq(n, len);
    /* two members: header and part of the pixels, then the rest */
    sqt_write_bytes(gp, b, 20, 1);
    sqt_write_bytes(sqt_tpath("second.gz"), b + 20, len - 20, 1);
    size_t n1, n2;
    unsigned char *m1 = sqt_slurp(gp, &n1), *m2 = sqt_slurp(sqt_tpath("second.gz"), &n2);
    unsigned char *cat = malloc(n1 + n2 + 16);
    memcpy(cat, m1, n1), memcpy(cat + n1, m2, n2);
    sqt_write_bytes(gp, cat, n1 + n2, 0);
    char spec[600];
    snprintf(spec, sizeof spec, "idx:%s", gp);
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(ds.n, 3);
    cr_expect_eq(memcmp(ds.images, b + 16, 12), 0, "pixels across the member boundary");
    sq_dataset_free(&ds);
    /* junk, then zero padding, after the gzip data */
    static const char *tails[] = {"junk", "\0\0\0\0"};
    for (int t = 0; t < 2; t++) {
        memcpy(cat + n1 + n2, tails[t], 4);
        sqt_write_bytes(gp, cat, n1 + n2 + 4, 0);
        cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT, "tail %d accepted", t);
        sqt_expect_error_has(gp);
        sqt_expect_error_has("4 bytes of trailing garbage after the gzip data");
    }
    /* the last member without the 4-byte length of its trailer: every pixel is there, but the
       stream is cut */
    sqt_write_bytes(gp, cat, n1 + n2 - 4, 0);
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    sqt_expect_error_has(gp);
    sqt_expect_error_has("unexpected end of file");
    free(b), free(m1), free(m2), free(cat);
}

/* A gzip IDX of a hundred bytes whose header declares 60000 x 28 x 28000 images (47 GB) is
   truncated, and found so without allocating the declared size first. */
Test(data, idx_gzip_declaring_47gb_fails_without_allocating_it)
{
    uint8_t h[16 + 64] = {0};
    put_be32(h, 0x803), put_be32(h + 4, 60000), put_be32(h + 8, 28), put_be32(h + 12, 28000);
    const char *gp = sqt_tpath("bomb.gz");
    sqt_write_bytes(gp, h, sizeof h, 1);
    char spec[600];
    snprintf(spec, sizeof spec, "idx:%s", gp);
    sq_dataset ds;
    long vm0 = sqt_vm_peak_kb(), rss0 = sqt_max_rss_kb();
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT, "%s", sq_last_error());
    sqt_expect_error_has("truncated");
    sqt_expect_error_has("byte 80");
    double vm = (sqt_vm_peak_kb() - vm0) / 1024.0, rss = (sqt_max_rss_kb() - rss0) / 1024.0;
    cr_expect(vm < 1024, "peak address space grew by %.0f MiB", vm);
    cr_expect(rss < 128, "peak RSS grew by %.0f MiB", rss);
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
    sqt_tmkdir("c");
    const int counts[5] = {2, 1, 1, 1, 3};
    uint8_t labs[3] = {3, 9, 0};
    char name[64];
    for (int b = 0; b < 5; b++) {
        snprintf(name, sizeof name, "c/data_batch_%d.bin", b + 1);
        write_cifar(sqt_tpath(name), counts[b], 1, labs, b);
    }
    write_cifar(sqt_tpath("c/test_batch.bin"), 2, 1, labs + 1, 7);
    char spec[600];
    snprintf(spec, sizeof spec, "cifar10:%s", sqt_tpath("c"));
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
    remove(sqt_tpath("c/data_batch_3.bin"));
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 1, &tr), SQ_EIO);
    sqt_expect_error_has("data_batch_3.bin");
}

Test(data, cifar_truncated_and_bad_label)
{
    sqt_tmkdir("c");
    uint8_t labs[2] = {1, 2};
    write_cifar(sqt_tpath("c/test_batch.bin"), 2, 1, labs, 0);
    cr_assert_eq(truncate(sqt_tpath("c/test_batch.bin"), 2 * 3073 - 5), 0);
    char spec[600];
    snprintf(spec, sizeof spec, "cifar10:%s", sqt_tpath("c"));
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TEST, 1, &ds), SQ_EFORMAT);
    sqt_expect_error_has(sqt_tpath("c/test_batch.bin"));
    sqt_expect_error_has("byte 3073");
    uint8_t bad[2] = {1, 10};
    write_cifar(sqt_tpath("c/test_batch.bin"), 2, 1, bad, 0);
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TEST, 1, &ds), SQ_EFORMAT);
    sqt_expect_error_has("label 10 at byte 3073");
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
    sqt_tmkdir("c");
    uint8_t labs[6] = {19, 99, 0, 5, 7, 42}; /* (coarse, fine) pairs */
    write_cifar(sqt_tpath("c/train.bin"), 3, 2, labs, 1);
    write_cifar(sqt_tpath("c/test.bin"), 1, 2, labs + 2, 2);
    char spec[600];
    snprintf(spec, sizeof spec, "cifar100:%s", sqt_tpath("c"));
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
