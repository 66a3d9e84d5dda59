/* test_qconv.c: the integer-arithmetic forward of quantized convolutions (kernels/cpu/qconv.c)
   against the float convolution of the same fake-quantized tensors, for every quantizer kind,
   bit-widths 1..8, awkward shapes (channels not a multiple of 4, odd sizes, 1x1 to 5x5 kernels,
   padding 0..2), with output scale and bias; plus the cases it must decline. */
#include "../kernels/cpu/cpu_ops.h"
#include "sqakd/backend.h"
#include "sqakd/model.h"
#include "sqakd/quant_math.h"
#include "util_check.h"
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct qcase {
    sq_quant_kind kind;
    int wbits, abits;
    int n, c, h, w, k, r, pad;
    int bias, scaled;
    int pc; /* per-channel weight quantizers (one grid per output channel) */
} qcase;

/* runs one case; returns 1 if the integer path ran (and compared), 0 if it declined */
static int run_case(const qcase *q, uint64_t seed)
{
    const sq_backend *be = sq_backend_cpu();
    sq_conv_shape cs;
    cr_assert_eq(sq_conv_shape_init(&cs, q->n, q->c, q->h, q->w, q->k, q->r, q->r, 1, q->pad, 1), SQ_OK);
    const size_t nx = (size_t)q->n * q->c * q->h * q->w, nw = (size_t)q->k * q->c * q->r * q->r;
    const size_t ny = (size_t)q->n * q->k * cs.oh * cs.ow;
    float *x = malloc(nx * 4), *xq = malloc(nx * 4), *w = malloc(nw * 4), *wq = malloc(nw * 4);
    float *y = malloc(ny * 4), *ref = malloc(ny * 4), *wqs = malloc(nw * 4), b[64], bs[64];
    float scratch_w[SQ_QUANT_SCRATCH * 64], scratch_a[SQ_QUANT_SCRATCH], qpw[128], qpa[2], s = -0.75f;
    /* post-ReLU-like activations (non-negative, some zero) and normal weights */
    sqt_fill_normal(x, nx, 0.3f, 1.0f, seed);
    for (size_t i = 0; i < nx; i++) x[i] = x[i] > 0 ? x[i] : 0;
    sqt_fill_normal(w, nw, 0.0f, 0.2f, seed + 1);
    sqt_fill_normal(b, 64, 0.0f, 0.5f, seed + 2);
    sq_quant_cfg cw = {.kind = q->kind, .role = SQ_QROLE_WEIGHT, .bits = q->wbits, .is_signed = 1};
    sq_quant_cfg ca = {.kind = q->kind, .role = SQ_QROLE_ACT, .bits = q->abits, .is_signed = 0};
    cw.channels = q->pc ? q->k : 0;
    sq_quant_init_weight_pc(&cw, w, nw, qpw);
    sq_quant_init_act(&ca, x, nx, qpa);
    be->fakequant_fwd(&cw, nw, w, qpw, wq, scratch_w);
    be->fakequant_fwd(&ca, nx, x, qpa, xq, scratch_a);
    /* reference: float conv with |s| applied to the weight and bias (as graph.c does) */
    for (size_t i = 0; i < nw; i++) wqs[i] = q->scaled ? fabsf(s) * wq[i] : wq[i];
    for (int i = 0; i < q->k; i++) bs[i] = q->scaled ? fabsf(s) * b[i] : b[i];
    void *ws = malloc(be->conv_ws_bytes(&cs) + 64);
    be->conv2d_fwd(&cs, xq, wqs, q->bias ? bs : NULL, ref, ws);
    int ran = be->qconv2d_fwd(&cs, &ca, qpa, xq, &cw, qpw, wq, q->scaled ? &s : NULL,
                              q->bias ? bs : NULL, y, ws);
    if (ran) {
        /* the integer sum is exact; the float reference rounds each of up to c*r*r products
           and sums: |error| <~ 1e-6 * sum|x w| ~ 1e-4 at these sizes */
        size_t bad = sqt_check_close("qconv", y, ref, ny, 2e-4, 1e-4, seed);
        cr_expect_eq(bad, 0, "kind %d w%da%d c%d %dx%d k%d r%d pad%d: %zu mismatches", q->kind,
                     q->wbits, q->abits, q->c, q->h, q->w, q->k, q->r, q->pad, bad);
    }
    free(ws);
    free(x); free(xq); free(w); free(wq); free(y); free(ref); free(wqs);
    return ran;
}

Test(qconv, integer_forward_matches_float_conv_of_quantized_tensors)
{
    if (!sq_cpu_qconv_available()) cr_skip("this CPU has no AVX-512 VNNI: the integer path is off");
    const sq_quant_kind kinds[] = {SQ_QUANT_EWGS, SQ_QUANT_PACT, SQ_QUANT_LSQ, SQ_QUANT_DOREFA};
    const int shapes[][6] = {/* c, h, w, k, r, pad */
                             {16, 32, 32, 16, 3, 1}, {5, 7, 9, 3, 3, 1}, {3, 11, 5, 7, 1, 0},
                             {13, 6, 13, 5, 5, 2}, {64, 8, 8, 64, 3, 1}, {4, 1, 1, 1, 1, 0}};
    int ran = 0, cases = 0;
    uint64_t seed = 100;
    for (int kq = 0; kq < 4; kq++)
        for (int bits = 1; bits <= 7; bits += 3)
            for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
                qcase q = {kinds[kq], bits, bits, 2, shapes[sh][0], shapes[sh][1], shapes[sh][2],
                           shapes[sh][3], shapes[sh][4], shapes[sh][5], (int)(sh & 1), kq == 0, 0};
                ran += run_case(&q, seed++);
                cases++;
            }
    /* every one of these is on a supported grid: all must have run */
    cr_expect_eq(ran, cases, "the integer path ran %d of %d cases", ran, cases);
}

/* per-channel weights (issue 20): every output row has its grid (LSQ: its own step s_c, the row's
   scale in the integer kernel); rows of different scales */
Test(qconv, per_channel_weights_match_float_conv)
{
    if (!sq_cpu_qconv_available()) cr_skip("this CPU has no AVX-512 VNNI: the integer path is off");
    const sq_quant_kind kinds[] = {SQ_QUANT_EWGS, SQ_QUANT_LSQ, SQ_QUANT_DOREFA};
    const int shapes[][6] = {{16, 12, 12, 16, 3, 1}, {5, 7, 9, 3, 3, 1}, {13, 6, 13, 33, 1, 0}};
    int ran = 0, cases = 0;
    uint64_t seed = 300;
    for (int kq = 0; kq < 3; kq++)
        for (int bits = 2; bits <= 4; bits += 2)
            for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
                qcase q = {kinds[kq], bits, bits, 2, shapes[sh][0], shapes[sh][1], shapes[sh][2],
                           shapes[sh][3], shapes[sh][4], shapes[sh][5], (int)(sh & 1), kq == 0, 1};
                ran += run_case(&q, seed++);
                cases++;
            }
    cr_expect_eq(ran, cases, "the integer path ran %d of %d per-channel cases", ran, cases);
}

Test(qconv, declines_what_it_cannot_do)
{
    if (!sq_cpu_qconv_available()) cr_skip("this CPU has no AVX-512 VNNI: the integer path is off");
    /* 8-bit EWGS / DoReFa weights have codes -255..255: not signed bytes */
    qcase q8 = {SQ_QUANT_EWGS, 8, 8, 2, 8, 6, 6, 4, 3, 1, 0, 1, 0};
    cr_expect_eq(run_case(&q8, 7), 0);
    q8.kind = SQ_QUANT_DOREFA;
    cr_expect_eq(run_case(&q8, 8), 0);
    /* LSQ 8-bit weights are -128..127: fine */
    q8.kind = SQ_QUANT_LSQ;
    cr_expect_eq(run_case(&q8, 9), 1);
    /* stride 2 and signed LSQ activations are declined */
    const sq_backend *be = sq_backend_cpu();
    sq_conv_shape cs;
    cr_assert_eq(sq_conv_shape_init(&cs, 1, 4, 8, 8, 4, 3, 3, 2, 1, 1), SQ_OK);
    float x[256] = {0}, w[144] = {0}, y[64], qpa[1] = {0.1f}, qpw[1] = {0.1f};
    sq_quant_cfg cw = {.kind = SQ_QUANT_LSQ, .role = SQ_QROLE_WEIGHT, .bits = 4, .is_signed = 1};
    sq_quant_cfg ca = {.kind = SQ_QUANT_LSQ, .role = SQ_QROLE_ACT, .bits = 4, .is_signed = 0};
    void *ws = malloc(be->conv_ws_bytes(&cs) + 64);
    cr_expect_eq(be->qconv2d_fwd(&cs, &ca, qpa, x, &cw, qpw, w, NULL, NULL, y, ws), 0);
    cr_assert_eq(sq_conv_shape_init(&cs, 1, 4, 8, 8, 4, 3, 3, 1, 1, 1), SQ_OK);
    ca.is_signed = 1;
    cr_expect_eq(be->qconv2d_fwd(&cs, &ca, qpa, x, &cw, qpw, w, NULL, NULL, y, ws), 0);
    free(ws);
}

/* the whole quantized ResNet-20 through the graph, integer path against float path. In general
   the two differ by rounding, and a quantizer is discontinuous: one element that lands on the
   other side of a rounding boundary changes everything downstream (and the layer-by-layer
   quantizer initialisation after it). So the comparison uses LSQ steps that are powers of two:
   then every product and partial sum of the float convolution is exact, the two paths must
   agree bit for bit, and any slip of the integer path (codes, grids, layout, scale, the image
   schedule) shows. */
Test(qconv, resnet20_integer_and_float_paths_agree_exactly)
{
    if (!sq_cpu_qconv_available()) cr_skip("this CPU has no AVX-512 VNNI: the integer path is off");
    static sq_backend plain;
    plain = *sq_backend_cpu();
    plain.qconv2d_fwd = NULL;
    const int batch = 4;
    const size_t nx = (size_t)batch * 3 * 32 * 32;
    float *x = malloc(nx * sizeof(float)), glog[40], za[40];
    sqt_fill_normal(x, nx, 0.0f, 1.0f, 41);
    sqt_fill_normal(glog, 40, 0.0f, 0.1f, 42);
    sq_quant_opts q = {.kind = SQ_QUANT_LSQ, .wbits = 4, .abits = 4};
    sq_model *m[2];
    for (int v = 0; v < 2; v++) {
        cr_assert_eq(sq_model_create("resnet20", 3, 32, 32, 10, &m[v]), SQ_OK);
        cr_assert_eq(sq_model_set_quant(m[v], &q), SQ_OK);
        cr_assert_eq(sq_model_setup(m[v], v ? &plain : sq_backend_cpu(), batch, 1), SQ_OK);
        sq_model_init_weights(m[v], 9);
        int quantized = 0;
        for (int i = 0; i < m[v]->nnodes; i++) {
            const sq_node *n = &m[v]->nodes[i];
            if (!n->quant) continue;
            m[v]->qp[m[v]->params[n->qpa].off] = 0.125f;   /* activation step 2^-3 */
            m[v]->qp[m[v]->params[n->qpw].off] = 0.03125f; /* weight step 2^-5 */
            quantized++;
        }
        cr_assert_eq(quantized, 18);
        sq_model_set_input(m[v], x, batch);
        float *z = sq_model_forward(m[v], batch, 1);
        if (!v) memcpy(za, z, sizeof za);
        sq_model_zero_grad(m[v]);
        sq_model_backward(m[v], batch, glog);
    }
    cr_expect_eq(sqt_check_equal("logits", za, m[1]->nodes[m[1]->nnodes - 1].out, 40), 0);
    cr_expect_eq(sqt_check_equal("weight grads", m[0]->g, m[1]->g, m[0]->n_train), 0);
    cr_expect_eq(sqt_check_equal("quantizer grads", m[0]->qg, m[1]->qg, m[0]->n_quant), 0);
    double s = 0;
    for (int i = 0; i < 40; i++) s += fabs(za[i]);
    cr_expect_gt(s, 0.0);
    sq_model_free(m[0]);
    sq_model_free(m[1]);
    free(x);
}

/* rows narrower than 8 over many images: sub-blocks of 16 (4x4) and 5 (7x7) images unfolded side
   by side, the last one partial */
Test(qconv, narrow_rows_over_blocks_of_images_match_float_conv)
{
    if (!sq_cpu_qconv_available()) cr_skip("this CPU has no AVX-512 VNNI: the integer path is off");
    const qcase cases[] = {
        {SQ_QUANT_LSQ, 4, 4, 37, 16, 4, 4, 24, 3, 1, 1, 0, 0},  {SQ_QUANT_EWGS, 2, 2, 11, 9, 7, 7, 12, 3, 1, 0, 1, 0},
        {SQ_QUANT_DOREFA, 4, 4, 33, 8, 2, 2, 8, 3, 1, 1, 0, 0}, {SQ_QUANT_PACT, 3, 3, 20, 5, 5, 3, 6, 3, 1, 0, 0, 0},
    };
    for (int i = 0; i < 4; i++) cr_expect_eq(run_case(&cases[i], 1000 + (uint64_t)i), 1, "case %d declined", i);
}
