/* test_safetensors_format.c: Criterion suite "safetensors" (declared with its fixture in
   test_safetensors_atomic.c): round trips of every dtype with metadata, byte compatibility with
   tools/load_checkpoint.py in both directions, torn and corrupt files rejected with the byte
   offset. Files go under the suite's per-test scratch directory (sqt_scratch_dir). */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sqakd/checkpoint.h"
#include "sqakd/json.h"
#include "sqakd/safetensors.h"
#include "util_fixtures.h"

#define PYTHON "/usr/bin/python3"
#define CHECK_SCRIPT "tools/load_checkpoint.py"

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

static void expect_same_as_sample(const sq_st_file *r)
{
    sq_st_file f = sqt_st_sample();
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
    sqt_path_in(p, sizeof p, "sample.safetensors");
    sqt_st_write_sample(p);
    sq_st_file r;
    sq_status st = sq_st_read(p, &r);
    cr_assert_eq(st, SQ_OK, "sq_st_read: %s", sq_last_error());
    expect_same_as_sample(&r);
    sq_st_free(&r);
    cr_expect_eq(r.ntensors, 0);
    cr_expect_null(r.blob);

    size_t n;
    unsigned char *b = sqt_slurp(p, &n);
    unsigned long long hl = 0, data = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | b[i];
    sq_st_file f = sqt_st_sample();
    for (int i = 0; i < f.ntensors; i++) data += f.tensors[i].nbytes;
    cr_expect_eq((8 + hl) % 8, 0, "data starts at %llu, not 8-byte aligned", 8 + hl);
    cr_expect_eq(n, 8 + hl + data, "file size %zu vs 8 + header %llu + data %llu", n, hl, data);
    cr_expect_eq(b[8 + hl - 1] == ' ' || b[8 + hl - 1] == '}', 1, "header must end in '}' or padding");
    free(b);
    cr_expect_eq(sqt_count_entries(sqt_scratch_dir, NULL, 0), 1, "temporary file left behind");
}

Test(safetensors, empty_file_round_trip)
{
    char p[1024];
    sqt_path_in(p, sizeof p, "empty.safetensors");
    sq_st_file f = { 0 };
    cr_assert_eq(sq_st_write(p, &f), SQ_OK, "%s", sq_last_error());
    sq_st_file r;
    cr_assert_eq(sq_st_read(p, &r), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(r.ntensors, 0);
    cr_expect_eq(r.nmeta, 0);
    sq_st_free(&r);
    size_t n;
    unsigned char *b = sqt_slurp(p, &n);
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
    sqt_path_in(p, sizeof p, "sample.safetensors");
    sqt_st_write_sample(p);
    snprintf(cmd, sizeof cmd, PYTHON " " CHECK_SCRIPT " --check '%s' 2>&1", p);
    int rc = run_capture(cmd, &out);
    cr_assert_eq(rc, 0, "--check exited %d:\n%s", rc, out);
    sq_st_file f = sqt_st_sample();
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
    sqt_path_in(script, sizeof script, "w.py");
    sqt_path_in(p, sizeof p, "py.safetensors");
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
    sqt_path_in(good, sizeof good, "good.safetensors");
    sqt_path_in(bad, sizeof bad, "torn.safetensors");
    sqt_st_write_sample(good);
    size_t n;
    unsigned char *b = sqt_slurp(good, &n);
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
    sqt_path_in(p, sizeof p, "garbage.safetensors");
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
    sqt_path_in(p, sizeof p, "badjson.safetensors");
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
    sqt_path_in(p, sizeof p, "badentry.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_crafted(p, cases[i].json, data, cases[i].ndata);
        expect_format_error(p, cases[i].needle, "offset");
    }
}

Test(safetensors, overlapping_gapped_and_trailing_data)
{
    static const uint8_t data[16];
    char p[1024];
    sqt_path_in(p, sizeof p, "layout.safetensors");
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

/* Names and strings from the header reach error messages escaped: no terminal escape or line
   break from the file gets to the terminal. */
Test(safetensors, control_characters_in_names_are_escaped)
{
    static const uint8_t data[4];
    struct { const char *json; size_t ndata; const char *needle; } cases[] = {
        { "{\"evil\\u001b[2J\\n\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
          "tensor 'evil\\x1b[2J\\x0a' has unsupported dtype" },
        { "{\"a\":{\"dtype\":\"\\u001b]0;title\\u0007\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
          "dtype \"\\x1b]0;title\\x07\"" },
        { "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4],\"\\r\\u007f\":1}}", 4,
          "unknown field \"\\x0d\\x7f\"" },
        { "{\"__metadata__\":{\"k\\u009b1m\":3}}", 0, "metadata entry \"k\\xc2\\x9b1m\"" },
        { "{\"x\\ty\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
          "\"x\\ty\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}", 4, "duplicate tensor name 'x\\x09y'" },
    };
    char p[1024];
    sqt_path_in(p, sizeof p, "escapes.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_crafted(p, cases[i].json, data, cases[i].ndata);
        expect_format_error(p, cases[i].needle, NULL);
        sqt_expect_error_printable();
    }
}

/* The same for checkpoint metadata quoted by sq_ckpt_read_meta. */
Test(safetensors, checkpoint_metadata_in_errors_is_escaped)
{
    char p[1024];
    sqt_path_in(p, sizeof p, "meta.safetensors");
    write_crafted(p, "{\"__metadata__\":{\"format\":\"sqakd\",\"arch\":\"smallcnn\",\"input_shape\":"
                     "\"\\u001b]0;pwned\\u0007\",\"classes\":\"10\\n\"}}", NULL, 0);
    sq_ckpt_meta m;
    cr_assert_eq(sq_ckpt_read_meta(p, &m), SQ_EFORMAT);
    sqt_expect_error_has("metadata 'input_shape' is '\\x1b]0;pwned\\x07'");
    sqt_expect_error_printable();
    write_crafted(p, "{\"__metadata__\":{\"format\":\"sqakd\",\"arch\":\"smallcnn\",\"input_shape\":"
                     "\"1,28,28\",\"classes\":\"10\",\"quantizer\":\"\\u001b[5mlsq\"}}", NULL, 0);
    cr_assert_eq(sq_ckpt_read_meta(p, &m), SQ_EFORMAT);
    sqt_expect_error_has("metadata 'quantizer' is '\\x1b[5mlsq'");
    sqt_expect_error_printable();
}

/* sq_printable itself: controls escaped, UTF-8 kept whole, long text cut with "..." and never
   inside an escape or a character. */
Test(safetensors, printable_helper)
{
    char b[64];
    cr_expect_str_eq(sq_printable("a\x1b[31m\n\x7f", b, sizeof b), "a\\x1b[31m\\x0a\\x7f");
    cr_expect_str_eq(sq_printable("caf\xc3\xa9 \xc2\x9b\xc2\xa0", b, sizeof b), "caf\xc3\xa9 \\xc2\\x9b\xc2\xa0");
    cr_expect_str_eq(sq_printable(NULL, b, sizeof b), "(null)");
    cr_expect_str_eq(sq_printable("abcdef", b, 7), "abcdef");
    cr_expect_str_eq(sq_printable("abcdefg", b, 7), "abc...");
    cr_expect_str_eq(sq_printable("ab\ncd", b, 9), "ab\\x0acd");   /* fits exactly */
    cr_expect_str_eq(sq_printable("ab\ncd", b, 8), "ab...");       /* "ab\x0a..." needs 11 */
    cr_expect_str_eq(sq_printable("ab\xc3\xa9zzzz", b, 8), "ab\xc3\xa9...");
    cr_expect_str_eq(sq_printable("ab\xc3\xa9zzzz", b, 7), "ab...");   /* é not split */
    cr_expect_str_eq(sq_printable("abc", b, 1), "");
}
