/* spec.c: dataset SPEC dispatch (sq_dataset_open), the resize of in-memory datasets, free,
   deterministic hold-out split and the default normalization constants. */
#include "data/data_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sq_data_strlcpy(char *dst, const char *s, size_t n)
{
    size_t k = strlen(s);
    if (k >= n) k = n - 1;
    memcpy(dst, s, k);
    dst[k] = 0;
}

void sq_data_permutation(int *perm, int n, uint64_t state)
{
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)sq_drng_below(&state, (uint32_t)i + 1);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* every image of an in-memory dataset resized to h x w (sq_image_resize_crop) */
static sq_status resize_in_memory(sq_dataset *ds, int h, int w)
{
    if (ds->h == h && ds->w == w) return SQ_OK;
    const size_t in = (size_t)ds->c * ds->h * ds->w, outs = (size_t)ds->c * h * w;
    uint8_t *img = malloc((size_t)ds->n * outs + 1);
    if (!img) {
        sq_set_error("%s: out of memory resizing %d images to %dx%d", ds->name, ds->n, h, w);
        return SQ_ENOMEM;
    }
    for (int i = 0; i < ds->n; i++) {
        sq_status st = sq_image_resize_crop(ds->images + (size_t)i * in, ds->c, ds->h, ds->w, img + (size_t)i * outs,
                                            h, w);
        if (st) {
            free(img);
            return st;
        }
    }
    free(ds->images);
    ds->images = img;
    ds->h = h;
    ds->w = w;
    return SQ_OK;
}

sq_status sq_dataset_open(const char *spec, sq_split split, int with_labels, sq_dataset *out)
{
    return sq_dataset_open_ex(spec, split, with_labels, NULL, out);
}

sq_status sq_dataset_open_ex(const char *spec, sq_split split, int with_labels, const sq_data_opts *opts,
                             sq_dataset *out)
{
    memset(out, 0, sizeof *out);
    const sq_data_opts none = {0};
    const sq_data_opts *o = opts ? opts : &none;
    if ((o->resize_h > 0) != (o->resize_w > 0) || o->resize_h < 0 || o->resize_w < 0 || o->resize_h > 8192 ||
        o->resize_w > 8192) {
        sq_set_error("resize %dx%d: give a height and a width in 1..8192 (or neither)", o->resize_h, o->resize_w);
        return SQ_EARG;
    }
    if (o->channels != 0 && o->channels != 1 && o->channels != 3) {
        sq_set_error("data options: channels %d must be 0, 1 or 3", o->channels);
        return SQ_EARG;
    }
    if (!spec || !*spec) {
        sq_set_error("empty data spec; use fashion-mnist, mnist:DIR, idx:IMAGES[,LABELS], "
                     "cifar10:DIR, cifar100:DIR, folder:DIR or npy:IMAGES.npy[,LABELS.npy]");
        return SQ_EARG;
    }
    if (split != SQ_SPLIT_TRAIN && split != SQ_SPLIT_TEST) {
        sq_set_error("bad split %d for data spec '%s'", (int)split, spec);
        return SQ_EARG;
    }
    const char *colon = strchr(spec, ':');
    size_t klen = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *arg = colon ? colon + 1 : "";
    char kind[32];
    if (klen >= sizeof kind) klen = sizeof kind - 1;
    memcpy(kind, spec, klen);
    kind[klen] = 0;
    sq_status st;
    if (!strcmp(kind, "fashion-mnist") || !strcmp(kind, "mnist") || !strcmp(kind, "idx")) {
        if (!strcmp(kind, "idx") && !*arg) {
            sq_set_error("data spec 'idx' needs files: idx:IMAGES[,LABELS]");
            return SQ_EARG;
        }
        st = sq_idx_open(kind, arg, split, with_labels, out);
    } else if (!strcmp(kind, "cifar10")) {
        st = sq_cifar_open(10, arg, split, with_labels, out);
    } else if (!strcmp(kind, "cifar100")) {
        st = sq_cifar_open(100, arg, split, with_labels, out);
    } else if (!strcmp(kind, "folder")) {
        st = sq_folder_open(arg, split, with_labels, o, out);
    } else if (!strcmp(kind, "npy")) {
        st = sq_npy_data_open(arg, split, with_labels, out);
    } else {
        sq_set_error("unknown data spec '%s'; use fashion-mnist, mnist:DIR, idx:IMAGES[,LABELS], "
                     "cifar10:DIR, cifar100:DIR, folder:DIR or npy:IMAGES.npy[,LABELS.npy]", spec);
        return SQ_EARG;
    }
    if (!st && out->images && o->resize_h > 0) st = resize_in_memory(out, o->resize_h, o->resize_w);
    if (!st && !out->stream) out->threads = 1; /* batches from memory: augmentation only */
    if (!st) {
        if (o->skip_norm) {
            for (int k = 0; k < 4; k++) out->mean[k] = 0.0f, out->std[k] = 1.0f;
        } else {
            st = sq_dataset_set_default_norm(out);
        }
    }
    if (st) {
        sq_dataset_free(out);
        return st;
    }
    return SQ_OK;
}

void sq_dataset_free(sq_dataset *ds)
{
    if (!ds) return;
    free(ds->images);
    free(ds->labels);
    free(ds->items);
    sq_image_list_release(ds->stream);
    memset(ds, 0, sizeof *ds);
}

/* Copies the samples with keep[i] == want, in index order: their pixels in memory, or for a
   streamed dataset their items (the stream is shared). */
static void copy_subset(const sq_dataset *ds, const uint8_t *keep, uint8_t want, int count,
                        sq_dataset *dst)
{
    *dst = *ds;
    size_t sample = (size_t)ds->c * ds->h * ds->w;
    dst->n = count;
    dst->images = ds->images ? sq_xmalloc((size_t)count * sample) : NULL;
    dst->items = ds->stream ? sq_xmalloc((size_t)count * sizeof(int32_t)) : NULL;
    dst->labels = ds->labels ? sq_xmalloc((size_t)count * sizeof(int32_t)) : NULL;
    if (ds->stream) ds->stream->refs++;
    int k = 0;
    for (int i = 0; i < ds->n; i++) {
        if (keep[i] != want) continue;
        if (ds->images) memcpy(dst->images + (size_t)k * sample, ds->images + (size_t)i * sample, sample);
        if (ds->stream) dst->items[k] = ds->items ? ds->items[i] : i;
        if (ds->labels) dst->labels[k] = ds->labels[i];
        k++;
    }
}

/* The permutation is sq_data_permutation (Fisher-Yates over splitmix64) keyed by
   (seed, "hold", n); its last round(frac * n) entries are held out. Both parts keep the original
   relative order of their samples and share ds's classes and normalization. */
sq_status sq_dataset_holdout(const sq_dataset *ds, float frac, uint64_t seed, sq_dataset *rest,
                             sq_dataset *held)
{
    if (!ds || (!ds->images && !ds->stream) || ds->n <= 0) {
        sq_set_error("holdout: the dataset is empty");
        return SQ_EARG;
    }
    int nh = (int)floor((double)frac * ds->n + 0.5);
    if (!(frac > 0.0f && frac < 1.0f) || nh < 1 || nh >= ds->n) {
        sq_set_error("holdout fraction %g of %d samples leaves an empty part; use a fraction "
                     "in (0, 1) that keeps at least one sample on each side", (double)frac, ds->n);
        return SQ_EARG;
    }
    int *perm = sq_xmalloc((size_t)ds->n * sizeof(int));
    uint8_t *mark = sq_xcalloc((size_t)ds->n, 1);
    sq_data_permutation(perm, ds->n, sq_drng_key(seed, SQ_DRNG_TAG_HOLDOUT, (uint64_t)ds->n, 0));
    for (int i = ds->n - nh; i < ds->n; i++) mark[perm[i]] = 1;
    copy_subset(ds, mark, 0, ds->n - nh, rest);
    copy_subset(ds, mark, 1, nh, held);
    free(perm);
    free(mark);
    return SQ_OK;
}

/* per-thread histograms of the sampled images of a streamed dataset */
typedef struct norm_ctx {
    const sq_dataset *ds;
    int n;                 /* images sampled: j = 0..n-1 is image pick(j, n, ds->n) */
    uint8_t **scratch;     /* per thread: one image */
    uint64_t (*hist)[4][256];
} norm_ctx;

/* the j-th of k images evenly spaced over n (k <= n): floor(j * n / k) */
static int pick(int j, int k, int n) { return (int)((int64_t)j * n / k); }

static sq_status norm_one(void *ctx, int j, int worker)
{
    norm_ctx *c = ctx;
    const sq_dataset *ds = c->ds;
    sq_status st = sq_dataset_fetch(ds, pick(j, c->n, ds->n), c->scratch[worker]);
    if (st) return st;
    const size_t plane = (size_t)ds->h * ds->w;
    for (int ch = 0; ch < ds->c; ch++) {
        const uint8_t *p = c->scratch[worker] + ch * plane;
        uint64_t *h = c->hist[worker][ch];
        for (size_t q = 0; q < plane; q++) h[p[q]]++;
    }
    return SQ_OK;
}

sq_status sq_dataset_set_default_norm(sq_dataset *ds)
{
    static const struct {
        const char *name;
        int c;
        float mean[3], std[3];
    } known[] = {
        {"cifar10", 3, {0.4914f, 0.4822f, 0.4465f}, {0.2023f, 0.1994f, 0.2010f}},
        {"cifar100", 3, {0.5071f, 0.4867f, 0.4408f}, {0.2675f, 0.2565f, 0.2761f}},
        {"fashion-mnist", 1, {0.2860f}, {0.3530f}},
        {"mnist", 1, {0.1307f}, {0.3081f}},
    };
    for (int k = 0; k < 4; k++) {
        ds->mean[k] = 0.0f;
        ds->std[k] = 1.0f;
    }
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strcmp(ds->name, known[i].name) || ds->c != known[i].c) continue;
        for (int k = 0; k < known[i].c; k++) {
            ds->mean[k] = known[i].mean[k];
            ds->std[k] = known[i].std[k];
        }
        return SQ_OK;
    }
    /* Unknown dataset: per-channel population mean and std of pixel / 255 over all images in
       memory, or over the sampled images of a stream. A constant channel (std below 1e-6) gets
       std 1 so normalization stays finite. */
    if ((!ds->images && !ds->stream) || ds->n <= 0 || ds->c < 1 || ds->c > 4) return SQ_OK;
    size_t plane = (size_t)ds->h * ds->w;
    uint64_t all[4][256] = {{0}};
    int counted = ds->n;
    if (ds->images) {
        for (int ch = 0; ch < ds->c; ch++)
            for (int i = 0; i < ds->n; i++) {
                const uint8_t *p = ds->images + ((size_t)i * ds->c + ch) * plane;
                for (size_t j = 0; j < plane; j++) all[ch][p[j]]++;
            }
    } else {
        int threads = ds->threads > 0 ? ds->threads : 1;
        counted = ds->n < SQ_NORM_SAMPLE ? ds->n : SQ_NORM_SAMPLE;
        if (threads > counted) threads = counted;
        norm_ctx c = {.ds = ds, .n = counted, .scratch = sq_xcalloc((size_t)threads, sizeof(uint8_t *)),
                      .hist = sq_xcalloc((size_t)threads, sizeof *c.hist)};
        for (int t = 0; t < threads; t++) c.scratch[t] = sq_xmalloc((size_t)ds->c * plane);
        sq_status st = sq_data_parallel(counted, threads, norm_one, &c);
        for (int t = 0; t < threads; t++) {
            for (int ch = 0; ch < ds->c; ch++)
                for (int v = 0; v < 256; v++) all[ch][v] += c.hist[t][ch][v];
            free(c.scratch[t]);
        }
        free(c.scratch);
        free(c.hist);
        if (st) return st;
    }
    for (int ch = 0; ch < ds->c; ch++) {
        const uint64_t *hist = all[ch];
        double cnt = (double)counted * (double)plane, s = 0.0, s2 = 0.0;
        for (int v = 0; v < 256; v++) s += (double)hist[v] * (v / 255.0);
        double m = s / cnt;
        for (int v = 0; v < 256; v++) s2 += (double)hist[v] * (v / 255.0 - m) * (v / 255.0 - m);
        double sd = sqrt(s2 / cnt);
        ds->mean[ch] = (float)m;
        ds->std[ch] = sd < 1e-6 ? 1.0f : (float)sd;
    }
    return SQ_OK;
}
