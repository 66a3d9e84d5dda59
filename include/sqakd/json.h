/* json.h: a tiny JSON library. A DOM parser (objects keep member order; numbers are doubles;
   strings are unescaped to UTF-8, \uXXXX and surrogate pairs included) with lookup helpers, and
   sq_jbuf, a writer that builds JSON text into a growable buffer (metrics lines, result files,
   safetensors headers). Parse errors report the byte offset into the text. */
#ifndef SQAKD_JSON_H
#define SQAKD_JSON_H

#include <stdint.h>
#include "sqakd/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { SQ_JSON_NULL = 0, SQ_JSON_BOOL, SQ_JSON_NUM, SQ_JSON_STR, SQ_JSON_ARR, SQ_JSON_OBJ } sq_json_type;

typedef struct sq_json sq_json;
struct sq_json {
    sq_json_type type;
    size_t offset;     /* byte offset of the value's first character in the parsed text */
    int boolean;       /* SQ_JSON_BOOL */
    double num;        /* SQ_JSON_NUM */
    char *str;         /* SQ_JSON_STR: UTF-8, NUL-terminated; may hold NULs from \u0000 */
    size_t len;        /* SQ_JSON_STR: byte length without the terminator */
    int n;             /* SQ_JSON_ARR / SQ_JSON_OBJ: element / member count */
    sq_json *items;    /* elements, or member values in document order */
    char **keys;       /* SQ_JSON_OBJ: member keys (unescaped, NUL-terminated) */
    size_t *key_lens;  /* SQ_JSON_OBJ: key byte lengths (a key may hold NULs from \u0000) */
};

typedef struct sq_json_error {
    size_t offset;     /* byte offset into the text where parsing failed */
    char msg[96];      /* what was wrong there */
} sq_json_error;

/* Parses exactly one JSON value (surrounding whitespace allowed) from text[0..len). On success
   *out is a tree to release with sq_json_free. On failure returns SQ_EFORMAT, *out is NULL, err
   (may be NULL) gets the offset and reason, and sq_last_error() says "JSON parse error at byte N:
   reason". Nesting deeper than 256 levels is rejected. */
sq_status sq_json_parse(const char *text, size_t len, sq_json **out, sq_json_error *err);
/* Reads and parses a whole file; errors name the path and the byte offset. */
sq_status sq_json_parse_file(const char *path, sq_json **out);
void sq_json_free(sq_json *v);

/* Lookup helpers; each accepts NULL and wrong types (returning NULL / the fallback). */
const sq_json *sq_json_get(const sq_json *obj, const char *key);   /* first member named key */
const sq_json *sq_json_at(const sq_json *arr, int i);              /* element i of an array */
int sq_json_len(const sq_json *v);                                 /* array/object size, else 0 */
double sq_json_num(const sq_json *v, double fallback);             /* number value */
const char *sq_json_str(const sq_json *v);                         /* string value or NULL */
int sq_json_bool(const sq_json *v, int fallback);                  /* true/false value */
/* Exact integer value: 1 and *out set when v is a number with an integral value in
   [-2^53, 2^53], else 0. */
int sq_json_int(const sq_json *v, int64_t *out);

/* Writer. Commas and colons are inserted automatically; inside an object call sq_jbuf_key then
   one value call (or a begin/end pair). Strings are escaped (", \, control characters); numbers
   use %.9g and non-finite numbers become null. Nesting up to 63 levels. Buffer growth aborts only on
   genuine host OOM. */
typedef struct sq_jbuf {
    char *buf;         /* NUL-terminated text so far */
    size_t len, cap;
    int depth;
    int after_key;
    unsigned char has_items[64];   /* per nesting level: a value was already written */
} sq_jbuf;

void sq_jbuf_init(sq_jbuf *b);
void sq_jbuf_free(sq_jbuf *b);
void sq_jbuf_reset(sq_jbuf *b);                       /* empty the text, keep the storage */
const char *sq_jbuf_cstr(const sq_jbuf *b);
void sq_jbuf_begin_obj(sq_jbuf *b);
void sq_jbuf_end_obj(sq_jbuf *b);
void sq_jbuf_begin_arr(sq_jbuf *b);
void sq_jbuf_end_arr(sq_jbuf *b);
void sq_jbuf_key(sq_jbuf *b, const char *key);
void sq_jbuf_str(sq_jbuf *b, const char *s);          /* NULL writes null */
void sq_jbuf_strn(sq_jbuf *b, const char *s, size_t n);
void sq_jbuf_num(sq_jbuf *b, double v);
void sq_jbuf_int(sq_jbuf *b, int64_t v);
void sq_jbuf_bool(sq_jbuf *b, int v);
void sq_jbuf_null(sq_jbuf *b);
void sq_jbuf_raw(sq_jbuf *b, const char *text, size_t n);   /* appends verbatim, no separator */
/* Key + value shorthands for flat records such as metrics lines. */
void sq_jbuf_kv_str(sq_jbuf *b, const char *key, const char *s);
void sq_jbuf_kv_num(sq_jbuf *b, const char *key, double v);
void sq_jbuf_kv_int(sq_jbuf *b, const char *key, int64_t v);
void sq_jbuf_kv_bool(sq_jbuf *b, const char *key, int v);

#ifdef __cplusplus
}
#endif
#endif
