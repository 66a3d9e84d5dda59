/* eval.c: top-1/top-5/per-class accuracy (when labels exist) and teacher agreement / KL (when a
   teacher is given) of a model in eval mode. Each batch is put once into a feeder's input buffer
   (feeder.h) that the model and the teacher both read. */
#include "sqakd/teacher_prec.h"
#include "sqakd/train.h"
#include "feeder.h"
#include "train_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void log_softmax(const float *z, int k, double *out)
{
    double mx = z[0];
    for (int j = 1; j < k; j++) if (z[j] > mx) mx = z[j];
    double s = 0;
    for (int j = 0; j < k; j++) s += exp(z[j] - mx);
    double ls = log(s) + mx;
    for (int j = 0; j < k; j++) out[j] = z[j] - ls;
}

static int argmax(const float *z, int k)
{
    int b = 0;
    for (int j = 1; j < k; j++) if (z[j] > z[b]) b = j;
    return b;
}

sq_status sq_evaluate(sq_model *m, sq_model *teacher, const sq_dataset *ds, int batch, sq_eval_result *r)
{
    return sq_evaluate_logits(m, teacher, ds, batch, r, NULL);
}

sq_status sq_evaluate_logits(sq_model *m, sq_model *teacher, const sq_dataset *ds, int batch, sq_eval_result *r,
                             float *logits)
{
    return sq_evaluate_kept(m, teacher, ds, batch, r, logits, NULL);
}

sq_status sq_evaluate_kept(sq_model *m, sq_model *teacher, const sq_dataset *ds, int batch, sq_eval_result *r,
                           float *logits, float **teacher_logits)
{
    memset(r, 0, sizeof *r);
    double t0 = sq_now();
    int k = m->classes;
    if (batch > m->batch) batch = m->batch;
    if (teacher && batch > teacher->batch) batch = teacher->batch;
    if (ds->c != m->in_c || ds->h != m->in_h || ds->w != m->in_w) {
        sq_set_error("data %s is %dx%dx%d but the model expects %dx%dx%d", ds->name, ds->c, ds->h, ds->w,
                     m->in_c, m->in_h, m->in_w);
        return SQ_EARG;
    }
    if (ds->labels && ds->classes > k) {
        sq_set_error("data %s has %d classes but the model has %d outputs", ds->name, ds->classes, k);
        return SQ_EARG;
    }
    /* the teacher's logits of the whole split, kept by the caller: read (kept != NULL on entry),
       or filled now (fill) */
    const float *kept = teacher && teacher_logits ? *teacher_logits : NULL;
    float *fill = NULL;
    if (teacher && teacher_logits && !kept && (double)ds->n * k * sizeof(float) <= 512.0 * 1024 * 1024)
        fill = malloc((size_t)ds->n * k * sizeof(float)); /* NULL: not kept, the teacher runs each time */
    sq_loader_opts lo = {.batch = batch, .shuffle = 0, .crop_pad = 0, .flip = 0, .drop_last = 0, .seed = 0};
    sq_loader *l;
    sq_feeder *feed;
    sq_status st = sq_feeder_open(m, batch, 0, ds, &lo, &feed, &l); /* the loader is the feeder's */
    if (st) return st;
    sq_loader_start_epoch(l, 0);
    sq_feeder_bind(feed, m);
    if (teacher && !kept) sq_feeder_bind(feed, teacher);
    float *zs = sq_xmalloc((size_t)batch * k * sizeof(float));
    float *zt = sq_xmalloc((size_t)batch * k * sizeof(float));
    double *ls = sq_xmalloc(k * sizeof(double)), *lt = sq_xmalloc(k * sizeof(double));
    long c1 = 0, c5 = 0, agree = 0;
    double kl = 0;
    const float *x;
    const int32_t *y;
    int nb;
    while ((nb = sq_loader_next(l, &x, &y)) > 0) {
        sq_feeder_put(feed, x, NULL, nb);
        float *out = sq_model_forward(m, nb, 0);
        m->be->copy_d2h(zs, out, (size_t)nb * k * sizeof(float));
        if (logits) memcpy(logits + (size_t)r->n * k, zs, (size_t)nb * k * sizeof(float));
        if (kept) {
            memcpy(zt, kept + (size_t)r->n * k, (size_t)nb * k * sizeof(float));
        } else if (teacher) {
            float *tout = sq_teacher_forward(teacher, nb);
            teacher->be->copy_d2h(zt, tout, (size_t)nb * k * sizeof(float));
            if (fill) memcpy(fill + (size_t)r->n * k, zt, (size_t)nb * k * sizeof(float));
        }
        for (int i = 0; i < nb; i++) {
            const float *z = zs + (size_t)i * k;
            int pred = argmax(z, k);
            if (ds->labels) {
                int lab = y[i];
                int rank = 0;
                for (int j = 0; j < k; j++) rank += z[j] > z[lab] || (z[j] == z[lab] && j < lab);
                c1 += pred == lab;
                c5 += rank < 5;
                if (lab < SQ_MAX_CLASSES) { r->per_class_n[lab]++; r->per_class[lab] += pred == lab; }
            }
            if (teacher) {
                const float *t = zt + (size_t)i * k;
                agree += argmax(t, k) == pred;
                log_softmax(t, k, lt);
                log_softmax(z, k, ls);
                double s = 0;
                for (int j = 0; j < k; j++) s += exp(lt[j]) * (lt[j] - ls[j]);
                kl += s;
            }
        }
        r->n += nb;
    }
    sq_feeder_free(feed);
    if (nb < 0) { /* the loader's error: a sample that does not decode */
        free(zs); free(zt); free(ls); free(lt); free(fill);
        return (sq_status)-nb;
    }
    if (fill) {
        if (r->n == ds->n) *teacher_logits = fill; /* the caller frees it */
        else free(fill);
    }
    free(zs); free(zt); free(ls); free(lt);
    r->classes = k;
    r->top1 = r->top5 = r->agreement = r->kl = -1;
    if (r->n && ds->labels) {
        r->top1 = 100.0 * c1 / r->n;
        r->top5 = 100.0 * c5 / r->n;
        for (int j = 0; j < k && j < SQ_MAX_CLASSES; j++)
            r->per_class[j] = r->per_class_n[j] ? 100.0 * r->per_class[j] / r->per_class_n[j] : -1;
    }
    if (r->n && teacher) {
        r->agreement = 100.0 * agree / r->n;
        r->kl = kl / r->n;
    }
    r->seconds = sq_now() - t0;
    return SQ_OK;
}
