/* feeder.c: input staging and the one input buffer of a run's models (feeder.h). */
#include "feeder.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sq_feeder_staging(const sq_backend *be)
{
    return be->stage_new && be->stage_put && be->stage_free && be->options()->stage;
}

sq_feeder *sq_feeder_new(const sq_model *m, int batch, int labels, int staged)
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
    if (staged && sq_feeder_staging(be)) {
        /* pinned memory is a scarce resource: without it the batches are copied directly, with
           the same results */
        f->stage_x = be->stage_new(f->sample_bytes * batch, 1);
        f->stage_y = f->stage_x && labels ? be->stage_new((size_t)batch * sizeof(int32_t), 1) : NULL;
        if (labels && !f->stage_y && f->stage_x) {
            be->stage_free(f->stage_x);
            f->stage_x = NULL;
        }
    }
    return f;
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
    if (f->stage_x) f->be->stage_free(f->stage_x);
    if (f->stage_y) f->be->stage_free(f->stage_y);
    if (f->x) f->be->free(f->x);
    if (f->y) f->be->free(f->y);
    free(f);
}
