/* test_crash.c: crash consistency of the end of an epoch. train, distill and a multi-student
   distill are killed (SIGKILL, from the atomic writer's fault hook) at every step of every file
   write of a run: creating each temporary file, its first, middle and last byte ranges, its fsync,
   the rename and the moment after it; the run is then resumed (or, when nothing was committed yet,
   started again) with the executable, and its final last, best and state files must equal an
   uninterrupted run's byte for byte, with one metrics.jsonl line per epoch and no temporary file
   left. The killed runs are forks of this test process running the command in-process (the hook
   is a function pointer, not an environment variable); this process itself never starts OpenMP
   threads, so forking it is safe. */
#include "cli/cli.h"
#include "io/atomic_write.h"
#include "util_check.h"
#include "util_fixtures.h"
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_dir[256], g_out[16384];

static void setup(void) { sqt_cli_setup(g_dir, sizeof g_dir, "sqakd_crash"); }

static void teardown(void)
{
    cr_expect_eq(sqt_rmtree(g_dir), 0);
}

#define run(...) sqt_run(g_out, sizeof g_out, __VA_ARGS__)

/* ---- the kill hook: counts the atomic writer's events; logs them, or kills at one ---- */
typedef struct { long target, count; FILE *log; } kill_plan;
static kill_plan g_plan;

static int kill_hook(sq_io_fault *f, void *ctx)
{
    kill_plan *p = ctx;
    p->count++;
    if (p->log) {
        const char *base = strrchr(f->path, '/');
        fprintf(p->log, "%ld %d %s\n", p->count, (int)f->ev, base ? base + 1 : f->path);
        fflush(p->log);
    }
    if (p->count == p->target) raise(SIGKILL);
    return 0;
}

/* runs "sqakd ARGS" in a forked child with the hook (killing at event target, or logging every
   event to log when target is 0); returns the wait status */
static int run_child(char *args, long target, const char *log)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); }
        char *argv[64];
        int argc = 0;
        for (char *save = NULL, *t = strtok_r(args, " ", &save); t && argc < 63; t = strtok_r(NULL, " ", &save))
            argv[argc++] = t;
        argv[argc] = NULL;
        g_plan = (kill_plan){.target = target, .log = log ? fopen(log, "w") : NULL};
        sq_io_set_fault_hook(kill_hook, &g_plan);
        int rc = !strcmp(argv[0], "train") ? sq_cmd_train(argc, argv) : sq_cmd_distill(argc, argv);
        if (g_plan.log) fclose(g_plan.log);
        _exit(rc);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    return st;
}

typedef struct { long k; int ev; char file[128]; } event;

/* the kill points: every event but the middle byte ranges of a file (its first, middle and last
   range are kept) */
static int kill_points(const char *log, long *pts, int max)
{
    FILE *f = fopen(log, "r");
    cr_assert_not_null(f);
    event ev[4096];
    int n = 0;
    while (n < 4096 && fscanf(f, "%ld %d %127s", &ev[n].k, &ev[n].ev, ev[n].file) == 3) n++;
    fclose(f);
    int np = 0;
    for (int i = 0; i < n && np < max; i++) {
        if (ev[i].ev != SQ_IO_WRITE) { pts[np++] = ev[i].k; continue; }
        int first = i, last = i;
        while (first > 0 && ev[first - 1].ev == SQ_IO_WRITE) first--;
        while (last + 1 < n && ev[last + 1].ev == SQ_IO_WRITE) last++;
        if (i == first || i == last || i == (first + last) / 2) pts[np++] = ev[i].k;
    }
    return np;
}

static void expect_same_file(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *x = sqt_slurp(a, &na), *y = sqt_slurp(b, &nb);
    cr_expect(na == nb && !memcmp(x, y, na), "%s differs from %s", b, a);
    free(x);
    free(y);
}

static void expect_same_run(const char *ref, const char *dir, int epochs, long k)
{
    const char *files[] = {"last.safetensors", "best.safetensors", "last.state.safetensors"};
    for (int i = 0; i < 3; i++) {
        char a[600], b[600];
        snprintf(a, sizeof a, "%s/%s", ref, files[i]);
        snprintf(b, sizeof b, "%s/%s", dir, files[i]);
        expect_same_file(a, b);
    }
    char p[600], line[4096];
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    FILE *f = fopen(p, "r");
    cr_assert_not_null(f, "kill at %ld: no %s", k, p);
    int e = 0;
    while (fgets(line, sizeof line, f)) {
        char want[32];
        snprintf(want, sizeof want, "{\"epoch\":%d,", ++e);
        cr_expect(!strncmp(line, want, strlen(want)), "kill at %ld: %s line %d: %s", k, p, e, line);
    }
    fclose(f);
    cr_expect_eq(e, epochs, "kill at %ld: %s has %d lines", k, p, e);
    DIR *d = opendir(dir);
    for (struct dirent *x; d && (x = readdir(d));)
        cr_expect(!strstr(x->d_name, ".tmp."), "kill at %ld: temporary file %s/%s left", k, dir, x->d_name);
    if (d) closedir(d);
}

/* the whole campaign for one command (ARGS ends with "--out"), over run directories subs */
static void campaign(const char *name, const char *args, const char *const *subs, int nsub)
{
    char ref[400], log[400], line[4096];
    snprintf(ref, sizeof ref, "%s/%s_ref", g_dir, name);
    cr_assert_eq(run("%s %s", args, ref), 0, "%s", g_out);
    snprintf(log, sizeof log, "%s/%s_events.txt", g_dir, name);
    char survey[400];
    snprintf(survey, sizeof survey, "%s/%s_survey", g_dir, name);
    snprintf(line, sizeof line, "%s %s", args, survey);
    int st = run_child(line, 0, log);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "survey run of %s failed (%d)", name, st);
    long pts[1024];
    int np = kill_points(log, pts, 1024), resumed = 0, restarted = 0;
    cr_assert_gt(np, 20, "%s: only %d kill points", name, np);
    for (int i = 0; i < np; i++) {
        char dir[400], probe[600];
        snprintf(dir, sizeof dir, "%s/%s_k%ld", g_dir, name, pts[i]);
        snprintf(line, sizeof line, "%s %s", args, dir);
        st = run_child(line, pts[i], NULL);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s: kill at event %ld did not happen (%d)", name,
                  pts[i], st);
        int have_state = 0;
        for (int s = 0; s < nsub; s++) {
            snprintf(probe, sizeof probe, "%s%s%s/last.state.safetensors", dir, subs[s][0] ? "/" : "", subs[s]);
            have_state |= access(probe, F_OK) == 0;
        }
        if (have_state) {
            cr_assert_eq(run("%s --resume %s --quiet", !strncmp(args, "train", 5) ? "train" : "distill", dir), 0,
                         "%s: resume after a kill at event %ld: %s", name, pts[i], g_out);
            resumed++;
        } else {
            cr_assert_eq(run("%s %s", args, dir), 0, "%s: a new run after a kill at event %ld: %s", name, pts[i], g_out);
            restarted++;
        }
        for (int s = 0; s < nsub; s++) {
            char a[600], b[600];
            snprintf(a, sizeof a, "%s%s%s", ref, subs[s][0] ? "/" : "", subs[s]);
            snprintf(b, sizeof b, "%s%s%s", dir, subs[s][0] ? "/" : "", subs[s]);
            expect_same_run(a, b, 2, pts[i]);
        }
        sqt_rmtree(dir);
    }
    cr_log_info("%s: %d kill points, %d resumed, %d started again; every final file byte-identical", name, np,
                resumed, restarted);
    printf("crash: %s: %d kill points, %d resumed, %d started again\n", name, np, resumed, restarted);
}

static void make_inputs(char *img, char *lab, char *teacher, size_t n)
{
    snprintf(img, n, "%s/img.idx", g_dir);
    snprintf(lab, n, "%s/lab.idx", g_dir);
    snprintf(teacher, n, "%s/teacher", g_dir);
    sqt_write_idx_pattern(img, lab, 48, 8, 3, 11);
    cr_assert_eq(run("train --model smallcnn --data idx:%s,%s --epochs 1 --batch 16 --threads 2 --holdout 0.25 "
                     "--quiet --out %s", img, lab, teacher), 0, "%s", g_out);
}

Test(crash, train_killed_at_every_write_resumes_byte_identical, .init = setup, .fini = teardown, .timeout = 600)
{
    char img[300], lab[300], t[300], args[2048];
    make_inputs(img, lab, t, sizeof img);
    snprintf(args, sizeof args, "train --model smallcnn --data idx:%s,%s --epochs 2 --batch 16 --threads 2 "
             "--holdout 0.25 --lr 0.05 --quiet --out", img, lab);
    const char *subs[] = {""};
    campaign("train", args, subs, 1);
}

Test(crash, distill_killed_at_every_write_resumes_byte_identical, .init = setup, .fini = teardown, .timeout = 600)
{
    char img[300], lab[300], t[300], args[2048];
    make_inputs(img, lab, t, sizeof img);
    snprintf(args, sizeof args, "distill --teacher %s/last.safetensors --data idx:%s --quantizer ewgs --wbits 2 "
             "--abits 2 --epochs 2 --batch 16 --threads 2 --holdout 0.25 --quiet --out", t, img);
    const char *subs[] = {""};
    campaign("distill", args, subs, 1);
}

Test(crash, multi_student_distill_killed_at_every_write_resumes_byte_identical, .init = setup, .fini = teardown,
     .timeout = 900)
{
    char img[300], lab[300], t[300], args[2048];
    make_inputs(img, lab, t, sizeof img);
    snprintf(args, sizeof args, "distill --teacher %s/last.safetensors --data idx:%s --students ewgs:w2a2,lsq:4 "
             "--epochs 2 --batch 16 --threads 2 --holdout 0.25 --quiet --out", t, img);
    const char *subs[] = {"ewgs_w2a2", "lsq_w4a4"};
    campaign("multi", args, subs, 2);
}
