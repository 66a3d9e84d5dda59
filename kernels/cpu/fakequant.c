/* fakequant.c: CPU fake-quantization ops (forward, backward) for every quantizer kind and role, and
   the EWGS output scale y = |s| z. The per-element math is in sqakd/quant_math.h (shared with CUDA).
   Parameter-gradient sums are deterministic: the tensor is cut into a fixed number of static
   chunks (independent of the thread count), each chunk is summed in order in double, and the
   chunk partials are added in chunk order. */
#include <string.h>
#include "cpu_ops.h"
#include "sqakd/quant_math.h"

#define SQ_FQ_CHUNKS 64     /* fixed reduction chunks: results do not depend on the thread count */
#define SQ_FQ_SERIAL 16384  /* below this many elements, stay on one thread */

/* y[i] = EXPR for every i, OpenMP + SIMD */
#define FQ_FWD(EXPR)                                                                              \
    do {                                                                                          \
        _Pragma("omp parallel for simd schedule(dynamic, 16384) if (n > SQ_FQ_SERIAL)")                   \
        for (size_t i = 0; i < n; i++) yr[i] = (EXPR);                                           \
    } while (0)

/* One backward chunk function per op: gx[i] += EXPR.gx over [b, e) and the sums of the
   parameter-gradient terms: in float over runs of SQ_FQ_RUN elements (8-wide SIMD sums), the
   runs added up in double. A plain function with restrict parameters (not a loop inside the
   OpenMP region, where the pointers lose restrict) so that the loop vectorises. */
#define SQ_FQ_RUN 512
#define FQ_BWD_FN(NAME, EXPR)                                                                      \
    static void NAME(const sq_qm_ctx *k, size_t b, size_t e, const float *restrict xr,             \
                     const float *restrict gr, float *restrict gxr, double *o0, double *o1)        \
    {                                                                                              \
        const float p0 = k->p0, p1 = k->p1, qn = k->qn, qpos = k->qp, mx = k->maxabs;             \
        const float dl = k->delta, gsc = k->gscale;                                                \
        const int lv = k->levels;                                                                  \
        (void)p0; (void)p1; (void)qn; (void)qpos; (void)mx; (void)dl; (void)gsc; (void)lv;         \
        double s0 = 0.0, s1 = 0.0;                                                                 \
        for (size_t r0 = b; r0 < e; r0 += SQ_FQ_RUN) {                                             \
            const size_t r1 = e - r0 < SQ_FQ_RUN ? e : r0 + SQ_FQ_RUN;                            \
            float f0 = 0.0f, f1 = 0.0f;                                                            \
            if (gxr) {                                                                             \
                _Pragma("omp simd reduction(+ : f0, f1)")                                          \
                for (size_t i = r0; i < r1; i++) {                                                 \
                    sq_qm_grad g = (EXPR);                                                         \
                    gxr[i] += g.gx;                                                                \
                    f0 += g.gp0;                                                                   \
                    f1 += g.gp1;                                                                   \
                }                                                                                  \
            } else {                                                                               \
                _Pragma("omp simd reduction(+ : f0, f1)")                                          \
                for (size_t i = r0; i < r1; i++) {                                                 \
                    sq_qm_grad g = (EXPR);                                                         \
                    f0 += g.gp0;                                                                   \
                    f1 += g.gp1;                                                                   \
                }                                                                                  \
            }                                                                                      \
            s0 += f0;                                                                              \
            s1 += f1;                                                                              \
        }                                                                                          \
        *o0 = s0;                                                                                  \
        *o1 = s1;                                                                                  \
    }

FQ_BWD_FN(bwd_ewgs_w, sq_qm_ewgs_w_bwd(xr[i], p0, p1, lv, dl, gr[i]))
FQ_BWD_FN(bwd_ewgs_a, sq_qm_ewgs_a_bwd(xr[i], p0, p1, lv, dl, gr[i]))
FQ_BWD_FN(bwd_pact_a, sq_qm_pact_a_bwd(xr[i], p0, lv, dl, gr[i]))
FQ_BWD_FN(bwd_lsq, sq_qm_lsq_bwd(xr[i], p0, qn, qpos, dl, gsc, gr[i]))
FQ_BWD_FN(bwd_dorefa_w, sq_qm_grad_make(sq_qm_dorefa_w_bwd(xr[i], mx, lv, dl, gr[i]), 0.0f, 0.0f))
FQ_BWD_FN(bwd_dorefa_a, sq_qm_grad_make(sq_qm_dorefa_a_bwd(xr[i], lv, dl, gr[i]), 0.0f, 0.0f))
FQ_BWD_FN(bwd_generic, sq_qm_bwd(k, xr[i], gr[i]))

typedef void (*fq_bwd_fn)(const sq_qm_ctx *, size_t, size_t, const float *, const float *, float *, double *,
                          double *);

static void fq_chunk(size_t n, int k, size_t *b, size_t *e)
{
    *b = n * (size_t)k / SQ_FQ_CHUNKS;
    *e = n * (size_t)(k + 1) / SQ_FQ_CHUNKS;
}

/* max |tanh(x)| over the tensor (order-independent, hence deterministic) */
static float fq_maxabs_tanh(size_t n, const float *x)
{
    float m = 0.0f;
#pragma omp parallel for SQ_SCHED_ELEMS reduction(max : m) if (n > SQ_FQ_SERIAL)
    for (size_t i = 0; i < n; i++) {
        float t = fabsf(tanhf(x[i]));
        if (t > m) m = t;
    }
    return m;
}

static void fq_load_params(sq_qm_ctx *k, const float *qp)
{
    int np = sq_qm_nparams(k);
    if (np > 0) k->p0 = qp[0];
    if (np > 1) k->p1 = qp[1];
}

/* Per-channel weights (cfg->channels = C > 1, quant.h): each of the C contiguous blocks is a
   tensor of its own, run through the per-tensor op with its channel's parameters (gathered from
   qp[j * C + c]) and its own scratch slots; the channels are independent, so the parameter
   gradients are per-channel sums, deterministic for any thread count. */
static int fq_pc_split(const sq_quant_cfg *cfg, size_t n, sq_quant_cfg *one, size_t *blk)
{
    const int C = cfg->channels;
    *one = *cfg;
    one->channels = 0;
    *blk = n / (size_t)C;
    return C;
}

static void fq_pc_fwd(const sq_quant_cfg *cfg, size_t n, const float *x, const float *qp,
                      float *y, float *scratch)
{
    sq_quant_cfg one;
    size_t blk;
    const int C = fq_pc_split(cfg, n, &one, &blk), np = sq_quant_nparams(cfg);
#pragma omp parallel for SQ_SCHED_ITEMS if (n > SQ_FQ_SERIAL)
    for (int c = 0; c < C; c++) {
        float p[SQ_QUANT_MAX_PARAMS] = {0};
        for (int j = 0; j < np; j++) p[j] = qp[j * C + c];
        const size_t o = (size_t)c * blk;
        sq_cpu_fakequant_fwd(&one, blk, x + o, p, y + o,
                             scratch ? scratch + (size_t)c * SQ_QUANT_SCRATCH : NULL);
    }
}

static void fq_pc_bwd(const sq_quant_cfg *cfg, size_t n, const float *x, const float *qp,
                      const float *gy, float *gx, float *gqp, float *scratch)
{
    sq_quant_cfg one;
    size_t blk;
    const int C = fq_pc_split(cfg, n, &one, &blk), np = sq_quant_nparams(cfg);
#pragma omp parallel for SQ_SCHED_ITEMS if (n > SQ_FQ_SERIAL)
    for (int c = 0; c < C; c++) {
        float p[SQ_QUANT_MAX_PARAMS] = {0}, g[SQ_QUANT_MAX_PARAMS] = {0};
        for (int j = 0; j < np; j++) p[j] = qp[j * C + c];
        const size_t o = (size_t)c * blk;
        sq_cpu_fakequant_bwd(&one, blk, x + o, p, gy + o, gx ? gx + o : NULL, gqp ? g : NULL,
                             scratch ? scratch + (size_t)c * SQ_QUANT_SCRATCH : NULL);
        if (gqp)
            for (int j = 0; j < np; j++) gqp[j * C + c] += g[j];
    }
}

void sq_cpu_fakequant_fwd(const sq_quant_cfg *cfg, size_t n, const float *x, const float *qp,
                          float *y, float *scratch)
{
    if (cfg->channels > 1 && cfg->kind != SQ_QUANT_NONE) {
        fq_pc_fwd(cfg, n, x, qp, y, scratch);
        return;
    }
    sq_qm_ctx k;
    sq_qm_ctx_init(&k, cfg, n);
    if (k.op == SQ_QM_IDENTITY) {
        if (y != x) memcpy(y, x, n * sizeof *y);
        return;
    }
    fq_load_params(&k, qp);
    if (sq_qm_needs_maxabs(&k)) {
        k.maxabs = fq_maxabs_tanh(n, x);
        if (scratch) scratch[0] = k.maxabs;
    }
    const float *restrict xr = x;
    float *restrict yr = y;
    const float p0 = k.p0, p1 = k.p1, qn = k.qn, qpos = k.qp, mx = k.maxabs;
    const int lv = k.levels;
    /* one loop per op so the element function inlines without the dispatcher's switch and the
       loop vectorises */
    switch (k.op) {
    case SQ_QM_EWGS_W: FQ_FWD(sq_qm_ewgs_w_fwd(xr[i], p0, p1, lv)); break;
    case SQ_QM_EWGS_A: FQ_FWD(sq_qm_ewgs_a_fwd(xr[i], p0, p1, lv)); break;
    case SQ_QM_PACT_A: FQ_FWD(sq_qm_pact_a_fwd(xr[i], p0, lv)); break;
    case SQ_QM_LSQ: FQ_FWD(sq_qm_lsq_fwd(xr[i], p0, qn, qpos)); break;
    case SQ_QM_DOREFA_W: FQ_FWD(sq_qm_dorefa_w_fwd(xr[i], mx, lv)); break;
    case SQ_QM_DOREFA_A: FQ_FWD(sq_qm_dorefa_a_fwd(xr[i], lv)); break;
    default: FQ_FWD(sq_qm_fwd(&k, xr[i])); break;
    }
}

void sq_cpu_fakequant_bwd(const sq_quant_cfg *cfg, size_t n, const float *x, const float *qp,
                          const float *gy, float *gx, float *gqp, float *scratch)
{
    if (cfg->channels > 1 && cfg->kind != SQ_QUANT_NONE) {
        fq_pc_bwd(cfg, n, x, qp, gy, gx, gqp, scratch);
        return;
    }
    sq_qm_ctx k;
    sq_qm_ctx_init(&k, cfg, n);
    if (k.op == SQ_QM_IDENTITY) {
        if (gx)
            for (size_t i = 0; i < n; i++) gx[i] += gy[i];
        return;
    }
    fq_load_params(&k, qp);
    if (sq_qm_needs_maxabs(&k)) k.maxabs = scratch ? scratch[0] : fq_maxabs_tanh(n, x);
    double part[SQ_FQ_CHUNKS][2];
    fq_bwd_fn fn;
    switch (k.op) {
    case SQ_QM_EWGS_W: fn = bwd_ewgs_w; break;
    case SQ_QM_EWGS_A: fn = bwd_ewgs_a; break;
    case SQ_QM_PACT_A: fn = bwd_pact_a; break;
    case SQ_QM_LSQ: fn = bwd_lsq; break;
    case SQ_QM_DOREFA_W: fn = bwd_dorefa_w; break;
    case SQ_QM_DOREFA_A: fn = bwd_dorefa_a; break;
    default: fn = bwd_generic; break;
    }
#pragma omp parallel for SQ_SCHED_ITEMS if (n > SQ_FQ_SERIAL)
    for (int c = 0; c < SQ_FQ_CHUNKS; c++) {
        size_t b, e;
        fq_chunk(n, c, &b, &e);
        fn(&k, b, e, x, gy, gx, &part[c][0], &part[c][1]);
    }
    int np = sq_qm_nparams(&k);
    if (!gqp || np == 0) return;
    double t0 = 0.0, t1 = 0.0;
    for (int c = 0; c < SQ_FQ_CHUNKS; c++) {
        t0 += part[c][0];
        t1 += part[c][1];
    }
    gqp[0] += (float)t0;
    if (np > 1) gqp[1] += (float)t1;
}

void sq_cpu_absscale_fwd(size_t n, const float *s, const float *z, float *y)
{
    float a = fabsf(s[0]);
#pragma omp parallel for SQ_SCHED_ELEMS if (n > SQ_FQ_SERIAL)
    for (size_t i = 0; i < n; i++) y[i] = a * z[i];
}

static double absscale_chunk(size_t b, size_t e, float a, const float *restrict z, const float *restrict gy,
                             float *restrict gz)
{
    double acc = 0.0;
    if (gz) {
#pragma omp simd reduction(+ : acc)
        for (size_t i = b; i < e; i++) {
            gz[i] += a * gy[i];
            acc += (double)gy[i] * (double)z[i];
        }
    } else {
#pragma omp simd reduction(+ : acc)
        for (size_t i = b; i < e; i++) acc += (double)gy[i] * (double)z[i];
    }
    return acc;
}

void sq_cpu_absscale_bwd(size_t n, const float *s, const float *z, const float *gy, float *gz,
                         float *gs)
{
    float a = fabsf(s[0]);
    double part[SQ_FQ_CHUNKS];
#pragma omp parallel for SQ_SCHED_ITEMS if (n > SQ_FQ_SERIAL)
    for (int c = 0; c < SQ_FQ_CHUNKS; c++) {
        size_t b, e;
        fq_chunk(n, c, &b, &e);
        part[c] = absscale_chunk(b, e, a, z, gy, gz);
    }
    if (!gs) return;
    double t = 0.0;
    for (int c = 0; c < SQ_FQ_CHUNKS; c++) t += part[c];
    float sg = s[0] > 0.0f ? 1.0f : (s[0] < 0.0f ? -1.0f : 0.0f);
    gs[0] += sg * (float)t;
}
