/* test_cuda_teacher.c: Criterion suite "cuda_teacher" (GPU side) for --teacher-precision: the
   BatchNorm-folded resnet20 and vgg8 teachers run in fp16 and bf16 on the GPU (cuDNN 16-bit
   convolutions with the bias and ReLU fused, 16-bit elementwise / pooling / shortcut kernels, fp32
   head) and their logits are compared with the fp32 CPU teacher on the same weights and inputs.
   Also: a partial batch gives the rows of the full one, and the state is released cleanly.
   Without a GPU every test SKIPS. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sqakd/teacher_prec.h"
#include "util_check.h"
#include "cuda_hooks.h"

/* fp32 convolutions without TF32, for the fp32-after-release comparison */
static void setup(void) { (void)sqt_cuda_configure(); /* cuDNN off TF32 (cuda_hooks.h) */ }

TestSuite(cuda_teacher, .init = setup, .timeout = 120);

static const sq_backend *gpu_or_skip(void)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    return g;
}

static void gpu_ok(const sq_backend *g)
{
    g->sync();
    cr_assert_eq(g->status(), SQ_OK, "CUDA backend error: %s", sq_last_error());
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* an inference-only teacher on be whose weights (BatchNorm statistics and affine parameters made
   non-trivial, so that folding matters) come from seed; BN folded */
static sq_model *teacher(const char *arch, const sq_backend *be, int batch, uint64_t seed)
{
    sq_model *m = NULL;
    cr_assert_eq(sq_model_create(arch, 3, 32, 32, 10, &m), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_model_setup(m, be, batch, 0), SQ_OK, "%s", sq_last_error());
    sq_model_init_weights(m, seed);
    for (int i = 0; i < m->nparams; i++) {
        const sq_param *p = &m->params[i];
        float lo, hi;
        if (ends_with(p->name, "running_var")) lo = 0.5f, hi = 2.0f;
        else if (ends_with(p->name, "running_mean")) lo = -0.3f, hi = 0.3f;
        else if (p->kind == SQ_PT_TRAIN && p->ndim == 1 && ends_with(p->name, ".weight")) lo = 0.5f, hi = 1.5f;
        else if (p->kind == SQ_PT_TRAIN && p->ndim == 1 && ends_with(p->name, ".bias")) lo = -0.2f, hi = 0.2f;
        else continue;
        float *v = malloc(p->numel * sizeof(float));
        sqt_fill_uniform(v, p->numel, lo, hi, seed * 1000 + (uint64_t)i);
        cr_assert_eq(sq_model_set(m, p->name, v, p->numel), SQ_OK, "%s", sq_last_error());
        free(v);
    }
    cr_assert_eq(sq_model_fold_bn(m, NULL), SQ_OK, "%s", sq_last_error());
    return m;
}

static float *logits(sq_model *m, const float *x, int n, int reduced)
{
    size_t nz = (size_t)n * m->classes;
    float *z = malloc(nz * sizeof(float));
    sq_model_set_input(m, x, n);
    const float *d = reduced ? sq_teacher_forward(m, n) : sq_model_forward(m, n, 0);
    m->be->copy_d2h(z, d, nz * sizeof(float));
    return z;
}

/* tol: fraction of the largest reference logit allowed as absolute error, also the relative one */
static void compare_with_cpu(const char *arch, sq_teacher_prec prec, double tol)
{
    const sq_backend *g = gpu_or_skip();
    const int N = 16;
    sq_model *ref = teacher(arch, sq_backend_cpu(), N, 3), *t = teacher(arch, g, N, 3);
    cr_assert_eq(sq_teacher_prec_apply(t, prec), SQ_OK, "%s", sq_last_error());
    cr_assert_not_null(t->tprec);
    size_t nx = (size_t)N * 3 * 32 * 32, nz = (size_t)N * 10;
    float *x = malloc(nx * sizeof(float));
    sqt_fill_uniform(x, nx, -2, 2, 17);
    float *zr = logits(ref, x, N, 0), *zg = logits(t, x, N, 1);
    gpu_ok(g);
    double mx = 0;
    for (size_t i = 0; i < nz; i++) mx = fmax(mx, fabs(zr[i]));
    cr_assert(mx > 0 && isfinite(mx), "reference logits degenerate (max |z| %g)", mx);
    char what[64];
    snprintf(what, sizeof what, "%s %s logits", arch, sq_teacher_prec_name(prec));
    size_t bad = sqt_check_close(what, zg, zr, nz, tol * mx, tol, 17);
    cr_expect_eq(bad, 0, "%s: %zu of %zu logits outside %.3g * max|z| (%.4g) of the fp32 CPU teacher", what, bad,
                 nz, tol, tol * mx);
    sq_teacher_prec_release(t);
    cr_expect_null(t->tprec);
    float *z32 = logits(t, x, N, 1); /* released: the fp32 forward again */
    gpu_ok(g);
    /* fp32 on the GPU (FMA or TF32 convolutions) against the CPU: a much tighter bound */
    cr_expect_eq(sqt_check_close("fp32 after release", z32, zr, nz, 2e-3 * mx, 2e-3, 17), 0,
                 "after release the teacher is not the fp32 one");
    free(x); free(zr); free(zg); free(z32);
    sq_model_free(t);
    sq_model_free(ref);
}

/* Tolerances: fp16 keeps 11 significant bits (unit roundoff 2^-11 ~ 4.9e-4) and bf16 8 (2^-8 ~
   3.9e-3); every layer rounds its output once and the errors of ~20 layers add up, partly
   cancelling, so 1% (fp16) and 6% (bf16) of the logit scale bound them with margin while still
   catching a wrong layout, a missing bias or activation, or a wrong weight. */
Test(cuda_teacher, fp16_resnet20_logits_match_fp32_cpu) { compare_with_cpu("resnet20", SQ_TPREC_FP16, 1e-2); }
Test(cuda_teacher, bf16_resnet20_logits_match_fp32_cpu) { compare_with_cpu("resnet20", SQ_TPREC_BF16, 6e-2); }
Test(cuda_teacher, fp16_vgg8_logits_match_fp32_cpu) { compare_with_cpu("vgg8", SQ_TPREC_FP16, 1e-2); }
Test(cuda_teacher, bf16_vgg8_logits_match_fp32_cpu) { compare_with_cpu("vgg8", SQ_TPREC_BF16, 6e-2); }

Test(cuda_teacher, partial_batch_gives_the_rows_of_the_full_batch)
{
    const sq_backend *g = gpu_or_skip();
    const int N = 8, n = 5;
    sq_model *t = teacher("resnet20", g, N, 4);
    cr_assert_eq(sq_teacher_prec_apply(t, SQ_TPREC_FP16), SQ_OK, "%s", sq_last_error());
    size_t nx = (size_t)N * 3 * 32 * 32;
    float *x = malloc(nx * sizeof(float));
    sqt_fill_uniform(x, nx, -1, 1, 23);
    float *full = logits(t, x, N, 1), *part = logits(t, x, n, 1);
    gpu_ok(g);
    /* the 16-bit forward always computes all N rows; each row depends on its own sample only */
    cr_expect_eq(sqt_check_equal("partial batch", part, full, (size_t)n * 10), 0,
                 "rows of a 5-sample forward differ from the same rows of the 8-sample one");
    free(x); free(full); free(part);
    sq_teacher_prec_release(t);
    sq_teacher_prec_release(t); /* twice is harmless */
    sq_model_free(t);
}

Test(cuda_teacher, refuses_a_trainable_model)
{
    const sq_backend *g = gpu_or_skip();
    sq_model *m = NULL;
    cr_assert_eq(sq_model_create("resnet20", 3, 32, 32, 10, &m), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_model_setup(m, g, 4, 1), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(sq_teacher_prec_apply(m, SQ_TPREC_BF16), SQ_EARG);
    cr_expect(strstr(sq_last_error(), "inference-only") != NULL, "%s", sq_last_error());
    cr_expect_null(m->tprec);
    sq_model_free(m);
}
