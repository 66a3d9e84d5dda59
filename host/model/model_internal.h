/* model_internal.h: graph-building helpers shared by the zoo and the graph runtime. Each returns
   the new node's id; parameters are registered under PyTorch names "<name>.<leaf>". */
#ifndef SQAKD_MODEL_INTERNAL_H
#define SQAKD_MODEL_INTERNAL_H
#include "sqakd/model.h"

int sq_param_add(sq_model *m, const char *prefix, const char *leaf, sq_param_kind kind, int ndim,
                 const int *shape);
int sq_b_input(sq_model *m, int c, int h, int w);
int sq_b_conv(sq_model *m, int in, const char *name, int cout, int k, int stride, int pad,
              int groups, int bias);
int sq_b_bn(sq_model *m, int in, const char *name);
int sq_b_act(sq_model *m, int in, int kind);
int sq_b_pool(sq_model *m, int in, int kind, int k, int stride, int pad);
int sq_b_gap(sq_model *m, int in);
int sq_b_flatten(sq_model *m, int in);
int sq_b_linear(sq_model *m, int in, const char *name, int out, int bias);
int sq_b_add(sq_model *m, int a, int b);
int sq_b_shortcut_a(sq_model *m, int in, int cout);
int sq_b_concat(sq_model *m, int a, int b);
int sq_b_shuffle(sq_model *m, int in, int groups);
int sq_b_dropout(sq_model *m, int in, float p);
/* general windows for imported graphs (issue 18): a conv with a kh x kw kernel, a square stride
   and pads top/left/bottom/right (a PAD node is put before it when the pads are not one value;
   returns the conv's id); a pool with any kernel, strides and pads, ceil_mode and, for AVG,
   count_include_pad; constant padding; Clip; a per-channel affine y = a[ch] x + b[ch] whose a and
   b are buffers "<name>.a" / "<name>.b" of c floats (filled by the caller after set-up); channels
   [c0, c0 + c) of the input */
int sq_b_conv_k(sq_model *m, int in, const char *name, int cout, int kh, int kw, int stride,
                int pad_t, int pad_l, int pad_b, int pad_r, int groups, int bias);
int sq_b_pool_k(sq_model *m, int in, int kind, int kh, int kw, int sh, int sw, int pad_t,
                int pad_l, int pad_b, int pad_r, int ceil_mode, int count_include_pad);
int sq_b_pad(sq_model *m, int in, int pad_t, int pad_l, int pad_b, int pad_r, float value);
int sq_b_clip(sq_model *m, int in, float lo, float hi);
int sq_b_affine(sq_model *m, int in, const char *name);
int sq_b_slice(sq_model *m, int in, int c0, int c);


/* graph.c internals used by quantizer initialisation, folding and the 16-bit teacher */
int sq_node_consumers(const sq_model *m, int id); /* nodes that read node id's output */
void sq_node_fwd(sq_model *m, int i, int batch, int train);
void sq_node_fwd_qlayer(sq_model *m, sq_node *n, int batch);
#endif
