/* cudnn_emu_ops.c: the compute half of cuemu's cuDNN emulation (cudnn_emu.c has the semantics
   and the descriptors): FLOAT / HALF / BFLOAT16 element access, the three convolution cores
   (fp32 in, double accumulators out), and the executing halves of convolution forward, backward
   data, backward filter, the fused convolution + bias + activation forward and cudnnAddTensor
   (emu_*, called by their public symbols in cudnn_emu_capture.c). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cudnn_emu_int.h"

/* ---- 16-bit conversions (round to nearest even) ---- */

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        float mag = ldexpf((float)man, -24); /* zero or subnormal: exact */
        return sign ? -mag : mag;
    }
    if (exp == 31)
        bits = sign | 0x7f800000u | (man << 13);
    else
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint16_t float_to_half(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    uint16_t sign = (uint16_t)((b >> 16) & 0x8000u);
    int exp = (int)((b >> 23) & 0xffu);
    uint32_t man = b & 0x7fffffu;
    if (exp == 0xff) /* inf stays inf, NaN stays a (quiet) NaN */
        return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0u));
    int e = exp - 112; /* biased half exponent */
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) { /* half subnormal or zero */
        if (e < -10) return sign;
        uint32_t m = man | 0x800000u;
        int shift = 14 - e;
        uint32_t hm = m >> shift, rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (hm & 1u))) hm++;
        return (uint16_t)(sign | hm);
    }
    uint32_t hm = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (hm & 1u))) hm++; /* may carry into inf: correct */
    return (uint16_t)(sign | hm);
}

static float bf16_to_float(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint16_t float_to_bf16(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    if ((b & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((b >> 16) | 0x40u);
    b += 0x7fffu + ((b >> 16) & 1u);
    return (uint16_t)(b >> 16);
}

/* ---- helpers ---- */

static float load_elem(cudnnDataType_t dt, const void *p, size_t i)
{
    if (dt == CUDNN_DATA_FLOAT) return ((const float *)p)[i];
    if (dt == CUDNN_DATA_HALF) return half_to_float(((const uint16_t *)p)[i]);
    return bf16_to_float(((const uint16_t *)p)[i]);
}

static void store_elem(cudnnDataType_t dt, void *p, size_t i, float v)
{
    if (dt == CUDNN_DATA_FLOAT)
        ((float *)p)[i] = v;
    else if (dt == CUDNN_DATA_HALF)
        ((uint16_t *)p)[i] = float_to_half(v);
    else
        ((uint16_t *)p)[i] = float_to_bf16(v);
}

/* the data as fp32: the pointer itself for FLOAT, else a converted copy stored in *owned */
static const float *as_float(cudnnDataType_t dt, const void *p, size_t count, float **owned)
{
    *owned = NULL;
    if (dt == CUDNN_DATA_FLOAT) return (const float *)p;
    float *q = malloc((count ? count : 1) * sizeof *q);
    if (!q) return NULL;
    for (size_t i = 0; i < count; i++) q[i] = load_elem(dt, p, i);
    *owned = q;
    return q;
}

/* ---- convolution cores (fp32 in, double accumulators out) ---- */

/* the output columns [*lo, *hi) whose input column o * stride + off lies in [0, len) */
static void col_range(int len, int stride, int off, int out_len, int *lo, int *hi)
{
    int a = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int b = len - 1 - off >= 0 ? (len - 1 - off) / stride + 1 : 0;
    *lo = a;
    *hi = b < out_len ? b : out_len;
}

static size_t widx(const conv_geom *g, int kk, int ci, int r, int s)
{
    if (g->flip) {
        r = g->r - 1 - r;
        s = g->s - 1 - s;
    }
    return (((size_t)kk * g->cg + ci) * g->r + r) * g->s + s;
}

static void fwd_core(const conv_geom *g, const float *x, const float *w, double *acc)
{
    long total = (long)g->n * g->k;
    size_t plane_out = (size_t)g->oh * g->ow, plane_in = (size_t)g->h * g->w;
#pragma omp parallel for schedule(dynamic, 1)
    for (long t = 0; t < total; t++) {
        int b = (int)(t / g->k), kk = (int)(t % g->k), grp = kk / g->kg;
        double *out = acc + (size_t)t * plane_out;
        for (size_t i = 0; i < plane_out; i++) out[i] = 0.0;
        for (int ci = 0; ci < g->cg; ci++) {
            const float *xp = x + ((size_t)b * g->c + (size_t)grp * g->cg + ci) * plane_in;
            for (int r = 0; r < g->r; r++)
                for (int s = 0; s < g->s; s++) {
                    double wv = w[widx(g, kk, ci, r, s)];
                    int off = s * g->dw - g->pw, lo, hi;
                    col_range(g->w, g->v, off, g->ow, &lo, &hi);
                    for (int oy = 0; oy < g->oh; oy++) {
                        int iy = oy * g->u - g->ph + r * g->dh;
                        if (iy < 0 || iy >= g->h) continue;
                        const float *xr = xp + (size_t)iy * g->w;
                        double *orow = out + (size_t)oy * g->ow;
                        if (g->v == 1)
                            for (int ox = lo; ox < hi; ox++) orow[ox] += wv * xr[ox + off];
                        else
                            for (int ox = lo; ox < hi; ox++) orow[ox] += wv * xr[ox * g->v + off];
                    }
                }
        }
    }
}

static void bwd_data_core(const conv_geom *g, const float *w, const float *dy, double *acc)
{
    long total = (long)g->n * g->c;
    size_t plane_out = (size_t)g->oh * g->ow, plane_in = (size_t)g->h * g->w;
#pragma omp parallel for schedule(dynamic, 1)
    for (long t = 0; t < total; t++) {
        int b = (int)(t / g->c), ch = (int)(t % g->c), grp = ch / g->cg, ci = ch % g->cg;
        double *out = acc + (size_t)t * plane_in;
        for (size_t i = 0; i < plane_in; i++) out[i] = 0.0;
        for (int kk = grp * g->kg; kk < (grp + 1) * g->kg; kk++) {
            const float *dyp = dy + ((size_t)b * g->k + kk) * plane_out;
            for (int r = 0; r < g->r; r++)
                for (int s = 0; s < g->s; s++) {
                    double wv = w[widx(g, kk, ci, r, s)];
                    int off = s * g->dw - g->pw, lo, hi;
                    col_range(g->w, g->v, off, g->ow, &lo, &hi);
                    for (int oy = 0; oy < g->oh; oy++) {
                        int iy = oy * g->u - g->ph + r * g->dh;
                        if (iy < 0 || iy >= g->h) continue;
                        double *xr = out + (size_t)iy * g->w;
                        const float *dr = dyp + (size_t)oy * g->ow;
                        if (g->v == 1)
                            for (int ox = lo; ox < hi; ox++) xr[ox + off] += wv * dr[ox];
                        else
                            for (int ox = lo; ox < hi; ox++) xr[ox * g->v + off] += wv * dr[ox];
                    }
                }
        }
    }
}

static void bwd_filter_core(const conv_geom *g, const float *x, const float *dy, double *acc)
{
    size_t plane_out = (size_t)g->oh * g->ow, plane_in = (size_t)g->h * g->w;
#pragma omp parallel for schedule(dynamic, 1)
    for (int kk = 0; kk < g->k; kk++) {
        int grp = kk / g->kg;
        for (int ci = 0; ci < g->cg; ci++)
            for (int r = 0; r < g->r; r++)
                for (int s = 0; s < g->s; s++) {
                    int off = s * g->dw - g->pw, lo, hi;
                    col_range(g->w, g->v, off, g->ow, &lo, &hi);
                    double sum = 0.0;
                    for (int b = 0; b < g->n; b++) {
                        const float *xp =
                            x + ((size_t)b * g->c + (size_t)grp * g->cg + ci) * plane_in;
                        const float *dyp = dy + ((size_t)b * g->k + kk) * plane_out;
                        for (int oy = 0; oy < g->oh; oy++) {
                            int iy = oy * g->u - g->ph + r * g->dh;
                            if (iy < 0 || iy >= g->h) continue;
                            const float *xr = xp + (size_t)iy * g->w;
                            const float *dr = dyp + (size_t)oy * g->ow;
                            double part = 0.0;
                            for (int ox = lo; ox < hi; ox++)
                                part += (double)dr[ox] * xr[ox * g->v + off];
                            sum += part;
                        }
                    }
                    acc[widx(g, kk, ci, r, s)] = sum;
                }
    }
}

/* out = alpha * acc + beta * out (out not read when beta == 0) */
static void write_out(cudnnDataType_t dt, void *out, const double *acc, size_t count, float alpha,
                      float beta)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < count; i++) {
        float v = alpha * (float)acc[i];
        if (beta != 0.0f) v += beta * load_elem(dt, out, i);
        store_elem(dt, out, i, v);
    }
}

/* converts the two inputs, runs the core of direction dir (DIR_*), returns the accumulators
   (caller frees) or NULL */
static double *run_core(int dir, const conv_geom *g, cudnnDataType_t dt, const void *a,
                        size_t na, const void *b, size_t nb, size_t nout)
{
    float *own_a, *own_b;
    const float *fa = as_float(dt, a, na, &own_a), *fb = as_float(dt, b, nb, &own_b);
    double *acc = malloc((nout ? nout : 1) * sizeof *acc);
    if (fa && fb && acc) {
        if (dir == DIR_FWD)
            fwd_core(g, fa, fb, acc);
        else if (dir == DIR_BWD_DATA)
            bwd_data_core(g, fa, fb, acc);
        else
            bwd_filter_core(g, fa, fb, acc);
    } else {
        free(acc);
        acc = NULL;
    }
    free(own_a);
    free(own_b);
    return acc;
}

/* one device operand of a convolution call: its name in messages, pointer and element count */
typedef struct conv_arg {
    const char *name;
    const void *p;
    size_t n;
} conv_arg;

/* the common part of the three convolution calls (g checked by conv_check, so every tensor has
   type dt): device ranges, workspace, out = alpha * op(a, b) + beta * out */
static cudnnStatus_t conv_call(const char *fn, int dir, const conv_geom *g, cudnnDataType_t dt,
                               int algo, void *ws, size_t ws_bytes, conv_arg a, conv_arg b,
                               conv_arg out, const void *alpha, const void *beta)
{
    const size_t es = dt_size(dt);
    cuemu_stat(fn);
    need_dev(fn, a.name, a.p, a.n * es);
    need_dev(fn, b.name, b.p, b.n * es);
    need_dev(fn, out.name, out.p, out.n * es);
    cudnnStatus_t st = cuemu_dnn_ws_use(fn, dir, algo, g, ws, ws_bytes);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    double *acc = run_core(dir, g, dt, a.p, a.n, b.p, b.n, out.n);
    if (!acc) return CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
    write_out(dt, (void *)out.p, acc, out.n, *(const float *)alpha, *(const float *)beta);
    free(acc);
    return CUDNN_STATUS_SUCCESS;
}

/* the backend API's execution (cudnn_emu_backend.c): FP32 operands, no algorithm / workspace */
cudnnStatus_t cuemu_dnn_conv_run(const char *fn, int dir, const conv_geom *g, const void *a,
                                 size_t na, const void *b, size_t nb, void *out, size_t nout,
                                 float alpha, float beta)
{
    need_dev(fn, "operand 1", a, na * sizeof(float));
    need_dev(fn, "operand 2", b, nb * sizeof(float));
    need_dev(fn, "output", out, nout * sizeof(float));
    double *acc = run_core(dir, g, CUDNN_DATA_FLOAT, a, na, b, nb, nout);
    if (!acc) return CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
    write_out(CUDNN_DATA_FLOAT, out, acc, nout, alpha, beta);
    free(acc);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t emu_cudnnConvolutionForward(cudnnHandle_t handle, const void *alpha,
                                      const cudnnTensorDescriptor_t xDesc, const void *x,
                                      const cudnnFilterDescriptor_t wDesc, const void *w,
                                      const cudnnConvolutionDescriptor_t convDesc,
                                      cudnnConvolutionFwdAlgo_t algo, void *workSpace,
                                      size_t workSpaceSizeInBytes, const void *beta,
                                      const cudnnTensorDescriptor_t yDesc, void *y)
{
    conv_geom g;
    if (!handle || !alpha || !beta || !x || !w || !y) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = cuemu_dnn_conv_check(xDesc, wDesc, convDesc, yDesc, &g);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    return conv_call("cuDNN cudnnConvolutionForward", DIR_FWD, &g, xDesc->dt, (int)algo, workSpace,
                     workSpaceSizeInBytes, (conv_arg){"x", x, tensor_count(xDesc)},
                     (conv_arg){"w", w, filter_count(wDesc)}, (conv_arg){"y", y, tensor_count(yDesc)},
                     alpha, beta);
}

cudnnStatus_t emu_cudnnConvolutionBackwardData(cudnnHandle_t handle, const void *alpha,
                                           const cudnnFilterDescriptor_t wDesc, const void *w,
                                           const cudnnTensorDescriptor_t dyDesc, const void *dy,
                                           const cudnnConvolutionDescriptor_t convDesc,
                                           cudnnConvolutionBwdDataAlgo_t algo, void *workSpace,
                                           size_t workSpaceSizeInBytes, const void *beta,
                                           const cudnnTensorDescriptor_t dxDesc, void *dx)
{
    conv_geom g;
    if (!handle || !alpha || !beta || !w || !dy || !dx) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = cuemu_dnn_conv_check(dxDesc, wDesc, convDesc, dyDesc, &g);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    return conv_call("cuDNN cudnnConvolutionBackwardData", DIR_BWD_DATA, &g, dxDesc->dt, (int)algo,
                     workSpace, workSpaceSizeInBytes, (conv_arg){"w", w, filter_count(wDesc)},
                     (conv_arg){"dy", dy, tensor_count(dyDesc)},
                     (conv_arg){"dx", dx, tensor_count(dxDesc)}, alpha, beta);
}

cudnnStatus_t emu_cudnnConvolutionBackwardFilter(cudnnHandle_t handle, const void *alpha,
                                             const cudnnTensorDescriptor_t xDesc, const void *x,
                                             const cudnnTensorDescriptor_t dyDesc, const void *dy,
                                             const cudnnConvolutionDescriptor_t convDesc,
                                             cudnnConvolutionBwdFilterAlgo_t algo,
                                             void *workSpace, size_t workSpaceSizeInBytes,
                                             const void *beta,
                                             const cudnnFilterDescriptor_t dwDesc, void *dw)
{
    conv_geom g;
    if (!handle || !alpha || !beta || !x || !dy || !dw) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = cuemu_dnn_conv_check(xDesc, dwDesc, convDesc, dyDesc, &g);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    return conv_call("cuDNN cudnnConvolutionBackwardFilter", DIR_BWD_FILTER, &g, xDesc->dt,
                     (int)algo, workSpace, workSpaceSizeInBytes, (conv_arg){"x", x, tensor_count(xDesc)},
                     (conv_arg){"dy", dy, tensor_count(dyDesc)},
                     (conv_arg){"dw", dw, filter_count(dwDesc)}, alpha, beta);
}

static int same_tensor(const struct cudnnTensorStruct *a, const struct cudnnTensorStruct *b)
{
    return a->set && b->set && a->fmt == b->fmt && a->dt == b->dt && a->n == b->n &&
           a->c == b->c && a->h == b->h && a->w == b->w;
}

cudnnStatus_t emu_cudnnConvolutionBiasActivationForward(
    cudnnHandle_t handle, const void *alpha1, const cudnnTensorDescriptor_t xDesc, const void *x,
    const cudnnFilterDescriptor_t wDesc, const void *w,
    const cudnnConvolutionDescriptor_t convDesc, cudnnConvolutionFwdAlgo_t algo, void *workSpace,
    size_t workSpaceSizeInBytes, const void *alpha2, const cudnnTensorDescriptor_t zDesc,
    const void *z, const cudnnTensorDescriptor_t biasDesc, const void *bias,
    const cudnnActivationDescriptor_t activationDesc, const cudnnTensorDescriptor_t yDesc,
    void *y)
{
    static const char fn[] = "cuDNN cudnnConvolutionBiasActivationForward";
    conv_geom g;
    if (!handle || !alpha1 || !alpha2 || !x || !w || !z || !bias || !y || !zDesc || !biasDesc ||
        !activationDesc || !activationDesc->set)
        return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = cuemu_dnn_conv_check(xDesc, wDesc, convDesc, yDesc, &g);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    if (!same_tensor(zDesc, yDesc)) return CUDNN_STATUS_BAD_PARAM;
    if (!biasDesc->set || biasDesc->n != 1 || biasDesc->c != yDesc->c || biasDesc->h != 1 ||
        biasDesc->w != 1)
        return CUDNN_STATUS_BAD_PARAM;
    if (biasDesc->dt != yDesc->dt) return CUDNN_STATUS_NOT_SUPPORTED;
    cudnnActivationMode_t mode = activationDesc->mode;
    if (mode != CUDNN_ACTIVATION_RELU && mode != CUDNN_ACTIVATION_IDENTITY)
        return CUDNN_STATUS_NOT_SUPPORTED;
    if (mode == CUDNN_ACTIVATION_IDENTITY && algo != CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM)
        return CUDNN_STATUS_NOT_SUPPORTED;
    cudnnDataType_t dt = yDesc->dt;
    size_t es = dt_size(dt), nx = tensor_count(xDesc), nw = filter_count(wDesc),
           ny = tensor_count(yDesc);
    need_dev(fn, "x", x, nx * es);
    need_dev(fn, "w", w, nw * es);
    need_dev(fn, "z", z, ny * es);
    need_dev(fn, "bias", bias, (size_t)yDesc->c * es);
    need_dev(fn, "y", y, ny * es);
    st = cuemu_dnn_ws_use(fn, DIR_FWD, (int)algo, &g, workSpace, workSpaceSizeInBytes);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    double *acc = run_core(DIR_FWD, &g, dt, x, nx, w, nw, ny);
    if (!acc) return CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
    float a1 = *(const float *)alpha1, a2 = *(const float *)alpha2;
    size_t plane = (size_t)g.oh * g.ow;
    int relu = mode == CUDNN_ACTIVATION_RELU, keep_nan = activationDesc->nan_opt == CUDNN_PROPAGATE_NAN;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < ny; i++) {
        float v = a1 * (float)acc[i];
        if (a2 != 0.0f) v += a2 * load_elem(dt, z, i);
        v += load_elem(dt, bias, (i / plane) % (size_t)g.k);
        if (relu && !(v > 0.0f) && !(keep_nan && isnan(v))) v = 0.0f;
        store_elem(dt, y, i, v);
    }
    free(acc);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t emu_cudnnAddTensor(cudnnHandle_t handle, const void *alpha,
                             const cudnnTensorDescriptor_t aDesc, const void *A, const void *beta,
                             const cudnnTensorDescriptor_t cDesc, void *C)
{
    static const char fn[] = "cuDNN cudnnAddTensor";
    if (!handle || !alpha || !beta || !aDesc || !cDesc || !A || !C || !aDesc->set || !cDesc->set)
        return CUDNN_STATUS_BAD_PARAM;
    const int ad[4] = {aDesc->n, aDesc->c, aDesc->h, aDesc->w};
    const int cdim[4] = {cDesc->n, cDesc->c, cDesc->h, cDesc->w};
    for (int i = 0; i < 4; i++)
        if (ad[i] != cdim[i] && ad[i] != 1) return CUDNN_STATUS_BAD_PARAM;
    if (aDesc->fmt != CUDNN_TENSOR_NCHW || cDesc->fmt != CUDNN_TENSOR_NCHW ||
        aDesc->dt != cDesc->dt || !dt_supported(cDesc->dt))
        return CUDNN_STATUS_NOT_SUPPORTED;
    cudnnDataType_t dt = cDesc->dt;
    size_t es = dt_size(dt), na = tensor_count(aDesc), nc = tensor_count(cDesc);
    cuemu_stat(fn);
    need_dev(fn, "A", A, na * es);
    need_dev(fn, "C", C, nc * es);
    float al = *(const float *)alpha, be = *(const float *)beta;
    /* strides of A over C's index space: 0 along a broadcast dimension */
    size_t sw = ad[3] == 1 ? 0 : 1, sh = ad[2] == 1 ? 0 : (size_t)ad[3];
    size_t sc = ad[1] == 1 ? 0 : (size_t)ad[2] * ad[3], sn = ad[0] == 1 ? 0 : (size_t)ad[1] * ad[2] * ad[3];
    long planes = (long)cdim[0] * cdim[1];
#pragma omp parallel for schedule(static)
    for (long t = 0; t < planes; t++) {
        size_t nn = (size_t)(t / cdim[1]), cc = (size_t)(t % cdim[1]);
        size_t cbase = (size_t)t * cdim[2] * cdim[3];
        for (int hh = 0; hh < cdim[2]; hh++)
            for (int ww = 0; ww < cdim[3]; ww++) {
                size_t ci = cbase + (size_t)hh * cdim[3] + ww;
                size_t ai = nn * sn + cc * sc + (size_t)hh * sh + (size_t)ww * sw;
                float v = al * load_elem(dt, A, ai);
                if (be != 0.0f) v += be * load_elem(dt, C, ci);
                store_elem(dt, C, ci, v);
            }
    }
    return CUDNN_STATUS_SUCCESS;
}
