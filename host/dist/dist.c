/* dist.c: the process group of a data-parallel run over MPI (include/sqakd/dist.h). Collectives
   are non-blocking MPI calls polled against a deadline: a rank that died or hangs ends the job
   with one message (MPI_Abort) instead of leaving the others waiting forever. Sums are reduced to
   rank 0 in MPI's fixed order and broadcast, so every rank holds the same bits (MPI_Allreduce may
   round differently on different ranks for more than two). Built without MPI (no mpi.h), every
   entry point says so. */
#include "sqakd/dist.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double g_timeout = SQ_DIST_TIMEOUT_DEFAULT;

void sq_dist_set_timeout(double seconds) { g_timeout = seconds > 0 ? seconds : SQ_DIST_TIMEOUT_DEFAULT; }
double sq_dist_timeout(void) { return g_timeout; }

#ifdef SQ_HAVE_MPI
#include <mpi.h>
#include <sched.h>

static sq_comm g_comm;
static int g_init;

int sq_dist_built(void) { return 1; }

const char *sq_dist_build(void)
{
    static char s[64];
#ifdef OMPI_MAJOR_VERSION
    snprintf(s, sizeof s, "MPI (Open MPI %d.%d.%d)", OMPI_MAJOR_VERSION, OMPI_MINOR_VERSION, OMPI_RELEASE_VERSION);
#else
    snprintf(s, sizeof s, "MPI %d.%d", MPI_VERSION, MPI_SUBVERSION);
#endif
    return s;
}

/* waits for req, polling: spins briefly (a collective of a step usually completes in
   microseconds), then sleeps 0.1 ms between tests so that a waiting rank leaves the CPU to the
   others; past the deadline the job ends */
static void wait_req(MPI_Request *req, const char *what)
{
    double t0 = sq_now();
    for (long it = 0;; it++) {
        int done = 0;
        MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (done) return;
        if (it < 200) {
            sched_yield();
            continue;
        }
        if (sq_now() - t0 > g_timeout) {
            fprintf(stderr, "sqakd: rank %d of %d: no answer from the other ranks in %s for %g s (a rank died or "
                    "hangs); stopping the whole job (--dist-timeout sets this limit)\n", g_comm.rank, g_comm.size,
                    what, g_timeout);
            fflush(stderr);
            MPI_Abort(MPI_COMM_WORLD, 3);
            exit(3);
        }
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
}

/* MPI counts are int: long buffers go in pieces of at most 2^30 elements */
#define CHUNK ((size_t)1 << 30)

static void reduce_bcast(void *buf, size_t n, MPI_Datatype t, size_t esz)
{
    char *p = buf;
    for (size_t off = 0; off < n; off += CHUNK) {
        int k = (int)(n - off < CHUNK ? n - off : CHUNK);
        MPI_Request req;
        void *b = p + off * esz;
        MPI_Ireduce(g_comm.rank == 0 ? MPI_IN_PLACE : b, g_comm.rank == 0 ? b : NULL, k, t, MPI_SUM, 0,
                    MPI_COMM_WORLD, &req);
        wait_req(&req, "an all-reduce");
        MPI_Ibcast(b, k, t, 0, MPI_COMM_WORLD, &req);
        wait_req(&req, "an all-reduce");
    }
}

static void abort_job(const sq_comm *c, int code)
{
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

static void ar_f32(const sq_comm *c, float *buf, size_t n) { reduce_bcast(buf, n, MPI_FLOAT, sizeof(float)); }
static void ar_f64(const sq_comm *c, double *buf, size_t n) { reduce_bcast(buf, n, MPI_DOUBLE, sizeof(double)); }

static void bcast(const sq_comm *c, void *buf, size_t bytes, int root)
{
    char *p = buf;
    for (size_t off = 0; off < bytes; off += CHUNK) {
        int k = (int)(bytes - off < CHUNK ? bytes - off : CHUNK);
        MPI_Request req;
        MPI_Ibcast(p + off, k, MPI_BYTE, root, MPI_COMM_WORLD, &req);
        wait_req(&req, "a broadcast");
    }
}

sq_status sq_dist_init(int size)
{
    if (g_init) return SQ_OK;
    int provided;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        sq_set_error("MPI_Init failed: check the launcher (mpirun -np N, or srun --mpi=pmix)");
        return SQ_EIO;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &g_comm.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_comm.size);
    MPI_Comm node;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_comm.rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_rank(node, &g_comm.local_rank);
        MPI_Comm_size(node, &g_comm.local_size);
        MPI_Comm_free(&node);
    } else {
        g_comm.local_rank = g_comm.rank;
        g_comm.local_size = g_comm.size;
    }
    g_comm.allreduce_f32 = ar_f32;
    g_comm.allreduce_f64 = ar_f64;
    g_comm.bcast = bcast;
    g_comm.abort = abort_job;
    g_comm.timeout_s = g_timeout;
    g_init = 1;
    return SQ_OK;
}

const sq_comm *sq_dist_comm(void) { return g_init ? &g_comm : NULL; }

void sq_dist_finish(int rc)
{
    if (!g_init) return;
    g_init = 0;
    if (rc != 0 && g_comm.size > 1) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, rc);
    }
    MPI_Finalize();
}

#else

int sq_dist_built(void) { return 0; }
const char *sq_dist_build(void) { return "built without MPI"; }

sq_status sq_dist_init(int size)
{
    sq_set_error("started as %d processes (mpirun/srun), but this sqakd was built without MPI: install "
                 "libopenmpi-dev (make deps) and rebuild, or run one process", size);
    return SQ_EARG;
}

const sq_comm *sq_dist_comm(void) { return NULL; }
void sq_dist_finish(int rc) { (void)rc; }

#endif
