/* args.c: declarative flag parsing with range checks and one-line errors. */
#include "cli.h"
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

void sq_args_help(const char *cmd, const char *usage, const sq_arg *spec, int nspec)
{
    printf("usage: sqakd %s %s\n\noptions:\n", cmd, usage);
    for (int i = 0; i < nspec; i++) {
        const char *t = spec[i].type == SQ_ARG_INT ? "N" : spec[i].type == SQ_ARG_FLOAT ? "X"
                      : spec[i].type == SQ_ARG_STR ? "S" : spec[i].type == SQ_ARG_U64 ? "N" : "";
        char left[64];
        snprintf(left, sizeof left, "%s %s", spec[i].name, t);
        printf("  %-24s %s\n", left, spec[i].help);
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

int sq_args_parse(const char *cmd, const char *usage, int argc, char **argv, const sq_arg *spec, int nspec,
                  const char **pos, int maxpos, int *npos)
{
    *npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) { sq_args_help(cmd, usage, spec, nspec); return 1; }
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
        } else {
            if (*npos >= maxpos) return sq_cli_fail(cmd, "unexpected argument '%s' (see 'sqakd %s --help')", s, cmd);
            pos[(*npos)++] = s;
        }
    }
    return 0;
}

int sq_cli_mkdirs(const char *dir)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) && errno != EEXIST) return -1;
    struct stat sb;
    return stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode) ? 0 : -1;
}

int sq_cli_write_command(const char *out_dir, int argc, char **argv, unsigned long long seed)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/command.txt", out_dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "sqakd");
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int plain = strpbrk(a, " \t'\"$\\") == NULL && *a;
        if (plain) fprintf(f, " %s", a);
        else {
            fputs(" '", f);
            for (; *a; a++) { if (*a == '\'') fputs("'\\''", f); else fputc(*a, f); }
            fputc('\'', f);
        }
    }
    fprintf(f, "\nseed %llu\n", seed);
    return fclose(f);
}
