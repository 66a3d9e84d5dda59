/* loss.c: CPU losses over logits (N, K): mean softmax cross-entropy with labels, the SQAKD
   distillation loss (method.md section 2, stable log-softmax, sums in double), and row argmax.
   Both losses write the scalar to *loss and OVERWRITE the logit gradient (they seed the
   backward). Rows run in order on one thread: N*K is small and the sums stay deterministic. */
#include "cpu_ops.h"
#include <math.h>

/* log-sum-exp of z[j] * inv_t over j < k */
static double logsumexp(int k, const float *z, double inv_t)
{
    double m = -INFINITY;
    for (int j = 0; j < k; j++)
        if (z[j] * inv_t > m) m = z[j] * inv_t;
    if (!isfinite(m)) return m;
    double s = 0.0;
    for (int j = 0; j < k; j++) s += exp(z[j] * inv_t - m);
    return m + log(s);
}

/* Labels outside [0, k) (e.g. -1 = unlabelled) add nothing to the loss and get zero gradient;
   the mean still divides by n. The loss is not multiplied by scale. */
void sq_cpu_softmax_ce(int n, int k, const float *logits, const int32_t *labels, float scale,
                       float *loss, float *glogits)
{
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        const int lab = labels[i];
        const int valid = lab >= 0 && lab < k;
        const double lse = logsumexp(k, z, 1.0);
        if (valid) total += lse - z[lab];
        if (!glogits) continue;
        float *g = glogits + (size_t)i * k;
        for (int j = 0; j < k; j++) {
            double pj = exp(z[j] - lse);
            g[j] = valid ? (float)(scale * (pj - (j == lab)) / n) : 0.0f;
        }
    }
    if (loss) *loss = (float)(total / n);
}

void sq_cpu_kl_fwd_bwd(int n, int k, const float *zt, const float *zs, float T, float alpha,
                       float *loss, float *gzs)
{
    const double inv_t = 1.0 / T;
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const float *a = zt + (size_t)i * k, *b = zs + (size_t)i * k;
        const double lt = logsumexp(k, a, inv_t), ls = logsumexp(k, b, inv_t);
        for (int j = 0; j < k; j++) {
            double log_pt = a[j] * inv_t - lt, log_ps = b[j] * inv_t - ls;
            double pt = exp(log_pt);
            if (pt > 0.0) total += pt * (log_pt - log_ps);
            if (gzs) gzs[(size_t)i * k + j] = (float)((double)alpha * T / n * (exp(log_ps) - pt));
        }
    }
    if (loss) *loss = (float)((double)alpha * T * T / n * total);
}

void sq_cpu_argmax(int n, int k, const float *z, int32_t *out)
{
    for (int i = 0; i < n; i++) {
        const float *r = z + (size_t)i * k;
        int best = 0;
        for (int j = 1; j < k; j++)
            if (r[j] > r[best]) best = j;
        out[i] = best;
    }
}
