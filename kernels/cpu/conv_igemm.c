/* conv_igemm.c: the CPU backend's main convolution path (dense and grouped convs, stride <= 4,
   on CPUs with AVX2/FMA): implicit GEMM without im2col. Per image and group the input is copied
   once into zero-padded "phase planes" (stride st splits the padded image into st*st
   sub-sampled planes), so every kernel tap (c, r, s) reads a plain shifted window of one plane.
     forward      y = W * B_x                  (conv_fast.c igemm, written straight into y)
     weight grad  gW^T += B_x * gy^T           (conv_fast.c wgrad; per-block partials)
     input grad   per phase (a, b) of gx (ih + pad = a mod st, iw + pad = b mod st): a stride-1
                  correlation of zero-padded gy with the flipped taps r = a + st*j, s = b + st*l
                  (the same igemm; added straight into gx for stride 1, through a buffer
                  otherwise)
   Images are handed out to threads dynamically (a thread that runs slower, e.g. on a busy
   hyperthread sibling, simply takes fewer); each thread has its own workspace slice, whose zero
   borders are written once per call. The weight gradient is summed per fixed block of images
   (SQ_IG_WCHUNKS blocks, the scheduling unit of the backward pass) and the block partials are
   added in block order, so results do not depend on the thread count or on the schedule. */
#include "cpu_ops.h"
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define MR SQ_FAST_MR
#define MAX_ST 4
#define SQ_IG_WCHUNKS 32 /* weight-gradient blocks of images (fixed: deterministic) */

typedef struct bd_phase {
    int jr, jl, kd;          /* taps r = a + st*j (j < jr), s = b + st*l (l < jl); kd = kg*jr*jl */
    int u0, nu, v0, nv;      /* gx grid: ih = (u0 + u)*st + a - pad for u < nu, same for iw */
    int padh, padw;          /* gy rows/cols before the data in this phase's window */
    int nchunk;
    size_t apack_off, off_off, chunk_off;
} bd_phase;

typedef struct ig_geo {
    int cg, kg, crs, st;
    int ph2, pw2, mp;        /* x phase planes; kg rounded up to 16 */
    int ncf;                 /* forward output chunks */
    size_t xplane, xplanes;
    int nph, ptop, pleft, bph, bpw;   /* input gradient: phases and the shared padded gy planes */
    bd_phase ph[MAX_ST * MAX_ST];
    size_t apack, apack_b, ints;      /* per group floats; ints of offsets and chunk tables */
    size_t part;                      /* floats of one block's weight-gradient partial */
    size_t gplanes, out, gt, zrow;    /* per-thread floats */
    size_t shared, per_thread;
    int wgrad;                        /* the workspace holds the weight-gradient partials */
} ig_geo;

static size_t round_up(size_t v, size_t m) { return (v + m - 1) / m * m; }
static int ceil_div(int a, int b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }
static int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

static void phase_taps(const sq_conv_shape *cs, const ig_geo *g, int a, int b, bd_phase *p)
{
    const int st = g->st;
    memset(p, 0, sizeof *p);
    p->jr = a < cs->r ? (cs->r - a + st - 1) / st : 0;
    p->jl = b < cs->s ? (cs->s - b + st - 1) / st : 0;
    p->u0 = ceil_div(cs->pad - a, st);
    p->nu = floor_div(cs->h - 1 + cs->pad - a, st) + 1 - p->u0;
    p->v0 = ceil_div(cs->pad - b, st);
    p->nv = floor_div(cs->w - 1 + cs->pad - b, st) + 1 - p->v0;
    if (p->jr == 0 || p->jl == 0 || p->nu <= 0 || p->nv <= 0) return;
    p->kd = g->kg * p->jr * p->jl;
    /* window row u + j (tap j) holds oy = u0 + u + j - (jr - 1) */
    p->padh = p->jr - 1 - p->u0;
    p->padw = p->jl - 1 - p->v0;
    p->nchunk = p->nu * ((p->nv + 7) / 8);
}

static int wchunks(int n) { return n < SQ_IG_WCHUNKS ? n : SQ_IG_WCHUNKS; }

/* weight-gradient partials of the image blocks, after the packed weights and integer tables */
static float *block_parts(const sq_conv_shape *cs, const ig_geo *g, float *wsf)
{
    return wsf + sq_pad64(cs->groups * (g->apack + g->apack_b)) + sq_pad64(g->ints);
}

static ig_geo ig_geometry(const sq_conv_shape *cs)
{
    ig_geo g;
    memset(&g, 0, sizeof g);
    g.cg = cs->c / cs->groups;
    g.kg = cs->k / cs->groups;
    g.crs = g.cg * cs->r * cs->s;
    g.st = cs->stride;
    g.ph2 = (cs->h + 2 * cs->pad + g.st - 1) / g.st;
    g.pw2 = (cs->w + 2 * cs->pad + g.st - 1) / g.st;
    g.mp = (int)round_up(g.kg, 16);
    g.ncf = cs->oh * ((cs->ow + 7) / 8);
    g.xplane = (size_t)g.cg * g.ph2 * g.pw2;
    size_t maxoff = 0;
    for (int r = 0; r < cs->r; r++)
        for (int s = 0; s < cs->s; s++) {
            size_t o = (size_t)((r % g.st) * g.st + s % g.st) * g.xplane +
                       (size_t)(g.cg - 1) * g.ph2 * g.pw2 + (size_t)(r / g.st) * g.pw2 + s / g.st;
            if (o > maxoff) maxoff = o;
        }
    const size_t reach = (size_t)(cs->oh - 1) * g.pw2 + round_up(cs->ow, 8);
    g.xplanes = (size_t)g.st * g.st * g.xplane;
    if (maxoff + reach > g.xplanes) g.xplanes = maxoff + reach;
    g.zrow = (size_t)cs->oh * g.pw2;
    g.gt = (size_t)g.mp * cs->oh * cs->ow;
    g.ints = sq_pad64(g.crs) + 3 * sq_pad64(g.ncf);
    /* input gradient: phases share one padded copy of gy */
    g.nph = g.st * g.st;
    for (int ph = 0; ph < g.nph; ph++) {
        bd_phase *p = &g.ph[ph];
        phase_taps(cs, &g, ph / g.st, ph % g.st, p);
        if (p->kd == 0) continue;
        if (p->padh > g.ptop) g.ptop = p->padh;
        if (p->padw > g.pleft) g.pleft = p->padw;
    }
    for (int ph = 0; ph < g.nph; ph++) {
        bd_phase *p = &g.ph[ph];
        if (p->kd == 0) continue;
        int rows = g.ptop - p->padh + p->nu + p->jr - 1;
        int cols = g.pleft - p->padw + p->nv + p->jl - 1;
        if (rows > g.bph) g.bph = rows;
        if (cols > g.bpw) g.bpw = cols;
    }
    for (int ph = 0; ph < g.nph; ph++) {
        bd_phase *p = &g.ph[ph];
        if (p->kd == 0) continue;
        size_t need = (size_t)(g.kg - 1) * g.bph * g.bpw +
                      (size_t)(g.ptop - p->padh + p->jr - 1 + p->nu - 1) * g.bpw +
                      (g.pleft - p->padw + p->jl - 1) + round_up(p->nv, 8);
        if (need > g.gplanes) g.gplanes = need;
        if (g.st > 1 && (size_t)g.cg * p->nu * p->nv > g.out) g.out = (size_t)g.cg * p->nu * p->nv;
        p->apack_off = g.apack_b;
        g.apack_b += round_up(g.cg, MR) * p->kd;
        p->off_off = g.ints;
        g.ints += sq_pad64(p->kd);
        p->chunk_off = g.ints;
        g.ints += 3 * sq_pad64(p->nchunk);
    }
    if ((size_t)g.kg * g.bph * g.bpw > g.gplanes) g.gplanes = (size_t)g.kg * g.bph * g.bpw;
    g.apack = round_up(g.kg, MR) * g.crs;
    g.part = (size_t)cs->groups * g.crs * g.mp;
    /* the weight-gradient partials (one per block of images: 300 MB for a 512 -> 512 layer at
       batch 128) only where this path computes the weight gradient (conv_bgemm.c does for wide
       layers); workspaces are zeroed when allocated, so they would be resident */
    g.wgrad = !sq_cpu_bgemm_applies(cs, SQ_BG_WGRAD);
    g.shared = sq_pad64(cs->groups * (g.apack + g.apack_b)) + sq_pad64(g.ints) +
               (g.wgrad ? (size_t)wchunks(cs->n) * sq_pad64(g.part) : 0);
    g.per_thread = sq_pad64(g.xplanes) + sq_pad64(g.gplanes) + sq_pad64(g.out) + sq_pad64(g.gt) +
                   sq_pad64(g.zrow);
    return g;
}

static int g_force_gemm;

void sq_cpu_conv_force_gemm(int on) { g_force_gemm = on; }

int sq_cpu_igemm_applies(const sq_conv_shape *cs)
{
    return !g_force_gemm && sq_cpu_fast_available() && cs->stride <= MAX_ST &&
           !(cs->groups > 1 && cs->groups == cs->c);
}

size_t sq_cpu_igemm_ws_floats(const sq_conv_shape *cs, int threads)
{
    ig_geo g = ig_geometry(cs);
    return g.shared + (size_t)threads * g.per_thread;
}

/* shared head of the workspace: packed weights of every group (forward, and per phase the
   flipped transposed taps for the input gradient), tap offsets and output chunk tables */
static void pack_shared(const sq_conv_shape *cs, const ig_geo *g, const float *w, float *ws,
                        int need_fwd, int need_bd)
{
    float *apack = ws, *apack_b = ws + cs->groups * g->apack;
    int *ints = (int *)(ws + sq_pad64(cs->groups * (g->apack + g->apack_b)));
    const int R = cs->r, S = cs->s, st = g->st;
    for (int c = 0; c < g->cg; c++)
        for (int r = 0; r < R; r++)
            for (int s = 0; s < S; s++)
                ints[(c * R + r) * S + s] =
                    (int)((size_t)((r % st) * st + s % st) * g->xplane +
                          (size_t)c * g->ph2 * g->pw2 + (size_t)(r / st) * g->pw2 + s / st);
    int *cf = ints + sq_pad64(g->crs);
    sq_cpu_fast_chunks(cs->oh, cs->ow, g->pw2, cs->ow, cf, cf + sq_pad64(g->ncf),
                       cf + 2 * sq_pad64(g->ncf));
    for (int gi = 0; gi < cs->groups; gi++) {
        const float *wg = w + (size_t)gi * g->kg * g->crs;
        if (need_fwd) sq_cpu_fast_pack_a(g->kg, g->crs, wg, g->crs, apack + gi * g->apack);
        if (!need_bd) continue;
        for (int ph = 0; ph < g->nph; ph++) {
            const bd_phase *p = &g->ph[ph];
            const int a = ph / st, b = ph % st;
            if (p->kd == 0) continue;
            float *pb = apack_b + gi * g->apack_b + p->apack_off;
            for (int c0 = 0; c0 < g->cg; c0 += MR)
                for (int k = 0; k < g->kg; k++)
                    for (int j = 0; j < p->jr; j++)
                        for (int l = 0; l < p->jl; l++) {
                            /* window tap (j, l) meets kernel tap r = a + st*(jr-1-j) */
                            int r = a + st * (p->jr - 1 - j), s = b + st * (p->jl - 1 - l);
                            int kk = (k * p->jr + j) * p->jl + l;
                            float *dst = pb + (size_t)(c0 / MR) * p->kd * MR + (size_t)kk * MR;
                            for (int i = 0; i < MR; i++) {
                                int c = c0 + i;
                                dst[i] = c < g->cg ? wg[(((size_t)k * g->cg + c) * R + r) * S + s]
                                                   : 0.0f;
                            }
                        }
        }
    }
    if (!need_bd) return;
    for (int ph = 0; ph < g->nph; ph++) {
        const bd_phase *p = &g->ph[ph];
        if (p->kd == 0) continue;
        int *off_b = ints + p->off_off, *ch = ints + p->chunk_off;
        for (int k = 0; k < g->kg; k++)
            for (int j = 0; j < p->jr; j++)
                for (int l = 0; l < p->jl; l++)
                    off_b[(k * p->jr + j) * p->jl + l] =
                        (k * g->bph + g->ptop - p->padh + j) * g->bpw + g->pleft - p->padw + l;
        /* stride 1: straight into gx rows (pitch W); otherwise into a (nu, nv) buffer */
        sq_cpu_fast_chunks(p->nu, p->nv, g->bpw, st == 1 ? cs->w : p->nv, ch,
                           ch + sq_pad64(p->nchunk), ch + 2 * sq_pad64(p->nchunk));
    }
}

typedef struct thread_ws {
    float *xpl, *gpl, *out, *gt, *zrow;
} thread_ws;

static thread_ws thread_slice(const ig_geo *g, float *wsf, int t)
{
    thread_ws s;
    s.xpl = wsf + g->shared + (size_t)t * g->per_thread;
    s.gpl = s.xpl + sq_pad64(g->xplanes);
    s.out = s.gpl + sq_pad64(g->gplanes);
    s.gt = s.out + sq_pad64(g->out);
    s.zrow = s.gt + sq_pad64(g->gt);
    return s;
}

void sq_cpu_igemm_fwd(const sq_conv_shape *cs, const float *x, const float *w, const float *b,
                      float *y, void *ws, int nthr)
{
    const ig_geo g = ig_geometry(cs);
    float *wsf = ws;
    pack_shared(cs, &g, w, wsf, 1, 0);
    const int *off = (const int *)(wsf + sq_pad64(cs->groups * (g.apack + g.apack_b)));
    const int *cf = off + sq_pad64(g.crs);
    const int n = cs->n, ohw = cs->oh * cs->ow;
#pragma omp parallel num_threads(nthr)
    {
        thread_ws tw = thread_slice(&g, wsf, omp_get_thread_num());
        memset(tw.xpl, 0, sizeof(float) * g.xplanes);
#pragma omp for schedule(dynamic, 1)
        for (int i = 0; i < n; i++) {
            for (int gi = 0; gi < cs->groups; gi++) {
                sq_cpu_fast_fill_planes(x + ((size_t)i * cs->c + (size_t)gi * g.cg) * cs->h * cs->w, g.cg,
                            cs->h, cs->w, g.st, cs->pad, cs->pad, g.ph2, g.pw2, tw.xpl);
                sq_cpu_fast_igemm(g.kg, g.crs, wsf + gi * g.apack, tw.xpl, off, g.ncf, cf,
                                  cf + sq_pad64(g.ncf), cf + 2 * sq_pad64(g.ncf),
                                  y + ((size_t)i * cs->k + (size_t)gi * g.kg) * ohw, ohw,
                                  b ? b + gi * g.kg : NULL, 0);
            }
        }
    }
}

/* gx (cg, H, W) += the input gradient of one image and group, phase by phase */
static void bwd_data_image(const sq_conv_shape *cs, const ig_geo *g, const float *apack_b,
                           const int *ints, const float *gyg, float *gxg, const thread_ws *tw)
{
    const int st = g->st, h = cs->h, w = cs->w;
    sq_cpu_fast_fill_planes(gyg, g->kg, cs->oh, cs->ow, 1, g->ptop, g->pleft, g->bph, g->bpw, tw->gpl);
    for (int ph = 0; ph < g->nph; ph++) {
        const bd_phase *p = &g->ph[ph];
        if (p->kd == 0) continue;
        const int a = ph / st, b = ph % st;
        const int *ch = ints + p->chunk_off;
        const size_t cp = sq_pad64(p->nchunk);
        if (st == 1) {
            sq_cpu_fast_igemm(g->cg, p->kd, apack_b + p->apack_off, tw->gpl, ints + p->off_off,
                              p->nchunk, ch, ch + cp, ch + 2 * cp,
                              gxg + (size_t)(p->u0 - cs->pad) * w + (p->v0 - cs->pad),
                              (size_t)h * w, NULL, 1);
            continue;
        }
        const size_t nuv = (size_t)p->nu * p->nv;
        sq_cpu_fast_igemm(g->cg, p->kd, apack_b + p->apack_off, tw->gpl, ints + p->off_off,
                          p->nchunk, ch, ch + cp, ch + 2 * cp, tw->out, nuv, NULL, 0);
        for (int c = 0; c < g->cg; c++)
            for (int u = 0; u < p->nu; u++) {
                const float *src = tw->out + c * nuv + (size_t)u * p->nv;
                float *dst = gxg + ((size_t)c * h + (size_t)(p->u0 + u) * st + a - cs->pad) * w +
                             (size_t)p->v0 * st + b - cs->pad;
                for (int v = 0; v < p->nv; v++) dst[(size_t)v * st] += src[v];
            }
    }
}

void sq_cpu_sum_parts(float *parts, int nb, size_t stride, size_t len)
{
#pragma omp for schedule(static)
    for (size_t q0 = 0; q0 < len; q0 += 256) {
        const size_t m = len - q0 < 256 ? len - q0 : 256;
        float *d = parts + q0;
        for (int b = 1; b < nb; b++) {
            const float *sp = parts + (size_t)b * stride + q0;
#pragma omp simd
            for (size_t q = 0; q < m; q++) d[q] += sp[q];
        }
    }
}

void sq_cpu_igemm_bwd(const sq_conv_shape *cs, const float *x, const float *w, const float *gy,
                      float *gx, float *gw, void *ws, int nthr)
{
    const ig_geo g = ig_geometry(cs);
    if (gw && !g.wgrad) abort(); /* conv.c hands this shape's weight gradient to conv_bgemm.c */
    float *wsf = ws;
    pack_shared(cs, &g, w, wsf, 0, gx != NULL);
    const float *apack_b = wsf + cs->groups * g.apack;
    const int *ints = (const int *)(wsf + sq_pad64(cs->groups * (g.apack + g.apack_b)));
    float *parts = block_parts(cs, &g, wsf);
    const int n = cs->n, oh = cs->oh, ow = cs->ow, h = cs->h, w_ = cs->w, nb = wchunks(n);
    const size_t gsize = (size_t)g.crs * g.mp, bpart = sq_pad64(g.part);
#pragma omp parallel num_threads(nthr)
    {
        thread_ws tw = thread_slice(&g, wsf, omp_get_thread_num());
        if (gw) {
            memset(tw.xpl, 0, sizeof(float) * g.xplanes);
            memset(tw.gt, 0, sizeof(float) * g.gt);
            memset(tw.zrow, 0, sizeof(float) * g.zrow);
        }
        if (gx) memset(tw.gpl, 0, sizeof(float) * g.gplanes);
        /* blocks of images when the weight gradient is wanted, single images otherwise */
        const int units = gw ? nb : n;
#pragma omp for schedule(dynamic, 1)
        for (int blk = 0; blk < units; blk++) {
            const int i0 = gw ? (int)((long)n * blk / nb) : blk;
            const int i1 = gw ? (int)((long)n * (blk + 1) / nb) : blk + 1;
            float *part = parts + (size_t)blk * bpart;
            for (int i = i0; i < i1; i++) {
                for (int gi = 0; gi < cs->groups; gi++) {
                    const size_t xo = ((size_t)i * cs->c + (size_t)gi * g.cg) * h * w_;
                    const float *gyg = gy + ((size_t)i * cs->k + (size_t)gi * g.kg) * oh * ow;
                    if (gw) {
                        sq_cpu_fast_fill_planes(x + xo, g.cg, h, w_, g.st, cs->pad, cs->pad,
                                                g.ph2, g.pw2, tw.xpl);
                        sq_cpu_fast_transpose(g.kg, oh * ow, gyg, oh * ow, tw.gt, g.mp);
                        sq_cpu_fast_wgrad(g.kg, g.crs, tw.gt, g.mp, tw.xpl, ints, tw.zrow, oh, ow,
                                          g.pw2, part + gi * gsize, i != i0);
                    }
                    if (gx)
                        bwd_data_image(cs, &g, apack_b + gi * g.apack_b, ints, gyg, gx + xo, &tw);
                }
            }
        }
        if (gw) {
            /* (implicit barrier above) block partials summed in block order into block 0,
               contiguously, then gw (K, crs) += that sum read from its (groups, crs, mp) layout */
            sq_cpu_sum_parts(parts, nb, bpart, g.part);
            const long nw = (long)cs->k * g.crs;
#pragma omp for schedule(static)
            for (long e = 0; e < nw; e++) {
                const long o = e / g.crs, j = e % g.crs;
                gw[e] += parts[(size_t)(o / g.kg) * gsize + (size_t)j * g.mp + o % g.kg];
            }
        }
    }
}
