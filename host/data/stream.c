/* stream.c: streamed datasets (folder:): the file list shared by a dataset and its hold-out
   parts, the per-sample fetch (decode, colour to the dataset's channels, resize or size check,
   (H, W, C) -> (C, H, W)) the loader threads call, and the small parallel-for that the folder
   reader (header probing) and the normalisation statistics use. */
#include "data/data_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sq_image_list_release(sq_image_list *l)
{
    if (!l || --l->refs > 0) return;
    for (int i = 0; i < l->n; i++) free(l->paths[i]);
    free(l->paths);
    free(l);
}

sq_status sq_image_list_fetch(const sq_image_list *l, int item, uint8_t *dst)
{
    char pp[512];
    if (item < 0 || item >= l->n) {
        sq_set_error("streamed dataset: file %d of %d does not exist", item, l->n);
        return SQ_EARG;
    }
    const char *path = l->paths[item];
    uint8_t *pix;
    int h, w, c;
    sq_status st = sq_image_decode(path, &pix, &h, &w, &c);
    if (st) return st;
    if (c > l->c) {
        sq_set_error("image '%s' is in colour, but it was greyscale when the dataset was opened (like every "
                     "other image); the folder changed: open it again", sq_printable(path, pp, sizeof pp));
        free(pix);
        return SQ_EFORMAT;
    }
    if (!l->resize && (h != l->h || w != l->w)) {
        sq_set_error("image '%s' is %dx%d (HxW) now, but the dataset's images were %dx%d when it was opened; "
                     "the folder changed: open it again (or resize every image: --resize HxW)",
                     sq_printable(path, pp, sizeof pp), h, w, l->h, l->w);
        free(pix);
        return SQ_EFORMAT;
    }
    const size_t plane = (size_t)h * w;
    /* (H, W, c) -> the planes of the file's own channels (a gray image is one plane) */
    uint8_t *planes = l->resize ? malloc((size_t)c * plane) : dst;
    if (!planes) {
        free(pix);
        sq_set_error("image '%s': out of memory for %dx%dx%d pixels", sq_printable(path, pp, sizeof pp), h, w, c);
        return SQ_ENOMEM;
    }
    for (int ch = 0; ch < c; ch++)
        for (size_t p = 0; p < plane; p++) planes[(size_t)ch * plane + p] = pix[p * c + ch];
    free(pix);
    const size_t out = (size_t)l->h * l->w;
    if (l->resize) {
        st = sq_image_resize_crop(planes, c, h, w, dst, l->h, l->w);
        free(planes);
        if (st) return st;
    }
    /* a gray image in an RGB dataset: its plane three times (as PIL's convert("RGB")) */
    for (int ch = c; ch < l->c; ch++) memcpy(dst + (size_t)ch * out, dst, out);
    return SQ_OK;
}

sq_status sq_dataset_fetch(const sq_dataset *ds, int i, uint8_t *dst)
{
    if (!ds || i < 0 || i >= ds->n) {
        sq_set_error("dataset: sample %d of %d does not exist", i, ds ? ds->n : 0);
        return SQ_EARG;
    }
    const size_t sample = (size_t)ds->c * ds->h * ds->w;
    if (ds->images) {
        memcpy(dst, ds->images + (size_t)i * sample, sample);
        return SQ_OK;
    }
    if (!ds->stream || ds->stream->c != ds->c || ds->stream->h != ds->h || ds->stream->w != ds->w) {
        sq_set_error("dataset '%s' has neither images in memory nor a matching stream", ds->name);
        return SQ_EARG;
    }
    return sq_image_list_fetch(ds->stream, ds->items ? ds->items[i] : i, dst);
}

const char *sq_dataset_path(const sq_dataset *ds, int i)
{
    if (!ds || !ds->stream || i < 0 || i >= ds->n) return NULL;
    int item = ds->items ? ds->items[i] : i;
    return item >= 0 && item < ds->stream->n ? ds->stream->paths[item] : NULL;
}

int sq_data_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
    pthread_attr_t a;
    if (pthread_attr_init(&a)) return -1;
    pthread_attr_setstacksize(&a, SQ_DATA_STACK);
    int r = pthread_create(t, &a, fn, arg);
    pthread_attr_destroy(&a);
    return r;
}

/* ---- parallel for ---- */
typedef struct par {
    sq_data_task fn;
    void *ctx;
    int n;
    atomic_int next, stop;
    pthread_mutex_t mu;
    int err_i; /* lowest failing index, n when none */
    sq_status err;
    char msg[1024];
} par;

typedef struct par_arg {
    par *p;
    int worker;
} par_arg;

static void *par_run(void *arg)
{
    par_arg *a = arg;
    par *p = a->p;
    for (;;) {
        if (atomic_load(&p->stop)) break;
        int i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n) break;
        sq_status st = p->fn(p->ctx, i, a->worker);
        if (st) {
            pthread_mutex_lock(&p->mu);
            if (i < p->err_i) {
                p->err_i = i;
                p->err = st;
                snprintf(p->msg, sizeof p->msg, "%s", sq_last_error());
            }
            pthread_mutex_unlock(&p->mu);
            atomic_store(&p->stop, 1);
        }
    }
    return NULL;
}

sq_status sq_data_parallel(int n, int threads, sq_data_task fn, void *ctx)
{
    if (n <= 0) return SQ_OK;
    if (threads < 1) threads = 1;
    if (threads > n) threads = n;
    par p = {.fn = fn, .ctx = ctx, .n = n, .err_i = n, .err = SQ_OK};
    atomic_init(&p.next, 0);
    atomic_init(&p.stop, 0);
    pthread_mutex_init(&p.mu, NULL);
    pthread_t *tid = sq_xcalloc((size_t)threads, sizeof *tid);
    par_arg *args = sq_xcalloc((size_t)threads, sizeof *args);
    int started = 0;
    for (int t = 1; t < threads; t++) {
        args[t] = (par_arg){&p, t};
        if (sq_data_thread(&tid[t], par_run, &args[t]) != 0) break; /* fewer threads: same result */
        started = t;
    }
    args[0] = (par_arg){&p, 0};
    par_run(&args[0]);
    for (int t = 1; t <= started; t++) pthread_join(tid[t], NULL);
    pthread_mutex_destroy(&p.mu);
    free(tid);
    free(args);
    if (p.err) sq_set_error("%s", p.msg);
    return p.err;
}
