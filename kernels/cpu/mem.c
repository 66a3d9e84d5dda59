/* mem.c: CPU backend memory (64-byte aligned, zeroed host allocations, plain copies) and thread
   control (OpenMP for the ops, BLAS pinned to one thread because ops call it per thread). */
#include "cpu_ops.h"
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#ifdef SQ_HAVE_BLAS
#include <cblas.h>
#endif

void *sq_cpu_alloc(size_t bytes)
{
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *p = NULL;
    if (posix_memalign(&p, 64, rounded ? rounded : 64)) return NULL;
    sq_cpu_memset0(p, rounded);
    return p;
}

void sq_cpu_free(void *p) { free(p); }

void sq_cpu_memset0(void *p, size_t bytes)
{
    const size_t chunk = (size_t)1 << 20;
    if (bytes < 4 * chunk) {
        memset(p, 0, bytes);
        return;
    }
    long nchunks = (long)((bytes + chunk - 1) / chunk);
#pragma omp parallel for SQ_SCHED_ITEMS
    for (long i = 0; i < nchunks; i++) {
        size_t off = (size_t)i * chunk;
        memset((char *)p + off, 0, bytes - off < chunk ? bytes - off : chunk);
    }
}

void sq_cpu_copy(void *dst, const void *src, size_t bytes)
{
    if (dst != src && bytes) memmove(dst, src, bytes);
}

void sq_cpu_sync(void) {}

int sq_cpu_threads(void)
{
    int t = omp_get_max_threads(), p = omp_get_num_procs();
    return t < p ? t : p;
}

void sq_cpu_init_threads(void)
{
#ifdef SQ_HAVE_BLAS
    openblas_set_num_threads(1);
#endif
}

/* the teams of run_models: nested OpenMP, each team's threads set in its own thread's ICV, which
   the ops below read (sq_cpu_threads); team t of P gets threads / P, one more while t < threads % P */
void sq_cpu_run_models(int n, void (*fn)(void *ctx, int i), void *ctx)
{
    const int T = sq_cpu_threads(), P = n < T ? n : T;
    if (P <= 1 || omp_in_parallel()) {
        for (int i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    const int levels = omp_get_max_active_levels();
    if (levels < 2) omp_set_max_active_levels(2);
#pragma omp parallel num_threads(P)
    {
        const int t = omp_get_thread_num(), np = omp_get_num_threads();
        omp_set_num_threads(T / np + (t < T % np));
        for (int i = t; i < n; i += np) fn(ctx, i);
    }
    omp_set_max_active_levels(levels);
}

void sq_cpu_set_threads(int threads)
{
    if (threads > 0) omp_set_num_threads(threads);
    sq_cpu_init_threads();
}
