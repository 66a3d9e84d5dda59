/* test_dnn_backend.c: Criterion suite "cuemu_dnn", continued: the emulation of cuDNN's backend
   (graph) API (cudnn_emu_backend.c). The three convolution operations through heuristics, plan
   and variant pack against the naive reference, alpha and beta included; the strictness that
   makes a wrong use fail here as it would on a GPU (attribute types and counts, set after
   finalize, unfinalized or wrong-kind descriptors, missing attributes, shape mismatches, UIDs
   missing from the pack, misaligned pointers, a missing workspace); the engine notes. */
#include "test_dnn_util.h"

#define D CUDNN_TYPE_BACKEND_DESCRIPTOR
#define OK(stmt) cr_assert_eq((stmt), CUDNN_STATUS_SUCCESS, "%s", #stmt)

static cudnnBackendDescriptor_t tensor(int64_t uid, const int64_t dims[4], int64_t align)
{
    cudnnBackendDescriptor_t t;
    int64_t str[4] = {dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1};
    cudnnDataType_t dt = CUDNN_DATA_FLOAT;
    OK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_TENSOR_DESCRIPTOR, &t));
    OK(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt));
    OK(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims));
    OK(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, str));
    OK(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid));
    OK(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align));
    OK(cudnnBackendFinalize(t));
    return t;
}

static cudnnBackendDescriptor_t conv(const cfg *c)
{
    cudnnBackendDescriptor_t d;
    cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    int64_t two = 2, dil[2] = {c->dil, c->dil}, str[2] = {c->stride, c->stride},
            pad[2] = {c->pad, c->pad};
    OK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, &d));
    OK(cudnnBackendSetAttribute(d, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp));
    OK(cudnnBackendSetAttribute(d, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1,
                                &c->mode));
    OK(cudnnBackendSetAttribute(d, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &two));
    OK(cudnnBackendSetAttribute(d, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, dil));
    OK(cudnnBackendSetAttribute(d, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, str));
    OK(cudnnBackendSetAttribute(d, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pad));
    OK(cudnnBackendSetAttribute(d, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, pad));
    OK(cudnnBackendFinalize(d));
    return d;
}

typedef struct be_set {
    cudnnHandle_t h;
    cudnnBackendDescriptor_t x, w, y, cd, op, graph, heur, cfg[8], plan;
    int ncfg;
    int64_t ws;
} be_set;

/* dir 0 forward, 1 backward data, 2 backward filter; the plan of the first engine config whose
   plan finalizes (engine `want` when >= 0) */
static be_set build(const cfg *c, int dir, float alpha, float beta, int want)
{
    be_set s;
    memset(&s, 0, sizeof s);
    OK(cudnnCreate(&s.h));
    int oh = (c->h + 2 * c->pad - c->dil * (c->r - 1) - 1) / c->stride + 1,
        ow = (c->w + 2 * c->pad - c->dil * (c->s - 1) - 1) / c->stride + 1;
    int64_t dx[4] = {c->n, c->c, c->h, c->w}, dw[4] = {c->k, c->c / c->groups, c->r, c->s},
            dy[4] = {c->n, c->k, oh, ow};
    s.x = tensor(1, dx, 16);
    s.w = tensor(2, dw, 16);
    s.y = tensor(3, dy, 16);
    s.cd = conv(c);
    static const cudnnBackendDescriptorType_t ty[3] = {
        CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
        CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
        CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR};
    static const cudnnBackendAttributeName_t at[3][6] = {
        {CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W,
         CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
         CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA},
        {CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA},
        {CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA}};
    OK(cudnnBackendCreateDescriptor(ty[dir], &s.op));
    OK(cudnnBackendSetAttribute(s.op, at[dir][0], D, 1, &s.x));
    OK(cudnnBackendSetAttribute(s.op, at[dir][1], D, 1, &s.w));
    OK(cudnnBackendSetAttribute(s.op, at[dir][2], D, 1, &s.y));
    OK(cudnnBackendSetAttribute(s.op, at[dir][3], D, 1, &s.cd));
    OK(cudnnBackendSetAttribute(s.op, at[dir][4], CUDNN_TYPE_FLOAT, 1, &alpha));
    double beta_d = beta; /* both scalar types are accepted */
    OK(cudnnBackendSetAttribute(s.op, at[dir][5], CUDNN_TYPE_DOUBLE, 1, &beta_d));
    OK(cudnnBackendFinalize(s.op));
    OK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, &s.graph));
    OK(cudnnBackendSetAttribute(s.graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, D, 1, &s.op));
    OK(cudnnBackendSetAttribute(s.graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &s.h));
    OK(cudnnBackendFinalize(s.graph));
    cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    OK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &s.heur));
    OK(cudnnBackendSetAttribute(s.heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, D, 1, &s.graph));
    OK(cudnnBackendSetAttribute(s.heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode));
    OK(cudnnBackendFinalize(s.heur));
    int64_t count = 0;
    OK(cudnnBackendGetAttribute(s.heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, D, 0, &count, NULL));
    cr_assert(count >= 1 && count <= 8, "%lld results", (long long)count);
    for (int64_t i = 0; i < count; i++)
        OK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &s.cfg[i]));
    int64_t got = 0;
    OK(cudnnBackendGetAttribute(s.heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, D, count, &got, s.cfg));
    cr_assert_eq(got, count);
    s.ncfg = (int)count;
    for (int i = 0; i < s.ncfg && !s.plan; i++) {
        if (want >= 0 && i != want) continue;
        cudnnBackendDescriptor_t p;
        OK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &p));
        OK(cudnnBackendSetAttribute(p, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &s.h));
        OK(cudnnBackendSetAttribute(p, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, D, 1, &s.cfg[i]));
        if (cudnnBackendFinalize(p) == CUDNN_STATUS_SUCCESS)
            s.plan = p;
        else
            OK(cudnnBackendDestroyDescriptor(p));
    }
    cr_assert_not_null(s.plan);
    OK(cudnnBackendGetAttribute(s.plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64,
                                1, &got, &s.ws));
    return s;
}

static void free_be(be_set *s)
{
    cudnnBackendDestroyDescriptor(s->plan);
    for (int i = 0; i < s->ncfg; i++) cudnnBackendDestroyDescriptor(s->cfg[i]);
    cudnnBackendDescriptor_t d[] = {s->heur, s->graph, s->op, s->cd, s->y, s->w, s->x};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) cudnnBackendDestroyDescriptor(d[i]);
    cudnnDestroy(s->h);
}

static cudnnBackendDescriptor_t pack(int n, const int64_t *uids, void *const *ptrs, void *ws)
{
    cudnnBackendDescriptor_t p;
    OK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &p));
    OK(cudnnBackendSetAttribute(p, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids));
    OK(cudnnBackendSetAttribute(p, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs));
    OK(cudnnBackendSetAttribute(p, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws));
    OK(cudnnBackendFinalize(p));
    return p;
}

/* the three directions, alpha 2 and beta 0.5 (beta 0: outputs start as NaN), against ref_conv */
Test(cuemu_dnn, backend_api_convolutions_match_the_reference)
{
    static const cfg cases[] = {
        {2, 3, 7, 5, 4, 3, 3, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION},
        {2, 4, 6, 5, 6, 3, 3, 2, 1, 2, 1, CUDNN_CROSS_CORRELATION},
        {3, 8, 9, 9, 8, 3, 3, 1, 1, 8, 1, CUDNN_CROSS_CORRELATION},
        {1, 2, 11, 13, 3, 5, 5, 2, 2, 1, 1, CUDNN_CROSS_CORRELATION},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const cfg *c = &cases[ci];
        int oh = (c->h + 2 * c->pad - (c->r - 1) - 1) / c->stride + 1,
            ow = (c->w + 2 * c->pad - (c->s - 1) - 1) / c->stride + 1;
        size_t nx = (size_t)c->n * c->c * c->h * c->w, nw = (size_t)c->k * (c->c / c->groups) * c->r * c->s,
               ny = (size_t)c->n * c->k * oh * ow;
        float *x = dfill(nx), *w = dfill(nw), *dy = dfill(ny);
        double *ry = malloc(ny * sizeof *ry), *rdx = malloc(nx * sizeof *rdx), *rdw = malloc(nw * sizeof *rdw);
        ref_conv(c, oh, ow, x, w, dy, ry, rdx, rdw);
        for (int dir = 0; dir < 3; dir++)
            for (int b = 0; b < 2; b++) {
                float beta = b ? 0.5f : 0.0f;
                be_set s = build(c, dir, 2.0f, beta, -1);
                size_t nout = dir == 0 ? ny : dir == 1 ? nx : nw;
                const double *ref = dir == 0 ? ry : dir == 1 ? rdx : rdw;
                float *out = b ? dfill(nout) : dnan(nout), *ws = s.ws ? dalloc((size_t)s.ws) : NULL;
                double *want = malloc(nout * sizeof *want);
                for (size_t i = 0; i < nout; i++) want[i] = 2.0 * ref[i] + (b ? 0.5 * out[i] : 0.0);
                void *ptr[3] = {dir == 1 ? (void *)out : x, dir == 2 ? (void *)out : w,
                                dir == 0 ? (void *)out : dy};
                int64_t uids[3] = {3, 1, 2}; /* any order */
                void *ord[3] = {ptr[2], ptr[0], ptr[1]};
                cudnnBackendDescriptor_t p = pack(3, uids, ord, ws);
                OK(cudnnBackendExecute(s.h, s.plan, p));
                expect_close("backend conv", out, want, nout, 1e-5);
                cudnnBackendDestroyDescriptor(p);
                free(want);
                dfree(out);
                if (ws) dfree(ws);
                free_be(&s);
            }
        dfree(x); dfree(w); dfree(dy);
        free(ry); free(rdx); free(rdw);
    }
}

Test(cuemu_dnn, backend_api_is_strict)
{
    int64_t dims[4] = {2, 3, 5, 5}, uid = 1, bad[4] = {2, 3, 5, 0};
    cudnnBackendDescriptor_t t, t2, op;
    float one = 1.0f;
    /* wrong attribute type, unknown attribute for the kind, counts */
    OK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_TENSOR_DESCRIPTOR, &t));
    cr_assert_eq(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_FLOAT, 1, &one),
                 CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE);
    cr_assert_eq(cudnnBackendSetAttribute(t, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_INT64, 1, &uid),
                 CUDNN_STATUS_BAD_PARAM);
    cr_assert_eq(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 2, dims),
                 CUDNN_STATUS_BAD_PARAM);
    /* missing attributes: finalize fails; non-positive dimensions too */
    cr_assert_eq(cudnnBackendFinalize(t), CUDNN_STATUS_BAD_PARAM);
    cudnnBackendDestroyDescriptor(t);
    t = tensor(1, dims, 16);
    cr_assert_eq(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid),
                 CUDNN_STATUS_BAD_PARAM, "set after finalize");
    OK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_TENSOR_DESCRIPTOR, &t2));
    int64_t str[4] = {75, 25, 5, 1}, al = 16, two = 2;
    cudnnDataType_t dt = CUDNN_DATA_FLOAT;
    OK(cudnnBackendSetAttribute(t2, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt));
    OK(cudnnBackendSetAttribute(t2, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, bad));
    OK(cudnnBackendSetAttribute(t2, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, str));
    OK(cudnnBackendSetAttribute(t2, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &two));
    OK(cudnnBackendSetAttribute(t2, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &al));
    cr_assert_eq(cudnnBackendFinalize(t2), CUDNN_STATUS_BAD_PARAM);
    /* an unfinalized descriptor, or one of the wrong kind, as an operand */
    OK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR, &op));
    cr_assert_eq(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, D, 1, &t2),
                 CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED);
    cr_assert_eq(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, D, 1, &t),
                 CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE);
    /* an operation whose y does not have the convolution's output shape */
    cfg c = {2, 3, 5, 5, 4, 3, 3, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION};
    int64_t dw[4] = {4, 3, 3, 3}, dyb[4] = {2, 4, 4, 5};
    cudnnBackendDescriptor_t w = tensor(2, dw, 16), y = tensor(3, dyb, 16), cd = conv(&c);
    OK(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, D, 1, &t));
    OK(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, D, 1, &w));
    OK(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, D, 1, &y));
    OK(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, D, 1, &cd));
    OK(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &one));
    cr_assert_eq(cudnnBackendFinalize(op), CUDNN_STATUS_BAD_PARAM, "no beta");
    float zero = 0.0f;
    OK(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &zero));
    cr_assert_eq(cudnnBackendFinalize(op), CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH);
    cudnnBackendDescriptor_t d[] = {op, cd, y, w, t2, t};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) OK(cudnnBackendDestroyDescriptor(d[i]));
}

Test(cuemu_dnn, backend_api_execute_checks_the_pack)
{
    cfg c = {2, 4, 6, 6, 4, 3, 3, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION};
    be_set s = build(&c, 0, 1.0f, 0.0f, 4); /* engine 4: needs a workspace */
    cr_assert_gt(s.ws, 0);
    size_t nx = 2 * 4 * 36, nw = 4 * 4 * 9, ny = 2 * 4 * 36;
    float *x = dfill(nx + 4), *w = dfill(nw), *y = dnan(ny);
    unsigned char *ws = dalloc((size_t)s.ws);
    int64_t uids[3] = {1, 2, 3};
    void *ptr[3] = {x, w, y};
    cudnnBackendDescriptor_t p = pack(2, uids, ptr, ws);
    cr_assert_eq(cudnnBackendExecute(s.h, s.plan, p), CUDNN_STATUS_BAD_PARAM, "y's UID missing");
    cudnnBackendDestroyDescriptor(p);
    void *mis[3] = {x + 1, w, y};
    p = pack(3, uids, mis, ws);
    cr_assert_eq(cudnnBackendExecute(s.h, s.plan, p), CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER);
    cudnnBackendDestroyDescriptor(p);
    p = pack(3, uids, ptr, NULL);
    cr_assert_eq(cudnnBackendExecute(s.h, s.plan, p), CUDNN_STATUS_BAD_PARAM, "no workspace");
    cudnnBackendDestroyDescriptor(p);
    p = pack(3, uids, ptr, ws);
    memset(ws, 0, (size_t)s.ws);
    OK(cudnnBackendExecute(s.h, s.plan, p));
    cr_assert_eq(ws[0], 0xff, "the workspace is ruined after use");
    for (size_t i = 0; i < ny; i++) cr_assert(isfinite(y[i]));
    /* the engines' notes: 0 down-converts, 1 is non-deterministic, 2 compiles at run time */
    cudnnBackendDescriptor_t e;
    OK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &e));
    int64_t got;
    OK(cudnnBackendGetAttribute(s.cfg[0], CUDNN_ATTR_ENGINECFG_ENGINE, D, 1, &got, &e));
    cudnnBackendNumericalNote_t nn[8];
    OK(cudnnBackendGetAttribute(e, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE, 8, &got, nn));
    cr_assert_eq(got, 2);
    cr_assert_eq(nn[1], CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS);
    OK(cudnnBackendDestroyDescriptor(e));
    cudnnBackendDestroyDescriptor(p);
    dfree(x); dfree(w); dfree(y); dfree(ws);
    free_be(&s);
}
