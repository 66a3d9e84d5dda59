/* step.c: the training step. Full-precision training with labels (CE), SQAKD distillation from
   a frozen teacher without labels (KL), or label-supervised QAT (CE on a quantized model): forward,
   loss, backward, optimizer updates, all device-resident; the loss is added to a backend-side sum
   that the driver (driver.c) reads back every log_every steps only. The step reads its batch from
   the input buffer of the feeder its model is bound to (feeder.h), so it never copies inputs
   itself; on a backend that records (CUDA graphs) its body is recorded once and replayed. */
#include "sqakd/json.h"
#include "sqakd/safetensors.h"
#include "sqakd/teacher_prec.h"
#include "feeder.h"
#include "train_internal.h"
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
    c->threads = sq_cpus_available();
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
    c->squat_weight = 1;
    c->dist_bucket_mb = SQ_DIST_BUCKET_MB_DEFAULT;
}

size_t sq_train_dist_bucket_floats(const sq_train_cfg *c)
{
    const double f = (c->dist_bucket_mb > 0 ? c->dist_bucket_mb : SQ_DIST_BUCKET_MB_DEFAULT) * 1048576.0 / 4.0;
    return f < 1 ? 1 : (size_t)f;
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
    float *loss, *loss_sum;
    sq_feeder *feed;             /* sq_train_step's own feeder (NULL in the driver's buffers) */
    /* on a backend that records (backend.h, graph_*) unless its options say graph=0: the step body
       is recorded once and replayed (see step_run) */
    int graph_mode;              /* 1 on, 0 off, -1 off after a failed recording */
    void *graph;                 /* the recorded body (NULL: none) */
    graph_key key;               /* the key of `graph`, or of the last eager body */
    int warm;                    /* an eager body with `key` ran: lazy set-up is done */
    int64_t *bn_delta;           /* num_batches_tracked added by one body, per node */
    /* SQuaT (sq_step_bufs_squat): the tap's node and the teacher's feature there (NULL: off) */
    int squat_tap;
    const float *squat_xt;
};
typedef sq_step_bufs step_bufs;

sq_step_bufs *sq_step_bufs_new(const sq_model *m) { return sq_step_bufs_create(m, 1); }

sq_step_bufs *sq_step_bufs_driver(const sq_model *m)
{
    const sq_backend *be = m->be;
    sq_step_bufs *b = sq_xcalloc(1, sizeof *b);
    b->m = be->alloc(m->n_train * sizeof(float) + 256);
    b->v = be->alloc(m->n_train * sizeof(float) + 256);
    b->qm = be->alloc(m->n_quant * sizeof(float) + 256);
    b->qv = be->alloc(m->n_quant * sizeof(float) + 256);
    b->loss = be->alloc(256);
    b->loss_sum = be->alloc(256);
    if (!b->m || !b->v || !b->qm || !b->qv || !b->loss || !b->loss_sum) {
        sq_step_bufs_free(m, b);
        double need = (2.0 * m->n_train + 2.0 * m->n_quant) * 4.0 + 6 * 256.0;
        char what[64];
        snprintf(what, sizeof what, "the optimizer state of %s", m->arch);
        sq_backend_oom_error(be, need, what, m->batch, NULL);
        return NULL;
    }
    b->graph_mode = be->options()->cuda_graph && be->graph_begin && be->graph_end && be->graph_run && be->graph_free;
    for (int i = 0; i < m->nnodes && b->graph_mode; i++) /* a dropout seed advances every step */
        if (m->nodes[i].op == SQ_NODE_DROPOUT && m->nodes[i].p > 0) b->graph_mode = 0;
    if (b->graph_mode) b->bn_delta = sq_xcalloc((size_t)m->nnodes, sizeof *b->bn_delta);
    return b;
}

sq_step_bufs *sq_step_bufs_create(const sq_model *m, int staged)
{
    sq_step_bufs *b = sq_step_bufs_driver(m);
    if (!b) return NULL;
    /* sq_train_step's own feeder: the model reads its input from it until the buffers are freed */
    if (!(b->feed = sq_feeder_new(m, m->batch, 1, staged))) {
        sq_step_bufs_free(m, b);
        return NULL;
    }
    sq_feeder_bind(b->feed, (sq_model *)m);
    return b;
}

void sq_step_bufs_free(const sq_model *m, sq_step_bufs *b)
{
    if (!b) return;
    void *bufs[] = {b->m, b->v, b->qm, b->qv, b->loss, b->loss_sum};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) m->be->free(bufs[i]);
    sq_feeder_free(b->feed);
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
    float *g = sq_model_logits_grad(m); /* the loss's gradient goes straight where the backward starts */
    if (cfg->loss == SQ_LOSS_KL)
        be->kl_fwd_bwd(nb, m->classes, zt, zs, cfg->T, cfg->alpha, b->loss, g);
    else
        be->softmax_ce(nb, m->classes, zs, dlab, 1.0f, b->loss, g);
    sq_model_zero_grad(m);
    if (cfg->squat && cfg->loss == SQ_LOSS_KL && b->squat_xt) { /* added to b->loss inside the backward */
        m->squat_node = b->squat_tap;
        m->squat_xt = b->squat_xt;
        m->squat_weight = cfg->squat_weight;
        m->squat_loss = b->loss;
    }
    /* data parallelism: the backward all-reduces the gradients in buckets as they become final
       (model.h dist_bucket); not the Hessian probes' backward (hessian.c), which stays local */
    const int world = cfg->comm ? cfg->comm->size : 1;
    m->dist_bucket = world > 1 ? sq_train_dist_bucket_floats(cfg) : 0;
    sq_model_backward(m, nb, g);
    m->dist_bucket = 0;
    m->squat_xt = NULL;
    be->axpy(1, 1.0f, b->loss, b->loss_sum);
}

/* the optimizer steps: their learning rates and Adam's step number change between steps, so
   they are never recorded */
static void step_update(const sq_train_cfg *cfg, sq_model *m, sq_step_bufs *b, float lr,
                        float lrq, int t)
{
    const sq_backend *be = m->be;
    /* data parallelism: the gradients, summed over the ranks by the backward (step_body), become
       their mean (every rank's loss is the mean over its own part of the batch) */
    const int world = cfg->comm ? cfg->comm->size : 1;
    if (world > 1) {
        be->scale(m->n_train, 1.0f / world, m->g);
        if (m->n_quant) be->scale(m->n_quant, 1.0f / world, m->qg);
    }
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
    /* a data-parallel body is never recorded: a rank whose recording failed would run its
       collectives eagerly while the others replay theirs */
    if (b->graph_mode != 1 || (cfg->comm && cfg->comm->size > 1)) {
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

void sq_train_step_fed(const sq_train_cfg *cfg, sq_model *m, sq_model *teacher, sq_step_bufs *b, int nb,
                       const float *zt, const int32_t *dlab, float lr, float lrq, int t)
{
    step_run(cfg, m, cfg->loss == SQ_LOSS_KL ? teacher : NULL, b, nb, zt, cfg->loss == SQ_LOSS_KL ? NULL : dlab, lr,
             lrq, t);
}

void sq_train_step(const sq_train_cfg *cfg, sq_model *m, sq_model *teacher, sq_step_bufs *b, const float *x,
                   const int32_t *y, int nb, float lr, float lrq, int t)
{
    if (teacher && cfg->loss == SQ_LOSS_KL) sq_feeder_bind(b->feed, teacher); /* one put feeds both */
    if (cfg->squat && !b->squat_xt && sq_step_bufs_squat(b, cfg, m, teacher)) /* callers check it first */
        fprintf(stderr, "sqakd: %s; the step runs without the feature term\n", sq_last_error());
    sq_feeder_put(b->feed, x, cfg->loss == SQ_LOSS_KL ? NULL : y, nb);
    sq_train_step_fed(cfg, m, teacher, b, nb, NULL, b->feed->y, lr, lrq, t);
}

sq_status sq_step_bufs_squat(sq_step_bufs *b, const sq_train_cfg *cfg, const sq_model *m, const sq_model *teacher)
{
    b->squat_xt = NULL;
    if (!cfg->squat) return SQ_OK;
    if (cfg->loss != SQ_LOSS_KL || !teacher) {
        sq_set_error("--loss kl+squat needs a teacher (it adds a feature term to the KL loss)");
        return SQ_EARG;
    }
    if (!(cfg->squat_weight >= 0.0f) || !isfinite(cfg->squat_weight)) {
        sq_set_error("--squat-weight must be a finite number >= 0, got %g", (double)cfg->squat_weight);
        return SQ_EARG;
    }
    if (!m->be->squat_fwd_bwd) {
        sq_set_error("--loss kl+squat: the %s backend has no squat_fwd_bwd op", m->be->name);
        return SQ_EARG;
    }
    int tap;
    if (sq_squat_find_tap(m, cfg->squat_tap, &tap)) return SQ_EARG;
    const sq_node *n = &m->nodes[tap], *in = &m->nodes[n->in0];
    const sq_node *tin = teacher->nnodes == m->nnodes ? &teacher->nodes[n->in0] : NULL;
    if (!tin || tin->op != in->op || tin->c != in->c || tin->h != in->h || tin->w != in->w ||
        strcmp(teacher->nodes[tap].name, n->name)) {
        sq_set_error("--loss kl+squat: the teacher (%s) has no node %s with the student's input shape %dx%dx%d there: "
                     "the feature term needs the teacher's own architecture for the student", teacher->arch, n->name,
                     in->c, in->h, in->w);
        return SQ_EARG;
    }
    if (teacher->tprec) {
        sq_set_error("--loss kl+squat reads the teacher's fp32 feature at %s: drop --teacher-precision (fp32 only)",
                     n->name);
        return SQ_EARG;
    }
    b->squat_tap = tap;
    b->squat_xt = tin->out;
    return SQ_OK;
}

float *sq_step_bufs_loss_sum(sq_step_bufs *b) { return b->loss_sum; }

sq_status sq_train_device_status(const sq_model *m, int64_t step)
{
    sq_status st = m->be->status();
    if (st == SQ_OK) return SQ_OK;
    char msg[900];
    snprintf(msg, sizeof msg, "%s", sq_last_error());
    if (st == SQ_ENOMEM)
        sq_set_error("out of %s memory by step %lld at batch %d (%s): lower --batch", m->be->is_device ? "GPU" : "host",
                     (long long)step, m->batch, msg);
    else
        sq_set_error("%s failure by step %lld: %s", m->be->is_device ? "GPU" : "device", (long long)step, msg);
    return st;
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
