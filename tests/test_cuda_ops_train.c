/* test_cuda_ops_train.c: Criterion suite "cuda" (declared in test_cuda_ops_layers.c, whose .init
   keeps cuDNN off TF32): the training-objective and update CUDA ops against the CPU reference
   backend: the KL test vector, KL/cross-entropy losses and argmax (run-to-run determinism of the
   reductions), fake quantization of every kind with its parameter gradients (unaligned starts,
   deterministic and NULL-safe), absscale, SGD and Adam steps. Guarded device buffers as in
   test_cuda_ops_layers.c; without a GPU every test SKIPS (never passes). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sqakd/backend.h"
#include "sqakd/quant_math.h"
#include "util_check.h"
#include "util_fixtures.h"
#include "cuda_hooks.h"

/* ---- losses ---- */

Test(cuda, kl_test_vector)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    const float zt[2] = {0.0f, 0.0f}, zs[2] = {4.0f, 0.0f};
    float *dzt = sqt_dput(g, zt, 8), *dzs = sqt_dput(g, zs, 8), *dl = sqt_dput(g, NULL, 4),
          *dg = sqt_dput(g, NULL, 8);
    g->kl_fwd_bwd(1, 2, dzt, dzs, 4.0f, 1.0f, dl, dg);
    sqt_gpu_ok(g);
    float *l = sqt_fetch(g, dl, 1, "kl loss"), *gr = sqt_fetch(g, dg, 2, "kl grad");
    /* method.md section 2 test vector, printed to 6-7 digits */
    cr_expect(fabsf(l[0] - 1.921832f) <= 2e-6f, "loss %.9g want 1.921832", l[0]);
    cr_expect(fabsf(gr[0] - 0.924234f) <= 2e-6f, "grad[0] %.9g want 0.924234", gr[0]);
    cr_expect(fabsf(gr[1] + 0.924234f) <= 2e-6f, "grad[1] %.9g want -0.924234", gr[1]);
    g->free((char *)dzt - SQT_GUARD); g->free((char *)dzs - SQT_GUARD);
    free(l); free(gr);
}

Test(cuda, losses_and_argmax_match_cpu_and_are_deterministic)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    const sq_backend *c = sq_backend_cpu();
    /* rows x classes: single, tiny, more rows than one block's warps, > 1024 blocks of rows;
       KL: the tile kernel (K = 1, 2, 7, 10), every register-row width (K = 20, 33, 37, 100, 129,
       300, 1000, 1024; rows not a multiple of a warp's rows per trip) and the warp kernel
       (K = 1025; also 1000 and 1024 in a -DSQ_KL_ROWS_MAX_K=512 build) */
    static const int shapes[][2] = {{1, 1}, {1, 10}, {3, 37}, {257, 10}, {64, 1000}, {9000, 7},
                                    {31, 2}, {101, 33}, {45, 100}, {13, 129}, {6, 1024}, {5, 1025},
                                    {3000, 1}, {23, 20}, {7, 300}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int n = shapes[s][0], k = shapes[s][1];
        size_t m = (size_t)n * k;
        uint64_t seed = 800 + s;
        float *zt = sqt_hrand(m, -6, 6, seed), *zs = sqt_hrand(m, -6, 6, seed + 1);
        int32_t *lab = calloc(n, sizeof(int32_t));
        for (int i = 0; i < n; i++) lab[i] = i % 5 == 3 ? -1 : (int)((i * 7919u) % (unsigned)k);
        float lkl = 0, lce = 0, *gkl = sqt_hvec(m), *gce = sqt_hvec(m);
        int32_t *am = calloc(n, sizeof(int32_t)), *ram = calloc(n, sizeof(int32_t));
        c->kl_fwd_bwd(n, k, zt, zs, 4.0f, 1.0f, &lkl, gkl);
        c->softmax_ce(n, k, zs, lab, 0.5f, &lce, gce);
        c->argmax(n, k, zs, am);

        float *dzt = sqt_dput(g, zt, m * 4), *dzs = sqt_dput(g, zs, m * 4), *dl = sqt_dput(g, NULL, 16),
              *dgkl = sqt_dput(g, NULL, m * 4), *dgce = sqt_dput(g, NULL, m * 4);
        int32_t *dlab = sqt_dput(g, lab, n * sizeof(int32_t)), *dam = sqt_dput(g, NULL, n * sizeof(int32_t));
        g->kl_fwd_bwd(n, k, dzt, dzs, 4.0f, 1.0f, dl, dgkl);
        g->kl_fwd_bwd(n, k, dzt, dzs, 4.0f, 1.0f, dl + 1, NULL); /* loss only */
        g->kl_fwd_bwd(n, k, dzt, dzs, 4.0f, 1.0f, dl + 2, dgkl);  /* again: determinism */
        g->softmax_ce(n, k, dzs, dlab, 0.5f, dl + 3, dgce);
        g->argmax(n, k, dzs, dam);
        sqt_gpu_ok(g);
        float *rl = sqt_fetch(g, dl, 4, "losses"), *rgkl = sqt_fetch(g, dgkl, m, "kl grad"),
              *rgce = sqt_fetch(g, dgce, m, "ce grad");
        sqt_dget_free(g, ram, dam, n * sizeof(int32_t), "argmax");
        /* the CPU works in double with exp/log in double; the GPU's KL in float with
           ex2.approx, summed in float along a row and in double across rows: relative 1e-5 of
           the loss, 1e-6 absolute for the gradients */
        sqt_expect_close("kl loss", rl, &lkl, 1, 1e-6, 1e-5, seed);
        sqt_expect_equal("kl loss without gradient", rl + 1, rl, 1);
        sqt_expect_equal("kl loss, second run", rl + 2, rl, 1);
        sqt_expect_close("ce loss", rl + 3, &lce, 1, 1e-6, 1e-5, seed);
        sqt_expect_close("kl grad", rgkl, gkl, m, 1e-6, 1e-4, seed);
        sqt_expect_close("ce grad", rgce, gce, m, 1e-6, 1e-4, seed);
        for (int i = 0; i < n; i++)
            cr_expect_eq(ram[i], am[i], "argmax[%d]: got %d want %d", i, ram[i], am[i]);
        g->free((char *)dzt - SQT_GUARD); g->free((char *)dzs - SQT_GUARD);
        g->free((char *)dlab - SQT_GUARD);
        free(zt); free(zs); free(lab); free(gkl); free(gce); free(am); free(ram);
        free(rl); free(rgkl); free(rgce);
    }
}

/* rows the random test above does not reach, for each KL kernel (K = 10, 100 and 1000, 1025) and two
   temperatures: student = teacher + 7 (KL 0 by cancellation of large terms), teacher logits of
   -inf (P_T = 0 terms add 0), -inf in both, logits of +-80 (exps far below float's range, 2^-126
   and less flush to 0 on the GPU), a near one-hot teacher, identical rows */
Test(cuda, kl_extreme_rows_match_cpu)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    const sq_backend *c = sq_backend_cpu();
    static const int ks[] = {10, 100, 1000, 1025}; /* tile, row (2 widths), warp kernel */
    static const float temps[] = {1.0f, 4.0f};
    const int n = 9;
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
        for (size_t ti = 0; ti < 2; ti++) {
            const int k = ks[ki];
            const size_t m = (size_t)n * k;
            const uint64_t seed = 900 + ki * 2 + ti;
            float *zt = sqt_hrand(m, -6, 6, seed), *zs = sqt_hrand(m, -6, 6, seed + 50);
            for (int j = 0; j < k; j++) {
                zs[0 * k + j] = zt[0 * k + j] + 7.0f;
                if (j % 3 == 0) zt[1 * k + j] = -INFINITY;
                if (j % 3 == 0) zt[2 * k + j] = zs[2 * k + j] = -INFINITY;
                zt[3 * k + j] *= 13.0f; /* up to +-78 */
                zs[3 * k + j] = -zt[3 * k + j];
                zt[4 * k + j] = j == k / 2 ? 60.0f : -60.0f;
                zs[5 * k + j] = zt[5 * k + j];
                zs[6 * k + j] = zt[6 * k + j] + 1e-3f * (float)(j % 7);
            }
            float lref = 0, l[1], *gref = sqt_hvec(m);
            c->kl_fwd_bwd(n, k, zt, zs, temps[ti], 0.9f, &lref, gref);
            float *dzt = sqt_dput(g, zt, m * 4), *dzs = sqt_dput(g, zs, m * 4),
                  *dl = sqt_dput(g, NULL, 4), *dg = sqt_dput(g, NULL, m * 4);
            g->kl_fwd_bwd(n, k, dzt, dzs, temps[ti], 0.9f, dl, dg);
            sqt_gpu_ok(g);
            float *rl = sqt_fetch(g, dl, 1, "kl loss"), *rg = sqt_fetch(g, dg, m, "kl grad");
            cr_assert(isfinite(lref) && lref > 0.0f, "CPU KL loss %g (K=%d, T=%g)", lref, k,
                      temps[ti]);
            l[0] = rl[0];
            sqt_expect_close("kl loss, extreme rows", l, &lref, 1, 1e-6, 1e-5, seed);
            sqt_expect_close("kl grad, extreme rows", rg, gref, m, 1e-6, 1e-4, seed);
            g->free((char *)dzt - SQT_GUARD);
            g->free((char *)dzs - SQT_GUARD);
            free(zt); free(zs); free(gref); free(rl); free(rg);
        }
}

/* one KL (loss and gradient), cross-entropy and argmax on the device; outputs fetched into
   l[2] (KL, CE), gkl, gce, am */
static void loss_run(const sq_backend *g, int n, int k, const float *zt, const float *zs,
                     const int32_t *lab, float *l, float **gkl, float **gce, int32_t *am)
{
    size_t m = (size_t)n * k;
    float *dzt = sqt_dput(g, zt, m * 4), *dzs = sqt_dput(g, zs, m * 4), *dl = sqt_dput(g, NULL, 8),
          *dgkl = sqt_dput(g, NULL, m * 4), *dgce = sqt_dput(g, NULL, m * 4);
    int32_t *dlab = sqt_dput(g, lab, n * sizeof(int32_t)), *dam = sqt_dput(g, NULL, n * sizeof(int32_t));
    g->kl_fwd_bwd(n, k, dzt, dzs, 4.0f, 1.0f, dl, dgkl);
    g->softmax_ce(n, k, dzs, dlab, 0.5f, dl + 1, dgce);
    g->argmax(n, k, dzs, dam);
    sqt_gpu_ok(g);
    float *rl = sqt_fetch(g, dl, 2, "losses");
    l[0] = rl[0];
    l[1] = rl[1];
    free(rl);
    *gkl = sqt_fetch(g, dgkl, m, "kl grad");
    *gce = sqt_fetch(g, dgce, m, "ce grad");
    sqt_dget_free(g, am, dam, n * sizeof(int32_t), "argmax");
    g->free((char *)dzt - SQT_GUARD); g->free((char *)dzs - SQT_GUARD);
    g->free((char *)dlab - SQT_GUARD);
}

/* The loss kernels on grids capped below what each shape wants (test hook), so that their
   grid-stride loops run several trips, against the same kernels on their own grids: the KL tile
   kernel (K = 10), the register-row kernel (K = 100, 1000), the warp kernel (K = 1025),
   cross-entropy and argmax. The gradients and argmax are bit-identical; the losses, summed over
   rows in double in another grouping, agree to 1e-6 and are the same from run to run. (The
   launch geometries that lost, stride and flat, are compared in kernels/lab/grid.) */
Test(cuda, losses_on_capped_grids_match_their_own_grids)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    /* rows, classes, test cap */
    static const int cases[][3] = {{1000, 10, 3}, {300, 100, 3}, {41, 1000, 3}, {1, 1000, 3},
                                   {300, 10, 1}, {30, 1025, 3}};
    for (size_t si = 0; si < sizeof cases / sizeof cases[0]; si++) {
        const unsigned cap = (unsigned)cases[si][2];
        int n = cases[si][0], k = cases[si][1];
        size_t m = (size_t)n * k;
        uint64_t seed = 1700 + si;
        float *zt = sqt_hrand(m, -6, 6, seed), *zs = sqt_hrand(m, -6, 6, seed + 1);
        int32_t *lab = calloc(n, sizeof(int32_t)), *am[3];
        for (int i = 0; i < n; i++) lab[i] = i % 5 == 3 ? -1 : (int)((i * 7919u) % (unsigned)k);
        float l[3][2], *gkl[3], *gce[3];
        for (int r = 0; r < 3; r++) {
            am[r] = calloc(n, sizeof(int32_t));
            sq_cuda_grid_cap_set(r > 0 ? cap : 0); /* 0 own grid, 1 and 2 capped */
            loss_run(g, n, k, zt, zs, lab, l[r], &gkl[r], &gce[r], am[r]);
        }
        sq_cuda_grid_cap_set(0);
        char what[64];
        snprintf(what, sizeof what, "%d x %d, cap %u", n, k, cap);
        cr_expect_eq(sqt_check_equal(what, gkl[1], gkl[0], m), 0, "%s: KL gradient differs", what);
        cr_expect_eq(sqt_check_equal(what, gce[1], gce[0], m), 0, "%s: CE gradient differs", what);
        cr_expect_eq(memcmp(am[1], am[0], n * sizeof(int32_t)), 0, "%s: argmax differs", what);
        for (int j = 0; j < 2; j++) {
            cr_expect(fabsf(l[1][j] - l[0][j]) <= 1e-6f * fabsf(l[0][j]) + 1e-9f,
                      "%s: %s loss capped %.9g own grid %.9g", what, j ? "CE" : "KL", l[1][j], l[0][j]);
            cr_expect_eq(l[2][j], l[1][j], "%s: %s loss on the capped grid not deterministic",
                         what, j ? "CE" : "KL");
            cr_expect(l[0][j] > 0.0f, "%s: %s loss %g not positive", what, j ? "CE" : "KL", l[0][j]);
        }
        for (int r = 0; r < 3; r++) { free(gkl[r]); free(gce[r]); free(am[r]); }
        free(zt); free(zs); free(lab);
    }
}

/* a grid of more blocks than 1024, so more partials than a capped grid writes: cross-entropy
   over 33000 rows (4125 blocks of 8 rows wanted, a quarter of that, 1032, launched; a
   warp-per-row kernel, the loss reduced through the partial buffer), against the same capped
   at 1024 blocks. Gradient bit-identical, loss within 1e-6, the same from run to run. */
Test(cuda, cross_entropy_past_1024_blocks)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    const int n = 33000, k = 2;
    const size_t m = (size_t)n * k;
    float *z = sqt_hrand(m, -6, 6, 1790), l[3], *gr[3];
    int32_t *lab = calloc(n, sizeof(int32_t));
    for (int i = 0; i < n; i++) lab[i] = i % 5 == 3 ? -1 : i % k;
    float *dz = sqt_dput(g, z, m * 4);
    int32_t *dlab = sqt_dput(g, lab, n * sizeof(int32_t));
    for (int r = 0; r < 3; r++) {
        float *dl = sqt_dput(g, NULL, 4), *dg = sqt_dput(g, NULL, m * 4);
        sq_cuda_grid_cap_set(r == 0 ? 1024 : 0); /* 0 capped at 1024 blocks, 1 and 2 not */
        g->softmax_ce(n, k, dz, dlab, 0.5f, dl, dg);
        sqt_gpu_ok(g);
        float *rl = sqt_fetch(g, dl, 1, "ce loss");
        l[r] = rl[0];
        free(rl);
        gr[r] = sqt_fetch(g, dg, m, "ce grad");
    }
    sq_cuda_grid_cap_set(0);
    cr_expect_eq(sqt_check_equal("ce grad, past 1024 blocks", gr[1], gr[0], m), 0, "CE gradient differs");
    cr_expect(fabsf(l[1] - l[0]) <= 1e-6f * fabsf(l[0]), "CE loss %.9g, capped at 1024 blocks %.9g", l[1], l[0]);
    cr_expect_eq(l[2], l[1], "CE loss past 1024 blocks not deterministic");
    cr_expect(l[0] > 0.0f, "CE loss %g not positive", l[0]);
    g->free((char *)dz - SQT_GUARD);
    g->free((char *)dlab - SQT_GUARD);
    for (int r = 0; r < 3; r++) free(gr[r]);
    free(z); free(lab);
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

/* one kind, both roles, bits 1/2/4/8, delta 0 and 0.3, sizes incl. unaligned starts (odd
   entries); 300001 elements, aligned, take several trips of the float4 loop on cuemu's 2 SMs */
static void fq_case(const sq_backend *g, sq_quant_kind kind)
{
    const sq_backend *c = sq_backend_cpu();
    static const size_t sizes[] = {1, 5, 1023, 4099, 65539, 262147, 300001};
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
                    sqt_fq_params(kind, weight, bits[bi], qp);
                    float *x = sqt_hrand(n + off, weight ? -1.2f : -0.3f, weight ? 1.2f : 1.6f, seed),
                          *gy = sqt_hrand(n + off, -1, 1, seed + 1), *gx0 = sqt_hrand(n + off, -1, 1, seed + 2);
                    float *y = sqt_hvec(n), *gx = sqt_hdup(gx0 + off, n), gqp[2] = {gqp0[0], gqp0[1]},
                          scr[SQ_QUANT_SCRATCH] = {0};
                    c->fakequant_fwd(&cfg, n, x + off, qp, y, scr);
                    c->fakequant_bwd(&cfg, n, x + off, qp, gy + off, gx, gqp, scr);

                    size_t B = (n + off) * 4;
                    float *dx = sqt_dput(g, x, B), *dgy = sqt_dput(g, gy, B), *dy = sqt_dput(g, NULL, B),
                          *dgx = sqt_dput(g, gx0, B), *dqp = sqt_dput(g, qp, 8), *dgqp = sqt_dput(g, gqp0, 8),
                          *dscr = sqt_dput(g, NULL, SQ_QUANT_SCRATCH * 4);
                    g->fakequant_fwd(&cfg, n, dx + off, dqp, dy + off, dscr);
                    g->fakequant_bwd(&cfg, n, dx + off, dqp, dgy + off, dgx + off, dgqp, dscr);
                    sqt_gpu_ok(g);
                    float *ry = sqt_fetch(g, dy, n + off, "fq y"), *rgx = sqt_fetch(g, dgx, n + off, "fq gx"),
                          *rgqp = sqt_fetch(g, dgqp, 2, "fq gqp"),
                          *rscr = sqt_fetch(g, dscr, SQ_QUANT_SCRATCH, "fq scratch");
                    char what[96];
                    snprintf(what, sizeof what, "%s %s %d-bit delta %.1f n %zu+%d",
                             sq_quant_kind_name(kind), weight ? "w" : "a", bits[bi], cfg.delta, n, off);
                    sq_qm_ctx k;
                    sq_qm_ctx_init(&k, &cfg, n);
                    int dorefa_w = sq_qm_needs_maxabs(&k);
                    if (dorefa_w)
                        /* M = max|tanh|: device tanhf vs glibc tanhf, 2 ulp */
                        sqt_expect_close(what, rscr, scr, 1, 0.0, 3e-7, seed);
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
                    g->free((char *)dx - SQT_GUARD); g->free((char *)dgy - SQT_GUARD);
                    g->free((char *)dqp - SQT_GUARD);
                    free(x); free(gy); free(gx0); free(y); free(gx); free(ry); free(rgx);
                    free(rgqp); free(rscr);
                }
}

/* the fake-quant kernels divide by a per-tensor constant with a reciprocal and one FMA
   correction (sq_qm_div): bit-identical to IEEE division on random operands over 120 binades,
   on the discretizer's k / steps, and on zeros, infinities, NaN, subnormals and extremes */
Test(cuda, division_by_reciprocal_is_ieee_division)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    const size_t nr = 1 << 20;
    static const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-45f, -1e-40f,
                                    1.17549435e-38f, 3.4e38f, -3.4e38f, 1.0f, -1.0f, 0x1p-100f,
                                    0x1p100f, 0x1.fffffep-101f, 0x1p101f, 3.0f, 255.0f};
    const size_t ns = sizeof special / sizeof special[0];
    size_t n = nr + 255 * 601 + ns * ns, m = 0;
    float *x = malloc(n * sizeof(float)), *d = malloc(n * sizeof(float));
    uint64_t s = 77;
    for (; m < nr; m++) { /* random signs, mantissas, exponents: x in 2^[-60,60], d in 2^[-30,30] */
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        uint32_t ux = (uint32_t)s, ud = (uint32_t)(s >> 32);
        uint32_t bx = ((ux >> 8) & 0x7fffffu) | ((uint32_t)(127 + (int)((ux >> 1) % 121) - 60) << 23) | ((ux & 1u) << 31);
        uint32_t bd = ((ud >> 8) & 0x7fffffu) | ((uint32_t)(127 + (int)((ud >> 1) % 61) - 30) << 23) | ((ud & 1u) << 31);
        memcpy(&x[m], &bx, 4);
        memcpy(&d[m], &bd, 4);
    }
    for (int st = 1; st <= 255; st++)
        for (int k = -300; k <= 300; k++, m++) x[m] = (float)k, d[m] = (float)st;
    for (size_t i = 0; i < ns; i++)
        for (size_t j = 0; j < ns; j++, m++) x[m] = special[i], d[m] = special[j];
    cr_assert_eq(m, n);
    float *dx = sqt_dput(g, x, n * 4), *dd = sqt_dput(g, d, n * 4), *dq = sqt_dput(g, NULL, n * 4);
    sq_cuda_div_check(n, dx, dd, dq);
    float *q = sqt_fetch(g, dq, n, "quotients");
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float want = x[i] / d[i];
        int same = isnan(want) ? isnan(q[i]) : !memcmp(&want, &q[i], 4);
        if (!same && bad++ < 8)
            fprintf(stderr, "x %a / d %a: device %a, IEEE %a\n", x[i], d[i], q[i], want);
    }
    cr_assert_eq(bad, 0, "%zu of %zu quotients differ from IEEE division", bad, n);
    free(x); free(d); free(q); /* sqt_fetch freed dq */
    g->free((char *)dx - SQT_GUARD); g->free((char *)dd - SQT_GUARD);
    g->sync();
    cr_assert_eq(g->status(), SQ_OK, "%s", sq_last_error());
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
    float *x = sqt_hrand(n, -0.5f, 1.5f, 77), *gy = sqt_hrand(n, -1, 1, 78);
    float *dx = sqt_dput(g, x, n * 4), *dgy = sqt_dput(g, gy, n * 4), *dqp = sqt_dput(g, qp, 8),
          *dg = sqt_dput(g, NULL, 6 * 4), *dgx = sqt_dput(g, NULL, n * 4);
    g->fakequant_bwd(&cfg, n, dx, dqp, dgy, NULL, dg, NULL);       /* gx not wanted */
    g->fakequant_bwd(&cfg, n, dx, dqp, dgy, dgx, dg + 2, NULL);
    g->fakequant_bwd(&cfg, n, dx, dqp, dgy, dgx, NULL, NULL);      /* gqp not wanted */
    g->fakequant_bwd(&cfg, n, dx, dqp, dgy, NULL, dg + 4, NULL);
    sqt_gpu_ok(g);
    float *r = sqt_fetch(g, dg, 6, "gqp runs");
    for (int j = 0; j < 2; j++) {
        cr_expect_eq(r[2 + j], r[j], "run 2 gqp[%d] %.9g differs from run 1 %.9g", j, r[2 + j], r[j]);
        cr_expect_eq(r[4 + j], r[j], "run 3 gqp[%d] %.9g differs from run 1 %.9g", j, r[4 + j], r[j]);
    }
    float *rgx = sqt_fetch(g, dgx, n, "gx");
    float *ref = sqt_hvec(n);
    float gq[2] = {0, 0};
    sq_backend_cpu()->fakequant_bwd(&cfg, n, x, qp, gy, ref, gq, NULL);
    for (size_t i = 0; i < n; i++) ref[i] *= 2.0f; /* two runs accumulated into gx */
    sqt_expect_close("gx after two accumulating runs", rgx, ref, n, 2e-6, 1e-5, 77);
    g->free((char *)dx - SQT_GUARD); g->free((char *)dgy - SQT_GUARD); g->free((char *)dqp - SQT_GUARD);
    free(x); free(gy); free(r); free(rgx); free(ref);
}

/* one fake-quant forward and backward on the device (SCALED: the fused output-scale pair,
   s = -0.7) from host inputs; results fetched into o (freed by fq_out_free) */
typedef struct fq_out {
    float *y, *ys, *gx, *gy, *gqp, *gs, *scr;
} fq_out;

static void fq_run(const sq_backend *g, const sq_quant_cfg *cfg, size_t n, const float *x,
                   const float *qp, const float *gy, const float *gx0, int scaled, fq_out *o)
{
    const float s = -0.7f, zero4[4] = {0};
    float *dx = sqt_dput(g, x, n * 4), *dgy = sqt_dput(g, gy, n * 4), *dy = sqt_dput(g, NULL, n * 4),
          *dys = sqt_dput(g, NULL, n * 4), *dgx = sqt_dput(g, gx0, n * 4),
          *dgyo = sqt_dput(g, NULL, n * 4), *dqp = sqt_dput(g, qp, 8),
          *dgqp = sqt_dput(g, zero4, 8), *ds = sqt_dput(g, &s, 4), *dgs = sqt_dput(g, zero4, 4),
          *dscr = sqt_dput(g, NULL, SQ_QUANT_SCRATCH * 4);
    if (scaled) {
        g->fakequant_scaled_fwd(cfg, n, dx, dqp, ds, dy, dys, dscr);
        g->fakequant_scaled_bwd(cfg, n, dx, dqp, ds, dy, dgy, dgyo, dgx, dgqp, dgs, dscr);
    } else {
        g->fakequant_fwd(cfg, n, dx, dqp, dy, dscr);
        g->fakequant_bwd(cfg, n, dx, dqp, dgy, dgx, dgqp, dscr);
    }
    sqt_gpu_ok(g);
    o->y = sqt_fetch(g, dy, n, "y");
    o->ys = sqt_fetch(g, dys, n, "ys");
    o->gx = sqt_fetch(g, dgx, n, "gx");
    o->gy = sqt_fetch(g, dgyo, n, "gy");
    o->gqp = sqt_fetch(g, dgqp, 2, "gqp");
    o->gs = sqt_fetch(g, dgs, 1, "gs");
    o->scr = sqt_fetch(g, dscr, SQ_QUANT_SCRATCH, "scratch");
    g->free((char *)dx - SQT_GUARD); g->free((char *)dgy - SQT_GUARD);
    g->free((char *)dqp - SQT_GUARD); g->free((char *)ds - SQT_GUARD);
}

static void fq_out_free(fq_out *o)
{
    free(o->y); free(o->ys); free(o->gx); free(o->gy); free(o->gqp); free(o->gs); free(o->scr);
}

/* The fake-quant kernels on grids capped at 1 and 7 blocks (test hook; 262147 elements want 64
   blocks), so that their loops, reducing ones included, run many trips, against the same on
   their own grids: the per-element outputs (y, ys, gx, the scaled gy, DoReFa's max|tanh|) are
   bit-identical; the sums (parameter and output-scale gradients) are grouped differently, so
   they agree within fq_case's bound, and each is the same from run to run. Every kind and role,
   plain and scaled, unaligned and odd sizes. (The launch geometries that lost, stride and flat,
   are compared in kernels/lab/grid.) */
Test(cuda, fakequant_capped_grids_match_their_own_grids)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    static const sq_quant_kind kinds[4] = {SQ_QUANT_EWGS, SQ_QUANT_PACT, SQ_QUANT_LSQ,
                                           SQ_QUANT_DOREFA};
    static const size_t sizes[] = {5, 4099, 262147};
    static const unsigned caps[] = {1, 7};
    for (int ki = 0; ki < 4; ki++)
        for (int weight = 0; weight < 2; weight++)
            for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
                for (int ci = 0; ci < 2; ci++) {
                    size_t n = sizes[si];
                    int scaled = (int)((si + (size_t)ci) & 1), bits = 2 + 2 * ci;
                    uint64_t seed = 5000 + (uint64_t)ki * 100 + weight * 10 + si * 2 + ci;
                    sq_quant_cfg cfg = {kinds[ki], weight ? SQ_QROLE_WEIGHT : SQ_QROLE_ACT, bits,
                                        weight, 0.3f, 0.0f};
                    float qp[2];
                    sqt_fq_params(kinds[ki], weight, bits, qp);
                    float *x = sqt_hrand(n, weight ? -1.2f : -0.3f, weight ? 1.2f : 1.6f, seed),
                          *gy = sqt_hrand(n, -1, 1, seed + 1), *gx0 = sqt_hrand(n, -1, 1, seed + 2);
                    fq_out own, cp, cp2;
                    sq_cuda_grid_cap_set(0);
                    fq_run(g, &cfg, n, x, qp, gy, gx0, scaled, &own);
                    sq_cuda_grid_cap_set(caps[ci]);
                    fq_run(g, &cfg, n, x, qp, gy, gx0, scaled, &cp);
                    fq_run(g, &cfg, n, x, qp, gy, gx0, scaled, &cp2);
                    sq_cuda_grid_cap_set(0);
                    char what[96];
                    snprintf(what, sizeof what, "%s %s %d-bit%s n %zu cap %u",
                             sq_quant_kind_name(kinds[ki]), weight ? "w" : "a", bits,
                             scaled ? " scaled" : "", n, caps[ci]);
                    cr_expect_eq(sqt_check_equal(what, cp.y, own.y, n), 0, "%s: y differs", what);
                    cr_expect_eq(sqt_check_equal(what, cp.gx, own.gx, n), 0, "%s: gx differs", what);
                    if (scaled) {
                        cr_expect_eq(sqt_check_equal(what, cp.ys, own.ys, n), 0, "%s: ys differs", what);
                        cr_expect_eq(sqt_check_equal(what, cp.gy, own.gy, n), 0, "%s: gy differs", what);
                    }
                    cr_expect_eq(sqt_check_equal(what, cp.scr, own.scr, 1), 0, "%s: max|tanh| differs", what);
                    /* the sums: fq_case's bound; scaled, gy is 0.7 gys */
                    double gscale = fq_grad_scale(&cfg, n, qp, gy) * (scaled ? 0.7 : 1.0);
                    int np = sq_quant_nparams(&cfg);
                    for (int j = 0; j < 2; j++) {
                        double tol = 1e-6 * gscale + 1e-6 * fabs(own.gqp[j]) + 1e-7;
                        cr_expect(fabs(cp.gqp[j] - own.gqp[j]) <= tol,
                                  "%s: gqp[%d] capped %.9g own grid %.9g (tol %g)", what, j,
                                  cp.gqp[j], own.gqp[j], tol);
                        cr_expect_eq(cp2.gqp[j], cp.gqp[j], "%s: gqp[%d] not deterministic", what, j);
                        if (j >= np) cr_expect_eq(cp.gqp[j], 0.0f, "%s: gqp[%d] touched", what, j);
                    }
                    if (scaled) { /* sum |gys y| bounds the output scale's gradient's rounding */
                        double sy = 0.0;
                        for (size_t i = 0; i < n; i++) sy += fabs((double)gy[i] * cp.y[i]);
                        cr_expect(fabs(cp.gs[0] - own.gs[0]) <= 1e-6 * sy + 1e-7,
                                  "%s: gs capped %.9g own grid %.9g", what, cp.gs[0], own.gs[0]);
                        cr_expect_eq(cp2.gs[0], cp.gs[0], "%s: gs not deterministic", what);
                        cr_expect(fabs(own.gs[0]) > 0.0f, "%s: gs was not summed", what);
                    }
                    fq_out_free(&own); fq_out_free(&cp); fq_out_free(&cp2);
                    free(x); free(gy); free(gx0);
                }
}

/* fq_case (every bit width, delta 0 and 0.3, sizes 1 - 300001, unaligned starts) on grids
   capped at 16 and 5 blocks, against the CPU: the kernels' loops take many trips */
Test(cuda, fakequant_ewgs_lsq_match_cpu_on_capped_grids)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    sq_cuda_grid_cap_set(16);
    fq_case(g, SQ_QUANT_EWGS);
    fq_case(g, SQ_QUANT_LSQ);
    sq_cuda_grid_cap_set(0);
}

Test(cuda, fakequant_pact_dorefa_match_cpu_on_capped_grids)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    sq_cuda_grid_cap_set(5);
    fq_case(g, SQ_QUANT_PACT);
    fq_case(g, SQ_QUANT_DOREFA);
    sq_cuda_grid_cap_set(0);
}

Test(cuda, absscale_matches_cpu)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    const sq_backend *c = sq_backend_cpu();
    for (size_t si = 0; si < SQT_NSIZES; si++) {
        size_t n = sqt_sizes[si];
        uint64_t seed = 1100 + si;
        float s = si & 1 ? -0.7f : 1.3f, gs0 = 0.5f, gs = gs0;
        float *z = sqt_hrand(n, -2, 2, seed), *gy = sqt_hrand(n, -1, 1, seed + 1),
              *gz0 = sqt_hrand(n, -1, 1, seed + 2), *y = sqt_hvec(n), *gz = sqt_hdup(gz0, n);
        c->absscale_fwd(n, &s, z, y);
        c->absscale_bwd(n, &s, z, gy, gz, &gs);
        float *ds = sqt_dput(g, &s, 4), *dz = sqt_dput(g, z, n * 4), *dgy = sqt_dput(g, gy, n * 4),
              *dy = sqt_dput(g, NULL, n * 4), *dgz = sqt_dput(g, gz0, n * 4), *dgs = sqt_dput(g, &gs0, 4);
        g->absscale_fwd(n, ds, dz, dy);
        g->absscale_bwd(n, ds, dz, dgy, dgz, dgs);
        sqt_gpu_ok(g);
        float *ry = sqt_fetch(g, dy, n, "absscale y"), *rgz = sqt_fetch(g, dgz, n, "absscale gz"),
              *rgs = sqt_fetch(g, dgs, 1, "absscale gs");
        sqt_expect_equal("absscale y", ry, y, n);
        sqt_expect_close("absscale gz", rgz, gz, n, 1e-6, 1e-6, seed);
        /* sum of n products bounded by 2: 1e-6 relative to that bound */
        sqt_expect_close("absscale gs", rgs, &gs, 1, 2e-6 * n, 1e-5, seed);
        g->free((char *)ds - SQT_GUARD); g->free((char *)dz - SQT_GUARD); g->free((char *)dgy - SQT_GUARD);
        free(z); free(gy); free(gz0); free(y); free(gz); free(ry); free(rgz); free(rgs);
    }
}

/* ---- optimizers ---- */

Test(cuda, optimizers_match_cpu)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    const sq_backend *c = sq_backend_cpu();
    for (size_t si = 0; si < SQT_NSIZES; si++) {
        size_t n = sqt_sizes[si], B = n * 4;
        uint64_t seed = 1200 + si;
        float *p0 = sqt_hrand(n, -1, 1, seed), *gr = sqt_hrand(n, -1, 1, seed + 1),
              *m0 = sqt_hrand(n, -0.1f, 0.1f, seed + 2), *v0 = sqt_hrand(n, 0.0f, 0.01f, seed + 3);
        float *p = sqt_hdup(p0, n), *m = sqt_hdup(m0, n), *v = sqt_hdup(v0, n), *ps = sqt_hdup(p0, n),
              *pa = sqt_hdup(p0, n), *ma = sqt_hdup(m0, n);
        c->sgd_step(n, p, gr, m, 0.1f, 0.9f, 1e-4f);
        c->sgd_step(n, ps, gr, NULL, 0.1f, 0.0f, 1e-4f);
        for (int t = 1; t <= 3; t++) c->adam_step(n, pa, gr, ma, v, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, t);
        float *dp = sqt_dput(g, p0, B), *dm = sqt_dput(g, m0, B), *dgr = sqt_dput(g, gr, B),
              *dps = sqt_dput(g, p0, B), *dpa = sqt_dput(g, p0, B), *dma = sqt_dput(g, m0, B),
              *dv = sqt_dput(g, v0, B);
        g->sgd_step(n, dp, dgr, dm, 0.1f, 0.9f, 1e-4f);
        g->sgd_step(n, dps, dgr, NULL, 0.1f, 0.0f, 1e-4f);
        for (int t = 1; t <= 3; t++) g->adam_step(n, dpa, dgr, dma, dv, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, t);
        sqt_gpu_ok(g);
        /* same operation order; the GPU may fuse multiply-adds (one rounding fewer) */
        float *r;
        r = sqt_fetch(g, dp, n, "sgd p"); sqt_expect_close("sgd p", r, p, n, 1e-6, 1e-6, seed); free(r);
        r = sqt_fetch(g, dm, n, "sgd m"); sqt_expect_close("sgd m", r, m, n, 1e-6, 1e-6, seed); free(r);
        r = sqt_fetch(g, dps, n, "sgd p (no momentum)");
        sqt_expect_close("sgd p (no momentum)", r, ps, n, 1e-6, 1e-6, seed); free(r);
        r = sqt_fetch(g, dpa, n, "adam p"); sqt_expect_close("adam p", r, pa, n, 1e-6, 1e-6, seed); free(r);
        r = sqt_fetch(g, dma, n, "adam m"); sqt_expect_close("adam m", r, ma, n, 1e-7, 1e-6, seed); free(r);
        r = sqt_fetch(g, dv, n, "adam v"); sqt_expect_close("adam v", r, v, n, 1e-9, 1e-5, seed); free(r);
        g->free((char *)dgr - SQT_GUARD);
        free(p0); free(gr); free(m0); free(v0); free(p); free(m); free(v); free(ps); free(pa);
        free(ma);
    }
}
