/* test_cuda_graph.c: Criterion suite "cuda_graph": record and replay (backend.h, graph_*) on
   the CUDA backend, and the training step that uses it (backend option graph=1, host/train/step.c).
   - Replays read the buffers' current contents and run the recorded ops with their recorded
     scalars.
   - A recording during which an op synchronises (a blocking host copy) fails: graph_end returns
     NULL with the reason, nothing recorded has run, no sticky error is left, and the backend
     works eagerly afterwards.
   - A failed recording inside the training step leaves it eager, with the same results.
   - Steps with graphs equal eager steps bit for bit: SQAKD (resnet20 with its teacher, KL, Adam,
     staged inputs) and label-supervised QAT (smallcnn, CE, SGD, synchronous inputs), through a
     warm-up step, a recording, replays, a reset (as at an epoch boundary) and a new recording:
     losses, parameters, quantizer parameters, optimizer state and BN batch counts. Every
     kernel is deterministic and cuDNN runs deterministic algorithms, so the same ops in the same
     order give the same bits. (That cuDNN's backend API is never recorded is tested with it,
     in kernels/lab/cudnn_be.)
   Without a GPU every test SKIPS (under cuemu they run on the emulated device). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model/model_internal.h"
#include "sqakd/train.h"
#include "train/train_internal.h"
#include "util_check.h"
#include "util_fixtures.h"
#include "cuda_hooks.h"

static void setup(void) { (void)sqt_cuda_configure(); /* cuDNN off TF32 (cuda_hooks.h) */ }

TestSuite(cuda_graph, .init = setup, .timeout = 600);

static const sq_backend *gpu(void)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    cr_assert(g->graph_begin && g->graph_end && g->graph_run && g->graph_free);
    return g;
}

static void expect_clean(const sq_backend *g)
{
    g->sync();
    cr_assert_eq(g->status(), SQ_OK, "CUDA backend error: %s", sq_last_error());
}

Test(cuda_graph, replays_read_current_buffers_with_recorded_scalars)
{
    const sq_backend *g = gpu();
    enum { n = 1000 };
    float *x = g->alloc(n * sizeof(float)), *y = g->alloc(n * sizeof(float)), h[n];
    cr_assert(x && y);
    cr_assert_eq(g->graph_begin(), 0, "%s", sq_last_error());
    g->axpy(n, 2.0f, x, y); /* y += 2 x */
    g->scale(n, 0.5f, y);   /* y *= 0.5 */
    void *gr = g->graph_end();
    cr_assert(gr, "%s", sq_last_error());
    for (int i = 0; i < n; i++) h[i] = (float)i;
    g->copy_h2d(x, h, sizeof h);
    g->fill(n, 1.0f, y);
    g->graph_run(gr); /* y = (1 + 2 i) / 2 */
    g->graph_run(gr); /* y = ((1 + 2 i) / 2 + 2 i) / 2 */
    g->copy_d2h(h, y, sizeof h);
    for (int i = 0; i < n; i++) {
        const float want = ((1.0f + 2.0f * i) * 0.5f + 2.0f * i) * 0.5f;
        cr_assert_eq(h[i], want, "y[%d] = %g, want %g", i, h[i], want);
    }
    for (int i = 0; i < n; i++) h[i] = -1.0f;
    g->copy_h2d(x, h, sizeof h); /* new contents, same buffer */
    g->fill(n, 0.0f, y);
    g->graph_run(gr);
    g->copy_d2h(h, y, sizeof h);
    for (int i = 0; i < n; i++) cr_assert_eq(h[i], -1.0f, "after new x: y[%d] = %g", i, h[i]);
    g->graph_free(gr);
    expect_clean(g);
    g->free(x);
    g->free(y);
}

Test(cuda_graph, a_recording_that_synchronises_fails_cleanly)
{
    const sq_backend *g = gpu();
    enum { n = 64 };
    float *y = g->alloc(n * sizeof(float)), h[n];
    cr_assert(y);
    g->fill(n, 3.0f, y);
    expect_clean(g);
    const unsigned errors = g->error_count();
    cr_assert_eq(g->graph_begin(), 0, "%s", sq_last_error());
    g->fill(n, 7.0f, y);                  /* recorded, must not run */
    for (int i = 0; i < n; i++) h[i] = 5.0f;
    g->copy_h2d(y, h, sizeof h);          /* synchronous: not allowed in a recording */
    void *gr = g->graph_end();
    cr_assert_null(gr, "a recording with a synchronous copy in it succeeded");
    cr_assert(strstr(sq_last_error(), "CUDA graph"), "message: %s", sq_last_error());
    cr_assert_gt(g->error_count(), errors, "the failing call was not reported");
    cr_assert_eq(g->status(), SQ_OK, "sticky error left behind: %s", sq_last_error());
    g->copy_d2h(h, y, sizeof h);
    for (int i = 0; i < n; i++) cr_assert_eq(h[i], 3.0f, "y[%d] = %g: recorded work ran", i, h[i]);
    g->fill(n, 4.0f, y); /* eager work goes on */
    g->copy_d2h(h, y, sizeof h);
    for (int i = 0; i < n; i++) cr_assert_eq(h[i], 4.0f, "y[%d] = %g after the failure", i, h[i]);
    expect_clean(g);
    g->free(y);
}

/* ---- steps ---- */

#define STEPS 5 /* warm-up, record + run, replay, (reset) record + run, replay */

typedef struct run_out {
    float loss[STEPS];
    int recorded[STEPS];
    float *p, *qp, *m, *v; /* host copies after the last step */
    size_t n_train, n_quant;
    int64_t bn_tracked;    /* summed over the nodes */
} run_out;

static float *fetch(const sq_backend *be, const float *d, size_t n)
{
    float *h = malloc((n ? n : 1) * sizeof(float));
    cr_assert(h);
    if (n) be->copy_d2h(h, d, n * sizeof(float));
    return h;
}

static sq_model *model(const sq_backend *be, const char *arch, int batch, int train,
                       sq_quant_kind kind, int bits, uint64_t seed)
{
    sq_model *m = NULL;
    cr_assert_eq(sq_model_create(arch, 3, 32, 32, 10, &m), SQ_OK, "%s", sq_last_error());
    if (kind != SQ_QUANT_NONE) {
        sq_quant_opts q = {.kind = kind, .wbits = bits, .abits = bits};
        cr_assert_eq(sq_model_set_quant(m, &q), SQ_OK, "%s", sq_last_error());
    }
    cr_assert_eq(sq_model_setup(m, be, batch, train), SQ_OK, "%s", sq_last_error());
    sq_model_init_weights(m, seed);
    return m;
}

/* STEPS steps of cfg on fresh models with the backend option graph=1 (graph = 1), graph=0 (0) or
   the default (-1: graphs on); the student (and so the step) on backend sb, the teacher on g */
static void run(const sq_backend *g, const sq_backend *sb, const sq_train_cfg *cfg,
                const char *arch, int batch, int graph, run_out *o)
{
    sq_backend_opts opts = *sb->options(), dflt = SQ_BACKEND_OPTS_DEFAULT;
    opts.cuda_graph = graph < 0 ? dflt.cuda_graph : graph;
    cr_assert_eq(sb->configure(&opts), SQ_OK, "%s", sq_last_error());
    const int kl = cfg->loss == SQ_LOSS_KL;
    sq_model *t = kl ? model(g, arch, batch, 0, SQ_QUANT_NONE, 0, 11) : NULL;
    sq_model *s = model(sb, arch, batch, 1, SQ_QUANT_EWGS, 4, 12);
    size_t nx = (size_t)batch * 3 * 32 * 32;
    float *x = malloc(nx * sizeof(float));
    int32_t *y = malloc((size_t)batch * sizeof(int32_t));
    sqt_fill_uniform(x, nx, -2.0f, 2.0f, 77);
    cr_assert_eq(sq_model_quant_init(s, x, batch), SQ_OK, "%s", sq_last_error());
    sq_step_bufs *b = sq_step_bufs_create(s, kl); /* KL: staged inputs; CE: synchronous */
    cr_assert(b, "%s", sq_last_error());
    for (int k = 0; k < STEPS; k++) {
        sqt_fill_uniform(x, nx, -2.0f, 2.0f, 100 + (uint64_t)k);
        for (int i = 0; i < batch; i++) y[i] = (i * 7 + k) % 10;
        if (k == 3) sq_step_bufs_graph_reset(s, b); /* as at an epoch boundary */
        g->memset0(sq_step_bufs_loss_sum(b), sizeof(float));
        sq_train_step(cfg, s, t, b, x, y, batch, 1e-2f, 1e-3f, k + 1);
        g->copy_d2h(&o->loss[k], sq_step_bufs_loss_sum(b), sizeof(float));
        o->recorded[k] = sq_step_bufs_recorded(b);
    }
    expect_clean(g);
    sq_state_item it[4];
    cr_assert_eq(sq_train_state_items(s, b, it), 4);
    o->n_train = s->n_train;
    o->n_quant = s->n_quant;
    o->p = fetch(g, s->p, s->n_train);
    o->qp = fetch(g, s->qp, s->n_quant);
    o->m = fetch(g, it[0].dev, it[0].numel);
    o->v = fetch(g, it[1].dev, it[1].numel);
    o->bn_tracked = 0;
    for (int i = 0; i < s->nnodes; i++) o->bn_tracked += s->nodes[i].bn_tracked;
    sq_step_bufs_free(s, b);
    sq_model_free(s);
    if (t) sq_model_free(t);
    free(x);
    free(y);
    opts.cuda_graph = dflt.cuda_graph;
    sb->configure(&opts);
}

static void same_floats(const char *what, const float *a, const float *b, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float))) {
            if (bad < 3) fprintf(stderr, "%s[%zu]: graph %.9g eager %.9g\n", what, i, a[i], b[i]);
            bad++;
        }
    cr_expect_eq(bad, 0, "%s: %zu of %zu values differ between graph and eager steps", what, bad, n);
}

/* the CUDA backend whose recordings all fail, as a recording does when an op in it may not be
   captured: graph_end drops what was recorded and reports the failure */
static void *failing_graph_end(void)
{
    void *gr = sq_backend_cuda()->graph_end();
    if (gr) sq_backend_cuda()->graph_free(gr);
    sq_set_error("recording the step as a CUDA graph failed: (test) refused");
    return NULL;
}

static void compare_on(const sq_backend *sb, const sq_train_cfg *cfg, const char *arch, int batch,
                       const int want_recorded[STEPS])
{
    const sq_backend *g = gpu();
    run_out e, r;
    run(g, g, cfg, arch, batch, 0, &e);
    run(g, sb, cfg, arch, batch, 1, &r);
    for (int k = 0; k < STEPS; k++) {
        cr_expect_eq(e.recorded[k], 0, "eager run recorded at step %d", k + 1);
        cr_expect_eq(r.recorded[k], want_recorded[k], "graph run, step %d: recorded %d", k + 1,
                     r.recorded[k]);
        cr_expect(e.loss[k] > 0 && e.loss[k] == r.loss[k], "step %d: loss graph %.9g eager %.9g",
                  k + 1, r.loss[k], e.loss[k]);
    }
    cr_assert(r.n_train == e.n_train && r.n_quant == e.n_quant);
    same_floats("parameters", r.p, e.p, e.n_train);
    same_floats("quantizer parameters", r.qp, e.qp, e.n_quant);
    same_floats("optimizer m", r.m, e.m, e.n_train);
    same_floats("optimizer v", r.v, e.v, e.n_train);
    cr_expect_eq(r.bn_tracked, e.bn_tracked, "BN batches tracked: graph %lld eager %lld",
                 (long long)r.bn_tracked, (long long)e.bn_tracked);
    cr_expect_gt(e.bn_tracked, 0);
    free(e.p); free(e.qp); free(e.m); free(e.v);
    free(r.p); free(r.qp); free(r.m); free(r.v);
}

static void compare(const sq_train_cfg *cfg, const char *arch, int batch)
{
    static const int want_recorded[STEPS] = {0, 1, 1, 1, 1};
    compare_on(gpu(), cfg, arch, batch, want_recorded);
}

/* SQAKD (KL, Adam) on a resnet20 of batch 4 */
Test(cuda_graph, sqakd_steps_with_graphs_equal_eager_steps)
{
    sq_train_cfg cfg;
    sq_train_cfg_defaults(&cfg);
    cfg.loss = SQ_LOSS_KL;
    cfg.opt = SQ_OPT_ADAM;
    cfg.batch = 4;
    compare(&cfg, "resnet20", 4);
}

/* graphs are the default: with the default options the step records from its second step on
   (after one eager step, and again after the reset at step 4); graph=0 never records */
Test(cuda_graph, steps_are_recorded_by_default_and_not_with_0)
{
    const sq_backend *g = gpu();
    sq_train_cfg cfg;
    sq_train_cfg_defaults(&cfg);
    cfg.loss = SQ_LOSS_KL;
    cfg.batch = 2;
    static const int want[STEPS] = {0, 1, 1, 1, 1};
    run_out d, z;
    run(g, g, &cfg, "smallcnn", 2, -1, &d);
    run(g, g, &cfg, "smallcnn", 2, 0, &z);
    for (int k = 0; k < STEPS; k++) {
        cr_expect_eq(d.recorded[k], want[k], "default, step %d: recorded %d", k + 1, d.recorded[k]);
        cr_expect_eq(z.recorded[k], 0, "graph=0, step %d: recorded", k + 1);
        cr_expect(d.loss[k] > 0 && d.loss[k] == z.loss[k], "step %d: loss default %.9g, =0 %.9g",
                  k + 1, d.loss[k], z.loss[k]);
    }
    free(d.p); free(d.qp); free(d.m); free(d.v);
    free(z.p); free(z.qp); free(z.m); free(z.v);
}

Test(cuda_graph, ce_qat_steps_with_graphs_equal_eager_steps)
{
    sq_train_cfg cfg;
    sq_train_cfg_defaults(&cfg);
    cfg.loss = SQ_LOSS_CE;
    cfg.opt = SQ_OPT_SGD;
    cfg.batch = 6;
    compare(&cfg, "smallcnn", 6);
}

/* a failed recording (step 2) leaves the step eager for good, with the same results: the body
   runs eagerly in its place and the BN counts the recording touched are put back */
Test(cuda_graph, a_failed_recording_falls_back_to_eager_steps)
{
    static sq_backend failing;
    failing = *gpu();
    failing.graph_end = failing_graph_end;
    sq_train_cfg cfg;
    sq_train_cfg_defaults(&cfg);
    cfg.loss = SQ_LOSS_KL;
    cfg.opt = SQ_OPT_ADAM;
    cfg.batch = 2;
    static const int never[STEPS] = {0, 0, 0, 0, 0};
    compare_on(&failing, &cfg, "resnet20", 2, never);
    cr_expect_eq(failing.status(), SQ_OK, "sticky error after the fallback: %s", sq_last_error());
}
