/* test_teacher_prec.c: Criterion suite "cuda_teacher" (CPU side) for --teacher-precision: the
   CLI refuses fp16 / bf16 on the CPU backend and unknown values with one clear line and a
   non-zero exit, writing nothing; the library parses the three names, refuses the reduced
   precisions on the CPU backend without touching the model, and fp32 (the default) is exactly
   the model's own forward. The GPU side (16-bit logits against the fp32 CPU teacher) is in
   tests/test_cuda_teacher.c. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include "sqakd/teacher_prec.h"
#include "util_check.h"
#include "util_fixtures.h"

TestSuite(cuda_teacher, .timeout = 60);

static char g_out[16384];

#define run(...) sqt_run(g_out, sizeof g_out, __VA_ARGS__)

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* one refused run: exit status 2, exactly one line naming want, no output directory */
static void expect_refused(const char *prec, const char *want)
{
    char dir[256], out[300];
    cr_assert(sqt_mkdtemp(dir, sizeof dir, "sqakd_tprec"));
    snprintf(out, sizeof out, "%s/run", dir);
    int rc = run("distill --teacher %s/teacher.safetensors --data fashion-mnist --device cpu --out %s "
                 "--teacher-precision %s", dir, out, prec);
    cr_expect_eq(rc, 2, "--teacher-precision %s on the CPU: exit %d, want 2; output:\n%s", prec, rc, g_out);
    cr_expect_eq(count_lines(g_out), 1, "want one line, got:\n%s", g_out);
    cr_expect(strstr(g_out, "sqakd distill: ") == g_out, "not prefixed by the command: %s", g_out);
    cr_expect(strstr(g_out, want) != NULL, "message lacks '%s': %s", want, g_out);
    struct stat sb;
    cr_expect(stat(out, &sb) != 0, "%s was created by a refused run", out);
    sqt_rmtree(dir);
}

Test(cuda_teacher, cli_refuses_fp16_and_bf16_on_cpu)
{
    expect_refused("fp16", "--teacher-precision fp16 needs --device cuda");
    expect_refused("bf16", "--teacher-precision bf16 needs --device cuda");
}

Test(cuda_teacher, cli_refuses_unknown_precision)
{
    expect_refused("fp8", "unknown --teacher-precision 'fp8' (expected fp32, fp16 or bf16)");
    expect_refused("FP16", "unknown --teacher-precision 'FP16'");
}

Test(cuda_teacher, cli_help_lists_the_flag)
{
    int rc = run("distill --help");
    cr_expect_eq(rc, 0, "distill --help exit %d: %s", rc, g_out);
    cr_expect(strstr(g_out, "--teacher-precision") != NULL, "--help lacks --teacher-precision:\n%s", g_out);
}

Test(cuda_teacher, parse_names_and_cpu_check)
{
    sq_teacher_prec p = SQ_TPREC_FP16;
    cr_expect_eq(sq_teacher_prec_parse("fp32", &p), SQ_OK);
    cr_expect_eq(p, SQ_TPREC_FP32);
    cr_expect_eq(sq_teacher_prec_parse("fp16", &p), SQ_OK);
    cr_expect_eq(p, SQ_TPREC_FP16);
    cr_expect_eq(sq_teacher_prec_parse("bf16", &p), SQ_OK);
    cr_expect_eq(p, SQ_TPREC_BF16);
    cr_expect_eq(sq_teacher_prec_parse("half", &p), SQ_EARG);
    cr_expect(strstr(sq_last_error(), "'half'") != NULL, "%s", sq_last_error());
    cr_expect_eq(sq_teacher_prec_parse(NULL, &p), SQ_EARG);
    cr_expect_str_eq(sq_teacher_prec_name(SQ_TPREC_BF16), "bf16");
    const sq_backend *cpu = sq_backend_cpu();
    cr_expect_eq(sq_teacher_prec_check(cpu, SQ_TPREC_FP32), SQ_OK);
    cr_expect_eq(sq_teacher_prec_check(cpu, SQ_TPREC_FP16), SQ_EARG);
    cr_expect(strstr(sq_last_error(), "needs --device cuda") != NULL, "%s", sq_last_error());
}

Test(cuda_teacher, fp32_is_the_plain_forward_and_cpu_refuses_fp16)
{
    const sq_backend *be = sq_backend_cpu();
    sq_model *m = NULL;
    const int n = 3;
    cr_assert_eq(sq_model_create("resnet20", 3, 8, 8, 10, &m), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_model_setup(m, be, n, 0), SQ_OK, "%s", sq_last_error());
    sq_model_init_weights(m, 7);
    int folded = 0;
    cr_assert_eq(sq_model_fold_bn(m, &folded), SQ_OK, "%s", sq_last_error());
    cr_expect_gt(folded, 0);
    size_t nx = (size_t)n * 3 * 8 * 8, nz = (size_t)n * 10;
    float *x = malloc(nx * sizeof(float)), *ref = malloc(nz * sizeof(float)), *got = malloc(nz * sizeof(float));
    sqt_fill_uniform(x, nx, -1, 1, 11);
    sq_model_set_input(m, x, n);
    memcpy(ref, sq_model_forward(m, n, 0), nz * sizeof(float));

    cr_expect_eq(sq_teacher_prec_apply(m, SQ_TPREC_FP16), SQ_EARG);
    cr_expect(strstr(sq_last_error(), "--teacher-precision fp16 needs --device cuda") != NULL, "%s",
              sq_last_error());
    cr_expect_null(m->tprec, "a refused precision left state behind");
    cr_expect_eq(sq_teacher_prec_apply(m, SQ_TPREC_FP32), SQ_OK, "%s", sq_last_error());
    cr_expect_null(m->tprec);
    sq_model_set_input(m, x, n);
    memcpy(got, sq_teacher_forward(m, n), nz * sizeof(float));
    cr_expect_eq(sqt_check_equal("fp32 teacher logits", got, ref, nz), 0,
                 "sq_teacher_forward in fp32 differs from sq_model_forward");
    sq_teacher_prec_release(m);
    free(x); free(ref); free(got);
    sq_model_free(m);
}
