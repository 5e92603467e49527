#include "io/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/error.h"
#include "util/platform.h"

cJSON *tn_json_parse(const char *text, size_t n, const char *where) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!root) {
        /* cJSON reports where it stopped; turn that into line:column. */
        size_t off = (end && end >= text && end <= text + n) ? (size_t)(end - text) : 0;
        int line = 1, col = 1;
        for (size_t i = 0; i < off; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        if (n == 0) tn_fail("%s: empty, expected JSON", where);
        else tn_fail("%s:%d:%d: not valid JSON", where, line, col);
        return NULL;
    }
    return root;
}

cJSON *tn_json_parse_file(const char *path, size_t max_bytes) {
    size_t n = 0;
    char *text = tn_read_file(path, max_bytes, &n);
    if (!text) return NULL;
    cJSON *root = tn_json_parse(text, n, path);
    free(text);
    return root;
}

const char *tn_json_type_name(const cJSON *item) {
    if (!item) return "nothing";
    if (cJSON_IsNull(item)) return "null";
    if (cJSON_IsBool(item)) return "a boolean";
    if (cJSON_IsNumber(item)) return "a number";
    if (cJSON_IsString(item)) return "a string";
    if (cJSON_IsArray(item)) return "an array";
    if (cJSON_IsObject(item)) return "an object";
    return "an invalid value";
}

int tn_json_as_int(const cJSON *item, const char *what, const char *where, int64_t lo, int64_t hi,
                   int64_t *out) {
    if (!cJSON_IsNumber(item))
        return tn_fail("%s: %s: expected an integer, got %s", where, what, tn_json_type_name(item));
    double v = item->valuedouble;
    if (!isfinite(v) || v != floor(v) || v < (double)lo || v > (double)hi)
        return tn_fail("%s: %s: expected an integer in [%lld, %lld], got %.17g", where, what,
                       (long long)lo, (long long)hi, v);
    *out = (int64_t)v;
    return 0;
}

static int get_int(const cJSON *obj, const char *key, const char *where, int64_t *out, int required) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item || cJSON_IsNull(item)) {
        if (required) return tn_fail("%s: missing field '%s' (expected an integer)", where, key);
        return 1;
    }
    char what[256];
    snprintf(what, sizeof what, "field '%s'", key);
    return tn_json_as_int(item, what, where, INT64_MIN / 2, INT64_MAX / 2, out);
}

int tn_json_int(const cJSON *obj, const char *key, const char *where, int64_t *out) {
    return get_int(obj, key, where, out, 1);
}

int tn_json_opt_int(const cJSON *obj, const char *key, const char *where, int64_t *out) {
    return get_int(obj, key, where, out, 0);
}

static int get_num(const cJSON *obj, const char *key, const char *where, double *out, int required) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item || cJSON_IsNull(item)) {
        if (required) return tn_fail("%s: missing field '%s' (expected a number)", where, key);
        return 1;
    }
    if (!cJSON_IsNumber(item))
        return tn_fail("%s: field '%s': expected a number, got %s", where, key,
                       tn_json_type_name(item));
    *out = item->valuedouble;
    return 0;
}

int tn_json_num(const cJSON *obj, const char *key, const char *where, double *out) {
    return get_num(obj, key, where, out, 1);
}

int tn_json_opt_num(const cJSON *obj, const char *key, const char *where, double *out) {
    return get_num(obj, key, where, out, 0);
}

int tn_json_opt_bool(const cJSON *obj, const char *key, const char *where, int *out) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item || cJSON_IsNull(item)) return 1;
    if (!cJSON_IsBool(item))
        return tn_fail("%s: field '%s': expected true or false, got %s", where, key,
                       tn_json_type_name(item));
    *out = cJSON_IsTrue(item);
    return 0;
}

const char *tn_json_str(const cJSON *obj, const char *key, const char *where) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(item)) {
        if (!item) tn_fail("%s: missing field '%s' (expected a string)", where, key);
        else tn_fail("%s: field '%s': expected a string, got %s", where, key,
                     tn_json_type_name(item));
        return NULL;
    }
    return item->valuestring;
}

const char *tn_json_opt_str(const cJSON *obj, const char *key, const char *where, int *bad) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    *bad = 0;
    if (!item || cJSON_IsNull(item)) return NULL;
    if (!cJSON_IsString(item)) {
        *bad = 1;
        tn_fail("%s: field '%s': expected a string, got %s", where, key, tn_json_type_name(item));
        return NULL;
    }
    return item->valuestring;
}
