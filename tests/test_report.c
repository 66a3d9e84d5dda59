/* test_report.c: 'sqakd report DIR' on fixed result.json inputs: the exact Markdown and CSV text,
   the figures (cairo): six files, PNGs of the promised size with the series drawn, PDFs with
   header, cross-reference table and trailer, SVGs that parse as XML; one error bar per
   configuration with more than one finished seed (in the SVG and in sq_report_points, whose
   numbers are the table's), one band per such configuration and panel in the per-epoch curves
   read from metrics.jsonl, the same bytes from the same inputs, hostile names drawn as glyphs
   only, bad metrics.jsonl lines refused with one line naming the file and line; one-line errors
   for a missing or corrupt sweep directory; hostile result.json values: a size of 1e300 printed
   whole (it overflowed a line buffer), bit-widths, seeds and metrics out of range or not integers
   refused with one line naming the file and key, control characters and over-long names refused,
   separators quoted in the CSV and escaped in the Markdown. Runs the subcommand in-process
   (sq_cmd_report). */
#define _GNU_SOURCE
#include "cli/cli.h"
#include "cli/report.h"
#include "util_fixtures.h"
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
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

/* defined with the tests of hostile values below */
static int report_err(char *err, size_t n);
static void expect_one_line(const char *err, const char *what, const char *value);
static char *slurp_n(const char *name, size_t *n);

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
    "at their bit-width and everything else at 32 bits. Error bars and bands: mean ± 1 sample s.d. over the "
    "finished seeds (vector figures: report.svg, report.pdf, report_curves.svg, report_curves.pdf).\n"
    "\n"
    "![accuracy against model size](report.png)\n"
    "\n"
    "![per-epoch agreement and KL](report_curves.png)\n";

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

/* the RGB pixels of DIR/name (a PNG), asserting its size */
static uint8_t *read_png(const char *name, unsigned w, unsigned h)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", g_tmp, name);
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    cr_assert(png_image_begin_read_from_file(&im, p), "%s: %s", p, im.message);
    cr_expect_eq(im.width, w, "%s: width %u", name, im.width);
    cr_expect_eq(im.height, h, "%s: height %u", name, im.height);
    cr_assert(im.width == w && im.height == h);
    im.format = PNG_FORMAT_RGB;
    uint8_t *px = malloc(PNG_IMAGE_SIZE(im));
    cr_assert(png_image_finish_read(&im, NULL, px, 0, NULL), "%s", im.message);
    return px;
}

/* pixels within 2 of (r, g, b) */
static long count_px(const uint8_t *px, size_t n, int r, int g, int b)
{
    long k = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *c = px + 3 * i;
        k += abs(c[0] - r) <= 2 && abs(c[1] - g) <= 2 && abs(c[2] - b) <= 2;
    }
    return k;
}

Test(report, png_has_the_promised_size_and_the_series, .init = mk_tmp, .fini = rm_tmp)
{
    fixed_inputs();
    cr_assert_eq(report(g_tmp), 0);
    const unsigned W = SQ_REPORT_W * SQ_REPORT_PNG_SCALE, H = SQ_REPORT_H * SQ_REPORT_PNG_SCALE;
    cr_expect_eq(W, 1440u);
    cr_expect_eq(H, 900u);
    uint8_t *px = read_png("report.png", W, H);
    size_t n = (size_t)W * H;
    /* the first series colour (ewgs, 31,119,180), the teacher's grey and black text are all there */
    long blue = count_px(px, n, 31, 119, 180), grey = count_px(px, n, 76, 76, 76), black = count_px(px, n, 0, 0, 0),
         white = count_px(px, n, 255, 255, 255);
    cr_expect_gt(blue, 1000, "ewgs line: %ld pixels", blue);
    cr_expect_gt(grey, 1000, "teacher line: %ld pixels", grey);
    cr_expect_gt(black, 2000, "text: %ld pixels", black);
    cr_expect_gt(white, (long)n / 2, "background: %ld pixels", white);
    free(px);
    px = read_png("report_curves.png", SQ_CURVES_W * SQ_REPORT_PNG_SCALE, SQ_CURVES_H * SQ_REPORT_PNG_SCALE);
    free(px);
}

/* 0 when python3's XML parser reads DIR/name as an SVG document (an <svg> root of the size in
   points) without an element named in bad */
static int svg_check(const char *name, int w, int h)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import sys, xml.etree.ElementTree as E\n"
             "r = E.parse(sys.argv[1]).getroot()\n"
             "names = {e.tag.split(\"}\")[-1] for e in r.iter()}\n"
             "ok = r.tag == \"{http://www.w3.org/2000/svg}svg\" and r.get(\"width\") == sys.argv[2] + \"pt\" and "
             "r.get(\"height\") == sys.argv[3] + \"pt\" and not names & {\"script\", \"b\", \"foreignObject\", \"text\"}\n"
             "sys.exit(0 if ok else 3)' %s/%s %d %d",
             g_tmp, name, w, h);
    return system(cmd);
}

/* occurrences of needle in DIR/name */
static int count_in(const char *name, const char *needle)
{
    size_t n;
    char *s = slurp_n(name, &n);
    int k = 0;
    for (char *p = s; (p = memmem(p, n - (p - s), needle, strlen(needle))); p += strlen(needle)) k++;
    free(s);
    return k;
}

static void expect_pdf(const char *name)
{
    size_t n;
    char *s = slurp_n(name, &n);
    cr_expect(n > 1000 && !memcmp(s, "%PDF-1.", 7), "%s: no PDF header", name);
    cr_expect(memmem(s, n, "\nxref\n", 6) && memmem(s, n, "trailer", 7) && memmem(s, n, "startxref", 9),
              "%s: no cross-reference table and trailer", name);
    cr_expect(n > 6 && !memcmp(s + n - 6, "%%EOF\n", 6), "%s: does not end in %%%%EOF", name);
    cr_expect(!memmem(s, n, "CreationDate", 12), "%s: holds a creation date (the bytes would change)", name);
    free(s);
}

/* metrics.jsonl of task id: epochs 1..n, agreement a0 + 2e, KL k0 / e */
static void put_metrics(const char *id, int n, double a0, double k0)
{
    char p[600];
    snprintf(p, sizeof p, "%s/tasks/%s/metrics.jsonl", g_tmp, id);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    for (int e = 1; e <= n; e++)
        fprintf(f, "{\"epoch\":%d,\"step\":%d,\"lr\":0.001,\"agreement\":%g,\"kl\":%g}\n", e, 10 * e, a0 + 2 * e, k0 / e);
    fclose(f);
}

Test(report, figures_are_svg_pdf_and_png_with_error_bars_over_seeds, .init = mk_tmp, .fini = rm_tmp)
{
    fixed_inputs();
    put_metrics("ewgs_w2a2_s1", 3, 80, 0.3);
    put_metrics("ewgs_w2a2_s2", 3, 81, 0.2);
    put_metrics("ewgs_w4a4_s1", 3, 85, 0.1);
    put_metrics("lsq_w2a2_s1", 1, 50, 2.0);   /* diverged: not drawn */
    cr_assert_eq(report(g_tmp), 0);
    cr_expect_eq(svg_check("report.svg", SQ_REPORT_W, SQ_REPORT_H), 0, "report.svg is not the SVG promised");
    cr_expect_eq(svg_check("report_curves.svg", SQ_CURVES_W, SQ_CURVES_H), 0, "report_curves.svg is not the SVG promised");
    expect_pdf("report.pdf");
    expect_pdf("report_curves.pdf");
    /* one error bar (the only strokes with square caps): ewgs W2A2, the one configuration with two
       finished seeds; none on ewgs W4A4 (one seed) or lsq (diverged) */
    cr_expect_eq(count_in("report.svg", "stroke-linecap:square"), 1);
    cr_expect_eq(count_in("report_curves.svg", "stroke-linecap:square"), 0);
    /* one band per panel for ewgs W2A2 (two seeds), none for ewgs W4A4 */
    cr_expect_eq(count_in("report_curves.svg", "fill-opacity:0.2;"), 2);
    /* no temporary file is left */
    DIR *d = opendir(g_tmp);
    for (struct dirent *e; (e = readdir(d));) cr_expect(!strstr(e->d_name, ".tmp."), "left: %s", e->d_name);
    closedir(d);
}

/* the points the figure draws and their error bars: the table's means and sample s.d. */
Test(report, points_are_the_tables_means_with_their_spread)
{
    sq_report_row r[5];
    memset(r, 0, sizeof r);
    const char *q[] = {"fp32", "ewgs", "ewgs", "ewgs", "lsq"};
    const int bits[] = {32, 2, 2, 4, 2};
    const double t1[] = {91.25, 88.5, 89.5, 90.75, NAN}, bytes[] = {1079400, 73140, 73140, 140224, 73150};
    for (int i = 0; i < 5; i++) {
        snprintf(r[i].role, sizeof r[i].role, "%s", i ? "student" : "teacher");
        snprintf(r[i].quantizer, sizeof r[i].quantizer, "%s", q[i]);
        snprintf(r[i].status, sizeof r[i].status, "%s", i == 4 ? "diverged" : "ok");
        r[i].wbits = r[i].abits = bits[i];
        r[i].top1 = t1[i];
        r[i].agreement = 90 + i;
        r[i].model_bytes = bytes[i];
        r[i].kl = r[i].train_seconds = NAN;
    }
    sq_report_point p[5];
    int use_top1 = -1, n = sq_report_points(r, 5, &use_top1, p);
    cr_assert_eq(n, 2);
    cr_expect_eq(use_top1, 1);
    cr_expect(p[0].series == 0 && p[0].wbits == 2 && p[0].seeds == 2 && p[0].bytes == 73140);
    cr_expect(fabs(p[0].mean - 89.0) < 1e-12 && fabs(p[0].sd - sqrt(0.5)) < 1e-12, "%g +- %g", p[0].mean, p[0].sd);
    cr_expect(p[1].wbits == 4 && p[1].seeds == 1 && p[1].mean == 90.75 && isnan(p[1].sd));
    /* a student without top-1: agreement for all */
    r[3].top1 = NAN;
    n = sq_report_points(r, 5, &use_top1, p);
    cr_expect_eq(use_top1, 0);
    cr_expect(n == 2 && p[0].mean == 91.5 && fabs(p[0].sd - sqrt(0.5)) < 1e-12 && p[1].mean == 93);
}

/* separate processes, as reports are made (cairo numbers the SVG's clip paths and glyph symbols
   per process, so a second figure in one process differs in those names only) */
Test(report, the_same_inputs_give_the_same_bytes, .init = mk_tmp, .fini = rm_tmp)
{
    struct stat sb;
    if (stat(sqt_bin(), &sb)) cr_skip_test("%s is not built", sqt_bin());
    fixed_inputs();
    put_metrics("ewgs_w2a2_s1", 4, 80, 0.3);
    put_metrics("ewgs_w2a2_s2", 4, 81, 0.2);
    const char *files[] = {"report.svg", "report.pdf", "report.png", "report_curves.svg", "report_curves.pdf",
                           "report_curves.png"};
    char *first[6], out[4096];
    size_t n1[6];
    cr_assert_eq(sqt_run(out, sizeof out, "report %s --quiet", g_tmp), 0, "%s", out);
    for (int i = 0; i < 6; i++) first[i] = slurp_n(files[i], &n1[i]);
    sleep(1);   /* a date in a file would differ */
    cr_assert_eq(sqt_run(out, sizeof out, "report %s --quiet", g_tmp), 0, "%s", out);
    for (int i = 0; i < 6; i++) {
        size_t n2;
        char *again = slurp_n(files[i], &n2);
        cr_expect(n1[i] == n2 && !memcmp(first[i], again, n2), "%s differs between two reports of the same inputs",
                  files[i]);
        free(again);
        free(first[i]);
    }
}

Test(report, hostile_names_are_drawn_as_text, .init = mk_tmp, .fini = rm_tmp)
{
    put_result("x", "{\"id\":\"<script>x</script>\",\"role\":\"student\",\"model\":\"<svg onload=alert(1)>&amp;\","
                    "\"quantizer\":\"</svg><b>&lt;\",\"wbits\":2,\"abits\":2,\"seed\":1,\"status\":\"ok\","
                    "\"top1\":88.5,\"agreement\":93,\"kl\":0.5,\"model_bytes\":100,\"train_seconds\":3}\n");
    put_metrics("x", 2, 80, 0.3);
    cr_assert_eq(report(g_tmp), 0);
    const char *figs[] = {"report.svg", "report_curves.svg"};
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(svg_check(figs[i], SQ_REPORT_W, i ? SQ_CURVES_H : SQ_REPORT_H), 0, "%s", figs[i]);
        cr_expect_eq(count_in(figs[i], "onload"), 0, "%s holds the name as markup", figs[i]);
        cr_expect_eq(count_in(figs[i], "<b>"), 0, "%s", figs[i]);
        cr_expect_eq(count_in(figs[i], "script"), 0, "%s", figs[i]);
    }
}

Test(report, bad_metrics_lines_are_refused_naming_file_and_line, .init = mk_tmp, .fini = rm_tmp)
{
    const char *bad[] = {"{\"epoch\":1}\nnot json\n", "{\"epoch\":0,\"kl\":1}\n", "{\"epoch\":1.5}\n",
                         "{\"epoch\":100001}\n", "{\"epoch\":1,\"agreement\":101}\n", "{\"epoch\":1,\"kl\":\"x\"}\n",
                         "[1,2]\n", "{\"epoch\":1,\"kl\":1e999}\n"};
    const char *what[] = {"line 2", "\"epoch\"", "\"epoch\"", "\"epoch\"", "\"agreement\"", "\"kl\"", "line 1",
                          "line 1"};
    for (int i = 0; i < 8; i++) {
        fixed_inputs();
        char p[600], err[2048];
        snprintf(p, sizeof p, "%s/tasks/ewgs_w4a4_s1/metrics.jsonl", g_tmp);
        FILE *f = fopen(p, "w");
        cr_assert_not_null(f);
        fputs(bad[i], f);
        fclose(f);
        cr_expect_eq(report_err(err, sizeof err), 2, "accepted: %s", bad[i]);
        expect_one_line(err, what[i], bad[i]);
        cr_expect(strstr(err, "ewgs_w4a4_s1/metrics.jsonl") != NULL, "the file is not named: %s", err);
        snprintf(p, sizeof p, "%s/report.png", g_tmp);
        cr_expect_neq(access(p, F_OK), 0, "a report was drawn from %s", bad[i]);
    }
    /* blank lines and an epoch without agreement or KL are fine */
    fixed_inputs();
    char p[600];
    snprintf(p, sizeof p, "%s/tasks/ewgs_w4a4_s1/metrics.jsonl", g_tmp);
    FILE *f = fopen(p, "w");
    fputs("{\"epoch\":1,\"agreement\":null}\n\n{\"epoch\":2,\"agreement\":90,\"kl\":0.1}\n", f);
    fclose(f);
    cr_expect_eq(report(g_tmp), 0);
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

/* ---- hostile or odd result.json values ---- */

/* runs report(g_tmp) with stderr captured into err */
static int report_err(char *err, size_t n)
{
    char p[512];
    snprintf(p, sizeof p, "%s/stderr.txt", g_tmp);
    fflush(stdout);
    fflush(stderr);
    int saved = dup(2), fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    int rc = report(g_tmp);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(p, "r");
    size_t k = f ? fread(err, 1, n - 1, f) : 0;
    err[k] = 0;
    if (f) fclose(f);
    return rc;
}

static void expect_one_line(const char *err, const char *what, const char *value)
{
    size_t len = strlen(err);
    int lines = 0;
    for (const char *c = err; *c; c++) lines += *c == '\n';
    cr_expect(lines == 1 && len && err[len - 1] == '\n' && !strncmp(err, "sqakd report: ", 14) && strstr(err, what),
              "value [%s]: expected one line naming '%s', got:\n%s", value, what, err);
}

/* the whole file, NULs included (*n bytes) */
static char *slurp_n(const char *name, size_t *n)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", g_tmp, name);
    FILE *f = fopen(p, "rb");
    cr_assert_not_null(f, "%s missing", p);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc(len + 1);
    cr_assert_eq(fread(s, 1, len, f), (size_t)len);
    s[len] = 0;
    fclose(f);
    *n = len;
    return s;
}

Test(report, huge_model_size_over_two_seeds_is_printed_whole, .init = mk_tmp, .fini = rm_tmp)
{
    put_result("ewgs_w2a2_s1", "{\"id\":\"ewgs_w2a2_s1\",\"role\":\"student\",\"model\":\"resnet20\",\"quantizer\":\"ewgs\","
                               "\"wbits\":2,\"abits\":2,\"seed\":1,\"status\":\"ok\",\"top1\":88.5,\"agreement\":93.12,"
                               "\"kl\":0.0625,\"model_bytes\":1e300,\"train_seconds\":300.4}\n");
    put_result("ewgs_w2a2_s2", "{\"id\":\"ewgs_w2a2_s2\",\"role\":\"student\",\"model\":\"resnet20\",\"quantizer\":\"ewgs\","
                               "\"wbits\":2,\"abits\":2,\"seed\":2,\"status\":\"ok\",\"top1\":89.5,\"agreement\":93.88,"
                               "\"kl\":0.0375,\"model_bytes\":1e300,\"train_seconds\":1e300}\n");
    cr_assert_eq(report(g_tmp), 0);
    char big[400], row[800], line[800];
    snprintf(big, sizeof big, "%.0f", 1e300);
    cr_assert_eq(strlen(big), 301u);
    size_t nmd, ncsv;
    char *md = slurp_n("report.md", &nmd), *csv = slurp_n("report.csv", &ncsv);
    cr_expect_eq(strlen(md), nmd, "report.md holds a NUL byte (bytes from beyond a buffer)");
    cr_expect_eq(strlen(csv), ncsv, "report.csv holds a NUL byte");
    snprintf(row, sizeof row, "\n| ewgs | W2A2 | 2 of 2 | 89.00 ± 0.71 | 93.50 ± 0.54 | %s |\n\n", big);
    cr_expect(strstr(md, row) != NULL, "the mean row is not\n%s\nin:\n%s", row, md);
    snprintf(line, sizeof line, "\n| ewgs_w2a2_s2 | resnet20 | ewgs | W2A2 | 89.50 | 93.88 | 0.0375 | %s | %.1f | ok |\n",
             big, 1e300);
    cr_expect(strstr(md, line) != NULL, "the task row is not\n%s\nin:\n%s", line, md);
    snprintf(line, sizeof line, "\newgs_w2a2_s2,student,resnet20,ewgs,2,2,2,89.5,93.88,0.0375,%s,%.3f,ok\n", big, 1e300);
    cr_expect(strstr(csv, line) != NULL, "the CSV row is not\n%s\nin:\n%s", line, csv);
    free(md);
    free(csv);
}

/* one result whose key holds value (JSON text; NULL: no such key) is refused with one line that
   names the file and holds what */
static void expect_refused_why(int i, const char *key, const char *value, const char *what);
/* ... and names the key */
static void expect_refused(int i, const char *key, const char *value)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\"", key);
    expect_refused_why(i, key, value, k);
}

static void expect_refused_why(int i, const char *key, const char *value, const char *what)
{
    char id[32], json[1024], err[2048];
    snprintf(id, sizeof id, "r%d", i);
    const char *keys[] = {"id", "role", "model", "quantizer", "wbits", "abits", "seed", "status", "top1", "agreement",
                          "kl", "model_bytes", "train_seconds"};
    const char *vals[] = {"\"r\"", "\"student\"", "\"resnet20\"", "\"ewgs\"", "2", "2", "1", "\"ok\"", "88.5", "93",
                          "0.06", "73140", "300"};
    size_t len = snprintf(json, sizeof json, "{");
    int found = 0;
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        const char *v = vals[k];
        if (!strcmp(keys[k], key)) { v = value; found = 1; }
        if (v) len += snprintf(json + len, sizeof json - len, "%s\"%s\":%s", len > 1 ? "," : "", keys[k], v);
    }
    cr_assert(found);
    snprintf(json + len, sizeof json - len, "}\n");
    put_result(id, json);
    cr_expect_eq(report_err(err, sizeof err), 2, "%s was accepted", json);
    expect_one_line(err, what, json);
    cr_expect(strstr(err, "/tasks/") && strstr(err, "result.json"), "the file is not named: %s", err);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/tasks/%s'", g_tmp, id);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/report.md", g_tmp);
    cr_expect_neq(access(cmd, F_OK), 0, "a report was written from %s", json);
}

Test(report, bit_widths_and_seeds_out_of_range_are_refused, .init = mk_tmp, .fini = rm_tmp)
{
    int i = 0;
    const char *bits[] = {"1e300", "-1e300", "2.5", "0", "33", "-4", "2147483647", "-2147483648", "\"4\"", "null", NULL};
    for (int k = 0; k < 11; k++) {
        expect_refused(i++, "wbits", bits[k]);
        expect_refused(i++, "abits", bits[k]);
    }
    const char *seeds[] = {"1e300", "-1e300", "1.5", "9223372036854775808", "-9300000000000000000", "\"1\"", NULL};
    for (int k = 0; k < 7; k++) expect_refused(i++, "seed", seeds[k]);
    /* percentages, sizes and times out of range */
    expect_refused(i++, "top1", "1e300");
    expect_refused(i++, "top1", "-1");
    expect_refused(i++, "agreement", "100.5");
    expect_refused(i++, "model_bytes", "-5");
    expect_refused(i++, "train_seconds", "-1e300");
    /* numbers beyond a double (infinite once read) are refused by the JSON reader, at their byte */
    const char *keys[] = {"wbits", "seed", "agreement", "kl", "model_bytes"};
    for (int k = 0; k < 5; k++) expect_refused_why(i++, keys[k], k % 2 ? "-1e999" : "1e999", "result.json");
}

Test(report, control_characters_and_overlong_names_are_refused, .init = mk_tmp, .fini = rm_tmp)
{
    int i = 0;
    expect_refused(i++, "id", "\"a\\u001b[31mred\"");
    expect_refused(i++, "id", "\"a\\nb\"");
    expect_refused(i++, "id", "\"a\\u0000b\"");
    expect_refused(i++, "model", "\"res\\rnet\"");
    expect_refused(i++, "quantizer", "\"e\\u0007wgs\"");
    expect_refused(i++, "status", "\"ok\\u009b31m\"");
    expect_refused(i++, "role", "\"student\\u007f\"");
    expect_refused(i++, "model", "\"res\\tnet\"");
    char longid[200];
    snprintf(longid, sizeof longid, "\"%0100d\"", 7);
    expect_refused(i++, "id", longid);
    expect_refused(i++, "model", "\"a_model_name_of_more_than_31_bytes\"");
    expect_refused(i++, "quantizer", "\"quantizer_name_x\"");
}

Test(report, separators_in_names_are_quoted_in_csv_and_escaped_in_markdown, .init = mk_tmp, .fini = rm_tmp)
{
    put_result("a", "{\"id\":\"a,b \\\"c\\\"\",\"role\":\"student\",\"model\":\"res|net\",\"quantizer\":\"q,1\","
                    "\"wbits\":2,\"abits\":2,\"seed\":1,\"status\":\"ok\",\"top1\":88.5,\"agreement\":93,"
                    "\"kl\":0.5,\"model_bytes\":100,\"train_seconds\":3}\n");
    cr_assert_eq(report(g_tmp), 0);
    char *md = slurp("report.md"), *csv = slurp("report.csv");
    const char *want_csv = "\"a,b \"\"c\"\"\",student,res|net,\"q,1\",2,2,1,88.5,93,0.5,100,3.000,ok\n";
    cr_expect(strstr(csv, want_csv) != NULL, "no\n%s\nin:\n%s", want_csv, csv);
    const char *want_md = "\n| a,b \"c\" | res\\|net | q,1 | W2A2 | 88.50 | 93.00 | 0.5000 | 100 | 3.0 | ok |\n";
    cr_expect(strstr(md, want_md) != NULL, "no\n%s\nin:\n%s", want_md, md);
    free(md);
    free(csv);
}

Test(report, overlong_directory_is_refused, .init = mk_tmp, .fini = rm_tmp)
{
    fixed_inputs();
    char dir[4400], err[2048];
    int n = snprintf(dir, sizeof dir, "%s", g_tmp);
    while (n < 4300) n += snprintf(dir + n, sizeof dir - n, "/.");
    char *argv[] = {"report", dir, "--quiet", NULL};
    char p[512];
    snprintf(p, sizeof p, "%s/stderr.txt", g_tmp);
    fflush(stderr);
    int saved = dup(2), fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
    int rc = sq_cmd_report(3, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(p, "r");
    size_t k = fread(err, 1, sizeof err - 1, f);
    err[k] = 0;
    fclose(f);
    cr_expect_eq(rc, 2, "a %zu-byte directory was accepted", strlen(dir));
    expect_one_line(err, "bytes", "dir");
}
