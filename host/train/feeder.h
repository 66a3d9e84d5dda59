/* feeder.h (host/train): input staging. A feeder owns the one backend buffer that a batch's
   images (and, for a labelled loss, its labels) are placed in: every model bound to it (a teacher
   and its students) reads its input from that buffer, at a fixed address, so each batch is put
   there once for all of them and a recorded step (CUDA graphs) always reads the same address. On a
   backend with asynchronous staging (backend.h: stage_*) the batch is uploaded into a
   double-buffered device slot, overlapping the previous step's compute, then one device copy
   puts it into the buffer; elsewhere it is copied in directly (the CPU: one memcpy). A feeder
   made with its loader (sq_feeder_open) on a backend with pinned host memory has the loader write
   the batches into pinned memory, and uploads them from there (stage_put_pinned): no host copy;
   other feeders copy each batch into the stage's pinned slot first (stage_put). */
#ifndef SQAKD_TRAIN_FEEDER_H
#define SQAKD_TRAIN_FEEDER_H
#include "sqakd/data.h"
#include "sqakd/model.h"

#define SQ_FEEDER_MAX_MODELS 80
/* how many of its loader's batches a direct feeder keeps (sq_loader_opts.keep): put j's upload
   reads the loader's slot until put j+2 has returned (backend.h, stage_put_pinned), and the
   loader gives the slot back at the call that hands out batch j+3, after put j+2 */
#define SQ_FEEDER_KEEP 3

typedef struct sq_feeder {
    const sq_backend *be;
    size_t sample_bytes;         /* one image */
    int batch;                   /* images the buffer holds */
    float *x;                    /* the input buffer (backend memory) */
    int32_t *y;                  /* the labels buffer (backend memory; NULL without labels) */
    void *stage_x, *stage_y;     /* asynchronous stages (NULL: direct copies) */
    int direct;                  /* puts upload the loader's pinned batches themselves */
    sq_loader *loader;           /* sq_feeder_open's loader (the feeder's; NULL otherwise) */
    sq_model *bound[SQ_FEEDER_MAX_MODELS];
    float *saved[SQ_FEEDER_MAX_MODELS]; /* each bound model's own input buffer, given back at free */
    int nbound;
} sq_feeder;

/* A feeder for batches of up to `batch` images shaped like model m's input, with a labels buffer
   when labels is set, staged when staged is set and the backend can (its options allow it and
   pinned memory is available). NULL with the out-of-memory error. */
sq_feeder *sq_feeder_new(const sq_model *m, int batch, int labels, int staged);
/* A staged feeder as sq_feeder_new's, and the loader of its batches: sq_loader_create(ds, lo)
   where the feeder sets lo's keep and host hooks. Where the backend has pinned host memory and
   stage_put_pinned, the loader's slots are pinned, kept SQ_FEEDER_KEEP batches, and
   sq_feeder_put uploads from them directly; otherwise (the CPU, staging off, pinned memory
   short) the loader is as lo says and puts copy as sq_feeder_new's do; the batches are the same
   either way. The caller puts every batch of the loader, in order, before it asks the loader for
   the next one. The loader belongs to the feeder: sq_feeder_free frees it once no upload reads
   it. SQ_OK; SQ_ENOMEM (the feeder's buffers) or the loader's error, *feed and *loader NULL. */
sq_status sq_feeder_open(const sq_model *m, int batch, int labels, const sq_dataset *ds, const sq_loader_opts *lo,
                         sq_feeder **feed, sq_loader **loader);
/* m reads its input from the feeder's buffer from now until sq_feeder_free (m's own buffer is
   given back then); binding a model twice is harmless. */
void sq_feeder_bind(sq_feeder *f, sq_model *m);
/* Puts nb images x (host memory) and their labels y (when not NULL; the feeder needs a labels
   buffer then) into the buffers. A feeder of sq_feeder_open takes its loader's batches (and
   every put of a labelled one has labels). */
void sq_feeder_put(sq_feeder *f, const float *x, const int32_t *y, int nb);
/* Unbinds every model (in reverse order of binding) and frees the feeder, and its loader after the
   uploads. NULL is a no-op. */
void sq_feeder_free(sq_feeder *f);
/* 1 when be stages asynchronously and its options allow it */
int sq_feeder_staging(const sq_backend *be);
#endif
