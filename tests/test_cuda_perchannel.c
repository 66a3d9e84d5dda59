/* test_cuda_perchannel.c: Criterion suite "cuda_perchannel": the CUDA backend's per-channel weight
   quantizers (quant.h channels > 1; kernels/cuda/fakequant.cu, one block per output channel)
   against the CPU backend (the oracle, itself checked against PyTorch in suite perchannel):
   forward, backward (accumulating gx and the per-channel parameter gradients), DoReFa's
   per-channel max|tanh| in scratch, the scaled pair, for every quantizer with weights at 2 and 4
   bits and channel counts / sizes that do not fit a block evenly; and a per-channel resnet20
   student with equal channels against the per-tensor one (pc_equiv.h). Without a GPU every test SKIPS (under cuemu
   they run on the emulated device). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sqakd/model.h"
#include "cuda_hooks.h"
#include "util_check.h"
#include "util_fixtures.h"

static void setup(void) { (void)sqt_cuda_configure(); }

TestSuite(cuda_perchannel, .init = setup, .timeout = 600);

static const sq_backend *gpu(void)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    return g;
}

static float *dev(const sq_backend *g, const float *h, size_t n)
{
    float *d = g->alloc(n * sizeof(float));
    cr_assert(d);
    if (h) g->copy_h2d(d, h, n * sizeof(float));
    else g->memset0(d, n * sizeof(float));
    return d;
}

static float *back(const sq_backend *g, const float *d, size_t n)
{
    float *h = malloc(n * sizeof(float));
    g->sync();
    g->copy_d2h(h, d, n * sizeof(float));
    return h;
}

static unsigned lcg(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static float urand(unsigned *s) { return (float)(lcg(s) / 16777216.0); }

/* Tolerances: y equal (the same quant_math.h formulas and correctly rounded division on both
   sides) except DoReFa weights, where device tanhf may move an element on a rounding boundary by a
   level (at most 1 in 1000 elements); gx 1e-6 + 1e-5 rel; the per-channel parameter gradients,
   sums of one channel's terms in double in another order, 1e-6 of sum |gy| of the channel (times
   the largest per-element factor, bounded here by 4) + 1e-5 rel; M 3e-7 rel. */
Test(cuda_perchannel, kernels_match_the_cpu)
{
    const sq_backend *g = gpu(), *cpu = sq_backend_cpu();
    const sq_quant_kind kinds[4] = {SQ_QUANT_EWGS, SQ_QUANT_PACT, SQ_QUANT_LSQ, SQ_QUANT_DOREFA};
    const int shapes[4][2] = {{3, 50}, {16, 577}, {5, 1}, {70, 300}};
    unsigned seed = 2027u;
    for (int ki = 0; ki < 4; ki++)
        for (int bits = 2; bits <= 4; bits += 2)
            for (int si = 0; si < 4; si++) {
                const int C = shapes[si][0], K = shapes[si][1];
                const size_t n = (size_t)C * K;
                sq_quant_cfg cfg;
                memset(&cfg, 0, sizeof cfg);
                cfg.kind = kinds[ki];
                cfg.role = SQ_QROLE_WEIGHT;
                cfg.bits = bits;
                cfg.is_signed = 1;
                cfg.delta = 0.2f;
                cfg.grad_numel = (float)K;
                cfg.channels = C;
                float *w = malloc(n * sizeof(float)), *gy = malloc(n * sizeof(float)),
                      *gx0 = malloc(n * sizeof(float)), *qp = malloc(2 * C * sizeof(float)),
                      *gq0 = malloc(2 * C * sizeof(float)), *y = malloc(n * sizeof(float)),
                      *gx = malloc(n * sizeof(float)), *gq = malloc(2 * C * sizeof(float)),
                      *sc = calloc((size_t)SQ_QUANT_SCRATCH * C, sizeof(float));
                for (int c = 0; c < C; c++) {
                    const float s = 0.05f + 0.3f * (float)(c % 7);
                    for (int i = 0; i < K; i++) w[(size_t)c * K + i] = (2 * urand(&seed) - 1) * 1.5f * s;
                    qp[c] = kinds[ki] == SQ_QUANT_LSQ ? s / (float)(1 << (bits - 1)) : -1.1f * s;
                    qp[C + c] = 0.9f * s;
                    gq0[c] = 0.25f;
                    gq0[C + c] = -0.5f;
                }
                for (size_t i = 0; i < n; i++) {
                    gy[i] = 2 * urand(&seed) - 1;
                    gx0[i] = urand(&seed) - 0.5f;
                }
                memcpy(gx, gx0, n * sizeof(float));
                memcpy(gq, gq0, 2 * C * sizeof(float));
                cpu->fakequant_fwd(&cfg, n, w, qp, y, sc);
                cpu->fakequant_bwd(&cfg, n, w, qp, gy, gx, gq, sc);
                float *dw = dev(g, w, n), *dgy = dev(g, gy, n), *dqp = dev(g, qp, 2 * C), *dy = dev(g, NULL, n),
                      *dgx = dev(g, gx0, n), *dgq = dev(g, gq0, 2 * C),
                      *dsc = dev(g, NULL, (size_t)SQ_QUANT_SCRATCH * C);
                g->fakequant_fwd(&cfg, n, dw, dqp, dy, dsc);
                g->fakequant_bwd(&cfg, n, dw, dqp, dgy, dgx, dgq, dsc);
                float *ry = back(g, dy, n), *rgx = back(g, dgx, n), *rgq = back(g, dgq, 2 * C),
                      *rsc = back(g, dsc, (size_t)SQ_QUANT_SCRATCH * C);
                const char *kn = sq_quant_kind_name(cfg.kind);
                const int dw_kind = kinds[ki] == SQ_QUANT_PACT || kinds[ki] == SQ_QUANT_DOREFA;
                size_t ymiss = 0;
                for (size_t i = 0; i < n; i++) {
                    if (ry[i] != y[i]) {
                        ymiss++;
                        cr_assert(dw_kind, "%s bits %d C %d K %d: y[%zu] %.9g, cpu %.9g", kn, bits, C, K, i, ry[i], y[i]);
                        continue;
                    }
                    cr_assert(fabsf(rgx[i] - gx[i]) <= 1e-6f + 1e-5f * fabsf(gx[i]),
                              "%s bits %d C %d K %d: gx[%zu] %.9g, cpu %.9g", kn, bits, C, K, i, rgx[i], gx[i]);
                }
                cr_assert(ymiss * 1000 <= n + 999, "%s bits %d C %d K %d: %zu levels differ", kn, bits, C, K, ymiss);
                const int np = sq_quant_nparams(&cfg);
                for (int c = 0; c < C; c++) {
                    double sg = 0;
                    for (int i = 0; i < K; i++) sg += fabs(gy[(size_t)c * K + i]);
                    for (int j = 0; j < 2; j++) {
                        const float a = rgq[j * C + c], b = gq[j * C + c];
                        if (j >= np) {
                            cr_assert_eq(a, gq0[j * C + c], "%s: gqp[%d] of channel %d touched", kn, j, c);
                            continue;
                        }
                        cr_assert(fabs(a - b) <= 4e-6 * sg + 1e-5 * fabs(b) + 1e-7,
                                  "%s bits %d C %d K %d: channel %d gqp[%d] %.9g, cpu %.9g", kn, bits, C, K, c, j, a, b);
                    }
                    if (dw_kind)
                        cr_assert(fabsf(rsc[c * SQ_QUANT_SCRATCH] - sc[c * SQ_QUANT_SCRATCH]) <=
                                      3e-7f * sc[c * SQ_QUANT_SCRATCH],
                                  "%s: channel %d M %.9g, cpu %.9g", kn, c, rsc[c * SQ_QUANT_SCRATCH],
                                  sc[c * SQ_QUANT_SCRATCH]);
                }
                /* the scaled pair equals the unfused ops on the same device */
                const float s = -0.7f;
                float *ds = dev(g, &s, 1), *dys = dev(g, NULL, n), *dy2 = dev(g, NULL, n), *dgys = dev(g, gy, n),
                      *dgy2 = dev(g, NULL, n), *dgx2 = dev(g, gx0, n), *dgq2 = dev(g, gq0, 2 * C), *dgs = dev(g, NULL, 1);
                if (g->fakequant_scaled_fwd) {
                    g->fakequant_scaled_fwd(&cfg, n, dw, dqp, ds, dy2, dys, dsc);
                    g->fakequant_scaled_bwd(&cfg, n, dw, dqp, ds, dy2, dgys, dgy2, dgx2, dgq2, dgs, dsc);
                    float *ry2 = back(g, dy2, n), *rys = back(g, dys, n), *rgx2 = back(g, dgx2, n);
                    cr_assert(memcmp(ry2, ry, n * sizeof(float)) == 0, "%s: scaled y differs", kn);
                    for (size_t i = 0; i < n; i++)
                        cr_assert(rys[i] == 0.7f * ry[i], "%s: ys[%zu] %.9g, |s| y %.9g", kn, i, rys[i], 0.7f * ry[i]);
                    /* gy = |s| gys: gx is the backward from 0.7 gy, not gy */
                    float *gxs = malloc(n * sizeof(float)), *gys7 = malloc(n * sizeof(float)),
                          *gqs = malloc(2 * C * sizeof(float));
                    memcpy(gxs, gx0, n * sizeof(float));
                    memcpy(gqs, gq0, 2 * C * sizeof(float));
                    for (size_t i = 0; i < n; i++) gys7[i] = 0.7f * gy[i];
                    cpu->fakequant_bwd(&cfg, n, w, qp, gys7, gxs, gqs, sc);
                    for (size_t i = 0; i < n; i++)
                        if (ry[i] == y[i])
                            cr_assert(fabsf(rgx2[i] - gxs[i]) <= 1e-6f + 1e-5f * fabsf(gxs[i]),
                                      "%s: scaled gx[%zu] %.9g, cpu %.9g", kn, i, rgx2[i], gxs[i]);
                    free(ry2); free(rys); free(rgx2); free(gxs); free(gys7); free(gqs);
                }
                g->free(ds); g->free(dys); g->free(dy2); g->free(dgys); g->free(dgy2); g->free(dgx2);
                g->free(dgq2); g->free(dgs);
                g->free(dw); g->free(dgy); g->free(dqp); g->free(dy); g->free(dgx); g->free(dgq); g->free(dsc);
                free(ry); free(rgx); free(rgq); free(rsc);
                free(w); free(gy); free(gx0); free(qp); free(gq0); free(y); free(gx); free(gq); free(sc);
            }
}

#include "pc_equiv.h"

/* A per-channel resnet20 student whose channels all hold the per-tensor student's parameters
   computes what the per-tensor one does (pc_equiv.h): same logits, each layer's per-channel
   gradients add up to the per-tensor gradient. */
Test(cuda_perchannel, resnet20_per_channel_equals_per_tensor_with_equal_channels)
{
    sqt_pc_equiv(gpu());
}
