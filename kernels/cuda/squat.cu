/* squat.cu: the SQuaT feature loss (issue 20, docs/squat.md), same semantics as
   kernels/cpu/squat.c: the teacher's feature is fake-quantized with the student's activation
   quantizer (quant_math.h's per-element math, the device's division by reciprocal as the
   fake-quant kernels), compared with the student's quantized feature, the gradient added and the
   squared differences summed in one launch: each thread sums its elements in double, blocks in a
   fixed tree, and the last block to finish adds the blocks in block order (sq_grid_reduce_last)
   and the weighted mean to *loss, so the loss is the same from run to run. */
#include "cuda_common.cuh"
#include "sqakd/quant_math.h"

static __global__ void squat_kernel(sq_qm_ctx k, size_t n, const float *__restrict__ xt, const float *qp,
                                    const float *__restrict__ xs, float g, double weight, float *loss,
                                    float *__restrict__ gxs, double *partials, unsigned *counter)
{
    const int np = sq_qm_nparams(&k);
    sq_qm_ctx_load(&k, np > 0 ? qp[0] : 0.0f, np > 1 ? qp[1] : 0.0f, 0.0f);
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    double acc = 0.0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float d = __ldcs(xs + i) - sq_qm_fwd(&k, __ldcs(xt + i));
        acc += (double)d * d;
        if (gxs) gxs[i] += g * d;
    }
    double mine[1] = {sq_block_sum(acc)}, tot[1] = {0.0};
    if (sq_grid_reduce_last<1>(mine, tot, partials, counter) && threadIdx.x == 0)
        *loss += (float)(weight * tot[0] / (double)n);
}

extern "C" void sq_cuda_squat_fwd_bwd(const sq_quant_cfg *cfg, size_t n, const float *xt, const float *qp,
                                      const float *xs, float weight, float *loss, float *gxs)
{
    if (n == 0) return;
    sq_qm_ctx k;
    sq_qm_ctx_init(&k, cfg, n);
    const float g = (float)(2.0 * weight / (double)n);
    const unsigned grid = sq_grid_streaming((n + SQ_CUDA_BLOCK - 1) / SQ_CUDA_BLOCK, true);
    squat_kernel<<<grid, SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(k, n, xt, qp, xs, g, (double)weight, loss, gxs,
                                                                sq_cuda_partials(), sq_cuda_counter());
    SQ_CUDA_LAUNCHED();
}
