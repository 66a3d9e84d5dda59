/* test_perchannel.c: Criterion suite "perchannel": per-output-channel weight quantizers (issue 20
   item 4) on the CPU backend: PyTorch golden values (tools/gen_quant_pc_golden.py: forward,
   backward, per-channel parameter gradients and initialisation), central finite differences of
   the straight-through surrogate per channel, DoReFa's per-channel max|tanh| in scratch, and
   thread-count independence of the per-channel sums; a per-channel student of every quantizer
   (parameter shapes, initialisation per channel, KL steps, checkpoint round trip). */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../kernels/cpu/cpu_ops.h"
#include "sqakd/checkpoint.h"
#include "sqakd/quant.h"
#include "sqakd/quant_math.h"
#include "sqakd/train.h"
#include "util_check.h"
#include "util_fixtures.h"

static sq_quant_cfg pc_cfg(sq_quant_kind kind, int bits, float delta, int channels, float numel)
{
    sq_quant_cfg c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.role = SQ_QROLE_WEIGHT;
    c.bits = bits;
    c.is_signed = 1;
    c.delta = delta;
    c.grad_numel = numel;
    c.channels = channels;
    return c;
}

static int close_to(double a, double r, double atol, double rtol)
{
    return fabs(a - r) <= atol + rtol * fabs(r);
}

static unsigned lcg(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static double urand(unsigned *s) { return lcg(s) / 16777216.0; }

static int rd(FILE *f, void *p, size_t sz, size_t n) { return fread(p, sz, n, f) == n; }

/* Tolerances as the per-tensor golden test (test_quant.c golden_pytorch): y 1e-6 + 1e-6 rel, gx
   1e-6 + 1e-5 rel, gqp 1e-4 + 1e-4 rel (float32 sums over one channel in PyTorch, double here);
   the initial parameters 1e-6 + 1e-5 rel (double statistics on both sides, rounded to float). */
Test(perchannel, golden_pytorch)
{
    FILE *f = fopen("tests/data/quant_pc_golden.bin", "rb");
    cr_assert(f != NULL, "tests/data/quant_pc_golden.bin missing (run from the repository root)");
    char magic[8];
    uint32_t ver, count;
    cr_assert(rd(f, magic, 1, 8) && memcmp(magic, "SQQPCGD1", 8) == 0, "bad magic");
    cr_assert(rd(f, &ver, 4, 1) && ver == 1, "bad version");
    cr_assert(rd(f, &count, 4, 1) && count == 32, "bad count %u", count);
    for (uint32_t ci = 0; ci < count; ci++) {
        int32_t kind, bits;
        float delta;
        uint32_t C, K;
        cr_assert(rd(f, &kind, 4, 1) && rd(f, &bits, 4, 1) && rd(f, &delta, 4, 1) && rd(f, &C, 4, 1) &&
                      rd(f, &K, 4, 1),
                  "case %u: truncated header", ci);
        cr_assert(C > 1 && C <= 64 && K > 0 && K <= 4096, "case %u: C %u K %u", ci, C, K);
        const size_t n = (size_t)C * K;
        float *qp = malloc(sizeof(float) * 2 * C), *gqp_ref = malloc(sizeof(float) * 2 * C),
              *init_ref = malloc(sizeof(float) * 2 * C), *init = calloc(2 * C, sizeof(float)),
              *gqp = calloc(2 * C, sizeof(float)), *sc = malloc(sizeof(float) * SQ_QUANT_SCRATCH * C);
        float *buf = malloc(sizeof(float) * 6 * n);
        float *w = buf, *gy = buf + n, *yr = buf + 2 * n, *gwr = buf + 3 * n, *y = buf + 4 * n,
              *gw = buf + 5 * n;
        cr_assert(rd(f, qp, 4, 2 * C) && rd(f, buf, 4, 4 * n) && rd(f, gqp_ref, 4, 2 * C) &&
                      rd(f, init_ref, 4, 2 * C),
                  "case %u: truncated", ci);
        sq_quant_cfg c = pc_cfg((sq_quant_kind)kind, bits, delta, (int)C, (float)K);
        cr_assert_eq(sq_quant_cfg_check(&c), SQ_OK, "case %u: %s", ci, sq_last_error());
        sq_cpu_fakequant_fwd(&c, n, w, qp, y, sc);
        memset(gw, 0, sizeof(float) * n);
        sq_cpu_fakequant_bwd(&c, n, w, qp, gy, gw, gqp, sc);
        const char *kn = sq_quant_kind_name(c.kind);
        for (size_t i = 0; i < n; i++) {
            cr_assert(close_to(y[i], yr[i], 1e-6, 1e-6), "case %u (%s bits %d delta %g): y[%zu] %.9g ref %.9g",
                      ci, kn, bits, delta, i, y[i], yr[i]);
            cr_assert(close_to(gw[i], gwr[i], 1e-6, 1e-5),
                      "case %u (%s bits %d delta %g): gw[%zu] %.9g ref %.9g", ci, kn, bits, delta, i, gw[i],
                      gwr[i]);
        }
        const int np = sq_quant_nparams(&c);
        for (int j = 0; j < 2 * (int)C; j++)
            cr_assert(close_to(gqp[j], j < np * (int)C ? gqp_ref[j] : 0.0, 1e-4, 1e-4),
                      "case %u (%s bits %d delta %g): gqp[%d] (param %d of channel %d) %.9g ref %.9g", ci, kn,
                      bits, delta, j, j / (int)C, j % (int)C, gqp[j], gqp_ref[j]);
        sq_quant_init_weight_pc(&c, w, n, init);
        for (int j = 0; j < np * (int)C; j++)
            cr_assert(close_to(init[j], init_ref[j], 1e-6, 1e-5), "case %u (%s bits %d): init[%d] %.9g ref %.9g",
                      ci, kn, bits, j, init[j], init_ref[j]);
        free(buf);
        free(qp);
        free(gqp_ref);
        free(init_ref);
        free(init);
        free(gqp);
        free(sc);
    }
    char extra;
    cr_assert(fread(&extra, 1, 1, f) == 0, "trailing bytes after %u cases", count);
    fclose(f);
}

/* ---- finite differences of the straight-through surrogate, per channel ---- */

enum { FC = 4, FK = 40 };

typedef struct fdcase {
    sq_quant_cfg cfg;
    float qp[2 * FC];
    double maxabs[FC];
} fdcase;

static int is_dorefa_w(const sq_quant_cfg *c) { return c->kind == SQ_QUANT_PACT || c->kind == SQ_QUANT_DOREFA; }

/* pre-clip normalized value of w in channel ch under that channel's parameters th */
static double pre(const fdcase *t, int ch, double w, const double *th)
{
    const sq_quant_cfg *c = &t->cfg;
    if (c->kind == SQ_QUANT_EWGS) return (w - th[0]) / (th[1] - th[0]);
    if (c->kind == SQ_QUANT_LSQ) {
        float qn, qp;
        sq_qm_lsq_bounds(c->bits, 1, &qn, &qp);
        return (w / th[0] + qn) / (qn + qp);
    }
    return tanh(w) / (2.0 * t->maxabs[ch]) + 0.5;
}

static double clip01(double v) { return v < 0 ? 0 : (v > 1 ? 1 : v); }

/* the surrogate M(q0 + c(w, th) - c(w0, th0); th) around (w0, th0) */
static double sur(const fdcase *t, int ch, double w, const double *th, double w0, const double *th0)
{
    const sq_quant_cfg *c = &t->cfg;
    const double L1 = ldexp(1, c->bits) - 1;
    double c0 = clip01(pre(t, ch, w0, th0)), q0 = rint(c0 * L1) / L1;
    double ux = pre(t, ch, w, th), cx = is_dorefa_w(c) ? ux : clip01(ux), q = q0 + cx - c0;
    if (c->kind == SQ_QUANT_LSQ) {
        float qn, qp;
        sq_qm_lsq_bounds(c->bits, 1, &qn, &qp);
        return (q * (qn + qp) - qn) * th[0];
    }
    return 2 * q - 1;
}

/* w and every parameter of its channel +- h keep w 1e-3 from the clip edges and 1e-2 steps from
   a rounding boundary */
static int safe(const fdcase *t, int ch, double w, double h)
{
    const int np = sq_quant_nparams(&t->cfg);
    const double L1 = ldexp(1, t->cfg.bits) - 1;
    for (int k = 0; k < 1 + 2 * np + 2; k++) {
        double th[2] = {t->qp[ch], np > 1 ? t->qp[FC + ch] : 0}, x = w;
        if (k >= 1 && k <= 2 * np) th[(k - 1) / 2] += ((k - 1) % 2 ? -h : h);
        if (k == 2 * np + 1) x += h;
        if (k == 2 * np + 2) x -= h;
        double u = pre(t, ch, x, th);
        if (!is_dorefa_w(&t->cfg) && (fabs(u) < 1e-3 || fabs(u - 1) < 1e-3)) return 0;
        double v = clip01(u) * L1;
        if (fabs(v - floor(v) - 0.5) < 1e-2) return 0;
    }
    return 1;
}

/* Backward (delta = 0) vs central differences of the surrogate for every weight and every
   parameter of every channel, channels of different scales. atol 2e-4, rtol 1e-3 as the
   per-tensor test (quant/backward_vs_fd_surrogate). */
Test(perchannel, backward_vs_fd_surrogate)
{
    const sq_quant_kind kinds[3] = {SQ_QUANT_EWGS, SQ_QUANT_LSQ, SQ_QUANT_DOREFA};
    const int bitsv[3] = {1, 2, 4};
    const double h = 1e-4, scale[FC] = {0.05, 0.3, 1.0, 2.0};
    float w[FC * FK], gy[FC * FK], y[FC * FK], gw[FC * FK], sc[SQ_QUANT_SCRATCH * FC];
    unsigned seed = 777u;
    for (int ki = 0; ki < 3; ki++)
        for (int bi = 0; bi < 3; bi++) {
            fdcase t;
            memset(&t, 0, sizeof t);
            t.cfg = pc_cfg(kinds[ki], bitsv[bi], 0.0f, FC, (float)FK);
            float qn, qpos;
            sq_qm_lsq_bounds(bitsv[bi], 1, &qn, &qpos);
            for (int ch = 0; ch < FC; ch++) {
                const double s = scale[ch];
                if (kinds[ki] == SQ_QUANT_EWGS) {
                    t.qp[ch] = (float)(-1.3 * s);
                    t.qp[FC + ch] = (float)(1.1 * s);
                } else if (kinds[ki] == SQ_QUANT_LSQ) {
                    t.qp[ch] = (float)(1.2 * s / (qn > 1 ? qn : 1));
                }
                float *row = w + ch * FK;
                int i0 = 0;
                if (is_dorefa_w(&t.cfg)) { /* the row's ends fix max|tanh| */
                    row[0] = (float)(-1.5 * s);
                    row[1] = (float)(1.5 * s);
                    t.maxabs[ch] = fabs(tanh((double)(float)(1.5 * s)));
                    i0 = 2;
                }
                for (int i = i0; i < FK; i++) {
                    do row[i] = (float)((urand(&seed) * 3.0 - 1.5) * s);
                    while (!safe(&t, ch, row[i], h));
                }
            }
            for (int i = 0; i < FC * FK; i++) {
                gy[i] = (float)(urand(&seed) * 2 - 1);
                gw[i] = 0.0f;
            }
            float gqp[2 * FC] = {0};
            sq_cpu_fakequant_fwd(&t.cfg, FC * FK, w, t.qp, y, sc);
            sq_cpu_fakequant_bwd(&t.cfg, FC * FK, w, t.qp, gy, gw, gqp, sc);
            const int np = sq_quant_nparams(&t.cfg);
            const char *kn = sq_quant_kind_name(t.cfg.kind);
            for (int ch = 0; ch < FC; ch++) {
                const double th0[2] = {t.qp[ch], np > 1 ? t.qp[FC + ch] : 0};
                if (is_dorefa_w(&t.cfg))
                    cr_assert(close_to(sc[ch * SQ_QUANT_SCRATCH], t.maxabs[ch], 1e-7, 1e-6),
                              "%s channel %d: scratch M %.9g want %.9g", kn, ch, sc[ch * SQ_QUANT_SCRATCH],
                              t.maxabs[ch]);
                for (int i = 0; i < FK; i++) {
                    const int e = ch * FK + i;
                    double fd = gy[e] * (sur(&t, ch, w[e] + h, th0, w[e], th0) - sur(&t, ch, w[e] - h, th0, w[e], th0)) /
                                (2 * h);
                    cr_assert(close_to(gw[e], fd, 2e-4, 1e-3), "%s bits %d channel %d: gw[%d] %.7g fd %.7g", kn,
                              t.cfg.bits, ch, i, gw[e], fd);
                }
                for (int j = 0; j < np; j++) {
                    double fd = 0;
                    for (int i = 0; i < FK; i++) {
                        const int e = ch * FK + i;
                        double tp[2] = {th0[0], th0[1]}, tm[2] = {th0[0], th0[1]};
                        tp[j] += h;
                        tm[j] -= h;
                        fd += gy[e] * (sur(&t, ch, w[e], tp, w[e], th0) - sur(&t, ch, w[e], tm, w[e], th0)) / (2 * h);
                    }
                    if (t.cfg.kind == SQ_QUANT_LSQ) fd /= sqrt((double)FK * (qpos < 1 ? 1 : qpos));
                    cr_assert(close_to(gqp[j * FC + ch], fd, 2e-4, 1e-3), "%s bits %d channel %d: gqp[%d] %.7g fd %.7g",
                              kn, t.cfg.bits, ch, j, gqp[j * FC + ch], fd);
                }
            }
        }
}

/* One channel equals the per-tensor op on that channel's block with its parameters; the channel
   sums are bitwise the same with 1 and 2 threads (a tensor large enough for the parallel path). */
Test(perchannel, channels_are_tensors_and_sums_thread_independent)
{
    enum { C = 24, K = 1200 };
    const size_t n = (size_t)C * K;
    float *w = malloc(sizeof(float) * n * 6), *gy = w + n, *y = w + 2 * n, *ga = w + 3 * n, *gb = w + 4 * n,
          *y1 = w + 5 * n;
    float qp[2 * C], g1[2 * C] = {0}, g2[2 * C] = {0};
    unsigned seed = 31u;
    for (size_t i = 0; i < n; i++) {
        w[i] = (float)((urand(&seed) * 2 - 1) * (1 + (int)(i / K) % 5));
        gy[i] = (float)(urand(&seed) * 2 - 1);
    }
    for (int ch = 0; ch < C; ch++) {
        qp[ch] = -0.8f * (1 + ch % 5);
        qp[C + ch] = 0.9f * (1 + ch % 5);
    }
    sq_quant_cfg c = pc_cfg(SQ_QUANT_EWGS, 3, 0.3f, C, K);
    sq_cpu_fakequant_fwd(&c, n, w, qp, y, NULL);
    memset(ga, 0, sizeof(float) * n * 2);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    sq_cpu_fakequant_bwd(&c, n, w, qp, gy, ga, g1, NULL);
    omp_set_num_threads(2);
    sq_cpu_fakequant_bwd(&c, n, w, qp, gy, gb, g2, NULL);
    omp_set_num_threads(saved);
    cr_assert(memcmp(g1, g2, sizeof g1) == 0 && memcmp(ga, gb, sizeof(float) * n) == 0,
              "per-channel sums differ between 1 and 2 threads");
    sq_quant_cfg one = c;
    one.channels = 0;
    for (int ch = 0; ch < C; ch++) {
        float p[2] = {qp[ch], qp[C + ch]}, gp[2] = {0, 0};
        const size_t o = (size_t)ch * K;
        float *gx1 = calloc(K, sizeof(float));
        sq_cpu_fakequant_fwd(&one, K, w + o, p, y1 + o, NULL);
        sq_cpu_fakequant_bwd(&one, K, w + o, p, gy + o, gx1, gp, NULL);
        cr_assert(memcmp(y + o, y1 + o, sizeof(float) * K) == 0 && memcmp(ga + o, gx1, sizeof(float) * K) == 0,
                  "channel %d differs from the per-tensor op on its block", ch);
        cr_assert(gp[0] == g1[ch] && gp[1] == g1[C + ch], "channel %d: gqp %.9g %.9g, per-tensor %.9g %.9g", ch,
                  g1[ch], g1[C + ch], gp[0], gp[1]);
        free(gx1);
    }
    free(w);
}

/* channels > 1 is for weights only */
Test(perchannel, cfg_check_refuses_per_channel_activations)
{
    sq_quant_cfg c = pc_cfg(SQ_QUANT_LSQ, 4, 0, 8, 0);
    cr_assert_eq(sq_quant_cfg_check(&c), SQ_OK);
    c.role = SQ_QROLE_ACT;
    cr_assert_eq(sq_quant_cfg_check(&c), SQ_EARG);
    cr_assert(strstr(sq_last_error(), "weights only") != NULL, "%s", sq_last_error());
    c.role = SQ_QROLE_WEIGHT;
    c.channels = -2;
    cr_assert_eq(sq_quant_cfg_check(&c), SQ_EARG);
}

/* ---- a per-channel student ---- */

static char g_tmp[256];
static void mk_tmp(void) { cr_assert_not_null(sqt_mkdtemp(g_tmp, sizeof g_tmp, "sqakd_pc")); }
static void rm_tmp(void) { cr_expect_eq(sqt_rmtree(g_tmp), 0); }

static sq_model *make(int batch, int grad, const sq_quant_opts *q)
{
    sq_model *m;
    cr_assert_eq(sq_model_create("smallcnn", 1, 28, 28, 10, &m), SQ_OK, "%s", sq_last_error());
    if (q) cr_assert_eq(sq_model_set_quant(m, q), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_model_setup(m, sq_backend_cpu(), batch, grad), SQ_OK, "%s", sq_last_error());
    return m;
}

static double kl_now(sq_model *s, sq_model *t, const float *x, int n)
{
    sq_model_set_input(t, x, n);
    float *zt = sq_model_forward(t, n, 0);
    sq_model_set_input(s, x, n);
    float *zs = sq_model_forward(s, n, 1);
    float loss;
    sq_backend_cpu()->kl_fwd_bwd(n, s->classes, zt, zs, 4.0f, 1.0f, &loss, NULL);
    return loss;
}

/* Every quantizer with --per-channel: weight parameters are [C] tensors initialised from their
   own output channel (EWGS: +-3 std of the row, LSQ: 2 mean|row| / sqrt(Qp), both to 1e-6 rel),
   eight SQAKD steps lower the KL, and a checkpoint records per_channel and reloads to the same
   logits (bitwise). */
Test(perchannel, student_of_every_quantizer, .init = mk_tmp, .fini = rm_tmp)
{
    const sq_quant_kind kinds[] = {SQ_QUANT_EWGS, SQ_QUANT_PACT, SQ_QUANT_LSQ, SQ_QUANT_DOREFA};
    enum { B = 32 };
    float *x = malloc(sizeof(float) * B * 784);
    sqt_fill_normal(x, B * 784, 0, 1, 5);
    for (int k = 0; k < 4; k++) {
        sq_model *t = make(B, 0, NULL);
        sq_model_init_weights(t, 1);
        sq_quant_opts q = {.kind = kinds[k], .wbits = 2, .abits = 2, .per_channel = 1};
        sq_model *s = make(B, 1, &q);
        cr_assert_gt(sq_model_copy_matching(s, t), 0);
        cr_assert_eq(sq_model_quant_init(s, x, B), SQ_OK, "%s", sq_last_error());
        int checked = 0;
        for (int i = 0; i < s->nnodes; i++) {
            const sq_node *nd = &s->nodes[i];
            if (!nd->quant) continue;
            const sq_param *pw = &s->params[nd->pw];
            const int C = pw->shape[0];
            const size_t K = pw->numel / (size_t)C;
            cr_assert_eq(nd->qw.channels, C, "%s: channels %d, want %d", nd->name, nd->qw.channels, C);
            if (!sq_quant_nparams(&nd->qw)) continue;
            const sq_param *pq = &s->params[nd->qpw];
            cr_assert(pq->ndim == 1 && pq->shape[0] == C, "%s: %s has %d dims, shape[0] %d", nd->name, pq->name,
                      pq->ndim, pq->shape[0]);
            const float *w = sq_model_param_ptr(s, nd->pw), *qp = sq_model_param_ptr(s, nd->qpw);
            for (int c = 0; c < C; c++) {
                const float *row = w + (size_t)c * K;
                double mean = 0, ss = 0, ma = 0;
                for (size_t j = 0; j < K; j++) mean += row[j], ma += fabs(row[j]);
                mean /= K;
                for (size_t j = 0; j < K; j++) ss += (row[j] - mean) * (row[j] - mean);
                const double sd = sqrt(ss / (K - 1));
                if (kinds[k] == SQ_QUANT_EWGS) {
                    cr_assert(close_to(qp[c], -3 * sd, 0, 1e-6) && close_to(qp[C + c], 3 * sd, 0, 1e-6),
                              "%s channel %d: [%g, %g], want +-%g", nd->name, c, qp[c], qp[C + c], 3 * sd);
                } else {
                    cr_assert(close_to(qp[c], 2 * ma / K / sqrt(1.0), 0, 1e-6), "%s channel %d: s %g, want %g",
                              nd->name, c, qp[c], 2 * ma / K); /* signed 2-bit: Qp = 1 */
                }
            }
            checked++;
        }
        if (kinds[k] == SQ_QUANT_EWGS || kinds[k] == SQ_QUANT_LSQ) cr_assert_gt(checked, 0);
        double before = kl_now(s, t, x, B);
        sq_train_cfg cfg;
        sq_train_cfg_defaults(&cfg);
        cfg.loss = SQ_LOSS_KL;
        cfg.opt = SQ_OPT_ADAM;
        cfg.batch = B;
        sq_step_bufs *bufs = sq_step_bufs_new(s);
        for (int i = 0; i < 8; i++) sq_train_step(&cfg, s, t, bufs, x, NULL, B, 1e-3f, 1e-3f, i + 1);
        double after = kl_now(s, t, x, B);
        cr_expect(isfinite(after) && after < before, "%s: KL %g -> %g did not drop", sq_quant_kind_name(kinds[k]),
                  before, after);
        sq_step_bufs_free(s, bufs);
        /* checkpoint round trip */
        sq_ckpt_meta meta = {.in_c = 1, .in_h = 28, .in_w = 28, .classes = 10, .q = q, .std = {1, 1, 1, 1}};
        snprintf(meta.arch, sizeof meta.arch, "smallcnn");
        snprintf(meta.role, sizeof meta.role, "student");
        char path[400];
        snprintf(path, sizeof path, "%s/pc_%d.safetensors", g_tmp, k);
        cr_assert_eq(sq_ckpt_save(s, &meta, path), SQ_OK, "%s", sq_last_error());
        sq_model_set_input(s, x, B);
        float *za = malloc(sizeof(float) * B * 10);
        memcpy(za, sq_model_forward(s, B, 0), sizeof(float) * B * 10);
        sq_model *r;
        sq_ckpt_meta mr;
        cr_assert_eq(sq_ckpt_open_model(path, sq_backend_cpu(), B, 0, &r, &mr), SQ_OK, "%s", sq_last_error());
        cr_expect_eq(mr.q.per_channel, 1, "%s: per_channel not recorded", sq_quant_kind_name(kinds[k]));
        sq_model_set_input(r, x, B);
        cr_expect_eq(sqt_check_equal("reloaded per-channel logits", sq_model_forward(r, B, 0), za, B * 10), 0);
        free(za);
        sq_model_free(r);
        sq_model_free(s);
        sq_model_free(t);
    }
    free(x);
}

#include "pc_equiv.h"

/* pc_equiv.h on the CPU backend */
Test(perchannel, resnet20_per_channel_equals_per_tensor_with_equal_channels)
{
    sqt_pc_equiv(sq_backend_cpu());
}
