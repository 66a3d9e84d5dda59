/* test_fusion.c: graph-level fusions. The fused BN+activation, add+activation and
   BN+add+activation ops must give exactly (bit for bit) what the unfused ops give, for a whole
   quantized ResNet-20 training step; BatchNorm folding of a frozen teacher must match the unfolded eval forward within
   rounding and leave the model's parameters untouched. */
#include "sqakd/model.h"
#include "util_check.h"
#include "util_fixtures.h"
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static sq_model *make(const sq_backend *be, int batch, int grad, const sq_quant_opts *q)
{
    sq_model *m;
    cr_assert_eq(sq_model_create("resnet20", 3, 32, 32, 10, &m), SQ_OK, "%s", sq_last_error());
    if (q) cr_assert_eq(sq_model_set_quant(m, q), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_model_setup(m, be, batch, grad), SQ_OK, "%s", sq_last_error());
    sq_model_init_weights(m, 3);
    return m;
}

/* non-trivial BN affine parameters and running statistics (fresh ones are 1 and 0) */
static void perturb_bn(sq_model *m, uint64_t seed)
{
    for (int i = 0; i < m->nnodes; i++) {
        const sq_node *n = &m->nodes[i];
        if (n->op != SQ_NODE_BN) continue;
        sqt_fill_uniform(sq_model_param_ptr(m, n->pw), n->c, 0.5f, 1.5f, seed++);
        sqt_fill_normal(sq_model_param_ptr(m, n->pb), n->c, 0.0f, 0.2f, seed++);
        sqt_fill_normal(sq_model_param_ptr(m, n->prm), n->c, 0.0f, 0.5f, seed++);
        sqt_fill_uniform(sq_model_param_ptr(m, n->prv), n->c, 0.5f, 2.0f, seed++);
    }
}

Test(fusion, fused_pairs_equal_unfused_bit_for_bit)
{
    const sq_backend *plain = sqt_cpu_unfused(0);
    const int batch = 4;
    sq_quant_opts q = {.kind = SQ_QUANT_EWGS, .wbits = 4, .abits = 4};
    sq_model *a = make(sq_backend_cpu(), batch, 1, &q), *b = make(plain, batch, 1, &q);
    int bn_act = 0, add_act = 0, bn_add_act = 0;
    for (int i = 0; i < a->nnodes; i++) {
        const sq_node *n = &a->nodes[i];
        bn_act += n->op == SQ_NODE_BN && n->fuse_act == 1;
        add_act += n->op == SQ_NODE_ADD && n->fuse_act == 1;
        bn_add_act += n->op == SQ_NODE_BN && n->fuse_act == 2;
    }
    /* ResNet-20: the stem and the 9 first convs of the blocks (BN -> ReLU), the 9 residual adds
       (-> ReLU), 7 of them directly after their BN (the 2 downsampling blocks build the
       shortcut node between the BN and the add) */
    cr_assert_eq(bn_act, 10, "BN+act pairs: %d, want 10", bn_act);
    cr_assert_eq(add_act, 9, "add+act pairs: %d, want 9", add_act);
    cr_assert_eq(bn_add_act, 7, "BN+add+act triples: %d, want 7", bn_add_act);
    perturb_bn(a, 11);
    perturb_bn(b, 11);
    const size_t nx = (size_t)batch * 3 * 32 * 32;
    float *x = malloc(nx * sizeof(float)), glog[4 * 10];
    sqt_fill_normal(x, nx, 0.0f, 1.0f, 5);
    sqt_fill_normal(glog, 40, 0.0f, 0.1f, 6);
    cr_assert_eq(sq_model_quant_init(a, x, batch), SQ_OK);
    cr_assert_eq(sq_model_quant_init(b, x, batch), SQ_OK);
    for (int step = 0; step < 2; step++) {
        sq_model_set_input(a, x, batch);
        sq_model_set_input(b, x, batch);
        float *za = sq_model_forward(a, batch, 1), *zb = sq_model_forward(b, batch, 1);
        cr_expect_eq(sqt_check_equal("logits", za, zb, 40), 0);
        sq_model_zero_grad(a);
        sq_model_zero_grad(b);
        sq_model_backward(a, batch, glog);
        sq_model_backward(b, batch, glog);
        cr_expect_eq(sqt_check_equal("weight grads", a->g, b->g, a->n_train), 0);
        cr_expect_eq(sqt_check_equal("quantizer grads", a->qg, b->qg, a->n_quant), 0);
        cr_expect_eq(sqt_check_equal("running stats", a->buf, b->buf, a->n_buf), 0);
        /* a gradient that is not all zero, or the comparison proves nothing */
        double s = 0;
        for (size_t i = 0; i < a->n_train; i++) s += (double)a->g[i] * a->g[i];
        cr_expect_gt(s, 0.0);
    }
    free(x);
    sq_model_free(a);
    sq_model_free(b);
}

Test(fusion, teacher_bn_folding_matches_unfolded_forward)
{
    const int batch = 3;
    sq_model *t = make(sq_backend_cpu(), batch, 0, NULL);
    perturb_bn(t, 21);
    const size_t nx = (size_t)batch * 3 * 32 * 32;
    float *x = malloc(nx * sizeof(float)), ref[30];
    sqt_fill_normal(x, nx, 0.0f, 1.0f, 7);
    sq_model_set_input(t, x, batch);
    memcpy(ref, sq_model_forward(t, batch, 0), sizeof ref);
    float *p0 = malloc(t->n_train * sizeof(float));
    memcpy(p0, t->p, t->n_train * sizeof(float));
    int nf = -1;
    cr_assert_eq(sq_model_fold_bn(t, &nf), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(nf, 19, "folded %d BN layers, want 19", nf);
    sq_model_set_input(t, x, batch);
    /* folding reassociates one product per weight (W gamma invstd) and the bias: float
       rounding, compounded over 19 layers: 1e-4 relative is ~100x the observed error */
    cr_expect_eq(sqt_check_close("folded logits", sq_model_forward(t, batch, 0), ref, 30, 1e-4, 1e-4, 7), 0);
    cr_expect_eq(sqt_check_equal("parameters after folding", t->p, p0, t->n_train), 0);
    cr_expect_eq(sq_model_fold_bn(t, &nf), SQ_OK);
    cr_expect_eq(nf, 0, "a second fold folded %d layers", nf);
    free(p0);
    free(x);
    sq_model_free(t);
    /* a model that trains cannot be folded */
    sq_model *s = make(sq_backend_cpu(), 2, 1, NULL);
    cr_expect_eq(sq_model_fold_bn(s, NULL), SQ_EARG);
    sq_model_free(s);
}
