/* conv.cu: 2-D convolution (dense, grouped, depthwise) through cuDNN with the cached per-shape
   plans of cudnn.c. Forward overwrites y, then adds the bias with a kernel of our own (it was
   cudnnAddTensor, one more cuDNN call per biased convolution: the frozen teacher's 19 per resnet20
   step, at the host cost of a legacy cuDNN call; the sum y + b is the same); backward accumulates
   into gx and gw through beta = 1, and into gb with a deterministic per-channel reduction kernel
   (one block per output channel, fixed summation order). */
#include "cuda_common.cuh"

/* y[n, k, :, :] += b[k] over y (N, K, HW), in units of V consecutive floats of one plane
   (V = 4: HW % 4 == 0 and y 16-byte aligned); I: the index type (32 bits when the unit count
   fits, so the plane is one 32-bit division per unit) */
template <typename I, int V>
static __global__ void conv_bias_fwd_kernel(I units, I per_plane, int k, const float *__restrict__ b,
                                            float *__restrict__ y)
{
    for (I u = (I)blockIdx.x * blockDim.x + threadIdx.x; u < units; u += (I)gridDim.x * blockDim.x) {
        const float bv = __ldg(b + (u / per_plane) % (I)k);
        if (V == 4) {
            float4 v = ((float4 *)y)[u];
            v.x += bv;
            v.y += bv;
            v.z += bv;
            v.w += bv;
            ((float4 *)y)[u] = v;
        } else {
            y[u] += bv;
        }
    }
}

static void conv_bias_fwd(const sq_conv_shape *cs, const float *b, float *y)
{
    const size_t hw = (size_t)cs->oh * cs->ow, total = (size_t)cs->n * cs->k * hw;
    const bool vec = hw % 4 == 0 && sq_aligned16(y);
    const size_t units = vec ? total / 4 : total, per_plane = vec ? hw / 4 : hw;
    const unsigned grid = sq_grid_ew(units);
    cudaStream_t st = sq_cuda_stream();
    if (units < 0x80000000u) { /* u + the grid's stride cannot wrap */
        if (vec)
            conv_bias_fwd_kernel<unsigned, 4><<<grid, SQ_CUDA_BLOCK, 0, st>>>((unsigned)units, (unsigned)per_plane, cs->k, b, y);
        else
            conv_bias_fwd_kernel<unsigned, 1><<<grid, SQ_CUDA_BLOCK, 0, st>>>((unsigned)units, (unsigned)per_plane, cs->k, b, y);
    } else {
        if (vec)
            conv_bias_fwd_kernel<size_t, 4><<<grid, SQ_CUDA_BLOCK, 0, st>>>(units, per_plane, cs->k, b, y);
        else
            conv_bias_fwd_kernel<size_t, 1><<<grid, SQ_CUDA_BLOCK, 0, st>>>(units, per_plane, cs->k, b, y);
    }
    SQ_CUDA_LAUNCHED();
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
    SQ_HPROF(SQ_HPROF_FWD,
             CUDNN_CHECK(cudnnConvolutionForward(h, &one, p->xd, x, p->wd, w, p->cd_fwd,
                                                 p->fwd_algo, pick_ws(p, ws), p->ws_bytes, &zero,
                                                 p->yd, y)));
    if (b) SQ_HPROF(SQ_HPROF_CONV_BIAS, conv_bias_fwd(cs, b, y));
}

extern "C" void sq_cuda_conv2d_bwd(const sq_conv_shape *cs, const float *x, const float *w,
                                   const float *gy, float *gx, float *gw, float *gb, void *ws)
{
    const sq_cuda_conv_plan *p = sq_cuda_conv_plan_get(cs);
    if (!p) return;
    const float one = 1.0f;
    cudnnHandle_t h = sq_cuda_cudnn();
    void *wsp = pick_ws(p, ws);
    if (gx)
        SQ_HPROF(SQ_HPROF_BWD_DATA,
                 CUDNN_CHECK(cudnnConvolutionBackwardData(h, &one, p->wd, w, p->yd, gy,
                                                          p->cd_bwd_data, p->bwd_data_algo, wsp,
                                                          p->ws_bytes, &one, p->xd, gx)));
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
