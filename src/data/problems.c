#include "data/problems.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/error.h"

static const char *const names[TN_PROBLEM_KINDS] = {"empty", "role", "too_long", "duplicate",
                                                     "template", "mask", "no_target"};

const char *tn_problem_kind_name(tn_problem_kind k) {
    return k >= 0 && k < TN_PROBLEM_KINDS ? names[k] : "?";
}

int tn_problem_is_severe(tn_problem_kind k) {
    return k == TN_PROBLEM_TEMPLATE || k == TN_PROBLEM_MASK || k == TN_PROBLEM_NO_TARGET;
}

int tn_problems_add(tn_problems *p, tn_problem_kind kind, const char *file, long line, const char *fmt, ...) {
    size_t keep = p->keep ? p->keep : 1000;
    if (p->count[kind]++ >= keep) return 0;
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 16;
        tn_problem *it = realloc(p->items, nc * sizeof *it);
        if (!it) return tn_fail("out of memory recording a problem");
        p->items = it;
        p->cap = nc;
    }
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *m = tn_strdup(buf);
    if (!m) return -1;
    p->items[p->n++] = (tn_problem){kind, file, line, m};
    return 0;
}

void tn_problems_free(tn_problems *p) {
    for (size_t i = 0; i < p->n; i++) free(p->items[i].message);
    free(p->items);
    p->items = NULL;
    p->n = p->cap = 0;
}

size_t tn_problems_total(const tn_problems *p) {
    size_t t = 0;
    for (int k = 0; k < TN_PROBLEM_KINDS; k++) t += p->count[k];
    return t;
}

size_t tn_problems_severe(const tn_problems *p) {
    size_t t = 0;
    for (int k = 0; k < TN_PROBLEM_KINDS; k++)
        if (tn_problem_is_severe((tn_problem_kind)k)) t += p->count[k];
    return t;
}
