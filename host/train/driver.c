/* driver.c: the one training driver. A run trains n students (a single run is one student,
   unlabelled) from one loader and one feeder (feeder.h): each batch is loaded and augmented once
   and put once into the input buffer every model reads; with the KL loss the frozen teacher's
   forward runs once per batch (inside the student's recorded step when there is only one student)
   and every student steps from its logits. The epoch loop, the loss read-back with the divergence
   guard, evaluation, metrics and the epoch's commit (checkpoints) exist here once. A student whose
   loss diverges, or whose epoch end fails, is stopped and reported; the others go on. */
#include "sqakd/multi.h"
#include "sqakd/teacher_prec.h"
#include "feeder.h"
#include "io/tb_events.h"
#include "train_internal.h"
#include "sqakd/json.h"
#include "sqakd/safetensors.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sq_status sq_train_quant_init_first_batch(sq_model *s, const sq_dataset *train, const sq_train_cfg *cfg)
{
    sq_loader_opts lo = {.batch = cfg->batch, .shuffle = 1, .crop_pad = cfg->crop_pad, .flip = cfg->flip,
                         .drop_last = 0, .seed = cfg->seed ^ 0x1417ull};
    sq_loader *l;
    sq_status st = sq_loader_create(train, &lo, &l);
    if (st) return st;
    sq_loader_start_epoch(l, 0);
    const float *x;
    const int32_t *y;
    int nb = sq_loader_next(l, &x, &y);
    if (nb < 0) {
        st = (sq_status)-nb; /* a sample that does not decode: the loader's error */
    } else if (nb == 0) {
        sq_set_error("%s has no images to initialise the quantizers from", train->name);
        st = SQ_EARG;
    } else {
        st = sq_model_quant_init(s, x, nb);
    }
    sq_loader_free(l);
    return st;
}

static void path_join(char *dst, size_t n, const char *dir, const char *file)
{
    snprintf(dst, n, "%s/%s", dir, file);
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
    /* the model's planned batch: a rank's part of the global batch in a data-parallel run (every
       rank computes the same delta from the same images) */
    int nb = cfg->delta_batches > 0 ? cfg->delta_batches : 1, N = m->batch;
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
        int r = sq_loader_next(l, &x, &y);
        if (r < 0) st = (sq_status)-r; /* the loader's error (a sample that does not decode) */
        if (r != N) break;
        xs[got] = sq_xmalloc(nx * sizeof(float));
        memcpy(xs[got], x, nx * sizeof(float));
        if (cfg->loss == SQ_LOSS_CE) {
            ys[got] = sq_xmalloc(N * sizeof(int32_t));
            memcpy(ys[got], y, N * sizeof(int32_t));
        }
    }
    sq_loader_free(l);
    if (got && st == SQ_OK)
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
    const int world = cfg->comm ? cfg->comm->size : 1;
    if (cfg->batch % world) {
        sq_set_error("--batch %d is not a multiple of the %d ranks (every rank takes an equal part of the global "
                     "batch): use a multiple of %d", cfg->batch, world, world);
        return SQ_EARG;
    }
    if (cfg->batch / world != m->batch) {
        sq_set_error("model planned for batch %d but the run asks for %d", m->batch, cfg->batch / world);
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

static sq_status commit_epoch(const sq_train_cfg *cfg, sq_model *m, const sq_state_item *items, int nitems,
                              const sq_ckpt_meta *meta, const sq_run_state *rs, double metric, int is_best);

sq_status sq_train_end_epoch(const sq_train_cfg *cfg, const sq_train_io *io, const sq_epoch_stats *es,
                             const sq_state_item *items, int nitems, sq_ckpt_meta *meta, sq_run_state *rs,
                             const char *label, sq_progress *pg, sq_eval_result *er, sq_tb_writer *tb)
{
    sq_model *m = io->model;
    const int N = cfg->batch;
    sq_status st = SQ_OK;
    memset(er, 0, sizeof *er);
    int have_eval = 0;
    double t_eval = sq_now();
    if (io->test) {
        if ((st = sq_evaluate_kept(m, io->teacher, io->test, N, er, NULL, es->teacher_test))) return st;
        have_eval = 1;
    }
    double t_commit = sq_now();
    if (es->wall) es->wall->eval += t_commit - t_eval;
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
    if (es->wall) {
        /* the run's time split so far (the commits of earlier epochs included, not this one's) */
        const sq_wall *w = es->wall;
        double other = sq_now() - w->t0 - w->data - w->step - w->eval - w->ckpt;
        sq_jbuf_kv_num(&jb, "time_data_s", w->data);
        sq_jbuf_kv_num(&jb, "time_step_s", w->step);
        sq_jbuf_kv_num(&jb, "time_eval_s", w->eval);
        sq_jbuf_kv_num(&jb, "time_checkpoint_s", w->ckpt);
        sq_jbuf_kv_num(&jb, "time_other_s", other > 0 ? other : 0);
    }
    sq_jbuf_end_obj(&jb);
    int changed;
    t_commit = sq_now();
    st = rewrite_metrics(cfg->out_dir, es->epoch, sq_jbuf_cstr(&jb), &changed);
    /* TensorBoard: the metrics line's values at the epoch's last step, and the epoch's losses held
       since its start, before the commit point (a resumed session's file starts with a SessionLog
       START after the committed step, on which TensorBoard drops the events of an uncommitted epoch) */
    if (!st && tb && !(st = sq_tb_json_scalars(tb, "metrics/", es->step, sq_jbuf_cstr(&jb), "step")))
        st = sq_tb_flush(tb);
    sq_jbuf_free(&jb);
    if (st) return st;
    st = commit_epoch(cfg, m, items, nitems, meta, rs, metric, is_best);
    if (es->wall) es->wall->ckpt += sq_now() - t_commit;
    return st;
}

static sq_status commit_epoch(const sq_train_cfg *cfg, sq_model *m, const sq_state_item *items, int nitems,
                              const sq_ckpt_meta *meta, const sq_run_state *rs, double metric, int is_best)
{
    sq_status st;
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

/* per-student state of one run */
typedef struct {
    sq_student *s;
    sq_train_io io;
    sq_step_bufs *b;
    sq_tb_writer *tb;                 /* TensorBoard events (cfg.tensorboard), or NULL */
    sq_state_item items[4];
    int nitems, t, since, active;
    sq_run_state rs;
    double loss_ep, last_loss, t_ep_own;
    long imgs;
    float lr, lrq;
} student_run;

/* one step of every active student on the batch in the feeder: the backend's run_models, so that
   on the CPU the students of a multi-student run share the threads (each on a team of its own,
   at once) instead of each using them all in turn, which their many small ops do less well */
typedef struct {
    student_run *runs;
    sq_model *teacher_in;
    const float *zt;
    const int32_t *y;
    int nb, ep;
} steps_ctx;

static int step_due(const student_run *r, int ep) { return r->active && r->rs.start_epoch <= ep; }

static void step_one(void *p, int i)
{
    steps_ctx *c = p;
    student_run *r = &c->runs[i];
    if (!step_due(r, c->ep)) return;
    sq_train_step_fed(&r->s->cfg, r->s->model, c->teacher_in, r->b, c->nb, c->zt, c->y, r->lr, r->lrq, r->t + 1);
}

static void stop_student(student_run *r, sq_status st, sq_progress *pg, int single)
{
    r->s->status = st;
    snprintf(r->s->error, sizeof r->s->error, "%s", sq_last_error());
    r->active = 0;
    if (single) sq_progress_line(pg, "sqakd: %s", r->s->error);
    else sq_progress_line(pg, "sqakd: %s: %s; this student is stopped, the others go on", r->s->name, r->s->error);
}

static sq_status check_students(const sq_train_cfg *cfg, const sq_dataset *train, const sq_dataset *test,
                                sq_model *teacher, sq_student *students, int n, int single)
{
    if (n <= 0) {
        sq_set_error("no students to train");
        return SQ_EARG;
    }
    for (int i = 0; i < n; i++) {
        const sq_train_cfg *c = &students[i].cfg;
        if (c->loss != cfg->loss || c->epochs != cfg->epochs || c->batch != cfg->batch || c->seed != cfg->seed ||
            c->max_steps_per_epoch != cfg->max_steps_per_epoch || c->crop_pad != cfg->crop_pad ||
            c->flip != cfg->flip || c->comm != cfg->comm || c->sync_bn != cfg->sync_bn) {
            sq_set_error("student %s: loss, epochs, batch, seed, max steps, augmentation and ranks must be those of "
                         "the shared run (they share its batches)", students[i].name);
            return SQ_EARG;
        }
        if (c->tensorboard && !c->out_dir) {
            sq_set_error("TensorBoard event files need an output directory (--out)");
            return SQ_EARG;
        }
        for (int j = 0; j < i; j++)
            if (c->out_dir && students[j].cfg.out_dir && !strcmp(c->out_dir, students[j].cfg.out_dir)) {
                sq_set_error("students %s and %s write to the same directory %s", students[j].name,
                             students[i].name, c->out_dir);
                return SQ_EARG;
            }
        sq_train_io io = {.train = train, .test = test, .model = students[i].model, .teacher = teacher};
        sq_status st = sq_train_check_io(c, &io);
        if (st) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", sq_last_error());
            if (!single) sq_set_error("student %s: %s", students[i].name, msg);
            return st;
        }
    }
    return SQ_OK;
}

static sq_status open_runs(const sq_dataset *train, const sq_dataset *test, sq_model *teacher,
                           sq_student *students, int n, student_run *runs, sq_progress *pg)
{
    for (int i = 0; i < n; i++) {
        student_run *r = &runs[i];
        sq_student *s = &students[i];
        r->s = s;
        s->status = SQ_OK;
        s->error[0] = 0;
        s->epochs_done = 0;
        s->steps = 0;
        s->train_seconds = 0;
        s->eval_seconds = 0;
        memset(&s->eval, 0, sizeof s->eval);
        r->io = (sq_train_io){.train = train, .test = test, .model = s->model, .teacher = teacher,
                              .meta = s->meta, .resume_state = s->resume_state};
        r->b = sq_step_bufs_driver(s->model);
        if (!r->b) return SQ_ENOMEM;
        if (sq_step_bufs_squat(r->b, &s->cfg, s->model, teacher)) { /* SQuaT's tap (issue 20) */
            if (s->name[0]) {
                char msg[512];
                snprintf(msg, sizeof msg, "%s", sq_last_error());
                sq_set_error("student %s: %s", s->name, msg);
            }
            return SQ_EARG;
        }
        r->nitems = sq_train_state_items(s->model, r->b, r->items);
        r->rs = (sq_run_state){.best = -1};
        if (s->resume_state) {
            sq_status st = sq_train_load_state(&s->cfg, &r->io, r->items, r->nitems, &r->io.meta, &r->rs, pg,
                                               s->name[0] ? s->name : NULL);
            if (st && s->name[0]) {
                char msg[512];
                snprintf(msg, sizeof msg, "%s", sq_last_error());
                sq_set_error("student %s: %s", s->name, msg);
                return st;
            }
            s->epochs_done = r->rs.start_epoch;
            s->steps = r->rs.step;
        }
        if (s->cfg.tensorboard) {
            char dir[4096];
            if (s->cfg.tb_dir) snprintf(dir, sizeof dir, "%s", s->cfg.tb_dir);
            else path_join(dir, sizeof dir, s->cfg.out_dir, "tensorboard");
            sq_status st = sq_tb_open(dir, s->resume_state ? r->rs.step : -1, &r->tb);
            if (st) return st;
        }
        r->t = (int)r->rs.step;
        r->active = 1;
    }
    return SQ_OK;
}

/* The driver. single: the run of sq_train_run (one unnamed student: messages unprefixed, the
   student's own error returned) */
static sq_status drive(const sq_train_cfg *cfg, const sq_dataset *train, const sq_dataset *test, sq_model *teacher,
                       sq_student *students, int n, int single)
{
    const int N = cfg->batch;
    sq_status st = check_students(cfg, train, test, teacher, students, n, single);
    if (st) return st;
    const sq_backend *be = students[0].model->be;
    /* data parallelism: this rank's part of every global batch, and the backend's collectives */
    const int world = cfg->comm ? cfg->comm->size : 1, rank = cfg->comm ? cfg->comm->rank : 0;
    if (world > 1 && (!be->dist_attach || !be->allreduce_start || !be->allreduce_wait)) {
        sq_set_error("the %s backend cannot train with several ranks", be->name);
        return SQ_EARG;
    }
    if (be->dist_attach && (st = be->dist_attach(world > 1 ? cfg->comm : NULL, cfg->sync_bn))) return st;
    student_run *runs = sq_xcalloc(n, sizeof *runs);
    sq_loader *loader = NULL;
    sq_progress *pg = NULL;
    sq_feeder *feed = NULL;
    float *teacher_test = NULL; /* the teacher's test logits, computed once for every student and epoch */
    sq_wall wall = {.t0 = sq_now()};
    pg = sq_progress_new(cfg->quiet);
    if ((st = open_runs(train, test, teacher, students, n, runs, pg))) goto done;
    if (rank != 0) /* rank 0 alone evaluates (and writes); the others wait for it at the next collective */
        for (int i = 0; i < n; i++) runs[i].io.test = NULL;
    /* one input buffer that the teacher and every student read, and the loader that fills it
       (staged, from pinned batches, where the backend can; the loader is the feeder's) */
    sq_loader_opts lo = {.batch = N, .shuffle = 1, .crop_pad = cfg->crop_pad, .flip = cfg->flip,
                         .drop_last = 1, .seed = cfg->seed, .shards = world, .shard = rank};
    if ((st = sq_feeder_open(students[0].model, N / world, cfg->loss != SQ_LOSS_KL, train, &lo, &feed, &loader)))
        goto done;
    if (cfg->loss == SQ_LOSS_KL) sq_feeder_bind(feed, teacher);
    for (int i = 0; i < n; i++) sq_feeder_bind(feed, students[i].model);
    int steps = sq_loader_batches(loader);
    if (cfg->max_steps_per_epoch > 0 && cfg->max_steps_per_epoch < steps) steps = cfg->max_steps_per_epoch;
    if (steps <= 0) {
        sq_set_error("%s has %d images: fewer than one batch of %d (use a smaller --batch)", train->name, train->n, N);
        st = SQ_EARG;
        goto done;
    }
    int first_epoch = cfg->epochs;
    for (int i = 0; i < n; i++)
        if (runs[i].rs.start_epoch < first_epoch) first_epoch = runs[i].rs.start_epoch;
    double t_start = sq_now();
    for (int ep = first_epoch; ep < cfg->epochs; ep++) {
        int nact = 0;
        for (int i = 0; i < n; i++) {
            student_run *r = &runs[i];
            if (!r->active || r->rs.start_epoch > ep) continue;
            const sq_train_cfg *c = &r->s->cfg;
            double t0 = sq_now();
            r->lr = sq_sched_lr(c, c->lr, ep);
            r->lrq = sq_sched_lr(c, c->lr_quant, ep);
            r->loss_ep = 0;
            r->last_loss = NAN;
            r->since = 0;
            r->imgs = 0;
            be->memset0(sq_step_bufs_loss_sum(r->b), sizeof(float));
            if (c->delta_every > 0 && ep % c->delta_every == 0 &&
                (st = sq_train_update_delta(c, &r->io, ep, single ? NULL : r->s->name, pg))) {
                stop_student(r, st, pg, single);
                st = SQ_OK;
                continue;
            }
            sq_step_bufs_graph_reset(r->s->model, r->b); /* settings may have changed (EWGS delta) */
            r->t_ep_own = sq_now() - t0;
            nact++;
        }
        if (!nact) {
            int any = 0;
            for (int i = 0; i < n; i++) any |= runs[i].active;
            if (!any) break;
            continue;
        }
        sq_loader_start_epoch(loader, ep);
        double t_ep = sq_now();
        for (int s = 0; s < steps && nact > 0; s++) {
            double t0 = sq_now();
            const float *x;
            const int32_t *y;
            int nb = sq_loader_next(loader, &x, &y);
            double t_fed;
            if (nb < 0) {
                /* a batch could not be made (a streamed image that does not decode): the run stops
                   here, before the epoch's end, so nothing of this epoch is committed */
                st = (sq_status)-nb;
                goto done;
            }
            if (nb == 0) break;
            sq_feeder_put(feed, x, cfg->loss == SQ_LOSS_KL ? NULL : y, nb);
            t_fed = sq_now();
            wall.data += t_fed - t0;
            /* one student: the teacher's forward runs inside its step (and its recorded graph) */
            const float *zt = cfg->loss == SQ_LOSS_KL && n > 1 ? sq_teacher_forward(teacher, nb) : NULL;
            sq_model *tin = cfg->loss == SQ_LOSS_KL && n == 1 ? teacher : NULL;
            double shared = (sq_now() - t0) / nact, loss_mean = 0;
            int nloss = 0;
            /* the steps; a data-parallel run keeps them in order: their collectives must come in
               the same order on every rank, from the thread that started MPI */
            steps_ctx sc = {.runs = runs, .teacher_in = tin, .zt = zt, .y = feed->y, .nb = nb, .ep = ep};
            const double t_steps = sq_now();
            if (be->run_models && world == 1 && n > 1) be->run_models(n, step_one, &sc);
            else
                for (int i = 0; i < n; i++) step_one(&sc, i);
            const double own = (sq_now() - t_steps) / nact; /* each student's share of the steps' time */
            for (int i = 0; i < n; i++) {
                student_run *r = &runs[i];
                if (!step_due(r, ep)) continue;
                double t1 = sq_now();
                r->t++;
                r->rs.step++;
                r->imgs += (long)nb * world;
                r->since++;
                /* a student's first step is read back alone: the divergence guard's reference */
                if (r->since == cfg->log_every || s == steps - 1 || r->rs.loss_ref <= 0) {
                    float ls;
                    be->copy_d2h(&ls, sq_step_bufs_loss_sum(r->b), sizeof ls);
                    be->memset0(sq_step_bufs_loss_sum(r->b), sizeof(float));
                    if (world > 1) { /* the mean over the ranks: every rank's guard decides alike */
                        cfg->comm->allreduce_f32(cfg->comm, &ls, 1);
                        ls /= world;
                    }
                    sq_status ds = sq_train_device_status(r->s->model, r->rs.step);
                    if (!ds) ds = sq_train_check_loss(&r->s->cfg, &r->rs, (double)ls / r->since, ep);
                    if (ds) {
                        stop_student(r, ds, pg, single);
                        nact--;
                        continue;
                    }
                    r->loss_ep += ls;
                    r->last_loss = ls / r->since;
                    r->since = 0;
                    if (r->tb) sq_tb_scalar(r->tb, "train/loss", r->rs.step, r->last_loss);
                }
                r->t_ep_own += shared + own + (sq_now() - t1);
                if (isfinite(r->last_loss)) { loss_mean += r->last_loss; nloss++; }
            }
            wall.step += sq_now() - t_fed;
            double el = sq_now() - t_ep, ips = (double)(s + 1) * N / (el > 0 ? el : 1e-9);
            double left = (double)(steps - s - 1) * N + (double)(cfg->epochs - ep - 1) * steps * N;
            if (nloss && (s + 1) % cfg->log_every == 0)
                sq_progress_update(pg, ep + 1, cfg->epochs, s + 1, steps, loss_mean / nloss, ips, left / ips);
        }
        for (int i = 0; i < n; i++) {
            student_run *r = &runs[i];
            if (!r->active || r->rs.start_epoch > ep) continue;
            double t0 = sq_now();
            sq_epoch_stats es = {.epoch = ep, .step = r->rs.step, .lr = r->lr, .loss_sum = r->loss_ep, .imgs = r->imgs,
                                 .train_s = r->t_ep_own, .t_start = t_start, .wall = &wall,
                                 .teacher_test = &teacher_test};
            sq_eval_result er;
            sq_status se = sq_train_end_epoch(&r->s->cfg, &r->io, &es, r->items, r->nitems, &r->io.meta, &r->rs,
                                              single ? NULL : r->s->name, pg, &er, r->tb);
            r->s->train_seconds += r->t_ep_own;
            r->s->eval_seconds += sq_now() - t0;
            if (se) {
                stop_student(r, se, pg, single);
                continue;
            }
            r->s->eval = er;
            r->s->epochs_done = ep + 1;
            r->s->steps = r->rs.step;
        }
        if (world > 1) {
            /* a student stopped on one rank (rank 0's epoch end writes and evaluates alone) stops
               on every rank, so that all ranks go on with the same students */
            float *stopped = sq_xcalloc(n, sizeof *stopped);
            for (int i = 0; i < n; i++) stopped[i] = students[i].status != SQ_OK;
            cfg->comm->allreduce_f32(cfg->comm, stopped, n);
            for (int i = 0; i < n; i++)
                if (stopped[i] > 0 && students[i].status == SQ_OK) {
                    sq_set_error("stopped on another rank");
                    stop_student(&runs[i], SQ_EARG, pg, single);
                }
            free(stopped);
        }
    }
    {
        double total = sq_now() - wall.t0, other = total - wall.data - wall.step - wall.eval - wall.ckpt;
        double pc = total > 0 ? 100.0 / total : 0;
        if (other < 0) other = 0;
        sq_progress_line(pg, "wall time %.1f s: waiting for data %.1f s (%.1f%%), steps %.1f s (%.1f%%), evaluation "
                         "%.1f s (%.1f%%), checkpoints %.1f s (%.1f%%), other %.1f s (%.1f%%)", total, wall.data,
                         wall.data * pc, wall.step, wall.step * pc, wall.eval, wall.eval * pc, wall.ckpt,
                         wall.ckpt * pc, other, other * pc);
    }
    if (single && students[0].status != SQ_OK) {
        sq_set_error("%s", students[0].error);
        st = students[0].status;
    }
    for (int i = 0; i < n && !single; i++)
        if (students[i].status != SQ_OK) {
            int bad = 0;
            for (int j = 0; j < n; j++) bad += students[j].status != SQ_OK;
            sq_set_error("%d of %d students stopped; first: %s: %s", bad, n, students[i].name, students[i].error);
            st = students[i].status;
            break;
        }
done:
    free(teacher_test);
    sq_feeder_free(feed); /* before the step buffers: the models get their own inputs back; frees the loader */
    sq_progress_free(pg);
    for (int i = 0; i < n; i++) {
        if (runs[i].b) sq_step_bufs_free(students[i].model, runs[i].b);
        sq_tb_close(runs[i].tb);
    }
    free(runs);
    if (be->dist_attach) be->dist_attach(NULL, 0);
    return st;
}

sq_status sq_train_multi(const sq_train_cfg *cfg, const sq_dataset *train, const sq_dataset *test,
                         sq_model *teacher, sq_student *students, int n)
{
    return drive(cfg, train, test, teacher, students, n, 0);
}

sq_status sq_train_run(const sq_train_cfg *cfg, sq_train_io *io)
{
    sq_student s;
    memset(&s, 0, sizeof s);
    s.model = io->model;
    s.cfg = *cfg;
    s.meta = io->meta;
    s.resume_state = io->resume_state;
    return drive(cfg, io->train, io->test, io->teacher, &s, 1, 1);
}
