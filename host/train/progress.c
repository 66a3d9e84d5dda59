/* progress.c: a live status line on a terminal (epoch, step, loss, images/s, ETA), plain
   periodic lines otherwise (logs, CI). */
#include "sqakd/train.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct sq_progress { int tty, quiet, live; double last_plain; };

sq_progress *sq_progress_new(int quiet)
{
    sq_progress *p = sq_xcalloc(1, sizeof *p);
    p->tty = isatty(2);
    p->quiet = quiet;
    p->last_plain = -1e9;
    return p;
}

static void fmt_time(double s, char *buf, size_t n)
{
    if (s < 0 || s > 1e7) { snprintf(buf, n, "--:--"); return; }
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%02d:%02d", t / 60, t % 60);
}

void sq_progress_update(sq_progress *p, int epoch, int epochs, int step, int steps, double loss,
                        double img_per_s, double eta_s)
{
    if (p->quiet) return;
    char eta[32];
    fmt_time(eta_s, eta, sizeof eta);
    if (p->tty) {
        fprintf(stderr, "\r\033[K epoch %d/%d  step %d/%d  loss %.4f  %.0f img/s  ETA %s", epoch, epochs,
                step, steps, loss, img_per_s, eta);
        p->live = 1;
    } else {
        double now = sq_now();
        if (now - p->last_plain < 10.0 && step != steps) return;
        p->last_plain = now;
        fprintf(stderr, "epoch %d/%d step %d/%d loss %.4f %.0f img/s ETA %s\n", epoch, epochs, step, steps,
                loss, img_per_s, eta);
    }
    fflush(stderr);
}

void sq_progress_line(sq_progress *p, const char *fmt, ...)
{
    if (p->quiet) return;
    if (p->live) { fprintf(stderr, "\r\033[K"); p->live = 0; }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

void sq_progress_free(sq_progress *p)
{
    if (p && p->live) fputc('\n', stderr);
    free(p);
}
