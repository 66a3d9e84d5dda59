/* pool.c: CPU max/average pooling (square window k, stride, padding; floor output size)
   and global average pooling, OpenMP over (image, channel) planes. Max pooling as PyTorch:
   padding acts as -inf, the first maximum in window order wins (a NaN wins over numbers), argmax
   holds the index inside the input plane (ih * W + iw). Average pooling divides by k*k
   (count_include_pad = true). */
#include "cpu_ops.h"
#include <math.h>

static int out_size(int h, int k, int stride, int pad) { return (h + 2 * pad - k) / stride + 1; }

void sq_cpu_pool_fwd(sq_pool_kind kind, int n, int c, int h, int w, int k, int stride, int pad,
                     const float *x, float *y, int32_t *argmax)
{
    const int oh = out_size(h, k, stride, pad), ow = out_size(w, k, stride, pad);
    const long planes = (long)n * c;
    const float inv = 1.0f / (float)(k * k);
#pragma omp parallel for SQ_SCHED_PLANES if (planes * oh * ow * k * k >= SQ_CPU_PAR_MIN)
    for (long p = 0; p < planes; p++) {
        const float *xp = x + (size_t)p * h * w;
        float *yp = y + (size_t)p * oh * ow;
        int32_t *ap = argmax ? argmax + (size_t)p * oh * ow : NULL;
        for (int oy = 0; oy < oh; oy++) {
            int h0 = oy * stride - pad, h1 = h0 + k;
            if (h0 < 0) h0 = 0;
            if (h1 > h) h1 = h;
            for (int ox = 0; ox < ow; ox++) {
                int w0 = ox * stride - pad, w1 = w0 + k;
                if (w0 < 0) w0 = 0;
                if (w1 > w) w1 = w;
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
                    yp[o] = s * inv;
                }
            }
        }
    }
}

void sq_cpu_pool_bwd(sq_pool_kind kind, int n, int c, int h, int w, int k, int stride, int pad,
                     const float *gy, const int32_t *argmax, float *gx)
{
    if (!gx) return;
    const int oh = out_size(h, k, stride, pad), ow = out_size(w, k, stride, pad);
    const long planes = (long)n * c;
    const float inv = 1.0f / (float)(k * k);
#pragma omp parallel for SQ_SCHED_PLANES if (planes * oh * ow * k * k >= SQ_CPU_PAR_MIN)
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
            int h0 = oy * stride - pad, h1 = h0 + k;
            if (h0 < 0) h0 = 0;
            if (h1 > h) h1 = h;
            for (int ox = 0; ox < ow; ox++) {
                int w0 = ox * stride - pad, w1 = w0 + k;
                if (w0 < 0) w0 = 0;
                if (w1 > w) w1 = w;
                const float g = gp[oy * ow + ox] * inv;
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
