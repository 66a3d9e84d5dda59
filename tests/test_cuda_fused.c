/* test_cuda_fused.c: Criterion suite "cuda_fused": the CUDA backend's fused ops in whole models.
   - A quantized resnet20 training step (forward, backward, two steps) on the CUDA backend with
     the fused ops (BatchNorm + activation, residual add + activation, BatchNorm + add +
     activation; the "set" backward variants) equals the same step without them bit for bit:
     logits, weight and quantizer gradients, running statistics. The fused kernels do the unfused
     ones' arithmetic in the same order.
   - The BatchNorm-folded teacher's forward with bias_add_act_fwd equals the one without it.
   Each fused op against the CPU, with guard bytes, awkward shapes and both gradient modes, is the
   conformance harness's (tests/test_cuda_backend_ops.c, suite backend_ops, family fused).
   Without a GPU every test SKIPS (under cuemu they run on the emulated device). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sqakd/model.h"
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
