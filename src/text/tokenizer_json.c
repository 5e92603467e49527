/* tokenizer_json.c - a pull reader for JSON text, used for the two large
 * members of tokenizer.json (model.vocab: 262k strings for Gemma 3;
 * model.merges: 515k pairs). Building a cJSON tree of those takes over half a
 * second and hundreds of MB; reading them in place takes a few hundredths.
 * The small members are handed to cJSON by their spans. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_internal.h"
#include "util/error.h"

static void line_col(const tk_json *j, const char *at, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (const char *q = j->text; q < at && q < j->end; q++) {
        if (*q == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char)*q & 0xC0) != 0x80) {
            (*col)++;
        }
    }
}

int tk_json_fail(const tk_json *j, const char *expected) {
    int line, col;
    line_col(j, j->p, &line, &col);
    char got[32];
    if (j->p >= j->end) snprintf(got, sizeof got, "the end of the file");
    else if ((unsigned char)*j->p >= 0x20 && (unsigned char)*j->p < 0x7F)
        snprintf(got, sizeof got, "'%c'", *j->p);
    else snprintf(got, sizeof got, "byte 0x%02X", (unsigned char)*j->p);
    return tn_fail("%s:%d:%d: not valid JSON (expected %s, got %s)", j->where, line, col, expected,
                   got);
}

void tk_json_ws(tk_json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

char tk_json_peek(tk_json *j) {
    tk_json_ws(j);
    return j->p < j->end ? *j->p : 0;
}

int tk_json_expect(tk_json *j, char c) {
    tk_json_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 0;
    }
    char what[8] = {'\'', c, '\'', 0};
    return tk_json_fail(j, what);
}

static int hex4(const char *p, uint32_t *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        *v = *v * 16 + (uint32_t)d;
    }
    return 0;
}

int tk_json_string(tk_json *j, tk_buf *out) {
    out->n = 0;
    if (tk_json_expect(j, '"')) return -1;
    for (;;) {
        /* Copy the plain run in one go. */
        const char *q = j->p;
        while (q < j->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20) q++;
        if (tk_buf_add(out, j->p, (size_t)(q - j->p))) return -1;
        j->p = q;
        if (q >= j->end) return tk_json_fail(j, "'\"' closing the string");
        if (*q == '"') {
            j->p++;
            return 0;
        }
        if ((unsigned char)*q < 0x20) return tk_json_fail(j, "an escaped control character");
        /* An escape. */
        if (q + 1 >= j->end) return tk_json_fail(j, "an escape");
        char e = q[1], c;
        j->p = q + 2;
        switch (e) {
        case '"': c = '"'; break;
        case '\\': c = '\\'; break;
        case '/': c = '/'; break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case 't': c = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (j->end - j->p < 4 || hex4(j->p, &cp)) return tk_json_fail(j, "4 hex digits");
            j->p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' || hex4(j->p + 2, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return tk_json_fail(j, "a low surrogate after a high one");
                j->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return tk_json_fail(j, "no lone low surrogate");
            }
            char u[4];
            if (tk_buf_add(out, u, tk_utf8_encode(cp, u))) return -1;
            continue;
        }
        default:
            j->p = q;
            return tk_json_fail(j, "a valid escape");
        }
        if (tk_buf_addc(out, c)) return -1;
    }
}

int tk_json_int(tk_json *j, int64_t *v) {
    tk_json_ws(j);
    const char *q = j->p;
    int neg = 0;
    if (q < j->end && *q == '-') neg = 1, q++;
    if (q >= j->end || *q < '0' || *q > '9') return tk_json_fail(j, "an integer");
    int64_t x = 0;
    while (q < j->end && *q >= '0' && *q <= '9') {
        if (x > (INT64_MAX - 9) / 10) return tk_json_fail(j, "an integer of at most 18 digits");
        x = x * 10 + (*q++ - '0');
    }
    if (q < j->end && (*q == '.' || *q == 'e' || *q == 'E')) {
        j->p = q;
        return tk_json_fail(j, "an integer, not a fraction");
    }
    j->p = q;
    *v = neg ? -x : x;
    return 0;
}

static int skip_literal(tk_json *j, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n)) return tk_json_fail(j, "a value");
    j->p += n;
    return 0;
}

int tk_json_more(tk_json *j, char close, int *first) {
    char c = tk_json_peek(j);
    if (c == close) {
        j->p++;
        return 0;
    }
    if (!*first) {
        if (c != ',') return tk_json_fail(j, close == '}' ? "',' or '}'" : "',' or ']'");
        j->p++;
    }
    *first = 0;
    return 1;
}

/* Depth is bounded so that a hostile file cannot exhaust the stack. */
static int skip_value(tk_json *j, int depth) {
    if (depth > 512) return tk_json_fail(j, "nesting under 512 levels");
    char c = tk_json_peek(j);
    tk_buf tmp = {0};
    int rc = 0, first = 1, more;
    switch (c) {
    case '"':
        rc = tk_json_string(j, &tmp);
        tk_buf_free(&tmp);
        return rc;
    case '{':
        j->p++;
        while ((more = tk_json_more(j, '}', &first)) == 1) {
            if (tk_json_string(j, &tmp) || tk_json_expect(j, ':') || skip_value(j, depth + 1)) {
                tk_buf_free(&tmp);
                return -1;
            }
        }
        tk_buf_free(&tmp);
        return more;
    case '[':
        j->p++;
        while ((more = tk_json_more(j, ']', &first)) == 1)
            if (skip_value(j, depth + 1)) return -1;
        return more;
    case 't': return skip_literal(j, "true");
    case 'f': return skip_literal(j, "false");
    case 'n': return skip_literal(j, "null");
    default: {
        if (c != '-' && (c < '0' || c > '9')) return tk_json_fail(j, "a value");
        j->p++;
        while (j->p < j->end && *j->p && strchr("0123456789.eE+-", *j->p)) j->p++;
        return 0;
    }
    }
}

int tk_json_skip(tk_json *j, const char **start, const char **stop) {
    tk_json_ws(j);
    *start = j->p;
    if (skip_value(j, 0)) return -1;
    *stop = j->p;
    return 0;
}
