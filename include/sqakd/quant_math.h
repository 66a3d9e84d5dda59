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

/* SQ_QM_DEVICE_DIV selects the device's division formula of sq_qm_div below: defined in device
   code (__CUDA_ARCH__); an emulation of the device that provides __fmul_rn, __fmaf_rn and
   __float_as_uint with the device's rounding defines it itself (tests/cuemu/cuemu.h).
   -DSQ_QM_IEEE_DIV keeps the plain division everywhere (A/B builds). */
#if defined(__CUDA_ARCH__) && !defined(SQ_QM_DEVICE_DIV)
#define SQ_QM_DEVICE_DIV 1
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

/* ---- division by a per-tensor constant ----
   x / d, correctly rounded (IEEE round to nearest), given r = 1/d correctly rounded. On the host
   this is the plain division (r is ignored: the compiler drops its computation). On the device a
   full-precision division is a reciprocal approximation, five FMAs, a range check and a branch
   to a slow path, per element, although d is one value per tensor: here q0 = x r and one
   Markstein correction q = q0 + r (x - d q0) (two FMAs) give the same correctly rounded quotient
   whenever r and q0 lie in [2^-100, 2^100] (checked on 4e8 random pairs and every k/s with
   |k| <= 300, s <= 255: no difference; the CUDA test cuda/division_by_reciprocal_is_ieee_division
   checks it on the device and under cuemu). A zero x gives x r (+-0 with IEEE's sign); anything
   else (inf, NaN, extreme exponents) divides. */
static inline SQ_HD float sq_qm_div(float x, float d, float r)
{
#if defined(SQ_QM_DEVICE_DIV) && !defined(SQ_QM_IEEE_DIV)
    const float q0 = __fmul_rn(x, r);
    const float q = __fmaf_rn(r, __fmaf_rn(-d, q0, x), q0);
    /* |r| and |q0| in [2^-100, 2^100] by their bits (NaN, inf and 0 fail); r's test is the
       same for the whole tensor (hoisted out of the kernels' loops) */
    const unsigned ar = __float_as_uint(r) & 0x7fffffffu, aq = __float_as_uint(q0) & 0x7fffffffu;
    if (ar - 0x0d800000u <= 0x64000000u) {
        if (aq - 0x0d800000u <= 0x64000000u) return q;
        if (x == 0.0f) return q0;
    }
    return x / d;
#else
    (void)r;
    return x / d;
#endif
}

/* ---- shared discretizer ---- */

/* L = 2^bits levels */
static inline SQ_HD int sq_qm_levels(int bits) { return 1 << bits; }

/* q = round_half_even(c (L-1)) / (L-1); _r: with steps = L - 1 and rsteps = 1 / steps given */
static inline SQ_HD float sq_qm_disc_fwd_r(float c, float steps, float rsteps)
{
    return sq_qm_div(rintf(c * steps), steps, rsteps);
}

/* sq_qm_disc_fwd_r for c in [0, 1] (or NaN), as every forward has after its clip: the numerator
   n = rint(c steps) is then an integer in [0, steps] or +-0 or NaN, for which sq_qm_div's fast
   path always applies (r and n r lie in [2^-100, 2^100]), so the device skips its range check
   and the branch around it; copysignf keeps the sign of a -0 numerator, as the division does.
   The same bits as sq_qm_disc_fwd_r for every such c. Not for unclipped c (EWGS's backward):
   there n may be infinite. */
static inline SQ_HD float sq_qm_disc_fwd_unit_r(float c, float steps, float rsteps)
{
#if defined(SQ_QM_DEVICE_DIV) && !defined(SQ_QM_IEEE_DIV)
    const float n = rintf(c * steps), q0 = __fmul_rn(n, rsteps);
    return copysignf(__fmaf_rn(rsteps, __fmaf_rn(-steps, q0, n), q0), n);
#else
    (void)rsteps;
    return rintf(c * steps) / steps;
#endif
}

/* 2 q - 1 for q = sq_qm_disc_fwd_unit_r(c): the symmetric weight grid value (2n - steps)/steps with
   n = rint(c steps), rounded once (2n - steps is an exact integer), so that it is the float
   nearest the grid point, as an exported model's integer code times its scale is. Forming 2 q - 1
   from the rounded q instead keeps q's absolute error while the value can be as small as 1/steps:
   up to 1.5e-5 relative at 8 bits, enough to move the network the student computes away from the
   one it exports. Same NaN and device rules as sq_qm_disc_fwd_unit_r (2n - steps is never 0:
   steps is odd for every b-bit grid, or the numerator is NaN). */
static inline SQ_HD float sq_qm_sym_fwd_unit_r(float c, float steps, float rsteps)
{
    const float m = 2.0f * rintf(c * steps) - steps;
#if defined(SQ_QM_DEVICE_DIV) && !defined(SQ_QM_IEEE_DIV)
    const float q0 = __fmul_rn(m, rsteps);
    return __fmaf_rn(rsteps, __fmaf_rn(-steps, q0, m), q0);
#else
    (void)rsteps;
    return m / steps;
#endif
}

static inline SQ_HD float sq_qm_disc_fwd(float c, int levels)
{
    float steps = (float)(levels - 1);
    return sq_qm_disc_fwd_r(c, steps, 1.0f / steps);
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

/* The _r variants take the reciprocals of the per-tensor divisors (rd = 1/(u - l), steps = L - 1,
   rsteps = 1/steps, ...); the plain ones compute them (for the host, where they are unused). */

/* weights: c = clip((w - l)/(u - l)); W_q = 2q - 1 */
static inline SQ_HD float sq_qm_ewgs_w_fwd_r(float w, float l, float u, float rd, float steps,
                                             float rsteps)
{
    float c = sq_qm_clip01(sq_qm_div(w - l, u - l, rd));
    return sq_qm_sym_fwd_unit_r(c, steps, rsteps);
}

static inline SQ_HD float sq_qm_ewgs_w_fwd(float w, float l, float u, int levels)
{
    float steps = (float)(levels - 1);
    return sq_qm_ewgs_w_fwd_r(w, l, u, 1.0f / (u - l), steps, 1.0f / steps);
}

/* activations: c = clip((x - l)/(u - l)); x_q = q */
static inline SQ_HD float sq_qm_ewgs_a_fwd_r(float x, float l, float u, float rd, float steps,
                                             float rsteps)
{
    return sq_qm_disc_fwd_unit_r(sq_qm_clip01(sq_qm_div(x - l, u - l, rd)), steps, rsteps);
}

static inline SQ_HD float sq_qm_ewgs_a_fwd(float x, float l, float u, int levels)
{
    float steps = (float)(levels - 1);
    return sq_qm_ewgs_a_fwd_r(x, l, u, 1.0f / (u - l), steps, 1.0f / steps);
}

/* common backward given g_q: D = u - l, u_x = (x - l)/D, m = 1[0 <= u_x <= 1],
   G_x = m g_c / D, G_l = m g_c (u_x - 1)/D, G_u = m g_c (-u_x)/D */
static inline SQ_HD sq_qm_grad sq_qm_ewgs_bwd_gq_r(float x, float l, float u, float rd,
                                                   float steps, float rsteps, float delta, float gq)
{
    /* branch-free (computed, then selected) so CPU loops vectorise; same values as an early
       return for every input, NaN and inf included */
    float d = u - l;
    float ux = sq_qm_div(x - l, d, rd);
    int in = ux >= 0.0f && ux <= 1.0f;
    float q = sq_qm_disc_fwd_r(ux, steps, rsteps);
    float gc = sq_qm_div(sq_qm_disc_bwd(gq, ux, q, delta), d, rd);
    return sq_qm_grad_make(in ? gc : 0.0f, in ? gc * (ux - 1.0f) : 0.0f, in ? -gc * ux : 0.0f);
}

static inline SQ_HD sq_qm_grad sq_qm_ewgs_bwd_gq(float x, float l, float u, int levels, float delta,
                                                 float gq)
{
    float steps = (float)(levels - 1);
    return sq_qm_ewgs_bwd_gq_r(x, l, u, 1.0f / (u - l), steps, 1.0f / steps, delta, gq);
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
static inline SQ_HD float sq_qm_pact_a_fwd_r(float x, float alpha, float ralpha, float steps,
                                             float rsteps)
{
    float xc = x < 0.0f ? 0.0f : (x > alpha ? alpha : x);
    /* xc / alpha lies in [0, 1] (or is NaN) for every alpha, negative ones included */
    return alpha * sq_qm_disc_fwd_unit_r(sq_qm_div(xc, alpha, ralpha), steps, rsteps);
}

static inline SQ_HD float sq_qm_pact_a_fwd(float x, float alpha, int levels)
{
    float steps = (float)(levels - 1);
    return sq_qm_pact_a_fwd_r(x, alpha, 1.0f / alpha, steps, 1.0f / steps);
}

static inline SQ_HD sq_qm_grad sq_qm_pact_a_bwd_r(float x, float alpha, float ralpha, float steps,
                                                  float rsteps, float delta, float gy)
{
    if (x > alpha) return sq_qm_grad_make(0.0f, gy, 0.0f);
    if (x < 0.0f) return sq_qm_grad_make(0.0f, 0.0f, 0.0f);
    float c = sq_qm_div(x, alpha, ralpha);
    float q = sq_qm_disc_fwd_unit_r(c, steps, rsteps); /* 0 <= x <= alpha */
    float gq = alpha * gy;
    return sq_qm_grad_make(sq_qm_div(sq_qm_disc_bwd(gq, c, q, delta), alpha, ralpha), 0.0f, 0.0f);
}

static inline SQ_HD sq_qm_grad sq_qm_pact_a_bwd(float x, float alpha, int levels, float delta,
                                                float gy)
{
    float steps = (float)(levels - 1);
    return sq_qm_pact_a_bwd_r(x, alpha, 1.0f / alpha, steps, 1.0f / steps, delta, gy);
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

static inline SQ_HD float sq_qm_lsq_fwd_r(float x, float s, float rs, float qn, float qp)
{
    float v = sq_qm_div(x, s, rs);
    v = v < -qn ? -qn : (v > qp ? qp : v);
    return rintf(v) * s;
}

static inline SQ_HD float sq_qm_lsq_fwd(float x, float s, float qn, float qp)
{
    return sq_qm_lsq_fwd_r(x, s, 1.0f / s, qn, qp);
}

/* rk = 1/(qn + qp). Branch-free (computed, then selected: the same values as early returns for
   every input, NaN included; sgn(s) by arithmetic) so that the CPU loop vectorises: with a
   ternary on the sign of s, GCC split the loop by that sign and left the s > 0 copy scalar, at a
   tenth of the other quantizers' backward speed (38 ms for 4M elements on one core; now 4 ms). */
static inline SQ_HD sq_qm_grad sq_qm_lsq_bwd_r(float x, float s, float rs, float qn, float qp,
                                               float rk, float delta, float gscale, float gy)
{
    float v = sq_qm_div(x, s, rs);
    int below = v < -qn, above = v > qp, out = below | above; /* bitwise: no branch */
    float vq = rintf(v);
    float sgn = (float)((s > 0.0f) - (s < 0.0f));
    float gx = gy + sq_qm_div(delta * fabsf(gy) * sgn * (v - vq), qn + qp, rk);
    float gs = gscale * (gy * vq - v * gx);
    float gs_out = gscale * gy * (below ? -qn : qp);
    return sq_qm_grad_make(out ? 0.0f : gx, out ? gs_out : gs, 0.0f);
}

static inline SQ_HD sq_qm_grad sq_qm_lsq_bwd(float x, float s, float qn, float qp, float delta,
                                             float gscale, float gy)
{
    return sq_qm_lsq_bwd_r(x, s, 1.0f / s, qn, qp, 1.0f / (qn + qp), delta, gscale, gy);
}

/* ---- DoReFa (3.5) ----
   weights: t = tanh(w); c = t/(2M) + 1/2 with M = max|tanh(w)| over the tensor; W_q = 2q - 1;
            G_w = g_c (1 - t^2)/(2M), g_q = 2 gy. M <= 0 (all-zero tensor): c = 1/2, G_w = 0.
   activations: c = clip(x, 0, 1); x_q = q; G_x = m g_c, g_q = gy. */
/* r2m = 1/(2 maxabs) */
static inline SQ_HD float sq_qm_dorefa_w_fwd_r(float w, float maxabs, float r2m, float steps,
                                               float rsteps)
{
    float c = maxabs > 0.0f ? sq_qm_div(tanhf(w), 2.0f * maxabs, r2m) + 0.5f : 0.5f;
    return sq_qm_sym_fwd_unit_r(c, steps, rsteps); /* |tanh w| <= M */
}

static inline SQ_HD float sq_qm_dorefa_w_fwd(float w, float maxabs, int levels)
{
    float steps = (float)(levels - 1);
    return sq_qm_dorefa_w_fwd_r(w, maxabs, 1.0f / (2.0f * maxabs), steps, 1.0f / steps);
}

static inline SQ_HD float sq_qm_dorefa_w_bwd_r(float w, float maxabs, float r2m, float steps,
                                               float rsteps, float delta, float gy)
{
    if (!(maxabs > 0.0f)) return 0.0f;
    float t = tanhf(w);
    float c = sq_qm_div(t, 2.0f * maxabs, r2m) + 0.5f;
    float q = sq_qm_disc_fwd_unit_r(c, steps, rsteps);
    return sq_qm_div(sq_qm_disc_bwd(2.0f * gy, c, q, delta) * (1.0f - t * t), 2.0f * maxabs, r2m);
}

static inline SQ_HD float sq_qm_dorefa_w_bwd(float w, float maxabs, int levels, float delta,
                                             float gy)
{
    float steps = (float)(levels - 1);
    return sq_qm_dorefa_w_bwd_r(w, maxabs, 1.0f / (2.0f * maxabs), steps, 1.0f / steps, delta, gy);
}

static inline SQ_HD float sq_qm_dorefa_a_fwd_r(float x, float steps, float rsteps)
{
    return sq_qm_disc_fwd_unit_r(sq_qm_clip01(x), steps, rsteps);
}

static inline SQ_HD float sq_qm_dorefa_a_fwd(float x, int levels)
{
    float steps = (float)(levels - 1);
    return sq_qm_dorefa_a_fwd_r(x, steps, 1.0f / steps);
}

static inline SQ_HD float sq_qm_dorefa_a_bwd_r(float x, float steps, float rsteps, float delta,
                                               float gy)
{
    if (!(x >= 0.0f && x <= 1.0f)) return 0.0f;
    return sq_qm_disc_bwd(gy, x, sq_qm_disc_fwd_unit_r(x, steps, rsteps), delta);
}

static inline SQ_HD float sq_qm_dorefa_a_bwd(float x, int levels, float delta, float gy)
{
    float steps = (float)(levels - 1);
    return sq_qm_dorefa_a_bwd_r(x, steps, 1.0f / steps, delta, gy);
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
    /* reciprocals of the per-tensor divisors, set by sq_qm_ctx_load (used on the device only):
       rsteps = 1/(L-1); rdiv = 1/(u-l) (EWGS), 1/alpha (PACT), 1/s (LSQ), 1/(2 maxabs) (DoReFa
       weights); rk = 1/(Qn+Qp) (LSQ) */
    float steps, rsteps, rdiv, rk;
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
    ctx->steps = (float)(ctx->levels - 1);
    ctx->rsteps = 1.0f / ctx->steps;
    ctx->rdiv = 0.0f;
    ctx->rk = 1.0f / (ctx->qn + ctx->qp);
}

/* sets the parameters (p0, p1: qp[0], qp[1] where the op has them; maxabs for DoReFa weights)
   and the reciprocal of the op's per-tensor divisor. Call it wherever the parameters become
   known (per thread on the device). */
static inline SQ_HD void sq_qm_ctx_load(sq_qm_ctx *ctx, float p0, float p1, float maxabs)
{
    ctx->p0 = p0;
    ctx->p1 = p1;
    ctx->maxabs = maxabs;
    switch (ctx->op) {
    case SQ_QM_EWGS_W:
    case SQ_QM_EWGS_A: ctx->rdiv = 1.0f / (p1 - p0); break;
    case SQ_QM_PACT_A:
    case SQ_QM_LSQ: ctx->rdiv = 1.0f / p0; break;
    case SQ_QM_DOREFA_W: ctx->rdiv = 1.0f / (2.0f * maxabs); break;
    default: ctx->rdiv = 0.0f; break;
    }
}

/* the context must have been through sq_qm_ctx_load (its reciprocals are used on the device) */
static inline SQ_HD float sq_qm_fwd(const sq_qm_ctx *k, float x)
{
    switch (k->op) {
    case SQ_QM_EWGS_W: return sq_qm_ewgs_w_fwd_r(x, k->p0, k->p1, k->rdiv, k->steps, k->rsteps);
    case SQ_QM_EWGS_A: return sq_qm_ewgs_a_fwd_r(x, k->p0, k->p1, k->rdiv, k->steps, k->rsteps);
    case SQ_QM_PACT_A: return sq_qm_pact_a_fwd_r(x, k->p0, k->rdiv, k->steps, k->rsteps);
    case SQ_QM_LSQ: return sq_qm_lsq_fwd_r(x, k->p0, k->rdiv, k->qn, k->qp);
    case SQ_QM_DOREFA_W: return sq_qm_dorefa_w_fwd_r(x, k->maxabs, k->rdiv, k->steps, k->rsteps);
    case SQ_QM_DOREFA_A: return sq_qm_dorefa_a_fwd_r(x, k->steps, k->rsteps);
    default: return x;
    }
}

static inline SQ_HD sq_qm_grad sq_qm_bwd(const sq_qm_ctx *k, float x, float gy)
{
    switch (k->op) {
    case SQ_QM_EWGS_W:
        return sq_qm_ewgs_bwd_gq_r(x, k->p0, k->p1, k->rdiv, k->steps, k->rsteps, k->delta,
                                   2.0f * gy);
    case SQ_QM_EWGS_A:
        return sq_qm_ewgs_bwd_gq_r(x, k->p0, k->p1, k->rdiv, k->steps, k->rsteps, k->delta, gy);
    case SQ_QM_PACT_A:
        return sq_qm_pact_a_bwd_r(x, k->p0, k->rdiv, k->steps, k->rsteps, k->delta, gy);
    case SQ_QM_LSQ:
        return sq_qm_lsq_bwd_r(x, k->p0, k->rdiv, k->qn, k->qp, k->rk, k->delta, k->gscale, gy);
    case SQ_QM_DOREFA_W:
        return sq_qm_grad_make(
            sq_qm_dorefa_w_bwd_r(x, k->maxabs, k->rdiv, k->steps, k->rsteps, k->delta, gy), 0.0f,
            0.0f);
    case SQ_QM_DOREFA_A:
        return sq_qm_grad_make(sq_qm_dorefa_a_bwd_r(x, k->steps, k->rsteps, k->delta, gy), 0.0f,
                               0.0f);
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
