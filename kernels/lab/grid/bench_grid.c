/* bench_grid.c: `lab_bench grid`: the fake-quant forward / backward and the KL kernel on each
   launch geometry (grid_lab.h: stride, flat, auto = shipped; and a reducing-block cap with
   --reduce-blocks), alternated per size, in GB/s and % of peak memory bandwidth (bytes as
   `sqakd bench kernels` counts them: each input read once, each output written once, an
   accumulated output read and written). History: docs/gpu-validation.md, runs 3 - 5. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../lab_bench.h"
#include "grid_lab.h"
#include "sqakd/rng.h"

typedef struct fq_arg {
    const sq_backend *be;
    sq_quant_cfg cfg;
    size_t n;
    float *x, *y, *gy, *gx, *qp, *gqp, *scratch;
} fq_arg;

static void run_fwd(void *p)
{
    fq_arg *a = p;
    a->be->fakequant_fwd(&a->cfg, a->n, a->x, a->qp, a->y, a->scratch);
}

static void run_bwd(void *p)
{
    fq_arg *a = p;
    a->be->fakequant_bwd(&a->cfg, a->n, a->x, a->qp, a->gy, a->gx, a->gqp, a->scratch);
}

typedef struct kl_arg {
    const sq_backend *be;
    int n, k;
    float *zt, *zs, *loss, *g;
} kl_arg;

static void run_kl(void *p)
{
    kl_arg *a = p;
    a->be->kl_fwd_bwd(a->n, a->k, a->zt, a->zs, 4.0f, 1.0f, a->loss, a->g);
}

static float *dev_random(const sq_backend *be, size_t n, float lo, float hi, uint64_t seed)
{
    float *h = malloc(n * sizeof(float)), *d = be->alloc(n * sizeof(float));
    if (!h || !d) {
        free(h);
        if (d) be->free(d);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) h[i] = lo + (hi - lo) * sq_rand_uniform(&seed);
    be->copy_h2d(d, h, n * sizeof(float));
    free(h);
    return d;
}

int lab_bench_grid(int argc, char **argv)
{
    size_t sizes[16];
    int nsizes = lab_parse_sizes("16M,256M", sizes, 16), bits = 4;
    double min_time = 0.2;
    unsigned rb = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--sizes") && i + 1 < argc) nsizes = lab_parse_sizes(argv[++i], sizes, 16);
        else if (!strcmp(argv[i], "--bits") && i + 1 < argc) bits = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--min-time") && i + 1 < argc) min_time = atof(argv[++i]);
        else if (!strcmp(argv[i], "--reduce-blocks") && i + 1 < argc) rb = (unsigned)atoi(argv[++i]);
        else {
            fprintf(stderr, "lab_bench grid: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (nsizes <= 0 || bits < 1 || bits > 8) {
        fprintf(stderr, "lab_bench grid: bad --sizes or --bits\n");
        return 2;
    }
    const sq_backend *be = lab_grid_backend();
    if (!be) {
        fprintf(stderr, "lab_bench grid: %s\n", sq_last_error());
        return 1;
    }
    sq_device_info info;
    be->device_info(&info);
    printf("lab_bench grid on %s (%d SMs, peak %.1f GB/s)%s\n", info.name, info.multiprocessors,
           info.peak_gbps, !strncmp(info.name, "cuemu", 5) ? ": emulated, the figures mean nothing" : "");
    struct { int mode; unsigned rb; const char *name; } var[4] = {
        {LAB_GRID_STRIDE, 0, "stride"}, {LAB_GRID_FLAT, 0, "flat"}, {LAB_GRID_AUTO, 0, "auto (shipped)"},
        {LAB_GRID_AUTO, rb, "reduce-blocks"}};
    const int nvar = rb ? 4 : 3;
    static const sq_quant_kind kinds[3] = {SQ_QUANT_EWGS, SQ_QUANT_PACT, SQ_QUANT_LSQ};
    int rc = 0;
    for (int si = 0; si < nsizes && rc == 0; si++) {
        const size_t n = sizes[si];
        float *x = dev_random(be, n, -1.0f, 2.0f, 1), *gy = dev_random(be, n, -1.0f, 1.0f, 2),
              *y = be->alloc(n * sizeof(float)), *gx = be->alloc(n * sizeof(float)),
              *qp = be->alloc(2 * sizeof(float)), *gqp = be->alloc(2 * sizeof(float)),
              *scr = be->alloc(SQ_QUANT_SCRATCH * sizeof(float));
        if (!x || !gy || !y || !gx || !qp || !gqp || !scr) {
            fprintf(stderr, "lab_bench grid: %zu elements do not fit: %s\n", n, sq_last_error());
            rc = 1;
        }
        for (int ki = 0; ki < 3 && rc == 0; ki++) {
            const float hq[2] = {kinds[ki] == SQ_QUANT_EWGS ? 0.0f : kinds[ki] == SQ_QUANT_PACT ? 1.5f : 0.1f, 1.5f};
            be->copy_h2d(qp, hq, sizeof hq);
            fq_arg a = {be, {kinds[ki], SQ_QROLE_ACT, bits, 0, 0.0f, 0.0f, 0}, n, x, y, gy, gx, qp, gqp, scr};
            for (int v = 0; v < nvar; v++) {
                lab_grid_select(var[v].mode, var[v].rb);
                char op[64];
                snprintf(op, sizeof op, "fakequant_fwd %s a%d", sq_quant_kind_name(kinds[ki]), bits);
                lab_report(op, var[v].name, n, lab_time(be, min_time, run_fwd, &a), 8.0 * n, info.peak_gbps);
                snprintf(op, sizeof op, "fakequant_bwd %s a%d", sq_quant_kind_name(kinds[ki]), bits);
                lab_report(op, var[v].name, n, lab_time(be, min_time, run_bwd, &a), 16.0 * n, info.peak_gbps);
            }
        }
        static const int ks[3] = {10, 100, 1000};
        for (int j = 0; j < 3 && rc == 0; j++) {
            kl_arg a = {be, (int)(n / (size_t)ks[j]), ks[j], x, gy, qp, gx};
            if (a.n < 1) continue;
            const size_t m = (size_t)a.n * ks[j];
            for (int v = 0; v < nvar; v++) {
                lab_grid_select(var[v].mode, var[v].rb);
                char op[64];
                snprintf(op, sizeof op, "kl K=%d", ks[j]);
                lab_report(op, var[v].name, m, lab_time(be, min_time, run_kl, &a), 12.0 * m, info.peak_gbps);
            }
        }
        lab_grid_select(LAB_GRID_AUTO, 0);
        float *bufs[7] = {x, gy, y, gx, qp, gqp, scr};
        for (int b = 0; b < 7; b++)
            if (bufs[b]) be->free(bufs[b]);
        if (be->status() != SQ_OK) {
            fprintf(stderr, "lab_bench grid: device error: %s\n", sq_last_error());
            rc = 1;
        }
    }
    return rc;
}
