/* cli_data.h: dataset helpers shared by the subcommands. */
#ifndef SQAKD_CLI_DATA_H
#define SQAKD_CLI_DATA_H
#include "cli.h"
#include "sqakd/data.h"

/* the help of --resize and --loader-threads, shared by every command that opens data */
#define SQ_CLI_RESIZE_HELP "resize every image to HxW: the shorter side to min(H, W), then a centre crop (torchvision's " \
    "Resize(min(H, W)) + CenterCrop((H, W)), PIL's antialiased bilinear); needed for images of several sizes"
#define SQ_CLI_LOADER_THREADS_HELP "threads decoding the images of a folder: dataset (0 = auto: the cores this " \
    "process may use, at most 8); the batches do not depend on it"

/* "HxW" with H and W in 1..8192 into h, w; 0, or -1 when s is not that */
int sq_cli_parse_resize(const char *s, int *h, int *w);
/* The dataset options of --resize HxW (NULL: none) and --loader-threads N (0: auto); 0 or 2 (one
   line printed). */
int sq_cli_data_opts(const char *cmd, const char *resize, int loader_threads, sq_data_opts *o);

/* Opens SPEC's train split (with labels if train_labels) and an evaluation split: the SPEC's test
   split, or, when it has none (or holdout > 0), a seeded held-out fraction of the train split.
   The evaluation split is normalised with the train split's constants (its own are not
   computed) and, for a folder, has its channels (RGB when the train split is). opts: sq_cli_data_opts (NULL: none). Returns 0 or 2 (error printed). */
int sq_cli_open_data(const char *cmd, const char *spec, const sq_data_opts *opts, int train_labels, float holdout,
                     uint64_t seed, sq_dataset *train, sq_dataset *test, int *have_test);
void sq_cli_apply_norm(sq_dataset *ds, const float *mean, const float *std);
#endif
