/* atomic_write.c: crash-safe file replacement (temp file in the same directory, fsync, rename,
   directory fsync) and sq_write_file_atomic. Also hosts the SQAKD_TEST_FAIL_WRITE_AT test hook that
   makes a write fail after a given number of bytes, as a full disk would. */
#include "io/atomic_write.h"
#include "sqakd/safetensors.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Byte budget from SQAKD_TEST_FAIL_WRITE_AT, or -1 when unset or not a non-negative integer. */
static long long fail_write_limit(void)
{
    const char *e = getenv("SQAKD_TEST_FAIL_WRITE_AT");
    if (!e || !*e) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(e, &end, 10);
    if (*end || v < 0 || errno) return -1;
    return v;
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

sq_status sq_io_write_atomic(const char *path, const sq_io_seg *segs, int nseg)
{
    if (!path || !*path) {
        sq_set_error("atomic write: empty output path; pass a file name");
        return SQ_EARG;
    }
    size_t tmp_cap = strlen(path) + 32;
    char *tmp = sq_xmalloc(tmp_cap);
    snprintf(tmp, tmp_cap, "%s.tmp.%ld", path, (long)getpid());
    long long limit = fail_write_limit();
    unsigned long long written = 0;
    const char *step = "creating temporary file";
    int err = 0;

    errno = 0;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        err = errno;
        sq_set_error("cannot write %s: %s %s failed: %s; check that the directory exists, is "
                     "writable and has free space", path, step, tmp, strerror(err));
        free(tmp);
        return SQ_EIO;
    }
    step = "writing";
    for (int i = 0; i < nseg; i++) {
        size_t n = segs[i].n;
        if (limit >= 0 && written + n > (unsigned long long)limit) {
            size_t part = (size_t)((unsigned long long)limit - written);
            if (part) fwrite(segs[i].data, 1, part, f);
            step = "writing (SQAKD_TEST_FAIL_WRITE_AT test hook)";
            err = ENOSPC;
            goto fail;
        }
        errno = 0;
        if (n && fwrite(segs[i].data, 1, n, f) != n) { err = errno ? errno : EIO; goto fail; }
        written += n;
    }
    step = "flushing";
    errno = 0;
    if (fflush(f) != 0) { err = errno ? errno : EIO; goto fail; }
    step = "fsync of";
    if (fsync(fileno(f)) != 0) { err = errno; goto fail; }
    step = "closing";
    errno = 0;
    int rc = fclose(f);
    f = NULL;
    if (rc != 0) { err = errno ? errno : EIO; goto fail; }
    step = "renaming";
    if (rename(tmp, path) != 0) { err = errno; goto fail; }
    free(tmp);
    err = sync_parent_dir(path);
    if (err) {
        sq_set_error("wrote %s completely, but fsync of its directory failed: %s; the file may not "
                     "survive a crash", path, strerror(err));
        return SQ_EIO;
    }
    return SQ_OK;

fail:
    if (f) fclose(f);
    remove(tmp);
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
