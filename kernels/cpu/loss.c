/* loss.c: CPU losses over logits (N, K): mean softmax cross-entropy with labels, the SQAKD
   distillation loss (method.md section 2, stable log-softmax, exps and sums in double), and row
   argmax. Both losses write the scalar to *loss and OVERWRITE the logit gradient (they seed the
   backward). Cross-entropy runs its rows in order on one thread. KL runs blocks of rows on
   OpenMP threads, summed in a fixed order: the loss does not depend on the thread count. */
#include "cpu_ops.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>

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

/* One row of the distillation loss: returns its term sum P_T (log P_T - log P_S) and writes
   its gradient (gscale (P_S - P_T)) when g is not NULL. Two exps per element (in double): e_T and
   e_S are kept in buf (2k doubles) and reused for the probabilities. A row whose maximum is not
   finite (all -inf, +inf, NaN) takes the per-element logs of exact_row instead, so it gives what
   it always gave. */
static double kl_row_exact(int k, const float *a, const float *b, double inv_t, double gscale,
                           float *g)
{
    const double lt = logsumexp(k, a, inv_t), ls = logsumexp(k, b, inv_t);
    double total = 0.0;
    for (int j = 0; j < k; j++) {
        double log_pt = a[j] * inv_t - lt, log_ps = b[j] * inv_t - ls;
        double pt = exp(log_pt);
        if (pt > 0.0) total += pt * (log_pt - log_ps);
        if (g) g[j] = (float)(gscale * (exp(log_ps) - pt));
    }
    return total;
}

static double kl_row(int k, const float *a, const float *b, double inv_t, double gscale, float *g,
                     double *buf)
{
    double ma = -INFINITY, mb = -INFINITY;
    for (int j = 0; j < k; j++) {
        if (a[j] * inv_t > ma) ma = a[j] * inv_t;
        if (b[j] * inv_t > mb) mb = b[j] * inv_t;
    }
    if (!isfinite(ma) || !isfinite(mb)) return kl_row_exact(k, a, b, inv_t, gscale, g);
    double *ea = buf, *eb = buf + k, sa = 0.0, sb = 0.0;
    for (int j = 0; j < k; j++) {
        ea[j] = exp(a[j] * inv_t - ma);
        eb[j] = exp(b[j] * inv_t - mb);
        sa += ea[j];
        sb += eb[j];
    }
    const double lt = ma + log(sa), ls = mb + log(sb), ra = 1.0 / sa, rb = 1.0 / sb;
    double total = 0.0;
    for (int j = 0; j < k; j++) {
        const double pt = ea[j] * ra;
        if (pt > 0.0) total += pt * ((a[j] * inv_t - lt) - (b[j] * inv_t - ls));
        if (g) g[j] = (float)(gscale * (eb[j] * rb - pt));
    }
    return total;
}

/* Rows in blocks of KL_ROWS_PER_BLOCK: each block's terms are summed in row order, and the blocks'
   sums in block order, so the loss does not depend on the thread count. */
#define KL_ROWS_PER_BLOCK 64

void sq_cpu_kl_fwd_bwd(int n, int k, const float *zt, const float *zs, float T, float alpha,
                       float *loss, float *gzs)
{
    if (n <= 0 || k <= 0) {
        if (loss) *loss = 0.0f;
        return;
    }
    const double inv_t = 1.0 / T, gscale = (double)alpha * T / n;
    const int nb = (n + KL_ROWS_PER_BLOCK - 1) / KL_ROWS_PER_BLOCK;
    double one_block, *part = nb > 1 ? malloc((size_t)nb * sizeof(double)) : &one_block;
    double *bufs = malloc((size_t)sq_cpu_threads() * 2 * (size_t)k * sizeof(double));
    if (!part || !bufs) { /* out of host memory: the row-by-row path needs no scratch */
        double total = 0.0;
        for (int i = 0; i < n; i++)
            total += kl_row_exact(k, zt + (size_t)i * k, zs + (size_t)i * k, inv_t, gscale,
                                  gzs ? gzs + (size_t)i * k : NULL);
        if (loss) *loss = (float)((double)alpha * T * T / n * total);
        if (part != &one_block) free(part);
        free(bufs);
        return;
    }
    const int nt = sq_cpu_threads();
#pragma omp parallel for schedule(static) num_threads(nt) if (nb > 1 && (size_t)n * k >= 65536)
    for (int bi = 0; bi < nb; bi++) {
        double *buf = bufs + (size_t)omp_get_thread_num() * 2 * (size_t)k;
        const int i1 = (bi + 1) * KL_ROWS_PER_BLOCK < n ? (bi + 1) * KL_ROWS_PER_BLOCK : n;
        double acc = 0.0;
        for (int i = bi * KL_ROWS_PER_BLOCK; i < i1; i++)
            acc += kl_row(k, zt + (size_t)i * k, zs + (size_t)i * k, inv_t, gscale,
                          gzs ? gzs + (size_t)i * k : NULL, buf);
        part[bi] = acc;
    }
    double total = 0.0;
    for (int bi = 0; bi < nb; bi++) total += part[bi];
    if (loss) *loss = (float)((double)alpha * T * T / n * total);
    if (part != &one_block) free(part);
    free(bufs);
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
