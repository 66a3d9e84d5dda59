/* fold.c: BatchNorm folding for inference-only models (the frozen teacher). A conv followed by an
   eval-mode BN computes gamma (conv(x, W) + b - mean) / sqrt(var + eps) + beta, which is one conv
   with W' = W a and b' = (b - mean) a + beta, a = gamma / sqrt(var + eps) per output channel:
   one pass over the activations fewer per layer. The folded weight and bias live in their own
   buffers (the parameters stay as loaded, so students copied from the teacher and checkpoints
   are unaffected); the BN node's output becomes its input's. */
#include "model_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SQ_BN_EPS 1e-5 /* the eps of every BN layer (graph.c) */

static sq_status fold_one(sq_model *m, sq_node *conv, sq_node *bn)
{
    const sq_backend *be = m->be;
    const size_t nw = m->params[conv->pw].numel, per = nw / (size_t)conv->c;
    const int k = conv->c;
    float *w = malloc(nw * sizeof(float)), *b = calloc((size_t)k, sizeof(float));
    float *st = malloc(4 * (size_t)k * sizeof(float));
    sq_status rc = SQ_ENOMEM;
    if (!w || !b || !st) {
        sq_set_error("out of host memory folding BatchNorm %s", bn->name);
        goto done;
    }
    be->copy_d2h(w, sq_model_param_ptr(m, conv->pw), nw * sizeof(float));
    if (conv->pb >= 0) be->copy_d2h(b, sq_model_param_ptr(m, conv->pb), (size_t)k * sizeof(float));
    be->copy_d2h(st, sq_model_param_ptr(m, bn->pw), (size_t)k * sizeof(float));
    be->copy_d2h(st + k, sq_model_param_ptr(m, bn->pb), (size_t)k * sizeof(float));
    be->copy_d2h(st + 2 * k, sq_model_param_ptr(m, bn->prm), (size_t)k * sizeof(float));
    be->copy_d2h(st + 3 * k, sq_model_param_ptr(m, bn->prv), (size_t)k * sizeof(float));
    for (int o = 0; o < k; o++) {
        /* the unfused eval BN computes invstd in double and rounds it to float (kernels/cpu/bn.c) */
        const double a = (double)st[o] * (double)(float)(1.0 / sqrt((double)st[3 * k + o] + SQ_BN_EPS));
        for (size_t j = 0; j < per; j++) w[(size_t)o * per + j] = (float)(w[(size_t)o * per + j] * a);
        b[o] = (float)(((double)b[o] - st[2 * k + o]) * a + st[k + o]);
    }
    conv->fw = be->alloc(nw * sizeof(float));
    conv->fbias = be->alloc((size_t)k * sizeof(float));
    if (!conv->fw || !conv->fbias) {
        sq_set_error("out of %s memory folding BatchNorm %s", be->name, bn->name);
        goto done;
    }
    be->copy_h2d(conv->fw, w, nw * sizeof(float));
    be->copy_h2d(conv->fbias, b, (size_t)k * sizeof(float));
    bn->folded = 1;
    bn->out = conv->out;
    rc = SQ_OK;
done:
    free(w);
    free(b);
    free(st);
    return rc;
}

sq_status sq_model_fold_bn(sq_model *m, int *folded)
{
    int count = 0;
    if (folded) *folded = 0;
    if (!m->be || m->with_grad) {
        sq_set_error("BatchNorm folding needs a set-up inference-only model (the teacher)");
        return SQ_EARG;
    }
    for (int i = 0; i < m->nnodes; i++) {
        sq_node *bn = &m->nodes[i];
        if (bn->op != SQ_NODE_BN || bn->folded || bn->in0 < 0) continue;
        sq_node *conv = &m->nodes[bn->in0];
        if (conv->op != SQ_NODE_CONV || conv->quant || conv->fw ||
            sq_node_consumers(m, bn->in0) != 1)
            continue;
        sq_status rc = fold_one(m, conv, bn);
        if (rc) return rc;
        count++;
    }
    if (folded) *folded = count;
    return SQ_OK;
}
