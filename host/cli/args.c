/* args.c: declarative flag parsing with range checks and one-line errors. */
#include "cli.h"
#include "io/atomic_write.h"
#include "sqakd/json.h"
#include "sqakd/safetensors.h"
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int sq_cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sqakd %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

/* " (default: V)" from the flag's destination, which holds its default while --help is printed
   (sq_args_parse prints it before parsing any flag; an unset string is "none"); "" when the help
   text states its default itself or says the flag is required, for switches, and the out-of-range
   sentinels of flags whose default is
   decided later (their help text says it) */
static void default_of(const sq_arg *a, char *dst, size_t cap)
{
    dst[0] = 0;
    if (strstr(a->help, "(default") || strstr(a->help, "required") || a->type == SQ_ARG_FLAG) return;
    switch (a->type) {
    case SQ_ARG_INT: {
        int v = *(const int *)a->dst;
        if (v >= a->lo && v <= a->hi) snprintf(dst, cap, " (default: %d)", v);
        break;
    }
    case SQ_ARG_U64: snprintf(dst, cap, " (default: %llu)", (unsigned long long)*(const uint64_t *)a->dst); break;
    case SQ_ARG_FLOAT: {
        float v = *(const float *)a->dst;
        if (isfinite(v) && v >= a->lo && v <= a->hi) snprintf(dst, cap, " (default: %g)", v);
        break;
    }
    case SQ_ARG_STR: {
        const char *v = *(const char *const *)a->dst;
        snprintf(dst, cap, " (default: %s)", v ? v : "none");
        break;
    }
    default: break;
    }
}

void sq_args_help(const char *cmd, const char *usage, const sq_arg *spec, int nspec)
{
    printf("usage: sqakd %s %s\n\noptions:\n", cmd, usage);
    for (int i = 0; i < nspec; i++) {
        const char *t = spec[i].type == SQ_ARG_INT ? "N" : spec[i].type == SQ_ARG_FLOAT ? "X"
                      : spec[i].type == SQ_ARG_STR ? "S" : spec[i].type == SQ_ARG_U64 ? "N" : "";
        char left[64], def[600];
        snprintf(left, sizeof left, "%s %s", spec[i].name, t);
        default_of(&spec[i], def, sizeof def);
        printf("  %-24s %s%s\n", left, spec[i].help, def);
    }
    printf("  %-24s %s\n", "--help", "show this help");
}

static int parse_one(const char *cmd, const sq_arg *a, const char *v)
{
    char *end;
    errno = 0;
    switch (a->type) {
    case SQ_ARG_INT: {
        long x = strtol(v, &end, 10);
        if (*v == 0 || *end || errno || x < a->lo || x > a->hi)
            return sq_cli_fail(cmd, "%s must be an integer in %.0f..%.0f, got '%s'", a->name, a->lo, a->hi, v);
        *(int *)a->dst = (int)x;
        return 0;
    }
    case SQ_ARG_U64: {
        if (*v == '-') return sq_cli_fail(cmd, "%s must be a non-negative integer, got '%s'", a->name, v);
        unsigned long long x = strtoull(v, &end, 10);
        if (*v == 0 || *end || errno) return sq_cli_fail(cmd, "%s must be a non-negative integer, got '%s'", a->name, v);
        *(uint64_t *)a->dst = x;
        return 0;
    }
    case SQ_ARG_FLOAT: {
        double x = strtod(v, &end);
        if (*v == 0 || *end || errno || !isfinite(x) || x < a->lo || x > a->hi)
            return sq_cli_fail(cmd, "%s must be a finite number in [%g, %g], got '%s'", a->name, a->lo, a->hi, v);
        *(float *)a->dst = (float)x;
        return 0;
    }
    case SQ_ARG_STR:
        if (!*v) return sq_cli_fail(cmd, "%s needs a non-empty value", a->name);
        *(const char **)a->dst = v;
        return 0;
    case SQ_ARG_FLAG:
        *(int *)a->dst = 1;
        return 0;
    }
    return 2;
}

void sq_args_put(sq_arg *a, int *n, int cap, sq_arg v)
{
    if (*n >= cap) abort();
    a[(*n)++] = v;
}

/* the destinations of the flags the last sq_args_parse was given (sq_args_given) */
static const void *g_given[128];
static int g_ngiven;

int sq_args_given(const void *dst)
{
    for (int i = 0; i < g_ngiven; i++)
        if (g_given[i] == dst) return 1;
    return 0;
}

int sq_args_parse(const char *cmd, const char *usage, int argc, char **argv, const sq_arg *spec, int nspec,
                  const char **pos, int maxpos, int *npos)
{
    *npos = 0;
    g_ngiven = 0;
    /* --help anywhere prints the help before any flag is parsed, so that it shows the defaults */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { sq_args_help(cmd, usage, spec, nspec); return 1; }
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (s[0] == '-' && s[1] == '-') {
            const char *eq = strchr(s, '=');
            size_t nl = eq ? (size_t)(eq - s) : strlen(s);
            const sq_arg *a = NULL;
            for (int j = 0; j < nspec; j++)
                if (strlen(spec[j].name) == nl && !strncmp(spec[j].name, s, nl)) { a = &spec[j]; break; }
            if (!a) return sq_cli_fail(cmd, "unknown option '%.*s' (see 'sqakd %s --help')", (int)nl, s, cmd);
            const char *v;
            if (a->type == SQ_ARG_FLAG) {
                if (eq) return sq_cli_fail(cmd, "%s takes no value", a->name);
                v = "";
            } else if (eq) {
                v = eq + 1;
            } else {
                if (i + 1 >= argc) return sq_cli_fail(cmd, "%s needs a value", a->name);
                v = argv[++i];
            }
            if (parse_one(cmd, a, v)) return 2;
            if (g_ngiven < (int)(sizeof g_given / sizeof g_given[0])) g_given[g_ngiven++] = a->dst;
        } else {
            if (*npos >= maxpos) return sq_cli_fail(cmd, "unexpected argument '%s' (see 'sqakd %s --help')", s, cmd);
            pos[(*npos)++] = s;
        }
    }
    return 0;
}

int sq_cli_mkdirs(const char *dir) { return sq_io_mkdirs(dir); }

/* arg quoted for a POSIX shell unless it is made only of characters no shell treats specially */
static void put_arg(sq_jbuf *b, const char *a)
{
    int plain = *a != 0;
    for (const char *p = a; *p && plain; p++)
        plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                strchr("_./:=,+@%-", *p) != NULL;
    sq_jbuf_raw(b, " ", 1);
    if (plain) {
        sq_jbuf_raw(b, a, strlen(a));
        return;
    }
    sq_jbuf_raw(b, "'", 1);
    for (; *a; a++) {
        if (*a == '\'') sq_jbuf_raw(b, "'\\''", 4);
        else sq_jbuf_raw(b, a, 1);
    }
    sq_jbuf_raw(b, "'", 1);
}

int sq_cli_write_command(const char *out_dir, int argc, char **argv, unsigned long long seed, int append,
                         const char *config)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/command.txt", out_dir);
    sq_jbuf b;
    sq_jbuf_init(&b);
    FILE *f = append ? fopen(path, "rb") : NULL;
    if (f) {
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) sq_jbuf_raw(&b, buf, n);
        fclose(f);
        sq_jbuf_raw(&b, "resumed:", 8);
    } else {
        sq_jbuf_raw(&b, "sqakd", 5);
    }
    if (f) sq_jbuf_raw(&b, " sqakd", 6);
    for (int i = 0; i < argc; i++) put_arg(&b, argv[i]);
    char tail[64];
    snprintf(tail, sizeof tail, f ? "\n" : "\nseed %llu\n", seed);
    sq_jbuf_raw(&b, tail, strlen(tail));
    if (config && !f) { /* every flag's value in force, defaults included */
        sq_jbuf_raw(&b, "config ", 7);
        sq_jbuf_raw(&b, config, strlen(config));
        sq_jbuf_raw(&b, "\n", 1);
    }
    sq_status st = sq_write_file_atomic(path, sq_jbuf_cstr(&b), strlen(sq_jbuf_cstr(&b)));
    sq_jbuf_free(&b);
    return st ? -1 : 0;
}

/* a flag's current value as text (NULL for an unset string) */
static const char *value_text(const sq_arg *a, char *buf, size_t n)
{
    switch (a->type) {
    case SQ_ARG_INT: snprintf(buf, n, "%d", *(int *)a->dst); return buf;
    case SQ_ARG_FLAG: snprintf(buf, n, "%d", *(int *)a->dst ? 1 : 0); return buf;
    case SQ_ARG_U64: snprintf(buf, n, "%llu", (unsigned long long)*(uint64_t *)a->dst); return buf;
    case SQ_ARG_FLOAT: { /* the shortest text that reads back as the same float */
        float v = *(float *)a->dst;
        for (int p = 6; p <= 9; p++) {
            snprintf(buf, n, "%.*g", p, (double)v);
            if (strtof(buf, NULL) == v) break;
        }
        return buf;
    }
    case SQ_ARG_STR: return *(const char **)a->dst;
    }
    return NULL;
}

static int named(const char *name, const char *const *list)
{
    for (; list && *list; list++)
        if (!strcmp(name, *list)) return 1;
    return 0;
}

void sq_args_config_put(sq_jbuf *b, const sq_arg *spec, int nspec, const char *const *skip)
{
    for (int i = 0; i < nspec; i++) {
        if (named(spec[i].name, skip)) continue;
        char buf[64];
        const char *v = value_text(&spec[i], buf, sizeof buf);
        sq_jbuf_key(b, spec[i].name);
        if (v) sq_jbuf_str(b, v);
        else sq_jbuf_null(b);
    }
}

int sq_args_apply_recorded(const char *cmd, const sq_arg *spec, int nspec, const sq_json *rec,
                           const char *const *changeable, const char *dir)
{
    if (!rec || rec->type != SQ_JSON_OBJ) return sq_cli_fail(cmd, "--resume: the run configuration recorded in %s is not a JSON object", dir);
    for (int i = 0; i < nspec; i++) {
        const sq_arg *a = &spec[i];
        const sq_json *r = sq_json_get(rec, a->name);
        if (!r || (r->type != SQ_JSON_STR && r->type != SQ_JSON_NULL)) continue; /* a flag the run did not know */
        const char *want = sq_json_str(r);
        char buf[64];
        const char *have = value_text(a, buf, sizeof buf);
        if (sq_args_given(a->dst)) {
            int same = (!want && !have) || (want && have && !strcmp(want, have));
            if (!same && !named(a->name, changeable))
                return sq_cli_fail(cmd, "--resume: %s is '%s' but the run in %s was started with '%s'; resume "
                                   "without it (only --epochs, --threads, --device and other run-independent flags "
                                   "may change), or start a new run with another --out",
                                   a->name, have ? have : "(unset)", dir, want ? want : "(unset)");
            continue;
        }
        if (!want) {
            if (a->type == SQ_ARG_STR) *(const char **)a->dst = NULL;
            continue;
        }
        if (a->type == SQ_ARG_FLAG) {
            *(int *)a->dst = !strcmp(want, "1");
            continue;
        }
        if (parse_one(cmd, a, want)) return sq_cli_fail(cmd, "--resume: %s records %s '%s', which this version refuses", dir, a->name, want);
    }
    return 0;
}
