/* test_golden.c: the CPU backend's ops against PyTorch golden values (tests/data/ops_golden.bin,
   written by tools/gen_golden.py in float64 and stored as float32), forward and every gradient;
   plus the fixture reader's error handling. Backward ops accumulate, so gradient buffers are
   pre-filled with PRE and PRE is subtracted before comparing: this checks "+=" as well. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sqakd/backend.h"
#include "util_golden.h"

/* value that gradient buffers hold before a backward call (they must accumulate into it) */
#define PRE 0.25f

static sq_golden *G;
static const sq_backend *BE;
static char g_load_err[1024];   /* why the fixture did not load (reported by the first need()) */

#define MAX_BUFS 64
static void *g_bufs[MAX_BUFS];
static int g_nbufs;

static void setup(void)
{
    char path[1024];
    sq_golden_path("ops_golden.bin", path, sizeof path);
    if (sq_golden_load(path, &G) != SQ_OK)
        snprintf(g_load_err, sizeof g_load_err, "%s", sq_last_error());
    BE = sq_backend_cpu();
    g_nbufs = 0;
}

static void teardown(void)
{
    for (int i = 0; i < g_nbufs; i++) BE->free(g_bufs[i]);
    g_nbufs = 0;
    sq_golden_free(G);
    G = NULL;
}

TestSuite(golden, .init = setup, .fini = teardown);

static const sq_golden_tensor *need(const char *c, const char *name)
{
    cr_assert_not_null(G, "%s", g_load_err);
    cr_assert_not_null(BE, "no CPU backend: %s", sq_last_error());
    const sq_golden_tensor *t = sq_golden_findf(G, c, name);
    cr_assert_not_null(t, "fixture lacks %s.%s (regenerate with tools/gen_golden.py)", c, name);
    return t;
}

static double cfg(const char *c, int i)
{
    const sq_golden_tensor *t = need(c, "cfg");
    cr_assert_lt((size_t)i, t->numel, "%s.cfg has no entry %d", c, i);
    return t->data[i];
}

static int cfgi(const char *c, int i) { return (int)lrint(cfg(c, i)); }

/* backend buffer of n floats, filled with v */
static float *buf(size_t n, float v)
{
    cr_assert_lt(g_nbufs, MAX_BUFS);
    float *p = BE->alloc((n ? n : 1) * sizeof(float));
    cr_assert_not_null(p);
    g_bufs[g_nbufs++] = p;
    BE->fill(n ? n : 1, v, p);
    return p;
}

/* backend copy of a fixture tensor */
static float *up(const char *c, const char *name)
{
    const sq_golden_tensor *t = need(c, name);
    float *p = buf(t->numel, 0.0f);
    BE->copy_h2d(p, t->data, t->numel * sizeof(float));
    return p;
}

/* compares n backend floats (minus `minus`) with fixture c.name; fails the test with details */
static void check(const char *c, const char *name, const float *dev, size_t n, float minus,
                  float atol, float rtol)
{
    const sq_golden_tensor *t = need(c, name);
    cr_assert_eq(t->numel, n, "%s.%s: fixture has %zu elements, op produced %zu", c, name,
                 t->numel, n);
    float *h = malloc((n ? n : 1) * sizeof(float));
    cr_assert_not_null(h);
    BE->copy_d2h(h, dev, n * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] -= minus;
    char what[128];
    snprintf(what, sizeof what, "%s.%s", c, name);
    size_t bad = sq_golden_compare(what, h, t->data, n, atol, rtol);
    free(h);
    cr_expect_eq(bad, 0, "%s: %zu of %zu elements differ from PyTorch (atol %g, rtol %g)", what,
                 bad, n, atol, rtol);
}

static size_t numel_of(const char *c, const char *name) { return need(c, name)->numel; }

/* ---- convolution ----
   fp32 sums of <= 72 products of O(1) terms (fwd, gx) or <= 98 (gw, gb) against fp64: errors are
   ~1e-6 relative to the sum of |terms|, so atol 1e-4 + rtol 1e-4 leaves a wide margin. */
static void run_conv(const char *c)
{
    sq_conv_shape cs;
    int n = cfgi(c, 0), ch = cfgi(c, 1), h = cfgi(c, 2), w = cfgi(c, 3), k = cfgi(c, 4);
    int has_b = cfgi(c, 10);
    cr_assert_eq(sq_conv_shape_init(&cs, n, ch, h, w, k, cfgi(c, 5), cfgi(c, 6), cfgi(c, 7),
                                    cfgi(c, 8), cfgi(c, 9)), SQ_OK, "%s", sq_last_error());
    const sq_golden_tensor *ty = need(c, "y");
    cr_assert(ty->ndim == 4 && ty->dims[2] == cs.oh && ty->dims[3] == cs.ow,
              "%s: output %dx%d, PyTorch %lldx%lld", c, cs.oh, cs.ow, (long long)ty->dims[2],
              (long long)ty->dims[3]);
    size_t nx = numel_of(c, "x"), nw = numel_of(c, "w"), ny = ty->numel;
    float *x = up(c, "x"), *wt = up(c, "w"), *b = has_b ? up(c, "b") : NULL, *gy = up(c, "gy");
    size_t wsb = BE->conv_ws_bytes(&cs);
    void *ws = buf(wsb / sizeof(float) + 1, 0.0f);
    float *y = buf(ny, 0.0f);
    BE->conv2d_fwd(&cs, x, wt, b, y, ws);
    check(c, "y", y, ny, 0, 1e-4f, 1e-4f);
    float *gx = buf(nx, PRE), *gw = buf(nw, PRE), *gb = has_b ? buf(k, PRE) : NULL;
    BE->conv2d_bwd(&cs, x, wt, gy, gx, gw, gb, ws);
    check(c, "gx", gx, nx, PRE, 1e-4f, 1e-4f);
    check(c, "gw", gw, nw, PRE, 1e-4f, 1e-4f);
    if (has_b) check(c, "gb", gb, k, PRE, 1e-4f, 1e-4f);
}

Test(golden, conv_s1p1) { run_conv("conv_s1p1"); }
Test(golden, conv_s2p1) { run_conv("conv_s2p1"); }
Test(golden, conv_s1p0) { run_conv("conv_s1p0"); }
Test(golden, conv_s2p0) { run_conv("conv_s2p0"); }
Test(golden, conv_k1s1) { run_conv("conv_k1s1"); }
Test(golden, conv_k1s2) { run_conv("conv_k1s2"); }
Test(golden, conv_groups2) { run_conv("conv_g2"); }
Test(golden, conv_depthwise) { run_conv("conv_dw"); }
Test(golden, conv_depthwise_s2) { run_conv("conv_dw_s2"); }
Test(golden, conv_depthwise_mult2) { run_conv("conv_dw_m2"); }

/* ---- batch norm ----
   y and the statistics are O(1) sums of <= 100 terms: 1e-5 abs + 1e-4 rel. gx subtracts two
   means of products (cancellation), so it gets 1e-4 abs + 1e-3 rel. */
static void run_bn_train(const char *c)
{
    int n = cfgi(c, 0), ch = cfgi(c, 1), hw = cfgi(c, 2);
    float momentum = (float)cfg(c, 3), eps = (float)cfg(c, 4);
    size_t nx = (size_t)n * ch * hw;
    float *x = up(c, "x"), *gamma = up(c, "gamma"), *beta = up(c, "beta");
    float *rm = up(c, "rm"), *rv = up(c, "rv"), *gy = up(c, "gy");
    float *y = buf(nx, 0), *sm = buf(ch, 0), *si = buf(ch, 0);
    BE->bn_fwd_train(n, ch, hw, x, gamma, beta, rm, rv, momentum, eps, y, sm, si);
    check(c, "y", y, nx, 0, 1e-5f, 1e-4f);
    check(c, "save_mean", sm, ch, 0, 1e-5f, 1e-4f);
    check(c, "save_invstd", si, ch, 0, 1e-5f, 1e-4f);
    check(c, "rm_new", rm, ch, 0, 1e-5f, 1e-4f);
    check(c, "rv_new", rv, ch, 0, 1e-5f, 1e-4f);
    float *gx = buf(nx, PRE), *gg = buf(ch, PRE), *gbeta = buf(ch, PRE);
    BE->bn_bwd(n, ch, hw, x, gy, gamma, sm, si, gx, gg, gbeta);
    check(c, "gx", gx, nx, PRE, 1e-4f, 1e-3f);
    check(c, "ggamma", gg, ch, PRE, 1e-4f, 1e-4f);
    check(c, "gbeta", gbeta, ch, PRE, 1e-4f, 1e-4f);
}

Test(golden, bn2d_train) { run_bn_train("bn2d_train"); }
Test(golden, bn1d_train) { run_bn_train("bn1d_train"); }

Test(golden, bn2d_eval)
{
    const char *c = "bn2d_eval";
    int n = cfgi(c, 0), ch = cfgi(c, 1), hw = cfgi(c, 2);
    size_t nx = (size_t)n * ch * hw;
    float *y = buf(nx, 0);
    BE->bn_fwd_eval(n, ch, hw, up(c, "x"), up(c, "gamma"), up(c, "beta"), up(c, "rm"),
                    up(c, "rv"), (float)cfg(c, 3), y);
    /* elementwise affine map of O(1) values: float32 rounding only */
    check(c, "y", y, nx, 0, 1e-5f, 1e-5f);
}

/* ---- elementwise activations: exact up to float32 rounding (1e-6) ---- */
static void run_act(const char *c, sq_act_kind kind)
{
    size_t n = (size_t)cfgi(c, 0);
    float *x = up(c, "x"), *y = buf(n, 0), *gx = buf(n, PRE);
    BE->act_fwd(kind, n, x, y);
    check(c, "y", y, n, 0, 1e-6f, 0);
    BE->act_bwd(kind, n, x, up(c, "gy"), gx);
    check(c, "gx", gx, n, PRE, 1e-6f, 0);
}

Test(golden, relu) { run_act("relu", SQ_ACT_RELU); }
Test(golden, relu6) { run_act("relu6", SQ_ACT_RELU6); }

/* ---- pooling: max is exact; avg sums <= 9 terms (1e-6 abs + 1e-5 rel) ---- */
static void run_pool(const char *c, sq_pool_kind kind)
{
    int n = cfgi(c, 0), ch = cfgi(c, 1), h = cfgi(c, 2), w = cfgi(c, 3);
    int k = cfgi(c, 4), stride = cfgi(c, 5), pad = cfgi(c, 6);
    size_t nx = numel_of(c, "x"), ny = numel_of(c, "y");
    float *x = up(c, "x"), *y = buf(ny, 0), *gx = buf(nx, PRE);
    int32_t *am = (int32_t *)buf(ny, 0);
    sq_pool_shape ps;
    cr_assert_eq(sq_pool_shape_square(&ps, n, ch, h, w, k, stride, pad), SQ_OK);
    BE->pool_fwd(kind, &ps, x, y, am);
    check(c, "y", y, ny, 0, 1e-6f, 1e-5f);
    BE->pool_bwd(kind, &ps, up(c, "gy"), am, gx);
    check(c, "gx", gx, nx, PRE, 1e-6f, 1e-5f);
}

Test(golden, maxpool_k2s2) { run_pool("maxpool_k2s2", SQ_POOL_MAX); }
Test(golden, maxpool_k3s2p1) { run_pool("maxpool_k3s2p1", SQ_POOL_MAX); }
Test(golden, avgpool_k2s2) { run_pool("avgpool_k2s2", SQ_POOL_AVG); }
Test(golden, avgpool_k3s2p1) { run_pool("avgpool_k3s2p1", SQ_POOL_AVG); }

Test(golden, global_avg_pool)
{
    const char *c = "gap";
    int n = cfgi(c, 0), ch = cfgi(c, 1), hw = cfgi(c, 2);
    size_t nx = (size_t)n * ch * hw;
    float *y = buf((size_t)n * ch, 0), *gx = buf(nx, PRE);
    BE->gap_fwd(n, ch, hw, up(c, "x"), y);
    check(c, "y", y, (size_t)n * ch, 0, 1e-6f, 1e-5f);   /* mean of 20 terms */
    BE->gap_bwd(n, ch, hw, up(c, "gy"), gx);
    check(c, "gx", gx, nx, PRE, 1e-6f, 1e-5f);
}

/* ---- linear: sums of <= 7 products (1e-5 abs + 1e-5 rel) ---- */
static void run_linear(const char *c)
{
    int n = cfgi(c, 0), in = cfgi(c, 1), out = cfgi(c, 2), has_b = cfgi(c, 3);
    float *x = up(c, "x"), *w = up(c, "w"), *b = has_b ? up(c, "b") : NULL;
    float *y = buf((size_t)n * out, 0);
    BE->linear_fwd(n, in, out, x, w, b, y);
    check(c, "y", y, (size_t)n * out, 0, 1e-5f, 1e-5f);
    float *gx = buf((size_t)n * in, PRE), *gw = buf((size_t)out * in, PRE);
    float *gb = has_b ? buf(out, PRE) : NULL;
    BE->linear_bwd(n, in, out, x, w, up(c, "gy"), gx, gw, gb);
    check(c, "gx", gx, (size_t)n * in, PRE, 1e-5f, 1e-5f);
    check(c, "gw", gw, (size_t)out * in, PRE, 1e-5f, 1e-5f);
    if (has_b) check(c, "gb", gb, out, PRE, 1e-5f, 1e-5f);
}

Test(golden, linear) { run_linear("linear"); }
Test(golden, linear_nobias) { run_linear("linear_nb"); }

/* ---- structural ops: pure data movement, exact (PRE round trip aside) ---- */
static void run_shortcut(const char *c)
{
    int n = cfgi(c, 0), ch = cfgi(c, 1), h = cfgi(c, 2), w = cfgi(c, 3), k = cfgi(c, 4);
    size_t nx = numel_of(c, "x"), ny = numel_of(c, "y");
    float *y = buf(ny, -7.0f), *gx = buf(nx, PRE);
    BE->shortcut_a_fwd(n, ch, h, w, k, up(c, "x"), y);
    check(c, "y", y, ny, 0, 0, 0);
    BE->shortcut_a_bwd(n, ch, h, w, k, up(c, "gy"), gx);
    check(c, "gx", gx, nx, PRE, 1e-6f, 0);
}

Test(golden, shortcut_a) { run_shortcut("shortcut_a"); }
Test(golden, shortcut_a_odd) { run_shortcut("shortcut_a_odd"); }

Test(golden, concat)
{
    const char *c = "concat";
    int n = cfgi(c, 0), c1 = cfgi(c, 1), c2 = cfgi(c, 2), hw = cfgi(c, 3);
    size_t ny = (size_t)n * (c1 + c2) * hw;
    float *y = buf(ny, 0), *ga = buf((size_t)n * c1 * hw, PRE), *gb = buf((size_t)n * c2 * hw, PRE);
    BE->concat_fwd(n, c1, c2, hw, up(c, "a"), up(c, "b"), y);
    check(c, "y", y, ny, 0, 0, 0);
    BE->concat_bwd(n, c1, c2, hw, up(c, "gy"), ga, gb);
    check(c, "ga", ga, (size_t)n * c1 * hw, PRE, 1e-6f, 0);
    check(c, "gb", gb, (size_t)n * c2 * hw, PRE, 1e-6f, 0);
}

static void run_shuffle(const char *c)
{
    int n = cfgi(c, 0), ch = cfgi(c, 1), hw = cfgi(c, 2), g = cfgi(c, 3);
    size_t nx = (size_t)n * ch * hw;
    float *y = buf(nx, 0), *gx = buf(nx, PRE);
    BE->shuffle_fwd(n, ch, hw, g, up(c, "x"), y);
    check(c, "y", y, nx, 0, 0, 0);
    BE->shuffle_bwd(n, ch, hw, g, up(c, "gy"), gx);
    check(c, "gx", gx, nx, PRE, 1e-6f, 0);
}

Test(golden, shuffle_g2) { run_shuffle("shuffle_g2"); }
Test(golden, shuffle_g3) { run_shuffle("shuffle_g3"); }

/* ---- losses: softmax/log-sum-exp of O(3) logits in fp32: 1e-5 abs + 1e-5 rel ---- */
Test(golden, softmax_ce_mean)
{
    const char *c = "ce";
    int n = cfgi(c, 0), k = cfgi(c, 1);
    const sq_golden_tensor *tl = need(c, "labels");
    int32_t lab[64];
    cr_assert_leq(tl->numel, 64);
    for (size_t i = 0; i < tl->numel; i++) lab[i] = (int32_t)lrintf(tl->data[i]);
    int32_t *dlab = (int32_t *)buf(tl->numel, 0);
    BE->copy_h2d(dlab, lab, tl->numel * sizeof(int32_t));
    float *loss = buf(1, 0), *gl = buf((size_t)n * k, 0);
    BE->softmax_ce(n, k, up(c, "logits"), dlab, 1.0f, loss, gl);
    check(c, "loss", loss, 1, 0, 1e-5f, 1e-5f);
    check(c, "glogits", gl, (size_t)n * k, 0, 1e-6f, 1e-5f);
}

static void run_kl(const char *c)
{
    int n = cfgi(c, 0), k = cfgi(c, 1);
    float T = (float)cfg(c, 2), alpha = (float)cfg(c, 3);
    float *zt = up(c, "zt"), *zs = up(c, "zs"), *loss = buf(1, 0), *g = buf((size_t)n * k, 0);
    BE->kl_fwd_bwd(n, k, zt, zs, T, alpha, loss, g);
    check(c, "loss", loss, 1, 0, 1e-5f, 1e-5f);
    check(c, "gzs", g, (size_t)n * k, 0, 1e-6f, 1e-5f);
    float *loss2 = buf(1, 0);
    BE->kl_fwd_bwd(n, k, zt, zs, T, alpha, loss2, NULL);   /* evaluation: loss only */
    check(c, "loss", loss2, 1, 0, 1e-5f, 1e-5f);
}

Test(golden, kl_T4_alpha1) { run_kl("kl"); }
Test(golden, kl_T2_alpha3) { run_kl("kl_t2a3"); }
Test(golden, kl_method_vector) { run_kl("kl_vec"); }

/* ---- optimizers: 3 steps of PyTorch SGD / Adam. Each step is a few fp32 flops per element;
   Adam divides by sqrt(v) + eps, which amplifies rounding of tiny v: 1e-6 abs + 1e-5 rel. ---- */
static void run_optim(const char *c, int adam)
{
    size_t n = numel_of(c, "p0");
    int steps = cfgi(c, adam ? 5 : 3);
    float *p = up(c, "p0"), *m = buf(n, 0), *v = buf(n, 0);
    for (int t = 1; t <= steps; t++) {
        char gname[16], pname[16];
        snprintf(gname, sizeof gname, "g%d", t);
        snprintf(pname, sizeof pname, "p%d", t);
        float *g = up(c, gname);
        if (adam)
            BE->adam_step(n, p, g, m, v, (float)cfg(c, 0), (float)cfg(c, 1), (float)cfg(c, 2),
                          (float)cfg(c, 3), (float)cfg(c, 4), t);
        else
            BE->sgd_step(n, p, g, m, (float)cfg(c, 0), (float)cfg(c, 1), (float)cfg(c, 2));
        check(c, pname, p, n, 0, 1e-6f, 1e-5f);
    }
}

Test(golden, sgd_momentum_wd_3steps) { run_optim("sgd", 0); }
Test(golden, adam_l2_3steps) { run_optim("adam", 1); }

/* ---- EWGS fake quantization (method.md 3.2): y is exact on the grid (1e-6); gx is per element
   (1e-5); the bound gradients sum 96 terms (1e-4 abs + 1e-4 rel). ---- */
static void run_fq(const char *c)
{
    size_t n = numel_of(c, "x");
    sq_quant_cfg qc = {0};
    qc.kind = SQ_QUANT_EWGS;
    qc.role = cfgi(c, 0) ? SQ_QROLE_ACT : SQ_QROLE_WEIGHT;
    qc.bits = cfgi(c, 1);
    qc.is_signed = qc.role == SQ_QROLE_WEIGHT;
    qc.delta = (float)cfg(c, 2);
    qc.grad_numel = (float)n;
    cr_assert_eq(sq_quant_cfg_check(&qc), SQ_OK, "%s", sq_last_error());
    float *x = up(c, "x"), *qp = up(c, "qp"), *y = buf(n, 0), *scratch = buf(SQ_QUANT_SCRATCH, 0);
    BE->fakequant_fwd(&qc, n, x, qp, y, scratch);
    check(c, "y", y, n, 0, 1e-6f, 0);
    float *gx = buf(n, PRE), *gqp = buf(2, PRE);
    BE->fakequant_bwd(&qc, n, x, qp, up(c, "gy"), gx, gqp, scratch);
    check(c, "gx", gx, n, PRE, 1e-5f, 1e-5f);
    check(c, "gqp", gqp, 2, PRE, 1e-4f, 1e-4f);
}

Test(golden, fakequant_ewgs_w2) { run_fq("fq_ewgs_w2"); }
Test(golden, fakequant_ewgs_w3_delta) { run_fq("fq_ewgs_w3d"); }
Test(golden, fakequant_ewgs_a2) { run_fq("fq_ewgs_a2"); }
Test(golden, fakequant_ewgs_a4_delta) { run_fq("fq_ewgs_a4d"); }

Test(golden, absscale)
{
    const char *c = "absscale";
    size_t n = (size_t)cfgi(c, 0);
    float *s = up(c, "s"), *z = up(c, "z"), *y = buf(n, 0), *gz = buf(n, PRE), *gs = buf(1, PRE);
    BE->absscale_fwd(n, s, z, y);
    check(c, "y", y, n, 0, 1e-6f, 1e-6f);
    BE->absscale_bwd(n, s, z, up(c, "gy"), gz, gs);
    check(c, "gz", gz, n, PRE, 1e-6f, 1e-6f);
    check(c, "gs", gs, 1, PRE, 1e-5f, 1e-5f);   /* sum of 20 products */
}

/* ---- the reader rejects broken files with a clear message ---- */
static const char *write_tmp(const void *data, size_t n)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/sqakd_golden_%d.bin", (int)getpid());
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
    return path;
}

static void expect_format_error(const unsigned char *data, size_t n, const char *needle)
{
    sq_golden *g = (sq_golden *)1;
    const char *path = write_tmp(data, n);
    sq_status st = sq_golden_load(path, &g);
    unlink(path);
    cr_expect_eq(st, SQ_EFORMAT, "expected SQ_EFORMAT, got %d", st);
    cr_expect_null(g);
    cr_expect_not_null(strstr(sq_last_error(), needle), "message '%s' lacks '%s'",
                       sq_last_error(), needle);
}

Test(golden, reader_rejects_bad_files)
{
    /* a valid one-tensor file: name "a", 1 dim of 2, data {1, 2} */
    unsigned char ok[] = {'S', 'Q', 'G', 'O', 'L', 'D', '0', '1', 1, 0, 0, 0, 1, 0, 0, 0,
                          1, 0, 0, 0, 'a', 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
                          0, 0, 0x80, 0x3f, 0, 0, 0, 0x40};
    sq_golden *g = NULL;
    const char *path = write_tmp(ok, sizeof ok);
    cr_assert_eq(sq_golden_load(path, &g), SQ_OK, "%s", sq_last_error());
    unlink(path);
    const sq_golden_tensor *t = sq_golden_find(g, "a");
    cr_assert_not_null(t);
    cr_expect(t->ndim == 1 && t->dims[0] == 2 && t->data[0] == 1.0f && t->data[1] == 2.0f);
    cr_expect_null(sq_golden_find(g, "b"));
    sq_golden_free(g);

    unsigned char bad[sizeof ok];
    memcpy(bad, ok, sizeof ok);
    bad[0] = 'X';
    expect_format_error(bad, sizeof bad, "bad magic");
    memcpy(bad, ok, sizeof ok);
    bad[8] = 2;
    expect_format_error(bad, sizeof bad, "version 2");
    expect_format_error(ok, sizeof ok - 3, "truncated");
    expect_format_error(ok, 10, "truncated");

    sq_golden *none = NULL;
    cr_expect_eq(sq_golden_load("/nonexistent/sqakd/golden.bin", &none), SQ_EIO);
    cr_expect_null(none);
}
