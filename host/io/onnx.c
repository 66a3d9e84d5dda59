/* onnx.c: ONNX models in and out (include/sqakd/onnx.h). The protobuf wire format is decoded and
   encoded by protobuf-c with code generated at build time from onnx.proto (build/gen); this is
   the only file that sees it. The reader checks the nesting depth of the input before protobuf-c
   unpacks it (protobuf-c recurses once per nested message), then copies what sqakd uses into the
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
__attribute__((format(printf, 2, 3))) static void fail(const char *what, const char *fmt, ...)
{
    char msg[1024], pw[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sq_set_error("%s: %s", sq_printable(what, pw, sizeof pw), msg);
}

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
        fail(what, "%s, tensor '%s', is one segment of a split tensor (not supported)", ctx, pn);
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
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    if (!m) {
        fail(what, "not an ONNX model (the protobuf data does not parse: truncated or corrupt)");
        return SQ_EFORMAT;
    }
    if (!m->graph) {
        onnx__model_proto__free_unpacked(m, NULL);
        fail(what, "not an ONNX model (no graph in it)");
        return SQ_EFORMAT;
    }
    sq_onnx_graph *g = sq_xcalloc(1, sizeof *g);
    sq_status st = decode_model(what, m, g);
    onnx__model_proto__free_unpacked(m, NULL);
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
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
    if (!tp) {
        fail(what, "not an ONNX TensorProto (the protobuf data does not parse: truncated or corrupt)");
        return SQ_EFORMAT;
    }
    if (!tp->has_data_type || tp->data_type == 0) {
        onnx__tensor_proto__free_unpacked(tp, NULL);
        fail(what, "not an ONNX TensorProto (no data type)");
        return SQ_EFORMAT;
    }
    sq_status st = decode_tensor(what, "the tensor", tp, t);
    onnx__tensor_proto__free_unpacked(tp, NULL);
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
