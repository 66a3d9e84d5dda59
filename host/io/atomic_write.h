/* atomic_write.h (internal to host/io): write a file from several byte ranges with the
   temp-file + fsync + rename + directory-fsync discipline shared by every writer in sqakd. */
#ifndef SQAKD_IO_ATOMIC_WRITE_H
#define SQAKD_IO_ATOMIC_WRITE_H

#include "sqakd/common.h"

typedef struct sq_io_seg { const void *data; size_t n; } sq_io_seg;

/* Writes the concatenation of segs[0..nseg) to "<path>.tmp.<pid>", flushes, fsyncs, closes,
   renames it to path and fsyncs the directory. On any failure before the rename the temporary
   file is removed, path is untouched, and SQ_EIO is returned with a message naming the path, the
   failing step and the errno text. Honours the SQAKD_TEST_FAIL_WRITE_AT test hook
   (see sqakd/safetensors.h). */
sq_status sq_io_write_atomic(const char *path, const sq_io_seg *segs, int nseg);

#endif
