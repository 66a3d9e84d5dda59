/* fuzz_npy_data.c: libFuzzer harness of the npy:IMAGES.npy[,LABELS.npy] dataset
   (host/data/npy_data.c through sq_dataset_open, over sq_npy_read_raw):
     byte 0            bit 0: read labels; bit 1: give a label file
     bytes 1..2        u16 LE length of the image file, then its bytes; the rest is the label file
   A dataset that opens must be self-consistent (1..4 channels, every pixel readable, labels in
   0..classes-1); a refusal must be one error line. */
#include "fuzz_util.h"
#include "sqakd/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    int flags = fz_u8(&in);
    size_t n = fz_u16(&in);
    const uint8_t *img = fz_take(&in, &n);
    char x[700], y[700], spec[1500];
    fz_path(x, sizeof x, "x.npy");
    fz_write(x, img, n);
    if (flags & 2) {
        fz_path(y, sizeof y, "y.npy");
        fz_write(y, in.p, in.n);
        snprintf(spec, sizeof spec, "npy:%s,%s", x, y);
    } else {
        snprintf(spec, sizeof spec, "npy:%s", x);
    }
    sq_dataset ds;
    fz_clear_error();
    if (sq_dataset_open(spec, SQ_SPLIT_TRAIN, flags & 1, &ds) == SQ_OK) {
        if (ds.c < 1 || ds.c > 4 || ds.n <= 0 || ds.h <= 0 || ds.w <= 0) fz_fail("bad shape %d %d %d %d", ds.n, ds.c, ds.h, ds.w);
        unsigned sum = 0;
        for (size_t i = 0; i < (size_t)ds.n * ds.c * ds.h * ds.w; i++) sum += ds.images[i];
        for (int i = 0; ds.labels && i < ds.n; i++)
            if (ds.labels[i] < 0 || ds.labels[i] >= ds.classes) fz_fail("label %d of %d classes", ds.labels[i], ds.classes);
        if (ds.labels && !(flags & 1)) fz_fail("labels read without with_labels");
        (void)sum;
        sq_dataset_free(&ds);
    } else {
        fz_check_error_line();
    }
    return 0;
}
