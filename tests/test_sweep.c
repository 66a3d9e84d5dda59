/* test_sweep.c: 'sqakd sweep' run in-process on a tiny IDX data set: a re-run skips finished tasks
   (result.json untouched), a task whose result is missing is redone alone, a different sweep in
   the same directory is refused; the sbatch scripts (array range of the pending groups,
   directives, 'bash -n'); hostile values on their way into the scripts (partitions, times and
   paths that would inject a command or an sbatch option, from flags, a --config file or an edited
   DIR/sweep.json) refused with one line, over-long values refused rather than cut, and odd but
   legal paths (spaces, quotes, $, backticks, '#', '%') written so that bash and sbatch's own
   #SBATCH parsing read them as meant; and, where Debian's Slurm is installed, a real 4-task CPU
   job array and a sweep in a directory with such a name on a slurmctld + slurmd started on
   localhost (skipped, with the reason, when it cannot run). */
#include "cli/sweep.h"
#include "sqakd/checkpoint.h"
#include "util_check.h"
#include <arpa/inet.h>
#include "util_fixtures.h"
#include <criterion/criterion.h>
#include <ctype.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <dirent.h>
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
    char p[1400];
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
                          "\n#SBATCH --job-name=sqakd-sweep\n", "\n#SBATCH --output=\"", "/sw/logs/group_%a.out\"\n",
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
    /* seeds past 2^53 would come back from sweep.json as other (or negative) numbers */
    cr_expect_eq(sq_sweep_parse_seeds("t", "9007199254740991", &sw), 0);
    cr_expect_eq(sw.seeds[0], 9007199254740991ull);
    cr_expect_eq(sq_sweep_parse_seeds("t", "9007199254740993", &sw), 2);
    cr_expect_eq(sq_sweep_parse_seeds("t", "18446744073709551615", &sw), 2);
    cr_expect_eq(sweep("--data fashion-mnist --quantizers ewgs --bits 4 --out /tmp/x"), 2);   /* no teacher */
    cr_expect_eq(sweep("--teacher /nonexistent.safetensors --data x --bits 4 --out /tmp/x"), 2);   /* no quantizers */
}

/* ---- hostile or odd values on their way into the generated scripts ---- */

/* runs 'sqakd sweep' in-process on these arguments (NULL-terminated) after the base ones of a
   dry-run Slurm sweep of the tiny inputs (none when base is 0); stderr is captured into err */
static int sweep_argv(char *err, size_t n, int base, const char *const *args)
{
    static char teacher[400], data[600];
    snprintf(teacher, sizeof teacher, "%s/t.safetensors", g_tmp);
    snprintf(data, sizeof data, "idx:%s/img.idx,%s/lab.idx", g_tmp, g_tmp);
    const char *av[96];
    int ac = 0;
    av[ac++] = "sweep";
    if (base) {
        const char *b[] = {"--teacher", teacher, "--data", data, "--quantizers", "ewgs", "--bits", "2", "--slurm",
                           "--dry-run", "--bin", "/opt/sqakd", "--quiet"};
        for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) av[ac++] = b[i];
    }
    for (int i = 0; args[i] && ac < 95; i++) av[ac++] = args[i];
    av[ac] = NULL;
    char p[400];
    snprintf(p, sizeof p, "%s/stderr.txt", g_tmp);
    fflush(stdout);
    fflush(stderr);
    int saved = dup(2), fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    int rc = sq_cmd_sweep(ac, (char **)av);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char *s = slurp(p);
    snprintf(err, n, "%s", s ? s : "");
    free(s);
    return rc;
}

/* err is one line "sqakd sweep: ..." that contains what */
static void expect_one_line(const char *err, const char *what, const char *value)
{
    size_t len = strlen(err);
    int lines = 0;
    for (const char *c = err; *c; c++) lines += *c == '\n';
    cr_expect(lines == 1 && len && err[len - 1] == '\n' && !strncmp(err, "sqakd sweep: ", 13) && strstr(err, what),
              "value [%s]: expected one line naming '%s', got:\n%s", value, what, err);
}

static int exists(const char *p)
{
    struct stat sb;
    return lstat(p, &sb) == 0;
}

/* no file named INJ* in dir */
static void expect_no_injected_files(const char *dir)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "find '%s' -name 'INJ*' | grep -q .", dir);
    cr_expect_neq(system(cmd), 0, "a command injected through a path ran: INJ* files in %s", dir);
}

static const char *HOSTILE_PARTITIONS[] = {
    "gpu\ntouch pwned", "gpu --output=$HOME/.bashrc", "gpu;touch pwned", "$(touch pwned)", "`touch pwned`",
    "gpu #SBATCH --output=/tmp/x", "gpu\n#SBATCH --output=/tmp/x", "a'b", "a\"b", "gpu\r", "gp u", "gpu\t",
    "gpu,", ",gpu", "a,,b", "gpu/x", "gpu\\", "gpu=1", "\x1b[31m",
};
static const char *HOSTILE_TIMES[] = {
    "01:00:00\ntouch pwned", "01:00:00 --output=/tmp/x", "$(touch pwned)", "1:00:00;x", "abc", "1-", ":30",
    "1:2:3:4", "1-2-3", "#SBATCH", "", "1:00:00\n#SBATCH --output=/tmp/x", "`id`", " 10", "10 ", "1-2:3:4:5",
    "-5", "1e3", "0x10",
};

Test(sweep, injected_partition_and_time_flags_are_refused, .init = mk_tmp, .fini = rm_tmp)
{
    tiny_inputs();
    char err[4096], dir[400];
    for (size_t i = 0; i < sizeof HOSTILE_PARTITIONS / sizeof *HOSTILE_PARTITIONS; i++) {
        snprintf(dir, sizeof dir, "%s/p%zu", g_tmp, i);
        const char *a[] = {"--out", dir, "--partition", HOSTILE_PARTITIONS[i], NULL};
        cr_expect_eq(sweep_argv(err, sizeof err, 1, a), 2, "--partition [%s] was accepted", HOSTILE_PARTITIONS[i]);
        expect_one_line(err, "--partition", HOSTILE_PARTITIONS[i]);
        char p[500];
        snprintf(p, sizeof p, "%s/sweep.sbatch", dir);
        cr_expect(!exists(p), "a script was written for --partition [%s]", HOSTILE_PARTITIONS[i]);
    }
    for (size_t i = 0; i < sizeof HOSTILE_TIMES / sizeof *HOSTILE_TIMES; i++) {
        snprintf(dir, sizeof dir, "%s/t%zu", g_tmp, i);
        const char *a[] = {"--out", dir, "--time", HOSTILE_TIMES[i], NULL};
        cr_expect_eq(sweep_argv(err, sizeof err, 1, a), 2, "--time [%s] was accepted", HOSTILE_TIMES[i]);
        expect_one_line(err, "--time", HOSTILE_TIMES[i]);
    }
    /* Slurm's own formats are accepted and written as they are */
    const char *good[] = {"30", "30:00", "1:00:00", "2-0", "2-12:00", "2-12:00:00", "UNLIMITED", "infinite", "0"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        snprintf(dir, sizeof dir, "%s/g%zu", g_tmp, i);
        const char *a[] = {"--out", dir, "--time", good[i], "--partition", i % 2 ? "gpu,debug" : "gpu-a100_x.1", NULL};
        cr_expect_eq(sweep_argv(err, sizeof err, 1, a), 0, "--time %s: %s", good[i], err);
        char p[500], want[64];
        snprintf(p, sizeof p, "%s/sweep.sbatch", dir);
        char *s = slurp(p);
        snprintf(want, sizeof want, "\n#SBATCH --time=%s\n", good[i]);
        cr_expect(s && strstr(s, want), "no '%s' in:\n%s", want, s ? s : "(none)");
        free(s);
    }
    /* out and bin paths with a control character are refused; no directory is created */
    snprintf(dir, sizeof dir, "%s/new\nline", g_tmp);
    const char *a1[] = {"--out", dir, NULL};
    cr_expect_eq(sweep_argv(err, sizeof err, 1, a1), 2);
    expect_one_line(err, "--out", dir);
    cr_expect(!exists(dir), "the directory [%s] was created", dir);
    snprintf(dir, sizeof dir, "%s/ok", g_tmp);
    const char *a2[] = {"--out", dir, "--bin", "/opt/sq\nakd", NULL};
    cr_expect_eq(sweep_argv(err, sizeof err, 1, a2), 2);
    expect_one_line(err, "--bin", "/opt/sq\\nakd");
    const char *a3[] = {"--out", dir, "--bin", "/opt/sq\x1b" "akd", NULL};
    cr_expect_eq(sweep_argv(err, sizeof err, 1, a3), 2);
    expect_one_line(err, "--bin", "/opt/sq\\x1bakd");
}

/* writes text to DIR/name */
static void put_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

Test(sweep, injected_values_in_a_config_or_saved_sweep_json_are_refused, .init = mk_tmp, .fini = rm_tmp)
{
    tiny_inputs();
    char err[4096], dir[400], cfg[400];
    const char *bad[][2] = {
        {"partition", "\"gpu --output=$HOME/.bashrc\""}, {"partition", "\"gpu\\ntouch pwned\""},
        {"partition", "\"$(touch pwned)\""}, {"partition", "\"gpu\\u0000 --output=/tmp/x\""},
        {"partition", "\"gpu\\n#SBATCH --output=/tmp/x\""}, {"time", "\"1:00:00\\n#SBATCH --output=/tmp/x\""},
        {"time", "\"01:00:00 --wrap=id\""}, {"time", "\"`id`\""}, {"out", "\"a\\nb\""}, {"out", "\"a\\u0000b\""},
        {"data", "\"idx:x\\ny\""}, {"model", "\"small\\u001bcnn\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(cfg, sizeof cfg, "%s/c%zu.json", g_tmp, i);
        char text[300];
        snprintf(text, sizeof text, "{\"%s\": %s}\n", bad[i][0], bad[i][1]);
        put_file(cfg, text);
        snprintf(dir, sizeof dir, "%s/c%zu", g_tmp, i);
        const char *a[] = {"--config", cfg, "--out", dir, NULL};
        cr_expect_eq(sweep_argv(err, sizeof err, 1, a), 2, "%s was accepted", text);
        char key[40];
        snprintf(key, sizeof key, "\"%s\"", bad[i][0]);
        expect_one_line(err, key, text);
        cr_expect(strstr(err, cfg) != NULL, "the error does not name %s: %s", cfg, err);
    }
    /* a DIR/sweep.json edited after the fact is refused on a re-run and by an array task */
    snprintf(dir, sizeof dir, "%s/sw", g_tmp);
    const char *a[] = {"--out", dir, "--partition", "p1", NULL};
    cr_assert_eq(sweep_argv(err, sizeof err, 1, a), 0, "%s", err);
    char p[500];
    snprintf(p, sizeof p, "%s/sweep.json", dir);
    char *s = slurp(p), *at = strstr(s, "\"partition\":\"p1\"");
    cr_assert_not_null(at, "%s", s);
    char edited[8192];
    snprintf(edited, sizeof edited, "%.*s\"partition\":\"p1\\ntouch pwned\"%s", (int)(at - s), s,
             at + strlen("\"partition\":\"p1\""));
    free(s);
    put_file(p, edited);
    const char *rerun[] = {"--out", dir, "--slurm", "--dry-run", NULL};
    cr_expect_eq(sweep_argv(err, sizeof err, 0, rerun), 2);
    expect_one_line(err, "\"partition\"", "re-run");
    const char *task[] = {"--config", p, "--run-group", "0", NULL};
    cr_expect_eq(sweep_argv(err, sizeof err, 0, task), 2);
    expect_one_line(err, "\"partition\"", "--run-group");
}

/* The arguments sbatch takes from a script's #SBATCH lines, by Slurm's rules (src/sbatch/opt.c,
   _opt_batch_script and _get_argument): directives are read up to the first line that is neither
   blank nor a comment; in a directive, whitespace separates arguments, '...' and "..." group
   characters, a backslash makes the next character literal, and an unquoted '#' ends the line.
   Returns the count (malloc'd strings in args), -1 on an unmatched quote. */
static int sbatch_args(const char *script, char **args, int max)
{
    int n = 0;
    for (const char *line = script; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (!strncmp(line, "#SBATCH", 7)) {
            const char *p = line + 7, *e = line + len;
            for (;;) {
                while (p < e && isspace((unsigned char)*p)) p++;
                if (p >= e) break;
                char *a = malloc(len + 1);
                size_t k = 0;
                int quoted = 0, esc = 0;
                char q = 0;
                for (; p < e && (quoted || !isspace((unsigned char)*p)); p++) {
                    if (esc) esc = 0;
                    else if (*p == '\\') { esc = 1; continue; }
                    else if (quoted) { if (*p == q) { quoted = 0; continue; } }
                    else if (*p == '"' || *p == '\'') { quoted = 1; q = *p; continue; }
                    else if (*p == '#') { p = e; break; }
                    a[k++] = *p;
                }
                if (quoted) { free(a); return -1; }
                a[k] = 0;
                if (k && n < max) args[n++] = a;
                else free(a);
            }
        } else {
            size_t i = 0;
            while (i < len && isspace((unsigned char)line[i])) i++;
            if (i < len && line[i] != '#') break;   /* the first command: no more directives */
        }
        line += len + (end != NULL);
    }
    return n;
}

/* a Slurm filename pattern with %a, %j and %% replaced (a backslash turns replacement off) */
static void expand_pattern(const char *pat, const char *a, const char *j, char *dst, size_t cap)
{
    size_t k = 0;
    int raw = strchr(pat, '\\') != NULL;
    for (const char *p = pat; *p && k + 16 < cap; p++) {
        if (raw && *p == '\\') continue;
        if (!raw && p[0] == '%' && p[1]) {
            const char *r = p[1] == 'a' ? a : p[1] == 'j' ? j : p[1] == '%' ? "%" : NULL;
            if (r) { k += snprintf(dst + k, cap - k, "%s", r); p++; continue; }
        }
        dst[k++] = *p;
    }
    dst[k] = 0;
}

/* runs 'bash [-n] SCRIPT' in dir with SLURM_ARRAY_TASK_ID=7 and REC_OUT=rec; its exit status */
static int run_bash(const char *script, int syntax_only, const char *dir, const char *rec)
{
    fflush(stdout);
    fflush(stderr);
    pid_t p = fork();
    if (p == 0) {
        if (chdir(dir)) _exit(126);
        setenv("SLURM_ARRAY_TASK_ID", "7", 1);
        setenv("REC_OUT", rec, 1);
        if (syntax_only) execl("/bin/bash", "bash", "-n", script, (char *)NULL);
        else execl("/bin/bash", "bash", script, (char *)NULL);
        _exit(127);
    }
    int st;
    cr_assert_eq(waitpid(p, &st, 0), p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* an executable that writes its arguments, one per line, to $REC_OUT */
static void write_recorder(const char *path)
{
    put_file(path, "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > \"$REC_OUT\"\n");
    cr_assert_eq(chmod(path, 0755), 0);
}

/* the recorded arguments, joined by '|' */
static void recorded(const char *rec, char *dst, size_t cap)
{
    char *s = slurp(rec);
    snprintf(dst, cap, "%s", s ? s : "(did not run)");
    for (char *c = dst; *c; c++) if (*c == '\n') *c = '|';
    free(s);
}

/* the script's #SBATCH arguments are exactly the expected options, its log path expands to
   DIR/logs/<log> (array index 7, job 99), and running it execs BIN with the expected arguments */
static void check_script(const char *dir, const char *name, const char *log, const char *tail, const char *rec)
{
    char p[4600], got[5000], want[5000];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    char *s = slurp(p);
    cr_assert_not_null(s, "no %s", p);
    cr_expect_eq(run_bash(p, 1, g_tmp, rec), 0, "bash -n %s failed:\n%s", p, s);
    char *args[64];
    int n = sbatch_args(s, args, 64), outputs = 0;
    cr_expect_gt(n, 0, "sbatch cannot parse the directives of:\n%s", s);
    const char *allowed[] = {"--job-name=", "--partition=", "--time=", "--gres=", "--cpus-per-task=", "--ntasks=",
                             "--array=", "--output="};
    for (int i = 0; i < n; i++) {
        size_t k = 0;
        while (k < sizeof allowed / sizeof *allowed && strncmp(args[i], allowed[k], strlen(allowed[k]))) k++;
        cr_expect_lt(k, sizeof allowed / sizeof *allowed, "sbatch reads an unexpected argument [%s] from:\n%s", args[i], s);
        if (!strncmp(args[i], "--output=", 9)) {
            outputs++;
            expand_pattern(args[i] + 9, "7", "99", got, sizeof got);
            snprintf(want, sizeof want, "%s/logs/%s", dir, log);
            cr_expect_str_eq(got, want, "sbatch's log path [%s] is not under the sweep directory:\n%s", args[i] + 9, s);
        }
        free(args[i]);
    }
    cr_expect_eq(outputs, 1, "%d --output directives in:\n%s", outputs, s);
    free(s);
    unlink(rec);
    cr_expect_eq(run_bash(p, 0, g_tmp, rec), 0, "running %s failed", p);
    recorded(rec, got, sizeof got);
    snprintf(want, sizeof want, "sweep|--config|%s/sweep.json|%s|", dir, tail);
    cr_expect_str_eq(got, want, "%s ran the executable with other arguments", name);
}

Test(sweep, odd_but_legal_paths_give_scripts_that_bash_and_sbatch_read_as_meant, .init = mk_tmp, .fini = rm_tmp)
{
    tiny_inputs();
    char err[4096], dir[600], bindir[600], bin[700], rec[400], data[600];
    /* spaces, both quotes, $, $(...), backticks, ';', '#', '%' and UTF-8 in the sweep directory and the executable's path */
    const char *odd = "odd dir $(touch INJ1) `touch INJ2`; touch INJ3 'sq' \"dq\" #SBATCH --x %j %%a \xc3\xa9";
    snprintf(dir, sizeof dir, "%s/%s", g_tmp, odd);
    snprintf(bindir, sizeof bindir, "%s/bin $(touch INJ4) 'x' \"y\"", g_tmp);
    cr_assert_eq(mkdir(bindir, 0755), 0);
    snprintf(bin, sizeof bin, "%s/rec;`touch INJ5`", bindir);
    write_recorder(bin);
    snprintf(rec, sizeof rec, "%s/args.txt", g_tmp);
    snprintf(data, sizeof data, "idx:%s/img.idx,%s/lab.idx", g_tmp, g_tmp);
    const char *a[] = {"sweep", "--model", "smallcnn", "--train-teacher-epochs", "1", "--data", data, "--quantizers",
                       "ewgs,lsq", "--bits", "2", "--group-size", "1", "--out", dir, "--slurm", "--dry-run", "--bin", bin,
                       "--partition", "debug", "--time", "0-00:05", "--quiet", NULL};
    cr_assert_eq(sweep_argv(err, sizeof err, 0, a + 1), 0, "%s", err);
    check_script(dir, "sweep.sbatch", "group_7.out", "--run-group|7", rec);
    check_script(dir, "teacher.sbatch", "teacher_99.out", "--run-teacher", rec);
    expect_no_injected_files(g_tmp);
    /* the configuration read back from DIR/sweep.json gives the same scripts */
    const char *again[] = {"--out", dir, "--slurm", "--dry-run", "--bin", bin, "--quiet", NULL};
    cr_assert_eq(sweep_argv(err, sizeof err, 0, again), 0, "%s", err);
    check_script(dir, "sweep.sbatch", "group_7.out", "--run-group|7", rec);
    expect_no_injected_files(g_tmp);
    /* a backslash cannot be in an sbatch log path (it turns %a off): refused with --slurm */
    snprintf(dir, sizeof dir, "%s/back\\slash", g_tmp);
    const char *b[] = {"--out", dir, NULL};
    cr_expect_eq(sweep_argv(err, sizeof err, 1, b), 2);
    expect_one_line(err, "--out", dir);
}

Test(sweep, executable_path_full_of_quotes_is_quoted_whole, .init = mk_tmp, .fini = rm_tmp)
{
    tiny_inputs();
    char err[4096], dir[400], bin[4096], rec[400], q[201];
    memset(q, '\'', 200);
    q[200] = 0;
    int len = snprintf(bin, sizeof bin, "%s", g_tmp);
    for (int i = 0; i < 6; i++) {   /* 1200 single quotes: 4800 bytes once quoted for bash */
        len += snprintf(bin + len, sizeof bin - len, "/%s", q);
        cr_assert_eq(mkdir(bin, 0755), 0);
    }
    snprintf(bin + len, sizeof bin - len, "/rec");
    write_recorder(bin);
    snprintf(dir, sizeof dir, "%s/sw", g_tmp);
    snprintf(rec, sizeof rec, "%s/args.txt", g_tmp);
    const char *a[] = {"--out", dir, "--bin", bin, NULL};
    cr_assert_eq(sweep_argv(err, sizeof err, 1, a), 0, "%s", err);
    check_script(dir, "sweep.sbatch", "group_7.out", "--run-group|7", rec);
}

Test(sweep, overlong_values_are_refused_not_truncated, .init = mk_tmp, .fini = rm_tmp)
{
    tiny_inputs();
    char err[4096], dir[400], big[2300];
    snprintf(dir, sizeof dir, "%s/sw", g_tmp);
    struct { const char *flag; size_t len; const char *limit; } cases[] = {
        {"--partition", 64, "63"}, {"--time", 32, "31"}, {"--model", 32, "31"}, {"--device", 16, "15"},
        {"--augment", 32, "31"}, {"--data", 1024, "1023"}, {"--teacher", 1024, "1023"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memset(big, '1', cases[i].len);   /* a valid time and partition up to its length */
        big[cases[i].len] = 0;
        const char *a[] = {"--out", dir, cases[i].flag, big, NULL};
        cr_expect_eq(sweep_argv(err, sizeof err, 1, a), 2, "%s of %zu bytes was accepted", cases[i].flag, cases[i].len);
        expect_one_line(err, cases[i].flag, cases[i].flag);
        cr_expect(strstr(err, cases[i].limit) != NULL, "%s: the limit %s is not named: %s", cases[i].flag, cases[i].limit, err);
    }
    /* a 2,223-byte --out is refused, not cut into another directory */
    int n = snprintf(big, sizeof big, "%s/", g_tmp);
    memset(big + n, 'd', 2223 - n);
    big[2223] = 0;
    for (int k = 250; k < 2223; k += 250) big[k] = '/';
    const char *a1[] = {"--out", big, NULL};
    cr_expect_eq(sweep_argv(err, sizeof err, 1, a1), 2);
    expect_one_line(err, "--out", "2223 bytes");
    cr_expect(strstr(err, "2047") != NULL, "%s", err);
    char cut[2100];
    snprintf(cut, sizeof cut, "%.2047s", big);
    cr_expect(!exists(cut), "a truncated directory %s was created", cut);
    snprintf(cut, sizeof cut, "%.250s", big);   /* its first level under the scratch directory */
    cr_expect(!exists(cut), "%s was created", cut);
    /* a list cut at 1023 bytes loses its last items: refused instead */
    const char *lists[][2] = {{"--seeds", "1,2"}, {"--bits", "4,2"}, {"--quantizers", "ewgs,lsq"}};
    for (int i = 0; i < 3; i++) {
        const char *comma = strchr(lists[i][1], ',');
        n = snprintf(big, sizeof big, "%.*s", (int)(comma - lists[i][1]), lists[i][1]);
        memset(big + n, ' ', 1100);
        snprintf(big + n + 1100, sizeof big - n - 1100, "%s", comma);
        const char *a[] = {"--out", dir, lists[i][0], big, NULL};
        cr_expect_eq(sweep_argv(err, sizeof err, 1, a), 2, "%s of %zu bytes was cut", lists[i][0], strlen(big));
        expect_one_line(err, lists[i][0], lists[i][0]);
    }
    /* the same in a configuration: a string with a NUL, an over-long list item */
    char cfg[400], text[1400];
    snprintf(cfg, sizeof cfg, "%s/c.json", g_tmp);
    snprintf(text, sizeof text, "{\"seeds\": [\"1\", \"%070d\"]}", 2);
    put_file(cfg, text);
    const char *a2[] = {"--config", cfg, "--out", dir, NULL};
    cr_expect_eq(sweep_argv(err, sizeof err, 1, a2), 2, "%s was accepted", text);
    expect_one_line(err, "\"seeds\"", text);
    snprintf(text, sizeof text, "{\"seeds\": [\"1\", \"%s2\"]}", "                                                                        ");
    put_file(cfg, text);
    cr_expect_eq(sweep_argv(err, sizeof err, 1, a2), 2, "%s was accepted", text);
    snprintf(text, sizeof text, "{\"quantizers\": \"ewgs,%1100s\"}", "lsq");
    put_file(cfg, text);
    cr_expect_eq(sweep_argv(err, sizeof err, 1, a2), 2, "a 1,100-byte list string was accepted");
    expect_one_line(err, "\"quantizers\"", "long list");
    /* --data whose absolute form is longer than 1023 bytes is refused (it was kept relative) */
    char deep[1400];
    n = snprintf(deep, sizeof deep, "%s", g_tmp);
    for (int i = 0; i < 5; i++) {
        n += snprintf(deep + n, sizeof deep - n, "/%0200d", i);
        cr_assert_eq(mkdir(deep, 0755), 0);
    }
    char p[2000];
    snprintf(p, sizeof p, "cp %s/img.idx '%s/img.idx'", g_tmp, deep);
    cr_assert_eq(system(p), 0);
    char cwd[4096];
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir(deep), 0);
    const char *a3[] = {"sweep", "--teacher", NULL, "--data", "idx:img.idx", "--quantizers", "ewgs", "--bits", "2",
                        "--out", dir, "--slurm", "--dry-run", "--bin", "/opt/sqakd", NULL};
    char t[400];
    snprintf(t, sizeof t, "%s/t.safetensors", g_tmp);
    a3[2] = t;
    int rc = sweep_argv(err, sizeof err, 0, a3 + 1);
    cr_assert_eq(chdir(cwd), 0);
    cr_expect_eq(rc, 2, "--data whose absolute form is %zu bytes was kept relative", strlen(deep) + 12);
    expect_one_line(err, "--data", "deep");
}

Test(sweep, array_spec_of_many_scattered_groups_is_written_whole, .init = mk_tmp, .fini = rm_tmp)
{
    tiny_inputs();
    char err[4096], dir[400];
    snprintf(dir, sizeof dir, "%s/sw", g_tmp);
    /* 4 quantizers x 16 bit-widths x 16 seeds, one student per group: 1024 groups */
    const char *a[] = {"--out", dir, "--quantizers", "ewgs,pact,lsq,dorefa", "--bits",
                       "1,2,3,4,5,6,7,8,w1a2,w2a1,w2a4,w4a2,w4a8,w8a4,w1a8,w8a1", "--seeds",
                       "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16", "--group-size", "1", "--max-running", "9", NULL};
    cr_assert_eq(sweep_argv(err, sizeof err, 1, a), 0, "%s", err);
    sq_sweep sw;
    sq_sweep_defaults(&sw);
    char p[600];
    snprintf(p, sizeof p, "%s/sweep.json", dir);
    cr_assert_eq(sq_sweep_load("test", p, &sw), 0);
    static sq_sweep_task tasks[SQ_SWEEP_MAX_TASKS];
    int ngroups, n = sq_sweep_tasks(&sw, tasks, &ngroups);
    cr_assert_eq(ngroups, 1024);
    /* every third group done: the others are pairs, "1-2,4-5,...", about 2,900 bytes */
    static char want[8192];
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        int g = tasks[i].group;
        if (g % 3 == 0) {
            char d[1200];
            snprintf(d, sizeof d, "%s/tasks/%.63s", dir, tasks[i].id);
            cr_assert_eq(sq_cli_mkdirs(d), 0);
            strcat(d, "/result.json");
            put_file(d, "{\"id\":\"x\"}\n");
        } else if (g % 3 == 1) {
            len += snprintf(want + len, sizeof want - len, "%s%d-%d", len ? "," : "", g, g + 1 < ngroups ? g + 1 : g);
        }
    }
    snprintf(want + len, sizeof want - len, "%%9");
    const char *again[] = {"--out", dir, "--slurm", "--dry-run", "--bin", "/opt/sqakd", "--quiet", NULL};
    cr_assert_eq(sweep_argv(err, sizeof err, 0, again), 0, "%s", err);
    snprintf(p, sizeof p, "%s/sweep.sbatch", dir);
    char *s = slurp(p), *args[64];
    cr_assert_not_null(s);
    int na = sbatch_args(s, args, 64), found = 0;
    for (int i = 0; i < na; i++) {
        if (!strncmp(args[i], "--array=", 8)) {
            found = 1;
            cr_expect(!strcmp(args[i] + 8, want), "--array is not the %zu-byte list of pending groups: %zu bytes, ends '%s'",
                      strlen(want), strlen(args[i] + 8), args[i] + 8 + (strlen(args[i] + 8) > 40 ? strlen(args[i] + 8) - 40 : 0));
        }
        free(args[i]);
    }
    cr_expect(found, "no --array in:\n%.400s", s);
    free(s);
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

Test(sweep, slurm_runs_a_sweep_whose_directory_has_spaces_quotes_and_dollars, .init = slurm_init, .fini = slurm_fini,
     .timeout = 90)
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
    char dir[600], data[400], teacher[400], err[4096], cwd[4096];
    snprintf(dir, sizeof dir, "%s/odd dir $(touch INJ1) `touch INJ2`; touch INJ3 'sq' \"dq\" #SBATCH --x %%j $HOME", g_tmp);
    snprintf(data, sizeof data, "idx:%s/img.idx", g_tmp);
    snprintf(teacher, sizeof teacher, "%s/t.safetensors", g_tmp);
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    const char *a[] = {"--teacher", teacher, "--data", data, "--quantizers", "ewgs", "--bits", "2", "--epochs", "1",
                       "--batch", "16", "--threads", "1", "--out", dir, "--slurm", "--partition", "debug", "--time",
                       "00:05:00", "--cpus-per-task", "1", "--bin", bin, "--quiet", NULL};
    cr_assert_eq(sweep_argv(err, sizeof err, 0, a), 0, "%s", err);
    int done = 0;
    for (int i = 0; i < 240 && !done; i++) {   /* at most 60 s */
        usleep(250000);
        done = result_mtime(dir, "ewgs_w2a2_s1") != 0;
    }
    char log[700], t[400];
    snprintf(log, sizeof log, "%s/logs/group_0.out", dir);
    tail_of(log, t, sizeof t);
    cr_assert(done, "the array task wrote no result within 60 s (its log %s: %s)", log, t);
    cr_expect(exists(log), "the array task's log is not %s", log);
    cr_expect_neq(result_mtime(dir, "teacher"), 0, "no teacher result");
    char p[800];
    snprintf(p, sizeof p, "%s/tasks/ewgs_w2a2_s1/result.json", dir);
    char *s = slurp(p);
    cr_expect(s && strstr(s, "\"status\":\"ok\""), "%s", s ? s : "(none)");
    free(s);
    expect_no_injected_files(g_tmp);
    expect_no_injected_files(cwd);
}

/* --tensorboard: every student writes its events under DIR/tasks/tensorboard/<task id>/, and the
   setting is kept in sweep.json (a re-run or a Slurm worker reads it from there) */
Test(sweep, tensorboard_events_per_task, .init = mk_tmp, .fini = rm_tmp)
{
    tiny_inputs();
    char dir[400];
    snprintf(dir, sizeof dir, "%s/sw", g_tmp);
    cr_assert_eq(sweep("--teacher %s/t.safetensors --data idx:%s/img.idx,%s/lab.idx --quantizers ewgs --bits 2 --epochs 1 "
                       "--batch 16 --threads 1 --quiet --tensorboard --out %s", g_tmp, g_tmp, g_tmp, dir), 0);
    char p[600];
    snprintf(p, sizeof p, "%s/tasks/tensorboard/ewgs_w2a2_s1", dir);
    DIR *d = opendir(p);
    cr_assert_not_null(d, "no %s", p);
    int events = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, "events.out.tfevents.", 20)) continue;
        char f[900];
        snprintf(f, sizeof f, "%s/%s", p, e->d_name);
        struct stat sb;
        cr_expect(stat(f, &sb) == 0 && sb.st_size > 40, "%s is empty", f);
        events++;
    }
    closedir(d);
    cr_expect_eq(events, 1);
    snprintf(p, sizeof p, "%s/sweep.json", dir);
    char *js = slurp(p);
    cr_assert_not_null(js);
    cr_expect(strstr(js, "\"tensorboard\":1") != NULL, "%s", js);
    free(js);
}

/* --per-channel (issue 20): kept in sweep.json and in every student's checkpoint metadata; a
   "per_channel" other than 0 or 1 in a config is refused */
Test(sweep, per_channel_students, .init = mk_tmp, .fini = rm_tmp)
{
    tiny_inputs();
    char dir[400];
    snprintf(dir, sizeof dir, "%s/sw", g_tmp);
    cr_assert_eq(sweep("--teacher %s/t.safetensors --data idx:%s/img.idx,%s/lab.idx --quantizers lsq --bits 2 --epochs 1 "
                       "--batch 16 --threads 1 --quiet --per-channel --out %s", g_tmp, g_tmp, g_tmp, dir), 0);
    char p[600];
    snprintf(p, sizeof p, "%s/sweep.json", dir);
    char *js = slurp(p);
    cr_assert_not_null(js);
    cr_expect(strstr(js, "\"per_channel\":1") != NULL, "%s", js);
    free(js);
    snprintf(p, sizeof p, "%s/tasks/lsq_w2a2_s1/last.safetensors", dir);
    sq_ckpt_meta meta;
    cr_assert_eq(sq_ckpt_read_meta(p, &meta), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(meta.q.per_channel, 1);
    snprintf(p, sizeof p, "%s/bad.json", g_tmp);
    FILE *f = fopen(p, "w");
    fprintf(f, "{\"per_channel\": 3}");
    fclose(f);
    cr_expect_eq(sweep("--config %s --teacher %s/t.safetensors --data idx:%s/img.idx,%s/lab.idx --quantizers lsq "
                       "--bits 2 --out %s/sw2", p, g_tmp, g_tmp, g_tmp, g_tmp), 2);
}

/* --ntasks-per-group N: each array task is an N-rank data-parallel job, its ranks started by srun
   inside the task (here a recorder named srun on PATH), GPUs per rank; the teacher job stays one
   task; the count is kept in sweep.json; a batch the ranks do not divide is refused in one line,
   and so is the option without --slurm */
Test(sweep, ntasks_per_group_runs_each_group_as_an_srun_job_of_n_ranks, .init = mk_tmp, .fini = rm_tmp)
{
    tiny_inputs();
    char err[4096], dir[600], bindir[600], bin[700], srun[700], rec[400], data[600], path[1400];
    snprintf(dir, sizeof dir, "%s/sw dp", g_tmp);
    snprintf(bindir, sizeof bindir, "%s/bin", g_tmp);
    cr_assert_eq(mkdir(bindir, 0755), 0);
    snprintf(bin, sizeof bin, "%s/sqakd 'x'", bindir);
    write_recorder(bin);
    snprintf(srun, sizeof srun, "%s/srun", bindir);
    write_recorder(srun);
    snprintf(rec, sizeof rec, "%s/args.txt", g_tmp);
    snprintf(data, sizeof data, "idx:%s/img.idx,%s/lab.idx", g_tmp, g_tmp);
    const char *a[] = {"sweep", "--model", "smallcnn", "--train-teacher-epochs", "1", "--data", data, "--quantizers",
                       "ewgs,lsq", "--bits", "2", "--batch", "32", "--out", dir, "--slurm", "--dry-run", "--bin", bin,
                       "--gpus", "1", "--cpus-per-task", "4", "--ntasks-per-group", "4", "--quiet", NULL};
    cr_assert_eq(sweep_argv(err, sizeof err, 0, a + 1), 0, "%s", err);
    snprintf(path, sizeof path, "%s/sweep.sbatch", dir);
    char *s = slurp(path);
    cr_assert_not_null(s);
    const char *want[] = {"\n#SBATCH --ntasks=4\n", "\n#SBATCH --gpus-per-task=1\n", "\n#SBATCH --cpus-per-task=4\n",
                          "\nexec srun --ntasks=4 --mpi=pmix --kill-on-bad-exit=1 '"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect(strstr(s, want[i]) != NULL, "missing '%s' in:\n%s", want[i], s);
    cr_expect(strstr(s, "--gres=") == NULL, "a data-parallel group asks for GPUs per task, not --gres:\n%s", s);
    char *args[64];
    int n = sbatch_args(s, args, 64);
    cr_expect_gt(n, 0, "sbatch cannot parse the directives of:\n%s", s);
    for (int i = 0; i < n; i++) free(args[i]);
    free(s);
    cr_expect_eq(run_bash(path, 1, g_tmp, rec), 0, "bash -n %s failed", path);
    /* running the array task runs srun with the group's command line, BIN quoted whole */
    const char *old = getenv("PATH");
    char newpath[4096];
    snprintf(newpath, sizeof newpath, "%s:%s", bindir, old ? old : "/usr/bin:/bin");
    char *saved = strdup(old ? old : "/usr/bin:/bin");
    setenv("PATH", newpath, 1);
    unlink(rec);
    int rc = run_bash(path, 0, g_tmp, rec);
    setenv("PATH", saved, 1);
    free(saved);
    cr_expect_eq(rc, 0, "running %s failed", path);
    char got[5000], exp[5000];
    recorded(rec, got, sizeof got);
    snprintf(exp, sizeof exp, "--ntasks=4|--mpi=pmix|--kill-on-bad-exit=1|%s|sweep|--config|%s/sweep.json|--run-group|7|",
             bin, dir);
    cr_expect_str_eq(got, exp, "the array task ran srun with other arguments");
    /* the teacher is trained by one process */
    snprintf(path, sizeof path, "%s/teacher.sbatch", dir);
    s = slurp(path);
    cr_assert_not_null(s);
    cr_expect(strstr(s, "\n#SBATCH --ntasks=1\n") && strstr(s, "\n#SBATCH --gres=gpu:1\n") && !strstr(s, "srun"),
              "the teacher job should be one task:\n%s", s);
    free(s);
    /* sweep.json keeps the count: the scripts written again from it are the same */
    sq_sweep sw;
    sq_sweep_defaults(&sw);
    snprintf(path, sizeof path, "%s/sweep.json", dir);
    cr_assert_eq(sq_sweep_load("test", path, &sw), 0);
    cr_expect_eq(sw.ntasks, 4);
    /* refusals: a global batch the ranks do not divide; the option on a local sweep */
    const char *odd[] = {"--out", dir, "--batch", "30", "--slurm", "--dry-run", "--bin", bin, NULL};
    cr_expect_eq(sweep_argv(err, sizeof err, 0, odd), 2);
    expect_one_line(err, "--batch 30 is not a multiple of --ntasks-per-group 4", "30");
    char d2[700];
    snprintf(d2, sizeof d2, "%s/local", g_tmp);
    const char *local[] = {"--out", d2, "--ntasks-per-group", "2", NULL};
    cr_expect_eq(sweep_argv(err, sizeof err, 1, local), 0, "%s", err); /* base has --slurm --dry-run */
    const char *local2[] = {"--out", d2, "--quiet", NULL};
    cr_expect_eq(sweep_argv(err, sizeof err, 0, local2), 2);
    cr_expect(strstr(err, "--ntasks-per-group 2 applies to --slurm jobs") != NULL, "%s", err);
}
