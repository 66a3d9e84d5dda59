/* atomic_write.h (host/io, and the tests): write a file from several byte ranges with the
   temp-file + fsync + rename + directory-fsync discipline shared by every writer in sqakd, the
   clean-up of temporary files a killed process left, and the fault hook the tests inject. */
#ifndef SQAKD_IO_ATOMIC_WRITE_H
#define SQAKD_IO_ATOMIC_WRITE_H

#include "sqakd/common.h"

typedef struct sq_io_seg { const void *data; size_t n; } sq_io_seg;

/* Writes the concatenation of segs[0..nseg) to a new temporary file "<path>.tmp.XXXXXX" (created
   with O_EXCL, so never through a link and never onto another writer's file), flushes, fsyncs,
   closes, renames it to path and fsyncs the directory. On any failure before the rename the
   temporary file is removed, path is untouched, and SQ_EIO is returned with a message naming the
   path, the failing step and the errno text. */
sq_status sq_io_write_atomic(const char *path, const sq_io_seg *segs, int nseg);

/* Removes the temporary files of atomic writes ("NAME.tmp.XXXXXX", and the "NAME.tmp.PID" of
   earlier versions) that a killed process left in dir. Only call it while holding the
   directory's run lock: a live writer's temporary file looks the same. Returns how many it
   removed. */
int sq_io_remove_stale_temps(const char *dir);

/* mkdir -p: creates dir and its parents (0755); 0, or -1 with errno set (ENOTDIR when a path
   component exists and is not a directory) */
int sq_io_mkdirs(const char *dir);

/* ---- fault injection (tests only) ----
   Every atomic write reports its steps to the hook, which may fail a step with an errno (as a full
   disk or an I/O error would) or end the process there (a crash test). */
typedef enum {
    SQ_IO_CREATE,   /* before the temporary file is created */
    SQ_IO_WRITE,    /* before each byte range is written: off = bytes written so far, n = its size */
    SQ_IO_FSYNC,    /* before the temporary file's fsync */
    SQ_IO_RENAME,   /* before the rename onto path */
    SQ_IO_RENAMED,  /* after the rename, before the directory's fsync */
} sq_io_event;

typedef struct sq_io_fault {
    sq_io_event ev;
    const char *path;        /* the final path */
    unsigned long long off, n;
    size_t allow;            /* SQ_IO_WRITE: bytes of this range to write before failing (hook sets it) */
} sq_io_fault;

/* Returns 0 to go on, or an errno value to fail the step with it. */
typedef int (*sq_io_fault_fn)(sq_io_fault *f, void *ctx);
/* Installs fn (NULL removes it) for every atomic write of this process. */
void sq_io_set_fault_hook(sq_io_fault_fn fn, void *ctx);

#endif
