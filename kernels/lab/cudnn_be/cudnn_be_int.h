/* cudnn_be_int.h: cuDNN's backend (graph) API for the CUDA backend's fp32 convolutions, a variant
   that lost to the legacy calls (kernels/lab/README.md): cudnn_be.c (plans and execution),
   cudnn_be_pack.c (the variant-pack cache), cudnn_be_check.c (the self-check against the legacy
   calls), conv_be_lab.c (an op table that runs them). Built on the shipped backend's context and
   legacy plans (kernels/cuda). */
#ifndef SQAKD_LAB_CUDNN_BE_INT_H
#define SQAKD_LAB_CUDNN_BE_INT_H

#include "../../cuda/cuda_ops.h"

/* the four variants of a convolution shape */
enum { LAB_BE_FWD, LAB_BE_BWD_DATA_SET, LAB_BE_BWD_DATA_ACC, LAB_BE_BWD_FILTER_ACC, LAB_BE_VARIANTS };
typedef struct lab_be_conv lab_be_conv;
/* the four variants' plans for legacy plan lp's shape, each checked against lp's legacy calls;
   NULL when none is usable (lines on stderr say why; no error recorded) */
lab_be_conv *lab_be_conv_build(const sq_cuda_conv_plan *lp, int tf32, int det_first, size_t ws_cap);
void lab_be_conv_free(lab_be_conv *b);
size_t lab_be_conv_ws(const lab_be_conv *b);
int lab_be_conv_usable(const lab_be_conv *b, int variant);
/* runs variant on the uid pointers x (dx), w (dw), y (dy); 1 = enqueued, 0 = the caller must
   make the legacy call (variant unusable, pointers not 16-byte aligned, or execution failed) */
int lab_be_conv_run(lab_be_conv *b, int variant, const void *x, const void *w, const void *y,
                    void *ws);
/* variant packs built so far; calls handed back to the legacy API */
size_t lab_be_pack_count(void);
long lab_be_fallback_calls(void);

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

struct lab_be_conv {
    sq_conv_shape cs;
    be_variant v[LAB_BE_VARIANTS];
    size_t ws_bytes;
};


/* the variant pack of variant v for uid pointers p (x, w, y) and workspace ws, built on first
   use; NULL (status in *st) when it cannot be built */
cudnnBackendDescriptor_t lab_be_pack_get(const be_variant *v, const void *const p[3], void *ws,
                                        cudnnStatus_t *st);
/* destroys the cached packs of v (before v goes, or when its pointers are freed) */
void lab_be_packs_drop(const be_variant *v);
/* switches variant k of b to the legacy calls for good, with one line on stderr */
void lab_be_variant_off(lab_be_conv *b, int k, const char *why, cudnnStatus_t st);
/* runs every usable variant of b once next to lp's legacy call, on scratch tensors, and
   switches off those that fail or disagree */
void lab_be_self_check(lab_be_conv *b, const sq_cuda_conv_plan *lp, int tf32);

#endif
