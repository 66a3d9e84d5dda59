/* cudnn_emu.c: the part of cuDNN 9's legacy API that the CUDA backend uses, emulated on the CPU
   for cuemu (tests/cuemu/README.md): status strings, handles, 4-d tensor / filter / convolution /
   activation descriptors and the convolution geometry check. The compute calls (convolution
   forward, backward data, backward filter, the fused convolution + bias + activation forward and
   cudnnAddTensor) are in cudnn_emu_ops.c, their public symbols (run now, or recorded by a stream
   capture) in cudnn_emu_capture.c; the algorithm heuristics, cudnnFind and the workspace queries
   in cudnn_emu_algo.c; what the files share is in cudnn_emu_int.h. The semantics below are those
   of the whole emulation.

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
