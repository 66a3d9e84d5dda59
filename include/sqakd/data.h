/* data.h: datasets (IDX, CIFAR-10/100 binary, folder of images) and the background batch loader.

   A dataset holds uint8 images in (N, C, H, W) order, optional int32 labels, and the per-channel
   normalization used to turn them into floats: x = (pixel / 255 - mean[c]) / std[c]. IDX and
   CIFAR datasets are read into memory (`images`); folder: datasets are streamed: only the file
   list is in memory and each image is decoded when a batch needs it (sq_dataset_fetch, on the
   loader's threads), so a folder larger than memory trains.

   Data SPEC strings (sq_dataset_open):
     fashion-mnist              Debian package copy (/usr/share/datasets/fashion-mnist)
     mnist:DIR                  DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
     idx:IMAGES[,LABELS]        one IDX image file (raw or .gz), optional labels; no split
     cifar10:DIR, cifar100:DIR  official binary files (data_batch_1..5.bin/test_batch.bin,
                                train.bin/test.bin for CIFAR-100, fine labels)
     folder:DIR                 PNG/JPEG images, streamed. Layouts, tried in this order:
                                - Tiny-ImageNet: DIR/wnids.txt, DIR/train/<wnid>/images/,
                                  DIR/val/images/ and DIR/val/val_annotations.txt (file, wnid,
                                  bbox per line): train split = train/, test split = val/ with
                                  the annotations' labels; class k = line k of wnids.txt;
                                  DIR/test/ (unlabeled) is not read;
                                - DIR/train (+ DIR/test): the two splits;
                                - DIR alone: the train split, no test split.
                                In a split, one subfolder per class gives labels (classes = the
                                sorted subfolder names of the train split), otherwise unlabeled.
                                Greyscale (with or without alpha), palette, 16-bit PNG, RGBA and
                                CMYK/YCCK JPEG become RGB (alpha dropped; C = 1 only when every
                                image of the split is greyscale). Without a resize every image
                                must have one size (the error names the first that differs);
                                with one (sq_data_opts) each is resized as torchvision's
                                Resize(min(H, W)) + CenterCrop((H, W)) (sq_image_resize_crop).
                                Each image at most SQ_IMAGE_MAX_PIXELS pixels.
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

/* the files of a streamed dataset (data_internal.h) */
typedef struct sq_image_list sq_image_list;

typedef struct sq_dataset {
    int n, c, h, w;
    int classes;          /* from labels or the format; 0 if unknown and unlabeled */
    uint8_t *images;      /* n * c * h * w in memory; NULL when streamed */
    int32_t *labels;      /* n, or NULL when the data has no labels */
    float mean[4], std[4];
    char name[64];        /* "fashion-mnist", "cifar10", ... */
    char source[512];     /* path(s) it was read from, for messages and metadata */
    /* A streamed dataset (images NULL): sample i is file items[i] of stream (file i when items is
       NULL), decoded by sq_dataset_fetch. stream is shared by the datasets sq_dataset_holdout
       makes (reference-counted; sq_dataset_free releases it). */
    sq_image_list *stream;
    int32_t *items;
    int threads;          /* decoding threads a loader uses unless its options say (0: one) */
} sq_dataset;

/* Options of sq_dataset_open_ex; all zero = sq_dataset_open. */
typedef struct sq_data_opts {
    /* Both > 0: every image becomes resize_h x resize_w as torchvision's
       Resize(min(resize_h, resize_w)) + CenterCrop((resize_h, resize_w)) makes it
       (sq_image_resize_crop); in-memory datasets are resized once at open. Both 0: none. */
    int resize_h, resize_w;
    int threads;          /* threads reading image headers and decoding at open (folder:), and the
                             streamed dataset's `threads` (in memory: 1); 0 = 1 */
    int skip_norm;        /* 1: leave mean 0, std 1 for a dataset without standard constants
                             (the caller sets them: no statistics are computed) */
    int channels;         /* folder: 0: from the images (1 only when all are greyscale); 3: RGB
                             whatever they are; 1: greyscale, a colour image being an error (the
                             channels of another split, which this one must match) */
} sq_data_opts;

/* Opens the given split. For specs with no test split (idx:, folder: without a test/ subfolder)
   SQ_SPLIT_TEST returns SQ_EARG with a message; callers use sq_dataset_holdout instead.
   with_labels = 0 never opens or reads a label file (label-free distillation). */
sq_status sq_dataset_open(const char *spec, sq_split split, int with_labels, sq_dataset *out);
sq_status sq_dataset_open_ex(const char *spec, sq_split split, int with_labels, const sq_data_opts *opts,
                             sq_dataset *out);
void sq_dataset_free(sq_dataset *ds);

/* The pixels of sample i, (C, H, W) uint8, into dst: copied from memory, or the file decoded,
   converted and resized (a streamed dataset). Safe to call from several threads at once. An
   image that does not decode (or changed since the dataset was opened) is an error naming it. */
sq_status sq_dataset_fetch(const sq_dataset *ds, int i, uint8_t *dst);
/* the file of sample i of a streamed dataset; NULL in memory or out of range */
const char *sq_dataset_path(const sq_dataset *ds, int i);

/* Deterministic split: the last `frac` of a fixed seeded permutation goes to `held`, the rest to
   `rest`. Both are new datasets: copies of the images in memory, or index maps into the same
   stream; ds is unchanged. */
sq_status sq_dataset_holdout(const sq_dataset *ds, float frac, uint64_t seed, sq_dataset *rest,
                             sq_dataset *held);

/* Standard normalization constants for known datasets; otherwise the per-channel population
   mean and std of pixel / 255, over every image in memory, or for a streamed dataset over at
   most SQ_NORM_SAMPLE images decoded once (all of them when there are no more, else that many
   evenly spaced in sample order), never holding more than one image per thread. Fails only
   when a sampled image does not decode (the error names it). */
#define SQ_NORM_SAMPLE 2000
sq_status sq_dataset_set_default_norm(sq_dataset *ds);

/* torchvision's Resize(min(th, tw)) + CenterCrop((th, tw)) of a PIL image, exactly:
   - the shorter side becomes s = min(th, tw), the longer int(s * long / short) (truncated); an
     image already of that size is left as it is;
   - resampling as PIL's Image.resize(BILINEAR) (libImaging/Resample.c): a triangle filter whose
     support grows with the downscaling factor (antialiasing), separable, horizontal pass first,
     coefficients in 22-bit fixed point, each pass rounded to 8 bits;
   - the crop starts at round((resized - crop) / 2) on each axis (Python's round: half to even);
     an axis shorter than the crop is padded with zeros first, (crop - size) // 2 before.
   src: c planes of sh x sw; dst: c planes of th x tw. */
sq_status sq_image_resize_crop(const uint8_t *src, int c, int sh, int sw, uint8_t *dst, int th, int tw);

/* ---- loader ---- */
typedef struct sq_loader_opts {
    int batch;
    int shuffle;          /* per-epoch permutation seeded by (seed, epoch) */
    int crop_pad;         /* random crop with this zero padding (0 = off) */
    int flip;             /* random horizontal flip p = 0.5 */
    int drop_last;
    uint64_t seed;
    /* Threads preparing a batch (reading, decoding, augmenting its samples), one of them the
       loader's own; 0: the dataset's `threads` (at least one). Batches do not depend on it. */
    int threads;
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
    /* Data parallelism: with shards > 1, `batch` is the global batch and each batch handed out is
       shard `shard`'s part of it, batch / shards consecutive samples of the epoch's permutation
       (the global batches are those of shards = 1, whatever the count). batch must be a multiple
       of shards, and drop_last set. 0 or 1: the whole batch. */
    int shards, shard;
} sq_loader_opts;
#define SQ_LOADER_KEEP_MAX 8
#define SQ_LOADER_THREADS_MAX 64

typedef struct sq_loader sq_loader;

/* A background thread (with opts.threads - 1 helpers) prepares the next batch (normalized float
   NCHW + labels) while the caller trains on the current one; samples of a streamed dataset are
   decoded there. Augmentation randomness depends only on (seed, epoch, sample index), so results
   do not depend on thread timing or count. The loader keeps a pointer to ds (no copy): ds must
   outlive it. */
sq_status sq_loader_create(const sq_dataset *ds, const sq_loader_opts *opts, sq_loader **out);
void sq_loader_free(sq_loader *l);
int sq_loader_batches(const sq_loader *l);        /* batches per epoch */
void sq_loader_start_epoch(sq_loader *l, int epoch);
/* Blocks until the next batch is ready; returns its size (0 at end of epoch). x: batch*C*H*W
   floats, y: batch int32 (left untouched / may be NULL when the dataset has no labels).
   The pointers stay valid until the next call (with opts.keep > 1: as keep says).
   A negative value -status when a sample of the batch could not be prepared (a streamed image
   that does not decode): sq_last_error names the file (the first failing sample in batch order),
   and every later call returns the same until the epoch is restarted; the epoch cannot go on. */
int sq_loader_next(sq_loader *l, const float **x, const int32_t **y);
/* Skips the first nbatches of the current epoch without preparing them (resuming mid-epoch): the
   next sq_loader_next returns batch nbatches of that epoch. Call after sq_loader_start_epoch;
   SQ_EARG when no epoch is started or nbatches is outside 0..sq_loader_batches(). */
sq_status sq_loader_skip(sq_loader *l, int nbatches);

#ifdef __cplusplus
}
#endif
#endif
