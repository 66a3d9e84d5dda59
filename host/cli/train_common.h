/* train_common.h: flags and set-up shared by 'sqakd train' and 'sqakd distill'. */
#ifndef SQAKD_TRAIN_COMMON_H
#define SQAKD_TRAIN_COMMON_H
#include "cli.h"
#include "sqakd/import.h"
#include "sqakd/train.h"

struct sq_json;
typedef struct sq_cli_common {
    sq_train_cfg cfg;
    const char *data, *out, *resume, *device, *backend_opt, *sched, *augment;
    const char *resize;            /* --resize HxW (NULL: none) */
    int loader_threads;            /* --loader-threads (0: auto) */
    float holdout;
    int overwrite;
    int allow_qteacher;            /* distill --allow-quantized-teacher */
    char out_buf[128];             /* the default --out (sq_cli_default_out) */
    int out_defaulted;             /* out is out_buf: said once the directory is made */
    sq_cli_import imp;             /* --input/--mean/--std for an ONNX --teacher or --init */
    sq_import_opts io;             /* parsed from imp by sq_cli_common_finish's caller (sq_cli_import_opts) */
    char backend_opt_buf[160];     /* the options in force, canonical (sq_backend_opts_format) */
    char *run_config;              /* owned: cfg.run_config points here */
    struct sq_json *recorded;      /* owned: the configuration a resumed run was started with */
    float dist_timeout;            /* --dist-timeout: seconds a collective waits for the other ranks */
    int rank, world;               /* this process in a data-parallel run (0 and 1 alone) */
} sq_cli_common;

void sq_cli_common_defaults(sq_cli_common *c);
/* fills a[] with the shared flags; returns how many */
int sq_cli_common_args(sq_cli_common *c, sq_arg *a, int room); /* room: the entries left in a */
/* resolves string flags (schedule, augmentation) once the train split is known; 0 or 2 */
int sq_cli_common_finish(const char *cmd, sq_cli_common *c, const sq_dataset *train);
/* Creates --out (or the --resume directory), owns it (sq_cli_open_run_dir) and writes command.txt
   (on --resume, appends the resuming command to it); 0 or 2 */
int sq_cli_prepare_out(const char *cmd, sq_cli_common *c, int argc, char **argv);
/* Without --out and --resume: the run goes to runs/<cmd>-<YYYYmmdd>-<HHMMSS>[-N]/ (relative to the
   working directory; -N when that exists already), said in one line on stderr when the directory
   is made (sq_cli_prepare_out, sq_cli_say_default_out). */
void sq_cli_default_out(const char *cmd, sq_cli_common *c);
void sq_cli_say_default_out(const char *cmd, const sq_cli_common *c);
/* Creates dir and takes its lock for the life of the process (a run already holding it is named
   in the refusal), removes temporary files a killed run left, and unless resume, refuses a
   directory that holds a run (--overwrite removes that run's files instead). 0 or 2. */
int sq_cli_open_run_dir(const char *cmd, const char *dir, int resume, int overwrite);
/* The same refusals as sq_cli_open_run_dir (held by another run, holds a run, cannot be made),
   checked before any work without creating or locking anything; 0 or 2. */
int sq_cli_check_run_dir(const char *cmd, const char *dir, int resume, int overwrite);
/* dir's lock (DIR/.sqakd.lock, flock), held until sq_cli_unlock_dir or the process ends; taking one
   this process holds already succeeds. 0 or 2 (one line printed). */
int sq_cli_lock_dir(const char *cmd, const char *dir);
void sq_cli_unlock_dir(const char *dir, int remove_file);
/* releases every run-directory lock this process holds (the lock files stay, as after an exit):
   for a process that runs several commands in turn (sq_api_run, the Python package), called when
   a command has returned, so a finished run is not held for the life of the process */
void sq_cli_unlock_all(void);
/* On --resume: reads the run configuration recorded in state and applies it to spec's flags
   (sq_args_apply_recorded: flags not given take the recorded values, conflicting ones are refused).
   A state of an earlier version without one is accepted with a note. 0 or 2. */
int sq_cli_resume_config(const char *cmd, sq_cli_common *c, const sq_arg *spec, int nspec, const char *state);
/* the run configuration of spec's flags (plus one extra key when not NULL) into c->run_config and
   c->cfg.run_config */
void sq_cli_make_config(sq_cli_common *c, const sq_arg *spec, int nspec, const char *extra_key, const char *extra_val);
/* on --resume: refuses (one line) when the recorded configuration has key with a value other than
   value; 0 or 2 */
int sq_cli_check_recorded(const char *cmd, const sq_cli_common *c, const char *key, const char *value);
void sq_cli_common_free(sq_cli_common *c);
/* removes what prepare_out created when a run ends before its first checkpoint */
void sq_cli_cleanup_out(const sq_cli_common *c);
/* the backend named by --device with --threads applied; NULL after printing an error. In a process
   started by a launcher (sq_cli_launched) it first joins the data-parallel run: rank and world,
   cfg.comm, and on ranks other than 0 no progress output, TensorBoard or run directory. */
const sq_backend *sq_cli_backend(const char *cmd, sq_cli_common *c);
/* the batch each rank's models are planned for: --batch / world (sq_cli_backend first) */
int sq_cli_plan_batch(const sq_cli_common *c);
/* runs the training loop; on failure prints the error and removes what prepare_out created.
   Returns the exit status (0 or 1). */
int sq_cli_run(const char *cmd, sq_cli_common *c, sq_train_io *io, const char *what);
#endif
