/* test_cuda_stage.c: Criterion suite "cuda_stage": the CUDA backend's asynchronous input staging
   (pinned double buffer, copy stream, events) and its out-of-memory report. A stage delivers
   exactly the bytes put, even when the host buffer is overwritten right after the put and the
   two slots are reused many times; training steps fed through the stages equal steps fed by
   synchronous copies; an absurd batch fails with SQ_ENOMEM and one message naming the batch,
   leaving the device usable. A feeder made with its loader (sq_feeder_open) uploads the loader's
   pinned batches themselves: the training driver and the evaluation make no host copy, with the
   same results as the copying route, and every batch of a long run arrives intact though the
   loader holds only SQ_FEEDER_KEEP + 1 slots (under cuemu, a slot rewritten while its upload may
   still read it aborts). Without a GPU every test SKIPS. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "sqakd/safetensors.h"
#include "sqakd/train.h"
#include "train/feeder.h"
#include "train/train_internal.h"
#include "util_check.h"
#include "util_fixtures.h"
#include "cuda_hooks.h"

static void setup(void) { (void)sqt_cuda_configure(); /* cuDNN off TF32 (cuda_hooks.h) */ }

TestSuite(cuda_stage, .init = setup, .timeout = 120);

#define GUARD 256
#define SENTINEL 0xA5

static const sq_backend *gpu_or_skip(void)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    return g;
}

static void gpu_ok(const sq_backend *g)
{
    g->sync();
    cr_assert_eq(g->status(), SQ_OK, "CUDA backend error: %s", sq_last_error());
}

Test(cuda_stage, puts_deliver_exact_bytes_through_both_slots)
{
    const sq_backend *g = gpu_or_skip();
    cr_assert(g->stage_new && g->stage_put && g->stage_free, "the CUDA backend has no input stage");
    const size_t n = 4099; /* odd, not a multiple of the block size */
    void *st = g->stage_new(n * sizeof(float), 1);
    cr_assert(st, "stage_new: %s", sq_last_error());
    unsigned char *dst = g->alloc(n * sizeof(float) + 2 * GUARD), *host = malloc(n * sizeof(float) + 2 * GUARD);
    float *src = malloc(n * sizeof(float)), *want = malloc(n * sizeof(float));
    const void *slot[8];
    for (int k = 0; k < 8; k++) {
        size_t len = k == 5 ? 1 : n; /* a short put too */
        sqt_fill_uniform(src, n, -1, 1, 100 + k);
        memcpy(want, src, n * sizeof(float));
        memset(host, SENTINEL, n * sizeof(float) + 2 * GUARD);
        g->copy_h2d(dst, host, n * sizeof(float) + 2 * GUARD);
        slot[k] = g->stage_put(st, src, len * sizeof(float));
        cr_assert(slot[k]);
        sqt_fill_uniform(src, n, 5, 6, 999); /* the host buffer is the caller's again at once */
        g->copy_d2d(dst + GUARD, slot[k], len * sizeof(float));
        gpu_ok(g);
        g->copy_d2h(host, dst, n * sizeof(float) + 2 * GUARD);
        size_t bad = sqt_check_equal("staged batch", (const float *)(host + GUARD), want, len);
        cr_expect_eq(bad, 0, "put %d: %zu of %zu floats differ", k, bad, len);
        size_t guard_bad = 0;
        for (size_t i = 0; i < GUARD; i++) guard_bad += host[i] != SENTINEL;
        for (size_t i = GUARD + len * sizeof(float); i < n * sizeof(float) + 2 * GUARD; i++)
            guard_bad += host[i] != SENTINEL;
        cr_expect_eq(guard_bad, 0, "put %d: %zu bytes written outside the copy", k, guard_bad);
    }
    cr_expect_neq(slot[0], slot[1], "the two slots are one buffer");
    for (int k = 2; k < 8; k++) cr_expect_eq(slot[k], slot[k - 2], "put %d does not reuse slot %d", k, k % 2);
    g->stage_free(st);
    g->free(dst);
    gpu_ok(g);
    free(host); free(src); free(want);
}

/* resnet20 on 3x8x8, full precision, weights from seed */
static sq_model *small_model(const sq_backend *be, int batch, int with_grad, uint64_t seed)
{
    sq_model *m = NULL;
    cr_assert_eq(sq_model_create("resnet20", 3, 8, 8, 10, &m), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_model_setup(m, be, batch, with_grad), SQ_OK, "%s", sq_last_error());
    sq_model_init_weights(m, seed);
    return m;
}

static float *params_host(const sq_model *m)
{
    float *h = malloc(m->n_train * sizeof(float));
    m->be->copy_d2h(h, m->p, m->n_train * sizeof(float));
    return h;
}

/* three SQAKD steps (KL against the teacher) and three CE steps, through stages or not */
static void run_steps(const sq_backend *g, int staged, sq_loss_kind loss, float **params, float *loss_sum)
{
    const int N = 6, steps = 3;
    sq_model *t = small_model(g, N, 0, 1), *s = small_model(g, N, 1, 2);
    sq_step_bufs *b = sq_step_bufs_create(s, staged);
    cr_assert(b, "%s", sq_last_error());
    sq_train_cfg cfg;
    sq_train_cfg_defaults(&cfg);
    cfg.loss = loss;
    cfg.opt = SQ_OPT_ADAM;
    cfg.batch = N;
    size_t nx = (size_t)N * 3 * 8 * 8;
    float *x = malloc(nx * sizeof(float));
    int32_t y[6];
    g->memset0(sq_step_bufs_loss_sum(b), sizeof(float));
    for (int k = 0; k < steps; k++) {
        sqt_fill_uniform(x, nx, -2, 2, 50 + k); /* one host buffer for every batch */
        for (int i = 0; i < N; i++) y[i] = (i * 7 + k) % 10;
        sq_train_step(&cfg, s, t, b, x, y, N, 1e-3f, 1e-5f, k + 1);
    }
    gpu_ok(g);
    *params = params_host(s);
    g->copy_d2h(loss_sum, sq_step_bufs_loss_sum(b), sizeof(float));
    free(x);
    sq_step_bufs_free(s, b);
    sq_model_free(s);
    sq_model_free(t);
}

static void staged_equals_synchronous(sq_loss_kind loss)
{
    const sq_backend *g = gpu_or_skip();
    cr_assert(g->stage_new, "the CUDA backend has no input stage");
    float *p_sync, *p_staged, l_sync, l_staged;
    run_steps(g, 0, loss, &p_sync, &l_sync);
    run_steps(g, 1, loss, &p_staged, &l_staged);
    sq_model *probe = small_model(g, 1, 0, 1);
    size_t n = probe->n_train;
    sq_model_free(probe);
    /* the same kernels on the same inputs in the same order: only the route of the batch differs */
    cr_expect_eq(sqt_check_equal("staged params", p_staged, p_sync, n), 0,
                 "student parameters after 3 staged steps differ from 3 synchronous steps");
    cr_expect_eq(l_staged, l_sync, "loss sum: staged %.9g, synchronous %.9g", l_staged, l_sync);
    cr_expect(l_sync > 0, "loss sum %.9g: the steps did not run", l_sync);
    free(p_sync);
    free(p_staged);
}

Test(cuda_stage, staged_kl_steps_equal_synchronous_steps) { staged_equals_synchronous(SQ_LOSS_KL); }

Test(cuda_stage, staged_ce_steps_equal_synchronous_steps) { staged_equals_synchronous(SQ_LOSS_CE); }

Test(cuda_stage, absurd_batch_is_out_of_memory_naming_the_batch)
{
    const sq_backend *g = gpu_or_skip();
    cr_assert(g->mem_info, "the CUDA backend has no memory report");
    size_t fr = 0, tot = 0;
    cr_assert_eq(g->mem_info(&fr, &tot), 0);
    cr_expect(tot > 0 && fr <= tot, "mem_info: free %zu of %zu", fr, tot);
    sq_model *m = NULL;
    cr_assert_eq(sq_model_create("resnet20", 3, 32, 32, 10, &m), SQ_OK, "%s", sq_last_error());
    /* resnet20 plans ~2.7 MB of activations and as much of gradients per 32x32 sample: about
       350 GB at batch 65536, more than any single GPU holds */
    sq_status st = sq_model_setup(m, g, 65536, 1);
    cr_expect_eq(st, SQ_ENOMEM, "setup at batch 65536 returned %d: %s", (int)st, sq_last_error());
    const char *msg = sq_last_error();
    cr_expect(strstr(msg, "out of GPU memory allocating ") == msg, "message: %s", msg);
    cr_expect(strstr(msg, "for resnet20 at batch 65536 (free ") != NULL, "message lacks the batch: %s", msg);
    cr_expect(strstr(msg, "GiB): lower --batch") != NULL, "message lacks the advice: %s", msg);
    cr_expect(strchr(msg, '\n') == NULL, "message is not one line: %s", msg);
    cr_expect(m->p == NULL && m->act_arena == NULL && m->grad_arena == NULL && m->ws == NULL,
              "a failed setup kept device buffers");
    sq_model_free(m);
    /* the device is still usable and no failure was recorded */
    float *d = g->alloc(1024);
    cr_assert(d, "alloc after the failed setup: %s", sq_last_error());
    g->fill(256, 1.0f, d);
    float h[256];
    g->copy_d2h(h, d, sizeof h);
    g->free(d);
    gpu_ok(g);
    cr_expect_eq(h[255], 1.0f);
}

/* ---- the loader's pinned batches, uploaded where they lie ---- */

/* the CUDA backend with its staging members wrapped: counts the copying puts and the pinned ones,
   checks that every pinned put's source lies in memory host_alloc handed out */
enum { MAX_PINNED = 64 };
static const sq_backend *g_real;
static int g_copy_puts, g_pinned_puts, g_foreign_puts, g_npinned;
static struct { const char *p; size_t bytes; } g_pinned[MAX_PINNED];

static const void *w_stage_put(void *st, const void *src, size_t bytes)
{
    g_copy_puts++;
    return g_real->stage_put(st, src, bytes);
}
static const void *w_stage_put_pinned(void *st, const void *src, size_t bytes)
{
    int in = 0;
    for (int i = 0; i < g_npinned && !in; i++)
        in = (const char *)src >= g_pinned[i].p && (const char *)src + bytes <= g_pinned[i].p + g_pinned[i].bytes;
    g_pinned_puts++;
    g_foreign_puts += !in;
    return g_real->stage_put_pinned(st, src, bytes);
}
static void *w_host_alloc(size_t bytes)
{
    void *p = g_real->host_alloc(bytes);
    if (p && g_npinned < MAX_PINNED) {
        g_pinned[g_npinned].p = p;
        g_pinned[g_npinned++].bytes = bytes;
    }
    return p;
}

static sq_backend wrapped(const sq_backend *g, int pinned)
{
    sq_backend w = *g;
    g_real = g;
    g_copy_puts = g_pinned_puts = g_foreign_puts = g_npinned = 0;
    w.stage_put = w_stage_put;
    w.stage_put_pinned = pinned ? w_stage_put_pinned : NULL;
    w.host_alloc = pinned ? w_host_alloc : NULL;
    w.host_free = pinned ? g->host_free : NULL;
    return w;
}

/* two epochs of smallcnn on 96 tiny images (CE: images and labels staged), evaluated each epoch;
   the final weights into *params */
static void train_tiny(const sq_backend *be, const char *out, float **params, size_t *np)
{
    sq_dataset ds;
    sqt_tiny_dataset(&ds, 96);
    sq_model *m = NULL;
    cr_assert_eq(sq_model_create("smallcnn", 1, 8, 8, 3, &m), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_model_setup(m, be, 16, 1), SQ_OK, "%s", sq_last_error());
    sq_model_init_weights(m, 4);
    sq_train_cfg cfg;
    sq_train_cfg_defaults(&cfg);
    cfg.epochs = 2;
    cfg.batch = 16;
    cfg.lr = 0.05f;
    cfg.quiet = 1;
    cfg.out_dir = out;
    cfg.flip = 1;
    cfg.crop_pad = 1;
    sq_train_io io;
    memset(&io, 0, sizeof io);
    io.train = &ds;
    io.test = &ds;
    io.model = m;
    snprintf(io.meta.arch, sizeof io.meta.arch, "smallcnn");
    io.meta.in_c = 1; io.meta.in_h = 8; io.meta.in_w = 8; io.meta.classes = 3;
    for (int i = 0; i < 4; i++) io.meta.std[i] = 1;
    cr_assert_eq(sq_train_run(&cfg, &io), SQ_OK, "%s", sq_last_error());
    gpu_ok(be);
    *np = m->n_train;
    *params = params_host(m);
    sq_model_free(m);
    sq_dataset_free(&ds);
}

Test(cuda_stage, driver_uploads_the_loaders_pinned_batches_without_a_host_copy)
{
    const sq_backend *g = gpu_or_skip();
    cr_assert(g->options()->stage, "staging is off in the test configuration");
    char dir[256], a[300], b[300];
    cr_assert_not_null(sqt_mkdtemp(dir, sizeof dir, "sqakd_stage"));
    snprintf(a, sizeof a, "%s/direct", dir);
    snprintf(b, sizeof b, "%s/copied", dir);
    cr_assert_eq(mkdir(a, 0755), 0);
    cr_assert_eq(mkdir(b, 0755), 0);
    float *p_direct, *p_copied;
    size_t n, n2;
    sq_backend w = wrapped(g, 1);
    train_tiny(&w, a, &p_direct, &n);
    /* 2 epochs x 6 steps (images and labels) and 2 evaluations x 6 batches (images) */
    const int direct_puts = g_pinned_puts, direct_copies = g_copy_puts, foreign = g_foreign_puts;
    w = wrapped(g, 0); /* a backend without pinned host memory: the copying route */
    train_tiny(&w, b, &p_copied, &n2);
    const int copied_puts = g_copy_puts;
    cr_expect_eq(direct_copies, 0, "%d batches were copied into the stage's pinned slots on the host",
                 direct_copies);
    cr_expect_eq(direct_puts, 2 * 6 * 2 + 2 * 6, "%d uploads from the loader's slots", direct_puts);
    cr_expect_eq(foreign, 0, "%d uploads read memory that host_alloc did not hand out", foreign);
    cr_expect_eq(copied_puts, direct_puts, "the copying route made %d puts", copied_puts);
    cr_assert_eq(n, n2);
    cr_expect_eq(sqt_check_equal("direct params", p_direct, p_copied, n), 0,
                 "weights after training from pinned batches differ from the copying route");
    free(p_direct);
    free(p_copied);
    cr_expect_eq(sqt_rmtree(dir), 0);
}

/* many batches through a direct feeder whose loader holds only SQ_FEEDER_KEEP + 1 slots, with no
   host synchronisation until the end: each batch's device copy must equal the batch a plain
   loader prepares. A slot that the loader refilled while its upload could still read it gives
   wrong batches on a GPU, and aborts under cuemu (which checks pinned sources in flight). */
Test(cuda_stage, direct_feeder_delivers_every_batch_of_a_long_run)
{
    const sq_backend *g = gpu_or_skip();
    enum { N = 203, B = 5, EPOCHS = 2 };
    const int nb = (N + B - 1) / B, total = EPOCHS * nb;
    sq_dataset ds;
    sqt_tiny_dataset(&ds, N);
    sq_model *m = NULL;
    cr_assert_eq(sq_model_create("smallcnn", 1, 8, 8, 3, &m), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_model_setup(m, g, B, 0), SQ_OK, "%s", sq_last_error());
    sq_loader_opts lo = {.batch = B, .shuffle = 1, .crop_pad = 2, .flip = 1, .seed = 11};
    sq_feeder *f = NULL;
    sq_loader *l = NULL, *ref = NULL;
    cr_assert_eq(sq_feeder_open(m, B, 1, &ds, &lo, &f, &l), SQ_OK, "%s", sq_last_error());
    cr_assert(f->direct, "the feeder copies: no pinned loader slots on the CUDA backend");
    cr_assert_eq(sq_loader_create(&ds, &lo, &ref), SQ_OK, "%s", sq_last_error());
    const size_t nx = (size_t)B * 64;
    float *dx = g->alloc((size_t)total * nx * sizeof(float)), *want = calloc((size_t)total * nx, sizeof(float));
    int32_t *dy = g->alloc((size_t)total * B * sizeof(int32_t)), *want_y = calloc((size_t)total * B, sizeof(int32_t));
    cr_assert(dx && dy && want && want_y);
    g->memset0(dx, (size_t)total * nx * sizeof(float));
    g->memset0(dy, (size_t)total * B * sizeof(int32_t));
    int k = 0;
    for (int ep = 0; ep < EPOCHS; ep++) {
        sq_loader_start_epoch(l, ep);
        sq_loader_start_epoch(ref, ep);
        const float *x, *rx;
        const int32_t *y, *ry;
        int n;
        while ((n = sq_loader_next(l, &x, &y)) > 0) {
            cr_assert_eq(sq_loader_next(ref, &rx, &ry), n);
            memcpy(want + (size_t)k * nx, rx, (size_t)n * 64 * sizeof(float));
            memcpy(want_y + (size_t)k * B, ry, (size_t)n * sizeof(int32_t));
            sq_feeder_put(f, x, y, n);
            /* the compute stream's copy of the fixed input buffer, as a step would read it */
            g->copy_d2d(dx + (size_t)k * nx, f->x, (size_t)n * 64 * sizeof(float));
            g->copy_d2d(dy + (size_t)k * B, f->y, (size_t)n * sizeof(int32_t));
            k++;
        }
    }
    cr_assert_eq(k, total);
    sq_feeder_free(f); /* waits for the uploads, then frees the loader */
    float *got = malloc((size_t)total * nx * sizeof(float));
    int32_t *got_y = malloc((size_t)total * B * sizeof(int32_t));
    g->copy_d2h(got, dx, (size_t)total * nx * sizeof(float));
    g->copy_d2h(got_y, dy, (size_t)total * B * sizeof(int32_t));
    gpu_ok(g);
    for (int j = 0; j < total; j++) {
        cr_expect_eq(memcmp(got + (size_t)j * nx, want + (size_t)j * nx, nx * sizeof(float)), 0,
                     "batch %d of %d differs from the loader's", j, total);
        cr_expect_eq(memcmp(got_y + (size_t)j * B, want_y + (size_t)j * B, B * sizeof(int32_t)), 0,
                     "labels of batch %d of %d differ", j, total);
    }
    g->free(dx);
    g->free(dy);
    free(got); free(got_y); free(want); free(want_y);
    sq_loader_free(ref);
    sq_model_free(m);
    sq_dataset_free(&ds);
}
