/* test_golden_model.c: a whole ResNet-20 on the CPU backend against PyTorch
   (tests/data/resnet20_golden.bin from `tools/gen_golden.py --model resnet20`): every state_dict
   name and shape matches our parameter table in both directions, then one train-mode forward
   (logits, mean cross-entropy), the backward (gradient of every parameter) and the BatchNorm
   running statistics after the forward. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqakd/backend.h"
#include "sqakd/model.h"
#include "util_golden.h"

static int has_prefix(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

static const sq_golden_tensor *need(const sq_golden *g, const char *name)
{
    const sq_golden_tensor *t = sq_golden_find(g, name);
    cr_assert_not_null(t, "resnet20 fixture lacks '%s' (regenerate with tools/gen_golden.py "
                       "--model resnet20)", name);
    return t;
}

/* compares n backend floats at dev with the fixture tensor `name` */
static size_t cmp_dev(const sq_backend *be, const sq_golden *g, const char *name,
                      const float *dev, size_t n, float atol, float rtol)
{
    const sq_golden_tensor *t = need(g, name);
    cr_assert_eq(t->numel, n, "%s: fixture %zu elements, model %zu", name, t->numel, n);
    float *h = malloc(n * sizeof(float));
    cr_assert_not_null(h);
    be->copy_d2h(h, dev, n * sizeof(float));
    size_t bad = sq_golden_compare(name, h, t->data, n, atol, rtol);
    free(h);
    cr_expect_eq(bad, 0, "%s: %zu of %zu elements differ from PyTorch (atol %g, rtol %g)", name,
                 bad, n, atol, rtol);
    return bad;
}

Test(golden, resnet20_model_fwd_bwd)
{
    char path[1024];
    sq_golden_path("resnet20_golden.bin", path, sizeof path);
    sq_golden *g = NULL;
    cr_assert_eq(sq_golden_load(path, &g), SQ_OK, "%s", sq_last_error());
    const sq_backend *be = sq_backend_cpu();
    const sq_golden_tensor *tx = need(g, "input.x"), *tl = need(g, "input.labels");
    int n = (int)tx->dims[0];
    cr_assert(tx->ndim == 4 && n <= 16);

    sq_model *m = NULL;
    cr_assert_eq(sq_model_create("resnet20", (int)tx->dims[1], (int)tx->dims[2],
                                 (int)tx->dims[3], 10, &m), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_model_setup(m, be, n, 1), SQ_OK, "%s", sq_last_error());

    /* names: every model tensor is in the fixture, every fixture state tensor is in the model */
    for (int i = 0; i < m->nparams; i++) {
        const sq_param *p = &m->params[i];
        const sq_golden_tensor *t = sq_golden_find(g, p->name);
        cr_expect_not_null(t, "model tensor '%s' has no PyTorch counterpart", p->name);
        if (!t) continue;
        cr_expect_eq(t->numel, p->numel, "'%s': PyTorch %zu elements, ours %zu", p->name,
                     t->numel, p->numel);
        if (t->numel == p->numel)
            cr_expect_eq(sq_model_set(m, p->name, t->data, t->numel), SQ_OK, "%s",
                         sq_last_error());
    }
    for (int i = 0; i < g->count; i++) {
        const char *nm = g->t[i].name;
        if (has_prefix(nm, "input.") || has_prefix(nm, "out.") || has_prefix(nm, "grad.") ||
            has_prefix(nm, "after."))
            continue;
        cr_expect_geq(sq_model_find_param(m, nm), 0, "PyTorch tensor '%s' missing in our model",
                      nm);
    }
    cr_assert_eq(sq_model_param_count(m), 269850);

    sq_model_set_input(m, tx->data, n);
    sq_model_zero_grad(m);
    float *logits = sq_model_forward(m, n, 1);
    /* 20 layers of fp32 convs and train-mode BN (batch 4 in the BatchNorm1d head) vs fp64:
       observed |diff| <= 5e-6; 1e-4 abs + 1e-3 rel leaves a 20x margin */
    cmp_dev(be, g, "out.logits", logits, (size_t)n * 10, 1e-4f, 1e-3f);

    int32_t lab[16];
    for (int i = 0; i < n; i++) lab[i] = (int32_t)tl->data[i];
    int32_t *dlab = be->alloc(sizeof lab);
    float *loss = be->alloc(sizeof(float)), *gl = be->alloc((size_t)n * 10 * sizeof(float));
    cr_assert(dlab && loss && gl);
    be->copy_h2d(dlab, lab, sizeof lab);
    be->softmax_ce(n, 10, logits, dlab, 1.0f, loss, gl);
    cmp_dev(be, g, "out.loss", loss, 1, 1e-5f, 1e-4f);
    sq_model_backward(m, n, gl);

    for (int i = 0; i < m->nparams; i++) {
        const sq_param *p = &m->params[i];
        char nm[160];
        if (p->kind == SQ_PT_TRAIN) {
            snprintf(nm, sizeof nm, "grad.%s", p->name);
            /* gradients pass back through 20 BN layers (observed |diff| <= 3e-5, mostly in the
               stem whose gradient sums the most terms): 2e-4 abs + 2e-3 rel */
            cmp_dev(be, g, nm, m->g + p->off, p->numel, 2e-4f, 2e-3f);
        } else if (p->kind == SQ_PT_BUFFER) {
            snprintf(nm, sizeof nm, "after.%s", p->name);
            cmp_dev(be, g, nm, m->buf + p->off, p->numel, 1e-5f, 1e-4f);
        }
    }
    be->free(dlab);
    be->free(loss);
    be->free(gl);
    sq_model_free(m);
    sq_golden_free(g);
}
