/* checkpoint.h: model checkpoints (safetensors, PyTorch state_dict names, metadata) and the
   training-state side file used to resume exactly. */
#ifndef SQAKD_CHECKPOINT_H
#define SQAKD_CHECKPOINT_H

#include "sqakd/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_ckpt_meta {
    char arch[32];
    int in_c, in_h, in_w, classes;
    float mean[4], std[4];
    char dataset[64];
    int epoch;                 /* epochs completed */
    int64_t step;              /* optimizer steps taken */
    sq_quant_opts q;           /* kind NONE for a full-precision model */
    char role[16];             /* "teacher" (fp train) or "student" (distill) or "qat" */
    double metric;             /* top-1 (or agreement without labels) at save time */
} sq_ckpt_meta;

/* Writes every tensor of m (trainable, running stats, num_batches_tracked as I64, quantizer
   parameters) with metadata, atomically. */
sq_status sq_ckpt_save(const sq_model *m, const sq_ckpt_meta *meta, const char *path);
sq_status sq_ckpt_read_meta(const char *path, sq_ckpt_meta *meta);
/* Loads tensors into an existing (set up) model. strict: every model tensor must be present with
   the right shape (quantizer parameters excepted when strict == 1 and the file has none). */
sq_status sq_ckpt_load_into(sq_model *m, const char *path, int strict);
/* The model a checkpoint holds, built without memory: a zoo model by its arch, an imported one
   (arch "graph") from the graph stored in the file (meta from sq_ckpt_read_meta). */
sq_status sq_ckpt_create_model(const char *path, const sq_ckpt_meta *meta, sq_model **out);
/* create + set_quant (from the metadata) + setup + load */
sq_status sq_ckpt_open_model(const char *path, const sq_backend *be, int batch, int with_grad,
                             sq_model **out, sq_ckpt_meta *meta);

/* The same with the run's configuration (a JSON object of the flags that shaped it, see
   sq_train_cfg.run_config) in the metadata as "run_config"; NULL leaves it out. */
sq_status sq_ckpt_save_cfg(const sq_model *m, const sq_ckpt_meta *meta, const char *run_config, const char *path);
/* the "run_config" metadata of a checkpoint or state file (malloc'd; NULL when it has none) */
sq_status sq_ckpt_read_config(const char *path, char **run_config);

/* Training-state file (last.state.safetensors): the commit point of an epoch. It holds every
   tensor of the model's checkpoint (so a resume needs nothing else), the optimizer buffers, the
   counters (epoch and step in the metadata) and what the run needs to go on exactly. */
typedef struct sq_state_item { const char *name; float *dev; size_t numel; } sq_state_item;
typedef struct sq_state_info {
    uint64_t dropout_seed;
    int best_epoch;            /* epochs completed when best.safetensors was last written (0: never) */
    double best_metric;        /* its metric */
    double last_metric;        /* the metric of the state's own epoch (last.safetensors') */
    double loss_ref;           /* the run's first-step loss, for the divergence guard (0: unknown) */
    const char *run_config;    /* save: written as "run_config" metadata when not NULL */
    int has_weights;           /* load: 1 when the file carries the model's tensors (state_format 2) */
} sq_state_info;
sq_status sq_state_save(const char *path, const sq_model *m, const sq_state_item *items, int n,
                        const sq_ckpt_meta *meta, const sq_state_info *info);
/* Loads the optimizer items into m's backend and reads meta and info; the model's own tensors are
   loaded with sq_ckpt_load_into(m, path, 2) when info->has_weights. */
sq_status sq_state_load(const char *path, sq_model *m, const sq_state_item *items, int n,
                        sq_ckpt_meta *meta, sq_state_info *info);

/* The checkpoint a resume loads the model's weights from: state itself (state_format 2), or for a
   state of an earlier version the last.safetensors beside it when both have the same epoch and
   step (refused with one line otherwise). */
sq_status sq_state_weights(const char *state, char *weights, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
