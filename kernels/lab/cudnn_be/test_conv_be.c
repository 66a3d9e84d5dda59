/* test_conv_be.c: Criterion suite "lab_conv_be" (kernels/lab): the convolutions through cuDNN's
   backend (graph) API (cudnn_be.c), run by the lab's op table (conv_be_lab.c). Moved from
   tests/test_cuda_conv_be.c and tests/test_cuda_graph.c when the backend API left the shipped
   backend.
   - On the awkward shapes of cuda/conv_matches_cpu (sizes 1, odd and prime sizes, stride 2,
     groups, depthwise, 1x1 and 5x5), all four backend variants are in use (forward, backward
     data set and accumulate, backward filter), and each agrees with the CPU backend and with the
     shipped legacy calls: the test cannot pass through a silent fallback.
   - A variant pack is built once per set of pointers and then reused.
   - Pointers that are not 16-byte aligned take the legacy call, with the right result.
   - A quantized resnet20 forward and backward through the backend plans equals the same through
     the legacy calls (bit for bit under cuemu; on a GPU the algorithms differ, so within the
     loose bounds of tests/test_cuda_step.c for free runs).
   - Failure paths (under cuemu only, whose cuDNN plants the faults; on a GPU these SKIP):
     heuristics without results, plans that disagree with the legacy calls in the self-check,
     and an execution that fails after set-up. Each leaves the legacy call in charge, with the
     right results and no sticky error.
   - The backend API is never recorded: the table's graph_begin refuses (its replays drifted
     from the eager steps on an H100, docs/gpu-validation.md run 4), leaving no sticky error and
     no capture open; with the API switched off it records.
   Without a GPU every test SKIPS (under cuemu they run on the emulated device). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime_api.h>
#include "conv_be_lab.h"
#include "cuda_hooks.h"
#include "sqakd/model.h"
#include "util_check.h"
#include "util_fixtures.h"

static void setup(void)
{
    (void)sqt_cuda_configure(); /* cuDNN off TF32 (tests/cuda_hooks.h) */
    unsetenv("CUEMU_DNN_BACKEND_FAULT");
}

TestSuite(lab_conv_be, .init = setup, .timeout = 600);

/* the lab's table: convolutions through the backend API */
static const sq_backend *gpu(void)
{
    const sq_backend *g = lab_conv_be_backend();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    cr_assert(g->conv2d_bwd_set);
    return g;
}

/* the fault tests need cuemu's cuDNN, which plants them */
static void need_cuemu(void)
{
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess || strncmp(prop.name, "cuemu", 5))
        cr_skip("needs cuemu's cuDNN emulation to plant the fault (device: %s)", prop.name);
}

/* n, c, h, w, k, r, s, stride, pad, groups */
static const int g_cases[][10] = {
    {1, 1, 1, 1, 1, 1, 1, 1, 0, 1},   {2, 3, 7, 5, 4, 3, 3, 1, 1, 1},
    {2, 4, 7, 7, 6, 3, 3, 2, 1, 1},   {2, 5, 5, 3, 7, 1, 1, 1, 0, 1},
    {2, 4, 6, 5, 6, 3, 3, 1, 1, 2},   {4, 8, 9, 9, 8, 3, 3, 1, 1, 8},
    {3, 24, 6, 6, 12, 1, 1, 1, 0, 3}, {3, 16, 16, 16, 32, 3, 3, 2, 1, 1},
    {1, 2, 11, 13, 3, 5, 5, 2, 2, 1}, {2, 16, 8, 8, 16, 3, 3, 1, 1, 1},
};
#define NCASES (sizeof g_cases / sizeof g_cases[0])

static sq_conv_shape shape(int ci)
{
    const int *p = g_cases[ci];
    sq_conv_shape cs;
    cr_assert_eq(sq_conv_shape_init(&cs, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]),
                 SQ_OK);
    return cs;
}

typedef struct conv_io {
    size_t nx, nw, ny;
    float *x, *w, *gy, *gx0, *gw0; /* host inputs */
} conv_io;

static conv_io io_make(const sq_conv_shape *cs, uint64_t seed)
{
    conv_io o;
    o.nx = (size_t)cs->n * cs->c * cs->h * cs->w;
    o.nw = (size_t)cs->k * (cs->c / cs->groups) * cs->r * cs->s;
    o.ny = (size_t)cs->n * cs->k * cs->oh * cs->ow;
    o.x = sqt_hrand(o.nx, -1, 1, seed);
    o.w = sqt_hrand(o.nw, -1, 1, seed + 1);
    o.gy = sqt_hrand(o.ny, -1, 1, seed + 2);
    o.gx0 = sqt_hrand(o.nx, -1, 1, seed + 3);
    o.gw0 = sqt_hrand(o.nw, -1, 1, seed + 4);
    return o;
}

static void io_free(conv_io *o)
{
    free(o->x); free(o->w); free(o->gy); free(o->gx0); free(o->gw0);
}

/* outputs of one pass on the device: y, gx accumulated onto gx0, gx set, gw accumulated */
typedef struct conv_out {
    float *y, *gx, *gx_set, *gw;
} conv_out;

static void out_free(conv_out *o) { free(o->y); free(o->gx); free(o->gx_set); free(o->gw); }

static conv_out run_device(const sq_backend *g, const sq_conv_shape *cs, const conv_io *io)
{
    size_t wsb = g->conv_ws_bytes(cs);
    void *ws = wsb ? g->alloc(wsb) : NULL;
    float *dx = sqt_dput(g, io->x, io->nx * 4), *dw = sqt_dput(g, io->w, io->nw * 4),
          *dgy = sqt_dput(g, io->gy, io->ny * 4), *dy = sqt_dput(g, NULL, io->ny * 4),
          *dgx = sqt_dput(g, io->gx0, io->nx * 4), *dgxs = sqt_dput(g, io->gx0, io->nx * 4),
          *dgw = sqt_dput(g, io->gw0, io->nw * 4);
    g->conv2d_fwd(cs, dx, dw, NULL, dy, ws);
    g->conv2d_bwd(cs, dx, dw, dgy, dgx, dgw, NULL, ws);
    g->conv2d_bwd_set(cs, dx, dw, dgy, dgxs, NULL, NULL, NULL); /* internal workspace */
    sqt_gpu_ok(g);
    conv_out o = {sqt_fetch(g, dy, io->ny, "y"), sqt_fetch(g, dgx, io->nx, "gx"),
                  sqt_fetch(g, dgxs, io->nx, "gx (set)"), sqt_fetch(g, dgw, io->nw, "gw")};
    g->free((char *)dx - SQT_GUARD);
    g->free((char *)dw - SQT_GUARD);
    g->free((char *)dgy - SQT_GUARD);
    if (ws) g->free(ws);
    return o;
}

static conv_out run_cpu(const sq_conv_shape *cs, const conv_io *io)
{
    const sq_backend *c = sq_backend_cpu();
    size_t wsb = c->conv_ws_bytes(cs);
    void *ws = wsb ? malloc(wsb) : NULL;
    conv_out o = {sqt_hvec(io->ny), sqt_hdup(io->gx0, io->nx), sqt_hvec(io->nx),
                  sqt_hdup(io->gw0, io->nw)};
    float *gw_scratch = sqt_hvec(io->nw);
    c->conv2d_fwd(cs, io->x, io->w, NULL, o.y, ws);
    c->conv2d_bwd(cs, io->x, io->w, io->gy, o.gx, o.gw, NULL, ws);
    c->conv2d_bwd(cs, io->x, io->w, io->gy, o.gx_set, gw_scratch, NULL, ws);
    free(gw_scratch);
    free(ws);
    return o;
}

/* as cuda/conv_matches_cpu: 1e-5 per term of each sum */
static void expect_conv_close(const char *who, const sq_conv_shape *cs, const conv_out *a,
                              const conv_out *b, const conv_io *io, uint64_t seed)
{
    double ty = (double)(cs->c / cs->groups) * cs->r * cs->s, tw = (double)cs->n * cs->oh * cs->ow,
           tx = (double)(cs->k / cs->groups) * cs->r * cs->s;
    char what[96];
    snprintf(what, sizeof what, "%s: y", who);
    sqt_expect_close(what, a->y, b->y, io->ny, 1e-5 * ty, 1e-4, seed);
    snprintf(what, sizeof what, "%s: gx (accumulate)", who);
    sqt_expect_close(what, a->gx, b->gx, io->nx, 1e-5 * tx, 1e-4, seed);
    snprintf(what, sizeof what, "%s: gx (set)", who);
    sqt_expect_close(what, a->gx_set, b->gx_set, io->nx, 1e-5 * tx, 1e-4, seed);
    snprintf(what, sizeof what, "%s: gw (accumulate)", who);
    sqt_expect_close(what, a->gw, b->gw, io->nw, 1e-5 * tw, 1e-4, seed);
}

Test(lab_conv_be, backend_plans_match_cpu_and_legacy_calls)
{
    const sq_backend *g = gpu();
    long fb0 = lab_be_fallback_calls();
    for (size_t ci = 0; ci < NCASES; ci++) {
        sq_conv_shape cs = shape((int)ci);
        cr_assert_eq(lab_conv_be_variants(&cs), 0xF,
                     "case %zu: backend variants in use 0x%x, want all four", ci,
                     lab_conv_be_variants(&cs));
        conv_io io = io_make(&cs, 900 + 10 * ci);
        size_t packs = lab_be_pack_count();
        conv_out be = run_device(g, &cs, &io);
        cr_expect_eq(lab_be_pack_count(), packs + 4, "case %zu: %zu new variant packs", ci,
                     lab_be_pack_count() - packs);
        conv_out lg = run_device(sq_backend_cuda(), &cs, &io); /* the shipped legacy calls */
        conv_out cpu = run_cpu(&cs, &io);
        expect_conv_close("backend vs CPU", &cs, &be, &cpu, &io, 900 + 10 * ci);
        expect_conv_close("backend vs legacy", &cs, &be, &lg, &io, 900 + 10 * ci);
        out_free(&be); out_free(&lg); out_free(&cpu);
        io_free(&io);
    }
    cr_expect_eq(lab_be_fallback_calls(), fb0, "calls handed back to the legacy API");
}

Test(lab_conv_be, variant_packs_are_built_once_per_pointer_set)
{
    const sq_backend *g = gpu();
    sq_conv_shape cs = shape(1);
    conv_io io = io_make(&cs, 77);
    float *dx = sqt_dput(g, io.x, io.nx * 4), *dw = sqt_dput(g, io.w, io.nw * 4),
          *dy = sqt_dput(g, NULL, io.ny * 4), *dy2 = sqt_dput(g, NULL, io.ny * 4);
    cr_assert_eq(lab_conv_be_variants(&cs), 0xF);
    size_t p0 = lab_be_pack_count();
    for (int i = 0; i < 3; i++) g->conv2d_fwd(&cs, dx, dw, NULL, dy, NULL);
    cr_expect_eq(lab_be_pack_count(), p0 + 1, "three calls, same pointers");
    g->conv2d_fwd(&cs, dx, dw, NULL, dy2, NULL);
    g->conv2d_fwd(&cs, dx, dw, NULL, dy2, NULL);
    cr_expect_eq(lab_be_pack_count(), p0 + 2, "another output buffer: one more pack");
    sqt_gpu_ok(g);
    float *a = sqt_fetch(g, dy, io.ny, "y"), *b = sqt_fetch(g, dy2, io.ny, "y2");
    sqt_expect_equal("same convolution into two buffers", a, b, io.ny);
    free(a); free(b);
    g->free((char *)dx - SQT_GUARD);
    g->free((char *)dw - SQT_GUARD);
    io_free(&io);
}

Test(lab_conv_be, misaligned_pointers_take_the_legacy_call)
{
    const sq_backend *g = gpu();
    sq_conv_shape cs = shape(2);
    conv_io io = io_make(&cs, 78);
    cr_assert_eq(lab_conv_be_variants(&cs), 0xF);
    /* x one float past a 16-byte boundary */
    float *x1 = malloc((io.nx + 1) * sizeof(float));
    x1[0] = 0.0f;
    memcpy(x1 + 1, io.x, io.nx * sizeof(float));
    float *dxb = sqt_dput(g, x1, (io.nx + 1) * 4), *dw = sqt_dput(g, io.w, io.nw * 4),
          *dy = sqt_dput(g, NULL, io.ny * 4);
    long fb0 = lab_be_fallback_calls();
    g->conv2d_fwd(&cs, dxb + 1, dw, NULL, dy, NULL);
    sqt_gpu_ok(g);
    cr_expect_eq(lab_be_fallback_calls(), fb0 + 1);
    cr_expect_eq(lab_conv_be_variants(&cs), 0xF, "a misaligned call switches nothing off");
    conv_out cpu = run_cpu(&cs, &io);
    float *y = sqt_fetch(g, dy, io.ny, "y");
    sqt_expect_close("misaligned x: y vs CPU", y, cpu.y, io.ny,
                     1e-5 * (cs.c / cs.groups) * cs.r * cs.s, 1e-4, 78);
    free(y); out_free(&cpu); free(x1);
    g->free((char *)dxb - SQT_GUARD);
    g->free((char *)dw - SQT_GUARD);
    io_free(&io);
}

/* a planted fault: the plans of shape ci end with variants `want_mask` in use; the results are
   the CPU's either way and no sticky error is left */
static void fault_case(const char *fault_at_build, const char *fault_after, int ci, int want_mask)
{
    const sq_backend *g = gpu();
    need_cuemu();
    if (fault_at_build) setenv("CUEMU_DNN_BACKEND_FAULT", fault_at_build, 1);
    sq_conv_shape cs = shape(ci);
    int built = lab_conv_be_variants(&cs);
    if (fault_after) {
        cr_assert_eq(built, 0xF);
        setenv("CUEMU_DNN_BACKEND_FAULT", fault_after, 1);
    }
    conv_io io = io_make(&cs, 300 + ci);
    conv_out d = run_device(g, &cs, &io), cpu = run_cpu(&cs, &io);
    expect_conv_close("after the fault vs CPU", &cs, &d, &cpu, &io, 300 + ci);
    cr_expect_eq(lab_conv_be_variants(&cs), want_mask, "variants in use 0x%x, want 0x%x",
                 lab_conv_be_variants(&cs), want_mask);
    cr_expect_eq(g->status(), SQ_OK, "sticky error: %s", sq_last_error());
    out_free(&d); out_free(&cpu);
    io_free(&io);
    unsetenv("CUEMU_DNN_BACKEND_FAULT");
}

Test(lab_conv_be, heuristics_without_results_keep_the_legacy_calls)
{
    fault_case("heuristics", NULL, 3, 0);
}

Test(lab_conv_be, plans_that_disagree_in_the_self_check_are_never_used)
{
    fault_case("wrong", NULL, 7, 0);
}

Test(lab_conv_be, a_failing_execution_hands_the_variant_back_for_good)
{
    fault_case(NULL, "execute", 1, 0); /* every variant ran once and failed once */
    cr_expect_gt(lab_be_fallback_calls(), 0);
}

/* ---- a quantized resnet20 through both APIs ---- */

static float *host_copy(const sq_backend *g, const float *d, size_t n)
{
    float *h = malloc(n * sizeof(float));
    cr_assert(h);
    g->copy_d2h(h, d, n * sizeof(float));
    return h;
}

static int is_cuemu(void)
{
    struct cudaDeviceProp prop;
    return cudaGetDeviceProperties(&prop, 0) == cudaSuccess && !strncmp(prop.name, "cuemu", 5);
}

Test(lab_conv_be, resnet20_forward_backward_equals_the_legacy_calls)
{
    const sq_backend *g = gpu();
    const int batch = 3;
    sq_model *m = NULL;
    cr_assert_eq(sq_model_create("resnet20", 3, 32, 32, 10, &m), SQ_OK, "%s", sq_last_error());
    sq_quant_opts q = {.kind = SQ_QUANT_EWGS, .wbits = 4, .abits = 4};
    cr_assert_eq(sq_model_set_quant(m, &q), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_model_setup(m, g, batch, 1), SQ_OK, "%s", sq_last_error());
    sq_model_init_weights(m, 3);
    const size_t nx = (size_t)batch * 3 * 32 * 32;
    float *x = malloc(nx * sizeof(float)), glog[3 * 10];
    sqt_fill_normal(x, nx, 0.0f, 1.0f, 5);
    sqt_fill_normal(glog, 30, 0.0f, 0.1f, 6);
    float *dglog = g->alloc(sizeof glog);
    g->copy_h2d(dglog, glog, sizeof glog);
    cr_assert_eq(sq_model_quant_init(m, x, batch), SQ_OK, "%s", sq_last_error());
    float *logit[2], *grad[2];
    size_t packs0 = lab_be_pack_count();
    for (int api = 1; api >= 0; api--) {
        lab_conv_be_enable(api);
        sq_model_set_input(m, x, batch);
        /* training mode: batch statistics, so the running statistics that the first pass
           updates do not change the second */
        logit[api] = host_copy(g, sq_model_forward(m, batch, 1), 30);
        sq_model_zero_grad(m);
        sq_model_backward(m, batch, dglog);
        sqt_gpu_ok(g);
        grad[api] = host_copy(g, m->g, m->n_train);
        if (api) cr_expect_gt(lab_be_pack_count(), packs0 + 19, "the backend plans ran");
    }
    lab_conv_be_enable(1);
    double ss = 0;
    for (size_t i = 0; i < m->n_train; i++) ss += (double)grad[0][i] * grad[0][i];
    cr_expect_gt(ss, 0.0);
    if (is_cuemu()) {
        sqt_expect_equal("logits, backend vs legacy", logit[1], logit[0], 30);
        sqt_expect_equal("weight gradients, backend vs legacy", grad[1], grad[0], m->n_train);
    } else {
        /* different algorithms: a quantized network amplifies their rounding (test_cuda_step.c) */
        sqt_expect_close("logits, backend vs legacy", logit[1], logit[0], 30, 0.05, 0.02, 1);
        double s1 = 0;
        for (size_t i = 0; i < m->n_train; i++) s1 += (double)grad[1][i] * grad[1][i];
        cr_expect(fabs(sqrt(s1) - sqrt(ss)) <= 0.02 * sqrt(ss), "gradient norms %g vs %g",
                  sqrt(s1), sqrt(ss));
    }
    for (int a = 0; a < 2; a++) { free(logit[a]); free(grad[a]); }
    g->free(dglog);
    free(x);
    sq_model_free(m);
}

/* ---- CUDA graphs (from tests/test_cuda_graph.c) ---- */

Test(lab_conv_be, the_backend_api_is_not_recorded)
{
    const sq_backend *g = gpu();
    cr_assert_eq(g->graph_begin(), -1, "graph_begin accepted a recording with the backend API on");
    cr_expect(strstr(sq_last_error(), "backend API") != NULL, "message: %s", sq_last_error());
    float *d = g->alloc(64);
    g->memset0(d, 64); /* eager work still runs: no capture is open */
    g->sync();
    cr_expect_eq(g->status(), SQ_OK, "sticky error: %s", sq_last_error());
    lab_conv_be_enable(0);
    cr_assert_eq(g->graph_begin(), 0, "graph_begin refused with the legacy API: %s", sq_last_error());
    void *graph = g->graph_end();
    cr_expect(graph != NULL, "an empty recording failed: %s", sq_last_error());
    if (graph) g->graph_free(graph);
    lab_conv_be_enable(1);
    g->free(d);
}
