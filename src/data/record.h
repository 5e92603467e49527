/* record.h - one JSONL line as a training record: its format and checked
 * fields.
 *
 * Formats (mlx-lm's, detected in its order from the first record of a file):
 *   completions  {"prompt": str, "completion": str, "tools"?: list}
 *   chat         {"messages": [{"role": str, "content": str|list|null, ...}], "tools"?: list}
 *   text         {"text": str}
 * Key names are configurable (tn_data_keys). Other members are ignored. A
 * message needs "content" unless it has "tool_calls". */
#ifndef TUNE_DATA_RECORD_H
#define TUNE_DATA_RECORD_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "data/json_span.h"
#include "data/problems.h"

typedef enum { TN_FORMAT_UNKNOWN, TN_FORMAT_CHAT, TN_FORMAT_COMPLETIONS, TN_FORMAT_TEXT } tn_data_format;

const char *tn_data_format_name(tn_data_format f);

typedef struct {
    const char *chat;       /* "messages" */
    const char *prompt;     /* "prompt" */
    const char *completion; /* "completion" */
    const char *text;       /* "text" */
} tn_data_keys;

typedef struct {
    tn_data_format format;
    cJSON *root;
    const char *line; /* the line's text (not owned) */
    size_t line_n;
    /* chat */
    tn_span messages;       /* the raw text of the list */
    size_t n_messages;
    const char *last_role;  /* owned by root */
    tn_span last_message;   /* raw text of the last element */
    tn_span tools;          /* raw text, when has_tools */
    int has_tools;
    /* completions and text: the strings (owned by root) and their raw JSON */
    const char *prompt, *completion, *text;
    tn_span prompt_raw, completion_raw;
} tn_record;

/* The format a record's keys say, in mlx-lm's order, or UNKNOWN. */
tn_data_format tn_record_detect(const cJSON *root, const tn_data_keys *k);

/* Parses and checks a line. expect: the file's format (UNKNOWN for the
 * first record, which sets it), set by line `expect_line`. `file` and
 * `lineno` name the line in messages. Returns 0, or -1 with
 * "FILE:LINE: what (expected X, got Y)". Warnings (empty content, unknown
 * role) go to probs. */
int tn_record_parse(tn_record *r, const char *line, size_t n, tn_data_format expect, long expect_line,
                    const tn_data_keys *k, const char *file, long lineno, tn_problems *probs);
void tn_record_free(tn_record *r);

#endif
