/* mem.c: CPU backend memory (64-byte aligned, zeroed host allocations: mappings for large ones,
   see sq_cpu_alloc; plain copies) and thread
   control (OpenMP for the ops, BLAS pinned to one thread because ops call it per thread). */
#include "cpu_ops.h"
#include <omp.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#ifdef SQ_HAVE_BLAS
#include <cblas.h>
#endif

/* Allocations of at least MAP_MIN bytes are anonymous mappings: the kernel's zero pages, so a
   page that is never written (the part of a conv workspace a smaller layer does not use, an
   arena replaced by a smaller one) never becomes resident, and free gives the memory back to the
   system at once (heap blocks freed by glibc may stay resident). Smaller ones come from the heap,
   zeroed. A 64-byte header before each block says which, and keeps the block 64-byte aligned. */
#define MAP_MIN ((size_t)1 << 20)
#define HDR 64
#define MAGIC_HEAP 0x5141484541500001ull
#define MAGIC_MAP 0x51414d4150000002ull

typedef struct { uint64_t magic; size_t len; } blk_hdr;

void *sq_cpu_alloc(size_t bytes)
{
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes || rounded > SIZE_MAX - 2 * MAP_MIN) return NULL; /* overflow */
#if !defined(__SANITIZE_ADDRESS__) /* AddressSanitizer builds keep every block on its checked heap */
    if (rounded >= MAP_MIN) {
        const size_t len = rounded + HDR;
        void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return NULL;
        blk_hdr *h = m;
        h->magic = MAGIC_MAP;
        h->len = len;
        return (char *)m + HDR;
    }
#endif
    void *p = NULL;
    if (posix_memalign(&p, 64, rounded + HDR)) return NULL;
    memset(p, 0, rounded + HDR);
    ((blk_hdr *)p)->magic = MAGIC_HEAP;
    return (char *)p + HDR;
}

void sq_cpu_free(void *p)
{
    if (!p) return;
    blk_hdr *h = (blk_hdr *)((char *)p - HDR);
    if (h->magic == MAGIC_MAP) {
        munmap(h, h->len);
    } else {
        h->magic = 0;
        free(h);
    }
}

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
