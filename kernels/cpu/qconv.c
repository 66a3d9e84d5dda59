/* qconv.c: the forward of a quantized convolution in integer arithmetic (AVX-512 VNNI). The
   student's conv input and weight are fake-quantized: every value is code * step with an integer
   code (quant_math.h sq_qm_grid), activations unsigned (0..255), weights signed (-128..127). So
   y = (sum of code products) * step_x * step_w * |s| + b, exactly the float conv up to rounding,
   with 4 multiply-adds per 32-bit lane per instruction (vpdpbusd) instead of 1.
   Layout: per image the activation codes go into zero-padded planes of 4 interleaved channels
   (byte 4 p + t of group g is channel 4 g + t at padded position p), so one 32-byte load at a
   tap's offset gives 8 output positions x 4 channels; the weights are packed as 4 signed bytes
   per (output channel, channel group, tap), broadcast per row. Output chunks (8 positions of one
   row, masked when shorter) and the dynamic image schedule follow conv_igemm.c. Rows narrower
   than 8 positions (4x4, 7x7 maps) would idle most of each vector: there sub-blocks of images
   are unfolded side by side first. Stride 1, groups 1 only; everything else, and CPUs without
   VNNI, use the float path. */
#include "cpu_ops.h"
#include "sqakd/quant_math.h"
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define QMR 4   /* output channels per tile */

typedef struct qc_geo {
    int c4, kd4;            /* channel groups of 4; k steps = c4 * r * s */
    int ph2, pw2;           /* padded plane */
    size_t gplane;          /* positions per channel-group plane (with read slack) */
    int ncf;                /* output chunks */
    size_t apack, ints, planes;   /* int32 packed weights; ints (offsets, chunks); plane bytes */
    /* rows narrower than 8 (narrow): sub-blocks of bi images, their planes unfolded side by side
       into kd4 rows of ldu words, the sums into K rows of ldu floats */
    int narrow, bi, ldu;
    size_t tbytes;                /* per-thread bytes */
} qc_geo;

static size_t rnd(size_t v, size_t m) { return (v + m - 1) / m * m; }

static qc_geo qc_geometry(const sq_conv_shape *cs)
{
    qc_geo g;
    g.c4 = (cs->c + 3) / 4;
    g.kd4 = g.c4 * cs->r * cs->s;
    g.ph2 = cs->h + 2 * cs->pad;
    g.pw2 = cs->w + 2 * cs->pad;
    /* a chunk starting at (oy, ox) reads positions up to (oy + r - 1) * pw2 + ox + s - 1 + 7 */
    g.gplane = (size_t)(cs->oh - 1 + cs->r - 1) * g.pw2 + rnd((size_t)cs->ow, 8) + cs->s - 1;
    if (g.gplane < (size_t)g.ph2 * g.pw2) g.gplane = (size_t)g.ph2 * g.pw2;
    g.gplane = rnd(g.gplane, 16);
    g.ncf = cs->oh * ((cs->ow + 7) / 8);
    g.apack = rnd((size_t)cs->k, QMR) * g.kd4;
    g.ints = sq_pad64(g.kd4) + 3 * sq_pad64(g.ncf);
    g.planes = rnd((size_t)g.c4 * g.gplane * 4, 64);
    g.narrow = cs->ow < 8;
    g.bi = g.ldu = 0;
    g.tbytes = g.planes;
    if (g.narrow) {
        const int ohw = cs->oh * cs->ow;
        g.bi = 256 / ohw;
        if (g.bi < 1) g.bi = 1;
        if (g.bi > cs->n) g.bi = cs->n;
        g.ldu = (int)rnd((size_t)g.bi * ohw, 8);
        g.ncf = g.ldu / 8;
        g.ints = sq_pad64(g.kd4) + 3 * sq_pad64(g.ncf);
        g.tbytes = (size_t)g.bi * g.planes + rnd((size_t)g.kd4 * g.ldu * 4, 64) + rnd((size_t)cs->k * g.ldu * 4, 64);
    }
    return g;
}

int sq_cpu_qconv_shape_ok(const sq_conv_shape *cs)
{
    return cs->stride == 1 && cs->groups == 1 && cs->r <= 7 && cs->s <= 7 && cs->oh > 0 &&
           cs->ow > 0;
}

size_t sq_cpu_qconv_ws_bytes(const sq_conv_shape *cs, int threads)
{
    qc_geo g = qc_geometry(cs);
    return (g.apack + g.ints) * 4 + (size_t)threads * g.tbytes + 128;
}

/* the quantizer's integer grid with its parameters loaded (cpu_ops.h); 0 if none */
int sq_cpu_quant_grid(const sq_quant_cfg *cfg, const float *qp, size_t n, float *step, int *cmin, int *cmax)
{
    sq_qm_ctx k;
    sq_qm_ctx_init(&k, cfg, n);
    int np = sq_qm_nparams(&k);
    if (np > 0) k.p0 = qp[0];
    if (np > 1) k.p1 = qp[1];
    return sq_qm_grid(&k, step, cmin, cmax) && *step > 0.0f && isfinite(*step);
}

/* the weight's grid per output row (cpu_ops.h): one for a per-tensor quantizer; per-channel
   weights (quant.h) have a grid per channel, whose steps differ for LSQ (s_c) */
int sq_cpu_weight_steps(const sq_conv_shape *cs, const sq_quant_cfg *qw, const float *qpw, float *rstep,
                        int *wlo, int *whi)
{
    const size_t nw = (size_t)cs->k * (cs->c / cs->groups) * cs->r * cs->s;
    const int wch = sq_quant_channels(qw), npw = sq_quant_nparams(qw);
    sq_quant_cfg qw1 = *qw;
    qw1.channels = 0;
    float sw = 0.0f;
    *wlo = 0;
    *whi = 0;
    for (int o = 0; o < cs->k; o++) {
        if (wch > 1 || o == 0) {
            float p[SQ_QUANT_MAX_PARAMS] = {0};
            int lo, hi;
            for (int j = 0; j < npw; j++) p[j] = wch > 1 ? qpw[j * wch + o] : qpw[j];
            if (!sq_cpu_quant_grid(&qw1, p, wch > 1 ? nw / (size_t)wch : nw, &sw, &lo, &hi)) return 0;
            if (lo < *wlo) *wlo = lo;
            if (hi > *whi) *whi = hi;
        }
        rstep[o] = sw;
    }
    return 1;
}

#if defined(__x86_64__)
#include <immintrin.h>

int sq_cpu_qconv_available(void)
{
    static int avail = -1;
    if (avail < 0) {
        __builtin_cpu_init();
        avail = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
    }
    return avail;
}

#define QTARGET __attribute__((target("avx2,fma,avx512f,avx512vl,avx512bw,avx512vnni")))

static const int k_qmask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* codes of 8 floats: rint(x / step) (nearest even, as the quantizers round) clamped */
QTARGET static inline __m256i codes8(const float *x, __m256 inv, __m256i lo, __m256i hi)
{
    __m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), inv));
    return _mm256_min_epi32(_mm256_max_epi32(v, lo), hi);
}

/* activation codes of one image into the interleaved planes (zero borders already there) */
QTARGET static void fill_codes(const sq_conv_shape *cs, const qc_geo *g, const float *x,
                               float inv_step, int cmin, int cmax, uint32_t *planes)
{
    const int h = cs->h, w = cs->w, c = cs->c, pad = cs->pad;
    const size_t hw = (size_t)h * w;
    const __m256 inv = _mm256_set1_ps(inv_step);
    const __m256i lo = _mm256_set1_epi32(cmin), hi = _mm256_set1_epi32(cmax);
    const __m256i m8 = _mm256_set1_epi32(0xff);
    for (int gi = 0; gi < g->c4; gi++) {
        const float *xc[4];
        int have[4];
        for (int t = 0; t < 4; t++) {
            have[t] = 4 * gi + t < c;
            xc[t] = x + (size_t)(have[t] ? 4 * gi + t : 0) * hw;
        }
        uint32_t *dst = planes + (size_t)gi * g->gplane;
        for (int yy = 0; yy < h; yy++) {
            uint32_t *row = dst + (size_t)(yy + pad) * g->pw2 + pad;
            const size_t ro = (size_t)yy * w;
            int xx = 0;
            for (; xx + 8 <= w; xx += 8) {
                __m256i acc = _mm256_setzero_si256();
                for (int t = 0; t < 4; t++) {
                    if (!have[t]) continue;
                    __m256i v = _mm256_and_si256(codes8(xc[t] + ro + xx, inv, lo, hi), m8);
                    acc = _mm256_or_si256(acc, _mm256_slli_epi32(v, 8 * t));
                }
                _mm256_storeu_si256((__m256i *)(row + xx), acc);
            }
            for (; xx < w; xx++) {
                uint32_t word = 0;
                for (int t = 0; t < 4; t++) {
                    if (!have[t]) continue;
                    float v = rintf(xc[t][ro + xx] * inv_step);
                    int q = v < cmin ? cmin : (v > cmax ? cmax : (int)v);
                    word |= (uint32_t)(q & 0xff) << (8 * t);
                }
                row[xx] = word;
            }
        }
    }
}

/* QMR output channels x NCH chunks of 8 positions */
QTARGET static inline void qtile(const int nch, int m, int i0, int kd4, const int32_t *ap,
                                 const uint32_t *base, const int *off, const int *in_pos,
                                 const int *out_pos, const int *len, float *y, size_t ldc,
                                 const float *rscale, const float *bias)
{
    __m256i acc[QMR][3];
    const uint32_t *bp[3];
#pragma GCC unroll 4
    for (int r = 0; r < QMR; r++)
#pragma GCC unroll 3
        for (int j = 0; j < nch; j++) acc[r][j] = _mm256_setzero_si256();
#pragma GCC unroll 3
    for (int j = 0; j < nch; j++) bp[j] = base + in_pos[j];
    for (int k = 0; k < kd4; k++, ap += QMR) {
        __m256i b[3];
        const int o = off[k];
#pragma GCC unroll 3
        for (int j = 0; j < nch; j++) b[j] = _mm256_loadu_si256((const __m256i *)(bp[j] + o));
#pragma GCC unroll 4
        for (int r = 0; r < QMR; r++) {
            const __m256i a = _mm256_set1_epi32(ap[r]);
#pragma GCC unroll 3
            for (int j = 0; j < nch; j++) acc[r][j] = _mm256_dpbusd_epi32(acc[r][j], b[j], a);
        }
    }
#pragma GCC unroll 3
    for (int j = 0; j < nch; j++) {
        const __m256i mask = _mm256_loadu_si256((const __m256i *)(k_qmask + 8 - len[j]));
        for (int r = 0; r < QMR && i0 + r < m; r++) {
            float *cp = y + (size_t)(i0 + r) * ldc + out_pos[j];
            __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[r][j]), _mm256_set1_ps(rscale[i0 + r]));
            if (bias) v = _mm256_add_ps(v, _mm256_set1_ps(bias[i0 + r]));
            if (len[j] == 8) _mm256_storeu_ps(cp, v);
            else _mm256_maskstore_ps(cp, mask, v);
        }
    }
}

QTARGET static void qgemm(int m, int kd4, const int32_t *apack, const uint32_t *base,
                          const int *off, int nchunk, const int *in_pos, const int *out_pos,
                          const int *len, float *y, size_t ldc, const float *rscale, const float *bias)
{
    int j0 = 0;
    for (; j0 + 3 <= nchunk; j0 += 3)
        for (int i0 = 0; i0 < m; i0 += QMR)
            qtile(3, m, i0, kd4, apack + (size_t)(i0 / QMR) * kd4 * QMR, base, off, in_pos + j0,
                  out_pos + j0, len + j0, y, ldc, rscale, bias);
    if (nchunk - j0 == 2)
        for (int i0 = 0; i0 < m; i0 += QMR)
            qtile(2, m, i0, kd4, apack + (size_t)(i0 / QMR) * kd4 * QMR, base, off, in_pos + j0,
                  out_pos + j0, len + j0, y, ldc, rscale, bias);
    else if (nchunk - j0 == 1)
        for (int i0 = 0; i0 < m; i0 += QMR)
            qtile(1, m, i0, kd4, apack + (size_t)(i0 / QMR) * kd4 * QMR, base, off, in_pos + j0,
                  out_pos + j0, len + j0, y, ldc, rscale, bias);
}

int sq_cpu_qconv_run(const sq_conv_shape *cs, const sq_quant_cfg *qa, const float *qpa,
                     const float *xq, const sq_quant_cfg *qw, const float *qpw, const float *wq,
                     const float *yscale, const float *b, float *y, void *ws, int nthr)
{
    if (!sq_cpu_qconv_available() || !sq_cpu_qconv_shape_ok(cs)) return 0;
    float sx;
    int xlo, xhi, wlo, whi;
    if (!sq_cpu_quant_grid(qa, qpa, (size_t)cs->n * cs->c * cs->h * cs->w, &sx, &xlo, &xhi) || xlo < 0 ||
        xhi > 255)
        return 0;
    const int K = cs->k;
    float *rstep = malloc(2 * (size_t)K * sizeof(float));
    if (!rstep) return 0;
    float *rscale = rstep + K;
    if (!sq_cpu_weight_steps(cs, qw, qpw, rstep, &wlo, &whi) || wlo < -128 || whi > 127) {
        free(rstep);
        return 0;
    }
    const qc_geo g = qc_geometry(cs);
    int32_t *apack = ws;
    int *ints = (int *)(apack + g.apack);
    uint8_t *tplanes = (uint8_t *)rnd((uintptr_t)(ints + g.ints), 64);
    /* weights: signed codes, 4 channels per int32, panel-major, k = (group, r, s) */
    const int R = cs->r, S = cs->s, C = cs->c;
    for (int i0 = 0; i0 < K; i0 += QMR)
        for (int gi = 0; gi < g.c4; gi++)
            for (int r = 0; r < R; r++)
                for (int s = 0; s < S; s++) {
                    const int k = (gi * R + r) * S + s;
                    int32_t *dst = apack + (size_t)(i0 / QMR) * g.kd4 * QMR + (size_t)k * QMR;
                    for (int rr = 0; rr < QMR; rr++) {
                        uint32_t word = 0;
                        for (int t = 0; t < 4 && i0 + rr < K; t++) {
                            const int ch = 4 * gi + t;
                            if (ch >= C) break;
                            float v = rintf(wq[(((size_t)(i0 + rr) * C + ch) * R + r) * S + s] * (1.0f / rstep[i0 + rr]));
                            int q = v < wlo ? wlo : (v > whi ? whi : (int)v);
                            word |= (uint32_t)(q & 0xff) << (8 * t);
                        }
                        dst[rr] = (int32_t)word;
                    }
                }
    for (int gi = 0; gi < g.c4; gi++)
        for (int r = 0; r < R; r++)
            for (int s = 0; s < S; s++)
                ints[(gi * R + r) * S + s] = g.narrow ? ((gi * R + r) * S + s) * g.ldu
                                                      : (int)((size_t)gi * g.gplane + (size_t)r * g.pw2 + s);
    int *cf = ints + sq_pad64(g.kd4);
    if (g.narrow) sq_cpu_fast_chunks(1, g.ldu, g.ldu, g.ldu, cf, cf + sq_pad64(g.ncf), cf + 2 * sq_pad64(g.ncf));
    else sq_cpu_fast_chunks(cs->oh, cs->ow, g.pw2, cs->ow, cf, cf + sq_pad64(g.ncf), cf + 2 * sq_pad64(g.ncf));
    for (int o = 0; o < K; o++) rscale[o] = sx * rstep[o] * (yscale ? fabsf(yscale[0]) : 1.0f);
    const float inv_x = 1.0f / sx;
    const size_t ohw = (size_t)cs->oh * cs->ow, chw = (size_t)C * cs->h * cs->w;
    const int n = cs->n;
    if (g.narrow) {
        /* rows narrower than 8: per sub-block of bi images, every image's planes unfolded side
           by side (word (group, r, s) of position p of image ii), one GEMM over the unfolded
           columns, the sums copied out per image; integer sums, so the same y as per image */
        const int nsub = (n + g.bi - 1) / g.bi, oh = cs->oh, ow = cs->ow;
        const size_t pw = g.planes / 4;
#pragma omp parallel num_threads(nthr)
        {
            uint8_t *tp = tplanes + (size_t)omp_get_thread_num() * g.tbytes;
            uint32_t *pl = (uint32_t *)tp, *u = (uint32_t *)(tp + (size_t)g.bi * g.planes);
            float *t = (float *)((uint8_t *)u + rnd((size_t)g.kd4 * g.ldu * 4, 64));
            memset(pl, 0, (size_t)g.bi * g.planes);
            memset(u, 0, (size_t)g.kd4 * g.ldu * 4);
#pragma omp for schedule(dynamic, 1)
            for (int sb = 0; sb < nsub; sb++) {
                const int i0 = sb * g.bi, ni = n - i0 < g.bi ? n - i0 : g.bi;
                for (int ii = 0; ii < ni; ii++)
                    fill_codes(cs, &g, xq + (size_t)(i0 + ii) * chw, inv_x, xlo, xhi, pl + (size_t)ii * pw);
                for (int gi = 0; gi < g.c4; gi++)
                    for (int r = 0; r < R; r++)
                        for (int s = 0; s < S; s++) {
                            uint32_t *row = u + (size_t)((gi * R + r) * S + s) * g.ldu;
                            for (int ii = 0; ii < ni; ii++) {
                                const uint32_t *src = pl + (size_t)ii * pw + (size_t)gi * g.gplane;
                                for (int yy = 0; yy < oh; yy++)
                                    memcpy(row + (size_t)ii * ohw + (size_t)yy * ow,
                                           src + (size_t)(yy + r) * g.pw2 + s, (size_t)ow * 4);
                            }
                            if (ni < g.bi) memset(row + (size_t)ni * ohw, 0, (size_t)(g.ldu - ni * (int)ohw) * 4);
                        }
                qgemm(K, g.kd4, apack, u, ints, g.ncf, cf, cf + sq_pad64(g.ncf), cf + 2 * sq_pad64(g.ncf), t,
                      (size_t)g.ldu, rscale, b);
                for (int ii = 0; ii < ni; ii++)
                    for (int k = 0; k < K; k++)
                        memcpy(y + ((size_t)(i0 + ii) * K + k) * ohw, t + (size_t)k * g.ldu + (size_t)ii * ohw,
                               ohw * 4);
            }
            sq_cpu_clean_upper();
        }
        free(rstep);
        return 1;
    }
#pragma omp parallel num_threads(nthr)
    {
        uint32_t *pl = (uint32_t *)(tplanes + (size_t)omp_get_thread_num() * g.planes);
        memset(pl, 0, g.planes);
#pragma omp for schedule(dynamic, 1)
        for (int i = 0; i < n; i++) {
            fill_codes(cs, &g, xq + (size_t)i * chw, inv_x, xlo, xhi, pl);
            qgemm(K, g.kd4, apack, pl, ints, g.ncf, cf, cf + sq_pad64(g.ncf),
                  cf + 2 * sq_pad64(g.ncf), y + (size_t)i * K * ohw, ohw, rscale, b);
        }
        sq_cpu_clean_upper();
    }
    free(rstep);
    return 1;
}

#else
int sq_cpu_qconv_available(void) { return 0; }
int sq_cpu_qconv_run(const sq_conv_shape *cs, const sq_quant_cfg *qa, const float *qpa,
                     const float *xq, const sq_quant_cfg *qw, const float *qpw, const float *wq,
                     const float *yscale, const float *b, float *y, void *ws, int nthr)
{
    (void)cs; (void)qa; (void)qpa; (void)xq; (void)qw; (void)qpw; (void)wq; (void)yscale;
    (void)b; (void)y; (void)ws; (void)nthr;
    return 0;
}
#endif
