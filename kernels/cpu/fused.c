/* fused.c: the CPU backend's optional fused ops (backend.h): BatchNorm (training) + activation
   and residual add + activation, forward and backward. Each saves a full pass over the tensor
   and the intermediate buffer; the arithmetic is that of bn.c and act.c in the same order, so
   results equal the unfused pair's. */
#include "cpu_ops.h"
#include <stdlib.h>
#include <math.h>

static int par_ok(int n, int c, int hw) { return (size_t)n * c * hw >= SQ_CPU_PAR_MIN && c > 1; }

/* act(v): ReLU or ReLU6, branch-free so loops vectorise */
static inline float act_apply(float v, float hi)
{
    v = v > 0.0f ? v : 0.0f;
    return v < hi ? v : hi;
}

/* act'(y) from the activation's output: y > 0 and y < hi (ReLU6's output is 6 exactly when its
   input is >= 6, where PyTorch's gradient is 0; for ReLU hi is +inf) */
static inline float act_grad(float y, float gy, float hi) { return y > 0.0f && y < hi ? gy : 0.0f; }

static float act_hi(sq_act_kind act) { return act == SQ_ACT_RELU6 ? 6.0f : INFINITY; }

/* The training-mode BN passes below walk x in memory order: planes (image, channel) in
   contiguous runs of about 16384 floats per scheduled chunk (sq_cpu_plane_run), so each thread
   streams through whole images instead of hopping between one channel's planes a channel-stride
   apart (that pattern left the prefetchers retraining at every plane: 10 - 18 GB/s against
   32 GB/s for a plain triad, docs/results.md). The arithmetic is the per-channel loop's: each
   plane's sums in float (the same vector loop), the planes of a channel added up in double in
   image order, so results do not depend on the thread count or schedule. */

/* mean (c), biased variance (c) and count of the batch, laid out as sync_stats' result so that
   bn_channel_train reads either: plane sums shifted by the channel's first element */
static double *batch_stats(int n, int c, int hw, const float *x)
{
    const long np = (long)n * c;
    float *ps = sq_xmalloc(sizeof(float) * 2 * (size_t)np);
    double *st = sq_xmalloc(sizeof(double) * (2 * (size_t)c + 1));
#pragma omp parallel for schedule(dynamic, sq_cpu_plane_run(hw)) if (par_ok(n, c, hw))
    for (long q = 0; q < np; q++) {
        const float shift = x[(size_t)(q % c) * hw];
        const float *p = x + (size_t)q * hw;
        float a = 0.0f, b = 0.0f;
#pragma omp simd reduction(+ : a, b)
        for (int j = 0; j < hw; j++) {
            float d = p[j] - shift;
            a += d;
            b += d * d;
        }
        ps[2 * q] = a;
        ps[2 * q + 1] = b;
    }
    const double cnt = (double)n * hw;
    for (int ch = 0; ch < c; ch++) {
        double s1 = 0.0, s2 = 0.0;
        for (int i = 0; i < n; i++) {
            s1 += ps[2 * ((size_t)i * c + ch)];
            s2 += ps[2 * ((size_t)i * c + ch) + 1];
        }
        const double dmean = s1 / cnt, v = s2 / cnt - dmean * dmean;
        st[ch] = x[(size_t)ch * hw] + dmean;
        st[c + ch] = v < 0.0 ? 0.0 : v;
    }
    st[2 * c] = cnt;
    free(ps);
    return st;
}

/* y = [act](BN_train(x) [+ r]), act_on 0: plain BN (r must be NULL) */
void sq_cpu_bn_train_fwd_any(int n, int c, int hw, int act_on, float hi, const float *x,
                             const float *r, const float *gamma, const float *beta,
                             float *run_mean, float *run_var, float momentum, float eps, float *y,
                             float *save_mean, float *save_invstd)
{
    double *gs = sq_cpu_bn_sync_stats(n, c, hw, x);
    double *st = gs ? gs : batch_stats(n, c, hw, x);
    float *ab = sq_xmalloc(sizeof(float) * 2 * (size_t)c);
    for (int ch = 0; ch < c; ch++)
        sq_cpu_bn_channel_train(c, ch, gamma, beta, run_mean, run_var, momentum, eps,
                                save_mean, save_invstd, &ab[ch], &ab[c + ch], st);
    free(st);
    const long np = (long)n * c;
#pragma omp parallel for schedule(dynamic, sq_cpu_plane_run(hw)) if (par_ok(n, c, hw))
    for (long q = 0; q < np; q++) {
        const int ch = (int)(q % c);
        const float a = ab[ch], b = ab[c + ch];
        const size_t off = (size_t)q * hw;
        const float *p = x + off;
        float *o = y + off;
        if (!act_on) {
#pragma omp simd
            for (int j = 0; j < hw; j++) o[j] = p[j] * a + b;
        } else if (r) {
            const float *rp = r + off;
#pragma omp simd
            for (int j = 0; j < hw; j++) {
                const float t = p[j] * a + b;
                o[j] = act_apply(t + rp[j], hi);
            }
        } else {
#pragma omp simd
            for (int j = 0; j < hw; j++) o[j] = act_apply(p[j] * a + b, hi);
        }
    }
    free(ab);
}

/* y = act(BN_train(x) [+ r]): the BN (r NULL) or a residual block's last BN, the add and the
   activation after it */
void sq_cpu_bn_add_act_fwd_train(int n, int c, int hw, sq_act_kind act, const float *x,
                                 const float *r, const float *gamma, const float *beta,
                                 float *run_mean, float *run_var, float momentum, float eps,
                                 float *y, float *save_mean, float *save_invstd)
{
    sq_cpu_bn_train_fwd_any(n, c, hw, 1, act_hi(act), x, r, gamma, beta, run_mean, run_var,
                            momentum, eps, y, save_mean, save_invstd);
}

void sq_cpu_bn_act_fwd_train(int n, int c, int hw, sq_act_kind act, const float *x,
                             const float *gamma, const float *beta, float *run_mean,
                             float *run_var, float momentum, float eps, float *y,
                             float *save_mean, float *save_invstd)
{
    sq_cpu_bn_add_act_fwd_train(n, c, hw, act, x, NULL, gamma, beta, run_mean, run_var, momentum,
                                eps, y, save_mean, save_invstd);
}

/* backward of [act](BN_train(x) [+ r]): g = gy act'(y) (y NULL: g = gy, plain BN); gr += g (gr
   NULL: none); then BN's backward with g: two passes in memory order, the plane sums of g and
   g (x - mean) between them */
void sq_cpu_bn_train_bwd_any(int n, int c, int hw, float hi, const float *x, const float *y,
                             const float *gy, const float *gamma, const float *save_mean,
                             const float *save_invstd, float *gx, float *gr, float *ggamma,
                             float *gbeta)
{
    double *gs = sq_cpu_bn_sync_grad(n, c, hw, x, y, hi, gy, save_mean);
    const double cnt = gs ? gs[2 * c] : (double)n * hw;
    const long np = (long)n * c;
    float *ps = sq_xmalloc(sizeof(float) * 2 * (size_t)np);
    float *co = sq_xmalloc(sizeof(float) * 3 * (size_t)c); /* gmean, proj, wi per channel */
#pragma omp parallel for schedule(dynamic, sq_cpu_plane_run(hw)) if (par_ok(n, c, hw))
    for (long q = 0; q < np; q++) {
        const float mean = save_mean[q % c];
        const size_t off = (size_t)q * hw;
        const float *p = x + off, *g = gy + off;
        float a = 0.0f, b = 0.0f;
        if (!y) {
#pragma omp simd reduction(+ : a, b)
            for (int j = 0; j < hw; j++) {
                a += g[j];
                b += g[j] * (p[j] - mean);
            }
        } else if (gr) {
            const float *yp = y + off;
            float *rq = gr + off;
#pragma omp simd reduction(+ : a, b)
            for (int j = 0; j < hw; j++) {
                const float gj = act_grad(yp[j], g[j], hi);
                rq[j] += gj;
                a += gj;
                b += gj * (p[j] - mean);
            }
        } else {
            const float *yp = y + off;
#pragma omp simd reduction(+ : a, b)
            for (int j = 0; j < hw; j++) {
                const float gj = act_grad(yp[j], g[j], hi);
                a += gj;
                b += gj * (p[j] - mean);
            }
        }
        ps[2 * q] = a;
        ps[2 * q + 1] = b;
    }
    for (int ch = 0; ch < c; ch++) {
        const float invstd = save_invstd[ch];
        double sg = 0.0, sgx = 0.0;
        for (int i = 0; i < n; i++) {
            sg += ps[2 * ((size_t)i * c + ch)];
            sgx += ps[2 * ((size_t)i * c + ch) + 1];
        }
        if (ggamma) ggamma[ch] += (float)(sgx * invstd);
        if (gbeta) gbeta[ch] += (float)sg;
        if (gs) { /* synchronised BN: gx from the global batch's sums (dist.c) */
            sg = gs[ch];
            sgx = gs[c + ch];
        }
        co[ch] = (float)(sg / cnt);
        co[c + ch] = (float)(sgx * invstd * invstd / cnt);
        co[2 * c + ch] = (gamma ? gamma[ch] : 1.0f) * invstd;
    }
    if (gx) {
#pragma omp parallel for schedule(dynamic, sq_cpu_plane_run(hw)) if (par_ok(n, c, hw))
        for (long q = 0; q < np; q++) {
            const int ch = (int)(q % c);
            const float mean = save_mean[ch], gmean = co[ch], proj = co[c + ch], wi = co[2 * c + ch];
            const size_t off = (size_t)q * hw;
            const float *p = x + off, *g = gy + off;
            float *o = gx + off;
            if (!y) {
#pragma omp simd
                for (int j = 0; j < hw; j++) o[j] += (g[j] - gmean - (p[j] - mean) * proj) * wi;
            } else {
                const float *yp = y + off;
#pragma omp simd
                for (int j = 0; j < hw; j++)
                    o[j] += (act_grad(yp[j], g[j], hi) - gmean - (p[j] - mean) * proj) * wi;
            }
        }
    }
    free(co);
    free(ps);
    free(gs);
}

void sq_cpu_bn_add_act_bwd(int n, int c, int hw, sq_act_kind act, const float *x, const float *y,
                           const float *gy, const float *gamma, const float *save_mean,
                           const float *save_invstd, float *gx, float *gr, float *ggamma,
                           float *gbeta)
{
    sq_cpu_bn_train_bwd_any(n, c, hw, act_hi(act), x, y, gy, gamma, save_mean, save_invstd, gx,
                            gr, ggamma, gbeta);
}

void sq_cpu_bn_act_bwd(int n, int c, int hw, sq_act_kind act, const float *x, const float *y,
                       const float *gy, const float *gamma, const float *save_mean,
                       const float *save_invstd, float *gx, float *ggamma, float *gbeta)
{
    sq_cpu_bn_add_act_bwd(n, c, hw, act, x, y, gy, gamma, save_mean, save_invstd, gx, NULL,
                          ggamma, gbeta);
}

void sq_cpu_add_act_fwd(size_t n, sq_act_kind act, const float *a, const float *b, float *y)
{
    const float hi = act_hi(act);
#pragma omp parallel for simd SQ_SCHED_ELEMS if (n >= SQ_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = act_apply(a[i] + b[i], hi);
}

static void add_act_block(size_t b, size_t e, float hi, const float *restrict y,
                          const float *restrict gy, float *restrict ga, float *restrict gb)
{
    if (ga && gb) {
#pragma omp simd
        for (size_t i = b; i < e; i++) {
            const float g = act_grad(y[i], gy[i], hi);
            ga[i] += g;
            gb[i] += g;
        }
    } else if (ga || gb) {
        float *restrict d = ga ? ga : gb;
#pragma omp simd
        for (size_t i = b; i < e; i++) d[i] += act_grad(y[i], gy[i], hi);
    }
}

void sq_cpu_add_act_bwd(size_t n, sq_act_kind act, const float *y, const float *gy, float *ga,
                        float *gb)
{
    const float hi = act_hi(act);
    const size_t blk = 16384, nblk = (n + blk - 1) / blk;
#pragma omp parallel for SQ_SCHED_ITEMS if (n >= SQ_CPU_PAR_MIN)
    for (size_t q = 0; q < nblk; q++)
        add_act_block(q * blk, (q + 1) * blk < n ? (q + 1) * blk : n, hi, y, gy, ga, gb);
}
