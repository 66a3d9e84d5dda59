/* common.c: thread-local error message, status names, checked allocation, clock. */
#include "sqakd/common.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static _Thread_local char g_err[1024];

void sq_set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
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

double sq_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
