/* test_squat.c: the SQuaT feature loss (issue 20, docs/squat.md). The CPU op against PyTorch
   golden values (tools/gen_squat_golden.py: the loss and the gradients into the student's feature
   and its quantizer's parameters, through the quantizer's backward) for every activation
   quantizer; its gradient against finite differences; accumulation and thread independence; in
   a training step: the loss is KL + G * MSE as computed here from the step's own tensors, the
   gradient enters at the tap (layers after it are untouched, the tap's quantizer parameters and
   the layers before it change), weight 0 is the KL step bit for bit, and a bad tap name is one
   line listing the valid ones; the command line's kl+squat flags, per-student loss and records. */
#include "../kernels/cpu/cpu_ops.h"
#include "sqakd/multi.h"
#include "sqakd/safetensors.h"
#include "sqakd/quant_math.h"
#include "sqakd/train.h"
#include "train/train_internal.h"
#include "util_check.h"
#include "util_fixtures.h"
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int close_to(double a, double b, double abs_tol, double rel_tol)
{
    return fabs(a - b) <= abs_tol + rel_tol * fabs(b);
}

static sq_quant_cfg act_cfg(sq_quant_kind kind, int bits, int is_signed, float grad_numel)
{
    sq_quant_cfg c = {.kind = kind, .role = SQ_QROLE_ACT, .bits = bits, .is_signed = is_signed, .delta = 0.0f,
                      .grad_numel = grad_numel};
    return c;
}

static int rd(FILE *f, void *p, size_t sz, size_t n) { return fread(p, sz, n, f) == n; }

/* Tolerances as tests/test_quant.c's golden test: the same float32 formulas; PyTorch's float32
   sums against double sums here. */
Test(squat, golden_pytorch)
{
    FILE *f = fopen("tests/data/squat_golden.bin", "rb");
    cr_assert(f != NULL, "tests/data/squat_golden.bin missing (run from the repository root)");
    char magic[8];
    uint32_t ver, count;
    cr_assert(rd(f, magic, 1, 8) && memcmp(magic, "SQSQGLD1", 8) == 0, "bad magic");
    cr_assert(rd(f, &ver, 4, 1) && ver == 1, "bad version");
    cr_assert(rd(f, &count, 4, 1) && count == 20, "bad count %u", count);
    for (uint32_t ci = 0; ci < count; ci++) {
        int32_t hdr[3];
        float weight, qp[2], tail[3];
        uint32_t n;
        cr_assert(rd(f, hdr, 4, 3) && rd(f, &weight, 4, 1) && rd(f, qp, 4, 2) && rd(f, &n, 4, 1), "case %u: header", ci);
        cr_assert(n > 0 && n <= 4096, "case %u: n = %u", ci, n);
        float *buf = malloc(sizeof(float) * 8 * n);
        float *xs = buf, *xt = buf + n, *ys_ref = buf + 2 * n, *t_ref = buf + 3 * n, *gx_ref = buf + 4 * n;
        float *ys = buf + 5 * n, *gys = buf + 6 * n, *gx = buf + 7 * n;
        cr_assert(rd(f, buf, 4, 5 * (size_t)n) && rd(f, tail, 4, 3), "case %u: truncated", ci);
        sq_quant_cfg c = act_cfg((sq_quant_kind)hdr[0], hdr[1], hdr[2], (float)n);
        const char *kn = sq_quant_kind_name(c.kind);
        float sc[SQ_QUANT_SCRATCH], gqp[2] = {0, 0};
        sq_cpu_fakequant_fwd(&c, n, xs, qp, ys, sc);
        for (uint32_t i = 0; i < n; i++)
            cr_assert(close_to(ys[i], ys_ref[i], 1e-6, 1e-6), "case %u (%s %d bits): ys[%u] %.9g ref %.9g", ci, kn,
                      c.bits, i, ys[i], ys_ref[i]);
        /* the teacher side is the same quantizer's forward */
        sq_cpu_fakequant_fwd(&c, n, xt, qp, gx, sc);
        for (uint32_t i = 0; i < n; i++)
            cr_assert(close_to(gx[i], t_ref[i], 1e-6, 1e-6), "case %u: Q(xt)[%u] %.9g ref %.9g", ci, i, gx[i], t_ref[i]);
        float loss = 0.25f; /* the op adds to the step's loss */
        memset(gys, 0, sizeof(float) * n);
        sq_cpu_squat_fwd_bwd(&c, n, xt, qp, ys, weight, &loss, gys);
        cr_assert(close_to(loss - 0.25f, tail[2], 1e-6, 1e-5), "case %u (%s %d bits): loss %.9g ref %.9g", ci, kn,
                  c.bits, loss - 0.25f, tail[2]);
        memset(gx, 0, sizeof(float) * n);
        sq_cpu_fakequant_bwd(&c, n, xs, qp, gys, gx, gqp, sc);
        for (uint32_t i = 0; i < n; i++)
            cr_assert(close_to(gx[i], gx_ref[i], 1e-7, 1e-5), "case %u (%s %d bits): gx[%u] %.9g ref %.9g", ci, kn,
                      c.bits, i, gx[i], gx_ref[i]);
        for (int j = 0; j < 2; j++)
            cr_assert(close_to(gqp[j], tail[j], 1e-6, 1e-4), "case %u (%s %d bits): gqp[%d] %.9g ref %.9g", ci, kn,
                      c.bits, j, gqp[j], tail[j]);
        free(buf);
    }
    char extra;
    cr_assert(fread(&extra, 1, 1, f) == 0, "trailing bytes after %u cases", count);
    fclose(f);
}

static const sq_quant_kind KINDS[] = {SQ_QUANT_EWGS, SQ_QUANT_PACT, SQ_QUANT_LSQ, SQ_QUANT_DOREFA};

/* d loss / d xs by central differences (the loss is a quadratic in xs: exact up to rounding) */
Test(squat, gradient_matches_finite_differences)
{
    enum { N = 96 };
    for (int k = 0; k < 4; k++) {
        for (int bits = 1; bits <= 4; bits += 3) {
            sq_quant_cfg c = act_cfg(KINDS[k], bits, 0, N);
            float qp[2];
            sqt_fq_params(KINDS[k], 0, bits, qp);
            float *xt = sqt_hrand(N, -0.5f, 1.8f, 11 + k), *xs = sqt_hrand(N, -0.2f, 1.5f, 23 + k);
            float g[N] = {0}, loss = 0;
            const float w = 1.3f;
            sq_cpu_squat_fwd_bwd(&c, N, xt, qp, xs, w, &loss, g);
            cr_assert(loss > 0, "%s: loss %g", sq_quant_kind_name(KINDS[k]), loss);
            for (int i = 0; i < N; i++) {
                const float h = 1e-2f, x0 = xs[i];
                float lp = 0, lm = 0;
                xs[i] = x0 + h;
                sq_cpu_squat_fwd_bwd(&c, N, xt, qp, xs, w, &lp, NULL);
                xs[i] = x0 - h;
                sq_cpu_squat_fwd_bwd(&c, N, xt, qp, xs, w, &lm, NULL);
                xs[i] = x0;
                const double fd = ((double)lp - lm) / (2.0 * ((double)(x0 + h) - x0));
                cr_assert(close_to(g[i], fd, 2e-5, 1e-2), "%s %d bits: g[%d] %.8g, finite differences %.8g",
                          sq_quant_kind_name(KINDS[k]), bits, i, g[i], fd);
            }
            free(xt);
            free(xs);
        }
    }
}

/* the loss and gradient add to what is there; NULL gradient = the same loss; the loss does not
   depend on the thread count (fixed chunks) */
Test(squat, accumulates_and_does_not_depend_on_threads)
{
    const size_t n = 200003;
    sq_quant_cfg c = act_cfg(SQ_QUANT_LSQ, 2, 0, 64);
    float qp[2];
    sqt_fq_params(SQ_QUANT_LSQ, 0, 2, qp);
    float *xt = sqt_hrand(n, -0.5f, 2.0f, 3), *xs = sqt_hrand(n, 0.0f, 1.5f, 4);
    float *g1 = sqt_hvec(n), *g2 = sqt_hvec(n);
    for (size_t i = 0; i < n; i++) g2[i] = 1.0f;
    float l1 = 0, l2 = 2.0f, l3 = 0;
    const sq_backend *be = sq_backend_cpu();
    be->set_threads(1);
    be->squat_fwd_bwd(&c, n, xt, qp, xs, 0.5f, &l1, g1);
    be->set_threads(2);
    be->squat_fwd_bwd(&c, n, xt, qp, xs, 0.5f, &l2, g2);
    be->squat_fwd_bwd(&c, n, xt, qp, xs, 0.5f, &l3, NULL);
    cr_expect_eq(l2, 2.0f + l1, "loss %.9g after 2, alone %.9g", l2, l1);
    cr_expect_eq(l3, l1, "loss without gradient %.9g, with %.9g", l3, l1);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(g2[i], 1.0f + g1[i], "g[%zu] %.9g, alone %.9g", i, g2[i], g1[i]);
    /* the gradient is 2 w / n (xs - Q(xt)) */
    sq_qm_ctx k;
    sq_qm_ctx_init(&k, &c, n);
    sq_qm_ctx_load(&k, qp[0], qp[1], 0);
    for (size_t i = 0; i < n; i += 997) {
        const double want = 2.0 * 0.5 / n * (xs[i] - sq_qm_fwd(&k, xt[i]));
        cr_assert(close_to(g1[i], want, 1e-12, 1e-5), "g[%zu] %.9g want %.9g", i, g1[i], want);
    }
    free(xt); free(xs); free(g1); free(g2);
}

/* ---- in a training step ---- */

enum { NB = 16, IMG = 28 * 28 };

static sq_model *mk(int grad, const sq_quant_opts *q)
{
    sq_model *m;
    cr_assert_eq(sq_model_create("smallcnn", 1, 28, 28, 10, &m), SQ_OK);
    if (q) cr_assert_eq(sq_model_set_quant(m, q), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_model_setup(m, sq_backend_cpu(), NB, grad), SQ_OK, "%s", sq_last_error());
    return m;
}

typedef struct {
    sq_model *t, *s;
    float x[NB * IMG];
} pair;

static void pair_make(pair *p, sq_quant_kind kind)
{
    sq_backend_cpu()->set_threads(1);
    p->t = mk(0, NULL);
    sq_model_init_weights(p->t, 5);
    sq_quant_opts q = {.kind = kind, .wbits = 2, .abits = 2};
    p->s = mk(1, &q);
    cr_assert_gt(sq_model_copy_matching(p->s, p->t), 0);
    float *r = sqt_hrand(NB * IMG, -1.0f, 1.5f, 77);
    memcpy(p->x, r, sizeof p->x);
    free(r);
    cr_assert_eq(sq_model_quant_init(p->s, p->x, NB), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_model_fold_bn(p->t, NULL), SQ_OK);
}

static void pair_free(pair *p)
{
    sq_model_free(p->s);
    sq_model_free(p->t);
}

static sq_train_cfg step_cfg(int squat, float w)
{
    sq_train_cfg c;
    sq_train_cfg_defaults(&c);
    c.loss = SQ_LOSS_KL;
    c.opt = SQ_OPT_ADAM;
    c.batch = NB;
    c.squat = squat;
    c.squat_weight = w;
    return c;
}

/* one step at learning rate 0 (nothing moves): its loss and the gradients it left */
static float one_step(pair *p, const sq_train_cfg *c, float **g, float **qg)
{
    sq_step_bufs *b = sq_step_bufs_new(p->s);
    cr_assert_eq(sq_step_bufs_squat(b, c, p->s, p->t), SQ_OK, "%s", sq_last_error());
    sq_train_step(c, p->s, p->t, b, p->x, NULL, NB, 0.0f, 0.0f, 1);
    float loss;
    memcpy(&loss, sq_step_bufs_loss_sum(b), sizeof loss);
    *g = sqt_hdup(p->s->g, p->s->n_train);
    *qg = sqt_hdup(p->s->qg, p->s->n_quant);
    sq_step_bufs_free(p->s, b);
    return loss;
}

Test(squat, step_loss_is_kl_plus_weighted_mse_and_gradient_enters_at_the_tap)
{
    for (int k = 0; k < 4; k++) {
        pair p;
        pair_make(&p, KINDS[k]);
        const char *kn = sq_quant_kind_name(KINDS[k]);
        const sq_train_cfg ckl = step_cfg(0, 1), csq = step_cfg(1, 2.5f);
        float *g0, *q0, *g1, *q1;
        const float lkl = one_step(&p, &ckl, &g0, &q0);
        const float lsq = one_step(&p, &csq, &g1, &q1);
        /* the default tap: smallcnn's last quantized convolution, conv3 */
        const int tap = sq_squat_default_tap(p.s);
        cr_assert(tap > 0 && !strcmp(p.s->nodes[tap].name, "conv3"), "default tap %d", tap);
        /* the MSE from the step's own tensors: the student's quantized input of conv3 (its forward
           ran in the step) and the teacher's feature there, quantized here */
        const sq_node *n = &p.s->nodes[tap];
        const size_t cnt = (size_t)NB * p.s->nodes[n->in0].c * p.s->nodes[n->in0].h * p.s->nodes[n->in0].w;
        const float *xt = p.t->nodes[n->in0].out, *qp = p.s->qp + p.s->params[n->qpa].off;
        sq_qm_ctx qc;
        sq_qm_ctx_init(&qc, &n->qa, cnt);
        sq_qm_ctx_load(&qc, qp[0], sq_quant_nparams(&n->qa) > 1 ? qp[1] : 0.0f, 0.0f);
        double mse = 0;
        int differ = 0;
        for (size_t i = 0; i < cnt; i++) {
            const double d = (double)n->xq[i] - sq_qm_fwd(&qc, xt[i]);
            mse += d * d;
            differ += d != 0;
        }
        mse /= (double)cnt;
        cr_assert(differ > 0 && mse > 0, "%s: the student's and teacher's features agree everywhere", kn);
        cr_expect(close_to(lsq, lkl + 2.5 * mse, 1e-6, 1e-5), "%s: loss %.9g, KL %.9g + 2.5 * MSE %.9g", kn, lsq, lkl,
                  mse);
        /* layers after the tap see the same gradient; the tap's input quantizer and the layers
           before it get the feature term's share */
        for (int pi = 0; pi < p.s->nparams; pi++) {
            const sq_param *pr = &p.s->params[pi];
            const float *a = (pr->kind == SQ_PT_QUANT ? q0 : g0) + pr->off, *b = (pr->kind == SQ_PT_QUANT ? q1 : g1) + pr->off;
            if (pr->kind == SQ_PT_BUFFER) continue;
            const int same = !memcmp(a, b, pr->numel * sizeof(float));
            const size_t nl = strlen(pr->name);
            /* conv3's input quantizer: lA, uA (ewgs), alphaA (pact), sA (lsq) */
            const int tap_aq = pr->kind == SQ_PT_QUANT && !strncmp(pr->name, "conv3.", 6) && pr->name[nl - 1] == 'A';
            const int after = !strncmp(pr->name, "fc.", 3) || !strncmp(pr->name, "bn3.", 4) ||
                              (!strncmp(pr->name, "conv3.", 6) && !tap_aq);
            if (after) cr_expect(same, "%s: %s changed although it lies after the tap", kn, pr->name);
            else if (tap_aq || !strcmp(pr->name, "conv2.weight") || !strcmp(pr->name, "conv1.weight"))
                cr_expect(!same, "%s: %s got no share of the feature term", kn, pr->name);
        }
        free(g0); free(q0); free(g1); free(q1);
        pair_free(&p);
    }
}

/* weight 0: the KL step bit for bit, over a few steps that move the weights */
Test(squat, weight_zero_is_the_kl_step)
{
    float *w[2];
    for (int r = 0; r < 2; r++) {
        pair p;
        pair_make(&p, SQ_QUANT_EWGS);
        const sq_train_cfg c = step_cfg(r, 0.0f);
        sq_step_bufs *b = sq_step_bufs_new(p.s);
        cr_assert_eq(sq_step_bufs_squat(b, &c, p.s, p.t), SQ_OK);
        for (int i = 0; i < 3; i++) sq_train_step(&c, p.s, p.t, b, p.x, NULL, NB, 1e-3f, 1e-3f, i + 1);
        w[r] = sqt_hvec(p.s->n_train + p.s->n_quant);
        memcpy(w[r], p.s->p, p.s->n_train * sizeof(float));
        memcpy(w[r] + p.s->n_train, p.s->qp, p.s->n_quant * sizeof(float));
        sq_step_bufs_free(p.s, b);
        pair_free(&p);
    }
    pair p;
    pair_make(&p, SQ_QUANT_EWGS);
    cr_expect(!memcmp(w[0], w[1], (p.s->n_train + p.s->n_quant) * sizeof(float)), "kl+squat at weight 0 differs from kl");
    pair_free(&p);
    free(w[0]);
    free(w[1]);
}

Test(squat, unknown_tap_lists_the_valid_names)
{
    pair p;
    pair_make(&p, SQ_QUANT_LSQ);
    sq_train_cfg c = step_cfg(1, 1.0f);
    c.squat_tap = "conv9";
    sq_step_bufs *b = sq_step_bufs_new(p.s);
    cr_assert_eq(sq_step_bufs_squat(b, &c, p.s, p.t), SQ_EARG);
    cr_expect(strstr(sq_last_error(), "'conv9' is not a quantized layer of smallcnn: pick one of conv2, conv3") != NULL,
              "%s", sq_last_error());
    c.squat_tap = "conv2";
    cr_expect_eq(sq_step_bufs_squat(b, &c, p.s, p.t), SQ_OK, "%s", sq_last_error());
    c.squat_tap = "conv1"; /* full precision: not a tap */
    cr_expect_eq(sq_step_bufs_squat(b, &c, p.s, p.t), SQ_EARG);
    cr_expect_eq(sq_step_bufs_squat(b, &c, p.s, NULL), SQ_EARG); /* no teacher */
    cr_expect(strstr(sq_last_error(), "needs a teacher") != NULL, "%s", sq_last_error());
    /* the teacher lists the layers the recipe would quantize */
    char names[256];
    sq_squat_tap_names(p.t, names, sizeof names);
    cr_expect_str_eq(names, "conv2, conv3");
    sq_step_bufs_free(p.s, b);
    pair_free(&p);
}

/* ---- the command line ---- */

static char g_dir[256], g_out[8192];
#define run(...) sqt_run(g_out, sizeof g_out, __VA_ARGS__)

static void cli_init(void) { sqt_cli_setup(g_dir, sizeof g_dir, "sqakd_squat"); }
static void cli_fini(void) { cr_expect_eq(sqt_rmtree(g_dir), 0); }

static char *slurp_str(const char *path)
{
    size_t n;
    unsigned char *b = sqt_slurp(path, &n);
    if (!b) return NULL;
    char *s = malloc(n + 1);
    memcpy(s, b, n);
    s[n] = 0;
    free(b);
    return s;
}

/* a smallcnn teacher for 1x28x28 and 48 unlabelled IDX images */
static void write_inputs(char *t, char *img, size_t cap)
{
    snprintf(t, cap, "%s/t.safetensors", g_dir);
    snprintf(img, cap, "%s/img.idx", g_dir);
    sq_model *m;
    cr_assert_eq(sq_model_create("smallcnn", 1, 28, 28, 10, &m), SQ_OK);
    cr_assert_eq(sq_model_setup(m, sq_backend_cpu(), 4, 0), SQ_OK);
    sq_model_init_weights(m, 1);
    sq_ckpt_meta meta = {.in_c = 1, .in_h = 28, .in_w = 28, .classes = 10, .mean = {0.5f}, .std = {0.25f, 1, 1, 1}};
    snprintf(meta.arch, sizeof meta.arch, "smallcnn");
    cr_assert_eq(sq_ckpt_save(m, &meta, t), SQ_OK, "%s", sq_last_error());
    sq_model_free(m);
    char lab[400];
    snprintf(lab, sizeof lab, "%s/lab.idx", g_dir);
    sqt_write_idx_pattern(img, lab, 48, 28, 10, 9);
}

Test(squat, cli_flags_students_and_records, .init = cli_init, .fini = cli_fini)
{
    if (access(sqt_bin(), X_OK)) cr_skip("sqakd binary %s not built (set SQAKD_BIN)", sqt_bin());
    char t[400], img[400], path[600];
    write_inputs(t, img, sizeof t);
    const char *common = "--epochs 1 --batch 16 --threads 1 --seed 2 --quiet";
    /* a bad tap: one line listing the names, nothing written */
    int rc = run("distill --teacher %s --data idx:%s --loss kl+squat --squat-tap conv9 %s --out %s/bad", t, img, common,
                 g_dir);
    cr_expect_eq(rc, 2, "%s", g_out);
    cr_expect(strstr(g_out, "sqakd distill: --squat-tap 'conv9' is not a quantized layer of smallcnn: pick one of conv2, "
                     "conv3") != NULL, "%s", g_out);
    const char *err = strstr(g_out, "sqakd distill: --squat-tap");
    cr_expect(err && strchr(err, '\n') == g_out + strlen(g_out) - 1, "the error is not one last line: %s", g_out);
    snprintf(path, sizeof path, "%s/bad", g_dir);
    cr_expect_neq(access(path, F_OK), 0, "a refused run left %s behind", path);
    cr_expect_eq(run("distill --teacher %s --data idx:%s --loss squat %s --out %s/bad", t, img, common, g_dir), 2);
    cr_expect(strstr(g_out, "--loss must be kl, kl+squat or ce, got 'squat'") != NULL, "%s", g_out);
    cr_expect_eq(run("distill --teacher %s --data idx:%s --squat-weight 2 %s --out %s/bad", t, img, common, g_dir), 2);
    cr_expect(strstr(g_out, "need --loss kl+squat") != NULL, "%s", g_out);
    /* a run: the flags are recorded and a resume keeps them (a different weight is refused) */
    rc = run("distill --teacher %s --data idx:%s --quantizer lsq --wbits 2 --abits 2 --loss kl+squat --squat-weight 0.5 "
             "--squat-tap conv2 %s --out %s/one", t, img, common, g_dir);
    cr_assert_eq(rc, 0, "%s", g_out);
    snprintf(path, sizeof path, "%s/one/command.txt", g_dir);
    char *txt = slurp_str(path);
    cr_assert_not_null(txt);
    cr_expect(strstr(txt, "\"--loss\":\"kl+squat\"") && strstr(txt, "\"--squat-weight\":\"0.5\"") &&
              strstr(txt, "\"--squat-tap\":\"conv2\""), "%s", txt);
    free(txt);
    cr_expect_eq(run("distill --resume %s/one --squat-weight 0.25 --epochs 2 --quiet", g_dir), 2, "%s", g_out);
    cr_expect(strstr(g_out, "squat-weight") != NULL, "%s", g_out);
    cr_expect_eq(run("distill --resume %s/one --epochs 2 --quiet", g_dir), 0, "%s", g_out);
    snprintf(path, sizeof path, "%s/one/metrics.jsonl", g_dir);
    txt = slurp_str(path);
    cr_assert_not_null(txt);
    cr_expect(strstr(txt, "\"epoch\":2") != NULL, "%s", txt);
    free(txt);
    /* per student: plain kl and kl+squat side by side, the latter in <name>_squat */
    rc = run("distill --teacher %s --data idx:%s --students ewgs:2,ewgs:2:loss=kl+squat,lsq:2:loss=kl %s --out %s/m", t,
             img, common, g_dir);
    cr_assert_eq(rc, 0, "%s", g_out);
    const char *dirs[] = {"ewgs_w2a2", "ewgs_w2a2_squat", "lsq_w2a2"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/m/%s/last.safetensors", g_dir, dirs[i]);
        cr_expect_eq(access(path, F_OK), 0, "no %s", path);
    }
    /* the kl+squat student of the multi-student run (the teacher's forward outside its step) is a
       single run's (the teacher's forward inside it) bit for bit, and differs from the kl one */
    rc = run("distill --teacher %s --data idx:%s --quantizer ewgs --wbits 2 --abits 2 --loss kl+squat %s --out %s/single",
             t, img, common, g_dir);
    cr_assert_eq(rc, 0, "%s", g_out);
    char a[600], b[600], k[600];
    snprintf(a, sizeof a, "%s/m/ewgs_w2a2_squat/last.safetensors", g_dir);
    snprintf(b, sizeof b, "%s/single/last.safetensors", g_dir);
    snprintf(k, sizeof k, "%s/m/ewgs_w2a2/last.safetensors", g_dir);
    sq_st_file fa, fb, fk;
    cr_assert_eq(sq_st_read(a, &fa), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_st_read(b, &fb), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_st_read(k, &fk), SQ_OK, "%s", sq_last_error());
    int differ_kl = 0;
    for (int i = 0; i < fa.ntensors; i++) {
        const sq_st_tensor *tb = sq_st_find(&fb, fa.tensors[i].name), *tk = sq_st_find(&fk, fa.tensors[i].name);
        cr_assert(tb && tk && tb->nbytes == fa.tensors[i].nbytes, "%s", fa.tensors[i].name);
        cr_expect_eq(memcmp(fa.tensors[i].data, tb->data, tb->nbytes), 0, "%s: multi-student and single run differ",
                     fa.tensors[i].name);
        differ_kl += memcmp(fa.tensors[i].data, tk->data, tk->nbytes) != 0;
    }
    cr_expect_gt(differ_kl, 0, "kl+squat trained the same weights as kl");
    sq_st_free(&fa);
    sq_st_free(&fb);
    sq_st_free(&fk);
    snprintf(path, sizeof path, "%s/m/ewgs_w2a2_squat/command.txt", g_dir);
    txt = slurp_str(path);
    cr_assert_not_null(txt);
    cr_expect(strstr(txt, "ewgs_w2a2_squat:lr=0.00100000005:lrq=9.99999975e-06:loss=kl+squat:squat-weight=1:squat-tap=\"") != NULL,
              "%s", txt);
    free(txt);
    cr_expect_eq(run("distill --teacher %s --data idx:%s --students ewgs:2:loss=ce %s --out %s/x", t, img, common, g_dir),
                 2);
    cr_expect(strstr(g_out, "takes loss=kl or loss=kl+squat") != NULL, "%s", g_out);
    /* info lists the taps */
    cr_assert_eq(run("info %s", t), 0, "%s", g_out);
    cr_expect(strstr(g_out, "squat taps         conv2, conv3 (default conv3)") != NULL, "%s", g_out);
}

/* an imported (ONNX) teacher: its node names are the taps; a sweep with kl+squat records it */
Test(squat, cli_onnx_teacher_and_sweep, .init = cli_init, .fini = cli_fini)
{
    if (access(sqt_bin(), X_OK)) cr_skip("sqakd binary %s not built (set SQAKD_BIN)", sqt_bin());
    char t[400], img[400], path[600];
    write_inputs(t, img, sizeof t);
    const char *common = "--epochs 1 --batch 16 --threads 1 --seed 2 --quiet";
    cr_assert_eq(run("export %s --onnx %s/t.onnx", t, g_dir), 0, "%s", g_out);
    cr_assert_eq(run("info %s/t.onnx", g_dir), 0, "%s", g_out);
    const char *taps = strstr(g_out, "squat taps");
    cr_assert(taps != NULL, "%s", g_out);
    char tap[80] = "";
    sscanf(taps + 10, " %79[^, ]", tap); /* the first one */
    cr_assert(tap[0], "%s", g_out);
    int rc = run("distill --teacher %s/t.onnx --data idx:%s --quantizer ewgs --wbits 2 --abits 2 --loss kl+squat "
                 "--squat-tap %s %s --out %s/onnx", g_dir, img, tap, common, g_dir);
    cr_expect_eq(rc, 0, "%s", g_out);
    cr_expect_eq(run("distill --teacher %s/t.onnx --data idx:%s --loss kl+squat --squat-tap nope %s --out %s/x", g_dir,
                     img, common, g_dir), 2);
    cr_expect(strstr(g_out, "pick one of") && strstr(g_out, tap), "%s", g_out);
    /* a sweep */
    rc = run("sweep --teacher %s --data idx:%s --quantizers lsq --bits 2 --epochs 1 --batch 16 --threads 1 --loss kl+squat "
             "--squat-weight 3 --quiet --out %s/sw", t, img, g_dir);
    cr_expect_eq(rc, 0, "%s", g_out);
    snprintf(path, sizeof path, "%s/sw/sweep.json", g_dir);
    char *txt = slurp_str(path);
    cr_assert_not_null(txt);
    cr_expect(strstr(txt, "\"loss\": \"kl+squat\"") || strstr(txt, "\"loss\":\"kl+squat\""), "%s", txt);
    free(txt);
    snprintf(path, sizeof path, "%s/sw/tasks/lsq_w2a2_s1/result.json", g_dir);
    cr_expect_eq(access(path, F_OK), 0, "no %s", path);
    /* the same directory with another weight is another training configuration */
    rc = run("sweep --teacher %s --data idx:%s --quantizers lsq --bits 2 --epochs 1 --batch 16 --threads 1 --loss kl+squat "
             "--squat-weight 2 --quiet --out %s/sw", t, img, g_dir);
    cr_expect_eq(rc, 2, "%s", g_out);
    cr_expect(strstr(g_out, "squat_weight") != NULL, "%s", g_out);
    cr_expect_eq(run("sweep --teacher %s --data idx:%s --quantizers lsq --bits 2 --loss ce --out %s/sw2", t, img, g_dir), 2);
    cr_expect(strstr(g_out, "--loss must be kl or kl+squat") != NULL, "%s", g_out);
}
