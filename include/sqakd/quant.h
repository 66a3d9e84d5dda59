/* quant.h: quantizer kinds and per-tensor configuration (host side). The per-element math is in
   quant_math.h (shared by the CPU and CUDA backends); the ops are fakequant_fwd/bwd in backend.h.

   Parameters of one quantized tensor (qp, in backend memory), by kind and role:
     SQ_QUANT_EWGS   weight: qp = {l, u}    act: qp = {l, u}      (+ output scale s per conv,
                                                                      held by the model)
     SQ_QUANT_PACT   weight: none (DoReFa)  act: qp = {alpha}
     SQ_QUANT_LSQ    weight: qp = {s}       act: qp = {s}
     SQ_QUANT_DOREFA weight: none           act: none

   Per-channel weights (channels = C > 1, weights only): the tensor is C equal contiguous blocks
   (the output channels of an OIHW or (out, in) weight), each quantized with its own parameters:
   parameter j of channel c is qp[j * C + c] (so EWGS's lW and uW, LSQ's sW are [C] tensors), and
   DoReFa / PACT weights take M = max|tanh(w)| per channel. The EWGS output scale stays one per
   layer. scratch then holds C * SQ_QUANT_SCRATCH floats. */
#ifndef SQAKD_QUANT_H
#define SQAKD_QUANT_H

#include <stddef.h>
#include "sqakd/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sq_quant_kind {
    SQ_QUANT_NONE = 0,
    SQ_QUANT_EWGS = 1,
    SQ_QUANT_PACT = 2,
    SQ_QUANT_LSQ = 3,
    SQ_QUANT_DOREFA = 4
} sq_quant_kind;

typedef enum sq_quant_role { SQ_QROLE_WEIGHT = 0, SQ_QROLE_ACT = 1 } sq_quant_role;

#define SQ_QUANT_MAX_PARAMS 2
#define SQ_QUANT_SCRATCH 4

typedef struct sq_quant_cfg {
    sq_quant_kind kind;
    sq_quant_role role;
    int bits;          /* 1..8 */
    int is_signed;     /* LSQ: signed grid (weights, or activations that can be negative) */
    float delta;       /* EWGS discretizer backward; 0 = STE */
    float grad_numel;  /* LSQ gradient scale numel: weight elements (per channel with channels > 1),
                          or act elements per sample */
    int channels;      /* weights: 0 or 1 = one set of parameters per tensor; C > 1 = per output
                          channel (see the header comment) */
} sq_quant_cfg;

/* 1 for a per-tensor quantizer, else its channel count */
static inline int sq_quant_channels(const sq_quant_cfg *c) { return c->channels > 1 ? c->channels : 1; }

static inline int sq_quant_nparams(const sq_quant_cfg *c)
{
    switch (c->kind) {
    case SQ_QUANT_EWGS: return 2;
    case SQ_QUANT_PACT: return c->role == SQ_QROLE_ACT ? 1 : 0;
    case SQ_QUANT_LSQ: return 1;
    default: return 0;
    }
}

/* "ewgs" | "pact" | "lsq" | "dorefa" | "none" -> kind; returns -1 if unknown */
int sq_quant_kind_parse(const char *name);
const char *sq_quant_kind_name(sq_quant_kind k);

/* Validates a configuration: known kind and role, bits 1..8 (unless kind is none), delta finite and
   >= 0, grad_numel >= 0. SQ_EARG with a message otherwise. */
sq_status sq_quant_cfg_check(const sq_quant_cfg *cfg);

/* Number of distinct output levels, 2^bits (0 for SQ_QUANT_NONE: not quantized). */
int sq_quant_levels(const sq_quant_cfg *cfg);

/* Initial quantizer parameters from HOST data (method.md 3.2-3.5); writes sq_quant_nparams(cfg)
   floats to qp (nothing for kinds without parameters).
   weight: EWGS uW = 3 std(w), lW = -3 std(w) (unbiased std); LSQ s = 2 mean|w| / sqrt(Qp).
   act:    EWGS uA = 3 std(x)/sqrt(1 - 2/pi), lA = min(x); PACT alpha = 3 std(x)/sqrt(1 - 2/pi)
           (the EWGS upper bound, lower bound fixed at 0; 6 when std(x) is 0);
           LSQ s = 2 mean|x| / sqrt(Qp).
   Degenerate data (zero std, or zero mean|.|) falls back to [lW, uW] = [-1, 1],
   uA = lA + 1, alpha = 6, s = 1, so the first step never divides by zero. */
void sq_quant_init_weight(const sq_quant_cfg *cfg, const float *w, size_t n, float *qp);
/* Per-channel weights (cfg->channels = C > 1): sq_quant_init_weight on each of the C blocks of
   n / C elements, written in the per-channel layout (qp: C * sq_quant_nparams(cfg) floats,
   parameter j of channel c at qp[j * C + c]). With C <= 1 it is sq_quant_init_weight. */
void sq_quant_init_weight_pc(const sq_quant_cfg *cfg, const float *w, size_t n, float *qp);
void sq_quant_init_act(const sq_quant_cfg *cfg, const float *x, size_t n, float *qp);

#ifdef __cplusplus
}
#endif
#endif
