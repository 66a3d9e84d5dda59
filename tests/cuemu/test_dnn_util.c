/* test_dnn_util.c: helpers of the cuemu_dnn tests (test_dnn_util.h). The device-memory registry
   that the emulation checks against (cuemu_dev_range_ok), cuemu_stat and cuemu_fatal are defined
   here by a small table of "device" allocations, so the runtime emulation is not needed. */
#include "test_dnn_util.h"

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

void *dalloc(size_t bytes)
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

void dfree(void *p)
{
    for (int i = 0; i < MAX_DEV; i++)
        if (g_dev[i].p == p) g_dev[i].p = NULL;
    free(p);
}

/* ---- data ---- */

static uint32_t g_rng = 12345u;

/* multiples of 1/64 in [-1, 1]: exact in fp16 and bf16 */
float rnd(void)
{
    g_rng = g_rng * 1664525u + 1013904223u;
    return (float)((int)((g_rng >> 9) % 129u) - 64) / 64.0f;
}

float *dfill(size_t count)
{
    float *p = dalloc(count * sizeof *p);
    for (size_t i = 0; i < count; i++) p[i] = rnd();
    return p;
}

float *dnan(size_t count)
{
    float *p = dalloc(count * sizeof *p);
    for (size_t i = 0; i < count; i++) p[i] = NAN;
    return p;
}

void expect_close(const char *what, const float *got, const double *want, size_t count,
                         double rel)
{
    for (size_t i = 0; i < count; i++)
        cr_assert(fabs(got[i] - want[i]) <= rel * (1.0 + fabs(want[i])),
                  "%s[%zu]: got %.9g, want %.9g", what, i, got[i], want[i]);
}

/* independent 16-bit encoders for the test: fp16 through frexp, bf16 by truncation of exact
   values only */
uint16_t to_half_exact(float f)
{
    if (f == 0.0f) return signbit(f) ? 0x8000u : 0;
    uint16_t sign = f < 0 ? 0x8000u : 0;
    double a = fabs(f);
    int e;
    double m = frexp(a, &e); /* a = m * 2^e, m in [0.5, 1) */
    if (e - 1 < -14) return (uint16_t)(sign | (uint16_t)(a * 16777216.0)); /* a / 2^-24 */
    return (uint16_t)(sign | (uint16_t)((e - 1 + 15) << 10) | (uint16_t)((m * 2.0 - 1.0) * 1024.0));
}

double from_half(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    double s = (h & 0x8000u) ? -1.0 : 1.0;
    if (e == 0) return s * ldexp(m, -24);
    if (e == 31) return m ? NAN : s * INFINITY;
    return s * ldexp(1024 + m, e - 25);
}

uint16_t to_bf16_exact(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return (uint16_t)(b >> 16);
}

double from_bf16(uint16_t h)
{
    uint32_t b = (uint32_t)h << 16;
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* ---- convolution set-up and naive reference ---- */



conv_set make_set(const cfg *c, cudnnDataType_t dt)
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

void free_set(conv_set *s)
{
    cudnnDestroyTensorDescriptor(s->xd);
    cudnnDestroyTensorDescriptor(s->yd);
    cudnnDestroyTensorDescriptor(s->bd);
    cudnnDestroyFilterDescriptor(s->wd);
    cudnnDestroyConvolutionDescriptor(s->cd);
    cr_assert_eq(cudnnDestroy(s->h), CUDNN_STATUS_SUCCESS);
}

/* y = conv(x, w); dx = conv^T(w, dy); dw = conv^T(x, dy), all in double (outputs zeroed here) */
void ref_conv(const cfg *c, int oh, int ow, const float *x, const float *w,
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

algos pick_algos(const conv_set *s)
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

double dot(const float *a, const float *b, size_t count)
{
    double s = 0.0;
    for (size_t i = 0; i < count; i++) s += (double)a[i] * b[i];
    return s;
}
