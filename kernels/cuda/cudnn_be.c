/* cudnn_be.c: the convolutions through cuDNN's backend (graph) API, with execution plans built once
   per shape and variant packs built once per set of pointers (SQAKD_CONV_API=backend; the
   default, legacy, keeps every call on cudnnConvolutionForward / BackwardData / BackwardFilter).

   Why: on the H200 (run 3) each legacy convolution call cost 74 - 79 us of host time inside cuDNN
   9, about 75 calls and 5.8 ms of host time per resnet20 SQAKD step, which made the eager step
   bound by the host. A finalized execution plan and a finalized variant pack leave one
   cudnnBackendExecute per call.

   Per convolution shape (cudnn.c builds this next to the legacy plan), four plans, one per
   variant: forward (beta 0), backward data (beta 0: the "set" op, and beta 1: accumulate) and
   backward filter (beta 1). Each is one operation in one operation graph. Its engine config is
   the first of the heuristics' (mode A) list (SQAKD_CONV_ALGO=find does not apply here) that
   - does not down-convert FP32 inputs or reduce in reduced precision,
   - uses no tensor cores when TF32 is off (SQAKD_TF32=0; with FP32 data a tensor-core engine
     computes in TF32),
   - is not compiled at run time (seconds of set-up per shape, and no faster for these sizes),
   - is deterministic, unless SQAKD_CONV_DETERMINISTIC=0 or no deterministic engine is left,
   - finalizes, with a workspace within the cap.
   Tensor UIDs: 1 = x (dx), 2 = w (dw), 3 = y (dy); FP32, packed NCHW, 16-byte alignment.

   Self-check: before a plan is used, every variant runs once on scratch tensors of the plan's
   shape filled with pseudo-random values, next to the legacy call with the legacy plan's
   algorithm, and the two outputs must agree (beta-0 outputs start as NaN, beta-1 outputs from the
   same values). A variant that fails to build, to run or to agree stays on the legacy path, with
   one line on stderr. If the scratch tensors do not fit, the plan is used only when an earlier
   plan of this process passed its check.

   A call whose pointers are not 16-byte aligned, or whose cudnnBackendExecute fails, runs the
   legacy call instead (a failing variant is then switched off for good, with one line on
   stderr). Nothing of this records a sticky error unless the legacy call fails too. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuda_ops.h"

#if defined(__GNUC__)
/* CUDNN_ATTR_OPERATIONGRAPH_HANDLE and CUDNN_ATTR_EXECUTION_PLAN_HANDLE are deprecated in the
   9.x headers in favour of device-property descriptors (cuDNN >= 9.8), but every cuDNN 9 accepts
   them, and the GPU machines' library may be older than the headers */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

#define BE_UID_X 1
#define BE_UID_W 2
#define BE_UID_Y 3
#define BE_MAX_DESCS 64 /* descriptors a variant keeps alive: tensors, op, graph, heuristics, configs */

typedef struct be_variant {
    cudnnBackendDescriptor_t plan;
    cudnnBackendDescriptor_t keep[BE_MAX_DESCS]; /* destroyed with the plan */
    int nkeep;
    size_t ws;
    int64_t engine; /* global engine index, -1 unknown */
    int usable;     /* built and checked */
} be_variant;

struct sq_cuda_be_conv {
    sq_conv_shape cs;
    be_variant v[SQ_BE_VARIANTS];
    size_t ws_bytes;
};

static const char *const g_vname[SQ_BE_VARIANTS] = {"forward", "backward data (set)",
                                                    "backward data (accumulate)",
                                                    "backward filter"};
static int g_verified;        /* plans that passed the self-check in this process */
static long g_fallback_calls; /* calls that went to the legacy path after a failed execute */

static int g_api = -1; /* 1 = backend API, 0 = legacy, -1 = not read yet */

int sq_cuda_conv_api_backend(void)
{
    if (g_api < 0) {
        const char *e = getenv("SQAKD_CONV_API");
        g_api = e && !strcmp(e, "backend");
    }
    return g_api;
}

void sq_cuda_conv_api_set(int backend) { g_api = backend ? 1 : 0; }

static void keep(be_variant *v, cudnnBackendDescriptor_t d)
{
    if (v->nkeep < BE_MAX_DESCS)
        v->keep[v->nkeep++] = d;
    else
        cudnnBackendDestroyDescriptor(d);
}

static void variant_free(be_variant *v)
{
    if (v->plan) cudnnBackendDestroyDescriptor(v->plan);
    for (int i = v->nkeep - 1; i >= 0; i--) cudnnBackendDestroyDescriptor(v->keep[i]);
    memset(v, 0, sizeof *v);
}

/* ---- descriptors (each returns NULL on failure; st gets the status) ---- */

static cudnnBackendDescriptor_t make(be_variant *v, cudnnBackendDescriptorType_t t,
                                     cudnnStatus_t *st)
{
    cudnnBackendDescriptor_t d = NULL;
    *st = cudnnBackendCreateDescriptor(t, &d);
    if (*st != CUDNN_STATUS_SUCCESS) return NULL;
    keep(v, d);
    return d;
}

#define SET(d, name, type, count, ptr)                                                         \
    do {                                                                                       \
        if ((*st = cudnnBackendSetAttribute((d), (name), (type), (count), (ptr))) !=          \
            CUDNN_STATUS_SUCCESS)                                                              \
            return NULL;                                                                       \
    } while (0)

static cudnnBackendDescriptor_t tensor(be_variant *v, int64_t uid, const int64_t dims[4],
                                       cudnnStatus_t *st)
{
    cudnnBackendDescriptor_t d = make(v, CUDNN_BACKEND_TENSOR_DESCRIPTOR, st);
    if (!d) return NULL;
    int64_t strides[4] = {dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1};
    cudnnDataType_t dt = CUDNN_DATA_FLOAT;
    int64_t align = 16;
    SET(d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt);
    SET(d, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims);
    SET(d, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides);
    SET(d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
    SET(d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align);
    if ((*st = cudnnBackendFinalize(d)) != CUDNN_STATUS_SUCCESS) return NULL;
    return d;
}

static cudnnBackendDescriptor_t conv_desc(be_variant *v, const sq_conv_shape *cs,
                                          cudnnStatus_t *st)
{
    cudnnBackendDescriptor_t d = make(v, CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, st);
    if (!d) return NULL;
    cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    int64_t dims = 2, dil[2] = {1, 1}, str[2] = {cs->stride, cs->stride},
            pad[2] = {cs->pad, cs->pad};
    SET(d, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp);
    SET(d, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode);
    SET(d, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &dims);
    SET(d, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, dil);
    SET(d, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, str);
    SET(d, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pad);
    SET(d, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, pad);
    if ((*st = cudnnBackendFinalize(d)) != CUDNN_STATUS_SUCCESS) return NULL;
    return d;
}

/* the one operation of variant k */
static cudnnBackendDescriptor_t operation(be_variant *v, int k, cudnnBackendDescriptor_t x,
                                          cudnnBackendDescriptor_t w, cudnnBackendDescriptor_t y,
                                          cudnnBackendDescriptor_t cd, cudnnStatus_t *st)
{
    static const cudnnBackendDescriptorType_t type[SQ_BE_VARIANTS] = {
        CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
        CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
        CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
        CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR};
    cudnnBackendDescriptor_t d = make(v, type[k], st);
    if (!d) return NULL;
    const float alpha = 1.0f, beta = (k == SQ_BE_FWD || k == SQ_BE_BWD_DATA_SET) ? 0.0f : 1.0f;
    const cudnnBackendAttributeType_t t = CUDNN_TYPE_BACKEND_DESCRIPTOR;
    if (k == SQ_BE_FWD) {
        SET(d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, t, 1, &x);
        SET(d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, t, 1, &w);
        SET(d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, t, 1, &y);
        SET(d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, t, 1, &cd);
        SET(d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha);
        SET(d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta);
    } else if (k == SQ_BE_BWD_FILTER_ACC) {
        SET(d, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X, t, 1, &x);
        SET(d, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW, t, 1, &w);
        SET(d, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY, t, 1, &y);
        SET(d, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC, t, 1, &cd);
        SET(d, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha);
        SET(d, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA, CUDNN_TYPE_FLOAT, 1, &beta);
    } else {
        SET(d, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX, t, 1, &x);
        SET(d, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W, t, 1, &w);
        SET(d, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY, t, 1, &y);
        SET(d, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC, t, 1, &cd);
        SET(d, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha);
        SET(d, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA, CUDNN_TYPE_FLOAT, 1, &beta);
    }
    if ((*st = cudnnBackendFinalize(d)) != CUDNN_STATUS_SUCCESS) return NULL;
    return d;
}
#undef SET

static int has_note(const int *notes, int64_t n, int note)
{
    for (int64_t i = 0; i < n; i++)
        if (notes[i] == note) return 1;
    return 0;
}

/* engine config cfg: -1 = never usable, 0 = usable only when non-deterministic engines are
   allowed, 1 = usable; *engine gets its global index */
static int config_grade(be_variant *v, cudnnBackendDescriptor_t cfg, int tf32, int64_t *engine)
{
    cudnnStatus_t st;
    cudnnBackendDescriptor_t eng = make(v, CUDNN_BACKEND_ENGINE_DESCRIPTOR, &st);
    int64_t got = 0;
    if (!eng || cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE,
                                         CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &got,
                                         &eng) != CUDNN_STATUS_SUCCESS || got != 1)
        return -1;
    *engine = -1;
    if (cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &got,
                                 engine) != CUDNN_STATUS_SUCCESS)
        *engine = -1;
    /* requested counts as cudnn-frontend asks: the header's number of note kinds */
    cudnnBackendNumericalNote_t nn[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
    cudnnBackendBehaviorNote_t bn[CUDNN_BEHAVIOR_NOTE_TYPE_COUNT];
    int notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
    int64_t nnn = 0, nbn = 0;
    if (cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                 CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &nnn,
                                 nn) != CUDNN_STATUS_SUCCESS ||
        cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE, CUDNN_TYPE_BEHAVIOR_NOTE,
                                 CUDNN_BEHAVIOR_NOTE_TYPE_COUNT, &nbn,
                                 bn) != CUDNN_STATUS_SUCCESS)
        return -1; /* notes unknown: not trusted */
    if (nnn > (int64_t)(sizeof nn / sizeof nn[0])) nnn = (int64_t)(sizeof nn / sizeof nn[0]);
    if (nbn > (int64_t)(sizeof bn / sizeof bn[0])) nbn = (int64_t)(sizeof bn / sizeof bn[0]);
    for (int64_t i = 0; i < nnn; i++) notes[i] = (int)nn[i];
    if (has_note(notes, nnn, CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS) ||
        has_note(notes, nnn, CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION) ||
        (!tf32 && has_note(notes, nnn, CUDNN_NUMERICAL_NOTE_TENSOR_CORE)))
        return -1;
    for (int64_t i = 0; i < nbn; i++)
        if ((int)bn[i] == CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION) return -1;
    return has_note(notes, nnn, CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC) ? 0 : 1;
}

/* builds variant k; 0 with nothing usable (v freed by the caller) */
static int variant_build(be_variant *v, int k, cudnnHandle_t h, const sq_conv_shape *cs, int tf32,
                         int det_first, size_t ws_cap, cudnnStatus_t *st)
{
    int64_t dx[4] = {cs->n, cs->c, cs->h, cs->w}, dw[4] = {cs->k, cs->c / cs->groups, cs->r, cs->s},
            dy[4] = {cs->n, cs->k, cs->oh, cs->ow};
    cudnnBackendDescriptor_t x = tensor(v, BE_UID_X, dx, st), w = x ? tensor(v, BE_UID_W, dw, st) : NULL,
                             y = w ? tensor(v, BE_UID_Y, dy, st) : NULL,
                             cd = y ? conv_desc(v, cs, st) : NULL,
                             op = cd ? operation(v, k, x, w, y, cd, st) : NULL;
    if (!op) return 0;
    cudnnBackendDescriptor_t g = make(v, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, st);
    if (!g) return 0;
    if ((*st = cudnnBackendSetAttribute(g, CUDNN_ATTR_OPERATIONGRAPH_OPS,
                                        CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &op)) != 0 ||
        (*st = cudnnBackendSetAttribute(g, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1,
                                        &h)) != 0 ||
        (*st = cudnnBackendFinalize(g)) != 0)
        return 0;
    cudnnBackendDescriptor_t heur = make(v, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, st);
    cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    if (!heur ||
        (*st = cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH,
                                        CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &g)) != 0 ||
        (*st = cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1,
                                        &mode)) != 0 ||
        (*st = cudnnBackendFinalize(heur)) != 0)
        return 0;
    int64_t count = 0;
    if ((*st = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                        CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, NULL)) != 0)
        return 0;
    if (count > 16) count = 16;
    if (count <= 0) {
        *st = CUDNN_STATUS_NOT_SUPPORTED;
        return 0;
    }
    cudnnBackendDescriptor_t cfg[16];
    for (int64_t i = 0; i < count; i++)
        if (!(cfg[i] = make(v, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, st))) return 0;
    int64_t filled = 0;
    if ((*st = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                        CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &filled, cfg)) != 0)
        return 0;
    if (filled < count) count = filled;
    int grade[16];
    int64_t engine[16];
    for (int64_t i = 0; i < count; i++) grade[i] = config_grade(v, cfg[i], tf32, &engine[i]);
    *st = CUDNN_STATUS_NOT_SUPPORTED;
    for (int pass = det_first ? 0 : 1; pass < 2; pass++)
        for (int64_t i = 0; i < count; i++) {
            if (grade[i] < 0 || (pass == 0 && grade[i] == 0)) continue;
            cudnnBackendDescriptor_t plan = NULL;
            int64_t ws = 0, got = 0;
            if ((*st = cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR,
                                                    &plan)) != 0)
                return 0;
            if ((*st = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE,
                                                CUDNN_TYPE_HANDLE, 1, &h)) == 0 &&
                (*st = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                                CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg[i])) == 0 &&
                (*st = cudnnBackendFinalize(plan)) == 0 &&
                (*st = cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                                CUDNN_TYPE_INT64, 1, &got, &ws)) == 0 &&
                ws >= 0 && (size_t)ws <= ws_cap) {
                v->plan = plan;
                v->ws = (size_t)ws;
                v->engine = engine[i];
                grade[i] = -1;
                return 1;
            }
            cudnnBackendDestroyDescriptor(plan);
            grade[i] = -1; /* failed: not again in the second pass */
        }
    if (*st == CUDNN_STATUS_SUCCESS) *st = CUDNN_STATUS_NOT_SUPPORTED;
    return 0;
}

/* ---- variant packs, one per (variant, pointers), built on first use ---- */

typedef struct pack_entry {
    const be_variant *v;
    const void *p[3], *ws;
    cudnnBackendDescriptor_t pack;
} pack_entry;

static pack_entry *g_packs;
static size_t g_npacks, g_cap_packs; /* open addressing, capacity a power of two */

static size_t pack_hash(const be_variant *v, const void *const p[3], const void *ws)
{
    uint64_t hsh = (uint64_t)(uintptr_t)v * 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 3; i++) hsh = (hsh ^ (uint64_t)(uintptr_t)p[i]) * 0xBF58476D1CE4E5B9ull;
    hsh = (hsh ^ (uint64_t)(uintptr_t)ws) * 0x94D049BB133111EBull;
    return (size_t)(hsh ^ (hsh >> 31));
}

static pack_entry *pack_slot(pack_entry *tab, size_t cap, const be_variant *v,
                             const void *const p[3], const void *ws)
{
    size_t i = pack_hash(v, p, ws) & (cap - 1);
    for (;; i = (i + 1) & (cap - 1)) {
        pack_entry *e = &tab[i];
        if (!e->v || (e->v == v && e->p[0] == p[0] && e->p[1] == p[1] && e->p[2] == p[2] &&
                      e->ws == ws))
            return e;
    }
}

static int packs_grow(void)
{
    size_t ncap = g_cap_packs ? 2 * g_cap_packs : 256;
    pack_entry *nt = calloc(ncap, sizeof *nt);
    if (!nt) return 0;
    for (size_t i = 0; i < g_cap_packs; i++)
        if (g_packs[i].v) *pack_slot(nt, ncap, g_packs[i].v, g_packs[i].p, g_packs[i].ws) = g_packs[i];
    free(g_packs);
    g_packs = nt;
    g_cap_packs = ncap;
    return 1;
}

/* the packs of a variant go with it (its address may be reused by a later plan) */
static void packs_drop(const be_variant *v)
{
    if (!g_cap_packs) return;
    int any = 0;
    for (size_t i = 0; i < g_cap_packs; i++)
        if (g_packs[i].v == v) {
            cudnnBackendDestroyDescriptor(g_packs[i].pack);
            g_packs[i].v = NULL;
            any = 1;
        }
    if (!any) return;
    /* rehash what is left, since removals break the probe chains */
    pack_entry *old = g_packs;
    size_t cap = g_cap_packs;
    g_packs = calloc(cap, sizeof *g_packs);
    if (!g_packs) { /* cannot rehash: drop every pack (rebuilt on use) */
        for (size_t i = 0; i < cap; i++)
            if (old[i].v) cudnnBackendDestroyDescriptor(old[i].pack);
        free(old);
        g_cap_packs = g_npacks = 0;
        return;
    }
    g_npacks = 0;
    for (size_t i = 0; i < cap; i++)
        if (old[i].v) {
            *pack_slot(g_packs, cap, old[i].v, old[i].p, old[i].ws) = old[i];
            g_npacks++;
        }
    free(old);
}

static cudnnBackendDescriptor_t pack_get(const be_variant *v, const void *const p[3], void *ws,
                                         cudnnStatus_t *st)
{
    *st = CUDNN_STATUS_SUCCESS;
    if (g_cap_packs) {
        pack_entry *e = pack_slot(g_packs, g_cap_packs, v, p, ws);
        if (e->v) return e->pack;
    }
    if (g_npacks >= ((size_t)1 << 16)) { /* pointers that keep changing: start over */
        for (size_t i = 0; i < g_cap_packs; i++)
            if (g_packs[i].v) cudnnBackendDestroyDescriptor(g_packs[i].pack);
        memset(g_packs, 0, g_cap_packs * sizeof *g_packs);
        g_npacks = 0;
    }
    if (2 * (g_npacks + 1) > g_cap_packs && !packs_grow()) {
        *st = CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
        return NULL;
    }
    cudnnBackendDescriptor_t pack = NULL;
    int64_t uids[3] = {BE_UID_X, BE_UID_W, BE_UID_Y};
    void *ptrs[3] = {(void *)p[0], (void *)p[1], (void *)p[2]};
    if ((*st = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack)) != 0)
        return NULL;
    if ((*st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS,
                                        CUDNN_TYPE_INT64, 3, uids)) != 0 ||
        (*st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS,
                                        CUDNN_TYPE_VOID_PTR, 3, ptrs)) != 0 ||
        (*st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE,
                                        CUDNN_TYPE_VOID_PTR, 1, &ws)) != 0 ||
        (*st = cudnnBackendFinalize(pack)) != 0) {
        cudnnBackendDestroyDescriptor(pack);
        return NULL;
    }
    pack_entry *e = pack_slot(g_packs, g_cap_packs, v, p, ws);
    *e = (pack_entry){v, {p[0], p[1], p[2]}, ws, pack};
    g_npacks++;
    return pack;
}

size_t sq_cuda_be_pack_count(void) { return g_npacks; }
long sq_cuda_be_fallback_calls(void) { return g_fallback_calls; }

/* ---- execution ---- */

static void variant_off(sq_cuda_be_conv *b, int k, const char *why, cudnnStatus_t st)
{
    fprintf(stderr,
            "sqakd: cuDNN backend API: %s convolution of N=%d C=%d %dx%d K=%d %dx%d stride %d pad "
            "%d groups %d %s (%s); it uses the legacy API from now on\n",
            g_vname[k], b->cs.n, b->cs.c, b->cs.h, b->cs.w, b->cs.k, b->cs.r, b->cs.s,
            b->cs.stride, b->cs.pad, b->cs.groups, why, cudnnGetErrorString(st));
    packs_drop(&b->v[k]);
    b->v[k].usable = 0;
}

int sq_cuda_be_conv_usable(const sq_cuda_be_conv *b, int k) { return b && b->v[k].usable; }

int sq_cuda_be_conv_run(sq_cuda_be_conv *b, int k, const void *px, const void *pw, const void *py,
                        void *ws)
{
    if (!b || !b->v[k].usable || !g_api) return 0;
    be_variant *v = &b->v[k];
    if (v->ws == 0) ws = NULL;
    if ((((uintptr_t)px | (uintptr_t)pw | (uintptr_t)py | (uintptr_t)ws) & 15u) != 0) {
        g_fallback_calls++;
        return 0; /* the plan promised 16-byte alignment */
    }
    const void *p[3] = {px, pw, py};
    cudnnStatus_t st;
    cudnnBackendDescriptor_t pack = pack_get(v, p, ws, &st);
    if (!pack) {
        variant_off(b, k, "variant pack failed", st);
        g_fallback_calls++;
        return 0;
    }
    st = cudnnBackendExecute(sq_cuda_cudnn(), v->plan, pack);
    if (st != CUDNN_STATUS_SUCCESS) {
        variant_off(b, k, "execution failed", st);
        g_fallback_calls++;
        return 0;
    }
    return 1;
}

/* ---- the self-check against the legacy calls ---- */

typedef struct check_bufs {
    float *x, *w, *y, *out, *ws;
    size_t nx, nw, ny, nout, ws_bytes;
    float *h_in, *h_ref, *h_got; /* host: initial output, legacy result, backend result */
} check_bufs;

static void check_free(check_bufs *c)
{
    cudaFree(c->x);
    cudaFree(c->w);
    cudaFree(c->y);
    cudaFree(c->out);
    cudaFree(c->ws);
    free(c->h_in);
    free(c->h_ref);
    free(c->h_got);
    memset(c, 0, sizeof *c);
}

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s;
}

static int fill_random(float *d, float *h, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) h[i] = (float)(lcg(&seed) >> 8) * (2.0f / 16777216.0f) - 1.0f;
    return cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess;
}

/* 1 with every buffer allocated and filled; 0 (no error left behind) when they do not fit */
static int check_alloc(check_bufs *c, const sq_conv_shape *cs, size_t ws_bytes)
{
    memset(c, 0, sizeof *c);
    c->nx = (size_t)cs->n * cs->c * cs->h * cs->w;
    c->nw = (size_t)cs->k * (cs->c / cs->groups) * cs->r * cs->s;
    c->ny = (size_t)cs->n * cs->k * cs->oh * cs->ow;
    c->nout = c->nx > c->ny ? c->nx : c->ny;
    if (c->nw > c->nout) c->nout = c->nw;
    c->ws_bytes = ws_bytes;
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    size_t need = (c->nx + c->nw + c->ny + c->nout) * sizeof(float) + ws_bytes;
    if (need >= free_b / 4) return 0;
    int ok = cudaMalloc((void **)&c->x, c->nx * sizeof(float)) == cudaSuccess &&
             cudaMalloc((void **)&c->w, c->nw * sizeof(float)) == cudaSuccess &&
             cudaMalloc((void **)&c->y, c->ny * sizeof(float)) == cudaSuccess &&
             cudaMalloc((void **)&c->out, c->nout * sizeof(float)) == cudaSuccess &&
             (!ws_bytes || cudaMalloc((void **)&c->ws, ws_bytes) == cudaSuccess);
    if (ok) {
        c->h_in = malloc(c->nout * sizeof(float));
        c->h_ref = malloc(c->nout * sizeof(float));
        c->h_got = malloc(c->nout * sizeof(float));
        ok = c->h_in && c->h_ref && c->h_got && fill_random(c->x, c->h_ref, c->nx, 11u) &&
             fill_random(c->w, c->h_ref, c->nw, 23u) && fill_random(c->y, c->h_ref, c->ny, 37u);
    }
    if (!ok) {
        cudaGetLastError();
        check_free(c);
    }
    return ok;
}

/* runs variant k by the legacy call (legacy != 0) or the backend plan into c->out, starting from
   c->h_in; 1 when it ran and the result is in dst */
static int check_run(sq_cuda_be_conv *b, const sq_cuda_conv_plan *lp, int k, int legacy,
                     check_bufs *c, size_t nout, float *dst, cudnnStatus_t *st)
{
    cudnnHandle_t h = sq_cuda_cudnn();
    const float one = 1.0f, zero = 0.0f;
    if (cudaMemcpy(c->out, c->h_in, nout * sizeof(float), cudaMemcpyHostToDevice) != cudaSuccess)
        return 0;
    if (legacy) {
        void *ws = lp->ws_bytes ? c->ws : NULL;
        if (k == SQ_BE_FWD)
            *st = cudnnConvolutionForward(h, &one, lp->xd, c->x, lp->wd, c->w, lp->cd_fwd,
                                          lp->fwd_algo, ws, lp->ws_bytes, &zero, lp->yd, c->out);
        else if (k == SQ_BE_BWD_FILTER_ACC)
            *st = cudnnConvolutionBackwardFilter(h, &one, lp->xd, c->x, lp->yd, c->y,
                                                 lp->cd_bwd_filter, lp->bwd_filter_algo, ws,
                                                 lp->ws_bytes, &one, lp->wd, c->out);
        else
            *st = cudnnConvolutionBackwardData(h, &one, lp->wd, c->w, lp->yd, c->y,
                                               lp->cd_bwd_data, lp->bwd_data_algo, ws,
                                               lp->ws_bytes, k == SQ_BE_BWD_DATA_SET ? &zero : &one,
                                               lp->xd, c->out);
    } else {
        be_variant *v = &b->v[k];
        const void *p[3] = {c->x, c->w, c->y};
        if (k == SQ_BE_FWD)
            p[2] = c->out;
        else if (k == SQ_BE_BWD_FILTER_ACC)
            p[1] = c->out;
        else
            p[0] = c->out;
        cudnnBackendDescriptor_t pack = pack_get(v, p, v->ws ? c->ws : NULL, st);
        if (!pack) return 0;
        *st = cudnnBackendExecute(h, v->plan, pack);
        packs_drop(v); /* the scratch pointers are freed after the check */
    }
    if (*st != CUDNN_STATUS_SUCCESS) return 0;
    if (cudaMemcpy(dst, c->out, nout * sizeof(float), cudaMemcpyDeviceToHost) != cudaSuccess)
        return 0;
    return 1;
}

/* the two results agree: both finite, |got - ref| <= tol * max|ref| elementwise */
static int agree(const float *ref, const float *got, size_t n, float tol)
{
    float mx = 0.0f;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(ref[i]) || !isfinite(got[i])) return 0;
        if (fabsf(ref[i]) > mx) mx = fabsf(ref[i]);
    }
    for (size_t i = 0; i < n; i++)
        if (fabsf(got[i] - ref[i]) > tol * mx + 1e-30f) return 0;
    return 1;
}

/* checks every built variant and switches off those that fail */
static void self_check(sq_cuda_be_conv *b, const sq_cuda_conv_plan *lp, int tf32)
{
    size_t ws = b->ws_bytes > lp->ws_bytes ? b->ws_bytes : lp->ws_bytes;
    check_bufs c;
    if (!check_alloc(&c, &b->cs, ws)) {
        if (!g_verified) /* nothing verified yet in this process: no unchecked plan is used */
            for (int k = 0; k < SQ_BE_VARIANTS; k++) {
                packs_drop(&b->v[k]);
                b->v[k].usable = 0;
            }
        return;
    }
    const float tol = tf32 ? 2e-2f : 1e-4f;
    int passed = 0;
    for (int k = 0; k < SQ_BE_VARIANTS; k++) {
        if (!b->v[k].usable) continue;
        size_t nout = k == SQ_BE_FWD ? c.ny : k == SQ_BE_BWD_FILTER_ACC ? c.nw : c.nx;
        uint32_t seed = 101u + (uint32_t)k;
        if (k == SQ_BE_FWD || k == SQ_BE_BWD_DATA_SET)
            for (size_t i = 0; i < nout; i++) c.h_in[i] = NAN; /* beta 0: never read */
        else
            for (size_t i = 0; i < nout; i++)
                c.h_in[i] = (float)(lcg(&seed) >> 8) * (2.0f / 16777216.0f) - 1.0f;
        cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
        if (!check_run(b, lp, k, 1, &c, nout, c.h_ref, &st)) {
            /* the legacy call itself failed: no reference, keep the legacy path */
            cudaGetLastError();
            variant_off(b, k, "could not be checked (the legacy call failed)", st);
            continue;
        }
        if (!check_run(b, lp, k, 0, &c, nout, c.h_got, &st)) {
            cudaGetLastError();
            variant_off(b, k, "failed its first run", st);
            continue;
        }
        if (!agree(c.h_ref, c.h_got, nout, tol)) {
            variant_off(b, k, "disagrees with the legacy call", CUDNN_STATUS_SUCCESS);
            continue;
        }
        passed++;
    }
    check_free(&c);
    if (passed) g_verified++;
}

/* ---- build / free ---- */

void sq_cuda_be_conv_free(sq_cuda_be_conv *b)
{
    if (!b) return;
    for (int k = 0; k < SQ_BE_VARIANTS; k++) {
        packs_drop(&b->v[k]);
        variant_free(&b->v[k]);
    }
    free(b);
}

sq_cuda_be_conv *sq_cuda_be_conv_build(const sq_cuda_conv_plan *lp, int tf32, int det_first,
                                       size_t ws_cap)
{
    cudnnHandle_t h = sq_cuda_cudnn();
    sq_cuda_be_conv *b = calloc(1, sizeof *b);
    if (!h || !b) {
        free(b);
        return NULL;
    }
    b->cs = lp->cs;
    int built = 0;
    for (int k = 0; k < SQ_BE_VARIANTS; k++) {
        cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
        b->v[k].engine = -1;
        if (variant_build(&b->v[k], k, h, &b->cs, tf32, det_first, ws_cap, &st)) {
            b->v[k].usable = 1;
            if (b->v[k].ws > b->ws_bytes) b->ws_bytes = b->v[k].ws;
            built++;
        } else {
            variant_free(&b->v[k]);
            b->v[k].engine = -1;
            fprintf(stderr,
                    "sqakd: cuDNN backend API: no %s plan for N=%d C=%d %dx%d K=%d %dx%d (%s); "
                    "the legacy API serves it\n",
                    g_vname[k], b->cs.n, b->cs.c, b->cs.h, b->cs.w, b->cs.k, b->cs.r, b->cs.s,
                    cudnnGetErrorString(st));
        }
    }
    if (built) {
        self_check(b, lp, tf32);
        built = 0;
        for (int k = 0; k < SQ_BE_VARIANTS; k++) built += b->v[k].usable;
    }
    if (!built) {
        sq_cuda_be_conv_free(b);
        return NULL;
    }
    return b;
}

size_t sq_cuda_be_conv_ws(const sq_cuda_be_conv *b) { return b ? b->ws_bytes : 0; }

int64_t sq_cuda_be_conv_engine(const sq_cuda_be_conv *b, int k)
{
    return b && b->v[k].usable ? b->v[k].engine : -1;
}
