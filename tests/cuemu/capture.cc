/* capture.cc: cuemu's stream capture (the recording half of CUDA graphs). While a stream
   captures, the work issued to it is recorded, not run: kernel launches (cuemu.h), asynchronous
   copies and memsets (runtime.cc), cuDNN and cuBLAS calls on a handle bound to the stream
   (cudnn_emu_capture.c, cublas_emu.c). cudaStreamEndCapture hands the recording over as a graph,
   whose launch runs the recorded work in order (runtime.cc).

   The rules of stream capture that cuemu enforces, as CUDA does, are the ones a step of the
   backend could break: a synchronous call (cudaMemcpy, cudaMemset, cudaMalloc, cudaFree, a
   synchronize) during a capture, and work issued to the legacy stream while a blocking stream
   captures, invalidate the capture and fail with cudaErrorStreamCaptureUnsupported /
   cudaErrorStreamCaptureImplicit; cudaStreamEndCapture then fails with
   cudaErrorStreamCaptureInvalidated and returns no graph. Nothing that was recorded has run.

   Self-contained (no reference to runtime.cc), so the cuDNN emulation's own tests link it
   alone. One capture at a time, from one thread. */
#include <cuda_runtime_api.h>
#include <functional>
#include <memory>
#include <string.h>
#include <utility>
#include <vector>
#include "cuemu_rt.h"

namespace {
struct capture {
    bool active = false;
    cudaStream_t stream = nullptr;
    bool blocking = false;
    cudaError_t invalid = cudaSuccess; /* the violation that invalidated it */
    unsigned serial = 0;
    std::vector<std::function<void()>> *nodes = nullptr;
};
capture g_cap;
} // namespace

extern "C" int cuemu_capturing(cudaStream_t s)
{
    return g_cap.active && s != nullptr && s == g_cap.stream;
}

extern "C" unsigned cuemu_capture_serial(void) { return g_cap.active ? g_cap.serial : 0; }

extern "C" cudaError_t cuemu_capture_check(cudaStream_t s, int sync)
{
    if (!g_cap.active) return cudaSuccess;
    cudaError_t e = cudaSuccess;
    if (sync)
        e = cudaErrorStreamCaptureUnsupported;
    else if ((s == nullptr || s == cudaStreamLegacy) && g_cap.blocking)
        e = cudaErrorStreamCaptureImplicit;
    if (e != cudaSuccess && g_cap.invalid == cudaSuccess) g_cap.invalid = e;
    return e;
}

extern "C" void cuemu_capture_invalidate(cudaError_t why)
{
    if (g_cap.active && g_cap.invalid == cudaSuccess) g_cap.invalid = why;
}

void cuemu_record_fn(cudaStream_t s, std::function<void()> f)
{
    if (!cuemu_capturing(s)) cuemu_fatal("capture", "recording onto a stream that is not capturing");
    g_cap.nodes->push_back(std::move(f));
}

extern "C" void cuemu_record(cudaStream_t s, void (*fn)(void *), const void *ctx, size_t bytes)
{
    auto buf = std::make_shared<std::vector<unsigned char>>(bytes);
    if (bytes) memcpy(buf->data(), ctx, bytes);
    cuemu_record_fn(s, [fn, buf]() { fn(buf->data()); });
}

extern "C" cudaError_t cuemu_capture_begin(cudaStream_t s, int blocking)
{
    if (g_cap.active) return cudaErrorIllegalState;
    g_cap.active = true;
    g_cap.stream = s;
    g_cap.blocking = blocking != 0;
    g_cap.invalid = cudaSuccess;
    g_cap.serial++;
    g_cap.nodes = new std::vector<std::function<void()>>();
    return cudaSuccess;
}

extern "C" int cuemu_capture_status(cudaStream_t s)
{
    if (!cuemu_capturing(s)) return 0;
    return g_cap.invalid == cudaSuccess ? 1 : 2;
}

extern "C" cudaError_t cuemu_capture_end(cudaStream_t s, void **graph)
{
    *graph = nullptr;
    if (!g_cap.active || s != g_cap.stream) return cudaErrorIllegalState;
    auto *nodes = g_cap.nodes;
    cudaError_t invalid = g_cap.invalid;
    g_cap = capture{false, nullptr, false, cudaSuccess, g_cap.serial, nullptr};
    if (invalid != cudaSuccess) {
        delete nodes;
        return cudaErrorStreamCaptureInvalidated;
    }
    *graph = nodes;
    return cudaSuccess;
}

extern "C" void *cuemu_graph_copy(const void *graph)
{
    return new std::vector<std::function<void()>>(
        *static_cast<const std::vector<std::function<void()>> *>(graph));
}

extern "C" void cuemu_graph_run(const void *graph)
{
    for (const auto &f : *static_cast<const std::vector<std::function<void()>> *>(graph)) f();
}

extern "C" size_t cuemu_graph_nodes(const void *graph)
{
    return static_cast<const std::vector<std::function<void()>> *>(graph)->size();
}

extern "C" void cuemu_graph_free(void *graph)
{
    delete static_cast<std::vector<std::function<void()>> *>(graph);
}
