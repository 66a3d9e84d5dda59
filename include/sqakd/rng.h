/* rng.h (base layer, below host/ and kernels/): small deterministic random number generators (splitmix64 and Box-Muller normals). */
#ifndef SQAKD_RNG_H
#define SQAKD_RNG_H
#include <math.h>
#include <stdint.h>

static inline uint64_t sq_splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [0, 1) with 24 random bits */
static inline float sq_rand_uniform(uint64_t *s) { return (float)(sq_splitmix64(s) >> 40) * (1.0f / 16777216.0f); }

static inline float sq_rand_normal(uint64_t *s)
{
    double u1 = ((sq_splitmix64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double u2 = (sq_splitmix64(s) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
#endif
