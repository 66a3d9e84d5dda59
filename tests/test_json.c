/* test_json.c: Criterion suite "json": the DOM parser (values, lookups, escapes decoded to
   UTF-8, errors with byte offsets, files named in errors) and the sq_jbuf writer (escapes,
   number formats, round trip of random strings). */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sqakd/json.h"

static void spit(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f, "open %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

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
