/* bench.c: the lab's timing harness (kernels/lab/README.md). On a GPU it times the variants that
   lost against the shipped kernels; under cuemu (make lab) it only proves that it runs: the
   figures mean nothing there.
     lab_bench grid [--sizes 16M,256M] [--bits 4] [--min-time 0.2] [--reduce-blocks N]
     lab_bench conv [--batch 256] [--iters 20] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lab_bench.h"

double lab_time(const sq_backend *be, double min_time, lab_fn fn, void *arg)
{
    fn(arg);
    be->sync();
    long reps = 1;
    for (;;) {
        double t0 = sq_now();
        for (long i = 0; i < reps; i++) fn(arg);
        be->sync();
        double dt = sq_now() - t0;
        if (dt >= min_time || reps >= 65536) return dt / (double)reps;
        double per = dt / (double)reps;
        long want = per > 0 ? (long)(1.2 * min_time / per) + 1 : 2 * reps;
        reps = want > 2 * reps ? want : 2 * reps;
        if (reps > 65536) reps = 65536;
    }
}

int lab_parse_sizes(const char *s, size_t *out, int max)
{
    int n = 0;
    while (*s) {
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (end == s || n >= max) return -1;
        if (*end == 'K' || *end == 'k') v <<= 10, end++;
        else if (*end == 'M' || *end == 'm') v <<= 20, end++;
        else if (*end == 'G' || *end == 'g') v <<= 30, end++;
        if (v == 0 || (*end && *end != ',')) return -1;
        out[n++] = (size_t)v;
        s = *end ? end + 1 : end;
    }
    return n;
}

void lab_report(const char *op, const char *variant, size_t elems, double sec, double bytes,
                double peak_gbps)
{
    double gbps = bytes / sec / 1e9;
    printf("%-26s %-18s %8.2fM elems %9.3f ms %8.1f GB/s", op, variant, elems / 1048576.0,
           sec * 1e3, gbps);
    if (peak_gbps > 0) printf("  %5.1f%% of peak", 100.0 * gbps / peak_gbps);
    printf("\n");
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "grid")) return lab_bench_grid(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "conv")) return lab_bench_conv(argc - 1, argv + 1);
    fprintf(stderr, "usage: lab_bench grid [--sizes 16M,256M --bits 4 --min-time 0.2 "
                    "--reduce-blocks N]\n       lab_bench conv [--batch 256 --iters 20]\n");
    return 2;
}
