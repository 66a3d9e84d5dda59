/* conv.c: CPU 2-D convolution. Dense and grouped convs: im2col per image and group, then one
   GEMM (OpenBLAS, single-threaded) per image; 1x1 stride-1 unpadded convs skip im2col. Images
   are split into contiguous blocks, one per OpenMP thread, each with its own slice of the
   caller's workspace: [im2col buffer | partial weight gradient]. Weight gradients are summed
   over the thread partials in thread order, so results are bit-identical for a given thread
   count. Depthwise convs (groups == c) go to conv_dw.c. */
#include "cpu_ops.h"
#include <omp.h>
#include <string.h>

/* smallest thread count any workspace was sized for: ops never use more threads than that */
static int g_ws_threads;

typedef struct conv_geo {
    int cg, kg, crs, hw, ohw;
    int pointwise;      /* 1x1, stride 1, no padding: x itself is the column matrix */
    size_t col, part;   /* per-thread floats: im2col buffer, partial weight gradient */
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
    g.col = g.pointwise ? 0 : sq_pad64((size_t)g.crs * g.ohw);
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
    conv_geo g = geometry(cs);
    return (size_t)t * (g.col + g.part) * sizeof(float);
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

/* col (cg*R*S, OH*OW) from x (cg, H, W) */
static void im2col(const sq_conv_shape *cs, int cg, const float *x, float *col)
{
    const int h = cs->h, w = cs->w, oh = cs->oh, ow = cs->ow, st = cs->stride, pad = cs->pad;
    for (int c = 0; c < cg; c++) {
        const float *xc = x + (size_t)c * h * w;
        for (int r = 0; r < cs->r; r++) {
            for (int s = 0; s < cs->s; s++) {
                float *dst = col + ((size_t)(c * cs->r + r) * cs->s + s) * oh * ow;
                int o0, o1;
                valid_range(w, ow, st, pad, s, &o0, &o1);
                for (int y = 0; y < oh; y++) {
                    float *d = dst + (size_t)y * ow;
                    int ih = y * st - pad + r;
                    if (ih < 0 || ih >= h || o1 <= o0) {
                        memset(d, 0, sizeof(float) * ow);
                        continue;
                    }
                    const float *xr = xc + (size_t)ih * w;
                    const int off = s - pad;
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

/* gx (cg, H, W) += col2im(col (cg*R*S, OH*OW)) */
static void col2im_add(const sq_conv_shape *cs, int cg, const float *col, float *gx)
{
    const int h = cs->h, w = cs->w, oh = cs->oh, ow = cs->ow, st = cs->stride, pad = cs->pad;
    for (int c = 0; c < cg; c++) {
        float *gc = gx + (size_t)c * h * w;
        for (int r = 0; r < cs->r; r++) {
            for (int s = 0; s < cs->s; s++) {
                const float *src = col + ((size_t)(c * cs->r + r) * cs->s + s) * oh * ow;
                int o0, o1;
                valid_range(w, ow, st, pad, s, &o0, &o1);
                if (o1 <= o0) continue;
                for (int y = 0; y < oh; y++) {
                    int ih = y * st - pad + r;
                    if (ih < 0 || ih >= h) continue;
                    const float *sr = src + (size_t)y * ow;
                    float *gr = gc + (size_t)ih * w;
                    const int off = s - pad;
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
    const int n = cs->n, nthr = conv_threads(cs, &g);
#pragma omp parallel num_threads(nthr)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        float *col = (float *)ws + (size_t)t * (g.col + g.part);
        int i0 = (int)((long)n * t / nt), i1 = (int)((long)n * (t + 1) / nt);
        for (int i = i0; i < i1; i++) {
            for (int gi = 0; gi < cs->groups; gi++) {
                const float *xg = x + ((size_t)i * cs->c + (size_t)gi * g.cg) * g.hw;
                float *yg = y + ((size_t)i * cs->k + (size_t)gi * g.kg) * g.ohw;
                const float *src = xg;
                if (!g.pointwise) {
                    im2col(cs, g.cg, xg, col);
                    src = col;
                }
                sq_cpu_sgemm(0, 0, g.kg, g.ohw, g.crs, 1.0f, w + (size_t)gi * g.kg * g.crs, g.crs,
                             src, g.ohw, 0.0f, yg, g.ohw);
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
#pragma omp parallel num_threads(nthr)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        float *col = (float *)ws + (size_t)t * (g.col + g.part);
        float *part = col + g.col;
        int i0 = (int)((long)n * t / nt), i1 = (int)((long)n * (t + 1) / nt);
        for (int i = i0; i < i1; i++) {
            for (int gi = 0; gi < cs->groups; gi++) {
                const float *xg = x + ((size_t)i * cs->c + (size_t)gi * g.cg) * g.hw;
                const float *gyg = gy + ((size_t)i * cs->k + (size_t)gi * g.kg) * g.ohw;
                const float *wg = w + (size_t)gi * g.kg * g.crs;
                if (gw) {
                    const float *src = xg;
                    if (!g.pointwise) {
                        im2col(cs, g.cg, xg, col);
                        src = col;
                    }
                    sq_cpu_sgemm(0, 1, g.kg, g.crs, g.ohw, 1.0f, gyg, g.ohw, src, g.ohw,
                                 i == i0 ? 0.0f : 1.0f, part + (size_t)gi * g.kg * g.crs, g.crs);
                }
                if (gx) {
                    float *gxg = gx + ((size_t)i * cs->c + (size_t)gi * g.cg) * g.hw;
                    if (g.pointwise) {
                        sq_cpu_sgemm(1, 0, g.cg, g.hw, g.kg, 1.0f, wg, g.crs, gyg, g.ohw, 1.0f,
                                     gxg, g.hw);
                    } else {
                        sq_cpu_sgemm(1, 0, g.crs, g.ohw, g.kg, 1.0f, wg, g.crs, gyg, g.ohw, 0.0f,
                                     col, g.ohw);
                        col2im_add(cs, g.cg, col, gxg);
                    }
                }
            }
        }
        if (gw) {
            const size_t nw = (size_t)cs->k * g.crs, stride = g.col + g.part;
            const float *parts = (const float *)ws + g.col;
#pragma omp barrier
#pragma omp for schedule(static)
            for (size_t j = 0; j < nw; j++) {
                float acc = gw[j];
                for (int u = 0; u < nt; u++)
                    if ((long)n * u / nt < (long)n * (u + 1) / nt) acc += parts[u * stride + j];
                gw[j] = acc;
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
