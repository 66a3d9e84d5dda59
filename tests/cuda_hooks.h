/* cuda_hooks.h: test hooks of the CUDA backend, for tests only (the definitions live in
   kernels/cuda; nothing outside tests/ declares them). Include it in CUDA test files; the hooks
   exist in CUDA builds only (SQ_HAVE_CUDA). */
#ifndef SQAKD_TESTS_CUDA_HOOKS_H
#define SQAKD_TESTS_CUDA_HOOKS_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include "sqakd/backend.h"

#ifdef SQ_HAVE_CUDA
/* kernels/cuda/fakequant.cu: out[i] = x[i] / d[i] computed on the device the way the fake-quant
   kernels divide (sq_qm_div with the reciprocal 1/d[i]); device pointers. */
void sq_cuda_div_check(size_t n, const float *x, const float *d, float *out);

/* kernels/cuda/context.c: caps every streaming launch (fake-quant and loss kernels,
   cuda_common.cuh) at cap blocks (0: no test cap, the default: 16384 blocks for reducing
   launches, the grid's limit for the others), so that tests reach the kernels' multi-trip
   loops with small tensors. */
void sq_cuda_grid_cap_set(unsigned cap);
#endif

/* The CUDA backend (NULL without one) configured for the tests: cuDNN kept off TF32 (option
   tf32 = 0), so that convolutions compare with the CPU reference, then whatever
   SQAKD_TEST_BACKEND_OPT says ("KEY=VALUE,...", as --backend-opt: tools/gpu_validate.sh runs the
   step suite with conv-algo=find,deterministic=0). The CUDA suites call it in their .init (each
   test runs in a process of its own, before its first convolution). */
static inline const sq_backend *sqt_cuda_configure(void)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) return NULL;
    sq_backend_opts o = *g->options();
    o.tf32 = 0;
    const char *e = getenv("SQAKD_TEST_BACKEND_OPT");
    if ((e && sq_backend_opts_parse(e, &o) != SQ_OK) || g->configure(&o) != SQ_OK) {
        fprintf(stderr, "SQAKD_TEST_BACKEND_OPT=%s: %s\n", e ? e : "", sq_last_error());
        abort();
    }
    return g;
}

#endif
