/* linear.c: the CPU GEMM wrapper (OpenBLAS, or plain loops without BLAS) and the fully connected
   layer y = x W^T + b, parallelised over row blocks with OpenMP (each block one sgemm). */
#include "cpu_ops.h"
#include <omp.h>
#ifdef SQ_HAVE_BLAS
#include <cblas.h>
#endif

#ifndef SQ_HAVE_BLAS
/* C = alpha op(A) op(B) + beta C with plain loops; beta == 0 overwrites C (no NaN carried) */
static void gemm_loops(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                       const float *b, int ldb, float beta, float *c, int ldc)
{
    for (int i = 0; i < m; i++) {
        float *ci = c + (size_t)i * ldc;
        for (int j = 0; j < n; j++) ci[j] = beta == 0.0f ? 0.0f : beta * ci[j];
        if (!tb) {
            for (int p = 0; p < k; p++) {
                float av = alpha * (ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p]);
                const float *bp = b + (size_t)p * ldb;
                for (int j = 0; j < n; j++) ci[j] += av * bp[j];
            }
        } else {
            for (int j = 0; j < n; j++) {
                const float *bj = b + (size_t)j * ldb;
                float acc = 0.0f;
                for (int p = 0; p < k; p++)
                    acc += (ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p]) * bj[p];
                ci[j] += alpha * acc;
            }
        }
    }
}
#endif

void sq_cpu_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                  int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0) return;
#ifdef SQ_HAVE_BLAS
    if (k <= 0) {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                c[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[(size_t)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#if defined(__x86_64__)
    /* OpenBLAS's AVX-512 kernels leave values in zmm16-31, and the baseline code after them
       would run with the upper vector state dirty (cpu_ops.h sq_cpu_clean_upper) */
    if (__builtin_cpu_supports("avx512f")) sq_cpu_clean_upper();
#endif
#else
    gemm_loops(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

/* number of row blocks for an m-row product of m*n*k multiply-adds */
static int row_blocks(int m, double macs)
{
    int t = sq_cpu_threads();
    if (macs < 262144.0 || t < 2) return 1;
    return t < m ? t : m;
}

void sq_cpu_linear_fwd(int n, int in, int out, const float *x, const float *w, const float *b,
                       float *y)
{
    int nb = row_blocks(n, (double)n * in * out);
#pragma omp parallel for schedule(static) num_threads(nb) if (nb > 1)
    for (int t = 0; t < nb; t++) {
        int r0 = (int)((long)n * t / nb), r1 = (int)((long)n * (t + 1) / nb);
        if (r1 <= r0) continue;
        float *yb = y + (size_t)r0 * out;
        if (b)
            for (int i = r0; i < r1; i++)
                for (int o = 0; o < out; o++) y[(size_t)i * out + o] = b[o];
        sq_cpu_sgemm(0, 1, r1 - r0, out, in, 1.0f, x + (size_t)r0 * in, in, w, in,
                     b ? 1.0f : 0.0f, yb, out);
    }
}

void sq_cpu_linear_bwd(int n, int in, int out, const float *x, const float *w, const float *gy,
                       float *gx, float *gw, float *gb)
{
    if (gx) {
        int nb = row_blocks(n, (double)n * in * out);
#pragma omp parallel for schedule(static) num_threads(nb) if (nb > 1)
        for (int t = 0; t < nb; t++) {
            int r0 = (int)((long)n * t / nb), r1 = (int)((long)n * (t + 1) / nb);
            if (r1 > r0)
                sq_cpu_sgemm(0, 0, r1 - r0, in, out, 1.0f, gy + (size_t)r0 * out, out, w, in,
                             1.0f, gx + (size_t)r0 * in, in);
        }
    }
    if (gw) {
        int nb = row_blocks(out, (double)n * in * out);
#pragma omp parallel for schedule(static) num_threads(nb) if (nb > 1)
        for (int t = 0; t < nb; t++) {
            int o0 = (int)((long)out * t / nb), o1 = (int)((long)out * (t + 1) / nb);
            if (o1 > o0)
                sq_cpu_sgemm(1, 0, o1 - o0, in, n, 1.0f, gy + o0, out, x, in, 1.0f,
                             gw + (size_t)o0 * in, in);
        }
    }
    if (gb) {
        for (int o = 0; o < out; o++) {
            float acc = 0.0f;
            for (int i = 0; i < n; i++) acc += gy[(size_t)i * out + o];
            gb[o] += acc;
        }
    }
}
