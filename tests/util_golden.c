/* util_golden.c: loads "SQGOLD01" golden fixtures (format in util_golden.h) and compares results
   against them with a declared tolerance. */
#include "util_golden.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct reader {
    const char *path;
    const unsigned char *buf;
    size_t size, off;
} reader;

static int rd_bytes(reader *r, void *dst, size_t n, const char *what)
{
    if (n > r->size - r->off) {
        sq_set_error("golden file %s truncated at offset %zu while reading %s (%zu bytes needed, "
                     "%zu left); regenerate it with tools/gen_golden.py",
                     r->path, r->off, what, n, r->size - r->off);
        return -1;
    }
    memcpy(dst, r->buf + r->off, n);
    r->off += n;
    return 0;
}

static int rd_u32(reader *r, uint32_t *v, const char *what)
{
    unsigned char b[4];
    if (rd_bytes(r, b, 4, what)) return -1;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 0;
}

static int rd_i64(reader *r, int64_t *v, const char *what)
{
    unsigned char b[8];
    if (rd_bytes(r, b, 8, what)) return -1;
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--) u = u << 8 | b[i];
    *v = (int64_t)u;
    return 0;
}

static unsigned char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) { free(buf); fclose(f); return NULL; }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) { free(buf); return NULL; }
    *size = n;
    return buf;
}

static sq_status parse_tensor(reader *r, sq_golden_tensor *t, int idx)
{
    uint32_t len, ndim;
    size_t at = r->off;
    if (rd_u32(r, &len, "a name length")) return SQ_EFORMAT;
    if (len == 0 || len > 4096) {
        sq_set_error("golden file %s: tensor %d has a bad name length %u at offset %zu", r->path,
                     idx, len, at);
        return SQ_EFORMAT;
    }
    t->name = calloc(len + 1, 1);
    if (!t->name) return SQ_ENOMEM;
    if (rd_bytes(r, t->name, len, "a tensor name")) return SQ_EFORMAT;
    at = r->off;
    if (rd_u32(r, &ndim, "a dimension count")) return SQ_EFORMAT;
    if (ndim > SQ_GOLDEN_MAX_DIMS) {
        sq_set_error("golden file %s: tensor '%s' has %u dims (max %d) at offset %zu", r->path,
                     t->name, ndim, SQ_GOLDEN_MAX_DIMS, at);
        return SQ_EFORMAT;
    }
    t->ndim = (int)ndim;
    size_t numel = 1;
    for (uint32_t d = 0; d < ndim; d++) {
        at = r->off;
        if (rd_i64(r, &t->dims[d], "a dimension")) return SQ_EFORMAT;
        if (t->dims[d] < 0 || t->dims[d] > ((int64_t)1 << 32) ||
            (t->dims[d] && numel > (SIZE_MAX / 8) / (size_t)t->dims[d])) {
            sq_set_error("golden file %s: tensor '%s' has a bad dimension %lld at offset %zu",
                         r->path, t->name, (long long)t->dims[d], at);
            return SQ_EFORMAT;
        }
        numel *= (size_t)t->dims[d];
    }
    t->numel = numel;
    t->data = malloc(numel ? numel * sizeof(float) : sizeof(float));
    if (!t->data) return SQ_ENOMEM;
    if (rd_bytes(r, t->data, numel * sizeof(float), "tensor data")) return SQ_EFORMAT;
    return SQ_OK;
}

sq_status sq_golden_load(const char *path, sq_golden **out)
{
    *out = NULL;
    size_t size = 0;
    unsigned char *buf = read_file(path, &size);
    if (!buf) {
        sq_set_error("cannot read golden file %s; run from the repo root or set SQAKD_TEST_DATA "
                     "(regenerate with tools/gen_golden.py)", path);
        return SQ_EIO;
    }
    reader r = {path, buf, size, 0};
    char magic[8];
    uint32_t version = 0, count = 0;
    sq_status st = SQ_EFORMAT;
    sq_golden *g = calloc(1, sizeof *g);
    if (!g) { free(buf); return SQ_ENOMEM; }
    if (rd_bytes(&r, magic, 8, "the magic")) goto done;
    if (memcmp(magic, SQ_GOLDEN_MAGIC, 8)) {
        sq_set_error("golden file %s: bad magic at offset 0 (expected \"%s\"); not a golden "
                     "fixture", path, SQ_GOLDEN_MAGIC);
        goto done;
    }
    if (rd_u32(&r, &version, "the version")) goto done;
    if (version != SQ_GOLDEN_VERSION) {
        sq_set_error("golden file %s: version %u at offset 8, this reader knows %u; regenerate "
                     "with tools/gen_golden.py", path, version, SQ_GOLDEN_VERSION);
        goto done;
    }
    if (rd_u32(&r, &count, "the tensor count")) goto done;
    if (count > (size - r.off) / 13) {   /* each tensor needs >= 13 bytes */
        sq_set_error("golden file %s: tensor count %u at offset 12 does not fit in %zu bytes "
                     "(truncated or corrupt)", path, count, size);
        goto done;
    }
    g->t = calloc(count ? count : 1, sizeof *g->t);
    if (!g->t) { st = SQ_ENOMEM; goto done; }
    for (uint32_t i = 0; i < count; i++) {
        g->count = (int)i + 1;
        st = parse_tensor(&r, &g->t[i], (int)i);
        if (st != SQ_OK) goto done;
    }
    st = SQ_EFORMAT;
    if (r.off != size) {
        sq_set_error("golden file %s: %zu trailing bytes after %u tensors at offset %zu", path,
                     size - r.off, count, r.off);
        goto done;
    }
    st = SQ_OK;
done:
    free(buf);
    if (st != SQ_OK) {
        sq_golden_free(g);
        return st;
    }
    *out = g;
    return SQ_OK;
}

void sq_golden_free(sq_golden *g)
{
    if (!g) return;
    for (int i = 0; i < g->count; i++) {
        free(g->t[i].name);
        free(g->t[i].data);
    }
    free(g->t);
    free(g);
}

const sq_golden_tensor *sq_golden_find(const sq_golden *g, const char *name)
{
    for (int i = 0; i < g->count; i++)
        if (!strcmp(g->t[i].name, name)) return &g->t[i];
    return NULL;
}

const sq_golden_tensor *sq_golden_findf(const sq_golden *g, const char *prefix, const char *name)
{
    char full[256];
    snprintf(full, sizeof full, "%s.%s", prefix, name);
    return sq_golden_find(g, full);
}

void sq_golden_path(const char *file, char *buf, size_t size)
{
    const char *dir = getenv("SQAKD_TEST_DATA");
    snprintf(buf, size, "%s/%s", dir && *dir ? dir : "tests/data", file);
}

size_t sq_golden_compare(const char *what, const float *got, const float *ref, size_t n,
                         float atol, float rtol)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double a = got[i], r = ref[i];
        int ok = isfinite(a) && isfinite(r) && fabs(a - r) <= atol + rtol * fabs(r);
        if (ok) continue;
        if (bad < 5)
            fprintf(stderr, "golden mismatch %s[%zu]: got %.9g, PyTorch %.9g (|diff| %.3g, "
                    "tol %.3g)\n", what, i, a, r, fabs(a - r), atol + rtol * fabs(r));
        bad++;
    }
    if (bad > 5) fprintf(stderr, "golden mismatch %s: %zu of %zu elements out of tolerance\n",
                         what, bad, n);
    return bad;
}
