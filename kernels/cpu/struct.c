/* struct.c: CPU structural ops: option-A residual shortcut (stride-2 subsample + zero channel
   padding), channel concat, ShuffleNet channel shuffle, inverted dropout. All are exact data
   movement; backward ops accumulate. Dropout keeps element i iff u_i >= p where u_i comes from a
   counter-based hash of (seed, i), so the mask needs no RNG state and any thread order works. */
#include "cpu_ops.h"
#include <string.h>

void sq_cpu_shortcut_a_fwd(int n, int c, int h, int w, int k, const float *x, float *y)
{
    const int oh = (h + 1) / 2, ow = (w + 1) / 2, padc = (k - c) / 2;
    const long planes = (long)n * k;
#pragma omp parallel for SQ_SCHED_PLANES if (planes * oh * ow >= SQ_CPU_PAR_MIN)
    for (long p = 0; p < planes; p++) {
        long i = p / k;
        int o = (int)(p % k), ci = o - padc;
        float *yp = y + (size_t)p * oh * ow;
        if (ci < 0 || ci >= c) {
            memset(yp, 0, sizeof(float) * oh * ow);
            continue;
        }
        const float *xp = x + ((size_t)i * c + ci) * h * w;
        for (int yy = 0; yy < oh; yy++)
            for (int xx = 0; xx < ow; xx++) yp[yy * ow + xx] = xp[(2 * yy) * w + 2 * xx];
    }
}

void sq_cpu_shortcut_a_bwd(int n, int c, int h, int w, int k, const float *gy, float *gx)
{
    if (!gx) return;
    const int oh = (h + 1) / 2, ow = (w + 1) / 2, padc = (k - c) / 2;
    const long planes = (long)n * c;
#pragma omp parallel for SQ_SCHED_PLANES if (planes * oh * ow >= SQ_CPU_PAR_MIN)
    for (long p = 0; p < planes; p++) {
        long i = p / c;
        int ci = (int)(p % c);
        const float *gp = gy + ((size_t)i * k + ci + padc) * oh * ow;
        float *xp = gx + (size_t)p * h * w;
        for (int yy = 0; yy < oh; yy++)
            for (int xx = 0; xx < ow; xx++) xp[(2 * yy) * w + 2 * xx] += gp[yy * ow + xx];
    }
}

void sq_cpu_concat_fwd(int n, int c1, int c2, int hw, const float *a, const float *b, float *y)
{
    const size_t na = (size_t)c1 * hw, nb = (size_t)c2 * hw;
#pragma omp parallel for SQ_SCHED_PLANES if ((na + nb) * n >= SQ_CPU_PAR_MIN)
    for (int i = 0; i < n; i++) {
        memcpy(y + i * (na + nb), a + i * na, sizeof(float) * na);
        memcpy(y + i * (na + nb) + na, b + i * nb, sizeof(float) * nb);
    }
}

void sq_cpu_concat_bwd(int n, int c1, int c2, int hw, const float *gy, float *ga, float *gb)
{
    const size_t na = (size_t)c1 * hw, nb = (size_t)c2 * hw;
#pragma omp parallel for SQ_SCHED_PLANES if ((na + nb) * n >= SQ_CPU_PAR_MIN)
    for (int i = 0; i < n; i++) {
        const float *g = gy + i * (na + nb);
        if (ga)
            for (size_t j = 0; j < na; j++) ga[i * na + j] += g[j];
        if (gb)
            for (size_t j = 0; j < nb; j++) gb[i * nb + j] += g[na + j];
    }
}

void sq_cpu_shuffle_fwd(int n, int c, int hw, int groups, const float *x, float *y)
{
    const int cpg = c / groups;
    const long planes = (long)n * c;
#pragma omp parallel for SQ_SCHED_PLANES if (planes * hw >= SQ_CPU_PAR_MIN)
    for (long p = 0; p < planes; p++) {
        long i = p / c;
        int g = (int)(p % c) / cpg, j = (int)(p % c) % cpg;
        memcpy(y + ((size_t)i * c + (size_t)j * groups + g) * hw, x + (size_t)p * hw,
               sizeof(float) * hw);
    }
}

void sq_cpu_shuffle_bwd(int n, int c, int hw, int groups, const float *gy, float *gx)
{
    if (!gx) return;
    const int cpg = c / groups;
    const long planes = (long)n * c;
#pragma omp parallel for SQ_SCHED_PLANES if (planes * hw >= SQ_CPU_PAR_MIN)
    for (long p = 0; p < planes; p++) {
        long i = p / c;
        int g = (int)(p % c) / cpg, j = (int)(p % c) % cpg;
        const float *src = gy + ((size_t)i * c + (size_t)j * groups + g) * hw;
        float *dst = gx + (size_t)p * hw;
        for (int e = 0; e < hw; e++) dst[e] += src[e];
    }
}

int sq_cpu_dropout_keep(uint64_t seed, size_t i, float p)
{
    uint64_t z = seed + ((uint64_t)i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    float u = (float)(z >> 40) * (1.0f / 16777216.0f);
    return u >= p;
}

void sq_cpu_dropout_fwd(size_t n, float p, uint64_t seed, const float *x, float *y,
                        uint8_t *mask)
{
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
#pragma omp parallel for SQ_SCHED_ELEMS if (n >= SQ_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        int keep = p < 1.0f && sq_cpu_dropout_keep(seed, i, p);
        mask[i] = (uint8_t)keep;
        y[i] = keep ? x[i] * scale : 0.0f;
    }
}

void sq_cpu_dropout_bwd(size_t n, float p, const uint8_t *mask, const float *gy, float *gx)
{
    if (!gx) return;
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
#pragma omp parallel for simd SQ_SCHED_ELEMS if (n >= SQ_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) gx[i] += mask[i] ? gy[i] * scale : 0.0f;
}

void sq_cpu_pad_fwd(int n, int c, int h, int w, int pt, int pl, int pb, int pr, float value,
                    const float *x, float *y)
{
    const int oh = pt + h + pb, ow = pl + w + pr;
    const long planes = (long)n * c;
#pragma omp parallel for SQ_SCHED_PLANES if (planes * oh * ow >= SQ_CPU_PAR_MIN)
    for (long p = 0; p < planes; p++) {
        const float *xp = x + (size_t)p * h * w;
        float *yp = y + (size_t)p * oh * ow;
        for (int yy = 0; yy < oh; yy++) {
            float *row = yp + (size_t)yy * ow;
            const int iy = yy - pt;
            if (iy < 0 || iy >= h) {
                for (int xx = 0; xx < ow; xx++) row[xx] = value;
                continue;
            }
            for (int xx = 0; xx < pl; xx++) row[xx] = value;
            memcpy(row + pl, xp + (size_t)iy * w, sizeof(float) * w);
            for (int xx = pl + w; xx < ow; xx++) row[xx] = value;
        }
    }
}

void sq_cpu_pad_bwd(int n, int c, int h, int w, int pt, int pl, int pb, int pr, const float *gy,
                    float *gx)
{
    if (!gx) return;
    const int oh = pt + h + pb, ow = pl + w + pr;
    const long planes = (long)n * c;
#pragma omp parallel for SQ_SCHED_PLANES if (planes * h * w >= SQ_CPU_PAR_MIN)
    for (long p = 0; p < planes; p++) {
        const float *gp = gy + (size_t)p * oh * ow;
        float *xp = gx + (size_t)p * h * w;
        for (int iy = 0; iy < h; iy++)
            for (int ix = 0; ix < w; ix++) xp[iy * w + ix] += gp[(size_t)(iy + pt) * ow + pl + ix];
    }
}

void sq_cpu_slice_fwd(int n, int c, int hw, int c0, int k, const float *x, float *y)
{
    const size_t row = (size_t)k * hw;
#pragma omp parallel for SQ_SCHED_PLANES if (row * n >= SQ_CPU_PAR_MIN)
    for (int i = 0; i < n; i++)
        memcpy(y + (size_t)i * row, x + ((size_t)i * c + c0) * hw, sizeof(float) * row);
}

void sq_cpu_slice_bwd(int n, int c, int hw, int c0, int k, const float *gy, float *gx)
{
    if (!gx) return;
    const size_t row = (size_t)k * hw;
#pragma omp parallel for SQ_SCHED_PLANES if (row * n >= SQ_CPU_PAR_MIN)
    for (int i = 0; i < n; i++) {
        const float *g = gy + (size_t)i * row;
        float *d = gx + ((size_t)i * c + c0) * hw;
        for (size_t j = 0; j < row; j++) d[j] += g[j];
    }
}
