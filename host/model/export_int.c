/* export_int.c: a quantized student as integer codes packed at their bit-widths, with scales, in
   safetensors (--format int). The layout, for an embedded runtime, is README's "Integer export":
   per quantized layer L
     L.weight.codes  U8   the level indices u in [0, 2^wbits - 1], packed LSB-first: element i
                          (the weight's C order) occupies bits [i b, i b + b) of the byte stream
     L.weight.shape  I64  the weight's shape
     L.weight.map    I32  {bits, code_mul, code_add}: code = u code_mul + code_add
     L.weight.scale  F32  (c_out): weight[o, ...] = scale[o] code (EWGS |s| and a following
                          BatchNorm's gamma / sqrt(var + eps) folded in)
     L.bias          F32  (c_out): the folded bias (zeros when the layer and its BN have none)
     L.input.quant   F32  {sub, div, mul, qscale, dqscale}: the input's code
                          j = clamp(rint(((x - sub) / div) mul / qscale), jmin, jmax) (each
                          operation rounded to float, rint half to even), its value dqscale j
     L.input.range   I32  {bits, jmin, jmax}
   and every other tensor of the checkpoint in float32 under its own name, except the BatchNorms
   folded into a layer. */
#include "sqakd/export.h"
#include "sqakd/safetensors.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char name[112];
    void *data;
} owned;

sq_status sq_export_int(const sq_model *m, const sq_ckpt_meta *meta, const char *path)
{
    if (m->qopts.kind == SQ_QUANT_NONE) {
        sq_set_error("model %s is full precision: no integer codes to write", m->arch);
        return SQ_EARG;
    }
    int nq = 0;
    for (int i = 0; i < m->nnodes; i++) nq += m->nodes[i].quant;
    const int cap = m->nparams + 7 * nq + 1;
    sq_st_tensor *t = sq_xcalloc(cap, sizeof *t);
    owned *own = sq_xcalloc(cap, sizeof *own);
    int *skip = sq_xcalloc(m->nparams, sizeof *skip); /* params replaced by the layers' tensors */
    int k = 0;
    sq_status st = SQ_OK;
    char layers[4096] = "";
    for (int i = 0; i < m->nnodes && !st; i++) {
        const sq_node *n = &m->nodes[i];
        if (!n->quant) continue;
        sq_qlayer l;
        if ((st = sq_qlayer_build(m, i, 0, 1, &l))) break;
        const sq_param *pw = &m->params[n->pw];
        skip[n->pw] = 1;
        if (n->pb >= 0) skip[n->pb] = 1;
        if (n->qpw >= 0) for (int j = 0; j < sq_quant_nparams(&n->qw); j++) skip[n->qpw + j] = 1;
        if (n->qpa >= 0) for (int j = 0; j < sq_quant_nparams(&n->qa); j++) skip[n->qpa + j] = 1;
        if (n->qps >= 0) skip[n->qps] = 1;
        if (l.bn >= 0) {
            const sq_node *bn = &m->nodes[l.bn];
            skip[bn->pw] = skip[bn->pb] = skip[bn->prm] = skip[bn->prv] = 1;
        }
        snprintf(layers + strlen(layers), sizeof layers - strlen(layers), "%s%s", layers[0] ? "," : "", n->name);
        /* level index u = (code - code_add) / code_mul in [0, 2^b - 1] */
        const int b = l.gw.bits, mul = l.gw.code_step, add = l.gw.cmin;
        const size_t nbytes = (pw->numel * (size_t)b + 7) / 8;
        uint8_t *packed = sq_xcalloc(nbytes ? nbytes : 1, 1);
        for (size_t e = 0; e < pw->numel; e++) {
            const unsigned u = (unsigned)((l.codes[e] - add) / mul);
            for (int bit = 0; bit < b; bit++)
                if (u >> bit & 1u) {
                    const size_t pos = e * (size_t)b + bit;
                    packed[pos / 8] |= (uint8_t)(1u << (pos % 8));
                }
        }
        int64_t *shape = sq_xmalloc(4 * sizeof(int64_t));
        for (int d = 0; d < pw->ndim; d++) shape[d] = pw->shape[d];
        int32_t *map = sq_xmalloc(3 * sizeof(int32_t));
        map[0] = b; map[1] = mul; map[2] = add;
        float *quant = sq_xmalloc(5 * sizeof(float));
        quant[0] = l.ga.has_sub ? l.ga.sub : 0.0f;
        quant[1] = l.ga.has_div ? l.ga.div : 1.0f;
        quant[2] = l.ga.has_mul ? l.ga.mul : 1.0f;
        quant[3] = l.ga.qscale;
        quant[4] = l.ga.scale;
        int32_t *range = sq_xmalloc(3 * sizeof(int32_t));
        range[0] = l.ga.bits; range[1] = l.ga.cmin; range[2] = l.ga.cmax;
        struct { const char *leaf; sq_st_dtype dt; int64_t len; void *data; size_t nb; } parts[7] = {
            {"weight.codes", SQ_ST_U8, (int64_t)nbytes, packed, nbytes},
            {"weight.shape", SQ_ST_I64, pw->ndim, shape, pw->ndim * sizeof(int64_t)},
            {"weight.map", SQ_ST_I32, 3, map, 3 * sizeof(int32_t)},
            {"weight.scale", SQ_ST_F32, n->c, l.wscale, n->c * sizeof(float)},
            {"bias", SQ_ST_F32, n->c, l.bias, n->c * sizeof(float)},
            {"input.quant", SQ_ST_F32, 5, quant, 5 * sizeof(float)},
            {"input.range", SQ_ST_I32, 3, range, 3 * sizeof(int32_t)},
        };
        for (int p = 0; p < 7; p++) {
            snprintf(own[k].name, sizeof own[k].name, "%s.%s", n->name, parts[p].leaf);
            own[k].data = parts[p].data;
            t[k].name = own[k].name;
            t[k].dtype = parts[p].dt;
            t[k].ndim = 1;
            t[k].shape[0] = parts[p].len;
            t[k].data = parts[p].data;
            t[k].nbytes = parts[p].nb;
            k++;
        }
        free(l.codes); /* wscale and bias are owned by the tensors now */
    }
    for (int i = 0; i < m->nparams && !st; i++) {
        const sq_param *p = &m->params[i];
        if (skip[i]) continue;
        float *h = sq_xmalloc(p->numel * sizeof(float) + 4);
        m->be->copy_d2h(h, sq_model_param_ptr(m, i), p->numel * sizeof(float));
        own[k].data = h;
        t[k].name = (char *)p->name;
        t[k].dtype = SQ_ST_F32;
        t[k].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) t[k].shape[d] = p->shape[d];
        t[k].data = h;
        t[k].nbytes = p->numel * sizeof(float);
        k++;
    }
    if (!st) {
        char shape[64], mean[96], sd[96], wb[8], ab[8];
        snprintf(shape, sizeof shape, "%d,%d,%d", m->in_c, m->in_h, m->in_w);
        snprintf(mean, sizeof mean, "%.9g,%.9g,%.9g", meta->mean[0], meta->mean[1], meta->mean[2]);
        snprintf(sd, sizeof sd, "%.9g,%.9g,%.9g", meta->std[0], meta->std[1], meta->std[2]);
        snprintf(wb, sizeof wb, "%d", meta->q.wbits);
        snprintf(ab, sizeof ab, "%d", meta->q.abits);
        char classes[16];
        snprintf(classes, sizeof classes, "%d", m->classes);
        sq_st_kv kv[] = {
            {"format", "sqakd-int"}, {"format_version", "1"}, {"arch", (char *)m->arch},
            {"input_shape", shape}, {"classes", classes}, {"norm_mean", mean}, {"norm_std", sd},
            {"quantizer", (char *)sq_quant_kind_name(meta->q.kind)}, {"wbits", wb}, {"abits", ab},
            {"quantized_layers", layers}, {"graph", NULL}, {"graph", NULL},
        };
        /* a model that is not in the zoo carries its graph, as its checkpoint does (model.h);
           per-layer bit-widths (each layer's weight.map and input.range hold its own) their map */
        char *graph = strcmp(m->arch, "graph") ? NULL : sq_model_graph_json(m);
        int nkv = (int)(sizeof kv / sizeof kv[0]) - 2;
        if (meta->q.bits_map) kv[nkv++] = (sq_st_kv){"bits_map", (char *)meta->q.bits_map};
        if (graph) kv[nkv++] = (sq_st_kv){"graph", graph};
        sq_st_file f = {.ntensors = k, .tensors = t, .nmeta = nkv, .meta = kv};
        st = sq_st_write(path, &f);
        free(graph);
    }
    for (int i = 0; i < k; i++) free(own[i].data);
    free(own);
    free(t);
    free(skip);
    return st;
}
