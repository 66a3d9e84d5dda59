/* test_cuda_dist.c: Criterion suite "cuda_dist": the CUDA backend's data-parallel members with one
   rank, which is what one GPU can run: attached to a comm of one rank, allreduce_sum goes through
   NCCL (a build with NCCL) or through host memory and the comm (without), is ordered with the ops
   before and after it on the compute stream, and leaves the sum over one rank, the buffer itself;
   --sync-bn with several ranks is refused with a message, with one it is accepted. The 2-rank
   runs are the CPU backend's, under mpirun (tests/test_dist.c). Without a GPU every test SKIPS. */
#include <criterion/criterion.h>
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
    cr_assert(g->dist_attach && g->allreduce_sum, "the CUDA backend has no data-parallel members");
    static const sq_comm one = {.rank = 0, .size = 1, .local_rank = 0, .local_size = 1, .allreduce_f32 = one_f32,
                                .allreduce_f64 = one_f64, .bcast = one_bcast};
    cr_assert_eq(g->dist_attach(&one, 0), SQ_OK, "%s", sq_last_error());
    const size_t n = (1u << 20) + 3; /* 4 MiB and an odd tail */
    float *h = sqt_hrand(n, -1, 1, 7);
    float *d = g->alloc(n * sizeof(float));
    g->copy_h2d(d, h, n * sizeof(float));
    /* the all-reduce must see the doubling before it, and the halving after it must see its
       result: any other order leaves h / 2 or 2 h (powers of two: exact either way) */
    g->scale(n, 2.0f, d);
    g->allreduce_sum(d, n);
    g->scale(n, 0.5f, d);
    float *got = sqt_fetch(g, d, n, "all-reduced");
    sqt_expect_equal("the sum over one rank", got, h, n);
    sqt_gpu_ok(g);
    cr_assert_eq(g->dist_attach(NULL, 0), SQ_OK);
    free(h);
    free(got);
    g->free(d);
}

Test(cuda_dist, sync_bn_over_several_ranks_is_refused_with_a_message)
{
    const sq_backend *g = gpu_or_skip();
    static const sq_comm two = {.rank = 0, .size = 2, .local_rank = 0, .local_size = 2, .allreduce_f32 = one_f32,
                                .allreduce_f64 = one_f64, .bcast = one_bcast};
    cr_expect_eq(g->dist_attach(&two, 1), SQ_EARG);
    cr_expect(strstr(sq_last_error(), "--sync-bn is not implemented on the CUDA backend") != NULL, "%s",
              sq_last_error());
    static const sq_comm one = {.rank = 0, .size = 1, .allreduce_f32 = one_f32, .allreduce_f64 = one_f64,
                                .bcast = one_bcast};
    cr_expect_eq(g->dist_attach(&one, 1), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(g->dist_attach(NULL, 0), SQ_OK);
}
