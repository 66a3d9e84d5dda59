/* cmd_report.c: 'sqakd report DIR' — gathers a sweep's DIR/tasks/<id>/result.json (and the
   per-epoch values of DIR/tasks/<id>/metrics.jsonl) into DIR/report.md (Markdown tables, printed
   too), DIR/report.csv and two figures, each as SVG, PDF and PNG (report_plot.c): accuracy or
   teacher agreement against model size with error bars over seeds (report.*), and per-epoch
   agreement and KL curves (report_curves.*). A result is checked before it is used (names of
   printable ASCII that fit, bit-widths 1..32, an integer seed, percentages in 0..100, sizes and
   times >= 0), and so is every metrics.jsonl line (an object with an integer epoch, agreement in
   0..100, a finite KL), or refused with one line naming the file (and line) and key; the text is
   built in growable buffers, with | and \ escaped in Markdown cells and CSV fields quoted. */
#include "cli.h"
#include "report.h"
#include "sqakd/json.h"
#include "sqakd/safetensors.h"
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_EPOCHS 100000      /* of a metrics.jsonl line */
#define MAX_METRICS_BYTES (64L << 20)

static const char *USAGE = "DIR   (a 'sqakd sweep' directory: reads DIR/tasks/*/result.json)";

/* a name of a result (id, role, model, quantizer, status): absent or null gives fallback; else a
   string of printable ASCII (it goes into Markdown, CSV and the terminal) that fits into n bytes */
static int name_field(const char *cmd, const char *path, const sq_json *o, const char *key, char *dst, size_t n,
                      const char *fallback)
{
    const sq_json *v = sq_json_get(o, key);
    if (!v || v->type == SQ_JSON_NULL) {
        snprintf(dst, n, "%s", fallback);
        return 0;
    }
    int ok = v->type == SQ_JSON_STR && v->len < n;
    for (size_t i = 0; ok && i < v->len; i++) ok = v->str[i] >= 0x20 && v->str[i] < 0x7f;
    if (!ok)
        return sq_cli_fail(cmd, "%s: \"%s\" must be a string of printable ASCII characters, at most %zu: fix or "
                           "remove the file", path, key, n - 1);
    memcpy(dst, v->str, v->len + 1);
    return 0;
}

/* an integer in [lo, hi] that must be there */
static int int_field(const char *cmd, const char *path, const sq_json *o, const char *key, double lo, double hi,
                     double *out)
{
    const sq_json *v = sq_json_get(o, key);
    if (!v || v->type != SQ_JSON_NUM || !(v->num >= lo && v->num <= hi) || v->num != floor(v->num))
        return sq_cli_fail(cmd, "%s: \"%s\" must be an integer from %.0f to %.0f: fix or remove the file", path, key, lo,
                           hi);
    *out = v->num;
    return 0;
}

/* a measurement: absent or null gives NAN (printed as "-"), else a number in [lo, hi] */
static int num_field(const char *cmd, const char *path, const sq_json *o, const char *key, double lo, double hi,
                     double *out)
{
    const sq_json *v = sq_json_get(o, key);
    *out = NAN;
    if (!v || v->type == SQ_JSON_NULL) return 0;
    if (v->type != SQ_JSON_NUM || !(v->num >= lo && v->num <= hi))
        return sq_cli_fail(cmd, "%s: \"%s\" must be null or a number from %g to %g: fix or remove the file", path, key,
                           lo, hi);
    *out = v->num;
    return 0;
}

static int load_row(const char *cmd, const char *path, sq_report_row *r)
{
    sq_json *o;
    if (sq_json_parse_file(path, &o)) return sq_cli_fail(cmd, "%s", sq_last_error());
    int rc = 0;
    double wbits = 0, abits = 0, seed = 0;
    memset(r, 0, sizeof *r);
    if (o->type != SQ_JSON_OBJ || !sq_json_str(sq_json_get(o, "id"))) {
        rc = sq_cli_fail(cmd, "%s is not a sweep result (no \"id\"): remove it or re-run the sweep", path);
    } else if (name_field(cmd, path, o, "id", r->id, sizeof r->id, "") ||
               name_field(cmd, path, o, "role", r->role, sizeof r->role, "student") ||
               name_field(cmd, path, o, "model", r->model, sizeof r->model, "?") ||
               name_field(cmd, path, o, "quantizer", r->quantizer, sizeof r->quantizer, "?") ||
               name_field(cmd, path, o, "status", r->status, sizeof r->status, "ok") ||
               int_field(cmd, path, o, "wbits", 1, 32, &wbits) || int_field(cmd, path, o, "abits", 1, 32, &abits) ||
               /* any long long: [-2^63, 2^63 - 1024], the doubles below 2^63 */
               int_field(cmd, path, o, "seed", -9223372036854775808.0, 9223372036854774784.0, &seed) ||
               num_field(cmd, path, o, "top1", 0, 100, &r->top1) ||
               num_field(cmd, path, o, "agreement", 0, 100, &r->agreement) ||
               num_field(cmd, path, o, "kl", -DBL_MAX, DBL_MAX, &r->kl) ||
               num_field(cmd, path, o, "model_bytes", 0, DBL_MAX, &r->model_bytes) ||
               num_field(cmd, path, o, "train_seconds", 0, DBL_MAX, &r->train_seconds)) {
        rc = 2;
    } else {
        r->wbits = (int)wbits;
        r->abits = (int)abits;
        r->seed = (long long)seed;
    }
    sq_json_free(o);
    return rc;
}

static int cmp_int(long long a, long long b) { return (a > b) - (a < b); }

static int row_cmp(const void *pa, const void *pb)
{
    const sq_report_row *a = pa, *b = pb;
    int ta = !strcmp(a->role, "teacher"), tb = !strcmp(b->role, "teacher");
    if (ta != tb) return ta ? -1 : 1;
    int c = strcmp(a->quantizer, b->quantizer);
    if (c) return c;
    if ((c = cmp_int(a->wbits, b->wbits))) return c;
    if ((c = cmp_int(a->abits, b->abits))) return c;
    if ((c = cmp_int(a->seed, b->seed))) return c;
    return strcmp(a->id, b->id);
}

#define MAX_DIR 4000   /* DIR/tasks/<name>/result.json and DIR/report.csv fit their buffers */

/* DIR/tasks/<task>/metrics.jsonl into r's per-epoch values (none without the file); 0 or 2 */
static int load_metrics(const char *cmd, const char *path, sq_report_row *r)
{
    struct stat sb;
    if (stat(path, &sb) || !S_ISREG(sb.st_mode)) return 0;
    if (sb.st_size > MAX_METRICS_BYTES)
        return sq_cli_fail(cmd, "%s is %lld bytes, more than a run's metrics (%ld): remove it or re-run the task", path,
                           (long long)sb.st_size, MAX_METRICS_BYTES);
    FILE *f = fopen(path, "rb");
    if (!f) return sq_cli_fail(cmd, "cannot read %s: %s", path, strerror(errno));
    char *buf = NULL, where[4500];
    size_t cap = 0;
    ssize_t len;
    int rc = 0, line = 0;
    while (!rc && (len = getline(&buf, &cap, f)) > 0) {
        line++;
        size_t n = (size_t)len;
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) n--;
        if (!n) continue;
        snprintf(where, sizeof where, "%s line %d", path, line);
        sq_json *o = NULL;
        double ep = 0, agr, kl;
        if (sq_json_parse(buf, n, &o, NULL))
            rc = sq_cli_fail(cmd, "%s: %s: remove the file or re-run the task", where, sq_last_error());
        else if (o->type != SQ_JSON_OBJ)
            rc = sq_cli_fail(cmd, "%s is not a JSON object: remove the file or re-run the task", where);
        else if (int_field(cmd, where, o, "epoch", 1, MAX_EPOCHS, &ep) ||
                 num_field(cmd, where, o, "agreement", 0, 100, &agr) ||
                 num_field(cmd, where, o, "kl", -DBL_MAX, DBL_MAX, &kl))
            rc = 2;
        else {
            int e = (int)ep;
            if (e > r->nep) {
                r->ep_agreement = realloc(r->ep_agreement, e * sizeof(double));
                r->ep_kl = realloc(r->ep_kl, e * sizeof(double));
                if (!r->ep_agreement || !r->ep_kl) { fprintf(stderr, "sqakd %s: out of memory\n", cmd); abort(); }
                for (int k = r->nep; k < e; k++) r->ep_agreement[k] = r->ep_kl[k] = NAN;
                r->nep = e;
            }
            r->ep_agreement[e - 1] = agr;   /* a later line of the same epoch wins */
            r->ep_kl[e - 1] = kl;
        }
        sq_json_free(o);
    }
    free(buf);
    fclose(f);
    return rc;
}

void sq_report_rows_free(sq_report_row *rows, int n)
{
    for (int i = 0; rows && i < n; i++) {
        free(rows[i].ep_agreement);
        free(rows[i].ep_kl);
    }
    free(rows);
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
        if (!rc) {
            snprintf(path, sizeof path, "%s/%s/metrics.jsonl", tasks, e->d_name);
            rc = load_metrics(cmd, path, &rows[*n]);
            (*n)++;
        }
    }
    closedir(d);
    if (!rc && !*n) rc = sq_cli_fail(cmd, "no results in %s (run 'sqakd sweep --out %s' first)", tasks, dir);
    if (rc) { sq_report_rows_free(rows, *n); return rc; }
    qsort(rows, *n, sizeof *rows, row_cmp);
    *out = rows;
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
    char *big = sq_xmalloc((size_t)n + 1);   /* %.0f of 1e300 is 301 digits */
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sq_jbuf_raw(b, big, n);
    free(big);
}

/* a number, or missing when it is not finite */
static void cell(sq_jbuf *b, const char *fmt, double v, const char *missing)
{
    if (isfinite(v)) appendf(b, fmt, v);
    else sq_jbuf_raw(b, missing, strlen(missing));
}

/* a Markdown table cell: " s |" with | and \ escaped */
static void md_cell(sq_jbuf *b, const char *s)
{
    sq_jbuf_raw(b, " ", 1);
    for (; *s; s++) {
        if (*s == '|' || *s == '\\') sq_jbuf_raw(b, "\\", 1);
        sq_jbuf_raw(b, s, 1);
    }
    sq_jbuf_raw(b, " |", 2);
}

/* a CSV field and its separator: quoted, with "" for ", when it holds a comma, a quote or
   surrounding spaces (RFC 4180) */
static void csv_field(sq_jbuf *b, const char *s, const char *sep)
{
    size_t n = strlen(s);
    if (strpbrk(s, ",\"\r\n") || (n && (s[0] == ' ' || s[n - 1] == ' '))) {
        sq_jbuf_raw(b, "\"", 1);
        for (; *s; s++) sq_jbuf_raw(b, *s == '"' ? "\"\"" : s, *s == '"' ? 2 : 1);
        sq_jbuf_raw(b, "\"", 1);
    } else {
        sq_jbuf_raw(b, s, n);
    }
    sq_jbuf_raw(b, sep, strlen(sep));
}

static void bits_label(const sq_report_row *r, char *dst, size_t n)
{
    snprintf(dst, n, "W%dA%d", r->wbits, r->abits);
}

/* "m ± s", or "m" with one value, or "-" */
static void mean_cell(sq_jbuf *b, double m, double sd)
{
    sq_jbuf_raw(b, " ", 1);
    if (isfinite(sd)) appendf(b, "%.2f ± %.2f", m, sd);
    else cell(b, "%.2f", m, "-");
    sq_jbuf_raw(b, " |", 2);
}

/* one row per (quantizer, bit-width) that ran with more than one seed (the figure's error bars
   are these numbers: sq_report_configs) */
static void seed_means(const sq_report_row *rows, int n, sq_jbuf *md)
{
    int header = 0;
    sq_report_config *cf = sq_xcalloc(n ? n : 1, sizeof *cf);
    int nc = sq_report_configs(rows, n, cf);
    for (int c = 0; c < nc; c++) {
        int i = cf[c].first;
        if (cf[c].n > 1 && strcmp(rows[i].role, "teacher")) {
            if (!header) {
                const char *h = "\n## Mean over seeds\n\n| quantizer | bits | seeds | top-1 % | agreement % | size (bytes) |\n"
                                "| --- | --- | ---: | ---: | ---: | ---: |\n";
                sq_jbuf_raw(md, h, strlen(h));
                header = 1;
            }
            char b[32];
            bits_label(&rows[i], b, sizeof b);
            sq_jbuf_raw(md, "|", 1);
            md_cell(md, rows[i].quantizer);
            md_cell(md, b);
            appendf(md, " %d of %d |", cf[c].ok, cf[c].n);
            mean_cell(md, cf[c].top1, cf[c].top1_sd);
            mean_cell(md, cf[c].agreement, cf[c].agreement_sd);
            sq_jbuf_raw(md, " ", 1);
            cell(md, "%.0f", rows[i].model_bytes, "-");
            sq_jbuf_raw(md, " |\n", 3);
        }
    }
    free(cf);
}

static void build_markdown(const sq_report_row *rows, int n, sq_jbuf *md)
{
    const char *head = "# Sweep report\n\n"
                       "| task | model | quantizer | bits | top-1 % | agreement % | KL | size (bytes) | train s | status |\n"
                       "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |\n";
    sq_jbuf_raw(md, head, strlen(head));
    for (int i = 0; i < n; i++) {
        const sq_report_row *r = &rows[i];
        char b[32];
        bits_label(r, b, sizeof b);
        sq_jbuf_raw(md, "|", 1);
        md_cell(md, r->id);
        md_cell(md, r->model);
        md_cell(md, r->quantizer);
        md_cell(md, b);
        const char *fmt[] = {"%.2f", "%.2f", "%.4f", "%.0f", "%.1f"};
        const double v[] = {r->top1, r->agreement, r->kl, r->model_bytes, r->train_seconds};
        for (int k = 0; k < 5; k++) {
            sq_jbuf_raw(md, " ", 1);
            cell(md, fmt[k], v[k], "-");
            sq_jbuf_raw(md, " |", 2);
        }
        md_cell(md, r->status);
        sq_jbuf_raw(md, "\n", 1);
    }
    seed_means(rows, n, md);
    const char *tail = "\nAccuracy is top-1 on the evaluation split (\"-\" without labels); agreement is top-1 agreement "
                       "with the teacher and KL the mean KL(teacher || student) at T = 1 on the same images; size "
                       "counts quantized weights at their bit-width and everything else at 32 bits. Error bars and "
                       "bands: mean ± 1 sample s.d. over the finished seeds (vector figures: report.svg, "
                       "report.pdf, report_curves.svg, report_curves.pdf).\n\n"
                       "![accuracy against model size](report.png)\n\n"
                       "![per-epoch agreement and KL](report_curves.png)\n";
    sq_jbuf_raw(md, tail, strlen(tail));
}

static void build_csv(const sq_report_row *rows, int n, sq_jbuf *csv)
{
    const char *head = "task,role,model,quantizer,wbits,abits,seed,top1,agreement,kl,model_bytes,train_seconds,status\n";
    sq_jbuf_raw(csv, head, strlen(head));
    for (int i = 0; i < n; i++) {
        const sq_report_row *r = &rows[i];
        csv_field(csv, r->id, ",");
        csv_field(csv, r->role, ",");
        csv_field(csv, r->model, ",");
        csv_field(csv, r->quantizer, ",");
        appendf(csv, "%d,%d,%lld,", r->wbits, r->abits, r->seed);
        const char *fmt[] = {"%.6g", "%.6g", "%.6g", "%.0f", "%.3f"};
        const double v[] = {r->top1, r->agreement, r->kl, r->model_bytes, r->train_seconds};
        for (int k = 0; k < 5; k++) {
            cell(csv, fmt[k], v[k], "");
            sq_jbuf_raw(csv, ",", 1);
        }
        csv_field(csv, r->status, "\n");
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
    if (strlen(pos[0]) > MAX_DIR)
        return sq_cli_fail(cmd, "the directory's path is %zu bytes, at most %d: give a shorter one", strlen(pos[0]), MAX_DIR);
    sq_report_row *rows = NULL;
    int n = 0;
    if (load_rows(cmd, pos[0], &rows, &n)) return 2;
    sq_jbuf md, csv;
    sq_jbuf_init(&md);
    sq_jbuf_init(&csv);
    build_markdown(rows, n, &md);
    build_csv(rows, n, &csv);
    int rc = write_text(cmd, pos[0], "report.md", &md) || write_text(cmd, pos[0], "report.csv", &csv) ? 2 : 0;
    if (!rc && sq_report_plot(rows, n, pos[0])) rc = sq_cli_fail(cmd, "%s", sq_last_error());
    if (!rc && !quiet) {
        fputs(sq_jbuf_cstr(&md), stdout);
        fprintf(stderr, "sqakd report: %d results; wrote %s/report.md, report.csv, report.{svg,pdf,png} and "
                "report_curves.{svg,pdf,png}\n", n, pos[0]);
    }
    sq_jbuf_free(&md);
    sq_jbuf_free(&csv);
    sq_report_rows_free(rows, n);
    return rc;
}
