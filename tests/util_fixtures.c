/* util_fixtures.c: shared test fixtures (see util_fixtures.h). */
#include "util_fixtures.h"
#include "util_check.h"
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

void sqt_tiny_dataset(sq_dataset *ds, int n)
{
    memset(ds, 0, sizeof *ds);
    ds->n = n; ds->c = 1; ds->h = 8; ds->w = 8; ds->classes = 3;
    ds->images = malloc((size_t)n * 64);
    ds->labels = malloc(n * sizeof(int32_t));
    sqt_rng r;
    sqt_rng_seed(&r, 99);
    for (int i = 0; i < n; i++) {
        ds->labels[i] = i % 3;
        for (int j = 0; j < 64; j++)
            ds->images[i * 64 + j] = (uint8_t)((sqt_rng_next(&r) & 63) + 60 * ds->labels[i] * (j % 2));
    }
    ds->mean[0] = 0.3f; ds->std[0] = 0.3f;
    snprintf(ds->name, sizeof ds->name, "tiny");
}

const char *sqt_bin(void)
{
    const char *b = getenv("SQAKD_BIN");
    return b ? b : "build/sqakd";
}

int sqt_vrun(char *out, size_t cap, const char *fmt, va_list ap)
{
    char args[4096], cmd[8192];
    vsnprintf(args, sizeof args, fmt, ap);
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", sqt_bin(), args);
    out[0] = 0;
    FILE *p = popen(cmd, "r");
    if (!p) return 128;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

void sqt_write_be32(FILE *f, uint32_t v)
{
    unsigned char b[4] = {v >> 24, v >> 16, v >> 8, v};
    fwrite(b, 1, 4, f);
}

char *sqt_mkdtemp(char *buf, size_t cap, const char *prefix)
{
    snprintf(buf, cap, "/tmp/%s_XXXXXX", prefix);
    return mkdtemp(buf);
}

int sqt_rmtree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}
