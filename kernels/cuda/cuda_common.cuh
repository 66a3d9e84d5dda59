/* cuda_common.cuh: device helpers shared by the .cu files of the CUDA backend: launch geometry,
   warp/block reductions (fixed order, hence deterministic) and the one-launch cross-block
   reduction through the context's partial buffer (see context.h). */
#ifndef SQAKD_CUDA_COMMON_CUH
#define SQAKD_CUDA_COMMON_CUH

#include <stdint.h>
#include "cuda_ops.h"

#define SQ_CUDA_BLOCK 256

/* grid-stride loop over size_t indices */
#define SQ_GRID_LOOP(i, n)                                                                       \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                      \
         i += (size_t)gridDim.x * blockDim.x)

/* grid for a grid-stride elementwise loop over n items (at least 1 block) */
static inline unsigned sq_grid_ew(size_t n, int block = SQ_CUDA_BLOCK)
{
    size_t want = (n + (size_t)block - 1) / (size_t)block;
    size_t cap = (size_t)sq_cuda_sm_count() * 16;
    if (want > cap) want = cap;
    return want ? (unsigned)want : 1u;
}

/* grid for a reducing kernel: depends on n only (not on the GPU), so the reduction tree and
   hence the rounding are the same on every device; at most SQ_CUDA_MAX_BLOCKS */
static inline unsigned sq_grid_reduce(size_t n, int items_per_thread = 4, int block = SQ_CUDA_BLOCK)
{
    size_t per_block = (size_t)block * (size_t)items_per_thread;
    size_t want = (n + per_block - 1) / per_block;
    if (want > SQ_CUDA_MAX_BLOCKS) want = SQ_CUDA_MAX_BLOCKS;
    return want ? (unsigned)want : 1u;
}

/* Launch geometry of the streaming kernels (fake-quant, KL, cross-entropy, argmax), whose
   grid-stride loops cover whatever grid they get (docs/gpu-validation.md, runs 4 and 5; the
   variants that lost, stride and flat grids and a block cap for reducing launches, are in
   kernels/lab/grid). sq_grid_streaming: blocks for a launch whose work needs `want` blocks of
   one trip each. Elementwise launches take them all (one trip per thread, so no last partial
   wave); reducing launches take about 4 trips per block but never fewer blocks than
   min(want, SQ_CUDA_MAX_BLOCKS): max(min(want, SQ_CUDA_MAX_BLOCKS), min(want / 4, cap)).
   Reducing grids depend on the size and the device only, so sums are deterministic. cap:
   sq_cuda_grid_cap (the partial buffer's slots for reducing launches; lower under a test's
   cap). */
static inline unsigned sq_grid_streaming(size_t want, bool reducing)
{
    const size_t cap = sq_cuda_grid_cap(reducing);
    size_t g;
    if (!reducing) {
        g = want < cap ? want : cap;
    } else {
        const size_t s = want < SQ_CUDA_MAX_BLOCKS ? want : SQ_CUDA_MAX_BLOCKS, q = (want + 3) / 4;
        g = q < cap ? q : cap;
        if (g < s) g = s < cap ? s : cap;
    }
    return g ? (unsigned)g : 1u;
}

/* blocks for a reducing launch run as one wave of resident blocks, SMs x blocks_per_sm (the
   kernel's occupancy), each looping over its share (the fake-quant backward, run 5); at most
   `want` and the cap */
static inline unsigned sq_grid_wave(size_t want, int blocks_per_sm)
{
    size_t wave = (size_t)sq_cuda_sm_count() * (size_t)(blocks_per_sm > 0 ? blocks_per_sm : 1);
    const size_t cap = sq_cuda_grid_cap(1);
    if (wave > cap) wave = cap;
    const size_t g = want < wave ? want : wave;
    return g ? (unsigned)g : 1u;
}

static inline bool sq_aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

template <typename T> __device__ __forceinline__ T sq_warp_sum(T v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

template <typename T> __device__ __forceinline__ T sq_warp_max(T v)
{
    for (int o = 16; o > 0; o >>= 1) {
        T u = __shfl_down_sync(0xffffffffu, v, o);
        v = u > v ? u : v;
    }
    return v;
}

/* block-wide sum, fixed tree; result valid in thread 0. blockDim.x multiple of 32, <= 1024.
   Contains __syncthreads: every thread of the block must call it. */
template <typename T> __device__ T sq_block_sum(T v)
{
    __shared__ T warp_part[32];
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = sq_warp_sum(v);
    __syncthreads(); /* warp_part may still be read by a previous call */
    if (lane == 0) warp_part[wid] = v;
    __syncthreads();
    T r = 0;
    if (wid == 0) {
        r = lane < nw ? warp_part[lane] : (T)0;
        r = sq_warp_sum(r);
    }
    return r;
}

/* as sq_block_sum, but the result is broadcast to every thread */
template <typename T> __device__ T sq_block_sum_all(T v)
{
    __shared__ T total;
    T r = sq_block_sum(v);
    if (threadIdx.x == 0) total = r;
    __syncthreads();
    return total;
}

template <typename T> __device__ T sq_block_max(T v)
{
    __shared__ T warp_part[32];
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = sq_warp_max(v);
    __syncthreads();
    if (lane == 0) warp_part[wid] = v;
    __syncthreads();
    T r = v;
    if (wid == 0) {
        r = lane < nw ? warp_part[lane] : warp_part[0];
        r = sq_warp_max(r);
    }
    return r;
}

/* One-launch cross-block reduction. Every thread of every block calls it; `mine` (valid in
   thread 0) holds this block's W partial values. Returns true in EVERY thread of the last block
   to arrive, with the W totals (sum, or max when IS_MAX) in `total` valid in thread 0; the
   partials are combined in block order, so the result does not depend on scheduling. */
template <int W, bool IS_MAX = false>
__device__ bool sq_grid_reduce_last(const double (&mine)[W], double (&total)[W], double *partials,
                                    unsigned *counter)
{
    __shared__ bool last;
    if (threadIdx.x == 0) {
        for (int j = 0; j < W; j++) partials[(size_t)blockIdx.x * SQ_CUDA_PARTIAL_WIDTH + j] = mine[j];
        __threadfence();
        unsigned prev = atomicAdd(counter, 1u);
        last = prev == gridDim.x - 1;
    }
    __syncthreads();
    if (!last) return false;
    __threadfence();
    for (int j = 0; j < W; j++) {
        double acc = IS_MAX ? -INFINITY : 0.0;
        for (unsigned b = threadIdx.x; b < gridDim.x; b += blockDim.x) {
            double v = __ldcg(partials + (size_t)b * SQ_CUDA_PARTIAL_WIDTH + j);
            acc = IS_MAX ? (v > acc ? v : acc) : acc + v;
        }
        total[j] = IS_MAX ? sq_block_max(acc) : sq_block_sum(acc);
    }
    if (threadIdx.x == 0) *counter = 0u;
    return true;
}

#endif
