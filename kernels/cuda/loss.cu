/* loss.cu: losses over logits (N, K) and row argmax, same semantics as kernels/cpu/loss.c.

   Each loss is ONE launch: one warp per row (grid-stride over rows). Pass 1 over the row keeps an
   online (max, sum of exp) per lane for every distribution it needs, merged across the warp;
   pass 2 writes the logit gradient (OVERWRITTEN, as the op table requires) and accumulates the
   row's loss term in double. Row terms are summed per block in warp order, then across blocks by
   the last block to finish (sq_grid_reduce_last): the batch-reduced loss lands in *loss without
   float atomics, identical from run to run. The grid depends on N only.

   KL (method.md section 2): P_T = softmax(z_T/T), log P_S = log_softmax(z_S/T),
   L = alpha T^2 / N sum P_T (log P_T - log P_S) (terms with P_T = 0 add 0),
   dL/dz_S = alpha T / N (P_S - P_T).
   CE: L = mean over N of (logsumexp(z) - z[label]); labels outside [0, K) add 0 and get a zero
   gradient (the mean still divides by N); glogits = scale (softmax - onehot) / N; the loss is not
   multiplied by scale. */
#include <limits.h>
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

static __global__ void kl_kernel(int n, int k, const float *__restrict__ zt,
                                 const float *__restrict__ zs, float inv_t, float gscale,
                                 double lscale, float *loss, float *__restrict__ gzs,
                                 double *partials, unsigned *counter)
{
    int lane = threadIdx.x & 31;
    int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int nwarps = (gridDim.x * blockDim.x) >> 5;
    double acc = 0.0;
    for (int r = warp; r < n; r += nwarps) {
        const float *a = zt + (size_t)r * k, *b = zs + (size_t)r * k;
        online_lse ot = {-INFINITY, 0.0f}, os = {-INFINITY, 0.0f};
        for (int j = lane; j < k; j += 32) {
            ol_add(ot, a[j] * inv_t);
            ol_add(os, b[j] * inv_t);
        }
        float lt = ol_warp_lse(ot), ls = ol_warp_lse(os);
        for (int j = lane; j < k; j += 32) {
            float log_pt = a[j] * inv_t - lt, log_ps = b[j] * inv_t - ls;
            float pt = expf(log_pt);
            if (pt > 0.0f) acc += (double)pt * (double)(log_pt - log_ps);
            if (gzs) gzs[(size_t)r * k + j] = gscale * (expf(log_ps) - pt);
        }
    }
    if (!loss) return;
    double total;
    if (loss_reduce(acc, partials, counter, &total)) *loss = (float)(total * lscale);
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

static unsigned loss_grid(int n)
{
    unsigned g = (unsigned)((n + LOSS_WARPS - 1) / LOSS_WARPS);
    if (g > SQ_CUDA_MAX_BLOCKS) g = SQ_CUDA_MAX_BLOCKS;
    return g ? g : 1u;
}

extern "C" void sq_cuda_kl_fwd_bwd(int n, int k, const float *zt, const float *zs, float T,
                                   float alpha, float *loss, float *gzs)
{
    if (n <= 0 || k <= 0 || (!loss && !gzs)) return;
    float gscale = (float)((double)alpha * T / n);
    double lscale = (double)alpha * T * T / n;
    kl_kernel<<<loss_grid(n), SQ_CUDA_BLOCK>>>(n, k, zt, zs, (float)(1.0 / T), gscale, lscale,
                                               loss, gzs, sq_cuda_partials(), sq_cuda_counter());
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_softmax_ce(int n, int k, const float *logits, const int32_t *labels,
                                   float scale, float *loss, float *glogits)
{
    if (n <= 0 || k <= 0 || (!loss && !glogits)) return;
    float gscale = (float)((double)scale / n);
    ce_kernel<<<loss_grid(n), SQ_CUDA_BLOCK>>>(n, k, logits, labels, gscale, loss, glogits,
                                               sq_cuda_partials(), sq_cuda_counter());
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_argmax(int n, int k, const float *z, int32_t *out)
{
    if (n <= 0 || k <= 0) return;
    argmax_kernel<<<loss_grid(n), SQ_CUDA_BLOCK>>>(n, k, z, out);
    SQ_CUDA_LAUNCHED();
}
