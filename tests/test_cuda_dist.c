/* test_cuda_dist.c: Criterion suite "cuda_dist": the CUDA backend's data-parallel members with one
   rank, which is what one GPU can run: attached to a comm of one rank, allreduce_start goes through
   NCCL on the comm stream (a build with NCCL) or through host memory and the comm (without), sees
   the ops before it, and after allreduce_wait the ops after it see its result, the sum over one
   rank: the buffer itself, for several buckets started before one wait;
   BatchNorm synchronised over two ranks that hold the same images equals BN over one (through
   host memory: a build with NCCL skips it; the old code refused --sync-bn on CUDA). The 2-rank runs are the CPU backend's, under mpirun
   (tests/test_dist.c); under cuemu the CUDA backend's too (docs/scaling.md). Without a GPU every
   test SKIPS. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sqakd/backend.h"
#include "util_fixtures.h"

TestSuite(cuda_dist, .timeout = 120);

static const sq_backend *gpu_or_skip(void)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    return g;
}

static int g_calls;
static void one_f32(const sq_comm *c, float *buf, size_t n) { g_calls++; }
static void one_f64(const sq_comm *c, double *buf, size_t n) { g_calls++; }
static void one_bcast(const sq_comm *c, void *buf, size_t bytes, int root) {}

Test(cuda_dist, one_rank_allreduce_is_ordered_and_leaves_the_buffer)
{
    const sq_backend *g = gpu_or_skip();
    cr_assert(g->dist_attach && g->allreduce_start && g->allreduce_wait, "the CUDA backend has no data-parallel members");
    static const sq_comm one = {.rank = 0, .size = 1, .local_rank = 0, .local_size = 1, .allreduce_f32 = one_f32,
                                .allreduce_f64 = one_f64, .bcast = one_bcast};
    cr_assert_eq(g->dist_attach(&one, 0), SQ_OK, "%s", sq_last_error());
    const size_t n = (1u << 20) + 3; /* 4 MiB and an odd tail */
    float *h = sqt_hrand(n, -1, 1, 7);
    float *d = sqt_dput(g, h, n * sizeof(float)); /* with guard bytes around it */
    /* the all-reduce must see the doubling before it, and the halving after it must see its
       result: any other order leaves h / 2 or 2 h (powers of two: exact either way) */
    g->scale(n, 2.0f, d);
    /* three buckets, top down as the backward hands them over, then one wait */
    const size_t b1 = n / 3, b2 = 2 * (n / 3);
    g->allreduce_start(d + b2, n - b2);
    g->allreduce_start(d + b1, b2 - b1);
    g->allreduce_start(d, b1);
    g->allreduce_wait();
    g->scale(n, 0.5f, d);
    float *got = sqt_fetch(g, d, n, "all-reduced"); /* checks the guards, frees d */
    sqt_expect_equal("the sum over one rank", got, h, n);
    sqt_gpu_ok(g);
    cr_assert_eq(g->dist_attach(NULL, 0), SQ_OK);
    free(h);
    free(got);
}

/* two ranks that hold the same images, played by one process whose comm doubles every sum: BN
   synchronised over them normalises exactly as BN over one rank's images (the global sums are
   twice the local ones, over twice the elements), and its running variance takes the global
   count (2m - 1 instead of m - 1 in the unbiased variance). Through host memory only: NCCL
   would wait for the second rank (a build with NCCL skips this; the CPU backend's 2-rank runs
   are tests/test_dist.c). */
static void twice_f32(const sq_comm *c, float *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) buf[i] *= 2.0f;
}
static void twice_f64(const sq_comm *c, double *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) buf[i] *= 2.0;
}

/* buckets through host memory over two equal ranks (each sum doubles): every bucket started is
   summed once, with the ops before it seen and the ops after the wait seeing it */
Test(cuda_dist, buckets_through_host_memory_are_summed_once_in_order)
{
    const sq_backend *g = gpu_or_skip();
    if (strstr(sq_backend_cuda_build(), "NCCL "))
        cr_skip("this build all-reduces through NCCL, which needs a second GPU rank to sum with");
    static const sq_comm two = {.rank = 0, .size = 2, .local_rank = 0, .local_size = 1, .allreduce_f32 = twice_f32,
                                .allreduce_f64 = twice_f64, .bcast = one_bcast};
    cr_assert_eq(g->dist_attach(&two, 0), SQ_OK, "%s", sq_last_error());
    const size_t n = 100003;
    float *h = sqt_hrand(n, -1, 1, 9);
    float *want = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) want[i] = 2.0f * (h[i] + 1.0f) - 3.0f;
    float *d = sqt_dput(g, h, n * sizeof(float));
    /* + 1 before (seen by the sums), - 3 after the wait (applied to the sums) */
    float *add = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) add[i] = 1.0f;
    float *dadd = sqt_dput(g, add, n * sizeof(float));
    g->axpy(n, 1.0f, dadd, d);
    g->allreduce_start(d + 70000, n - 70000);
    g->allreduce_start(d + 1000, 69000);
    g->allreduce_start(d, 1000);
    g->allreduce_wait();
    g->axpy(n, -3.0f, dadd, d);
    float *got = sqt_fetch(g, d, n, "bucketed sum");
    sqt_expect_equal("2 (x + 1) - 3 in three buckets", got, want, n);
    free(sqt_fetch(g, dadd, n, "ones"));
    sqt_gpu_ok(g);
    cr_assert_eq(g->dist_attach(NULL, 0), SQ_OK);
    free(h);
    free(want);
    free(add);
    free(got);
}

Test(cuda_dist, sync_bn_over_two_equal_ranks_is_bn_over_one)
{
    const sq_backend *g = gpu_or_skip();
    if (strstr(sq_backend_cuda_build(), "NCCL "))
        cr_skip("this build all-reduces through NCCL, which needs a second GPU rank to sum with");
    static const sq_comm two = {.rank = 0, .size = 2, .local_rank = 0, .local_size = 1, .allreduce_f32 = twice_f32,
                                .allreduce_f64 = twice_f64, .bcast = one_bcast};
    const int n = 6, c = 5, hw = 33;
    const size_t nx = (size_t)n * c * hw;
    float *x = sqt_hrand(nx, -1, 3, 11), *gy = sqt_hrand(nx, -1, 1, 12), *r = sqt_hrand(nx, -1, 1, 13);
    float *gamma = sqt_hrand(c, 0.5f, 1.5f, 14), *beta = sqt_hrand(c, -0.5f, 0.5f, 15), ones[5] = {1, 1, 1, 1, 1};
    float *out[2][6];
    for (int sync = 0; sync < 2; sync++) {
        cr_assert_eq(g->dist_attach(sync ? &two : NULL, sync), SQ_OK, "%s", sq_last_error());
        float *dx = sqt_dput(g, x, nx * 4), *dgy = sqt_dput(g, gy, nx * 4), *dr = sqt_dput(g, r, nx * 4);
        float *dg = sqt_dput(g, gamma, c * 4), *db = sqt_dput(g, beta, c * 4);
        float *drm = sqt_dput(g, NULL, c * 4), *drv = sqt_dput(g, ones, c * 4);
        float *dy = sqt_dput(g, NULL, nx * 4), *dgx = sqt_dput(g, NULL, nx * 4), *dgr = sqt_dput(g, NULL, nx * 4);
        float *dsm = sqt_dput(g, NULL, c * 4), *dsi = sqt_dput(g, NULL, c * 4);
        float *dgg = sqt_dput(g, NULL, c * 4), *dgb = sqt_dput(g, NULL, c * 4);
        g->bn_add_act_fwd_train(n, c, hw, SQ_ACT_RELU, dx, dr, dg, db, drm, drv, 0.1f, 1e-5f, dy, dsm, dsi);
        g->bn_add_act_bwd(n, c, hw, SQ_ACT_RELU, dx, dy, dgy, dg, dsm, dsi, dgx, dgr, dgg, dgb);
        sqt_gpu_ok(g);
        out[sync][0] = sqt_fetch(g, dy, nx, "y");
        out[sync][1] = sqt_fetch(g, dgx, nx, "gx");
        out[sync][2] = sqt_fetch(g, dgg, c, "ggamma");
        out[sync][3] = sqt_fetch(g, dgb, c, "gbeta");
        out[sync][4] = sqt_fetch(g, drm, c, "running mean");
        out[sync][5] = sqt_fetch(g, drv, c, "running var");
        float *rest[] = {dx, dgy, dr, dgr, dg, db, dsm, dsi};
        for (size_t k = 0; k < sizeof rest / sizeof rest[0]; k++)
            free(sqt_fetch(g, rest[k], k < 4 ? nx : (size_t)c, "an input or scratch buffer"));
        cr_assert_eq(g->dist_attach(NULL, 0), SQ_OK);
    }
    const char *names[5] = {"y", "gx", "ggamma (this rank's)", "gbeta (this rank's)", "running mean"};
    const size_t len[5] = {nx, nx, (size_t)c, (size_t)c, (size_t)c};
    for (int k = 0; k < 5; k++) sqt_expect_close(names[k], out[1][k], out[0][k], len[k], 1e-6, 1e-5, 11);
    /* running var = 0.9 + 0.1 var m / (m - 1) alone, 0.9 + 0.1 var 2m / (2m - 1) over two ranks */
    const double m = (double)n * hw;
    for (int ch = 0; ch < c; ch++) {
        double v = (out[0][5][ch] - 0.9) / 0.1 * (m - 1) / m;
        double want = 0.9 + 0.1 * v * 2 * m / (2 * m - 1);
        cr_expect(fabs(out[1][5][ch] - want) <= 1e-5 * fabs(want) + 1e-6, "running var[%d]: %g, expected %g", ch,
                  out[1][5][ch], want);
    }
    for (int sync = 0; sync < 2; sync++)
        for (int k = 0; k < 6; k++) free(out[sync][k]);
    free(x); free(gy); free(r); free(gamma); free(beta);
}
