/* cmd_report.c: 'sqakd report DIR' — gathers a sweep's DIR/tasks/<id>/result.json into
   DIR/report.md (Markdown tables, printed too), DIR/report.csv and DIR/report.png (accuracy or
   teacher agreement against model size, see report_plot.c). */
#include "cli.h"
#include "report.h"
#include "sqakd/json.h"
#include "sqakd/safetensors.h"
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *USAGE = "DIR   (a 'sqakd sweep' directory: reads DIR/tasks/*/result.json)";

static void str_field(const sq_json *o, const char *key, char *dst, size_t n, const char *fallback)
{
    const char *s = sq_json_str(sq_json_get(o, key));
    snprintf(dst, n, "%s", s ? s : fallback);
}

static double num_field(const sq_json *o, const char *key)
{
    const sq_json *v = sq_json_get(o, key);
    return v && v->type == SQ_JSON_NUM ? v->num : NAN;
}

/* an integer field; 0 when absent or not an integer that fits (a corrupt or hand-edited file) */
static long long int_field(const sq_json *o, const char *key, long long lo, long long hi)
{
    int64_t v;
    return sq_json_int(sq_json_get(o, key), &v) && v >= lo && v <= hi ? (long long)v : 0;
}

static int load_row(const char *cmd, const char *path, sq_report_row *r)
{
    sq_json *o;
    if (sq_json_parse_file(path, &o)) return sq_cli_fail(cmd, "%s", sq_last_error());
    int rc = 0;
    if (o->type != SQ_JSON_OBJ || !sq_json_str(sq_json_get(o, "id"))) {
        rc = sq_cli_fail(cmd, "%s is not a sweep result (no \"id\"): remove it or re-run the sweep", path);
    } else {
        memset(r, 0, sizeof *r);
        str_field(o, "id", r->id, sizeof r->id, "");
        str_field(o, "role", r->role, sizeof r->role, "student");
        str_field(o, "model", r->model, sizeof r->model, "?");
        str_field(o, "quantizer", r->quantizer, sizeof r->quantizer, "?");
        str_field(o, "status", r->status, sizeof r->status, "ok");
        r->wbits = (int)int_field(o, "wbits", 0, 64);
        r->abits = (int)int_field(o, "abits", 0, 64);
        r->seed = int_field(o, "seed", 0, INT64_MAX);
        r->top1 = num_field(o, "top1");
        r->agreement = num_field(o, "agreement");
        r->kl = num_field(o, "kl");
        r->model_bytes = num_field(o, "model_bytes");
        r->train_seconds = num_field(o, "train_seconds");
    }
    sq_json_free(o);
    return rc;
}

static int row_cmp(const void *pa, const void *pb)
{
    const sq_report_row *a = pa, *b = pb;
    int ta = !strcmp(a->role, "teacher"), tb = !strcmp(b->role, "teacher");
    if (ta != tb) return tb - ta;
    int c = strcmp(a->quantizer, b->quantizer);
    if (c) return c;
    if (a->wbits != b->wbits) return a->wbits - b->wbits;
    if (a->abits != b->abits) return a->abits - b->abits;
    if (a->seed != b->seed) return a->seed < b->seed ? -1 : 1;
    return strcmp(a->id, b->id);
}

static int load_rows(const char *cmd, const char *dir, sq_report_row **out, int *n)
{
    char tasks[4096];
    snprintf(tasks, sizeof tasks, "%s/tasks", dir);
    DIR *d = opendir(tasks);
    if (!d) return sq_cli_fail(cmd, "cannot open %s: is %s a 'sqakd sweep --out' directory?", tasks, dir);
    int cap = 16, rc = 0;
    sq_report_row *rows = sq_xcalloc(cap, sizeof *rows);
    *n = 0;
    for (struct dirent *e; (e = readdir(d)) && !rc;) {
        if (e->d_name[0] == '.') continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s/result.json", tasks, e->d_name);
        struct stat sb;
        if (stat(path, &sb) || !S_ISREG(sb.st_mode)) continue;
        if (*n == cap) {
            cap *= 2;
            rows = realloc(rows, cap * sizeof *rows);
            if (!rows) { closedir(d); return sq_cli_fail(cmd, "out of memory"); }
        }
        rc = load_row(cmd, path, &rows[*n]);
        if (!rc) (*n)++;
    }
    closedir(d);
    if (!rc && !*n) rc = sq_cli_fail(cmd, "no results in %s (run 'sqakd sweep --out %s' first)", tasks, dir);
    if (rc) { free(rows); return rc; }
    qsort(rows, *n, sizeof *rows, row_cmp);
    *out = rows;
    return 0;
}

static void cell(char *dst, size_t n, const char *fmt, double v, const char *missing)
{
    if (isfinite(v)) snprintf(dst, n, fmt, v);
    else snprintf(dst, n, "%s", missing);
}

static void bits_label(const sq_report_row *r, char *dst, size_t n)
{
    snprintf(dst, n, "W%dA%d", r->wbits, r->abits);
}

/* mean and sample standard deviation of the finite values */
static void mean_std(const double *v, int n, double *mean, double *sd)
{
    double s = 0, s2 = 0;
    int k = 0;
    for (int i = 0; i < n; i++) if (isfinite(v[i])) { s += v[i]; k++; }
    *mean = k ? s / k : NAN;
    for (int i = 0; i < n; i++) if (isfinite(v[i])) s2 += (v[i] - *mean) * (v[i] - *mean);
    *sd = k > 1 ? sqrt(s2 / (k - 1)) : NAN;
}

/* one row per (quantizer, bit-width) that ran with more than one seed */
static void seed_means(const sq_report_row *rows, int n, sq_jbuf *md)
{
    int header = 0;
    double *t1 = sq_xcalloc(n, sizeof *t1), *ag = sq_xcalloc(n, sizeof *ag);
    for (int i = 0; i < n;) {
        int j = i, k = 0;
        while (j < n && !strcmp(rows[j].role, rows[i].role) && !strcmp(rows[j].quantizer, rows[i].quantizer) &&
               rows[j].wbits == rows[i].wbits && rows[j].abits == rows[i].abits) {
            if (!strcmp(rows[j].status, "ok")) { t1[k] = rows[j].top1; ag[k] = rows[j].agreement; k++; }
            j++;
        }
        if (j - i > 1 && strcmp(rows[i].role, "teacher")) {
            if (!header) {
                const char *h = "\n## Mean over seeds\n\n| quantizer | bits | seeds | top-1 % | agreement % | size (bytes) |\n"
                                "| --- | --- | ---: | ---: | ---: | ---: |\n";
                sq_jbuf_raw(md, h, strlen(h));
                header = 1;
            }
            double m1, s1, ma, sa;
            mean_std(t1, k, &m1, &s1);
            mean_std(ag, k, &ma, &sa);
            char b[16], a1[48], a2[48], line[256];
            bits_label(&rows[i], b, sizeof b);
            if (isfinite(s1)) snprintf(a1, sizeof a1, "%.2f ± %.2f", m1, s1); else cell(a1, sizeof a1, "%.2f", m1, "-");
            if (isfinite(sa)) snprintf(a2, sizeof a2, "%.2f ± %.2f", ma, sa); else cell(a2, sizeof a2, "%.2f", ma, "-");
            int len = snprintf(line, sizeof line, "| %s | %s | %d of %d | %s | %s | %.0f |\n", rows[i].quantizer, b, k,
                               j - i, a1, a2, rows[i].model_bytes);
            sq_jbuf_raw(md, line, len);
        }
        i = j;
    }
    free(t1);
    free(ag);
}

static void build_markdown(const sq_report_row *rows, int n, sq_jbuf *md)
{
    const char *head = "# Sweep report\n\n"
                       "| task | model | quantizer | bits | top-1 % | agreement % | KL | size (bytes) | train s | status |\n"
                       "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |\n";
    sq_jbuf_raw(md, head, strlen(head));
    for (int i = 0; i < n; i++) {
        const sq_report_row *r = &rows[i];
        char b[16], t1[32], ag[32], kl[32], sz[32], ts[32], line[512];
        bits_label(r, b, sizeof b);
        cell(t1, sizeof t1, "%.2f", r->top1, "-");
        cell(ag, sizeof ag, "%.2f", r->agreement, "-");
        cell(kl, sizeof kl, "%.4f", r->kl, "-");
        cell(sz, sizeof sz, "%.0f", r->model_bytes, "-");
        cell(ts, sizeof ts, "%.1f", r->train_seconds, "-");
        int len = snprintf(line, sizeof line, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r->id, r->model,
                           r->quantizer, b, t1, ag, kl, sz, ts, r->status);
        sq_jbuf_raw(md, line, len);
    }
    seed_means(rows, n, md);
    const char *tail = "\nAccuracy is top-1 on the evaluation split (\"-\" without labels); agreement is top-1 agreement "
                       "with the teacher and KL the mean KL(teacher || student) at T = 1 on the same images; size "
                       "counts quantized weights at their bit-width and everything else at 32 bits.\n\n"
                       "![accuracy against model size](report.png)\n";
    sq_jbuf_raw(md, tail, strlen(tail));
}

static void build_csv(const sq_report_row *rows, int n, sq_jbuf *csv)
{
    const char *head = "task,role,model,quantizer,wbits,abits,seed,top1,agreement,kl,model_bytes,train_seconds,status\n";
    sq_jbuf_raw(csv, head, strlen(head));
    for (int i = 0; i < n; i++) {
        const sq_report_row *r = &rows[i];
        char t1[32], ag[32], kl[32], sz[32], ts[32], line[512];
        cell(t1, sizeof t1, "%.6g", r->top1, "");
        cell(ag, sizeof ag, "%.6g", r->agreement, "");
        cell(kl, sizeof kl, "%.6g", r->kl, "");
        cell(sz, sizeof sz, "%.0f", r->model_bytes, "");
        cell(ts, sizeof ts, "%.3f", r->train_seconds, "");
        int len = snprintf(line, sizeof line, "%s,%s,%s,%s,%d,%d,%lld,%s,%s,%s,%s,%s,%s\n", r->id, r->role, r->model,
                           r->quantizer, r->wbits, r->abits, r->seed, t1, ag, kl, sz, ts, r->status);
        sq_jbuf_raw(csv, line, len);
    }
}

static int write_text(const char *cmd, const char *dir, const char *name, const sq_jbuf *b)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (sq_write_file_atomic(path, sq_jbuf_cstr(b), strlen(sq_jbuf_cstr(b))))
        return sq_cli_fail(cmd, "%s", sq_last_error());
    return 0;
}

int sq_cmd_report(int argc, char **argv)
{
    const char *cmd = "report";
    int quiet = 0;
    sq_arg a[] = {{"--quiet", SQ_ARG_FLAG, &quiet, 0, 0, "do not print the table"}};
    const char *pos[1];
    int npos, r = sq_args_parse(cmd, USAGE, argc, argv, a, 1, pos, 1, &npos);
    if (r) return r == 1 ? 0 : 2;
    if (npos != 1) return sq_cli_fail(cmd, "expected the sweep directory (usage: sqakd report %s)", USAGE);
    sq_report_row *rows = NULL;
    int n = 0;
    if (load_rows(cmd, pos[0], &rows, &n)) return 2;
    sq_jbuf md, csv;
    sq_jbuf_init(&md);
    sq_jbuf_init(&csv);
    build_markdown(rows, n, &md);
    build_csv(rows, n, &csv);
    char png[4200];
    snprintf(png, sizeof png, "%s/report.png", pos[0]);
    int rc = write_text(cmd, pos[0], "report.md", &md) || write_text(cmd, pos[0], "report.csv", &csv) ? 2 : 0;
    if (!rc && sq_report_plot(rows, n, png)) rc = sq_cli_fail(cmd, "%s", sq_last_error());
    if (!rc && !quiet) {
        fputs(sq_jbuf_cstr(&md), stdout);
        fprintf(stderr, "sqakd report: %d results; wrote %s/report.md, report.csv and report.png\n", n, pos[0]);
    }
    sq_jbuf_free(&md);
    sq_jbuf_free(&csv);
    free(rows);
    return rc;
}
