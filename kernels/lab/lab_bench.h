/* lab_bench.h: what the lab's timing harness (bench.c) shares: the sizes parser and a timer of
   back-to-back calls on a backend (one sync per batch, batches grown to min_time seconds). */
#ifndef SQAKD_LAB_BENCH_H
#define SQAKD_LAB_BENCH_H

#include <stddef.h>
#include "sqakd/backend.h"

typedef void (*lab_fn)(void *arg);
/* seconds per call of fn(arg) on be: one warm-up call, then batches until min_time */
double lab_time(const sq_backend *be, double min_time, lab_fn fn, void *arg);
/* "4K,16M,1G" -> sizes (K, M, G binary suffixes); the count, or -1 */
int lab_parse_sizes(const char *s, size_t *out, int max);
/* GB/s and, with a known peak, % of it, as one line */
void lab_report(const char *op, const char *variant, size_t elems, double sec, double bytes,
                double peak_gbps);

int lab_bench_grid(int argc, char **argv);
int lab_bench_conv(int argc, char **argv);

#endif
