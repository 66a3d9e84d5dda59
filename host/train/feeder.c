/* feeder.c: input staging and the one input buffer of a run's models (feeder.h). */
#include "feeder.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sq_feeder_staging(const sq_backend *be)
{
    return be->stage_new && be->stage_put && be->stage_free && be->options()->stage;
}

/* the feeder and its input (and labels) buffers, not staged yet; NULL with the out-of-memory error */
static sq_feeder *feeder_alloc(const sq_model *m, int batch, int labels)
{
    const sq_backend *be = m->be;
    const sq_node *in = &m->nodes[0];
    sq_feeder *f = sq_xcalloc(1, sizeof *f);
    f->be = be;
    f->batch = batch;
    f->sample_bytes = (size_t)in->c * in->h * in->w * sizeof(float);
    f->x = be->alloc(f->sample_bytes * batch + 256);
    f->y = labels ? be->alloc((size_t)batch * sizeof(int32_t) + 256) : NULL;
    if (!f->x || (labels && !f->y)) {
        char what[64];
        snprintf(what, sizeof what, "the input of %s", m->arch);
        sq_backend_oom_error(be, (double)f->sample_bytes * batch, what, batch, NULL);
        sq_feeder_free(f);
        return NULL;
    }
    return f;
}

/* f's stages (with pinned host slots of their own unless host_slots is 0); 0 when the backend
   has not the memory for them: then f is not staged */
static int make_stages(sq_feeder *f, int host_slots)
{
    const sq_backend *be = f->be;
    f->stage_x = be->stage_new(f->sample_bytes * f->batch, host_slots);
    f->stage_y = f->stage_x && f->y ? be->stage_new((size_t)f->batch * sizeof(int32_t), host_slots) : NULL;
    if (f->y && !f->stage_y && f->stage_x) {
        be->stage_free(f->stage_x);
        f->stage_x = NULL;
    }
    return f->stage_x != NULL;
}

sq_feeder *sq_feeder_new(const sq_model *m, int batch, int labels, int staged)
{
    sq_feeder *f = feeder_alloc(m, batch, labels);
    /* pinned memory is a scarce resource: without it the batches are copied directly, with the
       same results */
    if (f && staged && sq_feeder_staging(f->be)) make_stages(f, 1);
    return f;
}

sq_status sq_feeder_open(const sq_model *m, int batch, int labels, const sq_dataset *ds, const sq_loader_opts *lo,
                         sq_feeder **feed, sq_loader **loader)
{
    *feed = NULL;
    *loader = NULL;
    sq_feeder *f = feeder_alloc(m, batch, labels);
    if (!f) return SQ_ENOMEM;
    const sq_backend *be = f->be;
    sq_status st;
    if (sq_feeder_staging(be) && be->stage_put_pinned && be->host_alloc && be->host_free) {
        /* the loader writes the batches into pinned memory and the uploads read them there */
        sq_loader_opts pl = *lo;
        pl.keep = SQ_FEEDER_KEEP;
        pl.host_alloc = be->host_alloc;
        pl.host_free = be->host_free;
        st = sq_loader_create(ds, &pl, &f->loader);
        if (st == SQ_OK && make_stages(f, 0)) {
            f->direct = 1;
            *feed = f;
            *loader = f->loader;
            return SQ_OK;
        }
        if (st != SQ_OK && st != SQ_ENOMEM) { /* the options themselves are wrong */
            sq_feeder_free(f);
            return st;
        }
        /* pinned or device memory short: the copying route below, with the same results */
        sq_loader_free(f->loader);
        f->loader = NULL;
    }
    if ((st = sq_loader_create(ds, lo, &f->loader))) {
        sq_feeder_free(f);
        return st;
    }
    if (sq_feeder_staging(be)) make_stages(f, 1);
    *feed = f;
    *loader = f->loader;
    return SQ_OK;
}

void sq_feeder_bind(sq_feeder *f, sq_model *m)
{
    for (int i = 0; i < f->nbound; i++)
        if (f->bound[i] == m) return;
    if (f->nbound == SQ_FEEDER_MAX_MODELS) {
        fprintf(stderr, "sqakd: internal error: more than %d models bound to one feeder\n", SQ_FEEDER_MAX_MODELS);
        abort();
    }
    f->bound[f->nbound] = m;
    f->saved[f->nbound++] = m->nodes[0].out;
    m->nodes[0].out = f->x;
}

void sq_feeder_put(sq_feeder *f, const float *x, const int32_t *y, int nb)
{
    const sq_backend *be = f->be;
    const size_t xb = f->sample_bytes * nb, yb = (size_t)nb * sizeof(int32_t);
    if (f->direct) {
        /* x and y are the loader's pinned slots, kept (SQ_FEEDER_KEEP) until these uploads are
           complete: every put of a labelled feeder must upload labels, or the labels stage's
           puts would fall behind the loader's slots */
        if (f->stage_y && !y) {
            fprintf(stderr, "sqakd: internal error: a labelled feeder put without labels\n");
            abort();
        }
        be->copy_d2d(f->x, be->stage_put_pinned(f->stage_x, x, xb), xb);
        if (y) be->copy_d2d(f->y, be->stage_put_pinned(f->stage_y, y, yb), yb);
        return;
    }
    if (f->stage_x) {
        be->copy_d2d(f->x, be->stage_put(f->stage_x, x, xb), xb);
        if (y) be->copy_d2d(f->y, be->stage_put(f->stage_y, y, yb), yb);
        return;
    }
    be->copy_h2d(f->x, x, xb);
    if (y) be->copy_h2d(f->y, y, yb);
}

void sq_feeder_free(sq_feeder *f)
{
    if (!f) return;
    for (int i = f->nbound - 1; i >= 0; i--) f->bound[i]->nodes[0].out = f->saved[i];
    /* the stages wait for the device: after them no upload reads the loader's slots */
    if (f->stage_x) f->be->stage_free(f->stage_x);
    if (f->stage_y) f->be->stage_free(f->stage_y);
    sq_loader_free(f->loader);
    if (f->x) f->be->free(f->x);
    if (f->y) f->be->free(f->y);
    free(f);
}
