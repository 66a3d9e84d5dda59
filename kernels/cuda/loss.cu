/* loss.cu: losses over logits (N, K) and row argmax, same semantics as kernels/cpu/loss.c.

   Each loss is ONE launch. KL with K <= 16 classes: kl_tile_kernel (a thread per row, tiles
   staged through shared memory); 16 < K <= 1024 (SQ_KL_ROWS_MAX_K): kl_rows_kernel (a row in
   registers); beyond: kl_wide_kernel (a warp per row, three passes). All three share the
   per-element math below (2 exps per element, the loss summed in float along a row and in double
   across rows). CE: one
   warp per row; pass 1 keeps an online (max, sum of exp) per lane, merged across the warp; pass 2
   writes the logit gradient and accumulates the row's loss term in double. Gradients are
   OVERWRITTEN, as the op table requires. Row terms are summed per block in warp order, then
   across blocks by the last block to finish (sq_grid_reduce_last): the batch-reduced loss lands
   in *loss without float atomics, identical from run to run. The grid depends on N only.

   KL (method.md section 2): P_T = softmax(z_T/T), log P_S = log_softmax(z_S/T),
   L = alpha T^2 / N sum P_T (log P_T - log P_S) (terms with P_T = 0 add 0),
   dL/dz_S = alpha T / N (P_S - P_T).
   CE: L = mean over N of (logsumexp(z) - z[label]); labels outside [0, K) add 0 and get a zero
   gradient (the mean still divides by N); glogits = scale (softmax - onehot) / N; the loss is not
   multiplied by scale. */
#include <float.h>
#include <limits.h>
#include <stdlib.h>
#include "cuda_common.cuh"

#define LOSS_WARPS (SQ_CUDA_BLOCK / 32)

struct online_lse {
    float m, s; /* running max and sum of exp(v - m) */
};

static __device__ __forceinline__ void ol_add(online_lse &a, float v)
{
    if (v > a.m) {
        a.s = (a.m == -INFINITY ? 0.0f : a.s * expf(a.m - v)) + 1.0f;
        a.m = v;
    } else if (v != -INFINITY) {
        a.s += expf(v - a.m);
    }
}

/* warp-merge of the lanes' (m, s); result (log-sum-exp) in every lane */
static __device__ __forceinline__ float ol_warp_lse(online_lse a)
{
    for (int o = 16; o > 0; o >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, a.m, o);
        float s2 = __shfl_xor_sync(0xffffffffu, a.s, o);
        float m = m2 > a.m ? m2 : a.m;
        if (m == -INFINITY) continue;
        a.s = (a.m == -INFINITY ? 0.0f : a.s * expf(a.m - m)) +
              (m2 == -INFINITY ? 0.0f : s2 * expf(m2 - m));
        a.m = m;
    }
    return a.m == -INFINITY ? -INFINITY : a.m + logf(a.s);
}

/* block sum (fixed tree) then grid sum (last block, block order) of every thread's value;
   returns true in thread 0 of the last block, with the total. Every thread must call it. */
static __device__ bool loss_reduce(double v, double *partials, unsigned *counter, double *total)
{
    double mine[1] = {sq_block_sum(v)};
    double tot[1] = {0.0};
    bool last = sq_grid_reduce_last<1>(mine, tot, partials, counter);
    *total = tot[0];
    return last && threadIdx.x == 0;
}

static __global__ void ce_kernel(int n, int k, const float *__restrict__ z,
                                 const int32_t *__restrict__ labels, float gscale, float *loss,
                                 float *__restrict__ g, double *partials, unsigned *counter)
{
    int lane = threadIdx.x & 31;
    int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int nwarps = (gridDim.x * blockDim.x) >> 5;
    double acc = 0.0;
    for (int r = warp; r < n; r += nwarps) {
        const float *zr = z + (size_t)r * k;
        int lab = labels[r];
        bool valid = lab >= 0 && lab < k;
        online_lse o = {-INFINITY, 0.0f};
        for (int j = lane; j < k; j += 32) ol_add(o, zr[j]);
        float lse = ol_warp_lse(o);
        if (valid && lane == 0) acc += (double)lse - (double)zr[lab];
        if (!g) continue;
        for (int j = lane; j < k; j += 32)
            g[(size_t)r * k + j] = valid ? gscale * (expf(zr[j] - lse) - (j == lab ? 1.0f : 0.0f))
                                         : 0.0f;
    }
    if (!loss) return;
    double total;
    if (loss_reduce(acc, partials, counter, &total)) *loss = (float)(total / (double)n);
}

/* first index of the row maximum (ties: lowest index); a NaN in column 0 gives 0 and other NaNs
   are ignored, as the CPU's sequential scan does; an all -inf row gives 0 */
static __global__ void argmax_kernel(int n, int k, const float *__restrict__ z,
                                     int32_t *__restrict__ out)
{
    int lane = threadIdx.x & 31;
    int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int nwarps = (gridDim.x * blockDim.x) >> 5;
    for (int r = warp; r < n; r += nwarps) {
        const float *zr = z + (size_t)r * k;
        float best = -INFINITY;
        int bi = INT_MAX;
        for (int j = lane; j < k; j += 32) {
            float v = zr[j];
            if (v > best) {
                best = v;
                bi = j;
            }
        }
        for (int o = 16; o > 0; o >>= 1) {
            float v2 = __shfl_xor_sync(0xffffffffu, best, o);
            int i2 = __shfl_xor_sync(0xffffffffu, bi, o);
            if (v2 > best || (v2 == best && i2 < bi)) {
                best = v2;
                bi = i2;
            }
        }
        if (lane == 0) out[r] = (isnan(zr[0]) || bi == INT_MAX) ? 0 : bi;
    }
}

/* a warp per row: the blocks n rows need, capped by the launch geometry (cuda_common.cuh) */
static unsigned loss_grid(int n)
{
    return sq_grid_streaming(((size_t)n + LOSS_WARPS - 1) / LOSS_WARPS, true);
}

/* ---- KL: the per-element and per-row math shared by the three KL kernels ----

   With raw logits x = z_T and y = z_S of a row, their maxima mt, ms and c2 = log2(e) / T:
     et = 2^((x - mt) c2), es = 2^((y - ms) c2)       (2 exps per element; et, es <= 1)
     st = sum et, ss = sum es                         (st, ss >= 1 when the maxima are finite)
     P_T = et / st, P_S = es / ss,
     log P_T - log P_S = (x - y) / T + crow,  crow = (ms - mt) / T + log(ss / st),
   so the row's loss term sum P_T (log P_T - log P_S) = sed / (T st) + crow with
   sed = sum of et (x - y) (terms with P_T = 0 add 0, as on the CPU), and the
   gradient is gscale (P_S - P_T) = es (gscale / ss) - et (gscale / st). Per element this is 2
   MUFU.EX2 and about 10 FP32 instructions; the loss is summed in float along a row (at most 16
   elements per thread) and in double across rows (docs/gpu-validation.md, "KL kernels after
   run 3"). */

struct kl_consts {
    float inv_t, c2, gscale; /* 1/T, log2(e)/T, alpha T / N */
};

/* 2^x with ex2.approx.ftz (relative error about 2^-22); results below 2^-126 flush to 0, and a
   softmax term that small adds nothing to a float sum that holds a 1 */
static __device__ __forceinline__ float kl_exp2(float x)
{
#ifdef __CUDA_ARCH__
    float r;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
    return r;
#else
    return exp2f(x);
#endif
}

/* one element: x, y (raw logits) become et, es; the row's sums grow */
static __device__ __forceinline__ void kl_elem(float &x, float &y, float mt, float ms, float c2,
                                               float &st, float &ss, float &sed)
{
    const float et = kl_exp2((x - mt) * c2), es = kl_exp2((y - ms) * c2);
    st += et;
    ss += es;
    /* et (x - y) with x - y clamped to finite: a teacher logit of -inf has et = 0 and adds 0
       (not 0 x -inf = NaN), as on the CPU, without a compare and select */
    sed = fmaf(et, fmaxf(x - y, -FLT_MAX), sed);
    x = et;
    y = es;
}

/* the row's constants once its maxima and full sums are known. The loss term of a thread that
   holds part of the row is fmaf(its sed, tscale, crow) with crow added by one thread of the row
   only. A row whose teacher logits are all -inf (st is NaN) adds 0, as on the CPU. */
struct kl_row {
    float gt, gs, tscale, crow;
};

static __device__ __forceinline__ kl_row kl_row_finish(float mt, float ms, float st, float ss,
                                                       const kl_consts &c)
{
    /* correctly rounded reciprocals (once per row): with MUFU.RCP's approximation instead, its
       error reaches the loss of rows that cancel (student = teacher + c) as alpha T^2 x 1e-7,
       which an almost-zero loss cannot absorb (measured under cuemu with the error planted) */
    const float rst = 1.0f / st, rss = 1.0f / ss;
    const bool ok = st > 0.5f; /* st >= 1 up to the exps' error; NaN fails */
    kl_row r;
    r.gt = c.gscale * rst;
    r.gs = c.gscale * rss;
    r.tscale = ok ? c.inv_t * rst : 0.0f;
    r.crow = ok ? (ms - mt) * c.inv_t + logf(ss * rst) : 0.0f;
    return r;
}

/* gradient of one element from its et, es */
static __device__ __forceinline__ float kl_grad(float et, float es, const kl_row &r)
{
    return fmaf(es, r.gs, -et * r.gt);
}

/* KL for K <= 16 classes (K = 10: CIFAR-10, MNIST): a block takes tiles of KL_TILE_ROWS rows.
   The tile's K x rows floats of each input are contiguous in memory: the block loads them with
   coalesced loads into shared memory (row stride K | 1 words: odd, so the per-row reads below
   are free of bank conflicts), one thread then takes one whole row into registers (max, exps and
   sums, loss term, gradient; no shuffles), writes the gradient row over its student row in shared
   memory, and the block stores the tile's gradient with coalesced stores. Partial tiles at the
   end are masked; the grid depends on n only. */
#define KL_TILE_ROWS SQ_CUDA_BLOCK

/* shared-memory index of flat tile element f (row f / K, column f % K) with row stride K | 1 */
template <int K> static __device__ __forceinline__ int kl_tile_sidx(int f)
{
    return (K & 1) ? f : f + (int)((unsigned)f / K);
}

/* a tile's K x KL_TILE_ROWS floats of each input into shared memory: thread `to` takes flat
   elements to + i KL_TILE_ROWS, i < K (pa, pb point at element `to`). Every load is issued
   before the first store to shared memory, so the K loads of each input are in flight
   together; FULL tiles have no bounds test at all (the loads of a partial tile past `lim` are
   skipped). */
template <int K, bool FULL>
static __device__ __forceinline__ void kl_tile_load(const float *pa, const float *pb, int to,
                                                    int lim, float *sa, float *sb)
{
    float va[K], vb[K];
#pragma unroll
    for (int i = 0; i < K; i++) {
        const bool ok = FULL || i * KL_TILE_ROWS + to < lim;
        va[i] = ok ? __ldcs(pa + i * KL_TILE_ROWS) : 0.0f;
        vb[i] = ok ? __ldcs(pb + i * KL_TILE_ROWS) : 0.0f;
    }
#pragma unroll
    for (int i = 0; i < K; i++) {
        const int f = i * KL_TILE_ROWS + to;
        if (FULL || f < lim) {
            sa[kl_tile_sidx<K>(f)] = va[i];
            sb[kl_tile_sidx<K>(f)] = vb[i];
        }
    }
}

/* the tile's gradient from shared memory to global memory (pg points at flat element `to`),
   every shared-memory read before the first store */
template <int K, bool FULL>
static __device__ __forceinline__ void kl_tile_store(float *pg, int to, int lim, const float *sb)
{
    float v[K];
#pragma unroll
    for (int i = 0; i < K; i++) v[i] = sb[kl_tile_sidx<K>(i * KL_TILE_ROWS + to)];
#pragma unroll
    for (int i = 0; i < K; i++)
        if (FULL || i * KL_TILE_ROWS + to < lim) __stcs(pg + i * KL_TILE_ROWS, v[i]);
}

/* blocks per SM for the register budget: 64 registers up to K = 11, 80 to 13, 128 beyond
   (none of them spills; sm_90 SASS) */
template <int K>
static __global__ void __launch_bounds__(SQ_CUDA_BLOCK, K <= 11 ? 4 : K <= 13 ? 3 : 2)
    kl_tile_kernel(int n, const float *__restrict__ zt, const float *__restrict__ zs, kl_consts c,
                   double lscale, float *loss, float *__restrict__ gzs, double *partials,
                   unsigned *counter)
{
    constexpr int KP = K | 1;
    __shared__ float sa[KL_TILE_ROWS * KP], sb[KL_TILE_ROWS * KP];
    const int t = threadIdx.x;
    const long ntiles = ((long)n + KL_TILE_ROWS - 1) / KL_TILE_ROWS;
    double acc = 0.0;
    for (long tile = blockIdx.x; tile < ntiles; tile += gridDim.x) {
        const long r0 = tile * KL_TILE_ROWS;
        const int rows = (int)((long)n - r0 < KL_TILE_ROWS ? (long)n - r0 : KL_TILE_ROWS);
        const float *a = zt + r0 * K, *b = zs + r0 * K;
        __syncthreads(); /* the previous tile's gradient has been stored */
        /* t, opaque to the compiler: otherwise it hoists the K shared-memory indices out of the
           tile loop and runs out of registers (K = 10 spilled with 80) */
        int to = t;
        asm volatile("" : "+r"(to));
        if (rows == KL_TILE_ROWS)
            kl_tile_load<K, true>(a + to, b + to, to, 0, sa, sb);
        else
            kl_tile_load<K, false>(a + to, b + to, to, rows * K, sa, sb);
        __syncthreads();
        if (t < rows) {
            float x[K], y[K];
            float mt = -INFINITY, ms = -INFINITY;
#pragma unroll
            for (int j = 0; j < K; j++) {
                x[j] = sa[t * KP + j];
                y[j] = sb[t * KP + j];
                mt = fmaxf(mt, x[j]);
                ms = fmaxf(ms, y[j]);
            }
            float st = 0.0f, ss = 0.0f, sed = 0.0f;
#pragma unroll
            for (int j = 0; j < K; j++) kl_elem(x[j], y[j], mt, ms, c.c2, st, ss, sed);
            const kl_row r = kl_row_finish(mt, ms, st, ss, c);
            acc += (double)fmaf(sed, r.tscale, r.crow);
#pragma unroll
            for (int j = 0; j < K; j++) sb[t * KP + j] = kl_grad(x[j], y[j], r);
        }
        if (!gzs) continue;
        __syncthreads();
        if (rows == KL_TILE_ROWS)
            kl_tile_store<K, true>(gzs + r0 * K + to, to, 0, sb);
        else
            kl_tile_store<K, false>(gzs + r0 * K + to, to, rows * K, sb);
    }
    if (!loss) return;
    double total;
    if (loss_reduce(acc, partials, counter, &total)) *loss = (float)(total * lscale);
}

/* KL for 16 < K <= SQ_KL_ROWS_MAX_K classes (K = 100), after PyTorch's persistent softmax: ELEMS = 2^LOG2E
   >= K; a group of WIDTH = ELEMS / KL_ROW_VALS lanes owns a row and keeps it in registers
   (ITERS = KL_ROW_VALS values of each distribution per lane), so the row is read from memory
   once; a warp holds 32 / WIDTH groups and takes BATCH x 32 / WIDTH consecutive rows per trip
   (load bi of the warp covers rows bi * 32 / WIDTH + group, adjacent in memory), every load of
   the trip issued before any arithmetic. Per row: maxima, then exps and sums (group shuffles of
   WIDTH lanes), then the loss term and gradient. The trip count is uniform across a warp (rows
   past n are masked), so every shuffle has all 32 lanes (docs/gpu-validation.md, runs 1 - 3).
   KL_ROW_VALS: values per lane; with more of them the shuffles and the row's constants are
   shared by more values (sm_90 SASS counts: docs/gpu-validation.md, "KL kernels after run 3").
   64 registers, no spills. */
#define KL_ROW_VALS 16

static __host__ __device__ constexpr int kl_rows_width(int log2e)
{
    return (1 << log2e) / KL_ROW_VALS < 1 ? 1
                                          : ((1 << log2e) / KL_ROW_VALS > 32 ? 32 : (1 << log2e) / KL_ROW_VALS);
}

/* rows per group per trip: two when a lane holds few values */
static __host__ __device__ constexpr int kl_rows_batch(int log2e)
{
    return (1 << log2e) / kl_rows_width(log2e) <= 4 ? 2 : 1;
}

/* K up to which rows stay in registers (kl_rows_kernel); beyond, kl_wide_kernel. 1024 by
   default: K = 1000 takes 32 values per lane, 128 registers, 2 blocks per SM
   (docs/gpu-validation.md, run 4). -DSQ_KL_ROWS_MAX_K=512 builds the old split (K <= 512 in
   registers). */
#ifndef SQ_KL_ROWS_MAX_K
#define SQ_KL_ROWS_MAX_K 1024
#endif

template <int LOG2E>
static __global__ void __launch_bounds__(SQ_CUDA_BLOCK, (1 << LOG2E) / kl_rows_width(LOG2E) > 16 ? 2 : 4)
    kl_rows_kernel(int n, int k, const float *__restrict__ zt, const float *__restrict__ zs,
                   kl_consts c, double lscale, float *loss, float *__restrict__ gzs,
                   double *partials, unsigned *counter)
{
    constexpr int ELEMS = 1 << LOG2E;
    constexpr int WIDTH = kl_rows_width(LOG2E);
    constexpr int ITERS = ELEMS / WIDTH;
    constexpr int BATCH = kl_rows_batch(LOG2E);
    constexpr int ROWS_PER_WARP = (32 / WIDTH) * BATCH;
    const int lane = threadIdx.x & 31, sub = lane / WIDTH, gl = lane % WIDTH;
    const long warp = ((long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const long nwarps = ((long)gridDim.x * blockDim.x) >> 5;
    double acc = 0.0;
    for (long base = warp * ROWS_PER_WARP; base < n; base += nwarps * ROWS_PER_WARP) {
        float a[BATCH][ITERS], b[BATCH][ITERS];
#pragma unroll
        for (int bi = 0; bi < BATCH; bi++) {
            const long row = base + (long)bi * (32 / WIDTH) + sub;
            const long off = row * k + gl; /* element (row, gl); + it * WIDTH below */
#pragma unroll
            for (int it = 0; it < ITERS; it++) {
                const bool ok = row < n && it * WIDTH + gl < k;
                a[bi][it] = ok ? __ldcs(zt + off + it * WIDTH) : -INFINITY;
                b[bi][it] = ok ? __ldcs(zs + off + it * WIDTH) : -INFINITY;
            }
        }
#pragma unroll
        for (int bi = 0; bi < BATCH; bi++) {
            const long row = base + (long)bi * (32 / WIDTH) + sub;
            float mt = -INFINITY, ms = -INFINITY;
#pragma unroll
            for (int it = 0; it < ITERS; it++) {
                mt = fmaxf(mt, a[bi][it]);
                ms = fmaxf(ms, b[bi][it]);
            }
#pragma unroll
            for (int o = WIDTH / 2; o > 0; o >>= 1) {
                mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, o));
                ms = fmaxf(ms, __shfl_xor_sync(0xffffffffu, ms, o));
            }
            float st = 0.0f, ss = 0.0f, sed = 0.0f;
#pragma unroll
            for (int it = 0; it < ITERS; it++) kl_elem(a[bi][it], b[bi][it], mt, ms, c.c2, st, ss, sed);
#pragma unroll
            for (int o = WIDTH / 2; o > 0; o >>= 1) {
                st += __shfl_xor_sync(0xffffffffu, st, o);
                ss += __shfl_xor_sync(0xffffffffu, ss, o);
            }
            const kl_row r = kl_row_finish(mt, ms, st, ss, c);
            if (row >= n) continue;
            acc += (double)fmaf(sed, r.tscale, gl == 0 ? r.crow : 0.0f);
            if (!gzs) continue;
            float *g = gzs + row * k + gl;
#pragma unroll
            for (int it = 0; it < ITERS; it++)
                if (it * WIDTH + gl < k) __stcs(g + it * WIDTH, kl_grad(a[bi][it], b[bi][it], r));
        }
    }
    if (!loss) return;
    double total;
    if (loss_reduce(acc, partials, counter, &total)) *loss = (float)(total * lscale);
}

/* KL for K > SQ_KL_ROWS_MAX_K classes (K = 1000: ImageNet-sized heads): a warp per row in three
   passes over the row (maxima; exps, sums and the loss sum; exps again and the gradient), each
   lane taking
   KLW_UNROLL elements j, j + 32, ... per trip with every load of the trip issued first. The
   first pass reads memory; the row (8 KiB at K = 1000 for both inputs) is then re-read from
   L1/L2. Few registers, so the SM is full of warps (docs/gpu-validation.md, runs 2 and 3). */
#define KLW_UNROLL 4

/* the KLW_UNROLL elements j0, j0 + 32, ... of both rows; -inf past the end (et = es = 0) */
static __device__ __forceinline__ void klw_load(const float *a, const float *b, int j0, int k,
                                                float (&va)[KLW_UNROLL], float (&vb)[KLW_UNROLL])
{
    const float *pa = a + j0, *pb = b + j0; /* one address per trip; constant offsets below */
#pragma unroll
    for (int u = 0; u < KLW_UNROLL; u++) {
        const bool ok = j0 + 32 * u < k;
        va[u] = ok ? __ldg(pa + 32 * u) : -INFINITY;
        vb[u] = ok ? __ldg(pb + 32 * u) : -INFINITY;
    }
}

static __global__ void __launch_bounds__(SQ_CUDA_BLOCK)
    kl_wide_kernel(int n, int k, const float *__restrict__ zt, const float *__restrict__ zs,
                   kl_consts c, double lscale, float *loss, float *__restrict__ gzs,
                   double *partials, unsigned *counter)
{
    const int lane = threadIdx.x & 31;
    const long warp = ((long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const long nwarps = ((long)gridDim.x * blockDim.x) >> 5;
    double acc = 0.0;
    for (long r = warp; r < n; r += nwarps) {
        const float *a = zt + r * k, *b = zs + r * k;
        float mt = -INFINITY, ms = -INFINITY;
        for (int j0 = lane; j0 < k; j0 += 32 * KLW_UNROLL) {
            float va[KLW_UNROLL], vb[KLW_UNROLL];
            klw_load(a, b, j0, k, va, vb);
#pragma unroll
            for (int u = 0; u < KLW_UNROLL; u++) {
                mt = fmaxf(mt, va[u]);
                ms = fmaxf(ms, vb[u]);
            }
        }
        for (int o = 16; o > 0; o >>= 1) {
            mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, o));
            ms = fmaxf(ms, __shfl_xor_sync(0xffffffffu, ms, o));
        }
        float st = 0.0f, ss = 0.0f, sed = 0.0f;
        for (int j0 = lane; j0 < k; j0 += 32 * KLW_UNROLL) {
            float va[KLW_UNROLL], vb[KLW_UNROLL];
            klw_load(a, b, j0, k, va, vb);
#pragma unroll
            for (int u = 0; u < KLW_UNROLL; u++) kl_elem(va[u], vb[u], mt, ms, c.c2, st, ss, sed);
        }
        for (int o = 16; o > 0; o >>= 1) {
            st += __shfl_xor_sync(0xffffffffu, st, o);
            ss += __shfl_xor_sync(0xffffffffu, ss, o);
        }
        const kl_row rw = kl_row_finish(mt, ms, st, ss, c);
        acc += (double)fmaf(sed, rw.tscale, lane == 0 ? rw.crow : 0.0f);
        if (!gzs) continue;
        for (int j0 = lane; j0 < k; j0 += 32 * KLW_UNROLL) {
            float va[KLW_UNROLL], vb[KLW_UNROLL];
            klw_load(a, b, j0, k, va, vb);
#pragma unroll
            for (int u = 0; u < KLW_UNROLL; u++) {
                const int j = j0 + 32 * u;
                if (j >= k) break;
                const float et = kl_exp2((va[u] - mt) * c.c2), es = kl_exp2((vb[u] - ms) * c.c2);
                __stcs(gzs + r * k + j, kl_grad(et, es, rw));
            }
        }
    }
    if (!loss) return;
    double total;
    if (loss_reduce(acc, partials, counter, &total)) *loss = (float)(total * lscale);
}

template <int K>
static void kl_tile_launch(int n, const float *zt, const float *zs, kl_consts c, double lscale,
                           float *loss, float *gzs)
{
    unsigned grid = sq_grid_streaming(((size_t)n + KL_TILE_ROWS - 1) / KL_TILE_ROWS, true);
    kl_tile_kernel<K><<<grid, SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, zt, zs, c, lscale, loss, gzs, sq_cuda_partials(),
                                               sq_cuda_counter());
}

template <int LOG2E>
static void kl_rows_launch(int n, int k, const float *zt, const float *zs, kl_consts c,
                           double lscale, float *loss, float *gzs)
{
    constexpr int ROWS_PER_BLOCK = (SQ_CUDA_BLOCK / 32) * (32 / kl_rows_width(LOG2E)) * kl_rows_batch(LOG2E);
    unsigned grid = sq_grid_streaming(((size_t)n + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK, true);
    kl_rows_kernel<LOG2E><<<grid, SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, k, zt, zs, c, lscale, loss, gzs,
                                                   sq_cuda_partials(), sq_cuda_counter());
}

extern "C" void sq_cuda_kl_fwd_bwd(int n, int k, const float *zt, const float *zs, float T,
                                   float alpha, float *loss, float *gzs)
{
    if (n <= 0 || k <= 0 || (!loss && !gzs)) return;
    kl_consts c;
    c.inv_t = (float)(1.0 / T);
    c.c2 = (float)(1.4426950408889634 / T);
    c.gscale = (float)((double)alpha * T / n);
    const double lscale = (double)alpha * T * T / n;
    switch (k) {
#define KL_TILE_CASE(K) \
    case K: kl_tile_launch<K>(n, zt, zs, c, lscale, loss, gzs); break;
        KL_TILE_CASE(1) KL_TILE_CASE(2) KL_TILE_CASE(3) KL_TILE_CASE(4) KL_TILE_CASE(5)
        KL_TILE_CASE(6) KL_TILE_CASE(7) KL_TILE_CASE(8) KL_TILE_CASE(9) KL_TILE_CASE(10)
        KL_TILE_CASE(11) KL_TILE_CASE(12) KL_TILE_CASE(13) KL_TILE_CASE(14) KL_TILE_CASE(15)
        KL_TILE_CASE(16)
#undef KL_TILE_CASE
    default:
        if (k <= 32) kl_rows_launch<5>(n, k, zt, zs, c, lscale, loss, gzs);
        else if (k <= 64) kl_rows_launch<6>(n, k, zt, zs, c, lscale, loss, gzs);
        else if (k <= 128) kl_rows_launch<7>(n, k, zt, zs, c, lscale, loss, gzs);
        else if (k <= 256) kl_rows_launch<8>(n, k, zt, zs, c, lscale, loss, gzs);
        else if (k <= 512) kl_rows_launch<9>(n, k, zt, zs, c, lscale, loss, gzs);
#if SQ_KL_ROWS_MAX_K >= 1024
        else if (k <= 1024) kl_rows_launch<10>(n, k, zt, zs, c, lscale, loss, gzs);
#endif
        else /* a warp per row, three passes */
            kl_wide_kernel<<<loss_grid(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, k, zt, zs, c, lscale, loss, gzs,
                                                            sq_cuda_partials(), sq_cuda_counter());
    }
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_softmax_ce(int n, int k, const float *logits, const int32_t *labels,
                                   float scale, float *loss, float *glogits)
{
    if (n <= 0 || k <= 0 || (!loss && !glogits)) return;
    float gscale = (float)((double)scale / n);
    ce_kernel<<<loss_grid(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, k, logits, labels, gscale, loss, glogits,
                                               sq_cuda_partials(), sq_cuda_counter());
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_argmax(int n, int k, const float *z, int32_t *out)
{
    if (n <= 0 || k <= 0) return;
    argmax_kernel<<<loss_grid(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, k, z, out);
    SQ_CUDA_LAUNCHED();
}
