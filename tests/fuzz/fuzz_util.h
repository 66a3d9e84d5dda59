/* fuzz_util.h: helpers shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.c). Parsers that
   only take a path get the input as a file: every run writes it under a fresh name in a
   per-process scratch directory ($TMPDIR or /tmp, "sqakd-fuzz-XXXXXX", removed at exit) and
   removes it afterwards, so no run sees another run's files. Also: byte-stream reading for
   harnesses that build several files from one input, and the check that an error message is one
   printable line. */
#ifndef SQAKD_FUZZ_UTIL_H
#define SQAKD_FUZZ_UTIL_H

#define _GNU_SOURCE /* nftw, mkdtemp, memmem */
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqakd/common.h"

static char fz_root[512];
static unsigned long fz_seq;
static FILE *fz_err;   /* stderr as it was at start-up: -close_fd_mask=2 silences fd 2 later */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    int fd = dup(2);
    fz_err = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (fz_err) setvbuf(fz_err, NULL, _IONBF, 0);
    return 0;
}

/* prints "fuzz: MESSAGE" where libFuzzer's own output goes, then aborts: a finding */
__attribute__((format(printf, 1, 2), noreturn)) static inline void fz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    FILE *f = fz_err ? fz_err : stderr;
    fputs("fuzz: ", f);
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    va_end(ap);
    abort();
}

static inline int fz_rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

/* removes p and everything under it without following symbolic links */
static inline void fz_rmtree(const char *p) { nftw(p, fz_rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static inline void fz_cleanup(void)
{
    if (fz_root[0]) fz_rmtree(fz_root);
}

/* the per-process scratch directory (created on first use; exits on failure: a harness that
   cannot write files tests nothing) */
static inline const char *fz_dir(void)
{
    if (!fz_root[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(fz_root, sizeof fz_root, "%s/sqakd-fuzz-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(fz_root)) {
            fprintf(stderr, "fuzz: cannot create a scratch directory %s: %s\n", fz_root, strerror(errno));
            exit(1);
        }
        atexit(fz_cleanup);
    }
    return fz_root;
}

/* a fresh path DIR/<run number>-<name> for this run */
static inline void fz_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%lu-%s", fz_dir(), ++fz_seq, name);
}

/* writes n bytes to path (exits on failure, see fz_dir) */
static inline void fz_write(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f)) {
        fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

/* mkdir -p of path (components separated by '/'); 0 on success */
static inline int fz_mkdirs(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *s = tmp + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
        *s = '/';
    }
    return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

/* ---- reading structured input ---- */
typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in;

static inline int fz_u8(fz_in *in)
{
    if (!in->n) return 0;
    in->n--;
    return *in->p++;
}

static inline unsigned fz_u16(fz_in *in)
{
    unsigned lo = (unsigned)fz_u8(in);
    return lo | (unsigned)fz_u8(in) << 8;
}

/* the next k bytes (fewer at the end of the input) */
static inline const uint8_t *fz_take(fz_in *in, size_t *k)
{
    if (*k > in->n) *k = in->n;
    const uint8_t *p = in->p;
    in->p += *k;
    in->n -= *k;
    return p;
}

/* empties the last error, so that fz_check_error_line sees whether the call under test set one */
static inline void fz_clear_error(void) { sq_set_error("%s", ""); }

/* The house rule: a failure is one clear line. Aborts (a finding) when the call that failed set
   no message (call fz_clear_error before it) or set one that holds a newline, another control character or a UTF-8 C1 control, e.g. a terminal escape
   copied from the file. */
static inline void fz_check_error_line(void)
{
    const unsigned char *e = (const unsigned char *)sq_last_error();
    if (!strcmp((const char *)e, "unknown error")) fz_fail("failure with an empty error message");
    for (const unsigned char *p = e; *p; p++)
        if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
            fz_fail("error message holds control byte 0x%02x at %zu: %s", *p, (size_t)(p - e), (const char *)e);
}

#endif
