/* test_multi.c: several students from one teacher pass (sq_train_multi) equal separate
   single-student runs bit for bit (weights, quantizer parameters, optimizer state), an EWGS
   delta update included; a student whose loss turns non-finite is stopped and reported while the
   other finishes; 'distill --students' writes OUT/<name>/ like single runs. On 2 threads the
   students run at once, one thread each (the CPU backend's run_models), and still equal single
   runs on one thread bit for bit; run_models gives every call one team of the right size. */
#include "sqakd/checkpoint.h"
#include "sqakd/multi.h"
#include "sqakd/json.h"
#include "sqakd/safetensors.h"
#include "train/train_internal.h"
#include "util_check.h"
#include "util_fixtures.h"
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_tmp[256];
static void mk_tmp(void)
{
    cr_assert_not_null(sqt_mkdtemp(g_tmp, sizeof g_tmp, "sqakd_multi"));
    /* one thread: these models are tiny, and spinning OpenMP threads crawl on a busy machine */
    sq_backend_cpu()->set_threads(1);
}
static void rm_tmp(void)
{
    cr_expect_eq(sqt_rmtree(g_tmp), 0);
}

/* 96 labelled 1x8x8 images of 3 classes */
static void tiny_dataset(sq_dataset *ds) { sqt_tiny_dataset(ds, 96); }

static sq_model *teacher_model(void)
{
    sq_model *t;
    cr_assert_eq(sq_model_create("smallcnn", 1, 8, 8, 3, &t), SQ_OK);
    cr_assert_eq(sq_model_setup(t, sq_backend_cpu(), 16, 0), SQ_OK, "%s", sq_last_error());
    sq_model_init_weights(t, 7);
    return t;
}

static void base_cfg(sq_train_cfg *cfg)
{
    sq_train_cfg_defaults(cfg);
    cfg->loss = SQ_LOSS_KL;
    cfg->opt = SQ_OPT_ADAM;
    cfg->lr = 1e-3f;
    cfg->lr_quant = 1e-4f;
    cfg->epochs = 2;
    cfg->batch = 16;
    cfg->threads = 1;
    cfg->seed = 3;
    cfg->crop_pad = 1;
    cfg->flip = 1;
    cfg->log_every = 2;
    cfg->quiet = 1;
}

/* a student as 'sqakd distill' makes it: the teacher's weights, quantizers from the first batch */
static sq_model *student_model(sq_model *t, const sq_dataset *ds, const sq_train_cfg *cfg, sq_quant_kind k,
                               int bits)
{
    sq_quant_opts q = {.kind = k, .wbits = bits, .abits = bits};
    sq_model *s;
    cr_assert_eq(sq_model_create("smallcnn", 1, 8, 8, 3, &s), SQ_OK);
    cr_assert_eq(sq_model_set_quant(s, &q), SQ_OK);
    cr_assert_eq(sq_model_setup(s, sq_backend_cpu(), cfg->batch, 1), SQ_OK, "%s", sq_last_error());
    cr_assert_gt(sq_model_copy_matching(s, t), 0);
    cr_assert_eq(sq_train_quant_init_first_batch(s, ds, cfg), SQ_OK, "%s", sq_last_error());
    return s;
}

static void meta_for(sq_ckpt_meta *m, sq_quant_kind k, int bits)
{
    memset(m, 0, sizeof *m);
    snprintf(m->arch, sizeof m->arch, "smallcnn");
    m->in_c = 1; m->in_h = 8; m->in_w = 8; m->classes = 3;
    m->q = (sq_quant_opts){.kind = k, .wbits = bits, .abits = bits};
}

static void single_run(sq_model *t, const sq_dataset *ds, const sq_train_cfg *base, sq_quant_kind k, int bits,
                       const char *dir)
{
    sq_train_cfg cfg = *base;
    cfg.out_dir = dir;
    if (k != SQ_QUANT_EWGS) cfg.delta_every = 0;
    cr_assert_eq(mkdir(dir, 0755), 0);
    sq_model *s = student_model(t, ds, &cfg, k, bits);
    sq_train_io io = {.train = ds, .test = ds, .model = s, .teacher = t};
    meta_for(&io.meta, k, bits);
    cr_assert_eq(sq_train_run(&cfg, &io), SQ_OK, "%s", sq_last_error());
    sq_model_free(s);
}

static void setup_student(sq_student *st, sq_model *t, const sq_dataset *ds, const sq_train_cfg *base,
                          sq_quant_kind k, int bits, const char *dir)
{
    memset(st, 0, sizeof *st);
    snprintf(st->name, sizeof st->name, "%s_w%da%d", sq_quant_kind_name(k), bits, bits);
    st->cfg = *base;
    st->cfg.out_dir = dir;
    if (k != SQ_QUANT_EWGS) st->cfg.delta_every = 0;
    cr_assert_eq(mkdir(dir, 0755), 0);
    st->model = student_model(t, ds, &st->cfg, k, bits);
    meta_for(&st->meta, k, bits);
}

/* the last line of DIR/metrics.jsonl, parsed */
static sq_json *last_metrics(const char *dir)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    size_t n;
    char *text = (char *)sqt_slurp(path, &n);
    cr_assert_not_null(text, "cannot read %s", path);
    while (n && text[n - 1] == '\n') n--;
    size_t start = n;
    while (start && text[start - 1] != '\n') start--;
    sq_json *o = NULL;
    cr_assert_eq(sq_json_parse(text + start, n - start, &o, NULL), SQ_OK, "%s: last line does not parse", path);
    free(text);
    return o;
}

/* every tensor of two safetensors files is byte-identical */
static void expect_same_file(const char *a, const char *b)
{
    sq_st_file fa, fb;
    cr_assert_eq(sq_st_read(a, &fa), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_st_read(b, &fb), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(fa.ntensors, fb.ntensors, "%s: %d tensors, %s: %d", a, fa.ntensors, b, fb.ntensors);
    int checked = 0;
    for (int i = 0; i < fa.ntensors; i++) {
        const sq_st_tensor *tb = sq_st_find(&fb, fa.tensors[i].name);
        cr_assert_not_null(tb, "%s lacks %s", b, fa.tensors[i].name);
        cr_assert_eq(fa.tensors[i].nbytes, tb->nbytes);
        cr_expect_eq(memcmp(fa.tensors[i].data, tb->data, tb->nbytes), 0, "%s differs between %s and %s",
                     fa.tensors[i].name, a, b);
        checked++;
    }
    cr_expect_gt(checked, 3);
    cr_expect_str_eq(sq_st_meta(&fa, "step"), sq_st_meta(&fb, "step"));
    sq_st_free(&fa);
    sq_st_free(&fb);
}

static void expect_same_run(const char *da, const char *db)
{
    const char *files[] = {"last.safetensors", "last.state.safetensors", "best.safetensors"};
    for (int i = 0; i < 3; i++) {
        char a[1100], b[1100];
        snprintf(a, sizeof a, "%s/%s", da, files[i]);
        snprintf(b, sizeof b, "%s/%s", db, files[i]);
        expect_same_file(a, b);
    }
}

Test(multi, two_students_equal_two_single_runs, .init = mk_tmp, .fini = rm_tmp)
{
    sq_dataset ds;
    tiny_dataset(&ds);
    sq_model *t = teacher_model();
    sq_train_cfg cfg;
    base_cfg(&cfg);
    cfg.delta_every = 1;   /* the EWGS student also updates its delta from the Hessian trace */
    cfg.delta_batches = 1;
    char d[4][400];
    const char *names[] = {"single_ewgs", "single_lsq", "multi_ewgs", "multi_lsq"};
    for (int i = 0; i < 4; i++) snprintf(d[i], sizeof d[i], "%s/%s", g_tmp, names[i]);
    single_run(t, &ds, &cfg, SQ_QUANT_EWGS, 4, d[0]);
    single_run(t, &ds, &cfg, SQ_QUANT_LSQ, 2, d[1]);
    sq_student st[2];
    setup_student(&st[0], t, &ds, &cfg, SQ_QUANT_EWGS, 4, d[2]);
    setup_student(&st[1], t, &ds, &cfg, SQ_QUANT_LSQ, 2, d[3]);
    cr_assert_eq(sq_train_multi(&cfg, &ds, &ds, t, st, 2), SQ_OK, "%s", sq_last_error());
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(st[i].status, SQ_OK, "%s: %s", st[i].name, st[i].error);
        cr_expect_eq(st[i].epochs_done, 2);
        cr_expect_eq(st[i].steps, 2 * (96 / 16));
        cr_expect_gt(st[i].eval.n, 0);
        cr_expect(st[i].eval.agreement >= 0 && st[i].eval.agreement <= 100, "agreement %g", st[i].eval.agreement);
        cr_expect(st[i].eval.top1 >= 0, "top1 %g", st[i].eval.top1);
        cr_expect(st[i].train_seconds > 0);
        sq_model_free(st[i].model);
    }
    expect_same_run(d[0], d[2]);
    expect_same_run(d[1], d[3]);
    /* the multi-student run evaluates every student against the teacher's logits computed once
       for the run: the same agreement and KL as the single runs, which computed theirs each epoch */
    for (int i = 0; i < 2; i++) {
        sq_json *a = last_metrics(d[i]), *b = last_metrics(d[i + 2]);
        const char *keys[] = {"agreement", "kl", "top1", "top5"};
        for (int j = 0; j < 4; j++)
            cr_expect_eq(sq_json_num(sq_json_get(a, keys[j]), -1), sq_json_num(sq_json_get(b, keys[j]), -2),
                         "%s: %s %g in the single run, %g in the multi-student run", names[i], keys[j],
                         sq_json_num(sq_json_get(a, keys[j]), -1), sq_json_num(sq_json_get(b, keys[j]), -2));
        sq_json_free(a);
        sq_json_free(b);
    }
    sq_model_free(t);
    sq_dataset_free(&ds);
}

/* the same with 2 threads: the CPU backend runs the two students at once, one thread each, so
   each must equal its single run on one thread bit for bit (any race between them, or a team of
   the wrong size on a shape that splits by thread count, shows as a difference) */
Test(multi, two_students_at_once_on_two_threads_equal_single_runs_on_one, .init = mk_tmp, .fini = rm_tmp)
{
    sq_dataset ds;
    tiny_dataset(&ds);
    sq_model *t = teacher_model();
    sq_train_cfg cfg;
    base_cfg(&cfg);
    char d[4][400];
    const char *names[] = {"single_ewgs", "single_dorefa", "multi_ewgs", "multi_dorefa"};
    for (int i = 0; i < 4; i++) snprintf(d[i], sizeof d[i], "%s/%s", g_tmp, names[i]);
    single_run(t, &ds, &cfg, SQ_QUANT_EWGS, 4, d[0]);
    single_run(t, &ds, &cfg, SQ_QUANT_DOREFA, 2, d[1]);
    sq_student st[2];
    setup_student(&st[0], t, &ds, &cfg, SQ_QUANT_EWGS, 4, d[2]);
    setup_student(&st[1], t, &ds, &cfg, SQ_QUANT_DOREFA, 2, d[3]);
    sq_backend_cpu()->set_threads(2);
    cfg.threads = 2;
    const sq_status rs = sq_train_multi(&cfg, &ds, &ds, t, st, 2);
    sq_backend_cpu()->set_threads(1);
    cr_assert_eq(rs, SQ_OK, "%s", sq_last_error());
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(st[i].status, SQ_OK, "%s: %s", st[i].name, st[i].error);
        sq_model_free(st[i].model);
    }
    expect_same_run(d[0], d[2]);
    expect_same_run(d[1], d[3]);
    sq_model_free(t);
    sq_dataset_free(&ds);
}

/* run_models: every call once, call i in team i % teams, with the threads split among the teams */
static int g_calls[8], g_team[8], g_threads[8], g_level[8];
static void record_call(void *ctx, int i)
{
    (void)ctx;
#pragma omp atomic
    g_calls[i]++;
    g_level[i] = omp_get_active_level();
    g_team[i] = omp_get_active_level() ? omp_get_ancestor_thread_num(omp_get_level()) : 0;
    g_threads[i] = omp_get_max_threads();
}

Test(multi, run_models_splits_the_threads_into_teams)
{
    const sq_backend *be = sq_backend_cpu();
    cr_assert_not_null(be->run_models);
    if (omp_get_num_procs() < 2) cr_skip("one CPU: no teams to form");
    be->set_threads(2);
    memset(g_calls, 0, sizeof g_calls);
    be->run_models(5, record_call, NULL);
    for (int i = 0; i < 5; i++) {
        cr_expect_eq(g_calls[i], 1, "call %d ran %d times", i, g_calls[i]);
        cr_expect_eq(g_level[i], 1, "call %d: not in a team (active level %d)", i, g_level[i]);
        cr_expect_eq(g_team[i], i % 2, "call %d in team %d", i, g_team[i]);
        cr_expect_eq(g_threads[i], 1, "call %d may use %d threads, want 1 (2 threads, 2 teams)", i, g_threads[i]);
    }
    /* one model: no team, all the threads */
    memset(g_calls, 0, sizeof g_calls);
    be->run_models(1, record_call, NULL);
    cr_expect(g_calls[0] == 1 && g_level[0] == 0 && g_threads[0] == 2, "one call: %d runs, level %d, %d threads",
              g_calls[0], g_level[0], g_threads[0]);
    be->set_threads(1);
    memset(g_calls, 0, sizeof g_calls);
    be->run_models(3, record_call, NULL); /* one thread: in order, alone */
    for (int i = 0; i < 3; i++) cr_expect(g_calls[i] == 1 && g_level[i] == 0, "call %d on one thread", i);
}

/* each metrics line says where the run's time went so far: data, steps, evaluation, checkpoints
   and other, none negative, adding up to the elapsed time */
Test(multi, metrics_lines_carry_the_run_time_split, .init = mk_tmp, .fini = rm_tmp)
{
    sq_dataset ds;
    tiny_dataset(&ds);
    sq_model *t = teacher_model();
    sq_train_cfg cfg;
    base_cfg(&cfg);
    char d[400];
    snprintf(d, sizeof d, "%s/run", g_tmp);
    single_run(t, &ds, &cfg, SQ_QUANT_LSQ, 4, d);
    sq_json *m = last_metrics(d);
    const char *keys[] = {"time_data_s", "time_step_s", "time_eval_s", "time_checkpoint_s", "time_other_s"};
    double sum = 0;
    for (int j = 0; j < 5; j++) {
        double v = sq_json_num(sq_json_get(m, keys[j]), -1);
        cr_expect_geq(v, 0, "%s is %g", keys[j], v);
        sum += v;
    }
    /* a second epoch's line: the steps, evaluation and commit of the first epoch are in it */
    cr_expect_gt(sq_json_num(sq_json_get(m, "time_step_s"), 0), 0);
    cr_expect_gt(sq_json_num(sq_json_get(m, "time_eval_s"), 0), 0);
    cr_expect_gt(sq_json_num(sq_json_get(m, "time_checkpoint_s"), 0), 0);
    double el = sq_json_num(sq_json_get(m, "elapsed_seconds"), -1);
    cr_expect(fabs(sum - el) <= 0.01 + 0.01 * el, "the split adds up to %g s, the line's elapsed time is %g s", sum, el);
    sq_json_free(m);
    sq_model_free(t);
    sq_dataset_free(&ds);
}

/* sq_evaluate_kept: the teacher's logits of a split computed once and read afterwards give the
   evaluation sq_evaluate gives; once kept, the teacher is not run again (a teacher whose weights
   are then spoiled changes nothing) */
Test(multi, kept_teacher_logits_equal_a_fresh_teacher_pass)
{
    sq_backend_cpu()->set_threads(1);
    sq_dataset ds;
    tiny_dataset(&ds);
    sq_model *t = teacher_model();
    sq_train_cfg cfg;
    base_cfg(&cfg);
    sq_model *s = student_model(t, &ds, &cfg, SQ_QUANT_EWGS, 2);
    sq_eval_result fresh, first, again;
    float *kept = NULL;
    cr_assert_eq(sq_evaluate(s, t, &ds, 16, &fresh), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_evaluate_kept(s, t, &ds, 16, &first, NULL, &kept), SQ_OK, "%s", sq_last_error());
    cr_assert_not_null(kept);
    float *w = sq_xmalloc(t->n_train * sizeof(float));
    for (size_t i = 0; i < t->n_train; i++) w[i] = 1e3f * (float)((i * 7919) % 13) - 6e3f;
    t->be->copy_h2d(t->p, w, t->n_train * sizeof(float));
    free(w);
    cr_assert_eq(sq_evaluate_kept(s, t, &ds, 16, &again, NULL, &kept), SQ_OK, "%s", sq_last_error());
    const sq_eval_result *r[2] = {&first, &again};
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(r[i]->n, fresh.n);
        cr_expect_eq(r[i]->agreement, fresh.agreement, "call %d: agreement %g, fresh %g", i, r[i]->agreement,
                     fresh.agreement);
        cr_expect_eq(r[i]->kl, fresh.kl, "call %d: KL %g, fresh %g", i, r[i]->kl, fresh.kl);
        cr_expect_eq(r[i]->top1, fresh.top1);
    }
    sq_eval_result spoiled;
    cr_assert_eq(sq_evaluate(s, t, &ds, 16, &spoiled), SQ_OK, "%s", sq_last_error());
    cr_expect_neq(spoiled.kl, fresh.kl, "the spoiled teacher should change a fresh evaluation (test is void)");
    free(kept);
    sq_model_free(s);
    sq_model_free(t);
    sq_dataset_free(&ds);
}

Test(multi, diverging_student_is_stopped_and_the_other_finishes, .init = mk_tmp, .fini = rm_tmp)
{
    sq_dataset ds;
    tiny_dataset(&ds);
    sq_model *t = teacher_model();
    sq_train_cfg cfg;
    base_cfg(&cfg);
    char single[400], good[400], bad[400];
    snprintf(single, sizeof single, "%s/single", g_tmp);
    snprintf(good, sizeof good, "%s/good", g_tmp);
    snprintf(bad, sizeof bad, "%s/bad", g_tmp);
    single_run(t, &ds, &cfg, SQ_QUANT_LSQ, 4, single);
    sq_student st[2];
    setup_student(&st[0], t, &ds, &cfg, SQ_QUANT_EWGS, 2, bad);
    setup_student(&st[1], t, &ds, &cfg, SQ_QUANT_LSQ, 4, good);
    /* an injected NaN in the diverging student's classifier weight: its first loss is NaN */
    float w[3 * 256];
    cr_assert_eq(sq_model_get(st[0].model, "fc.weight", w, 3 * 256), SQ_OK, "%s", sq_last_error());
    w[5] = NAN;
    cr_assert_eq(sq_model_set(st[0].model, "fc.weight", w, 3 * 256), SQ_OK);
    sq_status s = sq_train_multi(&cfg, &ds, &ds, t, st, 2);
    cr_expect_eq(s, SQ_ENUMERIC, "status %d: %s", s, sq_last_error());
    cr_expect(strstr(sq_last_error(), "1 of 2 students stopped") && strstr(sq_last_error(), "ewgs_w2a2"), "%s",
              sq_last_error());
    cr_expect_eq(st[0].status, SQ_ENUMERIC);
    cr_expect(strstr(st[0].error, "non-finite loss at epoch 1 step 1") != NULL, "%s", st[0].error);
    cr_expect_eq(st[0].epochs_done, 0);
    cr_expect_eq(st[1].status, SQ_OK, "%s", st[1].error);
    cr_expect_eq(st[1].epochs_done, 2);
    char p[500];
    snprintf(p, sizeof p, "%s/last.safetensors", bad);
    cr_expect_neq(access(p, F_OK), 0, "the stopped student wrote a checkpoint");
    expect_same_run(single, good);   /* the survivor is unaffected */
    for (int i = 0; i < 2; i++) sq_model_free(st[i].model);
    sq_model_free(t);
    sq_dataset_free(&ds);
}

Test(multi, mismatched_student_configuration_is_refused, .init = mk_tmp, .fini = rm_tmp)
{
    sq_dataset ds;
    tiny_dataset(&ds);
    sq_model *t = teacher_model();
    sq_train_cfg cfg;
    base_cfg(&cfg);
    sq_student st[1];
    memset(st, 0, sizeof st);
    snprintf(st[0].name, sizeof st[0].name, "x");
    st[0].cfg = cfg;
    st[0].cfg.seed = 4;
    st[0].model = student_model(t, &ds, &cfg, SQ_QUANT_LSQ, 4);
    cr_expect_eq(sq_train_multi(&cfg, &ds, &ds, t, st, 1), SQ_EARG);
    cr_expect(strstr(sq_last_error(), "student x") != NULL, "%s", sq_last_error());
    cr_expect_eq(sq_train_multi(&cfg, &ds, &ds, t, st, 0), SQ_EARG);
    sq_model_free(st[0].model);
    sq_model_free(t);
    sq_dataset_free(&ds);
}

/* ---- the command line: 'sqakd distill --students' ---- */

static const char *bin(void) { return sqt_bin(); }

static char g_out[8192];

/* runs "sqakd ARGS" capturing stdout+stderr into g_out; returns the exit status */
#define run(...) sqt_run(g_out, sizeof g_out, __VA_ARGS__)

static void write_be32(FILE *f, uint32_t v) { sqt_write_be32(f, v); }

/* a random smallcnn teacher for 1x28x28 and 64 unlabelled IDX images */
static void write_teacher_and_images(const char *teacher, const char *img)
{
    sq_model *m;
    cr_assert_eq(sq_model_create("smallcnn", 1, 28, 28, 10, &m), SQ_OK);
    cr_assert_eq(sq_model_setup(m, sq_backend_cpu(), 4, 0), SQ_OK);
    sq_model_init_weights(m, 1);
    sq_ckpt_meta meta = {.in_c = 1, .in_h = 28, .in_w = 28, .classes = 10, .mean = {0.5f}, .std = {0.25f, 1, 1, 1}};
    snprintf(meta.arch, sizeof meta.arch, "smallcnn");
    cr_assert_eq(sq_ckpt_save(m, &meta, teacher), SQ_OK, "%s", sq_last_error());
    sq_model_free(m);
    FILE *f = fopen(img, "wb");
    cr_assert_not_null(f);
    write_be32(f, 0x803); write_be32(f, 64); write_be32(f, 28); write_be32(f, 28);
    sqt_rng r;
    sqt_rng_seed(&r, 5);
    for (int i = 0; i < 64 * 784; i++) fputc((int)(sqt_rng_next(&r) & 255), f);
    fclose(f);
}

Test(multi, distill_students_cli_matches_single_runs_and_reports_a_diverged_one, .init = mk_tmp, .fini = rm_tmp)
{
    if (access(bin(), X_OK)) cr_skip("sqakd binary %s not built (set SQAKD_BIN)", bin());
    char t[400], img[400];
    snprintf(t, sizeof t, "%s/t.safetensors", g_tmp);
    snprintf(img, sizeof img, "%s/img.idx", g_tmp);
    write_teacher_and_images(t, img);
    const char *common = "--epochs 2 --batch 16 --threads 1 --seed 2 --quiet";
    int rc = run("distill --teacher %s --data idx:%s --students lsq:w2a2,pact:2:lr=1e30 %s --out %s/m", t, img,
                 common, g_tmp);
    cr_expect_eq(rc, 1, "a stopped student gives exit 1, got %d: %s", rc, g_out);
    cr_expect(strstr(g_out, "student pact_w2a2 stopped: non-finite loss") != NULL, "%s", g_out);
    rc = run("distill --teacher %s --data idx:%s --quantizer lsq --wbits 2 --abits 2 %s --out %s/s", t, img, common,
             g_tmp);
    cr_assert_eq(rc, 0, "%s", g_out);
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/m/lsq_w2a2", g_tmp);
    snprintf(b, sizeof b, "%s/s", g_tmp);
    expect_same_run(a, b);
    snprintf(a, sizeof a, "%s/m/lsq_w2a2/metrics.jsonl", g_tmp);
    cr_expect_eq(access(a, F_OK), 0, "no %s", a);
    snprintf(a, sizeof a, "%s/m/pact_w2a2", g_tmp);
    cr_expect_neq(access(a, F_OK), 0, "the diverged student left %s behind", a);
    /* bad lists fail with one line naming the problem */
    cr_expect_eq(run("distill --teacher %s --data idx:%s --students ewgs:w9a4 --out %s/x", t, img, g_tmp), 2);
    cr_expect(strstr(g_out, "needs bits as wWaA or B") != NULL, "%s", g_out);
    cr_expect_eq(run("distill --teacher %s --data idx:%s --students ewgs:4 --wbits 2 --out %s/x", t, img, g_tmp), 2);
    cr_expect(strstr(g_out, "--students replaces --quantizer") != NULL, "%s", g_out);
    cr_expect_eq(run("distill --teacher %s --data idx:%s --students ewgs:4,ewgs:w4a4 --out %s/x", t, img, g_tmp), 2);
    cr_expect(strstr(g_out, "ewgs_w4a4 is listed twice") != NULL, "%s", g_out);
    snprintf(a, sizeof a, "%s/x", g_tmp);
    cr_expect_neq(access(a, F_OK), 0, "a refused run left %s behind", a);
}
