/* graph.c: memory planning, forward and backward of a model over the backend op table. */
#include "model_internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *qparam(const sq_model *m, int id) { return id < 0 ? NULL : m->qp + m->params[id].off; }
static float *qgrad(const sq_model *m, int id) { return id < 0 || !m->qg ? NULL : m->qg + m->params[id].off; }
static float *tparam(const sq_model *m, int id)
{
    if (id < 0) return NULL;
    const sq_param *p = &m->params[id];
    return (p->kind == SQ_PT_BUFFER ? m->buf : m->p) + p->off;
}
static float *tgrad(const sq_model *m, int id)
{
    if (id < 0 || !m->g) return NULL;
    return m->g + m->params[id].off;
}

float *sq_model_param_ptr(const sq_model *m, int id)
{
    const sq_param *p = &m->params[id];
    return (p->kind == SQ_PT_QUANT ? m->qp : p->kind == SQ_PT_BUFFER ? m->buf : m->p) + p->off;
}

static size_t node_numel(const sq_node *n) { return (size_t)n->c * n->h * n->w; }

/* ---- planning ---- */

typedef struct { size_t used; float *base; } arena;

static float *take(arena *a, size_t nfloats)
{
    float *p = a->base ? a->base + a->used : NULL;
    a->used += sq_pad64(nfloats);
    return p;
}

static int bwd_fusable(const sq_model *m, int i);
static int bwd_fusable3(const sq_model *m, int i);

/* node i's gout is accumulated into by the backward, so it is zeroed before each one: every
   gout except those of a BN or ADD whose backward is fused with the activation after it (never
   touched) */
static int gout_zeroed(const sq_model *m, int i)
{
    const sq_node *n = &m->nodes[i];
    if (i == m->nnodes - 1 && n->op != SQ_NODE_FLATTEN) return 0; /* the logits': the loss writes it whole */
    return !(bwd_fusable(m, i) || bwd_fusable3(m, i) ||
             (n->op == SQ_NODE_ADD && bwd_fusable3(m, i - 1)));
}

/* node i's one consumer writes (not accumulates into) its gout with a "set" op of the backend
   (backend.h): a training BN in any of its fused forms, or an unquantized convolution */
static int gout_written_once(const sq_model *m, int i)
{
    const sq_backend *be = m->be;
    const sq_node *n = &m->nodes[i];
    if (n->op == SQ_NODE_INPUT || n->op == SQ_NODE_FLATTEN || sq_node_consumers(m, i) != 1)
        return 0;
    int j = i + 1;
    while (j < m->nnodes && m->nodes[j].in0 != i && m->nodes[j].in1 != i) j++;
    if (j == m->nnodes) return 0;
    const sq_node *c = &m->nodes[j];
    if (c->in0 != i || c->in1 == i) return 0;
    if (c->op == SQ_NODE_BN && !c->folded) {
        if (bwd_fusable3(m, j)) return be->bn_add_act_bwd_set != NULL;
        if (bwd_fusable(m, j)) return be->bn_act_bwd_set != NULL;
        return be->bn_bwd_set != NULL;
    }
    if (c->op == SQ_NODE_CONV && !c->quant) return be->conv2d_bwd_set != NULL;
    return 0;
}

/* Two passes: first with base NULL to size the arenas, then for real. Gradient buffers that the
   backward accumulates into come from `gz` and the others from `gn`: the backward zeroes all of
   gz with one memset (it was one call per buffer: 128 for a resnet20 step) and gz lies first in
   the gradient arena. Buffers that one "set" op writes (gout_set, and a quantized convolution's
   gxq when the backend has conv2d_bwd_set) need no zeroing and come from gn too. */
static void plan(sq_model *m, arena *act, arena *gz, arena *gn, const size_t *out_off)
{
    size_t B = (size_t)m->batch;
    for (int i = 0; i < m->nnodes; i++) {
        sq_node *n = &m->nodes[i];
        if (n->op == SQ_NODE_FLATTEN) {
            n->out = m->nodes[n->in0].out;
            n->gout = m->nodes[n->in0].gout;
            continue;
        }
        if (!out_off) n->out = take(act, B * node_numel(n));
        else n->out = act->base ? act->base + out_off[i] : NULL;
        if (n->op == SQ_NODE_BN && n->folded) n->out = m->nodes[n->in0].out; /* fold.c */
        if (m->with_grad)
            n->gout = take(gout_zeroed(m, i) && !n->gout_set ? gz : gn, B * node_numel(n));
        if (n->op == SQ_NODE_BN) {
            n->save_mean = take(act, n->c);
            n->save_invstd = take(act, n->c);
        } else if (n->op == SQ_NODE_POOL && n->pool == SQ_POOL_MAX) {
            /* where the backward reads it; an inference-only forward passes NULL */
            n->argmax = m->with_grad ? (int32_t *)take(act, B * node_numel(n)) : NULL;
        } else if (n->op == SQ_NODE_DROPOUT) {
            n->mask = (uint8_t *)take(act, (B * node_numel(n) + 3) / 4);
        }
        if (n->quant) {
            const sq_node *in = &m->nodes[n->in0];
            size_t nin = B * node_numel(in);
            size_t nw = m->params[n->pw].numel;
            n->xq = take(act, nin);
            n->wq = take(act, nw);
            n->scratch_w = take(act, (size_t)SQ_QUANT_SCRATCH * sq_quant_channels(&n->qw));
            n->scratch_a = take(act, SQ_QUANT_SCRATCH);
            const int scaled = n->qps >= 0, bias = n->pb >= 0;
            if (scaled) n->wqs = take(act, nw);
            if (scaled && bias) n->bqs = take(act, n->c);
            if (m->with_grad) {
                n->gxq = take(n->op == SQ_NODE_CONV && m->be->conv2d_bwd_set ? gn : gz, nin);
                n->gwq = take(gz, nw);
                if (scaled) n->gwqs = take(gz, nw);
                if (scaled && bias) n->gbqs = take(gz, n->c);
            }
        }
    }
}

int sq_node_consumers(const sq_model *m, int id)
{
    int c = 0;
    for (int i = 0; i < m->nnodes; i++) c += (m->nodes[i].in0 == id) + (m->nodes[i].in1 == id);
    return c;
}

static void conv_shape(const sq_model *m, const sq_node *n, int batch, sq_conv_shape *cs)
{
    const sq_node *in = &m->nodes[n->in0];
    sq_conv_shape_init(cs, batch, in->c, in->h, in->w, n->c, n->kh, n->kw, n->stride, n->pad, n->groups);
    cs->direct = n->quant != 0; /* a quantized layer on the float path keeps the twin's bits */
}

static void pool_shape(const sq_model *m, const sq_node *n, int batch, sq_pool_shape *ps)
{
    const sq_node *in = &m->nodes[n->in0];
    sq_pool_shape_init(ps, batch, in->c, in->h, in->w, n->kh, n->kw, n->sh, n->sw, n->pad_t, n->pad_l,
                       n->pad_b, n->pad_r, n->ceil_mode, n->count_include_pad);
}

sq_status sq_model_setup(sq_model *m, const sq_backend *be, int batch, int with_grad)
{
    if (batch <= 0 || batch > 65536) {
        sq_set_error("batch size must be 1..65536 (got %d)", batch);
        return SQ_EARG;
    }
    m->be = be;
    m->batch = batch;
    m->with_grad = with_grad;
    size_t bytes_p = m->n_train * sizeof(float), bytes_b = m->n_buf * sizeof(float);
    size_t bytes_q = sq_pad64(m->n_quant) * sizeof(float);
    m->p = be->alloc(bytes_p ? bytes_p : 256);
    m->buf = be->alloc(bytes_b ? bytes_b : 256);
    m->qp = be->alloc(bytes_q ? bytes_q : 256);
    if (with_grad) {
        m->g = be->alloc(bytes_p ? bytes_p : 256);
        m->qg = be->alloc(bytes_q ? bytes_q : 256);
    }
    /* fusable runs, before the plan (which places the gradients by them), from the end so that
       an ADD's flag is known before the BN before it: BN or ADD -> ACT (1), BN -> ADD -> ACT (2);
       each node the only consumer of the one before */
    for (int i = m->nnodes - 2; i >= 0; i--) {
        sq_node *n = &m->nodes[i], *next = &m->nodes[i + 1];
        const int single = sq_node_consumers(m, i) == 1;
        n->fuse_act = (n->op == SQ_NODE_BN || n->op == SQ_NODE_ADD) && next->op == SQ_NODE_ACT &&
                      next->in0 == i && single;
        if (n->op == SQ_NODE_BN && next->op == SQ_NODE_ADD && next->fuse_act && single &&
            (next->in0 == i) != (next->in1 == i))
            n->fuse_act = 2;
    }
    for (int i = 0; i < m->nnodes; i++) m->nodes[i].gout_set = with_grad && gout_written_once(m, i);
    arena act = {0, NULL}, gz = {0, NULL}, gn = {0, NULL};
    plan(m, &act, &gz, &gn, NULL);
    m->act_floats = act.used;
    m->grad_floats = gz.used + gn.used;
    m->grad_zero_floats = gz.used;
    m->act_arena = be->alloc(act.used * sizeof(float));
    if (with_grad) m->grad_arena = be->alloc(m->grad_floats * sizeof(float) + 256);
    size_t ws = 0;
    const int have = m->p && m->buf && m->qp && m->act_arena &&
                     !(with_grad && (!m->g || !m->qg || !m->grad_arena));
    /* convolution plans only once the tensors fit: planning a batch that cannot run would make
       the backend grow its internal workspace for nothing (cudnn.c keeps it) */
    for (int i = 0; have && i < m->nnodes; i++) {
        const sq_node *n = &m->nodes[i];
        if (n->op != SQ_NODE_CONV) continue;
        sq_conv_shape cs;
        conv_shape(m, n, batch, &cs);
        size_t b = be->conv_ws_bytes(&cs);
        if (b > ws) ws = b;
    }
    m->ws_bytes = ws;
    if (have) m->ws = be->alloc(ws ? ws : 256);
    if (!have || !m->ws) {
        double need = (bytes_p + bytes_q) * (with_grad ? 2.0 : 1.0) + bytes_b + (act.used + m->grad_floats) * 4.0 + ws;
        /* give back what was allocated: nothing stays half set up, and the free figure is true */
        void *got[] = {m->p, m->buf, m->qp, m->g, m->qg, m->act_arena, m->grad_arena, m->ws};
        for (size_t i = 0; i < sizeof got / sizeof got[0]; i++)
            if (got[i]) be->free(got[i]);
        m->p = m->buf = m->qp = m->g = m->qg = m->act_arena = m->grad_arena = NULL;
        m->ws = NULL;
        return sq_backend_oom_error(be, need, m->arch, batch, NULL);
    }
    act.base = m->act_arena; act.used = 0;
    gz.base = m->grad_arena; gz.used = 0;
    gn.base = m->grad_arena ? m->grad_arena + m->grad_zero_floats : NULL; gn.used = 0;
    plan(m, &act, &gz, &gn, NULL);
    /* BN defaults: gamma 1, running var 1 (weights are set by init or a checkpoint) */
    for (int i = 0; i < m->nnodes; i++) {
        const sq_node *n = &m->nodes[i];
        if (n->op != SQ_NODE_BN) continue;
        be->fill(n->c, 1.0f, tparam(m, n->pw));
        be->fill(n->c, 1.0f, tparam(m, n->prv));
    }
    /* affine defaults: the identity (a = 1, b = 0) until the importer sets the constants */
    for (int i = 0; i < m->nnodes; i++)
        if (m->nodes[i].op == SQ_NODE_AFFINE) be->fill(m->nodes[i].c, 1.0f, tparam(m, m->nodes[i].pw));
    return SQ_OK;
}

void sq_model_free(sq_model *m)
{
    if (!m) return;
    if (m->be) {
        const sq_backend *be = m->be;
        void *ptrs[] = {m->p, m->g, m->buf, m->qp, m->qg, m->act_arena, m->grad_arena, m->ws};
        for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++)
            if (ptrs[i]) be->free(ptrs[i]);
        for (int i = 0; i < m->nnodes; i++) {
            if (m->nodes[i].fw) be->free(m->nodes[i].fw);
            if (m->nodes[i].fbias) be->free(m->nodes[i].fbias);
        }
    }
    free(m->nodes);
    free(m->params);
    free(m);
}

/* How many nodes after node i a fused forward op may write (graph.c fwd_conv_fused: a folded
   convolution writes the activation's output three nodes on): a buffer is given to another node
   only this many nodes after its last reader, so no fused op writes over a value still read. */
#define FUSE_REACH 3

sq_status sq_model_compact_activations(sq_model *m)
{
    if (!m->be || m->with_grad || !m->act_arena) {
        sq_set_error("compacting the activations needs a set-up inference-only model (the teacher)");
        return SQ_EARG;
    }
    const int nn = m->nnodes;
    const size_t B = (size_t)m->batch;
    int *last = sq_xcalloc((size_t)nn, sizeof *last);
    size_t *off = sq_xcalloc((size_t)nn, sizeof *off);
    /* blocks of the output region: offset, size, and the node after which they are free */
    size_t *boff = sq_xcalloc((size_t)nn, sizeof *boff), *bsize = sq_xcalloc((size_t)nn, sizeof *bsize);
    int *bend = sq_xcalloc((size_t)nn, sizeof *bend), nb = 0;
    for (int i = 0; i < nn; i++) last[i] = i;
    for (int i = 0; i < nn; i++) {
        const sq_node *n = &m->nodes[i];
        if (n->in0 >= 0 && last[n->in0] < i) last[n->in0] = i;
        if (n->in1 >= 0 && last[n->in1] < i) last[n->in1] = i;
    }
    if (nn > 0) last[nn - 1] = nn + FUSE_REACH; /* the logits: read after the forward */
    /* a FLATTEN's or a folded BN's output is its input's buffer: that lives as long as theirs */
    for (int i = nn - 1; i >= 0; i--) {
        const sq_node *n = &m->nodes[i];
        const int alias = n->op == SQ_NODE_FLATTEN || (n->op == SQ_NODE_BN && n->folded);
        if (alias && n->in0 >= 0 && last[n->in0] < last[i]) last[n->in0] = last[i];
    }
    size_t used = 0;
    for (int i = 0; i < nn; i++) {
        const sq_node *n = &m->nodes[i];
        if (n->op == SQ_NODE_FLATTEN || (n->op == SQ_NODE_BN && n->folded)) continue;
        const size_t need = sq_pad64(B * node_numel(n));
        int best = -1;
        for (int b = 0; b < nb; b++)
            if (bend[b] + FUSE_REACH < i && bsize[b] >= need && (best < 0 || bsize[b] < bsize[best])) best = b;
        if (best < 0) {
            best = nb++;
            boff[best] = used;
            bsize[best] = need;
            used += need;
        }
        bend[best] = last[i];
        off[i] = boff[best];
    }
    const sq_backend *be = m->be;
    arena act = {used, NULL}, none = {0, NULL};
    plan(m, &act, &none, &none, off);
    float *fresh = be->alloc(act.used * sizeof(float));
    sq_status rc = SQ_OK;
    if (!fresh) {
        rc = sq_backend_oom_error(be, act.used * 4.0, m->arch, m->batch, NULL);
        act.base = m->act_arena; /* keep the old plan: re-point at the old arena */
        act.used = 0;
        plan(m, &act, &none, &none, NULL);
    } else {
        be->free(m->act_arena);
        m->act_arena = fresh;
        m->act_floats = act.used;
        act.base = fresh;
        act.used = used;
        plan(m, &act, &none, &none, off);
    }
    free(last); free(off); free(boff); free(bsize); free(bend);
    return rc;
}

void sq_model_set_input(sq_model *m, const float *x_host, int n)
{
    m->be->copy_h2d(m->nodes[0].out, x_host, (size_t)n * node_numel(&m->nodes[0]) * sizeof(float));
}

void sq_model_zero_grad(sq_model *m)
{
    const sq_backend *be = m->be;
    be->memset0(m->g, m->n_train * sizeof(float));
    be->memset0(m->qg, m->n_quant * sizeof(float));
}

/* ---- forward ---- */

/* Quantized (or plain) conv / linear forward of node n over `batch` samples. */
void sq_node_fwd_qlayer(sq_model *m, sq_node *n, int batch)
{
    const sq_backend *be = m->be;
    const sq_node *in = &m->nodes[n->in0];
    const float *x = in->out, *w = tparam(m, n->pw), *b = tparam(m, n->pb);
    float *y = n->out;
    if (n->fw) { /* BatchNorm folded into this conv (fold.c) */
        w = n->fw;
        b = n->fbias;
    }
    if (n->quant) {
        const size_t nw = m->params[n->pw].numel;
        /* the weight's fake quantization and its output scale in one op where the backend has
           it (not under a Hessian probe, which shifts the quantized weight in between) */
        const int scaled1 = n->qps >= 0 && !n->pert_w && be->fakequant_scaled_fwd;
        if (scaled1)
            be->fakequant_scaled_fwd(&n->qw, nw, w, qparam(m, n->qpw), qparam(m, n->qps), n->wq,
                                     n->wqs, n->scratch_w);
        else
            be->fakequant_fwd(&n->qw, nw, w, qparam(m, n->qpw), n->wq, n->scratch_w);
        be->fakequant_fwd(&n->qa, (size_t)batch * node_numel(in), x, qparam(m, n->qpa), n->xq, n->scratch_a);
        /* Hessian-trace probes (hessian.c) shift the quantized tensors by +-eps v */
        if (n->pert_w) be->axpy(nw, 1.0f, n->pert_w, n->wq);
        if (n->pert_a) be->axpy((size_t)batch * node_numel(in), 1.0f, n->pert_a, n->xq);
        x = n->xq;
        w = n->wq;
        if (n->qps >= 0) { /* output scale folded into the weight and bias (model.h) */
            const float *s = qparam(m, n->qps);
            if (!scaled1) be->absscale_fwd(nw, s, n->wq, n->wqs);
            w = n->wqs;
            if (b) {
                be->absscale_fwd((size_t)n->c, s, b, n->bqs);
                b = n->bqs;
            }
        }
    }
    if (n->op == SQ_NODE_CONV) {
        sq_conv_shape cs;
        conv_shape(m, n, batch, &cs);
        /* quantized: integer arithmetic on the quantizers' grids where the backend can (not
           under Hessian probes, which move the values off the grid) */
        if (!(n->quant && !n->pert_w && !n->pert_a && be->qconv2d_fwd &&
              be->qconv2d_fwd(&cs, &n->qa, qparam(m, n->qpa), n->xq, &n->qw, qparam(m, n->qpw),
                              n->wq, n->qps >= 0 ? qparam(m, n->qps) : NULL, b, y, m->ws)))
            be->conv2d_fwd(&cs, x, w, b, y, m->ws);
    } else {
        be->linear_fwd(batch, (int)node_numel(in), n->c, x, w, b, y);
    }
}

void sq_node_fwd(sq_model *m, int i, int batch, int train)
{
    const sq_backend *be = m->be;
    sq_node *n = &m->nodes[i];
    const sq_node *in = n->in0 >= 0 ? &m->nodes[n->in0] : NULL;
    size_t numel = (size_t)batch * node_numel(n);
    switch (n->op) {
    case SQ_NODE_INPUT:
    case SQ_NODE_FLATTEN:
        break;
    case SQ_NODE_CONV:
    case SQ_NODE_LINEAR:
        sq_node_fwd_qlayer(m, n, batch);
        break;
    case SQ_NODE_BN:
        if (n->folded) break; /* out is in->out (fold.c) */
        if (train) {
            be->bn_fwd_train(batch, n->c, n->h * n->w, in->out, tparam(m, n->pw), tparam(m, n->pb),
                             tparam(m, n->prm), tparam(m, n->prv), 0.1f, 1e-5f, n->out,
                             n->save_mean, n->save_invstd);
            n->bn_tracked++;
        } else {
            be->bn_fwd_eval(batch, n->c, n->h * n->w, in->out, tparam(m, n->pw), tparam(m, n->pb),
                            tparam(m, n->prm), tparam(m, n->prv), 1e-5f, n->out);
        }
        break;
    case SQ_NODE_ACT:
        be->act_fwd((sq_act_kind)n->act, numel, in->out, n->out);
        break;
    case SQ_NODE_POOL: {
        sq_pool_shape ps;
        pool_shape(m, n, batch, &ps);
        be->pool_fwd((sq_pool_kind)n->pool, &ps, in->out, n->out, n->argmax);
        break;
    }
    case SQ_NODE_PAD:
        be->pad_fwd(batch, in->c, in->h, in->w, n->pad_t, n->pad_l, n->pad_b, n->pad_r, n->pad_value,
                    in->out, n->out);
        break;
    case SQ_NODE_CLIP:
        be->clip_fwd(numel, n->lo, n->hi, in->out, n->out);
        break;
    case SQ_NODE_AFFINE:
        be->affine_fwd(batch, n->c, n->h * n->w, tparam(m, n->pw), tparam(m, n->pb), in->out, n->out);
        break;
    case SQ_NODE_SLICE:
        be->slice_fwd(batch, in->c, in->h * in->w, n->c0, n->c, in->out, n->out);
        break;
    case SQ_NODE_GAP:
        be->gap_fwd(batch, in->c, in->h * in->w, in->out, n->out);
        break;
    case SQ_NODE_ADD:
        be->add_fwd(numel, in->out, m->nodes[n->in1].out, n->out);
        break;
    case SQ_NODE_SHORTCUT_A:
        be->shortcut_a_fwd(batch, in->c, in->h, in->w, n->c, in->out, n->out);
        break;
    case SQ_NODE_CONCAT:
        be->concat_fwd(batch, in->c, m->nodes[n->in1].c, n->h * n->w, in->out, m->nodes[n->in1].out, n->out);
        break;
    case SQ_NODE_SHUFFLE:
        be->shuffle_fwd(batch, n->c, n->h * n->w, n->groups, in->out, n->out);
        break;
    case SQ_NODE_DROPOUT:
        if (train && n->p > 0) be->dropout_fwd(numel, n->p, m->dropout_seed++, in->out, n->out, n->mask);
        else be->copy_d2d(n->out, in->out, numel * sizeof(float));
        break;
    }
}

/* BN (training) or ADD node i and the activation after it as one fused op, or BN (training),
   ADD and activation (fuse_act 2); returns the number of nodes after i that ran inside it */
static int fwd_fused(sq_model *m, int i, int batch, int train)
{
    const sq_backend *be = m->be;
    sq_node *n = &m->nodes[i];
    if (!n->fuse_act) return 0;
    const sq_node *in = &m->nodes[n->in0];
    if (n->op == SQ_NODE_BN && (!train || n->folded)) return 0;
    if (n->fuse_act == 2) {
        if (!be->bn_add_act_fwd_train) return 0;
        const sq_node *add = &m->nodes[i + 1], *act = &m->nodes[i + 2];
        const sq_node *r = &m->nodes[add->in0 == i ? add->in1 : add->in0];
        be->bn_add_act_fwd_train(batch, n->c, n->h * n->w, (sq_act_kind)act->act, in->out, r->out,
                                 tparam(m, n->pw), tparam(m, n->pb), tparam(m, n->prm),
                                 tparam(m, n->prv), 0.1f, 1e-5f, act->out, n->save_mean,
                                 n->save_invstd);
        n->bn_tracked++;
        return 2;
    }
    const sq_node *act = &m->nodes[i + 1];
    if (n->op == SQ_NODE_BN && be->bn_act_fwd_train) {
        be->bn_act_fwd_train(batch, n->c, n->h * n->w, (sq_act_kind)act->act, in->out,
                             tparam(m, n->pw), tparam(m, n->pb), tparam(m, n->prm),
                             tparam(m, n->prv), 0.1f, 1e-5f, act->out, n->save_mean,
                             n->save_invstd);
        n->bn_tracked++;
        return 1;
    }
    if (n->op == SQ_NODE_ADD && be->add_act_fwd) {
        be->add_act_fwd((size_t)batch * node_numel(n), (sq_act_kind)act->act, in->out,
                        m->nodes[n->in1].out, act->out);
        return 1;
    }
    return 0;
}

/* A folded convolution (the frozen teacher: BN folded into its weight and bias, fold.c), its
   folded BN and the activation after it, or the residual add and activation after it: the
   convolution without its bias, then one bias_add_act_fwd pass. Each node of the run is the only
   consumer of the one before, so nothing else reads the convolution's bias-less output. Returns
   the number of nodes after i that ran inside it (0: not applicable). */
static int fwd_conv_fused(sq_model *m, int i, int batch)
{
    const sq_backend *be = m->be;
    sq_node *cv = &m->nodes[i];
    if (cv->op != SQ_NODE_CONV || !cv->fw || cv->quant || !be->bias_add_act_fwd ||
        i + 2 >= m->nnodes)
        return 0;
    const sq_node *bn = &m->nodes[i + 1], *nx = &m->nodes[i + 2];
    if (bn->op != SQ_NODE_BN || !bn->folded || bn->in0 != i || sq_node_consumers(m, i) != 1 ||
        sq_node_consumers(m, i + 1) != 1)
        return 0;
    const float *r = NULL;
    const sq_node *act = nx;
    int ran = 2;
    if (nx->op == SQ_NODE_ADD) {
        if (i + 3 >= m->nnodes || sq_node_consumers(m, i + 2) != 1 ||
            (nx->in0 == i + 1) == (nx->in1 == i + 1))
            return 0;
        act = &m->nodes[i + 3];
        r = m->nodes[nx->in0 == i + 1 ? nx->in1 : nx->in0].out;
        ran = 3;
        if (act->in0 != i + 2) return 0;
    } else if (nx->in0 != i + 1) {
        return 0;
    }
    if (act->op != SQ_NODE_ACT) return 0;
    sq_conv_shape cs;
    conv_shape(m, cv, batch, &cs);
    be->conv2d_fwd(&cs, m->nodes[cv->in0].out, cv->fw, NULL, cv->out, m->ws);
    be->bias_add_act_fwd(batch, cv->c, cv->h * cv->w, (sq_act_kind)act->act, cv->out, cv->fbias, r,
                         act->out);
    return ran;
}

/* the profile's clock (model.h prof): the backend's queue drained first */
static double prof_now(const sq_model *m)
{
    m->be->sync();
    return sq_now();
}

float *sq_model_forward(sq_model *m, int n, int train)
{
    for (int i = 0; i < m->nnodes; i++) {
        const double t0 = m->prof ? prof_now(m) : 0;
        const int at = i;
        int skip = train ? 0 : fwd_conv_fused(m, i, n);
        if (!skip) skip = fwd_fused(m, i, n, train); /* nodes that ran inside the fused op */
        if (skip) i += skip;
        else sq_node_fwd(m, i, n, train);
        if (m->prof) m->prof[2 * at] += prof_now(m) - t0;
    }
    return m->nodes[m->nnodes - 1].out;
}

/* ---- backward ---- */

static void qlayer_bwd(sq_model *m, sq_node *n, int batch, float *gin)
{
    const sq_backend *be = m->be;
    const sq_node *in = &m->nodes[n->in0];
    const float *x = in->out, *w = tparam(m, n->pw);
    float *gw = tgrad(m, n->pw), *gb = tgrad(m, n->pb);
    const float *gy = n->gout;
    float *gx = gin;
    const int scaled = n->quant && n->qps >= 0;
    if (n->quant) {
        x = n->xq;
        w = scaled ? n->wqs : n->wq;
        gx = gin ? n->gxq : NULL;
        gw = scaled ? n->gwqs : n->gwq;
        if (scaled && gb) gb = n->gbqs;
    }
    if (n->op == SQ_NODE_CONV) {
        sq_conv_shape cs;
        conv_shape(m, n, batch, &cs);
        /* gx written, not accumulated: gxq (plan) or an input whose only consumer this is */
        const int set = gx && (n->quant ? be->conv2d_bwd_set != NULL : in->gout_set);
        /* quantized: BF16 dot products on the codes where the backend can (the forward's
           condition: not under Hessian probes) */
        const int on_codes = n->quant && !n->pert_w && !n->pert_a && be->qconv2d_bwd &&
                             be->qconv2d_bwd(&cs, &n->qa, qparam(m, n->qpa), n->xq, &n->qw, qparam(m, n->qpw),
                                             n->wq, scaled ? qparam(m, n->qps) : NULL, gy, gx, set, gw, gb, m->ws);
        if (!on_codes && set) be->conv2d_bwd_set(&cs, x, w, gy, gx, gw, gb, m->ws);
        else if (!on_codes) be->conv2d_bwd(&cs, x, w, gy, gx, gw, gb, m->ws);
    } else {
        be->linear_bwd(batch, (int)node_numel(in), n->c, x, w, gy, gx, gw, gb);
    }
    /* dL/dW_q = |s| G, dL/ds = sign(s) (<G, W_q> + <g_b, b>): with the weight's quantizer
       backward in one op where the backend has it (after the activation's, and before the
       bias's term; the forward's condition, which a probe cannot change in between) */
    const size_t nw = m->params[n->pw].numel;
    const int scaled1 = scaled && !n->pert_w && be->fakequant_scaled_bwd;
    if (scaled && !scaled1)
        be->absscale_bwd(nw, qparam(m, n->qps), n->wq, n->gwqs, n->gwq, qgrad(m, n->qps));
    if (scaled && !scaled1 && gb)
        be->absscale_bwd((size_t)n->c, qparam(m, n->qps), tparam(m, n->pb), n->gbqs,
                         tgrad(m, n->pb), qgrad(m, n->qps));
    if (n->quant) {
        if (gin && m->squat_xt && m->squat_node == (int)(n - m->nodes)) /* SQuaT: before the quantizer's backward */
            be->squat_fwd_bwd(&n->qa, (size_t)batch * node_numel(in), m->squat_xt, qparam(m, n->qpa), n->xq,
                              m->squat_weight, m->squat_loss, n->gxq);
        if (gin)
            be->fakequant_bwd(&n->qa, (size_t)batch * node_numel(in), in->out, qparam(m, n->qpa), n->gxq,
                              gin, qgrad(m, n->qpa), n->scratch_a);
        if (scaled1)
            be->fakequant_scaled_bwd(&n->qw, nw, tparam(m, n->pw), qparam(m, n->qpw),
                                     qparam(m, n->qps), n->wq, n->gwqs, n->gwq, tgrad(m, n->pw),
                                     qgrad(m, n->qpw), qgrad(m, n->qps), n->scratch_w);
        else
            be->fakequant_bwd(&n->qw, nw, tparam(m, n->pw), qparam(m, n->qpw), n->gwq,
                              tgrad(m, n->pw), qgrad(m, n->qpw), n->scratch_w);
        if (scaled1 && gb)
            be->absscale_bwd((size_t)n->c, qparam(m, n->qps), tparam(m, n->pb), n->gbqs,
                             tgrad(m, n->pb), qgrad(m, n->qps));
    }
}

/* node i (BN or ADD) and the activation after it have a fused backward on this backend */
static int bwd_fusable(const sq_model *m, int i)
{
    if (i < 0 || !m->nodes[i].fuse_act) return 0;
    const sq_node *n = &m->nodes[i];
    return n->op == SQ_NODE_BN ? n->fuse_act == 1 && !n->folded && m->be->bn_act_bwd != NULL
                               : m->be->add_act_bwd != NULL;
}

/* BN node i, the ADD and the activation after it have a fused backward on this backend */
static int bwd_fusable3(const sq_model *m, int i)
{
    return i >= 0 && m->nodes[i].fuse_act == 2 && !m->nodes[i].folded && m->be->bn_add_act_bwd;
}

float *sq_model_logits_grad(sq_model *m)
{
    return m->with_grad ? m->nodes[m->nnodes - 1].gout : NULL;
}

/* the backward of node i (with the fused ops that start at it) */
static void node_bwd(sq_model *m, int i, int batch)
{
    const sq_backend *be = m->be;
    sq_node *n = &m->nodes[i];
    sq_node *in = n->in0 >= 0 ? &m->nodes[n->in0] : NULL;
    float *gin = (in && in->op != SQ_NODE_INPUT) ? in->gout : NULL;
    size_t numel = (size_t)batch * node_numel(n);
    /* a fused BN/ADD + activation pair: the activation's backward runs inside the fused op
       of node i - 1 (its output tells act'(x); its input buffer need not be written) */
    if (n->op == SQ_NODE_ACT && bwd_fusable(m, i - 1)) return;
    if (n->op == SQ_NODE_ADD && bwd_fusable3(m, i - 1)) return; /* runs in the BN's */
    if (bwd_fusable3(m, i)) {
        const sq_node *add = &m->nodes[i + 1], *act = &m->nodes[i + 2];
        sq_node *r = &m->nodes[add->in0 == i ? add->in1 : add->in0];
        (gin && in->gout_set ? be->bn_add_act_bwd_set : be->bn_add_act_bwd)(
            batch, n->c, n->h * n->w, (sq_act_kind)act->act, in->out, act->out, act->gout,
            tparam(m, n->pw), n->save_mean, n->save_invstd, gin,
            r->op != SQ_NODE_INPUT ? r->gout : NULL, tgrad(m, n->pw), tgrad(m, n->pb));
        return;
    }
    if (bwd_fusable(m, i)) {
        const sq_node *act = &m->nodes[i + 1];
        if (n->op == SQ_NODE_BN) {
            (gin && in->gout_set ? be->bn_act_bwd_set : be->bn_act_bwd)(
                batch, n->c, n->h * n->w, (sq_act_kind)act->act, in->out, act->out, act->gout,
                tparam(m, n->pw), n->save_mean, n->save_invstd, gin, tgrad(m, n->pw),
                tgrad(m, n->pb));
        } else {
            sq_node *b = &m->nodes[n->in1];
            be->add_act_bwd(numel, (sq_act_kind)act->act, act->out, act->gout, gin,
                            b->op != SQ_NODE_INPUT ? b->gout : NULL);
        }
        return;
    }
    switch (n->op) {
    case SQ_NODE_INPUT:
    case SQ_NODE_FLATTEN:
        break;
    case SQ_NODE_CONV:
    case SQ_NODE_LINEAR:
        qlayer_bwd(m, n, batch, gin);
        break;
    case SQ_NODE_BN:
        (gin && in->gout_set ? be->bn_bwd_set : be->bn_bwd)(
            batch, n->c, n->h * n->w, in->out, n->gout, tparam(m, n->pw), n->save_mean,
            n->save_invstd, gin, tgrad(m, n->pw), tgrad(m, n->pb));
        break;
    case SQ_NODE_ACT:
        if (gin) be->act_bwd((sq_act_kind)n->act, numel, in->out, n->gout, gin);
        break;
    case SQ_NODE_POOL:
        if (gin) {
            sq_pool_shape ps;
            pool_shape(m, n, batch, &ps);
            be->pool_bwd((sq_pool_kind)n->pool, &ps, n->gout, n->argmax, gin);
        }
        break;
    case SQ_NODE_PAD:
        if (gin)
            be->pad_bwd(batch, in->c, in->h, in->w, n->pad_t, n->pad_l, n->pad_b, n->pad_r, n->gout,
                        gin);
        break;
    case SQ_NODE_CLIP:
        if (gin) be->clip_bwd(numel, n->lo, n->hi, in->out, n->gout, gin);
        break;
    case SQ_NODE_AFFINE: /* a and b are constants: only the input's gradient */
        if (gin) be->affine_bwd(batch, n->c, n->h * n->w, tparam(m, n->pw), n->gout, gin);
        break;
    case SQ_NODE_SLICE:
        if (gin) be->slice_bwd(batch, in->c, in->h * in->w, n->c0, n->c, n->gout, gin);
        break;
    case SQ_NODE_GAP:
        if (gin) be->gap_bwd(batch, in->c, in->h * in->w, n->gout, gin);
        break;
    case SQ_NODE_ADD: {
        sq_node *b = &m->nodes[n->in1];
        if (gin) be->axpy(numel, 1.0f, n->gout, gin);
        if (b->op != SQ_NODE_INPUT) be->axpy(numel, 1.0f, n->gout, b->gout);
        break;
    }
    case SQ_NODE_SHORTCUT_A:
        if (gin) be->shortcut_a_bwd(batch, in->c, in->h, in->w, n->c, n->gout, gin);
        break;
    case SQ_NODE_CONCAT: {
        sq_node *b = &m->nodes[n->in1];
        float *gb = b->op != SQ_NODE_INPUT ? b->gout : NULL;
        if (n->in1 == n->in0 && gin) {
            /* cat(x, x): both halves go to one buffer; two passes, so that no op writes one
               element from two places at once (a race on a device) */
            be->concat_bwd(batch, in->c, b->c, n->h * n->w, n->gout, gin, NULL);
            be->concat_bwd(batch, in->c, b->c, n->h * n->w, n->gout, NULL, gb);
        } else {
            be->concat_bwd(batch, in->c, b->c, n->h * n->w, n->gout, gin, gb);
        }
        break;
    }
    case SQ_NODE_SHUFFLE:
        if (gin) be->shuffle_bwd(batch, n->c, n->h * n->w, n->groups, n->gout, gin);
        break;
    case SQ_NODE_DROPOUT:
        if (gin) {
            if (n->p > 0) be->dropout_bwd(numel, n->p, n->mask, n->gout, gin);
            else be->axpy(numel, 1.0f, n->gout, gin);
        }
        break;
    }
}

/* dist_lo (model.h): per node, the end of the highest parameter gradient in g that a node before
   it writes (its weight and bias, a BatchNorm's scale and shift: whichever op, fused or not,
   runs the node's backward writes only the node's own) */
static void dist_plan(sq_model *m)
{
    m->dist_lo = sq_xcalloc((size_t)m->nnodes + 1, sizeof *m->dist_lo);
    size_t hi = 0;
    for (int i = 0; i < m->nnodes; i++) {
        m->dist_lo[i] = hi;
        const int ids[2] = {m->nodes[i].pw, m->nodes[i].pb};
        for (int k = 0; k < 2; k++) {
            const sq_param *p = ids[k] >= 0 ? &m->params[ids[k]] : NULL;
            if (p && p->kind == SQ_PT_TRAIN && p->off + p->numel > hi) hi = p->off + p->numel;
        }
    }
}

void sq_model_backward(sq_model *m, int batch, const float *glogits)
{
    const sq_backend *be = m->be;
    /* zero every gradient buffer that the backward accumulates into, in one call: they fill the
       front of the gradient arena (plan); the outputs of a BN or ADD whose backward is fused
       with the activation after it are never touched and lie behind them */
    be->memset0(m->grad_arena, m->grad_zero_floats * sizeof(float));
    sq_node *last = &m->nodes[m->nnodes - 1];
    if (glogits != last->gout) be->copy_d2d(last->gout, glogits, (size_t)batch * node_numel(last) * sizeof(float));
    /* data parallelism: g above `pending` is summed already (or being summed) */
    const int bucketed = m->dist_bucket > 0 && m->g;
    if (bucketed && !m->dist_lo) dist_plan(m);
    size_t pending = m->n_train;
    for (int i = m->nnodes - 1; i > 0; i--) {
        const double t0 = m->prof ? prof_now(m) : 0;
        node_bwd(m, i, batch);
        if (m->prof) m->prof[2 * i + 1] += prof_now(m) - t0;
        /* nothing before node i writes g at dist_lo[i] or above: it is final */
        if (bucketed && pending > m->dist_lo[i] && pending - m->dist_lo[i] >= m->dist_bucket) {
            be->allreduce_start(m->g + m->dist_lo[i], pending - m->dist_lo[i]);
            pending = m->dist_lo[i];
        }
    }
    if (bucketed) {
        if (pending) be->allreduce_start(m->g, pending);
        if (m->qg && m->n_quant) be->allreduce_start(m->qg, m->n_quant);
        be->allreduce_wait();
    }
}
