/* conv_igemm.c: the CPU backend's main convolution path (dense and grouped convs on CPUs with
   AVX2/FMA): implicit GEMM without im2col. Per image and group the input is copied once into
   zero-padded "phase planes" (stride st splits the padded image into st*st sub-sampled planes),
   so every kernel tap (c, r, s) reads a plain shifted window of one plane; the output is
   computed on the planes' row pitch and the pad columns are dropped when copying out.
     forward      y = W * B_x                       (conv_fast.c igemm)
     weight grad  gW += gy * B_x^T                  (conv_fast.c wgrad; per-thread partials)
     input grad   stride 1: gx += W_flipped^T * B_gy  (the same igemm on zero-padded gy)
                  other strides: GEMM to columns, then col2im (conv.c)
   Images are split into contiguous per-thread blocks; each thread has its own workspace slice;
   weight-gradient partials are summed in thread order (bit-identical for a thread count). */
#include "cpu_ops.h"
#include <omp.h>
#include <string.h>

#define MR SQ_FAST_MR
#define NR SQ_FAST_NR

typedef struct ig_geo {
    int cg, kg, crs, krs;   /* krs = kg*R*S, the input-gradient reduction length */
    int st, ph2, pw2, np;   /* x phase planes (ph2, pw2); output grid oh x pw2, np rounded */
    int mp;                 /* kg rounded up to 16: columns of the transposed output gradient */
    size_t xplane, xfill;   /* floats per phase block; floats written by a fill */
    int bd;                 /* input gradient by igemm (stride 1, pad <= r-1 and s-1) */
    int qh, qw, bph, bpw, bnp;
    size_t gfill;
    size_t apack, apack_b;  /* packed weights per group */
    size_t planes, tmp, part, col; /* per-thread floats */
    size_t shared, per_thread;
} ig_geo;

static size_t round_up(size_t v, size_t m) { return (v + m - 1) / m * m; }

static ig_geo ig_geometry(const sq_conv_shape *cs)
{
    ig_geo g;
    memset(&g, 0, sizeof g);
    g.cg = cs->c / cs->groups;
    g.kg = cs->k / cs->groups;
    g.crs = g.cg * cs->r * cs->s;
    g.krs = g.kg * cs->r * cs->s;
    g.st = cs->stride;
    g.ph2 = (cs->h + 2 * cs->pad + g.st - 1) / g.st;
    g.pw2 = (cs->w + 2 * cs->pad + g.st - 1) / g.st;
    g.np = (int)round_up((size_t)cs->oh * g.pw2, 8);
    g.mp = (int)round_up(g.kg, 16);
    g.xplane = (size_t)g.cg * g.ph2 * g.pw2;
    g.xfill = (size_t)g.st * g.st * g.xplane;
    size_t maxoff = 0;
    for (int r = 0; r < cs->r; r++)
        for (int s = 0; s < cs->s; s++) {
            size_t o = (size_t)((r % g.st) * g.st + s % g.st) * g.xplane +
                       (size_t)(g.cg - 1) * g.ph2 * g.pw2 + (size_t)(r / g.st) * g.pw2 + s / g.st;
            if (o > maxoff) maxoff = o;
        }
    g.planes = maxoff + g.np > g.xfill ? maxoff + g.np : g.xfill;
    g.tmp = (size_t)g.mp * g.np;
    g.bd = g.st == 1 && cs->pad <= cs->r - 1 && cs->pad <= cs->s - 1;
    if (g.bd) {
        g.qh = cs->r - 1 - cs->pad;
        g.qw = cs->s - 1 - cs->pad;
        g.bph = cs->oh + 2 * g.qh;
        g.bpw = cs->ow + 2 * g.qw;
        g.bnp = (int)round_up((size_t)cs->h * g.bpw, 8);
        g.gfill = (size_t)g.kg * g.bph * g.bpw;
        size_t need = (size_t)(g.kg - 1) * g.bph * g.bpw + (size_t)(cs->r - 1) * g.bpw +
                      (cs->s - 1) + g.bnp;
        if (need < g.gfill) need = g.gfill;
        if (need > g.planes) g.planes = need;
        if ((size_t)g.cg * g.bnp > g.tmp) g.tmp = (size_t)g.cg * g.bnp;
    } else {
        g.col = (size_t)g.crs * cs->oh * cs->ow;
    }
    g.apack = round_up(g.kg, MR) * g.crs;
    g.apack_b = g.bd ? round_up(g.cg, MR) * g.krs : 0;
    g.part = (size_t)cs->k * g.crs;
    g.shared = sq_pad64(cs->groups * (g.apack + g.apack_b)) + sq_pad64(g.crs) + sq_pad64(g.krs);
    g.per_thread = sq_pad64(g.planes) + sq_pad64(g.tmp) + sq_pad64(g.part) + sq_pad64(g.col) +
                   sq_pad64(g.np);
    return g;
}

int sq_cpu_igemm_applies(const sq_conv_shape *cs)
{
    return sq_cpu_fast_available() && !(cs->groups > 1 && cs->groups == cs->c);
}

size_t sq_cpu_igemm_ws_floats(const sq_conv_shape *cs, int threads)
{
    ig_geo g = ig_geometry(cs);
    return g.shared + (size_t)threads * g.per_thread;
}

/* planes[(a*st + b)][c][u][v] = x[c][u*st + a - ph][v*st + b - pw], 0 outside; then zero slack */
static void fill_planes(const float *x, int nc, int h, int w, int st, int padh, int padw, int ph2,
                        int pw2, float *planes, size_t filled, size_t total)
{
    const size_t plane = (size_t)nc * ph2 * pw2;
    for (int a = 0; a < st; a++)
        for (int b = 0; b < st; b++) {
            int v0 = padw - b > 0 ? (padw - b + st - 1) / st : 0;
            int num = w - 1 + padw - b;
            int v1 = num < 0 ? 0 : num / st + 1;
            if (v1 > pw2) v1 = pw2;
            if (v0 > v1) v0 = v1;
            for (int c = 0; c < nc; c++) {
                float *dst = planes + (size_t)(a * st + b) * plane + (size_t)c * ph2 * pw2;
                const float *xc = x + (size_t)c * h * w;
                for (int u = 0; u < ph2; u++) {
                    float *d = dst + (size_t)u * pw2;
                    int ih = u * st + a - padh;
                    if (ih < 0 || ih >= h) {
                        memset(d, 0, sizeof(float) * pw2);
                        continue;
                    }
                    const float *xr = xc + (size_t)ih * w + (b - padw);
                    for (int v = 0; v < v0; v++) d[v] = 0.0f;
                    if (st == 1)
                        memcpy(d + v0, xr + v0, sizeof(float) * (v1 - v0));
                    else
                        for (int v = v0; v < v1; v++) d[v] = xr[v * st];
                    for (int v = v1; v < pw2; v++) d[v] = 0.0f;
                }
            }
        }
    if (total > filled) memset(planes + filled, 0, sizeof(float) * (total - filled));
}

/* packs every group's weights (forward A, and for the input gradient the flipped transpose) and
   the two offset tables into the shared head of the workspace */
static void pack_shared(const sq_conv_shape *cs, const ig_geo *g, const float *w, float *ws,
                        int need_fwd, int need_bd)
{
    float *apack = ws, *apack_b = ws + cs->groups * g->apack;
    int *off = (int *)(ws + sq_pad64(cs->groups * (g->apack + g->apack_b)));
    int *off_b = off + sq_pad64(g->crs);
    const int R = cs->r, S = cs->s, st = g->st;
    for (int c = 0; c < g->cg; c++)
        for (int r = 0; r < R; r++)
            for (int s = 0; s < S; s++)
                off[(c * R + r) * S + s] =
                    (int)((size_t)((r % st) * st + s % st) * g->xplane +
                          (size_t)c * g->ph2 * g->pw2 + (size_t)(r / st) * g->pw2 + s / st);
    for (int gi = 0; gi < cs->groups; gi++) {
        const float *wg = w + (size_t)gi * g->kg * g->crs;
        if (need_fwd) sq_cpu_fast_pack_a(g->kg, g->crs, wg, g->crs, apack + gi * g->apack);
        if (!need_bd) continue;
        float *pb = apack_b + gi * g->apack_b;
        for (int c0 = 0; c0 < g->cg; c0 += MR)
            for (int k = 0; k < g->kg; k++)
                for (int r = 0; r < R; r++)
                    for (int s = 0; s < S; s++) {
                        int kk = (k * R + r) * S + s;
                        float *dst = pb + (size_t)(c0 / MR) * g->krs * MR + (size_t)kk * MR;
                        for (int i = 0; i < MR; i++) {
                            int c = c0 + i;
                            dst[i] = c < g->cg ? wg[(((size_t)k * g->cg + c) * R + (R - 1 - r)) * S +
                                                    (S - 1 - s)]
                                               : 0.0f;
                        }
                    }
    }
    if (need_bd)
        for (int k = 0; k < g->kg; k++)
            for (int r = 0; r < R; r++)
                for (int s = 0; s < S; s++)
                    off_b[(k * R + r) * S + s] = (k * g->bph + r) * g->bpw + s;
}

void sq_cpu_igemm_fwd(const sq_conv_shape *cs, const float *x, const float *w, const float *b,
                      float *y, void *ws, int nthr)
{
    const ig_geo g = ig_geometry(cs);
    float *wsf = ws;
    pack_shared(cs, &g, w, wsf, 1, 0);
    const int *off = (const int *)(wsf + sq_pad64(cs->groups * (g.apack + g.apack_b)));
    const int n = cs->n, oh = cs->oh, ow = cs->ow;
#pragma omp parallel num_threads(nthr)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        float *planes = wsf + g.shared + (size_t)t * g.per_thread;
        float *tmp = planes + sq_pad64(g.planes);
        int i0 = (int)((long)n * t / nt), i1 = (int)((long)n * (t + 1) / nt);
        for (int i = i0; i < i1; i++) {
            for (int gi = 0; gi < cs->groups; gi++) {
                fill_planes(x + ((size_t)i * cs->c + (size_t)gi * g.cg) * cs->h * cs->w, g.cg,
                            cs->h, cs->w, g.st, cs->pad, cs->pad, g.ph2, g.pw2, planes, g.xfill,
                            g.planes);
                sq_cpu_fast_igemm(g.kg, g.np, g.crs, wsf + gi * g.apack, planes, off, tmp, g.np);
                float *yg = y + ((size_t)i * cs->k + (size_t)gi * g.kg) * oh * ow;
                for (int m = 0; m < g.kg; m++) {
                    const float bv = b ? b[gi * g.kg + m] : 0.0f;
                    for (int oy = 0; oy < oh; oy++) {
                        const float *src = tmp + (size_t)m * g.np + (size_t)oy * g.pw2;
                        float *dst = yg + ((size_t)m * oh + oy) * ow;
                        for (int ox = 0; ox < ow; ox++) dst[ox] = src[ox] + bv;
                    }
                }
            }
        }
    }
}

void sq_cpu_igemm_bwd(const sq_conv_shape *cs, const float *x, const float *w, const float *gy,
                      float *gx, float *gw, void *ws, int nthr)
{
    const ig_geo g = ig_geometry(cs);
    float *wsf = ws;
    pack_shared(cs, &g, w, wsf, 0, gx && g.bd);
    const float *apack_b = wsf + cs->groups * g.apack;
    const int *off = (const int *)(wsf + sq_pad64(cs->groups * (g.apack + g.apack_b)));
    const int *off_b = off + sq_pad64(g.crs);
    const int n = cs->n, oh = cs->oh, ow = cs->ow, h = cs->h, w_ = cs->w;
    const size_t gsize = (size_t)g.kg * g.crs;
#pragma omp parallel num_threads(nthr)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        float *planes = wsf + g.shared + (size_t)t * g.per_thread;
        float *tmp = planes + sq_pad64(g.planes);
        float *part = tmp + sq_pad64(g.tmp);
        float *col = part + sq_pad64(g.part);
        float *zrow = col + sq_pad64(g.col);
        memset(zrow, 0, sizeof(float) * g.np);
        int i0 = (int)((long)n * t / nt), i1 = (int)((long)n * (t + 1) / nt);
        for (int i = i0; i < i1; i++) {
            for (int gi = 0; gi < cs->groups; gi++) {
                const size_t xo = ((size_t)i * cs->c + (size_t)gi * g.cg) * h * w_;
                const float *gyg = gy + ((size_t)i * cs->k + (size_t)gi * g.kg) * oh * ow;
                if (gw) {
                    fill_planes(x + xo, g.cg, h, w_, g.st, cs->pad, cs->pad, g.ph2, g.pw2, planes,
                                g.xfill, g.planes);
                    memset(tmp, 0, sizeof(float) * g.mp * g.np);
                    for (int m = 0; m < g.kg; m++)
                        for (int oy = 0; oy < oh; oy++) {
                            const float *src = gyg + ((size_t)m * oh + oy) * ow;
                            float *dst = tmp + (size_t)oy * g.pw2 * g.mp + m;
                            for (int ox = 0; ox < ow; ox++) dst[(size_t)ox * g.mp] = src[ox];
                        }
                    sq_cpu_fast_wgrad(g.kg, g.np, g.crs, tmp, g.mp, planes, off, zrow,
                                      part + gi * gsize, g.crs, i != i0);
                }
                if (!gx) continue;
                float *gxg = gx + xo;
                if (!g.bd) {
                    sq_cpu_conv_bwd_data_gemm(cs, w + gi * gsize, gyg, gxg, col);
                    continue;
                }
                fill_planes(gyg, g.kg, oh, ow, 1, g.qh, g.qw, g.bph, g.bpw, planes, g.gfill,
                            g.planes);
                sq_cpu_fast_igemm(g.cg, g.bnp, g.krs, apack_b + gi * g.apack_b, planes, off_b,
                                  tmp, g.bnp);
                for (int c = 0; c < g.cg; c++)
                    for (int ih = 0; ih < h; ih++) {
                        const float *src = tmp + (size_t)c * g.bnp + (size_t)ih * g.bpw;
                        float *dst = gxg + ((size_t)c * h + ih) * w_;
                        for (int iw = 0; iw < w_; iw++) dst[iw] += src[iw];
                    }
            }
        }
        if (gw) {
            const float *parts = wsf + g.shared + sq_pad64(g.planes) + sq_pad64(g.tmp);
            const long nw = (long)cs->k * g.crs;
#pragma omp barrier
#pragma omp for schedule(static)
            for (long e = 0; e < nw; e++) {
                float acc = gw[e];
                for (int u = 0; u < nt; u++)
                    if ((long)n * u / nt < (long)n * (u + 1) / nt)
                        acc += parts[(size_t)u * g.per_thread + e];
                gw[e] = acc;
            }
        }
    }
}
