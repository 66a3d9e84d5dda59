/* test_onnx_import.c: Criterion suite "onnx_import": ONNX graphs written with sqakd's own writer,
   imported and compared with the same network built directly with the graph builders (same
   weights, bit-identical logits); the constant shape arithmetic exporters emit; the graph's own
   normalisation lifted; quantizer placement and signs; refusals naming the node and op. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model/model_internal.h"
#include "sqakd/import.h"
#include "sqakd/onnx.h"
#include "util_check.h"
#include "util_fixtures.h"

static void setup(void)
{
    cr_assert(sqt_mkdtemp(sqt_scratch_dir, sizeof sqt_scratch_dir, "sqakd_import"), "mkdtemp: %s", strerror(errno));
}
static void teardown(void) { sqt_rmtree(sqt_scratch_dir); }
TestSuite(onnx_import, .init = setup, .fini = teardown);

static const char *tmp(const char *name)
{
    static char p[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", sqt_scratch_dir, name);
    return p[k];
}

static float *rnd(size_t n, uint64_t seed, float lo, float hi)
{
    float *x = malloc(n * sizeof(float));
    sqt_fill_uniform(x, n, lo, hi, seed);
    return x;
}

/* input (N, 3, 8, 8) -> Conv 3->4 k3 p1 + bias -> BatchNormalization -> Relu -> Conv 4->4 k3 s2 p1 ->
   Relu -> MaxPool k2 s2 -> GlobalAveragePool -> Flatten -> Gemm (transB) 4->5 */
typedef struct net { float *w1, *b1, *g, *be, *mu, *var, *w2, *fw, *fb; } net;

static net make_net(void)
{
    net n;
    n.w1 = rnd(4 * 3 * 9, 1, -0.5f, 0.5f);
    n.b1 = rnd(4, 2, -0.1f, 0.1f);
    n.g = rnd(4, 3, 0.5f, 1.5f);
    n.be = rnd(4, 4, -0.2f, 0.2f);
    n.mu = rnd(4, 5, -0.3f, 0.3f);
    n.var = rnd(4, 6, 0.5f, 2.0f);
    n.w2 = rnd(4 * 4 * 9, 7, -0.5f, 0.5f);
    n.fw = rnd(5 * 4, 8, -1, 1);
    n.fb = rnd(5, 9, -0.1f, 0.1f);
    return n;
}

static void free_net(net *n)
{
    free(n->w1); free(n->b1); free(n->g); free(n->be); free(n->mu); free(n->var); free(n->w2); free(n->fw); free(n->fb);
}

static void write_net(const net *n, const char *path, int flatten_by_reshape, int with_norm)
{
    sq_onnx_graph *g = sq_onnx_new("net", 13);
    int64_t xin[4] = {-1, 3, 8, 8};
    sq_onnx_add_input(g, "x", SQ_ONNX_FLOAT, 4, xin);
    const char *x = "x";
    if (with_norm) {
        int64_t d[4] = {1, 3, 1, 1};
        float mean[3] = {0.5f, 0.4f, 0.3f}, std[3] = {0.25f, 0.2f, 0.5f};
        sq_onnx_add_init(g, "mean", SQ_ONNX_FLOAT, 4, d, mean);
        sq_onnx_add_init(g, "std", SQ_ONNX_FLOAT, 4, d, std);
        const char *i1[2] = {"x", "mean"}, *o1[1] = {"xc"}, *i2[2] = {"xc", "std"}, *o2[1] = {"xn"};
        sq_onnx_add_node(g, "Sub", "norm_sub", 2, i1, 1, o1);
        sq_onnx_add_node(g, "Div", "norm_div", 2, i2, 1, o2);
        x = "xn";
    }
    int64_t dw1[4] = {4, 3, 3, 3}, d4[1] = {4}, dw2[4] = {4, 4, 3, 3}, dfw[2] = {5, 4}, d5[1] = {5};
    sq_onnx_add_init(g, "conv1.weight", SQ_ONNX_FLOAT, 4, dw1, n->w1);
    sq_onnx_add_init(g, "conv1.bias", SQ_ONNX_FLOAT, 1, d4, n->b1);
    sq_onnx_add_init(g, "bn1.weight", SQ_ONNX_FLOAT, 1, d4, n->g);
    sq_onnx_add_init(g, "bn1.bias", SQ_ONNX_FLOAT, 1, d4, n->be);
    sq_onnx_add_init(g, "bn1.running_mean", SQ_ONNX_FLOAT, 1, d4, n->mu);
    sq_onnx_add_init(g, "bn1.running_var", SQ_ONNX_FLOAT, 1, d4, n->var);
    sq_onnx_add_init(g, "conv2.weight", SQ_ONNX_FLOAT, 4, dw2, n->w2);
    sq_onnx_add_init(g, "fc.weight", SQ_ONNX_FLOAT, 2, dfw, n->fw);
    sq_onnx_add_init(g, "fc.bias", SQ_ONNX_FLOAT, 1, d5, n->fb);
    int64_t pads[4] = {1, 1, 1, 1}, k3[2] = {3, 3}, s2[2] = {2, 2}, k2[2] = {2, 2};
    const char *ci[3] = {x, "conv1.weight", "conv1.bias"}, *co[1] = {"c1"};
    sq_onnx_node *c1 = sq_onnx_add_node(g, "Conv", "conv1", 3, ci, 1, co);
    sq_onnx_attr_ints(c1, "kernel_shape", 2, k3);
    sq_onnx_attr_ints(c1, "pads", 4, pads);
    const char *bi[5] = {"c1", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"}, *bo[1] = {"b1"};
    sq_onnx_attr_float(sq_onnx_add_node(g, "BatchNormalization", "bn1", 5, bi, 1, bo), "epsilon", 1e-5f);
    const char *ri[1] = {"b1"}, *ro[1] = {"r1"};
    sq_onnx_add_node(g, "Relu", "relu1", 1, ri, 1, ro);
    const char *c2i[2] = {"r1", "conv2.weight"}, *c2o[1] = {"c2"};
    sq_onnx_node *c2 = sq_onnx_add_node(g, "Conv", "conv2", 2, c2i, 1, c2o);
    sq_onnx_attr_ints(c2, "strides", 2, s2);
    sq_onnx_attr_ints(c2, "pads", 4, pads);
    const char *r2i[1] = {"c2"}, *r2o[1] = {"r2"};
    sq_onnx_add_node(g, "Relu", "relu2", 1, r2i, 1, r2o);
    const char *pi[1] = {"r2"}, *po[1] = {"p"};
    sq_onnx_node *mp = sq_onnx_add_node(g, "MaxPool", "pool", 1, pi, 1, po);
    sq_onnx_attr_ints(mp, "kernel_shape", 2, k2);
    sq_onnx_attr_ints(mp, "strides", 2, s2);
    const char *gi[1] = {"p"}, *go[1] = {"gap"};
    sq_onnx_add_node(g, "GlobalAveragePool", "gap", 1, gi, 1, go);
    if (flatten_by_reshape) {
        /* what exporters emit for x.view(x.size(0), -1) with a dynamic batch */
        const char *si[1] = {"gap"}, *so[1] = {"shape"};
        sq_onnx_add_node(g, "Shape", "shape", 1, si, 1, so);
        int64_t zero = 0, dims1[1] = {1}, minus1 = -1;
        sq_onnx_add_init(g, "idx0", SQ_ONNX_INT64, 0, dims1, &zero);
        const char *gai[2] = {"shape", "idx0"}, *gao[1] = {"n"};
        sq_onnx_add_node(g, "Gather", "gather", 2, gai, 1, gao);
        int64_t ax0 = 0;
        const char *ui[1] = {"n"}, *uo[1] = {"n1"};
        sq_onnx_attr_ints(sq_onnx_add_node(g, "Unsqueeze", "unsq", 1, ui, 1, uo), "axes", 1, &ax0);
        sq_onnx_add_init(g, "m1", SQ_ONNX_INT64, 1, dims1, &minus1);
        const char *cci[2] = {"n1", "m1"}, *cco[1] = {"target"};
        sq_onnx_attr_int(sq_onnx_add_node(g, "Concat", "cat", 2, cci, 1, cco), "axis", 0);
        const char *rsi[2] = {"gap", "target"}, *rso[1] = {"flat"};
        sq_onnx_add_node(g, "Reshape", "reshape", 2, rsi, 1, rso);
    } else {
        const char *fi[1] = {"gap"}, *fo[1] = {"flat"};
        sq_onnx_add_node(g, "Flatten", "flatten", 1, fi, 1, fo);
    }
    const char *gmi[3] = {"flat", "fc.weight", "fc.bias"}, *gmo[1] = {"logits"};
    sq_onnx_attr_int(sq_onnx_add_node(g, "Gemm", "fc", 3, gmi, 1, gmo), "transB", 1);
    int64_t yo[2] = {-1, 5};
    sq_onnx_add_output(g, "logits", SQ_ONNX_FLOAT, 2, yo);
    cr_assert_eq(sq_onnx_write(g, path), SQ_OK, "%s", sq_last_error());
    sq_onnx_free(g);
}

/* the same network from the builders, weights set by name */
static sq_model *direct_net(const net *n, int batch)
{
    sq_model *m = sq_xcalloc(1, sizeof *m);
    snprintf(m->arch, sizeof m->arch, "graph");
    int x = sq_b_input(m, 3, 8, 8);
    x = sq_b_conv(m, x, "conv1", 4, 3, 1, 1, 1, 1);
    x = sq_b_bn(m, x, "bn1");
    x = sq_b_act(m, x, SQ_ACT_RELU);
    x = sq_b_conv(m, x, "conv2", 4, 3, 2, 1, 1, 0);
    x = sq_b_act(m, x, SQ_ACT_RELU);
    x = sq_b_pool(m, x, SQ_POOL_MAX, 2, 2, 0);
    x = sq_b_gap(m, x);
    x = sq_b_flatten(m, x);
    sq_b_linear(m, x, "fc", 5, 1);
    m->in_c = 3; m->in_h = 8; m->in_w = 8; m->classes = 5;
    cr_assert_eq(sq_model_setup(m, sq_backend_cpu(), batch, 0), SQ_OK, "%s", sq_last_error());
    sq_model_set(m, "conv1.weight", n->w1, 108);
    sq_model_set(m, "conv1.bias", n->b1, 4);
    sq_model_set(m, "bn1.weight", n->g, 4);
    sq_model_set(m, "bn1.bias", n->be, 4);
    sq_model_set(m, "bn1.running_mean", n->mu, 4);
    sq_model_set(m, "bn1.running_var", n->var, 4);
    sq_model_set(m, "conv2.weight", n->w2, 144);
    sq_model_set(m, "fc.weight", n->fw, 20);
    sq_model_set(m, "fc.bias", n->fb, 5);
    return m;
}

static sq_model *imported(const char *path, const sq_import_opts *o, int batch, sq_imported *imp)
{
    cr_assert_eq(sq_onnx_import(path, o, imp), SQ_OK, "%s", sq_last_error());
    sq_model *m = imp->m;
    cr_assert_eq(sq_model_setup(m, sq_backend_cpu(), batch, 0), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_imported_load(imp, m), SQ_OK, "%s", sq_last_error());
    return m;
}

Test(onnx_import, equals_the_same_network_built_directly)
{
    for (int reshape = 0; reshape <= 1; reshape++) {
        net n = make_net();
        write_net(&n, tmp("net.onnx"), reshape, 0);
        sq_imported imp;
        sq_model *a = imported(tmp("net.onnx"), NULL, 3, &imp), *b = direct_net(&n, 3);
        cr_assert_eq(a->nnodes, b->nnodes, "reshape %d: %d nodes vs %d", reshape, a->nnodes, b->nnodes);
        cr_assert_eq(a->classes, 5);
        cr_assert_eq(imp.norm_from_graph, 0);
        float *x = rnd(3 * 3 * 64, 11, 0, 1);
        sq_model_set_input(a, x, 3);
        sq_model_set_input(b, x, 3);
        cr_assert_eq(sqt_check_equal("logits", sq_model_forward(a, 3, 0), sq_model_forward(b, 3, 0), 15), 0);
        /* method.md's placement: the first conv and the classifier only with --quant-first-last */
        cr_assert(a->nodes[1].op == SQ_NODE_CONV && a->nodes[1].first_or_last && !a->nodes[1].quantizable);
        cr_assert(a->nodes[4].op == SQ_NODE_CONV && a->nodes[4].quantizable);
        cr_assert(a->nodes[a->nnodes - 1].op == SQ_NODE_LINEAR && a->nodes[a->nnodes - 1].first_or_last);
        free(x);
        sq_model_free(b);
        sq_imported_free(&imp);
        free_net(&n);
    }
}

Test(onnx_import, leading_sub_div_becomes_the_normalisation)
{
    net n = make_net();
    write_net(&n, tmp("norm.onnx"), 0, 1);
    sq_imported imp;
    sq_model *a = imported(tmp("norm.onnx"), NULL, 2, &imp);
    cr_assert_eq(imp.norm_from_graph, 1);
    cr_assert_float_eq(imp.mean[0], 0.5f, 1e-7);
    cr_assert_float_eq(imp.mean[2], 0.3f, 1e-7);
    cr_assert_float_eq(imp.std[1], 0.2f, 1e-7);
    cr_assert_eq(a->nodes[1].op, SQ_NODE_CONV, "the Sub/Div are not nodes of the model");
    sq_imported_free(&imp);
    /* with --mean/--std given, the graph's Sub/Div stay in the graph */
    sq_import_opts o;
    memset(&o, 0, sizeof o);
    o.has_mean = o.has_std = 1;
    for (int i = 0; i < 4; i++) { o.mean[i] = 0; o.std[i] = 1; }
    cr_assert_eq(sq_onnx_import(tmp("norm.onnx"), &o, &imp), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(imp.norm_from_graph, 0);
    cr_assert_eq(imp.m->nodes[1].op, SQ_NODE_AFFINE);
    cr_assert_eq(imp.m->nodes[2].op, SQ_NODE_AFFINE);
    sq_imported_free(&imp);
    free_net(&n);
}

Test(onnx_import, a_convolution_fed_by_a_convolution_quantizes_signed)
{
    net n = make_net();
    write_net(&n, tmp("net.onnx"), 0, 0);
    sq_imported imp;
    cr_assert_eq(sq_onnx_import(tmp("net.onnx"), NULL, &imp), SQ_OK, "%s", sq_last_error());
    sq_quant_opts q = {.kind = SQ_QUANT_LSQ, .wbits = 4, .abits = 4, .first_last = 1};
    cr_assert_eq(sq_model_set_quant(imp.m, &q), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(imp.m->nodes[1].qa.is_signed, 1, "the stem sees normalised (signed) pixels");
    cr_assert_eq(imp.m->nodes[4].qa.is_signed, 0, "conv2 follows a ReLU");
    cr_assert_eq(imp.m->nodes[imp.m->nnodes - 1].qa.is_signed, 0, "fc follows pooling of a ReLU");
    sq_imported_free(&imp);
    free_net(&n);
}

/* a one-op graph: input (N, 4, 6, 6) -> op -> output */
static void write_one(const char *path, const char *op, int nattr_ints, const char *attr, const int64_t *ints,
                      int64_t hdim)
{
    sq_onnx_graph *g = sq_onnx_new("one", 13);
    int64_t xin[4] = {-1, 4, hdim, 6};
    sq_onnx_add_input(g, "x", SQ_ONNX_FLOAT, 4, xin);
    const char *in[1] = {"x"}, *out[1] = {"y"};
    sq_onnx_node *n = sq_onnx_add_node(g, op, "the_node", 1, in, 1, out);
    if (attr) sq_onnx_attr_ints(n, attr, nattr_ints, ints);
    int64_t yo[2] = {-1, -1};
    sq_onnx_add_output(g, "y", SQ_ONNX_FLOAT, 2, yo);
    cr_assert_eq(sq_onnx_write(g, path), SQ_OK, "%s", sq_last_error());
    sq_onnx_free(g);
}

Test(onnx_import, refusals_name_the_node_and_the_op)
{
    sq_imported imp;
    write_one(tmp("softmax.onnx"), "Softmax", 0, NULL, NULL, 6);
    cr_assert_eq(sq_onnx_import(tmp("softmax.onnx"), NULL, &imp), SQ_EARG);
    cr_assert_not_null(strstr(sq_last_error(), "the_node"), "%s", sq_last_error());
    cr_assert_not_null(strstr(sq_last_error(), "Softmax"), "%s", sq_last_error());
    cr_assert_not_null(strstr(sq_last_error(), "supported: Conv"), "%s", sq_last_error());
    cr_assert_null(imp.m);

    int64_t perm[4] = {0, 2, 3, 1};
    write_one(tmp("transpose.onnx"), "Transpose", 4, "perm", perm, 6);
    cr_assert_eq(sq_onnx_import(tmp("transpose.onnx"), NULL, &imp), SQ_EARG);
    cr_assert_not_null(strstr(sq_last_error(), "Transpose"), "%s", sq_last_error());

    int64_t axes[1] = {1};
    write_one(tmp("reduce.onnx"), "ReduceMean", 1, "axes", axes, 6);
    cr_assert_eq(sq_onnx_import(tmp("reduce.onnx"), NULL, &imp), SQ_EARG);
    cr_assert_not_null(strstr(sq_last_error(), "axes (2, 3)"), "%s", sq_last_error());

    /* a symbolic height needs --input, which then fixes it */
    write_one(tmp("sym.onnx"), "Relu", 0, NULL, NULL, -1);
    cr_assert_eq(sq_onnx_import(tmp("sym.onnx"), NULL, &imp), SQ_EARG);
    cr_assert_not_null(strstr(sq_last_error(), "--input CxHxW"), "%s", sq_last_error());
    sq_import_opts o;
    memset(&o, 0, sizeof o);
    o.in_c = 4; o.in_h = 10; o.in_w = 6;
    cr_assert_eq(sq_onnx_import(tmp("sym.onnx"), &o, &imp), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(imp.m->in_h, 10);
    sq_imported_free(&imp);
    o.in_c = 3;   /* contradicts the graph's 4 channels */
    cr_assert_eq(sq_onnx_import(tmp("sym.onnx"), &o, &imp), SQ_EARG);
    cr_assert_not_null(strstr(sq_last_error(), "--input gives"), "%s", sq_last_error());

    /* not a model at all */
    FILE *f = fopen(tmp("junk.onnx"), "wb");
    fputs("this is not protobuf \xff\xff\xff\xff", f);
    fclose(f);
    sq_status st = sq_onnx_import(tmp("junk.onnx"), NULL, &imp);
    cr_assert(st == SQ_EFORMAT || st == SQ_EARG, "status %d", st);
    cr_assert_null(strchr(sq_last_error(), '\n'));
}
