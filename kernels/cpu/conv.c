/* conv.c: CPU 2-D convolution entry points and dispatch. Dense 3x3 stride-1 pad-1 convs with at
   least 64 channels a side (and 8192 channel pairs) run Winograd F(2x2, 3x3) (conv_wino.c:
   forward and both gradients) in builds with OpenBLAS on CPUs with AVX2/FMA; those with 16 to 64
   channels a side in multiples of 16 run conv_wino16.c's on CPUs with AVX-512F. Other dense and
   grouped convs run the implicit GEMM of conv_igemm.c on such CPUs (stride <= 4), except the passes that
   conv_bgemm.c runs faster as GEMMs over blocks of images (rows narrower than 8, the weight
   gradient of wide layers); depthwise convs (groups ==
   c) run the direct loops of conv_dw.c; everything else (older CPUs, larger strides, builds
   without x86) runs the path in this file: per image and group, im2col on bands of output rows
   sized to stay in L2, one GEMM per band (OpenBLAS single-threaded, or plain loops without
   BLAS); 1x1 stride-1 unpadded convs skip im2col. Images are split into contiguous blocks, one
   per OpenMP thread, each with its own slice of the caller's workspace ([im2col block | partial
   weight gradient, transposed (crs, k): that GEMM runs faster for few channels]); weight
   gradients are summed over the thread partials in thread order, so results are bit-identical
   for a given thread count. Workspaces are sized for the thread count at sizing time; ops never
   use more threads than the smallest count any workspace was sized for. */
#include "cpu_ops.h"
#include <omp.h>
#include <string.h>

/* smallest thread count any workspace was sized for: ops never use more threads than that */
static int g_ws_threads;

/* im2col works on bands of output rows whose column block stays in L2 (about this many bytes) */
#define COL_BLOCK_BYTES (128 * 1024)

typedef struct conv_geo {
    int cg, kg, crs, hw, ohw;
    int pointwise;      /* 1x1, stride 1, no padding: x itself is the column matrix */
    int band;           /* output rows per im2col block */
    size_t col, part;   /* per-thread floats: im2col block, partial weight gradient */
} conv_geo;

static int is_depthwise(const sq_conv_shape *cs) { return cs->groups > 1 && cs->groups == cs->c; }

static conv_geo geometry(const sq_conv_shape *cs)
{
    conv_geo g;
    g.cg = cs->c / cs->groups;
    g.kg = cs->k / cs->groups;
    g.crs = g.cg * cs->r * cs->s;
    g.hw = cs->h * cs->w;
    g.ohw = cs->oh * cs->ow;
    g.pointwise = cs->r == 1 && cs->s == 1 && cs->stride == 1 && cs->pad == 0;
    size_t row_bytes = (size_t)g.crs * cs->ow * sizeof(float);
    g.band = (int)(COL_BLOCK_BYTES / row_bytes);
    if (g.band < 1) g.band = 1;
    if (g.band > cs->oh) g.band = cs->oh;
    g.col = g.pointwise ? 0 : sq_pad64((size_t)g.crs * g.band * cs->ow);
    g.part = sq_pad64((size_t)cs->k * g.crs);
    return g;
}

/* threads for a conv of this size: one below ~256k multiply-adds (fork/join would dominate) */
static int conv_threads(const sq_conv_shape *cs, const conv_geo *g)
{
    const int n = cs->n;
    if ((double)n * cs->k * g->ohw * g->crs < 262144.0) return 1;
    int t = sq_cpu_threads();
    if (g_ws_threads > 0 && t > g_ws_threads) t = g_ws_threads;
    if (g_ws_threads <= 0) t = 1;
    if (t > n) t = n;
    return t < 1 ? 1 : t;
}

size_t sq_cpu_conv_ws_bytes(const sq_conv_shape *cs)
{
    if (is_depthwise(cs)) return 0;
    int t = sq_cpu_threads();
    if (g_ws_threads <= 0 || t < g_ws_threads) g_ws_threads = t;
    size_t q = sq_cpu_qconv_available() && sq_cpu_qconv_shape_ok(cs) ? sq_cpu_qconv_ws_bytes(cs, t) : 0;
    if (sq_cpu_qconv_bwd_available() && sq_cpu_qconv_bwd_shape_ok(cs)) {
        const size_t qb = sq_cpu_qconv_bwd_ws_bytes(cs, t);
        if (qb > q) q = qb;
    }
    size_t f;
    if (sq_cpu_igemm_applies(cs)) {
        f = sq_cpu_igemm_ws_floats(cs, t) * sizeof(float);
        if (sq_cpu_bgemm_applies(cs, SQ_BG_FWD) || sq_cpu_bgemm_applies(cs, SQ_BG_DGRAD) ||
            sq_cpu_bgemm_applies(cs, SQ_BG_WGRAD)) {
            const size_t fb = sq_cpu_bgemm_ws_floats(cs, t) * sizeof(float);
            if (fb > f) f = fb;
        }
    } else {
        conv_geo g = geometry(cs);
        f = (size_t)t * (g.col + g.part) * sizeof(float);
    }
    if (sq_cpu_wino_applies(cs)) {
        const size_t fw = sq_cpu_wino_ws_floats(cs, t) * sizeof(float);
        if (fw > f) f = fw;
    }
    if (sq_cpu_wino16_applies(cs)) {
        const size_t fw = sq_cpu_wino16_ws_floats(cs, t) * sizeof(float);
        if (fw > f) f = fw;
    }
    return f > q ? f : q;
}

int sq_cpu_qconv2d_fwd(const sq_conv_shape *cs, const sq_quant_cfg *qa, const float *qpa,
                       const float *xq, const sq_quant_cfg *qw, const float *qpw, const float *wq,
                       const float *yscale, const float *b, float *y, void *ws)
{
    if (is_depthwise(cs)) return 0;
    const conv_geo g = geometry(cs);
    return sq_cpu_qconv_run(cs, qa, qpa, xq, qw, qpw, wq, yscale, b, y, ws, conv_threads(cs, &g));
}

int sq_cpu_qconv2d_bwd(const sq_conv_shape *cs, const sq_quant_cfg *qa, const float *qpa,
                       const float *xq, const sq_quant_cfg *qw, const float *qpw, const float *wq,
                       const float *yscale, const float *gy, float *gx, int gx_set, float *gw,
                       float *gb, void *ws)
{
    if (!sq_cpu_opts()->bf16_bwd || is_depthwise(cs) || !sq_cpu_qconv_bwd_available() ||
        !sq_cpu_qconv_bwd_shape_ok(cs))
        return 0;
    const conv_geo g = geometry(cs);
    /* the weight gradient here only where its block partials stay small; else, and the bias
       gradient always, through the fp32 backward (which needs no weight for those) */
    const int wg = gw && sq_cpu_qconv_bwd_wgrad_ok(cs);
    if ((gx || wg) && !sq_cpu_qconv_bwd_run(cs, qa, qpa, xq, qw, qpw, wq, yscale, gy, gx, gx_set,
                                            wg ? gw : NULL, ws, conv_threads(cs, &g)))
        return 0;
    if ((gw && !wg) || gb) sq_cpu_conv2d_bwd(cs, xq, wq, gy, NULL, wg ? NULL : gw, gb, ws);
    return 1;
}

/* output columns [*o0, *o1) whose input column o*stride - pad + s lies inside [0, w) */
static void valid_range(int w, int ow, int stride, int pad, int s, int *o0, int *o1)
{
    int lo = pad - s > 0 ? (pad - s + stride - 1) / stride : 0;
    int num = w - 1 + pad - s;
    int hi = num < 0 ? 0 : num / stride + 1;
    if (hi > ow) hi = ow;
    if (lo > hi) lo = hi;
    *o0 = lo;
    *o1 = hi;
}

/* col (cg*R*S rows of stride ld) from x (cg, H, W), output rows [y0, y1) (cpu_ops.h) */
void sq_cpu_im2col(const sq_conv_shape *cs, int cg, const float *x, float *col, int y0, int y1, size_t ld)
{
    const int h = cs->h, w = cs->w, ow = cs->ow, st = cs->stride, pad = cs->pad;
    for (int c = 0; c < cg; c++) {
        const float *xc = x + (size_t)c * h * w;
        for (int r = 0; r < cs->r; r++) {
            for (int s = 0; s < cs->s; s++) {
                float *dst = col + ((size_t)(c * cs->r + r) * cs->s + s) * ld;
                int o0, o1;
                valid_range(w, ow, st, pad, s, &o0, &o1);
                const int off = s - pad;
                for (int y = y0; y < y1; y++) {
                    float *d = dst + (size_t)(y - y0) * ow;
                    int ih = y * st - pad + r;
                    if (ih < 0 || ih >= h || o1 <= o0) {
                        memset(d, 0, sizeof(float) * ow);
                        continue;
                    }
                    const float *xr = xc + (size_t)ih * w;
                    for (int j = 0; j < o0; j++) d[j] = 0.0f;
                    if (st == 1) {
                        memcpy(d + o0, xr + o0 + off, sizeof(float) * (o1 - o0));
                    } else {
                        for (int j = o0; j < o1; j++) d[j] = xr[j * st + off];
                    }
                    for (int j = o1; j < ow; j++) d[j] = 0.0f;
                }
            }
        }
    }
}

/* gx (cg, H, W) += col2im(col, rows of stride ld) for output rows [y0, y1) */
void sq_cpu_col2im_add(const sq_conv_shape *cs, int cg, const float *col, float *gx, int y0, int y1, size_t ld)
{
    const int h = cs->h, w = cs->w, ow = cs->ow, st = cs->stride, pad = cs->pad;
    for (int c = 0; c < cg; c++) {
        float *gc = gx + (size_t)c * h * w;
        for (int r = 0; r < cs->r; r++) {
            for (int s = 0; s < cs->s; s++) {
                const float *src = col + ((size_t)(c * cs->r + r) * cs->s + s) * ld;
                int o0, o1;
                valid_range(w, ow, st, pad, s, &o0, &o1);
                if (o1 <= o0) continue;
                const int off = s - pad;
                for (int y = y0; y < y1; y++) {
                    int ih = y * st - pad + r;
                    if (ih < 0 || ih >= h) continue;
                    const float *sr = src + (size_t)(y - y0) * ow;
                    float *gr = gc + (size_t)ih * w;
                    if (st == 1) {
                        for (int j = o0; j < o1; j++) gr[j + off] += sr[j];
                    } else {
                        for (int j = o0; j < o1; j++) gr[j * st + off] += sr[j];
                    }
                }
            }
        }
    }
}

void sq_cpu_conv2d_fwd(const sq_conv_shape *cs, const float *x, const float *w, const float *b,
                       float *y, void *ws)
{
    if (is_depthwise(cs)) {
        sq_cpu_conv_dw_fwd(cs, x, w, b, y);
        return;
    }
    const conv_geo g = geometry(cs);
    const int n = cs->n, nthr = conv_threads(cs, &g), ow = cs->ow;
    if (sq_cpu_wino_applies(cs)) {
        sq_cpu_wino_fwd(cs, x, w, b, y, ws, nthr);
        return;
    }
    if (sq_cpu_wino16_applies(cs)) {
        sq_cpu_wino16_fwd(cs, x, w, b, y, ws, nthr);
        return;
    }
    if (sq_cpu_bgemm_applies(cs, SQ_BG_FWD)) {
        sq_cpu_bgemm_fwd(cs, x, w, b, y, ws, nthr);
        return;
    }
    if (sq_cpu_igemm_applies(cs)) {
        sq_cpu_igemm_fwd(cs, x, w, b, y, ws, nthr);
        return;
    }
#pragma omp parallel num_threads(nthr)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        float *col = (float *)ws + (size_t)t * (g.col + g.part);
        int i0 = (int)((long)n * t / nt), i1 = (int)((long)n * (t + 1) / nt);
        for (int i = i0; i < i1; i++) {
            for (int gi = 0; gi < cs->groups; gi++) {
                const float *xg = x + ((size_t)i * cs->c + (size_t)gi * g.cg) * g.hw;
                const float *wg = w + (size_t)gi * g.kg * g.crs;
                float *yg = y + ((size_t)i * cs->k + (size_t)gi * g.kg) * g.ohw;
                if (g.pointwise) {
                    sq_cpu_sgemm(0, 0, g.kg, g.ohw, g.crs, 1.0f, wg, g.crs, xg, g.ohw, 0.0f, yg,
                                 g.ohw);
                } else {
                    for (int y0 = 0; y0 < cs->oh; y0 += g.band) {
                        int y1 = y0 + g.band < cs->oh ? y0 + g.band : cs->oh;
                        int cols = (y1 - y0) * ow;
                        sq_cpu_im2col(cs, g.cg, xg, col, y0, y1, (size_t)cols);
                        sq_cpu_sgemm(0, 0, g.kg, cols, g.crs, 1.0f, wg, g.crs, col, cols, 0.0f,
                                     yg + (size_t)y0 * ow, g.ohw);
                    }
                }
                if (b) {
                    for (int o = 0; o < g.kg; o++) {
                        float bv = b[gi * g.kg + o], *yr = yg + (size_t)o * g.ohw;
                        for (int j = 0; j < g.ohw; j++) yr[j] += bv;
                    }
                }
            }
        }
    }
}

/* gb (K) += sum of gy (N, K, OHW) over N and OHW; parallel over channels */
static void conv_bias_grad(int n, int k, int ohw, const float *gy, float *gb)
{
#pragma omp parallel for schedule(static) if ((size_t)n * k * ohw >= SQ_CPU_PAR_MIN)
    for (int o = 0; o < k; o++) {
        double acc = 0.0;
        for (int i = 0; i < n; i++) {
            const float *p = gy + ((size_t)i * k + o) * ohw;
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int j = 0; j < ohw; j++) s += p[j];
            acc += s;
        }
        gb[o] += (float)acc;
    }
}

/* one image and group of the backward: partT (crs, kg) accumulates the transposed weight
   gradient (first = overwrite), gxg gets the input gradient */
static void bwd_image(const sq_conv_shape *cs, const conv_geo *g, const float *xg,
                      const float *wg, const float *gyg, float *gxg, float *partT, int first,
                      float *col)
{
    const int ow = cs->ow;
    if (g->pointwise) {
        if (partT)
            sq_cpu_sgemm(0, 1, g->crs, g->kg, g->ohw, 1.0f, xg, g->ohw, gyg, g->ohw,
                         first ? 0.0f : 1.0f, partT, g->kg);
        if (gxg)
            sq_cpu_sgemm(1, 0, g->cg, g->hw, g->kg, 1.0f, wg, g->crs, gyg, g->ohw, 1.0f, gxg,
                         g->hw);
        return;
    }
    for (int y0 = 0; y0 < cs->oh; y0 += g->band) {
        int y1 = y0 + g->band < cs->oh ? y0 + g->band : cs->oh;
        int cols = (y1 - y0) * ow;
        const float *gyb = gyg + (size_t)y0 * ow;
        if (partT) {
            sq_cpu_im2col(cs, g->cg, xg, col, y0, y1, (size_t)cols);
            sq_cpu_sgemm(0, 1, g->crs, g->kg, cols, 1.0f, col, cols, gyb, g->ohw,
                         first && y0 == 0 ? 0.0f : 1.0f, partT, g->kg);
        }
        if (gxg) {
            sq_cpu_sgemm(1, 0, g->crs, cols, g->kg, 1.0f, wg, g->crs, gyb, g->ohw, 0.0f, col,
                         cols);
            sq_cpu_col2im_add(cs, g->cg, col, gxg, y0, y1, (size_t)cols);
        }
    }
}

void sq_cpu_conv2d_bwd(const sq_conv_shape *cs, const float *x, const float *w, const float *gy,
                       float *gx, float *gw, float *gb, void *ws)
{
    if (is_depthwise(cs)) {
        sq_cpu_conv_dw_bwd(cs, x, w, gy, gx, gw, gb);
        return;
    }
    const conv_geo g = geometry(cs);
    if (gb) conv_bias_grad(cs->n, cs->k, g.ohw, gy, gb);
    if (!gx && !gw) return;
    const int n = cs->n, nthr = conv_threads(cs, &g);
    if (sq_cpu_wino_applies(cs)) {
        if (gx) sq_cpu_wino_dgrad(cs, w, gy, gx, (float *)ws, nthr);
        if (gw) sq_cpu_wino_wgrad(cs, x, gy, gw, (float *)ws, nthr);
        return;
    }
    if (sq_cpu_wino16_applies(cs)) {
        if (gx) sq_cpu_wino16_dgrad(cs, w, gy, gx, (float *)ws, nthr);
        if (gw) sq_cpu_wino16_wgrad(cs, x, gy, gw, (float *)ws, nthr);
        return;
    }
    if (sq_cpu_igemm_applies(cs)) {
        /* each gradient on the path that runs it faster (conv_bgemm.c), one after the other */
        const int bx = gx && sq_cpu_bgemm_applies(cs, SQ_BG_DGRAD), bw = gw && sq_cpu_bgemm_applies(cs, SQ_BG_WGRAD);
        if (bx || bw) sq_cpu_bgemm_bwd(cs, x, w, gy, bx ? gx : NULL, bw ? gw : NULL, ws, nthr);
        if ((gx && !bx) || (gw && !bw)) sq_cpu_igemm_bwd(cs, x, w, gy, bx ? NULL : gx, bw ? NULL : gw, ws, nthr);
        return;
    }
    const size_t stride = g.col + g.part, gsize = (size_t)g.kg * g.crs;
#pragma omp parallel num_threads(nthr)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        float *col = (float *)ws + (size_t)t * stride;
        float *part = col + g.col;
        int i0 = (int)((long)n * t / nt), i1 = (int)((long)n * (t + 1) / nt);
        for (int i = i0; i < i1; i++) {
            for (int gi = 0; gi < cs->groups; gi++) {
                const size_t xo = ((size_t)i * cs->c + (size_t)gi * g.cg) * g.hw;
                bwd_image(cs, &g, x + xo, w + (size_t)gi * gsize,
                          gy + ((size_t)i * cs->k + (size_t)gi * g.kg) * g.ohw,
                          gx ? gx + xo : NULL, gw ? part + (size_t)gi * gsize : NULL, i == i0,
                          col);
            }
        }
        if (gw) {
            /* gw[gi][o][j] += sum over threads u, in order, of partT_u[gi][j][o] */
            const float *parts = (const float *)ws + g.col;
            const long nw = (long)cs->k * g.crs;
#pragma omp barrier
#pragma omp for schedule(static)
            for (long e = 0; e < nw; e++) {
                long gi = e / (long)gsize, rem = e % (long)gsize;
                long o = rem / g.crs, j = rem % g.crs;
                size_t src = (size_t)gi * gsize + (size_t)j * g.kg + o;
                float acc = gw[e];
                for (int u = 0; u < nt; u++)
                    if ((long)n * u / nt < (long)n * (u + 1) / nt) acc += parts[u * stride + src];
                gw[e] = acc;
            }
        }
    }
}

void sq_cpu_conv2d_fwd_ref(const sq_conv_shape *cs, const float *x, const float *w,
                           const float *b, float *y)
{
    const int cg = cs->c / cs->groups, kg = cs->k / cs->groups;
    for (int i = 0; i < cs->n; i++)
        for (int o = 0; o < cs->k; o++) {
            int gi = o / kg;
            for (int oy = 0; oy < cs->oh; oy++)
                for (int ox = 0; ox < cs->ow; ox++) {
                    double acc = b ? b[o] : 0.0;
                    for (int c = 0; c < cg; c++)
                        for (int r = 0; r < cs->r; r++)
                            for (int s = 0; s < cs->s; s++) {
                                int ih = oy * cs->stride - cs->pad + r;
                                int iw = ox * cs->stride - cs->pad + s;
                                if (ih < 0 || ih >= cs->h || iw < 0 || iw >= cs->w) continue;
                                acc += (double)x[(((size_t)i * cs->c + gi * cg + c) * cs->h + ih) *
                                                     cs->w + iw] *
                                       w[(((size_t)o * cg + c) * cs->r + r) * cs->s + s];
                            }
                    y[(((size_t)i * cs->k + o) * cs->oh + oy) * cs->ow + ox] = (float)acc;
                }
        }
}
