/* cpu_ops.h: internal prototypes of the CPU backend's ops (one file per op family); the table
   itself is assembled in backend_cpu.c. Signatures mirror sq_backend in sqakd/backend.h. */
#ifndef SQAKD_CPU_OPS_H
#define SQAKD_CPU_OPS_H
#include "sqakd/backend.h"

/* fakequant.c */
void sq_cpu_fakequant_fwd(const sq_quant_cfg *cfg, size_t n, const float *x, const float *qp,
                          float *y, float *scratch);
void sq_cpu_fakequant_bwd(const sq_quant_cfg *cfg, size_t n, const float *x, const float *qp,
                          const float *gy, float *gx, float *gqp, float *scratch);
void sq_cpu_absscale_fwd(size_t n, const float *s, const float *z, float *y);
void sq_cpu_absscale_bwd(size_t n, const float *s, const float *z, const float *gy, float *gz,
                         float *gs);

/* elementwise loops below this many elements run on one thread (fork/join costs more) */
#define SQ_CPU_PAR_MIN 32768

/* OpenMP schedules. Work is handed out dynamically, never in fixed per-thread halves: on shared
   or SMT machines one core often runs 10-25 % slower than another, and a static split makes
   every other thread wait for it at each barrier. Only loops whose iterations are independent
   use these, so results do not depend on which thread ran what. */
#define SQ_SCHED_ELEMS schedule(dynamic, 16384) /* loops over single elements */
#define SQ_SCHED_PLANES schedule(dynamic, 8)    /* loops over (image, channel) planes */
#define SQ_SCHED_ITEMS schedule(dynamic, 1)     /* channels, reduction chunks, images */
/* planes of hw floats per scheduled chunk when a loop over (image, channel) planes streams
   through memory in order (BatchNorm, fused.c and bn.c): runs of about 16384 floats */
static inline int sq_cpu_plane_run(int hw) { return hw >= 16384 ? 1 : 16384 / hw; }

/* The AVX-512 kernels (qconv.c, qconv_bwd.c, and OpenBLAS's behind sq_cpu_sgemm) may leave
   values in ymm16-31, whose upper halves vzeroupper does not clear; the upper state then stays
   dirty and the SSE code of the build's baseline (the elementwise ops) runs 3-4x slower on Zen 4
   (measured: fakequant_bwd on 2M elements 1.0 ms clean, 4.3 ms after the BF16 backward). Each
   thread calls this at the end of such a kernel: it zeroes xmm16-31 (so all of zmm16-31) and
   runs vzeroupper. */
#if defined(__x86_64__)
__attribute__((target("avx512f"))) static inline void sq_cpu_clean_upper(void)
{
    __asm__ volatile("vpxord %%xmm16, %%xmm16, %%xmm16\n\tvpxord %%xmm17, %%xmm17, %%xmm17\n\t"
                     "vpxord %%xmm18, %%xmm18, %%xmm18\n\tvpxord %%xmm19, %%xmm19, %%xmm19\n\t"
                     "vpxord %%xmm20, %%xmm20, %%xmm20\n\tvpxord %%xmm21, %%xmm21, %%xmm21\n\t"
                     "vpxord %%xmm22, %%xmm22, %%xmm22\n\tvpxord %%xmm23, %%xmm23, %%xmm23\n\t"
                     "vpxord %%xmm24, %%xmm24, %%xmm24\n\tvpxord %%xmm25, %%xmm25, %%xmm25\n\t"
                     "vpxord %%xmm26, %%xmm26, %%xmm26\n\tvpxord %%xmm27, %%xmm27, %%xmm27\n\t"
                     "vpxord %%xmm28, %%xmm28, %%xmm28\n\tvpxord %%xmm29, %%xmm29, %%xmm29\n\t"
                     "vpxord %%xmm30, %%xmm30, %%xmm30\n\tvpxord %%xmm31, %%xmm31, %%xmm31\n\t"
                     "vzeroupper"
                     :
                     :
                     : "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23",
                       "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31");
}
#endif

/* ---- qconv.c: quantized conv forward in integer arithmetic (AVX-512 VNNI) ---- */
/* the quantizer's integer grid (quant_math.h sq_qm_grid) with its parameters qp loaded, for a
   tensor of n elements: step > 0 and finite, codes cmin..cmax; 0 if it has none */
int sq_cpu_quant_grid(const sq_quant_cfg *cfg, const float *qp, size_t n, float *step, int *cmin, int *cmax);
/* the weight's step per output row into rstep[k] (one for all rows of a per-tensor quantizer, a
   row's own for per-channel ones), the codes' range over all rows; 0 if a row has no grid */
int sq_cpu_weight_steps(const sq_conv_shape *cs, const sq_quant_cfg *qw, const float *qpw, float *rstep,
                        int *wlo, int *whi);
int sq_cpu_qconv_available(void);
int sq_cpu_qconv_shape_ok(const sq_conv_shape *cs);
size_t sq_cpu_qconv_ws_bytes(const sq_conv_shape *cs, int threads);
int sq_cpu_qconv_run(const sq_conv_shape *cs, const sq_quant_cfg *qa, const float *qpa,
                     const float *xq, const sq_quant_cfg *qw, const float *qpw, const float *wq,
                     const float *yscale, const float *b, float *y, void *ws, int nthr);
/* the op (conv.c): 0 when it does not apply (the caller runs conv2d_fwd) */
int sq_cpu_qconv2d_fwd(const sq_conv_shape *cs, const sq_quant_cfg *qa, const float *qpa,
                       const float *xq, const sq_quant_cfg *qw, const float *qpw, const float *wq,
                       const float *yscale, const float *b, float *y, void *ws);

/* conv_igemm.c: inside a parallel region (an orphaned worksharing loop): parts[0 .. len) +=
   parts[b * stride ..] for b = 1 .. nb - 1, in block order (deterministic) */
void sq_cpu_sum_parts(float *parts, int nb, size_t stride, size_t len);

/* ---- qconv_bwd.c: quantized conv backward with BF16 dot products (AVX-512 BF16) ---- */
int sq_cpu_qconv_bwd_available(void);
int sq_cpu_qconv_bwd_shape_ok(const sq_conv_shape *cs);
int sq_cpu_qconv_bwd_wgrad_ok(const sq_conv_shape *cs); /* its weight-gradient partials are small */
size_t sq_cpu_qconv_bwd_ws_bytes(const sq_conv_shape *cs, int threads);
/* gx (written when gx_set, else accumulated) and gw (accumulated; only where wgrad_ok), either
   may be NULL; 0 when it does not apply (nothing computed) */
int sq_cpu_qconv_bwd_run(const sq_conv_shape *cs, const sq_quant_cfg *qa, const float *qpa,
                         const float *xq, const sq_quant_cfg *qw, const float *qpw,
                         const float *wq, const float *yscale, const float *gy, float *gx,
                         int gx_set, float *gw, void *ws, int nthr);
/* the op (conv.c): 0 when it does not apply or the option bf16-bwd is 0 */
int sq_cpu_qconv2d_bwd(const sq_conv_shape *cs, const sq_quant_cfg *qa, const float *qpa,
                       const float *xq, const sq_quant_cfg *qw, const float *qpw, const float *wq,
                       const float *yscale, const float *gy, float *gx, int gx_set, float *gw,
                       float *gb, void *ws);
/* backend_cpu.c: the options in force */
const sq_backend_opts *sq_cpu_opts(void);

/* bn.c: one channel's running-stat update and saved mean/invstd from the batch statistics st
   (mean[c], biased variance[c], count: fused.c's batch_stats or dist.c's sync_stats);
   *a, *b: the affine map y = x a + b of that channel */
void sq_cpu_bn_channel_train(int c, int ch, const float *gamma,
                             const float *beta, float *run_mean, float *run_var, float momentum,
                             float eps, float *save_mean, float *save_invstd, float *a, float *b,
                             const double *st);

/* ---- fused.c: optional fused ops (backend.h) ---- */
/* fused.c: the training-mode BN passes behind bn.c's and the fused ops' entries: act_on 0 / y
   NULL is plain BN, hi the activation's upper clamp (ReLU: +inf) */
void sq_cpu_bn_train_fwd_any(int n, int c, int hw, int act_on, float hi, const float *x,
                             const float *r, const float *gamma, const float *beta,
                             float *run_mean, float *run_var, float momentum, float eps, float *y,
                             float *save_mean, float *save_invstd);
void sq_cpu_bn_train_bwd_any(int n, int c, int hw, float hi, const float *x, const float *y,
                             const float *gy, const float *gamma, const float *save_mean,
                             const float *save_invstd, float *gx, float *gr, float *ggamma,
                             float *gbeta);
void sq_cpu_bn_act_fwd_train(int n, int c, int hw, sq_act_kind act, const float *x,
                             const float *gamma, const float *beta, float *run_mean,
                             float *run_var, float momentum, float eps, float *y,
                             float *save_mean, float *save_invstd);
void sq_cpu_bn_act_bwd(int n, int c, int hw, sq_act_kind act, const float *x, const float *y,
                       const float *gy, const float *gamma, const float *save_mean,
                       const float *save_invstd, float *gx, float *ggamma, float *gbeta);
void sq_cpu_add_act_fwd(size_t n, sq_act_kind act, const float *a, const float *b, float *y);
void sq_cpu_bn_add_act_fwd_train(int n, int c, int hw, sq_act_kind act, const float *x,
                                 const float *r, const float *gamma, const float *beta,
                                 float *run_mean, float *run_var, float momentum, float eps,
                                 float *y, float *save_mean, float *save_invstd);
void sq_cpu_bn_add_act_bwd(int n, int c, int hw, sq_act_kind act, const float *x, const float *y,
                           const float *gy, const float *gamma, const float *save_mean,
                           const float *save_invstd, float *gx, float *gr, float *ggamma,
                           float *gbeta);
void sq_cpu_add_act_bwd(size_t n, sq_act_kind act, const float *y, const float *gy, float *ga,
                        float *gb);

/* ---- mem.c: memory, threads ---- */
void *sq_cpu_alloc(size_t bytes);
void sq_cpu_free(void *p);
void sq_cpu_memset0(void *p, size_t bytes);
void sq_cpu_copy(void *dst, const void *src, size_t bytes);
void sq_cpu_sync(void);
void sq_cpu_set_threads(int threads);
void sq_cpu_run_models(int n, void (*fn)(void *ctx, int i), void *ctx);
/* threads a parallel op uses now: min(omp_get_max_threads(), omp_get_num_procs()) */
int sq_cpu_threads(void);
/* first sq_backend_cpu() call: pins BLAS to one thread (ops parallelise with OpenMP) */
void sq_cpu_init_threads(void);

/* ---- linear.c: GEMM wrapper (OpenBLAS when SQ_HAVE_BLAS, plain loops otherwise), row-major
   C (M,N) = alpha op(A) op(B) + beta C, single-threaded (callers parallelise) ---- */
void sq_cpu_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                  int lda, const float *b, int ldb, float beta, float *c, int ldc);
void sq_cpu_linear_fwd(int n, int in, int out, const float *x, const float *w, const float *b,
                       float *y);
void sq_cpu_linear_bwd(int n, int in, int out, const float *x, const float *w, const float *gy,
                       float *gx, float *gw, float *gb);

/* ---- conv.c ---- */
size_t sq_cpu_conv_ws_bytes(const sq_conv_shape *cs);
void sq_cpu_conv2d_fwd(const sq_conv_shape *cs, const float *x, const float *w, const float *b,
                       float *y, void *ws);
void sq_cpu_conv2d_bwd(const sq_conv_shape *cs, const float *x, const float *w, const float *gy,
                       float *gx, float *gw, float *gb, void *ws);
/* conv_dw.c: depthwise (groups == c, k = mult * c) direct loops, no workspace */
void sq_cpu_conv_dw_fwd(const sq_conv_shape *cs, const float *x, const float *w, const float *b,
                        float *y);
void sq_cpu_conv_dw_bwd(const sq_conv_shape *cs, const float *x, const float *w, const float *gy,
                        float *gx, float *gw, float *gb);
/* conv_fast.c: AVX2/FMA micro-kernels of the implicit GEMM (conv_igemm.c). B row k of the
   product is base + off[k]; output positions come in chunks of up to 8 (one output row piece)
   with an input offset, an output offset and a length. */
#define SQ_FAST_MR 4
int sq_cpu_fast_available(void); /* CPU has AVX2 and FMA */
void sq_cpu_fast_pack_a(int m, int kd, const float *a, int lda, float *apack);
/* chunks of a (nrows, ncols) output grid: in = y*in_pitch + x, out = y*out_pitch + x; returns
   the count, nrows * ceil(ncols / 8) */
int sq_cpu_fast_chunks(int nrows, int ncols, int in_pitch, int out_pitch, int *in_pos,
                       int *out_pos, int *len);
/* planes[(a*st + b)][c][u][v] = x[c][u*st + a - padh][v*st + b - padw] (nc channels of
   (h, w); st*st blocks of (nc, ph2, pw2)) where that lies inside x; other positions are left
   as they are (the caller zeroes the planes once) */
void sq_cpu_fast_fill_planes(const float *x, int nc, int h, int w, int st, int padh, int padw,
                             int ph2, int pw2, float *planes);
/* dst[j*ldd + i] = src[i*lds + j], i < rows, j < cols */
void sq_cpu_fast_transpose(int rows, int cols, const float *src, int lds, float *dst, int ldd);
/* c[i*ldc + out_pos[j] + e] (+)= bias[i] + sum_k A[i][k] * base[off[k] + in_pos[j] + e] for
   i < m and e < len[j]; B is read for all 8 lanes of every chunk */
void sq_cpu_fast_igemm(int m, int kd, const float *apack, const float *base, const int *off,
                       int nchunk, const int *in_pos, const int *out_pos, const int *len,
                       float *c, size_t ldc, const float *bias, int accumulate);
/* gwt[k*mp + i] (+)= sum_q gt[q*mp + i] * base[off[k] + p(q)] over the (nrows, ncols) grid,
   p = y*in_pitch + x, q = y*ncols + x, for i < mp: the weight gradient transposed; gt: the
   output gradient transposed, mp = m rounded up to 16 with zero columns; zrow: zeros readable
   wherever B is (stands in for rows past kd) */
void sq_cpu_fast_wgrad(int m, int kd, const float *gt, int mp, const float *base, const int *off,
                       const float *zrow, int nrows, int ncols, int in_pitch, float *gwt,
                       int accumulate);
/* conv_igemm.c: implicit-GEMM conv (dense/grouped, stride <= 4, AVX2 CPUs); nthr threads, ws from
   sq_cpu_igemm_ws_floats(cs, nthr) floats */
int sq_cpu_igemm_applies(const sq_conv_shape *cs);
/* tests: 1 routes dense/grouped convs to the im2col + GEMM path (set before sizing workspaces) */
void sq_cpu_conv_force_gemm(int on);
/* conv.c: the columns of a convolution (rows (c, r, s) of cg channels, output rows [y0, y1) of
   one image, row stride ld) from x (cg, H, W), and their sum back into gx (col2im, added) */
void sq_cpu_im2col(const sq_conv_shape *cs, int cg, const float *x, float *col, int y0, int y1, size_t ld);
void sq_cpu_col2im_add(const sq_conv_shape *cs, int cg, const float *col, float *gx, int y0, int y1, size_t ld);
/* ---- conv_wino.c: Winograd F(2x2, 3x3) forward and backward of dense 3x3 stride-1 pad-1 convs with at least
   64 input and output channels and 8192 channel pairs (OpenBLAS builds on AVX2 CPUs); ws: sq_cpu_wino_ws_floats floats ---- */
int sq_cpu_wino_applies(const sq_conv_shape *cs);
size_t sq_cpu_wino_ws_floats(const sq_conv_shape *cs, int threads);
void sq_cpu_wino_fwd(const sq_conv_shape *cs, const float *x, const float *w, const float *b,
                     float *y, float *ws, int nthr);
/* the backward of the same convs: gx += (input gradient), gw += (weight gradient) */
void sq_cpu_wino_dgrad(const sq_conv_shape *cs, const float *w, const float *gy, float *gx,
                       float *ws, int nthr);
void sq_cpu_wino_wgrad(const sq_conv_shape *cs, const float *x, const float *gy, float *gw,
                       float *ws, int nthr);
void sq_cpu_conv_wino(int on); /* tests: 0 turns both Winograd paths off (default on) */
/* the pieces both Winograd paths share: one filter's 16 points G g G^T (flip: the input
   gradient's weights, cs its swapped shape), d (3x3) += G^T x G, and the input gradient's shape */
void sq_cpu_wino_filter(const sq_conv_shape *cs, const float *w, int flip, int k, int c, float u[16]);
void sq_cpu_wino_filter_grad_add(const float x[16], float d[9]);
sq_conv_shape sq_cpu_wino_dgrad_shape(const sq_conv_shape *cs);
/* conv_wino16.c: Winograd F(2x2, 3x3) forward and both gradients of the narrow dense 3x3 stride-1 pad-1 convs
   (16 - 64 channels a side, multiples of 16) on AVX-512F CPUs; ws: sq_cpu_wino16_ws_floats floats */
int sq_cpu_wino16_available(void);
int sq_cpu_wino16_applies(const sq_conv_shape *cs);
size_t sq_cpu_wino16_ws_floats(const sq_conv_shape *cs, int threads);
void sq_cpu_wino16_fwd(const sq_conv_shape *cs, const float *x, const float *w, const float *b,
                       float *y, float *ws, int nthr);
void sq_cpu_wino16_dgrad(const sq_conv_shape *cs, const float *w, const float *gy, float *gx,
                         float *ws, int nthr);
void sq_cpu_wino16_wgrad(const sq_conv_shape *cs, const float *x, const float *gy, float *gw,
                         float *ws, int nthr);
void sq_cpu_conv_wino16(int on); /* tests: 0 turns the narrow one off (default on) */

/* conv_bgemm.c: GEMMs over blocks of images, for the passes where the implicit GEMM idles */
enum { SQ_BG_FWD, SQ_BG_DGRAD, SQ_BG_WGRAD };
int sq_cpu_bgemm_applies(const sq_conv_shape *cs, int pass);
size_t sq_cpu_bgemm_ws_floats(const sq_conv_shape *cs, int threads);
void sq_cpu_bgemm_fwd(const sq_conv_shape *cs, const float *x, const float *w, const float *b, float *y,
                      void *ws, int nthr);
void sq_cpu_bgemm_bwd(const sq_conv_shape *cs, const float *x, const float *w, const float *gy, float *gx,
                      float *gw, void *ws, int nthr);
size_t sq_cpu_igemm_ws_floats(const sq_conv_shape *cs, int threads);
void sq_cpu_igemm_fwd(const sq_conv_shape *cs, const float *x, const float *w, const float *b,
                      float *y, void *ws, int nthr);
void sq_cpu_igemm_bwd(const sq_conv_shape *cs, const float *x, const float *w, const float *gy,
                      float *gx, float *gw, void *ws, int nthr);
/* plain 7-loop reference (tests and bench only; slow) */
void sq_cpu_conv2d_fwd_ref(const sq_conv_shape *cs, const float *x, const float *w,
                           const float *b, float *y);

/* ---- bn.c ---- */
void sq_cpu_bn_fwd_train(int n, int c, int hw, const float *x, const float *gamma,
                         const float *beta, float *run_mean, float *run_var, float momentum,
                         float eps, float *y, float *save_mean, float *save_invstd);
void sq_cpu_bn_fwd_eval(int n, int c, int hw, const float *x, const float *gamma,
                        const float *beta, const float *run_mean, const float *run_var, float eps,
                        float *y);
void sq_cpu_bn_bwd(int n, int c, int hw, const float *x, const float *gy, const float *gamma,
                   const float *save_mean, const float *save_invstd, float *gx, float *ggamma,
                   float *gbeta);

/* ---- act.c: activations and elementwise (clip, per-channel affine too) ---- */
void sq_cpu_act_fwd(sq_act_kind kind, size_t n, const float *x, float *y);
void sq_cpu_act_bwd(sq_act_kind kind, size_t n, const float *x, const float *gy, float *gx);
void sq_cpu_add_fwd(size_t n, const float *a, const float *b, float *y);
void sq_cpu_axpy(size_t n, float alpha, const float *x, float *y);
void sq_cpu_scale(size_t n, float alpha, float *x);
void sq_cpu_fill(size_t n, float v, float *x);
void sq_cpu_clip_fwd(size_t n, float lo, float hi, const float *x, float *y);
void sq_cpu_clip_bwd(size_t n, float lo, float hi, const float *x, const float *gy, float *gx);
void sq_cpu_affine_fwd(int n, int c, int hw, const float *a, const float *b, const float *x,
                       float *y);
void sq_cpu_affine_bwd(int n, int c, int hw, const float *a, const float *gy, float *gx);

/* ---- pool.c ---- */
void sq_cpu_pool_fwd(sq_pool_kind kind, const sq_pool_shape *ps, const float *x, float *y,
                     int32_t *argmax);
void sq_cpu_pool_bwd(sq_pool_kind kind, const sq_pool_shape *ps, const float *gy,
                     const int32_t *argmax, float *gx);
void sq_cpu_gap_fwd(int n, int c, int hw, const float *x, float *y);
void sq_cpu_gap_bwd(int n, int c, int hw, const float *gy, float *gx);

/* ---- struct.c: shortcut, concat, shuffle, dropout, pad, channel slice ---- */
void sq_cpu_shortcut_a_fwd(int n, int c, int h, int w, int k, const float *x, float *y);
void sq_cpu_shortcut_a_bwd(int n, int c, int h, int w, int k, const float *gy, float *gx);
void sq_cpu_concat_fwd(int n, int c1, int c2, int hw, const float *a, const float *b, float *y);
void sq_cpu_concat_bwd(int n, int c1, int c2, int hw, const float *gy, float *ga, float *gb);
void sq_cpu_shuffle_fwd(int n, int c, int hw, int groups, const float *x, float *y);
void sq_cpu_shuffle_bwd(int n, int c, int hw, int groups, const float *gy, float *gx);
void sq_cpu_pad_fwd(int n, int c, int h, int w, int pt, int pl, int pb, int pr, float value,
                    const float *x, float *y);
void sq_cpu_pad_bwd(int n, int c, int h, int w, int pt, int pl, int pb, int pr, const float *gy,
                    float *gx);
void sq_cpu_slice_fwd(int n, int c, int hw, int c0, int k, const float *x, float *y);
void sq_cpu_slice_bwd(int n, int c, int hw, int c0, int k, const float *gy, float *gx);
void sq_cpu_dropout_fwd(size_t n, float p, uint64_t seed, const float *x, float *y,
                        uint8_t *mask);
void sq_cpu_dropout_bwd(size_t n, float p, const uint8_t *mask, const float *gy, float *gx);
/* dropout keep decision of element i: splitmix64(seed + (i + 1) * 0x9E3779B97F4A7C15), top 24
   bits as u in [0, 1); kept iff u >= p */
int sq_cpu_dropout_keep(uint64_t seed, size_t i, float p);

/* ---- loss.c ---- */
void sq_cpu_softmax_ce(int n, int k, const float *logits, const int32_t *labels, float scale,
                       float *loss, float *glogits);
void sq_cpu_kl_fwd_bwd(int n, int k, const float *zt, const float *zs, float T, float alpha,
                       float *loss, float *gzs);
void sq_cpu_argmax(int n, int k, const float *z, int32_t *out);
/* ---- squat.c ---- */
void sq_cpu_squat_fwd_bwd(const sq_quant_cfg *cfg, size_t n, const float *xt, const float *qp,
                          const float *xs, float weight, float *loss, float *gxs);

/* ---- optim.c ---- */
void sq_cpu_sgd_step(size_t n, float *p, const float *g, float *m, float lr, float momentum,
                     float wd);
void sq_cpu_adam_step(size_t n, float *p, const float *g, float *m, float *v, float lr, float b1,
                      float b2, float eps, float wd, int t);
/* ---- dist.c: data parallelism ----
   sync_stats: NULL unless BN is synchronised across ranks; else 2c + 1 doubles, the global batch's
   mean (c), biased variance (c) and count. sync_grad: NULL, or the global sums of g (c) and
   g (x - save_mean) (c) and the count, g = gy, or gy act'(y) where y is not NULL (act' = 1 on
   0 < y < hi). The caller frees them. bn_channel_train's gs: NULL, or sync_stats' result. */
sq_status sq_cpu_dist_attach(const sq_comm *comm, int sync_bn);
void sq_cpu_allreduce_start(float *buf, size_t n);
void sq_cpu_allreduce_wait(void);
double *sq_cpu_bn_sync_stats(int n, int c, int hw, const float *x);
double *sq_cpu_bn_sync_grad(int n, int c, int hw, const float *x, const float *y, float hi, const float *gy,
                            const float *save_mean);
#endif
