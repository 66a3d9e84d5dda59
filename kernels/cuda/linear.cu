/* linear.cu: fully connected layer y (N, OUT) = x (N, IN) w^T + b with w (OUT, IN) as PyTorch,
   through cuBLAS. cuBLAS is column-major: a row-major (R, C) matrix is the column-major (C, R)
   matrix, i.e. its transpose. Seen by cuBLAS the buffers are W = w^T (IN, OUT), X = x^T (IN, N),
   G = gy^T (OUT, N), Y = y^T (OUT, N), GX = gx^T (IN, N), GW = gw^T (IN, OUT), so
     Y   = W^T X        gemm(T, N, m = OUT, n = N,   k = IN)
     GX += W G          gemm(N, N, m = IN,  n = N,   k = OUT), beta 1
     GW += X G^T        gemm(N, T, m = IN,  n = OUT, k = N),   beta 1
   with leading dimensions IN for W, X, GX, GW and OUT for G, Y. The bias is broadcast
   into y before the forward GEMM (beta = 1); gb is a per-column sum over the batch with one
   thread per output column (fixed order: deterministic, coalesced across threads). */
#include "cuda_common.cuh"

static __global__ void bias_rows_kernel(int n, int out, const float *__restrict__ b,
                                        float *__restrict__ y)
{
    size_t total = (size_t)n * out;
    SQ_GRID_LOOP(i, total) y[i] = b[i % (size_t)out];
}

static __global__ void bias_grad_kernel(int n, int out, const float *__restrict__ gy,
                                        float *__restrict__ gb)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= out) return;
    float acc = 0.0f;
    for (int r = 0; r < n; r++) acc += gy[(size_t)r * out + j];
    gb[j] += acc;
}

extern "C" void sq_cuda_linear_fwd(int n, int in, int out, const float *x, const float *w,
                                   const float *b, float *y)
{
    if (n <= 0 || in <= 0 || out <= 0) return;
    const float one = 1.0f, zero = 0.0f;
    if (b) {
        bias_rows_kernel<<<sq_grid_ew((size_t)n * out), SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, out, b, y);
        SQ_CUDA_LAUNCHED();
    }
    CUBLAS_CHECK(cublasSgemm(sq_cuda_cublas(), CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, w, in,
                             x, in, b ? &one : &zero, y, out));
}

extern "C" void sq_cuda_linear_bwd(int n, int in, int out, const float *x, const float *w,
                                   const float *gy, float *gx, float *gw, float *gb)
{
    if (n <= 0 || in <= 0 || out <= 0) return;
    const float one = 1.0f;
    cublasHandle_t h = sq_cuda_cublas();
    if (gx)
        CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, &one, w, in, gy, out,
                                 &one, gx, in));
    if (gw)
        CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, &one, x, in, gy, out,
                                 &one, gw, in));
    if (gb) {
        bias_grad_kernel<<<(out + SQ_CUDA_BLOCK - 1) / SQ_CUDA_BLOCK, SQ_CUDA_BLOCK, 0, sq_cuda_stream()>>>(n, out, gy,
                                                                                      gb);
        SQ_CUDA_LAUNCHED();
    }
}
