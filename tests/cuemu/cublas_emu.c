/* cublas_emu.c: the part of cuBLAS (v2 API) that the CUDA backend uses, emulated on the CPU for
   cuemu (tests/cuemu/README.md): handle creation, math / pointer mode, stream and workspace
   setters, status strings and cublasSgemm (column-major C = alpha op(A) op(B) + beta C, op N or
   T), recorded instead of run while the handle's stream captures a CUDA graph (capture.cc).

   cublas_v2.h maps cublasCreate, cublasSgemm & co. to their _v2 symbols, which are defined here.
   Argument checks follow the cuBLAS documentation (negative sizes, bad op, lda / ldb / ldc smaller
   than the stored rows: CUBLAS_STATUS_INVALID_VALUE); every matrix the call touches is checked
   with cuemu_dev_range_ok (fatal on failure), and so are alpha / beta in device pointer mode.
   beta == 0 means C is not read (it may hold NaN). Products are accumulated in double and rounded
   once to fp32; the math mode is stored and has no effect. */
#include <stdlib.h>
#include <string.h>
#include <cublas_v2.h>
#include "cuemu_rt.h"

struct cublasContext {
    cudaStream_t stream;
    cublasMath_t math;
    cublasPointerMode_t ptr_mode;
};

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle)
{
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    struct cublasContext *h = calloc(1, sizeof *h);
    if (!h) return CUBLAS_STATUS_ALLOC_FAILED;
    h->math = CUBLAS_DEFAULT_MATH;
    h->ptr_mode = CUBLAS_POINTER_MODE_HOST;
    *handle = h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    free(handle);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = streamId;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void *workspace, size_t bytes)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (bytes && !workspace) return CUBLAS_STATUS_INVALID_VALUE;
    if (bytes && !cuemu_dev_range_ok(workspace, bytes))
        cuemu_fatal("cuBLAS cublasSetWorkspace", "the %zu-byte workspace %p is not inside one "
                    "device allocation", bytes, workspace);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream_v2(cublasHandle_t handle, cudaStream_t *streamId)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!streamId) return CUBLAS_STATUS_INVALID_VALUE;
    *streamId = handle->stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    unsigned base = (unsigned)mode & ~(unsigned)CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    if (base != CUBLAS_DEFAULT_MATH && base != CUBLAS_TENSOR_OP_MATH &&
        base != CUBLAS_PEDANTIC_MATH && base != CUBLAS_TF32_TENSOR_OP_MATH)
        return CUBLAS_STATUS_INVALID_VALUE;
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t *mode)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!mode) return CUBLAS_STATUS_INVALID_VALUE;
    *mode = handle->math;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t mode)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (mode != CUBLAS_POINTER_MODE_HOST && mode != CUBLAS_POINTER_MODE_DEVICE)
        return CUBLAS_STATUS_INVALID_VALUE;
    handle->ptr_mode = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t *mode)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!mode) return CUBLAS_STATUS_INVALID_VALUE;
    *mode = handle->ptr_mode;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusName(cublasStatus_t status)
{
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

const char *cublasGetStatusString(cublasStatus_t status) { return cublasGetStatusName(status); }

static int op_valid(cublasOperation_t op)
{
    return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C;
}

/* bytes spanned by a column-major rows x cols matrix with leading dimension ld */
static size_t mat_bytes(int rows, int cols, int ld)
{
    if (rows == 0 || cols == 0) return 0;
    return ((size_t)(cols - 1) * (size_t)ld + (size_t)rows) * sizeof(float);
}

static void need_dev(const char *arg, const void *p, size_t bytes)
{
    if (bytes && !cuemu_dev_range_ok(p, bytes))
        cuemu_fatal("cuBLAS cublasSgemm",
                    "argument %s = %p: its %zu bytes are not inside one device allocation", arg,
                    p, bytes);
}

static cublasStatus_t sgemm_now(cublasHandle_t handle, cublasOperation_t transa,
                                cublasOperation_t transb, int m, int n, int k, const float *alpha,
                                const float *A, int lda, const float *B, int ldb,
                                const float *beta, float *C, int ldc);

/* a cublasSgemm recorded by a CUDA-graph capture (capture.cc); alpha and beta as read at the
   call (host pointer mode) */
struct sgemm_args {
    cublasHandle_t h;
    cublasOperation_t ta, tb;
    int m, n, k, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C;
};

static void sgemm_replay(void *p)
{
    const struct sgemm_args *a = p;
    if (sgemm_now(a->h, a->ta, a->tb, a->m, a->n, a->k, &a->alpha, a->A, a->lda, a->B, a->ldb,
                  &a->beta, a->C, a->ldc) != CUBLAS_STATUS_SUCCESS)
        cuemu_fatal("graph launch", "a recorded cublasSgemm failed");
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa,
                              cublasOperation_t transb, int m, int n, int k, const float *alpha,
                              const float *A, int lda, const float *B, int ldb, const float *beta,
                              float *C, int ldc)
{
    if (handle) {
        if (cuemu_capture_check(handle->stream, 0) != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
        if (cuemu_capturing(handle->stream)) {
            if (handle->ptr_mode != CUBLAS_POINTER_MODE_HOST || !alpha || !beta)
                cuemu_fatal("cuBLAS cublasSgemm", "capture: only host pointer mode is emulated");
            struct sgemm_args a = {handle, transa, transb, m, n, k, lda, ldb, ldc, *alpha, *beta,
                                   A, B, C};
            cuemu_record(handle->stream, sgemm_replay, &a, sizeof a);
            return CUBLAS_STATUS_SUCCESS;
        }
    }
    return sgemm_now(handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

static cublasStatus_t sgemm_now(cublasHandle_t handle, cublasOperation_t transa,
                                cublasOperation_t transb, int m, int n, int k, const float *alpha,
                                const float *A, int lda, const float *B, int ldb,
                                const float *beta, float *C, int ldc)
{
    cuemu_stat("cuBLAS cublasSgemm");
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!op_valid(transa) || !op_valid(transb) || m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    int ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
    int a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
    if (lda < (a_rows > 1 ? a_rows : 1) || ldb < (b_rows > 1 ? b_rows : 1) ||
        ldc < (m > 1 ? m : 1))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    if (handle->ptr_mode == CUBLAS_POINTER_MODE_DEVICE) {
        need_dev("alpha", alpha, sizeof *alpha);
        need_dev("beta", beta, sizeof *beta);
    }
    float al = *alpha, be = *beta;
    if (m == 0 || n == 0 || ((al == 0.0f || k == 0) && be == 1.0f)) return CUBLAS_STATUS_SUCCESS;
    int use_ab = al != 0.0f && k > 0;
    if (use_ab) {
        need_dev("A", A, mat_bytes(a_rows, a_cols, lda));
        need_dev("B", B, mat_bytes(b_rows, b_cols, ldb));
    }
    need_dev("C", C, mat_bytes(m, n, ldc));
    double *acc = use_ab ? malloc((size_t)m * (size_t)n * sizeof *acc) : NULL;
    if (use_ab && !acc) return CUBLAS_STATUS_ALLOC_FAILED;
#pragma omp parallel for schedule(static)
    for (int j = 0; j < n; j++) {
        float *cj = C + (size_t)j * ldc;
        if (use_ab) {
            double *aj = acc + (size_t)j * m;
            if (!ta) { /* a column sweep: aj += A(:, l) * B(l, j) */
                for (int i = 0; i < m; i++) aj[i] = 0.0;
                for (int l = 0; l < k; l++) {
                    double bl = tb ? B[j + (size_t)l * ldb] : B[l + (size_t)j * ldb];
                    const float *al_col = A + (size_t)l * lda;
                    for (int i = 0; i < m; i++) aj[i] += al_col[i] * bl;
                }
            } else { /* dot products of A's columns with op(B)(:, j) */
                for (int i = 0; i < m; i++) {
                    const float *ai = A + (size_t)i * lda;
                    double s = 0.0;
                    if (tb)
                        for (int l = 0; l < k; l++) s += (double)ai[l] * B[j + (size_t)l * ldb];
                    else
                        for (int l = 0; l < k; l++) s += (double)ai[l] * B[l + (size_t)j * ldb];
                    aj[i] = s;
                }
            }
            for (int i = 0; i < m; i++) {
                float v = (float)((double)al * aj[i]);
                cj[i] = be == 0.0f ? v : v + be * cj[i];
            }
        } else {
            for (int i = 0; i < m; i++) cj[i] = be == 0.0f ? 0.0f : be * cj[i];
        }
    }
    free(acc);
    return CUBLAS_STATUS_SUCCESS;
}
