/* test_capture.cu: Criterion suite "cuemu_capture", the tests of cuemu's stream capture and graph
   replay (tests/cuemu/capture.cc, runtime.cc, cuemu.h), built like test_exec.cu. Recorded work
   does not run until the graph is launched and runs again at every launch, with the arguments it
   was recorded with and the buffers' contents at the launch; the calls that CUDA forbids during
   a capture (synchronous copies and memsets, allocations, synchronisation, work on the legacy
   stream while a blocking stream captures, a wait for an event recorded outside the capture)
   fail and invalidate it, and cudaStreamEndCapture then returns no graph. */
#include <criterion/criterion.h>
#include <vector>
#include "test_exec_util.h"

static __global__ void add_k(int n, float *y, float v)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += v;
}

static float *dev(size_t n)
{
    void *p = NULL;
    CK(cudaMalloc(&p, n * sizeof(float)));
    CK(cudaMemset(p, 0, n * sizeof(float)));
    return static_cast<float *>(p);
}

static std::vector<float> host(const float *d, size_t n)
{
    std::vector<float> h(n);
    CK(cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
}

Test(cuemu_capture, recorded_work_runs_at_each_launch_only)
{
    const int n = 100;
    float *y = dev(n), *z = dev(n);
    cudaStream_t s;
    CK(cudaStreamCreate(&s));
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    cudaStreamCaptureStatus cs;
    CK(cudaStreamIsCapturing(s, &cs));
    cr_assert_eq(cs, cudaStreamCaptureStatusActive);
    add_k<<<1, 128, 0, s>>>(n, y, 1.5f);
    CK(cudaMemcpyAsync(z, y, n * sizeof(float), cudaMemcpyDeviceToDevice, s));
    CK(cudaMemsetAsync(y, 0, sizeof(float), s)); /* y[0] = 0 */
    CK(cudaGetLastError());
    cudaGraph_t g = NULL;
    CK(cudaStreamEndCapture(s, &g));
    cr_assert_not_null(g);
    std::vector<float> h = host(y, n);
    for (int i = 0; i < n; i++) cr_assert_eq(h[i], 0.0f, "y[%d] = %g before any launch", i, h[i]);
    cudaGraphExec_t x;
    CK(cudaGraphInstantiate(&x, g, 0));
    CK(cudaGraphDestroy(g)); /* the instance keeps its own copy */
    CK(cudaGraphLaunch(x, s));
    CK(cudaGraphLaunch(x, s));
    h = host(y, n);
    std::vector<float> hz = host(z, n);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(h[i], i ? 3.0f : 0.0f, "y[%d] = %g after two launches", i, h[i]);
        cr_assert_eq(hz[i], i ? 3.0f : 1.5f, "z[%d] = %g after two launches", i, hz[i]);
    }
    CK(cudaGraphExecDestroy(x));
    CK(cudaStreamDestroy(s));
    CK(cudaFree(y));
    CK(cudaFree(z));
}

/* begin a capture on a new blocking stream, make `bad` (returning its error), end it */
static void violation(cudaError_t (*bad)(float *), cudaError_t want)
{
    float *y = dev(4);
    cudaStream_t s;
    CK(cudaStreamCreate(&s));
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    add_k<<<1, 32, 0, s>>>(4, y, 1.0f);
    cr_assert_eq(bad(y), want, "the forbidden call did not fail with %s", cudaGetErrorName(want));
    cudaStreamCaptureStatus cs;
    CK(cudaStreamIsCapturing(s, &cs));
    cr_assert_eq(cs, cudaStreamCaptureStatusInvalidated);
    cudaGraph_t g = (cudaGraph_t)1;
    cr_assert_eq(cudaStreamEndCapture(s, &g), cudaErrorStreamCaptureInvalidated);
    cr_assert_null(g);
    (void)cudaGetLastError();
    std::vector<float> h = host(y, 4);
    cr_assert_eq(h[0], 0.0f, "recorded work ran");
    add_k<<<1, 32, 0, s>>>(4, y, 1.0f); /* the stream works again */
    CK(cudaGetLastError());
    cr_assert_eq(host(y, 4)[3], 1.0f);
    CK(cudaStreamDestroy(s));
    CK(cudaFree(y));
}

static cudaError_t sync_copy(float *y)
{
    float h = 2.0f;
    return cudaMemcpy(y, &h, sizeof h, cudaMemcpyHostToDevice);
}
static cudaError_t sync_set(float *y) { return cudaMemset(y, 0, 4); }
static cudaError_t malloc_(float *)
{
    void *p;
    return cudaMalloc(&p, 16);
}
static cudaError_t free_(float *y) { return cudaFree(y); }
static cudaError_t dev_sync(float *) { return cudaDeviceSynchronize(); }
static cudaError_t legacy_kernel(float *y)
{
    add_k<<<1, 32>>>(4, y, 5.0f);
    return cudaGetLastError();
}
static cudaError_t legacy_copy(float *y)
{
    return cudaMemsetAsync(y, 0, 4, 0);
}
Test(cuemu_capture, synchronous_calls_invalidate_a_capture)
{
    violation(sync_copy, cudaErrorStreamCaptureUnsupported);
    violation(sync_set, cudaErrorStreamCaptureUnsupported);
    violation(malloc_, cudaErrorStreamCaptureUnsupported);
    violation(free_, cudaErrorStreamCaptureUnsupported);
    violation(dev_sync, cudaErrorStreamCaptureUnsupported);
}

Test(cuemu_capture, legacy_stream_work_invalidates_a_blocking_capture)
{
    violation(legacy_kernel, cudaErrorStreamCaptureImplicit);
    violation(legacy_copy, cudaErrorStreamCaptureImplicit);
}

Test(cuemu_capture, waiting_for_an_outside_event_invalidates_a_capture)
{
    cudaEvent_t e;
    CK(cudaEventCreate(&e));
    CK(cudaEventRecord(e, 0)); /* recorded before the capture */
    cudaStream_t s;
    CK(cudaStreamCreate(&s));
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    cr_assert_eq(cudaStreamWaitEvent(s, e, 0), cudaErrorStreamCaptureIsolation);
    cudaGraph_t g;
    cr_assert_eq(cudaStreamEndCapture(s, &g), cudaErrorStreamCaptureInvalidated);
    (void)cudaGetLastError();
    /* an event recorded inside the same capture may be waited for */
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    CK(cudaEventRecord(e, s));
    CK(cudaStreamWaitEvent(s, e, 0));
    CK(cudaStreamEndCapture(s, &g));
    CK(cudaGraphDestroy(g));
    CK(cudaEventDestroy(e));
    CK(cudaStreamDestroy(s));
}

Test(cuemu_capture, non_blocking_capture_leaves_the_legacy_stream_usable)
{
    float *y = dev(4);
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    add_k<<<1, 32>>>(4, y, 2.0f); /* legacy stream: runs now */
    CK(cudaGetLastError());
    cudaGraph_t g;
    CK(cudaStreamEndCapture(s, &g));
    CK(cudaGraphDestroy(g));
    cr_assert_eq(host(y, 4)[1], 2.0f);
    cr_assert_eq(cudaStreamBeginCapture(0, cudaStreamCaptureModeThreadLocal),
                 cudaErrorStreamCaptureUnsupported, "capture of the legacy stream was accepted");
    (void)cudaGetLastError();
    CK(cudaStreamDestroy(s));
    CK(cudaFree(y));
}
