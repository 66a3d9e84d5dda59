/* train_common.h: flags and set-up shared by 'sqakd train' and 'sqakd distill'. */
#ifndef SQAKD_TRAIN_COMMON_H
#define SQAKD_TRAIN_COMMON_H
#include "cli.h"
#include "sqakd/train.h"

typedef struct sq_cli_common {
    sq_train_cfg cfg;
    const char *data, *out, *resume, *device, *sched, *augment;
    float holdout;
} sq_cli_common;

void sq_cli_common_defaults(sq_cli_common *c);
/* fills a[] with the shared flags; returns how many */
int sq_cli_common_args(sq_cli_common *c, sq_arg *a);
/* resolves string flags (schedule, augmentation) once the train split is known; 0 or 2 */
int sq_cli_common_finish(const char *cmd, sq_cli_common *c, const sq_dataset *train);
/* creates --out (or the --resume directory) and writes command.txt; 0 or 2 */
int sq_cli_prepare_out(const char *cmd, sq_cli_common *c, int argc, char **argv);
/* removes what prepare_out created when a run ends before its first checkpoint */
void sq_cli_cleanup_out(const sq_cli_common *c);
/* the backend named by --device with --threads applied; NULL after printing an error */
const sq_backend *sq_cli_backend(const char *cmd, const sq_cli_common *c);
/* runs the training loop; on failure prints the error and removes what prepare_out created.
   Returns the exit status (0 or 1). */
int sq_cli_run(const char *cmd, sq_cli_common *c, sq_train_io *io, const char *what);
#endif
