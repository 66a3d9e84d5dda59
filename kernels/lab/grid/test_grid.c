/* test_grid.c: Criterion suite "lab_grid" (kernels/lab): the launch geometries that lost
   (grid_lab.h: stride, flat, and the reducing-launch block cap that was SQAKD_REDUCE_BLOCKS)
   against each other and against the shipped geometry (auto), on the shipped kernels. Moved from
   tests/test_cuda_ops_train.c when the geometries left the shipped backend (the shipped tests
   keep the multi-trip coverage with capped grids).
   - Loss kernels (the KL tile kernel at K = 10, the register-row kernel at K = 100 and 1000, the
     warp kernel at K = 1025, cross-entropy, argmax): flat against stride, bit-identical
     gradients and argmax, losses within 1e-6 and deterministic; flat under a cap of 3 blocks so
     that the loops run.
   - Cross-entropy on a flat grid of more than 1024 blocks (more partials than stride writes).
   - Fake quantization, every kind and role, plain and scaled: flat (uncapped and capped at 7)
     and auto against stride: per-element outputs bit-identical, sums within the CPU tests'
     bound, deterministic.
   - A reducing-launch cap (reduce_blocks) gives the same per-element results and sums within the
     bound.
   Without a GPU every test SKIPS (under cuemu they run on the emulated device). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuda_hooks.h"
#include "grid_lab.h"
#include "sqakd/quant_math.h"
#include "util_check.h"
#include "util_fixtures.h"

static void setup(void) { (void)sqt_cuda_configure(); }

TestSuite(lab_grid, .init = setup, .timeout = 600);

static const sq_backend *gpu(void)
{
    const sq_backend *g = lab_grid_backend();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    return g;
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

Test(lab_grid, losses_on_the_flat_grid_match_the_stride_grid)
{
    const sq_backend *g = gpu();
    /* rows, classes, test cap (0: none) */
    static const int cases[][3] = {{1000, 10, 3}, {300, 100, 3}, {41, 1000, 3}, {1, 1000, 3},
                                   {300, 10, 0}, {30, 1025, 3}};
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
            lab_grid_select(r > 0 ? LAB_GRID_FLAT : LAB_GRID_STRIDE, 0); /* 0 stride, 1 and 2 flat */
            sq_cuda_grid_cap_set(cap);
            loss_run(g, n, k, zt, zs, lab, l[r], &gkl[r], &gce[r], am[r]);
        }
        lab_grid_select(LAB_GRID_AUTO, 0);
        sq_cuda_grid_cap_set(0);
        char what[64];
        snprintf(what, sizeof what, "%d x %d, cap %u", n, k, cap);
        cr_expect_eq(sqt_check_equal(what, gkl[1], gkl[0], m), 0, "%s: KL gradient differs", what);
        cr_expect_eq(sqt_check_equal(what, gce[1], gce[0], m), 0, "%s: CE gradient differs", what);
        cr_expect_eq(memcmp(am[1], am[0], n * sizeof(int32_t)), 0, "%s: argmax differs", what);
        for (int j = 0; j < 2; j++) {
            cr_expect(fabsf(l[1][j] - l[0][j]) <= 1e-6f * fabsf(l[0][j]) + 1e-9f,
                      "%s: %s loss flat %.9g stride %.9g", what, j ? "CE" : "KL", l[1][j], l[0][j]);
            cr_expect_eq(l[2][j], l[1][j], "%s: %s loss on the flat grid not deterministic",
                         what, j ? "CE" : "KL");
            cr_expect(l[0][j] > 0.0f, "%s: %s loss %g not positive", what, j ? "CE" : "KL", l[0][j]);
        }
        for (int r = 0; r < 3; r++) { free(gkl[r]); free(gce[r]); free(am[r]); }
        free(zt); free(zs); free(lab);
    }
}

/* a flat grid of more blocks than stride's 1024, so more partials than stride ever writes:
   cross-entropy over 8300 rows (1038 blocks of 8 rows; a warp-per-row kernel, the loss
   reduced through the partial buffer). Gradient bit-identical to stride, loss within 1e-6,
   the same from run to run. */
Test(lab_grid, cross_entropy_past_1024_blocks_on_the_flat_grid)
{
    const sq_backend *g = gpu();
    const int n = 8300, k = 2;
    const size_t m = (size_t)n * k;
    float *z = sqt_hrand(m, -6, 6, 1790), l[3], *gr[3];
    int32_t *lab = calloc(n, sizeof(int32_t));
    for (int i = 0; i < n; i++) lab[i] = i % 5 == 3 ? -1 : i % k;
    float *dz = sqt_dput(g, z, m * 4);
    int32_t *dlab = sqt_dput(g, lab, n * sizeof(int32_t));
    for (int r = 0; r < 3; r++) {
        float *dl = sqt_dput(g, NULL, 4), *dg = sqt_dput(g, NULL, m * 4);
        lab_grid_select(r > 0 ? LAB_GRID_FLAT : LAB_GRID_STRIDE, 0); /* 0 stride, 1 and 2 flat */
        g->softmax_ce(n, k, dz, dlab, 0.5f, dl, dg);
        sqt_gpu_ok(g);
        float *rl = sqt_fetch(g, dl, 1, "ce loss");
        l[r] = rl[0];
        free(rl);
        gr[r] = sqt_fetch(g, dg, m, "ce grad");
    }
    lab_grid_select(LAB_GRID_AUTO, 0);
    cr_expect_eq(sqt_check_equal("ce grad, flat", gr[1], gr[0], m), 0, "CE gradient differs");
    cr_expect(fabsf(l[1] - l[0]) <= 1e-6f * fabsf(l[0]), "CE loss flat %.9g stride %.9g", l[1], l[0]);
    cr_expect_eq(l[2], l[1], "CE loss on the flat grid not deterministic");
    cr_expect(l[0] > 0.0f, "CE loss %g not positive", l[0]);
    g->free((char *)dz - SQT_GUARD);
    g->free((char *)dlab - SQT_GUARD);
    for (int r = 0; r < 3; r++) free(gr[r]);
    free(z); free(lab);
}

/* bound on the rounding difference scale of the parameter-gradient sums (as in
   tests/test_cuda_ops_train.c): 1e-6 C sum |gy| */
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

/* b against a (the reference run): per-element outputs bit-identical, sums within the bound */
static void fq_expect_same(const char *what, const sq_quant_cfg *cfg, size_t n, const float *qp,
                           const float *gy, int scaled, const fq_out *a, const fq_out *b)
{
    cr_expect_eq(sqt_check_equal(what, b->y, a->y, n), 0, "%s: y differs", what);
    cr_expect_eq(sqt_check_equal(what, b->gx, a->gx, n), 0, "%s: gx differs", what);
    if (scaled) {
        cr_expect_eq(sqt_check_equal(what, b->ys, a->ys, n), 0, "%s: ys differs", what);
        cr_expect_eq(sqt_check_equal(what, b->gy, a->gy, n), 0, "%s: gy differs", what);
    }
    cr_expect_eq(sqt_check_equal(what, b->scr, a->scr, 1), 0, "%s: max|tanh| differs", what);
    double gscale = fq_grad_scale(cfg, n, qp, gy) * (scaled ? 0.7 : 1.0);
    int np = sq_quant_nparams(cfg);
    for (int j = 0; j < 2; j++) {
        double tol = 1e-6 * gscale + 1e-6 * fabs(a->gqp[j]) + 1e-7;
        cr_expect(fabs(b->gqp[j] - a->gqp[j]) <= tol, "%s: gqp[%d] %.9g, reference %.9g (tol %g)",
                  what, j, b->gqp[j], a->gqp[j], tol);
        if (j >= np) cr_expect_eq(b->gqp[j], 0.0f, "%s: gqp[%d] touched", what, j);
    }
    if (scaled) { /* sum |gys y| bounds the output scale's gradient's rounding */
        double sy = 0.0;
        for (size_t i = 0; i < n; i++) sy += fabs((double)gy[i] * b->y[i]);
        cr_expect(fabs(b->gs[0] - a->gs[0]) <= 1e-6 * sy + 1e-7, "%s: gs %.9g, reference %.9g",
                  what, b->gs[0], a->gs[0]);
        cr_expect(fabs(a->gs[0]) > 0.0f, "%s: gs was not summed", what);
    }
}

/* flat (one trip per thread, up to 16384 reducing blocks) and auto (the shipped geometry)
   against stride: every kind and role, plain and scaled, unaligned and odd sizes, and a block
   cap of 7 so that the reducing kernels loop (262147 elements want 64 blocks) */
Test(lab_grid, fakequant_flat_and_auto_grids_match_the_stride_grid)
{
    const sq_backend *g = gpu();
    static const sq_quant_kind kinds[4] = {SQ_QUANT_EWGS, SQ_QUANT_PACT, SQ_QUANT_LSQ,
                                           SQ_QUANT_DOREFA};
    static const size_t sizes[] = {5, 4099, 262147};
    static const unsigned caps[] = {0, 7};
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
                    fq_out st, fl, fl2, au;
                    lab_grid_select(LAB_GRID_STRIDE, 0);
                    fq_run(g, &cfg, n, x, qp, gy, gx0, scaled, &st);
                    sq_cuda_grid_cap_set(caps[ci]);
                    lab_grid_select(LAB_GRID_FLAT, 0);
                    fq_run(g, &cfg, n, x, qp, gy, gx0, scaled, &fl);
                    fq_run(g, &cfg, n, x, qp, gy, gx0, scaled, &fl2);
                    lab_grid_select(LAB_GRID_AUTO, 0);
                    fq_run(g, &cfg, n, x, qp, gy, gx0, scaled, &au);
                    sq_cuda_grid_cap_set(0);
                    char what[96];
                    snprintf(what, sizeof what, "%s %s %d-bit%s n %zu cap %u",
                             sq_quant_kind_name(kinds[ki]), weight ? "w" : "a", bits,
                             scaled ? " scaled" : "", n, caps[ci]);
                    char wf[128], wa[128];
                    snprintf(wf, sizeof wf, "%s, flat", what);
                    snprintf(wa, sizeof wa, "%s, auto", what);
                    fq_expect_same(wf, &cfg, n, qp, gy, scaled, &st, &fl);
                    fq_expect_same(wa, &cfg, n, qp, gy, scaled, &st, &au);
                    for (int j = 0; j < 2; j++)
                        cr_expect_eq(fl2.gqp[j], fl.gqp[j], "%s: gqp[%d] not deterministic", wf, j);
                    if (scaled) cr_expect_eq(fl2.gs[0], fl.gs[0], "%s: gs not deterministic", wf);
                    fq_out_free(&st); fq_out_free(&fl); fq_out_free(&fl2); fq_out_free(&au);
                    free(x); free(gy); free(gx0);
                }
}

/* reduce_blocks (was SQAKD_REDUCE_BLOCKS): every reducing launch on at most N blocks, whatever
   the mode; the per-element results are the same, the sums within the bound, and the KL loss
   within 1e-6 */
Test(lab_grid, a_reducing_block_cap_changes_only_the_grouping_of_sums)
{
    const sq_backend *g = gpu();
    static const unsigned caps[] = {1, 3, 396};
    const size_t n = 262147;
    for (size_t ci = 0; ci < sizeof caps / sizeof caps[0]; ci++) {
        sq_quant_cfg cfg = {SQ_QUANT_LSQ, SQ_QROLE_ACT, 4, 0, 0.3f, 0.0f, 0};
        float qp[2];
        sqt_fq_params(SQ_QUANT_LSQ, 0, 4, qp);
        float *x = sqt_hrand(n, -0.3f, 1.6f, 60 + ci), *gy = sqt_hrand(n, -1, 1, 61 + ci),
              *gx0 = sqt_hrand(n, -1, 1, 62 + ci);
        fq_out ref, cp;
        for (int scaled = 0; scaled < 2; scaled++) {
            lab_grid_select(LAB_GRID_AUTO, 0);
            fq_run(g, &cfg, n, x, qp, gy, gx0, scaled, &ref);
            lab_grid_select(LAB_GRID_AUTO, caps[ci]);
            fq_run(g, &cfg, n, x, qp, gy, gx0, scaled, &cp);
            char what[64];
            snprintf(what, sizeof what, "lsq%s, reduce_blocks %u", scaled ? " scaled" : "", caps[ci]);
            fq_expect_same(what, &cfg, n, qp, gy, scaled, &ref, &cp);
            fq_out_free(&ref);
            fq_out_free(&cp);
        }
        const int rows = 2000, k = 10;
        float *zt = sqt_hrand((size_t)rows * k, -6, 6, 70 + ci), *zs = sqt_hrand((size_t)rows * k, -6, 6, 71 + ci);
        int32_t *lab = calloc(rows, sizeof(int32_t)), *am[2];
        for (int i = 0; i < rows; i++) lab[i] = i % k;
        float l[2][2], *gkl[2], *gce[2];
        for (int r = 0; r < 2; r++) {
            am[r] = calloc(rows, sizeof(int32_t));
            lab_grid_select(LAB_GRID_AUTO, r ? caps[ci] : 0);
            loss_run(g, rows, k, zt, zs, lab, l[r], &gkl[r], &gce[r], am[r]);
        }
        cr_expect_eq(sqt_check_equal("kl grad, reduce_blocks", gkl[1], gkl[0], (size_t)rows * k), 0);
        for (int j = 0; j < 2; j++)
            cr_expect(fabsf(l[1][j] - l[0][j]) <= 1e-6f * fabsf(l[0][j]), "loss %d: %.9g vs %.9g", j,
                      l[1][j], l[0][j]);
        for (int r = 0; r < 2; r++) { free(gkl[r]); free(gce[r]); free(am[r]); }
        free(zt); free(zs); free(lab); free(x); free(gy); free(gx0);
    }
    lab_grid_select(LAB_GRID_AUTO, 0);
}
