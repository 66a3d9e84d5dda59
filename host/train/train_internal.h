/* train_internal.h: the training step (step.c) as the driver (driver.c) uses it, and the driver's
   pieces that tests reach: run checks, resume state, the divergence guard, EWGS delta updates and
   the end-of-epoch commit (evaluation, progress line, metrics line, checkpoints). */
#ifndef SQAKD_TRAIN_INTERNAL_H
#define SQAKD_TRAIN_INTERNAL_H
#include "sqakd/train.h"

/* Shapes of data, model and teacher agree; CE has labels; KL has a teacher; batch as planned. */
sq_status sq_train_check_io(const sq_train_cfg *cfg, const sq_train_io *io);
/* Names the optimizer buffers of b for the training-state side file; returns how many (4). */
int sq_train_state_items(const sq_model *m, const sq_step_bufs *b, sq_state_item *it);
/* What a run carries from epoch to epoch, and from a state file into a resumed run. */
typedef struct sq_run_state {
    int start_epoch;     /* epochs completed before this process started */
    int64_t step;        /* optimizer steps taken */
    double best;         /* best metric so far (-1: none) */
    int best_epoch;      /* the epoch best.safetensors holds (0: none yet) */
    double loss_ref;     /* the run's first-step loss, the divergence guard's reference (0: not yet) */
} sq_run_state;

/* The divergence guard's reference is never taken below this (a student that starts almost equal
   to its teacher has a first loss near 0). */
#define SQ_LOSS_REF_FLOOR 0.1

/* Loads io->resume_state (the commit point of the last finished epoch) into items, the model's
   dropout seed and rs; meta gets the saved metric. With cfg->out_dir, repairs what a run stopped
   during an epoch end left behind: last.safetensors and best.safetensors older than the state are
   rewritten from it, metrics.jsonl lines of uncommitted epochs are removed (each said on pg, prefixed
   by "label: " when label is not NULL). The model's weights come from the state file too (the CLI
   loads them with sq_ckpt_load_into before). */
sq_status sq_train_load_state(const sq_train_cfg *cfg, const sq_train_io *io, const sq_state_item *items, int n,
                              sq_ckpt_meta *meta, sq_run_state *rs, sq_progress *pg, const char *label);
/* The divergence guard on the mean loss of a read-back window of epoch ep: SQ_ENUMERIC, with a
   one-line error naming the step, when it is not finite or exceeds cfg->max_loss_ratio times the
   run's first-step loss (taken on the first call when rs has none). */
sq_status sq_train_check_loss(const sq_train_cfg *cfg, sq_run_state *rs, double loss, int ep);
/* EWGS delta from the Hessian trace on a few batches of epoch ep (cfg->delta_batches); the progress
   line is prefixed by "label: " when label is not NULL. */
sq_status sq_train_update_delta(const sq_train_cfg *cfg, const sq_train_io *io, int ep, const char *label,
                                sq_progress *pg);
/* Drops b's recorded step (CUDA graphs, on unless the backend's options say graph=0), so that the next step records a new one: call
   it whenever host-side settings the step's ops take may have changed (every epoch). */
void sq_step_bufs_graph_reset(const sq_model *m, sq_step_bufs *b);
/* 1 while b holds a recorded step (for tests) */
int sq_step_bufs_recorded(const sq_step_bufs *b);
/* The backend-side running loss sum that every step adds its loss to (one float). */
float *sq_step_bufs_loss_sum(sq_step_bufs *b);
/* After a read-back (a synchronisation point): the first device failure recorded since the
   backend was set up (CUDA's sticky status), as a one-line error naming the step (and the batch
   when it was out of memory); SQ_OK on the CPU backend. */
sq_status sq_train_device_status(const sq_model *m, int64_t step);
/* Step buffers for the driver: no feeder of their own (the driver's feeder feeds the model). */
sq_step_bufs *sq_step_bufs_driver(const sq_model *m);
/* One step of m on the nb images already in its (bound) input buffer: with the KL loss against the
   teacher's logits zt (backend memory), or the teacher's own forward inside the step when teacher
   is given (zt NULL); with CE against the labels dlab (backend memory). */
void sq_train_step_fed(const sq_train_cfg *cfg, sq_model *m, sq_model *teacher, sq_step_bufs *b, int nb,
                       const float *zt, const int32_t *dlab, float lr, float lrq, int t);

/* Where a run's wall time went, in seconds since the run started (cumulative): waiting for a batch
   (the loader and the input upload), the training steps (the teacher's forward included),
   evaluation, committing epochs (metrics, state and checkpoints); the rest is "other". */
typedef struct sq_wall {
    double t0;          /* sq_now() at the run's start */
    double data, step, eval, ckpt;
} sq_wall;

typedef struct sq_epoch_stats {
    int epoch;          /* 0-based epoch just finished */
    int64_t step;       /* optimizer steps so far */
    float lr;
    double loss_sum;    /* sum of the per-batch mean losses of this epoch */
    long imgs;          /* images trained on this epoch */
    double train_s;     /* seconds spent training this epoch */
    double t_start;     /* sq_now() at the start of the run */
    sq_wall *wall;      /* the run's time split (NULL: not kept): the epoch's evaluation and commit
                           are added to it, and the metrics line carries it */
    float **teacher_test; /* the frozen teacher's logits on the test split, kept across epochs and
                           students (*teacher_test NULL: not computed yet); NULL: not kept */
} sq_epoch_stats;

/* sq_evaluate_logits with the teacher's logits kept in *teacher_logits (filled on the first call,
   read on later ones, so a teacher's pass over a split runs once per run); teacher_logits NULL, or a
   split whose logits would take more than 512 MiB: the teacher runs every time. */
sq_status sq_evaluate_kept(sq_model *m, sq_model *teacher, const sq_dataset *ds, int batch, sq_eval_result *r,
                           float *logits, float **teacher_logits);

/* Evaluates on io->test (when not NULL), prints the epoch line (prefixed by "label: " when label is
   not NULL) and, with cfg->out_dir, commits the epoch: metrics.jsonl (rewritten atomically with
   this epoch's line), the TensorBoard events when tb is not NULL (the epoch's read-back losses and
   every value of the metrics line, flushed), then last.state.safetensors (the commit point: weights, optimizer state,
   counters), then last.safetensors, and best.safetensors when the metric improved. meta gets
   epoch, step and metric; rs the best metric and its epoch; er the evaluation (er->n == 0 without
   a test split). */
struct sq_tb_writer;
sq_status sq_train_end_epoch(const sq_train_cfg *cfg, const sq_train_io *io, const sq_epoch_stats *es,
                             const sq_state_item *items, int nitems, sq_ckpt_meta *meta, sq_run_state *rs,
                             const char *label, sq_progress *pg, sq_eval_result *er, struct sq_tb_writer *tb);
#endif
