/* onnx.c: ONNX models in and out (include/sqakd/onnx.h). The protobuf wire format is decoded and
   encoded by protobuf-c with code generated at build time from onnx.proto (build/gen); this is
   the only file that sees it. The reader checks the nesting depth of the input before protobuf-c
   unpacks it (protobuf-c recurses once per nested message), unpacks it under a memory budget
   proportional to its size, then copies what sqakd uses into the
   plain structs of onnx.h, validating every tensor (dims, data length, external data). The writer
   builds protobuf-c messages over the plain structs (no copy of tensor data beyond the
   little-endian raw_data bytes) and packs them into one buffer, written atomically. */
#include "sqakd/onnx.h"
#include "io/atomic_write.h"
#include "onnx.pb-c.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "onnx.c reads and writes raw_data as host memory: a little-endian host is required"
#endif

/* deepest message nesting accepted (a model is ModelProto > GraphProto > NodeProto >
   AttributeProto > TensorProto, plus TypeProto chains and subgraphs: far below this) */
#define ONNX_MAX_DEPTH 64

/* ---------------------------------------------------------------- errors */

/* one error line: "WHAT: message", WHAT being the escaped file name */
#define fail sq_set_error_in

/* file text (a name) made printable for an error line; NULL reads as "" */
static const char *pr(const char *s, char *buf, size_t cap) { return sq_printable(s ? s : "", buf, cap); }

static char *dup_str(const char *s) { return strdup(s ? s : ""); }

/* ---------------------------------------------------------------- float16 / bfloat16 */

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) bits = sign;
        else {                                     /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) { man <<= 1; exp--; }
            bits = sign | exp << 23 | (man & 0x3ff) << 13;
        }
    } else if (exp == 31) bits = sign | 0x7f800000u | man << 13;   /* inf / nan */
    else bits = sign | (exp - 15 + 127) << 23 | man << 13;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* round to nearest even; overflow to inf, underflow through subnormals to zero */
static uint16_t float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffff;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);          /* >= 65520: inf */
    if (ax < 0x38800000u) {                                          /* below 2^-14: subnormal */
        if (ax < 0x33000000u) return (uint16_t)sign;                 /* below 2^-25: zero */
        uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e;                                    /* 14..24 */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((ax >> 13) - ((127 - 15) << 10)), rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return (uint16_t)(sign | r);
}

static float bf16_to_float(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t float_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);   /* quiet nan */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* ---------------------------------------------------------------- element types */

/* bytes per element in raw_data; 0 for a type sqakd does not read */
static size_t elem_size(int dtype)
{
    switch (dtype) {
    case SQ_ONNX_FLOAT: case SQ_ONNX_INT32: case SQ_ONNX_UINT32: return 4;
    case SQ_ONNX_DOUBLE: case SQ_ONNX_INT64: case SQ_ONNX_UINT64: return 8;
    case SQ_ONNX_INT8: case SQ_ONNX_UINT8: case SQ_ONNX_BOOL: return 1;
    case SQ_ONNX_INT16: case SQ_ONNX_UINT16: case SQ_ONNX_FLOAT16: case SQ_ONNX_BFLOAT16: return 2;
    default: return 0;
    }
}

static int is_float_type(int dtype)
{
    return dtype == SQ_ONNX_FLOAT || dtype == SQ_ONNX_DOUBLE || dtype == SQ_ONNX_FLOAT16 ||
           dtype == SQ_ONNX_BFLOAT16;
}

static const char *dtype_name(int dtype)
{
    static const char *const names[] = { "UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16",
                                         "INT32", "INT64", "STRING", "BOOL", "FLOAT16", "DOUBLE",
                                         "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16" };
    return dtype >= 0 && dtype < (int)(sizeof names / sizeof *names) ? names[dtype] : "unknown";
}

/* ---------------------------------------------------------------- nesting depth */

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (*p >= end) return 0;
        uint8_t b = *(*p)++;
        if (shift == 63 && b > 1) return 0;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) { *v = x; return 1; }
    }
    return 0;
}

/* Walks the wire format of a message of type desc, descending into the fields the schema declares
   as messages. 1: fine (or malformed in a way protobuf-c will report itself); 0: nested deeper
   than ONNX_MAX_DEPTH. */
static int depth_ok(const ProtobufCMessageDescriptor *desc, const uint8_t *p, const uint8_t *end, int depth)
{
    if (depth > ONNX_MAX_DEPTH) return 0;
    while (p < end) {
        uint64_t key, n;
        if (!read_varint(&p, end, &key)) return 1;
        switch (key & 7) {
        case 0: if (!read_varint(&p, end, &n)) return 1; break;
        case 1: if ((size_t)(end - p) < 8) return 1; p += 8; break;
        case 5: if ((size_t)(end - p) < 4) return 1; p += 4; break;
        case 2: {
            if (!read_varint(&p, end, &n) || n > (uint64_t)(end - p)) return 1;
            const ProtobufCFieldDescriptor *f =
                key >> 3 <= UINT_MAX ? protobuf_c_message_descriptor_get_field(desc, (unsigned)(key >> 3)) : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                !depth_ok((const ProtobufCMessageDescriptor *)f->descriptor, p, p + n, depth + 1))
                return 0;
            p += n;
            break;
        }
        default: return 1;   /* groups and invalid wire types: protobuf-c refuses them */
        }
    }
    return 1;
}

/* ---------------------------------------------------------------- unpacking under a budget */

/* protobuf-c allocates a struct per message however small its encoding (an empty nested message
   is 2 bytes of input and ~100 bytes of memory): its allocations are counted against a budget
   proportional to the input, and unpacking stops (protobuf-c returns NULL) past it */
typedef struct pb_budget { size_t used, limit; int hit; } pb_budget;

static void *budget_alloc(void *ctx, size_t n)
{
    pb_budget *b = ctx;
    if (n > b->limit - b->used) { b->hit = 1; return NULL; }
    void *p = malloc(n);
    if (p) b->used += n;
    return p;
}

static void budget_free(void *ctx, void *p) { (void)ctx; free(p); }

/* twice the input (bytes fields are copied) plus 64 bytes of structure per input byte, at most
   1 GiB of it: real models stay far below (a tensor or attribute takes tens of bytes of input for
   a ~200-byte struct, and big files are mostly raw tensor data), a file of empty messages not */
static ProtobufCAllocator budget_for(pb_budget *b, size_t len)
{
    b->used = 0;
    b->hit = 0;
    b->limit = 2 * len + (len < ((size_t)1 << 24) ? 64 * len : (size_t)1 << 30) + 4096;
    return (ProtobufCAllocator){ .alloc = budget_alloc, .free = budget_free, .allocator_data = b };
}

/* ---------------------------------------------------------------- tensors */

void sq_onnx_tensor_clear(sq_onnx_tensor *t)
{
    if (!t) return;
    free(t->name);
    free(t->f);
    free(t->i);
    memset(t, 0, sizeof *t);
}

static uint64_t le_load(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t k = 0; k < n; k++) v |= (uint64_t)p[k] << (8 * k);
    return v;
}

/* the integer value of an element of an integer type given its low bits (raw_data bytes or an
   int32_data entry), as the type reads them */
static int64_t int_from_bits(int dtype, uint64_t v)
{
    switch (dtype) {
    case SQ_ONNX_INT8: return (int8_t)(uint8_t)v;
    case SQ_ONNX_UINT8: return (uint8_t)v;
    case SQ_ONNX_INT16: return (int16_t)(uint16_t)v;
    case SQ_ONNX_UINT16: return (uint16_t)v;
    case SQ_ONNX_INT32: return (int32_t)(uint32_t)v;
    case SQ_ONNX_UINT32: return (uint32_t)v;
    case SQ_ONNX_BOOL: return (uint8_t)v != 0;
    default: return (int64_t)v;   /* INT64; UINT64 is range-checked by the caller */
    }
}

/* Decodes tp into *t (zeroed first). ctx names the tensor's place ("initializer 3", "attribute
   'value' of node 2 ('c', Constant)") for messages. */
static sq_status decode_tensor(const char *what, const char *ctx, const Onnx__TensorProto *tp,
                               sq_onnx_tensor *t)
{
    char pn[200];
    memset(t, 0, sizeof *t);
    pr(tp->name, pn, sizeof pn);
    int dtype = tp->has_data_type ? tp->data_type : 0;
    if ((tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) ||
        tp->n_external_data) {
        fail(what, "%s, tensor '%s', keeps its data in an external file (ONNX external data); sqakd"
             " reads self-contained models only: re-export with the weights embedded (e.g."
             " onnx.save_model(model, path, save_as_external_data=False))", ctx, pn);
        return SQ_EFORMAT;
    }
    if (tp->segment) {
        fail(what, "%s, tensor '%s', is one segment of a split tensor (not supported; a .pb file of"
             " a sequence or optional value reads this way too)", ctx, pn);
        return SQ_EFORMAT;
    }
    size_t es = elem_size(dtype);
    if (!es) {
        fail(what, "%s, tensor '%s', has data type %d (%s), which sqakd does not read", ctx, pn,
             dtype, dtype_name(dtype));
        return SQ_EFORMAT;
    }
    if (tp->n_dims > SQ_ONNX_MAX_DIMS) {
        fail(what, "%s, tensor '%s', has %zu dimensions (at most %d)", ctx, pn, tp->n_dims, SQ_ONNX_MAX_DIMS);
        return SQ_EFORMAT;
    }
    size_t numel = 1;
    for (size_t d = 0; d < tp->n_dims; d++) {
        if (tp->dims[d] < 0) {
            fail(what, "%s, tensor '%s', has a negative dimension (%lld at axis %zu)", ctx, pn,
                 (long long)tp->dims[d], d);
            return SQ_EFORMAT;
        }
        if (__builtin_mul_overflow(numel, (size_t)tp->dims[d], &numel) || numel > SQ_ONNX_MAX_NUMEL) {
            fail(what, "%s, tensor '%s', has more than %zu elements", ctx, pn, SQ_ONNX_MAX_NUMEL);
            return SQ_EFORMAT;
        }
    }
    /* where the values are, and how many the file holds */
    size_t have;
    const char *field;
    if (tp->has_raw_data) {
        if (tp->raw_data.len != numel * es) {
            fail(what, "%s, tensor '%s': raw_data holds %zu bytes but its dims need %zu (%zu %s"
                 " elements)", ctx, pn, tp->raw_data.len, numel * es, numel, dtype_name(dtype));
            return SQ_EFORMAT;
        }
        have = numel;
    } else {
        switch (dtype) {
        case SQ_ONNX_FLOAT: field = "float_data"; have = tp->n_float_data; break;
        case SQ_ONNX_DOUBLE: field = "double_data"; have = tp->n_double_data; break;
        case SQ_ONNX_INT64: field = "int64_data"; have = tp->n_int64_data; break;
        case SQ_ONNX_UINT32: case SQ_ONNX_UINT64: field = "uint64_data"; have = tp->n_uint64_data; break;
        default: field = "int32_data"; have = tp->n_int32_data; break;
        }
        if (have != numel) {
            fail(what, "%s, tensor '%s': %s holds %zu values but its dims need %zu", ctx, pn, field,
                 have, numel);
            return SQ_EFORMAT;
        }
    }
    t->name = dup_str(tp->name);
    t->dtype = dtype;
    t->ndim = (int)tp->n_dims;
    for (int d = 0; d < t->ndim; d++) t->dims[d] = tp->dims[d];
    t->numel = numel;
    size_t alloc = numel ? numel : 1;
    int fl = is_float_type(dtype);
    if (fl) t->f = malloc(alloc * sizeof *t->f);
    else t->i = malloc(alloc * sizeof *t->i);
    if (!t->name || (fl ? !t->f : !t->i)) {
        fail(what, "%s, tensor '%s': out of memory for %zu elements", ctx, pn, numel);
        sq_onnx_tensor_clear(t);
        return SQ_ENOMEM;
    }
    const uint8_t *raw = tp->has_raw_data ? tp->raw_data.data : NULL;
    for (size_t k = 0; k < numel; k++) {
        if (raw) {
            uint64_t bits = le_load(raw + k * es, es);
            switch (dtype) {
            case SQ_ONNX_FLOAT: { uint32_t b = (uint32_t)bits; memcpy(&t->f[k], &b, 4); break; }
            case SQ_ONNX_DOUBLE: { double x; memcpy(&x, &bits, 8); t->f[k] = (float)x; break; }
            case SQ_ONNX_FLOAT16: t->f[k] = half_to_float((uint16_t)bits); break;
            case SQ_ONNX_BFLOAT16: t->f[k] = bf16_to_float((uint16_t)bits); break;
            default:
                if (dtype == SQ_ONNX_UINT64 && bits > (uint64_t)INT64_MAX) goto u64_range;
                t->i[k] = int_from_bits(dtype, bits);
            }
        } else {
            switch (dtype) {
            case SQ_ONNX_FLOAT: t->f[k] = tp->float_data[k]; break;
            case SQ_ONNX_DOUBLE: t->f[k] = (float)tp->double_data[k]; break;
            case SQ_ONNX_FLOAT16: t->f[k] = half_to_float((uint16_t)tp->int32_data[k]); break;
            case SQ_ONNX_BFLOAT16: t->f[k] = bf16_to_float((uint16_t)tp->int32_data[k]); break;
            case SQ_ONNX_INT64: t->i[k] = tp->int64_data[k]; break;
            case SQ_ONNX_UINT32: t->i[k] = (uint32_t)tp->uint64_data[k]; break;
            case SQ_ONNX_UINT64:
                if (tp->uint64_data[k] > (uint64_t)INT64_MAX) goto u64_range;
                t->i[k] = (int64_t)tp->uint64_data[k];
                break;
            default: t->i[k] = int_from_bits(dtype, (uint32_t)tp->int32_data[k]); break;
            }
        }
        continue;
    u64_range:
        fail(what, "%s, tensor '%s': UINT64 element %zu is beyond the int64 range sqakd holds", ctx, pn, k);
        sq_onnx_tensor_clear(t);
        return SQ_EFORMAT;
    }
    return SQ_OK;
}

/* ---------------------------------------------------------------- graph reader */

void sq_onnx_free(sq_onnx_graph *g)
{
    if (!g) return;
    for (int k = 0; k < g->nnode; k++) {
        sq_onnx_node *n = &g->node[k];
        free(n->name);
        free(n->op);
        free(n->domain);
        for (int j = 0; j < n->nin; j++) free(n->in[j]);
        for (int j = 0; j < n->nout; j++) free(n->out[j]);
        free(n->in);
        free(n->out);
        for (int j = 0; j < n->nattr; j++) {
            sq_onnx_attr *a = &n->attr[j];
            free(a->name);
            free(a->s);
            if (a->t) { sq_onnx_tensor_clear(a->t); free(a->t); }
            free(a->floats);
            free(a->ints);
        }
        free(n->attr);
    }
    free(g->node);
    for (int k = 0; k < g->ninit; k++) sq_onnx_tensor_clear(&g->init[k]);
    free(g->init);
    sq_onnx_value *vs[2] = { g->input, g->output };
    int nv[2] = { g->ninput, g->noutput };
    for (int w = 0; w < 2; w++) {
        for (int k = 0; k < nv[w]; k++) {
            free(vs[w][k].name);
            for (int d = 0; d < SQ_ONNX_MAX_DIMS; d++) free(vs[w][k].dim_param[d]);
        }
        free(vs[w]);
    }
    free(g->name);
    free(g->producer);
    free(g);
}

static sq_status decode_attr(const char *what, int ni, const sq_onnx_node *n, const Onnx__AttributeProto *ap,
                             sq_onnx_attr *a)
{
    char pn[200], pa[100], ctx[400];
    a->name = dup_str(ap->name);
    snprintf(ctx, sizeof ctx, "attribute '%s' of node %d ('%s', %s)", pr(ap->name, pa, sizeof pa), ni,
             pr(n->name, pn, sizeof pn), n->op);
    int type = ap->has_type ? (int)ap->type : 0;
    if (!type) {   /* IR version 1 files: the type is the field in use */
        type = ap->has_f ? SQ_ONNX_ATTR_FLOAT : ap->has_i ? SQ_ONNX_ATTR_INT : ap->has_s ? SQ_ONNX_ATTR_STRING
             : ap->t ? SQ_ONNX_ATTR_TENSOR : ap->n_floats ? SQ_ONNX_ATTR_FLOATS
             : ap->n_ints ? SQ_ONNX_ATTR_INTS : SQ_ONNX_ATTR_OTHER;
    }
    switch (type) {
    case SQ_ONNX_ATTR_FLOAT: a->type = SQ_ONNX_ATTR_FLOAT; a->f = ap->f; break;
    case SQ_ONNX_ATTR_INT: a->type = SQ_ONNX_ATTR_INT; a->i = ap->i; break;
    case SQ_ONNX_ATTR_STRING:
        a->type = SQ_ONNX_ATTR_STRING;
        a->s = malloc(ap->s.len + 1);
        if (!a->s) { fail(what, "%s: out of memory", ctx); return SQ_ENOMEM; }
        if (ap->s.len) memcpy(a->s, ap->s.data, ap->s.len);
        a->s[ap->s.len] = 0;
        break;
    case SQ_ONNX_ATTR_TENSOR: {
        a->type = SQ_ONNX_ATTR_TENSOR;
        if (!ap->t) { fail(what, "%s is of type TENSOR but holds no tensor", ctx); return SQ_EFORMAT; }
        a->t = sq_xcalloc(1, sizeof *a->t);
        sq_status st = decode_tensor(what, ctx, ap->t, a->t);
        if (st != SQ_OK) { free(a->t); a->t = NULL; return st; }
        break;
    }
    case SQ_ONNX_ATTR_FLOATS: case SQ_ONNX_ATTR_INTS: {
        int fl = type == SQ_ONNX_ATTR_FLOATS;
        size_t cnt = fl ? ap->n_floats : ap->n_ints;
        a->type = (sq_onnx_attr_type)type;
        if (cnt > INT_MAX) { fail(what, "%s holds %zu values (too many)", ctx, cnt); return SQ_EFORMAT; }
        a->n = (int)cnt;
        size_t sz = fl ? sizeof(float) : sizeof(int64_t);
        void *p = malloc((cnt ? cnt : 1) * sz);
        if (!p) { fail(what, "%s: out of memory", ctx); return SQ_ENOMEM; }
        if (cnt) memcpy(p, fl ? (const void *)ap->floats : (const void *)ap->ints, cnt * sz);
        if (fl) a->floats = p;
        else a->ints = p;
        break;
    }
    default: a->type = SQ_ONNX_ATTR_OTHER; break;   /* graphs, strings lists, ...: kept by name only */
    }
    return SQ_OK;
}

static sq_status decode_node(const char *what, int ni, const Onnx__NodeProto *np, sq_onnx_node *n)
{
    char pn[200];
    n->name = dup_str(np->name);
    n->op = dup_str(np->op_type);
    n->domain = dup_str(np->domain);
    if (!np->op_type || !*np->op_type) {
        fail(what, "node %d ('%s') has no op_type", ni, pr(np->name, pn, sizeof pn));
        return SQ_EFORMAT;
    }
    char po[100];
    pr(np->op_type, po, sizeof po);   /* the op as quoted in messages */
    if (np->n_input > INT_MAX || np->n_output > INT_MAX || np->n_attribute > INT_MAX) {
        fail(what, "node %d ('%s', %s) has too many inputs, outputs or attributes", ni,
             pr(np->name, pn, sizeof pn), po);
        return SQ_EFORMAT;
    }
    n->in = sq_xcalloc(np->n_input + 1, sizeof *n->in);
    for (size_t j = 0; j < np->n_input; j++) n->in[n->nin++] = dup_str(np->input[j]);
    n->out = sq_xcalloc(np->n_output + 1, sizeof *n->out);
    for (size_t j = 0; j < np->n_output; j++) n->out[n->nout++] = dup_str(np->output[j]);
    n->attr = sq_xcalloc(np->n_attribute + 1, sizeof *n->attr);
    sq_onnx_node q = *n;   /* for messages: op escaped */
    q.op = po;
    for (size_t j = 0; j < np->n_attribute; j++) {
        sq_status st = decode_attr(what, ni, &q, np->attribute[j], &n->attr[n->nattr++]);
        if (st != SQ_OK) return st;
    }
    return SQ_OK;
}

static sq_status decode_value(const char *what, const char *kind, int k, const Onnx__ValueInfoProto *vp,
                              sq_onnx_value *v)
{
    char pn[200];
    v->name = dup_str(vp->name);
    v->ndim = -1;
    const Onnx__TypeProto *tp = vp->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type) return SQ_OK;
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    v->dtype = tt->has_elem_type ? tt->elem_type : 0;
    if (!tt->shape) return SQ_OK;
    if (tt->shape->n_dim > SQ_ONNX_MAX_DIMS) {
        fail(what, "graph %s %d ('%s') has %zu dimensions (at most %d)", kind, k, pr(vp->name, pn, sizeof pn),
             tt->shape->n_dim, SQ_ONNX_MAX_DIMS);
        return SQ_EFORMAT;
    }
    v->ndim = (int)tt->shape->n_dim;
    for (int d = 0; d < v->ndim; d++) {
        const Onnx__TensorShapeProto__Dimension *dm = tt->shape->dim[d];
        v->dims[d] = -1;
        if (dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (dm->dim_value < 0) {
                fail(what, "graph %s %d ('%s') has a negative dimension (%lld at axis %d)", kind, k,
                     pr(vp->name, pn, sizeof pn), (long long)dm->dim_value, d);
                return SQ_EFORMAT;
            }
            v->dims[d] = dm->dim_value;
        } else if (dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && dm->dim_param) {
            v->dim_param[d] = dup_str(dm->dim_param);
        }
    }
    return SQ_OK;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static sq_status decode_model(const char *what, const Onnx__ModelProto *m, sq_onnx_graph *g)
{
    const Onnx__GraphProto *gp = m->graph;
    g->ir_version = m->has_ir_version ? m->ir_version : 0;
    for (size_t k = 0; k < m->n_opset_import; k++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[k];
        if ((!o->domain || !*o->domain || !strcmp(o->domain, "ai.onnx")) && o->has_version) g->opset = o->version;
    }
    {
        const char *pn0 = m->producer_name ? m->producer_name : "", *pv = m->producer_version ? m->producer_version : "";
        size_t l = strlen(pn0) + strlen(pv) + 2;
        g->producer = sq_xmalloc(l);
        snprintf(g->producer, l, "%s%s%s", pn0, *pn0 && *pv ? " " : "", pv);
    }
    g->name = dup_str(gp->name);
    if (gp->n_node > SQ_ONNX_MAX_NODES) {
        fail(what, "the graph has %zu nodes (at most %d)", gp->n_node, SQ_ONNX_MAX_NODES);
        return SQ_EFORMAT;
    }
    if (gp->n_initializer > INT_MAX || gp->n_input > INT_MAX || gp->n_output > INT_MAX) {
        fail(what, "the graph has too many initializers, inputs or outputs");
        return SQ_EFORMAT;
    }
    if (gp->n_sparse_initializer) {
        fail(what, "the graph has sparse initializers (sparse_initializer), which sqakd does not read");
        return SQ_EFORMAT;
    }
    sq_status st;
    g->node = sq_xcalloc(gp->n_node + 1, sizeof *g->node);
    g->cap_node = (int)gp->n_node;
    for (size_t k = 0; k < gp->n_node; k++)
        if ((st = decode_node(what, (int)k, gp->node[k], &g->node[g->nnode++])) != SQ_OK) return st;
    g->init = sq_xcalloc(gp->n_initializer + 1, sizeof *g->init);
    g->cap_init = (int)gp->n_initializer;
    for (size_t k = 0; k < gp->n_initializer; k++) {
        char ctx[64];
        snprintf(ctx, sizeof ctx, "initializer %zu", k);
        if ((st = decode_tensor(what, ctx, gp->initializer[k], &g->init[k])) != SQ_OK) return st;
        g->ninit++;
    }
    /* graph inputs that are initializers (IR < 4 lists every weight as an input) are left out */
    const char **names = sq_xcalloc(gp->n_initializer + 1, sizeof *names);
    for (int k = 0; k < g->ninit; k++) names[k] = g->init[k].name;
    qsort(names, (size_t)g->ninit, sizeof *names, cmp_str_ptr);
    g->input = sq_xcalloc(gp->n_input + 1, sizeof *g->input);
    st = SQ_OK;
    for (size_t k = 0; k < gp->n_input && st == SQ_OK; k++) {
        const char *nm = gp->input[k]->name ? gp->input[k]->name : "";
        if (g->ninit && bsearch(&nm, names, (size_t)g->ninit, sizeof *names, cmp_str_ptr)) continue;
        st = decode_value(what, "input", (int)k, gp->input[k], &g->input[g->ninput++]);
    }
    free(names);
    if (st != SQ_OK) return st;
    g->cap_input = g->ninput;
    g->output = sq_xcalloc(gp->n_output + 1, sizeof *g->output);
    for (size_t k = 0; k < gp->n_output; k++)
        if ((st = decode_value(what, "output", (int)k, gp->output[k], &g->output[g->noutput++])) != SQ_OK)
            return st;
    g->cap_output = g->noutput;
    return SQ_OK;
}

sq_status sq_onnx_read_mem(const void *buf, size_t len, const char *what, sq_onnx_graph **out)
{
    if (!out) { sq_set_error("sq_onnx_read_mem: NULL output"); return SQ_EARG; }
    *out = NULL;
    what = what ? what : "(memory)";
    if (!buf && len) { fail(what, "NULL buffer"); return SQ_EARG; }
    if (!len) { fail(what, "empty file, not an ONNX model"); return SQ_EFORMAT; }
    if (len > SQ_ONNX_MAX_BYTES) {
        fail(what, "%zu bytes, more than the %zu an ONNX model may have here", len, SQ_ONNX_MAX_BYTES);
        return SQ_EFORMAT;
    }
    if (!depth_ok(&onnx__model_proto__descriptor, buf, (const uint8_t *)buf + len, 0)) {
        fail(what, "not an ONNX model: messages nested more than %d deep", ONNX_MAX_DEPTH);
        return SQ_EFORMAT;
    }
    pb_budget bud;
    ProtobufCAllocator al = budget_for(&bud, len);
    Onnx__ModelProto *m = onnx__model_proto__unpack(&al, len, buf);
    if (!m) {
        if (bud.hit)
            fail(what, "not an ONNX model: its messages would take more than %zu bytes of memory", bud.limit);
        else
            fail(what, "not an ONNX model (the protobuf data does not parse: truncated or corrupt)");
        return SQ_EFORMAT;
    }
    if (!m->graph) {
        onnx__model_proto__free_unpacked(m, &al);
        fail(what, "not an ONNX model (no graph in it)");
        return SQ_EFORMAT;
    }
    sq_onnx_graph *g = sq_xcalloc(1, sizeof *g);
    sq_status st = decode_model(what, m, g);
    onnx__model_proto__free_unpacked(m, &al);
    if (st != SQ_OK) { sq_onnx_free(g); return st; }
    *out = g;
    return SQ_OK;
}

/* Reads a whole file of at most SQ_ONNX_MAX_BYTES, checking the size before allocating. */
static sq_status slurp(const char *path, size_t max, void **buf, size_t *len, const char *kind)
{
    char pp[512];
    *buf = NULL;
    *len = 0;
    if (!path) { sq_set_error("reading %s: NULL path", kind); return SQ_EARG; }
    sq_printable(path, pp, sizeof pp);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { sq_set_error("%s: cannot open %s: %s", pp, kind, strerror(errno)); return SQ_EIO; }
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        sq_set_error("%s: not a regular file", pp);
        close(fd);
        return SQ_EIO;
    }
    if ((uint64_t)sb.st_size > max) {
        sq_set_error("%s: %lld bytes, more than the %zu a %s may have here", pp, (long long)sb.st_size, max, kind);
        close(fd);
        return SQ_EFORMAT;
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *b = malloc(n ? n : 1);
    if (!b) { sq_set_error("%s: out of memory for %zu bytes", pp, n); close(fd); return SQ_ENOMEM; }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            sq_set_error("%s: read failed after %zu of %zu bytes: %s", pp, got, n, r ? strerror(errno) : "file shrank");
            free(b);
            close(fd);
            return SQ_EIO;
        }
        got += (size_t)r;
    }
    close(fd);
    *buf = b;
    *len = n;
    return SQ_OK;
}

sq_status sq_onnx_read(const char *path, sq_onnx_graph **out)
{
    if (out) *out = NULL;
    if (!out) { sq_set_error("sq_onnx_read: NULL output"); return SQ_EARG; }
    void *buf;
    size_t len;
    sq_status st = slurp(path, SQ_ONNX_MAX_BYTES, &buf, &len, "ONNX model");
    if (st != SQ_OK) return st;
    st = sq_onnx_read_mem(buf, len, path, out);
    free(buf);
    return st;
}

sq_status sq_onnx_read_tensor_mem(const void *buf, size_t len, const char *what, sq_onnx_tensor *t)
{
    if (!t) { sq_set_error("sq_onnx_read_tensor_mem: NULL output"); return SQ_EARG; }
    memset(t, 0, sizeof *t);
    what = what ? what : "(memory)";
    if (!buf && len) { fail(what, "NULL buffer"); return SQ_EARG; }
    if (len > SQ_ONNX_MAX_BYTES) {
        fail(what, "%zu bytes, more than the %zu a tensor file may have here", len, SQ_ONNX_MAX_BYTES);
        return SQ_EFORMAT;
    }
    if (!depth_ok(&onnx__tensor_proto__descriptor, buf, (const uint8_t *)buf + len, 0)) {
        fail(what, "not an ONNX tensor: messages nested more than %d deep", ONNX_MAX_DEPTH);
        return SQ_EFORMAT;
    }
    pb_budget bud;
    ProtobufCAllocator al = budget_for(&bud, len);
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(&al, len, buf);
    if (!tp) {
        if (bud.hit)
            fail(what, "not an ONNX TensorProto: its messages would take more than %zu bytes of memory", bud.limit);
        else
            fail(what, "not an ONNX TensorProto (the protobuf data does not parse: truncated or corrupt)");
        return SQ_EFORMAT;
    }
    if (!tp->has_data_type || tp->data_type == 0) {
        onnx__tensor_proto__free_unpacked(tp, &al);
        fail(what, "not an ONNX TensorProto (no data type)");
        return SQ_EFORMAT;
    }
    sq_status st = decode_tensor(what, "the tensor", tp, t);
    onnx__tensor_proto__free_unpacked(tp, &al);
    return st;
}

sq_status sq_onnx_read_tensor(const char *path, sq_onnx_tensor *t)
{
    if (!t) { sq_set_error("sq_onnx_read_tensor: NULL output"); return SQ_EARG; }
    memset(t, 0, sizeof *t);
    void *buf;
    size_t len;
    sq_status st = slurp(path, SQ_ONNX_MAX_BYTES, &buf, &len, "tensor file");
    if (st != SQ_OK) return st;
    st = sq_onnx_read_tensor_mem(buf, len, path, t);
    free(buf);
    return st;
}

const sq_onnx_attr *sq_onnx_attr_find(const sq_onnx_node *n, const char *name)
{
    if (!n || !name) return NULL;
    for (int k = 0; k < n->nattr; k++)
        if (n->attr[k].name && !strcmp(n->attr[k].name, name)) return &n->attr[k];
    return NULL;
}

const sq_onnx_tensor *sq_onnx_init_find(const sq_onnx_graph *g, const char *name)
{
    if (!g || !name) return NULL;
    for (int k = 0; k < g->ninit; k++)
        if (g->init[k].name && !strcmp(g->init[k].name, name)) return &g->init[k];
    return NULL;
}

/* ---------------------------------------------------------------- building a graph */

/* grows an array of elements of size sz to hold need elements (doubling), aborting on OOM as the
   other small-structure allocations do; new elements are zeroed */
static void *grow(void *p, int *cap, int need, size_t sz)
{
    if (need <= *cap) return p;
    int nc = *cap ? *cap : 4;
    while (nc < need) nc *= 2;
    p = realloc(p, (size_t)nc * sz);
    if (!p) { fprintf(stderr, "sqakd: out of memory\n"); abort(); }
    memset((char *)p + (size_t)*cap * sz, 0, (size_t)(nc - *cap) * sz);
    *cap = nc;
    return p;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d) { fprintf(stderr, "sqakd: out of memory\n"); abort(); }
    return d;
}

sq_onnx_graph *sq_onnx_new(const char *name, int64_t opset)
{
    sq_onnx_graph *g = sq_xcalloc(1, sizeof *g);
    g->name = xstrdup(name && *name ? name : "sqakd");
    g->producer = xstrdup("sqakd");
    g->ir_version = 8;
    g->opset = opset;
    return g;
}

sq_onnx_node *sq_onnx_add_node(sq_onnx_graph *g, const char *op, const char *name, int nin,
                               const char *const *in, int nout, const char *const *out)
{
    if (!g || !op || !*op || nin < 0 || nout < 0 || (nin && !in) || (nout && !out)) {
        char po[100];
        sq_set_error("sq_onnx_add_node: invalid arguments (op '%s', %d inputs, %d outputs)",
                     sq_printable(op, po, sizeof po), nin, nout);
        return NULL;
    }
    g->node = grow(g->node, &g->cap_node, g->nnode + 1, sizeof *g->node);
    sq_onnx_node *n = &g->node[g->nnode++];
    memset(n, 0, sizeof *n);
    n->op = xstrdup(op);
    n->name = xstrdup(name);
    n->domain = xstrdup("");
    n->in = sq_xcalloc((size_t)nin + 1, sizeof *n->in);
    n->out = sq_xcalloc((size_t)nout + 1, sizeof *n->out);
    for (n->nin = 0; n->nin < nin; n->nin++) n->in[n->nin] = xstrdup(in[n->nin]);
    for (n->nout = 0; n->nout < nout; n->nout++) n->out[n->nout] = xstrdup(out[n->nout]);
    return n;
}

/* the attribute `name` of n, emptied for a new value (an existing one is replaced, so a node
   never carries an attribute twice) */
static sq_onnx_attr *attr_slot(sq_onnx_node *n, const char *name)
{
    for (int k = 0; k < n->nattr; k++)
        if (!strcmp(n->attr[k].name, name)) {
            sq_onnx_attr *a = &n->attr[k];
            free(a->s);
            if (a->t) { sq_onnx_tensor_clear(a->t); free(a->t); }
            free(a->floats);
            free(a->ints);
            char *nm = a->name;
            memset(a, 0, sizeof *a);
            a->name = nm;
            return a;
        }
    sq_onnx_attr *na = realloc(n->attr, (size_t)(n->nattr + 1) * sizeof *n->attr);
    if (!na) { fprintf(stderr, "sqakd: out of memory\n"); abort(); }
    n->attr = na;
    sq_onnx_attr *a = &n->attr[n->nattr++];
    memset(a, 0, sizeof *a);
    a->name = xstrdup(name);
    return a;
}

void sq_onnx_attr_int(sq_onnx_node *n, const char *name, int64_t v)
{
    if (!n || !name) return;
    sq_onnx_attr *a = attr_slot(n, name);
    a->type = SQ_ONNX_ATTR_INT;
    a->i = v;
}

void sq_onnx_attr_float(sq_onnx_node *n, const char *name, float v)
{
    if (!n || !name) return;
    sq_onnx_attr *a = attr_slot(n, name);
    a->type = SQ_ONNX_ATTR_FLOAT;
    a->f = v;
}

void sq_onnx_attr_string(sq_onnx_node *n, const char *name, const char *v)
{
    if (!n || !name) return;
    sq_onnx_attr *a = attr_slot(n, name);
    a->type = SQ_ONNX_ATTR_STRING;
    a->s = xstrdup(v);
}

void sq_onnx_attr_ints(sq_onnx_node *n, const char *name, int count, const int64_t *v)
{
    if (!n || !name || count < 0 || (count && !v)) return;
    sq_onnx_attr *a = attr_slot(n, name);
    a->type = SQ_ONNX_ATTR_INTS;
    a->n = count;
    a->ints = sq_xmalloc(((size_t)count + 1) * sizeof *a->ints);
    if (count) memcpy(a->ints, v, (size_t)count * sizeof *v);
}

void sq_onnx_attr_floats(sq_onnx_node *n, const char *name, int count, const float *v)
{
    if (!n || !name || count < 0 || (count && !v)) return;
    sq_onnx_attr *a = attr_slot(n, name);
    a->type = SQ_ONNX_ATTR_FLOATS;
    a->n = count;
    a->floats = sq_xmalloc(((size_t)count + 1) * sizeof *a->floats);
    if (count) memcpy(a->floats, v, (size_t)count * sizeof *v);
}

/* range of the integer types the builder takes */
static int int_range(int dtype, int64_t *lo, int64_t *hi)
{
    switch (dtype) {
    case SQ_ONNX_INT8: *lo = INT8_MIN; *hi = INT8_MAX; return 1;
    case SQ_ONNX_UINT8: *lo = 0; *hi = UINT8_MAX; return 1;
    case SQ_ONNX_INT16: *lo = INT16_MIN; *hi = INT16_MAX; return 1;
    case SQ_ONNX_UINT16: *lo = 0; *hi = UINT16_MAX; return 1;
    case SQ_ONNX_INT32: *lo = INT32_MIN; *hi = INT32_MAX; return 1;
    case SQ_ONNX_UINT32: *lo = 0; *hi = UINT32_MAX; return 1;
    case SQ_ONNX_INT64: *lo = INT64_MIN; *hi = INT64_MAX; return 1;
    case SQ_ONNX_BOOL: *lo = 0; *hi = 1; return 1;
    default: return 0;
    }
}

/* fills *t (zeroed first) from caller data: float data for FLOAT, int64_t data for the integer
   types, each value within its type's range */
static sq_status make_tensor(const char *fn, const char *name, int dtype, int ndim, const int64_t *dims,
                             const void *data, sq_onnx_tensor *t)
{
    memset(t, 0, sizeof *t);
    char pn[200];
    pr(name, pn, sizeof pn);
    int64_t lo = 0, hi = 0;
    if (!name || ndim < 0 || ndim > SQ_ONNX_MAX_DIMS || (ndim && !dims) ||
        (dtype != SQ_ONNX_FLOAT && !int_range(dtype, &lo, &hi))) {
        sq_set_error("%s: tensor '%s': invalid arguments (data type %d (%s), %d dims)", fn, pn, dtype,
                     dtype_name(dtype), ndim);
        return SQ_EARG;
    }
    size_t numel = 1;
    for (int d = 0; d < ndim; d++)
        if (dims[d] < 0 || __builtin_mul_overflow(numel, (size_t)dims[d], &numel) || numel > SQ_ONNX_MAX_NUMEL) {
            sq_set_error("%s: tensor '%s': dimension %d (%lld) is negative or the size is over %zu elements",
                         fn, pn, d, (long long)dims[d], SQ_ONNX_MAX_NUMEL);
            return SQ_EARG;
        }
    if (numel && !data) {
        sq_set_error("%s: tensor '%s': NULL data", fn, pn);
        return SQ_EARG;
    }
    if (dtype != SQ_ONNX_FLOAT)
        for (size_t k = 0; k < numel; k++) {
            int64_t v = ((const int64_t *)data)[k];
            if (v < lo || v > hi) {
                sq_set_error("%s: tensor '%s': element %zu (%lld) does not fit %s", fn, pn, k, (long long)v,
                             dtype_name(dtype));
                return SQ_EARG;
            }
        }
    size_t es = dtype == SQ_ONNX_FLOAT ? sizeof(float) : sizeof(int64_t);
    void *copy = malloc((numel ? numel : 1) * es);
    if (!copy) {
        sq_set_error("%s: tensor '%s': out of memory for %zu elements", fn, pn, numel);
        return SQ_ENOMEM;
    }
    if (numel) memcpy(copy, data, numel * es);
    t->name = xstrdup(name);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->dims[d] = dims[d];
    t->numel = numel;
    if (dtype == SQ_ONNX_FLOAT) t->f = copy;
    else t->i = copy;
    return SQ_OK;
}

sq_onnx_tensor *sq_onnx_add_init(sq_onnx_graph *g, const char *name, int dtype, int ndim,
                                 const int64_t *dims, const void *data)
{
    if (!g) { sq_set_error("sq_onnx_add_init: NULL graph"); return NULL; }
    sq_onnx_tensor t;
    if (make_tensor("sq_onnx_add_init", name, dtype, ndim, dims, data, &t) != SQ_OK) return NULL;
    g->init = grow(g->init, &g->cap_init, g->ninit + 1, sizeof *g->init);
    g->init[g->ninit] = t;
    return &g->init[g->ninit++];
}

sq_status sq_onnx_attr_tensor(sq_onnx_node *n, const char *name, int dtype, int ndim, const int64_t *dims,
                              const void *data)
{
    if (!n || !name) { sq_set_error("sq_onnx_attr_tensor: NULL node or name"); return SQ_EARG; }
    sq_onnx_tensor t;
    sq_status st = make_tensor("sq_onnx_attr_tensor", "", dtype, ndim, dims, data, &t);
    if (st != SQ_OK) return st;
    sq_onnx_attr *a = attr_slot(n, name);
    a->type = SQ_ONNX_ATTR_TENSOR;
    a->t = sq_xmalloc(sizeof *a->t);
    *a->t = t;
    return SQ_OK;
}

static void add_value(sq_onnx_value **arr, int *cnt, int *cap, const char *name, int dtype, int ndim,
                      const int64_t *dims)
{
    *arr = grow(*arr, cap, *cnt + 1, sizeof **arr);
    sq_onnx_value *v = &(*arr)[(*cnt)++];
    memset(v, 0, sizeof *v);
    v->name = xstrdup(name);
    v->dtype = dtype;
    /* more than SQ_ONNX_MAX_DIMS dims is kept as the count alone: the encoder refuses it */
    v->ndim = ndim < 0 ? -1 : ndim;
    for (int d = 0; d < ndim && d < SQ_ONNX_MAX_DIMS; d++) {
        v->dims[d] = dims && dims[d] >= 0 ? dims[d] : -1;
        if (v->dims[d] < 0) v->dim_param[d] = xstrdup("N");
    }
}

void sq_onnx_add_input(sq_onnx_graph *g, const char *name, int dtype, int ndim, const int64_t *dims)
{
    if (g && name) add_value(&g->input, &g->ninput, &g->cap_input, name, dtype, ndim, dims);
}

void sq_onnx_add_output(sq_onnx_graph *g, const char *name, int dtype, int ndim, const int64_t *dims)
{
    if (g && name) add_value(&g->output, &g->noutput, &g->cap_output, name, dtype, ndim, dims);
}

/* ---------------------------------------------------------------- encoding */

/* every allocation of one encoding, released together */
typedef struct enc {
    void **p;
    int n, cap;
    const char *what;   /* names the graph or file in errors */
    int bad;
} enc;

static void *ealloc(enc *e, size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) { fprintf(stderr, "sqakd: out of memory\n"); abort(); }
    e->p = grow(e->p, &e->cap, e->n + 1, sizeof *e->p);
    e->p[e->n++] = p;
    return p;
}

/* NULL for "": protobuf-c leaves an unset optional string out of the file */
static char *opt_str(const char *s) { return s && *s ? (char *)s : NULL; }

static Onnx__TensorProto *enc_tensor(enc *e, const sq_onnx_tensor *t, const char *ctx)
{
    Onnx__TensorProto *tp = ealloc(e, sizeof *tp);
    onnx__tensor_proto__init(tp);
    char pn[200];
    pr(t->name, pn, sizeof pn);
    size_t es = elem_size(t->dtype), numel = 1;
    int fl = is_float_type(t->dtype), ok = es && t->ndim >= 0 && t->ndim <= SQ_ONNX_MAX_DIMS;
    for (int d = 0; ok && d < t->ndim; d++)
        ok = t->dims[d] >= 0 && !__builtin_mul_overflow(numel, (size_t)t->dims[d], &numel);
    if (!ok || numel != t->numel || (numel && (fl ? !t->f : !t->i))) {
        sq_set_error("%s: %s, tensor '%s': data type %d (%s), %d dims and %zu elements do not add up"
                     " (or its data is missing)", e->what, ctx, pn, t->dtype, dtype_name(t->dtype), t->ndim, t->numel);
        e->bad = 1;
        return tp;
    }
    tp->n_dims = (size_t)t->ndim;
    tp->dims = (int64_t *)t->dims;
    tp->has_data_type = 1;
    tp->data_type = t->dtype;
    tp->name = opt_str(t->name);
    uint8_t *raw = ealloc(e, numel * es);
    for (size_t k = 0; k < numel; k++) {
        uint64_t bits = 0;
        switch (t->dtype) {
        case SQ_ONNX_FLOAT: { uint32_t b; memcpy(&b, &t->f[k], 4); bits = b; break; }
        case SQ_ONNX_DOUBLE: { double x = t->f[k]; memcpy(&bits, &x, 8); break; }
        case SQ_ONNX_FLOAT16: bits = float_to_half(t->f[k]); break;
        case SQ_ONNX_BFLOAT16: bits = float_to_bf16(t->f[k]); break;
        default: bits = (uint64_t)t->i[k]; break;   /* low es bytes, little-endian */
        }
        for (size_t b = 0; b < es; b++) raw[k * es + b] = (uint8_t)(bits >> (8 * b));
    }
    tp->has_raw_data = 1;
    tp->raw_data.len = numel * es;
    tp->raw_data.data = raw;
    return tp;
}

static Onnx__ValueInfoProto *enc_value(enc *e, const sq_onnx_value *v, const char *kind)
{
    Onnx__ValueInfoProto *vp = ealloc(e, sizeof *vp);
    onnx__value_info_proto__init(vp);
    vp->name = (char *)(v->name ? v->name : "");
    Onnx__TypeProto *tp = ealloc(e, sizeof *tp);
    onnx__type_proto__init(tp);
    Onnx__TypeProto__Tensor *tt = ealloc(e, sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vp->type = tp;
    tt->has_elem_type = v->dtype != 0;
    tt->elem_type = v->dtype;
    if (v->ndim > SQ_ONNX_MAX_DIMS) {
        char pn[200];
        sq_set_error("%s: graph %s '%s' has %d dimensions (at most %d)", e->what, kind, pr(v->name, pn, sizeof pn),
                     v->ndim, SQ_ONNX_MAX_DIMS);
        e->bad = 1;
        return vp;
    }
    if (v->ndim >= 0) {
        Onnx__TensorShapeProto *sh = ealloc(e, sizeof *sh);
        onnx__tensor_shape_proto__init(sh);
        sh->n_dim = (size_t)v->ndim;
        sh->dim = ealloc(e, (size_t)(v->ndim + 1) * sizeof *sh->dim);
        for (int d = 0; d < v->ndim; d++) {
            Onnx__TensorShapeProto__Dimension *dm = ealloc(e, sizeof *dm);
            onnx__tensor_shape_proto__dimension__init(dm);
            if (v->dims[d] >= 0) {
                dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                dm->dim_value = v->dims[d];
            } else {
                dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                dm->dim_param = (char *)(v->dim_param[d] && *v->dim_param[d] ? v->dim_param[d] : "N");
            }
            sh->dim[d] = dm;
        }
        tt->shape = sh;
    }
    return vp;
}

static Onnx__NodeProto *enc_node(enc *e, int k, const sq_onnx_node *n)
{
    Onnx__NodeProto *np = ealloc(e, sizeof *np);
    onnx__node_proto__init(np);
    np->n_input = (size_t)n->nin;
    np->input = n->in;
    np->n_output = (size_t)n->nout;
    np->output = n->out;
    np->name = opt_str(n->name);
    np->op_type = n->op;
    np->domain = opt_str(n->domain);
    np->n_attribute = (size_t)n->nattr;
    np->attribute = ealloc(e, (size_t)(n->nattr + 1) * sizeof *np->attribute);
    for (int j = 0; j < n->nattr; j++) {
        const sq_onnx_attr *a = &n->attr[j];
        Onnx__AttributeProto *ap = ealloc(e, sizeof *ap);
        onnx__attribute_proto__init(ap);
        ap->name = a->name;
        ap->has_type = 1;
        ap->type = (Onnx__AttributeProto__AttributeType)a->type;
        char ctx[400], pa[100], pn[100], po[100];
        snprintf(ctx, sizeof ctx, "attribute '%s' of node %d ('%s', %s)", pr(a->name, pa, sizeof pa), k,
                 pr(n->name, pn, sizeof pn), pr(n->op, po, sizeof po));
        switch (a->type) {
        case SQ_ONNX_ATTR_FLOAT: ap->has_f = 1; ap->f = a->f; break;
        case SQ_ONNX_ATTR_INT: ap->has_i = 1; ap->i = a->i; break;
        case SQ_ONNX_ATTR_STRING:
            ap->has_s = 1;
            ap->s.data = (uint8_t *)(a->s ? a->s : "");
            ap->s.len = a->s ? strlen(a->s) : 0;
            break;
        case SQ_ONNX_ATTR_TENSOR:
            if (!a->t) { sq_set_error("%s: %s holds no tensor", e->what, ctx); e->bad = 1; break; }
            ap->t = enc_tensor(e, a->t, ctx);
            break;
        case SQ_ONNX_ATTR_FLOATS: ap->n_floats = (size_t)a->n; ap->floats = a->floats; break;
        case SQ_ONNX_ATTR_INTS: ap->n_ints = (size_t)a->n; ap->ints = a->ints; break;
        default:
            sq_set_error("%s: %s is of a kind the writer does not encode", e->what, ctx);
            e->bad = 1;
        }
        np->attribute[j] = ap;
    }
    return np;
}

static sq_status encode(const sq_onnx_graph *g, const char *what, void **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    if (!g || g->nnode < 0 || g->ninit < 0 || g->ninput < 0 || g->noutput < 0) {
        sq_set_error("%s: invalid graph", what);
        return SQ_EARG;
    }
    if (g->opset <= 0) {
        sq_set_error("%s: the graph has no opset (%lld) for the default domain", what, (long long)g->opset);
        return SQ_EARG;
    }
    enc e = { .what = what };
    Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
    Onnx__GraphProto gp = ONNX__GRAPH_PROTO__INIT;
    m.has_ir_version = 1;
    m.ir_version = g->ir_version > 0 ? g->ir_version : 8;
    m.producer_name = opt_str(g->producer);
    m.graph = &gp;
    /* opset imports: the default domain, and version 1 of every other domain a node uses */
    m.opset_import = ealloc(&e, (size_t)(g->nnode + 2) * sizeof *m.opset_import);
    Onnx__OperatorSetIdProto *os = ealloc(&e, sizeof *os);
    onnx__operator_set_id_proto__init(os);
    os->has_version = 1;
    os->version = g->opset;
    m.opset_import[m.n_opset_import++] = os;
    for (int k = 0; k < g->nnode; k++) {
        const char *d = g->node[k].domain;
        if (!d || !*d || !strcmp(d, "ai.onnx")) continue;
        int seen = 0;
        for (size_t j = 1; j < m.n_opset_import && !seen; j++) seen = !strcmp(m.opset_import[j]->domain, d);
        if (seen) continue;
        Onnx__OperatorSetIdProto *o = ealloc(&e, sizeof *o);
        onnx__operator_set_id_proto__init(o);
        o->domain = (char *)d;
        o->has_version = 1;
        o->version = 1;
        m.opset_import[m.n_opset_import++] = o;
    }
    gp.name = (char *)(g->name && *g->name ? g->name : "sqakd");
    gp.n_node = (size_t)g->nnode;
    gp.node = ealloc(&e, (size_t)(g->nnode + 1) * sizeof *gp.node);
    for (int k = 0; k < g->nnode; k++) gp.node[k] = enc_node(&e, k, &g->node[k]);
    gp.n_initializer = (size_t)g->ninit;
    gp.initializer = ealloc(&e, (size_t)(g->ninit + 1) * sizeof *gp.initializer);
    for (int k = 0; k < g->ninit; k++) {
        char ctx[64];
        snprintf(ctx, sizeof ctx, "initializer %d", k);
        gp.initializer[k] = enc_tensor(&e, &g->init[k], ctx);
    }
    gp.n_input = (size_t)g->ninput;
    gp.input = ealloc(&e, (size_t)(g->ninput + 1) * sizeof *gp.input);
    for (int k = 0; k < g->ninput; k++) gp.input[k] = enc_value(&e, &g->input[k], "input");
    gp.n_output = (size_t)g->noutput;
    gp.output = ealloc(&e, (size_t)(g->noutput + 1) * sizeof *gp.output);
    for (int k = 0; k < g->noutput; k++) gp.output[k] = enc_value(&e, &g->output[k], "output");
    sq_status st = SQ_OK;
    if (e.bad) st = SQ_EARG;
    else {
        size_t n = protobuf_c_message_get_packed_size(&m.base);
        uint8_t *b = malloc(n ? n : 1);
        if (!b) {
            sq_set_error("%s: out of memory for %zu bytes", what, n);
            st = SQ_ENOMEM;
        } else {
            *len = protobuf_c_message_pack(&m.base, b);
            *buf = b;
        }
    }
    for (int k = 0; k < e.n; k++) free(e.p[k]);
    free(e.p);
    return st;
}

sq_status sq_onnx_encode(const sq_onnx_graph *g, void **buf, size_t *len)
{
    if (!buf || !len) { sq_set_error("sq_onnx_encode: NULL output"); return SQ_EARG; }
    char what[300], pn[200];
    snprintf(what, sizeof what, "encoding ONNX graph '%s'", g ? pr(g->name, pn, sizeof pn) : "(null)");
    return encode(g, what, buf, len);
}

sq_status sq_onnx_write(const sq_onnx_graph *g, const char *path)
{
    if (!path) { sq_set_error("sq_onnx_write: NULL path"); return SQ_EARG; }
    char what[600], pp[512];
    snprintf(what, sizeof what, "writing %s", sq_printable(path, pp, sizeof pp));
    void *buf;
    size_t len;
    sq_status st = encode(g, what, &buf, &len);
    if (st != SQ_OK) return st;
    sq_io_seg seg = { buf, len };
    st = sq_io_write_atomic(path, &seg, 1);
    free(buf);
    return st;
}
