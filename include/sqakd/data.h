/* data.h: datasets (IDX, CIFAR-10/100 binary, folder of images) and the background batch loader.

   A dataset holds uint8 images in (N, C, H, W) order, optional int32 labels, and the per-channel
   normalization used to turn them into floats: x = (pixel / 255 - mean[c]) / std[c].

   Data SPEC strings (sq_dataset_open):
     fashion-mnist              Debian package copy (/usr/share/datasets/fashion-mnist)
     mnist:DIR                  DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
     idx:IMAGES[,LABELS]        one IDX image file (raw or .gz), optional labels; no split
     cifar10:DIR, cifar100:DIR  official binary files (data_batch_1..5.bin/test_batch.bin,
                                train.bin/test.bin for CIFAR-100, fine labels)
     folder:DIR                 PNG/JPEG images; if DIR has one subfolder per class, labels come
                                from the sorted subfolder names, otherwise unlabeled. All images
                                must share one size (or pass resize in options; not implemented:
                                error names the first mismatching file); each at most
                                SQ_IMAGE_MAX_PIXELS pixels.
     npy:IMAGES.npy[,LABELS.npy] NumPy arrays: uint8 images N x C x H x W, N x H x W x C or
                                N x H x W, or float32 pixels in [0, 1] N x C x H x W; integer
                                labels (N,); no test split (host/data/npy_data.c) */
#ifndef SQAKD_DATA_H
#define SQAKD_DATA_H

#include "sqakd/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SQ_MAX_CLASSES 1000

/* Pixel budget of one PNG/JPEG image (width x height): 2^26, i.e. 8192 x 8192. A file whose
   header declares more is refused, naming the file, its declared size and the budget, before any
   pixel memory is allocated or anything decoded (a 543-byte JPEG may declare 30000 x 30000). */
#define SQ_IMAGE_MAX_PIXELS ((uint64_t)1 << 26)

typedef enum sq_split { SQ_SPLIT_TRAIN = 0, SQ_SPLIT_TEST = 1 } sq_split;

typedef struct sq_dataset {
    int n, c, h, w;
    int classes;          /* from labels or the format; 0 if unknown and unlabeled */
    uint8_t *images;      /* n * c * h * w */
    int32_t *labels;      /* n, or NULL when the data has no labels */
    float mean[4], std[4];
    char name[64];        /* "fashion-mnist", "cifar10", ... */
    char source[512];     /* path(s) it was read from, for messages and metadata */
} sq_dataset;

/* Opens the given split. For specs with no test split (idx:, folder: without a test/ subfolder)
   SQ_SPLIT_TEST returns SQ_EARG with a message; callers use sq_dataset_holdout instead.
   with_labels = 0 never opens or reads a label file (label-free distillation). */
sq_status sq_dataset_open(const char *spec, sq_split split, int with_labels, sq_dataset *out);
void sq_dataset_free(sq_dataset *ds);

/* Deterministic split: the last `frac` of a fixed seeded permutation goes to `held`, the rest to
   `rest`. Both are new datasets (copies); ds is unchanged. */
sq_status sq_dataset_holdout(const sq_dataset *ds, float frac, uint64_t seed, sq_dataset *rest,
                             sq_dataset *held);

/* Standard normalization constants for known datasets; otherwise computed from the images. */
void sq_dataset_set_default_norm(sq_dataset *ds);

/* ---- loader ---- */
typedef struct sq_loader_opts {
    int batch;
    int shuffle;          /* per-epoch permutation seeded by (seed, epoch) */
    int crop_pad;         /* random crop with this zero padding (0 = off) */
    int flip;             /* random horizontal flip p = 0.5 */
    int drop_last;
    uint64_t seed;
    /* How long a batch handed out stays valid: until keep - 1 more batches have been handed out
       and sq_loader_next is called again (0 or 1: until the next call). For a consumer that still
       reads a batch after the next call (an asynchronous upload); the loader holds keep + 1
       batches, one of them being prepared. 0..SQ_LOADER_KEEP_MAX. */
    int keep;
    /* Where the batches live: host_alloc/host_free, both set (host memory of a backend, e.g.
       pinned memory its uploads read directly) or both NULL (malloc/free). sq_loader_create
       returns SQ_ENOMEM when host_alloc has too little. */
    void *(*host_alloc)(size_t bytes);
    void (*host_free)(void *p);
} sq_loader_opts;
#define SQ_LOADER_KEEP_MAX 8

typedef struct sq_loader sq_loader;

/* A background thread prepares the next batch (normalized float NCHW + labels) while the caller
   trains on the current one. Augmentation randomness depends only on (seed, epoch, sample index),
   so results do not depend on thread timing. The loader keeps a pointer to ds (no copy): ds must
   outlive it. */
sq_status sq_loader_create(const sq_dataset *ds, const sq_loader_opts *opts, sq_loader **out);
void sq_loader_free(sq_loader *l);
int sq_loader_batches(const sq_loader *l);        /* batches per epoch */
void sq_loader_start_epoch(sq_loader *l, int epoch);
/* Blocks until the next batch is ready; returns its size (0 at end of epoch). x: batch*C*H*W
   floats, y: batch int32 (left untouched / may be NULL when the dataset has no labels).
   The pointers stay valid until the next call (with opts.keep > 1: as keep says). */
int sq_loader_next(sq_loader *l, const float **x, const int32_t **y);
/* Skips the first nbatches of the current epoch without preparing them (resuming mid-epoch): the
   next sq_loader_next returns batch nbatches of that epoch. Call after sq_loader_start_epoch;
   SQ_EARG when no epoch is started or nbatches is outside 0..sq_loader_batches(). */
sq_status sq_loader_skip(sq_loader *l, int nbatches);

#ifdef __cplusplus
}
#endif
#endif
