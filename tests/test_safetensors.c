/* test_safetensors.c: Criterion suites "safetensors" (round trips of every dtype with metadata,
   byte compatibility with tools/load_checkpoint.py in both directions, torn and corrupt files
   rejected with the byte offset, atomic writes that leave neither a torn file nor a temporary file
   behind) and "json" (DOM parser, escapes, errors with offsets, sq_jbuf writer). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sqakd/json.h"
#include "sqakd/safetensors.h"

#define PYTHON "/usr/bin/python3"
#define CHECK_SCRIPT "tools/load_checkpoint.py"

static char g_dir[512];

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) remove_tree(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/sqakd_io_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert(mkdtemp(g_dir), "mkdtemp %s: %s", g_dir, strerror(errno));
}

static void teardown(void)
{
    chmod(g_dir, 0700);
    remove_tree(g_dir);
    unsetenv("SQAKD_TEST_FAIL_WRITE_AT");
}

TestSuite(safetensors, .init = setup, .fini = teardown);

static void path_in(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", g_dir, name); }

/* Number of directory entries (excluding . and ..); the first name goes to first. */
static int count_entries(const char *dir, char *first, size_t n)
{
    DIR *d = opendir(dir);
    int c = 0;
    struct dirent *e;
    if (!d) return -1;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (!c && first) snprintf(first, n, "%s", e->d_name);
        c++;
    }
    closedir(d);
    return c;
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    cr_assert_eq(fread(b, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return b;
}

static void spit(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f, "open %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* Crafts a file: header length, header text padded with spaces to 8 bytes, then data. */
static void write_crafted(const char *path, const char *json, const void *data, size_t ndata)
{
    size_t hl = strlen(json), pad = (8 - (8 + hl) % 8) % 8, total = 8 + hl + pad + ndata;
    unsigned char *b = calloc(1, total);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((unsigned long long)(hl + pad) >> (8 * i));
    memcpy(b + 8, json, hl);
    memset(b + 8 + hl, ' ', pad);
    if (ndata) memcpy(b + 8 + hl + pad, data, ndata);
    spit(path, b, total);
    free(b);
}

/* ---- the sample checkpoint: every dtype, odd sizes, a scalar, an empty tensor, odd names ---- */

#define NSAMPLE 9
static float s_conv[108], s_var[4] = { 1.0f, 0.5f, 2.25f, 1e-3f }, s_after[3] = { -1.5f, 0.0f, 3.75f }, s_empty[1];
static int64_t s_nbt = 123456789012345LL, s_uw[3] = { -(1LL << 40), 7, 1LL << 45 };
static int32_t s_idx[10];
static uint8_t s_mask[7] = { 0, 1, 2, 250, 255, 128, 3 }, s_weird[1] = { 42 };
static sq_st_tensor s_t[NSAMPLE];
static sq_st_kv s_meta[3] = {
    { "arch", "resnet20" },
    { "quote\"key", "back\\slash\nnew\tline" },
    { "unicode", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" },
};

static sq_st_tensor mk(const char *name, sq_st_dtype dt, int ndim, const int64_t *shape, void *data)
{
    sq_st_tensor t;
    memset(&t, 0, sizeof t);
    t.name = (char *)name;
    t.dtype = dt;
    t.ndim = ndim;
    size_t n = sq_st_dtype_size(dt);
    for (int i = 0; i < ndim; i++) { t.shape[i] = shape[i]; n *= (size_t)shape[i]; }
    t.data = data;
    t.nbytes = n;
    return t;
}

static sq_st_file sample(void)
{
    for (int i = 0; i < 108; i++) s_conv[i] = (float)i * 0.25f - 13.0f;
    for (int i = 0; i < 10; i++) s_idx[i] = i - 5;
    int k = 0;
    s_t[k++] = mk("conv1.weight", SQ_ST_F32, 4, (int64_t[]){ 4, 3, 3, 3 }, s_conv);
    s_t[k++] = mk("bn1.running_var", SQ_ST_F32, 1, (int64_t[]){ 4 }, s_var);
    s_t[k++] = mk("bn1.num_batches_tracked", SQ_ST_I64, 0, NULL, &s_nbt);
    s_t[k++] = mk("mask", SQ_ST_U8, 1, (int64_t[]){ 7 }, s_mask);
    s_t[k++] = mk("after_mask", SQ_ST_F32, 1, (int64_t[]){ 3 }, s_after);
    s_t[k++] = mk("layer1.0.conv1.uW", SQ_ST_I64, 1, (int64_t[]){ 3 }, s_uw);
    s_t[k++] = mk("idx", SQ_ST_I32, 2, (int64_t[]){ 2, 5 }, s_idx);
    s_t[k++] = mk("empty", SQ_ST_F32, 2, (int64_t[]){ 0, 4 }, s_empty);
    s_t[k++] = mk("we\"ird\\name\n/\xc3\xa9", SQ_ST_U8, 1, (int64_t[]){ 1 }, s_weird);
    sq_st_file f = { .ntensors = NSAMPLE, .tensors = s_t, .nmeta = 3, .meta = s_meta, .blob = NULL };
    return f;
}

static double tensor_sum(const sq_st_tensor *t)
{
    size_t n = t->nbytes / sq_st_dtype_size(t->dtype);
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case SQ_ST_F32: s += ((const float *)t->data)[i]; break;
        case SQ_ST_I64: s += (double)((const int64_t *)t->data)[i]; break;
        case SQ_ST_I32: s += ((const int32_t *)t->data)[i]; break;
        case SQ_ST_U8: s += ((const uint8_t *)t->data)[i]; break;
        }
    }
    return s;
}

static void write_sample(const char *path)
{
    sq_st_file f = sample();
    sq_status st = sq_st_write(path, &f);
    cr_assert_eq(st, SQ_OK, "sq_st_write: %s", sq_last_error());
}

static void expect_same_as_sample(const sq_st_file *r)
{
    sq_st_file f = sample();
    cr_assert_eq(r->ntensors, f.ntensors);
    for (int i = 0; i < f.ntensors; i++) {
        const sq_st_tensor *a = &f.tensors[i], *b = sq_st_find(r, a->name);
        cr_assert(b, "tensor '%s' missing after round trip", a->name);
        cr_expect_eq(b->dtype, a->dtype, "tensor %d '%s' dtype %d vs %d", i, a->name, b->dtype, a->dtype);
        cr_assert_eq(b->ndim, a->ndim, "tensor %d '%s' ndim %d vs %d", i, a->name, b->ndim, a->ndim);
        for (int d = 0; d < a->ndim; d++)
            cr_expect_eq(b->shape[d], a->shape[d], "tensor '%s' dim %d: %lld vs %lld", a->name, d,
                         (long long)b->shape[d], (long long)a->shape[d]);
        cr_assert_eq(b->nbytes, a->nbytes, "tensor '%s' nbytes %zu vs %zu", a->name, b->nbytes, a->nbytes);
        cr_expect_eq((uintptr_t)b->data % 64, 0, "tensor '%s' data not 64-byte aligned", a->name);
        /* bytes are copied verbatim, so equality is exact */
        for (size_t k = 0; k < a->nbytes; k++)
            cr_assert_eq(((uint8_t *)b->data)[k], ((uint8_t *)a->data)[k],
                         "tensor '%s' byte %zu: got %u want %u", a->name, k, ((uint8_t *)b->data)[k],
                         ((uint8_t *)a->data)[k]);
    }
    cr_assert_eq(r->nmeta, f.nmeta);
    for (int i = 0; i < f.nmeta; i++) {
        const char *v = sq_st_meta(r, f.meta[i].key);
        cr_assert(v, "metadata '%s' missing", f.meta[i].key);
        cr_expect_str_eq(v, f.meta[i].value, "metadata '%s'", f.meta[i].key);
    }
    cr_expect_null(sq_st_meta(r, "absent"));
    cr_expect_null(sq_st_find(r, "absent"));
}

Test(safetensors, round_trip_every_dtype_and_metadata)
{
    char p[1024];
    path_in(p, sizeof p, "sample.safetensors");
    write_sample(p);
    sq_st_file r;
    sq_status st = sq_st_read(p, &r);
    cr_assert_eq(st, SQ_OK, "sq_st_read: %s", sq_last_error());
    expect_same_as_sample(&r);
    sq_st_free(&r);
    cr_expect_eq(r.ntensors, 0);
    cr_expect_null(r.blob);

    size_t n;
    unsigned char *b = slurp(p, &n);
    unsigned long long hl = 0, data = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | b[i];
    sq_st_file f = sample();
    for (int i = 0; i < f.ntensors; i++) data += f.tensors[i].nbytes;
    cr_expect_eq((8 + hl) % 8, 0, "data starts at %llu, not 8-byte aligned", 8 + hl);
    cr_expect_eq(n, 8 + hl + data, "file size %zu vs 8 + header %llu + data %llu", n, hl, data);
    cr_expect_eq(b[8 + hl - 1] == ' ' || b[8 + hl - 1] == '}', 1, "header must end in '}' or padding");
    free(b);
    cr_expect_eq(count_entries(g_dir, NULL, 0), 1, "temporary file left behind");
}

Test(safetensors, empty_file_round_trip)
{
    char p[1024];
    path_in(p, sizeof p, "empty.safetensors");
    sq_st_file f = { 0 };
    cr_assert_eq(sq_st_write(p, &f), SQ_OK, "%s", sq_last_error());
    sq_st_file r;
    cr_assert_eq(sq_st_read(p, &r), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(r.ntensors, 0);
    cr_expect_eq(r.nmeta, 0);
    sq_st_free(&r);
    size_t n;
    unsigned char *b = slurp(p, &n);
    cr_expect_eq(n, 16, "empty file is 8 + '{}' padded to 8 = 16 bytes, got %zu", n);
    free(b);
}

static int have_python_numpy(void)
{
    return access(PYTHON, X_OK) == 0 && system(PYTHON " -c 'import numpy' >/dev/null 2>&1") == 0;
}

/* Runs cmd, returns its exit status and its output (malloc'd) in *out. */
static int run_capture(const char *cmd, char **out)
{
    FILE *p = popen(cmd, "r");
    cr_assert(p, "popen %s", cmd);
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap);
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (n + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    int status = pclose(p);
    *out = buf;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *json_string_field(const char *field)
{
    sq_json *v;
    cr_assert_eq(sq_json_parse(field, strlen(field), &v, NULL), SQ_OK, "field %s: %s", field, sq_last_error());
    cr_assert(sq_json_str(v), "field %s is not a JSON string", field);
    char *s = strdup(sq_json_str(v));
    sq_json_free(v);
    return s;
}

Test(safetensors, python_reader_accepts_our_file)
{
    if (!have_python_numpy()) cr_skip_test("%s", PYTHON " with numpy is not available");
    cr_assert_eq(access(CHECK_SCRIPT, R_OK), 0, CHECK_SCRIPT " not found: run the tests from the repository root");
    char p[1024], cmd[2048], *out;
    path_in(p, sizeof p, "sample.safetensors");
    write_sample(p);
    snprintf(cmd, sizeof cmd, PYTHON " " CHECK_SCRIPT " --check '%s' 2>&1", p);
    int rc = run_capture(cmd, &out);
    cr_assert_eq(rc, 0, "--check exited %d:\n%s", rc, out);
    sq_st_file f = sample();
    int seen_t = 0, seen_m = 0, seen_ok = 0;
    for (char *save = NULL, *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *fld[6] = { 0 }, *s2 = NULL;
        int nf = 0;
        for (char *t = strtok_r(line, "\t", &s2); t && nf < 6; t = strtok_r(NULL, "\t", &s2)) fld[nf++] = t;
        if (!strcmp(fld[0], "tensor")) {
            cr_assert_eq(nf, 5, "tensor line has %d fields", nf);
            char *name = json_string_field(fld[1]);
            const sq_st_tensor *t = NULL;
            for (int i = 0; i < f.ntensors; i++)
                if (!strcmp(f.tensors[i].name, name)) t = &f.tensors[i];
            cr_assert(t, "python printed unknown tensor '%s'", name);
            cr_expect_str_eq(fld[2], sq_st_dtype_name(t->dtype), "dtype of '%s'", name);
            sq_json *shape;
            cr_assert_eq(sq_json_parse(fld[3], strlen(fld[3]), &shape, NULL), SQ_OK);
            cr_assert_eq(sq_json_len(shape), t->ndim, "ndim of '%s'", name);
            for (int d = 0; d < t->ndim; d++)
                cr_expect_eq(sq_json_num(sq_json_at(shape, d), -1), (double)t->shape[d], "'%s' dim %d", name, d);
            sq_json_free(shape);
            cr_assert_eq(strncmp(fld[4], "sum=", 4), 0, "sum field '%s'", fld[4]);
            double got = strtod(fld[4] + 4, NULL), want = tensor_sum(t);
            /* all sample values and partial sums are exact in float64; rtol covers summation order */
            cr_expect(fabs(got - want) <= 1e-12 * fabs(want), "sum of '%s': python %.17g, C %.17g", name, got, want);
            free(name);
            seen_t++;
        } else if (!strcmp(fld[0], "meta")) {
            cr_assert_eq(nf, 3, "meta line has %d fields", nf);
            char *k = json_string_field(fld[1]), *v = json_string_field(fld[2]);
            const char *want = NULL;
            for (int i = 0; i < f.nmeta; i++)
                if (!strcmp(f.meta[i].key, k)) want = f.meta[i].value;
            cr_assert(want, "python printed unknown metadata key '%s'", k);
            cr_expect_str_eq(v, want, "metadata '%s'", k);
            free(k);
            free(v);
            seen_m++;
        } else if (!strcmp(fld[0], "ok")) {
            seen_ok++;
        }
    }
    cr_expect_eq(seen_t, f.ntensors, "python listed %d of %d tensors", seen_t, f.ntensors);
    cr_expect_eq(seen_m, f.nmeta, "python listed %d of %d metadata entries", seen_m, f.nmeta);
    cr_expect_eq(seen_ok, 1);
    free(out);
}

Test(safetensors, python_writer_output_read_by_c)
{
    if (!have_python_numpy()) cr_skip_test("%s", PYTHON " with numpy is not available");
    cr_assert_eq(access(CHECK_SCRIPT, R_OK), 0, CHECK_SCRIPT " not found: run the tests from the repository root");
    char script[1024], p[1024], cmd[4096], *out;
    path_in(script, sizeof script, "w.py");
    path_in(p, sizeof p, "py.safetensors");
    const char *py =
        "import sys; sys.path.insert(0, 'tools')\n"
        "import numpy as np, load_checkpoint as L\n"
        "L.save(sys.argv[1], {'w': np.arange(6, dtype=np.float32).reshape(2, 3) * 0.5,\n"
        "  'n': np.array(42, dtype=np.int64), 'i': np.array([-1, 2, -3], dtype=np.int32),\n"
        "  'u': np.arange(5, dtype=np.uint8), 'q\"\\\\': np.zeros((0, 2), np.float32)},\n"
        "  {'arch': 'smallcnn', 'k\"': 'v\\n\\u00e9'})\n";
    spit(script, py, strlen(py));
    snprintf(cmd, sizeof cmd, PYTHON " '%s' '%s' 2>&1", script, p);
    int rc = run_capture(cmd, &out);
    cr_assert_eq(rc, 0, "python writer exited %d:\n%s", rc, out);
    free(out);
    sq_st_file r;
    cr_assert_eq(sq_st_read(p, &r), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(r.ntensors, 5);
    const sq_st_tensor *w = sq_st_find(&r, "w"), *n = sq_st_find(&r, "n"), *i = sq_st_find(&r, "i"),
                       *u = sq_st_find(&r, "u"), *q = sq_st_find(&r, "q\"\\");
    cr_assert(w && n && i && u && q, "a tensor is missing");
    cr_expect(w->dtype == SQ_ST_F32 && w->ndim == 2 && w->shape[0] == 2 && w->shape[1] == 3);
    for (int k = 0; k < 6; k++) /* k * 0.5 is exact in float32 */
        cr_expect_eq(((float *)w->data)[k], k * 0.5f, "w[%d] = %g, want %g", k, ((float *)w->data)[k], k * 0.5f);
    cr_expect(n->dtype == SQ_ST_I64 && n->ndim == 0 && *(int64_t *)n->data == 42);
    cr_expect(i->dtype == SQ_ST_I32 && ((int32_t *)i->data)[2] == -3);
    cr_expect(u->dtype == SQ_ST_U8 && u->nbytes == 5 && ((uint8_t *)u->data)[4] == 4);
    cr_expect(q->nbytes == 0 && q->ndim == 2 && q->shape[1] == 2);
    cr_expect_str_eq(sq_st_meta(&r, "arch"), "smallcnn");
    cr_expect_str_eq(sq_st_meta(&r, "k\""), "v\n\xc3\xa9");
    sq_st_free(&r);
}

/* Reads path, expects SQ_EFORMAT, and a message naming the file and containing each needle. */
static void expect_format_error(const char *path, const char *needle1, const char *needle2)
{
    sq_st_file r;
    sq_status st = sq_st_read(path, &r);
    const char *msg = sq_last_error();
    cr_assert_eq(st, SQ_EFORMAT, "%s: status %s, want bad file format (%s)", path, sq_status_str(st), msg);
    cr_expect(strstr(msg, path), "message does not name the file: %s", msg);
    cr_expect(!needle1 || strstr(msg, needle1), "message lacks '%s': %s", needle1, msg);
    cr_expect(!needle2 || strstr(msg, needle2), "message lacks '%s': %s", needle2, msg);
    cr_expect(r.ntensors == 0 && r.blob == NULL && r.tensors == NULL, "partial result not released");
}

Test(safetensors, truncated_files_name_the_offset)
{
    char good[1024], bad[1024], want[64];
    path_in(good, sizeof good, "good.safetensors");
    path_in(bad, sizeof bad, "torn.safetensors");
    write_sample(good);
    size_t n;
    unsigned char *b = slurp(good, &n);
    unsigned long long hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | b[i];
    size_t cuts[] = { 0, 3, 7, 8, 9, (size_t)(8 + hl / 2), (size_t)(8 + hl - 1), (size_t)(8 + hl),
                      (size_t)(8 + hl + 5), (size_t)(8 + hl + 300), n - 1 };
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        cr_assert_lt(cuts[c], n);
        spit(bad, b, cuts[c]);
        snprintf(want, sizeof want, "offset %zu", cuts[c]);
        expect_format_error(bad, want, cuts[c] >= 8 && cuts[c] < 8 + hl ? "header length" : NULL);
    }
    free(b);
}

Test(safetensors, garbage_and_oversized_header_length)
{
    char p[1024];
    path_in(p, sizeof p, "garbage.safetensors");
    unsigned char b[64];
    memset(b, 0xff, sizeof b);
    spit(p, b, sizeof b);
    expect_format_error(p, "offset 0", "limit");
    memset(b, ' ', sizeof b);
    b[0] = 200; /* header length 200 + spaces: beyond the 64-byte file */
    memset(b + 1, 0, 7);
    spit(p, b, sizeof b);
    expect_format_error(p, "header length 200", "offset 64");
    memset(b, 0, 8);
    b[0] = 1;
    spit(p, b, sizeof b);
    expect_format_error(p, "header length 1", "too small");
}

Test(safetensors, bad_json_reports_file_offset)
{
    struct { const char *json; const char *needle; } cases[] = {
        { "{\"a\":", "file offset 16" },                         /* end of input, after padding */
        { "{\"a\":{\"dtype\":\"F32\",}}", "file offset 28" },    /* trailing comma */
        { "{\"a\" {}}", "file offset 13" },                                    /* missing colon */
        { "{\"a\\q\":{}}", "file offset 11" },                                 /* bad escape */
        { "[1,2]", "not a JSON object" },
        { "{\"a\":{}} x", "file offset 17" },                                  /* trailing text */
    };
    char p[1024];
    path_in(p, sizeof p, "badjson.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_crafted(p, cases[i].json, NULL, 0);
        expect_format_error(p, cases[i].needle, NULL);
    }
}

Test(safetensors, bad_entries_are_rejected)
{
    static const uint8_t data[16];
    struct { const char *json; size_t ndata; const char *needle; } cases[] = {
        { "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "unsupported dtype \"F16\"" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "need 12 bytes" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "non-negative integer" },
        { "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,1.5]}}", 2, "data_offsets" },
        { "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,0]}}", 2, "data_offsets" },
        { "{\"a\":{\"dtype\":\"U8\",\"shape\":[2]}}", 2, "exactly dtype" },
        { "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2],\"x\":1}}", 2, "unknown field" },
        { "{\"__metadata__\":{\"k\":3}}", 0, "metadata entry \"k\"" },
        { "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
          "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2, "duplicate tensor name 'a'" },
        { "{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "NUL" },
        { "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, "at most 8" },
    };
    char p[1024];
    path_in(p, sizeof p, "badentry.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_crafted(p, cases[i].json, data, cases[i].ndata);
        expect_format_error(p, cases[i].needle, "offset");
    }
}

Test(safetensors, overlapping_gapped_and_trailing_data)
{
    static const uint8_t data[16];
    char p[1024];
    path_in(p, sizeof p, "layout.safetensors");
    /* header below is 112 bytes after padding: data starts at file offset 120 */
    write_crafted(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", data, 12);
    expect_format_error(p, "overlap", "file offset 124");
    write_crafted(p, "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                     "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,12]}}", data, 12);
    expect_format_error(p, "gap", "offset");
    write_crafted(p, "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", data, 12);
    expect_format_error(p, "trailing", "offset");
    write_crafted(p, "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", data, 8);
    expect_format_error(p, "gap", "offset");
}

Test(safetensors, write_into_missing_directory_fails_cleanly)
{
    char p[1024];
    path_in(p, sizeof p, "no/such/dir/ckpt.safetensors");
    sq_st_file f = sample();
    sq_status st = sq_st_write(p, &f);
    const char *msg = sq_last_error();
    cr_assert_eq(st, SQ_EIO, "status %s (%s)", sq_status_str(st), msg);
    cr_expect(strstr(msg, p), "message does not name the path: %s", msg);
    cr_expect(strstr(msg, strerror(ENOENT)), "message lacks the errno text: %s", msg);
    cr_expect_eq(count_entries(g_dir, NULL, 0), 0, "something was created");
    cr_expect_eq(sq_write_file_atomic(p, "x", 1), SQ_EIO);
}

Test(safetensors, write_into_readonly_directory_fails_cleanly)
{
    if (geteuid() == 0) {
        teardown(); /* a skipped test does not run .fini */
        cr_skip_test("%s", "running as root, which bypasses directory permissions; the "
                     "SQAKD_TEST_FAIL_WRITE_AT and missing-directory tests cover this path");
    }
    char p[1024];
    path_in(p, sizeof p, "ckpt.safetensors");
    cr_assert_eq(chmod(g_dir, 0555), 0);
    sq_st_file f = sample();
    sq_status st = sq_st_write(p, &f);
    chmod(g_dir, 0700);
    cr_assert_eq(st, SQ_EIO, "status %s (%s)", sq_status_str(st), sq_last_error());
    cr_expect(strstr(sq_last_error(), p), "message does not name the path: %s", sq_last_error());
    cr_expect_eq(count_entries(g_dir, NULL, 0), 0, "something was created");
}

Test(safetensors, failed_write_keeps_the_previous_file)
{
    char p[1024], name[256], lim[32];
    path_in(p, sizeof p, "ckpt.safetensors");
    write_sample(p);
    size_t n0;
    unsigned char *before = slurp(p, &n0);
    /* a different checkpoint that should replace it */
    float other[5] = { 9, 8, 7, 6, 5 };
    sq_st_tensor t = mk("other", SQ_ST_F32, 1, (int64_t[]){ 5 }, other);
    sq_st_file g = { .ntensors = 1, .tensors = &t };
    size_t limits[] = { 0, 3, 8, 20, 40, 60 };
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        snprintf(lim, sizeof lim, "%zu", limits[i]);
        setenv("SQAKD_TEST_FAIL_WRITE_AT", lim, 1);
        sq_status st = sq_st_write(p, &g);
        cr_assert_eq(st, SQ_EIO, "limit %zu: status %s", limits[i], sq_status_str(st));
        cr_expect(strstr(sq_last_error(), p) && strstr(sq_last_error(), strerror(ENOSPC)),
                  "limit %zu: message lacks path or errno text: %s", limits[i], sq_last_error());
        cr_assert_eq(count_entries(g_dir, name, sizeof name), 1, "limit %zu: temporary file left", limits[i]);
        cr_expect_str_eq(name, "ckpt.safetensors");
        size_t n1;
        unsigned char *after = slurp(p, &n1);
        cr_assert_eq(n1, n0, "limit %zu: previous file changed size", limits[i]);
        cr_expect_eq(memcmp(before, after, n0), 0, "limit %zu: previous file changed", limits[i]);
        free(after);
    }
    setenv("SQAKD_TEST_FAIL_WRITE_AT", "91", 1); /* 8 + 64-byte padded header + 20 bytes = 92 */
    cr_expect_eq(sq_st_write(p, &g), SQ_EIO);
    setenv("SQAKD_TEST_FAIL_WRITE_AT", "92", 1); /* exactly the file size: succeeds */
    cr_assert_eq(sq_st_write(p, &g), SQ_OK, "%s", sq_last_error());
    unsetenv("SQAKD_TEST_FAIL_WRITE_AT");
    sq_st_file r;
    cr_assert_eq(sq_st_read(p, &r), SQ_OK, "%s", sq_last_error());
    cr_expect(r.ntensors == 1 && sq_st_find(&r, "other") && ((float *)r.tensors[0].data)[4] == 5.0f);
    sq_st_free(&r);
    free(before);
}

Test(safetensors, rename_onto_directory_fails_and_removes_temp)
{
    char p[1024];
    path_in(p, sizeof p, "taken");
    cr_assert_eq(mkdir(p, 0700), 0);
    sq_status st = sq_write_file_atomic(p, "hello", 5);
    cr_assert_eq(st, SQ_EIO, "status %s", sq_status_str(st));
    cr_expect(strstr(sq_last_error(), "renaming"), "%s", sq_last_error());
    cr_expect_eq(count_entries(g_dir, NULL, 0), 1, "temporary file left behind");
}

Test(safetensors, write_file_atomic_round_trip_and_hook)
{
    char p[1024];
    path_in(p, sizeof p, "result.json");
    const char *a = "{\"acc\":0.5}\n", *b = "{\"acc\":0.75, \"longer\":true}\n";
    cr_assert_eq(sq_write_file_atomic(p, a, strlen(a)), SQ_OK, "%s", sq_last_error());
    setenv("SQAKD_TEST_FAIL_WRITE_AT", "10", 1);
    cr_assert_eq(sq_write_file_atomic(p, b, strlen(b)), SQ_EIO);
    unsetenv("SQAKD_TEST_FAIL_WRITE_AT");
    size_t n;
    unsigned char *got = slurp(p, &n);
    cr_expect(n == strlen(a) && !memcmp(got, a, n), "previous content changed");
    free(got);
    cr_assert_eq(sq_write_file_atomic(p, b, strlen(b)), SQ_OK, "%s", sq_last_error());
    got = slurp(p, &n);
    cr_expect(n == strlen(b) && !memcmp(got, b, n), "new content not written");
    free(got);
    cr_expect_eq(count_entries(g_dir, NULL, 0), 1);
}

Test(safetensors, writer_rejects_bad_arguments)
{
    char p[1024];
    path_in(p, sizeof p, "bad.safetensors");
    float x[4] = { 0 };
    sq_st_tensor t[2] = { mk("a", SQ_ST_F32, 1, (int64_t[]){ 4 }, x), mk("a", SQ_ST_F32, 1, (int64_t[]){ 4 }, x) };
    sq_st_file f = { .ntensors = 2, .tensors = t };
    cr_expect_eq(sq_st_write(p, &f), SQ_EARG, "duplicate names accepted");
    f.ntensors = 1;
    t[0].nbytes = 12;
    cr_expect_eq(sq_st_write(p, &f), SQ_EARG, "nbytes mismatch accepted");
    t[0].nbytes = 16;
    t[0].name = "__metadata__";
    cr_expect_eq(sq_st_write(p, &f), SQ_EARG, "reserved name accepted");
    t[0].name = "a";
    t[0].dtype = (sq_st_dtype)7;
    cr_expect_eq(sq_st_write(p, &f), SQ_EARG, "invalid dtype accepted");
    cr_expect_eq(count_entries(g_dir, NULL, 0), 0, "a file was created");
}

/* ======================================= json ======================================= */

static sq_json *parse_ok(const char *text)
{
    sq_json *v;
    sq_status st = sq_json_parse(text, strlen(text), &v, NULL);
    cr_assert_eq(st, SQ_OK, "parse '%s': %s", text, sq_last_error());
    return v;
}

Test(json, parses_values_and_lookups)
{
    sq_json *v = parse_ok(" {\"a\": [1, -0, 2.5e2, -12.25e-2, 1E+2], \"b\": {\"c\": true, \"d\": false,"
                          " \"e\": null}, \"s\": \"txt\", \"a\": 9, \"big\": 9007199254740992}\n\t");
    cr_assert_eq(v->type, SQ_JSON_OBJ);
    cr_expect_eq(sq_json_len(v), 5);
    const sq_json *a = sq_json_get(v, "a");
    cr_assert_eq(sq_json_len(a), 5, "first 'a' member wins");
    const double want[] = { 1, 0, 250, -0.1225, 100 };
    for (int i = 0; i < 5; i++) /* decimal literals are parsed with correct rounding: exact compare */
        cr_expect_eq(sq_json_num(sq_json_at(a, i), 99), want[i], "a[%d] = %.17g, want %.17g", i,
                     sq_json_num(sq_json_at(a, i), 99), want[i]);
    cr_expect(signbit(sq_json_num(sq_json_at(a, 1), 0)), "-0 keeps its sign");
    cr_expect_null(sq_json_at(a, 5));
    cr_expect_null(sq_json_at(a, -1));
    const sq_json *b = sq_json_get(v, "b");
    cr_expect_eq(sq_json_bool(sq_json_get(b, "c"), 0), 1);
    cr_expect_eq(sq_json_bool(sq_json_get(b, "d"), 1), 0);
    cr_expect_eq(sq_json_get(b, "e")->type, SQ_JSON_NULL);
    cr_expect_null(sq_json_get(b, "zz"));
    cr_expect_str_eq(sq_json_str(sq_json_get(v, "s")), "txt");
    cr_expect_null(sq_json_str(a), "array is not a string");
    cr_expect_eq(sq_json_num(sq_json_get(v, "s"), -7), -7, "fallback for a non-number");
    cr_expect_eq(sq_json_len(sq_json_get(v, "s")), 0);
    int64_t iv = 0;
    cr_expect(sq_json_int(sq_json_get(v, "big"), &iv) && iv == 9007199254740992LL);
    cr_expect(!sq_json_int(sq_json_at(a, 3), &iv), "-0.1225 is not an integer");
    cr_expect_eq(sq_json_get(v, "b")->offset, 45, "offset of member b's value");
    cr_expect_null(sq_json_get(NULL, "a"));
    sq_json_free(v);
    v = parse_ok("[]");
    cr_expect(v->type == SQ_JSON_ARR && v->n == 0);
    sq_json_free(v);
    v = parse_ok("{}");
    cr_expect(v->type == SQ_JSON_OBJ && v->n == 0);
    sq_json_free(v);
}

Test(json, string_escapes_decode_to_utf8)
{
    sq_json *v = parse_ok("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\", \"\\u00e9\\u20AC\", \"\\ud83d\\ude00\","
                          " \"a\\u0000b\", \"raw \xc3\xa9\xf0\x9f\x98\x80\"]");
    cr_expect_str_eq(sq_json_str(sq_json_at(v, 0)), "\"\\/\b\f\n\r\t");
    cr_expect_str_eq(sq_json_str(sq_json_at(v, 1)), "\xc3\xa9\xe2\x82\xac");
    cr_expect_str_eq(sq_json_str(sq_json_at(v, 2)), "\xf0\x9f\x98\x80");
    const sq_json *z = sq_json_at(v, 3);
    cr_expect(z->len == 3 && !memcmp(z->str, "a\0b", 3), "\\u0000 kept with len %zu", z->len);
    cr_expect_str_eq(sq_json_str(sq_json_at(v, 4)), "raw \xc3\xa9\xf0\x9f\x98\x80");
    sq_json_free(v);
}

Test(json, errors_report_byte_offsets)
{
    char deep[400];
    memset(deep, '[', 300);
    deep[300] = '\0';
    struct { const char *text; size_t off; } cases[] = {
        { "", 0 }, { "{", 1 }, { "[1,]", 3 }, { "{\"a\" 1}", 5 }, { "{\"a\":1,}", 7 }, { "[1 2]", 3 },
        { "\"abc", 0 }, { "\"a\\x\"", 2 }, { "\"\\u12G4\"", 5 }, { "\"\\ud800\"", 1 },
        { "\"\\udc00\"", 1 }, { "\"\\ud800\\u0041\"", 7 }, { "01", 1 }, { "1.", 2 }, { "-", 1 },
        { "tru", 0 }, { "[1] x", 4 }, { "\"a\x01\"", 2 }, { "\"\xff\"", 1 }, { "\"\xed\xa0\x80\"", 1 },
        { "1e999", 0 }, { "{1:2}", 1 }, { "[nul]", 1 }, { "+1", 0 }, { deep, 257 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sq_json *v = (sq_json *)1;
        sq_json_error e;
        sq_status st = sq_json_parse(cases[i].text, strlen(cases[i].text), &v, &e);
        cr_expect_eq(st, SQ_EFORMAT, "case %zu '%s' parsed", i, cases[i].text);
        cr_expect_null(v, "case %zu: output not cleared", i);
        cr_expect_eq(e.offset, cases[i].off, "case %zu '%s': offset %zu, want %zu (%s)", i,
                     cases[i].text, e.offset, cases[i].off, e.msg);
        char want[64];
        snprintf(want, sizeof want, "at byte %zu", cases[i].off);
        cr_expect(strstr(sq_last_error(), want), "case %zu: message '%s' lacks '%s'", i, sq_last_error(), want);
        if (st == SQ_OK) sq_json_free(v);
    }
}

Test(json, writer_escapes_and_formats)
{
    sq_jbuf b;
    sq_jbuf_init(&b);
    sq_jbuf_begin_obj(&b);
    sq_jbuf_kv_str(&b, "a\"b", "q\"\\\n\t\x01/\xc3\xa9");
    sq_jbuf_kv_num(&b, "n", 1.5);
    sq_jbuf_kv_num(&b, "nan", NAN);
    sq_jbuf_kv_num(&b, "inf", -INFINITY);
    sq_jbuf_kv_num(&b, "f", 0.1f);
    sq_jbuf_kv_int(&b, "i", -9007199254740993LL);
    sq_jbuf_kv_bool(&b, "t", 1);
    sq_jbuf_kv_bool(&b, "no", 0);
    sq_jbuf_kv_str(&b, "null", NULL);
    sq_jbuf_key(&b, "arr");
    sq_jbuf_begin_arr(&b);
    sq_jbuf_int(&b, 1);
    sq_jbuf_num(&b, 1e-7);
    sq_jbuf_begin_obj(&b);
    sq_jbuf_key(&b, "x");
    sq_jbuf_null(&b);
    sq_jbuf_end_obj(&b);
    sq_jbuf_begin_arr(&b);
    sq_jbuf_end_arr(&b);
    sq_jbuf_strn(&b, "a\0b", 3);
    sq_jbuf_end_arr(&b);
    sq_jbuf_key(&b, "e");
    sq_jbuf_begin_obj(&b);
    sq_jbuf_end_obj(&b);
    sq_jbuf_end_obj(&b);
    const char *want = "{\"a\\\"b\":\"q\\\"\\\\\\n\\t\\u0001/\xc3\xa9\",\"n\":1.5,\"nan\":null,\"inf\":null,"
                       "\"f\":0.100000001,\"i\":-9007199254740993,\"t\":true,\"no\":false,\"null\":null,"
                       "\"arr\":[1,1e-07,{\"x\":null},[],\"a\\u0000b\"],\"e\":{}}";
    cr_expect_str_eq(sq_jbuf_cstr(&b), want);
    cr_expect_eq(b.len, strlen(want));
    sq_json *v = parse_ok(sq_jbuf_cstr(&b));
    cr_expect_str_eq(sq_json_str(sq_json_get(v, "a\"b")), "q\"\\\n\t\x01/\xc3\xa9");
    cr_expect_eq(sq_json_len(sq_json_get(v, "arr")), 5);
    sq_json_free(v);
    sq_jbuf_reset(&b);
    sq_jbuf_begin_obj(&b);
    sq_jbuf_kv_int(&b, "step", 3);
    sq_jbuf_kv_num(&b, "loss", 123456789012.0);
    sq_jbuf_end_obj(&b);
    sq_jbuf_raw(&b, "\n", 1);
    cr_expect_str_eq(sq_jbuf_cstr(&b), "{\"step\":3,\"loss\":1.23456789e+11}\n");
    sq_jbuf_free(&b);
}

Test(json, writer_parser_round_trip_random_strings)
{
    unsigned s = 12345u; /* fixed LCG seed */
    sq_jbuf b;
    sq_jbuf_init(&b);
    for (int iter = 0; iter < 200; iter++) {
        char str[64];
        int n = 0, len = (int)((s = s * 1103515245u + 12345u) >> 16) % 40;
        while (n < len) {
            unsigned r = (s = s * 1103515245u + 12345u) >> 16;
            if (r % 5 == 0 && n + 2 <= len) { str[n++] = (char)0xc3; str[n++] = (char)(0x80 | (r >> 3) % 64); }
            else str[n++] = (char)(1 + (r >> 4) % 127);
        }
        sq_jbuf_reset(&b);
        sq_jbuf_begin_arr(&b);
        sq_jbuf_strn(&b, str, (size_t)n);
        sq_jbuf_end_arr(&b);
        sq_json *v;
        cr_assert_eq(sq_json_parse(b.buf, b.len, &v, NULL), SQ_OK, "iter %d: %s in %s", iter, sq_last_error(), b.buf);
        const sq_json *e = sq_json_at(v, 0);
        cr_assert(e && e->len == (size_t)n && !memcmp(e->str, str, (size_t)n), "iter %d: round trip of %s", iter, b.buf);
        sq_json_free(v);
    }
    sq_jbuf_free(&b);
}

Test(json, parse_file_names_path_and_offset)
{
    char dir[512], p[1024];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/sqakd_json_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert(mkdtemp(dir));
    snprintf(p, sizeof p, "%s/r.json", dir);
    spit(p, "{\"acc\": 0.5}\n", 13);
    sq_json *v;
    cr_assert_eq(sq_json_parse_file(p, &v), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(sq_json_num(sq_json_get(v, "acc"), 0), 0.5);
    sq_json_free(v);
    spit(p, "{\"acc\": 0.5,\n}", 14);
    cr_expect_eq(sq_json_parse_file(p, &v), SQ_EFORMAT);
    cr_expect(strstr(sq_last_error(), p) && strstr(sq_last_error(), "byte offset 13"), "%s", sq_last_error());
    unlink(p);
    cr_expect_eq(sq_json_parse_file(p, &v), SQ_EIO);
    cr_expect(strstr(sq_last_error(), p), "%s", sq_last_error());
    rmdir(dir);
}
