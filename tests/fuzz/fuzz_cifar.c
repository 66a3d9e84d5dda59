/* fuzz_cifar.c: libFuzzer harness of the CIFAR-10/100 binary readers through
   sq_dataset_open("cifar10:DIR" / "cifar100:DIR"). Byte 0 picks the variant, the split and
   whether labels are read; the rest is the file (test_batch.bin, train.bin or test.bin), or, for
   the CIFAR-10 train split, data_batch_1..5.bin cut from it in five near-equal parts. */
#include "fuzz_util.h"
#include "sqakd/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int mode = data[0], which = mode & 3, with_labels = !(mode & 4);
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    char dir[600], path[700], spec[800];
    fz_path(dir, sizeof dir, "cifar");
    if (mkdir(dir, 0755)) abort();
    static const char *const one[] = {"test_batch.bin", "train.bin", "test.bin"};
    if (which < 3) {
        snprintf(path, sizeof path, "%s/%s", dir, one[which]);
        fz_write(path, d, n);
    } else {
        for (int i = 0; i < 5; i++) {
            size_t a = n * i / 5, b = n * (i + 1) / 5;
            snprintf(path, sizeof path, "%s/data_batch_%d.bin", dir, i + 1);
            fz_write(path, d + a, b - a);
        }
    }
    snprintf(spec, sizeof spec, "%s:%s", which == 1 || which == 2 ? "cifar100" : "cifar10", dir);
    sq_split split = which == 0 || which == 2 ? SQ_SPLIT_TEST : SQ_SPLIT_TRAIN;
    sq_dataset ds;
    fz_clear_error();
    if (sq_dataset_open(spec, split, with_labels, &ds) == SQ_OK) {
        if (ds.c != 3 || ds.h != 32 || ds.w != 32 || (size_t)ds.n * 3072 > n) abort();
        unsigned sum = 0;
        for (size_t i = 0; i < (size_t)ds.n * 3072; i++) sum += ds.images[i];
        for (int i = 0; ds.labels && i < ds.n; i++)
            if (ds.labels[i] < 0 || ds.labels[i] >= ds.classes) abort();
        (void)sum;
        sq_dataset_free(&ds);
    } else {
        fz_check_error_line();
    }
    fz_rmtree(dir);
    return 0;
}
