/* loop.c: the one training loop. Full-precision training with labels (CE), SQAKD distillation
   from a frozen teacher without labels (KL), or label-supervised QAT (CE on a quantized model).
   The step is device-resident: the loss is accumulated on the backend and read back every
   log_every steps only. Checkpoints are written at the end of every epoch (last, best, state).
   On a backend with asynchronous input staging (backend.h: CUDA) each step's batch goes through
   the step buffers' pinned, double-buffered stage instead of a synchronous copy, so its upload
   overlaps the previous step's compute; without one (CPU) the step is exactly as before.
   The helpers declared in train_internal.h are shared with the multi-student driver (multi.c). */
#include "sqakd/json.h"
#include "sqakd/safetensors.h"
#include "sqakd/teacher_prec.h"
#include "train_internal.h"
#ifdef SQ_HAVE_CUDA
#include "../../kernels/cuda/cuda_legacy.h" /* transitional: be->status() & co. replace it */
#endif
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sq_train_cfg_defaults(sq_train_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->loss = SQ_LOSS_CE;
    c->epochs = 10;
    c->batch = 128;
    c->threads = 2;
    c->seed = 1;
    c->opt = SQ_OPT_SGD;
    c->lr = 0.1f;
    c->momentum = 0.9f;
    c->wd = 1e-4f;
    c->sched = SQ_SCHED_COSINE;
    c->step_every = 30;
    c->step_gamma = 0.1f;
    c->lr_quant = 1e-5f;
    c->wd_quant = 0;
    c->alpha = 1;
    c->T = 4;
    c->log_every = 20;
    c->delta_batches = 2;
    c->max_loss_ratio = 100;
}

float sq_sched_lr(const sq_train_cfg *c, float lr0, int epoch)
{
    switch (c->sched) {
    case SQ_SCHED_COSINE: return lr0 * 0.5f * (1.0f + cosf(3.14159265358979f * epoch / c->epochs));
    case SQ_SCHED_STEP: return lr0 * powf(c->step_gamma, (float)(epoch / (c->step_every > 0 ? c->step_every : 1)));
    default: return lr0;
    }
}

/* what a recorded step body was recorded for: replaying it for anything else would be wrong */
typedef struct graph_key {
    int nb, loss;
    const sq_model *teacher;
    const float *zt;
    const int32_t *dlab;
} graph_key;

struct sq_step_bufs {
    float *m, *v, *qm, *qv;      /* optimizer state (backend memory) */
    float *glogits, *loss, *loss_sum;
    int32_t *labels;             /* the step's labels (CE), always in this buffer */
    void *stage_x, *stage_y;     /* input and label stages (NULL: synchronous copies) */
    /* on a backend that records (backend.h, graph_*) unless SQAKD_CUDA_GRAPH=0: the step body
       is recorded once and replayed (see step_run) */
    int graph_mode;              /* 1 on, 0 off, -1 off after a failed recording */
    void *graph;                 /* the recorded body (NULL: none) */
    graph_key key;               /* the key of `graph`, or of the last eager body */
    int warm;                    /* an eager body with `key` ran: lazy set-up is done */
    int64_t *bn_delta;           /* num_batches_tracked added by one body, per node */
};
typedef sq_step_bufs step_bufs;

size_t sq_train_input_bytes(const sq_model *m, int n)
{
    const sq_node *in = &m->nodes[0];
    return (size_t)n * in->c * in->h * in->w * sizeof(float);
}

void sq_train_set_input_dev(sq_model *m, const float *dx, int n)
{
    m->be->copy_d2d(m->nodes[0].out, dx, sq_train_input_bytes(m, n));
}

int sq_train_staging(const sq_backend *be)
{
    const char *e = getenv("SQAKD_STAGE");
    return be->stage_new && be->stage_put && be->stage_free && !(e && e[0] == '0');
}

sq_step_bufs *sq_step_bufs_new(const sq_model *m) { return sq_step_bufs_create(m, 1); }

sq_step_bufs *sq_step_bufs_create(const sq_model *m, int staged)
{
    const sq_backend *be = m->be;
    sq_step_bufs *b = sq_xcalloc(1, sizeof *b);
    b->m = be->alloc(m->n_train * sizeof(float) + 256);
    b->v = be->alloc(m->n_train * sizeof(float) + 256);
    b->qm = be->alloc(m->n_quant * sizeof(float) + 256);
    b->qv = be->alloc(m->n_quant * sizeof(float) + 256);
    b->glogits = be->alloc((size_t)m->batch * m->classes * sizeof(float));
    b->loss = be->alloc(256);
    b->loss_sum = be->alloc(256);
    b->labels = be->alloc((size_t)m->batch * sizeof(int32_t) + 256);
    if (!b->m || !b->v || !b->qm || !b->qv || !b->glogits || !b->loss || !b->loss_sum || !b->labels) {
        sq_step_bufs_free(m, b);
        double need = (2.0 * m->n_train + 2.0 * m->n_quant + (double)m->batch * (m->classes + 1)) * 4.0 + 5 * 256.0;
        char what[64];
        snprintf(what, sizeof what, "the optimizer state of %s", m->arch);
        sq_backend_oom_error(be, need, what, m->batch, NULL);
        return NULL;
    }
    const char *ge = getenv("SQAKD_CUDA_GRAPH");
    b->graph_mode = !(ge && ge[0] == '0') && be->graph_begin && be->graph_end && be->graph_run &&
                    be->graph_free;
    for (int i = 0; i < m->nnodes && b->graph_mode; i++) /* a dropout seed advances every step */
        if (m->nodes[i].op == SQ_NODE_DROPOUT && m->nodes[i].p > 0) b->graph_mode = 0;
    if (b->graph_mode) b->bn_delta = sq_xcalloc((size_t)m->nnodes, sizeof *b->bn_delta);
    if (staged && sq_train_staging(be)) {
        /* pinned memory is a scarce resource: without it the step copies synchronously, with the
           same results */
        b->stage_x = be->stage_new(sq_train_input_bytes(m, m->batch));
        b->stage_y = b->stage_x ? be->stage_new((size_t)m->batch * sizeof(int32_t)) : NULL;
        if (!b->stage_y && b->stage_x) {
            be->stage_free(b->stage_x);
            b->stage_x = NULL;
        }
    }
    return b;
}

void sq_step_bufs_free(const sq_model *m, sq_step_bufs *b)
{
    if (!b) return;
    void *bufs[] = {b->m, b->v, b->qm, b->qv, b->glogits, b->loss, b->loss_sum, b->labels};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) m->be->free(bufs[i]);
    if (b->stage_x) m->be->stage_free(b->stage_x);
    if (b->stage_y) m->be->stage_free(b->stage_y);
    if (b->graph) m->be->graph_free(b->graph);
    free(b->bn_delta);
    free(b);
}

int sq_step_bufs_recorded(const sq_step_bufs *b) { return b->graph != NULL; }

void sq_step_bufs_graph_reset(const sq_model *m, sq_step_bufs *b)
{
    if (b->graph) m->be->graph_free(b->graph);
    b->graph = NULL;
}

/* The step's body once its inputs are in place: the teacher's forward when `teacher` is given
   (zt = its logits; else zt as given), the student's forward, the loss (KL against zt, or CE
   against dlab, labels in backend memory), the backward and the loss sum. Everything it calls is
   asynchronous device work on a device backend: it can be recorded (step_run). */
static void step_body(const sq_train_cfg *cfg, sq_model *m, sq_model *teacher, sq_step_bufs *b,
                      int nb, const float *zt, const int32_t *dlab)
{
    const sq_backend *be = m->be;
    if (teacher) zt = sq_teacher_forward(teacher, nb);
    float *zs = sq_model_forward(m, nb, 1);
    if (cfg->loss == SQ_LOSS_KL)
        be->kl_fwd_bwd(nb, m->classes, zt, zs, cfg->T, cfg->alpha, b->loss, b->glogits);
    else
        be->softmax_ce(nb, m->classes, zs, dlab, 1.0f, b->loss, b->glogits);
    sq_model_zero_grad(m);
    sq_model_backward(m, nb, b->glogits);
    be->axpy(1, 1.0f, b->loss, b->loss_sum);
}

/* the optimizer steps: their learning rates and Adam's step number change between steps, so
   they are never recorded */
static void step_update(const sq_train_cfg *cfg, sq_model *m, sq_step_bufs *b, float lr,
                        float lrq, int t)
{
    const sq_backend *be = m->be;
    if (cfg->opt == SQ_OPT_SGD) be->sgd_step(m->n_train, m->p, m->g, b->m, lr, cfg->momentum, cfg->wd);
    else be->adam_step(m->n_train, m->p, m->g, b->m, b->v, lr, 0.9f, 0.999f, 1e-8f, cfg->wd, t);
    if (m->n_quant)
        be->adam_step(m->n_quant, m->qp, m->qg, b->qm, b->qv, lrq, 0.9f, 0.999f, 1e-8f, cfg->wd_quant, t);
}

static int same_key(const graph_key *a, const graph_key *k)
{
    return a->nb == k->nb && a->loss == k->loss && a->teacher == k->teacher && a->zt == k->zt &&
           a->dlab == k->dlab;
}

/* One step. With graph_mode on, the body is recorded once per key (after one eager body with
   that key, so that lazy set-up such as cuDNN plans and workspaces has happened outside the
   recording) and then replayed: one graph launch instead of a few hundred calls, each of which
   costs the host tens of microseconds in cuDNN. The host-side effect of a body, the BN nodes'
   num_batches_tracked, is re-applied per replay. The caller drops the graph when the host-side
   settings the body's ops take change (sq_step_bufs_graph_reset: every epoch). A recording
   that fails turns graphs off for these buffers, with one line on stderr, and the step runs
   eagerly: the results are the same either way. */
static void step_run(const sq_train_cfg *cfg, sq_model *m, sq_model *teacher, sq_step_bufs *b,
                     int nb, const float *zt, const int32_t *dlab, float lr, float lrq, int t)
{
    const sq_backend *be = m->be;
    const graph_key k = {nb, (int)cfg->loss, teacher, zt, dlab};
    if (b->graph_mode != 1) {
        step_body(cfg, m, teacher, b, nb, zt, dlab);
    } else if (b->graph && same_key(&b->key, &k)) {
        be->graph_run(b->graph);
        for (int i = 0; i < m->nnodes; i++) m->nodes[i].bn_tracked += b->bn_delta[i];
    } else if (!b->warm || !same_key(&b->key, &k)) {
        sq_step_bufs_graph_reset(m, b);
        step_body(cfg, m, teacher, b, nb, zt, dlab);
        b->key = k;
        b->warm = 1;
    } else {
        for (int i = 0; i < m->nnodes; i++) b->bn_delta[i] = m->nodes[i].bn_tracked; /* before */
        void *g = NULL;
        if (be->graph_begin() == 0) {
            step_body(cfg, m, teacher, b, nb, zt, dlab); /* recorded, not run */
            g = be->graph_end();
        }
        for (int i = 0; i < m->nnodes; i++) {
            const int64_t before = b->bn_delta[i];
            b->bn_delta[i] = m->nodes[i].bn_tracked - before;
            if (!g) m->nodes[i].bn_tracked = before; /* nothing ran */
        }
        if (g) {
            b->graph = g;
            be->graph_run(g); /* this step's body */
        } else {
            fprintf(stderr, "sqakd: CUDA graphs off (%s); the step runs without them\n", sq_last_error());
            b->graph_mode = -1;
            step_body(cfg, m, teacher, b, nb, zt, dlab);
        }
    }
    step_update(cfg, m, b, lr, lrq, t);
}

/* labels (backend memory, CE) into b->labels, the one place the step body reads them from */
static const int32_t *labels_dev(const sq_train_cfg *cfg, const sq_model *m, sq_step_bufs *b,
                                 const int32_t *dy, int nb)
{
    if (cfg->loss == SQ_LOSS_KL) return NULL;
    if (dy != b->labels) m->be->copy_d2d(b->labels, dy, (size_t)nb * sizeof(int32_t));
    return b->labels;
}

void sq_train_step_dev(const sq_train_cfg *cfg, sq_model *m, sq_step_bufs *b, const float *dx, const int32_t *dy,
                       int nb, const float *zt, float lr, float lrq, int t)
{
    sq_train_set_input_dev(m, dx, nb);
    step_run(cfg, m, NULL, b, nb, zt, labels_dev(cfg, m, b, dy, nb), lr, lrq, t);
}

/* stages batch x (and the labels y for CE) through b's stages; 0 when b has none */
static int stage_batch(const sq_train_cfg *cfg, const sq_model *m, sq_step_bufs *b, const float *x,
                       const int32_t *y, int nb, const float **dx, const int32_t **dy)
{
    if (!b->stage_x) return 0;
    const sq_backend *be = m->be;
    *dx = be->stage_put(b->stage_x, x, sq_train_input_bytes(m, nb));
    *dy = cfg->loss == SQ_LOSS_KL ? NULL : be->stage_put(b->stage_y, y, (size_t)nb * sizeof(int32_t));
    return 1;
}

/* the host batch x (labels y for CE) into the student's input (and b->labels) */
static const int32_t *inputs_host(const sq_train_cfg *cfg, sq_model *m, sq_step_bufs *b,
                                  const float *x, const int32_t *y, int nb)
{
    sq_model_set_input(m, x, nb);
    if (cfg->loss == SQ_LOSS_KL) return NULL;
    m->be->copy_h2d(b->labels, y, (size_t)nb * sizeof(int32_t));
    return b->labels;
}

void sq_train_step_from_logits(const sq_train_cfg *cfg, sq_model *m, sq_step_bufs *b, const float *x,
                               const int32_t *y, int nb, const float *zt, float lr, float lrq, int t)
{
    const float *dx;
    const int32_t *dy;
    if (stage_batch(cfg, m, b, x, y, nb, &dx, &dy)) {
        sq_train_step_dev(cfg, m, b, dx, dy, nb, zt, lr, lrq, t);
        return;
    }
    step_run(cfg, m, NULL, b, nb, zt, inputs_host(cfg, m, b, x, y, nb), lr, lrq, t);
}

void sq_train_step(const sq_train_cfg *cfg, sq_model *m, sq_model *teacher, sq_step_bufs *b, const float *x,
                   const int32_t *y, int nb, float lr, float lrq, int t)
{
    if (cfg->loss != SQ_LOSS_KL) {
        sq_train_step_from_logits(cfg, m, b, x, y, nb, NULL, lr, lrq, t);
        return;
    }
    const float *dx;
    const int32_t *dy;
    if (stage_batch(cfg, m, b, x, y, nb, &dx, &dy)) {
        /* one upload feeds the teacher and the student */
        sq_train_set_input_dev(teacher, dx, nb);
        sq_train_set_input_dev(m, dx, nb);
    } else {
        sq_model_set_input(teacher, x, nb);
        sq_model_set_input(m, x, nb);
    }
    step_run(cfg, m, teacher, b, nb, NULL, NULL, lr, lrq, t);
}

float *sq_step_bufs_loss_sum(sq_step_bufs *b) { return b->loss_sum; }

sq_status sq_train_device_status(const sq_model *m, int64_t step)
{
#ifdef SQ_HAVE_CUDA
    if (m->be->is_device) {
        sq_status st = sq_cuda_last_status();
        if (st != SQ_OK) {
            char msg[900];
            snprintf(msg, sizeof msg, "%s", sq_last_error());
            if (st == SQ_ENOMEM)
                sq_set_error("out of GPU memory by step %lld at batch %d (%s): lower --batch", (long long)step,
                             m->batch, msg);
            else
                sq_set_error("GPU failure by step %lld: %s", (long long)step, msg);
            return st;
        }
    }
#else
    (void)m;
    (void)step;
#endif
    return SQ_OK;
}

static void path_join(char *dst, size_t n, const char *dir, const char *file)
{
    snprintf(dst, n, "%s/%s", dir, file);
}

int sq_train_state_items(const sq_model *m, const sq_step_bufs *b, sq_state_item *it)
{
    int n = 0;
    it[n++] = (sq_state_item){"optim.model.m", b->m, m->n_train};
    it[n++] = (sq_state_item){"optim.model.v", b->v, m->n_train};
    it[n++] = (sq_state_item){"optim.quant.m", b->qm, m->n_quant};
    it[n++] = (sq_state_item){"optim.quant.v", b->qv, m->n_quant};
    return n;
}

/* the "epoch" of a metrics.jsonl line; -1 for a line that is not a whole JSON object with one */
static int metrics_line_epoch(const char *line, size_t n)
{
    sq_json *o = NULL;
    if (sq_json_parse(line, n, &o, NULL)) return -1;
    int64_t e = -1;
    if (o->type != SQ_JSON_OBJ || !sq_json_int(sq_json_get(o, "epoch"), &e) || e < 0 || e > 100000000) e = -1;
    sq_json_free(o);
    return (int)e;
}

/* Rewrites DIR/metrics.jsonl atomically, keeping its whole lines of epochs 1..keep (those of later
   epochs were written by a run that stopped before committing them) and appending line (when not
   NULL). *changed tells whether the file changed. */
static sq_status rewrite_metrics(const char *dir, int keep, const char *line, int *changed)
{
    char path[4096];
    path_join(path, sizeof path, dir, "metrics.jsonl");
    sq_jbuf out;
    sq_jbuf_init(&out);
    *changed = line != NULL;
    FILE *f = fopen(path, "rb");
    if (f) {
        char *buf = NULL;
        size_t cap = 0;
        ssize_t len;
        while ((len = getline(&buf, &cap, f)) > 0) {
            int whole = buf[len - 1] == '\n';
            int e = whole ? metrics_line_epoch(buf, (size_t)len - 1) : -1;
            if (e >= 1 && e <= keep) sq_jbuf_raw(&out, buf, (size_t)len);
            else *changed = 1;
        }
        free(buf);
        fclose(f);
    }
    if (line) {
        sq_jbuf_raw(&out, line, strlen(line));
        sq_jbuf_raw(&out, "\n", 1);
    }
    sq_status st = *changed ? sq_write_file_atomic(path, sq_jbuf_cstr(&out), strlen(sq_jbuf_cstr(&out))) : SQ_OK;
    sq_jbuf_free(&out);
    return st;
}

sq_status sq_train_update_delta(const sq_train_cfg *cfg, const sq_train_io *io, int ep, const char *label,
                                sq_progress *pg)
{
    sq_model *m = io->model;
    int nb = cfg->delta_batches > 0 ? cfg->delta_batches : 1, N = cfg->batch;
    sq_loader_opts lo = {.batch = N, .shuffle = 1, .crop_pad = cfg->crop_pad, .flip = cfg->flip, .drop_last = 1,
                         .seed = cfg->seed ^ 0xD317A5ull};
    sq_loader *l;
    sq_status st = sq_loader_create(io->train, &lo, &l);
    if (st) return st;
    sq_loader_start_epoch(l, ep);
    size_t nx = (size_t)N * m->in_c * m->in_h * m->in_w;
    float **xs = sq_xcalloc(nb, sizeof *xs);
    int32_t **ys = sq_xcalloc(nb, sizeof *ys);
    int got = 0;
    for (; got < nb; got++) {
        const float *x;
        const int32_t *y;
        if (sq_loader_next(l, &x, &y) != N) break;
        xs[got] = sq_xmalloc(nx * sizeof(float));
        memcpy(xs[got], x, nx * sizeof(float));
        if (cfg->loss == SQ_LOSS_CE) {
            ys[got] = sq_xmalloc(N * sizeof(int32_t));
            memcpy(ys[got], y, N * sizeof(int32_t));
        }
    }
    sq_loader_free(l);
    if (got)
        st = sq_model_update_delta(m, io->teacher, (const float *const *)xs,
                                   cfg->loss == SQ_LOSS_CE ? (const int32_t *const *)ys : NULL, got, N, cfg->T,
                                   cfg->alpha, cfg->seed + ep);
    double dw = 0, da = 0;
    int q = 0;
    for (int i = 0; i < m->nnodes; i++)
        if (m->nodes[i].quant) { dw += m->nodes[i].qw.delta; da += m->nodes[i].qa.delta; q++; }
    if (st == SQ_OK && q)
        sq_progress_line(pg, "%s%sepoch %d: EWGS delta from the Hessian trace (%d batches): mean delta_w %.4g, "
                         "delta_a %.4g", label ? label : "", label ? ": " : "", ep + 1, got, dw / q, da / q);
    for (int i = 0; i < got; i++) { free(xs[i]); free(ys[i]); }
    free(xs);
    free(ys);
    return st;
}

sq_status sq_train_check_io(const sq_train_cfg *cfg, const sq_train_io *io)
{
    const sq_model *m = io->model;
    const sq_dataset *d = io->train;
    if (d->c != m->in_c || d->h != m->in_h || d->w != m->in_w) {
        sq_set_error("data %s is %dx%dx%d but the model expects %dx%dx%d", d->name, d->c, d->h, d->w, m->in_c,
                     m->in_h, m->in_w);
        return SQ_EARG;
    }
    if (io->teacher && (io->teacher->classes != m->classes || io->teacher->in_c != m->in_c ||
                        io->teacher->in_h != m->in_h || io->teacher->in_w != m->in_w)) {
        sq_set_error("teacher (%s, %d classes, %dx%dx%d) and student (%s, %d classes, %dx%dx%d) do not match",
                     io->teacher->arch, io->teacher->classes, io->teacher->in_c, io->teacher->in_h,
                     io->teacher->in_w, m->arch, m->classes, m->in_c, m->in_h, m->in_w);
        return SQ_EARG;
    }
    if (cfg->loss == SQ_LOSS_CE && !d->labels) {
        sq_set_error("--loss ce needs labels but %s has none (SQAKD --loss kl needs none)", d->name);
        return SQ_EARG;
    }
    if (cfg->loss == SQ_LOSS_KL && !io->teacher) {
        sq_set_error("--loss kl needs a teacher");
        return SQ_EARG;
    }
    if (cfg->batch != m->batch) {
        sq_set_error("model planned for batch %d but the run asks for %d", m->batch, cfg->batch);
        return SQ_EARG;
    }
    return SQ_OK;
}

sq_status sq_train_load_state(const sq_train_cfg *cfg, const sq_train_io *io, const sq_state_item *items, int n,
                              sq_ckpt_meta *meta, sq_run_state *rs, sq_progress *pg, const char *label)
{
    sq_ckpt_meta sm;
    sq_state_info info;
    sq_model *m = io->model;
    sq_status st = sq_state_load(io->resume_state, m, items, n, &sm, &info);
    if (st) return st;
    rs->start_epoch = sm.epoch;
    rs->step = sm.step;
    rs->best = info.best_metric;
    rs->best_epoch = info.best_epoch;
    rs->loss_ref = info.loss_ref;
    m->dropout_seed = info.dropout_seed;
    meta->metric = sm.metric;
    if (!cfg->out_dir) return SQ_OK;
    /* The state is the commit point of an epoch: it is written first, then last.safetensors, then
       best.safetensors. A run stopped in between left those behind; they are rewritten from the
       state, as the uninterrupted run wrote them. */
    const char *names[2] = {"last.safetensors", "best.safetensors"};
    const char *pre = label ? label : "", *sep = label ? ": " : "";
    for (int i = 0; i < 2; i++) {
        if (i == 1 && (info.best_epoch != sm.epoch || sm.epoch == 0)) continue;
        char path[4096];
        path_join(path, sizeof path, cfg->out_dir, names[i]);
        sq_ckpt_meta fm;
        int have = sq_ckpt_read_meta(path, &fm) == SQ_OK;
        if (have && fm.epoch == sm.epoch && fm.step == sm.step) continue;
        sq_ckpt_meta wm = *meta;
        wm.epoch = sm.epoch;
        wm.step = sm.step;
        wm.metric = i == 0 ? info.last_metric : info.best_metric;
        if ((st = sq_ckpt_save_cfg(m, &wm, cfg->run_config, path))) return st;
        if (have)
            sq_progress_line(pg, "%s%s%s held epoch %d but the committed state epoch %d (the run stopped between the "
                             "two writes): rewritten from the state", pre, sep, path, fm.epoch, sm.epoch);
        else
            sq_progress_line(pg, "%s%s%s was missing or unreadable: rewritten from the state of epoch %d", pre, sep,
                             path, sm.epoch);
    }
    int changed;
    if ((st = rewrite_metrics(cfg->out_dir, sm.epoch, NULL, &changed))) return st;
    if (changed)
        sq_progress_line(pg, "%s%s%s/metrics.jsonl: lines after the committed epoch %d removed", pre, sep,
                         cfg->out_dir, sm.epoch);
    return SQ_OK;
}

sq_status sq_train_check_loss(const sq_train_cfg *cfg, sq_run_state *rs, double loss, int ep)
{
    if (!isfinite(loss)) {
        sq_set_error("non-finite loss at epoch %d step %lld (lower --lr?); the last good checkpoint is kept",
                     ep + 1, (long long)rs->step);
        return SQ_ENUMERIC;
    }
    if (rs->loss_ref <= 0) {
        rs->loss_ref = loss > 0 ? loss : 1e-30; /* the floor then applies */
        return SQ_OK;
    }
    double ref = rs->loss_ref > SQ_LOSS_REF_FLOOR ? rs->loss_ref : SQ_LOSS_REF_FLOOR;
    if (cfg->max_loss_ratio > 0 && loss > cfg->max_loss_ratio * ref) {
        sq_set_error("the loss diverged at epoch %d step %lld: %.4g is more than --max-loss-ratio %g times the "
                     "run's first loss %.4g (lower --lr?); the last good checkpoint is kept", ep + 1,
                     (long long)rs->step, loss, cfg->max_loss_ratio, rs->loss_ref);
        return SQ_ENUMERIC;
    }
    return SQ_OK;
}

sq_status sq_train_end_epoch(const sq_train_cfg *cfg, const sq_train_io *io, const sq_epoch_stats *es,
                             const sq_state_item *items, int nitems, sq_ckpt_meta *meta, sq_run_state *rs,
                             const char *label, sq_progress *pg, sq_eval_result *er)
{
    sq_model *m = io->model;
    const int N = cfg->batch;
    sq_status st = SQ_OK;
    memset(er, 0, sizeof *er);
    int have_eval = 0;
    if (io->test) {
        if ((st = sq_evaluate(m, io->teacher, io->test, N, er))) return st;
        have_eval = 1;
    }
    double metric = have_eval ? (er->top1 >= 0 ? er->top1 : er->agreement) : -1;
    double ips = es->imgs / (es->train_s > 0 ? es->train_s : 1e-9);
    meta->epoch = es->epoch + 1;
    meta->step = es->step;
    meta->metric = metric;
    double mean_loss = es->loss_sum / (es->imgs / N > 0 ? (double)(es->imgs / N) : 1.0);
    char line[640];
    int len = snprintf(line, sizeof line, "%s%sepoch %d/%d  loss %.4f  lr %.3g  %.0f img/s", label ? label : "",
                       label ? ": " : "", es->epoch + 1, cfg->epochs, mean_loss, es->lr, ips);
    if (have_eval && er->top1 >= 0) len += snprintf(line + len, sizeof line - len, "  test top1 %.2f%% top5 %.2f%%", er->top1, er->top5);
    if (have_eval && er->agreement >= 0) len += snprintf(line + len, sizeof line - len, "  agreement %.2f%% KL %.4f", er->agreement, er->kl);
    sq_progress_line(pg, "%s", line);
    int is_best = rs->best_epoch == 0 || metric > rs->best || rs->best < 0;
    if (is_best) {
        rs->best = metric;
        rs->best_epoch = es->epoch + 1;
    }
    if (!cfg->out_dir) return SQ_OK;
    sq_jbuf jb;
    sq_jbuf_init(&jb);
    sq_jbuf_begin_obj(&jb);
    sq_jbuf_kv_int(&jb, "epoch", es->epoch + 1);
    sq_jbuf_kv_int(&jb, "step", es->step);
    sq_jbuf_kv_num(&jb, "lr", es->lr);
    sq_jbuf_kv_num(&jb, "train_loss", mean_loss);
    sq_jbuf_kv_num(&jb, "img_per_s", ips);
    sq_jbuf_kv_num(&jb, "train_seconds", es->train_s);
    if (have_eval) {
        sq_jbuf_kv_int(&jb, "eval_n", er->n);
        if (er->top1 >= 0) { sq_jbuf_kv_num(&jb, "top1", er->top1); sq_jbuf_kv_num(&jb, "top5", er->top5); }
        if (er->agreement >= 0) { sq_jbuf_kv_num(&jb, "agreement", er->agreement); sq_jbuf_kv_num(&jb, "kl", er->kl); }
    }
    sq_jbuf_kv_num(&jb, "elapsed_seconds", sq_now() - es->t_start);
    sq_jbuf_end_obj(&jb);
    int changed;
    st = rewrite_metrics(cfg->out_dir, es->epoch, sq_jbuf_cstr(&jb), &changed);
    sq_jbuf_free(&jb);
    if (st) return st;
    /* The state file is the commit point of the epoch: it carries the weights too, so a resume
       needs nothing else. last and best come after it; a stop in between is repaired at resume. */
    sq_state_info info = {.dropout_seed = m->dropout_seed, .best_epoch = rs->best_epoch, .best_metric = rs->best,
                          .last_metric = metric, .loss_ref = rs->loss_ref, .run_config = cfg->run_config};
    char path[4096];
    path_join(path, sizeof path, cfg->out_dir, "last.state.safetensors");
    if ((st = sq_state_save(path, m, items, nitems, meta, &info))) return st;
    path_join(path, sizeof path, cfg->out_dir, "last.safetensors");
    if ((st = sq_ckpt_save_cfg(m, meta, cfg->run_config, path))) return st;
    if (is_best) {
        path_join(path, sizeof path, cfg->out_dir, "best.safetensors");
        if ((st = sq_ckpt_save_cfg(m, meta, cfg->run_config, path))) return st;
    }
    return SQ_OK;
}

sq_status sq_train_run(const sq_train_cfg *cfg, sq_train_io *io)
{
    sq_model *m = io->model;
    const sq_backend *be = m->be;
    const int N = cfg->batch;
    sq_status st = sq_train_check_io(cfg, io);
    if (st) return st;
    step_bufs *bp = sq_step_bufs_new(m);
    if (!bp) return SQ_ENOMEM;
    sq_ckpt_meta meta = io->meta;
    sq_run_state rs = {.best = -1};
    sq_state_item items[4];
    int nitems = sq_train_state_items(m, bp, items);
    sq_progress *pg = sq_progress_new(cfg->quiet);
    if (io->resume_state && (st = sq_train_load_state(cfg, io, items, nitems, &meta, &rs, pg, NULL))) {
        sq_progress_free(pg);
        sq_step_bufs_free(m, bp);
        return st;
    }
    int start_epoch = rs.start_epoch, t = (int)rs.step;
    sq_loader_opts lo = {.batch = N, .shuffle = 1, .crop_pad = cfg->crop_pad, .flip = cfg->flip,
                         .drop_last = 1, .seed = cfg->seed};
    sq_loader *loader;
    if ((st = sq_loader_create(io->train, &lo, &loader))) {
        sq_progress_free(pg);
        sq_step_bufs_free(m, bp);
        return st;
    }
    int steps = sq_loader_batches(loader);
    if (cfg->max_steps_per_epoch > 0 && cfg->max_steps_per_epoch < steps) steps = cfg->max_steps_per_epoch;
    if (steps <= 0) {
        sq_progress_free(pg);
        sq_loader_free(loader);
        sq_step_bufs_free(m, bp);
        sq_set_error("%s has %d images: fewer than one batch of %d (use a smaller --batch)", io->train->name,
                     io->train->n, N);
        return SQ_EARG;
    }
    double t_start = sq_now();
    for (int ep = start_epoch; ep < cfg->epochs && st == SQ_OK; ep++) {
        float lr = sq_sched_lr(cfg, cfg->lr, ep), lrq = sq_sched_lr(cfg, cfg->lr_quant, ep);
        if (cfg->delta_every > 0 && ep % cfg->delta_every == 0 && (st = sq_train_update_delta(cfg, io, ep, NULL, pg)))
            break;
        sq_step_bufs_graph_reset(m, bp); /* quantizer settings may have changed (EWGS delta) */
        sq_loader_start_epoch(loader, ep);
        be->memset0(bp->loss_sum, sizeof(float));
        double t_ep = sq_now(), loss_ep = 0, last_loss = NAN;
        int since = 0;
        long imgs = 0;
        for (int s = 0; s < steps; s++) {
            const float *x;
            const int32_t *y;
            int nb = sq_loader_next(loader, &x, &y);
            if (nb <= 0) break;
            t++;
            sq_train_step(cfg, m, io->teacher, bp, x, y, nb, lr, lrq, t);
            rs.step++;
            imgs += nb;
            since++;
            /* the first step of a run is read back alone: its loss is the divergence guard's reference */
            if (since == cfg->log_every || s == steps - 1 || rs.loss_ref <= 0) {
                float ls;
                be->copy_d2h(&ls, bp->loss_sum, sizeof ls);
                be->memset0(bp->loss_sum, sizeof(float));
                if ((st = sq_train_device_status(m, rs.step))) break;
                if ((st = sq_train_check_loss(cfg, &rs, (double)ls / since, ep))) {
                    sq_progress_line(pg, "sqakd: %s", sq_last_error());
                    break;
                }
                loss_ep += ls;
                last_loss = ls / since;
                since = 0;
                double el = sq_now() - t_ep, ips = imgs / (el > 0 ? el : 1e-9);
                double left = (double)(steps - s - 1) * N + (double)(cfg->epochs - ep - 1) * steps * N;
                sq_progress_update(pg, ep + 1, cfg->epochs, s + 1, steps, last_loss, ips, left / ips);
            }
        }
        if (st) break;
        sq_epoch_stats es = {.epoch = ep, .step = rs.step, .lr = lr, .loss_sum = loss_ep, .imgs = imgs,
                             .train_s = sq_now() - t_ep, .t_start = t_start};
        sq_eval_result er;
        st = sq_train_end_epoch(cfg, io, &es, items, nitems, &meta, &rs, NULL, pg, &er);
    }
    sq_progress_free(pg);
    sq_loader_free(loader);
    sq_step_bufs_free(m, bp);
    return st;
}
