/* quant.h: quantizer kinds and per-tensor configuration (host side). The per-element math is in
   quant_math.h (shared by the CPU and CUDA backends); the ops are fakequant_fwd/bwd in backend.h.

   Parameters of one quantized tensor (qp, in backend memory), by kind and role:
     SQ_QUANT_EWGS   weight: qp = {l, u}    act: qp = {l, u}      (+ output scale s per conv,
                                                                      held by the model)
     SQ_QUANT_PACT   weight: none (DoReFa)  act: qp = {alpha}
     SQ_QUANT_LSQ    weight: qp = {s}       act: qp = {s}
     SQ_QUANT_DOREFA weight: none           act: none */
#ifndef SQAKD_QUANT_H
#define SQAKD_QUANT_H

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
    float grad_numel;  /* LSQ gradient scale numel: weight elements, or act elements per sample */
} sq_quant_cfg;

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

#ifdef __cplusplus
}
#endif
#endif
