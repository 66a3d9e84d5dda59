/* cmd_bench_loader.c: 'sqakd bench loader' — images/s of the training loader alone (reading,
   decoding where the data is streamed, the run's augmentation, normalisation), with nothing
   consuming the batches, so that it can be compared with 'sqakd bench step': a loader delivering
   far more images per second per thread than the step trains never shows in a run's time. */
#include "cli.h"
#include "cli_data.h"
#include "train_common.h"
#include "sqakd/json.h"
#include "sqakd/train.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE = "--data SPEC [--batch B --augment A --loader-threads N --batches N --json]";

int sq_cmd_bench_loader(int argc, char **argv)
{
    const char *cmd = "bench loader";
    const char *spec = NULL, *augment = NULL, *resize = NULL;
    int batch = 128, threads = 1, batches = 0, json = 0;
    sq_arg a[] = {
        {"--data", SQ_ARG_STR, &spec, 0, 0, "data SPEC, as for 'sqakd distill' (required); its train split is read"},
        {"--batch", SQ_ARG_INT, &batch, 1, 65536, "batch size (default 128)"},
        {"--augment", SQ_ARG_STR, &augment, 0, 0, "none | flip | crop | crop,flip (default: as distill: crop,flip for 32x32 colour data, none otherwise)"},
        {"--loader-threads", SQ_ARG_INT, &threads, 1, SQ_LOADER_THREADS_MAX, "threads preparing the batches (default 1)"},
        {"--batches", SQ_ARG_INT, &batches, 0, 1000000, "batches timed (default 0: one epoch, less the first batch, which is not timed)"},
        {"--resize", SQ_ARG_STR, &resize, 0, 0, SQ_CLI_RESIZE_HELP},
        {"--json", SQ_ARG_FLAG, &json, 0, 0, "print one JSON object"},
    };
    const char *pos[1];
    int npos, r = sq_args_parse(cmd, USAGE, argc, argv, a, (int)(sizeof a / sizeof a[0]), pos, 0, &npos);
    if (r) return r == 1 ? 0 : 2;
    if (!spec) return sq_cli_fail(cmd, "--data SPEC is required (e.g. --data cifar10:DIR)");
    sq_data_opts dopts;
    if (sq_cli_data_opts(cmd, resize, threads, &dopts)) return 2;
    sq_dataset train; /* the whole train split, without labels, as distill reads it */
    if (sq_dataset_open_ex(spec, SQ_SPLIT_TRAIN, 0, &dopts, &train)) return sq_cli_fail(cmd, "%s", sq_last_error());
    sq_cli_common c;
    sq_cli_common_defaults(&c);
    c.augment = augment;
    if (sq_cli_common_finish(cmd, &c, &train)) {
        sq_dataset_free(&train);
        return 2;
    }
    sq_loader_opts lo = {.batch = batch, .shuffle = 1, .crop_pad = c.cfg.crop_pad, .flip = c.cfg.flip,
                         .drop_last = 1, .seed = 1, .threads = threads};
    sq_loader *l;
    if (sq_loader_create(&train, &lo, &l)) {
        sq_dataset_free(&train);
        return sq_cli_fail(cmd, "%s", sq_last_error());
    }
    int per_epoch = sq_loader_batches(l);
    if (per_epoch < 2) {
        sq_loader_free(l);
        sq_dataset_free(&train);
        return sq_cli_fail(cmd, "%s has fewer than two batches of %d (use a smaller --batch)", spec, batch);
    }
    if (batches == 0 || batches > per_epoch - 1) batches = per_epoch - 1;
    sq_loader_start_epoch(l, 0);
    const float *x;
    const int32_t *y;
    int nb = sq_loader_next(l, &x, &y); /* the first batch: the producer's start-up, untimed */
    double t0 = sq_now();
    long imgs = 0;
    for (int i = 0; i < batches && nb > 0; i++) {
        nb = sq_loader_next(l, &x, &y);
        if (nb > 0) imgs += nb;
    }
    double dt = sq_now() - t0;
    sq_loader_free(l);
    if (nb < 0) {
        sq_dataset_free(&train);
        return sq_cli_fail(cmd, "%s", sq_last_error());
    }
    double ips = imgs / (dt > 0 ? dt : 1e-9);
    const char *aug = c.cfg.crop_pad && c.cfg.flip ? "crop,flip" : c.cfg.crop_pad ? "crop" : c.cfg.flip ? "flip" : "none";
    if (json) {
        sq_jbuf jb;
        sq_jbuf_init(&jb);
        sq_jbuf_begin_obj(&jb);
        sq_jbuf_kv_str(&jb, "data", train.name);
        sq_jbuf_kv_str(&jb, "augment", aug);
        sq_jbuf_kv_int(&jb, "batch", batch);
        sq_jbuf_kv_int(&jb, "threads", threads);
        sq_jbuf_kv_int(&jb, "images", imgs);
        sq_jbuf_kv_num(&jb, "img_per_s", ips);
        sq_jbuf_kv_num(&jb, "img_per_s_per_thread", ips / threads);
        sq_jbuf_end_obj(&jb);
        printf("%s\n", sq_jbuf_cstr(&jb));
        sq_jbuf_free(&jb);
    } else {
        printf("loader, %s %dx%dx%d, augment %s, batch %d, %d thread%s: %ld images in %.3f s, %.0f img/s, %.0f img/s "
               "per thread\n", train.name, train.c, train.h, train.w, aug, batch, threads, threads == 1 ? "" : "s",
               imgs, dt, ips, ips / threads);
    }
    sq_dataset_free(&train);
    return 0;
}
