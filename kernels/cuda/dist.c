/* dist.c: the CUDA backend's data-parallel members (backend.h, dist_attach and allreduce_sum).
   With NCCL (SQ_HAVE_NCCL: CUDA's own, Debian's libnccl-dev or PyPI's nvidia-nccl-cu12, found by
   the Makefile) the gradient all-reduce runs on device memory, on the compute stream, in order
   with the ops around it; NCCL's ring all-reduce ends in an all-gather, so every rank holds the
   same bits. The NCCL communicator is made once per attach: rank 0's unique id reaches the others
   over the host comm (MPI). Without NCCL, the all-reduce stages through host memory and the host
   comm (correct, slow: for builds where NCCL is absent). BatchNorm over all ranks (sync_bn) is
   not implemented on this backend: attaching with it is refused with a message. */
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
    g_comm = NULL;
}

sq_status sq_cuda_dist_attach(const sq_comm *comm, int sync_bn)
{
    detach();
    if (!comm) return SQ_OK;
    /* a comm of one rank is attached too (NCCL with one rank: what a one-GPU machine can test) */
    if (sync_bn && comm->size > 1) {
        sq_set_error("--sync-bn is not implemented on the CUDA backend yet (docs/scaling.md): run without it (each "
                     "rank normalises with its own part of the batch) or use --device cpu");
        return SQ_EARG;
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
