/* fuzz_checkpoint.c: libFuzzer harness of checkpoint metadata reading (sq_ckpt_read_meta: the
   safetensors reader, then the "__metadata__" strings: format, arch, input_shape, classes,
   normalisation, quantizer, bit widths): the input is the .safetensors file. */
#include "fuzz_util.h"
#include "sqakd/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[600];
    fz_path(path, sizeof path, "ckpt.safetensors");
    fz_write(path, data, size);
    sq_ckpt_meta m;
    fz_clear_error();
    if (sq_ckpt_read_meta(path, &m) == SQ_OK) {
        /* strings come back NUL-terminated within their fields */
        if (memchr(m.arch, 0, sizeof m.arch) == NULL || memchr(m.dataset, 0, sizeof m.dataset) == NULL ||
            memchr(m.role, 0, sizeof m.role) == NULL)
            abort();
    } else {
        fz_check_error_line();
    }
    unlink(path);
    return 0;
}
