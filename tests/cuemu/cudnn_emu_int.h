/* cudnn_emu_int.h: what the files of cuemu's cuDNN emulation share: the descriptor structs, the
   convolution geometry and small helpers. cudnn_emu.c holds the status strings, handles,
   descriptors and the geometry check; cudnn_emu_ops.c the conversions and the compute calls;
   cudnn_emu_capture.c their public symbols (run or recorded); cudnn_emu_algo.c the algorithm
   heuristics, cudnnFind and the workspaces. */
#ifndef SQAKD_CUDNN_EMU_INT_H
#define SQAKD_CUDNN_EMU_INT_H

#include <stddef.h>
#include <cudnn.h>
#include "cuemu_rt.h"

struct cudnnContext {
    cudaStream_t stream;
};

struct cudnnTensorStruct {
    int set;
    cudnnTensorFormat_t fmt;
    cudnnDataType_t dt;
    int n, c, h, w;
};

struct cudnnFilterStruct {
    int set;
    cudnnTensorFormat_t fmt;
    cudnnDataType_t dt;
    int k, c, h, w;
};

struct cudnnConvolutionStruct {
    int set;
    int pad_h, pad_w, u, v, dil_h, dil_w;
    cudnnConvolutionMode_t mode;
    cudnnDataType_t compute;
    int groups;
    cudnnMathType_t math;
};

struct cudnnActivationStruct {
    int set;
    cudnnActivationMode_t mode;
    cudnnNanPropagation_t nan_opt;
    double coef;
};

/* the three directions of a convolution */
enum { DIR_FWD, DIR_BWD_DATA, DIR_BWD_FILTER };

typedef struct conv_geom {
    int n, c, h, w;      /* x */
    int k, cg, kg, r, s; /* filter: K outputs, cg inputs and kg outputs per group, R x S */
    int oh, ow;          /* y spatial */
    int ph, pw, u, v, dh, dw, flip;
} conv_geom;

static inline size_t dt_size(cudnnDataType_t dt)
{
    switch (dt) {
    case CUDNN_DATA_FLOAT: return 4;
    case CUDNN_DATA_HALF: return 2;
    case CUDNN_DATA_BFLOAT16: return 2;
    default: return 0;
    }
}

static inline int dt_supported(cudnnDataType_t dt) { return dt_size(dt) != 0; }

static inline size_t tensor_count(const struct cudnnTensorStruct *t)
{
    return (size_t)t->n * (size_t)t->c * (size_t)t->h * (size_t)t->w;
}

static inline size_t filter_count(const struct cudnnFilterStruct *f)
{
    return (size_t)f->k * (size_t)f->c * (size_t)f->h * (size_t)f->w;
}

/* fatal unless [p, p + bytes) is device memory */
static inline void need_dev(const char *fn, const char *arg, const void *p, size_t bytes)
{
    if (!cuemu_dev_range_ok(p, bytes))
        cuemu_fatal(fn, "argument %s = %p: its %zu bytes are not inside one device allocation",
                    arg, p, bytes);
}

/* validates x, w, conv and y (y the forward output) for any of the three directions; fills g */
cudnnStatus_t cuemu_dnn_conv_check(const struct cudnnTensorStruct *x,
                                   const struct cudnnFilterStruct *w,
                                   const struct cudnnConvolutionStruct *cd,
                                   const struct cudnnTensorStruct *y, conv_geom *g);
/* checks the algorithm and the workspace of a convolution call, then ruins the workspace */
cudnnStatus_t cuemu_dnn_ws_use(const char *fn, int dir, int algo, const conv_geom *g, void *ws,
                               size_t ws_bytes);

/* out = alpha * op_dir(a, b) + beta * out on FP32 data (out not read when beta == 0); every
   range is checked (fatal outside device memory). For the backend API (cudnn_emu_backend.c). */
cudnnStatus_t cuemu_dnn_conv_run(const char *fn, int dir, const conv_geom *g, const void *a,
                                 size_t na, const void *b, size_t nb, void *out, size_t nout,
                                 float alpha, float beta);

/* the executing halves of the calls that do work on the handle's stream (cudnn_emu.c); the
   public cuDNN symbols (cudnn_emu_capture.c) run them now, or record them while the handle's
   stream captures a CUDA graph */
cudnnStatus_t emu_cudnnConvolutionForward(cudnnHandle_t handle, const void *alpha,
                                          const cudnnTensorDescriptor_t xDesc, const void *x,
                                          const cudnnFilterDescriptor_t wDesc, const void *w,
                                          const cudnnConvolutionDescriptor_t convDesc,
                                          cudnnConvolutionFwdAlgo_t algo, void *workSpace,
                                          size_t workSpaceSizeInBytes, const void *beta,
                                          const cudnnTensorDescriptor_t yDesc, void *y);
cudnnStatus_t emu_cudnnConvolutionBackwardData(cudnnHandle_t handle, const void *alpha,
                                               const cudnnFilterDescriptor_t wDesc, const void *w,
                                               const cudnnTensorDescriptor_t dyDesc, const void *dy,
                                               const cudnnConvolutionDescriptor_t convDesc,
                                               cudnnConvolutionBwdDataAlgo_t algo, void *workSpace,
                                               size_t workSpaceSizeInBytes, const void *beta,
                                               const cudnnTensorDescriptor_t dxDesc, void *dx);
cudnnStatus_t emu_cudnnConvolutionBackwardFilter(cudnnHandle_t handle, const void *alpha,
                                                 const cudnnTensorDescriptor_t xDesc, const void *x,
                                                 const cudnnTensorDescriptor_t dyDesc, const void *dy,
                                                 const cudnnConvolutionDescriptor_t convDesc,
                                                 cudnnConvolutionBwdFilterAlgo_t algo,
                                                 void *workSpace, size_t workSpaceSizeInBytes,
                                                 const void *beta,
                                                 const cudnnFilterDescriptor_t dwDesc, void *dw);
cudnnStatus_t emu_cudnnConvolutionBiasActivationForward(
    cudnnHandle_t handle, const void *alpha1, const cudnnTensorDescriptor_t xDesc, const void *x,
    const cudnnFilterDescriptor_t wDesc, const void *w,
    const cudnnConvolutionDescriptor_t convDesc, cudnnConvolutionFwdAlgo_t algo, void *workSpace,
    size_t workSpaceSizeInBytes, const void *alpha2, const cudnnTensorDescriptor_t zDesc,
    const void *z, const cudnnTensorDescriptor_t biasDesc, const void *bias,
    const cudnnActivationDescriptor_t activationDesc, const cudnnTensorDescriptor_t yDesc,
    void *y);
cudnnStatus_t emu_cudnnAddTensor(cudnnHandle_t handle, const void *alpha,
                                 const cudnnTensorDescriptor_t aDesc, const void *A,
                                 const void *beta, const cudnnTensorDescriptor_t cDesc, void *C);

#endif
