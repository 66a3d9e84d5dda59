/* util_fixtures.h: shared test fixtures: a tiny in-memory labelled dataset, running the sqakd
   executable ($SQAKD_BIN) and capturing its output, big-endian writes for IDX files; the scratch
   directory and file helpers of suites split over several files (data, safetensors), the sample
   safetensors checkpoint, and guarded device buffers for the CUDA op tests. */
#ifndef SQAKD_TESTS_UTIL_FIXTURES_H
#define SQAKD_TESTS_UTIL_FIXTURES_H

#include "sqakd/backend.h"
#include "sqakd/data.h"
#include "sqakd/safetensors.h"
#include <stdarg.h>
#include <stdio.h>

/* n labelled 1x8x8 images of 3 classes (class-dependent pixel pattern), seeded */
void sqt_tiny_dataset(sq_dataset *ds, int n);
/* the sqakd executable: $SQAKD_BIN or build/sqakd */
const char *sqt_bin(void);
/* runs "sqakd ARGS" (ARGS from fmt), stdout+stderr into out; returns the exit status (128 when it
   did not exit normally or could not start) */
int sqt_vrun(char *out, size_t cap, const char *fmt, va_list ap);
/* the same with the arguments given directly; the suites define run(...) over their own buffer:
   #define run(...) sqt_run(g_out, sizeof g_out, __VA_ARGS__) */
int sqt_run(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void sqt_write_be32(FILE *f, uint32_t v);
/* image files for the data suites. PNG: color is a PNG_COLOR_TYPE_* value, px holds rows of
   w * channels samples of `depth` bits (8 or 16, 16-bit as big-endian byte pairs); a palette
   image uses pal (npal RGB entries of libpng's png_color), else pal is NULL. JPEG: comps 1
   (greyscale) or 3 (RGB) interleaved 8-bit samples, at the given quality. */
void sqt_write_png(const char *path, int w, int h, int color, int depth, const uint8_t *px, const void *pal,
                   int npal);
void sqt_write_jpeg(const char *path, int w, int h, int comps, const uint8_t *px, int quality);
/* creates a fresh directory /tmp/PREFIX_XXXXXX into buf; returns buf or NULL */
char *sqt_mkdtemp(char *buf, size_t cap, const char *prefix);
/* removes dir and everything under it; 0 on success */
int sqt_rmtree(const char *dir);

/* ---- scratch directory of the running test: the suite's .init creates it (mkdtemp) and its
   .fini removes it; every file of the suite builds paths under it ---- */
extern char sqt_scratch_dir[512];
/* NAME under the scratch directory, in one of 8 rotating static buffers */
const char *sqt_tpath(const char *name);
/* NAME under the scratch directory, into out */
void sqt_path_in(char *out, size_t n, const char *name);
/* mkdir NAME under the scratch directory (asserts success) */
void sqt_tmkdir(const char *name);
/* writes n bytes to path, gzip-compressed when gz (asserts success) */
void sqt_write_bytes(const char *path, const void *data, size_t n, int gz);
/* expects sq_last_error() to contain what */
void sqt_expect_error_has(const char *what);
/* expects sq_last_error() to hold no control character (file text is quoted through sq_printable) */
void sqt_expect_error_printable(void);
/* peak virtual size (VmPeak of /proc/self/status) and peak resident size (getrusage ru_maxrss) of
   the test process in KiB; -1 when unknown. Both only grow: compare before and after a call. */
long sqt_vm_peak_kb(void);
long sqt_max_rss_kb(void);
/* number of entries of dir (excluding . and ..), -1 if unreadable; the first name goes to first */
int sqt_count_entries(const char *dir, char *first, size_t n);
/* the whole file (malloc'd, one spare byte); its size in *n (asserts success) */
unsigned char *sqt_slurp(const char *path, size_t *n);

/* ---- the sample safetensors checkpoint: every dtype, odd sizes, a scalar, an empty tensor,
   odd names, metadata with escapes and UTF-8 ---- */
/* a tensor descriptor over data (nbytes from dtype and shape) */
sq_st_tensor sqt_st_tensor(const char *name, sq_st_dtype dt, int ndim, const int64_t *shape, void *data);
/* the sample (static storage, refilled on every call) */
sq_st_file sqt_st_sample(void);
/* writes the sample to path (asserts success) */
void sqt_st_write_sample(const char *path);

/* the scratch directory (mkdtemp /tmp/PREFIX_XXXXXX) of a suite that runs the executable; the test
   SKIPS, visibly, when the executable is not built */
void sqt_cli_setup(char *dir, size_t cap, const char *prefix);
/* n labelled side x side IDX images (pixels 160 where p % 3 == i % 3, else 40, plus seeded noise
   below 64; label i % classes) into img and lab */
void sqt_write_idx_pattern(const char *img, const char *lab, int n, int side, int classes, uint64_t seed);

/* every atomic write of this process fails with ENOSPC once limit bytes of a file are written
   (as a full disk would); a negative limit removes the fault */
void sqt_fail_writes_at(long long limit);

/* ---- device buffers between guard bytes (CUDA op tests) ---- */
#define SQT_GUARD 256 /* guard bytes on each side of a device buffer (keeps 256-B alignment) */
#define SQT_NSIZES 7
/* awkward vector lengths: 1, primes, not multiples of the block size or of 4 */
extern const size_t sqt_sizes[SQT_NSIZES];
/* device copy of host[0..bytes) (zeros if host is NULL) between two sentinel guards; free it with
   g->free((char *)d - SQT_GUARD) or sqt_dget_free */
void *sqt_dput(const sq_backend *g, const void *host, size_t bytes);
/* copies the payload back to host (if not NULL), expects both guards untouched, frees d */
void sqt_dget_free(const sq_backend *g, void *host, void *d, size_t bytes, const char *what);
/* syncs and asserts no CUDA backend error is pending */
void sqt_gpu_ok(const sq_backend *g);
float *sqt_hvec(size_t n);                                        /* zeroed host floats */
float *sqt_hrand(size_t n, float lo, float hi, uint64_t seed);    /* uniform host floats */
float *sqt_hdup(const float *x, size_t n);
/* fetch a device float buffer into a new host array (guards checked, device buffer freed) */
float *sqt_fetch(const sq_backend *g, float *d, size_t n, const char *what);
/* expects |got - ref| <= atol + rtol |ref| elementwise (vs the CPU) */
void sqt_expect_close(const char *what, const float *got, const float *ref, size_t n,
                      double atol, double rtol, uint64_t seed);
/* expects got bit-identical to ref (vs the CPU) */
void sqt_expect_equal(const char *what, const float *got, const float *ref, size_t n);

/* the CPU backend with its optional fused ops (BN+act, add+act, BN+add+act) left out, and its
   integer convolution and BF16 backward too when no_qconv: the unfused fp32 path the other
   backends take */
const sq_backend *sqt_cpu_unfused(int no_qconv);

/* quantizer parameters for the fake-quant tests of a kind, role and bit width (EWGS: l, u; PACT:
   alpha; LSQ: a step of 1.2 over the grid; DoReFa: none) */
void sqt_fq_params(sq_quant_kind kind, int weight, int bits, float qp[2]);

#endif
