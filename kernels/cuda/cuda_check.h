/* cuda_check.h: error checking for the CUDA backend (used from .c via gcc and from .cu via nvcc),
   part of its context (context.c).

   CUDA_CHECK / CUBLAS_CHECK / CUDNN_CHECK wrap one library call. On failure they record the error
   (statement text, library, code and message, file, line): the message goes to sq_set_error() and
   the FIRST failure since the last clear becomes the backend's sticky error. The ops of the table
   return void, so callers (training loop, tests, bench) query the sticky status after sync()
   through the table's status / clear_status / error_count members (backend.h), which are
   sq_cuda_last_status / sq_cuda_clear_status / sq_cuda_error_count below. Nothing here aborts on a
   failing library call; SQ_CUDA_BUG aborts, and only for internal programming errors (an
   impossible enum value). */
#ifndef SQAKD_CUDA_CHECK_H
#define SQAKD_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include "sqakd/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* record a failed call (see top comment); st: SQ_ENOMEM for allocation failures, else SQ_EDEVICE */
void sq_cuda_fail(sq_status st, const char *lib, int code, const char *msg, const char *stmt,
                  const char *file, int line);
/* first error recorded since the last clear (SQ_OK if none); when not SQ_OK it also puts that
   error's message back into sq_last_error() */
sq_status sq_cuda_last_status(void);
void sq_cuda_clear_status(void);
/* number of failures recorded so far (never reset): lets a multi-step routine notice that one of
   its checked calls failed and stop */
unsigned sq_cuda_error_count(void);
/* the sticky status without touching sq_last_error() */
sq_status sq_cuda_peek_status(void);
/* marks the current error count; sq_cuda_first_error_since_mark() is then the message of the
   first failure recorded after the mark ("" if none) */
void sq_cuda_mark_errors(void);
const char *sq_cuda_first_error_since_mark(void);
/* internal programming error: print "file:line: msg" to stderr and abort */
void sq_cuda_bug(const char *msg, const char *file, int line) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#define CUDA_CHECK(stmt)                                                                         \
    do {                                                                                         \
        cudaError_t sq_err_ = (stmt);                                                            \
        if (sq_err_ != cudaSuccess)                                                              \
            sq_cuda_fail(sq_err_ == cudaErrorMemoryAllocation ? SQ_ENOMEM : SQ_EDEVICE, "CUDA",  \
                         (int)sq_err_, cudaGetErrorString(sq_err_), #stmt, __FILE__, __LINE__);  \
    } while (0)

#define CUBLAS_CHECK(stmt)                                                                       \
    do {                                                                                         \
        cublasStatus_t sq_err_ = (stmt);                                                         \
        if (sq_err_ != CUBLAS_STATUS_SUCCESS)                                                    \
            sq_cuda_fail(sq_err_ == CUBLAS_STATUS_ALLOC_FAILED ? SQ_ENOMEM : SQ_EDEVICE,         \
                         "cuBLAS", (int)sq_err_, cublasGetStatusString(sq_err_), #stmt,          \
                         __FILE__, __LINE__);                                                    \
    } while (0)

#define CUDNN_CHECK(stmt)                                                                        \
    do {                                                                                         \
        cudnnStatus_t sq_err_ = (stmt);                                                          \
        if (sq_err_ != CUDNN_STATUS_SUCCESS)                                                     \
            sq_cuda_fail(sq_err_ == CUDNN_STATUS_ALLOC_FAILED ? SQ_ENOMEM : SQ_EDEVICE, "cuDNN", \
                         (int)sq_err_, cudnnGetErrorString(sq_err_), #stmt, __FILE__, __LINE__); \
    } while (0)

/* after every kernel launch: launch-configuration errors always; with -DSQ_CUDA_DEBUG also
   synchronise so that an asynchronous fault is attributed to the kernel that caused it */
#ifdef SQ_CUDA_DEBUG
#define SQ_CUDA_LAUNCHED()                                                                       \
    do {                                                                                         \
        CUDA_CHECK(cudaGetLastError());                                                          \
        CUDA_CHECK(cudaDeviceSynchronize());                                                     \
    } while (0)
#else
#define SQ_CUDA_LAUNCHED() CUDA_CHECK(cudaGetLastError())
#endif

#define SQ_CUDA_BUG(msg) sq_cuda_bug((msg), __FILE__, __LINE__)

#endif
