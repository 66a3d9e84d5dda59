/* onnx_import.c: an ONNX graph (sqakd/onnx.h) mapped onto sqakd's graph nodes.

   Values are tracked by name: a computed tensor is a node of the model (with the rank it has
   in ONNX, batch dimension included: 2 for (N, F), 3, or 4 for NCHW); a constant is a tensor
   held here (initializers, Constant nodes and everything folded from them: the Shape -> Gather
   -> Unsqueeze -> Concat -> Reshape arithmetic exporters emit, with the batch dimension as a
   symbol). ShuffleNet's channel shuffle (Reshape to 5-D, Transpose(0, 2, 1, 3, 4), Reshape back)
   is recognised through two pending "view" values and becomes one shuffle node.

   Supported, opsets 11 to 17 (docs/onnx.md): Conv, BatchNormalization (inference form), Relu,
   Clip, Add, Sub, Mul, Div (two computed tensors of one shape for Add; otherwise by a constant
   per channel or scalar), MaxPool, AveragePool, GlobalAveragePool, ReduceMean over H and W,
   Flatten, Reshape, Transpose (the shuffle pattern, or identity), Gemm, MatMul (by a constant
   matrix), Concat, Split and Slice on the channel axis, Dropout, Identity, Constant, and on
   constants Shape, Gather, Unsqueeze, Squeeze, Cast, ConstantOfShape and the arithmetic ops. */
#include "model_internal.h"
#include "sqakd/import.h"
#include "sqakd/onnx.h"
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SYM_N INT64_MIN   /* the batch dimension inside folded shape constants */

enum { V_ACT = 1, V_CONST, V_VIEW5, V_VIEW5T };

typedef struct val {
    char *name;
    int kind;
    int node, rank;          /* V_ACT / V_VIEW*: node id and ONNX rank */
    int groups;              /* V_VIEW*: the shuffle's group count */
    sq_onnx_tensor t;        /* V_CONST (owned) */
    int input_k;             /* V_CONST: > 0 for graph input k given as a tensor (sq_import_opts.bind):
                                a constant where an op needs one, an input node where it needs a
                                computed tensor */
} val;

typedef struct imp {
    const sq_onnx_graph *g;
    const char *path;
    const sq_import_opts *o;
    sq_model *m;
    sq_imported *out;
    val **v;                 /* each value allocated once: pointers stay valid while the table grows */
    int nv, cap;
    int *ht;                 /* open addressing over v (index + 1) */
    int htcap;
    int cur;                 /* ONNX node being mapped (-1: none) */
    int64_t batch_fixed;     /* the graph input's batch dimension when it is a number (0: symbolic) */
    int values_cap;
    char builder_err[256];   /* a graph builder refused a node (it returned -1 with the error set) */
} imp;

/* ---- errors ---- */

static sq_status fail(imp *I, sq_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static sq_status fail(imp *I, sq_status st, const char *fmt, ...)
{
    char msg[512], pb[256], nb[128], ob[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sq_printable(I->path, pb, sizeof pb);
    if (I->cur >= 0) {
        const sq_onnx_node *n = &I->g->node[I->cur];
        sq_set_error("%s: node %d '%s' (%s): %s", pb, I->cur, sq_printable(n->name, nb, sizeof nb),
                     sq_printable(n->op, ob, sizeof ob), msg);
    } else {
        sq_set_error("%s: %s", pb, msg);
    }
    return st;
}

#define SUPPORTED "Conv, BatchNormalization, Relu, Clip, Add, Sub, Mul, Div, MaxPool, AveragePool, " \
    "GlobalAveragePool, ReduceMean, Flatten, Reshape, Transpose, Gemm, MatMul, Concat, Split, Slice, " \
    "Dropout, Identity, Constant and constant shape arithmetic (docs/onnx.md)"

/* ---- the value table ---- */

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static val *find(imp *I, const char *name)
{
    if (!I->htcap || !name || !*name) return NULL;
    for (uint64_t h = hash(name) & (uint64_t)(I->htcap - 1);; h = (h + 1) & (uint64_t)(I->htcap - 1)) {
        int k = I->ht[h];
        if (!k) return NULL;
        if (!strcmp(I->v[k - 1]->name, name)) return I->v[k - 1];
    }
}

static void ht_put(imp *I, int idx)
{
    for (uint64_t h = hash(I->v[idx]->name) & (uint64_t)(I->htcap - 1);; h = (h + 1) & (uint64_t)(I->htcap - 1))
        if (!I->ht[h]) { I->ht[h] = idx + 1; return; }
}

/* a new value named name (a later definition of the same name replaces the earlier in lookups) */
static val *add_val(imp *I, const char *name, int kind)
{
    if (I->nv == I->cap) {
        I->cap = I->cap ? 2 * I->cap : 256;
        I->v = realloc(I->v, (size_t)I->cap * sizeof *I->v);
        if (!I->v) { fprintf(stderr, "sqakd: out of memory\n"); exit(3); }
    }
    if (2 * (I->nv + 1) > I->htcap) {
        int nc = I->htcap ? 2 * I->htcap : 1024;
        while (2 * (I->nv + 1) > nc) nc *= 2;
        free(I->ht);
        I->ht = sq_xcalloc((size_t)nc, sizeof *I->ht);
        I->htcap = nc;
        for (int i = 0; i < I->nv; i++) ht_put(I, i);
    }
    val *x = sq_xcalloc(1, sizeof *x);
    I->v[I->nv] = x;
    x->name = strdup(name);
    if (!x->name) { fprintf(stderr, "sqakd: out of memory\n"); exit(3); }
    x->kind = kind;
    /* remove an earlier value of this name from the table, then add this one */
    val *old = find(I, name);
    if (old) old->name[0] = '\0';
    ht_put(I, I->nv);
    I->nv++;
    return x;
}

static void tensor_copy(sq_onnx_tensor *dst, const sq_onnx_tensor *src)
{
    *dst = *src;
    dst->name = NULL;
    size_t n = src->numel ? src->numel : 1;
    if (src->f) { dst->f = sq_xmalloc(n * sizeof(float)); memcpy(dst->f, src->f, src->numel * sizeof(float)); }
    if (src->i) { dst->i = sq_xmalloc(n * sizeof(int64_t)); memcpy(dst->i, src->i, src->numel * sizeof(int64_t)); }
}

static void tensor_new(sq_onnx_tensor *t, int is_float, int ndim, const int64_t *dims)
{
    memset(t, 0, sizeof *t);
    t->dtype = is_float ? SQ_ONNX_FLOAT : SQ_ONNX_INT64;
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) { t->dims[i] = dims[i]; t->numel *= (size_t)dims[i]; }
    size_t n = t->numel ? t->numel : 1;
    if (is_float) t->f = sq_xcalloc(n, sizeof(float));
    else t->i = sq_xcalloc(n, sizeof(int64_t));
}

static double cnum(const sq_onnx_tensor *t, size_t i) { return t->f ? (double)t->f[i] : (double)t->i[i]; }

static val *act_val(imp *I, const char *name, int node, int rank)
{
    if (node < 0 && !I->builder_err[0]) snprintf(I->builder_err, sizeof I->builder_err, "%s", sq_last_error());
    val *x = add_val(I, name, V_ACT);
    x->node = node;
    x->rank = rank;
    return x;
}

/* input k of the current node: NULL when absent or omitted */
static val *in_val(imp *I, const sq_onnx_node *n, int k)
{
    if (k >= n->nin || !n->in[k][0]) return NULL;
    return find(I, n->in[k]);
}

static int sample_dims(const sq_node *nd, int rank, int64_t *d);
static const sq_node *node_of(imp *I, const val *x);

/* a bound graph input used as a computed tensor: an input node of the tensor's shape */
static sq_status materialize(imp *I, val *x)
{
    const sq_onnx_tensor *t = &x->t;
    if (t->ndim < 1 || t->ndim > 4 || !t->f)
        return fail(I, SQ_EARG, "graph input %d is used as a computed tensor but is not float of 1 to 4 dimensions",
                    x->input_k);
    for (int i = 1; i < t->ndim; i++)
        if (t->dims[i] < 1 || t->dims[i] > 65536) return fail(I, SQ_EARG, "graph input %d has a bad dimension", x->input_k);
    int id = sq_b_input(I->m, t->ndim > 1 ? (int)t->dims[1] : 1, t->ndim > 2 ? (int)t->dims[2] : 1,
                        t->ndim > 3 ? (int)t->dims[3] : 1);
    I->out->input_node[x->input_k] = id;
    x->kind = V_ACT;
    x->node = id;
    x->rank = t->ndim;
    return SQ_OK;
}

/* a bound graph input with the same per-sample shape as computed tensor a: used as one */
static int bound_like(imp *I, const val *c, const val *a)
{
    if (c->kind != V_CONST || c->input_k <= 0 || a->kind != V_ACT || c->t.ndim != a->rank) return 0;
    int64_t d[3];
    int nd = sample_dims(node_of(I, a), a->rank, d);
    for (int i = 0; i < nd; i++)
        if (c->t.dims[i + 1] != d[i]) return 0;
    return 1;
}

static sq_status need_act(imp *I, const sq_onnx_node *n, int k, val **out)
{
    val *x = in_val(I, n, k);
    char b[128];
    if (!x) {
        if (k < n->nin && n->in[k][0])
            return fail(I, SQ_EFORMAT, "input '%s' is not produced by any earlier node, initializer or graph input",
                        sq_printable(n->in[k], b, sizeof b));
        return fail(I, SQ_EFORMAT, "input %d is missing", k);
    }
    if (x->kind == V_CONST && x->input_k > 0) {
        sq_status st = materialize(I, x);
        if (st) return st;
    }
    if (x->kind == V_CONST)
        return fail(I, SQ_EARG, "input '%s' is a constant; sqakd maps this op on computed tensors only",
                    sq_printable(n->in[k], b, sizeof b));
    if (x->kind != V_ACT)
        return fail(I, SQ_EARG, "input '%s' is a 5-D view; only ShuffleNet's channel shuffle (Reshape to "
                    "(N, g, C/g, H, W), Transpose(0, 2, 1, 3, 4), Reshape back) is supported",
                    sq_printable(n->in[k], b, sizeof b));
    *out = x;
    return SQ_OK;
}

static sq_status need_const(imp *I, const sq_onnx_node *n, int k, const sq_onnx_tensor **out)
{
    val *x = in_val(I, n, k);
    char b[128];
    if (!x) return fail(I, SQ_EFORMAT, "input %d is missing", k);
    if (x->kind != V_CONST)
        return fail(I, SQ_EARG, "input '%s' must be a constant (an initializer or folded from constants)",
                    sq_printable(n->in[k], b, sizeof b));
    *out = &x->t;
    return SQ_OK;
}

static int64_t attr_i(const sq_onnx_node *n, const char *name, int64_t def)
{
    const sq_onnx_attr *a = sq_onnx_attr_find(n, name);
    return a && a->type == SQ_ONNX_ATTR_INT ? a->i : def;
}

static float attr_f(const sq_onnx_node *n, const char *name, float def)
{
    const sq_onnx_attr *a = sq_onnx_attr_find(n, name);
    return a && a->type == SQ_ONNX_ATTR_FLOAT ? a->f : def;
}

/* INTS attribute into v (at most cap); returns the count, -1 when absent */
static int attr_ints(const sq_onnx_node *n, const char *name, int64_t *v, int cap)
{
    const sq_onnx_attr *a = sq_onnx_attr_find(n, name);
    if (!a || a->type != SQ_ONNX_ATTR_INTS) return -1;
    int k = a->n < cap ? a->n : cap;
    for (int i = 0; i < k; i++) v[i] = a->ints[i];
    return a->n;
}

static const char *attr_s(const sq_onnx_node *n, const char *name, const char *def)
{
    const sq_onnx_attr *a = sq_onnx_attr_find(n, name);
    return a && a->type == SQ_ONNX_ATTR_STRING && a->s ? a->s : def;
}

/* ---- names and parameter values ---- */

/* a node name safe for checkpoints: from the weight's initializer name ("layer1.0.conv1.weight"
   -> "layer1.0.conv1") or the ONNX node name, else op + index; unique among the model's nodes */
static void make_name(imp *I, const sq_onnx_node *n, const char *weight, const char *prefix, char *dst, size_t cap)
{
    char base[72] = "";
    const char *src = NULL;
    size_t len = 0;
    if (weight && strlen(weight) > 7 && !strcmp(weight + strlen(weight) - 7, ".weight")) {
        src = weight;
        len = strlen(weight) - 7;
    } else if (n->name && n->name[0]) {
        src = n->name;
        len = strlen(n->name);
    }
    if (src) {
        size_t k = 0;
        for (size_t i = 0; i < len && k + 1 < sizeof base; i++) {
            unsigned char c = (unsigned char)src[i];
            if (c == '/' && k == 0) continue;
            base[k++] = (isalnum(c) || c == '_' || c == '.' || c == '-') ? (char)c : '_';
        }
        base[k] = '\0';
    }
    if (!base[0]) snprintf(base, sizeof base, "%s%d", prefix, I->cur);
    snprintf(dst, cap, "%s", base);
    for (int k = 1;; k++) {
        int clash = 0;
        for (int i = 0; i < I->m->nnodes && !clash; i++) clash = !strcmp(I->m->nodes[i].name, dst);
        if (!clash) return;
        snprintf(dst, cap, "%.60s_%d", base, k);
    }
}

static void put_value(imp *I, const char *node, const char *leaf, const float *data, size_t numel)
{
    sq_imported *o = I->out;
    if (o->ntensors == I->values_cap) {
        I->values_cap = I->values_cap ? 2 * I->values_cap : 64;
        o->names = realloc(o->names, (size_t)I->values_cap * sizeof *o->names);
        o->data = realloc(o->data, (size_t)I->values_cap * sizeof *o->data);
        o->numel = realloc(o->numel, (size_t)I->values_cap * sizeof *o->numel);
        if (!o->names || !o->data || !o->numel) { fprintf(stderr, "sqakd: out of memory\n"); exit(3); }
    }
    char nm[128];
    snprintf(nm, sizeof nm, "%s.%s", node, leaf);
    o->names[o->ntensors] = strdup(nm);
    o->data[o->ntensors] = sq_xmalloc((numel ? numel : 1) * sizeof(float));
    memcpy(o->data[o->ntensors], data, numel * sizeof(float));
    o->numel[o->ntensors] = numel;
    o->ntensors++;
}

static const sq_node *node_of(imp *I, const val *x) { return &I->m->nodes[x->node]; }

static sq_status float_const(imp *I, const sq_onnx_tensor *t, const char *what)
{
    if (!t->f) return fail(I, SQ_EARG, "%s must be a float tensor", what);
    for (size_t i = 0; i < t->numel; i++)
        if (!isfinite(t->f[i])) return fail(I, SQ_EFORMAT, "%s holds a non-finite value at index %zu", what, i);
    return SQ_OK;
}

/* ---- window attributes (Conv, pools) ---- */

typedef struct win { int kh, kw, sh, sw, pt, pl, pb, pr; } win;

static sq_status window(imp *I, const sq_onnx_node *n, const sq_node *in, int kh, int kw, win *w)
{
    int64_t v[8];
    w->kh = kh; w->kw = kw;
    int k = attr_ints(n, "kernel_shape", v, 8);
    if (k >= 0 && (k != 2 || v[0] != kh || v[1] != kw))
        return fail(I, SQ_EARG, "kernel_shape must give 2 dimensions matching the weight");
    if (attr_ints(n, "dilations", v, 8) >= 0 && (v[0] != 1 || v[1] != 1))
        return fail(I, SQ_EARG, "dilations other than 1 are not supported");
    w->sh = w->sw = 1;
    if ((k = attr_ints(n, "strides", v, 8)) >= 0) {
        if (k != 2 || v[0] < 1 || v[1] < 1 || v[0] > 64 || v[1] > 64)
            return fail(I, SQ_EARG, "strides must be 2 values in [1, 64]");
        w->sh = (int)v[0]; w->sw = (int)v[1];
    }
    w->pt = w->pl = w->pb = w->pr = 0;
    const char *ap = attr_s(n, "auto_pad", "NOTSET");
    if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
        int th = ((in->h + w->sh - 1) / w->sh - 1) * w->sh + w->kh - in->h;
        int tw = ((in->w + w->sw - 1) / w->sw - 1) * w->sw + w->kw - in->w;
        if (th < 0) th = 0;
        if (tw < 0) tw = 0;
        int upper = !strcmp(ap, "SAME_UPPER");
        w->pt = upper ? th / 2 : th - th / 2; w->pb = th - w->pt;
        w->pl = upper ? tw / 2 : tw - tw / 2; w->pr = tw - w->pl;
    } else if (!strcmp(ap, "NOTSET")) {
        if ((k = attr_ints(n, "pads", v, 8)) >= 0) {
            if (k != 4) return fail(I, SQ_EARG, "pads must give 4 values");
            for (int i = 0; i < 4; i++)
                if (v[i] < 0 || v[i] > 1024) return fail(I, SQ_EARG, "pads must be in [0, 1024]");
            w->pt = (int)v[0]; w->pl = (int)v[1]; w->pb = (int)v[2]; w->pr = (int)v[3];
        }
    } else if (strcmp(ap, "VALID")) {
        char b[64];
        return fail(I, SQ_EARG, "auto_pad '%s' is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER",
                    sq_printable(ap, b, sizeof b));
    }
    return SQ_OK;
}

/* ---- ops on computed tensors ---- */

static sq_status op_conv(imp *I, const sq_onnx_node *n)
{
    val *x = NULL;
    const sq_onnx_tensor *W, *B = NULL;
    sq_status st;
    if ((st = need_act(I, n, 0, &x)) || (st = need_const(I, n, 1, &W))) return st;
    if (in_val(I, n, 2) && (st = need_const(I, n, 2, &B))) return st;
    if (x->rank != 4) return fail(I, SQ_EARG, "only 2-D convolutions (NCHW inputs) are supported");
    if ((st = float_const(I, W, "the weight")) || (B && (st = float_const(I, B, "the bias")))) return st;
    const sq_node *in = node_of(I, x);
    int64_t group = attr_i(n, "group", 1);
    if (W->ndim != 4 || W->dims[0] < 1 || W->dims[0] > 65536 || W->dims[2] < 1 || W->dims[3] < 1 ||
        W->dims[2] > 64 || W->dims[3] > 64)
        return fail(I, SQ_EARG, "the weight must be (K, C/group, kh, kw) with kernels up to 64");
    if (group < 1 || in->c % group || W->dims[0] % group || W->dims[1] * group != in->c)
        return fail(I, SQ_EARG, "the weight's %lld input channels x group %lld do not match the input's %d channels",
                    (long long)W->dims[1], (long long)group, in->c);
    if (B && (B->numel != (size_t)W->dims[0])) return fail(I, SQ_EARG, "the bias must have K = %lld values", (long long)W->dims[0]);
    win w;
    if ((st = window(I, n, in, (int)W->dims[2], (int)W->dims[3], &w))) return st;
    if (w.sh != w.sw) return fail(I, SQ_EARG, "different strides for height and width are not supported");
    if (in->h + w.pt + w.pb < w.kh || in->w + w.pl + w.pr < w.kw)
        return fail(I, SQ_EARG, "the kernel is larger than the padded input (%dx%d)", in->h, in->w);
    char name[80];
    make_name(I, n, n->in[1], "conv", name, sizeof name);
    int id = sq_b_conv_k(I->m, x->node, name, (int)W->dims[0], w.kh, w.kw, w.sh, w.pt, w.pl, w.pb, w.pr,
                         (int)group, B != NULL);
    put_value(I, name, "weight", W->f, W->numel);
    if (B) put_value(I, name, "bias", B->f, B->numel);
    act_val(I, n->out[0], id, 4);
    return SQ_OK;
}

static sq_status op_bn(imp *I, const sq_onnx_node *n)
{
    val *x = NULL;
    const sq_onnx_tensor *t[4];
    sq_status st;
    if ((st = need_act(I, n, 0, &x))) return st;
    for (int k = 0; k < 4; k++)
        if ((st = need_const(I, n, k + 1, &t[k])) || (st = float_const(I, t[k], "a BatchNormalization parameter")))
            return st;
    if (attr_i(n, "training_mode", 0) || (n->nout > 1 && n->out[1][0]))
        return fail(I, SQ_EARG, "training-mode BatchNormalization is not supported (export the model in eval mode)");
    const sq_node *in = node_of(I, x);
    for (int k = 0; k < 4; k++)
        if (t[k]->numel != (size_t)in->c)
            return fail(I, SQ_EARG, "parameter %d has %zu values for %d channels", k + 1, t[k]->numel, in->c);
    float eps = attr_f(n, "epsilon", 1e-5f);
    if (!(eps > 0.0f && eps < 1.0f)) return fail(I, SQ_EARG, "epsilon %g is not in (0, 1)", eps);
    char name[80];
    make_name(I, n, n->in[1], "bn", name, sizeof name);
    int id = sq_b_bn(I->m, x->node, name);
    put_value(I, name, "weight", t[0]->f, t[0]->numel);
    put_value(I, name, "bias", t[1]->f, t[1]->numel);
    put_value(I, name, "running_mean", t[2]->f, t[2]->numel);
    /* sqakd's BatchNorm uses eps = 1e-5: another epsilon goes into the variance, which gives the
       same inference result var + eps */
    float *var = sq_xmalloc(t[3]->numel * sizeof(float));
    for (size_t i = 0; i < t[3]->numel; i++) {
        var[i] = eps == 1e-5f ? t[3]->f[i] : (float)((double)t[3]->f[i] + (double)eps - 1e-5);
        if (!(t[3]->f[i] >= 0.0f)) { free(var); return fail(I, SQ_EFORMAT, "the variance is negative at channel %zu", i); }
    }
    put_value(I, name, "running_var", var, t[3]->numel);
    free(var);
    act_val(I, n->out[0], id, x->rank);
    return SQ_OK;
}

static sq_status op_clip(imp *I, const sq_onnx_node *n, int relu)
{
    val *x = NULL;
    sq_status st;
    if ((st = need_act(I, n, 0, &x))) return st;
    float lo = 0.0f, hi = INFINITY;
    if (!relu) {
        lo = -INFINITY;
        if (I->g->opset && I->g->opset < 11) {
            lo = attr_f(n, "min", -INFINITY);
            hi = attr_f(n, "max", INFINITY);
        }
        for (int k = 1; k <= 2; k++) {
            if (!in_val(I, n, k)) continue;
            const sq_onnx_tensor *t;
            if ((st = need_const(I, n, k, &t))) return st;
            if (t->numel != 1) return fail(I, SQ_EARG, "Clip bounds must be scalars");
            if (k == 1) lo = (float)cnum(t, 0); else hi = (float)cnum(t, 0);
        }
        if (isnan(lo) || isnan(hi) || lo > hi) return fail(I, SQ_EARG, "Clip bounds %g, %g are not ordered", lo, hi);
    }
    int id = relu ? sq_b_act(I->m, x->node, SQ_ACT_RELU) : sq_b_clip(I->m, x->node, lo, hi);
    act_val(I, n->out[0], id, x->rank);
    return SQ_OK;
}

/* per-channel vector of a constant broadcast against a computed tensor of rank r and c channels:
   a scalar, or c values laid along the channel axis */
static int chan_vec(const sq_onnx_tensor *t, int rank, int c, double *v)
{
    if (t->numel == 1) { for (int i = 0; i < c; i++) v[i] = cnum(t, 0); return 1; }
    if (t->numel != (size_t)c) return 0;
    /* the constant's dims right-aligned with the tensor's: the non-1 dim must be axis 1 */
    int off = rank - t->ndim;
    if (off < 0) return 0;
    for (int d = 0; d < t->ndim; d++)
        if (t->dims[d] != 1 && off + d != 1) return 0;
    for (int i = 0; i < c; i++) v[i] = cnum(t, (size_t)i);
    return 1;
}

static sq_status fold_binary(imp *I, const sq_onnx_node *n, const sq_onnx_tensor *a, const sq_onnx_tensor *b);

static sq_status op_binary(imp *I, const sq_onnx_node *n)
{
    val *a = in_val(I, n, 0), *b = in_val(I, n, 1);
    if (!a || !b) return fail(I, SQ_EFORMAT, "needs two inputs");
    if (a->kind == V_CONST && b->kind == V_CONST) return fold_binary(I, n, &a->t, &b->t);
    const char *op = n->op;
    sq_status st;
    if (bound_like(I, a, b) && (st = materialize(I, a))) return st;
    if (bound_like(I, b, a) && (st = materialize(I, b))) return st;
    if (a->kind != V_CONST && b->kind != V_CONST) {
        val *x = NULL, *y = NULL;
        if ((st = need_act(I, n, 0, &x)) || (st = need_act(I, n, 1, &y))) return st;
        const sq_node *p = node_of(I, x), *q = node_of(I, y);
        if (strcmp(op, "Add"))
            return fail(I, SQ_EARG, "%s of two computed tensors is not supported (only Add; %s by a constant is)", op, op);
        if (p->c != q->c || p->h != q->h || p->w != q->w || x->rank != y->rank)
            return fail(I, SQ_EARG, "Add of tensors of different shapes (%dx%dx%d and %dx%dx%d): broadcasting "
                        "between computed tensors is not supported", p->c, p->h, p->w, q->c, q->h, q->w);
        int id = sq_b_add(I->m, x->node, y->node);
        act_val(I, n->out[0], id, x->rank);
        return SQ_OK;
    }
    const int const_first = a->kind == V_CONST;
    val *x = NULL;
    if ((st = need_act(I, n, const_first ? 1 : 0, &x))) return st;
    const sq_onnx_tensor *t = const_first ? &a->t : &b->t;
    const sq_node *in = node_of(I, x);
    double *k = sq_xmalloc((size_t)in->c * sizeof(double));
    if (!chan_vec(t, x->rank, in->c, k)) {
        free(k);
        return fail(I, SQ_EARG, "%s by a constant of %zu values: only a scalar or one value per channel "
                    "(shape (C, 1, 1) or (1, C, 1, 1)) is supported", op, t->numel);
    }
    float *va = sq_xmalloc((size_t)in->c * sizeof(float)), *vb = sq_xmalloc((size_t)in->c * sizeof(float));
    st = SQ_OK;
    for (int i = 0; i < in->c && !st; i++) {
        double A = 1, Bv = 0;
        if (!strcmp(op, "Add")) Bv = k[i];
        else if (!strcmp(op, "Sub")) { if (const_first) { A = -1; Bv = k[i]; } else Bv = -k[i]; }
        else if (!strcmp(op, "Mul")) A = k[i];
        else if (!const_first && k[i] != 0) A = 1.0 / k[i];
        else st = fail(I, SQ_EARG, const_first ? "division of a constant by a computed tensor is not supported"
                                               : "division by zero");
        va[i] = (float)A; vb[i] = (float)Bv;
        if (!isfinite(va[i]) || !isfinite(vb[i])) st = fail(I, SQ_EARG, "non-finite constant");
    }
    if (!st) {
        char name[80];
        make_name(I, n, NULL, "affine", name, sizeof name);
        int id = sq_b_affine(I->m, x->node, name);
        put_value(I, name, "a", va, (size_t)in->c);
        put_value(I, name, "b", vb, (size_t)in->c);
        act_val(I, n->out[0], id, x->rank);
    }
    free(k); free(va); free(vb);
    return st;
}

static sq_status op_pool(imp *I, const sq_onnx_node *n, int avg)
{
    val *x = NULL;
    sq_status st;
    if ((st = need_act(I, n, 0, &x))) return st;
    if (x->rank != 4) return fail(I, SQ_EARG, "only 2-D pooling (NCHW inputs) is supported");
    if (n->nout > 1 && n->out[1][0]) return fail(I, SQ_EARG, "the Indices output of MaxPool is not supported");
    int64_t ks[8];
    if (attr_ints(n, "kernel_shape", ks, 8) != 2 || ks[0] < 1 || ks[1] < 1 || ks[0] > 1024 || ks[1] > 1024)
        return fail(I, SQ_EARG, "kernel_shape must give 2 values in [1, 1024]");
    const sq_node *in = node_of(I, x);
    win w;
    if ((st = window(I, n, in, (int)ks[0], (int)ks[1], &w))) return st;
    if (w.pt >= w.kh || w.pb >= w.kh || w.pl >= w.kw || w.pr >= w.kw)
        return fail(I, SQ_EARG, "pads must be smaller than the kernel");
    if (in->h + w.pt + w.pb < w.kh || in->w + w.pl + w.pr < w.kw)
        return fail(I, SQ_EARG, "the window is larger than the padded input (%dx%d)", in->h, in->w);
    int ceil = (int)attr_i(n, "ceil_mode", 0), cip = avg ? (int)attr_i(n, "count_include_pad", 0) : 0;
    int id = sq_b_pool_k(I->m, x->node, avg ? SQ_POOL_AVG : SQ_POOL_MAX, w.kh, w.kw, w.sh, w.sw, w.pt, w.pl,
                         w.pb, w.pr, ceil != 0, cip != 0);
    act_val(I, n->out[0], id, 4);
    return SQ_OK;
}

/* a view of node `node` with the per-sample shape (c, h, w): a flatten node whose shape is set */
static int view_node(imp *I, int node, int c, int h, int w)
{
    int id = sq_b_flatten(I->m, node);
    sq_node *v = &I->m->nodes[id];
    v->c = c; v->h = h; v->w = w;
    return id;
}

static sq_status op_gap(imp *I, const sq_onnx_node *n, int reduce)
{
    val *x = NULL;
    sq_status st;
    if ((st = need_act(I, n, 0, &x))) return st;
    if (x->rank != 4) return fail(I, SQ_EARG, "only NCHW inputs are supported");
    int keep = 1;
    if (reduce) {
        int64_t ax[8];
        int k = attr_ints(n, "axes", ax, 8);
        if (k < 0 && n->nin > 1) {
            const sq_onnx_tensor *t;
            if ((st = need_const(I, n, 1, &t))) return st;
            k = (int)(t->numel < 8 ? t->numel : 8);
            for (int i = 0; i < k; i++) ax[i] = (int64_t)cnum(t, (size_t)i);
        }
        int h = 0, w = 0;
        for (int i = 0; i < k && i < 8; i++) {
            int64_t a = ax[i] < 0 ? ax[i] + 4 : ax[i];
            if (a == 2) h = 1; else if (a == 3) w = 1; else h = w = -9;
        }
        if (k != 2 || h != 1 || w != 1) return fail(I, SQ_EARG, "ReduceMean is supported over axes (2, 3) only");
        keep = attr_i(n, "keepdims", 1) != 0;
    }
    int id = sq_b_gap(I->m, x->node);
    if (!keep) id = sq_b_flatten(I->m, id);
    act_val(I, n->out[0], id, keep ? 4 : 2);
    return SQ_OK;
}

static sq_status op_flatten(imp *I, const sq_onnx_node *n)
{
    val *x = NULL;
    sq_status st;
    if ((st = need_act(I, n, 0, &x))) return st;
    int64_t axis = attr_i(n, "axis", 1);
    if (axis < 0) axis += x->rank;
    if (axis != 1) return fail(I, SQ_EARG, "Flatten is supported with axis 1 only (it keeps the batch dimension)");
    int id = (x->rank == 2) ? x->node : sq_b_flatten(I->m, x->node);
    act_val(I, n->out[0], id, 2);
    return SQ_OK;
}

/* per-sample dims of a computed value by its rank */
static int sample_dims(const sq_node *nd, int rank, int64_t *d)
{
    if (rank == 4) { d[0] = nd->c; d[1] = nd->h; d[2] = nd->w; return 3; }
    if (rank == 3) { d[0] = nd->c; d[1] = nd->h; return 2; }
    if (rank == 1) return 0;
    d[0] = nd->c;
    return 1;
}

static sq_status op_reshape(imp *I, const sq_onnx_node *n)
{
    val *x = in_val(I, n, 0);
    const sq_onnx_tensor *s;
    sq_status st;
    if (!x) return fail(I, SQ_EFORMAT, "input 0 is missing");
    if ((st = need_const(I, n, 1, &s))) return st;
    if (!s->i || s->ndim != 1 || s->numel < 1 || s->numel > 8) return fail(I, SQ_EARG, "the shape must be 1-D int64 of 1 to 8 values");
    if (x->kind == V_CONST) {
        /* a constant reshaped: same values, new dims (no 0 / -1 with symbols) */
        size_t prod = 1;
        int neg = -1;
        int64_t d[8];
        for (size_t i = 0; i < s->numel; i++) {
            d[i] = s->i[i] == 0 && !attr_i(n, "allowzero", 0) && (int)i < x->t.ndim ? x->t.dims[i] : s->i[i];
            if (d[i] == -1 && neg < 0) neg = (int)i;
            else if (d[i] < 0) return fail(I, SQ_EARG, "bad shape value %lld", (long long)d[i]);
            else prod *= (size_t)d[i];
        }
        if (neg >= 0) d[neg] = prod ? (int64_t)(x->t.numel / prod) : 0;
        size_t tot = 1;
        for (size_t i = 0; i < s->numel; i++) tot *= (size_t)d[i];
        if (tot != x->t.numel) return fail(I, SQ_EARG, "reshape of %zu values into %zu", x->t.numel, tot);
        val *y = add_val(I, n->out[0], V_CONST);
        tensor_copy(&y->t, &x->t);
        y->t.ndim = (int)s->numel;
        for (size_t i = 0; i < s->numel; i++) y->t.dims[i] = d[i];
        return SQ_OK;
    }
    const sq_node *in = node_of(I, x);
    int64_t cur[3];
    int cr = x->kind == V_ACT ? sample_dims(in, x->rank, cur) : 3;
    if (x->kind != V_ACT) { cur[0] = in->c; cur[1] = in->h; cur[2] = in->w; }
    size_t per = (size_t)in->c * in->h * in->w;
    /* the batch dimension: the symbol, 0 (copy), -1 (inferred) or the graph's fixed batch size */
    int64_t b0 = s->i[0];
    if (!(b0 == SYM_N || b0 == 0 || b0 == -1 || (I->batch_fixed > 0 && b0 == I->batch_fixed)))
        return fail(I, SQ_EARG, "a reshape that changes the batch dimension (to %lld) is not supported", (long long)b0);
    int64_t d[8];
    int nd = (int)s->numel - 1, neg = -1;
    size_t prod = 1;
    for (int i = 0; i < nd; i++) {
        int64_t v = s->i[i + 1];
        if (v == 0 && !attr_i(n, "allowzero", 0)) v = i < cr ? cur[i] : -2;
        if (v == -1 && neg < 0 && b0 != -1) neg = i;
        else if (v < 1 || v == SYM_N) return fail(I, SQ_EARG, "reshape to dimension %lld is not supported", (long long)s->i[i + 1]);
        else prod *= (size_t)v;
        d[i] = v;
    }
    if (neg >= 0) { if (!prod || per % prod) return fail(I, SQ_EARG, "reshape sizes do not divide"); d[neg] = (int64_t)(per / prod); prod = per; }
    if (nd == 0 || prod != per)
        return fail(I, SQ_EARG, "reshape of %zu values per sample into %zu", per, prod);
    if (x->kind == V_VIEW5T) {
        if (nd != 3 || d[0] != in->c || d[1] != in->h || d[2] != in->w)
            return fail(I, SQ_EARG, "after the shuffle's transpose, only a reshape back to (N, C, H, W) is supported");
        int id = sq_b_shuffle(I->m, x->node, x->groups);
        act_val(I, n->out[0], id, 4);
        return SQ_OK;
    }
    if (x->kind == V_VIEW5) return fail(I, SQ_EARG, "a reshape of a 5-D view is supported only after its transpose");
    if (nd == 4 && x->rank == 4 && d[2] == in->h && d[3] == in->w && d[0] * d[1] == in->c) {
        val *y = add_val(I, n->out[0], V_VIEW5);
        y->node = x->node; y->rank = 5; y->groups = (int)d[0];
        return SQ_OK;
    }
    if (nd > 3) return fail(I, SQ_EARG, "reshape to %d dimensions is supported only as ShuffleNet's channel shuffle", nd + 1);
    int c = (int)d[0], h = nd > 1 ? (int)d[1] : 1, w = nd > 2 ? (int)d[2] : 1;
    int id = x->node;
    if (nd == 1 && x->rank != 2) id = sq_b_flatten(I->m, x->node);
    else if (c != in->c || h != in->h || w != in->w) id = view_node(I, x->node, c, h, w);
    act_val(I, n->out[0], id, nd + 1);
    return SQ_OK;
}

static sq_status op_transpose(imp *I, const sq_onnx_node *n)
{
    val *x = in_val(I, n, 0);
    if (!x) return fail(I, SQ_EFORMAT, "input 0 is missing");
    int64_t p[8];
    int k = attr_ints(n, "perm", p, 8);
    if (x->kind == V_VIEW5 && k == 5 && p[0] == 0 && p[1] == 2 && p[2] == 1 && p[3] == 3 && p[4] == 4) {
        val *y = add_val(I, n->out[0], V_VIEW5T);
        y->node = x->node; y->rank = 5; y->groups = x->groups;
        return SQ_OK;
    }
    if (x->kind == V_ACT && k == x->rank) {
        int ident = 1;
        for (int i = 0; i < k; i++) ident &= p[i] == i;
        if (ident) { act_val(I, n->out[0], x->node, x->rank); return SQ_OK; }
    }
    return fail(I, SQ_EARG, "Transpose is supported only as part of ShuffleNet's channel shuffle (perm 0,2,1,3,4 of a "
                "(N, g, C/g, H, W) view) or as the identity");
}

static sq_status op_linear(imp *I, const sq_onnx_node *n, int gemm)
{
    val *x = NULL;
    const sq_onnx_tensor *Bm, *C = NULL;
    sq_status st;
    if ((st = need_act(I, n, 0, &x)) || (st = need_const(I, n, 1, &Bm))) return st;
    if (gemm && in_val(I, n, 2) && (st = need_const(I, n, 2, &C))) return st;
    if ((st = float_const(I, Bm, "the weight")) || (C && (st = float_const(I, C, "the bias")))) return st;
    const sq_node *in = node_of(I, x);
    size_t fin = (size_t)in->c * in->h * in->w;
    if (x->rank != 2 && !(x->rank == 4 && in->h == 1 && in->w == 1 && gemm))
        return fail(I, SQ_EARG, "%s is supported on (N, F) inputs only", n->op);
    int transB = gemm ? (int)attr_i(n, "transB", 0) : 0;
    if (gemm && attr_i(n, "transA", 0)) return fail(I, SQ_EARG, "Gemm with transA = 1 is not supported");
    if (Bm->ndim != 2) return fail(I, SQ_EARG, "the weight must be a 2-D constant");
    int64_t K = transB ? Bm->dims[1] : Bm->dims[0], out = transB ? Bm->dims[0] : Bm->dims[1];
    if ((size_t)K != fin || out < 1 || out > (1 << 24))
        return fail(I, SQ_EARG, "the weight (%lld x %lld) does not match %zu input features",
                    (long long)Bm->dims[0], (long long)Bm->dims[1], fin);
    float alpha = gemm ? attr_f(n, "alpha", 1.0f) : 1.0f, beta = gemm ? attr_f(n, "beta", 1.0f) : 1.0f;
    float *w = sq_xmalloc((size_t)out * fin * sizeof(float));
    for (int64_t o = 0; o < out; o++)
        for (size_t i = 0; i < fin; i++)
            w[(size_t)o * fin + i] = alpha * (transB ? Bm->f[(size_t)o * fin + i] : Bm->f[i * (size_t)out + (size_t)o]);
    float *b = NULL;
    if (C) {
        if (!(C->numel == 1 || C->numel == (size_t)out) || (C->ndim == 2 && C->dims[0] != 1)) {
            free(w);
            return fail(I, SQ_EARG, "the bias must be a scalar or %lld values", (long long)out);
        }
        b = sq_xmalloc((size_t)out * sizeof(float));
        for (int64_t o = 0; o < out; o++) b[o] = beta * C->f[C->numel == 1 ? 0 : o];
    }
    char name[80];
    make_name(I, n, n->in[1], "fc", name, sizeof name);
    int src = x->node;
    if (x->rank == 4) src = sq_b_flatten(I->m, src);
    int id = sq_b_linear(I->m, src, name, (int)out, C != NULL);
    put_value(I, name, "weight", w, (size_t)out * fin);
    if (b) put_value(I, name, "bias", b, (size_t)out);
    free(w); free(b);
    act_val(I, n->out[0], id, 2);
    return SQ_OK;
}

static int chan_axis(int64_t axis, int rank) { return (axis < 0 ? axis + rank : axis) == 1; }

static sq_status op_concat(imp *I, const sq_onnx_node *n)
{
    int nconst = 0, nact = 0;
    for (int k = 0; k < n->nin; k++) { val *x = in_val(I, n, k); nconst += x && x->kind == V_CONST; nact += x && x->kind == V_ACT; }
    if (nact && nconst) {
        for (int k = 0; k < n->nin; k++) {
            val *x = in_val(I, n, k);
            sq_status st;
            if (x && x->kind == V_CONST && x->input_k > 0 && (st = materialize(I, x))) return st;
        }
        nconst = 0;
    }
    if (n->nin < 1) return fail(I, SQ_EFORMAT, "needs inputs");
    if (nconst == n->nin) {
        /* constants: 1-D concatenation (shape arithmetic) */
        size_t tot = 0;
        int isf = 0;
        for (int k = 0; k < n->nin; k++) {
            const sq_onnx_tensor *t = &in_val(I, n, k)->t;
            if (t->ndim > 1) return fail(I, SQ_EARG, "concatenation of constants of more than 1 dimension is not supported");
            tot += t->numel;
            isf |= t->f != NULL;
        }
        if (tot > (1u << 24)) return fail(I, SQ_EARG, "constant too large");
        int64_t d = (int64_t)tot;
        val *y = add_val(I, n->out[0], V_CONST);
        tensor_new(&y->t, isf, 1, &d);
        size_t o = 0;
        for (int k = 0; k < n->nin; k++) {
            const sq_onnx_tensor *t = &in_val(I, n, k)->t;
            for (size_t i = 0; i < t->numel; i++, o++)
                if (isf) y->t.f[o] = (float)cnum(t, i); else y->t.i[o] = t->i[i];
        }
        return SQ_OK;
    }
    val *x0 = NULL;
    sq_status st;
    if ((st = need_act(I, n, 0, &x0))) return st;
    if (!chan_axis(attr_i(n, "axis", 0), x0->rank))
        return fail(I, SQ_EARG, "Concat is supported on the channel axis (1) only");
    int id = x0->node;
    for (int k = 1; k < n->nin; k++) {
        val *x;
        if ((st = need_act(I, n, k, &x))) return st;
        const sq_node *a = &I->m->nodes[id], *b = node_of(I, x);
        if (x->rank != x0->rank || a->h != b->h || a->w != b->w)
            return fail(I, SQ_EARG, "Concat of tensors of different heights or widths");
        id = sq_b_concat(I->m, id, x->node);
    }
    act_val(I, n->out[0], id, x0->rank);
    return SQ_OK;
}

static sq_status op_split(imp *I, const sq_onnx_node *n)
{
    val *x = NULL;
    sq_status st;
    if ((st = need_act(I, n, 0, &x))) return st;
    if (!chan_axis(attr_i(n, "axis", 0), x->rank)) return fail(I, SQ_EARG, "Split is supported on the channel axis (1) only");
    const sq_node *in = node_of(I, x);
    int64_t sz[64];
    int k = attr_ints(n, "split", sz, 64);
    if (k < 0 && in_val(I, n, 1)) {
        const sq_onnx_tensor *t;
        if ((st = need_const(I, n, 1, &t))) return st;
        if (!t->i || t->numel > 64) return fail(I, SQ_EARG, "split sizes must be int64 (at most 64)");
        k = (int)t->numel;
        for (int i = 0; i < k; i++) sz[i] = t->i[i];
    }
    if (k < 0) {
        if (n->nout < 1 || n->nout > 64 || in->c % n->nout)
            return fail(I, SQ_EARG, "%d channels do not split into %d equal parts", in->c, n->nout);
        k = n->nout;
        for (int i = 0; i < k; i++) sz[i] = in->c / n->nout;
    }
    if (k != n->nout || k > 64) return fail(I, SQ_EARG, "%d split sizes for %d outputs", k, n->nout);
    int64_t c0 = 0;
    for (int i = 0; i < k; i++) {
        if (sz[i] < 1 || c0 + sz[i] > in->c) return fail(I, SQ_EARG, "split sizes do not add up to %d channels", in->c);
        c0 += sz[i];
    }
    if (c0 != in->c) return fail(I, SQ_EARG, "split sizes add up to %lld, not %d channels", (long long)c0, in->c);
    c0 = 0;
    for (int i = 0; i < k; i++) {
        int id = sq_b_slice(I->m, x->node, (int)c0, (int)sz[i]);
        if (n->out[i][0]) act_val(I, n->out[i], id, x->rank);
        c0 += sz[i];
    }
    return SQ_OK;
}

static int64_t clampi(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

static sq_status op_slice(imp *I, const sq_onnx_node *n)
{
    val *x = in_val(I, n, 0);
    if (!x) return fail(I, SQ_EFORMAT, "input 0 is missing");
    int64_t st_[8], en[8], ax[8], sp[8];
    int k;
    sq_status st;
    if (I->g->opset && I->g->opset < 10) {
        k = attr_ints(n, "starts", st_, 8);
        if (k < 0 || attr_ints(n, "ends", en, 8) != k) return fail(I, SQ_EARG, "starts and ends must match");
        if (attr_ints(n, "axes", ax, 8) < 0) for (int i = 0; i < k; i++) ax[i] = i;
        for (int i = 0; i < k; i++) sp[i] = 1;
    } else {
        const sq_onnx_tensor *t[4] = {0};
        for (int j = 1; j <= 4; j++) {
            if (!in_val(I, n, j)) { if (j <= 2) return fail(I, SQ_EFORMAT, "starts and ends are required"); continue; }
            if ((st = need_const(I, n, j, &t[j - 1]))) return st;
            if (!t[j - 1]->i || t[j - 1]->numel > 8) return fail(I, SQ_EARG, "slice parameters must be int tensors of at most 8 values");
        }
        k = (int)t[0]->numel;
        for (int j = 1; j < 4; j++) if (t[j] && (int)t[j]->numel != k) return fail(I, SQ_EARG, "slice parameters differ in length");
        for (int i = 0; i < k; i++) {
            st_[i] = t[0]->i[i]; en[i] = t[1]->i[i];
            ax[i] = t[2] ? t[2]->i[i] : i;
            sp[i] = t[3] ? t[3]->i[i] : 1;
        }
    }
    if (x->kind == V_CONST) {
        if (x->t.ndim != 1 || k != 1 || (ax[0] != 0 && ax[0] != -1) || sp[0] == 0)
            return fail(I, SQ_EARG, "slicing of constants is supported for 1-D tensors only");
        int64_t len = (int64_t)x->t.numel, a = st_[0], b = en[0], s = sp[0];
        if (a < 0) a += len;
        if (b < 0) b += len;
        a = s > 0 ? clampi(a, 0, len) : clampi(a, 0, len - 1);
        b = s > 0 ? clampi(b, 0, len) : clampi(b, -1, len - 1);
        int64_t cnt = s > 0 ? (b > a ? (b - a + s - 1) / s : 0) : (a > b ? (a - b - s - 1) / -s : 0);
        val *y = add_val(I, n->out[0], V_CONST);
        tensor_new(&y->t, x->t.f != NULL, 1, &cnt);
        for (int64_t i = 0; i < cnt; i++) {
            if (y->t.f) y->t.f[i] = x->t.f[a + i * s]; else y->t.i[i] = x->t.i[a + i * s];
        }
        return SQ_OK;
    }
    if ((st = need_act(I, n, 0, &x))) return st;
    const sq_node *in = node_of(I, x);
    int64_t dims[4] = {0, in->c, in->h, in->w};
    int64_t c0 = 0, c1 = in->c;
    for (int i = 0; i < k; i++) {
        int64_t a = ax[i] < 0 ? ax[i] + x->rank : ax[i];
        if (a < 0 || a >= x->rank) return fail(I, SQ_EARG, "slice axis %lld out of range", (long long)ax[i]);
        if (a == 0) return fail(I, SQ_EARG, "slicing the batch axis is not supported");
        int64_t len = a < 4 ? dims[a] : 1;
        int64_t s0 = st_[i] < 0 ? st_[i] + len : st_[i], e0 = en[i] < 0 ? en[i] + len : en[i];
        s0 = clampi(s0, 0, len); e0 = clampi(e0, 0, len);
        if (a != 1) {
            if (s0 == 0 && e0 == len && sp[i] == 1) continue;   /* the whole axis */
            return fail(I, SQ_EARG, "Slice is supported on the channel axis only");
        }
        if (sp[i] != 1) return fail(I, SQ_EARG, "Slice with steps other than 1 is not supported");
        if (e0 <= s0) return fail(I, SQ_EARG, "the slice is empty");
        c0 = s0; c1 = e0;
    }
    int id = (c0 == 0 && c1 == in->c) ? x->node : sq_b_slice(I->m, x->node, (int)c0, (int)(c1 - c0));
    act_val(I, n->out[0], id, x->rank);
    return SQ_OK;
}

/* ---- constants ---- */

static sq_status const_from_attr(imp *I, const sq_onnx_node *n)
{
    if (n->nattr != 1) return fail(I, SQ_EARG, "Constant needs exactly one value attribute");
    const sq_onnx_attr *a = &n->attr[0];
    val *y = add_val(I, n->out[0], V_CONST);
    if (!strcmp(a->name, "value") && a->type == SQ_ONNX_ATTR_TENSOR && a->t) {
        if (!a->t->f && !a->t->i) return fail(I, SQ_EARG, "Constant of an unsupported type");
        tensor_copy(&y->t, a->t);
        return SQ_OK;
    }
    int64_t one = 1;
    if (!strcmp(a->name, "value_float") && a->type == SQ_ONNX_ATTR_FLOAT) {
        tensor_new(&y->t, 1, 0, &one); y->t.f[0] = a->f;
    } else if (!strcmp(a->name, "value_int") && a->type == SQ_ONNX_ATTR_INT) {
        tensor_new(&y->t, 0, 0, &one); y->t.i[0] = a->i;
    } else if (!strcmp(a->name, "value_floats") && a->type == SQ_ONNX_ATTR_FLOATS) {
        int64_t d = a->n;
        tensor_new(&y->t, 1, 1, &d);
        memcpy(y->t.f, a->floats, (size_t)a->n * sizeof(float));
    } else if (!strcmp(a->name, "value_ints") && a->type == SQ_ONNX_ATTR_INTS) {
        int64_t d = a->n;
        tensor_new(&y->t, 0, 1, &d);
        memcpy(y->t.i, a->ints, (size_t)a->n * sizeof(int64_t));
    } else {
        return fail(I, SQ_EARG, "Constant's attribute '%s' is not supported", a->name);
    }
    return SQ_OK;
}

static sq_status op_shape(imp *I, const sq_onnx_node *n)
{
    val *x = in_val(I, n, 0);
    if (!x) return fail(I, SQ_EFORMAT, "input 0 is missing");
    int64_t d[8];
    int r;
    if (x->kind == V_CONST) {
        r = x->t.ndim;
        for (int i = 0; i < r; i++) d[i] = x->t.dims[i];
    } else {
        const sq_node *nd = node_of(I, x);
        d[0] = I->batch_fixed > 0 ? I->batch_fixed : SYM_N;
        if (x->kind == V_ACT) r = 1 + sample_dims(nd, x->rank, d + 1);
        else { r = 5; d[1] = x->groups; d[2] = nd->c / x->groups; d[3] = nd->h; d[4] = nd->w;
               if (x->kind == V_VIEW5T) { d[1] = nd->c / x->groups; d[2] = x->groups; } }
    }
    int64_t a = attr_i(n, "start", 0), b = attr_i(n, "end", r);
    if (a < 0) a += r;
    if (b < 0) b += r;
    a = clampi(a, 0, r); b = clampi(b, 0, r);
    int64_t cnt = b > a ? b - a : 0;
    val *y = add_val(I, n->out[0], V_CONST);
    tensor_new(&y->t, 0, 1, &cnt);
    for (int64_t i = 0; i < cnt; i++) y->t.i[i] = d[a + i];
    return SQ_OK;
}

static sq_status op_gather(imp *I, const sq_onnx_node *n)
{
    const sq_onnx_tensor *d, *ix;
    sq_status st;
    if ((st = need_const(I, n, 0, &d)) || (st = need_const(I, n, 1, &ix))) return st;
    if (d->ndim != 1 || attr_i(n, "axis", 0) != 0 || !ix->i || ix->ndim > 1)
        return fail(I, SQ_EARG, "Gather is supported on 1-D constants (shape arithmetic) only");
    int64_t cnt = (int64_t)ix->numel;
    val *y = add_val(I, n->out[0], V_CONST);
    tensor_new(&y->t, d->f != NULL, ix->ndim, &cnt);
    for (int64_t i = 0; i < cnt; i++) {
        int64_t k = ix->i[i] < 0 ? ix->i[i] + (int64_t)d->numel : ix->i[i];
        if (k < 0 || k >= (int64_t)d->numel) return fail(I, SQ_EARG, "Gather index out of range");
        if (d->f) y->t.f[i] = d->f[k]; else y->t.i[i] = d->i[k];
    }
    return SQ_OK;
}

static sq_status op_unsqueeze(imp *I, const sq_onnx_node *n, int squeeze)
{
    const sq_onnx_tensor *d;
    sq_status st;
    if ((st = need_const(I, n, 0, &d))) return st;
    int64_t ax[8];
    int k = attr_ints(n, "axes", ax, 8);
    if (k < 0 && in_val(I, n, 1)) {
        const sq_onnx_tensor *t;
        if ((st = need_const(I, n, 1, &t))) return st;
        k = (int)(t->numel < 8 ? t->numel : 8);
        for (int i = 0; i < k; i++) ax[i] = (int64_t)cnum(t, (size_t)i);
    }
    int64_t nd[8];
    int r = 0;
    if (squeeze) {
        for (int i = 0; i < d->ndim; i++) {
            int drop = k < 0 ? d->dims[i] == 1 : 0;
            for (int j = 0; j < k; j++) drop |= (ax[j] < 0 ? ax[j] + d->ndim : ax[j]) == i;
            if (!drop) nd[r++] = d->dims[i];
        }
    } else {
        int out_r = d->ndim + (k < 0 ? 0 : k);
        if (k < 0 || out_r > 8) return fail(I, SQ_EARG, "Unsqueeze needs axes (at most 8 dimensions)");
        int src = 0;
        for (int i = 0; i < out_r; i++) {
            int ins = 0;
            for (int j = 0; j < k; j++) ins |= (ax[j] < 0 ? ax[j] + out_r : ax[j]) == i;
            nd[r++] = ins ? 1 : d->dims[src++];
        }
    }
    val *y = add_val(I, n->out[0], V_CONST);
    tensor_copy(&y->t, d);
    y->t.ndim = r;
    for (int i = 0; i < r; i++) y->t.dims[i] = nd[i];
    return SQ_OK;
}

static sq_status op_cast(imp *I, const sq_onnx_node *n)
{
    val *x = in_val(I, n, 0);
    if (!x) return fail(I, SQ_EFORMAT, "input 0 is missing");
    int64_t to = attr_i(n, "to", 0);
    int tofloat = to == SQ_ONNX_FLOAT || to == SQ_ONNX_DOUBLE || to == SQ_ONNX_FLOAT16;
    if (x->kind != V_CONST) {
        if (to != SQ_ONNX_FLOAT) return fail(I, SQ_EARG, "Cast of a computed tensor is supported to float only");
        act_val(I, n->out[0], x->node, x->rank);
        return SQ_OK;
    }
    val *y = add_val(I, n->out[0], V_CONST);
    x = in_val(I, n, 0);   /* add_val may move the table */
    tensor_new(&y->t, tofloat, x->t.ndim, x->t.dims);
    for (size_t i = 0; i < x->t.numel; i++) {
        if (tofloat) y->t.f[i] = (float)cnum(&x->t, i);
        else y->t.i[i] = x->t.i ? x->t.i[i] : (int64_t)x->t.f[i];
    }
    return SQ_OK;
}

static sq_status op_const_of_shape(imp *I, const sq_onnx_node *n)
{
    const sq_onnx_tensor *s;
    sq_status st;
    if ((st = need_const(I, n, 0, &s))) return st;
    if (!s->i || s->numel > 8) return fail(I, SQ_EARG, "the shape must be int64");
    size_t tot = 1;
    for (size_t i = 0; i < s->numel; i++) {
        if (s->i[i] < 0 || s->i[i] > (1 << 20)) return fail(I, SQ_EARG, "ConstantOfShape of a symbolic or huge shape");
        tot *= (size_t)s->i[i];
        if (tot > (1u << 24)) return fail(I, SQ_EARG, "constant too large");
    }
    const sq_onnx_attr *a = sq_onnx_attr_find(n, "value");
    int isf = !a || !a->t || a->t->f;
    double v = a && a->t && a->t->numel ? cnum(a->t, 0) : 0;
    val *y = add_val(I, n->out[0], V_CONST);
    tensor_new(&y->t, isf, (int)s->numel, s->i);
    for (size_t i = 0; i < tot; i++) { if (isf) y->t.f[i] = (float)v; else y->t.i[i] = (int64_t)v; }
    return SQ_OK;
}

static sq_status fold_binary(imp *I, const sq_onnx_node *n, const sq_onnx_tensor *a, const sq_onnx_tensor *b)
{
    if (!(a->numel == b->numel || a->numel == 1 || b->numel == 1))
        return fail(I, SQ_EARG, "broadcasting between constants of %zu and %zu values is not supported", a->numel, b->numel);
    const sq_onnx_tensor *big = a->numel >= b->numel ? a : b;
    int isf = a->f || b->f;
    char op = n->op[0];
    val *y = add_val(I, n->out[0], V_CONST);
    tensor_new(&y->t, isf, big->ndim, big->dims);
    for (size_t i = 0; i < big->numel; i++) {
        size_t ia = a->numel == 1 ? 0 : i, ib = b->numel == 1 ? 0 : i;
        if (!isf) {
            int64_t p = a->i[ia], q = b->i[ib], r;
            if (p == SYM_N || q == SYM_N) return fail(I, SQ_EARG, "arithmetic on the batch dimension is not supported");
            if (op == 'A') r = p + q; else if (op == 'S') r = p - q; else if (op == 'M') r = p * q;
            else { if (!q) return fail(I, SQ_EARG, "integer division by zero"); r = p / q; if ((p % q) && ((p < 0) != (q < 0))) r--; }
            y->t.i[i] = r;
        } else {
            double p = cnum(a, ia), q = cnum(b, ib);
            y->t.f[i] = (float)(op == 'A' ? p + q : op == 'S' ? p - q : op == 'M' ? p * q : p / q);
        }
    }
    return SQ_OK;
}

/* ---- the walk ---- */

static sq_status map_node(imp *I, const sq_onnx_node *n)
{
    const char *op = n->op;
    if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx"))
        return fail(I, SQ_EARG, "ops of domain '%s' are not supported; supported: %s", n->domain, SUPPORTED);
    if (n->nout < 1) return fail(I, SQ_EFORMAT, "has no output");
    if (!strcmp(op, "Conv")) return op_conv(I, n);
    if (!strcmp(op, "BatchNormalization")) return op_bn(I, n);
    if (!strcmp(op, "Relu")) return op_clip(I, n, 1);
    if (!strcmp(op, "Clip")) return op_clip(I, n, 0);
    if (!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul") || !strcmp(op, "Div")) return op_binary(I, n);
    if (!strcmp(op, "MaxPool")) return op_pool(I, n, 0);
    if (!strcmp(op, "AveragePool")) return op_pool(I, n, 1);
    if (!strcmp(op, "GlobalAveragePool")) return op_gap(I, n, 0);
    if (!strcmp(op, "ReduceMean")) return op_gap(I, n, 1);
    if (!strcmp(op, "Flatten")) return op_flatten(I, n);
    if (!strcmp(op, "Reshape")) return op_reshape(I, n);
    if (!strcmp(op, "Transpose")) return op_transpose(I, n);
    if (!strcmp(op, "Gemm")) return op_linear(I, n, 1);
    if (!strcmp(op, "MatMul")) return op_linear(I, n, 0);
    if (!strcmp(op, "Concat")) return op_concat(I, n);
    if (!strcmp(op, "Split")) return op_split(I, n);
    if (!strcmp(op, "Slice")) return op_slice(I, n);
    if (!strcmp(op, "Dropout") || !strcmp(op, "Identity")) {
        val *x = in_val(I, n, 0);
        if (!x) return fail(I, SQ_EFORMAT, "input 0 is missing");
        if (n->nout > 1 && n->out[1][0]) return fail(I, SQ_EARG, "the mask output of Dropout is not supported");
        val *y = add_val(I, n->out[0], x->kind);
        x = in_val(I, n, 0);
        y->node = x->node; y->rank = x->rank; y->groups = x->groups;
        if (x->kind == V_CONST) tensor_copy(&y->t, &x->t);
        return SQ_OK;
    }
    if (!strcmp(op, "Constant")) return const_from_attr(I, n);
    if (!strcmp(op, "Shape")) return op_shape(I, n);
    if (!strcmp(op, "Gather")) return op_gather(I, n);
    if (!strcmp(op, "Unsqueeze")) return op_unsqueeze(I, n, 0);
    if (!strcmp(op, "Squeeze")) return op_unsqueeze(I, n, 1);
    if (!strcmp(op, "Cast")) return op_cast(I, n);
    if (!strcmp(op, "ConstantOfShape")) return op_const_of_shape(I, n);
    return fail(I, SQ_EARG, "op %s is not supported; supported: " SUPPORTED, op);
}

/* The graph's own normalisation: the input's only consumer a per-channel Sub by a constant,
   followed (optionally) by a Div, or a Div alone. Returns the number of ONNX nodes it covers
   (0: none) with mean/std filled. */
static int find_norm(imp *I, const char *input, int c, float *mean, float *std)
{
    const sq_onnx_graph *g = I->g;
    int first = -1, users = 0;
    for (int i = 0; i < g->nnode; i++)
        for (int k = 0; k < g->node[i].nin; k++)
            if (!strcmp(g->node[i].in[k], input)) { users++; if (first < 0) first = i; }
    if (users != 1 || c > 4) return 0;
    double mv[4] = {0, 0, 0, 0}, sv[4] = {1, 1, 1, 1};
    int covered = 0, at = first;
    const char *cur = input;
    for (int step = 0; step < 2 && at >= 0; step++) {
        const sq_onnx_node *n = &g->node[at];
        int is_sub = !strcmp(n->op, "Sub"), is_div = !strcmp(n->op, "Div");
        if ((!is_sub && !is_div) || (is_sub && step > 0) || n->nin != 2 || strcmp(n->in[0], cur)) break;
        val *k = find(I, n->in[1]);
        double v[4];
        if (!k || k->kind != V_CONST || !k->t.f || !chan_vec(&k->t, 4, c, v)) break;
        for (int i = 0; i < c; i++) {
            if (is_sub) mv[i] = v[i];
            else if (v[i] > 0) sv[i] = v[i];
            else return 0;
        }
        covered++;
        cur = n->out[0];
        if (is_div) break;
        /* the next node must be the Sub's only consumer */
        int nxt = -1, u = 0;
        for (int i = at + 1; i < g->nnode; i++)
            for (int j = 0; j < g->node[i].nin; j++)
                if (!strcmp(g->node[i].in[j], cur)) { u++; if (nxt < 0) nxt = i; }
        at = u == 1 ? nxt : -1;
    }
    for (int i = 0; i < 4; i++) { mean[i] = (float)mv[i]; std[i] = (float)sv[i]; }
    return covered;
}

static sq_status import_graph(imp *I)
{
    const sq_onnx_graph *g = I->g;
    sq_status st;
    I->cur = -1;
    for (int i = 0; i < g->ninit; i++) {
        val *x = add_val(I, g->init[i].name, V_CONST);
        if (!g->init[i].f && !g->init[i].i) return fail(I, SQ_EARG, "initializer of an unsupported type");
        tensor_copy(&x->t, &g->init[i]);
    }
    /* graph inputs */
    int nin = 0;
    if (g->ninput > SQ_IMPORT_MAX_INPUTS) return fail(I, SQ_EARG, "more than %d graph inputs", SQ_IMPORT_MAX_INPUTS);
    for (int k = 0; k < g->ninput; k++) {
        const sq_onnx_value *v = &g->input[k];
        char b[128];
        I->out->input_node[k] = -1;
        if (k > 0 && I->o && k < I->o->nbind && I->o->bind && I->o->bind[k]) {
            val *x = add_val(I, v->name, V_CONST);
            tensor_copy(&x->t, I->o->bind[k]);
            x->input_k = k;
            nin++;
            continue;
        }
        if (v->dtype && v->dtype != SQ_ONNX_FLOAT)
            return fail(I, SQ_EARG, "graph input '%s' is not float32", sq_printable(v->name, b, sizeof b));
        if (v->ndim < 1 || v->ndim > 4)
            return fail(I, SQ_EARG, "graph input '%s' has %d dimensions; sqakd takes (N, C, H, W), (N, C, L), (N, F) "
                        "or (N)", sq_printable(v->name, b, sizeof b), v->ndim);
        int64_t d[4] = {1, 1, 1, 1};
        const int given = I->o && I->o->in_c > 0 && nin == 0;
        int64_t want[3] = {given ? I->o->in_c : 0, given ? I->o->in_h : 0, given ? I->o->in_w : 0};
        for (int i = 1; i < v->ndim; i++) {
            d[i] = v->dims[i];
            if (d[i] < 1) {
                if (!want[i - 1])
                    return fail(I, SQ_EARG, "graph input '%s' has a symbolic dimension %d (%s): give --input CxHxW",
                                sq_printable(v->name, b, sizeof b), i, v->dim_param[i] ? v->dim_param[i] : "?");
                d[i] = want[i - 1];
            } else if (want[i - 1] && want[i - 1] != d[i]) {
                return fail(I, SQ_EARG, "graph input '%s' has dimension %d = %lld, but --input gives %lld",
                            sq_printable(v->name, b, sizeof b), i, (long long)d[i], (long long)want[i - 1]);
            }
            if (d[i] > 65536) return fail(I, SQ_EARG, "graph input dimension %lld is too large", (long long)d[i]);
        }
        if (nin == 0 && v->dims[0] > 0) I->batch_fixed = v->dims[0];
        int id = sq_b_input(I->m, (int)d[1], (int)d[2], (int)d[3]);
        act_val(I, v->name, id, v->ndim);
        I->out->input_node[k] = id;
        nin++;
    }
    if (nin == 0) return fail(I, SQ_EARG, "the graph has no input (besides its initializers): it computes a constant");
    I->out->ninputs = nin;
    /* normalisation at the front, lifted into the checkpoint's mean/std */
    int skip_from = -1, skip_n = 0;
    const int user_norm = I->o && (I->o->has_mean || I->o->has_std);
    for (int i = 0; i < 4; i++) {
        I->out->mean[i] = I->o && I->o->has_mean ? I->o->mean[i] : 0.0f;
        I->out->std[i] = I->o && I->o->has_std ? I->o->std[i] : 1.0f;
    }
    if (nin == 1 && !user_norm && I->m->nodes[0].c <= 3) {
        float mean[4], std[4];
        skip_n = find_norm(I, g->input[0].name, I->m->nodes[0].c, mean, std);
        if (skip_n) {
            for (int i = 0; i < 4; i++) { I->out->mean[i] = mean[i]; I->out->std[i] = std[i]; }
            I->out->norm_from_graph = 1;
            for (int i = 0; i < g->nnode; i++)
                for (int k = 0; k < g->node[i].nin; k++)
                    if (skip_from < 0 && !strcmp(g->node[i].in[k], g->input[0].name)) skip_from = i;
        }
    }
    int skipped = 0;
    for (int i = 0; i < g->nnode; i++) {
        I->cur = i;
        const sq_onnx_node *n = &g->node[i];
        if (skipped < skip_n && i >= skip_from &&
            (!strcmp(n->op, "Sub") || !strcmp(n->op, "Div")) && find(I, n->in[0]) &&
            find(I, n->in[0])->kind == V_ACT && find(I, n->in[0])->node == 0) {
            act_val(I, n->out[0], 0, find(I, n->in[0])->rank);
            skipped++;
            continue;
        }
        if ((st = map_node(I, n))) return st;
        if (I->builder_err[0]) return fail(I, SQ_EARG, "%s", I->builder_err);
        if (I->m->nnodes > 200000) return fail(I, SQ_EARG, "the graph is too large");
    }
    I->cur = -1;
    if (g->noutput < 1) return fail(I, SQ_EFORMAT, "the graph has no output");
    val *o = find(I, g->output[0].name);
    char b[128];
    if (!o || o->kind != V_ACT)
        return fail(I, SQ_EARG, "graph output '%s' is %s", sq_printable(g->output[0].name, b, sizeof b),
                    !o ? "not computed by the graph" : "not a computed tensor (a constant or a 5-D view)");
    const sq_node *on = node_of(I, o);
    /* the output must be the last node: a view of it otherwise (also when the graph only passes
       its input through) */
    if (o->node != I->m->nnodes - 1 || on->op == SQ_NODE_INPUT) view_node(I, o->node, on->c, on->h, on->w);
    I->out->out_ndim = o->rank;
    sample_dims(&I->m->nodes[I->m->nnodes - 1], o->rank, I->out->out_dims);
    return SQ_OK;
}

/* method.md's rule on an arbitrary graph: convolutions quantized except the first; the first and
   the classifier (the last linear layer, or the last convolution when there is none) only with
   --quant-first-last */
static void place_quant(sq_model *m)
{
    int first = -1, lastc = -1, lastl = -1;
    for (int i = 0; i < m->nnodes; i++) {
        sq_node *n = &m->nodes[i];
        n->quantizable = n->first_or_last = 0;
        if (n->op == SQ_NODE_CONV) { if (first < 0) first = i; lastc = i; n->quantizable = 1; }
        if (n->op == SQ_NODE_LINEAR) lastl = i;
    }
    if (first >= 0) { m->nodes[first].quantizable = 0; m->nodes[first].first_or_last = 1; }
    int cls = lastl >= 0 ? lastl : lastc;
    if (cls >= 0 && cls != first) { m->nodes[cls].quantizable = 0; m->nodes[cls].first_or_last = 1; }
}

int sq_is_onnx_path(const char *path)
{
    size_t n = path ? strlen(path) : 0;
    return n > 5 && !strcasecmp(path + n - 5, ".onnx");
}

sq_status sq_onnx_import(const char *path, const sq_import_opts *o, sq_imported *out)
{
    memset(out, 0, sizeof *out);
    sq_onnx_graph *g = NULL;
    sq_status st = sq_onnx_read(path, &g);
    if (st) return st;
    imp I;
    memset(&I, 0, sizeof I);
    I.g = g; I.path = path; I.o = o; I.out = out; I.cur = -1;
    I.m = sq_xcalloc(1, sizeof *I.m);
    snprintf(I.m->arch, sizeof I.m->arch, "graph");
    out->opset = g->opset;
    snprintf(out->producer, sizeof out->producer, "%s", g->producer ? g->producer : "");
    st = import_graph(&I);
    if (!st) {
        sq_model *m = I.m;
        m->in_c = m->nodes[0].c; m->in_h = m->nodes[0].h; m->in_w = m->nodes[0].w;
        const sq_node *last = &m->nodes[m->nnodes - 1];
        m->classes = last->c * last->h * last->w;
        place_quant(m);
        char pb[256];
        st = sq_model_check(m, sq_printable(path, pb, sizeof pb));
    }
    for (int i = 0; i < I.nv; i++) { free(I.v[i]->name); free(I.v[i]->t.f); free(I.v[i]->t.i); free(I.v[i]); }
    free(I.v);
    free(I.ht);
    sq_onnx_free(g);
    out->m = I.m;
    if (st) { sq_imported_free(out); return st; }
    return SQ_OK;
}

sq_status sq_imported_load(const sq_imported *imp_, sq_model *m)
{
    for (int i = 0; i < imp_->ntensors; i++) {
        sq_status st = sq_model_set(m, imp_->names[i], imp_->data[i], imp_->numel[i]);
        if (st) return st;
    }
    return SQ_OK;
}

void sq_imported_free(sq_imported *imp_)
{
    for (int i = 0; i < imp_->ntensors; i++) { free(imp_->names[i]); free(imp_->data[i]); }
    free(imp_->names); free(imp_->data); free(imp_->numel);
    if (imp_->m) sq_model_free(imp_->m);
    memset(imp_, 0, sizeof *imp_);
}
