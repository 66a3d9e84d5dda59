/* dist.c: the CUDA backend's data-parallel members (backend.h, dist_attach, allreduce_start and
   allreduce_wait). With NCCL (SQ_HAVE_NCCL: CUDA's own, Debian's libnccl-dev or PyPI's
   nvidia-nccl-cu12, found by the Makefile) the gradient all-reduces run on device memory on a
   stream of their own, the comm stream: allreduce_start makes it wait (an event) for the compute
   stream's work so far and queues the NCCL all-reduce there, so the backward goes on while the
   late layers' buckets are summed; allreduce_wait makes the compute stream wait for the comm
   stream. Every NCCL call goes to that one stream, in the host's order (the same on every rank),
   so the collectives of one communicator never overtake each other. NCCL's ring all-reduce ends
   in an all-gather, so every rank holds the same bits. The NCCL communicator is made once per
   attach: rank 0's unique id reaches the others over the host comm (MPI).

   A rank that dies or hangs leaves NCCL's kernels on the others spinning forever, and the host
   blocked in its next synchronisation. A watchdog thread follows every wait: an event recorded
   on the comm stream after each, polled with cudaEventQuery; one that has not completed within
   the comm's timeout (--dist-timeout), or an asynchronous NCCL error (ncclCommGetAsyncError: a
   peer's socket closed), ends the job with one message through the comm's abort (MPI_Abort:
   every rank stops), or where there is none by aborting the communicator (ncclCommAbort) and
   exiting.

   Without NCCL, the all-reduce stages through host memory and the host comm, whole within
   allreduce_start (correct, slow: for builds where NCCL is absent; the host comm has its own
   timeout). With sync_bn, bn.cu reduces its per-channel totals (sum and sum of squares;
   backward: sum g, sum g xhat) over the ranks through sq_cuda_allreduce_f64 before it applies
   them: with NCCL on the comm stream too, behind the buckets already started. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuda_ops.h"
#include "context.h"
#ifdef SQ_HAVE_NCCL
#include <nccl.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
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
static cudaStream_t g_cs;           /* the comm stream */
static cudaEvent_t g_ready, g_done; /* compute -> comm, comm -> compute */
static int g_started;               /* all-reduces queued on the comm stream since the last wait */

/* ---- the watchdog: a ring of events recorded on the comm stream after each wait ---- */
#define WD_RING 64
static struct {
    pthread_t th;
    pthread_mutex_t mu;
    int running, stop, device;
    double timeout;
    cudaEvent_t ev[WD_RING];
    double t[WD_RING];
    int head, count; /* the oldest pending mark, and how many */
} g_wd = {.mu = PTHREAD_MUTEX_INITIALIZER};

static double wd_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* says why and ends the job; never returns */
static void wd_fire(const char *why)
{
    fprintf(stderr, "sqakd: rank %d of %d: %s (a rank died or hangs); stopping the whole job (--dist-timeout sets "
            "the limit)\n", g_comm->rank, g_comm->size, why);
    fflush(stderr);
    if (g_comm->abort) g_comm->abort(g_comm, 3);
    ncclCommAbort(g_nccl); /* the kernels waiting for the lost rank return */
    _exit(3);
}

static void *wd_main(void *arg)
{
    (void)arg;
    cudaSetDevice(g_wd.device);
    for (;;) {
        char why[160] = "";
        pthread_mutex_lock(&g_wd.mu);
        if (g_wd.stop) {
            pthread_mutex_unlock(&g_wd.mu);
            return NULL;
        }
        while (g_wd.count && cudaEventQuery(g_wd.ev[g_wd.head]) == cudaSuccess) {
            g_wd.head = (g_wd.head + 1) % WD_RING;
            g_wd.count--;
        }
        if (g_wd.count && wd_now() - g_wd.t[g_wd.head] > g_wd.timeout)
            snprintf(why, sizeof why, "an NCCL all-reduce has not completed in %g s", g_wd.timeout);
        pthread_mutex_unlock(&g_wd.mu);
        ncclResult_t ar = ncclSuccess;
        if (!why[0] && ncclCommGetAsyncError(g_nccl, &ar) == ncclSuccess && ar != ncclSuccess && ar != ncclInProgress)
            snprintf(why, sizeof why, "NCCL reports an asynchronous error: %s", ncclGetErrorString(ar));
        if (why[0]) wd_fire(why);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* a mark behind everything queued on the comm stream so far (none while the ring is full: the
   older marks still guard it) */
static void wd_mark(void)
{
    if (!g_wd.running) return;
    pthread_mutex_lock(&g_wd.mu);
    if (g_wd.count < WD_RING) {
        const int k = (g_wd.head + g_wd.count) % WD_RING;
        if (cudaEventRecord(g_wd.ev[k], g_cs) == cudaSuccess) {
            g_wd.t[k] = wd_now();
            g_wd.count++;
        }
    }
    pthread_mutex_unlock(&g_wd.mu);
}

static void wd_stop(void)
{
    if (!g_wd.running) return;
    pthread_mutex_lock(&g_wd.mu);
    g_wd.stop = 1;
    pthread_mutex_unlock(&g_wd.mu);
    pthread_join(g_wd.th, NULL);
    for (int i = 0; i < WD_RING; i++) cudaEventDestroy(g_wd.ev[i]);
    g_wd.running = g_wd.stop = 0;
    g_wd.head = g_wd.count = 0;
}

static sq_status wd_start(double timeout)
{
    g_wd.timeout = timeout > 0 ? timeout : 600;
    g_wd.head = g_wd.count = 0;
    g_wd.stop = 0;
    if (cudaGetDevice(&g_wd.device) != cudaSuccess) return SQ_EDEVICE;
    for (int i = 0; i < WD_RING; i++)
        if (cudaEventCreateWithFlags(&g_wd.ev[i], cudaEventDisableTiming) != cudaSuccess) {
            while (i--) cudaEventDestroy(g_wd.ev[i]);
            return SQ_EDEVICE;
        }
    if (pthread_create(&g_wd.th, NULL, wd_main, NULL)) {
        for (int i = 0; i < WD_RING; i++) cudaEventDestroy(g_wd.ev[i]);
        return SQ_EDEVICE;
    }
    g_wd.running = 1;
    return SQ_OK;
}

/* queues the NCCL all-reduce of buf on the comm stream, after the compute stream's work so far */
static void comm_allreduce(void *buf, size_t n, ncclDataType_t t)
{
    CUDA_CHECK(cudaEventRecord(g_ready, sq_cuda_stream()));
    CUDA_CHECK(cudaStreamWaitEvent(g_cs, g_ready, 0));
    ncclResult_t r = ncclAllReduce(buf, buf, n, t, ncclSum, g_nccl, g_cs);
    if (r != ncclSuccess)
        sq_cuda_fail(SQ_EDEVICE, "NCCL", (int)r, ncclGetErrorString(r), "ncclAllReduce", __FILE__, __LINE__);
    g_started = 1;
}

/* the compute stream waits for everything queued on the comm stream */
static void comm_join(void)
{
    if (!g_started) return;
    CUDA_CHECK(cudaEventRecord(g_done, g_cs));
    CUDA_CHECK(cudaStreamWaitEvent(sq_cuda_stream(), g_done, 0));
    wd_mark();
    g_started = 0;
}
#endif

static void detach(void)
{
#ifdef SQ_HAVE_NCCL
    if (g_have_nccl) {
        cudaStreamSynchronize(sq_cuda_stream());
        cudaStreamSynchronize(g_cs);
        wd_stop();
        ncclCommDestroy(g_nccl);
        cudaEventDestroy(g_ready);
        cudaEventDestroy(g_done);
        cudaStreamDestroy(g_cs);
        g_have_nccl = 0;
        g_started = 0;
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
    /* the comm stream: non-blocking towards the legacy stream, at the highest priority so that a
       bucket's kernels get SMs while the backward's fill the device */
    int lo = 0, hi = 0;
    cudaDeviceGetStreamPriorityRange(&lo, &hi);
    int made = 0;
    cudaError_t e = cudaStreamCreateWithPriority(&g_cs, cudaStreamNonBlocking, hi);
    if (e == cudaSuccess && ++made && (e = cudaEventCreateWithFlags(&g_ready, cudaEventDisableTiming)) == cudaSuccess &&
        ++made)
        e = cudaEventCreateWithFlags(&g_done, cudaEventDisableTiming);
    if (e != cudaSuccess) {
        if (made == 2) cudaEventDestroy(g_ready);
        if (made >= 1) cudaStreamDestroy(g_cs);
        ncclCommDestroy(g_nccl);
        sq_set_error("NCCL: the stream of the all-reduce: %s", cudaGetErrorString(e));
        return SQ_EDEVICE;
    }
    g_have_nccl = 1;
    g_comm = comm;
    if (comm->size > 1 && wd_start(comm->timeout_s)) {
        detach();
        sq_set_error("NCCL: could not start the watchdog thread that ends a run whose ranks stop answering");
        return SQ_EDEVICE;
    }
#else
    g_comm = comm;
#endif
    return SQ_OK;
}

void sq_cuda_allreduce_start(float *buf, size_t n)
{
    if (!g_comm || !n) return;
#ifdef SQ_HAVE_NCCL
    comm_allreduce(buf, n, ncclFloat);
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
#endif
}

void sq_cuda_allreduce_wait(void)
{
#ifdef SQ_HAVE_NCCL
    if (g_comm) comm_join();
#endif
}

int sq_cuda_bn_sync_world(void) { return g_sync_bn ? g_comm->size : 0; }

double *sq_cuda_bn_sync_totals(void) { return g_tot; }

void sq_cuda_allreduce_f64(double *buf, size_t n)
{
    if (!g_comm || !n) return;
#ifdef SQ_HAVE_NCCL
    comm_allreduce(buf, n, ncclDouble);
    comm_join();
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
