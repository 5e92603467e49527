/* template_value.c - the value model of the template interpreter: arena,
 * strings, lists, dicts, and the Python semantics jinja2 inherits (str(),
 * repr(), ==, ordering, truthiness, len, `in`, iteration, attribute and
 * item access as the immutable sandbox does them). */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text/template_internal.h"
#include "util/error.h"

/* ---------------------------------------------------------------- arena */

struct tt_block {
    tt_block *next;
    size_t size, used;
    size_t pad_; /* keeps data 16-byte aligned on 64-bit targets */
    _Alignas(16) unsigned char data[];
};

#define TT_BLOCK_SIZE (64u * 1024u)

void *tt_alloc(tt_arena *a, size_t n) {
    n = (n + 15u) & ~(size_t)15u;
    if (n == 0) n = 16;
    if (a->limit && a->total + n > a->limit) {
        tn_fail("template rendering used more than %zu MiB of memory", a->limit >> 20);
        return NULL;
    }
    tt_block *b = a->head;
    if (!b || b->size - b->used < n) {
        size_t size = n > TT_BLOCK_SIZE / 4 ? n : TT_BLOCK_SIZE;
        tt_block *nb = malloc(sizeof(tt_block) + size);
        if (!nb) {
            tn_fail("out of memory in the template interpreter (%zu bytes)", size);
            return NULL;
        }
        nb->size = size;
        nb->used = 0;
        if (n > TT_BLOCK_SIZE / 4 && b) {
            /* a big one: keep the current block in front for small ones */
            nb->next = b->next;
            b->next = nb;
            b = nb;
        } else {
            nb->next = b;
            a->head = nb;
            b = nb;
        }
    }
    void *p = b->data + b->used;
    b->used += n;
    a->total += n;
    return p;
}

void *tt_zalloc(tt_arena *a, size_t n) {
    void *p = tt_alloc(a, n);
    if (p) memset(p, 0, n);
    return p;
}

void tt_arena_free(tt_arena *a) {
    tt_block *b = a->head;
    while (b) {
        tt_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->total = 0;
}

/* ---------------------------------------------------------------- buffer */

static int buf_grow(tt_buf *b, size_t extra) {
    if (b->cap - b->n > extra) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->n <= extra) {
        if (cap > SIZE_MAX / 2) return tn_fail("template output too large");
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) return tn_fail("out of memory growing template output to %zu bytes", cap);
    b->p = p;
    b->cap = cap;
    return 0;
}

int tt_buf_put(tt_buf *b, const char *s, size_t n) {
    if (buf_grow(b, n + 1)) return -1;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

int tt_buf_putc(tt_buf *b, char c) { return tt_buf_put(b, &c, 1); }

int tt_buf_puts(tt_buf *b, const char *s) { return tt_buf_put(b, s, strlen(s)); }

int tt_buf_printf(tt_buf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) return tn_fail("formatting failed");
    if ((size_t)k < sizeof tmp) return tt_buf_put(b, tmp, (size_t)k);
    if (buf_grow(b, (size_t)k + 1)) return -1;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
    return 0;
}

int tt_buf_put_cp(tt_buf *b, uint32_t cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return tt_buf_put(b, u, n);
}

void tt_buf_free(tt_buf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* ------------------------------------------------------------------ UTF-8 */

uint32_t tt_utf8_next(const char *s, size_t n, size_t *len) {
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0) {
        *len = 0;
        return 0;
    }
    if (u[0] < 0x80) {
        *len = 1;
        return u[0];
    }
    int k;
    uint32_t cp;
    if ((u[0] & 0xE0) == 0xC0) {
        k = 2;
        cp = u[0] & 0x1F;
    } else if ((u[0] & 0xF0) == 0xE0) {
        k = 3;
        cp = u[0] & 0x0F;
    } else if ((u[0] & 0xF8) == 0xF0) {
        k = 4;
        cp = u[0] & 0x07;
    } else {
        *len = 1;
        return 0xFFFD;
    }
    if ((size_t)k > n) {
        *len = 1;
        return 0xFFFD;
    }
    for (int i = 1; i < k; i++) {
        if ((u[i] & 0xC0) != 0x80) {
            *len = 1;
            return 0xFFFD;
        }
        cp = (cp << 6) | (u[i] & 0x3F);
    }
    *len = (size_t)k;
    return cp;
}

long tt_find(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn == 0) return 0;
    if (nn > hn) return -1;
    const char *end = h + hn - nn;
    for (const char *p = h; p <= end; p++) {
        p = memchr(p, nd[0], (size_t)(end - p) + 1);
        if (!p) return -1;
        if (!memcmp(p, nd, nn)) return (long)(p - h);
    }
    return -1;
}

size_t tt_utf8_count(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) c++;
    return c;
}

size_t tt_utf8_offset(const tv_str *s, size_t i) {
    if (s->ncp == s->len) return i;
    if (i >= s->ncp) return s->len;
    size_t off = 0, k = 0;
    while (off < s->len) {
        if (((unsigned char)s->s[off] & 0xC0) != 0x80) {
            if (k == i) return off;
            k++;
        }
        off++;
    }
    return s->len;
}

/* Python's str.isspace(): bidirectional class WS, B or S, or category Zs. */
int tt_py_isspace(uint32_t cp) {
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F)) return 1;
    if (cp < 0x80) return 0;
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* ----------------------------------------------------------- constructors */

tv tv_bool(int b) {
    tv v = {.type = TV_BOOL};
    v.b = b ? 1 : 0;
    return v;
}

tv tv_int(int64_t i) {
    tv v = {.type = TV_INT};
    v.i = i;
    return v;
}

tv tv_float(double f) {
    tv v = {.type = TV_FLOAT};
    v.f = f;
    return v;
}

tv tv_none(void) {
    tv v = {.type = TV_NONE};
    v.i = 0;
    return v;
}

static tv undef_with(tt_ctx *c, const char *name, const char *owner, const char *hint) {
    tv v = {.type = TV_UNDEF};
    v.u = tt_zalloc(c->a, sizeof *v.u); /* NULL is an anonymous undefined */
    if (v.u) {
        v.u->name = name;
        v.u->owner = owner;
        v.u->hint = hint;
    }
    return v;
}

tv tv_undef_named(tt_ctx *c, const char *name) { return undef_with(c, name, NULL, NULL); }
tv tv_undef_attr(tt_ctx *c, const char *owner, const char *attr) { return undef_with(c, attr, owner, NULL); }
tv tv_undef_hint(tt_ctx *c, const char *hint) { return undef_with(c, NULL, NULL, hint); }

tv_str *tt_str_new(tt_arena *a, const char *s, size_t n) {
    tv_str *r = tt_alloc(a, sizeof(tv_str) + n + 1);
    if (!r) return NULL;
    r->len = n;
    if (n) memcpy(r->s, s, n);
    r->s[n] = 0;
    r->ncp = tt_utf8_count(s, n);
    r->markup = 0;
    return r;
}

tv_str *tt_markup(tt_arena *a, tv_str *s) {
    if (s->markup) return s;
    tv_str *r = tt_str_new(a, s->s, s->len);
    if (r) r->markup = 1;
    return r;
}

tv_str *tt_escape(tt_arena *a, tv_str *s) {
    if (s->markup) return s;
    tt_buf b = {0};
    int rc = 0;
    for (size_t i = 0; i < s->len && !rc; i++) {
        switch (s->s[i]) {
        case '&': rc = tt_buf_puts(&b, "&amp;"); break;
        case '<': rc = tt_buf_puts(&b, "&lt;"); break;
        case '>': rc = tt_buf_puts(&b, "&gt;"); break;
        case '"': rc = tt_buf_puts(&b, "&#34;"); break;
        case '\'': rc = tt_buf_puts(&b, "&#39;"); break;
        default: rc = tt_buf_putc(&b, s->s[i]);
        }
    }
    tv_str *r = rc ? NULL : tt_str_new(a, b.p ? b.p : "", b.n);
    tt_buf_free(&b);
    if (r) r->markup = 1;
    return r;
}

int tv_str_make(tt_arena *a, const char *s, size_t n, tv *out) {
    tv_str *r = tt_str_new(a, s, n);
    if (!r) return -1;
    out->type = TV_STR;
    out->s = r;
    return 0;
}

tv_list *tt_list_new(tt_arena *a, size_t cap) {
    tv_list *l = tt_alloc(a, sizeof *l);
    if (!l) return NULL;
    l->n = 0;
    l->cap = cap;
    l->v = NULL;
    if (cap) {
        l->v = tt_alloc(a, cap * sizeof(tv));
        if (!l->v) return NULL;
    }
    return l;
}

int tt_list_push(tt_arena *a, tv_list *l, tv v) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        tv *nv = tt_alloc(a, cap * sizeof(tv));
        if (!nv) return -1;
        if (l->n) memcpy(nv, l->v, l->n * sizeof(tv));
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
    return 0;
}

tv_dict *tt_dict_new(tt_arena *a, size_t cap) {
    tv_dict *d = tt_alloc(a, sizeof *d);
    if (!d) return NULL;
    d->n = 0;
    d->cap = cap;
    d->k = d->v = NULL;
    if (cap) {
        d->k = tt_alloc(a, cap * sizeof(tv));
        d->v = tt_alloc(a, cap * sizeof(tv));
        if (!d->k || !d->v) return NULL;
    }
    return d;
}

long tt_dict_find_str(const tv_dict *d, const char *s, size_t n) {
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].type == TV_STR && d->k[i].s->len == n && !memcmp(d->k[i].s->s, s, n)) return (long)i;
    return -1;
}

long tt_dict_find(const tv_dict *d, tv k) {
    if (k.type == TV_STR) return tt_dict_find_str(d, k.s->s, k.s->len);
    for (size_t i = 0; i < d->n; i++)
        if (tv_eq(d->k[i], k)) return (long)i;
    return -1;
}

int tt_dict_set(tt_arena *a, tv_dict *d, tv k, tv v) {
    long at = tt_dict_find(d, k);
    if (at >= 0) {
        d->v[at] = v;
        return 0;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        tv *nk = tt_alloc(a, cap * sizeof(tv));
        tv *nv = tt_alloc(a, cap * sizeof(tv));
        if (!nk || !nv) return -1;
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof(tv));
            memcpy(nv, d->v, d->n * sizeof(tv));
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
    return 0;
}

/* ------------------------------------------------------- Python semantics */

const char *tv_type_name(tv v) {
    switch (v.type) {
    case TV_UNDEF: return "Undefined";
    case TV_NONE: return "NoneType";
    case TV_BOOL: return "bool";
    case TV_INT: return "int";
    case TV_FLOAT: return "float";
    case TV_STR: return "str";
    case TV_LIST: return "list";
    case TV_TUPLE: return "tuple";
    case TV_DICT: return "dict";
    case TV_ITER:
        switch (v.it->kind) {
        case TI_GENERATOR: return "generator";
        case TI_REVERSED: return v.it->gen_name ? v.it->gen_name : "reversed";
        case TI_KEYS: return "dict_keys";
        case TI_VALUES: return "dict_values";
        case TI_ITEMS: return "dict_items";
        default: return "range";
        }
    case TV_NS: return "Namespace";
    case TV_MACRO: return "Macro";
    case TV_FUNC: return "builtin_function_or_method";
    case TV_LOOP: return "LoopContext";
    }
    return "object";
}

static int is_num(tv v) { return v.type == TV_BOOL || v.type == TV_INT || v.type == TV_FLOAT; }

static double num_as_double(tv v) {
    if (v.type == TV_FLOAT) return v.f;
    if (v.type == TV_BOOL) return v.b;
    return (double)v.i;
}

static int64_t num_as_int(tv v) { return v.type == TV_BOOL ? v.b : v.i; }

int tv_truth(tv v) {
    switch (v.type) {
    case TV_UNDEF:
    case TV_NONE: return 0;
    case TV_BOOL: return v.b;
    case TV_INT: return v.i != 0;
    case TV_FLOAT: return v.f != 0.0;
    case TV_STR: return v.s->len != 0;
    case TV_LIST:
    case TV_TUPLE: return v.l->n != 0;
    case TV_DICT: return v.d->n != 0;
    case TV_ITER:
        if (v.it->kind == TI_GENERATOR || v.it->kind == TI_REVERSED) return 1;
        return v.it->items->n != 0;
    case TV_LOOP: return v.loop->items->n != 0;
    default: return 1;
    }
}

/* int == float, exactly as Python compares them */
static int int_eq_float(int64_t i, double f) {
    if (!isfinite(f) || f != floor(f)) return 0;
    if (f < -9223372036854775808.0 || f >= 9223372036854775808.0) return 0;
    return (int64_t)f == i;
}

int tv_eq(tv a, tv b) {
    if (is_num(a) && is_num(b)) {
        if (a.type == TV_FLOAT && b.type == TV_FLOAT) return a.f == b.f;
        if (a.type == TV_FLOAT) return int_eq_float(num_as_int(b), a.f);
        if (b.type == TV_FLOAT) return int_eq_float(num_as_int(a), b.f);
        return num_as_int(a) == num_as_int(b);
    }
    if (a.type != b.type) return 0;
    switch (a.type) {
    case TV_UNDEF:
    case TV_NONE: return 1;
    case TV_STR: return a.s == b.s || (a.s->len == b.s->len && !memcmp(a.s->s, b.s->s, a.s->len));
    case TV_LIST:
    case TV_TUPLE:
        if (a.l == b.l) return 1;
        if (a.l->n != b.l->n) return 0;
        for (size_t i = 0; i < a.l->n; i++)
            if (!tv_eq(a.l->v[i], b.l->v[i])) return 0;
        return 1;
    case TV_DICT:
        if (a.d == b.d) return 1;
        if (a.d->n != b.d->n) return 0;
        for (size_t i = 0; i < a.d->n; i++) {
            long j = tt_dict_find(b.d, a.d->k[i]);
            if (j < 0 || !tv_eq(a.d->v[i], b.d->v[j])) return 0;
        }
        return 1;
    case TV_ITER:
        if (a.it->kind == TI_RANGE && b.it->kind == TI_RANGE) {
            tv x = {.type = TV_LIST}, y = {.type = TV_LIST};
            x.l = a.it->items;
            y.l = b.it->items;
            return tv_eq(x, y);
        }
        return a.it == b.it;
    case TV_NS: return a.d == b.d;
    case TV_MACRO: return a.m == b.m;
    case TV_FUNC: return a.fn == b.fn;
    case TV_LOOP: return a.loop == b.loop;
    default: return 0;
    }
}

int tv_undef_fail(tt_ctx *c, uint32_t pos, tv v) {
    const tv_undef *u = v.type == TV_UNDEF ? v.u : NULL;
    if (!u) return tt_fail_at(c->t, pos, "undefined value used");
    if (u->hint) return tt_fail_at(c->t, pos, "%s", u->hint);
    if (!u->owner) return tt_fail_at(c->t, pos, "'%s' is undefined", u->name ? u->name : "?");
    if (u->name) return tt_fail_at(c->t, pos, "'%s' has no attribute '%s'", u->owner, u->name);
    return tt_fail_at(c->t, pos, "'%s' has no element %" PRId64, u->owner, u->index);
}

int tv_cmp(tt_ctx *c, uint32_t pos, tv a, tv b, int *r) {
    if (a.type == TV_UNDEF) return tv_undef_fail(c, pos, a);
    if (b.type == TV_UNDEF) return tv_undef_fail(c, pos, b);
    if (is_num(a) && is_num(b)) {
        if (a.type != TV_FLOAT && b.type != TV_FLOAT) {
            int64_t x = num_as_int(a), y = num_as_int(b);
            *r = x < y ? -1 : x > y;
        } else {
            double x = num_as_double(a), y = num_as_double(b);
            *r = x < y ? -1 : x > y; /* NaN compares as equal-ish, as no ordering holds */
        }
        return 0;
    }
    if (a.type == TV_STR && b.type == TV_STR) {
        size_t n = a.s->len < b.s->len ? a.s->len : b.s->len;
        int k = memcmp(a.s->s, b.s->s, n); /* UTF-8 byte order is code point order */
        *r = k ? (k < 0 ? -1 : 1) : (a.s->len < b.s->len ? -1 : a.s->len > b.s->len);
        return 0;
    }
    if ((a.type == TV_LIST || a.type == TV_TUPLE) && a.type == b.type) {
        size_t n = a.l->n < b.l->n ? a.l->n : b.l->n;
        for (size_t i = 0; i < n; i++) {
            if (tv_eq(a.l->v[i], b.l->v[i])) continue;
            return tv_cmp(c, pos, a.l->v[i], b.l->v[i], r);
        }
        *r = a.l->n < b.l->n ? -1 : a.l->n > b.l->n;
        return 0;
    }
    return tt_fail_at(c->t, pos, "'<' not supported between instances of '%s' and '%s'", tv_type_name(a),
                      tv_type_name(b));
}

/* ---------------------------------------------------------- str and repr */

/* Python's repr(float): the shortest text that reads back exactly, in fixed
 * notation when the decimal exponent lies in [-4, 16), else scientific. */
void tt_fmt_float(double x, char out[40]) {
    if (isnan(x)) {
        strcpy(out, "nan");
        return;
    }
    if (isinf(x)) {
        strcpy(out, x < 0 ? "-inf" : "inf");
        return;
    }
    if (x == 0) {
        strcpy(out, signbit(x) ? "-0.0" : "0.0");
        return;
    }
    char tmp[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, x);
        if (strtod(tmp, NULL) == x) break;
    }
    /* tmp = [-]d.ddde[+-]XX */
    char digits[24];
    int nd = 0, neg = 0;
    const char *p = tmp;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    for (; *p && *p != 'e'; p++)
        if (*p != '.') digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    int e = atoi(p + 1);
    int decpt = e + 1;
    char *o = out;
    if (neg) *o++ = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -decpt; i++) *o++ = '0';
            memcpy(o, digits, (size_t)nd);
            o += nd;
        } else if (decpt >= nd) {
            memcpy(o, digits, (size_t)nd);
            o += nd;
            for (int i = nd; i < decpt; i++) *o++ = '0';
            *o++ = '.';
            *o++ = '0';
        } else {
            memcpy(o, digits, (size_t)decpt);
            o += decpt;
            *o++ = '.';
            memcpy(o, digits + decpt, (size_t)(nd - decpt));
            o += nd - decpt;
        }
        *o = 0;
    } else {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)(nd - 1));
            o += nd - 1;
        }
        sprintf(o, "e%c%02d", decpt - 1 < 0 ? '-' : '+', abs(decpt - 1));
    }
}

/* Python's str.isprintable() for one code point. */
static int py_isprintable(uint32_t cp) {
    if (cp == ' ') return 1;
    if (cp < 0x20 || cp == 0x7F) return 0;
    if (cp < 0x7F) return 1;
    if (cp > 0x10FFFF) return 0;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
    switch (k) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_ZS: return 0;
    default: return 1;
    }
}

static int repr_str(tt_buf *b, const tv_str *s) {
    int has_sq = memchr(s->s, '\'', s->len) != NULL, has_dq = memchr(s->s, '"', s->len) != NULL;
    char q = (has_sq && !has_dq) ? '"' : '\'';
    if (tt_buf_putc(b, q)) return -1;
    size_t i = 0;
    while (i < s->len) {
        size_t k;
        uint32_t cp = tt_utf8_next(s->s + i, s->len - i, &k);
        int rc = 0;
        if (cp == (uint32_t)q || cp == '\\') {
            char e[2] = {'\\', (char)cp};
            rc = tt_buf_put(b, e, 2);
        } else if (cp == '\t') rc = tt_buf_puts(b, "\\t");
        else if (cp == '\n') rc = tt_buf_puts(b, "\\n");
        else if (cp == '\r') rc = tt_buf_puts(b, "\\r");
        else if (py_isprintable(cp)) rc = tt_buf_put(b, s->s + i, k);
        else if (cp <= 0xFF) rc = tt_buf_printf(b, "\\x%02x", cp);
        else if (cp <= 0xFFFF) rc = tt_buf_printf(b, "\\u%04x", cp);
        else rc = tt_buf_printf(b, "\\U%08x", cp);
        if (rc) return -1;
        i += k;
    }
    return tt_buf_putc(b, q);
}

static int append_any(tt_buf *b, tv v, int repr);

static int append_seq(tt_buf *b, const tv_list *l, const char *open, const char *close, int tuple) {
    if (tt_buf_puts(b, open)) return -1;
    for (size_t i = 0; i < l->n; i++) {
        if (i && tt_buf_puts(b, ", ")) return -1;
        if (append_any(b, l->v[i], 1)) return -1;
    }
    if (tuple && l->n == 1 && tt_buf_putc(b, ',')) return -1;
    return tt_buf_puts(b, close);
}

static int append_dict(tt_buf *b, const tv_dict *d) {
    if (tt_buf_putc(b, '{')) return -1;
    for (size_t i = 0; i < d->n; i++) {
        if (i && tt_buf_puts(b, ", ")) return -1;
        if (append_any(b, d->k[i], 1) || tt_buf_puts(b, ": ") || append_any(b, d->v[i], 1)) return -1;
    }
    return tt_buf_putc(b, '}');
}

static int append_any(tt_buf *b, tv v, int repr) {
    char num[40];
    switch (v.type) {
    case TV_UNDEF: return repr ? tt_buf_puts(b, "Undefined") : 0;
    case TV_NONE: return tt_buf_puts(b, "None");
    case TV_BOOL: return tt_buf_puts(b, v.b ? "True" : "False");
    case TV_INT: return tt_buf_printf(b, "%" PRId64, v.i);
    case TV_FLOAT: tt_fmt_float(v.f, num); return tt_buf_puts(b, num);
    case TV_STR:
        if (!repr) return tt_buf_put(b, v.s->s, v.s->len);
        if (v.s->markup) return tt_buf_puts(b, "Markup(") || repr_str(b, v.s) || tt_buf_putc(b, ')');
        return repr_str(b, v.s);
    case TV_LIST: return append_seq(b, v.l, "[", "]", 0);
    case TV_TUPLE: return append_seq(b, v.l, "(", ")", 1);
    case TV_DICT: return append_dict(b, v.d);
    case TV_ITER:
        switch (v.it->kind) {
        case TI_RANGE:
            if (v.it->step == 1) return tt_buf_printf(b, "range(%" PRId64 ", %" PRId64 ")", v.it->start, v.it->stop);
            return tt_buf_printf(b, "range(%" PRId64 ", %" PRId64 ", %" PRId64 ")", v.it->start, v.it->stop,
                                 v.it->step);
        case TI_KEYS:
        case TI_VALUES:
        case TI_ITEMS:
            return tt_buf_puts(b, tv_type_name(v)) || append_seq(b, v.it->items, "([", "])", 0);
        case TI_REVERSED: return tt_buf_printf(b, "<%s object>", v.it->gen_name ? v.it->gen_name : "reversed");
        default: return tt_buf_printf(b, "<generator object %s>", v.it->gen_name ? v.it->gen_name : "?");
        }
    case TV_NS: return tt_buf_puts(b, "<Namespace ") || append_dict(b, v.d) || tt_buf_putc(b, '>');
    case TV_MACRO:
        return tt_buf_printf(b, "<Macro '%s'>", v.m->node->macro.name ? v.m->node->macro.name : "caller");
    case TV_FUNC: return tt_buf_puts(b, "<built-in function>");
    case TV_LOOP: return tt_buf_printf(b, "<LoopContext %zu/%zu>", v.loop->index0 + 1, v.loop->items->n);
    }
    return 0;
}

int tv_str_append(tt_buf *b, tv v) { return append_any(b, v, 0); }
int tv_repr_append(tt_buf *b, tv v) { return append_any(b, v, 1); }

int tv_to_str(tt_ctx *c, tv v, tv_str **out) {
    if (v.type == TV_STR) {
        *out = v.s;
        return 0;
    }
    tt_buf b = {0};
    if (tv_str_append(&b, v)) {
        tt_buf_free(&b);
        return -1;
    }
    *out = tt_str_new(c->a, b.p ? b.p : "", b.n);
    tt_buf_free(&b);
    return *out ? 0 : -1;
}

/* ------------------------------------------------- iteration, len and in */

static tv_list *str_chars(tt_ctx *c, const tv_str *s) {
    tv_list *l = tt_list_new(c->a, s->ncp);
    if (!l) return NULL;
    size_t i = 0;
    while (i < s->len) {
        size_t k;
        tt_utf8_next(s->s + i, s->len - i, &k);
        tv ch;
        if (tv_str_make(c->a, s->s + i, k, &ch)) return NULL;
        l->v[l->n++] = ch;
        i += k;
    }
    return l;
}

int tv_iterate(tt_ctx *c, uint32_t pos, tv v, tv_list **out) {
    switch (v.type) {
    case TV_UNDEF: *out = tt_list_new(c->a, 0); return *out ? 0 : -1;
    case TV_LIST:
    case TV_TUPLE: *out = v.l; return 0;
    case TV_DICT: {
        tv_list *l = tt_list_new(c->a, v.d->n);
        if (!l) return -1;
        for (size_t i = 0; i < v.d->n; i++) l->v[l->n++] = v.d->k[i];
        *out = l;
        return 0;
    }
    case TV_STR: *out = str_chars(c, v.s); return *out ? 0 : -1;
    case TV_ITER: {
        tv_iter *it = v.it;
        if (it->kind == TI_GENERATOR || it->kind == TI_REVERSED) {
            if (it->error) return tn_fail("%s", it->error);
            tv_list *l = tt_list_new(c->a, 0);
            if (!l) return -1;
            l->v = it->items->v + it->pos;
            l->n = l->cap = it->items->n - it->pos;
            it->pos = it->items->n;
            *out = l;
            return 0;
        }
        *out = it->items;
        return 0;
    }
    default:
        return tt_fail_at(c->t, pos, "'%s' object is not iterable", tv_type_name(v));
    }
}

int tv_len(tt_ctx *c, uint32_t pos, tv v, int64_t *out) {
    switch (v.type) {
    case TV_UNDEF: *out = 0; return 0;
    case TV_STR: *out = (int64_t)v.s->ncp; return 0;
    case TV_LIST:
    case TV_TUPLE: *out = (int64_t)v.l->n; return 0;
    case TV_DICT: *out = (int64_t)v.d->n; return 0;
    case TV_ITER:
        if (v.it->kind != TI_GENERATOR && v.it->kind != TI_REVERSED) {
            *out = (int64_t)v.it->items->n;
            return 0;
        }
        break;
    case TV_LOOP: *out = (int64_t)v.loop->items->n; return 0;
    default: break;
    }
    return tt_fail_at(c->t, pos, "object of type '%s' has no len()", tv_type_name(v));
}

static int hashable(tv v) {
    if (v.type == TV_LIST || v.type == TV_DICT || v.type == TV_NS) return 0;
    if (v.type == TV_ITER) return v.it->kind == TI_GENERATOR || v.it->kind == TI_REVERSED || v.it->kind == TI_RANGE;
    if (v.type == TV_TUPLE) {
        for (size_t i = 0; i < v.l->n; i++)
            if (!hashable(v.l->v[i])) return 0;
    }
    return 1;
}

int tv_contains(tt_ctx *c, uint32_t pos, tv hay, tv needle, int *out) {
    switch (hay.type) {
    case TV_STR:
        if (needle.type != TV_STR)
            return tt_fail_at(c->t, pos, "'in <string>' requires string as left operand, not %s",
                              tv_type_name(needle));
        if (needle.s->len == 0) *out = 1;
        else if (needle.s->len > hay.s->len) *out = 0;
        else *out = tt_find(hay.s->s, hay.s->len, needle.s->s, needle.s->len) >= 0;
        return 0;
    case TV_DICT:
        if (!hashable(needle)) return tt_fail_at(c->t, pos, "unhashable type: '%s'", tv_type_name(needle));
        *out = tt_dict_find(hay.d, needle) >= 0;
        return 0;
    case TV_UNDEF: *out = 0; return 0;
    case TV_LIST:
    case TV_TUPLE:
    case TV_ITER: {
        tv_list *l;
        if (hay.type == TV_ITER && (hay.it->kind == TI_GENERATOR || hay.it->kind == TI_REVERSED)) {
            /* a generator is consumed up to and including the match */
            tv_iter *it = hay.it;
            *out = 0;
            while (it->pos < it->items->n) {
                if (tv_eq(it->items->v[it->pos++], needle)) {
                    *out = 1;
                    break;
                }
            }
            if (!*out && it->error) return tn_fail("%s", it->error);
            return 0;
        }
        l = hay.type == TV_ITER ? hay.it->items : hay.l;
        *out = 0;
        for (size_t i = 0; i < l->n; i++)
            if (tv_eq(l->v[i], needle)) {
                *out = 1;
                break;
            }
        return 0;
    }
    default:
        return tt_fail_at(c->t, pos, "argument of type '%s' is not iterable", tv_type_name(hay));
    }
}

/* --------------------------------------------------- attributes and items */

static const char *owner_desc(tv v) {
    switch (v.type) {
    case TV_NONE: return "None";
    case TV_BOOL: return "bool object";
    case TV_INT: return "int object";
    case TV_FLOAT: return "float object";
    case TV_STR: return "str object";
    case TV_LIST: return "list object";
    case TV_TUPLE: return "tuple object";
    case TV_DICT: return "dict object";
    case TV_NS: return "jinja2.utils.Namespace object";
    case TV_MACRO: return "jinja2.runtime.Macro object";
    case TV_LOOP: return "jinja2.runtime.LoopContext object";
    default: return "object";
    }
}

static int loop_attr(tt_ctx *c, tv_loop *lp, const char *attr, tv *out) {
    size_t n = lp->items->n, i0 = lp->index0;
    if (!strcmp(attr, "index")) *out = tv_int((int64_t)i0 + 1);
    else if (!strcmp(attr, "index0")) *out = tv_int((int64_t)i0);
    else if (!strcmp(attr, "revindex")) *out = tv_int((int64_t)(n - i0));
    else if (!strcmp(attr, "revindex0")) *out = tv_int((int64_t)(n - i0) - 1);
    else if (!strcmp(attr, "first")) *out = tv_bool(i0 == 0);
    else if (!strcmp(attr, "last")) *out = tv_bool(i0 + 1 >= n);
    else if (!strcmp(attr, "length")) *out = tv_int((int64_t)n);
    else if (!strcmp(attr, "depth")) *out = tv_int(1);
    else if (!strcmp(attr, "depth0")) *out = tv_int(0);
    else if (!strcmp(attr, "previtem"))
        *out = i0 == 0 ? tv_undef_hint(c, "there is no previous item") : lp->items->v[i0 - 1];
    else if (!strcmp(attr, "nextitem"))
        *out = i0 + 1 >= n ? tv_undef_hint(c, "there is no next item") : lp->items->v[i0 + 1];
    else if (!strcmp(attr, "cycle") || !strcmp(attr, "changed")) {
        tv_func *f = tt_zalloc(c->a, sizeof *f);
        if (!f) return -1;
        f->id = attr[1] == 'y' ? TF_LOOP_CYCLE : TF_LOOP_CHANGED;
        f->self.type = TV_LOOP;
        f->self.loop = lp;
        out->type = TV_FUNC;
        out->fn = f;
    } else
        return 0;
    return 1;
}

int tt_getattr(tt_ctx *c, uint32_t pos, tv obj, const char *attr, tv *out) {
    if (obj.type == TV_UNDEF) return tv_undef_fail(c, pos, obj);
    if (obj.type == TV_NS) {
        long i = tt_dict_find_str(obj.d, attr, strlen(attr));
        *out = i >= 0 ? obj.d->v[i] : tv_undef_attr(c, owner_desc(obj), attr);
        return 0;
    }
    if (obj.type == TV_LOOP) {
        int r = loop_attr(c, obj.loop, attr, out);
        if (r < 0) return -1;
        if (!r) *out = tv_undef_attr(c, owner_desc(obj), attr);
        return 0;
    }
    int r = tt_method_lookup(c, obj, attr, out);
    if (r < 0) return -1;
    if (r) return 0;
    if (obj.type == TV_DICT) {
        long i = tt_dict_find_str(obj.d, attr, strlen(attr));
        if (i >= 0) {
            *out = obj.d->v[i];
            return 0;
        }
    }
    *out = tv_undef_attr(c, owner_desc(obj), attr);
    return 0;
}

static int index_of(tv key, int64_t n, int64_t *at) {
    int64_t i = key.type == TV_BOOL ? key.b : key.i;
    if (i < 0) i += n;
    if (i < 0 || i >= n) return 0;
    *at = i;
    return 1;
}

static tv undef_element(tt_ctx *c, tv obj, int64_t i) {
    tv u = undef_with(c, NULL, owner_desc(obj), NULL);
    if (u.u) u.u->index = i;
    return u;
}

int tt_getitem(tt_ctx *c, uint32_t pos, tv obj, tv key, tv *out) {
    if (obj.type == TV_UNDEF) return tv_undef_fail(c, pos, obj);
    int int_key = key.type == TV_INT || key.type == TV_BOOL;
    switch (obj.type) {
    case TV_DICT:
        if (hashable(key)) {
            long i = tt_dict_find(obj.d, key);
            if (i >= 0) {
                *out = obj.d->v[i];
                return 0;
            }
        }
        break;
    case TV_LIST:
    case TV_TUPLE:
        if (int_key) {
            int64_t at;
            if (index_of(key, (int64_t)obj.l->n, &at)) *out = obj.l->v[at];
            else *out = undef_element(c, obj, key.type == TV_BOOL ? key.b : key.i);
            return 0;
        }
        break;
    case TV_STR:
        if (int_key) {
            int64_t at;
            if (!index_of(key, (int64_t)obj.s->ncp, &at)) {
                *out = undef_element(c, obj, key.type == TV_BOOL ? key.b : key.i);
                return 0;
            }
            size_t off = tt_utf8_offset(obj.s, (size_t)at), k;
            tt_utf8_next(obj.s->s + off, obj.s->len - off, &k);
            if (tv_str_make(c->a, obj.s->s + off, k, out)) return -1;
            out->s->markup = obj.s->markup;
            return 0;
        }
        break;
    case TV_ITER:
        if (obj.it->kind == TI_RANGE && int_key) {
            int64_t at;
            if (index_of(key, (int64_t)obj.it->items->n, &at)) *out = obj.it->items->v[at];
            else *out = undef_element(c, obj, key.type == TV_BOOL ? key.b : key.i);
            return 0;
        }
        break;
    default: break;
    }
    /* obj[key] failed: a string key falls back to the attribute */
    if (key.type == TV_STR) {
        if (obj.type == TV_DICT) {
            int r = tt_method_lookup(c, obj, key.s->s, out);
            if (r < 0) return -1;
            if (r) return 0;
            *out = tv_undef_attr(c, owner_desc(obj), key.s->s);
            return 0;
        }
        return tt_getattr(c, pos, obj, key.s->s, out);
    }
    if (int_key) *out = undef_element(c, obj, key.type == TV_BOOL ? key.b : key.i);
    else *out = tv_undef_hint(c, "no such item");
    return 0;
}

/* Python's slice.indices() */
static int slice_indices(tt_ctx *c, uint32_t pos, tv start, tv stop, tv step, int64_t len, int64_t *s0,
                         int64_t *s1, int64_t *st, int *bad) {
    *bad = 0;
    tv parts[3] = {start, stop, step};
    for (int i = 0; i < 3; i++)
        if (parts[i].type != TV_NONE && parts[i].type != TV_INT && parts[i].type != TV_BOOL) {
            *bad = 1;
            return 0;
        }
    int64_t stp = step.type == TV_NONE ? 1 : (step.type == TV_BOOL ? step.b : step.i);
    if (stp == 0) return tt_fail_at(c->t, pos, "slice step cannot be zero");
    int64_t lo, hi;
    if (stp > 0) {
        lo = 0;
        hi = len;
    } else {
        lo = -1;
        hi = len - 1;
    }
    int64_t a, b;
    if (start.type == TV_NONE) a = stp > 0 ? lo : hi;
    else {
        a = start.type == TV_BOOL ? start.b : start.i;
        if (a < 0) {
            a += len;
            if (a < lo) a = lo;
        } else if (a > hi) a = hi;
    }
    if (stop.type == TV_NONE) b = stp > 0 ? hi : lo;
    else {
        b = stop.type == TV_BOOL ? stop.b : stop.i;
        if (b < 0) {
            b += len;
            if (b < lo) b = lo;
        } else if (b > hi) b = hi;
    }
    *s0 = a;
    *s1 = b;
    *st = stp;
    return 0;
}

int tt_slice(tt_ctx *c, uint32_t pos, tv obj, tv start, tv stop, tv step, tv *out) {
    /* jinja2 compiles obj[a:b:c] to a plain Python subscript: errors are raised */
    if (obj.type == TV_UNDEF) return tv_undef_fail(c, pos, obj);
    tv_list *src = NULL;
    int64_t len;
    if (obj.type == TV_LIST || obj.type == TV_TUPLE) src = obj.l;
    else if (obj.type == TV_ITER && obj.it->kind == TI_RANGE) src = obj.it->items;
    else if (obj.type == TV_DICT) return tt_fail_at(c->t, pos, "unhashable type: 'slice'");
    else if (obj.type != TV_STR) return tt_fail_at(c->t, pos, "'%s' object is not subscriptable", tv_type_name(obj));
    len = src ? (int64_t)src->n : (int64_t)obj.s->ncp;
    int64_t a = 0, b = 0, st = 1;
    int bad;
    if (slice_indices(c, pos, start, stop, step, len, &a, &b, &st, &bad)) return -1;
    if (bad) return tt_fail_at(c->t, pos, "slice indices must be integers or None or have an __index__ method");
    if (src) {
        tv_list *l = tt_list_new(c->a, 0);
        if (!l) return -1;
        for (int64_t i = a; st > 0 ? i < b : i > b; i += st)
            if (tt_list_push(c->a, l, src->v[i])) return -1;
        out->type = obj.type == TV_TUPLE ? TV_TUPLE : TV_LIST;
        out->l = l;
        return 0;
    }
    /* strings: by code point (a Markup's slices are Markup) */
    const tv_str *s = obj.s;
    if (st == 1) {
        size_t o0 = b <= a ? 0 : tt_utf8_offset(s, (size_t)a), o1 = b <= a ? 0 : tt_utf8_offset(s, (size_t)b);
        if (tv_str_make(c->a, s->s + o0, o1 - o0, out)) return -1;
        out->s->markup = s->markup;
        return 0;
    }
    size_t *offs = malloc((s->ncp + 1) * sizeof *offs);
    if (!offs) return tn_fail("out of memory slicing a string");
    size_t k = 0;
    for (size_t i = 0; i < s->len; i++)
        if (((unsigned char)s->s[i] & 0xC0) != 0x80) offs[k++] = i;
    offs[k] = s->len;
    tt_buf bb = {0};
    int rc = 0;
    for (int64_t i = a; st > 0 ? i < b : i > b; i += st)
        if ((rc = tt_buf_put(&bb, s->s + offs[i], offs[i + 1] - offs[i]))) break;
    free(offs);
    if (!rc) rc = tv_str_make(c->a, bb.p ? bb.p : "", bb.n, out);
    if (!rc) out->s->markup = s->markup;
    tt_buf_free(&bb);
    return rc;
}
