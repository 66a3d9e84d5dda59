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
/* create + set_quant (from the metadata) + setup + load */
sq_status sq_ckpt_open_model(const char *path, const sq_backend *be, int batch, int with_grad,
                             sq_model **out, sq_ckpt_meta *meta);

/* Training-state side file: optimizer buffers and counters (names -> host float arrays). */
typedef struct sq_state_item { const char *name; float *dev; size_t numel; } sq_state_item;
sq_status sq_state_save(const char *path, const sq_backend *be, const sq_state_item *items, int n,
                        const sq_ckpt_meta *meta, uint64_t extra_u64);
sq_status sq_state_load(const char *path, const sq_backend *be, const sq_state_item *items, int n,
                        sq_ckpt_meta *meta, uint64_t *extra_u64);

#ifdef __cplusplus
}
#endif
#endif
