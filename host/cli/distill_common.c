/* distill_common.c: teacher and data set-up, student creation and student-list parsing shared by
   'sqakd distill' and 'sqakd sweep'. */
#include "cli_data.h"
#include "distill_common.h"
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sq_distill_defaults(sq_cli_common *c)
{
    sq_cli_common_defaults(c);
    c->cfg.opt = SQ_OPT_ADAM;
    c->cfg.lr = 1e-3f;
    c->cfg.wd = 1e-4f;
    c->cfg.loss = SQ_LOSS_KL;
}

int sq_distill_open(const char *cmd, sq_cli_common *c, const char *teacher_path, sq_distill_ctx *d)
{
    memset(d, 0, sizeof *d);
    d->be = sq_cli_backend(cmd, c);
    if (!d->be) return 2;
    if (sq_cli_import_opts(cmd, &c->imp, &c->io)) return 2;
    if (sq_model_open(teacher_path, &c->io, d->be, sq_cli_plan_batch(c), 0, &d->teacher, &d->tm))
        return sq_cli_fail(cmd, "--teacher: %s", sq_last_error());
    if (d->tm.q.kind != SQ_QUANT_NONE && !c->allow_qteacher) {
        char pb[256];
        sq_cli_fail(cmd, "--teacher %s is a quantized student (%s W%dA%d, role '%s'), not a full-precision teacher: "
                    "distill from the teacher it was trained from, or pass --allow-quantized-teacher to use it "
                    "anyway", sq_printable(teacher_path, pb, sizeof pb), sq_quant_kind_name(d->tm.q.kind),
                    d->tm.q.wbits, d->tm.q.abits, d->tm.role);
        sq_model_free(d->teacher);
        memset(d, 0, sizeof *d);
        return 2;
    }
    /* the teacher is frozen: fold its BatchNorm layers into the convolutions and let its
       layers share activation buffers (model.h; not with SQuaT, which reads a feature of the
       teacher after its forward) */
    if (sq_model_fold_bn(d->teacher, NULL) || (!c->cfg.squat && sq_model_compact_activations(d->teacher))) {
        sq_cli_fail(cmd, "--teacher: %s", sq_last_error());
        sq_model_free(d->teacher);
        memset(d, 0, sizeof *d);
        return 2;
    }
    int use_labels = c->cfg.loss == SQ_LOSS_CE;
    sq_data_opts dopts;
    if (sq_cli_data_opts(cmd, c->resize, c->loader_threads, &dopts)) goto fail;
    dopts.skip_norm = 1; /* no statistics: the teacher's normalisation, below */
    if (sq_cli_open_data(cmd, c->data, &dopts, use_labels, c->holdout, c->cfg.seed, &d->train, &d->test, &d->have_test))
        goto fail;
    sq_cli_apply_norm(&d->train, d->tm.mean, d->tm.std);   /* the student sees what the teacher saw */
    sq_cli_apply_norm(&d->test, d->tm.mean, d->tm.std);
    if (d->train.c != d->tm.in_c || d->train.h != d->tm.in_h || d->train.w != d->tm.in_w) {
        sq_cli_fail(cmd, "data %s is %dx%dx%d but teacher %s expects %dx%dx%d", d->train.name, d->train.c,
                    d->train.h, d->train.w, teacher_path, d->tm.in_c, d->tm.in_h, d->tm.in_w);
        goto fail;
    }
    if (use_labels && d->train.classes > d->tm.classes) {
        sq_cli_fail(cmd, "data %s has %d classes but the teacher has %d outputs", d->train.name, d->train.classes,
                    d->tm.classes);
        goto fail;
    }
    if (sq_cli_common_finish(cmd, c, &d->train)) goto fail;
    return 0;
fail:
    sq_distill_close(d);
    return 2;
}

void sq_distill_close(sq_distill_ctx *d)
{
    sq_model_free(d->teacher);
    sq_dataset_free(&d->train);
    sq_dataset_free(&d->test);
    memset(d, 0, sizeof *d);
}

/* PACT and DoReFa map weights onto [-1, 1] whatever their scale; a BatchNorm after the
   convolution restores it. An imported graph exported with BatchNorm folded into its
   convolutions has none, and its activations then grow layer by layer: say so before training. */
static void warn_no_bn(const char *cmd, const sq_model *s, const sq_quant_opts *q)
{
    if (q->kind != SQ_QUANT_PACT && q->kind != SQ_QUANT_DOREFA) return;
    int bare = 0, nq = 0;
    for (int i = 0; i < s->nnodes; i++) {
        const sq_node *n = &s->nodes[i];
        if (n->op != SQ_NODE_CONV || !n->quant) continue;
        nq++;
        int bn = 0;
        for (int j = i + 1; j < s->nnodes; j++)
            if (s->nodes[j].in0 == i && s->nodes[j].op == SQ_NODE_BN) bn = 1;
        bare += !bn;
    }
    if (bare)
        fprintf(stderr, "sqakd %s: note: %d of %d quantized convolutions have no BatchNorm after them (folded into the "
                "weights when the model was exported?); %s rescales weights to [-1, 1] and needs one to train stably: "
                "export with BatchNorm kept (torch.onnx.export(..., training=torch.onnx.TrainingMode.PRESERVE)) or "
                "use --quantizer ewgs or lsq\n", cmd, bare, nq, sq_quant_kind_name(q->kind));
}

int sq_distill_new_student(const char *cmd, const sq_distill_ctx *d, const sq_train_cfg *cfg, const char *arch,
                           const char *init_ckpt, const char *resume_ckpt, const sq_quant_opts *q, sq_model **out)
{
    const sq_ckpt_meta *tm = &d->tm;
    sq_model *s = NULL;
    *out = NULL;
    if (arch && !strcmp(arch, "graph")) arch = NULL;   /* an imported teacher's graph: cloned below */
    /* the student is the teacher's graph (a zoo model by name, an imported one as it was built) unless
       an architecture is named */
    if ((arch ? sq_model_create(arch, tm->in_c, tm->in_h, tm->in_w, tm->classes, &s)
              : sq_model_clone_graph(d->teacher, &s)) ||
        sq_model_set_quant(s, q) || sq_model_setup(s, d->be, cfg->batch / (cfg->comm ? cfg->comm->size : 1), 1)) {
        sq_model_free(s);
        return sq_cli_fail(cmd, "%s", sq_last_error());
    }
    if (resume_ckpt) {
        if (sq_ckpt_load_into(s, resume_ckpt, 2)) goto fail;
        *out = s;
        return 0;
    }
    if (init_ckpt) {
        if (sq_ckpt_load_into(s, init_ckpt, 0)) {
            sq_cli_fail(cmd, "--student: %s", sq_last_error());
            sq_model_free(s);
            return 2;
        }
    } else {
        int need = 0;
        for (int i = 0; i < s->nparams; i++) need += s->params[i].kind != SQ_PT_QUANT;
        int got = sq_model_copy_matching(s, d->teacher);
        if (got != need) {
            sq_cli_fail(cmd, "student %s does not match teacher %s (%d of %d tensors have the same name and "
                        "shape): the student starts from the teacher's weights, so use the same architecture "
                        "or pass --student CKPT", s->arch, tm->arch, got, need);
            sq_model_free(s);
            return 2;
        }
    }
    warn_no_bn(cmd, s, q);
    int tap;
    if (cfg->squat && sq_squat_find_tap(s, cfg->squat_tap, &tap)) goto fail; /* before any training */
    if (cfg->squat && d->teacher->tprec) {
        sq_cli_fail(cmd, "--loss kl+squat reads the teacher's fp32 feature at the tap: drop --teacher-precision");
        sq_model_free(s);
        return 2;
    }
    if (sq_train_quant_init_first_batch(s, &d->train, cfg)) {
        sq_cli_fail(cmd, "quantizer initialisation failed: %s", sq_last_error());
        sq_model_free(s);
        return 2;
    }
    *out = s;
    return 0;
fail:
    sq_cli_fail(cmd, "%s", sq_last_error());
    sq_model_free(s);
    return 2;
}

int sq_loss_parse(const char *cmd, const char *name, sq_train_cfg *cfg)
{
    cfg->squat = 0;
    if (!strcmp(name, "kl")) cfg->loss = SQ_LOSS_KL;
    else if (!strcmp(name, "kl+squat")) cfg->loss = SQ_LOSS_KL, cfg->squat = 1;
    else if (!strcmp(name, "ce")) cfg->loss = SQ_LOSS_CE;
    else {
        char pb[64];
        return sq_cli_fail(cmd, "--loss must be kl, kl+squat or ce, got '%s'", sq_printable(name, pb, sizeof pb));
    }
    return sq_squat_tap_check(cmd, cfg->squat_tap);
}

int sq_squat_tap_check(const char *cmd, const char *t)
{
    /* a node name goes into the recorded configuration: printable, no quote or backslash */
    for (size_t i = 0; t && t[i]; i++)
        if (i >= 79 || t[i] < 0x20 || t[i] > 0x7e || t[i] == '"' || t[i] == '\\') {
            char pb[96];
            return sq_cli_fail(cmd, "--squat-tap '%s' is not a node name (at most 79 printable characters, no quotes or "
                               "backslashes; 'sqakd info' lists the names)", sq_printable(t, pb, sizeof pb));
        }
    return 0;
}

/* a run of decimal digits at *p (no sign, no spaces); -1 when there is none */
static long digits(const char **p)
{
    if (!isdigit((unsigned char)**p)) return -1;
    char *end;
    errno = 0;
    long v = strtol(*p, &end, 10);
    *p = end;
    return errno ? -1 : v;
}

int sq_bits_parse(const char *s, int *wbits, int *abits)
{
    long w, a;
    const char *p = s;
    if (*p == 'w' || *p == 'W') {
        p++;
        if ((w = digits(&p)) < 0 || (*p != 'a' && *p != 'A')) return -1;
        p++;
        if ((a = digits(&p)) < 0) return -1;
    } else {
        if ((w = digits(&p)) < 0) return -1;
        a = w;
    }
    if (*p || w < 1 || w > 8 || a < 1 || a > 8) return -1;
    *wbits = (int)w;
    *abits = (int)a;
    return 0;
}

static int parse_one_student(const char *cmd, char *tok, const sq_quant_opts *base, sq_student_spec *sp)
{
    memset(sp, 0, sizeof *sp);
    sp->q = *base;
    sp->lr = sp->lr_quant = -1;
    sp->squat = -1;
    char *save = NULL, *part = strtok_r(tok, ":", &save);
    if (!part) return sq_cli_fail(cmd, "--students: empty entry (expected QUANTIZER:BITS, e.g. ewgs:w4a4)");
    int kind = sq_quant_kind_parse(part);
    if (kind <= 0)
        return sq_cli_fail(cmd, "--students: unknown quantizer '%s' (expected ewgs, pact, lsq or dorefa)", part);
    sp->q.kind = (sq_quant_kind)kind;
    char *bits = strtok_r(NULL, ":", &save);
    if (!bits || sq_bits_parse(bits, &sp->q.wbits, &sp->q.abits))
        return sq_cli_fail(cmd, "--students: '%s' needs bits as wWaA or B with 1..8 bits (e.g. %s:w4a4 or %s:2), "
                           "got '%s'", part, part, part, bits ? bits : "");
    int pc = 0;
    for (char *opt; (opt = strtok_r(NULL, ":", &save));) {
        if (!strncmp(opt, "loss=", 5)) {
            if (strcmp(opt + 5, "kl") && strcmp(opt + 5, "kl+squat")) {
                char pb[64];
                return sq_cli_fail(cmd, "--students: '%s' takes loss=kl or loss=kl+squat", sq_printable(opt, pb, sizeof pb));
            }
            sp->squat = !strcmp(opt + 5, "kl+squat");
            continue;
        }
        if (!strcmp(opt, "pc")) {
            sp->q.per_channel = pc = 1;
            continue;
        }
        float *dst = !strncmp(opt, "lr=", 3) ? &sp->lr : !strncmp(opt, "lrq=", 4) ? &sp->lr_quant : NULL;
        if (!dst) return sq_cli_fail(cmd, "--students: unknown option '%s' (lr=X, lrq=Y, loss=kl|kl+squat or pc)", opt);
        const char *v = strchr(opt, '=') + 1;
        char *end;
        errno = 0;
        double x = strtod(v, &end);
        if (!*v || *end || errno || !(x >= 0) || x > 1e30)
            return sq_cli_fail(cmd, "--students: '%s' needs a number in [0, 1e30]", opt);
        *dst = (float)x;
    }
    snprintf(sp->name, sizeof sp->name, "%s_w%da%d%s%s", sq_quant_kind_name(sp->q.kind), sp->q.wbits, sp->q.abits,
             pc ? "_pc" : "", sp->squat == 1 ? "_squat" : "");
    return 0;
}

int sq_students_parse(const char *cmd, const char *list, const sq_quant_opts *base, sq_student_spec *out,
                      int max, int *n)
{
    *n = 0;
    char *copy = sq_xmalloc(strlen(list) + 1), *save = NULL;
    strcpy(copy, list);
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        if (*n >= max) {
            rc = sq_cli_fail(cmd, "--students: at most %d students per run", max);
            break;
        }
        if ((rc = parse_one_student(cmd, tok, base, &out[*n]))) break;
        for (int j = 0; j < *n && !rc; j++)
            if (!strcmp(out[j].name, out[*n].name))
                rc = sq_cli_fail(cmd, "--students: %s is listed twice", out[j].name);
        (*n)++;
    }
    if (!rc && *n == 0) rc = sq_cli_fail(cmd, "--students: the list is empty (e.g. ewgs:w4a4,lsq:w2a2)");
    free(copy);
    return rc;
}
