/* progress.h - a progress line for long work on stderr: a bar with the rate
 * and time left when stderr is a terminal, plain lines (one per update
 * interval) otherwise, as design/CLI.md asks. */
#ifndef TUNE_PROGRESS_H
#define TUNE_PROGRESS_H

#include <stdint.h>

typedef struct {
    const char *label;
    int64_t total;
    double start, last_print;
    int tty;
    double plain_interval; /* seconds between plain lines */
} tn_progress;

void tn_progress_start(tn_progress *p, const char *label, int64_t total);
/* done of total; `extra` is appended (e.g. "loss 2.314 lr 1.0e-04"). */
void tn_progress_update(tn_progress *p, int64_t done, const char *rate_unit, double rate, const char *extra);
void tn_progress_finish(tn_progress *p);

#endif
