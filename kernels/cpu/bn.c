/* bn.c: CPU batch normalisation over x viewed as (N, C, HW), PyTorch semantics: training mode
   normalises with the batch mean and biased variance and updates the running statistics with
   momentum and the unbiased variance; eval mode uses the running statistics. OpenMP over
   channels (each channel's sums are done by one thread in a fixed order: float sums per
   (n, c) plane, added up in double). gamma/beta may be NULL (no affine). */
#include "cpu_ops.h"
#include <math.h>
#include <stdlib.h>

static int par_ok(int n, int c, int hw) { return (size_t)n * c * hw >= SQ_CPU_PAR_MIN && c > 1; }

/* this rank's batch statistics of channel ch: mean and biased variance */
static void local_stats(int n, int c, int hw, int ch, const float *x, double *mean, double *var)
{
    const double cnt = (double)n * hw;
    /* shifted sums (shift = first element) keep the variance accurate for large means */
    const float shift = x[(size_t)ch * hw];
    double s1 = 0.0, s2 = 0.0;
    for (int i = 0; i < n; i++) {
        const float *p = x + ((size_t)i * c + ch) * hw;
        float a = 0.0f, b = 0.0f;
#pragma omp simd reduction(+ : a, b)
        for (int j = 0; j < hw; j++) {
            float d = p[j] - shift;
            a += d;
            b += d * d;
        }
        s1 += a;
        s2 += b;
    }
    double dmean = s1 / cnt;
    double v = s2 / cnt - dmean * dmean;
    *var = v < 0.0 ? 0.0 : v;
    *mean = shift + dmean;
}

void sq_cpu_bn_channel_train(int n, int c, int hw, int ch, const float *x, const float *gamma,
                             const float *beta, float *run_mean, float *run_var, float momentum,
                             float eps, float *save_mean, float *save_invstd, float *a_out,
                             float *b_out, const double *gs)
{
    double cnt = (double)n * hw, mean, var;
    if (gs) { /* synchronised BN: the global batch's statistics (dist.c) */
        cnt = gs[2 * c];
        mean = gs[ch];
        var = gs[c + ch];
    } else {
        local_stats(n, c, hw, ch, x, &mean, &var);
    }
    float invstd = (float)(1.0 / sqrt(var + eps));
    if (save_mean) save_mean[ch] = (float)mean;
    if (save_invstd) save_invstd[ch] = invstd;
    if (run_mean) run_mean[ch] = (1.0f - momentum) * run_mean[ch] + momentum * (float)mean;
    if (run_var) {
        double unbiased = cnt > 1.0 ? var * cnt / (cnt - 1.0) : var;
        run_var[ch] = (1.0f - momentum) * run_var[ch] + momentum * (float)unbiased;
    }
    *a_out = (gamma ? gamma[ch] : 1.0f) * invstd;
    *b_out = (beta ? beta[ch] : 0.0f) - (float)mean * *a_out;
}

void sq_cpu_bn_fwd_train(int n, int c, int hw, const float *x, const float *gamma,
                         const float *beta, float *run_mean, float *run_var, float momentum,
                         float eps, float *y, float *save_mean, float *save_invstd)
{
    double *gs = sq_cpu_bn_sync_stats(n, c, hw, x);
#pragma omp parallel for SQ_SCHED_ITEMS if (par_ok(n, c, hw))
    for (int ch = 0; ch < c; ch++) {
        float a, b;
        sq_cpu_bn_channel_train(n, c, hw, ch, x, gamma, beta, run_mean, run_var, momentum, eps,
                                save_mean, save_invstd, &a, &b, gs);
        for (int i = 0; i < n; i++) {
            const float *p = x + ((size_t)i * c + ch) * hw;
            float *q = y + ((size_t)i * c + ch) * hw;
#pragma omp simd
            for (int j = 0; j < hw; j++) q[j] = p[j] * a + b;
        }
    }
    free(gs);
}

void sq_cpu_bn_fwd_eval(int n, int c, int hw, const float *x, const float *gamma,
                        const float *beta, const float *run_mean, const float *run_var, float eps,
                        float *y)
{
#pragma omp parallel for SQ_SCHED_ITEMS if (par_ok(n, c, hw))
    for (int ch = 0; ch < c; ch++) {
        const float invstd = (float)(1.0 / sqrt((double)run_var[ch] + eps));
        const float a = (gamma ? gamma[ch] : 1.0f) * invstd;
        const float b = (beta ? beta[ch] : 0.0f) - run_mean[ch] * a;
        for (int i = 0; i < n; i++) {
            const float *p = x + ((size_t)i * c + ch) * hw;
            float *q = y + ((size_t)i * c + ch) * hw;
#pragma omp simd
            for (int j = 0; j < hw; j++) q[j] = p[j] * a + b;
        }
    }
}

void sq_cpu_bn_bwd(int n, int c, int hw, const float *x, const float *gy, const float *gamma,
                   const float *save_mean, const float *save_invstd, float *gx, float *ggamma,
                   float *gbeta)
{
    double *gs = sq_cpu_bn_sync_grad(n, c, hw, x, NULL, 0.0f, gy, save_mean);
    const double cnt = gs ? gs[2 * c] : (double)n * hw;
#pragma omp parallel for SQ_SCHED_ITEMS if (par_ok(n, c, hw))
    for (int ch = 0; ch < c; ch++) {
        const float mean = save_mean[ch], invstd = save_invstd[ch];
        double sg = 0.0, sgx = 0.0;
        for (int i = 0; i < n; i++) {
            const size_t off = ((size_t)i * c + ch) * hw;
            const float *p = x + off, *g = gy + off;
            float a = 0.0f, b = 0.0f;
#pragma omp simd reduction(+ : a, b)
            for (int j = 0; j < hw; j++) {
                a += g[j];
                b += g[j] * (p[j] - mean);
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
            const float *p = x + off, *g = gy + off;
            float *q = gx + off;
#pragma omp simd
            for (int j = 0; j < hw; j++) q[j] += (g[j] - gmean - (p[j] - mean) * proj) * wi;
        }
    }
    free(gs);
}
