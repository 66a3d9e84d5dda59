/* train.h: the one training loop (full-precision with labels, SQAKD distillation without labels,
   or label-supervised QAT), evaluation, and progress reporting. */
#ifndef SQAKD_TRAIN_H
#define SQAKD_TRAIN_H

#include "sqakd/checkpoint.h"
#include "sqakd/comm.h"
#include "sqakd/data.h"
#include "sqakd/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { SQ_LOSS_CE = 0, SQ_LOSS_KL = 1 } sq_loss_kind;
typedef enum { SQ_OPT_SGD = 0, SQ_OPT_ADAM = 1 } sq_opt_kind;
typedef enum { SQ_SCHED_COSINE = 0, SQ_SCHED_STEP = 1, SQ_SCHED_CONST = 2 } sq_sched_kind;

typedef struct sq_train_cfg {
    sq_loss_kind loss;
    int epochs, batch, threads;
    uint64_t seed;
    sq_opt_kind opt;
    float lr, momentum, wd;
    sq_sched_kind sched;
    int step_every;          /* step schedule: epochs between decays */
    float step_gamma;
    float lr_quant, wd_quant;/* quantizer-parameter optimizer (Adam) */
    float alpha, T;          /* distillation */
    int delta_every;         /* EWGS: update delta from the Hessian trace every N epochs (0 = fixed) */
    int delta_batches;       /* batches per delta update */
    int log_every;           /* steps between loss read-backs */
    int max_steps_per_epoch; /* 0: whole epoch (for quick runs and tests) */
    int crop_pad, flip;
    const char *out_dir;     /* NULL: write nothing */
    int quiet;
    float max_loss_ratio;    /* divergence guard: stop when a loss exceeds this times the run's first
                                (0: only non-finite losses stop a run) */
    const char *run_config;  /* JSON object of the flags that shaped the run, recorded in the state
                                and checkpoint metadata (NULL: none); the CLI compares it on resume */
    int tensorboard;         /* TensorBoard event files (needs out_dir): the loss of every read-back
                                window (log_every) and every metrics.jsonl value, per epoch */
    const char *tb_dir;      /* their directory; NULL: out_dir/tensorboard */
    /* SQuaT (issue 20, docs/squat.md; with the KL loss only): squat_weight * MSE between the
       student's quantized input of layer squat_tap and the teacher's feature there, fake-quantized
       with that layer's activation quantizer, added to the KL loss */
    int squat;               /* 1: --loss kl+squat */
    float squat_weight;      /* --squat-weight G (default 1) */
    const char *squat_tap;   /* --squat-tap NODE: a quantized layer's name; NULL or "": the last
                                quantized convolution (sq_squat_default_tap) */
    /* data parallelism (docs/scaling.md): the ranks of the run (NULL or size 1: this process
       alone). batch stays the global batch; every rank trains on its batch / size part of each,
       the gradients are summed over the ranks (the backend's allreduce_start, in buckets of
       dist_bucket_mb MiB handed over during the backward as they become final) and divided by
       size. The caller gives rank 0 alone out_dir, tensorboard and progress output. */
    const sq_comm *comm;
    int sync_bn;             /* BatchNorm statistics and backward sums over all ranks (backend.h) */
    float dist_bucket_mb;    /* --dist-bucket-mb (default SQ_DIST_BUCKET_MB_DEFAULT) */
} sq_train_cfg;

void sq_train_cfg_defaults(sq_train_cfg *c);

#define SQ_DIST_BUCKET_MB_DEFAULT 4.0f
/* the gradient bucket of a data-parallel step in floats (at least 1) */
size_t sq_train_dist_bucket_floats(const sq_train_cfg *c);

float sq_sched_lr(const sq_train_cfg *c, float lr0, int epoch);

typedef struct sq_eval_result {
    int n;
    double top1, top5;         /* percent; -1 without labels */
    double per_class[SQ_MAX_CLASSES];
    int per_class_n[SQ_MAX_CLASSES];
    int classes;
    double agreement;          /* percent top-1 agreement with the teacher; -1 without teacher */
    double kl;                 /* mean KL(teacher || model) at T = 1; -1 without teacher */
    double seconds;
} sq_eval_result;

/* Evaluates m (eval mode) on ds; teacher may be NULL. Labels are used only if ds has them. */
sq_status sq_evaluate(sq_model *m, sq_model *teacher, const sq_dataset *ds, int batch,
                      sq_eval_result *r);
/* The same, also writing every image's logits (ds->n x m->classes floats, host memory, in the
   split's order) into logits when it is not NULL. */
sq_status sq_evaluate_logits(sq_model *m, sq_model *teacher, const sq_dataset *ds, int batch,
                             sq_eval_result *r, float *logits);

typedef struct sq_train_io {
    const sq_dataset *train, *test;   /* test may be NULL */
    sq_model *model;
    sq_model *teacher;                /* distillation only */
    sq_ckpt_meta meta;                /* written into checkpoints */
    const char *resume_state;         /* path of a last.state.safetensors to resume from */
} sq_train_io;

sq_status sq_train_run(const sq_train_cfg *cfg, sq_train_io *io);

/* One training step on a host batch (for 'sqakd bench step' and tests; the driver feeds its steps
   itself): forward, loss (CE with labels y, or KL against the teacher), backward, optimizer steps;
   the loss is added to a backend-side running sum (no host synchronisation). t is the 1-based
   optimizer step. The buffers own a feeder (staged when staged is set and the backend can): m,
   and the teacher once given, read their input from it until the buffers are freed. */
typedef struct sq_step_bufs sq_step_bufs;
sq_step_bufs *sq_step_bufs_new(const sq_model *m);
sq_step_bufs *sq_step_bufs_create(const sq_model *m, int staged);
void sq_step_bufs_free(const sq_model *m, sq_step_bufs *b);
void sq_train_step(const sq_train_cfg *cfg, sq_model *m, sq_model *teacher, sq_step_bufs *b, const float *x,
                   const int32_t *y, int nb, float lr, float lrq, int t);
/* SQuaT taps (host/train/squat.c). A tap is a quantized convolution or linear layer whose input
   is not the network's input, named by its node name; its feature is that layer's quantized input.
   sq_squat_tap_ok: node i is one (a model without quantizers, such as a teacher: the layers the
   recipe would quantize with the defaults, method.md 3.6). sq_squat_default_tap: the last
   quantized convolution (the paper's choice), or the last tap when there is no convolution; -1 when
   there is none. sq_squat_find_tap: the node named `name` (NULL or "": the default), or SQ_EARG
   with one line listing the valid names. sq_squat_tap_names: the valid names, comma-separated. */
int sq_squat_tap_ok(const sq_model *m, int i);
int sq_squat_default_tap(const sq_model *m);
sq_status sq_squat_find_tap(const sq_model *m, const char *name, int *node);
void sq_squat_tap_names(const sq_model *m, char *dst, size_t cap);
/* Makes the steps run with b add the SQuaT term of cfg (nothing when cfg->squat is 0): resolves
   cfg->squat_tap on m and checks that the teacher has the same graph there and runs in fp32 (its
   feature at the tap is read from its forward). SQ_EARG with one line otherwise. */
sq_status sq_step_bufs_squat(sq_step_bufs *b, const sq_train_cfg *cfg, const sq_model *m, const sq_model *teacher);

/* progress.c */
typedef struct sq_progress sq_progress;
sq_progress *sq_progress_new(int quiet);
void sq_progress_update(sq_progress *p, int epoch, int epochs, int step, int steps, double loss,
                        double img_per_s, double eta_s);
void sq_progress_line(sq_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sq_progress_free(sq_progress *p);

#ifdef __cplusplus
}
#endif
#endif
