/* bench_conv_be.c: `lab_bench conv`: the fp32 convolutions of a resnet20 step (CIFAR shapes at
   --batch), forward, backward data and backward filter, through the shipped legacy calls and
   through cuDNN's backend API (conv_be_lab.c), alternated: host time to issue one call (the
   loop of --iters calls before the sync, divided) and time per call including the device's
   work. The backend API lost on both (docs/gpu-validation.md, run 4: 82 us per
   cudnnBackendExecute against 65 - 133 us per legacy call, and no faster step). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../lab_bench.h"
#include "conv_be_lab.h"

/* n is filled in: c, h, w, k, r, s, stride, pad */
static const int g_shapes[][8] = {
    {3, 32, 32, 16, 3, 3, 1, 1},  {16, 32, 32, 16, 3, 3, 1, 1}, {16, 32, 32, 32, 3, 3, 2, 1},
    {32, 16, 16, 32, 3, 3, 1, 1}, {32, 16, 16, 64, 3, 3, 2, 1}, {64, 8, 8, 64, 3, 3, 1, 1},
};

int lab_bench_conv(int argc, char **argv)
{
    int batch = 256, iters = 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else {
            fprintf(stderr, "lab_bench conv: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (batch < 1 || iters < 1) {
        fprintf(stderr, "lab_bench conv: bad --batch or --iters\n");
        return 2;
    }
    const sq_backend *be = lab_conv_be_backend();
    if (!be) {
        fprintf(stderr, "lab_bench conv: %s\n", sq_last_error());
        return 1;
    }
    sq_device_info info;
    be->device_info(&info);
    printf("lab_bench conv on %s, resnet20 shapes at batch %d, %d calls each%s\n", info.name, batch,
           iters, !strncmp(info.name, "cuemu", 5) ? ": emulated, the figures mean nothing" : "");
    printf("%-34s %-8s %-15s %12s %12s\n", "shape", "api", "direction", "host us/call", "us/call");
    int rc = 0;
    for (size_t si = 0; si < sizeof g_shapes / sizeof g_shapes[0] && rc == 0; si++) {
        const int *p = g_shapes[si];
        sq_conv_shape cs;
        if (sq_conv_shape_init(&cs, batch, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], 1) != SQ_OK)
            return 1;
        size_t nx = (size_t)cs.n * cs.c * cs.h * cs.w, nw = (size_t)cs.k * cs.c * cs.r * cs.s,
               ny = (size_t)cs.n * cs.k * cs.oh * cs.ow, wsb = be->conv_ws_bytes(&cs);
        float *x = be->alloc(nx * 4), *gx = be->alloc(nx * 4), *w = be->alloc(nw * 4),
              *gw = be->alloc(nw * 4), *y = be->alloc(ny * 4);
        void *ws = wsb ? be->alloc(wsb) : NULL;
        if (!x || !gx || !w || !gw || !y || (wsb && !ws)) {
            fprintf(stderr, "lab_bench conv: batch %d does not fit: %s\n", batch, sq_last_error());
            rc = 1;
        }
        char shape[48];
        snprintf(shape, sizeof shape, "%dx%dx%dx%d -> %d, %dx%d s%d", cs.n, cs.c, cs.h, cs.w, cs.k,
                 cs.r, cs.s, cs.stride);
        for (int dir = 0; dir < 3 && rc == 0; dir++)
            for (int api = 1; api >= 0; api--) {
                lab_conv_be_enable(api);
                double host = 0.0, t0 = 0.0;
                for (int rep = 0; rep < 2; rep++) { /* the first pass warms up (plans, packs) */
                    be->sync();
                    t0 = sq_now();
                    for (int it = 0; it < iters; it++) {
                        if (dir == 0) be->conv2d_fwd(&cs, x, w, NULL, y, ws);
                        else if (dir == 1) be->conv2d_bwd_set(&cs, x, w, y, gx, NULL, NULL, ws);
                        else be->conv2d_bwd(&cs, x, w, y, NULL, gw, NULL, ws);
                    }
                    host = sq_now() - t0;
                    be->sync();
                }
                double total = sq_now() - t0;
                static const char *dirs[3] = {"forward", "backward data", "backward filter"};
                printf("%-34s %-8s %-15s %12.1f %12.1f\n", shape, api ? "backend" : "legacy",
                       dirs[dir], 1e6 * host / iters, 1e6 * total / iters);
            }
        lab_conv_be_enable(1);
        float *bufs[5] = {x, gx, w, gw, y};
        for (int b = 0; b < 5; b++)
            if (bufs[b]) be->free(bufs[b]);
        if (ws) be->free(ws);
        if (be->status() != SQ_OK) {
            fprintf(stderr, "lab_bench conv: device error: %s\n", sq_last_error());
            rc = 1;
        }
    }
    printf("calls handed back to the legacy API: %ld\n", lab_be_fallback_calls());
    return rc;
}
