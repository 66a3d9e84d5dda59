/* cmd_info.c: 'sqakd info CKPT' (metadata, tensors) and 'sqakd models' (the zoo). */
#include "cli.h"
#include "sqakd/checkpoint.h"
#include "sqakd/safetensors.h"
#include <stdio.h>
#include <string.h>

/* prints s escaped (sq_printable: a hostile file cannot move the cursor, recolour the terminal or
   forge lines), padded to width */
static void show(const char *s, int width)
{
    static char buf[16384];
    printf("%-*s", width, sq_printable(s, buf, sizeof buf));
}

int sq_cmd_info(int argc, char **argv)
{
    const char *cmd = "info";
    int tensors = 0;
    sq_arg a[] = {{"--tensors", SQ_ARG_FLAG, &tensors, 0, 0, "list every tensor with its shape"}};
    const char *pos[1];
    int npos, r = sq_args_parse(cmd, "CKPT [--tensors]", argc, argv, a, 1, pos, 1, &npos);
    if (r) return r == 1 ? 0 : 2;
    if (npos != 1) return sq_cli_fail(cmd, "expected one checkpoint path");
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
        show(f.meta[i].value, 0);
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
        if (sq_model_create(meta.arch, meta.in_c, meta.in_h, meta.in_w, meta.classes, &m) == SQ_OK) {
            sq_model_set_quant(m, &meta.q);
            printf("  %-18s %zu\n", "parameters", sq_model_param_count(m));
            printf("  %-18s %.0f bytes at W%d\n", "model size", sq_model_size_bytes(m), meta.q.kind ? meta.q.wbits : 32);
            sq_model_free(m);
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
