/* context.c: the CUDA backend's context (context.h): one-time set-up of the device, compute
   stream, reduction scratch and library handles; the options in force; the sticky error record
   behind CUDA_CHECK & co. (cuda_check.h); the host profile. Below the op families: it includes
   none of their headers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "context.h"

/* ---- sticky error record ---- */

static sq_status g_status = SQ_OK;
static char g_status_msg[1024];
static unsigned g_error_count;
static unsigned g_mark;
static char g_mark_msg[1024];

void sq_cuda_fail(sq_status st, const char *lib, int code, const char *msg, const char *stmt,
                  const char *file, int line)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s error %d (%s) in `%s` at %s:%d", lib, code, msg ? msg : "?",
             stmt, file, line);
    sq_set_error("%s", buf);
    g_error_count++;
    if (g_error_count == g_mark + 1) snprintf(g_mark_msg, sizeof g_mark_msg, "%s", buf);
    /* a failed runtime call also sets the runtime's last error, which the next launch check
       (cudaGetLastError) would report again and blame on an innocent kernel: consume it */
    if (!strcmp(lib, "CUDA")) (void)cudaGetLastError();
    if (g_status == SQ_OK) {
        g_status = st;
        snprintf(g_status_msg, sizeof g_status_msg, "%s", buf);
    }
}

sq_status sq_cuda_last_status(void)
{
    if (g_status != SQ_OK) sq_set_error("%s", g_status_msg);
    return g_status;
}

void sq_cuda_clear_status(void)
{
    g_status = SQ_OK;
    g_status_msg[0] = 0;
}

unsigned sq_cuda_error_count(void) { return g_error_count; }

sq_status sq_cuda_peek_status(void) { return g_status; }

void sq_cuda_mark_errors(void)
{
    g_mark = g_error_count;
    g_mark_msg[0] = 0;
}

const char *sq_cuda_first_error_since_mark(void) { return g_mark_msg; }

void sq_cuda_bug(const char *msg, const char *file, int line)
{
    fprintf(stderr, "sqakd: internal error in the CUDA backend: %s (%s:%d)\n", msg, file, line);
    abort();
}

/* ---- options ---- */

static sq_backend_opts g_opts = SQ_BACKEND_OPTS_DEFAULT;
static int g_conv_planned; /* a convolution shape was planned with g_opts' conv options */

static double g_hprof_s[SQ_HPROF_COUNT];
static long g_hprof_n[SQ_HPROF_COUNT];
static int g_hprof_printer; /* atexit printer registered */

static void hprof_print(void)
{
    static const char *names[SQ_HPROF_COUNT] = {"cudnnConvolutionForward",
                                                "cudnnConvolutionBackwardData",
                                                "cudnnConvolutionBackwardFilter",
                                                "cudnn 16-bit teacher convolution",
                                                "conv bias kernel launch"};
    for (int i = 0; i < SQ_HPROF_COUNT; i++)
        if (g_hprof_n[i])
            fprintf(stderr, "host profile: %-34s %8ld calls %10.2f ms host time %7.2f us/call\n",
                    names[i], g_hprof_n[i], 1e3 * g_hprof_s[i], 1e6 * g_hprof_s[i] / g_hprof_n[i]);
}

sq_status sq_cuda_configure(const sq_backend_opts *o)
{
    static const char *const names[] = {"graph", "stage", "tf32", "conv-algo", "deterministic",
                                        "host-profile"};
    const int v[] = {o->cuda_graph, o->stage, o->tf32, o->conv_find, o->conv_deterministic,
                     o->host_profile};
    for (int i = 0; i < 6; i++)
        if (v[i] != 0 && v[i] != 1) {
            sq_set_error("backend option %s: %d is not 0 or 1", names[i], v[i]);
            return SQ_EARG;
        }
    if (g_conv_planned) {
        const char *changed = o->tf32 != g_opts.tf32                     ? "tf32"
                              : o->conv_find != g_opts.conv_find         ? "conv-algo"
                              : o->conv_deterministic != g_opts.conv_deterministic ? "deterministic"
                                                                         : NULL;
        if (changed) {
            sq_set_error("backend option %s cannot change once the CUDA backend has planned a "
                         "convolution (its plans keep the setting they were built with): "
                         "configure the backend before its first op", changed);
            return SQ_EARG;
        }
    }
    g_opts = *o;
    if (g_opts.host_profile && !g_hprof_printer) {
        g_hprof_printer = 1;
        atexit(hprof_print);
    }
    return SQ_OK;
}

const sq_backend_opts *sq_cuda_options(void) { return &g_opts; }

void sq_cuda_conv_options_used(void) { g_conv_planned = 1; }

/* ---- host profile ---- */

int sq_cuda_hprof_on(void) { return g_opts.host_profile; }

void sq_cuda_hprof_add(int what, double t0)
{
    g_hprof_s[what] += sq_now() - t0;
    g_hprof_n[what]++;
}

/* ---- device, stream, scratch, handles ---- */

static int g_sm_count = 1;
static double *g_partials;
static unsigned *g_counter;
static cudaStream_t g_stream;
static cublasHandle_t g_cublas;
static void *g_cublas_ws;
static cudnnHandle_t g_cudnn;
#define SQ_CUBLAS_WS (32 << 20) /* cuBLAS's own default on Hopper */

int sq_cuda_sm_count(void) { return g_sm_count; }
cudaStream_t sq_cuda_stream(void) { return g_stream; }
double *sq_cuda_partials(void) { return g_partials; }
unsigned *sq_cuda_counter(void) { return g_counter; }
cublasHandle_t sq_cuda_cublas(void) { return g_cublas; }
cudnnHandle_t sq_cuda_cudnn(void) { return g_cudnn; }

/* the test cap on streaming grids (tests/cuda_hooks.h); 0: none */
static unsigned g_grid_cap;

unsigned sq_cuda_grid_cap(int reducing)
{
    const unsigned limit = reducing ? SQ_CUDA_FLAT_MAX_BLOCKS : 0x7fffffffu;
    return g_grid_cap && g_grid_cap < limit ? g_grid_cap : limit;
}

void sq_cuda_grid_cap_set(unsigned cap) { g_grid_cap = cap; }

void sq_cuda_device_info(sq_device_info *info)
{
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "cuda");
    info->multiprocessors = g_sm_count;
    int dev = 0, clock_khz = 0, bus_bits = 0;
    struct cudaDeviceProp prop;
    if (cudaGetDevice(&dev) != cudaSuccess) {
        (void)cudaGetLastError();
        return;
    }
    if (cudaGetDeviceProperties(&prop, dev) == cudaSuccess) {
        memcpy(info->name, prop.name, sizeof info->name - 1); /* prop.name is 256 bytes */
        info->name[sizeof info->name - 1] = 0;
    } else {
        (void)cudaGetLastError();
    }
    if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, dev) != cudaSuccess) {
        (void)cudaGetLastError();
        return;
    }
    /* double data rate: two transfers per clock */
    info->peak_gbps = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;
}

static sq_status cublas_init(void)
{
    cublasStatus_t st = cublasCreate(&g_cublas);
    if (st != CUBLAS_STATUS_SUCCESS) {
        g_cublas = NULL;
        sq_set_error("cuBLAS unusable: cublasCreate failed (%s); check the CUDA driver and the "
                     "cuBLAS installation", cublasGetStatusString(st));
        return SQ_EDEVICE;
    }
    unsigned before = sq_cuda_error_count();
    CUBLAS_CHECK(cublasSetMathMode(g_cublas, CUBLAS_DEFAULT_MATH));
    CUBLAS_CHECK(cublasSetPointerMode(g_cublas, CUBLAS_POINTER_MODE_HOST));
    CUBLAS_CHECK(cublasSetStream(g_cublas, g_stream));
    /* a workspace of our own: cuBLAS would otherwise take one from the stream's pool at its first
       call on the stream, which a CUDA-graph capture (graph.c) must not do */
    if (cudaMalloc(&g_cublas_ws, SQ_CUBLAS_WS) != cudaSuccess) {
        (void)cudaGetLastError();
        g_cublas_ws = NULL;
        sq_set_error("cuBLAS unusable: no device memory for its %d MiB workspace", SQ_CUBLAS_WS >> 20);
        return SQ_EDEVICE;
    }
    CUBLAS_CHECK(cublasSetWorkspace(g_cublas, g_cublas_ws, SQ_CUBLAS_WS));
    return sq_cuda_error_count() == before ? SQ_OK : SQ_EDEVICE;
}

static sq_status cudnn_init(void)
{
    cudnnStatus_t st = cudnnCreate(&g_cudnn);
    if (st != CUDNN_STATUS_SUCCESS) {
        g_cudnn = NULL;
        sq_set_error("cuDNN unusable: cudnnCreate failed (%s); check that libcudnn 9 matches the "
                     "CUDA driver", cudnnGetErrorString(st));
        return SQ_EDEVICE;
    }
    if ((st = cudnnSetStream(g_cudnn, g_stream)) != CUDNN_STATUS_SUCCESS) {
        sq_set_error("cuDNN unusable: cudnnSetStream failed (%s)", cudnnGetErrorString(st));
        return SQ_EDEVICE;
    }
    return SQ_OK;
}

static int g_local_rank = -1;

void sq_backend_cuda_local_rank(int local_rank) { g_local_rank = local_rank; }

sq_status sq_cuda_context_init(void)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        sq_set_error("no CUDA device: %s", cudaGetErrorString(e));
        return SQ_EDEVICE;
    }
    if (count == 0) {
        sq_set_error("no CUDA device: cudaGetDeviceCount found 0 devices");
        return SQ_EDEVICE;
    }
    /* a data-parallel rank: one GPU of its node each (backend.h) */
    if (g_local_rank >= 0 && (e = cudaSetDevice(g_local_rank % count)) != cudaSuccess) {
        sq_set_error("CUDA device %d (local rank %d of %d GPUs): %s", g_local_rank % count, g_local_rank, count,
                     cudaGetErrorString(e));
        return SQ_EDEVICE;
    }
    int dev = 0;
    if ((e = cudaGetDevice(&dev)) != cudaSuccess ||
        (e = cudaDeviceGetAttribute(&g_sm_count, cudaDevAttrMultiProcessorCount, dev)) !=
            cudaSuccess) {
        sq_set_error("no CUDA device: %s", cudaGetErrorString(e));
        return SQ_EDEVICE;
    }
    if (g_sm_count < 1) g_sm_count = 1;
    size_t pbytes = (size_t)SQ_CUDA_PARTIAL_DOUBLES * sizeof(double);
    if ((e = cudaStreamCreateWithFlags(&g_stream, cudaStreamDefault)) != cudaSuccess ||
        (e = cudaMalloc((void **)&g_partials, pbytes)) != cudaSuccess ||
        (e = cudaMalloc((void **)&g_counter, sizeof(unsigned))) != cudaSuccess ||
        (e = cudaMemset(g_counter, 0, sizeof(unsigned))) != cudaSuccess) {
        sq_set_error("CUDA device unusable: %s", cudaGetErrorString(e));
        return SQ_EDEVICE;
    }
    if (cublas_init() != SQ_OK || cudnn_init() != SQ_OK) return SQ_EDEVICE;
    return SQ_OK;
}
