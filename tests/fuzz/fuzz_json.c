/* fuzz_json.c: libFuzzer harness of the JSON parser (sq_json_parse) on the raw input bytes. A
   document that parses is walked with the lookup helpers, written back with the sq_jbuf writer
   (when it nests at most 63 levels, the writer's documented limit) and must parse again to the
   same shape; a failure must give an offset inside the text and one printable error line. */
#include "fuzz_util.h"
#include "sqakd/json.h"
#include <math.h>

static int depth_of(const sq_json *v)
{
    int d = 0;
    for (int i = 0; i < sq_json_len(v); i++) {
        int k = depth_of(&v->items[i]);
        if (k > d) d = k;
    }
    return d + (v->type == SQ_JSON_ARR || v->type == SQ_JSON_OBJ);
}

static void write_value(const sq_json *v, sq_jbuf *b)
{
    switch (v->type) {
    case SQ_JSON_NULL: sq_jbuf_null(b); break;
    case SQ_JSON_BOOL: sq_jbuf_bool(b, sq_json_bool(v, 0)); break;
    case SQ_JSON_NUM: sq_jbuf_num(b, sq_json_num(v, 0)); break;
    case SQ_JSON_STR: sq_jbuf_strn(b, v->str, v->len); break;
    case SQ_JSON_ARR:
        sq_jbuf_begin_arr(b);
        for (int i = 0; i < v->n; i++) write_value(sq_json_at(v, i), b);
        sq_jbuf_end_arr(b);
        break;
    case SQ_JSON_OBJ:
        sq_jbuf_begin_obj(b);
        for (int i = 0; i < v->n; i++) {
            sq_jbuf_key(b, v->keys[i]);
            write_value(&v->items[i], b);
        }
        sq_jbuf_end_obj(b);
        break;
    }
}

/* same types, counts and (for strings and numbers) values; keys compared up to a NUL, which the
   writer's C-string keys stop at */
static void expect_same(const sq_json *a, const sq_json *b)
{
    if (a->type != b->type || sq_json_len(a) != sq_json_len(b)) abort();
    if (a->type == SQ_JSON_STR && (a->len != b->len || memcmp(a->str, b->str, a->len))) abort();
    if (a->type == SQ_JSON_NUM && a->num != b->num) {
        /* %.9g keeps 9 significant digits */
        if (!(fabs(a->num - b->num) <= 1e-8 * fabs(a->num))) abort();
    }
    if (a->type == SQ_JSON_BOOL && a->boolean != b->boolean) abort();
    for (int i = 0; i < sq_json_len(a); i++) {
        if (a->type == SQ_JSON_OBJ && strcmp(a->keys[i], b->keys[i])) abort();
        expect_same(&a->items[i], &b->items[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sq_json *v;
    sq_json_error err;
    fz_clear_error();
    if (sq_json_parse((const char *)data, size, &v, &err) != SQ_OK) {
        if (v || err.offset > size) abort();
        fz_check_error_line();
        return 0;
    }
    for (int i = 0; i < sq_json_len(v); i++) {   /* the lookups agree with the tree */
        if (v->type == SQ_JSON_ARR && sq_json_at(v, i) != &v->items[i]) abort();
        if (v->type == SQ_JSON_OBJ && strlen(v->keys[i]) == v->key_lens[i] && !sq_json_get(v, v->keys[i]))
            abort();
    }
    int64_t iv;
    if (sq_json_int(v, &iv) && (double)iv != v->num) abort();
    if (depth_of(v) <= 63) {
        sq_jbuf b;
        sq_jbuf_init(&b);
        write_value(v, &b);
        sq_json *w;
        if (sq_json_parse(b.buf, b.len, &w, &err) != SQ_OK) {
            fz_fail("the writer's output does not parse: %s\n%s", err.msg, b.buf);
        }
        expect_same(v, w);
        sq_json_free(w);
        sq_jbuf_free(&b);
    }
    sq_json_free(v);
    return 0;
}
