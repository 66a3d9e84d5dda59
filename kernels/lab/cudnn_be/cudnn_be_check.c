/* cudnn_be_check.c: the self-check of the backend-API convolutions (cudnn_be.c). Before a plan
   is used, each variant runs once on scratch tensors of the plan's shape, filled with
   pseudo-random values, next to the legacy call with the legacy plan's algorithm; the two
   outputs must agree (1e-4 of the largest value, 2e-2 with TF32). Beta-0 outputs start as NaN,
   so a plan that reads them fails; beta-1 outputs start from the same values. When the scratch
   tensors do not fit in a quarter of the free memory, the plan is used only if an earlier plan
   of this process passed its check. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "cudnn_be_int.h"
#include "sqakd/rng.h"

static int g_verified; /* plans that passed the self-check in this process */

typedef struct check_bufs {
    float *x, *w, *y, *out, *ws;
    size_t nx, nw, ny, nout, ws_bytes;
    float *h_in, *h_ref, *h_got; /* host: initial output, legacy result, backend result */
} check_bufs;

static void check_free(check_bufs *c)
{
    cudaFree(c->x);
    cudaFree(c->w);
    cudaFree(c->y);
    cudaFree(c->out);
    cudaFree(c->ws);
    free(c->h_in);
    free(c->h_ref);
    free(c->h_got);
    memset(c, 0, sizeof *c);
}

/* uniform in [-1, 1) */
static float rand_pm1(uint64_t *seed) { return 2.0f * sq_rand_uniform(seed) - 1.0f; }

static int fill_random(float *d, float *h, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) h[i] = rand_pm1(&seed);
    return cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess;
}

/* 1 with every buffer allocated and filled; 0 (no error left behind) when they do not fit */
static int check_alloc(check_bufs *c, const sq_conv_shape *cs, size_t ws_bytes)
{
    memset(c, 0, sizeof *c);
    c->nx = (size_t)cs->n * cs->c * cs->h * cs->w;
    c->nw = (size_t)cs->k * (cs->c / cs->groups) * cs->r * cs->s;
    c->ny = (size_t)cs->n * cs->k * cs->oh * cs->ow;
    c->nout = c->nx > c->ny ? c->nx : c->ny;
    if (c->nw > c->nout) c->nout = c->nw;
    c->ws_bytes = ws_bytes;
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    size_t need = (c->nx + c->nw + c->ny + c->nout) * sizeof(float) + ws_bytes;
    if (need >= free_b / 4) return 0;
    int ok = cudaMalloc((void **)&c->x, c->nx * sizeof(float)) == cudaSuccess &&
             cudaMalloc((void **)&c->w, c->nw * sizeof(float)) == cudaSuccess &&
             cudaMalloc((void **)&c->y, c->ny * sizeof(float)) == cudaSuccess &&
             cudaMalloc((void **)&c->out, c->nout * sizeof(float)) == cudaSuccess &&
             (!ws_bytes || cudaMalloc((void **)&c->ws, ws_bytes) == cudaSuccess);
    if (ok) {
        c->h_in = malloc(c->nout * sizeof(float));
        c->h_ref = malloc(c->nout * sizeof(float));
        c->h_got = malloc(c->nout * sizeof(float));
        ok = c->h_in && c->h_ref && c->h_got && fill_random(c->x, c->h_ref, c->nx, 11u) &&
             fill_random(c->w, c->h_ref, c->nw, 23u) && fill_random(c->y, c->h_ref, c->ny, 37u);
    }
    if (!ok) {
        cudaGetLastError();
        check_free(c);
    }
    return ok;
}

/* runs variant k by the legacy call (legacy != 0) or the backend plan into c->out, starting from
   c->h_in; 1 when it ran and the result is in dst */
static int check_run(lab_be_conv *b, const sq_cuda_conv_plan *lp, int k, int legacy,
                     check_bufs *c, size_t nout, float *dst, cudnnStatus_t *st)
{
    cudnnHandle_t h = sq_cuda_cudnn();
    const float one = 1.0f, zero = 0.0f;
    if (cudaMemcpy(c->out, c->h_in, nout * sizeof(float), cudaMemcpyHostToDevice) != cudaSuccess)
        return 0;
    if (legacy) {
        void *ws = lp->ws_bytes ? c->ws : NULL;
        if (k == LAB_BE_FWD)
            *st = cudnnConvolutionForward(h, &one, lp->xd, c->x, lp->wd, c->w, lp->cd_fwd,
                                          lp->fwd_algo, ws, lp->ws_bytes, &zero, lp->yd, c->out);
        else if (k == LAB_BE_BWD_FILTER_ACC)
            *st = cudnnConvolutionBackwardFilter(h, &one, lp->xd, c->x, lp->yd, c->y,
                                                 lp->cd_bwd_filter, lp->bwd_filter_algo, ws,
                                                 lp->ws_bytes, &one, lp->wd, c->out);
        else
            *st = cudnnConvolutionBackwardData(h, &one, lp->wd, c->w, lp->yd, c->y,
                                               lp->cd_bwd_data, lp->bwd_data_algo, ws,
                                               lp->ws_bytes, k == LAB_BE_BWD_DATA_SET ? &zero : &one,
                                               lp->xd, c->out);
    } else {
        be_variant *v = &b->v[k];
        const void *p[3] = {c->x, c->w, c->y};
        if (k == LAB_BE_FWD)
            p[2] = c->out;
        else if (k == LAB_BE_BWD_FILTER_ACC)
            p[1] = c->out;
        else
            p[0] = c->out;
        cudnnBackendDescriptor_t pack = lab_be_pack_get(v, p, v->ws ? c->ws : NULL, st);
        if (!pack) return 0;
        *st = cudnnBackendExecute(h, v->plan, pack);
        lab_be_packs_drop(v); /* the scratch pointers are freed after the check */
    }
    if (*st != CUDNN_STATUS_SUCCESS) return 0;
    if (cudaMemcpy(dst, c->out, nout * sizeof(float), cudaMemcpyDeviceToHost) != cudaSuccess)
        return 0;
    return 1;
}

/* the two results agree: both finite, |got - ref| <= tol * max|ref| elementwise */
static int agree(const float *ref, const float *got, size_t n, float tol)
{
    float mx = 0.0f;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(ref[i]) || !isfinite(got[i])) return 0;
        if (fabsf(ref[i]) > mx) mx = fabsf(ref[i]);
    }
    for (size_t i = 0; i < n; i++)
        if (fabsf(got[i] - ref[i]) > tol * mx + 1e-30f) return 0;
    return 1;
}

void lab_be_self_check(lab_be_conv *b, const sq_cuda_conv_plan *lp, int tf32)
{
    size_t ws = b->ws_bytes > lp->ws_bytes ? b->ws_bytes : lp->ws_bytes;
    check_bufs c;
    if (!check_alloc(&c, &b->cs, ws)) {
        if (!g_verified) /* nothing verified yet in this process: no unchecked plan is used */
            for (int k = 0; k < LAB_BE_VARIANTS; k++) {
                lab_be_packs_drop(&b->v[k]);
                b->v[k].usable = 0;
            }
        return;
    }
    const float tol = tf32 ? 2e-2f : 1e-4f;
    int passed = 0;
    for (int k = 0; k < LAB_BE_VARIANTS; k++) {
        if (!b->v[k].usable) continue;
        size_t nout = k == LAB_BE_FWD ? c.ny : k == LAB_BE_BWD_FILTER_ACC ? c.nw : c.nx;
        uint64_t seed = 101u + (uint64_t)k;
        if (k == LAB_BE_FWD || k == LAB_BE_BWD_DATA_SET)
            for (size_t i = 0; i < nout; i++) c.h_in[i] = NAN; /* beta 0: never read */
        else
            for (size_t i = 0; i < nout; i++)
                c.h_in[i] = rand_pm1(&seed);
        cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
        if (!check_run(b, lp, k, 1, &c, nout, c.h_ref, &st)) {
            /* the legacy call itself failed: no reference, keep the legacy path */
            cudaGetLastError();
            lab_be_variant_off(b, k, "could not be checked (the legacy call failed)", st);
            continue;
        }
        if (!check_run(b, lp, k, 0, &c, nout, c.h_got, &st)) {
            cudaGetLastError();
            lab_be_variant_off(b, k, "failed its first run", st);
            continue;
        }
        if (!agree(c.h_ref, c.h_got, nout, tol)) {
            lab_be_variant_off(b, k, "disagrees with the legacy call", CUDNN_STATUS_SUCCESS);
            continue;
        }
        passed++;
    }
    check_free(&c);
    if (passed) g_verified++;
}
