/* json.c: strict JSON DOM parser (RFC 8259: UTF-8 validated, \uXXXX with surrogate pairs, no
   trailing commas, no comments) with lookup helpers, and the sq_jbuf JSON text writer. */
#include "sqakd/json.h"
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQ_JSON_MAX_DEPTH 256

typedef struct parser {
    const unsigned char *s;
    size_t len, pos;
    sq_json_error *err;
} parser;

static int fail(parser *p, size_t at, const char *msg)
{
    p->err->offset = at;
    snprintf(p->err->msg, sizeof p->err->msg, "%s", msg);
    return -1;
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static void *xrealloc(void *ptr, size_t n)
{
    void *q = realloc(ptr, n ? n : 1);
    if (!q) { fprintf(stderr, "sqakd: out of host memory (%zu bytes)\n", n); exit(3); }
    return q;
}

/* Length of the valid UTF-8 sequence starting at p (avail bytes left), or 0 when invalid. */
static int utf8_seq_len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    int n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 0;
    if ((size_t)n > avail) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (int i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return n;
}

static int put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int hex4(parser *p, size_t at, unsigned *out)
{
    unsigned v = 0;
    if (at + 4 > p->len) return fail(p, p->len, "unexpected end of input in \\u escape");
    for (int i = 0; i < 4; i++) {
        unsigned char c = p->s[at + i];
        unsigned d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return fail(p, at + i, "invalid hex digit in \\u escape");
        v = v * 16 + d;
    }
    *out = v;
    return 0;
}

/* Parses a string starting at the opening quote; *out is malloc'd, NUL-terminated. */
static int parse_string(parser *p, char **out, size_t *out_len)
{
    size_t start = ++p->pos, end = start;
    while (end < p->len && p->s[end] != '"') end += (p->s[end] == '\\') ? 2 : 1;
    if (end >= p->len) return fail(p, start - 1, "unterminated string");
    char *o = xrealloc(NULL, end - start + 1);
    size_t n = 0, i = start;
    while (i < end) {
        unsigned char c = p->s[i];
        if (c < 0x20) { free(o); return fail(p, i, "unescaped control character in string"); }
        if (c != '\\') {
            int k = utf8_seq_len(p->s + i, end - i);
            if (!k) { free(o); return fail(p, i, "invalid UTF-8 in string"); }
            memcpy(o + n, p->s + i, (size_t)k);
            n += (size_t)k;
            i += (size_t)k;
            continue;
        }
        unsigned char e = p->s[i + 1];
        static const char names[] = "\"\\/bfnrt", values[] = "\"\\/\b\f\n\r\t";
        const char *simple = e ? strchr(names, e) : NULL;
        if (simple) {
            o[n++] = values[simple - names];
            i += 2;
            continue;
        }
        if (e != 'u') { free(o); return fail(p, i, "invalid escape in string"); }
        unsigned cp, lo;
        if (hex4(p, i + 2, &cp)) { free(o); return -1; }
        size_t esc_at = i;
        i += 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF) { free(o); return fail(p, esc_at, "unpaired low surrogate"); }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (i + 1 >= end || p->s[i] != '\\' || p->s[i + 1] != 'u') {
                free(o);
                return fail(p, esc_at, "unpaired high surrogate");
            }
            if (hex4(p, i + 2, &lo)) { free(o); return -1; }
            if (lo < 0xDC00 || lo > 0xDFFF) { free(o); return fail(p, i, "invalid low surrogate"); }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
        }
        n += (size_t)put_utf8(o + n, cp);
    }
    o[n] = '\0';
    p->pos = end + 1;
    *out = o;
    *out_len = n;
    return 0;
}

static int parse_number(parser *p, sq_json *v)
{
    size_t i = p->pos, start = p->pos;
    const unsigned char *s = p->s;
    if (i < p->len && s[i] == '-') i++;
    if (i >= p->len || s[i] < '0' || s[i] > '9') return fail(p, i, "invalid number");
    if (s[i] == '0') i++;
    else while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    if (i < p->len && s[i] == '.') {
        i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9') return fail(p, i, "expected digit after '.'");
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9') return fail(p, i, "expected digit in exponent");
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    char small[64];
    size_t n = i - start;
    char *tmp = n < sizeof small ? small : xrealloc(NULL, n + 1);
    memcpy(tmp, s + start, n);
    tmp[n] = '\0';
    errno = 0;
    double d = strtod(tmp, NULL);
    int range = errno == ERANGE && isinf(d);
    if (tmp != small) free(tmp);
    if (range) return fail(p, start, "number out of double range");
    v->type = SQ_JSON_NUM;
    v->num = d;
    p->pos = i;
    return 0;
}

static void free_contents(sq_json *v)
{
    if (v->type == SQ_JSON_STR) free(v->str);
    if (v->type == SQ_JSON_ARR || v->type == SQ_JSON_OBJ) {
        for (int i = 0; i < v->n; i++) {
            free_contents(&v->items[i]);
            if (v->keys) free(v->keys[i]);
        }
        free(v->items);
        free(v->keys);
        free(v->key_lens);
    }
    memset(v, 0, sizeof *v);
}

static int parse_value(parser *p, sq_json *v, int depth);

static int literal(parser *p, const char *word)
{
    size_t n = strlen(word);
    if (p->pos + n > p->len || memcmp(p->s + p->pos, word, n) != 0)
        return fail(p, p->pos, "invalid literal (expected true, false or null)");
    p->pos += n;
    return 0;
}

static int parse_container(parser *p, sq_json *v, int depth, int is_obj)
{
    const char close = is_obj ? '}' : ']';
    int cap = 0;
    v->type = is_obj ? SQ_JSON_OBJ : SQ_JSON_ARR;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) { p->pos++; return 0; }
    for (;;) {
        if (v->n == cap) {
            cap = cap ? cap * 2 : 4;
            v->items = xrealloc(v->items, (size_t)cap * sizeof *v->items);
            if (is_obj) {
                v->keys = xrealloc(v->keys, (size_t)cap * sizeof *v->keys);
                v->key_lens = xrealloc(v->key_lens, (size_t)cap * sizeof *v->key_lens);
            }
        }
        sq_json *item = &v->items[v->n];
        memset(item, 0, sizeof *item);
        skip_ws(p);
        if (is_obj) {
            if (p->pos >= p->len || p->s[p->pos] != '"')
                return fail(p, p->pos, p->pos >= p->len ? "unexpected end of input, expected key"
                                                        : "expected string key");
            if (parse_string(p, &v->keys[v->n], &v->key_lens[v->n])) return -1;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                free(v->keys[v->n]);
                return fail(p, p->pos, "expected ':' after object key");
            }
            p->pos++;
        }
        int rc = parse_value(p, item, depth + 1);
        v->n++;   /* counted even on failure so free_contents releases the key and partial item */
        if (rc) return -1;
        skip_ws(p);
        if (p->pos >= p->len) return fail(p, p->pos, "unexpected end of input in container");
        unsigned char c = p->s[p->pos];
        if (c == close) { p->pos++; return 0; }
        if (c != ',') return fail(p, p->pos, is_obj ? "expected ',' or '}' in object"
                                                    : "expected ',' or ']' in array");
        p->pos++;
    }
}

static int parse_value(parser *p, sq_json *v, int depth)
{
    skip_ws(p);
    if (depth > SQ_JSON_MAX_DEPTH) return fail(p, p->pos, "nesting deeper than 256 levels");
    if (p->pos >= p->len) return fail(p, p->pos, "unexpected end of input, expected a value");
    v->offset = p->pos;
    switch (p->s[p->pos]) {
    case '{': return parse_container(p, v, depth, 1);
    case '[': return parse_container(p, v, depth, 0);
    case '"':
        v->type = SQ_JSON_STR;
        return parse_string(p, &v->str, &v->len);
    case 't': v->type = SQ_JSON_BOOL; v->boolean = 1; return literal(p, "true");
    case 'f': v->type = SQ_JSON_BOOL; v->boolean = 0; return literal(p, "false");
    case 'n': v->type = SQ_JSON_NULL; return literal(p, "null");
    default:
        if (p->s[p->pos] != '-' && (p->s[p->pos] < '0' || p->s[p->pos] > '9'))
            return fail(p, p->pos, "unexpected character, expected a value");
        return parse_number(p, v);
    }
}

sq_status sq_json_parse(const char *text, size_t len, sq_json **out, sq_json_error *err)
{
    sq_json_error local;
    parser p = { (const unsigned char *)text, len, 0, err ? err : &local };
    sq_json *v = sq_xcalloc(1, sizeof *v);
    *out = NULL;
    int rc = text ? parse_value(&p, v, 0) : fail(&p, 0, "no text");
    if (!rc) {
        skip_ws(&p);
        if (p.pos < p.len) rc = fail(&p, p.pos, "trailing characters after JSON value");
    }
    if (rc) {
        sq_json_free(v);
        sq_set_error("JSON parse error at byte %zu: %s", p.err->offset, p.err->msg);
        return SQ_EFORMAT;
    }
    *out = v;
    return SQ_OK;
}

sq_status sq_json_parse_file(const char *path, sq_json **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        sq_set_error("cannot open JSON file %s: %s; check the path", path, strerror(errno));
        return SQ_EIO;
    }
    size_t cap = 4096, n = 0, got;
    char *buf = sq_xmalloc(cap);
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = xrealloc(buf, cap *= 2);
    }
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        free(buf);
        sq_set_error("cannot read JSON file %s (read error after %zu bytes)", path, n);
        return SQ_EIO;
    }
    sq_json_error e;
    sq_status st = sq_json_parse(buf, n, out, &e);
    free(buf);
    if (st != SQ_OK)
        sq_set_error("%s: invalid JSON at byte offset %zu: %s; fix or regenerate the file", path,
                     e.offset, e.msg);
    return st;
}

void sq_json_free(sq_json *v)
{
    if (!v) return;
    free_contents(v);
    free(v);
}

const sq_json *sq_json_get(const sq_json *obj, const char *key)
{
    if (!obj || obj->type != SQ_JSON_OBJ || !key) return NULL;
    size_t kl = strlen(key);
    for (int i = 0; i < obj->n; i++)
        if (obj->key_lens[i] == kl && memcmp(obj->keys[i], key, kl) == 0) return &obj->items[i];
    return NULL;
}

const sq_json *sq_json_at(const sq_json *arr, int i)
{
    if (!arr || arr->type != SQ_JSON_ARR || i < 0 || i >= arr->n) return NULL;
    return &arr->items[i];
}

int sq_json_len(const sq_json *v)
{
    return v && (v->type == SQ_JSON_ARR || v->type == SQ_JSON_OBJ) ? v->n : 0;
}

double sq_json_num(const sq_json *v, double fallback)
{
    return v && v->type == SQ_JSON_NUM ? v->num : fallback;
}

const char *sq_json_str(const sq_json *v) { return v && v->type == SQ_JSON_STR ? v->str : NULL; }

int sq_json_bool(const sq_json *v, int fallback)
{
    return v && v->type == SQ_JSON_BOOL ? v->boolean : fallback;
}

int sq_json_int(const sq_json *v, int64_t *out)
{
    if (!v || v->type != SQ_JSON_NUM) return 0;
    double d = v->num;
    if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) || floor(d) != d) return 0;
    *out = (int64_t)d;
    return 1;
}

/* ---- writer ---- */

static void put(sq_jbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + n + 1 > cap) cap *= 2;
        b->buf = xrealloc(b->buf, cap);
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static int level(const sq_jbuf *b) { return b->depth < 63 ? b->depth : 63; }

static void pre_value(sq_jbuf *b)
{
    if (b->after_key) { b->after_key = 0; return; }
    if (b->depth > 0 && b->has_items[level(b)]) put(b, ",", 1);
    b->has_items[level(b)] = 1;
}

static void put_escaped(sq_jbuf *b, const char *s, size_t n)
{
    put(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char tmp[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20) { snprintf(tmp, sizeof tmp, "\\u%04x", c); esc = tmp; }
        }
        if (!esc) continue;
        put(b, s + run, i - run);
        put(b, esc, strlen(esc));
        run = i + 1;
    }
    put(b, s + run, n - run);
    put(b, "\"", 1);
}

void sq_jbuf_init(sq_jbuf *b) { memset(b, 0, sizeof *b); put(b, "", 0); }

void sq_jbuf_free(sq_jbuf *b)
{
    free(b->buf);
    memset(b, 0, sizeof *b);
}

void sq_jbuf_reset(sq_jbuf *b)
{
    b->len = 0;
    if (b->buf) b->buf[0] = '\0';
    b->depth = 0;
    b->after_key = 0;
    memset(b->has_items, 0, sizeof b->has_items);
}

const char *sq_jbuf_cstr(const sq_jbuf *b) { return b->buf ? b->buf : ""; }

static void begin(sq_jbuf *b, const char *open)
{
    pre_value(b);
    put(b, open, 1);
    b->depth++;
    b->has_items[level(b)] = 0;
}

static void end(sq_jbuf *b, const char *close)
{
    if (b->depth > 0) b->depth--;
    b->after_key = 0;
    put(b, close, 1);
}

void sq_jbuf_begin_obj(sq_jbuf *b) { begin(b, "{"); }
void sq_jbuf_end_obj(sq_jbuf *b) { end(b, "}"); }
void sq_jbuf_begin_arr(sq_jbuf *b) { begin(b, "["); }
void sq_jbuf_end_arr(sq_jbuf *b) { end(b, "]"); }

void sq_jbuf_key(sq_jbuf *b, const char *key)
{
    if (b->has_items[level(b)]) put(b, ",", 1);
    b->has_items[level(b)] = 1;
    put_escaped(b, key ? key : "", key ? strlen(key) : 0);
    put(b, ":", 1);
    b->after_key = 1;
}

void sq_jbuf_strn(sq_jbuf *b, const char *s, size_t n)
{
    pre_value(b);
    put_escaped(b, s, n);
}

void sq_jbuf_str(sq_jbuf *b, const char *s)
{
    if (!s) { sq_jbuf_null(b); return; }
    sq_jbuf_strn(b, s, strlen(s));
}

void sq_jbuf_num(sq_jbuf *b, double v)
{
    char tmp[40];
    pre_value(b);
    if (!isfinite(v)) { put(b, "null", 4); return; }
    int n = snprintf(tmp, sizeof tmp, "%.9g", v);
    put(b, tmp, (size_t)n);
}

void sq_jbuf_int(sq_jbuf *b, int64_t v)
{
    char tmp[32];
    pre_value(b);
    int n = snprintf(tmp, sizeof tmp, "%" PRId64, v);
    put(b, tmp, (size_t)n);
}

void sq_jbuf_bool(sq_jbuf *b, int v)
{
    pre_value(b);
    if (v) put(b, "true", 4);
    else put(b, "false", 5);
}

void sq_jbuf_null(sq_jbuf *b)
{
    pre_value(b);
    put(b, "null", 4);
}

void sq_jbuf_raw(sq_jbuf *b, const char *text, size_t n) { put(b, text, n); }

void sq_jbuf_kv_str(sq_jbuf *b, const char *key, const char *s) { sq_jbuf_key(b, key); sq_jbuf_str(b, s); }
void sq_jbuf_kv_num(sq_jbuf *b, const char *key, double v) { sq_jbuf_key(b, key); sq_jbuf_num(b, v); }
void sq_jbuf_kv_int(sq_jbuf *b, const char *key, int64_t v) { sq_jbuf_key(b, key); sq_jbuf_int(b, v); }
void sq_jbuf_kv_bool(sq_jbuf *b, const char *key, int v) { sq_jbuf_key(b, key); sq_jbuf_bool(b, v); }
