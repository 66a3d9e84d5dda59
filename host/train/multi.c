/* multi.c: the multi-student driver. One loader and one teacher forward per batch feed every
   student's step (sq_train_step_from_logits); evaluation, metrics and checkpoints per student
   go through the same end-of-epoch helper as the single-model loop (loop.c), so a student's
   results equal those of its own sq_train_run. A student whose loss turns non-finite, or whose
   epoch-end fails, is stopped and reported; the others go on. On a backend with asynchronous
   input staging (CUDA) the driver uploads each batch once through its own stages and every model
   copies it on the device; otherwise each model copies it from the host as before. */
#include "sqakd/multi.h"
#include "sqakd/teacher_prec.h"
#include "train_internal.h"
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
    if (nb <= 0) {
        sq_set_error("%s has no images to initialise the quantizers from", train->name);
        st = SQ_EARG;
    } else {
        st = sq_model_quant_init(s, x, nb);
    }
    sq_loader_free(l);
    return st;
}

/* per-student state of one run */
typedef struct {
    sq_student *s;
    sq_train_io io;
    sq_step_bufs *b;
    sq_state_item items[4];
    int nitems, t, since, active;
    sq_run_state rs;
    double loss_ep, last_loss, t_ep_own;
    long imgs;
    float lr, lrq;
} student_run;

static void stop_student(student_run *r, sq_status st, sq_progress *pg)
{
    r->s->status = st;
    snprintf(r->s->error, sizeof r->s->error, "%s", sq_last_error());
    r->active = 0;
    sq_progress_line(pg, "sqakd: %s: %s; this student is stopped, the others go on", r->s->name, r->s->error);
}

static sq_status check_students(const sq_train_cfg *cfg, const sq_dataset *train, const sq_dataset *test,
                                sq_model *teacher, sq_student *students, int n)
{
    if (n <= 0) {
        sq_set_error("no students to train");
        return SQ_EARG;
    }
    for (int i = 0; i < n; i++) {
        const sq_train_cfg *c = &students[i].cfg;
        if (c->loss != cfg->loss || c->epochs != cfg->epochs || c->batch != cfg->batch || c->seed != cfg->seed ||
            c->max_steps_per_epoch != cfg->max_steps_per_epoch || c->crop_pad != cfg->crop_pad ||
            c->flip != cfg->flip) {
            sq_set_error("student %s: loss, epochs, batch, seed, max steps and augmentation must be those of the "
                         "shared run (they share its batches)", students[i].name);
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
            sq_set_error("student %s: %s", students[i].name, msg);
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
        r->b = sq_step_bufs_create(s->model, 0);
        if (!r->b) return SQ_ENOMEM;
        r->nitems = sq_train_state_items(s->model, r->b, r->items);
        r->rs = (sq_run_state){.best = -1};
        if (s->resume_state) {
            sq_status st = sq_train_load_state(&s->cfg, &r->io, r->items, r->nitems, &r->io.meta, &r->rs, pg, s->name);
            if (st) {
                char msg[512];
                snprintf(msg, sizeof msg, "%s", sq_last_error());
                sq_set_error("student %s: %s", s->name, msg);
                return st;
            }
            s->epochs_done = r->rs.start_epoch;
            s->steps = r->rs.step;
        }
        r->t = (int)r->rs.step;
        r->active = 1;
    }
    return SQ_OK;
}

sq_status sq_train_multi(const sq_train_cfg *cfg, const sq_dataset *train, const sq_dataset *test,
                         sq_model *teacher, sq_student *students, int n)
{
    const int N = cfg->batch;
    sq_status st = check_students(cfg, train, test, teacher, students, n);
    if (st) return st;
    const sq_backend *be = students[0].model->be;
    student_run *runs = sq_xcalloc(n, sizeof *runs);
    sq_loader *loader = NULL;
    sq_progress *pg = NULL;
    void *stage_x = NULL, *stage_y = NULL;
    pg = sq_progress_new(cfg->quiet);
    if ((st = open_runs(train, test, teacher, students, n, runs, pg))) goto done;
    if (sq_train_staging(be)) { /* without pinned memory: synchronous copies, same results */
        stage_x = be->stage_new(sq_train_input_bytes(students[0].model, N));
        stage_y = stage_x ? be->stage_new((size_t)N * sizeof(int32_t)) : NULL;
        if (stage_x && !stage_y) { /* one stage is no use: give its pinned memory back */
            be->stage_free(stage_x);
            stage_x = NULL;
        }
    }
    sq_loader_opts lo = {.batch = N, .shuffle = 1, .crop_pad = cfg->crop_pad, .flip = cfg->flip,
                         .drop_last = 1, .seed = cfg->seed};
    if ((st = sq_loader_create(train, &lo, &loader))) goto done;
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
                (st = sq_train_update_delta(c, &r->io, ep, r->s->name, pg))) {
                stop_student(r, st, pg);
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
            if (nb <= 0) break;
            const float *zt = NULL, *dx = NULL;
            const int32_t *dy = NULL;
            if (stage_y) {
                dx = be->stage_put(stage_x, x, sq_train_input_bytes(students[0].model, nb));
                if (cfg->loss != SQ_LOSS_KL) dy = be->stage_put(stage_y, y, (size_t)nb * sizeof(int32_t));
            }
            if (cfg->loss == SQ_LOSS_KL) {
                if (dx) sq_train_set_input_dev(teacher, dx, nb);
                else sq_model_set_input(teacher, x, nb);
                zt = sq_teacher_forward(teacher, nb);
            }
            double shared = (sq_now() - t0) / nact, loss_mean = 0;
            int nloss = 0;
            for (int i = 0; i < n; i++) {
                student_run *r = &runs[i];
                if (!r->active || r->rs.start_epoch > ep) continue;
                double t1 = sq_now();
                r->t++;
                if (dx) sq_train_step_dev(&r->s->cfg, r->s->model, r->b, dx, dy, nb, zt, r->lr, r->lrq, r->t);
                else sq_train_step_from_logits(&r->s->cfg, r->s->model, r->b, x, y, nb, zt, r->lr, r->lrq, r->t);
                r->rs.step++;
                r->imgs += nb;
                r->since++;
                /* a student's first step is read back alone: the divergence guard's reference */
                if (r->since == cfg->log_every || s == steps - 1 || r->rs.loss_ref <= 0) {
                    float ls;
                    be->copy_d2h(&ls, sq_step_bufs_loss_sum(r->b), sizeof ls);
                    be->memset0(sq_step_bufs_loss_sum(r->b), sizeof(float));
                    sq_status ds = sq_train_device_status(r->s->model, r->rs.step);
                    if (!ds) ds = sq_train_check_loss(&r->s->cfg, &r->rs, (double)ls / r->since, ep);
                    if (ds) {
                        stop_student(r, ds, pg);
                        nact--;
                        continue;
                    }
                    r->loss_ep += ls;
                    r->last_loss = ls / r->since;
                    r->since = 0;
                }
                r->t_ep_own += shared + (sq_now() - t1);
                if (isfinite(r->last_loss)) { loss_mean += r->last_loss; nloss++; }
            }
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
                                 .train_s = r->t_ep_own, .t_start = t_start};
            sq_eval_result er;
            sq_status se = sq_train_end_epoch(&r->s->cfg, &r->io, &es, r->items, r->nitems, &r->io.meta, &r->rs,
                                              r->s->name, pg, &er);
            r->s->train_seconds += r->t_ep_own;
            r->s->eval_seconds += sq_now() - t0;
            if (se) {
                stop_student(r, se, pg);
                continue;
            }
            r->s->eval = er;
            r->s->epochs_done = ep + 1;
            r->s->steps = r->rs.step;
        }
    }
    for (int i = 0; i < n; i++)
        if (students[i].status != SQ_OK) {
            int bad = 0;
            for (int j = 0; j < n; j++) bad += students[j].status != SQ_OK;
            sq_set_error("%d of %d students stopped; first: %s: %s", bad, n, students[i].name, students[i].error);
            st = students[i].status;
            break;
        }
done:
    if (stage_x) be->stage_free(stage_x);
    if (stage_y) be->stage_free(stage_y);
    sq_progress_free(pg);
    sq_loader_free(loader);
    for (int i = 0; i < n; i++)
        if (runs[i].b) sq_step_bufs_free(students[i].model, runs[i].b);
    free(runs);
    return st;
}
