/* conv_wino.c: dense 3x3 stride-1 pad-1 float convolutions with enough channels (the teacher's
   and the full-precision model's wide 3x3 layers) as Winograd F(2x2, 3x3) (Lavin and Gray, 2015):
   each 2x2 block of outputs ("tile") takes 16 multiplies per (input, output) channel pair instead
   of 36, so the GEMMs do 2.25x fewer flops than the direct convolution.
     weights   U[xi] (K x C) = (G g G^T)[xi] per (k, c), xi over the 4x4 transform points
     input     V[xi] (C x T) = (B^T d B)[xi] per (c, tile), d the tile's 4x4 input window
     products  M[xi] (K x T) = U[xi] V[xi]             (16 GEMMs, OpenBLAS single-threaded)
     output    y tile = A^T M A + bias                   (2x2 outputs per (k, tile))
   The input gradient is the same arithmetic on the swapped shape (gy correlated with the weights
   transposed and rotated by 180 degrees, added into gx); the weight gradient is its transpose:
   GU[xi] (K x C) = sum over tiles of (A gy A^T)[xi] V[xi]^T, then gw += G^T GU G.
   Tiles are taken in whole tile rows, in blocks fixed by the shape alone. Forward and input
   gradient: threads take blocks dynamically, every output is computed inside one block. Weight
   gradient: each block's transforms are split among the threads, its 16 GEMMs by point, each
   GU[xi] summed by one thread in block order. So no result depends on the thread count or the
   schedule. The arithmetic is not the direct convolution's: the transforms add and subtract up to
   9 terms, so results differ from the FMA chain of conv_igemm.c by a few float epsilons of the
   sum of |products| (tests/test_ops.c winograd_*: worst 1.4e-7 forward, 3.2e-7 backward, held to
   8 eps); the PyTorch twin's bit-exact emulation covers the student's quantized and narrow
   convolutions, which never run here (sq_cpu_wino_applies). */
#include "cpu_ops.h"
#include <omp.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define XI 16 /* transform points of F(2x2, 3x3): 4x4 */
/* tiles per block (the GEMMs' N): V (16 x C x tiles) and M (16 x K x tiles) of a block about
   TILE_FLOATS floats each (512 KB: they stay in L2), but at least a quarter of the channels and
   MIN_TILES (narrower GEMMs do not repay OpenBLAS's packing of U); measured per vgg8 layer,
   docs/results.md (issue 21) */
#define TILE_FLOATS (1 << 17)
#define MIN_TILES 32
#define WG_TILE_FLOATS (1 << 19)
#define WG_MIN_TILES 256
/* fewer channels than these (on either side, or in pairs): the transforms cost about what the
   multiplies they save do (measured, batch 128: 64 -> 64 on 8x8 maps 1.12x forward, 1.14x input
   and 1.26x weight gradient, too little to move resnet20's step; 32 -> 32 on 16x16 0.97x, 0.94x
   and 0.71x; 16 -> 16 on 32x32 0.6x; 64 -> 128 on 16x16 1.4x) */
#define MIN_CHANNELS 64
#define MIN_PAIRS 8192
/* more channel pairs than this (1024 -> 1024): the transformed weights alone (16 floats a pair)
   would take more than 64 MB of workspace; such layers stay on the direct paths */
#define MAX_PAIRS (1l << 20)
/* the 16 matrices of U, V and M are read and written together (a tile's 16 points); at a
   power-of-two distance they would share cache sets and evict each other, so each is placed this
   many floats (one cache line) past a multiple of the previous one's size */
#define PLANE_SKEW 16

typedef struct wg_geo {
    int th, tw;          /* tile rows and columns per image */
    int rows_blk, nblk;  /* tile rows per block (fixed by the shape), blocks */
    size_t su, sv, sm;   /* floats between the 16 matrices of U, V and M (see PLANE_SKEW) */
    size_t u, per_thread;
    size_t v, m, trow;   /* per thread: V and M of a block, the transforms' row buffers */
} wg_geo;

static int g_wino_off;

void sq_cpu_conv_wino(int on)
{
    g_wino_off = !on;
    sq_cpu_conv_wino16(on);
}

int sq_cpu_wino_applies(const sq_conv_shape *cs)
{
#ifdef SQ_HAVE_BLAS
    return !g_wino_off && !cs->direct && sq_cpu_igemm_applies(cs) && cs->groups == 1 && cs->r == 3 && cs->s == 3 &&
           cs->stride == 1 && cs->pad == 1 && cs->c >= MIN_CHANNELS && cs->k >= MIN_CHANNELS &&
           (long)cs->c * cs->k >= MIN_PAIRS && (long)cs->c * cs->k <= MAX_PAIRS;
#else
    return 0; /* the GEMMs are OpenBLAS's */
#endif
}

static wg_geo wg_geometry_t(const sq_conv_shape *cs, int tile_floats, int min_tiles)
{
    wg_geo g;
    memset(&g, 0, sizeof g);
    g.th = (cs->oh + 1) / 2;
    g.tw = (cs->ow + 1) / 2;
    const int rows = cs->n * g.th, ch = cs->c > cs->k ? cs->c : cs->k;
    int tiles = tile_floats / (XI * ch);
    if (tiles < ch / 4) tiles = ch / 4;
    if (tiles < min_tiles) tiles = min_tiles;
    g.rows_blk = (tiles + g.tw - 1) / g.tw;
    if (g.rows_blk > rows) g.rows_blk = rows;
    g.nblk = (rows + g.rows_blk - 1) / g.rows_blk;
    const size_t tb = (size_t)g.rows_blk * g.tw;
    g.su = (size_t)cs->k * cs->c + PLANE_SKEW;
    g.sv = (size_t)cs->c * tb + PLANE_SKEW;
    g.sm = (size_t)cs->k * tb + PLANE_SKEW;
    g.u = sq_pad64(XI * g.su);
    g.v = sq_pad64(XI * g.sv);
    g.m = sq_pad64(XI * g.sm);
    g.trow = sq_pad64((size_t)4 * (tb > (size_t)(2 * g.tw + 2) ? tb : (size_t)(2 * g.tw + 2)) + (size_t)cs->w);
    g.per_thread = g.v + g.m + g.trow;
    return g;
}


/* the blocks of the forward and of the input gradient (on its swapped shape) */
static wg_geo wg_geometry(const sq_conv_shape *cs) { return wg_geometry_t(cs, TILE_FLOATS, MIN_TILES); }

/* the weight gradient's blocks: its GEMMs sum over the tiles, and each block costs two barriers */
static wg_geo wg_geometry_w(const sq_conv_shape *cs) { return wg_geometry_t(cs, WG_TILE_FLOATS, WG_MIN_TILES); }

/* the largest of the three uses */
size_t sq_cpu_wino_ws_floats(const sq_conv_shape *cs, int threads)
{
    const wg_geo g = wg_geometry(cs), gw = wg_geometry_w(cs);
    const sq_conv_shape ds = sq_cpu_wino_dgrad_shape(cs);
    const wg_geo d = wg_geometry(&ds);
    size_t f = g.u + (size_t)threads * g.per_thread;
    /* the weight gradient shares one V and one GYT among the threads */
    const size_t b = d.u + (size_t)threads * d.per_thread, w = gw.u + gw.v + gw.m + (size_t)threads * gw.trow;
    if (b > f) f = b;
    return w > f ? w : f;
}

/* G g G^T, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1], for g = w[k][c]; with flip, cs is the
   input gradient's correlation (k: the layer's input channel, c: its output channel) and g =
   w[c][k] rotated by 180 degrees. Shared by conv_wino16.c. */
void sq_cpu_wino_filter(const sq_conv_shape *cs, const float *w, int flip, int k, int c, float u[16])
{
    float f[9];
    if (flip) {
        const float *src = w + ((size_t)c * cs->k + k) * 9;
        for (int j = 0; j < 9; j++) f[j] = src[8 - j];
    } else {
        memcpy(f, w + ((size_t)k * cs->c + c) * 9, sizeof f);
    }
    float t[4][3];
    for (int j = 0; j < 3; j++) {
        t[0][j] = f[j];
        t[1][j] = 0.5f * (f[j] + f[3 + j] + f[6 + j]);
        t[2][j] = 0.5f * (f[j] - f[3 + j] + f[6 + j]);
        t[3][j] = f[6 + j];
    }
    for (int i = 0; i < 4; i++) {
        u[4 * i] = t[i][0];
        u[4 * i + 1] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
        u[4 * i + 2] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
        u[4 * i + 3] = t[i][2];
    }
}

/* d (3x3 taps) += G^T X G for the 4x4 points x (the halvings are exact, so the sums are the same
   with or without FMA contraction). Shared by conv_wino16.c. */
void sq_cpu_wino_filter_grad_add(const float x[16], float d[9])
{
    float r[3][4];
    for (int j = 0; j < 4; j++) {
        r[0][j] = x[j] + 0.5f * (x[4 + j] + x[8 + j]);
        r[1][j] = 0.5f * (x[4 + j] - x[8 + j]);
        r[2][j] = 0.5f * (x[4 + j] + x[8 + j]) + x[12 + j];
    }
    for (int i = 0; i < 3; i++) {
        d[3 * i] += r[i][0] + 0.5f * (r[i][1] + r[i][2]);
        d[3 * i + 1] += 0.5f * (r[i][1] - r[i][2]);
        d[3 * i + 2] += 0.5f * (r[i][1] + r[i][2]) + r[i][3];
    }
}

/* U[xi][k][c] = G g G^T per (k, c) */
static void weight_transform(const sq_conv_shape *cs, const wg_geo *g, const float *w, int flip,
                             float *u, int k)
{
    for (int c = 0; c < cs->c; c++) {
        float v[16];
        sq_cpu_wino_filter(cs, w, flip, k, c, v);
        for (int xi = 0; xi < XI; xi++) u[(size_t)xi * g->su + (size_t)k * cs->c + c] = v[xi];
    }
}

/* V[xi][c][tile] = B^T d B for the tile rows [qa, qb) of the block [q0, q1), B^T = [1 0 -1 0;
   0 1 1 0; 0 -1 1 0; 0 1 0 -1]: first down the columns of the four input rows (t[i], padded
   column p is input column p - 1), then across each tile's four columns */
__attribute__((target("avx2,fma"))) static void input_transform(const sq_conv_shape *cs,
                                                                const wg_geo *g, const float *x,
                                                                int q0, int q1, int qa, int qb,
                                                                float *v, float *trow)
{
    const int C = cs->c, H = cs->h, W = cs->w, tw = g->tw, pw = 2 * tw + 2;
    const size_t nt = (size_t)(q1 - q0) * tw, cstride = g->sv;
    float *t0 = trow, *t1 = t0 + pw, *t2 = t1 + pw, *t3 = t2 + pw, *zero = t3 + pw;
    memset(zero, 0, sizeof(float) * W);
    for (int q = qa; q < qb; q++) {
        const int img = q / g->th, ty = q % g->th;
        const size_t loc0 = (size_t)(q - q0) * tw;
        for (int c = 0; c < C; c++) {
            const float *xc = x + ((size_t)img * C + c) * H * W;
            const float *r[4];
            for (int i = 0; i < 4; i++) {
                const int ih = 2 * ty - 1 + i;
                r[i] = ih >= 0 && ih < H ? xc + (size_t)ih * W : zero;
            }
            t0[0] = t1[0] = t2[0] = t3[0] = 0.0f;
            for (int p = W + 1; p < pw; p++) t0[p] = t1[p] = t2[p] = t3[p] = 0.0f;
            int j = 0;
#if defined(__x86_64__)
            /* eight columns a step (the compiler keeps this loop scalar: it cannot rule out that
               the rows and the buffers overlap) */
            for (; j + 8 <= W; j += 8) {
                const __m256 d0 = _mm256_loadu_ps(r[0] + j), d1 = _mm256_loadu_ps(r[1] + j),
                             d2 = _mm256_loadu_ps(r[2] + j), d3 = _mm256_loadu_ps(r[3] + j);
                _mm256_storeu_ps(t0 + j + 1, _mm256_sub_ps(d0, d2));
                _mm256_storeu_ps(t1 + j + 1, _mm256_add_ps(d1, d2));
                _mm256_storeu_ps(t2 + j + 1, _mm256_sub_ps(d2, d1));
                _mm256_storeu_ps(t3 + j + 1, _mm256_sub_ps(d1, d3));
            }
#endif
            for (; j < W; j++) {
                const float d0 = r[0][j], d1 = r[1][j], d2 = r[2][j], d3 = r[3][j];
                t0[j + 1] = d0 - d2;
                t1[j + 1] = d1 + d2;
                t2[j + 1] = d2 - d1;
                t3[j + 1] = d1 - d3;
            }
            float *vc = v + (size_t)c * nt + loc0;
            const float *ts[4] = {t0, t1, t2, t3};
            for (int i = 0; i < 4; i++) {
                const float *ti = ts[i];
                float *v0 = vc + (size_t)(4 * i) * cstride, *v1 = v0 + cstride, *v2 = v1 + cstride,
                      *v3 = v2 + cstride;
                for (int x0 = 0; x0 < tw; x0++) {
                    const float a = ti[2 * x0], b = ti[2 * x0 + 1], e = ti[2 * x0 + 2], f = ti[2 * x0 + 3];
                    v0[x0] = a - e;
                    v1[x0] = b + e;
                    v2[x0] = e - b;
                    v3[x0] = b - f;
                }
            }
        }
    }
}

/* y tile = A^T M A + bias, A^T = [1 1 1 0; 0 1 -1 -1]: per output channel, first for all the
   block's tiles at once (contiguous, vectorised) into the four rows of yt (output (a, b) of each
   tile), then stored into y, or added to it (acc; the input gradient accumulates), the last tile
   of an odd width or height cut */
__attribute__((target("avx2,fma"))) static void output_transform(const sq_conv_shape *cs,
                                                                 const wg_geo *g, const float *m,
                                                                 const float *b, int q0, int q1,
                                                                 float *y, int acc, float *yt)
{
    const int K = cs->k, OH = cs->oh, OW = cs->ow, tw = g->tw;
    const int nt = (q1 - q0) * tw;
    const size_t kstride = g->sm;
    float *y00 = yt, *y01 = yt + nt, *y10 = yt + 2 * nt, *y11 = yt + 3 * nt;
    for (int k = 0; k < K; k++) {
        const float bk = b ? b[k] : 0.0f;
        const float *s[16];
        for (int i = 0; i < 16; i++) s[i] = m + (size_t)i * kstride + (size_t)k * nt;
        for (int t = 0; t < nt; t++) {
            float u0[4], u1[4];
            for (int j = 0; j < 4; j++) {
                u0[j] = s[j][t] + s[4 + j][t] + s[8 + j][t];
                u1[j] = s[4 + j][t] - s[8 + j][t] - s[12 + j][t];
            }
            y00[t] = u0[0] + u0[1] + u0[2] + bk;
            y01[t] = u0[1] - u0[2] - u0[3] + bk;
            y10[t] = u1[0] + u1[1] + u1[2] + bk;
            y11[t] = u1[1] - u1[2] - u1[3] + bk;
        }
        for (int q = q0; q < q1; q++) {
            const int img = q / g->th, ty = q % g->th, l0 = (q - q0) * tw;
            float *r0 = y + ((size_t)img * K + k) * OH * OW + (size_t)(2 * ty) * OW;
            float *r1 = 2 * ty + 1 < OH ? r0 + OW : NULL;
            int x0 = 0;
            if (acc) {
                for (; 2 * x0 + 1 < OW; x0++) {
                    r0[2 * x0] += y00[l0 + x0];
                    r0[2 * x0 + 1] += y01[l0 + x0];
                    if (r1) {
                        r1[2 * x0] += y10[l0 + x0];
                        r1[2 * x0 + 1] += y11[l0 + x0];
                    }
                }
                if (2 * x0 < OW) {
                    r0[2 * x0] += y00[l0 + x0];
                    if (r1) r1[2 * x0] += y10[l0 + x0];
                }
                continue;
            }
            for (; 2 * x0 + 1 < OW; x0++) {
                r0[2 * x0] = y00[l0 + x0];
                r0[2 * x0 + 1] = y01[l0 + x0];
                if (r1) {
                    r1[2 * x0] = y10[l0 + x0];
                    r1[2 * x0 + 1] = y11[l0 + x0];
                }
            }
            if (2 * x0 < OW) {
                r0[2 * x0] = y00[l0 + x0];
                if (r1) r1[2 * x0] = y10[l0 + x0];
            }
        }
    }
}

/* y (=, or += with acc) = the correlation of x with w (flip: w transposed and rotated, see
   weight_transform) over cs, plus b */
static void wino_run(const sq_conv_shape *cs, const float *x, const float *w, int flip,
                     const float *b, float *y, int acc, float *ws, int nthr)
{
    const wg_geo g = wg_geometry(cs);
    const int rows = cs->n * g.th, K = cs->k, C = cs->c;
    float *u = ws;
#pragma omp parallel num_threads(nthr)
    {
#pragma omp for schedule(static)
        for (int k = 0; k < K; k++) weight_transform(cs, &g, w, flip, u, k);
        float *v = ws + g.u + (size_t)omp_get_thread_num() * g.per_thread, *m = v + g.v,
              *trow = m + g.m;
#pragma omp for schedule(dynamic, 1)
        for (int blk = 0; blk < g.nblk; blk++) {
            const int q0 = blk * g.rows_blk, q1 = q0 + g.rows_blk < rows ? q0 + g.rows_blk : rows;
            const int nt = (q1 - q0) * g.tw;
            input_transform(cs, &g, x, q0, q1, q0, q1, v, trow);
            for (int xi = 0; xi < XI; xi++)
                sq_cpu_sgemm(0, 0, K, nt, C, 1.0f, u + xi * g.su, C, v + xi * g.sv, nt, 0.0f,
                             m + xi * g.sm, nt);
            output_transform(cs, &g, m, b, q0, q1, y, acc, trow);
        }
    }
}

void sq_cpu_wino_fwd(const sq_conv_shape *cs, const float *x, const float *w, const float *b,
                     float *y, float *ws, int nthr)
{
    wino_run(cs, x, w, 0, b, y, 0, ws, nthr);
}

/* the input gradient of a stride-1 pad-1 3x3 conv is the correlation of gy (K channels) with
   the weights transposed and rotated, pad 1: the forward's arithmetic on the swapped shape */
sq_conv_shape sq_cpu_wino_dgrad_shape(const sq_conv_shape *cs)
{
    sq_conv_shape d = *cs;
    d.c = cs->k;
    d.k = cs->c;
    d.h = cs->oh;
    d.w = cs->ow;
    d.oh = cs->h;
    d.ow = cs->w;
    return d;
}

void sq_cpu_wino_dgrad(const sq_conv_shape *cs, const float *w, const float *gy, float *gx,
                       float *ws, int nthr)
{
    const sq_conv_shape d = sq_cpu_wino_dgrad_shape(cs);
    wino_run(&d, gy, w, 1, NULL, gx, 1, ws, nthr);
}

/* GYT[xi][k][tile] = A gy A^T for the tile rows [qa, qb) of the block [q0, q1): the output
   transform's transpose, a 2x2 block of gy (cut at odd edges: zeros) to 4x4 points */
__attribute__((target("avx2,fma"))) static void gy_transform(const sq_conv_shape *cs,
                                                             const wg_geo *g, const float *gy,
                                                             int q0, int q1, int qa, int qb,
                                                             float *gyt)
{
    const int K = cs->k, OH = cs->oh, OW = cs->ow, tw = g->tw;
    const size_t nt = (size_t)(q1 - q0) * tw;
    for (int q = qa; q < qb; q++) {
        const int img = q / g->th, ty = q % g->th;
        const size_t loc0 = (size_t)(q - q0) * tw;
        for (int k = 0; k < K; k++) {
            const float *r0 = gy + ((size_t)img * K + k) * OH * OW + (size_t)(2 * ty) * OW;
            const float *r1 = 2 * ty + 1 < OH ? r0 + OW : NULL;
            float *d = gyt + (size_t)k * nt + loc0;
            int x0 = 0;
#if defined(__x86_64__)
            /* eight tiles a step where their sixteen columns lie inside the row: the even and odd
               columns of two loads per row, then the same P and Q as below */
            const __m256i perm = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
            const __m256 zero = _mm256_setzero_ps();
            for (; 2 * x0 + 16 <= OW; x0 += 8) {
                const __m256 a0 = _mm256_loadu_ps(r0 + 2 * x0), a1 = _mm256_loadu_ps(r0 + 2 * x0 + 8);
                const __m256 e00 = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(a0, a1, 0x88), perm);
                const __m256 e01 = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(a0, a1, 0xdd), perm);
                __m256 e10 = zero, e11 = zero;
                if (r1) {
                    const __m256 b0 = _mm256_loadu_ps(r1 + 2 * x0), b1 = _mm256_loadu_ps(r1 + 2 * x0 + 8);
                    e10 = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(b0, b1, 0x88), perm);
                    e11 = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(b0, b1, 0xdd), perm);
                }
                const __m256 p[4][2] = {{e00, e01},
                                        {_mm256_add_ps(e00, e10), _mm256_add_ps(e01, e11)},
                                        {_mm256_sub_ps(e00, e10), _mm256_sub_ps(e01, e11)},
                                        {_mm256_sub_ps(zero, e10), _mm256_sub_ps(zero, e11)}};
                for (int i = 0; i < 4; i++) {
                    float *di = d + (size_t)(4 * i) * g->sm;
                    _mm256_storeu_ps(di + x0, p[i][0]);
                    _mm256_storeu_ps(di + g->sm + x0, _mm256_add_ps(p[i][0], p[i][1]));
                    _mm256_storeu_ps(di + 2 * g->sm + x0, _mm256_sub_ps(p[i][0], p[i][1]));
                    _mm256_storeu_ps(di + 3 * g->sm + x0, _mm256_sub_ps(zero, p[i][1]));
                }
            }
#endif
            for (; x0 < tw; x0++) {
                const int c1 = 2 * x0 + 1 < OW;
                const float e00 = r0[2 * x0], e01 = c1 ? r0[2 * x0 + 1] : 0.0f;
                const float e10 = r1 ? r1[2 * x0] : 0.0f, e11 = r1 && c1 ? r1[2 * x0 + 1] : 0.0f;
                /* P = A e (rows e0, e0 + e1, e0 - e1, -e1), then Q = P A^T per row */
                const float p[4][2] = {{e00, e01}, {e00 + e10, e01 + e11}, {e00 - e10, e01 - e11}, {-e10, -e11}};
                for (int i = 0; i < 4; i++) {
                    float *di = d + (size_t)(4 * i) * g->sm;
                    di[x0] = p[i][0];
                    di[g->sm + x0] = p[i][0] + p[i][1];
                    di[2 * g->sm + x0] = p[i][0] - p[i][1];
                    di[3 * g->sm + x0] = -p[i][1];
                }
            }
        }
    }
}

/* gw[k][c] += G^T X G for X = GU[.][k][c] (4x4 points to 3x3 taps) */
static void weight_grad_out(const sq_conv_shape *cs, const wg_geo *g, const float *gu, float *gw,
                            int k)
{
    for (int c = 0; c < cs->c; c++) {
        float x[16];
        for (int i = 0; i < 16; i++) x[i] = gu[(size_t)i * g->su + (size_t)k * cs->c + c];
        sq_cpu_wino_filter_grad_add(x, gw + ((size_t)k * cs->c + c) * 9);
    }
}

/* gw += the weight gradient: GU[xi] (K x C) = sum over the tiles of GYT[xi] V[xi]^T, block by
   block in block order, then G^T GU G. Every block's transforms are split among the threads by
   tile rows, its 16 GEMMs by point (each GU[xi] is summed by one thread, in block order), so gw
   does not depend on the thread count or the schedule. */
void sq_cpu_wino_wgrad(const sq_conv_shape *cs, const float *x, const float *gy, float *gw,
                       float *ws, int nthr)
{
    const wg_geo g = wg_geometry_w(cs);
    const int rows = cs->n * g.th, K = cs->k, C = cs->c;
    float *gu = ws, *v = ws + g.u, *gyt = v + g.v;
#pragma omp parallel num_threads(nthr)
    {
        const int t = omp_get_thread_num(), nth = omp_get_num_threads();
        float *trow = gyt + g.m + (size_t)t * g.trow;
        for (int blk = 0; blk < g.nblk; blk++) {
            const int q0 = blk * g.rows_blk, q1 = q0 + g.rows_blk < rows ? q0 + g.rows_blk : rows;
            const int nt = (q1 - q0) * g.tw;
            const int qa = q0 + (int)((long)(q1 - q0) * t / nth), qb = q0 + (int)((long)(q1 - q0) * (t + 1) / nth);
            input_transform(cs, &g, x, q0, q1, qa, qb, v, trow);
            gy_transform(cs, &g, gy, q0, q1, qa, qb, gyt);
#pragma omp barrier
#pragma omp for schedule(dynamic, 1)
            for (int xi = 0; xi < XI; xi++)
                sq_cpu_sgemm(0, 1, K, C, nt, 1.0f, gyt + xi * g.sm, nt, v + xi * g.sv, nt,
                             blk ? 1.0f : 0.0f, gu + xi * g.su, C);
        }
#pragma omp for schedule(static)
        for (int k = 0; k < K; k++) weight_grad_out(cs, &g, gu, gw, k);
    }
}
