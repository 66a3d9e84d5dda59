/* api.h: the C interface of libsqakd.so for other languages (the Python package, python/sqakd,
   binds it with ctypes). Only plain C types cross it: no FILE *, no struct layout (a model is an
   opaque handle), strings are NUL-terminated UTF-8 owned by the library.

   Errors: a function that fails returns NULL or a non-zero status and leaves one line in
   sq_api_last_error() (per thread, valid until the thread's next call into the library). A
   command run by sq_api_run prints its own error line, "sqakd CMD: message", to stderr and
   returns its exit status, as the executable does.

   Calls may come one after another in one process (a notebook): a command keeps no state
   between calls that changes the next one, and a run directory's lock is released when its
   command returns. They must not overlap: one call at a time per process (the Python package
   holds a lock around each). */
#ifndef SQAKD_API_H
#define SQAKD_API_H

#ifdef __cplusplus
extern "C" {
#endif

/* bumped when a function below changes; the Python package checks it when it loads the library */
#define SQ_API_VERSION 1
int sq_api_version(void);
/* "sqakd 0.2.0 (git 1234abcd5678)": what `sqakd --version` prints first */
const char *sq_api_version_string(void);
/* the backends compiled in, as `sqakd --version` prints them ("cpu (...), cuda (...)") */
const char *sq_api_backends(void);

/* Runs one command line, argv[0] being the program name (argv[1] the command: train, distill,
   eval, ...), exactly as the executable would, and returns its exit status. stdout and stderr are
   flushed before it returns. */
int sq_api_run(int argc, char **argv);

const char *sq_api_last_error(void);

/* ---- a model for inference: a checkpoint (.safetensors) or an ONNX file ---- */
typedef struct sq_api_model sq_api_model;

/* Opens path on device "cpu" | "cuda" | "auto" (NULL: "auto") with room for batch samples per
   forward pass (the forward splits larger inputs); threads > 0 sets the CPU threads (0: leave
   them). For an ONNX file with symbolic input dimensions, in_c/in_h/in_w fix them (0: from the
   graph), as `--input CxHxW` does. NULL on failure (sq_api_last_error). */
sq_api_model *sq_api_model_open(const char *path, const char *device, int batch, int threads, int in_c, int in_h,
                                int in_w);
/* The input's channels, height, width and the number of classes (any pointer may be NULL). */
void sq_api_model_shape(const sq_api_model *m, int *c, int *h, int *w, int *classes);
/* The model's metadata as one JSON object: path, arch, quantizer, wbits, abits, mean, std,
   dataset, role, epoch, metric, device. */
const char *sq_api_model_describe(const sq_api_model *m);
/* The forward pass of n samples x (n x C x H x W float32, C order) into logits (n x classes
   float32), as `sqakd infer` computes it: a checkpoint takes pixels in [0, 1] and applies its
   normalisation; an ONNX file takes what its graph takes. 0, or non-zero with
   sq_api_last_error() set (bad arguments, a device error). */
int sq_api_model_forward(sq_api_model *m, const float *x, long long n, float *logits);
void sq_api_model_close(sq_api_model *m);

#ifdef __cplusplus
}
#endif
#endif
