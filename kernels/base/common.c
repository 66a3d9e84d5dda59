/* common.c (the base layer, below host/ and the backends; it includes only include/sqakd):
   thread-local error message, status names, checked allocation, clock, and the escaping
   of file text quoted in error messages. */
#define _GNU_SOURCE
#include "sqakd/common.h"
#include <sched.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char g_err[1024];

void sq_set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
}

void sq_set_error_in(const char *what, const char *fmt, ...)
{
    char msg[1024], pw[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sq_set_error("%s: %s", sq_printable(what, pw, sizeof pw), msg);
}

const char *sq_last_error(void) { return g_err[0] ? g_err : "unknown error"; }

const char *sq_status_str(sq_status s)
{
    switch (s) {
    case SQ_OK: return "ok";
    case SQ_EIO: return "I/O error";
    case SQ_EFORMAT: return "bad file format";
    case SQ_EARG: return "bad argument";
    case SQ_ENOMEM: return "out of memory";
    case SQ_EDEVICE: return "device error";
    case SQ_ENUMERIC: return "non-finite value";
    }
    return "unknown";
}

void *sq_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) { fprintf(stderr, "sqakd: out of host memory (%zu bytes)\n", n); exit(3); }
    return p;
}

void *sq_xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) { fprintf(stderr, "sqakd: out of host memory (%zu bytes)\n", n * sz); exit(3); }
    return p;
}

int sq_cpus_available(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n > 1024 ? 1024 : n) : 1;
}

double sq_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One piece of sq_printable's output for the text at p: its bytes (in esc or at p), length *k,
   and the number of bytes of p it stands for (returned). */
static size_t printable_piece(const unsigned char *p, char esc[9], const char **piece, size_t *k)
{
    *piece = esc;
    if (*p < 0x20 || *p == 0x7f) {
        *k = (size_t)snprintf(esc, 9, "\\x%02x", *p);
        return 1;
    }
    if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {   /* a C1 control in UTF-8 */
        *k = (size_t)snprintf(esc, 9, "\\xc2\\x%02x", p[1]);
        return 2;
    }
    size_t used = 1;   /* one character: a byte and its UTF-8 continuation bytes, never split */
    if (*p >= 0xc0)
        while (used < 4 && p[used] >= 0x80 && p[used] <= 0xbf) used++;
    *piece = (const char *)p;
    *k = used;
    return used;
}

const char *sq_printable(const char *s, char *buf, size_t cap)
{
    if (!buf || !cap) return "";
    if (!s) s = "(null)";
    char esc[9];
    const char *piece;
    size_t k, total = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        p += printable_piece(p, esc, &piece, &k);
        total += k;
    }
    /* when it does not all fit, keep room for "..." after every piece */
    size_t reserve = total + 1 > cap ? 3 : 0, n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t used = printable_piece(p, esc, &piece, &k);
        if (n + k + reserve + 1 > cap) {
            if (n + 4 <= cap) memcpy(buf + n, "...", 3), n += 3;
            break;
        }
        memcpy(buf + n, piece, k);
        n += k;
        p += used;
    }
    buf[n] = '\0';
    return buf;
}
