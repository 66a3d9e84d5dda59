/* context.h: the CUDA backend's context, the layer below every op family (context.c): the device
   (its SM count and description), the compute stream, the library handles (cuBLAS, cuDNN), the
   reduction scratch, the options in force (the table's configure / options), the sticky status
   of cuda_check.h (status / clear_status / error_count) and the host profile. context.c includes
   no op-family header; the op families (cuda_ops.h) include this one.

   Every op runs on the compute stream sq_cuda_stream(), in order; the reduction scratch below is
   shared by all kernels that use it and relies on that ordering (one compute stream per
   backend). The only other streams are an input stage's copy stream (stage.c), which touches
   nothing but the stage's own buffers, and the NCCL all-reduces' comm stream (dist.c), which
   touches nothing but the gradient buckets and BN totals handed to it; both are ordered against
   the compute stream with events. */
#ifndef SQAKD_CUDA_CONTEXT_H
#define SQAKD_CUDA_CONTEXT_H

#include "cuda_check.h"
#include "sqakd/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One-time set-up (sq_backend_cuda): device check, compute stream, reduction scratch, cuBLAS
   handle and workspace, cuDNN handle. SQ_OK, or an error with its message in sq_last_error(). */
sq_status sq_cuda_context_init(void);

int sq_cuda_sm_count(void);
/* backend.h device_info: the GPU's name, peak memory bandwidth (2 x memory clock x bus width:
   cudaDevAttrMemoryClockRate / cudaDevAttrGlobalMemoryBusWidth, since CUDA 13 removed
   cudaDeviceProp::memoryClockRate) and SM count */
void sq_cuda_device_info(sq_device_info *info);

/* The compute stream: every kernel, cuDNN and cuBLAS call and asynchronous copy of the backend.
   A stream of our own because the legacy default stream cannot be captured into a CUDA graph
   (graph.c); a blocking one (cudaStreamDefault), so the synchronous copies of mem.cu, which run
   on the legacy stream, still wait for it and it for them. */
cudaStream_t sq_cuda_stream(void);

/* cuBLAS: math mode CUBLAS_DEFAULT_MATH (FP32 GEMMs in full FP32: cuBLAS uses TF32 only when
   asked with CUBLAS_TF32_TENSOR_OP_MATH, so linear layers match the CPU reference closely), host
   pointer mode, the compute stream, a workspace of its own. cuDNN: bound to the compute stream. */
cublasHandle_t sq_cuda_cublas(void);
cudnnHandle_t sq_cuda_cudnn(void);

/* Deterministic cross-block reductions: a kernel of at most SQ_CUDA_MAX_BLOCKS blocks writes one
   partial per block (up to SQ_CUDA_PARTIAL_WIDTH doubles each) into sq_cuda_partials(), increments
   *sq_cuda_counter() after a fence; the last block to arrive sums the partials in block order,
   writes the result and resets the counter to 0. One launch, no float atomics, same result every
   run for the same grid. */
#define SQ_CUDA_MAX_BLOCKS 1024
#define SQ_CUDA_PARTIAL_WIDTH 4
/* the partial buffer holds SQ_CUDA_PARTIAL_DOUBLES doubles; kernels with per-channel two-pass
   reductions (batch norm) use it as plain scratch between their two launches */
#define SQ_CUDA_PARTIAL_DOUBLES 65536
double *sq_cuda_partials(void);
unsigned *sq_cuda_counter(void);
/* the most blocks of a reducing launch: one partial slot each */
#define SQ_CUDA_FLAT_MAX_BLOCKS (SQ_CUDA_PARTIAL_DOUBLES / SQ_CUDA_PARTIAL_WIDTH)
/* The most blocks a streaming launch (cuda_common.cuh, sq_grid_streaming / sq_grid_wave) may
   take: SQ_CUDA_FLAT_MAX_BLOCKS for reducing launches, the grid's x limit for the others, or
   less while a test has set a cap (tests/cuda_hooks.h, sq_cuda_grid_cap_set), so that small
   tensors take the kernels' grid-stride loops several times. */
unsigned sq_cuda_grid_cap(int reducing);

/* ---- options (backend.h sq_backend_opts; defaults SQ_BACKEND_OPTS_DEFAULT) ----
   configure validates o and applies it. cuda_graph and stage are the host's to read (options);
   tf32, conv_find and conv_deterministic decide how cudnn.c plans a convolution shape, and a plan
   keeps what it was built with: once a shape has been planned they can no longer change (SQ_EARG
   naming the option; nothing is applied), so configure the backend before its first
   convolution. host_profile may change at any time. */
sq_status sq_cuda_configure(const sq_backend_opts *o);
const sq_backend_opts *sq_cuda_options(void);
/* cudnn.c, when it plans a shape with the convolution options in force: from now on configure
   keeps them */
void sq_cuda_conv_options_used(void);

/* ---- host profile (option host_profile): host wall time spent inside the cuDNN convolution
   calls, and in the launch of the convolution bias kernel that replaced cudnnAddTensor, for
   comparison (the calls are asynchronous: this is the CPU cost of issuing them, which bounds a
   step's speed when the GPU finishes its work faster than the host can queue it). Printed to
   stderr at exit. */
enum { SQ_HPROF_FWD, SQ_HPROF_BWD_DATA, SQ_HPROF_BWD_FILTER, SQ_HPROF_CONV16, SQ_HPROF_CONV_BIAS,
       SQ_HPROF_COUNT };
int sq_cuda_hprof_on(void);
void sq_cuda_hprof_add(int what, double t0); /* adds sq_now() - t0 */
#define SQ_HPROF(what, stmt)                                                                     \
    do {                                                                                         \
        if (sq_cuda_hprof_on()) {                                                                \
            double sq_hp_t0_ = sq_now();                                                         \
            stmt;                                                                                \
            sq_cuda_hprof_add(what, sq_hp_t0_);                                                  \
        } else {                                                                                 \
            stmt;                                                                                \
        }                                                                                        \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
