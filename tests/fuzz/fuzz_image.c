/* fuzz_image.c: libFuzzer harness of the PNG and JPEG decoder (sq_image_decode; libpng and
   libjpeg behind it, chosen by the magic bytes): the input is the image file. A decoded image
   must have 1 or 3 channels, a positive size within the pixel budget, and that many bytes. */
#include "fuzz_util.h"
#include "data/data_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[600];
    fz_path(path, sizeof path, "image");
    fz_write(path, data, size);
    uint8_t *pix = NULL;
    int h = 0, w = 0, c = 0;
    fz_clear_error();
    if (sq_image_decode(path, &pix, &h, &w, &c) == SQ_OK) {
        if ((c != 1 && c != 3) || h <= 0 || w <= 0) abort();
        unsigned sum = 0;
        for (size_t i = 0; i < (size_t)h * w * c; i++) sum += pix[i];
        (void)sum;
        free(pix);
    } else {
        if (pix) abort();
        fz_check_error_line();
    }
    unlink(path);
    return 0;
}
