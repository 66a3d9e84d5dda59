/* checkpoint.c: model <-> safetensors, with PyTorch names and sqakd metadata. */
#include "sqakd/checkpoint.h"
#include "sqakd/data.h"
#include "sqakd/safetensors.h"
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define META_MAX 32

/* a metadata entry; long values (the run configuration) point outside instead of being copied */
typedef struct { char key[32]; char val[160]; const char *ext; } kv;

static void put(kv *t, int *n, const char *k, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#include <stdarg.h>
static void put(kv *t, int *n, const char *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    snprintf(t[*n].key, sizeof t[*n].key, "%s", k);
    vsnprintf(t[*n].val, sizeof t[*n].val, fmt, ap);
    t[*n].ext = NULL;
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
    if (m->q.per_channel) put(t, &n, "quant_per_channel", "1");
    if (m->q.kind && m->q.bits_map) { /* the map itself, so that the checkpoint is self-contained */
        put(t, &n, "quant_bits_map", "%s", "");
        t[n - 1].ext = m->q.bits_map;
    }
    put(t, &n, "metric", "%.6f", m->metric);
    return n;
}

/* metadata value: a whole decimal integer in [lo, hi] */
static int meta_int(const char *s, long long lo, long long hi, long long *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* metadata value: a finite number */
static int meta_num(const char *s, double *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno == ERANGE || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* "a,b,c": exactly three finite numbers */
static int meta_vec3(const char *s, float v[3])
{
    char buf[160];
    if (!s || strlen(s) >= sizeof buf) return -1;
    snprintf(buf, sizeof buf, "%s", s);
    char *save = NULL, *tok = strtok_r(buf, ",", &save);
    for (int i = 0; i < 3; i++, tok = strtok_r(NULL, ",", &save)) {
        double d;
        if (!tok || meta_num(tok, &d) || fabs(d) > 1e30) return -1;
        v[i] = (float)d;
    }
    return tok ? -1 : 0;
}

/* printable ASCII only (names that reach terminals, file names and error messages) */
static int meta_plain(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f) return 0;
    return 1;
}

static sq_status bad_meta(const char *path, const char *key, const char *val, const char *want)
{
    char shown[64];
    sq_printable(val ? val : "", shown, sizeof shown);
    sq_set_error("%s: metadata '%s' is '%s'%s: expected %s (a damaged or hand-edited checkpoint?)", path, key, shown,
                 val ? "" : " (missing)", want);
    return SQ_EFORMAT;
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
    if (!meta_plain(arch) || strlen(arch) >= sizeof m->arch || !*arch)
        return bad_meta(path, "arch", arch, "a model name (see 'sqakd models')");
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    char extra;
    if (sscanf(shape, "%d,%d,%d%c", &m->in_c, &m->in_h, &m->in_w, &extra) != 3 || m->in_c < 1 || m->in_c > 4 ||
        m->in_h < 1 || m->in_h > 8192 || m->in_w < 1 || m->in_w > 8192)
        return bad_meta(path, "input_shape", shape, "C,H,W with C in 1..4 and H, W in 1..8192");
    long long v;
    if (meta_int(classes, 1, SQ_MAX_CLASSES, &v)) return bad_meta(path, "classes", classes, "an integer in 1..1000");
    m->classes = (int)v;
    const char *s;
    for (int i = 0; i < 4; i++) { m->mean[i] = 0; m->std[i] = 1; }
    if ((s = sq_st_meta(f, "norm_mean")) && meta_vec3(s, m->mean))
        return bad_meta(path, "norm_mean", s, "three finite numbers 'a,b,c'");
    if ((s = sq_st_meta(f, "norm_std")) && (meta_vec3(s, m->std) || !(m->std[0] > 0 && m->std[1] > 0 && m->std[2] > 0)))
        return bad_meta(path, "norm_std", s, "three finite numbers > 0 'a,b,c'");
    if ((s = sq_st_meta(f, "dataset"))) {
        if (!meta_plain(s) || strlen(s) >= sizeof m->dataset) return bad_meta(path, "dataset", s, "a printable name");
        snprintf(m->dataset, sizeof m->dataset, "%s", s);
    }
    if ((s = sq_st_meta(f, "epoch"))) {
        if (meta_int(s, 0, 100000000, &v)) return bad_meta(path, "epoch", s, "an integer >= 0");
        m->epoch = (int)v;
    }
    if ((s = sq_st_meta(f, "step"))) {
        if (meta_int(s, 0, INT64_MAX, &v)) return bad_meta(path, "step", s, "an integer >= 0");
        m->step = v;
    }
    if ((s = sq_st_meta(f, "role"))) {
        if (strcmp(s, "teacher") && strcmp(s, "student") && strcmp(s, "qat"))
            return bad_meta(path, "role", s, "teacher, student or qat");
        snprintf(m->role, sizeof m->role, "%s", s);
    }
    if ((s = sq_st_meta(f, "metric")) && meta_num(s, &m->metric)) return bad_meta(path, "metric", s, "a finite number");
    if ((s = sq_st_meta(f, "quantizer"))) {
        int k = sq_quant_kind_parse(s);
        if (k < 0) return bad_meta(path, "quantizer", s, "none, ewgs, pact, lsq or dorefa");
        m->q.kind = (sq_quant_kind)k;
    }
    /* bits: 32 marks a full-precision model; a quantized one has 1..8 */
    const char *keys[2] = {"wbits", "abits"};
    int *bits[2] = {&m->q.wbits, &m->q.abits};
    for (int i = 0; i < 2; i++) {
        if (!(s = sq_st_meta(f, keys[i]))) continue;
        if (m->q.kind == SQ_QUANT_NONE ? meta_int(s, 32, 32, &v) : meta_int(s, 1, 8, &v))
            return bad_meta(path, keys[i], s, m->q.kind == SQ_QUANT_NONE ? "32 (quantizer 'none': a full-precision model)"
                                                                        : "an integer in 1..8");
        *bits[i] = (int)v;
    }
    if (m->q.kind != SQ_QUANT_NONE && (!m->q.wbits || !m->q.abits))
        return bad_meta(path, m->q.wbits ? "abits" : "wbits", NULL, "the bit-width of a quantized model");
    const char *dkeys[2] = {"delta_w", "delta_a"};
    float *deltas[2] = {&m->q.delta_w, &m->q.delta_a};
    for (int i = 0; i < 2; i++) {
        double d;
        if (!(s = sq_st_meta(f, dkeys[i]))) continue;
        if (meta_num(s, &d) || d < 0 || d > 1e30) return bad_meta(path, dkeys[i], s, "a finite number >= 0");
        *deltas[i] = (float)d;
    }
    if ((s = sq_st_meta(f, "quant_first_last"))) {
        if (meta_int(s, 0, 1, &v)) return bad_meta(path, "quant_first_last", s, "0 or 1");
        m->q.first_last = (int)v;
    }
    if ((s = sq_st_meta(f, "quant_per_channel"))) {
        if (meta_int(s, 0, 1, &v)) return bad_meta(path, "quant_per_channel", s, "0 or 1");
        m->q.per_channel = (int)v;
    }
    if ((s = sq_st_meta(f, "quant_bits_map"))) {
        char what[600];
        snprintf(what, sizeof what, "%s: metadata quant_bits_map", path);
        if (sq_bits_map_canonical(s, strlen(s), what, &m->q.bits_map)) return SQ_EFORMAT;
    }
    return SQ_OK;
}

/* every tensor of a checkpoint of m, in PyTorch's state_dict order, with room for `spare` more */
typedef struct {
    sq_st_tensor *t;
    int k;
    char (*dnames)[112], (*names)[112];
    float *deltas, *host;
    int64_t *tracked;
} ckpt_tensors;

static void collect_tensors(const sq_model *m, int spare, ckpt_tensors *c)
{
    int nbn = 0;
    for (int i = 0; i < m->nnodes; i++) nbn += m->nodes[i].op == SQ_NODE_BN;
    int nq = 0;
    for (int i = 0; i < m->nnodes; i++) nq += m->nodes[i].quant;
    int nt = m->nparams + nbn + 2 * nq + spare;
    c->dnames = sq_xcalloc(nq ? 2 * nq : 1, sizeof *c->dnames);
    c->deltas = sq_xcalloc(nq ? 2 * nq : 1, sizeof *c->deltas);
    c->t = sq_xcalloc(nt ? nt : 1, sizeof *c->t);
    c->names = sq_xcalloc(nbn ? nbn : 1, sizeof *c->names);
    c->tracked = sq_xcalloc(nbn ? nbn : 1, sizeof *c->tracked);
    c->host = sq_xmalloc((m->n_train + m->n_buf + m->n_quant + 1) * sizeof(float));
    float *hp = c->host, *hb = c->host + m->n_train, *hq = hb + m->n_buf;
    m->be->copy_d2h(hp, m->p, m->n_train * sizeof(float));
    m->be->copy_d2h(hb, m->buf, m->n_buf * sizeof(float));
    if (m->n_quant) m->be->copy_d2h(hq, m->qp, m->n_quant * sizeof(float));
    int k = 0, b = 0;
    /* state_dict order: walk nodes so each module's tensors stay together */
    for (int i = 0; i < m->nparams; i++) {
        const sq_param *p = &m->params[i];
        sq_st_tensor *x = &c->t[k++];
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
                snprintf(c->names[b], sizeof c->names[b], "%s.num_batches_tracked", nd->name);
                c->tracked[b] = nd->bn_tracked;
                sq_st_tensor *y = &c->t[k++];
                y->name = c->names[b];
                y->dtype = SQ_ST_I64;
                y->ndim = 0;
                y->data = &c->tracked[b];
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
            snprintf(c->dnames[d], sizeof c->dnames[d], "%s.bkwd_scaling_factor%s", nd->name, r ? "A" : "W");
            c->deltas[d] = r ? nd->qa.delta : nd->qw.delta;
            sq_st_tensor *y = &c->t[k++];
            y->name = c->dnames[d];
            y->dtype = SQ_ST_F32;
            y->ndim = 0;
            y->data = &c->deltas[d];
            y->nbytes = sizeof(float);
        }
    }
    c->k = k;
}

static void collect_free(ckpt_tensors *c)
{
    free(c->t); free(c->names); free(c->tracked); free(c->host); free(c->dnames); free(c->deltas);
}

static sq_status write_with_meta(const char *path, const sq_st_tensor *t, int k, const kv *meta_kv, int nm)
{
    sq_st_kv mk[META_MAX];
    for (int i = 0; i < nm; i++) {
        mk[i].key = (char *)meta_kv[i].key;
        mk[i].value = (char *)(meta_kv[i].ext ? meta_kv[i].ext : meta_kv[i].val);
    }
    sq_st_file f = {.ntensors = k, .tensors = (sq_st_tensor *)t, .nmeta = nm, .meta = mk, .blob = NULL};
    return sq_st_write(path, &f);
}

static void put_config(kv *t, int *n, const char *run_config)
{
    if (!run_config) return;
    put(t, n, "run_config", "%s", "");
    t[*n - 1].ext = run_config;
}

/* a model that is not in the zoo carries its graph (model.h: sq_model_graph_json); the caller
   frees *json */
static void put_graph(kv *t, int *n, const sq_model *m, char **json)
{
    *json = NULL;
    if (strcmp(m->arch, "graph")) return;
    *json = sq_model_graph_json(m);
    put(t, n, "graph", "%s", "");
    t[*n - 1].ext = *json;
}

sq_status sq_ckpt_save_cfg(const sq_model *m, const sq_ckpt_meta *meta, const char *run_config, const char *path)
{
    ckpt_tensors c;
    collect_tensors(m, 0, &c);
    kv meta_kv[META_MAX];
    int nm = meta_to_kv(meta, meta_kv);
    put_config(meta_kv, &nm, run_config);
    char *graph;
    put_graph(meta_kv, &nm, m, &graph);
    sq_status st = write_with_meta(path, c.t, c.k, meta_kv, nm);
    free(graph);
    collect_free(&c);
    return st;
}

sq_status sq_ckpt_save(const sq_model *m, const sq_ckpt_meta *meta, const char *path)
{
    return sq_ckpt_save_cfg(m, meta, NULL, path);
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

sq_status sq_ckpt_create_model(const char *path, const sq_ckpt_meta *meta, sq_model **out)
{
    *out = NULL;
    if (strcmp(meta->arch, "graph"))
        return sq_model_create(meta->arch, meta->in_c, meta->in_h, meta->in_w, meta->classes, out);
    sq_st_file f;
    sq_status st = sq_st_read(path, &f);
    if (st) return st;
    const char *g = sq_st_meta(&f, "graph");
    char pb[256];
    sq_printable(path, pb, sizeof pb);
    if (!g) {
        sq_st_free(&f);
        sq_set_error("%s: a checkpoint of arch 'graph' without its 'graph' metadata", pb);
        return SQ_EFORMAT;
    }
    st = sq_model_from_graph_json(g, pb, out);
    sq_st_free(&f);
    if (st) return st;
    sq_model *m = *out;
    if (m->in_c != meta->in_c || m->in_h != meta->in_h || m->in_w != meta->in_w || m->classes != meta->classes) {
        sq_set_error("%s: the stored graph takes %dx%dx%d and gives %d outputs, but the metadata says %dx%dx%d and %d",
                     pb, m->in_c, m->in_h, m->in_w, m->classes, meta->in_c, meta->in_h, meta->in_w, meta->classes);
        sq_model_free(m);
        *out = NULL;
        return SQ_EFORMAT;
    }
    return SQ_OK;
}

sq_status sq_ckpt_open_model(const char *path, const sq_backend *be, int batch, int with_grad,
                             sq_model **out, sq_ckpt_meta *meta)
{
    *out = NULL;
    sq_status st = sq_ckpt_read_meta(path, meta);
    if (st) return st;
    sq_model *m;
    if ((st = sq_ckpt_create_model(path, meta, &m))) return st;
    if ((st = sq_model_set_quant(m, &meta->q)) || (st = sq_model_setup(m, be, batch, with_grad)) ||
        (st = sq_ckpt_load_into(m, path, 2))) {
        sq_model_free(m);
        return st;
    }
    *out = m;
    return SQ_OK;
}

sq_status sq_state_save(const char *path, const sq_model *m, const sq_state_item *items, int n,
                        const sq_ckpt_meta *meta, const sq_state_info *info)
{
    ckpt_tensors c;
    collect_tensors(m, n, &c);
    float **bufs = sq_xcalloc(n ? n : 1, sizeof *bufs);
    for (int i = 0; i < n; i++) {
        bufs[i] = sq_xmalloc(items[i].numel * sizeof(float) + 4);
        if (items[i].numel) m->be->copy_d2h(bufs[i], items[i].dev, items[i].numel * sizeof(float));
        sq_st_tensor *t = &c.t[c.k + i];
        t->name = (char *)items[i].name;
        t->dtype = SQ_ST_F32;
        t->ndim = 1;
        t->shape[0] = (int64_t)items[i].numel;
        t->data = bufs[i];
        t->nbytes = items[i].numel * sizeof(float);
    }
    kv meta_kv[META_MAX];
    int nm = meta_to_kv(meta, meta_kv);
    put(meta_kv, &nm, "state_format", "2");
    put(meta_kv, &nm, "extra", "%" PRIu64, info->dropout_seed);
    put(meta_kv, &nm, "best_epoch", "%d", info->best_epoch);
    put(meta_kv, &nm, "best_metric", "%.17g", info->best_metric);
    put(meta_kv, &nm, "last_metric", "%.17g", info->last_metric);
    put(meta_kv, &nm, "loss_ref", "%.9g", info->loss_ref);
    put_config(meta_kv, &nm, info->run_config);
    sq_status st = write_with_meta(path, c.t, c.k + n, meta_kv, nm);
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    collect_free(&c);
    return st;
}

/* a state-file number, or fallback when absent; an unreadable one is a format error */
static int state_num(const sq_st_file *f, const char *path, const char *key, double fallback, double *out)
{
    const char *s = sq_st_meta(f, key);
    *out = fallback;
    if (!s) return 0;
    if (meta_num(s, out)) {
        bad_meta(path, key, s, "a finite number");
        return -1;
    }
    return 0;
}

sq_status sq_state_load(const char *path, sq_model *m, const sq_state_item *items, int n, sq_ckpt_meta *meta,
                        sq_state_info *info)
{
    sq_st_file f;
    sq_status st = sq_st_read(path, &f);
    if (st) return st;
    if ((st = meta_from_file(&f, path, meta))) { sq_st_free(&f); return st; }
    memset(info, 0, sizeof *info);
    const char *e = sq_st_meta(&f, "extra"), *fmt = sq_st_meta(&f, "state_format");
    long long v;
    double d;
    if (e && meta_int(e, 0, INT64_MAX, &v) && strspn(e, "0123456789") != strlen(e)) {
        sq_st_free(&f);
        return bad_meta(path, "extra", e, "an integer >= 0");
    }
    info->dropout_seed = e ? strtoull(e, NULL, 10) : 0;
    info->has_weights = fmt && !strcmp(fmt, "2");
    info->best_metric = meta->metric;
    info->last_metric = meta->metric;
    if ((e = sq_st_meta(&f, "best_epoch"))) {
        if (meta_int(e, 0, meta->epoch, &v)) { sq_st_free(&f); return bad_meta(path, "best_epoch", e, "an epoch count"); }
        info->best_epoch = (int)v;
    }
    if (state_num(&f, path, "best_metric", meta->metric, &info->best_metric) ||
        state_num(&f, path, "last_metric", meta->metric, &info->last_metric) ||
        state_num(&f, path, "loss_ref", 0, &d)) {
        sq_st_free(&f);
        return SQ_EFORMAT;
    }
    info->loss_ref = d;
    for (int i = 0; i < n; i++) {
        const sq_st_tensor *x = sq_st_find(&f, items[i].name);
        if (!x || x->dtype != SQ_ST_F32 || x->nbytes != items[i].numel * sizeof(float)) {
            sq_set_error("%s: training state '%s' missing or of the wrong size (was it written by another "
                         "model or quantizer?)", path, items[i].name);
            st = SQ_EFORMAT;
            break;
        }
        if (items[i].numel) m->be->copy_h2d(items[i].dev, x->data, x->nbytes);
    }
    sq_st_free(&f);
    return st;
}

sq_status sq_ckpt_read_config(const char *path, char **run_config)
{
    *run_config = NULL;
    sq_st_file f;
    sq_status st = sq_st_read(path, &f);
    if (st) return st;
    const char *s = sq_st_meta(&f, "run_config");
    if (s) *run_config = strdup(s);
    sq_st_free(&f);
    return SQ_OK;
}

sq_status sq_state_weights(const char *state, char *weights, size_t cap)
{
    sq_st_file f;
    sq_status st = sq_st_read(state, &f);
    if (st) return st;
    sq_ckpt_meta sm;
    st = meta_from_file(&f, state, &sm);
    const char *fmt = sq_st_meta(&f, "state_format");
    int self = fmt && !strcmp(fmt, "2");
    sq_st_free(&f);
    if (st) return st;
    if (self) {
        snprintf(weights, cap, "%s", state);
        return SQ_OK;
    }
    /* a state file of an earlier version: the weights are those of last.safetensors beside it,
       when both are of the same epoch and step */
    const char *slash = strrchr(state, '/');
    snprintf(weights, cap, "%.*slast.safetensors", slash ? (int)(slash - state + 1) : 0, state);
    sq_ckpt_meta lm;
    if ((st = sq_ckpt_read_meta(weights, &lm))) return st;
    if (lm.epoch != sm.epoch || lm.step != sm.step) {
        sq_set_error("%s (epoch %d, step %lld) and %s (epoch %d, step %lld) disagree: the run was stopped between "
                     "the two writes by a version that wrote them apart; it cannot be resumed exactly (start it "
                     "again with --overwrite)", weights, lm.epoch, (long long)lm.step, state, sm.epoch,
                     (long long)sm.step);
        return SQ_EFORMAT;
    }
    return SQ_OK;
}
