/* cudnn_emu_capture.c: the public symbols of the cuDNN calls that do work on the handle's stream
   (convolution forward / backward data / backward filter, fused bias + activation forward,
   AddTensor). Each runs its emulation (emu_*, cudnn_emu.c) now, or, while the handle's stream
   captures a CUDA graph (capture.cc), records it with its arguments, alpha and beta read at the
   call as cuDNN reads host scalars, to run when the graph is launched. Work issued to the legacy
   stream while a blocking stream captures invalidates the capture and fails, as on a GPU
   (CUDNN_STATUS_EXECUTION_FAILED_CUDART). A recorded call that fails at the launch is a bug
   (the same call with the same descriptors succeeded eagerly before): it aborts. */
#include <cudnn.h>
#include "cudnn_emu_int.h"

/* CAPTURE(handle, args struct, replay function): run now unless the handle's stream captures */
#define CAPTURE(h, a, replay)                                                                  \
    do {                                                                                       \
        if (!(h)) return CUDNN_STATUS_BAD_PARAM;                                               \
        if (cuemu_capture_check((h)->stream, 0) != cudaSuccess)                                \
            return CUDNN_STATUS_EXECUTION_FAILED_CUDART;                                       \
        if (cuemu_capturing((h)->stream)) {                                                    \
            cuemu_record((h)->stream, replay, &(a), sizeof(a));                                \
            return CUDNN_STATUS_SUCCESS;                                                       \
        }                                                                                      \
    } while (0)

static void replayed(const char *fn, cudnnStatus_t st)
{
    if (st != CUDNN_STATUS_SUCCESS)
        cuemu_fatal("graph launch", "a recorded %s failed: %s", fn, cudnnGetErrorString(st));
}

struct conv_args {
    cudnnHandle_t h;
    float alpha, beta;
    void *a_desc, *b_desc; /* descriptors of (x, w) / (w, dy) / (x, dy) */
    const void *a, *b;
    cudnnConvolutionDescriptor_t cd;
    int algo;
    void *ws;
    size_t ws_bytes;
    void *out_desc;
    void *out;
};

static void fwd_replay(void *p)
{
    const struct conv_args *a = p;
    replayed("cudnnConvolutionForward",
             emu_cudnnConvolutionForward(a->h, &a->alpha, a->a_desc, a->a, a->b_desc, a->b, a->cd,
                                         a->algo, a->ws, a->ws_bytes, &a->beta, a->out_desc,
                                         a->out));
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void *alpha,
                                      const cudnnTensorDescriptor_t xDesc, const void *x,
                                      const cudnnFilterDescriptor_t wDesc, const void *w,
                                      const cudnnConvolutionDescriptor_t convDesc,
                                      cudnnConvolutionFwdAlgo_t algo, void *workSpace,
                                      size_t workSpaceSizeInBytes, const void *beta,
                                      const cudnnTensorDescriptor_t yDesc, void *y)
{
    if (alpha && beta) {
        struct conv_args a = {handle, *(const float *)alpha, *(const float *)beta, xDesc, wDesc, x,
                              w, convDesc, (int)algo, workSpace, workSpaceSizeInBytes, yDesc, y};
        CAPTURE(handle, a, fwd_replay);
    }
    return emu_cudnnConvolutionForward(handle, alpha, xDesc, x, wDesc, w, convDesc, algo, workSpace,
                                       workSpaceSizeInBytes, beta, yDesc, y);
}

static void bwd_data_replay(void *p)
{
    const struct conv_args *a = p;
    replayed("cudnnConvolutionBackwardData",
             emu_cudnnConvolutionBackwardData(a->h, &a->alpha, a->a_desc, a->a, a->b_desc, a->b,
                                              a->cd, a->algo, a->ws, a->ws_bytes, &a->beta,
                                              a->out_desc, a->out));
}

cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t handle, const void *alpha,
                                           const cudnnFilterDescriptor_t wDesc, const void *w,
                                           const cudnnTensorDescriptor_t dyDesc, const void *dy,
                                           const cudnnConvolutionDescriptor_t convDesc,
                                           cudnnConvolutionBwdDataAlgo_t algo, void *workSpace,
                                           size_t workSpaceSizeInBytes, const void *beta,
                                           const cudnnTensorDescriptor_t dxDesc, void *dx)
{
    if (alpha && beta) {
        struct conv_args a = {handle, *(const float *)alpha, *(const float *)beta, wDesc, dyDesc, w,
                              dy, convDesc, (int)algo, workSpace, workSpaceSizeInBytes, dxDesc, dx};
        CAPTURE(handle, a, bwd_data_replay);
    }
    return emu_cudnnConvolutionBackwardData(handle, alpha, wDesc, w, dyDesc, dy, convDesc, algo,
                                            workSpace, workSpaceSizeInBytes, beta, dxDesc, dx);
}

static void bwd_filter_replay(void *p)
{
    const struct conv_args *a = p;
    replayed("cudnnConvolutionBackwardFilter",
             emu_cudnnConvolutionBackwardFilter(a->h, &a->alpha, a->a_desc, a->a, a->b_desc, a->b,
                                                a->cd, a->algo, a->ws, a->ws_bytes, &a->beta,
                                                a->out_desc, a->out));
}

cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t handle, const void *alpha,
                                             const cudnnTensorDescriptor_t xDesc, const void *x,
                                             const cudnnTensorDescriptor_t dyDesc, const void *dy,
                                             const cudnnConvolutionDescriptor_t convDesc,
                                             cudnnConvolutionBwdFilterAlgo_t algo,
                                             void *workSpace, size_t workSpaceSizeInBytes,
                                             const void *beta,
                                             const cudnnFilterDescriptor_t dwDesc, void *dw)
{
    if (alpha && beta) {
        struct conv_args a = {handle, *(const float *)alpha, *(const float *)beta, xDesc, dyDesc, x,
                              dy, convDesc, (int)algo, workSpace, workSpaceSizeInBytes, dwDesc, dw};
        CAPTURE(handle, a, bwd_filter_replay);
    }
    return emu_cudnnConvolutionBackwardFilter(handle, alpha, xDesc, x, dyDesc, dy, convDesc, algo,
                                              workSpace, workSpaceSizeInBytes, beta, dwDesc, dw);
}

struct cba_args {
    cudnnHandle_t h;
    float alpha1, alpha2;
    cudnnTensorDescriptor_t xd;
    const void *x;
    cudnnFilterDescriptor_t wd;
    const void *w;
    cudnnConvolutionDescriptor_t cd;
    cudnnConvolutionFwdAlgo_t algo;
    void *ws;
    size_t ws_bytes;
    cudnnTensorDescriptor_t zd;
    const void *z;
    cudnnTensorDescriptor_t bd;
    const void *bias;
    cudnnActivationDescriptor_t ad;
    cudnnTensorDescriptor_t yd;
    void *y;
};

static void cba_replay(void *p)
{
    const struct cba_args *a = p;
    replayed("cudnnConvolutionBiasActivationForward",
             emu_cudnnConvolutionBiasActivationForward(
                 a->h, &a->alpha1, a->xd, a->x, a->wd, a->w, a->cd, a->algo, a->ws, a->ws_bytes,
                 &a->alpha2, a->zd, a->z, a->bd, a->bias, a->ad, a->yd, a->y));
}

cudnnStatus_t cudnnConvolutionBiasActivationForward(
    cudnnHandle_t handle, const void *alpha1, const cudnnTensorDescriptor_t xDesc, const void *x,
    const cudnnFilterDescriptor_t wDesc, const void *w,
    const cudnnConvolutionDescriptor_t convDesc, cudnnConvolutionFwdAlgo_t algo, void *workSpace,
    size_t workSpaceSizeInBytes, const void *alpha2, const cudnnTensorDescriptor_t zDesc,
    const void *z, const cudnnTensorDescriptor_t biasDesc, const void *bias,
    const cudnnActivationDescriptor_t activationDesc, const cudnnTensorDescriptor_t yDesc,
    void *y)
{
    if (alpha1 && alpha2) {
        struct cba_args a = {handle, *(const float *)alpha1, *(const float *)alpha2, xDesc, x,
                             wDesc, w, convDesc, algo, workSpace, workSpaceSizeInBytes, zDesc, z,
                             biasDesc, bias, activationDesc, yDesc, y};
        CAPTURE(handle, a, cba_replay);
    }
    return emu_cudnnConvolutionBiasActivationForward(handle, alpha1, xDesc, x, wDesc, w, convDesc,
                                                     algo, workSpace, workSpaceSizeInBytes, alpha2,
                                                     zDesc, z, biasDesc, bias, activationDesc,
                                                     yDesc, y);
}

struct add_args {
    cudnnHandle_t h;
    float alpha, beta;
    cudnnTensorDescriptor_t ad;
    const void *A;
    cudnnTensorDescriptor_t cd;
    void *C;
};

static void add_replay(void *p)
{
    const struct add_args *a = p;
    replayed("cudnnAddTensor",
             emu_cudnnAddTensor(a->h, &a->alpha, a->ad, a->A, &a->beta, a->cd, a->C));
}

cudnnStatus_t cudnnAddTensor(cudnnHandle_t handle, const void *alpha,
                             const cudnnTensorDescriptor_t aDesc, const void *A, const void *beta,
                             const cudnnTensorDescriptor_t cDesc, void *C)
{
    if (alpha && beta) {
        struct add_args a = {handle, *(const float *)alpha, *(const float *)beta, aDesc, A, cDesc, C};
        CAPTURE(handle, a, add_replay);
    }
    return emu_cudnnAddTensor(handle, alpha, aDesc, A, beta, cDesc, C);
}
