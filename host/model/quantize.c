/* quantize.c: turning a model into a quantized student (method.md 3.6: which layers) and
   initialising its quantizers from one batch in train mode, layer by layer (method.md 3.2). */
#include "model_internal.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sq_status check_bits(const char *what, int bits)
{
    if (bits < 1 || bits > 8) {
        sq_set_error("%s must be 1..8, got %d", what, bits);
        return SQ_EARG;
    }
    return SQ_OK;
}

/* 1 when node id's output is never negative: it comes from a ReLU (ReLU6, a Clip at >= 0) through
   ops that keep the sign (pooling, padding with >= 0, slicing, shuffles, concatenations and sums
   of such tensors). Imported graphs quantize a convolution's input unsigned only then: a
   MobileNet's linear bottleneck or a ShuffleNet branch feeds convolutions signed values. */
static int nonneg_node(const sq_model *m, const unsigned char *nn, int id)
{
    const sq_node *n = &m->nodes[id];
    const int a = n->in0 >= 0 && nn[n->in0], b = n->in1 >= 0 && nn[n->in1];
    switch (n->op) {
    case SQ_NODE_ACT: return 1;
    case SQ_NODE_CLIP: return n->lo >= 0.0f;
    case SQ_NODE_PAD: return n->pad_value >= 0.0f && a;
    case SQ_NODE_POOL: case SQ_NODE_GAP: case SQ_NODE_FLATTEN: case SQ_NODE_SLICE: case SQ_NODE_SHUFFLE:
    case SQ_NODE_DROPOUT: case SQ_NODE_SHORTCUT_A:
        return a;
    case SQ_NODE_CONCAT: case SQ_NODE_ADD: return a && b;
    default: return 0;
    }
}

sq_status sq_model_set_quant(sq_model *m, const sq_quant_opts *q)
{
    m->qopts = *q;
    if (q->kind == SQ_QUANT_NONE) return SQ_OK;
    if (check_bits("--wbits", q->wbits) || check_bits("--abits", q->abits)) return SQ_EARG;
    if (q->delta_w < 0 || q->delta_a < 0 || !isfinite(q->delta_w) || !isfinite(q->delta_a)) {
        sq_set_error("EWGS delta must be finite and >= 0");
        return SQ_EARG;
    }
    int zoo = 0;   /* the zoo keeps its own rule (method.md 3.6), bit for bit */
    for (int i = 0; i < sq_model_zoo_count(); i++) zoo |= !strcmp(m->arch, sq_model_zoo_name(i));
    int nq = 0;
    unsigned char *nn = sq_xcalloc((size_t)m->nnodes, 1);   /* nodes are in topological order */
    for (int i = 0; i < m->nnodes; i++) nn[i] = (unsigned char)nonneg_node(m, nn, i);
    for (int i = 0; i < m->nnodes; i++) {
        sq_node *n = &m->nodes[i];
        if (n->op != SQ_NODE_CONV && n->op != SQ_NODE_LINEAR) continue;
        if (!(n->quantizable || (n->first_or_last && q->first_last))) continue;
        const sq_node *in = &m->nodes[n->in0];
        const sq_param *pw = &m->params[n->pw];
        n->quant = 1;
        nq++;
        n->qw.kind = q->kind;
        n->qw.role = SQ_QROLE_WEIGHT;
        n->qw.bits = q->wbits;
        n->qw.is_signed = 1;
        n->qw.delta = q->delta_w;
        n->qw.channels = q->per_channel ? pw->shape[0] : 0;
        n->qw.grad_numel = (float)(pw->numel / (size_t)sq_quant_channels(&n->qw));
        n->qa.kind = q->kind;
        n->qa.role = SQ_QROLE_ACT;
        n->qa.bits = q->abits;
        /* the zoo: only the stem sees signed (normalised image) inputs, block inputs follow a ReLU;
           any other graph (imported): signed unless the input is known to be >= 0 */
        n->qa.is_signed = in->op == SQ_NODE_INPUT || (!zoo && !nn[n->in0]);
        n->qa.delta = q->delta_a;
        n->qa.grad_numel = (float)(in->c * in->h * in->w);
        int scalar[1] = {0}, wch[1] = {pw->shape[0]}, wnd = q->per_channel ? 1 : 0;
        switch (q->kind) {
        case SQ_QUANT_EWGS:
            n->qpw = sq_param_add(m, n->name, "lW", SQ_PT_QUANT, wnd, wch);
            sq_param_add(m, n->name, "uW", SQ_PT_QUANT, wnd, wch);
            n->qpa = sq_param_add(m, n->name, "lA", SQ_PT_QUANT, 0, scalar);
            sq_param_add(m, n->name, "uA", SQ_PT_QUANT, 0, scalar);
            n->qps = sq_param_add(m, n->name, "output_scale", SQ_PT_QUANT, 0, scalar);
            break;
        case SQ_QUANT_PACT:
            n->qpa = sq_param_add(m, n->name, "alphaA", SQ_PT_QUANT, 0, scalar);
            break;
        case SQ_QUANT_LSQ:
            n->qpw = sq_param_add(m, n->name, "sW", SQ_PT_QUANT, wnd, wch);
            n->qpa = sq_param_add(m, n->name, "sA", SQ_PT_QUANT, 0, scalar);
            break;
        default:
            break;
        }
    }
    free(nn);
    if (!nq) {
        sq_set_error("model %s has no layer to quantize", m->arch);
        return SQ_EARG;
    }
    return sq_bits_map_apply(m, q->bits_map);
}

static double mean_abs(const float *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += fabs(v[i]);
    return n ? s / n : 0;
}

sq_status sq_model_quant_init(sq_model *m, const float *x_host, int n)
{
    const sq_backend *be = m->be;
    if (n > m->batch) n = m->batch;
    sq_model_set_input(m, x_host, n);
    for (int i = 0; i < m->nnodes; i++) {
        sq_node *nd = &m->nodes[i];
        if (!nd->quant) { sq_node_fwd(m, i, n, 1); continue; }
        const sq_node *in = &m->nodes[nd->in0];
        size_t nw = m->params[nd->pw].numel, nx = (size_t)n * in->c * in->h * in->w;
        size_t ny = (size_t)n * nd->c * nd->h * nd->w;
        float *h = sq_xmalloc((nw > nx ? (nw > ny ? nw : ny) : (nx > ny ? nx : ny)) * sizeof(float));
        float qp[SQ_QUANT_MAX_PARAMS];
        if (sq_quant_nparams(&nd->qw)) {
            const size_t nq = (size_t)sq_quant_nparams(&nd->qw) * sq_quant_channels(&nd->qw);
            float *qw = sq_xmalloc(nq * sizeof(float));
            be->copy_d2h(h, sq_model_param_ptr(m, nd->pw), nw * sizeof(float));
            sq_quant_init_weight_pc(&nd->qw, h, nw, qw);
            be->copy_h2d(sq_model_param_ptr(m, nd->qpw), qw, nq * sizeof(float));
            free(qw);
        }
        if (sq_quant_nparams(&nd->qa)) {
            be->copy_d2h(h, in->out, nx * sizeof(float));
            sq_quant_init_act(&nd->qa, h, nx, qp);
            be->copy_h2d(sq_model_param_ptr(m, nd->qpa), qp, sq_quant_nparams(&nd->qa) * sizeof(float));
        }
        if (nd->qps >= 0) {
            /* s = mean|conv(x, w) + b| / mean|conv(x_q, W_q) + b| */
            float one = 1.0f;
            be->copy_h2d(sq_model_param_ptr(m, nd->qps), &one, sizeof one);
            nd->quant = 0;
            sq_node_fwd_qlayer(m, nd, n);
            be->copy_d2h(h, nd->out, ny * sizeof(float));
            double fp = mean_abs(h, ny);
            nd->quant = 1;
            sq_node_fwd_qlayer(m, nd, n); /* with s = 1: the output is conv(x_q, W_q) + b */
            be->copy_d2h(h, nd->out, ny * sizeof(float));
            double qz = mean_abs(h, ny);
            float s = qz > 0 ? (float)(fp / qz) : 1.0f;
            if (!isfinite(s)) s = 1.0f;
            be->copy_h2d(sq_model_param_ptr(m, nd->qps), &s, sizeof s);
        }
        free(h);
        sq_node_fwd(m, i, n, 1);
    }
    return SQ_OK;
}
