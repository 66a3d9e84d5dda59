/* train_common.c: flags and set-up shared by 'sqakd train' and 'sqakd distill'. */
#include "train_common.h"
#include "cli_data.h"
#include "io/atomic_write.h"
#include "sqakd/dist.h"
#include "sqakd/json.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int sq_cli_common_args(sq_cli_common *c, sq_arg *a, int room)
{
    int n = 0;
    sq_args_put(a, &n, room, (sq_arg){"--data", SQ_ARG_STR, &c->data, 0, 0, "data SPEC: fashion-mnist, mnist:DIR, idx:IMAGES[,LABELS], cifar10:DIR, cifar100:DIR, folder:DIR, npy:IMAGES.npy[,LABELS.npy]"});
    sq_args_put(a, &n, room, (sq_arg){"--epochs", SQ_ARG_INT, &c->cfg.epochs, 1, 100000, "epochs"});
    sq_args_put(a, &n, room, (sq_arg){"--batch", SQ_ARG_INT, &c->cfg.batch, 1, 65536, "batch size"});
    sq_args_put(a, &n, room, (sq_arg){"--seed", SQ_ARG_U64, &c->cfg.seed, 0, 0, "random seed (init, shuffling, augmentation)"});
    sq_args_put(a, &n, room, (sq_arg){"--threads", SQ_ARG_INT, &c->cfg.threads, 1, 1024, "CPU threads (OpenMP; by default the CPUs this process may use)"});
    sq_args_put(a, &n, room, (sq_arg){"--out", SQ_ARG_STR, &c->out, 0, 0, "output directory (checkpoints, metrics.jsonl, command.txt) (default: runs/<command>-<date>-<time>/)"});
    sq_args_put(a, &n, room, (sq_arg){"--resume", SQ_ARG_STR, &c->resume, 0, 0, "resume from DIR (its last.safetensors and last.state.safetensors)"});
    sq_args_put(a, &n, room, (sq_arg){"--device", SQ_ARG_STR, &c->device, 0, 0, "auto | cpu | cuda"});
    sq_args_put(a, &n, room, (sq_arg){"--backend-opt", SQ_ARG_STR, &c->backend_opt, 0, 0, SQ_BACKEND_OPT_HELP});
    sq_args_put(a, &n, room, (sq_arg){"--sched", SQ_ARG_STR, &c->sched, 0, 0, "cosine | step | const (per epoch; default cosine)"});
    sq_args_put(a, &n, room, (sq_arg){"--step-every", SQ_ARG_INT, &c->cfg.step_every, 1, 100000, "step schedule: epochs between decays"});
    sq_args_put(a, &n, room, (sq_arg){"--step-gamma", SQ_ARG_FLOAT, &c->cfg.step_gamma, 0, 1, "step schedule: decay factor"});
    sq_args_put(a, &n, room, (sq_arg){"--augment", SQ_ARG_STR, &c->augment, 0, 0, "none | flip | crop | crop,flip (default: crop,flip for 32x32 colour data, none otherwise)"});
    sq_args_put(a, &n, room, (sq_arg){"--log-every", SQ_ARG_INT, &c->cfg.log_every, 1, 1000000, "steps between loss read-backs"});
    sq_args_put(a, &n, room, (sq_arg){"--max-steps", SQ_ARG_INT, &c->cfg.max_steps_per_epoch, 0, 100000000, "at most N steps per epoch (0 = all)"});
    sq_args_put(a, &n, room, (sq_arg){"--holdout", SQ_ARG_FLOAT, &c->holdout, 0, 0.9, "evaluate on this fraction of the train split instead of the test split"});
    sq_args_put(a, &n, room, (sq_arg){"--resize", SQ_ARG_STR, &c->resize, 0, 0, SQ_CLI_RESIZE_HELP});
    sq_args_put(a, &n, room, (sq_arg){"--loader-threads", SQ_ARG_INT, &c->loader_threads, 0, SQ_LOADER_THREADS_MAX, SQ_CLI_LOADER_THREADS_HELP});
    sq_args_put(a, &n, room, (sq_arg){"--quiet", SQ_ARG_FLAG, &c->cfg.quiet, 0, 0, "no progress output"});
    sq_args_put(a, &n, room, (sq_arg){"--overwrite", SQ_ARG_FLAG, &c->overwrite, 0, 0, "replace the run already in --out (without it such a directory is refused)"});
    sq_args_put(a, &n, room, (sq_arg){"--max-loss-ratio", SQ_ARG_FLOAT, &c->cfg.max_loss_ratio, 0, 1e30, "stop when the loss exceeds this times the run's first loss (default 100; 0: only non-finite losses stop)"});
    sq_args_put(a, &n, room, (sq_arg){"--tensorboard", SQ_ARG_FLAG, &c->cfg.tensorboard, 0, 0, "TensorBoard event files in OUT/tensorboard/ (OUT/tensorboard/<student>/ with --students): the loss of each --log-every window, every metrics.jsonl value per epoch; kept on --resume"});
    sq_args_put(a, &n, room, (sq_arg){"--sync-bn", SQ_ARG_FLAG, &c->cfg.sync_bn, 0, 0, "data-parallel runs (mpirun/srun): BatchNorm statistics over the global batch of all ranks (default: each rank's own part)"});
    sq_args_put(a, &n, room, (sq_arg){"--dist-bucket-mb", SQ_ARG_FLOAT, &c->cfg.dist_bucket_mb, 0.0001, 65536, "data-parallel runs: MiB of gradients per all-reduce, each started during the backward as soon as its layers' gradients are final (default 4)"});
    sq_args_put(a, &n, room, (sq_arg){"--dist-timeout", SQ_ARG_FLOAT, &c->dist_timeout, 1, 1e7, "data-parallel runs: seconds a rank waits for the others in a collective before the whole job is stopped (default 600)"});
    n += sq_cli_import_args(&c->imp, a + n, room - n, 1);
    return n;
}

void sq_cli_common_defaults(sq_cli_common *c)
{
    memset(c, 0, sizeof *c);
    sq_train_cfg_defaults(&c->cfg);
    c->data = "fashion-mnist";
    c->device = "auto";
    c->dist_timeout = SQ_DIST_TIMEOUT_DEFAULT;
    c->world = 1;
}

int sq_cli_common_finish(const char *cmd, sq_cli_common *c, const sq_dataset *train)
{
    sq_train_cfg *cfg = &c->cfg;
    if (!c->sched || !strcmp(c->sched, "cosine")) cfg->sched = SQ_SCHED_COSINE;
    else if (!strcmp(c->sched, "step")) cfg->sched = SQ_SCHED_STEP;
    else if (!strcmp(c->sched, "const")) cfg->sched = SQ_SCHED_CONST;
    else return sq_cli_fail(cmd, "--sched must be cosine, step or const, got '%s'", c->sched);
    if (!c->augment) {
        int colour32 = train && train->c == 3 && train->h == 32 && train->w == 32;
        cfg->crop_pad = colour32 ? 4 : 0;
        cfg->flip = colour32;
    } else if (!strcmp(c->augment, "none")) {
        cfg->crop_pad = 0; cfg->flip = 0;
    } else if (!strcmp(c->augment, "flip")) {
        cfg->crop_pad = 0; cfg->flip = 1;
    } else if (!strcmp(c->augment, "crop")) {
        cfg->crop_pad = 4; cfg->flip = 0;
    } else if (!strcmp(c->augment, "crop,flip") || !strcmp(c->augment, "flip,crop")) {
        cfg->crop_pad = 4; cfg->flip = 1;
    } else {
        return sq_cli_fail(cmd, "--augment must be none, flip, crop or crop,flip, got '%s'", c->augment);
    }
    return 0;
}

/* ---- run directories: owned through a lock held for the life of the process ---- */
#define LOCK_NAME ".sqakd.lock"

typedef struct { dev_t dev; ino_t ino; int fd; } held_lock;
static held_lock g_locks[160]; /* the students of a run, with room for in-process tests */
static int g_nlocks;

/* the refusal of a directory whose lock file fd another run holds, naming the holder (the first
   line of the lock file, escaped: it is text from a file); returns 2 */
static int refuse_busy(const char *cmd, const char *dir, int fd)
{
    char raw[512] = "", holder[600];
    ssize_t got = pread(fd, raw, sizeof raw - 1, 0);
    raw[got > 0 ? got : 0] = 0;
    raw[strcspn(raw, "\n")] = 0;
    sq_printable(raw, holder, sizeof holder);
    return sq_cli_fail(cmd, "%s is in use by another run (%s); wait for it to end, or use another --out", dir,
                       holder[0] ? holder : "no details in " LOCK_NAME);
}

int sq_cli_lock_dir(const char *cmd, const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/" LOCK_NAME, dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return sq_cli_fail(cmd, "cannot open the lock file %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb)) {
        int e = errno;
        close(fd);
        return sq_cli_fail(cmd, "cannot stat %s: %s", path, strerror(e));
    }
    for (int i = 0; i < g_nlocks; i++)
        if (g_locks[i].dev == sb.st_dev && g_locks[i].ino == sb.st_ino) { close(fd); return 0; } /* ours already */
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        int e = errno, rc = e == EWOULDBLOCK ? refuse_busy(cmd, dir, fd)
                                             : sq_cli_fail(cmd, "cannot lock %s: %s", path, strerror(e));
        close(fd);
        return rc;
    }
    if (g_nlocks == (int)(sizeof g_locks / sizeof g_locks[0])) {
        close(fd);
        return sq_cli_fail(cmd, "too many run directories locked by one process");
    }
    char host[128] = "?", when[64] = "?", line[512];
    gethostname(host, sizeof host - 1);
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    int len = snprintf(line, sizeof line, "sqakd %s, pid %ld on %s since %s\n", cmd, (long)getpid(), host, when);
    if (ftruncate(fd, 0) == 0 && len > 0) {
        ssize_t w = pwrite(fd, line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1, 0);
        (void)w; /* the details are a courtesy; the lock is what counts */
    }
    g_locks[g_nlocks++] = (held_lock){sb.st_dev, sb.st_ino, fd};
    return 0;
}

void sq_cli_unlock_dir(const char *dir, int remove_file)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/" LOCK_NAME, dir);
    struct stat sb;
    if (lstat(path, &sb)) return;
    for (int i = 0; i < g_nlocks; i++) {
        if (g_locks[i].dev != sb.st_dev || g_locks[i].ino != sb.st_ino) continue;
        if (remove_file) unlink(path);
        close(g_locks[i].fd);
        g_locks[i] = g_locks[--g_nlocks];
        return;
    }
}

void sq_cli_unlock_all(void)
{
    while (g_nlocks > 0) close(g_locks[--g_nlocks].fd);
}

static int holds_lock(const char *dir);

static int file_exists(const char *dir, const char *name)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat sb;
    return lstat(p, &sb) == 0;
}

static const char *const RUN_FILES[] = {"last.state.safetensors", "last.safetensors", "best.safetensors",
                                        "metrics.jsonl", "command.txt", NULL};

/* 1 when dir holds a committed run (the first three of RUN_FILES) */
static int holds_run(const char *dir)
{
    int held = 0;
    for (int i = 0; i < 3; i++) held |= file_exists(dir, RUN_FILES[i]);
    return held;
}

static int refuse_held(const char *cmd, const char *dir)
{
    return sq_cli_fail(cmd, "%s already holds a run (last.state.safetensors, last.safetensors, ...): continue it with "
                       "--resume %s, replace it with --overwrite, or choose another --out", dir, dir);
}

int sq_cli_open_run_dir(const char *cmd, const char *dir, int resume, int overwrite)
{
    if (sq_cli_mkdirs(dir)) return sq_cli_fail(cmd, "cannot create output directory '%s': %s", dir, strerror(errno));
    if (sq_cli_lock_dir(cmd, dir)) return 2;
    sq_io_remove_stale_temps(dir); /* only this process writes here now */
    if (resume) return 0;
    if (!holds_run(dir)) return 0;
    if (!overwrite) {
        sq_cli_unlock_dir(dir, 0);
        return refuse_held(cmd, dir);
    }
    for (int i = 0; RUN_FILES[i]; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, RUN_FILES[i]);
        if (unlink(p) && errno != ENOENT)
            return sq_cli_fail(cmd, "--overwrite: cannot remove %s: %s", p, strerror(errno));
    }
    return 0;
}

int sq_cli_check_run_dir(const char *cmd, const char *dir, int resume, int overwrite)
{
    struct stat sb;
    if (stat(dir, &sb)) {
        if (errno == ENOENT) return 0;
        return sq_cli_fail(cmd, "cannot create output directory '%s': %s", dir, strerror(errno));
    }
    if (!S_ISDIR(sb.st_mode)) return sq_cli_fail(cmd, "cannot create output directory '%s': %s", dir, strerror(ENOTDIR));
    char path[4200];
    snprintf(path, sizeof path, "%s/" LOCK_NAME, dir);
    if (!holds_lock(dir)) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0) {
            int busy = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
            int rc = busy ? refuse_busy(cmd, dir, fd) : 0;
            close(fd); /* releases the shared lock taken to test it */
            if (rc) return rc;
        }
    }
    return resume || overwrite || !holds_run(dir) ? 0 : refuse_held(cmd, dir);
}

void sq_cli_default_out(const char *cmd, sq_cli_common *c)
{
    if (c->out || c->resume) return;
    time_t now = time(NULL);
    struct tm tmv;
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime_r(&now, &tmv));
    struct stat sb;
    snprintf(c->out_buf, sizeof c->out_buf, "runs/%s-%s", cmd, stamp);
    for (int k = 2; lstat(c->out_buf, &sb) == 0 && k < 1000; k++)
        snprintf(c->out_buf, sizeof c->out_buf, "runs/%s-%s-%d", cmd, stamp, k);
    c->out = c->out_buf;
    c->out_defaulted = 1;
}

void sq_cli_say_default_out(const char *cmd, const sq_cli_common *c)
{
    if (c->out_defaulted) fprintf(stderr, "sqakd %s: no --out given: this run goes to %s/\n", cmd, c->out);
}

int sq_cli_prepare_out(const char *cmd, sq_cli_common *c, int argc, char **argv)
{
    if (c->rank != 0) return 0; /* a data-parallel run's other ranks write nothing */
    if (!c->out) c->out = c->resume;
    if (!c->out) return 0;
    if (sq_cli_open_run_dir(cmd, c->out, c->resume != NULL, c->overwrite)) return 2;
    sq_cli_say_default_out(cmd, c);
    if (sq_cli_write_command(c->out, argc, argv, (unsigned long long)c->cfg.seed, c->resume != NULL, c->run_config))
        return sq_cli_fail(cmd, "cannot write %s/command.txt: %s", c->out, sq_last_error());
    c->cfg.out_dir = c->out;
    return 0;
}

/* 1 when this process holds dir's lock */
static int holds_lock(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/" LOCK_NAME, dir);
    struct stat sb;
    if (lstat(path, &sb)) return 0;
    for (int i = 0; i < g_nlocks; i++)
        if (g_locks[i].dev == sb.st_dev && g_locks[i].ino == sb.st_ino) return 1;
    return 0;
}

void sq_cli_cleanup_out(const sq_cli_common *c)
{
    if (!c->cfg.out_dir || c->resume || !holds_lock(c->cfg.out_dir)) return; /* never another run's files */
    char p[4096];
    snprintf(p, sizeof p, "%s/last.safetensors", c->cfg.out_dir);
    FILE *f = fopen(p, "rb");
    if (f) { fclose(f); return; }   /* a good checkpoint exists: keep the run */
    snprintf(p, sizeof p, "%s/command.txt", c->cfg.out_dir);
    remove(p);
    snprintf(p, sizeof p, "%s/metrics.jsonl", c->cfg.out_dir);
    remove(p);
    sq_cli_unlock_dir(c->cfg.out_dir, 1);
    rmdir(c->cfg.out_dir);
}

/* ---- the run configuration, recorded and compared on --resume ---- */
static const char *const NOT_RECORDED[] = {"--out", "--resume", "--overwrite", "--quiet", "--log-every", NULL};
static const char *const CHANGEABLE[] = {"--epochs", "--threads", "--device", "--backend-opt",
                                         "--max-loss-ratio", "--teacher", "--students", "--tensorboard", "--loader-threads",
                                         "--dist-timeout", "--dist-bucket-mb", NULL};

int sq_cli_resume_config(const char *cmd, sq_cli_common *c, const sq_arg *spec, int nspec, const char *state)
{
    char *text = NULL;
    if (sq_ckpt_read_config(state, &text)) return sq_cli_fail(cmd, "--resume: %s", sq_last_error());
    if (!text) {
        if (!c->cfg.quiet)
            fprintf(stderr, "sqakd %s: --resume: %s records no run configuration (written by an earlier version): "
                    "the flags given now are used as they are\n", cmd, state);
        return 0;
    }
    sq_json *rec = NULL;
    sq_json_error je;
    if (sq_json_parse(text, strlen(text), &rec, &je)) {
        free(text);
        return sq_cli_fail(cmd, "--resume: the run configuration recorded in %s is not valid JSON", state);
    }
    free(text);
    int rc = sq_args_apply_recorded(cmd, spec, nspec, rec, CHANGEABLE, c->resume);
    c->recorded = rec;
    return rc;
}

void sq_cli_make_config(sq_cli_common *c, const sq_arg *spec, int nspec, const char *extra_key, const char *extra_val)
{
    /* the backend options as they are in force, every key (a bad value is refused at set-up) */
    sq_backend_opts o = SQ_BACKEND_OPTS_DEFAULT;
    if (!sq_backend_opts_parse(c->backend_opt, &o)) {
        sq_backend_opts_format(&o, c->backend_opt_buf, sizeof c->backend_opt_buf);
        c->backend_opt = c->backend_opt_buf;
    }
    sq_jbuf b;
    sq_jbuf_init(&b);
    sq_jbuf_begin_obj(&b);
    sq_args_config_put(&b, spec, nspec, NOT_RECORDED);
    if (extra_key) sq_jbuf_kv_str(&b, extra_key, extra_val);
    sq_jbuf_end_obj(&b);
    free(c->run_config);
    c->run_config = strdup(sq_jbuf_cstr(&b));
    sq_jbuf_free(&b);
    c->cfg.run_config = c->run_config;
}

int sq_cli_check_recorded(const char *cmd, const sq_cli_common *c, const char *key, const char *value)
{
    const char *want = c->recorded ? sq_json_str(sq_json_get(c->recorded, key)) : NULL;
    if (!want || !value || !strcmp(want, value)) return 0;
    return sq_cli_fail(cmd, "--resume: the run in %s was started with %s '%s', this one has '%s'; resume with the "
                       "same, or start a new run with another --out", c->resume, key, want, value);
}

void sq_cli_common_free(sq_cli_common *c)
{
    free(c->run_config);
    c->run_config = NULL;
    c->cfg.run_config = NULL;
    sq_json_free(c->recorded);
    c->recorded = NULL;
}

static int g_launched;
void sq_cli_set_launched(int world) { g_launched = world; }
int sq_cli_launched(void) { return g_launched; }

int sq_cli_plan_batch(const sq_cli_common *c) { return c->cfg.batch / (c->world > 0 ? c->world : 1); }

/* joins the data-parallel run when a launcher started this process; 0 or 2 */
static int dist_setup(const char *cmd, sq_cli_common *c)
{
    if (!g_launched) return 0;
    sq_dist_set_timeout(c->dist_timeout);
    if (sq_dist_init(g_launched)) return sq_cli_fail(cmd, "%s", sq_last_error());
    const sq_comm *comm = sq_dist_comm();
    c->rank = comm->rank;
    c->world = comm->size;
    if (c->world < 2) return 0;
    sq_backend_cuda_local_rank(comm->local_rank); /* one GPU per rank, if the CUDA backend is opened */
    if (c->cfg.batch % c->world)
        return sq_cli_fail(cmd, "--batch %d is not a multiple of the %d ranks (every rank takes an equal part of the "
                           "global batch): use a multiple of %d", c->cfg.batch, c->world, c->world);
    c->cfg.comm = comm;
    if (c->rank != 0) { /* rank 0 alone writes checkpoints, metrics and progress */
        c->cfg.quiet = 1;
        c->cfg.tensorboard = 0;
    }
    return 0;
}

const sq_backend *sq_cli_backend(const char *cmd, sq_cli_common *c)
{
    if (dist_setup(cmd, c)) return NULL;
    const sq_backend *be = sq_backend_open(c->device, c->backend_opt, c->cfg.threads);
    if (!be) sq_cli_fail(cmd, "%s", sq_last_error());
    return be;
}

int sq_cli_run(const char *cmd, sq_cli_common *c, sq_train_io *io, const char *what)
{
    if (sq_train_run(&c->cfg, io)) {
        sq_cli_fail(cmd, "%s", sq_last_error());
        sq_cli_cleanup_out(c);
        return 1;
    }
    if (c->cfg.out_dir && !c->cfg.quiet) fprintf(stderr, "sqakd %s: done; %s in %s/\n", cmd, what, c->cfg.out_dir);
    return 0;
}
