/* cmd_train.c: 'sqakd train' — full-precision training with labels (how a user makes a teacher). */
#include "cli_data.h"
#include "train_common.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE = "--model NAME | --init MODEL  --data SPEC [--epochs N --batch B --lr X --seed S --threads T --out DIR]\n"
    "  --init MODEL: fine-tune a checkpoint or an ONNX file (your own network) with labels";

int sq_cmd_train(int argc, char **argv)
{
    const char *cmd = "train";
    sq_cli_common c;
    sq_cli_common_defaults(&c);
    const char *model = NULL, *optim = "sgd", *init = NULL;
    sq_arg a[80];
    int n = 0;
    SQ_ARG_PUT("--model", SQ_ARG_STR, &model, 0, 0, "architecture (see 'sqakd models')");
    SQ_ARG_PUT("--init", SQ_ARG_STR, &init, 0, 0, "start from this full-precision checkpoint or ONNX file (its graph, weights and normalisation) instead of --model");
    n += sq_cli_common_args(&c, a + n, (int)(sizeof a / sizeof a[0]) - n);
    SQ_ARG_PUT("--optim", SQ_ARG_STR, &optim, 0, 0, "sgd | adam");
    SQ_ARG_PUT("--lr", SQ_ARG_FLOAT, &c.cfg.lr, 0, 100, "initial learning rate (default 0.1)");
    SQ_ARG_PUT("--momentum", SQ_ARG_FLOAT, &c.cfg.momentum, 0, 0.9999, "SGD momentum (default 0.9)");
    SQ_ARG_PUT("--wd", SQ_ARG_FLOAT, &c.cfg.wd, 0, 1, "weight decay on all parameters (default 1e-4)");
    const char *pos[1];
    int npos, r = sq_args_parse(cmd, USAGE, argc, argv, a, n, pos, 0, &npos);
    if (r) return r == 1 ? 0 : 2;

    char last[4096], state[4096];
    sq_ckpt_meta rmeta;
    int rc = 2;
    sq_model *m = NULL;
    sq_dataset train, test;
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    if (c.resume) {
        snprintf(state, sizeof state, "%s/last.state.safetensors", c.resume);
        if (sq_state_weights(state, last, sizeof last) || sq_ckpt_read_meta(last, &rmeta)) {
            sq_cli_fail(cmd, "--resume: %s", sq_last_error());
            goto done;
        }
        if (rmeta.q.kind != SQ_QUANT_NONE) {
            sq_cli_fail(cmd, "%s is a quantized student: resume it with 'sqakd distill --resume'", last);
            goto done;
        }
        if (sq_cli_resume_config(cmd, &c, a, n, state)) goto done;
        if (model && strcmp(model, rmeta.arch)) {
            sq_cli_fail(cmd, "--model %s but %s holds a %s", model, last, rmeta.arch);
            goto done;
        }
        model = rmeta.arch;
    }
    if ((c.out || c.resume) && sq_cli_check_run_dir(cmd, c.out ? c.out : c.resume, c.resume != NULL, c.overwrite))
        goto done;
    if (!strcmp(optim, "sgd")) c.cfg.opt = SQ_OPT_SGD;
    else if (!strcmp(optim, "adam")) c.cfg.opt = SQ_OPT_ADAM;
    else { sq_cli_fail(cmd, "--optim must be sgd or adam, got '%s'", optim); goto done; }
    if (!model && !init) { sq_cli_fail(cmd, "--model is required (a name from 'sqakd models'), or --init MODEL to start from a checkpoint or ONNX file"); goto done; }
    if (model && init && !c.resume) { sq_cli_fail(cmd, "--model and --init exclude each other: --init brings its own graph"); goto done; }
    sq_cli_default_out(cmd, &c);
    sq_cli_make_config(&c, a, n, NULL, NULL);
    const sq_backend *be = sq_cli_backend(cmd, &c);
    if (!be) goto done;
    int have_test;
    sq_data_opts dopts;
    if (sq_cli_data_opts(cmd, c.resize, c.loader_threads, &dopts)) goto done;
    dopts.skip_norm = init != NULL; /* --init brings its normalisation: no statistics needed */
    if (sq_cli_open_data(cmd, c.data, &dopts, 1, c.holdout, c.cfg.seed, &train, &test, &have_test)) goto done;
    if (sq_cli_common_finish(cmd, &c, &train)) goto done;
    sq_ckpt_meta imeta;
    if (c.resume) {
        /* the model as the run left it: a zoo model by name, an imported graph from its checkpoint */
        if (sq_ckpt_create_model(last, &rmeta, &m) || sq_model_setup(m, be, sq_cli_plan_batch(&c), 1) ||
            sq_ckpt_load_into(m, last, 2)) {
            sq_cli_fail(cmd, "%s", sq_last_error());
            goto done;
        }
        if (init) {
            /* the normalisation the run started with: the --init model's, read again exactly (the
               checkpoint's metadata holds it rounded to 6 digits) */
            if (sq_cli_import_opts(cmd, &c.imp, &c.io) || sq_model_read_meta(init, &c.io, &imeta)) {
                sq_cli_fail(cmd, "--init: %s", sq_last_error());
                goto done;
            }
            sq_cli_apply_norm(&train, imeta.mean, imeta.std);
            sq_cli_apply_norm(&test, imeta.mean, imeta.std);
        }
    } else if (init) {
        if (sq_cli_import_opts(cmd, &c.imp, &c.io)) goto done;
        if (sq_model_open(init, &c.io, be, sq_cli_plan_batch(&c), 1, &m, &imeta)) {
            sq_cli_fail(cmd, "--init: %s", sq_last_error());
            goto done;
        }
        if (imeta.q.kind != SQ_QUANT_NONE) {
            sq_cli_fail(cmd, "--init %s is a quantized student: fine-tune it with 'sqakd distill --student'", init);
            goto done;
        }
        if (m->in_c != train.c || m->in_h != train.h || m->in_w != train.w || m->classes < train.classes) {
            sq_cli_fail(cmd, "--init %s takes %dx%dx%d with %d outputs, but data %s is %dx%dx%d with %d classes", init,
                        m->in_c, m->in_h, m->in_w, m->classes, train.name, train.c, train.h, train.w, train.classes);
            goto done;
        }
        /* the model is trained on what it was built for: its own normalisation */
        sq_cli_apply_norm(&train, imeta.mean, imeta.std);
        sq_cli_apply_norm(&test, imeta.mean, imeta.std);
        model = imeta.arch;
    } else {
        if (sq_model_create(model, train.c, train.h, train.w, train.classes, &m) ||
            sq_model_setup(m, be, sq_cli_plan_batch(&c), 1)) {
            sq_cli_fail(cmd, "%s", sq_last_error());
            goto done;
        }
        sq_model_init_weights(m, c.cfg.seed);
    }
    if (sq_cli_prepare_out(cmd, &c, argc, argv)) goto done;
    sq_train_io io;
    memset(&io, 0, sizeof io);
    io.train = &train;
    io.test = have_test ? &test : NULL;
    io.model = m;
    io.resume_state = c.resume ? state : NULL;
    snprintf(io.meta.arch, sizeof io.meta.arch, "%s", model);
    io.meta.in_c = train.c; io.meta.in_h = train.h; io.meta.in_w = train.w;
    io.meta.classes = m->classes;
    memcpy(io.meta.mean, train.mean, sizeof io.meta.mean);
    memcpy(io.meta.std, train.std, sizeof io.meta.std);
    snprintf(io.meta.dataset, sizeof io.meta.dataset, "%s", train.name);
    snprintf(io.meta.role, sizeof io.meta.role, "teacher");
    if (!c.cfg.quiet)
        fprintf(stderr, "sqakd train: %s (%zu params) on %s: %d train / %d eval images %dx%dx%d, %d classes; "
                "%s backend, %d threads; %s lr %g wd %g, %d epochs, batch %d, seed %llu\n",
                model, sq_model_param_count(m), train.name, train.n, have_test ? test.n : 0, train.c, train.h,
                train.w, train.classes, be->name, c.cfg.threads, optim, c.cfg.lr, c.cfg.wd, c.cfg.epochs,
                c.cfg.batch, (unsigned long long)c.cfg.seed);
    rc = sq_cli_run(cmd, &c, &io, "checkpoints (best.safetensors, last.safetensors)");
done:
    sq_model_free(m);
    sq_dataset_free(&train);
    sq_dataset_free(&test);
    sq_cli_common_free(&c);
    return rc;
}
