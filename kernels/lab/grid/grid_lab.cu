/* grid_lab.cu: the launch geometries of the streaming kernels that lost to the shipped one
   (grid_lab.h; docs/gpu-validation.md, runs 3 - 5). The shipped kernels are compiled here once
   more, from their own sources, with the two geometry functions of cuda_common.cuh
   (sq_grid_streaming, sq_grid_wave) replaced by the lab's and their entry points renamed
   (lab_*), so the lab times and checks exactly the shipped kernels on other grids. */
#include "../../cuda/cuda_common.cuh"
#include "grid_lab.h"

static int g_mode = LAB_GRID_AUTO;
static unsigned g_reduce_blocks;

/* blocks for a launch whose work needs `want` blocks of one trip each */
static unsigned lab_grid_streaming(size_t want, bool reducing)
{
    const size_t rb = reducing ? g_reduce_blocks : 0;
    if (g_mode == LAB_GRID_AUTO && !rb) return sq_grid_streaming(want, reducing);
    size_t g;
    if (rb) {
        g = want < rb ? want : rb;
    } else if (g_mode == LAB_GRID_STRIDE) {
        const size_t cap = reducing ? (size_t)SQ_CUDA_MAX_BLOCKS : (size_t)sq_cuda_sm_count() * 16;
        g = want < cap ? want : cap;
    } else { /* flat */
        const size_t cap = sq_cuda_grid_cap(reducing);
        g = want < cap ? want : cap;
    }
    return g ? (unsigned)g : 1u;
}

/* the fake-quant backward's reducing launch: one wave under auto (shipped), else the mode's
   reducing grid, as before run 5 */
static unsigned lab_grid_wave(size_t want, int blocks_per_sm)
{
    if (g_mode == LAB_GRID_AUTO && !g_reduce_blocks) return sq_grid_wave(want, blocks_per_sm);
    return lab_grid_streaming(want, true);
}

#define sq_grid_streaming lab_grid_streaming
#define sq_grid_wave lab_grid_wave
#define sq_cuda_fakequant_fwd lab_fakequant_fwd
#define sq_cuda_fakequant_bwd lab_fakequant_bwd
#define sq_cuda_fakequant_scaled_fwd lab_fakequant_scaled_fwd
#define sq_cuda_fakequant_scaled_bwd lab_fakequant_scaled_bwd
#define sq_cuda_absscale_fwd lab_absscale_fwd
#define sq_cuda_absscale_bwd lab_absscale_bwd
#define sq_cuda_div_check lab_div_check
#define sq_cuda_kl_fwd_bwd lab_kl_fwd_bwd
#define sq_cuda_softmax_ce lab_softmax_ce
#define sq_cuda_argmax lab_argmax
/* the renamed entry points, declared as cuda_ops.h declares the shipped ones (the included
   files call some of them before defining them) */
extern "C" {
void lab_fakequant_fwd(const sq_quant_cfg *cfg, size_t n, const float *x, const float *qp, float *y,
                       float *scratch);
void lab_fakequant_bwd(const sq_quant_cfg *cfg, size_t n, const float *x, const float *qp,
                       const float *gy, float *gx, float *gqp, float *scratch);
void lab_fakequant_scaled_fwd(const sq_quant_cfg *cfg, size_t n, const float *x, const float *qp,
                              const float *s, float *y, float *ys, float *scratch);
void lab_fakequant_scaled_bwd(const sq_quant_cfg *cfg, size_t n, const float *x, const float *qp,
                              const float *s, const float *y, const float *gys, float *gy,
                              float *gx, float *gqp, float *gs, float *scratch);
void lab_absscale_fwd(size_t n, const float *s, const float *z, float *y);
void lab_absscale_bwd(size_t n, const float *s, const float *z, const float *gy, float *gz,
                      float *gs);
void lab_div_check(size_t n, const float *x, const float *d, float *out);
void lab_kl_fwd_bwd(int n, int k, const float *zt, const float *zs, float T, float alpha,
                    float *loss, float *gzs);
void lab_softmax_ce(int n, int k, const float *logits, const int32_t *labels, float scale,
                    float *loss, float *glogits);
void lab_argmax(int n, int k, const float *z, int32_t *out);
}

#include "../../cuda/fakequant.cu"
#include "../../cuda/loss.cu"
#undef sq_grid_streaming
#undef sq_grid_wave

extern "C" void lab_grid_select(int mode, unsigned reduce_blocks)
{
    g_mode = mode == LAB_GRID_STRIDE || mode == LAB_GRID_FLAT ? mode : LAB_GRID_AUTO;
    g_reduce_blocks = reduce_blocks;
}

extern "C" const char *lab_grid_name(int mode)
{
    return mode == LAB_GRID_STRIDE ? "stride" : mode == LAB_GRID_FLAT ? "flat" : "auto";
}

extern "C" const sq_backend *lab_grid_backend(void)
{
    static sq_backend t;
    const sq_backend *g = sq_backend_cuda();
    if (!g) return NULL;
    t = *g;
    t.name = "cuda (launch-geometry variants, kernels/lab)";
    t.fakequant_fwd = lab_fakequant_fwd;
    t.fakequant_bwd = lab_fakequant_bwd;
    t.fakequant_scaled_fwd = lab_fakequant_scaled_fwd;
    t.fakequant_scaled_bwd = lab_fakequant_scaled_bwd;
    t.absscale_fwd = lab_absscale_fwd;
    t.absscale_bwd = lab_absscale_bwd;
    t.kl_fwd_bwd = lab_kl_fwd_bwd;
    t.softmax_ce = lab_softmax_ce;
    t.argmax = lab_argmax;
    return &t;
}
