/* cmd_bench_kernels.c: 'sqakd bench kernels' — achieved memory bandwidth of the fused fake-quant
   forward / backward and the two together (fakequant_f+b: their bytes over their summed times;
   every quantizer kind, bits 1, 2, 4, 8) and of the fused KL loss kernel, on
   whichever backend --device selects (it only uses the op table). GB/s = bytes the op must move
   (each input read once, each output written once; an accumulated output counts read + write) /
   time per call. On a CUDA device it also prints the percentage of the peak memory bandwidth,
   2 x memory clock x bus width (cudaDevAttrMemoryClockRate / cudaDevAttrGlobalMemoryBusWidth:
   CUDA 13 removed cudaDeviceProp::memoryClockRate). A benchmark, not a test: nothing asserts. */
#include "cli.h"
#include "sqakd/backend.h"
#include "sqakd/json.h"
#include "sqakd/rng.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE = "[--device auto|cpu|cuda --sizes 1M,16M,... --bits 1,2,4,8 "
                           "--role act|weight --min-time S --threads T --json]";

#define BK_MAX_SIZES 16
#define BK_MAX_BITS 8
#define BK_CPU_MAX ((size_t)16 << 20)

typedef struct bk_ctx {
    const sq_backend *be;
    double peak_gbps;  /* 0 when unknown (CPU) */
    double min_time;
    int json;
    sq_jbuf jb;
} bk_ctx;

/* "1M,16M,256M" (K, M, G binary suffixes) -> sizes; returns the count or -1 */
static int parse_sizes(const char *s, size_t *out, int max)
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

static int parse_bits(const char *s, int *out, int max)
{
    int n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 8 || n >= max || (*end && *end != ',')) return -1;
        out[n++] = (int)v;
        s = *end ? end + 1 : end;
    }
    return n;
}

/* device error after a measurement (CUDA ops return void; their failures are sticky) */
static int backend_failed(const sq_backend *be)
{
    return be->status() != SQ_OK;
}

typedef void (*bk_fn)(void *arg);

/* seconds per call: one warm-up call, then batches of back-to-back calls (one sync per batch),
   the batch grown until it lasts min_time (at most 65536 calls) */
static double time_op(bk_ctx *c, bk_fn fn, void *arg)
{
    fn(arg);
    c->be->sync();
    long reps = 1;
    for (;;) {
        double t0 = sq_now();
        for (long i = 0; i < reps; i++) fn(arg);
        c->be->sync();
        double dt = sq_now() - t0;
        if (dt >= c->min_time || reps >= 65536) return dt / (double)reps;
        double per = dt / (double)reps;
        long want = per > 0 ? (long)(1.2 * c->min_time / per) + 1 : 2 * reps;
        reps = want > 2 * reps ? want : 2 * reps;
        if (reps > 65536) reps = 65536;
    }
}

typedef struct fq_arg {
    const sq_backend *be;
    sq_quant_cfg cfg;
    size_t n;
    float *x, *y, *gy, *gx, *qp, *gqp, *scratch;
} fq_arg;

static void run_fq_fwd(void *p)
{
    fq_arg *a = p;
    a->be->fakequant_fwd(&a->cfg, a->n, a->x, a->qp, a->y, a->scratch);
}

static void run_fq_bwd(void *p)
{
    fq_arg *a = p;
    a->be->fakequant_bwd(&a->cfg, a->n, a->x, a->qp, a->gy, a->gx, a->gqp, a->scratch);
}

typedef struct kl_arg {
    const sq_backend *be;
    int n, k;
    float *zt, *zs, *loss, *g;
} kl_arg;

typedef struct copy_arg {
    const sq_backend *be;
    void *dst;
    const void *src;
    size_t bytes;
} copy_arg;

static void run_copy(void *p)
{
    copy_arg *a = p;
    a->be->copy_d2d(a->dst, a->src, a->bytes);
}

static void run_kl(void *p)
{
    kl_arg *a = p;
    a->be->kl_fwd_bwd(a->n, a->k, a->zt, a->zs, 4.0f, 1.0f, a->loss, a->g);
}

static void report(bk_ctx *c, const char *op, const char *kind, const char *role, int bits, int k,
                   size_t elems, double sec, double bytes)
{
    double gbps = bytes / sec / 1e9;
    double pct = c->peak_gbps > 0 ? 100.0 * gbps / c->peak_gbps : -1.0;
    if (c->json) {
        sq_jbuf *b = &c->jb;
        sq_jbuf_begin_obj(b);
        sq_jbuf_kv_str(b, "op", op);
        if (kind) sq_jbuf_kv_str(b, "kind", kind);
        if (role) sq_jbuf_kv_str(b, "role", role);
        if (bits) sq_jbuf_kv_int(b, "bits", bits);
        if (k) sq_jbuf_kv_int(b, "classes", k);
        sq_jbuf_kv_int(b, "elements", (int64_t)elems);
        sq_jbuf_kv_num(b, "ms", sec * 1e3);
        sq_jbuf_kv_num(b, "bytes", bytes);
        sq_jbuf_kv_num(b, "gbps", gbps);
        if (pct >= 0) sq_jbuf_kv_num(b, "pct_peak", pct);
        sq_jbuf_end_obj(b);
        return;
    }
    char what[64];
    if (kind) snprintf(what, sizeof what, "%-6s %-6s %d-bit", kind, role, bits);
    else if (k) snprintf(what, sizeof what, "K=%-5d", k);
    else snprintf(what, sizeof what, "(reference)");
    printf("%-14s %-22s %7.1fM elems %9.3f ms %8.1f GB/s", op, what, elems / 1048576.0, sec * 1e3,
           gbps);
    if (pct >= 0) printf("  %5.1f%% of peak", pct);
    printf("\n");
}

static void fill_random(float *h, size_t n, float lo, float hi, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) h[i] = lo + (hi - lo) * sq_rand_uniform(&s);
}

/* quantizer parameters that put most elements inside the clipping range of x in [-1, 2] */
static void bench_qp(sq_quant_kind kind, int weight, int bits, float qp[2])
{
    qp[0] = qp[1] = 0.0f;
    if (kind == SQ_QUANT_EWGS) {
        qp[0] = weight ? -1.0f : 0.0f;
        qp[1] = 1.5f;
    } else if (kind == SQ_QUANT_PACT) {
        qp[0] = 1.5f;
    } else if (kind == SQ_QUANT_LSQ) {
        int levels = weight ? (1 << (bits - 1)) : (1 << bits) - 1;
        qp[0] = 1.5f / (float)(levels > 0 ? levels : 1);
    }
}

static int bench_size(bk_ctx *c, size_t n, const int *bits, int nbits, int weight)
{
    const sq_backend *be = c->be;
    size_t bytes = n * sizeof(float);
    float *h = malloc(bytes);
    float *x = be->alloc(bytes), *y = be->alloc(bytes), *gy = be->alloc(bytes);
    float *par = be->alloc(16 * sizeof(float));
    if (!h || !x || !y || !gy || !par) {
        fprintf(stderr, "sqakd bench kernels: skipping %zuM elements: %s\n", n >> 20,
                h ? "out of device memory" : "out of host memory");
        free(h);
        if (x) be->free(x);
        if (y) be->free(y);
        if (gy) be->free(gy);
        if (par) be->free(par);
        return 0;
    }
    fill_random(h, n, -1.0f, 2.0f, 1234);
    be->copy_h2d(x, h, bytes);
    fill_random(h, n, -0.01f, 0.01f, 99);
    be->copy_h2d(gy, h, bytes);
    static const sq_quant_kind kinds[4] = {SQ_QUANT_EWGS, SQ_QUANT_PACT, SQ_QUANT_LSQ,
                                           SQ_QUANT_DOREFA};
    int failed = 0;
    /* reference: a plain device-to-device copy of the same size (read n, write n), the
       practical ceiling the fused kernels are measured against */
    copy_arg ca = {be, y, x, bytes};
    double tc = time_op(c, run_copy, &ca);
    if ((failed = backend_failed(be)) == 0) report(c, "copy_d2d", NULL, "ref", 0, 0, n, tc, 8.0 * n);
    for (int ki = 0; ki < 4 && !failed; ki++)
        for (int bi = 0; bi < nbits && !failed; bi++) {
            fq_arg a = {be, {kinds[ki], weight ? SQ_QROLE_WEIGHT : SQ_QROLE_ACT, bits[bi],
                             weight && kinds[ki] == SQ_QUANT_LSQ, 0.0f, (float)n, 0},
                        n, x, y, gy, y, par, par + 4, par + 8};
            float qp[2];
            bench_qp(kinds[ki], weight, bits[bi], qp);
            be->copy_h2d(par, qp, sizeof qp);
            /* DoReFa weights (and PACT weights, which are DoReFa) re-read x for max|tanh| */
            int maxpass = weight && (kinds[ki] == SQ_QUANT_DOREFA || kinds[ki] == SQ_QUANT_PACT);
            const char *kn = sq_quant_kind_name(kinds[ki]), *rn = weight ? "weight" : "act";
            const double tf = time_op(c, run_fq_fwd, &a), bf = (maxpass ? 12.0 : 8.0) * n;
            if ((failed = backend_failed(be))) break;
            report(c, "fakequant_fwd", kn, rn, bits[bi], 0, n, tf, bf);
            /* backward: reads x, gy and gx, writes gx (y's buffer serves as gx) */
            const double tb = time_op(c, run_fq_bwd, &a);
            if ((failed = backend_failed(be))) break;
            report(c, "fakequant_bwd", kn, rn, bits[bi], 0, n, tb, 16.0 * n);
            /* the pair, as a training step runs it: both kernels' bytes over both times */
            report(c, "fakequant_f+b", kn, rn, bits[bi], 0, n, tf + tb, bf + 16.0 * n);
        }
    static const int ks[3] = {10, 100, 1000};
    for (int i = 0; i < 3 && !failed; i++) {
        int rows = (int)(n / (size_t)ks[i]);
        if (rows < 1) continue;
        kl_arg a = {be, rows, ks[i], x, gy, par + 12, y};
        double t = time_op(c, run_kl, &a);
        if ((failed = backend_failed(be))) break;
        size_t elems = (size_t)rows * ks[i];
        report(c, "kl_fwd_bwd", NULL, NULL, 0, ks[i], elems, t, 12.0 * elems);
    }
    free(h);
    be->free(x);
    be->free(y);
    be->free(gy);
    be->free(par);
    if (failed) fprintf(stderr, "sqakd bench kernels: device error: %s\n", sq_last_error());
    return failed ? -1 : 0;
}

int sq_cmd_bench_kernels(int argc, char **argv)
{
    const char *cmd = "bench kernels";
    const char *device = "auto", *sizes_s = NULL, *bits_s = "1,2,4,8", *role = "act";
    float min_time = 0.2f;
    int threads = 0, json = 0;
    sq_arg spec[] = {
        {"--device", SQ_ARG_STR, &device, 0, 0, "auto | cpu | cuda (default auto)"},
        {"--sizes", SQ_ARG_STR, &sizes_s, 0, 0,
         "element counts, K/M/G suffixes (default GPU 1M,4M,16M,64M,256M; CPU 1M,4M,16M)"},
        {"--bits", SQ_ARG_STR, &bits_s, 0, 0, "bit widths (default 1,2,4,8)"},
        {"--role", SQ_ARG_STR, &role, 0, 0, "act | weight: quantizer role (default act)"},
        {"--min-time", SQ_ARG_FLOAT, &min_time, 0.0, 60.0, "seconds per measurement (0.2)"},
        {"--threads", SQ_ARG_INT, &threads, 0, 1024, "CPU threads (default: OpenMP's)"},
        {"--json", SQ_ARG_FLAG, &json, 0, 0, "print one JSON object"},
    };
    const char *pos[1];
    int npos, r = sq_args_parse(cmd, USAGE, argc, argv, spec, (int)(sizeof spec / sizeof spec[0]),
                                pos, 0, &npos);
    if (r) return r == 1 ? 0 : 2;
    if (strcmp(role, "act") && strcmp(role, "weight"))
        return sq_cli_fail(cmd, "--role must be act or weight, got '%s'", role);
    int bits[BK_MAX_BITS], nbits = parse_bits(bits_s, bits, BK_MAX_BITS);
    if (nbits <= 0)
        return sq_cli_fail(cmd, "--bits must be a comma list of 1..8 (at most %d), got '%s'",
                           BK_MAX_BITS, bits_s);
    const sq_backend *be = sq_backend_open(device, NULL, threads);
    if (!be) return sq_cli_fail(cmd, "%s", sq_last_error());
    size_t sizes[BK_MAX_SIZES];
    const char *dflt = be->is_device ? "1M,4M,16M,64M,256M" : "1M,4M,16M";
    int nsizes = parse_sizes(sizes_s ? sizes_s : dflt, sizes, BK_MAX_SIZES);
    if (nsizes <= 0)
        return sq_cli_fail(cmd, "--sizes must be a comma list of positive counts such as 1M,16M "
                                "(at most %d), got '%s'", BK_MAX_SIZES, sizes_s);

    bk_ctx c = {be, 0.0, min_time, json, {0}};
    sq_device_info dev;
    be->device_info(&dev);
    c.peak_gbps = dev.peak_gbps;
    const char *devname = dev.name;
    if (json) {
        sq_jbuf_init(&c.jb);
        sq_jbuf_begin_obj(&c.jb);
        sq_jbuf_kv_str(&c.jb, "backend", be->name);
        sq_jbuf_kv_str(&c.jb, "device", devname);
        if (c.peak_gbps > 0) sq_jbuf_kv_num(&c.jb, "peak_gbps", c.peak_gbps);
        sq_jbuf_key(&c.jb, "results");
        sq_jbuf_begin_arr(&c.jb);
    } else {
        printf("bench kernels on %s (%s)", be->name, devname);
        if (c.peak_gbps > 0) printf(", peak memory bandwidth %.1f GB/s", c.peak_gbps);
        printf("\n");
    }
    int rc = 0;
    for (int i = 0; i < nsizes && rc == 0; i++) {
        if (!be->is_device && sizes[i] > BK_CPU_MAX) {
            fprintf(stderr, "sqakd bench kernels: skipping %zuM elements on the CPU (limit 16M)\n",
                    sizes[i] >> 20);
            continue;
        }
        if (bench_size(&c, sizes[i], bits, nbits, !strcmp(role, "weight"))) rc = 1;
    }
    if (json) {
        sq_jbuf_end_arr(&c.jb);
        sq_jbuf_end_obj(&c.jb);
        printf("%s\n", sq_jbuf_cstr(&c.jb));
        sq_jbuf_free(&c.jb);
    }
    return rc;
}
