/* act.c: CPU activations (ReLU, ReLU6), clip, per-channel affine and elementwise helpers (add, axpy, scale, fill),
   OpenMP-parallel with dynamic schedules above SQ_CPU_PAR_MIN elements. ReLU/ReLU6 backward pass
   the gradient only strictly inside the linear region (PyTorch: zero at 0 and at 6). */
#include "cpu_ops.h"
#include <math.h>
#include <omp.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define PAR_FOR _Pragma("omp parallel for simd SQ_SCHED_ELEMS if (n >= SQ_CPU_PAR_MIN)")

void sq_cpu_act_fwd(sq_act_kind kind, size_t n, const float *x, float *y)
{
    if (kind == SQ_ACT_RELU6) {
        PAR_FOR
        for (size_t i = 0; i < n; i++) {
            float v = x[i] > 0.0f ? x[i] : 0.0f;
            y[i] = v < 6.0f ? v : 6.0f;
        }
    } else {
        PAR_FOR
        for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
    }
}

/* gx += mask(x) * gy with explicit SSE: gcc turns the scalar form into a data-dependent branch
   (ReLU masks are near random, so it mispredicted about half the time: 4-7x slower than the
   forward). Blocks of 16384 elements are handed out dynamically, as in the forward. */
static void mask_block(size_t b, size_t e, const float *restrict x, const float *restrict gy,
                       float *restrict gx, float hi)
{
    size_t i = b;
#ifdef __SSE2__
    const __m128 z = _mm_setzero_ps(), h = _mm_set1_ps(hi);
    for (; i + 4 <= e; i += 4) {
        __m128 xv = _mm_loadu_ps(x + i);
        __m128 m = _mm_cmpgt_ps(xv, z);
        if (hi < INFINITY) m = _mm_and_ps(m, _mm_cmplt_ps(xv, h));
        _mm_storeu_ps(gx + i, _mm_add_ps(_mm_loadu_ps(gx + i), _mm_and_ps(m, _mm_loadu_ps(gy + i))));
    }
#endif
    for (; i < e; i++) gx[i] += (x[i] > 0.0f && (hi == INFINITY || x[i] < hi)) ? gy[i] : 0.0f;
}

static void mask_acc(size_t n, const float *x, const float *gy, float *gx, float hi)
{
    const size_t blk = 16384, nblk = (n + blk - 1) / blk;
#pragma omp parallel for SQ_SCHED_ITEMS if (n >= SQ_CPU_PAR_MIN)
    for (size_t q = 0; q < nblk; q++)
        mask_block(q * blk, (q + 1) * blk < n ? (q + 1) * blk : n, x, gy, gx, hi);
}

void sq_cpu_act_bwd(sq_act_kind kind, size_t n, const float *x, const float *gy, float *gx)
{
    if (!gx) return;
    mask_acc(n, x, gy, gx, kind == SQ_ACT_RELU6 ? 6.0f : INFINITY);
}

void sq_cpu_add_fwd(size_t n, const float *a, const float *b, float *y)
{
    PAR_FOR
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void sq_cpu_axpy(size_t n, float alpha, const float *x, float *y)
{
    PAR_FOR
    for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

void sq_cpu_scale(size_t n, float alpha, float *x)
{
    PAR_FOR
    for (size_t i = 0; i < n; i++) x[i] *= alpha;
}

void sq_cpu_fill(size_t n, float v, float *x)
{
    PAR_FOR
    for (size_t i = 0; i < n; i++) x[i] = v;
}

/* clip: comparisons, not fminf/fmaxf, so that a NaN stays NaN (as torch.clamp) */
void sq_cpu_clip_fwd(size_t n, float lo, float hi, const float *x, float *y)
{
    PAR_FOR
    for (size_t i = 0; i < n; i++) {
        const float v = x[i];
        y[i] = v < lo ? lo : v > hi ? hi : v;
    }
}

/* PyTorch's clamp gradient: gy passes where lo <= x <= hi, the bounds included */
void sq_cpu_clip_bwd(size_t n, float lo, float hi, const float *x, const float *gy, float *gx)
{
    if (!gx) return;
    PAR_FOR
    for (size_t i = 0; i < n; i++)
        if (x[i] >= lo && x[i] <= hi) gx[i] += gy[i];
}

void sq_cpu_affine_fwd(int n, int c, int hw, const float *a, const float *b, const float *x,
                       float *y)
{
    const long planes = (long)n * c;
#pragma omp parallel for SQ_SCHED_PLANES if (planes * hw >= SQ_CPU_PAR_MIN)
    for (long p = 0; p < planes; p++) {
        const float av = a[p % c], bv = b[p % c];
        const float *xp = x + (size_t)p * hw;
        float *yp = y + (size_t)p * hw;
        for (int j = 0; j < hw; j++) {
            const float t = av * xp[j]; /* rounded before the sum (backend.h) */
            yp[j] = t + bv;
        }
    }
}

void sq_cpu_affine_bwd(int n, int c, int hw, const float *a, const float *gy, float *gx)
{
    if (!gx) return;
    const long planes = (long)n * c;
#pragma omp parallel for SQ_SCHED_PLANES if (planes * hw >= SQ_CPU_PAR_MIN)
    for (long p = 0; p < planes; p++) {
        const float av = a[p % c];
        const float *gp = gy + (size_t)p * hw;
        float *xp = gx + (size_t)p * hw;
        for (int j = 0; j < hw; j++) {
            const float t = av * gp[j];
            xp[j] += t;
        }
    }
}
