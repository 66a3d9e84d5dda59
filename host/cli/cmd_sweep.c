/* cmd_sweep.c: 'sqakd sweep' — many students (quantizers x bit-widths x seeds) from one teacher.
   Locally, the students that share a teacher pass (same seed) run in groups of --group-size as
   one multi-student process, group after group; with --slurm, an sbatch job array runs one group
   per array task. Every task writes DIR/tasks/<id>/result.json (atomically); a re-run skips the
   tasks that have one and resumes the others from their last checkpoint. */
#include "sqakd/safetensors.h"
#include "cli_data.h"
#include "sweep.h"
#include "sqakd/import.h"
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *USAGE =
    "--data SPEC (--teacher CKPT | --model NAME --train-teacher-epochs N) --quantizers ewgs,lsq --bits 1,2,4,8 "
    "[--seeds 1,2 --epochs N --group-size G] --out DIR [--slurm [--ntasks-per-group N --partition P --time T --gpus N "
    "--cpus-per-task C --dry-run]]\n       sqakd sweep --config FILE [flags that override it]";

typedef struct {
    const char *config, *model, *data, *teacher, *quantizers, *bits, *seeds, *out, *device, *augment, *partition,
        *time, *bin, *resize, *loss, *squat_tap;
    int tte, epochs, batch, threads, max_steps, group_size, gpus, cpus, max_running, run_group, ntasks;
    int run_teacher, slurm, dry_run, quiet, tensorboard, per_channel;
    float lr_model, lr_quant, alpha, T, holdout, squat_weight;
} sweep_flags;

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* a string flag's value, refused (one line naming the flag) when it does not fit whole into cap
   bytes, holds a control character, or is not what check allows */
static int check_str(const char *cmd, const char *flag, const char *v, size_t cap, const char *(*check)(const char *))
{
    if (!v) return 0;
    size_t n = strlen(v);
    if (n >= cap) return sq_cli_fail(cmd, "%s: at most %zu bytes, got %zu", flag, cap - 1, n);
    const char *bad = sq_sweep_bad_text(v);
    if (!bad && check) bad = check(v);
    if (bad) {
        char shown[96];
        sq_sweep_show(v, shown, sizeof shown);
        return sq_cli_fail(cmd, "%s: must be %s, got '%s'", flag, bad, shown);
    }
    return 0;
}

#define SET_STR(dst, v, flag, check) \
    do { \
        if (check_str(cmd, (flag), (v), sizeof(dst), (check))) return 2; \
        if (v) memcpy((dst), (v), strlen(v) + 1); \
    } while (0)
#define SET_NUM(dst, v) do { if ((v) >= 0) (dst) = (v); } while (0)

static const char *bad_resize(const char *s)
{
    int h, w;
    return sq_cli_parse_resize(s, &h, &w) ? "HxW with H and W in 1..8192" : NULL;
}

/* the configuration: --config FILE (or DIR/sweep.json when resuming), then the flags */
static int build_config(const char *cmd, const sweep_flags *f, sq_sweep *sw)
{
    sq_sweep_defaults(sw);
    char saved[4096] = "";
    if (check_str(cmd, "--out", f->out, sizeof sw->out, NULL)) return 2;
    if (f->out) snprintf(saved, sizeof saved, "%s/sweep.json", f->out);
    if (f->config) {
        if (sq_sweep_load(cmd, f->config, sw)) return 2;
    } else if (saved[0] && file_exists(saved)) {
        if (sq_sweep_load(cmd, saved, sw)) return 2;
    }
    SET_STR(sw->model, f->model, "--model", NULL);
    SET_STR(sw->data, f->data, "--data", NULL);
    SET_STR(sw->teacher, f->teacher, "--teacher", NULL);
    SET_STR(sw->out, f->out, "--out", NULL);
    SET_STR(sw->device, f->device, "--device", NULL);
    SET_STR(sw->augment, f->augment, "--augment", NULL);
    SET_STR(sw->resize, f->resize, "--resize", bad_resize);
    SET_STR(sw->loss, f->loss, "--loss", NULL);
    SET_STR(sw->squat_tap, f->squat_tap, "--squat-tap", NULL);
    if (sq_squat_tap_check(cmd, sw->squat_tap)) return 2;
    SET_NUM(sw->squat_weight, f->squat_weight);
    SET_STR(sw->partition, f->partition, "--partition", sq_sweep_bad_partition);
    SET_STR(sw->time, f->time, "--time", sq_sweep_bad_time);
    SET_NUM(sw->train_teacher_epochs, f->tte);
    SET_NUM(sw->epochs, f->epochs);
    SET_NUM(sw->batch, f->batch);
    SET_NUM(sw->threads, f->threads);
    SET_NUM(sw->max_steps, f->max_steps);
    SET_NUM(sw->group_size, f->group_size);
    SET_NUM(sw->gpus, f->gpus);
    SET_NUM(sw->cpus_per_task, f->cpus);
    SET_NUM(sw->max_running, f->max_running);
    SET_NUM(sw->ntasks, f->ntasks);
    if (f->tensorboard) sw->tensorboard = 1;
    if (f->per_channel) sw->per_channel = 1;
    SET_NUM(sw->lr_model, f->lr_model);
    SET_NUM(sw->lr_quant, f->lr_quant);
    SET_NUM(sw->alpha, f->alpha);
    SET_NUM(sw->temperature, f->T);
    SET_NUM(sw->holdout, f->holdout);
    if (f->quantizers && sq_sweep_parse_quantizers(cmd, f->quantizers, sw)) return 2;
    if (f->bits && sq_sweep_parse_bits(cmd, f->bits, sw)) return 2;
    if (f->seeds && sq_sweep_parse_seeds(cmd, f->seeds, sw)) return 2;
    if (!sw->nseeds) { sw->nseeds = 1; sw->seeds[0] = 1; }
    if (!sw->out[0]) return sq_cli_fail(cmd, "--out DIR is required (the sweep's results go to DIR/tasks/)");
    if (!sw->data[0]) return sq_cli_fail(cmd, "--data SPEC is required");
    if (!sw->nq) return sq_cli_fail(cmd, "--quantizers is required (e.g. --quantizers ewgs,lsq)");
    if (!sw->nbits) return sq_cli_fail(cmd, "--bits is required (e.g. --bits 1,2,4,8 or w2a4,w4a4)");
    if (sw->teacher[0] && sw->train_teacher_epochs > 0)
        return sq_cli_fail(cmd, "give --teacher CKPT or --train-teacher-epochs N, not both");
    if (!sw->teacher[0] && sw->train_teacher_epochs <= 0)
        return sq_cli_fail(cmd, "--teacher CKPT or --train-teacher-epochs N (with --model) is required");
    if (!sw->teacher[0] && !sw->model[0])
        return sq_cli_fail(cmd, "--train-teacher-epochs needs --model NAME (the teacher's and students' architecture)");
    if (strcmp(sw->loss, "kl") && strcmp(sw->loss, "kl+squat"))
        return sq_cli_fail(cmd, "--loss must be kl or kl+squat (a sweep distills), got '%s'", sw->loss);
    if (!strcmp(sw->loss, "kl") && (sw->squat_tap[0] || sw->squat_weight != 1))
        return sq_cli_fail(cmd, "--squat-weight and --squat-tap need --loss kl+squat");
    if (sw->tensorboard != 0 && sw->tensorboard != 1)
        return sq_cli_fail(cmd, "\"tensorboard\" must be 0 or 1, got %d", sw->tensorboard);
    if (sw->per_channel != 0 && sw->per_channel != 1)
        return sq_cli_fail(cmd, "\"per_channel\" must be 0 or 1, got %d", sw->per_channel);
    if (sw->epochs < 1 || sw->batch < 1 || sw->threads < 1 || sw->group_size < 1)
        return sq_cli_fail(cmd, "--epochs, --batch, --threads and --group-size must be at least 1");
    return 0;
}

/* the first key whose value differs between two flat JSON objects with the same keys */
static void first_difference(const char *a, const char *b, char *key, size_t n)
{
    sq_json *ja = NULL, *jb = NULL;
    if (!sq_json_parse(a, strlen(a), &ja, NULL) && !sq_json_parse(b, strlen(b), &jb, NULL))
        for (int i = 0; i < ja->n && i < jb->n; i++) {
            const sq_json *x = &ja->items[i], *y = &jb->items[i];
            if (x->type != y->type || (x->type == SQ_JSON_NUM && x->num != y->num) ||
                (x->type == SQ_JSON_STR && strcmp(x->str, y->str))) {
                snprintf(key, n, "%s", ja->keys[i]);
                break;
            }
        }
    sq_json_free(ja);
    sq_json_free(jb);
}

/* PREFIX:PATH[,PATH] with each existing PATH made absolute, so that jobs started in another
   directory read the same files ("fashion-mnist" and other bare names stay as they are); 0, or 2
   with an error when the absolute form does not fit into cap bytes */
static int absolute_data(const char *cmd, char *spec, size_t cap)
{
    char *colon = strchr(spec, ':');
    if (!colon) return 0;
    char out[4096], part[4096], abs[PATH_MAX];
    size_t len = snprintf(out, sizeof out, "%.*s:", (int)(colon - spec), spec);
    const char *p = colon + 1;
    for (int first = 1; *p || first; first = 0) {
        size_t k = strcspn(p, ",");
        snprintf(part, sizeof part, "%.*s", (int)k, p);
        const char *use = part[0] != '/' && realpath(part, abs) ? abs : part;
        size_t add = strlen(use) + !first;
        if (len + add >= cap || len + add >= sizeof out || sq_sweep_bad_text(use))
            return sq_cli_fail(cmd, "--data: the absolute form of '%s' is over %zu bytes or has control characters: "
                               "give a shorter path", part, cap - 1);
        snprintf(out + len, sizeof out - len, "%s%s", first ? "" : ",", use);
        len += add;
        p += k;
        if (*p == ',') p++;
        else break;
    }
    memcpy(spec, out, len + 1);
    return 0;
}

/* absolute paths (jobs may start elsewhere), the student architecture from the teacher, and a
   check that DIR does not already hold a different sweep */
static int resolve_config(const char *cmd, sq_sweep *sw, int save)
{
    char abs[PATH_MAX];
    if (sq_cli_mkdirs(sw->out))
        return sq_cli_fail(cmd, "cannot create output directory '%s': %s", sw->out, strerror(errno));
    if (!realpath(sw->out, abs)) return sq_cli_fail(cmd, "cannot resolve '%s'", sw->out);
    if (strlen(abs) >= sizeof sw->out)
        return sq_cli_fail(cmd, "--out: its absolute path is %zu bytes, at most %zu", strlen(abs), sizeof sw->out - 1);
    if (sq_sweep_bad_text(abs)) return sq_cli_fail(cmd, "--out: its absolute path has control characters");
    memcpy(sw->out, abs, strlen(abs) + 1);
    if (sw->teacher[0]) {
        if (!realpath(sw->teacher, abs)) return sq_cli_fail(cmd, "--teacher %s: no such file", sw->teacher);
        if (strlen(abs) >= sizeof sw->teacher)
            return sq_cli_fail(cmd, "--teacher: its absolute path is %zu bytes, at most %zu", strlen(abs),
                               sizeof sw->teacher - 1);
        if (sq_sweep_bad_text(abs)) return sq_cli_fail(cmd, "--teacher: its absolute path has control characters");
        memcpy(sw->teacher, abs, strlen(abs) + 1);
        sq_ckpt_meta tm;
        /* an .onnx teacher is imported with the graph's own shapes and normalisation ('sqakd import'
           first when it needs --input, --mean or --std) */
        if (sq_model_read_meta(sw->teacher, NULL, &tm)) return sq_cli_fail(cmd, "--teacher: %s", sq_last_error());
        if (tm.q.kind != SQ_QUANT_NONE)
            return sq_cli_fail(cmd, "--teacher %s is a quantized student (%s W%dA%d), not a full-precision teacher: "
                               "a sweep's students learn from a full-precision teacher ('sqakd distill "
                               "--allow-quantized-teacher' takes a quantized one)", sw->teacher,
                               sq_quant_kind_name(tm.q.kind), tm.q.wbits, tm.q.abits);
        if (!sw->model[0]) snprintf(sw->model, sizeof sw->model, "%s", tm.arch);
    }
    if (absolute_data(cmd, sw->data, sizeof sw->data)) return 2;
    char path[4096];
    snprintf(path, sizeof path, "%s/sweep.json", sw->out);
    sq_jbuf now, was;
    sq_jbuf_init(&now);
    sq_jbuf_init(&was);
    sq_sweep_to_json(sw, 1, &now);
    int rc = 0;
    if (file_exists(path)) {
        sq_sweep old;
        sq_sweep_defaults(&old);
        if (sq_sweep_load(cmd, path, &old)) { rc = 2; goto done; }
        sq_sweep_to_json(&old, 1, &was);
        if (strcmp(sq_jbuf_cstr(&now), sq_jbuf_cstr(&was))) {
            char key[64] = "?";
            first_difference(sq_jbuf_cstr(&was), sq_jbuf_cstr(&now), key, sizeof key);
            rc = sq_cli_fail(cmd, "%s holds a different sweep (its \"%s\" differs): use another --out, or the "
                             "same settings to resume it", path, key);
            goto done;
        }
    }
    if (save) {
        sq_jbuf_reset(&now);
        sq_sweep_to_json(sw, 0, &now);
        sq_jbuf_raw(&now, "\n", 1);
        if (sq_write_file_atomic(path, sq_jbuf_cstr(&now), strlen(sq_jbuf_cstr(&now))))
            rc = sq_cli_fail(cmd, "%s", sq_last_error());
    }
done:
    sq_jbuf_free(&now);
    sq_jbuf_free(&was);
    return rc;
}

/* the shared flags of a distillation (or teacher evaluation) with this sweep's settings */
static void common_for(const sq_sweep *sw, uint64_t seed, int quiet, sq_cli_common *c)
{
    sq_distill_defaults(c);
    c->data = sw->data;
    c->device = sw->device;
    c->augment = sw->augment[0] ? sw->augment : NULL;
    c->resize = sw->resize[0] ? sw->resize : NULL;
    c->holdout = sw->holdout;
    c->cfg.epochs = sw->epochs;
    c->cfg.batch = sw->batch;
    c->cfg.threads = sw->threads;
    c->cfg.seed = seed;
    c->cfg.max_steps_per_epoch = sw->max_steps;
    c->cfg.lr = sw->lr_model;
    c->cfg.lr_quant = sw->lr_quant;
    c->cfg.alpha = sw->alpha;
    c->cfg.T = sw->temperature;
    c->cfg.quiet = quiet;
    c->cfg.tensorboard = sw->tensorboard;
    c->cfg.squat = !strcmp(sw->loss, "kl+squat");
    c->cfg.squat_weight = sw->squat_weight;
    c->cfg.squat_tap = sw->squat_tap[0] ? sw->squat_tap : NULL;
}

static int write_json(const char *cmd, const char *path, sq_jbuf *jb)
{
    sq_jbuf_raw(jb, "\n", 1);
    if (sq_write_file_atomic(path, sq_jbuf_cstr(jb), strlen(sq_jbuf_cstr(jb))))
        return sq_cli_fail(cmd, "%s", sq_last_error());
    return 0;
}

static void eval_fields(sq_jbuf *jb, const sq_eval_result *er)
{
    sq_jbuf_kv_int(jb, "eval_n", er->n);
    if (er->n > 0 && er->top1 >= 0) {
        sq_jbuf_kv_num(jb, "top1", er->top1);
        sq_jbuf_kv_num(jb, "top5", er->top5);
    } else {
        sq_jbuf_key(jb, "top1"); sq_jbuf_null(jb);
        sq_jbuf_key(jb, "top5"); sq_jbuf_null(jb);
    }
}

/* DIR/tasks/teacher/result.json: the teacher's accuracy on the evaluation split (its reference
   line in the report); trains it first when the sweep has no given teacher */
static int ensure_teacher(const char *cmd, const sq_sweep *sw, int quiet)
{
    if (sq_sweep_task_done(sw, "teacher")) return 0;
    char dir[4096], ckpt[4096], res[4096];
    sq_sweep_task_path(sw, "teacher", NULL, dir, sizeof dir);
    sq_sweep_teacher_ckpt(sw, ckpt, sizeof ckpt);
    double secs = 0;
    if (!sw->teacher[0]) {
        char ep[32], batch[32], th[32], seed[32], ms[32], ho[32], last[4200];
        snprintf(ep, sizeof ep, "%d", sw->train_teacher_epochs);
        snprintf(batch, sizeof batch, "%d", sw->batch);
        snprintf(th, sizeof th, "%d", sw->threads);
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)sw->seeds[0]);
        snprintf(ms, sizeof ms, "%d", sw->max_steps);
        snprintf(ho, sizeof ho, "%g", sw->holdout);
        snprintf(last, sizeof last, "%s/last.state.safetensors", dir);
        char *av[32];
        int ac = 0;
        av[ac++] = "train";
        av[ac++] = "--model"; av[ac++] = (char *)sw->model;
        av[ac++] = "--data"; av[ac++] = (char *)sw->data;
        av[ac++] = "--epochs"; av[ac++] = ep;
        av[ac++] = "--batch"; av[ac++] = batch;
        av[ac++] = "--threads"; av[ac++] = th;
        av[ac++] = "--seed"; av[ac++] = seed;
        av[ac++] = "--max-steps"; av[ac++] = ms;
        av[ac++] = "--holdout"; av[ac++] = ho;
        av[ac++] = "--device"; av[ac++] = (char *)sw->device;
        if (sw->augment[0]) { av[ac++] = "--augment"; av[ac++] = (char *)sw->augment; }
        if (sw->resize[0]) { av[ac++] = "--resize"; av[ac++] = (char *)sw->resize; }
        if (quiet) av[ac++] = "--quiet";
        av[ac++] = file_exists(last) ? "--resume" : "--out";
        av[ac++] = dir;
        av[ac] = NULL;
        fprintf(stderr, "sqakd %s: training the teacher (%s, %d epochs) in %s\n", cmd, sw->model,
                sw->train_teacher_epochs, dir);
        double t0 = sq_now();
        if (sq_cmd_train(ac, av)) return sq_cli_fail(cmd, "the teacher's training failed (see above)");
        secs = sq_now() - t0;
    }
    sq_cli_common c;
    common_for(sw, sw->seeds[0], 1, &c);
    sq_distill_ctx d;
    if (sq_distill_open(cmd, &c, ckpt, &d)) return 2;
    sq_eval_result er;
    memset(&er, 0, sizeof er);
    if (d.have_test && sq_evaluate(d.teacher, NULL, &d.test, sw->batch, &er)) {
        sq_distill_close(&d);
        return sq_cli_fail(cmd, "teacher evaluation: %s", sq_last_error());
    }
    sq_jbuf jb;
    sq_jbuf_init(&jb);
    sq_jbuf_begin_obj(&jb);
    sq_jbuf_kv_str(&jb, "id", "teacher");
    sq_jbuf_kv_str(&jb, "role", "teacher");
    sq_jbuf_kv_str(&jb, "model", d.tm.arch);
    sq_jbuf_kv_str(&jb, "quantizer", "fp32");
    sq_jbuf_kv_int(&jb, "wbits", 32);
    sq_jbuf_kv_int(&jb, "abits", 32);
    sq_jbuf_kv_int(&jb, "seed", (int64_t)sw->seeds[0]);
    sq_jbuf_kv_str(&jb, "status", "ok");
    sq_jbuf_kv_str(&jb, "checkpoint", ckpt);
    sq_jbuf_kv_str(&jb, "data", sw->data);
    eval_fields(&jb, &er);
    sq_jbuf_kv_num(&jb, "agreement", 100);
    sq_jbuf_kv_num(&jb, "kl", 0);
    sq_jbuf_kv_num(&jb, "model_bytes", sq_model_size_bytes(d.teacher));
    sq_jbuf_kv_num(&jb, "train_seconds", secs);
    sq_jbuf_end_obj(&jb);
    sq_distill_close(&d);
    int rc = sq_cli_mkdirs(dir) ? sq_cli_fail(cmd, "cannot create %s: %s", dir, strerror(errno)) : 0;
    sq_sweep_task_path(sw, "teacher", "result.json", res, sizeof res);
    if (!rc) rc = write_json(cmd, res, &jb);
    sq_jbuf_free(&jb);
    return rc;
}

typedef struct {
    const char *cmd;
    const sq_sweep *sw;
    int group, failed;
    uint64_t seed;
} result_ctx;

/* DIR/tasks/<id>/result.json of a student that finished or diverged (a diverged student is a
   result too: re-running gives the same); other failures leave none, so a re-run retries */
static void write_student_result(void *vctx, const sq_distill_ctx *d, const sq_student_spec *sp, const sq_student *s)
{
    result_ctx *ctx = vctx;
    if (s->status != SQ_OK && s->status != SQ_ENUMERIC) {
        ctx->failed++;
        return;
    }
    sq_jbuf jb;
    sq_jbuf_init(&jb);
    sq_jbuf_begin_obj(&jb);
    sq_jbuf_kv_str(&jb, "id", sp->name);
    sq_jbuf_kv_str(&jb, "role", "student");
    sq_jbuf_kv_str(&jb, "model", s->model->arch);
    sq_jbuf_kv_str(&jb, "quantizer", sq_quant_kind_name(sp->q.kind));
    sq_jbuf_kv_int(&jb, "wbits", sp->q.wbits);
    sq_jbuf_kv_int(&jb, "abits", sp->q.abits);
    sq_jbuf_kv_int(&jb, "seed", (int64_t)ctx->seed);
    sq_jbuf_kv_int(&jb, "group", ctx->group);
    sq_jbuf_kv_str(&jb, "status", s->status == SQ_OK ? "ok" : "diverged");
    if (s->status != SQ_OK) sq_jbuf_kv_str(&jb, "error", s->error);
    sq_jbuf_kv_int(&jb, "epochs", s->epochs_done);
    sq_jbuf_kv_int(&jb, "steps", s->steps);
    sq_jbuf_kv_str(&jb, "data", ctx->sw->data);
    eval_fields(&jb, &s->eval);
    if (s->eval.n > 0 && s->eval.agreement >= 0) {
        sq_jbuf_kv_num(&jb, "agreement", s->eval.agreement);
        sq_jbuf_kv_num(&jb, "kl", s->eval.kl);
    } else {
        sq_jbuf_key(&jb, "agreement"); sq_jbuf_null(&jb);
        sq_jbuf_key(&jb, "kl"); sq_jbuf_null(&jb);
    }
    sq_jbuf_kv_num(&jb, "model_bytes", sq_model_size_bytes(s->model));
    sq_jbuf_kv_num(&jb, "train_seconds", s->train_seconds);
    sq_jbuf_kv_num(&jb, "eval_seconds", s->eval_seconds);
    sq_jbuf_end_obj(&jb);
    char dir[4096], path[4096];
    sq_sweep_task_path(ctx->sw, sp->name, NULL, dir, sizeof dir);
    sq_sweep_task_path(ctx->sw, sp->name, "result.json", path, sizeof path);
    if (sq_cli_mkdirs(dir) || write_json(ctx->cmd, path, &jb)) ctx->failed++;
    sq_jbuf_free(&jb);
}

/* runs the unfinished students of group g as one multi-student process; 0, 1 (some failed), 2 */
static int run_group(const char *cmd, const sq_sweep *sw, int g, int quiet, int argc, char **argv)
{
    sq_sweep_task *tasks = sq_xcalloc(SQ_SWEEP_MAX_TASKS, sizeof *tasks);
    int ngroups, n = sq_sweep_tasks(sw, tasks, &ngroups), ns = 0, in_group = 0, rc = 0;
    sq_student_spec *specs = sq_xcalloc(SQ_SWEEP_MAX_TASKS, sizeof *specs);
    uint64_t seed = 0;
    if (g < 0 || g >= ngroups) {
        rc = sq_cli_fail(cmd, "--run-group %d: this sweep has groups 0..%d", g, ngroups - 1);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        if (tasks[i].group != g) continue;
        in_group++;
        seed = sw->seeds[tasks[i].s];
        if (sq_sweep_task_done(sw, tasks[i].id)) continue;
        sq_student_spec *sp = &specs[ns++];
        snprintf(sp->name, sizeof sp->name, "%s", tasks[i].id);
        sp->q = (sq_quant_opts){.kind = sw->quant[tasks[i].q], .wbits = sw->wbits[tasks[i].b], .abits = sw->abits[tasks[i].b],
                                 .per_channel = sw->per_channel};
        sp->lr = sp->lr_quant = -1;
    }
    if (!ns) {
        fprintf(stderr, "sqakd %s: group %d: all %d tasks have results; skipped\n", cmd, g, in_group);
        goto done;
    }
    char teacher[4096], tasks_dir[4096];
    sq_sweep_teacher_ckpt(sw, teacher, sizeof teacher);
    if (!file_exists(teacher)) {
        rc = sq_cli_fail(cmd, "group %d: teacher %s does not exist yet (train it first: sqakd sweep --config %s/sweep.json "
                         "--run-teacher)", g, teacher, sw->out);
        goto done;
    }
    snprintf(tasks_dir, sizeof tasks_dir, "%s/tasks", sw->out);
    fprintf(stderr, "sqakd %s: group %d of %d: %d student%s (seed %llu)\n", cmd, g, ngroups, ns, ns == 1 ? "" : "s",
            (unsigned long long)seed);
    sq_cli_common c;
    common_for(sw, seed, quiet, &c);
    c.out = tasks_dir;
    c.resume = tasks_dir;   /* a student with a saved state continues from it */
    sq_distill_ctx d;
    if (sq_distill_open(cmd, &c, teacher, &d)) { rc = 2; goto done; }
    result_ctx ctx = {.cmd = cmd, .sw = sw, .group = g, .seed = seed};
    rc = sq_distill_students(cmd, &c, &d, sw->model[0] ? sw->model : NULL, NULL, specs, ns, argc, argv,
                             write_student_result, &ctx);
    sq_distill_close(&d);
    if (rc != 2) rc = ctx.failed ? 1 : 0;   /* diverged students are results, not failures */
done:
    free(tasks);
    free(specs);
    return rc;
}

static int pending_groups(const sq_sweep *sw, int *pending, int *ngroups, int *ntasks, int *ndone)
{
    sq_sweep_task *tasks = sq_xcalloc(SQ_SWEEP_MAX_TASKS, sizeof *tasks);
    int n = sq_sweep_tasks(sw, tasks, ngroups), np = 0;
    *ntasks = n;
    *ndone = 0;
    for (int i = 0; i < n; i++) {
        if (sq_sweep_task_done(sw, tasks[i].id)) { (*ndone)++; continue; }
        if (pending && (!np || pending[np - 1] != tasks[i].group)) pending[np++] = tasks[i].group;
    }
    free(tasks);
    return np;
}

int sq_cmd_sweep(int argc, char **argv)
{
    const char *cmd = "sweep";
    sweep_flags f = {.tte = -1, .epochs = -1, .batch = -1, .threads = -1, .max_steps = -1, .group_size = -1,
                     .gpus = -1, .cpus = -1, .max_running = -1, .run_group = -1, .ntasks = -1,
                     .lr_model = NAN, .lr_quant = NAN, .alpha = NAN, .T = NAN, .holdout = NAN, .squat_weight = NAN};
    sq_arg a[] = {
        {"--config", SQ_ARG_STR, &f.config, 0, 0, "JSON configuration (keys as in DIR/sweep.json); flags override it (default: none)"},
        {"--model", SQ_ARG_STR, &f.model, 0, 0, "student architecture (default: the teacher's); the teacher's with --train-teacher-epochs"},
        {"--data", SQ_ARG_STR, &f.data, 0, 0, "data SPEC (see 'sqakd train --help')"},
        {"--teacher", SQ_ARG_STR, &f.teacher, 0, 0, "full-precision teacher checkpoint (required unless --train-teacher-epochs)"},
        {"--train-teacher-epochs", SQ_ARG_INT, &f.tte, 1, 100000, "train the teacher first (sqakd train defaults) into DIR/tasks/teacher/"},
        {"--quantizers", SQ_ARG_STR, &f.quantizers, 0, 0, "comma-separated: ewgs, pact, lsq, dorefa (required)"},
        {"--bits", SQ_ARG_STR, &f.bits, 0, 0, "comma-separated bit-widths: wWaA or B (= wBaB), e.g. 1,2,4,8 (required)"},
        {"--seeds", SQ_ARG_STR, &f.seeds, 0, 0, "comma-separated seeds (default 1)"},
        {"--epochs", SQ_ARG_INT, &f.epochs, 1, 100000, "epochs per student (default 10)"},
        {"--batch", SQ_ARG_INT, &f.batch, 1, 65536, "batch size (default 128)"},
        {"--threads", SQ_ARG_INT, &f.threads, 1, 1024, "CPU threads (default: the CPUs this process may use)"},
        {"--max-steps", SQ_ARG_INT, &f.max_steps, 0, 100000000, "at most N steps per epoch (0 = all; default 0)"},
        {"--lr-model", SQ_ARG_FLOAT, &f.lr_model, 0, 100, "Adam lr of model parameters (default 1e-3)"},
        {"--lr-quant", SQ_ARG_FLOAT, &f.lr_quant, 0, 100, "Adam lr of quantizer parameters (default 1e-5)"},
        {"--alpha", SQ_ARG_FLOAT, &f.alpha, 0, 1e6, "distillation loss weight (default 1)"},
        {"--temperature", SQ_ARG_FLOAT, &f.T, 0.01, 1000, "distillation temperature (default 4)"},
        {"--loss", SQ_ARG_STR, &f.loss, 0, 0, "kl (SQAKD; default) | kl+squat (plus SQuaT's quantized-feature term, docs/squat.md)"},
        {"--squat-weight", SQ_ARG_FLOAT, &f.squat_weight, 0, 1e6, "kl+squat: weight of the feature term (default 1)"},
        {"--squat-tap", SQ_ARG_STR, &f.squat_tap, 0, 0, "kl+squat: the quantized layer whose input is compared (default: the last quantized conv)"},
        {"--holdout", SQ_ARG_FLOAT, &f.holdout, 0, 0.9, "evaluate on this fraction of the train split (default 0: the test split)"},
        {"--augment", SQ_ARG_STR, &f.augment, 0, 0, "none | flip | crop | crop,flip (default by data)"},
        {"--resize", SQ_ARG_STR, &f.resize, 0, 0, SQ_CLI_RESIZE_HELP},
        {"--device", SQ_ARG_STR, &f.device, 0, 0, "auto | cpu | cuda (default auto)"},
        {"--group-size", SQ_ARG_INT, &f.group_size, 1, SQ_MAX_STUDENTS, "students per process (one teacher pass; default 4)"},
        {"--out", SQ_ARG_STR, &f.out, 0, 0, "sweep directory: sweep.json, tasks/<id>/ (checkpoints, result.json) (required)"},
        {"--slurm", SQ_ARG_FLAG, &f.slurm, 0, 0, "write DIR/sweep.sbatch (a job array, one task per group) and submit it"},
        {"--dry-run", SQ_ARG_FLAG, &f.dry_run, 0, 0, "with --slurm: write the scripts, do not submit"},
        {"--partition", SQ_ARG_STR, &f.partition, 0, 0, "Slurm partition (default: the cluster's default)"},
        {"--time", SQ_ARG_STR, &f.time, 0, 0, "Slurm time limit per group (default 01:00:00)"},
        {"--gpus", SQ_ARG_INT, &f.gpus, 0, 64, "GPUs per group (--gres=gpu:N; default 0)"},
        {"--cpus-per-task", SQ_ARG_INT, &f.cpus, 1, 1024, "Slurm CPUs per group (default --threads)"},
        {"--max-running", SQ_ARG_INT, &f.max_running, 1, 100000, "at most N array tasks at once (default: no limit)"},
        {"--ntasks-per-group", SQ_ARG_INT, &f.ntasks, 1, 4096, "with --slurm: run each group as an N-rank data-parallel job (srun inside the array task; --gpus then per rank; --batch the global batch; default 1)"},
        {"--bin", SQ_ARG_STR, &f.bin, 0, 0, "sqakd executable the jobs run (default: this one)"},
        {"--run-group", SQ_ARG_INT, &f.run_group, 0, 1000000, "run one group (what each array task does; default: every group, locally)"},
        {"--run-teacher", SQ_ARG_FLAG, &f.run_teacher, 0, 0, "train and evaluate the teacher only"},
        {"--tensorboard", SQ_ARG_FLAG, &f.tensorboard, 0, 0, "TensorBoard event files of every student in DIR/tasks/tensorboard/<task id>/ (recorded in sweep.json)"},
        {"--per-channel", SQ_ARG_FLAG, &f.per_channel, 0, 0, "one weight quantizer per output channel for every student (recorded in sweep.json)"},
        {"--quiet", SQ_ARG_FLAG, &f.quiet, 0, 0, "no progress output"},
    };
    const char *pos[1];
    int npos, r = sq_args_parse(cmd, USAGE, argc, argv, a, (int)(sizeof a / sizeof a[0]), pos, 0, &npos);
    if (r) return r == 1 ? 0 : 2;
    sq_sweep sw;
    int worker = f.run_group >= 0 || f.run_teacher;
    char self[PATH_MAX] = "";
    if (f.slurm && !f.bin) {
        ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
        if (len <= 0) return sq_cli_fail(cmd, "cannot tell where this sqakd executable is: give --bin PATH");
        self[len] = 0;
    }
    const char *bin = f.bin ? f.bin : self;
    if (check_str(cmd, "--bin", f.bin, PATH_MAX, NULL) || build_config(cmd, &f, &sw) ||
        (f.slurm && sq_sweep_slurm_check(cmd, &sw, bin)) || resolve_config(cmd, &sw, !worker))
        return 2;
    if (f.run_teacher) return ensure_teacher(cmd, &sw, f.quiet);
    if (f.run_group >= 0) {
        if (sw.teacher[0] && ensure_teacher(cmd, &sw, f.quiet)) return 2;
        return run_group(cmd, &sw, f.run_group, f.quiet, argc, argv);
    }
    int *pending = sq_xcalloc(SQ_SWEEP_MAX_TASKS, sizeof *pending);
    int ngroups, ntasks, ndone, np = pending_groups(&sw, pending, &ngroups, &ntasks, &ndone), rc = 0;
    fprintf(stderr, "sqakd %s: %d tasks in %d group%s (%d quantizer%s x %d bit-width%s x %d seed%s); %d done, %d "
            "group%s to run; results in %s/tasks/\n", cmd, ntasks, ngroups, ngroups == 1 ? "" : "s", sw.nq, sw.nq == 1 ? "" : "s", sw.nbits,
            sw.nbits == 1 ? "" : "s", sw.nseeds, sw.nseeds == 1 ? "" : "s", ndone, np, np == 1 ? "" : "s", sw.out);
    if (f.slurm) {
        int teacher_job = !sw.teacher[0] && !sq_sweep_task_done(&sw, "teacher");
        if (!np && !teacher_job) {
            fprintf(stderr, "sqakd %s: every task has a result; nothing to submit\n", cmd);
        } else {
            rc = sq_sweep_slurm(cmd, &sw, bin, pending, np, teacher_job, f.dry_run);
        }
        free(pending);
        return rc;
    }
    if (sw.ntasks > 1) {
        free(pending);
        return sq_cli_fail(cmd, "--ntasks-per-group %d applies to --slurm jobs; here, run a group's ranks yourself: "
                           "mpirun -np %d sqakd sweep --config %s/sweep.json --run-group G", sw.ntasks, sw.ntasks, sw.out);
    }
    if (f.dry_run) fprintf(stderr, "sqakd %s: --dry-run only applies with --slurm\n", cmd);
    if (!f.dry_run && ensure_teacher(cmd, &sw, f.quiet)) rc = 2;
    for (int i = 0; i < np && rc != 2 && !f.dry_run; i++) {
        int gr = run_group(cmd, &sw, pending[i], f.quiet, argc, argv);
        if (gr) rc = gr == 2 ? 2 : 1;
    }
    free(pending);
    if (!rc) {
        pending_groups(&sw, NULL, &ngroups, &ntasks, &ndone);
        fprintf(stderr, "sqakd %s: %d of %d tasks have results; 'sqakd report %s' tabulates and plots them\n", cmd,
                ndone, ntasks, sw.out);
    }
    return rc;
}
