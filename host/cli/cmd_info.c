/* cmd_info.c: 'sqakd info CKPT' (metadata, tensors) and 'sqakd models' (the zoo). */
#include "cli.h"
#include "sqakd/checkpoint.h"
#include "sqakd/import.h"
#include "sqakd/safetensors.h"
#include "sqakd/train.h"
#include <stdio.h>
#include <string.h>

/* prints s escaped (sq_printable: a hostile file cannot move the cursor, recolour the terminal or
   forge lines), padded to width */
static void show(const char *s, int width)
{
    static char buf[16384];
    printf("%-*s", width, sq_printable(s, buf, sizeof buf));
}

/* the graph, one node a line: id, op, name, output shape per sample, attributes, inputs */
static void print_graph(const sq_model *m)
{
    printf("  graph (%d nodes; * = quantizable, + = quantized only with --quant-first-last):\n", m->nnodes);
    for (int i = 0; i < m->nnodes; i++) {
        const sq_node *n = &m->nodes[i];
        char attr[96] = "";
        switch (n->op) {
        case SQ_NODE_CONV:
            snprintf(attr, sizeof attr, "k%dx%d s%d p%d g%d%s", n->kh ? n->kh : n->k, n->kw ? n->kw : n->k,
                     n->stride, n->pad, n->groups, n->has_bias ? " bias" : "");
            break;
        case SQ_NODE_POOL:
            snprintf(attr, sizeof attr, "%s k%dx%d s%dx%d p%d,%d,%d,%d%s", n->pool == SQ_POOL_MAX ? "max" : "avg",
                     n->kh ? n->kh : n->k, n->kw ? n->kw : n->k, n->sh ? n->sh : n->stride, n->sw ? n->sw : n->stride,
                     n->kh ? n->pad_t : n->pad, n->kh ? n->pad_l : n->pad, n->kh ? n->pad_b : n->pad,
                     n->kh ? n->pad_r : n->pad, n->ceil_mode ? " ceil" : "");
            break;
        case SQ_NODE_PAD:
            snprintf(attr, sizeof attr, "%d,%d,%d,%d value %g", n->pad_t, n->pad_l, n->pad_b, n->pad_r, n->pad_value);
            break;
        case SQ_NODE_ACT: snprintf(attr, sizeof attr, "%s", n->act == SQ_ACT_RELU6 ? "relu6" : "relu"); break;
        case SQ_NODE_CLIP: snprintf(attr, sizeof attr, "[%g, %g]", n->lo, n->hi); break;
        case SQ_NODE_SLICE: snprintf(attr, sizeof attr, "channels %d..%d", n->c0, n->c0 + n->c - 1); break;
        case SQ_NODE_SHUFFLE: snprintf(attr, sizeof attr, "groups %d", n->groups); break;
        case SQ_NODE_DROPOUT: snprintf(attr, sizeof attr, "p %g", n->p); break;
        default: break;
        }
        char ins[32] = "";
        if (n->in1 >= 0) snprintf(ins, sizeof ins, "<- %d, %d", n->in0, n->in1);
        else if (n->in0 >= 0) snprintf(ins, sizeof ins, "<- %d", n->in0);
        char shape[48];
        snprintf(shape, sizeof shape, "%dx%dx%d", n->c, n->h, n->w);
        printf("  %4d %c %-10s ", i, n->quantizable ? '*' : n->first_or_last ? '+' : ' ', sq_node_op_name(n->op));
        show(n->name, 32);
        printf(" %-14s %-28s %s\n", shape, attr, ins);
    }
}

/* the layers --squat-tap may name (distill --loss kl+squat, docs/squat.md) */
static void print_taps(const sq_model *m)
{
    char names[4096];
    sq_squat_tap_names(m, names, sizeof names);
    const int d = sq_squat_default_tap(m);
    printf("  %-18s ", "squat taps");
    show(names[0] ? names : "(none)", 0);
    if (d >= 0) {
        printf(" (default ");
        show(m->nodes[d].name, 0);
        putchar(')');
    }
    putchar('\n');
}

/* every conv / linear with its bit-widths: a quantized model's layers (per-layer bit-widths of
   --bits-map, per-channel weights), or a full-precision one's, the names a --bits-map may use */
static void print_layers(const sq_model *m, int quantized)
{
    printf("  %s\n", quantized ? "layers (W/A bits; weights per tensor or per output channel):"
                               : "layers a --bits-map may name (* = quantized, + = only with --quant-first-last):");
    for (int i = 0; i < m->nnodes; i++) {
        const sq_node *n = &m->nodes[i];
        if (n->op != SQ_NODE_CONV && n->op != SQ_NODE_LINEAR) continue;
        if (quantized && !n->quant) {
            printf("    ");
            show(n->name, 32);
            printf(" full precision\n");
        } else if (quantized) {
            printf("    ");
            show(n->name, 32);
            printf(" W%d A%d  %s  %zu weights\n", n->qw.bits, n->qa.bits,
                   n->qw.channels > 1 ? "per-channel" : "per-tensor", m->params[n->pw].numel);
        } else {
            printf("    %c ", n->quantizable ? '*' : n->first_or_last ? '+' : ' ');
            show(n->name, 0);
            putchar('\n');
        }
    }
}

static int info_onnx(const char *cmd, const char *path, const sq_import_opts *io)
{
    sq_imported imp;
    if (sq_onnx_import(path, io, &imp)) return sq_cli_fail(cmd, "%s", sq_last_error());
    const sq_model *m = imp.m;
    show(path, 0);
    printf("\n  %-18s ONNX, opset %lld, producer ", "format", (long long)imp.opset);
    show(imp.producer[0] ? imp.producer : "(none)", 0);
    printf("\n  %-18s %dx%dx%d%s\n", "input", m->in_c, m->in_h, m->in_w, imp.ninputs > 1 ? " (and more inputs)" : "");
    printf("  %-18s %d\n", "outputs", m->classes);
    printf("  %-18s mean %g,%g,%g std %g,%g,%g (%s)\n", "normalisation", imp.mean[0], imp.mean[1], imp.mean[2],
           imp.std[0], imp.std[1], imp.std[2], imp.norm_from_graph ? "the graph's own, lifted" : "--mean/--std or none");
    printf("  %-18s %zu\n", "parameters", sq_model_param_count(m));
    print_taps(m);
    print_graph(m);
    sq_imported_free(&imp);
    return 0;
}

int sq_cmd_info(int argc, char **argv)
{
    const char *cmd = "info";
    int tensors = 0;
    sq_cli_import ci = {0};
    sq_arg a[8] = {{"--tensors", SQ_ARG_FLAG, &tensors, 0, 0, "list every tensor with its shape"}};
    int na = 1 + sq_cli_import_args(&ci, a + 1, (int)(sizeof a / sizeof a[0]) - 1, 1);
    const char *pos[1];
    int npos, r = sq_args_parse(cmd, "MODEL [--tensors]   (MODEL: a checkpoint or an ONNX file)", argc, argv, a, na,
                                pos, 1, &npos);
    if (r) return r == 1 ? 0 : 2;
    if (npos != 1) return sq_cli_fail(cmd, "expected one checkpoint or ONNX path");
    if (sq_is_onnx_path(pos[0])) {
        sq_import_opts io;
        if (sq_cli_import_opts(cmd, &ci, &io)) return 2;
        return info_onnx(cmd, pos[0], &io);
    }
    sq_st_file f;
    if (sq_st_read(pos[0], &f)) return sq_cli_fail(cmd, "%s", sq_last_error());
    sq_ckpt_meta meta;
    int is_ckpt = sq_ckpt_read_meta(pos[0], &meta) == SQ_OK;
    char why[512];
    snprintf(why, sizeof why, "%s", is_ckpt ? "" : sq_last_error());
    show(pos[0], 0);
    putchar('\n');
    for (int i = 0; i < f.nmeta; i++) {
        printf("  ");
        show(f.meta[i].key, 18);
        putchar(' ');
        if (!strcmp(f.meta[i].key, "graph")) printf("(%zu bytes of JSON: below)", strlen(f.meta[i].value));
        else show(f.meta[i].value, 0);
        putchar('\n');
    }
    if (!is_ckpt) {
        printf("  %-18s ", "not a checkpoint");
        show(why, 0);
        putchar('\n');
    }
    size_t total = 0;
    for (int i = 0; i < f.ntensors; i++) total += f.tensors[i].nbytes;
    printf("  %-18s %d (%.2f MiB)\n", "tensors", f.ntensors, total / 1048576.0);
    if (is_ckpt) {
        sq_model *m;
        if (sq_ckpt_create_model(pos[0], &meta, &m) == SQ_OK) {
            int qok = sq_model_set_quant(m, &meta.q) == SQ_OK;
            printf("  %-18s %zu\n", "parameters", sq_model_param_count(m));
            if (meta.q.bits_map)
                printf("  %-18s %.0f bytes at the per-layer bit-widths (below)\n", "model size", sq_model_size_bytes(m));
            else
                printf("  %-18s %.0f bytes at W%d\n", "model size", sq_model_size_bytes(m), meta.q.kind ? meta.q.wbits : 32);
            print_taps(m);
            if (!strcmp(meta.arch, "graph")) print_graph(m);
            if (qok) print_layers(m, meta.q.kind != SQ_QUANT_NONE);
            sq_model_free(m);
        } else {
            printf("  %-18s ", "graph");
            show(sq_last_error(), 0);
            putchar('\n');
        }
    }
    if (tensors)
        for (int i = 0; i < f.ntensors; i++) {
            const sq_st_tensor *t = &f.tensors[i];
            printf("  ");
            show(t->name, 40);
            printf(" %s [", sq_st_dtype_name(t->dtype));
            for (int d = 0; d < t->ndim; d++) printf("%s%lld", d ? ", " : "", (long long)t->shape[d]);
            printf("]\n");
        }
    sq_st_free(&f);
    return 0;
}

int sq_cmd_models(int argc, char **argv)
{
    const char *cmd = "models";
    const char *input = "3x32x32";
    int classes = 10, json = 0;
    sq_arg a[] = {
        {"--input", SQ_ARG_STR, &input, 0, 0, "input shape CxHxW (default 3x32x32)"},
        {"--classes", SQ_ARG_INT, &classes, 2, 100000, "number of classes (default 10)"},
    };
    (void)json;
    const char *pos[1];
    int npos, r = sq_args_parse(cmd, "[--input CxHxW --classes K]", argc, argv, a, 2, pos, 0, &npos);
    if (r) return r == 1 ? 0 : 2;
    int c, h, w;
    char tail;
    if (sscanf(input, "%dx%dx%d%c", &c, &h, &w, &tail) != 3 || c <= 0 || h <= 0 || w <= 0)
        return sq_cli_fail(cmd, "--input must look like 3x32x32, got '%s'", input);
    printf("%-10s %12s  %s   (input %dx%dx%d, %d classes)\n", "model", "parameters", "description", c, h, w, classes);
    for (int i = 0; i < sq_model_zoo_count(); i++) {
        sq_model *m;
        if (sq_model_create(sq_model_zoo_name(i), c, h, w, classes, &m) == SQ_OK) {
            printf("%-10s %12zu  %s\n", sq_model_zoo_name(i), sq_model_param_count(m), sq_model_zoo_desc(i));
            sq_model_free(m);
        } else {
            printf("%-10s %12s  %s (%s)\n", sq_model_zoo_name(i), "-", sq_model_zoo_desc(i), sq_last_error());
        }
    }
    return 0;
}
