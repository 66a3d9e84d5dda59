/* pool.c: CPU max/average pooling (windows kh x kw, strides, pads, ceil_mode and
   count_include_pad as sq_pool_shape in sqakd/backend.h) and global average pooling, OpenMP over
   (image, channel) planes. Max pooling as PyTorch: padding acts as -inf, the first maximum in
   window order wins (a NaN wins over numbers), argmax holds the index inside the input plane
   (ih * W + iw). Average pooling divides by the window's element count (backend.h); the zoo's
   square pools (floor, count_include_pad = 1) divide by k*k, as before windows were general. */
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

void sq_cpu_pool_fwd(sq_pool_kind kind, const sq_pool_shape *ps, const float *x, float *y,
                     int32_t *argmax)
{
    const int h = ps->h, w = ps->w, oh = ps->oh, ow = ps->ow;
    const long planes = (long)ps->n * ps->c;
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
