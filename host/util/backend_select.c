/* backend_select.c: picks a backend by name ("auto" | "cpu" | "cuda"); the out-of-memory
   message shared by every place that plans backend memory for a batch. */
#include "sqakd/backend.h"
#include <stddef.h>
#include <stdio.h>
#include <string.h>

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

const sq_backend *sq_backend_open(const char *device, const char *opts, int threads)
{
    sq_backend_opts o = SQ_BACKEND_OPTS_DEFAULT;
    if (opts && sq_backend_opts_parse(opts, &o)) return NULL;
    const sq_backend *be = sq_backend_get(device);
    if (!be) return NULL;
    if (be->configure(&o)) return NULL;
    if (threads > 0) be->set_threads(threads);
    return be;
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
    cs->direct = 0;
    cs->oh = (h + 2 * pad - r) / stride + 1;
    cs->ow = (w + 2 * pad - s) / stride + 1;
    if (cs->oh <= 0 || cs->ow <= 0) {
        sq_set_error("conv output would be empty: input %dx%d kernel %dx%d pad %d", h, w, r, s, pad);
        return SQ_EARG;
    }
    return SQ_OK;
}

/* pooled size along one axis (backend.h, sq_pool_shape): floor or ceil of (in + pads - k) / s + 1;
   with ceil_mode a last window that would start in the trailing pad is dropped */
static int pool_out(int in, int k, int s, int pb, int pe, int ceil_mode)
{
    const int span = in + pb + pe - k;
    if (span < 0) return 0;
    int o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + pb) o--;
    return o;
}

sq_status sq_pool_shape_init(sq_pool_shape *ps, int n, int c, int h, int w, int kh, int kw, int sh,
                             int sw, int pad_t, int pad_l, int pad_b, int pad_r, int ceil_mode,
                             int count_include_pad)
{
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || kh <= 0 || kw <= 0 || sh <= 0 || sw <= 0 ||
        pad_t < 0 || pad_l < 0 || pad_b < 0 || pad_r < 0 || pad_t >= kh || pad_b >= kh ||
        pad_l >= kw || pad_r >= kw || (ceil_mode != 0 && ceil_mode != 1) ||
        (count_include_pad != 0 && count_include_pad != 1)) {
        sq_set_error("impossible pool shape n=%d c=%d h=%d w=%d kernel %dx%d strides %d,%d pads "
                     "%d,%d,%d,%d ceil_mode=%d count_include_pad=%d (pads must be smaller than the "
                     "kernel)", n, c, h, w, kh, kw, sh, sw, pad_t, pad_l, pad_b, pad_r, ceil_mode,
                     count_include_pad);
        return SQ_EARG;
    }
    ps->n = n; ps->c = c; ps->h = h; ps->w = w; ps->kh = kh; ps->kw = kw; ps->sh = sh; ps->sw = sw;
    ps->pad_t = pad_t; ps->pad_l = pad_l; ps->pad_b = pad_b; ps->pad_r = pad_r;
    ps->ceil_mode = ceil_mode; ps->count_include_pad = count_include_pad;
    ps->oh = pool_out(h, kh, sh, pad_t, pad_b, ceil_mode);
    ps->ow = pool_out(w, kw, sw, pad_l, pad_r, ceil_mode);
    if (ps->oh <= 0 || ps->ow <= 0) {
        sq_set_error("pool output would be empty: input %dx%d kernel %dx%d", h, w, kh, kw);
        return SQ_EARG;
    }
    return SQ_OK;
}

sq_status sq_pool_shape_square(sq_pool_shape *ps, int n, int c, int h, int w, int k, int stride,
                               int pad)
{
    return sq_pool_shape_init(ps, n, c, h, w, k, k, stride, stride, pad, pad, pad, pad, 0, 1);
}

/* one KEY=VALUE of --backend-opt: 0 or SQ_EARG with the message */
static sq_status opt_one(const char *kv, size_t n, sq_backend_opts *o)
{
    static const struct { const char *key; size_t off; } flags[] = {
        {"graph", offsetof(sq_backend_opts, cuda_graph)},
        {"stage", offsetof(sq_backend_opts, stage)},
        {"tf32", offsetof(sq_backend_opts, tf32)},
        {"deterministic", offsetof(sq_backend_opts, conv_deterministic)},
        {"host-profile", offsetof(sq_backend_opts, host_profile)},
        {"bf16-bwd", offsetof(sq_backend_opts, bf16_bwd)},
    };
    const char *eq = memchr(kv, '=', n);
    size_t kn = eq ? (size_t)(eq - kv) : n;
    const char *v = eq ? eq + 1 : "";
    size_t vn = eq ? n - kn - 1 : 0;
    if (kn == 9 && !strncmp(kv, "conv-algo", 9)) {
        if (vn == 9 && !strncmp(v, "heuristic", 9)) o->conv_find = 0;
        else if (vn == 4 && !strncmp(v, "find", 4)) o->conv_find = 1;
        else goto bad_algo;
        return SQ_OK;
    }
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        if (strlen(flags[i].key) != kn || strncmp(kv, flags[i].key, kn)) continue;
        if (vn != 1 || (v[0] != '0' && v[0] != '1')) {
            sq_set_error("--backend-opt %.*s takes 0 or 1, got '%.*s'", (int)kn, kv, (int)(vn > 40 ? 40 : vn), v);
            return SQ_EARG;
        }
        *(int *)((char *)o + flags[i].off) = v[0] == '1';
        return SQ_OK;
    }
    sq_set_error("--backend-opt: unknown key '%.*s' (graph, stage, tf32, conv-algo, deterministic, host-profile, bf16-bwd)",
                 (int)(kn > 40 ? 40 : kn), kv);
    return SQ_EARG;
bad_algo:
    sq_set_error("--backend-opt conv-algo takes heuristic or find, got '%.*s'", (int)(vn > 40 ? 40 : vn), v);
    return SQ_EARG;
}

sq_status sq_backend_opts_parse(const char *text, sq_backend_opts *o)
{
    const char *p = text ? text : "";
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n == 0) {
            sq_set_error("--backend-opt: empty entry in '%s' (KEY=VALUE,KEY=VALUE)", text);
            return SQ_EARG;
        }
        sq_status st = opt_one(p, n, o);
        if (st) return st;
        p += n;
        if (*p == ',') p++;
    }
    return SQ_OK;
}

void sq_backend_opts_format(const sq_backend_opts *o, char *dst, size_t cap)
{
    snprintf(dst, cap, "graph=%d,stage=%d,tf32=%d,conv-algo=%s,deterministic=%d,host-profile=%d,bf16-bwd=%d",
             o->cuda_graph != 0,
             o->stage != 0, o->tf32 != 0, o->conv_find ? "find" : "heuristic", o->conv_deterministic != 0,
             o->host_profile != 0, o->bf16_bwd != 0);
}
