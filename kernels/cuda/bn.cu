/* bn.cu: batch normalisation over x viewed as (N, C, HW) (HW = 1 for BatchNorm1d).

   Train forward and backward are two launches each, deterministic, no atomics:
   1. grid (C, S): block (c, s) sums its slice of channel c (double accumulators) and writes the
      partials to the context's partial buffer;
   2. grid (C, S): every block reduces channel c's S partials in slice order (so all blocks of a
      channel see identical statistics), block (c, 0) writes per-channel outputs (saved stats,
      running stats; parameter gradients), and each block then normalises / back-propagates its
      slice.
   S depends only on (N*HW, C), not on the GPU. Statistics as PyTorch: the batch is normalised
   with the biased variance, the running variance is updated with the unbiased one
   (m/(m-1), m = N*HW; m = 1 keeps the biased value), momentum: run = (1-mom) run + mom batch.
   gamma = NULL means 1, beta = NULL means 0; NULL save/running/gradient pointers are skipped.

   The fused ops of backend.h (bn_act_fwd_train, bn_add_act_fwd_train, bn_act_bwd,
   bn_add_act_bwd) are the same two launches with the activation (and the residual add) folded
   into their element loops, as the CPU's fused.c: the forward's second pass writes
   act(BN(x) [+ r]), the backward's first pass takes g = gy act'(y) (and adds it to gr) and the
   second recomputes g. They save the separate activation, add and axpy passes and launches (a
   resnet20 SQAKD step: about 70 launches, and by count of passes about 1.8 GB of memory traffic
   at batch 256). The arithmetic is the unfused ops' in the same order, so results are the same
   bit for bit (test_cuda_fused.c). */
#include "cuda_common.cuh"

#define BN_SLICE_MIN 4096 /* elements per slice before another slice is added */
#define BN_MAX_SLICES 256

/* per-channel partials need 2 doubles per channel and slice: more channels than this cannot be
   reduced through the partial buffer */
#define BN_MAX_CHANNELS (SQ_CUDA_PARTIAL_DOUBLES / 2)

static bool bn_channels_ok(int c)
{
    if (c <= BN_MAX_CHANNELS) return true;
    sq_cuda_fail(SQ_EARG, "sqakd", c, "too many batch-norm channels for the CUDA backend",
                 "bn_channels_ok", __FILE__, __LINE__);
    return false;
}

static int bn_slices(size_t m, int c)
{
    size_t s = (m + BN_SLICE_MIN - 1) / BN_SLICE_MIN;
    size_t cap = (size_t)SQ_CUDA_PARTIAL_DOUBLES / (2 * (size_t)c);
    if (cap > BN_MAX_SLICES) cap = BN_MAX_SLICES;
    if (s > cap) s = cap;
    return s < 1 ? 1 : (int)s;
}

/* address of element i (0 <= i < n*hw) of channel ch */
static __device__ __forceinline__ size_t bn_at(size_t i, int hw, int c, int ch)
{
    size_t b = i / (size_t)hw, j = i - b * (size_t)hw;
    return (b * (size_t)c + ch) * hw + j;
}

static __device__ __forceinline__ void bn_slice(size_t m, int s, int ns, size_t *beg, size_t *end)
{
    *beg = m * (size_t)s / (size_t)ns;
    *end = m * (size_t)(s + 1) / (size_t)ns;
}

/* the fused ops' activation, as act.cu and the CPU's fused.c: ReLU (hi = +inf) or ReLU6
   (hi = 6); its gradient from the output y: y > 0 and y < hi */
static __device__ __forceinline__ float bn_act(float v, float hi)
{
    v = v > 0.0f ? v : 0.0f;
    return v < hi ? v : hi;
}

static __device__ __forceinline__ float bn_act_grad(float y, float gy, float hi)
{
    return y > 0.0f && y < hi ? gy : 0.0f;
}

static float bn_act_hi(sq_act_kind act) { return act == SQ_ACT_RELU6 ? 6.0f : INFINITY; }

/* partials[(ch*S + s)*2 + {0,1}] = sum x, sum x^2 over the slice */
static __global__ void bn_stats_kernel(int n, int c, int hw, const float *__restrict__ x,
                                       double *__restrict__ part)
{
    int ch = blockIdx.x, s = blockIdx.y, ns = gridDim.y;
    size_t m = (size_t)n * hw, beg, end;
    bn_slice(m, s, ns, &beg, &end);
    double s1 = 0.0, s2 = 0.0;
    for (size_t i = beg + threadIdx.x; i < end; i += blockDim.x) {
        double v = x[bn_at(i, hw, c, ch)];
        s1 += v;
        s2 += v * v;
    }
    s1 = sq_block_sum(s1);
    s2 = sq_block_sum(s2);
    if (threadIdx.x == 0) {
        part[((size_t)ch * ns + s) * 2 + 0] = s1;
        part[((size_t)ch * ns + s) * 2 + 1] = s2;
    }
}

/* the two per-channel totals of the partials, in slice order; broadcast to the whole block */
static __device__ void bn_totals(const double *part, int ch, int ns, double *t0, double *t1)
{
    __shared__ double sh[2];
    if (threadIdx.x == 0) {
        double a = 0.0, b = 0.0;
        for (int s = 0; s < ns; s++) {
            a += part[((size_t)ch * ns + s) * 2 + 0];
            b += part[((size_t)ch * ns + s) * 2 + 1];
        }
        sh[0] = a;
        sh[1] = b;
    }
    __syncthreads();
    *t0 = sh[0];
    *t1 = sh[1];
}

/* ACT: y = act(BN(x) [+ r]) with the activation bounded by hi; R: r is added (y may not alias
   x or r: the fused ops' outputs are buffers of their own) */
template <bool ACT, bool R>
static __global__ void bn_train_apply_kernel(int n, int c, int hw, const float *__restrict__ x,
                                             const float *__restrict__ r, float hi,
                                             const float *__restrict__ gamma,
                                             const float *__restrict__ beta, float *run_mean,
                                             float *run_var, float momentum, float eps,
                                             float *__restrict__ y, float *save_mean,
                                             float *save_invstd, const double *__restrict__ part)
{
    int ch = blockIdx.x, s = blockIdx.y, ns = gridDim.y;
    size_t m = (size_t)n * hw, beg, end;
    double sum, sumsq;
    bn_totals(part, ch, ns, &sum, &sumsq);
    double mean = sum / (double)m;
    double var = sumsq / (double)m - mean * mean;
    if (var < 0.0) var = 0.0;
    float invstd = (float)(1.0 / sqrt(var + (double)eps));
    if (s == 0 && threadIdx.x == 0) {
        if (save_mean) save_mean[ch] = (float)mean;
        if (save_invstd) save_invstd[ch] = invstd;
        double unbiased = m > 1 ? var * (double)m / (double)(m - 1) : var;
        if (run_mean) run_mean[ch] = (1.0f - momentum) * run_mean[ch] + momentum * (float)mean;
        if (run_var) run_var[ch] = (1.0f - momentum) * run_var[ch] + momentum * (float)unbiased;
    }
    float g = gamma ? gamma[ch] : 1.0f, bb = beta ? beta[ch] : 0.0f, mu = (float)mean;
    bn_slice(m, s, ns, &beg, &end);
    for (size_t i = beg + threadIdx.x; i < end; i += blockDim.x) {
        size_t a = bn_at(i, hw, c, ch);
        float t = (x[a] - mu) * invstd * g + bb;
        if (R) t = t + r[a];
        y[a] = ACT ? bn_act(t, hi) : t;
    }
}

static __global__ void bn_eval_kernel(size_t total, int c, int hw, const float *__restrict__ x,
                                      const float *__restrict__ gamma,
                                      const float *__restrict__ beta,
                                      const float *__restrict__ run_mean,
                                      const float *__restrict__ run_var, float eps,
                                      float *__restrict__ y)
{
    SQ_GRID_LOOP(i, total)
    {
        int ch = (int)((i / (size_t)hw) % (size_t)c);
        float invstd = 1.0f / sqrtf(run_var[ch] + eps);
        float g = gamma ? gamma[ch] : 1.0f, bb = beta ? beta[ch] : 0.0f;
        y[i] = (x[i] - run_mean[ch]) * invstd * g + bb;
    }
}

/* partials: sum g, sum g * xhat over the slice, with g = gy (ACT: gy act'(y), y the fused
   forward's output; GR: gr += g, the residual branch's gradient, written once per element) */
template <bool ACT, bool GR>
static __global__ void bn_bwd_stats_kernel(int n, int c, int hw, const float *__restrict__ x,
                                           const float *__restrict__ y, float hi,
                                           const float *__restrict__ gy,
                                           const float *__restrict__ save_mean,
                                           const float *__restrict__ save_invstd,
                                           float *__restrict__ gr, double *__restrict__ part)
{
    int ch = blockIdx.x, s = blockIdx.y, ns = gridDim.y;
    size_t m = (size_t)n * hw, beg, end;
    bn_slice(m, s, ns, &beg, &end);
    float mu = save_mean[ch], is = save_invstd[ch];
    double s1 = 0.0, s2 = 0.0;
    for (size_t i = beg + threadIdx.x; i < end; i += blockDim.x) {
        size_t a = bn_at(i, hw, c, ch);
        float g = ACT ? bn_act_grad(y[a], gy[a], hi) : gy[a];
        if (GR) gr[a] += g;
        s1 += g;
        s2 += (double)g * (double)((x[a] - mu) * is);
    }
    s1 = sq_block_sum(s1);
    s2 = sq_block_sum(s2);
    if (threadIdx.x == 0) {
        part[((size_t)ch * ns + s) * 2 + 0] = s1;
        part[((size_t)ch * ns + s) * 2 + 1] = s2;
    }
}

/* gx += gamma invstd (g - sum_g/m - xhat sum_g_xhat/m); ggamma += sum_g_xhat; gbeta += sum_g
   (g as in the stats pass) */
template <bool ACT>
static __global__ void bn_bwd_apply_kernel(int n, int c, int hw, const float *__restrict__ x,
                                           const float *__restrict__ y, float hi,
                                           const float *__restrict__ gy,
                                           const float *__restrict__ gamma,
                                           const float *__restrict__ save_mean,
                                           const float *__restrict__ save_invstd,
                                           float *__restrict__ gx, float *ggamma, float *gbeta,
                                           const double *__restrict__ part)
{
    int ch = blockIdx.x, s = blockIdx.y, ns = gridDim.y;
    size_t m = (size_t)n * hw, beg, end;
    double sum_gy, sum_gyx;
    bn_totals(part, ch, ns, &sum_gy, &sum_gyx);
    if (s == 0 && threadIdx.x == 0) {
        if (ggamma) ggamma[ch] += (float)sum_gyx;
        if (gbeta) gbeta[ch] += (float)sum_gy;
    }
    if (!gx) return;
    float mu = save_mean[ch], is = save_invstd[ch], g = gamma ? gamma[ch] : 1.0f;
    float mean_gy = (float)(sum_gy / (double)m), mean_gyx = (float)(sum_gyx / (double)m);
    float k = g * is;
    bn_slice(m, s, ns, &beg, &end);
    for (size_t i = beg + threadIdx.x; i < end; i += blockDim.x) {
        size_t a = bn_at(i, hw, c, ch);
        float xhat = (x[a] - mu) * is;
        float gv = ACT ? bn_act_grad(y[a], gy[a], hi) : gy[a];
        gx[a] += k * (gv - mean_gy - xhat * mean_gyx);
    }
}

/* training forward, plain (act < 0) or fused with the activation and residual r (backend.h) */
static void bn_fwd_train(int n, int c, int hw, int act, const float *x, const float *r,
                         const float *gamma, const float *beta, float *run_mean, float *run_var,
                         float momentum, float eps, float *y, float *save_mean, float *save_invstd)
{
    if (n <= 0 || c <= 0 || hw <= 0) return;
    if (!bn_channels_ok(c)) return;
    size_t m = (size_t)n * hw;
    dim3 grid((unsigned)c, (unsigned)bn_slices(m, c));
    cudaStream_t st = sq_cuda_stream();
    double *part = sq_cuda_partials();
    bn_stats_kernel<<<grid, SQ_CUDA_BLOCK, 0, st>>>(n, c, hw, x, part);
    SQ_CUDA_LAUNCHED();
    const float hi = act >= 0 ? bn_act_hi((sq_act_kind)act) : 0.0f;
#define BN_APPLY(A, R)                                                                           \
    bn_train_apply_kernel<A, R><<<grid, SQ_CUDA_BLOCK, 0, st>>>(                                  \
        n, c, hw, x, r, hi, gamma, beta, run_mean, run_var, momentum, eps, y, save_mean,         \
        save_invstd, part)
    if (act < 0) BN_APPLY(false, false);
    else if (r) BN_APPLY(true, true);
    else BN_APPLY(true, false);
#undef BN_APPLY
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_bn_fwd_train(int n, int c, int hw, const float *x, const float *gamma,
                                     const float *beta, float *run_mean, float *run_var,
                                     float momentum, float eps, float *y, float *save_mean,
                                     float *save_invstd)
{
    bn_fwd_train(n, c, hw, -1, x, NULL, gamma, beta, run_mean, run_var, momentum, eps, y,
                 save_mean, save_invstd);
}

static bool bn_act_ok(sq_act_kind act)
{
    if (act == SQ_ACT_RELU || act == SQ_ACT_RELU6) return true;
    SQ_CUDA_BUG("unknown activation kind");
    return false;
}

extern "C" void sq_cuda_bn_act_fwd_train(int n, int c, int hw, sq_act_kind act, const float *x,
                                         const float *gamma, const float *beta, float *run_mean,
                                         float *run_var, float momentum, float eps, float *y,
                                         float *save_mean, float *save_invstd)
{
    if (!bn_act_ok(act)) return;
    bn_fwd_train(n, c, hw, (int)act, x, NULL, gamma, beta, run_mean, run_var, momentum, eps, y,
                 save_mean, save_invstd);
}

extern "C" void sq_cuda_bn_add_act_fwd_train(int n, int c, int hw, sq_act_kind act,
                                             const float *x, const float *r, const float *gamma,
                                             const float *beta, float *run_mean, float *run_var,
                                             float momentum, float eps, float *y,
                                             float *save_mean, float *save_invstd)
{
    if (!bn_act_ok(act)) return;
    bn_fwd_train(n, c, hw, (int)act, x, r, gamma, beta, run_mean, run_var, momentum, eps, y,
                 save_mean, save_invstd);
}

extern "C" void sq_cuda_bn_fwd_eval(int n, int c, int hw, const float *x, const float *gamma,
                                    const float *beta, const float *run_mean,
                                    const float *run_var, float eps, float *y)
{
    if (n <= 0 || c <= 0 || hw <= 0) return;
    size_t total = (size_t)n * c * hw;
    bn_eval_kernel<<<sq_grid_ew(total), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(total, c, hw, x, gamma, beta, run_mean,
                                                         run_var, eps, y);
    SQ_CUDA_LAUNCHED();
}

/* backward, plain (act < 0: g = gy) or fused (g = gy act'(y); gr += g when gr != NULL) */
static void bn_bwd(int n, int c, int hw, int act, const float *x, const float *y,
                   const float *gy, const float *gamma, const float *save_mean,
                   const float *save_invstd, float *gx, float *gr, float *ggamma, float *gbeta)
{
    if (n <= 0 || c <= 0 || hw <= 0 || (!gx && !gr && !ggamma && !gbeta)) return;
    if (!bn_channels_ok(c)) return;
    size_t m = (size_t)n * hw;
    dim3 grid((unsigned)c, (unsigned)bn_slices(m, c));
    cudaStream_t st = sq_cuda_stream();
    double *part = sq_cuda_partials();
    const float hi = act >= 0 ? bn_act_hi((sq_act_kind)act) : 0.0f;
#define BN_STATS(A, G)                                                                           \
    bn_bwd_stats_kernel<A, G><<<grid, SQ_CUDA_BLOCK, 0, st>>>(n, c, hw, x, y, hi, gy, save_mean,   \
                                                              save_invstd, gr, part)
    if (act < 0) BN_STATS(false, false);
    else if (gr) BN_STATS(true, true);
    else BN_STATS(true, false);
#undef BN_STATS
    SQ_CUDA_LAUNCHED();
    if (!gx && !ggamma && !gbeta) return;
    if (act < 0)
        bn_bwd_apply_kernel<false><<<grid, SQ_CUDA_BLOCK, 0, st>>>(
            n, c, hw, x, y, hi, gy, gamma, save_mean, save_invstd, gx, ggamma, gbeta, part);
    else
        bn_bwd_apply_kernel<true><<<grid, SQ_CUDA_BLOCK, 0, st>>>(
            n, c, hw, x, y, hi, gy, gamma, save_mean, save_invstd, gx, ggamma, gbeta, part);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_bn_bwd(int n, int c, int hw, const float *x, const float *gy,
                               const float *gamma, const float *save_mean,
                               const float *save_invstd, float *gx, float *ggamma, float *gbeta)
{
    bn_bwd(n, c, hw, -1, x, NULL, gy, gamma, save_mean, save_invstd, gx, NULL, ggamma, gbeta);
}

extern "C" void sq_cuda_bn_act_bwd(int n, int c, int hw, sq_act_kind act, const float *x,
                                   const float *y, const float *gy, const float *gamma,
                                   const float *save_mean, const float *save_invstd, float *gx,
                                   float *ggamma, float *gbeta)
{
    if (!bn_act_ok(act)) return;
    bn_bwd(n, c, hw, (int)act, x, y, gy, gamma, save_mean, save_invstd, gx, NULL, ggamma, gbeta);
}

extern "C" void sq_cuda_bn_add_act_bwd(int n, int c, int hw, sq_act_kind act, const float *x,
                                       const float *y, const float *gy, const float *gamma,
                                       const float *save_mean, const float *save_invstd,
                                       float *gx, float *gr, float *ggamma, float *gbeta)
{
    if (!bn_act_ok(act)) return;
    bn_bwd(n, c, hw, (int)act, x, y, gy, gamma, save_mean, save_invstd, gx, gr, ggamma, gbeta);
}
