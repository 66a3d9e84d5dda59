/* test_ops_fd.c: Criterion suite "ops_fd": every CPU backward op against central finite
   differences of L = sum(y * r) (r random, sums in double) over small, awkward shapes. Gradient
   buffers are pre-filled with a constant to check that backward ops accumulate (+=). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../kernels/cpu/cpu_ops.h"
#include "util_check.h"

#define PREFILL 0.25f

static float *vec(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

static float *prefilled(size_t n)
{
    float *p = vec(n);
    for (size_t i = 0; i < n; i++) p[i] = PREFILL;
    return p;
}

/* analytic (accumulated on top of PREFILL) vs finite differences */
static void expect_grad(const char *what, const float *acc, const double *fd, size_t n,
                        double atol, double rtol, uint64_t seed)
{
    float *g = vec(n);
    for (size_t i = 0; i < n; i++) g[i] = acc[i] - PREFILL;
    size_t bad = sqt_check_close_d(what, g, fd, n, atol, rtol, seed);
    free(g);
    cr_expect_eq(bad, 0, "%s: %zu gradient entries differ from finite differences", what, bad);
}

/* ---------------- convolution ---------------- */
typedef struct conv_ctx {
    const sq_backend *be;
    sq_conv_shape cs;
    float *x, *w, *b, *y, *r;
    void *ws;
    size_t ny;
} conv_ctx;

static double conv_loss(void *p)
{
    conv_ctx *c = p;
    c->be->conv2d_fwd(&c->cs, c->x, c->w, c->b, c->y, c->ws);
    return sqt_dot(c->y, c->r, c->ny);
}

typedef struct conv_case {
    int n, c, h, w, k, r, s, stride, pad, groups, bias;
} conv_case;

static void check_conv_case(conv_case q, uint64_t seed)
{
    conv_ctx c = {.be = sq_backend_cpu()};
    cr_assert_eq(sq_conv_shape_init(&c.cs, q.n, q.c, q.h, q.w, q.k, q.r, q.s, q.stride, q.pad,
                                    q.groups), SQ_OK);
    const size_t nx = (size_t)q.n * q.c * q.h * q.w, nw = (size_t)q.k * (q.c / q.groups) * q.r * q.s;
    c.ny = (size_t)q.n * q.k * c.cs.oh * c.cs.ow;
    c.x = vec(nx); c.w = vec(nw); c.b = q.bias ? vec(q.k) : NULL; c.y = vec(c.ny); c.r = vec(c.ny);
    c.ws = c.be->alloc(c.be->conv_ws_bytes(&c.cs));
    sqt_fill_uniform(c.x, nx, -1, 1, seed);
    sqt_fill_uniform(c.w, nw, -1, 1, seed + 1);
    if (c.b) sqt_fill_uniform(c.b, q.k, -1, 1, seed + 2);
    sqt_fill_uniform(c.r, c.ny, -1, 1, seed + 3);
    float *gx = prefilled(nx), *gw = prefilled(nw), *gb = prefilled(q.k);
    c.be->conv2d_bwd(&c.cs, c.x, c.w, c.r, gx, gw, c.b ? gb : NULL, c.ws);
    double *fd = malloc(sizeof(double) * (nx > nw ? nx : nw));
    /* conv is linear in x, w and b: the central difference is exact up to float rounding of y
       (~1e-7 relative, summed over y and divided by 2 eps = 0.1) */
    const double atol = 1e-3, rtol = 1e-3, eps = 0.05;
    sqt_fd_grad(conv_loss, &c, c.x, nx, eps, fd);
    expect_grad("conv gx", gx, fd, nx, atol, rtol, seed);
    sqt_fd_grad(conv_loss, &c, c.w, nw, eps, fd);
    expect_grad("conv gw", gw, fd, nw, atol, rtol, seed);
    if (c.b) {
        sqt_fd_grad(conv_loss, &c, c.b, q.k, eps, fd);
        expect_grad("conv gb", gb, fd, q.k, atol, rtol, seed);
    }
    /* NULL gradients are skipped: only gw requested leaves gx untouched */
    float *gx2 = prefilled(nx), *gw2 = prefilled(nw);
    c.be->conv2d_bwd(&c.cs, c.x, c.w, c.r, NULL, gw2, NULL, c.ws);
    cr_expect_eq(sqt_check_equal("conv gw only", gw2, gw, nw), 0, "gw alone differs from gw with gx");
    c.be->conv2d_bwd(&c.cs, c.x, c.w, c.r, gx2, NULL, NULL, c.ws);
    cr_expect_eq(sqt_check_equal("conv gx only", gx2, gx, nx), 0, "gx alone differs from gx with gw");
    free(gx2); free(gw2);
    free(fd); free(gx); free(gw); free(gb);
    free(c.x); free(c.w); free(c.b); free(c.y); free(c.r);
    c.be->free(c.ws);
}

static const conv_case k_conv_cases[] = {
    {2, 3, 7, 5, 4, 3, 3, 1, 1, 1, 1},     /* dense 3x3, bias */
    {2, 4, 7, 7, 6, 3, 3, 2, 1, 1, 0},     /* stride 2, odd input, no bias */
    {2, 5, 5, 3, 7, 1, 1, 1, 0, 1, 1},     /* 1x1 pointwise */
    {1, 3, 5, 5, 4, 1, 1, 2, 0, 1, 0},     /* 1x1 stride 2 */
    {2, 4, 6, 5, 6, 3, 3, 1, 1, 2, 1},     /* groups = 2 */
    {2, 6, 4, 4, 6, 1, 1, 1, 0, 3, 0},     /* grouped 1x1 (ShuffleNet) */
    {2, 3, 6, 7, 3, 3, 3, 1, 1, 3, 1},     /* depthwise */
    {1, 4, 7, 6, 8, 3, 3, 2, 1, 4, 0},     /* depthwise, multiplier 2, stride 2 */
    {1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1},     /* all ones */
    {1, 2, 3, 3, 3, 5, 5, 2, 2, 1, 1},     /* kernel larger than input, padding 2 */
    {3, 5, 11, 13, 7, 3, 3, 1, 1, 1, 0},   /* primes */
    {2, 3, 6, 6, 2, 3, 2, 1, 0, 1, 1},     /* non-square kernel, no padding */
    {2, 2, 5, 6, 3, 1, 1, 1, 1, 1, 1},     /* 1x1 with padding */
    {1, 2, 11, 10, 3, 3, 3, 3, 1, 1, 1},   /* stride 3 */
    {1, 2, 9, 9, 2, 3, 3, 5, 1, 1, 0},     /* stride 5 (im2col path) */
    {2, 4, 7, 9, 5, 1, 3, 1, 1, 1, 1},     /* 1x3 with padding (kh != kw, issue 18) */
    {2, 3, 9, 6, 4, 7, 1, 2, 0, 1, 0},     /* 7x1 stride 2 */
    {2, 6, 8, 7, 6, 3, 1, 1, 1, 6, 1},     /* depthwise 3x1 */
    {1, 3, 7, 13, 5, 1, 7, 1, 0, 1, 1},    /* 1x7 */
};

/* both CPU conv paths: implicit GEMM (AVX2 CPUs) and im2col + GEMM */
Test(ops_fd, conv_bwd)
{
    for (int force = 0; force < 2; force++) {
        sq_cpu_conv_force_gemm(force);
        for (size_t i = 0; i < sizeof k_conv_cases / sizeof *k_conv_cases; i++)
            check_conv_case(k_conv_cases[i], 100 + 10 * i);
    }
    sq_cpu_conv_force_gemm(0);
}

/* ---------------- batch norm (training mode) ---------------- */
typedef struct bn_ctx {
    const sq_backend *be;
    int n, c, hw;
    float *x, *gamma, *beta, *y, *r, *sm, *si;
} bn_ctx;

static double bn_loss(void *p)
{
    bn_ctx *b = p;
    b->be->bn_fwd_train(b->n, b->c, b->hw, b->x, b->gamma, b->beta, NULL, NULL, 0.1f, 1e-5f,
                        b->y, b->sm, b->si);
    return sqt_dot(b->y, b->r, (size_t)b->n * b->c * b->hw);
}

static void check_bn(int n, int c, int hw, int affine, uint64_t seed)
{
    bn_ctx b = {.be = sq_backend_cpu(), .n = n, .c = c, .hw = hw};
    const size_t nx = (size_t)n * c * hw;
    b.x = vec(nx); b.y = vec(nx); b.r = vec(nx); b.sm = vec(c); b.si = vec(c);
    b.gamma = affine ? vec(c) : NULL;
    b.beta = affine ? vec(c) : NULL;
    sqt_fill_normal(b.x, nx, 0.5f, 2.0f, seed);
    sqt_fill_uniform(b.r, nx, -1, 1, seed + 1);
    if (affine) {
        sqt_fill_uniform(b.gamma, c, 0.5f, 1.5f, seed + 2);
        sqt_fill_uniform(b.beta, c, -1, 1, seed + 3);
    }
    float *sm = vec(c), *si = vec(c);
    b.be->bn_fwd_train(n, c, hw, b.x, b.gamma, b.beta, NULL, NULL, 0.1f, 1e-5f, b.y, sm, si);
    float *gx = prefilled(nx), *gg = prefilled(c), *gb = prefilled(c);
    b.be->bn_bwd(n, c, hw, b.x, b.r, b.gamma, sm, si, gx, affine ? gg : NULL, affine ? gb : NULL);
    double *fd = malloc(sizeof(double) * nx);
    /* nonlinear in x: eps 1e-2 keeps truncation (~eps^2) and rounding noise (~1e-6 / eps) small */
    const double atol = 2e-3, rtol = 2e-3, eps = 1e-2;
    sqt_fd_grad(bn_loss, &b, b.x, nx, eps, fd);
    expect_grad("bn gx", gx, fd, nx, atol, rtol, seed);
    if (affine) {
        sqt_fd_grad(bn_loss, &b, b.gamma, c, eps, fd);
        expect_grad("bn ggamma", gg, fd, c, atol, rtol, seed);
        sqt_fd_grad(bn_loss, &b, b.beta, c, eps, fd);
        expect_grad("bn gbeta", gb, fd, c, atol, rtol, seed);
    }
    free(fd); free(gx); free(gg); free(gb); free(sm); free(si);
    free(b.x); free(b.y); free(b.r); free(b.sm); free(b.si); free(b.gamma); free(b.beta);
}

Test(ops_fd, bn_bwd)
{
    check_bn(3, 2, 5, 1, 7);     /* BatchNorm2d-like */
    check_bn(4, 3, 1, 1, 17);    /* BatchNorm1d */
    check_bn(2, 3, 7, 0, 27);    /* no affine */
    check_bn(5, 4, 9, 1, 37);    /* prime plane count, odd plane */
}

/* ---------------- activations ---------------- */
typedef struct act_ctx {
    const sq_backend *be;
    sq_act_kind kind;
    size_t n;
    float *x, *y, *r;
} act_ctx;

static double act_loss(void *p)
{
    act_ctx *a = p;
    a->be->act_fwd(a->kind, a->n, a->x, a->y);
    return sqt_dot(a->y, a->r, a->n);
}

Test(ops_fd, act_bwd)
{
    for (int kind = 0; kind < 2; kind++) {
        act_ctx a = {.be = sq_backend_cpu(), .kind = (sq_act_kind)kind, .n = 101};
        a.x = vec(a.n); a.y = vec(a.n); a.r = vec(a.n);
        sqt_fill_uniform(a.x, a.n, -3, 9, 5 + kind);
        for (size_t i = 0; i < a.n; i++) /* keep FD steps away from the kinks at 0 and 6 */
            if (fabsf(a.x[i]) < 0.05f || fabsf(a.x[i] - 6.0f) < 0.05f) a.x[i] += 0.2f;
        sqt_fill_uniform(a.r, a.n, -1, 1, 6);
        float *gx = prefilled(a.n);
        a.be->act_bwd(a.kind, a.n, a.x, a.r, gx);
        double fd[101];
        sqt_fd_grad(act_loss, &a, a.x, a.n, 1e-2, fd);
        /* piecewise linear away from kinks: exact up to rounding */
        expect_grad(kind ? "relu6 gx" : "relu gx", gx, fd, a.n, 1e-4, 1e-4, 5 + kind);
        free(gx); free(a.x); free(a.y); free(a.r);
    }
}

/* ---------------- pooling ---------------- */
typedef struct pool_ctx {
    const sq_backend *be;
    sq_pool_kind kind;
    sq_pool_shape ps;
    float *x, *y, *r;
    int32_t *am;
    size_t ny;
} pool_ctx;

static double pool_loss(void *p)
{
    pool_ctx *q = p;
    q->be->pool_fwd(q->kind, &q->ps, q->x, q->y, q->am);
    return sqt_dot(q->y, q->r, q->ny);
}

/* g: n c h w kh kw sh sw pad_t pad_l pad_b pad_r ceil_mode count_include_pad */
static void check_pool_g(sq_pool_kind kind, const int *g, uint64_t seed)
{
    pool_ctx q = {.be = sq_backend_cpu(), .kind = kind};
    cr_assert_eq(sq_pool_shape_init(&q.ps, g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9],
                                    g[10], g[11], g[12], g[13]), SQ_OK, "%s", sq_last_error());
    const size_t nx = (size_t)g[0] * g[1] * g[2] * g[3];
    q.ny = (size_t)g[0] * g[1] * q.ps.oh * q.ps.ow;
    q.x = vec(nx); q.y = vec(q.ny); q.r = vec(q.ny);
    q.am = calloc(q.ny, sizeof(int32_t));
    /* distinct values 0.1 apart: the FD step (1e-2) never changes which element is the max */
    for (size_t i = 0; i < nx; i++) q.x[i] = 0.1f * (float)((i * 37) % nx) - 3.0f;
    sqt_fill_uniform(q.r, q.ny, -1, 1, seed);
    q.be->pool_fwd(kind, &q.ps, q.x, q.y, q.am);
    float *gx = prefilled(nx);
    q.be->pool_bwd(kind, &q.ps, q.r, q.am, gx);
    double *fd = malloc(sizeof(double) * nx);
    sqt_fd_grad(pool_loss, &q, q.x, nx, 1e-2, fd);
    /* piecewise linear: exact up to rounding */
    expect_grad(kind == SQ_POOL_MAX ? "maxpool gx" : "avgpool gx", gx, fd, nx, 1e-4, 1e-3, seed);
    free(fd); free(gx); free(q.x); free(q.y); free(q.r); free(q.am);
}

static void check_pool(sq_pool_kind kind, int n, int c, int h, int w, int k, int stride, int pad,
                       uint64_t seed)
{
    const int g[14] = {n, c, h, w, k, k, stride, stride, pad, pad, pad, pad, 0, 1};
    check_pool_g(kind, g, seed);
}

Test(ops_fd, pool_bwd)
{
    for (int kind = 0; kind < 2; kind++) {
        check_pool((sq_pool_kind)kind, 2, 3, 7, 7, 3, 2, 1, 41);
        check_pool((sq_pool_kind)kind, 1, 2, 6, 5, 2, 2, 0, 42);
        check_pool((sq_pool_kind)kind, 2, 1, 5, 4, 3, 1, 1, 43);
        check_pool((sq_pool_kind)kind, 1, 1, 1, 1, 1, 1, 0, 44);
    }
}

/* general windows (issue 18): non-square kernels and strides, asymmetric pads, ceil_mode (with a
   dropped last window and a window running past the trailing pad), count_include_pad 0 */
Test(ops_fd, pool_general_bwd)
{
    static const int g[][14] = {
        {2, 2, 7, 6, 3, 2, 2, 1, 1, 0, 0, 1, 0, 1},
        {1, 3, 6, 7, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
        {1, 2, 5, 5, 3, 3, 2, 2, 0, 0, 0, 0, 1, 0},
        {2, 1, 7, 5, 2, 3, 3, 2, 1, 2, 0, 1, 1, 0},
        {1, 2, 4, 9, 1, 4, 1, 3, 0, 2, 0, 1, 0, 0},
        {1, 1, 6, 6, 3, 3, 3, 3, 2, 2, 2, 2, 1, 1},
        {1, 1, 6, 6, 3, 3, 2, 2, 0, 0, 0, 0, 1, 1}, /* the last window overhangs the input */
        {2, 1, 5, 5, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1}, /* a window starting in the trailing pad: dropped */
    };
    for (int kind = 0; kind < 2; kind++)
        for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) check_pool_g((sq_pool_kind)kind, g[i], 60 + i);
}

/* ---------------- pad, clip, affine, slice (issue 18) ---------------- */
typedef struct misc_ctx {
    const sq_backend *be;
    int op;                 /* 0 pad, 1 clip, 2 affine, 3 slice */
    int n, c, h, w, p[4];   /* pad: t l b r; slice: c0, k */
    float lo, hi, value, *a, *b;
    float *x, *y, *r;
    size_t nx, ny;
} misc_ctx;

static void misc_fwd(misc_ctx *q)
{
    const int hw = q->h * q->w;
    switch (q->op) {
    case 0: q->be->pad_fwd(q->n, q->c, q->h, q->w, q->p[0], q->p[1], q->p[2], q->p[3], q->value, q->x, q->y); break;
    case 1: q->be->clip_fwd(q->nx, q->lo, q->hi, q->x, q->y); break;
    case 2: q->be->affine_fwd(q->n, q->c, hw, q->a, q->b, q->x, q->y); break;
    default: q->be->slice_fwd(q->n, q->c, hw, q->p[0], q->p[1], q->x, q->y); break;
    }
}

static double misc_loss(void *p)
{
    misc_ctx *q = p;
    misc_fwd(q);
    return sqt_dot(q->y, q->r, q->ny);
}

static void check_misc(misc_ctx q, uint64_t seed)
{
    static const char *names[] = {"pad gx", "clip gx", "affine gx", "slice gx"};
    q.be = sq_backend_cpu();
    q.nx = (size_t)q.n * q.c * q.h * q.w;
    q.ny = q.op == 0   ? (size_t)q.n * q.c * (q.p[0] + q.h + q.p[2]) * (q.p[1] + q.w + q.p[3])
           : q.op == 3 ? (size_t)q.n * q.p[1] * q.h * q.w
                       : q.nx;
    q.x = vec(q.nx); q.y = vec(q.ny); q.r = vec(q.ny);
    q.a = vec((size_t)q.c); q.b = vec((size_t)q.c);
    sqt_fill_uniform(q.x, q.nx, -2, 2, seed);
    /* clip: no input within the FD step of a bound (the kink) */
    for (size_t i = 0; q.op == 1 && i < q.nx; i++)
        if (fabsf(q.x[i] - q.lo) < 0.05f || fabsf(q.x[i] - q.hi) < 0.05f) q.x[i] += 0.1f;
    sqt_fill_uniform(q.r, q.ny, -1, 1, seed + 1);
    sqt_fill_uniform(q.a, (size_t)q.c, -2, 2, seed + 2);
    sqt_fill_uniform(q.b, (size_t)q.c, -1, 1, seed + 3);
    misc_fwd(&q);
    float *gx = prefilled(q.nx);
    const int hw = q.h * q.w;
    switch (q.op) {
    case 0: q.be->pad_bwd(q.n, q.c, q.h, q.w, q.p[0], q.p[1], q.p[2], q.p[3], q.r, gx); break;
    case 1: q.be->clip_bwd(q.nx, q.lo, q.hi, q.x, q.r, gx); break;
    case 2: q.be->affine_bwd(q.n, q.c, hw, q.a, q.r, gx); break;
    default: q.be->slice_bwd(q.n, q.c, hw, q.p[0], q.p[1], q.r, gx); break;
    }
    double *fd = malloc(sizeof(double) * q.nx);
    sqt_fd_grad(misc_loss, &q, q.x, q.nx, 1e-2, fd);
    expect_grad(names[q.op], gx, fd, q.nx, 1e-4, 1e-3, seed);
    free(fd); free(gx); free(q.x); free(q.y); free(q.r); free(q.a); free(q.b);
}

Test(ops_fd, pad_clip_affine_slice_bwd)
{
    check_misc((misc_ctx){.op = 0, .n = 2, .c = 3, .h = 4, .w = 5, .p = {1, 0, 2, 3}, .value = 0.5f}, 70);
    check_misc((misc_ctx){.op = 0, .n = 1, .c = 1, .h = 1, .w = 1, .p = {0, 0, 0, 0}}, 71);
    check_misc((misc_ctx){.op = 1, .n = 2, .c = 3, .h = 4, .w = 5, .lo = -0.5f, .hi = 1.0f}, 72);
    check_misc((misc_ctx){.op = 1, .n = 2, .c = 3, .h = 1, .w = 7, .lo = -INFINITY, .hi = 0.25f}, 73);
    check_misc((misc_ctx){.op = 2, .n = 2, .c = 3, .h = 4, .w = 5}, 74);
    check_misc((misc_ctx){.op = 2, .n = 3, .c = 7, .h = 1, .w = 1}, 75); /* a 2-D input */
    check_misc((misc_ctx){.op = 3, .n = 2, .c = 6, .h = 3, .w = 2, .p = {2, 3}}, 76);
    check_misc((misc_ctx){.op = 3, .n = 1, .c = 4, .h = 1, .w = 1, .p = {0, 4}}, 77);
}

/* the forward values, and the gradient at the clip's bounds (PyTorch: it passes there) */
Test(ops, pad_clip_affine_slice_values)
{
    const sq_backend *be = sq_backend_cpu();
    const float x[6] = {1, 2, 3, 4, 5, 6}; /* (1, 1, 2, 3) */
    float y[20], g[6] = {0};
    be->pad_fwd(1, 1, 2, 3, 1, 0, 1, 1, -INFINITY, x, y); /* (4, 4) */
    const float ny = -INFINITY;
    const float want[16] = {ny, ny, ny, ny, 1, 2, 3, ny, 4, 5, 6, ny, ny, ny, ny, ny};
    for (int i = 0; i < 16; i++) cr_expect_eq(y[i], want[i], "pad y[%d] = %g", i, y[i]);
    float gy[16];
    for (int i = 0; i < 16; i++) gy[i] = (float)i;
    be->pad_bwd(1, 1, 2, 3, 1, 0, 1, 1, gy, g);
    const float gw[6] = {4, 5, 6, 8, 9, 10};
    for (int i = 0; i < 6; i++) cr_expect_eq(g[i], gw[i], "pad gx[%d] = %g", i, g[i]);
    const float xc[5] = {-2, -1, 0.5f, 2, NAN};
    be->clip_fwd(5, -1, 2, xc, y);
    cr_expect(y[0] == -1 && y[1] == -1 && y[2] == 0.5f && y[3] == 2 && isnan(y[4]), "clip values");
    const float ones[5] = {1, 1, 1, 1, 1};
    float gc[5] = {0};
    be->clip_bwd(5, -1, 2, xc, ones, gc);
    cr_expect(gc[0] == 0 && gc[1] == 1 && gc[2] == 1 && gc[3] == 1 && gc[4] == 0, "clip gradient %g %g %g %g %g",
              gc[0], gc[1], gc[2], gc[3], gc[4]);
    const float a[2] = {2, -0.5f}, b[2] = {1, 3};
    be->affine_fwd(1, 2, 3, a, b, x, y);
    const float wa[6] = {3, 5, 7, 1, 0.5f, 0};
    for (int i = 0; i < 6; i++) cr_expect_eq(y[i], wa[i], "affine y[%d] = %g", i, y[i]);
    be->slice_fwd(2, 3, 1, 1, 2, x, y);
    cr_expect(y[0] == 2 && y[1] == 3 && y[2] == 5 && y[3] == 6, "slice y");
}

/* ---------------- global average pooling ---------------- */
typedef struct gap_ctx {
    const sq_backend *be;
    int n, c, hw;
    float *x, *y, *r;
} gap_ctx;

static double gap_loss(void *p)
{
    gap_ctx *g = p;
    g->be->gap_fwd(g->n, g->c, g->hw, g->x, g->y);
    return sqt_dot(g->y, g->r, (size_t)g->n * g->c);
}

Test(ops_fd, gap_bwd)
{
    gap_ctx g = {.be = sq_backend_cpu(), .n = 3, .c = 5, .hw = 7};
    const size_t nx = 3 * 5 * 7;
    g.x = vec(nx); g.y = vec(15); g.r = vec(15);
    sqt_fill_uniform(g.x, nx, -1, 1, 51);
    sqt_fill_uniform(g.r, 15, -1, 1, 52);
    float *gx = prefilled(nx);
    g.be->gap_bwd(g.n, g.c, g.hw, g.r, gx);
    double fd[105];
    sqt_fd_grad(gap_loss, &g, g.x, nx, 0.05, fd);
    expect_grad("gap gx", gx, fd, nx, 1e-4, 1e-3, 51); /* linear: rounding only */
    free(gx); free(g.x); free(g.y); free(g.r);
}

/* ---------------- linear ---------------- */
typedef struct lin_ctx {
    const sq_backend *be;
    int n, in, out;
    float *x, *w, *b, *y, *r;
} lin_ctx;

static double lin_loss(void *p)
{
    lin_ctx *l = p;
    l->be->linear_fwd(l->n, l->in, l->out, l->x, l->w, l->b, l->y);
    return sqt_dot(l->y, l->r, (size_t)l->n * l->out);
}

static void check_linear(int n, int in, int out, int bias, uint64_t seed)
{
    lin_ctx l = {.be = sq_backend_cpu(), .n = n, .in = in, .out = out};
    const size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out;
    l.x = vec(nx); l.w = vec(nw); l.b = bias ? vec(out) : NULL; l.y = vec(ny); l.r = vec(ny);
    sqt_fill_uniform(l.x, nx, -1, 1, seed);
    sqt_fill_uniform(l.w, nw, -1, 1, seed + 1);
    if (bias) sqt_fill_uniform(l.b, out, -1, 1, seed + 2);
    sqt_fill_uniform(l.r, ny, -1, 1, seed + 3);
    float *gx = prefilled(nx), *gw = prefilled(nw), *gb = prefilled(out);
    l.be->linear_bwd(n, in, out, l.x, l.w, l.r, gx, gw, bias ? gb : NULL);
    double *fd = malloc(sizeof(double) * (nx > nw ? nx : nw));
    const double atol = 1e-3, rtol = 1e-3, eps = 0.05; /* linear: rounding only */
    sqt_fd_grad(lin_loss, &l, l.x, nx, eps, fd);
    expect_grad("linear gx", gx, fd, nx, atol, rtol, seed);
    sqt_fd_grad(lin_loss, &l, l.w, nw, eps, fd);
    expect_grad("linear gw", gw, fd, nw, atol, rtol, seed);
    if (bias) {
        sqt_fd_grad(lin_loss, &l, l.b, out, eps, fd);
        expect_grad("linear gb", gb, fd, out, atol, rtol, seed);
    }
    free(fd); free(gx); free(gw); free(gb);
    free(l.x); free(l.w); free(l.b); free(l.y); free(l.r);
}

Test(ops_fd, linear_bwd)
{
    check_linear(3, 7, 5, 1, 61);
    check_linear(1, 1, 1, 0, 62);
    check_linear(5, 13, 2, 1, 63);
}

/* ---------------- option-A shortcut ---------------- */
typedef struct sc_ctx {
    const sq_backend *be;
    int n, c, h, w, k;
    float *x, *y, *r;
    size_t ny;
} sc_ctx;

static double sc_loss(void *p)
{
    sc_ctx *s = p;
    s->be->shortcut_a_fwd(s->n, s->c, s->h, s->w, s->k, s->x, s->y);
    return sqt_dot(s->y, s->r, s->ny);
}

Test(ops_fd, shortcut_a_bwd)
{
    sc_ctx s = {.be = sq_backend_cpu(), .n = 2, .c = 3, .h = 5, .w = 4, .k = 7};
    const size_t nx = 2 * 3 * 5 * 4;
    s.ny = 2 * 7 * 3 * 2;
    s.x = vec(nx); s.y = vec(s.ny); s.r = vec(s.ny);
    sqt_fill_uniform(s.x, nx, -1, 1, 71);
    sqt_fill_uniform(s.r, s.ny, -1, 1, 72);
    float *gx = prefilled(nx);
    s.be->shortcut_a_bwd(s.n, s.c, s.h, s.w, s.k, s.r, gx);
    double fd[120];
    sqt_fd_grad(sc_loss, &s, s.x, nx, 0.05, fd);
    expect_grad("shortcut gx", gx, fd, nx, 1e-5, 1e-5, 71); /* data movement: exact */
    free(gx); free(s.x); free(s.y); free(s.r);
}

/* ---------------- losses ---------------- */
typedef struct loss_ctx {
    const sq_backend *be;
    int n, k, kl;
    float T, alpha;
    float *z, *zt;
    int32_t *lab;
} loss_ctx;

static double loss_value(void *p)
{
    loss_ctx *l = p;
    float loss = 0.0f;
    if (l->kl)
        l->be->kl_fwd_bwd(l->n, l->k, l->zt, l->z, l->T, l->alpha, &loss, NULL);
    else
        l->be->softmax_ce(l->n, l->k, l->z, l->lab, 1.0f, &loss, NULL);
    return loss;
}

Test(ops_fd, softmax_ce_grad)
{
    loss_ctx l = {.be = sq_backend_cpu(), .n = 4, .k = 7};
    float z[28], g[28];
    int32_t lab[4] = {0, 6, 3, 3};
    l.z = z; l.lab = lab;
    sqt_fill_normal(z, 28, 0, 2, 81);
    float loss;
    l.be->softmax_ce(4, 7, z, lab, 1.0f, &loss, g);
    double fd[28];
    /* loss is a float: rounding ~1e-7 / (2 eps = 2e-2) plus eps^2 truncation */
    sqt_fd_grad(loss_value, &l, z, 28, 1e-2, fd);
    cr_expect_eq(sqt_check_close_d("ce glogits", g, fd, 28, 1e-4, 1e-3, 81), 0,
                 "softmax_ce gradient differs from finite differences");
    float g2[28];
    l.be->softmax_ce(4, 7, z, lab, 2.5f, &loss, g2);
    for (int i = 0; i < 28; i++) cr_expect_float_eq(g2[i], 2.5f * g[i], 1e-6f, "scale at %d", i);
}

Test(ops_fd, kl_grad)
{
    loss_ctx l = {.be = sq_backend_cpu(), .n = 3, .k = 5, .kl = 1, .T = 4.0f, .alpha = 1.5f};
    float zs[15], zt[15], g[15];
    l.z = zs; l.zt = zt;
    sqt_fill_normal(zs, 15, 0, 3, 91);
    sqt_fill_normal(zt, 15, 0, 3, 92);
    zt[7] = -4000.0f; /* a teacher probability that underflows to 0 */
    float loss;
    l.be->kl_fwd_bwd(3, 5, zt, zs, 4.0f, 1.5f, &loss, g);
    double fd[15];
    sqt_fd_grad(loss_value, &l, zs, 15, 1e-2, fd);
    cr_expect_eq(sqt_check_close_d("kl gzs", g, fd, 15, 1e-4, 1e-3, 91), 0,
                 "KL gradient differs from finite differences");
}
