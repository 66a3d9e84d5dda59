/* conv.cu: 2-D convolution (dense, grouped, depthwise) through cuDNN with the cached per-shape
   plans of cudnn.c. Forward overwrites y, then adds the bias with a kernel of our own (it was
   cudnnAddTensor, one more cuDNN call per biased convolution: the frozen teacher's 19 per resnet20
   step, at the host cost of a legacy cuDNN call; the sum y + b is the same); backward accumulates
   into gx (or writes it: conv2d_bwd_set, beta = 0) and gw through beta = 1, and into gb with a deterministic per-channel reduction kernel
   (one block per output channel, fixed summation order). */
#include "cuda_common.cuh"

/* y = act(x + b[k] [+ r]) over (N, K, HW) tensors, in units of V consecutive floats of one plane
   (V = 4: HW % 4 == 0 and every tensor 16-byte aligned); I: the index type (32 bits when the
   unit count fits, so the plane is one 32-bit division per unit). ACT: 0 none, else ReLU
   (hi = +inf) or ReLU6 (hi = 6), as act.cu. y may be x (the convolution's own bias, in place):
   no __restrict__ on them. The sums are made in the unfused ops' order: (x + b) + r. */
template <typename I, int V, bool ACT, bool R>
static __global__ void conv_bias_fwd_kernel(I units, I per_plane, int k, const float *__restrict__ b,
                                            const float *x, const float *__restrict__ r, float hi,
                                            float *y)
{
    for (I u = (I)blockIdx.x * blockDim.x + threadIdx.x; u < units; u += (I)gridDim.x * blockDim.x) {
        const float bv = __ldg(b + (u / per_plane) % (I)k);
        float v[V], rv[V];
        if (V == 4) {
            const float4 t = ((const float4 *)x)[u];
            v[0] = t.x, v[V > 1 ? 1 : 0] = t.y, v[V > 2 ? 2 : 0] = t.z, v[V > 3 ? 3 : 0] = t.w;
            if (R) {
                const float4 q = ((const float4 *)r)[u];
                rv[0] = q.x, rv[V > 1 ? 1 : 0] = q.y, rv[V > 2 ? 2 : 0] = q.z, rv[V > 3 ? 3 : 0] = q.w;
            }
        } else {
            v[0] = x[u];
            if (R) rv[0] = r[u];
        }
#pragma unroll
        for (int e = 0; e < V; e++) {
            float t = v[e] + bv;
            if (R) t = t + rv[e];
            if (ACT) {
                t = t > 0.0f ? t : 0.0f;
                t = t < hi ? t : hi;
            }
            v[e] = t;
        }
        if (V == 4) ((float4 *)y)[u] = make_float4(v[0], v[V > 1 ? 1 : 0], v[V > 2 ? 2 : 0], v[V > 3 ? 3 : 0]);
        else y[u] = v[0];
    }
}

/* act < 0: no activation */
static void conv_bias_launch(int n, int k, size_t hw, const float *b, const float *x,
                             const float *r, int act, float *y)
{
    const size_t total = (size_t)n * k * hw;
    const bool vec = hw % 4 == 0 && sq_aligned16(x) && sq_aligned16(y) && (!r || sq_aligned16(r));
    const size_t units = vec ? total / 4 : total, per_plane = vec ? hw / 4 : hw;
    const unsigned grid = sq_grid_ew(units);
    const float hi = act == SQ_ACT_RELU6 ? 6.0f : INFINITY;
    cudaStream_t st = sq_cuda_stream();
#define CB_L(I, V, A, R)                                                                         \
    conv_bias_fwd_kernel<I, V, A, R><<<grid, SQ_CUDA_BLOCK, 0, st>>>((I)units, (I)per_plane, k, b, x, r, hi, y)
#define CB_AR(I, V)                                                                              \
    do {                                                                                         \
        if (act < 0 && !r) CB_L(I, V, false, false);                                             \
        else if (act < 0) CB_L(I, V, false, true);                                               \
        else if (!r) CB_L(I, V, true, false);                                                    \
        else CB_L(I, V, true, true);                                                             \
    } while (0)
    if (units < 0x80000000u) { /* u + the grid's stride cannot wrap */
        if (vec) CB_AR(unsigned, 4);
        else CB_AR(unsigned, 1);
    } else {
        if (vec) CB_AR(size_t, 4);
        else CB_AR(size_t, 1);
    }
#undef CB_AR
#undef CB_L
    SQ_CUDA_LAUNCHED();
}

static void conv_bias_fwd(const sq_conv_shape *cs, const float *b, float *y)
{
    conv_bias_launch(cs->n, cs->k, (size_t)cs->oh * cs->ow, b, y, NULL, -1, y);
}

/* backend.h bias_add_act_fwd: y = act(x + b[c] [+ r]) */
extern "C" void sq_cuda_bias_add_act_fwd(int n, int c, int hw, sq_act_kind act, const float *x,
                                         const float *b, const float *r, float *y)
{
    if (act != SQ_ACT_RELU && act != SQ_ACT_RELU6) SQ_CUDA_BUG("unknown activation kind");
    if (n <= 0 || c <= 0 || hw <= 0) return;
    conv_bias_launch(n, c, (size_t)hw, b, x, r, (int)act, y);
}

/* gb[k] += sum over (n, oh, ow) of gy[n, k, :, :]  (gy (N, K, HW)) */
static __global__ void conv_bias_grad_kernel(int n, int k, int hw, const float *__restrict__ gy,
                                      float *__restrict__ gb)
{
    int ch = blockIdx.x;
    size_t total = (size_t)n * hw;
    double acc = 0.0;
    for (size_t i = threadIdx.x; i < total; i += blockDim.x) {
        size_t b = i / (size_t)hw, j = i % (size_t)hw;
        acc += gy[(b * (size_t)k + ch) * hw + j];
    }
    acc = sq_block_sum(acc);
    if (threadIdx.x == 0) gb[ch] += (float)acc;
}

extern "C" size_t sq_cuda_conv_ws_bytes(const sq_conv_shape *cs)
{
    const sq_cuda_conv_plan *p = sq_cuda_conv_plan_get(cs);
    return p ? p->ws_bytes : 0;
}

static void *pick_ws(const sq_cuda_conv_plan *p, void *ws)
{
    if (p->ws_bytes == 0) return NULL;
    return ws ? ws : sq_cuda_conv_internal_ws();
}

extern "C" void sq_cuda_conv2d_fwd(const sq_conv_shape *cs, const float *x, const float *w,
                                   const float *b, float *y, void *ws)
{
    const sq_cuda_conv_plan *p = sq_cuda_conv_plan_get(cs);
    if (!p) return;
    const float one = 1.0f, zero = 0.0f;
    cudnnHandle_t h = sq_cuda_cudnn();
    void *wsp = pick_ws(p, ws);
    SQ_HPROF(SQ_HPROF_FWD,
             CUDNN_CHECK(cudnnConvolutionForward(h, &one, p->xd, x, p->wd, w, p->cd_fwd, p->fwd_algo,
                                                 wsp, p->ws_bytes, &zero, p->yd, y)));
    if (b) SQ_HPROF(SQ_HPROF_CONV_BIAS, conv_bias_fwd(cs, b, y));
}

/* set: gx = dL/dx (beta = 0: cuDNN does not read gx), else gx += dL/dx */
static void conv_bwd(const sq_conv_shape *cs, const float *x, const float *w, const float *gy,
                     float *gx, float *gw, float *gb, void *ws, bool set)
{
    const sq_cuda_conv_plan *p = sq_cuda_conv_plan_get(cs);
    if (!p) return;
    const float one = 1.0f, zero = 0.0f;
    cudnnHandle_t h = sq_cuda_cudnn();
    void *wsp = pick_ws(p, ws);
    if (gx)
        SQ_HPROF(SQ_HPROF_BWD_DATA,
                 CUDNN_CHECK(cudnnConvolutionBackwardData(h, &one, p->wd, w, p->yd, gy,
                                                          p->cd_bwd_data, p->bwd_data_algo, wsp,
                                                          p->ws_bytes, set ? &zero : &one,
                                                          p->xd, gx)));
    if (gw)
        SQ_HPROF(SQ_HPROF_BWD_FILTER,
                 CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, p->xd, x, p->yd, gy,
                                                            p->cd_bwd_filter, p->bwd_filter_algo,
                                                            wsp, p->ws_bytes, &one, p->wd, gw)));
    if (gb) {
        conv_bias_grad_kernel<<<cs->k, SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(cs->n, cs->k, cs->oh * cs->ow, gy, gb);
        SQ_CUDA_LAUNCHED();
    }
}

extern "C" void sq_cuda_conv2d_bwd(const sq_conv_shape *cs, const float *x, const float *w,
                                   const float *gy, float *gx, float *gw, float *gb, void *ws)
{
    conv_bwd(cs, x, w, gy, gx, gw, gb, ws, false);
}

extern "C" void sq_cuda_conv2d_bwd_set(const sq_conv_shape *cs, const float *x, const float *w,
                                       const float *gy, float *gx, float *gw, float *gb, void *ws)
{
    conv_bwd(cs, x, w, gy, gx, gw, gb, ws, true);
}
