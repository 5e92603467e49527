/* template_lexer.c - template source -> tokens, as jinja2's lexer does it
 * with trim_blocks and lstrip_blocks on.
 *
 * Outside tags the text is data. A tag opens with {{ {% {# and an optional
 * sign: "-" strips all whitespace before the tag; "+" keeps it; otherwise,
 * for {% and {# (lstrip_blocks), spaces and tabs between the start of the
 * line and the tag are dropped when nothing else stands there. A tag closes
 * with }} %} #}; "-%}" / "-}}" / "-#}" strip all whitespace after it, and
 * a plain "%}" / "#}" eats one newline right after it (trim_blocks), "+%}"
 * not. {% raw %}...{% endraw %} is data. Inside {{ }} and {% %} the end
 * delimiter counts only while brackets are balanced. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text/template_internal.h"
#include "util/error.h"

typedef struct {
    tn_template *t;
    const char *s;
    size_t n;
    tt_tokens *out;
} lexer;

static int emit(lexer *L, int type, uint32_t pos, const char *s, size_t n, tt_token **tok) {
    tt_tokens *o = L->out;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 256;
        tt_token *v = realloc(o->v, cap * sizeof *v);
        if (!v) return tn_fail("out of memory lexing a template");
        o->v = v;
        o->cap = cap;
    }
    tt_token *t = &o->v[o->n++];
    memset(t, 0, sizeof *t);
    t->type = (uint8_t)type;
    t->pos = pos;
    t->s = s;
    t->n = n;
    if (tok) *tok = t;
    return 0;
}

/* Byte length of the whitespace character at p (Python's \s), or 0. */
static size_t ws_at(const char *s, size_t n, size_t p) {
    if (p >= n) return 0;
    unsigned char c = (unsigned char)s[p];
    if (c < 0x80) return tt_py_isspace(c) ? 1 : 0;
    size_t k;
    uint32_t cp = tt_utf8_next(s + p, n - p, &k);
    return tt_py_isspace(cp) ? k : 0;
}

static size_t skip_ws(const char *s, size_t n, size_t p) {
    size_t k;
    while ((k = ws_at(s, n, p))) p += k;
    return p;
}

/* End of text [a, e) with trailing Python whitespace removed. */
static size_t rstrip_end(const char *s, size_t a, size_t e) {
    while (e > a) {
        size_t b = e - 1;
        while (b > a && ((unsigned char)s[b] & 0xC0) == 0x80) b--;
        size_t k;
        uint32_t cp = tt_utf8_next(s + b, e - b, &k);
        if (!tt_py_isspace(cp)) break;
        e = b;
    }
    return e;
}

/* Emits the data before a tag, applying the tag's whitespace control. */
static int emit_data(lexer *L, size_t a, size_t e, char sign, int lstrip_ok, int line_starting) {
    if (sign == '-') e = rstrip_end(L->s, a, e);
    else if (sign != '+' && lstrip_ok) {
        size_t lp = a;
        int nl = 0;
        for (size_t i = e; i > a; i--)
            if (L->s[i - 1] == '\n') {
                lp = i;
                nl = 1;
                break;
            }
        if (nl || line_starting) {
            size_t i = lp;
            while (i < e && (L->s[i] == ' ' || L->s[i] == '\t')) i++;
            if (i == e) e = lp;
        }
    }
    if (e > a) return emit(L, TK_DATA, (uint32_t)a, L->s + a, e - a, NULL);
    return 0;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_name_char(char c) { return is_name_start(c) || is_digit(c); }
/* Length of an identifier character at p (jinja2 names are Python
 * identifiers: Unicode letters, marks, digits and connectors), or 0. */
static size_t name_char_at(const char *s, size_t n, size_t p, int start) {
    unsigned char ch = (unsigned char)s[p];
    if (ch < 0x80) return (start ? is_name_start((char)ch) : is_name_char((char)ch)) ? 1 : 0;
    size_t k;
    uint32_t cp = tt_utf8_next(s + p, n - p, &k);
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    int letter = (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) || c == UTF8PROC_CATEGORY_NL;
    int cont = c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_MC || c == UTF8PROC_CATEGORY_ND ||
               c == UTF8PROC_CATEGORY_PC;
    return (letter || (!start && cont)) ? k : 0;
}

static int is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* (\d+_)*\d+ : returns the end, or p when nothing matches */
static size_t digits_us(const char *s, size_t n, size_t p) {
    if (p >= n || !is_digit(s[p])) return p;
    size_t q = p;
    for (;;) {
        while (q < n && is_digit(s[q])) q++;
        if (q + 1 < n && s[q] == '_' && is_digit(s[q + 1])) {
            q++;
            continue;
        }
        return q;
    }
}

/* jinja2's float_re; returns the end or 0 */
static size_t match_float(const char *s, size_t n, size_t p) {
    if (p > 0 && s[p - 1] == '.') return 0;
    size_t q = digits_us(s, n, p);
    if (q == p) return 0;
    size_t frac = 0;
    if (q < n && s[q] == '.') {
        size_t r = digits_us(s, n, q + 1);
        if (r > q + 1) frac = r;
    }
    size_t e = frac ? frac : q;
    if (e < n && (s[e] == 'e' || s[e] == 'E')) {
        size_t r = e + 1;
        if (r < n && (s[r] == '+' || s[r] == '-')) r++;
        size_t r2 = digits_us(s, n, r);
        if (r2 > r) return r2;
    }
    return frac ? frac : 0;
}

/* jinja2's integer_re; returns the end or 0 */
static size_t match_int(const char *s, size_t n, size_t p, int *base) {
    if (p >= n || !is_digit(s[p])) return 0;
    if (s[p] == '0' && p + 1 < n && strchr("bBoOxX", s[p + 1]) && s[p + 1]) {
        char k = (char)(s[p + 1] | 0x20);
        *base = k == 'b' ? 2 : k == 'o' ? 8 : 16;
        size_t q = p + 2, e = 0;
        for (;;) {
            size_t r = q;
            if (r < n && s[r] == '_') r++;
            if (r < n && ((*base == 2 && (s[r] == '0' || s[r] == '1')) || (*base == 8 && s[r] >= '0' && s[r] <= '7') ||
                          (*base == 16 && is_hex(s[r])))) {
                q = r + 1;
                e = q;
            } else
                break;
        }
        if (e) return e;
        /* "0b" without digits: falls to the decimal-zero rule below */
    }
    *base = 10;
    if (s[p] == '0') {
        size_t q = p + 1;
        for (;;) {
            size_t r = q;
            if (r < n && s[r] == '_') r++;
            if (r < n && s[r] == '0') q = r + 1;
            else break;
        }
        return q;
    }
    size_t q = p + 1;
    for (;;) {
        size_t r = q;
        if (r < n && s[r] == '_') r++;
        if (r < n && is_digit(s[r])) q = r + 1;
        else break;
    }
    return q;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    return (c | 0x20) - 'a' + 10;
}

/* Python's unicode-escape decoding of a string literal's body (jinja2 runs
 * the text through .encode("ascii", "backslashreplace").decode(
 * "unicode-escape")). */
static int decode_string(lexer *L, uint32_t pos, const char *s, size_t n, tt_buf *b) {
    size_t i = 0;
    while (i < n) {
        if (s[i] != '\\') {
            const char *q = memchr(s + i, '\\', n - i);
            size_t e = q ? (size_t)(q - s) : n;
            if (tt_buf_put(b, s + i, e - i)) return -1;
            i = e;
            continue;
        }
        uint32_t at = pos + (uint32_t)i; /* the backslash */
        char d = s[i + 1]; /* the regex guarantees a character after '\' */
        i += 2;
        uint32_t cp = 0;
        int rc = 0;
        switch (d) {
        case '\n': break;
        case '\\': rc = tt_buf_putc(b, '\\'); break;
        case '\'': rc = tt_buf_putc(b, '\''); break;
        case '"': rc = tt_buf_putc(b, '"'); break;
        case 'a': rc = tt_buf_putc(b, 7); break;
        case 'b': rc = tt_buf_putc(b, 8); break;
        case 'f': rc = tt_buf_putc(b, 12); break;
        case 'n': rc = tt_buf_putc(b, '\n'); break;
        case 'r': rc = tt_buf_putc(b, '\r'); break;
        case 't': rc = tt_buf_putc(b, '\t'); break;
        case 'v': rc = tt_buf_putc(b, 11); break;
        case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
            cp = (uint32_t)(d - '0');
            for (int k = 0; k < 2 && i < n && s[i] >= '0' && s[i] <= '7'; k++) cp = cp * 8 + (uint32_t)(s[i++] - '0');
            rc = tt_buf_put_cp(b, cp);
            break;
        }
        case 'x': case 'u': case 'U': {
            int want = d == 'x' ? 2 : d == 'u' ? 4 : 8;
            for (int k = 0; k < want; k++) {
                if (i >= n || !is_hex(s[i]))
                    return tt_fail_at(L->t, at, "truncated \\%c escape in a string literal", d);
                cp = cp * 16 + (uint32_t)hexval(s[i++]);
            }
            if (cp > 0x10FFFF) return tt_fail_at(L->t, at, "illegal Unicode character in a string literal");
            if (cp >= 0xD800 && cp <= 0xDFFF)
                return tt_fail_at(L->t, at, "surrogate code point in a string literal (not supported)");
            rc = tt_buf_put_cp(b, cp);
            break;
        }
        case 'N':
            return tt_fail_at(L->t, at, "\\N{...} escapes are not supported (expected a character, got a name)");
        default:
            if ((unsigned char)d >= 0x80) {
                /* backslashreplace turned the character into \xNN / \uNNNN text */
                size_t k;
                cp = tt_utf8_next(s + i - 1, n - i + 1, &k);
                i = i - 1 + k;
                if (cp <= 0xFF) rc = tt_buf_printf(b, "\\x%02x", cp);
                else if (cp <= 0xFFFF) rc = tt_buf_printf(b, "\\u%04x", cp);
                else rc = tt_buf_printf(b, "\\U%08x", cp);
            } else {
                char keep[2] = {'\\', d};
                rc = tt_buf_put(b, keep, 2);
            }
        }
        if (rc) return -1;
    }
    return 0;
}

typedef struct {
    char ch;
    int type;
} op1;

static const op1 ops1[] = {
    {'+', TK_ADD}, {'-', TK_SUB}, {'/', TK_DIV}, {'*', TK_MUL}, {'%', TK_MOD}, {'~', TK_TILDE},
    {'[', TK_LBRACKET}, {']', TK_RBRACKET}, {'(', TK_LPAREN}, {')', TK_RPAREN}, {'{', TK_LBRACE},
    {'}', TK_RBRACE}, {'>', TK_GT}, {'<', TK_LT}, {'=', TK_ASSIGN}, {'.', TK_DOT}, {':', TK_COLON},
    {'|', TK_PIPE}, {',', TK_COMMA}, {';', TK_SEMICOLON},
};

/* Tokens inside {{ }} or {% %}; *p starts after the opening delimiter.
 * Returns the position after the closing delimiter in *p. */
static int lex_tag(lexer *L, size_t *p, int block, size_t tag_pos) {
    const char *s = L->s;
    size_t n = L->n, i = *p;
    char stack[TT_MAX_DEPTH];
    int depth = 0;
    for (;;) {
        if (i >= n)
            return tt_fail_at(L->t, (uint32_t)tag_pos, "unexpected end of template (expected '%s' to close this tag)",
                              block ? "%}" : "}}");
        if (depth == 0) {
            char d = block ? '%' : '}';
            if (block && s[i] == '+' && i + 2 < n + 0 && s[i + 1] == '%' && s[i + 2] == '}') {
                if (emit(L, TK_BLOCK_END, (uint32_t)i, NULL, 0, NULL)) return -1;
                *p = i + 3;
                return 0;
            }
            if (s[i] == '-' && i + 2 < n + 0 && s[i + 1] == d && s[i + 2] == '}') {
                if (emit(L, block ? TK_BLOCK_END : TK_VAR_END, (uint32_t)i, NULL, 0, NULL)) return -1;
                *p = skip_ws(s, n, i + 3);
                return 0;
            }
            if (s[i] == d && i + 1 < n && s[i + 1] == '}') {
                if (emit(L, block ? TK_BLOCK_END : TK_VAR_END, (uint32_t)i, NULL, 0, NULL)) return -1;
                i += 2;
                if (block && i < n && s[i] == '\n') i++;
                *p = i;
                return 0;
            }
        }
        size_t k = ws_at(s, n, i);
        if (k) {
            i += k;
            continue;
        }
        tt_token *tok;
        size_t e;
        int base;
        if ((e = match_float(s, n, i))) {
            char num[64];
            size_t m = 0;
            for (size_t j = i; j < e && m < sizeof num - 1; j++)
                if (s[j] != '_') num[m++] = s[j];
            num[m] = 0;
            if (emit(L, TK_FLOAT, (uint32_t)i, s + i, e - i, &tok)) return -1;
            tok->f = strtod(num, NULL);
            i = e;
            continue;
        }
        if ((e = match_int(s, n, i, &base))) {
            uint64_t v = 0;
            size_t j = i;
            if (base != 10) j += 2;
            for (; j < e; j++) {
                if (s[j] == '_') continue;
                uint64_t dv = (uint64_t)hexval(s[j]);
                if (v > (UINT64_MAX - dv) / (uint64_t)base || v * (uint64_t)base + dv > (uint64_t)INT64_MAX)
                    return tt_fail_at(L->t, (uint32_t)i, "integer literal too large (tune keeps integers in 64 bits)");
                v = v * (uint64_t)base + dv;
            }
            if (emit(L, TK_INT, (uint32_t)i, s + i, e - i, &tok)) return -1;
            tok->i = (int64_t)v;
            i = e;
            continue;
        }
        if ((k = name_char_at(s, n, i, 1))) {
            e = i + k;
            while (e < n && (k = name_char_at(s, n, e, 0))) e += k;
            if (emit(L, TK_NAME, (uint32_t)i, s + i, e - i, NULL)) return -1;
            i = e;
            continue;
        }
        if (s[i] == '\'' || s[i] == '"') {
            char q = s[i];
            e = i + 1;
            while (e < n && s[e] != q) e += (s[e] == '\\' && e + 1 < n) ? 2 : 1;
            if (e >= n) return tt_fail_at(L->t, (uint32_t)i, "unterminated string literal (expected %c)", q);
            tt_buf b = {0};
            if (decode_string(L, (uint32_t)(i + 1), s + i + 1, e - i - 1, &b)) {
                tt_buf_free(&b);
                return -1;
            }
            char *copy = tt_alloc(&L->t->arena, b.n + 1);
            if (!copy) {
                tt_buf_free(&b);
                return -1;
            }
            if (b.n) memcpy(copy, b.p, b.n);
            copy[b.n] = 0;
            int rc = emit(L, TK_STRING, (uint32_t)i, copy, b.n, NULL);
            tt_buf_free(&b);
            if (rc) return -1;
            i = e + 1;
            continue;
        }
        /* operators: two characters first */
        int type = -1;
        size_t len = 2;
        if (i + 1 < n) {
            char a = s[i], b2 = s[i + 1];
            if (a == '/' && b2 == '/') type = TK_FLOORDIV;
            else if (a == '*' && b2 == '*') type = TK_POW;
            else if (a == '=' && b2 == '=') type = TK_EQ;
            else if (a == '!' && b2 == '=') type = TK_NE;
            else if (a == '>' && b2 == '=') type = TK_GTEQ;
            else if (a == '<' && b2 == '=') type = TK_LTEQ;
        }
        if (type < 0) {
            len = 1;
            for (size_t j = 0; j < sizeof ops1 / sizeof ops1[0]; j++)
                if (ops1[j].ch == s[i]) type = ops1[j].type;
        }
        if (type < 0) {
            size_t cl;
            tt_utf8_next(s + i, n - i, &cl);
            if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F)
                return tt_fail_at(L->t, (uint32_t)i, "unexpected character \\x%02x in a tag", (unsigned char)s[i]);
            return tt_fail_at(L->t, (uint32_t)i, "unexpected character '%.*s' in a tag", (int)cl, s + i);
        }
        if (type == TK_LPAREN || type == TK_LBRACKET || type == TK_LBRACE) {
            if (depth >= TT_MAX_DEPTH) return tt_fail_at(L->t, (uint32_t)i, "brackets nested too deeply");
            stack[depth++] = type == TK_LPAREN ? ')' : type == TK_LBRACKET ? ']' : '}';
        } else if (type == TK_RPAREN || type == TK_RBRACKET || type == TK_RBRACE) {
            if (depth == 0) return tt_fail_at(L->t, (uint32_t)i, "unexpected '%c'", s[i]);
            if (stack[depth - 1] != s[i])
                return tt_fail_at(L->t, (uint32_t)i, "unexpected '%c' (expected '%c')", s[i], stack[depth - 1]);
            depth--;
        }
        if (emit(L, type, (uint32_t)i, s + i, len, NULL)) return -1;
        i += len;
    }
}

/* {%[-+]?\s*raw\s*(-%}\s*|%}) at p (p at '{'); returns the end or 0 */
static size_t match_raw_begin(const char *s, size_t n, size_t p, char *sign) {
    size_t i = p + 2;
    *sign = 0;
    if (i < n && (s[i] == '-' || s[i] == '+')) *sign = s[i++];
    i = skip_ws(s, n, i);
    if (i + 3 > n || memcmp(s + i, "raw", 3)) return 0;
    i = skip_ws(s, n, i + 3);
    if (i + 3 <= n && !memcmp(s + i, "-%}", 3)) return skip_ws(s, n, i + 3);
    if (i + 2 <= n && !memcmp(s + i, "%}", 2)) return i + 2;
    return 0;
}

/* {%[-+]?\s*endraw\s*(+%}|-%}\s*|%}\n?) at p; returns the end or 0 */
static size_t match_endraw(const char *s, size_t n, size_t p, char *sign) {
    size_t i = p + 2;
    *sign = 0;
    if (i < n && (s[i] == '-' || s[i] == '+')) *sign = s[i++];
    i = skip_ws(s, n, i);
    if (i + 6 > n || memcmp(s + i, "endraw", 6)) return 0;
    i = skip_ws(s, n, i + 6);
    if (i + 3 <= n && !memcmp(s + i, "+%}", 3)) return i + 3;
    if (i + 3 <= n && !memcmp(s + i, "-%}", 3)) return skip_ws(s, n, i + 3);
    if (i + 2 <= n && !memcmp(s + i, "%}", 2)) return i + 2 + (i + 2 < n && s[i + 2] == '\n');
    return 0;
}

int tt_lex(tn_template *t, tt_tokens *out) {
    lexer L = {t, t->src, t->n, out};
    const char *s = t->src;
    size_t n = t->n, pos = 0;
    int line_starting = 1;
    while (pos < n) {
        size_t k = pos;
        char kind = 0;
        for (;;) {
            const char *q = memchr(s + k, '{', n - k);
            if (!q) {
                k = n;
                break;
            }
            k = (size_t)(q - s);
            if (k + 1 < n && (s[k + 1] == '{' || s[k + 1] == '%' || s[k + 1] == '#')) {
                kind = s[k + 1];
                break;
            }
            k++;
        }
        if (!kind) {
            if (emit(&L, TK_DATA, (uint32_t)pos, s + pos, n - pos, NULL)) return -1;
            break;
        }
        char sign = 0;
        size_t raw_end = kind == '%' ? match_raw_begin(s, n, k, &sign) : 0;
        size_t after = k + 2;
        if (!raw_end) {
            sign = 0;
            if (after < n && (s[after] == '-' || s[after] == '+')) sign = s[after++];
        }
        if (emit_data(&L, pos, k, sign, kind != '{', line_starting)) return -1;
        if (raw_end) {
            /* data up to {% endraw %} */
            size_t q = raw_end, end = 0;
            char esign = 0;
            int ls = s[raw_end - 1] == '\n';
            for (;;) {
                const char *f = q < n ? memchr(s + q, '{', n - q) : NULL;
                if (!f) return tt_fail_at(t, (uint32_t)k, "missing end of raw directive (expected {%% endraw %%})");
                q = (size_t)(f - s);
                if (q + 1 < n && s[q + 1] == '%' && (end = match_endraw(s, n, q, &esign))) break;
                q++;
            }
            if (emit_data(&L, raw_end, q, esign, 1, ls)) return -1;
            pos = end;
            line_starting = s[end - 1] == '\n';
            continue;
        }
        if (kind == '#') {
            size_t q = after, end = 0;
            for (;;) {
                const char *f = q < n ? memchr(s + q, '#', n - q) : NULL;
                if (!f) return tt_fail_at(t, (uint32_t)k, "missing end of comment tag (expected #})");
                q = (size_t)(f - s);
                if (q + 1 < n && s[q + 1] == '}') {
                    if (q > after && s[q - 1] == '+') end = q + 2;
                    else if (q > after && s[q - 1] == '-') end = skip_ws(s, n, q + 2);
                    else end = q + 2 + (q + 2 < n && s[q + 2] == '\n');
                    break;
                }
                q++;
            }
            pos = end;
            line_starting = s[end - 1] == '\n';
            continue;
        }
        int block = kind == '%';
        if (emit(&L, block ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, (uint32_t)k, NULL, 0, NULL)) return -1;
        size_t p = after;
        if (lex_tag(&L, &p, block, k)) return -1;
        pos = p;
        line_starting = s[p - 1] == '\n';
    }
    return emit(&L, TK_EOF, (uint32_t)n, NULL, 0, NULL);
}
