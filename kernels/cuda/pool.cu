/* pool.cu: max / average pooling (square window k, stride, zero padding, floor output size) and
   global average pooling.
   max: argmax holds, per output, the index ih * W + iw of the chosen input inside its (H, W)
   plane (PyTorch's convention); padding never wins; the first maximum in scan order wins, a NaN
   wins and propagates. avg: count_include_pad = true, so the divisor is always k * k.
   Backward is a gather (one thread per INPUT element summing the outputs whose window holds it),
   so overlapping windows need no atomics and the result is deterministic; gx accumulates. */
#include "cuda_common.cuh"

struct pool_geom {
    int n, c, h, w, k, stride, pad, oh, ow;
};

static __global__ void pool_fwd_kernel(int kind, pool_geom g, const float *__restrict__ x,
                                       float *__restrict__ y, int32_t *__restrict__ argmax)
{
    size_t total = (size_t)g.n * g.c * g.oh * g.ow;
    SQ_GRID_LOOP(o, total)
    {
        int ox = (int)(o % g.ow);
        int oy = (int)((o / g.ow) % g.oh);
        size_t plane = o / ((size_t)g.oh * g.ow);
        const float *xp = x + plane * (size_t)g.h * g.w;
        int y0 = oy * g.stride - g.pad, x0 = ox * g.stride - g.pad;
        if (kind == SQ_POOL_MAX) {
            float best = -INFINITY;
            int bi = -1;
            for (int dy = 0; dy < g.k; dy++) {
                int iy = y0 + dy;
                if (iy < 0 || iy >= g.h) continue;
                for (int dx = 0; dx < g.k; dx++) {
                    int ix = x0 + dx;
                    if (ix < 0 || ix >= g.w) continue;
                    float v = xp[iy * g.w + ix];
                    if (bi < 0 || v > best || isnan(v)) {
                        best = v;
                        bi = iy * g.w + ix;
                    }
                }
            }
            y[o] = best;
            if (argmax) argmax[o] = bi;
        } else {
            float acc = 0.0f;
            for (int dy = 0; dy < g.k; dy++) {
                int iy = y0 + dy;
                if (iy < 0 || iy >= g.h) continue;
                for (int dx = 0; dx < g.k; dx++) {
                    int ix = x0 + dx;
                    if (ix >= 0 && ix < g.w) acc += xp[iy * g.w + ix];
                }
            }
            y[o] = acc / (float)(g.k * g.k);
        }
    }
}

/* outputs along one axis whose window [o*stride - pad, o*stride - pad + k) contains i */
static __device__ __forceinline__ void pool_range(int i, int k, int stride, int pad, int on,
                                                  int *lo, int *hi)
{
    int t = i + pad - k + 1;
    int a = t <= 0 ? 0 : (t + stride - 1) / stride;
    int b = (i + pad) / stride;
    *lo = a;
    *hi = b < on - 1 ? b : on - 1;
}

static __global__ void pool_bwd_kernel(int kind, pool_geom g, const float *__restrict__ gy,
                                       const int32_t *__restrict__ argmax, float *__restrict__ gx)
{
    size_t total = (size_t)g.n * g.c * g.h * g.w;
    SQ_GRID_LOOP(i, total)
    {
        int ix = (int)(i % g.w);
        int iy = (int)((i / g.w) % g.h);
        size_t plane = i / ((size_t)g.h * g.w);
        const float *gp = gy + plane * (size_t)g.oh * g.ow;
        int ylo, yhi, xlo, xhi;
        pool_range(iy, g.k, g.stride, g.pad, g.oh, &ylo, &yhi);
        pool_range(ix, g.k, g.stride, g.pad, g.ow, &xlo, &xhi);
        float acc = 0.0f;
        if (kind == SQ_POOL_MAX) {
            const int32_t *ap = argmax + plane * (size_t)g.oh * g.ow;
            int me = iy * g.w + ix;
            for (int oy = ylo; oy <= yhi; oy++)
                for (int ox = xlo; ox <= xhi; ox++)
                    if (ap[oy * g.ow + ox] == me) acc += gp[oy * g.ow + ox];
        } else {
            for (int oy = ylo; oy <= yhi; oy++)
                for (int ox = xlo; ox <= xhi; ox++) acc += gp[oy * g.ow + ox];
            acc /= (float)(g.k * g.k);
        }
        gx[i] += acc;
    }
}

/* one warp per (n, c) row */
static __global__ void gap_fwd_kernel(size_t rows, int hw, const float *__restrict__ x,
                                      float *__restrict__ y)
{
    size_t warp = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    size_t nwarps = ((size_t)gridDim.x * blockDim.x) >> 5;
    int lane = threadIdx.x & 31;
    for (size_t r = warp; r < rows; r += nwarps) {
        const float *xr = x + r * (size_t)hw;
        float acc = 0.0f;
        for (int j = lane; j < hw; j += 32) acc += xr[j];
        acc = sq_warp_sum(acc);
        if (lane == 0) y[r] = acc / (float)hw;
    }
}

static __global__ void gap_bwd_kernel(size_t total, int hw, const float *__restrict__ gy,
                                      float *__restrict__ gx)
{
    float inv = 1.0f / (float)hw;
    SQ_GRID_LOOP(i, total) gx[i] += gy[i / (size_t)hw] * inv;
}

static bool pool_geom_make(pool_geom *g, int n, int c, int h, int w, int k, int stride, int pad)
{
    *g = pool_geom{n, c, h, w, k, stride, pad, 0, 0};
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || k <= 0 || stride <= 0 || pad < 0) return false;
    g->oh = (h + 2 * pad - k) / stride + 1;
    g->ow = (w + 2 * pad - k) / stride + 1;
    return g->oh > 0 && g->ow > 0;
}

extern "C" void sq_cuda_pool_fwd(sq_pool_kind kind, int n, int c, int h, int w, int k, int stride,
                                 int pad, const float *x, float *y, int32_t *argmax)
{
    if (kind != SQ_POOL_MAX && kind != SQ_POOL_AVG) SQ_CUDA_BUG("unknown pool kind");
    pool_geom g;
    if (!pool_geom_make(&g, n, c, h, w, k, stride, pad)) return;
    size_t total = (size_t)n * c * g.oh * g.ow;
    pool_fwd_kernel<<<sq_grid_ew(total), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>((int)kind, g, x, y, argmax);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_pool_bwd(sq_pool_kind kind, int n, int c, int h, int w, int k, int stride,
                                 int pad, const float *gy, const int32_t *argmax, float *gx)
{
    if (kind != SQ_POOL_MAX && kind != SQ_POOL_AVG) SQ_CUDA_BUG("unknown pool kind");
    if (kind == SQ_POOL_MAX && !argmax) SQ_CUDA_BUG("max-pool backward without argmax");
    pool_geom g;
    if (!gx || !pool_geom_make(&g, n, c, h, w, k, stride, pad)) return;
    size_t total = (size_t)n * c * h * w;
    pool_bwd_kernel<<<sq_grid_ew(total), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>((int)kind, g, gy, argmax, gx);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_gap_fwd(int n, int c, int hw, const float *x, float *y)
{
    if (n <= 0 || c <= 0 || hw <= 0) return;
    size_t rows = (size_t)n * c;
    gap_fwd_kernel<<<sq_grid_ew(rows * 32), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(rows, hw, x, y);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_gap_bwd(int n, int c, int hw, const float *gy, float *gx)
{
    if (n <= 0 || c <= 0 || hw <= 0 || !gx) return;
    size_t total = (size_t)n * c * hw;
    gap_bwd_kernel<<<sq_grid_ew(total), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(total, hw, gy, gx);
    SQ_CUDA_LAUNCHED();
}
