/* teacher_prec.c: the frozen teacher's forward in fp16 / bf16 (--teacher-precision; see
   sqakd/teacher_prec.h) over the backend's optional 16-bit ops.

   At apply time every node gets a role:
     TP_16     a 16-bit op exists: conv (not quantized), activation, add, pool, option-A shortcut,
               global average pooling (16-bit in, fp32 out);
     TP_ALIAS  passes another node's values on: a folded BatchNorm, a flatten, and an activation
               fused into the conv (through its folded BN) or the add that is its only input;
     TP_FALLBACK  anything else (unfolded BatchNorm such as resnet's BN1d head, linear, concat,
               shuffle, dropout, a quantized conv): its fp32 op from graph.c.
   The nodes of imported graphs (pad, clip, affine, slice) and pools other than the square, floor,
   count_include_pad ones pool16_fwd runs are refused at apply, by name (unsupported_node).
   A node's values live in fp32 (its own n->out), in 16 bits (h16[i]) or both (where[i]); a
   consumer that needs the other form gets one conversion. The same walk runs twice at apply:
   dry (decides which nodes need 16-bit buffers, plans every cuDNN convolution and sizes the
   workspace) and for real (a warm-up that also settles cuDNN's fused bias + ReLU trial). Every
   16-bit op processes m->batch rows, so the plans made at apply are the only ones used. */
#include "model_internal.h"
#include "sqakd/teacher_prec.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TP_F32 = 1, TP_H16 = 2 };
enum { TP_FALLBACK = 0, TP_16 = 1, TP_ALIAS = 2 };

typedef struct tp_state {
    sq_dtype16 dt;
    int nn;
    unsigned char *role;
    int *src;               /* TP_ALIAS: the node whose values this one passes on */
    int *act;               /* TP_16 conv / add: activation applied inside (-1: none) */
    unsigned char *own;     /* 1: h16[i] is a buffer of node i's own */
    unsigned char *has;     /* dry walk: h16[i] will be set */
    unsigned char *where;   /* TP_F32 | TP_H16: where node i's current values are */
    void **h16;             /* (m->batch, c, h, w) 16-bit values (own, or an alias's source's) */
    void **w16, **b16;      /* TP_16 convs: 16-bit weight and bias (NULL: no bias) */
    const float **b32;      /* TP_16 convs: the fp32 bias the conv uses (NULL: none) */
    void *ws;
    size_t ws_bytes;
} tp_state;

sq_status sq_teacher_prec_parse(const char *s, sq_teacher_prec *out)
{
    if (s && !strcmp(s, "fp32")) *out = SQ_TPREC_FP32;
    else if (s && !strcmp(s, "fp16")) *out = SQ_TPREC_FP16;
    else if (s && !strcmp(s, "bf16")) *out = SQ_TPREC_BF16;
    else {
        sq_set_error("unknown --teacher-precision '%s' (expected fp32, fp16 or bf16)", s ? s : "");
        return SQ_EARG;
    }
    return SQ_OK;
}

const char *sq_teacher_prec_name(sq_teacher_prec p)
{
    return p == SQ_TPREC_FP16 ? "fp16" : p == SQ_TPREC_BF16 ? "bf16" : "fp32";
}

static int has_16bit_ops(const sq_backend *be)
{
    return be->to16 && be->from16 && be->conv16_ws_bytes && be->conv16_fwd && be->act16_fwd &&
           be->add16_fwd && be->pool16_fwd && be->gap16_fwd && be->shortcut_a16_fwd;
}

sq_status sq_teacher_prec_check(const sq_backend *be, sq_teacher_prec p)
{
    if (p == SQ_TPREC_FP32 || (be && has_16bit_ops(be))) return SQ_OK;
    sq_set_error("--teacher-precision %s needs --device cuda (this run uses the %s backend; use "
                 "--teacher-precision fp32 there)", sq_teacher_prec_name(p), be ? be->name : "no");
    return SQ_EARG;
}

static size_t numel(const sq_node *n) { return (size_t)n->c * n->h * n->w; }

/* the weight and bias the fp32 forward uses (graph.c: folded ones when BN was folded in) */
static const float *conv_weight(const sq_model *m, const sq_node *n)
{
    return n->fw ? n->fw : sq_model_param_ptr(m, n->pw);
}

static const float *conv_bias(const sq_model *m, const sq_node *n)
{
    if (n->fw) return n->fbias;
    return n->pb >= 0 ? sq_model_param_ptr(m, n->pb) : NULL;
}

static void classify(const sq_model *m, tp_state *st)
{
    for (int i = 0; i < m->nnodes; i++) {
        const sq_node *n = &m->nodes[i];
        st->src[i] = -1;
        st->act[i] = -1;
        switch (n->op) {
        case SQ_NODE_CONV: st->role[i] = n->quant ? TP_FALLBACK : TP_16; break;
        case SQ_NODE_ACT:
        case SQ_NODE_ADD:
        case SQ_NODE_POOL:
        case SQ_NODE_SHORTCUT_A:
        case SQ_NODE_GAP: st->role[i] = TP_16; break;
        case SQ_NODE_FLATTEN: st->role[i] = TP_ALIAS; break;
        case SQ_NODE_BN: st->role[i] = n->folded ? TP_ALIAS : TP_FALLBACK; break;
        default: st->role[i] = TP_FALLBACK; break;
        }
        if (st->role[i] == TP_ALIAS) st->src[i] = n->in0;
    }
    /* an activation whose input is a conv (through its folded BN) or an add with no other
       consumer runs inside that op */
    for (int i = 0; i < m->nnodes; i++) {
        const sq_node *a = &m->nodes[i];
        if (a->op != SQ_NODE_ACT || a->in0 < 0) continue;
        int p = a->in0, q = p;
        if (m->nodes[p].op == SQ_NODE_BN && m->nodes[p].folded) q = m->nodes[p].in0;
        const sq_node *prod = &m->nodes[q];
        if ((prod->op != SQ_NODE_CONV && prod->op != SQ_NODE_ADD) || st->role[q] != TP_16 ||
            st->act[q] >= 0 || sq_node_consumers(m, q) != 1 ||
            (p != q && sq_node_consumers(m, p) != 1))
            continue;
        st->act[q] = a->act;
        st->role[i] = TP_ALIAS;
        st->src[i] = p;
    }
}

typedef struct tp_walk {
    sq_model *m;
    tp_state *st;
    int dry, N;
} tp_walk;

static void need16(tp_walk *w, int j)
{
    tp_state *st = w->st;
    if (st->where[j] & TP_H16) return;
    if (w->dry) {
        if (!st->has[j]) st->own[j] = st->has[j] = 1;
    } else {
        w->m->be->to16(st->dt, (size_t)w->N * numel(&w->m->nodes[j]), w->m->nodes[j].out, st->h16[j]);
    }
    st->where[j] |= TP_H16;
}

static void need32(tp_walk *w, int j)
{
    tp_state *st = w->st;
    if (st->where[j] & TP_F32) return;
    if (!w->dry)
        w->m->be->from16(st->dt, (size_t)w->N * numel(&w->m->nodes[j]), st->h16[j], w->m->nodes[j].out);
    st->where[j] |= TP_F32;
}

/* node i's output is written in 16 bits */
static void out16(tp_walk *w, int i)
{
    if (w->dry && !w->st->has[i]) w->st->own[i] = w->st->has[i] = 1;
    w->st->where[i] = TP_H16;
}

static void run_conv(tp_walk *w, int i)
{
    sq_model *m = w->m;
    tp_state *st = w->st;
    const sq_node *n = &m->nodes[i], *in = &m->nodes[n->in0];
    sq_conv_shape cs;
    sq_conv_shape_init(&cs, w->N, in->c, in->h, in->w, n->c, n->kh, n->kw, n->stride, n->pad, n->groups);
    if (w->dry) {
        size_t b = m->be->conv16_ws_bytes(st->dt, &cs);
        if (b > st->ws_bytes) st->ws_bytes = b;
    } else {
        m->be->conv16_fwd(st->dt, &cs, st->h16[n->in0], st->w16[i], st->b16[i], st->b32[i], st->act[i],
                          st->h16[i], st->ws);
    }
}

static void walk(tp_walk *w)
{
    sq_model *m = w->m;
    tp_state *st = w->st;
    const sq_backend *be = m->be;
    const sq_dtype16 dt = st->dt;
    const int N = w->N;
    memset(st->where, 0, (size_t)st->nn);
    for (int i = 0; i < m->nnodes; i++) {
        const sq_node *n = &m->nodes[i];
        const sq_node *in = n->in0 >= 0 ? &m->nodes[n->in0] : NULL;
        void **h = st->h16;
        if (st->role[i] == TP_ALIAS) {
            st->where[i] = st->where[st->src[i]];
            if (w->dry) st->has[i] = st->has[st->src[i]];
            continue;
        }
        if (st->role[i] == TP_FALLBACK) {
            if (n->in0 >= 0) need32(w, n->in0);
            if (n->in1 >= 0) need32(w, n->in1);
            if (!w->dry) sq_node_fwd(m, i, N, 0);
            st->where[i] = TP_F32;
            continue;
        }
        need16(w, n->in0);
        if (n->op == SQ_NODE_ADD) need16(w, n->in1);
        if (n->op == SQ_NODE_GAP) {
            if (!w->dry) be->gap16_fwd(dt, N, in->c, in->h * in->w, h[n->in0], m->nodes[i].out);
            st->where[i] = TP_F32;
            continue;
        }
        if (w->dry && !st->has[i]) st->own[i] = st->has[i] = 1; /* before reading h[i] below */
        if (n->op == SQ_NODE_CONV) {
            run_conv(w, i);
        } else if (!w->dry) {
            size_t cnt = (size_t)N * numel(n);
            switch (n->op) {
            case SQ_NODE_ACT: be->act16_fwd(dt, (sq_act_kind)n->act, cnt, h[n->in0], h[i]); break;
            case SQ_NODE_ADD: be->add16_fwd(dt, cnt, st->act[i], h[n->in0], h[n->in1], h[i]); break;
            case SQ_NODE_POOL:
                /* square pools only (unsupported_node) */
                be->pool16_fwd(dt, (sq_pool_kind)n->pool, N, in->c, in->h, in->w, n->kh, n->sh, n->pad_t,
                               h[n->in0], h[i]);
                break;
            case SQ_NODE_SHORTCUT_A: be->shortcut_a16_fwd(dt, N, in->c, in->h, in->w, n->c, h[n->in0], h[i]); break;
            default: break;
            }
        }
        out16(w, i);
    }
    need32(w, m->nnodes - 1);
}

static void state_free(const sq_backend *be, tp_state *st)
{
    if (!st) return;
    for (int i = 0; i < st->nn; i++) {
        if (st->own && st->own[i] && st->h16 && st->h16[i]) be->free(st->h16[i]);
        if (st->w16 && st->w16[i]) be->free(st->w16[i]);
        if (st->b16 && st->b16[i]) be->free(st->b16[i]);
    }
    if (st->ws) be->free(st->ws);
    free(st->role); free(st->src); free(st->act); free(st->own); free(st->has); free(st->where);
    free(st->h16); free(st->w16); free(st->b16); free(st->b32);
    free(st);
}

void sq_teacher_prec_release(sq_model *m)
{
    if (!m || !m->tprec) return;
    state_free(m->be, m->tprec);
    m->tprec = NULL;
}

/* every buffer of the plan decided by the dry walk; SQ_ENOMEM with the whole size on failure */
static sq_status allocate(sq_model *m, tp_state *st)
{
    const sq_backend *be = m->be;
    const size_t B = (size_t)m->batch;
    double total = (double)st->ws_bytes;
    for (int i = 0; i < m->nnodes; i++) {
        const sq_node *n = &m->nodes[i];
        if (st->own[i]) total += 2.0 * B * numel(n);
        if (n->op == SQ_NODE_CONV && st->role[i] == TP_16)
            total += 2.0 * (m->params[n->pw].numel + (conv_bias(m, n) ? (size_t)n->c : 0));
    }
    int ok = 1;
    for (int i = 0; i < m->nnodes && ok; i++) {
        const sq_node *n = &m->nodes[i];
        if (st->own[i]) ok &= (st->h16[i] = be->alloc(2 * B * numel(n))) != NULL;
        else if (st->role[i] == TP_ALIAS) st->h16[i] = st->h16[st->src[i]];
        if (n->op != SQ_NODE_CONV || st->role[i] != TP_16 || !ok) continue;
        size_t nw = m->params[n->pw].numel;
        ok &= (st->w16[i] = be->alloc(2 * nw)) != NULL;
        st->b32[i] = conv_bias(m, n);
        if (ok && st->b32[i]) ok &= (st->b16[i] = be->alloc(2 * (size_t)n->c)) != NULL;
        if (!ok) break;
        be->to16(st->dt, nw, conv_weight(m, n), st->w16[i]);
        if (st->b32[i]) be->to16(st->dt, (size_t)n->c, st->b32[i], st->b16[i]);
    }
    if (ok && st->ws_bytes) ok = (st->ws = be->alloc(st->ws_bytes)) != NULL;
    if (ok) return SQ_OK;
    char what[96];
    snprintf(what, sizeof what, "the %s teacher %s", st->dt == SQ_DT_BF16 ? "bf16" : "fp16", m->arch);
    return sq_backend_oom_error(be, total, what, m->batch, "lower --batch or use --teacher-precision fp32");
}

/* the 16-bit walk runs the zoo's node kinds: the ops of imported graphs (issue 18) and pools
   other than pool16_fwd's square, floor, count_include_pad ones are refused by name rather than
   run through an op that would compute something else */
static sq_status unsupported_node(const sq_model *m, sq_teacher_prec p)
{
    for (int i = 0; i < m->nnodes; i++) {
        const sq_node *n = &m->nodes[i];
        const char *what = n->op == SQ_NODE_PAD ? "pad" : n->op == SQ_NODE_CLIP ? "clip" :
                           n->op == SQ_NODE_AFFINE ? "affine" : n->op == SQ_NODE_SLICE ? "slice" : NULL;
        if (n->op == SQ_NODE_POOL &&
            (n->kh != n->kw || n->sh != n->sw || n->pad_t != n->pad_l || n->pad_t != n->pad_b ||
             n->pad_t != n->pad_r || n->ceil_mode || !n->count_include_pad))
            what = "general pool (non-square, asymmetric, ceil_mode or count_include_pad=0)";
        if (what) {
            sq_set_error("--teacher-precision %s does not support %s nodes (node %d, %s); use "
                         "--teacher-precision fp32", sq_teacher_prec_name(p), what, i, n->name);
            return SQ_EARG;
        }
    }
    return SQ_OK;
}

sq_status sq_teacher_prec_apply(sq_model *m, sq_teacher_prec p)
{
    sq_teacher_prec_release(m);
    if (p == SQ_TPREC_FP32) return SQ_OK;
    sq_status rc = unsupported_node(m, p);
    if (rc) return rc;
    rc = sq_teacher_prec_check(m->be, p);
    if (rc) return rc;
    if (m->with_grad || !m->act_arena || m->nnodes < 1) {
        sq_set_error("--teacher-precision %s needs a set-up inference-only teacher", sq_teacher_prec_name(p));
        return SQ_EARG;
    }
    const int nn = m->nnodes;
    tp_state *st = sq_xcalloc(1, sizeof *st);
    st->dt = p == SQ_TPREC_BF16 ? SQ_DT_BF16 : SQ_DT_F16;
    st->nn = nn;
    st->role = sq_xcalloc(nn, 1);
    st->src = sq_xcalloc(nn, sizeof *st->src);
    st->act = sq_xcalloc(nn, sizeof *st->act);
    st->own = sq_xcalloc(nn, 1);
    st->has = sq_xcalloc(nn, 1);
    st->where = sq_xcalloc(nn, 1);
    st->h16 = sq_xcalloc(nn, sizeof *st->h16);
    st->w16 = sq_xcalloc(nn, sizeof *st->w16);
    st->b16 = sq_xcalloc(nn, sizeof *st->b16);
    st->b32 = sq_xcalloc(nn, sizeof *st->b32);
    classify(m, st);
    tp_walk w = {.m = m, .st = st, .dry = 1, .N = m->batch};
    walk(&w);
    if ((rc = allocate(m, st))) {
        state_free(m->be, st);
        return rc;
    }
    m->tprec = st;
    /* warm-up: settles the fused-conv trials and surfaces a device error here, not in a step.
       Only failures of this warm-up are blamed on it (the error count, not the sticky status,
       which may hold an older error); a failure here is cleared again if the status was clean
       before, so that the backend stays usable for the caller's own error handling. */
    const sq_backend *be = m->be;
    const unsigned fails_before = be->error_count();
    const int clean_before = be->status() == SQ_OK;
    sq_teacher_forward(m, m->batch);
    be->sync();
    if (be->error_count() != fails_before) {
        char msg[900];
        if (clean_before) be->status(); /* the first failure of the warm-up */
        snprintf(msg, sizeof msg, "%s", sq_last_error());
        sq_teacher_prec_release(m);
        if (clean_before) be->clear_status();
        sq_set_error("--teacher-precision %s: the 16-bit teacher forward failed on this device (%s); use "
                     "--teacher-precision fp32", sq_teacher_prec_name(p), msg);
        return SQ_EDEVICE;
    }
    return SQ_OK;
}

float *sq_teacher_forward(sq_model *m, int n)
{
    tp_state *st = m->tprec;
    if (!st) return sq_model_forward(m, n, 0);
    tp_walk w = {.m = m, .st = st, .dry = 0, .N = m->batch};
    walk(&w);
    return m->nodes[m->nnodes - 1].out;
}
