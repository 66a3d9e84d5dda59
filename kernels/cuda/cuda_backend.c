/* cuda_backend.c: the CUDA backend's op table, its one-time initialisation (device check, cuBLAS
   and cuDNN handles, reduction scratch) and the sticky error record behind CUDA_CHECK & co. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuda_ops.h"

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

/* ---- SQAKD_HOST_PROFILE=1: host wall time spent inside the cuDNN convolution calls (and, for
   comparison, in the launch of our convolution bias kernel) ----
   (the calls are asynchronous: this is the CPU cost of issuing them, which bounds a step's speed
   when the GPU finishes its work faster than the host can queue it). Printed to stderr at exit. */

static int g_hprof = -1;
static double g_hprof_s[SQ_HPROF_COUNT];
static long g_hprof_n[SQ_HPROF_COUNT];

static void hprof_print(void)
{
    static const char *names[SQ_HPROF_COUNT] = {"cudnnConvolutionForward",
                                                "cudnnConvolutionBackwardData",
                                                "cudnnConvolutionBackwardFilter",
                                                "cudnn 16-bit teacher convolution",
                                                "conv bias kernel launch",
                                                "cudnnBackendExecute (all directions)"};
    for (int i = 0; i < SQ_HPROF_COUNT; i++)
        if (g_hprof_n[i])
            fprintf(stderr, "host profile: %-34s %8ld calls %10.2f ms host time %7.2f us/call\n",
                    names[i], g_hprof_n[i], 1e3 * g_hprof_s[i], 1e6 * g_hprof_s[i] / g_hprof_n[i]);
}

int sq_cuda_hprof_on(void)
{
    if (g_hprof < 0) {
        const char *e = getenv("SQAKD_HOST_PROFILE");
        g_hprof = e && e[0] == '1';
        if (g_hprof) atexit(hprof_print);
    }
    return g_hprof;
}

void sq_cuda_hprof_add(int what, double t0)
{
    g_hprof_s[what] += sq_now() - t0;
    g_hprof_n[what]++;
}

/* ---- context ---- */

static int g_sm_count = 1;
static double *g_partials;
static unsigned *g_counter;
static cudaStream_t g_stream;

int sq_cuda_sm_count(void) { return g_sm_count; }

/* the streaming kernels' launch geometry (cuda_ops.h, SQAKD_GRID): SQ_GRID_*; -1: not read yet */
static int g_grid = -1;
static unsigned g_flat_cap = SQ_CUDA_FLAT_MAX_BLOCKS; /* reducing launches */
static unsigned g_flat_ew_cap = 0x7fffffffu;          /* elementwise: the grid's x limit */

int sq_cuda_grid_mode(void)
{
    if (g_grid < 0) {
        const char *e = getenv("SQAKD_GRID");
        g_grid = SQ_GRID_AUTO;
        if (e && !strcmp(e, "stride")) g_grid = SQ_GRID_STRIDE;
        else if (e && !strcmp(e, "flat")) g_grid = SQ_GRID_FLAT;
        else if (e && *e && strcmp(e, "auto"))
            fprintf(stderr, "sqakd: SQAKD_GRID=%s is not auto, stride or flat; using auto\n", e);
    }
    return g_grid;
}

unsigned sq_cuda_flat_cap(int reducing) { return reducing ? g_flat_cap : g_flat_ew_cap; }

/* SQAKD_REDUCE_BLOCKS=N (benchmarks only): every reducing launch takes at most N blocks,
   whatever SQAKD_GRID says; 0: unset */
unsigned sq_cuda_reduce_blocks(void)
{
    static long v = -1;
    if (v < 0) {
        const char *e = getenv("SQAKD_REDUCE_BLOCKS");
        char *end = NULL;
        v = e && *e ? strtol(e, &end, 10) : 0;
        if (e && *e && (*end || v < 0 || v > SQ_CUDA_FLAT_MAX_BLOCKS)) {
            fprintf(stderr, "sqakd: SQAKD_REDUCE_BLOCKS=%s is not a block count in 0..%d; ignored\n",
                    e, SQ_CUDA_FLAT_MAX_BLOCKS);
            v = 0;
        }
    }
    return (unsigned)v;
}

void sq_cuda_grid_set(int mode, unsigned cap)
{
    g_grid = mode == SQ_GRID_STRIDE || mode == SQ_GRID_FLAT ? mode : SQ_GRID_AUTO;
    g_flat_cap = cap && cap < SQ_CUDA_FLAT_MAX_BLOCKS ? cap : SQ_CUDA_FLAT_MAX_BLOCKS;
    g_flat_ew_cap = cap ? cap : 0x7fffffffu;
}

const char *sq_cuda_grid_name(void)
{
    static const char *names[] = {"stride", "flat", "auto"};
    return names[sq_cuda_grid_mode()];
}

cudaStream_t sq_cuda_stream(void) { return g_stream; }
double *sq_cuda_partials(void) { return g_partials; }
unsigned *sq_cuda_counter(void) { return g_counter; }

static const sq_backend g_cuda = {
    .name = "cuda",
    .is_device = 1,
    .alloc = sq_cuda_alloc,
    .free = sq_cuda_free,
    .memset0 = sq_cuda_memset0,
    .copy_h2d = sq_cuda_copy_h2d,
    .copy_d2h = sq_cuda_copy_d2h,
    .copy_d2d = sq_cuda_copy_d2d,
    .sync = sq_cuda_sync,
    .set_threads = sq_cuda_set_threads,
    .conv_ws_bytes = sq_cuda_conv_ws_bytes,
    .conv2d_fwd = sq_cuda_conv2d_fwd,
    .conv2d_bwd = sq_cuda_conv2d_bwd,
    .bn_fwd_train = sq_cuda_bn_fwd_train,
    .bn_fwd_eval = sq_cuda_bn_fwd_eval,
    .bn_bwd = sq_cuda_bn_bwd,
    .act_fwd = sq_cuda_act_fwd,
    .act_bwd = sq_cuda_act_bwd,
    .add_fwd = sq_cuda_add_fwd,
    .axpy = sq_cuda_axpy,
    .scale = sq_cuda_scale,
    .fill = sq_cuda_fill,
    .pool_fwd = sq_cuda_pool_fwd,
    .pool_bwd = sq_cuda_pool_bwd,
    .gap_fwd = sq_cuda_gap_fwd,
    .gap_bwd = sq_cuda_gap_bwd,
    .linear_fwd = sq_cuda_linear_fwd,
    .linear_bwd = sq_cuda_linear_bwd,
    .shortcut_a_fwd = sq_cuda_shortcut_a_fwd,
    .shortcut_a_bwd = sq_cuda_shortcut_a_bwd,
    .concat_fwd = sq_cuda_concat_fwd,
    .concat_bwd = sq_cuda_concat_bwd,
    .shuffle_fwd = sq_cuda_shuffle_fwd,
    .shuffle_bwd = sq_cuda_shuffle_bwd,
    .dropout_fwd = sq_cuda_dropout_fwd,
    .dropout_bwd = sq_cuda_dropout_bwd,
    .softmax_ce = sq_cuda_softmax_ce,
    .kl_fwd_bwd = sq_cuda_kl_fwd_bwd,
    .argmax = sq_cuda_argmax,
    .fakequant_fwd = sq_cuda_fakequant_fwd,
    .fakequant_bwd = sq_cuda_fakequant_bwd,
    .absscale_fwd = sq_cuda_absscale_fwd,
    .absscale_bwd = sq_cuda_absscale_bwd,
    .bn_act_fwd_train = sq_cuda_bn_act_fwd_train,
    .bn_act_bwd = sq_cuda_bn_act_bwd,
    .add_act_fwd = sq_cuda_add_act_fwd,
    .add_act_bwd = sq_cuda_add_act_bwd,
    .bn_add_act_fwd_train = sq_cuda_bn_add_act_fwd_train,
    .bn_add_act_bwd = sq_cuda_bn_add_act_bwd,
    .fakequant_scaled_fwd = sq_cuda_fakequant_scaled_fwd,
    .bias_add_act_fwd = sq_cuda_bias_add_act_fwd,
    .conv2d_bwd_set = sq_cuda_conv2d_bwd_set,
    .bn_bwd_set = sq_cuda_bn_bwd_set,
    .bn_act_bwd_set = sq_cuda_bn_act_bwd_set,
    .bn_add_act_bwd_set = sq_cuda_bn_add_act_bwd_set,
    .fakequant_scaled_bwd = sq_cuda_fakequant_scaled_bwd,
    .sgd_step = sq_cuda_sgd_step,
    .adam_step = sq_cuda_adam_step,
    .mem_info = sq_cuda_mem_info,
    .stage_new = sq_cuda_stage_new,
    .stage_put = sq_cuda_stage_put,
    .stage_free = sq_cuda_stage_free,
    .graph_begin = sq_cuda_graph_begin,
    .graph_end = sq_cuda_graph_end,
    .graph_run = sq_cuda_graph_run,
    .graph_free = sq_cuda_graph_free,
    .to16 = sq_cuda_to16,
    .from16 = sq_cuda_from16,
    .conv16_ws_bytes = sq_cuda_conv16_ws_bytes,
    .conv16_fwd = sq_cuda_conv16_fwd,
    .act16_fwd = sq_cuda_act16_fwd,
    .add16_fwd = sq_cuda_add16_fwd,
    .pool16_fwd = sq_cuda_pool16_fwd,
    .gap16_fwd = sq_cuda_gap16_fwd,
    .shortcut_a16_fwd = sq_cuda_shortcut_a16_fwd,
};

/* 0 = not tried, 1 = ready, -1 = failed (message kept, returned again on every call) */
static int g_state;
static char g_init_msg[1024];

static int cuda_init(void)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        snprintf(g_init_msg, sizeof g_init_msg, "no CUDA device: %s", cudaGetErrorString(e));
        return -1;
    }
    if (count == 0) {
        snprintf(g_init_msg, sizeof g_init_msg, "no CUDA device: cudaGetDeviceCount found 0 devices");
        return -1;
    }
    int dev = 0;
    if ((e = cudaGetDevice(&dev)) != cudaSuccess ||
        (e = cudaDeviceGetAttribute(&g_sm_count, cudaDevAttrMultiProcessorCount, dev)) !=
            cudaSuccess) {
        snprintf(g_init_msg, sizeof g_init_msg, "no CUDA device: %s", cudaGetErrorString(e));
        return -1;
    }
    if (g_sm_count < 1) g_sm_count = 1;
    size_t pbytes = (size_t)SQ_CUDA_PARTIAL_DOUBLES * sizeof(double);
    if ((e = cudaStreamCreateWithFlags(&g_stream, cudaStreamDefault)) != cudaSuccess ||
        (e = cudaMalloc((void **)&g_partials, pbytes)) != cudaSuccess ||
        (e = cudaMalloc((void **)&g_counter, sizeof(unsigned))) != cudaSuccess ||
        (e = cudaMemset(g_counter, 0, sizeof(unsigned))) != cudaSuccess) {
        snprintf(g_init_msg, sizeof g_init_msg, "CUDA device unusable: %s", cudaGetErrorString(e));
        return -1;
    }
    if (sq_cuda_cublas_init() != SQ_OK || sq_cuda_cudnn_init() != SQ_OK) {
        snprintf(g_init_msg, sizeof g_init_msg, "%s", sq_last_error());
        return -1;
    }
    return 1;
}

const sq_backend *sq_backend_cuda(void)
{
    if (g_state == 0) g_state = cuda_init();
    if (g_state < 0) {
        sq_set_error("%s", g_init_msg);
        return NULL;
    }
    return &g_cuda;
}
