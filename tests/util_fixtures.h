/* util_fixtures.h: shared test fixtures: a tiny in-memory labelled dataset, running the sqakd
   executable ($SQAKD_BIN) and capturing its output, big-endian writes for IDX files. */
#ifndef SQAKD_TESTS_UTIL_FIXTURES_H
#define SQAKD_TESTS_UTIL_FIXTURES_H

#include "sqakd/data.h"
#include <stdarg.h>
#include <stdio.h>

/* n labelled 1x8x8 images of 3 classes (class-dependent pixel pattern), seeded */
void sqt_tiny_dataset(sq_dataset *ds, int n);
/* the sqakd executable: $SQAKD_BIN or build/sqakd */
const char *sqt_bin(void);
/* runs "sqakd ARGS" (ARGS from fmt), stdout+stderr into out; returns the exit status (128 when it
   did not exit normally or could not start) */
int sqt_vrun(char *out, size_t cap, const char *fmt, va_list ap);
void sqt_write_be32(FILE *f, uint32_t v);
/* creates a fresh directory /tmp/PREFIX_XXXXXX into buf; returns buf or NULL */
char *sqt_mkdtemp(char *buf, size_t cap, const char *prefix);
/* removes dir and everything under it; 0 on success */
int sqt_rmtree(const char *dir);

#endif
