/* cuemu_rt.h: the C interface shared by the parts of cuemu, the CPU emulation of the CUDA
   runtime, cuDNN and cuBLAS that lets the CUDA backend's host code and kernels run (slowly) on a
   machine without a GPU. cuemu validates logic (indexing, reductions, host orchestration, error
   paths); it says nothing about GPU speed, memory-model races or the real libraries' numerics.
   See tools/cuemu/README.md. */
#ifndef SQAKD_CUEMU_RT_H
#define SQAKD_CUEMU_RT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* nonzero when [p, p + bytes) lies inside one live emulated device allocation (cudaMalloc) */
int cuemu_dev_range_ok(const void *p, size_t bytes);
/* print "cuemu: <what>: <message>" to stderr and abort(): an out-of-bounds device access or a
   misuse that would fault or be undefined on a real GPU */
void cuemu_fatal(const char *what, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

/* CUEMU_STATS=1: counts one call of `what` (a kernel launch, a cuDNN convolution, a cuBLAS
   GEMM); the counts are printed to stderr at exit, to see how many launches a step makes */
void cuemu_stat(const char *what);

#ifdef __cplusplus
}
#endif

#endif
