/* cudnn_emu.c: the part of cuDNN 9's legacy API that the CUDA backend uses, emulated on the CPU
   for cuemu (tools/cuemu/README.md): handles, 4-d tensor / filter / convolution / activation
   descriptors, convolution forward, backward data, backward filter, the fused convolution + bias
   + activation forward and cudnnAddTensor. The algorithm heuristics, cudnnFind and the workspace
   queries are in cudnn_emu_algo.c; what both files share is in cudnn_emu_int.h.

   Device memory is host memory, so every device pointer a compute call receives is checked with
   cuemu_dev_range_ok against the bytes its descriptor implies (a failure is fatal: on a GPU it
   would fault or corrupt memory). Calls are synchronous; the stream is stored and ignored.

   Semantics kept from cuDNN: NCHW packed tensors of FLOAT, HALF or BFLOAT16 (x, w and y of one
   type; compute type FLOAT, or HALF for HALF data), cross-correlation or true convolution, pad,
   stride, dilation, groups; out = alpha * op + beta * out where beta == 0 means out is not read
   (it may hold NaN); fp32 accumulation or better (here double), rounding to the output type to
   nearest even. Every algorithm gives the same result here; what differs between algorithms is
   the workspace each needs (nonzero, shape dependent), which a compute call checks and then
   overwrites with 0xFF bytes so that a caller relying on workspace contents is caught. The v7
   heuristics list a non-deterministic algorithm first, then deterministic ones, then one that is
   NOT_SUPPORTED (the compute calls refuse it as real cuDNN refuses an unsupported algorithm).

   cudnnConvolutionBiasActivationForward computes y = act(alpha1 * conv(x, w) + alpha2 * z + bias)
   with bias 1xKx1x1 of y's type and z shaped and typed as y (z may alias y, as cuDNN allows); z is
   read only when alpha2 != 0 (the same rule as beta elsewhere; its range is checked regardless).
   Only RELU and IDENTITY activations are accepted, IDENTITY only with
   CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, as documented for real cuDNN; anything else is
   CUDNN_STATUS_NOT_SUPPORTED. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cudnn_emu_int.h"

/* ---- status strings ---- */

const char *cudnnGetErrorString(cudnnStatus_t status)
{
    switch ((int)status) {
#define SQ_CASE(s) \
    case s: return #s;
        SQ_CASE(CUDNN_STATUS_SUCCESS)
        SQ_CASE(CUDNN_STATUS_NOT_INITIALIZED)
        SQ_CASE(CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH)
        SQ_CASE(CUDNN_STATUS_SERIALIZATION_VERSION_MISMATCH)
        SQ_CASE(CUDNN_STATUS_DEPRECATED)
        SQ_CASE(CUDNN_STATUS_LICENSE_ERROR)
        SQ_CASE(CUDNN_STATUS_RUNTIME_IN_PROGRESS)
        SQ_CASE(CUDNN_STATUS_RUNTIME_FP_OVERFLOW)
        SQ_CASE(CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED)
        SQ_CASE(CUDNN_STATUS_BAD_PARAM)
        SQ_CASE(CUDNN_STATUS_INVALID_VALUE)
        SQ_CASE(CUDNN_STATUS_BAD_PARAM_NULL_POINTER)
        SQ_CASE(CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER)
        SQ_CASE(CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED)
        SQ_CASE(CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND)
        SQ_CASE(CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT)
        SQ_CASE(CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH)
        SQ_CASE(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH)
        SQ_CASE(CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES)
        SQ_CASE(CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE)
        SQ_CASE(CUDNN_STATUS_BAD_PARAM_CUDA_GRAPH_MISMATCH)
        SQ_CASE(CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE)
        SQ_CASE(CUDNN_STATUS_NOT_SUPPORTED)
        SQ_CASE(CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN)
        SQ_CASE(CUDNN_STATUS_NOT_SUPPORTED_SHAPE)
        SQ_CASE(CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE)
        SQ_CASE(CUDNN_STATUS_NOT_SUPPORTED_LAYOUT)
        SQ_CASE(CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER)
        SQ_CASE(CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART)
        SQ_CASE(CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH)
        SQ_CASE(CUDNN_STATUS_NOT_SUPPORTED_RUNTIME_PREREQUISITE_MISSING)
        SQ_CASE(CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE)
        SQ_CASE(CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT)
        SQ_CASE(CUDNN_STATUS_NOT_SUPPORTED_PADDING)
        SQ_CASE(CUDNN_STATUS_NOT_SUPPORTED_BAD_LAUNCH_PARAM)
        SQ_CASE(CUDNN_STATUS_NOT_SUPPORTED_CUDA_GRAPH_NATIVE_API)
        SQ_CASE(CUDNN_STATUS_NOT_SUPPORTED_INVALID_DYNAMIC_SHAPE)
        SQ_CASE(CUDNN_STATUS_INTERNAL_ERROR)
        SQ_CASE(CUDNN_STATUS_INTERNAL_ERROR_COMPILATION_FAILED)
        SQ_CASE(CUDNN_STATUS_INTERNAL_ERROR_UNEXPECTED_VALUE)
        SQ_CASE(CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED)
        SQ_CASE(CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED)
        SQ_CASE(CUDNN_STATUS_INTERNAL_ERROR_BAD_LAUNCH_PARAM)
        SQ_CASE(CUDNN_STATUS_INTERNAL_ERROR_TEXTURE_CREATION_FAILED)
        SQ_CASE(CUDNN_STATUS_EXECUTION_FAILED)
        SQ_CASE(CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER)
        SQ_CASE(CUDNN_STATUS_EXECUTION_FAILED_CUBLAS)
        SQ_CASE(CUDNN_STATUS_EXECUTION_FAILED_CUDART)
        SQ_CASE(CUDNN_STATUS_EXECUTION_FAILED_CURAND)
#undef SQ_CASE
    default: return "CUDNN_UNKNOWN_STATUS";
    }
}

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

static int dt_supported(cudnnDataType_t dt) { return dt_size(dt) != 0; }

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

/* ---- handle ---- */

cudnnStatus_t cudnnCreate(cudnnHandle_t *handle)
{
    if (!handle) return CUDNN_STATUS_BAD_PARAM;
    struct cudnnContext *h = calloc(1, sizeof *h);
    if (!h) return CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
    *handle = h;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroy(cudnnHandle_t handle)
{
    if (!handle) return CUDNN_STATUS_BAD_PARAM;
    free(handle);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId)
{
    if (!handle) return CUDNN_STATUS_BAD_PARAM;
    handle->stream = streamId;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetStream(cudnnHandle_t handle, cudaStream_t *streamId)
{
    if (!handle || !streamId) return CUDNN_STATUS_BAD_PARAM;
    *streamId = handle->stream;
    return CUDNN_STATUS_SUCCESS;
}

/* ---- descriptors ---- */

#define SQ_CREATE(fn, type)                                        \
    cudnnStatus_t fn(type *d)                                             \
    {                                                                     \
        if (!d) return CUDNN_STATUS_BAD_PARAM;                            \
        *d = calloc(1, sizeof **d);                                       \
        return *d ? CUDNN_STATUS_SUCCESS                                  \
                  : CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;   \
    }
#define SQ_DESTROY(fn, type)     \
    cudnnStatus_t fn(type d)     \
    {                            \
        free(d);                 \
        return CUDNN_STATUS_SUCCESS; \
    }

SQ_CREATE(cudnnCreateTensorDescriptor, cudnnTensorDescriptor_t)
SQ_CREATE(cudnnCreateFilterDescriptor, cudnnFilterDescriptor_t)
SQ_CREATE(cudnnCreateActivationDescriptor, cudnnActivationDescriptor_t)
SQ_DESTROY(cudnnDestroyTensorDescriptor, cudnnTensorDescriptor_t)
SQ_DESTROY(cudnnDestroyFilterDescriptor, cudnnFilterDescriptor_t)
SQ_DESTROY(cudnnDestroyActivationDescriptor, cudnnActivationDescriptor_t)
SQ_DESTROY(cudnnDestroyConvolutionDescriptor, cudnnConvolutionDescriptor_t)
#undef SQ_CREATE
#undef SQ_DESTROY

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *convDesc)
{
    if (!convDesc) return CUDNN_STATUS_BAD_PARAM;
    struct cudnnConvolutionStruct *c = calloc(1, sizeof *c);
    if (!c) return CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
    c->groups = 1;
    c->math = CUDNN_DEFAULT_MATH;
    *convDesc = c;
    return CUDNN_STATUS_SUCCESS;
}

static int format_valid(cudnnTensorFormat_t f)
{
    return f == CUDNN_TENSOR_NCHW || f == CUDNN_TENSOR_NHWC || f == CUDNN_TENSOR_NCHW_VECT_C;
}

static int dims_valid(int a, int b, int c, int d)
{
    if (a <= 0 || b <= 0 || c <= 0 || d <= 0) return 0;
    return (double)a * b * c * d <= 2147483647.0;
}

cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t tensorDesc,
                                         cudnnTensorFormat_t format, cudnnDataType_t dataType,
                                         int n, int c, int h, int w)
{
    if (!tensorDesc || !format_valid(format) || (int)dataType < 0 ||
        (int)dataType > (int)CUDNN_DATA_COMPLEX_FP64 || !dims_valid(n, c, h, w))
        return CUDNN_STATUS_BAD_PARAM;
    *tensorDesc = (struct cudnnTensorStruct){1, format, dataType, n, c, h, w};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t filterDesc,
                                         cudnnDataType_t dataType, cudnnTensorFormat_t format,
                                         int k, int c, int h, int w)
{
    if (!filterDesc || !format_valid(format) || (int)dataType < 0 ||
        (int)dataType > (int)CUDNN_DATA_COMPLEX_FP64 || !dims_valid(k, c, h, w))
        return CUDNN_STATUS_BAD_PARAM;
    *filterDesc = (struct cudnnFilterStruct){1, format, dataType, k, c, h, w};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t convDesc, int pad_h,
                                              int pad_w, int u, int v, int dilation_h,
                                              int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t computeType)
{
    if (!convDesc || pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dilation_h <= 0 ||
        dilation_w <= 0 || (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION))
        return CUDNN_STATUS_BAD_PARAM;
    if (computeType != CUDNN_DATA_FLOAT && computeType != CUDNN_DATA_HALF &&
        computeType != CUDNN_DATA_DOUBLE && computeType != CUDNN_DATA_INT32 &&
        computeType != CUDNN_DATA_BFLOAT16)
        return CUDNN_STATUS_BAD_PARAM;
    convDesc->set = 1;
    convDesc->pad_h = pad_h;
    convDesc->pad_w = pad_w;
    convDesc->u = u;
    convDesc->v = v;
    convDesc->dil_h = dilation_h;
    convDesc->dil_w = dilation_w;
    convDesc->mode = mode;
    convDesc->compute = computeType;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t convDesc, int groupCount)
{
    if (!convDesc || groupCount < 1) return CUDNN_STATUS_BAD_PARAM;
    convDesc->groups = groupCount;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc,
                                          cudnnMathType_t mathType)
{
    if (!convDesc || (mathType != CUDNN_DEFAULT_MATH && mathType != CUDNN_TENSOR_OP_MATH &&
                      mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION &&
                      mathType != CUDNN_FMA_MATH))
        return CUDNN_STATUS_BAD_PARAM;
    convDesc->math = mathType;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetActivationDescriptor(cudnnActivationDescriptor_t activationDesc,
                                           cudnnActivationMode_t mode,
                                           cudnnNanPropagation_t reluNanOpt, double coef)
{
    if (!activationDesc || (int)mode < (int)CUDNN_ACTIVATION_SIGMOID ||
        (int)mode > (int)CUDNN_ACTIVATION_SWISH ||
        (reluNanOpt != CUDNN_NOT_PROPAGATE_NAN && reluNanOpt != CUDNN_PROPAGATE_NAN))
        return CUDNN_STATUS_BAD_PARAM;
    *activationDesc = (struct cudnnActivationStruct){1, mode, reluNanOpt, coef};
    return CUDNN_STATUS_SUCCESS;
}

/* ---- convolution geometry ---- */

static cudnnStatus_t output_dims(const struct cudnnConvolutionStruct *cd,
                                 const struct cudnnTensorStruct *x,
                                 const struct cudnnFilterStruct *w, int out[4])
{
    if (!cd || !x || !w || !cd->set || !x->set || !w->set) return CUDNN_STATUS_BAD_PARAM;
    if (x->c != w->c * cd->groups || w->k % cd->groups != 0) return CUDNN_STATUS_BAD_PARAM;
    int eff_r = (w->h - 1) * cd->dil_h + 1, eff_s = (w->w - 1) * cd->dil_w + 1;
    int span_h = x->h + 2 * cd->pad_h - eff_r, span_w = x->w + 2 * cd->pad_w - eff_s;
    if (span_h < 0 || span_w < 0) return CUDNN_STATUS_BAD_PARAM;
    out[0] = x->n;
    out[1] = w->k;
    out[2] = span_h / cd->u + 1;
    out[3] = span_w / cd->v + 1;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t convDesc,
                                                    const cudnnTensorDescriptor_t inputTensorDesc,
                                                    const cudnnFilterDescriptor_t filterDesc,
                                                    int *n, int *c, int *h, int *w)
{
    int d[4];
    if (!n || !c || !h || !w) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = output_dims(convDesc, inputTensorDesc, filterDesc, d);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    *n = d[0];
    *c = d[1];
    *h = d[2];
    *w = d[3];
    return CUDNN_STATUS_SUCCESS;
}

/* validates x, w, conv and y (y the forward output) for any of the three directions */
cudnnStatus_t cuemu_dnn_conv_check(const struct cudnnTensorStruct *x,
                                   const struct cudnnFilterStruct *w,
                                   const struct cudnnConvolutionStruct *cd,
                                   const struct cudnnTensorStruct *y, conv_geom *g)
{
    int d[4];
    if (!x || !w || !cd || !y || !y->set) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st = output_dims(cd, x, w, d);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    if (y->n != d[0] || y->c != d[1] || y->h != d[2] || y->w != d[3]) return CUDNN_STATUS_BAD_PARAM;
    if (x->fmt != CUDNN_TENSOR_NCHW || w->fmt != CUDNN_TENSOR_NCHW || y->fmt != CUDNN_TENSOR_NCHW)
        return CUDNN_STATUS_NOT_SUPPORTED;
    if (x->dt != w->dt || x->dt != y->dt || !dt_supported(x->dt)) return CUDNN_STATUS_NOT_SUPPORTED;
    if (cd->compute != CUDNN_DATA_FLOAT && !(cd->compute == CUDNN_DATA_HALF && x->dt == CUDNN_DATA_HALF))
        return CUDNN_STATUS_NOT_SUPPORTED;
    if (g)
        *g = (conv_geom){x->n,        x->c,       x->h,       x->w,       w->k,
                         w->c,        w->k / cd->groups,      w->h,       w->w,
                         d[2],        d[3],       cd->pad_h,  cd->pad_w,  cd->u,
                         cd->v,       cd->dil_h,  cd->dil_w,  cd->mode == CUDNN_CONVOLUTION};
    return CUDNN_STATUS_SUCCESS;
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
