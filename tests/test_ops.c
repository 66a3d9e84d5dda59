/* test_ops.c: Criterion suite "ops": CPU op values that finite differences cannot check: the
   fast conv paths (im2col+GEMM, 1x1, grouped, depthwise) against a plain loop, conv backward
   against double loops and its determinism, BatchNorm running statistics, pooling argmax and
   padding, exact data movement (shortcut, concat, shuffle), dropout statistics, the loss test
   vectors, and two hand-computed optimizer steps. Backward-vs-finite-difference checks are in
   test_ops_fd.c (suite "ops_fd"). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../kernels/cpu/cpu_ops.h"
#include "util_check.h"

static float *vec(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

typedef struct conv_case {
    int n, c, h, w, k, r, s, stride, pad, groups, bias;
} conv_case;

static const conv_case k_cases[] = {
    {2, 3, 7, 5, 4, 3, 3, 1, 1, 1, 1},      {2, 4, 7, 7, 6, 3, 3, 2, 1, 1, 0},
    {2, 5, 5, 3, 7, 1, 1, 1, 0, 1, 1},      {1, 3, 5, 5, 4, 1, 1, 2, 0, 1, 0},
    {2, 4, 6, 5, 6, 3, 3, 1, 1, 2, 1},      {2, 3, 6, 7, 3, 3, 3, 1, 1, 3, 1},
    {1, 4, 7, 6, 8, 3, 3, 2, 1, 4, 0},      {1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1},
    {1, 2, 3, 3, 3, 5, 5, 2, 2, 1, 1},      {3, 5, 11, 13, 7, 3, 3, 1, 1, 1, 0},
    {3, 16, 16, 16, 32, 3, 3, 2, 1, 1, 0},  /* ResNet-20 stage transition */
    {5, 16, 12, 12, 16, 3, 3, 1, 1, 1, 1},  /* more images than threads */
    {4, 8, 9, 9, 8, 3, 3, 1, 1, 8, 1},      /* depthwise */
    {3, 24, 6, 6, 12, 1, 1, 1, 0, 3, 1},    /* grouped 1x1 */
    {2, 3, 32, 32, 16, 3, 3, 1, 1, 1, 0},   /* ResNet stem */
    {2, 4, 5, 6, 3, 1, 1, 1, 1, 1, 1},      /* 1x1 with padding (pad > r - 1) */
    {2, 3, 11, 10, 5, 3, 3, 3, 1, 1, 1},    /* stride 3 */
    {1, 2, 13, 12, 3, 5, 5, 4, 2, 1, 0},    /* stride 4, 5x5 */
    {1, 2, 12, 11, 3, 3, 3, 5, 1, 1, 1},    /* stride 5: im2col path everywhere */
    {2, 5, 9, 9, 4, 3, 3, 2, 0, 1, 1},      /* stride 2 without padding */
    {3, 20, 10, 10, 40, 3, 3, 1, 1, 1, 0},  /* output channels not a multiple of 16 */
    {5, 64, 8, 8, 64, 3, 3, 1, 1, 1, 1},    /* weight gradient over blocks of images (conv_bgemm.c): 4 + 1 */
    {7, 8, 7, 7, 16, 3, 3, 1, 1, 1, 0},     /* rows narrower than 8: every pass over blocks, 5 + 2 images */
    {2, 32, 8, 8, 64, 3, 3, 2, 1, 1, 1},    /* the same at stride 2 (4x4 out) */
};
#define NCASES (sizeof k_cases / sizeof *k_cases)

typedef struct conv_data {
    sq_conv_shape cs;
    size_t nx, nw, ny;
    float *x, *w, *b, *y;
    void *ws;
} conv_data;

static conv_data conv_make(conv_case q, uint64_t seed)
{
    const sq_backend *be = sq_backend_cpu();
    conv_data d;
    cr_assert_eq(sq_conv_shape_init(&d.cs, q.n, q.c, q.h, q.w, q.k, q.r, q.s, q.stride, q.pad,
                                    q.groups), SQ_OK);
    d.nx = (size_t)q.n * q.c * q.h * q.w;
    d.nw = (size_t)q.k * (q.c / q.groups) * q.r * q.s;
    d.ny = (size_t)q.n * q.k * d.cs.oh * d.cs.ow;
    d.x = vec(d.nx); d.w = vec(d.nw); d.b = q.bias ? vec(q.k) : NULL; d.y = vec(d.ny);
    sqt_fill_uniform(d.x, d.nx, -1, 1, seed);
    sqt_fill_uniform(d.w, d.nw, -1, 1, seed + 1);
    if (d.b) sqt_fill_uniform(d.b, q.k, -1, 1, seed + 2);
    d.ws = be->alloc(be->conv_ws_bytes(&d.cs));
    return d;
}

static void conv_free(conv_data *d)
{
    free(d->x); free(d->w); free(d->b); free(d->y);
    sq_backend_cpu()->free(d->ws);
}

/* each conv test runs on every CPU path: Winograd where it applies (wide 3x3 stride-1 layers),
   the implicit GEMM (AVX2 CPUs) and im2col + GEMM */
static void conv_paths(void (*check)(void))
{
    sq_cpu_conv_force_gemm(0);
    check();
    sq_cpu_conv_wino(0);
    check();
    sq_cpu_conv_wino(1);
    sq_cpu_conv_force_gemm(1);
    check();
    sq_cpu_conv_force_gemm(0);
}

static void check_conv_fwd(void)
{
    const sq_backend *be = sq_backend_cpu();
    for (size_t i = 0; i < NCASES; i++) {
        conv_data d = conv_make(k_cases[i], 500 + i);
        float *ref = vec(d.ny);
        sq_cpu_conv2d_fwd_ref(&d.cs, d.x, d.w, d.b, ref);
        for (size_t j = 0; j < d.ny; j++) d.y[j] = NAN; /* forward must overwrite */
        be->conv2d_fwd(&d.cs, d.x, d.w, d.b, d.y, d.ws);
        /* float sums of up to 400 products of O(1) values vs a double loop */
        size_t bad = sqt_check_close("conv y", d.y, ref, d.ny, 2e-4, 1e-4, 500 + i);
        cr_expect_eq(bad, 0, "case %zu: %zu outputs differ from the plain loop", i, bad);
        free(ref);
        conv_free(&d);
    }
}

Test(ops, conv_fwd_matches_loops) { conv_paths(check_conv_fwd); }

/* gx, gw, gb of sum(y * gy) by double loops */
static void conv_bwd_loops(const sq_conv_shape *cs, const float *x, const float *w,
                           const float *gy, double *gx, double *gw, double *gb)
{
    const int cg = cs->c / cs->groups, kg = cs->k / cs->groups;
    for (int i = 0; i < cs->n; i++)
        for (int o = 0; o < cs->k; o++)
            for (int oy = 0; oy < cs->oh; oy++)
                for (int ox = 0; ox < cs->ow; ox++) {
                    double g = gy[(((size_t)i * cs->k + o) * cs->oh + oy) * cs->ow + ox];
                    gb[o] += g;
                    for (int c = 0; c < cg; c++)
                        for (int r = 0; r < cs->r; r++)
                            for (int s = 0; s < cs->s; s++) {
                                int ih = oy * cs->stride - cs->pad + r, iw = ox * cs->stride - cs->pad + s;
                                if (ih < 0 || ih >= cs->h || iw < 0 || iw >= cs->w) continue;
                                size_t xi = (((size_t)i * cs->c + o / kg * cg + c) * cs->h + ih) * cs->w + iw;
                                size_t wi = (((size_t)o * cg + c) * cs->r + r) * cs->s + s;
                                gx[xi] += g * w[wi];
                                gw[wi] += g * x[xi];
                            }
                }
}

static void check_conv_bwd(void)
{
    const sq_backend *be = sq_backend_cpu();
    for (size_t i = 10; i < NCASES; i++) {
        conv_data d = conv_make(k_cases[i], 700 + i);
        float *gy = vec(d.ny), *gx = vec(d.nx), *gw = vec(d.nw), *gb = vec(d.cs.k);
        sqt_fill_uniform(gy, d.ny, -1, 1, 800 + i);
        double *rx = calloc(d.nx, sizeof(double)), *rw = calloc(d.nw, sizeof(double)),
               *rb = calloc(d.cs.k, sizeof(double));
        conv_bwd_loops(&d.cs, d.x, d.w, gy, rx, rw, rb);
        be->conv2d_bwd(&d.cs, d.x, d.w, gy, gx, gw, gb, d.ws);
        /* gw sums n*oh*ow (up to 5*144) products in float: allow 1e-3 absolute */
        cr_expect_eq(sqt_check_close_d("conv gx", gx, rx, d.nx, 2e-4, 1e-4, 700 + i), 0, "case %zu gx", i);
        cr_expect_eq(sqt_check_close_d("conv gw", gw, rw, d.nw, 1e-3, 1e-4, 700 + i), 0, "case %zu gw", i);
        cr_expect_eq(sqt_check_close_d("conv gb", gb, rb, d.cs.k, 1e-3, 1e-4, 700 + i), 0, "case %zu gb", i);
        free(gy); free(gx); free(gw); free(gb); free(rx); free(rw); free(rb);
        conv_free(&d);
    }
}

Test(ops, conv_bwd_matches_loops) { conv_paths(check_conv_bwd); }

static void check_conv_deterministic(void)
{
    const sq_backend *be = sq_backend_cpu();
    const conv_case cases[] = {{7, 16, 10, 10, 16, 3, 3, 1, 1, 1, 1}, {6, 8, 9, 9, 8, 3, 3, 2, 1, 8, 1},
                               {37, 64, 4, 4, 64, 3, 3, 1, 1, 1, 1}};
    for (int ci = 0; ci < 3; ci++) {
        conv_data d = conv_make(cases[ci], 900);
        float *gy = vec(d.ny);
        sqt_fill_normal(gy, d.ny, 0, 1, 901);
        float *gw[2], *gx[2], *gb[2];
        for (int rep = 0; rep < 2; rep++) {
            gw[rep] = vec(d.nw); gx[rep] = vec(d.nx); gb[rep] = vec(d.cs.k);
            be->conv2d_bwd(&d.cs, d.x, d.w, gy, gx[rep], gw[rep], gb[rep], d.ws);
        }
        cr_expect_eq(sqt_check_equal("gw run 2", gw[1], gw[0], d.nw), 0, "conv gw not bit-identical");
        cr_expect_eq(sqt_check_equal("gx run 2", gx[1], gx[0], d.nx), 0, "conv gx not bit-identical");
        cr_expect_eq(sqt_check_equal("gb run 2", gb[1], gb[0], d.cs.k), 0, "conv gb not bit-identical");
        for (int rep = 0; rep < 2; rep++) { free(gw[rep]); free(gx[rep]); free(gb[rep]); }
        free(gy);
        conv_free(&d);
    }
}

Test(ops, conv_bwd_deterministic) { conv_paths(check_conv_deterministic); }

/* the forward over blocks of images (conv_bgemm.c, rows narrower than 8) runs the implicit
   GEMM's own FMA chain on unfolded columns: y bit for bit the per-image implicit GEMM's, which
   the PyTorch twin (tools/torch_quant.py conv2d_igemm) emulates */
Test(ops, conv_fwd_over_blocks_of_images_equals_the_implicit_gemm_bit_for_bit)
{
    if (!sq_cpu_fast_available()) cr_skip_test("no AVX2/FMA: neither path runs on this CPU");
    const conv_case cases[] = {{37, 64, 4, 4, 64, 3, 3, 1, 1, 1, 1}, {7, 8, 7, 7, 16, 3, 3, 1, 1, 1, 0},
                               {5, 32, 8, 8, 24, 3, 3, 2, 1, 1, 1}, {3, 5, 6, 5, 7, 3, 3, 1, 1, 1, 1}};
    const sq_backend *be = sq_backend_cpu();
    sq_cpu_conv_wino(0); /* the implicit GEMM's bits, wherever Winograd would apply */
    for (int ci = 0; ci < 4; ci++) {
        conv_data d = conv_make(cases[ci], 950 + ci);
        cr_assert(sq_cpu_bgemm_applies(&d.cs, SQ_BG_FWD), "case %d should take the blocks", ci);
        float *ref = vec(d.ny);
        be->conv2d_fwd(&d.cs, d.x, d.w, d.b, d.y, d.ws);
        sq_cpu_igemm_fwd(&d.cs, d.x, d.w, d.b, ref, d.ws, 1);
        cr_expect_eq(sqt_check_equal("y over blocks", d.y, ref, d.ny), 0, "case %d: not the implicit GEMM's bits", ci);
        free(ref);
        conv_free(&d);
    }
    sq_cpu_conv_wino(1);
}

/* The forward of a Winograd path against a double loop on each case (which must take that path):
   per output within 8 float epsilons of the sum of |products| (the transforms add up to 9 terms
   of that size; a wrong tap or transform gives errors of the size of the outputs), the same bits
   for 1 and 2 threads, y overwritten. Returns the worst error relative to that sum. */
static double check_wino_fwd(const conv_case *cases, int ncases, unsigned seed0,
                             int (*applies)(const sq_conv_shape *), const char *path)
{
    const sq_backend *be = sq_backend_cpu();
    double worst = 0.0;
    for (int ci = 0; ci < ncases; ci++) {
        conv_data d = conv_make(cases[ci], seed0 + ci);
        cr_assert(applies(&d.cs), "case %d should take the %s", ci, path);
        const sq_conv_shape *cs = &d.cs;
        for (size_t j = 0; j < d.ny; j++) d.y[j] = NAN;
        be->set_threads(2);
        be->conv2d_fwd(cs, d.x, d.w, d.b, d.y, d.ws);
        size_t bad = 0;
        for (int i = 0; i < cs->n; i++)
            for (int k = 0; k < cs->k; k++)
                for (int oy = 0; oy < cs->oh; oy++)
                    for (int ox = 0; ox < cs->ow; ox++) {
                        double ref = d.b ? d.b[k] : 0.0, mag = fabs(ref);
                        for (int c = 0; c < cs->c; c++)
                            for (int r = 0; r < 3; r++)
                                for (int s2 = 0; s2 < 3; s2++) {
                                    const int ih = oy - 1 + r, iw = ox - 1 + s2;
                                    if (ih < 0 || ih >= cs->h || iw < 0 || iw >= cs->w) continue;
                                    const double p = (double)d.w[((size_t)(k * cs->c + c) * 3 + r) * 3 + s2] *
                                                     d.x[(((size_t)i * cs->c + c) * cs->h + ih) * cs->w + iw];
                                    ref += p;
                                    mag += fabs(p);
                                }
                        const float got = d.y[(((size_t)i * cs->k + k) * cs->oh + oy) * cs->ow + ox];
                        const double err = fabs(got - ref), rel = err / mag;
                        if (rel > worst) worst = rel;
                        if (!(err <= 8 * 1.1920929e-7 * mag) && bad++ < 5)
                            cr_log_error("%s case %d y[%d][%d][%d][%d]: got %.9g want %.9g (sum |p| %g)", path, ci, i,
                                         k, oy, ox, got, ref, mag);
                    }
        cr_expect_eq(bad, 0, "%s case %d: %zu outputs outside 8 eps of the sum of |products|", path, ci, bad);
        float *y1 = malloc(d.ny * sizeof *y1);
        be->set_threads(1);
        be->conv2d_fwd(cs, d.x, d.w, d.b, y1, d.ws);
        be->set_threads(2);
        cr_expect_eq(sqt_check_equal("y on 1 thread", y1, d.y, d.ny), 0, "%s case %d: depends on the thread count",
                     path, ci);
        free(y1);
        conv_free(&d);
    }
    return worst;
}

/* The backward of a Winograd path against double loops on each case: gx and gw accumulate into
   what the buffers held, within 8 float epsilons of the sum of |products| per element, the same
   bits for 1 and 2 threads. Returns the worst relative error. */
static double check_wino_bwd(const conv_case *cases, int ncases, unsigned seed0,
                             int (*applies)(const sq_conv_shape *), const char *path)
{
    const sq_backend *be = sq_backend_cpu();
    double worst = 0.0;
    for (int ci = 0; ci < ncases; ci++) {
        conv_data d = conv_make(cases[ci], seed0 + ci);
        const sq_conv_shape *cs = &d.cs;
        cr_assert(applies(cs), "case %d should take the %s", ci, path);
        float *gy = vec(d.ny);
        sqt_fill_uniform(gy, d.ny, -1, 1, seed0 + 5 + ci);
        double *rx = calloc(d.nx, sizeof *rx), *mx = calloc(d.nx, sizeof *mx);
        double *rw = calloc(d.nw, sizeof *rw), *mw = calloc(d.nw, sizeof *mw);
        for (int i = 0; i < cs->n; i++)
            for (int k = 0; k < cs->k; k++)
                for (int oy = 0; oy < cs->oh; oy++)
                    for (int ox = 0; ox < cs->ow; ox++) {
                        const double g = gy[(((size_t)i * cs->k + k) * cs->oh + oy) * cs->ow + ox];
                        for (int c = 0; c < cs->c; c++)
                            for (int r = 0; r < 3; r++)
                                for (int s2 = 0; s2 < 3; s2++) {
                                    const int ih = oy - 1 + r, iw = ox - 1 + s2;
                                    if (ih < 0 || ih >= cs->h || iw < 0 || iw >= cs->w) continue;
                                    const size_t xi = (((size_t)i * cs->c + c) * cs->h + ih) * cs->w + iw;
                                    const size_t wi = ((size_t)(k * cs->c + c) * 3 + r) * 3 + s2;
                                    rx[xi] += g * d.w[wi];
                                    mx[xi] += fabs(g * d.w[wi]);
                                    rw[wi] += g * d.x[xi];
                                    mw[wi] += fabs(g * d.x[xi]);
                                }
                    }
        float *gx[2], *gw[2];
        for (int t = 0; t < 2; t++) {
            gx[t] = vec(d.nx);
            gw[t] = vec(d.nw);
            for (size_t j = 0; j < d.nx; j++) gx[t][j] = 0.5f; /* both accumulate */
            for (size_t j = 0; j < d.nw; j++) gw[t][j] = -0.25f;
            be->set_threads(2 - t);
            be->conv2d_bwd(cs, d.x, d.w, gy, gx[t], gw[t], NULL, d.ws);
        }
        be->set_threads(2);
        size_t bad = 0;
        for (size_t j = 0; j < d.nx; j++) {
            const double e = fabs(gx[0][j] - (0.5 + rx[j])), bound = 8 * 1.1920929e-7 * (mx[j] + 0.5);
            if (e / (mx[j] + 0.5) > worst) worst = e / (mx[j] + 0.5);
            if (!(e <= bound) && bad++ < 5)
                cr_log_error("%s case %d gx[%zu]: got %.9g want %.9g", path, ci, j, gx[0][j], 0.5 + rx[j]);
        }
        for (size_t j = 0; j < d.nw; j++) {
            const double e = fabs(gw[0][j] - (-0.25 + rw[j])), bound = 8 * 1.1920929e-7 * (mw[j] + 0.25);
            if (e / (mw[j] + 0.25) > worst) worst = e / (mw[j] + 0.25);
            if (!(e <= bound) && bad++ < 5)
                cr_log_error("%s case %d gw[%zu]: got %.9g want %.9g", path, ci, j, gw[0][j], -0.25 + rw[j]);
        }
        cr_expect_eq(bad, 0, "%s case %d: %zu gradient elements outside 8 eps of the sum of |products|", path, ci, bad);
        cr_expect_eq(sqt_check_equal("gx on 1 thread", gx[1], gx[0], d.nx), 0, "%s case %d: gx depends on the thread count", path, ci);
        cr_expect_eq(sqt_check_equal("gw on 1 thread", gw[1], gw[0], d.nw), 0, "%s case %d: gw depends on the thread count", path, ci);
        for (int t = 0; t < 2; t++) {
            free(gx[t]);
            free(gw[t]);
        }
        free(gy); free(rx); free(mx); free(rw); free(mw);
        conv_free(&d);
    }
    return worst;
}

/* The Winograd F(2x2, 3x3) forward of the wide layers (conv_wino.c): odd and even map sizes (cut
   edge tiles), a single output row, several blocks with a short last one, with and without bias */
Test(ops, winograd_forward_matches_loops_within_its_bound)
{
    if (!sq_cpu_fast_available()) cr_skip_test("no AVX2/FMA: the Winograd forward does not run on this CPU");
    const conv_case cases[] = {{5, 64, 7, 7, 128, 3, 3, 1, 1, 1, 1},  /* 4x4 tiles, cut; 2 blocks */
                               {2, 128, 4, 4, 64, 3, 3, 1, 1, 1, 0},  /* VGG's 4x4 maps */
                               {3, 64, 1, 9, 128, 3, 3, 1, 1, 1, 1},  /* one output row */
                               {2, 96, 6, 5, 96, 3, 3, 1, 1, 1, 1}};  /* 96 x 96 channel pairs */
    const double worst = check_wino_fwd(cases, 4, 970, sq_cpu_wino_applies, "Winograd forward");
    cr_log_info("Winograd forward: worst error %.3g of the sum of |products|", worst);
    /* where it applies: 64 channels a side, 8192 to 1M channel pairs, 3x3 stride 1 pad 1, dense */
    const int sel[][7] = {{64, 128, 1, 1, 1, 1}, {64, 127, 1, 1, 1, 0}, {32, 1024, 1, 1, 1, 0},
                          {1024, 1024, 1, 1, 1, 1}, {1024, 1025, 1, 1, 1, 0}, {128, 128, 2, 1, 1, 0},
                          {128, 128, 1, 0, 1, 0}, {128, 128, 1, 1, 2, 0}};
    for (int i = 0; i < 8; i++) {
        sq_conv_shape cs;
        cr_assert_eq(sq_conv_shape_init(&cs, 2, sel[i][0], 8, 8, sel[i][1], 3, 3, sel[i][2], sel[i][3], sel[i][4]), SQ_OK);
        cr_expect_eq(sq_cpu_wino_applies(&cs), sel[i][5], "%d -> %d stride %d pad %d groups %d", sel[i][0], sel[i][1],
                     sel[i][2], sel[i][3], sel[i][4]);
    }
}

/* The Winograd backward of the wide layers (conv_wino.c: the input gradient as the forward's
   arithmetic on the transposed, rotated weights; the weight gradient as 16 GEMMs over the tiles
   and G^T . G), on the forward's shapes and two more */
Test(ops, winograd_backward_matches_loops_within_its_bound)
{
    if (!sq_cpu_fast_available()) cr_skip_test("no AVX2/FMA: the Winograd path does not run on this CPU");
    const conv_case cases[] = {{5, 64, 7, 7, 128, 3, 3, 1, 1, 1, 0}, {2, 128, 4, 4, 64, 3, 3, 1, 1, 1, 0},
                               {3, 64, 1, 9, 128, 3, 3, 1, 1, 1, 0}, {2, 96, 6, 5, 96, 3, 3, 1, 1, 1, 0},
                               {40, 64, 8, 8, 128, 3, 3, 1, 1, 1, 0},  /* weight gradient: 3 blocks */
                               {2, 64, 5, 17, 128, 3, 3, 1, 1, 1, 0}}; /* 8 tiles a vector, a cut row and column */
    const double worst = check_wino_bwd(cases, 6, 990, sq_cpu_wino_applies, "Winograd path");
    cr_log_info("Winograd backward: worst error %.3g of the sum of |products|", worst);
}

/* The narrow layers' Winograd (conv_wino16.c, 16 - 64 channels a side in multiples of 16, AVX-512F):
   odd and even maps (cut edge tiles), one output row, 16/32/48/64 channels on either side, a
   partial last register block of tiles; and where it applies */
Test(ops, narrow_winograd_forward_matches_loops_within_its_bound)
{
    if (!sq_cpu_wino16_available()) cr_skip_test("no AVX-512F: the narrow Winograd path does not run on this CPU");
    const conv_case cases[] = {{3, 16, 7, 7, 16, 3, 3, 1, 1, 1, 1},  /* 16 tiles, cut; blocks of 24 */
                               {2, 32, 5, 9, 64, 3, 3, 1, 1, 1, 0},  /* blocks of 6 tiles, a short last */
                               {2, 48, 1, 9, 16, 3, 3, 1, 1, 1, 1},  /* one output row */
                               {2, 64, 8, 8, 48, 3, 3, 1, 1, 1, 1},  /* 3 registers of outputs */
                               {5, 16, 6, 11, 32, 3, 3, 1, 1, 1, 0}};
    const double worst = check_wino_fwd(cases, 5, 1200, sq_cpu_wino16_applies, "narrow Winograd forward");
    cr_log_info("narrow Winograd forward: worst error %.3g of the sum of |products|", worst);
    /* c, k, stride, pad, groups, kernel, applies */
    const int sel[][7] = {{16, 16, 1, 1, 1, 3, 1}, {64, 64, 1, 1, 1, 3, 1},  {16, 64, 1, 1, 1, 3, 1},
                          {8, 16, 1, 1, 1, 3, 0},  {16, 24, 1, 1, 1, 3, 0},  {64, 80, 1, 1, 1, 3, 0},
                          {64, 128, 1, 1, 1, 3, 0}, {32, 32, 2, 1, 1, 3, 0}, {32, 32, 1, 0, 1, 3, 0},
                          {32, 32, 1, 1, 2, 3, 0},  {32, 32, 1, 1, 1, 5, 0}, {32, 32, 1, 1, 1, 1, 0}};
    for (int i = 0; i < 12; i++) {
        sq_conv_shape cs;
        cr_assert_eq(sq_conv_shape_init(&cs, 2, sel[i][0], 8, 8, sel[i][1], sel[i][5], sel[i][5], sel[i][2],
                                        sel[i][3], sel[i][4]),
                     SQ_OK);
        cr_expect_eq(sq_cpu_wino16_applies(&cs), sel[i][6], "%d -> %d stride %d pad %d groups %d kernel %d",
                     sel[i][0], sel[i][1], sel[i][2], sel[i][3], sel[i][4], sel[i][5]);
    }
    /* the wide path's shapes and the narrow one's never overlap */
    sq_conv_shape cs;
    cr_assert_eq(sq_conv_shape_init(&cs, 2, 64, 8, 8, 128, 3, 3, 1, 1, 1), SQ_OK);
    cr_expect(!sq_cpu_wino16_applies(&cs) && sq_cpu_wino_applies(&cs), "64 -> 128 is the wide path's");
}

/* Its backward: the input gradient as its forward on the swapped shape, the weight gradient summed
   per 8 images and per 64 tiles: more than 8 images with a short last group, maps of more than
   64 tiles with a short last block, cut rows and columns */
Test(ops, narrow_winograd_backward_matches_loops_within_its_bound)
{
    if (!sq_cpu_wino16_available()) cr_skip_test("no AVX-512F: the narrow Winograd path does not run on this CPU");
    const conv_case cases[] = {{3, 16, 7, 7, 16, 3, 3, 1, 1, 1, 0},   {2, 32, 5, 9, 64, 3, 3, 1, 1, 1, 0},
                               {2, 48, 1, 9, 16, 3, 3, 1, 1, 1, 0},   {2, 64, 8, 8, 48, 3, 3, 1, 1, 1, 0},
                               {19, 16, 6, 6, 32, 3, 3, 1, 1, 1, 0},  /* 3 groups of images, a short last */
                               {2, 16, 17, 18, 16, 3, 3, 1, 1, 1, 0}}; /* 81 tiles: 2 blocks, a cut row */
    const double worst = check_wino_bwd(cases, 6, 1220, sq_cpu_wino16_applies, "narrow Winograd path");
    cr_log_info("narrow Winograd backward: worst error %.3g of the sum of |products|", worst);
}

/* A shape marked direct (the quantized layers on the float path: graph.c) never takes either
   Winograd path, so its output is the implicit GEMM's FMA chain bit for bit, the chain the
   PyTorch twin emulates (tools/torch_quant.py); without the mark the same shapes do take them */
Test(ops, direct_shapes_never_take_winograd)
{
    if (!sq_cpu_fast_available()) cr_skip_test("no AVX2/FMA: neither Winograd path runs on this CPU");
    const conv_case cases[] = {{3, 16, 8, 8, 16, 3, 3, 1, 1, 1, 1}, {2, 64, 8, 8, 128, 3, 3, 1, 1, 1, 1}};
    const sq_backend *be = sq_backend_cpu();
    for (int ci = 0; ci < 2; ci++) {
        conv_data d = conv_make(cases[ci], 1400 + ci);
        cr_expect(sq_cpu_wino_applies(&d.cs) || sq_cpu_wino16_applies(&d.cs) || !sq_cpu_wino16_available(),
                  "case %d: unmarked, a Winograd path should apply", ci);
        d.cs.direct = 1;
        cr_expect(!sq_cpu_wino_applies(&d.cs) && !sq_cpu_wino16_applies(&d.cs), "case %d: marked direct, no Winograd", ci);
        float *ref = vec(d.ny);
        be->conv2d_fwd(&d.cs, d.x, d.w, d.b, d.y, d.ws);
        sq_cpu_igemm_fwd(&d.cs, d.x, d.w, d.b, ref, d.ws, 1);
        cr_expect_eq(sqt_check_equal("direct y", d.y, ref, d.ny), 0, "case %d: not the implicit GEMM's bits", ci);
        free(ref);
        conv_free(&d);
    }
}

/* The training BN passes (fused.c) walk planes in memory order, scheduled dynamically; a channel's
   plane sums are added in image order, so every output (y, saved statistics, running statistics,
   gx, the residual's gradient, dgamma, dbeta) is the same bits on 1 and 2 threads, for the plain
   BN and the fused BN + add + ReLU6, on a tensor large enough to run in parallel */
Test(ops, bn_training_passes_do_not_depend_on_the_thread_count)
{
    const sq_backend *be = sq_backend_cpu();
    const int n = 37, c = 24, hw = 45;
    const size_t N = (size_t)n * c * hw;
    float *x = vec(N), *gy = vec(N), *r = vec(N), *gamma = vec(c), *beta = vec(c);
    sqt_fill_uniform(x, N, 2, 4, 1301); /* a large mean: the shifted sums matter */
    /* planes 2^-20 .. 2^20 in scale: their sums in double are inexact, so an order that followed
       the schedule would show in the last bits */
    for (size_t q = 0; q < (size_t)n * c; q++)
        for (int j = 0; j < hw; j++) x[q * hw + j] = ldexpf(x[q * hw + j], (int)((q * 7) % 41) - 20);
    sqt_fill_uniform(gy, N, -1, 1, 1302);
    sqt_fill_uniform(r, N, -1, 1, 1303);
    sqt_fill_uniform(gamma, c, 0.5f, 1.5f, 1304);
    sqt_fill_uniform(beta, c, -0.5f, 0.5f, 1305);
    for (int fused = 0; fused < 2; fused++) {
        float *out[2][9];
        for (int t = 0; t < 2; t++) {
            float *y = vec(N), *gx = vec(N), *gr = vec(N), *rm = vec(c), *rv = vec(c), *sm = vec(c), *si = vec(c),
                  *gg = vec(c), *gb = vec(c);
            for (int i = 0; i < c; i++) rv[i] = 1.0f;
            be->set_threads(t + 1);
            if (fused) {
                be->bn_add_act_fwd_train(n, c, hw, SQ_ACT_RELU6, x, r, gamma, beta, rm, rv, 0.1f, 1e-5f, y, sm, si);
                be->bn_add_act_bwd(n, c, hw, SQ_ACT_RELU6, x, y, gy, gamma, sm, si, gx, gr, gg, gb);
            } else {
                be->bn_fwd_train(n, c, hw, x, gamma, beta, rm, rv, 0.1f, 1e-5f, y, sm, si);
                be->bn_bwd(n, c, hw, x, gy, gamma, sm, si, gx, gg, gb);
            }
            float *o[9] = {y, gx, gr, rm, rv, sm, si, gg, gb};
            memcpy(out[t], o, sizeof o);
        }
        be->set_threads(2);
        const char *names[9] = {"y", "gx", "gr", "running mean", "running var", "mean", "invstd", "dgamma", "dbeta"};
        for (int v = 0; v < 9; v++) {
            const size_t len = v < 3 ? N : (size_t)c;
            cr_expect_eq(sqt_check_equal(names[v], out[1][v], out[0][v], len), 0, "%s BN: %s differs between 1 and 2 threads",
                         fused ? "fused" : "plain", names[v]);
            free(out[0][v]);
            free(out[1][v]);
        }
    }
    free(x); free(gy); free(r); free(gamma); free(beta);
}

Test(ops, bn_running_stats)
{
    const sq_backend *be = sq_backend_cpu();
    /* x (N=2, C=2, HW=3): channel 0 = {1..6}, channel 1 = {10,10,10,10,10,13} */
    const float x[12] = {1, 2, 3, 10, 10, 10, 4, 5, 6, 10, 10, 13};
    float rm[2] = {0.5f, 0.5f}, rv[2] = {2.0f, 2.0f}, sm[2], si[2], y[12];
    const float gamma[2] = {2.0f, 0.5f}, beta[2] = {1.0f, -1.0f};
    be->bn_fwd_train(2, 2, 3, x, gamma, beta, rm, rv, 0.1f, 1e-5f, y, sm, si);
    /* mean 3.5 / 10.5; biased var 17.5/6 / 1.25; unbiased 3.5 / 1.5 */
    cr_expect_float_eq(sm[0], 3.5f, 1e-6f);
    cr_expect_float_eq(sm[1], 10.5f, 1e-6f);
    cr_expect_float_eq(si[0], (float)(1.0 / sqrt(17.5 / 6 + 1e-5)), 1e-6f);
    cr_expect_float_eq(si[1], (float)(1.0 / sqrt(1.25 + 1e-5)), 1e-6f);
    cr_expect_float_eq(rm[0], 0.8f, 1e-6f, "running mean 0.9*0.5 + 0.1*3.5, got %g", rm[0]);
    cr_expect_float_eq(rm[1], 1.5f, 1e-6f, "running mean 0.9*0.5 + 0.1*10.5, got %g", rm[1]);
    cr_expect_float_eq(rv[0], 2.15f, 1e-6f, "running var uses unbiased 3.5, got %g", rv[0]);
    cr_expect_float_eq(rv[1], 1.95f, 1e-6f, "running var uses unbiased 1.5, got %g", rv[1]);
    const double var[2] = {17.5 / 6, 1.25}, mean[2] = {3.5, 10.5};
    for (int i = 0; i < 12; i++) {
        int c = (i / 3) % 2;
        double ref = (x[i] - mean[c]) / sqrt(var[c] + 1e-5) * gamma[c] + beta[c];
        cr_expect(fabs(y[i] - ref) <= 1e-5 + 1e-5 * fabs(ref), "y[%d]: got %g want %g", i, y[i], ref);
    }
    float ye[12];
    be->bn_fwd_eval(2, 2, 3, x, gamma, beta, rm, rv, 1e-5f, ye);
    for (int i = 0; i < 12; i++) {
        int c = (i / 3) % 2;
        double ref = (x[i] - rm[c]) / sqrt(rv[c] + 1e-5) * gamma[c] + beta[c];
        cr_expect(fabs(ye[i] - ref) <= 1e-5 + 1e-5 * fabs(ref), "eval y[%d]: got %g want %g", i, ye[i], ref);
    }
}

Test(ops, bn_large_mean_variance)
{
    /* mean 1000, std 0.01: naive E[x^2] - E[x]^2 in float would lose the variance entirely */
    const int n = 16, c = 3, hw = 64;
    const size_t nx = (size_t)n * c * hw;
    float *x = vec(nx), *y = vec(nx), sm[3], si[3];
    sqt_fill_normal(x, nx, 1000.0f, 0.01f, 31);
    sq_backend_cpu()->bn_fwd_train(n, c, hw, x, NULL, NULL, NULL, NULL, 0.1f, 0.0f, y, sm, si);
    for (int ch = 0; ch < c; ch++) {
        double s = 0, v = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < hw; j++) s += x[((size_t)i * c + ch) * hw + j];
        s /= n * hw;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < hw; j++) {
                double d = x[((size_t)i * c + ch) * hw + j] - s;
                v += d * d;
            }
        v /= n * hw;
        double ref = 1.0 / sqrt(v);
        cr_expect(fabs(si[ch] - ref) <= 1e-3 * ref, "invstd[%d]: got %g want %g", ch, si[ch], ref);
    }
    free(x); free(y);
}

/* the square pools of the zoo (sq_pool_shape_square) */
static void pool_sq(const sq_backend *be, int bwd, sq_pool_kind kind, int n, int c, int h, int w,
                    int k, int stride, int pad, const float *in, float *out, const int32_t *am_in,
                    int32_t *am)
{
    sq_pool_shape ps;
    cr_assert_eq(sq_pool_shape_square(&ps, n, c, h, w, k, stride, pad), SQ_OK);
    if (bwd) be->pool_bwd(kind, &ps, in, am_in, out);
    else be->pool_fwd(kind, &ps, in, out, am);
}

Test(ops, pool_argmax_and_padding)
{
    const sq_backend *be = sq_backend_cpu();
    const float x[16] = {1, 5, 5, 2, 0, 3, 1, 2, 7, 7, 0, 0, 1, 2, 9, 9};
    float y[4];
    int32_t am[4];
    pool_sq(be, 0, SQ_POOL_MAX, 1, 1, 4, 4, 2, 2, 0, x, y, NULL, am);
    const int32_t am1[4] = {1, 2, 8, 14};
    const float y1[4] = {5, 5, 7, 9};
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(am[i], am1[i], "k2s2 argmax[%d]: got %d want %d (first max wins)", i, am[i], am1[i]);
        cr_expect_eq(y[i], y1[i], "k2s2 y[%d]", i);
    }
    pool_sq(be, 0, SQ_POOL_MAX, 1, 1, 4, 4, 3, 2, 1, x, y, NULL, am);
    const int32_t am2[4] = {1, 1, 8, 14};
    for (int i = 0; i < 4; i++)
        cr_expect_eq(am[i], am2[i], "k3s2p1 argmax[%d]: got %d want %d", i, am[i], am2[i]);
    float neg[16];
    for (int i = 0; i < 16; i++) neg[i] = -5.0f;
    pool_sq(be, 0, SQ_POOL_MAX, 1, 1, 4, 4, 3, 2, 1, neg, y, NULL, am);
    for (int i = 0; i < 4; i++) cr_expect_eq(y[i], -5.0f, "padding must act as -inf, y[%d]=%g", i, y[i]);
    float ones[16];
    for (int i = 0; i < 16; i++) ones[i] = 1.0f;
    pool_sq(be, 0, SQ_POOL_AVG, 1, 1, 4, 4, 3, 2, 1, ones, y, NULL, NULL);
    const float ya[4] = {4.0f / 9, 6.0f / 9, 6.0f / 9, 1.0f};
    for (int i = 0; i < 4; i++)
        cr_expect_float_eq(y[i], ya[i], 1e-6f, "count_include_pad y[%d]: got %g want %g", i, y[i], ya[i]);
    float g[16] = {0};
    const float gy[4] = {1, 2, 3, 4};
    pool_sq(be, 0, SQ_POOL_MAX, 1, 1, 4, 4, 3, 2, 1, x, y, NULL, am);
    pool_sq(be, 1, SQ_POOL_MAX, 1, 1, 4, 4, 3, 2, 1, gy, g, am, NULL);
    cr_expect_eq(g[1], 3.0f, "two windows route to index 1");
    cr_expect_eq(g[8], 3.0f);
    cr_expect_eq(g[14], 4.0f);
    float gp[6] = {0}, xg[6] = {1, 2, 3, 4, 5, 6};
    be->gap_fwd(2, 1, 3, xg, gp);
    cr_expect_float_eq(gp[0], 2.0f, 1e-6f);
    cr_expect_float_eq(gp[1], 5.0f, 1e-6f);
}

/* The 2x2 stride-2 max pool (its own vector path on AVX2 CPUs) against the rule written out: the
   first element in window order starts, a later one replaces it when greater or NaN. Rows wide
   enough for full vectors and a tail, odd input sizes (the last row and column dropped), ties,
   NaNs and -inf in every window position. */
Test(ops, max_pool_2x2_vector_path_matches_the_window_rule)
{
    const sq_backend *be = sq_backend_cpu();
    /* 9x37 -> 4x18: full vectors and tails; 11x9 -> 5x4: row pairs (four outputs a row) and a
       last single row */
    static const int shapes[2][4] = {{9, 37, 4, 18}, {11, 9, 5, 4}};
    for (int sh = 0; sh < 2; sh++) {
        const int n = 2, c = 3, h = shapes[sh][0], w = shapes[sh][1], oh = shapes[sh][2], ow = shapes[sh][3];
        const size_t nx = (size_t)n * c * h * w, ny = (size_t)n * c * oh * ow;
        float *x = malloc(nx * sizeof *x), *y = malloc(ny * sizeof *y);
        int32_t *am = malloc(ny * sizeof *am);
        uint32_t r = 12345;
        for (size_t i = 0; i < nx; i++) {
            r = r * 1664525u + 1013904223u;
            const unsigned k = (r >> 24) % 16;
            x[i] = k == 0 ? NAN : k == 1 ? -INFINITY : (float)((int)((r >> 8) % 5) - 2); /* many ties */
        }
        sq_pool_shape ps;
        cr_assert_eq(sq_pool_shape_square(&ps, n, c, h, w, 2, 2, 0), SQ_OK);
        cr_assert_eq(ps.oh, oh);
        cr_assert_eq(ps.ow, ow);
        be->pool_fwd(SQ_POOL_MAX, &ps, x, y, am);
        int nan_seen = 0;
        for (int p = 0; p < n * c; p++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    const float *xp = x + (size_t)p * h * w;
                    float best = -INFINITY;
                    int32_t bi = 2 * oy * w + 2 * ox;
                    for (int dy = 0; dy < 2; dy++)
                        for (int dx = 0; dx < 2; dx++) {
                            const int i = (2 * oy + dy) * w + 2 * ox + dx;
                            if (xp[i] > best || isnan(xp[i])) {
                                best = xp[i];
                                bi = i;
                            }
                        }
                    const size_t o = ((size_t)p * oh + oy) * ow + ox;
                    nan_seen += isnan(best);
                    cr_expect(isnan(best) ? isnan(y[o]) : y[o] == best, "y[%zu]: got %g want %g", o, y[o],
                              best);
                    cr_expect_eq(am[o], bi, "argmax[%zu]: got %d want %d", o, am[o], bi);
                }
        cr_expect(nan_seen > 3, "the input should put NaNs in some windows (%d)", nan_seen);
        /* without argmax (the teacher's forward) the values are the same */
        float *y2 = malloc(ny * sizeof *y2);
        be->pool_fwd(SQ_POOL_MAX, &ps, x, y2, NULL);
        cr_expect(memcmp(y, y2, ny * sizeof *y) == 0, "values must not depend on whether argmax is kept");
        free(x);
        free(y);
        free(y2);
        free(am);
    }
}

Test(ops, shortcut_concat_shuffle_exact) {
    const sq_backend *be = sq_backend_cpu();
    float x[18], y[16], gx[18];
    for (int i = 0; i < 18; i++) x[i] = (float)i;
    be->shortcut_a_fwd(1, 2, 3, 3, 4, x, y);
    const float ys[16] = {0, 0, 0, 0, 0, 2, 6, 8, 9, 11, 15, 17, 0, 0, 0, 0};
    for (int i = 0; i < 16; i++) cr_expect_eq(y[i], ys[i], "shortcut y[%d]: got %g want %g", i, y[i], ys[i]);
    for (int i = 0; i < 18; i++) gx[i] = 1.0f;
    for (int i = 0; i < 16; i++) y[i] = (float)(i + 1);
    be->shortcut_a_bwd(1, 2, 3, 3, 4, y, gx);
    const float gxs[18] = {6, 1, 7, 1, 1, 1, 8, 1, 9, 10, 1, 11, 1, 1, 1, 12, 1, 13};
    for (int i = 0; i < 18; i++) cr_expect_eq(gx[i], gxs[i], "shortcut gx[%d]: got %g want %g", i, gx[i], gxs[i]);

    /* concat: a (2, 1, 2), b (2, 2, 2) */
    const float a[4] = {1, 2, 3, 4}, b[8] = {10, 11, 12, 13, 14, 15, 16, 17};
    float yc[12], ga[4] = {0}, gb[8] = {0};
    be->concat_fwd(2, 1, 2, 2, a, b, yc);
    const float ycs[12] = {1, 2, 10, 11, 12, 13, 3, 4, 14, 15, 16, 17};
    for (int i = 0; i < 12; i++) cr_expect_eq(yc[i], ycs[i], "concat y[%d]", i);
    be->concat_bwd(2, 1, 2, 2, yc, ga, gb);
    be->concat_bwd(2, 1, 2, 2, yc, ga, NULL);
    for (int i = 0; i < 4; i++) cr_expect_eq(ga[i], 2 * a[i], "concat ga[%d] accumulates", i);
    for (int i = 0; i < 8; i++) cr_expect_eq(gb[i], b[i], "concat gb[%d]", i);

    /* shuffle: n = 2, c = 6, groups = 2, hw = 2: channel order 0 3 1 4 2 5 */
    float xs[24], ysh[24], back[24] = {0};
    for (int i = 0; i < 24; i++) xs[i] = (float)i;
    be->shuffle_fwd(2, 6, 2, 2, xs, ysh);
    const int order[6] = {0, 3, 1, 4, 2, 5};
    for (int i = 0; i < 2; i++)
        for (int c = 0; c < 6; c++)
            for (int e = 0; e < 2; e++)
                cr_expect_eq(ysh[(i * 6 + c) * 2 + e], xs[(i * 6 + order[c]) * 2 + e], "shuffle %d %d %d", i, c, e);
    be->shuffle_bwd(2, 6, 2, 2, ysh, back);
    cr_expect_eq(sqt_check_equal("unshuffle", back, xs, 24), 0, "shuffle_bwd is not the inverse");
}

Test(ops, dropout_mask_statistics)
{
    const sq_backend *be = sq_backend_cpu();
    const size_t n = 200000;
    const float p = 0.3f;
    float *x = vec(n), *y = vec(n), *gx = vec(n), *y2 = vec(n);
    uint8_t *m = malloc(n), *m2 = malloc(n);
    sqt_fill_uniform(x, n, 0.5f, 1.5f, 3);
    be->dropout_fwd(n, p, 1234, x, y, m);
    size_t kept = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        kept += m[i];
        float want = m[i] ? x[i] / (1.0f - p) : 0.0f;
        if (fabsf(y[i] - want) > 1e-6f * fabsf(want)) bad++;
    }
    /* binomial std of the kept fraction: sqrt(0.21 / 2e5) = 0.001; allow 5 sigma */
    double frac = (double)kept / n;
    cr_expect(fabs(frac - 0.7) < 0.005, "kept fraction %g, want 0.7", frac);
    cr_expect_eq(bad, 0, "%zu outputs are not x * mask / (1 - p)", bad);
    be->dropout_fwd(n, p, 1234, x, y2, m2);
    cr_expect_eq(memcmp(m, m2, n), 0, "same seed must give the same mask");
    be->dropout_fwd(n, p, 1235, x, y2, m2);
    size_t same = 0;
    for (size_t i = 0; i < n; i++) same += m[i] == m2[i];
    cr_expect(same < n * 0.7, "another seed must give another mask (agreement %zu of %zu)", same, n);
    be->dropout_bwd(n, p, m, x, gx);
    bad = 0;
    for (size_t i = 0; i < n; i++)
        if (gx[i] != (m[i] ? x[i] * (1.0f / (1.0f - p)) : 0.0f)) bad++;
    cr_expect_eq(bad, 0, "dropout_bwd: %zu entries differ", bad);
    be->dropout_fwd(n, 0.0f, 9, x, y, m);
    cr_expect_eq(sqt_check_equal("p=0", y, x, n), 0, "p = 0 must be the identity");
    free(x); free(y); free(gx); free(y2); free(m); free(m2);
}

/* the KL of kernels/cpu/loss.c (two exps per element, blocks of rows on threads) against the
   textbook per-element logs in double (log P = z / T - logsumexp): loss and gradient within a
   float ulp or two; the loss bit-identical with 1 and 2 threads; rows with -inf and +-80 logits */
static double ref_lse(int k, const float *z, double inv_t)
{
    double m = -INFINITY, s = 0.0;
    for (int j = 0; j < k; j++) m = z[j] * inv_t > m ? z[j] * inv_t : m;
    for (int j = 0; j < k; j++) s += exp(z[j] * inv_t - m);
    return m + log(s);
}

Test(ops, kl_matches_per_element_logs_for_any_thread_count)
{
    const sq_backend *be = sq_backend_cpu();
    static const int shapes[][2] = {{1, 1}, {3, 10}, {200, 10}, {130, 100}, {70, 1000}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int n = shapes[si][0], k = shapes[si][1];
        const size_t m = (size_t)n * k;
        const double T = 4.0, alpha = 0.9, inv_t = 1.0 / T;
        float *zt = malloc(m * sizeof(float)), *zs = malloc(m * sizeof(float));
        sqt_fill_uniform(zt, m, -6, 6, 40 + si);
        sqt_fill_uniform(zs, m, -6, 6, 60 + si);
        if (n > 2)
            for (int j = 0; j < k; j++) {
                if (j % 3 == 0) zt[j] = -INFINITY; /* row 0: P_T = 0 terms */
                zt[(size_t)k + j] *= 13.0f;         /* row 1: logits up to +-78 */
                zs[(size_t)k + j] = -zt[(size_t)k + j];
            }
        double total = 0.0;
        float *gref = calloc(m, sizeof(float)), *g1 = calloc(m, sizeof(float)),
              *g2 = calloc(m, sizeof(float)), l1, l2;
        for (int i = 0; i < n; i++) {
            const float *a = zt + (size_t)i * k, *b = zs + (size_t)i * k;
            const double lt = ref_lse(k, a, inv_t), ls = ref_lse(k, b, inv_t);
            for (int j = 0; j < k; j++) {
                const double lpt = a[j] * inv_t - lt, lps = b[j] * inv_t - ls, pt = exp(lpt);
                if (pt > 0.0) total += pt * (lpt - lps);
                gref[(size_t)i * k + j] = (float)(alpha * T / n * (exp(lps) - pt));
            }
        }
        const float lref = (float)(alpha * T * T / n * total);
        be->set_threads(1);
        be->kl_fwd_bwd(n, k, zt, zs, (float)T, (float)alpha, &l1, g1);
        be->set_threads(2);
        be->kl_fwd_bwd(n, k, zt, zs, (float)T, (float)alpha, &l2, g2);
        be->set_threads(0);
        char what[64];
        snprintf(what, sizeof what, "KL %d x %d", n, k);
        cr_expect(fabsf(l1 - lref) <= 2e-7f * fabsf(lref) + 1e-12f, "%s: loss %.9g want %.9g", what, l1, lref);
        cr_expect_eq(l2, l1, "%s: loss with 2 threads %.9g, with 1 %.9g", what, l2, l1);
        cr_expect_eq(sqt_check_close(what, g1, gref, m, 1e-12, 2.5e-7, 40 + si), 0,
                     "%s: gradient differs from the per-element logs", what);
        cr_expect_eq(sqt_check_equal(what, g2, g1, m), 0, "%s: gradient depends on the threads", what);
        free(zt); free(zs); free(gref); free(g1); free(g2);
    }
}

Test(ops, loss_vectors)
{
    const sq_backend *be = sq_backend_cpu();
    const float zt[2] = {0, 0}, zs[2] = {4, 0};
    float loss = 0, g[4]; /* up to 2 x 2 logits */
    be->kl_fwd_bwd(1, 2, zt, zs, 4.0f, 1.0f, &loss, g);
    /* method.md section 2 test vector, 6 printed digits */
    cr_expect(fabsf(loss - 1.921832f) < 2e-6f, "KL loss %.7f want 1.921832", loss);
    cr_expect(fabsf(g[0] - 0.924234f) < 2e-6f, "dL/dzS[0] %.7f want 0.924234", g[0]);
    cr_expect(fabsf(g[1] + 0.924234f) < 2e-6f, "dL/dzS[1] %.7f want -0.924234", g[1]);
    g[0] = g[1] = 7.0f;
    be->kl_fwd_bwd(1, 2, zt, zs, 4.0f, 1.0f, &loss, g);
    cr_expect(fabsf(g[0] - 0.924234f) < 2e-6f, "gzs must be overwritten, got %g", g[0]);

    const float z[3] = {1, 2, 3};
    const int32_t lab[1] = {2};
    be->softmax_ce(1, 3, z, lab, 1.0f, &loss, g);
    cr_expect(fabsf(loss - 0.40760596f) < 1e-6f, "CE loss %.8f want 0.40760596", loss);
    const float gref[3] = {0.09003057f, 0.24472847f, -0.33475904f};
    for (int i = 0; i < 3; i++) cr_expect(fabsf(g[i] - gref[i]) < 1e-6f, "CE g[%d] %g want %g", i, g[i], gref[i]);
    const float big[4] = {1000, 0, 0, 1000};
    const int32_t lab2[2] = {1, 0};
    be->softmax_ce(2, 2, big, lab2, 1.0f, &loss, g);
    cr_expect(fabsf(loss - 1000.0f) < 1e-3f, "CE with large logits %g want 1000 (stable lse)", loss);
    const int32_t lab3[2] = {-1, 0}; /* an unlabelled row adds nothing, still divides by n */
    be->softmax_ce(2, 2, big, lab3, 1.0f, &loss, g);
    cr_expect(fabsf(loss - 500.0f) < 1e-3f && g[0] == 0.0f && g[1] == 0.0f, "CE label -1: loss %g", loss);

    const float rows[8] = {1, 3, 3, 2, -1, -5, -1, -2};
    int32_t am[2];
    be->argmax(2, 4, rows, am);
    cr_expect_eq(am[0], 1, "argmax ties: first wins");
    cr_expect_eq(am[1], 0);
}

Test(ops, optimizers_two_steps)
{
    const sq_backend *be = sq_backend_cpu();
    const size_t n = 40000; /* above the parallel threshold */
    float *p = vec(n), *g = vec(n), *m = vec(n), *v = vec(n);
    for (size_t i = 0; i < n; i++) { p[i] = 1.0f; g[i] = 0.5f; }
    /* SGD lr 0.1, momentum 0.9, wd 0.01 (hand-computed in double):
       d = 0.51, m = 0.51, p = 0.949; d = 0.50949, m = 0.96849, p = 0.852151 */
    be->sgd_step(n, p, g, m, 0.1f, 0.9f, 0.01f);
    cr_expect(fabsf(p[0] - 0.949f) < 1e-6f && fabsf(m[0] - 0.51f) < 1e-6f, "sgd step 1: p %g m %g", p[0], m[0]);
    be->sgd_step(n, p, g, m, 0.1f, 0.9f, 0.01f);
    cr_expect(fabsf(p[0] - 0.852151f) < 1e-6f, "sgd step 2: p %.7f want 0.852151", p[0]);
    cr_expect(fabsf(m[0] - 0.96849f) < 1e-6f, "sgd step 2: m %.7f want 0.96849", m[0]);
    cr_expect(p[n - 1] == p[0] && p[n / 2] == p[0], "sgd: all elements equal");
    for (size_t i = 0; i < n; i++) { p[i] = 1.0f; m[i] = 0.0f; }
    /* Adam lr 0.01, betas 0.9/0.999, eps 1e-8, wd 0.1: p1 = 0.99000000017, p2 = 0.98000043860,
       m2 = 0.1139, v2 = 0.000718441 */
    be->adam_step(n, p, g, m, v, 0.01f, 0.9f, 0.999f, 1e-8f, 0.1f, 1);
    cr_expect(fabsf(p[0] - 0.99f) < 1e-6f, "adam step 1: p %.8f want 0.99", p[0]);
    be->adam_step(n, p, g, m, v, 0.01f, 0.9f, 0.999f, 1e-8f, 0.1f, 2);
    cr_expect(fabsf(p[0] - 0.9800004386f) < 1e-6f, "adam step 2: p %.8f want 0.98000044", p[0]);
    cr_expect(fabsf(m[0] - 0.1139f) < 1e-6f, "adam step 2: m %.8f want 0.1139", m[0]);
    /* 1 - 0.999f is 1.3e-5 (relative) off 0.001: allow 2e-8 on v */
    cr_expect(fabsf(v[0] - 0.000718441f) < 2e-8f, "adam step 2: v %.9f want 0.000718441", v[0]);
    cr_expect(p[n - 1] == p[0], "adam: all elements equal");
    free(p); free(g); free(m); free(v);
}

Test(ops, linear_matches_loops)
{
    const sq_backend *be = sq_backend_cpu();
    const int n = 64, in = 128, out = 40; /* large enough for the row-block parallel path */
    float *x = vec(n * in), *w = vec(out * in), *b = vec(out), *y = vec(n * out), *gy = vec(n * out);
    float *gx = vec(n * in), *gw = vec(out * in), *gb = vec(out);
    sqt_fill_uniform(x, n * in, -1, 1, 11);
    sqt_fill_uniform(w, out * in, -1, 1, 12);
    sqt_fill_uniform(b, out, -1, 1, 13);
    sqt_fill_uniform(gy, n * out, -1, 1, 14);
    be->linear_fwd(n, in, out, x, w, b, y);
    be->linear_bwd(n, in, out, x, w, gy, gx, gw, gb);
    double *ry = calloc(n * out, sizeof(double)), *rx = calloc(n * in, sizeof(double)),
           *rw = calloc(out * in, sizeof(double)), *rb = calloc(out, sizeof(double));
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = b[o], g = gy[i * out + o];
            for (int j = 0; j < in; j++) {
                s += (double)x[i * in + j] * w[o * in + j];
                rx[i * in + j] += g * w[o * in + j];
                rw[o * in + j] += g * x[i * in + j];
            }
            ry[i * out + o] = s;
            rb[o] += g;
        }
    /* float sums of 128 (or 64) O(1) products */
    cr_expect_eq(sqt_check_close_d("linear y", y, ry, n * out, 1e-4, 1e-4, 11), 0, "linear y");
    cr_expect_eq(sqt_check_close_d("linear gx", gx, rx, n * in, 1e-4, 1e-4, 11), 0, "linear gx");
    cr_expect_eq(sqt_check_close_d("linear gw", gw, rw, out * in, 1e-4, 1e-4, 11), 0, "linear gw");
    cr_expect_eq(sqt_check_close_d("linear gb", gb, rb, out, 1e-4, 1e-4, 11), 0, "linear gb");
    free(x); free(w); free(b); free(y); free(gy); free(gx); free(gw); free(gb);
    free(ry); free(rx); free(rw); free(rb);
}

Test(ops, elementwise_and_memory)
{
    const sq_backend *be = sq_backend_cpu();
    cr_expect_str_eq(be->name, "cpu");
    cr_expect_eq(be->is_device, 0);
    const size_t n = 50000, bytes = n * sizeof(float);
    float *a = be->alloc(bytes), *b = be->alloc(bytes), *y = be->alloc(bytes);
    cr_assert(a && b && y, "alloc failed");
    cr_expect_eq(((uintptr_t)a) % 64, 0, "alloc is 64-byte aligned");
    size_t nonzero = 0;
    for (size_t i = 0; i < n; i++) nonzero += a[i] != 0.0f;
    cr_expect_eq(nonzero, 0, "alloc must zero");
    for (size_t i = 0; i < n; i++) { a[i] = (float)i - 25000.0f; b[i] = 0.5f * (float)i; }
    be->add_fwd(n, a, b, y);
    cr_expect(y[7] == a[7] + b[7] && y[n - 1] == a[n - 1] + b[n - 1], "add");
    be->axpy(n, 2.0f, b, y);
    cr_expect(y[9] == a[9] + b[9] + 2.0f * b[9], "axpy");
    be->scale(n, -0.5f, y);
    cr_expect(y[11] == -0.5f * (a[11] + b[11] + 2.0f * b[11]), "scale");
    be->fill(n, 3.25f, y);
    cr_expect(y[0] == 3.25f && y[n - 1] == 3.25f, "fill");
    be->act_fwd(SQ_ACT_RELU, n, a, y);
    cr_expect(y[0] == 0.0f && y[25000] == 0.0f && y[25003] == 3.0f, "relu");
    float r6in[5] = {-1, 0, 3, 6, 7}, r6[5], g6[5] = {0};
    const float one[5] = {1, 1, 1, 1, 1};
    be->act_fwd(SQ_ACT_RELU6, 5, r6in, r6);
    cr_expect(r6[0] == 0 && r6[2] == 3 && r6[3] == 6 && r6[4] == 6, "relu6");
    be->act_bwd(SQ_ACT_RELU6, 5, r6in, one, g6);
    cr_expect(g6[0] == 0 && g6[1] == 0 && g6[2] == 1 && g6[3] == 0 && g6[4] == 0,
              "relu6 gradient only strictly inside (0, 6)");
    be->copy_d2d(y, a, bytes);
    cr_expect_eq(memcmp(y, a, bytes), 0, "copy");
    be->memset0(y, bytes);
    cr_expect(y[0] == 0.0f && y[n - 1] == 0.0f, "memset0");
    be->sync();
    be->free(a); be->free(b); be->free(y);
    const size_t big = (size_t)6 << 20; /* the chunked parallel memset */
    char *c = be->alloc(big);
    memset(c, 1, big);
    be->memset0(c, big);
    size_t left = 0;
    for (size_t i = 0; i < big; i += 4093) left += c[i] != 0;
    cr_expect(left == 0 && c[big - 1] == 0, "large memset0");
    be->free(c);
}

#if !defined(__SANITIZE_ADDRESS__) /* AddressSanitizer builds keep every block on the heap */
static long resident_pages(void)
{
    long size = 0, res = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2) res = -1;
        fclose(f);
    }
    return res;
}
#endif

/* CPU backend memory: 64-byte aligned and zeroed at every size; a large block (a mapping) costs
   no resident memory until written (what makes an unused part of a workspace free), and freeing
   it gives the memory back */
Test(ops, cpu_alloc_is_zeroed_aligned_and_lazy)
{
    const sq_backend *be = sq_backend_cpu();
    const size_t sizes[] = {1, 63, 4096, 1000000, (size_t)1 << 20, ((size_t)1 << 20) + 1, (size_t)3 << 22};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        unsigned char *p = be->alloc(sizes[i]);
        cr_assert_not_null(p);
        cr_expect_eq((uintptr_t)p % 64, 0, "%zu bytes: not 64-byte aligned", sizes[i]);
        size_t nz = 0;
        for (size_t j = 0; j < sizes[i]; j += 97) nz += p[j] != 0;
        cr_expect_eq(nz + (p[sizes[i] - 1] != 0), 0, "%zu bytes: not zeroed", sizes[i]);
        memset(p, 0xab, sizes[i]);
        be->free(p);
    }
    be->free(NULL);
#if !defined(__SANITIZE_ADDRESS__)
    const long page = sysconf(_SC_PAGESIZE), r0 = resident_pages();
    unsigned char *big = be->alloc((size_t)256 << 20);
    cr_assert_not_null(big);
    const long r1 = resident_pages();
    big[(size_t)100 << 20] = 1; /* one page touched */
    be->free(big);
    const long r2 = resident_pages();
    if (r0 < 0) cr_skip_test("no /proc/self/statm");
    cr_expect((r1 - r0) * page < (16l << 20), "256 MB allocated and untouched made %ld MB resident",
              (r1 - r0) * page >> 20);
    cr_expect(r2 <= r1 + 4, "freeing the block should not leave it resident (%ld -> %ld pages)", r1, r2);
#endif
}
