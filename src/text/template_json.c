/* template_json.c - JSON text -> template values, as Python's json.loads
 * makes them (integers stay ints, numbers with a fraction or exponent are
 * floats, objects keep key order, a repeated key keeps its first place and
 * its last value, NaN/Infinity accepted), and values -> JSON text, as
 * json.dumps writes it (HF's tojson: ensure_ascii, indent, separators,
 * sort_keys; floats as Python's repr). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/template_internal.h"
#include "util/error.h"

#define JSON_MAX_DEPTH 500

typedef struct {
    tt_arena *a;
    const char *s;
    size_t n, i;
    const char *where;
    int depth;
} jp;

static int jfail(jp *p, size_t at, const char *what) {
    int line = 1, col = 1;
    for (size_t k = 0; k < at && k < p->n; k++) {
        if (p->s[k] == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)p->s[k] & 0xC0) != 0x80)
            col++;
    }
    return tn_fail("%s:%d:%d: %s", p->where, line, col, what);
}

static void skip_ws(jp *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static int hex4(const char *s, uint32_t *out) {
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        int d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        v = v * 16 + (uint32_t)d;
    }
    *out = v;
    return 0;
}

/* Validates one UTF-8 sequence at s (strictly: no overlongs, surrogates or
 * values past U+10FFFF); returns its length or 0. */
static size_t utf8_valid(const unsigned char *s, size_t n) {
    if (s[0] < 0x80) return 1;
    size_t k;
    uint32_t min;
    uint32_t cp;
    if ((s[0] & 0xE0) == 0xC0) {
        k = 2;
        min = 0x80;
        cp = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        k = 3;
        min = 0x800;
        cp = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        k = 4;
        min = 0x10000;
        cp = s[0] & 0x07;
    } else
        return 0;
    if (k > n) return 0;
    for (size_t j = 1; j < k; j++) {
        if ((s[j] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return k;
}

static int parse_string(jp *p, tv *out) {
    size_t start = p->i++; /* the opening quote */
    tt_buf b = {0};
    for (;;) {
        if (p->i >= p->n) {
            tt_buf_free(&b);
            return jfail(p, start, "unterminated string");
        }
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') {
            p->i++;
            break;
        }
        if (c < 0x20) {
            tt_buf_free(&b);
            return jfail(p, p->i, "invalid control character in a string");
        }
        if (c == '\\') {
            if (p->i + 1 >= p->n) {
                tt_buf_free(&b);
                return jfail(p, p->i, "unterminated string");
            }
            char e = p->s[p->i + 1];
            int rc = 0;
            uint32_t cp;
            switch (e) {
            case '"': rc = tt_buf_putc(&b, '"'); break;
            case '\\': rc = tt_buf_putc(&b, '\\'); break;
            case '/': rc = tt_buf_putc(&b, '/'); break;
            case 'b': rc = tt_buf_putc(&b, '\b'); break;
            case 'f': rc = tt_buf_putc(&b, '\f'); break;
            case 'n': rc = tt_buf_putc(&b, '\n'); break;
            case 'r': rc = tt_buf_putc(&b, '\r'); break;
            case 't': rc = tt_buf_putc(&b, '\t'); break;
            case 'u':
                if (p->i + 6 > p->n || hex4(p->s + p->i + 2, &cp)) {
                    tt_buf_free(&b);
                    return jfail(p, p->i, "invalid \\uXXXX escape");
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    uint32_t lo;
                    if (p->i + 12 <= p->n && p->s[p->i + 6] == '\\' && p->s[p->i + 7] == 'u' &&
                        !hex4(p->s + p->i + 8, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        p->i += 6;
                    } else {
                        tt_buf_free(&b);
                        return jfail(p, p->i, "lone surrogate in a \\u escape (not supported)");
                    }
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    tt_buf_free(&b);
                    return jfail(p, p->i, "lone surrogate in a \\u escape (not supported)");
                }
                rc = tt_buf_put_cp(&b, cp);
                p->i += 4;
                break;
            default: tt_buf_free(&b); return jfail(p, p->i, "invalid escape in a string");
            }
            if (rc) {
                tt_buf_free(&b);
                return -1;
            }
            p->i += 2;
            continue;
        }
        size_t k = utf8_valid((const unsigned char *)p->s + p->i, p->n - p->i);
        if (!k) {
            tt_buf_free(&b);
            return jfail(p, p->i, "invalid UTF-8 in a string");
        }
        if (tt_buf_put(&b, p->s + p->i, k)) {
            tt_buf_free(&b);
            return -1;
        }
        p->i += k;
    }
    int rc = tv_str_make(p->a, b.p ? b.p : "", b.n, out);
    tt_buf_free(&b);
    return rc;
}

static int parse_number(jp *p, tv *out) {
    size_t st = p->i, i = p->i;
    const char *s = p->s;
    if (i < p->n && s[i] == '-') i++;
    if (i + 8 <= p->n && !memcmp(s + i, "Infinity", 8) && i > st) {
        p->i = i + 8;
        *out = tv_float(-INFINITY);
        return 0;
    }
    if (i >= p->n || s[i] < '0' || s[i] > '9') return jfail(p, st, "expected a value");
    if (s[i] == '0') i++;
    else
        while (i < p->n && s[i] >= '0' && s[i] <= '9') i++;
    int is_float = 0;
    if (i + 1 < p->n && s[i] == '.' && s[i + 1] >= '0' && s[i + 1] <= '9') {
        is_float = 1;
        i++;
        while (i < p->n && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < p->n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < p->n && (s[j] == '+' || s[j] == '-')) j++;
        if (j < p->n && s[j] >= '0' && s[j] <= '9') {
            is_float = 1;
            i = j;
            while (i < p->n && s[i] >= '0' && s[i] <= '9') i++;
        }
    }
    char tmp[400];
    if (i - st >= sizeof tmp) return jfail(p, st, "number too long");
    memcpy(tmp, s + st, i - st);
    tmp[i - st] = 0;
    p->i = i;
    if (is_float) {
        *out = tv_float(strtod(tmp, NULL));
        return 0;
    }
    int neg = tmp[0] == '-';
    uint64_t v = 0;
    for (const char *q = tmp + neg; *q; q++) {
        uint64_t d = (uint64_t)(*q - '0');
        if (v > (UINT64_MAX - d) / 10) return jfail(p, st, "integer too large (tune keeps integers in 64 bits)");
        v = v * 10 + d;
    }
    if ((!neg && v > (uint64_t)INT64_MAX) || (neg && v > (uint64_t)INT64_MAX + 1))
        return jfail(p, st, "integer too large (tune keeps integers in 64 bits)");
    *out = tv_int(neg ? (int64_t)(0 - v) : (int64_t)v);
    return 0;
}

static int parse_value(jp *p, tv *out) {
    skip_ws(p);
    if (p->i >= p->n) return jfail(p, p->i, "expected a value, got the end");
    char c = p->s[p->i];
    if (c == '"') return parse_string(p, out);
    if (c == '{' || c == '[') {
        if (++p->depth > JSON_MAX_DEPTH) return jfail(p, p->i, "nested too deeply");
        size_t open = p->i++;
        int obj = c == '{';
        tv_list *l = obj ? NULL : tt_list_new(p->a, 0);
        tv_dict *d = obj ? tt_dict_new(p->a, 0) : NULL;
        if (!l && !d) return -1;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) {
            p->i++;
        } else {
            for (;;) {
                skip_ws(p);
                tv k, v;
                if (obj) {
                    if (p->i >= p->n || p->s[p->i] != '"')
                        return jfail(p, p->i, "expected a property name in double quotes");
                    if (parse_string(p, &k)) return -1;
                    skip_ws(p);
                    if (p->i >= p->n || p->s[p->i] != ':') return jfail(p, p->i, "expected ':'");
                    p->i++;
                }
                if (parse_value(p, &v)) return -1;
                if (obj ? tt_dict_set(p->a, d, k, v) : tt_list_push(p->a, l, v)) return -1;
                skip_ws(p);
                if (p->i < p->n && p->s[p->i] == ',') {
                    p->i++;
                    continue;
                }
                if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) {
                    p->i++;
                    break;
                }
                return jfail(p, p->i >= p->n ? open : p->i, obj ? "expected ',' or '}'" : "expected ',' or ']'");
            }
        }
        p->depth--;
        if (obj) {
            out->type = TV_DICT;
            out->d = d;
        } else {
            out->type = TV_LIST;
            out->l = l;
        }
        return 0;
    }
    static const struct {
        const char *w;
        int kind;
    } words[] = {{"true", 1}, {"false", 2}, {"null", 3}, {"NaN", 4}, {"Infinity", 5}};
    for (size_t k = 0; k < sizeof words / sizeof words[0]; k++) {
        size_t wl = strlen(words[k].w);
        if (p->i + wl <= p->n && !memcmp(p->s + p->i, words[k].w, wl)) {
            p->i += wl;
            switch (words[k].kind) {
            case 1: *out = tv_bool(1); break;
            case 2: *out = tv_bool(0); break;
            case 3: *out = tv_none(); break;
            case 4: *out = tv_float(NAN); break;
            default: *out = tv_float(INFINITY); break;
            }
            return 0;
        }
    }
    return parse_number(p, out);
}

int tt_json_parse(tt_arena *a, const char *text, size_t n, const char *where, tv *out) {
    jp p = {a, text, n, 0, where, 0};
    if (n >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) return jfail(&p, 0, "unexpected UTF-8 BOM");
    if (parse_value(&p, out)) return -1;
    skip_ws(&p);
    if (p.i != n) return jfail(&p, p.i, "extra data after the JSON value");
    return 0;
}

/* ------------------------------------------------------------------ dumps */

static int dump_str(tt_buf *b, const char *s, size_t n, int ascii) {
    if (tt_buf_putc(b, '"')) return -1;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        int rc;
        if (c == '"') rc = tt_buf_puts(b, "\\\"");
        else if (c == '\\') rc = tt_buf_puts(b, "\\\\");
        else if (c == '\n') rc = tt_buf_puts(b, "\\n");
        else if (c == '\r') rc = tt_buf_puts(b, "\\r");
        else if (c == '\t') rc = tt_buf_puts(b, "\\t");
        else if (c == '\b') rc = tt_buf_puts(b, "\\b");
        else if (c == '\f') rc = tt_buf_puts(b, "\\f");
        else if (c < 0x20 || (ascii && c == 0x7F)) rc = tt_buf_printf(b, "\\u%04x", c);
        else if (c < 0x80 || !ascii) {
            size_t e = i + 1;
            if (c >= 0x80)
                while (e < n && ((unsigned char)s[e] & 0xC0) == 0x80) e++;
            rc = tt_buf_put(b, s + i, e - i);
            i = e;
            if (rc) return -1;
            continue;
        } else {
            size_t k;
            uint32_t cp = tt_utf8_next(s + i, n - i, &k);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                rc = tt_buf_printf(b, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
            } else
                rc = tt_buf_printf(b, "\\u%04x", cp);
            i += k;
            if (rc) return -1;
            continue;
        }
        if (rc) return -1;
        i++;
    }
    return tt_buf_putc(b, '"');
}

static int dump_float(tt_buf *b, double x) {
    if (isnan(x)) return tt_buf_puts(b, "NaN");
    if (isinf(x)) return tt_buf_puts(b, x > 0 ? "Infinity" : "-Infinity");
    char t[40];
    tt_fmt_float(x, t);
    return tt_buf_puts(b, t);
}

static int newline_indent(tt_buf *b, const tt_json_opts *o, int level) {
    if (tt_buf_putc(b, '\n')) return -1;
    for (int i = 0; i < level; i++)
        if (tt_buf_put(b, o->indent, o->indent_len)) return -1;
    return 0;
}

static int dump(tt_ctx *c, uint32_t pos, tv v, const tt_json_opts *o, tt_buf *b, int level) {
    if (level > JSON_MAX_DEPTH) return tt_fail_at(c->t, pos, "tojson: nested too deeply");
    switch (v.type) {
    case TV_NONE: return tt_buf_puts(b, "null");
    case TV_BOOL: return tt_buf_puts(b, v.b ? "true" : "false");
    case TV_INT: return tt_buf_printf(b, "%" PRId64, v.i);
    case TV_FLOAT: return dump_float(b, v.f);
    case TV_STR: return dump_str(b, v.s->s, v.s->len, o->ensure_ascii);
    case TV_LIST:
    case TV_TUPLE: {
        if (v.l->n == 0) return tt_buf_puts(b, "[]");
        if (tt_buf_putc(b, '[')) return -1;
        if (o->have_indent && newline_indent(b, o, level + 1)) return -1;
        for (size_t i = 0; i < v.l->n; i++) {
            if (i) {
                if (tt_buf_puts(b, o->item_sep)) return -1;
                if (o->have_indent && newline_indent(b, o, level + 1)) return -1;
            }
            if (dump(c, pos, v.l->v[i], o, b, level + 1)) return -1;
        }
        if (o->have_indent && newline_indent(b, o, level)) return -1;
        return tt_buf_putc(b, ']');
    }
    case TV_DICT: {
        size_t n = v.d->n;
        if (n == 0) return tt_buf_puts(b, "{}");
        size_t *order = tt_alloc(c->a, n * sizeof *order);
        if (!order) return -1;
        for (size_t i = 0; i < n; i++) order[i] = i;
        if (o->sort_keys) {
            /* insertion sort: stable, and dicts in templates are small */
            for (size_t i = 1; i < n; i++) {
                size_t x = order[i], j = i;
                while (j > 0) {
                    int r;
                    if (tv_cmp(c, pos, v.d->k[x], v.d->k[order[j - 1]], &r)) return -1;
                    if (r >= 0) break;
                    order[j] = order[j - 1];
                    j--;
                }
                order[j] = x;
            }
        }
        if (tt_buf_putc(b, '{')) return -1;
        if (o->have_indent && newline_indent(b, o, level + 1)) return -1;
        for (size_t i = 0; i < n; i++) {
            tv k = v.d->k[order[i]];
            if (i) {
                if (tt_buf_puts(b, o->item_sep)) return -1;
                if (o->have_indent && newline_indent(b, o, level + 1)) return -1;
            }
            int rc;
            switch (k.type) {
            case TV_STR: rc = dump_str(b, k.s->s, k.s->len, o->ensure_ascii); break;
            case TV_BOOL: rc = tt_buf_puts(b, k.b ? "\"true\"" : "\"false\""); break;
            case TV_NONE: rc = tt_buf_puts(b, "\"null\""); break;
            case TV_INT: rc = tt_buf_printf(b, "\"%" PRId64 "\"", k.i); break;
            case TV_FLOAT: rc = tt_buf_putc(b, '"') || dump_float(b, k.f) || tt_buf_putc(b, '"'); break;
            default:
                return tt_fail_at(c->t, pos, "tojson: keys must be str, int, float, bool or None, not %s",
                                  tv_type_name(k));
            }
            if (rc || tt_buf_puts(b, o->key_sep) || dump(c, pos, v.d->v[order[i]], o, b, level + 1)) return -1;
        }
        if (o->have_indent && newline_indent(b, o, level)) return -1;
        return tt_buf_putc(b, '}');
    }
    default:
        return tt_fail_at(c->t, pos, "tojson: Object of type %s is not JSON serializable", tv_type_name(v));
    }
}

int tt_json_dump(tt_ctx *c, uint32_t pos, tv v, const tt_json_opts *o, tt_buf *b) { return dump(c, pos, v, o, b, 0); }
