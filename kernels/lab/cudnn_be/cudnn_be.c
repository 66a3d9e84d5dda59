/* cudnn_be.c: the convolutions through cuDNN's backend (graph) API, with execution plans built
   once per shape and variant packs built once per set of pointers. The shipped backend keeps
   every call on cudnnConvolutionForward / BackwardData / BackwardFilter (kernels/cuda/cudnn.c):
   this lost (docs/gpu-validation.md, run 4: not faster, and its CUDA-graph replays drifted) and
   lives in the lab (conv_be_lab.c runs it behind an op table).

   Why it was tried: a legacy convolution call costs tens of microseconds of host time inside
   cuDNN 9 (docs/gpu-validation.md, run 3); a finalized execution plan and a finalized variant
   pack leave one cudnnBackendExecute per call.

   Per convolution shape (conv_be_lab.c builds this next to the legacy plan), four plans, one per
   variant: forward (beta 0), backward data (beta 0: the "set" op, and beta 1: accumulate) and
   backward filter (beta 1). Each is one operation in one operation graph. Its engine config is
   the first of the heuristics' (mode A) list (the option conv-algo=find does not apply here)
   that
   - does not down-convert FP32 inputs or reduce in reduced precision,
   - uses no tensor cores when TF32 is off (option tf32 = 0; with FP32 data a tensor-core engine
     computes in TF32),
   - is not compiled at run time (seconds of set-up per shape, and no faster for these sizes),
   - is deterministic, unless the option deterministic is 0 or no deterministic engine is left,
   - finalizes, with a workspace within the cap.
   Tensor UIDs: 1 = x (dx), 2 = w (dw), 3 = y (dy); FP32, packed NCHW, 16-byte alignment.

   Before a plan is used, each variant is checked against the legacy call (cudnn_be_check.c); a
   variant that fails to build, to run or to agree stays on the legacy path, with one line on
   stderr. Variant packs are cached in cudnn_be_pack.c.

   A call whose pointers are not 16-byte aligned, or whose cudnnBackendExecute fails, runs the
   legacy call instead (a failing variant is then switched off for good, with one line on
   stderr). Nothing of this records a sticky error unless the legacy call fails too. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
/* CUDNN_ATTR_OPERATIONGRAPH_HANDLE and CUDNN_ATTR_EXECUTION_PLAN_HANDLE are deprecated in the
   9.x headers in favour of device-property descriptors (cuDNN >= 9.8), but every cuDNN 9 accepts
   them, and the GPU machines' library may be older than the headers */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

#include "cudnn_be_int.h"

static const char *const g_vname[LAB_BE_VARIANTS] = {"forward", "backward data (set)",
                                                    "backward data (accumulate)",
                                                    "backward filter"};
static long g_fallback_calls; /* calls that went to the legacy path after a failed execute */

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
    static const cudnnBackendDescriptorType_t type[LAB_BE_VARIANTS] = {
        CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
        CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
        CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
        CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR};
    cudnnBackendDescriptor_t d = make(v, type[k], st);
    if (!d) return NULL;
    /* per variant: the attributes of x (dx), w (dw), y (dy), the convolution, alpha, beta */
    static const cudnnBackendAttributeName_t attr[LAB_BE_VARIANTS][6] = {
        {CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W,
         CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
         CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA},
#define LAB_BE_DATA                                                                               \
    {CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W,     \
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC, \
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA}
        LAB_BE_DATA, LAB_BE_DATA,
#undef LAB_BE_DATA
        {CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA}};
    const float alpha = 1.0f, beta = (k == LAB_BE_FWD || k == LAB_BE_BWD_DATA_SET) ? 0.0f : 1.0f;
    const cudnnBackendDescriptor_t operand[4] = {x, w, y, cd};
    for (int i = 0; i < 4; i++)
        SET(d, attr[k][i], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &operand[i]);
    SET(d, attr[k][4], CUDNN_TYPE_FLOAT, 1, &alpha);
    SET(d, attr[k][5], CUDNN_TYPE_FLOAT, 1, &beta);
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

long lab_be_fallback_calls(void) { return g_fallback_calls; }

/* ---- execution ---- */

void lab_be_variant_off(lab_be_conv *b, int k, const char *why, cudnnStatus_t st)
{
    fprintf(stderr,
            "sqakd: cuDNN backend API: %s convolution of N=%d C=%d %dx%d K=%d %dx%d stride %d pad "
            "%d groups %d (engine %lld) %s (%s); it uses the legacy API from now on\n",
            g_vname[k], b->cs.n, b->cs.c, b->cs.h, b->cs.w, b->cs.k, b->cs.r, b->cs.s,
            b->cs.stride, b->cs.pad, b->cs.groups, (long long)b->v[k].engine, why,
            cudnnGetErrorString(st));
    lab_be_packs_drop(&b->v[k]);
    b->v[k].usable = 0;
}

int lab_be_conv_usable(const lab_be_conv *b, int k) { return b && b->v[k].usable; }

int lab_be_conv_run(lab_be_conv *b, int k, const void *px, const void *pw, const void *py,
                        void *ws)
{
    if (!b || !b->v[k].usable) return 0;
    be_variant *v = &b->v[k];
    if (v->ws == 0) ws = NULL;
    if ((((uintptr_t)px | (uintptr_t)pw | (uintptr_t)py | (uintptr_t)ws) & 15u) != 0) {
        g_fallback_calls++;
        return 0; /* the plan promised 16-byte alignment */
    }
    const void *p[3] = {px, pw, py};
    cudnnStatus_t st;
    cudnnBackendDescriptor_t pack = lab_be_pack_get(v, p, ws, &st);
    if (!pack) {
        lab_be_variant_off(b, k, "variant pack failed", st);
        g_fallback_calls++;
        return 0;
    }
    st = cudnnBackendExecute(sq_cuda_cudnn(), v->plan, pack);
    if (st != CUDNN_STATUS_SUCCESS) {
        lab_be_variant_off(b, k, "execution failed", st);
        g_fallback_calls++;
        return 0;
    }
    return 1;
}

/* ---- build / free ---- */

void lab_be_conv_free(lab_be_conv *b)
{
    if (!b) return;
    for (int k = 0; k < LAB_BE_VARIANTS; k++) {
        lab_be_packs_drop(&b->v[k]);
        variant_free(&b->v[k]);
    }
    free(b);
}

lab_be_conv *lab_be_conv_build(const sq_cuda_conv_plan *lp, int tf32, int det_first,
                                       size_t ws_cap)
{
    cudnnHandle_t h = sq_cuda_cudnn();
    lab_be_conv *b = calloc(1, sizeof *b);
    if (!h || !b) {
        free(b);
        return NULL;
    }
    b->cs = lp->cs;
    int built = 0;
    for (int k = 0; k < LAB_BE_VARIANTS; k++) {
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
        lab_be_self_check(b, lp, tf32);
        built = 0;
        for (int k = 0; k < LAB_BE_VARIANTS; k++) built += b->v[k].usable;
    }
    if (!built) {
        lab_be_conv_free(b);
        return NULL;
    }
    return b;
}

size_t lab_be_conv_ws(const lab_be_conv *b) { return b ? b->ws_bytes : 0; }
