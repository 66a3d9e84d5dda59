/* feeder.h (host/train): input staging. A feeder owns the one backend buffer that a batch's
   images (and, for a labelled loss, its labels) are placed in: every model bound to it (a teacher
   and its students) reads its input from that buffer, at a fixed address, so each batch is put
   there once for all of them and a recorded step (CUDA graphs) always reads the same address. On a
   backend with asynchronous staging (backend.h: stage_*) the batch goes through pinned memory and
   a double-buffered device slot, so its upload overlaps the previous step's compute, then one
   device copy into the buffer; elsewhere it is copied in directly (the CPU: one memcpy). */
#ifndef SQAKD_TRAIN_FEEDER_H
#define SQAKD_TRAIN_FEEDER_H
#include "sqakd/model.h"

#define SQ_FEEDER_MAX_MODELS 80

typedef struct sq_feeder {
    const sq_backend *be;
    size_t sample_bytes;         /* one image */
    int batch;                   /* images the buffer holds */
    float *x;                    /* the input buffer (backend memory) */
    int32_t *y;                  /* the labels buffer (backend memory; NULL without labels) */
    void *stage_x, *stage_y;     /* asynchronous stages (NULL: direct copies) */
    sq_model *bound[SQ_FEEDER_MAX_MODELS];
    float *saved[SQ_FEEDER_MAX_MODELS]; /* each bound model's own input buffer, given back at free */
    int nbound;
} sq_feeder;

/* A feeder for batches of up to `batch` images shaped like model m's input, with a labels buffer
   when labels is set, staged when staged is set and the backend can (its options allow it and
   pinned memory is available). NULL with the out-of-memory error. */
sq_feeder *sq_feeder_new(const sq_model *m, int batch, int labels, int staged);
/* m reads its input from the feeder's buffer from now until sq_feeder_free (m's own buffer is
   given back then); binding a model twice is harmless. */
void sq_feeder_bind(sq_feeder *f, sq_model *m);
/* Puts nb images x (host memory) and their labels y (when not NULL; the feeder needs a labels
   buffer then) into the buffers. */
void sq_feeder_put(sq_feeder *f, const float *x, const int32_t *y, int nb);
/* Unbinds every model (in reverse order of binding) and frees the feeder. NULL is a no-op. */
void sq_feeder_free(sq_feeder *f);
/* 1 when be stages asynchronously and its options allow it */
int sq_feeder_staging(const sq_backend *be);
#endif
