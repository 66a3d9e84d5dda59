/* util_check.h: shared test helpers: a deterministic RNG (splitmix64) and array fills, a
   tolerance compare |got - ref| <= atol + rtol * |ref| that prints index, both values and the
   seed of the first mismatches, and central finite differences of a scalar function. */
#ifndef SQAKD_UTIL_CHECK_H
#define SQAKD_UTIL_CHECK_H

#include <stddef.h>
#include <stdint.h>

typedef struct sqt_rng {
    uint64_t s;
} sqt_rng;

void sqt_rng_seed(sqt_rng *r, uint64_t seed);
uint64_t sqt_rng_next(sqt_rng *r);
double sqt_rng_uniform(sqt_rng *r);                 /* [0, 1) with 53 random bits */
double sqt_rng_normal(sqt_rng *r);                  /* standard normal (Box-Muller) */

void sqt_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed);
void sqt_fill_normal(float *x, size_t n, float mean, float std, uint64_t seed);

/* Number of elements with |got - ref| > atol + rtol*|ref| (NaN counts as a mismatch); the first
   few are printed to stderr as "what[i]: got G want R (atol, rtol, seed S)". */
size_t sqt_check_close(const char *what, const float *got, const float *ref, size_t n,
                       double atol, double rtol, uint64_t seed);
size_t sqt_check_close_d(const char *what, const float *got, const double *ref, size_t n,
                         double atol, double rtol, uint64_t seed);
/* number of elements that are not bit-identical, first few printed */
size_t sqt_check_equal(const char *what, const float *got, const float *ref, size_t n);

/* sum_i y[i] * r[i] in double: the scalar whose gradient w.r.t. y is r */
double sqt_dot(const float *y, const float *r, size_t n);

/* grad[i] = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps) for i < n; x is perturbed in place and
   restored exactly. The step actually taken is the float difference, so rounding of x + eps
   does not bias the quotient. */
typedef double (*sqt_scalar_fn)(void *ctx);
void sqt_fd_grad(sqt_scalar_fn f, void *ctx, float *x, size_t n, double eps, double *grad);

#endif
