/* fuzz_onnx_tensor.c: libFuzzer harness of the single-tensor readers: byte 0 even, the rest is an
   ONNX TensorProto file (sq_onnx_read_tensor_mem, the .pb files of ONNX's backend tests); odd, a
   .npy file (sq_npy_read_mem), which, when it reads, is written again with sq_npy_write and must
   read back to the same shape and bits. A failure must leave one printable error line. */
#include "fuzz_util.h"
#include "sqakd/onnx.h"

static void fuzz_tensor(const uint8_t *d, size_t n)
{
    sq_onnx_tensor t;
    fz_clear_error();
    if (sq_onnx_read_tensor_mem(d, n, "in.pb", &t) != SQ_OK) {
        if (t.f || t.i || t.name) fz_fail("failed read left data");
        fz_check_error_line();
        return;
    }
    size_t m = 1;
    for (int k = 0; k < t.ndim; k++) m *= (size_t)t.dims[k];
    if (m != t.numel || !t.name || (!t.f) == (!t.i)) fz_fail("inconsistent tensor");
    volatile double s = 0;
    for (size_t k = 0; k < m; k++) s += t.f ? t.f[k] : (double)t.i[k];
    (void)s;
    sq_onnx_tensor_clear(&t);
}

static void fuzz_npy(const uint8_t *d, size_t n)
{
    float *x = NULL;
    int nd = -1;
    int64_t dims[SQ_ONNX_MAX_DIMS];
    fz_clear_error();
    if (sq_npy_read_mem(d, n, "in.npy", &x, &nd, dims) != SQ_OK) {
        if (x) fz_fail("failed read left data");
        fz_check_error_line();
        return;
    }
    size_t m = 1;
    if (nd < 0 || nd > SQ_ONNX_MAX_DIMS) fz_fail("ndim %d", nd);
    for (int k = 0; k < nd; k++) m *= (size_t)dims[k];
    char path[600];
    fz_path(path, sizeof path, "out.npy");
    if (sq_npy_write(path, x, nd, dims) != SQ_OK) fz_fail("write back failed: %s", sq_last_error());
    float *y = NULL;
    int nd2;
    int64_t dims2[SQ_ONNX_MAX_DIMS];
    fz_clear_error();
    if (sq_npy_read(path, &y, &nd2, dims2) != SQ_OK) fz_fail("written .npy does not read: %s", sq_last_error());
    if (nd2 != nd || memcmp(dims, dims2, (size_t)nd * sizeof *dims) || memcmp(x, y, m * sizeof *x))
        fz_fail("written .npy reads back differently");
    free(x);
    free(y);
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size) return 0;
    if (data[0] & 1) fuzz_npy(data + 1, size - 1);
    else fuzz_tensor(data + 1, size - 1);
    return 0;
}
