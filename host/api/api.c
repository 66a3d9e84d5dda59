/* api.c: the C interface of libsqakd.so (include/sqakd/api.h) the Python package binds: running a
   command line in-process, and a model handle for inference (the forward pass of `sqakd infer`
   on a caller's buffer). */
#include "sqakd/api.h"
#include "cli/cli.h"
#include "cli/train_common.h"
#include "sq_version.h"
#include "sqakd/backend.h"
#include "sqakd/checkpoint.h"
#include "sqakd/import.h"
#include "sqakd/json.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sq_api_model {
    sq_model *m;
    const sq_backend *be;
    sq_ckpt_meta meta;
    int threads;          /* > 0: set again before each forward (a command in between may change them) */
    float *xn;            /* one batch, normalised, host */
    char *describe;       /* JSON, made once */
};

int sq_api_version(void) { return SQ_API_VERSION; }

const char *sq_api_version_string(void) { return "sqakd " SQ_VERSION " (git " SQ_GIT_COMMIT ")"; }

const char *sq_api_backends(void)
{
    static char buf[512];
    const char *cuda = sq_backend_cuda_build();
    snprintf(buf, sizeof buf, "%s%s%s", sq_backend_cpu_build(), cuda ? ", " : "", cuda ? cuda : " (built without CUDA)");
    return buf;
}

const char *sq_api_last_error(void) { return sq_last_error(); }

int sq_api_run(int argc, char **argv)
{
    if (argc < 1 || !argv) {
        sq_set_error("sq_api_run: no command line (argv[0] is the program name)");
        return 2;
    }
    for (int i = 0; i < argc; i++)
        if (!argv[i]) {
            sq_set_error("sq_api_run: argv[%d] is NULL", i);
            return 2;
        }
    fflush(stdout);
    fflush(stderr);
    int rc = sq_cli_main(argc, argv);
    /* the command has returned: its run directories are no longer this process's */
    sq_cli_unlock_all();
    fflush(stdout);
    fflush(stderr);
    return rc;
}

sq_api_model *sq_api_model_open(const char *path, const char *device, int batch, int threads, int in_c, int in_h,
                                int in_w)
{
    if (!path || !*path) { sq_set_error("no model path given"); return NULL; }
    if (batch < 1 || batch > 65536) { sq_set_error("batch %d: must be 1..65536", batch); return NULL; }
    if (threads < 0 || threads > 1024) { sq_set_error("threads %d: must be 0..1024", threads); return NULL; }
    if (in_c < 0 || in_h < 0 || in_w < 0 || ((in_c || in_h || in_w) && !(in_c && in_h && in_w))) {
        sq_set_error("input shape %dx%dx%d: give all three of C, H, W (or none)", in_c, in_h, in_w);
        return NULL;
    }
    const sq_backend *be = sq_backend_open(device ? device : "auto", NULL, threads);
    if (!be) return NULL;
    sq_import_opts io;
    memset(&io, 0, sizeof io);
    io.in_c = in_c, io.in_h = in_h, io.in_w = in_w;
    sq_api_model *h = calloc(1, sizeof *h);
    if (!h) { sq_set_error("out of memory"); return NULL; }
    if (sq_model_open(path, &io, be, batch, 0, &h->m, &h->meta)) {
        free(h);
        return NULL;
    }
    h->be = be;
    h->threads = threads;
    h->xn = malloc((size_t)batch * h->m->in_c * h->m->in_h * h->m->in_w * sizeof(float) + 1);
    if (!h->xn) {
        sq_model_free(h->m);
        free(h);
        sq_set_error("out of memory for a batch of %d inputs", batch);
        return NULL;
    }
    sq_jbuf b;
    sq_jbuf_init(&b);
    sq_jbuf_begin_obj(&b);
    sq_jbuf_kv_str(&b, "path", path);
    sq_jbuf_kv_str(&b, "arch", h->meta.arch);
    sq_jbuf_kv_str(&b, "quantizer", sq_quant_kind_name(h->meta.q.kind));
    sq_jbuf_kv_int(&b, "wbits", h->meta.q.kind ? h->meta.q.wbits : 32);
    sq_jbuf_kv_int(&b, "abits", h->meta.q.kind ? h->meta.q.abits : 32);
    sq_jbuf_key(&b, "input");
    sq_jbuf_begin_arr(&b);
    sq_jbuf_int(&b, h->m->in_c), sq_jbuf_int(&b, h->m->in_h), sq_jbuf_int(&b, h->m->in_w);
    sq_jbuf_end_arr(&b);
    sq_jbuf_kv_int(&b, "classes", h->m->classes);
    const int nc = h->m->in_c < 4 ? h->m->in_c : 4;
    sq_jbuf_key(&b, "mean");
    sq_jbuf_begin_arr(&b);
    for (int c = 0; c < nc; c++) sq_jbuf_num(&b, h->meta.mean[c]);
    sq_jbuf_end_arr(&b);
    sq_jbuf_key(&b, "std");
    sq_jbuf_begin_arr(&b);
    for (int c = 0; c < nc; c++) sq_jbuf_num(&b, h->meta.std[c]);
    sq_jbuf_end_arr(&b);
    sq_jbuf_kv_str(&b, "dataset", h->meta.dataset);
    sq_jbuf_kv_str(&b, "role", h->meta.role);
    sq_jbuf_kv_int(&b, "epoch", h->meta.epoch);
    sq_jbuf_kv_num(&b, "metric", h->meta.metric);
    sq_jbuf_kv_str(&b, "device", be->name);
    sq_jbuf_end_obj(&b);
    h->describe = strdup(sq_jbuf_cstr(&b));
    sq_jbuf_free(&b);
    return h;
}

void sq_api_model_shape(const sq_api_model *h, int *c, int *hh, int *w, int *classes)
{
    if (c) *c = h ? h->m->in_c : 0;
    if (hh) *hh = h ? h->m->in_h : 0;
    if (w) *w = h ? h->m->in_w : 0;
    if (classes) *classes = h ? h->m->classes : 0;
}

const char *sq_api_model_describe(const sq_api_model *h) { return h && h->describe ? h->describe : "{}"; }

int sq_api_model_forward(sq_api_model *h, const float *x, long long n, float *logits)
{
    if (!h || !x || !logits || n < 1) {
        sq_set_error("forward: %s", !h ? "no model" : n < 1 ? "no samples" : "NULL buffer");
        return 2;
    }
    sq_model *m = h->m;
    const sq_backend *be = h->be;
    if (h->threads > 0) be->set_threads(h->threads);
    const size_t hw = (size_t)m->in_h * m->in_w, per = (size_t)m->in_c * hw, k = (size_t)m->classes;
    /* the normalisation of `sqakd infer`: the checkpoint's, or an ONNX graph's own leading Sub/Div
       (lifted at import) */
    for (long long b0 = 0; b0 < n; b0 += m->batch) {
        const int nb = (int)(n - b0 < m->batch ? n - b0 : m->batch);
        const float *src = x + (size_t)b0 * per;
        for (int i = 0; i < nb; i++)
            for (int c = 0; c < m->in_c; c++) {
                const float mu = h->meta.mean[c < 4 ? c : 3], sd = h->meta.std[c < 4 ? c : 3];
                const float *s = src + ((size_t)i * m->in_c + c) * hw;
                float *d = h->xn + ((size_t)i * m->in_c + c) * hw;
                for (size_t j = 0; j < hw; j++) d[j] = (s[j] - mu) / sd;
            }
        sq_model_set_input(m, h->xn, nb);
        float *z = sq_model_forward(m, nb, 0);
        be->copy_d2h(logits + (size_t)b0 * k, z, (size_t)nb * k * sizeof(float));
    }
    be->sync();
    if (be->status()) {
        /* reported once: the message stays in sq_last_error, the next call starts clean */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", sq_last_error());
        be->clear_status();
        sq_set_error("forward on %s: %s", be->name, msg);
        return 2;
    }
    return 0;
}

void sq_api_model_close(sq_api_model *h)
{
    if (!h) return;
    sq_model_free(h->m);
    free(h->xn);
    free(h->describe);
    free(h);
}
