/* test_cuda_backend_ops.c: Criterion suite "backend_ops": the conformance harness of the op table
   (include/sqakd/backend.h), after ggml's test-backend-ops. One table of cases walks every member
   of sq_backend; each backend is compared with the CPU backend, the oracle.

   - bo_members lists every member of sq_backend in declaration order with its offset, size and
     alignment. member_list_is_the_whole_struct fails when the struct gains a member the list
     lacks; slots_have_cases fails when a backend fills a member that no row of the case table
     calls and that is not exempt (with its reason) here.
   - bo_rows is the case table. A row names the members it calls (covers), its run function, its
     shapes (awkward: 1, primes, sizes that are not multiples of a block or of 4, odd spatial
     sizes, stride 2, grouped and depthwise convolutions, unaligned starts), its modes and a
     tolerance for every output it checks, each with the reason for it. Modes:
       FWD  outputs are OVERWRITTEN: they start as NaN (a kernel that reads them spreads NaN);
       ACC  backward: gradient outputs start non-zero and must be accumulated into (+=);
       SET  the *_set variants: gx starts as NaN and is written (the other gradients still
            accumulate), bit for bit what the same backend accumulates into zeros;
       NUL  NULL gradient (or optional) pointers: skipped, and nothing else changes;
       DET  the op run again on the same inputs gives the same bits (reductions).
   - every device buffer lies between guard bytes (sqt_dput; checked when it is fetched or freed)
     and every const input is fetched back after its case and must be unchanged.
   - the oracle is the CPU backend, on host memory. Where it has no such op (the scaled
     fake-quant pair, bias_add_act, the *_set variants, the 16-bit teacher ops) the oracle is
     what the graph runs without it: the unfused ops, or a host loop with IEEE rounding to 16 bits.
     Backward ops get the oracle's forward outputs as inputs, so that their comparison does not
     inherit the forward's rounding.
   - runs: the CUDA backend against the CPU (one Criterion test per family; without a GPU they
     SKIP, under cuemu they run on the emulated device), and the CPU backend's fused ops and
     integer convolution against the unfused CPU backend (sqt_cpu_unfused; no GPU needed).
   - tests/bench_backend_ops.c (make bench-ops) includes this file with BO_BENCH defined and runs
     the same rows at their bench shapes, printing time per call and GB/s per backend (BO_CALL
     below); that is not part of make test.
   Convolutions compare without TF32 (the backend's configure member with tf32 = 0). No case
   touches the CUDA launch-grid test hook: every row holds whatever grid the backend chooses. */
#include <criterion/criterion.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "sqakd/backend.h"
#include "sqakd/quant_math.h"
#include "util_check.h"
#include "util_fixtures.h"
#include "cuda_hooks.h"

/* ================================================================ the members of sq_backend */

typedef struct bo_member {
    const char *name;
    size_t off, size, align;
    int fn; /* a function pointer (0: a data member) */
    const char *exempt; /* why no row needs to call it; NULL: a row must, where a backend sets it */
} bo_member;

#define BO_MEMBER(m, fn, why)                                                                                \
    {                                                                                                        \
#m, offsetof(sq_backend, m), sizeof(((sq_backend *)0)->m),                                           \
            _Alignof(__typeof__(((sq_backend *)0)->m)), fn, why                                              \
    }
#define M_DATA(m) BO_MEMBER(m, 0, NULL)
#define M_OP(m) BO_MEMBER(m, 1, NULL)
#define M_EXEMPT(m, why) BO_MEMBER(m, 1, why)

/* in the struct's order (member_list_is_the_whole_struct checks the layout against it) */
static const bo_member bo_members[] = {
    M_DATA(name),
    M_DATA(is_device),
    M_OP(alloc),
    M_OP(free),
    M_OP(memset0),
    M_OP(copy_h2d),
    M_OP(copy_d2h),
    M_OP(copy_d2d),
    M_OP(sync),
    M_EXEMPT(set_threads, "a performance knob: how many host threads the CPU backend uses (a no-op "
                          "on CUDA), never what an op computes; test_ops.c runs ops at 1 and 2 threads"),
    M_EXEMPT(run_models, "runs other code, no op of its own: tests/test_multi.c checks the CPU's teams and that a multi-student run equals the single runs"),
    M_OP(configure),
    M_OP(options),
    M_OP(status),
    M_OP(clear_status),
    M_OP(error_count),
    M_OP(device_info),
    M_OP(conv_ws_bytes),
    M_OP(conv2d_fwd),
    M_OP(conv2d_bwd),
    M_OP(bn_fwd_train),
    M_OP(bn_fwd_eval),
    M_OP(bn_bwd),
    M_OP(act_fwd),
    M_OP(act_bwd),
    M_OP(add_fwd),
    M_OP(axpy),
    M_OP(scale),
    M_OP(fill),
    M_OP(clip_fwd),
    M_OP(clip_bwd),
    M_OP(affine_fwd),
    M_OP(affine_bwd),
    M_OP(pool_fwd),
    M_OP(pool_bwd),
    M_OP(gap_fwd),
    M_OP(gap_bwd),
    M_OP(linear_fwd),
    M_OP(linear_bwd),
    M_OP(shortcut_a_fwd),
    M_OP(shortcut_a_bwd),
    M_OP(concat_fwd),
    M_OP(concat_bwd),
    M_OP(shuffle_fwd),
    M_OP(shuffle_bwd),
    M_OP(pad_fwd),
    M_OP(pad_bwd),
    M_OP(slice_fwd),
    M_OP(slice_bwd),
    M_OP(dropout_fwd),
    M_OP(dropout_bwd),
    M_OP(softmax_ce),
    M_OP(kl_fwd_bwd),
    M_OP(squat_fwd_bwd),
    M_OP(argmax),
    M_OP(fakequant_fwd),
    M_OP(fakequant_bwd),
    M_OP(absscale_fwd),
    M_OP(absscale_bwd),
    M_OP(sgd_step),
    M_OP(adam_step),
    M_OP(bn_act_fwd_train),
    M_OP(bn_act_bwd),
    M_OP(add_act_fwd),
    M_OP(add_act_bwd),
    M_OP(qconv2d_fwd),
    M_OP(qconv2d_bwd),
    M_OP(bn_add_act_fwd_train),
    M_OP(bn_add_act_bwd),
    M_OP(fakequant_scaled_fwd),
    M_OP(fakequant_scaled_bwd),
    M_OP(bias_add_act_fwd),
    M_OP(conv2d_bwd_set),
    M_OP(bn_bwd_set),
    M_OP(bn_act_bwd_set),
    M_OP(bn_add_act_bwd_set),
    M_OP(mem_info),
    M_OP(stage_new),
    M_OP(stage_put),
    M_OP(stage_put_pinned),
    M_OP(stage_free),
    M_OP(host_alloc),
    M_OP(host_free),
    M_OP(graph_begin),
    M_OP(graph_end),
    M_OP(graph_run),
    M_OP(graph_free),
    M_OP(to16),
    M_OP(from16),
    M_OP(conv16_ws_bytes),
    M_OP(conv16_fwd),
    M_OP(act16_fwd),
    M_OP(add16_fwd),
    M_OP(pool16_fwd),
    M_OP(gap16_fwd),
    M_OP(shortcut_a16_fwd),
    M_EXEMPT(dist_attach, "collectives need several processes: tests/test_dist.c runs them under mpirun (CPU backend)"),
    M_EXEMPT(allreduce_start, "collectives need several processes: tests/test_dist.c runs them under mpirun (CPU backend)"),
    M_EXEMPT(allreduce_wait, "collectives need several processes: tests/test_dist.c runs them under mpirun (CPU backend)"),
};
#define BO_NMEMBERS ((int)(sizeof bo_members / sizeof bo_members[0]))

/* ================================================================ the case table: types */

enum { FWD = 1, ACC = 2, SET = 4, NUL = 8, DET = 16 };
static const char *mode_name(int m)
{
    return m == FWD ? "fwd" : m == ACC ? "acc" : m == SET ? "set" : m == NUL ? "null" : "det";
}

#define BO_FAMILIES(X)                                                                                       \
    X(memory)                                                                                                \
    X(elementwise) X(batchnorm) X(conv) X(pool) X(linear) X(structural) X(losses) X(fakequant) X(optim)      \
        X(fused) X(half) X(record)
enum {
#define X(f) F_##f,
    BO_FAMILIES(X)
#undef X
        BO_NFAM
};
static const char *const bo_family_names[BO_NFAM] = {
#define X(f) #f,
    BO_FAMILIES(X)
#undef X
};

#define BO_P 14 /* shape parameters per case */
#define BO_NTOL 12

/* |got - want| <= atol + per_term * terms + rtol * |want| elementwise (terms: a size the run
   function states, e.g. the number of products a convolution output sums); exact: equal values
   (-0 equals 0, as sqt_expect_equal) and NaN where the oracle has NaN (byte and 16-bit outputs:
   the same bytes). allow_pm: mismatches allowed per mille (+ 1) where the run function says the
   exception applies. The name before a ':' in an output's label selects its tolerance. */
typedef struct bo_tol {
    const char *out;
    double atol, per_term, rtol;
    int exact;
    int allow_pm;
} bo_tol;
#define EXACT(o)                                                                                             \
    {                                                                                                        \
        o, 0, 0, 0, 1, 0                                                                                     \
    }
#define CLOSE(o, a, t, r)                                                                                    \
    {                                                                                                        \
        o, a, t, r, 0, 0                                                                                     \
    }
#define EXACT_ALLOW(o, pm)                                                                                   \
    {                                                                                                        \
        o, 0, 0, 0, 1, pm                                                                                    \
    }
#define CLOSE_ALLOW(o, a, t, r, pm)                                                                          \
    {                                                                                                        \
        o, a, t, r, 0, pm                                                                                    \
    }
/* same-backend comparisons (set = accumulate into 0, a second run, fused = the backend's own
   unfused ops, replay = eager): the same arithmetic in the same order, so the same bits */
#define SAME EXACT("same")

typedef struct bo_ctx bo_ctx;
typedef struct bo_row bo_row;
/* runs one (shape, mode) of a row; returns 0 when the mode does not apply to the backend */
typedef int (*bo_run_fn)(bo_ctx *c, const bo_row *r, const int *p, int mode);

struct bo_row {
    const char *name;
    int fam;
    const char *covers; /* the members of the backend under test it calls, space separated */
    bo_run_fn run;
    const int (*shapes)[BO_P];
    int nshapes;
    const char *pnames; /* what the shape parameters are */
    unsigned modes;
    int arg[2]; /* op parameters (quantizer kind and role, pool kind, ...) */
    bo_tol tol[BO_NTOL];
    int bench[BO_P]; /* the shape the timing mode runs (all 0: not timed) */
    int always; /* runs on every backend: the run function decides what applies */
};
#define SHAPES(a, names) .shapes = a, .nshapes = (int)(sizeof a / sizeof a[0]), .pnames = names

/* ================================================================ per-case context */

#define BO_MAXBUF 64
#define BO_MAXHOST 192

struct bo_ctx {
    const sq_backend *be; /* under test */
    const sq_backend *ref; /* the oracle (host memory) */
    int timing; /* bench: time BO_CALLs, compare nothing */
    const bo_row *row;
    char where[224];
    uint64_t seed;
    struct {
        void *d;
        void *snap; /* const inputs: the contents they must still have */
        size_t bytes;
    } buf[BO_MAXBUF];
    int nbuf;
    void *host[BO_MAXHOST];
    int nhost;
    long declined; /* optional ops that returned 0 (computed nothing) */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* ---- timing: BO_CALL(c, label, bytes, statement) runs the statement once; in the timing mode
   once to warm up, then enough times for about 0.2 s, and prints time per call and GB/s (bytes:
   what one call reads and writes at least) ---- */
typedef struct bo_timer {
    int phase;
    long reps, done;
    double t0, elapsed;
} bo_timer;

static void bo_time_start(bo_ctx *c, bo_timer *t)
{
    memset(t, 0, sizeof *t);
    if (!c->timing) return;
    c->be->sync();
    t->t0 = now_s();
}

static int bo_time_next(bo_ctx *c, bo_timer *t)
{
    if (!c->timing) return 0;
    if (t->phase == 0) {
        c->be->sync();
        double warm = now_s() - t->t0;
        t->reps = warm > 0 ? (long)(0.2 / warm) : 1000;
        t->reps = t->reps < 3 ? 3 : t->reps > 2000 ? 2000 : t->reps;
        t->phase = 1;
        t->t0 = now_s();
        return 1;
    }
    if (++t->done < t->reps) return 1;
    c->be->sync();
    t->elapsed = now_s() - t->t0;
    return 0;
}

static void bo_time_report(bo_ctx *c, const bo_timer *t, const char *label, double bytes)
{
    if (!c->timing) return;
    double per = t->elapsed / (double)t->reps;
    printf("%-5s %-22s %-46s %11.2f us %9.2f GB/s\n", c->be->name, label, c->where + strlen(c->be->name) + 1,
           1e6 * per, per > 0 ? bytes / per * 1e-9 : 0.0);
    fflush(stdout);
}

#define BO_CALL(c, label, bytes, ...)                                                                        \
    do {                                                                                                     \
        bo_timer bo_t_;                                                                                      \
        bo_time_start(c, &bo_t_);                                                                            \
        do {                                                                                                 \
            __VA_ARGS__;                                                                                     \
        } while (bo_time_next(c, &bo_t_));                                                                   \
        bo_time_report(c, &bo_t_, label, (double)(bytes));                                                   \
    } while (0)

/* ---- host arrays (freed after the case) ---- */

static void *keep(bo_ctx *c, void *p)
{
    cr_assert(p, "out of host memory");
    cr_assert(c->nhost < BO_MAXHOST, "%s: more than %d host arrays", c->where, BO_MAXHOST);
    c->host[c->nhost++] = p;
    return p;
}
static float *hz(bo_ctx *c, size_t n) { return keep(c, sqt_hvec(n)); }
static float *hr(bo_ctx *c, size_t n, float lo, float hi) { return keep(c, sqt_hrand(n, lo, hi, c->seed++)); }
static float *hd(bo_ctx *c, const float *x, size_t n)
{
    float *y = hz(c, n);
    if (n) memcpy(y, x, n * sizeof(float));
    return y;
}
static float *hn(bo_ctx *c, size_t n)
{
    float *y = hz(c, n);
    for (size_t i = 0; i < n; i++) y[i] = NAN;
    return y;
}
static void *hbytes(bo_ctx *c, size_t bytes) { return keep(c, calloc(bytes ? bytes : 1, 1)); }

/* ---- device buffers of the backend under test, between guards ---- */

static void *track(bo_ctx *c, void *d, const void *snap, size_t bytes)
{
    cr_assert(c->nbuf < BO_MAXBUF, "%s: more than %d device buffers", c->where, BO_MAXBUF);
    c->buf[c->nbuf].d = d;
    c->buf[c->nbuf].bytes = bytes;
    c->buf[c->nbuf].snap = NULL;
    if (snap) {
        c->buf[c->nbuf].snap = malloc(bytes ? bytes : 1);
        cr_assert(c->buf[c->nbuf].snap);
        memcpy(c->buf[c->nbuf].snap, snap, bytes);
    }
    c->nbuf++;
    return d;
}
/* const input: a device copy of h, checked unchanged after the case */
static void *din_b(bo_ctx *c, const void *h, size_t bytes)
{
    return track(c, sqt_dput(c->be, h, bytes), h, bytes);
}
static float *din(bo_ctx *c, const float *h, size_t n) { return din_b(c, h, n * sizeof(float)); }
/* output (or in/out): starts as init, or as NaN when init is NULL */
static float *dout(bo_ctx *c, const float *init, size_t n)
{
    const float *h = init ? init : hn(c, n);
    return track(c, sqt_dput(c->be, h, n * sizeof(float)), NULL, n * sizeof(float));
}
/* byte output starting as init, or as bytes of 0xEE when init is NULL */
static void *dout_b(bo_ctx *c, const void *init, size_t bytes)
{
    void *h = hbytes(c, bytes);
    if (init)
        memcpy(h, init, bytes);
    else
        memset(h, 0xEE, bytes);
    return track(c, sqt_dput(c->be, h, bytes), NULL, bytes);
}

static int find_buf(bo_ctx *c, const void *d)
{
    for (int i = 0; i < c->nbuf; i++)
        if (c->buf[i].d == d) return i;
    cr_assert_fail("%s: fetch of a buffer the case did not allocate", c->where);
    return -1;
}

static void drop_buf(bo_ctx *c, int i)
{
    free(c->buf[i].snap);
    c->buf[i] = c->buf[--c->nbuf];
}

/* the contents (guards checked, device buffer freed) */
static void *fetch_b(bo_ctx *c, void *d)
{
    int i = find_buf(c, d);
    void *h = hbytes(c, c->buf[i].bytes);
    sqt_dget_free(c->be, h, d, c->buf[i].bytes, c->where);
    drop_buf(c, i);
    return h;
}
static float *fetch(bo_ctx *c, float *d) { return fetch_b(c, d); }

/* syncs; no failure recorded by the backend */
static sq_status be_status(const sq_backend *be) { return be->status(); }
static void be_clear(const sq_backend *be) { be->clear_status(); }
static unsigned be_errors(const sq_backend *be) { return be->error_count(); }

static void ok(bo_ctx *c)
{
    c->be->sync();
    sq_status st = be_status(c->be);
    cr_assert_eq(st, SQ_OK, "%s: the backend recorded an error: %s", c->where, sq_last_error());
}

/* after each case: inputs unchanged, every guard intact, everything freed */
static void bo_end(bo_ctx *c)
{
    while (c->nbuf > 0) {
        int i = c->nbuf - 1;
        void *h = c->buf[i].snap ? malloc(c->buf[i].bytes ? c->buf[i].bytes : 1) : NULL;
        sqt_dget_free(c->be, h, c->buf[i].d, c->buf[i].bytes, c->where);
        if (h && !c->timing)
            cr_expect(memcmp(h, c->buf[i].snap, c->buf[i].bytes) == 0,
                      "%s: a const input of %zu bytes was modified", c->where, c->buf[i].bytes);
        free(h);
        drop_buf(c, i);
    }
    while (c->nhost > 0) free(c->host[--c->nhost]);
}

/* ---- comparisons against the oracle, under the row's tolerances ---- */

static const bo_tol *tol_of(bo_ctx *c, const char *out)
{
    size_t len = strcspn(out, ":");
    for (int i = 0; i < BO_NTOL && c->row->tol[i].out; i++)
        if (strlen(c->row->tol[i].out) == len && !strncmp(c->row->tol[i].out, out, len))
            return &c->row->tol[i];
    cr_assert_fail("%s: output '%s' has no tolerance in row '%s' of the case table", c->where, out,
                   c->row->name);
    return NULL;
}

/* mag: per element, what rtol scales (NULL: |want|); allow_on: the tolerance's allowance applies */
static size_t cmp_m(bo_ctx *c, const char *out, const float *got, const float *want, size_t n, double terms,
                    const float *mag, int allow_on)
{
    if (c->timing) return 0;
    const bo_tol *t = tol_of(c, out);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        int good;
        if (got[i] == want[i] || (isnan(got[i]) && isnan(want[i])))
            good = 1; /* equal values (infinities too; -0 equals 0), or NaN where NaN is due */
        else if (t->exact)
            good = 0;
        else {
            double m = mag ? fabs((double)mag[i]) : fabs((double)want[i]);
            good = fabs((double)got[i] - want[i]) <= t->atol + t->per_term * terms + t->rtol * m;
        }
        if (!good && bad++ < 4)
            fprintf(stderr, "%s: %s[%zu]: got %.9g (%a) want %.9g (%a)\n", c->where, out, i, got[i], got[i],
                    want[i], want[i]);
    }
    size_t allow = allow_on && t->allow_pm ? n * (size_t)t->allow_pm / 1000 + 1 : 0;
    cr_expect(bad <= allow,
              "%s: %s: %zu of %zu elements outside %s (atol %g + %g x %g terms, rtol %g), allowed %zu",
              c->where, out, bad, n, t->exact ? "bit equality" : "the tolerance", t->atol, t->per_term, terms,
              t->rtol, allow);
    return bad;
}
static size_t cmp(bo_ctx *c, const char *out, const float *got, const float *want, size_t n, double terms)
{
    return cmp_m(c, out, got, want, n, terms, NULL, 0);
}
/* integer or byte outputs: exact */
static void cmp_bytes(bo_ctx *c, const char *out, const void *got, const void *want, size_t bytes)
{
    if (c->timing) return;
    cr_assert(tol_of(c, out)->exact, "%s: %s: byte outputs take an exact tolerance", c->where, out);
    size_t first = bytes;
    for (size_t i = 0; i < bytes && first == bytes; i++)
        if (((const unsigned char *)got)[i] != ((const unsigned char *)want)[i]) first = i;
    cr_expect(first == bytes, "%s: %s differs from the oracle from byte %zu of %zu", c->where, out, first,
              bytes);
}

/* ================================================================ host 16-bit rounding */

/* IEEE binary16, round to nearest even (subnormals, overflow to infinity, quiet NaN) */
static uint16_t f16_of(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520: infinity */
    if (ax < 0x38800000u) { /* below 2^-14: subnormal or 0 */
        float v;
        memcpy(&v, &ax, 4);
        return (uint16_t)(sign | (uint32_t)rintf(v * 16777216.0f)); /* exact scaling, RNE */
    }
    uint32_t h = ((ax >> 23) - 112) << 10 | ((ax >> 13) & 0x3ffu), rest = ax & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1))) h++;
    return (uint16_t)(sign | h);
}
static float f32_of_f16(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float v = e == 0    ? ldexpf((float)m, -24)
              : e == 31 ? (m ? NAN : INFINITY)
                        : ldexpf((float)(m | 0x400), e - 25);
    return h & 0x8000 ? -v : v;
}
static uint16_t bf16_of(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
static float f32_of_bf16(uint16_t h)
{
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}
static uint16_t to16_h(sq_dtype16 dt, float f) { return dt == SQ_DT_BF16 ? bf16_of(f) : f16_of(f); }
static float from16_h(sq_dtype16 dt, uint16_t h) { return dt == SQ_DT_BF16 ? f32_of_bf16(h) : f32_of_f16(h); }
static const char *dt_name(sq_dtype16 dt) { return dt == SQ_DT_BF16 ? "bf16" : "f16"; }

/* n 16-bit values of x rounded (host), and x replaced by what they hold */
static uint16_t *round16(bo_ctx *c, sq_dtype16 dt, float *x, size_t n)
{
    uint16_t *h = hbytes(c, n * 2);
    for (size_t i = 0; i < n; i++) {
        h[i] = to16_h(dt, x[i]);
        x[i] = from16_h(dt, h[i]);
    }
    return h;
}
static float *widen16(bo_ctx *c, sq_dtype16 dt, const uint16_t *h, size_t n)
{
    float *x = hz(c, n);
    for (size_t i = 0; i < n; i++) x[i] = from16_h(dt, h[i]);
    return x;
}

/* ================================================================ oracle compositions */

static void apply_act(sq_act_kind act, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = y[i] > 0.0f ? y[i] : 0.0f;
        y[i] = act == SQ_ACT_RELU6 && v > 6.0f ? 6.0f : v;
    }
}

/* y = act(BN_train(x) [+ r]) on the oracle: its fused op, or BN, add and activation */
static void ref_bn_act_fwd(const sq_backend *o, int n, int ch, int hw, sq_act_kind act, const float *x,
                           const float *r, const float *gamma, const float *beta, float *rm, float *rv,
                           float *y, float *sm, float *si)
{
    size_t m = (size_t)n * ch * hw;
    if (r && o->bn_add_act_fwd_train)
        o->bn_add_act_fwd_train(n, ch, hw, act, x, r, gamma, beta, rm, rv, 0.1f, 1e-5f, y, sm, si);
    else if (!r && o->bn_act_fwd_train)
        o->bn_act_fwd_train(n, ch, hw, act, x, gamma, beta, rm, rv, 0.1f, 1e-5f, y, sm, si);
    else {
        o->bn_fwd_train(n, ch, hw, x, gamma, beta, rm, rv, 0.1f, 1e-5f, y, sm, si);
        if (r) o->add_fwd(m, y, r, y);
        o->act_fwd(act, m, y, y);
    }
}

/* its backward from the activation's output: g = gy act'(y); gr += g; bn_bwd with g */
static void ref_bn_act_bwd(const sq_backend *o, int n, int ch, int hw, sq_act_kind act, const float *x,
                           const float *y, const float *gy, const float *gamma, const float *sm,
                           const float *si, float *gx, float *gr, float *gg, float *gb, int res)
{
    size_t m = (size_t)n * ch * hw;
    if (res && o->bn_add_act_bwd)
        o->bn_add_act_bwd(n, ch, hw, act, x, y, gy, gamma, sm, si, gx, gr, gg, gb);
    else if (!res && o->bn_act_bwd)
        o->bn_act_bwd(n, ch, hw, act, x, y, gy, gamma, sm, si, gx, gg, gb);
    else {
        float *g = sqt_hvec(m);
        o->act_bwd(act, m, y, gy, g); /* act'(y) = act'(x) for ReLU and ReLU6 */
        if (gr) o->axpy(m, 1.0f, g, gr);
        o->bn_bwd(n, ch, hw, x, g, gamma, sm, si, gx, gg, gb);
        free(g);
    }
}

static void ref_add_act_fwd(const sq_backend *o, size_t n, sq_act_kind act, const float *a, const float *b,
                            float *y)
{
    if (o->add_act_fwd) {
        o->add_act_fwd(n, act, a, b, y);
        return;
    }
    o->add_fwd(n, a, b, y);
    o->act_fwd(act, n, y, y);
}

static void ref_add_act_bwd(const sq_backend *o, size_t n, sq_act_kind act, const float *y, const float *gy,
                            float *ga, float *gb)
{
    if (o->add_act_bwd) {
        o->add_act_bwd(n, act, y, gy, ga, gb);
        return;
    }
    float *g = sqt_hvec(n);
    o->act_bwd(act, n, y, gy, g);
    if (ga) o->axpy(n, 1.0f, g, ga);
    if (gb) o->axpy(n, 1.0f, g, gb);
    free(g);
}

/* ================================================================ family: memory */

static int run_memory(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const sq_backend *be = c->be;
    const size_t n = (size_t)p[0], B = n * sizeof(float);
    cr_expect(be->name && be->name[0], "%s: no name", c->where);
    cr_expect(be->is_device == 0 || be->is_device == 1, "%s: is_device %d", c->where, be->is_device);
    if (be == sq_backend_cpu()) cr_expect_eq(be->is_device, 0);
    /* alloc: zeroed */
    float *z = be->alloc(B), *h = hr(c, n, -1, 1);
    cr_assert(z, "%s: alloc of %zu bytes: %s", c->where, B, sq_last_error());
    be->copy_d2h(h, z, B);
    cmp(c, "alloc (zeroed)", h, hz(c, n), n, 0);
    be->free(z);
    /* copy_d2d of the whole buffer, memset0 of a prefix */
    float *src = hr(c, n, -1, 1), *a = dout(c, src, n), *b = dout(c, NULL, n);
    const size_t k = c->timing ? n : n < 3 ? n : 3;
    BO_CALL(c, "copy_d2d", 2 * B, be->copy_d2d(b, a, B));
    BO_CALL(c, "memset0", k * sizeof(float), be->memset0(a, k * sizeof(float)));
    /* copies of B - 2 bytes at odd byte offsets */
    unsigned char *bs = hbytes(c, B), *zero = hbytes(c, B), *back = hbytes(c, B);
    for (size_t i = 0; i < B; i++) bs[i] = (unsigned char)(37 * i + 11);
    unsigned char *d = dout_b(c, zero, B);
    if (B >= 2) {
        BO_CALL(c, "copy_h2d", B - 2, be->copy_h2d(d + 1, bs + 1, B - 2));
        BO_CALL(c, "copy_d2h", B - 2, be->copy_d2h(back + 1, d + 1, B - 2));
    }
    be->sync();
    ok(c);
    float *want = hd(c, src, n);
    memset(want, 0, k * sizeof(float));
    cmp(c, "copy_d2d", fetch(c, b), src, n, 0);
    cmp(c, "memset0", fetch(c, a), want, n, 0);
    unsigned char *wantb = hbytes(c, B), *got = fetch_b(c, d);
    if (B >= 2) memcpy(wantb + 1, bs + 1, B - 2);
    cmp_bytes(c, "copy_h2d", got, wantb, B);
    cmp_bytes(c, "copy_d2h", back, wantb, B);
    return 1;
}

/* the backend's record of failures: sticky until cleared (device backends); host backends never
   fail here (backend.h) */
static int run_status(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const sq_backend *be = c->be;
    if (!be->is_device) {
        cr_expect_eq(be_status(be), SQ_OK);
        cr_expect_eq(be_errors(be), 0);
        be_clear(be);
        return 1;
    }
    be_clear(be);
    const unsigned before = be_errors(be);
    float host[4] = {0};
    be->copy_h2d(NULL, host, sizeof host); /* an invalid destination: the copy fails at once */
    cr_expect_neq(be_status(be), SQ_OK, "%s: a failing copy was not recorded", c->where);
    if (!strcmp(be->name, "cuda"))
        cr_expect(strstr(sq_last_error(), "cudaMemcpy") != NULL, "%s: the message lacks the statement: %s",
                  c->where, sq_last_error());
    cr_expect_gt(be_errors(be), before, "%s: error_count did not move", c->where);
    float *d = be->alloc(16);
    be->fill(4, 1.0f, d); /* a later successful op keeps the first error */
    be->free(d);
    be->sync();
    cr_expect_neq(be_status(be), SQ_OK, "%s: the sticky error vanished", c->where);
    be_clear(be);
    cr_expect_eq(be_status(be), SQ_OK, "%s: clear_status did not clear", c->where);
    ok(c);
    return 1;
}

static int run_info(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const sq_backend *be = c->be;
    if (be->configure) {
        sq_backend_opts o = SQ_BACKEND_OPTS_DEFAULT;
        if (be->options) o = *be->options();
        o.tf32 = 0;
        cr_expect_eq(be->configure(&o), SQ_OK, "%s: configure: %s", c->where, sq_last_error());
        if (be->options)
            cr_expect(!memcmp(be->options(), &o, sizeof o), "%s: options() is not what configure set",
                      c->where);
    }
    if (be->device_info) {
        sq_device_info di;
        memset(&di, 0xA5, sizeof di);
        be->device_info(&di);
        cr_expect(memchr(di.name, 0, sizeof di.name) && di.name[0], "%s: device_info: no name", c->where);
        cr_expect(di.peak_gbps >= 0.0, "%s: device_info: peak %g GB/s", c->where, di.peak_gbps);
        if (be->is_device)
            cr_expect_gt(di.multiprocessors, 0, "%s: device_info: no multiprocessors", c->where);
    }
    if (be->mem_info) {
        size_t fr = 0, tot = 0;
        cr_expect_eq(be->mem_info(&fr, &tot), 0, "%s: mem_info failed: %s", c->where, sq_last_error());
        cr_expect(tot > 0 && fr <= tot, "%s: mem_info: free %zu of %zu", c->where, fr, tot);
    }
    ok(c);
    return 1;
}

/* ================================================================ family: elementwise */

static int run_act(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const sq_act_kind k = (sq_act_kind)r->arg[0];
    const size_t n = (size_t)p[0];
    float *x = hr(c, n, -2, 8), *gy = hr(c, n, -1, 1), *gx0 = hr(c, n, -1, 1);
    /* the boundaries, where the gradient is 0 (PyTorch), and a NaN (becomes 0, no gradient) */
    if (n > 2) x[0] = 0.0f, x[1] = 6.0f, x[2] = NAN;
    float *y = hn(c, n), *gx = hd(c, gx0, n);
    c->ref->act_fwd(k, n, x, y);
    if (mode == ACC) c->ref->act_bwd(k, n, x, gy, gx);
    float *dx = din(c, x, n), *dy = dout(c, NULL, n), *dgy = din(c, gy, n), *dgx = dout(c, gx0, n);
    BO_CALL(c, "act_fwd", 8.0 * n, c->be->act_fwd(k, n, dx, dy));
    if (mode == ACC) BO_CALL(c, "act_bwd", 16.0 * n, c->be->act_bwd(k, n, dx, dgy, dgx));
    if (mode == NUL) c->be->act_bwd(k, n, dx, dgy, NULL);
    ok(c);
    cmp(c, "y", fetch(c, dy), y, n, 0);
    cmp(c, "gx", fetch(c, dgx), gx, n, 0);
    return 1;
}

/* elements; bounds from arg[0]: 0 [-0.5, 2], 1 [-inf, 0.75], 2 [-1, +inf] */
static int run_clip(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const float lo = r->arg[0] == 1 ? -INFINITY : r->arg[0] == 2 ? -1.0f : -0.5f,
                hi = r->arg[0] == 1 ? 0.75f : r->arg[0] == 2 ? INFINITY : 2.0f;
    const size_t n = (size_t)p[0];
    float *x = hr(c, n, -3, 3), *gy = hr(c, n, -1, 1), *gx0 = hr(c, n, -1, 1);
    /* the bounds themselves (gradient passes: PyTorch's clamp) and a NaN (stays NaN, no gradient) */
    if (n > 2) x[0] = isinf(lo) ? -1e30f : lo, x[1] = isinf(hi) ? 1e30f : hi, x[2] = NAN;
    float *y = hn(c, n), *gx = hd(c, gx0, n);
    c->ref->clip_fwd(n, lo, hi, x, y);
    if (mode == ACC) c->ref->clip_bwd(n, lo, hi, x, gy, gx);
    float *dx = din(c, x, n), *dy = dout(c, NULL, n), *dgy = din(c, gy, n), *dgx = dout(c, gx0, n);
    BO_CALL(c, "clip_fwd", 8.0 * n, c->be->clip_fwd(n, lo, hi, dx, dy));
    if (mode == ACC) BO_CALL(c, "clip_bwd", 16.0 * n, c->be->clip_bwd(n, lo, hi, dx, dgy, dgx));
    if (mode == NUL) c->be->clip_bwd(n, lo, hi, dx, dgy, NULL);
    ok(c);
    cmp(c, "y", fetch(c, dy), y, n, 0);
    cmp(c, "gx", fetch(c, dgx), gx, n, 0);
    return 1;
}

/* n c hw: per-channel affine */
static int run_affine(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const int n = p[0], ch = p[1], hw = p[2];
    const size_t m = (size_t)n * ch * hw;
    float *x = hr(c, m, -3, 3), *a = hr(c, (size_t)ch, -2, 2), *b = hr(c, (size_t)ch, -1, 1),
          *gy = hr(c, m, -1, 1), *gx0 = hr(c, m, -1, 1), *y = hn(c, m), *gx = hd(c, gx0, m);
    c->ref->affine_fwd(n, ch, hw, a, b, x, y);
    if (mode == ACC) c->ref->affine_bwd(n, ch, hw, a, gy, gx);
    float *dx = din(c, x, m), *da = din(c, a, (size_t)ch), *db = din(c, b, (size_t)ch), *dy = dout(c, NULL, m),
          *dgy = din(c, gy, m), *dgx = dout(c, gx0, m);
    BO_CALL(c, "affine_fwd", 8.0 * m, c->be->affine_fwd(n, ch, hw, da, db, dx, dy));
    if (mode == ACC) BO_CALL(c, "affine_bwd", 12.0 * m, c->be->affine_bwd(n, ch, hw, da, dgy, dgx));
    if (mode == NUL) c->be->affine_bwd(n, ch, hw, da, dgy, NULL);
    ok(c);
    cmp(c, "y", fetch(c, dy), y, m, 0);
    cmp(c, "gx", fetch(c, dgx), gx, m, 0);
    return 1;
}

static int run_elementwise(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const sq_backend *be = c->be, *o = c->ref;
    const size_t n = (size_t)p[0];
    float *a = hr(c, n, -2, 8), *b = hr(c, n, -1, 1), *y0 = hr(c, n, -1, 1);
    float *y = hn(c, n), *acc = hd(c, y0, n), *sc = hd(c, a, n), *fl = hn(c, n);
    o->add_fwd(n, a, b, y);
    o->axpy(n, -0.37f, a, acc);
    o->scale(n, 1.7f, sc);
    o->fill(n, 0.25f, fl);
    float *da = din(c, a, n), *db = din(c, b, n), *dy = dout(c, NULL, n), *dip = dout(c, a, n),
          *dacc = dout(c, y0, n), *dsc = dout(c, a, n), *dfl = dout(c, NULL, n);
    BO_CALL(c, "add_fwd", 12.0 * n, be->add_fwd(n, da, db, dy));
    be->add_fwd(n, dip, db, dip); /* in place: y = a (the graph accumulates residuals so) */
    BO_CALL(c, "axpy", 12.0 * n, be->axpy(n, -0.37f, da, dacc));
    BO_CALL(c, "scale", 8.0 * n, be->scale(n, 1.7f, dsc));
    BO_CALL(c, "fill", 4.0 * n, be->fill(n, 0.25f, dfl));
    ok(c);
    cmp(c, "add", fetch(c, dy), y, n, 0);
    cmp(c, "add:in place", fetch(c, dip), y, n, 0);
    cmp(c, "axpy", fetch(c, dacc), acc, n, 0);
    cmp(c, "scale", fetch(c, dsc), sc, n, 0);
    cmp(c, "fill", fetch(c, dfl), fl, n, 0);
    return 1;
}

/* ================================================================ family: batchnorm */

static int run_bn(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const sq_backend *be = c->be, *o = c->ref;
    if (mode == SET && !be->bn_bwd_set) return 0;
    const int n = p[0], ch = p[1], hw = p[2];
    const size_t m = (size_t)n * ch * hw;
    float *x = hr(c, m, -3, 5), *gy = hr(c, m, -1, 1), *gamma = hr(c, ch, 0.5f, 1.5f),
          *beta = hr(c, ch, -0.5f, 0.5f), *rm0 = hr(c, ch, -0.1f, 0.1f), *rv0 = hr(c, ch, 0.5f, 1.5f),
          *gx0 = hr(c, m, -1, 1), *gg0 = hr(c, ch, -1, 1), *gb0 = hr(c, ch, -1, 1);
    float *y = hn(c, m), *ye = hn(c, m), *rm = hd(c, rm0, ch), *rv = hd(c, rv0, ch), *sm = hn(c, ch),
          *si = hn(c, ch);
    o->bn_fwd_train(n, ch, hw, x, gamma, beta, rm, rv, 0.1f, 1e-5f, y, sm, si);
    o->bn_fwd_eval(n, ch, hw, x, gamma, beta, rm, rv, 1e-5f, ye);
    float *dx = din(c, x, m), *dgy = din(c, gy, m), *dga = din(c, gamma, ch), *dbe = din(c, beta, ch),
          *drm = dout(c, rm0, ch), *drv = dout(c, rv0, ch), *dy = dout(c, NULL, m), *dye = dout(c, NULL, m),
          *dsm = dout(c, NULL, ch), *dsi = dout(c, NULL, ch);
    BO_CALL(c, "bn_fwd_train", 12.0 * m,
            be->bn_fwd_train(n, ch, hw, dx, dga, dbe, drm, drv, 0.1f, 1e-5f, dy, dsm, dsi));
    BO_CALL(c, "bn_fwd_eval", 8.0 * m, be->bn_fwd_eval(n, ch, hw, dx, dga, dbe, drm, drv, 1e-5f, dye));
    /* backward from the oracle's saved statistics */
    float *gx = hd(c, gx0, m), *gg = hd(c, gg0, ch), *gb = hd(c, gb0, ch);
    float *dsm2 = din(c, sm, ch), *dsi2 = din(c, si, ch), *dgx = dout(c, mode == SET ? NULL : gx0, m),
          *dgg = dout(c, gg0, ch), *dgb = dout(c, gb0, ch);
    if (mode == SET) memset(gx, 0, m * sizeof(float));
    if (mode == NUL) {
        o->bn_bwd(n, ch, hw, x, gy, gamma, sm, si, NULL, gg, gb);
        o->bn_bwd(n, ch, hw, x, gy, gamma, sm, si, gx, NULL, NULL);
        be->bn_bwd(n, ch, hw, dx, dgy, dga, dsm2, dsi2, NULL, dgg, dgb);
        be->bn_bwd(n, ch, hw, dx, dgy, dga, dsm2, dsi2, dgx, NULL, NULL);
    } else {
        o->bn_bwd(n, ch, hw, x, gy, gamma, sm, si, gx, gg, gb);
        if (mode == SET)
            BO_CALL(c, "bn_bwd_set", 16.0 * m,
                    be->bn_bwd_set(n, ch, hw, dx, dgy, dga, dsm2, dsi2, dgx, dgg, dgb));
        else
            BO_CALL(c, "bn_bwd", 20.0 * m, be->bn_bwd(n, ch, hw, dx, dgy, dga, dsm2, dsi2, dgx, dgg, dgb));
    }
    float *dgxz = NULL, *dggz = NULL, *dgbz = NULL, *dy2 = NULL, *dsm3 = NULL, *dsi3 = NULL, *drm2 = NULL,
          *drv2 = NULL;
    if (mode == SET) { /* the same backend accumulating into zeros */
        dgxz = dout(c, hz(c, m), m), dggz = dout(c, gg0, ch), dgbz = dout(c, gb0, ch);
        be->bn_bwd(n, ch, hw, dx, dgy, dga, dsm2, dsi2, dgxz, dggz, dgbz);
    }
    if (mode == DET) { /* the forward again from the same running statistics, the backward again */
        drm2 = dout(c, rm0, ch), drv2 = dout(c, rv0, ch), dy2 = dout(c, NULL, m), dsm3 = dout(c, NULL, ch),
        dsi3 = dout(c, NULL, ch);
        be->bn_fwd_train(n, ch, hw, dx, dga, dbe, drm2, drv2, 0.1f, 1e-5f, dy2, dsm3, dsi3);
        dgxz = dout(c, gx0, m), dggz = dout(c, gg0, ch), dgbz = dout(c, gb0, ch);
        be->bn_bwd(n, ch, hw, dx, dgy, dga, dsm2, dsi2, dgxz, dggz, dgbz);
    }
    ok(c);
    const double terms = (double)n * hw;
    float *ry = fetch(c, dy), *rsm = fetch(c, dsm), *rsi = fetch(c, dsi), *rgx = fetch(c, dgx),
          *rgg = fetch(c, dgg), *rgb = fetch(c, dgb), *rrm = fetch(c, drm), *rrv = fetch(c, drv);
    double amax = 0.0;
    for (int k = 0; k < ch; k++) amax = fmax(amax, fabs((double)gamma[k] * si[k]));
    cmp(c, "y", ry, y, m, amax);
    cmp(c, "y eval", fetch(c, dye), ye, m, 0);
    cmp(c, "run_mean", rrm, rm, ch, 0);
    cmp(c, "run_var", rrv, rv, ch, 0);
    cmp(c, "save_mean", rsm, sm, ch, 0);
    cmp(c, "save_invstd", rsi, si, ch, 0);
    cmp(c, "gx", rgx, gx, m, 0);
    cmp(c, "ggamma", rgg, gg, ch, terms);
    cmp(c, "gbeta", rgb, gb, ch, terms);
    if (mode == SET || mode == DET) {
        cmp(c, "same:gx", fetch(c, dgxz), rgx, m, 0);
        cmp(c, "same:ggamma", fetch(c, dggz), rgg, ch, 0);
        cmp(c, "same:gbeta", fetch(c, dgbz), rgb, ch, 0);
    }
    if (mode == DET) {
        cmp(c, "same:y", fetch(c, dy2), ry, m, 0);
        cmp(c, "same:save_mean", fetch(c, dsm3), rsm, ch, 0);
        cmp(c, "same:save_invstd", fetch(c, dsi3), rsi, ch, 0);
        cmp(c, "same:run_mean", fetch(c, drm2), rrm, ch, 0);
        cmp(c, "same:run_var", fetch(c, drv2), rrv, ch, 0);
    }
    return 1;
}

/* ================================================================ family: conv */

static void conv_init(bo_ctx *c, sq_conv_shape *cs, const int *p)
{
    cr_assert_eq(sq_conv_shape_init(cs, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]), SQ_OK,
                 "%s: %s", c->where, sq_last_error());
}

static int run_conv(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const sq_backend *be = c->be, *o = c->ref;
    if (mode == SET && !be->conv2d_bwd_set) return 0;
    sq_conv_shape cs;
    conv_init(c, &cs, p);
    const int bias = p[10];
    const size_t nx = (size_t)cs.n * cs.c * cs.h * cs.w, nw = (size_t)cs.k * (cs.c / cs.groups) * cs.r * cs.s,
                 ny = (size_t)cs.n * cs.k * cs.oh * cs.ow, K = (size_t)cs.k;
    float *x = hr(c, nx, -1, 1), *w = hr(c, nw, -1, 1), *b = hr(c, K, -1, 1), *gy = hr(c, ny, -1, 1),
          *gx0 = hr(c, nx, -1, 1), *gw0 = hr(c, nw, -1, 1), *gb0 = hr(c, K, -1, 1);
    void *ows = hbytes(c, o->conv_ws_bytes(&cs));
    float *y = hn(c, ny), *gx = hd(c, gx0, nx), *gw = hd(c, gw0, nw), *gb = hd(c, gb0, K);
    if (mode == SET) memset(gx, 0, nx * sizeof(float));
    o->conv2d_fwd(&cs, x, w, bias ? b : NULL, y, ows);
    if (mode == NUL) {
        o->conv2d_bwd(&cs, x, w, gy, NULL, gw, NULL, ows);
        o->conv2d_bwd(&cs, x, w, gy, gx, NULL, bias ? gb : NULL, ows);
    } else
        o->conv2d_bwd(&cs, x, w, gy, gx, gw, bias ? gb : NULL, ows);

    const size_t wsb = be->conv_ws_bytes(&cs);
    void *ws = wsb ? dout_b(c, NULL, wsb) : NULL; /* guarded: the backend stays inside what it asked for */
    float *dx = din(c, x, nx), *dw = din(c, w, nw), *db = din(c, b, K), *dgy = din(c, gy, ny),
          *dy = dout(c, NULL, ny), *dgx = dout(c, mode == SET ? NULL : gx0, nx), *dgw = dout(c, gw0, nw),
          *dgb = dout(c, gb0, K), *dy2 = NULL, *dgx2 = NULL, *dgw2 = NULL, *dgb2 = NULL;
    BO_CALL(c, "conv2d_fwd", 4.0 * (nx + nw + ny), be->conv2d_fwd(&cs, dx, dw, bias ? db : NULL, dy, ws));
    if (mode == NUL) {
        be->conv2d_bwd(&cs, dx, dw, dgy, NULL, dgw, NULL, ws);
        be->conv2d_bwd(&cs, dx, dw, dgy, dgx, NULL, bias ? dgb : NULL, ws);
    } else if (mode == SET) {
        BO_CALL(c, "conv2d_bwd_set", 4.0 * (2 * nx + 3 * nw + ny),
                be->conv2d_bwd_set(&cs, dx, dw, dgy, dgx, dgw, bias ? dgb : NULL, ws));
        dgx2 = dout(c, hz(c, nx), nx), dgw2 = dout(c, gw0, nw), dgb2 = dout(c, gb0, K);
        be->conv2d_bwd(&cs, dx, dw, dgy, dgx2, dgw2, bias ? dgb2 : NULL, ws);
    } else {
        BO_CALL(c, "conv2d_bwd", 4.0 * (3 * nx + 3 * nw + ny),
                be->conv2d_bwd(&cs, dx, dw, dgy, dgx, dgw, bias ? dgb : NULL, ws));
        if (mode == DET) {
            dgx2 = dout(c, gx0, nx), dgw2 = dout(c, gw0, nw), dgb2 = dout(c, gb0, K);
            be->conv2d_bwd(&cs, dx, dw, dgy, dgx2, dgw2, bias ? dgb2 : NULL, ws);
        }
    }
    if (mode == DET || (mode == ACC && be->is_device)) {
        /* DET: again; device backends also take ws = NULL (their own workspace) */
        dy2 = dout(c, NULL, ny);
        be->conv2d_fwd(&cs, dx, dw, bias ? db : NULL, dy2, mode == DET ? ws : NULL);
    }
    ok(c);
    /* terms: products summed per output (y: C/g R S; gx: K/g R S; gw, gb: N OH OW) */
    const double ty = (double)(cs.c / cs.groups) * cs.r * cs.s, tx = (double)(cs.k / cs.groups) * cs.r * cs.s,
                 tw = (double)cs.n * cs.oh * cs.ow;
    float *ry = fetch(c, dy), *rgx = fetch(c, dgx), *rgw = fetch(c, dgw), *rgb = fetch(c, dgb);
    cmp(c, "y", ry, y, ny, ty);
    cmp(c, "gx", rgx, gx, nx, tx);
    cmp(c, "gw", rgw, gw, nw, tw);
    cmp(c, "gb", rgb, gb, K, tw);
    if (dy2)
        cmp(c, mode == DET ? "same:y again" : "same:y with the backend's own workspace", fetch(c, dy2), ry,
            ny, 0);
    if (dgx2) {
        cmp(c, "same:gx", fetch(c, dgx2), rgx, nx, 0);
        cmp(c, "same:gw", fetch(c, dgw2), rgw, nw, 0);
        cmp(c, "same:gb", fetch(c, dgb2), rgb, K, 0);
    }
    return 1;
}

/* ================================================================ family: pool */

/* p: n c h w k stride pad (the zoo's square pools), or with arg[1] = 1 the general window
   n c h w kh kw sh sw pad_t pad_l pad_b pad_r ceil_mode count_include_pad */
static int run_pool(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const sq_backend *be = c->be, *o = c->ref;
    const sq_pool_kind kind = (sq_pool_kind)r->arg[0];
    sq_pool_shape ps;
    const sq_status st = r->arg[1] ? sq_pool_shape_init(&ps, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7],
                                                        p[8], p[9], p[10], p[11], p[12], p[13])
                                   : sq_pool_shape_square(&ps, p[0], p[1], p[2], p[3], p[4], p[5], p[6]);
    cr_assert_eq(st, SQ_OK, "%s: %s", c->where, sq_last_error());
    const size_t ni = (size_t)ps.n * ps.c * ps.h * ps.w, no = (size_t)ps.n * ps.c * ps.oh * ps.ow;
    float *x = hr(c, ni, -2, 2), *gy = hr(c, no, -1, 1), *gx0 = hr(c, ni, -1, 1);
    float *y = hn(c, no), *gx = hd(c, gx0, ni);
    int32_t *am = hbytes(c, no * 4);
    o->pool_fwd(kind, &ps, x, y, am);
    if (mode == ACC) o->pool_bwd(kind, &ps, gy, am, gx);
    float *dx = din(c, x, ni), *dy = dout(c, NULL, no), *dgy = din(c, gy, no), *dgx = dout(c, gx0, ni);
    int32_t *dam = dout_b(c, NULL, no * 4);
    BO_CALL(c, kind == SQ_POOL_MAX ? "pool_fwd max" : "pool_fwd avg", 4.0 * ni + 8.0 * no,
            be->pool_fwd(kind, &ps, dx, dy, dam));
    if (mode == ACC)
        BO_CALL(c, kind == SQ_POOL_MAX ? "pool_bwd max" : "pool_bwd avg", 8.0 * ni + 8.0 * no,
                be->pool_bwd(kind, &ps, dgy, dam, dgx));
    if (mode == NUL) be->pool_bwd(kind, &ps, dgy, dam, NULL);
    ok(c);
    int32_t *ram = fetch_b(c, dam);
    if (kind == SQ_POOL_MAX) cmp_bytes(c, "argmax", ram, am, no * 4); /* avg: argmax unspecified */
    cmp(c, "y", fetch(c, dy), y, no, 0);
    cmp(c, "gx", fetch(c, dgx), gx, ni, 0);
    return 1;
}

static int run_gap(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const int n = p[0], ch = p[1], hw = p[2];
    const size_t ni = (size_t)n * ch * hw, no = (size_t)n * ch;
    float *x = hr(c, ni, -2, 2), *gy = hr(c, no, -1, 1), *gx0 = hr(c, ni, -1, 1), *y = hn(c, no),
          *gx = hd(c, gx0, ni);
    c->ref->gap_fwd(n, ch, hw, x, y);
    if (mode == ACC) c->ref->gap_bwd(n, ch, hw, gy, gx);
    float *dx = din(c, x, ni), *dy = dout(c, NULL, no), *dgy = din(c, gy, no), *dgx = dout(c, gx0, ni),
          *dy2 = NULL;
    BO_CALL(c, "gap_fwd", 4.0 * (ni + no), c->be->gap_fwd(n, ch, hw, dx, dy));
    if (mode == ACC) BO_CALL(c, "gap_bwd", 8.0 * ni + 4.0 * no, c->be->gap_bwd(n, ch, hw, dgy, dgx));
    if (mode == NUL) c->be->gap_bwd(n, ch, hw, dgy, NULL);
    if (mode == DET) c->be->gap_fwd(n, ch, hw, dx, dy2 = dout(c, NULL, no));
    ok(c);
    float *ry = fetch(c, dy);
    cmp(c, "y", ry, y, no, sqrt((double)hw));
    cmp(c, "gx", fetch(c, dgx), gx, ni, 0);
    if (dy2) cmp(c, "same:y again", fetch(c, dy2), ry, no, 0);
    return 1;
}

/* ================================================================ family: linear */

static int run_linear(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const sq_backend *be = c->be, *o = c->ref;
    const int n = p[0], in = p[1], out = p[2], bias = p[3];
    const size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out, B = (size_t)out;
    float *x = hr(c, nx, -1, 1), *w = hr(c, nw, -1, 1), *b = hr(c, B, -1, 1), *gy = hr(c, ny, -1, 1),
          *gx0 = hr(c, nx, -1, 1), *gw0 = hr(c, nw, -1, 1), *gb0 = hr(c, B, -1, 1);
    float *y = hn(c, ny), *gx = hd(c, gx0, nx), *gw = hd(c, gw0, nw), *gb = hd(c, gb0, B);
    o->linear_fwd(n, in, out, x, w, bias ? b : NULL, y);
    if (mode == NUL) {
        o->linear_bwd(n, in, out, x, w, gy, NULL, gw, bias ? gb : NULL); /* the first layer: no gx */
        o->linear_bwd(n, in, out, x, w, gy, gx, NULL, NULL);
    } else
        o->linear_bwd(n, in, out, x, w, gy, gx, gw, bias ? gb : NULL);
    float *dx = din(c, x, nx), *dw = din(c, w, nw), *db = din(c, b, B), *dgy = din(c, gy, ny),
          *dy = dout(c, NULL, ny), *dgx = dout(c, gx0, nx), *dgw = dout(c, gw0, nw), *dgb = dout(c, gb0, B);
    BO_CALL(c, "linear_fwd", 4.0 * (nx + nw + ny), be->linear_fwd(n, in, out, dx, dw, bias ? db : NULL, dy));
    if (mode == NUL) {
        be->linear_bwd(n, in, out, dx, dw, dgy, NULL, dgw, bias ? dgb : NULL);
        be->linear_bwd(n, in, out, dx, dw, dgy, dgx, NULL, NULL);
    } else
        BO_CALL(c, "linear_bwd", 4.0 * (3 * nx + 3 * nw + ny),
                be->linear_bwd(n, in, out, dx, dw, dgy, dgx, dgw, bias ? dgb : NULL));
    ok(c);
    /* terms: products per dot product */
    cmp(c, "y", fetch(c, dy), y, ny, in);
    cmp(c, "gx", fetch(c, dgx), gx, nx, out);
    cmp(c, "gw", fetch(c, dgw), gw, nw, n);
    cmp(c, "gb", fetch(c, dgb), gb, B, n);
    return 1;
}

/* ================================================================ family: structural */

static int run_shortcut(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const int n = p[0], ch = p[1], h = p[2], w = p[3], k = p[4];
    const size_t ni = (size_t)n * ch * h * w, no = (size_t)n * k * ((h + 1) / 2) * ((w + 1) / 2);
    float *x = hr(c, ni, -1, 1), *gy = hr(c, no, -1, 1), *gx0 = hr(c, ni, -1, 1), *y = hn(c, no),
          *gx = hd(c, gx0, ni);
    c->ref->shortcut_a_fwd(n, ch, h, w, k, x, y);
    if (mode == ACC) c->ref->shortcut_a_bwd(n, ch, h, w, k, gy, gx);
    float *dx = din(c, x, ni), *dy = dout(c, NULL, no), *dgy = din(c, gy, no), *dgx = dout(c, gx0, ni);
    BO_CALL(c, "shortcut_a_fwd", 8.0 * no, c->be->shortcut_a_fwd(n, ch, h, w, k, dx, dy));
    if (mode == ACC)
        BO_CALL(c, "shortcut_a_bwd", 8.0 * ni + 4.0 * no, c->be->shortcut_a_bwd(n, ch, h, w, k, dgy, dgx));
    if (mode == NUL) c->be->shortcut_a_bwd(n, ch, h, w, k, dgy, NULL);
    ok(c);
    cmp(c, "y", fetch(c, dy), y, no, 0);
    cmp(c, "gx", fetch(c, dgx), gx, ni, 0);
    return 1;
}

static int run_concat(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const int n = p[0], c1 = p[1], c2 = p[2], hw = p[3];
    const size_t na = (size_t)n * c1 * hw, nb = (size_t)n * c2 * hw, ny = na + nb;
    float *a = hr(c, na, -1, 1), *b = hr(c, nb, -1, 1), *gy = hr(c, ny, -1, 1), *ga0 = hr(c, na, -1, 1),
          *gb0 = hr(c, nb, -1, 1), *y = hn(c, ny), *ga = hd(c, ga0, na), *gb = hd(c, gb0, nb);
    c->ref->concat_fwd(n, c1, c2, hw, a, b, y);
    if (mode == ACC) c->ref->concat_bwd(n, c1, c2, hw, gy, ga, gb);
    if (mode == NUL) c->ref->concat_bwd(n, c1, c2, hw, gy, NULL, gb);
    float *da = din(c, a, na), *db = din(c, b, nb), *dy = dout(c, NULL, ny), *dgy = din(c, gy, ny),
          *dga = dout(c, ga0, na), *dgb = dout(c, gb0, nb);
    BO_CALL(c, "concat_fwd", 8.0 * ny, c->be->concat_fwd(n, c1, c2, hw, da, db, dy));
    if (mode == ACC) BO_CALL(c, "concat_bwd", 12.0 * ny, c->be->concat_bwd(n, c1, c2, hw, dgy, dga, dgb));
    if (mode == NUL) c->be->concat_bwd(n, c1, c2, hw, dgy, NULL, dgb);
    ok(c);
    cmp(c, "y", fetch(c, dy), y, ny, 0);
    cmp(c, "ga", fetch(c, dga), ga, na, 0);
    cmp(c, "gb", fetch(c, dgb), gb, nb, 0);
    return 1;
}

/* n c h w pt pl pb pr: constant padding (value arg[0]: 0 zero, 1 -inf, 2 1.5) */
static int run_pad(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const int n = p[0], ch = p[1], h = p[2], w = p[3], pt = p[4], pl = p[5], pb = p[6], pr = p[7];
    const float v = r->arg[0] == 1 ? -INFINITY : r->arg[0] == 2 ? 1.5f : 0.0f;
    const size_t ni = (size_t)n * ch * h * w, no = (size_t)n * ch * (pt + h + pb) * (pl + w + pr);
    float *x = hr(c, ni, -1, 1), *gy = hr(c, no, -1, 1), *gx0 = hr(c, ni, -1, 1), *y = hn(c, no),
          *gx = hd(c, gx0, ni);
    c->ref->pad_fwd(n, ch, h, w, pt, pl, pb, pr, v, x, y);
    if (mode == ACC) c->ref->pad_bwd(n, ch, h, w, pt, pl, pb, pr, gy, gx);
    float *dx = din(c, x, ni), *dy = dout(c, NULL, no), *dgy = din(c, gy, no), *dgx = dout(c, gx0, ni);
    BO_CALL(c, "pad_fwd", 4.0 * (ni + no), c->be->pad_fwd(n, ch, h, w, pt, pl, pb, pr, v, dx, dy));
    if (mode == ACC)
        BO_CALL(c, "pad_bwd", 12.0 * ni, c->be->pad_bwd(n, ch, h, w, pt, pl, pb, pr, dgy, dgx));
    if (mode == NUL) c->be->pad_bwd(n, ch, h, w, pt, pl, pb, pr, dgy, NULL);
    ok(c);
    cmp(c, "y", fetch(c, dy), y, no, 0);
    cmp(c, "gx", fetch(c, dgx), gx, ni, 0);
    return 1;
}

/* n c hw c0 k: channels [c0, c0 + k) of c */
static int run_slice(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const int n = p[0], ch = p[1], hw = p[2], c0 = p[3], k = p[4];
    const size_t ni = (size_t)n * ch * hw, no = (size_t)n * k * hw;
    float *x = hr(c, ni, -1, 1), *gy = hr(c, no, -1, 1), *gx0 = hr(c, ni, -1, 1), *y = hn(c, no),
          *gx = hd(c, gx0, ni);
    c->ref->slice_fwd(n, ch, hw, c0, k, x, y);
    if (mode == ACC) c->ref->slice_bwd(n, ch, hw, c0, k, gy, gx);
    float *dx = din(c, x, ni), *dy = dout(c, NULL, no), *dgy = din(c, gy, no), *dgx = dout(c, gx0, ni);
    BO_CALL(c, "slice_fwd", 8.0 * no, c->be->slice_fwd(n, ch, hw, c0, k, dx, dy));
    if (mode == ACC) BO_CALL(c, "slice_bwd", 12.0 * no, c->be->slice_bwd(n, ch, hw, c0, k, dgy, dgx));
    if (mode == NUL) c->be->slice_bwd(n, ch, hw, c0, k, dgy, NULL);
    ok(c);
    cmp(c, "y", fetch(c, dy), y, no, 0);
    cmp(c, "gx", fetch(c, dgx), gx, ni, 0);
    return 1;
}

static int run_shuffle(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const int n = p[0], ch = p[1], hw = p[2], gr = p[3];
    const size_t m = (size_t)n * ch * hw;
    float *x = hr(c, m, -1, 1), *gy = hr(c, m, -1, 1), *gx0 = hr(c, m, -1, 1), *y = hn(c, m),
          *gx = hd(c, gx0, m);
    c->ref->shuffle_fwd(n, ch, hw, gr, x, y);
    if (mode == ACC) c->ref->shuffle_bwd(n, ch, hw, gr, gy, gx);
    float *dx = din(c, x, m), *dy = dout(c, NULL, m), *dgy = din(c, gy, m), *dgx = dout(c, gx0, m);
    BO_CALL(c, "shuffle_fwd", 8.0 * m, c->be->shuffle_fwd(n, ch, hw, gr, dx, dy));
    if (mode == ACC) BO_CALL(c, "shuffle_bwd", 12.0 * m, c->be->shuffle_bwd(n, ch, hw, gr, dgy, dgx));
    if (mode == NUL) c->be->shuffle_bwd(n, ch, hw, gr, dgy, NULL);
    ok(c);
    cmp(c, "y", fetch(c, dy), y, m, 0);
    cmp(c, "gx", fetch(c, dgx), gx, m, 0);
    return 1;
}

/* p in {0, 0.2, 0.5, 1} for each size (looped) */
static int run_dropout(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    static const float ps[] = {0.0f, 0.2f, 0.5f, 1.0f};
    const size_t n = (size_t)p[0];
    for (int pi = 0; pi < 4; pi++) {
        const float pr = ps[pi];
        const uint64_t seed = 0x5eed0000ull + c->seed + (uint64_t)pi;
        float *x = hr(c, n, -1, 1), *gy = hr(c, n, -1, 1), *gx0 = hr(c, n, -1, 1), *y = hn(c, n),
              *gx = hd(c, gx0, n);
        uint8_t *mask = hbytes(c, n);
        c->ref->dropout_fwd(n, pr, seed, x, y, mask);
        if (mode == ACC) c->ref->dropout_bwd(n, pr, mask, gy, gx);
        float *dx = din(c, x, n), *dy = dout(c, NULL, n), *dgy = din(c, gy, n), *dgx = dout(c, gx0, n);
        uint8_t *dm = dout_b(c, NULL, n);
        BO_CALL(c, "dropout_fwd", 9.0 * n, c->be->dropout_fwd(n, pr, seed, dx, dy, dm));
        if (mode == ACC) BO_CALL(c, "dropout_bwd", 13.0 * n, c->be->dropout_bwd(n, pr, dm, dgy, dgx));
        if (mode == NUL) c->be->dropout_bwd(n, pr, dm, dgy, NULL);
        ok(c);
        cmp_bytes(c, "mask", fetch_b(c, dm), mask, n);
        cmp(c, "y", fetch(c, dy), y, n, 0);
        cmp(c, "gx", fetch(c, dgx), gx, n, 0);
        if (c->timing) break;
    }
    return 1;
}

/* ================================================================ family: losses */

/* method.md section 2's test vector, printed to 6-7 digits */
static int run_kl_vector(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const float zt[2] = {0.0f, 0.0f}, zs[2] = {4.0f, 0.0f}, want_l = 1.921832f,
                want_g[2] = {0.924234f, -0.924234f};
    float *dzt = din(c, zt, 2), *dzs = din(c, zs, 2), *dl = dout(c, NULL, 1), *dg = dout(c, NULL, 2);
    c->be->kl_fwd_bwd(1, 2, dzt, dzs, 4.0f, 1.0f, dl, dg);
    ok(c);
    cmp(c, "test vector:loss", fetch(c, dl), &want_l, 1, 0);
    cmp(c, "test vector:gradient", fetch(c, dg), want_g, 2, 0);
    return 1;
}

static int32_t *labels(bo_ctx *c, int n, int k)
{
    int32_t *lab = hbytes(c, (size_t)n * 4);
    for (int i = 0; i < n; i++)
        lab[i] = i % 5 == 3 ? -1 : (int32_t)((i * 7919u) % (unsigned)k); /* -1: ignored */
    return lab;
}

static int run_losses(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const sq_backend *be = c->be;
    const int n = p[0], k = p[1];
    const size_t m = (size_t)n * k;
    float *zt = hr(c, m, -6, 6), *zs = hr(c, m, -6, 6), l[2], *gkl = hn(c, m), *gce = hn(c, m);
    int32_t *lab = labels(c, n, k), *am = hbytes(c, (size_t)n * 4);
    c->ref->kl_fwd_bwd(n, k, zt, zs, 4.0f, 1.0f, &l[0], gkl);
    c->ref->softmax_ce(n, k, zs, lab, 0.5f, &l[1], gce);
    c->ref->argmax(n, k, zs, am);
    float *dzt = din(c, zt, m), *dzs = din(c, zs, m), *dl = dout(c, NULL, 4), *dgkl = dout(c, NULL, m),
          *dgce = dout(c, NULL, m), *dgkl2 = NULL, *dgce2 = NULL;
    int32_t *dlab = din_b(c, lab, (size_t)n * 4), *dam = dout_b(c, NULL, (size_t)n * 4), *dam2 = NULL;
    BO_CALL(c, "kl_fwd_bwd", 12.0 * m, be->kl_fwd_bwd(n, k, dzt, dzs, 4.0f, 1.0f, dl, dgkl));
    BO_CALL(c, "softmax_ce", 8.0 * m, be->softmax_ce(n, k, dzs, dlab, 0.5f, dl + 1, dgce));
    BO_CALL(c, "argmax", 4.0 * m, be->argmax(n, k, dzs, dam));
    if (mode == NUL) be->kl_fwd_bwd(n, k, dzt, dzs, 4.0f, 1.0f, dl + 2, NULL); /* evaluation: loss only */
    if (mode == DET) {
        be->kl_fwd_bwd(n, k, dzt, dzs, 4.0f, 1.0f, dl + 2, dgkl2 = dout(c, NULL, m));
        be->softmax_ce(n, k, dzs, dlab, 0.5f, dl + 3, dgce2 = dout(c, NULL, m));
        be->argmax(n, k, dzs, dam2 = dout_b(c, NULL, (size_t)n * 4));
    }
    ok(c);
    float *rl = fetch(c, dl), *rgkl = fetch(c, dgkl), *rgce = fetch(c, dgce);
    cmp(c, "kl loss", rl, &l[0], 1, 0);
    cmp(c, "ce loss", rl + 1, &l[1], 1, 0);
    cmp(c, "kl grad", rgkl, gkl, m, 0);
    cmp(c, "ce grad", rgce, gce, m, 0);
    cmp_bytes(c, "argmax", fetch_b(c, dam), am, (size_t)n * 4);
    if (mode == NUL) cmp(c, "same:kl loss without the gradient", rl + 2, rl, 1, 0);
    if (mode == DET) {
        cmp(c, "same:kl loss, second run", rl + 2, rl, 1, 0);
        cmp(c, "same:ce loss, second run", rl + 3, rl + 1, 1, 0);
        cmp(c, "same:kl grad, second run", fetch(c, dgkl2), rgkl, m, 0);
        cmp(c, "same:ce grad, second run", fetch(c, dgce2), rgce, m, 0);
        cmp_bytes(c, "same:argmax, second run", fetch_b(c, dam2), am, (size_t)n * 4);
    }
    return 1;
}

/* rows the random cases do not reach, for each KL kernel (K = 10, 100 and 1000, 1025): student =
   teacher + 7 (KL 0 by cancellation of large terms), teacher logits of -inf (P_T = 0 terms add
   0), -inf in both, logits of +-80 (exps far below float's range), a near one-hot teacher,
   identical rows, nearly identical rows */
static int run_kl_extreme(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const int n = 9, k = p[0];
    const float T = (float)p[1];
    const size_t m = (size_t)n * k;
    float *zt = hr(c, m, -6, 6), *zs = hr(c, m, -6, 6);
    for (int j = 0; j < k; j++) {
        zs[0 * k + j] = zt[0 * k + j] + 7.0f;
        if (j % 3 == 0) zt[1 * k + j] = -INFINITY;
        if (j % 3 == 0) zt[2 * k + j] = zs[2 * k + j] = -INFINITY;
        zt[3 * k + j] *= 13.0f; /* up to +-78 */
        zs[3 * k + j] = -zt[3 * k + j];
        zt[4 * k + j] = j == k / 2 ? 60.0f : -60.0f;
        zs[5 * k + j] = zt[5 * k + j];
        zs[6 * k + j] = zt[6 * k + j] + 1e-3f * (float)(j % 7);
    }
    float l, *g = hn(c, m);
    c->ref->kl_fwd_bwd(n, k, zt, zs, T, 0.9f, &l, g);
    cr_assert(isfinite(l) && l > 0.0f, "%s: oracle KL loss %g", c->where, l);
    float *dzt = din(c, zt, m), *dzs = din(c, zs, m), *dl = dout(c, NULL, 1), *dg = dout(c, NULL, m);
    c->be->kl_fwd_bwd(n, k, dzt, dzs, T, 0.9f, dl, dg);
    ok(c);
    cmp(c, "kl loss", fetch(c, dl), &l, 1, 0);
    cmp(c, "kl grad", fetch(c, dg), g, m, 0);
    return 1;
}

/* SQuaT's feature loss (issue 20) for every activation quantizer at 1, 2 and 4 bits: the loss
   added to what *loss holds, the gradient accumulated; NUL: without the gradient, the same loss;
   DET: a second run, the same bits */
static int run_squat(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    (void)r;
    static const sq_quant_kind kinds[] = {SQ_QUANT_EWGS, SQ_QUANT_PACT, SQ_QUANT_LSQ, SQ_QUANT_DOREFA};
    const size_t n = (size_t)p[0];
    for (int ki = 0; ki < 4; ki++)
        for (int bits = 1; bits <= 4; bits *= 2) {
            if (c->timing && (ki != 0 || bits != 2)) continue; /* timing: ewgs, 2 bits */
            sq_quant_cfg cfg = {kinds[ki], SQ_QROLE_ACT, bits, 0, 0.0f, 0.0f, 0};
            float qp[2], l0[3] = {0.5f, 0.5f, 0.5f}, l[1];
            sqt_fq_params(kinds[ki], 0, bits, qp);
            float *xt = hr(c, n, -0.4f, 1.7f), *xs = hr(c, n, -0.2f, 1.5f), *g0 = hr(c, n, -1, 1),
                  *g = hd(c, g0, n);
            l[0] = 0.5f;
            c->ref->squat_fwd_bwd(&cfg, n, xt, qp, xs, 1.25f, &l[0], g);
            float *dxt = din(c, xt, n), *dxs = din(c, xs, n), *dqp = din(c, qp, 2), *dl = dout(c, l0, 3),
                  *dg = dout(c, g0, n), *dg2 = NULL;
            BO_CALL(c, "squat_fwd_bwd", 12.0 * n, c->be->squat_fwd_bwd(&cfg, n, dxt, dqp, dxs, 1.25f, dl, dg));
            if (mode == NUL) c->be->squat_fwd_bwd(&cfg, n, dxt, dqp, dxs, 1.25f, dl + 1, NULL);
            if (mode == DET) c->be->squat_fwd_bwd(&cfg, n, dxt, dqp, dxs, 1.25f, dl + 2, dg2 = dout(c, g0, n));
            ok(c);
            char label[96];
            float *rl = fetch(c, dl), *rg = fetch(c, dg);
            snprintf(label, sizeof label, "loss: %s %d bits", sq_quant_kind_name(kinds[ki]), bits);
            cmp(c, label, rl, l, 1, 0);
            snprintf(label, sizeof label, "grad: %s %d bits", sq_quant_kind_name(kinds[ki]), bits);
            cmp(c, label, rg, g, n, 0);
            if (mode == NUL) cmp(c, "same:loss without the gradient", rl + 1, rl, 1, 0);
            if (mode == DET) {
                cmp(c, "same:loss, second run", rl + 2, rl, 1, 0);
                cmp(c, "same:grad, second run", fetch(c, dg2), rg, n, 0);
            }
        }
    return 1;
}

/* ================================================================ family: fakequant */

/* the scale of the parameter gradients' rounding differences: every per-element term is at most
   C |gy_i| (C from the quantizer's formula, quant_math.h) and the two backends' terms differ by a
   few ulp of that (FMA contraction, e.g. LSQ's gy round(v) - v g_x): ~1e-7 C sum |gy| */
static double fq_grad_scale(const sq_quant_cfg *cfg, size_t n, const float *qp, const float *gy)
{
    sq_qm_ctx k;
    sq_qm_ctx_init(&k, cfg, n);
    double cc = 1.0, sum = 0.0;
    if (cfg->kind == SQ_QUANT_EWGS) cc = 2.0 * (1.0 + cfg->delta) / fabs((double)qp[1] - qp[0]);
    if (cfg->kind == SQ_QUANT_LSQ) cc = k.gscale * ((k.qn > k.qp ? k.qn : k.qp) + 1.0) * (1.0 + cfg->delta);
    for (size_t i = 0; i < n; i++) sum += fabs(gy[i]);
    return cc * sum;
}

static int dorefa_w(const sq_quant_cfg *cfg, size_t n)
{
    sq_qm_ctx k;
    sq_qm_ctx_init(&k, cfg, n);
    return sq_qm_needs_maxabs(&k);
}

/* one kind and role (the row's arg), bits 1, 2, 4, 8 x delta 0, 0.3 (looped); shape: elements and
   a start offset (1: one float past the 256-byte alignment; the first float must stay untouched) */
static int run_fq(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    static const int bits[] = {1, 2, 4, 8};
    const sq_quant_kind kind = (sq_quant_kind)r->arg[0];
    const int weight = r->arg[1];
    const size_t n = (size_t)p[0], off = (size_t)p[1], N = n + off;
    for (int bi = 0; bi < 4; bi++)
        for (int di = 0; di < 2; di++) {
            if (c->timing && (bi != 2 || di != 1)) continue; /* timing: 4 bits, delta 0.3 */
            sq_quant_cfg cfg = {
                kind, weight ? SQ_QROLE_WEIGHT : SQ_QROLE_ACT, bits[bi], weight, di ? 0.3f : 0.0f, 0.0f, 0};
            float qp[2], gqp0[2] = {0.25f, -0.5f}, gqp[2] = {0.25f, -0.5f};
            sqt_fq_params(kind, weight, bits[bi], qp);
            float *x = hr(c, N, weight ? -1.2f : -0.3f, weight ? 1.2f : 1.6f), *gy = hr(c, N, -1, 1),
                  *gx0 = hr(c, N, -1, 1), *y = hn(c, N), *gx = hd(c, gx0, N), *scr = hn(c, SQ_QUANT_SCRATCH);
            c->ref->fakequant_fwd(&cfg, n, x + off, qp, y + off, scr);
            c->ref->fakequant_bwd(&cfg, n, x + off, qp, gy + off, gx + off, gqp, scr);
            float *dx = din(c, x, N), *dgy = din(c, gy, N), *dqp = din(c, qp, 2), *dy = dout(c, NULL, N),
                  *dgx = dout(c, gx0, N), *dgqp = dout(c, gqp0, 2), *dscr = dout(c, NULL, SQ_QUANT_SCRATCH);
            BO_CALL(c, "fakequant_fwd", 8.0 * n,
                    c->be->fakequant_fwd(&cfg, n, dx + off, dqp, dy + off, dscr));
            BO_CALL(c, "fakequant_bwd", 16.0 * n,
                    c->be->fakequant_bwd(&cfg, n, dx + off, dqp, dgy + off, dgx + off, dgqp, dscr));
            ok(c);
            char label[96];
            const int dw = dorefa_w(&cfg, n), np = sq_quant_nparams(&cfg);
            float *rscr = fetch(c, dscr), *rgqp = fetch(c, dgqp);
            snprintf(label, sizeof label, "y: %d bits, delta %g", bits[bi], cfg.delta);
            cmp_m(c, label, fetch(c, dy), y, N, 0, NULL, dw);
            snprintf(label, sizeof label, "gx: %d bits, delta %g", bits[bi], cfg.delta);
            cmp_m(c, label, fetch(c, dgx), gx, N, 0, NULL, dw);
            if (dw) cmp(c, "scratch: max|tanh w|", rscr, scr, 1, 0);
            const double gs = fq_grad_scale(&cfg, n, qp, gy + off);
            for (int j = 0; j < 2; j++) {
                snprintf(label, sizeof label, "%s: gqp[%d], %d bits, delta %g",
                         j < np ? "gqp" : "gqp untouched", j, bits[bi], cfg.delta);
                cmp(c, label, rgqp + j, j < np ? gqp + j : gqp0 + j, 1, gs);
            }
        }
    return 1;
}

/* the parameter gradients of a tensor large enough for the full reducing grid: NUL: without gx,
   without gqp; DET: run after run the same bits */
static int run_fq_big(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const size_t n = (size_t)p[0];
    sq_quant_cfg cfg = {SQ_QUANT_EWGS, SQ_QROLE_ACT, 2, 0, 0.2f, 0.0f, 0};
    const float qp[2] = {0.0f, 1.0f};
    float *x = hr(c, n, -0.5f, 1.5f), *gy = hr(c, n, -1, 1), *gx = hz(c, n), gq[2] = {0, 0};
    c->ref->fakequant_bwd(&cfg, n, x, qp, gy, gx, gq, NULL);
    float *dx = din(c, x, n), *dgy = din(c, gy, n), *dqp = din(c, qp, 2), *dg = dout(c, hz(c, 6), 6),
          *dgx = dout(c, hz(c, n), n);
    if (mode == NUL) {
        c->be->fakequant_bwd(&cfg, n, dx, dqp, dgy, NULL, dg, NULL); /* gx not wanted */
        c->be->fakequant_bwd(&cfg, n, dx, dqp, dgy, dgx, NULL, NULL); /* gqp not wanted */
    } else {
        BO_CALL(c, "fakequant_bwd", 12.0 * n, c->be->fakequant_bwd(&cfg, n, dx, dqp, dgy, NULL, dg, NULL));
        c->be->fakequant_bwd(&cfg, n, dx, dqp, dgy, NULL, dg + 2, NULL);
        c->be->fakequant_bwd(&cfg, n, dx, dqp, dgy, dgx, dg + 4, NULL);
    }
    ok(c);
    float *rg = fetch(c, dg), *rgx = fetch(c, dgx);
    const double gs = fq_grad_scale(&cfg, n, qp, gy);
    cmp(c, "gqp", rg, gq, 2, gs);
    if (mode == NUL)
        cmp(c, "gx", rgx, gx, n, 0);
    else {
        cmp(c, "same:gqp, second run", rg + 2, rg, 2, 0);
        cmp(c, "same:gqp, third run (with gx)", rg + 4, rg, 2, 0);
    }
    return 1;
}

/* fakequant_scaled_fwd / _bwd: against the oracle's unfused ops (fakequant_fwd + absscale_fwd;
   absscale_bwd into a zeroed gy + fakequant_bwd), and against the same backend's unfused ops (the
   same bits except the scale's gradient, a sum in another order). Both roles, 2 and 4 bits
   (looped); the shape's third parameter picks s in {1.3, -0.7, 0} */
static int run_fq_scaled(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    static const float scales[] = {1.3f, -0.7f, 0.0f};
    const sq_backend *be = c->be, *o = c->ref;
    const sq_quant_kind kind = (sq_quant_kind)r->arg[0];
    const size_t n = (size_t)p[0], off = (size_t)p[1], N = n + off;
    const float s = scales[p[2]], gs0 = 0.75f;
    for (int weight = 0; weight < 2; weight++)
        for (int bits = 2; bits <= 4; bits += 2) {
            if (c->timing && (!weight || bits != 4)) continue;
            sq_quant_cfg cfg = {kind, weight ? SQ_QROLE_WEIGHT : SQ_QROLE_ACT, bits, weight, 0.2f, 0.0f, 0};
            float qp[2], gqp0[2] = {0.25f, -0.5f}, gqp[2] = {0.25f, -0.5f}, gs = gs0;
            sqt_fq_params(kind, weight, bits, qp);
            float *x = hr(c, N, weight ? -1.2f : -0.3f, weight ? 1.2f : 1.6f), *gys = hr(c, N, -1, 1),
                  *gx0 = hr(c, N, -1, 1), *y = hn(c, N), *ys = hn(c, N), *gy = hz(c, N), *gx = hd(c, gx0, N),
                  *scr = hn(c, SQ_QUANT_SCRATCH);
            for (size_t i = 0; i < off; i++) gy[i] = NAN; /* gy is written: before the start stays NaN */
            o->fakequant_fwd(&cfg, n, x + off, qp, y + off, scr);
            o->absscale_fwd(n, &s, y + off, ys + off);
            o->absscale_bwd(n, &s, y + off, gys + off, gy + off, &gs);
            o->fakequant_bwd(&cfg, n, x + off, qp, gy + off, gx + off, gqp, scr);
            float *dx = din(c, x, N), *dgys = din(c, gys, N), *dqp = din(c, qp, 2), *ds = din(c, &s, 1);
            /* fused (f) and the same backend's unfused ops (u) */
            float *fy = dout(c, NULL, N), *fys = dout(c, NULL, N), *fgy = dout(c, NULL, N),
                  *fgx = dout(c, gx0, N), *fgqp = dout(c, gqp0, 2), *fgs = dout(c, &gs0, 1),
                  *fscr = dout(c, NULL, SQ_QUANT_SCRATCH);
            BO_CALL(c, "fakequant_scaled_fwd", 12.0 * n,
                    be->fakequant_scaled_fwd(&cfg, n, dx + off, dqp, ds, fy + off, fys + off, fscr));
            BO_CALL(c, "fakequant_scaled_bwd", 24.0 * n,
                    be->fakequant_scaled_bwd(&cfg, n, dx + off, dqp, ds, fy + off, dgys + off, fgy + off,
                                             fgx + off, fgqp, fgs, fscr));
            float *uy = NULL, *uys = NULL, *ugy = NULL, *ugx = NULL, *ugqp = NULL, *ugs = NULL, *uscr = NULL;
            if (!c->timing) {
                float *zgy = hz(c, N);
                for (size_t i = 0; i < off; i++) zgy[i] = NAN;
                uy = dout(c, NULL, N), uys = dout(c, NULL, N), ugy = dout(c, zgy, N), ugx = dout(c, gx0, N),
                ugqp = dout(c, gqp0, 2), ugs = dout(c, &gs0, 1), uscr = dout(c, NULL, SQ_QUANT_SCRATCH);
                be->fakequant_fwd(&cfg, n, dx + off, dqp, uy + off, uscr);
                be->absscale_fwd(n, ds, uy + off, uys + off);
                be->absscale_bwd(n, ds, uy + off, dgys + off, ugy + off, ugs);
                be->fakequant_bwd(&cfg, n, dx + off, dqp, ugy + off, ugx + off, ugqp, uscr);
            }
            ok(c);
            if (c->timing) continue;
            const int dw = dorefa_w(&cfg, n);
            float *ry = fetch(c, fy), *rys = fetch(c, fys), *rgy = fetch(c, fgy), *rgx = fetch(c, fgx),
                  *rgqp = fetch(c, fgqp), *rgs = fetch(c, fgs);
            cmp_m(c, "y", ry, y, N, 0, NULL, dw);
            cmp_m(c, "ys", rys, ys, N, 0, NULL, dw);
            cmp(c, "gy", rgy, gy, N, 0);
            cmp_m(c, "gx", rgx, gx, N, 0, NULL, dw);
            const double tq = fabsf(s) * fq_grad_scale(&cfg, n, qp, gys + off);
            for (int j = 0; j < sq_quant_nparams(&cfg); j++) cmp(c, "gqp", rgqp + j, gqp + j, 1, tq);
            double sy = 0.0; /* sum |gys y| bounds the scale gradient's rounding */
            for (size_t i = 0; i < n; i++) sy += fabs((double)gys[off + i] * y[off + i]);
            cmp(c, "gs", rgs, &gs, 1, sy);
            if (s == 0.0f) cmp(c, "same:gs at s = 0", rgs, &gs0, 1, 0);
            cmp(c, "same:y = unfused", ry, fetch(c, uy), N, 0);
            cmp(c, "same:ys = unfused", rys, fetch(c, uys), N, 0);
            cmp(c, "same:gy = unfused", rgy, fetch(c, ugy), N, 0);
            cmp(c, "same:gx = unfused", rgx, fetch(c, ugx), N, 0);
            cmp(c, "same:gqp = unfused", rgqp, fetch(c, ugqp), 2, 0);
            cmp(c, "gs", rgs, fetch(c, ugs), 1, sy); /* the sum in another order */
            cmp(c, "same:scratch = unfused", fetch(c, fscr), fetch(c, uscr), SQ_QUANT_SCRATCH, 0);
        }
    return 1;
}

static int run_absscale(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const size_t n = (size_t)p[0];
    const float s = p[1] ? -0.7f : 1.3f, gs0 = 0.5f;
    float gs = gs0, *z = hr(c, n, -2, 2), *gy = hr(c, n, -1, 1), *gz0 = hr(c, n, -1, 1), *y = hn(c, n),
          *gz = hd(c, gz0, n);
    c->ref->absscale_fwd(n, &s, z, y);
    c->ref->absscale_bwd(n, &s, z, gy, gz, &gs);
    float *ds = din(c, &s, 1), *dz = din(c, z, n), *dgy = din(c, gy, n), *dy = dout(c, NULL, n),
          *dgz = dout(c, gz0, n), *dgs = dout(c, &gs0, 1);
    BO_CALL(c, "absscale_fwd", 8.0 * n, c->be->absscale_fwd(n, ds, dz, dy));
    BO_CALL(c, "absscale_bwd", 16.0 * n, c->be->absscale_bwd(n, ds, dz, dgy, dgz, dgs));
    ok(c);
    cmp(c, "y", fetch(c, dy), y, n, 0);
    cmp(c, "gz", fetch(c, dgz), gz, n, 0);
    cmp(c, "gs", fetch(c, dgs), &gs, 1, (double)n);
    return 1;
}

/* the fake-quant kernels divide by a per-tensor constant with a reciprocal and one FMA
   correction (sq_qm_div): bit-identical to IEEE division on random operands over 120 binades, on
   the discretizer's k / steps, and on zeros, infinities, NaN, subnormals and extremes (CUDA test
   hook sq_cuda_div_check; no member of the table) */
static int run_div(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
#ifdef SQ_HAVE_CUDA
    if (strcmp(c->be->name, "cuda")) return 0;
    const size_t nr = (size_t)p[0];
    static const float special[] = {0.0f,      -0.0f,           INFINITY,         -INFINITY, NAN,  1e-45f,
                                    -1e-40f,   1.17549435e-38f, 3.4e38f,          -3.4e38f,  1.0f, -1.0f,
                                    0x1p-100f, 0x1p100f,        0x1.fffffep-101f, 0x1p101f,  3.0f, 255.0f};
    const size_t ns = sizeof special / sizeof special[0], n = nr + 255 * 601 + ns * ns;
    float *x = hz(c, n), *d = hz(c, n), *want = hz(c, n);
    size_t m = 0;
    uint64_t s = 77;
    for (; m < nr; m++) { /* random signs, mantissas, exponents: x in 2^[-60,60], d in 2^[-30,30] */
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        uint32_t ux = (uint32_t)s, ud = (uint32_t)(s >> 32);
        uint32_t bx = ((ux >> 8) & 0x7fffffu) | ((uint32_t)(127 + (int)((ux >> 1) % 121) - 60) << 23) |
                      ((ux & 1u) << 31);
        uint32_t bd = ((ud >> 8) & 0x7fffffu) | ((uint32_t)(127 + (int)((ud >> 1) % 61) - 30) << 23) |
                      ((ud & 1u) << 31);
        memcpy(&x[m], &bx, 4);
        memcpy(&d[m], &bd, 4);
    }
    for (int st = 1; st <= 255; st++)
        for (int k = -300; k <= 300; k++, m++) x[m] = (float)k, d[m] = (float)st;
    for (size_t i = 0; i < ns; i++)
        for (size_t j = 0; j < ns; j++, m++) x[m] = special[i], d[m] = special[j];
    cr_assert_eq(m, n);
    for (size_t i = 0; i < n; i++) want[i] = x[i] / d[i];
    float *dx = din(c, x, n), *dd = din(c, d, n), *dq = dout(c, NULL, n);
    sq_cuda_div_check(n, dx, dd, dq);
    ok(c);
    cmp(c, "quotient", fetch(c, dq), want, n, 0);
    return 1;
#else
    return 0;
#endif
}

/* ================================================================ family: optim */

static int run_sgd(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const size_t n = (size_t)p[0];
    const float mom = mode == NUL ? 0.0f : 0.9f; /* NUL: no momentum buffer */
    float *p0 = hr(c, n, -1, 1), *g = hr(c, n, -1, 1), *m0 = hr(c, n, -0.1f, 0.1f), *pp = hd(c, p0, n),
          *m = hd(c, m0, n);
    c->ref->sgd_step(n, pp, g, mode == NUL ? NULL : m, 0.1f, mom, 1e-4f);
    float *dp = dout(c, p0, n), *dg = din(c, g, n), *dm = dout(c, m0, n);
    BO_CALL(c, "sgd_step", 20.0 * n, c->be->sgd_step(n, dp, dg, mode == NUL ? NULL : dm, 0.1f, mom, 1e-4f));
    ok(c);
    cmp(c, "p", fetch(c, dp), pp, n, 0);
    cmp(c, "m", fetch(c, dm), m, n, 0);
    return 1;
}

static int run_adam(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const size_t n = (size_t)p[0];
    float *p0 = hr(c, n, -1, 1), *g = hr(c, n, -1, 1), *m0 = hr(c, n, -0.1f, 0.1f),
          *v0 = hr(c, n, 0.0f, 0.01f), *pp = hd(c, p0, n), *m = hd(c, m0, n), *v = hd(c, v0, n);
    for (int t = 1; t <= 3; t++) c->ref->adam_step(n, pp, g, m, v, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, t);
    float *dp = dout(c, p0, n), *dg = din(c, g, n), *dm = dout(c, m0, n), *dv = dout(c, v0, n);
    for (int t = 1; t <= 3; t++)
        BO_CALL(c, "adam_step", 28.0 * n,
                c->be->adam_step(n, dp, dg, dm, dv, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, t));
    ok(c);
    cmp(c, "p", fetch(c, dp), pp, n, 0);
    cmp(c, "m", fetch(c, dm), m, n, 0);
    cmp(c, "v", fetch(c, dv), v, n, 0);
    return 1;
}

/* ================================================================ family: fused */

/* BN (training) + [residual add +] activation, forward and backward; ReLU and ReLU6 (looped;
   ReLU6's BN parameters spread outputs over about -10 .. 14, so that both bounds clip). arg[0]:
   with the residual (bn_add_act_*) */
static int run_bn_act(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const sq_backend *be = c->be, *o = c->ref;
    const int res = r->arg[0], n = p[0], ch = p[1], hw = p[2];
    if (mode == SET && !(res ? be->bn_add_act_bwd_set != NULL : be->bn_act_bwd_set != NULL)) return 0;
    const size_t m = (size_t)n * ch * hw;
    for (int ai = 0; ai < 2; ai++) {
        const sq_act_kind act = (sq_act_kind)ai;
        if (c->timing && act != SQ_ACT_RELU) continue;
        const float glo = act == SQ_ACT_RELU6 ? 2.0f : 0.5f, ghi = act == SQ_ACT_RELU6 ? 4.0f : 1.5f;
        const float blo = act == SQ_ACT_RELU6 ? 1.0f : -0.5f, bhi = act == SQ_ACT_RELU6 ? 3.0f : 0.5f;
        float *x = hr(c, m, -3, 5), *rr = res ? hr(c, m, -2, 2) : NULL, *gy = hr(c, m, -1, 1),
              *gamma = hr(c, ch, glo, ghi), *beta = hr(c, ch, blo, bhi), *rm0 = hr(c, ch, -0.1f, 0.1f),
              *rv0 = hr(c, ch, 0.5f, 1.5f), *gx0 = hr(c, m, -1, 1), *gr0 = hr(c, m, -1, 1),
              *gg0 = hr(c, ch, -1, 1), *gb0 = hr(c, ch, -1, 1);
        float *y = hn(c, m), *rm = hd(c, rm0, ch), *rv = hd(c, rv0, ch), *sm = hn(c, ch), *si = hn(c, ch),
              *gx = hd(c, gx0, m), *gr = hd(c, gr0, m), *gg = hd(c, gg0, ch), *gb = hd(c, gb0, ch);
        if (mode == SET) memset(gx, 0, m * sizeof(float));
        ref_bn_act_fwd(o, n, ch, hw, act, x, rr, gamma, beta, rm, rv, y, sm, si);
        ref_bn_act_bwd(o, n, ch, hw, act, x, y, gy, gamma, sm, si, gx, mode == NUL ? NULL : gr, gg, gb, res);
        if (m >= 1000 && !c->timing) { /* both activation regions (ReLU6: also the top) are exercised */
            size_t zero = 0, top = 0;
            for (size_t i = 0; i < m; i++) zero += y[i] == 0.0f, top += y[i] == 6.0f;
            cr_expect(zero > 0 && zero < m, "%s: %zu of %zu outputs are 0", c->where, zero, m);
            if (act == SQ_ACT_RELU6) cr_expect(top > 0, "%s: no output at 6", c->where);
        }
        float *dx = din(c, x, m), *dr = res ? din(c, rr, m) : NULL, *dga = din(c, gamma, ch),
              *dbe = din(c, beta, ch), *drm = dout(c, rm0, ch), *drv = dout(c, rv0, ch),
              *dy = dout(c, NULL, m), *dsm = dout(c, NULL, ch), *dsi = dout(c, NULL, ch);
        if (res)
            BO_CALL(c, "bn_add_act_fwd_train", 16.0 * m,
                    be->bn_add_act_fwd_train(n, ch, hw, act, dx, dr, dga, dbe, drm, drv, 0.1f, 1e-5f, dy, dsm,
                                             dsi));
        else
            BO_CALL(c, "bn_act_fwd_train", 12.0 * m,
                    be->bn_act_fwd_train(n, ch, hw, act, dx, dga, dbe, drm, drv, 0.1f, 1e-5f, dy, dsm, dsi));
        /* backward from the oracle's y and saved statistics, so that act'(y) masks the same elements */
        float *dyc = din(c, y, m), *dgy = din(c, gy, m), *dsm2 = din(c, sm, ch), *dsi2 = din(c, si, ch),
              *dgx = dout(c, mode == SET ? NULL : gx0, m), *dgr = res ? dout(c, gr0, m) : NULL,
              *dgg = dout(c, gg0, ch), *dgb = dout(c, gb0, ch), *dgxz = NULL, *dgrz = NULL, *dggz = NULL,
              *dgbz = NULL;
        float *dgr_arg = mode == NUL ? NULL : dgr;
        if (res) {
            if (mode == SET)
                BO_CALL(c, "bn_add_act_bwd_set", 24.0 * m,
                        be->bn_add_act_bwd_set(n, ch, hw, act, dx, dyc, dgy, dga, dsm2, dsi2, dgx, dgr_arg,
                                               dgg, dgb));
            else
                BO_CALL(c, "bn_add_act_bwd", 28.0 * m,
                        be->bn_add_act_bwd(n, ch, hw, act, dx, dyc, dgy, dga, dsm2, dsi2, dgx, dgr_arg, dgg,
                                           dgb));
        } else {
            if (mode == SET)
                BO_CALL(c, "bn_act_bwd_set", 16.0 * m,
                        be->bn_act_bwd_set(n, ch, hw, act, dx, dyc, dgy, dga, dsm2, dsi2, dgx, dgg, dgb));
            else
                BO_CALL(c, "bn_act_bwd", 20.0 * m,
                        be->bn_act_bwd(n, ch, hw, act, dx, dyc, dgy, dga, dsm2, dsi2, dgx, dgg, dgb));
        }
        if (mode == SET) { /* the same backend accumulating into zeros */
            dgxz = dout(c, hz(c, m), m), dgrz = res ? dout(c, gr0, m) : NULL, dggz = dout(c, gg0, ch),
            dgbz = dout(c, gb0, ch);
            if (res)
                be->bn_add_act_bwd(n, ch, hw, act, dx, dyc, dgy, dga, dsm2, dsi2, dgxz, dgrz, dggz, dgbz);
            else
                be->bn_act_bwd(n, ch, hw, act, dx, dyc, dgy, dga, dsm2, dsi2, dgxz, dggz, dgbz);
        }
        ok(c);
        /* y: the CPU computes x a + (beta - mean a) with a = gamma invstd, a GPU may compute
           (x - mean) invstd gamma + beta: they differ by the rounding of x a, large where the
           variance is tiny (m = 1: invstd = 1 / sqrt(eps)): terms = max |gamma invstd| */
        double amax = 0.0;
        for (int k = 0; k < ch; k++) amax = fmax(amax, fabs((double)gamma[k] * si[k]));
        char lab[64];
        snprintf(lab, sizeof lab, "y: %s", act ? "relu6" : "relu");
        cmp(c, lab, fetch(c, dy), y, m, amax);
        cmp(c, "run_mean", fetch(c, drm), rm, ch, 0);
        cmp(c, "run_var", fetch(c, drv), rv, ch, 0);
        cmp(c, "save_mean", fetch(c, dsm), sm, ch, 0);
        cmp(c, "save_invstd", fetch(c, dsi), si, ch, 0);
        float *rgx = fetch(c, dgx), *rgg = fetch(c, dgg), *rgb = fetch(c, dgb),
              *rgr = res ? fetch(c, dgr) : NULL;
        cmp(c, "gx", rgx, gx, m, 0);
        cmp(c, "ggamma", rgg, gg, ch, (double)n * hw);
        cmp(c, "gbeta", rgb, gb, ch, (double)n * hw);
        if (res) cmp(c, "gr", rgr, mode == NUL ? gr0 : gr, m, 0);
        if (mode == SET) {
            cmp(c, "same:gx set = accumulated into 0", rgx, fetch(c, dgxz), m, 0);
            cmp(c, "same:ggamma", rgg, fetch(c, dggz), ch, 0);
            cmp(c, "same:gbeta", rgb, fetch(c, dgbz), ch, 0);
            if (res) cmp(c, "same:gr", rgr, fetch(c, dgrz), m, 0);
        }
    }
    return 1;
}

static int run_add_act(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const size_t n = (size_t)p[0];
    for (int ai = 0; ai < 2; ai++) {
        const sq_act_kind act = (sq_act_kind)ai;
        if (c->timing && act != SQ_ACT_RELU) continue;
        /* sums over about -8 .. 8: both of ReLU6's bounds clip */
        float *a = hr(c, n, -4, 4), *b = hr(c, n, -4, 4), *gy = hr(c, n, -1, 1), *ga0 = hr(c, n, -1, 1),
              *gb0 = hr(c, n, -1, 1), *y = hn(c, n), *ga = hd(c, ga0, n), *gb = hd(c, gb0, n);
        ref_add_act_fwd(c->ref, n, act, a, b, y);
        ref_add_act_bwd(c->ref, n, act, y, gy, ga, mode == NUL ? NULL : gb);
        float *da = din(c, a, n), *db = din(c, b, n), *dy = dout(c, NULL, n), *dyc = din(c, y, n),
              *dgy = din(c, gy, n), *dga = dout(c, ga0, n), *dgb = dout(c, gb0, n);
        BO_CALL(c, "add_act_fwd", 12.0 * n, c->be->add_act_fwd(n, act, da, db, dy));
        if (mode == NUL) {
            c->be->add_act_bwd(n, act, dyc, dgy, dga, NULL); /* one gradient only */
            c->be->add_act_bwd(n, act, dyc, dgy, NULL, NULL); /* nothing to do */
        } else
            BO_CALL(c, "add_act_bwd", 24.0 * n, c->be->add_act_bwd(n, act, dyc, dgy, dga, dgb));
        ok(c);
        cmp(c, "y", fetch(c, dy), y, n, 0);
        cmp(c, "ga", fetch(c, dga), ga, n, 0);
        cmp(c, "gb", fetch(c, dgb), gb, n, 0);
    }
    return 1;
}

/* y = act(x + b[ch] [+ r]) against a host loop summing in that order; ReLU and ReLU6, with and
   without the residual (looped) */
static int run_bias_add_act(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const int n = p[0], ch = p[1], hw = p[2];
    const size_t m = (size_t)n * ch * hw;
    for (int ai = 0; ai < 2; ai++)
        for (int res = 0; res < 2; res++) {
            if (c->timing && (ai || !res)) continue;
            float *x = hr(c, m, -6, 9), *b = hr(c, ch, -2, 2), *rr = hr(c, m, -3, 3), *want = hz(c, m);
            for (size_t i = 0; i < m; i++) {
                float t = x[i] + b[(i / hw) % ch];
                if (res) t = t + rr[i];
                want[i] = t;
            }
            apply_act((sq_act_kind)ai, want, m);
            float *dx = din(c, x, m), *db = din(c, b, ch), *dr = din(c, rr, m), *dy = dout(c, NULL, m);
            BO_CALL(c, "bias_add_act_fwd", (res ? 12.0 : 8.0) * m,
                    c->be->bias_add_act_fwd(n, ch, hw, (sq_act_kind)ai, dx, db, res ? dr : NULL, dy));
            ok(c);
            cmp(c, "y", fetch(c, dy), want, m, 0);
        }
    return 1;
}

/* fake-quantized conv operands for the qconv rows (arg: quantizer kind, bits): post-ReLU x and
   normal w drawn, quantizers initialised on them, xq, wq and wqs = |s| wq by the oracle */
static void qconv_operands(bo_ctx *c, const bo_row *r, size_t nx, size_t nw, float s, sq_quant_cfg *ca,
                           sq_quant_cfg *cw, float *qpa, float *qpw, float *xq, float *wq, float *wqs)
{
    const sq_backend *o = c->ref;
    float *x = keep(c, malloc(nx * sizeof(float))), *w = keep(c, malloc(nw * sizeof(float)));
    float scr_w[SQ_QUANT_SCRATCH], scr_a[SQ_QUANT_SCRATCH];
    sqt_fill_normal(x, nx, 0.3f, 1.0f, c->seed++);
    for (size_t i = 0; i < nx; i++) x[i] = x[i] > 0 ? x[i] : 0; /* post-ReLU: some zero */
    sqt_fill_normal(w, nw, 0.0f, 0.2f, c->seed++);
    *cw = (sq_quant_cfg){.kind = (sq_quant_kind)r->arg[0], .role = SQ_QROLE_WEIGHT, .bits = r->arg[1], .is_signed = 1};
    *ca = (sq_quant_cfg){.kind = (sq_quant_kind)r->arg[0], .role = SQ_QROLE_ACT, .bits = r->arg[1], .is_signed = 0};
    sq_quant_init_weight(cw, w, nw, qpw);
    sq_quant_init_act(ca, x, nx, qpa);
    o->fakequant_fwd(cw, nw, w, qpw, wq, scr_w);
    o->fakequant_fwd(ca, nx, x, qpa, xq, scr_a);
    for (size_t i = 0; i < nw; i++) wqs[i] = fabsf(s) * wq[i];
}

/* the BF16 backward of a quantized convolution (arg: quantizer kind, bits) against the oracle's
   fp32 backward of the same tensors with |s| folded into the weight: within 2^-8 of the sum of
   |products| per element (gy rounded to bf16), gx written (shapes with a bias) or accumulated,
   gw and gb accumulated; a backend that declines must leave every output untouched */
static int run_qconv_bwd(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const sq_backend *be = c->be, *o = c->ref;
    sq_conv_shape cs;
    conv_init(c, &cs, p);
    const int bias = p[10], gx_set = p[10];
    const size_t nx = (size_t)cs.n * cs.c * cs.h * cs.w, nw = (size_t)cs.k * (cs.c / cs.groups) * cs.r * cs.s,
                 ny = (size_t)cs.n * cs.k * cs.oh * cs.ow, nk = (size_t)cs.k;
    float *xq = hn(c, nx), *wq = hn(c, nw), *wqs = hz(c, nw), *gy = hz(c, ny), qpw[2] = {0, 0}, qpa[2] = {0, 0};
    const float s = -0.75f;
    sq_quant_cfg ca, cw;
    qconv_operands(c, r, nx, nw, s, &ca, &cw, qpa, qpw, xq, wq, wqs);
    sqt_fill_normal(gy, ny, 0.0f, 1.0f, c->seed++);
    /* starting values of the outputs, the oracle's results from them, and the bound */
    float *gx0 = hr(c, nx, -1, 1), *gw0 = hr(c, nw, -1, 1), *gb0 = hr(c, nk, -1, 1);
    float *gx = hd(c, gx0, nx), *gw = hd(c, gw0, nw), *gb = hd(c, gb0, nk);
    if (gx_set) memset(gx, 0, nx * sizeof(float));
    void *ows = hbytes(c, o->conv_ws_bytes(&cs));
    o->conv2d_bwd(&cs, xq, wqs, gy, gx, gw, bias ? gb : NULL, ows);
    float *ax = hz(c, nx), *aw = hz(c, nw), *agy = hz(c, ny), *bx = hz(c, nx), *bw = hz(c, nw), *bb = hz(c, nk);
    for (size_t i = 0; i < nx; i++) ax[i] = fabsf(xq[i]);
    for (size_t i = 0; i < nw; i++) aw[i] = fabsf(wqs[i]);
    for (size_t i = 0; i < ny; i++) agy[i] = fabsf(gy[i]);
    o->conv2d_bwd(&cs, ax, aw, agy, bx, bw, bb, ows);
    const size_t wsb = be->conv_ws_bytes(&cs);
    void *ws = wsb ? dout_b(c, NULL, wsb) : NULL;
    float *dxq = din(c, xq, nx), *dwq = din(c, wq, nw), *dqpa = din(c, qpa, 2), *dqpw = din(c, qpw, 2),
          *ds = din(c, &s, 1), *dgy = din(c, gy, ny), *dgx = dout(c, gx0, nx), *dgw = dout(c, gw0, nw),
          *dgb = dout(c, gb0, nk);
    int ran = 0;
    BO_CALL(c, "qconv2d_bwd", 4.0 * (2 * nx + nw + ny),
            ran = be->qconv2d_bwd(&cs, &ca, dqpa, dxq, &cw, dqpw, dwq, ds, dgy, dgx, gx_set, dgw,
                                  bias ? dgb : NULL, ws));
    ok(c);
    float *rgx = fetch(c, dgx), *rgw = fetch(c, dgw), *rgb = fetch(c, dgb);
    if (ran) {
        cmp_m(c, "gx", rgx, gx, nx, 0, bx, 0);
        cmp_m(c, "gw", rgw, gw, nw, 0, bw, 0);
        cmp_m(c, "gb", rgb, bias ? gb : gb0, nk, 0, bb, 0);
    } else {
        cmp(c, "untouched when declined: gx", rgx, gx0, nx, 0);
        cmp(c, "untouched when declined: gw", rgw, gw0, nw, 0);
        cmp(c, "untouched when declined: gb", rgb, gb0, nk, 0);
        c->declined++;
    }
    return 1;
}

/* the integer convolution of fake-quantized tensors (arg: quantizer kind, bits) against the
   oracle's float convolution of the same tensors with |s| folded into the weight; a backend that
   declines (returns 0) must leave y untouched */
static int run_qconv(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const sq_backend *be = c->be, *o = c->ref;
    sq_conv_shape cs;
    conv_init(c, &cs, p);
    const int bias = p[10];
    const size_t nx = (size_t)cs.n * cs.c * cs.h * cs.w, nw = (size_t)cs.k * (cs.c / cs.groups) * cs.r * cs.s,
                 ny = (size_t)cs.n * cs.k * cs.oh * cs.ow;
    float *b = keep(c, malloc((size_t)cs.k * sizeof(float))), *xq = hn(c, nx), *wq = hn(c, nw), *wqs = hz(c, nw),
          *y = hn(c, ny), qpw[2] = {0, 0}, qpa[2] = {0, 0};
    const float s = -0.75f;
    sq_quant_cfg ca, cw;
    qconv_operands(c, r, nx, nw, s, &ca, &cw, qpa, qpw, xq, wq, wqs);
    sqt_fill_normal(b, (size_t)cs.k, 0.0f, 0.5f, c->seed++);
    o->conv2d_fwd(&cs, xq, wqs, bias ? b : NULL, y, hbytes(c, o->conv_ws_bytes(&cs)));
    const size_t wsb = be->conv_ws_bytes(&cs);
    void *ws = wsb ? dout_b(c, NULL, wsb) : NULL;
    float *dxq = din(c, xq, nx), *dwq = din(c, wq, nw), *dqpa = din(c, qpa, 2), *dqpw = din(c, qpw, 2),
          *ds = din(c, &s, 1), *db = din(c, b, (size_t)cs.k), *dy = dout(c, NULL, ny);
    int ran = 0;
    BO_CALL(c, "qconv2d_fwd", 4.0 * (nx + nw + ny),
            ran = be->qconv2d_fwd(&cs, &ca, dqpa, dxq, &cw, dqpw, dwq, ds, bias ? db : NULL, dy, ws));
    ok(c);
    float *ry = fetch(c, dy);
    /* the integer sum is exact; the float oracle rounds each of up to C R S products and sums */
    if (ran)
        cmp(c, "y", ry, y, ny, 0);
    else {
        cmp(c, "y untouched when declined", ry, hn(c, ny), ny, 0);
        c->declined++;
    }
    return 1;
}

/* ================================================================ family: half (16-bit teacher ops) */

static const sq_dtype16 dts[2] = {SQ_DT_F16, SQ_DT_BF16};

/* to16 (round to nearest even, overflow to infinity, subnormals) and from16, against host IEEE
   rounding; random values over many binades and the special ones */
static int run_cast16(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    static const float special[] = {0.0f,
                                    -0.0f,
                                    INFINITY,
                                    -INFINITY,
                                    NAN,
                                    65504.0f,
                                    65519.99f,
                                    65520.0f,
                                    -65520.0f,
                                    6.1035156e-5f,
                                    6.09e-5f,
                                    5.9604645e-8f,
                                    2.9802322e-8f,
                                    2.9802326e-8f,
                                    1e-45f,
                                    3.4e38f,
                                    -3.4e38f,
                                    1.00048828125f /* f16 tie */,
                                    1.00390625f /* bf16 tie */,
                                    1.0014648f,
                                    1.01171875f,
                                    0.1f};
    const size_t n = (size_t)p[0];
    for (int di = 0; di < 2; di++) {
        const sq_dtype16 dt = dts[di];
        if (c->timing && di) continue;
        float *x = hz(c, n);
        sqt_rng g;
        sqt_rng_seed(&g, c->seed++);
        for (size_t i = 0; i < n; i++) {
            const double u = sqt_rng_uniform(&g), e = 80.0 * sqt_rng_uniform(&g) - 40.0;
            x[i] = (float)((u < 0.5 ? -1.0 : 1.0) * ldexp(1.0 + u, (int)e));
        }
        for (size_t i = 0; i < n && i < sizeof special / sizeof special[0]; i++) x[i] = special[i];
        uint16_t *want = hbytes(c, n * 2);
        float *back = hz(c, n);
        for (size_t i = 0; i < n; i++) want[i] = to16_h(dt, x[i]), back[i] = from16_h(dt, want[i]);
        float *dx = din(c, x, n), *dback = dout(c, NULL, n);
        uint16_t *dy = dout_b(c, NULL, n * 2), *dw = din_b(c, want, n * 2);
        BO_CALL(c, "to16", 6.0 * n, c->be->to16(dt, n, dx, dy));
        BO_CALL(c, "from16", 6.0 * n, c->be->from16(dt, n, dw, dback));
        ok(c);
        uint16_t *got = fetch_b(c, dy);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) { /* NaN: any NaN */
            const int nan_w = isnan(from16_h(dt, want[i])), nan_g = isnan(from16_h(dt, got[i]));
            if (nan_w ? !nan_g : got[i] != want[i]) {
                if (bad++ < 4)
                    fprintf(stderr, "%s: to16 %s of %a: got 0x%04x want 0x%04x\n", c->where, dt_name(dt),
                            x[i], got[i], want[i]);
            }
        }
        if (!c->timing)
            cr_expect(tol_of(c, "to16")->exact && bad == 0,
                      "%s: to16 %s: %zu of %zu differ from IEEE rounding", c->where, dt_name(dt), bad, n);
        cmp(c, "from16", fetch(c, dback), back, n, 0);
    }
    return 1;
}

/* y = act(conv(x, w) + b) with x, w, b representable in 16 bits, against the oracle's fp32
   convolution of the same values: act none, ReLU, ReLU6 (looped), both formats (looped) */
static int run_conv16(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const sq_backend *be = c->be;
    sq_conv_shape cs;
    conv_init(c, &cs, p);
    const int bias = p[10];
    const size_t nx = (size_t)cs.n * cs.c * cs.h * cs.w, nw = (size_t)cs.k * (cs.c / cs.groups) * cs.r * cs.s,
                 ny = (size_t)cs.n * cs.k * cs.oh * cs.ow, K = (size_t)cs.k;
    for (int di = 0; di < 2; di++)
        for (int act = -1; act <= 1; act++) {
            if (c->timing && (di || act != 0)) continue;
            const sq_dtype16 dt = dts[di];
            float *x = hr(c, nx, -1, 1), *w = hr(c, nw, -1, 1), *b = hr(c, K, -1, 1);
            uint16_t *x16 = round16(c, dt, x, nx), *w16 = round16(c, dt, w, nw), *b16 = round16(c, dt, b, K);
            float *c0 = hn(c, ny), *want = hz(c, ny), *mag = hz(c, ny);
            c->ref->conv2d_fwd(&cs, x, w, NULL, c0, hbytes(c, c->ref->conv_ws_bytes(&cs)));
            for (size_t i = 0; i < ny; i++) {
                float v = c0[i] + (bias ? b[(i / ((size_t)cs.oh * cs.ow)) % K] : 0.0f);
                if (act >= 0) apply_act((sq_act_kind)act, &v, 1);
                want[i] = v;
                mag[i] = fabsf(c0[i]) + fabsf(v); /* the conv's rounding, then the output's */
            }
            const size_t wsb = be->conv16_ws_bytes(dt, &cs);
            void *ws = wsb ? dout_b(c, NULL, wsb) : NULL;
            uint16_t *dx = din_b(c, x16, nx * 2), *dw = din_b(c, w16, nw * 2), *db16 = din_b(c, b16, K * 2),
                     *dy = dout_b(c, NULL, ny * 2);
            float *db32 = din(c, b, K);
            BO_CALL(c, "conv16_fwd", 2.0 * (nx + nw + ny),
                    be->conv16_fwd(dt, &cs, dx, dw, bias ? db16 : NULL, bias ? db32 : NULL, act, dy, ws));
            ok(c);
            char lab[64];
            snprintf(lab, sizeof lab, "y %s: act %d", dt_name(dt), act);
            cmp_m(c, lab, widen16(c, dt, fetch_b(c, dy), ny), want, ny,
                  (double)(cs.c / cs.groups) * cs.r * cs.s, mag, 0);
        }
    return 1;
}

/* act16 (ReLU, ReLU6), add16 (act none, ReLU, ReLU6), shortcut_a16: exactly the fp32 op on the
   widened values, rounded once */
static int run_elem16(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const sq_backend *be = c->be;
    const size_t n = (size_t)p[0];
    for (int di = 0; di < 2; di++) {
        const sq_dtype16 dt = dts[di];
        if (c->timing && di) continue;
        float *a = hr(c, n, -8, 8), *b = hr(c, n, -8, 8);
        uint16_t *a16 = round16(c, dt, a, n), *b16 = round16(c, dt, b, n);
        uint16_t *da = din_b(c, a16, n * 2), *db = din_b(c, b16, n * 2);
        for (int act = -1; act <= 1; act++) {
            if (c->timing && act != 0) continue;
            float *want = hz(c, n), *wadd = hz(c, n);
            for (size_t i = 0; i < n; i++) want[i] = a[i], wadd[i] = a[i] + b[i];
            if (act >= 0) apply_act((sq_act_kind)act, want, n), apply_act((sq_act_kind)act, wadd, n);
            uint16_t *wa16 = hbytes(c, n * 2), *wb16 = hbytes(c, n * 2);
            for (size_t i = 0; i < n; i++) wa16[i] = to16_h(dt, want[i]), wb16[i] = to16_h(dt, wadd[i]);
            uint16_t *dy = act >= 0 ? dout_b(c, NULL, n * 2) : NULL, *dz = dout_b(c, NULL, n * 2);
            if (act >= 0) BO_CALL(c, "act16_fwd", 4.0 * n, be->act16_fwd(dt, (sq_act_kind)act, n, da, dy));
            BO_CALL(c, "add16_fwd", 6.0 * n, be->add16_fwd(dt, n, act, da, db, dz));
            ok(c);
            if (act >= 0) cmp_bytes(c, "act16", fetch_b(c, dy), wa16, n * 2);
            cmp_bytes(c, "add16", fetch_b(c, dz), wb16, n * 2);
        }
    }
    return 1;
}

static int run_shortcut16(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const int n = p[0], ch = p[1], h = p[2], w = p[3], k = p[4];
    const size_t ni = (size_t)n * ch * h * w, no = (size_t)n * k * ((h + 1) / 2) * ((w + 1) / 2);
    for (int di = 0; di < 2; di++) {
        const sq_dtype16 dt = dts[di];
        if (c->timing && di) continue;
        float *x = hr(c, ni, -3, 3), *y = hn(c, no);
        uint16_t *x16 = round16(c, dt, x, ni), *want = hbytes(c, no * 2);
        c->ref->shortcut_a_fwd(n, ch, h, w, k, x, y);
        for (size_t i = 0; i < no; i++) want[i] = to16_h(dt, y[i]);
        uint16_t *dx = din_b(c, x16, ni * 2), *dy = dout_b(c, NULL, no * 2);
        BO_CALL(c, "shortcut_a16_fwd", 4.0 * no, c->be->shortcut_a16_fwd(dt, n, ch, h, w, k, dx, dy));
        ok(c);
        cmp_bytes(c, "shortcut16", fetch_b(c, dy), want, no * 2);
    }
    return 1;
}

/* pool16 (max exact; avg: the fp32 average, summed in another order, rounded once) and gap16
   (fp32 output) against the oracle's fp32 ops on the widened values; both formats (looped) */
static int run_pool16(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const sq_backend *be = c->be;
    const int n = p[0], ch = p[1], h = p[2], w = p[3], k = p[4], st = p[5], pd = p[6];
    const int oh = (h + 2 * pd - k) / st + 1, ow = (w + 2 * pd - k) / st + 1;
    const size_t ni = (size_t)n * ch * h * w, no = (size_t)n * ch * oh * ow, ng = (size_t)n * ch;
    for (int di = 0; di < 2; di++) {
        const sq_dtype16 dt = dts[di];
        if (c->timing && di) continue;
        float *x = hr(c, ni, -2, 2), *ymax = hn(c, no), *yavg = hn(c, no), *yg = hn(c, ng);
        uint16_t *x16 = round16(c, dt, x, ni), *wmax = hbytes(c, no * 2);
        int32_t *am = hbytes(c, no * 4);
        sq_pool_shape ps;
        cr_assert_eq(sq_pool_shape_square(&ps, n, ch, h, w, k, st, pd), SQ_OK);
        c->ref->pool_fwd(SQ_POOL_MAX, &ps, x, ymax, am);
        c->ref->pool_fwd(SQ_POOL_AVG, &ps, x, yavg, am);
        c->ref->gap_fwd(n, ch, h * w, x, yg);
        for (size_t i = 0; i < no; i++) wmax[i] = to16_h(dt, ymax[i]);
        uint16_t *dx = din_b(c, x16, ni * 2), *dmax = dout_b(c, NULL, no * 2),
                 *davg = dout_b(c, NULL, no * 2);
        float *dg = dout(c, NULL, ng);
        BO_CALL(c, "pool16_fwd max", 2.0 * (ni + no),
                be->pool16_fwd(dt, SQ_POOL_MAX, n, ch, h, w, k, st, pd, dx, dmax));
        BO_CALL(c, "pool16_fwd avg", 2.0 * (ni + no),
                be->pool16_fwd(dt, SQ_POOL_AVG, n, ch, h, w, k, st, pd, dx, davg));
        BO_CALL(c, "gap16_fwd", 2.0 * ni + 4.0 * ng, be->gap16_fwd(dt, n, ch, h * w, dx, dg));
        ok(c);
        char lab[64];
        cmp_bytes(c, "max", fetch_b(c, dmax), wmax, no * 2);
        snprintf(lab, sizeof lab, "avg %s", dt_name(dt));
        cmp(c, lab, widen16(c, dt, fetch_b(c, davg), no), yavg, no, (double)k * k);
        cmp(c, "gap", fetch(c, dg), yg, ng, sqrt((double)h * w));
    }
    return 1;
}

/* ================================================================ family: record (graphs, staging) */

/* a recording of fake quantization (forward, backward: a reducing grid), KL (partial sums) and an
   axpy, replayed after the inputs changed: the same bits as the ops run eagerly on the new inputs */
static int run_graph(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const sq_backend *be = c->be;
    if (!be->graph_begin) return 0;
    const size_t n = (size_t)p[0];
    const int rows = p[1], k = p[2];
    const size_t m = (size_t)rows * k;
    sq_quant_cfg cfg = {SQ_QUANT_LSQ, SQ_QROLE_ACT, 3, 0, 0.2f, 0.0f, 0};
    float qp[2];
    sqt_fq_params(cfg.kind, 0, cfg.bits, qp);
    float *x1 = hr(c, n, -0.3f, 1.6f), *x2 = hr(c, n, -0.3f, 1.6f), *gy = hr(c, n, -1, 1),
          *gx0 = hr(c, n, -1, 1), *zt1 = hr(c, m, -6, 6), *zt2 = hr(c, m, -6, 6), *zs = hr(c, m, -6, 6);
    const float zero2[2] = {0, 0};
    float *dqp = din(c, qp, 2), *dgy = din(c, gy, n), *dzs = din(c, zs, m);
    /* the recorded buffers: x and zt hold x1, zt1 while recording, x2, zt2 when replayed */
    float *dx = dout(c, x1, n), *dzt = dout(c, zt1, m), *dy = dout(c, NULL, n), *dgx = dout(c, gx0, n),
          *dgqp = dout(c, zero2, 2), *dscr = dout(c, NULL, SQ_QUANT_SCRATCH), *dl = dout(c, NULL, 1),
          *dgz = dout(c, NULL, m), *dacc = dout(c, gx0, n);
    cr_assert_eq(be->graph_begin(), 0, "%s: graph_begin: %s", c->where, sq_last_error());
    be->fakequant_fwd(&cfg, n, dx, dqp, dy, dscr);
    be->fakequant_bwd(&cfg, n, dx, dqp, dgy, dgx, dgqp, dscr);
    be->kl_fwd_bwd(rows, k, dzt, dzs, 4.0f, 0.5f, dl, dgz);
    be->axpy(n, 0.5f, dy, dacc);
    void *graph = be->graph_end();
    cr_assert(graph, "%s: graph_end: %s", c->where, sq_last_error());
    be->copy_h2d(dx, x2, n * sizeof(float));
    be->copy_h2d(dzt, zt2, m * sizeof(float));
    BO_CALL(c, "graph_run", 0.0, be->graph_run(graph));
    be->graph_free(graph);
    /* eagerly, on the new inputs */
    float *ex = din(c, x2, n), *ezt = din(c, zt2, m), *ey = dout(c, NULL, n), *egx = dout(c, gx0, n),
          *egqp = dout(c, zero2, 2), *escr = dout(c, NULL, SQ_QUANT_SCRATCH), *el = dout(c, NULL, 1),
          *egz = dout(c, NULL, m), *eacc = dout(c, gx0, n);
    be->fakequant_fwd(&cfg, n, ex, dqp, ey, escr);
    be->fakequant_bwd(&cfg, n, ex, dqp, dgy, egx, egqp, escr);
    be->kl_fwd_bwd(rows, k, ezt, dzs, 4.0f, 0.5f, el, egz);
    be->axpy(n, 0.5f, ey, eacc);
    ok(c);
    if (c->timing) return 1;
    cmp(c, "same:y replayed = eager", fetch(c, dy), fetch(c, ey), n, 0);
    cmp(c, "same:gx", fetch(c, dgx), fetch(c, egx), n, 0);
    cmp(c, "same:gqp", fetch(c, dgqp), fetch(c, egqp), 2, 0);
    cmp(c, "same:scratch", fetch(c, dscr), fetch(c, escr), SQ_QUANT_SCRATCH, 0);
    cmp(c, "same:kl loss", fetch(c, dl), fetch(c, el), 1, 0);
    cmp(c, "same:kl grad", fetch(c, dgz), fetch(c, egz), m, 0);
    cmp(c, "same:axpy", fetch(c, dacc), fetch(c, eacc), n, 0);
    return 1;
}

/* input staging: each put's slot holds exactly the bytes put, though the host buffer is
   overwritten right after the put and the two slots are reused; a short put too. Then the same
   from pinned buffers of host_alloc through stage_put_pinned. */
static int run_stage(bo_ctx *c, const bo_row *r, const int *p, int mode)
{
    const sq_backend *be = c->be;
    if (!be->stage_new) return 0;
    const size_t n = (size_t)p[0];
    void *st = be->stage_new(n * sizeof(float), 1);
    cr_assert(st, "%s: stage_new: %s", c->where, sq_last_error());
    for (int k = 0; k < 6; k++) {
        const size_t len = k == 3 ? 1 : n;
        float *src = hr(c, n, -1, 1), *want = hd(c, src, n), *dst = dout(c, NULL, len);
        const void *slot = NULL;
        BO_CALL(c, "stage_put", 4.0 * len, slot = be->stage_put(st, src, len * sizeof(float)));
        cr_assert(slot, "%s: stage_put: %s", c->where, sq_last_error());
        for (size_t i = 0; i < n; i++) src[i] = 5.0f; /* the host buffer is the caller's again at once */
        be->copy_d2d(dst, slot, len * sizeof(float));
        ok(c);
        cmp(c, "same:staged bytes", fetch(c, dst), want, len, 0);
    }
    be->stage_free(st);
    ok(c);
    if (!be->stage_put_pinned) return 1;
    /* from pinned buffers the caller owns, on a stage without host slots: three buffers in turn,
       each rewritten only once the second put after its own has returned (the contract); no
       sync until the end, so an upload still reading a rewritten source is caught (under cuemu,
       which checks pinned sources of copies in flight) */
    cr_assert(be->host_alloc && be->host_free, "%s: stage_put_pinned without host_alloc", c->where);
    enum { PUTS = 7, BUFS = 3 };
    st = be->stage_new(n * sizeof(float), 0);
    cr_assert(st, "%s: stage_new without host slots: %s", c->where, sq_last_error());
    float *pin[BUFS], *want[PUTS], *dst[PUTS];
    size_t len[PUTS];
    for (int b = 0; b < BUFS; b++) {
        pin[b] = be->host_alloc(n * sizeof(float));
        cr_assert(pin[b], "%s: host_alloc: %s", c->where, sq_last_error());
    }
    for (int k = 0; k < PUTS; k++) {
        len[k] = k == 4 ? 1 : n;
        want[k] = hr(c, n, -1, 1);
        dst[k] = dout(c, NULL, len[k]);
    }
    for (int k = 0; k < PUTS; k++) {
        float *src = pin[k % BUFS];
        memcpy(src, want[k], n * sizeof(float));
        const void *slot = NULL;
        BO_CALL(c, "stage_put_pinned", 4.0 * len[k], slot = be->stage_put_pinned(st, src, len[k] * sizeof(float)));
        cr_assert(slot, "%s: stage_put_pinned: %s", c->where, sq_last_error());
        be->copy_d2d(dst[k], slot, len[k] * sizeof(float));
    }
    be->stage_free(st);
    for (int b = 0; b < BUFS; b++) be->host_free(pin[b]);
    ok(c);
    for (int k = 0; k < PUTS; k++) cmp(c, "same:bytes staged from pinned", fetch(c, dst[k]), want[k], len[k], 0);
    return 1;
}

/* ================================================================ the case table */

static const int one_p[][BO_P] = {{0}};
static const int mem_p[][BO_P] = {{1}, {7}, {4099}, {100003}};
/* awkward vector lengths: 1, primes, not multiples of the block size or of 4 */
static const int vec_p[][BO_P] = {{1}, {7}, {31}, {257}, {1023}, {4099}, {100003}};
/* n, c, hw: one element, BatchNorm1d, odd sizes, several slices per channel, float4 and scalar paths */
static const int bn_p[][BO_P] = {{1, 1, 1},    {7, 5, 1},     {2, 3, 5},  {5, 3, 17},
                                 {3, 2, 5000}, {4, 16, 1024}, {2, 64, 9}, {2, 16, 64}};
static const int bnf_p[][BO_P] = {{1, 1, 1},    {7, 5, 1},  {2, 3, 5},  {5, 3, 17},
                                  {3, 2, 5000}, {2, 64, 9}, {2, 16, 64}};
#define CONV_NAMES "n c h w k r s stride pad groups bias"
static const int conv_p[][BO_P] = {
    {1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1},    {2, 3, 7, 5, 4, 3, 3, 1, 1, 1, 1},
    {2, 4, 7, 7, 6, 3, 3, 2, 1, 1, 0},    {2, 5, 5, 3, 7, 1, 1, 1, 0, 1, 1},
    {2, 4, 6, 5, 6, 3, 3, 1, 1, 2, 1},    {4, 8, 9, 9, 8, 3, 3, 1, 1, 8, 1},
    {3, 24, 6, 6, 12, 1, 1, 1, 0, 3, 1},  {3, 16, 16, 16, 32, 3, 3, 2, 1, 1, 0},
    {2, 3, 32, 32, 16, 3, 3, 1, 1, 1, 0}, {1, 2, 11, 13, 3, 5, 5, 2, 2, 1, 1},
    {3, 3, 16, 16, 8, 3, 3, 1, 1, 1, 1}, /* bias over planes of 256 */
    {2, 6, 9, 7, 12, 3, 3, 2, 1, 6, 1}, /* depthwise, 2 outputs per channel, stride 2, odd sizes */
    /* kh != kw (imported graphs, issue 18): 1x3 padded, 7x1 stride 2, depthwise 3x1, 1x7 */
    {2, 4, 7, 9, 5, 1, 3, 1, 1, 1, 1}, {2, 3, 9, 6, 4, 7, 1, 2, 0, 1, 0},
    {2, 6, 8, 7, 6, 3, 1, 1, 1, 6, 1}, {1, 8, 7, 13, 8, 1, 7, 1, 0, 1, 1},
};
static const int conv16_p[][BO_P] = {
    {2, 4, 7, 9, 6, 1, 3, 1, 1, 1, 1}, /* kh != kw */
    {1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1},     {2, 3, 7, 5, 4, 3, 3, 1, 1, 1, 1},
    {2, 4, 7, 7, 6, 3, 3, 2, 1, 1, 0},     {2, 4, 6, 5, 6, 3, 3, 1, 1, 2, 1},
    {4, 8, 9, 9, 8, 3, 3, 1, 1, 8, 1},     {2, 6, 9, 7, 12, 3, 3, 2, 1, 6, 1},
    {3, 16, 16, 16, 32, 3, 3, 2, 1, 1, 1},
};
/* stride 1 and groups 1 (what an integer path takes), and two it may decline */
static const int qconv_p[][BO_P] = {
    {2, 5, 7, 9, 6, 3, 3, 1, 1, 1, 1}, {1, 3, 5, 5, 4, 1, 1, 1, 0, 1, 0}, {2, 8, 6, 7, 5, 5, 5, 1, 2, 1, 1},
    {3, 4, 8, 8, 8, 3, 3, 1, 1, 1, 1}, {2, 4, 7, 7, 6, 3, 3, 2, 1, 1, 1}, {2, 4, 6, 6, 4, 3, 3, 1, 1, 2, 1},
    {2, 5, 7, 9, 6, 1, 3, 1, 1, 1, 1}, {2, 4, 9, 6, 5, 5, 2, 1, 0, 1, 0}, /* kh != kw */
};
/* the BF16 backward: rows of 8 positions or more, narrower ones (unfolded over blocks of
   images: 6x6, 4x4, 7x7 with 9 images), stride 2 declines */
static const int qconvb_p[][BO_P] = {
    {2, 5, 7, 9, 6, 3, 3, 1, 1, 1, 1}, {2, 16, 8, 8, 16, 3, 3, 1, 1, 1, 0}, {1, 3, 6, 12, 7, 1, 1, 1, 0, 1, 1},
    {2, 6, 9, 13, 9, 5, 5, 1, 2, 1, 0}, {2, 4, 6, 6, 4, 3, 3, 1, 1, 1, 1}, {3, 7, 4, 4, 9, 3, 3, 1, 1, 1, 0},
    {9, 6, 7, 7, 5, 3, 3, 1, 1, 1, 1}, {2, 4, 16, 16, 4, 3, 3, 2, 1, 1, 0} /* declines: stride 2 */,
    {2, 5, 9, 17, 33, 3, 3, 1, 0, 1, 1},
};
/* n, c, h, w, k, stride, pad: overlapping windows, padding, odd sizes, 1x1 */
static const int pool_p[][BO_P] = {{2, 3, 7, 7, 3, 2, 1}, {1, 1, 1, 1, 1, 1, 0},   {3, 5, 11, 13, 2, 2, 0},
                                   {2, 4, 9, 8, 3, 1, 1}, {1, 2, 32, 32, 2, 2, 0}, {2, 3, 5, 7, 5, 3, 2}};
/* general windows: n c h w kh kw sh sw pad_t pad_l pad_b pad_r ceil_mode count_include_pad:
   non-square kernels and strides, asymmetric pads, ceil_mode with an overhanging last window and
   with a dropped one, count_include_pad 0 and 1 */
static const int poolg_p[][BO_P] = {
    {2, 3, 7, 6, 3, 2, 2, 1, 1, 0, 0, 1, 0, 1}, {1, 2, 6, 7, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
    {2, 2, 5, 5, 3, 3, 2, 2, 0, 0, 0, 0, 1, 0}, {2, 1, 7, 5, 2, 3, 3, 2, 1, 2, 0, 1, 1, 0},
    {1, 2, 4, 9, 1, 4, 1, 3, 0, 2, 0, 1, 0, 0}, {1, 1, 6, 6, 3, 3, 2, 2, 0, 0, 0, 0, 1, 1},
    {2, 1, 5, 5, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1}, {3, 5, 11, 13, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0},
    {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1}, {2, 3, 32, 33, 5, 3, 3, 2, 2, 1, 2, 1, 1, 0},
};
/* n c h w pt pl pb pr */
static const int pad_p[][BO_P] = {{2, 3, 5, 7, 1, 1, 1, 1}, {1, 1, 1, 1, 0, 0, 0, 0}, {3, 2, 4, 3, 0, 2, 1, 0},
                                  {2, 5, 9, 8, 3, 0, 0, 2}, {2, 16, 31, 33, 1, 2, 2, 1}};
/* n c hw c0 k */
static const int slice_p[][BO_P] = {{2, 6, 5, 0, 3}, {2, 6, 5, 3, 3}, {1, 1, 1, 0, 1}, {3, 7, 13, 2, 4},
                                    {2, 116, 49, 58, 58}};
/* n c hw (hw = 1: a 2-D input) */
static const int affine_p[][BO_P] = {{2, 3, 5}, {1, 1, 1}, {7, 10, 1}, {3, 17, 31}, {4, 64, 1024}};
static const int gap_p[][BO_P] = {{3, 7, 1}, {2, 5, 49}, {1, 1, 1}, {4, 64, 64}, {2, 3, 1001}};
static const int linear_p[][BO_P] = {{1, 1, 1, 0},     {1, 1, 1, 1},    {3, 7, 5, 0},      {3, 7, 5, 1},
                                     {17, 33, 10, 0},  {17, 33, 10, 1}, {64, 130, 100, 0}, {64, 130, 100, 1},
                                     {256, 64, 10, 0}, {256, 64, 10, 1}};
static const int shortcut_p[][BO_P] = {
    {2, 16, 32, 32, 32}, {3, 3, 7, 5, 7}, {1, 1, 1, 1, 1}, {2, 4, 9, 9, 4}};
static const int concat_p[][BO_P] = {{2, 3, 5, 7}, {1, 1, 1, 1}, {3, 0, 4, 5}, {2, 58, 58, 49}};
static const int shuffle_p[][BO_P] = {{2, 6, 5, 2}, {1, 1, 1, 1}, {3, 116, 49, 2}, {2, 12, 7, 3}};
/* rows x classes: single, tiny, more rows than a block's warps, > 1024 blocks of rows; KL's tile
   kernel (K <= 10), every register-row width (K = 20 .. 1024) and the warp kernel (K = 1025) */
static const int loss_p[][BO_P] = {{1, 1},    {1, 10},   {3, 37},   {257, 10}, {64, 1000},
                                   {9000, 7}, {31, 2},   {101, 33}, {45, 100}, {13, 129},
                                   {6, 1024}, {5, 1025}, {3000, 1}, {23, 20},  {7, 300}};
static const int kl_extreme_p[][BO_P] = {{10, 1},   {10, 4},   {100, 1},  {100, 4},
                                         {1000, 1}, {1000, 4}, {1025, 1}, {1025, 4}};
/* elements, start offset; 300001 elements take several trips of a float4 loop on cuemu's 2 SMs */
static const int fq_p[][BO_P] = {{1, 0}, {5, 1}, {1023, 0}, {4099, 1}, {65539, 0}, {262147, 1}, {300001, 0}};
static const int fq_big_p[][BO_P] = {{3 << 20}}; /* enough for the full 1024-block reducing grid */
static const int fqs_p[][BO_P] = {{1, 0, 0},    {5, 1, 1},     {1023, 0, 2},
                                  {4099, 1, 0}, {65539, 0, 1}, {65539, 1, 2}};
static const int absscale_p[][BO_P] = {{1, 0}, {7, 1}, {31, 0}, {257, 1}, {1023, 0}, {4099, 1}, {100003, 0}};
static const int div_p[][BO_P] = {{1 << 20}};
static const int bias_p[][BO_P] = {{1, 1, 1}, {3, 5, 7}, {2, 16, 64}, {4, 3, 1024}, {2, 7, 30}};
static const int graph_p[][BO_P] = {{4099, 37, 100}};
static const int stage_p[][BO_P] = {{1}, {4099}};

/* tolerances shared by rows: BatchNorm's statistics are computed in double on both sides */
#define BN_TOLS                                                                                              \
    CLOSE("run_mean", 1e-5, 0, 1e-5), CLOSE("run_var", 1e-5, 0, 1e-5), CLOSE("save_mean", 1e-5, 0, 1e-5),    \
        CLOSE("save_invstd", 1e-5, 0, 1e-4) /* m = 1: var 0, invstd ~316 */,                                 \
        CLOSE("gx", 1e-4, 0, 1e-4) /* a few float ops on sums of m terms */,                                 \
        CLOSE("ggamma", 1e-5, 1e-6, 1e-5) /* sums over n hw terms of size ~1 */,                             \
        CLOSE("gbeta", 1e-5, 1e-6, 1e-5)

/* fake-quant: same formula, IEEE division (the reciprocal is corrected), rintf: identical levels,
   except DoReFa weights where device and host tanhf may differ by 2 ulp and move an element on a
   rounding boundary by one level (allowed for 1 in 1000 elements, there only); the backward's
   FMA contraction changes last bits; parameter gradients are sums of n terms whose rounding
   differs by a few ulp each: 1e-6 of C sum |gy| (terms) */
#define FQ_TOLS                                                                                              \
    EXACT_ALLOW("y", 1), CLOSE_ALLOW("gx", 1e-6, 0, 1e-5, 1), CLOSE("scratch", 0, 0, 3e-7),                  \
        CLOSE("gqp", 1e-7, 1e-6, 1e-6), EXACT("gqp untouched")

#define FQ_ROW(kind, kname, w, wname)                                                                        \
    {                                                                                                        \
        .name = "fakequant " kname " " wname, .fam = F_fakequant, .covers = "fakequant_fwd fakequant_bwd",   \
        .run = run_fq, SHAPES(fq_p, "elements offset"), .modes = ACC, .arg = {kind, w}, .tol = {FQ_TOLS},    \
        .bench = {                                                                                           \
            1 << 22,                                                                                         \
            0                                                                                                \
        }                                                                                                    \
    }
#define FQS_ROW(kind, kname)                                                                                 \
    {                                                                                                        \
        .name = "fakequant_scaled " kname, .fam = F_fakequant,                                               \
        .covers = "fakequant_scaled_fwd fakequant_scaled_bwd", .run = run_fq_scaled,                         \
        SHAPES(fqs_p, "elements offset s"), .modes = ACC, .arg = {kind, 0},                                  \
        .tol = {EXACT_ALLOW("y", 1),                                                                         \
                CLOSE_ALLOW("ys", 1e-6, 0, 1e-6, 1) /* one product more */,                                  \
                CLOSE("gy", 1e-6, 0, 1e-6) /* |s| gys */,                                                    \
                CLOSE_ALLOW("gx", 1e-6, 0, 1e-5, 1),                                                         \
                CLOSE("gqp", 1e-7, 1e-6, 1e-6) /* as fakequant, C |s| sum |gys| */,                          \
                CLOSE("gs", 1e-7, 1e-6, 0) /* a sum of n terms: 1e-6 of sum |gys y| */,                      \
                SAME},                                                                                       \
        .bench = {                                                                                           \
            1 << 22,                                                                                         \
            0,                                                                                               \
            1                                                                                                \
        }                                                                                                    \
    }
#define QCONV_BWD_ROW(kind, kname, bits)                                                                     \
    {                                                                                                        \
        .name = "qconv2d_bwd " kname, .fam = F_fused, .covers = "qconv2d_bwd", .run = run_qconv_bwd,         \
        SHAPES(qconvb_p, CONV_NAMES), .modes = FWD, .arg = {kind, bits},                                     \
        .tol = {CLOSE("gx", 1e-7, 0, 1.0 / 256 + 1e-5) /* of sum |products|: gy rounded to bf16 */,          \
                CLOSE("gw", 1e-7, 0, 1.0 / 256 + 1e-5), CLOSE("gb", 1e-6, 0, 1e-5),                          \
                EXACT("untouched when declined")},                                                           \
        .bench = {32, 16, 32, 32, 16, 3, 3, 1, 1, 1, 0}                                                      \
    }
#define QCONV_ROW(kind, kname, bits)                                                                         \
    {                                                                                                        \
        .name = "qconv2d " kname, .fam = F_fused, .covers = "qconv2d_fwd", .run = run_qconv,                 \
        SHAPES(qconv_p, CONV_NAMES), .modes = FWD, .arg = {kind, bits},                                      \
        .tol = {CLOSE("y", 2e-4, 0,                                                                          \
                      1e-4) /* the integer sum is exact, the float oracle rounds ~C R S products */,         \
                EXACT("y untouched when declined")},                                                         \
        .bench = {                                                                                           \
            32,                                                                                              \
            16,                                                                                              \
            32,                                                                                              \
            32,                                                                                              \
            16,                                                                                              \
            3,                                                                                               \
            3,                                                                                               \
            1,                                                                                               \
            1,                                                                                               \
            1,                                                                                               \
            1                                                                                                \
        }                                                                                                    \
    }

static const bo_row bo_rows[] = {
    /* ---- memory, status, options, information ---- */
    {.name = "memory",
     .fam = F_memory,
     .covers = "name is_device alloc free memset0 copy_h2d copy_d2h copy_d2d sync",
     .run = run_memory,
     SHAPES(mem_p, "floats"),
     .modes = FWD,
     .tol = {EXACT("alloc (zeroed)"), EXACT("copy_d2d"), EXACT("memset0"), EXACT("copy_h2d"),
             EXACT("copy_d2h")},
     .bench = {1 << 22}},
    {.name = "status",
     .fam = F_memory,
     .covers = "status clear_status error_count",
     .run = run_status,
     SHAPES(one_p, "-"),
     .modes = FWD,
     .always = 1 /* CUDA: through sq_cuda_* while its table lacks them */,
     .tol = {EXACT("status") /* SQ_OK or not, counts */}},
    {.name = "options and information",
     .fam = F_memory,
     .covers = "configure options device_info mem_info",
     .run = run_info,
     SHAPES(one_p, "-"),
     .modes = FWD,
     .always = 1,
     .tol = {EXACT("options") /* what configure set */}},

    /* ---- elementwise ---- */
    {.name = "relu",
     .fam = F_elementwise,
     .covers = "act_fwd act_bwd",
     .run = run_act,
     SHAPES(vec_p, "elements"),
     .modes = ACC | NUL,
     .arg = {SQ_ACT_RELU},
     .tol = {EXACT("y"), EXACT("gx") /* a select and one add */},
     .bench = {1 << 22}},
    {.name = "relu6",
     .fam = F_elementwise,
     .covers = "act_fwd act_bwd",
     .run = run_act,
     SHAPES(vec_p, "elements"),
     .modes = ACC | NUL,
     .arg = {SQ_ACT_RELU6},
     .tol = {EXACT("y"), EXACT("gx")},
     .bench = {1 << 22}},
    {.name = "clip",
     .fam = F_elementwise,
     .covers = "clip_fwd clip_bwd",
     .run = run_clip,
     SHAPES(vec_p, "elements"),
     .modes = ACC | NUL,
     .arg = {0},
     .tol = {EXACT("y"), EXACT("gx") /* a select and one add */},
     .bench = {1 << 22}},
    {.name = "clip -inf",
     .fam = F_elementwise,
     .covers = "clip_fwd clip_bwd",
     .run = run_clip,
     SHAPES(vec_p, "elements"),
     .modes = ACC | NUL,
     .arg = {1},
     .tol = {EXACT("y"), EXACT("gx")}},
    {.name = "clip +inf",
     .fam = F_elementwise,
     .covers = "clip_fwd clip_bwd",
     .run = run_clip,
     SHAPES(vec_p, "elements"),
     .modes = ACC | NUL,
     .arg = {2},
     .tol = {EXACT("y"), EXACT("gx")}},
    {.name = "affine",
     .fam = F_elementwise,
     .covers = "affine_fwd affine_bwd",
     .run = run_affine,
     SHAPES(affine_p, "n c hw"),
     .modes = ACC | NUL,
     .tol = {EXACT("y"), EXACT("gx") /* a rounded product, then one add (backend.h) */},
     .bench = {64, 64, 1024}},
    {.name = "add axpy scale fill",
     .fam = F_elementwise,
     .covers = "add_fwd axpy scale fill",
     .run = run_elementwise,
     SHAPES(vec_p, "elements"),
     .modes = FWD,
     .tol = {EXACT("add"), CLOSE("axpy", 1e-6, 0, 1e-6) /* a device may fuse y + a x into one FMA */,
             EXACT("scale"), EXACT("fill")},
     .bench = {1 << 22}},

    /* ---- batch norm ---- */
    {.name = "bn",
     .fam = F_batchnorm,
     .covers = "bn_fwd_train bn_fwd_eval bn_bwd bn_bwd_set",
     .run = run_bn,
     SHAPES(bn_p, "n c hw"),
     .modes = ACC | SET | NUL | DET,
     /* y: statistics in double, a few float ops; and the rounding of x a (a = gamma invstd, the
        CPU's x a + (beta - mean a) against a device's (x - mean) invstd gamma + beta), large
        where the variance is tiny (m = 1: invstd = 1 / sqrt(eps)): 5 x 4 ulp of max |a| (terms) */
     .tol = {CLOSE("y", 1e-5, 2.4e-6, 1e-5), CLOSE("y eval", 1e-5, 0, 1e-5), BN_TOLS, SAME},
     .bench = {64, 64, 1024}},

    /* ---- convolution ---- */
    {.name = "conv2d",
     .fam = F_conv,
     .covers = "conv_ws_bytes conv2d_fwd conv2d_bwd conv2d_bwd_set",
     .run = run_conv,
     SHAPES(conv_p, CONV_NAMES),
     .modes = ACC | SET | NUL | DET,
     /* sums of products of values in [-1, 1] (terms: products per output); FMA kernels, but
        Winograd / FFT algorithms round differently: 1e-5 per term; TF32 is off */
     .tol = {CLOSE("y", 0, 1e-5, 1e-4), CLOSE("gx", 0, 1e-5, 1e-4), CLOSE("gw", 0, 1e-5, 1e-4),
             CLOSE("gb", 0, 1e-6, 1e-5) /* plain sums */, SAME},
     .bench = {64, 16, 32, 32, 16, 3, 3, 1, 1, 1, 1}},

    /* ---- pooling ---- */
    {.name = "maxpool",
     .fam = F_pool,
     .covers = "pool_fwd pool_bwd",
     .run = run_pool,
     SHAPES(pool_p, "n c h w k stride pad"),
     .modes = ACC | NUL,
     .arg = {SQ_POOL_MAX},
     .tol = {EXACT("y"), EXACT("argmax"),
             CLOSE("gx", 1e-6, 0, 1e-6) /* gather vs scatter: sums of <= k k terms */},
     .bench = {64, 16, 32, 32, 3, 2, 1}},
    {.name = "avgpool",
     .fam = F_pool,
     .covers = "pool_fwd pool_bwd",
     .run = run_pool,
     SHAPES(pool_p, "n c h w k stride pad"),
     .modes = ACC | NUL,
     .arg = {SQ_POOL_AVG},
     .tol = {CLOSE("y", 1e-6, 0, 1e-6) /* sums of k k terms, then a division */, CLOSE("gx", 1e-6, 0, 1e-6)},
     .bench = {64, 16, 32, 32, 2, 2, 0}},
    {.name = "maxpool general",
     .fam = F_pool,
     .covers = "pool_fwd pool_bwd",
     .run = run_pool,
     SHAPES(poolg_p, "n c h w kh kw sh sw pt pl pb pr ceil cip"),
     .modes = ACC | NUL,
     .arg = {SQ_POOL_MAX, 1},
     .tol = {EXACT("y"), EXACT("argmax"), CLOSE("gx", 1e-6, 0, 1e-6) /* gather vs scatter */},
     .bench = {64, 16, 32, 32, 3, 3, 2, 2, 0, 0, 1, 1, 1, 1}},
    {.name = "avgpool general",
     .fam = F_pool,
     .covers = "pool_fwd pool_bwd",
     .run = run_pool,
     SHAPES(poolg_p, "n c h w kh kw sh sw pt pl pb pr ceil cip"),
     .modes = ACC | NUL,
     .arg = {SQ_POOL_AVG, 1},
     /* y: the same sum, then one division (CPU: a multiplication by the reciprocal); gx: the
        device sums gy / divisor per window in another order */
     .tol = {CLOSE("y", 1e-6, 0, 1e-6), CLOSE("gx", 1e-6, 0, 1e-6)},
     .bench = {64, 16, 32, 32, 3, 3, 2, 2, 0, 0, 1, 1, 1, 0}},
    {.name = "gap",
     .fam = F_pool,
     .covers = "gap_fwd gap_bwd",
     .run = run_gap,
     SHAPES(gap_p, "n c hw"),
     .modes = ACC | NUL | DET,
     .tol = {CLOSE("y", 0, 1e-6, 1e-5) /* a mean of hw terms <= 2 in another order: terms = sqrt(hw) */,
             CLOSE("gx", 1e-6, 0, 1e-6), SAME},
     .bench = {256, 64, 64}},

    /* ---- linear (column-major GEMMs on cuBLAS) ---- */
    {.name = "linear",
     .fam = F_linear,
     .covers = "linear_fwd linear_bwd",
     .run = run_linear,
     SHAPES(linear_p, "n in out bias"),
     .modes = ACC | NUL,
     /* dot products of in, out or n terms in [-1, 1] summed in other orders */
     .tol = {CLOSE("y", 0, 2e-6, 1e-5), CLOSE("gx", 0, 2e-6, 1e-5), CLOSE("gw", 0, 2e-6, 1e-5),
             CLOSE("gb", 0, 2e-6, 1e-5)},
     .bench = {256, 512, 512, 1}},

    /* ---- structural: data movement, exact ---- */
    {.name = "shortcut_a",
     .fam = F_structural,
     .covers = "shortcut_a_fwd shortcut_a_bwd",
     .run = run_shortcut,
     SHAPES(shortcut_p, "n c h w k"),
     .modes = ACC | NUL,
     .tol = {EXACT("y"), EXACT("gx")},
     .bench = {128, 16, 32, 32, 32}},
    {.name = "pad",
     .fam = F_structural,
     .covers = "pad_fwd pad_bwd",
     .run = run_pad,
     SHAPES(pad_p, "n c h w pt pl pb pr"),
     .modes = ACC | NUL,
     .arg = {0},
     .tol = {EXACT("y"), EXACT("gx")},
     .bench = {128, 16, 32, 32, 1, 1, 1, 1}},
    {.name = "pad -inf",
     .fam = F_structural,
     .covers = "pad_fwd pad_bwd",
     .run = run_pad,
     SHAPES(pad_p, "n c h w pt pl pb pr"),
     .modes = ACC | NUL,
     .arg = {1},
     .tol = {EXACT("y"), EXACT("gx")}},
    {.name = "pad 1.5",
     .fam = F_structural,
     .covers = "pad_fwd pad_bwd",
     .run = run_pad,
     SHAPES(pad_p, "n c h w pt pl pb pr"),
     .modes = ACC | NUL,
     .arg = {2},
     .tol = {EXACT("y"), EXACT("gx")}},
    {.name = "slice",
     .fam = F_structural,
     .covers = "slice_fwd slice_bwd",
     .run = run_slice,
     SHAPES(slice_p, "n c hw c0 k"),
     .modes = ACC | NUL,
     .tol = {EXACT("y"), EXACT("gx")},
     .bench = {128, 116, 784, 58, 58}},
    {.name = "concat",
     .fam = F_structural,
     .covers = "concat_fwd concat_bwd",
     .run = run_concat,
     SHAPES(concat_p, "n c1 c2 hw"),
     .modes = ACC | NUL,
     .tol = {EXACT("y"), EXACT("ga"), EXACT("gb")},
     .bench = {128, 58, 58, 196}},
    {.name = "shuffle",
     .fam = F_structural,
     .covers = "shuffle_fwd shuffle_bwd",
     .run = run_shuffle,
     SHAPES(shuffle_p, "n c hw groups"),
     .modes = ACC | NUL,
     .tol = {EXACT("y"), EXACT("gx")},
     .bench = {128, 116, 196, 2}},
    {.name = "dropout",
     .fam = F_structural,
     .covers = "dropout_fwd dropout_bwd",
     .run = run_dropout,
     SHAPES(vec_p, "elements"),
     .modes = ACC | NUL,
     .tol = {EXACT("mask") /* the same hash of (seed, index) */, EXACT("y"), EXACT("gx")},
     .bench = {1 << 22}},

    /* ---- losses ---- */
    {.name = "kl test vector",
     .fam = F_losses,
     .covers = "kl_fwd_bwd",
     .run = run_kl_vector,
     SHAPES(one_p, "-"),
     .modes = FWD,
     .tol = {CLOSE("test vector", 2e-6, 0, 0) /* printed to 6-7 digits */}},
    {.name = "kl ce argmax",
     .fam = F_losses,
     .covers = "kl_fwd_bwd softmax_ce argmax",
     .run = run_losses,
     SHAPES(loss_p, "rows classes"),
     .modes = FWD | NUL | DET,
     /* the CPU works in double; a GPU's KL in float with ex2.approx, summed in float along a
        row and in double across rows */
     .tol = {CLOSE("kl loss", 1e-6, 0, 1e-5), CLOSE("ce loss", 1e-6, 0, 1e-5),
             CLOSE("kl grad", 1e-6, 0, 1e-4), CLOSE("ce grad", 1e-6, 0, 1e-4), EXACT("argmax"), SAME},
     .bench = {4096, 1000}},
    {.name = "kl extreme rows",
     .fam = F_losses,
     .covers = "kl_fwd_bwd",
     .run = run_kl_extreme,
     SHAPES(kl_extreme_p, "classes T"),
     .modes = FWD,
     .tol = {CLOSE("kl loss", 1e-6, 0, 1e-5), CLOSE("kl grad", 1e-6, 0, 1e-4)}},

    {.name = "squat feature loss",
     .fam = F_losses,
     .covers = "squat_fwd_bwd",
     .run = run_squat,
     SHAPES(vec_p, "elements"),
     .modes = ACC | NUL | DET,
     /* the same per-element math (quant_math.h; the device divides by reciprocal, correctly
        rounded); the loss summed in double on both, in another order */
     .tol = {CLOSE("loss", 1e-7, 0, 1e-6), CLOSE("grad", 1e-9, 0, 1e-6), SAME},
     .bench = {1 << 22}},

    /* ---- fake quantization: every quantizer and role ---- */
    FQ_ROW(SQ_QUANT_EWGS, "ewgs", 1, "weight"),
    FQ_ROW(SQ_QUANT_EWGS, "ewgs", 0, "act"),
    FQ_ROW(SQ_QUANT_PACT, "pact", 1, "weight"),
    FQ_ROW(SQ_QUANT_PACT, "pact", 0, "act"),
    FQ_ROW(SQ_QUANT_LSQ, "lsq", 1, "weight"),
    FQ_ROW(SQ_QUANT_LSQ, "lsq", 0, "act"),
    FQ_ROW(SQ_QUANT_DOREFA, "dorefa", 1, "weight"),
    FQ_ROW(SQ_QUANT_DOREFA, "dorefa", 0, "act"),
    {.name = "fakequant_bwd parameter gradients",
     .fam = F_fakequant,
     .covers = "fakequant_bwd",
     .run = run_fq_big,
     SHAPES(fq_big_p, "elements"),
     .modes = NUL | DET,
     .tol = {CLOSE("gqp", 1e-7, 1e-6, 1e-6), CLOSE("gx", 2e-6, 0, 1e-5), SAME}},
    FQS_ROW(SQ_QUANT_EWGS, "ewgs"),
    FQS_ROW(SQ_QUANT_PACT, "pact"),
    FQS_ROW(SQ_QUANT_LSQ, "lsq"),
    FQS_ROW(SQ_QUANT_DOREFA, "dorefa"),
    {.name = "absscale",
     .fam = F_fakequant,
     .covers = "absscale_fwd absscale_bwd",
     .run = run_absscale,
     SHAPES(absscale_p, "elements negative_s"),
     .modes = ACC,
     .tol = {EXACT("y"), CLOSE("gz", 1e-6, 0, 1e-6),
             CLOSE("gs", 0, 2e-6, 1e-5) /* a sum of n products <= 2 */},
     .bench = {1 << 22, 1}},
    {.name = "division by reciprocal (sq_cuda_div_check)",
     .fam = F_fakequant,
     .covers = "",
     .run = run_div,
     SHAPES(div_p, "random pairs"),
     .modes = FWD,
     .tol = {EXACT("quotient") /* IEEE division */}},

    /* ---- optimizers ---- */
    {.name = "sgd",
     .fam = F_optim,
     .covers = "sgd_step",
     .run = run_sgd,
     SHAPES(vec_p, "elements"),
     .modes = FWD | NUL, /* NUL: momentum 0 without a buffer */
     .tol = {CLOSE("p", 1e-6, 0, 1e-6) /* the same order; a device may fuse multiply-adds */,
             CLOSE("m", 1e-6, 0, 1e-6)},
     .bench = {1 << 22}},
    {.name = "adam (3 steps)",
     .fam = F_optim,
     .covers = "adam_step",
     .run = run_adam,
     SHAPES(vec_p, "elements"),
     .modes = FWD,
     .tol = {CLOSE("p", 1e-6, 0, 1e-6), CLOSE("m", 1e-7, 0, 1e-6), CLOSE("v", 1e-9, 0, 1e-5)},
     .bench = {1 << 22}},

    /* ---- fused ops: against the oracle's fused op, or the unfused ops the graph runs without ---- */
    {.name = "bn_act",
     .fam = F_fused,
     .covers = "bn_act_fwd_train bn_act_bwd bn_act_bwd_set",
     .run = run_bn_act,
     SHAPES(bnf_p, "n c hw"),
     .modes = ACC | SET,
     .arg = {0},
     /* y: 4e-5 + 2.4e-6 max|gamma invstd| (5 x 4 ulp of the rounding of x a) */
     .tol = {CLOSE("y", 4e-5, 2.4e-6, 1e-5), BN_TOLS, SAME},
     .bench = {64, 64, 1024}},
    {.name = "bn_add_act",
     .fam = F_fused,
     .covers = "bn_add_act_fwd_train bn_add_act_bwd bn_add_act_bwd_set",
     .run = run_bn_act,
     SHAPES(bnf_p, "n c hw"),
     .modes = ACC | SET | NUL,
     .arg = {1},
     .tol = {CLOSE("y", 4e-5, 2.4e-6, 1e-5), BN_TOLS,
             EXACT("gr") /* gr += gy act'(y): one add of the same operands */, SAME},
     .bench = {64, 64, 1024}},
    {.name = "add_act",
     .fam = F_fused,
     .covers = "add_act_fwd add_act_bwd",
     .run = run_add_act,
     SHAPES(vec_p, "elements"),
     .modes = ACC | NUL,
     .tol = {EXACT("y"), EXACT("ga"), EXACT("gb")},
     .bench = {1 << 22}},
    {.name = "bias_add_act",
     .fam = F_fused,
     .covers = "bias_add_act_fwd",
     .run = run_bias_add_act,
     SHAPES(bias_p, "n c hw"),
     .modes = FWD,
     .tol = {EXACT("y") /* the same additions in the same order */},
     .bench = {64, 64, 1024}},
    QCONV_ROW(SQ_QUANT_EWGS, "ewgs w4a4", 4),
    QCONV_ROW(SQ_QUANT_LSQ, "lsq w2a2", 2),
    QCONV_ROW(SQ_QUANT_PACT, "pact w3a3", 3),
    QCONV_ROW(SQ_QUANT_DOREFA, "dorefa w4a4", 4),
    QCONV_ROW(SQ_QUANT_LSQ, "lsq w8a8", 8) /* the integer range's ends */,
    QCONV_BWD_ROW(SQ_QUANT_EWGS, "ewgs w4a4", 4),
    QCONV_BWD_ROW(SQ_QUANT_LSQ, "lsq w2a2", 2),
    QCONV_BWD_ROW(SQ_QUANT_PACT, "pact w3a3", 3),
    QCONV_BWD_ROW(SQ_QUANT_DOREFA, "dorefa w8a8", 8) /* codes -255..255 */,

    /* ---- 16-bit teacher ops ---- */
    {.name = "to16 from16",
     .fam = F_half,
     .covers = "to16 from16",
     .run = run_cast16,
     SHAPES(vec_p, "elements"),
     .modes = FWD,
     .tol = {EXACT("to16") /* IEEE round to nearest even */, EXACT("from16")},
     .bench = {1 << 22}},
    {.name = "conv16",
     .fam = F_half,
     .covers = "conv16_ws_bytes conv16_fwd",
     .run = run_conv16,
     SHAPES(conv16_p, CONV_NAMES),
     .modes = FWD,
     /* rounded once (fused bias + ReLU) or twice (conv, then bias + act): one ulp of |conv| +
        |y| (2^-10 f16, 2^-7 bf16), f16's subnormal spacing, fp32 accumulation: 1e-5 per term */
     .tol = {CLOSE("y f16", 0x1p-24, 1e-5, 0x1p-10), CLOSE("y bf16", 0, 1e-5, 0x1p-7)},
     .bench = {64, 16, 32, 32, 16, 3, 3, 1, 1, 1, 1}},
    {.name = "act16 add16",
     .fam = F_half,
     .covers = "act16_fwd add16_fwd",
     .run = run_elem16,
     SHAPES(vec_p, "elements"),
     .modes = FWD,
     .tol = {EXACT("act16"), EXACT("add16") /* the fp32 op on widened values, rounded once */},
     .bench = {1 << 22}},
    {.name = "shortcut_a16",
     .fam = F_half,
     .covers = "shortcut_a16_fwd",
     .run = run_shortcut16,
     SHAPES(shortcut_p, "n c h w k"),
     .modes = FWD,
     .tol = {EXACT("shortcut16")},
     .bench = {128, 16, 32, 32, 32}},
    {.name = "pool16 gap16",
     .fam = F_half,
     .covers = "pool16_fwd gap16_fwd",
     .run = run_pool16,
     SHAPES(pool_p, "n c h w k stride pad"),
     .modes = FWD,
     /* avg: the fp32 mean (k k terms <= 2 summed in another order: 2.4e-7 per term) rounded once:
        one ulp, or f16's subnormal spacing */
     .tol = {EXACT("max"), CLOSE("avg f16", 0x1p-24, 2.4e-7, 0x1p-10), CLOSE("avg bf16", 0, 2.4e-7, 0x1p-7),
             CLOSE("gap", 0, 1e-6, 1e-5) /* as gap_fwd */},
     .bench = {64, 16, 32, 32, 3, 2, 1}},

    /* ---- recording and staging ---- */
    {.name = "graph",
     .fam = F_record,
     .covers = "graph_begin graph_end graph_run graph_free",
     .run = run_graph,
     SHAPES(graph_p, "elements rows classes"),
     .modes = FWD,
     .tol = {SAME}},
    {.name = "stage",
     .fam = F_record,
     .covers = "stage_new stage_put stage_put_pinned stage_free host_alloc host_free",
     .run = run_stage,
     SHAPES(stage_p, "floats"),
     .modes = FWD,
     .tol = {SAME},
     .bench = {1 << 22}},
};
#define BO_NROWS ((int)(sizeof bo_rows / sizeof bo_rows[0]))

/* ================================================================ the runner */

static const bo_member *member_named(const char *name, size_t len)
{
    for (int i = 0; i < BO_NMEMBERS; i++)
        if (strlen(bo_members[i].name) == len && !strncmp(bo_members[i].name, name, len))
            return &bo_members[i];
    return NULL;
}

static int slot_set(const sq_backend *be, const bo_member *m)
{
    if (!m->fn) return 1;
    void (*f)(void);
    memcpy(&f, (const char *)be + m->off, sizeof f);
    return f != NULL;
}

/* calls fn(member, ctx) for each member a row covers; returns how many */
static int for_covers(const bo_row *r, void (*fn)(const char *, size_t, void *), void *ctx)
{
    int count = 0;
    for (const char *s = r->covers; *s;) {
        s += strspn(s, " ");
        size_t len = strcspn(s, " ");
        if (!len) break;
        if (fn) fn(s, len, ctx);
        count++;
        s += len;
    }
    return count;
}

typedef struct applies_ctx {
    const sq_backend *be, *ref;
    int set_in_be, fused_only;
} applies_ctx;

static void applies_one(const char *name, size_t len, void *v)
{
    applies_ctx *a = v;
    const bo_member *m = member_named(name, len);
    if (!m || !m->fn || !slot_set(a->be, m)) return;
    if (!a->ref || !slot_set(a->ref, m)) a->set_in_be = 1;
}

/* a row runs on be when be has one of the ops it covers (rows that cover none decide themselves);
   with ref: only where the oracle lacks that op (the fused-versus-unfused run) */
static int row_applies(const bo_row *r, const sq_backend *be, const sq_backend *unfused_ref)
{
    applies_ctx a = {be, unfused_ref, 0, 0};
    if (r->always || for_covers(r, NULL, NULL) == 0) return unfused_ref == NULL;
    for_covers(r, applies_one, &a);
    return a.set_in_be;
}

static void shape_text(const bo_row *r, const int *p, char *out, size_t cap)
{
    int np = 0;
    for (const char *s = r->pnames; *s; s++) np += (s == r->pnames || s[-1] == ' ') && *s != ' ';
    if (!strcmp(r->pnames, "-")) np = 0;
    size_t len = 0;
    out[0] = 0;
    for (int i = 0; i < np && i < BO_P && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%d", i ? "," : "", p[i]);
}

typedef struct bo_counts {
    long rows, cases, skipped, declined;
} bo_counts;

static void run_row(bo_ctx *c, int ri, bo_counts *k)
{
    const bo_row *r = &bo_rows[ri];
    const int nshapes = c->timing ? (r->bench[0] ? 1 : 0) : r->nshapes;
    if (!nshapes) return;
    k->rows++;
    for (int s = 0; s < nshapes; s++) {
        const int *p = c->timing ? r->bench : r->shapes[s];
        char shape[96];
        shape_text(r, p, shape, sizeof shape);
        for (int mode = FWD; mode <= DET; mode <<= 1) {
            if (!(r->modes & (unsigned)mode) || (c->timing && (mode == NUL || mode == DET))) continue;
            c->row = r;
            c->seed = 1000003ull * (uint64_t)(ri + 1) + 1009ull * (uint64_t)s + (uint64_t)mode;
            snprintf(c->where, sizeof c->where, "%s %s [%s] %s", c->be->name, r->name, shape,
                     mode_name(mode));
            int ran = r->run(c, r, p, mode);
            bo_end(c);
            ran ? k->cases++ : k->skipped++;
        }
    }
}

/* TF32 off for fp32 convolutions (the backend's option) */
static void no_tf32(const sq_backend *be)
{
    sq_backend_opts o = *be->options();
    o.tf32 = 0;
    cr_assert_eq(be->configure(&o), SQ_OK, "%s: configure: %s", be->name, sq_last_error());
}

/* every row of family fam (-1: all) that applies to be, against ref; returns the counts */
static bo_counts run_rows(const sq_backend *be, const sq_backend *ref, int fam, int unfused_only, int timing)
{
    bo_ctx *c = calloc(1, sizeof *c);
    cr_assert(c);
    c->be = be;
    c->ref = ref;
    c->timing = timing;
    no_tf32(be);
    bo_counts k = {0, 0, 0, 0};
    for (int i = 0; i < BO_NROWS; i++) {
        if (fam >= 0 && bo_rows[i].fam != fam) continue;
        if (!row_applies(&bo_rows[i], be, unfused_only ? ref : NULL)) continue;
        run_row(c, i, &k);
    }
    k.declined = c->declined;
    free(c);
    return k;
}

#ifndef BO_BENCH

TestSuite(backend_ops, .timeout = 300);

/* the member list is sq_backend, member for member: adding a member to the struct without adding
   it (and a row, or an exemption) here fails this test */
Test(backend_ops, member_list_is_the_whole_struct)
{
    size_t end = 0, align = 1;
    for (int i = 0; i < BO_NMEMBERS; i++) {
        const bo_member *m = &bo_members[i];
        const size_t want = (end + m->align - 1) / m->align * m->align;
        cr_expect_eq(m->off, want,
                     "member %s at offset %zu, expected %zu after the previous one: sq_backend has a member "
                     "bo_members lacks (or the list is out of the struct's order)",
                     m->name, m->off, want);
        end = m->off + m->size;
        if (m->align > align) align = m->align;
        for (int j = 0; j < i; j++)
            cr_expect(strcmp(bo_members[j].name, m->name), "member %s listed twice", m->name);
    }
    const size_t total = (end + align - 1) / align * align;
    cr_expect_eq(total, sizeof(sq_backend),
                 "the members listed end at %zu bytes, sq_backend has %zu: a member at its end is missing",
                 total, sizeof(sq_backend));
}

typedef struct name_check {
    const bo_row *row;
} name_check;

static void expect_member(const char *name, size_t len, void *v)
{
    const name_check *nc = v;
    cr_expect(member_named(name, len) != NULL, "row '%s' covers '%.*s', which is no member of sq_backend",
              nc->row->name, (int)len, name);
}

typedef struct cover_find {
    const char *name;
    int found;
} cover_find;

static void find_cover(const char *name, size_t len, void *v)
{
    cover_find *f = v;
    if (strlen(f->name) == len && !strncmp(f->name, name, len)) f->found = 1;
}

/* every non-NULL member of be: a row calls it, or it is exempt */
static void expect_slots_covered(const sq_backend *be)
{
    int checked = 0;
    for (int i = 0; i < BO_NMEMBERS; i++) {
        const bo_member *m = &bo_members[i];
        if (!slot_set(be, m) || m->exempt) continue;
        cover_find f = {m->name, 0};
        for (int j = 0; j < BO_NROWS && !f.found; j++) for_covers(&bo_rows[j], find_cover, &f);
        cr_expect(
            f.found,
            "backend %s sets member %s, but no row of the case table (tests/test_cuda_backend_ops.c) calls "
            "it: add a row, or exempt it in bo_members with the reason",
            be->name, m->name);
        checked++;
    }
    cr_expect_gt(checked, 40, "%s: only %d members checked", be->name, checked);
}

Test(backend_ops, rows_name_members_and_tolerate_what_they_check)
{
    for (int j = 0; j < BO_NROWS; j++) {
        name_check nc = {&bo_rows[j]};
        for_covers(&bo_rows[j], expect_member, &nc);
        cr_expect(bo_rows[j].nshapes > 0 && bo_rows[j].modes, "row '%s' has no shapes or modes",
                  bo_rows[j].name);
        cr_expect(bo_rows[j].tol[0].out != NULL, "row '%s' has no tolerance", bo_rows[j].name);
        cr_expect(bo_rows[j].fam >= 0 && bo_rows[j].fam < BO_NFAM);
    }
    for (int i = 0; i < BO_NMEMBERS; i++)
        if (bo_members[i].exempt)
            cr_expect(strlen(bo_members[i].exempt) > 20, "%s: exempt without a reason", bo_members[i].name);
}

Test(backend_ops, cpu_slots_have_cases) { expect_slots_covered(sq_backend_cpu()); }
Test(backend_ops, unfused_cpu_slots_have_cases) { expect_slots_covered(sqt_cpu_unfused(1)); }

Test(backend_ops, cuda_slots_have_cases)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    expect_slots_covered(g);
}

/* the CPU backend's fused ops and integer convolution against the unfused CPU backend: every row
   that covers an op the unfused table leaves NULL */
Test(backend_ops, cpu_fused_ops_match_the_unfused_cpu_ops)
{
    const sq_backend *cpu = sq_backend_cpu(), *plain = sqt_cpu_unfused(1);
    bo_counts k = run_rows(cpu, plain, -1, 1, 0);
    fprintf(stderr,
            "backend_ops: cpu against unfused cpu: %ld rows, %ld cases (%ld declined), %ld not applicable\n",
            k.rows, k.cases, k.declined, k.skipped);
    cr_expect_geq(k.rows, 12, "only %ld rows ran (bn_act, bn_add_act, add_act, 5 x qconv2d, 4 x qconv2d_bwd)", k.rows);
}

static void cuda_family(int fam)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    bo_counts k = run_rows(g, sq_backend_cpu(), fam, 0, 0);
    fprintf(stderr, "backend_ops: cuda %s: %ld rows, %ld cases (%ld declined), %ld not applicable\n",
            bo_family_names[fam], k.rows, k.cases, k.declined, k.skipped);
    cr_expect_gt(k.cases, 0, "family %s ran no case", bo_family_names[fam]);
}

#define X(f)                                                                                                 \
    Test(backend_ops, cuda_##f) { cuda_family(F_##f); }
BO_FAMILIES(X)
#undef X

#endif /* BO_BENCH */
