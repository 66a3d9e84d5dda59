/* pool.cu: max / average pooling (windows kh x kw, strides, pads, ceil_mode, count_include_pad:
   sq_pool_shape in sqakd/backend.h) and global average pooling.
   max: argmax holds, per output, the index ih * W + iw of the chosen input inside its (H, W)
   plane (PyTorch's convention); padding never wins; the first maximum in scan order wins, a NaN
   wins and propagates. avg: divided by the window's count (backend.h).
   Backward is a gather (one thread per INPUT element summing the outputs whose window holds it),
   so overlapping windows need no atomics and the result is deterministic; gx accumulates. */
#include "cuda_common.cuh"

/* the window of one output along an axis: [lo, hi) clipped to the input, and the count the
   average divides by (clipped to the input, or to the padded input with count_include_pad): as
   kernels/cpu/pool.c */
static __device__ __forceinline__ int pool_window(int o, int k, int s, int pad0, int in, int pad1,
                                                 int include_pad, int *lo, int *hi)
{
    const int start = o * s - pad0;
    int a = start, b = start + k;
    const int pa = a < -pad0 ? -pad0 : a, pb = b > in + pad1 ? in + pad1 : b;
    if (a < 0) a = 0;
    if (b > in) b = in;
    *lo = a;
    *hi = b;
    return include_pad ? pb - pa : b - a;
}

static __global__ void pool_fwd_kernel(int kind, sq_pool_shape g, const float *__restrict__ x,
                                       float *__restrict__ y, int32_t *__restrict__ argmax)
{
    size_t total = (size_t)g.n * g.c * g.oh * g.ow;
    SQ_GRID_LOOP(o, total)
    {
        int ox = (int)(o % g.ow);
        int oy = (int)((o / g.ow) % g.oh);
        size_t plane = o / ((size_t)g.oh * g.ow);
        const float *xp = x + plane * (size_t)g.h * g.w;
        int h0, h1, w0, w1;
        const int ch = pool_window(oy, g.kh, g.sh, g.pad_t, g.h, g.pad_b, g.count_include_pad, &h0, &h1);
        const int cw = pool_window(ox, g.kw, g.sw, g.pad_l, g.w, g.pad_r, g.count_include_pad, &w0, &w1);
        if (kind == SQ_POOL_MAX) {
            float best = -INFINITY;
            int bi = -1;
            for (int iy = h0; iy < h1; iy++)
                for (int ix = w0; ix < w1; ix++) {
                    float v = xp[iy * g.w + ix];
                    if (bi < 0 || v > best || isnan(v)) {
                        best = v;
                        bi = iy * g.w + ix;
                    }
                }
            y[o] = best;
            if (argmax) argmax[o] = bi;
        } else {
            float acc = 0.0f;
            for (int iy = h0; iy < h1; iy++)
                for (int ix = w0; ix < w1; ix++) acc += xp[iy * g.w + ix];
            y[o] = acc / (float)(ch * cw);
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

/* uniform: every window's divisor is kh kw (floor mode, count_include_pad: the zoo's pools), so
   the sum is divided once, as before windows were general */
static __global__ void pool_bwd_kernel(int kind, int uniform, sq_pool_shape g,
                                       const float *__restrict__ gy,
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
        pool_range(iy, g.kh, g.sh, g.pad_t, g.oh, &ylo, &yhi);
        pool_range(ix, g.kw, g.sw, g.pad_l, g.ow, &xlo, &xhi);
        float acc = 0.0f;
        if (kind == SQ_POOL_MAX) {
            const int32_t *ap = argmax + plane * (size_t)g.oh * g.ow;
            int me = iy * g.w + ix;
            for (int oy = ylo; oy <= yhi; oy++)
                for (int ox = xlo; ox <= xhi; ox++)
                    if (ap[oy * g.ow + ox] == me) acc += gp[oy * g.ow + ox];
        } else if (uniform) {
            for (int oy = ylo; oy <= yhi; oy++)
                for (int ox = xlo; ox <= xhi; ox++) acc += gp[oy * g.ow + ox];
            acc /= (float)(g.kh * g.kw);
        } else {
            int a, b;
            for (int oy = ylo; oy <= yhi; oy++) {
                const int ch = pool_window(oy, g.kh, g.sh, g.pad_t, g.h, g.pad_b, g.count_include_pad, &a, &b);
                for (int ox = xlo; ox <= xhi; ox++) {
                    const int cw = pool_window(ox, g.kw, g.sw, g.pad_l, g.w, g.pad_r, g.count_include_pad, &a, &b);
                    acc += gp[oy * g.ow + ox] * (1.0f / (float)(ch * cw));
                }
            }
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

/* pooled size along one axis, the rule of sq_pool_shape_init (host/util/backend_select.c; a
   kernel may not call into host/): floor or ceil, a ceil-mode window starting in the trailing
   pad dropped */
static int pool_out(int in, int k, int s, int p0, int p1, int ceil_mode)
{
    const int span = in + p0 + p1 - k;
    if (span < 0) return 0;
    int o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + p0) o--;
    return o;
}

/* the shape as sq_pool_shape_init leaves it (the kernels trust oh, ow and the pads) */
static bool pool_shape_ok(const sq_pool_shape *ps)
{
    return ps && ps->n > 0 && ps->c > 0 && ps->h > 0 && ps->w > 0 && ps->kh > 0 && ps->kw > 0 &&
           ps->sh > 0 && ps->sw > 0 && ps->pad_t >= 0 && ps->pad_l >= 0 && ps->pad_b >= 0 &&
           ps->pad_r >= 0 && ps->pad_t < ps->kh && ps->pad_b < ps->kh && ps->pad_l < ps->kw &&
           ps->pad_r < ps->kw && ps->oh > 0 && ps->ow > 0 &&
           ps->oh == pool_out(ps->h, ps->kh, ps->sh, ps->pad_t, ps->pad_b, ps->ceil_mode) &&
           ps->ow == pool_out(ps->w, ps->kw, ps->sw, ps->pad_l, ps->pad_r, ps->ceil_mode);
}

extern "C" void sq_cuda_pool_fwd(sq_pool_kind kind, const sq_pool_shape *ps, const float *x, float *y,
                                 int32_t *argmax)
{
    if (kind != SQ_POOL_MAX && kind != SQ_POOL_AVG) SQ_CUDA_BUG("unknown pool kind");
    if (!pool_shape_ok(ps)) SQ_CUDA_BUG("pool shape not from sq_pool_shape_init");
    size_t total = (size_t)ps->n * ps->c * ps->oh * ps->ow;
    pool_fwd_kernel<<<sq_grid_ew(total), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>((int)kind, *ps, x, y, argmax);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_pool_bwd(sq_pool_kind kind, const sq_pool_shape *ps, const float *gy,
                                 const int32_t *argmax, float *gx)
{
    if (kind != SQ_POOL_MAX && kind != SQ_POOL_AVG) SQ_CUDA_BUG("unknown pool kind");
    if (kind == SQ_POOL_MAX && !argmax) SQ_CUDA_BUG("max-pool backward without argmax");
    if (!gx) return;
    if (!pool_shape_ok(ps)) SQ_CUDA_BUG("pool shape not from sq_pool_shape_init");
    const int uniform = !ps->ceil_mode && ps->count_include_pad;
    size_t total = (size_t)ps->n * ps->c * ps->h * ps->w;
    pool_bwd_kernel<<<sq_grid_ew(total), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>((int)kind, uniform, *ps, gy,
                                                                                argmax, gx);
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
