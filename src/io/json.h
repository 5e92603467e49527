/* json.h - JSON through cJSON (Debian's libcjson), with errors that name the
 * file, the line and column, and the field.
 *
 * cJSON keeps object members in file order, which chat templates (tojson)
 * and safetensors headers rely on. Numbers are doubles: integers are exact
 * up to 2^53, checked where a field must be an integer. */
#ifndef TUNE_JSON_H
#define TUNE_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* Parses text of length n; `where` names it in errors (a file name). */
cJSON *tn_json_parse(const char *text, size_t n, const char *where);
/* Reads and parses a file of at most max_bytes. */
cJSON *tn_json_parse_file(const char *path, size_t max_bytes);

/* Field getters: return 0 and set *out, or -1 with a message
 * "<where>: field '<key>': expected <type>, got <...>". A missing field is an
 * error for tn_json_*; tn_json_opt_* leave *out untouched and return 1. */
int tn_json_int(const cJSON *obj, const char *key, const char *where, int64_t *out);
int tn_json_opt_int(const cJSON *obj, const char *key, const char *where, int64_t *out);
int tn_json_num(const cJSON *obj, const char *key, const char *where, double *out);
int tn_json_opt_num(const cJSON *obj, const char *key, const char *where, double *out);
int tn_json_opt_bool(const cJSON *obj, const char *key, const char *where, int *out);
/* Returns the string value (owned by obj) or NULL; required variant fails. */
const char *tn_json_str(const cJSON *obj, const char *key, const char *where);
const char *tn_json_opt_str(const cJSON *obj, const char *key, const char *where, int *bad);

/* A number that is an exact integer within [lo, hi]. */
int tn_json_as_int(const cJSON *item, const char *what, const char *where, int64_t lo, int64_t hi,
                   int64_t *out);

/* The JSON type of an item in words ("a string", "null", ...). */
const char *tn_json_type_name(const cJSON *item);

#endif
