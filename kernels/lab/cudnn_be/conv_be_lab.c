/* conv_be_lab.c: an op table whose fp32 convolutions run through cuDNN's backend API
   (conv_be_lab.h). Per shape: the shipped legacy plan (kernels/cuda/cudnn.c, which also serves
   every fallback) and the backend-API plans of cudnn_be.c, built on first use with the options
   in force (tf32, deterministic) and a 1 GiB workspace cap, as the legacy plans. */
#include <stdlib.h>
#include <string.h>
#include "conv_be_lab.h"
#include "cudnn_be_int.h"

#define LAB_BE_WS_CAP ((size_t)1 << 30)

typedef struct lab_entry {
    sq_conv_shape cs;
    lab_be_conv *be; /* NULL: no variant usable */
} lab_entry;

static lab_entry *g_entries;
static int g_n, g_cap;
static void *g_ws; /* for calls with ws = NULL: the largest backend workspace so far */
static size_t g_ws_bytes;
static int g_on = 1;
static sq_backend g_table;

static int same_shape(const sq_conv_shape *a, const sq_conv_shape *b)
{
    return a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w && a->k == b->k &&
           a->r == b->r && a->s == b->s && a->stride == b->stride && a->pad == b->pad &&
           a->groups == b->groups;
}

/* the shape's entry, plans built on first use; NULL when the legacy plan failed (error recorded)
   or host memory is short */
static lab_entry *entry(const sq_conv_shape *cs)
{
    for (int i = 0; i < g_n; i++)
        if (same_shape(&g_entries[i].cs, cs)) return &g_entries[i];
    const sq_cuda_conv_plan *lp = sq_cuda_conv_plan_get(cs);
    if (!lp) return NULL;
    if (g_n == g_cap) {
        int ncap = g_cap ? 2 * g_cap : 32;
        lab_entry *ne = realloc(g_entries, (size_t)ncap * sizeof *ne);
        if (!ne) return NULL;
        g_entries = ne;
        g_cap = ncap;
    }
    const sq_backend_opts *o = sq_cuda_options();
    lab_entry *e = &g_entries[g_n++];
    e->cs = *cs;
    e->be = lab_be_conv_build(lp, o->tf32, o->conv_deterministic, LAB_BE_WS_CAP);
    size_t need = lab_be_conv_ws(e->be);
    if (need > g_ws_bytes) {
        void *nws = NULL;
        if (cudaMalloc(&nws, need) != cudaSuccess) {
            (void)cudaGetLastError();
            lab_be_conv_free(e->be); /* no workspace for it: the legacy calls serve the shape */
            e->be = NULL;
        } else {
            if (g_ws) cudaFree(g_ws);
            g_ws = nws;
            g_ws_bytes = need;
        }
    }
    return e;
}

static size_t lab_conv_ws_bytes(const sq_conv_shape *cs)
{
    size_t legacy = sq_cuda_conv_ws_bytes(cs);
    lab_entry *e = entry(cs);
    size_t be = e ? lab_be_conv_ws(e->be) : 0;
    return be > legacy ? be : legacy;
}

/* the backend workspace for a call: the caller's (conv_ws_bytes of this table) or ours */
static void *be_ws(void *ws) { return ws ? ws : g_ws; }

static void lab_conv2d_fwd(const sq_conv_shape *cs, const float *x, const float *w,
                           const float *b, float *y, void *ws)
{
    lab_entry *e = g_on && !b ? entry(cs) : NULL;
    if (e && lab_be_conv_run(e->be, LAB_BE_FWD, x, w, y, be_ws(ws))) return;
    sq_cuda_conv2d_fwd(cs, x, w, b, y, ws);
}

static void lab_conv_bwd(const sq_conv_shape *cs, const float *x, const float *w,
                         const float *gy, float *gx, float *gw, float *gb, void *ws, int set)
{
    void (*legacy)(const sq_conv_shape *, const float *, const float *, const float *, float *,
                   float *, float *, void *) = set ? sq_cuda_conv2d_bwd_set : sq_cuda_conv2d_bwd;
    lab_entry *e = g_on ? entry(cs) : NULL;
    if (!e) {
        legacy(cs, x, w, gy, gx, gw, gb, ws);
        return;
    }
    if (gx && !lab_be_conv_run(e->be, set ? LAB_BE_BWD_DATA_SET : LAB_BE_BWD_DATA_ACC, gx, w, gy,
                               be_ws(ws)))
        legacy(cs, x, w, gy, gx, NULL, NULL, ws);
    if (gw && !lab_be_conv_run(e->be, LAB_BE_BWD_FILTER_ACC, x, gw, gy, be_ws(ws)))
        legacy(cs, x, w, gy, NULL, gw, NULL, ws);
    if (gb) legacy(cs, x, w, gy, NULL, NULL, gb, ws);
}

static void lab_conv2d_bwd(const sq_conv_shape *cs, const float *x, const float *w,
                           const float *gy, float *gx, float *gw, float *gb, void *ws)
{
    lab_conv_bwd(cs, x, w, gy, gx, gw, gb, ws, 0);
}

static void lab_conv2d_bwd_set(const sq_conv_shape *cs, const float *x, const float *w,
                               const float *gy, float *gx, float *gw, float *gb, void *ws)
{
    lab_conv_bwd(cs, x, w, gy, gx, gw, gb, ws, 1);
}

static int lab_graph_begin(void)
{
    if (g_on) {
        sq_set_error("the cuDNN backend API (kernels/lab/cudnn_be) is not recorded in CUDA graphs: "
                     "its replays drifted from the eager steps on an H100");
        return -1;
    }
    return sq_backend_cuda()->graph_begin();
}

const sq_backend *lab_conv_be_backend(void)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) return NULL;
    g_table = *g;
    g_table.name = "cuda (cuDNN backend API, kernels/lab)";
    g_table.conv_ws_bytes = lab_conv_ws_bytes;
    g_table.conv2d_fwd = lab_conv2d_fwd;
    g_table.conv2d_bwd = lab_conv2d_bwd;
    g_table.conv2d_bwd_set = lab_conv2d_bwd_set;
    g_table.graph_begin = lab_graph_begin;
    return &g_table;
}

void lab_conv_be_enable(int on) { g_on = on != 0; }

int lab_conv_be_variants(const sq_conv_shape *cs)
{
    lab_entry *e = entry(cs);
    int mask = 0;
    for (int k = 0; e && k < LAB_BE_VARIANTS; k++)
        if (lab_be_conv_usable(e->be, k)) mask |= 1 << k;
    return mask;
}
