/* cuda_ops.h: internal prototypes of the CUDA backend's op families (one .cu or .c per family;
   the table itself is assembled in cuda_backend.c) and the convolution plan cache of cudnn.c.
   Signatures of the ops mirror sq_backend in sqakd/backend.h. Below them all, the context
   (context.h: device, stream, handles, scratch, options, status). */
#ifndef SQAKD_CUDA_OPS_H
#define SQAKD_CUDA_OPS_H

#include "context.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- cudnn.c: one plan per fp32 conv shape (descriptors + algorithms), internal workspace */
typedef struct sq_cuda_conv_plan {
    sq_conv_shape cs;
    cudnnTensorDescriptor_t xd, yd; /* input, output */
    cudnnFilterDescriptor_t wd;
    /* one convolution descriptor per direction: each carries its algorithm's math type */
    cudnnConvolutionDescriptor_t cd_fwd, cd_bwd_data, cd_bwd_filter;
    cudnnConvolutionFwdAlgo_t fwd_algo;
    cudnnConvolutionBwdDataAlgo_t bwd_data_algo;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter_algo;
    size_t ws_bytes; /* max workspace of the three algorithms */
} sq_cuda_conv_plan;

/* cached plan for this shape, built on first use (that is "plan time": algorithms are chosen
   and the internal workspace grows there, never later); NULL if cuDNN failed (error recorded) */
const sq_cuda_conv_plan *sq_cuda_conv_plan_get(const sq_conv_shape *cs);
/* the internal workspace (at least the largest ws_bytes of any plan built so far); used when the
   caller passes ws = NULL */
void *sq_cuda_conv_internal_ws(void);

/* ---- mem.cu ---- */
void *sq_cuda_alloc(size_t bytes);
void sq_cuda_free(void *p);
void sq_cuda_memset0(void *p, size_t bytes);
void sq_cuda_copy_h2d(void *dst, const void *src, size_t bytes);
void sq_cuda_copy_d2h(void *dst, const void *src, size_t bytes);
void sq_cuda_copy_d2d(void *dst, const void *src, size_t bytes);
void sq_cuda_sync(void);
/* dist.c: data parallelism (NCCL, or through host memory without it) */
sq_status sq_cuda_dist_attach(const sq_comm *comm, int sync_bn);
void sq_cuda_allreduce_start(float *buf, size_t n);
void sq_cuda_allreduce_wait(void);
const char *sq_cuda_dist_build(void);
/* synchronised BatchNorm (bn.cu): the rank count when BN reduces over the ranks, else 0; the
   device buffer of SQ_CUDA_PARTIAL_DOUBLES doubles its totals go through; a sum over the ranks of
   n doubles of device memory, in place, on the compute stream */
int sq_cuda_bn_sync_world(void);
double *sq_cuda_bn_sync_totals(void);
void sq_cuda_allreduce_f64(double *buf, size_t n);
void sq_cuda_set_threads(int threads);

/* ---- conv.cu ---- */
size_t sq_cuda_conv_ws_bytes(const sq_conv_shape *cs);
void sq_cuda_conv2d_fwd(const sq_conv_shape *cs, const float *x, const float *w, const float *b,
                        float *y, void *ws);
void sq_cuda_conv2d_bwd(const sq_conv_shape *cs, const float *x, const float *w, const float *gy,
                        float *gx, float *gw, float *gb, void *ws);

/* ---- bn.cu ---- */
void sq_cuda_bn_fwd_train(int n, int c, int hw, const float *x, const float *gamma,
                          const float *beta, float *run_mean, float *run_var, float momentum,
                          float eps, float *y, float *save_mean, float *save_invstd);
void sq_cuda_bn_fwd_eval(int n, int c, int hw, const float *x, const float *gamma,
                         const float *beta, const float *run_mean, const float *run_var, float eps,
                         float *y);
void sq_cuda_bn_bwd(int n, int c, int hw, const float *x, const float *gy, const float *gamma,
                    const float *save_mean, const float *save_invstd, float *gx, float *ggamma,
                    float *gbeta);

/* ---- act.cu: activations and elementwise ---- */
void sq_cuda_act_fwd(sq_act_kind kind, size_t n, const float *x, float *y);
void sq_cuda_act_bwd(sq_act_kind kind, size_t n, const float *x, const float *gy, float *gx);
/* the fused ops of backend.h (bn.cu, act.cu) */
void sq_cuda_conv2d_bwd_set(const sq_conv_shape *cs, const float *x, const float *w,
                            const float *gy, float *gx, float *gw, float *gb, void *ws);
void sq_cuda_bn_bwd_set(int n, int c, int hw, const float *x, const float *gy, const float *gamma,
                        const float *save_mean, const float *save_invstd, float *gx,
                        float *ggamma, float *gbeta);
void sq_cuda_bn_act_bwd_set(int n, int c, int hw, sq_act_kind act, const float *x, const float *y,
                            const float *gy, const float *gamma, const float *save_mean,
                            const float *save_invstd, float *gx, float *ggamma, float *gbeta);
void sq_cuda_bn_add_act_bwd_set(int n, int c, int hw, sq_act_kind act, const float *x,
                                const float *y, const float *gy, const float *gamma,
                                const float *save_mean, const float *save_invstd, float *gx,
                                float *gr, float *ggamma, float *gbeta);
void sq_cuda_bn_act_fwd_train(int n, int c, int hw, sq_act_kind act, const float *x,
                              const float *gamma, const float *beta, float *run_mean,
                              float *run_var, float momentum, float eps, float *y,
                              float *save_mean, float *save_invstd);
void sq_cuda_bn_act_bwd(int n, int c, int hw, sq_act_kind act, const float *x, const float *y,
                        const float *gy, const float *gamma, const float *save_mean,
                        const float *save_invstd, float *gx, float *ggamma, float *gbeta);
void sq_cuda_bn_add_act_fwd_train(int n, int c, int hw, sq_act_kind act, const float *x,
                                  const float *r, const float *gamma, const float *beta,
                                  float *run_mean, float *run_var, float momentum, float eps,
                                  float *y, float *save_mean, float *save_invstd);
void sq_cuda_bn_add_act_bwd(int n, int c, int hw, sq_act_kind act, const float *x, const float *y,
                            const float *gy, const float *gamma, const float *save_mean,
                            const float *save_invstd, float *gx, float *gr, float *ggamma,
                            float *gbeta);
void sq_cuda_add_act_fwd(size_t n, sq_act_kind act, const float *a, const float *b, float *y);
void sq_cuda_add_act_bwd(size_t n, sq_act_kind act, const float *y, const float *gy, float *ga,
                         float *gb);
void sq_cuda_add_fwd(size_t n, const float *a, const float *b, float *y);
void sq_cuda_axpy(size_t n, float alpha, const float *x, float *y);
void sq_cuda_scale(size_t n, float alpha, float *x);
void sq_cuda_fill(size_t n, float v, float *x);
void sq_cuda_clip_fwd(size_t n, float lo, float hi, const float *x, float *y);
void sq_cuda_clip_bwd(size_t n, float lo, float hi, const float *x, const float *gy, float *gx);
void sq_cuda_affine_fwd(int n, int c, int hw, const float *a, const float *b, const float *x,
                        float *y);
void sq_cuda_affine_bwd(int n, int c, int hw, const float *a, const float *gy, float *gx);

/* ---- pool.cu ---- */
void sq_cuda_pool_fwd(sq_pool_kind kind, const sq_pool_shape *ps, const float *x, float *y,
                      int32_t *argmax);
void sq_cuda_pool_bwd(sq_pool_kind kind, const sq_pool_shape *ps, const float *gy,
                      const int32_t *argmax, float *gx);
void sq_cuda_gap_fwd(int n, int c, int hw, const float *x, float *y);
void sq_cuda_gap_bwd(int n, int c, int hw, const float *gy, float *gx);

/* ---- linear.cu (cuBLAS) ---- */
void sq_cuda_linear_fwd(int n, int in, int out, const float *x, const float *w, const float *b,
                        float *y);
void sq_cuda_linear_bwd(int n, int in, int out, const float *x, const float *w, const float *gy,
                        float *gx, float *gw, float *gb);

/* ---- struct.cu: shortcut, concat, shuffle, dropout ---- */
void sq_cuda_shortcut_a_fwd(int n, int c, int h, int w, int k, const float *x, float *y);
void sq_cuda_shortcut_a_bwd(int n, int c, int h, int w, int k, const float *gy, float *gx);
void sq_cuda_concat_fwd(int n, int c1, int c2, int hw, const float *a, const float *b, float *y);
void sq_cuda_concat_bwd(int n, int c1, int c2, int hw, const float *gy, float *ga, float *gb);
void sq_cuda_shuffle_fwd(int n, int c, int hw, int groups, const float *x, float *y);
void sq_cuda_pad_fwd(int n, int c, int h, int w, int pt, int pl, int pb, int pr, float value,
                     const float *x, float *y);
void sq_cuda_pad_bwd(int n, int c, int h, int w, int pt, int pl, int pb, int pr, const float *gy,
                     float *gx);
void sq_cuda_slice_fwd(int n, int c, int hw, int c0, int k, const float *x, float *y);
void sq_cuda_slice_bwd(int n, int c, int hw, int c0, int k, const float *gy, float *gx);
void sq_cuda_shuffle_bwd(int n, int c, int hw, int groups, const float *gy, float *gx);
void sq_cuda_dropout_fwd(size_t n, float p, uint64_t seed, const float *x, float *y,
                         uint8_t *mask);
void sq_cuda_dropout_bwd(size_t n, float p, const uint8_t *mask, const float *gy, float *gx);

/* ---- loss.cu ---- */
void sq_cuda_softmax_ce(int n, int k, const float *logits, const int32_t *labels, float scale,
                        float *loss, float *glogits);
void sq_cuda_kl_fwd_bwd(int n, int k, const float *zt, const float *zs, float T, float alpha,
                        float *loss, float *gzs);
void sq_cuda_argmax(int n, int k, const float *z, int32_t *out);
/* squat.cu */
void sq_cuda_squat_fwd_bwd(const sq_quant_cfg *cfg, size_t n, const float *xt, const float *qp,
                           const float *xs, float weight, float *loss, float *gxs);

/* ---- fakequant.cu ---- */
void sq_cuda_fakequant_fwd(const sq_quant_cfg *cfg, size_t n, const float *x, const float *qp,
                           float *y, float *scratch);
void sq_cuda_fakequant_bwd(const sq_quant_cfg *cfg, size_t n, const float *x, const float *qp,
                           const float *gy, float *gx, float *gqp, float *scratch);
void sq_cuda_absscale_fwd(size_t n, const float *s, const float *z, float *y);
void sq_cuda_absscale_bwd(size_t n, const float *s, const float *z, const float *gy, float *gz,
                          float *gs);
void sq_cuda_bias_add_act_fwd(int n, int c, int hw, sq_act_kind act, const float *x,
                              const float *b, const float *r, float *y);
void sq_cuda_fakequant_scaled_fwd(const sq_quant_cfg *cfg, size_t n, const float *x,
                                  const float *qp, const float *s, float *y, float *ys,
                                  float *scratch);
void sq_cuda_fakequant_scaled_bwd(const sq_quant_cfg *cfg, size_t n, const float *x,
                                  const float *qp, const float *s, const float *y,
                                  const float *gys, float *gy, float *gx, float *gqp, float *gs,
                                  float *scratch);

/* ---- optim.cu ---- */
void sq_cuda_sgd_step(size_t n, float *p, const float *g, float *m, float lr, float momentum,
                      float wd);
void sq_cuda_adam_step(size_t n, float *p, const float *g, float *m, float *v, float lr, float b1,
                       float b2, float eps, float wd, int t);

/* ---- stage.c: asynchronous input staging, device memory report ---- */
int sq_cuda_mem_info(size_t *free_bytes, size_t *total_bytes);
void *sq_cuda_stage_new(size_t bytes, int host_slots);
const void *sq_cuda_stage_put(void *stage, const void *src, size_t bytes);
const void *sq_cuda_stage_put_pinned(void *stage, const void *src, size_t bytes);
void sq_cuda_stage_free(void *stage);
void *sq_cuda_host_alloc(size_t bytes);
void sq_cuda_host_free(void *p);

/* ---- graph.c: record and replay with CUDA graphs (backend.h, graph_*) ---- */
int sq_cuda_graph_begin(void);
void *sq_cuda_graph_end(void);
void sq_cuda_graph_run(void *graph);
void sq_cuda_graph_free(void *graph);

/* ---- half.cu and conv16.c: the reduced-precision (fp16 / bf16) teacher ops ---- */
void sq_cuda_to16(sq_dtype16 dt, size_t n, const float *x, void *y);
void sq_cuda_from16(sq_dtype16 dt, size_t n, const void *x, float *y);
/* y (N, C, HW), 16-bit, in place: y = act(y + b[c]) (b may be NULL; act < 0: none) */
void sq_cuda_bias_act16(sq_dtype16 dt, int n, int c, int hw, const float *b, int act, void *y);
size_t sq_cuda_conv16_ws_bytes(sq_dtype16 dt, const sq_conv_shape *cs);
void sq_cuda_conv16_fwd(sq_dtype16 dt, const sq_conv_shape *cs, const void *x, const void *w,
                        const void *b16, const float *b32, int act, void *y, void *ws);
void sq_cuda_act16_fwd(sq_dtype16 dt, sq_act_kind kind, size_t n, const void *x, void *y);
void sq_cuda_add16_fwd(sq_dtype16 dt, size_t n, int act, const void *a, const void *b, void *y);
void sq_cuda_pool16_fwd(sq_dtype16 dt, sq_pool_kind kind, int n, int c, int h, int w, int k,
                        int stride, int pad, const void *x, void *y);
void sq_cuda_gap16_fwd(sq_dtype16 dt, int n, int c, int hw, const void *x, float *y);
void sq_cuda_shortcut_a16_fwd(sq_dtype16 dt, int n, int c, int h, int w, int k, const void *x,
                              void *y);

#ifdef __cplusplus
}
#endif
#endif
