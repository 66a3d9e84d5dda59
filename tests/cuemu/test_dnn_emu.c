/* test_dnn_emu.c: unit tests (Criterion suite "cuemu_dnn") of cuemu's cuDNN emulation: the
   convolution numerics. Convolutions are compared with a naive reference written independently
   (test_dnn_util.c: one 7-deep loop giving y, dx and dw), 16-bit results with the fp32 ones, the
   rounding of fp16 / bf16 outputs with hand-computed bit patterns. test_dnn_api.c holds the
   heuristics, cudnnFind, argument checks, cudnnAddTensor and cublasSgemm. Standalone: the device
   registry the emulation checks against is a table in test_dnn_util.c, so the runtime emulation
   is not needed (`make CUEMU=1 build/cuemu/cuemu_dnn_tests`). */
#include "test_dnn_util.h"

/* all three directions in fp32 against the reference, with beta = 0 (outputs full of NaN) and
   then beta = 1 accumulation */
static void check_fp32(cfg c)
{
    conv_set s = make_set(&c, CUDNN_DATA_FLOAT);
    algos a = pick_algos(&s);
    float *x = dfill(s.nx), *w = dfill(s.nw), *dy = dfill(s.ny);
    float *y = dnan(s.ny), *dx = dnan(s.nx), *dw = dnan(s.nw);
    void *ws = dalloc(a.ws);
    double *ry = malloc(s.ny * sizeof *ry), *rdx = malloc(s.nx * sizeof *rdx),
           *rdw = malloc(s.nw * sizeof *rdw);
    cr_assert(ry && rdx && rdw);
    ref_conv(&c, s.oh, s.ow, x, w, dy, ry, rdx, rdw);
    const float one = 1.0f, zero = 0.0f, half = 0.5f;

    cr_assert_eq(cudnnConvolutionForward(s.h, &one, s.xd, x, s.wd, w, s.cd, a.fwd, ws, a.ws,
                                         &zero, s.yd, y),
                 CUDNN_STATUS_SUCCESS);
    expect_close("y", y, ry, s.ny, 1e-5);
    cr_assert_eq(cudnnConvolutionBackwardData(s.h, &one, s.wd, w, s.yd, dy, s.cd, a.bwd_data, ws,
                                              a.ws, &zero, s.xd, dx),
                 CUDNN_STATUS_SUCCESS);
    expect_close("dx", dx, rdx, s.nx, 1e-5);
    cr_assert_eq(cudnnConvolutionBackwardFilter(s.h, &one, s.xd, x, s.yd, dy, s.cd, a.bwd_filter,
                                                ws, a.ws, &zero, s.wd, dw),
                 CUDNN_STATUS_SUCCESS);
    expect_close("dw", dw, rdw, s.nw, 1e-5);

    /* adjoint identity <conv(x, w), dy> = <x, dx> = <w, dw> */
    double d1 = dot(y, dy, s.ny), d2 = dot(x, dx, s.nx), d3 = dot(w, dw, s.nw);
    cr_assert(fabs(d1 - d2) <= 1e-4 * (1.0 + fabs(d1)), "<y,dy> %g vs <x,dx> %g", d1, d2);
    cr_assert(fabs(d1 - d3) <= 1e-4 * (1.0 + fabs(d1)), "<y,dy> %g vs <w,dw> %g", d1, d3);

    /* beta = 1: out = 0.5 * op + previous */
    for (size_t i = 0; i < s.nx; i++) rdx[i] = 0.5 * rdx[i] + dx[i];
    for (size_t i = 0; i < s.nw; i++) rdw[i] = 0.5 * rdw[i] + dw[i];
    for (size_t i = 0; i < s.ny; i++) ry[i] = 0.5 * ry[i] + y[i];
    cr_assert_eq(cudnnConvolutionForward(s.h, &half, s.xd, x, s.wd, w, s.cd, a.fwd, ws, a.ws,
                                         &one, s.yd, y),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnConvolutionBackwardData(s.h, &half, s.wd, w, s.yd, dy, s.cd, a.bwd_data, ws,
                                              a.ws, &one, s.xd, dx),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnConvolutionBackwardFilter(s.h, &half, s.xd, x, s.yd, dy, s.cd,
                                                a.bwd_filter, ws, a.ws, &one, s.wd, dw),
                 CUDNN_STATUS_SUCCESS);
    expect_close("y (beta 1)", y, ry, s.ny, 1e-5);
    expect_close("dx (beta 1)", dx, rdx, s.nx, 1e-5);
    expect_close("dw (beta 1)", dw, rdw, s.nw, 1e-5);

    free(ry);
    free(rdx);
    free(rdw);
    dfree(x);
    dfree(w);
    dfree(dy);
    dfree(y);
    dfree(dx);
    dfree(dw);
    dfree(ws);
    free_set(&s);
}

/*                                n  c  h  w  k  r  s  st pad g dil mode */
Test(cuemu_dnn, conv_fp32_dense)
{
    check_fp32((cfg){2, 3, 7, 9, 4, 3, 3, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION});
    check_fp32((cfg){2, 5, 7, 7, 8, 1, 1, 2, 0, 1, 1, CUDNN_CROSS_CORRELATION});
    check_fp32((cfg){1, 3, 9, 8, 2, 3, 3, 2, 1, 1, 1, CUDNN_CROSS_CORRELATION});
}

Test(cuemu_dnn, conv_fp32_groups)
{
    check_fp32((cfg){2, 4, 9, 7, 6, 3, 3, 2, 0, 2, 1, CUDNN_CROSS_CORRELATION});
    check_fp32((cfg){3, 6, 5, 6, 6, 3, 3, 1, 1, 2, 1, CUDNN_CROSS_CORRELATION});
}

Test(cuemu_dnn, conv_fp32_depthwise)
{
    check_fp32((cfg){2, 6, 8, 5, 6, 3, 3, 2, 1, 6, 1, CUDNN_CROSS_CORRELATION});
    check_fp32((cfg){1, 4, 7, 7, 8, 3, 3, 1, 1, 4, 1, CUDNN_CROSS_CORRELATION});
}

Test(cuemu_dnn, conv_fp32_dilation_and_true_convolution)
{
    check_fp32((cfg){2, 4, 7, 7, 4, 3, 2, 1, 1, 1, 2, CUDNN_CROSS_CORRELATION});
    check_fp32((cfg){2, 3, 6, 7, 4, 3, 2, 2, 1, 1, 1, CUDNN_CONVOLUTION});
}

/* ---- fp16 / bf16 ---- */

/* forward in 16 bits equals the fp32 forward rounded to the 16-bit type (inputs exact in both) */
static void check_16(cudnnDataType_t dt, cfg c)
{
    conv_set s32 = make_set(&c, CUDNN_DATA_FLOAT), s16 = make_set(&c, dt);
    algos a = pick_algos(&s16);
    float *x = dfill(s32.nx), *w = dfill(s32.nw), *y = dnan(s32.ny);
    uint16_t *x16 = dalloc(s32.nx * 2), *w16 = dalloc(s32.nw * 2), *y16 = dalloc(s32.ny * 2);
    for (size_t i = 0; i < s32.nx; i++)
        x16[i] = dt == CUDNN_DATA_HALF ? to_half_exact(x[i]) : to_bf16_exact(x[i]);
    for (size_t i = 0; i < s32.nw; i++)
        w16[i] = dt == CUDNN_DATA_HALF ? to_half_exact(w[i]) : to_bf16_exact(w[i]);
    for (size_t i = 0; i < s32.nx; i++)
        cr_assert_eq(dt == CUDNN_DATA_HALF ? from_half(x16[i]) : from_bf16(x16[i]), x[i]);
    memset(y16, 0xff, s32.ny * 2); /* NaN in both types */
    void *ws = dalloc(a.ws);
    const float one = 1.0f, zero = 0.0f;
    cr_assert_eq(cudnnConvolutionForward(s32.h, &one, s32.xd, x, s32.wd, w, s32.cd, a.fwd, ws,
                                         a.ws, &zero, s32.yd, y),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnConvolutionForward(s16.h, &one, s16.xd, x16, s16.wd, w16, s16.cd, a.fwd, ws,
                                         a.ws, &zero, s16.yd, y16),
                 CUDNN_STATUS_SUCCESS);
    /* round to nearest: at most half an ulp, 2^-11 (fp16) or 2^-8 (bf16) relative, plus the
       fp16 subnormal spacing 2^-24 near zero */
    double rel = dt == CUDNN_DATA_HALF ? ldexp(1.0, -11) : ldexp(1.0, -8);
    for (size_t i = 0; i < s32.ny; i++) {
        double got = dt == CUDNN_DATA_HALF ? from_half(y16[i]) : from_bf16(y16[i]);
        cr_assert(fabs(got - y[i]) <= rel * fabs(y[i]) + ldexp(1.0, -24) + 1e-7,
                  "y16[%zu] = %.9g, fp32 %.9g", i, got, y[i]);
    }
    dfree(x);
    dfree(w);
    dfree(y);
    dfree(x16);
    dfree(w16);
    dfree(y16);
    dfree(ws);
    free_set(&s32);
    free_set(&s16);
}

Test(cuemu_dnn, conv_fp16_bf16_forward)
{
    check_16(CUDNN_DATA_HALF, (cfg){2, 4, 7, 9, 6, 3, 3, 1, 1, 2, 1, CUDNN_CROSS_CORRELATION});
    check_16(CUDNN_DATA_HALF, (cfg){2, 6, 8, 5, 6, 3, 3, 2, 1, 6, 1, CUDNN_CROSS_CORRELATION});
    check_16(CUDNN_DATA_BFLOAT16, (cfg){2, 4, 7, 9, 6, 3, 3, 1, 1, 2, 1, CUDNN_CROSS_CORRELATION});
    check_16(CUDNN_DATA_BFLOAT16, (cfg){1, 3, 9, 8, 4, 3, 3, 2, 0, 1, 1, CUDNN_CROSS_CORRELATION});
}

/* a 1x1 convolution with one channel scales every element by w: the rounding of the output */
static void scale16(cudnnDataType_t dt, uint16_t wbits, const uint16_t *in, uint16_t *out, int count)
{
    cfg c = {1, 1, 1, count, 1, 1, 1, 1, 0, 1, 1, CUDNN_CROSS_CORRELATION};
    conv_set s = make_set(&c, dt);
    algos a = pick_algos(&s);
    uint16_t *x = dalloc((size_t)count * 2), *w = dalloc(2), *y = dalloc((size_t)count * 2);
    void *ws = dalloc(a.ws);
    memcpy(x, in, (size_t)count * 2);
    *w = wbits;
    const float one = 1.0f, zero = 0.0f;
    cr_assert_eq(cudnnConvolutionForward(s.h, &one, s.xd, x, s.wd, w, s.cd, a.fwd, ws, a.ws,
                                         &zero, s.yd, y),
                 CUDNN_STATUS_SUCCESS);
    memcpy(out, y, (size_t)count * 2);
    dfree(x);
    dfree(w);
    dfree(y);
    dfree(ws);
    free_set(&s);
}

Test(cuemu_dnn, fp16_rounding_special_values)
{
    /* x * 1: exact round trip of subnormals, max, negatives, inf; NaN stays NaN (-0 becomes +0:
       the accumulation starts from +0, as on a GPU) */
    const uint16_t in[] = {0x0001, 0x03ff, 0x0400, 0x7bff, 0x8001, 0x7c00, 0xfc00, 0x3c01, 0x7e00};
    uint16_t out[9];
    scale16(CUDNN_DATA_HALF, 0x3c00, in, out, 9);
    for (int i = 0; i < 8; i++) cr_assert_eq(out[i], in[i], "x*1: %04x -> %04x", in[i], out[i]);
    cr_assert_eq(out[8] & 0x7c00, 0x7c00);
    cr_assert_neq(out[8] & 0x03ff, 0);
    /* x * 0.5: 2^-24 / 2 ties to 0, 3 * 2^-24 / 2 ties to 2 * 2^-24 (even), 5 * 2^-24 / 2 to
       2 * 2^-24 (even), 0x0400 / 2 = 0x0200 exactly; 1 + 2^-10 halved is exact */
    const uint16_t in2[] = {0x0001, 0x0003, 0x0005, 0x0400, 0x3c01, 0x8003};
    const uint16_t want2[] = {0x0000, 0x0002, 0x0002, 0x0200, 0x3801, 0x8002};
    uint16_t out2[6];
    scale16(CUDNN_DATA_HALF, 0x3800, in2, out2, 6);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(out2[i], want2[i], "x/2: %04x -> %04x, want %04x", in2[i], out2[i], want2[i]);
    /* x * 2: 65504 * 2 overflows to inf; 1 + 2^-10 times 1.5 = 1.5 + 1.5 * 2^-10 ties to even */
    const uint16_t in3[] = {0x7bff, 0xfbff};
    uint16_t out3[2];
    scale16(CUDNN_DATA_HALF, 0x4000, in3, out3, 2);
    cr_assert_eq(out3[0], 0x7c00);
    cr_assert_eq(out3[1], 0xfc00);
    const uint16_t in4[] = {0x3c01, 0x3c03};
    uint16_t out4[2];
    scale16(CUDNN_DATA_HALF, 0x3e00, in4, out4, 2);
    /* 1.5 * (1 + 2^-10) = 1.5 + 1.5 ulp -> 0x3e02 (even); 1.5 * (1 + 3 * 2^-10) = 1.5 + 4.5 ulp
       -> 0x3e04 (even) */
    cr_assert_eq(out4[0], 0x3e02, "%04x", out4[0]);
    cr_assert_eq(out4[1], 0x3e04, "%04x", out4[1]);
}

Test(cuemu_dnn, bf16_rounding)
{
    /* 1.5 * (1 + 2^-7) = 1.5 + 1.5 ulp -> 0x3fc2 (even); 1.5 * (1 + 3 * 2^-7) -> 1.5 + 4.5 ulp
       -> 0x3fc4; max finite * 2 -> inf */
    const uint16_t in[] = {0x3f81, 0x3f83, 0x7f7f};
    uint16_t out[3];
    scale16(CUDNN_DATA_BFLOAT16, 0x3fc0, in, out, 3);
    cr_assert_eq(out[0], 0x3fc2, "%04x", out[0]);
    cr_assert_eq(out[1], 0x3fc4, "%04x", out[1]);
    const uint16_t in2[] = {0x7f7f};
    uint16_t out2[1];
    scale16(CUDNN_DATA_BFLOAT16, 0x4000, in2, out2, 1);
    cr_assert_eq(out2[0], 0x7f80, "%04x", out2[0]);
}

/* ---- fused bias + activation ---- */

Test(cuemu_dnn, fused_bias_relu)
{
    cfg c = {2, 4, 7, 7, 6, 3, 3, 1, 1, 2, 1, CUDNN_CROSS_CORRELATION};
    conv_set s = make_set(&c, CUDNN_DATA_FLOAT);
    algos a = pick_algos(&s);
    cudnnActivationDescriptor_t relu, ident, clip;
    cr_assert_eq(cudnnCreateActivationDescriptor(&relu), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateActivationDescriptor(&ident), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnCreateActivationDescriptor(&clip), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetActivationDescriptor(relu, CUDNN_ACTIVATION_RELU,
                                              CUDNN_NOT_PROPAGATE_NAN, 0.0),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetActivationDescriptor(ident, CUDNN_ACTIVATION_IDENTITY,
                                              CUDNN_NOT_PROPAGATE_NAN, 0.0),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetActivationDescriptor(clip, CUDNN_ACTIVATION_CLIPPED_RELU,
                                              CUDNN_NOT_PROPAGATE_NAN, 6.0),
                 CUDNN_STATUS_SUCCESS);
    float *x = dfill(s.nx), *w = dfill(s.nw), *dy = dfill(s.ny), *b = dfill((size_t)c.k);
    float *y = dnan(s.ny), *z = dfill(s.ny);
    void *ws = dalloc(a.ws);
    double *ry = malloc(s.ny * sizeof *ry), *rdx = malloc(s.nx * sizeof *rdx),
           *rdw = malloc(s.nw * sizeof *rdw), *want = malloc(s.ny * sizeof *want);
    cr_assert(ry && rdx && rdw && want);
    ref_conv(&c, s.oh, s.ow, x, w, dy, ry, rdx, rdw);
    size_t plane = (size_t)s.oh * s.ow;
    const float one = 1.0f, zero = 0.0f, two = 2.0f, half = 0.5f;

    /* alpha2 = 0 and z = y full of NaN: z not read */
    for (size_t i = 0; i < s.ny; i++) {
        double v = ry[i] + b[(i / plane) % (size_t)c.k];
        want[i] = v > 0 ? v : 0;
    }
    cr_assert_eq(cudnnConvolutionBiasActivationForward(s.h, &one, s.xd, x, s.wd, w, s.cd, a.fwd,
                                                       ws, a.ws, &zero, s.yd, y, s.bd, b, relu,
                                                       s.yd, y),
                 CUDNN_STATUS_SUCCESS);
    expect_close("relu(conv + b)", y, want, s.ny, 1e-5);
    int negatives = 0;
    for (size_t i = 0; i < s.ny; i++) negatives += want[i] == 0;
    cr_assert_gt(negatives, 0, "the case should exercise the ReLU");

    /* alpha1 = 2, alpha2 = 0.5 with a separate z */
    for (size_t i = 0; i < s.ny; i++) {
        double v = 2.0 * ry[i] + 0.5 * z[i] + b[(i / plane) % (size_t)c.k];
        want[i] = v > 0 ? v : 0;
    }
    cr_assert_eq(cudnnConvolutionBiasActivationForward(s.h, &two, s.xd, x, s.wd, w, s.cd, a.fwd,
                                                       ws, a.ws, &half, s.yd, z, s.bd, b, relu,
                                                       s.yd, y),
                 CUDNN_STATUS_SUCCESS);
    expect_close("relu(2 conv + z/2 + b)", y, want, s.ny, 1e-5);

    /* IDENTITY only with IMPLICIT_PRECOMP_GEMM; other activations refused */
    cr_assert_eq(cudnnConvolutionBiasActivationForward(s.h, &one, s.xd, x, s.wd, w, s.cd,
                                                       CUDNN_CONVOLUTION_FWD_ALGO_GEMM, ws, a.ws,
                                                       &zero, s.yd, y, s.bd, b, ident, s.yd, y),
                 CUDNN_STATUS_NOT_SUPPORTED);
    cr_assert_eq(cudnnConvolutionBiasActivationForward(s.h, &one, s.xd, x, s.wd, w, s.cd, a.fwd,
                                                       ws, a.ws, &zero, s.yd, y, s.bd, b, clip,
                                                       s.yd, y),
                 CUDNN_STATUS_NOT_SUPPORTED);
    cr_assert_eq(a.fwd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM);
    for (size_t i = 0; i < s.ny; i++) want[i] = ry[i] + b[(i / plane) % (size_t)c.k];
    cr_assert_eq(cudnnConvolutionBiasActivationForward(s.h, &one, s.xd, x, s.wd, w, s.cd, a.fwd,
                                                       ws, a.ws, &zero, s.yd, y, s.bd, b, ident,
                                                       s.yd, y),
                 CUDNN_STATUS_SUCCESS);
    expect_close("conv + b", y, want, s.ny, 1e-5);

    /* a bias of the wrong shape */
    cudnnTensorDescriptor_t bad;
    cr_assert_eq(cudnnCreateTensorDescriptor(&bad), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetTensor4dDescriptor(bad, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, c.k, 1, 2),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnConvolutionBiasActivationForward(s.h, &one, s.xd, x, s.wd, w, s.cd, a.fwd,
                                                       ws, a.ws, &zero, s.yd, y, bad, b, relu,
                                                       s.yd, y),
                 CUDNN_STATUS_BAD_PARAM);
    cudnnDestroyTensorDescriptor(bad);
    cudnnDestroyActivationDescriptor(relu);
    cudnnDestroyActivationDescriptor(ident);
    cudnnDestroyActivationDescriptor(clip);
    free(ry);
    free(rdx);
    free(rdw);
    free(want);
    free_set(&s);
}

Test(cuemu_dnn, fused_bias_relu_fp16)
{
    cfg c = {1, 4, 6, 6, 4, 3, 3, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION};
    conv_set s = make_set(&c, CUDNN_DATA_HALF);
    algos a = pick_algos(&s);
    cudnnActivationDescriptor_t relu;
    cr_assert_eq(cudnnCreateActivationDescriptor(&relu), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetActivationDescriptor(relu, CUDNN_ACTIVATION_RELU,
                                              CUDNN_NOT_PROPAGATE_NAN, 0.0),
                 CUDNN_STATUS_SUCCESS);
    float *x = dfill(s.nx), *w = dfill(s.nw), *dy = dfill(s.ny), *b = dfill((size_t)c.k);
    uint16_t *x16 = dalloc(s.nx * 2), *w16 = dalloc(s.nw * 2), *b16 = dalloc((size_t)c.k * 2),
             *y16 = dalloc(s.ny * 2);
    for (size_t i = 0; i < s.nx; i++) x16[i] = to_half_exact(x[i]);
    for (size_t i = 0; i < s.nw; i++) w16[i] = to_half_exact(w[i]);
    for (int i = 0; i < c.k; i++) b16[i] = to_half_exact(b[i]);
    memset(y16, 0xff, s.ny * 2);
    void *ws = dalloc(a.ws);
    double *ry = malloc(s.ny * sizeof *ry), *rdx = malloc(s.nx * sizeof *rdx),
           *rdw = malloc(s.nw * sizeof *rdw);
    cr_assert(ry && rdx && rdw);
    ref_conv(&c, s.oh, s.ow, x, w, dy, ry, rdx, rdw);
    const float one = 1.0f, zero = 0.0f;
    cr_assert_eq(cudnnConvolutionBiasActivationForward(s.h, &one, s.xd, x16, s.wd, w16, s.cd,
                                                       a.fwd, ws, a.ws, &zero, s.yd, y16, s.bd,
                                                       b16, relu, s.yd, y16),
                 CUDNN_STATUS_SUCCESS);
    size_t plane = (size_t)s.oh * s.ow;
    for (size_t i = 0; i < s.ny; i++) {
        double v = ry[i] + b[(i / plane) % (size_t)c.k];
        v = v > 0 ? v : 0;
        cr_assert(fabs(from_half(y16[i]) - v) <= ldexp(1.0, -11) * v + ldexp(1.0, -24),
                  "y16[%zu] = %g, want %g", i, from_half(y16[i]), v);
    }
    /* an fp32 bias with fp16 data is refused */
    cudnnTensorDescriptor_t b32d;
    cr_assert_eq(cudnnCreateTensorDescriptor(&b32d), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnSetTensor4dDescriptor(b32d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, c.k, 1, 1),
                 CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudnnConvolutionBiasActivationForward(s.h, &one, s.xd, x16, s.wd, w16, s.cd,
                                                       a.fwd, ws, a.ws, &zero, s.yd, y16, b32d, b,
                                                       relu, s.yd, y16),
                 CUDNN_STATUS_NOT_SUPPORTED);
    cudnnDestroyTensorDescriptor(b32d);
    cudnnDestroyActivationDescriptor(relu);
    free(ry);
    free(rdx);
    free(rdw);
    free_set(&s);
}
