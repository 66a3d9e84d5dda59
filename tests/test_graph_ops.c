/* test_graph_ops.c: Criterion suite "graph_ops": the graph nodes of imported (ONNX) CNNs (issue
   18) on the CPU backend: general pooling against the ONNX node tests' own expected outputs
   (tests/data/onnx_pool_golden.bin, tools/gen_onnx_pool_golden.py), pooling's divisor rules on
   hand-computed values, PAD / CLIP / AFFINE / SLICE forward values, the backward of a small graph
   built with the new builders against central finite differences, BN folding of a kh x kw conv,
   quantizer placement behind a PAD node, the builders' argument checks and the 16-bit teacher's
   refusal of the nodes it cannot run. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "model/model_internal.h"
#include "sqakd/teacher_prec.h"
#include "util_check.h"
#include "util_fixtures.h"
#include "util_golden.h"

static sq_model *new_model(const char *arch, int c, int h, int w)
{
    sq_model *m = calloc(1, sizeof *m);
    cr_assert(m);
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    m->in_c = c; m->in_h = h; m->in_w = w; m->classes = 2;
    sq_b_input(m, c, h, w);
    return m;
}

static void setup(sq_model *m, int batch, int grad)
{
    cr_assert_eq(sq_model_setup(m, sq_backend_cpu(), batch, grad), SQ_OK, "%s", sq_last_error());
}

static float *node_out(sq_model *m, int id) { return m->nodes[id].out; }

/* ---- pooling against the onnx package's expected outputs, through a graph node ---- */
Test(graph_ops, onnx_pool_node_tests)
{
    char path[512];
    sq_golden_path("onnx_pool_golden.bin", path, sizeof path);
    sq_golden *g = NULL;
    cr_assert_eq(sq_golden_load(path, &g), SQ_OK, "%s: %s", path, sq_last_error());
    int cases = 0;
    for (int t = 0; t < g->count; t++) {
        const char *nm = g->t[t].name;
        size_t len = strlen(nm);
        if (len < 4 || strcmp(nm + len - 4, ".cfg")) continue;
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(len - 4), nm);
        const float *f = g->t[t].data;
        int q[15];
        for (int i = 0; i < 15; i++) q[i] = (int)f[i];
        const sq_golden_tensor *x = sq_golden_findf(g, name, "x"), *y = sq_golden_findf(g, name, "y");
        cr_assert(x && y, "%s: x or y missing", name);
        sq_model *m = new_model("onnxpool", q[2], q[3], q[4]);
        int id = sq_b_pool_k(m, 0, q[0], q[5], q[6], q[7], q[8], q[9], q[10], q[11], q[12], q[13], q[14]);
        cr_assert_geq(id, 0, "%s: %s", name, sq_last_error());
        cr_assert_eq(m->nodes[id].h, (int)y->dims[2], "%s: output height %d, ONNX %lld", name, m->nodes[id].h,
                     (long long)y->dims[2]);
        cr_assert_eq(m->nodes[id].w, (int)y->dims[3], "%s: output width", name);
        setup(m, q[1], 0);
        sq_model_set_input(m, x->data, q[1]);
        sq_model_forward(m, q[1], 0);
        /* max: a copy of an input; avg: a sum of <= 25 terms in another order, one division */
        size_t bad = sq_golden_compare(name, node_out(m, id), y->data, y->numel, q[0] ? 1e-6f : 0.0f,
                                       q[0] ? 1e-5f : 0.0f);
        cr_expect_eq(bad, 0, "%s: %zu outputs differ from ONNX's", name, bad);
        sq_model_free(m);
        cases++;
    }
    /* every 2-D float case without dilations: 11 average, 9 max */
    cr_expect_eq(cases, 20, "ONNX pool cases run: %d", cases);
    sq_golden_free(g);
}

/* PyTorch's rules on 4x4 ones, k 3, stride 2, pad 1, ceil_mode: 3x3 outputs, the last window
   [3, 6) runs past the padded input [-1, 5): with count_include_pad it divides by the rows and
   columns inside the padded input (2 at the end, 3 elsewhere), without by those inside the input */
Test(graph_ops, avg_pool_divisors)
{
    float x[16];
    for (int i = 0; i < 16; i++) x[i] = 1.0f;
    for (int cip = 0; cip < 2; cip++) {
        sq_model *m = new_model("p", 1, 4, 4);
        int id = sq_b_pool_k(m, 0, SQ_POOL_AVG, 3, 3, 2, 2, 1, 1, 1, 1, 1, cip);
        cr_assert_eq(m->nodes[id].h, 3);
        cr_assert_eq(m->nodes[id].w, 3);
        setup(m, 1, 0);
        sq_model_set_input(m, x, 1);
        sq_model_forward(m, 1, 0);
        const float in_rows[3] = {2, 3, 1}, pad_rows[3] = {3, 3, 2};
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) {
                float want = cip ? in_rows[i] * in_rows[j] / (pad_rows[i] * pad_rows[j]) : 1.0f;
                cr_expect_float_eq(node_out(m, id)[i * 3 + j], want, 1e-6f, "cip %d y[%d][%d] = %g, want %g", cip,
                                   i, j, node_out(m, id)[i * 3 + j], want);
            }
        sq_model_free(m);
    }
    /* 1..9, k 2, stride 2, ceil_mode, no pads: [[3, 4.5], [7.5, 9]] (PyTorch) */
    float v[9];
    for (int i = 0; i < 9; i++) v[i] = (float)(i + 1);
    sq_model *m = new_model("p", 1, 3, 3);
    int id = sq_b_pool_k(m, 0, SQ_POOL_AVG, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1);
    setup(m, 1, 0);
    sq_model_set_input(m, v, 1);
    sq_model_forward(m, 1, 0);
    const float want[4] = {3, 4.5f, 7.5f, 9};
    for (int i = 0; i < 4; i++) cr_expect_float_eq(node_out(m, id)[i], want[i], 1e-6f, "ceil y[%d]", i);
    sq_model_free(m);
    /* a window that would start in the trailing pad is dropped: 5 + 1 + 1 - 2 = 5, ceil(5/2) + 1 = 4,
       but the 4th starts at 3 * 2 - 1 = 5, past the input: 3 outputs */
    m = new_model("p", 1, 5, 5);
    id = sq_b_pool_k(m, 0, SQ_POOL_MAX, 2, 2, 2, 2, 1, 1, 1, 1, 1, 0);
    cr_expect_eq(m->nodes[id].h, 3, "dropped last window: %d rows", m->nodes[id].h);
    sq_model_free(m);
}

/* ---- PAD, CLIP, AFFINE, SLICE forward values ---- */
Test(graph_ops, new_nodes_forward)
{
    const int C = 4, H = 2, W = 3, N = 2;
    sq_model *m = new_model("nodes", C, H, W);
    int pad = sq_b_pad(m, 0, 1, 0, 0, 2, 1.5f);
    int clip = sq_b_clip(m, pad, -1.0f, 2.0f);
    int aff = sq_b_affine(m, clip, "aff");
    int sl = sq_b_slice(m, aff, 1, 2);
    int ninf = sq_b_pad(m, sl, 0, 1, 1, 0, -INFINITY);
    cr_assert(pad > 0 && clip > pad && aff > clip && sl > aff && ninf > sl, "%s", sq_last_error());
    cr_assert_eq(m->nodes[pad].h, 3);
    cr_assert_eq(m->nodes[pad].w, 5);
    cr_assert_eq(m->nodes[sl].c, 2);
    setup(m, N, 0);
    const float a[4] = {2, -1, 0.5f, 3}, b[4] = {0.25f, 0, -1, 1};
    cr_assert_eq(sq_model_set(m, "aff.a", a, 4), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_model_set(m, "aff.b", b, 4), SQ_OK);
    float x[2 * 4 * 2 * 3];
    for (int i = 0; i < N * C * H * W; i++) x[i] = 0.5f * (float)i - 3.0f;
    x[5] = NAN; /* sample 0, channel 0: stays NaN through the clip */
    sq_model_set_input(m, x, N);
    sq_model_forward(m, N, 1);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int yy = 0; yy < 3; yy++)
                for (int xx = 0; xx < 5; xx++) {
                    const int o = ((n * C + c) * 3 + yy) * 5 + xx;
                    const int iy = yy - 1, ix = xx;
                    const float p = (iy < 0 || ix >= W) ? 1.5f : x[((n * C + c) * H + iy) * W + ix];
                    const float cl = p < -1.0f ? -1.0f : p > 2.0f ? 2.0f : p;
                    const float af = a[c] * cl + b[c];
                    cr_expect(node_out(m, pad)[o] == p || (isnan(p) && isnan(node_out(m, pad)[o])), "pad %d", o);
                    cr_expect(node_out(m, clip)[o] == cl || (isnan(cl) && isnan(node_out(m, clip)[o])), "clip %d",
                              o);
                    cr_expect(node_out(m, aff)[o] == af || (isnan(af) && isnan(node_out(m, aff)[o])),
                              "affine %d: %g want %g", o, node_out(m, aff)[o], af);
                    if (c >= 1 && c < 3) {
                        const int so = ((n * 2 + c - 1) * 3 + yy) * 5 + xx;
                        cr_expect_eq(node_out(m, sl)[so], af, "slice %d", so);
                        /* -inf padding: one column on the left, one row at the bottom */
                        const int po = ((n * 2 + c - 1) * 4 + yy) * 6 + xx + 1;
                        cr_expect_eq(node_out(m, ninf)[po], af, "pad -inf inner %d", po);
                        cr_expect(isinf(node_out(m, ninf)[((n * 2 + c - 1) * 4 + yy) * 6]), "pad -inf left");
                        cr_expect(isinf(node_out(m, ninf)[((n * 2 + c - 1) * 4 + 3) * 6 + xx]), "pad -inf bottom");
                    }
                }
    cr_expect(isnan(node_out(m, clip)[(0 * 3 + 2) * 5 + 2]), "NaN through the clip"); /* x[5]: row 1, col 2 */
    sq_model_free(m);
}

/* ---- backward of a graph built with the new builders, against finite differences ---- */
typedef struct graph_fd {
    sq_model *m;
    float *x, *r;
    int n;
    size_t nout;
} graph_fd;

static double graph_loss(void *p)
{
    graph_fd *f = p;
    sq_model_set_input(f->m, f->x, f->n);
    const float *y = sq_model_forward(f->m, f->n, 1);
    return sqt_dot(y, f->r, f->nout);
}

static void fill_param(sq_model *m, const char *name, uint64_t seed, float lo, float hi)
{
    int id = sq_model_find_param(m, name);
    cr_assert_geq(id, 0, "no parameter %s", name);
    sqt_fill_uniform(sq_model_param_ptr(m, id), m->params[id].numel, lo, hi, seed);
}

Test(graph_ops, graph_backward_fd)
{
    const int N = 2;
    sq_model *m = new_model("imported", 4, 5, 6);
    /* asymmetric pads: a PAD node (0) and a 1x3 conv without padding */
    int c1 = sq_b_conv_k(m, 0, "c1", 4, 1, 3, 1, 0, 1, 0, 1, 1, 1);
    cr_assert_geq(c1, 0, "%s", sq_last_error());
    cr_assert_eq(m->nodes[c1 - 1].op, SQ_NODE_PAD, "asymmetric pads go to a PAD node");
    cr_assert_eq(m->nodes[c1].pad, 0);
    cr_assert_eq(m->nodes[c1].h, 5);
    cr_assert_eq(m->nodes[c1].w, 6);
    int af = sq_b_affine(m, c1, "a1");
    int cl = sq_b_clip(m, af, -0.6f, 0.7f);
    cr_assert_eq(m->nodes[cl].op, SQ_NODE_CLIP);
    int mp = sq_b_pool_k(m, cl, SQ_POOL_MAX, 3, 2, 2, 1, 1, 0, 1, 1, 1, 0);
    int s1 = sq_b_slice(m, mp, 1, 2), s2 = sq_b_slice(m, mp, 0, 3);
    int cat = sq_b_concat(m, s1, s2);
    int c2 = sq_b_conv_k(m, cat, "c2", 3, 3, 3, 1, 1, 1, 1, 1, 1, 0); /* equal pads: no PAD node */
    cr_assert_eq(m->nodes[c2 - 1].op, SQ_NODE_CONCAT);
    int ap = sq_b_pool_k(m, c2, SQ_POOL_AVG, 2, 3, 2, 2, 0, 1, 1, 1, 1, 0);
    int pi = sq_b_pad(m, ap, 1, 1, 1, 1, -INFINITY);
    int mp2 = sq_b_pool_k(m, pi, SQ_POOL_MAX, 3, 3, 1, 1, 0, 0, 0, 0, 0, 1);
    int fl = sq_b_flatten(m, mp2);
    int fc = sq_b_linear(m, fl, "fc", 5, 1);
    cr_assert(af > 0 && cl > 0 && mp > 0 && s1 > 0 && s2 > 0 && cat > 0 && c2 > 0 && ap > 0 && pi > 0 &&
                  mp2 > 0 && fc > 0,
              "%s", sq_last_error());
    setup(m, N, 1);
    fill_param(m, "c1.weight", 1, -0.5f, 0.5f);
    fill_param(m, "c1.bias", 2, -0.2f, 0.2f);
    fill_param(m, "a1.a", 3, -1.5f, 1.5f);
    fill_param(m, "a1.b", 4, -0.3f, 0.3f);
    fill_param(m, "c2.weight", 5, -0.5f, 0.5f);
    fill_param(m, "fc.weight", 6, -0.5f, 0.5f);
    fill_param(m, "fc.bias", 7, -0.5f, 0.5f);
    graph_fd f = {.m = m, .n = N, .nout = (size_t)N * 5};
    f.r = sqt_hrand(f.nout, -1, 1, 9);
    /* an input that keeps every clip input 0.01 from the bounds: the FD step (1e-3 on a weight)
       must not cross the kink */
    double margin = 0;
    for (uint64_t seed = 8; seed < 108 && margin < 0.01; seed++) {
        free(f.x);
        f.x = sqt_hrand((size_t)N * 4 * 5 * 6, -1, 1, seed);
        graph_loss(&f);
        const float *ci = m->nodes[af].out;
        margin = 1e9;
        for (size_t i = 0; i < (size_t)N * 4 * 5 * 6; i++)
            margin = fmin(margin, fmin(fabs(ci[i] + 0.6), fabs(ci[i] - 0.7)));
    }
    cr_assert_geq(margin, 0.01, "no input keeps the clip's inputs off its bounds");
    sq_model_zero_grad(m);
    sq_model_backward(m, N, f.r);
    const char *names[] = {"c1.weight", "c1.bias", "c2.weight", "fc.weight", "fc.bias"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        int id = sq_model_find_param(m, names[k]);
        const size_t np = m->params[id].numel;
        double *fd = malloc(np * sizeof(double));
        float *g = malloc(np * sizeof(float));
        memcpy(g, m->g + m->params[id].off, np * sizeof(float));
        sqt_fd_grad(graph_loss, &f, sq_model_param_ptr(m, id), np, 1e-3, fd);
        size_t bad = sqt_check_close_d(names[k], g, fd, np, 2e-3, 2e-2, 10 + k);
        cr_expect_eq(bad, 0, "%s: %zu gradient entries differ from finite differences", names[k], bad);
        free(fd);
        free(g);
    }
    /* the affine's constants are buffers: no gradient, not trained */
    cr_expect_eq(m->params[sq_model_find_param(m, "a1.a")].kind, SQ_PT_BUFFER);
    free(f.x);
    free(f.r);
    sq_model_free(m);
}

/* ---- BN folding of a kh x kw conv (the fused inference path) ---- */
Test(graph_ops, fold_conv_k_bn)
{
    const int N = 3;
    sq_model *m = new_model("foldk", 3, 7, 6);
    int cv = sq_b_conv_k(m, 0, "conv", 5, 3, 1, 1, 1, 1, 1, 1, 1, 0);
    int bn = sq_b_bn(m, cv, "bn");
    int act = sq_b_act(m, bn, SQ_ACT_RELU);
    int gap = sq_b_gap(m, act);
    int fl = sq_b_flatten(m, gap);
    sq_b_linear(m, fl, "fc", 4, 1);
    cr_assert_eq(m->nodes[cv].kh, 3);
    cr_assert_eq(m->nodes[cv].kw, 1);
    cr_assert_eq(m->params[m->nodes[cv].pw].shape[3], 1);
    cr_assert_eq(m->nodes[cv].w, 8, "7x6 input, 3x1 kernel, pad 1: width 6 + 2");
    setup(m, N, 0);
    sq_model_init_weights(m, 5);
    fill_param(m, "bn.running_mean", 1, -0.5f, 0.5f);
    fill_param(m, "bn.running_var", 2, 0.5f, 2.0f);
    fill_param(m, "bn.weight", 3, 0.5f, 1.5f);
    fill_param(m, "bn.bias", 4, -0.5f, 0.5f);
    float *x = sqt_hrand((size_t)N * 3 * 7 * 6, -1, 1, 6), ref[12];
    sq_model_set_input(m, x, N);
    memcpy(ref, sq_model_forward(m, N, 0), sizeof ref);
    int folded = 0;
    cr_assert_eq(sq_model_fold_bn(m, &folded), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(folded, 1);
    const float *y = sq_model_forward(m, N, 0);
    size_t bad = sqt_check_close("folded logits", y, ref, 12, 1e-5, 1e-4, 0);
    cr_expect_eq(bad, 0);
    free(x);
    sq_model_free(m);
}

/* ---- a stem conv behind a PAD node is quantized, and sees a signed input ---- */
Test(graph_ops, quantized_conv_after_pad)
{
    sq_model *m = new_model("qpad", 3, 6, 6);
    int c1 = sq_b_conv_k(m, 0, "stem", 4, 3, 3, 1, 1, 0, 0, 1, 1, 0);
    m->nodes[c1].quantizable = 1;
    int a1 = sq_b_act(m, c1, SQ_ACT_RELU);
    int c2 = sq_b_conv_k(m, a1, "c2", 4, 1, 3, 1, 0, 1, 0, 1, 1, 0);
    m->nodes[c2].quantizable = 1;
    int g = sq_b_gap(m, c2);
    sq_b_linear(m, sq_b_flatten(m, g), "fc", 3, 1);
    sq_quant_opts q = {.kind = SQ_QUANT_LSQ, .wbits = 4, .abits = 4};
    cr_assert_eq(sq_model_set_quant(m, &q), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(m->nodes[c1].quant, 1);
    cr_expect_eq(m->nodes[c1].qa.is_signed, 1, "the stem reads the image through its PAD node");
    cr_expect_eq(m->nodes[c2].quant, 1);
    cr_expect_eq(m->nodes[c2].qa.is_signed, 0, "behind ReLU and a PAD node: unsigned");
    setup(m, 2, 1);
    sq_model_init_weights(m, 3);
    float *x = sqt_hrand(2 * 3 * 6 * 6, -1, 1, 4);
    cr_assert_eq(sq_model_quant_init(m, x, 2), SQ_OK, "%s", sq_last_error());
    sq_model_set_input(m, x, 2);
    const float *y = sq_model_forward(m, 2, 1);
    for (int i = 0; i < 6; i++) cr_expect(isfinite(y[i]), "logit %d = %g", i, y[i]);
    float gl[6] = {1, -1, 0.5f, 0.25f, -0.5f, 2};
    sq_model_zero_grad(m);
    sq_model_backward(m, 2, gl);
    double s = 0;
    const sq_param *pw = &m->params[m->nodes[c1].pw];
    for (size_t i = 0; i < pw->numel; i++) s += fabs(m->g[pw->off + i]);
    cr_expect(s > 0 && isfinite(s), "the stem's weight gradient: %g", s);
    free(x);
    sq_model_free(m);
}

/* ---- builders: what an importer may ask for ---- */
Test(graph_ops, builder_checks)
{
    sq_model *m = new_model("b", 6, 5, 5);
    cr_expect_eq(m->nodes[sq_b_clip(m, 0, 0.0f, INFINITY)].op, SQ_NODE_ACT);
    cr_expect_eq(m->nodes[m->nnodes - 1].act, SQ_ACT_RELU);
    cr_expect_eq(m->nodes[sq_b_clip(m, 0, 0.0f, 6.0f)].op, SQ_NODE_ACT);
    cr_expect_eq(m->nodes[m->nnodes - 1].act, SQ_ACT_RELU6);
    int c = sq_b_clip(m, 0, -INFINITY, 6.0f);
    cr_expect_eq(m->nodes[c].op, SQ_NODE_CLIP);
    cr_expect_eq(sq_b_clip(m, 0, 2.0f, 1.0f), -1, "lo > hi");
    cr_expect_eq(sq_b_slice(m, 0, 4, 3), -1, "channels past the input's");
    cr_expect_eq(sq_b_slice(m, 0, -1, 2), -1);
    cr_expect_eq(sq_b_pool_k(m, 0, SQ_POOL_MAX, 2, 2, 1, 1, 2, 0, 0, 0, 0, 0), -1, "pad >= kernel");
    cr_expect_eq(sq_b_pad(m, 0, -1, 0, 0, 0, 0.0f), -1);
    int p = sq_b_pool_k(m, 0, SQ_POOL_MAX, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0);
    cr_expect_eq(sq_b_concat(m, 0, p), -1, "concat of 5x5 and 2x2");
    int s = sq_b_slice(m, 0, 2, 3);
    int cat = sq_b_concat(m, s, 0);
    cr_expect_eq(m->nodes[cat].c, 9);
    int cv = sq_b_conv_k(m, 0, "cv", 4, 2, 5, 2, 1, 2, 1, 2, 2, 0);
    cr_expect_eq(m->nodes[cv].op, SQ_NODE_CONV);
    cr_expect_eq(m->nodes[cv].h, 3);
    cr_expect_eq(m->nodes[cv].w, 3);
    cr_expect_eq(sq_b_conv_k(m, 0, "bad", 4, 3, 3, 1, 0, 0, 0, 0, 4, 0), -1, "6 channels in groups of 4");
    const int before = m->nnodes;
    cr_expect_eq(sq_b_conv_k(m, 0, "big", 2, 9, 1, 1, 1, 0, 2, 0, 1, 0), -1, "9 rows of a padded 8");
    cr_expect_eq(m->nnodes, before, "a refused conv leaves no PAD node behind");
    sq_model_free(m);
}

/* ---- the 16-bit teacher refuses, by name, the nodes it has no op for ---- */
Test(graph_ops, teacher_prec_refuses_new_nodes)
{
    struct {
        const char *what;
        int kind;
    } cases[] = {{"pad", 0}, {"clip", 1}, {"affine", 2}, {"slice", 3}, {"general pool", 4}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sq_model *m = new_model("t", 4, 6, 6);
        int x = 0;
        switch (cases[i].kind) {
        case 0: x = sq_b_pad(m, 0, 1, 1, 1, 1, 0.0f); break;
        case 1: x = sq_b_clip(m, 0, -1.0f, 1.0f); break;
        case 2: x = sq_b_affine(m, 0, "aff"); break;
        case 3: x = sq_b_slice(m, 0, 1, 2); break;
        default: x = sq_b_pool_k(m, 0, SQ_POOL_AVG, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1); break;
        }
        sq_b_linear(m, sq_b_flatten(m, sq_b_gap(m, x)), "fc", 2, 1);
        setup(m, 2, 0);
        cr_expect_eq(sq_teacher_prec_apply(m, SQ_TPREC_FP16), SQ_EARG);
        char want[96];
        snprintf(want, sizeof want, "--teacher-precision fp16 does not support %s", cases[i].what);
        cr_expect(strstr(sq_last_error(), want) != NULL, "%s: '%s'", cases[i].what, sq_last_error());
        cr_expect(m->tprec == NULL);
        sq_model_free(m);
    }
    /* a square pool is still the zoo's: refused only for want of a device */
    sq_model *m = new_model("t", 4, 6, 6);
    int p = sq_b_pool_k(m, 0, SQ_POOL_MAX, 3, 3, 2, 2, 1, 1, 1, 1, 0, 1);
    sq_b_linear(m, sq_b_flatten(m, sq_b_gap(m, p)), "fc", 2, 1);
    setup(m, 2, 0);
    cr_expect_eq(sq_teacher_prec_apply(m, SQ_TPREC_FP16), SQ_EARG);
    cr_expect(strstr(sq_last_error(), "needs --device cuda") != NULL, "'%s'", sq_last_error());
    sq_model_free(m);
}

/* cat(x, x) (an importer's Concat of one tensor with itself): both halves' gradients reach x */
Test(graph_ops, concat_same_input_fd)
{
    const int N = 2;
    sq_model *m = new_model("catself", 2, 4, 3);
    int cv = sq_b_conv_k(m, 0, "cv", 3, 3, 1, 1, 1, 0, 1, 0, 1, 1);
    int cat = sq_b_concat(m, cv, cv);
    int sl = sq_b_slice(m, cat, 2, 3);
    sq_b_linear(m, sq_b_flatten(m, sl), "fc", 4, 0);
    cr_assert_eq(m->nodes[cat].c, 6);
    setup(m, N, 1);
    fill_param(m, "cv.weight", 1, -0.5f, 0.5f);
    fill_param(m, "cv.bias", 2, -0.5f, 0.5f);
    fill_param(m, "fc.weight", 3, -0.5f, 0.5f);
    graph_fd f = {.m = m, .n = N, .nout = (size_t)N * 4};
    f.x = sqt_hrand((size_t)N * 2 * 4 * 3, -1, 1, 4);
    f.r = sqt_hrand(f.nout, -1, 1, 5);
    graph_loss(&f);
    sq_model_zero_grad(m);
    sq_model_backward(m, N, f.r);
    int id = sq_model_find_param(m, "cv.weight");
    const size_t np = m->params[id].numel;
    double *fd = malloc(np * sizeof(double));
    float *g = malloc(np * sizeof(float));
    memcpy(g, m->g + m->params[id].off, np * sizeof(float));
    sqt_fd_grad(graph_loss, &f, sq_model_param_ptr(m, id), np, 1e-3, fd);
    size_t bad = sqt_check_close_d("cv.weight", g, fd, np, 1e-3, 1e-2, 6);
    cr_expect_eq(bad, 0, "%zu gradient entries differ from finite differences", bad);
    free(fd); free(g); free(f.x); free(f.r);
    sq_model_free(m);
}
