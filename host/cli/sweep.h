/* sweep.h: 'sqakd sweep' — a bit-width / quantizer / seed sweep: its configuration (flags or a
   JSON file, saved as DIR/sweep.json), its tasks (one student each) and groups (students that
   share a teacher pass, run as one multi-student process), per-task result files, and the Slurm
   job-array script. */
#ifndef SQAKD_SWEEP_H
#define SQAKD_SWEEP_H
#include "distill_common.h"
#include "sqakd/json.h"

#define SQ_SWEEP_MAX_Q 8
#define SQ_SWEEP_MAX_BITS 16
#define SQ_SWEEP_MAX_SEEDS 16
#define SQ_SWEEP_MAX_TASKS (SQ_SWEEP_MAX_Q * SQ_SWEEP_MAX_BITS * SQ_SWEEP_MAX_SEEDS)

typedef struct sq_sweep {
    char model[32];             /* student architecture ("": the teacher's) */
    char data[1024];
    char teacher[1024];         /* a given teacher checkpoint, or "" when the sweep trains one */
    int train_teacher_epochs;
    int nq, nbits, nseeds;
    sq_quant_kind quant[SQ_SWEEP_MAX_Q];
    int wbits[SQ_SWEEP_MAX_BITS], abits[SQ_SWEEP_MAX_BITS];
    uint64_t seeds[SQ_SWEEP_MAX_SEEDS];
    int epochs, batch, threads, max_steps, group_size;
    float lr_model, lr_quant, alpha, temperature, holdout;
    char device[16], augment[32];
    char resize[32];            /* --resize HxW of every run ("": none) */
    char out[2048];             /* the sweep directory (absolute once resolved) */
    /* Slurm */
    char partition[64], time[32];
    int gpus, cpus_per_task, max_running;
    int ntasks;                 /* ranks per group (--ntasks-per-group): an N-rank data-parallel job, srun
                                   inside each array task (docs/scaling.md); 1: one process */
    int tensorboard;            /* every student's TensorBoard events in DIR/tasks/tensorboard/<task id>/ */
    /* the loss (issue 20): "kl" or "kl+squat" with SQuaT's weight and tap ("": the default tap) */
    char loss[16], squat_tap[80];
    float squat_weight;
    int per_channel;            /* per-output-channel weight quantizers for every student (0 or 1) */
} sq_sweep;

typedef struct sq_sweep_task {
    char id[64];                /* "<quantizer>_w<W>a<A>_s<seed>": DIR/tasks/<id>/ */
    int q, b, s;                /* indices into quant, wbits/abits, seeds */
    int group;
} sq_sweep_task;

void sq_sweep_defaults(sq_sweep *sw);
/* Reads a JSON configuration into sw (keys as written by sq_sweep_to_json; lists may also be
   comma-separated strings). 0, or 2 with an error naming the file and the key. */
int sq_sweep_load(const char *cmd, const char *path, sq_sweep *sw);
/* Canonical JSON of sw; training_only leaves out what does not change results (lists, grouping,
   threads, device, Slurm settings): two sweeps whose training JSON differ must not share a DIR. */
void sq_sweep_to_json(const sq_sweep *sw, int training_only, sq_jbuf *jb);
/* Parses list flags; 0 or 2 with an error printed. */
int sq_sweep_parse_quantizers(const char *cmd, const char *list, sq_sweep *sw);
int sq_sweep_parse_bits(const char *cmd, const char *list, sq_sweep *sw);
int sq_sweep_parse_seeds(const char *cmd, const char *list, sq_sweep *sw);

/* Tasks in order (seed, quantizer, bits) and their groups: each seed's students in chunks of
   group_size. Returns the number of tasks; *ngroups gets the number of groups. */
int sq_sweep_tasks(const sq_sweep *sw, sq_sweep_task *tasks, int *ngroups);
/* DIR/tasks/<id>/result.json exists */
int sq_sweep_task_done(const sq_sweep *sw, const char *id);
/* path helpers: DIR/tasks/<id>/<file> and the teacher checkpoint the students learn from */
void sq_sweep_task_path(const sq_sweep *sw, const char *id, const char *file, char *dst, size_t n);
void sq_sweep_teacher_ckpt(const sq_sweep *sw, char *dst, size_t n);

/* The strings that reach a generated script, checked: NULL when s is fine, else what is allowed
   (for an error line). A partition: names of letters, digits, '.', '_' and '-', several separated
   by commas ("" is no partition). A time in one of Slurm's formats (minutes, minutes:seconds,
   hours:minutes:seconds, days-hours, days-hours:minutes, days-hours:minutes:seconds) or
   UNLIMITED / INFINITE. A path (or any other string of the configuration): no control
   characters (bytes below 0x20, and 0x7f). */
const char *sq_sweep_bad_partition(const char *s);
const char *sq_sweep_bad_time(const char *s);
const char *sq_sweep_bad_text(const char *s);
/* s on one line for an error message: printable ASCII as it is, other bytes as \xHH, cut with
   "..." to fit n */
void sq_sweep_show(const char *s, char *dst, size_t n);
/* What --slurm needs beyond sq_sweep_bad_*: the sweep directory has no backslash (in an sbatch
   --output path it turns the %-patterns off) and bin, the executable the jobs run, is a path
   without control characters. 0, or 2 with an error printed. */
int sq_sweep_slurm_check(const char *cmd, const sq_sweep *sw, const char *bin);

/* Slurm: writes DIR/sweep.sbatch (an array over the pending groups) and, when the teacher must be
   trained first, DIR/teacher.sbatch; submits them with sbatch unless dry_run (the array after the
   teacher job with --dependency=afterok). bin is the sqakd executable the jobs run. Every value
   is checked again before it is written: the partition and time by the rules above, paths
   double-quoted (\" and %% inside) in #SBATCH lines, as sbatch parses them, and single-quoted in
   the bash body. 0 or 2. */
int sq_sweep_slurm(const char *cmd, const sq_sweep *sw, const char *bin, const int *pending, int npending,
                   int teacher_job, int dry_run);
/* "0-3", "1,3-5": a sorted list of group indices as an sbatch --array value; 0, or -1 (dst cut
   short) when it needs more than cap bytes */
int sq_sweep_array_spec(const int *groups, int n, char *dst, size_t cap);
#endif
