/* test_dnn_util.h: what the tests of cuemu's cuDNN / cuBLAS emulation share (test_dnn_util.c):
   the standalone device-allocation table that the emulation checks pointers against, random
   data, 16-bit conversions, convolution set-ups, the naive reference convolution and the
   algorithm choice the tests use. */
#ifndef SQAKD_TEST_DNN_UTIL_H
#define SQAKD_TEST_DNN_UTIL_H

#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cublas_v2.h>
#include <cudnn.h>
#include "cuemu_rt.h"

typedef struct cfg {
    int n, c, h, w, k, r, s, stride, pad, groups, dil;
    cudnnConvolutionMode_t mode;
} cfg;

typedef struct conv_set {
    cudnnHandle_t h;
    cudnnTensorDescriptor_t xd, yd, bd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    int oh, ow;
    size_t nx, nw, ny;
} conv_set;

typedef struct algos {
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    size_t ws;
} algos;

void *dalloc(size_t bytes);
void dfree(void *p);
float rnd(void);
float *dfill(size_t count);
float *dnan(size_t count);
void expect_close(const char *what, const float *got, const double *want, size_t count,
                  double rel);
uint16_t to_half_exact(float f);
double from_half(uint16_t h);
uint16_t to_bf16_exact(float f);
double from_bf16(uint16_t h);
conv_set make_set(const cfg *c, cudnnDataType_t dt);
void free_set(conv_set *s);
void ref_conv(const cfg *c, int oh, int ow, const float *x, const float *w, const float *dy,
              double *y, double *dx, double *dw);
algos pick_algos(const conv_set *s);
double dot(const float *a, const float *b, size_t count);

#endif
