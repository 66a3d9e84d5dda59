/* test_exec.cu: Criterion suite "cuemu_exec", the tests of cuemu's kernel executor and runtime
   (tests/cuemu/runtime.cc, cuemu.h) themselves. Written as CUDA C++ and built like the backend's
   .cu files under CUEMU=1 (rewrite.pl, then g++ -include cuemu.h), so every kernel below runs on
   the emulator: grid/block indexing, __syncthreads through __shared__ memory, the four warp
   shuffles against the CUDA programming guide's definitions, block and grid reductions (also in
   CUEMU_ORDER=reverse), launch-configuration errors, the fatal diagnoses (divergent barrier deadlock, full-mask
   shuffle with exited lanes), by-value argument conversion and __device__ symbols.
   Build and run: make CUEMU=1 BUILD=build/cuemu-exec build/cuemu-exec/cuemu_exec_tests &&
   ./build/cuemu-exec/cuemu_exec_tests --jobs 1 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

#include "test_exec_util.h"

/* ---- 1. index variables ---- */

struct idx_rec {
    unsigned t[3], b[3], bd[3], gd[3];
    unsigned hits, same_after_sync;
};

__global__ void k_index(idx_rec *out)
{
    unsigned nt = blockDim.x * blockDim.y * blockDim.z;
    unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    idx_rec *r = out + (size_t)b * nt + t;
    uint3 ti = threadIdx, bi = blockIdx;
    r->t[0] = threadIdx.x, r->t[1] = threadIdx.y, r->t[2] = threadIdx.z;
    r->b[0] = blockIdx.x, r->b[1] = blockIdx.y, r->b[2] = blockIdx.z;
    r->bd[0] = blockDim.x, r->bd[1] = blockDim.y, r->bd[2] = blockDim.z;
    r->gd[0] = gridDim.x, r->gd[1] = gridDim.y, r->gd[2] = gridDim.z;
    r->hits++;
    __syncthreads();
    /* the indices survive a switch to the other threads of the block */
    r->same_after_sync = ti.x == threadIdx.x && ti.y == threadIdx.y && ti.z == threadIdx.z &&
                         bi.x == blockIdx.x && bi.y == blockIdx.y && bi.z == blockIdx.z;
}

Test(cuemu_exec, index_variables_3d)
{
    const unsigned G[3] = {3, 2, 2}, B[3] = {8, 4, 2};
    const size_t nt = B[0] * B[1] * B[2], nb = G[0] * G[1] * G[2], n = nt * nb;
    idx_rec *d = dev_alloc<idx_rec>(n);
    CK(cudaMemset(d, 0, n * sizeof(idx_rec)));
    k_index<<<dim3(G[0], G[1], G[2]), dim3(B[0], B[1], B[2])>>>(d);
    CK(cudaGetLastError());
    std::vector<idx_rec> h = to_host(d, n);
    for (size_t b = 0; b < nb; b++)
        for (size_t t = 0; t < nt; t++) {
            const idx_rec &r = h[b * nt + t];
            cr_assert_eq(r.hits, 1u, "block %zu thread %zu ran %u times", b, t, r.hits);
            cr_assert_eq(r.t[0], t % B[0]);
            cr_assert_eq(r.t[1], t / B[0] % B[1]);
            cr_assert_eq(r.t[2], t / (B[0] * B[1]));
            cr_assert_eq(r.b[0], b % G[0]);
            cr_assert_eq(r.b[1], b / G[0] % G[1]);
            cr_assert_eq(r.b[2], b / (G[0] * G[1]));
            for (int k = 0; k < 3; k++) {
                cr_assert_eq(r.bd[k], B[k]);
                cr_assert_eq(r.gd[k], G[k]);
            }
            cr_assert_eq(r.same_after_sync, 1u, "block %zu thread %zu", b, t);
        }
    CK(cudaFree(d));
}

/* ---- 2. __syncthreads and __shared__ ---- */

__global__ void k_reverse(int *a)
{
    __shared__ int s[256];
    int t = threadIdx.x, n = blockDim.x;
    int *row = a + (size_t)blockIdx.x * n;
    s[t] = row[t];
    __syncthreads();
    row[t] = s[n - 1 - t];
}

Test(cuemu_exec, syncthreads_reverses_through_shared)
{
    const int nb = 3, n = 256;
    std::vector<int> h(nb * n);
    for (int i = 0; i < nb * n; i++) h[i] = 7 * i + 1;
    int *d = dev_alloc<int>(nb * n);
    CK(cudaMemcpy(d, h.data(), h.size() * sizeof(int), cudaMemcpyHostToDevice));
    k_reverse<<<nb, n>>>(d);
    CK(cudaGetLastError());
    std::vector<int> r = to_host(d, nb * n);
    for (int b = 0; b < nb; b++)
        for (int t = 0; t < n; t++)
            cr_assert_eq(r[b * n + t], 7 * (b * n + n - 1 - t) + 1, "block %d thread %d", b, t);
    CK(cudaFree(d));
}

/* inclusive Hillis-Steele scan (two syncs per step, in a loop), then a second phase that reads
   the block total and a mirrored slot written by another thread */
__global__ void k_scan(const int *in, int *out)
{
    __shared__ int s[128];
    int t = threadIdx.x, n = blockDim.x;
    s[t] = in[(size_t)blockIdx.x * n + t];
    __syncthreads();
    for (int off = 1; off < n; off <<= 1) {
        int add = t >= off ? s[t - off] : 0;
        __syncthreads();
        s[t] += add;
        __syncthreads();
    }
    int total = s[n - 1], mirror = s[n - 1 - t];
    __syncthreads();
    s[t] = total - mirror;
    __syncthreads();
    out[(size_t)blockIdx.x * n + t] = s[t] * 1000 + s[(t + 1) % n] % 1000;
}

Test(cuemu_exec, syncthreads_in_loop_scan)
{
    const int nb = 2, n = 128;
    std::vector<int> in(nb * n);
    for (int i = 0; i < nb * n; i++) in[i] = (i * 37) % 11 - 3;
    int *din = dev_alloc<int>(nb * n), *dout = dev_alloc<int>(nb * n);
    CK(cudaMemcpy(din, in.data(), in.size() * sizeof(int), cudaMemcpyHostToDevice));
    k_scan<<<nb, n>>>(din, dout);
    CK(cudaGetLastError());
    std::vector<int> r = to_host(dout, nb * n);
    for (int b = 0; b < nb; b++) {
        std::vector<int> scan(n), fin(n);
        int acc = 0;
        for (int t = 0; t < n; t++) scan[t] = acc += in[b * n + t];
        for (int t = 0; t < n; t++) fin[t] = scan[n - 1] - scan[n - 1 - t];
        for (int t = 0; t < n; t++)
            cr_assert_eq(r[b * n + t], fin[t] * 1000 + fin[(t + 1) % n] % 1000, "block %d thread %d", b, t);
    }
    CK(cudaFree(din));
    CK(cudaFree(dout));
}

__global__ void k_block_counter(int *out)
{
    __shared__ int counter;
    if (threadIdx.x == 0) counter = 0;
    __syncthreads();
    atomicAdd(&counter, (int)blockIdx.x + 1);
    __syncthreads();
    if (threadIdx.x == 0) out[blockIdx.x] = counter;
}

Test(cuemu_exec, shared_memory_is_per_block)
{
    const int nb = 5, n = 64;
    int *d = dev_alloc<int>(nb);
    k_block_counter<<<nb, n>>>(d);
    CK(cudaGetLastError());
    std::vector<int> r = to_host(d, nb);
    for (int b = 0; b < nb; b++) cr_assert_eq(r[b], (b + 1) * n, "block %d: %d", b, r[b]);
    CK(cudaFree(d));
}

/* ---- 3. warp shuffles ---- */

/* distinct per-thread values that use the whole type (sums stay exact) */
template <typename T> static T sval(int t);
template <> int sval<int>(int t) { return 3 * t - 100; }
template <> float sval<float>(int t) { return 0.5f * (float)t + 1.0f; }
template <> double sval<double>(int t) { return 1099511627776.0 + 0.25 * t; }
template <> unsigned long long sval<unsigned long long>(int t) { return ((unsigned long long)t << 36) | (unsigned)(3 * t + 1); }

enum { SH_DOWN, SH_UP, SH_XOR, SH_IDX, SH_BFLY, SH_N };

static int idx_src(int lane) { return (lane * 5 + 3) % 32; } /* may be >= width: taken modulo width */

template <typename T> __global__ void k_shfl(T *out, int width, int delta)
{
    int t = threadIdx.x, lane = t & 31;
    size_t n = blockDim.x;
    T *o = out + (size_t)blockIdx.x * SH_N * n;
    T v = sval<T>(t + (int)blockIdx.x * 1000);
    o[SH_DOWN * n + t] = __shfl_down_sync(0xffffffffu, v, delta, width);
    o[SH_UP * n + t] = __shfl_up_sync(0xffffffffu, v, delta, width);
    o[SH_XOR * n + t] = __shfl_xor_sync(0xffffffffu, v, delta, width);
    o[SH_IDX * n + t] = __shfl_sync(0xffffffffu, v, idx_src(lane), width);
    T s = v;
    for (int m = width / 2; m > 0; m >>= 1) s += __shfl_xor_sync(0xffffffffu, s, m, width);
    o[SH_BFLY * n + t] = s;
}

/* the programming guide's definitions; lanes in segments of `width` within warps of 32 */
template <typename T> static void check_shfl(int nb, int n, int width, int delta)
{
    T *d = dev_alloc<T>((size_t)nb * SH_N * n);
    k_shfl<T><<<nb, n>>>(d, width, delta);
    CK(cudaGetLastError());
    std::vector<T> r = to_host(d, (size_t)nb * SH_N * n);
    for (int b = 0; b < nb; b++)
        for (int t = 0; t < n; t++) {
            const T *o = r.data() + (size_t)b * SH_N * n;
            int seg = t - t % width, loc = t % width, lane = t & 31;
            auto v = [&](int u) { return sval<T>(u + b * 1000); };
            T down = loc + delta < width ? v(t + delta) : v(t);
            T up = loc - delta >= 0 ? v(t - delta) : v(t);
            T x = v(seg + (loc ^ delta));
            T idx = v(seg + idx_src(lane) % width);
            T sum = 0;
            for (int u = seg; u < seg + width; u++) sum += v(u);
            cr_assert(o[SH_DOWN * n + t] == down, "down n=%d w=%d d=%d block %d thread %d", n, width, delta, b, t);
            cr_assert(o[SH_UP * n + t] == up, "up n=%d w=%d d=%d block %d thread %d", n, width, delta, b, t);
            cr_assert(o[SH_XOR * n + t] == x, "xor n=%d w=%d d=%d block %d thread %d", n, width, delta, b, t);
            cr_assert(o[SH_IDX * n + t] == idx, "idx n=%d w=%d block %d thread %d", n, width, b, t);
            cr_assert(o[SH_BFLY * n + t] == sum, "butterfly n=%d w=%d block %d thread %d", n, width, b, t);
        }
    CK(cudaFree(d));
}

template <typename T> static void check_shfl_all(void)
{
    const int sizes[] = {64, 96}, widths[] = {32, 16, 8}, deltas[] = {1, 3, 5};
    for (int n : sizes)
        for (int w : widths)
            for (int dl : deltas) check_shfl<T>(2, n, w, dl);
}

Test(cuemu_exec, shuffles_float) { check_shfl_all<float>(); }
Test(cuemu_exec, shuffles_int) { check_shfl_all<int>(); }
Test(cuemu_exec, shuffles_double) { check_shfl_all<double>(); }
Test(cuemu_exec, shuffles_ull) { check_shfl_all<unsigned long long>(); }

__global__ void k_shfl_xor_wide(int *out, int width, int lane_mask)
{
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (int)threadIdx.x + 100, lane_mask, width);
}

/* The guide on __shfl_xor_sync: with width < warpSize, a group may read lanes of EARLIER groups;
   reading a later group returns the caller's own value (PTX shfl.bfly: source lane^mask is taken
   when it is <= the top lane of the caller's segment). With width 8 and laneMask 8, lanes 8..15
   read lanes 0..7 and lanes 24..31 read 16..23. */
Test(cuemu_exec, shfl_xor_mask_beyond_width_reads_earlier_group)
{
    int *d = dev_alloc<int>(32);
    k_shfl_xor_wide<<<1, 32>>>(d, 8, 8);
    CK(cudaGetLastError());
    std::vector<int> r = to_host(d, 32);
    for (int l = 0; l < 32; l++) {
        int j = l ^ 8, top = (l & ~7) + 7;
        cr_assert_eq(r[l], (j <= top ? j : l) + 100, "lane %d", l);
    }
    CK(cudaFree(d));
}

/* a shuffle among the lanes of its mask while the rest of the warp has exited is defined */
__global__ void k_shfl_half_mask(int *out)
{
    int t = threadIdx.x;
    if (t >= 16) return;
    out[t] = __shfl_down_sync(0x0000ffffu, t * 10, 4, 16);
}

Test(cuemu_exec, partial_mask_shuffle_with_exited_lanes)
{
    int *d = dev_alloc<int>(16);
    k_shfl_half_mask<<<1, 32>>>(d);
    CK(cudaGetLastError());
    std::vector<int> r = to_host(d, 16);
    for (int l = 0; l < 16; l++) cr_assert_eq(r[l], (l + 4 < 16 ? l + 4 : l) * 10, "lane %d", l);
    CK(cudaFree(d));
}

__global__ void k_shfl_half_mask_then_sync(int *out)
{
    int t = threadIdx.x, v = t * 10;
    if (t < 16) v = __shfl_down_sync(0x0000ffffu, v, 1, 16);
    __syncthreads();
    out[t] = v;
}

/* Lanes 0..15 shuffle with mask 0x0000ffff while lanes 16..31 wait at __syncthreads: legal CUDA
   (only the mask's lanes take part). */
Test(cuemu_exec, partial_mask_shuffle_beside_syncthreads)
{
    int *d = dev_alloc<int>(32);
    k_shfl_half_mask_then_sync<<<1, 32>>>(d);
    CK(cudaGetLastError());
    std::vector<int> r = to_host(d, 32);
    for (int l = 0; l < 32; l++) cr_assert_eq(r[l], l < 16 ? (l + 1 < 16 ? l + 1 : l) * 10 : l * 10, "lane %d", l);
    CK(cudaFree(d));
}

/* ---- 4. block and grid reductions ---- */

__device__ long long warp_sum(long long v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

/* warp sums -> shared -> warp 0 (as sq_block_sum); result valid in thread 0 */
__device__ long long block_sum(long long v)
{
    __shared__ long long part[32];
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) part[wid] = v;
    __syncthreads();
    long long r = 0;
    if (wid == 0) r = warp_sum(lane < nw ? part[lane] : 0);
    return r;
}

/* out[0]: grid total, out[1]: index of the block that arrived last, out[2]: the block sum of
   block 0 */
__global__ void k_grid_sum(const int *in, size_t n, long long *partials, unsigned *counter,
                           long long *out)
{
    __shared__ bool last;
    long long acc = 0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        acc += in[i];
    long long bs = block_sum(acc);
    if (threadIdx.x == 0) {
        partials[blockIdx.x] = bs;
        if (blockIdx.x == 0) out[2] = bs;
        __threadfence();
        last = atomicAdd(counter, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    if (!last) return;
    long long g = 0;
    for (unsigned b = threadIdx.x; b < gridDim.x; b += blockDim.x) g += partials[b];
    g = block_sum(g);
    if (threadIdx.x == 0) {
        out[0] = g;
        out[1] = blockIdx.x;
        *counter = 0;
    }
}

static void check_grid_sum(long long expect_last)
{
    const size_t n = 50000;
    const unsigned nb = 7, nt = 256;
    std::vector<int> h(n);
    long long want = 0, want0 = 0;
    for (size_t i = 0; i < n; i++) {
        h[i] = (int)((i * 2654435761u) % 200003) - 100000;
        want += h[i];
        if (i % ((size_t)nb * nt) < nt) want0 += h[i];
    }
    int *din = dev_alloc<int>(n);
    long long *part = dev_alloc<long long>(nb), *out = dev_alloc<long long>(3);
    unsigned *counter = dev_alloc<unsigned>(1);
    CK(cudaMemcpy(din, h.data(), n * sizeof(int), cudaMemcpyHostToDevice));
    CK(cudaMemset(counter, 0, sizeof(unsigned)));
    k_grid_sum<<<nb, nt>>>(din, n, part, counter, out);
    CK(cudaGetLastError());
    std::vector<long long> r = to_host(out, 3);
    std::vector<unsigned> c = to_host(counter, 1);
    cr_assert_eq(r[0], want, "grid sum %lld, want %lld", r[0], want);
    cr_assert_eq(r[1], expect_last, "last block %lld", r[1]);
    cr_assert_eq(r[2], want0, "block 0 sum %lld, want %lld", r[2], want0);
    cr_assert_eq(c[0], 0u, "counter not reset");
    CK(cudaFree(din));
    CK(cudaFree(part));
    CK(cudaFree(out));
    CK(cudaFree(counter));
}

Test(cuemu_exec, block_and_grid_reduction_exact)
{
    unsetenv("CUEMU_ORDER");
    check_grid_sum(6);
}

Test(cuemu_exec, block_and_grid_reduction_reverse_order)
{
    setenv("CUEMU_ORDER", "reverse", 1);
    check_grid_sum(0); /* blocks ran 6..0: block 0 arrives last */
    unsetenv("CUEMU_ORDER");
}

/* thread execution order itself: the first thread to run takes ticket 0 */
__global__ void k_ticket(unsigned *ticket, unsigned *out)
{
    out[blockIdx.x * blockDim.x + threadIdx.x] = atomicAdd(ticket, 1u);
}

Test(cuemu_exec, reverse_order_reverses_blocks_and_threads)
{
    const unsigned nb = 3, nt = 40;
    unsigned *ticket = dev_alloc<unsigned>(1), *d = dev_alloc<unsigned>(nb * nt);
    for (int rev = 0; rev < 2; rev++) {
        if (rev) setenv("CUEMU_ORDER", "reverse", 1);
        else unsetenv("CUEMU_ORDER");
        CK(cudaMemset(ticket, 0, sizeof(unsigned)));
        k_ticket<<<nb, nt>>>(ticket, d);
        CK(cudaGetLastError());
        std::vector<unsigned> r = to_host(d, nb * nt);
        for (unsigned i = 0; i < nb * nt; i++)
            cr_assert_eq(r[i], rev ? nb * nt - 1 - i : i, "rev %d slot %u: ticket %u", rev, i, r[i]);
    }
    unsetenv("CUEMU_ORDER");
    CK(cudaFree(ticket));
    CK(cudaFree(d));
}

/* ---- 5. launch configuration errors ---- */

__global__ void k_count(int *n) { atomicAdd(n, 1); }

Test(cuemu_exec, invalid_launch_configurations)
{
    int *d = dev_alloc<int>(1);
    CK(cudaMemset(d, 0, sizeof(int)));
    const dim3 grids[] = {dim3(1), dim3(1), dim3(1), dim3(1), dim3(1, 70000), dim3(0)};
    const dim3 blocks[] = {dim3(0), dim3(1025), dim3(32, 32, 2), dim3(1, 1, 65), dim3(32), dim3(32)};
    for (int i = 0; i < 6; i++) {
        k_count<<<grids[i], blocks[i]>>>(d);
        cr_assert_eq(cudaPeekAtLastError(), cudaErrorInvalidConfiguration, "case %d (peek)", i);
        cr_assert_eq(cudaGetLastError(), cudaErrorInvalidConfiguration, "case %d", i);
        cr_assert_eq(cudaGetLastError(), cudaSuccess, "case %d: error not cleared", i);
        cr_assert_eq(to_host(d, 1)[0], 0, "case %d: the kernel ran", i);
    }
    k_count<<<dim3(1, 65535), 1>>>(d); /* the largest valid gridDim.y */
    cr_assert_eq(cudaGetLastError(), cudaSuccess);
    k_count<<<1, dim3(16, 16, 4)>>>(d); /* 1024 threads */
    cr_assert_eq(cudaGetLastError(), cudaSuccess);
    cr_assert_eq(to_host(d, 1)[0], 65535 + 1024);
    CK(cudaFree(d));
}

/* ---- 6. memory: test_memory.cu ---- */

/* ---- 7. fatal diagnoses ---- */

/* lanes 0..15 wait at __syncthreads, lanes 16..31 at a full-warp shuffle: hangs on a GPU */
__global__ void k_divergent_barrier(int *out)
{
    int v = (int)threadIdx.x;
    if (threadIdx.x < 16) __syncthreads();
    else v = __shfl_down_sync(0xffffffffu, v, 1);
    out[threadIdx.x] = v;
}

Test(cuemu_exec, divergent_barrier_deadlock_aborts, .signal = SIGABRT)
{
    int *d = dev_alloc<int>(32);
    k_divergent_barrier<<<1, 32>>>(d);
}

__global__ void k_full_mask_exited(int *out)
{
    if (threadIdx.x >= 16) return;
    out[threadIdx.x] = __shfl_down_sync(0xffffffffu, (int)threadIdx.x, 1);
}

Test(cuemu_exec, full_mask_shuffle_with_exited_lanes_aborts, .signal = SIGABRT)
{
    int *d = dev_alloc<int>(32);
    k_full_mask_exited<<<1, 32>>>(d);
}

/* ---- 8. kernel arguments ---- */

struct pod {
    int a;
    double b;
    char c[3];
};

__global__ void k_args(float f, pod p, unsigned char u, long long big, double *out)
{
    int t = threadIdx.x;
    p.a += 1; /* each thread has its own copy of the parameters */
    f *= 2.0f;
    __syncthreads();
    double *o = out + 6 * t;
    o[0] = f;
    o[1] = p.a;
    o[2] = p.b;
    o[3] = p.c[0] + p.c[1] * 256 + p.c[2] * 65536;
    o[4] = u;
    o[5] = (double)big;
}

Test(cuemu_exec, arguments_by_value_and_converted)
{
    const int nt = 48;
    double x = 0.1;
    pod p = {41, -2.75, {1, 2, 3}};
    double *d = dev_alloc<double>(6 * nt);
    k_args<<<1, nt>>>(x, p, 300, 1ll << 40, d);
    CK(cudaGetLastError());
    cr_assert_eq(p.a, 41, "the host struct changed");
    std::vector<double> r = to_host(d, 6 * nt);
    for (int t = 0; t < nt; t++) {
        const double *o = &r[6 * t];
        cr_assert_eq(o[0], (double)(2.0f * (float)0.1), "thread %d: float parameter %.17g", t, o[0]);
        cr_assert_neq(o[0], 0.2);
        cr_assert_eq(o[1], 42.0, "thread %d: p.a %g", t, o[1]);
        cr_assert_eq(o[2], -2.75);
        cr_assert_eq(o[3], 1 + 2 * 256 + 3 * 65536);
        cr_assert_eq(o[4], 44.0, "300 converted to unsigned char: %g", o[4]);
        cr_assert_eq(o[5], 1099511627776.0);
    }
    CK(cudaFree(d));
}

/* ---- 9. __device__ symbols ---- */

__device__ int g_sym[16];

__global__ void k_sym(int *out)
{
    int t = threadIdx.x;
    out[t] = g_sym[t] * 2;
    g_sym[t] += 1;
}

Test(cuemu_exec, device_symbol_address_is_device_memory)
{
    void *p = NULL;
    CK(cudaGetSymbolAddress(&p, g_sym));
    cr_assert_eq(p, (void *)g_sym);
    int h[16], back[16];
    for (int i = 0; i < 16; i++) h[i] = i * i - 5;
    CK(cudaMemcpy(p, h, sizeof h, cudaMemcpyHostToDevice));
    int *d = dev_alloc<int>(16);
    k_sym<<<1, 16>>>(d);
    CK(cudaGetLastError());
    std::vector<int> r = to_host(d, 16);
    CK(cudaMemcpy(back, p, sizeof back, cudaMemcpyDeviceToHost));
    for (int i = 0; i < 16; i++) {
        cr_assert_eq(r[i], 2 * h[i], "kernel read %d at %d", r[i], i);
        cr_assert_eq(back[i], h[i] + 1, "symbol %d at %d", back[i], i);
    }
    CK(cudaMemcpy(d, (int *)p + 8, 8 * sizeof(int), cudaMemcpyDeviceToDevice));
    cr_assert_eq(to_host(d, 1)[0], h[8] + 1);
    CK(cudaFree(d));
}

Test(cuemu_exec, device_symbol_copy_past_end_aborts, .signal = SIGABRT)
{
    void *p = NULL;
    int h[17] = {0};
    CK(cudaGetSymbolAddress(&p, g_sym));
    cudaMemcpy(p, h, sizeof h, cudaMemcpyHostToDevice);
}
