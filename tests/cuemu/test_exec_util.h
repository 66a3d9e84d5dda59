/* test_exec_util.h: helpers shared by cuemu's own CUDA-C++ test files (test_exec.cu,
   test_memory.cu): a checked call, device allocation and copy back. */
#ifndef SQAKD_CUEMU_TEST_EXEC_UTIL_H
#define SQAKD_CUEMU_TEST_EXEC_UTIL_H

#include <criterion/criterion.h>
#include <vector>

#define CK(call) cr_assert_eq((call), cudaSuccess, "%s failed", #call)

template <typename T> static T *dev_alloc(size_t n)
{
    void *p = NULL;
    CK(cudaMalloc(&p, n * sizeof(T)));
    return static_cast<T *>(p);
}

template <typename T> static std::vector<T> to_host(const T *d, size_t n)
{
    std::vector<T> h(n);
    CK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
}

#endif
