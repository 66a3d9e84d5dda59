/* data_internal.h: helpers shared by the dataset readers (idx.c, cifar.c, folder.c, image.c),
   spec.c, augment.c and loader.c. Not part of the public API.

   Randomness in the data module comes from ONE generator, splitmix64 (Steele, Lea, Flood 2014):
   a 64-bit counter advanced by the golden-ratio increment and passed through a bijective mixer.
   Independent streams are keyed by hashing (seed, tag, a, b) with the same mixer, so e.g. the
   augmentation of sample i in epoch e depends only on (seed, e, i), never on thread timing. */
#ifndef SQAKD_DATA_INTERNAL_H
#define SQAKD_DATA_INTERNAL_H

#include "sqakd/data.h"

#include <pthread.h>

#define SQ_DRNG_TAG_PERM 0x7065726dull    /* per-epoch shuffle */
#define SQ_DRNG_TAG_AUG 0x61756721ull     /* per-sample augmentation */
#define SQ_DRNG_TAG_HOLDOUT 0x686f6c64ull /* sq_dataset_holdout permutation */

static inline uint64_t sq_drng_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t sq_drng_next(uint64_t *s)
{
    *s += 0x9E3779B97F4A7C15ull;
    return sq_drng_mix(*s);
}

/* Initial state of the stream named by (seed, tag, a, b). */
static inline uint64_t sq_drng_key(uint64_t seed, uint64_t tag, uint64_t a, uint64_t b)
{
    return sq_drng_mix(sq_drng_mix(sq_drng_mix(seed ^ tag) + a) + b);
}

/* Uniform integer in [0, n), n >= 1 (multiply-shift on the high 32 bits; bias < n / 2^32). */
static inline uint32_t sq_drng_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(((sq_drng_next(s) >> 32) * (uint64_t)n) >> 32);
}

/* Fisher-Yates shuffle of 0..n-1 from the given stream state. */
void sq_data_permutation(int *perm, int n, uint64_t state);

/* ---- readers (each fills out completely or returns an error with out partly filled; the caller
   frees it with sq_dataset_free) ---- */
sq_status sq_idx_open(const char *kind, const char *arg, sq_split split, int with_labels,
                      sq_dataset *out);
sq_status sq_cifar_open(int classes, const char *dir, sq_split split, int with_labels,
                        sq_dataset *out);
/* opts: never NULL (threads, resize) */
sq_status sq_folder_open(const char *dir, sq_split split, int with_labels, const sq_data_opts *opts,
                         sq_dataset *out);

/* ---- streamed datasets ---- */
/* The files of a streamed dataset and what each becomes: c planes of h x w (c = 1 only when
   every file was greyscale when opened). refs: the datasets sharing it (main thread only). */
struct sq_image_list {
    int refs;
    int n;
    char **paths;   /* n, malloc'ed */
    int c, h, w;
    int resize;     /* 1: sq_image_resize_crop to h x w; 0: every file is h x w */
};
/* file `item` decoded, converted to c channels and resized, as (c, h, w) into dst; thread-safe.
   A file that no longer decodes, or whose size or colour changed since the list was made, is an
   error naming it. */
sq_status sq_image_list_fetch(const sq_image_list *l, int item, uint8_t *dst);
void sq_image_list_release(sq_image_list *l);

/* Runs fn(ctx, i, worker) for i = 0..n-1 on up to `threads` threads (the caller's among them;
   worker in 0..threads-1 names the thread, for per-thread scratch). After a failure no new index
   is started; every index below it was started before it and finishes, so the error returned
   (and left in the caller's sq_last_error) is that of the lowest failing index, whatever the
   timing. */
typedef sq_status (*sq_data_task)(void *ctx, int i, int worker);
sq_status sq_data_parallel(int n, int threads, sq_data_task fn, void *ctx);

/* pthread_create with a SQ_DATA_STACK stack: the data threads decode on the heap, so they need
   little stack, and under an address-space or data limit (ulimit -v / -d) the default 8 MiB per
   thread would count against it */
#define SQ_DATA_STACK ((size_t)2 << 20)
int sq_data_thread(pthread_t *t, void *(*fn)(void *), void *arg);
/* npy:IMAGES.npy[,LABELS.npy] (npy_data.c) */
sq_status sq_npy_data_open(const char *arg, sq_split split, int with_labels, sq_dataset *out);

/* Decodes a PNG or JPEG file (detected by its magic bytes) to 8-bit interleaved pixels (H, W, C)
   with C = 1 (gray, gray + alpha) or 3 (RGB; alpha dropped, palette expanded, 16-bit stripped to
   the high byte, CMYK/YCCK JPEG converted as image.c says). *pix is
   malloc'ed. Never exits the process on a corrupt file: returns SQ_EFORMAT naming it. A header
   declaring more than SQ_IMAGE_MAX_PIXELS pixels is refused before anything is allocated. */
sq_status sq_image_decode(const char *path, uint8_t **pix, int *h, int *w, int *c);
/* The header only (nothing decoded): the size and the channels decoding gives (1: gray or gray
   + alpha PNG, one-component JPEG; 3: the rest). The same refusals as sq_image_decode for a file
   that is not PNG/JPEG, whose header is cut or corrupt, or that declares too many pixels. */
sq_status sq_image_probe(const char *path, int *h, int *w, int *c);

/* ---- augmentation (augment.c) ---- */
typedef struct sq_aug {
    int oy, ox; /* crop offset in [-pad, pad]: out(y, x) = in(y + oy, x + ox), zero outside */
    int flip;   /* 1: mirror horizontally after the crop */
} sq_aug;

sq_aug sq_augment_draw(uint64_t seed, int epoch, int index, int pad, int flip);
/* lut: C * 256 floats, lut[c * 256 + v] = (v / 255 - mean[c]) / std[c]. out: (C, H, W). */
void sq_norm_lut(const sq_dataset *ds, float *lut);
void sq_augment_sample(const uint8_t *img, int c, int h, int w, sq_aug a, const float *lut,
                       float *out);

/* Copies s into dst (size n) with truncation and a terminating zero. */
void sq_data_strlcpy(char *dst, const char *s, size_t n);

#endif
