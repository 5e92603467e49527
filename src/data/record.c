#include "data/record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "util/error.h"

const char *tn_data_format_name(tn_data_format f) {
    switch (f) {
    case TN_FORMAT_CHAT: return "chat";
    case TN_FORMAT_COMPLETIONS: return "completions";
    case TN_FORMAT_TEXT: return "text";
    default: return "unknown";
    }
}

static int has(const cJSON *root, const char *key) { return cJSON_GetObjectItemCaseSensitive(root, key) != NULL; }

tn_data_format tn_record_detect(const cJSON *root, const tn_data_keys *k) {
    if (has(root, k->prompt) && has(root, k->completion)) return TN_FORMAT_COMPLETIONS;
    if (has(root, k->chat)) return TN_FORMAT_CHAT;
    if (has(root, k->text)) return TN_FORMAT_TEXT;
    return TN_FORMAT_UNKNOWN;
}

/* What a format's record needs, for messages. */
static void format_keys(tn_data_format f, const tn_data_keys *k, char *out, size_t n) {
    switch (f) {
    case TN_FORMAT_CHAT: snprintf(out, n, "'%s'", k->chat); break;
    case TN_FORMAT_COMPLETIONS: snprintf(out, n, "'%s' and '%s'", k->prompt, k->completion); break;
    case TN_FORMAT_TEXT: snprintf(out, n, "'%s'", k->text); break;
    default:
        snprintf(out, n, "'%s', '%s' and '%s', or '%s'", k->chat, k->prompt, k->completion, k->text);
    }
}

/* "keys 'a', 'b'" or "no keys", for messages. */
static void key_list(const cJSON *root, char *out, size_t n) {
    size_t used = 0;
    int count = 0;
    const cJSON *it;
    out[0] = 0;
    cJSON_ArrayForEach(it, root) {
        if (count == 6) {
            snprintf(out + used, n - used, ", ...");
            break;
        }
        int w = snprintf(out + used, n - used, "%s'%.40s'", count ? ", " : "keys ", it->string ? it->string : "");
        if (w < 0 || (size_t)w >= n - used) break;
        used += (size_t)w;
        count++;
    }
    if (!count) snprintf(out, n, "an object with no keys");
}

/* Up to 24 characters of the line from byte `at`, printable, for "got ...". */
static void snippet(const char *s, size_t n, size_t at, char *out, size_t cap) {
    if (at >= n) {
        snprintf(out, cap, "the end of the line");
        return;
    }
    size_t o = 0, i = at, chars = 0;
    out[o++] = '\'';
    while (i < n && chars < 24 && o + 6 < cap) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (i + k > n) break;
        if (c < 0x20) out[o++] = '?', i++;
        else {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        }
        chars++;
    }
    if (i < n && o + 4 < cap) o += (size_t)snprintf(out + o, cap - o, "...");
    out[o++] = '\'';
    out[o] = 0;
}

/* What a line that ends too early still needs: "'\"'", "'}'" or "']'",
 * or NULL when strings and brackets are closed. */
static const char *unclosed(const char *s, size_t n) {
    char stack[64];
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            if (depth < 64) stack[depth] = c;
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0) return NULL;
            depth--;
        }
    }
    if (in_str) return "'\"'";
    if (depth > 0) return depth <= 64 && stack[depth - 1] == '[' ? "']'" : "'}'";
    return NULL;
}

/* Bytes JSON does not allow that cJSON lets through: a raw control
 * character (inside a string it must be escaped; outside, only space, tab
 * and CR are blanks) and the escape \u0000 (cJSON's strings end at NUL, so
 * the text would be cut silently). Returns the offset of the first, or n. */
static size_t bad_control(const char *s, size_t n, int *in_string) {
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 && (in_str || (c != '\t' && c != '\r'))) {
            *in_string = in_str;
            return i;
        }
        if (!in_str) {
            if (c == '"') in_str = 1;
        } else if (c == '\\') {
            if (i + 5 < n && s[i + 1] == 'u' && !memcmp(s + i + 2, "0000", 4)) {
                *in_string = 2;
                return i;
            }
            i++;
        } else if (c == '"') {
            in_str = 0;
        }
    }
    return n;
}

static size_t char_column(const char *s, size_t at) {
    size_t col = 1;
    for (size_t i = 0; i < at; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) col++;
    return col;
}

static int is_blank(const char *s) {
    for (; *s; s++)
        if (!strchr(" \t\r\n", *s)) return 0;
    return 1;
}

static const char *const known_roles[] = {"system", "developer", "user", "assistant", "tool", "function",
                                          "ipython", "tool_results", "tool_response", "document", NULL};

static int known_role(const char *r) {
    for (int i = 0; known_roles[i]; i++)
        if (!strcmp(r, known_roles[i])) return 1;
    return 0;
}

typedef struct {
    const char *file;
    long line;
    tn_problems *probs;
} where;

static int check_message(const cJSON *m, size_t i, const where *w, const char **role_out) {
    if (!cJSON_IsObject(m))
        return tn_fail("%s:%ld: messages[%zu]: expected an object {\"role\", \"content\"}, got %s", w->file, w->line, i,
                       tn_json_type_name(m));
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    if (!role) return tn_fail("%s:%ld: messages[%zu]: missing field 'role' (expected a string)", w->file, w->line, i);
    if (!cJSON_IsString(role))
        return tn_fail("%s:%ld: messages[%zu]: field 'role': expected a string, got %s", w->file, w->line, i,
                       tn_json_type_name(role));
    *role_out = role->valuestring;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
    if (calls && !cJSON_IsNull(calls) && !cJSON_IsArray(calls))
        return tn_fail("%s:%ld: messages[%zu]: field 'tool_calls': expected a list, got %s", w->file, w->line, i,
                       tn_json_type_name(calls));
    int has_calls = cJSON_IsArray(calls) && cJSON_GetArraySize(calls) > 0;
    if (!content && !has_calls)
        return tn_fail("%s:%ld: messages[%zu] (%s): missing field 'content' (expected a string)", w->file, w->line, i,
                       role->valuestring);
    if (content && !cJSON_IsString(content) && !cJSON_IsArray(content) && !cJSON_IsNull(content))
        return tn_fail("%s:%ld: messages[%zu] (%s): field 'content': expected a string, a list of parts or null, got %s",
                       w->file, w->line, i, role->valuestring, tn_json_type_name(content));
    if (cJSON_IsArray(content)) {
        size_t j = 0;
        const cJSON *part;
        cJSON_ArrayForEach(part, content) {
            if (!cJSON_IsObject(part))
                return tn_fail("%s:%ld: messages[%zu].content[%zu]: expected an object such as "
                               "{\"type\": \"text\", \"text\": ...}, got %s",
                               w->file, w->line, i, j, tn_json_type_name(part));
            j++;
        }
    }
    if (!known_role(role->valuestring) &&
        tn_problems_add(w->probs, TN_PROBLEM_ROLE, w->file, w->line,
                        "messages[%zu]: unknown role '%.60s' (expected system, user, assistant or tool)", i,
                        role->valuestring))
        return -1;
    int empty = !has_calls && (!content || cJSON_IsNull(content) ||
                               (cJSON_IsString(content) && is_blank(content->valuestring)) ||
                               (cJSON_IsArray(content) && cJSON_GetArraySize(content) == 0));
    if (empty && tn_problems_add(w->probs, TN_PROBLEM_EMPTY, w->file, w->line, "messages[%zu] (%.60s): empty content",
                                 i, role->valuestring))
        return -1;
    return 0;
}

static int parse_chat(tn_record *r, const tn_data_keys *k, const where *w) {
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(r->root, k->chat);
    if (!cJSON_IsArray(msgs))
        return tn_fail("%s:%ld: field '%s': expected a list of messages, got %s", w->file, w->line, k->chat,
                       tn_json_type_name(msgs));
    size_t n = (size_t)cJSON_GetArraySize(msgs);
    if (n == 0) return tn_fail("%s:%ld: field '%s': expected at least one message, got an empty list", w->file, w->line, k->chat);
    size_t i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        if (check_message(m, i++, w, &r->last_role)) return -1;
    }
    r->n_messages = n;
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(r->root, "tools");
    if (tools && !cJSON_IsNull(tools) && !cJSON_IsArray(tools))
        return tn_fail("%s:%ld: field 'tools': expected a list of tool definitions, got %s", w->file, w->line,
                       tn_json_type_name(tools));
    if (tn_json_member_span(r->line, r->line_n, k->chat, &r->messages)) return tn_fail("%s:%ld: internal: messages not found", w->file, w->line);
    tn_span *spans = tn_malloc(n * sizeof *spans, "message spans");
    if (!spans) return -1;
    size_t got = tn_json_array_spans(r->line, r->messages, spans, n);
    if (got != n) {
        free(spans);
        return tn_fail("%s:%ld: internal: found %zu messages in the text, cJSON %zu", w->file, w->line, got, n);
    }
    r->last_message = spans[n - 1];
    free(spans);
    if (cJSON_IsArray(tools)) {
        r->has_tools = 1;
        tn_json_member_span(r->line, r->line_n, "tools", &r->tools);
    }
    return 0;
}

static const char *string_field(const cJSON *root, const char *key, const where *w, tn_span *raw, const char *line,
                                size_t n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) {
        tn_fail("%s:%ld: missing field '%s' (expected a string)", w->file, w->line, key);
        return NULL;
    }
    if (!cJSON_IsString(v)) {
        tn_fail("%s:%ld: field '%s': expected a string, got %s", w->file, w->line, key, tn_json_type_name(v));
        return NULL;
    }
    if (raw) tn_json_member_span(line, n, key, raw);
    if (is_blank(v->valuestring) &&
        tn_problems_add(w->probs, TN_PROBLEM_EMPTY, w->file, w->line, "field '%s' is empty", key))
        return NULL;
    return v->valuestring;
}

int tn_record_parse(tn_record *r, const char *line, size_t n, tn_data_format expect, long expect_line,
                    const tn_data_keys *k, const char *file, long lineno, tn_problems *probs) {
    memset(r, 0, sizeof *r);
    r->line = line;
    r->line_n = n;
    where w = {file, lineno, probs};
    int in_string = 0;
    size_t bad = bad_control(line, n, &in_string);
    if (bad < n) {
        unsigned char c = (unsigned char)line[bad];
        if (in_string == 2)
            return tn_fail("%s:%ld: a \\u0000 (NUL) escape at column %zu (expected text without NUL characters)", file,
                           lineno, char_column(line, bad));
        if (!in_string)
            return tn_fail("%s:%ld: not valid JSON: a control character U+%04X at column %zu (expected only spaces or "
                           "tabs between values)",
                           file, lineno, c, char_column(line, bad));
        return tn_fail("%s:%ld: not valid JSON: a raw control character U+%04X inside a string at column %zu (expected "
                       "it escaped, as %s)",
                       file, lineno, c, char_column(line, bad), c == '\t' ? "\\t" : c == '\r' ? "\\r" : "\\u00XX");
    }
    const char *end = NULL;
    r->root = cJSON_ParseWithLengthOpts(line, n, &end, 0);
    size_t at = end && end >= line && end <= line + n ? (size_t)(end - line) : 0;
    char got[160];
    if (!r->root) {
        const char *want = unclosed(line, n);
        if (want)
            return tn_fail("%s:%ld: not valid JSON: the line ends inside %s (expected a closing %s, got the end of "
                           "the line)",
                           file, lineno, want[1] == '"' ? "a string" : "an object or list", want);
        snippet(line, n, at, got, sizeof got);
        return tn_fail("%s:%ld: not valid JSON at column %zu (expected %s, got %s)", file, lineno,
                       char_column(line, at), at == 0 ? "a JSON object" : "valid JSON", got);
    }
    while (at < n && strchr(" \t\r", line[at])) at++;
    if (at < n) {
        snippet(line, n, at, got, sizeof got);
        tn_record_free(r);
        return tn_fail("%s:%ld: not valid JSON at column %zu (expected the end of the line after the object, got %s)",
                       file, lineno, char_column(line, at), got);
    }
    if (!cJSON_IsObject(r->root)) {
        tn_fail("%s:%ld: expected a JSON object, got %s", file, lineno, tn_json_type_name(r->root));
        tn_record_free(r);
        return -1;
    }
    tn_data_format f = tn_record_detect(r->root, k);
    char want[160], keys[320];
    if (f == TN_FORMAT_UNKNOWN || (expect != TN_FORMAT_UNKNOWN && f != expect)) {
        format_keys(expect, k, want, sizeof want);
        key_list(r->root, keys, sizeof keys);
        if (expect == TN_FORMAT_UNKNOWN)
            tn_fail("%s:%ld: not a chat, completions or text record (expected %s, got %s)", file, lineno, want, keys);
        else if (f == TN_FORMAT_UNKNOWN)
            tn_fail("%s:%ld: not a %s record (expected %s as on line %ld, got %s)", file, lineno,
                    tn_data_format_name(expect), want, expect_line, keys);
        else
            tn_fail("%s:%ld: a %s record in a %s file (expected %s as on line %ld, got %s); a file holds one format",
                    file, lineno, tn_data_format_name(f), tn_data_format_name(expect), want, expect_line, keys);
        tn_record_free(r);
        return -1;
    }
    r->format = f;
    int rc = 0;
    if (f == TN_FORMAT_CHAT) {
        rc = parse_chat(r, k, &w);
    } else if (f == TN_FORMAT_COMPLETIONS) {
        r->prompt = string_field(r->root, k->prompt, &w, &r->prompt_raw, line, n);
        r->completion = r->prompt ? string_field(r->root, k->completion, &w, &r->completion_raw, line, n) : NULL;
        const cJSON *tools = cJSON_GetObjectItemCaseSensitive(r->root, "tools");
        if (!r->completion) rc = -1;
        else if (tools && !cJSON_IsNull(tools) && !cJSON_IsArray(tools))
            rc = tn_fail("%s:%ld: field 'tools': expected a list of tool definitions, got %s", file, lineno,
                         tn_json_type_name(tools));
        else if (cJSON_IsArray(tools)) {
            r->has_tools = 1;
            tn_json_member_span(line, n, "tools", &r->tools);
        }
    } else {
        r->text = string_field(r->root, k->text, &w, NULL, line, n);
        if (!r->text) rc = -1;
    }
    if (rc) tn_record_free(r);
    return rc;
}

void tn_record_free(tn_record *r) {
    cJSON_Delete(r->root);
    r->root = NULL;
}
