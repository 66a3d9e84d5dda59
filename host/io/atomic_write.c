/* atomic_write.c: crash-safe file replacement (a fresh temporary file in the same directory,
   fsync, rename, directory fsync), sq_write_file_atomic, the clean-up of temporary files left by
   a kill, and the fault hook that the tests inject (atomic_write.h). */
#define _GNU_SOURCE
#include "io/atomic_write.h"
#include "sqakd/safetensors.h"
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static sq_io_fault_fn g_hook;
static void *g_hook_ctx;

void sq_io_set_fault_hook(sq_io_fault_fn fn, void *ctx)
{
    g_hook = fn;
    g_hook_ctx = ctx;
}

static int fault(sq_io_event ev, const char *path, unsigned long long off, unsigned long long n, size_t *allow)
{
    if (!g_hook) return 0;
    sq_io_fault f = {.ev = ev, .path = path, .off = off, .n = n, .allow = 0};
    int err = g_hook(&f, g_hook_ctx);
    if (allow) *allow = f.allow < n ? f.allow : (size_t)n;
    return err;
}

/* fsync of the directory holding path, so the rename itself is durable. EINVAL (a file system
   without directory sync) is not an error. */
static int sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) dir = strdup(".");
    else if (slash == path) dir = strdup("/");
    else dir = strndup(path, (size_t)(slash - path));
    if (!dir) return ENOMEM;
    int err = 0, fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) err = errno;
    else {
        if (fsync(fd) != 0 && errno != EINVAL) err = errno;
        close(fd);
    }
    free(dir);
    return err;
}

/* writes all of n bytes (retrying short writes and EINTR); 0 or an errno */
static int write_all(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (w == 0) return EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

sq_status sq_io_write_atomic(const char *path, const sq_io_seg *segs, int nseg)
{
    if (!path || !*path) {
        sq_set_error("atomic write: empty output path; pass a file name");
        return SQ_EARG;
    }
    size_t tmp_cap = strlen(path) + 16;
    char *tmp = sq_xmalloc(tmp_cap);
    snprintf(tmp, tmp_cap, "%s.tmp.XXXXXX", path);
    unsigned long long written = 0;
    const char *step = "creating temporary file";
    int err = fault(SQ_IO_CREATE, path, 0, 0, NULL), fd = -1;
    if (!err) {
        /* mkostemp opens with O_CREAT | O_EXCL: a planted link or file is never followed or reused */
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) err = errno;
    }
    if (fd < 0) {
        sq_set_error("cannot write %s: %s %s failed: %s; check that the directory exists, is "
                     "writable and has free space", path, step, tmp, strerror(err));
        free(tmp);
        return SQ_EIO;
    }
    step = "setting the mode of";
    if (fchmod(fd, 0644) != 0) { err = errno; goto fail; }
    step = "writing";
    for (int i = 0; i < nseg; i++) {
        size_t n = segs[i].n, allow = 0;
        if ((err = fault(SQ_IO_WRITE, path, written, n, &allow))) {
            if (allow) write_all(fd, segs[i].data, allow);
            step = "writing (injected fault)";
            goto fail;
        }
        if (n && (err = write_all(fd, segs[i].data, n))) goto fail;
        written += n;
    }
    step = "fsync of";
    if ((err = fault(SQ_IO_FSYNC, path, written, 0, NULL)) || (fsync(fd) != 0 && (err = errno))) goto fail;
    step = "closing";
    int rc = close(fd);
    fd = -1;
    if (rc != 0) { err = errno; goto fail; }
    step = "renaming";
    if ((err = fault(SQ_IO_RENAME, path, written, 0, NULL)) || (rename(tmp, path) != 0 && (err = errno))) goto fail;
    free(tmp);
    err = fault(SQ_IO_RENAMED, path, written, 0, NULL);
    if (!err) err = sync_parent_dir(path);
    if (err) {
        sq_set_error("wrote %s completely, but fsync of its directory failed: %s; the file may not "
                     "survive a crash", path, strerror(err));
        return SQ_EIO;
    }
    return SQ_OK;

fail:
    if (fd >= 0) close(fd);
    unlink(tmp);
    sq_set_error("cannot write %s: %s temporary file %s failed: %s; check free space and "
                 "permissions (the previous file, if any, is unchanged)", path, step, tmp,
                 strerror(err));
    free(tmp);
    return SQ_EIO;
}

sq_status sq_write_file_atomic(const char *path, const void *data, size_t n)
{
    if (!data && n) {
        sq_set_error("atomic write of %s: NULL data with %zu bytes", path ? path : "(null)", n);
        return SQ_EARG;
    }
    sq_io_seg seg = { data, n };
    return sq_io_write_atomic(path, &seg, 1);
}

/* "NAME.tmp.XXXXXX" (6 characters of mkostemp's alphabet) or "NAME.tmp.<digits>" (before) */
static int is_temp_name(const char *name)
{
    const char *t = NULL;
    for (const char *p = strstr(name, ".tmp."); p; p = strstr(p + 1, ".tmp.")) t = p;
    if (!t || t == name) return 0;
    const char *s = t + 5;
    size_t n = strlen(s), alnum = 0, digit = 0;
    for (size_t i = 0; i < n; i++) {
        alnum += isalnum((unsigned char)s[i]) != 0;
        digit += isdigit((unsigned char)s[i]) != 0;
    }
    return n && ((n == 6 && alnum == 6) || digit == n);
}

int sq_io_mkdirs(const char *dir)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) { errno = ENAMETOOLONG; return -1; }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) && errno != EEXIST) return -1;
    struct stat sb;
    if (stat(buf, &sb)) return -1;
    if (!S_ISDIR(sb.st_mode)) { errno = ENOTDIR; return -1; }
    return 0;
}

int sq_io_remove_stale_temps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0, dfd = dirfd(d);
    for (struct dirent *e; (e = readdir(d));) {
        if (!is_temp_name(e->d_name)) continue;
        struct stat sb;
        if (fstatat(dfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) || !(S_ISREG(sb.st_mode) || S_ISLNK(sb.st_mode)))
            continue;
        removed += unlinkat(dfd, e->d_name, 0) == 0;
    }
    closedir(d);
    return removed;
}
