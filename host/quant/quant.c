/* quant.c: quantizer configuration on the host: kind names, validation, level count, and the
   initialization of quantizer parameters from data (method.md 3.2-3.5). */
#include <math.h>
#include <string.h>
#include "sqakd/quant.h"
#include "sqakd/quant_math.h"

static const char *const kind_names[] = {"none", "ewgs", "pact", "lsq", "dorefa"};

int sq_quant_kind_parse(const char *name)
{
    if (!name) return -1;
    for (int k = 0; k < (int)(sizeof kind_names / sizeof kind_names[0]); k++)
        if (strcmp(name, kind_names[k]) == 0) return k;
    return -1;
}

const char *sq_quant_kind_name(sq_quant_kind k)
{
    if ((int)k < 0 || (int)k >= (int)(sizeof kind_names / sizeof kind_names[0])) return "unknown";
    return kind_names[k];
}

sq_status sq_quant_cfg_check(const sq_quant_cfg *cfg)
{
    if ((int)cfg->kind < SQ_QUANT_NONE || (int)cfg->kind > SQ_QUANT_DOREFA) {
        sq_set_error("quantizer kind %d is unknown; use one of none, ewgs, pact, lsq, dorefa",
                     (int)cfg->kind);
        return SQ_EARG;
    }
    if (cfg->role != SQ_QROLE_WEIGHT && cfg->role != SQ_QROLE_ACT) {
        sq_set_error("quantizer role %d is unknown; use weight (0) or activation (1)",
                     (int)cfg->role);
        return SQ_EARG;
    }
    if (cfg->kind == SQ_QUANT_NONE) return SQ_OK;
    if (cfg->bits < 1 || cfg->bits > 8) {
        sq_set_error("bits must be 1..8, got %d (quantizer %s); pick a bit width from 1 to 8",
                     cfg->bits, sq_quant_kind_name(cfg->kind));
        return SQ_EARG;
    }
    if (!(cfg->delta >= 0.0f) || !isfinite(cfg->delta)) {
        sq_set_error("EWGS delta must be a finite number >= 0, got %g", (double)cfg->delta);
        return SQ_EARG;
    }
    if (cfg->channels < 0 || (cfg->channels > 1 && cfg->role != SQ_QROLE_WEIGHT)) {
        sq_set_error("per-channel quantization is for weights only (channels %d, role %d)",
                     cfg->channels, (int)cfg->role);
        return SQ_EARG;
    }
    if (!(cfg->grad_numel >= 0.0f) || !isfinite(cfg->grad_numel)) {
        sq_set_error("LSQ grad_numel must be a finite number >= 0, got %g",
                     (double)cfg->grad_numel);
        return SQ_EARG;
    }
    return SQ_OK;
}

int sq_quant_levels(const sq_quant_cfg *cfg)
{
    if (cfg->kind == SQ_QUANT_NONE) return 0;
    return sq_qm_levels(cfg->bits);
}

/* unbiased standard deviation, two passes in double */
static double host_std(const float *x, size_t n)
{
    if (n < 2) return 0.0;
    double mean = 0.0;
    for (size_t i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    double ss = 0.0;
    for (size_t i = 0; i < n; i++) ss += (x[i] - mean) * (x[i] - mean);
    return sqrt(ss / (double)(n - 1));
}

static double host_mean_abs(const float *x, size_t n)
{
    if (n == 0) return 0.0;
    double a = 0.0;
    for (size_t i = 0; i < n; i++) a += fabs((double)x[i]);
    return a / (double)n;
}

static float lsq_init_s(const sq_quant_cfg *cfg, const float *x, size_t n)
{
    float qn, qp;
    sq_qm_lsq_bounds(cfg->bits, cfg->is_signed, &qn, &qp);
    double s = 2.0 * host_mean_abs(x, n) / sqrt(qp < 1.0f ? 1.0 : (double)qp);
    return s > 0.0 && isfinite(s) ? (float)s : 1.0f;
}

/* 3 / sqrt(1 - 2/pi) = 4.976690...: the half-normal correction of the EWGS activation bound */
static double act_bound_factor(void) { return 3.0 / sqrt(1.0 - 2.0 / 3.14159265358979323846); }

void sq_quant_init_weight(const sq_quant_cfg *cfg, const float *w, size_t n, float *qp)
{
    switch (cfg->kind) {
    case SQ_QUANT_EWGS: {
        double sd = host_std(w, n);
        if (!(sd > 0.0) || !isfinite(sd)) sd = 1.0 / 3.0;
        qp[0] = (float)(-3.0 * sd);
        qp[1] = (float)(3.0 * sd);
        break;
    }
    case SQ_QUANT_LSQ: qp[0] = lsq_init_s(cfg, w, n); break;
    default: break; /* PACT weights (DoReFa), DoReFa, none: no parameters */
    }
}

void sq_quant_init_weight_pc(const sq_quant_cfg *cfg, const float *w, size_t n, float *qp)
{
    const int C = sq_quant_channels(cfg), np = sq_quant_nparams(cfg);
    if (C <= 1) {
        sq_quant_init_weight(cfg, w, n, qp);
        return;
    }
    const size_t blk = n / (size_t)C;
    for (int c = 0; c < C; c++) {
        float p[SQ_QUANT_MAX_PARAMS] = {0};
        sq_quant_init_weight(cfg, w + (size_t)c * blk, blk, p);
        for (int j = 0; j < np; j++) qp[j * C + c] = p[j];
    }
}

void sq_quant_init_act(const sq_quant_cfg *cfg, const float *x, size_t n, float *qp)
{
    switch (cfg->kind) {
    case SQ_QUANT_EWGS: {
        float lo = n ? x[0] : 0.0f;
        for (size_t i = 1; i < n; i++)
            if (x[i] < lo) lo = x[i];
        double up = act_bound_factor() * host_std(x, n);
        qp[0] = lo;
        qp[1] = (float)up;
        if (!(qp[1] > qp[0]) || !isfinite(qp[1])) qp[1] = lo + 1.0f;
        break;
    }
    case SQ_QUANT_PACT: {
        double a = act_bound_factor() * host_std(x, n);
        qp[0] = a > 0.0 && isfinite(a) ? (float)a : 6.0f;
        break;
    }
    case SQ_QUANT_LSQ: qp[0] = lsq_init_s(cfg, x, n); break;
    default: break;
    }
}
