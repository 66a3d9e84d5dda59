/* act.cu: activations (ReLU, ReLU6), the fused residual add + activation, and the elementwise
   helpers of the op table (add, axpy, scale, fill). Grid-stride loops over size_t indices; memory-bound, one pass each.
   Gradient masks as PyTorch: ReLU passes where x > 0, ReLU6 where 0 < x < 6. */
#include "cuda_common.cuh"

static __global__ void act_fwd_kernel(int kind, size_t n, const float *__restrict__ x,
                                      float *__restrict__ y)
{
    SQ_GRID_LOOP(i, n)
    {
        float v = x[i];
        v = v > 0.0f ? v : 0.0f;
        if (kind == SQ_ACT_RELU6) v = v < 6.0f ? v : 6.0f;
        y[i] = v;
    }
}

static __global__ void act_bwd_kernel(int kind, size_t n, const float *__restrict__ x,
                                      const float *__restrict__ gy, float *__restrict__ gx)
{
    SQ_GRID_LOOP(i, n)
    {
        float v = x[i];
        bool pass = kind == SQ_ACT_RELU6 ? (v > 0.0f && v < 6.0f) : v > 0.0f;
        if (pass) gx[i] += gy[i];
    }
}

/* y may alias a or b (in-place residual add) */
static __global__ void add_kernel(size_t n, const float *a, const float *b, float *y)
{
    SQ_GRID_LOOP(i, n) y[i] = a[i] + b[i];
}

/* the fused residual add + activation (backend.h add_act_fwd / add_act_bwd): the add_kernel
   and act_fwd_kernel arithmetic in one pass; the backward takes act'(y) from the output, as the
   CPU's fused.c, and adds g to whichever of ga, gb is given (the ADD's axpy pair) */
static __global__ void add_act_fwd_kernel(int kind, size_t n, const float *__restrict__ a,
                                          const float *__restrict__ b, float *__restrict__ y)
{
    SQ_GRID_LOOP(i, n)
    {
        float v = a[i] + b[i];
        v = v > 0.0f ? v : 0.0f;
        if (kind == SQ_ACT_RELU6) v = v < 6.0f ? v : 6.0f;
        y[i] = v;
    }
}

static __global__ void add_act_bwd_kernel(int kind, size_t n, const float *__restrict__ y,
                                          const float *__restrict__ gy, float *__restrict__ ga,
                                          float *__restrict__ gb)
{
    SQ_GRID_LOOP(i, n)
    {
        float v = y[i];
        bool pass = kind == SQ_ACT_RELU6 ? (v > 0.0f && v < 6.0f) : v > 0.0f;
        float g = pass ? gy[i] : 0.0f;
        if (ga) ga[i] += g;
        if (gb) gb[i] += g;
    }
}

static __global__ void axpy_kernel(size_t n, float alpha, const float *__restrict__ x,
                                   float *__restrict__ y)
{
    SQ_GRID_LOOP(i, n) y[i] += alpha * x[i];
}

static __global__ void scale_kernel(size_t n, float alpha, float *x)
{
    SQ_GRID_LOOP(i, n) x[i] *= alpha;
}

static __global__ void fill_kernel(size_t n, float v, float *x)
{
    SQ_GRID_LOOP(i, n) x[i] = v;
}

extern "C" void sq_cuda_act_fwd(sq_act_kind kind, size_t n, const float *x, float *y)
{
    if (kind != SQ_ACT_RELU && kind != SQ_ACT_RELU6) SQ_CUDA_BUG("unknown activation kind");
    if (!n) return;
    act_fwd_kernel<<<sq_grid_ew(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>((int)kind, n, x, y);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_act_bwd(sq_act_kind kind, size_t n, const float *x, const float *gy,
                                float *gx)
{
    if (kind != SQ_ACT_RELU && kind != SQ_ACT_RELU6) SQ_CUDA_BUG("unknown activation kind");
    if (!n || !gx) return;
    act_bwd_kernel<<<sq_grid_ew(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>((int)kind, n, x, gy, gx);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_add_fwd(size_t n, const float *a, const float *b, float *y)
{
    if (!n) return;
    add_kernel<<<sq_grid_ew(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, a, b, y);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_add_act_fwd(size_t n, sq_act_kind kind, const float *a, const float *b,
                                    float *y)
{
    if (kind != SQ_ACT_RELU && kind != SQ_ACT_RELU6) SQ_CUDA_BUG("unknown activation kind");
    if (!n) return;
    add_act_fwd_kernel<<<sq_grid_ew(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>((int)kind, n, a, b, y);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_add_act_bwd(size_t n, sq_act_kind kind, const float *y, const float *gy,
                                    float *ga, float *gb)
{
    if (kind != SQ_ACT_RELU && kind != SQ_ACT_RELU6) SQ_CUDA_BUG("unknown activation kind");
    if (!n || (!ga && !gb)) return;
    add_act_bwd_kernel<<<sq_grid_ew(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>((int)kind, n, y, gy, ga, gb);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_axpy(size_t n, float alpha, const float *x, float *y)
{
    if (!n) return;
    axpy_kernel<<<sq_grid_ew(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, alpha, x, y);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_scale(size_t n, float alpha, float *x)
{
    if (!n) return;
    scale_kernel<<<sq_grid_ew(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, alpha, x);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_fill(size_t n, float v, float *x)
{
    if (!n) return;
    fill_kernel<<<sq_grid_ew(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, v, x);
    SQ_CUDA_LAUNCHED();
}

/* clip as kernels/cpu/act.c: comparisons (a NaN stays NaN); backward passes gy at the bounds */
static __global__ void clip_fwd_kernel(size_t n, float lo, float hi, const float *__restrict__ x,
                                       float *__restrict__ y)
{
    SQ_GRID_LOOP(i, n)
    {
        const float v = x[i];
        y[i] = v < lo ? lo : v > hi ? hi : v;
    }
}

static __global__ void clip_bwd_kernel(size_t n, float lo, float hi, const float *__restrict__ x,
                                       const float *__restrict__ gy, float *__restrict__ gx)
{
    SQ_GRID_LOOP(i, n)
    {
        const float v = x[i];
        if (v >= lo && v <= hi) gx[i] += gy[i];
    }
}

/* y = a[ch] x + b[ch] over (N, C, HW); __fmul_rn keeps the product from being fused with the
   sum (backend.h: the CPU's bits) */
static __global__ void affine_fwd_kernel(size_t total, int c, size_t hw, const float *__restrict__ a,
                                         const float *__restrict__ b, const float *__restrict__ x,
                                         float *__restrict__ y)
{
    SQ_GRID_LOOP(i, total)
    {
        const int ch = (int)((i / hw) % (size_t)c);
        y[i] = __fmul_rn(a[ch], x[i]) + b[ch];
    }
}

static __global__ void affine_bwd_kernel(size_t total, int c, size_t hw, const float *__restrict__ a,
                                         const float *__restrict__ gy, float *__restrict__ gx)
{
    SQ_GRID_LOOP(i, total)
    {
        const int ch = (int)((i / hw) % (size_t)c);
        gx[i] += __fmul_rn(a[ch], gy[i]);
    }
}

extern "C" void sq_cuda_clip_fwd(size_t n, float lo, float hi, const float *x, float *y)
{
    if (!n) return;
    clip_fwd_kernel<<<sq_grid_ew(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, lo, hi, x, y);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_clip_bwd(size_t n, float lo, float hi, const float *x, const float *gy, float *gx)
{
    if (!n || !gx) return;
    clip_bwd_kernel<<<sq_grid_ew(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, lo, hi, x, gy, gx);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_affine_fwd(int n, int c, int hw, const float *a, const float *b, const float *x,
                                   float *y)
{
    if (n <= 0 || c <= 0 || hw <= 0) return;
    const size_t total = (size_t)n * c * hw;
    affine_fwd_kernel<<<sq_grid_ew(total), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(total, c, (size_t)hw, a, b,
                                                                                   x, y);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_affine_bwd(int n, int c, int hw, const float *a, const float *gy, float *gx)
{
    if (n <= 0 || c <= 0 || hw <= 0 || !gx) return;
    const size_t total = (size_t)n * c * hw;
    affine_bwd_kernel<<<sq_grid_ew(total), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(total, c, (size_t)hw, a, gy,
                                                                                   gx);
    SQ_CUDA_LAUNCHED();
}
