/* test_cuda_fused.c: Criterion suite "cuda_fused": the CUDA backend's fused ops (backend.h:
   BatchNorm (training) + activation, residual add + activation, BatchNorm + add + activation,
   forward and backward; kernels/cuda/bn.cu and act.cu).
   - Each op against the CPU backend's fused op (kernels/cpu/fused.c) on awkward shapes, with
     ReLU and ReLU6 (scaled so that both of ReLU6's bounds clip), with and without the residual
     and its gradient, guard bytes around every device output and gradients that start non-zero
     (accumulation is what is checked). The backward gets the CPU forward's output on both
     sides, so that act'(y) masks the same elements.
   - A quantized resnet20 training step (forward, backward, two steps) on the CUDA backend with
     the fused ops equals the same step without them bit for bit: logits, weight and quantizer
     gradients, running statistics. The fused kernels do the unfused ones' arithmetic in the same
     order.
   Without a GPU every test SKIPS (under cuemu they run on the emulated device). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sqakd/model.h"
#include "sqakd/quant_math.h"
#include <stdio.h>
#include "util_check.h"
#include "util_fixtures.h"
#include "cuda_hooks.h"

static void setup(void) { (void)sqt_cuda_configure(); /* cuDNN off TF32 (cuda_hooks.h) */ }

TestSuite(cuda_fused, .init = setup, .timeout = 600);

static const sq_backend *gpu(void)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    cr_assert(g->bn_act_fwd_train && g->bn_act_bwd && g->add_act_fwd && g->add_act_bwd &&
              g->bn_add_act_fwd_train && g->bn_add_act_bwd);
    return g;
}

/* one (shape, activation, residual) case of the BN fused ops against the CPU */
static void bn_case(const sq_backend *g, int n, int ch, int hw, sq_act_kind act, int res,
                    uint64_t seed)
{
    const sq_backend *c = sq_backend_cpu();
    const size_t m = (size_t)n * ch * hw, B = m * sizeof(float), C = ch * sizeof(float);
    /* ReLU6: outputs spread over about -10 .. 14, so that both bounds clip */
    const float glo = act == SQ_ACT_RELU6 ? 2.0f : 0.5f, ghi = act == SQ_ACT_RELU6 ? 4.0f : 1.5f;
    const float blo = act == SQ_ACT_RELU6 ? 1.0f : -0.5f, bhi = act == SQ_ACT_RELU6 ? 3.0f : 0.5f;
    float *x = sqt_hrand(m, -3, 5, seed), *r = res ? sqt_hrand(m, -2, 2, seed + 1) : NULL,
          *gy = sqt_hrand(m, -1, 1, seed + 2), *gamma = sqt_hrand(ch, glo, ghi, seed + 3),
          *beta = sqt_hrand(ch, blo, bhi, seed + 4), *rm0 = sqt_hrand(ch, -0.1f, 0.1f, seed + 5),
          *rv0 = sqt_hrand(ch, 0.5f, 1.5f, seed + 6), *gx0 = sqt_hrand(m, -1, 1, seed + 7),
          *gr0 = sqt_hrand(m, -1, 1, seed + 8), *gg0 = sqt_hrand(ch, -1, 1, seed + 9),
          *gb0 = sqt_hrand(ch, -1, 1, seed + 10);
    float *y = sqt_hvec(m), *rm = sqt_hdup(rm0, ch), *rv = sqt_hdup(rv0, ch), *sm = sqt_hvec(ch),
          *si = sqt_hvec(ch), *gx = sqt_hdup(gx0, m), *gr = sqt_hdup(gr0, m),
          *gg = sqt_hdup(gg0, ch), *gb = sqt_hdup(gb0, ch);
    if (res) {
        c->bn_add_act_fwd_train(n, ch, hw, act, x, r, gamma, beta, rm, rv, 0.1f, 1e-5f, y, sm, si);
        c->bn_add_act_bwd(n, ch, hw, act, x, y, gy, gamma, sm, si, gx, gr, gg, gb);
    } else {
        c->bn_act_fwd_train(n, ch, hw, act, x, gamma, beta, rm, rv, 0.1f, 1e-5f, y, sm, si);
        c->bn_act_bwd(n, ch, hw, act, x, y, gy, gamma, sm, si, gx, gg, gb);
    }
    /* both activation regions are exercised (for ReLU6 also the upper bound) */
    size_t zero = 0, top = 0;
    for (size_t i = 0; i < m; i++) {
        zero += y[i] == 0.0f;
        top += y[i] == 6.0f;
    }
    if (m >= 1000) {
        cr_expect(zero > 0 && zero < m, "%s: %zu of %zu outputs are 0", res ? "bn_add_act" : "bn_act", zero, m);
        if (act == SQ_ACT_RELU6) cr_expect(top > 0, "ReLU6: no output at 6 of %zu", m);
    }

    float *dx = sqt_dput(g, x, B), *dr = res ? sqt_dput(g, r, B) : NULL, *dga = sqt_dput(g, gamma, C),
          *dbe = sqt_dput(g, beta, C), *drm = sqt_dput(g, rm0, C), *drv = sqt_dput(g, rv0, C),
          *dy = sqt_dput(g, NULL, B), *dsm = sqt_dput(g, NULL, C), *dsi = sqt_dput(g, NULL, C);
    if (res)
        g->bn_add_act_fwd_train(n, ch, hw, act, dx, dr, dga, dbe, drm, drv, 0.1f, 1e-5f, dy, dsm, dsi);
    else
        g->bn_act_fwd_train(n, ch, hw, act, dx, dga, dbe, drm, drv, 0.1f, 1e-5f, dy, dsm, dsi);
    sqt_gpu_ok(g);
    const double at = 1e-5, rt = 1e-5;
    float *o;
    /* the CPU computes x a + (beta - mean a) with a = gamma invstd, the GPU (x - mean) invstd
       gamma + beta: they differ by rounding of x a, large where the variance is tiny (m = 1:
       invstd = 1 / sqrt(eps)) */
    double amax = 0.0;
    for (int k = 0; k < ch; k++)
        if (fabs((double)gamma[k] * si[k]) > amax) amax = fabs((double)gamma[k] * si[k]);
    const double aty = 4 * at + 5.0 * amax * 1.2e-7 * 4;
    o = sqt_fetch(g, dy, m, "fused y"); sqt_expect_close("fused y", o, y, m, aty, rt, seed); free(o);
    o = sqt_fetch(g, drm, ch, "run_mean"); sqt_expect_close("run_mean", o, rm, ch, at, rt, seed); free(o);
    o = sqt_fetch(g, drv, ch, "run_var"); sqt_expect_close("run_var", o, rv, ch, at, rt, seed); free(o);
    o = sqt_fetch(g, dsm, ch, "save_mean"); sqt_expect_close("save_mean", o, sm, ch, at, rt, seed); free(o);
    o = sqt_fetch(g, dsi, ch, "save_invstd"); sqt_expect_close("save_invstd", o, si, ch, at, 1e-4, seed); free(o);

    /* backward from the CPU's y and saved statistics on both sides */
    float *dyc = sqt_dput(g, y, B), *dgy = sqt_dput(g, gy, B), *dsm2 = sqt_dput(g, sm, C),
          *dsi2 = sqt_dput(g, si, C), *dgx = sqt_dput(g, gx0, B), *dgr = res ? sqt_dput(g, gr0, B) : NULL,
          *dgg = sqt_dput(g, gg0, C), *dgb = sqt_dput(g, gb0, C);
    if (res)
        g->bn_add_act_bwd(n, ch, hw, act, dx, dyc, dgy, dga, dsm2, dsi2, dgx, dgr, dgg, dgb);
    else
        g->bn_act_bwd(n, ch, hw, act, dx, dyc, dgy, dga, dsm2, dsi2, dgx, dgg, dgb);
    sqt_gpu_ok(g);
    const double gat = 1e-6 * (double)n * hw + 1e-5;
    o = sqt_fetch(g, dgx, m, "fused gx"); sqt_expect_close("fused gx", o, gx, m, 1e-4, 1e-4, seed); free(o);
    if (res) {
        /* gr += gy act'(y): one addition of the same operands */
        o = sqt_fetch(g, dgr, m, "fused gr"); sqt_expect_equal("fused gr", o, gr, m); free(o);
    }
    o = sqt_fetch(g, dgg, ch, "ggamma"); sqt_expect_close("ggamma", o, gg, ch, gat, 1e-5, seed); free(o);
    o = sqt_fetch(g, dgb, ch, "gbeta"); sqt_expect_close("gbeta", o, gb, ch, gat, 1e-5, seed); free(o);
    void *inputs[] = {dx, dr, dga, dbe, dyc, dgy, dsm2, dsi2};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++)
        if (inputs[i]) g->free((char *)inputs[i] - SQT_GUARD);
    float *host[] = {x, r, gy, gamma, beta, rm0, rv0, gx0, gr0, gg0, gb0, y, rm, rv, sm, si, gx, gr, gg, gb};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) free(host[i]);
}

Test(cuda_fused, bn_act_and_bn_add_act_match_cpu)
{
    const sq_backend *g = gpu();
    /* (n, c, hw): single element, BatchNorm1d, odd sizes, several slices per channel */
    static const int shapes[][3] = {{1, 1, 1}, {7, 5, 1}, {2, 3, 5}, {5, 3, 17}, {3, 2, 5000}, {2, 64, 9}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int act = 0; act < 2; act++)
            for (int res = 0; res < 2; res++)
                bn_case(g, shapes[s][0], shapes[s][1], shapes[s][2], (sq_act_kind)act, res,
                        700 + 20 * s + 4 * act + 2 * res);
}

Test(cuda_fused, add_act_matches_cpu_exactly)
{
    const sq_backend *g = gpu();
    const sq_backend *c = sq_backend_cpu();
    for (int si = 0; si < SQT_NSIZES; si++)
        for (int act = 0; act < 2; act++) {
            const size_t n = sqt_sizes[si], B = n * sizeof(float);
            const uint64_t seed = 900 + 10 * si + act;
            /* sums over about -8 .. 8: both of ReLU6's bounds clip */
            float *a = sqt_hrand(n, -4, 4, seed), *b = sqt_hrand(n, -4, 4, seed + 1),
                  *gy = sqt_hrand(n, -1, 1, seed + 2), *ga0 = sqt_hrand(n, -1, 1, seed + 3),
                  *gb0 = sqt_hrand(n, -1, 1, seed + 4);
            float *y = sqt_hvec(n), *ga = sqt_hdup(ga0, n), *gb = sqt_hdup(gb0, n),
                  *ga1 = sqt_hdup(ga0, n);
            c->add_act_fwd(n, (sq_act_kind)act, a, b, y);
            c->add_act_bwd(n, (sq_act_kind)act, y, gy, ga, gb);
            c->add_act_bwd(n, (sq_act_kind)act, y, gy, ga1, NULL); /* one gradient only */
            float *da = sqt_dput(g, a, B), *db = sqt_dput(g, b, B), *dy = sqt_dput(g, NULL, B),
                  *dgy = sqt_dput(g, gy, B), *dga = sqt_dput(g, ga0, B), *dgb = sqt_dput(g, gb0, B),
                  *dga1 = sqt_dput(g, ga0, B);
            g->add_act_fwd(n, (sq_act_kind)act, da, db, dy);
            g->add_act_bwd(n, (sq_act_kind)act, dy, dgy, dga, dgb);
            g->add_act_bwd(n, (sq_act_kind)act, dy, dgy, dga1, NULL);
            g->add_act_bwd(n, (sq_act_kind)act, dy, dgy, NULL, NULL); /* nothing to do */
            sqt_gpu_ok(g);
            float *o;
            o = sqt_fetch(g, dy, n, "add_act y"); sqt_expect_equal("add_act y", o, y, n); free(o);
            o = sqt_fetch(g, dga, n, "add_act ga"); sqt_expect_equal("add_act ga", o, ga, n); free(o);
            o = sqt_fetch(g, dgb, n, "add_act gb"); sqt_expect_equal("add_act gb", o, gb, n); free(o);
            o = sqt_fetch(g, dga1, n, "add_act ga alone"); sqt_expect_equal("add_act ga alone", o, ga1, n); free(o);
            g->free((char *)da - SQT_GUARD);
            g->free((char *)db - SQT_GUARD);
            g->free((char *)dgy - SQT_GUARD);
            float *host[] = {a, b, gy, ga0, gb0, y, ga, gb, ga1};
            for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) free(host[i]);
        }
}

/* ---- a whole training step: fused equals unfused bit for bit ---- */

static sq_model *make(const sq_backend *be, int batch, const sq_quant_opts *q)
{
    sq_model *m;
    cr_assert_eq(sq_model_create("resnet20", 3, 32, 32, 10, &m), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_model_set_quant(m, q), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_model_setup(m, be, batch, 1), SQ_OK, "%s", sq_last_error());
    sq_model_init_weights(m, 3);
    return m;
}

/* a device buffer of n floats, on the host (caller frees) */
static float *host_copy(const sq_backend *g, const float *d, size_t n)
{
    float *h = malloc(n * sizeof(float));
    cr_assert(h);
    g->copy_d2h(h, d, n * sizeof(float));
    return h;
}

static void expect_same(const sq_backend *g, const char *what, const float *da, const float *db,
                        size_t n)
{
    float *a = host_copy(g, da, n), *b = host_copy(g, db, n);
    cr_expect_eq(sqt_check_equal(what, a, b, n), 0, "%s differ", what);
    free(a);
    free(b);
}

Test(cuda_fused, resnet20_step_fused_equals_unfused_bit_for_bit)
{
    const sq_backend *g = gpu();
    static sq_backend plain;
    plain = *g;
    plain.bn_act_fwd_train = NULL;
    plain.bn_act_bwd = NULL;
    plain.add_act_fwd = NULL;
    plain.add_act_bwd = NULL;
    plain.bn_add_act_fwd_train = NULL;
    plain.bn_add_act_bwd = NULL;
    /* (the scaled fake-quant ops stay: their scale gradient is a sum in another order) */
    plain.conv2d_bwd_set = NULL;
    plain.bn_bwd_set = NULL;
    plain.bn_act_bwd_set = NULL;
    plain.bn_add_act_bwd_set = NULL;
    const int batch = 3;
    sq_quant_opts q = {.kind = SQ_QUANT_EWGS, .wbits = 4, .abits = 4};
    sq_model *a = make(g, batch, &q), *b = make(&plain, batch, &q);
    int fused = 0;
    for (int i = 0; i < a->nnodes; i++) fused += a->nodes[i].fuse_act != 0;
    cr_assert_eq(fused, 10 + 9 + 7, "fused runs: %d", fused); /* as test_fusion.c */
    /* the unfused model zeroes the gradients of the BN and ADD outputs that the fused one
       never touches, and those that the "set" ops write (the convolutions' outputs and
       quantized inputs): its gradient arena zeroes more than twice as much */
    int set = 0;
    for (int i = 0; i < a->nnodes; i++) set += a->nodes[i].gout_set;
    cr_expect_eq(set, 20, "gout_set on %d nodes, want the 19 convolutions + the linear", set);
    cr_expect_gt(b->grad_zero_floats, 2 * a->grad_zero_floats, "zeroed %zu vs %zu floats",
                 b->grad_zero_floats, a->grad_zero_floats);
    const size_t nx = (size_t)batch * 3 * 32 * 32;
    float *x = malloc(nx * sizeof(float)), glog[3 * 10];
    sqt_fill_normal(x, nx, 0.0f, 1.0f, 5);
    sqt_fill_normal(glog, 30, 0.0f, 0.1f, 6);
    float *dglog = g->alloc(sizeof glog);
    cr_assert(dglog);
    g->copy_h2d(dglog, glog, sizeof glog);
    cr_assert_eq(sq_model_quant_init(a, x, batch), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_model_quant_init(b, x, batch), SQ_OK, "%s", sq_last_error());
    for (int step = 0; step < 2; step++) {
        sq_model_set_input(a, x, batch);
        sq_model_set_input(b, x, batch);
        float *za = sq_model_forward(a, batch, 1), *zb = sq_model_forward(b, batch, 1);
        expect_same(g, "logits", za, zb, 30);
        sq_model_zero_grad(a);
        sq_model_zero_grad(b);
        sq_model_backward(a, batch, dglog);
        sq_model_backward(b, batch, dglog);
        sqt_gpu_ok(g);
        expect_same(g, "weight grads", a->g, b->g, a->n_train);
        expect_same(g, "quantizer grads", a->qg, b->qg, a->n_quant);
        expect_same(g, "running stats", a->buf, b->buf, a->n_buf);
        /* a gradient that is not all zero, or the comparison proves nothing */
        float *h = host_copy(g, a->g, a->n_train);
        double s = 0;
        for (size_t i = 0; i < a->n_train; i++) s += (double)h[i] * h[i];
        free(h);
        cr_expect_gt(s, 0.0);
    }
    g->free(dglog);
    free(x);
    sq_model_free(a);
    sq_model_free(b);
}

/* ---- fake quantization with the EWGS output scale folded into the weight ---- */

/* fakequant_scaled_fwd / _bwd against the unfused ops on the same device (fakequant_fwd +
   absscale_fwd; absscale_bwd into a zeroed gy + fakequant_bwd): the same values bit for bit,
   except the scale's gradient, a sum taken in another order. And against the CPU's unfused
   ops within fakequant_*_matches_cpu's tolerances. Every kind, both roles, 2 and 4 bits, s of
   either sign and 0, aligned and unaligned sizes. */
Test(cuda_fused, fakequant_scaled_matches_unfused_and_cpu)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    cr_assert(g->fakequant_scaled_fwd && g->fakequant_scaled_bwd);
    const sq_backend *c = sq_backend_cpu();
    static const size_t sizes[] = {1, 5, 1023, 4099, 65539};
    static const sq_quant_kind kinds[] = {SQ_QUANT_EWGS, SQ_QUANT_PACT, SQ_QUANT_LSQ, SQ_QUANT_DOREFA};
    static const float scales[] = {1.3f, -0.7f, 0.0f};
    int cases = 0;
    for (int ki = 0; ki < 4; ki++)
        for (int weight = 0; weight < 2; weight++)
            for (int bits = 2; bits <= 4; bits += 2)
                for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
                    const size_t n = sizes[si];
                    const int off = (int)(si & 1); /* odd cases start 1 float past alignment */
                    const float s = scales[(ki + si) % 3];
                    const uint64_t seed = 2000 + 100 * ki + 10 * weight + bits + 3 * si;
                    sq_quant_cfg cfg = {kinds[ki], weight ? SQ_QROLE_WEIGHT : SQ_QROLE_ACT, bits,
                                        weight, 0.2f, 0.0f};
                    float qp[2], gqp0[2] = {0.25f, -0.5f}, gs0 = 0.75f;
                    sqt_fq_params(kinds[ki], weight, bits, qp);
                    float *x = sqt_hrand(n + off, weight ? -1.2f : -0.3f, weight ? 1.2f : 1.6f, seed),
                          *gys = sqt_hrand(n + off, -1, 1, seed + 1), *gx0 = sqt_hrand(n + off, -1, 1, seed + 2);
                    /* the CPU, unfused */
                    float *y = sqt_hvec(n), *ys = sqt_hvec(n), *gy = sqt_hvec(n), *gx = sqt_hdup(gx0 + off, n),
                          gqp[2] = {gqp0[0], gqp0[1]}, gs = gs0, scr[SQ_QUANT_SCRATCH] = {0};
                    c->fakequant_fwd(&cfg, n, x + off, qp, y, scr);
                    c->absscale_fwd(n, &s, y, ys);
                    c->absscale_bwd(n, &s, y, gys + off, gy, &gs);
                    c->fakequant_bwd(&cfg, n, x + off, qp, gy, gx, gqp, scr);
                    /* the device: fused (f) and unfused (u) */
                    const size_t B = (n + off) * sizeof(float);
                    float *dx = sqt_dput(g, x, B), *dgys = sqt_dput(g, gys, B), *dqp = sqt_dput(g, qp, 8),
                          *ds = sqt_dput(g, &s, 4);
                    float *fy = sqt_dput(g, NULL, B), *fys = sqt_dput(g, NULL, B), *fgy = sqt_dput(g, NULL, B),
                          *fgx = sqt_dput(g, gx0, B), *fgqp = sqt_dput(g, gqp0, 8), *fgs = sqt_dput(g, &gs0, 4),
                          *fscr = sqt_dput(g, NULL, SQ_QUANT_SCRATCH * 4);
                    float *uy = sqt_dput(g, NULL, B), *uys = sqt_dput(g, NULL, B), *ugy = sqt_dput(g, NULL, B),
                          *ugx = sqt_dput(g, gx0, B), *ugqp = sqt_dput(g, gqp0, 8), *ugs = sqt_dput(g, &gs0, 4),
                          *uscr = sqt_dput(g, NULL, SQ_QUANT_SCRATCH * 4);
                    g->fakequant_scaled_fwd(&cfg, n, dx + off, dqp, ds, fy + off, fys + off, fscr);
                    g->fakequant_scaled_bwd(&cfg, n, dx + off, dqp, ds, fy + off, dgys + off, fgy + off,
                                            fgx + off, fgqp, fgs, fscr);
                    g->fakequant_fwd(&cfg, n, dx + off, dqp, uy + off, uscr);
                    g->absscale_fwd(n, ds, uy + off, uys + off);
                    g->absscale_bwd(n, ds, uy + off, dgys + off, ugy + off, ugs);
                    g->fakequant_bwd(&cfg, n, dx + off, dqp, ugy + off, ugx + off, ugqp, uscr);
                    sqt_gpu_ok(g);
                    char what[96];
                    snprintf(what, sizeof what, "%s %s %d-bit s %g n %zu+%d", sq_quant_kind_name(kinds[ki]),
                             weight ? "w" : "a", bits, s, n, off);
                    float *r[7], *u[7];
                    float *fl[7] = {fy, fys, fgy, fgx, fgqp, fgs, fscr}, *ul[7] = {uy, uys, ugy, ugx, ugqp, ugs, uscr};
                    const size_t len[7] = {n + off, n + off, n + off, n + off, 2, 1, SQ_QUANT_SCRATCH};
                    for (int j = 0; j < 7; j++) {
                        r[j] = sqt_fetch(g, fl[j], len[j], what);
                        u[j] = sqt_fetch(g, ul[j], len[j], what);
                    }
                    /* fused = unfused on the device: y, ys, gy, gx, parameter gradients */
                    for (int j = 0; j < 5; j++)
                        cr_expect_eq(sqt_check_equal(what, r[j], u[j], len[j]), 0,
                                     "%s: output %d differs from the unfused ops'", what, j);
                    /* the scale's gradient: sum(gys y) over n terms of at most 1.5 */
                    const double gtol = 2e-6 * (double)n + 1e-6;
                    cr_expect(fabs(r[5][0] - u[5][0]) <= gtol, "%s: gs %.9g vs unfused %.9g", what,
                              r[5][0], u[5][0]);
                    cr_expect(fabs(r[5][0] - gs) <= gtol, "%s: gs %.9g vs CPU %.9g", what, r[5][0], gs);
                    if (s == 0.0f) cr_expect_eq(r[5][0], gs0, "%s: s = 0 moved gs", what);
                    /* against the CPU: levels identical except DoReFa weights (tanhf, 1 in 1000) */
                    sq_qm_ctx k;
                    sq_qm_ctx_init(&k, &cfg, n);
                    const size_t allowed = sq_qm_needs_maxabs(&k) ? n / 1000 + 1 : 0;
                    cr_expect(sqt_check_equal(what, r[0] + off, y, n) <= allowed, "%s: y vs CPU", what);
                    cr_expect(sqt_check_close(what, r[1] + off, ys, n, 1e-6, 1e-6, seed) <= allowed,
                              "%s: ys vs CPU", what);
                    cr_expect(sqt_check_close(what, r[2] + off, gy, n, 1e-6, 1e-6, seed) == 0,
                              "%s: gy vs CPU", what);
                    cr_expect(sqt_check_close(what, r[3] + off, gx, n, 1e-6, 1e-5, seed) <= allowed,
                              "%s: gx vs CPU", what);
                    for (int j = 0; j < sq_quant_nparams(&cfg); j++)
                        cr_expect(fabs(r[4][j] - gqp[j]) <= 1e-5 * (double)n * 4 + 1e-6,
                                  "%s: gqp[%d] %.9g vs CPU %.9g", what, j, r[4][j], gqp[j]);
                    for (int j = 0; j < 7; j++) {
                        free(r[j]);
                        free(u[j]);
                    }
                    g->free((char *)dx - SQT_GUARD); g->free((char *)dgys - SQT_GUARD);
                    g->free((char *)dqp - SQT_GUARD); g->free((char *)ds - SQT_GUARD);
                    free(x); free(gys); free(gx0); free(y); free(ys); free(gy); free(gx);
                    cases++;
                }
    cr_expect_eq(cases, 80);
}

/* ---- the frozen teacher: folded convolution, bias, residual and activation in one pass ---- */

Test(cuda_fused, bias_add_act_matches_host_exactly)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    cr_assert(g->bias_add_act_fwd);
    /* (n, c, hw): the float4 path (hw % 4 == 0) and the scalar one, 1 element */
    static const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {2, 16, 64}, {4, 3, 1024}, {2, 7, 30}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int act = 0; act < 2; act++)
            for (int res = 0; res < 2; res++) {
                const int n = shapes[si][0], c = shapes[si][1], hw = shapes[si][2];
                const size_t m = (size_t)n * c * hw, B = m * sizeof(float);
                const uint64_t seed = 3000 + 10 * si + 2 * act + res;
                float *x = sqt_hrand(m, -6, 9, seed), *b = sqt_hrand(c, -2, 2, seed + 1),
                      *r = sqt_hrand(m, -3, 3, seed + 2), *want = sqt_hvec(m);
                const float hi = act == SQ_ACT_RELU6 ? 6.0f : INFINITY;
                for (size_t i = 0; i < m; i++) {
                    float t = x[i] + b[(i / hw) % c];
                    if (res) t = t + r[i];
                    t = t > 0.0f ? t : 0.0f;
                    want[i] = t < hi ? t : hi;
                }
                float *dx = sqt_dput(g, x, B), *db = sqt_dput(g, b, c * sizeof(float)),
                      *dr = sqt_dput(g, r, B), *dy = sqt_dput(g, NULL, B);
                g->bias_add_act_fwd(n, c, hw, (sq_act_kind)act, dx, db, res ? dr : NULL, dy);
                sqt_gpu_ok(g);
                float *o = sqt_fetch(g, dy, m, "bias_add_act y");
                sqt_expect_equal("bias_add_act y", o, want, m);
                free(o);
                g->free((char *)dx - SQT_GUARD); g->free((char *)db - SQT_GUARD);
                g->free((char *)dr - SQT_GUARD);
                free(x); free(b); free(r); free(want);
            }
}

Test(cuda_fused, folded_teacher_forward_fused_equals_unfused_bit_for_bit)
{
    const sq_backend *g = gpu();
    cr_assert(g->bias_add_act_fwd);
    static sq_backend plain;
    plain = *g;
    plain.bias_add_act_fwd = NULL;
    const int batch = 3;
    const size_t nx = (size_t)batch * 3 * 32 * 32;
    float *x = malloc(nx * sizeof(float));
    sqt_fill_normal(x, nx, 0.0f, 1.0f, 8);
    float *logits[2];
    const sq_backend *bes[2] = {g, &plain};
    for (int k = 0; k < 2; k++) {
        sq_model *m;
        cr_assert_eq(sq_model_create("resnet20", 3, 32, 32, 10, &m), SQ_OK, "%s", sq_last_error());
        cr_assert_eq(sq_model_setup(m, bes[k], batch, 0), SQ_OK, "%s", sq_last_error());
        sq_model_init_weights(m, 3);
        /* non-trivial BN affine parameters and running statistics, on the host, then in */
        for (int i = 0; i < m->nnodes; i++) {
            const sq_node *nd = &m->nodes[i];
            if (nd->op != SQ_NODE_BN) continue;
            const int ids[4] = {nd->pw, nd->pb, nd->prm, nd->prv};
            for (int j = 0; j < 4; j++) {
                float *h = malloc(nd->c * sizeof(float));
                if (j == 0 || j == 3) sqt_fill_uniform(h, nd->c, 0.5f, 1.5f, 40 + 4 * i + j);
                else sqt_fill_normal(h, nd->c, 0.0f, 0.3f, 40 + 4 * i + j);
                g->copy_h2d(sq_model_param_ptr(m, ids[j]), h, nd->c * sizeof(float));
                free(h);
            }
        }
        int folded = 0;
        cr_assert_eq(sq_model_fold_bn(m, &folded), SQ_OK, "%s", sq_last_error());
        cr_assert_eq(folded, 19, "folded %d BNs", folded);
        sq_model_set_input(m, x, batch);
        logits[k] = host_copy(g, sq_model_forward(m, batch, 0), 30);
        sqt_gpu_ok(g);
        sq_model_free(m);
    }
    cr_expect_eq(sqt_check_equal("teacher logits", logits[0], logits[1], 30), 0);
    double s = 0;
    for (int i = 0; i < 30; i++) s += fabs(logits[0][i]);
    cr_expect_gt(s, 0.0);
    free(logits[0]);
    free(logits[1]);
    free(x);
}

/* ---- "set" backward variants: gx written, its old contents never read ---- */

/* n floats of NaN on the device (a set op that read them would spread NaN) */
static float *nan_buf(const sq_backend *g, size_t n)
{
    float *h = malloc(n * sizeof(float));
    cr_assert(h);
    for (size_t i = 0; i < n; i++) h[i] = NAN;
    float *d = sqt_dput(g, h, n * sizeof(float));
    free(h);
    return d;
}

Test(cuda_fused, set_backward_variants_equal_accumulating_into_zeros)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    cr_assert(g->conv2d_bwd_set && g->bn_bwd_set && g->bn_act_bwd_set && g->bn_add_act_bwd_set);
    /* BatchNorm, all three forms: (n, c, hw), float4 and scalar paths */
    static const int shapes[][3] = {{1, 1, 1}, {5, 3, 17}, {3, 2, 5000}, {2, 16, 64}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int form = 0; form < 3; form++) {
            const int n = shapes[si][0], ch = shapes[si][1], hw = shapes[si][2];
            const size_t m = (size_t)n * ch * hw, B = m * sizeof(float), C = ch * sizeof(float);
            const uint64_t seed = 4000 + 10 * si + form;
            float *x = sqt_hrand(m, -3, 5, seed), *y = sqt_hrand(m, -1, 7, seed + 1),
                  *gy = sqt_hrand(m, -1, 1, seed + 2), *gamma = sqt_hrand(ch, 0.5f, 1.5f, seed + 3),
                  *sm = sqt_hrand(ch, -0.5f, 0.5f, seed + 4), *si2 = sqt_hrand(ch, 0.5f, 2.0f, seed + 5),
                  *gr0 = sqt_hrand(m, -1, 1, seed + 6), *gg0 = sqt_hrand(ch, -1, 1, seed + 7);
            for (size_t i = 0; i < m; i += 7) y[i] = 0.0f; /* act'(y) = 0 there */
            float *dx = sqt_dput(g, x, B), *dy = sqt_dput(g, y, B), *dgy = sqt_dput(g, gy, B),
                  *dga = sqt_dput(g, gamma, C), *dsm = sqt_dput(g, sm, C), *dsi = sqt_dput(g, si2, C);
            float *gx[2] = {sqt_dput(g, NULL, B), nan_buf(g, m)}, *gr[2], *gg[2], *gb[2];
            for (int v = 0; v < 2; v++) {
                gr[v] = sqt_dput(g, gr0, B);
                gg[v] = sqt_dput(g, gg0, C);
                gb[v] = sqt_dput(g, gg0, C);
            }
            for (int v = 0; v < 2; v++) { /* v = 0: accumulate into zeros; 1: set over NaN */
                if (form == 0)
                    (v ? g->bn_bwd_set : g->bn_bwd)(n, ch, hw, dx, dgy, dga, dsm, dsi, gx[v], gg[v], gb[v]);
                else if (form == 1)
                    (v ? g->bn_act_bwd_set : g->bn_act_bwd)(n, ch, hw, SQ_ACT_RELU6, dx, dy, dgy, dga,
                                                            dsm, dsi, gx[v], gg[v], gb[v]);
                else
                    (v ? g->bn_add_act_bwd_set : g->bn_add_act_bwd)(n, ch, hw, SQ_ACT_RELU, dx, dy, dgy,
                                                                    dga, dsm, dsi, gx[v], gr[v], gg[v], gb[v]);
            }
            sqt_gpu_ok(g);
            float *a, *b;
            a = sqt_fetch(g, gx[0], m, "bn gx"); b = sqt_fetch(g, gx[1], m, "bn gx set");
            sqt_expect_equal("bn gx set", b, a, m); free(a); free(b);
            a = sqt_fetch(g, gr[0], m, "bn gr"); b = sqt_fetch(g, gr[1], m, "bn gr set");
            sqt_expect_equal("bn gr (accumulates in both)", b, a, m); free(a); free(b);
            a = sqt_fetch(g, gg[0], ch, "ggamma"); b = sqt_fetch(g, gg[1], ch, "ggamma set");
            sqt_expect_equal("ggamma", b, a, ch); free(a); free(b);
            a = sqt_fetch(g, gb[0], ch, "gbeta"); b = sqt_fetch(g, gb[1], ch, "gbeta set");
            sqt_expect_equal("gbeta", b, a, ch); free(a); free(b);
            void *in[] = {dx, dy, dgy, dga, dsm, dsi};
            for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) g->free((char *)in[i] - SQT_GUARD);
            float *h[] = {x, y, gy, gamma, sm, si2, gr0, gg0};
            for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) free(h[i]);
        }
    /* convolution: gx by cuDNN with beta = 0 against beta = 1 over zeros; gw, gb accumulate */
    static const int cases[][10] = {{2, 3, 7, 5, 4, 3, 3, 1, 1, 1}, {2, 4, 6, 5, 6, 3, 3, 1, 1, 2},
                                    {3, 16, 16, 16, 32, 3, 3, 2, 1, 1}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int *p = cases[ci];
        sq_conv_shape cs;
        cr_assert_eq(sq_conv_shape_init(&cs, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]), SQ_OK);
        const size_t nx = (size_t)cs.n * cs.c * cs.h * cs.w, nw = (size_t)cs.k * (cs.c / cs.groups) * cs.r * cs.s,
                     ny = (size_t)cs.n * cs.k * cs.oh * cs.ow;
        const uint64_t seed = 4500 + ci;
        float *x = sqt_hrand(nx, -1, 1, seed), *w = sqt_hrand(nw, -1, 1, seed + 1),
              *gy = sqt_hrand(ny, -1, 1, seed + 2), *gw0 = sqt_hrand(nw, -1, 1, seed + 3),
              *gb0 = sqt_hrand(cs.k, -1, 1, seed + 4);
        float *dx = sqt_dput(g, x, nx * 4), *dw = sqt_dput(g, w, nw * 4), *dgy = sqt_dput(g, gy, ny * 4);
        float *gx[2] = {sqt_dput(g, NULL, nx * 4), nan_buf(g, nx)}, *gw[2], *gb[2];
        for (int v = 0; v < 2; v++) {
            gw[v] = sqt_dput(g, gw0, nw * 4);
            gb[v] = sqt_dput(g, gb0, cs.k * 4);
        }
        g->conv2d_bwd(&cs, dx, dw, dgy, gx[0], gw[0], gb[0], NULL);
        g->conv2d_bwd_set(&cs, dx, dw, dgy, gx[1], gw[1], gb[1], NULL);
        sqt_gpu_ok(g);
        float *a, *b;
        a = sqt_fetch(g, gx[0], nx, "conv gx"); b = sqt_fetch(g, gx[1], nx, "conv gx set");
        sqt_expect_equal("conv gx set", b, a, nx); free(a); free(b);
        a = sqt_fetch(g, gw[0], nw, "conv gw"); b = sqt_fetch(g, gw[1], nw, "conv gw set");
        sqt_expect_equal("conv gw", b, a, nw); free(a); free(b);
        a = sqt_fetch(g, gb[0], cs.k, "conv gb"); b = sqt_fetch(g, gb[1], cs.k, "conv gb set");
        sqt_expect_equal("conv gb", b, a, cs.k); free(a); free(b);
        g->free((char *)dx - SQT_GUARD); g->free((char *)dw - SQT_GUARD); g->free((char *)dgy - SQT_GUARD);
        free(x); free(w); free(gy); free(gw0); free(gb0);
    }
}
