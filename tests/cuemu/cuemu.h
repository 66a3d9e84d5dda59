/* cuemu.h: force-included (g++ -include) into every .cu file of kernels/cuda when the CUDA backend
   is built for cuemu, the CPU emulation of CUDA (tests/cuemu/README.md). It turns CUDA C++ into
   host C++: the execution-space qualifiers vanish, __shared__ variables become static (blocks run
   one after another, so one copy per variable is one copy per block), threadIdx & co. are
   globals the scheduler sets before it resumes a thread, and __syncthreads / warp shuffles are
   barriers of the fiber scheduler in runtime.cc. Launches `k<<<g, b, s, st>>>(args)` are
   rewritten by tests/cuemu/rewrite.pl into `cuemu::Launch("k", g, b, s, st).run(k, args)`. */
#ifndef SQAKD_CUEMU_H
#define SQAKD_CUEMU_H

#include <cuda_runtime_api.h>
#include <vector_functions.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include "cuemu_rt.h"

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __CUEMU__ 1
/* include/sqakd/quant_math.h: run the device's division formula (__fmul_rn and __fmaf_rn below
   round as the device's do), as device code does */
#define SQ_QM_DEVICE_DIV 1

extern "C" {
extern uint3 cuemu_threadIdx, cuemu_blockIdx;
extern dim3 cuemu_blockDim, cuemu_gridDim;
/* block barrier; warp shuffle of `bytes` (<= 8) bytes at `v`: lane reads lane `src` (its own
   value when src is outside [0, width) or the warp); all are scheduling points */
void cuemu_syncthreads(void);
void cuemu_shfl(void *v, unsigned bytes, unsigned mask, int src, int width);
/* runs kernel body `fn(ctx)` for every thread of grid x block (sequentially, fibers per block) */
void cuemu_launch(dim3 grid, dim3 block, size_t shmem, cudaStream_t stream, void (*fn)(void *),
                  void *ctx, const char *name);
/* lane of the running thread in its warp */
int cuemu_lane(void);
/* makes [p, p + bytes) count as device memory (a __device__ variable) */
void cuemu_register_symbol(const void *p, size_t bytes);
}

#define threadIdx cuemu_threadIdx
#define blockIdx cuemu_blockIdx
#define blockDim cuemu_blockDim
#define gridDim cuemu_gridDim
#define warpSize 32

static inline void __syncthreads(void) { cuemu_syncthreads(); }
static inline void __syncwarp(unsigned mask = 0xffffffffu) { float d = 0; cuemu_shfl(&d, sizeof d, mask, cuemu_lane(), 32); }
static inline void __threadfence(void) {}
static inline void __threadfence_block(void) {}

template <typename T> static inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    static_assert(sizeof(T) <= 8, "cuemu: shuffle of more than 8 bytes");
    int lane = cuemu_lane() % width, src = lane + (int)delta;
    cuemu_shfl(&v, sizeof v, mask, src < width ? cuemu_lane() + (int)delta : -1, width);
    return v;
}
template <typename T> static inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    int lane = cuemu_lane() % width, src = lane - (int)delta;
    cuemu_shfl(&v, sizeof v, mask, src >= 0 ? cuemu_lane() - (int)delta : -1, width);
    return v;
}
/* the guide: with width < 32 a lane may read an EARLIER group; a later one gives its own value */
template <typename T> static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32)
{
    int lane = cuemu_lane(), src = lane ^ lane_mask, top = (lane & ~(width - 1)) + width - 1;
    cuemu_shfl(&v, sizeof v, mask, src <= top && src < 32 ? src : -1, width);
    return v;
}
template <typename T> static inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32)
{
    int base = cuemu_lane() - cuemu_lane() % width;
    cuemu_shfl(&v, sizeof v, mask, base + src_lane % width, width);
    return v;
}

/* round-to-nearest arithmetic intrinsics (never contracted into FMAs: -std=c++17 builds with
   -ffp-contract=off) */
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
template <typename T> static inline T __ldg(const T *p) { return *p; }
template <typename T> static inline T __ldcg(const T *p) { return *p; }
template <typename T> static inline T __ldcs(const T *p) { return *p; }
template <typename T> static inline void __stcs(T *p, T v) { *p = v; }
template <typename T> static inline void __stcg(T *p, T v) { *p = v; }

/* blocks run one at a time and threads only switch at barriers: plain read-modify-writes are
   atomic here */
template <typename T> static inline T atomicAdd(T *p, T v) { T o = *p; *p = o + v; return o; }
template <typename T> static inline T atomicMax(T *p, T v) { T o = *p; *p = v > o ? v : o; return o; }
template <typename T> static inline T atomicMin(T *p, T v) { T o = *p; *p = v < o ? v : o; return o; }
template <typename T> static inline T atomicExch(T *p, T v) { T o = *p; *p = v; return o; }
template <typename T> static inline T atomicCAS(T *p, T c, T v) { T o = *p; if (o == c) *p = v; return o; }
static inline unsigned atomicInc(unsigned *p, unsigned lim) { unsigned o = *p; *p = o >= lim ? 0 : o + 1; return o; }

/* device math intrinsics (fast variants are exact here) */
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __fsqrt_rn(float x) { return sqrtf(x); }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float __int_as_float(int v) { float f; memcpy(&f, &v, 4); return f; }
static inline int __float_as_int(float v) { int i; memcpy(&i, &v, 4); return i; }
static inline unsigned __float_as_uint(float v) { unsigned i; memcpy(&i, &v, 4); return i; }
static inline float __uint_as_float(unsigned v) { float f; memcpy(&f, &v, 4); return f; }
static inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
static inline int __popc(unsigned v) { return __builtin_popcount(v); }
static inline int __clz(int v) { return v ? __builtin_clz((unsigned)v) : 32; }
static inline int __ffs(int v) { return __builtin_ffs(v); }

/* the C++ template of cuda_runtime.h: a __device__ variable is an ordinary global here */
template <typename T> static inline cudaError_t cudaGetSymbolAddress(void **p, const T &symbol)
{
    cuemu_register_symbol(&symbol, sizeof symbol);
    *p = (void *)&symbol;
    return cudaSuccess;
}

/* the C++ template of cuda_runtime.h: cuemu's SMs hold 2048 threads, whatever the kernel */
template <typename F>
static inline cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int *n, F, int block, size_t)
{
    if (block <= 0 || block > 1024) return cudaErrorInvalidValue;
    *n = 2048 / block;
    return cudaSuccess;
}

/* capture.cc: records f on the capturing stream s (cuemu_rt.h has the C side) */
void cuemu_record_fn(cudaStream_t s, std::function<void()> f);

namespace cuemu {

template <typename... P> struct Body {
    void (*kernel)(P...);
    std::tuple<typename std::decay<P>::type...> args;
    static void run(void *self)
    {
        Body *b = static_cast<Body *>(self);
        std::apply(b->kernel, b->args);
    }
};

struct Launch {
    const char *name;
    dim3 grid, block;
    size_t shmem;
    cudaStream_t stream;
    Launch(const char *n, dim3 g, dim3 b, size_t s = 0, cudaStream_t st = 0)
        : name(n), grid(g), block(b), shmem(s), stream(st) {}
    template <typename... P, typename... A> void run(void (*k)(P...), A &&...a)
    {
        /* the arguments are converted to the parameter types at the launch, as CUDA does */
        Body<P...> b{k, std::tuple<typename std::decay<P>::type...>(static_cast<P>(std::forward<A>(a))...)};
        if (cuemu_capturing(stream)) { /* stream capture: the launch, arguments included, is
                                          recorded and runs when the graph is launched */
            auto hb = std::make_shared<Body<P...>>(b);
            const dim3 g = grid, bl = block;
            const size_t sm = shmem;
            const char *nm = name;
            const cudaStream_t st = stream;
            cuemu_record_fn(stream, [g, bl, sm, st, nm, hb]() {
                cuemu_launch(g, bl, sm, st, &Body<P...>::run, hb.get(), nm);
            });
            return;
        }
        cuemu_launch(grid, block, shmem, stream, &Body<P...>::run, &b, name);
    }
};

} /* namespace cuemu */

#endif
