/* conv_dw.c: depthwise convolution (groups == c; output channel o reads input channel
   o / mult, mult = k / c) as direct loops, OpenMP over (image, channel) planes for the forward
   and the input gradient, over output channels for the weight/bias gradients (each thread owns
   whole channels, so sums have a fixed order). Inner loops run over a precomputed valid column
   range, so they carry no bounds tests. */
#include "cpu_ops.h"

/* output columns [*o0, *o1) whose input column o*stride - pad + s lies inside [0, w) */
static void dw_range(int w, int ow, int stride, int pad, int s, int *o0, int *o1)
{
    int lo = pad - s > 0 ? (pad - s + stride - 1) / stride : 0;
    int num = w - 1 + pad - s;
    int hi = num < 0 ? 0 : num / stride + 1;
    if (hi > ow) hi = ow;
    if (lo > hi) lo = hi;
    *o0 = lo;
    *o1 = hi;
}

/* yp (OH, OW) = conv of plane xp (H, W) with kernel wo (R, S) + bias */
static void dw_plane_fwd(const sq_conv_shape *cs, const float *xp, const float *wo, float bias,
                         float *yp)
{
    const int st = cs->stride, pad = cs->pad, ow = cs->ow;
    for (int oy = 0; oy < cs->oh; oy++) {
        float *yr = yp + (size_t)oy * ow;
        for (int j = 0; j < ow; j++) yr[j] = bias;
        for (int r = 0; r < cs->r; r++) {
            int ih = oy * st - pad + r;
            if (ih < 0 || ih >= cs->h) continue;
            for (int s = 0; s < cs->s; s++) {
                int o0, o1;
                dw_range(cs->w, ow, st, pad, s, &o0, &o1);
                const float wv = wo[r * cs->s + s];
                const float *xr = xp + (size_t)ih * cs->w;
                const int off = s - pad;
                if (st == 1)
                    for (int j = o0; j < o1; j++) yr[j] += wv * xr[j + off];
                else
                    for (int j = o0; j < o1; j++) yr[j] += wv * xr[j * st + off];
            }
        }
    }
}

void sq_cpu_conv_dw_fwd(const sq_conv_shape *cs, const float *x, const float *w, const float *b,
                        float *y)
{
    const int mult = cs->k / cs->c, ks = cs->r * cs->s;
    const long planes = (long)cs->n * cs->k;
    const size_t hw = (size_t)cs->h * cs->w, ohw = (size_t)cs->oh * cs->ow;
#pragma omp parallel for SQ_SCHED_PLANES if (planes * ohw * ks >= SQ_CPU_PAR_MIN)
    for (long p = 0; p < planes; p++) {
        long i = p / cs->k;
        int o = (int)(p % cs->k);
        dw_plane_fwd(cs, x + ((size_t)i * cs->c + o / mult) * hw, w + (size_t)o * ks,
                     b ? b[o] : 0.0f, y + (size_t)p * ohw);
    }
}

/* gxp (H, W) += transposed conv of gyp (OH, OW) with kernel wo */
static void dw_plane_bwd_data(const sq_conv_shape *cs, const float *gyp, const float *wo,
                              float *gxp)
{
    const int st = cs->stride, pad = cs->pad, ow = cs->ow;
    for (int oy = 0; oy < cs->oh; oy++) {
        const float *gr = gyp + (size_t)oy * ow;
        for (int r = 0; r < cs->r; r++) {
            int ih = oy * st - pad + r;
            if (ih < 0 || ih >= cs->h) continue;
            for (int s = 0; s < cs->s; s++) {
                int o0, o1;
                dw_range(cs->w, ow, st, pad, s, &o0, &o1);
                const float wv = wo[r * cs->s + s];
                float *xr = gxp + (size_t)ih * cs->w;
                const int off = s - pad;
                if (st == 1)
                    for (int j = o0; j < o1; j++) xr[j + off] += wv * gr[j];
                else
                    for (int j = o0; j < o1; j++) xr[j * st + off] += wv * gr[j];
            }
        }
    }
}

/* gwo (R, S) += correlation of plane xp with gyp */
static void dw_plane_bwd_weight(const sq_conv_shape *cs, const float *xp, const float *gyp,
                                float *gwo)
{
    const int st = cs->stride, pad = cs->pad, ow = cs->ow;
    for (int r = 0; r < cs->r; r++) {
        for (int s = 0; s < cs->s; s++) {
            int o0, o1;
            dw_range(cs->w, ow, st, pad, s, &o0, &o1);
            float acc = 0.0f;
            for (int oy = 0; oy < cs->oh; oy++) {
                int ih = oy * st - pad + r;
                if (ih < 0 || ih >= cs->h) continue;
                const float *gr = gyp + (size_t)oy * ow;
                const float *xr = xp + (size_t)ih * cs->w;
                const int off = s - pad;
                float row = 0.0f;
                if (st == 1) {
#pragma omp simd reduction(+ : row)
                    for (int j = o0; j < o1; j++) row += gr[j] * xr[j + off];
                } else {
#pragma omp simd reduction(+ : row)
                    for (int j = o0; j < o1; j++) row += gr[j] * xr[j * st + off];
                }
                acc += row;
            }
            gwo[r * cs->s + s] += acc;
        }
    }
}

void sq_cpu_conv_dw_bwd(const sq_conv_shape *cs, const float *x, const float *w, const float *gy,
                        float *gx, float *gw, float *gb)
{
    const int mult = cs->k / cs->c, ks = cs->r * cs->s;
    const size_t hw = (size_t)cs->h * cs->w, ohw = (size_t)cs->oh * cs->ow;
    const long work = (long)cs->n * cs->k * (long)ohw * ks;
    if (gx) {
        const long planes = (long)cs->n * cs->c;
#pragma omp parallel for SQ_SCHED_PLANES if (work >= SQ_CPU_PAR_MIN)
        for (long p = 0; p < planes; p++) {
            long i = p / cs->c;
            int ci = (int)(p % cs->c);
            for (int m = 0; m < mult; m++) {
                int o = ci * mult + m;
                dw_plane_bwd_data(cs, gy + ((size_t)i * cs->k + o) * ohw, w + (size_t)o * ks,
                                  gx + (size_t)p * hw);
            }
        }
    }
    if (gw || gb) {
#pragma omp parallel for SQ_SCHED_PLANES if (work >= SQ_CPU_PAR_MIN)
        for (int o = 0; o < cs->k; o++) {
            int ci = o / mult;
            double bacc = 0.0;
            for (int i = 0; i < cs->n; i++) {
                const float *gyp = gy + ((size_t)i * cs->k + o) * ohw;
                if (gw)
                    dw_plane_bwd_weight(cs, x + ((size_t)i * cs->c + ci) * hw, gyp,
                                        gw + (size_t)o * ks);
                if (gb) {
                    float s = 0.0f;
#pragma omp simd reduction(+ : s)
                    for (size_t j = 0; j < ohw; j++) s += gyp[j];
                    bacc += s;
                }
            }
            if (gb) gb[o] += (float)bacc;
        }
    }
}
