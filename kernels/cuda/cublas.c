/* cublas.c: the backend's cuBLAS handle (created once at backend init, on the default stream).
   Math mode stays CUBLAS_DEFAULT_MATH: FP32 GEMMs in full FP32 (cuBLAS uses TF32 only when asked
   with CUBLAS_TF32_TENSOR_OP_MATH), so linear layers match the CPU reference closely. */
#include "cuda_ops.h"

static cublasHandle_t g_cublas;
static void *g_cublas_ws;
#define SQ_CUBLAS_WS (32 << 20) /* cuBLAS's own default on Hopper */

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
    CUBLAS_CHECK(cublasSetStream(g_cublas, sq_cuda_stream()));
    /* a workspace of our own: cuBLAS would otherwise take one from the stream's pool at its first
       call on the stream, which a CUDA-graph capture (graph.c) must not do */
    if (!g_cublas_ws && cudaMalloc(&g_cublas_ws, SQ_CUBLAS_WS) != cudaSuccess) {
        (void)cudaGetLastError();
        sq_set_error("cuBLAS unusable: no device memory for its %d MiB workspace", SQ_CUBLAS_WS >> 20);
        return SQ_EDEVICE;
    }
    CUBLAS_CHECK(cublasSetWorkspace(g_cublas, g_cublas_ws, SQ_CUBLAS_WS));
    return sq_cuda_error_count() == before ? SQ_OK : SQ_EDEVICE;
}

cublasHandle_t sq_cuda_cublas(void) { return g_cublas; }
