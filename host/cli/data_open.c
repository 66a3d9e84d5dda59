/* data_open.c: opening the train and evaluation splits of a data SPEC for the subcommands, and the
   dataset options of --resize and --loader-threads. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "cli_data.h"
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* the cores this process may run on (its affinity mask), at least 1 */
static int usable_cores(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int sq_cli_parse_resize(const char *s, int *h, int *w)
{
    char *e;
    if (!s || *s < '0' || *s > '9') return -1;
    long a = strtol(s, &e, 10);
    if (*e != 'x' && *e != 'X') return -1;
    const char *t = e + 1;
    if (*t < '0' || *t > '9') return -1;
    long b = strtol(t, &e, 10);
    if (*e || a < 1 || b < 1 || a > 8192 || b > 8192) return -1;
    *h = (int)a;
    *w = (int)b;
    return 0;
}

int sq_cli_data_opts(const char *cmd, const char *resize, int loader_threads, sq_data_opts *o)
{
    memset(o, 0, sizeof *o);
    if (resize && sq_cli_parse_resize(resize, &o->resize_h, &o->resize_w)) {
        char shown[64];
        return sq_cli_fail(cmd, "--resize must be HxW with H and W in 1..8192 (e.g. 64x64), got '%s'",
                           sq_printable(resize, shown, sizeof shown));
    }
    if (loader_threads > 0) {
        o->threads = loader_threads;
    } else {
        int n = usable_cores();
        o->threads = n < 8 ? n : 8;
    }
    return 0;
}

int sq_cli_open_data(const char *cmd, const char *spec, const sq_data_opts *opts, int train_labels, float holdout,
                     uint64_t seed, sq_dataset *train, sq_dataset *test, int *have_test)
{
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    *have_test = 0;
    sq_data_opts o = {0}, to;
    if (opts) o = *opts;
    to = o;
    to.skip_norm = 1; /* the evaluation split is normalised as the train split */
    sq_dataset full;
    if (sq_dataset_open_ex(spec, SQ_SPLIT_TRAIN, train_labels, &o, &full))
        return sq_cli_fail(cmd, "%s", sq_last_error());
    to.channels = full.c == 3 ? 3 : 1; /* a folder's test split takes the train split's channels */
    /* the evaluation split carries labels when they exist: they are only used to report accuracy */
    sq_status st = sq_dataset_open_ex(spec, SQ_SPLIT_TEST, 1, &to, test);
    if (st == SQ_OK && holdout <= 0) {
        sq_cli_apply_norm(test, full.mean, full.std);
        *train = full;
        *have_test = 1;
        goto opened;
    }
    const int asked = st == SQ_OK; /* a test split exists: --holdout asked for this */
    if (st == SQ_OK) sq_dataset_free(test);
    else if (st != SQ_EARG) {
        sq_dataset_free(&full);
        return sq_cli_fail(cmd, "%s", sq_last_error());
    }
    float frac = holdout > 0 ? holdout : 0.05f;
    if (sq_dataset_holdout(&full, frac, seed ^ 0x5EEDull, train, test)) {
        sq_dataset_free(&full);
        return sq_cli_fail(cmd, "%s", sq_last_error());
    }
    sq_dataset_free(&full);
    *have_test = test->n > 0;
    if (asked)
        fprintf(stderr, "sqakd %s: --holdout: evaluating on %.0f%% of the train split (%d images), not on "
                "the test split\n", cmd, frac * 100, test->n);
    else
        fprintf(stderr, "sqakd %s: %s has no separate test split; holding out %.0f%% (%d images) for "
                "evaluation\n", cmd, spec, frac * 100, test->n);
opened:
    if (train->stream) {
        char rs[48] = "";
        if (o.resize_h) snprintf(rs, sizeof rs, ", resized to %dx%d", o.resize_h, o.resize_w);
        fprintf(stderr, "sqakd %s: %s: %d train + %d eval images streamed from disk, decoded batch by batch on %d "
                "loader thread%s%s\n", cmd, spec, train->n, *have_test ? test->n : 0, train->threads,
                train->threads == 1 ? "" : "s", rs);
    }
    return 0;
}

void sq_cli_apply_norm(sq_dataset *ds, const float *mean, const float *std)
{
    for (int i = 0; i < 4; i++) { ds->mean[i] = mean[i]; ds->std[i] = std[i]; }
}
