/* cmd_distill.c: 'sqakd distill' — SQAKD: a low-bit student learns from a frozen full-precision
   teacher's temperature-softened outputs, without labels (--loss ce: label-supervised QAT of the
   same student, for comparison). With --students, several students train in one process from one
   teacher pass, each under OUT/<quantizer>_w<W>a<A>/. --teacher-precision fp16|bf16 runs the
   frozen teacher's forward in 16 bits on CUDA (sqakd/teacher_prec.h). */
#include "distill_common.h"
#include "sqakd/teacher_prec.h"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *USAGE =
    "--teacher CKPT --data SPEC --quantizer ewgs|pact|lsq|dorefa --wbits N --abits N "
    "[--alpha A --temperature T --epochs N --batch B --lr-model X --lr-quant Y --out DIR]\n"
    "       sqakd distill --teacher CKPT --data SPEC --students ewgs:w4a4,ewgs:w2a2,lsq:4 --out DIR [...]";

typedef struct {
    const char *teacher, *student, *model, *quantizer, *loss, *students, *tprec_name, *bits_map;
    sq_quant_opts q;
    sq_teacher_prec tprec;
} distill_flags;

/* sq_distill_open, then the teacher's precision (after its BatchNorm folding). 0 or 2. */
static int open_teacher(const char *cmd, sq_cli_common *c, const distill_flags *f, sq_distill_ctx *d)
{
    if (sq_distill_open(cmd, c, f->teacher, d)) return 2;
    if (sq_teacher_prec_apply(d->teacher, f->tprec)) {
        sq_cli_fail(cmd, "%s", sq_last_error());
        sq_distill_close(d);
        return 2;
    }
    if (f->tprec != SQ_TPREC_FP32 && !c->cfg.quiet)
        fprintf(stderr, "sqakd %s: teacher forward in %s (cuDNN convolutions on 16-bit tensors, fp32 head and "
                "logits)\n", cmd, sq_teacher_prec_name(f->tprec));
    return 0;
}

static void close_teacher(sq_distill_ctx *d)
{
    sq_teacher_prec_release(d->teacher);
    sq_distill_close(d);
}

static void print_loss_note(const sq_train_cfg *cfg)
{
    if (cfg->quiet) return;
    if (cfg->loss == SQ_LOSS_CE)
        fprintf(stderr, "sqakd distill: --loss ce: label-supervised QAT baseline (labels are used for training)\n");
    else if (cfg->squat)
        fprintf(stderr, "sqakd distill: loss alpha*T^2*KL(teacher||student) + G*MSE(student's quantized feature, teacher's "
                "feature quantized alike) at %s (SQuaT), alpha %g, T %g, G %g; no labels are used for training\n",
                cfg->squat_tap && cfg->squat_tap[0] ? cfg->squat_tap : "the last quantized conv's input", cfg->alpha,
                cfg->T, cfg->squat_weight);
    else
        fprintf(stderr, "sqakd distill: loss alpha*T^2*KL(teacher||student), alpha %g, T %g; no labels are used "
                "for training (labels, if any, only for reporting accuracy)\n", cfg->alpha, cfg->T);
}

/* the state file of a run to resume: DIR's own, or for a multi-student DIR the first student's */
static int resume_state_path(const char *cmd, const char *dir, char *state, size_t cap)
{
    snprintf(state, cap, "%s/last.state.safetensors", dir);
    if (access(state, F_OK) == 0) return 0;
    DIR *d = opendir(dir);
    if (!d) return sq_cli_fail(cmd, "--resume: cannot open %s: %s", dir, strerror(errno));
    char best[256] = "";
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof best) continue;
        char p[4400];
        snprintf(p, sizeof p, "%s/%s/last.state.safetensors", dir, e->d_name);
        if (access(p, F_OK) == 0 && (!best[0] || strcmp(e->d_name, best) < 0)) snprintf(best, sizeof best, "%s", e->d_name);
    }
    closedir(d);
    if (!best[0])
        return sq_cli_fail(cmd, "--resume: %s holds no last.state.safetensors (nor a student directory with one): "
                           "nothing to resume (a run stopped before its first epoch ended starts again without "
                           "--resume)", dir);
    snprintf(state, cap, "%s/%s/last.state.safetensors", dir, best);
    return 0;
}

/* what identifies the teacher a run was started with (its path may change) */
static void teacher_id(const sq_ckpt_meta *tm, char *dst, size_t n)
{
    snprintf(dst, n, "%s %dx%dx%d/%d epoch %d step %lld metric %.6f", tm->arch, tm->in_c, tm->in_h, tm->in_w,
             tm->classes, tm->epoch, (long long)tm->step, tm->metric);
}

int sq_cmd_distill(int argc, char **argv)
{
    const char *cmd = "distill";
    sq_cli_common c __attribute__((cleanup(sq_cli_common_free)));
    sq_distill_defaults(&c);
    distill_flags f = {.loss = "kl", .tprec_name = "fp32", .q = {.wbits = 0, .abits = 0}};
    float delta_w = 0, delta_a = 0;
    sq_arg a[80]; /* 53 flags in distill */
    int n = 0;
    SQ_ARG_PUT("--teacher", SQ_ARG_STR, &f.teacher, 0, 0, "full-precision teacher checkpoint (required)");
    SQ_ARG_PUT("--student", SQ_ARG_STR, &f.student, 0, 0, "start the student from this checkpoint instead of the teacher");
    SQ_ARG_PUT("--model", SQ_ARG_STR, &f.model, 0, 0, "student architecture (default: the teacher's)");
    SQ_ARG_PUT("--quantizer", SQ_ARG_STR, &f.quantizer, 0, 0, "ewgs | pact | lsq | dorefa (default ewgs)");
    SQ_ARG_PUT("--students", SQ_ARG_STR, &f.students, 0, 0, "several students from one teacher pass: QUANTIZER:BITS[:lr=X][:lrq=Y][:loss=kl|kl+squat][:pc],... (BITS wWaA or B; pc: per-channel weights), each in OUT/<quantizer>_w<W>a<A>[_pc][_squat]/");
    SQ_ARG_PUT("--wbits", SQ_ARG_INT, &f.q.wbits, 1, 8, "weight bits 1..8 (default 4)");
    SQ_ARG_PUT("--abits", SQ_ARG_INT, &f.q.abits, 1, 8, "activation bits 1..8 (default 4)");
    SQ_ARG_PUT("--quant-first-last", SQ_ARG_FLAG, &f.q.first_last, 0, 0, "also quantize the first conv and the classifier");
    SQ_ARG_PUT("--bits-map", SQ_ARG_STR, &f.bits_map, 0, 0, "JSON file: layer name -> {\"wbits\": W, \"abits\": A} (either optional; the rest from --wbits/--abits); 'sqakd info CKPT' lists the names");
    SQ_ARG_PUT("--per-channel", SQ_ARG_FLAG, &f.q.per_channel, 0, 0, "one weight quantizer per output channel (interval, step or clip value; DoReFa's max|tanh|) instead of per tensor");
    SQ_ARG_PUT("--delta-w", SQ_ARG_FLOAT, &delta_w, 0, 1e6, "EWGS backward delta for weights (default 0 = STE)");
    SQ_ARG_PUT("--delta-a", SQ_ARG_FLOAT, &delta_a, 0, 1e6, "EWGS backward delta for activations (default 0)");
    SQ_ARG_PUT("--delta-every", SQ_ARG_INT, &c.cfg.delta_every, 0, 100000, "ewgs: update delta from the Hessian trace every N epochs (0 = fixed; default 0)");
    SQ_ARG_PUT("--delta-batches", SQ_ARG_INT, &c.cfg.delta_batches, 1, 1000, "batches per Hessian delta update (default 2)");
    SQ_ARG_PUT("--loss", SQ_ARG_STR, &f.loss, 0, 0, "kl (SQAKD, no labels; default) | kl+squat (SQAKD plus SQuaT's quantized-feature term, docs/squat.md) | ce (label-supervised QAT baseline)");
    SQ_ARG_PUT("--squat-weight", SQ_ARG_FLOAT, &c.cfg.squat_weight, 0, 1e6, "kl+squat: weight G of the feature term (default 1)");
    SQ_ARG_PUT("--squat-tap", SQ_ARG_STR, &c.cfg.squat_tap, 0, 0, "kl+squat: the quantized layer whose input is compared (default: the last quantized conv; 'sqakd info' lists them)");
    SQ_ARG_PUT("--alpha", SQ_ARG_FLOAT, &c.cfg.alpha, 0, 1e6, "loss weight alpha (default 1)");
    SQ_ARG_PUT("--temperature", SQ_ARG_FLOAT, &c.cfg.T, 0.01, 1000, "distillation temperature T (default 4)");
    SQ_ARG_PUT("--lr-model", SQ_ARG_FLOAT, &c.cfg.lr, 0, 100, "Adam lr for model parameters (default 1e-3)");
    SQ_ARG_PUT("--lr-quant", SQ_ARG_FLOAT, &c.cfg.lr_quant, 0, 100, "Adam lr for quantizer parameters (default 1e-5)");
    SQ_ARG_PUT("--wd", SQ_ARG_FLOAT, &c.cfg.wd, 0, 1, "L2 weight decay of model parameters (default 1e-4)");
    SQ_ARG_PUT("--wd-quant", SQ_ARG_FLOAT, &c.cfg.wd_quant, 0, 1, "weight decay of quantizer parameters (default 0)");
    SQ_ARG_PUT("--allow-quantized-teacher", SQ_ARG_FLAG, &c.allow_qteacher, 0, 0, "accept a quantized student as --teacher (refused otherwise: a teacher is full precision)");
    SQ_ARG_PUT("--teacher-precision", SQ_ARG_STR, &f.tprec_name, 0, 0, "fp32 (default) | fp16 | bf16: the teacher's forward precision (fp16/bf16: --device cuda)");
    n += sq_cli_common_args(&c, a + n, (int)(sizeof a / sizeof a[0]) - n);
    const char *pos[1];
    int npos, r = sq_args_parse(cmd, USAGE, argc, argv, a, n, pos, 0, &npos);
    if (r) return r == 1 ? 0 : 2;
    char state[4096], last[4096], tid[256];
    if (c.resume) {
        int rc0 = resume_state_path(cmd, c.resume, state, sizeof state);
        if (!rc0) rc0 = sq_cli_resume_config(cmd, &c, a, n, state);
        if (rc0) return rc0;
    }
    if (sq_teacher_prec_parse(f.tprec_name, &f.tprec)) return sq_cli_fail(cmd, "%s", sq_last_error());
    if (f.tprec != SQ_TPREC_FP32) { /* refused before anything is opened; a missing GPU is reported later */
        const sq_backend *be = sq_backend_get(c.device);
        if (be && sq_teacher_prec_check(be, f.tprec)) return sq_cli_fail(cmd, "%s", sq_last_error());
    }
    f.q.delta_w = delta_w;
    f.q.delta_a = delta_a;
    if (sq_cli_bits_map(cmd, &c, f.bits_map, &f.q)) return 2;
    if (f.students) {
        if (sq_args_given(&f.quantizer) || sq_args_given(&f.q.wbits) || sq_args_given(&f.q.abits))
            return sq_cli_fail(cmd, "--students replaces --quantizer, --wbits and --abits: give one or the other");
        if (c.resume && c.out && strcmp(c.resume, c.out))
            return sq_cli_fail(cmd, "--students: --resume DIR continues the students in DIR/<name>/: drop --out");
    }
    if (!f.quantizer) f.quantizer = "ewgs";
    if (!f.q.wbits) f.q.wbits = 4;
    if (!f.q.abits) f.q.abits = 4;
    int kind = sq_quant_kind_parse(f.quantizer);
    if (kind <= 0) return sq_cli_fail(cmd, "unknown --quantizer '%s' (expected ewgs, pact, lsq or dorefa)", f.quantizer);
    f.q.kind = (sq_quant_kind)kind;
    if (sq_loss_parse(cmd, f.loss, &c.cfg)) return 2;
    if (!c.cfg.squat && !f.students && (sq_args_given(&c.cfg.squat_weight) || sq_args_given(&c.cfg.squat_tap)))
        return sq_cli_fail(cmd, "--squat-weight and --squat-tap need --loss kl+squat");
    if (c.cfg.delta_every > 0 && f.q.kind != SQ_QUANT_EWGS && !f.students)
        return sq_cli_fail(cmd, "--delta-every needs --quantizer ewgs (delta is the EWGS backward's scale)");
    if (!f.teacher) return sq_cli_fail(cmd, "--teacher CKPT is required (make one with 'sqakd train')");
    sq_cli_default_out(cmd, &c);
    if (f.students) {
        sq_student_spec specs[SQ_MAX_STUDENTS];
        int ns;
        if (sq_students_parse(cmd, f.students, &f.q, specs, SQ_MAX_STUDENTS, &ns)) return 2;
        const char *top = c.out ? c.out : c.resume;
        for (int i = 0; top && i < ns; i++) {
            char dir[4200];
            if (snprintf(dir, sizeof dir, "%s/%s", top, specs[i].name) >= (int)sizeof dir)
                return sq_cli_fail(cmd, "the output directory path is too long (at most 4096 bytes)");
            if (sq_cli_check_run_dir(cmd, dir, c.resume != NULL, c.overwrite)) return 2;
        }
        sq_distill_ctx d;
        if (open_teacher(cmd, &c, &f, &d)) return 2;
        teacher_id(&d.tm, tid, sizeof tid);
        if (sq_cli_check_recorded(cmd, &c, "teacher_id", tid)) {
            close_teacher(&d);
            return 2;
        }
        sq_cli_make_config(&c, a, n, "teacher_id", tid);
        sq_cli_config_add_bits_map(&c, f.q.bits_map);
        print_loss_note(&c.cfg);
        sq_cli_say_default_out(cmd, &c);
        int rc = sq_distill_students(cmd, &c, &d, f.model, f.student, specs, ns, argc, argv, NULL, NULL);
        close_teacher(&d);
        return rc;
    }

    if ((c.out || c.resume) && sq_cli_check_run_dir(cmd, c.out ? c.out : c.resume, c.resume != NULL, c.overwrite))
        return 2;
    sq_ckpt_meta rm; /* outlives the block: arch points into it */
    const char *arch = f.model;
    if (c.resume) {
        snprintf(state, sizeof state, "%s/last.state.safetensors", c.resume);
        if (sq_state_weights(state, last, sizeof last) || sq_ckpt_read_meta(last, &rm))
            return sq_cli_fail(cmd, "--resume: %s", sq_last_error());
        if (rm.q.kind == SQ_QUANT_NONE) return sq_cli_fail(cmd, "%s is not a quantized student", last);
        f.q = rm.q;
        arch = rm.arch;
    }
    sq_distill_ctx d;
    if (open_teacher(cmd, &c, &f, &d)) return 2;
    int rc = 2, use_labels = c.cfg.loss == SQ_LOSS_CE;
    sq_model *s = NULL;
    teacher_id(&d.tm, tid, sizeof tid);
    if (sq_cli_check_recorded(cmd, &c, "teacher_id", tid)) goto done;
    sq_cli_make_config(&c, a, n, "teacher_id", tid);
    sq_cli_config_add_bits_map(&c, f.q.bits_map);
    if (sq_distill_new_student(cmd, &d, &c.cfg, arch, f.student, c.resume ? last : NULL, &f.q, &s)) goto done;
    if (sq_cli_prepare_out(cmd, &c, argc, argv)) goto done;
    sq_train_io io;
    memset(&io, 0, sizeof io);
    io.train = &d.train;
    io.test = d.have_test ? &d.test : NULL;
    io.model = s;
    io.teacher = d.teacher;
    io.resume_state = c.resume ? state : NULL;
    io.meta = d.tm;
    snprintf(io.meta.arch, sizeof io.meta.arch, "%s", s->arch);
    io.meta.q = f.q;
    io.meta.epoch = 0;
    io.meta.step = 0;
    snprintf(io.meta.role, sizeof io.meta.role, "%s", use_labels ? "qat" : "student");
    if (!c.cfg.quiet)
        fprintf(stderr, "sqakd distill: %s %s W%dA%d student of %s on %s (%d images, %dx%dx%d); %s backend, %d threads\n",
                s->arch, sq_quant_kind_name(f.q.kind), f.q.wbits, f.q.abits, f.teacher, d.train.name, d.train.n,
                d.train.c, d.train.h, d.train.w, d.be->name, c.cfg.threads);
    print_loss_note(&c.cfg);
    rc = sq_cli_run(cmd, &c, &io, "student checkpoints");
done:
    sq_model_free(s);
    close_teacher(&d);
    return rc;
}
