/* cublas.c: the backend's cuBLAS handle (created once at backend init, on the default stream).
   Math mode stays CUBLAS_DEFAULT_MATH: FP32 GEMMs in full FP32 (cuBLAS uses TF32 only when asked
   with CUBLAS_TF32_TENSOR_OP_MATH), so linear layers match the CPU reference closely. */
#include "cuda_ops.h"

static cublasHandle_t g_cublas;

sq_status sq_cuda_cublas_init(void)
{
    if (g_cublas) return SQ_OK;
    cublasStatus_t st = cublasCreate(&g_cublas);
    if (st != CUBLAS_STATUS_SUCCESS) {
        g_cublas = NULL;
        sq_set_error("cuBLAS unusable: cublasCreate failed (%s); check the CUDA driver and the "
                     "cuBLAS installation", cublasGetStatusString(st));
        return SQ_EDEVICE;
    }
    unsigned before = sq_cuda_error_count();
    CUBLAS_CHECK(cublasSetMathMode(g_cublas, CUBLAS_DEFAULT_MATH));
    CUBLAS_CHECK(cublasSetPointerMode(g_cublas, CUBLAS_POINTER_MODE_HOST));
    return sq_cuda_error_count() == before ? SQ_OK : SQ_EDEVICE;
}

cublasHandle_t sq_cuda_cublas(void) { return g_cublas; }
