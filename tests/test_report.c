/* test_report.c: 'sqakd report DIR' on fixed result.json inputs: the exact Markdown and CSV text,
   a PNG of the promised size with the series drawn, and one-line errors for a missing or corrupt
   sweep directory. Runs the subcommand in-process (sq_cmd_report). */
#include "cli/cli.h"
#include "util_fixtures.h"
#include <criterion/criterion.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_tmp[256];
static void mk_tmp(void)
{
    cr_assert_not_null(sqt_mkdtemp(g_tmp, sizeof g_tmp, "sqakd_report"));
}
static void rm_tmp(void)
{
    cr_expect_eq(sqt_rmtree(g_tmp), 0);
}

static void put_result(const char *id, const char *json)
{
    char p[512];
    snprintf(p, sizeof p, "%s/tasks/%s", g_tmp, id);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", p);
    cr_assert_eq(system(cmd), 0);
    strcat(p, "/result.json");
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(json, f);
    fclose(f);
}

static char *slurp(const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", g_tmp, name);
    FILE *f = fopen(p, "rb");
    cr_assert_not_null(f, "%s missing", p);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc(n + 1);
    cr_assert_eq(fread(s, 1, n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

static int report(const char *dir)
{
    char *argv[] = {"report", (char *)dir, "--quiet", NULL};
    return sq_cmd_report(3, argv);
}

static void fixed_inputs(void)
{
    put_result("teacher", "{\"id\":\"teacher\",\"role\":\"teacher\",\"model\":\"resnet20\",\"quantizer\":\"fp32\",\"wbits\":32,"
                          "\"abits\":32,\"seed\":1,\"status\":\"ok\",\"top1\":91.25,\"top5\":99.5,\"agreement\":100,\"kl\":0,"
                          "\"model_bytes\":1079400,\"train_seconds\":1200.3}\n");
    put_result("ewgs_w2a2_s1", "{\"id\":\"ewgs_w2a2_s1\",\"role\":\"student\",\"model\":\"resnet20\",\"quantizer\":\"ewgs\","
                               "\"wbits\":2,\"abits\":2,\"seed\":1,\"status\":\"ok\",\"top1\":88.5,\"agreement\":93.12,"
                               "\"kl\":0.0625,\"model_bytes\":73140,\"train_seconds\":300.4}\n");
    put_result("ewgs_w2a2_s2", "{\"id\":\"ewgs_w2a2_s2\",\"role\":\"student\",\"model\":\"resnet20\",\"quantizer\":\"ewgs\","
                               "\"wbits\":2,\"abits\":2,\"seed\":2,\"status\":\"ok\",\"top1\":89.5,\"agreement\":93.88,"
                               "\"kl\":0.0375,\"model_bytes\":73140,\"train_seconds\":301.6}\n");
    put_result("ewgs_w4a4_s1", "{\"id\":\"ewgs_w4a4_s1\",\"role\":\"student\",\"model\":\"resnet20\",\"quantizer\":\"ewgs\","
                               "\"wbits\":4,\"abits\":4,\"seed\":1,\"status\":\"ok\",\"top1\":90.75,\"agreement\":96.5,"
                               "\"kl\":0.015625,\"model_bytes\":140224,\"train_seconds\":310}\n");
    put_result("lsq_w2a2_s1", "{\"id\":\"lsq_w2a2_s1\",\"role\":\"student\",\"model\":\"resnet20\",\"quantizer\":\"lsq\","
                              "\"wbits\":2,\"abits\":2,\"seed\":1,\"status\":\"diverged\",\"top1\":null,\"agreement\":null,"
                              "\"kl\":null,\"model_bytes\":73150,\"train_seconds\":12.2}\n");
}

static const char *WANT_MD =
    "# Sweep report\n"
    "\n"
    "| task | model | quantizer | bits | top-1 % | agreement % | KL | size (bytes) | train s | status |\n"
    "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |\n"
    "| teacher | resnet20 | fp32 | W32A32 | 91.25 | 100.00 | 0.0000 | 1079400 | 1200.3 | ok |\n"
    "| ewgs_w2a2_s1 | resnet20 | ewgs | W2A2 | 88.50 | 93.12 | 0.0625 | 73140 | 300.4 | ok |\n"
    "| ewgs_w2a2_s2 | resnet20 | ewgs | W2A2 | 89.50 | 93.88 | 0.0375 | 73140 | 301.6 | ok |\n"
    "| ewgs_w4a4_s1 | resnet20 | ewgs | W4A4 | 90.75 | 96.50 | 0.0156 | 140224 | 310.0 | ok |\n"
    "| lsq_w2a2_s1 | resnet20 | lsq | W2A2 | - | - | - | 73150 | 12.2 | diverged |\n"
    "\n"
    "## Mean over seeds\n"
    "\n"
    "| quantizer | bits | seeds | top-1 % | agreement % | size (bytes) |\n"
    "| --- | --- | ---: | ---: | ---: | ---: |\n"
    "| ewgs | W2A2 | 2 of 2 | 89.00 ± 0.71 | 93.50 ± 0.54 | 73140 |\n"
    "\n"
    "Accuracy is top-1 on the evaluation split (\"-\" without labels); agreement is top-1 agreement with the "
    "teacher and KL the mean KL(teacher || student) at T = 1 on the same images; size counts quantized weights "
    "at their bit-width and everything else at 32 bits.\n"
    "\n"
    "![accuracy against model size](report.png)\n";

static const char *WANT_CSV =
    "task,role,model,quantizer,wbits,abits,seed,top1,agreement,kl,model_bytes,train_seconds,status\n"
    "teacher,teacher,resnet20,fp32,32,32,1,91.25,100,0,1079400,1200.300,ok\n"
    "ewgs_w2a2_s1,student,resnet20,ewgs,2,2,1,88.5,93.12,0.0625,73140,300.400,ok\n"
    "ewgs_w2a2_s2,student,resnet20,ewgs,2,2,2,89.5,93.88,0.0375,73140,301.600,ok\n"
    "ewgs_w4a4_s1,student,resnet20,ewgs,4,4,1,90.75,96.5,0.015625,140224,310.000,ok\n"
    "lsq_w2a2_s1,student,resnet20,lsq,2,2,1,,,,73150,12.200,diverged\n";

/* the first line where two texts differ, for a readable failure */
static void expect_text(const char *what, const char *got, const char *want)
{
    if (!strcmp(got, want)) return;
    int line = 1;
    const char *g = got, *w = want;
    while (*g && *g == *w) { if (*g == '\n') line++; g++; w++; }
    const char *ge = strchr(g, '\n'), *we = strchr(w, '\n');
    cr_expect_fail("%s differs at line %d:\n got: %.*s\nwant: %.*s", what, line, ge ? (int)(ge - g) : (int)strlen(g), g,
                   we ? (int)(we - w) : (int)strlen(w), w);
}

Test(report, markdown_and_csv_from_fixed_results, .init = mk_tmp, .fini = rm_tmp)
{
    fixed_inputs();
    cr_assert_eq(report(g_tmp), 0);
    char *md = slurp("report.md"), *csv = slurp("report.csv");
    expect_text("report.md", md, WANT_MD);
    expect_text("report.csv", csv, WANT_CSV);
    free(md);
    free(csv);
}

Test(report, png_has_the_promised_size_and_the_series, .init = mk_tmp, .fini = rm_tmp)
{
    fixed_inputs();
    cr_assert_eq(report(g_tmp), 0);
    char p[512];
    snprintf(p, sizeof p, "%s/report.png", g_tmp);
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    cr_assert(png_image_begin_read_from_file(&im, p), "%s: %s", p, im.message);
    cr_expect_eq(im.width, 800u);
    cr_expect_eq(im.height, 500u);
    im.format = PNG_FORMAT_RGB;
    uint8_t *px = malloc(PNG_IMAGE_SIZE(im));
    cr_assert(png_image_finish_read(&im, NULL, px, 0, NULL), "%s", im.message);
    /* the first series colour (ewgs, 31,119,180), the teacher's grey and black text are all there */
    long blue = 0, grey = 0, black = 0, white = 0;
    for (size_t i = 0; i < (size_t)800 * 500; i++) {
        const uint8_t *c = px + 3 * i;
        blue += c[0] == 31 && c[1] == 119 && c[2] == 180;
        grey += c[0] == 80 && c[1] == 80 && c[2] == 80;
        black += c[0] == 0 && c[1] == 0 && c[2] == 0;
        white += c[0] == 255 && c[1] == 255 && c[2] == 255;
    }
    cr_expect_gt(blue, 200, "ewgs line: %ld pixels", blue);
    cr_expect_gt(grey, 200, "teacher line: %ld pixels", grey);
    cr_expect_gt(black, 1000, "text: %ld pixels", black);
    cr_expect_gt(white, 800 * 500 / 2, "background: %ld pixels", white);
    free(px);
}

Test(report, missing_or_corrupt_results_fail_with_one_line, .init = mk_tmp, .fini = rm_tmp)
{
    cr_expect_eq(report(g_tmp), 2);   /* no tasks/ */
    char p[512];
    snprintf(p, sizeof p, "%s/tasks", g_tmp);
    cr_assert_eq(mkdir(p, 0755), 0);
    cr_expect_eq(report(g_tmp), 2);   /* no results */
    put_result("bad", "{\"id\": \"bad\", \"top1\": 1,,}");
    cr_expect_eq(report(g_tmp), 2);
    snprintf(p, sizeof p, "%s/report.md", g_tmp);
    cr_expect_neq(access(p, F_OK), 0, "a failed report wrote %s", p);
}

/* Results edited by hand or corrupt: bit widths and seeds that are not integers in range count as
   0 in the tables, and metrics far outside 0..100 or sizes whose sum overflows still give a plot,
   quickly (a point a billion pixels off the frame once meant a line of a billion steps). */
Test(report, out_of_range_values_give_a_report_quickly, .init = mk_tmp, .fini = rm_tmp)
{
    put_result("teacher", "{\"id\":\"teacher\",\"role\":\"teacher\",\"model\":\"m\",\"quantizer\":\"fp32\",\"wbits\":32,"
                          "\"abits\":32,\"status\":\"ok\",\"top1\":250,\"model_bytes\":1000}\n");
    put_result("a", "{\"id\":\"a\",\"role\":\"student\",\"model\":\"m\",\"quantizer\":\"ewgs\",\"wbits\":1e30,"
                    "\"abits\":-3,\"seed\":1e300,\"status\":\"ok\",\"top1\":1e12,\"model_bytes\":1e308}\n");
    put_result("b", "{\"id\":\"b\",\"role\":\"student\",\"model\":\"m\",\"quantizer\":\"ewgs\",\"wbits\":1e30,"
                    "\"abits\":-3,\"seed\":2.5,\"status\":\"ok\",\"top1\":-1e12,\"model_bytes\":1e308}\n");
    put_result("c", "{\"id\":\"c\",\"role\":\"student\",\"model\":\"m\",\"quantizer\":\"lsq\",\"wbits\":2,"
                    "\"abits\":2,\"seed\":3,\"status\":\"ok\",\"top1\":50,\"model_bytes\":1e-300}\n");
    double t0 = sq_now();
    cr_assert_eq(report(g_tmp), 0);
    cr_expect_lt(sq_now() - t0, 5.0, "report took %.1f s", sq_now() - t0);
    char *csv = slurp("report.csv");
    cr_expect(strstr(csv, "\na,student,m,ewgs,0,0,0,1e+12,"), "wbits, abits, seed of a: %s", csv);
    cr_expect(strstr(csv, "\nb,student,m,ewgs,0,0,0,-1e+12,"), "wbits, abits, seed of b: %s", csv);
    free(csv);
}
