/* qconv_bwd.c: the backward of a quantized convolution with BF16 dot products (AVX-512 BF16,
   vdpbf16ps: two bf16 products per 32-bit lane added into an fp32 sum, twice the multiply-adds
   of an fp32 FMA per instruction). The student's conv input and weight are fake-quantized: every
   value is code * step with an integer code of at most 9 bits (quant_math.h sq_qm_grid), which
   bf16 (8 significant bits, so every integer up to 256 in magnitude) holds exactly. So
     input grad   gx[c] = step_w * |s| * sum_k code_w[k][c] * bf16(gy[k])
                  (per-channel weights of different steps:
                   sum_k code_w[k][c] * bf16(gy[k] * step_w[k] * |s|))
     weight grad  gW[k] += step_x * sum_p bf16(gy[k][p]) * code_x[p]
   where only the output gradient is rounded (to nearest even: relative error at most 2^-8 per
   element, bf16 having 8 significant bits); every product is exact and every sum runs in fp32,
   in a fixed order. The results are those of the fp32 backward up to that rounding of gy
   (docs/results.md states the measured difference and the accuracy table run with it).
   Layout. Input grad: a stride-1 correlation of zero-padded gy with the flipped taps; gy is
   copied per image into padded planes of output-channel pairs (one 32-bit word, two bf16, per
   position), the weight codes packed as pairs per (input channel, channel pair, tap) and
   broadcast, 8 positions of a gx row per vector (conv_igemm.c's chunks). Weight grad: gy is
   transposed per image to (position pair, output channel) words, the input codes go into padded
   bf16 planes, and each tap broadcasts the two codes of a position pair; sums per fixed block of
   images, added in block order (deterministic, independent of the thread count).
   Rows narrower than 8 positions (4x4 and 7x7 maps) would idle most of each vector: there
   sub-blocks of images are unfolded side by side first (run_narrow).
   Stride 1, groups 1, pad < kernel size; otherwise (and without AVX-512 BF16) the caller runs
   the fp32 backward, as it does for the weight gradient of layers whose block partials would be
   too large, and for the bias gradient. */
#include "cpu_ops.h"
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BMR 4            /* input channels per input-grad tile */
#define QB_WCHUNKS 32    /* weight-gradient blocks of images (fixed: deterministic) */

typedef struct qb_geo {
    int k2, kd2, crs, mp;
    int pt, pl, gh, gw;       /* padded gy planes (input grad): rows, cols */
    size_t gplane;            /* words per channel-pair plane, with read slack */
    int ncd;                  /* input-grad chunks (8 positions of a gx row) */
    int xh, xw;               /* padded input code planes (weight grad) */
    size_t xplane, xplanes;   /* bf16 elements per channel plane; all planes with slack */
    int hp;                   /* position pairs per output row: ceil(ow / 2) */
    size_t npair;             /* position pairs per image */
    size_t apack, ints;       /* words of packed weight codes; ints of offsets and chunk tables */
    size_t part;              /* floats of one block's weight-gradient partial */
    size_t gpl_w, xpl_h, gt_w, tmp_w; /* per-thread: gy planes (words), code planes (uint16),
                                          transposed gy (words), converted rows (words) */
    int nbw;                  /* weight-gradient blocks of images (fixed by the shape and n) */
    /* rows narrower than 8 (narrow): sub-blocks of bi images unfolded side by side (im2col of
       the planes above: ldb gx positions, ldx output positions per sub-block) */
    int narrow, bi, ldb, ldx;
    size_t cols_w, xcols_h, t_f, gf_f; /* per-thread: unfolded gy pairs (words), unfolded codes
                                          (uint16), the input grad's sums, gy rows (floats) */
} qb_geo;

static size_t rnd(size_t v, size_t m) { return (v + m - 1) / m * m; }

static int wchunks(int n) { return n < QB_WCHUNKS ? n : QB_WCHUNKS; }

/* the weight gradient's block partials: at most this many bytes (a 512 -> 512 3x3 layer would
   need 300 MB in 32 blocks: it takes 2); a layer whose one partial is larger (1024 -> 1024 3x3)
   leaves its weight gradient to the fp32 path */
#define QB_PARTS_MAX (24u << 20)

static qb_geo qb_geometry(const sq_conv_shape *cs)
{
    qb_geo g;
    memset(&g, 0, sizeof g);
    g.k2 = (cs->k + 1) / 2;
    g.kd2 = g.k2 * cs->r * cs->s;
    g.crs = cs->c * cs->r * cs->s;
    g.mp = (int)rnd((size_t)cs->k, 16);
    g.pt = cs->r - 1 - cs->pad;
    g.pl = cs->s - 1 - cs->pad;
    g.gh = cs->oh + 2 * g.pt;
    g.gw = cs->ow + 2 * g.pl;
    g.gplane = rnd((size_t)g.gh * g.gw + 16, 16);
    g.ncd = cs->h * ((cs->w + 7) / 8);
    g.xh = cs->h + 2 * cs->pad;
    g.xw = cs->w + 2 * cs->pad;
    g.xplane = (size_t)g.xh * g.xw;
    g.xplanes = rnd((size_t)cs->c * g.xplane + 32, 32);
    g.hp = (cs->ow + 1) / 2;
    g.npair = (size_t)cs->oh * g.hp;
    g.apack = rnd((size_t)cs->c, BMR) * g.kd2;
    g.ints = sq_pad64(g.kd2) + 3 * sq_pad64(g.ncd) + sq_pad64(g.crs);
    g.part = (size_t)g.crs * g.mp;
    g.gpl_w = (size_t)g.k2 * g.gplane;
    g.xpl_h = g.xplanes;
    g.gt_w = rnd(g.npair * g.mp, 16);
    g.tmp_w = rnd((size_t)cs->k * g.npair + 16, 16);
    g.narrow = cs->ow < 8;
    if (g.narrow) {
        const int hw = cs->h * cs->w, ohw = cs->oh * cs->ow;
        g.bi = 256 / (hw > ohw ? hw : ohw);
        if (g.bi < 1) g.bi = 1;
        if (g.bi > cs->n) g.bi = cs->n;
        g.ldb = (int)rnd((size_t)g.bi * hw, 8);
        g.ldx = (int)rnd((size_t)g.bi * ohw, 16);
        g.ncd = g.ldb / 8;
        g.ints = sq_pad64(g.kd2) + 3 * sq_pad64(g.ncd) + sq_pad64(g.crs);
        g.gpl_w = (size_t)g.bi * g.k2 * g.gplane;        /* every image's pair planes */
        g.xpl_h = (size_t)g.bi * g.xplanes;               /* every image's code planes */
        g.npair = (size_t)g.ldx / 2;
        g.hp = g.ldx / 2;
        g.gt_w = rnd(g.npair * g.mp, 16);
        g.tmp_w = rnd((size_t)cs->k * g.npair + 16, 16);
        g.cols_w = (size_t)g.kd2 * g.ldb;
        g.xcols_h = (size_t)g.crs * g.ldx + 32;
        g.t_f = (size_t)cs->c * g.ldb;
        g.gf_f = (size_t)cs->k * g.ldx;
    }
    /* weight-gradient blocks: up to QB_WCHUNKS, fewer where their partials would take more than
       QB_PARTS_MAX bytes (then an even count, for two threads), none where one alone would; a
       narrow layer's blocks are runs of whole sub-blocks */
    const size_t pb = rnd(g.part * 4, 64);
    size_t nb = QB_PARTS_MAX / pb, most = (size_t)wchunks(cs->n);
    if (g.narrow) {
        const size_t nsub = (size_t)(cs->n + g.bi - 1) / (size_t)g.bi;
        if (most > nsub) most = nsub;
    }
    if (nb >= most) nb = most;
    else if (nb > 1) nb &= ~(size_t)1;
    g.nbw = (int)nb;
    return g;
}

int sq_cpu_qconv_bwd_shape_ok(const sq_conv_shape *cs)
{
    return cs->stride == 1 && cs->groups == 1 && cs->pad < cs->r && cs->pad < cs->s &&
           cs->oh > 0 && cs->ow > 0 && cs->r <= 7 && cs->s <= 7;
}

static size_t parts_bytes(const sq_conv_shape *cs, const qb_geo *g)
{
    (void)cs;
    return (size_t)g->nbw * rnd(g->part * 4, 64);
}

int sq_cpu_qconv_bwd_wgrad_ok(const sq_conv_shape *cs)
{
    const qb_geo g = qb_geometry(cs);
    return g.nbw >= 1 && parts_bytes(cs, &g) <= QB_PARTS_MAX;
}

/* bytes: shared (packed weights, tables, per-row factors, block partials where this path
   computes the weight gradient), then per thread */
static size_t shared_bytes(const sq_conv_shape *cs, const qb_geo *g)
{
    const size_t p = parts_bytes(cs, g);
    return rnd(g->apack * 4, 64) + rnd(g->ints * 4, 64) + rnd((size_t)cs->k * 4, 64) +
           (p <= QB_PARTS_MAX ? p : 0);
}

static size_t thread_bytes(const qb_geo *g)
{
    return rnd(g->gpl_w * 4, 64) + rnd(g->xpl_h * 2, 64) + rnd(g->gt_w * 4, 64) +
           rnd(g->tmp_w * 4, 64) + rnd(g->cols_w * 4, 64) + rnd(g->xcols_h * 2, 64) +
           rnd(g->t_f * 4, 64) + rnd(g->gf_f * 4, 64);
}

size_t sq_cpu_qconv_bwd_ws_bytes(const sq_conv_shape *cs, int threads)
{
    const qb_geo g = qb_geometry(cs);
    return shared_bytes(cs, &g) + (size_t)threads * thread_bytes(&g) + 64;
}

#if defined(__x86_64__)
#include <immintrin.h>

int sq_cpu_qconv_bwd_available(void)
{
    static int avail = -1;
    if (avail < 0) {
        __builtin_cpu_init();
        avail = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16");
    }
    return avail;
}

#define BTARGET __attribute__((target("avx2,fma,avx512f,avx512vl,avx512bw,avx512bf16")))

static const int k_bmask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* bf16 bits of f, nearest even (the instruction's rounding; scalar set-up code only) */
BTARGET static inline uint16_t bf16_of(float f)
{
    __m128bh v = _mm_cvtneps_pbh(_mm_set1_ps(f));
    return (uint16_t)_mm_extract_epi16((__m128i)v, 0);
}

/* 8 floats (first n of src, the rest 0), times f, as 8 bf16 widened to the low halves of 8
   words (256-bit vectors throughout; sq_cpu_clean_upper at the end) */
BTARGET static inline __m256i bf16_words(const float *src, int n, __m256 f)
{
    const __mmask8 m = n >= 8 ? (__mmask8)0xff : (__mmask8)((1u << n) - 1);
    __m256 v = _mm256_mul_ps(_mm256_maskz_loadu_ps(m, src), f);
    return _mm256_cvtepu16_epi32((__m128i)_mm256_cvtneps_pbh(v));
}

/* input grad: gy of one image into the channel-pair planes (borders stay zero), each channel
   times its factor f[k] */
BTARGET static void fill_gy_pairs(const sq_conv_shape *cs, const qb_geo *g, const float *gy,
                                  const float *f, uint32_t *planes)
{
    const int K = cs->k, oh = cs->oh, ow = cs->ow;
    const size_t ohw = (size_t)oh * ow;
    for (int gi = 0; gi < g->k2; gi++) {
        const int k0 = 2 * gi, k1 = 2 * gi + 1;
        const float *e = gy + (size_t)k0 * ohw, *o = k1 < K ? gy + (size_t)k1 * ohw : NULL;
        const __m256 fe = _mm256_set1_ps(f[k0]), fo = _mm256_set1_ps(k1 < K ? f[k1] : 0.0f);
        uint32_t *dst = planes + (size_t)gi * g->gplane;
        for (int y = 0; y < oh; y++) {
            uint32_t *row = dst + (size_t)(y + g->pt) * g->gw + g->pl;
            for (int x = 0; x < ow; x += 8) {
                const int len = ow - x < 8 ? ow - x : 8;
                __m256i w = bf16_words(e + (size_t)y * ow + x, len, fe);
                if (o) w = _mm256_or_si256(w, _mm256_slli_epi32(bf16_words(o + (size_t)y * ow + x, len, fo), 16));
                _mm256_mask_storeu_epi32(row + x, len >= 8 ? (__mmask8)0xff : (__mmask8)((1u << len) - 1), w);
            }
        }
    }
}

/* BMR input channels x NCH chunks of 8 positions of the input gradient */
BTARGET static inline void dtile(const int nch, int m, int i0, int kd2, const uint32_t *ap,
                                 const uint32_t *base, const int *off, const int *in_pos,
                                 const int *out_pos, const int *len, float *gx, size_t ldc,
                                 __m256 post, int accumulate)
{
    __m256 acc[BMR][3];
    const uint32_t *bp[3];
#pragma GCC unroll 4
    for (int r = 0; r < BMR; r++)
#pragma GCC unroll 3
        for (int j = 0; j < nch; j++) acc[r][j] = _mm256_setzero_ps();
#pragma GCC unroll 3
    for (int j = 0; j < nch; j++) bp[j] = base + in_pos[j];
    for (int k = 0; k < kd2; k++, ap += BMR) {
        __m256bh b[3];
        const int o = off[k];
#pragma GCC unroll 3
        for (int j = 0; j < nch; j++) b[j] = (__m256bh)_mm256_loadu_si256((const __m256i *)(bp[j] + o));
#pragma GCC unroll 4
        for (int r = 0; r < BMR; r++) {
            const __m256bh a = (__m256bh)_mm256_set1_epi32((int)ap[r]);
#pragma GCC unroll 3
            for (int j = 0; j < nch; j++) acc[r][j] = _mm256_dpbf16_ps(acc[r][j], a, b[j]);
        }
    }
#pragma GCC unroll 3
    for (int j = 0; j < nch; j++) {
        const __m256i mask = _mm256_loadu_si256((const __m256i *)(k_bmask + 8 - len[j]));
        for (int r = 0; r < BMR && i0 + r < m; r++) {
            float *cp = gx + (size_t)(i0 + r) * ldc + out_pos[j];
            __m256 v = _mm256_mul_ps(acc[r][j], post);
            if (len[j] == 8) {
                if (accumulate) v = _mm256_add_ps(v, _mm256_loadu_ps(cp));
                _mm256_storeu_ps(cp, v);
            } else {
                if (accumulate) v = _mm256_add_ps(v, _mm256_maskload_ps(cp, mask));
                _mm256_maskstore_ps(cp, mask, v);
            }
        }
    }
}

BTARGET static void dgemm(int m, int kd2, const uint32_t *apack, const uint32_t *base,
                          const int *off, int nchunk, const int *in_pos, const int *out_pos,
                          const int *len, float *gx, size_t ldc, float post, int accumulate)
{
    const __m256 pv = _mm256_set1_ps(post);
    int j0 = 0;
    for (; j0 + 3 <= nchunk; j0 += 3)
        for (int i0 = 0; i0 < m; i0 += BMR)
            dtile(3, m, i0, kd2, apack + (size_t)(i0 / BMR) * kd2 * BMR, base, off, in_pos + j0,
                  out_pos + j0, len + j0, gx, ldc, pv, accumulate);
    if (nchunk - j0 == 2)
        for (int i0 = 0; i0 < m; i0 += BMR)
            dtile(2, m, i0, kd2, apack + (size_t)(i0 / BMR) * kd2 * BMR, base, off, in_pos + j0,
                  out_pos + j0, len + j0, gx, ldc, pv, accumulate);
    else if (nchunk - j0 == 1)
        for (int i0 = 0; i0 < m; i0 += BMR)
            dtile(1, m, i0, kd2, apack + (size_t)(i0 / BMR) * kd2 * BMR, base, off, in_pos + j0,
                  out_pos + j0, len + j0, gx, ldc, pv, accumulate);
}

/* weight grad: the input codes of one image into padded bf16 planes (borders stay zero) */
BTARGET static void fill_x_codes(const sq_conv_shape *cs, const qb_geo *g, const float *x,
                                 float inv, int cmin, int cmax, uint16_t *planes)
{
    const int h = cs->h, w = cs->w, pad = cs->pad;
    const __m256 iv = _mm256_set1_ps(inv), lo = _mm256_set1_ps((float)cmin),
                 hi = _mm256_set1_ps((float)cmax);
    for (int c = 0; c < cs->c; c++) {
        const float *xc = x + (size_t)c * h * w;
        uint16_t *pc = planes + (size_t)c * g->xplane;
        for (int y = 0; y < h; y++) {
            uint16_t *row = pc + (size_t)(y + pad) * g->xw + pad;
            for (int xx = 0; xx < w; xx += 8) {
                const int len = w - xx < 8 ? w - xx : 8;
                const __mmask8 m = len >= 8 ? (__mmask8)0xff : (__mmask8)((1u << len) - 1);
                __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_maskz_loadu_ps(m, xc + (size_t)y * w + xx), iv),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
                _mm_mask_storeu_epi16(row + xx, m, (__m128i)_mm256_cvtneps_pbh(v));
            }
        }
    }
}

/* weight grad: gy of one image as (position pair, channel) words: rows of tmp (one per channel,
   pairs of consecutive positions of a row, the odd row end paired with 0), then transposed */
BTARGET static void fill_gy_t(const sq_conv_shape *cs, const qb_geo *g, const float *gy,
                              uint32_t *tmp, uint32_t *gt)
{
    const int K = cs->k, oh = cs->oh, ow = cs->ow;
    for (int k = 0; k < K; k++) {
        const float *src = gy + (size_t)k * oh * ow;
        uint32_t *dst = tmp + (size_t)k * g->npair;
        for (int y = 0; y < oh; y++) {
            const float *r = src + (size_t)y * ow;
            uint32_t *d = dst + (size_t)y * g->hp;
            for (int x = 0; x < ow; x += 16) {
                const int n = ow - x < 16 ? ow - x : 16;
                const __mmask8 ma = n >= 8 ? (__mmask8)0xff : (__mmask8)((1u << n) - 1);
                const __mmask8 mb = n >= 16 ? (__mmask8)0xff : (n > 8 ? (__mmask8)((1u << (n - 8)) - 1) : 0);
                __m256 a = _mm256_maskz_loadu_ps(ma, r + x), b = _mm256_maskz_loadu_ps(mb, r + x + 8);
                __m256i wds = (__m256i)_mm256_cvtne2ps_pbh(b, a);
                const int np = (n + 1) / 2;
                _mm256_mask_storeu_epi32(d + x / 2, np >= 8 ? (__mmask8)0xff : (__mmask8)((1u << np) - 1), wds);
            }
        }
    }
    /* the words are moved, never computed on: the float transpose copies their bits */
    sq_cpu_fast_transpose(K, (int)g->npair, (const float *)tmp, (int)g->npair, (float *)gt, g->mp);
}

/* TK taps x TV*8 output channels of the transposed weight gradient */
BTARGET static inline void wtile(const int tk, const int tv, int k0, int m0, int kd,
                                 const uint32_t *gt, int mp, const uint16_t *base,
                                 const int *off, int oh, int hp, int xw, float *gwt,
                                 int accumulate)
{
    __m256 acc[6][4];
    const uint16_t *b[6];
#pragma GCC unroll 6
    for (int j = 0; j < tk; j++) {
        b[j] = base + off[k0 + j < kd ? k0 + j : kd - 1];
#pragma GCC unroll 4
        for (int v = 0; v < tv; v++) acc[j][v] = _mm256_setzero_ps();
    }
    const uint32_t *gp = gt + m0;
    for (int y = 0; y < oh; y++) {
        const int p0 = y * xw;
        for (int q = 0; q < hp; q++, gp += mp) {
            __m256bh gv[4];
#pragma GCC unroll 4
            for (int v = 0; v < tv; v++) gv[v] = (__m256bh)_mm256_loadu_si256((const __m256i *)(gp + 8 * v));
#pragma GCC unroll 6
            for (int j = 0; j < tk; j++) {
                uint32_t pr;
                memcpy(&pr, b[j] + p0 + 2 * q, 4);
                const __m256bh bv = (__m256bh)_mm256_set1_epi32((int)pr);
#pragma GCC unroll 4
                for (int v = 0; v < tv; v++) acc[j][v] = _mm256_dpbf16_ps(acc[j][v], bv, gv[v]);
            }
        }
    }
    float *d = gwt + (size_t)k0 * mp + m0;
#pragma GCC unroll 6
    for (int j = 0; j < tk; j++, d += mp) {
        if (k0 + j >= kd) break;
#pragma GCC unroll 4
        for (int v = 0; v < tv; v++) {
            __m256 r = acc[j][v];
            if (accumulate) r = _mm256_add_ps(r, _mm256_loadu_ps(d + 8 * v));
            _mm256_storeu_ps(d + 8 * v, r);
        }
    }
}

BTARGET static void wgemm(int m, int kd, const uint32_t *gt, int mp, const uint16_t *base,
                          const int *off, int oh, int hp, int xw, float *gwt, int accumulate)
{
    if (mp % 32 == 0) {
        for (int k0 = 0; k0 < kd; k0 += 3)
            for (int m0 = 0; m0 < m; m0 += 32)
                wtile(3, 4, k0, m0, kd, gt, mp, base, off, oh, hp, xw, gwt, accumulate);
    } else {
        for (int k0 = 0; k0 < kd; k0 += 6)
            for (int m0 = 0; m0 < m; m0 += 16)
                wtile(6, 2, k0, m0, kd, gt, mp, base, off, oh, hp, xw, gwt, accumulate);
    }
}

/* inside the parallel region, after the blocks (their loop's implicit barrier): the block
   partials summed in block order, then scaled by the input's step into gw (K, crs) from the
   (crs, mp) layout */
static void finish_wgrad(const qb_geo *g, int K, float *parts, int nb, size_t bpart, float sx, float *gw)
{
    sq_cpu_sum_parts(parts, nb, bpart, g->part);
    const long nw = (long)K * g->crs;
#pragma omp for schedule(static)
    for (long e = 0; e < nw; e++) gw[e] += sx * parts[(size_t)(e % g->crs) * g->mp + e / g->crs];
}

/* rows narrower than 8: per sub-block of g->bi images, gy's channel-pair planes and the input
   codes' planes of every image as in the wide path, unfolded side by side (im2col, the words
   and codes copied, not converted again), then the same kernels over the unfolded matrices; the
   input gradient's sums land in t and are added (or written) into gx per image */
static void run_narrow(const sq_conv_shape *cs, const qb_geo *g, const float *xq, float sx, int xlo,
                       int xhi, const float *gy, const float *f, float post, const uint32_t *apack,
                       const int *off_d, const int *cd, const int *off_w, float *gx, int gx_set,
                       float *gw, float *parts, uint8_t *tbase, int nthr)
{
    const int K = cs->k, C = cs->c, R = cs->r, S = cs->s, n = cs->n, h = cs->h, w = cs->w;
    const int oh = cs->oh, ow = cs->ow, hw = h * w, ohw = oh * ow;
    const size_t chw = (size_t)C * hw, bpart = rnd(g->part * 4, 64) / 4, tb = thread_bytes(g);
    const int nsub = (n + g->bi - 1) / g->bi, nb = g->nbw;
    const float inv_x = gw ? 1.0f / sx : 0.0f;
    /* a view of the unfolded gy rows as one "image" of 1 x ldx for fill_gy_t */
    sq_conv_shape flat = *cs;
    flat.oh = 1;
    flat.ow = g->ldx;
    qb_geo gflat = *g;
    gflat.hp = g->ldx / 2;
    gflat.npair = (size_t)g->ldx / 2;
#pragma omp parallel num_threads(nthr)
    {
        uint8_t *tp = tbase + (size_t)omp_get_thread_num() * tb;
        uint32_t *gpl = (uint32_t *)tp;
        uint16_t *xpl = (uint16_t *)(tp + rnd(g->gpl_w * 4, 64));
        uint32_t *gtp = (uint32_t *)((uint8_t *)xpl + rnd(g->xpl_h * 2, 64));
        uint32_t *tmp = (uint32_t *)((uint8_t *)gtp + rnd(g->gt_w * 4, 64));
        uint32_t *cols = (uint32_t *)((uint8_t *)tmp + rnd(g->tmp_w * 4, 64));
        uint16_t *xcols = (uint16_t *)((uint8_t *)cols + rnd(g->cols_w * 4, 64));
        float *t = (float *)((uint8_t *)xcols + rnd(g->xcols_h * 2, 64));
        float *gf = (float *)((uint8_t *)t + rnd(g->t_f * 4, 64));
        if (gx) {
            memset(gpl, 0, g->gpl_w * 4);
            memset(cols, 0, g->cols_w * 4);
        }
        if (gw) {
            memset(xpl, 0, g->xpl_h * 2);
            memset(xcols, 0, g->xcols_h * 2);
            memset(gf, 0, g->gf_f * 4);
            memset(gtp, 0, g->gt_w * 4);
        }
        /* units: weight-gradient blocks (each a run of sub-blocks) or, input gradient only,
           sub-blocks */
        const int units = gw ? nb : nsub;
#pragma omp for schedule(dynamic, 1)
        for (int u = 0; u < units; u++) {
            const int s0 = gw ? (int)((long)nsub * u / nb) : u;
            const int s1 = gw ? (int)((long)nsub * (u + 1) / nb) : u + 1;
            float *part = parts + (size_t)u * bpart;
            for (int sb = s0; sb < s1; sb++) {
                const int i0 = sb * g->bi, ni = n - i0 < g->bi ? n - i0 : g->bi;
                if (gw) {
                    for (int ii = 0; ii < ni; ii++)
                        fill_x_codes(cs, g, xq + (size_t)(i0 + ii) * chw, inv_x, xlo, xhi, xpl + (size_t)ii * g->xplanes);
                    for (int c = 0; c < C; c++)
                        for (int r = 0; r < R; r++)
                            for (int s_ = 0; s_ < S; s_++) {
                                uint16_t *row = xcols + (size_t)((c * R + r) * S + s_) * g->ldx;
                                for (int ii = 0; ii < ni; ii++) {
                                    const uint16_t *pl = xpl + (size_t)ii * g->xplanes + (size_t)c * g->xplane;
                                    for (int y = 0; y < oh; y++)
                                        memcpy(row + (size_t)ii * ohw + (size_t)y * ow,
                                               pl + (size_t)(y + r) * g->xw + s_, (size_t)ow * 2);
                                }
                                if (ni < g->bi) memset(row + (size_t)ni * ohw, 0, (size_t)(g->ldx - ni * ohw) * 2);
                            }
                    for (int k = 0; k < K; k++) {
                        float *row = gf + (size_t)k * g->ldx;
                        for (int ii = 0; ii < ni; ii++)
                            memcpy(row + (size_t)ii * ohw, gy + ((size_t)(i0 + ii) * K + k) * ohw, (size_t)ohw * 4);
                        if (ni < g->bi) memset(row + (size_t)ni * ohw, 0, (size_t)(g->ldx - ni * ohw) * 4);
                    }
                    fill_gy_t(&flat, &gflat, gf, tmp, gtp);
                    wgemm(K, g->crs, gtp, g->mp, xcols, off_w, 1, g->ldx / 2, 0, part, sb != s0);
                }
                if (gx) {
                    for (int ii = 0; ii < ni; ii++)
                        fill_gy_pairs(cs, g, gy + (size_t)(i0 + ii) * K * ohw, f, gpl + (size_t)ii * g->k2 * g->gplane);
                    for (int kp = 0; kp < g->k2; kp++)
                        for (int j = 0; j < R; j++)
                            for (int l = 0; l < S; l++) {
                                uint32_t *row = cols + (size_t)((kp * R + j) * S + l) * g->ldb;
                                for (int ii = 0; ii < ni; ii++) {
                                    const uint32_t *pl = gpl + ((size_t)ii * g->k2 + kp) * g->gplane;
                                    for (int y = 0; y < h; y++)
                                        memcpy(row + (size_t)ii * hw + (size_t)y * w,
                                               pl + (size_t)(y + j) * g->gw + l, (size_t)w * 4);
                                }
                                if (ni < g->bi) memset(row + (size_t)ni * hw, 0, (size_t)(g->ldb - ni * hw) * 4);
                            }
                    dgemm(C, g->kd2, apack, cols, off_d, g->ncd, cd, cd + sq_pad64(g->ncd), cd + 2 * sq_pad64(g->ncd),
                          t, (size_t)g->ldb, post, 0);
                    for (int ii = 0; ii < ni; ii++)
                        for (int c = 0; c < C; c++) {
                            const float *src = t + (size_t)c * g->ldb + (size_t)ii * hw;
                            float *dst = gx + (size_t)(i0 + ii) * chw + (size_t)c * hw;
                            if (gx_set) memcpy(dst, src, (size_t)hw * 4);
                            else
                                for (int q = 0; q < hw; q++) dst[q] += src[q];
                        }
                }
            }
        }
        sq_cpu_clean_upper();
        if (gw) finish_wgrad(g, K, parts, nb, bpart, sx, gw);
    }
}

int sq_cpu_qconv_bwd_run(const sq_conv_shape *cs, const sq_quant_cfg *qa, const float *qpa,
                         const float *xq, const sq_quant_cfg *qw, const float *qpw,
                         const float *wq, const float *yscale, const float *gy, float *gx,
                         int gx_set, float *gw, void *ws, int nthr)
{
    if (!sq_cpu_qconv_bwd_available() || !sq_cpu_qconv_bwd_shape_ok(cs)) return 0;
    if (gw && !sq_cpu_qconv_bwd_wgrad_ok(cs)) return 0;
    const int K = cs->k, C = cs->c, R = cs->r, S = cs->s, n = cs->n;
    float sx = 0.0f;
    int xlo = 0, xhi = 0, wlo = 0, whi = 0;
    /* codes of at most 9 bits: exact in bf16 */
    if (gw && (!sq_cpu_quant_grid(qa, qpa, (size_t)n * C * cs->h * cs->w, &sx, &xlo, &xhi) || xlo < -256 ||
               xhi > 256))
        return 0;
    const qb_geo g = qb_geometry(cs);
    uint8_t *base = (uint8_t *)rnd((uintptr_t)ws, 64);
    uint32_t *apack = (uint32_t *)base;
    int *ints = (int *)(base + rnd(g.apack * 4, 64));
    float *f = (float *)((uint8_t *)ints + rnd(g.ints * 4, 64));
    float *parts = (float *)((uint8_t *)f + rnd((size_t)K * 4, 64));
    uint8_t *tbase = base + shared_bytes(cs, &g);
    const size_t tb = thread_bytes(&g);
    int *off_d = ints, *cd = ints + sq_pad64(g.kd2), *off_w = cd + 3 * sq_pad64(g.ncd);
    float post = 1.0f;
    if (gx) {
        /* the weight's step per output channel into f; gy's factor f[k]: the step of the codes it
           meets and the output scale, applied to gy per channel (per-channel weights with
           different steps) or once to the sums (one step for all: then only gy's own rounding
           remains) */
        const float ys = yscale ? fabsf(yscale[0]) : 1.0f;
        if (!(ys > 0.0f) || !isfinite(ys)) return 0;
        if (!sq_cpu_weight_steps(cs, qw, qpw, f, &wlo, &whi) || wlo < -256 || whi > 256) return 0;
        /* codes of row k, flipped taps, packed as channel pairs per input channel */
        for (int i0 = 0; i0 < C; i0 += BMR)
            for (int gi = 0; gi < g.k2; gi++)
                for (int j = 0; j < R; j++)
                    for (int l = 0; l < S; l++) {
                        const int kk = (gi * R + j) * S + l;
                        uint32_t *dst = apack + (size_t)(i0 / BMR) * g.kd2 * BMR + (size_t)kk * BMR;
                        for (int rr = 0; rr < BMR; rr++) {
                            const int c = i0 + rr;
                            uint32_t word = 0;
                            for (int t = 0; t < 2 && c < C; t++) {
                                const int k = 2 * gi + t;
                                if (k >= K) break;
                                float v = rintf(wq[(((size_t)k * C + c) * R + R - 1 - j) * S + S - 1 - l] / f[k]);
                                v = v < wlo ? (float)wlo : (v > whi ? (float)whi : v);
                                word |= (uint32_t)bf16_of(v) << (16 * t);
                            }
                            dst[rr] = word;
                        }
                    }
        int uniform = 1; /* per-channel weights whose steps are all equal count as one step */
        for (int o = 1; o < K; o++) uniform &= f[o] == f[0];
        if (!uniform) {
            for (int o = 0; o < K; o++) f[o] *= ys;
        } else {
            post = f[0] * ys;
            for (int o = 0; o < K; o++) f[o] = 1.0f;
        }
        if (g.narrow) { /* rows of the unfolded matrix; chunks of 8 of its columns */
            for (int kk = 0; kk < g.kd2; kk++) off_d[kk] = kk * g.ldb;
            sq_cpu_fast_chunks(1, g.ldb, g.ldb, g.ldb, cd, cd + sq_pad64(g.ncd), cd + 2 * sq_pad64(g.ncd));
        } else {
            for (int gi = 0; gi < g.k2; gi++)
                for (int j = 0; j < R; j++)
                    for (int l = 0; l < S; l++)
                        off_d[(gi * R + j) * S + l] = (int)((size_t)gi * g.gplane + (size_t)j * g.gw + l);
            sq_cpu_fast_chunks(cs->h, cs->w, g.gw, cs->w, cd, cd + sq_pad64(g.ncd), cd + 2 * sq_pad64(g.ncd));
        }
    }
    if (gw)
        for (int c = 0; c < C; c++)
            for (int r = 0; r < R; r++)
                for (int s = 0; s < S; s++)
                    off_w[(c * R + r) * S + s] = g.narrow ? (int)((size_t)((c * R + r) * S + s) * g.ldx)
                                                          : (int)((size_t)c * g.xplane + (size_t)r * g.xw + s);
    if (g.narrow) {
        run_narrow(cs, &g, xq, sx, xlo, xhi, gy, f, post, apack, off_d, cd, off_w, gx, gx_set, gw, parts,
                   tbase, nthr);
        return 1;
    }
    const size_t ohw = (size_t)cs->oh * cs->ow, chw = (size_t)C * cs->h * cs->w;
    const size_t hw = (size_t)cs->h * cs->w, bpart = rnd(g.part * 4, 64) / 4;
    const int nb = g.nbw;
    const float inv_x = gw ? 1.0f / sx : 0.0f;
#pragma omp parallel num_threads(nthr)
    {
        uint8_t *tp = tbase + (size_t)omp_get_thread_num() * tb;
        uint32_t *gpl = (uint32_t *)tp;
        uint16_t *xpl = (uint16_t *)(tp + rnd(g.gpl_w * 4, 64));
        uint32_t *gtp = (uint32_t *)((uint8_t *)xpl + rnd(g.xpl_h * 2, 64));
        uint32_t *tmp = (uint32_t *)((uint8_t *)gtp + rnd(g.gt_w * 4, 64));
        if (gx) memset(gpl, 0, g.gpl_w * 4);
        if (gw) {
            memset(xpl, 0, g.xpl_h * 2);
            memset(gtp, 0, g.gt_w * 4);
        }
        const int units = gw ? nb : n;
#pragma omp for schedule(dynamic, 1)
        for (int blk = 0; blk < units; blk++) {
            const int i0 = gw ? (int)((long)n * blk / nb) : blk;
            const int i1 = gw ? (int)((long)n * (blk + 1) / nb) : blk + 1;
            float *part = parts + (size_t)blk * bpart;
            for (int i = i0; i < i1; i++) {
                const float *gyi = gy + (size_t)i * K * ohw;
                if (gw) {
                    fill_x_codes(cs, &g, xq + (size_t)i * chw, inv_x, xlo, xhi, xpl);
                    fill_gy_t(cs, &g, gyi, tmp, gtp);
                    wgemm(K, g.crs, gtp, g.mp, xpl, off_w, cs->oh, g.hp, g.xw, part, i != i0);
                }
                if (gx) {
                    fill_gy_pairs(cs, &g, gyi, f, gpl);
                    dgemm(C, g.kd2, apack, gpl, off_d, g.ncd, cd, cd + sq_pad64(g.ncd),
                          cd + 2 * sq_pad64(g.ncd), gx + (size_t)i * C * hw, hw, post, !gx_set);
                }
            }
        }
        sq_cpu_clean_upper();
        if (gw) finish_wgrad(&g, K, parts, nb, bpart, sx, gw);
    }
    return 1;
}

#else
int sq_cpu_qconv_bwd_available(void) { return 0; }
int sq_cpu_qconv_bwd_run(const sq_conv_shape *cs, const sq_quant_cfg *qa, const float *qpa,
                         const float *xq, const sq_quant_cfg *qw, const float *qpw,
                         const float *wq, const float *yscale, const float *gy, float *gx,
                         int gx_set, float *gw, void *ws, int nthr)
{
    (void)cs; (void)qa; (void)qpa; (void)xq; (void)qw; (void)qpw; (void)wq; (void)yscale;
    (void)gy; (void)gx; (void)gx_set; (void)gw; (void)ws; (void)nthr;
    return 0;
}
#endif
