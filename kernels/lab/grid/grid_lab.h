/* grid_lab.h: the streaming kernels' launch geometries that lost (kernels/lab/README.md), run on
   the shipped kernels themselves (grid_lab.cu compiles kernels/cuda/fakequant.cu and loss.cu
   again with these geometries). */
#ifndef SQAKD_LAB_GRID_LAB_H
#define SQAKD_LAB_GRID_LAB_H

#include "sqakd/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* LAB_GRID_STRIDE (runs 1 - 3): grid-stride loops over a capped grid, 16 blocks per SM for
   elementwise launches, SQ_CUDA_MAX_BLOCKS (1024) for reducing ones.
   LAB_GRID_FLAT (run 4): as many blocks as the work needs (one trip per thread); reducing
   launches take at most SQ_CUDA_FLAT_MAX_BLOCKS (16384, the partial buffer's capacity) and loop.
   LAB_GRID_AUTO: the shipped geometry (kernels/cuda/cuda_common.cuh), the winner.
   Flat and auto honour the test cap of tests/cuda_hooks.h (sq_cuda_grid_cap_set). */
enum { LAB_GRID_STRIDE = 0, LAB_GRID_FLAT = 1, LAB_GRID_AUTO = 2 };

/* selects the geometry of lab_grid_backend()'s streaming ops; reduce_blocks (0: none) caps every
   reducing launch at that many blocks whatever the mode (was SQAKD_REDUCE_BLOCKS, run 5's
   benchmark knob) */
void lab_grid_select(int mode, unsigned reduce_blocks);
const char *lab_grid_name(int mode);
/* a copy of sq_backend_cuda()'s table (NULL without a GPU) whose fake-quant, absscale, KL,
   cross-entropy and argmax ops are the shipped kernels launched on the selected geometry */
const sq_backend *lab_grid_backend(void);

#ifdef __cplusplus
}
#endif
#endif
