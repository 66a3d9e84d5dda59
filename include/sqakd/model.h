/* model.h: a model is a flat array of nodes (op, inputs, attrs, param slots, quantizer slot),
   walked forward in order and backward in reverse, against any backend's op table.
   Parameters, gradients, optimizer state and quantizer parameters each live in ONE contiguous
   buffer per kind; activations and their gradients are planned once per batch size. */
#ifndef SQAKD_MODEL_H
#define SQAKD_MODEL_H

#include "sqakd/backend.h"
#include "sqakd/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sq_node_op {
    SQ_NODE_INPUT = 0, SQ_NODE_CONV, SQ_NODE_BN, SQ_NODE_ACT, SQ_NODE_POOL, SQ_NODE_GAP,
    SQ_NODE_LINEAR, SQ_NODE_ADD, SQ_NODE_SHORTCUT_A, SQ_NODE_CONCAT, SQ_NODE_SHUFFLE,
    SQ_NODE_DROPOUT, SQ_NODE_FLATTEN,
    /* added for imported (ONNX) graphs, issue 18 */
    SQ_NODE_PAD,      /* constant padding of H and W: pt, pl, pb, pr rows/columns of pad_value */
    SQ_NODE_CLIP,     /* y = min(max(x, lo), hi) (Clip with constant bounds other than ReLU/ReLU6) */
    SQ_NODE_AFFINE,   /* y = a[ch] x + b[ch]: Mul / Add / Sub / Div by a constant (buffers pw = a, pb = b) */
    SQ_NODE_SLICE     /* channels [c0, c0 + c) of the input (Split / Slice on the channel axis) */
} sq_node_op;

/* kinds of entries in the parameter table */
typedef enum { SQ_PT_TRAIN = 0, SQ_PT_BUFFER = 1, SQ_PT_QUANT = 2 } sq_param_kind;

typedef struct sq_param {
    char name[96];        /* PyTorch state_dict name, e.g. "layer1.0.conv1.weight" */
    sq_param_kind kind;
    int ndim;
    int shape[4];
    size_t numel;
    size_t off;           /* offset (floats) in its buffer (params/buffers/quant) */
} sq_param;

typedef struct sq_node {
    sq_node_op op;
    int in0, in1;         /* input node ids (-1: none) */
    int c, h, w;          /* output shape per sample */
    /* attrs */
    int k, stride, pad, groups, has_bias;     /* conv (k: kernel size), pool (k) */
    /* general windows (issue 18; the zoo's square ones keep kh = kw = k, sh = sw = stride and
       pad_t = pad_l = pad_b = pad_r = pad): conv kernel kh x kw (stride and pad stay square and symmetric:
       the builder puts a PAD node before a conv whose padding is not), pool kernel, strides and
       pads (pads of a max pool are ignored elements, as -inf), PAD's amounts */
    int kh, kw, sh, sw, pad_t, pad_l, pad_b, pad_r;
    int ceil_mode;        /* pool: output size rounded up (ONNX / PyTorch ceil_mode) */
    int count_include_pad;/* avg pool: pads count in the divisor (the zoo's pools: 1) */
    float lo, hi;         /* CLIP bounds */
    float pad_value;      /* PAD */
    int c0;               /* SLICE: first channel taken */
    int act;              /* sq_act_kind */
    int pool;             /* sq_pool_kind */
    float p;              /* dropout */
    int quantizable;      /* conv/linear that the recipe quantizes (method.md 3.6) */
    int first_or_last;    /* stem conv / classifier: quantized only with --quant-first-last */
    int pw, pb;           /* param ids: conv/linear weight, bias; bn gamma, beta (-1 none) */
    int prm, prv;         /* bn running mean/var (buffer ids) */
    int64_t bn_tracked;   /* num_batches_tracked */
    char name[80];        /* module name, e.g. "layer1.0.conv1" */
    /* quantization (filled by sq_model_setup when quantized) */
    int quant;            /* 1 if this conv/linear runs quantized */
    sq_quant_cfg qw, qa;
    int qpw, qpa, qps;    /* quant param ids: weight qp, act qp, output scale (-1 none) */
    /* planned buffers (backend memory) */
    float *out, *gout;    /* (N, c, h, w) */
    float *save_mean, *save_invstd;
    int32_t *argmax;
    uint8_t *mask;
    float *xq, *gxq;      /* quantized input and its gradient */
    float *wq, *gwq;      /* quantized weight and its gradient */
    /* ewgs output scale |s| applied to the (small) quantized weight and bias instead of the
       (large) layer output: y = |s| (W_q x + b) = (|s| W_q) x + |s| b, and in the backward
       dL/dW_q = |s| G, dL/ds = sign(s) <G, W_q> with G the gradient of |s| W_q */
    float *wqs, *gwqs;    /* |s| W_q and its gradient */
    float *bqs, *gbqs;    /* |s| b and its gradient (layers with a bias) */
    float *scratch_w, *scratch_a;
    float *pert_w, *pert_a;   /* Hessian-trace probes (NULL in normal training) */
    sq_conv_shape cs;
    /* BatchNorm folding (sq_model_fold_bn): a folded BN node (folded = 1) passes its input
       through; the conv before it runs with fw (folded weight) and fbias (n->c floats), both
       backend memory owned by the model; the conv's own parameters are left untouched */
    int folded;
    float *fw, *fbias;
    /* BN or ADD whose only consumer is the next node, an activation: with the backend's fused
       op (bn_act_* in training mode, add_act_*) the pair runs as one op, writing straight into
       the activation's output (set by sq_model_setup) */
    int fuse_act;
    /* the backward WRITES this node's gout (not accumulates): its one consumer is a BN or an
       unquantized convolution whose backward has a "set" variant on the backend (backend.h);
       such a gout is not zeroed before the backward (set by sq_model_setup) */
    int gout_set;
} sq_node;

typedef struct sq_quant_opts {
    sq_quant_kind kind;   /* SQ_QUANT_NONE: full precision */
    int wbits, abits;
    float delta_w, delta_a;
    int first_last;       /* also quantize the stem conv and the classifier */
    int per_channel;      /* one weight quantizer (parameters, DoReFa's M) per output channel */
    const char *bits_map; /* per-layer bit-widths: canonical JSON from sq_bits_map_canonical
                             (interned: lives as long as the process), NULL: none */
} sq_quant_opts;

typedef struct sq_model {
    char arch[32];
    int in_c, in_h, in_w, classes;
    int nnodes, cap_nodes;
    sq_node *nodes;
    int nparams, cap_params;
    sq_param *params;
    size_t n_train, n_buf, n_quant;   /* buffer sizes in floats (padded) */
    sq_quant_opts qopts;

    /* runtime (after sq_model_setup) */
    const sq_backend *be;
    int batch;                 /* planned batch size */
    int with_grad;             /* 0: inference-only (teacher) */
    float *p, *g;              /* trainable params and grads */
    float *buf;                /* running stats */
    float *qp, *qg;            /* quantizer params and grads */
    float *act_arena, *grad_arena;
    size_t act_floats, grad_floats;
    size_t grad_zero_floats;   /* the front of grad_arena that each backward zeroes */
    void *ws;                  /* conv workspace */
    size_t ws_bytes;
    uint64_t dropout_seed;
    /* SQuaT feature loss (issue 20): when squat_xt is set, the backward adds the squat_fwd_bwd
       term (backend.h) of that quantized layer's input against squat_xt (the teacher's feature
       there, backend memory), weighted squat_weight, to *squat_loss and the layer's input
       gradient, between the layer's own backward and its activation quantizer's. Set by the
       training step for its backward only (host/train/squat.c); squat_xt NULL otherwise. */
    int squat_node;
    const float *squat_xt;
    float squat_weight;
    float *squat_loss;
    /* data parallelism (issue 22, docs/scaling.md): with dist_bucket > 0 the backward hands the
       gradients to the backend's allreduce_start as they become final, in buckets: each stretch
       of g, from its top down, that no node still to run writes, once it holds dist_bucket
       floats (the rest of g and all of qg after the last node), and ends with allreduce_wait,
       so that on a device the sums of the late layers overlap the backward of the early ones.
       0: the backward all-reduces nothing. dist_lo (host memory, made by the first bucketed
       backward): per node i, the end of the highest parameter gradient that a node before i
       writes. */
    size_t dist_bucket;
    size_t *dist_lo;
    /* per-node profile (bench step --profile): when set (host memory, 2 nnodes doubles that the
       caller zeroes and frees), the seconds of node i's forward are added to prof[2i] and of its
       backward to prof[2i + 1] (a fused op to the node it starts at), with the backend
       synchronised before and after each (which slows a device: the total exceeds a step) */
    double *prof;
    /* reduced-precision teacher state (sqakd/teacher_prec.h; NULL: the fp32 forward). Release it
       with sq_teacher_prec_release() before sq_model_free(). */
    void *tprec;
} sq_model;

/* Builds the graph and parameter table of a zoo model (no memory yet). */
sq_status sq_model_create(const char *arch, int c, int h, int w, int classes, sq_model **out);
/* Graphs that are not in the zoo (imported ONNX models) have arch "graph" and travel as JSON text
   (a checkpoint's "graph" metadata): the nodes in order with their attributes; parameters follow
   from the nodes. sq_model_from_graph_json rebuilds the model (no memory) and checks it (what
   names the source in errors); sq_model_clone_graph builds an empty model of the same graph as
   src (a zoo model by its name); sq_model_check refuses graphs whose shapes do not add up. */
char *sq_model_graph_json(const sq_model *m);   /* malloc'ed */
sq_status sq_model_from_graph_json(const char *text, const char *what, sq_model **out);
sq_status sq_model_clone_graph(const sq_model *src, sq_model **out);
sq_status sq_model_check(const sq_model *m, const char *what);
const char *sq_node_op_name(int op);            /* "conv", "bn", ... */
/* Names of the zoo and their description. */
int sq_model_zoo_count(void);
const char *sq_model_zoo_name(int i);
const char *sq_model_zoo_desc(int i);
size_t sq_model_param_count(const sq_model *m);   /* trainable parameters (PyTorch count) */

/* Marks layers quantized per method.md 3.6 and adds quantizer parameters. Call before setup.
   q->bits_map overrides wbits / abits per layer; a name in it that is not a quantized conv or
   linear of m is refused (SQ_EARG, the quantized layers listed). */
sq_status sq_model_set_quant(sq_model *m, const sq_quant_opts *q);

/* Per-layer bit-widths (host/model/bits_map.c): text[0..len) is a JSON object, layer name ->
   {"wbits": W, "abits": A}, either key optional, bits 1..8. On success *out is its canonical
   compact JSON, interned (never freed, shared by every copy of the options). what names the
   source in the one-line errors (bad JSON with its byte offset, a bad entry, bits out of range,
   a name listed twice). */
sq_status sq_bits_map_canonical(const char *text, size_t len, const char *what, const char **out);
/* applies a canonical map to m's quantized layers (sq_model_set_quant calls it) */
sq_status sq_bits_map_apply(sq_model *m, const char *map);

/* Allocates every buffer on the backend for `batch` samples. with_grad = 0 for a frozen model. */
sq_status sq_model_setup(sq_model *m, const sq_backend *be, int batch, int with_grad);
void sq_model_free(sq_model *m);

/* Kaiming / VGG init as method.md section 5, BN gamma 1 beta 0, running var 1. */
void sq_model_init_weights(sq_model *m, uint64_t seed);

/* Input: copy n samples (host floats) into the input node. */
void sq_model_set_input(sq_model *m, const float *x_host, int n);
/* Forward over n <= batch samples (train: batch statistics, dropout). Returns logits node buffer
   (backend memory, (n, classes)). */
float *sq_model_forward(sq_model *m, int n, int train);
/* Backward from glogits (backend memory (n, classes)); accumulates into m->g and m->qg, which the
   caller zeroes (sq_model_zero_grad). */
void sq_model_backward(sq_model *m, int n, const float *glogits);
/* The model's own logits-gradient buffer (n x classes, backend memory; NULL without gradients): a
   loss that writes its gradient there saves the backward its copy (sq_model_backward(m, n,
   sq_model_logits_grad(m))). */
float *sq_model_logits_grad(sq_model *m);
void sq_model_zero_grad(sq_model *m);

/* Host access to a named tensor (copies). Returns SQ_EARG if the name is unknown. */
int sq_model_find_param(const sq_model *m, const char *name);
float *sq_model_param_ptr(const sq_model *m, int id);   /* backend pointer */
sq_status sq_model_get(const sq_model *m, const char *name, float *host, size_t numel);
sq_status sq_model_set(sq_model *m, const char *name, const float *host, size_t numel);

/* Quantizer initialisation from one batch in train mode, layer by layer (method.md 3.2). */
sq_status sq_model_quant_init(sq_model *m, const float *x_host, int n);

/* Folds every eval-mode BatchNorm that directly follows a convolution (and is its only consumer)
   into that convolution, for an inference-only model such as the frozen teacher:
   W' = W gamma / sqrt(var + eps), b' = (b - mean) gamma / sqrt(var + eps) + beta (computed in
   double on the host, written back to the model's weights). The BN node then passes its input
   through. Results change only by float rounding. Call after sq_model_setup(m, be, batch, 0)
   and after the weights are loaded; a second call does nothing. Fills *folded (may be NULL)
   with the number of BN layers folded. */
sq_status sq_model_fold_bn(sq_model *m, int *folded);

/* Lets the nodes of an inference-only model (the frozen teacher) share activation buffers: a
   node's output lives from its node until its last reader has run (plus the reach of the fused
   forward ops), then the buffer serves a later node. Afterwards only the last node's output (the
   logits) is valid once a forward has returned; nothing else may read an intermediate output
   after the forward (SQuaT's teacher feature does: do not compact then). Call after
   sq_model_fold_bn, before anything keeps node pointers (teacher precision, CUDA graphs); the
   old arena is freed. */
sq_status sq_model_compact_activations(sq_model *m);

/* Copies every tensor with the same name and shape from src (teacher -> student). Returns the
   number copied. */
int sq_model_copy_matching(sq_model *dst, const sq_model *src);

/* EWGS delta from the Hessian trace (method.md 3.1, Lee et al. 2021): for every quantized tensor,
   Hutchinson's estimate of Tr(H) w.r.t. the discretizer output q (Rademacher v, Hv by central
   finite differences of gradients), delta = max(0, (Tr(H)/numel) / (3 std(g_q))), averaged over
   the n_batches batches in xs (each of n samples). The loss is the training loss: KL against the
   teacher (labels NULL) or CE. BN running statistics are left as they were. */
sq_status sq_model_update_delta(sq_model *m, sq_model *teacher, const float *const *xs,
                                const int32_t *const *labels, int n_batches, int n, float T, float alpha,
                                uint64_t seed);

/* Bytes of the model at its bit-widths (quantized layers at wbits, the rest at 32 bits). */
double sq_model_size_bytes(const sq_model *m);

#ifdef __cplusplus
}
#endif
#endif
