/* conv_be_lab.h: the CUDA backend's op table with its fp32 convolutions through cuDNN's backend
   API (cudnn_be.c), for the lab's validation (test_conv_be.c) and timing (bench_conv_be.c). */
#ifndef SQAKD_LAB_CONV_BE_LAB_H
#define SQAKD_LAB_CONV_BE_LAB_H

#include <stddef.h>
#include "sqakd/backend.h"

/* A copy of sq_backend_cuda()'s table (NULL without a GPU) whose conv_ws_bytes, conv2d_fwd,
   conv2d_bwd and conv2d_bwd_set run each shape's backend-API plans (built with the backend
   options in force, next to the shipped legacy plan, on the shape's first use), and whose
   graph_begin refuses: recorded backend-API steps drifted from eager ones on an H100
   (docs/gpu-validation.md, run 4). A forward with a bias, and every call a variant cannot take,
   goes to the shipped (legacy) op. */
const sq_backend *lab_conv_be_backend(void);
/* on = 1 (default): the table's convolutions take the backend API; 0: the legacy calls, as the
   shipped table (the workspace sizes stay those of both) */
void lab_conv_be_enable(int on);
/* the backend variants in use for cs (plans built if needed): bit 0 forward, 1 backward data
   (set), 2 backward data (accumulate), 3 backward filter */
int lab_conv_be_variants(const sq_conv_shape *cs);
/* variant packs built so far; calls handed back to the legacy API (misaligned pointers, failed
   executions) */
size_t lab_be_pack_count(void);
long lab_be_fallback_calls(void);

#endif
