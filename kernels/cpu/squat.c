/* squat.c: the CPU SQuaT feature loss (issue 20, docs/squat.md): the teacher's feature is
   fake-quantized with the student's activation quantizer (quant_math.h's per-element math) and
   compared with the student's quantized feature, loss and gradient in one pass. The sum runs over
   a fixed number of static chunks (each summed in order in double, the chunks added in order), so
   the loss does not depend on the thread count. */
#include "cpu_ops.h"
#include "sqakd/quant_math.h"

#define SQUAT_CHUNKS 64
#define SQUAT_SERIAL 16384 /* below this many elements, one thread */

void sq_cpu_squat_fwd_bwd(const sq_quant_cfg *cfg, size_t n, const float *xt, const float *qp,
                          const float *xs, float weight, float *loss, float *gxs)
{
    if (n == 0) return;
    sq_qm_ctx k;
    sq_qm_ctx_init(&k, cfg, n);
    const int np = sq_qm_nparams(&k);
    sq_qm_ctx_load(&k, np > 0 ? qp[0] : 0.0f, np > 1 ? qp[1] : 0.0f, 0.0f);
    const float g = (float)(2.0 * weight / (double)n);
    double part[SQUAT_CHUNKS];
#pragma omp parallel for schedule(static) num_threads(sq_cpu_threads()) if (n > SQUAT_SERIAL)
    for (int c = 0; c < SQUAT_CHUNKS; c++) {
        const size_t b = n * (size_t)c / SQUAT_CHUNKS, e = n * (size_t)(c + 1) / SQUAT_CHUNKS;
        double acc = 0.0;
        for (size_t i = b; i < e; i++) {
            const float d = xs[i] - sq_qm_fwd(&k, xt[i]);
            acc += (double)d * d;
            if (gxs) gxs[i] += g * d;
        }
        part[c] = acc;
    }
    double total = 0.0;
    for (int c = 0; c < SQUAT_CHUNKS; c++) total += part[c];
    *loss += (float)(weight * total / (double)n);
}
