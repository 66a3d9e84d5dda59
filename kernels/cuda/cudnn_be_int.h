/* cudnn_be_int.h: what the files of the backend-API convolutions share (cudnn_be.c: plans and
   execution; cudnn_be_pack.c: the variant-pack cache; cudnn_be_check.c: the self-check against
   the legacy calls). */
#ifndef SQAKD_CUDNN_BE_INT_H
#define SQAKD_CUDNN_BE_INT_H

#include "cuda_ops.h"

#define BE_UID_X 1
#define BE_UID_W 2
#define BE_UID_Y 3
#define BE_MAX_DESCS 64 /* descriptors a variant keeps alive: tensors, op, graph, heuristics, configs */

typedef struct be_variant {
    cudnnBackendDescriptor_t plan;
    cudnnBackendDescriptor_t keep[BE_MAX_DESCS]; /* destroyed with the plan */
    int nkeep;
    size_t ws;
    int64_t engine; /* global engine index, -1 unknown */
    int usable;     /* built and checked */
} be_variant;

struct sq_cuda_be_conv {
    sq_conv_shape cs;
    be_variant v[SQ_BE_VARIANTS];
    size_t ws_bytes;
};


/* the variant pack of variant v for uid pointers p (x, w, y) and workspace ws, built on first
   use; NULL (status in *st) when it cannot be built */
cudnnBackendDescriptor_t sq_be_pack_get(const be_variant *v, const void *const p[3], void *ws,
                                        cudnnStatus_t *st);
/* destroys the cached packs of v (before v goes, or when its pointers are freed) */
void sq_be_packs_drop(const be_variant *v);
/* switches variant k of b to the legacy calls for good, with one line on stderr */
void sq_be_variant_off(sq_cuda_be_conv *b, int k, const char *why, cudnnStatus_t st);
/* runs every usable variant of b once next to lp's legacy call, on scratch tensors, and
   switches off those that fail or disagree */
void sq_be_self_check(sq_cuda_be_conv *b, const sq_cuda_conv_plan *lp, int tf32);

#endif
