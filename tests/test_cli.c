/* test_cli.c: the sqakd executable end to end: bad arguments give one clear line, a non-zero exit
   and no files; --help works everywhere; a label-free distillation runs on an IDX file without
   labels; eval --json prints the promised fields. Uses $SQAKD_BIN (make test sets it). */
#include "../kernels/cpu/cpu_ops.h"
#include "sqakd/checkpoint.h"
#include "sqakd/json.h"
#include "util_check.h"
#include "util_fixtures.h"
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_dir[256];
static char g_out[8192];

static const char *bin(void) { return sqt_bin(); }

static void setup(void) { sqt_cli_setup(g_dir, sizeof g_dir, "sqakd_cli"); }

static void teardown(void)
{
    cr_expect_eq(sqt_rmtree(g_dir), 0);
}

/* runs "sqakd ARGS" capturing stdout+stderr into g_out; returns the exit status */
#define run(...) sqt_run(g_out, sizeof g_out, __VA_ARGS__)

static int exists(const char *fmt, const char *a)
{
    char p[512];
    snprintf(p, sizeof p, fmt, a);
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void expect_fails_cleanly(const char *needle, const char *args)
{
    int rc = run("%s --out %s/run", args, g_dir);
    cr_expect_neq(rc, 0, "'%s' exited 0", args);
    cr_expect(strstr(g_out, needle) != NULL, "'%s': wanted '%s' in: %s", args, needle, g_out);
    cr_expect(strstr(g_out, "sqakd ") == g_out, "error line should start with 'sqakd ': %s", g_out);
    cr_expect_eq(strchr(g_out, '\n') - g_out + 1, (long)strlen(g_out), "more than one line: %s", g_out);
    cr_expect(!exists("%s/run", g_dir), "'%s' left %s/run behind", args, g_dir);
}

/* writes a random smallcnn teacher checkpoint for 1x28x28, 10 classes */
static void write_teacher(const char *path)
{
    sq_model *m;
    cr_assert_eq(sq_model_create("smallcnn", 1, 28, 28, 10, &m), SQ_OK);
    cr_assert_eq(sq_model_setup(m, sq_backend_cpu(), 4, 0), SQ_OK);
    sq_model_init_weights(m, 1);
    sq_ckpt_meta meta = {.in_c = 1, .in_h = 28, .in_w = 28, .classes = 10, .mean = {0.5f}, .std = {0.25f, 1, 1, 1}};
    snprintf(meta.arch, sizeof meta.arch, "smallcnn");
    cr_assert_eq(sq_ckpt_save(m, &meta, path), SQ_OK, "%s", sq_last_error());
    sq_model_free(m);
}

static void write_be32(FILE *f, uint32_t v) { sqt_write_be32(f, v); }

/* IDX images (and optionally labels) of n random 28x28 images */
static void write_idx(const char *img, const char *lab, int n)
{
    FILE *f = fopen(img, "wb");
    write_be32(f, 0x803); write_be32(f, n); write_be32(f, 28); write_be32(f, 28);
    sqt_rng r;
    sqt_rng_seed(&r, 5);
    for (int i = 0; i < n * 784; i++) fputc((int)(sqt_rng_next(&r) & 255), f);
    fclose(f);
    if (!lab) return;
    f = fopen(lab, "wb");
    write_be32(f, 0x801); write_be32(f, n);
    for (int i = 0; i < n; i++) fputc(i % 10, f);
    fclose(f);
}

Test(cli, bad_arguments_fail_with_one_line_and_no_files, .init = setup, .fini = teardown)
{
    char t[300], args[1024];
    snprintf(t, sizeof t, "%s/t.safetensors", g_dir);
    write_teacher(t);
    expect_fails_cleanly("unknown model 'nope'", "train --model nope --data fashion-mnist");
    expect_fails_cleanly("--epochs must be an integer", "train --model smallcnn --epochs abc");
    expect_fails_cleanly("--lr must be a finite number", "train --model smallcnn --lr nan");
    expect_fails_cleanly("unknown option '--bogus'", "train --model smallcnn --bogus 1");
    expect_fails_cleanly("--model is required", "train --data fashion-mnist");
    expect_fails_cleanly("/nonexistent/x.idx", "train --model smallcnn --data idx:/nonexistent/x.idx");
    snprintf(args, sizeof args, "distill --teacher %s --wbits 9", t);
    expect_fails_cleanly("--wbits must be an integer in 1..8, got '9'", args);
    snprintf(args, sizeof args, "distill --teacher %s --abits 0", t);
    expect_fails_cleanly("--abits must be an integer in 1..8, got '0'", args);
    snprintf(args, sizeof args, "distill --teacher %s --quantizer foo", t);
    expect_fails_cleanly("unknown --quantizer 'foo'", args);
    expect_fails_cleanly("no-such-teacher", "distill --teacher /tmp/no-such-teacher.safetensors");
    /* real CIFAR-10 (3x32x32) against a 1x28x28 teacher, where the shared data are present */
    const char *c10 = exists("%s", "../shared/data/cifar10/test_batch.bin") ? "../shared/data/cifar10"
                    : exists("%s", "/work/shared/data/cifar10/test_batch.bin") ? "/work/shared/data/cifar10" : NULL;
    snprintf(args, sizeof args, "distill --teacher %s --data cifar10:%s --epochs 1", t, c10 ? c10 : "");
    if (c10) expect_fails_cleanly("but teacher", args);
    snprintf(args, sizeof args, "distill --teacher %s --model resnet20", t);
    expect_fails_cleanly("does not match teacher", args);
    cr_expect_neq(run("eval %s/none.safetensors --data fashion-mnist", g_dir), 0);
    cr_expect(strstr(g_out, "none.safetensors") != NULL, "%s", g_out);
    cr_expect_neq(run("frobnicate"), 0);
}

Test(cli, help_on_every_subcommand, .init = setup, .fini = teardown)
{
    const char *cmds[] = {"train", "distill", "eval", "info", "models", "bench step", "bench"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        cr_expect_eq(run("%s --help", cmds[i]), 0, "%s --help", cmds[i]);
        cr_expect(strstr(g_out, "usage: sqakd") != NULL, "%s --help: %s", cmds[i], g_out);
    }
    cr_expect_eq(run("models --classes 10"), 0);
    cr_expect(strstr(g_out, "269850") != NULL, "%s", g_out);
}

/* 'bench loader' times the loader alone: the images it reports are the batches it was asked for,
   at a positive rate, per thread; a missing --data and a bad --augment are one line each */
Test(cli, bench_loader_reports_the_loader_alone, .init = setup, .fini = teardown)
{
    char img[300], lab[300];
    snprintf(img, sizeof img, "%s/img.idx", g_dir);
    snprintf(lab, sizeof lab, "%s/lab.idx", g_dir);
    write_idx(img, lab, 96);
    cr_assert_eq(run("bench loader --data idx:%s,%s --batch 16 --batches 3 --loader-threads 2 --augment flip --json",
                     img, lab), 0, "%s", g_out);
    sq_json *o = NULL;
    cr_assert_eq(sq_json_parse(g_out, strcspn(g_out, "\n"), &o, NULL), SQ_OK, "%s", g_out);
    cr_expect_eq(sq_json_num(sq_json_get(o, "images"), -1), 48, "%s", g_out);
    cr_expect_eq(sq_json_num(sq_json_get(o, "threads"), -1), 2, "%s", g_out);
    double ips = sq_json_num(sq_json_get(o, "img_per_s"), -1), per = sq_json_num(sq_json_get(o, "img_per_s_per_thread"), -1);
    cr_expect_gt(ips, 0, "%s", g_out);
    cr_expect(fabs(per * 2 - ips) <= 1e-6 * ips, "%s", g_out);
    const sq_json *aug = sq_json_get(o, "augment");
    cr_expect(aug && aug->type == SQ_JSON_STR && !strcmp(aug->str, "flip"), "%s", g_out);
    sq_json_free(o);
    /* --batches beyond the epoch: the epoch less its first (untimed) batch, 96 / 16 - 1 batches;
       the whole train split is read (nothing held out) */
    cr_assert_eq(run("bench loader --data idx:%s,%s --batch 16 --batches 1000 --json", img, lab), 0, "%s", g_out);
    cr_expect(strstr(g_out, "\"images\":80,") != NULL && g_out[0] == '{', "%s", g_out);
    cr_expect_eq(run("bench loader --batch 16"), 2);
    cr_expect(strstr(g_out, "sqakd bench loader: --data SPEC is required") == g_out && strchr(g_out, '\n') ==
              g_out + strlen(g_out) - 1, "%s", g_out);
    cr_expect_eq(run("bench loader --data idx:%s,%s --augment sideways", img, lab), 2);
    cr_expect(strstr(g_out, "sqakd bench loader: --augment must be") == g_out && strchr(g_out, '\n') ==
              g_out + strlen(g_out) - 1, "%s", g_out);
}

Test(cli, distill_runs_without_labels_and_eval_json, .init = setup, .fini = teardown)
{
    char t[300], img[300], lab[300];
    snprintf(t, sizeof t, "%s/t.safetensors", g_dir);
    snprintf(img, sizeof img, "%s/img.idx", g_dir);
    snprintf(lab, sizeof lab, "%s/lab.idx", g_dir);
    write_teacher(t);
    write_idx(img, lab, 96);
    int rc = run("distill --teacher %s --data idx:%s --quantizer lsq --wbits 2 --abits 2 --epochs 1 --batch 16 "
                 "--out %s/s", t, img, g_dir);
    cr_assert_eq(rc, 0, "%s", g_out);
    cr_expect(strstr(g_out, "no labels are used") != NULL, "%s", g_out);
    cr_expect(strstr(g_out, "agreement") != NULL, "%s", g_out);
    cr_expect(exists("%s/s/last.safetensors", g_dir));
    cr_expect(exists("%s/s/metrics.jsonl", g_dir));
    cr_expect(exists("%s/s/command.txt", g_dir));
    /* a --loss ce baseline cannot run without labels */
    rc = run("distill --teacher %s --data idx:%s --loss ce --epochs 1 --batch 16 --out %s/ce", t, img, g_dir);
    cr_expect_neq(rc, 0);
    cr_expect(strstr(g_out, "labels") != NULL, "%s", g_out);
    cr_expect(!exists("%s/ce", g_dir));
    /* eval of the quantized student on labelled data, JSON on stdout */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s eval %s/s/last.safetensors --data idx:%s,%s --split train --teacher %s --json 2>/dev/null",
             bin(), g_dir, img, lab, t);
    FILE *p = popen(cmd, "r");
    size_t n = fread(g_out, 1, sizeof g_out - 1, p);
    g_out[n] = 0;
    cr_expect_eq(pclose(p), 0);
    cr_expect(g_out[0] == '{' && strstr(g_out, "\"top1\":") && strstr(g_out, "\"top5\":") && strstr(g_out, "\"n\":96") &&
              strstr(g_out, "\"agreement\":") && strstr(g_out, "\"wbits\":2"), "%s", g_out);
    cr_expect_eq(run("info %s/s/last.safetensors --tensors", g_dir), 0);
    cr_expect(strstr(g_out, "conv2.sW") != NULL && strstr(g_out, "lsq") != NULL, "%s", g_out);
}

Test(cli, distilled_student_resumes_exactly, .init = setup, .fini = teardown)
{
    char t[300], img[300];
    snprintf(t, sizeof t, "%s/t.safetensors", g_dir);
    snprintf(img, sizeof img, "%s/img.idx", g_dir);
    write_teacher(t);
    write_idx(img, NULL, 64);
    const char *common = "--quantizer ewgs --wbits 2 --abits 2 --batch 16 --threads 2 --quiet --holdout 0.25";
    cr_assert_eq(run("distill --teacher %s --data idx:%s %s --epochs 2 --out %s/a", t, img, common, g_dir), 0, "%s", g_out);
    cr_assert_eq(run("distill --teacher %s --data idx:%s %s --epochs 1 --out %s/b", t, img, common, g_dir), 0, "%s", g_out);
    cr_assert_eq(run("distill --teacher %s --data idx:%s %s --epochs 2 --resume %s/b", t, img, common, g_dir), 0, "%s", g_out);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cmp -s %s/a/last.safetensors %s/b/last.safetensors", g_dir, g_dir);
    cr_expect_eq(system(cmd), 0, "resumed student differs from the uninterrupted one");
}

/* bench kernels --json: the bytes each row counts (copy 8n, fake-quant forward 8n, backward 16n,
   the pair 24n: its bytes and time are the forward's plus the backward's; KL 12 per logit), and
   GB/s = bytes / time */
Test(cli, bench_kernels_json_counts_the_bytes_of_each_op, .init = setup, .fini = teardown)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s bench kernels --device cpu --sizes 4096 --bits 2,4 --min-time 0 "
             "--threads 1 --json 2>/dev/null", bin());
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t n = fread(g_out, 1, sizeof g_out - 1, p);
    g_out[n] = 0;
    cr_assert_eq(pclose(p), 0, "%s", g_out);
    sq_json *j = NULL;
    cr_assert_eq(sq_json_parse(g_out, n, &j, NULL), SQ_OK, "%s", g_out);
    const sq_json *rs = sq_json_get(j, "results");
    const double e = 4096;
    int nfwd = 0, nbwd = 0, npair = 0, nkl = 0, ncopy = 0;
    double fwd_ms = 0, fwd_bytes = 0, bwd_ms = 0, bwd_bytes = 0;
    for (int i = 0; i < sq_json_len(rs); i++) {
        const sq_json *r = sq_json_at(rs, i);
        const char *op = sq_json_str(sq_json_get(r, "op"));
        const double ms = sq_json_num(sq_json_get(r, "ms"), -1);
        const double bytes = sq_json_num(sq_json_get(r, "bytes"), -1);
        const double gbps = sq_json_num(sq_json_get(r, "gbps"), -1);
        cr_assert(op && ms > 0 && bytes > 0, "row %d", i);
        cr_expect(fabs(gbps - bytes / (ms * 1e-3) / 1e9) <= 1e-6 * gbps, "%s: %g GB/s", op, gbps);
        if (!strcmp(op, "copy_d2d")) {
            ncopy++;
            cr_expect_eq(bytes, 8 * e);
        } else if (!strcmp(op, "fakequant_fwd")) {
            nfwd++;
            cr_expect_eq(bytes, 8 * e, "%s", sq_json_str(sq_json_get(r, "kind")));
            fwd_ms = ms, fwd_bytes = bytes;
        } else if (!strcmp(op, "fakequant_bwd")) {
            nbwd++;
            cr_expect_eq(bytes, 16 * e);
            bwd_ms = ms, bwd_bytes = bytes;
        } else if (!strcmp(op, "fakequant_f+b")) { /* follows its forward and backward */
            npair++;
            cr_expect_eq(bytes, fwd_bytes + bwd_bytes);
            cr_expect(fabs(ms - (fwd_ms + bwd_ms)) <= 1e-7 * ms, "pair %.9g ms, parts %.9g + %.9g",
                      ms, fwd_ms, bwd_ms);
        } else if (!strcmp(op, "kl_fwd_bwd")) {
            nkl++;
            int64_t k = 0;
            cr_assert(sq_json_int(sq_json_get(r, "classes"), &k));
            cr_expect_eq(bytes, 12.0 * (double)(4096 / k * k), "K=%lld", (long long)k);
        } else {
            cr_expect(0, "unexpected op %s", op);
        }
    }
    cr_expect_eq(ncopy, 1);
    cr_expect_eq(nfwd, 8, "4 quantizers x 2 bit-widths");
    cr_expect_eq(nbwd, 8);
    cr_expect_eq(npair, 8);
    cr_expect_eq(nkl, 3);
    sq_json_free(j);
}

/* runs "cd g_dir && PREFIX sqakd ARGS" (stdout+stderr into g_out); the exit status */
static int run_in_dir(const char *prefix, const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s %s 2>&1", g_dir, prefix, bin(), args);
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL);
    size_t n = fread(g_out, 1, sizeof g_out - 1, p);
    g_out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

Test(cli, version_names_release_commit_and_backends, .init = setup, .fini = teardown)
{
    cr_assert_eq(run("--version"), 0, "%s", g_out);
    cr_expect(!strncmp(g_out, "sqakd 0.", 8), "%s", g_out);
    cr_expect(strstr(g_out, "(git ") != NULL, "%s", g_out);
    cr_expect(strstr(g_out, "backends: cpu (OpenMP") != NULL, "%s", g_out);
}

/* every flag that takes a value says its default (or that it is required) in --help, and --help
   shows the defaults even after flags that change them */
Test(cli, every_help_shows_defaults, .init = setup, .fini = teardown)
{
    const char *cmds[] = {"train", "distill", "eval", "info", "import", "infer", "export", "sweep", "report",
                          "bench step", "bench kernels"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        cr_assert_eq(run("%s --help", cmds[i]), 0, "%s --help: %s", cmds[i], g_out);
        int lines = 0;
        for (char *l = g_out; (l = strstr(l, "\n  --")); l++) {
            char line[1024];
            size_t n = strcspn(l + 1, "\n");
            snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), l + 1);
            char flag[64], type[8] = "";
            if (sscanf(line, " %63s %7s", flag, type) < 1 || !strcmp(flag, "--help")) continue;
            int valued = !strcmp(type, "N") || !strcmp(type, "X") || !strcmp(type, "S");
            lines++;
            if (valued)
                cr_expect(strstr(line, "default") || strstr(line, "required"), "sqakd %s --help: no default in '%s'",
                          cmds[i], line);
        }
        cr_expect_gt(lines, 0, "%s --help lists no flags: %s", cmds[i], g_out);
    }
    cr_assert_eq(run("train --epochs 7 --batch 3 --help"), 0);
    cr_expect(strstr(g_out, "epochs (default: 10)") && strstr(g_out, "batch size (default: 128)"), "%s", g_out);
}

/* --threads defaults to the CPUs the process may use (its affinity), not a constant */
Test(cli, threads_default_to_the_usable_cpus, .init = setup, .fini = teardown)
{
    if (system("taskset -c 0 true >/dev/null 2>&1") != 0) cr_skip_test("taskset cannot pin this process");
    cr_assert_eq(run_in_dir("taskset -c 0", "train --help"), 0, "%s", g_out);
    const char *t = strstr(g_out, "--threads N");
    cr_assert(t != NULL, "%s", g_out);
    cr_expect(strstr(t, "(default: 1)") && strstr(t, "(default: 1)") < strchr(t, '\n'), "%.200s", t);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu > 1 && system("taskset -c 0,1 true >/dev/null 2>&1") == 0) {
        cr_assert_eq(run_in_dir("taskset -c 0,1", "train --help"), 0);
        t = strstr(g_out, "--threads N");
        cr_expect(t && strstr(t, "(default: 2)") && strstr(t, "(default: 2)") < strchr(t, '\n'), "%.200s", t);
    }
}

/* train / distill without --out save into runs/<command>-<date>-<time>/ and say so (they used to
   train to the end, save nothing and exit 0) */
Test(cli, no_out_goes_to_a_dated_run_directory, .init = setup, .fini = teardown)
{
    char img[300], lab[300], args[1200];
    snprintf(img, sizeof img, "%s/img.idx", g_dir);
    snprintf(lab, sizeof lab, "%s/lab.idx", g_dir);
    write_idx(img, lab, 48);
    snprintf(args, sizeof args, "train --model smallcnn --data idx:%s,%s --epochs 1 --batch 16 --holdout 0.25 --quiet",
             img, lab);
    cr_assert_eq(run_in_dir("", args), 0, "%s", g_out);
    const char *say = strstr(g_out, "sqakd train: no --out given: this run goes to runs/train-");
    cr_assert(say != NULL, "%s", g_out);
    char dir[100];
    cr_assert_eq(sscanf(say, "sqakd train: no --out given: this run goes to runs/%99[^/\n]", dir), 1);
    char p[400];
    snprintf(p, sizeof p, "%s/runs/%s", g_dir, dir);
    cr_expect(exists("%s/last.safetensors", p), "no checkpoint in %s: %s", p, g_out);
    cr_expect(exists("%s/command.txt", p), "%s", p);
    /* a second run in the same second gets its own directory */
    snprintf(args, sizeof args, "distill --teacher %s/last.safetensors --data idx:%s --epochs 1 --batch 16 --quiet", p, img);
    cr_assert_eq(run_in_dir("", args), 0, "%s", g_out);
    say = strstr(g_out, "sqakd distill: no --out given: this run goes to runs/distill-");
    cr_assert(say != NULL, "%s", g_out);
    cr_assert_eq(sscanf(say, "sqakd distill: no --out given: this run goes to runs/%99[^/\n]", dir), 1);
    snprintf(p, sizeof p, "%s/runs/%s", g_dir, dir);
    cr_expect(exists("%s/last.safetensors", p), "no checkpoint in %s: %s", p, g_out);
}

/* a checkpoint whose metadata says it is quantized is refused as a teacher unless forced */
Test(cli, quantized_student_refused_as_teacher, .init = setup, .fini = teardown)
{
    char t[300], img[300];
    snprintf(t, sizeof t, "%s/t.safetensors", g_dir);
    snprintf(img, sizeof img, "%s/img.idx", g_dir);
    write_teacher(t);
    write_idx(img, NULL, 48);
    cr_assert_eq(run("distill --teacher %s --data idx:%s --quantizer pact --wbits 2 --abits 2 --epochs 1 --batch 16 "
                     "--quiet --out %s/s", t, img, g_dir), 0, "%s", g_out);
    char args[1200];
    snprintf(args, sizeof args, "distill --teacher %s/s/last.safetensors --data idx:%s --wbits 2 --abits 2 --epochs 1 --batch 16",
             g_dir, img);
    expect_fails_cleanly("is a quantized student (pact W2A2", args);
    cr_expect(strstr(g_out, "--allow-quantized-teacher") != NULL, "%s", g_out);
    cr_expect_eq(run("%s --quiet --out %s/forced --allow-quantized-teacher", args, g_dir), 0, "%s", g_out);
    cr_expect(exists("%s/forced/last.safetensors", g_dir));
    /* a sweep refuses it too (its students all learn from one full-precision teacher) */
    cr_expect_neq(run("sweep --teacher %s/s/last.safetensors --data idx:%s --quantizers ewgs --bits 2 --epochs 1 "
                      "--out %s/sw", g_dir, img, g_dir), 0);
    cr_expect(strstr(g_out, "is a quantized student (pact W2A2") != NULL, "%s", g_out);
}

/* --backend-opt bf16-bwd reaches the CPU backend and the record: the run's command.txt says which
   backward it used, the two settings train different students (the BF16 backward rounds the
   output gradient) and each is reproducible; a bad value is one error line */
Test(cli, bf16_backward_option_is_recorded_and_changes_the_run, .init = setup, .fini = teardown)
{
    char t[300], img[300], lab[300], args[1024];
    snprintf(t, sizeof t, "%s/t.safetensors", g_dir);
    snprintf(img, sizeof img, "%s/img.idx", g_dir);
    snprintf(lab, sizeof lab, "%s/lab.idx", g_dir);
    write_teacher(t);
    write_idx(img, lab, 64);
    snprintf(args, sizeof args, "distill --teacher %s --data idx:%s --epochs 1 --batch 16 --backend-opt bf16-bwd=2", t, img);
    expect_fails_cleanly("--backend-opt bf16-bwd takes 0 or 1, got '2'", args);
    const char *v[3] = {"", "--backend-opt bf16-bwd=0", "--backend-opt bf16-bwd=1"};
    unsigned char *ck[3];
    size_t nck[3];
    for (int i = 0; i < 3; i++) {
        int rc = run("distill --teacher %s --data idx:%s --quantizer ewgs --wbits 4 --abits 4 --epochs 1 --batch 16 "
                     "--threads 2 --seed 3 %s --out %s/b%d", t, img, v[i], g_dir, i);
        cr_assert_eq(rc, 0, "%s", g_out);
        char p[600];
        snprintf(p, sizeof p, "%s/b%d/command.txt", g_dir, i);
        size_t n;
        char *cmd = (char *)sqt_slurp(p, &n);
        cr_assert(cmd);
        cr_expect(strstr(cmd, i == 1 ? "bf16-bwd=0" : "bf16-bwd=1") != NULL, "%s", cmd);
        free(cmd);
        snprintf(p, sizeof p, "%s/b%d/last.safetensors", g_dir, i);
        ck[i] = sqt_slurp(p, &nck[i]);
        cr_assert(ck[i]);
    }
    /* the default is the BF16 backward: the same tensors as bf16-bwd=1 (safetensors: an 8-byte
       header length, the JSON header with the run's metadata, then the tensors' bytes) */
    const unsigned char *data[3];
    size_t nd[3];
    for (int i = 0; i < 3; i++) {
        unsigned long long h = 0;
        for (int b = 7; b >= 0; b--) h = h << 8 | ck[i][b];
        cr_assert_lt(8 + h, nck[i]);
        data[i] = ck[i] + 8 + h;
        nd[i] = nck[i] - 8 - h;
    }
    cr_expect(nd[0] == nd[2] && memcmp(data[0], data[2], nd[0]) == 0, "the default differs from bf16-bwd=1");
    if (sq_cpu_qconv_bwd_available())
        cr_expect(nd[1] == nd[2] && memcmp(data[1], data[2], nd[1]) != 0,
                  "bf16-bwd=0 and bf16-bwd=1 trained the same student");
    for (int i = 0; i < 3; i++) free(ck[i]);
}
