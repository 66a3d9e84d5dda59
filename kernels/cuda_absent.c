/* cuda_absent.c: sq_backend_cuda() of a build without CUDA (compiled instead of kernels/cuda). */
#include "sqakd/backend.h"

const sq_backend *sq_backend_cuda(void)
{
    sq_set_error("this sqakd was built without CUDA (nvcc not found at build time); use --device cpu");
    return NULL;
}

const char *sq_backend_cuda_build(void) { return NULL; }

void sq_backend_cuda_local_rank(int local_rank) { (void)local_rank; }
