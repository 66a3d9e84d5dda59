/* stage.c: asynchronous input staging of the CUDA backend (backend.h, "optional: asynchronous
   input staging") and the device memory report used by out-of-memory messages.

   A stage has two slots (device buffer, and a pinned host buffer unless the stage is fed only by
   stage_put_pinned) and a non-blocking copy stream (it must not synchronise implicitly with the
   compute stream, a blocking one). Put j, into slot s = j % 2:
     1. compute stream: record consumed[slot of put j-1] (all work enqueued so far, i.e. the step
        that read that slot, precedes it);
     2. host: wait for uploaded[s] (the upload of put j-2 has finished reading its source: the
        slot's pinned buffer, or the caller's for stage_put_pinned); stage_put: memcpy src into
        the pinned buffer;
     3. copy stream: wait for consumed[s] (recorded at put j-1: the compute of put j-2's step is
        done with the device buffer), upload (from the pinned buffer, or from src itself),
        record uploaded[s];
     4. compute stream: wait for uploaded[s]; later compute work reads the device buffer.
   So the upload of batch j runs while the compute stream is still busy with batch j-1, and the
   host never waits for the compute stream directly. Step 2 is also what lets a stage_put_pinned
   caller reuse its source: once put j+2 has returned, put j's upload is complete. */
#include <stdlib.h>
#include <string.h>
#include "cuda_ops.h"

typedef struct sq_cuda_stage {
    size_t bytes;
    void *host[2];              /* pinned */
    void *dev[2];
    cudaEvent_t uploaded[2];    /* recorded on the copy stream after a slot's upload */
    cudaEvent_t consumed[2];    /* recorded on the compute stream once a slot may be reused */
    cudaStream_t copy;
    int next, last;             /* slot of the next put; of the previous one (-1: none yet) */
} sq_cuda_stage;

int sq_cuda_mem_info(size_t *free_bytes, size_t *total_bytes)
{
    size_t f = 0, t = 0;
    cudaError_t e = cudaMemGetInfo(&f, &t);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return -1;
    }
    if (free_bytes) *free_bytes = f;
    if (total_bytes) *total_bytes = t;
    return 0;
}

/* releases whatever of st exists (no sticky errors: also used on a half-built stage) */
static void stage_release(sq_cuda_stage *st)
{
    for (int s = 0; s < 2; s++) {
        if (st->uploaded[s]) cudaEventDestroy(st->uploaded[s]);
        if (st->consumed[s]) cudaEventDestroy(st->consumed[s]);
        if (st->host[s]) cudaFreeHost(st->host[s]);
        if (st->dev[s]) cudaFree(st->dev[s]);
    }
    if (st->copy) cudaStreamDestroy(st->copy);
    (void)cudaGetLastError();
    memset(st, 0, sizeof *st);
}

void *sq_cuda_stage_new(size_t bytes, int host_slots)
{
    sq_cuda_stage *st = calloc(1, sizeof *st);
    if (!st) {
        sq_set_error("out of host memory for the input stage");
        return NULL;
    }
    size_t n = bytes ? bytes : 256;
    cudaError_t e = cudaStreamCreateWithFlags(&st->copy, cudaStreamNonBlocking);
    for (int s = 0; s < 2 && e == cudaSuccess; s++) {
        if (host_slots && (e = cudaHostAlloc(&st->host[s], n, cudaHostAllocDefault)) != cudaSuccess)
            break;
        if ((e = cudaMalloc(&st->dev[s], n)) != cudaSuccess) break;
        if ((e = cudaEventCreateWithFlags(&st->uploaded[s], cudaEventDisableTiming)) != cudaSuccess)
            break;
        e = cudaEventCreateWithFlags(&st->consumed[s], cudaEventDisableTiming);
    }
    if (e != cudaSuccess) {
        sq_set_error("input stage of 2 x %zu bytes (%s) not available: %s", n,
                     host_slots ? "pinned host + device" : "device", cudaGetErrorString(e));
        stage_release(st);
        free(st);
        return NULL;
    }
    st->bytes = n;
    st->last = -1;
    return st;
}

/* one put (file comment): from the slot's pinned buffer after copying src there (copy set), or
   from src itself */
static const void *put(sq_cuda_stage *st, const void *src, size_t bytes, int copy)
{
    if (bytes > st->bytes) SQ_CUDA_BUG("stage_put of more bytes than the stage was made for");
    const int s = st->next;
    if (copy && !st->host[s]) SQ_CUDA_BUG("stage_put on a stage made without host slots");
    if (st->last >= 0) CUDA_CHECK(cudaEventRecord(st->consumed[st->last], sq_cuda_stream()));
    CUDA_CHECK(cudaEventSynchronize(st->uploaded[s]));
    const void *from = copy ? st->host[s] : src;
    if (bytes && copy) memcpy(st->host[s], src, bytes);
    CUDA_CHECK(cudaStreamWaitEvent(st->copy, st->consumed[s], 0));
    if (bytes)
        CUDA_CHECK(cudaMemcpyAsync(st->dev[s], from, bytes, cudaMemcpyHostToDevice, st->copy));
    CUDA_CHECK(cudaEventRecord(st->uploaded[s], st->copy));
    CUDA_CHECK(cudaStreamWaitEvent(sq_cuda_stream(), st->uploaded[s], 0));
    st->last = s;
    st->next = s ^ 1;
    return st->dev[s];
}

const void *sq_cuda_stage_put(void *stage, const void *src, size_t bytes)
{
    return put(stage, src, bytes, 1);
}

const void *sq_cuda_stage_put_pinned(void *stage, const void *src, size_t bytes)
{
    return put(stage, src, bytes, 0);
}

void sq_cuda_stage_free(void *stage)
{
    sq_cuda_stage *st = stage;
    if (!st) return;
    CUDA_CHECK(cudaStreamSynchronize(st->copy));
    CUDA_CHECK(cudaDeviceSynchronize());
    stage_release(st);
    free(st);
}

void *sq_cuda_host_alloc(size_t bytes)
{
    void *p = NULL;
    cudaError_t e = cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocDefault);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* scarce, not a device failure: the caller falls back */
        sq_set_error("%zu bytes of pinned host memory not available: %s", bytes, cudaGetErrorString(e));
        return NULL;
    }
    return p;
}

void sq_cuda_host_free(void *p)
{
    if (p) CUDA_CHECK(cudaFreeHost(p));
}
