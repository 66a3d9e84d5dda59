/* cmd_import.c: 'sqakd import MODEL.onnx --out MODEL.safetensors' — an ONNX model converted once
   into an sqakd checkpoint (the graph stored in its metadata), so later commands need no import
   flags (docs/onnx.md). */
#include "cli.h"
#include "sqakd/checkpoint.h"
#include "sqakd/import.h"
#include <stdio.h>
#include <string.h>

int sq_cmd_import(int argc, char **argv)
{
    const char *cmd = "import";
    const char *out = NULL;
    sq_cli_import ci = {0};
    sq_arg a[8] = {{"--out", SQ_ARG_STR, &out, 0, 0, "the checkpoint to write (.safetensors)"}};
    int na = 1 + sq_cli_import_args(&ci, a + 1, (int)(sizeof a / sizeof a[0]) - 1, 1);
    const char *pos[1];
    int npos, r = sq_args_parse(cmd, "MODEL.onnx --out MODEL.safetensors [--input CxHxW --mean M --std S]", argc, argv,
                                a, na, pos, 1, &npos);
    if (r) return r == 1 ? 0 : 2;
    if (npos != 1) return sq_cli_fail(cmd, "expected one ONNX file");
    if (!out) return sq_cli_fail(cmd, "--out FILE is required");
    if (!sq_is_onnx_path(pos[0])) return sq_cli_fail(cmd, "%s is not an .onnx file", pos[0]);
    sq_import_opts io;
    if (sq_cli_import_opts(cmd, &ci, &io)) return 2;
    sq_model *m = NULL;
    sq_ckpt_meta meta;
    if (sq_model_open(pos[0], &io, sq_backend_cpu(), 1, 0, &m, &meta)) return sq_cli_fail(cmd, "%s", sq_last_error());
    if (m->in_c > 4) {
        sq_model_free(m);
        return sq_cli_fail(cmd, "%s takes %d input channels; checkpoints hold models of 1 to 4 (image) channels",
                           pos[0], m->in_c);
    }
    const char *base = strrchr(pos[0], '/');
    snprintf(meta.dataset, sizeof meta.dataset, "onnx:%s", base ? base + 1 : pos[0]);
    for (char *p = meta.dataset; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == ',') *p = '_';
    sq_status st = sq_ckpt_save(m, &meta, out);
    if (st) {
        sq_model_free(m);
        return sq_cli_fail(cmd, "%s", sq_last_error());
    }
    printf("%s: %d nodes, %zu parameters, input %dx%dx%d, %d outputs, mean %g,%g,%g std %g,%g,%g -> %s\n", pos[0],
           m->nnodes, sq_model_param_count(m), m->in_c, m->in_h, m->in_w, m->classes, meta.mean[0], meta.mean[1],
           meta.mean[2], meta.std[0], meta.std[1], meta.std[2], out);
    sq_model_free(m);
    return 0;
}
