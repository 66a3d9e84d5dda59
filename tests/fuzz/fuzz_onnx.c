/* fuzz_onnx.c: libFuzzer harness of the ONNX model reader (sq_onnx_read_mem): the input is the
   .onnx file. A model that reads must be self-consistent (dims against numel, values present for
   the type, lookups find what the graph holds) and, when it encodes again (sq_onnx_encode), the
   encoding must read back with the same nodes, initializers and integer values; a failure must
   leave one printable error line. */
#include "fuzz_util.h"
#include "sqakd/onnx.h"

static void check_tensor(const sq_onnx_tensor *t)
{
    size_t n = 1;
    if (t->ndim < 0 || t->ndim > SQ_ONNX_MAX_DIMS) fz_fail("tensor with %d dims", t->ndim);
    for (int d = 0; d < t->ndim; d++) {
        if (t->dims[d] < 0) fz_fail("negative dim read");
        n *= (size_t)t->dims[d];
    }
    if (n != t->numel || n > SQ_ONNX_MAX_NUMEL) fz_fail("numel %zu for dims giving %zu", t->numel, n);
    if (!t->name || (!t->f) == (!t->i)) fz_fail("tensor without a name or with both/neither value arrays");
    volatile double s = 0;
    for (size_t k = 0; k < n; k++) s += t->f ? t->f[k] : (double)t->i[k];
    (void)s;
}

static int same_ints(const sq_onnx_tensor *a, const sq_onnx_tensor *b)
{
    if (a->numel != b->numel || a->dtype != b->dtype || a->ndim != b->ndim || (!a->i) != (!b->i)) return 0;
    return !a->i || !memcmp(a->i, b->i, a->numel * sizeof *a->i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sq_onnx_graph *g = NULL;
    fz_clear_error();
    if (sq_onnx_read_mem(data, size, "in.onnx", &g) != SQ_OK) {
        if (g) fz_fail("failed read left a graph");
        fz_check_error_line();
        return 0;
    }
    if (!g || !g->name || !g->producer) fz_fail("graph without name or producer");
    for (int k = 0; k < g->nnode; k++) {
        const sq_onnx_node *n = &g->node[k];
        if (!n->op || !*n->op || !n->name || !n->domain) fz_fail("node %d without op/name/domain", k);
        for (int j = 0; j < n->nin; j++) if (!n->in[j]) fz_fail("NULL input name");
        for (int j = 0; j < n->nout; j++) if (!n->out[j]) fz_fail("NULL output name");
        for (int j = 0; j < n->nattr; j++) {
            const sq_onnx_attr *a = &n->attr[j];
            if (!sq_onnx_attr_find(n, a->name)) fz_fail("attribute not found by name");
            if (a->type == SQ_ONNX_ATTR_TENSOR) {
                if (!a->t) fz_fail("TENSOR attribute without a tensor");
                check_tensor(a->t);
            }
            if (a->type == SQ_ONNX_ATTR_STRING && !a->s) fz_fail("STRING attribute without a string");
            if ((a->type == SQ_ONNX_ATTR_INTS && !a->ints) || (a->type == SQ_ONNX_ATTR_FLOATS && !a->floats))
                fz_fail("list attribute without its array");
        }
    }
    for (int k = 0; k < g->ninit; k++) {
        check_tensor(&g->init[k]);
        const sq_onnx_tensor *f = sq_onnx_init_find(g, g->init[k].name);
        if (!f || strcmp(f->name, g->init[k].name)) fz_fail("initializer not found by name");
    }
    for (int k = 0; k < g->ninput; k++)
        if (sq_onnx_init_find(g, g->input[k].name)) fz_fail("an initializer is listed as a graph input");
    /* encode and read back */
    void *buf = NULL;
    size_t len = 0;
    fz_clear_error();
    if (sq_onnx_encode(g, &buf, &len) == SQ_OK) {
        sq_onnx_graph *r = NULL;
        if (sq_onnx_read_mem(buf, len, "re-encoded", &r) != SQ_OK) fz_fail("re-encoded model does not read: %s", sq_last_error());
        if (r->nnode != g->nnode || r->ninit != g->ninit || r->ninput != g->ninput || r->noutput != g->noutput)
            fz_fail("re-encoded model differs in counts");
        for (int k = 0; k < g->ninit; k++)
            if (!same_ints(&g->init[k], &r->init[k])) fz_fail("initializer %d changed in the round trip", k);
        sq_onnx_free(r);
        free(buf);
    } else {
        if (buf) fz_fail("failed encode left a buffer");
        fz_check_error_line();
    }
    sq_onnx_free(g);
    return 0;
}
