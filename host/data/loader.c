/* loader.c: background batch loader with double buffering.

   One producer thread fills two batch slots (augmented, normalized float NCHW + labels) in batch
   order; sq_loader_next hands out one slot (HELD until the next call) while the producer fills
   the other, so when the producer is faster the consumer never waits. A slot moves
   FREE -> FILLING (producer, outside the lock) -> READY -> HELD (consumer) -> FREE.
   sq_loader_start_epoch / sq_loader_skip bump a generation counter: READY slots of the old
   generation are dropped at once and a slot being filled is abandoned at the next sample (the
   producer polls an atomic copy of the generation), so they never block. The epoch order is a
   Fisher-Yates permutation keyed by (seed, epoch) and the augmentation of a sample is keyed by
   (seed, epoch, sample index): batches are identical whatever the thread timing. */
#include "data/data_internal.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SLOT_FREE, SLOT_FILLING, SLOT_READY, SLOT_HELD };

typedef struct slot {
    float *x;   /* (batch, C, H, W) */
    int32_t *y; /* (batch), NULL without labels */
    int n, batch, gen, state;
} slot;

struct sq_loader {
    const sq_dataset *ds;
    sq_loader_opts o;
    int nb;        /* batches per epoch */
    size_t sample; /* C * H * W */
    float lut[4 * 256];
    int *perm;      /* producer-owned */
    int perm_epoch; /* epoch perm was built for; INT_MIN = none */
    slot s[2];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv_prod, cv_cons;
    /* guarded by mu */
    int quit, started, epoch, gen, prod_next, cons_next;
    atomic_int gen_hint; /* gen (or -1 when quitting), read lock-free by the filling producer */
};

static int find_slot(const sq_loader *l, int state)
{
    for (int i = 0; i < 2; i++)
        if (l->s[i].state == state) return i;
    return -1;
}

/* Fills slot s with batch b of `epoch`; returns 0 if the generation changed meanwhile. */
static int fill(sq_loader *l, slot *s, int b, int epoch, int gen)
{
    const sq_dataset *ds = l->ds;
    if (l->o.shuffle && l->perm_epoch != epoch) {
        sq_data_permutation(l->perm, ds->n,
                            sq_drng_key(l->o.seed, SQ_DRNG_TAG_PERM, (uint64_t)(uint32_t)epoch, 0));
        l->perm_epoch = epoch;
    }
    int start = b * l->o.batch;
    int n = ds->n - start < l->o.batch ? ds->n - start : l->o.batch;
    for (int i = 0; i < n; i++) {
        if (atomic_load_explicit(&l->gen_hint, memory_order_relaxed) != gen) return 0;
        int idx = l->o.shuffle ? l->perm[start + i] : start + i;
        sq_aug a = sq_augment_draw(l->o.seed, epoch, idx, l->o.crop_pad, l->o.flip);
        sq_augment_sample(ds->images + (size_t)idx * l->sample, ds->c, ds->h, ds->w, a, l->lut,
                          s->x + (size_t)i * l->sample);
        if (s->y) s->y[i] = ds->labels[idx];
    }
    s->n = n;
    return 1;
}

static void *producer(void *arg)
{
    sq_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        int si = -1;
        while (!l->quit && !(l->started && l->prod_next < l->nb && (si = find_slot(l, SLOT_FREE)) >= 0))
            pthread_cond_wait(&l->cv_prod, &l->mu);
        if (l->quit) break;
        slot *s = &l->s[si];
        int b = l->prod_next++, epoch = l->epoch, gen = l->gen;
        s->state = SLOT_FILLING;
        s->batch = b;
        s->gen = gen;
        pthread_mutex_unlock(&l->mu);
        int ok = fill(l, s, b, epoch, gen);
        pthread_mutex_lock(&l->mu);
        if (ok && s->gen == l->gen) {
            s->state = SLOT_READY;
            pthread_cond_broadcast(&l->cv_cons);
        } else {
            s->state = SLOT_FREE;
        }
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

sq_status sq_loader_create(const sq_dataset *ds, const sq_loader_opts *opts, sq_loader **out)
{
    *out = NULL;
    if (!ds || !ds->images || ds->n <= 0 || ds->c < 1 || ds->c > 4 || ds->h < 1 || ds->w < 1) {
        sq_set_error("loader: the dataset is empty or has an unsupported shape (C must be 1..4)");
        return SQ_EARG;
    }
    if (!opts || opts->batch < 1) {
        sq_set_error("loader: batch size %d must be at least 1", opts ? opts->batch : 0);
        return SQ_EARG;
    }
    if (opts->crop_pad < 0 || opts->crop_pad > ds->h || opts->crop_pad > ds->w) {
        sq_set_error("loader: crop padding %d must be in 0..%d for %dx%d images", opts->crop_pad,
                     ds->h < ds->w ? ds->h : ds->w, ds->h, ds->w);
        return SQ_EARG;
    }
    int nb = opts->drop_last ? ds->n / opts->batch : (ds->n + opts->batch - 1) / opts->batch;
    if (nb == 0) {
        sq_set_error("loader: %d samples are fewer than one batch of %d with drop_last; lower the "
                     "batch size", ds->n, opts->batch);
        return SQ_EARG;
    }
    for (int c = 0; c < ds->c; c++)
        if (!(ds->std[c] > 0.0f)) {
            sq_set_error("loader: normalization std[%d] = %g of dataset '%s' must be positive "
                         "(call sq_dataset_set_default_norm)", c, (double)ds->std[c], ds->name);
            return SQ_EARG;
        }
    sq_loader *l = sq_xcalloc(1, sizeof *l);
    l->ds = ds;
    l->o = *opts;
    l->nb = nb;
    l->sample = (size_t)ds->c * ds->h * ds->w;
    sq_norm_lut(ds, l->lut);
    l->perm = sq_xmalloc((size_t)ds->n * sizeof(int));
    l->perm_epoch = INT_MIN;
    for (int i = 0; i < 2; i++) {
        l->s[i].x = sq_xmalloc((size_t)opts->batch * l->sample * sizeof(float));
        l->s[i].y = ds->labels ? sq_xmalloc((size_t)opts->batch * sizeof(int32_t)) : NULL;
        l->s[i].state = SLOT_FREE;
    }
    atomic_init(&l->gen_hint, 0);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv_prod, NULL);
    pthread_cond_init(&l->cv_cons, NULL);
    if (pthread_create(&l->thread, NULL, producer, l) != 0) {
        sq_set_error("loader: cannot start the background thread");
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv_prod);
        pthread_cond_destroy(&l->cv_cons);
        for (int i = 0; i < 2; i++) {
            free(l->s[i].x);
            free(l->s[i].y);
        }
        free(l->perm);
        free(l);
        return SQ_EDEVICE;
    }
    *out = l;
    return SQ_OK;
}

void sq_loader_free(sq_loader *l)
{
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->quit = 1;
    atomic_store(&l->gen_hint, -1);
    pthread_cond_broadcast(&l->cv_prod);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv_prod);
    pthread_cond_destroy(&l->cv_cons);
    for (int i = 0; i < 2; i++) {
        free(l->s[i].x);
        free(l->s[i].y);
    }
    free(l->perm);
    free(l);
}

int sq_loader_batches(const sq_loader *l) { return l ? l->nb : 0; }

/* Positions the current epoch at batch `at` under the lock: new generation, stale READY slots
   dropped, producer woken. A HELD slot stays valid until the next sq_loader_next. */
static void reposition(sq_loader *l, int at)
{
    l->gen = l->gen == INT_MAX ? 0 : l->gen + 1;
    atomic_store(&l->gen_hint, l->gen);
    l->prod_next = l->cons_next = at;
    for (int i = 0; i < 2; i++)
        if (l->s[i].state == SLOT_READY) l->s[i].state = SLOT_FREE;
    pthread_cond_broadcast(&l->cv_prod);
}

void sq_loader_start_epoch(sq_loader *l, int epoch)
{
    pthread_mutex_lock(&l->mu);
    l->epoch = epoch;
    l->started = 1;
    reposition(l, 0);
    pthread_mutex_unlock(&l->mu);
}

sq_status sq_loader_skip(sq_loader *l, int nbatches)
{
    if (!l) {
        sq_set_error("loader: skip on a NULL loader");
        return SQ_EARG;
    }
    pthread_mutex_lock(&l->mu);
    sq_status st = SQ_OK;
    if (!l->started) {
        sq_set_error("loader: skip before sq_loader_start_epoch");
        st = SQ_EARG;
    } else if (nbatches < 0 || nbatches > l->nb) {
        sq_set_error("loader: cannot skip %d batches of an epoch of %d", nbatches, l->nb);
        st = SQ_EARG;
    } else {
        reposition(l, nbatches);
    }
    pthread_mutex_unlock(&l->mu);
    return st;
}

int sq_loader_next(sq_loader *l, const float **x, const int32_t **y)
{
    pthread_mutex_lock(&l->mu);
    int held = find_slot(l, SLOT_HELD);
    if (held >= 0) {
        l->s[held].state = SLOT_FREE;
        pthread_cond_broadcast(&l->cv_prod);
    }
    if (!l->started || l->cons_next >= l->nb) {
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    int si;
    for (;;) {
        si = -1;
        for (int i = 0; i < 2; i++)
            if (l->s[i].state == SLOT_READY && l->s[i].gen == l->gen &&
                l->s[i].batch == l->cons_next)
                si = i;
        if (si >= 0) break;
        pthread_cond_wait(&l->cv_cons, &l->mu);
    }
    slot *s = &l->s[si];
    s->state = SLOT_HELD;
    l->cons_next++;
    int n = s->n;
    pthread_mutex_unlock(&l->mu);
    if (x) *x = s->x;
    if (y && s->y) *y = s->y;
    return n;
}
