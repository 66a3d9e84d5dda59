/* onnx.h: ONNX models in and out, as a plain in-memory graph.

   The reader (host/io/onnx.c) decodes a ModelProto with protobuf-c (code generated at build time
   from the onnx.proto schema that Debian's python3-onnx installs) and copies what sqakd uses into
   the structs below, so nothing outside host/io sees protobuf-c. Tensors are decoded whichever
   way the file stores them (raw_data little-endian, or the typed repeated fields), widened to
   float (FLOAT, DOUBLE, FLOAT16, BFLOAT16) or int64 (INT8..INT64, UINT8..UINT64, BOOL; a UINT64
   value beyond INT64_MAX is refused). Refused, each with one line naming the file (and the node
   or tensor): a file that does not parse or nests messages more than 64 deep, external data,
   segmented tensors, sparse initializers, other element types (STRING, COMPLEX*), a negative
   dimension, a tensor whose data does not match its dims, more than SQ_ONNX_MAX_DIMS
   dimensions, sizes beyond the budget below. Attributes of other kinds (graphs, lists of
   strings or tensors) are kept by name as SQ_ONNX_ATTR_OTHER.

   The writer builds a graph in the same structs (sq_onnx_new and the add_ functions) and encodes
   it with protobuf-c, writing the file atomically (host/io/atomic_write.h). */
#ifndef SQAKD_ONNX_H
#define SQAKD_ONNX_H

#include "sqakd/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SQ_ONNX_MAX_DIMS 8

/* ONNX TensorProto.DataType values used here */
enum {
    SQ_ONNX_FLOAT = 1, SQ_ONNX_UINT8 = 2, SQ_ONNX_INT8 = 3, SQ_ONNX_UINT16 = 4, SQ_ONNX_INT16 = 5,
    SQ_ONNX_INT32 = 6, SQ_ONNX_INT64 = 7, SQ_ONNX_STRING = 8, SQ_ONNX_BOOL = 9,
    SQ_ONNX_FLOAT16 = 10, SQ_ONNX_DOUBLE = 11, SQ_ONNX_UINT32 = 12, SQ_ONNX_UINT64 = 13,
    SQ_ONNX_BFLOAT16 = 16
};

typedef struct sq_onnx_tensor {
    char *name;
    int dtype;                        /* as stored in the file (SQ_ONNX_*) */
    int ndim;
    int64_t dims[SQ_ONNX_MAX_DIMS];
    size_t numel;                     /* product of dims (1 for a scalar, ndim 0) */
    float *f;                         /* float types: numel values, else NULL */
    int64_t *i;                       /* integer and bool types: numel values, else NULL */
} sq_onnx_tensor;

typedef enum {
    SQ_ONNX_ATTR_FLOAT = 1, SQ_ONNX_ATTR_INT = 2, SQ_ONNX_ATTR_STRING = 3, SQ_ONNX_ATTR_TENSOR = 4,
    SQ_ONNX_ATTR_FLOATS = 6, SQ_ONNX_ATTR_INTS = 7, SQ_ONNX_ATTR_OTHER = 99
} sq_onnx_attr_type;                  /* the AttributeProto.AttributeType values, OTHER for the rest */

typedef struct sq_onnx_attr {
    char *name;
    sq_onnx_attr_type type;
    float f;                          /* FLOAT */
    int64_t i;                        /* INT */
    char *s;                          /* STRING (NUL-terminated; bytes as stored) */
    sq_onnx_tensor *t;                /* TENSOR */
    int n;                            /* FLOATS / INTS: count */
    float *floats;
    int64_t *ints;
} sq_onnx_attr;

typedef struct sq_onnx_node {
    char *name;                       /* may be "" */
    char *op;                         /* op_type */
    char *domain;                     /* "" for the default domain */
    int nin, nout;
    char **in, **out;                 /* "" for an omitted optional input/output */
    int nattr;
    sq_onnx_attr *attr;
} sq_onnx_node;

/* A graph input or output: dims[i] = -1 for a symbolic or unknown dimension (dim_param names it
   then, else NULL). */
typedef struct sq_onnx_value {
    char *name;
    int dtype;                        /* 0: unknown */
    int ndim;                         /* -1: no shape given */
    int64_t dims[SQ_ONNX_MAX_DIMS];
    char *dim_param[SQ_ONNX_MAX_DIMS];
} sq_onnx_value;

typedef struct sq_onnx_graph {
    char *name;
    char *producer;                   /* producer_name (and version), may be "" */
    int64_t ir_version;
    int64_t opset;                    /* opset of the default domain ("" / "ai.onnx"); 0 if absent */
    int nnode;
    sq_onnx_node *node;               /* in file order (ONNX requires topological order) */
    int ninit;
    sq_onnx_tensor *init;             /* initializers */
    int ninput;
    sq_onnx_value *input;             /* graph inputs that are NOT initializers */
    int noutput;
    sq_onnx_value *output;
    /* writer bookkeeping (capacities); the reader sets them equal to the counts */
    int cap_node, cap_init, cap_input, cap_output;
} sq_onnx_graph;

/* Budget of the reader: files above SQ_ONNX_MAX_BYTES, graphs above SQ_ONNX_MAX_NODES nodes or
   tensors above SQ_ONNX_MAX_NUMEL elements are refused before anything of that size is
   allocated. */
#define SQ_ONNX_MAX_BYTES ((size_t)2 << 30)
#define SQ_ONNX_MAX_NODES 100000
#define SQ_ONNX_MAX_NUMEL ((size_t)1 << 30)

/* Reads path into *out (NULL on failure, error set naming the file). */
sq_status sq_onnx_read(const char *path, sq_onnx_graph **out);
/* The same from memory; what names the source in messages. */
sq_status sq_onnx_read_mem(const void *buf, size_t len, const char *what, sq_onnx_graph **out);
void sq_onnx_free(sq_onnx_graph *g);

/* Lookups: NULL when absent. */
const sq_onnx_attr *sq_onnx_attr_find(const sq_onnx_node *n, const char *name);
const sq_onnx_tensor *sq_onnx_init_find(const sq_onnx_graph *g, const char *name);

/* One TensorProto in a file of its own (the .pb files of ONNX's backend tests): fills *t, which
   the caller releases with sq_onnx_tensor_clear. */
sq_status sq_onnx_read_tensor(const char *path, sq_onnx_tensor *t);
sq_status sq_onnx_read_tensor_mem(const void *buf, size_t len, const char *what, sq_onnx_tensor *t);
void sq_onnx_tensor_clear(sq_onnx_tensor *t);

/* ---- writing ---- */
/* An empty graph for the default domain at `opset`; producer "sqakd". */
sq_onnx_graph *sq_onnx_new(const char *name, int64_t opset);
/* Appends a node; in/out are copied ("" for an omitted optional input). Returns the node, to add
   attributes to (NULL with the error set for an empty op or negative counts). The pointer is
   valid until the next sq_onnx_add_node (the array grows); sq_onnx_add_init's likewise until the
   next sq_onnx_add_init. Setting an attribute the node already has replaces it. */
sq_onnx_node *sq_onnx_add_node(sq_onnx_graph *g, const char *op, const char *name, int nin,
                               const char *const *in, int nout, const char *const *out);
void sq_onnx_attr_int(sq_onnx_node *n, const char *name, int64_t v);
void sq_onnx_attr_float(sq_onnx_node *n, const char *name, float v);
void sq_onnx_attr_string(sq_onnx_node *n, const char *name, const char *v);
void sq_onnx_attr_ints(sq_onnx_node *n, const char *name, int count, const int64_t *v);
void sq_onnx_attr_floats(sq_onnx_node *n, const char *name, int count, const float *v);
/* Appends an initializer: dtype SQ_ONNX_FLOAT takes float data, SQ_ONNX_INT8 / SQ_ONNX_UINT8 /
   SQ_ONNX_INT32 / SQ_ONNX_INT64 (and INT16, UINT16, UINT32, BOOL) take int64_t data (each value
   must fit the type); the data is copied and encoded as little-endian raw_data. NULL with the
   error set when the arguments do not add up (negative dims, a value out of range). */
sq_onnx_tensor *sq_onnx_add_init(sq_onnx_graph *g, const char *name, int dtype, int ndim,
                                 const int64_t *dims, const void *data);
/* A TENSOR attribute (dtype and data as for sq_onnx_add_init); SQ_EARG with the error set when
   the arguments do not add up (the node is unchanged then). Setting an attribute that the node
   already has replaces it. */
sq_status sq_onnx_attr_tensor(sq_onnx_node *n, const char *name, int dtype, int ndim, const int64_t *dims,
                              const void *data);
/* Graph inputs / outputs; dims[i] < 0 is written as the symbolic dimension "N". */
void sq_onnx_add_input(sq_onnx_graph *g, const char *name, int dtype, int ndim, const int64_t *dims);
void sq_onnx_add_output(sq_onnx_graph *g, const char *name, int dtype, int ndim, const int64_t *dims);
/* Encodes g (ir_version 8 unless g->ir_version is set; opset_import: g->opset for the default
   domain, version 1 of any other domain a node names; producer_name g->producer) and writes it
   atomically to path. A graph read by sq_onnx_read encodes too, unless it holds attributes of
   kind SQ_ONNX_ATTR_OTHER (refused: SQ_EARG). */
sq_status sq_onnx_write(const sq_onnx_graph *g, const char *path);
/* The same into a malloc'ed buffer (*len bytes); the caller frees *buf. */
sq_status sq_onnx_encode(const sq_onnx_graph *g, void **buf, size_t *len);

/* ---- .npy arrays (NumPy format 1.0/2.0/3.0, C order) ----
   sq_npy_read accepts little-endian float32 ('<f4') and float64 ('<f8', converted), and
   refuses Fortran order, other types, and headers or sizes that do not add up, with one line
   naming the file. Fills *data (malloc'ed, the caller frees), ndim and dims. */
sq_status sq_npy_read(const char *path, float **data, int *ndim, int64_t dims[SQ_ONNX_MAX_DIMS]);
/* The same from memory (what names the source in messages): the fuzzing harness's entry point. */
sq_status sq_npy_read_mem(const void *buf, size_t len, const char *what, float **data, int *ndim,
                          int64_t dims[SQ_ONNX_MAX_DIMS]);
/* The element types sq_npy_read_raw reads (little-endian; one-byte types as '|u1', '|i1', '|b1') */
typedef enum sq_npy_dtype {
    SQ_NPY_F4, SQ_NPY_F8, SQ_NPY_U1, SQ_NPY_I1, SQ_NPY_BOOL, SQ_NPY_U2, SQ_NPY_I2, SQ_NPY_U4, SQ_NPY_I4,
    SQ_NPY_U8, SQ_NPY_I8
} sq_npy_dtype;
/* The array as stored, any of those types: *data (malloc'ed, the caller frees) holds the raw
   little-endian elements, *dtype their type; the same checks as sq_npy_read otherwise (the npy:
   data spec reads images and labels with it). */
sq_status sq_npy_read_raw(const char *path, sq_npy_dtype *dtype, void **data, int *ndim,
                          int64_t dims[SQ_ONNX_MAX_DIMS]);
const char *sq_npy_dtype_name(sq_npy_dtype t);   /* "uint8", "float32", ... */
/* Writes '<f4' C-order data atomically, in NumPy's own version 1.0 layout (the header padded
   with spaces to a multiple of 64 bytes). */
sq_status sq_npy_write(const char *path, const float *data, int ndim, const int64_t *dims);

#ifdef __cplusplus
}
#endif
#endif
