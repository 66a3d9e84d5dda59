/* cuda_legacy.h: TRANSITIONAL. The CUDA backend's free functions that host/ called before the op
   table had options, status and device members (backend.h); they left include/sqakd/backend.h.
   Replace each use and stop including this header; it goes once host/ no longer does:
     sq_cuda_last_status()  -> be->status()
     sq_cuda_clear_status() -> be->clear_status()
     sq_cuda_error_count()  -> be->error_count()
     sq_cuda_grid_name()    -> nothing: the launch geometry is no longer a run-time choice
   No CUDA header is needed to include it; the functions exist in CUDA builds only. */
#ifndef SQAKD_CUDA_LEGACY_H
#define SQAKD_CUDA_LEGACY_H

#include "sqakd/common.h"

#ifdef __cplusplus
extern "C" {
#endif

sq_status sq_cuda_last_status(void);
void sq_cuda_clear_status(void);
unsigned sq_cuda_error_count(void);
const char *sq_cuda_grid_name(void);

#ifdef __cplusplus
}
#endif
#endif
