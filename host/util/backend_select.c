/* backend_select.c: picks a backend by name ("auto" | "cpu" | "cuda"); the out-of-memory
   message shared by every place that plans backend memory for a batch. */
#include "sqakd/backend.h"
#include <stdio.h>
#include <string.h>

#ifndef SQ_HAVE_CUDA
const sq_backend *sq_backend_cuda(void)
{
    sq_set_error("this sqakd was built without CUDA (nvcc not found at build time); use --device cpu");
    return NULL;
}
#endif

const sq_backend *sq_backend_get(const char *name)
{
    if (!name || !strcmp(name, "auto")) {
        const sq_backend *b = sq_backend_cuda();
        return b ? b : sq_backend_cpu();
    }
    if (!strcmp(name, "cpu")) return sq_backend_cpu();
    if (!strcmp(name, "cuda")) {
        const sq_backend *b = sq_backend_cuda();
        if (!b) {
            char msg[900];
            snprintf(msg, sizeof msg, "--device cuda: no usable GPU (%s)", sq_last_error());
            sq_set_error("%s", msg);
        }
        return b;
    }
    sq_set_error("unknown --device '%s' (expected auto, cpu or cuda)", name);
    return NULL;
}

/* "1.2 GiB" or, below one GiB, "350 MiB" */
static void fmt_bytes(char *buf, size_t cap, double bytes)
{
    if (bytes >= 1073741824.0) snprintf(buf, cap, "%.1f GiB", bytes / 1073741824.0);
    else snprintf(buf, cap, "%.0f MiB", bytes / 1048576.0 < 1 ? 1 : bytes / 1048576.0);
}

sq_status sq_backend_oom_error(const sq_backend *be, double bytes, const char *what, int batch,
                               const char *advice)
{
    char need[32], avail[64] = "";
    size_t fr = 0, tot = 0;
    fmt_bytes(need, sizeof need, bytes);
    if (be->mem_info && be->mem_info(&fr, &tot) == 0 && tot > 0)
        snprintf(avail, sizeof avail, " (free %.1f of %.1f GiB)", fr / 1073741824.0, tot / 1073741824.0);
    sq_set_error("out of %s memory allocating %s for %s at batch %d%s: %s", be->is_device ? "GPU" : be->name,
                 need, what ? what : "the model", batch, avail, advice ? advice : "lower --batch");
    return SQ_ENOMEM;
}

sq_status sq_conv_shape_init(sq_conv_shape *cs, int n, int c, int h, int w, int k, int r, int s,
                             int stride, int pad, int groups)
{
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || k <= 0 || r <= 0 || s <= 0 || stride <= 0 ||
        pad < 0 || groups <= 0 || c % groups || k % groups) {
        sq_set_error("impossible conv shape n=%d c=%d h=%d w=%d k=%d r=%d s=%d stride=%d pad=%d groups=%d",
                     n, c, h, w, k, r, s, stride, pad, groups);
        return SQ_EARG;
    }
    cs->n = n; cs->c = c; cs->h = h; cs->w = w; cs->k = k; cs->r = r; cs->s = s;
    cs->stride = stride; cs->pad = pad; cs->groups = groups;
    cs->oh = (h + 2 * pad - r) / stride + 1;
    cs->ow = (w + 2 * pad - s) / stride + 1;
    if (cs->oh <= 0 || cs->ow <= 0) {
        sq_set_error("conv output would be empty: input %dx%d kernel %dx%d pad %d", h, w, r, s, pad);
        return SQ_EARG;
    }
    return SQ_OK;
}
