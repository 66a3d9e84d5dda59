/* builder.c: growing a model's node array and parameter table (no backend memory involved). */
#include "model_internal.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sq_node *node_new(sq_model *m, sq_node_op op, int in0, const char *name)
{
    if (m->nnodes == m->cap_nodes) {
        m->cap_nodes = m->cap_nodes ? 2 * m->cap_nodes : 64;
        m->nodes = realloc(m->nodes, m->cap_nodes * sizeof *m->nodes);
        if (!m->nodes) { fprintf(stderr, "sqakd: out of memory\n"); exit(3); }
    }
    sq_node *n = &m->nodes[m->nnodes++];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->in0 = in0;
    n->in1 = -1;
    n->pw = n->pb = n->prm = n->prv = -1;
    n->qpw = n->qpa = n->qps = -1;
    snprintf(n->name, sizeof n->name, "%s", name ? name : "");
    if (in0 >= 0) {
        const sq_node *s = &m->nodes[in0];
        n->c = s->c; n->h = s->h; n->w = s->w;
    }
    return n;
}

int sq_param_add(sq_model *m, const char *prefix, const char *leaf, sq_param_kind kind, int ndim,
                 const int *shape)
{
    if (m->nparams == m->cap_params) {
        m->cap_params = m->cap_params ? 2 * m->cap_params : 64;
        m->params = realloc(m->params, m->cap_params * sizeof *m->params);
        if (!m->params) { fprintf(stderr, "sqakd: out of memory\n"); exit(3); }
    }
    sq_param *p = &m->params[m->nparams];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s%s%s", prefix, prefix[0] ? "." : "", leaf);
    p->kind = kind;
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) { p->shape[i] = shape[i]; p->numel *= (size_t)shape[i]; }
    size_t *total = kind == SQ_PT_TRAIN ? &m->n_train : kind == SQ_PT_BUFFER ? &m->n_buf : &m->n_quant;
    p->off = *total;
    /* quantizer scalars stay contiguous ({l, u} pairs are read as one qp vector) */
    *total += kind == SQ_PT_QUANT ? p->numel : sq_pad64(p->numel);
    return m->nparams++;
}

int sq_b_input(sq_model *m, int c, int h, int w)
{
    sq_node *n = node_new(m, SQ_NODE_INPUT, -1, "input");
    n->c = c; n->h = h; n->w = w;
    return m->nnodes - 1;
}

/* a conv with a kh x kw kernel, square stride and symmetric padding */
static int conv_node(sq_model *m, int in, const char *name, int cout, int kh, int kw, int stride,
                     int pad, int groups, int bias)
{
    sq_node *n = node_new(m, SQ_NODE_CONV, in, name);
    int cin = n->c;
    n->k = kh; n->stride = stride; n->pad = pad; n->groups = groups; n->has_bias = bias;
    n->kh = kh; n->kw = kw; n->sh = n->sw = stride;
    n->pad_t = n->pad_l = n->pad_b = n->pad_r = pad;
    n->c = cout;
    n->h = (n->h + 2 * pad - kh) / stride + 1;
    n->w = (n->w + 2 * pad - kw) / stride + 1;
    int ws[4] = {cout, cin / groups, kh, kw};
    int id = m->nnodes - 1;
    int pw = sq_param_add(m, name, "weight", SQ_PT_TRAIN, 4, ws);
    int pb = -1;
    if (bias) { int bs[1] = {cout}; pb = sq_param_add(m, name, "bias", SQ_PT_TRAIN, 1, bs); }
    m->nodes[id].pw = pw; m->nodes[id].pb = pb;
    return id;
}

int sq_b_conv(sq_model *m, int in, const char *name, int cout, int k, int stride, int pad,
              int groups, int bias)
{
    return conv_node(m, in, name, cout, k, k, stride, pad, groups, bias);
}

int sq_b_bn(sq_model *m, int in, const char *name)
{
    node_new(m, SQ_NODE_BN, in, name);
    int id = m->nnodes - 1;
    int s[1] = {m->nodes[id].c};
    int pw = sq_param_add(m, name, "weight", SQ_PT_TRAIN, 1, s);
    int pb = sq_param_add(m, name, "bias", SQ_PT_TRAIN, 1, s);
    int rm = sq_param_add(m, name, "running_mean", SQ_PT_BUFFER, 1, s);
    int rv = sq_param_add(m, name, "running_var", SQ_PT_BUFFER, 1, s);
    sq_node *n = &m->nodes[id];
    n->pw = pw; n->pb = pb; n->prm = rm; n->prv = rv;
    return id;
}

int sq_b_act(sq_model *m, int in, int kind)
{
    sq_node *n = node_new(m, SQ_NODE_ACT, in, "act");
    n->act = kind;
    return m->nnodes - 1;
}

int sq_b_pool(sq_model *m, int in, int kind, int k, int stride, int pad)
{
    sq_node *n = node_new(m, SQ_NODE_POOL, in, "pool");
    n->pool = kind; n->k = k; n->stride = stride; n->pad = pad;
    n->kh = n->kw = k; n->sh = n->sw = stride;
    n->pad_t = n->pad_l = n->pad_b = n->pad_r = pad;
    n->count_include_pad = 1;
    n->h = (n->h + 2 * pad - k) / stride + 1;
    n->w = (n->w + 2 * pad - k) / stride + 1;
    return m->nnodes - 1;
}

int sq_b_gap(sq_model *m, int in)
{
    sq_node *n = node_new(m, SQ_NODE_GAP, in, "gap");
    n->h = n->w = 1;
    return m->nnodes - 1;
}

int sq_b_flatten(sq_model *m, int in)
{
    sq_node *n = node_new(m, SQ_NODE_FLATTEN, in, "flatten");
    n->c = n->c * n->h * n->w;
    n->h = n->w = 1;
    return m->nnodes - 1;
}

int sq_b_linear(sq_model *m, int in, const char *name, int out, int bias)
{
    sq_node *n = node_new(m, SQ_NODE_LINEAR, in, name);
    int fin = n->c * n->h * n->w;
    n->c = out; n->h = n->w = 1; n->has_bias = bias;
    int id = m->nnodes - 1;
    int ws[2] = {out, fin};
    int pw = sq_param_add(m, name, "weight", SQ_PT_TRAIN, 2, ws);
    int pb = -1;
    if (bias) { int bs[1] = {out}; pb = sq_param_add(m, name, "bias", SQ_PT_TRAIN, 1, bs); }
    m->nodes[id].pw = pw; m->nodes[id].pb = pb;
    return id;
}

int sq_b_add(sq_model *m, int a, int b)
{
    sq_node *n = node_new(m, SQ_NODE_ADD, a, "add");
    n->in1 = b;
    return m->nnodes - 1;
}

int sq_b_shortcut_a(sq_model *m, int in, int cout)
{
    sq_node *n = node_new(m, SQ_NODE_SHORTCUT_A, in, "shortcut");
    n->c = cout;
    n->h = (n->h + 1) / 2;
    n->w = (n->w + 1) / 2;
    return m->nnodes - 1;
}

int sq_b_concat(sq_model *m, int a, int b)
{
    /* channels of any two inputs of one spatial size (an importer chains it for more inputs) */
    if (a < 0 || b < 0 || a >= m->nnodes || b >= m->nnodes || m->nodes[a].h != m->nodes[b].h ||
        m->nodes[a].w != m->nodes[b].w) {
        sq_set_error("concat: inputs %d and %d differ in height or width", a, b);
        return -1;
    }
    sq_node *n = node_new(m, SQ_NODE_CONCAT, a, "concat");
    n->in1 = b;
    n->c += m->nodes[b].c;
    return m->nnodes - 1;
}

int sq_b_shuffle(sq_model *m, int in, int groups)
{
    sq_node *n = node_new(m, SQ_NODE_SHUFFLE, in, "shuffle");
    n->groups = groups;
    return m->nnodes - 1;
}

int sq_b_dropout(sq_model *m, int in, float p)
{
    sq_node *n = node_new(m, SQ_NODE_DROPOUT, in, "dropout");
    n->p = p;
    return m->nnodes - 1;
}

/* ---- general windows and the ops of imported graphs (issue 18). These check their arguments,
   since an importer passes what a file says: -1 with the error set on an impossible one. ---- */

int sq_b_conv_k(sq_model *m, int in, const char *name, int cout, int kh, int kw, int stride,
                int pad_t, int pad_l, int pad_b, int pad_r, int groups, int bias)
{
    if (in < 0 || in >= m->nnodes || cout <= 0 || kh <= 0 || kw <= 0 || stride <= 0 || pad_t < 0 ||
        pad_l < 0 || pad_b < 0 || pad_r < 0 || groups <= 0 || m->nodes[in].c % groups ||
        cout % groups) {
        sq_set_error("conv %s: impossible kernel %dx%d, stride %d, pads %d,%d,%d,%d, groups %d "
                     "or %d output channels", name, kh, kw, stride, pad_t, pad_l, pad_b, pad_r,
                     groups, cout);
        return -1;
    }
    const sq_node *s = &m->nodes[in];
    const int ph = s->h + pad_t + pad_b, pw = s->w + pad_l + pad_r;
    if (ph < kh || pw < kw) { /* checked before a PAD node is added */
        sq_set_error("conv %s: kernel %dx%d larger than its padded input %dx%d", name, kh, kw, ph, pw);
        return -1;
    }
    int pad = pad_t;
    if (pad_l != pad_t || pad_b != pad_t || pad_r != pad_t) {
        /* the conv op pads symmetrically: zero padding of its own first, then a conv without */
        in = sq_b_pad(m, in, pad_t, pad_l, pad_b, pad_r, 0.0f);
        if (in < 0) return -1;
        pad = 0;
    }
    return conv_node(m, in, name, cout, kh, kw, stride, pad, groups, bias);
}

int sq_b_pool_k(sq_model *m, int in, int kind, int kh, int kw, int sh, int sw, int pad_t,
                int pad_l, int pad_b, int pad_r, int ceil_mode, int count_include_pad)
{
    sq_pool_shape ps;
    if (in < 0 || in >= m->nnodes || (kind != SQ_POOL_MAX && kind != SQ_POOL_AVG)) {
        sq_set_error("pool: bad input node %d or kind %d", in, kind);
        return -1;
    }
    const sq_node *s = &m->nodes[in];
    if (sq_pool_shape_init(&ps, 1, s->c, s->h, s->w, kh, kw, sh, sw, pad_t, pad_l, pad_b, pad_r,
                           ceil_mode, count_include_pad) != SQ_OK)
        return -1;
    sq_node *n = node_new(m, SQ_NODE_POOL, in, "pool");
    n->pool = kind;
    n->k = kh; n->stride = sh; n->pad = pad_t;  /* the square fields, for what reads only them */
    n->kh = kh; n->kw = kw; n->sh = sh; n->sw = sw;
    n->pad_t = pad_t; n->pad_l = pad_l; n->pad_b = pad_b; n->pad_r = pad_r;
    n->ceil_mode = ceil_mode;
    n->count_include_pad = count_include_pad;
    n->h = ps.oh;
    n->w = ps.ow;
    return m->nnodes - 1;
}

int sq_b_pad(sq_model *m, int in, int pad_t, int pad_l, int pad_b, int pad_r, float value)
{
    if (in < 0 || in >= m->nnodes || pad_t < 0 || pad_l < 0 || pad_b < 0 || pad_r < 0 ||
        isnan(value)) {
        sq_set_error("pad: bad input node %d, pads %d,%d,%d,%d (>= 0) or value %g", in, pad_t,
                     pad_l, pad_b, pad_r, (double)value);
        return -1;
    }
    sq_node *n = node_new(m, SQ_NODE_PAD, in, "pad");
    n->pad_t = pad_t; n->pad_l = pad_l; n->pad_b = pad_b; n->pad_r = pad_r;
    n->pad_value = value;
    n->h += pad_t + pad_b;
    n->w += pad_l + pad_r;
    return m->nnodes - 1;
}

int sq_b_clip(sq_model *m, int in, float lo, float hi)
{
    if (in < 0 || in >= m->nnodes || isnan(lo) || isnan(hi) || lo > hi) {
        sq_set_error("clip: bad input node %d or bounds [%g, %g]", in, (double)lo, (double)hi);
        return -1;
    }
    /* ReLU and ReLU6 stay activations: the fused BN/ADD + activation ops apply to them */
    if (lo == 0.0f && isinf(hi) && hi > 0) return sq_b_act(m, in, SQ_ACT_RELU);
    if (lo == 0.0f && hi == 6.0f) return sq_b_act(m, in, SQ_ACT_RELU6);
    sq_node *n = node_new(m, SQ_NODE_CLIP, in, "clip");
    n->lo = lo;
    n->hi = hi;
    return m->nnodes - 1;
}

int sq_b_affine(sq_model *m, int in, const char *name)
{
    if (in < 0 || in >= m->nnodes || !name || !name[0]) {
        sq_set_error("affine: bad input node %d or no name", in);
        return -1;
    }
    node_new(m, SQ_NODE_AFFINE, in, name);
    const int id = m->nnodes - 1;
    int s[1] = {m->nodes[id].c};
    /* constants: buffers (not trained; checkpointed with the model), filled by the importer */
    const int pa = sq_param_add(m, name, "a", SQ_PT_BUFFER, 1, s);
    const int pb = sq_param_add(m, name, "b", SQ_PT_BUFFER, 1, s);
    m->nodes[id].pw = pa;
    m->nodes[id].pb = pb;
    return id;
}

int sq_b_slice(sq_model *m, int in, int c0, int c)
{
    if (in < 0 || in >= m->nnodes || c0 < 0 || c <= 0 || c0 + c > m->nodes[in].c) {
        sq_set_error("slice: channels [%d, %d) of node %d's %d", c0, c0 + c, in,
                     in >= 0 && in < m->nnodes ? m->nodes[in].c : 0);
        return -1;
    }
    sq_node *n = node_new(m, SQ_NODE_SLICE, in, "slice");
    n->c0 = c0;
    n->c = c;
    return m->nnodes - 1;
}
