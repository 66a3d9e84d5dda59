/* test_cuda_ops_train.c: Criterion suite "cuda": the loss and fake-quant kernels on launch grids
   capped by the test hook (tests/cuda_hooks.h), so that their multi-trip loops run with small
   tensors, against their own grids and the CPU. The per-op comparisons with the CPU are in the
   conformance harness (test_cuda_backend_ops.c). Without a GPU every test SKIPS (never passes). */
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

static void setup(void) { (void)sqt_cuda_configure(); /* cuDNN off TF32 (cuda_hooks.h) */ }

TestSuite(cuda, .init = setup, .timeout = 60);

/* ---- losses ---- */



/* rows the random test above does not reach, for each KL kernel (K = 10, 100 and 1000, 1025) and two
   temperatures: student = teacher + 7 (KL 0 by cancellation of large terms), teacher logits of
   -inf (P_T = 0 terms add 0), -inf in both, logits of +-80 (exps far below float's range, 2^-126
   and less flush to 0 on the GPU), a near one-hot teacher, identical rows */

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
                                        weight, di ? 0.3f : 0.0f, 0.0f, 0};
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
                                        weight, 0.3f, 0.0f, 0};
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


/* ---- optimizers ---- */

