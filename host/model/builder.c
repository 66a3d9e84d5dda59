/* builder.c: growing a model's node array and parameter table (no backend memory involved). */
#include "model_internal.h"
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

int sq_b_conv(sq_model *m, int in, const char *name, int cout, int k, int stride, int pad,
              int groups, int bias)
{
    sq_node *n = node_new(m, SQ_NODE_CONV, in, name);
    int cin = n->c;
    n->k = k; n->stride = stride; n->pad = pad; n->groups = groups; n->has_bias = bias;
    n->kh = n->kw = k; n->sh = n->sw = stride;
    n->pad_t = n->pad_l = n->pad_b = n->pad_r = pad;
    n->c = cout;
    n->h = (n->h + 2 * pad - k) / stride + 1;
    n->w = (n->w + 2 * pad - k) / stride + 1;
    int ws[4] = {cout, cin / groups, k, k};
    int id = m->nnodes - 1;
    int pw = sq_param_add(m, name, "weight", SQ_PT_TRAIN, 4, ws);
    int pb = -1;
    if (bias) { int bs[1] = {cout}; pb = sq_param_add(m, name, "bias", SQ_PT_TRAIN, 1, bs); }
    m->nodes[id].pw = pw; m->nodes[id].pb = pb;
    return id;
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
