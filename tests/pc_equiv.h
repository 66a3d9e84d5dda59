/* pc_equiv.h: a check shared by the per-channel suites (perchannel on the CPU backend,
   cuda_perchannel on CUDA): a per-channel resnet20 student whose every channel holds the
   per-tensor student's weight-quantizer parameters is the per-tensor student. The forward is the
   same (logits bitwise equal: every element sees the same parameters through the same
   formula), and each layer's per-channel parameter gradients add up to the per-tensor one: EWGS
   exactly the sum (to 1e-5 of the sum of |terms|), LSQ the sum divided by sqrt(C) (its gradient
   scale 1/sqrt(numel Qp) counts one channel's elements per channel). The activation quantizers'
   gradients are equal bitwise. */
#ifndef SQAKD_TESTS_PC_EQUIV_H
#define SQAKD_TESTS_PC_EQUIV_H
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sqakd/model.h"
#include "util_fixtures.h"

static inline void sqt_pc_equiv(const sq_backend *be)
{
    const sq_quant_kind kinds[2] = {SQ_QUANT_EWGS, SQ_QUANT_LSQ};
    enum { B = 4 };
    float *x = malloc(sizeof(float) * B * 3 * 32 * 32);
    sqt_fill_normal(x, (size_t)B * 3 * 32 * 32, 0, 1, 9);
    for (int k = 0; k < 2; k++) {
        sq_model *m[2];
        for (int pc = 0; pc < 2; pc++) {
            sq_quant_opts q = {.kind = kinds[k], .wbits = 2, .abits = 2, .per_channel = pc};
            cr_assert_eq(sq_model_create("resnet20", 3, 32, 32, 10, &m[pc]), SQ_OK);
            cr_assert_eq(sq_model_set_quant(m[pc], &q), SQ_OK, "%s", sq_last_error());
            cr_assert_eq(sq_model_setup(m[pc], be, B, 1), SQ_OK, "%s", sq_last_error());
        }
        sq_model_init_weights(m[0], 3);
        cr_assert_eq(sq_model_quant_init(m[0], x, B), SQ_OK, "%s", sq_last_error());
        /* every tensor of the per-tensor student into the per-channel one, a per-tensor
           quantizer value broadcast over the channels */
        for (int i = 0; i < m[0]->nparams; i++) {
            const sq_param *a = &m[0]->params[i], *b = &m[1]->params[i];
            cr_assert_str_eq(a->name, b->name);
            float *h = malloc(b->numel * sizeof(float));
            be->copy_d2h(h, sq_model_param_ptr(m[0], i), a->numel * sizeof(float));
            for (size_t e = a->numel; e < b->numel; e++) h[e] = h[0];
            be->copy_h2d(sq_model_param_ptr(m[1], i), h, b->numel * sizeof(float));
            free(h);
        }
        float gl[B * 10], *z[2];
        for (int i = 0; i < B * 10; i++) gl[i] = (float)((i * 7) % 11 - 5) / 10.0f;
        float *dgl = be->alloc(sizeof gl);
        be->copy_h2d(dgl, gl, sizeof gl);
        for (int pc = 0; pc < 2; pc++) {
            sq_model_set_input(m[pc], x, B);
            float *dz = sq_model_forward(m[pc], B, 1);
            z[pc] = malloc(sizeof gl);
            be->copy_d2h(z[pc], dz, sizeof gl);
            sq_model_zero_grad(m[pc]);
            sq_model_backward(m[pc], B, dgl);
        }
        be->sync();
        const char *kn = sq_quant_kind_name(kinds[k]);
        cr_assert(memcmp(z[0], z[1], sizeof gl) == 0, "%s: per-channel logits differ", kn);
        int layers = 0;
        for (int i = 0; i < m[0]->nparams; i++) {
            const sq_param *a = &m[0]->params[i], *b = &m[1]->params[i];
            if (a->kind != SQ_PT_QUANT) continue;
            float *ga = malloc(a->numel * sizeof(float)), *gb = malloc(b->numel * sizeof(float));
            be->copy_d2h(ga, m[0]->qg + a->off, a->numel * sizeof(float));
            be->copy_d2h(gb, m[1]->qg + b->off, b->numel * sizeof(float));
            if (b->numel == a->numel) {
                cr_assert(memcmp(ga, gb, a->numel * sizeof(float)) == 0, "%s %s: %.9g vs %.9g", kn, a->name, ga[0], gb[0]);
            } else {
                double sum = 0, mag = 0;
                for (size_t e = 0; e < b->numel; e++) sum += gb[e], mag += fabs(gb[e]);
                const double f = kinds[k] == SQ_QUANT_LSQ ? 1.0 / sqrt((double)b->numel) : 1.0;
                cr_assert(fabs(sum * f - ga[0]) <= 1e-5 * mag * f + 1e-7, "%s %s: channels add up to %.9g, per tensor %.9g",
                          kn, a->name, sum * f, ga[0]);
                layers++;
            }
            free(ga);
            free(gb);
        }
        cr_assert_gt(layers, 10, "%s: %d per-channel tensors", kn, layers);
        free(z[0]);
        free(z[1]);
        be->free(dgl);
        sq_model_free(m[0]);
        sq_model_free(m[1]);
    }
    free(x);
}
#endif
