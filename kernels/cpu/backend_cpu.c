/* backend_cpu.c: assembles the CPU op table (sqakd/backend.h) from the per-family kernels in
   kernels/cpu. Host memory throughout; copies are memcpy; sync is a no-op. */
#include "cpu_ops.h"
#include <stdio.h>
#include <string.h>

/* the CPU backend reads bf16-bwd (conv.c); it keeps the others for options() */
static sq_backend_opts g_opts = SQ_BACKEND_OPTS_DEFAULT;

static sq_status cpu_configure(const sq_backend_opts *o)
{
    g_opts = *o;
    return SQ_OK;
}

static const sq_backend_opts *cpu_options(void) { return &g_opts; }
const sq_backend_opts *sq_cpu_opts(void) { return &g_opts; }
static sq_status cpu_status(void) { return SQ_OK; }
static void cpu_clear_status(void) {}
static unsigned cpu_error_count(void) { return 0; }

static void cpu_device_info(sq_device_info *info)
{
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "cpu");
}

static const sq_backend g_cpu = {
    .name = "cpu",
    .is_device = 0,
    .configure = cpu_configure,
    .options = cpu_options,
    .status = cpu_status,
    .clear_status = cpu_clear_status,
    .error_count = cpu_error_count,
    .device_info = cpu_device_info,
    .dist_attach = sq_cpu_dist_attach,
    .allreduce_start = sq_cpu_allreduce_start,
    .allreduce_wait = sq_cpu_allreduce_wait,
    .alloc = sq_cpu_alloc,
    .free = sq_cpu_free,
    .memset0 = sq_cpu_memset0,
    .copy_h2d = sq_cpu_copy,
    .copy_d2h = sq_cpu_copy,
    .copy_d2d = sq_cpu_copy,
    .sync = sq_cpu_sync,
    .set_threads = sq_cpu_set_threads,
    .run_models = sq_cpu_run_models,
    .conv_ws_bytes = sq_cpu_conv_ws_bytes,
    .conv2d_fwd = sq_cpu_conv2d_fwd,
    .conv2d_bwd = sq_cpu_conv2d_bwd,
    .bn_fwd_train = sq_cpu_bn_fwd_train,
    .bn_fwd_eval = sq_cpu_bn_fwd_eval,
    .bn_bwd = sq_cpu_bn_bwd,
    .act_fwd = sq_cpu_act_fwd,
    .act_bwd = sq_cpu_act_bwd,
    .add_fwd = sq_cpu_add_fwd,
    .axpy = sq_cpu_axpy,
    .scale = sq_cpu_scale,
    .fill = sq_cpu_fill,
    .clip_fwd = sq_cpu_clip_fwd,
    .clip_bwd = sq_cpu_clip_bwd,
    .affine_fwd = sq_cpu_affine_fwd,
    .affine_bwd = sq_cpu_affine_bwd,
    .pool_fwd = sq_cpu_pool_fwd,
    .pool_bwd = sq_cpu_pool_bwd,
    .gap_fwd = sq_cpu_gap_fwd,
    .gap_bwd = sq_cpu_gap_bwd,
    .linear_fwd = sq_cpu_linear_fwd,
    .linear_bwd = sq_cpu_linear_bwd,
    .shortcut_a_fwd = sq_cpu_shortcut_a_fwd,
    .shortcut_a_bwd = sq_cpu_shortcut_a_bwd,
    .concat_fwd = sq_cpu_concat_fwd,
    .concat_bwd = sq_cpu_concat_bwd,
    .shuffle_fwd = sq_cpu_shuffle_fwd,
    .shuffle_bwd = sq_cpu_shuffle_bwd,
    .pad_fwd = sq_cpu_pad_fwd,
    .pad_bwd = sq_cpu_pad_bwd,
    .slice_fwd = sq_cpu_slice_fwd,
    .slice_bwd = sq_cpu_slice_bwd,
    .dropout_fwd = sq_cpu_dropout_fwd,
    .dropout_bwd = sq_cpu_dropout_bwd,
    .softmax_ce = sq_cpu_softmax_ce,
    .kl_fwd_bwd = sq_cpu_kl_fwd_bwd,
    .argmax = sq_cpu_argmax,
    .squat_fwd_bwd = sq_cpu_squat_fwd_bwd,
    .fakequant_fwd = sq_cpu_fakequant_fwd,
    .fakequant_bwd = sq_cpu_fakequant_bwd,
    .absscale_fwd = sq_cpu_absscale_fwd,
    .absscale_bwd = sq_cpu_absscale_bwd,
    .bn_act_fwd_train = sq_cpu_bn_act_fwd_train,
    .bn_act_bwd = sq_cpu_bn_act_bwd,
    .add_act_fwd = sq_cpu_add_act_fwd,
    .add_act_bwd = sq_cpu_add_act_bwd,
    .bn_add_act_fwd_train = sq_cpu_bn_add_act_fwd_train,
    .bn_add_act_bwd = sq_cpu_bn_add_act_bwd,
    .qconv2d_fwd = sq_cpu_qconv2d_fwd,
    .qconv2d_bwd = sq_cpu_qconv2d_bwd,
    .sgd_step = sq_cpu_sgd_step,
    .adam_step = sq_cpu_adam_step,
};

const char *sq_backend_cpu_build(void)
{
#ifdef SQ_HAVE_BLAS
    return "cpu (OpenMP, OpenBLAS)";
#else
    return "cpu (OpenMP, built-in GEMM)";
#endif
}

const sq_backend *sq_backend_cpu(void)
{
    static int initialised;
    if (!initialised) {
        sq_cpu_init_threads();
        initialised = 1;
    }
    return &g_cpu;
}
