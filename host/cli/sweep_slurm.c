/* sweep_slurm.c: the Slurm side of 'sqakd sweep --slurm': an sbatch job array with one task per
   pending group (each runs 'sqakd sweep --config DIR/sweep.json --run-group $SLURM_ARRAY_TASK_ID'),
   a teacher job first when the sweep trains its teacher, and submission with sbatch.

   Nothing reaches a script unchecked: the partition and time must match Slurm's syntax
   (sq_sweep_bad_partition, sq_sweep_bad_time), no string may hold a control character (a newline
   would end a directive or a comment and start a command), and paths are quoted for whoever reads
   them. sbatch reads #SBATCH lines itself (src/sbatch/opt.c, _get_argument): whitespace separates
   arguments, '...' or "..." group characters, a backslash makes the next character literal and an
   unquoted '#' ends the line; the --output value is then a filename pattern, where % starts a
   replacement (%% is a %) and a backslash anywhere turns the replacements off. So a path in
   --output is written in double quotes with \" for a quote and %% for a %, and a sweep directory
   with a backslash is refused. In the bash body every path is single-quoted ('\'' for a quote):
   bash takes every other byte inside single quotes literally. sbatch itself runs without a
   shell. */
#include "sqakd/safetensors.h"
#include "sweep.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int sq_sweep_array_spec(const int *groups, int n, char *dst, size_t cap)
{
    size_t len = 0;
    if (!cap) return -1;
    dst[0] = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && groups[j + 1] == groups[j] + 1) j++;
        char item[40];
        int k = j > i ? snprintf(item, sizeof item, "%s%d-%d", i ? "," : "", groups[i], groups[j])
                      : snprintf(item, sizeof item, "%s%d", i ? "," : "", groups[i]);
        if (len + k >= cap) return -1;
        memcpy(dst + len, item, k + 1);
        len += k;
        i = j + 1;
    }
    return 0;
}

int sq_sweep_slurm_check(const char *cmd, const sq_sweep *sw, const char *bin)
{
    const char *bad;
    char shown[96];
    if ((bad = sq_sweep_bad_partition(sw->partition))) {
        sq_sweep_show(sw->partition, shown, sizeof shown);
        return sq_cli_fail(cmd, "--partition: must be %s, got '%s'", bad, shown);
    }
    if ((bad = sq_sweep_bad_time(sw->time))) {
        sq_sweep_show(sw->time, shown, sizeof shown);
        return sq_cli_fail(cmd, "--time: must be %s, got '%s'", bad, shown);
    }
    if (sq_sweep_bad_text(sw->out)) return sq_cli_fail(cmd, "--out: the directory's path has control characters");
    if (strchr(sw->out, '\\'))
        return sq_cli_fail(cmd, "--out: a directory with a backslash cannot hold the Slurm logs (in sbatch's --output "
                           "a backslash turns %%a and %%j off): use another directory");
    if (!bin[0] || sq_sweep_bad_text(bin)) return sq_cli_fail(cmd, "--bin: must be a path without control characters");
    if (sw->ntasks < 1 || sw->ntasks > 4096)
        return sq_cli_fail(cmd, "--ntasks-per-group: must be 1..4096, got %d", sw->ntasks);
    if (sw->batch % sw->ntasks)
        return sq_cli_fail(cmd, "--batch %d is not a multiple of --ntasks-per-group %d (every rank takes an equal part "
                           "of the global batch): use a multiple of %d", sw->batch, sw->ntasks, sw->ntasks);
    return 0;
}

static void appendf(sq_jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void appendf(sq_jbuf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        sq_jbuf_raw(b, small, n);
        return;
    }
    char *big = sq_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sq_jbuf_raw(b, big, n);
    free(big);
}

/* s single-quoted for bash */
static void append_shq(sq_jbuf *b, const char *s)
{
    sq_jbuf_raw(b, "'", 1);
    while (*s) {
        size_t k = strcspn(s, "'");
        sq_jbuf_raw(b, s, k);
        s += k;
        if (*s == '\'') {
            sq_jbuf_raw(b, "'\\''", 4);
            s++;
        }
    }
    sq_jbuf_raw(b, "'", 1);
}

/* "#SBATCH --output=DIR/logs/NAME": DIR as sbatch reads it back (see the top of the file) */
static void append_output(sq_jbuf *b, const char *dir, const char *name)
{
    sq_jbuf_raw(b, "#SBATCH --output=\"", 18);
    for (const char *p = dir; *p; p++) {
        if (*p == '"') sq_jbuf_raw(b, "\\\"", 2);
        else if (*p == '%') sq_jbuf_raw(b, "%%", 2);
        else sq_jbuf_raw(b, p, 1);
    }
    appendf(b, "/logs/%s\"\n", name);
}

/* ntasks: the job's processes. One: --gpus GPUs for it (--gres). Several (a data-parallel group,
   one rank per task): --gpus GPUs for each task (--gpus-per-task), wherever Slurm places them */
static void directives(const sq_sweep *sw, const char *name, int ntasks, sq_jbuf *b)
{
    int cpus = sw->cpus_per_task > 0 ? sw->cpus_per_task : sw->threads;
    appendf(b, "#SBATCH --job-name=%s\n", name);
    if (sw->partition[0]) appendf(b, "#SBATCH --partition=%s\n", sw->partition);
    appendf(b, "#SBATCH --time=%s\n", sw->time);
    if (sw->gpus > 0 && ntasks == 1) appendf(b, "#SBATCH --gres=gpu:%d\n", sw->gpus);
    if (sw->gpus > 0 && ntasks > 1) appendf(b, "#SBATCH --gpus-per-task=%d\n", sw->gpus);
    appendf(b, "#SBATCH --cpus-per-task=%d\n", cpus);
    appendf(b, "#SBATCH --ntasks=%d\n", ntasks);
}

static int write_script(const char *cmd, const char *path, const sq_jbuf *b)
{
    if (sq_write_file_atomic(path, sq_jbuf_cstr(b), strlen(sq_jbuf_cstr(b)))) return sq_cli_fail(cmd, "%s", sq_last_error());
    return 0;
}

/* runs "sbatch --parsable [--dependency=afterok:DEP] SCRIPT" (no shell) and reads the job id */
static int submit(const char *cmd, const char *script, const char *dep, char *jobid, size_t cap)
{
    char depopt[160];
    snprintf(depopt, sizeof depopt, "--dependency=afterok:%s", dep ? dep : "");
    char *argv[] = {"sbatch", "--parsable", dep ? depopt : (char *)script, dep ? (char *)script : NULL, NULL};
    int fd[2];
    if (pipe(fd)) return sq_cli_fail(cmd, "cannot run sbatch: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return sq_cli_fail(cmd, "cannot run sbatch: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execvp("sbatch", argv);
        _exit(127);
    }
    close(fd[1]);
    char out[256];
    size_t n = 0;
    for (;;) {   /* the first 255 bytes; the rest is read and dropped so that sbatch never blocks */
        char drop[256];
        ssize_t r = n < sizeof out - 1 ? read(fd[0], out + n, sizeof out - 1 - n) : read(fd[0], drop, sizeof drop);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        if (n < sizeof out - 1) n += (size_t)r;
    }
    out[n] = 0;
    close(fd[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
        return sq_cli_fail(cmd, "cannot run sbatch: is Slurm installed here and sbatch on PATH?");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return sq_cli_fail(cmd, "sbatch %s failed (exit %d): is the cluster reachable?", script,
                           WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    out[strcspn(out, ";\r\n")] = 0;   /* --parsable prints "jobid[;cluster]" */
    size_t k = strspn(out, "0123456789");
    if (!k || out[k] || k >= cap) {
        char shown[96];
        sq_sweep_show(out, shown, sizeof shown);
        return sq_cli_fail(cmd, "sbatch %s printed '%s', not a job id", script, shown);
    }
    memcpy(jobid, out, k + 1);
    return 0;
}

int sq_sweep_slurm(const char *cmd, const sq_sweep *sw, const char *bin, const int *pending, int npending,
                   int teacher_job, int dry_run)
{
    if (sq_sweep_slurm_check(cmd, sw, bin)) return 2;
    char path[4096], tscript[4096], logs[4096];
    snprintf(path, sizeof path, "%s/sweep.json", sw->out);
    snprintf(logs, sizeof logs, "%s/logs", sw->out);
    if (sq_cli_mkdirs(logs)) return sq_cli_fail(cmd, "cannot create %s: %s", logs, strerror(errno));
    sq_jbuf b;
    sq_jbuf_init(&b);
    int rc = 0;
    if (teacher_job) {
        appendf(&b, "#!/bin/bash\n# sqakd sweep: trains the teacher of %s (written by 'sqakd sweep --slurm')\n", sw->out);
        directives(sw, "sqakd-teacher", 1, &b);
        append_output(&b, sw->out, "teacher_%j.out");
        appendf(&b, "set -euo pipefail\nexec ");
        append_shq(&b, bin);
        appendf(&b, " sweep --config ");
        append_shq(&b, path);
        appendf(&b, " --run-teacher\n");
        snprintf(tscript, sizeof tscript, "%s/teacher.sbatch", sw->out);
        if ((rc = write_script(cmd, tscript, &b))) goto done;
    }
    /* every group index once: at most 5 bytes each ("2047,"), and "%N" */
    size_t acap = (size_t)npending * 6 + 32;
    char *array = sq_xmalloc(acap);
    if (sq_sweep_array_spec(pending, npending, array, acap)) {   /* cannot happen with acap */
        free(array);
        rc = sq_cli_fail(cmd, "the job array's index list does not fit");
        goto done;
    }
    sq_jbuf_reset(&b);
    appendf(&b, "#!/bin/bash\n# sqakd sweep: one array task per group of students that share a teacher pass "
            "(written by 'sqakd sweep --slurm')\n");
    directives(sw, "sqakd-sweep", sw->ntasks, &b);
    if (sw->max_running > 0) appendf(&b, "#SBATCH --array=%s%%%d\n", array, sw->max_running);
    else appendf(&b, "#SBATCH --array=%s\n", array);
    append_output(&b, sw->out, "group_%a.out");
    appendf(&b, "set -euo pipefail\nexec ");
    /* a data-parallel group: its ranks started by srun inside the array task (PMIx: how Debian's
       OpenMPI meets Slurm); a rank that fails ends the step */
    if (sw->ntasks > 1) appendf(&b, "srun --ntasks=%d --mpi=pmix --kill-on-bad-exit=1 ", sw->ntasks);
    append_shq(&b, bin);
    appendf(&b, " sweep --config ");
    append_shq(&b, path);
    appendf(&b, " --run-group \"$SLURM_ARRAY_TASK_ID\"\n");
    snprintf(path, sizeof path, "%s/sweep.sbatch", sw->out);
    if ((rc = write_script(cmd, path, &b))) {
        free(array);
        goto done;
    }
    fprintf(stderr, "sqakd %s: wrote %s (array %.60s%s: %d group%s)%s%s\n", cmd, path, array,
            strlen(array) > 60 ? "..." : "", npending, npending == 1 ? "" : "s", teacher_job ? " and " : "",
            teacher_job ? tscript : "");
    free(array);
    if (dry_run) {   /* the commands to submit them, quoted for a shell */
        sq_jbuf_reset(&b);
        if (teacher_job) {
            appendf(&b, "sbatch --parsable ");
            append_shq(&b, tscript);
            appendf(&b, "\nsbatch --dependency=afterok:<teacher job> ");
        } else {
            appendf(&b, "sbatch ");
        }
        append_shq(&b, path);
        printf("%s\n", sq_jbuf_cstr(&b));
        goto done;
    }
    char tjob[64] = "", job[64];
    if (teacher_job && (rc = submit(cmd, tscript, NULL, tjob, sizeof tjob))) goto done;
    if ((rc = submit(cmd, path, teacher_job ? tjob : NULL, job, sizeof job))) goto done;
    if (teacher_job) printf("submitted teacher job %s and sweep array job %s (after the teacher)\n", tjob, job);
    else printf("submitted sweep array job %s\n", job);
done:
    sq_jbuf_free(&b);
    return rc;
}
