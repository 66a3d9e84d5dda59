/* graph.c: record and replay (backend.h, graph_*) with CUDA graphs. Recording is a stream
   capture of the compute stream in thread-local mode: the ops called meanwhile are captured,
   not run, and a call that may not be captured (a synchronous copy, an allocation, a
   synchronisation) invalidates the capture. The captured graph is instantiated once and each
   replay is one cudaGraphLaunch on the compute stream, in order with everything else.

   Errors: the ops report failures through the sticky status (cuda_check.h). A capture during
   which any op failed, or that the runtime invalidated, is dropped: graph_end returns NULL with
   the first failure's message, and the sticky status is put back as it was before graph_begin,
   so that the caller can run the same ops eagerly. */
#include <stdio.h>
#include "cuda_ops.h"

static int g_capturing;
static sq_status g_status_before;

int sq_cuda_graph_begin(void)
{
    if (g_capturing) SQ_CUDA_BUG("graph_begin inside a recording");
    g_status_before = sq_cuda_peek_status();
    sq_cuda_mark_errors();
    cudaError_t e = cudaStreamBeginCapture(sq_cuda_stream(), cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        sq_set_error("cudaStreamBeginCapture failed: %s", cudaGetErrorString(e));
        return -1;
    }
    g_capturing = 1;
    return 0;
}

void *sq_cuda_graph_end(void)
{
    if (!g_capturing) SQ_CUDA_BUG("graph_end without graph_begin");
    g_capturing = 0;
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    /* the first failure inside the recording (later ones are its consequences) */
    char why[512] = "";
    snprintf(why, sizeof why, "%s", sq_cuda_first_error_since_mark());
    cudaError_t e = cudaStreamEndCapture(sq_cuda_stream(), &graph);
    if (!why[0] && e != cudaSuccess)
        snprintf(why, sizeof why, "cudaStreamEndCapture: %s", cudaGetErrorString(e));
    if (!why[0] && (e = cudaGraphInstantiate(&exec, graph, 0)) != cudaSuccess)
        snprintf(why, sizeof why, "cudaGraphInstantiate: %s", cudaGetErrorString(e));
    if (graph) cudaGraphDestroy(graph);
    if (why[0]) {
        if (exec) cudaGraphExecDestroy(exec);
        (void)cudaGetLastError();
        if (g_status_before == SQ_OK) sq_cuda_clear_status();
        sq_set_error("recording the step as a CUDA graph failed: %s", why);
        return NULL;
    }
    return exec;
}

void sq_cuda_graph_run(void *graph)
{
    CUDA_CHECK(cudaGraphLaunch((cudaGraphExec_t)graph, sq_cuda_stream()));
}

void sq_cuda_graph_free(void *graph)
{
    if (graph) CUDA_CHECK(cudaGraphExecDestroy((cudaGraphExec_t)graph));
}
