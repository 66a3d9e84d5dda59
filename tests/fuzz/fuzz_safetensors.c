/* fuzz_safetensors.c: libFuzzer harness of the safetensors reader (sq_st_read): the input is the
   file. A file that reads must be self-consistent (each tensor's bytes inside the blob, found by
   its name, metadata found by key); a failure must leave one printable error line. */
#include "fuzz_util.h"
#include "sqakd/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[600];
    fz_path(path, sizeof path, "in.safetensors");
    fz_write(path, data, size);
    sq_st_file f;
    fz_clear_error();
    if (sq_st_read(path, &f) == SQ_OK) {
        unsigned sum = 0;
        for (int i = 0; i < f.ntensors; i++) {
            const sq_st_tensor *t = &f.tensors[i];
            for (size_t b = 0; b < t->nbytes; b++) sum += ((const uint8_t *)t->data)[b];
            if (sq_st_find(&f, t->name) != t || !sq_st_dtype_size(t->dtype)) abort();
        }
        for (int i = 0; i < f.nmeta; i++)
            if (!sq_st_meta(&f, f.meta[i].key)) abort();
        sq_st_free(&f);
        (void)sum;
    } else {
        fz_check_error_line();
    }
    unlink(path);
    return 0;
}
