/* export.h: a checkpoint out of sqakd: an ONNX graph (full precision, or a standard QDQ graph of a
   quantized student) and the integer codes packed at their bit-widths (safetensors).

   Every quantizer's levels are written as y = scale (code - zero_point) with an integer code in an
   int8 / uint8 container; the zero point is always 0 (each grid below has 0 as a code, or is
   written as odd codes around 0), except the 8-bit weight grids of ewgs / pact / dorefa, whose
   odd codes -255..255 are rebuilt from a uint8 index (below). How each quantizer maps (docs/export.md has the table):

     activations (the conv's input x; the student's code j = rint(v), v its normalised value)
       ewgs   v = ((x - l) / (u - l)) n     j in [0, n]        level j/n        DQ scale 1/n
       pact   v = (x / alpha) n             j in [0, n]        level alpha j/n  DQ scale alpha/n
       dorefa v = x n                       j in [0, n]        level j/n        DQ scale 1/n
       lsq    v = x / s                     j in [-Qn, Qp]     level s j        DQ scale s
              (x / s as a Div and QuantizeLinear scale 1, or with int_kernels QuantizeLinear scale s)
     weights (codes computed here, stored as an integer initializer)
       ewgs, pact, dorefa: level 2 j/n - 1 = (2 j - n)/n: code k = 2 j - n in [-n, n] (int8), DQ
                           scale 1/n; at 8 bits k spans [-255, 255], which no 8-bit container holds
                           (and k = j with zero point n/2 = 127.5 is not an integer), so the
                           container holds the index j (uint8) and the graph rebuilds k exactly
                           in float: DequantizeLinear(j, scale 2, zero point 127) = 2 (j - 127),
                           Sub 1 -> k (odd integers |k| <= 255, exact), then Mul by the per-output-
                           channel scale: the level is fl(k scale), the same float operation as
                           every other grid's DequantizeLinear (index_container below)
       lsq:                code j in [-Qn, Qp] (int8), DQ scale s
   with n = 2^b - 1, Qn/Qp LSQ's bounds (quant_math.h). A weight's scale also carries what is folded
   into it per output channel: the EWGS output scale |s| and a following BatchNorm's
   gamma/sqrt(var + eps) (a negative factor flips the codes' signs where the grid is symmetric).

   v is computed by the same float operations as the student's (Sub, Div, Mul in that order, then
   QuantizeLinear with scale 1), so that the runtime's codes are the student's, bit for bit; a
   single QuantizeLinear(x, (u - l)/n, zp) would round x / fl((u - l)/n) instead of
   fl(fl((x - l)/(u - l)) n), which differ near the decision boundaries, and its zero point
   -l n/(u - l) is an integer only by accident. LSQ's v = x / s is QuantizeLinear's own division
   (scale s), so sq_export_onnx_ex's int_kernels can leave the Div out. */
#ifndef SQAKD_EXPORT_H
#define SQAKD_EXPORT_H

#include "sqakd/checkpoint.h"
#include "sqakd/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The integer grid of one quantized tensor. */
typedef struct sq_qgrid {
    int is_signed;      /* container: int8 (1) or uint8 (0) */
    int index_container; /* 1: the codes k = 2 j - 255 (8-bit ewgs / pact / dorefa weights) do not
                           fit 8 bits: the uint8 container holds the index j = (k - cmin) /
                           code_step and the graph rebuilds k = 2 (j - 127) - 1 in float (exact);
                           cmin, cmax, code_step, scale and level_ulps still describe k */
    int bits;           /* the quantizer's bit-width */
    int cmin, cmax;     /* codes the student produces */
    int code_step;      /* codes are cmin, cmin + code_step, ..., cmax (2 for the 2j - n weights) */
    float scale;        /* DequantizeLinear scale: level = scale * code (zero point 0) */
    int level_ulps;     /* the largest distance, in float ulps, between fl(scale * code) and the
                           student's own level over every code (0: bit for bit) */
    /* activations: v = ((x - sub) / div) * mul, then code = rint(v / qscale) clamped to
       [cmin, cmax]; has_* say which of the float ops are present */
    int has_sub, has_div, has_mul;
    float sub, div, mul, qscale;
} sq_qgrid;

/* The grid of a quantizer given its parameters qp (quant.h's layout; host floats, NULL when it
   has none). SQ_EARG with one line for degenerate parameters (u <= l, alpha <= 0, s <= 0,
   non-finite). Every quantizer at 1 to 8 bits has a grid (8-bit ewgs / pact / dorefa weights
   through the index container). */
sq_status sq_qgrid_derive(const sq_quant_cfg *cfg, const float *qp, sq_qgrid *g);
/* The same for --format int, which packs the codes k at their bit-widths whatever the container:
   wide = 1 leaves index_container 0 (the codes -255..255 of the 8-bit ewgs / dorefa / pact
   weights as they are). */
sq_status sq_qgrid_derive_ex(const sq_quant_cfg *cfg, const float *qp, int wide, sq_qgrid *g);

/* The student's levels of a grid: level[i] for code cmin + i code_step (i < count); the value
   the student's quantizer produces (quant_math.h), for checking the export. Returns count. */
int sq_qgrid_student_levels(const sq_quant_cfg *cfg, const float *qp, const sq_qgrid *g,
                            float *level, int cap);

/* Weight codes: w (n floats, host) through the student's weight quantizer, as integer codes on
   the grid g (code = level / scale, exact). SQ_ENUMERIC if a value is off the grid. */
sq_status sq_qgrid_weight_codes(const sq_quant_cfg *cfg, const float *qp, const sq_qgrid *g,
                                const float *w, size_t n, int *codes);

/* One quantized layer, ready to write: the weight's codes and per-output-channel scales (with
   the EWGS output scale and a folded BatchNorm), the bias, and the input's grid. */
typedef struct sq_qlayer {
    int node;           /* its node id */
    int bn;             /* the BN node folded into it (-1: none) */
    sq_qgrid gw, ga;
    int *codes;         /* weight numel codes */
    float *wscale;      /* c_out scales */
    float *bias;        /* c_out biases (zeros when the layer and its BN have none) */
    int has_bias;       /* a bias exists (layer's own or the folded BN's) */
} sq_qlayer;

/* Fills l for the quantized node id of m (host copies of its tensors; m on any backend). With
   flip, a channel whose factor is negative gets its codes negated and a positive scale, where the
   negated codes stay in int8 or the grid uses the index container (k -> -k is j -> 255 - j; QDQ
   consumers prefer positive scales); without, codes stay on the
   grid and the scale carries the sign. wide: as sq_qgrid_derive_ex. Release with sq_qlayer_free. */
sq_status sq_qlayer_build(const sq_model *m, int id, int flip, int wide, sq_qlayer *l);
void sq_qlayer_free(sq_qlayer *l);

/* Writes m as ONNX (opset 13) to path, atomically: input "input" (N, C, H, W) float in [0, 1],
   normalised first by (x - mean[c]) / std[c] from meta; output "logits" (N, classes). A
   full-precision model keeps its BatchNormalization nodes; a quantized one becomes a QDQ graph
   (see above; BatchNorm after a quantized conv folded into it). */
sq_status sq_export_onnx(const sq_model *m, const sq_ckpt_meta *meta, const char *path);
/* The same; int_kernels = 1 writes LSQ inputs as QuantizeLinear(x, s) directly, the
   DequantizeLinear -> Conv -> QuantizeLinear pattern onnxruntime fuses into integer kernels
   (QLinearConv): faster, but those kernels requantise with their own rounding, so predictions
   agree less (docs/results.md). The default (0) writes x / s as a Div before QuantizeLinear
   (scale 1): the same codes, float kernels, the student's predictions. Other quantizers' inputs
   always go through their float normalisation (their grids have no integer zero point). */
sq_status sq_export_onnx_ex(const sq_model *m, const sq_ckpt_meta *meta, int int_kernels, const char *path);

/* Writes the quantized model m as integer codes packed at their bit-widths with scales, in
   safetensors (layout: README, "Integer export"). SQ_EARG for a full-precision model. */
sq_status sq_export_int(const sq_model *m, const sq_ckpt_meta *meta, const char *path);

#ifdef __cplusplus
}
#endif
#endif
