/* import.h: an ONNX model as an sqakd model (docs/onnx.md).

   sq_onnx_import reads the file, folds the constant shape arithmetic exporters emit, maps each
   supported op onto graph nodes (host/model/onnx_import.c has the table) and places the
   quantizers' flags by the generalised method.md rule: every convolution quantizable except the
   first; the first convolution and the classifier (the last Gemm/MatMul, or the last convolution
   when there is none) quantized only with --quant-first-last. What it cannot map gets one line
   naming the node, its op and what is supported (SQ_EARG for an unsupported op or shape,
   SQ_EFORMAT / SQ_EIO for a bad file). */
#ifndef SQAKD_IMPORT_H
#define SQAKD_IMPORT_H

#include "sqakd/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SQ_IMPORT_MAX_INPUTS 16

struct sq_onnx_tensor;
typedef struct sq_import_opts {
    int in_c, in_h, in_w;       /* --input CxHxW: fixes symbolic input dimensions (0: from the graph) */
    int has_mean, has_std;      /* --mean / --std given */
    float mean[4], std[4];
    /* sqakd infer: graph inputs 1..nbind-1 given as tensors (bind[k], NULL: not given). Such an
       input is a constant where an op needs one (a weight, a shape, Slice's starts: ONNX's own
       node tests pass them as inputs) and an input node where it needs a computed tensor. */
    int nbind;
    const struct sq_onnx_tensor *const *bind;
} sq_import_opts;

typedef struct sq_imported {
    sq_model *m;                /* the graph, arch "graph" (no memory yet) */
    int ntensors;               /* the parameters' values from the file's initializers */
    char **names;
    float **data;
    size_t *numel;
    float mean[4], std[4];      /* normalisation: a leading per-channel Sub/Div of the graph, else
                                   the options', else 0 / 1 */
    int norm_from_graph;        /* 1 when the graph's own normalisation was lifted into mean/std */
    int ninputs;                /* graph inputs */
    int input_node[SQ_IMPORT_MAX_INPUTS];   /* graph input k -> its INPUT node (-1: used as a constant) */
    int out_ndim;               /* the output's rank with its batch dimension (2 for logits) */
    int64_t out_dims[8];        /* the output's dims after the batch dimension */
    int64_t opset;
    char producer[64];
} sq_imported;

sq_status sq_onnx_import(const char *path, const sq_import_opts *o, sq_imported *out);
/* Copies the values into a model set up from imp->m's graph (or a clone of it). */
sq_status sq_imported_load(const sq_imported *imp, sq_model *m);
void sq_imported_free(sq_imported *imp);   /* frees the values and, unless taken (NULL), imp->m */

/* A model file by path: an ONNX file (.onnx, imported with io; NULL: no options) or an sqakd
   checkpoint. sq_model_open builds, sets up and loads it (as sq_ckpt_open_model); an ONNX model
   gets arch "graph", role "teacher", no quantizer and the import's normalisation in *meta. */
struct sq_ckpt_meta;
sq_status sq_model_open(const char *path, const sq_import_opts *io, const struct sq_backend *be, int batch,
                        int with_grad, sq_model **out, struct sq_ckpt_meta *meta);
sq_status sq_model_read_meta(const char *path, const sq_import_opts *io, struct sq_ckpt_meta *meta);

/* 1 when path names an ONNX file (by its extension, .onnx) */
int sq_is_onnx_path(const char *path);

#ifdef __cplusplus
}
#endif
#endif
