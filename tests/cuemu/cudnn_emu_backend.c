/* cudnn_emu_backend.c: the part of cuDNN 9's backend (graph) API that the CUDA backend's
   SQAKD_CONV_API=backend path uses (kernels/cuda/cudnn_be.c), emulated on the CPU for cuemu:
   tensor, convolution, convolution operation (forward, backward data, backward filter), operation
   graph, engine heuristics, engine config, engine, execution plan and variant pack descriptors,
   and cudnnBackendExecute (run now, or recorded while the handle's stream captures a graph).

   It is strict where cuDNN's documentation is, so that a wrong attribute type, a missing
   required attribute or a use before cudnnBackendFinalize fails here as it would on a GPU:
   - SetAttribute: the attribute must belong to the descriptor's type, with the documented
     attribute type and element count; a descriptor-valued attribute must be a finalized
     descriptor of the documented kind; nothing can be set after Finalize (BAD_PARAM).
   - Finalize: every required attribute set and consistent (tensor dims / strides / alignment,
     the convolution's output shape, distinct UIDs), else BAD_PARAM; what the emulation does not
     implement (more than one operation per graph, non-FP32 or non-packed tensors, spatial dims
     other than 2) is NOT_SUPPORTED.
   - GetAttribute of the heuristics' results and of an engine config's engine fills descriptors
     that the caller created and did not finalize, and finalizes them.
   - Execute: finalized plan and pack, every UID of the operation in the pack, pointers aligned
     as the tensors declared (BAD_PARAM_MISALIGNED_POINTER), device ranges as large as the
     tensors (fatal otherwise), a workspace as large as the plan's (BAD_PARAM; its contents are
     then ruined).
   Finalized descriptors copy what they need, so any destruction order is safe.

   Engines (global index: notes; what its plan needs), in the order heuristics mode A lists them:
     0: TENSOR_CORE + DOWN_CONVERT_INPUTS; no workspace
     1: NONDETERMINISTIC; a workspace
     2: behaviour RUNTIME_COMPILATION; no workspace
     3: TENSOR_CORE; a workspace; finalizing its plan fails (NOT_SUPPORTED_SHAPE) unless the
        input and output channels per group are multiples of 4, as tensor-core kernels want
     4: no note; a shape-dependent workspace
   Every engine computes the same result (in double, rounded to FP32 once).

   Faults for tests, from the environment variable CUEMU_DNN_BACKEND_FAULT, read at each call:
     "heuristics": the heuristics return no engine config;
     "execute": cudnnBackendExecute returns CUDNN_STATUS_EXECUTION_FAILED;
     "wrong": the plans of engine 4 compute alpha * 1.001 * op(...) (a plan that disagrees). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cudnn_emu_int.h"

#define BE_MAGIC 0x42454e44u
#define BE_MAX_ATTRS 16
#define BE_NENGINES 5

/* a convolution operation, as finalized: what every descriptor downstream copies */
typedef struct be_op {
    int dir; /* DIR_FWD, DIR_BWD_DATA, DIR_BWD_FILTER */
    float alpha, beta;
    conv_geom g;
    int64_t uid[3];  /* x (dx), w (dw), y (dy) */
    int64_t align[3];
    size_t count[3]; /* elements */
} be_op;

typedef struct be_attr {
    int name, type;
    int64_t count;
    unsigned char data[8 * 8];
} be_attr;

typedef struct be_desc {
    uint32_t magic;
    cudnnBackendDescriptorType_t type;
    int finalized;
    be_attr attr[BE_MAX_ATTRS];
    int nattr;
    /* derived at Finalize (or filled by a GetAttribute) */
    int64_t dims[8], strides[8], uid, align;
    int nd;
    cudnnDataType_t dt;
    be_op op;          /* operations, graphs, heuristics, configs, engines, plans */
    int engine;        /* configs, engines, plans */
    cudnnHandle_t handle;
    size_t ws;         /* plans */
    int nres;          /* heuristics: results */
    int64_t pack_uid[8];
    void *pack_ptr[8];
    void *pack_ws;
    int pack_n;
} be_desc;

/* ---- attribute schema ---- */

typedef struct attr_rule {
    cudnnBackendDescriptorType_t desc;
    int name, type;
    int64_t min, max;
    int ref; /* for BACKEND_DESCRIPTOR values: the kind referenced (-1: an operation) */
} attr_rule;

#define OP_REF (-1)
static const attr_rule g_rules[] = {
    {CUDNN_BACKEND_TENSOR_DESCRIPTOR, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, 1, 0},
    {CUDNN_BACKEND_TENSOR_DESCRIPTOR, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 1, 8, 0},
    {CUDNN_BACKEND_TENSOR_DESCRIPTOR, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 1, 8, 0},
    {CUDNN_BACKEND_TENSOR_DESCRIPTOR, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, 1, 0},
    {CUDNN_BACKEND_TENSOR_DESCRIPTOR, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, 1, 0},
    {CUDNN_BACKEND_TENSOR_DESCRIPTOR, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, 1, 0},
    {CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, 1, 0},
    {CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, 1, 0},
    {CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, 1, 0},
    {CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 1, 3, 0},
    {CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 1, 3, 0},
    {CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 1, 3, 0},
    {CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 1, 3, 0},
#define OPS(D, A, X, W, Y, CD, AL, BE)                                                            \
    {D, X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, 1, CUDNN_BACKEND_TENSOR_DESCRIPTOR},                \
    {D, W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, 1, CUDNN_BACKEND_TENSOR_DESCRIPTOR},                \
    {D, Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, 1, CUDNN_BACKEND_TENSOR_DESCRIPTOR},                \
    {D, CD, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, 1, CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR},          \
    {D, AL, CUDNN_TYPE_FLOAT, 1, 1, 0}, {D, AL, CUDNN_TYPE_DOUBLE, 1, 1, 0},                     \
    {D, BE, CUDNN_TYPE_FLOAT, 1, 1, 0}, {D, BE, CUDNN_TYPE_DOUBLE, 1, 1, 0}
    OPS(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR, 0,
        CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W,
        CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
        CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA),
    OPS(CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR, 0,
        CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W,
        CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC,
        CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA),
    OPS(CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR, 0,
        CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW,
        CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY,
        CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC,
        CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA),
#undef OPS
    {CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, 8, OP_REF},
    {CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, 1, 0},
    {CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, 1, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR},
    {CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, 1, 0},
    {CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, 1, 0},
    {CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, 1, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR},
    {CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 1, 8, 0},
    {CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 1, 8, 0},
    {CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, 1, 0},
};

static size_t type_size(int type)
{
    switch (type) {
    case CUDNN_TYPE_HANDLE: return sizeof(cudnnHandle_t);
    case CUDNN_TYPE_DATA_TYPE: return sizeof(cudnnDataType_t);
    case CUDNN_TYPE_BOOLEAN: return sizeof(bool);
    case CUDNN_TYPE_INT64: return sizeof(int64_t);
    case CUDNN_TYPE_FLOAT: return sizeof(float);
    case CUDNN_TYPE_DOUBLE: return sizeof(double);
    case CUDNN_TYPE_VOID_PTR: return sizeof(void *);
    case CUDNN_TYPE_CONVOLUTION_MODE: return sizeof(cudnnConvolutionMode_t);
    case CUDNN_TYPE_HEUR_MODE: return sizeof(cudnnBackendHeurMode_t);
    case CUDNN_TYPE_NUMERICAL_NOTE: return sizeof(cudnnBackendNumericalNote_t);
    case CUDNN_TYPE_BEHAVIOR_NOTE: return sizeof(cudnnBackendBehaviorNote_t);
    case CUDNN_TYPE_BACKEND_DESCRIPTOR: return sizeof(cudnnBackendDescriptor_t);
    default: return 0;
    }
}

static be_desc *as_desc(cudnnBackendDescriptor_t d)
{
    be_desc *b = d;
    return b && b->magic == BE_MAGIC ? b : NULL;
}

static int is_op(cudnnBackendDescriptorType_t t)
{
    return t == CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR ||
           t == CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR ||
           t == CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR;
}

static const be_attr *find_attr(const be_desc *d, int name)
{
    for (int i = 0; i < d->nattr; i++)
        if (d->attr[i].name == name) return &d->attr[i];
    return NULL;
}

static int64_t attr_i64(const be_desc *d, int name, int i)
{
    const be_attr *a = find_attr(d, name);
    int64_t v;
    memcpy(&v, a->data + (size_t)i * sizeof v, sizeof v);
    return v;
}

static be_desc *attr_desc(const be_desc *d, int name, int i)
{
    const be_attr *a = find_attr(d, name);
    void *v;
    memcpy(&v, a->data + (size_t)i * sizeof v, sizeof v);
    return v;
}

static float attr_scalar(const be_desc *d, int name)
{
    const be_attr *a = find_attr(d, name);
    if (a->type == CUDNN_TYPE_DOUBLE) {
        double v;
        memcpy(&v, a->data, sizeof v);
        return (float)v;
    }
    float v;
    memcpy(&v, a->data, sizeof v);
    return v;
}

static const char *fault(void)
{
    const char *e = getenv("CUEMU_DNN_BACKEND_FAULT");
    return e ? e : "";
}

/* ---- create / destroy ---- */

cudnnStatus_t cudnnBackendCreateDescriptor(cudnnBackendDescriptorType_t descriptorType,
                                           cudnnBackendDescriptor_t *descriptor)
{
    if (!descriptor) return CUDNN_STATUS_BAD_PARAM;
    switch (descriptorType) {
    case CUDNN_BACKEND_TENSOR_DESCRIPTOR:
    case CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR:
    case CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR:
    case CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR:
    case CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR:
    case CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR:
    case CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR:
    case CUDNN_BACKEND_ENGINECFG_DESCRIPTOR:
    case CUDNN_BACKEND_ENGINE_DESCRIPTOR:
    case CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR:
    case CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR: break;
    default: return CUDNN_STATUS_NOT_SUPPORTED;
    }
    be_desc *d = calloc(1, sizeof *d);
    if (!d) return CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
    d->magic = BE_MAGIC;
    d->type = descriptorType;
    d->engine = -1;
    *descriptor = d;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendDestroyDescriptor(cudnnBackendDescriptor_t descriptor)
{
    be_desc *d = as_desc(descriptor);
    if (!d) return CUDNN_STATUS_BAD_PARAM;
    d->magic = 0;
    free(d);
    return CUDNN_STATUS_SUCCESS;
}

/* ---- set ---- */

cudnnStatus_t cudnnBackendSetAttribute(cudnnBackendDescriptor_t descriptor,
                                       cudnnBackendAttributeName_t attributeName,
                                       cudnnBackendAttributeType_t attributeType,
                                       int64_t elementCount, const void *arrayOfElements)
{
    be_desc *d = as_desc(descriptor);
    if (!d || !arrayOfElements) return CUDNN_STATUS_BAD_PARAM;
    if (d->finalized) return CUDNN_STATUS_BAD_PARAM;
    const attr_rule *rule = NULL;
    int known = 0;
    for (size_t i = 0; i < sizeof g_rules / sizeof g_rules[0]; i++)
        if (g_rules[i].desc == d->type && g_rules[i].name == (int)attributeName) {
            known = 1;
            if (g_rules[i].type == (int)attributeType) rule = &g_rules[i];
        }
    if (!known) return CUDNN_STATUS_BAD_PARAM;
    if (!rule) return CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE;
    if (elementCount < rule->min || elementCount > rule->max) return CUDNN_STATUS_BAD_PARAM;
    size_t es = type_size(attributeType);
    if (rule->type == CUDNN_TYPE_BACKEND_DESCRIPTOR)
        for (int64_t i = 0; i < elementCount; i++) {
            be_desc *r = as_desc(((cudnnBackendDescriptor_t const *)arrayOfElements)[i]);
            if (!r || !r->finalized) return CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED;
            if (rule->ref == OP_REF ? !is_op(r->type) : (int)r->type != rule->ref)
                return CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE;
        }
    be_attr *a = (be_attr *)find_attr(d, attributeName);
    if (!a) {
        if (d->nattr == BE_MAX_ATTRS) return CUDNN_STATUS_BAD_PARAM;
        a = &d->attr[d->nattr++];
    }
    a->name = attributeName;
    a->type = attributeType;
    a->count = elementCount;
    memcpy(a->data, arrayOfElements, (size_t)elementCount * es);
    return CUDNN_STATUS_SUCCESS;
}

/* ---- finalize ---- */

static int has_all(const be_desc *d, const int *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!find_attr(d, names[i])) return 0;
    return 1;
}

static cudnnStatus_t fin_tensor(be_desc *d)
{
    static const int req[] = {CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_ATTR_TENSOR_DIMENSIONS,
                              CUDNN_ATTR_TENSOR_STRIDES, CUDNN_ATTR_TENSOR_UNIQUE_ID,
                              CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT};
    if (!has_all(d, req, 5)) return CUDNN_STATUS_BAD_PARAM;
    const be_attr *dims = find_attr(d, CUDNN_ATTR_TENSOR_DIMENSIONS),
                  *str = find_attr(d, CUDNN_ATTR_TENSOR_STRIDES);
    if (dims->count != str->count) return CUDNN_STATUS_BAD_PARAM;
    d->nd = (int)dims->count;
    for (int i = 0; i < d->nd; i++) {
        d->dims[i] = attr_i64(d, CUDNN_ATTR_TENSOR_DIMENSIONS, i);
        d->strides[i] = attr_i64(d, CUDNN_ATTR_TENSOR_STRIDES, i);
        if (d->dims[i] <= 0 || d->strides[i] <= 0) return CUDNN_STATUS_BAD_PARAM;
    }
    memcpy(&d->dt, find_attr(d, CUDNN_ATTR_TENSOR_DATA_TYPE)->data, sizeof d->dt);
    d->uid = attr_i64(d, CUDNN_ATTR_TENSOR_UNIQUE_ID, 0);
    d->align = attr_i64(d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, 0);
    if (d->align <= 0 || (d->align & (d->align - 1))) return CUDNN_STATUS_BAD_PARAM;
    return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t fin_conv(be_desc *d)
{
    static const int req[] = {CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_ATTR_CONVOLUTION_CONV_MODE,
                              CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_ATTR_CONVOLUTION_DILATIONS,
                              CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES,
                              CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS,
                              CUDNN_ATTR_CONVOLUTION_POST_PADDINGS};
    if (!has_all(d, req, 7)) return CUDNN_STATUS_BAD_PARAM;
    int64_t sd = attr_i64(d, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, 0);
    for (int i = 3; i < 7; i++)
        if (find_attr(d, req[i])->count != sd) return CUDNN_STATUS_BAD_PARAM;
    if (sd != 2) return CUDNN_STATUS_NOT_SUPPORTED;
    for (int i = 0; i < 2; i++)
        if (attr_i64(d, CUDNN_ATTR_CONVOLUTION_DILATIONS, i) < 1 ||
            attr_i64(d, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, i) < 1 ||
            attr_i64(d, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, i) < 0 ||
            attr_i64(d, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, i) < 0)
            return CUDNN_STATUS_BAD_PARAM;
    cudnnDataType_t comp;
    memcpy(&comp, find_attr(d, CUDNN_ATTR_CONVOLUTION_COMP_TYPE)->data, sizeof comp);
    if (comp != CUDNN_DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED;
    return CUDNN_STATUS_SUCCESS;
}

static int packed4(const be_desc *t)
{
    return t->nd == 4 && t->strides[3] == 1 && t->strides[2] == t->dims[3] &&
           t->strides[1] == t->dims[2] * t->dims[3] && t->strides[0] == t->dims[1] * t->strides[1];
}

static cudnnStatus_t fin_op(be_desc *d)
{
    int dir = d->type == CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR ? DIR_FWD
              : d->type == CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR
                  ? DIR_BWD_DATA
                  : DIR_BWD_FILTER;
    static const int names[3][6] = {
        {CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W,
         CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
         CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA},
        {CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA},
        {CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA}};
    if (!has_all(d, names[dir], 6)) return CUDNN_STATUS_BAD_PARAM;
    const be_desc *x = attr_desc(d, names[dir][0], 0), *w = attr_desc(d, names[dir][1], 0),
                  *y = attr_desc(d, names[dir][2], 0), *cd = attr_desc(d, names[dir][3], 0);
    if (x->nd != 4 || w->nd != 4 || y->nd != 4) return CUDNN_STATUS_NOT_SUPPORTED;
    if (x->dt != CUDNN_DATA_FLOAT || w->dt != CUDNN_DATA_FLOAT || y->dt != CUDNN_DATA_FLOAT)
        return CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE;
    if (!packed4(x) || !packed4(w) || !packed4(y)) return CUDNN_STATUS_NOT_SUPPORTED_LAYOUT;
    if (x->uid == w->uid || x->uid == y->uid || w->uid == y->uid)
        return CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES;
    int64_t n = x->dims[0], c = x->dims[1], h = x->dims[2], wd = x->dims[3], k = w->dims[0],
            cg = w->dims[1], r = w->dims[2], s = w->dims[3];
    int64_t dil[2], str[2], pre[2], post[2];
    for (int i = 0; i < 2; i++) {
        dil[i] = attr_i64(cd, CUDNN_ATTR_CONVOLUTION_DILATIONS, i);
        str[i] = attr_i64(cd, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, i);
        pre[i] = attr_i64(cd, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, i);
        post[i] = attr_i64(cd, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, i);
    }
    if (pre[0] != post[0] || pre[1] != post[1]) return CUDNN_STATUS_NOT_SUPPORTED_PADDING;
    if (c % cg) return CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH;
    int64_t groups = c / cg;
    if (k % groups) return CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH;
    int64_t oh = (h + pre[0] + post[0] - dil[0] * (r - 1) - 1) / str[0] + 1,
            ow = (wd + pre[1] + post[1] - dil[1] * (s - 1) - 1) / str[1] + 1;
    if (oh < 1 || ow < 1 || y->dims[0] != n || y->dims[1] != k || y->dims[2] != oh ||
        y->dims[3] != ow)
        return CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH;
    cudnnConvolutionMode_t mode;
    memcpy(&mode, find_attr(cd, CUDNN_ATTR_CONVOLUTION_CONV_MODE)->data, sizeof mode);
    be_op *o = &d->op;
    o->dir = dir;
    o->alpha = attr_scalar(d, names[dir][4]);
    o->beta = attr_scalar(d, names[dir][5]);
    o->g = (conv_geom){(int)n,      (int)c,      (int)h,       (int)wd,      (int)k,
                       (int)cg,     (int)(k / groups),         (int)r,       (int)s,
                       (int)oh,     (int)ow,     (int)pre[0],  (int)pre[1],  (int)str[0],
                       (int)str[1], (int)dil[0], (int)dil[1],  mode == CUDNN_CONVOLUTION};
    const be_desc *t[3] = {x, w, y};
    for (int i = 0; i < 3; i++) {
        o->uid[i] = t[i]->uid;
        o->align[i] = t[i]->align;
        o->count[i] = (size_t)(t[i]->dims[0] * t[i]->dims[1] * t[i]->dims[2] * t[i]->dims[3]);
    }
    return CUDNN_STATUS_SUCCESS;
}

/* the workspace engine e needs for op o */
static size_t engine_ws(int e, const be_op *o)
{
    size_t slice = (size_t)o->g.cg * (size_t)o->g.r * (size_t)o->g.s * sizeof(float);
    switch (e) {
    case 1: return 8192 + 2 * slice;
    case 3: return 4096 + slice;
    case 4: return 1024 * (size_t)(1 + o->dir) + slice;
    default: return 0;
    }
}

static cudnnStatus_t fin_plan(be_desc *d)
{
    static const int req[] = {CUDNN_ATTR_EXECUTION_PLAN_HANDLE,
                              CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG};
    if (!has_all(d, req, 2)) return CUDNN_STATUS_BAD_PARAM;
    const be_desc *cfg = attr_desc(d, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, 0);
    memcpy(&d->handle, find_attr(d, CUDNN_ATTR_EXECUTION_PLAN_HANDLE)->data, sizeof d->handle);
    if (!d->handle || cfg->engine < 0) return CUDNN_STATUS_BAD_PARAM;
    d->op = cfg->op;
    d->engine = cfg->engine;
    if (d->engine == 3 && (d->op.g.cg % 4 || d->op.g.kg % 4))
        return CUDNN_STATUS_NOT_SUPPORTED_SHAPE;
    d->ws = engine_ws(d->engine, &d->op);
    return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t fin_pack(be_desc *d)
{
    static const int req[] = {CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS,
                              CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS};
    if (!has_all(d, req, 2)) return CUDNN_STATUS_BAD_PARAM;
    const be_attr *u = find_attr(d, req[0]), *p = find_attr(d, req[1]),
                  *w = find_attr(d, CUDNN_ATTR_VARIANT_PACK_WORKSPACE);
    if (u->count != p->count) return CUDNN_STATUS_BAD_PARAM;
    d->pack_n = (int)u->count;
    memcpy(d->pack_uid, u->data, (size_t)u->count * sizeof(int64_t));
    memcpy(d->pack_ptr, p->data, (size_t)p->count * sizeof(void *));
    for (int i = 0; i < d->pack_n; i++)
        for (int j = 0; j < i; j++)
            if (d->pack_uid[i] == d->pack_uid[j]) return CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES;
    d->pack_ws = NULL;
    if (w) memcpy(&d->pack_ws, w->data, sizeof d->pack_ws);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendFinalize(cudnnBackendDescriptor_t descriptor)
{
    be_desc *d = as_desc(descriptor);
    if (!d) return CUDNN_STATUS_BAD_PARAM;
    if (d->finalized) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st;
    switch (d->type) {
    case CUDNN_BACKEND_TENSOR_DESCRIPTOR: st = fin_tensor(d); break;
    case CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR: st = fin_conv(d); break;
    case CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR:
    case CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR:
    case CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR: st = fin_op(d); break;
    case CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR: {
        static const int req[] = {CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_ATTR_OPERATIONGRAPH_HANDLE};
        if (!has_all(d, req, 2)) return CUDNN_STATUS_BAD_PARAM;
        memcpy(&d->handle, find_attr(d, req[1])->data, sizeof d->handle);
        if (!d->handle) return CUDNN_STATUS_BAD_PARAM;
        if (find_attr(d, req[0])->count != 1) return CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN;
        d->op = attr_desc(d, req[0], 0)->op;
        st = CUDNN_STATUS_SUCCESS;
        break;
    }
    case CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR: {
        static const int req[] = {CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_ATTR_ENGINEHEUR_MODE};
        if (!has_all(d, req, 2)) return CUDNN_STATUS_BAD_PARAM;
        cudnnBackendHeurMode_t mode;
        memcpy(&mode, find_attr(d, req[1])->data, sizeof mode);
        if ((int)mode < 0 || mode >= CUDNN_HEUR_MODES_COUNT) return CUDNN_STATUS_BAD_PARAM;
        d->op = attr_desc(d, req[0], 0)->op;
        d->nres = !strcmp(fault(), "heuristics") ? 0 : BE_NENGINES;
        st = CUDNN_STATUS_SUCCESS;
        break;
    }
    case CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR: st = fin_plan(d); break;
    case CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR: st = fin_pack(d); break;
    default: return CUDNN_STATUS_BAD_PARAM; /* configs and engines come from GetAttribute */
    }
    if (st == CUDNN_STATUS_SUCCESS) d->finalized = 1;
    return st;
}

/* ---- get ---- */

/* the notes of engine e */
static int engine_notes(int e, cudnnBackendNumericalNote_t *nn, cudnnBackendBehaviorNote_t *bn,
                        int *nbn)
{
    int n = 0;
    *nbn = 0;
    switch (e) {
    case 0:
        nn[n++] = CUDNN_NUMERICAL_NOTE_TENSOR_CORE;
        nn[n++] = CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS;
        break;
    case 1: nn[n++] = CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC; break;
    case 2: bn[(*nbn)++] = CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION; break;
    case 3: nn[n++] = CUDNN_NUMERICAL_NOTE_TENSOR_CORE; break;
    default: break;
    }
    return n;
}

cudnnStatus_t cudnnBackendGetAttribute(cudnnBackendDescriptor_t const descriptor,
                                       cudnnBackendAttributeName_t attributeName,
                                       cudnnBackendAttributeType_t attributeType,
                                       int64_t requestedElementCount, int64_t *elementCount,
                                       void *arrayOfElements)
{
    be_desc *d = as_desc(descriptor);
    if (!d || requestedElementCount < 0) return CUDNN_STATUS_BAD_PARAM;
    if (!arrayOfElements) requestedElementCount = 0; /* a count query, as cudnn-frontend makes */
    if (!d->finalized) return CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED;
    int64_t dummy;
    if (!elementCount) elementCount = &dummy;
    if (d->type == CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR &&
        attributeName == CUDNN_ATTR_ENGINEHEUR_RESULTS) {
        if (attributeType != CUDNN_TYPE_BACKEND_DESCRIPTOR) return CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE;
        int64_t n = requestedElementCount < d->nres ? requestedElementCount : d->nres;
        for (int64_t i = 0; i < n; i++) {
            be_desc *c = as_desc(((cudnnBackendDescriptor_t *)arrayOfElements)[i]);
            if (!c || c->type != CUDNN_BACKEND_ENGINECFG_DESCRIPTOR || c->finalized)
                return CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE;
        }
        for (int64_t i = 0; i < n; i++) {
            be_desc *c = ((cudnnBackendDescriptor_t *)arrayOfElements)[i];
            c->op = d->op;
            c->engine = (int)i;
            c->finalized = 1;
        }
        *elementCount = requestedElementCount ? n : d->nres;
        return CUDNN_STATUS_SUCCESS;
    }
    if (d->type == CUDNN_BACKEND_ENGINECFG_DESCRIPTOR && attributeName == CUDNN_ATTR_ENGINECFG_ENGINE) {
        if (attributeType != CUDNN_TYPE_BACKEND_DESCRIPTOR) return CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE;
        if (requestedElementCount < 1) {
            *elementCount = 1;
            return CUDNN_STATUS_SUCCESS;
        }
        be_desc *e = as_desc(*(cudnnBackendDescriptor_t *)arrayOfElements);
        if (!e || e->type != CUDNN_BACKEND_ENGINE_DESCRIPTOR || e->finalized)
            return CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE;
        e->op = d->op;
        e->engine = d->engine;
        e->finalized = 1;
        *elementCount = 1;
        return CUDNN_STATUS_SUCCESS;
    }
    if (d->type == CUDNN_BACKEND_ENGINECFG_DESCRIPTOR &&
        attributeName == CUDNN_ATTR_ENGINECFG_WORKSPACE_SIZE) {
        if (attributeType != CUDNN_TYPE_INT64) return CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE;
        *elementCount = 1;
        if (requestedElementCount) *(int64_t *)arrayOfElements = (int64_t)engine_ws(d->engine, &d->op);
        return CUDNN_STATUS_SUCCESS;
    }
    if (d->type == CUDNN_BACKEND_ENGINE_DESCRIPTOR) {
        cudnnBackendNumericalNote_t nn[4];
        cudnnBackendBehaviorNote_t bn[4];
        int nbn, nnn = engine_notes(d->engine, nn, bn, &nbn);
        if (attributeName == CUDNN_ATTR_ENGINE_GLOBAL_INDEX) {
            if (attributeType != CUDNN_TYPE_INT64) return CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE;
            *elementCount = 1;
            if (requestedElementCount) *(int64_t *)arrayOfElements = d->engine;
            return CUDNN_STATUS_SUCCESS;
        }
        if (attributeName == CUDNN_ATTR_ENGINE_NUMERICAL_NOTE) {
            if (attributeType != CUDNN_TYPE_NUMERICAL_NOTE) return CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE;
            int64_t n = requestedElementCount < nnn ? requestedElementCount : nnn;
            memcpy(arrayOfElements ? arrayOfElements : (void *)nn, nn, (size_t)n * sizeof nn[0]);
            *elementCount = requestedElementCount ? n : nnn;
            return CUDNN_STATUS_SUCCESS;
        }
        if (attributeName == CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE) {
            if (attributeType != CUDNN_TYPE_BEHAVIOR_NOTE) return CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE;
            int64_t n = requestedElementCount < nbn ? requestedElementCount : nbn;
            memcpy(arrayOfElements ? arrayOfElements : (void *)bn, bn, (size_t)n * sizeof bn[0]);
            *elementCount = requestedElementCount ? n : nbn;
            return CUDNN_STATUS_SUCCESS;
        }
        return CUDNN_STATUS_NOT_SUPPORTED;
    }
    if (d->type == CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR &&
        attributeName == CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE) {
        if (attributeType != CUDNN_TYPE_INT64) return CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE;
        *elementCount = 1;
        if (requestedElementCount) *(int64_t *)arrayOfElements = (int64_t)d->ws;
        return CUDNN_STATUS_SUCCESS;
    }
    if (d->type == CUDNN_BACKEND_TENSOR_DESCRIPTOR && attributeName == CUDNN_ATTR_TENSOR_DIMENSIONS) {
        if (attributeType != CUDNN_TYPE_INT64) return CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE;
        int64_t n = requestedElementCount < d->nd ? requestedElementCount : d->nd;
        if (n) memcpy(arrayOfElements, d->dims, (size_t)n * sizeof(int64_t));
        *elementCount = requestedElementCount ? n : d->nd;
        return CUDNN_STATUS_SUCCESS;
    }
    return CUDNN_STATUS_NOT_SUPPORTED;
}

/* ---- execute ---- */

typedef struct exec_args {
    be_op op;
    int engine;
    size_t ws_need;
    void *ptr[3];
    void *ws;
} exec_args;

static cudnnStatus_t exec_run(const exec_args *a)
{
    const char *fn = "cuDNN cudnnBackendExecute";
    cuemu_stat(fn);
    if (a->ws_need) {
        need_dev(fn, "workspace", a->ws, a->ws_need);
        memset(a->ws, 0xff, a->ws_need); /* ruined, as cuDNN leaves it */
    }
    const be_op *o = &a->op;
    float alpha = o->alpha;
    if (a->engine == 4 && !strcmp(fault(), "wrong")) alpha *= 1.001f;
    /* a / b / out: fwd (x, w) -> y; bwd data (w, dy) -> dx; bwd filter (x, dy) -> dw */
    if (o->dir == DIR_FWD)
        return cuemu_dnn_conv_run(fn, DIR_FWD, &o->g, a->ptr[0], o->count[0], a->ptr[1],
                                  o->count[1], a->ptr[2], o->count[2], alpha, o->beta);
    if (o->dir == DIR_BWD_DATA)
        return cuemu_dnn_conv_run(fn, DIR_BWD_DATA, &o->g, a->ptr[1], o->count[1], a->ptr[2],
                                  o->count[2], a->ptr[0], o->count[0], alpha, o->beta);
    return cuemu_dnn_conv_run(fn, DIR_BWD_FILTER, &o->g, a->ptr[0], o->count[0], a->ptr[2],
                              o->count[2], a->ptr[1], o->count[1], alpha, o->beta);
}

static void exec_replay(void *p)
{
    cudnnStatus_t st = exec_run(p);
    if (st != CUDNN_STATUS_SUCCESS)
        cuemu_fatal("graph launch", "a recorded cudnnBackendExecute failed: %s",
                    cudnnGetErrorString(st));
}

cudnnStatus_t cudnnBackendExecute(cudnnHandle_t handle, cudnnBackendDescriptor_t executionPlan,
                                  cudnnBackendDescriptor_t variantPack)
{
    be_desc *plan = as_desc(executionPlan), *pack = as_desc(variantPack);
    if (!handle || !plan || !pack || plan->type != CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR ||
        pack->type != CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR)
        return CUDNN_STATUS_BAD_PARAM;
    if (!plan->finalized || !pack->finalized) return CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED;
    if (!strcmp(fault(), "execute")) return CUDNN_STATUS_EXECUTION_FAILED;
    exec_args a = {plan->op, plan->engine, plan->ws, {NULL, NULL, NULL}, pack->pack_ws};
    for (int i = 0; i < 3; i++) {
        int found = 0;
        for (int j = 0; j < pack->pack_n; j++)
            if (pack->pack_uid[j] == plan->op.uid[i]) {
                a.ptr[i] = pack->pack_ptr[j];
                found = 1;
            }
        if (!found || !a.ptr[i]) return CUDNN_STATUS_BAD_PARAM;
        if ((uintptr_t)a.ptr[i] % (uintptr_t)plan->op.align[i])
            return CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER;
    }
    if (plan->ws && !a.ws) return CUDNN_STATUS_BAD_PARAM;
    if (cuemu_capture_check(handle->stream, 0) != cudaSuccess)
        return CUDNN_STATUS_EXECUTION_FAILED_CUDART;
    if (cuemu_capturing(handle->stream)) {
        cuemu_record(handle->stream, exec_replay, &a, sizeof a);
        return CUDNN_STATUS_SUCCESS;
    }
    return exec_run(&a);
}
