/* onnx_export.c: a model as an ONNX graph (opset 13): full precision as it is, or a quantized
   student as a standard QDQ graph (export.h says how each quantizer maps). Node by node: the
   graph's tensors are named t<node id>; BatchNorm after a quantized conv, dropout and a flatten
   feeding nothing else are aliases of their input's tensor. */
#include "sqakd/export.h"
#include "sqakd/onnx.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const sq_model *m;
    sq_onnx_graph *g;
    char (*name)[128];   /* each node's output tensor */
    int *rank;           /* its rank: 4 (N, C, H, W) or 2 (N, F) */
    int *alias_of_bn;    /* BN node folded into a quantized conv: 1 */
    int nconst;
    int int_kernels;     /* LSQ inputs as QuantizeLinear(x, s) (sq_export_onnx_ex) */
} ex;

static const char *cname(ex *e, const char *what, char *buf, size_t cap)
{
    snprintf(buf, cap, "c%d_%s", e->nconst++, what);
    return buf;
}

/* a float initializer; returns its name (buf) */
static const char *init_f(ex *e, const char *what, int ndim, const int64_t *dims, const float *v, char *buf, size_t cap)
{
    cname(e, what, buf, cap);
    sq_onnx_add_init(e->g, buf, SQ_ONNX_FLOAT, ndim, dims, v);
    return buf;
}

static const char *init_scalar_f(ex *e, const char *what, float v, char *buf, size_t cap)
{
    return init_f(e, what, 0, NULL, &v, buf, cap);
}

static const char *init_i64(ex *e, const char *what, int n, const int64_t *v, char *buf, size_t cap)
{
    int64_t d[1] = {n};
    cname(e, what, buf, cap);
    sq_onnx_add_init(e->g, buf, SQ_ONNX_INT64, 1, d, v);
    return buf;
}

/* a per-channel constant shaped to broadcast over the tensor: (1, C, 1, 1) or (1, C) */
static const char *init_chan(ex *e, const char *what, int rank, int c, const float *v, char *buf, size_t cap)
{
    int64_t d[4] = {1, c, 1, 1};
    return init_f(e, what, rank, d, v, buf, cap);
}

static sq_onnx_node *op1(ex *e, const char *op, const char *in, const char *out)
{
    const char *i[1] = {in}, *o[1] = {out};
    return sq_onnx_add_node(e->g, op, out, 1, i, 1, o);
}

static sq_onnx_node *op2(ex *e, const char *op, const char *a, const char *b, const char *out)
{
    const char *i[2] = {a, b}, *o[1] = {out};
    return sq_onnx_add_node(e->g, op, out, 2, i, 1, o);
}

static sq_onnx_node *op3(ex *e, const char *op, const char *a, const char *b, const char *c, const char *out)
{
    const char *i[3] = {a, b, c}, *o[1] = {out};
    return sq_onnx_add_node(e->g, op, out, c ? 3 : 2, i, 1, o);
}

static float *host_param(const sq_model *m, int id)
{
    float *h = sq_xmalloc(m->params[id].numel * sizeof(float) + 4);
    m->be->copy_d2h(h, sq_model_param_ptr(m, id), m->params[id].numel * sizeof(float));
    return h;
}

/* the tensor name of node id's input as a rank-2 (N, F) tensor: a Flatten when it is 4-D */
static const char *as_rank2(ex *e, int in, int id, char *buf, size_t cap)
{
    if (e->rank[in] == 2) return e->name[in];
    snprintf(buf, cap, "t%d_flat", id);
    sq_onnx_attr_int(op1(e, "Flatten", e->name[in], buf), "axis", 1);
    return buf;
}

/* the activation quantizer of a quantized layer on tensor x: [Sub l] [Div d] [Mul n]
   QuantizeLinear [Clip] DequantizeLinear; returns the dequantized tensor's name (out) */
static void act_qdq(ex *e, int id, const sq_qgrid *ga, const char *x, char *out, size_t cap)
{
    char cur[128], nxt[128], c1[64], c2[64], c3[64];
    snprintf(cur, sizeof cur, "%s", x);
    if (ga->has_sub) {
        snprintf(nxt, sizeof nxt, "t%d_xsub", id);
        op2(e, "Sub", cur, init_scalar_f(e, "a_sub", ga->sub, c1, sizeof c1), nxt);
        snprintf(cur, sizeof cur, "%s", nxt);
    }
    if (ga->has_div) {
        snprintf(nxt, sizeof nxt, "t%d_xdiv", id);
        op2(e, "Div", cur, init_scalar_f(e, "a_div", ga->div, c1, sizeof c1), nxt);
        snprintf(cur, sizeof cur, "%s", nxt);
    }
    if (ga->has_mul) {
        snprintf(nxt, sizeof nxt, "t%d_xmul", id);
        op2(e, "Mul", cur, init_scalar_f(e, "a_mul", ga->mul, c1, sizeof c1), nxt);
        snprintf(cur, sizeof cur, "%s", nxt);
    }
    const int dt = ga->is_signed ? SQ_ONNX_INT8 : SQ_ONNX_UINT8;
    const int lo = ga->is_signed ? -128 : 0, hi = ga->is_signed ? 127 : 255;
    int64_t zero = 0, cmin = ga->cmin, cmax = ga->cmax;
    cname(e, "a_zp", c2, sizeof c2);
    sq_onnx_add_init(e->g, c2, dt, 0, NULL, &zero);
    snprintf(nxt, sizeof nxt, "t%d_xq", id);
    op3(e, "QuantizeLinear", cur, init_scalar_f(e, "a_qscale", ga->qscale, c1, sizeof c1), c2, nxt);
    snprintf(cur, sizeof cur, "%s", nxt);
    if (ga->cmin != lo || ga->cmax != hi) { /* the b-bit grid inside the 8-bit container */
        char c4[64];
        cname(e, "a_cmin", c3, sizeof c3);
        sq_onnx_add_init(e->g, c3, dt, 0, NULL, &cmin);
        cname(e, "a_cmax", c4, sizeof c4);
        sq_onnx_add_init(e->g, c4, dt, 0, NULL, &cmax);
        snprintf(nxt, sizeof nxt, "t%d_xqc", id);
        op3(e, "Clip", cur, c3, c4, nxt);
        snprintf(cur, sizeof cur, "%s", nxt);
    }
    snprintf(out, cap, "t%d_xdq", id);
    op3(e, "DequantizeLinear", cur, init_scalar_f(e, "a_dqscale", ga->scale, c1, sizeof c1), c2, out);
}

/* a quantized conv or linear: the input's QDQ, the weight's codes through DequantizeLinear
   (per output channel, axis 0; the index container: DequantizeLinear, Sub, Mul by the
   per-channel scales), the folded bias */
static sq_status emit_qlayer(ex *e, int id, const char *x)
{
    const sq_model *m = e->m;
    const sq_node *n = &m->nodes[id];
    sq_qlayer l;
    sq_status st = sq_qlayer_build(m, id, 1, 0, &l);
    if (st) return st;
    if (!e->int_kernels && !l.ga.has_sub && !l.ga.has_div && (!l.ga.has_mul || l.ga.mul == 1.0f) &&
        l.ga.qscale == 1.0f) {
        /* a grid whose codes are x itself (dorefa at 1 bit: v = x n, n = 1): onnxruntime drops a
           Mul or Div by 1 and would then fuse as below; Mul by 2 and QuantizeLinear scale 2 give
           rint(fl(2 x) / 2) = rint(x) exactly (powers of two) and stay */
        l.ga.has_mul = 1;
        l.ga.mul = 2.0f;
        l.ga.qscale = 2.0f;
    }
    if (!e->int_kernels && !l.ga.has_div && l.ga.qscale != 1.0f) {
        /* LSQ: x / s by a Div, then QuantizeLinear with scale 1: the same codes (QuantizeLinear
           divides by its scale the same way), but no DequantizeLinear -> Conv -> QuantizeLinear
           pattern, which onnxruntime would fuse into an integer kernel that rounds its own way */
        l.ga.has_div = 1;
        l.ga.div = l.ga.qscale;
        l.ga.qscale = 1.0f;
    }
    char xdq[128], wq[128], ws[128], wz[128], wdq[128], bn[128];
    act_qdq(e, id, &l.ga, x, xdq, sizeof xdq);
    const sq_param *pw = &m->params[n->pw];
    int64_t d[4];
    for (int i = 0; i < pw->ndim; i++) d[i] = pw->shape[i];
    int64_t *codes = sq_xmalloc(pw->numel * sizeof(int64_t));
    const int ix = l.gw.index_container;
    /* the index container: j = (k - cmin) / code_step in uint8 (k = 2 j - 255) */
    for (size_t i = 0; i < pw->numel; i++) codes[i] = ix ? (l.codes[i] - l.gw.cmin) / l.gw.code_step : l.codes[i];
    snprintf(wq, sizeof wq, "%s.weight_q", n->name);
    sq_onnx_add_init(e->g, wq, ix ? SQ_ONNX_UINT8 : SQ_ONNX_INT8, pw->ndim, d, codes);
    free(codes);
    int64_t dc[1] = {n->c};
    snprintf(wdq, sizeof wdq, "%s.weight_dq", n->name);
    if (ix) {
        /* k = DequantizeLinear(j, 2, 127) - 1 = 2 (j - 127) - 1, exact in float (|k| <= 255),
           then the per-output-channel scale: fl(k scale[o]), as DequantizeLinear computes it */
        char c1[64], k2[128], kk[128];
        int64_t zp127 = 127, ds[4] = {n->c, 1, 1, 1};
        snprintf(wz, sizeof wz, "%s.weight_zero_point", n->name);
        sq_onnx_add_init(e->g, wz, SQ_ONNX_UINT8, 0, NULL, &zp127);
        snprintf(k2, sizeof k2, "%s.weight_2k", n->name);
        op3(e, "DequantizeLinear", wq, init_scalar_f(e, "w_two", 2.0f, c1, sizeof c1), wz, k2);
        snprintf(kk, sizeof kk, "%s.weight_code", n->name);
        op2(e, "Sub", k2, init_scalar_f(e, "w_one", 1.0f, c1, sizeof c1), kk);
        snprintf(ws, sizeof ws, "%s.weight_scale", n->name);
        sq_onnx_add_init(e->g, ws, SQ_ONNX_FLOAT, pw->ndim, ds, l.wscale);
        op2(e, "Mul", kk, ws, wdq);
    } else {
        snprintf(ws, sizeof ws, "%s.weight_scale", n->name);
        sq_onnx_add_init(e->g, ws, SQ_ONNX_FLOAT, 1, dc, l.wscale);
        int64_t *zp = sq_xcalloc(n->c, sizeof(int64_t));
        snprintf(wz, sizeof wz, "%s.weight_zero_point", n->name);
        sq_onnx_add_init(e->g, wz, SQ_ONNX_INT8, 1, dc, zp);
        free(zp);
        sq_onnx_attr_int(op3(e, "DequantizeLinear", wq, ws, wz, wdq), "axis", 0);
    }
    const char *b = NULL;
    if (l.has_bias) {
        snprintf(bn, sizeof bn, "%s.bias_folded", n->name);
        sq_onnx_add_init(e->g, bn, SQ_ONNX_FLOAT, 1, dc, l.bias);
        b = bn;
    }
    if (n->op == SQ_NODE_CONV) {
        sq_onnx_node *c = op3(e, "Conv", xdq, wdq, b, e->name[id]);
        const int kh = n->kh ? n->kh : n->k, kw = n->kw ? n->kw : n->k;
        int64_t k2[2] = {kh, kw}, s2[2] = {n->stride, n->stride}, p4[4] = {n->pad, n->pad, n->pad, n->pad};
        sq_onnx_attr_ints(c, "kernel_shape", 2, k2);
        sq_onnx_attr_ints(c, "strides", 2, s2);
        sq_onnx_attr_ints(c, "pads", 4, p4);
        sq_onnx_attr_int(c, "group", n->groups ? n->groups : 1);
        e->rank[id] = 4;
    } else {
        sq_onnx_attr_int(op3(e, "Gemm", xdq, wdq, b, e->name[id]), "transB", 1);
        e->rank[id] = 2;
    }
    if (l.bn >= 0) { /* the BN is inside the weight scale and bias now */
        e->alias_of_bn[l.bn] = 1;
        memcpy(e->name[l.bn], e->name[id], sizeof e->name[id]);
        e->rank[l.bn] = e->rank[id];
    }
    sq_qlayer_free(&l);
    return SQ_OK;
}

static sq_status emit_node(ex *e, int id, const sq_ckpt_meta *meta)
{
    const sq_model *m = e->m;
    const sq_node *n = &m->nodes[id];
    const char *x = n->in0 >= 0 ? e->name[n->in0] : NULL;
    char *y = e->name[id];
    char c1[64], c2[64], c3[64], c4[64], t[128];
    const int r = n->in0 >= 0 ? e->rank[n->in0] : 4;
    e->rank[id] = r;
    switch (n->op) {
    case SQ_NODE_INPUT: {
        /* the checkpoint's normalisation, as eval applies it: (pixel - mean[c]) / std[c] */
        int64_t d[4] = {-1, n->c, n->h, n->w};
        sq_onnx_add_input(e->g, "input", SQ_ONNX_FLOAT, 4, d);
        op2(e, "Sub", "input", init_chan(e, "mean", 4, n->c, meta->mean, c1, sizeof c1), "input_centered");
        op2(e, "Div", "input_centered", init_chan(e, "std", 4, n->c, meta->std, c2, sizeof c2), y);
        return SQ_OK;
    }
    case SQ_NODE_CONV:
    case SQ_NODE_LINEAR: {
        const char *in = n->op == SQ_NODE_LINEAR ? as_rank2(e, n->in0, id, t, sizeof t) : x;
        if (n->quant) return emit_qlayer(e, id, in);
        const sq_param *pw = &m->params[n->pw];
        int64_t d[4];
        for (int i = 0; i < pw->ndim; i++) d[i] = pw->shape[i];
        float *w = host_param(m, n->pw);
        init_f(e, "weight", pw->ndim, d, w, c1, sizeof c1);
        free(w);
        const char *b = NULL;
        if (n->pb >= 0) {
            int64_t db[1] = {n->c};
            float *bv = host_param(m, n->pb);
            b = init_f(e, "bias", 1, db, bv, c2, sizeof c2);
            free(bv);
        }
        if (n->op == SQ_NODE_CONV) {
            sq_onnx_node *c = op3(e, "Conv", in, c1, b, y);
            const int kh = n->kh ? n->kh : n->k, kw = n->kw ? n->kw : n->k;
            int64_t k2[2] = {kh, kw}, s2[2] = {n->stride, n->stride}, p4[4] = {n->pad, n->pad, n->pad, n->pad};
            sq_onnx_attr_ints(c, "kernel_shape", 2, k2);
            sq_onnx_attr_ints(c, "strides", 2, s2);
            sq_onnx_attr_ints(c, "pads", 4, p4);
            sq_onnx_attr_int(c, "group", n->groups ? n->groups : 1);
        } else {
            sq_onnx_attr_int(op3(e, "Gemm", in, c1, b, y), "transB", 1);
            e->rank[id] = 2;
        }
        return SQ_OK;
    }
    case SQ_NODE_BN: {
        if (e->alias_of_bn[id]) return SQ_OK; /* folded (emit_qlayer named it) */
        int64_t d[1] = {n->c};
        int ids[4] = {n->pw, n->pb, n->prm, n->prv};
        char nm[4][64];
        for (int i = 0; i < 4; i++) {
            float *v = host_param(m, ids[i]);
            init_f(e, i == 0 ? "bn_gamma" : i == 1 ? "bn_beta" : i == 2 ? "bn_mean" : "bn_var", 1, d, v, nm[i], sizeof nm[i]);
            free(v);
        }
        const char *in[5] = {x, nm[0], nm[1], nm[2], nm[3]}, *out[1] = {y};
        sq_onnx_attr_float(sq_onnx_add_node(e->g, "BatchNormalization", y, 5, in, 1, out), "epsilon", 1e-5f);
        return SQ_OK;
    }
    case SQ_NODE_ACT:
        if (n->act == SQ_ACT_RELU) op1(e, "Relu", x, y);
        else op3(e, "Clip", x, init_scalar_f(e, "zero", 0.0f, c1, sizeof c1), init_scalar_f(e, "six", 6.0f, c2, sizeof c2), y);
        return SQ_OK;
    case SQ_NODE_POOL: {
        /* the zoo's square windows (kh = 0), or the general ones of imported graphs */
        const int g = n->kh > 0;
        int64_t k2[2] = {g ? n->kh : n->k, g ? n->kw : n->k}, s2[2] = {g ? n->sh : n->stride, g ? n->sw : n->stride};
        int64_t p4[4] = {g ? n->pad_t : n->pad, g ? n->pad_l : n->pad, g ? n->pad_b : n->pad, g ? n->pad_r : n->pad};
        sq_onnx_node *p = op1(e, n->pool == SQ_POOL_MAX ? "MaxPool" : "AveragePool", x, y);
        sq_onnx_attr_ints(p, "kernel_shape", 2, k2);
        sq_onnx_attr_ints(p, "strides", 2, s2);
        sq_onnx_attr_ints(p, "pads", 4, p4);
        sq_onnx_attr_int(p, "ceil_mode", g ? n->ceil_mode : 0);
        if (n->pool == SQ_POOL_AVG) sq_onnx_attr_int(p, "count_include_pad", g ? n->count_include_pad : 1);
        return SQ_OK;
    }
    case SQ_NODE_GAP:
        op1(e, "GlobalAveragePool", x, y);
        e->rank[id] = 4;
        return SQ_OK;
    case SQ_NODE_ADD:
        op2(e, "Add", x, e->name[n->in1], y);
        return SQ_OK;
    case SQ_NODE_SHORTCUT_A: {
        /* x[:, :, ::2, ::2], then (k - c)/2 zero channels before and the rest after */
        const int c = m->nodes[n->in0].c, padc = (n->c - c) / 2;
        int64_t st[2] = {0, 0}, en[2] = {INT64_MAX, INT64_MAX}, ax[2] = {2, 3}, sp[2] = {2, 2};
        char a[64], b[64], s[64];
        init_i64(e, "starts", 2, st, c1, sizeof c1);
        init_i64(e, "ends", 2, en, c2, sizeof c2);
        init_i64(e, "axes", 2, ax, a, sizeof a);
        init_i64(e, "steps", 2, sp, s, sizeof s);
        snprintf(t, sizeof t, "t%d_sub", id);
        const char *in[5] = {x, c1, c2, a, s}, *out[1] = {t};
        sq_onnx_add_node(e->g, "Slice", t, 5, in, 1, out);
        int64_t pads[8] = {0, padc, 0, 0, 0, n->c - c - padc, 0, 0};
        init_i64(e, "pads", 8, pads, b, sizeof b);
        op3(e, "Pad", t, b, init_scalar_f(e, "pad_value", 0.0f, c3, sizeof c3), y);
        return SQ_OK;
    }
    case SQ_NODE_CONCAT:
        sq_onnx_attr_int(op2(e, "Concat", x, e->name[n->in1], y), "axis", 1);
        return SQ_OK;
    case SQ_NODE_SHUFFLE: {
        /* (N, g, C/g, H, W) -> swap the two channel axes -> (N, C, H, W); 0 copies N */
        int64_t s5[5] = {0, n->groups, n->c / n->groups, n->h, n->w}, s4[4] = {0, n->c, n->h, n->w};
        int64_t perm[5] = {0, 2, 1, 3, 4};
        char a[128], b[128];
        snprintf(a, sizeof a, "t%d_r5", id);
        snprintf(b, sizeof b, "t%d_tr", id);
        op2(e, "Reshape", x, init_i64(e, "shape5", 5, s5, c1, sizeof c1), a);
        sq_onnx_attr_ints(op1(e, "Transpose", a, b), "perm", 5, perm);
        op2(e, "Reshape", b, init_i64(e, "shape4", 4, s4, c2, sizeof c2), y);
        return SQ_OK;
    }
    case SQ_NODE_DROPOUT: /* inference: the identity */
        snprintf(y, 128, "%s", x);
        return SQ_OK;
    case SQ_NODE_FLATTEN:
        if (r == 2) snprintf(y, 128, "%s", x);
        else sq_onnx_attr_int(op1(e, "Flatten", x, y), "axis", 1);
        e->rank[id] = 2;
        return SQ_OK;
    case SQ_NODE_PAD: {
        int64_t pads[8] = {0, 0, n->pad_t, n->pad_l, 0, 0, n->pad_b, n->pad_r};
        op3(e, "Pad", x, init_i64(e, "pads", 8, pads, c1, sizeof c1),
            init_scalar_f(e, "pad_value", n->pad_value, c2, sizeof c2), y);
        return SQ_OK;
    }
    case SQ_NODE_CLIP:
        op3(e, "Clip", x, init_scalar_f(e, "lo", n->lo, c1, sizeof c1), init_scalar_f(e, "hi", n->hi, c2, sizeof c2), y);
        return SQ_OK;
    case SQ_NODE_AFFINE: {
        /* y = a[ch] x + b[ch]: Mul then Add by constants shaped (1, C, 1, 1) (or (1, C)) */
        float *a = host_param(m, n->pw), *b = host_param(m, n->pb);
        snprintf(t, sizeof t, "t%d_mul", id);
        op2(e, "Mul", x, init_chan(e, "affine_a", r, n->c, a, c1, sizeof c1), t);
        op2(e, "Add", t, init_chan(e, "affine_b", r, n->c, b, c2, sizeof c2), y);
        free(a);
        free(b);
        return SQ_OK;
    }
    case SQ_NODE_SLICE: {
        int64_t st[1] = {n->c0}, en[1] = {n->c0 + n->c}, ax[1] = {1};
        init_i64(e, "starts", 1, st, c1, sizeof c1);
        init_i64(e, "ends", 1, en, c2, sizeof c2);
        init_i64(e, "axes", 1, ax, c3, sizeof c3);
        const char *in[4] = {x, c1, c2, c3}, *out[1] = {y};
        sq_onnx_add_node(e->g, "Slice", y, 4, in, 1, out);
        (void)c4;
        return SQ_OK;
    }
    }
    sq_set_error("node %d (%s) has an op the exporter does not know (%d)", id, n->name, (int)n->op);
    return SQ_EARG;
}

sq_status sq_export_onnx(const sq_model *m, const sq_ckpt_meta *meta, const char *path)
{
    return sq_export_onnx_ex(m, meta, 0, path);
}

sq_status sq_export_onnx_ex(const sq_model *m, const sq_ckpt_meta *meta, int int_kernels, const char *path)
{
    ex e;
    memset(&e, 0, sizeof e);
    e.m = m;
    e.int_kernels = int_kernels;
    e.g = sq_onnx_new(m->arch, 13);
    e.name = sq_xcalloc(m->nnodes, sizeof *e.name);
    e.rank = sq_xcalloc(m->nnodes, sizeof *e.rank);
    e.alias_of_bn = sq_xcalloc(m->nnodes, sizeof *e.alias_of_bn);
    for (int i = 0; i < m->nnodes; i++) snprintf(e.name[i], sizeof e.name[i], "t%d", i);
    sq_status st = SQ_OK;
    for (int i = 0; i < m->nnodes && !st; i++) st = emit_node(&e, i, meta);
    if (!st) {
        const int last = m->nnodes - 1;
        int64_t d[2] = {-1, m->classes};
        op1(&e, "Identity", e.name[last], "logits");
        sq_onnx_add_output(e.g, "logits", SQ_ONNX_FLOAT, 2, d);
        st = sq_onnx_write(e.g, path);
    }
    sq_onnx_free(e.g);
    free(e.name);
    free(e.rank);
    free(e.alias_of_bn);
    return st;
}
