/* optim.cu: fused optimizer steps, one pass over a whole parameter buffer, same operation order as
   kernels/cpu/optim.c (PyTorch semantics, L2 weight decay added to the gradient):
     sgd:  d = g + wd p; m = mom m + d; p -= lr m        (m = NULL: p -= lr d, momentum unused)
     adam: d = g + wd p; m = b1 m + (1-b1) d; v = b2 v + (1-b2) d^2;
           p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
   The bias corrections are computed once on the host in double. */
#include <math.h>
#include "cuda_common.cuh"

static __global__ void sgd_kernel(size_t n, float *__restrict__ p, const float *__restrict__ g,
                                  float *__restrict__ m, float lr, float momentum, float wd)
{
    SQ_GRID_LOOP(i, n)
    {
        float d = g[i] + wd * p[i];
        if (m) {
            float mi = momentum * m[i] + d;
            m[i] = mi;
            d = mi;
        }
        p[i] -= lr * d;
    }
}

static __global__ void adam_kernel(size_t n, float *__restrict__ p, const float *__restrict__ g,
                                   float *__restrict__ m, float *__restrict__ v, float step,
                                   float b1, float b2, float c1, float c2, float bc2s, float eps,
                                   float wd)
{
    SQ_GRID_LOOP(i, n)
    {
        float d = g[i] + wd * p[i];
        float mi = b1 * m[i] + c1 * d;
        float vi = b2 * v[i] + c2 * d * d;
        m[i] = mi;
        v[i] = vi;
        p[i] -= step * (mi / (sqrtf(vi) / bc2s + eps));
    }
}

extern "C" void sq_cuda_sgd_step(size_t n, float *p, const float *g, float *m, float lr,
                                 float momentum, float wd)
{
    if (!n) return;
    sgd_kernel<<<sq_grid_ew(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, p, g, m, lr, momentum, wd);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_adam_step(size_t n, float *p, const float *g, float *m, float *v, float lr,
                                  float b1, float b2, float eps, float wd, int t)
{
    if (!n) return;
    if (t < 1) SQ_CUDA_BUG("adam step t must be >= 1");
    const double bc1 = 1.0 - pow((double)b1, t), bc2 = 1.0 - pow((double)b2, t);
    const float step = (float)(lr / bc1), bc2s = (float)sqrt(bc2);
    const float c1 = (float)(1.0 - (double)b1), c2 = (float)(1.0 - (double)b2);
    adam_kernel<<<sq_grid_ew(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, p, g, m, v, step, b1, b2, c1, c2, bc2s, eps,
                                                  wd);
    SQ_CUDA_LAUNCHED();
}
