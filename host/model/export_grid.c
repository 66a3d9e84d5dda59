/* export_grid.c: each quantizer's levels as scale * code with integer codes in an 8-bit container
   (or, for the 8-bit weights of ewgs / pact / dorefa, the index j of the code k = 2 j - 255;
   export.h has the table), the weight codes of a tensor, and a quantized layer ready to export
   (codes, per-channel scales with the EWGS output scale and a following BatchNorm folded in). */
#include "sqakd/export.h"
#include "sqakd/quant_math.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* distance in units in the last place between two finite floats (ordered as integers) */
static int64_t ulps(float a, float b)
{
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    int64_t oa = ia < 0 ? (int64_t)INT32_MIN - ia : ia, ob = ib < 0 ? (int64_t)INT32_MIN - ib : ib;
    return oa > ob ? oa - ob : ob - oa;
}

/* the student's level of code k (quant_math.h's map-back, the same float operations) */
static float student_level(const sq_quant_cfg *cfg, const float *qp, int k)
{
    const int n = sq_qm_levels(cfg->bits) - 1;
    if (cfg->kind == SQ_QUANT_LSQ) return (float)k * qp[0];
    if (cfg->role == SQ_QROLE_WEIGHT) { /* ewgs, dorefa, pact weights: 2 q - 1, k = 2 j - n */
        const int j = (k + n) / 2;
        return 2.0f * ((float)j / (float)n) - 1.0f;
    }
    if (cfg->kind == SQ_QUANT_PACT) return qp[0] * ((float)k / (float)n);
    return (float)k / (float)n; /* ewgs, dorefa activations: q = j / n */
}

int sq_qgrid_student_levels(const sq_quant_cfg *cfg, const float *qp, const sq_qgrid *g,
                            float *level, int cap)
{
    int c = 0;
    for (int k = g->cmin; k <= g->cmax && c < cap; k += g->code_step) level[c++] = student_level(cfg, qp, k);
    return c;
}

/* the largest ulp distance between fl(s * k) and the student's levels */
static int64_t level_err(const sq_quant_cfg *cfg, const float *qp, const sq_qgrid *g, float s)
{
    int64_t worst = 0;
    for (int k = g->cmin; k <= g->cmax; k += g->code_step) {
        int64_t d = ulps((float)k * s, student_level(cfg, qp, k));
        if (d > worst) worst = d;
    }
    return worst;
}

/* The DQ scale: the nominal one, or the nearest float within 16 ulps of it whose products with
   the codes give the student's levels exactly (most grids have none: j * fl(1/n) != fl(j / n)
   for some j; then the nominal scale, its error recorded). */
static void pick_scale(const sq_quant_cfg *cfg, const float *qp, sq_qgrid *g, float nominal)
{
    float best = nominal;
    int64_t err = level_err(cfg, qp, g, nominal);
    for (int d = 1; d <= 16 && err; d++) {
        float up = nominal, dn = nominal;
        for (int i = 0; i < d; i++) {
            up = nextafterf(up, INFINITY);
            dn = nextafterf(dn, 0.0f);
        }
        if (!level_err(cfg, qp, g, up)) { best = up; err = 0; }
        else if (!level_err(cfg, qp, g, dn)) { best = dn; err = 0; }
    }
    g->scale = best;
    g->level_ulps = err > 1000000 ? 1000000 : (int)err;
}

static const char *role_name(const sq_quant_cfg *cfg) { return cfg->role == SQ_QROLE_WEIGHT ? "weight" : "activation"; }

sq_status sq_qgrid_derive(const sq_quant_cfg *cfg, const float *qp, sq_qgrid *g)
{
    return sq_qgrid_derive_ex(cfg, qp, 0, g);
}

sq_status sq_qgrid_derive_ex(const sq_quant_cfg *cfg, const float *qp, int wide, sq_qgrid *g)
{
    memset(g, 0, sizeof *g);
    if (sq_quant_cfg_check(cfg)) return SQ_EARG;
    const char *kn = sq_quant_kind_name(cfg->kind);
    if (cfg->kind == SQ_QUANT_NONE) {
        sq_set_error("a tensor without a quantizer has no integer grid");
        return SQ_EARG;
    }
    const int b = cfg->bits, n = sq_qm_levels(b) - 1;
    g->bits = b;
    g->code_step = 1;
    g->qscale = 1.0f;
    const int np = sq_quant_nparams(cfg);
    for (int i = 0; i < np; i++)
        if (!isfinite(qp[i])) {
            sq_set_error("%s %s quantizer parameter %d is not finite", kn, role_name(cfg), i);
            return SQ_EARG;
        }
    if (cfg->kind == SQ_QUANT_LSQ) {
        float qn, qpos;
        sq_qm_lsq_bounds(b, cfg->is_signed, &qn, &qpos);
        if (!(qp[0] > 0.0f)) {
            sq_set_error("lsq %s step s = %g is not positive: no grid", role_name(cfg), qp[0]);
            return SQ_EARG;
        }
        g->is_signed = cfg->is_signed;
        g->cmin = -(int)qn;
        g->cmax = (int)qpos;
        g->qscale = qp[0]; /* QuantizeLinear divides x / s as the student does */
        pick_scale(cfg, qp, g, qp[0]);
        return SQ_OK;
    }
    if (cfg->role == SQ_QROLE_WEIGHT) {
        /* ewgs, dorefa, pact (DoReFa weights): levels (2 j - n) / n, codes k = 2 j - n; at 8 bits
           k spans -255..255: the uint8 container holds j, the graph rebuilds k (export.h) */
        if (cfg->kind == SQ_QUANT_EWGS && !(qp[1] > qp[0])) {
            sq_set_error("ewgs weight interval [%g, %g] is empty", qp[0], qp[1]);
            return SQ_EARG;
        }
        g->index_container = b == 8 && !wide;
        g->is_signed = !g->index_container;
        g->cmin = -n;
        g->cmax = n;
        g->code_step = 2;
        pick_scale(cfg, qp, g, 1.0f / (float)n);
        return SQ_OK;
    }
    /* activations on [0, 1] grids */
    g->is_signed = 0;
    g->cmin = 0;
    g->cmax = n;
    g->has_mul = 1;
    g->mul = (float)n;
    switch (cfg->kind) {
    case SQ_QUANT_EWGS:
        if (!(qp[1] > qp[0])) {
            sq_set_error("ewgs activation interval [%g, %g] is empty", qp[0], qp[1]);
            return SQ_EARG;
        }
        g->has_sub = 1;
        g->sub = qp[0];
        g->has_div = 1;
        g->div = qp[1] - qp[0]; /* the student's u - l, rounded as it rounds it */
        pick_scale(cfg, qp, g, 1.0f / (float)n);
        break;
    case SQ_QUANT_PACT:
        if (!(qp[0] > 0.0f)) {
            sq_set_error("pact clipping level alpha = %g is not positive: no grid", qp[0]);
            return SQ_EARG;
        }
        g->has_div = 1;
        g->div = qp[0];
        pick_scale(cfg, qp, g, qp[0] / (float)n);
        break;
    default: /* dorefa */
        pick_scale(cfg, qp, g, 1.0f / (float)n);
        break;
    }
    return SQ_OK;
}

sq_status sq_qgrid_weight_codes(const sq_quant_cfg *cfg, const float *qp, const sq_qgrid *g,
                                const float *w, size_t nw, int *codes)
{
    sq_qm_ctx k;
    sq_qm_ctx_init(&k, cfg, nw);
    float maxabs = 0.0f;
    if (sq_qm_needs_maxabs(&k)) /* as the CPU backend: max |tanh(w)| over the tensor */
        for (size_t i = 0; i < nw; i++) {
            float t = fabsf(tanhf(w[i]));
            if (t > maxabs) maxabs = t;
        }
    const int np = sq_qm_nparams(&k);
    sq_qm_ctx_load(&k, np > 0 ? qp[0] : 0.0f, np > 1 ? qp[1] : 0.0f, maxabs);
    const int n = k.levels - 1;
    for (size_t i = 0; i < nw; i++) {
        const float y = sq_qm_fwd(&k, w[i]);
        /* back to the code: y = k s (lsq) or (2 j - n)/n */
        const double v = cfg->kind == SQ_QUANT_LSQ ? (double)y / qp[0] : (double)y * n;
        const double r = rint(v);
        const int c = (int)r;
        if (!(fabs(v - r) < 1e-3) || c < g->cmin || c > g->cmax || (c - g->cmin) % g->code_step) {
            sq_set_error("weight element %zu quantizes to %g, off the %s grid", i, y,
                         sq_quant_kind_name(cfg->kind));
            return SQ_ENUMERIC;
        }
        codes[i] = c;
    }
    return SQ_OK;
}

static sq_status get_param(const sq_model *m, int id, float *host)
{
    m->be->copy_d2h(host, sq_model_param_ptr(m, id), m->params[id].numel * sizeof(float));
    return SQ_OK;
}

/* the BN node that directly follows conv id as its only consumer, or -1 */
static int bn_after(const sq_model *m, int id)
{
    if (m->nodes[id].op != SQ_NODE_CONV) return -1;
    int found = -1, uses = 0;
    for (int i = 0; i < m->nnodes; i++) {
        const sq_node *n = &m->nodes[i];
        uses += (n->in0 == id) + (n->in1 == id);
        if (n->op == SQ_NODE_BN && n->in0 == id && !n->folded) found = i;
    }
    return uses == 1 ? found : -1;
}

sq_status sq_qlayer_build(const sq_model *m, int id, int flip, int wide, sq_qlayer *l)
{
    memset(l, 0, sizeof *l);
    l->node = id;
    l->bn = -1;
    const sq_node *nd = &m->nodes[id];
    if (!nd->quant) {
        sq_set_error("layer %s is not quantized", nd->name);
        return SQ_EARG;
    }
    /* per-channel weights (quant.h): every output channel has its own parameters and grid; the
       grids differ only in their scale (LSQ's s per channel; EWGS and DoReFa weights have one
       grid for every channel), so l->gw is channel 0's and the scales go into wscale */
    const int wch = sq_quant_channels(&nd->qw), npw = sq_quant_nparams(&nd->qw);
    sq_quant_cfg cw = nd->qw;
    cw.channels = 0;
    float *qwall = sq_xcalloc((size_t)(npw ? npw : 1) * wch, sizeof(float));
    float qw[SQ_QUANT_MAX_PARAMS] = {0}, qa[SQ_QUANT_MAX_PARAMS] = {0}, s = 1.0f;
    if (nd->qpw >= 0) m->be->copy_d2h(qwall, sq_model_param_ptr(m, nd->qpw), (size_t)npw * wch * sizeof(float));
    for (int j = 0; j < npw; j++) qw[j] = qwall[j * wch];
    if (nd->qpa >= 0) m->be->copy_d2h(qa, sq_model_param_ptr(m, nd->qpa), sq_quant_nparams(&nd->qa) * sizeof(float));
    if (nd->qps >= 0) m->be->copy_d2h(&s, sq_model_param_ptr(m, nd->qps), sizeof s);
    sq_status st;
    if ((st = sq_qgrid_derive_ex(&cw, qw, wide, &l->gw)) || (st = sq_qgrid_derive(&nd->qa, qa, &l->ga))) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", sq_last_error());
        sq_set_error("%s (layer %s%s)", msg, nd->name, wch > 1 ? ", output channel 0" : "");
        free(qwall);
        return st;
    }
    if (!isfinite(s)) {
        sq_set_error("layer %s: output scale %g is not finite", nd->name, s);
        free(qwall);
        return SQ_EARG;
    }
    const int co = nd->c;
    const size_t nw = m->params[nd->pw].numel, per = nw / (size_t)co;
    float *w = sq_xmalloc(nw * sizeof(float));
    get_param(m, nd->pw, w);
    l->codes = sq_xmalloc(nw * sizeof(int));
    l->wscale = sq_xmalloc(co * sizeof(float));
    l->bias = sq_xcalloc(co, sizeof(float));
    float *gscale = sq_xmalloc(co * sizeof(float)); /* each output channel's grid scale */
    int bad_ch = -1;
    if (wch > 1) {
        for (int c = 0; c < co && !st; c++) {
            float pc[SQ_QUANT_MAX_PARAMS] = {0};
            for (int j = 0; j < npw; j++) pc[j] = qwall[j * wch + c];
            sq_qgrid gc;
            if (!(st = sq_qgrid_derive_ex(&cw, pc, wide, &gc)))
                st = sq_qgrid_weight_codes(&cw, pc, &gc, w + (size_t)c * per, per, l->codes + (size_t)c * per);
            gscale[c] = gc.scale;
            if (gc.level_ulps > l->gw.level_ulps) l->gw.level_ulps = gc.level_ulps;
            if (st) bad_ch = c;
        }
    } else {
        st = sq_qgrid_weight_codes(&cw, qw, &l->gw, w, nw, l->codes);
        for (int c = 0; c < co; c++) gscale[c] = l->gw.scale;
    }
    free(w);
    free(qwall);
    if (st) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", sq_last_error());
        if (bad_ch >= 0) sq_set_error("%s (layer %s, output channel %d)", msg, nd->name, bad_ch);
        else sq_set_error("%s (layer %s)", msg, nd->name);
        free(gscale);
        sq_qlayer_free(l);
        return st;
    }
    /* y = |s| (W_q x + b), then BN: gamma (y - mean) / sqrt(var + eps) + beta, in double */
    const double as = fabs((double)s);
    float *b = NULL, *gam = NULL, *bet = NULL, *mu = NULL, *var = NULL;
    if (nd->pb >= 0) { b = sq_xmalloc(co * sizeof(float)); get_param(m, nd->pb, b); }
    l->bn = bn_after(m, id);
    if (l->bn >= 0) {
        const sq_node *bn = &m->nodes[l->bn];
        gam = sq_xmalloc(4 * co * sizeof(float));
        bet = gam + co; mu = bet + co; var = mu + co;
        get_param(m, bn->pw, gam); get_param(m, bn->pb, bet);
        get_param(m, bn->prm, mu); get_param(m, bn->prv, var);
    }
    l->has_bias = b || l->bn >= 0;
    for (int c = 0; c < co; c++) {
        double f = as, bias = b ? as * b[c] : 0.0;
        if (gam) {
            const double g = gam[c] / sqrt((double)var[c] + 1e-5);
            f *= g;
            bias = (bias - mu[c]) * g + bet[c];
        }
        /* a negative factor: negate the channel's codes instead, where they stay in int8 */
        int *cc = l->codes + (size_t)c * per;
        if (flip && f < 0) {
            int fits = 1;
            /* the index container holds -k (an odd code of the symmetric grid) as 255 - j */
            for (size_t i = 0; i < per && fits && !l->gw.index_container; i++) fits = -cc[i] >= -128 && -cc[i] <= 127;
            if (fits) {
                for (size_t i = 0; i < per; i++) cc[i] = -cc[i];
                f = -f;
            }
        }
        l->wscale[c] = (float)(f * gscale[c]);
        l->bias[c] = (float)bias;
    }
    free(b);
    free(gam);
    free(gscale);
    return SQ_OK;
}

void sq_qlayer_free(sq_qlayer *l)
{
    free(l->codes);
    free(l->wscale);
    free(l->bias);
    l->codes = NULL;
    l->wscale = l->bias = NULL;
}
