/* pool.c: CPU max/average pooling (windows kh x kw, strides, pads, ceil_mode and
   count_include_pad as sq_pool_shape in sqakd/backend.h) and global average pooling, OpenMP over
   (image, channel) planes. Max pooling as PyTorch: padding acts as -inf, the first maximum in
   window order wins (a NaN wins over numbers), argmax holds the index inside the input plane
   (ih * W + iw). Average pooling divides by the window's element count (backend.h); the zoo's
   square pools (floor, count_include_pad = 1) divide by k*k, as before windows were general.
   The 2x2 stride-2 max pool without padding (VGG's) has an AVX2 path, eight outputs per step,
   with the same order and NaN rule (the general loop ran it at about 9 ns per output). */
#include "cpu_ops.h"
#include <math.h>

/* one output's window along an axis: [*a, *b) clipped to the input, and the count the average
   divides by (clipped to the input, or to the padded input with count_include_pad) */
static void window(int o, int k, int s, int pad0, int in, int pad1, int include_pad, int *a, int *b,
                   int *count)
{
    const int start = o * s - pad0;
    int lo = start, hi = start + k;
    int plo = lo < -pad0 ? -pad0 : lo, phi = hi > in + pad1 ? in + pad1 : hi;
    if (lo < 0) lo = 0;
    if (hi > in) hi = in;
    *a = lo;
    *b = hi;
    *count = include_pad ? phi - plo : hi - lo;
}

#if defined(__x86_64__)
#include <immintrin.h>
/* 2x2 windows, stride 2, no padding, every window inside the input (the VGG pools): eight
   outputs per step, from a pair of input rows (four outputs each from two pairs where rows give
   only four, as 8x8 -> 4x4). The same order as the general loop: the first window element
   starts, a later one replaces it when greater or NaN. lo/hi: the 8 inputs of the top row that
   give outputs 0-3 and 4-7; the bottom row is w further on; i0: the outputs' top-left indices. */
__attribute__((target("avx2,fma"))) static inline void max2x2_8(const float *lo, const float *hi,
                                                                 int w, __m256i i0, float *yo,
                                                                 int32_t *ao)
{
    const __m256i perm = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
    const __m256 a0 = _mm256_loadu_ps(lo), a1 = _mm256_loadu_ps(hi);
    const __m256 b0 = _mm256_loadu_ps(lo + w), b1 = _mm256_loadu_ps(hi + w);
    /* even / odd columns, in output order */
    const __m256 vs[4] = {_mm256_permutevar8x32_ps(_mm256_shuffle_ps(a0, a1, 0x88), perm),
                          _mm256_permutevar8x32_ps(_mm256_shuffle_ps(a0, a1, 0xdd), perm),
                          _mm256_permutevar8x32_ps(_mm256_shuffle_ps(b0, b1, 0x88), perm),
                          _mm256_permutevar8x32_ps(_mm256_shuffle_ps(b0, b1, 0xdd), perm)};
    const int offs[4] = {0, 1, w, w + 1};
    __m256 best = vs[0];
    __m256i bi = i0;
    for (int j = 1; j < 4; j++) {
        const __m256 take = _mm256_or_ps(_mm256_cmp_ps(vs[j], best, _CMP_GT_OQ),
                                         _mm256_cmp_ps(vs[j], vs[j], _CMP_UNORD_Q));
        best = _mm256_blendv_ps(best, vs[j], take);
        bi = _mm256_castps_si256(
            _mm256_blendv_ps(_mm256_castsi256_ps(bi),
                             _mm256_castsi256_ps(_mm256_add_epi32(i0, _mm256_set1_epi32(offs[j]))), take));
    }
    _mm256_storeu_ps(yo, best);
    if (ao) _mm256_storeu_si256((__m256i *)ao, bi);
}

__attribute__((target("avx2,fma"))) static void max2x2_plane(const float *xp, int w, int oh, int ow,
                                                             float *yp, int32_t *ap)
{
    int oy = 0;
    if (ow == 4) /* two output rows per step */
        for (; oy + 2 <= oh; oy += 2) {
            const int base = 2 * oy * w;
            const __m256i i0 = _mm256_setr_epi32(base, base + 2, base + 4, base + 6, base + 2 * w,
                                                 base + 2 * w + 2, base + 2 * w + 4, base + 2 * w + 6);
            max2x2_8(xp + base, xp + base + 2 * w, w, i0, yp + (size_t)oy * ow,
                     ap ? ap + (size_t)oy * ow : NULL);
        }
    for (; oy < oh; oy++) {
        const float *r0 = xp + (size_t)(2 * oy) * w, *r1 = r0 + w;
        float *yr = yp + (size_t)oy * ow;
        int32_t *ar = ap ? ap + (size_t)oy * ow : NULL;
        const int base = 2 * oy * w;
        int ox = 0;
        for (; ox + 8 <= ow; ox += 8)
            max2x2_8(r0 + 2 * ox, r0 + 2 * ox + 8, w,
                     _mm256_add_epi32(_mm256_set1_epi32(base + 2 * ox),
                                      _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)),
                     yr + ox, ar ? ar + ox : NULL);
        for (; ox < ow; ox++) {
            const int i = 2 * ox;
            const float v[4] = {r0[i], r0[i + 1], r1[i], r1[i + 1]};
            const int idx[4] = {base + i, base + i + 1, base + w + i, base + w + i + 1};
            float best = v[0];
            int32_t bi = idx[0];
            for (int j = 1; j < 4; j++)
                if (v[j] > best || isnan(v[j])) {
                    best = v[j];
                    bi = idx[j];
                }
            yr[ox] = best;
            if (ar) ar[ox] = bi;
        }
    }
}
#endif

void sq_cpu_pool_fwd(sq_pool_kind kind, const sq_pool_shape *ps, const float *x, float *y,
                     int32_t *argmax)
{
    const int h = ps->h, w = ps->w, oh = ps->oh, ow = ps->ow;
    const long planes = (long)ps->n * ps->c;
#if defined(__x86_64__)
    if (kind == SQ_POOL_MAX && ps->kh == 2 && ps->kw == 2 && ps->sh == 2 && ps->sw == 2 &&
        !(ps->pad_t | ps->pad_l | ps->pad_b | ps->pad_r) && 2 * oh <= h && 2 * ow <= w &&
        sq_cpu_fast_available()) {
#pragma omp parallel for SQ_SCHED_PLANES if (planes * oh * ow * 4 >= SQ_CPU_PAR_MIN)
        for (long p = 0; p < planes; p++)
            max2x2_plane(x + (size_t)p * h * w, w, oh, ow, y + (size_t)p * oh * ow,
                         argmax ? argmax + (size_t)p * oh * ow : NULL);
        return;
    }
#endif
#pragma omp parallel for SQ_SCHED_PLANES if (planes * oh * ow * ps->kh * ps->kw >= SQ_CPU_PAR_MIN)
    for (long p = 0; p < planes; p++) {
        const float *xp = x + (size_t)p * h * w;
        float *yp = y + (size_t)p * oh * ow;
        int32_t *ap = argmax ? argmax + (size_t)p * oh * ow : NULL;
        for (int oy = 0; oy < oh; oy++) {
            int h0, h1, ch;
            window(oy, ps->kh, ps->sh, ps->pad_t, h, ps->pad_b, ps->count_include_pad, &h0, &h1, &ch);
            for (int ox = 0; ox < ow; ox++) {
                int w0, w1, cw;
                window(ox, ps->kw, ps->sw, ps->pad_l, w, ps->pad_r, ps->count_include_pad, &w0, &w1,
                       &cw);
                const int o = oy * ow + ox;
                if (kind == SQ_POOL_MAX) {
                    float best = -INFINITY;
                    int32_t bi = (h0 < h1 && w0 < w1) ? h0 * w + w0 : -1;
                    for (int iy = h0; iy < h1; iy++)
                        for (int ix = w0; ix < w1; ix++) {
                            float v = xp[iy * w + ix];
                            if (v > best || isnan(v)) {
                                best = v;
                                bi = iy * w + ix;
                            }
                        }
                    yp[o] = best;
                    if (ap) ap[o] = bi;
                } else {
                    float s = 0.0f;
                    for (int iy = h0; iy < h1; iy++)
                        for (int ix = w0; ix < w1; ix++) s += xp[iy * w + ix];
                    yp[o] = s * (1.0f / (float)(ch * cw));
                }
            }
        }
    }
}

void sq_cpu_pool_bwd(sq_pool_kind kind, const sq_pool_shape *ps, const float *gy,
                     const int32_t *argmax, float *gx)
{
    if (!gx) return;
    const int h = ps->h, w = ps->w, oh = ps->oh, ow = ps->ow;
    const long planes = (long)ps->n * ps->c;
#pragma omp parallel for SQ_SCHED_PLANES if (planes * oh * ow * ps->kh * ps->kw >= SQ_CPU_PAR_MIN)
    for (long p = 0; p < planes; p++) {
        const float *gp = gy + (size_t)p * oh * ow;
        float *xp = gx + (size_t)p * h * w;
        if (kind == SQ_POOL_MAX) {
            const int32_t *ap = argmax + (size_t)p * oh * ow;
            for (int o = 0; o < oh * ow; o++)
                if (ap[o] >= 0) xp[ap[o]] += gp[o];
            continue;
        }
        for (int oy = 0; oy < oh; oy++) {
            int h0, h1, ch;
            window(oy, ps->kh, ps->sh, ps->pad_t, h, ps->pad_b, ps->count_include_pad, &h0, &h1, &ch);
            for (int ox = 0; ox < ow; ox++) {
                int w0, w1, cw;
                window(ox, ps->kw, ps->sw, ps->pad_l, w, ps->pad_r, ps->count_include_pad, &w0, &w1,
                       &cw);
                const float g = gp[oy * ow + ox] * (1.0f / (float)(ch * cw));
                for (int iy = h0; iy < h1; iy++)
                    for (int ix = w0; ix < w1; ix++) xp[iy * w + ix] += g;
            }
        }
    }
}

void sq_cpu_gap_fwd(int n, int c, int hw, const float *x, float *y)
{
    const long planes = (long)n * c;
#pragma omp parallel for SQ_SCHED_PLANES if (planes * hw >= SQ_CPU_PAR_MIN)
    for (long p = 0; p < planes; p++) {
        const float *xp = x + (size_t)p * hw;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < hw; j++) s += xp[j];
        y[p] = s / (float)hw;
    }
}

void sq_cpu_gap_bwd(int n, int c, int hw, const float *gy, float *gx)
{
    if (!gx) return;
    const long planes = (long)n * c;
#pragma omp parallel for SQ_SCHED_PLANES if (planes * hw >= SQ_CPU_PAR_MIN)
    for (long p = 0; p < planes; p++) {
        const float g = gy[p] / (float)hw;
        float *xp = gx + (size_t)p * hw;
#pragma omp simd
        for (int j = 0; j < hw; j++) xp[j] += g;
    }
}
