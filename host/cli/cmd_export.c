/* cmd_export.c: 'sqakd export CKPT --onnx OUT.onnx' (full precision: a plain graph; a quantized
   student: a QDQ graph) and 'sqakd export CKPT --format int --out OUT.safetensors' (the integer
   codes packed at their bit-widths, with scales). */
#include "cli.h"
#include "sqakd/backend.h"
#include "sqakd/export.h"
#include <stdio.h>
#include <string.h>

static const char *USAGE = "CKPT (--onnx OUT.onnx [--int-kernels] | --format int --out OUT.safetensors)";

int sq_cmd_export(int argc, char **argv)
{
    const char *cmd = "export";
    const char *onnx = NULL, *out = NULL, *format = NULL;
    int int_kernels = 0;
    sq_arg a[] = {
        {"--onnx", SQ_ARG_STR, &onnx, 0, 0, "write an ONNX graph (opset 13) here: plain for a full-precision "
                                            "checkpoint, QDQ for a quantized student"},
        {"--format", SQ_ARG_STR, &format, 0, 0, "onnx | int: 'int' writes the integer codes packed at their "
                                                "bit-widths with scales (safetensors, a quantized student only)"},
        {"--out", SQ_ARG_STR, &out, 0, 0, "output path (with --format)"},
        {"--int-kernels", SQ_ARG_FLAG, &int_kernels, 0, 0, "lsq students: QDQ that onnxruntime runs on integer kernels "
                                                            "(faster; they round their own way, so predictions agree less: "
                                                            "docs/results.md); default: the student's exact predictions"},
    };
    const char *pos[1];
    int npos, r = sq_args_parse(cmd, USAGE, argc, argv, a, (int)(sizeof a / sizeof a[0]), pos, 1, &npos);
    if (r) return r == 1 ? 0 : 2;
    if (npos != 1) return sq_cli_fail(cmd, "expected one checkpoint path (usage: sqakd export %s)", USAGE);
    if (!format) format = "onnx";
    int as_int;
    if (!strcmp(format, "onnx")) as_int = 0;
    else if (!strcmp(format, "int")) as_int = 1;
    else return sq_cli_fail(cmd, "--format must be onnx or int, got '%s'", format);
    if (onnx && out) return sq_cli_fail(cmd, "give the output once: --onnx PATH or --out PATH");
    if (onnx && as_int) return sq_cli_fail(cmd, "--onnx writes ONNX; with --format int give --out PATH");
    const char *path = onnx ? onnx : out;
    if (!path || !*path) return sq_cli_fail(cmd, "no output: give --onnx OUT.onnx or --format int --out OUT.safetensors");
    sq_ckpt_meta meta;
    if (sq_ckpt_read_meta(pos[0], &meta)) return sq_cli_fail(cmd, "%s", sq_last_error());
    if (as_int && meta.q.kind == SQ_QUANT_NONE)
        return sq_cli_fail(cmd, "%s is a full-precision checkpoint: --format int needs a quantized student "
                                "(export it with --onnx)", pos[0]);
    /* the checkpoint on the CPU backend, one sample: only its tensors are read */
    sq_model *m = NULL;
    if (sq_ckpt_open_model(pos[0], sq_backend_cpu(), 1, 0, &m, &meta)) return sq_cli_fail(cmd, "%s", sq_last_error());
    if (int_kernels && (as_int || meta.q.kind != SQ_QUANT_LSQ)) {
        sq_model_free(m);
        return sq_cli_fail(cmd, "--int-kernels applies to ONNX exports of lsq students (the other quantizers' grids "
                                "have no integer zero point), not to this %s %s", sq_quant_kind_name(meta.q.kind),
                           as_int ? "--format int export" : "checkpoint");
    }
    sq_status st = as_int ? sq_export_int(m, &meta, path) : sq_export_onnx_ex(m, &meta, int_kernels, path);
    sq_model_free(m);
    if (st) return sq_cli_fail(cmd, "%s", sq_last_error());
    printf("%s: %s %s W%dA%d -> %s (%s)\n", pos[0], meta.arch, meta.q.kind ? sq_quant_kind_name(meta.q.kind) : "fp32",
           meta.q.kind ? meta.q.wbits : 32, meta.q.kind ? meta.q.abits : 32, path,
           as_int ? "integer codes, safetensors" : meta.q.kind ? "ONNX QDQ, opset 13" : "ONNX, opset 13");
    return 0;
}
