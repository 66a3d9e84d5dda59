/* fakequant.c: CPU fake-quantization ops (placeholder until the quantizer work lands). */
#include "cpu_ops.h"

void sq_cpu_fakequant_fwd(const sq_quant_cfg *cfg, size_t n, const float *x, const float *qp,
                          float *y, float *scratch) { (void)cfg; (void)qp; (void)scratch; for (size_t i = 0; i < n; i++) y[i] = x[i]; }
void sq_cpu_fakequant_bwd(const sq_quant_cfg *cfg, size_t n, const float *x, const float *qp,
                          const float *gy, float *gx, float *gqp, float *scratch) { (void)cfg; (void)x; (void)qp; (void)gqp; (void)scratch; if (gx) for (size_t i = 0; i < n; i++) gx[i] += gy[i]; }
void sq_cpu_absscale_fwd(size_t n, const float *s, const float *z, float *y) { for (size_t i = 0; i < n; i++) y[i] = z[i] * (s[0] < 0 ? -s[0] : s[0]); }
void sq_cpu_absscale_bwd(size_t n, const float *s, const float *z, const float *gy, float *gz,
                         float *gs) { (void)n; (void)s; (void)z; (void)gy; (void)gz; (void)gs; }
