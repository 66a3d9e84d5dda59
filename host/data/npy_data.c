/* npy_data.c: the npy:IMAGES.npy[,LABELS.npy] data spec: NumPy arrays as a dataset (what the
   Python package writes for arrays it is given, and what a user with arrays can pass directly).

   Images: uint8 (N, C, H, W), (N, H, W, C) or (N, H, W) (one channel); or float32 / float64
   (N, C, H, W) or (N, H, W) holding pixels in [0, 1], stored as the nearest of the 256 levels
   the dataset keeps (round(x * 255)). C is 1 to 4. A 4-D uint8 array is read as NCHW when its
   second dimension is 1..4, else as NHWC when its last one is (so (N, 3, 3, 3) is NCHW).
   Labels: a 1-D integer array (any of NumPy's integer types) of N class indices in
   0..SQ_MAX_CLASSES-1; classes is the largest + 1. Without labels (or with_labels = 0, when the
   label file is never opened) the dataset is unlabeled. There is no test split (like idx:): the
   CLI holds out part of the images. Every refusal is one line naming the file and what to do. */
#include "data/data_internal.h"
#include "sqakd/onnx.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_int_type(sq_npy_dtype t)
{
    return t == SQ_NPY_U1 || t == SQ_NPY_I1 || t == SQ_NPY_U2 || t == SQ_NPY_I2 || t == SQ_NPY_U4 ||
           t == SQ_NPY_I4 || t == SQ_NPY_U8 || t == SQ_NPY_I8;
}

/* element i of an integer array as a signed value (uint64 above INT64_MAX becomes INT64_MAX:
   out of range either way) */
static int64_t int_at(const void *p, sq_npy_dtype t, size_t i)
{
    switch (t) {
    case SQ_NPY_U1: return ((const uint8_t *)p)[i];
    case SQ_NPY_I1: return ((const int8_t *)p)[i];
    case SQ_NPY_U2: return ((const uint16_t *)p)[i];
    case SQ_NPY_I2: return ((const int16_t *)p)[i];
    case SQ_NPY_U4: return ((const uint32_t *)p)[i];
    case SQ_NPY_I4: return ((const int32_t *)p)[i];
    case SQ_NPY_U8: { uint64_t v = ((const uint64_t *)p)[i]; return v > INT64_MAX ? INT64_MAX : (int64_t)v; }
    case SQ_NPY_I8: return ((const int64_t *)p)[i];
    default: return -1;
    }
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *dims)
{
    int k = snprintf(buf, cap, "(");
    for (int d = 0; d < ndim && k > 0 && (size_t)k < cap; d++)
        k += snprintf(buf + k, cap - (size_t)k, "%s%lld", d ? ", " : "", (long long)dims[d]);
    if (k > 0 && (size_t)k < cap) snprintf(buf + k, cap - (size_t)k, "%s)", ndim == 1 ? "," : "");
}

/* one .npy file read raw, with its path made printable (pp) and its shape as text (sh) for the
   error lines */
typedef struct {
    char pp[512], sh[160];
    sq_npy_dtype t;
    void *raw;
    int nd;
    int64_t d[SQ_ONNX_MAX_DIMS];
} npy_in;

static sq_status npy_in_read(const char *path, npy_in *a)
{
    a->raw = NULL;
    sq_printable(path, a->pp, sizeof a->pp);
    sq_status st = sq_npy_read_raw(path, &a->t, &a->raw, &a->nd, a->d);
    if (!st) shape_str(a->sh, sizeof a->sh, a->nd, a->d);
    return st;
}

/* reads path and hands it to fill (load_images or load_labels, below), then frees the data */
static sq_status with_npy(const char *path, sq_status (*fill)(const npy_in *, sq_dataset *), sq_dataset *out)
{
    npy_in in;
    sq_status st = npy_in_read(path, &in);
    if (st) return st;
    st = fill(&in, out);
    free(in.raw);
    return st;
}

static sq_status load_images(const npy_in *in, sq_dataset *out)
{
    const int is_float = in->t == SQ_NPY_F4 || in->t == SQ_NPY_F8;
    sq_status st = SQ_EFORMAT;
    if (in->t != SQ_NPY_U1 && !is_float) {
        sq_set_error("%s: images of type %s; the npy: spec takes uint8 pixels (0..255) or float32 pixels in "
                     "[0, 1] (convert with images.astype(np.uint8) or images.astype(np.float32) / 255)",
                     in->pp, sq_npy_dtype_name(in->t));
        goto fail;
    }
    /* the layout: n, c, h, w and whether the channels come last */
    int64_t n = 0, c = 1, h = 0, w = 0;
    int nhwc = 0;
    if (in->nd == 3) {
        n = in->d[0], h = in->d[1], w = in->d[2];
    } else if (in->nd == 4 && in->d[1] >= 1 && in->d[1] <= 4) {
        n = in->d[0], c = in->d[1], h = in->d[2], w = in->d[3];
    } else if (in->nd == 4 && in->d[3] >= 1 && in->d[3] <= 4 && !is_float) {
        n = in->d[0], h = in->d[1], w = in->d[2], c = in->d[3], nhwc = 1;
    } else if (in->nd == 4 && in->d[3] >= 1 && in->d[3] <= 4) {
        sq_set_error("%s: float images of shape %s look channels-last; float images must be N x C x H x W "
                     "(images.transpose(0, 3, 1, 2))", in->pp, in->sh);
        goto fail;
    } else {
        sq_set_error("%s: images of shape %s; the npy: spec takes N x C x H x W or N x H x W x C (uint8) with 1 to "
                     "4 channels, or N x H x W (one channel)", in->pp, in->sh);
        goto fail;
    }
    if (n < 1 || h < 1 || w < 1 || n > INT_MAX || h > 65535 || w > 65535) {
        sq_set_error("%s: images of shape %s: need at least one image of at least 1 x 1 pixels (at most 65535 "
                     "per side)", in->pp, in->sh);
        goto fail;
    }
    const size_t plane = (size_t)h * (size_t)w, sample = plane * (size_t)c, total = sample * (size_t)n;
    uint8_t *img = malloc(total ? total : 1);
    if (!img) { sq_set_error("%s: out of memory for %zu pixels", in->pp, total); st = SQ_ENOMEM; goto fail; }
    if (in->t == SQ_NPY_U1 && !nhwc) {
        memcpy(img, in->raw, total);
    } else if (in->t == SQ_NPY_U1) {   /* (n, h, w, c) -> (n, c, h, w) */
        const uint8_t *s = in->raw;
        for (size_t i = 0; i < (size_t)n; i++)
            for (size_t p = 0; p < plane; p++)
                for (size_t ch = 0; ch < (size_t)c; ch++)
                    img[i * sample + ch * plane + p] = s[(i * plane + p) * (size_t)c + ch];
    } else {
        for (size_t k = 0; k < total; k++) {
            double v = in->t == SQ_NPY_F4 ? (double)((const float *)in->raw)[k] : ((const double *)in->raw)[k];
            if (!(v >= 0.0 && v <= 1.0)) {   /* NaN fails too */
                char vs[32];
                snprintf(vs, sizeof vs, "%g", v);
                sq_set_error("%s: pixel %zu (image %zu) is %s; float images must hold pixels in [0, 1] (uint8 "
                             "images hold 0..255)", in->pp, k, k / sample, vs);
                free(img);
                goto fail;
            }
            img[k] = (uint8_t)(v * 255.0 + 0.5);
        }
    }
    out->images = img;
    out->n = (int)n, out->c = (int)c, out->h = (int)h, out->w = (int)w;
    st = SQ_OK;
fail:
    return st;
}

static sq_status load_labels(const npy_in *in, sq_dataset *out)
{
    sq_status st = SQ_EFORMAT;
    if (!is_int_type(in->t)) {
        sq_set_error("%s: labels of type %s; labels are integer class indices (labels.astype(np.int64))", in->pp,
                     sq_npy_dtype_name(in->t));
        goto done;
    }
    if (in->nd != 1 || in->d[0] != out->n) {
        sq_set_error("%s: labels of shape %s for %d images; give one label per image, shape (%d,)", in->pp, in->sh,
                     out->n, out->n);
        goto done;
    }
    out->labels = sq_xmalloc((size_t)out->n * sizeof(int32_t));
    int maxl = 0;
    for (int i = 0; i < out->n; i++) {
        int64_t v = int_at(in->raw, in->t, (size_t)i);
        if (v < 0 || v >= SQ_MAX_CLASSES) {
            sq_set_error("%s: label %lld of image %d is outside 0..%d", in->pp, (long long)v, i, SQ_MAX_CLASSES - 1);
            goto done;
        }
        out->labels[i] = (int32_t)v;
        if (v > maxl) maxl = (int)v;
    }
    out->classes = maxl + 1;
    st = SQ_OK;
done:
    return st;
}

sq_status sq_npy_data_open(const char *arg, sq_split split, int with_labels, sq_dataset *out)
{
    char ipath[1024], lpath[1024], pa[512];
    sq_printable(arg, pa, sizeof pa);
    if (split != SQ_SPLIT_TRAIN) {
        sq_set_error("data spec 'npy:%s' has no test split; hold out part of it instead "
                     "(sq_dataset_holdout)", pa);
        return SQ_EARG;
    }
    const char *comma = strchr(arg, ',');
    size_t ilen = comma ? (size_t)(comma - arg) : strlen(arg);
    if (ilen == 0 || ilen >= sizeof ipath || (comma && (comma[1] == 0 || strlen(comma + 1) >= sizeof lpath))) {
        sq_set_error("bad data spec 'npy:%s'; use npy:IMAGES.npy[,LABELS.npy]", pa);
        return SQ_EARG;
    }
    memcpy(ipath, arg, ilen);
    ipath[ilen] = 0;
    if (comma) snprintf(lpath, sizeof lpath, "%s", comma + 1);
    sq_data_strlcpy(out->name, "npy", sizeof out->name);
    snprintf(out->source, sizeof out->source, "%s", arg);
    sq_status st = with_npy(ipath, load_images, out);
    if (st) return st;
    if (comma && with_labels) return with_npy(lpath, load_labels, out);
    return SQ_OK;
}
