/* cli.h: subcommands (one file each) and the small declarative flag parser they share. */
#ifndef SQAKD_CLI_H
#define SQAKD_CLI_H
#include "sqakd/common.h"

typedef enum { SQ_ARG_INT, SQ_ARG_FLOAT, SQ_ARG_STR, SQ_ARG_FLAG, SQ_ARG_U64 } sq_arg_type;

typedef struct sq_arg {
    const char *name;     /* "--epochs" */
    sq_arg_type type;
    void *dst;            /* int*, float*, const char**, int* (flag), uint64_t* */
    double lo, hi;        /* inclusive range for numbers */
    const char *help;
} sq_arg;

/* Parses argv[1..]; positional arguments are returned in pos (at most maxpos).
   Returns 0 on success, 1 if --help was printed (exit 0), 2 on an error (one line printed). */
int sq_args_parse(const char *cmd, const char *usage, int argc, char **argv, const sq_arg *spec, int nspec,
                  const char **pos, int maxpos, int *npos);
void sq_args_help(const char *cmd, const char *usage, const sq_arg *spec, int nspec);
/* the help text of --backend-opt, shared by every command that takes it */
#define SQ_BACKEND_OPT_HELP "how the backend runs, KEY=VALUE,...: graph=1 (CUDA graphs), stage=1 (async input staging), " \
    "tf32=1, conv-algo=heuristic|find, deterministic=1 (cuDNN), host-profile=0 (the CPU ignores these), " \
    "bf16-bwd=1 (CPU: BF16 backward of quantized convolutions; defaults shown)"
/* a[(*n)++] = v in a flag table of cap entries; a table that outgrows its array stops the program
   here, before it writes past it (make the array larger) */
void sq_args_put(sq_arg *a, int *n, int cap, sq_arg v);
/* sq_args_put into the array `a` in scope, counting in `n` */
#define SQ_ARG_PUT(...) sq_args_put(a, &n, (int)(sizeof a / sizeof a[0]), (sq_arg){__VA_ARGS__})
/* 1 when the last sq_args_parse was given the flag whose destination is dst */
int sq_args_given(const void *dst);
/* The run configuration: appends "FLAG": "value" (null for an unset string) to the JSON object
   being written in b, for every flag of spec except those named in skip (a NULL-terminated list
   of flags that do not shape a run's results, such as --threads). */
struct sq_jbuf;
void sq_args_config_put(struct sq_jbuf *b, const sq_arg *spec, int nspec, const char *const *skip);
/* On --resume: every flag recorded in rec (a configuration written by sq_args_config_put) that was
   not given takes its recorded value; a given flag whose value differs is refused with one line
   naming it, unless it is in changeable. dir names the run in messages. 0 or 2. */
struct sq_json;
int sq_args_apply_recorded(const char *cmd, const sq_arg *spec, int nspec, const struct sq_json *rec,
                           const char *const *changeable, const char *dir);
/* prints "sqakd CMD: <msg>" to stderr and returns 2 */
int sq_cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* writes "<out>/command.txt" (atomically) holding the exact command line, quoted for a shell, the
   seed and, when config is not NULL, a "config {...}" line (the run configuration: every flag's
   value in force); with append, adds a "resumed: sqakd ..." line to the one there instead */
int sq_cli_write_command(const char *out_dir, int argc, char **argv, unsigned long long seed, int append,
                         const char *config);
/* creates DIR (and parents); 0 on success */
int sq_cli_mkdirs(const char *dir);

/* --input CxHxW (with_input), --mean, --std: how an ONNX model path is imported (import.h) */
typedef struct sq_cli_import { const char *input, *mean, *std; } sq_cli_import;
int sq_cli_import_args(sq_cli_import *ci, sq_arg *a, int room, int with_input);
struct sq_import_opts;
int sq_cli_import_opts(const char *cmd, const sq_cli_import *ci, struct sq_import_opts *o);   /* 0 or 2 */
/* "CxHxW" into c, h, w; 0 or 2 (one line naming flag) */
int sq_cli_parse_shape(const char *cmd, const char *flag, const char *s, int *c, int *h, int *w);

/* the whole command line (argv[0] is the program name): the exit status of the command */
int sq_cli_main(int argc, char **argv);
int sq_cmd_import(int argc, char **argv);
int sq_cmd_infer(int argc, char **argv);
/* Data parallelism: the world size of the launcher (mpirun, srun) that started this process, 0
   when none did (the executable reads its environment; library code never does). train and
   distill then initialise MPI (host/dist) and take rank and size from it. */
void sq_cli_set_launched(int world);
int sq_cli_launched(void);
int sq_cmd_train(int argc, char **argv);
int sq_cmd_distill(int argc, char **argv);
int sq_cmd_eval(int argc, char **argv);
int sq_cmd_info(int argc, char **argv);
int sq_cmd_export(int argc, char **argv);
int sq_cmd_models(int argc, char **argv);
int sq_cmd_bench(int argc, char **argv);
int sq_cmd_bench_kernels(int argc, char **argv);
int sq_cmd_bench_step(int argc, char **argv);
int sq_cmd_bench_loader(int argc, char **argv);
int sq_cmd_sweep(int argc, char **argv);
int sq_cmd_report(int argc, char **argv);
#endif
