/* data_open.c: opening the train and evaluation splits of a data SPEC for the subcommands. */
#include "cli_data.h"
#include <stdio.h>
#include <string.h>

int sq_cli_open_data(const char *cmd, const char *spec, int train_labels, float holdout, uint64_t seed,
                     sq_dataset *train, sq_dataset *test, int *have_test)
{
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    *have_test = 0;
    sq_dataset full;
    if (sq_dataset_open(spec, SQ_SPLIT_TRAIN, train_labels, &full))
        return sq_cli_fail(cmd, "%s", sq_last_error());
    /* the evaluation split carries labels when they exist: they are only used to report accuracy */
    sq_status st = sq_dataset_open(spec, SQ_SPLIT_TEST, 1, test);
    if (st == SQ_OK && holdout <= 0) {
        *train = full;
        *have_test = 1;
        return 0;
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
    return 0;
}

void sq_cli_apply_norm(sq_dataset *ds, const float *mean, const float *std)
{
    for (int i = 0; i < 4; i++) { ds->mean[i] = mean[i]; ds->std[i] = std[i]; }
}
