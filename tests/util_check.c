/* util_check.c: shared test helpers (see util_check.h). */
#include "util_check.h"
#include <math.h>
#include <stdio.h>

void sqt_rng_seed(sqt_rng *r, uint64_t seed) { r->s = seed; }

uint64_t sqt_rng_next(sqt_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double sqt_rng_uniform(sqt_rng *r) { return (double)(sqt_rng_next(r) >> 11) * 0x1.0p-53; }

double sqt_rng_normal(sqt_rng *r)
{
    double u1 = sqt_rng_uniform(r), u2 = sqt_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void sqt_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed)
{
    sqt_rng r;
    sqt_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * sqt_rng_uniform(&r));
}

void sqt_fill_normal(float *x, size_t n, float mean, float std, uint64_t seed)
{
    sqt_rng r;
    sqt_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = (float)(mean + std * sqt_rng_normal(&r));
}

static size_t report(const char *what, size_t i, double got, double ref, double atol, double rtol,
                     uint64_t seed, size_t bad)
{
    if (bad < 5)
        fprintf(stderr, "%s[%zu]: got %.9g want %.9g (atol %g, rtol %g, seed %llu)\n", what, i,
                got, ref, atol, rtol, (unsigned long long)seed);
    return bad + 1;
}

size_t sqt_check_close_d(const char *what, const float *got, const double *ref, size_t n,
                         double atol, double rtol, uint64_t seed)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i];
        if (!(fabs(g - r) <= atol + rtol * fabs(r)))
            bad = report(what, i, g, r, atol, rtol, seed, bad);
    }
    return bad;
}

size_t sqt_check_close(const char *what, const float *got, const float *ref, size_t n,
                       double atol, double rtol, uint64_t seed)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i];
        if (!(fabs(g - r) <= atol + rtol * fabs(r)))
            bad = report(what, i, g, r, atol, rtol, seed, bad);
    }
    return bad;
}

size_t sqt_check_equal(const char *what, const float *got, const float *ref, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (got[i] != ref[i] && !(isnan(got[i]) && isnan(ref[i]))) {
            if (bad < 5)
                fprintf(stderr, "%s[%zu]: got %.9g want %.9g (bit-exact expected)\n", what, i,
                        got[i], ref[i]);
            bad++;
        }
    }
    return bad;
}

double sqt_dot(const float *y, const float *r, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)y[i] * r[i];
    return s;
}

void sqt_fd_grad(sqt_scalar_fn f, void *ctx, float *x, size_t n, double eps, double *grad)
{
    for (size_t i = 0; i < n; i++) {
        const float x0 = x[i];
        const float xp = (float)(x0 + eps), xm = (float)(x0 - eps);
        x[i] = xp;
        double fp = f(ctx);
        x[i] = xm;
        double fm = f(ctx);
        x[i] = x0;
        grad[i] = (fp - fm) / ((double)xp - (double)xm);
    }
}
