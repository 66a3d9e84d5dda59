/* train_common.c: flags and set-up shared by 'sqakd train' and 'sqakd distill'. */
#include "train_common.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int sq_cli_common_args(sq_cli_common *c, sq_arg *a)
{
    int n = 0;
    a[n++] = (sq_arg){"--data", SQ_ARG_STR, &c->data, 0, 0, "data SPEC: fashion-mnist, mnist:DIR, idx:IMAGES[,LABELS], cifar10:DIR, cifar100:DIR, folder:DIR"};
    a[n++] = (sq_arg){"--epochs", SQ_ARG_INT, &c->cfg.epochs, 1, 100000, "epochs"};
    a[n++] = (sq_arg){"--batch", SQ_ARG_INT, &c->cfg.batch, 1, 65536, "batch size"};
    a[n++] = (sq_arg){"--seed", SQ_ARG_U64, &c->cfg.seed, 0, 0, "random seed (init, shuffling, augmentation)"};
    a[n++] = (sq_arg){"--threads", SQ_ARG_INT, &c->cfg.threads, 1, 1024, "CPU threads (OpenMP)"};
    a[n++] = (sq_arg){"--out", SQ_ARG_STR, &c->out, 0, 0, "output directory (checkpoints, metrics.jsonl, command.txt)"};
    a[n++] = (sq_arg){"--resume", SQ_ARG_STR, &c->resume, 0, 0, "resume from DIR (its last.safetensors and last.state.safetensors)"};
    a[n++] = (sq_arg){"--device", SQ_ARG_STR, &c->device, 0, 0, "auto | cpu | cuda"};
    a[n++] = (sq_arg){"--sched", SQ_ARG_STR, &c->sched, 0, 0, "cosine | step | const (per epoch)"};
    a[n++] = (sq_arg){"--step-every", SQ_ARG_INT, &c->cfg.step_every, 1, 100000, "step schedule: epochs between decays"};
    a[n++] = (sq_arg){"--step-gamma", SQ_ARG_FLOAT, &c->cfg.step_gamma, 0, 1, "step schedule: decay factor"};
    a[n++] = (sq_arg){"--augment", SQ_ARG_STR, &c->augment, 0, 0, "none | flip | crop | crop,flip (default: crop,flip for 32x32 colour data, none otherwise)"};
    a[n++] = (sq_arg){"--log-every", SQ_ARG_INT, &c->cfg.log_every, 1, 1000000, "steps between loss read-backs"};
    a[n++] = (sq_arg){"--max-steps", SQ_ARG_INT, &c->cfg.max_steps_per_epoch, 0, 100000000, "at most N steps per epoch (0 = all)"};
    a[n++] = (sq_arg){"--holdout", SQ_ARG_FLOAT, &c->holdout, 0, 0.9, "evaluate on this fraction of the train split instead of the test split"};
    a[n++] = (sq_arg){"--quiet", SQ_ARG_FLAG, &c->cfg.quiet, 0, 0, "no progress output"};
    return n;
}

void sq_cli_common_defaults(sq_cli_common *c)
{
    memset(c, 0, sizeof *c);
    sq_train_cfg_defaults(&c->cfg);
    c->data = "fashion-mnist";
    c->device = "auto";
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

int sq_cli_prepare_out(const char *cmd, sq_cli_common *c, int argc, char **argv)
{
    if (!c->out) c->out = c->resume;
    if (!c->out) return 0;
    if (sq_cli_mkdirs(c->out)) return sq_cli_fail(cmd, "cannot create output directory '%s'", c->out);
    if (sq_cli_write_command(c->out, argc, argv, (unsigned long long)c->cfg.seed))
        return sq_cli_fail(cmd, "cannot write %s/command.txt", c->out);
    c->cfg.out_dir = c->out;
    return 0;
}

void sq_cli_cleanup_out(const sq_cli_common *c)
{
    if (!c->cfg.out_dir || c->resume) return;
    char p[4096];
    snprintf(p, sizeof p, "%s/last.safetensors", c->cfg.out_dir);
    FILE *f = fopen(p, "rb");
    if (f) { fclose(f); return; }   /* a good checkpoint exists: keep the run */
    snprintf(p, sizeof p, "%s/command.txt", c->cfg.out_dir);
    remove(p);
    snprintf(p, sizeof p, "%s/metrics.jsonl", c->cfg.out_dir);
    remove(p);
    rmdir(c->cfg.out_dir);
}

const sq_backend *sq_cli_backend(const char *cmd, const sq_cli_common *c)
{
    const sq_backend *be = sq_backend_get(c->device);
    if (!be) { sq_cli_fail(cmd, "%s", sq_last_error()); return NULL; }
    be->set_threads(c->cfg.threads);
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
