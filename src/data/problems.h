/* problems.h - what is wrong with a dataset's samples, short of an error.
 *
 * Errors (a line that is not JSON, a field of the wrong type, a missing
 * field, invalid UTF-8, an empty file, a line too long) stop loading: they
 * are tn_fail() messages, "FILE:LINE: what (expected X, got Y)", exit 2.
 * Problems are facts about samples that load: they are collected, counted
 * per kind, and reported by `tune data`. Two kinds are severe - the sample
 * cannot be trained as asked, so it is left out of the batches:
 *
 *   template   the chat template refused the sample (raise_exception)
 *   mask       --mask-prompt: the prompt's tokens are not a prefix of the
 *              full sequence's, or the last message is not the assistant's
 *   no_target  nothing left to train (everything masked or truncated away)
 *
 * The others are warnings and the sample is kept: empty (empty content),
 * role (a role no template we know uses), too_long (truncated to
 * --max-seq-length), duplicate (same tokens and mask as an earlier
 * sample, in any split). */
#ifndef TUNE_DATA_PROBLEMS_H
#define TUNE_DATA_PROBLEMS_H

#include <stddef.h>

typedef enum {
    TN_PROBLEM_EMPTY,
    TN_PROBLEM_ROLE,
    TN_PROBLEM_TOO_LONG,
    TN_PROBLEM_DUPLICATE,
    TN_PROBLEM_TEMPLATE,
    TN_PROBLEM_MASK,
    TN_PROBLEM_NO_TARGET,
    TN_PROBLEM_KINDS
} tn_problem_kind;

typedef struct {
    tn_problem_kind kind;
    const char *file; /* owned by the dataset */
    long line;
    char *message;
} tn_problem;

typedef struct {
    tn_problem *items; /* at most `keep` per kind are kept; all are counted */
    size_t n, cap;
    size_t count[TN_PROBLEM_KINDS];
    size_t keep; /* 0 = 1000 */
} tn_problems;

/* Records a problem; -1 only when out of memory. */
int tn_problems_add(tn_problems *p, tn_problem_kind kind, const char *file, long line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void tn_problems_free(tn_problems *p);
size_t tn_problems_total(const tn_problems *p);
/* Severe problems: the sample is left out. */
size_t tn_problems_severe(const tn_problems *p);

const char *tn_problem_kind_name(tn_problem_kind k);
int tn_problem_is_severe(tn_problem_kind k);

#endif
