/* graph_json.c: a model's graph as JSON text, and back.

   Imported models have no zoo name, so their checkpoints carry the graph itself (metadata key
   "graph"). The text lists the nodes in order with their op and attributes; parameters are not
   listed, because the builders derive them (names and shapes) from the nodes. Reading replays
   the builder calls, so a model read back is built exactly as the importer built it, and then
   checks every node (sq_model_check): the text comes from a file and is not trusted. */
#include "model_internal.h"
#include "sqakd/json.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const g_op_names[] = {
    [SQ_NODE_INPUT] = "input", [SQ_NODE_CONV] = "conv", [SQ_NODE_BN] = "bn", [SQ_NODE_ACT] = "act",
    [SQ_NODE_POOL] = "pool", [SQ_NODE_GAP] = "gap", [SQ_NODE_LINEAR] = "linear", [SQ_NODE_ADD] = "add",
    [SQ_NODE_SHORTCUT_A] = "shortcut_a", [SQ_NODE_CONCAT] = "concat", [SQ_NODE_SHUFFLE] = "shuffle",
    [SQ_NODE_DROPOUT] = "dropout", [SQ_NODE_FLATTEN] = "flatten", [SQ_NODE_PAD] = "pad",
    [SQ_NODE_CLIP] = "clip", [SQ_NODE_AFFINE] = "affine", [SQ_NODE_SLICE] = "slice",
};
#define N_OPS ((int)(sizeof g_op_names / sizeof g_op_names[0]))

const char *sq_node_op_name(int op)
{
    return op >= 0 && op < N_OPS && g_op_names[op] ? g_op_names[op] : "?";
}

static void put_num(sq_jbuf *b, const char *k, double v)
{
    /* non-finite bounds (Clip without a bound, -inf padding) as strings: JSON has no infinity */
    if (isfinite(v)) sq_jbuf_kv_num(b, k, v);
    else sq_jbuf_kv_str(b, k, isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
}

char *sq_model_graph_json(const sq_model *m)
{
    sq_jbuf b;
    sq_jbuf_init(&b);
    sq_jbuf_begin_obj(&b);
    sq_jbuf_kv_int(&b, "version", 1);
    sq_jbuf_key(&b, "nodes");
    sq_jbuf_begin_arr(&b);
    for (int i = 0; i < m->nnodes; i++) {
        const sq_node *n = &m->nodes[i];
        sq_jbuf_begin_obj(&b);
        sq_jbuf_kv_str(&b, "op", sq_node_op_name(n->op));
        if (n->name[0]) sq_jbuf_kv_str(&b, "name", n->name);
        if (n->in0 >= 0) sq_jbuf_kv_int(&b, "in0", n->in0);
        if (n->in1 >= 0) sq_jbuf_kv_int(&b, "in1", n->in1);
        switch (n->op) {
        case SQ_NODE_INPUT:
            sq_jbuf_kv_int(&b, "c", n->c); sq_jbuf_kv_int(&b, "h", n->h); sq_jbuf_kv_int(&b, "w", n->w);
            break;
        case SQ_NODE_CONV:
            sq_jbuf_kv_int(&b, "c", n->c);
            sq_jbuf_kv_int(&b, "kh", n->kh ? n->kh : n->k); sq_jbuf_kv_int(&b, "kw", n->kw ? n->kw : n->k);
            sq_jbuf_kv_int(&b, "stride", n->stride); sq_jbuf_kv_int(&b, "pad", n->pad);
            sq_jbuf_kv_int(&b, "groups", n->groups); sq_jbuf_kv_int(&b, "bias", n->has_bias);
            break;
        case SQ_NODE_LINEAR:
            sq_jbuf_kv_int(&b, "c", n->c); sq_jbuf_kv_int(&b, "bias", n->has_bias);
            break;
        case SQ_NODE_ACT: sq_jbuf_kv_int(&b, "act", n->act); break;
        case SQ_NODE_POOL:
            sq_jbuf_kv_int(&b, "pool", n->pool);
            sq_jbuf_kv_int(&b, "kh", n->kh ? n->kh : n->k); sq_jbuf_kv_int(&b, "kw", n->kw ? n->kw : n->k);
            sq_jbuf_kv_int(&b, "sh", n->sh ? n->sh : n->stride); sq_jbuf_kv_int(&b, "sw", n->sw ? n->sw : n->stride);
            /* fall through: the pads */
            __attribute__((fallthrough));
        case SQ_NODE_PAD: {
            const int sym = n->op == SQ_NODE_POOL && !n->kh;   /* a zoo pool: square fields only */
            sq_jbuf_kv_int(&b, "pt", sym ? n->pad : n->pad_t); sq_jbuf_kv_int(&b, "pl", sym ? n->pad : n->pad_l);
            sq_jbuf_kv_int(&b, "pb", sym ? n->pad : n->pad_b); sq_jbuf_kv_int(&b, "pr", sym ? n->pad : n->pad_r);
            if (n->op == SQ_NODE_POOL) {
                sq_jbuf_kv_int(&b, "ceil", n->ceil_mode);
                sq_jbuf_kv_int(&b, "cip", sym ? 1 : n->count_include_pad);
            } else {
                put_num(&b, "value", n->pad_value);
            }
            break;
        }
        case SQ_NODE_SHORTCUT_A: sq_jbuf_kv_int(&b, "c", n->c); break;
        case SQ_NODE_FLATTEN:   /* a view: (c, h, w) of the same values (an imported Reshape) */
            sq_jbuf_kv_int(&b, "c", n->c); sq_jbuf_kv_int(&b, "h", n->h); sq_jbuf_kv_int(&b, "w", n->w);
            break;
        case SQ_NODE_SHUFFLE: sq_jbuf_kv_int(&b, "groups", n->groups); break;
        case SQ_NODE_DROPOUT: sq_jbuf_kv_num(&b, "p", n->p); break;
        case SQ_NODE_CLIP: put_num(&b, "lo", n->lo); put_num(&b, "hi", n->hi); break;
        case SQ_NODE_SLICE: sq_jbuf_kv_int(&b, "c0", n->c0); sq_jbuf_kv_int(&b, "c", n->c); break;
        default: break;
        }
        if (n->quantizable) sq_jbuf_kv_int(&b, "quantizable", 1);
        if (n->first_or_last) sq_jbuf_kv_int(&b, "first_or_last", 1);
        sq_jbuf_end_obj(&b);
    }
    sq_jbuf_end_arr(&b);
    sq_jbuf_end_obj(&b);
    char *s = strdup(sq_jbuf_cstr(&b));
    sq_jbuf_free(&b);
    if (!s) { fprintf(stderr, "sqakd: out of memory\n"); exit(3); }
    return s;
}

/* an integer member in [lo, hi]; missing -> def (def < lo: required) */
static int geti(const sq_json *o, const char *k, int lo, int hi, int def, int *ok)
{
    const sq_json *v = sq_json_get(o, k);
    int64_t x;
    if (!v) { if (def < lo) *ok = 0; return def; }
    if (!sq_json_int(v, &x) || x < lo || x > hi) { *ok = 0; return lo; }
    return (int)x;
}

static float getf(const sq_json *o, const char *k, float def, int *ok)
{
    const sq_json *v = sq_json_get(o, k);
    if (!v) return def;
    const char *s = sq_json_str(v);
    if (s) {
        if (!strcmp(s, "inf")) return INFINITY;
        if (!strcmp(s, "-inf")) return -INFINITY;
        *ok = 0;
        return def;
    }
    if (v->type != SQ_JSON_NUM) { *ok = 0; return def; }
    return (float)v->num;
}

#define DIM_MAX 65536

sq_status sq_model_from_graph_json(const char *text, const char *what, sq_model **out)
{
    *out = NULL;
    sq_json *j = NULL;
    if (sq_json_parse(text, strlen(text), &j, NULL)) {
        sq_set_error("%s: the stored graph is not valid JSON (%s)", what, sq_last_error());
        return SQ_EFORMAT;
    }
    const sq_json *nodes = sq_json_get(j, "nodes");
    int nn = sq_json_len(nodes);
    if (!nodes || nodes->type != SQ_JSON_ARR || nn < 2 || nn > 100000) {
        sq_json_free(j);
        sq_set_error("%s: the stored graph has no node list", what);
        return SQ_EFORMAT;
    }
    sq_model *m = sq_xcalloc(1, sizeof *m);
    snprintf(m->arch, sizeof m->arch, "graph");
    sq_status st = SQ_OK;
    for (int i = 0; i < nn && st == SQ_OK; i++) {
        const sq_json *o = sq_json_at(nodes, i);
        const char *op = sq_json_str(sq_json_get(o, "op"));
        const char *nm = sq_json_str(sq_json_get(o, "name"));
        char name[80];
        snprintf(name, sizeof name, "%s", nm ? nm : "");
        int ok = 1, opi = -1;
        for (int k = 0; op && k < N_OPS; k++)
            if (g_op_names[k] && !strcmp(op, g_op_names[k])) opi = k;
        /* inputs: earlier nodes, or absent (-1) */
        int in0 = sq_json_get(o, "in0") ? geti(o, "in0", 0, i - 1, -1, &ok) : -1;
        int in1 = sq_json_get(o, "in1") ? geti(o, "in1", 0, i - 1, -1, &ok) : -1;
        const int need_in0 = opi != SQ_NODE_INPUT, need_in1 = opi == SQ_NODE_ADD || opi == SQ_NODE_CONCAT;
        if (opi < 0 || (need_in0 && in0 < 0) || (need_in1 && in1 < 0) || (!need_in1 && in1 >= 0) ||
            (!need_in0 && in0 >= 0) || !ok || (nm && strlen(nm) >= sizeof name)) {
            st = SQ_EFORMAT;
            break;
        }
        int id = -1;
        switch (opi) {
        case SQ_NODE_INPUT: {
            int c = geti(o, "c", 1, 4096, -1, &ok), h = geti(o, "h", 1, DIM_MAX, -1, &ok);
            int w = geti(o, "w", 1, DIM_MAX, -1, &ok);
            if (ok) id = sq_b_input(m, c, h, w);
            break;
        }
        case SQ_NODE_CONV: {
            int c = geti(o, "c", 1, DIM_MAX, -1, &ok), kh = geti(o, "kh", 1, 64, -1, &ok);
            int kw = geti(o, "kw", 1, 64, -1, &ok), s = geti(o, "stride", 1, 64, -1, &ok);
            int p = geti(o, "pad", 0, 64, -1, &ok), g = geti(o, "groups", 1, DIM_MAX, -1, &ok);
            int b = geti(o, "bias", 0, 1, 0, &ok);
            const sq_node *in = &m->nodes[in0];
            if (ok && (in->c % g || c % g || in->h + 2 * p < kh || in->w + 2 * p < kw)) ok = 0;
            if (ok) id = sq_b_conv_k(m, in0, name, c, kh, kw, s, p, p, p, p, g, b);
            break;
        }
        case SQ_NODE_LINEAR: {
            int c = geti(o, "c", 1, DIM_MAX, -1, &ok), b = geti(o, "bias", 0, 1, 0, &ok);
            if (ok) id = sq_b_linear(m, in0, name, c, b);
            break;
        }
        case SQ_NODE_BN: id = sq_b_bn(m, in0, name); break;
        case SQ_NODE_ACT: {
            int a = geti(o, "act", SQ_ACT_RELU, SQ_ACT_RELU6, -1, &ok);
            if (ok) id = sq_b_act(m, in0, a);
            break;
        }
        case SQ_NODE_POOL: {
            int kind = geti(o, "pool", SQ_POOL_MAX, SQ_POOL_AVG, -1, &ok);
            int kh = geti(o, "kh", 1, 1024, -1, &ok), kw = geti(o, "kw", 1, 1024, -1, &ok);
            int sh = geti(o, "sh", 1, 1024, -1, &ok), sw = geti(o, "sw", 1, 1024, -1, &ok);
            int pt = geti(o, "pt", 0, 1024, -1, &ok), pl = geti(o, "pl", 0, 1024, -1, &ok);
            int pb = geti(o, "pb", 0, 1024, -1, &ok), pr = geti(o, "pr", 0, 1024, -1, &ok);
            int ceil = geti(o, "ceil", 0, 1, 0, &ok), cip = geti(o, "cip", 0, 1, 1, &ok);
            const sq_node *in = &m->nodes[in0];
            if (ok && (in->h + pt + pb < kh || in->w + pl + pr < kw || pt >= kh || pb >= kh || pl >= kw ||
                       pr >= kw)) ok = 0;
            if (ok) id = sq_b_pool_k(m, in0, kind, kh, kw, sh, sw, pt, pl, pb, pr, ceil, cip);
            break;
        }
        case SQ_NODE_PAD: {
            int pt = geti(o, "pt", 0, 1024, -1, &ok), pl = geti(o, "pl", 0, 1024, -1, &ok);
            int pb = geti(o, "pb", 0, 1024, -1, &ok), pr = geti(o, "pr", 0, 1024, -1, &ok);
            float v = getf(o, "value", 0.0f, &ok);
            if (ok) id = sq_b_pad(m, in0, pt, pl, pb, pr, v);
            break;
        }
        case SQ_NODE_GAP: id = sq_b_gap(m, in0); break;
        case SQ_NODE_FLATTEN: {
            const sq_node *in = &m->nodes[in0];
            const long long numel = (long long)in->c * in->h * in->w;
            int c = geti(o, "c", 1, 1 << 30, (int)numel, &ok), h = geti(o, "h", 1, DIM_MAX, 1, &ok);
            int w = geti(o, "w", 1, DIM_MAX, 1, &ok);
            if (ok && (long long)c * h * w != numel) ok = 0;
            if (ok) {
                id = sq_b_flatten(m, in0);
                m->nodes[id].c = c; m->nodes[id].h = h; m->nodes[id].w = w;
            }
            break;
        }
        case SQ_NODE_ADD: id = sq_b_add(m, in0, in1); break;
        case SQ_NODE_CONCAT: id = sq_b_concat(m, in0, in1); break;
        case SQ_NODE_SHORTCUT_A: {
            int c = geti(o, "c", 1, DIM_MAX, -1, &ok);
            if (ok && (c < m->nodes[in0].c || (c - m->nodes[in0].c) % 2)) ok = 0;
            if (ok) id = sq_b_shortcut_a(m, in0, c);
            break;
        }
        case SQ_NODE_SHUFFLE: {
            int g = geti(o, "groups", 1, DIM_MAX, -1, &ok);
            if (ok && m->nodes[in0].c % g) ok = 0;
            if (ok) id = sq_b_shuffle(m, in0, g);
            break;
        }
        case SQ_NODE_DROPOUT: {
            float p = getf(o, "p", 0.0f, &ok);
            if (ok && !(p >= 0.0f && p < 1.0f)) ok = 0;
            if (ok) id = sq_b_dropout(m, in0, p);
            break;
        }
        case SQ_NODE_CLIP: {
            float lo = getf(o, "lo", -INFINITY, &ok), hi = getf(o, "hi", INFINITY, &ok);
            if (ok && !(lo <= hi)) ok = 0;
            if (ok) id = sq_b_clip(m, in0, lo, hi);
            break;
        }
        case SQ_NODE_AFFINE: id = sq_b_affine(m, in0, name); break;
        case SQ_NODE_SLICE: {
            int c0 = geti(o, "c0", 0, DIM_MAX, -1, &ok), c = geti(o, "c", 1, DIM_MAX, -1, &ok);
            if (ok && c0 + c > m->nodes[in0].c) ok = 0;
            if (ok) id = sq_b_slice(m, in0, c0, c);
            break;
        }
        }
        if (!ok || id < 0) { st = SQ_EFORMAT; break; }
        /* a builder may put nodes of its own first (a PAD before a conv): the flags go on the
           node the text describes, which is the last one built */
        sq_node *n = &m->nodes[m->nnodes - 1];
        n->quantizable = geti(o, "quantizable", 0, 1, 0, &ok);
        n->first_or_last = geti(o, "first_or_last", 0, 1, 0, &ok);
        if (m->nnodes != i + 1 || !ok) st = SQ_EFORMAT;
        if (st) break;
    }
    if (st) {
        sq_set_error("%s: the stored graph is malformed at node %d of %d", what,
                     m->nnodes < nn ? m->nnodes : nn - 1, nn);
        sq_json_free(j);
        sq_model_free(m);
        return st;
    }
    sq_json_free(j);
    const sq_node *last = &m->nodes[m->nnodes - 1];
    m->in_c = m->nodes[0].c; m->in_h = m->nodes[0].h; m->in_w = m->nodes[0].w;
    m->classes = last->c * last->h * last->w;
    if ((st = sq_model_check(m, what))) { sq_model_free(m); return st; }
    *out = m;
    return SQ_OK;
}

sq_status sq_model_check(const sq_model *m, const char *what)
{
    if (m->nnodes < 2 || m->nodes[0].op != SQ_NODE_INPUT) {
        sq_set_error("%s: a model's graph starts with its input", what);
        return SQ_EFORMAT;
    }
    for (int i = 0; i < m->nnodes; i++) {
        const sq_node *n = &m->nodes[i];
        const sq_node *a = n->in0 >= 0 ? &m->nodes[n->in0] : NULL, *b = n->in1 >= 0 ? &m->nodes[n->in1] : NULL;
        const char *why = NULL;
        if (n->c < 1 || n->h < 1 || n->w < 1 || (double)n->c * n->h * n->w > (double)(1u << 30))
            why = "its output would be empty or too large";
        else if (n->op == SQ_NODE_ADD && (a->c != b->c || a->h != b->h || a->w != b->w))
            why = "an add of tensors of different shapes";
        else if (n->op == SQ_NODE_CONCAT && (a->h != b->h || a->w != b->w))
            why = "a concatenation of tensors of different heights or widths";
        else if (n->op == SQ_NODE_SLICE && (n->c0 < 0 || n->c0 + n->c > a->c))
            why = "a slice beyond its input's channels";
        if (why) {
            char nb[100];
            sq_set_error("%s: node %d (%s '%s'): %s (%dx%dx%d)", what, i, sq_node_op_name(n->op),
                         sq_printable(n->name, nb, sizeof nb), why, n->c, n->h, n->w);
            return SQ_EFORMAT;
        }
    }
    return SQ_OK;
}

sq_status sq_model_clone_graph(const sq_model *src, sq_model **out)
{
    *out = NULL;
    if (strcmp(src->arch, "graph"))
        return sq_model_create(src->arch, src->in_c, src->in_h, src->in_w, src->classes, out);
    char *j = sq_model_graph_json(src);
    sq_status st = sq_model_from_graph_json(j, "graph", out);
    free(j);
    return st;
}
