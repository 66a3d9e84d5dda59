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

/* y = act(BN_train(x) [+ r]): the BN (r NULL) or a residual block's last BN, the add and the
   activation after it */
void sq_cpu_bn_add_act_fwd_train(int n, int c, int hw, sq_act_kind act, const float *x,
                                 const float *r, const float *gamma, const float *beta,
                                 float *run_mean, float *run_var, float momentum, float eps,
                                 float *y, float *save_mean, float *save_invstd)
{
    const float hi = act_hi(act);
    double *gs = sq_cpu_bn_sync_stats(n, c, hw, x);
#pragma omp parallel for SQ_SCHED_ITEMS if (par_ok(n, c, hw))
    for (int ch = 0; ch < c; ch++) {
        float a, b;
        sq_cpu_bn_channel_train(n, c, hw, ch, x, gamma, beta, run_mean, run_var, momentum, eps,
                                save_mean, save_invstd, &a, &b, gs);
        for (int i = 0; i < n; i++) {
            const size_t off = ((size_t)i * c + ch) * hw;
            const float *p = x + off;
            float *q = y + off;
            if (r) {
                const float *rp = r + off;
#pragma omp simd
                for (int j = 0; j < hw; j++) {
                    const float t = p[j] * a + b;
                    q[j] = act_apply(t + rp[j], hi);
                }
            } else {
#pragma omp simd
                for (int j = 0; j < hw; j++) q[j] = act_apply(p[j] * a + b, hi);
            }
        }
    }
    free(gs);
}

void sq_cpu_bn_act_fwd_train(int n, int c, int hw, sq_act_kind act, const float *x,
                             const float *gamma, const float *beta, float *run_mean,
                             float *run_var, float momentum, float eps, float *y,
                             float *save_mean, float *save_invstd)
{
    sq_cpu_bn_add_act_fwd_train(n, c, hw, act, x, NULL, gamma, beta, run_mean, run_var, momentum,
                                eps, y, save_mean, save_invstd);
}

/* backward of bn_add_act: g = gy act'(y); gr += g (gr NULL: none, the plain BN + act pair);
   then bn_bwd with g */
void sq_cpu_bn_add_act_bwd(int n, int c, int hw, sq_act_kind act, const float *x, const float *y,
                           const float *gy, const float *gamma, const float *save_mean,
                           const float *save_invstd, float *gx, float *gr, float *ggamma,
                           float *gbeta)
{
    const float hi = act_hi(act);
    double *gs = sq_cpu_bn_sync_grad(n, c, hw, x, y, hi, gy, save_mean);
    const double cnt = gs ? gs[2 * c] : (double)n * hw;
#pragma omp parallel for SQ_SCHED_ITEMS if (par_ok(n, c, hw))
    for (int ch = 0; ch < c; ch++) {
        const float mean = save_mean[ch], invstd = save_invstd[ch];
        double sg = 0.0, sgx = 0.0;
        for (int i = 0; i < n; i++) {
            const size_t off = ((size_t)i * c + ch) * hw;
            const float *p = x + off, *yp = y + off, *g = gy + off;
            float a = 0.0f, b = 0.0f;
            if (gr) {
                float *rq = gr + off;
#pragma omp simd reduction(+ : a, b)
                for (int j = 0; j < hw; j++) {
                    const float gj = act_grad(yp[j], g[j], hi);
                    rq[j] += gj;
                    a += gj;
                    b += gj * (p[j] - mean);
                }
            } else {
#pragma omp simd reduction(+ : a, b)
                for (int j = 0; j < hw; j++) {
                    const float gj = act_grad(yp[j], g[j], hi);
                    a += gj;
                    b += gj * (p[j] - mean);
                }
            }
            sg += a;
            sgx += b;
        }
        if (ggamma) ggamma[ch] += (float)(sgx * invstd);
        if (gbeta) gbeta[ch] += (float)sg;
        if (!gx) continue;
        if (gs) { /* synchronised BN: gx from the global batch's sums (dist.c) */
            sg = gs[ch];
            sgx = gs[c + ch];
        }
        const float proj = (float)(sgx * invstd * invstd / cnt);
        const float gmean = (float)(sg / cnt);
        const float wi = (gamma ? gamma[ch] : 1.0f) * invstd;
        for (int i = 0; i < n; i++) {
            const size_t off = ((size_t)i * c + ch) * hw;
            const float *p = x + off, *yp = y + off, *g = gy + off;
            float *q = gx + off;
#pragma omp simd
            for (int j = 0; j < hw; j++)
                q[j] += (act_grad(yp[j], g[j], hi) - gmean - (p[j] - mean) * proj) * wi;
        }
    }
    free(gs);
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
