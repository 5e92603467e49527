/* json_span.h - where a value sits in JSON text, so that a record's messages
 * reach the chat template as the very text of the file.
 *
 * Why not re-print the parsed cJSON tree: cJSON keeps numbers as doubles,
 * so a tool call's {"x": 1.0} would come back as 1 and the template's
 * tojson would render it differently from Python. The template interpreter
 * parses the original text itself (ints stay ints, floats stay floats).
 *
 * All functions expect text that cJSON already accepted: they skip values
 * without validating them again. */
#ifndef TUNE_DATA_JSON_SPAN_H
#define TUNE_DATA_JSON_SPAN_H

#include <stddef.h>

typedef struct {
    size_t start, len; /* bytes of text */
} tn_span;

/* The value of member `key` of the object that starts at text[0] (after
 * blanks); 0 with *out set, 1 when absent. The first of duplicate keys is
 * found, as cJSON_GetObjectItem finds it. */
int tn_json_member_span(const char *text, size_t n, const char *key, tn_span *out);
/* The elements of the array that is text[span]: up to max spans written,
 * the count returned. */
size_t tn_json_array_spans(const char *text, tn_span span, tn_span *out, size_t max);

#endif
