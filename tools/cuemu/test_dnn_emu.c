/* gcc -std=c11 -O2 -fopenmp -Wall -Wextra -Wshadow -Werror -I/usr/local/cuda/include -Itools/cuemu tools/cuemu/test_dnn_emu.c tools/cuemu/cudnn_emu.c tools/cuemu/cublas_emu.c -lcriterion -lm -o /tmp/test_dnn_emu && /tmp/test_dnn_emu
   test_dnn_emu.c: unit tests (Criterion suite "cuemu_dnn") of cuemu's cuDNN and cuBLAS emulation
   (cudnn_emu.c, cublas_emu.c), standalone: the device-memory registry the emulation checks
   against (cuemu_dev_range_ok) and cuemu_fatal are provided here by a small table of "device"
   allocations, so the runtime emulation is not needed. Convolutions are compared with a naive
   reference written independently below (one 7-deep loop giving y, dx and dw), 16-bit results
   with the fp32 ones, the rounding of fp16 / bf16 outputs with hand-computed bit patterns, and
   cublasSgemm with a naive triple loop. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cublas_v2.h>
#include <cudnn.h>
#include "cuemu_rt.h"

/* ---- a minimal device-allocation table ---- */

#define MAX_DEV 256
static struct {
    const char *p;
    size_t bytes;
} g_dev[MAX_DEV];

int cuemu_dev_range_ok(const void *p, size_t bytes)
{
    const char *c = p;
    for (int i = 0; i < MAX_DEV; i++)
        if (g_dev[i].p && c >= g_dev[i].p && c <= g_dev[i].p + g_dev[i].bytes &&
            bytes <= (size_t)(g_dev[i].p + g_dev[i].bytes - c))
            return 1;
    return 0;
}

void cuemu_stat(const char *what) { (void)what; }

void cuemu_fatal(const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cuemu: %s: ", what);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static void *dalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    cr_assert_not_null(p);
    for (int i = 0; i < MAX_DEV; i++)
        if (!g_dev[i].p) {
            g_dev[i].p = p;
            g_dev[i].bytes = bytes;
            return p;
        }
    cr_assert_fail("device table full");
    return NULL;
}

static void dfree(void *p)
{
    for (int i = 0; i < MAX_DEV; i++)
        if (g_dev[i].p == p) g_dev[i].p = NULL;
    free(p);
}

/* ---- data ---- */

static uint32_t g_rng = 12345u;

/* multiples of 1/64 in [-1, 1]: exact in fp16 and bf16 */
static float rnd(void)
{
    g_rng = g_rng * 1664525u + 1013904223u;
    return (float)((int)((g_rng >> 9) % 129u) - 64) / 64.0f;
}

static float *dfill(size_t count)
{
    float *p = dalloc(count * sizeof *p);
    for (size_t i = 0; i < count; i++) p[i] = rnd();
    return p;
}

static float *dnan(size_t count)
{
    float *p = dalloc(count * sizeof *p);
    for (size_t i = 0; i < count; i++) p[i] = NAN;
    return p;
}

static void expect_close(const char *what, const float *got, const double *want, size_t count,
                         double rel)
{
    for (size_t i = 0; i < count; i++)
        cr_assert(fabs(got[i] - want[i]) <= rel * (1.0 + fabs(want[i])),
                  "%s[%zu]: got %.9g, want %.9g", what, i, got[i], want[i]);
}

/* independent 16-bit encoders for the test: fp16 through frexp, bf16 by truncation of exact
   values only */
static uint16_t to_half_exact(float f)
{
    if (f == 0.0f) return signbit(f) ? 0x8000u : 0;
    uint16_t sign = f < 0 ? 0x8000u : 0;
    double a = fabs(f);
    int e;
    double m = frexp(a, &e); /* a = m * 2^e, m in [0.5, 1) */
    if (e - 1 < -14) return (uint16_t)(sign | (uint16_t)(a * 16777216.0)); /* a / 2^-24 */
    return (uint16_t)(sign | (uint16_t)((e - 1 + 15) << 10) | (uint16_t)((m * 2.0 - 1.0) * 1024.0));
}

static double from_half(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    double s = (h & 0x8000u) ? -1.0 : 1.0;
    if (e == 0) return s * ldexp(m, -24);
    if (e == 31) return m ? NAN : s * INFINITY;
    return s * ldexp(1024 + m, e - 25);
}

static uint16_t to_bf16_exact(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return (uint16_t)(b >> 16);
}

static double from_bf16(uint16_t h)
{
    uint32_t b = (uint32_t)h << 16;
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* ---- convolution set-up and naive reference ---- */

typedef struct cfg {
    int n, c, h, w, k, r, s, stride, pad, groups, dil;
    cudnnConvolutionMode_t mode;
} cfg;

typedef struct conv_set {
    cudnnHandle_t h;
    cudnnTensorDescriptor_t xd, yd, bd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    int oh, ow;
    size_t nx, nw, ny;
} conv_set;

static conv_set make_set(const cfg *c, cudnnDataType_t dt)
{
    conv_set s;
    memset(&s, 0, sizeof s);
    cr_assert_eq(cudnnCreate(&s.h), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateTensorDescriptor(&s.xd), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateTensorDescriptor(&s.yd), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateTensorDescriptor(&s.bd), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateFilterDescriptor(&s.wd), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateConvolutionDescriptor(&s.cd), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetTensor4dDescriptor(s.xd, CUDNN_TENSOR_NCHW, dt, c->n, c->c, c->h, c->w),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetFilter4dDescriptor(s.wd, dt, CUDNN_TENSOR_NCHW, c->k, c->c / c->groups,
                                            c->r, c->s),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetConvolution2dDescriptor(s.cd, c->pad, c->pad, c->stride, c->stride,
                                                 c->dil, c->dil, c->mode, CUDNN_DATA_FLOAT),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetConvolutionGroupCount(s.cd, c->groups), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetConvolutionMathType(s.cd, CUDNN_FMA_MATH), CUDNN_STATUS_SUCCESS);
    int on, oc;
    cr_assert_eq(cudnnGetConvolution2dForwardOutputDim(s.cd, s.xd, s.wd, &on, &oc, &s.oh, &s.ow),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(on, c->n);
    cr_assert_eq(oc, c->k);
    cr_assert_eq(s.oh, (c->h + 2 * c->pad - c->dil * (c->r - 1) - 1) / c->stride + 1);
    cr_assert_eq(s.ow, (c->w + 2 * c->pad - c->dil * (c->s - 1) - 1) / c->stride + 1);
    cr_assert_eq(cudnnSetTensor4dDescriptor(s.yd, CUDNN_TENSOR_NCHW, dt, c->n, c->k, s.oh, s.ow),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetTensor4dDescriptor(s.bd, CUDNN_TENSOR_NCHW, dt, 1, c->k, 1, 1),
                 CUDNN_STATUS_SUCCESS);
    s.nx = (size_t)c->n * c->c * c->h * c->w;
    s.nw = (size_t)c->k * (c->c / c->groups) * c->r * c->s;
    s.ny = (size_t)c->n * c->k * s.oh * s.ow;
    return s;
}

static void free_set(conv_set *s)
{
    cudnnDestroyTensorDescriptor(s->xd);
    cudnnDestroyTensorDescriptor(s->yd);
    cudnnDestroyTensorDescriptor(s->bd);
    cudnnDestroyFilterDescriptor(s->wd);
    cudnnDestroyConvolutionDescriptor(s->cd);
    cr_assert_eq(cudnnDestroy(s->h), CUDNN_STATUS_SUCCESS);
}

/* y = conv(x, w); dx = conv^T(w, dy); dw = conv^T(x, dy), all in double (outputs zeroed here) */
static void ref_conv(const cfg *c, int oh, int ow, const float *x, const float *w,
                     const float *dy, double *y, double *dx, double *dw)
{
    int cg = c->c / c->groups, kg = c->k / c->groups;
    memset(y, 0, sizeof *y * (size_t)c->n * c->k * oh * ow);
    memset(dx, 0, sizeof *dx * (size_t)c->n * c->c * c->h * c->w);
    memset(dw, 0, sizeof *dw * (size_t)c->k * cg * c->r * c->s);
    for (int b = 0; b < c->n; b++)
        for (int k = 0; k < c->k; k++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++) {
                    size_t yi = (((size_t)b * c->k + k) * oh + i) * ow + j;
                    for (int ci = 0; ci < cg; ci++)
                        for (int r = 0; r < c->r; r++)
                            for (int s = 0; s < c->s; s++) {
                                int ih = i * c->stride - c->pad + r * c->dil;
                                int iw = j * c->stride - c->pad + s * c->dil;
                                if (ih < 0 || ih >= c->h || iw < 0 || iw >= c->w) continue;
                                int ch = (k / kg) * cg + ci;
                                size_t xi = (((size_t)b * c->c + ch) * c->h + ih) * c->w + iw;
                                int fr = c->mode == CUDNN_CONVOLUTION ? c->r - 1 - r : r;
                                int fs = c->mode == CUDNN_CONVOLUTION ? c->s - 1 - s : s;
                                size_t wi = (((size_t)k * cg + ci) * c->r + fr) * c->s + fs;
                                y[yi] += (double)w[wi] * x[xi];
                                dx[xi] += (double)w[wi] * dy[yi];
                                dw[wi] += (double)x[xi] * dy[yi];
                            }
                }
}

/* the workspace size of the first deterministic algorithm of each direction (the largest) and
   the algorithms themselves */
typedef struct algos {
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    size_t ws;
} algos;

static algos pick_algos(const conv_set *s)
{
    algos a;
    size_t need;
    int got = 0;
    cudnnConvolutionFwdAlgoPerf_t fp[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    cudnnConvolutionBwdDataAlgoPerf_t dp[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    cudnnConvolutionBwdFilterAlgoPerf_t wp[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    cr_assert_eq(cudnnGetConvolutionForwardAlgorithm_v7(s->h, s->xd, s->wd, s->cd, s->yd,
                                                        CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got,
                                                        fp),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_geq(got, 2);
    a.fwd = fp[1].algo;
    cr_assert_eq(cudnnGetConvolutionForwardWorkspaceSize(s->h, s->xd, s->wd, s->cd, s->yd, a.fwd,
                                                         &need),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(need, fp[1].memory);
    a.ws = need;
    cr_assert_eq(cudnnGetConvolutionBackwardDataAlgorithm_v7(s->h, s->wd, s->yd, s->cd, s->xd,
                                                             CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                                             &got, dp),
                 CUDNN_STATUS_SUCCESS);
    a.bwd_data = dp[1].algo;
    cr_assert_eq(cudnnGetConvolutionBackwardDataWorkspaceSize(s->h, s->wd, s->yd, s->cd, s->xd,
                                                              a.bwd_data, &need),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(need, dp[1].memory);
    if (need > a.ws) a.ws = need;
    cr_assert_eq(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                     s->h, s->xd, s->yd, s->cd, s->wd, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                     &got, wp),
                 CUDNN_STATUS_SUCCESS);
    a.bwd_filter = wp[1].algo;
    cr_assert_eq(cudnnGetConvolutionBackwardFilterWorkspaceSize(s->h, s->xd, s->yd, s->cd, s->wd,
                                                                a.bwd_filter, &need),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(need, wp[1].memory);
    if (need > a.ws) a.ws = need;
    return a;
}

static double dot(const float *a, const float *b, size_t count)
{
    double s = 0.0;
    for (size_t i = 0; i < count; i++) s += (double)a[i] * b[i];
    return s;
}

/* all three directions in fp32 against the reference, with beta = 0 (outputs full of NaN) and
   then beta = 1 accumulation */
static void check_fp32(cfg c)
{
    conv_set s = make_set(&c, CUDNN_DATA_FLOAT);
    algos a = pick_algos(&s);
    float *x = dfill(s.nx), *w = dfill(s.nw), *dy = dfill(s.ny);
    float *y = dnan(s.ny), *dx = dnan(s.nx), *dw = dnan(s.nw);
    void *ws = dalloc(a.ws);
    double *ry = malloc(s.ny * sizeof *ry), *rdx = malloc(s.nx * sizeof *rdx),
           *rdw = malloc(s.nw * sizeof *rdw);
    cr_assert(ry && rdx && rdw);
    ref_conv(&c, s.oh, s.ow, x, w, dy, ry, rdx, rdw);
    const float one = 1.0f, zero = 0.0f, half = 0.5f;

    cr_assert_eq(cudnnConvolutionForward(s.h, &one, s.xd, x, s.wd, w, s.cd, a.fwd, ws, a.ws,
                                         &zero, s.yd, y),
                 CUDNN_STATUS_SUCCESS);
    expect_close("y", y, ry, s.ny, 1e-5);
    cr_assert_eq(cudnnConvolutionBackwardData(s.h, &one, s.wd, w, s.yd, dy, s.cd, a.bwd_data, ws,
                                              a.ws, &zero, s.xd, dx),
                 CUDNN_STATUS_SUCCESS);
    expect_close("dx", dx, rdx, s.nx, 1e-5);
    cr_assert_eq(cudnnConvolutionBackwardFilter(s.h, &one, s.xd, x, s.yd, dy, s.cd, a.bwd_filter,
                                                ws, a.ws, &zero, s.wd, dw),
                 CUDNN_STATUS_SUCCESS);
    expect_close("dw", dw, rdw, s.nw, 1e-5);

    /* adjoint identity <conv(x, w), dy> = <x, dx> = <w, dw> */
    double d1 = dot(y, dy, s.ny), d2 = dot(x, dx, s.nx), d3 = dot(w, dw, s.nw);
    cr_assert(fabs(d1 - d2) <= 1e-4 * (1.0 + fabs(d1)), "<y,dy> %g vs <x,dx> %g", d1, d2);
    cr_assert(fabs(d1 - d3) <= 1e-4 * (1.0 + fabs(d1)), "<y,dy> %g vs <w,dw> %g", d1, d3);

    /* beta = 1: out = 0.5 * op + previous */
    for (size_t i = 0; i < s.nx; i++) rdx[i] = 0.5 * rdx[i] + dx[i];
    for (size_t i = 0; i < s.nw; i++) rdw[i] = 0.5 * rdw[i] + dw[i];
    for (size_t i = 0; i < s.ny; i++) ry[i] = 0.5 * ry[i] + y[i];
    cr_assert_eq(cudnnConvolutionForward(s.h, &half, s.xd, x, s.wd, w, s.cd, a.fwd, ws, a.ws,
                                         &one, s.yd, y),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnConvolutionBackwardData(s.h, &half, s.wd, w, s.yd, dy, s.cd, a.bwd_data, ws,
                                              a.ws, &one, s.xd, dx),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnConvolutionBackwardFilter(s.h, &half, s.xd, x, s.yd, dy, s.cd,
                                                a.bwd_filter, ws, a.ws, &one, s.wd, dw),
                 CUDNN_STATUS_SUCCESS);
    expect_close("y (beta 1)", y, ry, s.ny, 1e-5);
    expect_close("dx (beta 1)", dx, rdx, s.nx, 1e-5);
    expect_close("dw (beta 1)", dw, rdw, s.nw, 1e-5);

    free(ry);
    free(rdx);
    free(rdw);
    dfree(x);
    dfree(w);
    dfree(dy);
    dfree(y);
    dfree(dx);
    dfree(dw);
    dfree(ws);
    free_set(&s);
}

/*                                n  c  h  w  k  r  s  st pad g dil mode */
Test(cuemu_dnn, conv_fp32_dense)
{
    check_fp32((cfg){2, 3, 7, 9, 4, 3, 3, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION});
    check_fp32((cfg){2, 5, 7, 7, 8, 1, 1, 2, 0, 1, 1, CUDNN_CROSS_CORRELATION});
    check_fp32((cfg){1, 3, 9, 8, 2, 3, 3, 2, 1, 1, 1, CUDNN_CROSS_CORRELATION});
}

Test(cuemu_dnn, conv_fp32_groups)
{
    check_fp32((cfg){2, 4, 9, 7, 6, 3, 3, 2, 0, 2, 1, CUDNN_CROSS_CORRELATION});
    check_fp32((cfg){3, 6, 5, 6, 6, 3, 3, 1, 1, 2, 1, CUDNN_CROSS_CORRELATION});
}

Test(cuemu_dnn, conv_fp32_depthwise)
{
    check_fp32((cfg){2, 6, 8, 5, 6, 3, 3, 2, 1, 6, 1, CUDNN_CROSS_CORRELATION});
    check_fp32((cfg){1, 4, 7, 7, 8, 3, 3, 1, 1, 4, 1, CUDNN_CROSS_CORRELATION});
}

Test(cuemu_dnn, conv_fp32_dilation_and_true_convolution)
{
    check_fp32((cfg){2, 4, 7, 7, 4, 3, 2, 1, 1, 1, 2, CUDNN_CROSS_CORRELATION});
    check_fp32((cfg){2, 3, 6, 7, 4, 3, 2, 2, 1, 1, 1, CUDNN_CONVOLUTION});
}

/* ---- fp16 / bf16 ---- */

/* forward in 16 bits equals the fp32 forward rounded to the 16-bit type (inputs exact in both) */
static void check_16(cudnnDataType_t dt, cfg c)
{
    conv_set s32 = make_set(&c, CUDNN_DATA_FLOAT), s16 = make_set(&c, dt);
    algos a = pick_algos(&s16);
    float *x = dfill(s32.nx), *w = dfill(s32.nw), *y = dnan(s32.ny);
    uint16_t *x16 = dalloc(s32.nx * 2), *w16 = dalloc(s32.nw * 2), *y16 = dalloc(s32.ny * 2);
    for (size_t i = 0; i < s32.nx; i++)
        x16[i] = dt == CUDNN_DATA_HALF ? to_half_exact(x[i]) : to_bf16_exact(x[i]);
    for (size_t i = 0; i < s32.nw; i++)
        w16[i] = dt == CUDNN_DATA_HALF ? to_half_exact(w[i]) : to_bf16_exact(w[i]);
    for (size_t i = 0; i < s32.nx; i++)
        cr_assert_eq(dt == CUDNN_DATA_HALF ? from_half(x16[i]) : from_bf16(x16[i]), x[i]);
    memset(y16, 0xff, s32.ny * 2); /* NaN in both types */
    void *ws = dalloc(a.ws);
    const float one = 1.0f, zero = 0.0f;
    cr_assert_eq(cudnnConvolutionForward(s32.h, &one, s32.xd, x, s32.wd, w, s32.cd, a.fwd, ws,
                                         a.ws, &zero, s32.yd, y),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnConvolutionForward(s16.h, &one, s16.xd, x16, s16.wd, w16, s16.cd, a.fwd, ws,
                                         a.ws, &zero, s16.yd, y16),
                 CUDNN_STATUS_SUCCESS);
    /* round to nearest: at most half an ulp, 2^-11 (fp16) or 2^-8 (bf16) relative, plus the
       fp16 subnormal spacing 2^-24 near zero */
    double rel = dt == CUDNN_DATA_HALF ? ldexp(1.0, -11) : ldexp(1.0, -8);
    for (size_t i = 0; i < s32.ny; i++) {
        double got = dt == CUDNN_DATA_HALF ? from_half(y16[i]) : from_bf16(y16[i]);
        cr_assert(fabs(got - y[i]) <= rel * fabs(y[i]) + ldexp(1.0, -24) + 1e-7,
                  "y16[%zu] = %.9g, fp32 %.9g", i, got, y[i]);
    }
    dfree(x);
    dfree(w);
    dfree(y);
    dfree(x16);
    dfree(w16);
    dfree(y16);
    dfree(ws);
    free_set(&s32);
    free_set(&s16);
}

Test(cuemu_dnn, conv_fp16_bf16_forward)
{
    check_16(CUDNN_DATA_HALF, (cfg){2, 4, 7, 9, 6, 3, 3, 1, 1, 2, 1, CUDNN_CROSS_CORRELATION});
    check_16(CUDNN_DATA_HALF, (cfg){2, 6, 8, 5, 6, 3, 3, 2, 1, 6, 1, CUDNN_CROSS_CORRELATION});
    check_16(CUDNN_DATA_BFLOAT16, (cfg){2, 4, 7, 9, 6, 3, 3, 1, 1, 2, 1, CUDNN_CROSS_CORRELATION});
    check_16(CUDNN_DATA_BFLOAT16, (cfg){1, 3, 9, 8, 4, 3, 3, 2, 0, 1, 1, CUDNN_CROSS_CORRELATION});
}

/* a 1x1 convolution with one channel scales every element by w: the rounding of the output */
static void scale16(cudnnDataType_t dt, uint16_t wbits, const uint16_t *in, uint16_t *out, int count)
{
    cfg c = {1, 1, 1, count, 1, 1, 1, 1, 0, 1, 1, CUDNN_CROSS_CORRELATION};
    conv_set s = make_set(&c, dt);
    algos a = pick_algos(&s);
    uint16_t *x = dalloc((size_t)count * 2), *w = dalloc(2), *y = dalloc((size_t)count * 2);
    void *ws = dalloc(a.ws);
    memcpy(x, in, (size_t)count * 2);
    *w = wbits;
    const float one = 1.0f, zero = 0.0f;
    cr_assert_eq(cudnnConvolutionForward(s.h, &one, s.xd, x, s.wd, w, s.cd, a.fwd, ws, a.ws,
                                         &zero, s.yd, y),
                 CUDNN_STATUS_SUCCESS);
    memcpy(out, y, (size_t)count * 2);
    dfree(x);
    dfree(w);
    dfree(y);
    dfree(ws);
    free_set(&s);
}

Test(cuemu_dnn, fp16_rounding_special_values)
{
    /* x * 1: exact round trip of subnormals, max, negatives, inf; NaN stays NaN (-0 becomes +0:
       the accumulation starts from +0, as on a GPU) */
    const uint16_t in[] = {0x0001, 0x03ff, 0x0400, 0x7bff, 0x8001, 0x7c00, 0xfc00, 0x3c01, 0x7e00};
    uint16_t out[9];
    scale16(CUDNN_DATA_HALF, 0x3c00, in, out, 9);
    for (int i = 0; i < 8; i++) cr_assert_eq(out[i], in[i], "x*1: %04x -> %04x", in[i], out[i]);
    cr_assert_eq(out[8] & 0x7c00, 0x7c00);
    cr_assert_neq(out[8] & 0x03ff, 0);
    /* x * 0.5: 2^-24 / 2 ties to 0, 3 * 2^-24 / 2 ties to 2 * 2^-24 (even), 5 * 2^-24 / 2 to
       2 * 2^-24 (even), 0x0400 / 2 = 0x0200 exactly; 1 + 2^-10 halved is exact */
    const uint16_t in2[] = {0x0001, 0x0003, 0x0005, 0x0400, 0x3c01, 0x8003};
    const uint16_t want2[] = {0x0000, 0x0002, 0x0002, 0x0200, 0x3801, 0x8002};
    uint16_t out2[6];
    scale16(CUDNN_DATA_HALF, 0x3800, in2, out2, 6);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(out2[i], want2[i], "x/2: %04x -> %04x, want %04x", in2[i], out2[i], want2[i]);
    /* x * 2: 65504 * 2 overflows to inf; 1 + 2^-10 times 1.5 = 1.5 + 1.5 * 2^-10 ties to even */
    const uint16_t in3[] = {0x7bff, 0xfbff};
    uint16_t out3[2];
    scale16(CUDNN_DATA_HALF, 0x4000, in3, out3, 2);
    cr_assert_eq(out3[0], 0x7c00);
    cr_assert_eq(out3[1], 0xfc00);
    const uint16_t in4[] = {0x3c01, 0x3c03};
    uint16_t out4[2];
    scale16(CUDNN_DATA_HALF, 0x3e00, in4, out4, 2);
    /* 1.5 * (1 + 2^-10) = 1.5 + 1.5 ulp -> 0x3e02 (even); 1.5 * (1 + 3 * 2^-10) = 1.5 + 4.5 ulp
       -> 0x3e04 (even) */
    cr_assert_eq(out4[0], 0x3e02, "%04x", out4[0]);
    cr_assert_eq(out4[1], 0x3e04, "%04x", out4[1]);
}

Test(cuemu_dnn, bf16_rounding)
{
    /* 1.5 * (1 + 2^-7) = 1.5 + 1.5 ulp -> 0x3fc2 (even); 1.5 * (1 + 3 * 2^-7) -> 1.5 + 4.5 ulp
       -> 0x3fc4; max finite * 2 -> inf */
    const uint16_t in[] = {0x3f81, 0x3f83, 0x7f7f};
    uint16_t out[3];
    scale16(CUDNN_DATA_BFLOAT16, 0x3fc0, in, out, 3);
    cr_assert_eq(out[0], 0x3fc2, "%04x", out[0]);
    cr_assert_eq(out[1], 0x3fc4, "%04x", out[1]);
    const uint16_t in2[] = {0x7f7f};
    uint16_t out2[1];
    scale16(CUDNN_DATA_BFLOAT16, 0x4000, in2, out2, 1);
    cr_assert_eq(out2[0], 0x7f80, "%04x", out2[0]);
}

/* ---- fused bias + activation ---- */

Test(cuemu_dnn, fused_bias_relu)
{
    cfg c = {2, 4, 7, 7, 6, 3, 3, 1, 1, 2, 1, CUDNN_CROSS_CORRELATION};
    conv_set s = make_set(&c, CUDNN_DATA_FLOAT);
    algos a = pick_algos(&s);
    cudnnActivationDescriptor_t relu, ident, clip;
    cr_assert_eq(cudnnCreateActivationDescriptor(&relu), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateActivationDescriptor(&ident), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateActivationDescriptor(&clip), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetActivationDescriptor(relu, CUDNN_ACTIVATION_RELU,
                                              CUDNN_NOT_PROPAGATE_NAN, 0.0),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetActivationDescriptor(ident, CUDNN_ACTIVATION_IDENTITY,
                                              CUDNN_NOT_PROPAGATE_NAN, 0.0),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetActivationDescriptor(clip, CUDNN_ACTIVATION_CLIPPED_RELU,
                                              CUDNN_NOT_PROPAGATE_NAN, 6.0),
                 CUDNN_STATUS_SUCCESS);
    float *x = dfill(s.nx), *w = dfill(s.nw), *dy = dfill(s.ny), *b = dfill((size_t)c.k);
    float *y = dnan(s.ny), *z = dfill(s.ny);
    void *ws = dalloc(a.ws);
    double *ry = malloc(s.ny * sizeof *ry), *rdx = malloc(s.nx * sizeof *rdx),
           *rdw = malloc(s.nw * sizeof *rdw), *want = malloc(s.ny * sizeof *want);
    cr_assert(ry && rdx && rdw && want);
    ref_conv(&c, s.oh, s.ow, x, w, dy, ry, rdx, rdw);
    size_t plane = (size_t)s.oh * s.ow;
    const float one = 1.0f, zero = 0.0f, two = 2.0f, half = 0.5f;

    /* alpha2 = 0 and z = y full of NaN: z not read */
    for (size_t i = 0; i < s.ny; i++) {
        double v = ry[i] + b[(i / plane) % (size_t)c.k];
        want[i] = v > 0 ? v : 0;
    }
    cr_assert_eq(cudnnConvolutionBiasActivationForward(s.h, &one, s.xd, x, s.wd, w, s.cd, a.fwd,
                                                       ws, a.ws, &zero, s.yd, y, s.bd, b, relu,
                                                       s.yd, y),
                 CUDNN_STATUS_SUCCESS);
    expect_close("relu(conv + b)", y, want, s.ny, 1e-5);
    int negatives = 0;
    for (size_t i = 0; i < s.ny; i++) negatives += want[i] == 0;
    cr_assert_gt(negatives, 0, "the case should exercise the ReLU");

    /* alpha1 = 2, alpha2 = 0.5 with a separate z */
    for (size_t i = 0; i < s.ny; i++) {
        double v = 2.0 * ry[i] + 0.5 * z[i] + b[(i / plane) % (size_t)c.k];
        want[i] = v > 0 ? v : 0;
    }
    cr_assert_eq(cudnnConvolutionBiasActivationForward(s.h, &two, s.xd, x, s.wd, w, s.cd, a.fwd,
                                                       ws, a.ws, &half, s.yd, z, s.bd, b, relu,
                                                       s.yd, y),
                 CUDNN_STATUS_SUCCESS);
    expect_close("relu(2 conv + z/2 + b)", y, want, s.ny, 1e-5);

    /* IDENTITY only with IMPLICIT_PRECOMP_GEMM; other activations refused */
    cr_assert_eq(cudnnConvolutionBiasActivationForward(s.h, &one, s.xd, x, s.wd, w, s.cd,
                                                       CUDNN_CONVOLUTION_FWD_ALGO_GEMM, ws, a.ws,
                                                       &zero, s.yd, y, s.bd, b, ident, s.yd, y),
                 CUDNN_STATUS_NOT_SUPPORTED);
    cr_assert_eq(cudnnConvolutionBiasActivationForward(s.h, &one, s.xd, x, s.wd, w, s.cd, a.fwd,
                                                       ws, a.ws, &zero, s.yd, y, s.bd, b, clip,
                                                       s.yd, y),
                 CUDNN_STATUS_NOT_SUPPORTED);
    cr_assert_eq(a.fwd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM);
    for (size_t i = 0; i < s.ny; i++) want[i] = ry[i] + b[(i / plane) % (size_t)c.k];
    cr_assert_eq(cudnnConvolutionBiasActivationForward(s.h, &one, s.xd, x, s.wd, w, s.cd, a.fwd,
                                                       ws, a.ws, &zero, s.yd, y, s.bd, b, ident,
                                                       s.yd, y),
                 CUDNN_STATUS_SUCCESS);
    expect_close("conv + b", y, want, s.ny, 1e-5);

    /* a bias of the wrong shape */
    cudnnTensorDescriptor_t bad;
    cr_assert_eq(cudnnCreateTensorDescriptor(&bad), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetTensor4dDescriptor(bad, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, c.k, 1, 2),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnConvolutionBiasActivationForward(s.h, &one, s.xd, x, s.wd, w, s.cd, a.fwd,
                                                       ws, a.ws, &zero, s.yd, y, bad, b, relu,
                                                       s.yd, y),
                 CUDNN_STATUS_BAD_PARAM);
    cudnnDestroyTensorDescriptor(bad);
    cudnnDestroyActivationDescriptor(relu);
    cudnnDestroyActivationDescriptor(ident);
    cudnnDestroyActivationDescriptor(clip);
    free(ry);
    free(rdx);
    free(rdw);
    free(want);
    free_set(&s);
}

Test(cuemu_dnn, fused_bias_relu_fp16)
{
    cfg c = {1, 4, 6, 6, 4, 3, 3, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION};
    conv_set s = make_set(&c, CUDNN_DATA_HALF);
    algos a = pick_algos(&s);
    cudnnActivationDescriptor_t relu;
    cr_assert_eq(cudnnCreateActivationDescriptor(&relu), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetActivationDescriptor(relu, CUDNN_ACTIVATION_RELU,
                                              CUDNN_NOT_PROPAGATE_NAN, 0.0),
                 CUDNN_STATUS_SUCCESS);
    float *x = dfill(s.nx), *w = dfill(s.nw), *dy = dfill(s.ny), *b = dfill((size_t)c.k);
    uint16_t *x16 = dalloc(s.nx * 2), *w16 = dalloc(s.nw * 2), *b16 = dalloc((size_t)c.k * 2),
             *y16 = dalloc(s.ny * 2);
    for (size_t i = 0; i < s.nx; i++) x16[i] = to_half_exact(x[i]);
    for (size_t i = 0; i < s.nw; i++) w16[i] = to_half_exact(w[i]);
    for (int i = 0; i < c.k; i++) b16[i] = to_half_exact(b[i]);
    memset(y16, 0xff, s.ny * 2);
    void *ws = dalloc(a.ws);
    double *ry = malloc(s.ny * sizeof *ry), *rdx = malloc(s.nx * sizeof *rdx),
           *rdw = malloc(s.nw * sizeof *rdw);
    cr_assert(ry && rdx && rdw);
    ref_conv(&c, s.oh, s.ow, x, w, dy, ry, rdx, rdw);
    const float one = 1.0f, zero = 0.0f;
    cr_assert_eq(cudnnConvolutionBiasActivationForward(s.h, &one, s.xd, x16, s.wd, w16, s.cd,
                                                       a.fwd, ws, a.ws, &zero, s.yd, y16, s.bd,
                                                       b16, relu, s.yd, y16),
                 CUDNN_STATUS_SUCCESS);
    size_t plane = (size_t)s.oh * s.ow;
    for (size_t i = 0; i < s.ny; i++) {
        double v = ry[i] + b[(i / plane) % (size_t)c.k];
        v = v > 0 ? v : 0;
        cr_assert(fabs(from_half(y16[i]) - v) <= ldexp(1.0, -11) * v + ldexp(1.0, -24),
                  "y16[%zu] = %g, want %g", i, from_half(y16[i]), v);
    }
    /* an fp32 bias with fp16 data is refused */
    cudnnTensorDescriptor_t b32d;
    cr_assert_eq(cudnnCreateTensorDescriptor(&b32d), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetTensor4dDescriptor(b32d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, c.k, 1, 1),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnConvolutionBiasActivationForward(s.h, &one, s.xd, x16, s.wd, w16, s.cd,
                                                       a.fwd, ws, a.ws, &zero, s.yd, y16, b32d, b,
                                                       relu, s.yd, y16),
                 CUDNN_STATUS_NOT_SUPPORTED);
    cudnnDestroyTensorDescriptor(b32d);
    cudnnDestroyActivationDescriptor(relu);
    free(ry);
    free(rdx);
    free(rdw);
    free_set(&s);
}

/* ---- heuristics, workspace, argument checks ---- */

Test(cuemu_dnn, heuristics_and_workspace)
{
    cfg c = {2, 4, 7, 7, 4, 3, 3, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION};
    conv_set s = make_set(&c, CUDNN_DATA_FLOAT);
    cudnnConvolutionFwdAlgoPerf_t fp[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int got = 0, succ = 0;
    cr_assert_eq(cudnnGetConvolutionForwardAlgorithm_v7(s.h, s.xd, s.wd, s.cd, s.yd,
                                                        CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, fp),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_geq(got, 3);
    cr_assert_eq(fp[0].status, CUDNN_STATUS_SUCCESS);
    cr_assert_eq(fp[0].determinism, CUDNN_NON_DETERMINISTIC);
    for (int i = 0; i < got; i++) {
        if (fp[i].status != CUDNN_STATUS_SUCCESS) continue;
        succ++;
        cr_assert_gt(fp[i].memory, 0);
        cr_assert_eq(fp[i].mathType, CUDNN_FMA_MATH);
    }
    cr_assert_geq(succ, 3);
    cr_assert_neq(fp[0].memory, fp[1].memory);
    /* a request for one result returns one */
    cr_assert_eq(cudnnGetConvolutionForwardAlgorithm_v7(s.h, s.xd, s.wd, s.cd, s.yd, 1, &got, fp),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(got, 1);
    cr_assert_eq(cudnnGetConvolutionForwardAlgorithm_v7(s.h, s.xd, s.wd, s.cd, s.yd, 0, &got, fp),
                 CUDNN_STATUS_BAD_PARAM);

    algos a = pick_algos(&s);
    size_t need = 0;
    cr_assert_eq(cudnnGetConvolutionForwardWorkspaceSize(s.h, s.xd, s.wd, s.cd, s.yd, a.fwd, &need),
                 CUDNN_STATUS_SUCCESS);
    float *x = dfill(s.nx), *w = dfill(s.nw), *y = dnan(s.ny);
    unsigned char *ws = dalloc(a.ws);
    memset(ws, 0, a.ws);
    const float one = 1.0f, zero = 0.0f;
    cr_assert_eq(cudnnConvolutionForward(s.h, &one, s.xd, x, s.wd, w, s.cd, a.fwd, ws, need - 1,
                                         &zero, s.yd, y),
                 CUDNN_STATUS_BAD_PARAM);
    cr_assert_eq(cudnnConvolutionForward(s.h, &one, s.xd, x, s.wd, w, s.cd, a.fwd, NULL, need,
                                         &zero, s.yd, y),
                 CUDNN_STATUS_BAD_PARAM);
    cr_assert_eq(cudnnConvolutionForward(s.h, &one, s.xd, x, s.wd, w, s.cd,
                                         CUDNN_CONVOLUTION_FWD_ALGO_FFT, ws, a.ws, &zero, s.yd, y),
                 CUDNN_STATUS_NOT_SUPPORTED);
    cr_assert_eq(cudnnConvolutionForward(s.h, &one, s.xd, x, s.wd, w, s.cd,
                                         (cudnnConvolutionFwdAlgo_t)99, ws, a.ws, &zero, s.yd, y),
                 CUDNN_STATUS_BAD_PARAM);
    cr_assert_eq(cudnnGetConvolutionForwardWorkspaceSize(s.h, s.xd, s.wd, s.cd, s.yd,
                                                         CUDNN_CONVOLUTION_FWD_ALGO_FFT, &need),
                 CUDNN_STATUS_NOT_SUPPORTED);
    cr_assert_eq(cudnnGetConvolutionForwardWorkspaceSize(s.h, s.xd, s.wd, s.cd, s.yd, a.fwd, &need),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnConvolutionForward(s.h, &one, s.xd, x, s.wd, w, s.cd, a.fwd, ws, need,
                                         &zero, s.yd, y),
                 CUDNN_STATUS_SUCCESS);
    for (size_t i = 0; i < need; i++) cr_assert_eq(ws[i], 0xff, "workspace byte %zu not ruined", i);

    /* backward data with too small a workspace */
    float *dy = dfill(s.ny), *dx = dnan(s.nx);
    cr_assert_eq(cudnnGetConvolutionBackwardDataWorkspaceSize(s.h, s.wd, s.yd, s.cd, s.xd,
                                                              a.bwd_data, &need),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnConvolutionBackwardData(s.h, &one, s.wd, w, s.yd, dy, s.cd, a.bwd_data, ws,
                                              need - 1, &zero, s.xd, dx),
                 CUDNN_STATUS_BAD_PARAM);
    cr_assert_eq(cudnnGetConvolutionBackwardFilterWorkspaceSize(s.h, s.xd, s.yd, s.cd, s.wd,
                                                                a.bwd_filter, &need),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnConvolutionBackwardFilter(s.h, &one, s.xd, x, s.yd, dy, s.cd, a.bwd_filter,
                                                ws, need - 1, &zero, s.wd, w),
                 CUDNN_STATUS_BAD_PARAM);
    free_set(&s);
}

/* cudnnFind*AlgorithmEx: the heuristics' list, algorithms needing more workspace than offered
   marked NOT_SUPPORTED */
Test(cuemu_dnn, find_algorithms_respect_the_workspace)
{
    cfg c = {2, 4, 7, 7, 4, 3, 3, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION};
    conv_set s = make_set(&c, CUDNN_DATA_FLOAT);
    float *x = dfill(s.nx), *w = dfill(s.nw), *y = dfill(s.ny);
    size_t big = 1 << 20;
    void *ws = dalloc(big);
    cudnnConvolutionFwdAlgoPerf_t fp[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    cudnnConvolutionBwdDataAlgoPerf_t dp[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    cudnnConvolutionBwdFilterAlgoPerf_t wp[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int got = 0, ok = 0;
    cr_assert_eq(cudnnFindConvolutionForwardAlgorithmEx(s.h, s.xd, x, s.wd, w, s.cd, s.yd, y,
                                                        CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got,
                                                        fp, ws, big),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_geq(got, 3);
    for (int i = 0; i < got; i++) ok += fp[i].status == CUDNN_STATUS_SUCCESS;
    cr_assert_geq(ok, 3);
    /* no workspace: only algorithms that need none could run, and every emulated one needs some */
    cr_assert_eq(cudnnFindConvolutionForwardAlgorithmEx(s.h, s.xd, x, s.wd, w, s.cd, s.yd, y,
                                                        CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got,
                                                        fp, NULL, 0),
                 CUDNN_STATUS_SUCCESS);
    for (int i = 0; i < got; i++) {
        cr_assert_neq(fp[i].status, CUDNN_STATUS_SUCCESS, "result %d needs %zu bytes", i, fp[i].memory);
        cr_assert_lt(fp[i].time, 0.0f);
    }
    cr_assert_eq(cudnnFindConvolutionBackwardDataAlgorithmEx(
                     s.h, s.wd, w, s.yd, y, s.cd, s.xd, x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                     &got, dp, ws, big),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_geq(got, 3);
    cr_assert_eq(dp[0].status, CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnFindConvolutionBackwardFilterAlgorithmEx(
                     s.h, s.xd, x, s.yd, y, s.cd, s.wd, w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                     &got, wp, ws, big),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_geq(got, 3);
    cr_assert_eq(wp[0].status, CUDNN_STATUS_SUCCESS);
    free_set(&s);
}

/* a Find buffer one element short of its descriptor: fatal, as the search would run on it */
Test(cuemu_dnn, find_short_buffer_is_fatal, .signal = SIGABRT)
{
    cfg c = {1, 2, 5, 5, 2, 3, 3, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION};
    conv_set s = make_set(&c, CUDNN_DATA_FLOAT);
    float *x = dfill(s.nx - 1), *w = dfill(s.nw), *y = dfill(s.ny);
    cudnnConvolutionFwdAlgoPerf_t fp[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int got = 0;
    cudnnFindConvolutionForwardAlgorithmEx(s.h, s.xd, x, s.wd, w, s.cd, s.yd, y,
                                           CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, fp, NULL, 0);
}

Test(cuemu_dnn, descriptor_checks)
{
    cudnnHandle_t h;
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    int n, c, hh, ww;
    cr_assert_eq(cudnnCreate(&h), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateTensorDescriptor(&xd), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateTensorDescriptor(&yd), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateFilterDescriptor(&wd), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateConvolutionDescriptor(&cd), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 0, 3, 4, 4),
                 CUDNN_STATUS_BAD_PARAM);
    cr_assert_eq(cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 2, 4, 8, 8),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetConvolution2dDescriptor(cd, 1, 1, 0, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                                 CUDNN_DATA_FLOAT),
                 CUDNN_STATUS_BAD_PARAM);
    cr_assert_eq(cudnnSetConvolution2dDescriptor(cd, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                                 CUDNN_DATA_FLOAT),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetConvolutionGroupCount(cd, 0), CUDNN_STATUS_BAD_PARAM);
    /* channel mismatch: x has 4 channels, w 3 per group */
    cr_assert_eq(cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 4, 3, 3, 3),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnGetConvolution2dForwardOutputDim(cd, xd, wd, &n, &c, &hh, &ww),
                 CUDNN_STATUS_BAD_PARAM);
    /* groups 2: 2 channels per group matches, K = 3 not divisible by 2 */
    cr_assert_eq(cudnnSetConvolutionGroupCount(cd, 2), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 3, 2, 3, 3),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnGetConvolution2dForwardOutputDim(cd, xd, wd, &n, &c, &hh, &ww),
                 CUDNN_STATUS_BAD_PARAM);
    cr_assert_eq(cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 4, 2, 3, 3),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnGetConvolution2dForwardOutputDim(cd, xd, wd, &n, &c, &hh, &ww),
                 CUDNN_STATUS_SUCCESS);
    cr_assert(n == 2 && c == 4 && hh == 8 && ww == 8);
    /* y of the wrong size, then of another type */
    cudnnConvolutionFwdAlgoPerf_t fp[4];
    int got;
    cr_assert_eq(cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 2, 4, 7, 8),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnGetConvolutionForwardAlgorithm_v7(h, xd, wd, cd, yd, 4, &got, fp),
                 CUDNN_STATUS_BAD_PARAM);
    cr_assert_eq(cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_HALF, 2, 4, 8, 8),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnGetConvolutionForwardAlgorithm_v7(h, xd, wd, cd, yd, 4, &got, fp),
                 CUDNN_STATUS_NOT_SUPPORTED);
    /* fp32 data with a half compute type */
    cr_assert_eq(cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 2, 4, 8, 8),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetConvolution2dDescriptor(cd, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                                 CUDNN_DATA_HALF),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnGetConvolutionForwardAlgorithm_v7(h, xd, wd, cd, yd, 4, &got, fp),
                 CUDNN_STATUS_NOT_SUPPORTED);
    cr_assert_str_eq(cudnnGetErrorString(CUDNN_STATUS_BAD_PARAM), "CUDNN_STATUS_BAD_PARAM");
    cr_assert_str_eq(cudnnGetErrorString(CUDNN_STATUS_NOT_SUPPORTED), "CUDNN_STATUS_NOT_SUPPORTED");
    cr_assert_str_eq(cudnnGetErrorString(CUDNN_STATUS_SUCCESS), "CUDNN_STATUS_SUCCESS");
    cudnnDestroyTensorDescriptor(xd);
    cudnnDestroyTensorDescriptor(yd);
    cudnnDestroyFilterDescriptor(wd);
    cudnnDestroyConvolutionDescriptor(cd);
    cudnnDestroy(h);
}

/* y one element short of its descriptor: a fatal out-of-bounds access */
Test(cuemu_dnn, short_output_is_fatal, .signal = SIGABRT)
{
    cfg c = {1, 2, 5, 5, 2, 3, 3, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION};
    conv_set s = make_set(&c, CUDNN_DATA_FLOAT);
    algos a = pick_algos(&s);
    float *x = dfill(s.nx), *w = dfill(s.nw), *y = dnan(s.ny - 1);
    void *ws = dalloc(a.ws);
    const float one = 1.0f, zero = 0.0f;
    cudnnConvolutionForward(s.h, &one, s.xd, x, s.wd, w, s.cd, a.fwd, ws, a.ws, &zero, s.yd, y);
}

/* ---- cudnnAddTensor ---- */

Test(cuemu_dnn, add_tensor)
{
    cudnnHandle_t h;
    cudnnTensorDescriptor_t bd, cd, fd;
    cr_assert_eq(cudnnCreate(&h), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateTensorDescriptor(&bd), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateTensorDescriptor(&cd), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateTensorDescriptor(&fd), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetTensor4dDescriptor(bd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 3, 1, 1),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetTensor4dDescriptor(cd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 2, 3, 4, 5),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetTensor4dDescriptor(fd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 2, 3, 4, 5),
                 CUDNN_STATUS_SUCCESS);
    size_t nc = 2 * 3 * 4 * 5;
    float *b = dfill(3), *cc = dfill(nc), *full = dfill(nc);
    double *want = malloc(nc * sizeof *want);
    cr_assert_not_null(want);
    const float one = 1.0f, two = 2.0f, zero = 0.0f;
    for (size_t i = 0; i < nc; i++) want[i] = cc[i] + 2.0 * b[(i / 20) % 3];
    cr_assert_eq(cudnnAddTensor(h, &two, bd, b, &one, cd, cc), CUDNN_STATUS_SUCCESS);
    expect_close("C + 2 b", cc, want, nc, 1e-6);
    for (size_t i = 0; i < nc; i++) cc[i] = NAN;
    for (size_t i = 0; i < nc; i++) want[i] = full[i];
    cr_assert_eq(cudnnAddTensor(h, &one, fd, full, &zero, cd, cc), CUDNN_STATUS_SUCCESS);
    expect_close("A (beta 0)", cc, want, nc, 0.0);
    cr_assert_eq(cudnnSetTensor4dDescriptor(bd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 2, 1, 1),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnAddTensor(h, &one, bd, b, &one, cd, cc), CUDNN_STATUS_BAD_PARAM);
    cudnnDestroyTensorDescriptor(bd);
    cudnnDestroyTensorDescriptor(cd);
    cudnnDestroyTensorDescriptor(fd);
    cudnnDestroy(h);
    free(want);
}

/* ---- cublasSgemm ---- */

static void check_gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                       float beta)
{
    cublasHandle_t h;
    cr_assert_eq(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST), CUBLAS_STATUS_SUCCESS);
    int ar = ta == CUBLAS_OP_N ? m : k, ac = ta == CUBLAS_OP_N ? k : m;
    int br = tb == CUBLAS_OP_N ? k : n, bc = tb == CUBLAS_OP_N ? n : k;
    int lda = ar + 2, ldb = br + 1, ldc = m + 3;
    float *A = dfill((size_t)lda * ac), *B = dfill((size_t)ldb * bc), *C = dfill((size_t)ldc * n);
    double *want = malloc((size_t)ldc * n * sizeof *want);
    cr_assert_not_null(want);
    const float alpha = 1.5f;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < ldc; i++) {
            if (i >= m) {
                want[i + (size_t)j * ldc] = C[i + (size_t)j * ldc]; /* padding untouched */
                continue;
            }
            double s = 0.0;
            for (int l = 0; l < k; l++) {
                double a = ta == CUBLAS_OP_N ? A[i + (size_t)l * lda] : A[l + (size_t)i * lda];
                double b = tb == CUBLAS_OP_N ? B[l + (size_t)j * ldb] : B[j + (size_t)l * ldb];
                s += a * b;
            }
            want[i + (size_t)j * ldc] = alpha * s + (beta != 0.0f ? beta * C[i + (size_t)j * ldc] : 0.0);
        }
    if (beta == 0.0f)
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) C[i + (size_t)j * ldc] = NAN;
    cr_assert_eq(cublasSgemm(h, ta, tb, m, n, k, &alpha, A, lda, B, ldb, &beta, C, ldc),
                 CUBLAS_STATUS_SUCCESS);
    expect_close("C", C, want, (size_t)ldc * n, 1e-5);
    /* leading dimensions below the rows stored */
    cr_assert_eq(cublasSgemm(h, ta, tb, m, n, k, &alpha, A, ar - 1, B, ldb, &beta, C, ldc),
                 CUBLAS_STATUS_INVALID_VALUE);
    cr_assert_eq(cublasSgemm(h, ta, tb, m, n, k, &alpha, A, lda, B, br - 1, &beta, C, ldc),
                 CUBLAS_STATUS_INVALID_VALUE);
    cr_assert_eq(cublasSgemm(h, ta, tb, m, n, k, &alpha, A, lda, B, ldb, &beta, C, m - 1),
                 CUBLAS_STATUS_INVALID_VALUE);
    cr_assert_eq(cublasSgemm(h, ta, tb, -1, n, k, &alpha, A, lda, B, ldb, &beta, C, ldc),
                 CUBLAS_STATUS_INVALID_VALUE);
    dfree(A);
    dfree(B);
    dfree(C);
    free(want);
    cr_assert_eq(cublasDestroy(h), CUBLAS_STATUS_SUCCESS);
}

Test(cuemu_dnn, sgemm)
{
    const cublasOperation_t ops[2] = {CUBLAS_OP_N, CUBLAS_OP_T};
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            check_gemm(ops[a], ops[b], 5, 7, 9, 0.0f);
            check_gemm(ops[a], ops[b], 6, 3, 4, 1.0f);
            check_gemm(ops[a], ops[b], 3, 4, 2, -0.5f);
        }
    cr_assert_str_eq(cublasGetStatusString(CUBLAS_STATUS_INVALID_VALUE),
                     "CUBLAS_STATUS_INVALID_VALUE");
}

/* B outside device memory: fatal */
Test(cuemu_dnn, sgemm_host_pointer_is_fatal, .signal = SIGABRT)
{
    cublasHandle_t h;
    cr_assert_eq(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    float *A = dfill(16), *C = dfill(16), B[16] = {0};
    const float one = 1.0f, zero = 0.0f;
    cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, A, 4, B, 4, &zero, C, 4);
}
