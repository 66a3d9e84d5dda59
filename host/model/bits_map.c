/* bits_map.c: per-layer bit-widths (issue 20 item 5). A bits map is a JSON object, layer name ->
   {"wbits": W, "abits": A} (either key optional; the rest from --wbits / --abits). It travels as
   canonical JSON text (sq_quant_opts.bits_map, checkpoint metadata quant_bits_map, the run
   configuration), interned so that copies of an options struct share it for the process's life;
   sq_model_set_quant applies it to the quantized layers and refuses names that are not. */
#include "model_internal.h"
#include "sqakd/json.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* interned texts: reachable from this list until the process ends (never freed: options structs
   copied anywhere point into it) */
typedef struct interned {
    struct interned *next;
    char text[];
} interned;
static interned *g_interned;
static pthread_mutex_t g_intern_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *intern(const char *s)
{
    pthread_mutex_lock(&g_intern_lock);
    const char *r = NULL;
    for (interned *p = g_interned; p && !r; p = p->next)
        if (!strcmp(p->text, s)) r = p->text;
    if (!r) {
        const size_t n = strlen(s);
        interned *p = sq_xmalloc(sizeof *p + n + 1);
        memcpy(p->text, s, n + 1);
        p->next = g_interned;
        g_interned = p;
        r = p->text;
    }
    pthread_mutex_unlock(&g_intern_lock);
    return r;
}

/* one entry's bits, -1 where the key is absent; what names the source in errors */
static sq_status entry_bits(const char *what, const char *layer, const sq_json *v, int *wb, int *ab)
{
    *wb = *ab = -1;
    if (v->type != SQ_JSON_OBJ) {
        sq_set_error("%s: layer '%s' needs an object {\"wbits\": W, \"abits\": A}", what, layer);
        return SQ_EARG;
    }
    for (int j = 0; j < v->n; j++) {
        const char *k = v->keys[j];
        int *dst = !strcmp(k, "wbits") ? wb : !strcmp(k, "abits") ? ab : NULL;
        if (!dst) {
            sq_set_error("%s: layer '%s': unknown key '%s' (wbits or abits)", what, layer, k);
            return SQ_EARG;
        }
        int64_t b;
        if (!sq_json_int(&v->items[j], &b) || b < 1 || b > 8) {
            sq_set_error("%s: layer '%s': %s must be an integer in 1..8", what, layer, k);
            return SQ_EARG;
        }
        *dst = (int)b;
    }
    return SQ_OK;
}

sq_status sq_bits_map_canonical(const char *text, size_t len, const char *what, const char **out)
{
    *out = NULL;
    sq_json *root = NULL;
    sq_json_error err;
    if (sq_json_parse(text, len, &root, &err)) {
        sq_set_error("%s is not JSON (byte %zu: %s); expected {\"LAYER\": {\"wbits\": W, \"abits\": A}, ...}", what,
                     err.offset, err.msg);
        return SQ_EARG;
    }
    sq_status st = SQ_OK;
    if (root->type != SQ_JSON_OBJ || root->n == 0) {
        sq_set_error("%s must be a non-empty JSON object: {\"LAYER\": {\"wbits\": W, \"abits\": A}, ...}", what);
        st = SQ_EARG;
    }
    sq_jbuf b;
    sq_jbuf_init(&b);
    sq_jbuf_begin_obj(&b);
    for (int i = 0; i < root->n && !st; i++) {
        int wb, ab;
        for (int j = 0; j < i && !st; j++)
            if (!strcmp(root->keys[i], root->keys[j])) {
                sq_set_error("%s: layer '%s' is listed twice", what, root->keys[i]);
                st = SQ_EARG;
            }
        if (st || (st = entry_bits(what, root->keys[i], &root->items[i], &wb, &ab))) break;
        sq_jbuf_key(&b, root->keys[i]);
        sq_jbuf_begin_obj(&b);
        if (wb > 0) sq_jbuf_kv_int(&b, "wbits", wb);
        if (ab > 0) sq_jbuf_kv_int(&b, "abits", ab);
        sq_jbuf_end_obj(&b);
    }
    sq_jbuf_end_obj(&b);
    if (!st) *out = intern(sq_jbuf_cstr(&b));
    sq_jbuf_free(&b);
    sq_json_free(root);
    return st;
}

/* the names of m's quantized layers, comma-separated, into buf */
static void quantized_names(const sq_model *m, char *buf, size_t cap)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < m->nnodes && k + 1 < cap; i++)
        if (m->nodes[i].quant) {
            int w = snprintf(buf + k, cap - k, "%s%s", k ? ", " : "", m->nodes[i].name);
            if (w < 0) break;
            k += (size_t)w;
        }
    if (k >= cap && cap > 4) memcpy(buf + cap - 4, "...", 4);
}

sq_status sq_bits_map_apply(sq_model *m, const char *map)
{
    if (!map) return SQ_OK;
    sq_json *root = NULL;
    if (sq_json_parse(map, strlen(map), &root, NULL)) return SQ_EARG;
    sq_status st = SQ_OK;
    char names[2048];
    for (int i = 0; i < root->n && !st; i++) {
        int wb, ab, id = -1;
        if ((st = entry_bits("the bits map", root->keys[i], &root->items[i], &wb, &ab))) break;
        for (int j = 0; j < m->nnodes && id < 0; j++)
            if ((m->nodes[j].op == SQ_NODE_CONV || m->nodes[j].op == SQ_NODE_LINEAR) &&
                !strcmp(m->nodes[j].name, root->keys[i]))
                id = j;
        if (id < 0 || !m->nodes[id].quant) {
            quantized_names(m, names, sizeof names);
            sq_set_error("bits map: %s '%s'%s; the quantized layers of %s are: %s",
                         id < 0 ? "no layer" : "layer", root->keys[i],
                         id < 0 ? " in this model"
                                : (m->nodes[id].first_or_last ? " is not quantized (the stem conv and the classifier are "
                                                                "quantized only with --quant-first-last)"
                                                              : " is not quantized"),
                         m->arch, names);
            st = SQ_EARG;
            break;
        }
        if (wb > 0) m->nodes[id].qw.bits = wb;
        if (ab > 0) m->nodes[id].qa.bits = ab;
    }
    sq_json_free(root);
    return st;
}
