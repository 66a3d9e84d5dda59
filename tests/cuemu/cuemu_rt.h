/* cuemu_rt.h: the C interface shared by the parts of cuemu, the CPU emulation of the CUDA
   runtime, cuDNN and cuBLAS that lets the CUDA backend's host code and kernels run (slowly) on a
   machine without a GPU. cuemu validates logic (indexing, reductions, host orchestration, error
   paths); it says nothing about GPU speed, memory-model races or the real libraries' numerics.
   See tests/cuemu/README.md. */
#ifndef SQAKD_CUEMU_RT_H
#define SQAKD_CUEMU_RT_H

#include <stddef.h>
#include <driver_types.h>

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

/* ---- stream capture (capture.cc; the graph API itself is in runtime.cc) ---- */
/* nonzero when s is the stream being captured: work issued to it is to be recorded
   (cuemu_record), not run */
int cuemu_capturing(cudaStream_t s);
/* a call is about to issue work to stream s (NULL or cudaStreamLegacy: the legacy stream), or
   is synchronous (sync: it blocks the host or allocates). During a capture that breaks the rules
   of stream capture, this invalidates the capture and returns the error CUDA gives
   (cudaErrorStreamCaptureUnsupported / cudaErrorStreamCaptureImplicit); else cudaSuccess */
cudaError_t cuemu_capture_check(cudaStream_t s, int sync);
void cuemu_capture_invalidate(cudaError_t why);
/* serial number of the active capture (0: none) */
unsigned cuemu_capture_serial(void);
/* records fn(copy of the bytes ctx[0, bytes)) on the capturing stream s */
void cuemu_record(cudaStream_t s, void (*fn)(void *), const void *ctx, size_t bytes);
cudaError_t cuemu_capture_begin(cudaStream_t s, int blocking);
/* 0: s does not capture; 1: it captures; 2: its capture was invalidated */
int cuemu_capture_status(cudaStream_t s);
/* ends the capture on s: *graph is the recording (NULL and cudaErrorStreamCaptureInvalidated
   when a violation invalidated it) */
cudaError_t cuemu_capture_end(cudaStream_t s, void **graph);
void *cuemu_graph_copy(const void *graph);
void cuemu_graph_run(const void *graph);
size_t cuemu_graph_nodes(const void *graph);
void cuemu_graph_free(void *graph);

#ifdef __cplusplus
}
#endif

#endif
