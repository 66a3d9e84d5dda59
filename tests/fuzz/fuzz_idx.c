/* fuzz_idx.c: libFuzzer harness of the IDX reader through sq_dataset_open("idx:IMAGES[,LABELS]"):
   the input is the image file, raw or gzip (the reader tells them apart by the magic bytes); when
   it holds the marker "--LABELS", the bytes after the marker are a label file read with it. A
   dataset that opens must be self-consistent (pixels and labels inside their arrays). */
#include "fuzz_util.h"
#include "sqakd/data.h"

static const char MARK[] = "--LABELS";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char ip[600], lp[600], spec[1300];
    const uint8_t *m = memmem(data, size, MARK, sizeof MARK - 1);
    size_t isz = m ? (size_t)(m - data) : size;
    fz_path(ip, sizeof ip, "images");
    fz_write(ip, data, isz);
    if (m) {
        fz_path(lp, sizeof lp, "labels");
        fz_write(lp, m + sizeof MARK - 1, size - isz - (sizeof MARK - 1));
        snprintf(spec, sizeof spec, "idx:%s,%s", ip, lp);
    } else {
        snprintf(spec, sizeof spec, "idx:%s", ip);
    }
    sq_dataset ds;
    fz_clear_error();
    if (sq_dataset_open(spec, SQ_SPLIT_TRAIN, 1, &ds) == SQ_OK) {
        size_t n = (size_t)ds.n * ds.c * ds.h * ds.w;
        unsigned sum = 0;
        for (size_t i = 0; i < n; i++) sum += ds.images[i];
        for (int i = 0; ds.labels && i < ds.n; i++)
            if (ds.labels[i] < 0 || ds.labels[i] >= ds.classes) abort();
        if (m && !ds.labels) abort();
        (void)sum;
        sq_dataset_free(&ds);
    } else {
        fz_check_error_line();
    }
    unlink(ip);
    if (m) unlink(lp);
    return 0;
}
