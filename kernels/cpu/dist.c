/* dist.c: the CPU backend's data-parallel members (backend.h, dist_attach, allreduce_start
   and allreduce_wait). Host memory is what the comm's collectives take, so the all-reduce is the
   comm's own, completed within allreduce_start (the cores that could overlap it run the backward); with
   sync_bn, the BatchNorm kernels (bn.c, fused.c) ask here for the statistics and backward sums of
   the global batch: this rank's per-channel sums (float per (n, c) plane, added in double, as the
   single-process kernels do), summed over the ranks in double. */
#include "cpu_ops.h"
#include <math.h>
#include <stdlib.h>

static const sq_comm *g_comm;
static int g_sync_bn;

static int par_ok(int n, int c, int hw) { return (size_t)n * c * hw >= SQ_CPU_PAR_MIN && c > 1; }

sq_status sq_cpu_dist_attach(const sq_comm *comm, int sync_bn)
{
    g_comm = comm && comm->size > 1 ? comm : NULL;
    g_sync_bn = g_comm && sync_bn;
    return SQ_OK;
}

void sq_cpu_allreduce_start(float *buf, size_t n)
{
    if (g_comm && n) g_comm->allreduce_f32(g_comm, buf, n);
}

void sq_cpu_allreduce_wait(void) {}

double *sq_cpu_bn_sync_stats(int n, int c, int hw, const float *x)
{
    if (!g_sync_bn) return NULL;
    double *gs = sq_xmalloc(((size_t)2 * c + 1) * sizeof *gs);
    double cnt = (double)n * hw;
    gs[2 * c] = cnt;
    g_comm->allreduce_f64(g_comm, &gs[2 * c], 1);
    cnt = gs[2 * c];
#pragma omp parallel for SQ_SCHED_ITEMS if (par_ok(n, c, hw))
    for (int ch = 0; ch < c; ch++) {
        double s = 0.0;
        for (int i = 0; i < n; i++) {
            const float *p = x + ((size_t)i * c + ch) * hw;
            float a = 0.0f;
#pragma omp simd reduction(+ : a)
            for (int j = 0; j < hw; j++) a += p[j];
            s += a;
        }
        gs[ch] = s;
    }
    g_comm->allreduce_f64(g_comm, gs, (size_t)c);
#pragma omp parallel for SQ_SCHED_ITEMS if (par_ok(n, c, hw))
    for (int ch = 0; ch < c; ch++) {
        gs[ch] /= cnt;
        const float mean = (float)gs[ch];
        double s = 0.0;
        for (int i = 0; i < n; i++) {
            const float *p = x + ((size_t)i * c + ch) * hw;
            float b = 0.0f;
#pragma omp simd reduction(+ : b)
            for (int j = 0; j < hw; j++) {
                const float d = p[j] - mean;
                b += d * d;
            }
            s += b;
        }
        gs[c + ch] = s;
    }
    g_comm->allreduce_f64(g_comm, gs + c, (size_t)c);
    for (int ch = 0; ch < c; ch++) {
        /* the variance about the float mean the sums used, corrected to the exact mean */
        const double dm = gs[ch] - (double)(float)gs[ch];
        const double v = gs[c + ch] / cnt - dm * dm;
        gs[c + ch] = v > 0.0 ? v : 0.0;
    }
    return gs;
}

double *sq_cpu_bn_sync_grad(int n, int c, int hw, const float *x, const float *y, float hi, const float *gy,
                            const float *save_mean)
{
    if (!g_sync_bn) return NULL;
    double *gs = sq_xmalloc(((size_t)2 * c + 1) * sizeof *gs);
#pragma omp parallel for SQ_SCHED_ITEMS if (par_ok(n, c, hw))
    for (int ch = 0; ch < c; ch++) {
        const float mean = save_mean[ch];
        double sg = 0.0, sgx = 0.0;
        for (int i = 0; i < n; i++) {
            const size_t off = ((size_t)i * c + ch) * hw;
            const float *p = x + off, *g = gy + off, *yp = y ? y + off : NULL;
            float a = 0.0f, b = 0.0f;
#pragma omp simd reduction(+ : a, b)
            for (int j = 0; j < hw; j++) {
                const float gj = yp ? (yp[j] > 0.0f && yp[j] < hi ? g[j] : 0.0f) : g[j];
                a += gj;
                b += gj * (p[j] - mean);
            }
            sg += a;
            sgx += b;
        }
        gs[ch] = sg;
        gs[c + ch] = sgx;
    }
    gs[2 * c] = (double)n * hw;
    g_comm->allreduce_f64(g_comm, gs, (size_t)2 * c + 1);
    return gs;
}
