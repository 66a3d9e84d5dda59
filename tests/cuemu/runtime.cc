/* runtime.cc: cuemu's CUDA runtime (the subset of cuda_runtime_api.h the backend calls) and its
   kernel executor.

   Memory: device allocations are host allocations, recorded so that cuDNN/cuBLAS emulation and
   cudaMemcpy can check that a device range lies inside one live allocation; capacity is
   CUEMU_MEM_GB (default 16) GiB, so out-of-memory paths can be exercised. Everything runs
   synchronously at the call; streams and events only record that they exist, except that work
   issued to a capturing stream is recorded into a CUDA graph instead (capture.cc), and that an
   asynchronous copy from pinned host memory is tracked until it is known complete (below).

   Kernels: the blocks of a grid run one after another; the threads of a block are fibers
   (ucontext stacks, switched with _setjmp/_longjmp) scheduled cooperatively by one OS thread. A thread runs until it finishes or reaches
   a barrier (__syncthreads, or a warp shuffle / __syncwarp); when every unfinished thread waits,
   the lanes at a shuffle whose mask's lanes all wait at a shuffle exchange values and resume,
   else a block whose unfinished threads all wait at __syncthreads resumes; otherwise the block is
   deadlocked (lanes of one mask at different barriers): that is reported and aborts, as it
   would hang on a GPU; so does a shuffle whose mask names an exited lane (undefined). CUEMU_ORDER=reverse runs blocks and threads
   in reverse order (a kernel whose result depends on the order has a race). */
#undef _FORTIFY_SOURCE /* _longjmp between fiber stacks is what the checked variant forbids */
#include <cuda_runtime_api.h>
#include <setjmp.h>
#include <ucontext.h>
#include <sys/mman.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <functional>
#include <map>
#include <mutex>
#include <vector>
#include "cuemu_rt.h"

void cuemu_record_fn(cudaStream_t s, std::function<void()> f); /* capture.cc */

extern "C" {
uint3 cuemu_threadIdx, cuemu_blockIdx;
dim3 cuemu_blockDim, cuemu_gridDim;
}

/* ---- errors ---- */

static cudaError_t g_last = cudaSuccess;

static cudaError_t fail(cudaError_t e)
{
    if (e != cudaSuccess) g_last = e;
    return e;
}

extern "C" void cuemu_fatal(const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cuemu: %s: ", what);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    abort();
}

extern "C" cudaError_t cudaGetLastError(void)
{
    cudaError_t e = g_last;
    g_last = cudaSuccess;
    return e;
}

extern "C" cudaError_t cudaPeekAtLastError(void) { return g_last; }

extern "C" const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    default: return "cudaErrorUnknown";
    }
}

extern "C" const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    default: return "unknown error";
    }
}

/* ---- devices ---- */

static int device_count(void)
{
    const char *e = getenv("CUEMU_DEVICES");
    return e ? atoi(e) : 1;
}

static size_t capacity(void)
{
    const char *e = getenv("CUEMU_MEM_GB");
    double gb = e ? atof(e) : 16.0;
    return (size_t)(gb * 1073741824.0);
}

static const int k_sm_count = 2;

extern "C" cudaError_t cudaGetDeviceCount(int *count)
{
    if (!count) return fail(cudaErrorInvalidValue);
    *count = device_count();
    if (*count <= 0) {
        *count = 0;
        return fail(cudaErrorNoDevice);
    }
    return cudaSuccess;
}

extern "C" cudaError_t cudaGetDevice(int *dev)
{
    if (!dev) return fail(cudaErrorInvalidValue);
    if (device_count() <= 0) return fail(cudaErrorNoDevice);
    *dev = 0;
    return cudaSuccess;
}

extern "C" cudaError_t cudaSetDevice(int dev)
{
    return dev == 0 && device_count() > 0 ? cudaSuccess : fail(cudaErrorInvalidDevice);
}

extern "C" cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int dev)
{
    if (!value) return fail(cudaErrorInvalidValue);
    if (dev != 0 || device_count() <= 0) return fail(cudaErrorInvalidDevice);
    switch (attr) {
    case cudaDevAttrMultiProcessorCount: *value = k_sm_count; break;
    case cudaDevAttrMemoryClockRate: *value = 1000000; break;      /* kHz: 1 GHz */
    case cudaDevAttrGlobalMemoryBusWidth: *value = 128; break;     /* bits: 32 GB/s "peak" */
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = 48 * 1024; break;
    default: *value = 0; break;
    }
    return cudaSuccess;
}

extern "C" cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int dev)
{
    if (!prop) return fail(cudaErrorInvalidValue);
    if (dev != 0 || device_count() <= 0) return fail(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "cuemu (CPU emulation, not a GPU)");
    prop->totalGlobalMem = capacity();
    prop->multiProcessorCount = k_sm_count;
    prop->warpSize = 32;
    prop->maxThreadsPerBlock = 1024;
    prop->sharedMemPerBlock = 48 * 1024;
    prop->major = 9;
    prop->minor = 0;
    prop->memoryBusWidth = 128;
    return cudaSuccess;
}

/* ---- memory ---- */

struct alloc_rec {
    size_t bytes;
    int kind; /* 0 device, 1 pinned host, 2 __device__ symbol */
};

static std::mutex g_mem_lock;
static std::map<uintptr_t, alloc_rec> g_allocs;
static size_t g_used;

static const alloc_rec *find_alloc(const void *p, uintptr_t *base)
{
    uintptr_t a = (uintptr_t)p;
    auto it = g_allocs.upper_bound(a);
    if (it == g_allocs.begin()) return NULL;
    --it;
    if (a >= it->first + it->second.bytes && !(a == it->first && it->second.bytes == 0)) return NULL;
    *base = it->first;
    return &it->second;
}

extern "C" int cuemu_dev_range_ok(const void *p, size_t bytes)
{
    std::lock_guard<std::mutex> lock(g_mem_lock);
    uintptr_t base;
    const alloc_rec *r = find_alloc(p, &base);
    if (!r || r->kind == 1) return 0;
    return (uintptr_t)p + bytes <= base + r->bytes;
}

extern "C" void cuemu_register_symbol(const void *p, size_t bytes)
{
    std::lock_guard<std::mutex> lock(g_mem_lock);
    g_allocs[(uintptr_t)p] = alloc_rec{bytes, 2};
}

static cudaError_t do_alloc(void **p, size_t bytes, int kind)
{
    if (!p) return fail(cudaErrorInvalidValue);
    *p = NULL;
    if (device_count() <= 0) return fail(cudaErrorNoDevice);
    std::lock_guard<std::mutex> lock(g_mem_lock);
    if (kind == 0 && (bytes > capacity() || g_used + bytes > capacity()))
        return fail(cudaErrorMemoryAllocation);
    void *q = NULL;
    if (posix_memalign(&q, 256, bytes ? bytes : 1)) return fail(cudaErrorMemoryAllocation);
    memset(q, 0xA5, bytes); /* device memory is not zeroed by cudaMalloc */
    g_allocs[(uintptr_t)q] = alloc_rec{bytes, kind};
    if (kind == 0) g_used += bytes;
    *p = q;
    return cudaSuccess;
}

static cudaError_t do_free(void *p, int kind)
{
    if (!p) return cudaSuccess;
    std::lock_guard<std::mutex> lock(g_mem_lock);
    auto it = g_allocs.find((uintptr_t)p);
    if (it == g_allocs.end() || it->second.kind != kind)
        return fail(kind == 0 ? cudaErrorInvalidDevicePointer : cudaErrorInvalidValue);
    if (kind == 0) g_used -= it->second.bytes;
    g_allocs.erase(it);
    free(p);
    return cudaSuccess;
}

/* allocations and frees are synchronous: illegal during a stream capture (capture.cc) */
#define CAPTURE_SYNC_CHECK()                                      \
    do {                                                          \
        cudaError_t ce_ = cuemu_capture_check(nullptr, 1);        \
        if (ce_ != cudaSuccess) return fail(ce_);                 \
    } while (0)

extern "C" cudaError_t cudaMalloc(void **p, size_t bytes)
{
    CAPTURE_SYNC_CHECK();
    return do_alloc(p, bytes, 0);
}
extern "C" cudaError_t cudaFree(void *p)
{
    CAPTURE_SYNC_CHECK();
    return do_free(p, 0);
}
extern "C" cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned flags)
{
    (void)flags;
    CAPTURE_SYNC_CHECK();
    return do_alloc(p, bytes, 1);
}
extern "C" cudaError_t cudaMallocHost(void **p, size_t bytes)
{
    CAPTURE_SYNC_CHECK();
    return do_alloc(p, bytes, 1);
}
static void inflight_check_free(const void *p); /* below */
extern "C" cudaError_t cudaFreeHost(void *p)
{
    CAPTURE_SYNC_CHECK();
    inflight_check_free(p);
    return do_free(p, 1);
}

extern "C" cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b)
{
    if (device_count() <= 0) return fail(cudaErrorNoDevice);
    std::lock_guard<std::mutex> lock(g_mem_lock);
    if (free_b) *free_b = capacity() - g_used;
    if (total_b) *total_b = capacity();
    return cudaSuccess;
}

/* a device side of a copy must lie in one device allocation (or __device__ symbol) */
static int dev_ok(const void *p, size_t bytes) { return p && cuemu_dev_range_ok(p, bytes); }

static cudaError_t copy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind)
{
    if (!bytes) return cudaSuccess;
    if (!dst || !src) return fail(cudaErrorInvalidValue);
    int dd = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    int sd = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind == cudaMemcpyDefault) {
        dd = cuemu_dev_range_ok(dst, 1);
        sd = cuemu_dev_range_ok(src, 1);
    }
    if ((dd && !dev_ok(dst, bytes)) || (sd && !dev_ok(src, bytes))) {
        /* inside no allocation at all: what the runtime reports; straddling an allocation's end
           would be a fault on a GPU */
        int dst_in = cuemu_dev_range_ok(dst, 1), src_in = cuemu_dev_range_ok(src, 1);
        if ((dd && dst_in) || (sd && src_in))
            cuemu_fatal("cudaMemcpy", "%zu bytes run past the end of a device allocation "
                        "(dst %p, src %p, kind %d)", bytes, dst, src, (int)kind);
        return fail(cudaErrorInvalidValue);
    }
    memmove(dst, src, bytes);
    return cudaSuccess;
}

extern "C" cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind)
{
    CAPTURE_SYNC_CHECK();
    return copy(dst, src, bytes, kind);
}

static cudaError_t set_bytes(void *p, int v, size_t bytes)
{
    if (!bytes) return cudaSuccess;
    if (!dev_ok(p, bytes)) return fail(cudaErrorInvalidValue);
    memset(p, v, bytes);
    return cudaSuccess;
}

/* ---- in-flight sources of asynchronous copies from pinned memory ----
   On a GPU, cudaMemcpyAsync from pinned host memory reads the source later, on the stream; the
   host may write the source again only once it knows the copy is complete: an event recorded
   after it on its stream was synchronised, or its stream, or the device. Here the copy runs at the
   call, so writing the source too early changes nothing; instead the source's bytes are kept
   and compared when the copy becomes known complete (or its memory is freed): a difference is a
   race a GPU would have, reported and aborted like an overrun. Pageable sources are not tracked:
   the runtime has staged them before cudaMemcpyAsync returns. */
struct inflight_copy {
    cudaStream_t s;
    unsigned long long id;    /* g_copy_serial at the copy */
    const unsigned char *src;
    std::vector<unsigned char> bytes;
};
static std::mutex g_inflight_lock;
static std::vector<inflight_copy> g_inflight;
static unsigned long long g_copy_serial;

static int pinned_range(const void *p, size_t bytes)
{
    std::lock_guard<std::mutex> lock(g_mem_lock);
    uintptr_t base;
    const alloc_rec *r = find_alloc(p, &base);
    return r && r->kind == 1 && (uintptr_t)p + bytes <= base + r->bytes;
}

static void inflight_add(cudaStream_t s, const void *src, size_t bytes)
{
    std::lock_guard<std::mutex> lock(g_inflight_lock);
    const unsigned char *b = (const unsigned char *)src;
    g_inflight.push_back(inflight_copy{s, ++g_copy_serial, b, std::vector<unsigned char>(b, b + bytes)});
}

/* the copies that match are complete: their sources must hold what they held at the copy */
static void inflight_retire(const std::function<bool(const inflight_copy &)> &done, const char *at)
{
    std::lock_guard<std::mutex> lock(g_inflight_lock);
    for (size_t i = 0; i < g_inflight.size();) {
        const inflight_copy &c = g_inflight[i];
        if (!done(c)) {
            i++;
            continue;
        }
        if (memcmp(c.src, c.bytes.data(), c.bytes.size()) != 0)
            cuemu_fatal("cudaMemcpyAsync", "the pinned source %p (%zu bytes) of an asynchronous copy "
                        "was written before the copy was known complete (found at %s)",
                        (const void *)c.src, c.bytes.size(), at);
        g_inflight[i] = std::move(g_inflight.back());
        g_inflight.pop_back();
    }
}

/* pinned memory is freed: no copy from it may still be in flight */
static void inflight_check_free(const void *p)
{
    size_t bytes = 0;
    {
        std::lock_guard<std::mutex> lock(g_mem_lock);
        auto it = g_allocs.find((uintptr_t)p);
        if (it == g_allocs.end() || it->second.kind != 1) return;
        bytes = it->second.bytes;
    }
    std::lock_guard<std::mutex> lock(g_inflight_lock);
    const unsigned char *b = (const unsigned char *)p;
    for (const inflight_copy &c : g_inflight)
        if (c.src >= b && c.src < b + bytes)
            cuemu_fatal("cudaFreeHost", "pinned memory %p is freed while an asynchronous copy from it "
                        "(%zu bytes at %p) is not known complete", p, c.bytes.size(), (const void *)c.src);
}

/* the serial of the last copy issued so far (an event's position) */
static unsigned long long inflight_serial(void)
{
    std::lock_guard<std::mutex> lock(g_inflight_lock);
    return g_copy_serial;
}

/* asynchronous work on stream s: recorded while s captures (a replay that fails is a bug of
   the caller: the same call succeeded when it was recorded... or would have: cuemu checks the
   ranges at the replay and aborts) */
extern "C" cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes,
                                       enum cudaMemcpyKind kind, cudaStream_t s)
{
    cudaError_t ce = cuemu_capture_check(s, 0);
    if (ce != cudaSuccess) return fail(ce);
    cuemu_stat("cudaMemcpyAsync");
    if (cuemu_capturing(s)) {
        cuemu_record_fn(s, [dst, src, bytes, kind]() {
            if (copy(dst, src, bytes, kind) != cudaSuccess)
                cuemu_fatal("graph launch", "a recorded cudaMemcpyAsync of %zu bytes failed", bytes);
        });
        return cudaSuccess;
    }
    cudaError_t e = copy(dst, src, bytes, kind);
    if (e == cudaSuccess && bytes && (kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDefault) &&
        pinned_range(src, bytes))
        inflight_add(s, src, bytes);
    return e;
}

extern "C" cudaError_t cudaMemset(void *p, int v, size_t bytes)
{
    CAPTURE_SYNC_CHECK();
    return set_bytes(p, v, bytes);
}

extern "C" cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s)
{
    cudaError_t ce = cuemu_capture_check(s, 0);
    if (ce != cudaSuccess) return fail(ce);
    cuemu_stat("cudaMemsetAsync");
    if (cuemu_capturing(s)) {
        cuemu_record_fn(s, [p, v, bytes]() {
            if (set_bytes(p, v, bytes) != cudaSuccess)
                cuemu_fatal("graph launch", "a recorded cudaMemsetAsync of %zu bytes failed", bytes);
        });
        return cudaSuccess;
    }
    return set_bytes(p, v, bytes);
}

/* ---- streams and events (execution is synchronous) ---- */

struct CUstream_st { int magic; unsigned flags; };
struct CUevent_st {
    int magic;
    int recorded;
    unsigned capture;          /* serial of the capture that recorded it */
    cudaStream_t stream;       /* where it was last recorded */
    unsigned long long copies; /* the in-flight copy serial then: copies up to it precede it */
};

extern "C" cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
    if (!s) return fail(cudaErrorInvalidValue);
    *s = new CUstream_st{0x5eed, flags};
    return cudaSuccess;
}

extern "C" cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }

extern "C" cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    if (!s || s->magic != 0x5eed) return fail(cudaErrorInvalidResourceHandle);
    if (cuemu_capturing(s)) cuemu_fatal("cudaStreamDestroy", "the stream is capturing");
    s->magic = 0;
    delete s;
    return cudaSuccess;
}

static cudaError_t check_stream(cudaStream_t s)
{
    if (s && s != cudaStreamLegacy && s != cudaStreamPerThread && s->magic != 0x5eed)
        return fail(cudaErrorInvalidResourceHandle);
    return cudaSuccess;
}

extern "C" cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    CAPTURE_SYNC_CHECK();
    cudaError_t e = check_stream(s);
    if (e == cudaSuccess)
        inflight_retire([s](const inflight_copy &c) { return c.s == s; }, "cudaStreamSynchronize");
    return e;
}

extern "C" cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags)
{
    (void)flags;
    if (!e) return fail(cudaErrorInvalidValue);
    *e = new CUevent_st{0xe7e7, 0, 0, nullptr, 0};
    return cudaSuccess;
}

extern "C" cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, 0); }

static cudaError_t check_event(cudaEvent_t e)
{
    return e && e->magic == 0xe7e7 ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

extern "C" cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    if (check_event(e) != cudaSuccess) return cudaErrorInvalidResourceHandle;
    e->magic = 0;
    delete e;
    return cudaSuccess;
}

extern "C" cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
    if (check_event(e) != cudaSuccess || check_stream(s) != cudaSuccess)
        return cudaErrorInvalidResourceHandle;
    cudaError_t ce = cuemu_capture_check(s, 0);
    if (ce != cudaSuccess) return fail(ce);
    e->recorded = 1;
    e->capture = cuemu_capturing(s) ? cuemu_capture_serial() : 0;
    e->stream = s;
    e->copies = inflight_serial();
    return cudaSuccess;
}

extern "C" cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    if (check_event(e) != cudaSuccess) return cudaErrorInvalidResourceHandle;
    if (e->recorded) {
        const cudaStream_t s = e->stream;
        const unsigned long long upto = e->copies;
        inflight_retire([s, upto](const inflight_copy &c) { return c.s == s && c.id <= upto; },
                        "cudaEventSynchronize");
    }
    return cudaSuccess;
}

extern "C" cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b)
{
    if (!ms || check_event(a) != cudaSuccess || check_event(b) != cudaSuccess)
        return fail(cudaErrorInvalidValue);
    *ms = 0.0f;
    return cudaSuccess;
}

extern "C" cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags)
{
    (void)flags;
    if (check_stream(s) != cudaSuccess || check_event(e) != cudaSuccess)
        return cudaErrorInvalidResourceHandle;
    cudaError_t ce = cuemu_capture_check(s, 0);
    if (ce != cudaSuccess) return fail(ce);
    /* a capturing stream may only wait for an event recorded inside the same capture */
    if (cuemu_capturing(s) && e->capture != cuemu_capture_serial()) {
        cuemu_capture_invalidate(cudaErrorStreamCaptureIsolation);
        return fail(cudaErrorStreamCaptureIsolation);
    }
    return cudaSuccess;
}

extern "C" cudaError_t cudaDeviceSynchronize(void)
{
    CAPTURE_SYNC_CHECK();
    inflight_retire([](const inflight_copy &) { return true; }, "cudaDeviceSynchronize");
    return device_count() > 0 ? cudaSuccess : fail(cudaErrorNoDevice);
}

/* ---- CUDA graphs: stream capture (capture.cc) and replay ---- */

struct CUgraph_st { void *nodes; };
struct CUgraphExec_st { void *nodes; };

extern "C" cudaError_t cudaStreamBeginCapture(cudaStream_t s, enum cudaStreamCaptureMode mode)
{
    (void)mode;
    if (s == nullptr || s == cudaStreamLegacy) return fail(cudaErrorStreamCaptureUnsupported);
    if (check_stream(s) != cudaSuccess) return cudaErrorInvalidResourceHandle;
    const int blocking = s == cudaStreamPerThread ? 0 : !(s->flags & cudaStreamNonBlocking);
    return fail(cuemu_capture_begin(s, blocking));
}

extern "C" cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *graph)
{
    if (!graph) return fail(cudaErrorInvalidValue);
    *graph = nullptr;
    void *nodes = nullptr;
    cudaError_t e = cuemu_capture_end(s, &nodes);
    if (e != cudaSuccess) return fail(e);
    *graph = new CUgraph_st{nodes};
    return cudaSuccess;
}

extern "C" cudaError_t cudaStreamIsCapturing(cudaStream_t s, enum cudaStreamCaptureStatus *status)
{
    if (!status) return fail(cudaErrorInvalidValue);
    int c = cuemu_capture_status(s);
    *status = c == 0 ? cudaStreamCaptureStatusNone
                     : (c == 1 ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusInvalidated);
    return cudaSuccess;
}

extern "C" cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph,
                                            unsigned long long flags)
{
    (void)flags;
    if (!exec || !graph) return fail(cudaErrorInvalidValue);
    *exec = new CUgraphExec_st{cuemu_graph_copy(graph->nodes)};
    return cudaSuccess;
}

extern "C" cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s)
{
    if (!exec) return fail(cudaErrorInvalidValue);
    if (check_stream(s) != cudaSuccess) return cudaErrorInvalidResourceHandle;
    cudaError_t ce = cuemu_capture_check(s, 0);
    if (ce != cudaSuccess) return fail(ce);
    if (cuemu_capturing(s)) cuemu_fatal("cudaGraphLaunch", "graph launch into a capturing stream");
    cuemu_stat("cudaGraphLaunch");
    cuemu_graph_run(exec->nodes);
    return cudaSuccess;
}

extern "C" cudaError_t cudaGraphDestroy(cudaGraph_t graph)
{
    if (!graph) return fail(cudaErrorInvalidValue);
    cuemu_graph_free(graph->nodes);
    delete graph;
    return cudaSuccess;
}

extern "C" cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec)
{
    if (!exec) return fail(cudaErrorInvalidValue);
    cuemu_graph_free(exec->nodes);
    delete exec;
    return cudaSuccess;
}

/* ---- kernel executor ---- */

enum { F_READY, F_WAIT_BLOCK, F_WAIT_WARP, F_DONE };

struct fiber {
    jmp_buf env;      /* where the fiber resumes */
    ucontext_t uc;    /* its first entry only */
    int started;
    int state;
    uint3 tid;
    unsigned char val[8];
    unsigned bytes;
    unsigned mask;
    int src;
};

static jmp_buf g_sched;
static fiber *g_fib;
static int g_nfib_cap;
static char *g_stacks;
static const size_t k_stack = 256 * 1024;
static int g_cur;
static void (*g_fn)(void *);
static void *g_ctx;
static const char *g_kname;
static int g_in_kernel;

extern "C" int cuemu_lane(void) { return g_cur & 31; }

/* A fiber slot is entered once through makecontext/swapcontext and then lives for the whole
   process: it runs the body of one thread after another, and every switch (a barrier, the end of
   a thread, a resume) is a _setjmp/_longjmp pair, which unlike swapcontext makes no system call. */
/* AddressSanitizer builds (tests/cuemu/README.md, memcheck under emulation) must be told of
   every switch between the scheduler's stack and a fiber's */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
static const void *g_main_bottom;
static size_t g_main_size;
#define TO_FIBER(t) __sanitizer_start_switch_fiber(NULL, g_stacks + (size_t)(t) * k_stack, k_stack)
#define TO_SCHED() __sanitizer_start_switch_fiber(NULL, g_main_bottom, g_main_size)
#define IN_FIBER() __sanitizer_finish_switch_fiber(NULL, &g_main_bottom, &g_main_size)
#define IN_SCHED() __sanitizer_finish_switch_fiber(NULL, NULL, NULL)
#else
#define TO_FIBER(t) ((void)0)
#define TO_SCHED() ((void)0)
#define IN_FIBER() ((void)0)
#define IN_SCHED() ((void)0)
#endif

static void fiber_main(void)
{
    IN_FIBER();
    for (;;) {
        g_fn(g_ctx);
        fiber *f = &g_fib[g_cur];
        f->state = F_DONE;
        if (!_setjmp(f->env)) {
            TO_SCHED();
            _longjmp(g_sched, 1);
        }
        IN_FIBER();
    }
}

static void yield_to_scheduler(void)
{
    if (!_setjmp(g_fib[g_cur].env)) {
        TO_SCHED();
        _longjmp(g_sched, 1);
    }
    IN_FIBER();
}

static void resume(int t)
{
    fiber *f = &g_fib[t];
    g_cur = t;
    cuemu_threadIdx = f->tid;
    if (_setjmp(g_sched)) {
        IN_SCHED();
        return;
    }
    TO_FIBER(t);
    if (f->started) _longjmp(f->env, 1);
    f->started = 1;
    ucontext_t here;
    swapcontext(&here, &f->uc); /* never returns here: the fiber comes back by _longjmp */
    cuemu_fatal(g_kname, "fiber %d returned to its creator", t);
}

extern "C" void cuemu_syncthreads(void)
{
    if (!g_in_kernel) cuemu_fatal("__syncthreads", "called outside a kernel");
    g_fib[g_cur].state = F_WAIT_BLOCK;
    yield_to_scheduler();
}

extern "C" void cuemu_shfl(void *v, unsigned bytes, unsigned mask, int src, int width)
{
    if (!g_in_kernel) cuemu_fatal("warp shuffle", "called outside a kernel");
    (void)width;
    fiber *f = &g_fib[g_cur];
    memcpy(f->val, v, bytes);
    f->bytes = bytes;
    f->mask = mask;
    f->src = src;
    f->state = F_WAIT_WARP;
    yield_to_scheduler();
    memcpy(v, f->val, bytes);
}

static int order_reverse(void)
{
    const char *e = getenv("CUEMU_ORDER");
    return e && !strcmp(e, "reverse");
}

/* releases, in every warp, the lanes waiting at a shuffle whose mask's lanes all wait at a
   shuffle too (the other lanes of the warp may be anywhere); returns how many were released */
static int release_warps(int nt, const dim3 &bi)
{
    int released = 0;
    for (int w0 = 0; w0 < nt; w0 += 32) {
        int w1 = w0 + 32 < nt ? w0 + 32 : nt;
        unsigned waiting = 0;
        for (int t = w0; t < w1; t++)
            if (g_fib[t].state == F_WAIT_WARP) waiting |= 1u << (t - w0);
        if (!waiting) continue;
        unsigned char snap[32][8];
        unsigned go = 0;
        for (int t = w0; t < w1; t++) {
            fiber *f = &g_fib[t];
            if (!((waiting >> (t - w0)) & 1u)) continue;
            memcpy(snap[t - w0], f->val, 8);
            for (int l = 0; l < 32; l++) {
                if (!((f->mask >> l) & 1u)) continue;
                int u = w0 + l;
                if (u >= w1 || g_fib[u].state == F_DONE)
                    cuemu_fatal(g_kname, "block (%u,%u,%u) thread %d: warp shuffle/sync with mask "
                                "0x%08x but lane %d %s (undefined on a GPU)", bi.x, bi.y, bi.z, t,
                                f->mask, l, u >= w1 ? "does not exist" : "has exited");
            }
            if ((f->mask & waiting) == f->mask) go |= 1u << (t - w0);
        }
        for (int t = w0; t < w1; t++) {
            fiber *f = &g_fib[t];
            if (!((go >> (t - w0)) & 1u)) continue;
            int s = f->src;
            if (s >= 0 && s < w1 - w0 && ((waiting >> s) & 1u) && ((f->mask >> s) & 1u)) {
                if (g_fib[w0 + s].bytes != f->bytes)
                    cuemu_fatal(g_kname, "lanes %d and %d shuffle values of different sizes", t, w0 + s);
                memcpy(f->val, snap[s], f->bytes);
            } else if (s >= 0) {
                cuemu_fatal(g_kname, "thread %d reads lane %d outside the shuffle's mask 0x%08x", t,
                            s, f->mask);
            }
            f->state = F_READY;
            released++;
        }
    }
    return released;
}

static void run_block(const dim3 &bi, const dim3 &bd, int nt, int rev)
{
    for (int t = 0; t < nt; t++) {
        fiber *f = &g_fib[t];
        f->state = F_READY;
        f->tid.x = t % bd.x;
        f->tid.y = (t / bd.x) % bd.y;
        f->tid.z = t / (bd.x * bd.y);
        if (!f->started) {
            getcontext(&f->uc);
            f->uc.uc_stack.ss_sp = g_stacks + (size_t)t * k_stack;
            f->uc.uc_stack.ss_size = k_stack;
            f->uc.uc_link = NULL;
            makecontext(&f->uc, fiber_main, 0);
        }
    }
    for (;;) {
        int done = 0;
        for (int i = 0; i < nt; i++) {
            int t = rev ? nt - 1 - i : i;
            fiber *f = &g_fib[t];
            if (f->state == F_READY) resume(t);
        }
        for (int t = 0; t < nt; t++) done += g_fib[t].state == F_DONE;
        if (done == nt) return;
        if (release_warps(nt, bi)) continue;
        int at_block = 0;
        for (int t = 0; t < nt; t++) at_block += g_fib[t].state == F_WAIT_BLOCK;
        if (at_block == nt - done) {
            for (int t = 0; t < nt; t++)
                if (g_fib[t].state == F_WAIT_BLOCK) g_fib[t].state = F_READY;
            continue;
        }
        cuemu_fatal(g_kname, "block (%u,%u,%u) deadlocks: %d threads wait at __syncthreads while "
                    "others wait at a warp shuffle (divergent barrier; hangs on a GPU)",
                    bi.x, bi.y, bi.z, at_block);
    }
}

/* CUEMU_STATS=1: call counts by name (names are string literals: compared by address first) */
static struct stat_row {
    const char *name;
    unsigned long long n;
} g_stats[512];
static int g_nstats, g_stats_on = -1;

static void stats_print(void)
{
    unsigned long long tot = 0;
    for (int i = 0; i < g_nstats; i++) tot += g_stats[i].n;
    fprintf(stderr, "cuemu stats: %llu calls\n", tot);
    for (int i = 0; i < g_nstats; i++) fprintf(stderr, "  %10llu  %s\n", g_stats[i].n, g_stats[i].name);
}

extern "C" void cuemu_stat(const char *what)
{
    if (g_stats_on < 0) {
        const char *e = getenv("CUEMU_STATS");
        g_stats_on = e && e[0] == '1';
        if (g_stats_on) atexit(stats_print);
    }
    if (!g_stats_on) return;
    int i = 0;
    while (i < g_nstats && g_stats[i].name != what && strcmp(g_stats[i].name, what)) i++;
    if (i == g_nstats) {
        if (g_nstats == 512) return;
        g_stats[g_nstats++].name = what;
    }
    g_stats[i].n++;
}

extern "C" void cuemu_launch(dim3 grid, dim3 block, size_t shmem, cudaStream_t stream,
                             void (*fn)(void *), void *ctx, const char *name)
{
    cuemu_stat(name);
    unsigned long long nt = (unsigned long long)block.x * block.y * block.z;
    if (!nt || nt > 1024 || block.z > 64 || !grid.x || !grid.y || !grid.z || grid.y > 65535 ||
        grid.z > 65535 || shmem > 48 * 1024) {
        fail(cudaErrorInvalidConfiguration);
        return;
    }
    if (check_stream(stream) != cudaSuccess) return;
    if (cuemu_capture_check(stream, 0) != cudaSuccess) { /* the legacy stream during a capture */
        fail(cudaErrorStreamCaptureImplicit);
        return;
    }
    if (g_in_kernel) cuemu_fatal(name, "launched from inside a kernel");
    if ((int)nt > g_nfib_cap) {
        if (g_stacks) munmap(g_stacks, (size_t)g_nfib_cap * k_stack);
        g_stacks = (char *)mmap(NULL, (size_t)nt * k_stack, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (g_stacks == MAP_FAILED) cuemu_fatal(name, "no memory for %llu fiber stacks", nt);
        free(g_fib);
        g_fib = (fiber *)calloc(nt, sizeof(fiber)); /* started = 0: fresh stacks */
        g_nfib_cap = (int)nt;
    }
    g_fn = fn;
    g_ctx = ctx;
    g_kname = name;
    g_in_kernel = 1;
    cuemu_blockDim = block;
    cuemu_gridDim = grid;
    int rev = order_reverse();
    unsigned long long nb = (unsigned long long)grid.x * grid.y * grid.z;
    for (unsigned long long i = 0; i < nb; i++) {
        unsigned long long b = rev ? nb - 1 - i : i;
        dim3 bi((unsigned)(b % grid.x), (unsigned)((b / grid.x) % grid.y),
                (unsigned)(b / ((unsigned long long)grid.x * grid.y)));
        cuemu_blockIdx.x = bi.x;
        cuemu_blockIdx.y = bi.y;
        cuemu_blockIdx.z = bi.z;
        run_block(bi, block, (int)nt, rev);
    }
    g_in_kernel = 0;
}
