/* test_cuda_stage.c: Criterion suite "cuda_stage": the CUDA backend's asynchronous input staging
   (pinned double buffer, copy stream, events) and its out-of-memory report. A stage delivers
   exactly the bytes put, even when the host buffer is overwritten right after the put and the
   two slots are reused many times; training steps fed through the stages equal steps fed by
   synchronous copies; an absurd batch fails with SQ_ENOMEM and one message naming the batch,
   leaving the device usable. Without a GPU every test SKIPS. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sqakd/train.h"
#include "train/train_internal.h"
#include "util_check.h"
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
