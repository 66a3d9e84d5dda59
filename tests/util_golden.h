/* util_golden.h: reader for the golden fixtures that tools/gen_golden.py (the PyTorch oracle)
   writes under tests/data/, plus the tolerance check the golden tests share.

   File format "SQGOLD01", version 1, all little endian:
       char     magic[8] = "SQGOLD01"
       uint32   version  = 1
       uint32   count
       count x { uint32 name_len; char name[name_len];      (no NUL)
                 uint32 ndim;     int64 dims[ndim];
                 float32 data[prod(dims)] }                 (row-major; ndim 0 = one scalar)
   Names are "<case>.<tensor>" for op cases (e.g. "conv_s2p1.gx") and PyTorch state_dict names
   (plus "input.", "out.", "grad.", "after." prefixes) for model fixtures. */
#ifndef SQAKD_TESTS_UTIL_GOLDEN_H
#define SQAKD_TESTS_UTIL_GOLDEN_H

#include <stddef.h>
#include <stdint.h>
#include "sqakd/common.h"

#define SQ_GOLDEN_MAGIC "SQGOLD01"
#define SQ_GOLDEN_VERSION 1u
#define SQ_GOLDEN_MAX_DIMS 8

typedef struct sq_golden_tensor {
    char *name;
    int ndim;
    int64_t dims[SQ_GOLDEN_MAX_DIMS];
    size_t numel;
    float *data;
} sq_golden_tensor;

typedef struct sq_golden {
    int count;
    sq_golden_tensor *t;
} sq_golden;

/* Loads a whole fixture. SQ_EIO if unreadable; SQ_EFORMAT (with the offset) on bad magic,
   unsupported version, truncation, absurd sizes or trailing bytes. *out is NULL on failure. */
sq_status sq_golden_load(const char *path, sq_golden **out);
void sq_golden_free(sq_golden *g);
/* NULL when absent */
const sq_golden_tensor *sq_golden_find(const sq_golden *g, const char *name);
/* find "<prefix>.<name>"; NULL when absent */
const sq_golden_tensor *sq_golden_findf(const sq_golden *g, const char *prefix, const char *name);

/* Path of a fixture file: $SQAKD_TEST_DATA/<file> if that variable is set, else
   tests/data/<file> (relative to the current directory; make test runs from the repo root). */
void sq_golden_path(const char *file, char *buf, size_t size);

/* Compares got against ref: |got - ref| <= atol + rtol |ref| (and both finite). Prints up to 5
   failing indices with both values, prefixed by what; returns the number of failures. */
size_t sq_golden_compare(const char *what, const float *got, const float *ref, size_t n,
                         float atol, float rtol);

#endif
