/* test_quant.c: Criterion suite "quant": the fake quantizers of method.md section 3 on the CPU
   backend (level counts, the method.md test vectors, the EWGS delta backward, straight-through
   surrogate finite differences, PyTorch golden values, deterministic reductions), the output scale
   |s|, and the host helpers (names, cfg check, initialization). */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../kernels/cpu/cpu_ops.h"
#include "sqakd/quant.h"

static const int k_bits[] = {1, 2, 3, 4, 8};
#define NBITS 5

static sq_quant_cfg mkcfg(sq_quant_kind kind, sq_quant_role role, int bits, int is_signed,
                          float delta, float numel)
{
    sq_quant_cfg c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.role = role;
    c.bits = bits;
    c.is_signed = is_signed;
    c.delta = delta;
    c.grad_numel = numel;
    return c;
}

static int close_to(double a, double r, double atol, double rtol)
{
    return fabs(a - r) <= atol + rtol * fabs(r);
}

/* deterministic uniform in [0, 1) */
static double urand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (*s >> 8) / 16777216.0;
}

static double nrand(unsigned *s)
{
    double u1 = urand(s) + 1e-12, u2 = urand(s);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* one quantizer configuration with parameters and an input range that covers every level */
typedef struct qsetup {
    sq_quant_kind kind;
    sq_quant_role role;
    int is_signed;
    float qp[2];
    float lo, hi; /* sweep range (bits-dependent for LSQ, set by setup_range) */
} qsetup;

static const qsetup k_setups[] = {
    {SQ_QUANT_EWGS, SQ_QROLE_WEIGHT, 0, {-0.8f, 0.9f}, -1.5f, 1.5f},
    {SQ_QUANT_EWGS, SQ_QROLE_ACT, 0, {0.0f, 1.7f}, -0.5f, 2.5f},
    {SQ_QUANT_PACT, SQ_QROLE_WEIGHT, 0, {0, 0}, -2.0f, 2.0f},
    {SQ_QUANT_PACT, SQ_QROLE_ACT, 0, {1.7f, 0}, -0.5f, 2.5f},
    {SQ_QUANT_LSQ, SQ_QROLE_WEIGHT, 1, {0.1f, 0}, 0, 0},
    {SQ_QUANT_LSQ, SQ_QROLE_ACT, 0, {0.1f, 0}, 0, 0},
    {SQ_QUANT_DOREFA, SQ_QROLE_WEIGHT, 0, {0, 0}, -2.0f, 2.0f},
    {SQ_QUANT_DOREFA, SQ_QROLE_ACT, 0, {0, 0}, -0.5f, 1.5f},
};
#define NSETUPS ((int)(sizeof k_setups / sizeof k_setups[0]))

static void setup_range(const qsetup *s, int bits, float *lo, float *hi)
{
    *lo = s->lo;
    *hi = s->hi;
    if (s->kind == SQ_QUANT_LSQ) {
        double qn = s->is_signed ? ldexp(1, bits - 1) : 0, qp = s->is_signed ? qn - 1 : ldexp(1, bits) - 1;
        *lo = (float)(-(qn + 1.5) * s->qp[0]);
        *hi = (float)((qp + 1.5) * s->qp[0]);
    }
}

/* expected output level k (0..L-1) of a setup */
static double level_value(const qsetup *s, int bits, int k)
{
    int L = 1 << bits;
    double q = (double)k / (L - 1);
    switch (s->kind) {
    case SQ_QUANT_EWGS: return s->role == SQ_QROLE_WEIGHT ? 2 * q - 1 : q;
    case SQ_QUANT_PACT: return s->role == SQ_QROLE_WEIGHT ? 2 * q - 1 : s->qp[0] * q;
    case SQ_QUANT_LSQ: return (k - (s->is_signed ? ldexp(1, bits - 1) : 0)) * s->qp[0];
    default: return s->role == SQ_QROLE_WEIGHT ? 2 * q - 1 : q;
    }
}

/* A dense sweep over a range that covers every level gives exactly 2^b distinct outputs, each on
   the expected grid (tolerance 1e-6 absolute: one float32 rounding of a value of magnitude <= 26). */
Test(quant, levels_exact_on_dense_sweep)
{
    enum { NS = 20001 };
    static float x[NS], y[NS];
    float scratch[SQ_QUANT_SCRATCH];
    for (int si = 0; si < NSETUPS; si++) {
        const qsetup *s = &k_setups[si];
        for (int bi = 0; bi < NBITS; bi++) {
            int bits = k_bits[bi];
            sq_quant_cfg cfg = mkcfg(s->kind, s->role, bits, s->is_signed, 0.0f, 100.0f);
            float lo, hi;
            setup_range(s, bits, &lo, &hi);
            for (int i = 0; i < NS; i++) x[i] = lo + (hi - lo) * (float)i / (NS - 1);
            sq_cpu_fakequant_fwd(&cfg, NS, x, s->qp, y, scratch);
            qsort(y, NS, sizeof *y, cmp_float);
            int distinct = 0;
            for (int i = 0; i < NS; i++) {
                if (i > 0 && y[i] == y[i - 1]) continue;
                cr_assert(distinct < (1 << bits), "%s role %d bits %d: more than %d levels",
                          sq_quant_kind_name(s->kind), s->role, bits, 1 << bits);
                double want = level_value(s, bits, distinct);
                cr_assert(close_to(y[i], want, 1e-6, 0), "%s role %d bits %d: level %d is %.9g, want %.9g",
                          sq_quant_kind_name(s->kind), s->role, bits, distinct, y[i], want);
                distinct++;
            }
            cr_assert_eq(distinct, 1 << bits, "%s role %d bits %d: %d distinct levels, want %d",
                         sq_quant_kind_name(s->kind), s->role, bits, distinct, 1 << bits);
            cr_assert_eq(sq_quant_levels(&cfg), 1 << bits);
        }
    }
}

/* The symmetric weight grids (EWGS, DoReFa and PACT weights) give the float nearest each grid
   value (2n - steps)/steps, as an exported model's integer code times its scale does: exactly
   equal, at every bit-width and level, the smallest values (+-1/steps) included, where 2q - 1
   formed from a rounded q was off by up to 1.5e-5 relative at 8 bits. */
Test(quant, weight_grid_values_are_correctly_rounded)
{
    float scratch[SQ_QUANT_SCRATCH];
    static float x[257], y[257];
    int checked = 0;
    for (int bits = 1; bits <= 8; bits++) {
        const int steps = (1 << bits) - 1;
        /* EWGS weights with l = 0, u = 1: c = w, so w = n / steps lands on level n */
        sq_quant_cfg ce = mkcfg(SQ_QUANT_EWGS, SQ_QROLE_WEIGHT, bits, 1, 0.0f, 0.0f);
        const float qe[2] = {0.0f, 1.0f};
        for (int n = 0; n <= steps; n++) x[n] = (float)n / (float)steps;
        sq_cpu_fakequant_fwd(&ce, steps + 1, x, qe, y, scratch);
        /* DoReFa weights: tanh(w) = (2n - steps)/steps exactly gives level n (M = 1 from the ends) */
        static float xd[257], yd[257];
        for (int n = 0; n <= steps; n++) xd[n] = atanhf(fmaxf(-0.9999999f, fminf(0.9999999f,
                                                  (float)(2 * n - steps) / (float)steps)));
        sq_quant_cfg cd = mkcfg(SQ_QUANT_DOREFA, SQ_QROLE_WEIGHT, bits, 1, 0.0f, 0.0f);
        sq_cpu_fakequant_fwd(&cd, steps + 1, xd, NULL, yd, scratch);
        for (int n = 0; n <= steps; n++) {
            const float want = (float)((double)(2 * n - steps) / (double)steps);
            cr_expect_eq(y[n], want, "ewgs weights, %d bits, level %d: %.9g, want %.9g", bits, n, y[n], want);
            cr_expect_eq(yd[n], want, "dorefa weights, %d bits, level %d: %.9g, want %.9g", bits, n, yd[n], want);
            checked += 2;
        }
    }
    cr_expect_eq(checked, 2 * 510);
}

/* method.md 3.2 test vectors (L = 4). Exact to 1e-7: a handful of float32 operations on O(1). */
Test(quant, ewgs_method_vectors)
{
    float qpw[2] = {-1.0f, 1.0f}, qpa[2] = {0.0f, 2.0f}, y[3], sc[SQ_QUANT_SCRATCH];
    sq_quant_cfg cw = mkcfg(SQ_QUANT_EWGS, SQ_QROLE_WEIGHT, 2, 0, 0.0f, 0.0f);
    sq_quant_cfg ca = mkcfg(SQ_QUANT_EWGS, SQ_QROLE_ACT, 2, 0, 0.0f, 0.0f);
    float w = 0.2f;
    sq_cpu_fakequant_fwd(&cw, 1, &w, qpw, y, sc);
    cr_assert(close_to(y[0], 1.0 / 3.0, 1e-7, 0), "W_q(0.2) = %.9g, want 1/3", y[0]);
    float x[3] = {0.75f, 2.5f, 0.0f};
    sq_cpu_fakequant_fwd(&ca, 3, x, qpa, y, sc);
    cr_assert(close_to(y[0], 1.0 / 3.0, 1e-7, 0), "x_q(0.75) = %.9g, want 1/3", y[0]);
    cr_assert_eq(y[1], 1.0f, "x_q(2.5) = %.9g, want 1", y[1]);
    cr_assert_eq(y[2], 0.0f);

    /* clipped x = 2.5: no gradient to x, l or u */
    float gy = 1.0f, gx = 0.0f, gqp[2] = {0, 0};
    sq_cpu_fakequant_bwd(&ca, 1, &x[1], qpa, &gy, &gx, gqp, sc);
    cr_assert(gx == 0.0f && gqp[0] == 0.0f && gqp[1] == 0.0f, "clipped: gx %g gl %g gu %g", gx,
              gqp[0], gqp[1]);
    /* post-ReLU zero with l = 0 is inside: u_x = 0, G_x = 1/2, G_l = -1/2, G_u = 0 */
    sq_cpu_fakequant_bwd(&ca, 1, &x[2], qpa, &gy, &gx, gqp, sc);
    cr_assert(close_to(gx, 0.5, 1e-7, 0) && close_to(gqp[0], -0.5, 1e-7, 0) && gqp[1] == 0.0f,
              "zero at l: gx %g gl %g gu %g", gx, gqp[0], gqp[1]);
    /* weight w = 0.2: g_q = 2, D = 2, u_x = 0.6: G_w = 1, G_l = -0.4, G_u = -0.6 */
    gx = 0.0f;
    gqp[0] = gqp[1] = 0.0f;
    sq_cpu_fakequant_bwd(&cw, 1, &w, qpw, &gy, &gx, gqp, sc);
    cr_assert(close_to(gx, 1.0, 1e-7, 0) && close_to(gqp[0], -0.4, 1e-7, 0) &&
                  close_to(gqp[1], -0.6, 1e-7, 0),
              "weight 0.2: gx %g gl %g gu %g", gx, gqp[0], gqp[1]);
}

/* method.md 3.4 test vectors: signed 4-bit, s = 0.5; grad_numel = 1 so gs = 1/sqrt(7).
   Tolerance 1e-6 relative: float32 rounding of x/s and of the scaled terms. */
Test(quant, lsq_method_vectors)
{
    sq_quant_cfg c = mkcfg(SQ_QUANT_LSQ, SQ_QROLE_WEIGHT, 4, 1, 0.0f, 1.0f);
    float s = 0.5f, g = 0.7f, sc[SQ_QUANT_SCRATCH];
    double gs = 1.0 / sqrt(7.0);
    const float xs[3] = {1.3f, 5.0f, -5.0f};
    const double ys[3] = {1.5, 3.5, -4.0}, terms[3] = {3.0 - 1.3f / 0.5f, 7.0, -8.0},
                 gxs[3] = {0.7, 0.0, 0.0};
    for (int i = 0; i < 3; i++) {
        float y, gx = 0.0f, gsum = 0.0f;
        sq_cpu_fakequant_fwd(&c, 1, &xs[i], &s, &y, sc);
        cr_assert(close_to(y, ys[i], 1e-7, 0), "x %g: y %.9g want %.9g", xs[i], y, ys[i]);
        sq_cpu_fakequant_bwd(&c, 1, &xs[i], &s, &g, &gx, &gsum, sc);
        cr_assert(close_to(gsum, gs * terms[i] * g, 1e-7, 1e-6), "x %g: G_s %.9g want %.9g", xs[i],
                  gsum, gs * terms[i] * g);
        cr_assert_eq(gx, (float)gxs[i], "x %g: G_x %.9g want %.9g", xs[i], gx, gxs[i]);
    }
    cr_assert(close_to(terms[0], 0.4, 1e-6, 0), "inside term %g, want 0.4", terms[0]);
    /* unsigned grid: negative input clips to 0 (term -Qn = 0), above clips to Qp = 15 */
    sq_quant_cfg cu = mkcfg(SQ_QUANT_LSQ, SQ_QROLE_ACT, 4, 0, 0.0f, 1.0f);
    float x2[2] = {-1.0f, 9.0f}, y2[2], gx2[2] = {0, 0}, gsu = 0.0f, g2[2] = {1.0f, 1.0f};
    sq_cpu_fakequant_fwd(&cu, 2, x2, &s, y2, sc);
    cr_assert(y2[0] == 0.0f && y2[1] == 7.5f, "unsigned: y %g %g", y2[0], y2[1]);
    sq_cpu_fakequant_bwd(&cu, 2, x2, &s, g2, gx2, &gsu, sc);
    cr_assert(close_to(gsu, 15.0 / sqrt(15.0), 1e-6, 1e-6) && gx2[0] == 0.0f && gx2[1] == 0.0f,
              "unsigned clipped: G_s %g", gsu);
}

/* Exact ties round half to even (rintf), in the shared discretizer and in LSQ's integer grid. */
Test(quant, rounding_half_to_even)
{
    float sc[SQ_QUANT_SCRATCH], y[3];
    sq_quant_cfg l4 = mkcfg(SQ_QUANT_LSQ, SQ_QROLE_ACT, 4, 0, 0.0f, 1.0f);
    const float s = 0.5f, xl[3] = {0.25f, 0.75f, 1.25f}; /* v = 0.5, 1.5, 2.5 -> 0, 2, 2 */
    sq_cpu_fakequant_fwd(&l4, 3, xl, &s, y, sc);
    cr_assert(y[0] == 0.0f && y[1] == 1.0f && y[2] == 1.0f, "lsq ties: %g %g %g", y[0], y[1], y[2]);
    const float half = 0.5f, qp01[2] = {0.0f, 1.0f}, alpha = 1.0f;
    sq_quant_cfg da = mkcfg(SQ_QUANT_DOREFA, SQ_QROLE_ACT, 1, 0, 0.0f, 0.0f);
    sq_quant_cfg ea = mkcfg(SQ_QUANT_EWGS, SQ_QROLE_ACT, 1, 0, 0.0f, 0.0f);
    sq_quant_cfg ew = mkcfg(SQ_QUANT_EWGS, SQ_QROLE_WEIGHT, 1, 0, 0.0f, 0.0f);
    sq_quant_cfg pa = mkcfg(SQ_QUANT_PACT, SQ_QROLE_ACT, 1, 0, 0.0f, 0.0f);
    sq_cpu_fakequant_fwd(&da, 1, &half, NULL, &y[0], sc);
    sq_cpu_fakequant_fwd(&ea, 1, &half, qp01, &y[1], sc);
    sq_cpu_fakequant_fwd(&pa, 1, &half, &alpha, &y[2], sc);
    cr_assert(y[0] == 0.0f && y[1] == 0.0f && y[2] == 0.0f, "c = 0.5 at 1 bit: %g %g %g", y[0],
              y[1], y[2]);
    sq_cpu_fakequant_fwd(&ew, 1, &half, qp01, &y[0], sc);
    cr_assert_eq(y[0], -1.0f, "ewgs weight c = 0.5 at 1 bit: %g", y[0]);
}

/* ---- test-side model of every quantizer, in double ---- */

typedef struct tcase {
    sq_quant_cfg cfg;
    float qp[2];
    float maxabs; /* DoReFa weights: from the forward's scratch */
} tcase;

static double t_clip(double v, double lo, double hi) { return v < lo ? lo : (v > hi ? hi : v); }

static void t_lsq_bounds(const sq_quant_cfg *c, double *qn, double *qp)
{
    *qn = c->is_signed ? ldexp(1, c->bits - 1) : 0;
    *qp = c->is_signed ? *qn - 1 : ldexp(1, c->bits) - 1;
}

static int t_is_dorefa_w(const sq_quant_cfg *c)
{
    return c->role == SQ_QROLE_WEIGHT && (c->kind == SQ_QUANT_PACT || c->kind == SQ_QUANT_DOREFA);
}

/* pre-clip normalized value (in [0,1] when inside) of x under parameters th */
static double t_pre(const tcase *t, double x, const double *th)
{
    const sq_quant_cfg *c = &t->cfg;
    if (c->kind == SQ_QUANT_EWGS) return (x - th[0]) / (th[1] - th[0]);
    if (t_is_dorefa_w(c)) return tanh(x) / (2.0 * t->maxabs) + 0.5;
    if (c->kind == SQ_QUANT_PACT) return x / th[0];
    if (c->kind == SQ_QUANT_LSQ) {
        double qn, qp;
        t_lsq_bounds(c, &qn, &qp);
        return (x / th[0] + qn) / (qn + qp);
    }
    return x; /* DoReFa act */
}

static double t_steps(const tcase *t)
{
    return ldexp(1, t->cfg.bits) - 1;
}

/* straight-through surrogate around (x0, th0): M(q0 + c(x, th) - c(x0, th0); th); PACT keeps
   alpha constant except in its clip (paper STE): alpha0 (q0 - c0) + clip(x, 0, alpha) */
static double t_sur(const tcase *t, double x, const double *th, double x0, const double *th0)
{
    const sq_quant_cfg *c = &t->cfg;
    double L1 = t_steps(t);
    double c0 = t_clip(t_pre(t, x0, th0), 0, 1), q0 = rint(c0 * L1) / L1;
    double ux = t_pre(t, x, th);
    double cx = t_is_dorefa_w(c) ? ux : t_clip(ux, 0, 1), q = q0 + cx - c0; /* no clip: tanh */
    if (c->kind == SQ_QUANT_PACT && c->role == SQ_QROLE_ACT)
        return th0[0] * (q0 - c0) + t_clip(x, 0, th[0]);
    if (c->kind == SQ_QUANT_LSQ) {
        double qn, qp;
        t_lsq_bounds(c, &qn, &qp);
        return (q * (qn + qp) - qn) * th[0];
    }
    if (c->role == SQ_QROLE_WEIGHT) return 2 * q - 1;
    return q;
}

/* is u (normalized, pre-clip) at least 1e-3 from the clip edges (no clip for DoReFa weights) and
   its level coordinate at least 1e-2 steps from a rounding boundary? */
static int t_safe_at(const tcase *t, double x, const double *th)
{
    double u = t_pre(t, x, th);
    if (!t_is_dorefa_w(&t->cfg) && (fabs(u) < 1e-3 || fabs(u - 1.0) < 1e-3)) return 0;
    double v = t_clip(u, 0, 1) * t_steps(t);
    return fabs(v - floor(v) - 0.5) >= 1e-2;
}

/* safe at x +- h and under every parameter +- h */
static int t_safe(const tcase *t, double x, double h)
{
    double th[2] = {t->qp[0], t->qp[1]};
    if (!t_safe_at(t, x - h, th) || !t_safe_at(t, x + h, th)) return 0;
    for (int j = 0; j < sq_quant_nparams(&t->cfg); j++) {
        for (int sg = -1; sg <= 1; sg += 2) {
            double tp[2] = {th[0], th[1]};
            tp[j] += sg * h;
            if (!t_safe_at(t, x, tp)) return 0;
        }
    }
    return 1;
}

/* setups of the backward tests: parameters and n random inputs over the setup's range (hitting
   both clip sides), each redrawn until safe (t_safe with step h). DoReFa weights: x[0], x[1] are
   the range ends, fixing max|tanh| before the draw. */
static void t_make(tcase *t, int si, int bits, float delta, size_t n, float *x, double h,
                   unsigned *seed)
{
    const qsetup *s = &k_setups[si];
    t->cfg = mkcfg(s->kind, s->role, bits, s->is_signed, delta, (float)n);
    t->qp[0] = s->qp[0];
    t->qp[1] = s->qp[1];
    float lo, hi;
    setup_range(s, bits, &lo, &hi);
    size_t i0 = 0;
    t->maxabs = 0.0f;
    if (t_is_dorefa_w(&t->cfg)) {
        x[0] = lo;
        x[1] = hi;
        t->maxabs = fmaxf(fabsf(tanhf(lo)), fabsf(tanhf(hi)));
        i0 = 2;
    }
    for (size_t i = i0; i < n; i++) {
        do x[i] = (float)(lo + (hi - lo) * urand(seed));
        while (!t_safe(t, x[i], h));
    }
}

/* Backward (delta = 0) vs central finite differences of the straight-through surrogate, for x and
   every quantizer parameter, all kinds, roles and bits. Tolerance atol 2e-4, rtol 1e-3: the
   backward is float32 over n = 64 elements, the FD is double with h = 1e-4 on a piecewise-smooth
   function (points kept 1e-3 away from every kink). */
Test(quant, backward_vs_fd_surrogate)
{
    enum { N = 64 };
    float x[N], gy[N], y[N], gx[N], sc[SQ_QUANT_SCRATCH];
    unsigned seed = 12345u;
    const double h = 1e-4;
    for (int si = 0; si < NSETUPS; si++) {
        for (int bi = 0; bi < NBITS; bi++) {
            tcase t;
            t_make(&t, si, k_bits[bi], 0.0f, N, x, h, &seed);
            sq_cpu_fakequant_fwd(&t.cfg, N, x, t.qp, y, sc);
            if (t_is_dorefa_w(&t.cfg))
                cr_assert_eq(sc[0], t.maxabs, "scratch max|tanh| %.9g want %.9g", sc[0], t.maxabs);
            for (int i = 0; i < N; i++) {
                gy[i] = (float)nrand(&seed);
                gx[i] = 0.0f;
            }
            float gqp[2] = {0, 0};
            sq_cpu_fakequant_bwd(&t.cfg, N, x, t.qp, gy, gx, gqp, sc);
            double th0[2] = {t.qp[0], t.qp[1]};
            for (int i = 0; i < N; i++) {
                double fd = gy[i] * (t_sur(&t, x[i] + h, th0, x[i], th0) -
                                     t_sur(&t, x[i] - h, th0, x[i], th0)) / (2 * h);
                cr_assert(close_to(gx[i], fd, 2e-4, 1e-3),
                          "%s role %d bits %d: gx[%d] (x=%.7g) = %.7g, fd %.7g",
                          sq_quant_kind_name(t.cfg.kind), t.cfg.role, t.cfg.bits, i, x[i], gx[i], fd);
            }
            int np = sq_quant_nparams(&t.cfg);
            for (int j = 0; j < np; j++) {
                double fd = 0.0, gsc = 1.0;
                for (int i = 0; i < N; i++) {
                    double tp[2] = {th0[0], th0[1]}, tm[2] = {th0[0], th0[1]};
                    tp[j] += h;
                    tm[j] -= h;
                    fd += gy[i] * (t_sur(&t, x[i], tp, x[i], th0) - t_sur(&t, x[i], tm, x[i], th0)) /
                          (2 * h);
                }
                if (t.cfg.kind == SQ_QUANT_LSQ) {
                    double qn, qp;
                    t_lsq_bounds(&t.cfg, &qn, &qp);
                    gsc = 1.0 / sqrt(N * (qp < 1 ? 1 : qp));
                }
                cr_assert(close_to(gqp[j], fd * gsc, 2e-4, 1e-3),
                          "%s role %d bits %d: gqp[%d] = %.7g, fd %.7g",
                          sq_quant_kind_name(t.cfg.kind), t.cfg.role, t.cfg.bits, j, gqp[j], fd * gsc);
            }
        }
    }
}

/* delta > 0: every gradient follows g_c = g_q + delta |g_q| (c - q) exactly, written here in the
   template's chain form (EWGS: G_x, G_l, G_u; LSQ: G_x and G_s = gs sum(g vq + m g_c dc/ds);
   PACT, DoReFa: G_x). Tolerance 1e-6 + 1e-5 rel: float32 backward vs double reference. */
Test(quant, delta_follows_gc_formula)
{
    enum { N = 64 };
    float x[N], gy[N], y[N], sc[SQ_QUANT_SCRATCH];
    unsigned seed = 777u;
    const float delta = 0.4f;
    for (int si = 0; si < NSETUPS; si++) {
        for (int bi = 0; bi < NBITS; bi++) {
            tcase t;
            t_make(&t, si, k_bits[bi], delta, N, x, 0.0, &seed);
            sq_cpu_fakequant_fwd(&t.cfg, N, x, t.qp, y, sc);
            for (int i = 0; i < N; i++) gy[i] = (float)nrand(&seed);
            float gx[N] = {0}, gx0[N] = {0}, gqp[2] = {0, 0}, gqp0[2] = {0, 0};
            sq_cpu_fakequant_bwd(&t.cfg, N, x, t.qp, gy, gx, gqp, sc);
            sq_quant_cfg c0 = t.cfg;
            c0.delta = 0.0f;
            sq_cpu_fakequant_bwd(&c0, N, x, t.qp, gy, gx0, gqp0, sc);
            double L1 = t_steps(&t), th[2] = {t.qp[0], t.qp[1]}, ep[2] = {0, 0};
            int changed = 0;
            for (int i = 0; i < N; i++) {
                double u = t_pre(&t, x[i], th), cc = t_clip(u, 0, 1), q = rint(cc * L1) / L1;
                int m = u >= 0 && u <= 1;
                double g = gy[i], e;
                if (t.cfg.kind == SQ_QUANT_EWGS) {
                    double d = th[1] - th[0], gq = t.cfg.role == SQ_QROLE_WEIGHT ? 2 * g : g;
                    double gc = gq + delta * fabs(gq) * (cc - q);
                    e = m ? gc / d : 0;
                    ep[0] += m ? gc * (u - 1) / d : 0;
                    ep[1] += m ? gc * -u / d : 0;
                } else if (t.cfg.kind == SQ_QUANT_LSQ) {
                    double qn, qp, s = th[0];
                    t_lsq_bounds(&t.cfg, &qn, &qp);
                    double k = qn + qp, gq = g * s * k, gc = gq + delta * fabs(gq) * (cc - q);
                    e = m ? gc / (s * k) : 0;
                    ep[0] += (g * (q * k - qn) + (m ? gc * -(x[i] / s) / (s * k) : 0)) /
                             sqrt(N * (qp < 1 ? 1 : qp));
                } else if (t_is_dorefa_w(&t.cfg)) {
                    double tt = tanh(x[i]), gc = 2 * g + delta * fabs(2 * g) * (cc - q);
                    e = gc * (1 - tt * tt) / (2 * t.maxabs);
                } else if (t.cfg.kind == SQ_QUANT_PACT) {
                    double a = th[0], gc = a * g + delta * fabs(a * g) * (cc - q);
                    e = m ? gc / a : 0;
                    ep[0] += x[i] > a ? g : 0;
                } else {
                    e = m ? g + delta * fabs(g) * (cc - q) : 0;
                }
                cr_assert(close_to(gx[i], e, 1e-6, 1e-5), "%s role %d bits %d: gx[%d] %.9g want %.9g",
                          sq_quant_kind_name(t.cfg.kind), t.cfg.role, t.cfg.bits, i, gx[i], e);
                changed += gx[i] != gx0[i];
            }
            cr_assert(changed > 0, "%s role %d bits %d: delta changed no gradient",
                      sq_quant_kind_name(t.cfg.kind), t.cfg.role, t.cfg.bits);
            for (int j = 0; j < sq_quant_nparams(&t.cfg); j++)
                cr_assert(close_to(gqp[j], ep[j], 1e-5, 1e-5), "%s role %d bits %d: gqp[%d] %.9g want %.9g",
                          sq_quant_kind_name(t.cfg.kind), t.cfg.role, t.cfg.bits, j, gqp[j], ep[j]);
        }
    }
}

/* ---- PyTorch golden values (tools/gen_quant_golden.py) ---- */

static int rd(FILE *f, void *p, size_t sz, size_t n) { return fread(p, sz, n, f) == n; }

/* Tolerances: y 1e-6 + 1e-6 rel (same float32 formulas; LSQ's template map-back (q K - Qn) s may
   differ from round(v) s by an ulp); gx 1e-6 + 1e-5 rel (different association of the float32
   chain); gqp 1e-4 + 1e-4 rel (PyTorch float32 sums over 48 terms vs double here). */
Test(quant, golden_pytorch)
{
    FILE *f = fopen("tests/data/quant_golden.bin", "rb");
    cr_assert(f != NULL, "tests/data/quant_golden.bin missing (run from the repository root)");
    char magic[8];
    uint32_t ver, count;
    cr_assert(rd(f, magic, 1, 8) && memcmp(magic, "SQQGOLD1", 8) == 0, "bad magic");
    cr_assert(rd(f, &ver, 4, 1) && ver == 1, "bad version");
    cr_assert(rd(f, &count, 4, 1) && count > 80, "bad count %u", count);
    for (uint32_t ci = 0; ci < count; ci++) {
        int32_t hdr[4];
        float delta, qp[2], gqp_ref[2];
        uint32_t n;
        cr_assert(rd(f, hdr, 4, 4) && rd(f, &delta, 4, 1) && rd(f, qp, 4, 2) && rd(f, &n, 4, 1),
                  "case %u: truncated header", ci);
        cr_assert(n > 0 && n <= 4096, "case %u: n = %u", ci, n);
        float *buf = malloc(sizeof(float) * 6 * n);
        float *x = buf, *gy = buf + n, *yr = buf + 2 * n, *gxr = buf + 3 * n, *y = buf + 4 * n,
              *gx = buf + 5 * n;
        cr_assert(rd(f, buf, 4, 4 * (size_t)n) && rd(f, gqp_ref, 4, 2), "case %u: truncated", ci);
        sq_quant_cfg c = mkcfg((sq_quant_kind)hdr[0], (sq_quant_role)hdr[1], hdr[2], hdr[3], delta,
                               (float)n);
        float sc[SQ_QUANT_SCRATCH], gqp[2] = {0, 0};
        sq_cpu_fakequant_fwd(&c, n, x, qp, y, sc);
        memset(gx, 0, sizeof(float) * n);
        sq_cpu_fakequant_bwd(&c, n, x, qp, gy, gx, gqp, sc);
        for (uint32_t i = 0; i < n; i++) {
            cr_assert(close_to(y[i], yr[i], 1e-6, 1e-6),
                      "case %u (%s role %d bits %d delta %g): y[%u] %.9g ref %.9g", ci,
                      sq_quant_kind_name(c.kind), c.role, c.bits, delta, i, y[i], yr[i]);
            cr_assert(close_to(gx[i], gxr[i], 1e-6, 1e-5),
                      "case %u (%s role %d bits %d delta %g): gx[%u] %.9g ref %.9g", ci,
                      sq_quant_kind_name(c.kind), c.role, c.bits, delta, i, gx[i], gxr[i]);
        }
        for (int j = 0; j < 2; j++)
            cr_assert(close_to(gqp[j], gqp_ref[j], 1e-4, 1e-4),
                      "case %u (%s role %d bits %d delta %g): gqp[%d] %.9g ref %.9g", ci,
                      sq_quant_kind_name(c.kind), c.role, c.bits, delta, j, gqp[j], gqp_ref[j]);
        free(buf);
    }
    char extra;
    cr_assert(fread(&extra, 1, 1, f) == 0, "trailing bytes after %u cases", count);
    fclose(f);
}

/* ---- accumulation, determinism, scratch, identity ---- */

/* gx and gqp accumulate: a second backward adds exactly the same amounts (x + x is exact). */
Test(quant, backward_accumulates)
{
    enum { N = 200 };
    float x[N], gy[N], y[N], gx1[N] = {0}, gx2[N] = {0}, sc[SQ_QUANT_SCRATCH];
    unsigned seed = 99u;
    for (int si = 0; si < NSETUPS; si++) {
        tcase t;
        t_make(&t, si, 3, 0.2f, N, x, 0.0, &seed);
        for (int i = 0; i < N; i++) {
            gy[i] = (float)nrand(&seed);
            gx1[i] = 0.0f;
            gx2[i] = 0.0f;
        }
        sq_cpu_fakequant_fwd(&t.cfg, N, x, t.qp, y, sc);
        float g1[2] = {0, 0}, g2[2] = {0, 0};
        sq_cpu_fakequant_bwd(&t.cfg, N, x, t.qp, gy, gx1, g1, sc);
        sq_cpu_fakequant_bwd(&t.cfg, N, x, t.qp, gy, gx2, g2, sc);
        sq_cpu_fakequant_bwd(&t.cfg, N, x, t.qp, gy, gx2, g2, sc);
        for (int i = 0; i < N; i++)
            cr_assert_eq(gx2[i], 2.0f * gx1[i], "%s role %d: gx[%d] %.9g after two, %.9g after one",
                         sq_quant_kind_name(t.cfg.kind), t.cfg.role, i, gx2[i], gx1[i]);
        for (int j = 0; j < 2; j++)
            cr_assert_eq(g2[j], 2.0f * g1[j], "%s role %d: gqp[%d] %.9g vs %.9g",
                         sq_quant_kind_name(t.cfg.kind), t.cfg.role, j, g2[j], g1[j]);
    }
}

/* Parameter-gradient sums are bitwise identical with 1 and 2 threads (fixed chunks, fixed order),
   and equal a serial double sum of the per-element terms to 1e-6 relative (float32 terms). */
Test(quant, reductions_deterministic_across_threads)
{
    enum { N = 100003 };
    float *x = malloc(sizeof(float) * N * 5), *gy = x + N, *y = x + 2 * N, *ga = x + 3 * N,
          *gb = x + 4 * N, sc[SQ_QUANT_SCRATCH];
    unsigned seed = 4242u;
    int saved = omp_get_max_threads();
    const int sis[3] = {1, 3, 5}; /* ewgs act, pact act, lsq act */
    for (int k = 0; k < 3; k++) {
        tcase t;
        t_make(&t, sis[k], 4, 0.1f, N, x, 0.0, &seed);
        for (int i = 0; i < N; i++) gy[i] = (float)nrand(&seed);
        sq_cpu_fakequant_fwd(&t.cfg, N, x, t.qp, y, sc);
        float g1[2] = {0, 0}, g2[2] = {0, 0};
        memset(ga, 0, sizeof(float) * N);
        memset(gb, 0, sizeof(float) * N);
        omp_set_num_threads(1);
        sq_cpu_fakequant_bwd(&t.cfg, N, x, t.qp, gy, ga, g1, sc);
        omp_set_num_threads(2);
        sq_cpu_fakequant_bwd(&t.cfg, N, x, t.qp, gy, gb, g2, sc);
        omp_set_num_threads(saved);
        cr_assert(memcmp(g1, g2, sizeof g1) == 0 && memcmp(ga, gb, sizeof(float) * N) == 0,
                  "%s: 1 thread gqp %.9g %.9g, 2 threads %.9g %.9g",
                  sq_quant_kind_name(t.cfg.kind), g1[0], g1[1], g2[0], g2[1]);
        double ref = 0.0;
        for (int i = 0; i < N; i++) {
            float one = 0.0f, gq[2] = {0, 0};
            sq_cpu_fakequant_bwd(&t.cfg, 1, &x[i], t.qp, &gy[i], &one, gq, sc);
            ref += gq[0]; /* grad_numel = N in the cfg, so LSQ's gs is the same per element */
        }
        cr_assert(close_to(g1[0], ref, 1e-5, 1e-6), "%s: gqp[0] %.9g, serial %.9g",
                  sq_quant_kind_name(t.cfg.kind), g1[0], ref);
    }
    free(x);
}

/* DoReFa weights: the forward writes max|tanh(w)| to scratch[0] and the backward reads it there
   (a doubled max halves G_w; tolerance 1e-6 relative for one float32 division). */
Test(quant, dorefa_weight_scratch)
{
    float w[4] = {-0.3f, 0.1f, 0.9f, 0.5f}, y[4], gy[4] = {1, 1, 1, 1}, sc[SQ_QUANT_SCRATCH];
    sq_quant_cfg c = mkcfg(SQ_QUANT_DOREFA, SQ_QROLE_WEIGHT, 2, 0, 0.0f, 0.0f);
    sq_cpu_fakequant_fwd(&c, 4, w, NULL, y, sc);
    cr_assert(close_to(sc[0], tanh(0.9), 1e-7, 1e-6), "scratch %.9g want %.9g", sc[0], tanh(0.9));
    cr_assert_eq(y[2], 1.0f, "max element maps to +1, got %g", y[2]);
    float g1[4] = {0}, g2[4] = {0};
    sq_cpu_fakequant_bwd(&c, 4, w, NULL, gy, g1, NULL, sc);
    sc[0] *= 2.0f;
    sq_cpu_fakequant_bwd(&c, 4, w, NULL, gy, g2, NULL, sc);
    for (int i = 0; i < 4; i++) {
        double t = tanh(w[i]);
        cr_assert(close_to(g1[i], 2.0 * (1 - t * t) / (2 * tanh(0.9)), 1e-7, 1e-5), "g1[%d] %.9g", i, g1[i]);
        cr_assert(close_to(g2[i], 0.5 * g1[i], 1e-7, 1e-6), "g2[%d] %.9g vs %.9g", i, g2[i], g1[i]);
    }
    /* PACT weights are DoReFa weights */
    sq_quant_cfg p = mkcfg(SQ_QUANT_PACT, SQ_QROLE_WEIGHT, 2, 0, 0.0f, 0.0f);
    float yp[4];
    sq_cpu_fakequant_fwd(&p, 4, w, NULL, yp, sc);
    cr_assert(memcmp(y, yp, sizeof y) == 0, "pact weight differs from dorefa weight");
}

/* kind none: forward copies, backward adds gy to gx and touches no parameter gradient */
Test(quant, none_is_identity)
{
    float x[3] = {-1.5f, 0.25f, 7.0f}, y[3], gy[3] = {1, 2, 3}, gx[3] = {1, 1, 1}, gq[2] = {5, 5};
    sq_quant_cfg c = mkcfg(SQ_QUANT_NONE, SQ_QROLE_ACT, 0, 0, 0.0f, 0.0f);
    sq_cpu_fakequant_fwd(&c, 3, x, NULL, y, NULL);
    sq_cpu_fakequant_bwd(&c, 3, x, NULL, gy, gx, gq, NULL);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(y[i], x[i]);
        cr_assert_eq(gx[i], 1.0f + gy[i]);
    }
    cr_assert(gq[0] == 5.0f && gq[1] == 5.0f);
    cr_assert_eq(sq_quant_levels(&c), 0);
}

/* y = |s| z: backward vs exact formula and vs central differences in s (y is linear in s away
   from 0, so FD is exact up to float32 rounding: 1e-5 relative). */
Test(quant, absscale_forward_backward)
{
    enum { N = 1000 };
    float z[N], gy[N], y[N], gz[N];
    unsigned seed = 5u;
    for (int i = 0; i < N; i++) {
        z[i] = (float)nrand(&seed);
        gy[i] = (float)nrand(&seed);
    }
    const float ss[2] = {0.7f, -1.3f};
    for (int k = 0; k < 2; k++) {
        float s = ss[k], gs = 0.25f;
        sq_cpu_absscale_fwd(N, &s, z, y);
        double dot = 0.0;
        for (int i = 0; i < N; i++) {
            cr_assert_eq(y[i], fabsf(s) * z[i], "y[%d]", i);
            gz[i] = 1.0f;
            dot += (double)gy[i] * z[i];
        }
        sq_cpu_absscale_bwd(N, &s, z, gy, gz, &gs);
        for (int i = 0; i < N; i++) cr_assert_eq(gz[i], 1.0f + fabsf(s) * gy[i], "gz[%d]", i);
        double h = 1e-3, fd = dot * (fabs(s + h) - fabs(s - h)) / (2 * h);
        cr_assert(close_to(gs - 0.25f, fd, 1e-5, 1e-5), "s %g: gs %.9g fd %.9g", s, gs - 0.25f, fd);
    }
}

/* ---- host helpers ---- */

Test(quant, cfg_check_rejects_bad_bits)
{
    sq_quant_cfg c = mkcfg(SQ_QUANT_LSQ, SQ_QROLE_WEIGHT, 9, 1, 0.0f, 0.0f);
    cr_assert_eq(sq_quant_cfg_check(&c), SQ_EARG);
    cr_assert(strstr(sq_last_error(), "bits must be 1..8, got 9") != NULL, "message: %s",
              sq_last_error());
    c.bits = 0;
    cr_assert_eq(sq_quant_cfg_check(&c), SQ_EARG);
    cr_assert(strstr(sq_last_error(), "bits must be 1..8, got 0") != NULL, "message: %s",
              sq_last_error());
    for (int b = 1; b <= 8; b++) {
        c.bits = b;
        cr_assert_eq(sq_quant_cfg_check(&c), SQ_OK, "bits %d rejected", b);
    }
    c.delta = -0.1f;
    cr_assert_eq(sq_quant_cfg_check(&c), SQ_EARG);
    c.delta = 0.0f;
    c.kind = (sq_quant_kind)9;
    cr_assert_eq(sq_quant_cfg_check(&c), SQ_EARG);
    sq_quant_cfg n = mkcfg(SQ_QUANT_NONE, SQ_QROLE_ACT, 0, 0, 0.0f, 0.0f);
    cr_assert_eq(sq_quant_cfg_check(&n), SQ_OK, "kind none ignores bits");
}

Test(quant, kind_names_round_trip)
{
    for (int k = SQ_QUANT_NONE; k <= SQ_QUANT_DOREFA; k++)
        cr_assert_eq(sq_quant_kind_parse(sq_quant_kind_name((sq_quant_kind)k)), k);
    cr_assert_str_eq(sq_quant_kind_name(SQ_QUANT_EWGS), "ewgs");
    cr_assert_eq(sq_quant_kind_parse("lsq"), SQ_QUANT_LSQ);
    cr_assert_eq(sq_quant_kind_parse("LSQ+"), -1);
    cr_assert_eq(sq_quant_kind_parse(NULL), -1);
}

/* method.md initialization formulas on small known data (tolerance 1e-6 relative: double sums
   rounded once to float32) */
Test(quant, init_from_data)
{
    const float w[4] = {1, 2, 3, 4}, xa[4] = {0, 1, 2, 3};
    const double sd = sqrt(5.0 / 3.0); /* unbiased std of {1,2,3,4} and of {0,1,2,3} */
    float qp[2] = {0, 0};
    sq_quant_cfg ew = mkcfg(SQ_QUANT_EWGS, SQ_QROLE_WEIGHT, 4, 0, 0.0f, 0.0f);
    sq_quant_init_weight(&ew, w, 4, qp);
    cr_assert(close_to(qp[0], -3 * sd, 0, 1e-6) && close_to(qp[1], 3 * sd, 0, 1e-6),
              "ewgs weight l %.9g u %.9g", qp[0], qp[1]);
    sq_quant_cfg ea = mkcfg(SQ_QUANT_EWGS, SQ_QROLE_ACT, 4, 0, 0.0f, 0.0f);
    sq_quant_init_act(&ea, xa, 4, qp);
    cr_assert(qp[0] == 0.0f && close_to(qp[1], 4.976690 * sd, 0, 1e-6), "ewgs act l %.9g u %.9g",
              qp[0], qp[1]);
    sq_quant_cfg pa = mkcfg(SQ_QUANT_PACT, SQ_QROLE_ACT, 4, 0, 0.0f, 0.0f);
    sq_quant_init_act(&pa, xa, 4, qp);
    cr_assert(close_to(qp[0], 4.976690 * sd, 0, 1e-6), "pact alpha %.9g", qp[0]);
    const float zeros[3] = {0, 0, 0};
    sq_quant_init_act(&pa, zeros, 3, qp);
    cr_assert_eq(qp[0], 6.0f, "pact alpha fallback %.9g", qp[0]);
    sq_quant_init_act(&ea, zeros, 3, qp);
    cr_assert(qp[1] > qp[0], "ewgs act degenerate interval [%g, %g]", qp[0], qp[1]);
    sq_quant_cfg lw = mkcfg(SQ_QUANT_LSQ, SQ_QROLE_WEIGHT, 4, 1, 0.0f, 0.0f);
    sq_quant_init_weight(&lw, w, 4, qp);
    cr_assert(close_to(qp[0], 2 * 2.5 / sqrt(7.0), 0, 1e-6), "lsq weight s %.9g", qp[0]);
    sq_quant_cfg la = mkcfg(SQ_QUANT_LSQ, SQ_QROLE_ACT, 2, 0, 0.0f, 0.0f);
    sq_quant_init_act(&la, xa, 4, qp);
    cr_assert(close_to(qp[0], 2 * 1.5 / sqrt(3.0), 0, 1e-6), "lsq act s %.9g", qp[0]);
    cr_assert(close_to(3.0 / sqrt(1.0 - 2.0 / 3.141592653589793), 4.976690, 1e-6, 0));
}
