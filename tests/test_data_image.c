/* test_data_image.c: Criterion suite "data" (declared with its fixture in test_data_idx_cifar.c):
   hostile images in folder datasets. Tiny PNG and JPEG files declaring huge sizes are refused
   from their headers, quickly and without memory; a JPEG whose data stops early stops decoding at
   once; a large first image cannot make the loader reserve memory for every file; file names with
   control characters are escaped in errors. Memory is measured as the growth of the test process's
   peak resident size (ru_maxrss) and peak address space (VmPeak). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include "sqakd/data.h"
#include "util_fixtures.h"

/* ---------------------------------------------------------------- crafted files */

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* appends a PNG chunk (length, type, data, CRC) at b + *n */
static void png_chunk(uint8_t *b, size_t *n, const char *type, const uint8_t *d, uint32_t len)
{
    put_be32(b + *n, len);
    memcpy(b + *n + 4, type, 4);
    if (len) memcpy(b + *n + 8, d, len);
    put_be32(b + *n + 8 + len, (uint32_t)crc32(0, b + *n + 4, 4 + len));
    *n += 12 + len;
}

/* a valid PNG signature and IHDR of w x h 8-bit RGB, a few bytes of image data, IEND: under
   100 bytes */
static size_t tiny_png(uint8_t *b, uint32_t w, uint32_t h)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t n = 8;
    memcpy(b, sig, 8);
    uint8_t ihdr[13] = {0};
    put_be32(ihdr, w), put_be32(ihdr + 4, h);
    ihdr[8] = 8, ihdr[9] = 2; /* depth 8, RGB */
    png_chunk(b, &n, "IHDR", ihdr, 13);
    uint8_t raw[64] = {0}, z[128];
    uLongf zl = sizeof z;
    compress(z, &zl, raw, sizeof raw);
    png_chunk(b, &n, "IDAT", z, (uint32_t)zl);
    png_chunk(b, &n, "IEND", NULL, 0);
    return n;
}

/* an 8x8 baseline JPEG (libjpeg, into memory) whose SOF0 then gets the given size: the data
   covers one 8x8 block per component, far less than the header promises */
static unsigned char *jpeg_declaring(unsigned w, unsigned h, unsigned long *len)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr err;
    ci.err = jpeg_std_error(&err);
    jpeg_create_compress(&ci);
    unsigned char *mem = NULL;
    jpeg_mem_dest(&ci, &mem, len);
    ci.image_width = 8, ci.image_height = 8, ci.input_components = 3, ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_start_compress(&ci, TRUE);
    unsigned char row[24];
    for (int i = 0; i < 24; i++) row[i] = (unsigned char)(i * 10);
    while (ci.next_scanline < 8) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    for (unsigned long i = 0; i + 8 < *len; i++)
        if (mem[i] == 0xFF && mem[i + 1] == 0xC0) { /* SOF0: length(2) precision(1) height(2) width(2) */
            mem[i + 5] = (unsigned char)(h >> 8), mem[i + 6] = (unsigned char)h;
            mem[i + 7] = (unsigned char)(w >> 8), mem[i + 8] = (unsigned char)w;
            return mem;
        }
    cr_assert_fail("no SOF0 marker in the JPEG written by libjpeg");
    return NULL;
}

/* opens folder DIR, expecting SQ_EFORMAT; returns the seconds it took, and the growth of peak RSS
   and of peak address space in MiB */
static double open_folder_fails(const char *dir, double *rss_mb, double *vm_mb)
{
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath(dir));
    long rss0 = sqt_max_rss_kb(), vm0 = sqt_vm_peak_kb();
    double t0 = sq_now();
    sq_dataset ds;
    sq_status st = sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds);
    double dt = sq_now() - t0;
    *rss_mb = (sqt_max_rss_kb() - rss0) / 1024.0;
    *vm_mb = (sqt_vm_peak_kb() - vm0) / 1024.0;
    cr_assert_eq(st, SQ_EFORMAT, "status %s: %s", sq_status_str(st), sq_last_error());
    return dt;
}

/* ---------------------------------------------------------------- tests */

Test(data, image_png_declaring_65536x65536_is_refused_from_its_header)
{
    sqt_tmkdir("p");
    uint8_t b[256];
    size_t n = tiny_png(b, 65536, 65536);
    sqt_write_bytes(sqt_tpath("p/huge.png"), b, n, 0);
    double rss, vm, dt = open_folder_fails("p", &rss, &vm);
    sqt_expect_error_has(sqt_tpath("p/huge.png"));
    sqt_expect_error_has("65536x65536");
    sqt_expect_error_has("67108864 (8192x8192) pixels");
    cr_expect(dt < 1.0, "took %.2f s", dt);
    cr_expect(rss < 64, "peak RSS grew by %.0f MiB", rss);
    cr_expect(vm < 256, "peak address space grew by %.0f MiB (a 12.9 GB buffer?)", vm);
}

Test(data, image_jpeg_declaring_30000x30000_is_refused_from_its_header)
{
    sqt_tmkdir("j");
    unsigned long len = 0;
    unsigned char *jpg = jpeg_declaring(30000, 30000, &len);
    cr_assert_lt(len, 1000, "a tiny file: %lu bytes", len);
    sqt_write_bytes(sqt_tpath("j/huge.jpg"), jpg, len, 0);
    free(jpg);
    double rss, vm, dt = open_folder_fails("j", &rss, &vm);
    sqt_expect_error_has(sqt_tpath("j/huge.jpg"));
    sqt_expect_error_has("30000x30000");
    sqt_expect_error_has("67108864 (8192x8192) pixels");
    cr_expect(dt < 1.0, "took %.2f s", dt);
    cr_expect(rss < 64, "peak RSS grew by %.0f MiB", rss);
    cr_expect(vm < 256, "peak address space grew by %.0f MiB", vm);
}

/* 8000x8000 is within the budget, but the data ends after one block: the decoder stops at
   libjpeg's first warning instead of decoding 64 million pixels from nothing */
Test(data, image_jpeg_with_missing_data_stops_at_once)
{
    sqt_tmkdir("s");
    unsigned long len = 0;
    unsigned char *jpg = jpeg_declaring(8000, 8000, &len);
    sqt_write_bytes(sqt_tpath("s/short.jpg"), jpg, len, 0);
    free(jpg);
    double rss, vm, dt = open_folder_fails("s", &rss, &vm);
    sqt_expect_error_has(sqt_tpath("s/short.jpg"));
    sqt_expect_error_has("corrupt or truncated");
    cr_expect(dt < 0.5, "took %.2f s", dt);
    cr_expect(rss < 64, "peak RSS grew by %.0f MiB (every row decoded?)", rss);
}

/* The first image (sorted by path) is a real 4096x4096 PNG; 300 more files follow, all junk. The
   loader must not reserve 301 images' worth (5 GB) on the strength of the first header. */
Test(data, folder_first_image_size_does_not_reserve_memory_for_every_file)
{
    sqt_tmkdir("m");
    {
        FILE *f = fopen(sqt_tpath("m/000.png"), "wb");
        cr_assert_not_null(f);
        png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
        png_infop info = png_create_info_struct(png);
        png_init_io(png, f);
        png_set_IHDR(png, info, 4096, 4096, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        png_write_info(png, info);
        static uint8_t row[4096];
        for (int y = 0; y < 4096; y++) png_write_row(png, row);
        png_write_end(png, NULL);
        png_destroy_write_struct(&png, &info);
        fclose(f);
    }
    char name[64];
    for (int i = 1; i <= 300; i++) {
        snprintf(name, sizeof name, "m/%03d.png", i);
        sqt_write_bytes(sqt_tpath(name), "junk, not a png", 15, 0);
    }
    double rss, vm;
    open_folder_fails("m", &rss, &vm);
    sqt_expect_error_has(sqt_tpath("m/001.png"));
    cr_expect(vm < 1024, "peak address space grew by %.0f MiB", vm);
}

/* A file name is text from the disk: its control characters reach the error escaped. */
Test(data, folder_file_names_are_escaped_in_errors)
{
    sqt_tmkdir("e");
    sqt_write_bytes(sqt_tpath("e/evil\x1b[2J\n.png"), "junk", 4, 0);
    sq_dataset ds;
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("e"));
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, &ds), SQ_EFORMAT);
    sqt_expect_error_has("evil\\x1b[2J\\x0a.png");
    sqt_expect_error_printable();
    /* a test class folder named with a bell and an escape, unknown to the train split */
    sqt_tmkdir("t");
    sqt_tmkdir("t/train");
    sqt_tmkdir("t/train/a");
    sqt_tmkdir("t/test");
    sqt_tmkdir("t/test/\a" "b\x1b]0;x");
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("t"));
    cr_assert_eq(sq_dataset_open(spec, SQ_SPLIT_TEST, 1, &ds), SQ_EFORMAT);
    sqt_expect_error_has("/\\x07b\\x1b]0;x' has no counterpart");
    sqt_expect_error_printable();
}
