/* test_qconv_bwd.c: the BF16 backward of quantized convolutions (kernels/cpu/qconv_bwd.c)
   against the fp32 backward of the same fake-quantized tensors (conv2d_bwd), for every quantizer
   kind, bit-widths 1..8, per-tensor and per-channel weights, output scale, odd channel counts and
   widths, kernels 1x1 to 5x5, with gx written and accumulated, gw and gb accumulated; the bound
   it promises (only gy rounded to bf16); its layout exactly (gy already on the bf16 grid: then
   every product is exact and only the order of the fp32 sums differs); results independent of
   the thread count; and the cases it must decline. */
#include "../kernels/cpu/cpu_ops.h"
#include "sqakd/backend.h"
#include "sqakd/model.h"
#include "sqakd/quant_math.h"
#include "util_check.h"
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct bcase {
    sq_quant_kind kind;
    int bits;
    int n, c, h, w, k, r, pad;
    int scaled, pc, bias, gx_set;
} bcase;

static float bf16_round(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

/* worst |got - ref| / (bound + floor) over n elements */
static double worst_rel(const float *got, const float *ref, const float *bound, size_t n, double floor_)
{
    double w = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]) / ((double)bound[i] + floor_);
        if (!(e <= w)) w = isnan(e) ? INFINITY : e;
    }
    return w;
}

typedef struct bresult {
    int ran;
    double gx, gw, gb; /* worst error relative to the bound sum |products| */
} bresult;

/* runs one case: gy exactly on the bf16 grid (exact = 1) or arbitrary */
static bresult run_case(const bcase *q, int exact, uint64_t seed)
{
    const sq_backend *be = sq_backend_cpu();
    bresult res = {0};
    sq_conv_shape cs;
    cr_assert_eq(sq_conv_shape_init(&cs, q->n, q->c, q->h, q->w, q->k, q->r, q->r, 1, q->pad, 1), SQ_OK);
    const size_t nx = (size_t)q->n * q->c * q->h * q->w, nw = (size_t)q->k * q->c * q->r * q->r;
    const size_t ny = (size_t)q->n * q->k * cs.oh * cs.ow;
    float *x = malloc(nx * 4), *xq = malloc(nx * 4), *w = malloc(nw * 4), *wq = malloc(nw * 4);
    float *wqs = malloc(nw * 4), *gy = malloc(ny * 4), *ax = malloc(nx * 4), *aw = malloc(nw * 4);
    float *agy = malloc(ny * 4);
    float *gx[3], *gw[3], gb[3][64];
    for (int v = 0; v < 3; v++) {
        gx[v] = malloc(nx * 4);
        gw[v] = malloc(nw * 4);
    }
    float scratch_w[SQ_QUANT_SCRATCH * 64], scratch_a[SQ_QUANT_SCRATCH], qpw[128], qpa[2], s = -0.75f;
    sqt_fill_normal(x, nx, 0.3f, 1.0f, seed);
    for (size_t i = 0; i < nx; i++) x[i] = x[i] > 0 ? x[i] : 0;
    sqt_fill_normal(w, nw, 0.0f, 0.2f, seed + 1);
    sqt_fill_normal(gy, ny, 0.0f, 1e-3f, seed + 2);
    if (exact)
        for (size_t i = 0; i < ny; i++) gy[i] = bf16_round(gy[i]);
    sq_quant_cfg cw = {.kind = q->kind, .role = SQ_QROLE_WEIGHT, .bits = q->bits, .is_signed = 1};
    sq_quant_cfg ca = {.kind = q->kind, .role = SQ_QROLE_ACT, .bits = q->bits, .is_signed = 0};
    cw.channels = q->pc ? q->k : 0;
    sq_quant_init_weight_pc(&cw, w, nw, qpw);
    sq_quant_init_act(&ca, x, nx, qpa);
    be->fakequant_fwd(&cw, nw, w, qpw, wq, scratch_w);
    be->fakequant_fwd(&ca, nx, x, qpa, xq, scratch_a);
    for (size_t i = 0; i < nw; i++) wqs[i] = q->scaled ? fabsf(s) * wq[i] : wq[i];
    /* the bound: the same backward over absolute values gives sum |products| per element */
    for (size_t i = 0; i < nx; i++) ax[i] = fabsf(xq[i]);
    for (size_t i = 0; i < nw; i++) aw[i] = fabsf(wqs[i]);
    for (size_t i = 0; i < ny; i++) agy[i] = fabsf(gy[i]);
    void *ws = malloc(be->conv_ws_bytes(&cs) + 64);
    /* v = 0: fp32 reference, 1: the BF16 op, 2: bounds; gx starts from the same values (the op
       accumulates unless gx_set), gw and gb from the same nonzero values */
    for (int v = 0; v < 3; v++) {
        sqt_fill_normal(gx[v], nx, 0.0f, v == 2 ? 0.0f : 1e-3f, seed + 3);
        sqt_fill_normal(gw[v], nw, 0.0f, v == 2 ? 0.0f : 1e-3f, seed + 4);
        sqt_fill_normal(gb[v], 64, 0.0f, v == 2 ? 0.0f : 1e-3f, seed + 5);
    }
    /* written (gx_set): the reference accumulates into zeros */
    if (q->gx_set) memset(gx[0], 0, nx * 4);
    be->conv2d_bwd(&cs, xq, wqs, gy, gx[0], gw[0], q->bias ? gb[0] : NULL, ws);
    be->conv2d_bwd(&cs, ax, aw, agy, gx[2], gw[2], gb[2], ws);
    res.ran = be->qconv2d_bwd(&cs, &ca, qpa, xq, &cw, qpw, wq, q->scaled ? &s : NULL, gy, gx[1],
                              q->gx_set, gw[1], q->bias ? gb[1] : NULL, ws);
    if (res.ran) {
        res.gx = worst_rel(gx[1], gx[0], gx[2], nx, 1e-9);
        res.gw = worst_rel(gw[1], gw[0], gw[2], nw, 1e-9);
        res.gb = q->bias ? worst_rel(gb[1], gb[0], gb[2], (size_t)q->k, 1e-9) : 0.0;
    }
    free(ws);
    for (int v = 0; v < 3; v++) {
        free(gx[v]);
        free(gw[v]);
    }
    free(x); free(xq); free(w); free(wq); free(wqs); free(gy); free(ax); free(aw); free(agy);
    return res;
}

static const int k_shapes[][6] = {/* c, h, w, k, r, pad */
                                  {16, 32, 32, 16, 3, 1}, {5, 7, 9, 3, 3, 1}, {3, 11, 5, 7, 1, 0},
                                  {13, 6, 13, 5, 5, 2},   {64, 8, 8, 64, 3, 1}, {4, 1, 1, 1, 1, 0},
                                  {7, 9, 17, 33, 3, 0},   {32, 5, 3, 17, 3, 2}, {3, 4, 11, 1, 1, 0},
                                  {9, 3, 20, 6, 3, 1}};
#define NSHAPES (int)(sizeof k_shapes / sizeof k_shapes[0])

static void sweep(int exact, double tol, uint64_t seed)
{
    const sq_quant_kind kinds[] = {SQ_QUANT_EWGS, SQ_QUANT_PACT, SQ_QUANT_LSQ, SQ_QUANT_DOREFA};
    int ran = 0, cases = 0, runnable = 0;
    double worst = 0.0;
    for (int kq = 0; kq < 4; kq++)
        for (int bits = 1; bits <= 8; bits += (bits < 2 ? 1 : 2))
            for (int sh = 0; sh < NSHAPES; sh++) {
                const int pc = kinds[kq] != SQ_QUANT_PACT && (sh % 3) == 1;
                bcase q = {kinds[kq], bits, 2, k_shapes[sh][0], k_shapes[sh][1], k_shapes[sh][2],
                           k_shapes[sh][3], k_shapes[sh][4], k_shapes[sh][5], kq == 0 || sh == 2,
                           pc, sh & 1, (sh >> 1) & 1};
                bresult r = run_case(&q, exact, seed++);
                cases++;
                /* every stride-1 shape runs (rows narrower than 8 unfolded over blocks of images) */
                runnable++;
                cr_expect_eq(r.ran, 1, "c%d %dx%d k%d r%d pad%d: declined", q.c, q.h, q.w, q.k, q.r, q.pad);
                if (!r.ran) continue;
                ran++;
                double m = fmax(r.gx, fmax(r.gw, r.gb));
                /* per-channel weights scale gy per channel before rounding: only the loose bound */
                const double lim = pc && exact ? 1.0 / 256 + 1e-5 : tol;
                if (lim == tol && m > worst) worst = m;
                cr_expect(m <= lim, "kind %d w%da%d c%d %dx%d k%d r%d pad%d pc%d: error %.3g of the bound (gx %.3g gw %.3g gb %.3g), limit %.3g",
                          q.kind, q.bits, q.bits, q.c, q.h, q.w, q.k, q.r, q.pad, q.pc, m, r.gx, r.gw, r.gb, lim);
            }
    cr_expect_eq(ran, runnable, "the BF16 path ran %d of %d cases", ran, runnable);
    cr_expect_eq(runnable, cases);
    cr_log_info("worst error %.3g of sum |products| (limit %.3g)", worst, tol);
}

/* gy on the bf16 grid: every product is exact, only the fp32 summation order differs from the
   reference, so any slip of layout, codes, steps or scale shows far above this limit (per-tensor
   weights; per-channel ones meet the loose bound) */
Test(qconv_bwd, layout_is_exact_when_gy_is_on_the_bf16_grid)
{
    if (!sq_cpu_qconv_bwd_available()) cr_skip("this CPU has no AVX-512 BF16: the BF16 backward is off");
    sweep(1, 1e-5, 500);
}

/* arbitrary gy: the promise, |error| <= 2^-8 sum |products| (the rounding of gy to 8 significant
   bits) plus fp32 sums */
Test(qconv_bwd, error_is_within_the_rounding_of_gy)
{
    if (!sq_cpu_qconv_bwd_available()) cr_skip("this CPU has no AVX-512 BF16: the BF16 backward is off");
    sweep(0, 1.0 / 256 + 1e-5, 700);
}

/* the rounding of gy is really there (so the exact test above is not vacuous) */
Test(qconv_bwd, arbitrary_gy_is_rounded)
{
    if (!sq_cpu_qconv_bwd_available()) cr_skip("this CPU has no AVX-512 BF16: the BF16 backward is off");
    bcase q = {SQ_QUANT_LSQ, 4, 2, 16, 12, 12, 16, 3, 1, 0, 0, 0, 1};
    bresult r = run_case(&q, 0, 9);
    cr_assert(r.ran);
    cr_expect_gt(r.gx, 1e-5);
    cr_expect_gt(r.gw, 1e-5);
}

/* LSQ W4A4 operands on the grids of steps 1/8 (activations) and 1/16 (weights), codes spread
   over their whole ranges */
static const sq_quant_cfg k_lsq_w = {.kind = SQ_QUANT_LSQ, .role = SQ_QROLE_WEIGHT, .bits = 4, .is_signed = 1};
static const sq_quant_cfg k_lsq_a = {.kind = SQ_QUANT_LSQ, .role = SQ_QROLE_ACT, .bits = 4, .is_signed = 0};
static float k_lsq_qpa[1] = {0.125f}, k_lsq_qpw[1] = {0.0625f};
static void lsq_operands(float *xq, size_t nx, float *wq, size_t nw)
{
    for (size_t i = 0; i < nx; i++) xq[i] = 0.125f * (float)((i * 7) % 16);
    for (size_t i = 0; i < nw; i++) wq[i] = 0.0625f * (float)((int)((i * 5) % 16) - 8);
}

/* the op on LSQ W4A4 operands of an n x c x h x w -> k 3x3 convolution, on 1 and on 2 threads:
   the same bits */
static void expect_thread_independent(int n, int c, int h, int w, int k, uint64_t seed)
{
    const sq_backend *be = sq_backend_cpu();
    sq_conv_shape cs;
    cr_assert_eq(sq_conv_shape_init(&cs, n, c, h, w, k, 3, 3, 1, 1, 1), SQ_OK);
    const size_t nx = (size_t)n * c * h * w, nw = (size_t)k * c * 9, ny = (size_t)n * k * h * w;
    float *xq = malloc(nx * 4), *wq = malloc(nw * 4), *gy = malloc(ny * 4);
    float *gx[2] = {malloc(nx * 4), malloc(nx * 4)}, *gw[2] = {calloc(nw, 4), calloc(nw, 4)};
    const float *qpa = k_lsq_qpa, *qpw = k_lsq_qpw;
    const sq_quant_cfg cw = k_lsq_w, ca = k_lsq_a;
    lsq_operands(xq, nx, wq, nw);
    sqt_fill_normal(gy, ny, 0.0f, 1.0f, seed);
    const int t0 = sq_cpu_threads();
    for (int v = 0; v < 2; v++) {
        sq_cpu_set_threads(v ? 2 : 1);
        void *ws = malloc(be->conv_ws_bytes(&cs) + 64);
        cr_assert_eq(be->qconv2d_bwd(&cs, &ca, qpa, xq, &cw, qpw, wq, NULL, gy, gx[v], 1, gw[v], NULL, ws), 1);
        free(ws);
    }
    sq_cpu_set_threads(t0);
    cr_expect_eq(memcmp(gx[0], gx[1], nx * 4), 0, "%dx%d: gx differs between 1 and 2 threads", h, w);
    cr_expect_eq(memcmp(gw[0], gw[1], nw * 4), 0, "%dx%d: gw differs between 1 and 2 threads", h, w);
    double sum = 0;
    for (size_t i = 0; i < nw; i++) sum += fabs(gw[0][i]);
    cr_expect_gt(sum, 0.0);
    free(xq); free(wq); free(gy); free(gx[0]); free(gx[1]); free(gw[0]); free(gw[1]);
}

Test(qconv_bwd, results_do_not_depend_on_the_thread_count)
{
    if (!sq_cpu_qconv_bwd_available()) cr_skip("this CPU has no AVX-512 BF16: the BF16 backward is off");
    expect_thread_independent(37, 16, 10, 10, 24, 77);
}

Test(qconv_bwd, declines_what_it_cannot_do_and_the_option_turns_it_off)
{
    if (!sq_cpu_qconv_bwd_available()) cr_skip("this CPU has no AVX-512 BF16: the BF16 backward is off");
    const sq_backend *be = sq_backend_cpu();
    sq_conv_shape cs;
    float x[4 * 64] = {0}, w[4 * 4 * 9] = {0}, gy[4 * 64] = {0}, gx[4 * 64], gw[4 * 4 * 9] = {0};
    float qpa[1] = {0.1f}, qpw[1] = {0.1f};
    sq_quant_cfg cw = {.kind = SQ_QUANT_LSQ, .role = SQ_QROLE_WEIGHT, .bits = 4, .is_signed = 1};
    sq_quant_cfg ca = {.kind = SQ_QUANT_LSQ, .role = SQ_QROLE_ACT, .bits = 4, .is_signed = 0};
    /* stride 2, depthwise, padding as large as the kernel */
    const int bad[][5] = {{2, 1, 1, 3, 8}, {1, 1, 4, 3, 8}, {1, 3, 1, 3, 8}};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(sq_conv_shape_init(&cs, 1, 4, 8, bad[i][4], 4, bad[i][3], bad[i][3], bad[i][0], bad[i][1], bad[i][2]), SQ_OK);
        void *ws = malloc(be->conv_ws_bytes(&cs) + 64);
        cr_expect_eq(be->qconv2d_bwd(&cs, &ca, qpa, x, &cw, qpw, w, NULL, gy, gx, 1, gw, NULL, ws), 0, "case %d", i);
        free(ws);
    }
    /* a supported shape runs, and not with bf16-bwd=0 */
    cr_assert_eq(sq_conv_shape_init(&cs, 1, 4, 8, 8, 4, 3, 3, 1, 1, 1), SQ_OK);
    void *ws = malloc(be->conv_ws_bytes(&cs) + 64);
    cr_expect_eq(be->qconv2d_bwd(&cs, &ca, qpa, x, &cw, qpw, w, NULL, gy, gx, 1, gw, NULL, ws), 1);
    sq_backend_opts o = *be->options();
    sq_backend_opts off = o;
    off.bf16_bwd = 0;
    cr_assert_eq(be->configure(&off), SQ_OK);
    cr_expect_eq(be->qconv2d_bwd(&cs, &ca, qpa, x, &cw, qpw, w, NULL, gy, gx, 1, gw, NULL, ws), 0);
    cr_assert_eq(be->configure(&o), SQ_OK);
    /* a grid it cannot hold exactly: no grid (a zero LSQ step) */
    qpa[0] = 0.0f;
    cr_expect_eq(be->qconv2d_bwd(&cs, &ca, qpa, x, &cw, qpw, w, NULL, gy, gx, 1, gw, NULL, ws), 0);
    free(ws);
}

/* a layer whose one weight-gradient partial would exceed the limit (1024 -> 1024 3x3: 38 MB) gets
   gx from the BF16 path and gw, gb from the fp32 backward: those bit-equal to conv2d_bwd; a
   512 -> 512 one keeps the BF16 weight gradient, in fewer blocks */
Test(qconv_bwd, wide_layers_take_the_weight_gradient_from_the_fp32_path)
{
    if (!sq_cpu_qconv_bwd_available()) cr_skip("this CPU has no AVX-512 BF16: the BF16 backward is off");
    const sq_backend *be = sq_backend_cpu();
    sq_conv_shape cs;
    cr_assert_eq(sq_conv_shape_init(&cs, 128, 512, 8, 8, 512, 3, 3, 1, 1, 1), SQ_OK);
    cr_expect_eq(sq_cpu_qconv_bwd_wgrad_ok(&cs), 1);
    cr_assert_eq(sq_conv_shape_init(&cs, 2, 1024, 8, 8, 1024, 3, 3, 1, 1, 1), SQ_OK);
    cr_assert_eq(sq_cpu_qconv_bwd_wgrad_ok(&cs), 0);
    const size_t nx = (size_t)2 * 1024 * 64, nw = (size_t)1024 * 1024 * 9, ny = nx;
    float *xq = malloc(nx * 4), *wq = malloc(nw * 4), *gy = malloc(ny * 4), *gx[2], *gw[2];
    float gb[2][1024] = {{0}};
    const float *qpa = k_lsq_qpa, *qpw = k_lsq_qpw;
    for (int v = 0; v < 2; v++) {
        gx[v] = calloc(nx, 4);
        gw[v] = calloc(nw, 4);
    }
    const sq_quant_cfg cw = k_lsq_w, ca = k_lsq_a;
    lsq_operands(xq, nx, wq, nw);
    sqt_fill_normal(gy, ny, 0.0f, 1.0f, 78);
    void *ws = malloc(be->conv_ws_bytes(&cs) + 64);
    be->conv2d_bwd(&cs, xq, wq, gy, gx[0], gw[0], gb[0], ws);
    cr_assert_eq(be->qconv2d_bwd(&cs, &ca, qpa, xq, &cw, qpw, wq, NULL, gy, gx[1], 0, gw[1], gb[1], ws), 1);
    cr_expect_eq(memcmp(gw[0], gw[1], nw * 4), 0, "gw is not the fp32 path's");
    cr_expect_eq(memcmp(gb[0], gb[1], sizeof gb[0]), 0, "gb is not the fp32 path's");
    /* gx from the BF16 path: close, not equal (gy is rounded) */
    double num = 0, den = 0;
    int differ = 0;
    for (size_t i = 0; i < nx; i++) {
        num += fabs((double)gx[1][i] - gx[0][i]);
        den += fabs((double)gx[0][i]);
        differ += gx[1][i] != gx[0][i];
    }
    cr_expect_lt(num / den, 1.0 / 256, "gx: mean relative difference %.3g", num / den);
    cr_expect_gt(differ, 0);
    free(ws); free(xq); free(wq); free(gy);
    for (int v = 0; v < 2; v++) {
        free(gx[v]);
        free(gw[v]);
    }
}

#if defined(__x86_64__)
/* zmm16-31 as the calling thread sees them (this test file is built for the baseline, which
   never touches them itself) */
__attribute__((target("avx512f"), noinline)) static int upper_regs_nonzero(void)
{
    float buf[16 * 16];
    __asm__ volatile("vmovups %%zmm16, 0(%0)\n\tvmovups %%zmm17, 64(%0)\n\tvmovups %%zmm18, 128(%0)\n\t"
                     "vmovups %%zmm19, 192(%0)\n\tvmovups %%zmm20, 256(%0)\n\tvmovups %%zmm21, 320(%0)\n\t"
                     "vmovups %%zmm22, 384(%0)\n\tvmovups %%zmm23, 448(%0)\n\tvmovups %%zmm24, 512(%0)\n\t"
                     "vmovups %%zmm25, 576(%0)\n\tvmovups %%zmm26, 640(%0)\n\tvmovups %%zmm27, 704(%0)\n\t"
                     "vmovups %%zmm28, 768(%0)\n\tvmovups %%zmm29, 832(%0)\n\tvmovups %%zmm30, 896(%0)\n\t"
                     "vmovups %%zmm31, 960(%0)"
                     :
                     : "r"(buf)
                     : "memory");
    int nz = 0;
    for (int i = 0; i < 256; i++) nz += buf[i] != 0.0f;
    return nz;
}

/* the AVX-512 kernels leave zmm16-31 zeroed: values left there keep the upper vector state
   dirty past vzeroupper, and the baseline (SSE) code of the ops after them ran 3-4x slower
   (fakequant_bwd after the BF16 backward: 4.3 ms against 1.0 ms on 2M elements) */
Test(qconv_bwd, the_avx512_kernels_leave_the_upper_registers_clean)
{
    if (!sq_cpu_qconv_bwd_available()) cr_skip("this CPU has no AVX-512 BF16: the BF16 backward is off");
    const sq_backend *be = sq_backend_cpu();
    sq_conv_shape cs;
    cr_assert_eq(sq_conv_shape_init(&cs, 2, 16, 12, 12, 16, 3, 3, 1, 1, 1), SQ_OK);
    const size_t nx = (size_t)2 * 16 * 144, nw = (size_t)16 * 16 * 9;
    float *xq = malloc(nx * 4), *wq = malloc(nw * 4), *gy = malloc(nx * 4), *gx = malloc(nx * 4),
          *gw = calloc(nw, 4), *y = malloc(nx * 4);
    const float *qpa = k_lsq_qpa, *qpw = k_lsq_qpw;
    const sq_quant_cfg cw = k_lsq_w, ca = k_lsq_a;
    lsq_operands(xq, nx, wq, nw);
    sqt_fill_normal(gy, nx, 0.0f, 1.0f, 79);
    const int t0 = sq_cpu_threads();
    sq_cpu_set_threads(1); /* the kernels run on this thread */
    void *ws = malloc(be->conv_ws_bytes(&cs) + 64);
    cr_assert_eq(be->qconv2d_bwd(&cs, &ca, qpa, xq, &cw, qpw, wq, NULL, gy, gx, 1, gw, NULL, ws), 1);
    cr_expect_eq(upper_regs_nonzero(), 0, "qconv2d_bwd left values in zmm16-31");
    if (sq_cpu_qconv_available()) {
        cr_assert_eq(be->qconv2d_fwd(&cs, &ca, qpa, xq, &cw, qpw, wq, NULL, NULL, y, ws), 1);
        cr_expect_eq(upper_regs_nonzero(), 0, "qconv2d_fwd left values in zmm16-31");
    }
    sq_cpu_set_threads(t0);
    free(ws); free(xq); free(wq); free(gy); free(gx); free(gw); free(y);
}
#endif

/* narrow rows over many images: sub-blocks of 16 (4x4) and 5 (7x7) images, the last one partial,
   weight-gradient blocks of several sub-blocks; exact on the bf16 grid, within the bound
   otherwise, and the same bits on 1 and 2 threads */
Test(qconv_bwd, narrow_rows_over_blocks_of_images)
{
    if (!sq_cpu_qconv_bwd_available()) cr_skip("this CPU has no AVX-512 BF16: the BF16 backward is off");
    const bcase cases[] = {
        {SQ_QUANT_LSQ, 4, 37, 16, 4, 4, 24, 3, 1, 0, 0, 0, 1},  {SQ_QUANT_EWGS, 2, 11, 9, 7, 7, 12, 3, 1, 1, 0, 1, 0},
        {SQ_QUANT_DOREFA, 4, 33, 8, 2, 2, 8, 3, 1, 0, 0, 0, 0}, {SQ_QUANT_PACT, 3, 20, 5, 5, 3, 6, 3, 1, 0, 0, 1, 1},
    };
    for (int i = 0; i < 4; i++) {
        for (int exact = 1; exact >= 0; exact--) {
            bresult r = run_case(&cases[i], exact, 900 + 2 * i + exact);
            cr_assert(r.ran, "case %d declined", i);
            const double m = fmax(r.gx, fmax(r.gw, r.gb)), lim = exact ? 1e-5 : 1.0 / 256 + 1e-5;
            cr_expect(m <= lim, "case %d exact %d: error %.3g of the bound (gx %.3g gw %.3g), limit %.3g", i, exact, m,
                      r.gx, r.gw, lim);
        }
    }
    expect_thread_independent(37, 16, 4, 4, 24, 81);
}

#if defined(__x86_64__)
/* OpenBLAS's AVX-512 GEMM kernels leave values in zmm16-31 too: sq_cpu_sgemm, through which every
   GEMM of the CPU backend runs (Winograd's, the wide layers' blocks, linear layers), clears them */
Test(qconv_bwd, openblas_gemms_leave_the_upper_registers_clean)
{
    if (!__builtin_cpu_supports("avx512f")) cr_skip("this CPU has no AVX-512: no upper registers to dirty");
    const int t0 = sq_cpu_threads();
    sq_cpu_set_threads(1); /* the GEMMs run on this thread */
    const int m = 64, n = 96, k = 128;
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n), *c = malloc(sizeof(float) * m * n);
    sqt_fill_normal(a, (size_t)m * k, 0.0f, 1.0f, 81);
    sqt_fill_normal(b, (size_t)k * n, 0.0f, 1.0f, 82);
    sq_cpu_sgemm(0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
    cr_expect_eq(upper_regs_nonzero(), 0, "sq_cpu_sgemm left values in zmm16-31");
    const sq_backend *be = sq_backend_cpu();
    sq_conv_shape cs;
    cr_assert_eq(sq_conv_shape_init(&cs, 2, 64, 6, 6, 128, 3, 3, 1, 1, 1), SQ_OK);
    const size_t nx = (size_t)2 * 64 * 36, nw = (size_t)128 * 64 * 9, ny = (size_t)2 * 128 * 36;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *y = malloc(ny * 4);
    sqt_fill_normal(x, nx, 0.0f, 1.0f, 83);
    sqt_fill_normal(w, nw, 0.0f, 0.1f, 84);
    void *ws = be->alloc(be->conv_ws_bytes(&cs));
    be->conv2d_fwd(&cs, x, w, NULL, y, ws);
    cr_expect_eq(upper_regs_nonzero(), 0, "the float convolution (Winograd where it applies) left values in zmm16-31");
    sq_cpu_set_threads(t0);
    be->free(ws);
    free(a); free(b); free(c); free(x); free(w); free(y);
}

/* the narrow layers' Winograd (conv_wino16.c: AVX-512 registers, 24 accumulators) clears them
   after its forward and both gradients */
Test(qconv_bwd, narrow_winograd_leaves_the_upper_registers_clean)
{
    if (!sq_cpu_wino16_available()) cr_skip("this CPU has no AVX-512F: the narrow Winograd does not run");
    const int t0 = sq_cpu_threads();
    sq_cpu_set_threads(1); /* the kernels run on this thread */
    const sq_backend *be = sq_backend_cpu();
    sq_conv_shape cs;
    cr_assert_eq(sq_conv_shape_init(&cs, 2, 32, 6, 6, 16, 3, 3, 1, 1, 1), SQ_OK);
    cr_assert(sq_cpu_wino16_applies(&cs), "32 -> 16 should take the narrow Winograd");
    const size_t nx = (size_t)2 * 32 * 36, nw = (size_t)16 * 32 * 9, ny = (size_t)2 * 16 * 36;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *y = malloc(ny * 4), *gx = calloc(nx, 4), *gw = calloc(nw, 4);
    sqt_fill_normal(x, nx, 0.0f, 1.0f, 85);
    sqt_fill_normal(w, nw, 0.0f, 0.1f, 86);
    void *ws = be->alloc(be->conv_ws_bytes(&cs));
    be->conv2d_fwd(&cs, x, w, NULL, y, ws);
    cr_expect_eq(upper_regs_nonzero(), 0, "the narrow Winograd forward left values in zmm16-31");
    be->conv2d_bwd(&cs, x, w, y, gx, NULL, NULL, ws);
    cr_expect_eq(upper_regs_nonzero(), 0, "the narrow Winograd input gradient left values in zmm16-31");
    be->conv2d_bwd(&cs, x, w, y, NULL, gw, NULL, ws);
    cr_expect_eq(upper_regs_nonzero(), 0, "the narrow Winograd weight gradient left values in zmm16-31");
    sq_cpu_set_threads(t0);
    be->free(ws);
    free(x); free(w); free(y); free(gx); free(gw);
}
#endif
