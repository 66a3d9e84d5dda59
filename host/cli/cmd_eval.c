/* cmd_eval.c: 'sqakd eval CKPT --data SPEC' — accuracy (top-1, top-5, per class) of a full-precision
   or quantized (fake-quant simulation) checkpoint, and agreement/KL against an optional teacher. */
#include "cli_data.h"
#include "sqakd/import.h"
#include "sqakd/json.h"
#include "sqakd/onnx.h"
#include "sqakd/train.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE = "MODEL --data SPEC [--split test|train --teacher MODEL --batch B --json --dump-logits F.npy]\n"
    "  MODEL: a checkpoint or an ONNX file (.onnx)";

int sq_cmd_eval(int argc, char **argv)
{
    const char *cmd = "eval";
    const char *data = "fashion-mnist", *split = "test", *teacher_path = NULL, *device = "auto", *bopt = NULL;
    const char *dump = NULL, *resize = NULL;
    int batch = 256, json = 0, threads = sq_cpus_available(), loader_threads = 0;
    sq_cli_import ci = {0};
    sq_arg a[20] = {
        {"--data", SQ_ARG_STR, &data, 0, 0, "data SPEC (see 'sqakd train --help')"},
        {"--split", SQ_ARG_STR, &split, 0, 0, "test | train (default test)"},
        {"--teacher", SQ_ARG_STR, &teacher_path, 0, 0, "also report top-1 agreement and KL against this teacher"},
        {"--batch", SQ_ARG_INT, &batch, 1, 65536, "batch size (default 256)"},
        {"--threads", SQ_ARG_INT, &threads, 1, 1024, "CPU threads (by default the CPUs this process may use)"},
        {"--device", SQ_ARG_STR, &device, 0, 0, "auto | cpu | cuda"},
        {"--backend-opt", SQ_ARG_STR, &bopt, 0, 0, SQ_BACKEND_OPT_HELP},
        {"--json", SQ_ARG_FLAG, &json, 0, 0, "print one JSON object on stdout"},
        {"--dump-logits", SQ_ARG_STR, &dump, 0, 0, "write every image's logits (N x classes, the split's order) to F.npy"},
        {"--resize", SQ_ARG_STR, &resize, 0, 0, SQ_CLI_RESIZE_HELP},
        {"--loader-threads", SQ_ARG_INT, &loader_threads, 0, SQ_LOADER_THREADS_MAX, SQ_CLI_LOADER_THREADS_HELP},
    };
    int na = 11;
    na += sq_cli_import_args(&ci, a + na, (int)(sizeof a / sizeof a[0]) - na, 1);
    const char *pos[1];
    int npos, r = sq_args_parse(cmd, USAGE, argc, argv, a, na, pos, 1, &npos);
    if (r) return r == 1 ? 0 : 2;
    sq_import_opts io;
    if (sq_cli_import_opts(cmd, &ci, &io)) return 2;
    if (npos != 1) return sq_cli_fail(cmd, "expected one checkpoint path (usage: sqakd eval %s)", USAGE);
    sq_split sp;
    if (!strcmp(split, "test")) sp = SQ_SPLIT_TEST;
    else if (!strcmp(split, "train")) sp = SQ_SPLIT_TRAIN;
    else return sq_cli_fail(cmd, "--split must be test or train, got '%s'", split);
    const sq_backend *be = sq_backend_open(device, bopt, threads);
    if (!be) return sq_cli_fail(cmd, "%s", sq_last_error());
    sq_model *m = NULL, *t = NULL;
    sq_ckpt_meta meta, tmeta;
    if (sq_model_open(pos[0], &io, be, batch, 0, &m, &meta)) return sq_cli_fail(cmd, "%s", sq_last_error());
    int rc = 2;
    sq_dataset ds;
    memset(&ds, 0, sizeof ds);
    if (teacher_path && sq_model_open(teacher_path, &io, be, batch, 0, &t, &tmeta)) {
        sq_cli_fail(cmd, "%s", sq_last_error());
        goto done;
    }
    if (t && (t->classes != m->classes || t->in_c != m->in_c || t->in_h != m->in_h || t->in_w != m->in_w)) {
        sq_cli_fail(cmd, "teacher %s (%d classes) and %s (%d classes) do not match", tmeta.arch, t->classes,
                    meta.arch, m->classes);
        goto done;
    }
    sq_data_opts dopts;
    if (sq_cli_data_opts(cmd, resize, loader_threads, &dopts)) goto done;
    dopts.skip_norm = 1; /* the model's normalisation, below */
    if (sq_dataset_open_ex(data, sp, 1, &dopts, &ds)) { sq_cli_fail(cmd, "%s", sq_last_error()); goto done; }
    sq_cli_apply_norm(&ds, meta.mean, meta.std);   /* normalise as the model was trained */
    sq_eval_result er;
    float *logits = NULL;
    if (dump) {
        logits = malloc((size_t)ds.n * m->classes * sizeof(float) + 1);
        if (!logits) { sq_cli_fail(cmd, "out of memory for %d x %d logits", ds.n, m->classes); goto done; }
    }
    if (sq_evaluate_logits(m, t, &ds, batch, &er, logits)) {
        free(logits);
        sq_cli_fail(cmd, "%s", sq_last_error());
        goto done;
    }
    if (dump) {
        int64_t dims[2] = {er.n, m->classes};
        sq_status ws = sq_npy_write(dump, logits, 2, dims);
        free(logits);
        if (ws) { sq_cli_fail(cmd, "--dump-logits: %s", sq_last_error()); goto done; }
    }
    if (json) {
        sq_jbuf jb;
        sq_jbuf_init(&jb);
        sq_jbuf_begin_obj(&jb);
        sq_jbuf_kv_str(&jb, "checkpoint", pos[0]);
        sq_jbuf_kv_str(&jb, "arch", meta.arch);
        sq_jbuf_kv_str(&jb, "quantizer", sq_quant_kind_name(meta.q.kind));
        sq_jbuf_kv_int(&jb, "wbits", meta.q.kind ? meta.q.wbits : 32);
        sq_jbuf_kv_int(&jb, "abits", meta.q.kind ? meta.q.abits : 32);
        sq_jbuf_kv_str(&jb, "data", data);
        sq_jbuf_kv_str(&jb, "split", split);
        sq_jbuf_kv_int(&jb, "n", er.n);
        if (er.top1 >= 0) {
            sq_jbuf_kv_num(&jb, "top1", er.top1);
            sq_jbuf_kv_num(&jb, "top5", er.top5);
            sq_jbuf_key(&jb, "per_class");
            sq_jbuf_begin_arr(&jb);
            for (int j = 0; j < er.classes; j++) sq_jbuf_num(&jb, er.per_class[j]);
            sq_jbuf_end_arr(&jb);
        } else {
            sq_jbuf_key(&jb, "top1"); sq_jbuf_null(&jb);
            sq_jbuf_key(&jb, "top5"); sq_jbuf_null(&jb);
        }
        if (t) { sq_jbuf_kv_num(&jb, "agreement", er.agreement); sq_jbuf_kv_num(&jb, "kl", er.kl); }
        sq_jbuf_kv_num(&jb, "model_bytes", sq_model_size_bytes(m));
        sq_jbuf_kv_num(&jb, "seconds", er.seconds);
        sq_jbuf_end_obj(&jb);
        printf("%s\n", sq_jbuf_cstr(&jb));
        sq_jbuf_free(&jb);
    } else {
        printf("%s  %s W%dA%d  on %s (%s split, %d images)\n", pos[0], meta.arch, meta.q.kind ? meta.q.wbits : 32,
               meta.q.kind ? meta.q.abits : 32, data, split, er.n);
        if (er.top1 >= 0) {
            printf("top-1 %.2f%%  top-5 %.2f%%\nper class:", er.top1, er.top5);
            for (int j = 0; j < er.classes; j++) printf(" %d:%.1f", j, er.per_class[j]);
            printf("\n");
        } else {
            printf("no labels: accuracy not available\n");
        }
        if (t) printf("agreement with teacher %.2f%%  mean KL(teacher||model) %.5f\n", er.agreement, er.kl);
    }
    rc = 0;
done:
    sq_dataset_free(&ds);
    sq_model_free(m);
    sq_model_free(t);
    return rc;
}
