/* dist.c: the CUDA backend's data-parallel members (backend.h, dist_attach and allreduce_sum).
   With NCCL (SQ_HAVE_NCCL: CUDA's own, Debian's libnccl-dev or PyPI's nvidia-nccl-cu12, found by
   the Makefile) the gradient all-reduce runs on device memory, on the compute stream, in order
   with the ops around it; NCCL's ring all-reduce ends in an all-gather, so every rank holds the
   same bits. The NCCL communicator is made once per attach: rank 0's unique id reaches the others
   over the host comm (MPI). Without NCCL, the all-reduce stages through host memory and the host
   comm (correct, slow: for builds where NCCL is absent). With sync_bn, bn.cu reduces its
   per-channel totals (sum and sum of squares; backward: sum g, sum g xhat) over the ranks through
   sq_cuda_allreduce_f64 before it applies them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuda_ops.h"
#include "context.h"
#ifdef SQ_HAVE_NCCL
#include <nccl.h>
#endif

static const sq_comm *g_comm;
static float *g_host;      /* the staging buffer of the host route */
static size_t g_host_n;
static double *g_hostd;    /* the same for doubles (BN totals: at most SQ_CUDA_PARTIAL_DOUBLES) */
static double *g_tot;      /* device: the BN totals of one synchronised BN (sync_bn) */
static int g_sync_bn;
#ifdef SQ_HAVE_NCCL
static ncclComm_t g_nccl;
static int g_have_nccl;
#endif

static void detach(void)
{
#ifdef SQ_HAVE_NCCL
    if (g_have_nccl) {
        cudaStreamSynchronize(sq_cuda_stream());
        ncclCommDestroy(g_nccl);
        g_have_nccl = 0;
    }
#endif
    free(g_host);
    g_host = NULL;
    g_host_n = 0;
    free(g_hostd);
    g_hostd = NULL;
    if (g_tot) {
        cudaStreamSynchronize(sq_cuda_stream());
        cudaFree(g_tot);
        g_tot = NULL;
    }
    g_sync_bn = 0;
    g_comm = NULL;
}

sq_status sq_cuda_dist_attach(const sq_comm *comm, int sync_bn)
{
    detach();
    if (!comm) return SQ_OK;
    /* a comm of one rank is attached too (NCCL with one rank: what a one-GPU machine can test) */
    if (sync_bn && comm->size > 1) {
        /* allocated now: a recorded step (CUDA graph) must not allocate */
        cudaError_t e = cudaMalloc((void **)&g_tot, SQ_CUDA_PARTIAL_DOUBLES * sizeof(double));
        if (e != cudaSuccess) {
            g_tot = NULL;
            sq_set_error("--sync-bn: %zu bytes of GPU memory for BatchNorm's totals: %s",
                         SQ_CUDA_PARTIAL_DOUBLES * sizeof(double), cudaGetErrorString(e));
            return SQ_ENOMEM;
        }
        g_hostd = sq_xmalloc(SQ_CUDA_PARTIAL_DOUBLES * sizeof(double));
        g_sync_bn = 1;
    }
#ifdef SQ_HAVE_NCCL
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    ncclResult_t r = comm->rank == 0 ? ncclGetUniqueId(&id) : ncclSuccess;
    int ok = r == ncclSuccess;
    /* every rank takes part in the broadcast, so that a failure on rank 0 does not leave the others
       waiting: they see an all-zero id and fail too */
    comm->bcast(comm, &id, sizeof id, 0);
    static const ncclUniqueId zero;
    if (ok && !memcmp(&id, &zero, sizeof id)) ok = 0;
    if (ok) r = ncclCommInitRank(&g_nccl, comm->size, id, comm->rank);
    if (!ok || r != ncclSuccess) {
        sq_set_error("NCCL could not set up the %d ranks (rank %d): %s", comm->size, comm->rank,
                     r != ncclSuccess ? ncclGetErrorString(r) : "no unique id from rank 0");
        return SQ_EDEVICE;
    }
    g_have_nccl = 1;
#endif
    g_comm = comm;
    return SQ_OK;
}

void sq_cuda_allreduce_sum(float *buf, size_t n)
{
    if (!g_comm || !n) return;
#ifdef SQ_HAVE_NCCL
    ncclResult_t r = ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, g_nccl, sq_cuda_stream());
    if (r != ncclSuccess)
        sq_cuda_fail(SQ_EDEVICE, "NCCL", (int)r, ncclGetErrorString(r), "ncclAllReduce", __FILE__, __LINE__);
#else
    if (n > g_host_n) {
        free(g_host);
        g_host = sq_xmalloc(n * sizeof(float));
        g_host_n = n;
    }
    CUDA_CHECK(cudaMemcpyAsync(g_host, buf, n * sizeof(float), cudaMemcpyDeviceToHost, sq_cuda_stream()));
    CUDA_CHECK(cudaStreamSynchronize(sq_cuda_stream()));
    g_comm->allreduce_f32(g_comm, g_host, n);
    CUDA_CHECK(cudaMemcpyAsync(buf, g_host, n * sizeof(float), cudaMemcpyHostToDevice, sq_cuda_stream()));
    CUDA_CHECK(cudaStreamSynchronize(sq_cuda_stream()));
#endif
}

int sq_cuda_bn_sync_world(void) { return g_sync_bn ? g_comm->size : 0; }

double *sq_cuda_bn_sync_totals(void) { return g_tot; }

void sq_cuda_allreduce_f64(double *buf, size_t n)
{
    if (!g_comm || !n) return;
#ifdef SQ_HAVE_NCCL
    ncclResult_t r = ncclAllReduce(buf, buf, n, ncclDouble, ncclSum, g_nccl, sq_cuda_stream());
    if (r != ncclSuccess)
        sq_cuda_fail(SQ_EDEVICE, "NCCL", (int)r, ncclGetErrorString(r), "ncclAllReduce", __FILE__, __LINE__);
#else
    if (n > SQ_CUDA_PARTIAL_DOUBLES) sq_cuda_bug("BN totals larger than their buffer", __FILE__, __LINE__);
    CUDA_CHECK(cudaMemcpyAsync(g_hostd, buf, n * sizeof(double), cudaMemcpyDeviceToHost, sq_cuda_stream()));
    CUDA_CHECK(cudaStreamSynchronize(sq_cuda_stream()));
    g_comm->allreduce_f64(g_comm, g_hostd, n);
    CUDA_CHECK(cudaMemcpyAsync(buf, g_hostd, n * sizeof(double), cudaMemcpyHostToDevice, sq_cuda_stream()));
    CUDA_CHECK(cudaStreamSynchronize(sq_cuda_stream()));
#endif
}

const char *sq_cuda_dist_build(void)
{
#ifdef SQ_HAVE_NCCL
    static char s[32];
    snprintf(s, sizeof s, "NCCL %d.%d.%d", NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH);
    return s;
#else
    return "no NCCL";
#endif
}
