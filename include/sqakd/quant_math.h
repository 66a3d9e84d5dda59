/* quant_math.h: per-element quantizer math (method.md section 3), ONE source for the CPU backend
   (C11, gcc) and the CUDA backend (C++17, nvcc). Every function is static inline and SQ_HD.

   Template:  c = N(x; theta) in [0, 1]  ->  q = rint(c (L-1)) / (L-1)  ->  y = M(q; theta)
   Shared discretizer backward: g_c = g_q + delta |g_q| (c - q)   (delta = 0: STE).
   Clip masks are inclusive (0 <= pre-clip value <= 1 is "inside").

   Two ways to use it:
   - the per-kind functions (sq_qm_ewgs_*, sq_qm_pact_*, sq_qm_lsq_*, sq_qm_dorefa_*);
   - the dispatcher: fill an sq_qm_ctx once per tensor on the host (sq_qm_ctx_init from the cfg),
     set p0/p1 from the tensor's qp and maxabs (DoReFa weights) where the kernel can read them, then
     y = sq_qm_fwd(&ctx, x) and g = sq_qm_bwd(&ctx, x, gy) per element. g.gx is the input gradient,
     g.gp0 / g.gp1 are this element's contributions to the gradients of qp[0] / qp[1] (sum them over
     the tensor; LSQ's gradient scale gs is already applied per element).

   Parameter layout (quant.h): EWGS {l, u}; PACT act {alpha}; LSQ {s}; DoReFa and PACT weight: none.
   PACT weights use DoReFa weights. DoReFa weights need M = max|tanh(w)| over the tensor (passed in;
   treated as a constant in the backward). */
#ifndef SQAKD_QUANT_MATH_H
#define SQAKD_QUANT_MATH_H

#include <math.h>
#include <stddef.h>
#include "sqakd/quant.h"

#ifdef __CUDACC__
#define SQ_HD __host__ __device__
#else
#define SQ_HD
#endif

/* Per-element backward result. */
typedef struct sq_qm_grad {
    float gx;  /* dL/dx */
    float gp0; /* this element's contribution to dL/dqp[0] */
    float gp1; /* this element's contribution to dL/dqp[1] */
} sq_qm_grad;

static inline SQ_HD sq_qm_grad sq_qm_grad_make(float gx, float gp0, float gp1)
{
    sq_qm_grad r;
    r.gx = gx;
    r.gp0 = gp0;
    r.gp1 = gp1;
    return r;
}

/* ---- shared discretizer ---- */

/* L = 2^bits levels */
static inline SQ_HD int sq_qm_levels(int bits) { return 1 << bits; }

/* q = round_half_even(c (L-1)) / (L-1) */
static inline SQ_HD float sq_qm_disc_fwd(float c, int levels)
{
    float steps = (float)(levels - 1);
    return rintf(c * steps) / steps;
}

/* g_c = g_q + delta |g_q| (c - q) */
static inline SQ_HD float sq_qm_disc_bwd(float gq, float c, float q, float delta)
{
    return gq + delta * fabsf(gq) * (c - q);
}

static inline SQ_HD float sq_qm_clip01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

/* inclusive inside-mask of a pre-clip normalized value */
static inline SQ_HD float sq_qm_inside01(float v) { return (v >= 0.0f && v <= 1.0f) ? 1.0f : 0.0f; }

/* ---- EWGS interval quantizer (3.2): qp = {l, u} ---- */

/* weights: c = clip((w - l)/(u - l)); W_q = 2q - 1 */
static inline SQ_HD float sq_qm_ewgs_w_fwd(float w, float l, float u, int levels)
{
    float c = sq_qm_clip01((w - l) / (u - l));
    return 2.0f * sq_qm_disc_fwd(c, levels) - 1.0f;
}

/* activations: c = clip((x - l)/(u - l)); x_q = q */
static inline SQ_HD float sq_qm_ewgs_a_fwd(float x, float l, float u, int levels)
{
    return sq_qm_disc_fwd(sq_qm_clip01((x - l) / (u - l)), levels);
}

/* common backward given g_q: D = u - l, u_x = (x - l)/D, m = 1[0 <= u_x <= 1],
   G_x = m g_c / D, G_l = m g_c (u_x - 1)/D, G_u = m g_c (-u_x)/D */
static inline SQ_HD sq_qm_grad sq_qm_ewgs_bwd_gq(float x, float l, float u, int levels, float delta,
                                                 float gq)
{
    /* branch-free (computed, then selected) so CPU loops vectorise; same values as an early
       return for every input, NaN and inf included */
    float d = u - l;
    float ux = (x - l) / d;
    int in = ux >= 0.0f && ux <= 1.0f;
    float q = sq_qm_disc_fwd(ux, levels);
    float gc = sq_qm_disc_bwd(gq, ux, q, delta) / d;
    return sq_qm_grad_make(in ? gc : 0.0f, in ? gc * (ux - 1.0f) : 0.0f, in ? -gc * ux : 0.0f);
}

/* weights: g_q = 2 gy */
static inline SQ_HD sq_qm_grad sq_qm_ewgs_w_bwd(float w, float l, float u, int levels, float delta,
                                                float gy)
{
    return sq_qm_ewgs_bwd_gq(w, l, u, levels, delta, 2.0f * gy);
}

/* activations: g_q = gy */
static inline SQ_HD sq_qm_grad sq_qm_ewgs_a_bwd(float x, float l, float u, int levels, float delta,
                                                float gy)
{
    return sq_qm_ewgs_bwd_gq(x, l, u, levels, delta, gy);
}

/* ---- PACT activations (3.3): qp = {alpha} ----
   c = clip(x, 0, alpha)/alpha; y = alpha q.
   G_x = m g_c / alpha with g_q = alpha gy (= m gy when delta = 0), m = 1[0 <= x <= alpha];
   G_alpha = gy 1[x > alpha]  (PACT paper STE: alpha enters only through the clip) */
static inline SQ_HD float sq_qm_pact_a_fwd(float x, float alpha, int levels)
{
    float xc = x < 0.0f ? 0.0f : (x > alpha ? alpha : x);
    return alpha * sq_qm_disc_fwd(xc / alpha, levels);
}

static inline SQ_HD sq_qm_grad sq_qm_pact_a_bwd(float x, float alpha, int levels, float delta,
                                                float gy)
{
    if (x > alpha) return sq_qm_grad_make(0.0f, gy, 0.0f);
    if (x < 0.0f) return sq_qm_grad_make(0.0f, 0.0f, 0.0f);
    float c = x / alpha;
    float q = sq_qm_disc_fwd(c, levels);
    float gq = alpha * gy;
    return sq_qm_grad_make(sq_qm_disc_bwd(gq, c, q, delta) / alpha, 0.0f, 0.0f);
}

/* ---- LSQ (3.4): qp = {s} ----
   v = clip(x/s, -Qn, Qp); y = round(v) s. Template: c = (v + Qn)/K, K = Qn + Qp, L = K + 1, so
   c - q = (v - round(v))/K; round is done on v directly (exact in integers; identical to the
   template for even Qn, i.e. every grid except signed 1-bit, where Qn = 1, Qp = 0: grid {-s, 0}).
   Backward (template, g_q = gy s K): G_x = m g_c/(s K) = m (gy + delta |gy| sgn(s) (c - q)),
   G_s = gs (gy round(v) - (x/s) G_x)  -> delta = 0: gs gy (round(x/s) - x/s) inside, gs gy (-Qn)
   below, gs gy Qp above. gs = 1/sqrt(grad_numel * max(Qp, 1)). */
static inline SQ_HD void sq_qm_lsq_bounds(int bits, int is_signed, float *qn, float *qp)
{
    if (is_signed) {
        *qn = (float)(1 << (bits - 1));
        *qp = (float)((1 << (bits - 1)) - 1);
    } else {
        *qn = 0.0f;
        *qp = (float)((1 << bits) - 1);
    }
}

/* gs = 1/sqrt(numel * Qp); Qp = 0 (signed 1-bit) is taken as 1 to stay finite */
static inline SQ_HD float sq_qm_lsq_grad_scale(float grad_numel, float qp)
{
    float p = qp < 1.0f ? 1.0f : qp;
    float n = grad_numel < 1.0f ? 1.0f : grad_numel;
    return 1.0f / sqrtf(n * p);
}

static inline SQ_HD float sq_qm_lsq_fwd(float x, float s, float qn, float qp)
{
    float v = x / s;
    v = v < -qn ? -qn : (v > qp ? qp : v);
    return rintf(v) * s;
}

static inline SQ_HD sq_qm_grad sq_qm_lsq_bwd(float x, float s, float qn, float qp, float delta,
                                             float gscale, float gy)
{
    float v = x / s;
    if (v < -qn) return sq_qm_grad_make(0.0f, gscale * gy * -qn, 0.0f);
    if (v > qp) return sq_qm_grad_make(0.0f, gscale * gy * qp, 0.0f);
    float vq = rintf(v);
    float sgn = s > 0.0f ? 1.0f : (s < 0.0f ? -1.0f : 0.0f);
    float gx = gy + delta * fabsf(gy) * sgn * (v - vq) / (qn + qp);
    return sq_qm_grad_make(gx, gscale * (gy * vq - v * gx), 0.0f);
}

/* ---- DoReFa (3.5) ----
   weights: t = tanh(w); c = t/(2M) + 1/2 with M = max|tanh(w)| over the tensor; W_q = 2q - 1;
            G_w = g_c (1 - t^2)/(2M), g_q = 2 gy. M <= 0 (all-zero tensor): c = 1/2, G_w = 0.
   activations: c = clip(x, 0, 1); x_q = q; G_x = m g_c, g_q = gy. */
static inline SQ_HD float sq_qm_dorefa_w_fwd(float w, float maxabs, int levels)
{
    float c = maxabs > 0.0f ? tanhf(w) / (2.0f * maxabs) + 0.5f : 0.5f;
    return 2.0f * sq_qm_disc_fwd(c, levels) - 1.0f;
}

static inline SQ_HD float sq_qm_dorefa_w_bwd(float w, float maxabs, int levels, float delta,
                                             float gy)
{
    if (!(maxabs > 0.0f)) return 0.0f;
    float t = tanhf(w);
    float c = t / (2.0f * maxabs) + 0.5f;
    float q = sq_qm_disc_fwd(c, levels);
    return sq_qm_disc_bwd(2.0f * gy, c, q, delta) * (1.0f - t * t) / (2.0f * maxabs);
}

static inline SQ_HD float sq_qm_dorefa_a_fwd(float x, int levels)
{
    return sq_qm_disc_fwd(sq_qm_clip01(x), levels);
}

static inline SQ_HD float sq_qm_dorefa_a_bwd(float x, int levels, float delta, float gy)
{
    if (!(x >= 0.0f && x <= 1.0f)) return 0.0f;
    return sq_qm_disc_bwd(gy, x, sq_qm_disc_fwd(x, levels), delta);
}

/* ---- dispatcher ---- */

typedef enum sq_qm_op {
    SQ_QM_IDENTITY = 0, /* SQ_QUANT_NONE */
    SQ_QM_EWGS_W,
    SQ_QM_EWGS_A,
    SQ_QM_PACT_A,
    SQ_QM_LSQ,
    SQ_QM_DOREFA_W, /* DoReFa weights and PACT weights */
    SQ_QM_DOREFA_A
} sq_qm_op;

typedef struct sq_qm_ctx {
    int op;       /* sq_qm_op */
    int levels;   /* L = 2^bits */
    float delta;  /* discretizer backward */
    float qn, qp; /* LSQ grid bounds */
    float gscale; /* LSQ gradient scale */
    float p0, p1; /* quantizer parameters qp[0], qp[1] (caller loads them) */
    float maxabs; /* DoReFa weights: max|tanh(w)| over the tensor (caller loads it) */
} sq_qm_ctx;

/* Fills everything but p0, p1 and maxabs (set to 0). n: the tensor's element count, used as LSQ's
   grad_numel when cfg->grad_numel <= 0. Host-side (cfg is host memory). */
static inline SQ_HD void sq_qm_ctx_init(sq_qm_ctx *ctx, const sq_quant_cfg *cfg, size_t n)
{
    int w = cfg->role == SQ_QROLE_WEIGHT;
    switch (cfg->kind) {
    case SQ_QUANT_EWGS: ctx->op = w ? SQ_QM_EWGS_W : SQ_QM_EWGS_A; break;
    case SQ_QUANT_PACT: ctx->op = w ? SQ_QM_DOREFA_W : SQ_QM_PACT_A; break;
    case SQ_QUANT_LSQ: ctx->op = SQ_QM_LSQ; break;
    case SQ_QUANT_DOREFA: ctx->op = w ? SQ_QM_DOREFA_W : SQ_QM_DOREFA_A; break;
    default: ctx->op = SQ_QM_IDENTITY; break;
    }
    int bits = cfg->bits < 1 ? 1 : (cfg->bits > 8 ? 8 : cfg->bits);
    ctx->levels = sq_qm_levels(bits);
    ctx->delta = cfg->delta;
    sq_qm_lsq_bounds(bits, cfg->is_signed, &ctx->qn, &ctx->qp);
    ctx->gscale = sq_qm_lsq_grad_scale(cfg->grad_numel > 0.0f ? cfg->grad_numel : (float)n,
                                       ctx->qp);
    ctx->p0 = 0.0f;
    ctx->p1 = 0.0f;
    ctx->maxabs = 0.0f;
}

static inline SQ_HD float sq_qm_fwd(const sq_qm_ctx *k, float x)
{
    switch (k->op) {
    case SQ_QM_EWGS_W: return sq_qm_ewgs_w_fwd(x, k->p0, k->p1, k->levels);
    case SQ_QM_EWGS_A: return sq_qm_ewgs_a_fwd(x, k->p0, k->p1, k->levels);
    case SQ_QM_PACT_A: return sq_qm_pact_a_fwd(x, k->p0, k->levels);
    case SQ_QM_LSQ: return sq_qm_lsq_fwd(x, k->p0, k->qn, k->qp);
    case SQ_QM_DOREFA_W: return sq_qm_dorefa_w_fwd(x, k->maxabs, k->levels);
    case SQ_QM_DOREFA_A: return sq_qm_dorefa_a_fwd(x, k->levels);
    default: return x;
    }
}

static inline SQ_HD sq_qm_grad sq_qm_bwd(const sq_qm_ctx *k, float x, float gy)
{
    switch (k->op) {
    case SQ_QM_EWGS_W: return sq_qm_ewgs_w_bwd(x, k->p0, k->p1, k->levels, k->delta, gy);
    case SQ_QM_EWGS_A: return sq_qm_ewgs_a_bwd(x, k->p0, k->p1, k->levels, k->delta, gy);
    case SQ_QM_PACT_A: return sq_qm_pact_a_bwd(x, k->p0, k->levels, k->delta, gy);
    case SQ_QM_LSQ: return sq_qm_lsq_bwd(x, k->p0, k->qn, k->qp, k->delta, k->gscale, gy);
    case SQ_QM_DOREFA_W:
        return sq_qm_grad_make(sq_qm_dorefa_w_bwd(x, k->maxabs, k->levels, k->delta, gy), 0.0f,
                               0.0f);
    case SQ_QM_DOREFA_A:
        return sq_qm_grad_make(sq_qm_dorefa_a_bwd(x, k->levels, k->delta, gy), 0.0f, 0.0f);
    default: return sq_qm_grad_make(gy, 0.0f, 0.0f);
    }
}

/* The integer grid of the op's output: every value it produces is code * step (up to float
   rounding) with an integer code in [cmin, cmax]. 0 when there is none (identity) or the
   parameters make it degenerate. p0 / p1 must be loaded. Used by integer-arithmetic kernels
   (kernels/cpu/qconv.c), which recover codes as rint(y / step). */
static inline SQ_HD int sq_qm_grid(const sq_qm_ctx *k, float *step, int *cmin, int *cmax)
{
    const int n = k->levels - 1;
    switch (k->op) {
    case SQ_QM_EWGS_A: /* q = j / n */
    case SQ_QM_DOREFA_A:
        *step = 1.0f / (float)n; *cmin = 0; *cmax = n;
        return 1;
    case SQ_QM_EWGS_W: /* 2 q - 1 = (2 j - n) / n */
    case SQ_QM_DOREFA_W:
        *step = 1.0f / (float)n; *cmin = -n; *cmax = n;
        return 1;
    case SQ_QM_PACT_A: /* alpha j / n */
        *step = k->p0 / (float)n; *cmin = 0; *cmax = n;
        return k->p0 > 0.0f;
    case SQ_QM_LSQ: /* s j, j in [-Qn, Qp] */
        *step = k->p0; *cmin = -(int)k->qn; *cmax = (int)k->qp;
        return k->p0 > 0.0f;
    default:
        return 0;
    }
}

/* number of qp floats read by the op (matches sq_quant_nparams) */
static inline SQ_HD int sq_qm_nparams(const sq_qm_ctx *k)
{
    return k->op == SQ_QM_EWGS_W || k->op == SQ_QM_EWGS_A ? 2
           : (k->op == SQ_QM_PACT_A || k->op == SQ_QM_LSQ ? 1 : 0);
}

/* does the op need max|tanh(x)| over the tensor? */
static inline SQ_HD int sq_qm_needs_maxabs(const sq_qm_ctx *k) { return k->op == SQ_QM_DOREFA_W; }

#endif
