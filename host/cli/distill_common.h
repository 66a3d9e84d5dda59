/* distill_common.h: set-up shared by 'sqakd distill' (one student, or several with --students)
   and 'sqakd sweep': opening the teacher and the data, making a student, parsing student lists,
   and training several students from one teacher pass with per-student output directories. */
#ifndef SQAKD_DISTILL_COMMON_H
#define SQAKD_DISTILL_COMMON_H
#include "sqakd/multi.h"
#include "train_common.h"

typedef struct sq_distill_ctx {
    const sq_backend *be;
    sq_model *teacher;          /* frozen, planned for cfg.batch */
    sq_ckpt_meta tm;            /* the teacher's metadata */
    sq_dataset train, test;     /* normalised as the teacher was trained */
    int have_test;
} sq_distill_ctx;

/* The shared flags' defaults for distillation: Adam, lr 1e-3, wd 1e-4, KL loss. */
void sq_distill_defaults(sq_cli_common *c);

/* Opens the teacher and the data (labels for training only with --loss ce), checks that they fit
   and resolves the shared flags (schedule, augmentation). 0, or 2 with the error printed; on
   failure d holds nothing to close. */
int sq_distill_open(const char *cmd, sq_cli_common *c, const char *teacher_path, sq_distill_ctx *d);
void sq_distill_close(sq_distill_ctx *d);

/* A student of arch (NULL: the teacher's) quantized as q. From resume_ckpt when given (its
   quantizer parameters included), else from init_ckpt or the teacher's weights, with quantizers
   initialised from the first batch (sq_train_quant_init_first_batch). 0, or 2 with the error
   printed. */
int sq_distill_new_student(const char *cmd, const sq_distill_ctx *d, const sq_train_cfg *cfg, const char *arch,
                           const char *init_ckpt, const char *resume_ckpt, const sq_quant_opts *q, sq_model **out);

/* One student of a --students list: "QUANTIZER:BITS[:lr=X][:lrq=Y][:loss=kl|kl+squat]", BITS "wWaA" or
   "B" (wBaB). */
typedef struct sq_student_spec {
    char name[64];              /* "<quantizer>_w<W>a<A>": its subdirectory and progress prefix */
    sq_quant_opts q;
    float lr, lr_quant;         /* < 0: the shared --lr-model / --lr-quant */
    int squat;                  /* :loss=kl (0) or :loss=kl+squat (1, name suffix "_squat"); -1: the shared --loss */
} sq_student_spec;

/* --loss NAME: "kl", "kl+squat" (KL with SQuaT's feature term: cfg->squat = 1) or "ce". 0, or 2 with
   the error printed. */
int sq_loss_parse(const char *cmd, const char *name, sq_train_cfg *cfg);
/* --squat-tap NAME looks like a node name (printable, no quotes or backslashes, under 80 bytes;
   whether the model has it is checked on the model). 0 (NULL too), or 2 with the error printed. */
int sq_squat_tap_check(const char *cmd, const char *tap);

#define SQ_MAX_STUDENTS 64

/* --bits-map (cli_bits_map.c): q->bits_map from the file at path (NULL: none), or on --resume the
   map recorded in the run's configuration. 0, or 2 with one line printed. */
int sq_cli_bits_map(const char *cmd, const sq_cli_common *c, const char *path, sq_quant_opts *q);
/* records the map's canonical text as "bits_map_json" in c's run configuration (after
   sq_cli_make_config) */
void sq_cli_config_add_bits_map(sq_cli_common *c, const char *map);

/* "w4a2" -> 4, 2; "4" -> 4, 4. 0, or -1 when s is not of that form with bits in 1..8. */
int sq_bits_parse(const char *s, int *wbits, int *abits);
/* Parses a comma-separated student list; base supplies first_last and the deltas. 0 or 2. */
int sq_students_parse(const char *cmd, const char *list, const sq_quant_opts *base, sq_student_spec *out,
                      int max, int *n);

/* Called once per student after training (finished or stopped); the model is still alive. */
typedef void (*sq_student_done_fn)(void *ctx, const sq_distill_ctx *d, const sq_student_spec *spec,
                                   const sq_student *s);

/* Trains the students from one teacher pass, each under c->out/<name>/ with the files of a single
   run. With c->resume set, a student whose directory holds last.safetensors and
   last.state.safetensors resumes from them and the others start afresh. Returns 0 when all
   finished, 1 when some were stopped (reported), 2 on an error that stopped the run. */
int sq_distill_students(const char *cmd, sq_cli_common *c, const sq_distill_ctx *d, const char *arch,
                        const char *init_ckpt, const sq_student_spec *specs, int n, int argc, char **argv,
                        sq_student_done_fn done, void *ctx);
#endif
