#define _POSIX_C_SOURCE 200809L
#include "util/progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/platform.h"

void tn_progress_start(tn_progress *p, const char *label, int64_t total) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total;
    p->start = tn_seconds();
    p->tty = isatty(2);
    p->plain_interval = 10.0;
}

static void format_time(double s, char *buf, size_t cap) {
    if (s < 0 || s > 1e7) snprintf(buf, cap, "--:--");
    else if (s >= 3600) snprintf(buf, cap, "%d:%02d:%02d", (int)s / 3600, ((int)s / 60) % 60, (int)s % 60);
    else snprintf(buf, cap, "%02d:%02d", (int)s / 60, (int)s % 60);
}

void tn_progress_update(tn_progress *p, int64_t done, const char *rate_unit, double rate, const char *extra) {
    double now = tn_seconds(), elapsed = now - p->start;
    double left = done > 0 ? elapsed * (double)(p->total - done) / (double)done : -1;
    char eta[32], el[32];
    format_time(left, eta, sizeof eta);
    format_time(elapsed, el, sizeof el);
    if (p->tty) {
        int width = 24, filled = p->total > 0 ? (int)(width * done / p->total) : 0;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r%s [%s] %lld/%lld %.1f %s, %s elapsed, %s left %s\033[K", p->label, bar, (long long)done,
                (long long)p->total, rate, rate_unit, el, eta, extra ? extra : "");
        fflush(stderr);
    } else if (done == p->total || now - p->last_print >= p->plain_interval || p->last_print == 0) {
        fprintf(stderr, "%s %lld/%lld %.1f %s, %s elapsed, %s left %s\n", p->label, (long long)done, (long long)p->total, rate,
                rate_unit, el, eta, extra ? extra : "");
        p->last_print = now;
    }
}

void tn_progress_finish(tn_progress *p) {
    if (p->tty) fprintf(stderr, "\n");
}
