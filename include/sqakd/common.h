/* common.h: status codes, error reporting and small portability macros shared by every module. */
#ifndef SQAKD_COMMON_H
#define SQAKD_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sq_status {
    SQ_OK = 0,
    SQ_EIO,       /* file missing, unreadable, unwritable */
    SQ_EFORMAT,   /* file present but corrupt, truncated or of the wrong kind */
    SQ_EARG,      /* bad argument: flag value, shape mismatch, unknown name */
    SQ_ENOMEM,    /* host or device allocation failed */
    SQ_EDEVICE,   /* no device, or a device/library call failed */
    SQ_ENUMERIC   /* non-finite loss or value */
} sq_status;

/* Thread-local last error message; library functions that fail set it and return a status.
   The CLI prints it as one line. */
void sq_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* the same as one line "WHAT: message", WHAT (a file name, from the user or a file) escaped by
   sq_printable */
void sq_set_error_in(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *sq_last_error(void);
const char *sq_status_str(sq_status s);

/* Allocation helpers that abort only on genuine out-of-memory of tiny host structures. */
void *sq_xmalloc(size_t n);
void *sq_xcalloc(size_t n, size_t sz);

/* Round up to a multiple of 256 bytes-worth of floats (64 floats). */
static inline size_t sq_pad64(size_t nfloats) { return (nfloats + 63) & ~(size_t)63; }

double sq_now(void); /* monotonic seconds */
/* the CPUs this process may run on (its affinity mask, as nproc counts them; at least 1): the
   default of every --threads */
int sq_cpus_available(void);

/* Text from a file (a tensor name, a file name, a metadata value) made safe to quote in an error
   line: bytes below 0x20, 0x7f and the UTF-8 C1 controls U+0080..U+009F (which some terminals
   obey as escapes) become \xNN, everything else is copied. Writes at most cap bytes including
   the terminating NUL into buf (longer text ends in "..."; an escape is never cut) and returns
   buf; NULL s gives "(null)". */
const char *sq_printable(const char *s, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
