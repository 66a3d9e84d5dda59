/* test_data_stream.c: Criterion suite "data" (declared with its fixture in
   test_data_idx_cifar.c): streamed folder datasets. The loader's batches of a streamed folder are
   those of the same images in memory, whatever its thread count; a file that stops decoding in
   the middle of an epoch fails its batch with the error of the first bad sample in batch order;
   and through the executable: runs are byte-identical across repeats, loader threads and --threads,
   a corrupt image met in an epoch stops the run with one line naming it and commits nothing of
   that epoch, and a folder whose decoded size is larger than the process's data limit (ulimit -d)
   trains under that limit. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#include "sqakd/data.h"
#include "util_fixtures.h"

/* ---------------------------------------------------------------- images */

static uint64_t g_rng;
static unsigned rnd(void)
{
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)(g_rng >> 33);
}

/* a w x h image of c channels (1 or 3): a gradient keyed by k plus noise */
static uint8_t *pattern(int w, int h, int c, int k)
{
    uint8_t *px = malloc((size_t)w * h * c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < c; ch++)
                px[((size_t)y * w + x) * c + ch] = (uint8_t)((x * (3 + k % 5) + y * (2 + ch) + 40 * (k % 3)) + (rnd() & 31));
    return px;
}

/* DIR/<a|b>/NNNNN.{png,jpg}: n images of mixed sizes (17..40 on a side) and kinds (RGB PNG, RGB
   JPEG, greyscale JPEG), alternating between the two class folders */
static void mixed_folder(const char *dir, int n)
{
    char p[600];
    g_rng = 19;
    sqt_tmkdir(dir);
    snprintf(p, sizeof p, "%s/a", dir);
    sqt_tmkdir(p);
    snprintf(p, sizeof p, "%s/b", dir);
    sqt_tmkdir(p);
    for (int i = 0; i < n; i++) {
        int w = 17 + (int)(rnd() % 24), h = 17 + (int)(rnd() % 24), kind = i % 3, c = kind == 2 ? 1 : 3;
        uint8_t *px = pattern(w, h, c, i);
        snprintf(p, sizeof p, "%s/%c/%05d.%s", dir, "ab"[i % 2], i, kind == 0 ? "png" : "jpg");
        if (kind == 0) sqt_write_png(sqt_tpath(p), w, h, c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, 8, px, NULL, 0);
        else sqt_write_jpeg(sqt_tpath(p), w, h, c, px, 90);
        free(px);
    }
}

/* cuts path to its first half: the header stays, the pixel data is gone */
static void truncate_half(const char *path)
{
    size_t n;
    unsigned char *b = sqt_slurp(path, &n);
    sqt_write_bytes(path, b, n / 2, 0);
    free(b);
}

/* ---------------------------------------------------------------- the loader */

/* every batch of epochs 0 and 1 (shuffled, cropped, flipped) of loader l into out; returns floats */
static size_t two_epochs(const sq_dataset *ds, int threads, float *out, int32_t *labels)
{
    sq_loader_opts o = {.batch = 5, .shuffle = 1, .crop_pad = 2, .flip = 1, .seed = 9, .threads = threads};
    sq_loader *l = NULL;
    cr_assert_eq(sq_loader_create(ds, &o, &l), SQ_OK, "%s", sq_last_error());
    const size_t sample = (size_t)ds->c * ds->h * ds->w;
    size_t k = 0, nl = 0;
    for (int e = 0; e < 2; e++) {
        sq_loader_start_epoch(l, e);
        const float *x;
        const int32_t *y;
        int n;
        while ((n = sq_loader_next(l, &x, &y)) > 0) {
            memcpy(out + k, x, (size_t)n * sample * sizeof(float));
            memcpy(labels + nl, y, (size_t)n * sizeof(int32_t));
            k += (size_t)n * sample;
            nl += (size_t)n;
        }
        cr_assert_eq(n, 0, "end of epoch, not an error: %s", sq_last_error());
    }
    sq_loader_free(l);
    return k;
}

/* The batches of a streamed folder equal those of its images in memory, with 1, 3 or 8 loader
   threads: decoding on several threads changes nothing. */
Test(data, loader_streamed_batches_equal_in_memory_for_any_thread_count)
{
    mixed_folder("m", 37);
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("m"));
    sq_data_opts o = {.resize_h = 12, .resize_w = 10, .threads = 3};
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open_ex(spec, SQ_SPLIT_TRAIN, 1, &o, &ds), SQ_OK, "%s", sq_last_error());
    cr_assert(ds.n == 37 && ds.c == 3 && ds.h == 12 && ds.w == 10 && ds.stream && ds.threads == 3);
    /* the same images in memory */
    sq_dataset mem = ds;
    const size_t sample = (size_t)3 * 12 * 10;
    mem.stream = NULL;
    mem.items = NULL;
    mem.images = malloc((size_t)ds.n * sample);
    for (int i = 0; i < ds.n; i++) cr_assert_eq(sq_dataset_fetch(&ds, i, mem.images + (size_t)i * sample), SQ_OK);
    const size_t total = 2 * (size_t)ds.n * sample;
    float *ref = malloc(total * sizeof(float)), *got = malloc(total * sizeof(float));
    int32_t *lref = malloc(2 * ds.n * sizeof(int32_t)), *lgot = malloc(2 * ds.n * sizeof(int32_t));
    cr_assert_eq(two_epochs(&mem, 1, ref, lref), total);
    const int threads[3] = {1, 3, 8};
    for (int t = 0; t < 3; t++) {
        memset(got, 0, total * sizeof(float));
        cr_assert_eq(two_epochs(&ds, threads[t], got, lgot), total);
        cr_expect_eq(memcmp(got, ref, total * sizeof(float)), 0, "%d threads: batches differ", threads[t]);
        cr_expect_eq(memcmp(lgot, lref, 2 * ds.n * sizeof(int32_t)), 0, "%d threads: labels differ", threads[t]);
    }
    free(ref), free(got), free(lref), free(lgot);
    free(mem.images);
    sq_dataset_free(&ds);
}

/* Two files cut after the dataset was opened, both in batch 2 (samples 16..23 of 30, no
   shuffle): batches 0 and 1 come, batch 2 is an error naming the first bad sample in batch order
   (with 1 or 4 threads), said again by the next call; a restarted epoch starts cleanly. */
Test(data, loader_streamed_error_names_the_first_bad_sample)
{
    char p[600];
    sqt_tmkdir("e");
    g_rng = 3;
    for (int i = 0; i < 30; i++) {
        uint8_t *px = pattern(16, 16, 3, i);
        snprintf(p, sizeof p, "e/%02d.png", i);
        sqt_write_png(sqt_tpath(p), 16, 16, PNG_COLOR_TYPE_RGB, 8, px, NULL, 0);
        free(px);
    }
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("e"));
    sq_data_opts o = {.skip_norm = 1}; /* no statistics: nothing is decoded at open */
    sq_dataset ds;
    cr_assert_eq(sq_dataset_open_ex(spec, SQ_SPLIT_TRAIN, 0, &o, &ds), SQ_OK, "%s", sq_last_error());
    truncate_half(sqt_tpath("e/21.png"));
    truncate_half(sqt_tpath("e/18.png"));
    const int threads[2] = {1, 4};
    for (int t = 0; t < 2; t++) {
        sq_loader_opts lo = {.batch = 8, .threads = threads[t]};
        sq_loader *l = NULL;
        cr_assert_eq(sq_loader_create(&ds, &lo, &l), SQ_OK, "%s", sq_last_error());
        sq_loader_start_epoch(l, 0);
        const float *x;
        cr_assert_eq(sq_loader_next(l, &x, NULL), 8);
        cr_assert_eq(sq_loader_next(l, &x, NULL), 8);
        for (int again = 0; again < 2; again++) {
            cr_expect_eq(sq_loader_next(l, &x, NULL), -(int)SQ_EFORMAT, "%d threads", threads[t]);
            sqt_expect_error_has(sqt_tpath("e/18.png"));
            sqt_expect_error_has("corrupt or truncated");
        }
        sq_loader_start_epoch(l, 1);
        cr_expect_eq(sq_loader_next(l, &x, NULL), 8, "a new epoch starts again: %s", sq_last_error());
        sq_loader_free(l);
    }
    sq_dataset_free(&ds);
}

/* ---------------------------------------------------------------- through the executable */

static char g_out[16384];
#define run(...) sqt_run(g_out, sizeof g_out, __VA_ARGS__)

/* the tensor bytes of a safetensors file (after its header; the header's metadata records the
   flags of the run, --threads among them) */
static unsigned char *tensor_bytes(const char *path, size_t *n)
{
    size_t len;
    unsigned char *b = sqt_slurp(path, &len);
    cr_assert_geq(len, 8);
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = h << 8 | b[i];
    cr_assert_leq(8 + h, len);
    *n = len - 8 - (size_t)h;
    memmove(b, b + 8 + h, *n);
    return b;
}

static void expect_same_tensors(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *x = tensor_bytes(a, &na), *y = tensor_bytes(b, &nb);
    cr_expect(na == nb && na > 0 && memcmp(x, y, na) == 0, "%s and %s hold different tensors", a, b);
    free(x);
    free(y);
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0, ch;
    while ((ch = fgetc(f)) != EOF) n += ch == '\n';
    fclose(f);
    return n;
}

/* The same streamed run twice, with 4 loader threads, and with --threads 2: the same weights. */
Test(data, streamed_runs_are_byte_identical_across_repeats_and_threads)
{
    if (access(sqt_bin(), X_OK)) cr_skip_test("sqakd binary %s not built", sqt_bin());
    mixed_folder("f", 60);
    const char *common = "train --model smallcnn --resize 16x16 --epochs 2 --batch 8 --quiet --holdout 0.1";
    const char *variants[4] = {"--threads 1 --loader-threads 1", "--threads 1 --loader-threads 1",
                               "--threads 1 --loader-threads 4", "--threads 2 --loader-threads 3"};
    char dirs[4][600];
    for (int i = 0; i < 4; i++) {
        snprintf(dirs[i], sizeof dirs[i], "%s/run%d", sqt_scratch_dir, i);
        cr_assert_eq(run("%s --data folder:%s %s --out %s", common, sqt_tpath("f"), variants[i], dirs[i]), 0, "%s",
                     g_out);
        cr_expect(strstr(g_out, "streamed from disk") != NULL, "%s", g_out);
    }
    char a[700], b[700];
    for (int i = 1; i < 4; i++) {
        snprintf(a, sizeof a, "%s/last.safetensors", dirs[0]);
        snprintf(b, sizeof b, "%s/last.safetensors", dirs[i]);
        expect_same_tensors(a, b);
    }
}

/* A corrupt image met in the middle of an epoch: the run stops with one line naming it, and the
   epoch is not committed (the checkpoint, its state and metrics.jsonl stay those of the epoch
   before). Distillation normalises as its teacher, so nothing is decoded at open and the file is
   met by the loader. */
Test(data, corrupt_image_mid_epoch_stops_without_committing_the_epoch)
{
    if (access(sqt_bin(), X_OK)) cr_skip_test("sqakd binary %s not built", sqt_bin());
    mixed_folder("f", 48);
    char teacher[600], d[600], p[700];
    snprintf(teacher, sizeof teacher, "%s/t", sqt_scratch_dir);
    snprintf(d, sizeof d, "%s/s", sqt_scratch_dir);
    cr_assert_eq(run("train --model smallcnn --data folder:%s --resize 16x16 --epochs 1 --batch 8 --threads 1 --quiet "
                     "--out %s", sqt_tpath("f"), teacher), 0, "%s", g_out);
    const char *common = "--quantizer ewgs --wbits 4 --abits 4 --batch 8 --threads 1 --quiet --holdout 0.1";
    cr_assert_eq(run("distill --teacher %s/best.safetensors --data folder:%s --resize 16x16 %s --epochs 1 --out %s",
                     teacher, sqt_tpath("f"), common, d), 0, "%s", g_out);
    snprintf(p, sizeof p, "%s/last.safetensors", d);
    size_t n0;
    unsigned char *before = sqt_slurp(p, &n0);
    truncate_half(sqt_tpath("f/a/00030.png"));
    int rc = run("distill --resume %s --epochs 2", d);
    cr_expect_eq(rc, 1, "exit status %d: %s", rc, g_out);
    cr_expect(strstr(g_out, "f/a/00030.png") && strstr(g_out, "corrupt or truncated"), "%s", g_out);
    /* the error is one line, the last */
    const char *last = g_out + strlen(g_out) - 1;
    while (last > g_out && last[-1] != '\n') last--;
    cr_expect(strstr(last, "00030.png") && strchr(last, '\n') == last + strlen(last) - 1, "%s", g_out);
    cr_expect(strstr(g_out, "00030.png") == strstr(last, "00030.png"), "named once: %s", g_out);
    size_t n1;
    unsigned char *after = sqt_slurp(p, &n1);
    cr_expect(n0 == n1 && memcmp(before, after, n0) == 0, "last.safetensors changed");
    free(before);
    free(after);
    snprintf(p, sizeof p, "%s/metrics.jsonl", d);
    cr_expect_eq(count_lines(p), 1, "metrics.jsonl holds epoch 1 only");
    cr_expect_eq(run("info %s/last.state.safetensors", d), 0, "%s", g_out);
    const char *e = strstr(g_out, "\n  epoch ");
    int epoch = -1;
    cr_expect(e && sscanf(e, " epoch %d", &epoch) == 1 && epoch == 1, "the state is epoch %d's: %s", epoch, g_out);
}

/* this process's VmData (kB, /proc/self/status): heap, private mappings and the libraries' data */
static long vm_data_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    cr_assert_not_null(f);
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmData: %ld kB", &kb) == 1) break;
    fclose(f);
    cr_assert_gt(kb, 0, "no VmData in /proc/self/status");
    return kb;
}

/* the peak RSS (MiB) of 'sqakd models': what the executable and its libraries take by themselves */
static double baseline_rss_mib(void)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) dup2(fd, 1);
        execl(sqt_bin(), sqt_bin(), "models", (char *)NULL);
        _exit(127);
    }
    int status;
    struct rusage ru;
    cr_assert_eq(wait4(pid, &status, 0, &ru), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "sqakd models failed");
    return ru.ru_maxrss / 1024.0;
}

/* A folder whose pixels (24000 images of 32x32x3: 70.3 MiB, also at the model's resolution)
   exceed the process's data limit (RLIMIT_DATA 32 MiB above what its libraries take: heap,
   private mappings and thread stacks) opens and trains under that limit: only the file list and a batch at a time are in
   memory. OpenBLAS gets one thread (its pool threads would each map a 128 MiB buffer). */
Test(data, folder_larger_than_the_memory_limit_trains, .timeout = 240)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("AddressSanitizer maps terabytes of shadow memory: no memory limit can be set");
#endif
    if (access(sqt_bin(), X_OK)) cr_skip_test("sqakd binary %s not built", sqt_bin());
    enum { N = 24000, S = 32 };
    /* the limit is 32 MiB above what the libraries themselves take: a build with CUDA maps the
       data segments of cuDNN and cuBLAS (hundreds of MiB) before main; this test process links the
       same libraries, so its own VmData bounds that */
    const long extra_kb = 32 * 1024, limit_kb = vm_data_kb() + extra_kb;
    char p[600];
    g_rng = 5;
    sqt_tmkdir("big");
    sqt_tmkdir("big/a");
    sqt_tmkdir("big/b");
    uint8_t *base = pattern(S, S, 3, 0);
    uint8_t px[S * S * 3];
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < S * S * 3; k++) px[k] = (uint8_t)(base[k] + (i % 2) * 90 + (rnd() & 15));
        snprintf(p, sizeof p, "big/%c/%05d.jpg", "ab"[i % 2], i);
        sqt_write_jpeg(sqt_tpath(p), S, S, 3, px, 75);
    }
    free(base);
    const double decoded_mib = (double)N * S * S * 3 / (1 << 20);
    cr_assert_gt(decoded_mib, 2.0 * extra_kb / 1024, "the folder must not fit under the limit");
    const double base_mib = baseline_rss_mib();
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "ulimit -d %ld && OPENBLAS_NUM_THREADS=1 exec %s train --model smallcnn --data folder:%s --epochs 1 "
             "--batch 8 --lr 0.01 --max-steps 40 --holdout 0.01 --threads 1 --loader-threads 2 --quiet --out %s/run 2>&1",
             limit_kb, sqt_bin(), sqt_tpath("big"), sqt_scratch_dir);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int fd = creat(sqt_tpath("log.txt"), 0644);
        if (fd < 0) _exit(127);
        dup2(fd, 1);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int status;
    struct rusage ru;
    cr_assert_eq(wait4(pid, &status, 0, &ru), pid);
    size_t n;
    char *log = (char *)sqt_slurp(sqt_tpath("log.txt"), &n);
    log[n] = 0;
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the run failed under a data limit of %ld MiB "
              "(libraries) + %ld MiB: %s", (limit_kb - extra_kb) / 1024, extra_kb / 1024, log);
    cr_expect(strstr(log, "23760 train + 240 eval images streamed from disk") != NULL, "%s", log);
    snprintf(p, sizeof p, "%s/run/last.safetensors", sqt_scratch_dir);
    struct stat sb;
    cr_expect_eq(stat(p, &sb), 0, "no checkpoint");
    double peak_mib = ru.ru_maxrss / 1024.0;
    cr_log_info("%d images, %.1f MiB decoded; data limit %ld MiB above the libraries'; peak RSS %.1f MiB, %.1f MiB "
                "above 'sqakd models'", N, decoded_mib, extra_kb / 1024, peak_mib, peak_mib - base_mib);
    cr_expect_lt(peak_mib - base_mib, decoded_mib / 2, "peak RSS %.1f MiB (%.1f MiB above 'sqakd models') for %.1f MiB "
                 "of pixels", peak_mib, peak_mib - base_mib, decoded_mib);
    free(log);
}
