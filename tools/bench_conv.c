/* bench_conv.c: times the CPU backend's conv2d forward and backward (input and weight gradients,
   no bias) on ResNet-20's conv shapes at batch 128; compare with tools/bench_conv_torch.py.
   Build (after `make BUILD=build/cpu CUDA=0 build/cpu/libsqakd.a`):
     gcc -O2 -std=gnu11 -fopenmp -Iinclude -Ikernels/cpu tools/bench_conv.c build/cpu/libsqakd.a \
         -lopenblas -lpng -ljpeg -lz -lm -lpthread -o build/cpu/bench_conv
   Run:  OMP_NUM_THREADS=2 build/cpu/bench_conv [reps] [cpu|wall] [shape index]
   "cpu" times process CPU seconds instead of wall seconds: with OMP_NUM_THREADS=1 that is a
   measure that neighbours on the shared cores do not disturb (tools/bench_conv_torch.py has the
   same switch).
   Prints per shape: forward ms, backward ms, total ms, each the best of reps after 2 warm-ups
   (the best, not the median: the 2 cores are shared, so slower samples measure the neighbours). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cpu_ops.h"

static int g_cpu_clock;

static double now(void)
{
    if (!g_cpu_clock) return sq_now();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct shape {
    const char *name;
    int c, h, k, stride;
} shape;

static const shape k_shapes[] = {
    {"stem 3->16 @32", 3, 32, 16, 1}, {"16->16 @32", 16, 32, 16, 1},
    {"16->32 s2 @32", 16, 32, 32, 2}, {"32->32 @16", 32, 16, 32, 1},
    {"32->64 s2 @16", 32, 16, 64, 2}, {"64->64 @8", 64, 8, 64, 1},
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *randn(size_t n, unsigned seed)
{
    float *p = sq_cpu_alloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)((seed >> 8) / 16777216.0 - 0.5);
    }
    return p;
}

int main(int argc, char **argv)
{
    const int reps = argc > 1 ? atoi(argv[1]) : 10, n = 128;
    g_cpu_clock = argc > 2 && !strcmp(argv[2], "cpu");
    const sq_backend *be = sq_backend_cpu();
    be->set_threads(0);
    printf("sqakd cpu conv: threads=%d batch=%d reps=%d clock=%s\n", sq_cpu_threads(), n, reps,
           g_cpu_clock ? "process cpu" : "wall");
    double tot_f = 0, tot_b = 0;
    double *tf = malloc(sizeof(double) * reps), *tb = malloc(sizeof(double) * reps);
    const int only = argc > 3 ? atoi(argv[3]) : -1;
    for (size_t si = 0; si < sizeof k_shapes / sizeof *k_shapes; si++) {
        if (only >= 0 && (int)si != only) continue;
        const shape *s = &k_shapes[si];
        sq_conv_shape cs;
        if (sq_conv_shape_init(&cs, n, s->c, s->h, s->h, s->k, 3, 3, s->stride, 1, 1) != SQ_OK)
            return 1;
        size_t nx = (size_t)n * s->c * s->h * s->h, nw = (size_t)s->k * s->c * 9;
        size_t ny = (size_t)n * s->k * cs.oh * cs.ow;
        float *x = randn(nx, 1), *w = randn(nw, 2), *gy = randn(ny, 3);
        float *y = sq_cpu_alloc(ny * 4), *gx = sq_cpu_alloc(nx * 4), *gw = sq_cpu_alloc(nw * 4);
        void *ws = be->alloc(be->conv_ws_bytes(&cs));
        for (int it = 0; it < reps + 2; it++) {
            double t0 = now();
            be->conv2d_fwd(&cs, x, w, NULL, y, ws);
            double t1 = now();
            be->conv2d_bwd(&cs, x, w, gy, gx, gw, NULL, ws);
            double t2 = now();
            if (it >= 2) {
                tf[it - 2] = (t1 - t0) * 1e3;
                tb[it - 2] = (t2 - t1) * 1e3;
            }
        }
        qsort(tf, reps, sizeof(double), cmp_double);
        qsort(tb, reps, sizeof(double), cmp_double);
        double f = tf[0], b = tb[0];
        tot_f += f;
        tot_b += b;
        printf("%-16s fwd %8.2f ms  bwd %8.2f ms  total %8.2f ms\n", s->name, f, b, f + b);
        be->free(x); be->free(w); be->free(gy); be->free(y); be->free(gx); be->free(gw);
        be->free(ws);
    }
    printf("%-16s fwd %8.2f ms  bwd %8.2f ms  total %8.2f ms\n", "sum", tot_f, tot_b, tot_f + tot_b);
    free(tf);
    free(tb);
    return 0;
}
