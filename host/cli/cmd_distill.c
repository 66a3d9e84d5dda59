/* cmd_distill.c: 'sqakd distill' — SQAKD: a low-bit student learns from a frozen full-precision
   teacher's temperature-softened outputs, without labels (--loss ce: label-supervised QAT of the
   same student, for comparison). */
#include "cli_data.h"
#include "train_common.h"
#include <stdio.h>
#include <string.h>

static const char *USAGE =
    "--teacher CKPT --data SPEC --quantizer ewgs|pact|lsq|dorefa --wbits N --abits N "
    "[--alpha A --temperature T --epochs N --batch B --lr-model X --lr-quant Y --out DIR]";

typedef struct {
    const char *teacher, *student, *model, *quantizer, *loss;
    sq_quant_opts q;
} distill_flags;

static int first_batch_init(const char *cmd, sq_model *s, const sq_dataset *train, const sq_train_cfg *cfg)
{
    sq_loader_opts lo = {.batch = cfg->batch, .shuffle = 1, .crop_pad = cfg->crop_pad, .flip = cfg->flip,
                         .drop_last = 0, .seed = cfg->seed ^ 0x1417ull};
    sq_loader *l;
    if (sq_loader_create(train, &lo, &l)) return sq_cli_fail(cmd, "%s", sq_last_error());
    sq_loader_start_epoch(l, 0);
    const float *x;
    const int32_t *y;
    int nb = sq_loader_next(l, &x, &y);
    int rc = nb > 0 && sq_model_quant_init(s, x, nb) == SQ_OK ? 0 : sq_cli_fail(cmd, "quantizer initialisation failed: %s", sq_last_error());
    sq_loader_free(l);
    return rc;
}

int sq_cmd_distill(int argc, char **argv)
{
    const char *cmd = "distill";
    sq_cli_common c;
    sq_cli_common_defaults(&c);
    c.cfg.opt = SQ_OPT_ADAM;
    c.cfg.lr = 1e-3f;
    c.cfg.wd = 1e-4f;
    distill_flags f = {.quantizer = "ewgs", .loss = "kl", .q = {.wbits = 4, .abits = 4}};
    float delta_w = 0, delta_a = 0;
    sq_arg a[48];
    int n = 0;
    a[n++] = (sq_arg){"--teacher", SQ_ARG_STR, &f.teacher, 0, 0, "full-precision teacher checkpoint (required)"};
    a[n++] = (sq_arg){"--student", SQ_ARG_STR, &f.student, 0, 0, "start the student from this checkpoint instead of the teacher"};
    a[n++] = (sq_arg){"--model", SQ_ARG_STR, &f.model, 0, 0, "student architecture (default: the teacher's)"};
    a[n++] = (sq_arg){"--quantizer", SQ_ARG_STR, &f.quantizer, 0, 0, "ewgs | pact | lsq | dorefa (default ewgs)"};
    a[n++] = (sq_arg){"--wbits", SQ_ARG_INT, &f.q.wbits, 1, 8, "weight bits 1..8 (default 4)"};
    a[n++] = (sq_arg){"--abits", SQ_ARG_INT, &f.q.abits, 1, 8, "activation bits 1..8 (default 4)"};
    a[n++] = (sq_arg){"--quant-first-last", SQ_ARG_FLAG, &f.q.first_last, 0, 0, "also quantize the first conv and the classifier"};
    a[n++] = (sq_arg){"--delta-w", SQ_ARG_FLOAT, &delta_w, 0, 1e6, "EWGS backward delta for weights (default 0 = STE)"};
    a[n++] = (sq_arg){"--delta-a", SQ_ARG_FLOAT, &delta_a, 0, 1e6, "EWGS backward delta for activations (default 0)"};
    a[n++] = (sq_arg){"--delta-every", SQ_ARG_INT, &c.cfg.delta_every, 0, 100000, "ewgs: update delta from the Hessian trace every N epochs (0 = fixed; default 0)"};
    a[n++] = (sq_arg){"--delta-batches", SQ_ARG_INT, &c.cfg.delta_batches, 1, 1000, "batches per Hessian delta update (default 2)"};
    a[n++] = (sq_arg){"--loss", SQ_ARG_STR, &f.loss, 0, 0, "kl (SQAKD, no labels; default) | ce (label-supervised QAT baseline)"};
    a[n++] = (sq_arg){"--alpha", SQ_ARG_FLOAT, &c.cfg.alpha, 0, 1e6, "loss weight alpha (default 1)"};
    a[n++] = (sq_arg){"--temperature", SQ_ARG_FLOAT, &c.cfg.T, 0.01, 1000, "distillation temperature T (default 4)"};
    a[n++] = (sq_arg){"--lr-model", SQ_ARG_FLOAT, &c.cfg.lr, 0, 100, "Adam lr for model parameters (default 1e-3)"};
    a[n++] = (sq_arg){"--lr-quant", SQ_ARG_FLOAT, &c.cfg.lr_quant, 0, 100, "Adam lr for quantizer parameters (default 1e-5)"};
    a[n++] = (sq_arg){"--wd", SQ_ARG_FLOAT, &c.cfg.wd, 0, 1, "L2 weight decay of model parameters (default 1e-4)"};
    a[n++] = (sq_arg){"--wd-quant", SQ_ARG_FLOAT, &c.cfg.wd_quant, 0, 1, "weight decay of quantizer parameters (default 0)"};
    n += sq_cli_common_args(&c, a + n);
    const char *pos[1];
    int npos, r = sq_args_parse(cmd, USAGE, argc, argv, a, n, pos, 0, &npos);
    if (r) return r == 1 ? 0 : 2;
    f.q.delta_w = delta_w;
    f.q.delta_a = delta_a;
    int kind = sq_quant_kind_parse(f.quantizer);
    if (kind <= 0) return sq_cli_fail(cmd, "unknown --quantizer '%s' (expected ewgs, pact, lsq or dorefa)", f.quantizer);
    f.q.kind = (sq_quant_kind)kind;
    if (!strcmp(f.loss, "kl")) c.cfg.loss = SQ_LOSS_KL;
    else if (!strcmp(f.loss, "ce")) c.cfg.loss = SQ_LOSS_CE;
    else return sq_cli_fail(cmd, "--loss must be kl or ce, got '%s'", f.loss);
    if (c.cfg.delta_every > 0 && f.q.kind != SQ_QUANT_EWGS)
        return sq_cli_fail(cmd, "--delta-every needs --quantizer ewgs (delta is the EWGS backward's scale)");
    if (!f.teacher) return sq_cli_fail(cmd, "--teacher CKPT is required (make one with 'sqakd train')");

    char last[4096], state[4096];
    if (c.resume) {
        sq_ckpt_meta rm;
        snprintf(last, sizeof last, "%s/last.safetensors", c.resume);
        snprintf(state, sizeof state, "%s/last.state.safetensors", c.resume);
        if (sq_ckpt_read_meta(last, &rm)) return sq_cli_fail(cmd, "--resume: %s", sq_last_error());
        if (rm.q.kind == SQ_QUANT_NONE) return sq_cli_fail(cmd, "%s is not a quantized student", last);
        f.q = rm.q;
        f.model = rm.arch;
    }
    const sq_backend *be = sq_cli_backend(cmd, &c);
    if (!be) return 2;
    sq_model *t = NULL, *s = NULL;
    sq_ckpt_meta tm;
    if (sq_ckpt_open_model(f.teacher, be, c.cfg.batch, 0, &t, &tm)) return sq_cli_fail(cmd, "--teacher: %s", sq_last_error());
    int rc = 2, have_test = 0;
    sq_dataset train, test;
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    int use_labels = c.cfg.loss == SQ_LOSS_CE;
    if (sq_cli_open_data(cmd, c.data, use_labels, c.holdout, c.cfg.seed, &train, &test, &have_test)) goto done;
    sq_cli_apply_norm(&train, tm.mean, tm.std);   /* the student sees what the teacher saw */
    sq_cli_apply_norm(&test, tm.mean, tm.std);
    if (train.c != tm.in_c || train.h != tm.in_h || train.w != tm.in_w) {
        sq_cli_fail(cmd, "data %s is %dx%dx%d but teacher %s expects %dx%dx%d", train.name, train.c, train.h, train.w,
                    f.teacher, tm.in_c, tm.in_h, tm.in_w);
        goto done;
    }
    if (use_labels && train.classes > tm.classes) {
        sq_cli_fail(cmd, "data %s has %d classes but the teacher has %d outputs", train.name, train.classes, tm.classes);
        goto done;
    }
    if (sq_cli_common_finish(cmd, &c, &train)) goto done;
    if (sq_model_create(f.model ? f.model : tm.arch, tm.in_c, tm.in_h, tm.in_w, tm.classes, &s) ||
        sq_model_set_quant(s, &f.q) || sq_model_setup(s, be, c.cfg.batch, 1)) {
        sq_cli_fail(cmd, "%s", sq_last_error());
        goto done;
    }
    if (c.resume) {
        if (sq_ckpt_load_into(s, last, 2)) { sq_cli_fail(cmd, "%s", sq_last_error()); goto done; }
    } else {
        if (f.student) {
            if (sq_ckpt_load_into(s, f.student, 0)) { sq_cli_fail(cmd, "--student: %s", sq_last_error()); goto done; }
        } else {
            int need = 0;
            for (int i = 0; i < s->nparams; i++) need += s->params[i].kind != SQ_PT_QUANT;
            int got = sq_model_copy_matching(s, t);
            if (got != need) {
                sq_cli_fail(cmd, "student %s does not match teacher %s (%d of %d tensors have the same name and "
                            "shape): the student starts from the teacher's weights, so use the same architecture "
                            "or pass --student CKPT", s->arch, tm.arch, got, need);
                goto done;
            }
        }
        if (first_batch_init(cmd, s, &train, &c.cfg)) goto done;
    }
    if (sq_cli_prepare_out(cmd, &c, argc, argv)) goto done;
    sq_train_io io;
    memset(&io, 0, sizeof io);
    io.train = &train;
    io.test = have_test ? &test : NULL;
    io.model = s;
    io.teacher = t;
    io.resume_state = c.resume ? state : NULL;
    io.meta = tm;
    snprintf(io.meta.arch, sizeof io.meta.arch, "%s", s->arch);
    io.meta.q = f.q;
    io.meta.epoch = 0;
    io.meta.step = 0;
    snprintf(io.meta.role, sizeof io.meta.role, "%s", use_labels ? "qat" : "student");
    if (!c.cfg.quiet) {
        fprintf(stderr, "sqakd distill: %s %s W%dA%d student of %s on %s (%d images, %dx%dx%d); %s backend, %d threads\n",
                s->arch, sq_quant_kind_name(f.q.kind), f.q.wbits, f.q.abits, f.teacher, train.name, train.n, train.c,
                train.h, train.w, be->name, c.cfg.threads);
        if (use_labels)
            fprintf(stderr, "sqakd distill: --loss ce: label-supervised QAT baseline (labels are used for training)\n");
        else
            fprintf(stderr, "sqakd distill: loss alpha*T^2*KL(teacher||student), alpha %g, T %g; no labels are used "
                    "for training (labels, if any, only for reporting accuracy)\n", c.cfg.alpha, c.cfg.T);
    }
    if (sq_train_run(&c.cfg, &io)) {
        sq_cli_fail(cmd, "%s", sq_last_error());
        sq_cli_cleanup_out(&c);
        rc = 1;
        goto done;
    }
    if (c.cfg.out_dir && !c.cfg.quiet)
        fprintf(stderr, "sqakd distill: done; student checkpoints in %s/\n", c.cfg.out_dir);
    rc = 0;
done:
    sq_model_free(s);
    sq_model_free(t);
    sq_dataset_free(&train);
    sq_dataset_free(&test);
    return rc;
}
