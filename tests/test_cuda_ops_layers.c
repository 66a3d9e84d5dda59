/* test_cuda_ops_layers.c: Criterion suite "cuda" (shared with test_cuda_ops_train.c; this file
   declares the suite): memory, elementwise, batch norm, pooling, linear, convolution, structural
   (shortcut, concat, shuffle) and dropout CUDA ops against the CPU reference backend on random
   data with awkward sizes (1, primes, not multiples of the block size or of 4); guard bytes around
   every device output (sqt_dput/sqt_fetch in util_fixtures: allocated on both sides, filled with a
   sentinel, checked untouched after the op); gradient outputs start non-zero so that accumulation
   (+=) is what is checked. Built into its own binary (build/<dir>/sqakd_cuda_tests); without a GPU
   every test SKIPS (never passes). cuDNN is kept off TF32 (option tf32 = 0) so convolutions compare
   with FP32 tolerances. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sqakd/backend.h"
#include "util_fixtures.h"
#include "cuda_hooks.h"

static void setup(void) { (void)sqt_cuda_configure(); /* cuDNN off TF32 (cuda_hooks.h) */ }

TestSuite(cuda, .init = setup, .timeout = 60);

/* ---- memory ---- */

Test(cuda, memory_alloc_zeroed_copies_memset)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    cr_assert_str_eq(g->name, "cuda");
    cr_assert(g->is_device);
    size_t n = 4099;
    float *z = g->alloc(n * sizeof(float));
    cr_assert(z);
    float *h = sqt_hrand(n, -1, 1, 1);
    g->copy_d2h(h, z, n * sizeof(float));
    for (size_t i = 0; i < n; i++) cr_assert_eq(h[i], 0.0f, "alloc not zeroed at %zu", i);
    g->free(z);
    float *src = sqt_hrand(n, -1, 1, 2);
    float *a = sqt_dput(g, src, n * sizeof(float)), *b = sqt_dput(g, NULL, n * sizeof(float));
    g->copy_d2d(b, a, n * sizeof(float));
    g->memset0(a, 3 * sizeof(float));
    sqt_gpu_ok(g);
    float *ra = sqt_fetch(g, a, n, "memset0"), *rb = sqt_fetch(g, b, n, "copy_d2d");
    sqt_expect_equal("copy_d2d", rb, src, n);
    for (int i = 0; i < 3; i++) cr_expect_eq(ra[i], 0.0f, "memset0[%d]", i);
    sqt_expect_equal("memset0 tail", ra + 3, src + 3, n - 3);
    free(h); free(src); free(ra); free(rb);
}

#ifdef SQ_HAVE_CUDA
Test(cuda, failing_call_is_sticky_until_cleared)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    g->clear_status();
    float host[4] = {0};
    g->copy_h2d(NULL, host, sizeof host); /* invalid destination: cudaMemcpy fails at once */
    cr_assert_neq(g->status(), SQ_OK, "a failing cudaMemcpy was not recorded");
    cr_expect(strstr(sq_last_error(), "cudaMemcpy") != NULL, "message lacks the statement: %s",
              sq_last_error());
    float *d = g->alloc(16);
    g->fill(4, 1.0f, d); /* a later successful op keeps the first error */
    g->free(d);
    g->sync();
    cr_expect_neq(g->status(), SQ_OK, "the sticky error vanished");
    g->clear_status();
    cr_expect_eq(g->status(), SQ_OK);
    sqt_gpu_ok(g);
}
#endif

/* ---- elementwise ---- */

Test(cuda, activations_and_elementwise_match_cpu)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    const sq_backend *c = sq_backend_cpu();
    for (size_t si = 0; si < SQT_NSIZES; si++) {
        size_t n = sqt_sizes[si], B = n * sizeof(float);
        uint64_t seed = 100 + si;
        float *x = sqt_hrand(n, -2, 8, seed), *gy = sqt_hrand(n, -1, 1, seed + 1),
              *gx0 = sqt_hrand(n, -1, 1, seed + 2);
        for (int kind = SQ_ACT_RELU; kind <= SQ_ACT_RELU6; kind++) {
            float *y = sqt_hvec(n), *gx = sqt_hdup(gx0, n);
            c->act_fwd((sq_act_kind)kind, n, x, y);
            c->act_bwd((sq_act_kind)kind, n, x, gy, gx);
            float *dx = sqt_dput(g, x, B), *dy = sqt_dput(g, NULL, B), *dgy = sqt_dput(g, gy, B),
                  *dgx = sqt_dput(g, gx0, B);
            g->act_fwd((sq_act_kind)kind, n, dx, dy);
            g->act_bwd((sq_act_kind)kind, n, dx, dgy, dgx);
            sqt_gpu_ok(g);
            float *ry = sqt_fetch(g, dy, n, "act y"), *rgx = sqt_fetch(g, dgx, n, "act gx");
            sqt_expect_equal(kind ? "relu6 y" : "relu y", ry, y, n);
            sqt_expect_equal(kind ? "relu6 gx" : "relu gx", rgx, gx, n);
            g->free((char *)dx - SQT_GUARD);
            g->free((char *)dgy - SQT_GUARD);
            free(y); free(gx); free(ry); free(rgx);
        }
        /* add (also in place), axpy, scale, fill */
        float *y = sqt_hvec(n), *acc = sqt_hdup(gx0, n), *sc = sqt_hdup(x, n), *fl = sqt_hvec(n);
        c->add_fwd(n, x, gy, y);
        c->axpy(n, -0.37f, x, acc);
        c->scale(n, 1.7f, sc);
        c->fill(n, 0.25f, fl);
        float *dx = sqt_dput(g, x, B), *dgy = sqt_dput(g, gy, B), *dy = sqt_dput(g, NULL, B),
              *dacc = sqt_dput(g, gx0, B), *dsc = sqt_dput(g, x, B), *dfl = sqt_dput(g, NULL, B),
              *dip = sqt_dput(g, x, B);
        g->add_fwd(n, dx, dgy, dy);
        g->add_fwd(n, dip, dgy, dip);
        g->axpy(n, -0.37f, dx, dacc);
        g->scale(n, 1.7f, dsc);
        g->fill(n, 0.25f, dfl);
        sqt_gpu_ok(g);
        float *ry = sqt_fetch(g, dy, n, "add"), *rip = sqt_fetch(g, dip, n, "add in place"),
              *racc = sqt_fetch(g, dacc, n, "axpy"), *rsc = sqt_fetch(g, dsc, n, "scale"),
              *rfl = sqt_fetch(g, dfl, n, "fill");
        sqt_expect_equal("add", ry, y, n);
        sqt_expect_equal("add in place", rip, y, n);
        /* axpy: the GPU may fuse y + a*x into one FMA (one rounding instead of two) */
        sqt_expect_close("axpy", racc, acc, n, 1e-6, 1e-6, seed);
        sqt_expect_equal("scale", rsc, sc, n);
        sqt_expect_equal("fill", rfl, fl, n);
        g->free((char *)dx - SQT_GUARD);
        g->free((char *)dgy - SQT_GUARD);
        free(x); free(gy); free(gx0); free(y); free(acc); free(sc); free(fl);
        free(ry); free(rip); free(racc); free(rsc); free(rfl);
    }
}

/* ---- batch norm ---- */

Test(cuda, batchnorm_train_eval_backward_match_cpu)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    const sq_backend *c = sq_backend_cpu();
    /* (n, c, hw): single element, BatchNorm1d, odd sizes, several slices per channel */
    static const int shapes[][3] = {{1, 1, 1}, {7, 5, 1}, {2, 3, 5}, {5, 3, 17}, {3, 2, 5000},
                                    {4, 16, 1024}, {2, 64, 9}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int n = shapes[s][0], ch = shapes[s][1], hw = shapes[s][2];
        size_t m = (size_t)n * ch * hw, B = m * sizeof(float), C = ch * sizeof(float);
        uint64_t seed = 200 + s;
        float *x = sqt_hrand(m, -3, 5, seed), *gy = sqt_hrand(m, -1, 1, seed + 1),
              *gamma = sqt_hrand(ch, 0.5f, 1.5f, seed + 2), *beta = sqt_hrand(ch, -0.5f, 0.5f, seed + 3),
              *rm0 = sqt_hrand(ch, -0.1f, 0.1f, seed + 4), *rv0 = sqt_hrand(ch, 0.5f, 1.5f, seed + 5),
              *gx0 = sqt_hrand(m, -1, 1, seed + 6), *gg0 = sqt_hrand(ch, -1, 1, seed + 7),
              *gb0 = sqt_hrand(ch, -1, 1, seed + 8);
        float *y = sqt_hvec(m), *ye = sqt_hvec(m), *rm = sqt_hdup(rm0, ch), *rv = sqt_hdup(rv0, ch),
              *sm = sqt_hvec(ch), *si = sqt_hvec(ch), *gx = sqt_hdup(gx0, m), *gg = sqt_hdup(gg0, ch),
              *gb = sqt_hdup(gb0, ch);
        c->bn_fwd_train(n, ch, hw, x, gamma, beta, rm, rv, 0.1f, 1e-5f, y, sm, si);
        c->bn_fwd_eval(n, ch, hw, x, gamma, beta, rm, rv, 1e-5f, ye);
        c->bn_bwd(n, ch, hw, x, gy, gamma, sm, si, gx, gg, gb);

        float *dx = sqt_dput(g, x, B), *dgy = sqt_dput(g, gy, B), *dga = sqt_dput(g, gamma, C),
              *dbe = sqt_dput(g, beta, C), *drm = sqt_dput(g, rm0, C), *drv = sqt_dput(g, rv0, C),
              *dy = sqt_dput(g, NULL, B), *dye = sqt_dput(g, NULL, B), *dsm = sqt_dput(g, NULL, C),
              *dsi = sqt_dput(g, NULL, C), *dgx = sqt_dput(g, gx0, B), *dgg = sqt_dput(g, gg0, C),
              *dgb = sqt_dput(g, gb0, C);
        g->bn_fwd_train(n, ch, hw, dx, dga, dbe, drm, drv, 0.1f, 1e-5f, dy, dsm, dsi);
        g->bn_fwd_eval(n, ch, hw, dx, dga, dbe, drm, drv, 1e-5f, dye);
        g->bn_bwd(n, ch, hw, dx, dgy, dga, dsm, dsi, dgx, dgg, dgb);
        sqt_gpu_ok(g);
        /* statistics in double on both sides; outputs differ by float rounding of a few ops */
        const double at = 1e-5, rt = 1e-5;
        float *r;
        r = sqt_fetch(g, dy, m, "bn y"); sqt_expect_close("bn y", r, y, m, at, rt, seed); free(r);
        r = sqt_fetch(g, dye, m, "bn eval y"); sqt_expect_close("bn eval y", r, ye, m, at, rt, seed); free(r);
        r = sqt_fetch(g, drm, ch, "run_mean"); sqt_expect_close("run_mean", r, rm, ch, at, rt, seed); free(r);
        r = sqt_fetch(g, drv, ch, "run_var"); sqt_expect_close("run_var", r, rv, ch, at, rt, seed); free(r);
        r = sqt_fetch(g, dsm, ch, "save_mean"); sqt_expect_close("save_mean", r, sm, ch, at, rt, seed); free(r);
        r = sqt_fetch(g, dsi, ch, "save_invstd");
        sqt_expect_close("save_invstd", r, si, ch, at, 1e-4, seed); /* m = 1: var 0, invstd ~316 */
        free(r);
        /* gradient sums over m = n*hw terms of size ~1 */
        double gat = 1e-6 * (double)n * hw + 1e-5;
        r = sqt_fetch(g, dgx, m, "bn gx"); sqt_expect_close("bn gx", r, gx, m, 1e-4, 1e-4, seed); free(r);
        r = sqt_fetch(g, dgg, ch, "ggamma"); sqt_expect_close("ggamma", r, gg, ch, gat, 1e-5, seed); free(r);
        r = sqt_fetch(g, dgb, ch, "gbeta"); sqt_expect_close("gbeta", r, gb, ch, gat, 1e-5, seed); free(r);
        g->free((char *)dx - SQT_GUARD); g->free((char *)dgy - SQT_GUARD);
        g->free((char *)dga - SQT_GUARD); g->free((char *)dbe - SQT_GUARD);
        free(x); free(gy); free(gamma); free(beta); free(rm0); free(rv0); free(gx0); free(gg0);
        free(gb0); free(y); free(ye); free(rm); free(rv); free(sm); free(si); free(gx); free(gg);
        free(gb);
    }
}

/* ---- pooling ---- */

Test(cuda, pooling_and_gap_match_cpu)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    const sq_backend *c = sq_backend_cpu();
    /* (n, c, h, w, k, stride, pad): overlapping windows, padding, odd sizes, 1x1 */
    static const int shapes[][7] = {{2, 3, 7, 7, 3, 2, 1}, {1, 1, 1, 1, 1, 1, 0},
                                    {3, 5, 11, 13, 2, 2, 0}, {2, 4, 9, 8, 3, 1, 1},
                                    {1, 2, 32, 32, 2, 2, 0}, {2, 3, 5, 7, 5, 3, 2}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *p = shapes[s];
        int n = p[0], ch = p[1], h = p[2], w = p[3], k = p[4], st = p[5], pd = p[6];
        int oh = (h + 2 * pd - k) / st + 1, ow = (w + 2 * pd - k) / st + 1;
        size_t ni = (size_t)n * ch * h * w, no = (size_t)n * ch * oh * ow;
        uint64_t seed = 300 + s;
        float *x = sqt_hrand(ni, -2, 2, seed), *gy = sqt_hrand(no, -1, 1, seed + 1),
              *gx0 = sqt_hrand(ni, -1, 1, seed + 2);
        for (int kind = SQ_POOL_MAX; kind <= SQ_POOL_AVG; kind++) {
            float *y = sqt_hvec(no), *gx = sqt_hdup(gx0, ni);
            int32_t *am = calloc(no, sizeof(int32_t)), *ram = calloc(no, sizeof(int32_t));
            c->pool_fwd((sq_pool_kind)kind, n, ch, h, w, k, st, pd, x, y, am);
            c->pool_bwd((sq_pool_kind)kind, n, ch, h, w, k, st, pd, gy, am, gx);
            float *dx = sqt_dput(g, x, ni * 4), *dy = sqt_dput(g, NULL, no * 4), *dgy = sqt_dput(g, gy, no * 4),
                  *dgx = sqt_dput(g, gx0, ni * 4);
            int32_t *dam = sqt_dput(g, NULL, no * sizeof(int32_t));
            g->pool_fwd((sq_pool_kind)kind, n, ch, h, w, k, st, pd, dx, dy, dam);
            g->pool_bwd((sq_pool_kind)kind, n, ch, h, w, k, st, pd, dgy, dam, dgx);
            sqt_gpu_ok(g);
            float *ry = sqt_fetch(g, dy, no, "pool y"), *rgx = sqt_fetch(g, dgx, ni, "pool gx");
            sqt_dget_free(g, ram, dam, no * sizeof(int32_t), "pool argmax");
            if (kind == SQ_POOL_MAX) {
                sqt_expect_equal("maxpool y", ry, y, no);
                for (size_t i = 0; i < no; i++)
                    cr_expect_eq(ram[i], am[i], "argmax[%zu]: got %d want %d", i, ram[i], am[i]);
                /* gather order differs from the CPU's scatter order: sums of <= k*k terms */
                sqt_expect_close("maxpool gx", rgx, gx, ni, 1e-6, 1e-6, seed);
            } else {
                sqt_expect_close("avgpool y", ry, y, no, 1e-6, 1e-6, seed);
                sqt_expect_close("avgpool gx", rgx, gx, ni, 1e-6, 1e-6, seed);
            }
            g->free((char *)dx - SQT_GUARD);
            g->free((char *)dgy - SQT_GUARD);
            free(y); free(gx); free(am); free(ram); free(ry); free(rgx);
        }
        free(x); free(gy); free(gx0);
    }
    static const int gshapes[][3] = {{3, 7, 1}, {2, 5, 49}, {1, 1, 1}, {4, 64, 64}, {2, 3, 1001}};
    for (size_t s = 0; s < sizeof gshapes / sizeof gshapes[0]; s++) {
        int n = gshapes[s][0], ch = gshapes[s][1], hw = gshapes[s][2];
        size_t ni = (size_t)n * ch * hw, no = (size_t)n * ch;
        uint64_t seed = 350 + s;
        float *x = sqt_hrand(ni, -2, 2, seed), *gy = sqt_hrand(no, -1, 1, seed + 1),
              *gx0 = sqt_hrand(ni, -1, 1, seed + 2), *y = sqt_hvec(no), *gx = sqt_hdup(gx0, ni);
        c->gap_fwd(n, ch, hw, x, y);
        c->gap_bwd(n, ch, hw, gy, gx);
        float *dx = sqt_dput(g, x, ni * 4), *dy = sqt_dput(g, NULL, no * 4), *dgy = sqt_dput(g, gy, no * 4),
              *dgx = sqt_dput(g, gx0, ni * 4);
        g->gap_fwd(n, ch, hw, dx, dy);
        g->gap_bwd(n, ch, hw, dgy, dgx);
        sqt_gpu_ok(g);
        float *ry = sqt_fetch(g, dy, no, "gap y"), *rgx = sqt_fetch(g, dgx, ni, "gap gx");
        /* mean of hw terms of size <= 2, summed in a different order */
        sqt_expect_close("gap y", ry, y, no, 1e-6 * sqrt((double)hw), 1e-5, seed);
        sqt_expect_close("gap gx", rgx, gx, ni, 1e-6, 1e-6, seed);
        g->free((char *)dx - SQT_GUARD);
        g->free((char *)dgy - SQT_GUARD);
        free(x); free(gy); free(gx0); free(y); free(gx); free(ry); free(rgx);
    }
}

/* ---- linear (cuBLAS, column-major transposes) ---- */

Test(cuda, linear_matches_cpu)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    const sq_backend *c = sq_backend_cpu();
    static const int shapes[][3] = {{1, 1, 1}, {3, 7, 5}, {17, 33, 10}, {64, 130, 100},
                                    {256, 64, 10}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (int bias = 0; bias < 2; bias++) {
            int n = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
            size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out;
            uint64_t seed = 400 + 2 * s + bias;
            float *x = sqt_hrand(nx, -1, 1, seed), *w = sqt_hrand(nw, -1, 1, seed + 1),
                  *b = sqt_hrand(out, -1, 1, seed + 2), *gy = sqt_hrand(ny, -1, 1, seed + 3),
                  *gx0 = sqt_hrand(nx, -1, 1, seed + 4), *gw0 = sqt_hrand(nw, -1, 1, seed + 5),
                  *gb0 = sqt_hrand(out, -1, 1, seed + 6);
            float *y = sqt_hvec(ny), *gx = sqt_hdup(gx0, nx), *gw = sqt_hdup(gw0, nw), *gb = sqt_hdup(gb0, out);
            c->linear_fwd(n, in, out, x, w, bias ? b : NULL, y);
            c->linear_bwd(n, in, out, x, w, gy, gx, gw, bias ? gb : NULL);
            float *dx = sqt_dput(g, x, nx * 4), *dw = sqt_dput(g, w, nw * 4), *db = sqt_dput(g, b, out * 4),
                  *dgy = sqt_dput(g, gy, ny * 4), *dy = sqt_dput(g, NULL, ny * 4),
                  *dgx = sqt_dput(g, gx0, nx * 4), *dgw = sqt_dput(g, gw0, nw * 4),
                  *dgb = sqt_dput(g, gb0, out * 4);
            g->linear_fwd(n, in, out, dx, dw, bias ? db : NULL, dy);
            g->linear_bwd(n, in, out, dx, dw, dgy, dgx, dgw, bias ? dgb : NULL);
            sqt_gpu_ok(g);
            /* dot products of `in`, `out` or `n` terms in [-1, 1], summed in other orders */
            float *r;
            r = sqt_fetch(g, dy, ny, "linear y");
            sqt_expect_close("linear y", r, y, ny, 2e-6 * in, 1e-5, seed); free(r);
            r = sqt_fetch(g, dgx, nx, "linear gx");
            sqt_expect_close("linear gx", r, gx, nx, 2e-6 * out, 1e-5, seed); free(r);
            r = sqt_fetch(g, dgw, nw, "linear gw");
            sqt_expect_close("linear gw", r, gw, nw, 2e-6 * n, 1e-5, seed); free(r);
            r = sqt_fetch(g, dgb, out, "linear gb");
            sqt_expect_close("linear gb", r, gb, out, 2e-6 * n, 1e-5, seed); free(r);
            g->free((char *)dx - SQT_GUARD); g->free((char *)dw - SQT_GUARD);
            g->free((char *)db - SQT_GUARD); g->free((char *)dgy - SQT_GUARD);
            free(x); free(w); free(b); free(gy); free(gx0); free(gw0); free(gb0);
            free(y); free(gx); free(gw); free(gb);
        }
    }
}

/* ---- convolution (cuDNN) ---- */

Test(cuda, conv_matches_cpu)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    const sq_backend *c = sq_backend_cpu();
    /* n, c, h, w, k, r, s, stride, pad, groups, bias */
    static const int cases[][11] = {
        {1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1},   {2, 3, 7, 5, 4, 3, 3, 1, 1, 1, 1},
        {2, 4, 7, 7, 6, 3, 3, 2, 1, 1, 0},   {2, 5, 5, 3, 7, 1, 1, 1, 0, 1, 1},
        {2, 4, 6, 5, 6, 3, 3, 1, 1, 2, 1},   {4, 8, 9, 9, 8, 3, 3, 1, 1, 8, 1},
        {3, 24, 6, 6, 12, 1, 1, 1, 0, 3, 1}, {3, 16, 16, 16, 32, 3, 3, 2, 1, 1, 0},
        {2, 3, 32, 32, 16, 3, 3, 1, 1, 1, 0}, {1, 2, 11, 13, 3, 5, 5, 2, 2, 1, 1},
        {3, 3, 16, 16, 8, 3, 3, 1, 1, 1, 1}, /* bias over planes of 256: the float4 path */
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int *p = cases[ci];
        sq_conv_shape cs;
        cr_assert_eq(sq_conv_shape_init(&cs, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8],
                                        p[9]), SQ_OK);
        int bias = p[10];
        size_t nx = (size_t)cs.n * cs.c * cs.h * cs.w, nw = (size_t)cs.k * (cs.c / cs.groups) * cs.r * cs.s,
               ny = (size_t)cs.n * cs.k * cs.oh * cs.ow;
        uint64_t seed = 500 + ci;
        float *x = sqt_hrand(nx, -1, 1, seed), *w = sqt_hrand(nw, -1, 1, seed + 1),
              *b = sqt_hrand(cs.k, -1, 1, seed + 2), *gy = sqt_hrand(ny, -1, 1, seed + 3),
              *gx0 = sqt_hrand(nx, -1, 1, seed + 4), *gw0 = sqt_hrand(nw, -1, 1, seed + 5),
              *gb0 = sqt_hrand(cs.k, -1, 1, seed + 6);
        float *y = sqt_hvec(ny), *gx = sqt_hdup(gx0, nx), *gw = sqt_hdup(gw0, nw), *gb = sqt_hdup(gb0, cs.k);
        size_t cws = c->conv_ws_bytes(&cs);
        void *hws = cws ? malloc(cws) : NULL;
        c->conv2d_fwd(&cs, x, w, bias ? b : NULL, y, hws);
        c->conv2d_bwd(&cs, x, w, gy, gx, gw, bias ? gb : NULL, hws);
        free(hws);

        size_t gws = g->conv_ws_bytes(&cs);
        void *dws = gws ? g->alloc(gws) : NULL;
        float *dx = sqt_dput(g, x, nx * 4), *dw = sqt_dput(g, w, nw * 4), *db = sqt_dput(g, b, cs.k * 4),
              *dgy = sqt_dput(g, gy, ny * 4), *dy = sqt_dput(g, NULL, ny * 4),
              *dy2 = sqt_dput(g, NULL, ny * 4), *dgx = sqt_dput(g, gx0, nx * 4),
              *dgw = sqt_dput(g, gw0, nw * 4), *dgb = sqt_dput(g, gb0, cs.k * 4);
        g->conv2d_fwd(&cs, dx, dw, bias ? db : NULL, dy, dws);
        g->conv2d_fwd(&cs, dx, dw, bias ? db : NULL, dy2, NULL); /* internal workspace */
        g->conv2d_bwd(&cs, dx, dw, dgy, dgx, dgw, bias ? dgb : NULL, dws);
        sqt_gpu_ok(g);
        /* sums of C/groups*R*S (forward, gw: N*OH*OW; gx: K/groups*R*S) products in [-1, 1];
           FMA kernels, but Winograd/FFT algorithms round differently: 1e-5 per term */
        double terms_y = (double)(cs.c / cs.groups) * cs.r * cs.s;
        double terms_w = (double)cs.n * cs.oh * cs.ow, terms_x = (double)(cs.k / cs.groups) * cs.r * cs.s;
        float *r, *r2;
        r = sqt_fetch(g, dy, ny, "conv y");
        r2 = sqt_fetch(g, dy2, ny, "conv y (internal ws)");
        sqt_expect_close("conv y", r, y, ny, 1e-5 * terms_y, 1e-4, seed);
        sqt_expect_equal("conv y, caller vs internal workspace", r2, r, ny);
        free(r); free(r2);
        r = sqt_fetch(g, dgx, nx, "conv gx");
        sqt_expect_close("conv gx", r, gx, nx, 1e-5 * terms_x, 1e-4, seed); free(r);
        r = sqt_fetch(g, dgw, nw, "conv gw");
        sqt_expect_close("conv gw", r, gw, nw, 1e-5 * terms_w, 1e-4, seed); free(r);
        r = sqt_fetch(g, dgb, cs.k, "conv gb");
        sqt_expect_close("conv gb", r, gb, cs.k, 1e-6 * terms_w, 1e-5, seed); free(r);
        g->free((char *)dx - SQT_GUARD); g->free((char *)dw - SQT_GUARD);
        g->free((char *)db - SQT_GUARD); g->free((char *)dgy - SQT_GUARD);
        if (dws) g->free(dws);
        free(x); free(w); free(b); free(gy); free(gx0); free(gw0); free(gb0);
        free(y); free(gx); free(gw); free(gb);
    }
}

/* ---- structural ---- */

Test(cuda, structural_ops_are_exact)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    const sq_backend *c = sq_backend_cpu();
    /* option-A shortcut, odd spatial sizes included */
    static const int sh[][5] = {{2, 16, 32, 32, 32}, {3, 3, 7, 5, 7}, {1, 1, 1, 1, 1}, {2, 4, 9, 9, 4}};
    for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
        int n = sh[s][0], ch = sh[s][1], h = sh[s][2], w = sh[s][3], k = sh[s][4];
        size_t ni = (size_t)n * ch * h * w, no = (size_t)n * k * ((h + 1) / 2) * ((w + 1) / 2);
        float *x = sqt_hrand(ni, -1, 1, 600 + s), *gy = sqt_hrand(no, -1, 1, 610 + s),
              *gx0 = sqt_hrand(ni, -1, 1, 620 + s), *y = sqt_hvec(no), *gx = sqt_hdup(gx0, ni);
        c->shortcut_a_fwd(n, ch, h, w, k, x, y);
        c->shortcut_a_bwd(n, ch, h, w, k, gy, gx);
        float *dx = sqt_dput(g, x, ni * 4), *dy = sqt_dput(g, NULL, no * 4), *dgy = sqt_dput(g, gy, no * 4),
              *dgx = sqt_dput(g, gx0, ni * 4);
        g->shortcut_a_fwd(n, ch, h, w, k, dx, dy);
        g->shortcut_a_bwd(n, ch, h, w, k, dgy, dgx);
        sqt_gpu_ok(g);
        float *ry = sqt_fetch(g, dy, no, "shortcut y"), *rgx = sqt_fetch(g, dgx, ni, "shortcut gx");
        sqt_expect_equal("shortcut y", ry, y, no);
        sqt_expect_equal("shortcut gx", rgx, gx, ni);
        g->free((char *)dx - SQT_GUARD); g->free((char *)dgy - SQT_GUARD);
        free(x); free(gy); free(gx0); free(y); free(gx); free(ry); free(rgx);
    }
    /* concat (including one empty side) and shuffle */
    static const int cc[][4] = {{2, 3, 5, 7}, {1, 1, 1, 1}, {3, 0, 4, 5}, {2, 58, 58, 49}};
    for (size_t s = 0; s < sizeof cc / sizeof cc[0]; s++) {
        int n = cc[s][0], c1 = cc[s][1], c2 = cc[s][2], hw = cc[s][3];
        size_t na = (size_t)n * c1 * hw, nb = (size_t)n * c2 * hw, ny = na + nb;
        float *a = sqt_hrand(na, -1, 1, 630 + s), *b = sqt_hrand(nb, -1, 1, 640 + s),
              *gy = sqt_hrand(ny, -1, 1, 650 + s), *ga0 = sqt_hrand(na, -1, 1, 660 + s),
              *gb0 = sqt_hrand(nb, -1, 1, 670 + s), *y = sqt_hvec(ny), *ga = sqt_hdup(ga0, na),
              *gb = sqt_hdup(gb0, nb);
        c->concat_fwd(n, c1, c2, hw, a, b, y);
        c->concat_bwd(n, c1, c2, hw, gy, ga, gb);
        float *da = sqt_dput(g, a, na * 4), *db = sqt_dput(g, b, nb * 4), *dy = sqt_dput(g, NULL, ny * 4),
              *dgy = sqt_dput(g, gy, ny * 4), *dga = sqt_dput(g, ga0, na * 4), *dgb = sqt_dput(g, gb0, nb * 4);
        g->concat_fwd(n, c1, c2, hw, da, db, dy);
        g->concat_bwd(n, c1, c2, hw, dgy, dga, dgb);
        sqt_gpu_ok(g);
        float *ry = sqt_fetch(g, dy, ny, "concat y"), *rga = sqt_fetch(g, dga, na, "concat ga"),
              *rgb = sqt_fetch(g, dgb, nb, "concat gb");
        sqt_expect_equal("concat y", ry, y, ny);
        sqt_expect_equal("concat ga", rga, ga, na);
        sqt_expect_equal("concat gb", rgb, gb, nb);
        g->free((char *)da - SQT_GUARD); g->free((char *)db - SQT_GUARD); g->free((char *)dgy - SQT_GUARD);
        free(a); free(b); free(gy); free(ga0); free(gb0); free(y); free(ga); free(gb);
        free(ry); free(rga); free(rgb);
    }
    static const int sf[][4] = {{2, 6, 5, 2}, {1, 1, 1, 1}, {3, 116, 49, 2}, {2, 12, 7, 3}};
    for (size_t s = 0; s < sizeof sf / sizeof sf[0]; s++) {
        int n = sf[s][0], ch = sf[s][1], hw = sf[s][2], gr = sf[s][3];
        size_t m = (size_t)n * ch * hw;
        float *x = sqt_hrand(m, -1, 1, 680 + s), *gy = sqt_hrand(m, -1, 1, 690 + s),
              *gx0 = sqt_hrand(m, -1, 1, 700 + s), *y = sqt_hvec(m), *gx = sqt_hdup(gx0, m);
        c->shuffle_fwd(n, ch, hw, gr, x, y);
        c->shuffle_bwd(n, ch, hw, gr, gy, gx);
        float *dx = sqt_dput(g, x, m * 4), *dy = sqt_dput(g, NULL, m * 4), *dgy = sqt_dput(g, gy, m * 4),
              *dgx = sqt_dput(g, gx0, m * 4);
        g->shuffle_fwd(n, ch, hw, gr, dx, dy);
        g->shuffle_bwd(n, ch, hw, gr, dgy, dgx);
        sqt_gpu_ok(g);
        float *ry = sqt_fetch(g, dy, m, "shuffle y"), *rgx = sqt_fetch(g, dgx, m, "shuffle gx");
        sqt_expect_equal("shuffle y", ry, y, m);
        sqt_expect_equal("shuffle gx", rgx, gx, m);
        g->free((char *)dx - SQT_GUARD); g->free((char *)dgy - SQT_GUARD);
        free(x); free(gy); free(gx0); free(y); free(gx); free(ry); free(rgx);
    }
}

Test(cuda, dropout_mask_identical_to_cpu)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    const sq_backend *c = sq_backend_cpu();
    static const float ps[] = {0.0f, 0.2f, 0.5f, 1.0f};
    for (size_t si = 0; si < SQT_NSIZES; si++)
        for (size_t pi = 0; pi < 4; pi++) {
            size_t n = sqt_sizes[si];
            float p = ps[pi];
            uint64_t seed = 0x5eed0000ull + si * 7 + pi;
            float *x = sqt_hrand(n, -1, 1, seed), *gy = sqt_hrand(n, -1, 1, seed + 1),
                  *gx0 = sqt_hrand(n, -1, 1, seed + 2), *y = sqt_hvec(n), *gx = sqt_hdup(gx0, n);
            uint8_t *mask = calloc(n, 1), *rmask = calloc(n, 1);
            c->dropout_fwd(n, p, seed, x, y, mask);
            c->dropout_bwd(n, p, mask, gy, gx);
            float *dx = sqt_dput(g, x, n * 4), *dy = sqt_dput(g, NULL, n * 4), *dgy = sqt_dput(g, gy, n * 4),
                  *dgx = sqt_dput(g, gx0, n * 4);
            uint8_t *dm = sqt_dput(g, NULL, n);
            g->dropout_fwd(n, p, seed, dx, dy, dm);
            g->dropout_bwd(n, p, dm, dgy, dgx);
            sqt_gpu_ok(g);
            float *ry = sqt_fetch(g, dy, n, "dropout y"), *rgx = sqt_fetch(g, dgx, n, "dropout gx");
            sqt_dget_free(g, rmask, dm, n, "dropout mask");
            cr_expect(memcmp(mask, rmask, n) == 0, "dropout mask differs from the CPU (n %zu p %g)",
                      n, p);
            sqt_expect_equal("dropout y", ry, y, n);
            sqt_expect_equal("dropout gx", rgx, gx, n);
            g->free((char *)dx - SQT_GUARD); g->free((char *)dgy - SQT_GUARD);
            free(x); free(gy); free(gx0); free(y); free(gx); free(mask); free(rmask);
            free(ry); free(rgx);
        }
}
