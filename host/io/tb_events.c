/* tb_events.c: TensorBoard event files (tb_events.h): Event messages packed by protobuf-c (the
   C generated from host/io/tb_event.proto into $(BUILD)/gen; no other file includes it), framed
   as TFRecord records, held in memory until a flush appends them to the file and fsyncs it. */
#define _GNU_SOURCE
#include "io/tb_events.h"
#include "io/atomic_write.h"
#include "sqakd/json.h"
#include "tb_event.pb-c.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct sq_tb_writer {
    char dir[4096], path[4400];
    int64_t resume_step;     /* < 0: a fresh run */
    int fd;                  /* -1 until the first flush */
    off_t len;               /* bytes in the file */
    uint8_t *buf;            /* pending records */
    size_t n, cap;
};

/* ---- CRC32C (reflected polynomial 0x82f63b78), one table built on first use ---- */
static uint32_t g_crc_table[256];
static int g_crc_ready;

uint32_t sq_crc32c(uint32_t crc, const void *data, size_t n)
{
    if (!g_crc_ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
            g_crc_table[i] = c;
        }
        g_crc_ready = 1;
    }
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = g_crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

uint32_t sq_tb_masked_crc(const void *data, size_t n)
{
    uint32_t c = sq_crc32c(0, data, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void reserve(sq_tb_writer *w, size_t more)
{
    if (w->n + more <= w->cap) return;
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < w->n + more) cap *= 2;
    uint8_t *b = realloc(w->buf, cap);
    if (!b) {
        fprintf(stderr, "sqakd: out of memory (%zu bytes of TensorBoard events)\n", cap);
        abort();
    }
    w->buf = b;
    w->cap = cap;
}

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* one TFRecord record holding the packed event */
static void add_event(sq_tb_writer *w, const Tensorboard__Event *ev)
{
    size_t len = tensorboard__event__get_packed_size(ev);
    reserve(w, len + 16);
    uint8_t *p = w->buf + w->n;
    put_le(p, len, 8);
    put_le(p + 8, sq_tb_masked_crc(p, 8), 4);
    tensorboard__event__pack(ev, p + 12);
    put_le(p + 12 + len, sq_tb_masked_crc(p + 12, len), 4);
    w->n += len + 16;
}

/* a byte kept in tags and file names: letters, digits and those of extra */
static int plain(char c, const char *extra)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (c && strchr(extra, c));
}

/* prefix + key with bytes other than letters, digits and "_-./" replaced by '_' (TensorBoard's
   tags are UTF-8 strings; these are names of our own metrics) */
static char *clean_tag(const char *prefix, const char *key, size_t keylen)
{
    size_t np = strlen(prefix);
    char *t = sq_xmalloc(np + keylen + 1);
    memcpy(t, prefix, np);
    memcpy(t + np, key, keylen);
    t[np + keylen] = 0;
    for (size_t i = 0; i < np + keylen; i++)
        if (!plain(t[i], "_-./")) t[i] = '_';
    return t;
}

static void add_values(sq_tb_writer *w, int64_t step, Tensorboard__Summary__Value **vals, size_t n)
{
    Tensorboard__Summary sum = TENSORBOARD__SUMMARY__INIT;
    sum.n_value = n;
    sum.value = vals;
    Tensorboard__Event ev = TENSORBOARD__EVENT__INIT;
    ev.wall_time = wall_now();
    ev.step = step;
    ev.what_case = TENSORBOARD__EVENT__WHAT_SUMMARY;
    ev.summary = &sum;
    add_event(w, &ev);
}

void sq_tb_scalar(sq_tb_writer *w, const char *tag, int64_t step, double value)
{
    Tensorboard__Summary__Value v = TENSORBOARD__SUMMARY__VALUE__INIT, *vp = &v;
    v.tag = clean_tag("", tag, strlen(tag));
    v.value_case = TENSORBOARD__SUMMARY__VALUE__VALUE_SIMPLE_VALUE;
    v.simple_value = (float)value;
    add_values(w, step, &vp, 1);
    free(v.tag);
}

sq_status sq_tb_json_scalars(sq_tb_writer *w, const char *prefix, int64_t step, const char *json, const char *skip)
{
    sq_json *o;
    if (sq_json_parse(json, strlen(json), &o, NULL)) return SQ_EFORMAT;
    if (o->type != SQ_JSON_OBJ) {
        sq_json_free(o);
        sq_set_error("TensorBoard scalars: not a JSON object");
        return SQ_EFORMAT;
    }
    Tensorboard__Summary__Value *vals = sq_xcalloc(o->n ? o->n : 1, sizeof *vals);
    Tensorboard__Summary__Value **ptrs = sq_xcalloc(o->n ? o->n : 1, sizeof *ptrs);
    size_t k = 0;
    for (int i = 0; i < o->n; i++) {
        if (o->items[i].type != SQ_JSON_NUM || (skip && !strcmp(o->keys[i], skip))) continue;
        Tensorboard__Summary__Value *v = &vals[k];
        *v = (Tensorboard__Summary__Value)TENSORBOARD__SUMMARY__VALUE__INIT;
        v->tag = clean_tag(prefix, o->keys[i], o->key_lens[i]);
        v->value_case = TENSORBOARD__SUMMARY__VALUE__VALUE_SIMPLE_VALUE;
        v->simple_value = (float)o->items[i].num;
        ptrs[k++] = v;
    }
    if (k) add_values(w, step, ptrs, k);
    for (size_t i = 0; i < k; i++) free(vals[i].tag);
    free(vals);
    free(ptrs);
    sq_json_free(o);
    return SQ_OK;
}

sq_status sq_tb_open(const char *dir, int64_t resume_step, sq_tb_writer **out)
{
    static int g_count;   /* writers opened by this process: part of the file name */
    *out = NULL;
    sq_tb_writer *w = sq_xcalloc(1, sizeof *w);
    if (strlen(dir) >= sizeof w->dir - 200) {
        free(w);
        sq_set_error_in(dir, "the TensorBoard directory's path is too long");
        return SQ_EARG;
    }
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    w->fd = -1;
    w->resume_step = resume_step;
    /* the host name as a file name: letters, digits, '.', '_' and '-' */
    char host[65] = "";
    if (gethostname(host, sizeof host - 1)) snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = 0;
    for (char *c = host; *c; c++)
        if (!plain(*c, "._-")) *c = '_';
    if (!host[0]) snprintf(host, sizeof host, "localhost");
    snprintf(w->path, sizeof w->path, "%s/events.out.tfevents.%010lld.%s.%ld.%d", w->dir, (long long)time(NULL), host,
             (long)getpid(), g_count++);
    Tensorboard__Event ev = TENSORBOARD__EVENT__INIT;
    ev.wall_time = wall_now();
    ev.what_case = TENSORBOARD__EVENT__WHAT_FILE_VERSION;
    ev.file_version = "brain.Event:2";
    add_event(w, &ev);
    if (resume_step >= 0) {
        Tensorboard__SessionLog sl = TENSORBOARD__SESSION_LOG__INIT;
        sl.status = TENSORBOARD__SESSION_LOG__SESSION_STATUS__START;
        Tensorboard__Event rs = TENSORBOARD__EVENT__INIT;
        rs.wall_time = ev.wall_time;
        rs.step = resume_step + 1;
        rs.what_case = TENSORBOARD__EVENT__WHAT_SESSION_LOG;
        rs.session_log = &sl;
        add_event(w, &rs);
    }
    *out = w;
    return SQ_OK;
}

/* removes the event files in dir (a fresh run's first flush) */
static int remove_old_events(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int rc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, "events.out.tfevents.", 20)) continue;
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (unlink(p) && errno != ENOENT) rc = -1;
    }
    closedir(d);
    return rc;
}

static sq_status io_fail(sq_tb_writer *w, const char *what, int err)
{
    w->n = 0;
    sq_set_error_in(w->path, "cannot %s the TensorBoard event file: %s", what, strerror(err));
    return SQ_EIO;
}

sq_status sq_tb_flush(sq_tb_writer *w)
{
    if (!w->n) return SQ_OK;
    if (w->fd < 0) {
        if (sq_io_mkdirs(w->dir)) return io_fail(w, "create the directory of", errno);
        if (w->resume_step < 0 && remove_old_events(w->dir)) return io_fail(w, "remove older event files beside", errno);
        w->fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (w->fd < 0) return io_fail(w, "create", errno);
        int dfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {   /* the new name is durable too */
            fsync(dfd);
            close(dfd);
        }
    }
    for (size_t done = 0; done < w->n;) {
        ssize_t k = pwrite(w->fd, w->buf + done, w->n - done, w->len + (off_t)done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            int e = k < 0 ? errno : EIO;
            if (ftruncate(w->fd, w->len)) { /* the error reported is the write's */ }
            return io_fail(w, "write", e);
        }
        done += (size_t)k;
    }
    if (fsync(w->fd)) {
        int e = errno;
        if (ftruncate(w->fd, w->len)) { /* as above */ }
        return io_fail(w, "fsync", e);
    }
    w->len += (off_t)w->n;
    w->n = 0;
    return SQ_OK;
}

const char *sq_tb_path(const sq_tb_writer *w) { return w->path; }

void sq_tb_close(sq_tb_writer *w)
{
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    free(w->buf);
    free(w);
}
