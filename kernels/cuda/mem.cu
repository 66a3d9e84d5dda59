/* mem.cu: device memory of the CUDA backend: zeroed allocations, copies across and within the
   device, and the synchronisation point at which asynchronous kernel faults become visible
   (through the sticky status of cuda_check.h). Asynchronous work goes on the compute stream;
   the synchronous host copies run on the legacy stream, which orders with the (blocking)
   compute stream both ways. */
#include "cuda_common.cuh"

extern "C" void *sq_cuda_alloc(size_t bytes)
{
    void *p = NULL;
    size_t n = bytes ? bytes : 256;
    cudaError_t e = cudaMalloc(&p, n);
    if (e != cudaSuccess) {
        /* an allocation failure is the caller's to report (alloc returns NULL): clear the
           runtime's last error so that it is not blamed on the next kernel launch */
        (void)cudaGetLastError();
        sq_set_error("CUDA out of device memory: cudaMalloc(%zu bytes) failed (%s); use a smaller "
                     "batch or model", n, cudaGetErrorString(e));
        return NULL;
    }
    CUDA_CHECK(cudaMemset(p, 0, n));
    return p;
}

extern "C" void sq_cuda_free(void *p)
{
    if (p) CUDA_CHECK(cudaFree(p));
}

extern "C" void sq_cuda_memset0(void *p, size_t bytes)
{
    if (bytes) CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, sq_cuda_stream()));
}

extern "C" void sq_cuda_copy_h2d(void *dst, const void *src, size_t bytes)
{
    if (bytes) CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

extern "C" void sq_cuda_copy_d2h(void *dst, const void *src, size_t bytes)
{
    if (bytes) CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

extern "C" void sq_cuda_copy_d2d(void *dst, const void *src, size_t bytes)
{
    if (bytes && dst != src) CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, sq_cuda_stream()));
}

extern "C" void sq_cuda_sync(void)
{
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void sq_cuda_set_threads(int threads) { (void)threads; }
