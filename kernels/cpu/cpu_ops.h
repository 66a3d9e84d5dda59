/* cpu_ops.h: internal prototypes of the CPU backend's ops (one file per op family); the table
   itself is assembled in backend_cpu.c. Signatures mirror sq_backend in sqakd/backend.h. */
#ifndef SQAKD_CPU_OPS_H
#define SQAKD_CPU_OPS_H
#include "sqakd/backend.h"

/* fakequant.c */
void sq_cpu_fakequant_fwd(const sq_quant_cfg *cfg, size_t n, const float *x, const float *qp,
                          float *y, float *scratch);
void sq_cpu_fakequant_bwd(const sq_quant_cfg *cfg, size_t n, const float *x, const float *qp,
                          const float *gy, float *gx, float *gqp, float *scratch);
void sq_cpu_absscale_fwd(size_t n, const float *s, const float *z, float *y);
void sq_cpu_absscale_bwd(size_t n, const float *s, const float *z, const float *gy, float *gz,
                         float *gs);

/* the remaining families (conv.c, bn.c, act.c, pool.c, linear.c, struct.c, loss.c, optim.c,
   mem.c) are declared below by the CPU-kernel work */
#endif
