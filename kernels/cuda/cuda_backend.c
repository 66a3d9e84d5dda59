/* cuda_backend.c: the CUDA backend's op table (sqakd/backend.h), assembled from the op families
   (cuda_ops.h) and the context's members (context.h: options, status, device information); the
   context is set up on the first sq_backend_cuda() call. */
#include <stdio.h>
#include "cuda_ops.h"

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
    .configure = sq_cuda_configure,
    .options = sq_cuda_options,
    .status = sq_cuda_last_status,
    .clear_status = sq_cuda_clear_status,
    .error_count = sq_cuda_error_count,
    .device_info = sq_cuda_device_info,
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
    .clip_fwd = sq_cuda_clip_fwd,
    .clip_bwd = sq_cuda_clip_bwd,
    .affine_fwd = sq_cuda_affine_fwd,
    .affine_bwd = sq_cuda_affine_bwd,
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
    .pad_fwd = sq_cuda_pad_fwd,
    .pad_bwd = sq_cuda_pad_bwd,
    .slice_fwd = sq_cuda_slice_fwd,
    .slice_bwd = sq_cuda_slice_bwd,
    .dropout_fwd = sq_cuda_dropout_fwd,
    .dropout_bwd = sq_cuda_dropout_bwd,
    .softmax_ce = sq_cuda_softmax_ce,
    .kl_fwd_bwd = sq_cuda_kl_fwd_bwd,
    .argmax = sq_cuda_argmax,
    .squat_fwd_bwd = sq_cuda_squat_fwd_bwd,
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
    .stage_put_pinned = sq_cuda_stage_put_pinned,
    .stage_free = sq_cuda_stage_free,
    .host_alloc = sq_cuda_host_alloc,
    .host_free = sq_cuda_host_free,
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
    .dist_attach = sq_cuda_dist_attach,
    .allreduce_start = sq_cuda_allreduce_start,
    .allreduce_wait = sq_cuda_allreduce_wait,
};

const char *sq_backend_cuda_build(void)
{
    static char s[200];
    snprintf(s, sizeof s, "cuda (CUDA runtime %d.%d, cuDNN %d.%d.%d, cuBLAS %d.%d.%d, %s%s)", CUDART_VERSION / 1000,
             CUDART_VERSION % 1000 / 10, CUDNN_MAJOR, CUDNN_MINOR, CUDNN_PATCHLEVEL, CUBLAS_VER_MAJOR,
             CUBLAS_VER_MINOR, CUBLAS_VER_PATCH, sq_cuda_dist_build(),
#ifdef SQ_CUEMU
             "; built for cuemu, the CPU emulation of CUDA used by the tests"
#else
             ""
#endif
    );
    return s;
}

/* 0 = not tried, 1 = ready, -1 = failed (message kept, returned again on every call) */
static int g_state;
static char g_init_msg[1024];

const sq_backend *sq_backend_cuda(void)
{
    if (g_state == 0) {
        g_state = sq_cuda_context_init() == SQ_OK ? 1 : -1;
        if (g_state < 0) snprintf(g_init_msg, sizeof g_init_msg, "%s", sq_last_error());
    }
    if (g_state < 0) {
        sq_set_error("%s", g_init_msg);
        return NULL;
    }
    return &g_cuda;
}
