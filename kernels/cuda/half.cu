/* half.cu: the 16-bit (fp16 / bf16) inference ops of the reduced-precision teacher (backend.h,
   "optional: reduced-precision teacher"): casts, bias + activation after a cuDNN convolution,
   activations, residual add (+ activation), max / average pooling, global average pooling (fp32
   output) and the option-A shortcut. Each kernel is a template over the storage type; values
   are widened to fp32, computed as the fp32 kernels compute them (act.cu, pool.cu, struct.cu)
   and rounded to nearest once on the store. Memory-bound grid-stride loops, one pass each. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include "cuda_common.cuh"

template <typename T> __device__ __forceinline__ float ld16(T v);
template <> __device__ __forceinline__ float ld16<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float ld16<__nv_bfloat16>(__nv_bfloat16 v)
{
    return __bfloat162float(v);
}

template <typename T> __device__ __forceinline__ T st16(float v);
template <> __device__ __forceinline__ __half st16<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 st16<__nv_bfloat16>(float v)
{
    return __float2bfloat16_rn(v);
}

/* act < 0: identity; else sq_act_kind, as act_fwd_kernel (a NaN becomes 0) */
static __device__ __forceinline__ float apply_act(int act, float v)
{
    if (act < 0) return v;
    v = v > 0.0f ? v : 0.0f;
    if (act == SQ_ACT_RELU6) v = v < 6.0f ? v : 6.0f;
    return v;
}

template <typename T>
static __global__ void to16_kernel(size_t n, const float *__restrict__ x, T *__restrict__ y)
{
    SQ_GRID_LOOP(i, n) y[i] = st16<T>(x[i]);
}

template <typename T>
static __global__ void from16_kernel(size_t n, const T *__restrict__ x, float *__restrict__ y)
{
    SQ_GRID_LOOP(i, n) y[i] = ld16<T>(x[i]);
}

/* y (N, C, HW) in place: y = act(y + b[c]); b may be NULL */
template <typename T>
static __global__ void bias_act_kernel(size_t n, int c, int hw, const float *__restrict__ b,
                                       int act, T *__restrict__ y)
{
    SQ_GRID_LOOP(i, n)
    {
        float v = ld16<T>(y[i]);
        if (b) v += b[(i / (size_t)hw) % (size_t)c];
        y[i] = st16<T>(apply_act(act, v));
    }
}

template <typename T>
static __global__ void act_kernel(size_t n, int act, const T *__restrict__ x, T *__restrict__ y)
{
    SQ_GRID_LOOP(i, n) y[i] = st16<T>(apply_act(act, ld16<T>(x[i])));
}

/* y may alias a or b */
template <typename T>
static __global__ void add_kernel(size_t n, int act, const T *a, const T *b, T *y)
{
    SQ_GRID_LOOP(i, n) y[i] = st16<T>(apply_act(act, ld16<T>(a[i]) + ld16<T>(b[i])));
}

struct pool16_geom {
    int n, c, h, w, k, stride, pad, oh, ow;
};

/* as pool_fwd_kernel (pool.cu) without argmax: padding never wins, a NaN wins; avg divides by
   k * k (count_include_pad) */
template <typename T>
static __global__ void pool_kernel(int kind, pool16_geom g, const T *__restrict__ x,
                                   T *__restrict__ y)
{
    size_t total = (size_t)g.n * g.c * g.oh * g.ow;
    SQ_GRID_LOOP(o, total)
    {
        int ox = (int)(o % g.ow);
        int oy = (int)((o / g.ow) % g.oh);
        size_t plane = o / ((size_t)g.oh * g.ow);
        const T *xp = x + plane * (size_t)g.h * g.w;
        int y0 = oy * g.stride - g.pad, x0 = ox * g.stride - g.pad;
        float best = -INFINITY, acc = 0.0f;
        bool any = false;
        for (int dy = 0; dy < g.k; dy++) {
            int iy = y0 + dy;
            if (iy < 0 || iy >= g.h) continue;
            for (int dx = 0; dx < g.k; dx++) {
                int ix = x0 + dx;
                if (ix < 0 || ix >= g.w) continue;
                float v = ld16<T>(xp[iy * g.w + ix]);
                acc += v;
                if (!any || v > best || isnan(v)) best = v;
                any = true;
            }
        }
        y[o] = st16<T>(kind == SQ_POOL_MAX ? best : acc / (float)(g.k * g.k));
    }
}

/* one warp per (sample, channel) row; fp32 sum and output */
template <typename T>
static __global__ void gap_kernel(size_t rows, int hw, const T *__restrict__ x,
                                  float *__restrict__ y)
{
    size_t warp = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    size_t nwarps = ((size_t)gridDim.x * blockDim.x) >> 5;
    int lane = threadIdx.x & 31;
    for (size_t r = warp; r < rows; r += nwarps) {
        const T *xr = x + r * (size_t)hw;
        float acc = 0.0f;
        for (int j = lane; j < hw; j += 32) acc += ld16<T>(xr[j]);
        acc = sq_warp_sum(acc);
        if (lane == 0) y[r] = acc / (float)hw;
    }
}

/* as shortcut_fwd_kernel (struct.cu): exact data movement, zero channels padded */
template <typename T>
static __global__ void shortcut_kernel(int n, int c, int h, int w, int k, const T *__restrict__ x,
                                       T *__restrict__ y)
{
    int oh = (h + 1) / 2, ow = (w + 1) / 2, padc = (k - c) / 2;
    size_t total = (size_t)n * k * oh * ow;
    SQ_GRID_LOOP(o, total)
    {
        int xx = (int)(o % ow), yy = (int)((o / ow) % oh);
        size_t p = o / ((size_t)oh * ow);
        int ch = (int)(p % k) - padc;
        size_t b = p / k;
        y[o] = (ch < 0 || ch >= c) ? st16<T>(0.0f) : x[((b * c + ch) * h + 2 * yy) * w + 2 * xx];
    }
}

/* runs the launch statement (the variadic part) with T bound to the storage type of dt */
#define SQ_DT_DISPATCH(dt, ...)                                                               \
    do {                                                                                         \
        if ((dt) == SQ_DT_F16) {                                                                 \
            typedef __half T;                                                                    \
            __VA_ARGS__;                                                                         \
        } else if ((dt) == SQ_DT_BF16) {                                                         \
            typedef __nv_bfloat16 T;                                                             \
            __VA_ARGS__;                                                                         \
        } else {                                                                                 \
            SQ_CUDA_BUG("unknown 16-bit data type");                                             \
        }                                                                                        \
        SQ_CUDA_LAUNCHED();                                                                      \
    } while (0)

extern "C" void sq_cuda_to16(sq_dtype16 dt, size_t n, const float *x, void *y)
{
    if (!n) return;
    SQ_DT_DISPATCH(dt, to16_kernel<T><<<sq_grid_ew(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, x, (T *)y));
}

extern "C" void sq_cuda_from16(sq_dtype16 dt, size_t n, const void *x, float *y)
{
    if (!n) return;
    SQ_DT_DISPATCH(dt, from16_kernel<T><<<sq_grid_ew(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, (const T *)x, y));
}

extern "C" void sq_cuda_bias_act16(sq_dtype16 dt, int n, int c, int hw, const float *b, int act,
                                   void *y)
{
    size_t total = (size_t)n * c * hw;
    if (!total || (!b && act < 0)) return;
    SQ_DT_DISPATCH(dt, bias_act_kernel<T><<<sq_grid_ew(total), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(total, c, hw, b,
                                                                                act, (T *)y));
}

extern "C" void sq_cuda_act16_fwd(sq_dtype16 dt, sq_act_kind kind, size_t n, const void *x,
                                  void *y)
{
    if (!n) return;
    SQ_DT_DISPATCH(dt, act_kernel<T><<<sq_grid_ew(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, (int)kind,
                                                                       (const T *)x, (T *)y));
}

extern "C" void sq_cuda_add16_fwd(sq_dtype16 dt, size_t n, int act, const void *a, const void *b,
                                  void *y)
{
    if (!n) return;
    SQ_DT_DISPATCH(dt, add_kernel<T><<<sq_grid_ew(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, act, (const T *)a,
                                                                       (const T *)b, (T *)y));
}

extern "C" void sq_cuda_pool16_fwd(sq_dtype16 dt, sq_pool_kind kind, int n, int c, int h, int w,
                                   int k, int stride, int pad, const void *x, void *y)
{
    pool16_geom g = {n, c, h, w, k, stride, pad, (h + 2 * pad - k) / stride + 1,
                     (w + 2 * pad - k) / stride + 1};
    if (n <= 0 || c <= 0 || g.oh <= 0 || g.ow <= 0) return;
    size_t total = (size_t)n * c * g.oh * g.ow;
    SQ_DT_DISPATCH(dt, pool_kernel<T><<<sq_grid_ew(total), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(
                           (int)kind, g, (const T *)x, (T *)y));
}

extern "C" void sq_cuda_gap16_fwd(sq_dtype16 dt, int n, int c, int hw, const void *x, float *y)
{
    if (n <= 0 || c <= 0 || hw <= 0) return;
    size_t rows = (size_t)n * c;
    SQ_DT_DISPATCH(dt, gap_kernel<T><<<sq_grid_ew(rows * 32), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(rows, hw,
                                                                               (const T *)x, y));
}

extern "C" void sq_cuda_shortcut_a16_fwd(sq_dtype16 dt, int n, int c, int h, int w, int k,
                                         const void *x, void *y)
{
    size_t total = (size_t)n * k * ((h + 1) / 2) * ((w + 1) / 2);
    if (!total) return;
    SQ_DT_DISPATCH(dt, shortcut_kernel<T><<<sq_grid_ew(total), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(
                           n, c, h, w, k, (const T *)x, (T *)y));
}
