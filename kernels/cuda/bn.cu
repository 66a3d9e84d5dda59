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

/* The element loops walk a channel's slice in units of V consecutive floats of one plane: V = 4
   (float4) when HW % 4 == 0 and every tensor of the launch is 16-byte aligned, else 1. The
   units of channel ch are u = b HW/V + j (image b, j-th unit of its plane), sliced in order;
   each thread takes BN_UNROLL units per trip, i, i + blockDim, ..., and issues every load of the
   trip before its arithmetic. I is the index type: 32 bits when the unit count fits, so a
   unit's image is one 32-bit division (docs/gpu-validation.md, "Fewer calls and passes per
   step, faster BatchNorm kernels"). */
#define BN_UNROLL 4

template <int V, typename I> struct bn_walk {
    I hw_u, beg, end;
    size_t hw;
    int c, ch;
    __device__ __forceinline__ bn_walk(int n, int c_, int hw_, int s, int ns)
    {
        c = c_;
        ch = blockIdx.x;
        hw = (size_t)hw_;
        hw_u = (I)(hw_ / V);
        const size_t m_u = (size_t)n * (size_t)hw_u;
        beg = (I)(m_u * (size_t)s / (size_t)ns);
        end = (I)(m_u * (size_t)(s + 1) / (size_t)ns);
    }
    /* float offset of unit u */
    __device__ __forceinline__ size_t off(I u) const
    {
        const I b = u / hw_u, j = u - b * hw_u;
        return ((size_t)b * (size_t)c + (size_t)ch) * hw + (size_t)j * V;
    }
};

template <int V> static __device__ __forceinline__ void bn_ld(const float *p, float (&v)[V])
{
    if (V == 4) {
        const float4 t = *(const float4 *)p;
        v[0] = t.x;
        v[V > 1 ? 1 : 0] = t.y;
        v[V > 2 ? 2 : 0] = t.z;
        v[V > 3 ? 3 : 0] = t.w;
    } else {
        v[0] = *p;
    }
}

template <int V> static __device__ __forceinline__ void bn_st(float *p, const float (&v)[V])
{
    if (V == 4) *(float4 *)p = make_float4(v[0], v[V > 1 ? 1 : 0], v[V > 2 ? 2 : 0], v[V > 3 ? 3 : 0]);
    else *p = v[0];
}

/* the unit offsets of one trip (ok[k]: unit k lies in the slice) */
template <int V, typename I>
static __device__ __forceinline__ void bn_trip(const bn_walk<V, I> &w, I u0, size_t (&o)[BN_UNROLL],
                                               bool (&ok)[BN_UNROLL])
{
#pragma unroll
    for (int k = 0; k < BN_UNROLL; k++) {
        const I u = u0 + (I)k * (I)blockDim.x;
        ok[k] = u < w.end;
        o[k] = ok[k] ? w.off(u) : 0;
    }
}

#define BN_TRIPS(w, u0) for (I u0 = (w).beg + (I)threadIdx.x; u0 < (w).end; u0 += (I)(BN_UNROLL * blockDim.x))

/* the backward's loads of one trip: x, gy, y (ACT: the fused forward's output) and e (E: the
   residual's gradient in the stats pass, gx in the apply pass) */
template <int V, bool ACT, bool E>
static __device__ __forceinline__ void bn_ld_bwd(const size_t (&o)[BN_UNROLL],
                                                 const bool (&ok)[BN_UNROLL], const float *x,
                                                 const float *gy, const float *y, const float *e,
                                                 float (&xv)[BN_UNROLL][V], float (&gv)[BN_UNROLL][V],
                                                 float (&yv)[BN_UNROLL][V], float (&ev)[BN_UNROLL][V])
{
#pragma unroll
    for (int k = 0; k < BN_UNROLL; k++)
        if (ok[k]) {
            bn_ld<V>(x + o[k], xv[k]);
            bn_ld<V>(gy + o[k], gv[k]);
            if (ACT) bn_ld<V>(y + o[k], yv[k]);
            if (E) bn_ld<V>(e + o[k], ev[k]);
        }
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
template <int V, typename I>
static __global__ void bn_stats_kernel(int n, int c, int hw, const float *__restrict__ x,
                                       double *__restrict__ part)
{
    const int s = blockIdx.y, ns = gridDim.y;
    const bn_walk<V, I> w(n, c, hw, s, ns);
    double s1 = 0.0, s2 = 0.0;
    BN_TRIPS(w, u0)
    {
        size_t o[BN_UNROLL];
        bool ok[BN_UNROLL];
        float xv[BN_UNROLL][V];
        bn_trip(w, u0, o, ok);
#pragma unroll
        for (int k = 0; k < BN_UNROLL; k++)
            if (ok[k]) bn_ld<V>(x + o[k], xv[k]);
#pragma unroll
        for (int k = 0; k < BN_UNROLL; k++) {
            if (!ok[k]) continue;
#pragma unroll
            for (int e = 0; e < V; e++) {
                const double v = xv[k][e];
                s1 += v;
                s2 += v * v;
            }
        }
    }
    s1 = sq_block_sum(s1);
    s2 = sq_block_sum(s2);
    if (threadIdx.x == 0) {
        part[((size_t)w.ch * ns + s) * 2 + 0] = s1;
        part[((size_t)w.ch * ns + s) * 2 + 1] = s2;
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

/* synchronised BatchNorm (backend.h, dist_attach's sync_bn): the per-channel totals of the
   partials, in slice order as bn_totals takes them, into tot[2 ch], tot[2 ch + 1], which are then
   summed over the ranks */
static __global__ void bn_sync_totals_kernel(const double *__restrict__ part, int c, int ns,
                                             double *__restrict__ tot)
{
    const int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    double a = 0.0, b = 0.0;
    for (int s = 0; s < ns; s++) {
        a += part[((size_t)ch * ns + s) * 2 + 0];
        b += part[((size_t)ch * ns + s) * 2 + 1];
    }
    tot[2 * (size_t)ch] = a;
    tot[2 * (size_t)ch + 1] = b;
}

/* the totals of every rank's partials (tot not NULL; mtot the global element count) */
static void bn_sync_reduce(const double *part, int c, int ns, double *tot)
{
    bn_sync_totals_kernel<<<(c + 127) / 128, 128, 0, sq_cuda_stream()>>>(part, c, ns, tot);
    SQ_CUDA_LAUNCHED();
    sq_cuda_allreduce_f64(tot, 2 * (size_t)c);
}

/* ACT: y = act(BN(x) [+ r]) with the activation bounded by hi; R: r is added (y may not alias
   x or r: the fused ops' outputs are buffers of their own). tot: NULL, or the totals over every
   rank (sync_bn), of mtot elements */
template <int V, typename I, bool ACT, bool R>
static __global__ void bn_train_apply_kernel(int n, int c, int hw, const float *__restrict__ x,
                                             const float *__restrict__ r, float hi,
                                             const float *__restrict__ gamma,
                                             const float *__restrict__ beta, float *run_mean,
                                             float *run_var, float momentum, float eps,
                                             float *__restrict__ y, float *save_mean,
                                             float *save_invstd, const double *__restrict__ part,
                                             const double *__restrict__ tot, double mtot)
{
    const int ch = blockIdx.x, s = blockIdx.y, ns = gridDim.y;
    const double m = tot ? mtot : (double)n * hw;
    double sum, sumsq;
    if (tot) {
        sum = tot[2 * (size_t)ch];
        sumsq = tot[2 * (size_t)ch + 1];
    } else {
        bn_totals(part, ch, ns, &sum, &sumsq);
    }
    double mean = sum / m;
    double var = sumsq / m - mean * mean;
    if (var < 0.0) var = 0.0;
    float invstd = (float)(1.0 / sqrt(var + (double)eps));
    if (s == 0 && threadIdx.x == 0) {
        if (save_mean) save_mean[ch] = (float)mean;
        if (save_invstd) save_invstd[ch] = invstd;
        double unbiased = m > 1 ? var * m / (m - 1) : var;
        if (run_mean) run_mean[ch] = (1.0f - momentum) * run_mean[ch] + momentum * (float)mean;
        if (run_var) run_var[ch] = (1.0f - momentum) * run_var[ch] + momentum * (float)unbiased;
    }
    const float g = gamma ? gamma[ch] : 1.0f, bb = beta ? beta[ch] : 0.0f, mu = (float)mean;
    const bn_walk<V, I> w(n, c, hw, s, ns);
    BN_TRIPS(w, u0)
    {
        size_t o[BN_UNROLL];
        bool ok[BN_UNROLL];
        float xv[BN_UNROLL][V], rv[BN_UNROLL][V];
        bn_trip(w, u0, o, ok);
#pragma unroll
        for (int k = 0; k < BN_UNROLL; k++)
            if (ok[k]) {
                bn_ld<V>(x + o[k], xv[k]);
                if (R) bn_ld<V>(r + o[k], rv[k]);
            }
#pragma unroll
        for (int k = 0; k < BN_UNROLL; k++)
            if (ok[k]) {
#pragma unroll
                for (int e = 0; e < V; e++) {
                    float t = (xv[k][e] - mu) * invstd * g + bb;
                    if (R) t = t + rv[k][e];
                    xv[k][e] = ACT ? bn_act(t, hi) : t;
                }
                bn_st<V>(y + o[k], xv[k]);
            }
    }
}

/* evaluation: y = (x - running mean) / sqrt(running var + eps) gamma + beta, elementwise in
   units of V floats of one plane (as conv.cu's bias kernel: V = 4 when HW % 4 == 0 and x, y are
   16-byte aligned; I: 32-bit index when it fits); the per-element formula of the former
   one-element kernel, so the values are the same */
template <typename I, int V>
static __global__ void bn_eval_kernel(I units, I per_plane, int c, const float *__restrict__ x,
                                      const float *__restrict__ gamma,
                                      const float *__restrict__ beta,
                                      const float *__restrict__ run_mean,
                                      const float *__restrict__ run_var, float eps,
                                      float *__restrict__ y)
{
    for (I u = (I)blockIdx.x * blockDim.x + threadIdx.x; u < units; u += (I)gridDim.x * blockDim.x) {
        const int ch = (int)((u / per_plane) % (I)c);
        const float invstd = 1.0f / sqrtf(run_var[ch] + eps);
        const float g = gamma ? gamma[ch] : 1.0f, bb = beta ? beta[ch] : 0.0f, mu = run_mean[ch];
        float v[V];
        bn_ld<V>(x + (size_t)u * V, v);
#pragma unroll
        for (int e = 0; e < V; e++) v[e] = (v[e] - mu) * invstd * g + bb;
        bn_st<V>(y + (size_t)u * V, v);
    }
}

/* partials: sum g, sum g * xhat over the slice, with g = gy (ACT: gy act'(y), y the fused
   forward's output; GR: gr += g, the residual branch's gradient, written once per element) */
template <int V, typename I, bool ACT, bool GR>
static __global__ void bn_bwd_stats_kernel(int n, int c, int hw, const float *__restrict__ x,
                                           const float *__restrict__ y, float hi,
                                           const float *__restrict__ gy,
                                           const float *__restrict__ save_mean,
                                           const float *__restrict__ save_invstd,
                                           float *__restrict__ gr, double *__restrict__ part)
{
    const int s = blockIdx.y, ns = gridDim.y;
    const bn_walk<V, I> w(n, c, hw, s, ns);
    const float mu = save_mean[w.ch], is = save_invstd[w.ch];
    double s1 = 0.0, s2 = 0.0;
    BN_TRIPS(w, u0)
    {
        size_t o[BN_UNROLL];
        bool ok[BN_UNROLL];
        float xv[BN_UNROLL][V], gv[BN_UNROLL][V], yv[BN_UNROLL][V], rv[BN_UNROLL][V];
        bn_trip(w, u0, o, ok);
        bn_ld_bwd<V, ACT, GR>(o, ok, x, gy, y, gr, xv, gv, yv, rv);
#pragma unroll
        for (int k = 0; k < BN_UNROLL; k++)
            if (ok[k]) {
#pragma unroll
                for (int e = 0; e < V; e++) {
                    const float g = ACT ? bn_act_grad(yv[k][e], gv[k][e], hi) : gv[k][e];
                    if (GR) rv[k][e] += g;
                    s1 += g;
                    s2 += (double)g * (double)((xv[k][e] - mu) * is);
                }
                if (GR) bn_st<V>(gr + o[k], rv[k]);
            }
    }
    s1 = sq_block_sum(s1);
    s2 = sq_block_sum(s2);
    if (threadIdx.x == 0) {
        part[((size_t)w.ch * ns + s) * 2 + 0] = s1;
        part[((size_t)w.ch * ns + s) * 2 + 1] = s2;
    }
}

/* gx += gamma invstd (g - sum_g/m - xhat sum_g_xhat/m); ggamma += sum_g_xhat; gbeta += sum_g
   (g as in the stats pass; SET: gx = ..., the "set" ops of backend.h). tot: NULL, or the sums
   over every rank (sync_bn), of mtot elements, which gx takes (ggamma and gbeta stay this
   rank's) */
template <int V, typename I, bool ACT, bool SET>
static __global__ void bn_bwd_apply_kernel(int n, int c, int hw, const float *__restrict__ x,
                                           const float *__restrict__ y, float hi,
                                           const float *__restrict__ gy,
                                           const float *__restrict__ gamma,
                                           const float *__restrict__ save_mean,
                                           const float *__restrict__ save_invstd,
                                           float *__restrict__ gx, float *ggamma, float *gbeta,
                                           const double *__restrict__ part,
                                           const double *__restrict__ tot, double mtot)
{
    const int ch = blockIdx.x, s = blockIdx.y, ns = gridDim.y;
    double m = (double)n * hw;
    double sum_gy, sum_gyx;
    bn_totals(part, ch, ns, &sum_gy, &sum_gyx);
    if (s == 0 && threadIdx.x == 0) {
        if (ggamma) ggamma[ch] += (float)sum_gyx;
        if (gbeta) gbeta[ch] += (float)sum_gy;
    }
    if (!gx) return;
    if (tot) {
        sum_gy = tot[2 * (size_t)ch];
        sum_gyx = tot[2 * (size_t)ch + 1];
        m = mtot;
    }
    const float mu = save_mean[ch], is = save_invstd[ch], g = gamma ? gamma[ch] : 1.0f;
    const float mean_gy = (float)(sum_gy / m), mean_gyx = (float)(sum_gyx / m);
    const float kk = g * is;
    const bn_walk<V, I> w(n, c, hw, s, ns);
    BN_TRIPS(w, u0)
    {
        size_t o[BN_UNROLL];
        bool ok[BN_UNROLL];
        float xv[BN_UNROLL][V], gv[BN_UNROLL][V], yv[BN_UNROLL][V], av[BN_UNROLL][V];
        bn_trip(w, u0, o, ok);
        bn_ld_bwd<V, ACT, !SET>(o, ok, x, gy, y, gx, xv, gv, yv, av);
#pragma unroll
        for (int k = 0; k < BN_UNROLL; k++)
            if (ok[k]) {
#pragma unroll
                for (int e = 0; e < V; e++) {
                    const float xhat = (xv[k][e] - mu) * is;
                    const float gval = ACT ? bn_act_grad(yv[k][e], gv[k][e], hi) : gv[k][e];
                    const float d = kk * (gval - mean_gy - xhat * mean_gyx);
                    av[k][e] = SET ? d : av[k][e] + d;
                }
                bn_st<V>(gx + o[k], av[k]);
            }
    }
}

/* The launches of one template: LAUNCH(V, I) with the unit width and index type for channels
   of m = n hw elements whose tensors are all 16-byte aligned when `aligned` (bn_walk). */
#define BN_LAUNCH_VI(hw, m, aligned, LAUNCH)                                                     \
    do {                                                                                         \
        if ((hw) % 4 == 0 && (aligned) && (m) / 4 < 0x7ffff000u) LAUNCH(4, unsigned);             \
        else if ((m) < 0x7ffff000u) LAUNCH(1, unsigned);                                         \
        else LAUNCH(1, size_t);                                                                  \
    } while (0)

/* training forward, plain (act < 0) or fused with the activation and residual r (backend.h) */
static void bn_fwd_train(int n, int c, int hw, int act, const float *x, const float *r,
                         const float *gamma, const float *beta, float *run_mean, float *run_var,
                         float momentum, float eps, float *y, float *save_mean, float *save_invstd)
{
    if (n <= 0 || c <= 0 || hw <= 0) return;
    if (!bn_channels_ok(c)) return;
    const size_t m = (size_t)n * hw;
    const bool al = sq_aligned16(x) && sq_aligned16(y) && (!r || sq_aligned16(r));
    dim3 grid((unsigned)c, (unsigned)bn_slices(m, c));
    cudaStream_t st = sq_cuda_stream();
    double *part = sq_cuda_partials();
#define BN_STATS_L(V, I) bn_stats_kernel<V, I><<<grid, SQ_CUDA_BLOCK, 0, st>>>(n, c, hw, x, part)
    BN_LAUNCH_VI(hw, m, al, BN_STATS_L);
#undef BN_STATS_L
    SQ_CUDA_LAUNCHED();
    const int world = sq_cuda_bn_sync_world();
    double *tot = world ? sq_cuda_bn_sync_totals() : NULL;
    const double mtot = (double)m * (world ? world : 1); /* every rank has the same batch */
    if (tot) bn_sync_reduce(part, c, (int)grid.y, tot);
    const float hi = act >= 0 ? bn_act_hi((sq_act_kind)act) : 0.0f;
#define BN_APPLY(V, I, A, R)                                                                     \
    bn_train_apply_kernel<V, I, A, R><<<grid, SQ_CUDA_BLOCK, 0, st>>>(                            \
        n, c, hw, x, r, hi, gamma, beta, run_mean, run_var, momentum, eps, y, save_mean,         \
        save_invstd, part, tot, mtot)
#define BN_APPLY_PLAIN(V, I) BN_APPLY(V, I, false, false)
#define BN_APPLY_ACT(V, I) BN_APPLY(V, I, true, false)
#define BN_APPLY_ACT_R(V, I) BN_APPLY(V, I, true, true)
    if (act < 0) BN_LAUNCH_VI(hw, m, al, BN_APPLY_PLAIN);
    else if (r) BN_LAUNCH_VI(hw, m, al, BN_APPLY_ACT_R);
    else BN_LAUNCH_VI(hw, m, al, BN_APPLY_ACT);
#undef BN_APPLY_PLAIN
#undef BN_APPLY_ACT
#undef BN_APPLY_ACT_R
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
    const size_t total = (size_t)n * c * hw;
    const bool vec = hw % 4 == 0 && sq_aligned16(x) && sq_aligned16(y);
    const size_t units = vec ? total / 4 : total, per_plane = vec ? (size_t)hw / 4 : (size_t)hw;
    const unsigned grid = sq_grid_ew(units);
    cudaStream_t st = sq_cuda_stream();
#define BN_EVAL(I, V)                                                                            \
    bn_eval_kernel<I, V><<<grid, SQ_CUDA_BLOCK, 0, st>>>((I)units, (I)per_plane, c, x, gamma, beta, \
                                                         run_mean, run_var, eps, y)
    if (units < 0x80000000u) { /* u + the grid's stride cannot wrap */
        if (vec) BN_EVAL(unsigned, 4);
        else BN_EVAL(unsigned, 1);
    } else {
        BN_EVAL(size_t, 1);
    }
#undef BN_EVAL
    SQ_CUDA_LAUNCHED();
}

/* backward, plain (act < 0: g = gy) or fused (g = gy act'(y); gr += g when gr != NULL); set:
   gx is written, not accumulated into */
static void bn_bwd(int n, int c, int hw, int act, const float *x, const float *y,
                   const float *gy, const float *gamma, const float *save_mean,
                   const float *save_invstd, float *gx, float *gr, float *ggamma, float *gbeta,
                   bool set)
{
    if (n <= 0 || c <= 0 || hw <= 0 || (!gx && !gr && !ggamma && !gbeta)) return;
    if (!bn_channels_ok(c)) return;
    const size_t m = (size_t)n * hw;
    const bool al = sq_aligned16(x) && sq_aligned16(gy) && (act < 0 || sq_aligned16(y)) &&
                    (!gr || sq_aligned16(gr)) && (!gx || sq_aligned16(gx));
    dim3 grid((unsigned)c, (unsigned)bn_slices(m, c));
    cudaStream_t st = sq_cuda_stream();
    double *part = sq_cuda_partials();
    const float hi = act >= 0 ? bn_act_hi((sq_act_kind)act) : 0.0f;
#define BN_STATS(V, I, A, G)                                                                     \
    bn_bwd_stats_kernel<V, I, A, G><<<grid, SQ_CUDA_BLOCK, 0, st>>>(n, c, hw, x, y, hi, gy,       \
                                                                    save_mean, save_invstd, gr, part)
#define BN_STATS_PLAIN(V, I) BN_STATS(V, I, false, false)
#define BN_STATS_ACT(V, I) BN_STATS(V, I, true, false)
#define BN_STATS_ACT_GR(V, I) BN_STATS(V, I, true, true)
    if (act < 0) BN_LAUNCH_VI(hw, m, al, BN_STATS_PLAIN);
    else if (gr) BN_LAUNCH_VI(hw, m, al, BN_STATS_ACT_GR);
    else BN_LAUNCH_VI(hw, m, al, BN_STATS_ACT);
#undef BN_STATS_PLAIN
#undef BN_STATS_ACT
#undef BN_STATS_ACT_GR
#undef BN_STATS
    SQ_CUDA_LAUNCHED();
    if (!gx && !ggamma && !gbeta) return;
    const int world = gx ? sq_cuda_bn_sync_world() : 0;
    double *tot = world ? sq_cuda_bn_sync_totals() : NULL;
    const double mtot = (double)m * (world ? world : 1);
    if (tot) bn_sync_reduce(part, c, (int)grid.y, tot);
#define BN_BAPPLY(V, I, A, SET)                                                                  \
    bn_bwd_apply_kernel<V, I, A, SET><<<grid, SQ_CUDA_BLOCK, 0, st>>>(                            \
        n, c, hw, x, y, hi, gy, gamma, save_mean, save_invstd, gx, ggamma, gbeta, part, tot, mtot)
#define BN_BAPPLY_PLAIN(V, I) BN_BAPPLY(V, I, false, false)
#define BN_BAPPLY_ACT(V, I) BN_BAPPLY(V, I, true, false)
#define BN_BAPPLY_PLAIN_SET(V, I) BN_BAPPLY(V, I, false, true)
#define BN_BAPPLY_ACT_SET(V, I) BN_BAPPLY(V, I, true, true)
    if (act < 0) {
        if (set && gx) BN_LAUNCH_VI(hw, m, al, BN_BAPPLY_PLAIN_SET);
        else BN_LAUNCH_VI(hw, m, al, BN_BAPPLY_PLAIN);
    } else {
        if (set && gx) BN_LAUNCH_VI(hw, m, al, BN_BAPPLY_ACT_SET);
        else BN_LAUNCH_VI(hw, m, al, BN_BAPPLY_ACT);
    }
#undef BN_BAPPLY_PLAIN
#undef BN_BAPPLY_ACT
#undef BN_BAPPLY_PLAIN_SET
#undef BN_BAPPLY_ACT_SET
#undef BN_BAPPLY
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_bn_bwd(int n, int c, int hw, const float *x, const float *gy,
                               const float *gamma, const float *save_mean,
                               const float *save_invstd, float *gx, float *ggamma, float *gbeta)
{
    bn_bwd(n, c, hw, -1, x, NULL, gy, gamma, save_mean, save_invstd, gx, NULL, ggamma, gbeta, false);
}

extern "C" void sq_cuda_bn_bwd_set(int n, int c, int hw, const float *x, const float *gy,
                                   const float *gamma, const float *save_mean,
                                   const float *save_invstd, float *gx, float *ggamma,
                                   float *gbeta)
{
    bn_bwd(n, c, hw, -1, x, NULL, gy, gamma, save_mean, save_invstd, gx, NULL, ggamma, gbeta, true);
}

extern "C" void sq_cuda_bn_act_bwd(int n, int c, int hw, sq_act_kind act, const float *x,
                                   const float *y, const float *gy, const float *gamma,
                                   const float *save_mean, const float *save_invstd, float *gx,
                                   float *ggamma, float *gbeta)
{
    if (!bn_act_ok(act)) return;
    bn_bwd(n, c, hw, (int)act, x, y, gy, gamma, save_mean, save_invstd, gx, NULL, ggamma, gbeta,
           false);
}

extern "C" void sq_cuda_bn_act_bwd_set(int n, int c, int hw, sq_act_kind act, const float *x,
                                       const float *y, const float *gy, const float *gamma,
                                       const float *save_mean, const float *save_invstd,
                                       float *gx, float *ggamma, float *gbeta)
{
    if (!bn_act_ok(act)) return;
    bn_bwd(n, c, hw, (int)act, x, y, gy, gamma, save_mean, save_invstd, gx, NULL, ggamma, gbeta,
           true);
}

extern "C" void sq_cuda_bn_add_act_bwd(int n, int c, int hw, sq_act_kind act, const float *x,
                                       const float *y, const float *gy, const float *gamma,
                                       const float *save_mean, const float *save_invstd,
                                       float *gx, float *gr, float *ggamma, float *gbeta)
{
    if (!bn_act_ok(act)) return;
    bn_bwd(n, c, hw, (int)act, x, y, gy, gamma, save_mean, save_invstd, gx, gr, ggamma, gbeta,
           false);
}

extern "C" void sq_cuda_bn_add_act_bwd_set(int n, int c, int hw, sq_act_kind act, const float *x,
                                           const float *y, const float *gy, const float *gamma,
                                           const float *save_mean, const float *save_invstd,
                                           float *gx, float *gr, float *ggamma, float *gbeta)
{
    if (!bn_act_ok(act)) return;
    bn_bwd(n, c, hw, (int)act, x, y, gy, gamma, save_mean, save_invstd, gx, gr, ggamma, gbeta,
           true);
}
