/* conv_wino16.c: Winograd F(2x2, 3x3) for the narrow dense 3x3 stride-1 pad-1 float convolutions
   (16 to 64 channels a side, multiples of 16: resnet20's layers, the full-precision step's and the
   teacher's) on CPUs with AVX-512F. conv_wino.c's formulation (16 OpenBLAS GEMMs over transformed
   matrices in memory) loses to the direct paths below 64 channels: its GEMMs are 16 to 64 wide and
   its transforms stream 4x the activations through memory. Here everything stays per image and
   in L1/L2, with the channels in the 16 lanes of a register:
     image     x (C, H, W) -> xp (H + 2, W + 2, C), zero border: 16 x 16 register transposes
     weights   U[xi] (C x K) = (G g G^T)[xi], K contiguous (once per call)
     per block of NT tiles (NT * K / 16 = 24 accumulators):
       input   V[xi][t] (C) = (B^T d B)[xi] from the 4x4 window of tile t, 16 channels a register
       product M[xi][t] (K) = sum over c of V[xi][t][c] U[xi][c]   (broadcast x row, FMA)
       output  yb tile (2 x 2 x K) = A^T M A
     image     yb (2 TH, 2 TW, K) -> y (K, OH, OW) (+ bias, or added into y)
   The input gradient is the same on the swapped shape: gy correlated with the weights transposed
   and rotated by 180 degrees, added into gx (as conv_wino.c). Images are independent, each
   computed by one thread in a fixed order, so no result depends on the thread count or the
   schedule. The arithmetic is conv_wino.c's (the same transforms, the sum over c in order), so
   the error bound is its: within a few float epsilons of the sum of |products| (tests/test_ops.c
   winograd_*). */
#include "cpu_ops.h"
#include <omp.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define XI 16      /* transform points: 4x4 */
#define MAX_CH 64  /* channels a side (more: conv_wino.c or the direct paths) */
#define NACC 24    /* accumulators of the product: NT tiles x K/16 registers */
/* the weight gradient: tiles per block (V and the transformed gy of a block stay in L2), and
   images per partial sum (fixed, so that the sums do not depend on the thread count) */
#define WG_TILES 64
#define WG_IMGS 8

static int g_w16_off;
void sq_cpu_conv_wino16(int on) { g_w16_off = !on; }

typedef struct w16_geo {
    int th, tw, ph, pw, yw, kv, nt;
    size_t u, xp, yb, v, m, per_thread;
    /* the weight gradient: gy in HWC, blocks of WG_TILES tiles, partials of WG_IMGS images */
    int nparts;
    size_t gu, vw, gt, per_thread_w;
} w16_geo;

static w16_geo w16_geometry(const sq_conv_shape *cs)
{
    w16_geo g;
    g.th = (cs->oh + 1) / 2;
    g.tw = (cs->ow + 1) / 2;
    g.ph = 2 * g.th + 2;
    g.pw = 2 * g.tw + 2;
    g.yw = 2 * g.tw;
    g.kv = cs->k / 16;
    g.nt = NACC / (g.kv > 0 ? g.kv : 1);
    g.u = sq_pad64((size_t)XI * cs->c * cs->k);
    g.xp = sq_pad64((size_t)g.ph * g.pw * cs->c);
    g.yb = sq_pad64((size_t)2 * g.th * g.yw * cs->k);
    g.v = sq_pad64((size_t)XI * g.nt * cs->c);
    g.m = sq_pad64((size_t)XI * g.nt * cs->k);
    g.per_thread = g.xp + g.yb + g.v + g.m;
    g.nparts = (cs->n + WG_IMGS - 1) / WG_IMGS;
    g.gu = sq_pad64((size_t)XI * cs->c * cs->k);
    g.vw = sq_pad64((size_t)XI * WG_TILES * cs->c);
    g.gt = sq_pad64((size_t)XI * WG_TILES * cs->k);
    g.per_thread_w = g.xp + g.yb + g.vw + g.gt;
    return g;
}

#if defined(__x86_64__)
int sq_cpu_wino16_available(void)
{
    static int avail = -1;
    if (avail < 0) {
        __builtin_cpu_init();
        avail = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
                __builtin_cpu_supports("fma");
    }
    return avail;
}
#else
int sq_cpu_wino16_available(void) { return 0; }
#endif

int sq_cpu_wino16_applies(const sq_conv_shape *cs)
{
    return !g_w16_off && !cs->direct && sq_cpu_wino16_available() && sq_cpu_igemm_applies(cs) &&
           cs->groups == 1 && cs->r == 3 && cs->s == 3 && cs->stride == 1 && cs->pad == 1 &&
           cs->c % 16 == 0 && cs->k % 16 == 0 && cs->c >= 16 && cs->k >= 16 && cs->c <= MAX_CH &&
           cs->k <= MAX_CH; /* conv_wino.c's shapes have more than 64 channels on a side */
}

size_t sq_cpu_wino16_ws_floats(const sq_conv_shape *cs, int threads)
{
    const w16_geo f = w16_geometry(cs);
    const sq_conv_shape d = sq_cpu_wino_dgrad_shape(cs);
    const w16_geo b = w16_geometry(&d);
    const size_t a = f.u + (size_t)threads * f.per_thread, e = b.u + (size_t)threads * b.per_thread;
    const size_t wg = (size_t)(f.nparts + 1) * f.gu + (size_t)threads * f.per_thread_w;
    return a > e ? (a > wg ? a : wg) : (e > wg ? e : wg);
}

#if defined(__x86_64__)
#define WTARGET __attribute__((target("avx2,fma,avx512f")))

/* r[0..15] transposed in place: r[i] lane j <- r[j] lane i */
WTARGET static inline void transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    /* r[4q + s] now holds rows 4q..4q+3, column s + 4m in 128-bit lane m, interleaved by row */
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0x88);
        t[4 + i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0xdd);
        t[8 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0x88);
        t[12 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0xdd);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
        r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
        r[4 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0x88);
        r[12 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0xdd);
    }
}

/* U[xi][c][k] = (G g G^T)[xi] of the effective conv (flip: the input gradient's weights) */
static void weight_transform(const sq_conv_shape *cs, const float *w, int flip, float *u, int k)
{
    for (int c = 0; c < cs->c; c++) {
        float v[16];
        sq_cpu_wino_filter(cs, w, flip, k, c, v);
        for (int xi = 0; xi < XI; xi++) u[((size_t)xi * cs->c + c) * cs->k + k] = v[xi];
    }
}

/* src (C, H, W) of one image -> dst (rows, pitch, C) at row and column offset o: 16 x 16
   register transposes of 16 channels by 16 pixels */
WTARGET static void to_hwc(int C, int H, int W, const float *src, float *dst, int pitch, int o)
{
    const int hw = H * W;
    for (int cv = 0; cv < C; cv += 16)
        for (int p0 = 0; p0 < hw; p0 += 16) {
            const int cnt = hw - p0 < 16 ? hw - p0 : 16;
            const __mmask16 mk = (__mmask16)((1u << cnt) - 1u);
            __m512 r[16];
            for (int c = 0; c < 16; c++) r[c] = _mm512_maskz_loadu_ps(mk, src + (size_t)(cv + c) * hw + p0);
            transpose16(r);
            int h = p0 / W, ww = p0 % W; /* pixel p0 + q, stepped (a division per pixel costs
                                             more than the transpose) */
            for (int q = 0; q < cnt; q++) {
                _mm512_storeu_ps(dst + ((size_t)(h + o) * pitch + ww + o) * C + cv, r[q]);
                if (++ww == W) {
                    ww = 0;
                    h++;
                }
            }
        }
}

/* yb (2 TH, 2 TW, K) -> y (K, OH, OW): + bias, or added into y */
WTARGET static void from_hwc(const sq_conv_shape *cs, const w16_geo *g, const float *yb,
                             const float *bias, int acc, float *y)
{
    const int K = cs->k, OW = cs->ow, ohw = cs->oh * cs->ow;
    for (int kv = 0; kv < K; kv += 16)
        for (int p0 = 0; p0 < ohw; p0 += 16) {
            const int cnt = ohw - p0 < 16 ? ohw - p0 : 16;
            const __mmask16 mk = (__mmask16)((1u << cnt) - 1u);
            __m512 r[16];
            int h = p0 / OW, ww = p0 % OW;
            for (int q = 0; q < 16; q++) {
                r[q] = q < cnt ? _mm512_loadu_ps(yb + ((size_t)h * g->yw + ww) * K + kv) : _mm512_setzero_ps();
                if (++ww == OW) {
                    ww = 0;
                    h++;
                }
            }
            transpose16(r);
            for (int k = 0; k < 16; k++) {
                float *d = y + (size_t)(kv + k) * ohw + p0;
                __m512 v = r[k];
                if (bias) v = _mm512_add_ps(v, _mm512_set1_ps(bias[kv + k]));
                if (acc) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, d), v);
                _mm512_mask_storeu_ps(d, mk, v);
            }
        }
}

/* V[xi][t][c] of tiles t0 .. t0 + nt - 1 (row-major over the image's TH x TW tiles) */
WTARGET static void input_transform(const sq_conv_shape *cs, const w16_geo *g, const float *xp,
                                    int t0, int nt, int blk, float *v)
{
    const int C = cs->c;
    const size_t xs = (size_t)blk * C; /* V[xi] of a block of blk tiles */
    for (int t = 0; t < nt; t++) {
        const int tr = (t0 + t) / g->tw, tc = (t0 + t) % g->tw;
        const float *base = xp + ((size_t)2 * tr * g->pw + 2 * tc) * C;
        for (int cv = 0; cv < C; cv += 16) {
            __m512 d[4][4], e[4][4];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) d[i][j] = _mm512_loadu_ps(base + ((size_t)i * g->pw + j) * C + cv);
            for (int j = 0; j < 4; j++) {
                e[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
                e[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
                e[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
                e[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
            }
            float *o = v + (size_t)t * C + cv;
            for (int i = 0; i < 4; i++) {
                _mm512_storeu_ps(o + (size_t)(4 * i + 0) * xs, _mm512_sub_ps(e[i][0], e[i][2]));
                _mm512_storeu_ps(o + (size_t)(4 * i + 1) * xs, _mm512_add_ps(e[i][1], e[i][2]));
                _mm512_storeu_ps(o + (size_t)(4 * i + 2) * xs, _mm512_sub_ps(e[i][2], e[i][1]));
                _mm512_storeu_ps(o + (size_t)(4 * i + 3) * xs, _mm512_sub_ps(e[i][1], e[i][3]));
            }
        }
    }
}

/* The broadcast-FMA block both products use: out[r][16 q + l] (= or +=) sum over j < nred, in
   order, of a[r * ar + j * aj] * b[j * ldb + 16 q + l], for rows r < nr and registers q < nq
   (nr * nq accumulators; nr and nq are constants at every call) */
__attribute__((always_inline)) WTARGET static inline void bcast_fma(const int nr, const int nq, int nred,
                                                                    const float *a, size_t ar, size_t aj,
                                                                    const float *b, size_t ldb, float *out,
                                                                    size_t ldo, int accumulate)
{
    __m512 acc[NACC];
#pragma GCC unroll 24
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 4
        for (int q = 0; q < nq; q++)
            acc[r * nq + q] = accumulate ? _mm512_loadu_ps(out + r * ldo + 16 * q) : _mm512_setzero_ps();
    for (int j = 0; j < nred; j++) {
        __m512 w[4];
#pragma GCC unroll 4
        for (int q = 0; q < nq; q++) w[q] = _mm512_loadu_ps(b + j * ldb + 16 * q);
#pragma GCC unroll 24
        for (int r = 0; r < nr; r++) {
            const __m512 x = _mm512_set1_ps(a[r * ar + j * aj]);
#pragma GCC unroll 4
            for (int q = 0; q < nq; q++) acc[r * nq + q] = _mm512_fmadd_ps(x, w[q], acc[r * nq + q]);
        }
    }
#pragma GCC unroll 24
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 4
        for (int q = 0; q < nq; q++) _mm512_storeu_ps(out + r * ldo + 16 * q, acc[r * nq + q]);
}

/* M[xi][t][k] = sum over c, in order, of V[xi][t][c] U[xi][c][k]: NT tiles x KV registers */
__attribute__((always_inline)) WTARGET static inline void product(const int kv, const int nt, int C,
                                                                  const float *u, const float *v,
                                                                  float *m)
{
    bcast_fma(nt, kv, C, v, (size_t)C, 1, u, (size_t)16 * kv, m, (size_t)16 * kv, 0);
}

WTARGET static void products(const sq_conv_shape *cs, const w16_geo *g, const float *u,
                             const float *v, float *m)
{
    const int C = cs->c, K = cs->k;
    const size_t us = (size_t)C * K, vs = (size_t)g->nt * C, ms = (size_t)g->nt * K;
    for (int xi = 0; xi < XI; xi++) {
        const float *uu = u + xi * us, *vv = v + xi * vs;
        float *mm = m + xi * ms;
        switch (g->kv) {
        case 1: product(1, NACC, C, uu, vv, mm); break;
        case 2: product(2, NACC / 2, C, uu, vv, mm); break;
        case 3: product(3, NACC / 3, C, uu, vv, mm); break;
        default: product(4, NACC / 4, C, uu, vv, mm); break;
        }
    }
}

/* yb tiles t0 .. t0 + nt - 1 = A^T M A */
WTARGET static void output_transform(const sq_conv_shape *cs, const w16_geo *g, const float *m,
                                     int t0, int nt, float *yb)
{
    const int K = cs->k;
    const size_t ms = (size_t)g->nt * K;
    for (int t = 0; t < nt; t++) {
        const int tr = (t0 + t) / g->tw, tc = (t0 + t) % g->tw;
        float *o = yb + ((size_t)2 * tr * g->yw + 2 * tc) * K;
        for (int kv = 0; kv < K; kv += 16) {
            const float *src = m + (size_t)t * K + kv;
            __m512 s[2][4];
            for (int j = 0; j < 4; j++) {
                const __m512 m0 = _mm512_loadu_ps(src + (size_t)j * ms),
                             m1 = _mm512_loadu_ps(src + (size_t)(4 + j) * ms),
                             m2 = _mm512_loadu_ps(src + (size_t)(8 + j) * ms),
                             m3 = _mm512_loadu_ps(src + (size_t)(12 + j) * ms);
                s[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                s[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
            }
            for (int i = 0; i < 2; i++) {
                _mm512_storeu_ps(o + (size_t)i * g->yw * K + kv,
                                 _mm512_add_ps(_mm512_add_ps(s[i][0], s[i][1]), s[i][2]));
                _mm512_storeu_ps(o + ((size_t)i * g->yw + 1) * K + kv,
                                 _mm512_sub_ps(_mm512_sub_ps(s[i][1], s[i][2]), s[i][3]));
            }
        }
    }
}

/* y (+)= Winograd correlation of x with w (flip: the input gradient's weights) over cs */
static void run(const sq_conv_shape *cs, const float *x, const float *w, int flip, const float *b,
                float *y, int acc, float *ws, int nthr)
{
    const w16_geo g = w16_geometry(cs);
    const int ntiles = g.th * g.tw;
    float *u = ws;
#pragma omp parallel num_threads(nthr)
    {
#pragma omp for schedule(static)
        for (int k = 0; k < cs->k; k++) weight_transform(cs, w, flip, u, k);
        float *xp = ws + g.u + (size_t)omp_get_thread_num() * g.per_thread, *yb = xp + g.xp,
              *v = yb + g.yb, *m = v + g.v;
        memset(xp, 0, sizeof(float) * g.xp); /* the zero border (the interior is rewritten) */
#pragma omp for schedule(dynamic, 1)
        for (int i = 0; i < cs->n; i++) {
            to_hwc(cs->c, cs->h, cs->w, x + (size_t)i * cs->c * cs->h * cs->w, xp, g.pw, 1);
            for (int t0 = 0; t0 < ntiles; t0 += g.nt) {
                const int nt = ntiles - t0 < g.nt ? ntiles - t0 : g.nt;
                input_transform(cs, &g, xp, t0, nt, g.nt, v);
                products(cs, &g, u, v, m);
                output_transform(cs, &g, m, t0, nt, yb);
            }
            from_hwc(cs, &g, yb, b, acc, y + (size_t)i * cs->k * cs->oh * cs->ow);
        }
        sq_cpu_clean_upper(); /* zmm16-31 held accumulators (cpu_ops.h) */
    }
}

void sq_cpu_wino16_fwd(const sq_conv_shape *cs, const float *x, const float *w, const float *b,
                       float *y, float *ws, int nthr)
{
    run(cs, x, w, 0, b, y, 0, ws, nthr);
}

void sq_cpu_wino16_dgrad(const sq_conv_shape *cs, const float *w, const float *gy, float *gx,
                         float *ws, int nthr)
{
    const sq_conv_shape d = sq_cpu_wino_dgrad_shape(cs);
    run(&d, gy, w, 1, NULL, gx, 1, ws, nthr);
}

/* GYT[xi][t][k] = (A g A^T)[xi] of the 2x2 gy window of tiles t0 .. t0 + nt - 1 (gyp: gy in HWC,
   zero past OH and OW) */
WTARGET static void gy_transform(const sq_conv_shape *cs, const w16_geo *g, const float *gyp,
                                 int t0, int nt, float *gt)
{
    const int K = cs->k;
    const size_t xs = (size_t)WG_TILES * K;
    for (int t = 0; t < nt; t++) {
        const int tr = (t0 + t) / g->tw, tc = (t0 + t) % g->tw;
        const float *base = gyp + ((size_t)2 * tr * g->yw + 2 * tc) * K;
        for (int kv = 0; kv < K; kv += 16) {
            const __m512 e00 = _mm512_loadu_ps(base + kv), e01 = _mm512_loadu_ps(base + K + kv),
                         e10 = _mm512_loadu_ps(base + (size_t)g->yw * K + kv),
                         e11 = _mm512_loadu_ps(base + ((size_t)g->yw + 1) * K + kv);
            const __m512 zero = _mm512_setzero_ps();
            /* P = A e (rows e0, e0 + e1, e0 - e1, -e1), then P A^T per row */
            const __m512 p[4][2] = {{e00, e01},
                                    {_mm512_add_ps(e00, e10), _mm512_add_ps(e01, e11)},
                                    {_mm512_sub_ps(e00, e10), _mm512_sub_ps(e01, e11)},
                                    {_mm512_sub_ps(zero, e10), _mm512_sub_ps(zero, e11)}};
            float *o = gt + (size_t)t * K + kv;
            for (int i = 0; i < 4; i++) {
                _mm512_storeu_ps(o + (size_t)(4 * i) * xs, p[i][0]);
                _mm512_storeu_ps(o + (size_t)(4 * i + 1) * xs, _mm512_add_ps(p[i][0], p[i][1]));
                _mm512_storeu_ps(o + (size_t)(4 * i + 2) * xs, _mm512_sub_ps(p[i][0], p[i][1]));
                _mm512_storeu_ps(o + (size_t)(4 * i + 3) * xs, _mm512_sub_ps(zero, p[i][1]));
            }
        }
    }
}

/* GU[c][k] (one point, cc channels from c0, kg registers of k from k0) = (first) or += the sum
   over the nt tiles, in order, of V[t][c] GYT[t][k] */
__attribute__((always_inline)) WTARGET static inline void wg_product(const int cc, const int kg,
                                                                     int nt, int C, int K,
                                                                     const float *v,
                                                                     const float *gt, float *gu,
                                                                     int first)
{
    bcast_fma(cc, kg, nt, v, 1, (size_t)C, gt, (size_t)K, gu, (size_t)K, !first);
}

WTARGET static void wg_products(const sq_conv_shape *cs, int nt, const float *v, const float *gt,
                                float *gu, int first)
{
    const int C = cs->c, K = cs->k, kg = K % 32 == 0 ? 2 : 1, cc = kg == 2 ? 8 : 16;
    for (int xi = 0; xi < XI; xi++) {
        const float *vv = v + (size_t)xi * WG_TILES * C, *gg = gt + (size_t)xi * WG_TILES * K;
        float *uu = gu + (size_t)xi * C * K;
        for (int c0 = 0; c0 < C; c0 += cc)
            for (int k0 = 0; k0 < K; k0 += 16 * kg) {
                if (kg == 2)
                    wg_product(8, 2, nt, C, K, vv + c0, gg + k0, uu + (size_t)c0 * K + k0, first);
                else
                    wg_product(16, 1, nt, C, K, vv + c0, gg + k0, uu + (size_t)c0 * K + k0, first);
            }
    }
}

/* gw[k][c] += G^T X G for X = GU[.][c][k] (4x4 points to 3x3 taps) */
static void weight_grad_out(const sq_conv_shape *cs, const float *gu, float *gw, int k)
{
    for (int c = 0; c < cs->c; c++) {
        float x[16];
        for (int i = 0; i < 16; i++) x[i] = gu[((size_t)i * cs->c + c) * cs->k + k];
        sq_cpu_wino_filter_grad_add(x, gw + ((size_t)k * cs->c + c) * 9);
    }
}

/* gw += the weight gradient: GU[xi] (C x K) = sum over tiles of V[xi]^T GYT[xi], one partial per
   WG_IMGS images (each summed by one thread, image by image and block by block), the partials
   added in order, then G^T GU G; so gw does not depend on the thread count or the schedule */
void sq_cpu_wino16_wgrad(const sq_conv_shape *cs, const float *x, const float *gy, float *gw,
                         float *ws, int nthr)
{
    const w16_geo g = w16_geometry(cs);
    const int ntiles = g.th * g.tw;
    const size_t ohw = (size_t)cs->oh * cs->ow, guf = (size_t)XI * cs->c * cs->k;
    float *gu = ws, *parts = ws + g.gu;
#pragma omp parallel num_threads(nthr)
    {
        float *xp = parts + (size_t)g.nparts * g.gu + (size_t)omp_get_thread_num() * g.per_thread_w,
              *gyp = xp + g.xp, *v = gyp + g.yb, *gt = v + g.vw;
        memset(xp, 0, sizeof(float) * (g.xp + g.yb)); /* the zero borders */
#pragma omp for schedule(dynamic, 1)
        for (int p = 0; p < g.nparts; p++) {
            float *part = parts + (size_t)p * g.gu;
            const int i1 = (p + 1) * WG_IMGS < cs->n ? (p + 1) * WG_IMGS : cs->n;
            for (int i = p * WG_IMGS; i < i1; i++) {
                to_hwc(cs->c, cs->h, cs->w, x + (size_t)i * cs->c * cs->h * cs->w, xp, g.pw, 1);
                to_hwc(cs->k, cs->oh, cs->ow, gy + (size_t)i * cs->k * ohw, gyp, g.yw, 0);
                for (int t0 = 0; t0 < ntiles; t0 += WG_TILES) {
                    const int nt = ntiles - t0 < WG_TILES ? ntiles - t0 : WG_TILES;
                    input_transform(cs, &g, xp, t0, nt, WG_TILES, v);
                    gy_transform(cs, &g, gyp, t0, nt, gt);
                    wg_products(cs, nt, v, gt, part, i == p * WG_IMGS && t0 == 0);
                }
            }
        }
#pragma omp for schedule(static)
        for (size_t e = 0; e < guf; e++) {
            float a = parts[e];
            for (int p = 1; p < g.nparts; p++) a += parts[(size_t)p * g.gu + e];
            gu[e] = a;
        }
#pragma omp for schedule(static)
        for (int k = 0; k < cs->k; k++) weight_grad_out(cs, gu, gw, k);
        sq_cpu_clean_upper(); /* zmm16-31 held accumulators (cpu_ops.h) */
    }
}
#else
void sq_cpu_wino16_fwd(const sq_conv_shape *cs, const float *x, const float *w, const float *b,
                       float *y, float *ws, int nthr)
{
    (void)cs; (void)x; (void)w; (void)b; (void)y; (void)ws; (void)nthr;
}
void sq_cpu_wino16_dgrad(const sq_conv_shape *cs, const float *w, const float *gy, float *gx,
                         float *ws, int nthr)
{
    (void)cs; (void)w; (void)gy; (void)gx; (void)ws; (void)nthr;
}
void sq_cpu_wino16_wgrad(const sq_conv_shape *cs, const float *x, const float *gy, float *gw,
                         float *ws, int nthr)
{
    (void)cs; (void)x; (void)gy; (void)gw; (void)ws; (void)nthr;
}
#endif
