/* cmd_infer.c: 'sqakd infer MODEL --input X.npy --out Y.npy' — the forward pass of a checkpoint or
   an ONNX file on a tensor (docs/onnx.md). */
#include "cli.h"
#include "sqakd/checkpoint.h"
#include "sqakd/import.h"
#include "sqakd/onnx.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a tensor file: .npy (float), else an ONNX TensorProto (.pb, any type: ONNX's node tests pass
   weights, shapes and indices as inputs) */
static sq_status read_tensor(const char *path, sq_onnx_tensor *t)
{
    memset(t, 0, sizeof *t);
    size_t n = strlen(path);
    if (n > 4 && !strcmp(path + n - 4, ".npy")) {
        sq_status st = sq_npy_read(path, &t->f, &t->ndim, t->dims);
        if (st) return st;
        t->dtype = SQ_ONNX_FLOAT;
        t->numel = 1;
        for (int i = 0; i < t->ndim; i++) t->numel *= (size_t)t->dims[i];
        return SQ_OK;
    }
    return sq_onnx_read_tensor(path, t);
}

#define MAX_IN 8

int sq_cmd_infer(int argc, char **argv)
{
    const char *cmd = "infer";
    const char *inputs[MAX_IN] = {0}, *out = NULL, *device = "cpu", *bopt = NULL;
    int batch = 64, threads = sq_cpus_available();
    const char *in1 = NULL;
    sq_arg a[] = {
        {"--input", SQ_ARG_STR, &in1, 0, 0, "the input tensor: X.npy (float32) or an ONNX TensorProto X.pb; repeat it for "
                                            "a graph of several inputs, in the graph's order"},
        {"--out", SQ_ARG_STR, &out, 0, 0, "where the output goes (.npy, float32)"},
        {"--batch", SQ_ARG_INT, &batch, 1, 65536, "samples per forward pass (default 64)"},
        {"--device", SQ_ARG_STR, &device, 0, 0, "cpu (default) | cuda | auto"},
        {"--backend-opt", SQ_ARG_STR, &bopt, 0, 0, SQ_BACKEND_OPT_HELP},
        {"--threads", SQ_ARG_INT, &threads, 1, 1024, "CPU threads (by default the CPUs this process may use)"},
    };
    /* --input may repeat: collect every occurrence before the flag parser sees the rest */
    int nin = 0;
    char **rest = malloc(((size_t)argc + 1) * sizeof *rest);
    int nrest = 0;
    for (int i = 0; i < argc; i++) {
        if (i > 0 && !strcmp(argv[i], "--input") && i + 1 < argc) {
            if (nin == MAX_IN) { free(rest); return sq_cli_fail(cmd, "at most %d --input tensors", MAX_IN); }
            inputs[nin++] = argv[++i];
        } else if (i > 0 && !strncmp(argv[i], "--input=", 8)) {
            if (nin == MAX_IN) { free(rest); return sq_cli_fail(cmd, "at most %d --input tensors", MAX_IN); }
            inputs[nin++] = argv[i] + 8;
        } else {
            rest[nrest++] = argv[i];
        }
    }
    const char *pos[1];
    static const char *USAGE = "MODEL --input X.npy|X.pb [--input ...] --out Y.npy [--device D --batch B]\n"
        "  MODEL: an ONNX file (gets exactly the tensor given) or a checkpoint (gets pixels in [0, 1] and applies its\n"
        "  normalisation). Exit status 3: the ONNX model uses an op or a shape sqakd does not support.";
    int npos, r = sq_args_parse(cmd, USAGE, nrest, rest, a, (int)(sizeof a / sizeof a[0]), pos, 1, &npos);
    free(rest);
    if (r) return r == 1 ? 0 : 2;
    if (npos != 1) return sq_cli_fail(cmd, "expected one model path (usage: sqakd infer %s)", USAGE);
    if (!nin && !sq_is_onnx_path(pos[0])) return sq_cli_fail(cmd, "--input X.npy is required");
    if (!out) return sq_cli_fail(cmd, "--out Y.npy is required");
    sq_onnx_tensor x[MAX_IN];
    memset(x, 0, sizeof x);
    int rc = 2;
    sq_model *m = NULL;
    float *y = NULL;
    const int onnx = sq_is_onnx_path(pos[0]);
    sq_imported imp;
    memset(&imp, 0, sizeof imp);
    for (int k = 0; k < nin; k++)
        if (read_tensor(inputs[k], &x[k])) { sq_cli_fail(cmd, "%s", sq_last_error()); goto done; }
    const sq_backend *be = sq_backend_open(device, bopt, threads);
    if (!be) { sq_cli_fail(cmd, "%s", sq_last_error()); goto done; }
    sq_ckpt_meta meta;
    int node_of_input[MAX_IN];
    if (onnx) {
        /* symbolic input dimensions take the first tensor's; later tensors are bound to their graph
           inputs (constants where the graph needs constants) */
        sq_import_opts io;
        memset(&io, 0, sizeof io);
        const sq_onnx_tensor *bind[MAX_IN];
        for (int k = 0; k < nin; k++) bind[k] = k ? &x[k] : NULL;
        io.nbind = nin;
        io.bind = bind;
        if (nin && x[0].ndim >= 2 && x[0].ndim <= 4) {
            io.in_c = (int)x[0].dims[1];
            io.in_h = x[0].ndim > 2 ? (int)x[0].dims[2] : 1;
            io.in_w = x[0].ndim > 3 ? (int)x[0].dims[3] : 1;
        }
        sq_status st = sq_onnx_import(pos[0], &io, &imp);
        if (st == SQ_EARG && strstr(sq_last_error(), "--input gives")) {
            /* the graph fixes its dimensions: the tensors are checked against them below */
            io.in_c = io.in_h = io.in_w = 0;
            st = sq_onnx_import(pos[0], &io, &imp);
        }
        if (st) { sq_cli_fail(cmd, "%s", sq_last_error()); rc = st == SQ_EARG ? 3 : 2; goto done; }
        m = imp.m;
        if (!nin) { sq_cli_fail(cmd, "--input X.npy is required"); goto done; }
        if (imp.ninputs != nin) {
            sq_cli_fail(cmd, "%s has %d inputs but %d --input tensors were given", pos[0], imp.ninputs, nin);
            goto done;
        }
        memset(&meta, 0, sizeof meta);
        memcpy(meta.mean, imp.mean, sizeof meta.mean);
        memcpy(meta.std, imp.std, sizeof meta.std);
        for (int k = 0; k < nin; k++) node_of_input[k] = imp.input_node[k];
    } else {
        if (nin != 1) { sq_cli_fail(cmd, "a checkpoint takes one --input"); goto done; }
        node_of_input[0] = 0;
    }
    /* every tensor that feeds an input node: float, batch first, one batch, the node's shape */
    int64_t N = -1;
    for (int k = 0; k < nin; k++) {
        if (node_of_input[k] < 0) continue;
        const sq_onnx_tensor *t = &x[k];
        if (!t->f || t->ndim < (onnx ? 1 : 4) || t->ndim > 4 || t->dims[0] < 1 || (N >= 0 && t->dims[0] != N)) {
            sq_cli_fail(cmd, "%s: expected a float tensor %s with the batch first (the same batch for every input)",
                        inputs[k], onnx ? "of 1 to 4 dimensions" : "N x C x H x W");
            goto done;
        }
        N = t->dims[0];
    }
    if (N < 1) { sq_cli_fail(cmd, "no input tensor feeds the model"); goto done; }
    if (batch > N) batch = (int)N;
    if (onnx) {
        if (sq_model_setup(m, be, batch, 0) || sq_imported_load(&imp, m)) { sq_cli_fail(cmd, "%s", sq_last_error()); goto done; }
    } else if (sq_ckpt_open_model(pos[0], be, batch, 0, &m, &meta)) {
        sq_cli_fail(cmd, "%s", sq_last_error());
        goto done;
    }
    for (int k = 0; k < nin; k++) {
        if (node_of_input[k] < 0) continue;
        const sq_node *in = &m->nodes[node_of_input[k]];
        const sq_onnx_tensor *t = &x[k];
        int64_t c = t->ndim > 1 ? t->dims[1] : 1, h = t->ndim > 2 ? t->dims[2] : 1, w = t->ndim > 3 ? t->dims[3] : 1;
        if (c != in->c || h != in->h || w != in->w) {
            sq_cli_fail(cmd, "%s is %lldx%lldx%lld per sample but the model's input %d is %dx%dx%d", inputs[k],
                        (long long)c, (long long)h, (long long)w, k, in->c, in->h, in->w);
            goto done;
        }
    }
    const size_t per_in0 = (size_t)m->in_c * m->in_h * m->in_w, k_out = (size_t)m->classes;
    y = malloc((size_t)N * k_out * sizeof(float) + 1);
    float *xn = malloc((size_t)batch * per_in0 * sizeof(float) + 1);
    if (!y || !xn) { free(xn); sq_cli_fail(cmd, "out of memory"); goto done; }
    const size_t hw = (size_t)m->in_h * m->in_w;
    for (int64_t b0 = 0; b0 < N; b0 += batch) {
        int nb = (int)(N - b0 < batch ? N - b0 : batch);
        /* input 0 normalised as the model expects (an ONNX graph's own leading Sub/Div, lifted at import, or
           the checkpoint's), the others as given */
        const float *src = x[0].f + (size_t)b0 * per_in0;
        for (int i = 0; i < nb; i++)
            for (int c = 0; c < m->in_c; c++) {
                const float mu = meta.mean[c < 4 ? c : 3], sd = meta.std[c < 4 ? c : 3];
                const float *s = src + ((size_t)i * m->in_c + c) * hw;
                float *d = xn + ((size_t)i * m->in_c + c) * hw;
                for (size_t j = 0; j < hw; j++) d[j] = (s[j] - mu) / sd;
            }
        sq_model_set_input(m, xn, nb);
        for (int k = 1; k < nin; k++) {
            if (node_of_input[k] < 0) continue;
            const sq_node *in = &m->nodes[node_of_input[k]];
            size_t per = (size_t)in->c * in->h * in->w;
            be->copy_h2d(in->out, x[k].f + (size_t)b0 * per, (size_t)nb * per * sizeof(float));
        }
        float *z = sq_model_forward(m, nb, 0);
        be->copy_d2h(y + (size_t)b0 * k_out, z, (size_t)nb * k_out * sizeof(float));
    }
    free(xn);
    be->sync();
    if (be->status()) { sq_cli_fail(cmd, "%s", sq_last_error()); goto done; }
    for (size_t i = 0; i < (size_t)N * k_out; i++)
        if (isnan(y[i])) { fprintf(stderr, "sqakd infer: note: the output holds NaN (from the input or the model)\n"); break; }
    int64_t od[SQ_ONNX_MAX_DIMS];
    int ond;
    od[0] = N;
    if (onnx) {
        ond = imp.out_ndim;
        for (int i = 1; i < ond; i++) od[i] = imp.out_dims[i - 1];
    } else {
        ond = 2;
        od[1] = (int64_t)k_out;
    }
    if (sq_npy_write(out, y, ond, od)) { sq_cli_fail(cmd, "%s", sq_last_error()); goto done; }
    rc = 0;
done:
    for (int k = 0; k < nin; k++) sq_onnx_tensor_clear(&x[k]);
    free(y);
    if (onnx) sq_imported_free(&imp);   /* frees m, which is imp.m */
    else sq_model_free(m);
    return rc;
}
