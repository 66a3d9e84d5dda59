/* squat.c: the SQuaT tap (issue 20, docs/squat.md): which layers' quantized inputs the feature term
   may compare, the default one (the paper's: the input of the last quantized convolution), and
   name lookup with an error that lists the valid names. The loss itself is the backend's
   squat_fwd_bwd, run inside the student's backward (graph.c) as the training step sets it up
   (step.c). */
#include "sqakd/train.h"
#include <stdio.h>
#include <string.h>

int sq_squat_tap_ok(const sq_model *m, int i)
{
    if (i <= 0 || i >= m->nnodes) return 0;
    const sq_node *n = &m->nodes[i];
    if (n->op != SQ_NODE_CONV && n->op != SQ_NODE_LINEAR) return 0;
    if (n->in0 <= 0 || m->nodes[n->in0].op == SQ_NODE_INPUT) return 0; /* the image is no feature */
    if (m->qopts.kind != SQ_QUANT_NONE) return n->quant;
    return n->quantizable && !n->first_or_last;
}

int sq_squat_default_tap(const sq_model *m)
{
    int last = -1, last_conv = -1;
    for (int i = 0; i < m->nnodes; i++) {
        if (!sq_squat_tap_ok(m, i)) continue;
        last = i;
        if (m->nodes[i].op == SQ_NODE_CONV) last_conv = i;
    }
    return last_conv >= 0 ? last_conv : last;
}

void sq_squat_tap_names(const sq_model *m, char *dst, size_t cap)
{
    size_t len = 0;
    if (cap) dst[0] = 0;
    for (int i = 0; i < m->nnodes && cap; i++) {
        if (!sq_squat_tap_ok(m, i)) continue;
        int w = snprintf(dst + len, cap - len, "%s%s", len ? ", " : "", m->nodes[i].name);
        if (w < 0 || (size_t)w >= cap - len) { /* cut at the last whole name */
            char *comma = strrchr(dst, ',');
            if (comma && cap - (size_t)(comma - dst) > 5) strcpy(comma, ", ...");
            return;
        }
        len += (size_t)w;
    }
}

sq_status sq_squat_find_tap(const sq_model *m, const char *name, int *node)
{
    char names[1024];
    if (!name || !*name) {
        *node = sq_squat_default_tap(m);
        if (*node >= 0) return SQ_OK;
        sq_set_error("--loss kl+squat: %s has no quantized layer whose input is a feature (a SQuaT tap)", m->arch);
        return SQ_EARG;
    }
    for (int i = 0; i < m->nnodes; i++)
        if (sq_squat_tap_ok(m, i) && !strcmp(m->nodes[i].name, name)) {
            *node = i;
            return SQ_OK;
        }
    sq_squat_tap_names(m, names, sizeof names);
    char pb[96];
    sq_set_error("--squat-tap '%s' is not a quantized layer of %s: pick one of %s (sqakd info lists them)",
                 sq_printable(name, pb, sizeof pb), m->arch, names[0] ? names : "(none)");
    return SQ_EARG;
}
