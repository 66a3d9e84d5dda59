/* conv16.c: forward convolution on fp16 / bf16 tensors through cuDNN for the reduced-precision
   teacher (backend.h, "optional: reduced-precision teacher").

   One plan per (data type, shape), built on the first conv16_ws_bytes / conv16_fwd call (the
   teacher set-up in host/model/teacher_prec.c makes that call for every layer, so a training step
   never plans): NCHW tensor descriptors of the 16-bit type, fp32 compute type (cuDNN's
   "pseudo-half" / "pseudo-bf16" configurations: fp32 accumulation) with tensor-op math, and the
   forward algorithm chosen once by the cuDNN heuristics within a 1 GiB workspace cap. No device
   memory is allocated here: the caller passes the workspace.

   y = act(conv(x, w) + b): with a ReLU and a bias, cudnnConvolutionBiasActivationForward does
   all three in one call. Its support depends on the cuDNN version, GPU and data type, so the
   first call per plan is a trial: when cuDNN refuses it (a status other than success, reported
   before anything runs) the plan falls back for good to cudnnConvolutionForward followed by one
   bias + activation pass (half.cu), which also serves ReLU6 and layers without a bias. */
#include <stdlib.h>
#include <string.h>
#include "cuda_ops.h"

#define SQ_CONV16_WS_CAP ((size_t)1 << 30)

typedef struct conv16_plan {
    sq_dtype16 dt;
    sq_conv_shape cs;
    cudnnTensorDescriptor_t xd, yd, bd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    cudnnActivationDescriptor_t relu;
    cudnnConvolutionFwdAlgo_t algo;
    size_t ws_bytes;
    int fused;          /* -1: not tried yet, 0: refused (unfused from now on), 1: works */
} conv16_plan;

static conv16_plan *g_plans;
static int g_nplans, g_cap;

static int same(const conv16_plan *p, sq_dtype16 dt, const sq_conv_shape *b)
{
    const sq_conv_shape *a = &p->cs;
    return p->dt == dt && a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w &&
           a->k == b->k && a->r == b->r && a->s == b->s && a->stride == b->stride &&
           a->pad == b->pad && a->groups == b->groups;
}

static void plan_destroy(conv16_plan *p)
{
    if (p->xd) cudnnDestroyTensorDescriptor(p->xd);
    if (p->yd) cudnnDestroyTensorDescriptor(p->yd);
    if (p->bd) cudnnDestroyTensorDescriptor(p->bd);
    if (p->wd) cudnnDestroyFilterDescriptor(p->wd);
    if (p->cd) cudnnDestroyConvolutionDescriptor(p->cd);
    if (p->relu) cudnnDestroyActivationDescriptor(p->relu);
    memset(p, 0, sizeof *p);
}

static int plan_build(conv16_plan *p, sq_dtype16 dt, const sq_conv_shape *cs)
{
    unsigned before = sq_cuda_error_count();
    cudnnHandle_t h = sq_cuda_cudnn();
    cudnnDataType_t t = dt == SQ_DT_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
    memset(p, 0, sizeof *p);
    p->dt = dt;
    p->cs = *cs;
    p->fused = -1;
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->xd));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->yd));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->bd));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->wd));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->cd));
    CUDNN_CHECK(cudnnCreateActivationDescriptor(&p->relu));
    if (sq_cuda_error_count() != before) return 0;
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->xd, CUDNN_TENSOR_NCHW, t, cs->n, cs->c, cs->h, cs->w));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->yd, CUDNN_TENSOR_NCHW, t, cs->n, cs->k, cs->oh,
                                           cs->ow));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->bd, CUDNN_TENSOR_NCHW, t, 1, cs->k, 1, 1));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->wd, t, CUDNN_TENSOR_NCHW, cs->k, cs->c / cs->groups,
                                           cs->r, cs->s));
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->cd, cs->pad, cs->pad, cs->stride, cs->stride, 1,
                                                1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionGroupCount(p->cd, cs->groups));
    CUDNN_CHECK(cudnnSetConvolutionMathType(p->cd, CUDNN_TENSOR_OP_MATH));
    CUDNN_CHECK(cudnnSetActivationDescriptor(p->relu, CUDNN_ACTIVATION_RELU,
                                             CUDNN_NOT_PROPAGATE_NAN, 0.0));
    if (sq_cuda_error_count() != before) return 0;

    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int got = 0, pick = -1;
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, p->xd, p->wd, p->cd, p->yd,
                                                       CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got,
                                                       perf));
    if (sq_cuda_error_count() != before) return 0;
    for (int i = 0; i < got && pick < 0; i++)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= SQ_CONV16_WS_CAP)
            pick = i;
    if (pick < 0) {
        sq_cuda_fail(SQ_EDEVICE, "cuDNN", (int)CUDNN_STATUS_NOT_SUPPORTED,
                     "no 16-bit forward convolution algorithm within the workspace cap",
                     "conv16 plan_build", __FILE__, __LINE__);
        return 0;
    }
    p->algo = perf[pick].algo;
    CUDNN_CHECK(cudnnSetConvolutionMathType(p->cd, perf[pick].mathType));
    CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, p->xd, p->wd, p->cd, p->yd, p->algo,
                                                        &p->ws_bytes));
    return sq_cuda_error_count() == before;
}

static conv16_plan *plan_get(sq_dtype16 dt, const sq_conv_shape *cs)
{
    for (int i = 0; i < g_nplans; i++)
        if (same(&g_plans[i], dt, cs)) return &g_plans[i];
    if (!sq_cuda_cudnn()) SQ_CUDA_BUG("conv16 used before the CUDA backend was initialised");
    if (dt != SQ_DT_F16 && dt != SQ_DT_BF16) SQ_CUDA_BUG("unknown 16-bit data type");
    if (g_nplans == g_cap) {
        int ncap = g_cap ? 2 * g_cap : 32;
        conv16_plan *np = realloc(g_plans, (size_t)ncap * sizeof *np);
        if (!np) {
            sq_cuda_fail(SQ_ENOMEM, "host", 0, "out of host memory", "realloc(conv16 plans)",
                         __FILE__, __LINE__);
            return NULL;
        }
        g_plans = np;
        g_cap = ncap;
    }
    conv16_plan *p = &g_plans[g_nplans];
    if (!plan_build(p, dt, cs)) {
        plan_destroy(p);
        return NULL;
    }
    g_nplans++;
    return p;
}

size_t sq_cuda_conv16_ws_bytes(sq_dtype16 dt, const sq_conv_shape *cs)
{
    const conv16_plan *p = plan_get(dt, cs);
    return p ? p->ws_bytes : 0;
}

void sq_cuda_conv16_fwd(sq_dtype16 dt, const sq_conv_shape *cs, const void *x, const void *w,
                        const void *b16, const float *b32, int act, void *y, void *ws)
{
    conv16_plan *p = plan_get(dt, cs);
    if (!p) return;
    const float one = 1.0f, zero = 0.0f;
    cudnnHandle_t h = sq_cuda_cudnn();
    void *wsp = p->ws_bytes ? ws : NULL;
    if (act == SQ_ACT_RELU && b16 && p->fused != 0) {
        cudnnStatus_t s;
        SQ_HPROF(SQ_HPROF_CONV16,
                 s = cudnnConvolutionBiasActivationForward(h, &one, p->xd, x, p->wd, w, p->cd,
                                                           p->algo, wsp, p->ws_bytes, &zero,
                                                           p->yd, y, p->bd, b16, p->relu, p->yd,
                                                           y));
        if (s == CUDNN_STATUS_SUCCESS) {
            p->fused = 1;
            return;
        }
        if (p->fused == 1) { /* it worked before: a real failure */
            sq_cuda_fail(s == CUDNN_STATUS_ALLOC_FAILED ? SQ_ENOMEM : SQ_EDEVICE, "cuDNN", (int)s,
                         cudnnGetErrorString(s), "cudnnConvolutionBiasActivationForward",
                         __FILE__, __LINE__);
            return;
        }
        p->fused = 0; /* refused for this configuration: unfused from now on */
    }
    SQ_HPROF(SQ_HPROF_CONV16,
             CUDNN_CHECK(cudnnConvolutionForward(h, &one, p->xd, x, p->wd, w, p->cd, p->algo, wsp,
                                                 p->ws_bytes, &zero, p->yd, y)));
    sq_cuda_bias_act16(dt, cs->n, cs->k, cs->oh * cs->ow, b32, act, y);
}
