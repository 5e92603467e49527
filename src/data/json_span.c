#include "data/json_span.h"

#include <string.h>

static size_t skip_ws(const char *s, size_t i, size_t n) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

/* Index just past the string that starts at s[i] == '"'. */
static size_t skip_string(const char *s, size_t i, size_t n) {
    for (i++; i < n; i++) {
        if (s[i] == '\\') i++;
        else if (s[i] == '"') return i + 1;
    }
    return n;
}

/* Index just past the value that starts at s[i]. */
static size_t skip_value(const char *s, size_t i, size_t n) {
    if (i >= n) return n;
    if (s[i] == '"') return skip_string(s, i, n);
    if (s[i] == '{' || s[i] == '[') {
        int depth = 0;
        for (; i < n; i++) {
            char c = s[i];
            if (c == '"') {
                i = skip_string(s, i, n) - 1;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (--depth == 0) return i + 1;
            }
        }
        return n;
    }
    while (i < n && !strchr(",}] \t\r\n", s[i])) i++; /* number, true, false, null */
    return i;
}

/* 1 when the JSON string at s[i..end) (quotes included) equals key. The
 * keys we look up are plain ASCII; an escaped spelling of one is compared
 * after decoding the simple escapes. */
static int key_equals(const char *s, size_t i, size_t end, const char *key) {
    size_t k = 0, kn = strlen(key);
    for (size_t j = i + 1; j + 1 < end; j++) {
        char c = s[j];
        if (c == '\\' && j + 2 < end) {
            char e = s[++j];
            if (e == 'u' && j + 4 < end) {
                unsigned v = 0;
                for (int d = 1; d <= 4; d++) {
                    char h = s[j + d];
                    v = v * 16 + (unsigned)(h >= '0' && h <= '9' ? h - '0' : (h | 32) - 'a' + 10);
                }
                if (v > 0x7F) return 0;
                c = (char)v;
                j += 4;
            } else {
                c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : e;
            }
        }
        if (k >= kn || key[k++] != c) return 0;
    }
    return k == kn;
}

int tn_json_member_span(const char *s, size_t n, const char *key, tn_span *out) {
    size_t i = skip_ws(s, 0, n);
    if (i >= n || s[i] != '{') return 1;
    i++;
    for (;;) {
        i = skip_ws(s, i, n);
        if (i >= n || s[i] != '"') return 1;
        size_t kend = skip_string(s, i, n);
        int hit = key_equals(s, i, kend, key);
        i = skip_ws(s, kend, n);
        if (i >= n || s[i] != ':') return 1;
        i = skip_ws(s, i + 1, n);
        size_t vend = skip_value(s, i, n);
        if (hit) {
            out->start = i;
            out->len = vend - i;
            return 0;
        }
        i = skip_ws(s, vend, n);
        if (i >= n || s[i] != ',') return 1;
        i++;
    }
}

size_t tn_json_array_spans(const char *s, tn_span span, tn_span *out, size_t max) {
    size_t n = span.start + span.len, i = skip_ws(s, span.start, n), count = 0;
    if (i >= n || s[i] != '[') return 0;
    i = skip_ws(s, i + 1, n);
    if (i < n && s[i] == ']') return 0;
    while (i < n) {
        size_t end = skip_value(s, i, n);
        if (count < max) {
            out[count].start = i;
            out[count].len = end - i;
        }
        count++;
        i = skip_ws(s, end, n);
        if (i >= n || s[i] != ',') break;
        i = skip_ws(s, i + 1, n);
    }
    return count;
}
