/* conv_fast.c: AVX2/FMA micro-kernels of the implicit-GEMM convolution (conv_igemm.c), compiled
   with per-function target attributes and chosen at run time, so the build itself stays at
   x86-64-v2. The "B" operand is read through a tap offset table (row k of B is base + off[k]:
   a shifted window of a padded input plane, no im2col copy) and through a list of output
   chunks: 8 consecutive positions of one output row, with their own input and output offsets,
   so pad columns are never computed and results land directly in NCHW rows (a chunk shorter
   than 8 is stored with a mask). Sums run in a fixed order (deterministic). */
#include "cpu_ops.h"
#include <string.h>

#define MR SQ_FAST_MR

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

int sq_cpu_fast_chunks(int nrows, int ncols, int in_pitch, int out_pitch, int *in_pos,
                       int *out_pos, int *len)
{
    int n = 0;
    for (int y = 0; y < nrows; y++)
        for (int x = 0; x < ncols; x += 8) {
            in_pos[n] = y * in_pitch + x;
            out_pos[n] = y * out_pitch + x;
            len[n] = ncols - x < 8 ? ncols - x : 8;
            n++;
        }
    return n;
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

static int ceil_div(int a, int b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }
static int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/* d[v] = s[v * st] for v < n (short rows: inline SSE instead of library calls) */
static inline void copy_strided(float *d, const float *s, int n, int st)
{
    int v = 0;
#if defined(__SSE2__)
    if (st == 1) {
        if (n >= 64) {
            memcpy(d, s, sizeof(float) * n);
            return;
        }
        for (; v + 4 <= n; v += 4) _mm_storeu_ps(d + v, _mm_loadu_ps(s + v));
    } else if (st == 2) {
        /* hi reads s[2v + 7], one past this group's last element: in bounds only when a later
           group exists (v + 4 < n); the last group goes to the scalar tail */
        for (; v + 4 < n; v += 4) {
            __m128 lo = _mm_loadu_ps(s + 2 * v), hi = _mm_loadu_ps(s + 2 * v + 4);
            _mm_storeu_ps(d + v, _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0)));
        }
    }
#endif
    for (; v < n; v++) d[v] = s[(size_t)v * st];
}

void sq_cpu_fast_fill_planes(const float *x, int nc, int h, int w, int st, int padh, int padw,
                             int ph2, int pw2, float *planes)
{
    const size_t plane = (size_t)nc * ph2 * pw2;
    for (int a = 0; a < st; a++) {
        const int u0 = ceil_div(padh - a, st) > 0 ? ceil_div(padh - a, st) : 0;
        int u1 = floor_div(h - 1 + padh - a, st) + 1;
        if (u1 > ph2) u1 = ph2;
        for (int b = 0; b < st; b++) {
            int v0 = ceil_div(padw - b, st), v1 = floor_div(w - 1 + padw - b, st) + 1;
            if (v0 < 0) v0 = 0;
            if (v1 > pw2) v1 = pw2;
            if (v0 >= v1) continue;
            for (int c = 0; c < nc; c++) {
                float *dst = planes + (size_t)(a * st + b) * plane + (size_t)c * ph2 * pw2;
                const float *xc = x + (size_t)c * h * w;
                for (int u = u0; u < u1; u++) {
                    const float *xr = xc + (size_t)(u * st + a - padh) * w + (b - padw);
                    copy_strided(dst + (size_t)u * pw2 + v0, xr + (size_t)v0 * st, v1 - v0, st);
                }
            }
        }
    }
}

#if defined(__x86_64__) || defined(__i386__)

int sq_cpu_fast_available(void)
{
    static int avail = -1;
    if (avail < 0) {
        __builtin_cpu_init();
        avail = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return avail;
}

__attribute__((target("avx2,fma"))) void sq_cpu_fast_transpose(int rows, int cols, const float *src,
                                                               int lds, float *dst, int ldd)
{
    const int r8 = rows - rows % 8, c8 = cols - cols % 8;
    for (int i = 0; i < r8; i += 8) {
        for (int j = 0; j < c8; j += 8) {
            const float *s = src + (size_t)i * lds + j;
            __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + lds),
                   r2 = _mm256_loadu_ps(s + 2 * (size_t)lds), r3 = _mm256_loadu_ps(s + 3 * (size_t)lds),
                   r4 = _mm256_loadu_ps(s + 4 * (size_t)lds), r5 = _mm256_loadu_ps(s + 5 * (size_t)lds),
                   r6 = _mm256_loadu_ps(s + 6 * (size_t)lds), r7 = _mm256_loadu_ps(s + 7 * (size_t)lds);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1),
                   t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3),
                   t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
                   t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)),
                   u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)),
                   u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)),
                   u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)),
                   u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)),
                   u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2)),
                   u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)),
                   u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
            float *d = dst + (size_t)j * ldd + i;
            _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_storeu_ps(d + ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_storeu_ps(d + 2 * (size_t)ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_storeu_ps(d + 3 * (size_t)ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_storeu_ps(d + 4 * (size_t)ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_storeu_ps(d + 5 * (size_t)ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_storeu_ps(d + 6 * (size_t)ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_storeu_ps(d + 7 * (size_t)ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
    }
    for (int i = 0; i < rows; i++)
        for (int j = i < r8 ? c8 : 0; j < cols; j++)
            dst[(size_t)j * ldd + i] = src[(size_t)i * lds + j];
}

static const int k_mask_src[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* MR rows x NCH chunks of 8 positions; NCH is a compile-time constant at every call site */
__attribute__((always_inline, target("avx2,fma"))) static inline void
igemm_tile(const int nch, int m, int i0, int kd, const float *ap, const float *base,
           const int *off, const int *in_pos, const int *out_pos, const int *len, float *c,
           size_t ldc, const float *bias, int accumulate)
{
    __m256 acc[MR][3];
    const float *bp[3];
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++) {
        __m256 init = _mm256_set1_ps(bias && i0 + r < m ? bias[i0 + r] : 0.0f);
#pragma GCC unroll 3
        for (int j = 0; j < nch; j++) acc[r][j] = init;
    }
#pragma GCC unroll 3
    for (int j = 0; j < nch; j++) bp[j] = base + in_pos[j];
    for (int k = 0; k < kd; k++, ap += MR) {
        __m256 b[3];
        const int o = off[k];
#pragma GCC unroll 3
        for (int j = 0; j < nch; j++) b[j] = _mm256_loadu_ps(bp[j] + o);
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++) {
            const __m256 a = _mm256_broadcast_ss(ap + r);
#pragma GCC unroll 3
            for (int j = 0; j < nch; j++) acc[r][j] = _mm256_fmadd_ps(a, b[j], acc[r][j]);
        }
    }
#pragma GCC unroll 3
    for (int j = 0; j < nch; j++) {
        const __m256i mask = _mm256_loadu_si256((const __m256i *)(k_mask_src + 8 - len[j]));
        for (int r = 0; r < MR && i0 + r < m; r++) {
            float *cp = c + (size_t)(i0 + r) * ldc + out_pos[j];
            __m256 v = acc[r][j];
            if (len[j] == 8) {
                if (accumulate) v = _mm256_add_ps(v, _mm256_loadu_ps(cp));
                _mm256_storeu_ps(cp, v);
            } else {
                if (accumulate) v = _mm256_add_ps(v, _mm256_maskload_ps(cp, mask));
                _mm256_maskstore_ps(cp, mask, v);
            }
        }
    }
}

__attribute__((target("avx2,fma"))) void sq_cpu_fast_igemm(int m, int kd, const float *apack,
                                                           const float *base, const int *off,
                                                           int nchunk, const int *in_pos,
                                                           const int *out_pos, const int *len,
                                                           float *c, size_t ldc,
                                                           const float *bias, int accumulate)
{
    int j0 = 0;
    for (; j0 + 3 <= nchunk; j0 += 3)
        for (int i0 = 0; i0 < m; i0 += MR)
            igemm_tile(3, m, i0, kd, apack + (size_t)(i0 / MR) * kd * MR, base, off, in_pos + j0,
                       out_pos + j0, len + j0, c, ldc, bias, accumulate);
    if (nchunk - j0 == 2)
        for (int i0 = 0; i0 < m; i0 += MR)
            igemm_tile(2, m, i0, kd, apack + (size_t)(i0 / MR) * kd * MR, base, off, in_pos + j0,
                       out_pos + j0, len + j0, c, ldc, bias, accumulate);
    else if (nchunk - j0 == 1)
        for (int i0 = 0; i0 < m; i0 += MR)
            igemm_tile(1, m, i0, kd, apack + (size_t)(i0 / MR) * kd * MR, base, off, in_pos + j0,
                       out_pos + j0, len + j0, c, ldc, bias, accumulate);
}

/* TK taps x TV*8 channels of the transposed weight gradient; TK, TV compile-time constants */
__attribute__((always_inline, target("avx2,fma"))) static inline void
wgrad_tile(const int tk, const int tv, int k0, int m0, int kd, const float *gt, int mp,
           const float *base, const int *off, const float *zrow, int nrows, int ncols,
           int in_pitch, float *gwt, int accumulate)
{
    __m256 acc[6][4];
    const float *b[6];
#pragma GCC unroll 6
    for (int j = 0; j < tk; j++) {
        b[j] = k0 + j < kd ? base + off[k0 + j] : zrow;
#pragma GCC unroll 4
        for (int v = 0; v < tv; v++) acc[j][v] = _mm256_setzero_ps();
    }
    const float *gp = gt + m0;
    for (int y = 0; y < nrows; y++) {
        const int p0 = y * in_pitch;
        for (int p = p0; p < p0 + ncols; p++, gp += mp) {
            __m256 g[4];
#pragma GCC unroll 4
            for (int v = 0; v < tv; v++) g[v] = _mm256_loadu_ps(gp + 8 * v);
#pragma GCC unroll 6
            for (int j = 0; j < tk; j++) {
                const __m256 bv = _mm256_broadcast_ss(b[j] + p);
#pragma GCC unroll 4
                for (int v = 0; v < tv; v++) acc[j][v] = _mm256_fmadd_ps(bv, g[v], acc[j][v]);
            }
        }
    }
    float *d = gwt + (size_t)k0 * mp + m0;
#pragma GCC unroll 6
    for (int j = 0; j < tk; j++, d += mp) {
        if (k0 + j >= kd) break;
#pragma GCC unroll 4
        for (int v = 0; v < tv; v++) {
            __m256 r = acc[j][v];
            if (accumulate) r = _mm256_add_ps(r, _mm256_loadu_ps(d + 8 * v));
            _mm256_storeu_ps(d + 8 * v, r);
        }
    }
}

__attribute__((target("avx2,fma"))) void sq_cpu_fast_wgrad(int m, int kd, const float *gt, int mp,
                                                           const float *base, const int *off,
                                                           const float *zrow, int nrows,
                                                           int ncols, int in_pitch, float *gwt,
                                                           int accumulate)
{
    if (mp % 32 == 0) {
        for (int k0 = 0; k0 < kd; k0 += 3)
            for (int m0 = 0; m0 < m; m0 += 32)
                wgrad_tile(3, 4, k0, m0, kd, gt, mp, base, off, zrow, nrows, ncols, in_pitch,
                           gwt, accumulate);
    } else {
        for (int k0 = 0; k0 < kd; k0 += 6)
            for (int m0 = 0; m0 < m; m0 += 16)
                wgrad_tile(6, 2, k0, m0, kd, gt, mp, base, off, zrow, nrows, ncols, in_pitch,
                           gwt, accumulate);
    }
}

#else /* not x86: the implicit-GEMM path is never selected */
int sq_cpu_fast_available(void) { return 0; }
void sq_cpu_fast_transpose(int rows, int cols, const float *src, int lds, float *dst, int ldd)
{
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) dst[(size_t)j * ldd + i] = src[(size_t)i * lds + j];
}
void sq_cpu_fast_igemm(int m, int kd, const float *apack, const float *base, const int *off,
                       int nchunk, const int *in_pos, const int *out_pos, const int *len,
                       float *c, size_t ldc, const float *bias, int accumulate)
{
    (void)m; (void)kd; (void)apack; (void)base; (void)off; (void)nchunk; (void)in_pos;
    (void)out_pos; (void)len; (void)c; (void)ldc; (void)bias; (void)accumulate;
}
void sq_cpu_fast_wgrad(int m, int kd, const float *gt, int mp, const float *base, const int *off,
                       const float *zrow, int nrows, int ncols, int in_pitch, float *gwt,
                       int accumulate)
{
    (void)m; (void)kd; (void)gt; (void)mp; (void)base; (void)off; (void)zrow; (void)nrows;
    (void)ncols; (void)in_pitch; (void)gwt; (void)accumulate;
}
#endif
