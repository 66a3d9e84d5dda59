/* test_dnn_api.c: Criterion suite "cuemu_dnn", continued: the emulation's algorithm heuristics,
   cudnnFind, workspaces, descriptor and argument checks, cudnnAddTensor and cublasSgemm (the
   convolution numerics are in test_dnn_emu.c, the shared helpers in test_dnn_util.c). */
#include "test_dnn_util.h"

/* ---- heuristics, workspace, argument checks ---- */

Test(cuemu_dnn, heuristics_and_workspace)
{
    cfg c = {2, 4, 7, 7, 4, 3, 3, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION};
    conv_set s = make_set(&c, CUDNN_DATA_FLOAT);
    cudnnConvolutionFwdAlgoPerf_t fp[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int got = 0, succ = 0;
    cr_assert_eq(cudnnGetConvolutionForwardAlgorithm_v7(s.h, s.xd, s.wd, s.cd, s.yd,
                                                        CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, fp),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_geq(got, 3);
    cr_assert_eq(fp[0].status, CUDNN_STATUS_SUCCESS);
    cr_assert_eq(fp[0].determinism, CUDNN_NON_DETERMINISTIC);
    for (int i = 0; i < got; i++) {
        if (fp[i].status != CUDNN_STATUS_SUCCESS) continue;
        succ++;
        cr_assert_gt(fp[i].memory, 0);
        cr_assert_eq(fp[i].mathType, CUDNN_FMA_MATH);
    }
    cr_assert_geq(succ, 3);
    cr_assert_neq(fp[0].memory, fp[1].memory);
    /* a request for one result returns one */
    cr_assert_eq(cudnnGetConvolutionForwardAlgorithm_v7(s.h, s.xd, s.wd, s.cd, s.yd, 1, &got, fp),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(got, 1);
    cr_assert_eq(cudnnGetConvolutionForwardAlgorithm_v7(s.h, s.xd, s.wd, s.cd, s.yd, 0, &got, fp),
                 CUDNN_STATUS_BAD_PARAM);

    algos a = pick_algos(&s);
    size_t need = 0;
    cr_assert_eq(cudnnGetConvolutionForwardWorkspaceSize(s.h, s.xd, s.wd, s.cd, s.yd, a.fwd, &need),
                 CUDNN_STATUS_SUCCESS);
    float *x = dfill(s.nx), *w = dfill(s.nw), *y = dnan(s.ny);
    unsigned char *ws = dalloc(a.ws);
    memset(ws, 0, a.ws);
    const float one = 1.0f, zero = 0.0f;
    cr_assert_eq(cudnnConvolutionForward(s.h, &one, s.xd, x, s.wd, w, s.cd, a.fwd, ws, need - 1,
                                         &zero, s.yd, y),
                 CUDNN_STATUS_BAD_PARAM);
    cr_assert_eq(cudnnConvolutionForward(s.h, &one, s.xd, x, s.wd, w, s.cd, a.fwd, NULL, need,
                                         &zero, s.yd, y),
                 CUDNN_STATUS_BAD_PARAM);
    cr_assert_eq(cudnnConvolutionForward(s.h, &one, s.xd, x, s.wd, w, s.cd,
                                         CUDNN_CONVOLUTION_FWD_ALGO_FFT, ws, a.ws, &zero, s.yd, y),
                 CUDNN_STATUS_NOT_SUPPORTED);
    cr_assert_eq(cudnnConvolutionForward(s.h, &one, s.xd, x, s.wd, w, s.cd,
                                         (cudnnConvolutionFwdAlgo_t)99, ws, a.ws, &zero, s.yd, y),
                 CUDNN_STATUS_BAD_PARAM);
    cr_assert_eq(cudnnGetConvolutionForwardWorkspaceSize(s.h, s.xd, s.wd, s.cd, s.yd,
                                                         CUDNN_CONVOLUTION_FWD_ALGO_FFT, &need),
                 CUDNN_STATUS_NOT_SUPPORTED);
    cr_assert_eq(cudnnGetConvolutionForwardWorkspaceSize(s.h, s.xd, s.wd, s.cd, s.yd, a.fwd, &need),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnConvolutionForward(s.h, &one, s.xd, x, s.wd, w, s.cd, a.fwd, ws, need,
                                         &zero, s.yd, y),
                 CUDNN_STATUS_SUCCESS);
    for (size_t i = 0; i < need; i++) cr_assert_eq(ws[i], 0xff, "workspace byte %zu not ruined", i);

    /* backward data with too small a workspace */
    float *dy = dfill(s.ny), *dx = dnan(s.nx);
    cr_assert_eq(cudnnGetConvolutionBackwardDataWorkspaceSize(s.h, s.wd, s.yd, s.cd, s.xd,
                                                              a.bwd_data, &need),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnConvolutionBackwardData(s.h, &one, s.wd, w, s.yd, dy, s.cd, a.bwd_data, ws,
                                              need - 1, &zero, s.xd, dx),
                 CUDNN_STATUS_BAD_PARAM);
    cr_assert_eq(cudnnGetConvolutionBackwardFilterWorkspaceSize(s.h, s.xd, s.yd, s.cd, s.wd,
                                                                a.bwd_filter, &need),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnConvolutionBackwardFilter(s.h, &one, s.xd, x, s.yd, dy, s.cd, a.bwd_filter,
                                                ws, need - 1, &zero, s.wd, w),
                 CUDNN_STATUS_BAD_PARAM);
    free_set(&s);
}

/* cudnnFind*AlgorithmEx: the heuristics' list, algorithms needing more workspace than offered
   marked NOT_SUPPORTED */
Test(cuemu_dnn, find_algorithms_respect_the_workspace)
{
    cfg c = {2, 4, 7, 7, 4, 3, 3, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION};
    conv_set s = make_set(&c, CUDNN_DATA_FLOAT);
    float *x = dfill(s.nx), *w = dfill(s.nw), *y = dfill(s.ny);
    size_t big = 1 << 20;
    void *ws = dalloc(big);
    cudnnConvolutionFwdAlgoPerf_t fp[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    cudnnConvolutionBwdDataAlgoPerf_t dp[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    cudnnConvolutionBwdFilterAlgoPerf_t wp[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int got = 0, ok = 0;
    cr_assert_eq(cudnnFindConvolutionForwardAlgorithmEx(s.h, s.xd, x, s.wd, w, s.cd, s.yd, y,
                                                        CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got,
                                                        fp, ws, big),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_geq(got, 3);
    for (int i = 0; i < got; i++) ok += fp[i].status == CUDNN_STATUS_SUCCESS;
    cr_assert_geq(ok, 3);
    /* no workspace: only algorithms that need none could run, and every emulated one needs some */
    cr_assert_eq(cudnnFindConvolutionForwardAlgorithmEx(s.h, s.xd, x, s.wd, w, s.cd, s.yd, y,
                                                        CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got,
                                                        fp, NULL, 0),
                 CUDNN_STATUS_SUCCESS);
    for (int i = 0; i < got; i++) {
        cr_assert_neq(fp[i].status, CUDNN_STATUS_SUCCESS, "result %d needs %zu bytes", i, fp[i].memory);
        cr_assert_lt(fp[i].time, 0.0f);
    }
    cr_assert_eq(cudnnFindConvolutionBackwardDataAlgorithmEx(
                     s.h, s.wd, w, s.yd, y, s.cd, s.xd, x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                     &got, dp, ws, big),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_geq(got, 3);
    cr_assert_eq(dp[0].status, CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnFindConvolutionBackwardFilterAlgorithmEx(
                     s.h, s.xd, x, s.yd, y, s.cd, s.wd, w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                     &got, wp, ws, big),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_geq(got, 3);
    cr_assert_eq(wp[0].status, CUDNN_STATUS_SUCCESS);
    free_set(&s);
}

/* a Find buffer one element short of its descriptor: fatal, as the search would run on it */
Test(cuemu_dnn, find_short_buffer_is_fatal, .signal = SIGABRT)
{
    cfg c = {1, 2, 5, 5, 2, 3, 3, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION};
    conv_set s = make_set(&c, CUDNN_DATA_FLOAT);
    float *x = dfill(s.nx - 1), *w = dfill(s.nw), *y = dfill(s.ny);
    cudnnConvolutionFwdAlgoPerf_t fp[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int got = 0;
    cudnnFindConvolutionForwardAlgorithmEx(s.h, s.xd, x, s.wd, w, s.cd, s.yd, y,
                                           CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, fp, NULL, 0);
}

Test(cuemu_dnn, descriptor_checks)
{
    cudnnHandle_t h;
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    int n, c, hh, ww;
    cr_assert_eq(cudnnCreate(&h), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateTensorDescriptor(&xd), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateTensorDescriptor(&yd), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateFilterDescriptor(&wd), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateConvolutionDescriptor(&cd), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 0, 3, 4, 4),
                 CUDNN_STATUS_BAD_PARAM);
    cr_assert_eq(cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 2, 4, 8, 8),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetConvolution2dDescriptor(cd, 1, 1, 0, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                                 CUDNN_DATA_FLOAT),
                 CUDNN_STATUS_BAD_PARAM);
    cr_assert_eq(cudnnSetConvolution2dDescriptor(cd, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                                 CUDNN_DATA_FLOAT),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetConvolutionGroupCount(cd, 0), CUDNN_STATUS_BAD_PARAM);
    /* channel mismatch: x has 4 channels, w 3 per group */
    cr_assert_eq(cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 4, 3, 3, 3),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnGetConvolution2dForwardOutputDim(cd, xd, wd, &n, &c, &hh, &ww),
                 CUDNN_STATUS_BAD_PARAM);
    /* groups 2: 2 channels per group matches, K = 3 not divisible by 2 */
    cr_assert_eq(cudnnSetConvolutionGroupCount(cd, 2), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 3, 2, 3, 3),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnGetConvolution2dForwardOutputDim(cd, xd, wd, &n, &c, &hh, &ww),
                 CUDNN_STATUS_BAD_PARAM);
    cr_assert_eq(cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 4, 2, 3, 3),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnGetConvolution2dForwardOutputDim(cd, xd, wd, &n, &c, &hh, &ww),
                 CUDNN_STATUS_SUCCESS);
    cr_assert(n == 2 && c == 4 && hh == 8 && ww == 8);
    /* y of the wrong size, then of another type */
    cudnnConvolutionFwdAlgoPerf_t fp[4];
    int got;
    cr_assert_eq(cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 2, 4, 7, 8),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnGetConvolutionForwardAlgorithm_v7(h, xd, wd, cd, yd, 4, &got, fp),
                 CUDNN_STATUS_BAD_PARAM);
    cr_assert_eq(cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_HALF, 2, 4, 8, 8),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnGetConvolutionForwardAlgorithm_v7(h, xd, wd, cd, yd, 4, &got, fp),
                 CUDNN_STATUS_NOT_SUPPORTED);
    /* fp32 data with a half compute type */
    cr_assert_eq(cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 2, 4, 8, 8),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetConvolution2dDescriptor(cd, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                                 CUDNN_DATA_HALF),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnGetConvolutionForwardAlgorithm_v7(h, xd, wd, cd, yd, 4, &got, fp),
                 CUDNN_STATUS_NOT_SUPPORTED);
    cr_assert_str_eq(cudnnGetErrorString(CUDNN_STATUS_BAD_PARAM), "CUDNN_STATUS_BAD_PARAM");
    cr_assert_str_eq(cudnnGetErrorString(CUDNN_STATUS_NOT_SUPPORTED), "CUDNN_STATUS_NOT_SUPPORTED");
    cr_assert_str_eq(cudnnGetErrorString(CUDNN_STATUS_SUCCESS), "CUDNN_STATUS_SUCCESS");
    cudnnDestroyTensorDescriptor(xd);
    cudnnDestroyTensorDescriptor(yd);
    cudnnDestroyFilterDescriptor(wd);
    cudnnDestroyConvolutionDescriptor(cd);
    cudnnDestroy(h);
}

/* y one element short of its descriptor: a fatal out-of-bounds access */
Test(cuemu_dnn, short_output_is_fatal, .signal = SIGABRT)
{
    cfg c = {1, 2, 5, 5, 2, 3, 3, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION};
    conv_set s = make_set(&c, CUDNN_DATA_FLOAT);
    algos a = pick_algos(&s);
    float *x = dfill(s.nx), *w = dfill(s.nw), *y = dnan(s.ny - 1);
    void *ws = dalloc(a.ws);
    const float one = 1.0f, zero = 0.0f;
    cudnnConvolutionForward(s.h, &one, s.xd, x, s.wd, w, s.cd, a.fwd, ws, a.ws, &zero, s.yd, y);
}

/* ---- cudnnAddTensor ---- */

Test(cuemu_dnn, add_tensor)
{
    cudnnHandle_t h;
    cudnnTensorDescriptor_t bd, cd, fd;
    cr_assert_eq(cudnnCreate(&h), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateTensorDescriptor(&bd), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateTensorDescriptor(&cd), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateTensorDescriptor(&fd), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetTensor4dDescriptor(bd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 3, 1, 1),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetTensor4dDescriptor(cd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 2, 3, 4, 5),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetTensor4dDescriptor(fd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 2, 3, 4, 5),
                 CUDNN_STATUS_SUCCESS);
    size_t nc = 2 * 3 * 4 * 5;
    float *b = dfill(3), *cc = dfill(nc), *full = dfill(nc);
    double *want = malloc(nc * sizeof *want);
    cr_assert_not_null(want);
    const float one = 1.0f, two = 2.0f, zero = 0.0f;
    for (size_t i = 0; i < nc; i++) want[i] = cc[i] + 2.0 * b[(i / 20) % 3];
    cr_assert_eq(cudnnAddTensor(h, &two, bd, b, &one, cd, cc), CUDNN_STATUS_SUCCESS);
    expect_close("C + 2 b", cc, want, nc, 1e-6);
    for (size_t i = 0; i < nc; i++) cc[i] = NAN;
    for (size_t i = 0; i < nc; i++) want[i] = full[i];
    cr_assert_eq(cudnnAddTensor(h, &one, fd, full, &zero, cd, cc), CUDNN_STATUS_SUCCESS);
    expect_close("A (beta 0)", cc, want, nc, 0.0);
    cr_assert_eq(cudnnSetTensor4dDescriptor(bd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 2, 1, 1),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnAddTensor(h, &one, bd, b, &one, cd, cc), CUDNN_STATUS_BAD_PARAM);
    cudnnDestroyTensorDescriptor(bd);
    cudnnDestroyTensorDescriptor(cd);
    cudnnDestroyTensorDescriptor(fd);
    cudnnDestroy(h);
    free(want);
}

/* ---- cublasSgemm ---- */

static void check_gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                       float beta)
{
    cublasHandle_t h;
    cr_assert_eq(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST), CUBLAS_STATUS_SUCCESS);
    int ar = ta == CUBLAS_OP_N ? m : k, ac = ta == CUBLAS_OP_N ? k : m;
    int br = tb == CUBLAS_OP_N ? k : n, bc = tb == CUBLAS_OP_N ? n : k;
    int lda = ar + 2, ldb = br + 1, ldc = m + 3;
    float *A = dfill((size_t)lda * ac), *B = dfill((size_t)ldb * bc), *C = dfill((size_t)ldc * n);
    double *want = malloc((size_t)ldc * n * sizeof *want);
    cr_assert_not_null(want);
    const float alpha = 1.5f;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < ldc; i++) {
            if (i >= m) {
                want[i + (size_t)j * ldc] = C[i + (size_t)j * ldc]; /* padding untouched */
                continue;
            }
            double s = 0.0;
            for (int l = 0; l < k; l++) {
                double a = ta == CUBLAS_OP_N ? A[i + (size_t)l * lda] : A[l + (size_t)i * lda];
                double b = tb == CUBLAS_OP_N ? B[l + (size_t)j * ldb] : B[j + (size_t)l * ldb];
                s += a * b;
            }
            want[i + (size_t)j * ldc] = alpha * s + (beta != 0.0f ? beta * C[i + (size_t)j * ldc] : 0.0);
        }
    if (beta == 0.0f)
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) C[i + (size_t)j * ldc] = NAN;
    cr_assert_eq(cublasSgemm(h, ta, tb, m, n, k, &alpha, A, lda, B, ldb, &beta, C, ldc),
                 CUBLAS_STATUS_SUCCESS);
    expect_close("C", C, want, (size_t)ldc * n, 1e-5);
    /* leading dimensions below the rows stored */
    cr_assert_eq(cublasSgemm(h, ta, tb, m, n, k, &alpha, A, ar - 1, B, ldb, &beta, C, ldc),
                 CUBLAS_STATUS_INVALID_VALUE);
    cr_assert_eq(cublasSgemm(h, ta, tb, m, n, k, &alpha, A, lda, B, br - 1, &beta, C, ldc),
                 CUBLAS_STATUS_INVALID_VALUE);
    cr_assert_eq(cublasSgemm(h, ta, tb, m, n, k, &alpha, A, lda, B, ldb, &beta, C, m - 1),
                 CUBLAS_STATUS_INVALID_VALUE);
    cr_assert_eq(cublasSgemm(h, ta, tb, -1, n, k, &alpha, A, lda, B, ldb, &beta, C, ldc),
                 CUBLAS_STATUS_INVALID_VALUE);
    dfree(A);
    dfree(B);
    dfree(C);
    free(want);
    cr_assert_eq(cublasDestroy(h), CUBLAS_STATUS_SUCCESS);
}

Test(cuemu_dnn, sgemm)
{
    const cublasOperation_t ops[2] = {CUBLAS_OP_N, CUBLAS_OP_T};
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            check_gemm(ops[a], ops[b], 5, 7, 9, 0.0f);
            check_gemm(ops[a], ops[b], 6, 3, 4, 1.0f);
            check_gemm(ops[a], ops[b], 3, 4, 2, -0.5f);
        }
    cr_assert_str_eq(cublasGetStatusString(CUBLAS_STATUS_INVALID_VALUE),
                     "CUBLAS_STATUS_INVALID_VALUE");
}

/* B outside device memory: fatal */
Test(cuemu_dnn, sgemm_host_pointer_is_fatal, .signal = SIGABRT)
{
    cublasHandle_t h;
    cr_assert_eq(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    float *A = dfill(16), *C = dfill(16), B[16] = {0};
    const float one = 1.0f, zero = 0.0f;
    cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, A, 4, B, 4, &zero, C, 4);
}
