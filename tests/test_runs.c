/* test_runs.c: what a run directory promises, through the executable: a run holds its directory
   (a second run into it is refused, naming the holder), a finished directory is not overwritten
   without --resume or --overwrite, --resume takes the recorded configuration and refuses a
   conflicting flag (keeping command.txt's original seed), temporary files a kill left are
   removed, the divergence guard stops a run whose loss explodes (never promoting it to best), and
   checkpoint metadata is validated (values that would evaluate on NaN inputs or in the wrong
   precision are refused, naming the key). Also the atomic writer's temporary files: never a
   predictable name that a planted link could redirect. */
#include "io/atomic_write.h"
#include "sqakd/checkpoint.h"
#include "sqakd/safetensors.h"
#include "sqakd/train.h"
#include "train/train_internal.h"
#include "util_check.h"
#include "util_fixtures.h"
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_dir[256], g_out[16384], g_img[320], g_lab[320], g_teacher[320];

#define run(...) sqt_run(g_out, sizeof g_out, __VA_ARGS__)

static int exists(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int exists(const char *fmt, ...)
{
    char p[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p, sizeof p, fmt, ap);
    va_end(ap);
    struct stat sb;
    return lstat(p, &sb) == 0;
}

/* 48 labelled 1x8x8 IDX images of 10 classes, the same as an MNIST-style directory, and a teacher
   trained on them */
static void setup(void)
{
    sqt_cli_setup(g_dir, sizeof g_dir, "sqakd_runs");
    snprintf(g_img, sizeof g_img, "%s/img.idx", g_dir);
    snprintf(g_lab, sizeof g_lab, "%s/lab.idx", g_dir);
    sqt_write_idx_pattern(g_img, g_lab, 48, 8, 10, 3); /* 10 classes, as the mnist: spec that eval reads has */
    /* the MNIST-style directory, whose t10k split eval reads */
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "mkdir %s/mn && cp %s %s/mn/train-images-idx3-ubyte && cp %s %s/mn/t10k-images-idx3-ubyte && "
             "cp %s %s/mn/train-labels-idx1-ubyte && cp %s %s/mn/t10k-labels-idx1-ubyte", g_dir, g_img, g_dir, g_img,
             g_dir, g_lab, g_dir, g_lab, g_dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(g_teacher, sizeof g_teacher, "%s/teacher/last.safetensors", g_dir);
    cr_assert_eq(run("train --model smallcnn --data idx:%s,%s --epochs 1 --batch 16 --holdout 0.25 --quiet --out "
                     "%s/teacher", g_img, g_lab, g_dir), 0, "%s", g_out);
}

static void teardown(void)
{
    cr_expect_eq(sqt_rmtree(g_dir), 0);
}

TestSuite(runs, .init = setup, .fini = teardown, .timeout = 300);

#define DISTILL "distill --teacher %s --data idx:%s --quantizer ewgs --wbits 2 --abits 2 --batch 16 --holdout 0.25 --quiet"

static void expect_one_line(const char *what)
{
    cr_expect(strstr(g_out, what) != NULL, "wanted '%s' in: %s", what, g_out);
    const char *nl = strchr(g_out, '\n');
    cr_expect(nl && nl[1] == 0, "more than one line: %s", g_out);
}

Test(runs, a_second_run_into_a_held_directory_is_refused_naming_the_holder)
{
    char dir[400], lock[500];
    snprintf(dir, sizeof dir, "%s/held", g_dir);
    cr_assert_eq(mkdir(dir, 0755), 0);
    snprintf(lock, sizeof lock, "%s/.sqakd.lock", dir);
    int pipefd[2];
    cr_assert_eq(pipe(pipefd), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) { /* another run holding the directory */
        int fd = open(lock, O_RDWR | O_CREAT, 0644);
        if (fd < 0 || flock(fd, LOCK_EX)) _exit(1);
        const char *who = "sqakd distill, pid 4242 on node7 since 2026-12-07 10:00:00\n";
        if (write(fd, who, strlen(who)) < 0) _exit(1);
        if (write(pipefd[1], "k", 1) != 1) _exit(1);
        pause();
        _exit(0);
    }
    char c;
    cr_assert_eq(read(pipefd[0], &c, 1), 1);
    int rc = run(DISTILL " --epochs 1 --out %s", g_teacher, g_img, dir);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    cr_expect_eq(rc, 2, "%s", g_out);
    expect_one_line("is in use by another run (sqakd distill, pid 4242 on node7");
    cr_expect(!exists("%s/command.txt", dir) && !exists("%s/metrics.jsonl", dir), "the refused run wrote files");
    /* the holder gone, the same command runs */
    cr_expect_eq(run(DISTILL " --epochs 1 --out %s", g_teacher, g_img, dir), 0, "%s", g_out);
    cr_expect(exists("%s/last.state.safetensors", dir));
}

Test(runs, a_finished_directory_needs_resume_or_overwrite)
{
    char a[400], b[400];
    snprintf(a, sizeof a, "%s/a", g_dir);
    snprintf(b, sizeof b, "%s/b", g_dir);
    cr_assert_eq(run(DISTILL " --epochs 1 --out %s", g_teacher, g_img, a), 0, "%s", g_out);
    size_t n0, n1;
    char last[500], metrics[500];
    snprintf(last, sizeof last, "%s/last.safetensors", a);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", a);
    unsigned char *before = sqt_slurp(last, &n0);
    unsigned char *mbefore = sqt_slurp(metrics, &n1);
    cr_expect_eq(run(DISTILL " --epochs 1 --seed 7 --out %s", g_teacher, g_img, a), 2, "%s", g_out);
    expect_one_line("already holds a run");
    size_t n2, n3;
    unsigned char *after = sqt_slurp(last, &n2), *mafter = sqt_slurp(metrics, &n3);
    cr_expect(n0 == n2 && !memcmp(before, after, n0), "the refused run changed last.safetensors");
    cr_expect(n1 == n3 && !memcmp(mbefore, mafter, n1), "the refused run appended to metrics.jsonl");
    /* --overwrite: the same as a run into a fresh directory */
    cr_expect_eq(run(DISTILL " --epochs 1 --seed 7 --overwrite --out %s", g_teacher, g_img, a), 0, "%s", g_out);
    cr_expect_eq(run(DISTILL " --epochs 1 --seed 7 --out %s", g_teacher, g_img, b), 0, "%s", g_out);
    char l2[500];
    snprintf(l2, sizeof l2, "%s/last.safetensors", b);
    size_t n4, n5;
    unsigned char *x = sqt_slurp(last, &n4), *y = sqt_slurp(l2, &n5);
    cr_expect(n4 == n5 && !memcmp(x, y, n4), "--overwrite differs from a fresh run");
    unsigned char *m = sqt_slurp(metrics, &n4);
    int lines = 0;
    for (size_t i = 0; i < n4; i++) lines += m[i] == '\n';
    cr_expect_eq(lines, 1, "metrics.jsonl of the overwritten run has %d lines", lines);
    free(before); free(after); free(mbefore); free(mafter); free(x); free(y); free(m);
}

Test(runs, resume_takes_the_recorded_flags_and_refuses_conflicts)
{
    char a[400], b[400];
    snprintf(a, sizeof a, "%s/a", g_dir);
    snprintf(b, sizeof b, "%s/b", g_dir);
    cr_assert_eq(run(DISTILL " --epochs 2 --seed 5 --lr-model 0.002 --out %s", g_teacher, g_img, a), 0, "%s", g_out);
    cr_assert_eq(run(DISTILL " --epochs 1 --seed 5 --lr-model 0.002 --out %s", g_teacher, g_img, b), 0, "%s", g_out);
    const char *bad[] = {"--seed 99", "--lr-model 0.5", "--quantizer lsq", "--wbits 4", "--batch 8",
                         "--data fashion-mnist", "--temperature 2"};
    const char *flag[] = {"--seed", "--lr-model", "--quantizer", "--wbits", "--batch", "--data", "--temperature"};
    for (int i = 0; i < 7; i++) {
        cr_expect_eq(run("distill --resume %s %s --quiet", b, bad[i]), 2, "%s accepted: %s", bad[i], g_out);
        char want[64];
        snprintf(want, sizeof want, "--resume: %s is", flag[i]);
        expect_one_line(want);
    }
    char cmdtxt[500];
    snprintf(cmdtxt, sizeof cmdtxt, "%s/command.txt", b);
    size_t n;
    unsigned char *t = sqt_slurp(cmdtxt, &n);
    t[n] = 0;
    cr_expect(strstr((char *)t, "\nseed 5\n") && !strstr((char *)t, "resumed"), "refused resumes touched command.txt: %s", t);
    free(t);
    /* --epochs may change; every other flag comes from the record: the result is the 2-epoch run's */
    cr_assert_eq(run("distill --resume %s --epochs 2 --quiet", b), 0, "%s", g_out);
    char la[500], lb[500];
    snprintf(la, sizeof la, "%s/last.safetensors", a);
    snprintf(lb, sizeof lb, "%s/last.safetensors", b);
    size_t na, nb;
    unsigned char *x = sqt_slurp(la, &na), *y = sqt_slurp(lb, &nb);
    cr_expect(na == nb && !memcmp(x, y, na), "the resumed run differs from the uninterrupted one");
    free(x); free(y);
    t = sqt_slurp(cmdtxt, &n);
    t[n] = 0;
    cr_expect(strstr((char *)t, "\nseed 5\n") != NULL, "the original seed is lost: %s", t);
    cr_expect(strstr((char *)t, "\nresumed: sqakd distill --resume ") != NULL, "no resumed line: %s", t);
    free(t);
}

Test(runs, resume_removes_temporary_files_a_kill_left)
{
    char a[400];
    snprintf(a, sizeof a, "%s/a", g_dir);
    cr_assert_eq(run(DISTILL " --epochs 1 --out %s", g_teacher, g_img, a), 0, "%s", g_out);
    const char *names[] = {"last.safetensors.tmp.123456", "last.state.safetensors.tmp.Ab3xYz", "metrics.jsonl.tmp.77"};
    for (int i = 0; i < 3; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", a, names[i]);
        sqt_write_bytes(p, "torn", 4, 0);
    }
    cr_assert_eq(run("distill --resume %s --epochs 2 --quiet", a), 0, "%s", g_out);
    for (int i = 0; i < 3; i++) cr_expect(!exists("%s/%s", a, names[i]), "%s left", names[i]);
}

Test(runs, an_output_directory_that_cannot_be_made_says_why)
{
    char f[400];
    snprintf(f, sizeof f, "%s/plainfile", g_dir);
    sqt_write_bytes(f, "x", 1, 0);
    cr_expect_eq(run(DISTILL " --epochs 1 --out %s/sub", g_teacher, g_img, f), 2, "%s", g_out);
    expect_one_line(strerror(ENOTDIR));
}

Test(runs, a_diverging_run_stops_naming_the_step_and_is_never_best)
{
    char a[400];
    snprintf(a, sizeof a, "%s/a", g_dir);
    int rc = run("train --model smallcnn --data idx:%s,%s --epochs 3 --batch 16 --holdout 0.25 --lr 100 --quiet "
                 "--out %s", g_img, g_lab, a);
    cr_expect_neq(rc, 0, "lr 100 exited 0: %s", g_out);
    cr_expect(strstr(g_out, "step ") && (strstr(g_out, "diverged") || strstr(g_out, "non-finite")), "%s", g_out);
    cr_expect(!exists("%s/best.safetensors", a) && !exists("%s/last.safetensors", a),
              "a diverged run left a checkpoint: %s", g_out);
}

Test(runs, the_guard_bounds_the_loss_by_the_first_one)
{
    sq_train_cfg cfg;
    sq_train_cfg_defaults(&cfg);
    cr_expect_eq(cfg.max_loss_ratio, 100.0f, "documented default");
    sq_run_state rs = {.best = -1};
    cr_expect_eq(sq_train_check_loss(&cfg, &rs, 2.3, 0), SQ_OK);
    cr_expect_eq(rs.loss_ref, 2.3);
    cr_expect_eq(sq_train_check_loss(&cfg, &rs, 229.0, 0), SQ_OK);
    rs.step = 17;
    cr_expect_eq(sq_train_check_loss(&cfg, &rs, 231.0, 1), SQ_ENUMERIC);
    cr_expect(strstr(sq_last_error(), "epoch 2 step 17") != NULL, "%s", sq_last_error());
    cr_expect_eq(sq_train_check_loss(&cfg, &rs, NAN, 1), SQ_ENUMERIC);
    cr_expect(strstr(sq_last_error(), "non-finite") != NULL, "%s", sq_last_error());
    /* a first loss near 0 (a student almost equal to its teacher): the floor */
    sq_run_state r2 = {.best = -1};
    cr_expect_eq(sq_train_check_loss(&cfg, &r2, 1e-4, 0), SQ_OK);
    cr_expect_eq(sq_train_check_loss(&cfg, &r2, 9.9, 0), SQ_OK);
    cr_expect_eq(sq_train_check_loss(&cfg, &r2, 10.1, 0), SQ_ENUMERIC);
    cfg.max_loss_ratio = 0; /* off: only non-finite losses stop */
    cr_expect_eq(sq_train_check_loss(&cfg, &r2, 1e30, 0), SQ_OK);
}

/* copies ckpt to path with one metadata value replaced */
static void with_meta(const char *src, const char *dst, const char *key, const char *value)
{
    sq_st_file f;
    cr_assert_eq(sq_st_read(src, &f), SQ_OK, "%s", sq_last_error());
    sq_st_kv kv[64];
    int n = 0, found = 0;
    for (int i = 0; i < f.nmeta && n < 63; i++) {
        kv[n] = f.meta[i];
        if (!strcmp(kv[n].key, key)) { kv[n].value = (char *)value; found = 1; }
        n++;
    }
    if (!found) kv[n++] = (sq_st_kv){(char *)key, (char *)value};
    sq_st_file g = f;
    g.meta = kv;
    g.nmeta = n;
    cr_assert_eq(sq_st_write(dst, &g), SQ_OK, "%s", sq_last_error());
    sq_st_free(&f);
}

Test(runs, checkpoint_metadata_is_validated_naming_the_key)
{
    char s[400], bad[400];
    snprintf(s, sizeof s, "%s/s", g_dir);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", g_dir);
    cr_assert_eq(run(DISTILL " --epochs 1 --out %s", g_teacher, g_img, s), 0, "%s", g_out);
    char student[500];
    snprintf(student, sizeof student, "%s/last.safetensors", s);
    struct { const char *key, *value, *want; } cases[] = {
        {"norm_mean", "nan,0,0", "'norm_mean'"},
        {"norm_std", "0,1,1", "'norm_std'"},
        {"norm_mean", "0.5", "'norm_mean'"},
        {"quantizer", "none", "'wbits'"},   /* a W2A2 student that would evaluate in FP32 */
        {"wbits", "99", "'wbits'"},
        {"abits", "2x", "'abits'"},
        {"input_shape", "1,8", "'input_shape'"},
        {"classes", "-3", "'classes'"},
        {"epoch", "1e9", "'epoch'"},
        {"dataset", "x\x1b[2J", "'dataset'"},
        {"delta_w", "-1", "'delta_w'"},
    };
    cr_assert_eq(run("eval %s --data mnist:%s/mn", student, g_dir), 0, "the unchanged student: %s", g_out);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        with_meta(student, bad, cases[i].key, cases[i].value);
        int rc = run("eval %s --data mnist:%s/mn", bad, g_dir);
        cr_expect_eq(rc, 2, "%s=%s accepted: %s", cases[i].key, cases[i].value, g_out);
        expect_one_line(cases[i].want);
        cr_expect(!strstr(g_out, "--wbits") && !strchr(g_out, '\x1b'), "%s", g_out);
    }
}

Test(runs, info_escapes_what_a_file_says)
{
    char s[400], bad[400];
    snprintf(s, sizeof s, "%s/s", g_dir);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", g_dir);
    cr_assert_eq(run(DISTILL " --epochs 1 --out %s", g_teacher, g_img, s), 0, "%s", g_out);
    char student[500];
    snprintf(student, sizeof student, "%s/last.safetensors", s);
    with_meta(student, bad, "note\x1b]0;pwned\x07", "line1\nFAKE: line2\x1b[31m");
    cr_expect_eq(run("info %s --tensors", bad), 0, "%s", g_out);
    cr_expect(!strchr(g_out, '\x1b') && !strchr(g_out, '\x07'), "raw escape in: %s", g_out);
    cr_expect(!strstr(g_out, "\nFAKE"), "a forged line: %s", g_out);
    cr_expect(strstr(g_out, "line1\\x0aFAKE") != NULL, "%s", g_out);
}

/* the atomic writer's temporary name is not predictable: a link planted at the name an earlier
   version used ("<path>.tmp.<pid>") is neither followed nor replaced */
Test(runs, a_planted_link_at_the_temporary_name_is_not_followed)
{
    char victim[400], path[400], link[500];
    snprintf(victim, sizeof victim, "%s/victim", g_dir);
    snprintf(path, sizeof path, "%s/out.json", g_dir);
    snprintf(link, sizeof link, "%s.tmp.%ld", path, (long)getpid());
    sqt_write_bytes(victim, "precious", 8, 0);
    cr_assert_eq(symlink(victim, link), 0);
    cr_assert_eq(sq_write_file_atomic(path, "{}", 2), SQ_OK, "%s", sq_last_error());
    size_t n;
    unsigned char *v = sqt_slurp(victim, &n);
    cr_expect(n == 8 && !memcmp(v, "precious", 8), "the write went through the planted link");
    free(v);
    struct stat sb;
    cr_expect(lstat(link, &sb) == 0 && S_ISLNK(sb.st_mode), "the planted link was replaced");
    cr_expect(lstat(path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == 2);
    cr_expect_eq(sb.st_mode & 0777, 0644);
}
