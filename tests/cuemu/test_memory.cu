/* test_memory.cu: Criterion suite "cuemu_exec", continued: cuemu's device memory (runtime.cc):
   cudaMalloc's garbage fill, copies in every direction, bounds checks of copies and kernels'
   pointers, capacity (CUEMU_MEM_GB), frees and CUEMU_DEVICES=0. Built like test_exec.cu. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <vector>
#include "test_exec_util.h"

/* cudaMalloc does not zero: a GPU hands back whatever the memory held, cuemu fills 0xA5 so that
   a kernel relying on zeroed memory shows wrong values */
Test(cuemu_exec, malloc_is_not_zeroed)
{
    const size_t n = 4099;
    unsigned char *d = dev_alloc<unsigned char>(n);
    std::vector<unsigned char> h = to_host(d, n);
    for (size_t i = 0; i < n; i++) cr_assert_eq(h[i], 0xA5, "byte %zu: 0x%02x", i, h[i]);
    float *f = dev_alloc<float>(4);
    std::vector<float> hf = to_host(f, 4);
    uint32_t bits;
    memcpy(&bits, &hf[3], 4);
    cr_assert_eq(bits, 0xA5A5A5A5u);
    CK(cudaFree(d));
    CK(cudaFree(f));
}

Test(cuemu_exec, memcpy_round_trip)
{
    const size_t n = 1000;
    std::vector<double> h(n), back(n, -1.0);
    for (size_t i = 0; i < n; i++) h[i] = (double)i * 1.5 - 7.0;
    double *a = dev_alloc<double>(n), *b = dev_alloc<double>(n + 10);
    CK(cudaMemcpy(a, h.data(), n * sizeof(double), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(b + 10, a, n * sizeof(double), cudaMemcpyDeviceToDevice));
    CK(cudaMemcpy(back.data(), b + 10, n * sizeof(double), cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) cr_assert_eq(back[i], h[i], "element %zu", i);
    std::vector<double> head(10);
    CK(cudaMemcpy(head.data(), b, 10 * sizeof(double), cudaMemcpyDefault));
    uint64_t bits;
    memcpy(&bits, &head[9], 8);
    cr_assert_eq(bits, 0xA5A5A5A5A5A5A5A5ull, "D2D wrote before its destination");
    CK(cudaFree(a));
    CK(cudaFree(b));
}

Test(cuemu_exec, memcpy_invalid_pointers)
{
    int h[4] = {1, 2, 3, 4}, h2[4] = {0, 0, 0, 0};
    int *d = dev_alloc<int>(4);
    cr_assert_eq(cudaMemcpy(NULL, h, sizeof h, cudaMemcpyHostToDevice), cudaErrorInvalidValue);
    cr_assert_eq(cudaGetLastError(), cudaErrorInvalidValue);
    cr_assert_eq(cudaGetLastError(), cudaSuccess);
    cr_assert_eq(cudaMemcpy(h, NULL, sizeof h, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
    /* a host array is not device memory */
    cr_assert_eq(cudaMemcpy(h2, h, sizeof h, cudaMemcpyHostToDevice), cudaErrorInvalidValue);
    cr_assert_eq(cudaMemcpy(h2, h, sizeof h, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
    cr_assert_eq(h2[0], 0, "a rejected copy wrote");
    cr_assert_eq(cudaGetLastError(), cudaErrorInvalidValue);
    CK(cudaMemcpy(d, h, sizeof h, cudaMemcpyHostToDevice));
    CK(cudaFree(d));
}

Test(cuemu_exec, memcpy_past_end_h2d_aborts, .signal = SIGABRT)
{
    char h[65] = {0};
    char *d = dev_alloc<char>(64);
    cudaMemcpy(d, h, 65, cudaMemcpyHostToDevice);
}

Test(cuemu_exec, memcpy_past_end_d2h_aborts, .signal = SIGABRT)
{
    char h[64] = {0};
    char *d = dev_alloc<char>(64);
    cudaMemcpy(h, d + 32, 33, cudaMemcpyDeviceToHost);
}

Test(cuemu_exec, malloc_capacity)
{
    setenv("CUEMU_MEM_GB", "0.0009765625", 1); /* 1 MiB */
    const size_t cap = 1u << 20;
    size_t fr = 0, tot = 0;
    CK(cudaMemGetInfo(&fr, &tot));
    cr_assert_eq(tot, cap);
    cr_assert_eq(fr, cap);
    void *a = NULL, *b = (void *)1, *c = NULL;
    CK(cudaMalloc(&a, 600000));
    CK(cudaMemGetInfo(&fr, &tot));
    cr_assert_eq(fr, cap - 600000);
    cr_assert_eq(tot, cap);
    cr_assert_eq(cudaMalloc(&b, 600000), cudaErrorMemoryAllocation);
    cr_assert_null(b);
    cr_assert_eq(cudaGetLastError(), cudaErrorMemoryAllocation);
    cr_assert_eq(cudaMalloc(&b, 2 * cap), cudaErrorMemoryAllocation);
    CK(cudaMemGetInfo(&fr, &tot));
    cr_assert_eq(fr, cap - 600000, "a failed cudaMalloc used memory");
    CK(cudaMalloc(&c, cap - 600000));
    CK(cudaMemGetInfo(&fr, &tot));
    cr_assert_eq(fr, 0u);
    CK(cudaFree(a));
    CK(cudaFree(c));
    CK(cudaMemGetInfo(&fr, &tot));
    cr_assert_eq(fr, cap);
    cr_assert_eq(tot, cap);
}

/* CUDA >= 10.1 reports cudaErrorInvalidValue, older ones cudaErrorInvalidDevicePointer */
static void assert_free_fails(void *p, const char *what)
{
    cudaError_t e = cudaFree(p);
    cr_assert(e == cudaErrorInvalidValue || e == cudaErrorInvalidDevicePointer, "%s: %s", what,
              cudaGetErrorName(e));
    cr_assert_eq(cudaGetLastError(), e, "%s", what);
}

Test(cuemu_exec, free_of_non_allocation_fails)
{
    int local = 0;
    int *d = dev_alloc<int>(8);
    void *host = malloc(16);
    assert_free_fails(&local, "stack address");
    assert_free_fails(host, "malloc'd host memory");
    assert_free_fails(d + 1, "interior of an allocation");
    CK(cudaFree(NULL));
    CK(cudaFree(d));
    assert_free_fails(d, "second free");
    free(host);
}

Test(cuemu_exec, no_device)
{
    int n = -1;
    unsetenv("CUEMU_DEVICES");
    CK(cudaGetDeviceCount(&n));
    cr_assert_eq(n, 1);
    setenv("CUEMU_DEVICES", "0", 1);
    n = -1;
    cr_assert_eq(cudaGetDeviceCount(&n), cudaErrorNoDevice);
    cr_assert_eq(n, 0);
    void *p = (void *)1;
    cr_assert_eq(cudaMalloc(&p, 16), cudaErrorNoDevice);
    cr_assert_null(p);
    unsetenv("CUEMU_DEVICES");
}


/* an asynchronous copy from pinned memory reads its source later on a GPU: the host may write it
   again once an event after the copy, its stream or the device is synchronised, not before */
static void pinned_copy(cudaStream_t *s, cudaEvent_t *ev, float **h, float **d)
{
    CK(cudaStreamCreateWithFlags(s, cudaStreamNonBlocking));
    CK(cudaEventCreateWithFlags(ev, cudaEventDisableTiming));
    CK(cudaHostAlloc((void **)h, 64 * sizeof(float), cudaHostAllocDefault));
    *d = dev_alloc<float>(64);
    for (int i = 0; i < 64; i++) (*h)[i] = (float)i;
    CK(cudaMemcpyAsync(*d, *h + 8, 32 * sizeof(float), cudaMemcpyHostToDevice, *s));
    CK(cudaEventRecord(*ev, *s));
}

Test(cuemu_exec, pinned_source_written_after_completion_is_fine)
{
    cudaStream_t s;
    cudaEvent_t ev;
    float *h, *d;
    pinned_copy(&s, &ev, &h, &d);
    h[0] = -1.0f; /* outside the copied range */
    CK(cudaEventSynchronize(ev));
    h[8] = -1.0f;
    CK(cudaMemcpyAsync(d, h, 64 * sizeof(float), cudaMemcpyHostToDevice, s));
    CK(cudaStreamSynchronize(s));
    h[9] = -1.0f;
    CK(cudaMemcpyAsync(d, h, 64 * sizeof(float), cudaMemcpyHostToDevice, s));
    CK(cudaDeviceSynchronize());
    CK(cudaFreeHost(h));
    CK(cudaFree(d));
    CK(cudaEventDestroy(ev));
    CK(cudaStreamDestroy(s));
}

Test(cuemu_exec, pinned_source_written_before_completion_aborts, .signal = SIGABRT)
{
    cudaStream_t s;
    cudaEvent_t ev, other;
    float *h, *d;
    pinned_copy(&s, &ev, &h, &d);
    CK(cudaEventCreateWithFlags(&other, cudaEventDisableTiming));
    CK(cudaEventRecord(other, 0)); /* on another stream: says nothing about the copy */
    h[20] = -1.0f;
    CK(cudaEventSynchronize(other));
    CK(cudaEventSynchronize(ev)); /* the copy is known complete here: its source was written */
}

Test(cuemu_exec, pinned_source_freed_before_completion_aborts, .signal = SIGABRT)
{
    cudaStream_t s;
    cudaEvent_t ev;
    float *h, *d;
    pinned_copy(&s, &ev, &h, &d);
    cudaFreeHost(h);
}
