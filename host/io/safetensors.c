/* safetensors.c: safetensors writer (JSON header built with sq_jbuf, space-padded so the data
   starts 8-byte aligned, written atomically) and strict reader (header length vs. file size, JSON
   syntax, dtypes, shapes vs. offsets, contiguous coverage of the data area). Reader errors name
   the file and the byte offset, and quote names and strings from the header through
   sq_printable (a tensor name may hold any character). Each tensor read is placed 64-byte aligned
   in one owned blob. */
#include "sqakd/safetensors.h"
#include "sqakd/json.h"
#include "io/atomic_write.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors I/O writes host memory as little-endian data: a little-endian host is required"
#endif

#define ST_MAX_HEADER (100ull << 20)   /* same cap as the reference implementation */
#define ST_ALIGN 64

typedef unsigned long long u64;

static const char *const k_names[] = { "F32", "I64", "I32", "U8" };
static const size_t k_sizes[] = { 4, 8, 4, 1 };

size_t sq_st_dtype_size(sq_st_dtype d) { return (unsigned)d < 4 ? k_sizes[d] : 0; }
const char *sq_st_dtype_name(sq_st_dtype d) { return (unsigned)d < 4 ? k_names[d] : NULL; }

/* Product of the dims times the element size; 0 and *ok = 0 on overflow or a negative dim. */
static u64 shape_bytes(const int64_t *shape, int ndim, size_t elsize, int *ok)
{
    u64 n = elsize;
    *ok = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || __builtin_mul_overflow(n, (u64)shape[i], &n)) { *ok = 0; return 0; }
    }
    return n;
}

static sq_status check_for_write(const char *path, const sq_st_file *f)
{
    if (f->ntensors < 0 || f->nmeta < 0 || (f->ntensors && !f->tensors) || (f->nmeta && !f->meta)) {
        sq_set_error("writing %s: invalid tensor/metadata counts", path);
        return SQ_EARG;
    }
    for (int i = 0; i < f->ntensors; i++) {
        const sq_st_tensor *t = &f->tensors[i];
        int ok;
        if (!t->name || !*t->name || !strcmp(t->name, "__metadata__")) {
            sq_set_error("writing %s: tensor %d has an empty or reserved name", path, i);
            return SQ_EARG;
        }
        if (!sq_st_dtype_size(t->dtype) || t->ndim < 0 || t->ndim > SQ_ST_MAX_DIMS) {
            sq_set_error("writing %s: tensor '%s' has an invalid dtype or ndim %d", path, t->name,
                         t->ndim);
            return SQ_EARG;
        }
        u64 want = shape_bytes(t->shape, t->ndim, sq_st_dtype_size(t->dtype), &ok);
        if (!ok || want != t->nbytes || (t->nbytes && !t->data)) {
            sq_set_error("writing %s: tensor '%s' has nbytes %zu but its shape and dtype need %llu"
                         " (or data is NULL)", path, t->name, t->nbytes, want);
            return SQ_EARG;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(f->tensors[j].name, t->name)) {
                sq_set_error("writing %s: duplicate tensor name '%s'", path, t->name);
                return SQ_EARG;
            }
    }
    for (int i = 0; i < f->nmeta; i++)
        if (!f->meta[i].key || !f->meta[i].value) {
            sq_set_error("writing %s: metadata entry %d has a NULL key or value", path, i);
            return SQ_EARG;
        }
    return SQ_OK;
}

sq_status sq_st_write(const char *path, const sq_st_file *f)
{
    sq_status st = check_for_write(path ? path : "(null)", f);
    if (st != SQ_OK) return st;
    sq_jbuf b;
    sq_jbuf_init(&b);
    sq_jbuf_begin_obj(&b);
    if (f->nmeta > 0) {
        sq_jbuf_key(&b, "__metadata__");
        sq_jbuf_begin_obj(&b);
        for (int i = 0; i < f->nmeta; i++) sq_jbuf_kv_str(&b, f->meta[i].key, f->meta[i].value);
        sq_jbuf_end_obj(&b);
    }
    u64 off = 0;
    for (int i = 0; i < f->ntensors; i++) {
        const sq_st_tensor *t = &f->tensors[i];
        sq_jbuf_key(&b, t->name);
        sq_jbuf_begin_obj(&b);
        sq_jbuf_kv_str(&b, "dtype", sq_st_dtype_name(t->dtype));
        sq_jbuf_key(&b, "shape");
        sq_jbuf_begin_arr(&b);
        for (int d = 0; d < t->ndim; d++) sq_jbuf_int(&b, t->shape[d]);
        sq_jbuf_end_arr(&b);
        sq_jbuf_key(&b, "data_offsets");
        sq_jbuf_begin_arr(&b);
        sq_jbuf_int(&b, (int64_t)off);
        sq_jbuf_int(&b, (int64_t)(off + t->nbytes));
        sq_jbuf_end_arr(&b);
        sq_jbuf_end_obj(&b);
        off += t->nbytes;
    }
    sq_jbuf_end_obj(&b);
    while ((8 + b.len) % 8) sq_jbuf_raw(&b, " ", 1);

    unsigned char len_le[8];
    for (int i = 0; i < 8; i++) len_le[i] = (unsigned char)((u64)b.len >> (8 * i));
    sq_io_seg *segs = sq_xmalloc((size_t)(f->ntensors + 2) * sizeof *segs);
    segs[0] = (sq_io_seg){ len_le, 8 };
    segs[1] = (sq_io_seg){ b.buf, b.len };
    for (int i = 0; i < f->ntensors; i++) segs[i + 2] = (sq_io_seg){ f->tensors[i].data, f->tensors[i].nbytes };
    st = sq_io_write_atomic(path, segs, f->ntensors + 2);
    free(segs);
    sq_jbuf_free(&b);
    return st;
}

/* ---- reader ---- */

typedef struct entry { u64 begin, end, at; int idx; } entry;   /* at: file offset of the entry */

static int cmp_entry(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx - y->idx;
}

typedef struct named { const char *name; u64 at; } named;

static int cmp_name(const void *a, const void *b)
{
    const named *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->at > y->at) - (x->at < y->at);
}

/* Reads one non-negative integer array element; returns 0 when it is not one. */
static int get_u64(const sq_json *v, u64 *out)
{
    int64_t x;
    if (!sq_json_int(v, &x) || x < 0) return 0;
    *out = (u64)x;
    return 1;
}

#define FMT_ERR(...) do { sq_set_error(__VA_ARGS__); return SQ_EFORMAT; } while (0)

static sq_status parse_metadata(const char *path, const sq_json *m, sq_st_file *out)
{
    if (m->type != SQ_JSON_OBJ)
        FMT_ERR("%s: \"__metadata__\" at file offset %llu is not an object of strings", path,
                8 + (u64)m->offset);
    out->meta = sq_xcalloc((size_t)m->n + 1, sizeof *out->meta);
    char pk[256];
    for (int i = 0; i < m->n; i++) {
        const sq_json *v = &m->items[i];
        sq_printable(m->keys[i], pk, sizeof pk);
        if (v->type != SQ_JSON_STR || strlen(v->str) != v->len || strlen(m->keys[i]) != m->key_lens[i])
            FMT_ERR("%s: metadata entry \"%s\" at file offset %llu must be a string without NUL"
                    " characters", path, pk, 8 + (u64)v->offset);
        for (int j = 0; j < i; j++)
            if (!strcmp(m->keys[j], m->keys[i]))
                FMT_ERR("%s: duplicate metadata key \"%s\" at file offset %llu", path, pk,
                        8 + (u64)v->offset);
        out->meta[i].key = strdup(m->keys[i]);
        out->meta[i].value = strdup(v->str);
        out->nmeta++;
        if (!out->meta[i].key || !out->meta[i].value) {
            sq_set_error("%s: out of memory reading metadata", path);
            return SQ_ENOMEM;
        }
    }
    return SQ_OK;
}

static sq_status parse_tensor(const char *path, const char *name, size_t name_len, const sq_json *v,
                              u64 data_start, u64 data_size, sq_st_tensor *t, entry *e)
{
    u64 at = 8 + (u64)v->offset;
    char pn[256], pf[128];   /* the name as quoted in errors */
    sq_printable(name, pn, sizeof pn);
    if (strlen(name) != name_len)
        FMT_ERR("%s: tensor name at file offset %llu holds a NUL character", path, at);
    if (v->type != SQ_JSON_OBJ)
        FMT_ERR("%s: entry for tensor '%s' at file offset %llu is not an object", path, pn, at);
    for (int i = 0; i < v->n; i++) {
        const char *k = v->keys[i];
        if (strcmp(k, "dtype") && strcmp(k, "shape") && strcmp(k, "data_offsets"))
            FMT_ERR("%s: tensor '%s' at file offset %llu has unknown field \"%s\"", path, pn, at,
                    sq_printable(k, pf, sizeof pf));
    }
    const sq_json *dt = sq_json_get(v, "dtype"), *sh = sq_json_get(v, "shape"),
                  *of = sq_json_get(v, "data_offsets");
    if (!dt || !sh || !of || v->n != 3)
        FMT_ERR("%s: tensor '%s' at file offset %llu needs exactly dtype, shape and data_offsets",
                path, pn, at);
    int d = -1;
    for (int i = 0; i < 4; i++)
        if (sq_json_str(dt) && !strcmp(sq_json_str(dt), k_names[i])) d = i;
    if (d < 0)
        FMT_ERR("%s: tensor '%s' has unsupported dtype %s%s%s at file offset %llu (supported: F32, "
                "I64, I32, U8)", path, pn, sq_json_str(dt) ? "\"" : "",
                sq_printable(sq_json_str(dt) ? sq_json_str(dt) : "(not a string)", pf, sizeof pf),
                sq_json_str(dt) ? "\"" : "",
                8 + (u64)dt->offset);
    if (sh->type != SQ_JSON_ARR || sh->n > SQ_ST_MAX_DIMS)
        FMT_ERR("%s: tensor '%s' shape at file offset %llu is not an array of at most %d dims", path,
                pn, 8 + (u64)sh->offset, SQ_ST_MAX_DIMS);
    t->dtype = (sq_st_dtype)d;
    t->ndim = sh->n;
    for (int i = 0; i < sh->n; i++) {
        u64 dim;
        if (!get_u64(&sh->items[i], &dim))
            FMT_ERR("%s: tensor '%s' dim %d at file offset %llu is not a non-negative integer", path,
                    pn, i, 8 + (u64)sh->items[i].offset);
        t->shape[i] = (int64_t)dim;
    }
    if (of->type != SQ_JSON_ARR || of->n != 2 || !get_u64(&of->items[0], &e->begin) ||
        !get_u64(&of->items[1], &e->end) || e->end < e->begin)
        FMT_ERR("%s: tensor '%s' data_offsets at file offset %llu must be [begin, end] with "
                "0 <= begin <= end", path, pn, 8 + (u64)of->offset);
    int ok;
    u64 need = shape_bytes(t->shape, t->ndim, k_sizes[d], &ok);
    if (!ok || need != e->end - e->begin)
        FMT_ERR("%s: tensor '%s' at file offset %llu: shape and dtype %s need %llu bytes but "
                "data_offsets [%llu, %llu] span %llu", path, pn, at, k_names[d], need, e->begin,
                e->end, e->end - e->begin);
    if (e->end > data_size)
        FMT_ERR("%s: tensor '%s' data_offsets [%llu, %llu] end at file offset %llu, past the end "
                "of the file at offset %llu (truncated file?)", path, pn, e->begin, e->end,
                data_start + e->end, data_start + data_size);
    t->nbytes = (size_t)need;
    t->name = strdup(name);
    if (!t->name) { sq_set_error("%s: out of memory", path); return SQ_ENOMEM; }
    return SQ_OK;
}

/* Sorts the entries by offset and checks they tile [0, data_size) exactly, and that names are
   unique. */
static sq_status check_layout(const char *path, sq_st_file *out, entry *ents, u64 data_start,
                              u64 data_size)
{
    int n = out->ntensors;
    qsort(ents, (size_t)n, sizeof *ents, cmp_entry);
    u64 pos = 0;
    for (int i = 0; i < n; i++) {
        char name[256], prev[256];
        sq_printable(out->tensors[ents[i].idx].name, name, sizeof name);
        sq_printable(i ? out->tensors[ents[i - 1].idx].name : "", prev, sizeof prev);
        if (ents[i].begin < pos)
            FMT_ERR("%s: tensors '%s' and '%s' overlap: '%s' starts at file offset %llu before '%s'"
                    " ends at %llu", path, prev, name, name, data_start + ents[i].begin, prev,
                    data_start + pos);
        if (ents[i].begin > pos)
            FMT_ERR("%s: gap in the data area: file offsets %llu..%llu before tensor '%s' belong to"
                    " no tensor", path, data_start + pos, data_start + ents[i].begin, name);
        pos = ents[i].end;
    }
    if (pos != data_size)
        FMT_ERR("%s: %llu bytes of trailing data after the last tensor, from file offset %llu to"
                " %llu", path, data_size - pos, data_start + pos, data_start + data_size);
    named *names = sq_xmalloc((size_t)n * sizeof *names + 1);
    for (int i = 0; i < n; i++) names[ents[i].idx] = (named){ out->tensors[ents[i].idx].name, ents[i].at };
    qsort(names, (size_t)n, sizeof *names, cmp_name);
    for (int i = 1; i < n; i++)
        if (!strcmp(names[i].name, names[i - 1].name)) {
            char pn[256];
            sq_set_error("%s: duplicate tensor name '%s' in the header, again at file offset %llu",
                         path, sq_printable(names[i].name, pn, sizeof pn), names[i].at);
            free(names);
            return SQ_EFORMAT;
        }
    free(names);
    return SQ_OK;
}

/* Reads the data area in file order into one blob, each tensor 64-byte aligned. */
static sq_status load_data(const char *path, FILE *fp, sq_st_file *out, const entry *ents,
                           u64 data_start)
{
    int n = out->ntensors;
    u64 total = 0;
    for (int i = 0; i < n; i++) total += (out->tensors[i].nbytes + ST_ALIGN - 1) & ~(u64)(ST_ALIGN - 1);
    if (total > SIZE_MAX || posix_memalign(&out->blob, ST_ALIGN, total ? (size_t)total : ST_ALIGN)) {
        out->blob = NULL;
        sq_set_error("%s: cannot allocate %llu bytes for the tensor data", path, total);
        return SQ_ENOMEM;
    }
    u64 place = 0;
    for (int i = 0; i < n; i++) {
        sq_st_tensor *t = &out->tensors[ents[i].idx];
        t->data = (char *)out->blob + place;
        place += (t->nbytes + ST_ALIGN - 1) & ~(u64)(ST_ALIGN - 1);
        if (t->nbytes && fread(t->data, 1, t->nbytes, fp) != t->nbytes) {
            char pn[256];
            sq_set_error("%s: read failed for tensor '%s' at file offset %llu: %s", path,
                         sq_printable(t->name, pn, sizeof pn),
                         data_start + ents[i].begin, ferror(fp) ? strerror(errno) : "unexpected end of file");
            return SQ_EIO;
        }
    }
    return SQ_OK;
}

static sq_status read_header(const char *path, FILE *fp, u64 fsize, char **hdr, u64 *hlen)
{
    unsigned char len_le[8];
    if (fsize < 8)
        FMT_ERR("%s: file is %llu bytes, too short for the 8-byte header length (truncated at "
                "offset %llu)", path, fsize, fsize);
    if (fread(len_le, 1, 8, fp) != 8) {
        sq_set_error("%s: cannot read the header length at offset 0: %s", path, strerror(errno));
        return SQ_EIO;
    }
    u64 n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | len_le[i];
    if (n > ST_MAX_HEADER)
        FMT_ERR("%s: header length %llu at offset 0 exceeds the 100 MiB limit: not a safetensors "
                "file or corrupt", path, n);
    if (n > fsize - 8)
        FMT_ERR("%s: header length %llu at offset 0 runs past the end of the file at offset %llu "
                "(truncated file?)", path, n, fsize);
    if (n < 2) FMT_ERR("%s: header length %llu at offset 0 is too small for a JSON object", path, n);
    *hdr = sq_xmalloc((size_t)n);
    if (fread(*hdr, 1, (size_t)n, fp) != n) {
        sq_set_error("%s: cannot read the %llu-byte header at offset 8: %s", path, n, strerror(errno));
        return SQ_EIO;
    }
    *hlen = n;
    return SQ_OK;
}

static sq_status read_open(const char *path, FILE *fp, sq_st_file *out)
{
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        sq_set_error("%s: not a regular file; pass a .safetensors checkpoint", path);
        return SQ_EIO;
    }
    u64 fsize = (u64)sb.st_size, hlen = 0;
    char *hdr = NULL;
    sq_json *root = NULL;
    entry *ents = NULL;
    sq_status st = read_header(path, fp, fsize, &hdr, &hlen);
    if (st != SQ_OK) goto done;
    sq_json_error jerr;
    st = sq_json_parse(hdr, (size_t)hlen, &root, &jerr);
    if (st != SQ_OK) {
        sq_set_error("%s: header JSON is invalid at file offset %llu: %s", path, 8 + (u64)jerr.offset,
                     jerr.msg);
        goto done;
    }
    if (root->type != SQ_JSON_OBJ) {
        sq_set_error("%s: header at file offset 8 is not a JSON object", path);
        st = SQ_EFORMAT;
        goto done;
    }
    u64 data_start = 8 + hlen, data_size = fsize - data_start;
    out->tensors = sq_xcalloc((size_t)root->n + 1, sizeof *out->tensors);
    ents = sq_xcalloc((size_t)root->n + 1, sizeof *ents);
    int have_meta = 0;
    for (int i = 0; i < root->n; i++) {
        if (!strcmp(root->keys[i], "__metadata__") && root->key_lens[i] == 12) {
            if (have_meta++) {
                sq_set_error("%s: second \"__metadata__\" at file offset %llu", path,
                             8 + (u64)root->items[i].offset);
                st = SQ_EFORMAT;
                goto done;
            }
            st = parse_metadata(path, &root->items[i], out);
        } else {
            int k = out->ntensors;
            ents[k].idx = k;
            ents[k].at = 8 + (u64)root->items[i].offset;
            st = parse_tensor(path, root->keys[i], root->key_lens[i], &root->items[i], data_start,
                              data_size, &out->tensors[k], &ents[k]);
            if (st == SQ_OK) out->ntensors++;
        }
        if (st != SQ_OK) goto done;
    }
    st = check_layout(path, out, ents, data_start, data_size);
    if (st == SQ_OK) st = load_data(path, fp, out, ents, data_start);
done:
    free(ents);
    sq_json_free(root);
    free(hdr);
    return st;
}

sq_status sq_st_read(const char *path, sq_st_file *out)
{
    memset(out, 0, sizeof *out);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        sq_set_error("cannot open checkpoint %s: %s; check the path", path, strerror(errno));
        return SQ_EIO;
    }
    sq_status st = read_open(path, fp, out);
    fclose(fp);
    if (st != SQ_OK) sq_st_free(out);
    return st;
}

void sq_st_free(sq_st_file *f)
{
    if (!f) return;
    for (int i = 0; i < f->ntensors; i++) free(f->tensors[i].name);
    for (int i = 0; i < f->nmeta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->tensors);
    free(f->meta);
    free(f->blob);
    memset(f, 0, sizeof *f);
}

const sq_st_tensor *sq_st_find(const sq_st_file *f, const char *name)
{
    for (int i = 0; f && name && i < f->ntensors; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

const char *sq_st_meta(const sq_st_file *f, const char *key)
{
    for (int i = 0; f && key && i < f->nmeta; i++)
        if (!strcmp(f->meta[i].key, key)) return f->meta[i].value;
    return NULL;
}
