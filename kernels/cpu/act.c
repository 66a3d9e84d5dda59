/* act.c: CPU activations (ReLU, ReLU6) and elementwise helpers (add, axpy, scale, fill),
   OpenMP-parallel with static schedules above SQ_CPU_PAR_MIN elements. ReLU/ReLU6 backward pass
   the gradient only strictly inside the linear region (PyTorch: zero at 0 and at 6). */
#include "cpu_ops.h"

#define PAR_FOR _Pragma("omp parallel for simd schedule(static) if (n >= SQ_CPU_PAR_MIN)")

void sq_cpu_act_fwd(sq_act_kind kind, size_t n, const float *x, float *y)
{
    if (kind == SQ_ACT_RELU6) {
        PAR_FOR
        for (size_t i = 0; i < n; i++) {
            float v = x[i] > 0.0f ? x[i] : 0.0f;
            y[i] = v < 6.0f ? v : 6.0f;
        }
    } else {
        PAR_FOR
        for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
    }
}

void sq_cpu_act_bwd(sq_act_kind kind, size_t n, const float *x, const float *gy, float *gx)
{
    if (!gx) return;
    if (kind == SQ_ACT_RELU6) {
        PAR_FOR
        for (size_t i = 0; i < n; i++) gx[i] += (x[i] > 0.0f && x[i] < 6.0f) ? gy[i] : 0.0f;
    } else {
        PAR_FOR
        for (size_t i = 0; i < n; i++) gx[i] += x[i] > 0.0f ? gy[i] : 0.0f;
    }
}

void sq_cpu_add_fwd(size_t n, const float *a, const float *b, float *y)
{
    PAR_FOR
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void sq_cpu_axpy(size_t n, float alpha, const float *x, float *y)
{
    PAR_FOR
    for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

void sq_cpu_scale(size_t n, float alpha, float *x)
{
    PAR_FOR
    for (size_t i = 0; i < n; i++) x[i] *= alpha;
}

void sq_cpu_fill(size_t n, float v, float *x)
{
    PAR_FOR
    for (size_t i = 0; i < n; i++) x[i] = v;
}
