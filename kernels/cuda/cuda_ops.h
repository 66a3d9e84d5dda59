/* cuda_ops.h: internal prototypes of the CUDA backend (one .cu per op family; the table itself is
   assembled in cuda_backend.c) and the shared device context: library handles, the conv plan
   cache, the reduction scratch. Signatures of the ops mirror sq_backend in sqakd/backend.h.

   Every op runs on the compute stream sq_cuda_stream(), in order; the reduction scratch below is
   shared by all kernels that use it and relies on that ordering (one compute stream per
   backend). The only other stream is an input stage's copy stream (stage.c), which touches
   nothing but the stage's own buffers and is ordered against the compute stream with events. */
#ifndef SQAKD_CUDA_OPS_H
#define SQAKD_CUDA_OPS_H

#include "cuda_check.h"
#include "sqakd/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- context (cuda_backend.c) ---- */
int sq_cuda_sm_count(void);
/* The compute stream: every kernel, cuDNN and cuBLAS call and asynchronous copy of the backend.
   A stream of our own because the legacy default stream cannot be captured into a CUDA graph
   (graph.c); a blocking one (cudaStreamDefault), so the synchronous copies of mem.cu, which run
   on the legacy stream, still wait for it and it for them. */
cudaStream_t sq_cuda_stream(void);
/* Deterministic cross-block reductions: a kernel of at most SQ_CUDA_MAX_BLOCKS blocks writes one
   partial per block (up to SQ_CUDA_PARTIAL_WIDTH doubles each) into sq_cuda_partials(), increments
   *sq_cuda_counter() after a fence; the last block to arrive sums the partials in block order,
   writes the result and resets the counter to 0. One launch, no float atomics, same result every
   run for the same grid. */
#define SQ_CUDA_MAX_BLOCKS 1024
#define SQ_CUDA_PARTIAL_WIDTH 4
/* the partial buffer holds SQ_CUDA_PARTIAL_DOUBLES doubles; kernels with per-channel two-pass
   reductions (batch norm) use it as plain scratch between their two launches */
#define SQ_CUDA_PARTIAL_DOUBLES 65536
double *sq_cuda_partials(void);
unsigned *sq_cuda_counter(void);
/* The streaming kernels' launch geometry (fake-quant, KL, cross-entropy, argmax; SQAKD_GRID=
   auto|stride|flat, read once; test hooks sq_cuda_grid_set / sq_cuda_grid_name in backend.h;
   measured on an H100 in docs/gpu-validation.md, run 4):
   - stride (run 3's): grid-stride loops over a capped grid, 16 blocks per SM for elementwise
     launches, SQ_CUDA_MAX_BLOCKS for reducing ones;
   - flat: as many blocks as the work needs (one trip per thread), so the hardware block
     scheduler keeps every SM full to the end instead of a last partial wave; reducing launches
     take at most SQ_CUDA_FLAT_MAX_BLOCKS blocks (the partial buffer's capacity) and loop;
   - auto (default): flat for elementwise launches (faster than stride at 16M and 256M); the
     fake-quant backward's reducing launch on one wave of resident blocks (SMs x its blocks
     per SM, fakequant.cu fq_grid_bwd_reduce; faster than both at 16M, 64M and 256M on an
     H200, run 5); other reducing ones (KL, cross-entropy, max|x|) at about 4 trips per block
     but never fewer blocks than stride: max(min(want, stride cap), min(want / 4,
     SQ_CUDA_FLAT_MAX_BLOCKS)), stride's grid at 16M and flat's at 256M, the faster of the two
     at each size.
   Reducing grids depend on the size (and the device) only, so sums are deterministic; the
   per-element results are the same in every mode, the sums are grouped differently.
   sq_cuda_flat_cap: the most blocks of a flat launch (reducing or elementwise), lower when a
   test has set a cap. sq_cuda_reduce_blocks: SQAKD_REDUCE_BLOCKS=N, for benchmarks: every
   reducing launch on at most N blocks whatever the mode (0: unset). */
#define SQ_CUDA_FLAT_MAX_BLOCKS (SQ_CUDA_PARTIAL_DOUBLES / SQ_CUDA_PARTIAL_WIDTH)
int sq_cuda_grid_mode(void); /* SQ_GRID_STRIDE, SQ_GRID_FLAT or SQ_GRID_AUTO (backend.h) */
unsigned sq_cuda_flat_cap(int reducing);
unsigned sq_cuda_reduce_blocks(void);

/* ---- cublas.c ---- */
sq_status sq_cuda_cublas_init(void);
cublasHandle_t sq_cuda_cublas(void);

/* ---- cudnn.c: handle, one plan per conv shape (descriptors + algorithms), internal workspace */
typedef struct sq_cuda_conv_plan {
    sq_conv_shape cs;
    cudnnTensorDescriptor_t xd, yd; /* input, output */
    cudnnFilterDescriptor_t wd;
    /* one convolution descriptor per direction: each carries its algorithm's math type */
    cudnnConvolutionDescriptor_t cd_fwd, cd_bwd_data, cd_bwd_filter;
    cudnnConvolutionFwdAlgo_t fwd_algo;
    cudnnConvolutionBwdDataAlgo_t bwd_data_algo;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter_algo;
    size_t ws_bytes; /* max workspace of the three algorithms (and of the backend plans) */
    struct sq_cuda_be_conv *be; /* SQAKD_CONV_API=backend: the backend-API plans, else NULL */
} sq_cuda_conv_plan;

/* ---- cudnn_be.c: the same convolutions through cuDNN's backend API (SQAKD_CONV_API=backend) */
enum { SQ_BE_FWD, SQ_BE_BWD_DATA_SET, SQ_BE_BWD_DATA_ACC, SQ_BE_BWD_FILTER_ACC, SQ_BE_VARIANTS };
typedef struct sq_cuda_be_conv sq_cuda_be_conv;
int sq_cuda_conv_api_backend(void); /* SQAKD_CONV_API=backend, read once (test hooks: backend.h) */
/* the four variants' plans for legacy plan lp's shape, each checked against lp's legacy calls;
   NULL when none is usable (lines on stderr say why; no error recorded) */
sq_cuda_be_conv *sq_cuda_be_conv_build(const sq_cuda_conv_plan *lp, int tf32, int det_first,
                                       size_t ws_cap);
void sq_cuda_be_conv_free(sq_cuda_be_conv *b);
size_t sq_cuda_be_conv_ws(const sq_cuda_be_conv *b);
int sq_cuda_be_conv_usable(const sq_cuda_be_conv *b, int variant);
/* runs variant on the uid pointers x (dx), w (dw), y (dy); 1 = enqueued, 0 = the caller must
   make the legacy call (variant unusable, pointers not 16-byte aligned, or execution failed) */
int sq_cuda_be_conv_run(sq_cuda_be_conv *b, int variant, const void *x, const void *w,
                        const void *y, void *ws);

sq_status sq_cuda_cudnn_init(void);
cudnnHandle_t sq_cuda_cudnn(void);
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

/* ---- pool.cu ---- */
void sq_cuda_pool_fwd(sq_pool_kind kind, int n, int c, int h, int w, int k, int stride, int pad,
                      const float *x, float *y, int32_t *argmax);
void sq_cuda_pool_bwd(sq_pool_kind kind, int n, int c, int h, int w, int k, int stride, int pad,
                      const float *gy, const int32_t *argmax, float *gx);
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
void sq_cuda_shuffle_bwd(int n, int c, int hw, int groups, const float *gy, float *gx);
void sq_cuda_dropout_fwd(size_t n, float p, uint64_t seed, const float *x, float *y,
                         uint8_t *mask);
void sq_cuda_dropout_bwd(size_t n, float p, const uint8_t *mask, const float *gy, float *gx);

/* SQAKD_HOST_PROFILE=1 (cuda_backend.c): host time inside the cuDNN convolution calls, and in
   the launch of the convolution bias kernel that replaced cudnnAddTensor, for comparison */
enum { SQ_HPROF_FWD, SQ_HPROF_BWD_DATA, SQ_HPROF_BWD_FILTER, SQ_HPROF_CONV16, SQ_HPROF_CONV_BIAS,
       SQ_HPROF_BACKEND, SQ_HPROF_COUNT };
int sq_cuda_hprof_on(void);
void sq_cuda_hprof_add(int what, double t0); /* adds sq_now() - t0 */
#define SQ_HPROF(what, stmt)                                                                     \
    do {                                                                                         \
        if (sq_cuda_hprof_on()) {                                                                \
            double sq_hp_t0_ = sq_now();                                                         \
            stmt;                                                                                \
            sq_cuda_hprof_add(what, sq_hp_t0_);                                                  \
        } else {                                                                                 \
            stmt;                                                                                \
        }                                                                                        \
    } while (0)

/* ---- loss.cu ---- */
void sq_cuda_softmax_ce(int n, int k, const float *logits, const int32_t *labels, float scale,
                        float *loss, float *glogits);
void sq_cuda_kl_fwd_bwd(int n, int k, const float *zt, const float *zs, float T, float alpha,
                        float *loss, float *gzs);
void sq_cuda_argmax(int n, int k, const float *z, int32_t *out);

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
void *sq_cuda_stage_new(size_t bytes);
const void *sq_cuda_stage_put(void *stage, const void *src, size_t bytes);
void sq_cuda_stage_free(void *stage);

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
