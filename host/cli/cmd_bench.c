/* cmd_bench.c: 'sqakd bench step' — images/s of one training step (SQAKD: teacher forward +
   student forward/backward + both optimizers; or --fp: a full-precision CE step) on synthetic data,
   with the teacher in fp32, fp16 or bf16 (--teacher-precision); 'sqakd bench kernels' lives in
   cmd_bench_kernels.c, 'sqakd bench loader' in cmd_bench_loader.c. */
#include "cli.h"
#include "sqakd/checkpoint.h"
#include "sqakd/import.h"
#include "sqakd/json.h"
#include "sqakd/teacher_prec.h"
#include "sqakd/train.h"
#include "train/train_internal.h"
#include "sqakd/rng.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char *USAGE = "--model NAME | --teacher MODEL  --wbits N --abits N --batch B --threads T [--quantizer Q --fp --steps N "
                           "--teacher-precision P --profile --json]";

/* --profile: the time of every node that ran, per step, forward and backward, and the totals per
   kind of op; what the nodes leave out of the step (loss, optimizer, input copies) as "rest" */
static void print_profile(const sq_model *s, const sq_model *t, int steps, double step_s, int json)
{
    const sq_model *ms[2] = {t, s};
    const char *who[2] = {"teacher", "student"};
    double kind_f[2][64] = {{0}}, kind_b[2][64] = {{0}}, tot = 0;
    if (!json) printf("per-node profile, ms per step (the backend drained around every node):\n%-8s %-4s %-26s %-8s %-14s %9s %9s\n",
                      "model", "node", "name", "op", "output", "forward", "backward");
    for (int k = 0; k < 2; k++) {
        const sq_model *m = ms[k];
        if (!m) continue;
        for (int i = 0; i < m->nnodes; i++) {
            const double f = 1e3 * m->prof[2 * i] / steps, b = 1e3 * m->prof[2 * i + 1] / steps;
            const sq_node *n = &m->nodes[i];
            const int op = n->op < 64 ? (int)n->op : 63;
            kind_f[k][op] += f;
            kind_b[k][op] += b;
            tot += f + b;
            if (f + b < 5e-4) continue; /* ran inside a fused op, or nothing to do */
            char shape[32];
            snprintf(shape, sizeof shape, "%dx%dx%d", n->c, n->h, n->w);
            if (json) printf("{\"profile\":\"node\",\"model\":\"%s\",\"node\":%d,\"name\":\"%s\",\"op\":\"%s\","
                             "\"output\":\"%s\",\"quant\":%d,\"fwd_ms\":%.4f,\"bwd_ms\":%.4f}\n", who[k], i, n->name,
                             sq_node_op_name(n->op), shape, n->quant, f, b);
            else printf("%-8s %4d %-26.26s %-8s %-14s %9.3f %9.3f\n", who[k], i, n->name, sq_node_op_name(n->op), shape, f, b);
        }
    }
    for (int k = 0; k < 2; k++)
        for (int op = 0; op < 64; op++) {
            if (kind_f[k][op] + kind_b[k][op] < 5e-4) continue;
            if (json) printf("{\"profile\":\"op\",\"model\":\"%s\",\"op\":\"%s\",\"fwd_ms\":%.4f,\"bwd_ms\":%.4f}\n", who[k],
                             sq_node_op_name(op), kind_f[k][op], kind_b[k][op]);
            else printf("total   %-8s %-8s forward %9.3f  backward %9.3f ms\n", who[k], sq_node_op_name(op), kind_f[k][op],
                        kind_b[k][op]);
        }
    const double rest = 1e3 * step_s - tot;
    if (json) printf("{\"profile\":\"rest\",\"ms\":%.4f,\"step_ms\":%.4f}\n", rest, 1e3 * step_s);
    else printf("nodes %.3f ms, rest (loss, optimizer, copies) %.3f ms, of a profiled step of %.3f ms\n", tot, rest,
                1e3 * step_s);
}

int sq_cmd_bench_step(int argc, char **argv)
{
    const char *cmd = "bench step";
    const char *teacher_path = NULL;
    const char *model = "resnet20", *quantizer = "ewgs", *input = "3x32x32", *device = "auto", *tprec_name = "fp32", *bopt = NULL, *loss = "kl";
    int wbits = 4, abits = 4, batch = 128, threads = sq_cpus_available(), steps = 10, warmup = 2, json = 0, fp = 0, classes = 10,
        profile = 0;
    sq_arg a[] = {
        {"--model", SQ_ARG_STR, &model, 0, 0, "architecture (default resnet20)"},
        {"--teacher", SQ_ARG_STR, &teacher_path, 0, 0, "time this teacher (a checkpoint or an .onnx file, with its weights) and its own graph as the student, instead of --model"},
        {"--quantizer", SQ_ARG_STR, &quantizer, 0, 0, "ewgs | pact | lsq | dorefa (default ewgs)"},
        {"--wbits", SQ_ARG_INT, &wbits, 1, 8, "weight bits (default 4)"},
        {"--abits", SQ_ARG_INT, &abits, 1, 8, "activation bits (default 4)"},
        {"--batch", SQ_ARG_INT, &batch, 1, 65536, "batch size (default 128)"},
        {"--threads", SQ_ARG_INT, &threads, 1, 1024, "CPU threads (by default the CPUs this process may use)"},
        {"--steps", SQ_ARG_INT, &steps, 1, 100000, "timed steps (default 10)"},
        {"--warmup", SQ_ARG_INT, &warmup, 0, 100000, "untimed steps first (default 2)"},
        {"--input", SQ_ARG_STR, &input, 0, 0, "input CxHxW (default 3x32x32)"},
        {"--classes", SQ_ARG_INT, &classes, 2, 100000, "classes (default 10)"},
        {"--device", SQ_ARG_STR, &device, 0, 0, "auto | cpu | cuda"},
        {"--backend-opt", SQ_ARG_STR, &bopt, 0, 0, SQ_BACKEND_OPT_HELP},
        {"--fp", SQ_ARG_FLAG, &fp, 0, 0, "time a full-precision CE training step (SGD) instead"},
        {"--loss", SQ_ARG_STR, &loss, 0, 0, "kl (default) | kl+squat (SQuaT's feature term at the default tap)"},
        {"--teacher-precision", SQ_ARG_STR, &tprec_name, 0, 0, "fp32 (default) | fp16 | bf16 (fp16/bf16: cuda)"},
        {"--profile", SQ_ARG_FLAG, &profile, 0, 0, "also time every node of the graph, forward and backward (the backend drained around each: a slower step; no CUDA graph), and print them and the totals per op (with --json: one JSON object per line after the step's)"},
        {"--json", SQ_ARG_FLAG, &json, 0, 0, "print one JSON object"},
    };
    const char *pos[1];
    int npos, r = sq_args_parse(cmd, USAGE, argc, argv, a, (int)(sizeof a / sizeof a[0]), pos, 0, &npos);
    if (r) return r == 1 ? 0 : 2;
    int c, h, w;
    char tail;
    if (sscanf(input, "%dx%dx%d%c", &c, &h, &w, &tail) != 3 || c <= 0 || h <= 0 || w <= 0)
        return sq_cli_fail(cmd, "--input must look like 3x32x32, got '%s'", input);
    int kind = sq_quant_kind_parse(quantizer);
    if (kind <= 0) return sq_cli_fail(cmd, "unknown --quantizer '%s'", quantizer);
    if (strcmp(loss, "kl") && strcmp(loss, "kl+squat"))
        return sq_cli_fail(cmd, "--loss must be kl or kl+squat, got '%s'", loss);
    if (fp && strcmp(loss, "kl")) return sq_cli_fail(cmd, "--fp times a CE step: drop --loss");
    sq_teacher_prec tprec;
    if (sq_teacher_prec_parse(tprec_name, &tprec)) return sq_cli_fail(cmd, "%s", sq_last_error());
    const sq_backend *be = sq_backend_open(device, bopt, threads);
    if (!be) return sq_cli_fail(cmd, "%s", sq_last_error());
    if (sq_teacher_prec_check(be, tprec)) return sq_cli_fail(cmd, "%s", sq_last_error());
    sq_model *s = NULL, *t = NULL;
    sq_quant_opts q = {.kind = fp ? SQ_QUANT_NONE : (sq_quant_kind)kind, .wbits = wbits, .abits = abits};
    if (teacher_path) {
        /* a real teacher: its graph is the student's, its weights the student's start */
        sq_ckpt_meta tm;
        if (sq_model_open(teacher_path, NULL, be, batch, 0, &t, &tm))
            return sq_cli_fail(cmd, "--teacher: %s", sq_last_error());
        c = t->in_c; h = t->in_h; w = t->in_w; classes = t->classes;
        model = strcmp(t->arch, "graph") ? t->arch : teacher_path;
        if (sq_model_clone_graph(t, &s) || sq_model_set_quant(s, &q) || sq_model_setup(s, be, batch, 1)) {
            sq_model_free(t);
            return sq_cli_fail(cmd, "%s", sq_last_error());
        }
        sq_model_copy_matching(s, t);
        if (fp) { sq_model_free(t); t = NULL; }
    } else {
        if (sq_model_create(model, c, h, w, classes, &s) || sq_model_set_quant(s, &q) || sq_model_setup(s, be, batch, 1))
            return sq_cli_fail(cmd, "%s", sq_last_error());
        if (!fp && (sq_model_create(model, c, h, w, classes, &t) || sq_model_setup(t, be, batch, 0))) {
            sq_model_free(s);
            return sq_cli_fail(cmd, "%s", sq_last_error());
        }
        sq_model_init_weights(s, 1);
        if (t) sq_model_init_weights(t, 1);
    }
    size_t nx = (size_t)batch * c * h * w;
    float *x = sq_xmalloc(nx * sizeof(float));
    int32_t *y = sq_xmalloc(batch * sizeof(int32_t));
    uint64_t rng = 7;
    for (size_t i = 0; i < nx; i++) x[i] = sq_rand_normal(&rng);
    for (int i = 0; i < batch; i++) y[i] = i % classes;
    if (t) {
        sq_model_fold_bn(t, NULL); /* as 'sqakd distill' does with its frozen teacher */
        if ((strcmp(loss, "kl+squat") && sq_model_compact_activations(t)) || sq_teacher_prec_apply(t, tprec)) {
            sq_cli_fail(cmd, "%s", sq_last_error());
            free(x);
            free(y);
            sq_model_free(s);
            sq_model_free(t);
            return 2;
        }
        sq_model_quant_init(s, x, batch);
    }
    sq_train_cfg cfg;
    sq_train_cfg_defaults(&cfg);
    cfg.batch = batch;
    cfg.loss = fp ? SQ_LOSS_CE : SQ_LOSS_KL;
    cfg.opt = fp ? SQ_OPT_SGD : SQ_OPT_ADAM;
    cfg.lr = fp ? 0.01f : 1e-3f;
    cfg.squat = !strcmp(loss, "kl+squat");
    if (profile) { /* every node is timed on its own: a recorded step would run them as one launch */
        sq_backend_opts o = *be->options();
        o.cuda_graph = 0;
        be->configure(&o);
    }
    sq_step_bufs *b = sq_step_bufs_new(s);
    if (!b) { sq_model_free(s); sq_model_free(t); return sq_cli_fail(cmd, "%s", sq_last_error()); }
    if (sq_step_bufs_squat(b, &cfg, s, t)) {
        sq_cli_fail(cmd, "%s", sq_last_error());
        sq_step_bufs_free(s, b);
        free(x); free(y);
        sq_model_free(s);
        if (t) sq_teacher_prec_release(t);
        sq_model_free(t);
        return 2;
    }
    if (profile) {
        s->prof = sq_xcalloc(2 * (size_t)s->nnodes, sizeof(double));
        if (t) t->prof = sq_xcalloc(2 * (size_t)t->nnodes, sizeof(double));
    }
    double t0 = 0;
    for (int i = 0; i < warmup + steps; i++) {
        if (i == warmup) {
            be->sync();
            t0 = sq_now();
            if (profile) {
                memset(s->prof, 0, 2 * (size_t)s->nnodes * sizeof(double));
                if (t) memset(t->prof, 0, 2 * (size_t)t->nnodes * sizeof(double));
            }
        }
        sq_train_step(&cfg, s, t, b, x, y, batch, cfg.lr, cfg.lr_quant, i + 1);
    }
    be->sync();
    double dt = sq_now() - t0;
    double ips = (double)steps * batch / dt;
    /* numbers from a failed device are not numbers */
    if (sq_train_device_status(s, warmup + steps)) {
        sq_step_bufs_free(s, b);
        free(x); free(y);
        sq_model_free(s);
        if (t) sq_teacher_prec_release(t);
        sq_model_free(t);
        return sq_cli_fail(cmd, "%s", sq_last_error());
    }
    const int graph = sq_step_bufs_recorded(b); /* the timed steps replayed a CUDA graph */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mb = ru.ru_maxrss / 1024.0;
    if (json) {
        sq_jbuf jb;
        sq_jbuf_init(&jb);
        sq_jbuf_begin_obj(&jb);
        sq_jbuf_kv_str(&jb, "mode", fp ? "fp" : cfg.squat ? "sqakd+squat" : "sqakd");
        sq_jbuf_kv_str(&jb, "model", model);
        sq_jbuf_kv_str(&jb, "quantizer", fp ? "none" : quantizer);
        sq_jbuf_kv_int(&jb, "wbits", fp ? 32 : wbits);
        sq_jbuf_kv_int(&jb, "abits", fp ? 32 : abits);
        sq_jbuf_kv_int(&jb, "batch", batch);
        sq_jbuf_kv_int(&jb, "threads", threads);
        sq_jbuf_kv_str(&jb, "device", be->name);
        sq_jbuf_kv_str(&jb, "teacher_precision", fp ? "none" : sq_teacher_prec_name(tprec));
        sq_jbuf_kv_bool(&jb, "cuda_graph", graph);
        sq_jbuf_kv_int(&jb, "steps", steps);
        sq_jbuf_kv_num(&jb, "ms_per_step", 1000.0 * dt / steps);
        sq_jbuf_kv_num(&jb, "img_per_s", ips);
        sq_jbuf_kv_num(&jb, "peak_rss_mb", rss_mb);
        sq_jbuf_end_obj(&jb);
        printf("%s\n", sq_jbuf_cstr(&jb));
        sq_jbuf_free(&jb);
    } else {
        printf("%s step, %s %s W%dA%d, batch %d, %d threads, %s%s%s%s: %.1f ms/step, %.1f img/s, peak RSS %.0f MiB\n",
               fp ? "full-precision" : cfg.squat ? "SQAKD+SQuaT" : "SQAKD", model, fp ? "none" : quantizer, fp ? 32 : wbits, fp ? 32 : abits,
               batch, threads, be->name, !fp && tprec != SQ_TPREC_FP32 ? ", teacher " : "",
               !fp && tprec != SQ_TPREC_FP32 ? sq_teacher_prec_name(tprec) : "", graph ? ", CUDA graph" : "",
               1000.0 * dt / steps, ips, rss_mb);
    }
    if (profile) {
        print_profile(s, t, steps, dt / steps, json);
        free(s->prof);
        s->prof = NULL;
        if (t) {
            free(t->prof);
            t->prof = NULL;
        }
    }
    sq_step_bufs_free(s, b);
    free(x);
    free(y);
    sq_model_free(s);
    if (t) sq_teacher_prec_release(t);
    sq_model_free(t);
    return 0;
}

int sq_cmd_bench(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "step")) return sq_cmd_bench_step(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "kernels")) return sq_cmd_bench_kernels(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "loader")) return sq_cmd_bench_loader(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: sqakd bench step|kernels|loader [options]   (sqakd bench step --help)\n");
        return 0;
    }
    return sq_cli_fail("bench", "expected 'step', 'kernels' or 'loader' (see 'sqakd bench --help')");
}
