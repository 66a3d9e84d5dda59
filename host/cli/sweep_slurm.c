/* sweep_slurm.c: the Slurm side of 'sqakd sweep --slurm': an sbatch job array with one task per
   pending group (each runs 'sqakd sweep --config DIR/sweep.json --run-group $SLURM_ARRAY_TASK_ID'),
   a teacher job first when the sweep trains its teacher, and submission with sbatch. */
#include "sqakd/safetensors.h"
#include "sweep.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

void sq_sweep_array_spec(const int *groups, int n, char *dst, size_t cap)
{
    size_t len = 0;
    dst[0] = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && groups[j + 1] == groups[j] + 1) j++;
        if (j > i) len += snprintf(dst + len, len < cap ? cap - len : 0, "%s%d-%d", i ? "," : "", groups[i], groups[j]);
        else len += snprintf(dst + len, len < cap ? cap - len : 0, "%s%d", i ? "," : "", groups[i]);
        i = j + 1;
    }
}

/* single-quoted for bash */
static void shq(char *dst, size_t cap, const char *s)
{
    size_t len = 0;
    len += snprintf(dst + len, cap - len, "'");
    for (; *s && len + 5 < cap; s++) {
        if (*s == '\'') len += snprintf(dst + len, cap - len, "'\\''");
        else dst[len++] = *s;
    }
    snprintf(dst + len, cap - len, "'");
}

static void directives(const sq_sweep *sw, const char *name, char *buf, size_t cap, size_t *len)
{
    int cpus = sw->cpus_per_task > 0 ? sw->cpus_per_task : sw->threads;
    *len += snprintf(buf + *len, cap - *len, "#SBATCH --job-name=%s\n", name);
    if (sw->partition[0]) *len += snprintf(buf + *len, cap - *len, "#SBATCH --partition=%s\n", sw->partition);
    *len += snprintf(buf + *len, cap - *len, "#SBATCH --time=%s\n", sw->time);
    if (sw->gpus > 0) *len += snprintf(buf + *len, cap - *len, "#SBATCH --gres=gpu:%d\n", sw->gpus);
    *len += snprintf(buf + *len, cap - *len, "#SBATCH --cpus-per-task=%d\n", cpus);
    *len += snprintf(buf + *len, cap - *len, "#SBATCH --ntasks=1\n");
}

static int write_script(const char *cmd, const char *path, const char *text)
{
    if (sq_write_file_atomic(path, text, strlen(text))) return sq_cli_fail(cmd, "%s", sq_last_error());
    return 0;
}

/* runs "sbatch --parsable [--dependency=afterok:DEP] SCRIPT" and reads the job id */
static int submit(const char *cmd, const char *script, const char *dep, char *jobid, size_t cap)
{
    char q[4200], line[8400];
    shq(q, sizeof q, script);
    snprintf(line, sizeof line, "sbatch --parsable%s%s %s", dep ? " --dependency=afterok:" : "", dep ? dep : "", q);
    FILE *p = popen(line, "r");
    if (!p) return sq_cli_fail(cmd, "cannot run sbatch (is Slurm installed here?)");
    char out[256] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !n)
        return sq_cli_fail(cmd, "'%s' failed (exit %d): is sbatch on PATH and the cluster reachable?", line,
                           WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    out[strcspn(out, ";\r\n")] = 0;   /* --parsable prints "jobid[;cluster]" */
    snprintf(jobid, cap, "%s", out);
    return 0;
}

int sq_sweep_slurm(const char *cmd, const sq_sweep *sw, const char *bin, const int *pending, int npending,
                   int teacher_job, int dry_run)
{
    char qbin[4200], qcfg[4200], path[4096], tscript[4096], logs[4096];
    shq(qbin, sizeof qbin, bin);
    snprintf(path, sizeof path, "%s/sweep.json", sw->out);
    shq(qcfg, sizeof qcfg, path);
    snprintf(logs, sizeof logs, "%s/logs", sw->out);
    if (sq_cli_mkdirs(logs)) return sq_cli_fail(cmd, "cannot create %s", logs);
    size_t cap = 16384, len = 0;
    char *buf = sq_xmalloc(cap);
    int rc = 0;
    if (teacher_job) {
        len = 0;
        len += snprintf(buf + len, cap - len, "#!/bin/bash\n# sqakd sweep: trains the teacher of %s (written by "
                        "'sqakd sweep --slurm')\n", sw->out);
        directives(sw, "sqakd-teacher", buf, cap, &len);
        len += snprintf(buf + len, cap - len, "#SBATCH --output=%s/teacher_%%j.out\n", logs);
        len += snprintf(buf + len, cap - len, "set -euo pipefail\nexec %s sweep --config %s --run-teacher\n", qbin, qcfg);
        snprintf(tscript, sizeof tscript, "%s/teacher.sbatch", sw->out);
        if ((rc = write_script(cmd, tscript, buf))) goto done;
    }
    char array[2048];
    sq_sweep_array_spec(pending, npending, array, sizeof array);
    len = 0;
    len += snprintf(buf + len, cap - len, "#!/bin/bash\n# sqakd sweep: one array task per group of students that "
                    "share a teacher pass (written by 'sqakd sweep --slurm')\n");
    directives(sw, "sqakd-sweep", buf, cap, &len);
    if (sw->max_running > 0) len += snprintf(buf + len, cap - len, "#SBATCH --array=%s%%%d\n", array, sw->max_running);
    else len += snprintf(buf + len, cap - len, "#SBATCH --array=%s\n", array);
    len += snprintf(buf + len, cap - len, "#SBATCH --output=%s/group_%%a.out\n", logs);
    len += snprintf(buf + len, cap - len, "set -euo pipefail\nexec %s sweep --config %s --run-group "
                    "\"$SLURM_ARRAY_TASK_ID\"\n", qbin, qcfg);
    snprintf(path, sizeof path, "%s/sweep.sbatch", sw->out);
    if ((rc = write_script(cmd, path, buf))) goto done;
    fprintf(stderr, "sqakd %s: wrote %s (array %s: %d group%s)%s%s\n", cmd, path, array, npending,
            npending == 1 ? "" : "s", teacher_job ? " and " : "", teacher_job ? tscript : "");
    if (dry_run) {
        if (teacher_job) printf("sbatch --parsable %s\nsbatch --dependency=afterok:<teacher job> %s\n", tscript, path);
        else printf("sbatch %s\n", path);
        goto done;
    }
    char tjob[128] = "", job[128];
    if (teacher_job && (rc = submit(cmd, tscript, NULL, tjob, sizeof tjob))) goto done;
    if ((rc = submit(cmd, path, teacher_job ? tjob : NULL, job, sizeof job))) goto done;
    if (teacher_job) printf("submitted teacher job %s and sweep array job %s (after the teacher)\n", tjob, job);
    else printf("submitted sweep array job %s\n", job);
done:
    free(buf);
    return rc;
}
