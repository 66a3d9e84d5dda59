/* conv_bgemm.c: dense convolutions over blocks of images, for the passes where the per-image
   implicit GEMM (conv_igemm.c) leaves the vector lanes idle: its output chunks are 8 positions
   of one row, so a 4-wide row (the 4x4 maps of VGG's last layers, 512 channels) fills half of
   each, and its weight gradient, an outer product per image, runs at half the forward's rate.
   Here B images are unfolded side by side (conv.c's im2col, C*R*S rows x B*OH*OW columns, about
   BG_COLS columns), so every chunk of 8 columns is full:
     forward      Y_blk  = W * COL_blk with the implicit GEMM's own kernel (sq_cpu_fast_igemm:
                  from the bias, one FMA per tap in (c, r, s) order, padding taps adding +0),
                  so y is bit for bit the implicit GEMM's (the PyTorch twin, tools/torch_quant.py,
                  emulates that chain), then scattered to y (N, K, OHW)
     weight grad  gW    += GY_blk (K x cols) * COL_blk^T       (OpenBLAS; per-thread partial)
     input grad   COL    = W^T * GY_blk (OpenBLAS), then col2im added into gx
   Threads take contiguous runs of blocks; the weight-gradient partials are added in thread
   order, so the gradients are bit-identical for a given thread count (as conv.c's path), not
   across thread counts. docs/results.md (issue 21) has the measurements that chose the shapes. */
#include "cpu_ops.h"
#include <omp.h>
#include <string.h>

/* columns of one block: enough for OpenBLAS to run near its peak, small enough that the block
   stays in L2/L3 */
#define BG_COLS 256
/* the forward's blocks are smaller: its kernel reads the whole block once per 4 output channels,
   so the block should stay in L2 (this many floats) */
#define BG_FWD_FLOATS 65536

typedef struct bg_geo {
    int crs, ohw, hw, bimg, cols, nblk, nch;
    int bimg_f, cols_f, nblk_f;             /* the forward's blocks */
    size_t apack, ints;                     /* shared: packed weights (forward), tap offsets */
    size_t col, tmp, part, chunks, per_thread;
} bg_geo;

static bg_geo bg_geometry(const sq_conv_shape *cs)
{
    bg_geo g;
    g.crs = cs->c * cs->r * cs->s;
    g.ohw = cs->oh * cs->ow;
    g.hw = cs->h * cs->w;
    g.bimg = g.ohw >= BG_COLS ? 1 : BG_COLS / g.ohw;
    if (g.bimg > cs->n) g.bimg = cs->n;
    if (g.bimg < 1) g.bimg = 1;
    g.cols = g.bimg * g.ohw;
    g.nblk = (cs->n + g.bimg - 1) / g.bimg;
    g.nch = (g.cols + 7) / 8;
    g.bimg_f = BG_FWD_FLOATS / g.crs / g.ohw;
    if (g.bimg_f > g.bimg) g.bimg_f = g.bimg;
    if (g.bimg_f < 1) g.bimg_f = 1;
    g.cols_f = g.bimg_f * g.ohw;
    g.nblk_f = (cs->n + g.bimg_f - 1) / g.bimg_f;
    g.apack = sq_pad64((size_t)(cs->k + SQ_FAST_MR - 1) / SQ_FAST_MR * SQ_FAST_MR * g.crs);
    g.ints = sq_pad64((size_t)g.crs);
    g.col = sq_pad64((size_t)g.crs * g.cols + 8); /* the kernel reads all 8 lanes of a chunk */
    g.tmp = sq_pad64((size_t)cs->k * g.cols);
    g.part = sq_pad64((size_t)cs->k * g.crs);
    g.chunks = sq_pad64(3 * (size_t)g.nch);
    g.per_thread = g.col + g.tmp + g.part + g.chunks;
    return g;
}

/* Which passes take this path: dense convolutions whose rows are narrower than the implicit
   GEMM's 8-position chunk (all passes), and, for wide layers, the weight gradient (measured:
   docs/results.md). Depthwise and grouped convolutions never. */
int sq_cpu_bgemm_applies(const sq_conv_shape *cs, int pass)
{
#ifndef SQ_HAVE_BLAS
    return 0; /* plain loops instead of OpenBLAS: the per-image paths are faster */
#endif
    if (cs->groups != 1 || cs->n < 1 || !sq_cpu_igemm_applies(cs)) return 0;
    if (cs->ow < 8) return 1;
    return pass == SQ_BG_WGRAD && (size_t)cs->k * cs->c >= 8192;
}

size_t sq_cpu_bgemm_ws_floats(const sq_conv_shape *cs, int threads)
{
    const bg_geo g = bg_geometry(cs);
    return g.apack + g.ints + (size_t)(threads < 1 ? 1 : threads) * g.per_thread;
}

/* thread t's slice of the workspace, after the shared part */
static float *slice(const bg_geo *g, void *ws, int t) { return (float *)ws + g->apack + g->ints + (size_t)t * g->per_thread; }

void sq_cpu_bgemm_fwd(const sq_conv_shape *cs, const float *x, const float *w, const float *b, float *y,
                      void *ws, int nthr)
{
    const bg_geo g = bg_geometry(cs);
    const int K = cs->k;
    if (nthr > g.nblk_f) nthr = g.nblk_f;
    float *apack = ws;
    int *off = (int *)((float *)ws + g.apack);
    sq_cpu_fast_pack_a(K, g.crs, w, g.crs, apack);
    for (int k = 0; k < g.crs; k++) off[k] = k * g.cols_f;
#pragma omp parallel num_threads(nthr)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        float *col = slice(&g, ws, t), *tmp = col + g.col;
        int *ch = (int *)(tmp + g.tmp + g.part);
        const int b0 = (int)((long)g.nblk_f * t / nt), b1 = (int)((long)g.nblk_f * (t + 1) / nt);
        for (int bk = b0; bk < b1; bk++) {
            const int i0 = bk * g.bimg_f, ni = cs->n - i0 < g.bimg_f ? cs->n - i0 : g.bimg_f, cb = ni * g.ohw;
            for (int j = 0; j < ni; j++)
                sq_cpu_im2col(cs, cs->c, x + (size_t)(i0 + j) * cs->c * g.hw, col + (size_t)j * g.ohw, 0, cs->oh,
                              (size_t)g.cols_f);
            /* one row of cb columns in chunks of 8: in and out at the column */
            const int nch = sq_cpu_fast_chunks(1, cb, g.cols_f, g.cols_f, ch, ch + g.nch, ch + 2 * g.nch);
            sq_cpu_fast_igemm(K, g.crs, apack, col, off, nch, ch, ch + g.nch, ch + 2 * g.nch, tmp, (size_t)g.cols_f, b,
                              0);
            for (int j = 0; j < ni; j++)
                for (int o = 0; o < K; o++)
                    memcpy(y + ((size_t)(i0 + j) * K + o) * g.ohw, tmp + (size_t)o * g.cols_f + (size_t)j * g.ohw,
                           sizeof(float) * g.ohw);
        }
    }
}

void sq_cpu_bgemm_bwd(const sq_conv_shape *cs, const float *x, const float *w, const float *gy, float *gx,
                      float *gw, void *ws, int nthr)
{
    const bg_geo g = bg_geometry(cs);
    const int K = cs->k;
    if (nthr > g.nblk) nthr = g.nblk;
#pragma omp parallel num_threads(nthr)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        float *col = slice(&g, ws, t), *tmp = col + g.col, *part = tmp + g.tmp;
        const int b0 = (int)((long)g.nblk * t / nt), b1 = (int)((long)g.nblk * (t + 1) / nt);
        for (int bk = b0; bk < b1; bk++) {
            const int i0 = bk * g.bimg, ni = cs->n - i0 < g.bimg ? cs->n - i0 : g.bimg, cb = ni * g.ohw;
            /* gy of the block side by side: K x cols */
            for (int j = 0; j < ni; j++)
                for (int o = 0; o < K; o++)
                    memcpy(tmp + (size_t)o * g.cols + (size_t)j * g.ohw, gy + ((size_t)(i0 + j) * K + o) * g.ohw,
                           sizeof(float) * g.ohw);
            if (gw) {
                for (int j = 0; j < ni; j++)
                    sq_cpu_im2col(cs, cs->c, x + (size_t)(i0 + j) * cs->c * g.hw, col + (size_t)j * g.ohw, 0, cs->oh, (size_t)g.cols);
                sq_cpu_sgemm(0, 1, K, g.crs, cb, 1.0f, tmp, g.cols, col, g.cols, bk == b0 ? 0.0f : 1.0f, part, g.crs);
            }
            if (gx) {
                sq_cpu_sgemm(1, 0, g.crs, cb, K, 1.0f, w, g.crs, tmp, g.cols, 0.0f, col, g.cols);
                for (int j = 0; j < ni; j++)
                    sq_cpu_col2im_add(cs, cs->c, col + (size_t)j * g.ohw, gx + (size_t)(i0 + j) * cs->c * g.hw, 0, cs->oh,
                                      (size_t)g.cols);
            }
        }
        if (gw) {
            /* gw += the threads' partials, in thread order */
            const long nw = (long)K * g.crs;
#pragma omp barrier
#pragma omp for schedule(static)
            for (long e = 0; e < nw; e++) {
                float acc = gw[e];
                for (int u = 0; u < nt; u++)
                    if ((long)g.nblk * u / nt < (long)g.nblk * (u + 1) / nt)
                        acc += slice(&g, ws, u)[g.col + g.tmp + e];
                gw[e] = acc;
            }
        }
    }
}
