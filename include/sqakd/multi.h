/* multi.h: several students trained from one teacher pass (a bit-width sweep in one process).
   Each batch is loaded and augmented once, the teacher's forward runs once, and every student
   takes its step from the same teacher logits (host/train/driver.c, which also runs single runs). Each student has its
   own optimizer state, checkpoints, metrics and progress lines; a student whose loss becomes
   non-finite (or whose checkpoint cannot be written) is stopped and reported while the others go
   on. A GPU failure (the CUDA backend's sticky error, read at each loss read-back) stops every
   student: the device state they share can no longer be trusted. A student's weights equal, bit for bit on the CPU backend, those of a separate sq_train_run
   with the same configuration, seed and thread count. */
#ifndef SQAKD_MULTI_H
#define SQAKD_MULTI_H

#include "sqakd/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_student {
    /* in */
    char name[64];              /* e.g. "ewgs_w4a4": prefix of its progress lines */
    sq_model *model;            /* set up with gradients at cfg.batch and initialised */
    sq_train_cfg cfg;           /* its configuration (out_dir, lr, lr_quant, wd, delta_every, ...);
                                   loss, epochs, batch, seed, max_steps_per_epoch, crop_pad and
                                   flip must equal the shared configuration's */
    sq_ckpt_meta meta;          /* written into its checkpoints */
    const char *resume_state;   /* its last.state.safetensors to resume from, or NULL */
    /* out */
    sq_status status;           /* SQ_OK, SQ_ENUMERIC (diverged), or what stopped it */
    char error[512];            /* the message when status != SQ_OK */
    int epochs_done;            /* epochs completed (including resumed ones) */
    int64_t steps;              /* optimizer steps taken */
    sq_eval_result eval;        /* evaluation after its last completed epoch (eval.n == 0: none) */
    double train_seconds;       /* this run's training: its own steps plus its share of batch
                                   loading and teacher forwards */
    double eval_seconds;        /* this run's end-of-epoch evaluations and checkpoints */
} sq_student;

/* Trains n students on train (evaluating on test when not NULL) from one frozen teacher (NULL
   only with SQ_LOSS_CE). Returns SQ_OK when every student finished; otherwise the status of the
   first student that stopped (the others ran to the end; see each student's status and error),
   or an error that stopped the whole run (bad configuration, data smaller than one batch). */
sq_status sq_train_multi(const sq_train_cfg *cfg, const sq_dataset *train, const sq_dataset *test,
                         sq_model *teacher, sq_student *students, int n);

/* Quantizer initialisation of a student from the first batch of a fixed seeded shuffle of train
   (seed cfg->seed, augmentation as cfg): what 'sqakd distill' does before training, shared so
   that single and multi-student runs start identically. */
sq_status sq_train_quant_init_first_batch(sq_model *s, const sq_dataset *train, const sq_train_cfg *cfg);

#ifdef __cplusplus
}
#endif
#endif
