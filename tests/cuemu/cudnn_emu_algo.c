/* cudnn_emu_algo.c: cuemu's cuDNN algorithm heuristics (cudnnGet*Algorithm_v7), the search
   (cudnnFind*AlgorithmEx), the workspace sizes and the workspace check of every convolution call.
   Each direction offers NALGO_ROWS algorithms, a non-deterministic one first (so the backend's
   preference for deterministic ones is exercised), one of them unsupported; every algorithm needs
   a workspace that depends on the shape. */
#include <string.h>
#include "cudnn_emu_int.h"

enum { NALGO_ROWS = 4 };

typedef struct algo_row {
    int algo;
    cudnnDeterminism_t det;
    int supported;
} algo_row;

static const algo_row g_rows[3][NALGO_ROWS] = {
    {{CUDNN_CONVOLUTION_FWD_ALGO_GEMM, CUDNN_NON_DETERMINISTIC, 1},
     {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_DETERMINISTIC, 1},
     {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, CUDNN_DETERMINISTIC, 1},
     {CUDNN_CONVOLUTION_FWD_ALGO_FFT, CUDNN_DETERMINISTIC, 0}},
    {{CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, CUDNN_NON_DETERMINISTIC, 1},
     {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, CUDNN_DETERMINISTIC, 1},
     {CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED, CUDNN_DETERMINISTIC, 1},
     {CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT, CUDNN_DETERMINISTIC, 0}},
    {{CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, CUDNN_NON_DETERMINISTIC, 1},
     {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, CUDNN_DETERMINISTIC, 1},
     {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3, CUDNN_NON_DETERMINISTIC, 1},
     {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT, CUDNN_DETERMINISTIC, 0}},
};

static const int g_algo_count[3] = {CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                    CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                    CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT};

/* SUCCESS when algo is usable in direction dir, NOT_SUPPORTED for a known but unsupported
   algorithm, BAD_PARAM for a value outside the enum */
static cudnnStatus_t algo_check(int dir, int algo)
{
    if (algo < 0 || algo >= g_algo_count[dir]) return CUDNN_STATUS_BAD_PARAM;
    for (int i = 0; i < NALGO_ROWS; i++)
        if (g_rows[dir][i].algo == algo && g_rows[dir][i].supported) return CUDNN_STATUS_SUCCESS;
    return CUDNN_STATUS_NOT_SUPPORTED;
}

/* the workspace an algorithm needs: a base that differs per direction and algorithm plus a
   filter-slice-sized term, so it changes with the shape too */
static size_t ws_need(int dir, int algo, const conv_geom *g)
{
    size_t slice = (size_t)g->cg * (size_t)g->r * (size_t)g->s * sizeof(float);
    return (size_t)4096 * (size_t)(1 + algo + 4 * dir) + slice * (size_t)(1 + algo % 3);
}

/* result i of the heuristics of direction dir */
static void fill_perf(int dir, const conv_geom *g, const struct cudnnConvolutionStruct *cd, int i,
                      int *algo, cudnnStatus_t *status, float *time, size_t *memory,
                      cudnnDeterminism_t *det, cudnnMathType_t *math)
{
    const algo_row *row = &g_rows[dir][i];
    *algo = row->algo;
    *status = row->supported ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_NOT_SUPPORTED;
    *time = row->supported ? 0.05f * (float)(i + 1) : -1.0f;
    *memory = row->supported ? ws_need(dir, row->algo, g) : 0;
    *det = row->det;
    *math = cd->math;
}

#define SQ_PERF_LOOP(dir, g, cd, requested, returned, perf, algo_t)                             \
    do {                                                                                        \
        if ((requested) <= 0 || !(returned) || !(perf)) return CUDNN_STATUS_BAD_PARAM;          \
        int count_ = (requested) < NALGO_ROWS ? (requested) : NALGO_ROWS;                       \
        for (int i_ = 0; i_ < count_; i_++) {                                                   \
            int a_ = 0;                                                                         \
            memset(&(perf)[i_], 0, sizeof(perf)[i_]);                                           \
            fill_perf(dir, g, cd, i_, &a_, &(perf)[i_].status, &(perf)[i_].time,                \
                      &(perf)[i_].memory, &(perf)[i_].determinism, &(perf)[i_].mathType);       \
            (perf)[i_].algo = (algo_t)a_;                                                       \
        }                                                                                       \
        *(returned) = count_;                                                                   \
    } while (0)

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t handle,
                                                     const cudnnTensorDescriptor_t srcDesc,
                                                     const cudnnFilterDescriptor_t filterDesc,
                                                     const cudnnConvolutionDescriptor_t convDesc,
                                                     const cudnnTensorDescriptor_t destDesc,
                                                     const int requestedAlgoCount,
                                                     int *returnedAlgoCount,
                                                     cudnnConvolutionFwdAlgoPerf_t *perfResults)
{
    conv_geom g;
    if (!handle) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = cuemu_dnn_conv_check(srcDesc, filterDesc, convDesc, destDesc, &g);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    SQ_PERF_LOOP(DIR_FWD, &g, convDesc, requestedAlgoCount, returnedAlgoCount, perfResults,
                 cudnnConvolutionFwdAlgo_t);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t filterDesc,
    const cudnnTensorDescriptor_t diffDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t gradDesc, const int requestedAlgoCount, int *returnedAlgoCount,
    cudnnConvolutionBwdDataAlgoPerf_t *perfResults)
{
    conv_geom g;
    if (!handle) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = cuemu_dnn_conv_check(gradDesc, filterDesc, convDesc, diffDesc, &g);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    SQ_PERF_LOOP(DIR_BWD_DATA, &g, convDesc, requestedAlgoCount, returnedAlgoCount, perfResults,
                 cudnnConvolutionBwdDataAlgo_t);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
    const cudnnTensorDescriptor_t diffDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnFilterDescriptor_t gradDesc, const int requestedAlgoCount, int *returnedAlgoCount,
    cudnnConvolutionBwdFilterAlgoPerf_t *perfResults)
{
    conv_geom g;
    if (!handle) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = cuemu_dnn_conv_check(srcDesc, gradDesc, convDesc, diffDesc, &g);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    SQ_PERF_LOOP(DIR_BWD_FILTER, &g, convDesc, requestedAlgoCount, returnedAlgoCount,
                 perfResults, cudnnConvolutionBwdFilterAlgo_t);
    return CUDNN_STATUS_SUCCESS;
}

/* cudnnFind*AlgorithmEx: every device range is checked as a convolution call would (the search
   runs the algorithms on them), then the heuristics' list is returned, each algorithm whose
   workspace exceeds the one given marked CUDNN_STATUS_NOT_SUPPORTED (real cuDNN does not time
   those) */
#define SQ_FIND_LOOP(dir, fn, g, cd, requested, returned, perf, algo_t, ws, ws_bytes)          \
    do {                                                                                        \
        if ((ws_bytes) > 0) need_dev(fn, "workSpace", ws, ws_bytes);                            \
        SQ_PERF_LOOP(dir, g, cd, requested, returned, perf, algo_t);                            \
        for (int j_ = 0; j_ < *(returned); j_++)                                                \
            if ((perf)[j_].memory > (ws_bytes)) {                                               \
                (perf)[j_].status = CUDNN_STATUS_NOT_SUPPORTED;                                 \
                (perf)[j_].time = -1.0f;                                                        \
            }                                                                                   \
    } while (0)

cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const void *x,
    const cudnnFilterDescriptor_t wDesc, const void *w, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t yDesc, void *y, const int requestedAlgoCount,
    int *returnedAlgoCount, cudnnConvolutionFwdAlgoPerf_t *perfResults, void *workSpace,
    size_t workSpaceSizeInBytes)
{
    static const char fn[] = "cuDNN cudnnFindConvolutionForwardAlgorithmEx";
    conv_geom g;
    if (!handle || !x || !w || !y) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = cuemu_dnn_conv_check(xDesc, wDesc, convDesc, yDesc, &g);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    need_dev(fn, "x", x, tensor_count(xDesc) * dt_size(xDesc->dt));
    need_dev(fn, "w", w, filter_count(wDesc) * dt_size(xDesc->dt));
    need_dev(fn, "y", y, tensor_count(yDesc) * dt_size(xDesc->dt));
    SQ_FIND_LOOP(DIR_FWD, fn, &g, convDesc, requestedAlgoCount, returnedAlgoCount, perfResults,
                 cudnnConvolutionFwdAlgo_t, workSpace, workSpaceSizeInBytes);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc, const void *w,
    const cudnnTensorDescriptor_t dyDesc, const void *dy,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t dxDesc, void *dx,
    const int requestedAlgoCount, int *returnedAlgoCount,
    cudnnConvolutionBwdDataAlgoPerf_t *perfResults, void *workSpace, size_t workSpaceSizeInBytes)
{
    static const char fn[] = "cuDNN cudnnFindConvolutionBackwardDataAlgorithmEx";
    conv_geom g;
    if (!handle || !w || !dy || !dx) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = cuemu_dnn_conv_check(dxDesc, wDesc, convDesc, dyDesc, &g);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    need_dev(fn, "w", w, filter_count(wDesc) * dt_size(dxDesc->dt));
    need_dev(fn, "dy", dy, tensor_count(dyDesc) * dt_size(dxDesc->dt));
    need_dev(fn, "dx", dx, tensor_count(dxDesc) * dt_size(dxDesc->dt));
    SQ_FIND_LOOP(DIR_BWD_DATA, fn, &g, convDesc, requestedAlgoCount, returnedAlgoCount,
                 perfResults, cudnnConvolutionBwdDataAlgo_t, workSpace, workSpaceSizeInBytes);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithmEx(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const void *x,
    const cudnnTensorDescriptor_t dyDesc, const void *y,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnFilterDescriptor_t dwDesc, void *dw,
    const int requestedAlgoCount, int *returnedAlgoCount,
    cudnnConvolutionBwdFilterAlgoPerf_t *perfResults, void *workSpace, size_t workSpaceSizeInBytes)
{
    static const char fn[] = "cuDNN cudnnFindConvolutionBackwardFilterAlgorithmEx";
    conv_geom g;
    if (!handle || !x || !y || !dw) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = cuemu_dnn_conv_check(xDesc, dwDesc, convDesc, dyDesc, &g);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    need_dev(fn, "x", x, tensor_count(xDesc) * dt_size(xDesc->dt));
    need_dev(fn, "dy", y, tensor_count(dyDesc) * dt_size(xDesc->dt));
    need_dev(fn, "dw", dw, filter_count(dwDesc) * dt_size(xDesc->dt));
    SQ_FIND_LOOP(DIR_BWD_FILTER, fn, &g, convDesc, requestedAlgoCount, returnedAlgoCount,
                 perfResults, cudnnConvolutionBwdFilterAlgo_t, workSpace, workSpaceSizeInBytes);
    return CUDNN_STATUS_SUCCESS;
}
#undef SQ_FIND_LOOP
#undef SQ_PERF_LOOP

static cudnnStatus_t ws_query(int dir, cudnnHandle_t handle, const struct cudnnTensorStruct *x,
                              const struct cudnnFilterStruct *w,
                              const struct cudnnConvolutionStruct *cd,
                              const struct cudnnTensorStruct *y, int algo, size_t *size)
{
    conv_geom g;
    if (!handle || !size) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = cuemu_dnn_conv_check(x, w, cd, y, &g);
    if (st == CUDNN_STATUS_SUCCESS) st = algo_check(dir, algo);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    *size = ws_need(dir, algo, &g);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t handle,
                                                      const cudnnTensorDescriptor_t xDesc,
                                                      const cudnnFilterDescriptor_t wDesc,
                                                      const cudnnConvolutionDescriptor_t convDesc,
                                                      const cudnnTensorDescriptor_t yDesc,
                                                      cudnnConvolutionFwdAlgo_t algo,
                                                      size_t *sizeInBytes)
{
    return ws_query(DIR_FWD, handle, xDesc, wDesc, convDesc, yDesc, (int)algo, sizeInBytes);
}

cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc,
    const cudnnTensorDescriptor_t dyDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t dxDesc, cudnnConvolutionBwdDataAlgo_t algo,
    size_t *sizeInBytes)
{
    return ws_query(DIR_BWD_DATA, handle, dxDesc, wDesc, convDesc, dyDesc, (int)algo,
                    sizeInBytes);
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
    const cudnnTensorDescriptor_t dyDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnFilterDescriptor_t gradDesc, cudnnConvolutionBwdFilterAlgo_t algo,
    size_t *sizeInBytes)
{
    return ws_query(DIR_BWD_FILTER, handle, xDesc, gradDesc, convDesc, dyDesc, (int)algo,
                    sizeInBytes);
}

/* checks the algorithm and the workspace, then ruins the workspace's contents */
cudnnStatus_t cuemu_dnn_ws_use(const char *fn, int dir, int algo, const conv_geom *g, void *ws,
                               size_t ws_bytes)
{
    cudnnStatus_t st = algo_check(dir, algo);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    size_t need = ws_need(dir, algo, g);
    if (ws_bytes < need || !ws) return CUDNN_STATUS_BAD_PARAM;
    need_dev(fn, "workSpace", ws, ws_bytes);
    memset(ws, 0xff, need);
    return CUDNN_STATUS_SUCCESS;
}

