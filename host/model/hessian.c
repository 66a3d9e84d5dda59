/* hessian.c: EWGS delta updated from the Hessian trace (method.md 3.1). For every quantized tensor
   t (weights and input activations of each quantized layer) and each batch:
       Tr(H_t) ~= v_t . (g_q(q + eps v) - g_q(q - eps v)) / (2 eps),   v Rademacher
   with all tensors probed at once (independent v's make the cross terms vanish in expectation),
   then delta_t = max(0, (Tr(H_t)/numel) / (3 std(g_q))) averaged over the batches. q is the
   discretizer output; the map back y = s q + b (EWGS: s = 2 for weights, 1 for activations) turns
   gradients w.r.t. y into g_q = s g_y and a probe of q into one of y with s eps v. */
#include "model_internal.h"
#include "sqakd/rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_EPS 1e-3f

typedef struct {
    sq_node *n;
    int role;          /* 0 weight, 1 activation */
    size_t numel;
    float slope;       /* dy/dq */
    float *v;          /* host Rademacher vector */
    float *gp, *gm;    /* host gradients w.r.t. y at +eps / -eps */
    double delta_sum;
} probe;

static void loss_grad(sq_model *m, sq_model *t, const float *x, const int32_t *y, int n, float T, float alpha,
                      float *loss, float *glog, int32_t *dlab)
{
    const sq_backend *be = m->be;
    sq_model_set_input(m, x, n);
    float *zs = sq_model_forward(m, n, 1);
    if (!y) {
        sq_model_set_input(t, x, n);
        float *zt = sq_model_forward(t, n, 0);
        be->kl_fwd_bwd(n, m->classes, zt, zs, T, alpha, loss, glog);
    } else {
        be->copy_h2d(dlab, y, (size_t)n * sizeof(int32_t));
        be->softmax_ce(n, m->classes, zs, dlab, 1.0f, loss, glog);
    }
    sq_model_zero_grad(m);
    sq_model_backward(m, n, glog);
}

static void collect(sq_model *m, probe *p, int np, int plus)
{
    for (int i = 0; i < np; i++) {
        float *dst = plus ? p[i].gp : p[i].gm;
        m->be->copy_d2h(dst, p[i].role ? p[i].n->gxq : p[i].n->gwq, p[i].numel * sizeof(float));
    }
}

static void set_probes(sq_model *m, probe *p, int np, float sign)
{
    float *h = NULL;
    size_t cap = 0;
    for (int i = 0; i < np; i++) {
        if (p[i].numel > cap) { cap = p[i].numel; h = realloc(h, cap * sizeof(float)); }
        for (size_t j = 0; j < p[i].numel; j++) h[j] = sign * PROBE_EPS * p[i].slope * p[i].v[j];
        m->be->copy_h2d(p[i].role ? p[i].n->pert_a : p[i].n->pert_w, h, p[i].numel * sizeof(float));
    }
    free(h);
}

sq_status sq_model_update_delta(sq_model *m, sq_model *teacher, const float *const *xs,
                                const int32_t *const *labels, int n_batches, int n, float T, float alpha,
                                uint64_t seed)
{
    const sq_backend *be = m->be;
    if (m->qopts.kind != SQ_QUANT_EWGS) {
        sq_set_error("the Hessian delta update applies to the ewgs quantizer only (got %s)",
                     sq_quant_kind_name(m->qopts.kind));
        return SQ_EARG;
    }
    if (!m->with_grad || n > m->batch) {
        sq_set_error("delta update needs a trainable model planned for at least %d samples", n);
        return SQ_EARG;
    }
    probe *p = sq_xcalloc(2 * (size_t)m->nnodes, sizeof *p);
    int np = 0;
    for (int i = 0; i < m->nnodes; i++) {
        sq_node *nd = &m->nodes[i];
        if (!nd->quant) continue;
        const sq_node *in = &m->nodes[nd->in0];
        p[np++] = (probe){.n = nd, .role = 0, .numel = m->params[nd->pw].numel, .slope = 2.0f};
        if (in->op != SQ_NODE_INPUT)   /* no activation gradient flows into the stem's input */
            p[np++] = (probe){.n = nd, .role = 1, .numel = (size_t)n * in->c * in->h * in->w, .slope = 1.0f};
    }
    for (int i = 0; i < np; i++) {
        p[i].v = sq_xmalloc(p[i].numel * sizeof(float));
        p[i].gp = sq_xmalloc(p[i].numel * sizeof(float));
        p[i].gm = sq_xmalloc(p[i].numel * sizeof(float));
        float **slot = p[i].role ? &p[i].n->pert_a : &p[i].n->pert_w;
        *slot = be->alloc(p[i].numel * sizeof(float));
    }
    float *saved_buf = sq_xmalloc((m->n_buf + 1) * sizeof(float));
    be->copy_d2h(saved_buf, m->buf, m->n_buf * sizeof(float));
    int64_t *tracked = sq_xcalloc(m->nnodes, sizeof *tracked);
    for (int i = 0; i < m->nnodes; i++) tracked[i] = m->nodes[i].bn_tracked;
    float *glog = be->alloc((size_t)n * m->classes * sizeof(float));
    float *loss = be->alloc(256);
    int32_t *dlab = be->alloc((size_t)n * sizeof(int32_t) + 256);
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 0xDE17A;
    for (int b = 0; b < n_batches; b++) {
        for (int i = 0; i < np; i++)
            for (size_t j = 0; j < p[i].numel; j++) p[i].v[j] = (sq_splitmix64(&rng) >> 63) ? 1.0f : -1.0f;
        const int32_t *y = labels ? labels[b] : NULL;
        set_probes(m, p, np, 1.0f);
        loss_grad(m, teacher, xs[b], y, n, T, alpha, loss, glog, dlab);
        collect(m, p, np, 1);
        set_probes(m, p, np, -1.0f);
        loss_grad(m, teacher, xs[b], y, n, T, alpha, loss, glog, dlab);
        collect(m, p, np, 0);
        for (int i = 0; i < np; i++) {
            double tr = 0, s1 = 0, s2 = 0, sl = p[i].slope;
            for (size_t j = 0; j < p[i].numel; j++) {
                /* g_q = slope * g_y ; H_q v = (g_q+ - g_q-) / (2 eps) */
                tr += p[i].v[j] * sl * ((double)p[i].gp[j] - p[i].gm[j]) / (2.0 * PROBE_EPS);
                double g = sl * 0.5 * ((double)p[i].gp[j] + p[i].gm[j]);
                s1 += g;
                s2 += g * g;
            }
            double cnt = (double)p[i].numel;
            double var = cnt > 1 ? (s2 - s1 * s1 / cnt) / (cnt - 1) : 0;
            double sd = var > 0 ? sqrt(var) : 0;
            double d = sd > 0 ? (tr / cnt) / (3.0 * sd) : 0;
            p[i].delta_sum += (isfinite(d) && d > 0) ? d : 0;
        }
    }
    for (int i = 0; i < np; i++) {
        float d = (float)(p[i].delta_sum / n_batches);
        if (p[i].role) p[i].n->qa.delta = d; else p[i].n->qw.delta = d;
        float **slot = p[i].role ? &p[i].n->pert_a : &p[i].n->pert_w;
        be->free(*slot);
        *slot = NULL;
        free(p[i].v); free(p[i].gp); free(p[i].gm);
    }
    be->copy_h2d(m->buf, saved_buf, m->n_buf * sizeof(float));
    for (int i = 0; i < m->nnodes; i++) m->nodes[i].bn_tracked = tracked[i];
    sq_model_zero_grad(m);
    be->free(glog); be->free(loss); be->free(dlab);
    free(saved_buf); free(tracked); free(p);
    return SQ_OK;
}
