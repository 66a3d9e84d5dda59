/* test_tb_events.c: TensorBoard event files (host/io/tb_events.c) read back in C: the TFRecord
   framing parsed and both CRCs checked, every record decoded with protobuf-c as TensorBoard's
   Event (file_version first, then the scalars with their tags, steps and values), CRC32C against
   its published check values, a resumed session's new file with its SessionLog START, a fresh
   run removing an older run's files, nothing written before the first flush, and a failed write
   cut back so the file never ends in a torn record. Also 'sqakd train --tensorboard' (and its
   resume) end to end: the per-epoch scalars equal metrics.jsonl. */
#include "io/tb_events.h"
#include "sqakd/json.h"
#include "tb_event.pb-c.h"
#include "util_fixtures.h"
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_dir[256];
static void mk(void) { cr_assert_not_null(sqt_mkdtemp(g_dir, sizeof g_dir, "sqakd_tb")); }
static void rm(void) { cr_expect_eq(sqt_rmtree(g_dir), 0); }

/* the event files of dir, sorted, into names (at most max); returns how many */
static int event_files(const char *dir, char names[][512], int max)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (!strncmp(e->d_name, "events.out.tfevents.", 20) && n < max) snprintf(names[n++], 512, "%s/%s", dir, e->d_name);
    closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(names[j], names[j - 1]) < 0; j--) {
            char t[512];
            strcpy(t, names[j]);
            strcpy(names[j], names[j - 1]);
            strcpy(names[j - 1], t);
        }
    return n;
}

static uint64_t le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* every record of path, its CRCs checked, decoded; returns how many (the events go to ev) */
static int read_events(const char *path, Tensorboard__Event **ev, int max)
{
    size_t n;
    unsigned char *b = sqt_slurp(path, &n);
    size_t off = 0;
    int k = 0;
    while (off < n) {
        cr_assert_geq(n - off, 12u, "%s: a torn record header at byte %zu", path, off);
        uint64_t len = le(b + off, 8);
        cr_assert_eq(le(b + off + 8, 4), sq_tb_masked_crc(b + off, 8), "%s: length CRC at byte %zu", path, off);
        cr_assert_geq(n - off - 12, len + 4, "%s: a torn record at byte %zu", path, off);
        cr_assert_eq(le(b + off + 12 + len, 4), sq_tb_masked_crc(b + off + 12, len), "%s: data CRC at byte %zu", path,
                     off);
        cr_assert_lt(k, max);
        ev[k] = tensorboard__event__unpack(NULL, len, b + off + 12);
        cr_assert_not_null(ev[k], "%s: record %d is not an Event", path, k);
        k++;
        off += 12 + len + 4;
    }
    free(b);
    return k;
}

static void free_events(Tensorboard__Event **ev, int n)
{
    for (int i = 0; i < n; i++) tensorboard__event__free_unpacked(ev[i], NULL);
}

static void expect_scalar(const Tensorboard__Event *e, int64_t step, const char *tag, float v)
{
    cr_assert_eq(e->what_case, TENSORBOARD__EVENT__WHAT_SUMMARY);
    cr_expect_eq(e->step, step);
    cr_expect_gt(e->wall_time, 1.6e9);
    cr_assert_eq(e->summary->n_value, 1u);
    cr_expect_str_eq(e->summary->value[0]->tag, tag);
    cr_assert_eq(e->summary->value[0]->value_case, TENSORBOARD__SUMMARY__VALUE__VALUE_SIMPLE_VALUE);
    cr_expect_eq(e->summary->value[0]->simple_value, v, "%s: %.9g, want %.9g", tag,
                 e->summary->value[0]->simple_value, v);
}

Test(tensorboard, crc32c_check_values)
{
    cr_expect_eq(sq_crc32c(0, "123456789", 9), 0xe3069283u);   /* the CRC-32C check value */
    unsigned char z[32] = {0}, f[32];
    memset(f, 0xff, sizeof f);
    cr_expect_eq(sq_crc32c(0, z, 32), 0x8a9136aau);   /* RFC 3720, B.4 */
    cr_expect_eq(sq_crc32c(0, f, 32), 0x62a8ab43u);
    cr_expect_eq(sq_crc32c(sq_crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);   /* continued */
}

Test(tensorboard, events_read_back_with_framing_and_crcs, .init = mk, .fini = rm)
{
    char tb[300], names[4][512];
    snprintf(tb, sizeof tb, "%s/run/tensorboard", g_dir);
    sq_tb_writer *w;
    cr_assert_eq(sq_tb_open(tb, -1, &w), SQ_OK);
    sq_tb_scalar(w, "train/loss", 1, 2.25);
    sq_tb_scalar(w, "train/loss", 20, 0.0);   /* zero is written, not left out as a default */
    cr_assert_eq(sq_tb_json_scalars(w, "metrics/", 20,
                                    "{\"epoch\":1,\"step\":20,\"lr\":0.001,\"note\":\"x\",\"top1\":81.25,\"kl\":null,"
                                    "\"a b\":-3}", "step"), SQ_OK);
    cr_expect_eq(event_files(tb, names, 4), 0, "a file was written before the first flush");
    cr_assert_eq(sq_tb_flush(w), SQ_OK);
    sq_tb_scalar(w, "bad\ntag\xff", 40, 1e30);
    cr_assert_eq(sq_tb_flush(w), SQ_OK);
    cr_assert_eq(event_files(tb, names, 4), 1);
    cr_expect_str_eq(names[0], sq_tb_path(w));
    sq_tb_close(w);
    const char *base = strrchr(names[0], '/') + 1;
    char host[128] = "";
    gethostname(host, sizeof host - 1);
    cr_expect(strlen(base) > 31 && base[30] == '.' && strstr(base, host), "file name %s", base);   /* 10-digit time */
    Tensorboard__Event *ev[16];
    int n = read_events(names[0], ev, 16);
    cr_assert_eq(n, 5);
    cr_assert_eq(ev[0]->what_case, TENSORBOARD__EVENT__WHAT_FILE_VERSION);
    cr_expect_str_eq(ev[0]->file_version, "brain.Event:2");
    expect_scalar(ev[1], 1, "train/loss", 2.25f);
    expect_scalar(ev[2], 20, "train/loss", 0.0f);
    /* one event with the numbers of the JSON object, in order, without "step" */
    const Tensorboard__Event *m = ev[3];
    cr_assert_eq(m->what_case, TENSORBOARD__EVENT__WHAT_SUMMARY);
    cr_expect_eq(m->step, 20);
    const char *tags[] = {"metrics/epoch", "metrics/lr", "metrics/top1", "metrics/a_b"};
    const float vals[] = {1.0f, 0.001f, 81.25f, -3.0f};
    cr_assert_eq(m->summary->n_value, 4u);
    for (int i = 0; i < 4; i++) {
        cr_expect_str_eq(m->summary->value[i]->tag, tags[i]);
        cr_expect_eq(m->summary->value[i]->simple_value, vals[i]);
    }
    expect_scalar(ev[4], 40, "bad_tag_", 1e30f);
    free_events(ev, n);
}

Test(tensorboard, resumed_session_adds_a_file_with_session_start, .init = mk, .fini = rm)
{
    char names[4][512];
    sq_tb_writer *w;
    cr_assert_eq(sq_tb_open(g_dir, -1, &w), SQ_OK);
    sq_tb_scalar(w, "train/loss", 10, 1.0);
    cr_assert_eq(sq_tb_flush(w), SQ_OK);
    sq_tb_close(w);
    cr_assert_eq(sq_tb_open(g_dir, 10, &w), SQ_OK);
    sq_tb_scalar(w, "train/loss", 11, 0.5);
    cr_assert_eq(sq_tb_flush(w), SQ_OK);
    char second[512];
    snprintf(second, sizeof second, "%s", sq_tb_path(w));
    sq_tb_close(w);
    cr_assert_eq(event_files(g_dir, names, 4), 2, "the resumed session kept the first file and added one");
    Tensorboard__Event *ev[8];
    int n = read_events(second, ev, 8);
    cr_assert_eq(n, 3);
    cr_expect_eq(ev[0]->what_case, TENSORBOARD__EVENT__WHAT_FILE_VERSION);
    cr_assert_eq(ev[1]->what_case, TENSORBOARD__EVENT__WHAT_SESSION_LOG);
    cr_expect_eq(ev[1]->session_log->status, TENSORBOARD__SESSION_LOG__SESSION_STATUS__START);
    cr_expect_eq(ev[1]->step, 11);   /* the first step of the resumed session */
    expect_scalar(ev[2], 11, "train/loss", 0.5f);
    free_events(ev, n);
    /* a fresh run in the same directory: the older files go at its first flush, not before */
    cr_assert_eq(sq_tb_open(g_dir, -1, &w), SQ_OK);
    sq_tb_scalar(w, "train/loss", 1, 3.0);
    cr_expect_eq(event_files(g_dir, names, 4), 2);
    cr_assert_eq(sq_tb_flush(w), SQ_OK);
    cr_expect_eq(event_files(g_dir, names, 4), 1);
    cr_expect_str_eq(names[0], sq_tb_path(w));
    sq_tb_close(w);
}

Test(tensorboard, close_without_flush_writes_nothing, .init = mk, .fini = rm)
{
    char tb[300];
    snprintf(tb, sizeof tb, "%s/never", g_dir);
    sq_tb_writer *w;
    cr_assert_eq(sq_tb_open(tb, -1, &w), SQ_OK);
    sq_tb_scalar(w, "train/loss", 1, 1.0);
    sq_tb_close(w);
    struct stat sb;
    cr_expect_neq(stat(tb, &sb), 0, "the directory was created without a flush");
}

Test(tensorboard, an_uncreatable_directory_is_one_error_naming_the_file, .init = mk, .fini = rm)
{
    char file[300], tb[400];
    snprintf(file, sizeof file, "%s/plain", g_dir);
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    fclose(f);
    snprintf(tb, sizeof tb, "%s/tensorboard", file);   /* under a regular file */
    sq_tb_writer *w;
    cr_assert_eq(sq_tb_open(tb, -1, &w), SQ_OK);
    sq_tb_scalar(w, "x", 1, 1.0);
    cr_expect_eq(sq_tb_flush(w), SQ_EIO);
    sqt_expect_error_has("events.out.tfevents.");
    sqt_expect_error_has("Not a directory");
    sq_tb_close(w);
}

/* a write that fails part-way (RLIMIT_FSIZE, as a full disk would): the file is cut back to the
   records of the earlier flush, which still read back whole */
Test(tensorboard, a_failed_write_leaves_no_torn_record, .init = mk, .fini = rm)
{
    char path[512];
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        sq_tb_writer *w;
        if (sq_tb_open(g_dir, -1, &w)) _exit(10);
        sq_tb_scalar(w, "a", 1, 1.0);
        if (sq_tb_flush(w)) _exit(11);
        struct rlimit rl = {.rlim_cur = 150, .rlim_max = RLIM_INFINITY};
        if (setrlimit(RLIMIT_FSIZE, &rl)) _exit(12);
        for (int i = 0; i < 20; i++) sq_tb_scalar(w, "b", 2 + i, i);
        int st = sq_tb_flush(w);
        FILE *f = fopen(sq_tb_path(w), "rb");
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fclose(f);
        _exit(st == SQ_EIO && n < 150 && strstr(sq_last_error(), "cannot write") ? 0 : 13);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: %d", WEXITSTATUS(status));
    char names[2][512];
    cr_assert_eq(event_files(g_dir, names, 2), 1);
    snprintf(path, sizeof path, "%s", names[0]);
    Tensorboard__Event *ev[4];
    int n = read_events(path, ev, 4);
    cr_expect_eq(n, 2);
    expect_scalar(ev[1], 1, "a", 1.0f);
    free_events(ev, n);
}

/* ---- sqakd train --tensorboard end to end ---- */
static char g_out[1 << 16];
#define run(...) sqt_run(g_out, sizeof g_out, __VA_ARGS__)

/* the scalars of tag across the event files of dir in file order: steps and values */
static int scalars_of(const char *dir, const char *tag, int64_t *steps, float *vals, int max)
{
    char names[8][512];
    int nf = event_files(dir, names, 8), k = 0;
    for (int f = 0; f < nf; f++) {
        Tensorboard__Event *ev[512];
        int n = read_events(names[f], ev, 512);
        for (int i = 0; i < n; i++) {
            if (ev[i]->what_case != TENSORBOARD__EVENT__WHAT_SUMMARY) continue;
            for (size_t v = 0; v < ev[i]->summary->n_value; v++)
                if (!strcmp(ev[i]->summary->value[v]->tag, tag) && k < max) {
                    steps[k] = ev[i]->step;
                    vals[k++] = ev[i]->summary->value[v]->simple_value;
                }
        }
        free_events(ev, n);
    }
    return k;
}

Test(tensorboard, train_writes_the_metrics_of_each_epoch_and_resume_adds_a_file, .init = mk, .fini = rm)
{
    char img[400], lab[400], out[400], tb[500];
    snprintf(img, sizeof img, "%s/img.idx", g_dir);
    snprintf(lab, sizeof lab, "%s/lab.idx", g_dir);
    snprintf(out, sizeof out, "%s/run", g_dir);
    snprintf(tb, sizeof tb, "%s/tensorboard", out);
    sqt_write_idx_pattern(img, lab, 96, 8, 3, 5);
    struct stat sb;
    if (stat(sqt_bin(), &sb)) cr_skip_test("%s is not built", sqt_bin());
    const char *common = "--model smallcnn --batch 16 --threads 1 --holdout 0.25 --log-every 2 --quiet --tensorboard";
    cr_assert_eq(run("train --data idx:%s,%s --epochs 1 %s --out %s", img, lab, common, out), 0, "%s", g_out);
    cr_assert_eq(run("train --resume %s --epochs 2 --log-every 2 --quiet", out), 0, "%s", g_out);   /* --log-every is not recorded */
    char names[4][512];
    cr_assert_eq(event_files(tb, names, 4), 2, "one file per session");
    /* metrics.jsonl's values, each as the float TensorBoard holds */
    char mpath[500];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", out);
    size_t n;
    char *text = (char *)sqt_slurp(mpath, &n);
    text[n] = 0;
    int line = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save), line++) {
        sq_json *o;
        cr_assert_eq(sq_json_parse(l, strlen(l), &o, NULL), SQ_OK);
        int64_t step = (int64_t)sq_json_num(sq_json_get(o, "step"), -1);
        int checked = 0;
        for (int i = 0; i < o->n; i++) {
            if (!strcmp(o->keys[i], "step") || o->items[i].type != SQ_JSON_NUM) continue;
            char tag[64];
            snprintf(tag, sizeof tag, "metrics/%s", o->keys[i]);
            int64_t steps[8];
            float vals[8];
            int k = scalars_of(tb, tag, steps, vals, 8);
            cr_assert_eq(k, 2, "%s: %d events", tag, k);
            cr_expect_eq(steps[line], step, "%s", tag);
            cr_expect_eq(vals[line], (float)o->items[i].num, "%s: %.9g vs %.9g", tag, vals[line], o->items[i].num);
            checked++;
        }
        cr_expect_geq(checked, 8, "line %d: %d values", line + 1, checked);   /* lr, loss, img/s, top1, ... */
        sq_json_free(o);
    }
    cr_expect_eq(line, 2);
    free(text);
    /* the loss per read-back window: 72 training images / batch 16 = 4 steps an epoch, read back
       at steps 1 (the first, alone), 3 (two more) and 4 (the epoch's last), then 6 and 8 in the resumed session */
    int64_t steps[16];
    float vals[16];
    int k = scalars_of(tb, "train/loss", steps, vals, 16);
    const int64_t want[] = {1, 3, 4, 6, 8};
    cr_assert_eq(k, 5, "%d loss events", k);
    for (int i = 0; i < k; i++) {
        cr_expect_eq(steps[i], want[i]);
        cr_expect(isfinite(vals[i]) && vals[i] > 0, "loss %g", vals[i]);
    }
}
