/* optim.c: fused CPU optimizer steps over one contiguous buffer, PyTorch semantics with L2 weight
   decay added to the gradient (backend.h). Adam follows torch.optim.Adam's operation order:
   step_size = lr / (1 - b1^t), denom = sqrt(v) / sqrt(1 - b2^t) + eps, p -= step_size * m / denom. */
#include "cpu_ops.h"
#include <math.h>

void sq_cpu_sgd_step(size_t n, float *p, const float *g, float *m, float lr, float momentum,
                     float wd)
{
    if (!m) { /* no momentum buffer (momentum must be 0): plain SGD */
#pragma omp parallel for simd SQ_SCHED_ELEMS if (n >= SQ_CPU_PAR_MIN)
        for (size_t i = 0; i < n; i++) p[i] -= lr * (g[i] + wd * p[i]);
        return;
    }
#pragma omp parallel for simd SQ_SCHED_ELEMS if (n >= SQ_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float d = g[i] + wd * p[i];
        float mi = momentum * m[i] + d;
        m[i] = mi;
        p[i] -= lr * mi;
    }
}

void sq_cpu_adam_step(size_t n, float *p, const float *g, float *m, float *v, float lr, float b1,
                      float b2, float eps, float wd, int t)
{
    const double bc1 = 1.0 - pow((double)b1, t), bc2 = 1.0 - pow((double)b2, t);
    const float step = (float)(lr / bc1), bc2s = (float)sqrt(bc2);
    const float c1 = (float)(1.0 - (double)b1), c2 = (float)(1.0 - (double)b2);
#pragma omp parallel for simd SQ_SCHED_ELEMS if (n >= SQ_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float d = g[i] + wd * p[i];
        float mi = b1 * m[i] + c1 * d;
        float vi = b2 * v[i] + c2 * d * d;
        m[i] = mi;
        v[i] = vi;
        p[i] -= step * (mi / (sqrtf(vi) / bc2s + eps));
    }
}
