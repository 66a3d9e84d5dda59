/* distill_multi.c: 'sqakd distill --students ...' and the groups of 'sqakd sweep': several
   students trained in one process from one teacher pass (sq_train_multi), each under
   OUT/<name>/ with the files of a single run, with a summary of how each one ended. */
#include "distill_common.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* removes what a student that never reached its first checkpoint left behind */
static void cleanup_student(const char *dir)
{
    sq_cli_common c;
    sq_cli_common_defaults(&c);
    c.cfg.out_dir = dir;
    sq_cli_cleanup_out(&c);
}

/* the student's state to resume from, when c->resume is set and its directory has one */
static int resume_paths(const sq_cli_common *c, const char *dir, char *state, size_t n)
{
    snprintf(state, n, "%s/last.state.safetensors", dir);
    return c->resume && file_exists(state);
}

/* the run configuration of one student: the run's, plus the student's own quantizer, bits and
   learning rates (the --students list may change on resume; each student may not) */
static char *student_config(const char *run_config, const sq_student *s)
{
    if (!run_config) return NULL;
    char own[320];
    int len0 = snprintf(own, sizeof own, "%s:lr=%.9g:lrq=%.9g", s->name, (double)s->cfg.lr, (double)s->cfg.lr_quant);
    if (s->cfg.squat && len0 > 0 && (size_t)len0 < sizeof own) /* SQuaT's settings (absent from older runs' entries) */
        snprintf(own + len0, sizeof own - (size_t)len0, ":loss=kl+squat:squat-weight=%.9g:squat-tap=%.96s",
                 (double)s->cfg.squat_weight, s->cfg.squat_tap ? s->cfg.squat_tap : "");
    size_t len = strlen(run_config);
    char *out = sq_xmalloc(len + sizeof own + 32);
    memcpy(out, run_config, len);
    while (len && out[len - 1] != '}') len--;
    if (!len) { free(out); return NULL; }
    len--; /* before the closing brace */
    int empty = len > 0 && out[len - 1] == '{';
    snprintf(out + len, sizeof own + 32, "%s\"student\":\"%s\"}", empty ? "" : ",", own);
    return out;
}

static int setup_student(const char *cmd, sq_cli_common *c, const sq_distill_ctx *d, const char *arch,
                         const char *init_ckpt, const sq_student_spec *sp, const char *dir, char *state,
                         char *tb_dir, int argc, char **argv, sq_student *s)
{
    char weights[4096];
    int resume = resume_paths(c, dir, state, 4096);
    snprintf(s->name, sizeof s->name, "%s", sp->name);
    s->cfg = c->cfg;
    s->cfg.out_dir = dir;
    snprintf(tb_dir, 4096, "%s/tensorboard/%s", c->out, sp->name);   /* one TensorBoard run per student */
    s->cfg.tb_dir = tb_dir;
    if (sp->lr >= 0) s->cfg.lr = sp->lr;
    if (sp->lr_quant >= 0) s->cfg.lr_quant = sp->lr_quant;
    if (sp->q.kind != SQ_QUANT_EWGS) s->cfg.delta_every = 0;   /* delta is the EWGS backward's scale */
    if (sp->squat >= 0) s->cfg.squat = sp->squat;              /* :loss=kl|kl+squat */
    if (s->cfg.squat && s->cfg.loss != SQ_LOSS_KL)
        return sq_cli_fail(cmd, "--students: %s asks for loss kl+squat but the run's --loss is ce", sp->name);
    s->cfg.run_config = student_config(c->cfg.run_config, s);
    const int writer = c->rank == 0; /* a data-parallel run's other ranks read, never write */
    if (!writer) s->cfg.out_dir = NULL;
    if (writer && sq_cli_open_run_dir(cmd, dir, c->resume != NULL, c->overwrite)) return 2;
    if (resume) {
        sq_ckpt_meta rm;
        char *rec = NULL;
        if (sq_state_weights(state, weights, sizeof weights) || sq_ckpt_read_meta(weights, &rm) ||
            sq_ckpt_read_config(state, &rec))
            return sq_cli_fail(cmd, "%s", sq_last_error());
        if (rm.q.kind != sp->q.kind || rm.q.wbits != sp->q.wbits || rm.q.abits != sp->q.abits ||
            rm.q.per_channel != sp->q.per_channel || (rm.q.bits_map != sp->q.bits_map)) {
            free(rec);
            return sq_cli_fail(cmd, "%s holds a %s W%dA%d%s student, not %s%s: use another --out", weights,
                               sq_quant_kind_name(rm.q.kind), rm.q.wbits, rm.q.abits,
                               rm.q.per_channel ? " per-channel" : "", sp->name,
                               sp->q.per_channel ? " (per-channel)" : "");
        }
        /* its own settings: the recorded "student" entry against this run's */
        const char *mine = s->cfg.run_config ? strstr(s->cfg.run_config, "\"student\":\"") : NULL;
        const char *theirs = rec ? strstr(rec, "\"student\":\"") : NULL;
        if (mine && theirs && strcmp(mine, theirs)) {
            sq_cli_fail(cmd, "--resume: student %s was started with %.*s but is resumed with %.*s; resume it with the "
                        "same settings, or start a new run with another --out", sp->name,
                        (int)strcspn(theirs + 11, "\""), theirs + 11, (int)strcspn(mine + 11, "\""), mine + 11);
            free(rec);
            return 2;
        }
        free(rec);
    }
    if (sq_distill_new_student(cmd, d, &s->cfg, arch, init_ckpt, resume ? weights : NULL, &sp->q, &s->model))
        return 2;
    s->resume_state = resume ? state : NULL;
    s->meta = d->tm;
    snprintf(s->meta.arch, sizeof s->meta.arch, "%s", s->model->arch);
    s->meta.q = sp->q;
    s->meta.epoch = 0;
    s->meta.step = 0;
    snprintf(s->meta.role, sizeof s->meta.role, "%s", c->cfg.loss == SQ_LOSS_CE ? "qat" : "student");
    if (writer && sq_cli_write_command(dir, argc, argv, (unsigned long long)c->cfg.seed, resume, s->cfg.run_config))
        return sq_cli_fail(cmd, "cannot write %s/command.txt: %s", dir, sq_last_error());
    return 0;
}

static void print_summary(const char *cmd, const sq_student *st, int n)
{
    fprintf(stderr, "sqakd %s: %-18s %6s %9s %11s %8s  %s\n", cmd, "student", "epochs", "top-1 %", "agreement %",
            "KL", "status");
    for (int i = 0; i < n; i++) {
        const sq_student *s = &st[i];
        char top1[32] = "-", agr[32] = "-", kl[32] = "-";
        if (s->eval.n > 0 && s->eval.top1 >= 0) snprintf(top1, sizeof top1, "%.2f", s->eval.top1);
        if (s->eval.n > 0 && s->eval.agreement >= 0) {
            snprintf(agr, sizeof agr, "%.2f", s->eval.agreement);
            snprintf(kl, sizeof kl, "%.4f", s->eval.kl);
        }
        fprintf(stderr, "sqakd %s: %-18s %6d %9s %11s %8s  %s\n", cmd, s->name, s->epochs_done, top1, agr, kl,
                s->status == SQ_OK ? "done" : s->status == SQ_ENUMERIC ? "stopped: loss non-finite or diverged" : "stopped");
    }
}

int sq_distill_students(const char *cmd, sq_cli_common *c, const sq_distill_ctx *d, const char *arch,
                        const char *init_ckpt, const sq_student_spec *specs, int n, int argc, char **argv,
                        sq_student_done_fn done, void *ctx)
{
    if (!c->out) c->out = c->resume;
    if (!c->out) return sq_cli_fail(cmd, "several students need --out DIR (each one writes DIR/<name>/)");
    if (c->rank == 0 && sq_cli_mkdirs(c->out))
        return sq_cli_fail(cmd, "cannot create output directory '%s': %s", c->out, strerror(errno));
    sq_student *st = sq_xcalloc(n, sizeof *st);
    char (*dirs)[4096] = sq_xcalloc(n, sizeof *dirs);
    char (*states)[4096] = sq_xcalloc(n, sizeof *states);
    char (*tb_dirs)[4096] = sq_xcalloc(n, sizeof *tb_dirs);
    int rc = 2, made = 0;
    for (; made < n; made++) {
        snprintf(dirs[made], sizeof dirs[made], "%s/%s", c->out, specs[made].name);
        if (setup_student(cmd, c, d, arch, init_ckpt, &specs[made], dirs[made], states[made], tb_dirs[made], argc,
                          argv, &st[made])) {
            made++;
            goto done;
        }
    }
    if (!c->cfg.quiet) {
        fprintf(stderr, "sqakd %s: %d students from one teacher pass on %s (%d images, %dx%dx%d); %s backend, %d "
                "threads; each in %s/<name>/:", cmd, n, d->train.name, d->train.n, d->train.c, d->train.h,
                d->train.w, d->be->name, c->cfg.threads, c->out);
        for (int i = 0; i < n; i++)
            fprintf(stderr, " %s%s", st[i].name, st[i].resume_state ? " (resumed)" : "");
        fputc('\n', stderr);
    }
    sq_status s = sq_train_multi(&c->cfg, &d->train, d->have_test ? &d->test : NULL, d->teacher, st, n);
    int stopped = 0;
    for (int i = 0; i < n; i++) stopped += st[i].status != SQ_OK;
    if (s != SQ_OK && !stopped) {
        sq_cli_fail(cmd, "%s", sq_last_error());
        goto done;
    }
    for (int i = 0; i < n; i++) {
        /* resumed after its last epoch: nothing was trained, evaluate what is there */
        if (st[i].status == SQ_OK && st[i].eval.n == 0 && d->have_test &&
            sq_evaluate(st[i].model, d->teacher, &d->test, c->cfg.batch, &st[i].eval)) {
            st[i].status = SQ_EIO;
            snprintf(st[i].error, sizeof st[i].error, "evaluation failed: %s", sq_last_error());
            stopped++;
        }
        if (st[i].status != SQ_OK)
            fprintf(stderr, "sqakd %s: student %s stopped: %s\n", cmd, st[i].name, st[i].error);
        if (done && c->rank == 0) done(ctx, d, &specs[i], &st[i]);
    }
    if (!c->cfg.quiet) print_summary(cmd, st, n);
    rc = stopped ? 1 : 0;
done:
    for (int i = 0; i < made; i++) {
        if (c->rank == 0 && rc != 0 && !st[i].resume_state && (rc == 2 || st[i].status != SQ_OK))
            cleanup_student(dirs[i]);
        sq_model_free(st[i].model);
        free((char *)st[i].cfg.run_config);
    }
    if (rc == 2 && c->rank == 0) rmdir(c->out);   /* only when empty: nothing of an earlier run is touched */
    free(st);
    free(dirs);
    free(states);
    free(tb_dirs);
    return rc;
}
