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

/* kernels/cuda/context.c: the streaming kernels' launch geometry (fake-quant and loss kernels,
   SQAKD_GRID=auto|stride|flat, default auto): its name, and a hook that sets it. cap (flat and
   auto only; 0 = no test cap: 16384 blocks for reducing launches, the grid's limit for the
   others) caps every flat launch's grid, so tests reach the kernels' multi-trip loops with small
   tensors. */
enum { SQ_GRID_STRIDE = 0, SQ_GRID_FLAT = 1, SQ_GRID_AUTO = 2 };
const char *sq_cuda_grid_name(void);
void sq_cuda_grid_set(int mode, unsigned cap);

/* kernels/cuda/cudnn_be.c: convolutions through cuDNN's backend API (SQAKD_CONV_API=backend).
   Switch the API (plans built while it is on carry backend plans, used while it is on); the
   backend variants in use for cs's plan (built if needed): bit 0 forward, 1 backward data (set),
   2 backward data (accumulate), 3 backward filter; the variant packs cached so far; the calls
   handed back to the legacy API (misaligned pointers, failed executions). */
void sq_cuda_conv_api_set(int backend);
int sq_cuda_conv_be_variants(const sq_conv_shape *cs);
size_t sq_cuda_be_pack_count(void);
long sq_cuda_be_fallback_calls(void);
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
