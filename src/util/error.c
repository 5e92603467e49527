#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char message[TN_ERR_MAX];

int tn_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return -1;
}

int tn_fail_prefix(const char *fmt, ...) {
    char prefix[TN_ERR_MAX];
    char old[TN_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, message, sizeof old);
    size_t pl = strlen(prefix), ol = strlen(old);
    if (pl > TN_ERR_MAX - 3) pl = TN_ERR_MAX - 3;
    if (ol > TN_ERR_MAX - 3 - pl) ol = TN_ERR_MAX - 3 - pl;
    memcpy(message, prefix, pl);
    memcpy(message + pl, ": ", 2);
    memcpy(message + pl + 2, old, ol);
    message[pl + 2 + ol] = 0;
    return -1;
}

const char *tn_error(void) { return message[0] ? message : "unknown error"; }

void tn_clear_error(void) { message[0] = 0; }

void *tn_malloc(size_t n, const char *what) {
    void *p = malloc(n ? n : 1);
    if (!p) tn_fail("out of memory allocating %zu bytes for %s", n, what);
    return p;
}

void *tn_calloc(size_t count, size_t size, const char *what) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) tn_fail("out of memory allocating %zu x %zu bytes for %s", count, size, what);
    return p;
}

char *tn_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = tn_malloc(n, "a string");
    if (p) memcpy(p, s, n);
    return p;
}
