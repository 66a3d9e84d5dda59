/* cli_data.h: dataset helpers shared by the subcommands. */
#ifndef SQAKD_CLI_DATA_H
#define SQAKD_CLI_DATA_H
#include "cli.h"
#include "sqakd/data.h"

/* Opens SPEC's train split (with labels if train_labels) and an evaluation split: the SPEC's test
   split, or, when it has none (or holdout > 0), a seeded held-out fraction of the train split.
   Returns 0 or 2 (error printed). */
int sq_cli_open_data(const char *cmd, const char *spec, int train_labels, float holdout, uint64_t seed,
                     sq_dataset *train, sq_dataset *test, int *have_test);
void sq_cli_apply_norm(sq_dataset *ds, const float *mean, const float *std);
#endif
