/* params.c: named access to a model's tensors, weight initialisation, teacher->student copy and
   model size at its bit-widths. */
#include "model_internal.h"
#include "sqakd/rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

int sq_model_find_param(const sq_model *m, const char *name)
{
    for (int i = 0; i < m->nparams; i++)
        if (!strcmp(m->params[i].name, name)) return i;
    return -1;
}

sq_status sq_model_get(const sq_model *m, const char *name, float *host, size_t numel)
{
    int id = sq_model_find_param(m, name);
    if (id < 0 || m->params[id].numel != numel) {
        sq_set_error("model %s has no tensor '%s' of %zu elements", m->arch, name, numel);
        return SQ_EARG;
    }
    m->be->copy_d2h(host, sq_model_param_ptr(m, id), numel * sizeof(float));
    return SQ_OK;
}

sq_status sq_model_set(sq_model *m, const char *name, const float *host, size_t numel)
{
    int id = sq_model_find_param(m, name);
    if (id < 0 || m->params[id].numel != numel) {
        sq_set_error("model %s has no tensor '%s' of %zu elements", m->arch, name, numel);
        return SQ_EARG;
    }
    m->be->copy_h2d(sq_model_param_ptr(m, id), host, numel * sizeof(float));
    return SQ_OK;
}

static void fill_normal(float *v, size_t n, float std, uint64_t *rng)
{
    for (size_t i = 0; i < n; i++) v[i] = std * sq_rand_normal(rng);
}

void sq_model_init_weights(sq_model *m, uint64_t seed)
{
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 12345;
    int vgg = !strncmp(m->arch, "vgg", 3);
    for (int i = 0; i < m->nnodes; i++) {
        const sq_node *n = &m->nodes[i];
        if (n->op != SQ_NODE_CONV && n->op != SQ_NODE_LINEAR && n->op != SQ_NODE_BN) continue;
        const sq_param *pw = &m->params[n->pw];
        float *w = sq_xmalloc(pw->numel * sizeof(float));
        float *b = n->pb >= 0 ? sq_xcalloc(m->params[n->pb].numel, sizeof(float)) : NULL;
        size_t nb = n->pb >= 0 ? m->params[n->pb].numel : 0;
        size_t fan_in = pw->numel / (size_t)pw->shape[0];
        if (n->op == SQ_NODE_BN) {
            for (size_t k = 0; k < pw->numel; k++) w[k] = 1.0f;
        } else if (vgg && n->op == SQ_NODE_CONV) {
            fill_normal(w, pw->numel, sqrtf(2.0f / (float)(n->kh * n->kw * n->c)), &rng);
        } else if (vgg) {
            fill_normal(w, pw->numel, 0.01f, &rng);
        } else {
            fill_normal(w, pw->numel, sqrtf(2.0f / (float)fan_in), &rng);
            /* PyTorch default bias init for the non-VGG models: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
            for (size_t k = 0; k < nb; k++)
                b[k] = (2.0f * sq_rand_uniform(&rng) - 1.0f) / sqrtf((float)fan_in);
        }
        m->be->copy_h2d(sq_model_param_ptr(m, n->pw), w, pw->numel * sizeof(float));
        if (b) m->be->copy_h2d(sq_model_param_ptr(m, n->pb), b, nb * sizeof(float));
        if (n->op == SQ_NODE_BN) {
            m->be->fill(n->c, 1.0f, sq_model_param_ptr(m, n->prv));
            m->be->memset0(sq_model_param_ptr(m, n->prm), n->c * sizeof(float));
        }
        free(w);
        free(b);
    }
}

int sq_model_copy_matching(sq_model *dst, const sq_model *src)
{
    int copied = 0;
    for (int i = 0; i < dst->nparams; i++) {
        const sq_param *d = &dst->params[i];
        if (d->kind == SQ_PT_QUANT) continue;
        int j = sq_model_find_param(src, d->name);
        if (j < 0 || src->params[j].numel != d->numel || src->params[j].kind != d->kind) continue;
        float *tmp = sq_xmalloc(d->numel * sizeof(float));
        src->be->copy_d2h(tmp, sq_model_param_ptr(src, j), d->numel * sizeof(float));
        dst->be->copy_h2d(sq_model_param_ptr(dst, i), tmp, d->numel * sizeof(float));
        free(tmp);
        copied++;
    }
    for (int i = 0; i < dst->nnodes && i < src->nnodes; i++)
        if (dst->nodes[i].op == SQ_NODE_BN) dst->nodes[i].bn_tracked = src->nodes[i].bn_tracked;
    return copied;
}

double sq_model_size_bytes(const sq_model *m)
{
    double bytes = 0;
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i].kind != SQ_PT_BUFFER) bytes += 4.0 * m->params[i].numel;
    for (int i = 0; i < m->nnodes; i++) {
        const sq_node *n = &m->nodes[i];
        if (n->quant) bytes -= m->params[n->pw].numel * (4.0 - n->qw.bits / 8.0);
    }
    return bytes;
}
