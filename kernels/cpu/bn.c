/* bn.c: CPU batch normalisation over x viewed as (N, C, HW), PyTorch semantics: training mode
   normalises with the batch mean and biased variance and updates the running statistics with
   momentum and the unbiased variance; eval mode uses the running statistics. The training
   passes live in fused.c (shared with the fused BN + activation ops): planes in memory order,
   float sums per (n, c) plane added up in double in image order, so results do not depend on
   the thread count. gamma/beta may be NULL (no affine). */
#include "cpu_ops.h"
#include <math.h>
#include <stdlib.h>

static int par_ok(int n, int c, int hw) { return (size_t)n * c * hw >= SQ_CPU_PAR_MIN && c > 1; }

void sq_cpu_bn_channel_train(int c, int ch, const float *gamma,
                             const float *beta, float *run_mean, float *run_var, float momentum,
                             float eps, float *save_mean, float *save_invstd, float *a_out,
                             float *b_out, const double *st)
{
    const double cnt = st[2 * c], mean = st[ch], var = st[c + ch];
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
    sq_cpu_bn_train_fwd_any(n, c, hw, 0, 0.0f, x, NULL, gamma, beta, run_mean, run_var, momentum,
                            eps, y, save_mean, save_invstd);
}

void sq_cpu_bn_fwd_eval(int n, int c, int hw, const float *x, const float *gamma,
                        const float *beta, const float *run_mean, const float *run_var, float eps,
                        float *y)
{
    float *ab = sq_xmalloc(sizeof(float) * 2 * (size_t)c);
    for (int ch = 0; ch < c; ch++) {
        const float invstd = (float)(1.0 / sqrt((double)run_var[ch] + eps));
        ab[ch] = (gamma ? gamma[ch] : 1.0f) * invstd;
        ab[c + ch] = (beta ? beta[ch] : 0.0f) - run_mean[ch] * ab[ch];
    }
    const long np = (long)n * c;
#pragma omp parallel for schedule(dynamic, sq_cpu_plane_run(hw)) if (par_ok(n, c, hw))
    for (long q = 0; q < np; q++) {
        const float a = ab[q % c], b = ab[c + q % c];
        const float *p = x + (size_t)q * hw;
        float *o = y + (size_t)q * hw;
#pragma omp simd
        for (int j = 0; j < hw; j++) o[j] = p[j] * a + b;
    }
    free(ab);
}

void sq_cpu_bn_bwd(int n, int c, int hw, const float *x, const float *gy, const float *gamma,
                   const float *save_mean, const float *save_invstd, float *gx, float *ggamma,
                   float *gbeta)
{
    sq_cpu_bn_train_bwd_any(n, c, hw, 0.0f, x, NULL, gy, gamma, save_mean, save_invstd, gx, NULL,
                            ggamma, gbeta);
}
