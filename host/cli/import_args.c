/* import_args.c: --input CxHxW, --mean, --std — how an ONNX model's input is read, for every
   command that takes a model path (docs/onnx.md). */
#include "cli.h"
#include "sqakd/import.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sq_cli_import_args(sq_cli_import *ci, sq_arg *a, int room, int with_input)
{
    int n = 0;
    if (with_input)
        sq_args_put(a, &n, room, (sq_arg){"--input", SQ_ARG_STR, &ci->input, 0, 0,
                                          "ONNX models: the input's CxHxW where the graph leaves it symbolic"});
    sq_args_put(a, &n, room, (sq_arg){"--mean", SQ_ARG_STR, &ci->mean, 0, 0,
                                      "ONNX models: per-channel mean subtracted from [0, 1] pixels, e.g. 0.485,0.456,0.406 "
                                      "(default: the graph's own leading Sub, else 0)"});
    sq_args_put(a, &n, room, (sq_arg){"--std", SQ_ARG_STR, &ci->std, 0, 0,
                                      "ONNX models: per-channel std the pixels are divided by (default: the graph's own "
                                      "leading Div, else 1)"});
    return n;
}

int sq_cli_parse_shape(const char *cmd, const char *flag, const char *s, int *c, int *h, int *w)
{
    char extra;
    if (sscanf(s, "%dx%dx%d%c", c, h, w, &extra) != 3 || *c < 1 || *c > 4096 || *h < 1 || *h > 65536 ||
        *w < 1 || *w > 65536)
        return sq_cli_fail(cmd, "%s must be CxHxW with positive sizes (e.g. 3x224x224), got '%s'", flag, s);
    return 0;
}

static int parse_vec(const char *cmd, const char *flag, const char *s, float *v)
{
    int k = 0;
    const char *p = s;
    while (*p) {
        char *end;
        double x = strtod(p, &end);
        if (end == p || !isfinite(x) || k == 4)
            return sq_cli_fail(cmd, "%s must be 1 to 4 comma-separated finite numbers, got '%s'", flag, s);
        v[k++] = (float)x;
        p = end;
        if (*p == ',') p++;
        else if (*p) return sq_cli_fail(cmd, "%s must be 1 to 4 comma-separated finite numbers, got '%s'", flag, s);
    }
    if (!k) return sq_cli_fail(cmd, "%s is empty", flag);
    for (int i = k; i < 4; i++) v[i] = v[k - 1];   /* one value: every channel */
    return 0;
}

int sq_cli_import_opts(const char *cmd, const sq_cli_import *ci, sq_import_opts *o)
{
    memset(o, 0, sizeof *o);
    if (ci->input && sq_cli_parse_shape(cmd, "--input", ci->input, &o->in_c, &o->in_h, &o->in_w)) return 2;
    if (ci->mean) {
        if (parse_vec(cmd, "--mean", ci->mean, o->mean)) return 2;
        o->has_mean = 1;
    }
    if (ci->std) {
        if (parse_vec(cmd, "--std", ci->std, o->std)) return 2;
        for (int i = 0; i < 4; i++)
            if (!(o->std[i] > 0)) return sq_cli_fail(cmd, "--std values must be > 0, got '%s'", ci->std);
        o->has_std = 1;
    }
    return 0;
}
