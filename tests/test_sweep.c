/* test_sweep.c: 'sqakd sweep' run in-process on a tiny IDX data set: a re-run skips finished tasks
   (result.json untouched), a task whose result is missing is redone alone, a different sweep in
   the same directory is refused; the sbatch scripts (array range of the pending groups,
   directives, 'bash -n'); and, where Debian's Slurm is installed, a real 4-task CPU job array on a
   slurmctld + slurmd started on localhost (skipped, with the reason, when it cannot run). */
#include "cli/sweep.h"
#include "sqakd/checkpoint.h"
#include "util_check.h"
#include <arpa/inet.h>
#include "util_fixtures.h"
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char g_tmp[256];
static void mk_tmp(void)
{
    cr_assert_not_null(sqt_mkdtemp(g_tmp, sizeof g_tmp, "sqakd_sweep"));
}
static void rm_tmp(void)
{
    cr_expect_eq(sqt_rmtree(g_tmp), 0);
}

/* runs 'sqakd sweep ARGS' in-process; ARGS split at spaces (test paths have none) */
static int sweep(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sweep(const char *fmt, ...)
{
    static char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    char *argv[64];
    int argc = 0;
    argv[argc++] = "sweep";
    for (char *save = NULL, *t = strtok_r(line, " ", &save); t && argc < 63; t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    argv[argc] = NULL;
    fflush(stdout);
    return sq_cmd_sweep(argc, argv);
}

static void write_be32(FILE *f, uint32_t v)
{
    unsigned char b[4] = {v >> 24, v >> 16, v >> 8, v};
    fwrite(b, 1, 4, f);
}

/* 64 labelled 8x8 IDX images (3 classes) and a random smallcnn teacher for them */
static void tiny_inputs(void)
{
    char p[400];
    snprintf(p, sizeof p, "%s/img.idx", g_tmp);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    write_be32(f, 0x803); write_be32(f, 64); write_be32(f, 8); write_be32(f, 8);
    sqt_rng r;
    sqt_rng_seed(&r, 8);
    for (int i = 0; i < 64; i++)
        for (int j = 0; j < 64; j++) fputc((int)((sqt_rng_next(&r) & 63) + 60 * (i % 3) * (j % 2)), f);
    fclose(f);
    snprintf(p, sizeof p, "%s/lab.idx", g_tmp);
    f = fopen(p, "wb");
    write_be32(f, 0x801); write_be32(f, 64);
    for (int i = 0; i < 64; i++) fputc(i % 3, f);
    fclose(f);
    sq_model *m;
    cr_assert_eq(sq_model_create("smallcnn", 1, 8, 8, 3, &m), SQ_OK);
    cr_assert_eq(sq_model_setup(m, sq_backend_cpu(), 4, 0), SQ_OK);
    sq_model_init_weights(m, 2);
    sq_ckpt_meta meta = {.in_c = 1, .in_h = 8, .in_w = 8, .classes = 3, .mean = {0.3f}, .std = {0.3f, 1, 1, 1}};
    snprintf(meta.arch, sizeof meta.arch, "smallcnn");
    snprintf(p, sizeof p, "%s/t.safetensors", g_tmp);
    cr_assert_eq(sq_ckpt_save(m, &meta, p), SQ_OK, "%s", sq_last_error());
    sq_model_free(m);
}

static const char *TASKS[] = {"ewgs_w2a2_s1", "ewgs_w4a4_s1", "lsq_w2a2_s1", "lsq_w4a4_s1", "teacher"};

/* modification time of DIR/tasks/<id>/result.json in ns; 0 when missing */
static long long result_mtime(const char *dir, const char *id)
{
    char p[600];
    snprintf(p, sizeof p, "%s/tasks/%s/result.json", dir, id);
    struct stat sb;
    if (stat(p, &sb)) return 0;
    return sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc(n + 1);
    cr_assert_eq(fread(s, 1, n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

Test(sweep, rerun_skips_finished_tasks_and_redoes_only_missing_ones, .init = mk_tmp, .fini = rm_tmp)
{
    tiny_inputs();
    char dir[400];
    snprintf(dir, sizeof dir, "%s/sw", g_tmp);
    const char *common = "--quantizers ewgs,lsq --bits 2,w4a4 --epochs 1 --batch 16 --threads 1 --group-size 3 --quiet";
    cr_assert_eq(sweep("--teacher %s/t.safetensors --data idx:%s/img.idx,%s/lab.idx %s --out %s", g_tmp, g_tmp, g_tmp,
                       common, dir), 0);
    long long t0[5];
    for (int i = 0; i < 5; i++) {
        t0[i] = result_mtime(dir, TASKS[i]);
        cr_expect_neq(t0[i], 0, "no result for %s", TASKS[i]);
    }
    char p[600];
    snprintf(p, sizeof p, "%s/tasks/lsq_w4a4_s1/result.json", dir);
    char *before = slurp(p);
    cr_assert_not_null(before);
    cr_expect(strstr(before, "\"status\":\"ok\"") && strstr(before, "\"quantizer\":\"lsq\"") &&
              strstr(before, "\"wbits\":4") && strstr(before, "\"group\":1") && strstr(before, "\"model_bytes\":") &&
              strstr(before, "\"agreement\":") && strstr(before, "\"train_seconds\":"), "%s", before);
    /* everything done: a re-run (configuration read back from DIR/sweep.json) touches nothing */
    cr_assert_eq(sweep("--out %s --quiet", dir), 0);
    for (int i = 0; i < 5; i++)
        cr_expect_eq(result_mtime(dir, TASKS[i]), t0[i], "%s was redone", TASKS[i]);
    /* a task without its result (a cancelled job) is the only one redone, from its last checkpoint */
    cr_assert_eq(unlink(p), 0);
    cr_assert_eq(sweep("--out %s --quiet", dir), 0);
    for (int i = 0; i < 5; i++)
        if (i != 3) cr_expect_eq(result_mtime(dir, TASKS[i]), t0[i], "%s was redone", TASKS[i]);
    char *after = slurp(p);
    cr_assert_not_null(after, "lsq_w4a4_s1 was not redone");
    const char *keys[] = {"\"steps\":", "\"agreement\":", "\"kl\":", "\"model_bytes\":"};
    for (int k = 0; k < 4; k++) {   /* same numbers: resumed at its end, not retrained */
        const char *a = strstr(before, keys[k]), *b = strstr(after, keys[k]);
        cr_assert(a && b);
        cr_expect_eq(strncmp(a, b, strcspn(a, ",}")), 0, "%.*s vs %.*s", (int)strcspn(a, ",}"), a,
                     (int)strcspn(b, ",}"), b);
    }
    free(before);
    free(after);
    /* the same directory with different training settings is refused */
    cr_expect_eq(sweep("--out %s --epochs 2 --quiet", dir), 2);
}

Test(sweep, sbatch_script_lists_pending_groups_and_passes_bash_n, .init = mk_tmp, .fini = rm_tmp)
{
    tiny_inputs();
    char dir[400];
    snprintf(dir, sizeof dir, "%s/sw", g_tmp);
    /* 3 quantizers x 3 bit-widths = 9 students per seed in groups of 4: 3 groups per seed, 6 in all */
    cr_assert_eq(sweep("--teacher %s/t.safetensors --data idx:%s/img.idx --quantizers ewgs,lsq,pact --bits 1,2,w4a8 "
                       "--seeds 1,2 --group-size 4 --out %s --slurm --dry-run --partition p1 --time 00:10:00 --gpus 2 "
                       "--cpus-per-task 3 --max-running 2 --bin /opt/sqakd", g_tmp, g_tmp, dir), 0);
    char p[600];
    snprintf(p, sizeof p, "%s/sweep.sbatch", dir);
    char *s = slurp(p);
    cr_assert_not_null(s, "no %s", p);
    const char *want[] = {"#!/bin/bash\n", "\n#SBATCH --array=0-5%2\n", "\n#SBATCH --partition=p1\n",
                          "\n#SBATCH --time=00:10:00\n", "\n#SBATCH --gres=gpu:2\n", "\n#SBATCH --cpus-per-task=3\n",
                          "\n#SBATCH --job-name=sqakd-sweep\n", "/logs/group_%a.out\n",
                          "\nexec '/opt/sqakd' sweep --config '", "/sw/sweep.json' --run-group \"$SLURM_ARRAY_TASK_ID\"\n"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect(strstr(s, want[i]) != NULL, "missing '%s' in:\n%s", want[i], s);
    free(s);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "bash -n '%s'", p);
    cr_expect_eq(system(cmd), 0, "bash -n %s failed", p);
    snprintf(p, sizeof p, "%s/teacher.sbatch", dir);
    cr_expect_neq(access(p, F_OK), 0, "a given teacher needs no teacher job");
    /* with group 1 (seed 1's 5th..8th students) finished, only the others are listed */
    sq_sweep sw;
    sq_sweep_defaults(&sw);
    snprintf(p, sizeof p, "%s/sweep.json", dir);
    cr_assert_eq(sq_sweep_load("test", p, &sw), 0);
    cr_expect_eq(sw.group_size, 4);
    cr_expect_eq(sw.nseeds, 2);
    cr_expect_eq(sw.wbits[2], 4);
    cr_expect_eq(sw.abits[2], 8);
    sq_sweep_task tasks[SQ_SWEEP_MAX_TASKS];
    int ngroups, n = sq_sweep_tasks(&sw, tasks, &ngroups);
    cr_expect_eq(n, 18);
    cr_expect_eq(ngroups, 6);
    for (int i = 0; i < n; i++) {
        if (tasks[i].group != 1) continue;
        char d[1400];
        snprintf(d, sizeof d, "mkdir -p %s/tasks/%.63s && echo '{\"id\":\"%.63s\"}' > %s/tasks/%.63s/result.json", dir,
                 tasks[i].id, tasks[i].id, dir, tasks[i].id);
        cr_assert_eq(system(d), 0);
    }
    cr_assert_eq(sweep("--out %s --slurm --dry-run --bin /opt/sqakd", dir), 0);
    snprintf(p, sizeof p, "%s/sweep.sbatch", dir);
    s = slurp(p);
    cr_expect(strstr(s, "\n#SBATCH --array=0,2-5%2\n") != NULL, "%s", s);
    free(s);
    /* a sweep that trains its teacher gets a teacher job first, with the same directives */
    snprintf(dir, sizeof dir, "%s/sw2", g_tmp);
    cr_assert_eq(sweep("--model smallcnn --train-teacher-epochs 1 --data idx:%s/img.idx,%s/lab.idx --quantizers ewgs "
                       "--bits 1,2 --out %s --slurm --dry-run --bin /opt/sqakd", g_tmp, g_tmp, dir), 0);
    snprintf(p, sizeof p, "%s/teacher.sbatch", dir);
    s = slurp(p);
    cr_assert_not_null(s, "no %s", p);
    cr_expect(strstr(s, "--run-teacher\n") && !strstr(s, "--array") && strstr(s, "#SBATCH --cpus-per-task=2\n") &&
              !strstr(s, "--gres"), "%s", s);
    free(s);
    snprintf(cmd, sizeof cmd, "bash -n '%s'", p);
    cr_expect_eq(system(cmd), 0);
    snprintf(p, sizeof p, "%s/sweep.sbatch", dir);
    s = slurp(p);
    cr_expect(strstr(s, "\n#SBATCH --array=0\n") != NULL, "%s", s);
    free(s);
}

Test(sweep, array_specs_and_bad_configurations)
{
    char buf[128];
    int g1[] = {0, 1, 2, 5, 7, 8};
    sq_sweep_array_spec(g1, 6, buf, sizeof buf);
    cr_expect_str_eq(buf, "0-2,5,7-8");
    int g2[] = {3};
    sq_sweep_array_spec(g2, 1, buf, sizeof buf);
    cr_expect_str_eq(buf, "3");
    sq_sweep sw;
    sq_sweep_defaults(&sw);
    cr_expect_eq(sq_sweep_parse_bits("t", "w4a4,2,w8a4", &sw), 0);
    cr_expect_eq(sw.nbits, 3);
    cr_expect(sw.wbits[1] == 2 && sw.abits[1] == 2 && sw.wbits[2] == 8 && sw.abits[2] == 4);
    cr_expect_eq(sq_sweep_parse_bits("t", "w4a9", &sw), 2);
    cr_expect_eq(sq_sweep_parse_bits("t", "4,w4a4", &sw), 2);   /* twice */
    cr_expect_eq(sq_sweep_parse_bits("t", "w4x4", &sw), 2);
    cr_expect_eq(sq_sweep_parse_quantizers("t", "ewgs,nope", &sw), 2);
    cr_expect_eq(sq_sweep_parse_seeds("t", "1,-2", &sw), 2);
    cr_expect_eq(sweep("--data fashion-mnist --quantizers ewgs --bits 4 --out /tmp/x"), 2);   /* no teacher */
    cr_expect_eq(sweep("--teacher /nonexistent.safetensors --data x --bits 4 --out /tmp/x"), 2);   /* no quantizers */
}

/* ---- a real Slurm: slurmctld + slurmd on localhost, a 4-task CPU job array ---- */

static pid_t g_pids[2];
static char g_slurm[300];

static const char *find_tool(const char *name)
{
    static char found[8][256];
    static int k;
    const char *dirs[] = {"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/sbin", "/bin"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char *p = found[k % 8];
        snprintf(p, 256, "%s/%s", dirs[i], name);
        if (!access(p, X_OK)) { k++; return p; }
    }
    return NULL;
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (s >= 0 && !bind(s, (struct sockaddr *)&a, sizeof a) && !getsockname(s, (struct sockaddr *)&a, &len))
        port = ntohs(a.sin_port);
    if (s >= 0) close(s);
    return port;
}

static pid_t spawn(const char *prog, char *const argv[], const char *log)
{
    pid_t p = fork();
    if (p == 0) {
        FILE *f = freopen(log, "w", stdout);
        (void)f;
        dup2(1, 2);
        execv(prog, argv);
        _exit(127);
    }
    return p;
}

static void stop_slurm(void)
{
    for (int i = 0; i < 2; i++)
        if (g_pids[i] > 0) {
            kill(g_pids[i], SIGTERM);
            for (int k = 0; k < 50 && waitpid(g_pids[i], NULL, WNOHANG) == 0; k++) usleep(100000);
            kill(g_pids[i], SIGKILL);
            waitpid(g_pids[i], NULL, 0);
            g_pids[i] = 0;
        }
    char p[400];
    snprintf(p, sizeof p, "%s/munged.pid", g_slurm);
    FILE *f = fopen(p, "r");
    int pid = 0;
    if (f) {
        if (fscanf(f, "%d", &pid) == 1 && pid > 1) kill(pid, SIGTERM);
        fclose(f);
    }
}

static void slurm_fini(void)
{
    stop_slurm();
    rm_tmp();
}

/* the last lines of a log, for skip reasons */
static void tail_of(const char *path, char *dst, size_t n)
{
    char *s = slurp(path);
    dst[0] = 0;
    if (!s) return;
    size_t len = strlen(s);
    snprintf(dst, n, "%s", len > n - 1 ? s + len - (n - 1) : s);
    for (char *c = dst; *c; c++) if (*c == '\n') *c = ' ';
    free(s);
}

/* starts munged, slurmctld and slurmd in g_slurm; NULL on success, else why not */
static const char *start_slurm(const char *host, char *why, size_t n)
{
    const char *munged = find_tool("munged"), *ctld = find_tool("slurmctld"), *slurmd = find_tool("slurmd");
    if (!munged || !ctld || !slurmd || !find_tool("sbatch") || !find_tool("sinfo")) {
        snprintf(why, n, "Slurm is not installed (need munged, slurmctld, slurmd, sbatch, sinfo; Debian: apt-get "
                 "install slurm-wlm): the real job-array check did not run");
        return why;
    }
    struct passwd *pw = getpwuid(getuid());
    int p1 = free_port(), p2 = free_port();
    if (!pw || p1 <= 0 || p2 <= 0 || p1 == p2) { snprintf(why, n, "no user name or free ports for Slurm"); return why; }
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd %s && mkdir -p state spool && head -c 1024 /dev/urandom > munge.key && "
             "chmod 600 munge.key && %s --key-file=%s/munge.key --socket=%s/munge.sock --pid-file=%s/munged.pid "
             "--log-file=%s/munged.log --seed-file=%s/munge.seed --force", g_slurm, munged, g_slurm, g_slurm, g_slurm,
             g_slurm, g_slurm);
    if (system(cmd)) { snprintf(why, n, "munged did not start (%s/munged.log)", g_slurm); return why; }
    char conf[400];
    snprintf(conf, sizeof conf, "%s/slurm.conf", g_slurm);
    FILE *f = fopen(conf, "w");
    fprintf(f, "ClusterName=sqakdtest\nSlurmctldHost=%s(127.0.0.1)\nSlurmUser=%s\nSlurmdUser=%s\n"
            "SlurmctldPort=%d\nSlurmdPort=%d\nAuthType=auth/munge\nAuthInfo=socket=%s/munge.sock\n"
            "CredType=cred/munge\nStateSaveLocation=%s/state\nSlurmdSpoolDir=%s/spool\n"
            "SlurmctldPidFile=%s/slurmctld.pid\nSlurmdPidFile=%s/slurmd.pid\nSlurmctldLogFile=%s/slurmctld.log\n"
            "SlurmdLogFile=%s/slurmd.log\nProctrackType=proctrack/pgid\nTaskPlugin=task/none\n"
            "JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n"
            "JobCompType=jobcomp/none\nSelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\nMpiDefault=none\n"
            "ReturnToService=2\nSchedulerType=sched/builtin\n"
            "NodeName=%s NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN\n"
            "PartitionName=debug Nodes=%s Default=YES MaxTime=INFINITE State=UP\n",
            host, pw->pw_name, pw->pw_name, p1, p2, g_slurm, g_slurm, g_slurm, g_slurm, g_slurm, g_slurm, g_slurm,
            host, host);
    fclose(f);
    setenv("SLURM_CONF", conf, 1);
    char log1[400], log2[400];
    snprintf(log1, sizeof log1, "%s/slurmctld.out", g_slurm);
    snprintf(log2, sizeof log2, "%s/slurmd.out", g_slurm);
    char *a1[] = {(char *)ctld, "-D", "-i", "-f", conf, NULL};
    g_pids[0] = spawn(ctld, a1, log1);
    usleep(500000);
    char *a2[] = {(char *)slurmd, "-D", "-f", conf, "-N", (char *)host, NULL};
    g_pids[1] = spawn(slurmd, a2, log2);
    for (int i = 0; i < 100; i++) {   /* up to 20 s for the node to be idle */
        usleep(200000);
        FILE *p = popen("sinfo -h -o %T 2>/dev/null", "r");
        char st[64] = "";
        if (p) {
            if (!fgets(st, sizeof st, p)) st[0] = 0;
            pclose(p);
        }
        if (!strncmp(st, "idle", 4)) return NULL;
    }
    char t1[300], t2[300];
    snprintf(log1, sizeof log1, "%s/slurmctld.log", g_slurm);
    snprintf(log2, sizeof log2, "%s/slurmd.log", g_slurm);
    tail_of(log1, t1, sizeof t1);
    tail_of(log2, t2, sizeof t2);
    snprintf(why, n, "slurmctld/slurmd did not come up on localhost within 20 s (slurmctld: ...%s | slurmd: ...%s)",
             t1, t2);
    return why;
}

static void slurm_init(void)
{
    mk_tmp();
    snprintf(g_slurm, sizeof g_slurm, "%s/slurm", g_tmp);
    cr_assert_eq(mkdir(g_slurm, 0700), 0);
}

Test(sweep, slurm_job_array_runs_four_tasks_end_to_end, .init = slurm_init, .fini = slurm_fini, .timeout = 90)
{
    const char *bin = getenv("SQAKD_BIN");
    if (!bin || access(bin, X_OK))
        cr_skip("SQAKD_BIN is not an executable sqakd (the array tasks run it): the Slurm check did not run");
    char host[256];
    cr_assert_eq(gethostname(host, sizeof host), 0);
    host[strcspn(host, ".")] = 0;
    char why[1024];
    if (start_slurm(host, why, sizeof why)) cr_skip("%s", why);
    tiny_inputs();
    char dir[400];
    snprintf(dir, sizeof dir, "%s/sw", g_tmp);
    cr_assert_eq(sweep("--teacher %s/t.safetensors --data idx:%s/img.idx --quantizers ewgs,lsq --bits 2,4 --epochs 1 "
                       "--batch 16 --threads 1 --group-size 1 --out %s --slurm --partition debug --time 00:05:00 "
                       "--cpus-per-task 1 --bin %s --quiet", g_tmp, g_tmp, dir, bin), 0);
    int done = 0;
    for (int i = 0; i < 240 && done < 4; i++) {   /* at most 60 s */
        usleep(250000);
        done = 0;
        for (int k = 0; k < 4; k++) done += result_mtime(dir, TASKS[k]) != 0;
    }
    char log[600], t[400];
    snprintf(log, sizeof log, "%s/logs/group_0.out", dir);
    tail_of(log, t, sizeof t);
    cr_assert_eq(done, 4, "%d of 4 array tasks wrote their result within 60 s (group 0 log: %s)", done, t);
    for (int k = 0; k < 4; k++) {
        char p[600];
        snprintf(p, sizeof p, "%s/tasks/%s/result.json", dir, TASKS[k]);
        char *s = slurp(p);
        cr_expect(s && strstr(s, "\"status\":\"ok\""), "%s: %s", TASKS[k], s ? s : "(none)");
        free(s);
        snprintf(p, sizeof p, "%s/logs/group_%d.out", dir, k);
        cr_expect_eq(access(p, F_OK), 0, "no array task log %s", p);
    }
    cr_expect_neq(result_mtime(dir, "teacher"), 0, "no teacher result");
}
