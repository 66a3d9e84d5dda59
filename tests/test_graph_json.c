/* test_graph_json.c: a model's graph as JSON and back (the "graph" metadata of imported models'
   checkpoints): every zoo model rebuilt node for node and parameter for parameter, with the same
   forward; hostile texts refused with one line, never a crash. */
#include "sqakd/checkpoint.h"
#include "util_check.h"
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sq_model *as_graph(const sq_model *src)
{
    char *j = sq_model_graph_json(src);
    sq_model *m = NULL;
    sq_status st = sq_model_from_graph_json(j, "test", &m);
    cr_assert_eq(st, SQ_OK, "%s", sq_last_error());
    free(j);
    return m;
}

Test(graph_json, zoo_models_rebuild_identically)
{
    static const char *arch[] = {"smallcnn", "resnet20", "vgg8"};
    const int shape[3][3] = {{1, 28, 28}, {3, 32, 32}, {3, 32, 32}};
    for (int a = 0; a < 3; a++) {
        sq_model *z;
        cr_assert_eq(sq_model_create(arch[a], shape[a][0], shape[a][1], shape[a][2], 10, &z), SQ_OK);
        sq_model *g = as_graph(z);
        cr_assert_str_eq(g->arch, "graph");
        cr_assert_eq(g->nnodes, z->nnodes, "%s", arch[a]);
        cr_assert_eq(g->nparams, z->nparams, "%s", arch[a]);
        cr_assert_eq(g->classes, 10);
        for (int i = 0; i < z->nnodes; i++) {
            const sq_node *p = &z->nodes[i], *q = &g->nodes[i];
            cr_assert_eq(p->op, q->op, "%s node %d", arch[a], i);
            cr_assert(p->c == q->c && p->h == q->h && p->w == q->w, "%s node %d shape", arch[a], i);
            cr_assert(p->in0 == q->in0 && p->in1 == q->in1, "%s node %d inputs", arch[a], i);
            cr_assert_eq(p->quantizable, q->quantizable);
            cr_assert_eq(p->first_or_last, q->first_or_last);
            cr_assert_str_eq(p->name, q->name);
        }
        for (int i = 0; i < z->nparams; i++) {
            cr_assert_str_eq(z->params[i].name, g->params[i].name);
            cr_assert_eq(z->params[i].numel, g->params[i].numel);
            cr_assert_eq(z->params[i].kind, g->params[i].kind);
        }
        /* the same weights give the same logits */
        cr_assert_eq(sq_model_setup(z, sq_backend_cpu(), 2, 0), SQ_OK);
        cr_assert_eq(sq_model_setup(g, sq_backend_cpu(), 2, 0), SQ_OK);
        sq_model_init_weights(z, 5);
        cr_assert_eq(sq_model_copy_matching(g, z), z->nparams);
        size_t nx = (size_t)2 * shape[a][0] * shape[a][1] * shape[a][2];
        float *x = malloc(nx * sizeof(float));
        sqt_fill_normal(x, nx, 0, 1, 3);
        sq_model_set_input(z, x, 2);
        sq_model_set_input(g, x, 2);
        const float *yz = sq_model_forward(z, 2, 0), *yg = sq_model_forward(g, 2, 0);
        cr_assert_eq(sqt_check_equal(arch[a], yg, yz, 20), 0);
        free(x);
        sq_model_free(z);
        sq_model_free(g);
    }
}

Test(graph_json, a_graph_round_trips_through_a_checkpoint)
{
    sq_model *z, *g, *back;
    cr_assert_eq(sq_model_create("resnet20", 3, 32, 32, 10, &z), SQ_OK);
    g = as_graph(z);
    sq_model_free(z);
    cr_assert_eq(sq_model_setup(g, sq_backend_cpu(), 2, 0), SQ_OK);
    sq_model_init_weights(g, 9);
    char path[] = "/tmp/sqakd_graph_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    sq_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    snprintf(meta.arch, sizeof meta.arch, "graph");
    meta.in_c = 3; meta.in_h = 32; meta.in_w = 32; meta.classes = 10;
    for (int i = 0; i < 4; i++) meta.std[i] = 1;
    snprintf(meta.role, sizeof meta.role, "teacher");
    cr_assert_eq(sq_ckpt_save(g, &meta, path), SQ_OK, "%s", sq_last_error());
    sq_ckpt_meta rm;
    cr_assert_eq(sq_ckpt_open_model(path, sq_backend_cpu(), 2, 0, &back, &rm), SQ_OK, "%s", sq_last_error());
    cr_assert_str_eq(rm.arch, "graph");
    cr_assert_eq(back->nnodes, g->nnodes);
    float x[2 * 3 * 32 * 32];
    sqt_fill_normal(x, sizeof x / sizeof x[0], 0, 1, 4);
    sq_model_set_input(g, x, 2);
    sq_model_set_input(back, x, 2);
    cr_assert_eq(sqt_check_equal("logits", sq_model_forward(back, 2, 0), sq_model_forward(g, 2, 0), 20), 0);
    sq_model_free(g);
    sq_model_free(back);
    unlink(path);
}

/* hostile or broken texts: one error naming the source, no crash, no model */
Test(graph_json, malformed_texts_are_refused)
{
    static const char *bad[] = {
        "",
        "[]",
        "{\"nodes\": []}",
        "{\"nodes\": [{\"op\": \"input\", \"c\": 3, \"h\": 8, \"w\": 8}]}",
        /* a forward reference */
        "{\"nodes\": [{\"op\": \"input\", \"c\": 3, \"h\": 8, \"w\": 8}, {\"op\": \"act\", \"in0\": 1, \"act\": 0}]}",
        /* an unknown op */
        "{\"nodes\": [{\"op\": \"input\", \"c\": 3, \"h\": 8, \"w\": 8}, {\"op\": \"rm -rf\", \"in0\": 0}]}",
        /* groups that do not divide */
        "{\"nodes\": [{\"op\": \"input\", \"c\": 3, \"h\": 8, \"w\": 8}, {\"op\": \"conv\", \"in0\": 0, \"c\": 4, "
        "\"kh\": 3, \"kw\": 3, \"stride\": 1, \"pad\": 1, \"groups\": 2}]}",
        /* a kernel larger than the input */
        "{\"nodes\": [{\"op\": \"input\", \"c\": 3, \"h\": 2, \"w\": 2}, {\"op\": \"conv\", \"in0\": 0, \"c\": 4, "
        "\"kh\": 9, \"kw\": 9, \"stride\": 1, \"pad\": 0, \"groups\": 1}]}",
        /* an add of different shapes */
        "{\"nodes\": [{\"op\": \"input\", \"c\": 3, \"h\": 8, \"w\": 8}, {\"op\": \"gap\", \"in0\": 0}, "
        "{\"op\": \"add\", \"in0\": 0, \"in1\": 1}]}",
        /* a huge input */
        "{\"nodes\": [{\"op\": \"input\", \"c\": 4096, \"h\": 65536, \"w\": 65536}, {\"op\": \"gap\", \"in0\": 0}]}",
        /* a slice beyond the channels */
        "{\"nodes\": [{\"op\": \"input\", \"c\": 3, \"h\": 8, \"w\": 8}, {\"op\": \"slice\", \"in0\": 0, \"c0\": 2, \"c\": 5}]}",
        /* a view that changes the number of values */
        "{\"nodes\": [{\"op\": \"input\", \"c\": 3, \"h\": 8, \"w\": 8}, {\"op\": \"flatten\", \"in0\": 0, \"c\": 7}]}",
        /* non-integral and negative numbers */
        "{\"nodes\": [{\"op\": \"input\", \"c\": 3.5, \"h\": 8, \"w\": 8}, {\"op\": \"gap\", \"in0\": 0}]}",
        "{\"nodes\": [{\"op\": \"input\", \"c\": -3, \"h\": 8, \"w\": 8}, {\"op\": \"gap\", \"in0\": 0}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sq_model *m = (sq_model *)1;
        sq_status st = sq_model_from_graph_json(bad[i], "evil.safetensors", &m);
        cr_assert_neq(st, SQ_OK, "case %zu accepted", i);
        cr_assert_null(m, "case %zu", i);
        cr_assert_not_null(strstr(sq_last_error(), "evil.safetensors"), "case %zu: %s", i, sq_last_error());
        cr_assert_null(strchr(sq_last_error(), '\n'), "case %zu", i);
    }
}
