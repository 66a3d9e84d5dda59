/* loader.c: background batch loader (one batch prepared ahead of the consumer).

   One producer thread fills batch slots (augmented, normalized float NCHW + labels) in batch
   order; sq_loader_next hands out one slot (HELD) while the producer fills another, so when the
   producer is faster the consumer never waits. With opts.threads > 1 the producer has helper
   threads: each batch is published as a job whose samples every thread claims one at a time
   (an atomic counter), the producer working too; it waits for all of them before the batch is
   READY. A sample is written at its own place of the slot and depends only on (seed, epoch,
   index), so the batch is the same whatever thread made which sample. A streamed dataset's
   samples are decoded there (sq_dataset_fetch into the thread's scratch image). A sample that
   cannot be made (a file that no longer decodes) fails its batch: the slot becomes READY with the
   error of its lowest failing sample (every lower sample was claimed earlier and completes, so
   the choice does not depend on timing), which sq_loader_next reports. There are keep + 1 slots (sq_loader_opts.keep,
   at least 1): a HELD slot is given back (FREE) by the call to sq_loader_next that hands out the
   keep-th batch after it, so the consumer may read a batch until then, and the producer always
   has a slot to fill. A slot moves
   FREE -> FILLING (producer, outside the lock) -> READY -> HELD (consumer) -> FREE.
   The slots' memory comes from the options' host_alloc when set (a backend's pinned memory, which
   its uploads read directly), else from malloc.
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
    unsigned long long handed; /* when HELD: the serial of the sq_loader_next that handed it out */
    sq_status err;             /* READY with an error: the batch failed (msg says why) */
    char msg[1024];
} slot;

/* the batch being filled, shared by the producer and its helpers (guarded by jmu, except the
   atomics) */
typedef struct job {
    pthread_mutex_t mu;
    pthread_cond_t cv_start, cv_done;
    unsigned serial; /* bumped for every job */
    int quit, active; /* helpers still on the current job */
    slot *s;
    int start, n, epoch, gen;
    atomic_int next, stop;
    int err_i;        /* lowest failing sample of the job, n when none */
} job;

struct sq_loader {
    const sq_dataset *ds;
    sq_loader_opts o;
    int nb;        /* batches per epoch */
    size_t sample; /* C * H * W */
    float lut[4 * 256];
    int *perm;      /* producer-owned */
    int perm_epoch; /* epoch perm was built for; INT_MIN = none */
    slot *s;
    int nslots, keep; /* keep + 1 slots; the last keep batches handed out stay HELD */
    unsigned long long handed; /* batches handed out so far */
    pthread_t thread;
    int nthreads;       /* the producer and its helpers */
    pthread_t *helpers; /* nthreads - 1 */
    uint8_t **scratch;  /* per thread, a streamed dataset's decoded sample (C * H * W) */
    job j;
    pthread_mutex_t mu;
    pthread_cond_t cv_prod, cv_cons;
    /* guarded by mu */
    int quit, started, epoch, gen, prod_next, cons_next;
    atomic_int gen_hint; /* gen (or -1 when quitting), read lock-free by the threads filling a slot */
};

static int find_slot(const sq_loader *l, int state)
{
    for (int i = 0; i < l->nslots; i++)
        if (l->s[i].state == state) return i;
    return -1;
}

static void free_slots(sq_loader *l)
{
    void (*release)(void *) = l->o.host_alloc ? l->o.host_free : free;
    for (int i = 0; i < l->nslots && l->s; i++) {
        release(l->s[i].x);
        release(l->s[i].y);
    }
    free(l->s);
}

/* the slots' memory; SQ_ENOMEM (error set) when the options' host_alloc has none */
static sq_status alloc_slots(sq_loader *l, int labels)
{
    const size_t xb = (size_t)l->o.batch * l->sample * sizeof(float), yb = (size_t)l->o.batch * sizeof(int32_t);
    l->s = sq_xcalloc((size_t)l->nslots, sizeof *l->s);
    for (int i = 0; i < l->nslots; i++) {
        slot *s = &l->s[i];
        s->state = SLOT_FREE;
        if (!l->o.host_alloc) {
            s->x = sq_xmalloc(xb);
            s->y = labels ? sq_xmalloc(yb) : NULL;
            continue;
        }
        s->x = l->o.host_alloc(xb);
        s->y = labels && s->x ? l->o.host_alloc(yb) : NULL;
        if (!s->x || (labels && !s->y)) {
            char why[256];
            snprintf(why, sizeof why, "%s", sq_last_error());
            sq_set_error("loader: %d batch slots of %zu bytes in the backend's host memory not available "
                         "(%s)", l->nslots, xb + (labels ? yb : 0), why);
            return SQ_ENOMEM;
        }
    }
    return SQ_OK;
}

/* Makes sample i of the current job into its slot (thread `worker`). */
static sq_status make_sample(sq_loader *l, int i, int worker)
{
    const sq_dataset *ds = l->ds;
    job *j = &l->j;
    slot *s = j->s;
    int idx = l->o.shuffle ? l->perm[j->start + i] : j->start + i;
    const uint8_t *img;
    if (ds->images) {
        img = ds->images + (size_t)idx * l->sample;
    } else {
        sq_status st = sq_dataset_fetch(ds, idx, l->scratch[worker]);
        if (st) return st;
        img = l->scratch[worker];
    }
    sq_aug a = sq_augment_draw(l->o.seed, j->epoch, idx, l->o.crop_pad, l->o.flip);
    sq_augment_sample(img, ds->c, ds->h, ds->w, a, l->lut, s->x + (size_t)i * l->sample);
    if (s->y) s->y[i] = ds->labels[idx];
    return SQ_OK;
}

/* Claims and makes samples of the current job until none is left, the generation changes or a
   sample fails. */
static void run_job(sq_loader *l, int worker)
{
    job *j = &l->j;
    for (;;) {
        if (atomic_load(&j->stop) || atomic_load_explicit(&l->gen_hint, memory_order_relaxed) != j->gen) return;
        int i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n) return;
        sq_status st = make_sample(l, i, worker);
        if (!st) continue;
        pthread_mutex_lock(&j->mu);
        if (i < j->err_i) {
            j->err_i = i;
            j->s->err = st;
            snprintf(j->s->msg, sizeof j->s->msg, "%s", sq_last_error());
        }
        pthread_mutex_unlock(&j->mu);
        atomic_store(&j->stop, 1);
    }
}

static void *helper(void *arg)
{
    sq_loader *l = arg;
    job *j = &l->j;
    pthread_mutex_lock(&j->mu);
    int worker = ++j->active; /* 1..nthreads-1, in the order the helpers start */
    pthread_cond_signal(&j->cv_done);
    unsigned seen = j->serial;
    for (;;) {
        while (!j->quit && j->serial == seen) pthread_cond_wait(&j->cv_start, &j->mu);
        if (j->quit) break;
        seen = j->serial;
        pthread_mutex_unlock(&j->mu);
        run_job(l, worker);
        pthread_mutex_lock(&j->mu);
        if (--j->active == 0) pthread_cond_signal(&j->cv_done);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* Fills slot s with batch b of `epoch`; returns 0 if the generation changed meanwhile. A failed
   sample leaves s->err set (the slot still counts as filled). */
static int fill(sq_loader *l, slot *s, int b, int epoch, int gen)
{
    const sq_dataset *ds = l->ds;
    if (l->o.shuffle && l->perm_epoch != epoch) {
        sq_data_permutation(l->perm, ds->n,
                            sq_drng_key(l->o.seed, SQ_DRNG_TAG_PERM, (uint64_t)(uint32_t)epoch, 0));
        l->perm_epoch = epoch;
    }
    job *j = &l->j;
    /* a shard is its part of the global batch b (o.batch is the shard's size then) */
    int start = l->o.shards > 1 ? (b * l->o.shards + l->o.shard) * l->o.batch : b * l->o.batch;
    int n = ds->n - start < l->o.batch ? ds->n - start : l->o.batch;
    s->err = SQ_OK;
    s->msg[0] = 0;
    pthread_mutex_lock(&j->mu);
    j->s = s;
    j->start = start;
    j->n = n;
    j->epoch = epoch;
    j->gen = gen;
    j->err_i = n;
    atomic_store(&j->next, 0);
    atomic_store(&j->stop, 0);
    if (l->nthreads > 1) {
        j->active = l->nthreads - 1;
        j->serial++;
        pthread_cond_broadcast(&j->cv_start);
    }
    pthread_mutex_unlock(&j->mu);
    run_job(l, 0);
    if (l->nthreads > 1) {
        pthread_mutex_lock(&j->mu);
        while (j->active > 0) pthread_cond_wait(&j->cv_done, &j->mu);
        pthread_mutex_unlock(&j->mu);
    }
    if (atomic_load(&l->gen_hint) != gen) return 0;
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

/* ends and joins the helper threads 1..nthreads-1 (the producer has stopped or never started) */
static void stop_helpers(sq_loader *l)
{
    pthread_mutex_lock(&l->j.mu);
    l->j.quit = 1;
    pthread_cond_broadcast(&l->j.cv_start);
    pthread_mutex_unlock(&l->j.mu);
    for (int t = 1; t < l->nthreads; t++) pthread_join(l->helpers[t], NULL);
}

static void destroy(sq_loader *l)
{
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv_prod);
    pthread_cond_destroy(&l->cv_cons);
    pthread_mutex_destroy(&l->j.mu);
    pthread_cond_destroy(&l->j.cv_start);
    pthread_cond_destroy(&l->j.cv_done);
    free_slots(l);
    for (int t = 0; t < l->nthreads && l->scratch; t++) free(l->scratch[t]);
    free(l->scratch);
    free(l->helpers);
    free(l->perm);
    free(l);
}

sq_status sq_loader_create(const sq_dataset *ds, const sq_loader_opts *opts, sq_loader **out)
{
    *out = NULL;
    if (!ds || (!ds->images && !ds->stream) || ds->n <= 0 || ds->c < 1 || ds->c > 4 || ds->h < 1 || ds->w < 1) {
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
    if (opts->keep < 0 || opts->keep > SQ_LOADER_KEEP_MAX) {
        sq_set_error("loader: keep %d must be in 0..%d", opts->keep, SQ_LOADER_KEEP_MAX);
        return SQ_EARG;
    }
    if (!opts->host_alloc != !opts->host_free) {
        sq_set_error("loader: host_alloc and host_free are set together or not at all");
        return SQ_EARG;
    }
    if (opts->shards > 1 && (opts->batch % opts->shards || !opts->drop_last || opts->shard < 0 ||
                             opts->shard >= opts->shards)) {
        sq_set_error("loader: shard %d of %d of a batch of %d%s: the batch must be a multiple of the shard count "
                     "and drop_last set", opts->shard, opts->shards, opts->batch, opts->drop_last ? "" : " without drop_last");
        return SQ_EARG;
    }
    if (opts->threads < 0 || opts->threads > SQ_LOADER_THREADS_MAX) {
        sq_set_error("loader: %d threads; use 1..%d (0: the dataset's)", opts->threads, SQ_LOADER_THREADS_MAX);
        return SQ_EARG;
    }
    sq_loader *l = sq_xcalloc(1, sizeof *l);
    l->ds = ds;
    l->o = *opts;
    l->nb = nb;
    if (opts->shards > 1) l->o.batch = opts->batch / opts->shards; /* slots hold a shard */
    l->sample = (size_t)ds->c * ds->h * ds->w;
    l->keep = opts->keep > 1 ? opts->keep : 1;
    l->nslots = l->keep + 1;
    sq_status st = alloc_slots(l, ds->labels != NULL);
    if (st) {
        free_slots(l);
        free(l);
        return st;
    }
    sq_norm_lut(ds, l->lut);
    l->perm = sq_xmalloc((size_t)ds->n * sizeof(int));
    l->perm_epoch = INT_MIN;
    int nt = opts->threads > 0 ? opts->threads : ds->threads > 0 ? ds->threads : 1;
    if (nt > SQ_LOADER_THREADS_MAX) nt = SQ_LOADER_THREADS_MAX;
    l->nthreads = nt;
    l->helpers = sq_xcalloc((size_t)nt, sizeof *l->helpers);
    l->scratch = sq_xcalloc((size_t)nt, sizeof *l->scratch);
    for (int t = 0; t < nt && !ds->images; t++) l->scratch[t] = sq_xmalloc(l->sample);
    atomic_init(&l->gen_hint, 0);
    atomic_init(&l->j.next, 0);
    atomic_init(&l->j.stop, 0);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv_prod, NULL);
    pthread_cond_init(&l->cv_cons, NULL);
    pthread_mutex_init(&l->j.mu, NULL);
    pthread_cond_init(&l->j.cv_start, NULL);
    pthread_cond_init(&l->j.cv_done, NULL);
    /* the helpers first: each takes its worker number, then waits for jobs */
    int started = 1;
    for (; started < nt; started++) {
        if (sq_data_thread(&l->helpers[started], helper, l) != 0) break;
        pthread_mutex_lock(&l->j.mu);
        while (l->j.active < started) pthread_cond_wait(&l->j.cv_done, &l->j.mu);
        pthread_mutex_unlock(&l->j.mu);
    }
    l->j.active = 0;
    if (started < nt || sq_data_thread(&l->thread, producer, l) != 0) {
        sq_set_error("loader: cannot start %d background thread%s (too little memory for their stacks?); use fewer "
                     "loader threads", nt, nt == 1 ? "" : "s");
        l->nthreads = started;
        stop_helpers(l);
        destroy(l);
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
    stop_helpers(l);
    destroy(l);
}

int sq_loader_batches(const sq_loader *l) { return l ? l->nb : 0; }

/* Positions the current epoch at batch `at` under the lock: new generation, stale READY slots
   dropped, producer woken. HELD slots stay valid as sq_loader_next says. */
static void reposition(sq_loader *l, int at)
{
    l->gen = l->gen == INT_MAX ? 0 : l->gen + 1;
    atomic_store(&l->gen_hint, l->gen);
    l->prod_next = l->cons_next = at;
    for (int i = 0; i < l->nslots; i++)
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
    /* the batch handed out keep calls ago is the caller's no more (at most one: the others are
       younger) */
    int oldest = -1, held = 0;
    for (int i = 0; i < l->nslots; i++)
        if (l->s[i].state == SLOT_HELD) {
            held++;
            if (oldest < 0 || l->s[i].handed < l->s[oldest].handed) oldest = i;
        }
    if (held >= l->keep) {
        l->s[oldest].state = SLOT_FREE;
        pthread_cond_broadcast(&l->cv_prod);
    }
    if (!l->started || l->cons_next >= l->nb) {
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    int si;
    for (;;) {
        si = -1;
        for (int i = 0; i < l->nslots; i++)
            if (l->s[i].state == SLOT_READY && l->s[i].gen == l->gen &&
                l->s[i].batch == l->cons_next)
                si = i;
        if (si >= 0) break;
        pthread_cond_wait(&l->cv_cons, &l->mu);
    }
    slot *s = &l->s[si];
    if (s->err) {
        /* the batch failed: said again by every call until the epoch is restarted */
        int r = -(int)s->err;
        sq_set_error("%s", s->msg);
        pthread_mutex_unlock(&l->mu);
        return r;
    }
    s->state = SLOT_HELD;
    s->handed = ++l->handed;
    l->cons_next++;
    int n = s->n;
    pthread_mutex_unlock(&l->mu);
    if (x) *x = s->x;
    if (y && s->y) *y = s->y;
    return n;
}
