/* struct.cu: structural ops: constant padding, channel slice, option-A residual shortcut (stride-2 subsample + zero channel
   padding), channel concat, ShuffleNet channel shuffle, inverted dropout. Exact data movement;
   every kernel is written per OUTPUT element of its direction (backward: per element of gx), so
   no two threads touch the same address and backward ops accumulate without atomics.
   Dropout uses the CPU backend's counter-based hash (kernels/cpu/struct.c,
   sq_cpu_dropout_keep): u_i = top 24 bits of splitmix64-mix(seed + (i + 1) * golden) / 2^24,
   kept iff u_i >= p; masks are therefore bit-identical on both backends. */
#include "cuda_common.cuh"

static __global__ void shortcut_fwd_kernel(int n, int c, int h, int w, int k,
                                           const float *__restrict__ x, float *__restrict__ y)
{
    int oh = (h + 1) / 2, ow = (w + 1) / 2, padc = (k - c) / 2;
    size_t total = (size_t)n * k * oh * ow;
    SQ_GRID_LOOP(o, total)
    {
        int xx = (int)(o % ow), yy = (int)((o / ow) % oh);
        size_t p = o / ((size_t)oh * ow);
        int ch = (int)(p % k) - padc;
        size_t b = p / k;
        y[o] = (ch < 0 || ch >= c) ? 0.0f : x[((b * c + ch) * h + 2 * yy) * w + 2 * xx];
    }
}

/* per element of gx: only even (row, col) positions receive a gradient */
static __global__ void shortcut_bwd_kernel(int n, int c, int h, int w, int k,
                                           const float *__restrict__ gy, float *__restrict__ gx)
{
    int oh = (h + 1) / 2, ow = (w + 1) / 2, padc = (k - c) / 2;
    size_t total = (size_t)n * c * h * w;
    SQ_GRID_LOOP(i, total)
    {
        int xx = (int)(i % w), yy = (int)((i / w) % h);
        if ((xx | yy) & 1) continue;
        size_t p = i / ((size_t)h * w);
        size_t b = p / c;
        int ch = (int)(p % c);
        gx[i] += gy[((b * k + ch + padc) * oh + yy / 2) * ow + xx / 2];
    }
}

static __global__ void concat_fwd_kernel(int n, size_t na, size_t nb, const float *__restrict__ a,
                                         const float *__restrict__ b, float *__restrict__ y)
{
    size_t row = na + nb, total = (size_t)n * row;
    SQ_GRID_LOOP(o, total)
    {
        size_t i = o / row, j = o % row;
        y[o] = j < na ? a[i * na + j] : b[i * nb + (j - na)];
    }
}

/* per element of gy: each maps to exactly one element of ga or gb */
static __global__ void concat_bwd_kernel(int n, size_t na, size_t nb, const float *__restrict__ gy,
                                         float *__restrict__ ga, float *__restrict__ gb)
{
    size_t row = na + nb, total = (size_t)n * row;
    SQ_GRID_LOOP(o, total)
    {
        size_t i = o / row, j = o % row;
        if (j < na) {
            if (ga) ga[i * na + j] += gy[o];
        } else if (gb) {
            gb[i * nb + (j - na)] += gy[o];
        }
    }
}

/* input channel (g, j) of (G, C/G) goes to output channel j * G + g; dir = 0 forward: y[out] =
   x[in]; dir = 1 backward: gx[in] += gy[out]. Written per destination element. */
static __global__ void shuffle_kernel(int dir, int n, int c, int hw, int groups,
                                      const float *__restrict__ src, float *__restrict__ dst)
{
    int cpg = c / groups;
    size_t total = (size_t)n * c * hw;
    SQ_GRID_LOOP(d, total)
    {
        size_t e = d % hw, p = d / hw;
        int ch = (int)(p % c);
        size_t b = p / c;
        int sch;
        if (dir == 0) { /* d is an output channel ch = j * G + g; source channel g * cpg + j */
            int j = ch / groups, g = ch % groups;
            sch = g * cpg + j;
            dst[d] = src[(b * c + sch) * hw + e];
        } else { /* d is an input channel ch = g * cpg + j; its output channel j * G + g */
            int g = ch / cpg, j = ch % cpg;
            sch = j * groups + g;
            dst[d] += src[(b * c + sch) * hw + e];
        }
    }
}

static __device__ __forceinline__ bool dropout_keep(uint64_t seed, size_t i, float p)
{
    uint64_t z = seed + ((uint64_t)i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    float u = (float)(z >> 40) * (1.0f / 16777216.0f);
    return u >= p;
}

static __global__ void dropout_fwd_kernel(size_t n, float p, uint64_t seed,
                                          const float *__restrict__ x, float *__restrict__ y,
                                          uint8_t *__restrict__ mask)
{
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    SQ_GRID_LOOP(i, n)
    {
        bool keep = p < 1.0f && dropout_keep(seed, i, p);
        mask[i] = (uint8_t)keep;
        y[i] = keep ? x[i] * scale : 0.0f;
    }
}

static __global__ void dropout_bwd_kernel(size_t n, float p, const uint8_t *__restrict__ mask,
                                          const float *__restrict__ gy, float *__restrict__ gx)
{
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    SQ_GRID_LOOP(i, n) gx[i] += mask[i] ? gy[i] * scale : 0.0f;
}

extern "C" void sq_cuda_shortcut_a_fwd(int n, int c, int h, int w, int k, const float *x, float *y)
{
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || k < c) return;
    size_t total = (size_t)n * k * ((h + 1) / 2) * ((w + 1) / 2);
    shortcut_fwd_kernel<<<sq_grid_ew(total), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, c, h, w, k, x, y);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_shortcut_a_bwd(int n, int c, int h, int w, int k, const float *gy,
                                       float *gx)
{
    if (!gx || n <= 0 || c <= 0 || h <= 0 || w <= 0 || k < c) return;
    size_t total = (size_t)n * c * h * w;
    shortcut_bwd_kernel<<<sq_grid_ew(total), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, c, h, w, k, gy, gx);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_concat_fwd(int n, int c1, int c2, int hw, const float *a, const float *b,
                                   float *y)
{
    if (n <= 0 || hw <= 0 || c1 + c2 <= 0) return;
    size_t na = (size_t)c1 * hw, nb = (size_t)c2 * hw;
    concat_fwd_kernel<<<sq_grid_ew((size_t)n * (na + nb)), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, na, nb, a, b, y);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_concat_bwd(int n, int c1, int c2, int hw, const float *gy, float *ga,
                                   float *gb)
{
    if (n <= 0 || hw <= 0 || c1 + c2 <= 0 || (!ga && !gb)) return;
    size_t na = (size_t)c1 * hw, nb = (size_t)c2 * hw;
    concat_bwd_kernel<<<sq_grid_ew((size_t)n * (na + nb)), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, na, nb, gy, ga, gb);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_shuffle_fwd(int n, int c, int hw, int groups, const float *x, float *y)
{
    if (n <= 0 || c <= 0 || hw <= 0 || groups <= 0 || c % groups) return;
    size_t total = (size_t)n * c * hw;
    shuffle_kernel<<<sq_grid_ew(total), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(0, n, c, hw, groups, x, y);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_shuffle_bwd(int n, int c, int hw, int groups, const float *gy, float *gx)
{
    if (!gx || n <= 0 || c <= 0 || hw <= 0 || groups <= 0 || c % groups) return;
    size_t total = (size_t)n * c * hw;
    shuffle_kernel<<<sq_grid_ew(total), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(1, n, c, hw, groups, gy, gx);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_dropout_fwd(size_t n, float p, uint64_t seed, const float *x, float *y,
                                    uint8_t *mask)
{
    if (!n) return;
    dropout_fwd_kernel<<<sq_grid_ew(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, p, seed, x, y, mask);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_dropout_bwd(size_t n, float p, const uint8_t *mask, const float *gy,
                                    float *gx)
{
    if (!n || !gx) return;
    dropout_bwd_kernel<<<sq_grid_ew(n), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, p, mask, gy, gx);
    SQ_CUDA_LAUNCHED();
}

/* constant padding, per output element; backward per element of gx (its one gy element) */
static __global__ void pad_fwd_kernel(int n, int c, int h, int w, int pt, int pl, int oh, int ow,
                                      float value, const float *__restrict__ x, float *__restrict__ y)
{
    size_t total = (size_t)n * c * oh * ow;
    SQ_GRID_LOOP(o, total)
    {
        const int xx = (int)(o % ow) - pl, yy = (int)((o / ow) % oh) - pt;
        const size_t p = o / ((size_t)oh * ow);
        y[o] = (yy < 0 || yy >= h || xx < 0 || xx >= w) ? value : x[(p * h + yy) * w + xx];
    }
}

static __global__ void pad_bwd_kernel(int n, int c, int h, int w, int pt, int pl, int oh, int ow,
                                      const float *__restrict__ gy, float *__restrict__ gx)
{
    size_t total = (size_t)n * c * h * w;
    SQ_GRID_LOOP(i, total)
    {
        const int xx = (int)(i % w), yy = (int)((i / w) % h);
        const size_t p = i / ((size_t)h * w);
        gx[i] += gy[(p * oh + yy + pt) * ow + xx + pl];
    }
}

/* channel slice: y (N, K, HW) = x[:, c0:c0+K]; backward per element of gy (one of gx each) */
static __global__ void slice_kernel(int dir, int n, int c, size_t hw, int c0, int k,
                                    const float *__restrict__ src, float *__restrict__ dst)
{
    size_t row = (size_t)k * hw, total = (size_t)n * row;
    SQ_GRID_LOOP(o, total)
    {
        const size_t b = o / row, j = o % row;
        const size_t xi = (b * c + c0) * hw + j;
        if (dir == 0) dst[o] = src[xi];
        else dst[xi] += src[o];
    }
}

extern "C" void sq_cuda_pad_fwd(int n, int c, int h, int w, int pt, int pl, int pb, int pr, float value,
                                const float *x, float *y)
{
    if (pt < 0 || pl < 0 || pb < 0 || pr < 0) SQ_CUDA_BUG("negative pad");
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0) return;
    const int oh = pt + h + pb, ow = pl + w + pr;
    size_t total = (size_t)n * c * oh * ow;
    pad_fwd_kernel<<<sq_grid_ew(total), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, c, h, w, pt, pl, oh, ow, value,
                                                                               x, y);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_pad_bwd(int n, int c, int h, int w, int pt, int pl, int pb, int pr,
                                const float *gy, float *gx)
{
    if (pt < 0 || pl < 0 || pb < 0 || pr < 0) SQ_CUDA_BUG("negative pad");
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || !gx) return;
    const int oh = pt + h + pb, ow = pl + w + pr;
    size_t total = (size_t)n * c * h * w;
    pad_bwd_kernel<<<sq_grid_ew(total), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, c, h, w, pt, pl, oh, ow, gy, gx);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_slice_fwd(int n, int c, int hw, int c0, int k, const float *x, float *y)
{
    if (c0 < 0 || k < 0 || c0 + k > c) SQ_CUDA_BUG("slice outside the input's channels");
    if (n <= 0 || k <= 0 || hw <= 0) return;
    size_t total = (size_t)n * k * hw;
    slice_kernel<<<sq_grid_ew(total), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(0, n, c, (size_t)hw, c0, k, x, y);
    SQ_CUDA_LAUNCHED();
}

extern "C" void sq_cuda_slice_bwd(int n, int c, int hw, int c0, int k, const float *gy, float *gx)
{
    if (c0 < 0 || k < 0 || c0 + k > c) SQ_CUDA_BUG("slice outside the input's channels");
    if (n <= 0 || k <= 0 || hw <= 0 || !gx) return;
    size_t total = (size_t)n * k * hw;
    slice_kernel<<<sq_grid_ew(total), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(1, n, c, (size_t)hw, c0, k, gy, gx);
    SQ_CUDA_LAUNCHED();
}
