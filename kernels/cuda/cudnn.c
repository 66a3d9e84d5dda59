/* cudnn.c: one cached cuDNN plan per fp32 convolution shape and the internal convolution
   workspace (the cuDNN handle is the context's, context.c).

   Plan time = the first conv_ws_bytes / conv2d_fwd / conv2d_bwd call for a shape: descriptors are
   built, the forward, backward-data and backward-filter algorithms are chosen once, and the
   internal workspace grows to the largest plan's need. After that a step never allocates.
   How the algorithms are chosen (backend options, context.h; a plan keeps the options it was
   built with, and configure refuses to change them once a shape has been planned):
   - conv_find = 0 (conv-algo=heuristic, default): the cuDNN heuristics (cudnnGet*Algorithm_v7:
     no trial runs, no memory needed), as PyTorch does without cudnn.benchmark;
   - conv_find = 1 (conv-algo=find): cudnnFind*AlgorithmEx times every algorithm on scratch
     tensors of the plan's shape (allocated for the search and freed; if they do not fit, the
     heuristics are used), as PyTorch's cudnn.benchmark = True;
   - conv_deterministic = 1 (default) takes the first deterministic algorithm of the list
     (results identical from run to run), 0 the first of any kind.
   Every choice stays within a workspace cap (SQ_CONV_WS_CAP).

   Math: FP32 data; TF32 tensor cores are allowed on Ampere and newer (CUDNN_DEFAULT_MATH, as
   PyTorch's default) unless the option tf32 is 0, which restricts cuDNN to FMA kernels
   (CUDNN_FMA_MATH; the CUDA tests do this to compare with the CPU reference).

   cuDNN's backend (graph) API for the same convolutions lost to these legacy calls (not faster,
   and its CUDA-graph replays drifted: docs/gpu-validation.md, runs 3 and 4); it lives in
   kernels/lab/cudnn_be. */
#include <stdlib.h>
#include <string.h>
#include "cuda_ops.h"

#define SQ_CONV_WS_CAP ((size_t)1 << 30) /* never pick an algorithm needing more than 1 GiB */
#define SQ_CONV_FIND_WS ((size_t)256 << 20) /* workspace offered to cudnnFind*AlgorithmEx */

static sq_cuda_conv_plan *g_plans;
static int g_nplans, g_cap_plans;
static void *g_ws;
static size_t g_ws_bytes;

void *sq_cuda_conv_internal_ws(void) { return g_ws; }

static int same_shape(const sq_conv_shape *a, const sq_conv_shape *b)
{
    return a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w && a->k == b->k &&
           a->r == b->r && a->s == b->s && a->stride == b->stride && a->pad == b->pad &&
           a->groups == b->groups;
}

/* one heuristic result, whatever the direction */
typedef struct algo_choice {
    int algo;
    cudnnStatus_t status;
    size_t memory;
    cudnnDeterminism_t determinism;
    cudnnMathType_t math;
} algo_choice;

/* index of the first usable result, deterministic ones first unless the option
   conv_deterministic is 0; -1 if none. Results that would down-convert FP32 data to FP16 are
   never used. */
static int pick(const algo_choice *c, int count)
{
    for (int pass = sq_cuda_options()->conv_deterministic ? 0 : 1; pass < 2; pass++)
        for (int i = 0; i < count; i++)
            if (c[i].status == CUDNN_STATUS_SUCCESS && c[i].memory <= SQ_CONV_WS_CAP &&
                c[i].math != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION &&
                (pass == 1 || c[i].determinism == CUDNN_DETERMINISTIC))
                return i;
    return -1;
}

static void plan_destroy(sq_cuda_conv_plan *p)
{
    if (p->xd) cudnnDestroyTensorDescriptor(p->xd);
    if (p->yd) cudnnDestroyTensorDescriptor(p->yd);
    if (p->wd) cudnnDestroyFilterDescriptor(p->wd);
    if (p->cd_fwd) cudnnDestroyConvolutionDescriptor(p->cd_fwd);
    if (p->cd_bwd_data) cudnnDestroyConvolutionDescriptor(p->cd_bwd_data);
    if (p->cd_bwd_filter) cudnnDestroyConvolutionDescriptor(p->cd_bwd_filter);
    memset(p, 0, sizeof *p);
}

static void conv_desc(cudnnConvolutionDescriptor_t *cd, const sq_conv_shape *cs,
                      cudnnMathType_t math)
{
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(cd));
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(*cd, cs->pad, cs->pad, cs->stride, cs->stride, 1,
                                                1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionGroupCount(*cd, cs->groups));
    CUDNN_CHECK(cudnnSetConvolutionMathType(*cd, math));
}

/* with TF32 allowed, a direction adopts its chosen algorithm's math type (as PyTorch does); with
   the option tf32 = 0 it stays on FMA whatever the heuristic reports */
static void adopt_math(cudnnConvolutionDescriptor_t cd, cudnnMathType_t chosen, int tf32)
{
    if (tf32) CUDNN_CHECK(cudnnSetConvolutionMathType(cd, chosen));
}

/* scratch tensors for cudnnFind*AlgorithmEx (option conv_find), freed after the search */
typedef struct find_bufs {
    void *x, *y, *w, *ws;
    size_t ws_bytes;
} find_bufs;

static void find_bufs_free(find_bufs *b)
{
    if (b->x) cudaFree(b->x);
    if (b->y) cudaFree(b->y);
    if (b->w) cudaFree(b->w);
    if (b->ws) cudaFree(b->ws);
    memset(b, 0, sizeof *b);
}

/* 1 with every buffer allocated and zeroed; 0 (nothing held, no error recorded) when they do not
   fit, and the caller falls back to the heuristics */
static int find_bufs_alloc(find_bufs *b, const sq_conv_shape *cs)
{
    size_t nx = (size_t)cs->n * cs->c * cs->h * cs->w, ny = (size_t)cs->n * cs->k * cs->oh * cs->ow,
           nw = (size_t)cs->k * (cs->c / cs->groups) * cs->r * cs->s, free_b = 0, total_b = 0;
    memset(b, 0, sizeof *b);
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    size_t need = (nx + ny + nw) * sizeof(float);
    if (need >= free_b / 2) return 0;
    b->ws_bytes = (free_b - need) / 4;
    if (b->ws_bytes > SQ_CONV_FIND_WS) b->ws_bytes = SQ_CONV_FIND_WS;
    if (cudaMalloc(&b->x, nx * sizeof(float)) != cudaSuccess ||
        cudaMalloc(&b->y, ny * sizeof(float)) != cudaSuccess ||
        cudaMalloc(&b->w, nw * sizeof(float)) != cudaSuccess ||
        (b->ws_bytes && cudaMalloc(&b->ws, b->ws_bytes) != cudaSuccess) ||
        cudaMemset(b->x, 0, nx * sizeof(float)) != cudaSuccess ||
        cudaMemset(b->y, 0, ny * sizeof(float)) != cudaSuccess ||
        cudaMemset(b->w, 0, nw * sizeof(float)) != cudaSuccess) {
        cudaGetLastError(); /* not sticky: the heuristics take over */
        find_bufs_free(b);
        return 0;
    }
    return 1;
}

/* fb: scratch tensors for cudnnFind*AlgorithmEx, or NULL for the heuristics */
static int choose_algorithms(sq_cuda_conv_plan *p, int tf32, const find_bufs *fb)
{
    cudnnHandle_t h = sq_cuda_cudnn();
    algo_choice ch[16];
    int got = 0, i;
    size_t ws = 0, need;

    cudnnConvolutionFwdAlgoPerf_t fp[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    if (fb)
        CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
            h, p->xd, fb->x, p->wd, fb->w, p->cd_fwd, p->yd, fb->y,
            CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, fp, fb->ws, fb->ws_bytes));
    else
        CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
            h, p->xd, p->wd, p->cd_fwd, p->yd, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, fp));
    for (i = 0; i < got; i++)
        ch[i] = (algo_choice){(int)fp[i].algo, fp[i].status, fp[i].memory, fp[i].determinism,
                              fp[i].mathType};
    if ((i = pick(ch, got)) < 0) return 0;
    p->fwd_algo = (cudnnConvolutionFwdAlgo_t)ch[i].algo;
    adopt_math(p->cd_fwd, ch[i].math, tf32);
    need = 0;
    CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, p->xd, p->wd, p->cd_fwd, p->yd,
                                                        p->fwd_algo, &need));
    if (need > ws) ws = need;

    cudnnConvolutionBwdDataAlgoPerf_t dp[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    got = 0;
    if (fb)
        CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
            h, p->wd, fb->w, p->yd, fb->y, p->cd_bwd_data, p->xd, fb->x,
            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, dp, fb->ws, fb->ws_bytes));
    else
        CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
            h, p->wd, p->yd, p->cd_bwd_data, p->xd, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got,
            dp));
    for (i = 0; i < got; i++)
        ch[i] = (algo_choice){(int)dp[i].algo, dp[i].status, dp[i].memory, dp[i].determinism,
                              dp[i].mathType};
    if ((i = pick(ch, got)) < 0) return 0;
    p->bwd_data_algo = (cudnnConvolutionBwdDataAlgo_t)ch[i].algo;
    adopt_math(p->cd_bwd_data, ch[i].math, tf32);
    need = 0;
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(h, p->wd, p->yd, p->cd_bwd_data,
                                                             p->xd, p->bwd_data_algo, &need));
    if (need > ws) ws = need;

    cudnnConvolutionBwdFilterAlgoPerf_t wp[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    got = 0;
    if (fb)
        CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
            h, p->xd, fb->x, p->yd, fb->y, p->cd_bwd_filter, p->wd, fb->w,
            CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, wp, fb->ws, fb->ws_bytes));
    else
        CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
            h, p->xd, p->yd, p->cd_bwd_filter, p->wd, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
            &got, wp));
    for (i = 0; i < got; i++)
        ch[i] = (algo_choice){(int)wp[i].algo, wp[i].status, wp[i].memory, wp[i].determinism,
                              wp[i].mathType};
    if ((i = pick(ch, got)) < 0) return 0;
    p->bwd_filter_algo = (cudnnConvolutionBwdFilterAlgo_t)ch[i].algo;
    adopt_math(p->cd_bwd_filter, ch[i].math, tf32);
    need = 0;
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(
        h, p->xd, p->yd, p->cd_bwd_filter, p->wd, p->bwd_filter_algo, &need));
    if (need > ws) ws = need;

    p->ws_bytes = ws;
    return 1;
}

static int plan_build(sq_cuda_conv_plan *p, const sq_conv_shape *cs)
{
    unsigned before = sq_cuda_error_count();
    const sq_backend_opts *o = sq_cuda_options();
    const int tf32 = o->tf32;
    sq_cuda_conv_options_used(); /* this plan keeps them */
    cudnnMathType_t math = tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
    memset(p, 0, sizeof *p);
    p->cs = *cs;
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->xd));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->yd));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->wd));
    if (sq_cuda_error_count() != before) return 0;
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, cs->n,
                                           cs->c, cs->h, cs->w));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, cs->n,
                                           cs->k, cs->oh, cs->ow));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, cs->k,
                                           cs->c / cs->groups, cs->r, cs->s));
    conv_desc(&p->cd_fwd, cs, math);
    conv_desc(&p->cd_bwd_data, cs, math);
    conv_desc(&p->cd_bwd_filter, cs, math);
    if (sq_cuda_error_count() != before) return 0;

    int on = 0, oc = 0, oh = 0, ow = 0;
    CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->cd_fwd, p->xd, p->wd, &on, &oc, &oh, &ow));
    if (sq_cuda_error_count() != before) return 0;
    if (on != cs->n || oc != cs->k || oh != cs->oh || ow != cs->ow)
        SQ_CUDA_BUG("cuDNN output shape differs from sq_conv_shape_init's");
    find_bufs fb;
    int find = o->conv_find && find_bufs_alloc(&fb, cs);
    int chose = choose_algorithms(p, tf32, find ? &fb : NULL);
    if (find) find_bufs_free(&fb);
    if (!chose) {
        if (sq_cuda_error_count() == before)
            sq_cuda_fail(SQ_EDEVICE, "cuDNN", (int)CUDNN_STATUS_NOT_SUPPORTED,
                         "no usable convolution algorithm within the workspace cap",
                         "choose_algorithms", __FILE__, __LINE__);
        return 0;
    }
    if (sq_cuda_error_count() != before) return 0;

    if (p->ws_bytes > g_ws_bytes) {
        void *nws = NULL;
        if (g_ws) CUDA_CHECK(cudaFree(g_ws));
        g_ws = NULL;
        g_ws_bytes = 0;
        CUDA_CHECK(cudaMalloc(&nws, p->ws_bytes));
        if (sq_cuda_error_count() != before) return 0;
        g_ws = nws;
        g_ws_bytes = p->ws_bytes;
    }
    return 1;
}

const sq_cuda_conv_plan *sq_cuda_conv_plan_get(const sq_conv_shape *cs)
{
    for (int i = 0; i < g_nplans; i++)
        if (same_shape(&g_plans[i].cs, cs)) return &g_plans[i];
    if (!sq_cuda_cudnn()) SQ_CUDA_BUG("conv used before the CUDA backend was initialised");
    if (g_nplans == g_cap_plans) {
        int ncap = g_cap_plans ? 2 * g_cap_plans : 32;
        sq_cuda_conv_plan *np = realloc(g_plans, (size_t)ncap * sizeof *np);
        if (!np) {
            sq_cuda_fail(SQ_ENOMEM, "host", 0, "out of host memory", "realloc(conv plans)",
                         __FILE__, __LINE__);
            return NULL;
        }
        g_plans = np;
        g_cap_plans = ncap;
    }
    sq_cuda_conv_plan *p = &g_plans[g_nplans];
    if (!plan_build(p, cs)) {
        plan_destroy(p);
        return NULL;
    }
    g_nplans++;
    return p;
}
