/* bench_backend_ops.c: make bench-ops, the timing mode of the op-table conformance harness. It
   includes tests/test_cuda_backend_ops.c (BO_BENCH leaves out that file's conformance tests) and
   runs the same case table: each row at its bench shape, each backend call (BO_CALL) once to warm
   up and then for about 0.2 s, printing the time per call and the GB/s of the bytes the call must
   read and write. The CPU backend always; the CUDA backend where a GPU is usable. Nothing is
   compared, nothing is asserted: figures, not tests (not part of make test). */
#define BO_BENCH 1
#include "test_cuda_backend_ops.c"

TestSuite(bench_ops);

static void bench(const sq_backend *be)
{
    printf("%-5s %-22s %-46s %14s %14s\n", "", "op", "row [shape] mode", "time per call", "bandwidth");
    fflush(stdout);
    const double t0 = now_s();
    bo_counts k = run_rows(be, sq_backend_cpu(), -1, 0, 1);
    printf("%s: %ld rows timed in %.1f s\n\n", be->name, k.rows, now_s() - t0);
    fflush(stdout);
}

Test(bench_ops, cpu) { bench(sq_backend_cpu()); }

/* the case table itself: rows, what they call, shapes, modes and tolerances */
Test(bench_ops, table)
{
    long combos = 0;
    for (int i = 0; i < BO_NROWS; i++) {
        const bo_row *r = &bo_rows[i];
        char modes[40] = "";
        int nm = 0;
        for (int m = FWD; m <= DET; m <<= 1)
            if (r->modes & (unsigned)m) {
                snprintf(modes + strlen(modes), sizeof modes - strlen(modes), "%s%s", nm ? "," : "", mode_name(m));
                nm++;
            }
        combos += (long)r->nshapes * nm;
        printf("%-12s %-42s %2d shapes x %-16s %s\n", bo_family_names[r->fam], r->name, r->nshapes, modes,
               r->covers[0] ? r->covers : "(no member)");
        for (int t = 0; t < BO_NTOL && r->tol[t].out; t++) {
            const bo_tol *o = &r->tol[t];
            if (o->exact) printf("%14s tol %-28s exact%s\n", "", o->out, o->allow_pm ? " (allowance)" : "");
            else printf("%14s tol %-28s %g + %g/term + %g rel%s\n", "", o->out, o->atol, o->per_term, o->rtol,
                        o->allow_pm ? " (allowance)" : "");
        }
    }
    printf("%d rows, %ld (row, shape, mode) cases\n\n", BO_NROWS, combos);
    fflush(stdout);
}

Test(bench_ops, cuda)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    bench(g);
}
