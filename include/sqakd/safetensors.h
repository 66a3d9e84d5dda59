/* safetensors.h: reading and writing safetensors files (8-byte little-endian header length,
   JSON header with dtype/shape/data_offsets per tensor and a "__metadata__" string map, then raw
   little-endian data). Writes are atomic: temporary file in the same directory, fsync, rename,
   fsync of the directory. A crash never leaves a torn file under the final name. */
#ifndef SQAKD_SAFETENSORS_H
#define SQAKD_SAFETENSORS_H

#include "sqakd/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { SQ_ST_F32 = 0, SQ_ST_I64 = 1, SQ_ST_I32 = 2, SQ_ST_U8 = 3 } sq_st_dtype;

#define SQ_ST_MAX_DIMS 8

typedef struct sq_st_tensor {
    char *name;
    sq_st_dtype dtype;
    int ndim;
    int64_t shape[SQ_ST_MAX_DIMS];
    void *data;        /* writer: borrowed; reader: points into the file's loaded data */
    size_t nbytes;
} sq_st_tensor;

typedef struct sq_st_kv { char *key, *value; } sq_st_kv;

typedef struct sq_st_file {
    int ntensors;
    sq_st_tensor *tensors;
    int nmeta;
    sq_st_kv *meta;
    void *blob;        /* reader-owned buffer */
} sq_st_file;

/* Writer: build an sq_st_file with borrowed pointers and call write. Tensors are written in the
   order given (data offsets ascending, 8-byte aligned header as the format recommends). */
sq_status sq_st_write(const char *path, const sq_st_file *f);

/* Reader: validates header length, JSON, dtypes, shapes vs. offsets and file size; errors name
   the file and the byte offset. Each tensor's data is 64-byte aligned inside f->blob. */
sq_status sq_st_read(const char *path, sq_st_file *out);
void sq_st_free(sq_st_file *f);   /* for files returned by sq_st_read */

const sq_st_tensor *sq_st_find(const sq_st_file *f, const char *name);
const char *sq_st_meta(const sq_st_file *f, const char *key);   /* NULL if absent */

/* Atomically write an arbitrary byte buffer (used for JSON results, too). */
sq_status sq_write_file_atomic(const char *path, const void *data, size_t n);

/* Bytes per element and header name ("F32", ...) of a dtype; 0 / NULL for an invalid value. */
size_t sq_st_dtype_size(sq_st_dtype d);
const char *sq_st_dtype_name(sq_st_dtype d);

/* Atomic writes report their steps to a fault hook that tests inject (host/io/atomic_write.h);
   temporary files are named "<path>.tmp.XXXXXX". */

#ifdef __cplusplus
}
#endif
#endif
