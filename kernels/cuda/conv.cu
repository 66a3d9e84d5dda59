/* conv.cu: 2-D convolution (dense, grouped, depthwise) through cuDNN with the cached per-shape
   plans of cudnn.c. Forward overwrites y (bias added with cudnnAddTensor); backward accumulates
   into gx and gw through beta = 1, and into gb with a deterministic per-channel reduction kernel
   (one block per output channel, fixed summation order). */
#include "cuda_common.cuh"

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
    if (b) SQ_HPROF(SQ_HPROF_ADD_TENSOR, CUDNN_CHECK(cudnnAddTensor(h, &one, p->bd, b, &one, p->yd, y)));
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
