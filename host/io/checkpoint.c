/* checkpoint.c: model <-> safetensors, with PyTorch names and sqakd metadata. Metadata strings
   quoted in errors go through sq_printable. */
#include "sqakd/checkpoint.h"
#include "sqakd/safetensors.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define META_MAX 24

typedef struct { char key[32]; char val[160]; } kv;

static void put(kv *t, int *n, const char *k, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#include <stdarg.h>
static void put(kv *t, int *n, const char *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    snprintf(t[*n].key, sizeof t[*n].key, "%s", k);
    vsnprintf(t[*n].val, sizeof t[*n].val, fmt, ap);
    va_end(ap);
    (*n)++;
}

static int meta_to_kv(const sq_ckpt_meta *m, kv *t)
{
    int n = 0;
    put(t, &n, "format", "sqakd");
    put(t, &n, "format_version", "1");
    put(t, &n, "arch", "%s", m->arch);
    put(t, &n, "input_shape", "%d,%d,%d", m->in_c, m->in_h, m->in_w);
    put(t, &n, "classes", "%d", m->classes);
    put(t, &n, "norm_mean", "%.6g,%.6g,%.6g", m->mean[0], m->mean[1], m->mean[2]);
    put(t, &n, "norm_std", "%.6g,%.6g,%.6g", m->std[0], m->std[1], m->std[2]);
    put(t, &n, "dataset", "%s", m->dataset);
    put(t, &n, "epoch", "%d", m->epoch);
    put(t, &n, "step", "%" PRId64, m->step);
    put(t, &n, "role", "%s", m->role[0] ? m->role : "teacher");
    put(t, &n, "quantizer", "%s", sq_quant_kind_name(m->q.kind));
    put(t, &n, "wbits", "%d", m->q.kind ? m->q.wbits : 32);
    put(t, &n, "abits", "%d", m->q.kind ? m->q.abits : 32);
    put(t, &n, "delta_w", "%.9g", m->q.delta_w);
    put(t, &n, "delta_a", "%.9g", m->q.delta_a);
    put(t, &n, "quant_first_last", "%d", m->q.first_last);
    put(t, &n, "metric", "%.6f", m->metric);
    return n;
}

static sq_status meta_from_file(const sq_st_file *f, const char *path, sq_ckpt_meta *m)
{
    memset(m, 0, sizeof *m);
    const char *fmt = sq_st_meta(f, "format");
    const char *arch = sq_st_meta(f, "arch"), *shape = sq_st_meta(f, "input_shape");
    const char *classes = sq_st_meta(f, "classes");
    if (!fmt || strcmp(fmt, "sqakd") || !arch || !shape || !classes) {
        sq_set_error("%s: not an sqakd checkpoint (metadata 'format', 'arch', 'input_shape' or 'classes' "
                     "missing); convert PyTorch weights with tools/load_checkpoint.py --from-torch", path);
        return SQ_EFORMAT;
    }
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    if (sscanf(shape, "%d,%d,%d", &m->in_c, &m->in_h, &m->in_w) != 3 || sscanf(classes, "%d", &m->classes) != 1) {
        char ps[128], pc[128];
        sq_set_error("%s: bad input_shape '%s' or classes '%s' in metadata", path,
                     sq_printable(shape, ps, sizeof ps), sq_printable(classes, pc, sizeof pc));
        return SQ_EFORMAT;
    }
    const char *s;
    for (int i = 0; i < 4; i++) { m->mean[i] = 0; m->std[i] = 1; }
    if ((s = sq_st_meta(f, "norm_mean"))) sscanf(s, "%f,%f,%f", &m->mean[0], &m->mean[1], &m->mean[2]);
    if ((s = sq_st_meta(f, "norm_std"))) sscanf(s, "%f,%f,%f", &m->std[0], &m->std[1], &m->std[2]);
    if ((s = sq_st_meta(f, "dataset"))) snprintf(m->dataset, sizeof m->dataset, "%s", s);
    if ((s = sq_st_meta(f, "epoch"))) m->epoch = atoi(s);
    if ((s = sq_st_meta(f, "step"))) m->step = strtoll(s, NULL, 10);
    if ((s = sq_st_meta(f, "role"))) snprintf(m->role, sizeof m->role, "%s", s);
    if ((s = sq_st_meta(f, "metric"))) m->metric = atof(s);
    if ((s = sq_st_meta(f, "quantizer"))) {
        int k = sq_quant_kind_parse(s);
        if (k < 0) {
            char pq[128];
            sq_set_error("%s: unknown quantizer '%s' in metadata", path, sq_printable(s, pq, sizeof pq));
            return SQ_EFORMAT;
        }
        m->q.kind = (sq_quant_kind)k;
    }
    if ((s = sq_st_meta(f, "wbits"))) m->q.wbits = atoi(s);
    if ((s = sq_st_meta(f, "abits"))) m->q.abits = atoi(s);
    if ((s = sq_st_meta(f, "delta_w"))) m->q.delta_w = (float)atof(s);
    if ((s = sq_st_meta(f, "delta_a"))) m->q.delta_a = (float)atof(s);
    if ((s = sq_st_meta(f, "quant_first_last"))) m->q.first_last = atoi(s);
    return SQ_OK;
}

sq_status sq_ckpt_save(const sq_model *m, const sq_ckpt_meta *meta, const char *path)
{
    int nbn = 0;
    for (int i = 0; i < m->nnodes; i++) nbn += m->nodes[i].op == SQ_NODE_BN;
    int nq = 0;
    for (int i = 0; i < m->nnodes; i++) nq += m->nodes[i].quant;
    int nt = m->nparams + nbn + 2 * nq;
    char (*dnames)[112] = sq_xcalloc(nq ? 2 * nq : 1, sizeof *dnames);
    float *deltas = sq_xcalloc(nq ? 2 * nq : 1, sizeof *deltas);
    sq_st_tensor *t = sq_xcalloc(nt, sizeof *t);
    char (*names)[112] = sq_xcalloc(nbn ? nbn : 1, sizeof *names);
    int64_t *tracked = sq_xcalloc(nbn ? nbn : 1, sizeof *tracked);
    float *host = sq_xmalloc((m->n_train + m->n_buf + m->n_quant + 1) * sizeof(float));
    float *hp = host, *hb = host + m->n_train, *hq = hb + m->n_buf;
    m->be->copy_d2h(hp, m->p, m->n_train * sizeof(float));
    m->be->copy_d2h(hb, m->buf, m->n_buf * sizeof(float));
    if (m->n_quant) m->be->copy_d2h(hq, m->qp, m->n_quant * sizeof(float));
    int k = 0, b = 0;
    /* state_dict order: walk nodes so each module's tensors stay together */
    for (int i = 0; i < m->nparams; i++) {
        const sq_param *p = &m->params[i];
        sq_st_tensor *x = &t[k++];
        x->name = (char *)p->name;
        x->dtype = SQ_ST_F32;
        x->ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) x->shape[d] = p->shape[d];
        x->data = (p->kind == SQ_PT_TRAIN ? hp : p->kind == SQ_PT_BUFFER ? hb : hq) + p->off;
        x->nbytes = p->numel * sizeof(float);
        if (p->kind == SQ_PT_BUFFER && strstr(p->name, ".running_var")) {
            /* after each BN's running_var comes its num_batches_tracked (PyTorch order) */
            for (int j = 0; j < m->nnodes; j++) {
                const sq_node *nd = &m->nodes[j];
                if (nd->op != SQ_NODE_BN || nd->prv != i) continue;
                snprintf(names[b], sizeof names[b], "%s.num_batches_tracked", nd->name);
                tracked[b] = nd->bn_tracked;
                sq_st_tensor *y = &t[k++];
                y->name = names[b];
                y->dtype = SQ_ST_I64;
                y->ndim = 0;
                y->data = &tracked[b];
                y->nbytes = sizeof(int64_t);
                b++;
            }
        }
    }
    /* per-layer EWGS deltas under the reference's buffer names */
    for (int j = 0, d = 0; j < m->nnodes; j++) {
        const sq_node *nd = &m->nodes[j];
        if (!nd->quant) continue;
        for (int r = 0; r < 2; r++, d++) {
            snprintf(dnames[d], sizeof dnames[d], "%s.bkwd_scaling_factor%s", nd->name, r ? "A" : "W");
            deltas[d] = r ? nd->qa.delta : nd->qw.delta;
            sq_st_tensor *y = &t[k++];
            y->name = dnames[d];
            y->dtype = SQ_ST_F32;
            y->ndim = 0;
            y->data = &deltas[d];
            y->nbytes = sizeof(float);
        }
    }
    kv meta_kv[META_MAX];
    int nm = meta_to_kv(meta, meta_kv);
    sq_st_kv mk[META_MAX];
    for (int i = 0; i < nm; i++) { mk[i].key = meta_kv[i].key; mk[i].value = meta_kv[i].val; }
    sq_st_file f = {.ntensors = k, .tensors = t, .nmeta = nm, .meta = mk, .blob = NULL};
    sq_status st = sq_st_write(path, &f);
    free(t); free(names); free(tracked); free(host); free(dnames); free(deltas);
    return st;
}

sq_status sq_ckpt_read_meta(const char *path, sq_ckpt_meta *meta)
{
    sq_st_file f;
    sq_status st = sq_st_read(path, &f);
    if (st) return st;
    st = meta_from_file(&f, path, meta);
    sq_st_free(&f);
    return st;
}

sq_status sq_ckpt_load_into(sq_model *m, const char *path, int strict)
{
    sq_st_file f;
    sq_status st = sq_st_read(path, &f);
    if (st) return st;
    for (int i = 0; i < m->nparams && st == SQ_OK; i++) {
        const sq_param *p = &m->params[i];
        const sq_st_tensor *x = sq_st_find(&f, p->name);
        if (!x) {
            if (strict && !(p->kind == SQ_PT_QUANT && strict == 1)) {
                sq_set_error("%s: tensor '%s' missing (checkpoint of another model?)", path, p->name);
                st = SQ_EFORMAT;
            }
            continue;
        }
        int ok = x->dtype == SQ_ST_F32 && x->ndim == p->ndim;
        for (int d = 0; ok && d < p->ndim; d++) ok = x->shape[d] == p->shape[d];
        if (!ok) {
            sq_set_error("%s: tensor '%s' has dtype %s and a shape that does not match model %s",
                         path, p->name, sq_st_dtype_name(x->dtype), m->arch);
            st = SQ_EFORMAT;
            break;
        }
        const float *v = x->data;
        for (size_t j = 0; j < p->numel; j++)
            if (v[j] != v[j] || v[j] - v[j] != 0) {
                sq_set_error("%s: tensor '%s' holds a non-finite value at element %zu", path, p->name, j);
                st = SQ_ENUMERIC;
                break;
            }
        if (st) break;
        m->be->copy_h2d(sq_model_param_ptr(m, i), x->data, p->numel * sizeof(float));
    }
    for (int j = 0; j < m->nnodes && st == SQ_OK; j++) {
        sq_node *nd = &m->nodes[j];
        if (nd->op != SQ_NODE_BN) continue;
        char name[112];
        snprintf(name, sizeof name, "%s.num_batches_tracked", nd->name);
        const sq_st_tensor *x = sq_st_find(&f, name);
        if (x && x->dtype == SQ_ST_I64 && x->nbytes == 8) memcpy(&nd->bn_tracked, x->data, 8);
    }
    for (int j = 0; j < m->nnodes && st == SQ_OK; j++) {
        sq_node *nd = &m->nodes[j];
        if (!nd->quant) continue;
        for (int r = 0; r < 2; r++) {
            char name[112];
            snprintf(name, sizeof name, "%s.bkwd_scaling_factor%s", nd->name, r ? "A" : "W");
            const sq_st_tensor *x = sq_st_find(&f, name);
            float d;
            if (!x || x->dtype != SQ_ST_F32 || x->nbytes != 4) continue;
            memcpy(&d, x->data, 4);
            if (!(d >= 0 && d < 1e30f)) {
                sq_set_error("%s: %s = %g is not a valid delta (finite, >= 0)", path, name, d);
                st = SQ_EFORMAT;
                break;
            }
            if (r) nd->qa.delta = d; else nd->qw.delta = d;
        }
    }
    sq_st_free(&f);
    return st;
}

sq_status sq_ckpt_open_model(const char *path, const sq_backend *be, int batch, int with_grad,
                             sq_model **out, sq_ckpt_meta *meta)
{
    *out = NULL;
    sq_status st = sq_ckpt_read_meta(path, meta);
    if (st) return st;
    sq_model *m;
    if ((st = sq_model_create(meta->arch, meta->in_c, meta->in_h, meta->in_w, meta->classes, &m))) return st;
    if ((st = sq_model_set_quant(m, &meta->q)) || (st = sq_model_setup(m, be, batch, with_grad)) ||
        (st = sq_ckpt_load_into(m, path, 2))) {
        sq_model_free(m);
        return st;
    }
    *out = m;
    return SQ_OK;
}

sq_status sq_state_save(const char *path, const sq_backend *be, const sq_state_item *items, int n,
                        const sq_ckpt_meta *meta, uint64_t extra_u64)
{
    sq_st_tensor *t = sq_xcalloc(n, sizeof *t);
    float **bufs = sq_xcalloc(n, sizeof *bufs);
    for (int i = 0; i < n; i++) {
        bufs[i] = sq_xmalloc(items[i].numel * sizeof(float) + 4);
        if (items[i].numel) be->copy_d2h(bufs[i], items[i].dev, items[i].numel * sizeof(float));
        t[i].name = (char *)items[i].name;
        t[i].dtype = SQ_ST_F32;
        t[i].ndim = 1;
        t[i].shape[0] = (int64_t)items[i].numel;
        t[i].data = bufs[i];
        t[i].nbytes = items[i].numel * sizeof(float);
    }
    kv meta_kv[META_MAX + 1];
    int nm = meta_to_kv(meta, meta_kv);
    put(meta_kv, &nm, "extra", "%" PRIu64, extra_u64);
    sq_st_kv mk[META_MAX + 1];
    for (int i = 0; i < nm; i++) { mk[i].key = meta_kv[i].key; mk[i].value = meta_kv[i].val; }
    sq_st_file f = {.ntensors = n, .tensors = t, .nmeta = nm, .meta = mk, .blob = NULL};
    sq_status st = sq_st_write(path, &f);
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs); free(t);
    return st;
}

sq_status sq_state_load(const char *path, const sq_backend *be, const sq_state_item *items, int n,
                        sq_ckpt_meta *meta, uint64_t *extra_u64)
{
    sq_st_file f;
    sq_status st = sq_st_read(path, &f);
    if (st) return st;
    if ((st = meta_from_file(&f, path, meta))) { sq_st_free(&f); return st; }
    const char *e = sq_st_meta(&f, "extra");
    *extra_u64 = e ? strtoull(e, NULL, 10) : 0;
    for (int i = 0; i < n; i++) {
        const sq_st_tensor *x = sq_st_find(&f, items[i].name);
        if (!x || x->dtype != SQ_ST_F32 || x->nbytes != items[i].numel * sizeof(float)) {
            sq_set_error("%s: training state '%s' missing or of the wrong size (was it written by another "
                         "model or quantizer?)", path, items[i].name);
            st = SQ_EFORMAT;
            break;
        }
        if (items[i].numel) be->copy_h2d(items[i].dev, x->data, x->nbytes);
    }
    sq_st_free(&f);
    return st;
}
