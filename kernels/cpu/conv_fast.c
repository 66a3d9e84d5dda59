/* conv_fast.c: AVX2/FMA micro-kernels of the implicit-GEMM convolution (conv_igemm.c), compiled
   with per-function target attributes and chosen at run time, so the build itself stays at
   x86-64-v2. Both kernels read the "B" operand through a row-offset table: row k of B is
   base + off[k], which lets them read shifted windows of a padded input plane directly instead
   of an im2col copy. Sums run in a fixed order (deterministic). */
#include "cpu_ops.h"
#include <immintrin.h>

#define MR SQ_FAST_MR
#define NR SQ_FAST_NR

int sq_cpu_fast_available(void)
{
    static int avail = -1;
    if (avail < 0) {
        __builtin_cpu_init();
        avail = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return avail;
}

/* apack: rows of A (m, kd) in panels of MR rows, panel-major then k then row; missing rows 0 */
void sq_cpu_fast_pack_a(int m, int kd, const float *a, int lda, float *apack)
{
    for (int i0 = 0; i0 < m; i0 += MR) {
        float *panel = apack + (size_t)(i0 / MR) * kd * MR;
        for (int k = 0; k < kd; k++)
            for (int r = 0; r < MR; r++)
                panel[(size_t)k * MR + r] = i0 + r < m ? a[(size_t)(i0 + r) * lda + k] : 0.0f;
    }
}

__attribute__((target("avx2,fma"))) void sq_cpu_fast_igemm(int m, int np, int kd,
                                                           const float *apack, const float *base,
                                                           const int *off, float *c, int ldc)
{
    const int nfull = np - np % NR;
    for (int p0 = 0; p0 < nfull; p0 += NR) {
        const float *bp = base + p0;
        for (int i0 = 0; i0 < m; i0 += MR) {
            const float *ap = apack + (size_t)(i0 / MR) * kd * MR;
            __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00,
                   c12 = c00, c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
            for (int k = 0; k < kd; k++, ap += MR) {
                const float *b = bp + off[k];
                const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8),
                             b2 = _mm256_loadu_ps(b + 16);
                __m256 a = _mm256_broadcast_ss(ap);
                c00 = _mm256_fmadd_ps(a, b0, c00);
                c01 = _mm256_fmadd_ps(a, b1, c01);
                c02 = _mm256_fmadd_ps(a, b2, c02);
                a = _mm256_broadcast_ss(ap + 1);
                c10 = _mm256_fmadd_ps(a, b0, c10);
                c11 = _mm256_fmadd_ps(a, b1, c11);
                c12 = _mm256_fmadd_ps(a, b2, c12);
                a = _mm256_broadcast_ss(ap + 2);
                c20 = _mm256_fmadd_ps(a, b0, c20);
                c21 = _mm256_fmadd_ps(a, b1, c21);
                c22 = _mm256_fmadd_ps(a, b2, c22);
                a = _mm256_broadcast_ss(ap + 3);
                c30 = _mm256_fmadd_ps(a, b0, c30);
                c31 = _mm256_fmadd_ps(a, b1, c31);
                c32 = _mm256_fmadd_ps(a, b2, c32);
            }
            float *cp = c + (size_t)i0 * ldc + p0;
            _mm256_storeu_ps(cp, c00);
            _mm256_storeu_ps(cp + 8, c01);
            _mm256_storeu_ps(cp + 16, c02);
            if (i0 + 1 >= m) continue;
            cp += ldc;
            _mm256_storeu_ps(cp, c10);
            _mm256_storeu_ps(cp + 8, c11);
            _mm256_storeu_ps(cp + 16, c12);
            if (i0 + 2 >= m) continue;
            cp += ldc;
            _mm256_storeu_ps(cp, c20);
            _mm256_storeu_ps(cp + 8, c21);
            _mm256_storeu_ps(cp + 16, c22);
            if (i0 + 3 >= m) continue;
            cp += ldc;
            _mm256_storeu_ps(cp, c30);
            _mm256_storeu_ps(cp + 8, c31);
            _mm256_storeu_ps(cp + 16, c32);
        }
    }
    for (int p0 = nfull; p0 < np; p0 += 8) {
        const float *bp = base + p0;
        for (int i0 = 0; i0 < m; i0 += MR) {
            const float *ap = apack + (size_t)(i0 / MR) * kd * MR;
            __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
            for (int k = 0; k < kd; k++, ap += MR) {
                const __m256 b0 = _mm256_loadu_ps(bp + off[k]);
                c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(ap), b0, c0);
                c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(ap + 1), b0, c1);
                c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(ap + 2), b0, c2);
                c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(ap + 3), b0, c3);
            }
            float *cp = c + (size_t)i0 * ldc + p0;
            _mm256_storeu_ps(cp, c0);
            if (i0 + 1 < m) _mm256_storeu_ps(cp + ldc, c1);
            if (i0 + 2 < m) _mm256_storeu_ps(cp + 2 * (size_t)ldc, c2);
            if (i0 + 3 < m) _mm256_storeu_ps(cp + 3 * (size_t)ldc, c3);
        }
    }
}

__attribute__((target("avx2,fma"))) void sq_cpu_fast_wgrad(int m, int np, int kd, const float *gt,
                                                           int mp, const float *base,
                                                           const int *off, const float *zrow,
                                                           float *gw, int ldw, int accumulate)
{
    for (int k0 = 0; k0 < kd; k0 += 6) {
        const float *b[6];
        for (int j = 0; j < 6; j++) b[j] = k0 + j < kd ? base + off[k0 + j] : zrow;
        for (int m0 = 0; m0 < m; m0 += 16) {
            __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00,
                   a21 = a00, a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;
            const float *gp = gt + m0;
            for (int p = 0; p < np; p++, gp += mp) {
                const __m256 g0 = _mm256_loadu_ps(gp), g1 = _mm256_loadu_ps(gp + 8);
                __m256 v = _mm256_broadcast_ss(b[0] + p);
                a00 = _mm256_fmadd_ps(v, g0, a00);
                a01 = _mm256_fmadd_ps(v, g1, a01);
                v = _mm256_broadcast_ss(b[1] + p);
                a10 = _mm256_fmadd_ps(v, g0, a10);
                a11 = _mm256_fmadd_ps(v, g1, a11);
                v = _mm256_broadcast_ss(b[2] + p);
                a20 = _mm256_fmadd_ps(v, g0, a20);
                a21 = _mm256_fmadd_ps(v, g1, a21);
                v = _mm256_broadcast_ss(b[3] + p);
                a30 = _mm256_fmadd_ps(v, g0, a30);
                a31 = _mm256_fmadd_ps(v, g1, a31);
                v = _mm256_broadcast_ss(b[4] + p);
                a40 = _mm256_fmadd_ps(v, g0, a40);
                a41 = _mm256_fmadd_ps(v, g1, a41);
                v = _mm256_broadcast_ss(b[5] + p);
                a50 = _mm256_fmadd_ps(v, g0, a50);
                a51 = _mm256_fmadd_ps(v, g1, a51);
            }
            float t[6][16];
            _mm256_storeu_ps(t[0], a00);
            _mm256_storeu_ps(t[0] + 8, a01);
            _mm256_storeu_ps(t[1], a10);
            _mm256_storeu_ps(t[1] + 8, a11);
            _mm256_storeu_ps(t[2], a20);
            _mm256_storeu_ps(t[2] + 8, a21);
            _mm256_storeu_ps(t[3], a30);
            _mm256_storeu_ps(t[3] + 8, a31);
            _mm256_storeu_ps(t[4], a40);
            _mm256_storeu_ps(t[4] + 8, a41);
            _mm256_storeu_ps(t[5], a50);
            _mm256_storeu_ps(t[5] + 8, a51);
            for (int j = 0; j < 6 && k0 + j < kd; j++)
                for (int i = 0; i < 16 && m0 + i < m; i++) {
                    float *d = gw + (size_t)(m0 + i) * ldw + k0 + j;
                    *d = accumulate ? *d + t[j][i] : t[j][i];
                }
        }
    }
}
