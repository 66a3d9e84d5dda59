/* fakequant.cu: fused fake quantization for every quantizer kind and role, and the EWGS output
   scale y = |s| z. The per-element math is NOT here: every kernel calls the shared functions of
   sqakd/quant_math.h (sq_qm_fwd / sq_qm_bwd with a context built by sq_qm_ctx_init), so the CPU
   and CUDA backends compute one formula from one source.

   Kernels are templated on the quantizer op: the context's op field is overwritten with the
   compile-time constant, so the dispatcher's switch folds away inside the loop.
   - forward: one pass, reads x once, writes y once (float4 when x and y are 16-byte aligned).
     DoReFa weights (and PACT weights, which are DoReFa) need M = max|tanh(w)| first: one extra
     reduction pass over w, result stored in scratch[0] (or an internal slot when scratch is NULL)
     and read by the quantizing pass on the device (no host round trip).
   - backward: one pass reading x and gy, accumulating gx, and reducing the quantizer-parameter
     gradients in the same pass: per-thread double sums, block tree, then the last block to
     finish adds the block partials in block order and does gqp += total (no float atomics;
     bit-identical run to run on a device; the grid depends on n and the device only,
     fq_grid_bwd_reduce).
   - scaled (backend.h fakequant_scaled_fwd / _bwd, a layer's EWGS output scale s folded into its
     weight): the forward also writes ys = |s| y; the backward reads gys and y, writes
     gy = |s| gys, and reduces sign(s) sum(gys y) as a third column beside the parameters'
     gradients. Two launches per scaled weight instead of four (absscale_* below).
   Rounding: correctly rounded division on both sides (the CPU's IEEE division; on the device
   sq_qm_div, a multiplication by the per-thread reciprocal of the tensor's divisor and one FMA
   correction, which gives the same quotient) and rintf make forward levels identical to the
   CPU's except DoReFa weights (device tanhf may differ from glibc's by an ulp, which can move an
   element sitting exactly on a rounding boundary by one level); nvcc's FMA contraction changes
   the backward's last bits. */
#include "cuda_common.cuh"
#include "sqakd/quant_math.h"

static __device__ float g_fq_maxabs_slot; /* M when the caller passes scratch = NULL */

static float *fq_internal_slot(void)
{
    static float *p;
    if (!p) CUDA_CHECK(cudaGetSymbolAddress((void **)&p, g_fq_maxabs_slot));
    return p;
}

/* loads qp and M into a private copy of the context, with op fixed to OP */
template <int OP>
static __device__ __forceinline__ sq_qm_ctx fq_ctx(const sq_qm_ctx &in, const float *qp,
                                                   const float *maxabs)
{
    sq_qm_ctx k = in;
    k.op = OP;
    int np = sq_qm_nparams(&k);
    sq_qm_ctx_load(&k, np > 0 ? qp[0] : 0.0f, np > 1 ? qp[1] : 0.0f,
                   sq_qm_needs_maxabs(&k) ? *maxabs : 0.0f);
    return k;
}

/* Streaming loop shape shared by the forward and backward: each thread takes FQ_UNROLL float4
   slots per trip, i, i + stride, ..., issues every load of the trip before any arithmetic (so
   FQ_UNROLL independent 16-byte loads per operand are in flight per thread), then computes and
   stores. Loads and stores carry the evict-first hint (__ldcs / __stcs): the data is touched
   once (docs/gpu-validation.md, kernel bandwidth of runs 2 and 3). */
#define FQ_UNROLL 4

/* the float4 slots i, i + stride, ... of one trip that lie below n4; STREAM: evict-first loads
   (data read once), else cached ones (max|tanh| of DoReFa weights: the quantizing pass re-reads
   them, from L2 when the tensor fits) */
template <bool STREAM>
static __device__ __forceinline__ void fq_load_trip(const float4 *p, size_t i, size_t stride,
                                                    size_t n4, float4 (&v)[FQ_UNROLL])
{
#pragma unroll
    for (int u = 0; u < FQ_UNROLL; u++)
        if (i + u * stride < n4) v[u] = STREAM ? __ldcs(p + i + u * stride) : __ldg(p + i + u * stride);
}

/* SCALED: also ys = |s[0]| y (backend.h fakequant_scaled_fwd: a layer's EWGS output scale folded
   into its weight), the product absscale_fwd_kernel forms */
template <int OP, bool SCALED>
static __global__ void fq_fwd_kernel(sq_qm_ctx ctx, size_t n, const float *x, const float *qp,
                                     const float *maxabs, float *y, bool vec, const float *s,
                                     float *ys)
{
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    const size_t t0 = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const size_t n4 = vec ? n / 4 : 0;
    const float4 *x4 = (const float4 *)x;
    float4 *y4 = (float4 *)y;
    /* the first trip's loads go out before the context's: its parameter loads and reciprocal
       would otherwise hold them back, for the whole of a thread's work on the flat grid */
    float4 v[FQ_UNROLL];
    fq_load_trip<true>(x4, t0, stride, n4, v);
    const sq_qm_ctx k = fq_ctx<OP>(ctx, qp, maxabs);
    const float a = SCALED ? fabsf(s[0]) : 0.0f;
    for (size_t i = t0; i < n4; i += FQ_UNROLL * stride) {
        if (i != t0) fq_load_trip<true>(x4, i, stride, n4, v);
#pragma unroll
        for (int u = 0; u < FQ_UNROLL; u++) {
            if (i + u * stride >= n4) break;
            v[u].x = sq_qm_fwd(&k, v[u].x);
            v[u].y = sq_qm_fwd(&k, v[u].y);
            v[u].z = sq_qm_fwd(&k, v[u].z);
            v[u].w = sq_qm_fwd(&k, v[u].w);
            __stcs(y4 + i + u * stride, v[u]);
            if (SCALED)
                __stcs((float4 *)ys + i + u * stride,
                       make_float4(a * v[u].x, a * v[u].y, a * v[u].z, a * v[u].w));
        }
    }
    for (size_t i = n4 * 4 + t0; i < n; i += stride) {
        const float r = sq_qm_fwd(&k, x[i]);
        y[i] = r;
        if (SCALED) ys[i] = a * r;
    }
}

/* M = max over the tensor of |tanh(x)|, written to *out by the last block (max is exact: the
   result does not depend on the order) */
static __device__ __forceinline__ float fq_absmax_tanh(float m, float v)
{
    float t = fabsf(tanhf(v));
    return t > m ? t : m;
}

static __global__ void fq_maxabs_kernel(size_t n, const float *__restrict__ x, float *out,
                                        bool vec, double *partials, unsigned *counter)
{
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    const size_t t0 = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    float m = 0.0f;
    size_t start = 0;
    if (vec) {
        const size_t n4 = n / 4;
        const float4 *x4 = (const float4 *)x;
        for (size_t i = t0; i < n4; i += FQ_UNROLL * stride) {
            float4 v[FQ_UNROLL];
            fq_load_trip<false>(x4, i, stride, n4, v);
#pragma unroll
            for (int u = 0; u < FQ_UNROLL; u++) {
                if (i + u * stride >= n4) break;
                m = fq_absmax_tanh(m, v[u].x);
                m = fq_absmax_tanh(m, v[u].y);
                m = fq_absmax_tanh(m, v[u].z);
                m = fq_absmax_tanh(m, v[u].w);
            }
        }
        start = n4 * 4;
    }
    for (size_t i = start + t0; i < n; i += stride) m = fq_absmax_tanh(m, x[i]);
    double mine[1] = {(double)sq_block_max(m)};
    double tot[1] = {0.0};
    if (sq_grid_reduce_last<1, true>(mine, tot, partials, counter) && threadIdx.x == 0)
        *out = (float)tot[0];
}

/* TWO: the op has a second parameter (EWGS's u); otherwise gp1 is always 0 and s1 is not summed
   (a double add of +0 per element that the compiler may not drop: -0 + +0 is +0) */
template <bool TWO>
static __device__ __forceinline__ void fq_bwd_one(const sq_qm_ctx &k, float x, float gy, float *gx,
                                                  double &s0, double &s1)
{
    sq_qm_grad g = sq_qm_bwd(&k, x, gy);
    if (gx) *gx += g.gx;
    s0 += (double)g.gp0;
    if (TWO) s1 += (double)g.gp1;
}

/* the scaled backward's extra operands (backend.h fakequant_scaled_bwd): the output scale s,
   the forward's y, the gradient gys of ys = |s| y; it writes gy = |s| gys and adds
   sign(s) sum(gys y) to gs */
struct fq_scaled {
    const float *s, *y, *gys;
    float *gy, *gs;
};

/* SCALED: the gradient of y is |s| gys (written to sc.gy, as absscale_bwd_kernel's gz += |s| gy
   into a zeroed buffer) and the output scale's gradient is reduced beside the parameters' */
template <bool SCALED>
static __device__ __forceinline__ float fq_scaled_gy(float a, float g, float yv, float *gyo,
                                                     double &ss)
{
    if (!SCALED) return g;
    const float gv = a * g;
    *gyo = gv;
    ss += (double)g * (double)yv;
    return gv;
}

/* REDUCE: the parameter gradients are wanted (gqp != NULL and the op has parameters, or SCALED).
   Same loop shape as the forward; every thread adds its elements in a fixed order and the grid
   depends on n and the device only, so the parameter gradients are identical from run to run.
   SCALED: gy is
   sc.gys, see fq_scaled. */
template <int OP, bool REDUCE, bool SCALED>
static __global__ void fq_bwd_kernel(sq_qm_ctx ctx, size_t n, const float *__restrict__ x,
                                     const float *qp, const float *maxabs,
                                     const float *__restrict__ gy, float *__restrict__ gx,
                                     float *gqp, bool vec, double *partials, unsigned *counter,
                                     fq_scaled sc)
{
    constexpr bool TWO = OP == SQ_QM_EWGS_W || OP == SQ_QM_EWGS_A;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    const size_t t0 = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    double s0 = 0.0, s1 = 0.0, ss = 0.0;
    if (SCALED) gy = sc.gys;
    const size_t n4 = vec ? n / 4 : 0;
    const float4 *x4 = (const float4 *)x, *g4 = (const float4 *)gy;
    float4 *gx4 = (float4 *)gx;
    float4 xv[FQ_UNROLL], gv[FQ_UNROLL], acc[FQ_UNROLL], yv[FQ_UNROLL], go[FQ_UNROLL];
    /* the operands of a trip; the first trip's go out before the context's loads (see
       fq_fwd_kernel) */
    auto load = [&](size_t i) {
#pragma unroll
        for (int u = 0; u < FQ_UNROLL; u++) {
            if (i + u * stride >= n4) break;
            xv[u] = __ldcs(x4 + i + u * stride);
            gv[u] = __ldcs(g4 + i + u * stride);
            acc[u] = gx ? __ldcs(gx4 + i + u * stride) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (SCALED) yv[u] = __ldcs((const float4 *)sc.y + i + u * stride);
        }
    };
    load(t0);
    const sq_qm_ctx k = fq_ctx<OP>(ctx, qp, maxabs);
    const float a = SCALED ? fabsf(sc.s[0]) : 0.0f;
    for (size_t i = t0; i < n4; i += FQ_UNROLL * stride) {
        if (i != t0) load(i);
#pragma unroll
        for (int u = 0; u < FQ_UNROLL; u++) {
            if (i + u * stride >= n4) break;
            if (SCALED) {
                gv[u].x = fq_scaled_gy<true>(a, gv[u].x, yv[u].x, &go[u].x, ss);
                gv[u].y = fq_scaled_gy<true>(a, gv[u].y, yv[u].y, &go[u].y, ss);
                gv[u].z = fq_scaled_gy<true>(a, gv[u].z, yv[u].z, &go[u].z, ss);
                gv[u].w = fq_scaled_gy<true>(a, gv[u].w, yv[u].w, &go[u].w, ss);
                __stcs((float4 *)sc.gy + i + u * stride, go[u]);
            }
            fq_bwd_one<TWO>(k, xv[u].x, gv[u].x, &acc[u].x, s0, s1);
            fq_bwd_one<TWO>(k, xv[u].y, gv[u].y, &acc[u].y, s0, s1);
            fq_bwd_one<TWO>(k, xv[u].z, gv[u].z, &acc[u].z, s0, s1);
            fq_bwd_one<TWO>(k, xv[u].w, gv[u].w, &acc[u].w, s0, s1);
            if (gx) __stcs(gx4 + i + u * stride, acc[u]);
        }
    }
    const size_t start = n4 * 4;
    for (size_t i = start + t0; i < n; i += stride) {
        const float g = fq_scaled_gy<SCALED>(a, gy[i], SCALED ? sc.y[i] : 0.0f,
                                             SCALED ? sc.gy + i : NULL, ss);
        fq_bwd_one<TWO>(k, x[i], g, gx ? gx + i : NULL, s0, s1);
    }
    if (!REDUCE) return;
    constexpr int W = SCALED ? 3 : 2;
    double mine[W], tot[W];
    mine[0] = sq_block_sum(s0);
    mine[1] = TWO ? sq_block_sum(s1) : 0.0;
    if (SCALED) mine[W - 1] = sq_block_sum(ss);
    if (sq_grid_reduce_last<W>(mine, tot, partials, counter) && threadIdx.x == 0) {
        if (gqp && sq_qm_nparams(&k) > 0) gqp[0] += (float)tot[0];
        if (gqp && sq_qm_nparams(&k) > 1) gqp[1] += (float)tot[1];
        if (SCALED && sc.gs) {
            const float sv = sc.s[0];
            const float sg = sv > 0.0f ? 1.0f : (sv < 0.0f ? -1.0f : 0.0f);
            sc.gs[0] += sg * (float)tot[W - 1];
        }
    }
}

static __global__ void absscale_fwd_kernel(size_t n, const float *s, const float *__restrict__ z,
                                           float *__restrict__ y)
{
    float a = fabsf(s[0]);
    SQ_GRID_LOOP(i, n) y[i] = a * z[i];
}

static __global__ void absscale_bwd_kernel(size_t n, const float *s, const float *__restrict__ z,
                                           const float *__restrict__ gy, float *__restrict__ gz,
                                           float *gs, double *partials, unsigned *counter)
{
    float sv = s[0], a = fabsf(sv);
    double acc = 0.0;
    SQ_GRID_LOOP(i, n)
    {
        if (gz) gz[i] += a * gy[i];
        acc += (double)gy[i] * (double)z[i];
    }
    if (!gs) return;
    double mine[1] = {sq_block_sum(acc)};
    double tot[1] = {0.0};
    if (sq_grid_reduce_last<1>(mine, tot, partials, counter) && threadIdx.x == 0) {
        float sg = sv > 0.0f ? 1.0f : (sv < 0.0f ? -1.0f : 0.0f);
        gs[0] += sg * (float)tot[0];
    }
}

/* Launch geometry (cuda_common.cuh): elementwise launches take one trip of FQ_UNROLL float4 per
   thread, FQ_PER_BLOCK elements per block, like PyTorch's vectorized elementwise kernels, so
   that no last partial wave is left (docs/gpu-validation.md, run 4). */
#define FQ_PER_BLOCK ((size_t)SQ_CUDA_BLOCK * 4 * FQ_UNROLL)

/* blocks of an elementwise (non-reducing) launch over n elements */
static unsigned fq_grid_ew(size_t n, bool vec)
{
    const size_t items = vec ? (n + 4 * FQ_UNROLL - 1) / (4 * FQ_UNROLL) : n;
    return sq_grid_streaming((items + SQ_CUDA_BLOCK - 1) / SQ_CUDA_BLOCK, false);
}

/* blocks of a reducing launch over n elements (max|tanh|): depends on n (and the device) only */
static unsigned fq_grid_reduce(size_t n)
{
    return sq_grid_streaming((n + FQ_PER_BLOCK - 1) / FQ_PER_BLOCK, true);
}

/* launches the fused forward for a compile-time op (SCALED: also ys = |s| y) */
template <int OP, bool SCALED>
static void fq_fwd_launch(const sq_qm_ctx &k, size_t n, const float *x, const float *qp,
                          const float *maxabs, float *y, const float *s, float *ys)
{
    bool vec = sq_aligned16(x) && sq_aligned16(y) && (!SCALED || sq_aligned16(ys));
    fq_fwd_kernel<OP, SCALED><<<fq_grid_ew(n, vec), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(k, n, x, qp, maxabs, y, vec, s, ys);
    SQ_CUDA_LAUNCHED();
}

/* blocks of the backward's reducing launch (the parameter gradients): one wave of resident
   blocks, SMs x the kernel's blocks per SM, each looping over its share (sq_grid_wave;
   docs/gpu-validation.md, run 5). The grid depends on n and the device only, so the sums are
   deterministic on a device. */
template <int OP, bool SCALED>
static int fq_bwd_blocks_per_sm()
{
    int b = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, fq_bwd_kernel<OP, true, SCALED>,
                                                      SQ_CUDA_BLOCK, 0) != cudaSuccess) {
        (void)cudaGetLastError();
        b = 0;
    }
    return b > 0 ? b : 1;
}

template <int OP, bool SCALED>
static unsigned fq_grid_bwd_reduce(size_t n)
{
    static const int per_sm = fq_bwd_blocks_per_sm<OP, SCALED>();
    return sq_grid_wave((n + FQ_PER_BLOCK - 1) / FQ_PER_BLOCK, per_sm);
}

template <int OP, bool SCALED>
static void fq_bwd_launch(const sq_qm_ctx &k, size_t n, const float *x, const float *qp,
                          const float *maxabs, const float *gy, float *gx, float *gqp,
                          const fq_scaled &sc)
{
    bool vec = sq_aligned16(x) && (SCALED ? sq_aligned16(sc.gys) && sq_aligned16(sc.y) &&
                                                sq_aligned16(sc.gy)
                                          : sq_aligned16(gy)) &&
               (!gx || sq_aligned16(gx));
    bool reduce = SCALED || (gqp && sq_qm_nparams(&k) > 0);
    double *part = sq_cuda_partials();
    unsigned *cnt = sq_cuda_counter();
    if (reduce)
        fq_bwd_kernel<OP, true, SCALED><<<fq_grid_bwd_reduce<OP, SCALED>(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(
            k, n, x, qp, maxabs, gy, gx, gqp, vec, part, cnt, sc);
    else
        fq_bwd_kernel<OP, false, SCALED><<<fq_grid_ew(n, vec), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(
            k, n, x, qp, maxabs, gy, gx, gqp, vec, part, cnt, sc);
    SQ_CUDA_LAUNCHED();
}

static void fq_maxabs(size_t n, const float *x, float *out)
{
    fq_maxabs_kernel<<<fq_grid_reduce(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, x, out, sq_aligned16(x),
                                                              sq_cuda_partials(), sq_cuda_counter());
    SQ_CUDA_LAUNCHED();
}

/* ---- per-channel weights (quant.h: cfg->channels = C > 1) ----
   One block per output channel (a grid-stride loop over channels beyond the grid): the block
   loads its channel's parameters (qp[j C + c]), for DoReFa / PACT weights first reduces its
   channel's M = max|tanh(w)| (kept in scratch[c SQ_QUANT_SCRATCH] for the backward), then walks
   the channel's elements. The backward sums each channel's parameter gradients in the block
   (per-thread double sums, the fixed block tree) and thread 0 adds them to gqp[j C + c]: no
   cross-block reduction, no atomics, the same sums run to run. The scaled variants run the
   unfused pair around these. */
template <int OP>
static __device__ __forceinline__ sq_qm_ctx fq_pc_ctx(const sq_qm_ctx &in, int C, int c, const float *qp,
                                                      float m)
{
    sq_qm_ctx k = in;
    k.op = OP;
    const int np = sq_qm_nparams(&k);
    sq_qm_ctx_load(&k, np > 0 ? qp[c] : 0.0f, np > 1 ? qp[C + c] : 0.0f, m);
    return k;
}

/* the channel's M = max|tanh(x)| over [0, blk), in every thread */
static __device__ float fq_pc_maxabs(const float *x, size_t blk)
{
    __shared__ float m_all;
    float m = 0.0f;
    for (size_t i = threadIdx.x; i < blk; i += blockDim.x) m = fq_absmax_tanh(m, x[i]);
    m = sq_block_max(m);
    if (threadIdx.x == 0) m_all = m;
    __syncthreads();
    m = m_all;
    __syncthreads();
    return m;
}

template <int OP>
static __global__ void fq_pc_fwd_kernel(sq_qm_ctx ctx, int C, size_t blk, const float *__restrict__ x,
                                        const float *qp, float *__restrict__ y, float *scratch)
{
    for (int c = blockIdx.x; c < C; c += gridDim.x) {
        const size_t o = (size_t)c * blk;
        float m = 0.0f;
        if (OP == SQ_QM_DOREFA_W) {
            m = fq_pc_maxabs(x + o, blk);
            if (scratch && threadIdx.x == 0) scratch[(size_t)c * SQ_QUANT_SCRATCH] = m;
        }
        const sq_qm_ctx k = fq_pc_ctx<OP>(ctx, C, c, qp, m);
        for (size_t i = threadIdx.x; i < blk; i += blockDim.x) y[o + i] = sq_qm_fwd(&k, x[o + i]);
    }
}

template <int OP>
static __global__ void fq_pc_bwd_kernel(sq_qm_ctx ctx, int C, size_t blk, const float *__restrict__ x,
                                        const float *qp, const float *__restrict__ gy,
                                        float *__restrict__ gx, float *gqp, const float *scratch)
{
    constexpr bool TWO = OP == SQ_QM_EWGS_W || OP == SQ_QM_EWGS_A;
    for (int c = blockIdx.x; c < C; c += gridDim.x) {
        const size_t o = (size_t)c * blk;
        float m = 0.0f;
        if (OP == SQ_QM_DOREFA_W) m = scratch ? scratch[(size_t)c * SQ_QUANT_SCRATCH] : fq_pc_maxabs(x + o, blk);
        const sq_qm_ctx k = fq_pc_ctx<OP>(ctx, C, c, qp, m);
        double s0 = 0.0, s1 = 0.0;
        for (size_t i = threadIdx.x; i < blk; i += blockDim.x)
            fq_bwd_one<TWO>(k, x[o + i], gy[o + i], gx ? gx + o + i : NULL, s0, s1);
        if (!gqp || sq_qm_nparams(&k) == 0) continue;
        const double t0 = sq_block_sum(s0);
        const double t1 = TWO ? sq_block_sum(s1) : 0.0;
        if (threadIdx.x == 0) {
            gqp[c] += (float)t0;
            if (TWO) gqp[C + c] += (float)t1;
        }
    }
}

static unsigned fq_pc_grid(int C) { return (unsigned)(C < 65535 ? C : 65535); }

template <int OP>
static void fq_pc_launch(const sq_qm_ctx &k, int C, size_t blk, const float *x, const float *qp, float *y,
                         float *scratch, const float *gy, float *gx, float *gqp, bool bwd)
{
    if (bwd)
        fq_pc_bwd_kernel<OP><<<fq_pc_grid(C), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(k, C, blk, x, qp, gy, gx, gqp,
                                                                                 scratch);
    else
        fq_pc_fwd_kernel<OP><<<fq_pc_grid(C), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(k, C, blk, x, qp, y, scratch);
    SQ_CUDA_LAUNCHED();
}

/* the per-channel forward (bwd = false: x -> y, scratch) or backward (gx, gqp accumulate) */
static void fq_pc(const sq_quant_cfg *cfg, size_t n, const float *x, const float *qp, float *y, float *scratch,
                  const float *gy, float *gx, float *gqp, bool bwd)
{
    const int C = cfg->channels;
    const size_t blk = n / (size_t)C;
    sq_qm_ctx k;
    sq_qm_ctx_init(&k, cfg, blk);
    if (bwd && !gx && !(gqp && sq_qm_nparams(&k) > 0)) return;
    switch (k.op) {
    case SQ_QM_EWGS_W: fq_pc_launch<SQ_QM_EWGS_W>(k, C, blk, x, qp, y, scratch, gy, gx, gqp, bwd); break;
    case SQ_QM_LSQ: fq_pc_launch<SQ_QM_LSQ>(k, C, blk, x, qp, y, scratch, gy, gx, gqp, bwd); break;
    case SQ_QM_DOREFA_W: fq_pc_launch<SQ_QM_DOREFA_W>(k, C, blk, x, qp, y, scratch, gy, gx, gqp, bwd); break;
    default: SQ_CUDA_BUG("per-channel quantization of an op without weights");
    }
}

static bool fq_is_pc(const sq_quant_cfg *cfg) { return cfg->channels > 1 && cfg->kind != SQ_QUANT_NONE; }

/* the forward (SCALED: and ys = |s| y); false when the op is the identity, which the caller
   handles */
template <bool SCALED>
static bool fq_fwd(const sq_quant_cfg *cfg, size_t n, const float *x, const float *qp, float *y,
                   float *scratch, const float *s, float *ys)
{
    sq_qm_ctx k;
    sq_qm_ctx_init(&k, cfg, n);
    if (k.op == SQ_QM_IDENTITY) return false;
    const float *m = NULL;
    if (sq_qm_needs_maxabs(&k)) {
        float *slot = scratch ? scratch : fq_internal_slot();
        if (!slot) return true;
        fq_maxabs(n, x, slot);
        m = slot;
    }
    switch (k.op) {
    case SQ_QM_EWGS_W: fq_fwd_launch<SQ_QM_EWGS_W, SCALED>(k, n, x, qp, m, y, s, ys); break;
    case SQ_QM_EWGS_A: fq_fwd_launch<SQ_QM_EWGS_A, SCALED>(k, n, x, qp, m, y, s, ys); break;
    case SQ_QM_PACT_A: fq_fwd_launch<SQ_QM_PACT_A, SCALED>(k, n, x, qp, m, y, s, ys); break;
    case SQ_QM_LSQ: fq_fwd_launch<SQ_QM_LSQ, SCALED>(k, n, x, qp, m, y, s, ys); break;
    case SQ_QM_DOREFA_W: fq_fwd_launch<SQ_QM_DOREFA_W, SCALED>(k, n, x, qp, m, y, s, ys); break;
    case SQ_QM_DOREFA_A: fq_fwd_launch<SQ_QM_DOREFA_A, SCALED>(k, n, x, qp, m, y, s, ys); break;
    default: SQ_CUDA_BUG("sq_qm_ctx_init returned an unknown op");
    }
    return true;
}

extern "C" void sq_cuda_fakequant_fwd(const sq_quant_cfg *cfg, size_t n, const float *x,
                                      const float *qp, float *y, float *scratch)
{
    if (!n) return;
    if (fq_is_pc(cfg)) {
        fq_pc(cfg, n, x, qp, y, scratch, NULL, NULL, NULL, false);
        return;
    }
    if (!fq_fwd<false>(cfg, n, x, qp, y, scratch, NULL, NULL) && y != x)
        CUDA_CHECK(cudaMemcpyAsync(y, x, n * sizeof(float), cudaMemcpyDeviceToDevice, sq_cuda_stream()));
}

extern "C" void sq_cuda_fakequant_scaled_fwd(const sq_quant_cfg *cfg, size_t n, const float *x,
                                             const float *qp, const float *s, float *y, float *ys,
                                             float *scratch)
{
    if (!n) return;
    if (!fq_is_pc(cfg) && fq_fwd<true>(cfg, n, x, qp, y, scratch, s, ys)) return;
    sq_cuda_fakequant_fwd(cfg, n, x, qp, y, scratch); /* identity, per channel: the unfused pair */
    sq_cuda_absscale_fwd(n, s, y, ys);
}

/* the backward (SCALED: from sc.gys, see fq_scaled); false when the op is the identity */
template <bool SCALED>
static bool fq_bwd(const sq_quant_cfg *cfg, size_t n, const float *x, const float *qp,
                   const float *gy, float *gx, float *gqp, float *scratch, const fq_scaled &sc)
{
    sq_qm_ctx k;
    sq_qm_ctx_init(&k, cfg, n);
    if (k.op == SQ_QM_IDENTITY) return false;
    if (!SCALED && !gx && !(gqp && sq_qm_nparams(&k) > 0)) return true;
    const float *m = NULL;
    if (sq_qm_needs_maxabs(&k)) {
        if (scratch) {
            m = scratch;
        } else {
            float *slot = fq_internal_slot();
            if (!slot) return true;
            fq_maxabs(n, x, slot);
            m = slot;
        }
    }
    switch (k.op) {
    case SQ_QM_EWGS_W: fq_bwd_launch<SQ_QM_EWGS_W, SCALED>(k, n, x, qp, m, gy, gx, gqp, sc); break;
    case SQ_QM_EWGS_A: fq_bwd_launch<SQ_QM_EWGS_A, SCALED>(k, n, x, qp, m, gy, gx, gqp, sc); break;
    case SQ_QM_PACT_A: fq_bwd_launch<SQ_QM_PACT_A, SCALED>(k, n, x, qp, m, gy, gx, gqp, sc); break;
    case SQ_QM_LSQ: fq_bwd_launch<SQ_QM_LSQ, SCALED>(k, n, x, qp, m, gy, gx, gqp, sc); break;
    case SQ_QM_DOREFA_W: fq_bwd_launch<SQ_QM_DOREFA_W, SCALED>(k, n, x, qp, m, gy, gx, gqp, sc); break;
    case SQ_QM_DOREFA_A: fq_bwd_launch<SQ_QM_DOREFA_A, SCALED>(k, n, x, qp, m, gy, gx, gqp, sc); break;
    default: SQ_CUDA_BUG("sq_qm_ctx_init returned an unknown op");
    }
    return true;
}

extern "C" void sq_cuda_fakequant_bwd(const sq_quant_cfg *cfg, size_t n, const float *x,
                                      const float *qp, const float *gy, float *gx, float *gqp,
                                      float *scratch)
{
    if (!n) return;
    if (fq_is_pc(cfg)) {
        fq_pc(cfg, n, x, qp, NULL, scratch, gy, gx, gqp, true);
        return;
    }
    const fq_scaled none = {NULL, NULL, NULL, NULL, NULL};
    if (!fq_bwd<false>(cfg, n, x, qp, gy, gx, gqp, scratch, none) && gx) sq_cuda_axpy(n, 1.0f, gy, gx);
}

extern "C" void sq_cuda_fakequant_scaled_bwd(const sq_quant_cfg *cfg, size_t n, const float *x,
                                             const float *qp, const float *s, const float *y,
                                             const float *gys, float *gy, float *gx, float *gqp,
                                             float *gs, float *scratch)
{
    if (!n) return;
    const fq_scaled sc = {s, y, gys, gy, gs};
    if (!fq_is_pc(cfg) && fq_bwd<true>(cfg, n, x, qp, NULL, gx, gqp, scratch, sc)) return;
    /* the identity or per-channel weights: the unfused pair (gy is written: zero it first) */
    CUDA_CHECK(cudaMemsetAsync(gy, 0, n * sizeof(float), sq_cuda_stream()));
    sq_cuda_absscale_bwd(n, s, y, gys, gy, gs);
    sq_cuda_fakequant_bwd(cfg, n, x, qp, gy, gx, gqp, scratch);
}

extern "C" void sq_cuda_absscale_fwd(size_t n, const float *s, const float *z, float *y)
{
    if (!n) return;
    absscale_fwd_kernel<<<sq_grid_ew(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, s, z, y);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_absscale_bwd(size_t n, const float *s, const float *z, const float *gy,
                                     float *gz, float *gs)
{
    if (!n || (!gz && !gs)) return;
    unsigned grid = gs ? sq_grid_reduce(n, 8) : sq_grid_ew(n);
    absscale_bwd_kernel<<<grid, SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, s, z, gy, gz, gs, sq_cuda_partials(),
                                                 sq_cuda_counter());
    SQ_CUDA_LAUNCHED();
}

static __global__ void div_check_kernel(size_t n, const float *x, const float *d, float *out)
{
    SQ_GRID_LOOP(i, n) out[i] = sq_qm_div(x[i], d[i], 1.0f / d[i]);
}

extern "C" void sq_cuda_div_check(size_t n, const float *x, const float *d, float *out)
{
    if (!n) return;
    div_check_kernel<<<sq_grid_ew(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, x, d, out);
    SQ_CUDA_LAUNCHED();
}
