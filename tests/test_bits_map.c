/* test_bits_map.c: Criterion suite "bitsmap": per-layer bit-widths (issue 20 item 5,
   host/model/bits_map.c): the map's canonical form and its refusals (one line naming what is
   wrong), applied by sq_model_set_quant (layers refused by name with the valid names listed),
   the model size at the per-layer bit-widths, and the checkpoint that carries the map's content
   and reopens with it. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "sqakd/checkpoint.h"
#include "sqakd/model.h"
#include "util_check.h"
#include "util_fixtures.h"

static const char *canon(const char *text)
{
    const char *out = NULL;
    cr_assert_eq(sq_bits_map_canonical(text, strlen(text), "test map", &out), SQ_OK, "%s", sq_last_error());
    return out;
}

Test(bitsmap, canonical_form_is_compact_and_interned)
{
    const char *a = canon(" { \"conv2\" : {\"abits\": 3, \"wbits\":2}, \"conv3\": {\"wbits\": 8.0} } ");
    cr_assert_str_eq(a, "{\"conv2\":{\"wbits\":2,\"abits\":3},\"conv3\":{\"wbits\":8}}");
    const char *b = canon("{\"conv2\":{\"wbits\":2,\"abits\":3},\"conv3\":{\"wbits\":8}}");
    cr_assert_eq(a, b, "the same map is one interned text");
    cr_assert_neq(a, canon("{\"conv2\":{\"wbits\":2}}"));
}

Test(bitsmap, bad_maps_are_refused_with_one_line)
{
    const struct { const char *text, *needle; } bad[] = {
        {"{\"conv2\": {\"wbits\": 2}", "is not JSON (byte"},
        {"[1, 2]", "non-empty JSON object"},
        {"{}", "non-empty JSON object"},
        {"{\"conv2\": 4}", "needs an object"},
        {"{\"conv2\": {\"wbits\": 0}}", "wbits must be an integer in 1..8"},
        {"{\"conv2\": {\"abits\": 9}}", "abits must be an integer in 1..8"},
        {"{\"conv2\": {\"wbits\": 2.5}}", "wbits must be an integer in 1..8"},
        {"{\"conv2\": {\"wbits\": \"4\"}}", "wbits must be an integer in 1..8"},
        {"{\"conv2\": {\"bits\": 4}}", "unknown key 'bits' (wbits or abits)"},
        {"{\"conv2\": {\"wbits\": 4}, \"conv2\": {\"abits\": 4}}", "listed twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *out = (const char *)1;
        cr_assert_eq(sq_bits_map_canonical(bad[i].text, strlen(bad[i].text), "--bits-map m.json", &out), SQ_EARG,
                     "%s accepted", bad[i].text);
        cr_assert_null(out);
        const char *e = sq_last_error();
        cr_assert(strstr(e, "--bits-map m.json") && strstr(e, bad[i].needle) && !strchr(e, '\n'),
                  "%s: error '%s' lacks '%s'", bad[i].text, e, bad[i].needle);
    }
}

static sq_model *smallcnn(const sq_quant_opts *q, sq_status *st)
{
    sq_model *m;
    cr_assert_eq(sq_model_create("smallcnn", 1, 28, 28, 10, &m), SQ_OK);
    *st = sq_model_set_quant(m, q);
    return m;
}

static const sq_node *node(const sq_model *m, const char *name)
{
    for (int i = 0; i < m->nnodes; i++)
        if (!strcmp(m->nodes[i].name, name)) return &m->nodes[i];
    cr_assert_fail("no node %s", name);
    return NULL;
}

Test(bitsmap, applied_per_layer_and_unknown_layers_refused)
{
    sq_status st;
    sq_quant_opts q = {.kind = SQ_QUANT_LSQ, .wbits = 4, .abits = 4, .bits_map = canon("{\"conv3\": {\"wbits\": 2}}")};
    sq_model *m = smallcnn(&q, &st);
    cr_assert_eq(st, SQ_OK, "%s", sq_last_error());
    cr_assert_eq(node(m, "conv2")->qw.bits, 4);
    cr_assert_eq(node(m, "conv2")->qa.bits, 4);
    cr_assert_eq(node(m, "conv3")->qw.bits, 2);
    cr_assert_eq(node(m, "conv3")->qa.bits, 4, "abits not in the map: --abits");
    /* model size: 32-bit parameters, quantized weights at their own bits */
    double want = 0;
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i].kind != SQ_PT_BUFFER) want += 4.0 * m->params[i].numel;
    want -= m->params[node(m, "conv2")->pw].numel * (4.0 - 0.5) + m->params[node(m, "conv3")->pw].numel * (4.0 - 0.25);
    cr_assert(fabs(sq_model_size_bytes(m) - want) < 0.5, "size %.1f, want %.1f", sq_model_size_bytes(m), want);
    sq_model_free(m);
    /* a name the model does not have, and a layer that is not quantized: refused, names listed */
    q.bits_map = canon("{\"conv9\": {\"wbits\": 2}}");
    m = smallcnn(&q, &st);
    cr_assert_eq(st, SQ_EARG);
    cr_assert(strstr(sq_last_error(), "no layer 'conv9'") && strstr(sq_last_error(), "conv2, conv3"), "%s",
              sq_last_error());
    sq_model_free(m);
    q.bits_map = canon("{\"fc\": {\"abits\": 8}}");
    m = smallcnn(&q, &st);
    cr_assert_eq(st, SQ_EARG);
    cr_assert(strstr(sq_last_error(), "'fc' is not quantized") && strstr(sq_last_error(), "--quant-first-last"), "%s",
              sq_last_error());
    sq_model_free(m);
    q.first_last = 1; /* now it is */
    m = smallcnn(&q, &st);
    cr_assert_eq(st, SQ_OK, "%s", sq_last_error());
    cr_assert_eq(node(m, "fc")->qa.bits, 8);
    cr_assert_eq(node(m, "fc")->qw.bits, 4);
    sq_model_free(m);
}

static char g_tmp[256];
static void mk_tmp(void) { cr_assert_not_null(sqt_mkdtemp(g_tmp, sizeof g_tmp, "sqakd_bm")); }
static void rm_tmp(void) { cr_expect_eq(sqt_rmtree(g_tmp), 0); }

/* the checkpoint carries the map's content (quant_bits_map) and reopens with the same layers'
   bits and the same logits */
Test(bitsmap, checkpoint_carries_the_map, .init = mk_tmp, .fini = rm_tmp)
{
    sq_quant_opts q = {.kind = SQ_QUANT_EWGS, .wbits = 4, .abits = 4, .per_channel = 1,
                       .bits_map = canon("{\"conv2\": {\"wbits\": 1, \"abits\": 2}}")};
    sq_status st;
    sq_model *m = smallcnn(&q, &st);
    cr_assert_eq(st, SQ_OK, "%s", sq_last_error());
    cr_assert_eq(sq_model_setup(m, sq_backend_cpu(), 8, 0), SQ_OK);
    sq_model_init_weights(m, 3);
    float x[8 * 784], z[80];
    sqt_fill_normal(x, 8 * 784, 0, 1, 3);
    cr_assert_eq(sq_model_quant_init(m, x, 8), SQ_OK);
    sq_model_set_input(m, x, 8);
    memcpy(z, sq_model_forward(m, 8, 0), sizeof z);
    sq_ckpt_meta meta = {.in_c = 1, .in_h = 28, .in_w = 28, .classes = 10, .q = q, .std = {1, 1, 1, 1}};
    snprintf(meta.arch, sizeof meta.arch, "smallcnn");
    snprintf(meta.role, sizeof meta.role, "student");
    char path[400];
    snprintf(path, sizeof path, "%s/bm.safetensors", g_tmp);
    cr_assert_eq(sq_ckpt_save(m, &meta, path), SQ_OK, "%s", sq_last_error());
    sq_model *r;
    sq_ckpt_meta mr;
    cr_assert_eq(sq_ckpt_open_model(path, sq_backend_cpu(), 8, 0, &r, &mr), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(mr.q.bits_map, q.bits_map, "the map read back is the same (interned) text");
    cr_assert_eq(mr.q.per_channel, 1);
    cr_assert_eq(node(r, "conv2")->qw.bits, 1);
    cr_assert_eq(node(r, "conv2")->qa.bits, 2);
    cr_assert_eq(node(r, "conv3")->qw.bits, 4);
    sq_model_set_input(r, x, 8);
    cr_assert_eq(sqt_check_equal("reloaded logits", sq_model_forward(r, 8, 0), z, 80), 0);
    sq_model_free(r);
    sq_model_free(m);
}

/* ---- the command line: --bits-map, --per-channel and :pc through distill and --resume ---- */

static char g_dir[256], g_out[16384];
static void cli_setup(void) { sqt_cli_setup(g_dir, sizeof g_dir, "sqakd_bmcli"); }
static void cli_teardown(void) { cr_expect_eq(sqt_rmtree(g_dir), 0); }
#define run(...) sqt_run(g_out, sizeof g_out, __VA_ARGS__)

static void meta_of(const char *path, sq_ckpt_meta *m)
{
    cr_assert_eq(sq_ckpt_read_meta(path, m), SQ_OK, "%s", sq_last_error());
}

/* Two students (ewgs per tensor, lsq per channel by ':pc') with one map: each checkpoint carries
   the map and its granularity, command.txt the map's content; the map file deleted, --resume
   continues with the recorded map; a map naming a layer the model lacks is refused with one line
   and no run directory. */
Test(bitsmap, distill_records_and_resumes_the_map, .init = cli_setup, .fini = cli_teardown, .timeout = 300)
{
    char img[400], lab[400], t[400], map[400], out[400], p[600];
    snprintf(img, sizeof img, "%s/img.idx", g_dir);
    snprintf(lab, sizeof lab, "%s/lab.idx", g_dir);
    sqt_write_idx_pattern(img, lab, 64, 8, 3, 5);
    sq_model *m;
    cr_assert_eq(sq_model_create("smallcnn", 1, 8, 8, 3, &m), SQ_OK);
    cr_assert_eq(sq_model_setup(m, sq_backend_cpu(), 4, 0), SQ_OK);
    sq_model_init_weights(m, 2);
    sq_ckpt_meta tm = {.in_c = 1, .in_h = 8, .in_w = 8, .classes = 3, .mean = {0.3f}, .std = {0.3f, 1, 1, 1}};
    snprintf(tm.arch, sizeof tm.arch, "smallcnn");
    snprintf(t, sizeof t, "%s/t.safetensors", g_dir);
    cr_assert_eq(sq_ckpt_save(m, &tm, t), SQ_OK, "%s", sq_last_error());
    sq_model_free(m);
    snprintf(map, sizeof map, "%s/map.json", g_dir);
    FILE *f = fopen(map, "w");
    fprintf(f, "{\"conv3\": {\"wbits\": 2, \"abits\": 3}}\n");
    fclose(f);
    snprintf(out, sizeof out, "%s/run", g_dir);
    cr_assert_eq(run("distill --teacher %s --data idx:%s --students ewgs:4,lsq:4:pc --bits-map %s --epochs 1 --batch 16 "
                     "--threads 1 --quiet --out %s", t, img, map, out), 0, "%s", g_out);
    const char *want = canon("{\"conv3\": {\"wbits\": 2, \"abits\": 3}}");
    sq_ckpt_meta a, b;
    snprintf(p, sizeof p, "%s/ewgs_w4a4/last.safetensors", out);
    meta_of(p, &a);
    snprintf(p, sizeof p, "%s/lsq_w4a4_pc/last.safetensors", out);
    meta_of(p, &b);
    cr_expect_eq(a.q.bits_map, want);
    cr_expect_eq(b.q.bits_map, want);
    cr_expect_eq(a.q.per_channel, 0);
    cr_expect_eq(b.q.per_channel, 1);
    cr_expect_eq(a.epoch, 1);
    snprintf(p, sizeof p, "%s/lsq_w4a4_pc/command.txt", out);
    f = fopen(p, "r");
    cr_assert_not_null(f);
    char txt[8192];
    size_t k = fread(txt, 1, sizeof txt - 1, f);
    txt[k] = 0;
    fclose(f);
    cr_expect(strstr(txt, "\"bits_map_json\":\"{\\\"conv3\\\":{\\\"wbits\\\":2,\\\"abits\\\":3}}\"") != NULL, "%s", txt);
    /* the file gone: the resume takes the recorded map */
    cr_assert_eq(unlink(map), 0);
    cr_assert_eq(run("distill --resume %s --epochs 2 --quiet", out), 0, "%s", g_out);
    snprintf(p, sizeof p, "%s/lsq_w4a4_pc/last.safetensors", out);
    meta_of(p, &b);
    cr_expect_eq(b.epoch, 2);
    cr_expect_eq(b.q.bits_map, want);
    cr_expect_eq(b.q.per_channel, 1);
    /* info shows each layer's bits */
    cr_assert_eq(run("info %s", p), 0, "%s", g_out);
    cr_expect(strstr(g_out, "conv3") && strstr(g_out, "W2 A3  per-channel"), "%s", g_out);
    /* an unknown layer: one line, nothing written */
    f = fopen(map, "w");
    fprintf(f, "{\"conv7\": {\"wbits\": 2}}\n");
    fclose(f);
    snprintf(out, sizeof out, "%s/bad", g_dir);
    cr_expect_eq(run("distill --teacher %s --data idx:%s --bits-map %s --epochs 1 --batch 16 --threads 1 --quiet "
                     "--out %s", t, img, map, out), 2);
    cr_expect(strstr(g_out, "sqakd distill: bits map: no layer 'conv7'") && strstr(g_out, "conv2, conv3"), "%s", g_out);
    cr_expect_neq(access(out, F_OK), 0, "%s was created", out);
}
