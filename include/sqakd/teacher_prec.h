/* teacher_prec.h: the frozen teacher's forward in reduced precision (--teacher-precision).
   fp32 (the default) is the model's own forward, unchanged. fp16 / bf16 run the BatchNorm-folded
   teacher through the backend's optional 16-bit ops (backend.h, "optional: reduced-precision
   teacher"; CUDA only): the input is converted once, convolutions run in cuDNN on 16-bit tensors
   with fp32 accumulation and the bias and a following ReLU fused in, activations, residual adds,
   pooling and the option-A shortcut stay 16-bit, global average pooling returns to fp32 and the
   head (BatchNorm1d, linear) runs in fp32, so the logits handed to the KL kernel are fp32. Nodes
   without a 16-bit op run their fp32 op between two conversions. */
#ifndef SQAKD_TEACHER_PREC_H
#define SQAKD_TEACHER_PREC_H

#include "sqakd/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { SQ_TPREC_FP32 = 0, SQ_TPREC_FP16 = 1, SQ_TPREC_BF16 = 2 } sq_teacher_prec;

/* "fp32" | "fp16" | "bf16" -> *out; SQ_EARG with a one-line message otherwise */
sq_status sq_teacher_prec_parse(const char *s, sq_teacher_prec *out);
const char *sq_teacher_prec_name(sq_teacher_prec p);
/* SQ_OK when backend be can run a teacher in precision p (fp32 always; fp16 / bf16 only with
   the 16-bit ops); else SQ_EARG with "--teacher-precision fp16 needs --device cuda (...)". */
sq_status sq_teacher_prec_check(const sq_backend *be, sq_teacher_prec p);
/* Makes sq_teacher_forward(m, .) run in precision p. m: set up inference-only (with_grad 0),
   weights loaded and sq_model_fold_bn() done, none of which may change afterwards (the 16-bit
   weights are converted here, once). Allocates everything the reduced-precision forward needs
   (16-bit activations, weights, cuDNN workspace) and runs it once, so that every cuDNN plan is
   made here and a training step neither plans nor allocates. fp32 releases any earlier state.
   SQ_EARG (sq_teacher_prec_check), SQ_ENOMEM (message naming the batch) or SQ_EDEVICE. */
sq_status sq_teacher_prec_apply(sq_model *m, sq_teacher_prec p);
/* The teacher's eval-mode forward over n <= m->batch samples (input set as for
   sq_model_forward); returns fp32 logits in backend memory (n, classes). Without a
   reduced-precision state this is sq_model_forward(m, n, 0). The 16-bit forward always
   processes m->batch rows (rows past n are unused), so it runs with the plans made at apply. */
float *sq_teacher_forward(sq_model *m, int n);
/* Frees the reduced-precision state (m->tprec); the model stays usable in fp32. */
void sq_teacher_prec_release(sq_model *m);

#ifdef __cplusplus
}
#endif
#endif
