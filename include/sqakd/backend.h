/* backend.h: the op table. The graph, training loops, metrics and checkpoints are written once
   against this table; the CPU backend (kernels/cpu) and the CUDA backend (kernels/cuda) fill it.

   Conventions for every op:
   - All float/int pointers are in the backend's memory (host memory for the CPU backend, device
     memory for CUDA). Layout is NCHW, row-major, float32.
   - Forward ops OVERWRITE their outputs.
   - Backward ops ACCUMULATE (+=) into every gradient output (input gradients and parameter
     gradients alike). A NULL gradient pointer means "not needed": skip it. Callers zero gradient
     buffers once per step, so fan-out (residual connections) needs no special handling.
   - Scalars that the training step produces (loss, correct counts) are written to backend memory
     and read back by the host only every N steps (no host sync inside a step). */
#ifndef SQAKD_BACKEND_H
#define SQAKD_BACKEND_H

#include "sqakd/comm.h"
#include "sqakd/common.h"
#include "sqakd/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_conv_shape {
    int n, c, h, w;    /* input (N, C, H, W) */
    int k;             /* output channels */
    int r, s;          /* kernel height, width */
    int stride, pad;   /* same in both dimensions; dilation is 1 */
    int groups;        /* 1 = dense, c = depthwise (c == groups, k multiple of groups) */
    int oh, ow;        /* derived by sq_conv_shape_init */
    int direct;        /* 1: the direct sum only, never a transform algorithm (Winograd): the
                          quantized layers, whose bits the PyTorch twin reproduces (0 from init) */
} sq_conv_shape;

/* Fills derived fields; returns SQ_EARG (with message) on an impossible shape. */
sq_status sq_conv_shape_init(sq_conv_shape *cs, int n, int c, int h, int w, int k, int r, int s,
                             int stride, int pad, int groups);

/* A pooling window (ONNX MaxPool / AveragePool, 2-D, dilation 1): kernel kh x kw, strides sh, sw,
   pads pad_t/l/b/r. Output size per axis: floor (or ceil, ceil_mode) of (in + pads - k) / s + 1,
   where with ceil_mode the last window must start inside the input or the leading pad (else it is
   dropped: PyTorch's rule, which ONNX follows). Max pooling ignores pads (they act as -inf).
   Average pooling divides by the window's elements inside the input (count_include_pad = 0) or
   inside the padded input (1; the part of a ceil-mode window beyond the trailing pad never
   counts). Every pad is smaller than the kernel along its axis, so every window holds an input
   element. */
typedef struct sq_pool_shape {
    int n, c, h, w;                  /* input (N, C, H, W) */
    int kh, kw, sh, sw;              /* window, strides */
    int pad_t, pad_l, pad_b, pad_r;  /* pads: top, left, bottom, right */
    int ceil_mode, count_include_pad;
    int oh, ow;                      /* derived by sq_pool_shape_init */
} sq_pool_shape;

/* Fills derived fields; returns SQ_EARG (with message) on an impossible shape. */
sq_status sq_pool_shape_init(sq_pool_shape *ps, int n, int c, int h, int w, int kh, int kw, int sh,
                             int sw, int pad_t, int pad_l, int pad_b, int pad_r, int ceil_mode,
                             int count_include_pad);
/* the zoo's square pools: k x k, stride and pad in both dimensions, floor, count_include_pad = 1 */
sq_status sq_pool_shape_square(sq_pool_shape *ps, int n, int c, int h, int w, int k, int stride,
                               int pad);

typedef enum { SQ_ACT_RELU = 0, SQ_ACT_RELU6 = 1 } sq_act_kind;
typedef enum { SQ_POOL_MAX = 0, SQ_POOL_AVG = 1 } sq_pool_kind;
/* 16-bit storage formats of the reduced-precision teacher ops (2 bytes per element) */
typedef enum { SQ_DT_F16 = 1, SQ_DT_BF16 = 2 } sq_dtype16;

/* Backend options: what a user may switch about how a backend runs (not what it computes, beyond
   TF32 rounding, BF16 output gradients and non-deterministic cuDNN algorithms). The CLI fills
   them from --backend-opt KEY=VALUE,... (sq_backend_opts_parse), command.txt and checkpoint metadata record them, and a
   backend gets them through its configure member before its first op. Backends ignore what does
   not apply to them (the CPU backend: all but bf16-bwd). */
typedef struct sq_backend_opts {
    int cuda_graph;          /* graph=0|1: record each training step once as a CUDA graph and replay it */
    int stage;               /* stage=0|1: asynchronous, double-buffered input staging */
    int tf32;                /* tf32=0|1: cuDNN may use TF32 tensor cores for fp32 convolutions */
    int conv_find;           /* conv-algo=heuristic|find: time cuDNN's algorithms instead of asking its heuristics */
    int conv_deterministic;  /* deterministic=0|1: only deterministic cuDNN algorithms (bit-reproducible) */
    int host_profile;        /* host-profile=0|1: print the host time spent inside cuDNN convolution calls */
    int bf16_bwd;            /* bf16-bwd=0|1: the CPU runs the backward of quantized convolutions with
                                BF16 dot products (qconv2d_bwd; the output gradient rounded to bf16) */
} sq_backend_opts;
#define SQ_BACKEND_OPTS_DEFAULT {.cuda_graph = 1, .stage = 1, .tf32 = 1, .conv_find = 0, .conv_deterministic = 1, \
                                 .host_profile = 0, .bf16_bwd = 1}

/* What a backend's device is (sqakd bench kernels, error messages). */
typedef struct sq_device_info {
    char name[128];          /* "cpu", or the GPU's name */
    double peak_gbps;        /* peak memory bandwidth, GB/s (0: unknown) */
    int multiprocessors;     /* streaming multiprocessors (0 on the CPU) */
} sq_device_info;

typedef struct sq_backend {
    const char *name;   /* "cpu" or "cuda" */
    int is_device;      /* 1 when pointers are not host-addressable */

    /* ---- memory ---- */
    void *(*alloc)(size_t bytes);                 /* zeroed; NULL on failure */
    void (*free)(void *p);
    void (*memset0)(void *p, size_t bytes);
    void (*copy_h2d)(void *dst, const void *src, size_t bytes);
    void (*copy_d2h)(void *dst, const void *src, size_t bytes);
    void (*copy_d2d)(void *dst, const void *src, size_t bytes);
    void (*sync)(void);
    void (*set_threads)(int threads);             /* CPU: OpenMP/BLAS threads; CUDA: no-op */
    /* Calls fn(ctx, i) for i = 0 .. n - 1, each the ops of one model (its own buffers; shared
       inputs only read), and returns when all are done. The CPU splits its threads into
       min(n, threads) teams that run the calls at once (call i in team i % teams, so a call's
       thread count, and with it its rounding, depends only on n and the thread count); a
       device runs them one after another on its stream. Optional: NULL runs them in order. */
    void (*run_models)(int n, void (*fn)(void *ctx, int i), void *ctx);

    /* ---- options, status and information (every backend fills these) ---- */
    /* applies o (before the first op; later calls apply to what is set up afterwards); SQ_EARG with
       a message for a value it cannot honour, and then nothing of o is applied (CUDA: tf32,
       conv-algo and deterministic cannot change once a convolution has been planned, since the
       plans keep the setting they were built with) */
    sq_status (*configure)(const sq_backend_opts *o);
    const sq_backend_opts *(*options)(void);      /* the options in force */
    /* The ops return void, so a failing device call is recorded instead: status returns the first
       failure since set-up or the last clear_status (SQ_OK if none) with its message in
       sq_last_error(); asynchronous faults surface at the next sync(), so call it after sync().
       error_count: failures recorded so far (never reset), to tell whether a stretch of work
       failed. The CPU backend never fails here (SQ_OK, 0). */
    sq_status (*status)(void);
    void (*clear_status)(void);
    unsigned (*error_count)(void);
    void (*device_info)(sq_device_info *info);

    /* ---- convolution ---- (workspace: ws of conv_ws_bytes(cs) bytes, owned by the caller) */
    size_t (*conv_ws_bytes)(const sq_conv_shape *cs);
    void (*conv2d_fwd)(const sq_conv_shape *cs, const float *x, const float *w, const float *b,
                       float *y, void *ws);
    /* x (N,C,H,W), w (K,C/groups,R,S), gy (N,K,OH,OW); gx, gw, gb accumulate; any may be NULL */
    void (*conv2d_bwd)(const sq_conv_shape *cs, const float *x, const float *w, const float *gy,
                       float *gx, float *gw, float *gb, void *ws);

    /* ---- batch norm ---- (x viewed as (N, C, HW); HW = 1 for BatchNorm1d)
       train: batch mean/biased var normalise; running stats updated with momentum and the
       UNBIASED variance (PyTorch semantics); save_mean/save_invstd (C) kept for backward. */
    void (*bn_fwd_train)(int n, int c, int hw, const float *x, const float *gamma,
                         const float *beta, float *run_mean, float *run_var, float momentum,
                         float eps, float *y, float *save_mean, float *save_invstd);
    void (*bn_fwd_eval)(int n, int c, int hw, const float *x, const float *gamma,
                        const float *beta, const float *run_mean, const float *run_var, float eps,
                        float *y);
    void (*bn_bwd)(int n, int c, int hw, const float *x, const float *gy, const float *gamma,
                   const float *save_mean, const float *save_invstd, float *gx, float *ggamma,
                   float *gbeta);

    /* ---- elementwise ---- */
    void (*act_fwd)(sq_act_kind kind, size_t n, const float *x, float *y);
    void (*act_bwd)(sq_act_kind kind, size_t n, const float *x, const float *gy, float *gx);
    void (*add_fwd)(size_t n, const float *a, const float *b, float *y);      /* y = a + b */
    void (*axpy)(size_t n, float alpha, const float *x, float *y);            /* y += alpha*x */
    void (*scale)(size_t n, float alpha, float *x);                           /* x *= alpha */
    void (*fill)(size_t n, float v, float *x);
    /* clip (ONNX Clip with constant bounds, lo <= hi; lo may be -inf, hi +inf):
       y = min(max(x, lo), hi), a NaN stays NaN. bwd: gx += gy where lo <= x <= hi (PyTorch's
       clamp gradient: 1 at the bounds themselves), nothing elsewhere or where x is NaN. */
    void (*clip_fwd)(size_t n, float lo, float hi, const float *x, float *y);
    void (*clip_bwd)(size_t n, float lo, float hi, const float *x, const float *gy, float *gx);
    /* per-channel affine over (N, C, HW): y = a[ch] * x + b[ch] (the product rounded, then the
       sum: no fused multiply-add, so both backends give the same bits); a, b (C) are constants.
       bwd: gx += a[ch] * gy (the product rounded, then the sum). */
    void (*affine_fwd)(int n, int c, int hw, const float *a, const float *b, const float *x,
                       float *y);
    void (*affine_bwd)(int n, int c, int hw, const float *a, const float *gy, float *gx);

    /* ---- pooling ---- windows and divisors: sq_pool_shape above; y (N, C, OH, OW).
       max: argmax (int32, same size as y, may be NULL in the forward) holds, per output, the
       index ih * W + iw of the chosen input inside its plane; the first maximum in window order
       wins, a NaN wins (and propagates). bwd: gx[argmax] += gy (max), the window's elements
       += gy / divisor (avg). */
    void (*pool_fwd)(sq_pool_kind kind, const sq_pool_shape *ps, const float *x, float *y,
                     int32_t *argmax);
    void (*pool_bwd)(sq_pool_kind kind, const sq_pool_shape *ps, const float *gy,
                     const int32_t *argmax, float *gx);
    void (*gap_fwd)(int n, int c, int hw, const float *x, float *y);          /* y (N, C) */
    void (*gap_bwd)(int n, int c, int hw, const float *gy, float *gx);

    /* ---- linear ---- x (N, IN), w (OUT, IN) as PyTorch, b (OUT) may be NULL, y (N, OUT) */
    void (*linear_fwd)(int n, int in, int out, const float *x, const float *w, const float *b,
                       float *y);
    void (*linear_bwd)(int n, int in, int out, const float *x, const float *w, const float *gy,
                       float *gx, float *gw, float *gb);

    /* ---- structural ---- */
    /* option-A shortcut: y (N, K, ceil(H/2), ceil(W/2)) = x[:, :, ::2, ::2] zero-padded with
       (K - C)/2 channels on each side */
    void (*shortcut_a_fwd)(int n, int c, int h, int w, int k, const float *x, float *y);
    void (*shortcut_a_bwd)(int n, int c, int h, int w, int k, const float *gy, float *gx);
    /* y (N, C1 + C2, HW) = cat(a (N, C1, HW), b (N, C2, HW)) */
    void (*concat_fwd)(int n, int c1, int c2, int hw, const float *a, const float *b, float *y);
    void (*concat_bwd)(int n, int c1, int c2, int hw, const float *gy, float *ga, float *gb);
    /* ShuffleNet channel shuffle: view (N, G, C/G, HW) -> transpose(1, 2) */
    void (*shuffle_fwd)(int n, int c, int hw, int groups, const float *x, float *y);
    void (*shuffle_bwd)(int n, int c, int hw, int groups, const float *gy, float *gx);
    /* constant padding of H and W (pads >= 0): y (N, C, PT + H + PB, PL + W + PR) holds x at
       row PT, column PL and `value` (any float, -inf included) around it. bwd: gx += the inner
       (H, W) window of gy. */
    void (*pad_fwd)(int n, int c, int h, int w, int pt, int pl, int pb, int pr, float value,
                    const float *x, float *y);
    void (*pad_bwd)(int n, int c, int h, int w, int pt, int pl, int pb, int pr, const float *gy,
                    float *gx);
    /* channel slice: y (N, K, HW) = x (N, C, HW) channels [c0, c0 + K) (0 <= c0, c0 + K <= C).
       bwd: gx's channels [c0, c0 + K) += gy; the others are left as they are. */
    void (*slice_fwd)(int n, int c, int hw, int c0, int k, const float *x, float *y);
    void (*slice_bwd)(int n, int c, int hw, int c0, int k, const float *gy, float *gx);
    /* inverted dropout; mask (uint8) written by fwd from (seed, element index) */
    void (*dropout_fwd)(size_t n, float p, uint64_t seed, const float *x, float *y,
                        uint8_t *mask);
    void (*dropout_bwd)(size_t n, float p, const uint8_t *mask, const float *gy, float *gx);

    /* ---- losses ---- (loss written to *loss, a backend-memory float; glogits OVERWRITTEN) */
    /* mean softmax cross-entropy over the batch; glogits = scale * (softmax - onehot) / n */
    void (*softmax_ce)(int n, int k, const float *logits, const int32_t *labels, float scale,
                       float *loss, float *glogits);
    /* method.md section 2: L = alpha T^2 / n * sum KL(P_T || P_S); gzs = alpha T/n (P_S - P_T).
       gzs may be NULL (evaluation: loss only). */
    void (*kl_fwd_bwd)(int n, int k, const float *zt, const float *zs, float T, float alpha,
                       float *loss, float *gzs);
    /* SQuaT feature loss (issue 20, docs/squat.md), one fused pass over n elements: the teacher's
       feature xt is fake-quantized with the student's activation quantizer (cfg, qp: its current
       parameters; no gradient into xt or qp from this side), and against the student's quantized
       feature xs: *loss += weight / n * sum (xs - Q(xt))^2 (ADDED to the scalar, which already
       holds the logit loss of the step), gxs += 2 weight / n (xs - Q(xt)) (accumulated; NULL:
       loss only). The sum is taken in a fixed order: it does not depend on the thread count. */
    void (*squat_fwd_bwd)(const sq_quant_cfg *cfg, size_t n, const float *xt, const float *qp,
                          const float *xs, float weight, float *loss, float *gxs);
    /* argmax over k per row -> out (N) int32 */
    void (*argmax)(int n, int k, const float *z, int32_t *out);

    /* ---- fake quantization ---- (math: sqakd/quant_math.h; cfg is host memory)
       qp: this tensor's quantizer parameters (sq_quant_nparams(cfg) floats, backend memory).
       scratch: SQ_QUANT_SCRATCH floats of backend memory for reductions (e.g. DoReFa max|tanh|),
       written by fwd and read by bwd. y may equal x only if bwd is not needed.
       bwd: gy is the gradient w.r.t. y; gx and gqp accumulate. */
    void (*fakequant_fwd)(const sq_quant_cfg *cfg, size_t n, const float *x, const float *qp,
                          float *y, float *scratch);
    void (*fakequant_bwd)(const sq_quant_cfg *cfg, size_t n, const float *x, const float *qp,
                          const float *gy, float *gx, float *gqp, float *scratch);
    /* output scale (ewgs): y = |s| z;  bwd: gz += |s| gy; gs += sign(s) sum(gy z)  (s: 1 float) */
    void (*absscale_fwd)(size_t n, const float *s, const float *z, float *y);
    void (*absscale_bwd)(size_t n, const float *s, const float *z, const float *gy, float *gz,
                         float *gs);

    /* ---- optimizers ---- one fused pass over a whole buffer ----
       sgd (PyTorch): d = g + wd p; m = mom m + d; p -= lr m
       adam (L2): d = g + wd p; m = b1 m + (1-b1) d; v = b2 v + (1-b2) d^2;
                  p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)          t >= 1 */
    void (*sgd_step)(size_t n, float *p, const float *g, float *m, float lr, float momentum,
                     float wd);
    void (*adam_step)(size_t n, float *p, const float *g, float *m, float *v, float lr, float b1,
                      float b2, float eps, float wd, int t);

    /* ---- optional fused ops: a backend may leave any of them NULL, and the graph then runs
       the unfused pair (same results up to float rounding) ----
       bn_act_fwd_train: y = act(BN_train(x)), with bn_fwd_train's statistics, running-stat update
         and saved mean/invstd; the BN output itself is never stored.
       bn_act_bwd: backward of that pair from the activation output y and its gradient gy:
         g = gy * act'(y) (ReLU: y > 0; ReLU6: 0 < y < 6), then exactly bn_bwd with g.
       add_act_fwd: y = act(a + b).  add_act_bwd: g = gy * act'(y); ga += g; gb += g (either
         may be NULL). */
    void (*bn_act_fwd_train)(int n, int c, int hw, sq_act_kind act, const float *x,
                             const float *gamma, const float *beta, float *run_mean,
                             float *run_var, float momentum, float eps, float *y,
                             float *save_mean, float *save_invstd);
    void (*bn_act_bwd)(int n, int c, int hw, sq_act_kind act, const float *x, const float *y,
                       const float *gy, const float *gamma, const float *save_mean,
                       const float *save_invstd, float *gx, float *ggamma, float *gbeta);
    void (*add_act_fwd)(size_t n, sq_act_kind act, const float *a, const float *b, float *y);
    void (*add_act_bwd)(size_t n, sq_act_kind act, const float *y, const float *gy, float *ga,
                        float *gb);
    /* qconv2d_fwd: forward of a convolution whose input xq and weight wq are outputs of
       fakequant_fwd (configs qa / qw, parameters qpa / qpw in backend memory), computed in
       integer arithmetic on the quantizers' grids (quant_math.h sq_qm_grid):
       y = (sum of code products) * step_x * step_w * |yscale[0]| + b  (yscale, b may be NULL).
       Returns 0 and computes nothing when the backend cannot (shape, grid, CPU features); the
       caller then runs conv2d_fwd. */
    int (*qconv2d_fwd)(const sq_conv_shape *cs, const sq_quant_cfg *qa, const float *qpa,
                       const float *xq, const sq_quant_cfg *qw, const float *qpw, const float *wq,
                       const float *yscale, const float *b, float *y, void *ws);
    /* qconv2d_bwd: the backward of the same convolution (x = xq, w = |yscale[0]| wq, as
       conv2d_bwd: gw and gb accumulate; gx is written when gx_set, else accumulated; gx, gw, gb
       may be NULL), with the codes on the quantizers' grids as exact operands and the output
       gradient rounded to bf16 (relative error <= 2^-8 per element; sums in fp32). Returns 0
       and computes nothing when the backend cannot or its options say not to (bf16-bwd=0);
       the caller then runs conv2d_bwd. Optional (NULL: never). */
    int (*qconv2d_bwd)(const sq_conv_shape *cs, const sq_quant_cfg *qa, const float *qpa,
                       const float *xq, const sq_quant_cfg *qw, const float *qpw, const float *wq,
                       const float *yscale, const float *gy, float *gx, int gx_set, float *gw,
                       float *gb, void *ws);
    /* bn_add_act_fwd_train: y = act(BN_train(x) + r) (a residual block's last BN, the add and
       the activation). bn_add_act_bwd: g = gy * act'(y); gr += g (gr may be NULL); then exactly
       bn_bwd with g. Same results as the unfused ops. */
    void (*bn_add_act_fwd_train)(int n, int c, int hw, sq_act_kind act, const float *x,
                                 const float *r, const float *gamma, const float *beta,
                                 float *run_mean, float *run_var, float momentum, float eps,
                                 float *y, float *save_mean, float *save_invstd);
    void (*bn_add_act_bwd)(int n, int c, int hw, sq_act_kind act, const float *x, const float *y,
                           const float *gy, const float *gamma, const float *save_mean,
                           const float *save_invstd, float *gx, float *gr, float *ggamma,
                           float *gbeta);
    /* fakequant_scaled_fwd: fakequant_fwd (x -> y) and ys = |s[0]| y in one pass (a layer's
       EWGS output scale folded into its weight, model.h). fakequant_scaled_bwd: the backward
       of that pair from gys = dL/dys: gy = |s| gys (written), gs += sign(s) sum(gys y) with y
       as the forward wrote it, then fakequant_bwd from gy (gx, gqp accumulate). The same values
       as absscale_fwd / absscale_bwd / fakequant_bwd, up to the order of the sums. */
    void (*fakequant_scaled_fwd)(const sq_quant_cfg *cfg, size_t n, const float *x,
                                 const float *qp, const float *s, float *y, float *ys,
                                 float *scratch);
    void (*fakequant_scaled_bwd)(const sq_quant_cfg *cfg, size_t n, const float *x,
                                 const float *qp, const float *s, const float *y,
                                 const float *gys, float *gy, float *gx, float *gqp, float *gs,
                                 float *scratch);
    /* bias_add_act_fwd: y = act(x + b[ch] [+ r]) over (n, c, hw) tensors, summed in that order
       (r may be NULL). The inference graph runs a folded convolution without its bias and this
       after it, instead of the bias, the (folded BN's) activation or the residual add and
       activation as separate passes (the frozen teacher). */
    void (*bias_add_act_fwd)(int n, int c, int hw, sq_act_kind act, const float *x,
                             const float *b, const float *r, float *y);
    /* "set" variants of backward ops: as their namesakes, but gx is WRITTEN, not accumulated
       into (gw, gb, gr and the BN parameter gradients still accumulate). The graph uses them for
       gradient buffers with one writer, which then need no zeroing before the backward. */
    void (*conv2d_bwd_set)(const sq_conv_shape *cs, const float *x, const float *w,
                           const float *gy, float *gx, float *gw, float *gb, void *ws);
    void (*bn_bwd_set)(int n, int c, int hw, const float *x, const float *gy, const float *gamma,
                       const float *save_mean, const float *save_invstd, float *gx,
                       float *ggamma, float *gbeta);
    void (*bn_act_bwd_set)(int n, int c, int hw, sq_act_kind act, const float *x, const float *y,
                           const float *gy, const float *gamma, const float *save_mean,
                           const float *save_invstd, float *gx, float *ggamma, float *gbeta);
    void (*bn_add_act_bwd_set)(int n, int c, int hw, sq_act_kind act, const float *x,
                               const float *y, const float *gy, const float *gamma,
                               const float *save_mean, const float *save_invstd, float *gx,
                               float *gr, float *ggamma, float *gbeta);

    /* ---- optional: device memory report (CUDA) ---- free and total bytes of the device
       memory; returns 0 on success. NULL on host backends. */
    int (*mem_info)(size_t *free_bytes, size_t *total_bytes);

    /* ---- optional: asynchronous input staging (CUDA) ----
       A stage (stage_new, once, before the loop) owns two slots, each a device buffer of `bytes`
       and, when host_slots is set, a host-pinned buffer of `bytes`; and a copy stream of its own.
       stage_put copies src (host, at most `bytes`) into the next slot's pinned buffer (the stage
       must have host slots), uploads it on the copy stream and makes the compute stream wait for
       that upload (an event, no host synchronisation); it returns the slot's device buffer,
       which compute work may read if it is enqueued before the NEXT put on this stage (the put
       after that overwrites the slot without waiting for work enqueued later). A slot is
       uploaded into again only after the compute work enqueued before the previous put has
       finished (device-side wait), so batch i+1's upload overlaps batch i's compute; the host
       waits only for the upload two puts back (which bounds how far it runs ahead). stage_new
       returns NULL (error set) when pinned or device memory is short; stage_free waits for the
       device and frees everything.
       stage_put_pinned is stage_put without the host copy: the upload reads src itself (memory
       from host_alloc, which the caller owns), later, on the copy stream. So src must not be
       written or freed until that upload is known complete: the second put (of either kind)
       after this one on the same stage waits for it before it returns, and so do stage_free
       and sync. A stage fed only by stage_put_pinned needs no host slots.
       host_alloc returns `bytes` of pinned (page-locked) host memory, host-addressable, that
       stage_put_pinned uploads from directly; NULL (error set) when none is left. host_free
       releases it (NULL: no-op) and must not be called while an upload from it may be in flight.
       NULL members: callers copy with copy_h2d as before, and allocate host memory with malloc
       (the CPU backend: all NULL). */
    void *(*stage_new)(size_t bytes, int host_slots);
    const void *(*stage_put)(void *stage, const void *src, size_t bytes);
    const void *(*stage_put_pinned)(void *stage, const void *src, size_t bytes);
    void (*stage_free)(void *stage);
    void *(*host_alloc)(size_t bytes);
    void (*host_free)(void *p);

    /* ---- optional: record and replay (CUDA graphs) ----
       graph_begin starts recording: the ops called after it enqueue nothing and run nothing;
       graph_end stops and returns the recording as a replayable graph, or NULL (error set) when
       it could not be recorded (an op that synchronises or allocates was called, or the
       recording failed otherwise). Either way nothing recorded has run, and after a NULL the
       backend is as it was before graph_begin (no sticky error). graph_run enqueues one replay:
       the recorded ops with the arguments they had, on the same buffers; graph_free releases the
       graph. Scalars the ops took (batch size, learning rate, quantizer settings) are frozen in
       the graph, and so are the buffers: the caller records again when any of them changes. */
    int (*graph_begin)(void);
    void *(*graph_end)(void);
    void (*graph_run)(void *graph);
    void (*graph_free)(void *graph);

    /* ---- optional: reduced-precision teacher (CUDA) ----
       Inference-only ops on 16-bit tensors (dt: SQ_DT_F16 or SQ_DT_BF16; same NCHW layouts as
       the fp32 ops above) with fp32 arithmetic inside (convolutions accumulate in fp32 on tensor
       cores). host/model/teacher_prec.c runs the frozen, BatchNorm-folded teacher through them
       for --teacher-precision fp16|bf16; all NULL: the backend has no such path.
       act arguments: -1 for none, else an sq_act_kind applied to the result. */
    void (*to16)(sq_dtype16 dt, size_t n, const float *x, void *y);        /* round to nearest */
    void (*from16)(sq_dtype16 dt, size_t n, const void *x, float *y);
    /* workspace conv16_fwd needs for this shape (plans the convolution: no allocation) */
    size_t (*conv16_ws_bytes)(sq_dtype16 dt, const sq_conv_shape *cs);
    /* y = act(conv(x, w) + b): x, w, y 16-bit; the bias given twice, b16 (16-bit, for the fused
       cuDNN path) and b32 (fp32), both NULL or both set; ws of conv16_ws_bytes bytes */
    void (*conv16_fwd)(sq_dtype16 dt, const sq_conv_shape *cs, const void *x, const void *w,
                       const void *b16, const float *b32, int act, void *y, void *ws);
    void (*act16_fwd)(sq_dtype16 dt, sq_act_kind kind, size_t n, const void *x, void *y);
    void (*add16_fwd)(sq_dtype16 dt, size_t n, int act, const void *a, const void *b, void *y);
    void (*pool16_fwd)(sq_dtype16 dt, sq_pool_kind kind, int n, int c, int h, int w, int k,
                       int stride, int pad, const void *x, void *y);
    /* y (N, C) in fp32 */
    void (*gap16_fwd)(sq_dtype16 dt, int n, int c, int hw, const void *x, float *y);
    void (*shortcut_a16_fwd)(sq_dtype16 dt, int n, int c, int h, int w, int k, const void *x,
                             void *y);

    /* ---- optional: data parallelism (one process per device, docs/scaling.md) ----
       dist_attach: the ranks this backend's process trains with (comm NULL: alone, which is also
       how a backend starts; a comm of size 1 is alone too, though a backend may set up its
       collectives for it) and whether BatchNorm reduces across them (sync_bn):
       then the training-mode BN members (bn_fwd_train, bn_act_fwd_train, bn_add_act_fwd_train)
       normalise with the mean and biased variance of the whole global batch (every rank's x)
       and update the running statistics with them, and their backward members compute gx from
       the sums of g and g (x - mean) over the global batch (the count n hw summed over ranks),
       while ggamma and gbeta still accumulate this rank's part only (the gradient all-reduce
       sums them). Every rank must then call every BN member in the same order. Not SQ_OK, with a
       message, when the collectives cannot be set up (NCCL, or the memory sync_bn needs).
       allreduce_start: buf (n floats, backend memory) is to become the sum over all attached
       ranks, in place, the same bits on every rank; nothing without a comm. It sees the ops
       before it, but may still be running while the ops after it run (CUDA: on a stream of its
       own, overlapped with the rest of the backward), so nothing may touch buf until
       allreduce_wait, after which every started sum is complete for the ops that follow (it
       blocks no host thread on a device). Several may be started before one wait; every rank
       starts the same sizes in the same order. A backend may complete the sum within
       allreduce_start (the CPU's). */
    sq_status (*dist_attach)(const sq_comm *comm, int sync_bn);
    void (*allreduce_start)(float *buf, size_t n);
    void (*allreduce_wait)(void);
} sq_backend;

/* Backends. sq_backend_cpu() always exists. sq_backend_cuda() returns NULL (with sq_last_error
   set) when built without CUDA or when no GPU is present. */
const sq_backend *sq_backend_cpu(void);
const sq_backend *sq_backend_cuda(void);
/* What each backend module was built with, for --version: "cpu (OpenMP, OpenBLAS)", "cuda (CUDA
   runtime 12.4, cuDNN 9.1.0, ...)"; sq_backend_cuda_build() is NULL in a build without CUDA. Neither
   touches a device. */
const char *sq_backend_cpu_build(void);
const char *sq_backend_cuda_build(void);
/* Data parallelism, before the first sq_backend_cuda(): the process is rank local_rank on its node,
   and takes GPU local_rank % (the GPUs it sees) instead of the current device (a launcher that
   gives each rank its own GPU, e.g. srun --gpus-per-task=1, leaves it one: device 0). No-op in a
   build without CUDA and after the backend is set up. */
void sq_backend_cuda_local_rank(int local_rank);
/* "auto" | "cpu" | "cuda"; NULL with an error when unavailable */
const sq_backend *sq_backend_get(const char *name);
/* sq_backend_get, then the options parsed from opts (NULL: the defaults) given to its configure,
   and its threads (threads > 0); NULL with a one-line error */
const sq_backend *sq_backend_open(const char *device, const char *opts, int threads);
/* Parses "KEY=VALUE[,KEY=VALUE...]" over o (keys and values in sq_backend_opts' comments);
   SQ_EARG with a one-line error naming the key and what it takes. */
sq_status sq_backend_opts_parse(const char *text, sq_backend_opts *o);
/* the options as the canonical "KEY=VALUE,..." list, every key (dst of cap bytes) */
void sq_backend_opts_format(const sq_backend_opts *o, char *dst, size_t cap);
/* Sets the one-line error for a failed allocation of about `bytes` for `what` (e.g. the
   architecture) planned at batch `batch` and returns SQ_ENOMEM: "out of GPU memory allocating
   1.2 GiB for resnet20 at batch 4096 (free 0.8 of 79.1 GiB): lower --batch" on a device backend
   (free/total from mem_info when it has one), "out of cpu memory allocating ..." otherwise.
   advice replaces "lower --batch" when not NULL. */
sq_status sq_backend_oom_error(const sq_backend *be, double bytes, const char *what, int batch,
                               const char *advice);

#ifdef __cplusplus
}
#endif
#endif
