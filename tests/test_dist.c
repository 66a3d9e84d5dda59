/* test_dist.c: data-parallel runs through the executable under mpirun (2 ranks, CPU backend,
   one thread each): with --sync-bn, 2 ranks give the weights of 1 rank at the same global batch
   after 3 steps within 1e-6 of the largest weight (not bit-exact: the batch sums are split
   differently), where no pre-activation lies within rounding of a ReLU's kink (see the test), and
   without it they differ through BatchNorm's per-rank statistics; one step's parameter gradients
   of 2 ranks with --sync-bn are 1 rank's within 2e-5 per tensor; the synchronised BN ops on two ranks (threads) equal BN on the whole batch; a 2-rank
   run resumed at 2 ranks gives the uninterrupted run's files bit for bit, and resumes at 1 rank;
   a batch the ranks do not divide is refused in one line; a rank that hangs (SIGSTOP) or dies
   (SIGKILL) stops the others instead of leaving them waiting; gradients all-reduced in many small
   buckets during the backward give the weights of one bucket after it, bit for bit, and the
   backward hands every gradient over once, when it is final (a spy backend, in one process). The
   suite skips, saying why, where mpirun or MPI is absent (make deps installs Debian's OpenMPI). */
#include "sqakd/model.h"
#include "sqakd/safetensors.h"
#include "util_check.h"
#include "util_fixtures.h"
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char g_dir[256], g_out[32768], g_img[320], g_lab[320];

/* root in CI: OpenMPI refuses root without these; 2 ranks on 2 shared cores need oversubscription */
#define MPIRUN "mpirun --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -np"

static void setup(void)
{
    sqt_cli_setup(g_dir, sizeof g_dir, "sqakd_dist");
    if (system("command -v mpirun >/dev/null 2>&1") != 0)
        cr_skip_test("mpirun not found: install openmpi-bin and libopenmpi-dev (make deps) and rebuild");
    char out[4096];
    sqt_run(out, sizeof out, "--version");
    if (strstr(out, "built without MPI"))
        cr_skip_test("%s was built without MPI: install libopenmpi-dev (make deps) and rebuild", sqt_bin());
    snprintf(g_img, sizeof g_img, "%s/img.idx", g_dir);
    snprintf(g_lab, sizeof g_lab, "%s/lab.idx", g_dir);
    sqt_write_idx_pattern(g_img, g_lab, 96, 16, 10, 5);
}

static void teardown(void) { sqt_rmtree(g_dir); }

TestSuite(dist, .init = setup, .fini = teardown, .timeout = 240);

/* runs `sqakd ARGS` under mpirun with np ranks (np 0: the executable alone); output in g_out */
static int mrun(int np, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int mrun(int np, const char *fmt, ...)
{
    char args[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    if (np) snprintf(cmd, sizeof cmd, MPIRUN " %d %s %s 2>&1", np, sqt_bin(), args);
    else snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s %s 2>&1", sqt_bin(), args);
    g_out[0] = 0;
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(g_out, 1, sizeof g_out - 1, p);
    g_out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* the training flags every run here shares: resnet20 (BatchNorm everywhere), SGD at a small
   learning rate (the steps stay close to the gradients: a large one makes 3 steps chaotic), 3 steps
   of a global batch of 16, no augmentation */
#define TRAIN "train --model resnet20 --data idx:%s,%s --batch 16 --max-steps 3 --holdout 0.25 --augment none " \
              "--lr 0.001 --threads 1 --quiet"

/* how two checkpoints differ over their F32 tensors (weights and BatchNorm running statistics):
   model: max|a - b| / max|b| over the whole model; tensor: the largest of the same per tensor (its
   name in worst); large: the same over the tensors whose largest value is at least 1 % of the
   model's (every weight tensor, not the BatchNorm biases and means that start at 0); exact: every
   tensor bit-equal */
typedef struct { double model, tensor, large; int exact; char worst[256]; } ckpt_diff;

static ckpt_diff ckpt_compare(const char *a, const char *b)
{
    sq_st_file fa, fb;
    cr_assert_eq(sq_st_read(a, &fa), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_st_read(b, &fb), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(fa.ntensors, fb.ntensors);
    ckpt_diff r = {0, 0, 0, 1, ""};
    double *rel = sq_xcalloc(fa.ntensors, sizeof *rel), *mx = sq_xcalloc(fa.ntensors, sizeof *mx);
    double dmax = 0, bmax = 0;
    for (int i = 0; i < fa.ntensors; i++) {
        const sq_st_tensor *ta = &fa.tensors[i], *tb = sq_st_find(&fb, ta->name);
        cr_assert_not_null(tb, "%s lacks %s", b, ta->name);
        cr_assert_eq(ta->nbytes, tb->nbytes);
        if (memcmp(ta->data, tb->data, ta->nbytes)) r.exact = 0;
        if (ta->dtype != SQ_ST_F32) continue;
        const float *x = ta->data, *y = tb->data;
        double d = 0, m = 0;
        for (size_t j = 0; j < ta->nbytes / 4; j++) {
            if (fabs((double)x[j] - y[j]) > d) d = fabs((double)x[j] - y[j]);
            if (fabs((double)y[j]) > m) m = fabs((double)y[j]);
        }
        if (d > dmax) dmax = d;
        if (m > bmax) bmax = m;
        rel[i] = m > 0 ? d / m : d;
        mx[i] = m;
        if (rel[i] > r.tensor) {
            r.tensor = rel[i];
            snprintf(r.worst, sizeof r.worst, "%s", ta->name);
        }
    }
    r.model = bmax > 0 ? dmax / bmax : dmax;
    for (int i = 0; i < fa.ntensors; i++)
        if (mx[i] >= 1e-2 * bmax && rel[i] > r.large) r.large = rel[i];
    free(rel);
    free(mx);
    sq_st_free(&fa);
    sq_st_free(&fb);
    return r;
}

/* 2 ranks with --sync-bn against 1 process at the same global batch, 3 steps. The two differ by
   rounding only (the batch's sums are split between the ranks), about 1e-7 of a pre-activation;
   that is also how far apart the runs' pre-activations are, so a pre-activation that lies within a
   few ulps of a ReLU's kink (0) can be gated on in one run and off in the other, and that one
   element's gradient then moves its layer's parameter gradients (sums that nearly cancel) by up to
   1 %. With the default weight decay, this data set has such an element at step 2 (layer1.1's
   residual ReLU, image 13, channel 5, +2.4e-7 in one process, -8.3e-7 on 2 ranks): the single
   process itself jumps as far when its weight decay goes from 1e-4 to 0. With --wd 0 no
   pre-activation comes that close, and 2 ranks equal 1 within 1e-6 of the largest weight (every
   tensor whose values reach 1 % of it, too); the BatchNorm biases, which start at 0 and hold
   about 1e-4 after 3 steps, differ by about 1e-9 (up to 1e-5 of their own largest value). */
Test(dist, sync_bn_two_ranks_give_the_weights_of_one_rank)
{
    cr_assert_eq(mrun(0, TRAIN " --epochs 1 --sync-bn --wd 0 --out %s/one0", g_img, g_lab, g_dir), 0, "%s", g_out);
    cr_assert_eq(mrun(2, TRAIN " --epochs 1 --sync-bn --wd 0 --out %s/two0", g_img, g_lab, g_dir), 0, "%s", g_out);
    cr_assert_eq(mrun(0, TRAIN " --epochs 1 --sync-bn --out %s/one", g_img, g_lab, g_dir), 0, "%s", g_out);
    cr_assert_eq(mrun(2, TRAIN " --epochs 1 --sync-bn --out %s/two", g_img, g_lab, g_dir), 0, "%s", g_out);
    cr_assert_eq(mrun(2, TRAIN " --epochs 1 --out %s/two_local", g_img, g_lab, g_dir), 0, "%s", g_out);
    char one0[512], two0[512], one[512], two[512], loc[512];
    snprintf(one0, sizeof one0, "%s/one0/last.safetensors", g_dir);
    snprintf(two0, sizeof two0, "%s/two0/last.safetensors", g_dir);
    snprintf(one, sizeof one, "%s/one/last.safetensors", g_dir);
    snprintf(two, sizeof two, "%s/two/last.safetensors", g_dir);
    snprintf(loc, sizeof loc, "%s/two_local/last.safetensors", g_dir);
    ckpt_diff z = ckpt_compare(two0, one0), s = ckpt_compare(two, one), l = ckpt_compare(loc, one),
              k = ckpt_compare(one0, one);
    cr_log_info("--wd 0: 2 ranks --sync-bn vs 1 rank (global batch 16, 3 SGD steps): %.3g of the largest weight, "
                "%.3g within the worst weight tensor, %.3g within the worst tensor (%s); bit-exact: %s",
                z.model, z.large, z.tensor, z.worst, z.exact ? "yes" : "no");
    cr_log_info("default --wd: 2 ranks --sync-bn vs 1 rank: %.3g of the largest weight, %.3g within the worst "
                "tensor (%s)", s.model, s.tensor, s.worst);
    cr_log_info("default --wd: 1 rank vs itself at --wd 0: %.3g within the worst tensor (%s)", k.tensor, k.worst);
    cr_log_info("2 ranks without --sync-bn vs 1 rank: %.3g of the largest weight, %.3g within the worst tensor (%s)",
                l.model, l.tensor, l.worst);
    cr_expect(z.model <= 1e-6, "--wd 0: 2 ranks with --sync-bn differ from 1 rank by %.3g of the largest weight",
              z.model);
    cr_expect(z.large <= 1e-6, "--wd 0: 2 ranks with --sync-bn differ from 1 rank by %.3g within a weight tensor",
              z.large);
    /* with a ReLU gate flipped (default --wd): one element's gradient, not a wrong BN; the bound
       is that flip with a margin, still 300 times below what per-rank statistics do */
    cr_expect(s.model <= 1e-4, "2 ranks with --sync-bn differ from 1 rank by %.3g of the largest weight (%s)",
              s.model, s.worst);
    /* without --sync-bn each rank normalises with its own 8 images: a real difference, which
       --sync-bn (the only flag that changed) removes */
    cr_expect(l.model > 300 * s.model && l.model > 1e-3, "per-rank BatchNorm statistics should change the weights "
              "(%.3g of the largest weight, with --sync-bn %.3g)", l.model, s.model);
}

/* the largest difference between the parameter gradients of the step that took w0 to a and to b
   (g = w0 - w, lr 1), relative to the largest gradient of its tensor, over the trained tensors
   (BN running statistics left out); its name in worst */
static double grad_compare(const char *a, const char *b, const char *w0, char *worst, size_t cap)
{
    sq_st_file fa, fb, f0;
    cr_assert_eq(sq_st_read(a, &fa), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_st_read(b, &fb), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_st_read(w0, &f0), SQ_OK, "%s", sq_last_error());
    double r = 0;
    for (int i = 0; i < fa.ntensors; i++) {
        const sq_st_tensor *ta = &fa.tensors[i], *tb = sq_st_find(&fb, ta->name), *t0 = sq_st_find(&f0, ta->name);
        cr_assert(tb && t0, "%s: no %s", b, ta->name);
        if (ta->dtype != SQ_ST_F32 || strstr(ta->name, "running")) continue;
        const float *x = ta->data, *y = tb->data, *z = t0->data;
        double d = 0, m = 0;
        for (size_t j = 0; j < ta->nbytes / 4; j++) {
            const double ga = (double)z[j] - x[j], gb = (double)z[j] - y[j];
            if (fabs(ga - gb) > d) d = fabs(ga - gb);
            if (fabs(gb) > m) m = fabs(gb);
        }
        const double rel = m > 0 ? d / m : d;
        if (rel > r) {
            r = rel;
            snprintf(worst, cap, "%s", ta->name);
        }
    }
    sq_st_free(&fa);
    sq_st_free(&fb);
    sq_st_free(&f0);
    return r;
}

/* one step, every op once (no trajectory yet, so nothing to magnify): each parameter gradient of
   2 ranks with --sync-bn against 1 process's, per tensor (BatchNorm's scale and bias gradients,
   sums over the batch that nearly cancel, included). Measured 6.4e-6 (layer3.2.bn2.bias); the
   bound 2e-5 is float summation over a batch split in two, with a margin; per-rank statistics
   are of order 1 off, a synchronised BN backward that used a local sum 1e-3 or more. */
#define STEP1 "train --model resnet20 --data idx:%s,%s --batch 16 --max-steps 1 --holdout 0.25 --augment none " \
              "--momentum 0 --wd 0 --threads 1 --quiet --epochs 1"
Test(dist, sync_bn_one_step_parameter_gradients_of_two_ranks_are_one_ranks)
{
    cr_assert_eq(mrun(0, STEP1 " --lr 0 --out %s/w0", g_img, g_lab, g_dir), 0, "%s", g_out);
    cr_assert_eq(mrun(0, STEP1 " --lr 1 --sync-bn --out %s/g1", g_img, g_lab, g_dir), 0, "%s", g_out);
    cr_assert_eq(mrun(2, STEP1 " --lr 1 --sync-bn --out %s/g2", g_img, g_lab, g_dir), 0, "%s", g_out);
    char w0[512], g1[512], g2[512], worst[256] = "";
    snprintf(w0, sizeof w0, "%s/w0/last.safetensors", g_dir);
    snprintf(g1, sizeof g1, "%s/g1/last.safetensors", g_dir);
    snprintf(g2, sizeof g2, "%s/g2/last.safetensors", g_dir);
    const double r = grad_compare(g2, g1, w0, worst, sizeof worst);
    cr_log_info("one step, 2 ranks --sync-bn vs 1 rank: parameter gradients within %.3g of their tensor's largest "
                "(%s)", r, worst);
    cr_expect(r <= 2e-5, "one step: 2 ranks with --sync-bn give parameter gradients %.3g off 1 rank's in %s", r,
              worst);
}

/* the buckets change when each gradient is summed, not the sum: two ranks' sum of one element is
   the same float whichever message carries it, so 2 ranks with buckets of 1 KiB (about 200 of
   them per resnet20 step) and with one 64 MiB bucket hold the same bits after 3 steps, with
   --sync-bn's BatchNorm collectives in between */
Test(dist, buckets_of_any_size_give_the_same_weights_bit_for_bit)
{
    cr_assert_eq(mrun(2, TRAIN " --epochs 1 --sync-bn --dist-bucket-mb 0.001 --out %s/small", g_img, g_lab, g_dir), 0,
                 "%s", g_out);
    cr_assert_eq(mrun(2, TRAIN " --epochs 1 --sync-bn --dist-bucket-mb 64 --out %s/one", g_img, g_lab, g_dir), 0,
                 "%s", g_out);
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/small/last.safetensors", g_dir);
    snprintf(b, sizeof b, "%s/one/last.safetensors", g_dir);
    ckpt_diff d = ckpt_compare(a, b);
    cr_expect(d.exact, "1 KiB buckets against one bucket: %.3g of the largest weight (%s)", d.model, d.worst);
}

Test(dist, a_two_rank_run_resumes_bit_exact_and_at_one_rank)
{
    cr_assert_eq(mrun(2, TRAIN " --epochs 2 --sync-bn --out %s/full", g_img, g_lab, g_dir), 0, "%s", g_out);
    cr_assert_eq(mrun(2, TRAIN " --epochs 1 --sync-bn --out %s/part", g_img, g_lab, g_dir), 0, "%s", g_out);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp -a %s/part %s/part1", g_dir, g_dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(mrun(2, "train --resume %s/part --epochs 2 --quiet", g_dir), 0, "%s", g_out);
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/full/last.safetensors", g_dir);
    snprintf(b, sizeof b, "%s/part/last.safetensors", g_dir);
    ckpt_diff d = ckpt_compare(b, a);
    cr_expect(d.exact, "2 ranks resumed at 2 ranks differ from the uninterrupted run by %.3g in %s", d.tensor, d.worst);
    /* the same run resumed by one process: --batch stays the global batch */
    cr_assert_eq(mrun(0, "train --resume %s/part1 --epochs 2 --quiet", g_dir), 0, "%s", g_out);
    snprintf(b, sizeof b, "%s/part1/last.safetensors", g_dir);
    d = ckpt_compare(b, a);
    cr_log_info("a 2-rank run resumed at 1 rank vs at 2 ranks: %.3g of the largest weight", d.model);
    cr_expect(d.model <= 1e-3, "resumed at 1 rank: %.3g of the largest weight from the 2-rank run", d.model);
    snprintf(b, sizeof b, "%s/part1/metrics.jsonl", g_dir);
    size_t n;
    unsigned char *m = sqt_slurp(b, &n);
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += m[i] == '\n';
    free(m);
    cr_expect_eq(lines, 2, "metrics.jsonl of the resumed run has %d lines", lines);
}

Test(dist, a_batch_the_ranks_do_not_divide_is_refused_in_one_line)
{
    cr_expect_neq(mrun(2, "train --model resnet20 --data idx:%s,%s --batch 15 --epochs 1 --max-steps 1 --threads 1 "
                      "--quiet --out %s/odd", g_img, g_lab, g_dir), 0);
    cr_expect(strstr(g_out, "sqakd train: --batch 15 is not a multiple of the 2 ranks") != NULL, "%s", g_out);
    struct stat sb;
    char p[512];
    snprintf(p, sizeof p, "%s/odd", g_dir);
    cr_expect(stat(p, &sb) != 0, "the refused run left %s behind", p);
}

/* the pid of the process of rank `rank` among mpirun's children (0 when not there yet) */
static pid_t rank_pid(pid_t mpirun, int rank)
{
    DIR *d = opendir("/proc");
    cr_assert_not_null(d);
    pid_t found = 0;
    char want[64];
    snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
    for (struct dirent *e; (e = readdir(d)) && !found;) {
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid <= 0) continue;
        char path[128], buf[1024];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        int ppid = 0;
        if (fscanf(f, "%*d (%*[^)]) %*c %d", &ppid) != 1) ppid = 0;
        fclose(f);
        if (ppid != mpirun) continue;
        snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
        f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
            buf[sizeof buf - 1] = 0;
            if (!strcmp(buf + i, want)) found = pid;
        }
        if (!found && n == sizeof buf - 1) { /* a long environment: read it whole */
            f = fopen(path, "r");
            char *all = NULL;
            size_t cap = 0;
            ssize_t len;
            while (f && (len = getdelim(&all, &cap, 0, f)) > 0)
                if (!strcmp(all, want)) found = pid;
            free(all);
            if (f) fclose(f);
        }
    }
    closedir(d);
    return found;
}

/* starts a long 2-rank run, waits until its first epoch is committed (both ranks are past MPI's
   set-up and training), sends sig to rank 1, and returns mpirun's exit status and the seconds
   until it ended; its output in g_out */
static int kill_one_rank(int sig, const char *out, double *seconds)
{
    char log[512], metrics[512], cmd[4096];
    snprintf(log, sizeof log, "%s/%s.log", g_dir, out);
    snprintf(metrics, sizeof metrics, "%s/%s/metrics.jsonl", g_dir, out);
    snprintf(cmd, sizeof cmd, TRAIN " --epochs 100000 --max-steps 1 --dist-timeout 4 --out %s/%s", g_img, g_lab,
             g_dir, out);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        FILE *f = freopen(log, "w", stdout);
        (void)f;
        dup2(1, 2);
        char line[8192];
        snprintf(line, sizeof line, "exec " MPIRUN " 2 %s %s", sqt_bin(), cmd);
        execl("/bin/sh", "sh", "-c", line, (char *)NULL);
        _exit(127);
    }
    struct stat sb;
    double t0 = sq_now();
    while (stat(metrics, &sb) != 0 && sq_now() - t0 < 90) usleep(50000);
    cr_assert_eq(stat(metrics, &sb), 0, "the run did not commit an epoch in 90 s");
    pid_t r1 = rank_pid(pid, 1);
    cr_assert_neq(r1, 0, "rank 1 of mpirun %d not found", (int)pid);
    kill(r1, sig);
    double t1 = sq_now();
    int st = 0;
    pid_t w = 0;
    while ((w = waitpid(pid, &st, WNOHANG)) == 0 && sq_now() - t1 < 60) usleep(50000);
    *seconds = sq_now() - t1;
    if (w == 0) { /* still waiting: end what this test started, then fail */
        kill(r1, SIGKILL);
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        cr_assert_fail("the other rank still waits 60 s after rank 1 got signal %d", sig);
    }
    if (sig == SIGSTOP) kill(r1, SIGKILL); /* mpirun ended; a stopped rank it could not end */
    size_t n;
    unsigned char *text = sqt_slurp(log, &n);
    snprintf(g_out, sizeof g_out, "%.*s", (int)(n < sizeof g_out ? n : sizeof g_out - 1), (char *)text);
    free(text);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

Test(dist, a_hung_rank_stops_the_others_after_the_timeout)
{
    double s;
    int rc = kill_one_rank(SIGSTOP, "hung", &s);
    cr_expect_neq(rc, 0);
    cr_expect(strstr(g_out, "rank 0 of 2: no answer from the other ranks") != NULL, "%s", g_out);
    cr_expect(s >= 3.5 && s < 40, "the job ended %.1f s after the stop (timeout 4 s)", s);
}

Test(dist, a_killed_rank_stops_the_others)
{
    double s;
    int rc = kill_one_rank(SIGKILL, "killed", &s);
    cr_expect_neq(rc, 0);
    cr_expect(s < 40, "the job ended %.1f s after the kill", s);
}

/* ---- the CPU backend's synchronised BatchNorm against BatchNorm on the whole batch, two ranks
   played by two threads of this process over a comm in shared memory ---- */
#include <pthread.h>

static pthread_barrier_t g_bar;
static double g_slot[2][4096];
static __thread int t_rank;

static void fake_sum(double *buf, size_t n)
{
    cr_assert(n <= 4096);
    memcpy(g_slot[t_rank], buf, n * sizeof *buf);
    pthread_barrier_wait(&g_bar);
    for (size_t i = 0; i < n; i++) buf[i] = g_slot[0][i] + g_slot[1][i];
    pthread_barrier_wait(&g_bar);
}
static void fake_f64(const sq_comm *c, double *buf, size_t n) { fake_sum(buf, n); }
static void fake_f32(const sq_comm *c, float *buf, size_t n)
{
    double d[4096];
    for (size_t i = 0; i < n; i++) d[i] = buf[i];
    fake_sum(d, n);
    for (size_t i = 0; i < n; i++) buf[i] = (float)d[i];
}
static const sq_comm g_fake = {.rank = 0, .size = 2, .allreduce_f32 = fake_f32, .allreduce_f64 = fake_f64};

enum { BN_N = 8, BN_C = 5, BN_HW = 12 };
typedef struct {
    int rank, act; /* act: -1 plain BN, else the fused BN + act (+ residual when act == 1) */
    const float *x, *r, *gy, *gamma, *beta;
    float *y, *gx, *gr, *gg, *gb, *rm, *rv;
} bn_job;

static void run_bn(const sq_backend *be, const bn_job *j, int n)
{
    float sm[BN_C], si[BN_C];
    if (j->act < 0) {
        be->bn_fwd_train(n, BN_C, BN_HW, j->x, j->gamma, j->beta, j->rm, j->rv, 0.1f, 1e-5f, j->y, sm, si);
        be->bn_bwd(n, BN_C, BN_HW, j->x, j->gy, j->gamma, sm, si, j->gx, j->gg, j->gb);
    } else {
        be->bn_add_act_fwd_train(n, BN_C, BN_HW, SQ_ACT_RELU, j->x, j->act ? j->r : NULL, j->gamma, j->beta, j->rm,
                                 j->rv, 0.1f, 1e-5f, j->y, sm, si);
        be->bn_add_act_bwd(n, BN_C, BN_HW, SQ_ACT_RELU, j->x, j->y, j->gy, j->gamma, sm, si, j->gx,
                           j->act ? j->gr : NULL, j->gg, j->gb);
    }
}

static void *bn_thread(void *arg)
{
    bn_job *j = arg;
    t_rank = j->rank;
    run_bn(sq_backend_cpu(), j, BN_N / 2);
    return NULL;
}

static void sync_bn_case(int act)
{
    const sq_backend *be = sq_backend_cpu();
    be->set_threads(1);
    const size_t tot = (size_t)BN_N * BN_C * BN_HW, half = tot / 2;
    float *x = sqt_hrand(tot, -1, 3, 1), *r = sqt_hrand(tot, -1, 1, 2), *gy = sqt_hrand(tot, -1, 1, 3);
    float *gamma = sqt_hrand(BN_C, 0.5f, 1.5f, 4), *beta = sqt_hrand(BN_C, -0.5f, 0.5f, 5);
    /* the whole batch in one process */
    float *y = sqt_hvec(tot), *gx = sqt_hvec(tot), *gr = sqt_hvec(tot), *gg = sqt_hvec(BN_C), *gb = sqt_hvec(BN_C);
    float *rm = sqt_hvec(BN_C), *rv = sqt_hvec(BN_C);
    for (int i = 0; i < BN_C; i++) rv[i] = 1;
    bn_job whole = {0, act, x, r, gy, gamma, beta, y, gx, gr, gg, gb, rm, rv};
    run_bn(be, &whole, BN_N);
    /* two ranks of half the batch each */
    float *y2 = sqt_hvec(tot), *gx2 = sqt_hvec(tot), *gr2 = sqt_hvec(tot), *gg2[2], *gb2[2], *rm2[2], *rv2[2];
    bn_job jobs[2];
    pthread_t th[2];
    pthread_barrier_init(&g_bar, NULL, 2);
    cr_assert_eq(be->dist_attach(&g_fake, 1), SQ_OK);
    for (int k = 0; k < 2; k++) {
        gg2[k] = sqt_hvec(BN_C);
        gb2[k] = sqt_hvec(BN_C);
        rm2[k] = sqt_hvec(BN_C);
        rv2[k] = sqt_hvec(BN_C);
        for (int i = 0; i < BN_C; i++) rv2[k][i] = 1;
        jobs[k] = (bn_job){k, act, x + k * half, r + k * half, gy + k * half, gamma, beta, y2 + k * half,
                           gx2 + k * half, gr2 + k * half, gg2[k], gb2[k], rm2[k], rv2[k]};
        cr_assert_eq(pthread_create(&th[k], NULL, bn_thread, &jobs[k]), 0);
    }
    for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
    be->dist_attach(NULL, 0);
    pthread_barrier_destroy(&g_bar);
    /* float sums of the same values in another grouping: a few ulps */
    sqt_expect_close("y", y2, y, tot, 1e-6f, 1e-5f, 1);
    sqt_expect_close("gx", gx2, gx, tot, 1e-6f, 1e-5f, 1);
    if (act == 1) sqt_expect_close("gr", gr2, gr, tot, 0, 0, 1);
    for (int k = 0; k < 2; k++) {
        sqt_expect_close("running mean", rm2[k], rm, BN_C, 1e-7f, 1e-6f, 1);
        sqt_expect_close("running var", rv2[k], rv, BN_C, 1e-7f, 1e-6f, 1);
    }
    /* the parameter gradients stay per rank: their sum is the whole batch's */
    for (int i = 0; i < BN_C; i++) {
        gg2[0][i] += gg2[1][i];
        gb2[0][i] += gb2[1][i];
    }
    sqt_expect_close("ggamma (sum of the ranks')", gg2[0], gg, BN_C, 1e-5f, 1e-5f, 1);
    sqt_expect_close("gbeta (sum of the ranks')", gb2[0], gb, BN_C, 1e-5f, 1e-5f, 1);
    void *all[] = {x, r, gy, gamma, beta, y, gx, gr, gg, gb, rm, rv, y2, gx2, gr2,
                   gg2[0], gg2[1], gb2[0], gb2[1], rm2[0], rm2[1], rv2[0], rv2[1]};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

Test(dist_ops, sync_bn_on_two_ranks_is_bn_on_the_whole_batch) { sync_bn_case(-1); }
Test(dist_ops, sync_bn_act_on_two_ranks_is_bn_act_on_the_whole_batch) { sync_bn_case(0); }
Test(dist_ops, sync_bn_add_act_on_two_ranks_is_bn_add_act_on_the_whole_batch) { sync_bn_case(1); }

/* ---- the backward's gradient buckets (model.h dist_bucket), in one process ----
   A spy backend (the CPU's, with allreduce_start and allreduce_wait recording) shows what a
   data-parallel backward hands over: stretches of g from the top down that together cover it
   once, then all of qg, then one wait; and that no op writes a stretch after it was handed over
   (its contents then equal the finished gradients: a bucket started too early would be summed
   without the rest of its gradient). */
typedef struct { const float *p; size_t n; float *snap; } handed;
static handed g_hand[4096];
static int g_nhand, g_nwait, g_wait_at;
static void spy_start(float *buf, size_t n)
{
    cr_assert_lt(g_nhand, 4096);
    handed *h = &g_hand[g_nhand++];
    h->p = buf;
    h->n = n;
    h->snap = malloc(n * sizeof(float));
    memcpy(h->snap, buf, n * sizeof(float));
}
static void spy_wait(void)
{
    g_nwait++;
    g_wait_at = g_nhand;
}

static void bucket_case(const char *arch, const sq_quant_opts *q, size_t bucket, int want_min)
{
    static sq_backend spy;
    spy = *sq_backend_cpu();
    spy.allreduce_start = spy_start;
    spy.allreduce_wait = spy_wait;
    spy.set_threads(1);
    sq_model *m;
    const int batch = 2;
    cr_assert_eq(sq_model_create(arch, 3, 32, 32, 10, &m), SQ_OK, "%s", sq_last_error());
    if (q) cr_assert_eq(sq_model_set_quant(m, q), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_model_setup(m, &spy, batch, 1), SQ_OK, "%s", sq_last_error());
    sq_model_init_weights(m, 3);
    const size_t nx = (size_t)batch * 3 * 32 * 32;
    float *x = malloc(nx * sizeof(float)), glog[2 * 10];
    sqt_fill_normal(x, nx, 0.0f, 1.0f, 5);
    sqt_fill_normal(glog, 20, 0.0f, 0.1f, 6);
    if (q) cr_assert_eq(sq_model_quant_init(m, x, batch), SQ_OK);
    for (int pass = 0; pass < 2; pass++) { /* the second with the plan made by the first */
        g_nhand = g_nwait = 0;
        sq_model_set_input(m, x, batch);
        sq_model_forward(m, batch, 1);
        sq_model_zero_grad(m);
        m->dist_bucket = bucket;
        sq_model_backward(m, batch, glog);
        m->dist_bucket = 0;
        cr_assert_eq(g_nwait, 1, "%s: %d waits", arch, g_nwait);
        cr_assert_eq(g_wait_at, g_nhand, "%s: the wait came before the last bucket", arch);
        const int ng = g_nhand - (m->n_quant ? 1 : 0);
        cr_assert_geq(ng, want_min, "%s: %d buckets of g for a bucket of %zu floats", arch, ng, bucket);
        size_t top = m->n_train, big = 0;
        for (int i = 0; i < ng; i++) {
            cr_assert_eq(g_hand[i].p + g_hand[i].n, m->g + top, "%s: bucket %d is not the next stretch down", arch, i);
            top -= g_hand[i].n;
            if (i < ng - 1) cr_assert_geq(g_hand[i].n, bucket, "%s: bucket %d holds %zu floats", arch, i, g_hand[i].n);
            if (g_hand[i].n > big) big = g_hand[i].n;
        }
        cr_assert_eq(top, 0, "%s: the buckets leave g's first %zu floats out", arch, top);
        if (m->n_quant) cr_assert(g_hand[ng].p == m->qg && g_hand[ng].n == m->n_quant, "%s: qg not handed whole", arch);
        double s = 0;
        for (int i = 0; i < g_nhand; i++) {
            cr_assert_eq(memcmp(g_hand[i].snap, g_hand[i].p, g_hand[i].n * sizeof(float)), 0,
                         "%s: bucket %d (%zu floats at %td) was written after it was handed over", arch, i,
                         g_hand[i].n, g_hand[i].p - (g_hand[i].p == m->qg ? m->qg : m->g));
            for (size_t j = 0; j < g_hand[i].n; j++) s += (double)g_hand[i].snap[j] * g_hand[i].snap[j];
            free(g_hand[i].snap);
        }
        cr_assert_gt(s, 0.0, "%s: all-zero gradients prove nothing", arch);
        cr_log_info("%s, bucket %zu floats: %d buckets of g (largest %zu floats) and qg (%zu)", arch, bucket, ng, big,
                    m->n_quant);
    }
    /* no bucket size: the backward hands nothing over */
    g_nhand = g_nwait = 0;
    sq_model_set_input(m, x, batch);
    sq_model_forward(m, batch, 1);
    sq_model_zero_grad(m);
    sq_model_backward(m, batch, glog);
    cr_assert(g_nhand == 0 && g_nwait == 0, "%s: a backward without buckets all-reduced", arch);
    free(x);
    sq_model_free(m);
}

Test(dist_ops, the_backward_hands_every_gradient_over_once_when_it_is_final)
{
    const sq_quant_opts q = {.kind = SQ_QUANT_LSQ, .wbits = 4, .abits = 4};
    bucket_case("resnet20", &q, 4096, 12);           /* 272,474 parameters, layer3 convs of 36,864 each */
    bucket_case("resnet20", NULL, 1, 40);            /* every node's gradients a bucket of their own */
    bucket_case("resnet20", &q, (size_t)1 << 30, 1); /* one bucket: the whole of g after the backward */
    bucket_case("resnet32", &q, 65536, 5);
    bucket_case("vgg8", NULL, 100000, 3);
}
