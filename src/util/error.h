/* error.h - one error message per thread, set where a failure is found.
 *
 * Functions that can fail return a negative int (or NULL) after calling
 * tn_fail(), which formats the message; callers add context with
 * tn_fail_prefix() and pass the failure up. Only main() prints the message
 * ("tune: <message>") and decides the exit code. The message names the file
 * (and line or field) and says what was expected and what was found. */
#ifndef TUNE_ERROR_H
#define TUNE_ERROR_H

#include <stddef.h>

#define TN_ERR_MAX 2048

/* Exit codes, as design/CLI.md fixes them. */
enum { TN_EXIT_OK = 0, TN_EXIT_FAILED = 1, TN_EXIT_USAGE = 2 };

/* Formats the message, returns -1 so that `return tn_fail(...)` reads well. */
int tn_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prepends "prefix: " to the current message, returns -1. */
int tn_fail_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *tn_error(void);
void tn_clear_error(void);

/* Allocation that reports (rather than aborts) on failure. */
void *tn_malloc(size_t n, const char *what);
void *tn_calloc(size_t count, size_t size, const char *what);
char *tn_strdup(const char *s);

#endif
