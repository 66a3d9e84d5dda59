/* test_cuda_ops.c: Criterion suite "cuda": every CUDA op against the CPU reference backend on
   random data with awkward sizes (1, primes, not multiples of the block size or of 4, unaligned
   starts), fake-quant parameter gradients included; guard bytes around every device output
   (allocated on both sides, filled with a sentinel, checked untouched after the op); gradient
   outputs start non-zero so that accumulation (+=) is what is checked; run-to-run determinism of
   the reductions. Built into its own binary (build/<dir>/sqakd_cuda_tests); without a GPU every
   test SKIPS (never passes). cuDNN is kept off TF32 (SQAKD_TF32=0) so convolutions compare with
   FP32 tolerances. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sqakd/backend.h"
#include "sqakd/quant_math.h"
#include "util_check.h"

#define GUARD 256          /* guard bytes on each side of a device buffer (keeps 256-B alignment) */
#define SENTINEL 0xA5

static void setup(void) { setenv("SQAKD_TF32", "0", 1); }

TestSuite(cuda, .init = setup, .timeout = 60);

/* ---- device buffers with guards ---- */

/* device copy of host[0..bytes) (zeros if host is NULL) between two sentinel guards */
static void *dput(const sq_backend *g, const void *host, size_t bytes)
{
    size_t total = bytes + 2 * GUARD;
    unsigned char *h = malloc(total);
    cr_assert(h);
    memset(h, SENTINEL, total);
    if (host) memcpy(h + GUARD, host, bytes);
    else memset(h + GUARD, 0, bytes);
    unsigned char *d = g->alloc(total);
    cr_assert(d, "device alloc of %zu bytes failed: %s", total, sq_last_error());
    g->copy_h2d(d, h, total);
    free(h);
    return d + GUARD;
}

/* copies the payload back to host, checks both guards, frees the device buffer */
static void dget_free(const sq_backend *g, void *host, void *d, size_t bytes, const char *what)
{
    size_t total = bytes + 2 * GUARD;
    unsigned char *h = malloc(total);
    cr_assert(h);
    g->copy_d2h(h, (unsigned char *)d - GUARD, total);
    size_t bad = 0;
    for (size_t i = 0; i < GUARD; i++) bad += (h[i] != SENTINEL) + (h[GUARD + bytes + i] != SENTINEL);
    cr_expect_eq(bad, 0, "%s: %zu guard bytes overwritten around a %zu-byte buffer", what, bad,
                 bytes);
    if (host) memcpy(host, h + GUARD, bytes);
    free(h);
    g->free((unsigned char *)d - GUARD);
}

static void gpu_ok(const sq_backend *g)
{
    g->sync();
#ifdef SQ_HAVE_CUDA
    sq_status st = sq_cuda_last_status();
    cr_assert_eq(st, SQ_OK, "CUDA backend error: %s", sq_last_error());
#endif
}

static float *hvec(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

static float *hrand(size_t n, float lo, float hi, uint64_t seed)
{
    float *x = hvec(n);
    sqt_fill_uniform(x, n, lo, hi, seed);
    return x;
}

static float *hdup(const float *x, size_t n)
{
    float *y = hvec(n);
    memcpy(y, x, n * sizeof(float));
    return y;
}

/* fetch a device float buffer into a new host array (guards checked, device buffer freed) */
static float *fetch(const sq_backend *g, float *d, size_t n, const char *what)
{
    float *h = hvec(n);
    dget_free(g, h, d, n * sizeof(float), what);
    return h;
}

static void expect_close(const char *what, const float *got, const float *ref, size_t n,
                         double atol, double rtol, uint64_t seed)
{
    size_t bad = sqt_check_close(what, got, ref, n, atol, rtol, seed);
    cr_expect_eq(bad, 0, "%s: %zu of %zu elements differ from the CPU (seed %llu)", what, bad, n,
                 (unsigned long long)seed);
}

static void expect_equal(const char *what, const float *got, const float *ref, size_t n)
{
    size_t bad = sqt_check_equal(what, got, ref, n);
    cr_expect_eq(bad, 0, "%s: %zu of %zu elements not bit-identical to the CPU", what, bad, n);
}

static const size_t k_sizes[] = {1, 7, 31, 257, 1023, 4099, 100003};
#define NSIZES (sizeof k_sizes / sizeof k_sizes[0])

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
    float *h = hrand(n, -1, 1, 1);
    g->copy_d2h(h, z, n * sizeof(float));
    for (size_t i = 0; i < n; i++) cr_assert_eq(h[i], 0.0f, "alloc not zeroed at %zu", i);
    g->free(z);
    float *src = hrand(n, -1, 1, 2);
    float *a = dput(g, src, n * sizeof(float)), *b = dput(g, NULL, n * sizeof(float));
    g->copy_d2d(b, a, n * sizeof(float));
    g->memset0(a, 3 * sizeof(float));
    gpu_ok(g);
    float *ra = fetch(g, a, n, "memset0"), *rb = fetch(g, b, n, "copy_d2d");
    expect_equal("copy_d2d", rb, src, n);
    for (int i = 0; i < 3; i++) cr_expect_eq(ra[i], 0.0f, "memset0[%d]", i);
    expect_equal("memset0 tail", ra + 3, src + 3, n - 3);
    free(h); free(src); free(ra); free(rb);
}

#ifdef SQ_HAVE_CUDA
Test(cuda, failing_call_is_sticky_until_cleared)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    sq_cuda_clear_status();
    float host[4] = {0};
    g->copy_h2d(NULL, host, sizeof host); /* invalid destination: cudaMemcpy fails at once */
    cr_assert_neq(sq_cuda_last_status(), SQ_OK, "a failing cudaMemcpy was not recorded");
    cr_expect(strstr(sq_last_error(), "cudaMemcpy") != NULL, "message lacks the statement: %s",
              sq_last_error());
    float *d = g->alloc(16);
    g->fill(4, 1.0f, d); /* a later successful op keeps the first error */
    g->free(d);
    g->sync();
    cr_expect_neq(sq_cuda_last_status(), SQ_OK, "the sticky error vanished");
    sq_cuda_clear_status();
    cr_expect_eq(sq_cuda_last_status(), SQ_OK);
    gpu_ok(g);
}
#endif

/* ---- elementwise ---- */

Test(cuda, activations_and_elementwise_match_cpu)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    const sq_backend *c = sq_backend_cpu();
    for (size_t si = 0; si < NSIZES; si++) {
        size_t n = k_sizes[si], B = n * sizeof(float);
        uint64_t seed = 100 + si;
        float *x = hrand(n, -2, 8, seed), *gy = hrand(n, -1, 1, seed + 1),
              *gx0 = hrand(n, -1, 1, seed + 2);
        for (int kind = SQ_ACT_RELU; kind <= SQ_ACT_RELU6; kind++) {
            float *y = hvec(n), *gx = hdup(gx0, n);
            c->act_fwd((sq_act_kind)kind, n, x, y);
            c->act_bwd((sq_act_kind)kind, n, x, gy, gx);
            float *dx = dput(g, x, B), *dy = dput(g, NULL, B), *dgy = dput(g, gy, B),
                  *dgx = dput(g, gx0, B);
            g->act_fwd((sq_act_kind)kind, n, dx, dy);
            g->act_bwd((sq_act_kind)kind, n, dx, dgy, dgx);
            gpu_ok(g);
            float *ry = fetch(g, dy, n, "act y"), *rgx = fetch(g, dgx, n, "act gx");
            expect_equal(kind ? "relu6 y" : "relu y", ry, y, n);
            expect_equal(kind ? "relu6 gx" : "relu gx", rgx, gx, n);
            g->free((char *)dx - GUARD);
            g->free((char *)dgy - GUARD);
            free(y); free(gx); free(ry); free(rgx);
        }
        /* add (also in place), axpy, scale, fill */
        float *y = hvec(n), *acc = hdup(gx0, n), *sc = hdup(x, n), *fl = hvec(n);
        c->add_fwd(n, x, gy, y);
        c->axpy(n, -0.37f, x, acc);
        c->scale(n, 1.7f, sc);
        c->fill(n, 0.25f, fl);
        float *dx = dput(g, x, B), *dgy = dput(g, gy, B), *dy = dput(g, NULL, B),
              *dacc = dput(g, gx0, B), *dsc = dput(g, x, B), *dfl = dput(g, NULL, B),
              *dip = dput(g, x, B);
        g->add_fwd(n, dx, dgy, dy);
        g->add_fwd(n, dip, dgy, dip);
        g->axpy(n, -0.37f, dx, dacc);
        g->scale(n, 1.7f, dsc);
        g->fill(n, 0.25f, dfl);
        gpu_ok(g);
        float *ry = fetch(g, dy, n, "add"), *rip = fetch(g, dip, n, "add in place"),
              *racc = fetch(g, dacc, n, "axpy"), *rsc = fetch(g, dsc, n, "scale"),
              *rfl = fetch(g, dfl, n, "fill");
        expect_equal("add", ry, y, n);
        expect_equal("add in place", rip, y, n);
        /* axpy: the GPU may fuse y + a*x into one FMA (one rounding instead of two) */
        expect_close("axpy", racc, acc, n, 1e-6, 1e-6, seed);
        expect_equal("scale", rsc, sc, n);
        expect_equal("fill", rfl, fl, n);
        g->free((char *)dx - GUARD);
        g->free((char *)dgy - GUARD);
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
        float *x = hrand(m, -3, 5, seed), *gy = hrand(m, -1, 1, seed + 1),
              *gamma = hrand(ch, 0.5f, 1.5f, seed + 2), *beta = hrand(ch, -0.5f, 0.5f, seed + 3),
              *rm0 = hrand(ch, -0.1f, 0.1f, seed + 4), *rv0 = hrand(ch, 0.5f, 1.5f, seed + 5),
              *gx0 = hrand(m, -1, 1, seed + 6), *gg0 = hrand(ch, -1, 1, seed + 7),
              *gb0 = hrand(ch, -1, 1, seed + 8);
        float *y = hvec(m), *ye = hvec(m), *rm = hdup(rm0, ch), *rv = hdup(rv0, ch),
              *sm = hvec(ch), *si = hvec(ch), *gx = hdup(gx0, m), *gg = hdup(gg0, ch),
              *gb = hdup(gb0, ch);
        c->bn_fwd_train(n, ch, hw, x, gamma, beta, rm, rv, 0.1f, 1e-5f, y, sm, si);
        c->bn_fwd_eval(n, ch, hw, x, gamma, beta, rm, rv, 1e-5f, ye);
        c->bn_bwd(n, ch, hw, x, gy, gamma, sm, si, gx, gg, gb);

        float *dx = dput(g, x, B), *dgy = dput(g, gy, B), *dga = dput(g, gamma, C),
              *dbe = dput(g, beta, C), *drm = dput(g, rm0, C), *drv = dput(g, rv0, C),
              *dy = dput(g, NULL, B), *dye = dput(g, NULL, B), *dsm = dput(g, NULL, C),
              *dsi = dput(g, NULL, C), *dgx = dput(g, gx0, B), *dgg = dput(g, gg0, C),
              *dgb = dput(g, gb0, C);
        g->bn_fwd_train(n, ch, hw, dx, dga, dbe, drm, drv, 0.1f, 1e-5f, dy, dsm, dsi);
        g->bn_fwd_eval(n, ch, hw, dx, dga, dbe, drm, drv, 1e-5f, dye);
        g->bn_bwd(n, ch, hw, dx, dgy, dga, dsm, dsi, dgx, dgg, dgb);
        gpu_ok(g);
        /* statistics in double on both sides; outputs differ by float rounding of a few ops */
        const double at = 1e-5, rt = 1e-5;
        float *r;
        r = fetch(g, dy, m, "bn y"); expect_close("bn y", r, y, m, at, rt, seed); free(r);
        r = fetch(g, dye, m, "bn eval y"); expect_close("bn eval y", r, ye, m, at, rt, seed); free(r);
        r = fetch(g, drm, ch, "run_mean"); expect_close("run_mean", r, rm, ch, at, rt, seed); free(r);
        r = fetch(g, drv, ch, "run_var"); expect_close("run_var", r, rv, ch, at, rt, seed); free(r);
        r = fetch(g, dsm, ch, "save_mean"); expect_close("save_mean", r, sm, ch, at, rt, seed); free(r);
        r = fetch(g, dsi, ch, "save_invstd");
        expect_close("save_invstd", r, si, ch, at, 1e-4, seed); /* m = 1: var 0, invstd ~316 */
        free(r);
        /* gradient sums over m = n*hw terms of size ~1 */
        double gat = 1e-6 * (double)n * hw + 1e-5;
        r = fetch(g, dgx, m, "bn gx"); expect_close("bn gx", r, gx, m, 1e-4, 1e-4, seed); free(r);
        r = fetch(g, dgg, ch, "ggamma"); expect_close("ggamma", r, gg, ch, gat, 1e-5, seed); free(r);
        r = fetch(g, dgb, ch, "gbeta"); expect_close("gbeta", r, gb, ch, gat, 1e-5, seed); free(r);
        g->free((char *)dx - GUARD); g->free((char *)dgy - GUARD);
        g->free((char *)dga - GUARD); g->free((char *)dbe - GUARD);
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
        float *x = hrand(ni, -2, 2, seed), *gy = hrand(no, -1, 1, seed + 1),
              *gx0 = hrand(ni, -1, 1, seed + 2);
        for (int kind = SQ_POOL_MAX; kind <= SQ_POOL_AVG; kind++) {
            float *y = hvec(no), *gx = hdup(gx0, ni);
            int32_t *am = calloc(no, sizeof(int32_t)), *ram = calloc(no, sizeof(int32_t));
            c->pool_fwd((sq_pool_kind)kind, n, ch, h, w, k, st, pd, x, y, am);
            c->pool_bwd((sq_pool_kind)kind, n, ch, h, w, k, st, pd, gy, am, gx);
            float *dx = dput(g, x, ni * 4), *dy = dput(g, NULL, no * 4), *dgy = dput(g, gy, no * 4),
                  *dgx = dput(g, gx0, ni * 4);
            int32_t *dam = dput(g, NULL, no * sizeof(int32_t));
            g->pool_fwd((sq_pool_kind)kind, n, ch, h, w, k, st, pd, dx, dy, dam);
            g->pool_bwd((sq_pool_kind)kind, n, ch, h, w, k, st, pd, dgy, dam, dgx);
            gpu_ok(g);
            float *ry = fetch(g, dy, no, "pool y"), *rgx = fetch(g, dgx, ni, "pool gx");
            dget_free(g, ram, dam, no * sizeof(int32_t), "pool argmax");
            if (kind == SQ_POOL_MAX) {
                expect_equal("maxpool y", ry, y, no);
                for (size_t i = 0; i < no; i++)
                    cr_expect_eq(ram[i], am[i], "argmax[%zu]: got %d want %d", i, ram[i], am[i]);
                /* gather order differs from the CPU's scatter order: sums of <= k*k terms */
                expect_close("maxpool gx", rgx, gx, ni, 1e-6, 1e-6, seed);
            } else {
                expect_close("avgpool y", ry, y, no, 1e-6, 1e-6, seed);
                expect_close("avgpool gx", rgx, gx, ni, 1e-6, 1e-6, seed);
            }
            g->free((char *)dx - GUARD);
            g->free((char *)dgy - GUARD);
            free(y); free(gx); free(am); free(ram); free(ry); free(rgx);
        }
        free(x); free(gy); free(gx0);
    }
    static const int gshapes[][3] = {{3, 7, 1}, {2, 5, 49}, {1, 1, 1}, {4, 64, 64}, {2, 3, 1001}};
    for (size_t s = 0; s < sizeof gshapes / sizeof gshapes[0]; s++) {
        int n = gshapes[s][0], ch = gshapes[s][1], hw = gshapes[s][2];
        size_t ni = (size_t)n * ch * hw, no = (size_t)n * ch;
        uint64_t seed = 350 + s;
        float *x = hrand(ni, -2, 2, seed), *gy = hrand(no, -1, 1, seed + 1),
              *gx0 = hrand(ni, -1, 1, seed + 2), *y = hvec(no), *gx = hdup(gx0, ni);
        c->gap_fwd(n, ch, hw, x, y);
        c->gap_bwd(n, ch, hw, gy, gx);
        float *dx = dput(g, x, ni * 4), *dy = dput(g, NULL, no * 4), *dgy = dput(g, gy, no * 4),
              *dgx = dput(g, gx0, ni * 4);
        g->gap_fwd(n, ch, hw, dx, dy);
        g->gap_bwd(n, ch, hw, dgy, dgx);
        gpu_ok(g);
        float *ry = fetch(g, dy, no, "gap y"), *rgx = fetch(g, dgx, ni, "gap gx");
        /* mean of hw terms of size <= 2, summed in a different order */
        expect_close("gap y", ry, y, no, 1e-6 * sqrt((double)hw), 1e-5, seed);
        expect_close("gap gx", rgx, gx, ni, 1e-6, 1e-6, seed);
        g->free((char *)dx - GUARD);
        g->free((char *)dgy - GUARD);
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
            float *x = hrand(nx, -1, 1, seed), *w = hrand(nw, -1, 1, seed + 1),
                  *b = hrand(out, -1, 1, seed + 2), *gy = hrand(ny, -1, 1, seed + 3),
                  *gx0 = hrand(nx, -1, 1, seed + 4), *gw0 = hrand(nw, -1, 1, seed + 5),
                  *gb0 = hrand(out, -1, 1, seed + 6);
            float *y = hvec(ny), *gx = hdup(gx0, nx), *gw = hdup(gw0, nw), *gb = hdup(gb0, out);
            c->linear_fwd(n, in, out, x, w, bias ? b : NULL, y);
            c->linear_bwd(n, in, out, x, w, gy, gx, gw, bias ? gb : NULL);
            float *dx = dput(g, x, nx * 4), *dw = dput(g, w, nw * 4), *db = dput(g, b, out * 4),
                  *dgy = dput(g, gy, ny * 4), *dy = dput(g, NULL, ny * 4),
                  *dgx = dput(g, gx0, nx * 4), *dgw = dput(g, gw0, nw * 4),
                  *dgb = dput(g, gb0, out * 4);
            g->linear_fwd(n, in, out, dx, dw, bias ? db : NULL, dy);
            g->linear_bwd(n, in, out, dx, dw, dgy, dgx, dgw, bias ? dgb : NULL);
            gpu_ok(g);
            /* dot products of `in`, `out` or `n` terms in [-1, 1], summed in other orders */
            float *r;
            r = fetch(g, dy, ny, "linear y");
            expect_close("linear y", r, y, ny, 2e-6 * in, 1e-5, seed); free(r);
            r = fetch(g, dgx, nx, "linear gx");
            expect_close("linear gx", r, gx, nx, 2e-6 * out, 1e-5, seed); free(r);
            r = fetch(g, dgw, nw, "linear gw");
            expect_close("linear gw", r, gw, nw, 2e-6 * n, 1e-5, seed); free(r);
            r = fetch(g, dgb, out, "linear gb");
            expect_close("linear gb", r, gb, out, 2e-6 * n, 1e-5, seed); free(r);
            g->free((char *)dx - GUARD); g->free((char *)dw - GUARD);
            g->free((char *)db - GUARD); g->free((char *)dgy - GUARD);
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
        float *x = hrand(nx, -1, 1, seed), *w = hrand(nw, -1, 1, seed + 1),
              *b = hrand(cs.k, -1, 1, seed + 2), *gy = hrand(ny, -1, 1, seed + 3),
              *gx0 = hrand(nx, -1, 1, seed + 4), *gw0 = hrand(nw, -1, 1, seed + 5),
              *gb0 = hrand(cs.k, -1, 1, seed + 6);
        float *y = hvec(ny), *gx = hdup(gx0, nx), *gw = hdup(gw0, nw), *gb = hdup(gb0, cs.k);
        size_t cws = c->conv_ws_bytes(&cs);
        void *hws = cws ? malloc(cws) : NULL;
        c->conv2d_fwd(&cs, x, w, bias ? b : NULL, y, hws);
        c->conv2d_bwd(&cs, x, w, gy, gx, gw, bias ? gb : NULL, hws);
        free(hws);

        size_t gws = g->conv_ws_bytes(&cs);
        void *dws = gws ? g->alloc(gws) : NULL;
        float *dx = dput(g, x, nx * 4), *dw = dput(g, w, nw * 4), *db = dput(g, b, cs.k * 4),
              *dgy = dput(g, gy, ny * 4), *dy = dput(g, NULL, ny * 4),
              *dy2 = dput(g, NULL, ny * 4), *dgx = dput(g, gx0, nx * 4),
              *dgw = dput(g, gw0, nw * 4), *dgb = dput(g, gb0, cs.k * 4);
        g->conv2d_fwd(&cs, dx, dw, bias ? db : NULL, dy, dws);
        g->conv2d_fwd(&cs, dx, dw, bias ? db : NULL, dy2, NULL); /* internal workspace */
        g->conv2d_bwd(&cs, dx, dw, dgy, dgx, dgw, bias ? dgb : NULL, dws);
        gpu_ok(g);
        /* sums of C/groups*R*S (forward, gw: N*OH*OW; gx: K/groups*R*S) products in [-1, 1];
           FMA kernels, but Winograd/FFT algorithms round differently: 1e-5 per term */
        double terms_y = (double)(cs.c / cs.groups) * cs.r * cs.s;
        double terms_w = (double)cs.n * cs.oh * cs.ow, terms_x = (double)(cs.k / cs.groups) * cs.r * cs.s;
        float *r, *r2;
        r = fetch(g, dy, ny, "conv y");
        r2 = fetch(g, dy2, ny, "conv y (internal ws)");
        expect_close("conv y", r, y, ny, 1e-5 * terms_y, 1e-4, seed);
        expect_equal("conv y, caller vs internal workspace", r2, r, ny);
        free(r); free(r2);
        r = fetch(g, dgx, nx, "conv gx");
        expect_close("conv gx", r, gx, nx, 1e-5 * terms_x, 1e-4, seed); free(r);
        r = fetch(g, dgw, nw, "conv gw");
        expect_close("conv gw", r, gw, nw, 1e-5 * terms_w, 1e-4, seed); free(r);
        r = fetch(g, dgb, cs.k, "conv gb");
        expect_close("conv gb", r, gb, cs.k, 1e-6 * terms_w, 1e-5, seed); free(r);
        g->free((char *)dx - GUARD); g->free((char *)dw - GUARD);
        g->free((char *)db - GUARD); g->free((char *)dgy - GUARD);
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
        float *x = hrand(ni, -1, 1, 600 + s), *gy = hrand(no, -1, 1, 610 + s),
              *gx0 = hrand(ni, -1, 1, 620 + s), *y = hvec(no), *gx = hdup(gx0, ni);
        c->shortcut_a_fwd(n, ch, h, w, k, x, y);
        c->shortcut_a_bwd(n, ch, h, w, k, gy, gx);
        float *dx = dput(g, x, ni * 4), *dy = dput(g, NULL, no * 4), *dgy = dput(g, gy, no * 4),
              *dgx = dput(g, gx0, ni * 4);
        g->shortcut_a_fwd(n, ch, h, w, k, dx, dy);
        g->shortcut_a_bwd(n, ch, h, w, k, dgy, dgx);
        gpu_ok(g);
        float *ry = fetch(g, dy, no, "shortcut y"), *rgx = fetch(g, dgx, ni, "shortcut gx");
        expect_equal("shortcut y", ry, y, no);
        expect_equal("shortcut gx", rgx, gx, ni);
        g->free((char *)dx - GUARD); g->free((char *)dgy - GUARD);
        free(x); free(gy); free(gx0); free(y); free(gx); free(ry); free(rgx);
    }
    /* concat (including one empty side) and shuffle */
    static const int cc[][4] = {{2, 3, 5, 7}, {1, 1, 1, 1}, {3, 0, 4, 5}, {2, 58, 58, 49}};
    for (size_t s = 0; s < sizeof cc / sizeof cc[0]; s++) {
        int n = cc[s][0], c1 = cc[s][1], c2 = cc[s][2], hw = cc[s][3];
        size_t na = (size_t)n * c1 * hw, nb = (size_t)n * c2 * hw, ny = na + nb;
        float *a = hrand(na, -1, 1, 630 + s), *b = hrand(nb, -1, 1, 640 + s),
              *gy = hrand(ny, -1, 1, 650 + s), *ga0 = hrand(na, -1, 1, 660 + s),
              *gb0 = hrand(nb, -1, 1, 670 + s), *y = hvec(ny), *ga = hdup(ga0, na),
              *gb = hdup(gb0, nb);
        c->concat_fwd(n, c1, c2, hw, a, b, y);
        c->concat_bwd(n, c1, c2, hw, gy, ga, gb);
        float *da = dput(g, a, na * 4), *db = dput(g, b, nb * 4), *dy = dput(g, NULL, ny * 4),
              *dgy = dput(g, gy, ny * 4), *dga = dput(g, ga0, na * 4), *dgb = dput(g, gb0, nb * 4);
        g->concat_fwd(n, c1, c2, hw, da, db, dy);
        g->concat_bwd(n, c1, c2, hw, dgy, dga, dgb);
        gpu_ok(g);
        float *ry = fetch(g, dy, ny, "concat y"), *rga = fetch(g, dga, na, "concat ga"),
              *rgb = fetch(g, dgb, nb, "concat gb");
        expect_equal("concat y", ry, y, ny);
        expect_equal("concat ga", rga, ga, na);
        expect_equal("concat gb", rgb, gb, nb);
        g->free((char *)da - GUARD); g->free((char *)db - GUARD); g->free((char *)dgy - GUARD);
        free(a); free(b); free(gy); free(ga0); free(gb0); free(y); free(ga); free(gb);
        free(ry); free(rga); free(rgb);
    }
    static const int sf[][4] = {{2, 6, 5, 2}, {1, 1, 1, 1}, {3, 116, 49, 2}, {2, 12, 7, 3}};
    for (size_t s = 0; s < sizeof sf / sizeof sf[0]; s++) {
        int n = sf[s][0], ch = sf[s][1], hw = sf[s][2], gr = sf[s][3];
        size_t m = (size_t)n * ch * hw;
        float *x = hrand(m, -1, 1, 680 + s), *gy = hrand(m, -1, 1, 690 + s),
              *gx0 = hrand(m, -1, 1, 700 + s), *y = hvec(m), *gx = hdup(gx0, m);
        c->shuffle_fwd(n, ch, hw, gr, x, y);
        c->shuffle_bwd(n, ch, hw, gr, gy, gx);
        float *dx = dput(g, x, m * 4), *dy = dput(g, NULL, m * 4), *dgy = dput(g, gy, m * 4),
              *dgx = dput(g, gx0, m * 4);
        g->shuffle_fwd(n, ch, hw, gr, dx, dy);
        g->shuffle_bwd(n, ch, hw, gr, dgy, dgx);
        gpu_ok(g);
        float *ry = fetch(g, dy, m, "shuffle y"), *rgx = fetch(g, dgx, m, "shuffle gx");
        expect_equal("shuffle y", ry, y, m);
        expect_equal("shuffle gx", rgx, gx, m);
        g->free((char *)dx - GUARD); g->free((char *)dgy - GUARD);
        free(x); free(gy); free(gx0); free(y); free(gx); free(ry); free(rgx);
    }
}

Test(cuda, dropout_mask_identical_to_cpu)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    const sq_backend *c = sq_backend_cpu();
    static const float ps[] = {0.0f, 0.2f, 0.5f, 1.0f};
    for (size_t si = 0; si < NSIZES; si++)
        for (size_t pi = 0; pi < 4; pi++) {
            size_t n = k_sizes[si];
            float p = ps[pi];
            uint64_t seed = 0x5eed0000ull + si * 7 + pi;
            float *x = hrand(n, -1, 1, seed), *gy = hrand(n, -1, 1, seed + 1),
                  *gx0 = hrand(n, -1, 1, seed + 2), *y = hvec(n), *gx = hdup(gx0, n);
            uint8_t *mask = calloc(n, 1), *rmask = calloc(n, 1);
            c->dropout_fwd(n, p, seed, x, y, mask);
            c->dropout_bwd(n, p, mask, gy, gx);
            float *dx = dput(g, x, n * 4), *dy = dput(g, NULL, n * 4), *dgy = dput(g, gy, n * 4),
                  *dgx = dput(g, gx0, n * 4);
            uint8_t *dm = dput(g, NULL, n);
            g->dropout_fwd(n, p, seed, dx, dy, dm);
            g->dropout_bwd(n, p, dm, dgy, dgx);
            gpu_ok(g);
            float *ry = fetch(g, dy, n, "dropout y"), *rgx = fetch(g, dgx, n, "dropout gx");
            dget_free(g, rmask, dm, n, "dropout mask");
            cr_expect(memcmp(mask, rmask, n) == 0, "dropout mask differs from the CPU (n %zu p %g)",
                      n, p);
            expect_equal("dropout y", ry, y, n);
            expect_equal("dropout gx", rgx, gx, n);
            g->free((char *)dx - GUARD); g->free((char *)dgy - GUARD);
            free(x); free(gy); free(gx0); free(y); free(gx); free(mask); free(rmask);
            free(ry); free(rgx);
        }
}

/* ---- losses ---- */

Test(cuda, kl_test_vector)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    const float zt[2] = {0.0f, 0.0f}, zs[2] = {4.0f, 0.0f};
    float *dzt = dput(g, zt, 8), *dzs = dput(g, zs, 8), *dl = dput(g, NULL, 4),
          *dg = dput(g, NULL, 8);
    g->kl_fwd_bwd(1, 2, dzt, dzs, 4.0f, 1.0f, dl, dg);
    gpu_ok(g);
    float *l = fetch(g, dl, 1, "kl loss"), *gr = fetch(g, dg, 2, "kl grad");
    /* method.md section 2 test vector, printed to 6-7 digits */
    cr_expect(fabsf(l[0] - 1.921832f) <= 2e-6f, "loss %.9g want 1.921832", l[0]);
    cr_expect(fabsf(gr[0] - 0.924234f) <= 2e-6f, "grad[0] %.9g want 0.924234", gr[0]);
    cr_expect(fabsf(gr[1] + 0.924234f) <= 2e-6f, "grad[1] %.9g want -0.924234", gr[1]);
    g->free((char *)dzt - GUARD); g->free((char *)dzs - GUARD);
    free(l); free(gr);
}

Test(cuda, losses_and_argmax_match_cpu_and_are_deterministic)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    const sq_backend *c = sq_backend_cpu();
    /* rows x classes: single, tiny, more rows than one block's warps, > 1024 blocks of rows */
    static const int shapes[][2] = {{1, 1}, {1, 10}, {3, 37}, {257, 10}, {64, 1000}, {9000, 7}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int n = shapes[s][0], k = shapes[s][1];
        size_t m = (size_t)n * k;
        uint64_t seed = 800 + s;
        float *zt = hrand(m, -6, 6, seed), *zs = hrand(m, -6, 6, seed + 1);
        int32_t *lab = calloc(n, sizeof(int32_t));
        for (int i = 0; i < n; i++) lab[i] = i % 5 == 3 ? -1 : (int)((i * 7919u) % (unsigned)k);
        float lkl = 0, lce = 0, *gkl = hvec(m), *gce = hvec(m);
        int32_t *am = calloc(n, sizeof(int32_t)), *ram = calloc(n, sizeof(int32_t));
        c->kl_fwd_bwd(n, k, zt, zs, 4.0f, 1.0f, &lkl, gkl);
        c->softmax_ce(n, k, zs, lab, 0.5f, &lce, gce);
        c->argmax(n, k, zs, am);

        float *dzt = dput(g, zt, m * 4), *dzs = dput(g, zs, m * 4), *dl = dput(g, NULL, 16),
              *dgkl = dput(g, NULL, m * 4), *dgce = dput(g, NULL, m * 4);
        int32_t *dlab = dput(g, lab, n * sizeof(int32_t)), *dam = dput(g, NULL, n * sizeof(int32_t));
        g->kl_fwd_bwd(n, k, dzt, dzs, 4.0f, 1.0f, dl, dgkl);
        g->kl_fwd_bwd(n, k, dzt, dzs, 4.0f, 1.0f, dl + 1, NULL); /* loss only */
        g->kl_fwd_bwd(n, k, dzt, dzs, 4.0f, 1.0f, dl + 2, dgkl);  /* again: determinism */
        g->softmax_ce(n, k, dzs, dlab, 0.5f, dl + 3, dgce);
        g->argmax(n, k, dzs, dam);
        gpu_ok(g);
        float *rl = fetch(g, dl, 4, "losses"), *rgkl = fetch(g, dgkl, m, "kl grad"),
              *rgce = fetch(g, dgce, m, "ce grad");
        dget_free(g, ram, dam, n * sizeof(int32_t), "argmax");
        /* the CPU sums in double with exp/log in double, the GPU in float per element with
           double accumulation: relative 1e-5 of the loss, 1e-6 absolute for the gradients */
        expect_close("kl loss", rl, &lkl, 1, 1e-6, 1e-5, seed);
        expect_equal("kl loss without gradient", rl + 1, rl, 1);
        expect_equal("kl loss, second run", rl + 2, rl, 1);
        expect_close("ce loss", rl + 3, &lce, 1, 1e-6, 1e-5, seed);
        expect_close("kl grad", rgkl, gkl, m, 1e-6, 1e-4, seed);
        expect_close("ce grad", rgce, gce, m, 1e-6, 1e-4, seed);
        for (int i = 0; i < n; i++)
            cr_expect_eq(ram[i], am[i], "argmax[%d]: got %d want %d", i, ram[i], am[i]);
        g->free((char *)dzt - GUARD); g->free((char *)dzs - GUARD);
        g->free((char *)dlab - GUARD);
        free(zt); free(zs); free(lab); free(gkl); free(gce); free(am); free(ram);
        free(rl); free(rgkl); free(rgce);
    }
}

/* ---- fake quantization ---- */

/* bound on the rounding difference scale of the parameter-gradient sums: every per-element
   term is at most C |gy_i| (C from the quantizer's formula, quant_math.h) and the two backends'
   terms differ by a few ulp of that (FMA contraction, e.g. LSQ's gy round(v) - v g_x), so
   |GPU - CPU| <= ~1e-7 C sum |gy|; the tests allow 1e-6 C sum |gy| */
static double fq_grad_scale(const sq_quant_cfg *cfg, size_t n, const float *qp, const float *gy)
{
    sq_qm_ctx k;
    sq_qm_ctx_init(&k, cfg, n);
    double c = 1.0, sum = 0.0;
    if (cfg->kind == SQ_QUANT_EWGS) c = 2.0 * (1.0 + cfg->delta) / fabs((double)qp[1] - qp[0]);
    if (cfg->kind == SQ_QUANT_LSQ) c = k.gscale * ((k.qn > k.qp ? k.qn : k.qp) + 1.0) * (1.0 + cfg->delta);
    for (size_t i = 0; i < n; i++) sum += fabs(gy[i]);
    return c * sum;
}

static void fq_params(sq_quant_kind kind, int weight, int bits, float qp[2])
{
    qp[0] = qp[1] = 0.0f;
    if (kind == SQ_QUANT_EWGS) {
        qp[0] = weight ? -0.8f : 0.1f;
        qp[1] = weight ? 0.9f : 1.3f;
    } else if (kind == SQ_QUANT_PACT) {
        qp[0] = 1.1f;
    } else if (kind == SQ_QUANT_LSQ) {
        qp[0] = 1.2f / (float)(weight ? (1 << (bits - 1)) : (1 << bits) - 1);
    }
}

/* one kind, both roles, bits 1/2/4/8, delta 0 and 0.3, sizes incl. unaligned starts */
static void fq_case(const sq_backend *g, sq_quant_kind kind)
{
    const sq_backend *c = sq_backend_cpu();
    static const size_t sizes[] = {1, 5, 1023, 4099, 65539, 262147};
    static const int bits[] = {1, 2, 4, 8};
    for (int weight = 0; weight < 2; weight++)
        for (int bi = 0; bi < 4; bi++)
            for (int di = 0; di < 2; di++)
                for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
                    size_t n = sizes[si];
                    int off = (int)(si & 1); /* odd cases start 1 float past alignment */
                    uint64_t seed = 900 + (uint64_t)kind * 1000 + weight * 100 + bi * 10 + di + si * 3;
                    sq_quant_cfg cfg = {kind, weight ? SQ_QROLE_WEIGHT : SQ_QROLE_ACT, bits[bi],
                                        weight, di ? 0.3f : 0.0f, 0.0f};
                    float qp[2], gqp0[2] = {0.25f, -0.5f};
                    fq_params(kind, weight, bits[bi], qp);
                    float *x = hrand(n + off, weight ? -1.2f : -0.3f, weight ? 1.2f : 1.6f, seed),
                          *gy = hrand(n + off, -1, 1, seed + 1), *gx0 = hrand(n + off, -1, 1, seed + 2);
                    float *y = hvec(n), *gx = hdup(gx0 + off, n), gqp[2] = {gqp0[0], gqp0[1]},
                          scr[SQ_QUANT_SCRATCH] = {0};
                    c->fakequant_fwd(&cfg, n, x + off, qp, y, scr);
                    c->fakequant_bwd(&cfg, n, x + off, qp, gy + off, gx, gqp, scr);

                    size_t B = (n + off) * 4;
                    float *dx = dput(g, x, B), *dgy = dput(g, gy, B), *dy = dput(g, NULL, B),
                          *dgx = dput(g, gx0, B), *dqp = dput(g, qp, 8), *dgqp = dput(g, gqp0, 8),
                          *dscr = dput(g, NULL, SQ_QUANT_SCRATCH * 4);
                    g->fakequant_fwd(&cfg, n, dx + off, dqp, dy + off, dscr);
                    g->fakequant_bwd(&cfg, n, dx + off, dqp, dgy + off, dgx + off, dgqp, dscr);
                    gpu_ok(g);
                    float *ry = fetch(g, dy, n + off, "fq y"), *rgx = fetch(g, dgx, n + off, "fq gx"),
                          *rgqp = fetch(g, dgqp, 2, "fq gqp"),
                          *rscr = fetch(g, dscr, SQ_QUANT_SCRATCH, "fq scratch");
                    char what[96];
                    snprintf(what, sizeof what, "%s %s %d-bit delta %.1f n %zu+%d",
                             sq_quant_kind_name(kind), weight ? "w" : "a", bits[bi], cfg.delta, n, off);
                    sq_qm_ctx k;
                    sq_qm_ctx_init(&k, &cfg, n);
                    int dorefa_w = sq_qm_needs_maxabs(&k);
                    if (dorefa_w)
                        /* M = max|tanh|: device tanhf vs glibc tanhf, 2 ulp */
                        expect_close(what, rscr, scr, 1, 0.0, 3e-7, seed);
                    /* forward: same formula, IEEE division, rintf: identical levels, except DoReFa
                       weights where tanhf differences may move an element lying on a rounding
                       boundary by one level (allowed for at most 1 in 1000 elements) */
                    size_t bad = sqt_check_equal(what, ry + off, y, n);
                    size_t allowed = dorefa_w ? n / 1000 + 1 : 0;
                    cr_expect(bad <= allowed, "%s: %zu forward values differ (allowed %zu)", what,
                              bad, allowed);
                    /* backward: FMA contraction on the GPU changes last bits of g_c; level flips
                       as above change the EWGS term delta |g| (c - q) for DoReFa weights */
                    bad = sqt_check_close(what, rgx + off, gx, n, 1e-6, 1e-5, seed);
                    cr_expect(bad <= allowed, "%s: %zu gx values differ (allowed %zu)", what, bad,
                              allowed);
                    /* parameter gradients: sums of n terms; rounding differences per term of a
                       few ulp, so the error is bounded by ~1e-6 of the sum of |terms| */
                    double gscale = fq_grad_scale(&cfg, n, qp, gy + off);
                    int np = sq_quant_nparams(&cfg);
                    for (int j = 0; j < 2; j++) {
                        if (j >= np) {
                            cr_expect_eq(rgqp[j], gqp0[j], "%s: gqp[%d] touched (%d params)",
                                         what, j, np);
                            continue;
                        }
                        double tol = 1e-6 * gscale + 1e-6 * fabs(gqp[j]) + 1e-7;
                        cr_expect(fabs(rgqp[j] - gqp[j]) <= tol,
                                  "%s: gqp[%d] got %.9g want %.9g (tol %g, seed %llu)", what, j,
                                  rgqp[j], gqp[j], tol, (unsigned long long)seed);
                    }
                    g->free((char *)dx - GUARD); g->free((char *)dgy - GUARD);
                    g->free((char *)dqp - GUARD);
                    free(x); free(gy); free(gx0); free(y); free(gx); free(ry); free(rgx);
                    free(rgqp); free(rscr);
                }
}

Test(cuda, fakequant_ewgs_matches_cpu)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    fq_case(g, SQ_QUANT_EWGS);
}

Test(cuda, fakequant_pact_matches_cpu)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    fq_case(g, SQ_QUANT_PACT);
}

Test(cuda, fakequant_lsq_matches_cpu)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    fq_case(g, SQ_QUANT_LSQ);
}

Test(cuda, fakequant_dorefa_matches_cpu)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    fq_case(g, SQ_QUANT_DOREFA);
}

Test(cuda, fakequant_param_grads_are_deterministic_and_null_safe)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    size_t n = (size_t)3 << 20; /* enough for the full 1024-block reduction grid */
    sq_quant_cfg cfg = {SQ_QUANT_EWGS, SQ_QROLE_ACT, 2, 0, 0.2f, 0.0f};
    float qp[2] = {0.0f, 1.0f};
    float *x = hrand(n, -0.5f, 1.5f, 77), *gy = hrand(n, -1, 1, 78);
    float *dx = dput(g, x, n * 4), *dgy = dput(g, gy, n * 4), *dqp = dput(g, qp, 8),
          *dg = dput(g, NULL, 6 * 4), *dgx = dput(g, NULL, n * 4);
    g->fakequant_bwd(&cfg, n, dx, dqp, dgy, NULL, dg, NULL);       /* gx not wanted */
    g->fakequant_bwd(&cfg, n, dx, dqp, dgy, dgx, dg + 2, NULL);
    g->fakequant_bwd(&cfg, n, dx, dqp, dgy, dgx, NULL, NULL);      /* gqp not wanted */
    g->fakequant_bwd(&cfg, n, dx, dqp, dgy, NULL, dg + 4, NULL);
    gpu_ok(g);
    float *r = fetch(g, dg, 6, "gqp runs");
    for (int j = 0; j < 2; j++) {
        cr_expect_eq(r[2 + j], r[j], "run 2 gqp[%d] %.9g differs from run 1 %.9g", j, r[2 + j], r[j]);
        cr_expect_eq(r[4 + j], r[j], "run 3 gqp[%d] %.9g differs from run 1 %.9g", j, r[4 + j], r[j]);
    }
    float *rgx = fetch(g, dgx, n, "gx");
    float *ref = hvec(n);
    float gq[2] = {0, 0};
    sq_backend_cpu()->fakequant_bwd(&cfg, n, x, qp, gy, ref, gq, NULL);
    for (size_t i = 0; i < n; i++) ref[i] *= 2.0f; /* two runs accumulated into gx */
    expect_close("gx after two accumulating runs", rgx, ref, n, 2e-6, 1e-5, 77);
    g->free((char *)dx - GUARD); g->free((char *)dgy - GUARD); g->free((char *)dqp - GUARD);
    free(x); free(gy); free(r); free(rgx); free(ref);
}

Test(cuda, absscale_matches_cpu)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    const sq_backend *c = sq_backend_cpu();
    for (size_t si = 0; si < NSIZES; si++) {
        size_t n = k_sizes[si];
        uint64_t seed = 1100 + si;
        float s = si & 1 ? -0.7f : 1.3f, gs0 = 0.5f, gs = gs0;
        float *z = hrand(n, -2, 2, seed), *gy = hrand(n, -1, 1, seed + 1),
              *gz0 = hrand(n, -1, 1, seed + 2), *y = hvec(n), *gz = hdup(gz0, n);
        c->absscale_fwd(n, &s, z, y);
        c->absscale_bwd(n, &s, z, gy, gz, &gs);
        float *ds = dput(g, &s, 4), *dz = dput(g, z, n * 4), *dgy = dput(g, gy, n * 4),
              *dy = dput(g, NULL, n * 4), *dgz = dput(g, gz0, n * 4), *dgs = dput(g, &gs0, 4);
        g->absscale_fwd(n, ds, dz, dy);
        g->absscale_bwd(n, ds, dz, dgy, dgz, dgs);
        gpu_ok(g);
        float *ry = fetch(g, dy, n, "absscale y"), *rgz = fetch(g, dgz, n, "absscale gz"),
              *rgs = fetch(g, dgs, 1, "absscale gs");
        expect_equal("absscale y", ry, y, n);
        expect_close("absscale gz", rgz, gz, n, 1e-6, 1e-6, seed);
        /* sum of n products bounded by 2: 1e-6 relative to that bound */
        expect_close("absscale gs", rgs, &gs, 1, 2e-6 * n, 1e-5, seed);
        g->free((char *)ds - GUARD); g->free((char *)dz - GUARD); g->free((char *)dgy - GUARD);
        free(z); free(gy); free(gz0); free(y); free(gz); free(ry); free(rgz); free(rgs);
    }
}

/* ---- optimizers ---- */

Test(cuda, optimizers_match_cpu)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    const sq_backend *c = sq_backend_cpu();
    for (size_t si = 0; si < NSIZES; si++) {
        size_t n = k_sizes[si], B = n * 4;
        uint64_t seed = 1200 + si;
        float *p0 = hrand(n, -1, 1, seed), *gr = hrand(n, -1, 1, seed + 1),
              *m0 = hrand(n, -0.1f, 0.1f, seed + 2), *v0 = hrand(n, 0.0f, 0.01f, seed + 3);
        float *p = hdup(p0, n), *m = hdup(m0, n), *v = hdup(v0, n), *ps = hdup(p0, n),
              *pa = hdup(p0, n), *ma = hdup(m0, n);
        c->sgd_step(n, p, gr, m, 0.1f, 0.9f, 1e-4f);
        c->sgd_step(n, ps, gr, NULL, 0.1f, 0.0f, 1e-4f);
        for (int t = 1; t <= 3; t++) c->adam_step(n, pa, gr, ma, v, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, t);
        float *dp = dput(g, p0, B), *dm = dput(g, m0, B), *dgr = dput(g, gr, B),
              *dps = dput(g, p0, B), *dpa = dput(g, p0, B), *dma = dput(g, m0, B),
              *dv = dput(g, v0, B);
        g->sgd_step(n, dp, dgr, dm, 0.1f, 0.9f, 1e-4f);
        g->sgd_step(n, dps, dgr, NULL, 0.1f, 0.0f, 1e-4f);
        for (int t = 1; t <= 3; t++) g->adam_step(n, dpa, dgr, dma, dv, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, t);
        gpu_ok(g);
        /* same operation order; the GPU may fuse multiply-adds (one rounding fewer) */
        float *r;
        r = fetch(g, dp, n, "sgd p"); expect_close("sgd p", r, p, n, 1e-6, 1e-6, seed); free(r);
        r = fetch(g, dm, n, "sgd m"); expect_close("sgd m", r, m, n, 1e-6, 1e-6, seed); free(r);
        r = fetch(g, dps, n, "sgd p (no momentum)");
        expect_close("sgd p (no momentum)", r, ps, n, 1e-6, 1e-6, seed); free(r);
        r = fetch(g, dpa, n, "adam p"); expect_close("adam p", r, pa, n, 1e-6, 1e-6, seed); free(r);
        r = fetch(g, dma, n, "adam m"); expect_close("adam m", r, ma, n, 1e-7, 1e-6, seed); free(r);
        r = fetch(g, dv, n, "adam v"); expect_close("adam v", r, v, n, 1e-9, 1e-5, seed); free(r);
        g->free((char *)dgr - GUARD);
        free(p0); free(gr); free(m0); free(v0); free(p); free(m); free(v); free(ps); free(pa);
        free(ma);
    }
}
