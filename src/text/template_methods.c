/* template_methods.c - the Python methods templates call on values
 * (str.split, str.startswith, dict.items, dict.get, ...), printf-style
 * `%` formatting and str.format. Lengths and indices count code points, as
 * Python's str does. Methods the immutable sandbox forbids (list.append,
 * dict.update, ...) are undefined values that fail when called; methods
 * Python has but tune does not implement fail when called, naming them. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text/template_internal.h"
#include "util/error.h"

enum {
    /* str */
    M_CAPITALIZE = 1, M_CASEFOLD, M_CENTER, M_COUNT, M_ENDSWITH, M_FIND, M_FORMAT, M_INDEX, M_ISALNUM, M_ISALPHA,
    M_ISASCII, M_ISDECIMAL, M_ISDIGIT, M_ISLOWER, M_ISNUMERIC, M_ISSPACE, M_ISTITLE, M_ISUPPER, M_JOIN, M_LJUST,
    M_LOWER, M_LSTRIP, M_PARTITION, M_REMOVEPREFIX, M_REMOVESUFFIX, M_REPLACE, M_RFIND, M_RINDEX, M_RJUST,
    M_RPARTITION, M_RSPLIT, M_RSTRIP, M_SPLIT, M_SPLITLINES, M_STARTSWITH, M_STRIP, M_SWAPCASE, M_TITLE, M_UPPER,
    M_ZFILL, M_STR_UNSUPPORTED,
    /* dict */
    M_KEYS, M_VALUES, M_ITEMS, M_GET, M_DICT_COPY,
    /* list / tuple */
    M_LIST_COPY, M_LIST_COUNT, M_LIST_INDEX,
};

typedef struct {
    const char *name;
    int id;
} method;

static const method str_methods[] = {
    {"capitalize", M_CAPITALIZE}, {"casefold", M_CASEFOLD}, {"center", M_CENTER}, {"count", M_COUNT},
    {"encode", M_STR_UNSUPPORTED}, {"endswith", M_ENDSWITH}, {"expandtabs", M_STR_UNSUPPORTED}, {"find", M_FIND},
    {"format", M_FORMAT}, {"format_map", M_STR_UNSUPPORTED}, {"index", M_INDEX}, {"isalnum", M_ISALNUM},
    {"isalpha", M_ISALPHA}, {"isascii", M_ISASCII}, {"isdecimal", M_ISDECIMAL}, {"isdigit", M_ISDIGIT},
    {"isidentifier", M_STR_UNSUPPORTED}, {"islower", M_ISLOWER}, {"isnumeric", M_ISNUMERIC},
    {"isprintable", M_STR_UNSUPPORTED}, {"isspace", M_ISSPACE}, {"istitle", M_ISTITLE}, {"isupper", M_ISUPPER},
    {"join", M_JOIN}, {"ljust", M_LJUST}, {"lower", M_LOWER}, {"lstrip", M_LSTRIP},
    {"maketrans", M_STR_UNSUPPORTED}, {"partition", M_PARTITION}, {"removeprefix", M_REMOVEPREFIX},
    {"removesuffix", M_REMOVESUFFIX}, {"replace", M_REPLACE}, {"rfind", M_RFIND}, {"rindex", M_RINDEX},
    {"rjust", M_RJUST}, {"rpartition", M_RPARTITION}, {"rsplit", M_RSPLIT}, {"rstrip", M_RSTRIP},
    {"split", M_SPLIT}, {"splitlines", M_SPLITLINES}, {"startswith", M_STARTSWITH}, {"strip", M_STRIP},
    {"swapcase", M_SWAPCASE}, {"title", M_TITLE}, {"translate", M_STR_UNSUPPORTED}, {"upper", M_UPPER},
    {"zfill", M_ZFILL},
};

static const method dict_methods[] = {
    {"keys", M_KEYS}, {"values", M_VALUES}, {"items", M_ITEMS}, {"get", M_GET}, {"copy", M_DICT_COPY},
};
static const char *const dict_unsafe[] = {"clear", "pop", "popitem", "setdefault", "update", "fromkeys", NULL};

static const method list_methods[] = {{"copy", M_LIST_COPY}, {"count", M_LIST_COUNT}, {"index", M_LIST_INDEX}};
static const char *const list_unsafe[] = {"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort",
                                          NULL};
static const method tuple_methods[] = {{"count", M_LIST_COUNT}, {"index", M_LIST_INDEX}};

static int find_method(const method *m, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(m[i].name, name)) return m[i].id;
    return 0;
}

static int bound(tt_ctx *c, tv self, int id, const char *name, tv *out) {
    tv_func *f = tt_zalloc(c->a, sizeof *f);
    if (!f) return -1;
    f->id = TF_METHOD_BASE + id;
    f->name = name;
    f->self = self;
    out->type = TV_FUNC;
    out->fn = f;
    return 1;
}

static int unsafe(tt_ctx *c, const char *attr, const char *type, tv *out) {
    char msg[160];
    snprintf(msg, sizeof msg, "access to attribute '%s' of '%s' object is unsafe.", attr, type);
    size_t n = strlen(msg);
    char *h = tt_alloc(c->a, n + 1);
    if (!h) return -1;
    memcpy(h, msg, n + 1);
    *out = tv_undef_hint(c, h);
    if (out->u) out->u->unsafe = 1;
    return 1;
}

int tt_method_lookup(tt_ctx *c, tv obj, const char *attr, tv *out) {
    int id = 0;
    switch (obj.type) {
    case TV_STR: id = find_method(str_methods, sizeof str_methods / sizeof str_methods[0], attr); break;
    case TV_DICT:
        id = find_method(dict_methods, sizeof dict_methods / sizeof dict_methods[0], attr);
        for (int i = 0; !id && dict_unsafe[i]; i++)
            if (!strcmp(dict_unsafe[i], attr)) return unsafe(c, attr, "dict", out);
        break;
    case TV_LIST:
        id = find_method(list_methods, sizeof list_methods / sizeof list_methods[0], attr);
        for (int i = 0; !id && list_unsafe[i]; i++)
            if (!strcmp(list_unsafe[i], attr)) return unsafe(c, attr, "list", out);
        break;
    case TV_TUPLE: id = find_method(tuple_methods, sizeof tuple_methods / sizeof tuple_methods[0], attr); break;
    default: break;
    }
    if (!id) return 0;
    for (size_t i = 0; i < sizeof str_methods / sizeof str_methods[0]; i++)
        if (!strcmp(str_methods[i].name, attr)) attr = str_methods[i].name; /* a stable copy */
    return bound(c, obj, id, attr, out);
}

static const char *method_name(int id) {
    for (size_t i = 0; i < sizeof str_methods / sizeof str_methods[0]; i++)
        if (str_methods[i].id == id) return str_methods[i].name;
    return "method";
}

/* ------------------------------------------------------------- utilities */

typedef struct {
    uint32_t *cp;
    size_t n;
    size_t *off; /* byte offset of each code point; off[n] = len */
} cps;

static int decode(tt_ctx *c, const tv_str *s, cps *o) {
    o->cp = tt_alloc(c->a, (s->ncp + 1) * sizeof *o->cp);
    o->off = tt_alloc(c->a, (s->ncp + 1) * sizeof *o->off);
    if (!o->cp || !o->off) return -1;
    size_t i = 0, k = 0;
    while (i < s->len) {
        size_t l;
        o->off[k] = i;
        o->cp[k++] = tt_utf8_next(s->s + i, s->len - i, &l);
        i += l;
    }
    o->off[k] = s->len;
    o->n = k;
    return 0;
}

static int sub_str(tt_ctx *c, const tv_str *s, size_t a, size_t b, tv *out) {
    return tv_str_make(c->a, s->s + a, b - a, out);
}

static int str_out(tt_ctx *c, tt_buf *b, tv *out) {
    int rc = tv_str_make(c->a, b->p ? b->p : "", b->n, out);
    tt_buf_free(b);
    return rc;
}

static int argn(tt_ctx *c, uint32_t pos, const char *name, tt_args *a, size_t lo, size_t hi) {
    if (a->nkw) return tt_fail_at(c->t, pos, "str.%s() takes no keyword arguments", name);
    if (a->n < lo || a->n > hi)
        return tt_fail_at(c->t, pos, "str.%s() takes %zu to %zu arguments (%zu given)", name, lo, hi, a->n);
    return 0;
}

static int is_cased_upper(uint32_t cp) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LT;
}
static int is_cased_lower(uint32_t cp) { return utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_LL; }
static int is_cased(uint32_t cp) { return is_cased_upper(cp) || is_cased_lower(cp); }
static uint32_t up(uint32_t cp) { return (uint32_t)utf8proc_toupper((utf8proc_int32_t)cp); }

/* The unconditional entries of Unicode's SpecialCasing.txt that Python's
 * str.upper()/title() apply (one character becomes several); Greek letters
 * with iota subscript are left to the simple mapping. */
static const struct {
    uint32_t cp, upper[3], title[3];
} special[] = {
    {0x00DF, {0x53, 0x53}, {0x53, 0x73}},          {0x0149, {0x2BC, 0x4E}, {0x2BC, 0x4E}},
    {0x01F0, {0x4A, 0x30C}, {0x4A, 0x30C}},        {0x0390, {0x399, 0x308, 0x301}, {0x399, 0x308, 0x301}},
    {0x03B0, {0x3A5, 0x308, 0x301}, {0x3A5, 0x308, 0x301}}, {0x0587, {0x535, 0x552}, {0x535, 0x582}},
    {0x1E96, {0x48, 0x331}, {0x48, 0x331}},        {0x1E97, {0x54, 0x308}, {0x54, 0x308}},
    {0x1E98, {0x57, 0x30A}, {0x57, 0x30A}},        {0x1E99, {0x59, 0x30A}, {0x59, 0x30A}},
    {0x1E9A, {0x41, 0x2BE}, {0x41, 0x2BE}},        {0xFB00, {0x46, 0x46}, {0x46, 0x66}},
    {0xFB01, {0x46, 0x49}, {0x46, 0x69}},          {0xFB02, {0x46, 0x4C}, {0x46, 0x6C}},
    {0xFB03, {0x46, 0x46, 0x49}, {0x46, 0x66, 0x69}}, {0xFB04, {0x46, 0x46, 0x4C}, {0x46, 0x66, 0x6C}},
    {0xFB05, {0x53, 0x54}, {0x53, 0x74}},          {0xFB06, {0x53, 0x54}, {0x53, 0x74}},
    {0xFB13, {0x544, 0x546}, {0x544, 0x576}},      {0xFB14, {0x544, 0x535}, {0x544, 0x565}},
    {0xFB15, {0x544, 0x53B}, {0x544, 0x56B}},      {0xFB16, {0x54E, 0x546}, {0x54E, 0x576}},
    {0xFB17, {0x544, 0x53D}, {0x544, 0x56D}},
};

/* Writes Python's full upper (title=0) or title (title=1) case of cp. */
static int put_upper(tt_buf *b, uint32_t cp, int title) {
    if (cp >= 0xDF)
        for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
            if (special[i].cp == cp) {
                const uint32_t *m = title ? special[i].title : special[i].upper;
                for (int k = 0; k < 3 && m[k]; k++)
                    if (tt_buf_put_cp(b, m[k])) return -1;
                return 0;
            }
    return tt_buf_put_cp(b, title ? (uint32_t)utf8proc_totitle((utf8proc_int32_t)cp) : up(cp));
}

int tt_put_upper(tt_buf *b, uint32_t cp) { return put_upper(b, cp, 0); }
static uint32_t lo(uint32_t cp) { return (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp); }

static int is_alpha(uint32_t cp) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}
static int is_decimal(uint32_t cp) { return utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_ND; }
static int is_numeric(uint32_t cp) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

/* adjust Python's start/end arguments to [0, n] */
static int range_args(tt_ctx *c, uint32_t pos, tt_args *a, size_t first, size_t n, size_t *s0, size_t *s1) {
    int64_t v[2] = {0, (int64_t)n};
    for (int k = 0; k < 2; k++) {
        if (a->n <= first + (size_t)k) continue;
        tv x = a->v[first + (size_t)k];
        if (x.type == TV_NONE) continue;
        if (x.type != TV_INT && x.type != TV_BOOL)
            return tt_fail_at(c->t, pos, "slice indices must be integers or None");
        int64_t i = x.type == TV_BOOL ? x.b : x.i;
        if (i < 0) {
            i += (int64_t)n;
            if (i < 0) i = 0;
        }
        if (i > (int64_t)n) i = (int64_t)n;
        v[k] = i;
    }
    *s0 = (size_t)v[0];
    *s1 = (size_t)v[1];
    return 0;
}

/* code-point index of the first (or last) occurrence of sub in s[from, to) */
static long cp_find(const cps *s, const cps *sub, size_t from, size_t to, int last) {
    if (to < from || sub->n > to - from) return -1;
    size_t lim = to - sub->n;
    if (last) {
        for (size_t i = lim + 1; i-- > from;)
            if (!memcmp(s->cp + i, sub->cp, sub->n * sizeof(uint32_t))) return (long)i;
    } else {
        for (size_t i = from; i <= lim; i++)
            if (!memcmp(s->cp + i, sub->cp, sub->n * sizeof(uint32_t))) return (long)i;
    }
    return -1;
}

/* ------------------------------------------------------------ str methods */

static int memchr_cp(const uint32_t *v, size_t n, uint32_t cp);

static int strip(tt_ctx *c, uint32_t pos, tv_str *s, tt_args *a, int left, int right, tv *out, const char *name) {
    if (argn(c, pos, name, a, 0, 1)) return -1;
    cps t, chars = {0};
    if (decode(c, s, &t)) return -1;
    int have_chars = a->n == 1 && a->v[0].type != TV_NONE;
    if (have_chars) {
        if (a->v[0].type != TV_STR)
            return tt_fail_at(c->t, pos, "%s arg must be None or str", name);
        if (decode(c, a->v[0].s, &chars)) return -1;
    }
    size_t i = 0, e = t.n;
#define STRIPPABLE(x) (have_chars ? memchr_cp(chars.cp, chars.n, (x)) : tt_py_isspace(x))
    if (left)
        while (i < e && STRIPPABLE(t.cp[i])) i++;
    if (right)
        while (e > i && STRIPPABLE(t.cp[e - 1])) e--;
#undef STRIPPABLE
    return sub_str(c, s, t.off[i], t.off[e], out);
}

static int memchr_cp(const uint32_t *v, size_t n, uint32_t cp) {
    for (size_t i = 0; i < n; i++)
        if (v[i] == cp) return 1;
    return 0;
}

static int split(tt_ctx *c, uint32_t pos, tv_str *s, tt_args *a, int from_right, tv *out) {
    const char *name = from_right ? "rsplit" : "split";
    tv sepv = tv_none(), maxv = tv_int(-1);
    const char *const pn[] = {"sep", "maxsplit"};
    tv slots[2] = {sepv, maxv};
    int given[2];
    if (tt_bind(c, pos, name, a, 2, pn, 0, slots, given)) return -1;
    sepv = slots[0];
    maxv = slots[1];
    if (maxv.type != TV_INT && maxv.type != TV_BOOL)
        return tt_fail_at(c->t, pos, "'%s' object cannot be interpreted as an integer", tv_type_name(maxv));
    int64_t maxsplit = maxv.type == TV_BOOL ? maxv.b : maxv.i;
    if (maxsplit < 0) maxsplit = INT64_MAX;
    tv_list *l = tt_list_new(c->a, 0);
    if (!l) return -1;
    cps t;
    if (decode(c, s, &t)) return -1;
    tv piece;
    if (sepv.type == TV_NONE) {
        /* runs of whitespace; leading/trailing whitespace makes no empty piece */
        if (!from_right) {
            size_t i = 0;
            int64_t done = 0;
            for (;;) {
                while (i < t.n && tt_py_isspace(t.cp[i])) i++;
                if (i >= t.n) break;
                if (done == maxsplit) {
                    size_t e = t.n;
                    while (e > i && tt_py_isspace(t.cp[e - 1])) e--;
                    /* Python keeps trailing whitespace of the remainder */
                    e = t.n;
                    if (sub_str(c, s, t.off[i], t.off[e], &piece) || tt_list_push(c->a, l, piece)) return -1;
                    break;
                }
                size_t j = i;
                while (j < t.n && !tt_py_isspace(t.cp[j])) j++;
                if (sub_str(c, s, t.off[i], t.off[j], &piece) || tt_list_push(c->a, l, piece)) return -1;
                done++;
                i = j;
            }
        } else {
            size_t e = t.n;
            int64_t done = 0;
            tv_list *rev = tt_list_new(c->a, 0);
            if (!rev) return -1;
            for (;;) {
                while (e > 0 && tt_py_isspace(t.cp[e - 1])) e--;
                if (e == 0) break;
                if (done == maxsplit) {
                    if (sub_str(c, s, 0, t.off[e], &piece) || tt_list_push(c->a, rev, piece)) return -1;
                    break;
                }
                size_t j = e;
                while (j > 0 && !tt_py_isspace(t.cp[j - 1])) j--;
                if (sub_str(c, s, t.off[j], t.off[e], &piece) || tt_list_push(c->a, rev, piece)) return -1;
                done++;
                e = j;
            }
            for (size_t i = rev->n; i-- > 0;)
                if (tt_list_push(c->a, l, rev->v[i])) return -1;
        }
    } else {
        if (sepv.type != TV_STR)
            return tt_fail_at(c->t, pos, "must be str or None, not %s", tv_type_name(sepv));
        if (sepv.s->len == 0) return tt_fail_at(c->t, pos, "empty separator");
        const char *sp = sepv.s->s;
        size_t sl = sepv.s->len;
        if (!from_right) {
            size_t i = 0;
            int64_t done = 0;
            for (;;) {
                long k = done < maxsplit ? tt_find(s->s + i, s->len - i, sp, sl) : -1;
                if (k < 0) {
                    if (sub_str(c, s, i, s->len, &piece) || tt_list_push(c->a, l, piece)) return -1;
                    break;
                }
                if (sub_str(c, s, i, i + (size_t)k, &piece) || tt_list_push(c->a, l, piece)) return -1;
                i += (size_t)k + sl;
                done++;
            }
        } else {
            tv_list *rev = tt_list_new(c->a, 0);
            if (!rev) return -1;
            size_t e = s->len;
            int64_t done = 0;
            for (;;) {
                long k = -1;
                if (done < maxsplit && e >= sl)
                    for (size_t j = e - sl + 1; j-- > 0;)
                        if (!memcmp(s->s + j, sp, sl)) {
                            k = (long)j;
                            break;
                        }
                if (k < 0) {
                    if (sub_str(c, s, 0, e, &piece) || tt_list_push(c->a, rev, piece)) return -1;
                    break;
                }
                if (sub_str(c, s, (size_t)k + sl, e, &piece) || tt_list_push(c->a, rev, piece)) return -1;
                e = (size_t)k;
                done++;
            }
            for (size_t i = rev->n; i-- > 0;)
                if (tt_list_push(c->a, l, rev->v[i])) return -1;
        }
    }
    out->type = TV_LIST;
    out->l = l;
    return 0;
}

static int affix(tt_ctx *c, uint32_t pos, tv_str *s, tt_args *a, int end, tv *out) {
    const char *name = end ? "endswith" : "startswith";
    if (argn(c, pos, name, a, 1, 3)) return -1;
    cps t;
    if (decode(c, s, &t)) return -1;
    size_t s0, s1;
    if (range_args(c, pos, a, 1, t.n, &s0, &s1)) return -1;
    tv p = a->v[0];
    tv_list one = {1, 1, &p}, *cands = &one;
    if (p.type == TV_TUPLE) cands = p.l;
    else if (p.type != TV_STR)
        return tt_fail_at(c->t, pos, "%s first arg must be str or a tuple of str, not %s", name, tv_type_name(p));
    *out = tv_bool(0);
    if (s0 > s1) return 0;
    size_t b0 = t.off[s0], b1 = t.off[s1];
    for (size_t i = 0; i < cands->n; i++) {
        tv x = cands->v[i];
        if (x.type != TV_STR)
            return tt_fail_at(c->t, pos, "tuple for %s must only contain str, not %s", name, tv_type_name(x));
        size_t n = x.s->len;
        if (n > b1 - b0) continue;
        if (!memcmp(s->s + (end ? b1 - n : b0), x.s->s, n)) {
            *out = tv_bool(1);
            return 0;
        }
    }
    return 0;
}

static int find(tt_ctx *c, uint32_t pos, tv_str *s, tt_args *a, int id, tv *out) {
    const char *name = id == M_FIND ? "find" : id == M_RFIND ? "rfind" : id == M_INDEX ? "index" : id == M_RINDEX ? "rindex" : "count";
    if (argn(c, pos, name, a, 1, 3)) return -1;
    if (a->v[0].type != TV_STR)
        return tt_fail_at(c->t, pos, "must be str, not %s", tv_type_name(a->v[0]));
    cps t, sub;
    if (decode(c, s, &t) || decode(c, a->v[0].s, &sub)) return -1;
    size_t s0, s1;
    if (range_args(c, pos, a, 1, t.n, &s0, &s1)) return -1;
    if (id == M_COUNT) {
        int64_t n = 0;
        if (s0 <= s1) {
            if (sub.n == 0) n = (int64_t)(s1 - s0) + 1;
            else
                for (size_t i = s0; i + sub.n <= s1;) {
                    long k = cp_find(&t, &sub, i, s1, 0);
                    if (k < 0) break;
                    n++;
                    i = (size_t)k + sub.n;
                }
        }
        *out = tv_int(n);
        return 0;
    }
    long k = s0 <= s1 ? cp_find(&t, &sub, s0, s1, id == M_RFIND || id == M_RINDEX) : -1;
    if (k < 0 && (id == M_INDEX || id == M_RINDEX)) return tt_fail_at(c->t, pos, "substring not found");
    *out = tv_int(k);
    return 0;
}

static int replace(tt_ctx *c, uint32_t pos, tv_str *s, tt_args *a, tv *out) {
    if (argn(c, pos, "replace", a, 2, 3)) return -1;
    if (a->v[0].type != TV_STR || a->v[1].type != TV_STR)
        return tt_fail_at(c->t, pos, "replace() arguments must be str");
    int64_t count = -1;
    if (a->n == 3) {
        if (a->v[2].type != TV_INT && a->v[2].type != TV_BOOL)
            return tt_fail_at(c->t, pos, "'%s' object cannot be interpreted as an integer", tv_type_name(a->v[2]));
        count = a->v[2].type == TV_BOOL ? a->v[2].b : a->v[2].i;
    }
    if (count < 0) count = INT64_MAX;
    const tv_str *old = a->v[0].s, *nw = a->v[1].s;
    tt_buf b = {0};
    int rc = 0;
    if (old->len == 0) {
        /* inserted before every character and at the end */
        size_t i = 0;
        int64_t done = 0;
        while (!rc) {
            if (done < count) {
                rc = tt_buf_put(&b, nw->s, nw->len);
                done++;
            }
            if (rc || i >= s->len) break;
            size_t k;
            tt_utf8_next(s->s + i, s->len - i, &k);
            rc = tt_buf_put(&b, s->s + i, k);
            i += k;
        }
    } else {
        size_t i = 0;
        int64_t done = 0;
        while (!rc) {
            long k = done < count ? tt_find(s->s + i, s->len - i, old->s, old->len) : -1;
            if (k < 0) {
                rc = tt_buf_put(&b, s->s + i, s->len - i);
                break;
            }
            rc = tt_buf_put(&b, s->s + i, (size_t)k) || tt_buf_put(&b, nw->s, nw->len);
            i += (size_t)k + old->len;
            done++;
        }
    }
    if (rc) {
        tt_buf_free(&b);
        return -1;
    }
    return str_out(c, &b, out);
}

static int casemap(tt_ctx *c, tv_str *s, int id, tv *out) {
    cps t;
    if (decode(c, s, &t)) return -1;
    tt_buf b = {0};
    int prev_cased = 0, rc = 0;
    for (size_t i = 0; i < t.n && !rc; i++) {
        uint32_t cp = t.cp[i];
        int lower = 0, upper = 0, title = 0;
        switch (id) {
        case M_UPPER: upper = 1; break;
        case M_LOWER:
        case M_CASEFOLD: lower = 1; break;
        case M_SWAPCASE:
            if (is_cased_upper(cp)) lower = 1;
            else if (is_cased_lower(cp)) upper = 1;
            break;
        case M_CAPITALIZE:
            if (i == 0) title = 1;
            else lower = 1;
            break;
        case M_TITLE:
            if (prev_cased) lower = 1;
            else title = 1;
            prev_cased = is_cased(cp);
            break;
        }
        if (upper || title) rc = put_upper(&b, cp, title);
        else if (lower && cp == 0x130) rc = tt_buf_put_cp(&b, 'i') || tt_buf_put_cp(&b, 0x307);
        else if (lower && cp == 0x3A3) {
            /* Greek final sigma: after a cased letter, not before one */
            int before = i > 0 && is_cased(t.cp[i - 1]), after = i + 1 < t.n && is_cased(t.cp[i + 1]);
            rc = tt_buf_put_cp(&b, before && !after ? 0x3C2 : 0x3C3);
        } else if (lower)
            rc = tt_buf_put_cp(&b, lo(cp));
        else
            rc = tt_buf_put_cp(&b, cp);
    }
    if (rc) {
        tt_buf_free(&b);
        return -1;
    }
    return str_out(c, &b, out);
}

static int predicate(tt_ctx *c, tv_str *s, int id, tv *out) {
    cps t;
    if (decode(c, s, &t)) return -1;
    int r = t.n > 0, cased = 0, prev_cased = 0, title_ok = 1;
    if (id == M_ISASCII) r = 1;
    for (size_t i = 0; i < t.n; i++) {
        uint32_t cp = t.cp[i];
        switch (id) {
        case M_ISALNUM: r &= is_alpha(cp) || is_numeric(cp); break;
        case M_ISALPHA: r &= is_alpha(cp); break;
        case M_ISASCII: r &= cp < 0x80; break;
        case M_ISDECIMAL:
        case M_ISDIGIT: r &= is_decimal(cp); break;
        case M_ISNUMERIC: r &= is_numeric(cp); break;
        case M_ISSPACE: r &= tt_py_isspace(cp); break;
        case M_ISLOWER:
            if (is_cased_upper(cp)) r = 0;
            if (is_cased_lower(cp)) cased = 1;
            break;
        case M_ISUPPER:
            if (is_cased_lower(cp)) r = 0;
            if (is_cased_upper(cp)) cased = 1;
            break;
        case M_ISTITLE:
            if (is_cased_upper(cp)) {
                if (prev_cased) title_ok = 0;
                prev_cased = cased = 1;
            } else if (is_cased_lower(cp)) {
                if (!prev_cased) title_ok = 0;
                prev_cased = cased = 1;
            } else
                prev_cased = 0;
            break;
        }
    }
    if (id == M_ISLOWER || id == M_ISUPPER) r = r && cased;
    if (id == M_ISTITLE) r = title_ok && cased;
    *out = tv_bool(r);
    return 0;
}

static int pad(tt_ctx *c, uint32_t pos, tv_str *s, tt_args *a, int id, tv *out) {
    const char *name = id == M_CENTER ? "center" : id == M_LJUST ? "ljust" : id == M_RJUST ? "rjust" : "zfill";
    if (argn(c, pos, name, a, 1, id == M_ZFILL ? 1 : 2)) return -1;
    if (a->v[0].type != TV_INT && a->v[0].type != TV_BOOL)
        return tt_fail_at(c->t, pos, "'%s' object cannot be interpreted as an integer", tv_type_name(a->v[0]));
    int64_t width = a->v[0].type == TV_BOOL ? a->v[0].b : a->v[0].i;
    uint32_t fill = ' ';
    if (a->n == 2) {
        if (a->v[1].type != TV_STR || a->v[1].s->ncp != 1)
            return tt_fail_at(c->t, pos, "The fill character must be exactly one character long");
        size_t k;
        fill = tt_utf8_next(a->v[1].s->s, a->v[1].s->len, &k);
    }
    int64_t n = (int64_t)s->ncp;
    if (width <= n) {
        out->type = TV_STR;
        out->s = s;
        return 0;
    }
    if (width > (1 << 24)) return tt_fail_at(c->t, pos, "%s: width too large", name);
    int64_t marg = width - n, left = 0;
    if (id == M_CENTER) left = marg / 2 + (marg & width & 1);
    else if (id == M_RJUST || id == M_ZFILL) left = marg;
    tt_buf b = {0};
    int rc = 0;
    size_t body = 0;
    if (id == M_ZFILL) {
        fill = '0';
        if (s->len && (s->s[0] == '+' || s->s[0] == '-')) {
            rc = tt_buf_putc(&b, s->s[0]);
            body = 1;
        }
    }
    for (int64_t i = 0; i < left && !rc; i++) rc = tt_buf_put_cp(&b, fill);
    if (!rc) rc = tt_buf_put(&b, s->s + body, s->len - body);
    for (int64_t i = left; i < marg && !rc; i++) rc = tt_buf_put_cp(&b, fill);
    if (rc) {
        tt_buf_free(&b);
        return -1;
    }
    return str_out(c, &b, out);
}

static int partition(tt_ctx *c, uint32_t pos, tv_str *s, tt_args *a, int right, tv *out) {
    if (argn(c, pos, right ? "rpartition" : "partition", a, 1, 1)) return -1;
    if (a->v[0].type != TV_STR) return tt_fail_at(c->t, pos, "must be str, not %s", tv_type_name(a->v[0]));
    const tv_str *sep = a->v[0].s;
    if (sep->len == 0) return tt_fail_at(c->t, pos, "empty separator");
    long k = -1;
    if (!right) k = tt_find(s->s, s->len, sep->s, sep->len);
    else if (sep->len <= s->len)
        for (size_t j = s->len - sep->len + 1; j-- > 0;)
            if (!memcmp(s->s + j, sep->s, sep->len)) {
                k = (long)j;
                break;
            }
    tv_list *l = tt_list_new(c->a, 3);
    if (!l) return -1;
    l->n = 3;
    tv empty;
    if (tv_str_make(c->a, "", 0, &empty)) return -1;
    if (k < 0) {
        tv whole = {.type = TV_STR};
        whole.s = s;
        l->v[0] = right ? empty : whole;
        l->v[1] = empty;
        l->v[2] = right ? whole : empty;
    } else {
        if (sub_str(c, s, 0, (size_t)k, &l->v[0])) return -1;
        l->v[1] = a->v[0];
        if (sub_str(c, s, (size_t)k + sep->len, s->len, &l->v[2])) return -1;
    }
    out->type = TV_TUPLE;
    out->l = l;
    return 0;
}

static int splitlines(tt_ctx *c, uint32_t pos, tv_str *s, tt_args *a, tv *out) {
    const char *const pn[] = {"keepends"};
    tv slot[1] = {tv_bool(0)};
    int given[1];
    if (tt_bind(c, pos, "splitlines", a, 1, pn, 0, slot, given)) return -1;
    int keep = tv_truth(slot[0]);
    tv_list *l = tt_list_new(c->a, 0);
    if (!l) return -1;
    size_t i = 0;
    while (i < s->len) {
        size_t e = i, brk = 0;
        while (e < s->len) {
            unsigned char ch = (unsigned char)s->s[e];
            if (ch == '\r') brk = (e + 1 < s->len && s->s[e + 1] == '\n') ? 2 : 1;
            else if (ch == '\n' || ch == 0x0B || ch == 0x0C || ch == 0x1C || ch == 0x1D || ch == 0x1E) brk = 1;
            else if (ch >= 0x80) {
                size_t k;
                uint32_t cp = tt_utf8_next(s->s + e, s->len - e, &k);
                if (cp == 0x85 || cp == 0x2028 || cp == 0x2029) brk = k;
            }
            if (brk) break;
            e++;
        }
        tv piece;
        if (sub_str(c, s, i, keep ? e + brk : e, &piece) || tt_list_push(c->a, l, piece)) return -1;
        i = e + brk;
    }
    out->type = TV_LIST;
    out->l = l;
    return 0;
}

static int str_join(tt_ctx *c, uint32_t pos, tv_str *s, tt_args *a, tv *out) {
    if (argn(c, pos, "join", a, 1, 1)) return -1;
    tv_list *l;
    if (tv_iterate(c, pos, a->v[0], &l)) return -1;
    tt_buf b = {0};
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i].type != TV_STR) {
            tt_buf_free(&b);
            return tt_fail_at(c->t, pos, "sequence item %zu: expected str instance, %s found", i,
                              tv_type_name(l->v[i]));
        }
        if ((i && tt_buf_put(&b, s->s, s->len)) || tt_buf_put(&b, l->v[i].s->s, l->v[i].s->len)) {
            tt_buf_free(&b);
            return -1;
        }
    }
    return str_out(c, &b, out);
}

/* ---------------------------------------------------------- str.format */

/* format(value, spec) for the specs chat templates use */
static int format_spec(tt_ctx *c, uint32_t pos, tv v, const char *spec, size_t sl, tt_buf *b) {
    uint32_t fill = ' ';
    char align = 0, sign = '-', type = 0;
    int explicit_fill = 0;
    int zero = 0, alt = 0, comma = 0;
    int64_t width = -1, prec = -1;
    size_t i = 0;
    /* [[fill]align] */
    if (sl >= 1) {
        size_t k;
        uint32_t cp = tt_utf8_next(spec, sl, &k);
        if (k < sl && strchr("<>=^", spec[k])) {
            fill = cp;
            explicit_fill = 1;
            align = spec[k];
            i = k + 1;
        } else if (strchr("<>=^", spec[0])) {
            align = spec[0];
            i = 1;
        }
    }
    if (i < sl && strchr("+- ", spec[i])) sign = spec[i++];
    if (i < sl && spec[i] == '#') {
        alt = 1;
        i++;
    }
    if (i < sl && spec[i] == '0') {
        zero = 1;
        i++;
    }
    if (i < sl && spec[i] >= '0' && spec[i] <= '9') {
        width = 0;
        while (i < sl && spec[i] >= '0' && spec[i] <= '9') width = width * 10 + (spec[i++] - '0');
    }
    if (i < sl && (spec[i] == ',' || spec[i] == '_')) {
        comma = spec[i] == ',' ? 1 : 2;
        i++;
    }
    if (i < sl && spec[i] == '.') {
        i++;
        prec = 0;
        while (i < sl && spec[i] >= '0' && spec[i] <= '9') prec = prec * 10 + (spec[i++] - '0');
    }
    if (i < sl) type = spec[i++];
    int explicit_align = align != 0;
    if (i != sl || width > 100000 || prec > 1000)
        return tt_fail_at(c->t, pos, "format spec '%.*s' is not supported by tune", (int)sl, spec);
    tt_buf body = {0};
    int rc = 0, numeric = 0, neg = 0;
    if (v.type == TV_STR || (type == 's')) {
        if (v.type != TV_STR) {
            tt_buf_free(&body);
            return tt_fail_at(c->t, pos, "format code 's' for a '%s' value", tv_type_name(v));
        }
        size_t n = v.s->len;
        if (prec >= 0) n = tt_utf8_offset(v.s, (size_t)prec);
        rc = tt_buf_put(&body, v.s->s, n);
        if (!align) align = '<';
    } else if ((v.type == TV_INT || v.type == TV_BOOL) && (type == 0 || strchr("dxXobcn", type))) {
        int64_t x = v.type == TV_BOOL ? v.b : v.i;
        numeric = 1;
        neg = x < 0;
        uint64_t ux = neg ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
        char tmp[80];
        if (type == 'x' || type == 'X' || type == 'o') {
            snprintf(tmp, sizeof tmp, type == 'x' ? "%" PRIx64 : type == 'X' ? "%" PRIX64 : "%" PRIo64, ux);
            if (alt) rc = tt_buf_puts(&body, type == 'o' ? "0o" : type == 'x' ? "0x" : "0X");
        } else if (type == 'b') {
            int k = 0;
            char r[70];
            do {
                r[k++] = (char)('0' + (ux & 1));
                ux >>= 1;
            } while (ux);
            for (int j = 0; j < k; j++) tmp[j] = r[k - 1 - j];
            tmp[k] = 0;
            if (alt) rc = tt_buf_puts(&body, "0b");
        } else if (type == 'c') {
            tmp[0] = 0;
            if (x < 0 || x > 0x10FFFF) {
                tt_buf_free(&body);
                return tt_fail_at(c->t, pos, "%%c arg not in range(0x110000)");
            }
            rc = tt_buf_put_cp(&body, (uint32_t)x);
            numeric = 0;
        } else {
            snprintf(tmp, sizeof tmp, "%" PRIu64, ux);
            if (comma) {
                char g[100];
                size_t n = strlen(tmp), k = 0;
                for (size_t j = 0; j < n; j++) {
                    if (j && (n - j) % 3 == 0) g[k++] = comma == 1 ? ',' : '_';
                    g[k++] = tmp[j];
                }
                g[k] = 0;
                strcpy(tmp, g);
            }
        }
        if (!rc) rc = tt_buf_puts(&body, tmp);
        if (!align) align = '>';
    } else if ((v.type == TV_INT || v.type == TV_BOOL || v.type == TV_FLOAT) &&
               (type == 0 || strchr("eEfFgG%", type))) {
        double x = v.type == TV_FLOAT ? v.f : (double)(v.type == TV_BOOL ? v.b : v.i);
        numeric = 1;
        neg = signbit(x) && !isnan(x);
        double ax = fabs(x);
        char tmp[1200];
        if (type == 0 && prec < 0) tt_fmt_float(ax, tmp);
        else if (type == 0) {
            snprintf(tmp, sizeof tmp, "%.*g", (int)(prec ? prec : 1), ax);
            if (!strpbrk(tmp, ".enia")) strcat(tmp, ".0");
        } else if (type == '%') {
            snprintf(tmp, sizeof tmp, "%.*f%%", (int)(prec < 0 ? 6 : prec), ax * 100);
        } else {
            char f[8] = {'%', '.', '*', type, 0};
            snprintf(tmp, sizeof tmp, f, (int)(prec < 0 ? 6 : prec), ax);
        }
        if (comma) {
            tt_buf_free(&body);
            return tt_fail_at(c->t, pos, "format spec '%.*s' is not supported by tune", (int)sl, spec);
        }
        rc = tt_buf_puts(&body, tmp);
        if (!align) align = '>';
    } else {
        tt_buf_free(&body);
        if (sl == 0) return tv_str_append(b, v);
        return tt_fail_at(c->t, pos, "format spec '%.*s' for a '%s' value is not supported by tune", (int)sl, spec,
                          tv_type_name(v));
    }
    if (rc) {
        tt_buf_free(&body);
        return -1;
    }
    const char *signs = "";
    if (numeric) signs = neg ? "-" : sign == '+' ? "+" : sign == ' ' ? " " : "";
    if (zero && !explicit_fill) fill = '0';
    if (zero && !explicit_align && numeric) align = '='; /* zeros after the sign */
    size_t len = tt_utf8_count(body.p ? body.p : "", body.n) + strlen(signs);
    int64_t padn = width > (int64_t)len ? width - (int64_t)len : 0;
    int64_t lp = align == '<' ? 0 : align == '^' ? padn / 2 : padn;
    int64_t rp = padn - lp;
    if (align == '=') {
        rc = tt_buf_puts(b, signs);
        for (int64_t k = 0; k < padn && !rc; k++) rc = tt_buf_put_cp(b, fill);
        if (!rc) rc = tt_buf_put(b, body.p ? body.p : "", body.n);
    } else {
        for (int64_t k = 0; k < lp && !rc; k++) rc = tt_buf_put_cp(b, fill);
        if (!rc) rc = tt_buf_puts(b, signs) || tt_buf_put(b, body.p ? body.p : "", body.n);
        for (int64_t k = 0; k < rp && !rc; k++) rc = tt_buf_put_cp(b, fill);
    }
    tt_buf_free(&body);
    return rc;
}

static int str_format(tt_ctx *c, uint32_t pos, tv_str *s, tt_args *a, tv *out) {
    tt_buf b = {0};
    size_t i = 0, auto_idx = 0;
    int rc = 0;
    while (i < s->len && !rc) {
        char ch = s->s[i];
        if (ch == '}') {
            if (i + 1 < s->len && s->s[i + 1] == '}') {
                rc = tt_buf_putc(&b, '}');
                i += 2;
                continue;
            }
            rc = tt_fail_at(c->t, pos, "Single '}' encountered in format string");
            break;
        }
        if (ch != '{') {
            rc = tt_buf_putc(&b, ch);
            i++;
            continue;
        }
        if (i + 1 < s->len && s->s[i + 1] == '{') {
            rc = tt_buf_putc(&b, '{');
            i += 2;
            continue;
        }
        size_t e = i + 1;
        while (e < s->len && s->s[e] != '}' && s->s[e] != '{') e++;
        if (e >= s->len || s->s[e] != '}') {
            rc = tt_fail_at(c->t, pos, "expected '}' before end of string in a format string");
            break;
        }
        const char *f = s->s + i + 1;
        size_t fl = e - i - 1;
        /* field_name[!conv][:spec] */
        size_t colon = fl, bang = fl;
        for (size_t k = 0; k < fl; k++) {
            if (f[k] == '!' && bang == fl && colon == fl) bang = k;
            if (f[k] == ':' && colon == fl) {
                colon = k;
                break;
            }
        }
        size_t nl = bang < colon ? bang : colon;
        tv v;
        /* the first part of the field name: index or keyword */
        size_t k = 0;
        while (k < nl && f[k] != '.' && f[k] != '[') k++;
        if (k == 0) {
            if (auto_idx >= a->n) {
                rc = tt_fail_at(c->t, pos, "Replacement index %zu out of range for positional args tuple", auto_idx);
                break;
            }
            v = a->v[auto_idx++];
        } else if (f[0] >= '0' && f[0] <= '9') {
            size_t idx = (size_t)strtoul(f, NULL, 10);
            if (idx >= a->n) {
                rc = tt_fail_at(c->t, pos, "Replacement index %zu out of range for positional args tuple", idx);
                break;
            }
            v = a->v[idx];
        } else {
            size_t kk;
            for (kk = 0; kk < a->nkw; kk++)
                if (strlen(a->kwn[kk]) == k && !memcmp(a->kwn[kk], f, k)) break;
            if (kk == a->nkw) {
                rc = tt_fail_at(c->t, pos, "format string: no argument '%.*s'", (int)k, f);
                break;
            }
            v = a->kwv[kk];
        }
        /* .attr and [key] parts */
        while (k < nl && !rc) {
            if (f[k] == '.') {
                size_t j = k + 1;
                while (j < nl && f[j] != '.' && f[j] != '[') j++;
                char *name = tt_alloc(c->a, j - k);
                if (!name) {
                    rc = -1;
                    break;
                }
                memcpy(name, f + k + 1, j - k - 1);
                name[j - k - 1] = 0;
                rc = tt_getattr(c, pos, v, name, &v);
                k = j;
            } else if (f[k] == '[') {
                size_t j = k + 1;
                while (j < nl && f[j] != ']') j++;
                tv key;
                int digits = j > k + 1;
                for (size_t q = k + 1; q < j; q++)
                    if (f[q] < '0' || f[q] > '9') digits = 0;
                if (digits) key = tv_int(strtoll(f + k + 1, NULL, 10));
                else if (tv_str_make(c->a, f + k + 1, j - k - 1, &key)) {
                    rc = -1;
                    break;
                }
                rc = tt_getitem(c, pos, v, key, &v);
                k = j + 1;
            } else {
                rc = tt_fail_at(c->t, pos, "bad field name in a format string");
            }
        }
        if (rc) break;
        if (v.type == TV_UNDEF) {
            rc = tv_undef_fail(c, pos, v);
            break;
        }
        if (bang < fl) {
            char conv = bang + 1 < fl ? f[bang + 1] : 0;
            tt_buf t = {0};
            if (conv == 'r' || conv == 'a') rc = tv_repr_append(&t, v);
            else if (conv == 's') rc = tv_str_append(&t, v);
            else rc = tt_fail_at(c->t, pos, "unknown conversion specifier in a format string");
            if (!rc) rc = tv_str_make(c->a, t.p ? t.p : "", t.n, &v);
            tt_buf_free(&t);
            if (rc) break;
        }
        const char *spec = colon < fl ? f + colon + 1 : "";
        size_t sl = colon < fl ? fl - colon - 1 : 0;
        if (sl == 0) rc = tv_str_append(&b, v);
        else rc = format_spec(c, pos, v, spec, sl, &b);
        i = e + 1;
    }
    if (rc) {
        tt_buf_free(&b);
        return -1;
    }
    return str_out(c, &b, out);
}

/* ---------------------------------------------------- printf-style % */

int tt_percent_format(tt_ctx *c, uint32_t pos, tv_str *fmt, tv args, tv *out) {
    tv_list one, *pos_args;
    tv single = args;
    /* a mapping: a dict, or anything else Python's % sees as one (it has
     * __getitem__ and is not a tuple or str): Undefined here */
    int mapping = args.type == TV_DICT || args.type == TV_UNDEF;
    if (args.type == TV_TUPLE) pos_args = args.l;
    else {
        one.n = one.cap = 1;
        one.v = &single;
        pos_args = &one;
    }
    size_t next = 0;
    tt_buf b = {0};
    int rc = 0, used_mapping = 0;
    const char *s = fmt->s;
    size_t n = fmt->len, i = 0;
    while (i < n && !rc) {
        if (s[i] != '%') {
            const char *q = memchr(s + i, '%', n - i);
            size_t e = q ? (size_t)(q - s) : n;
            rc = tt_buf_put(&b, s + i, e - i);
            i = e;
            continue;
        }
        i++;
        if (i >= n) {
            rc = tt_fail_at(c->t, pos, "incomplete format");
            break;
        }
        tv v;
        int have_v = 0;
        if (s[i] == '(') {
            size_t e = i + 1;
            int depth = 1;
            while (e < n && depth) {
                if (s[e] == '(') depth++;
                else if (s[e] == ')') depth--;
                if (depth) e++;
            }
            if (e >= n) {
                rc = tt_fail_at(c->t, pos, "incomplete format key");
                break;
            }
            if (!mapping) {
                rc = tt_fail_at(c->t, pos, "format requires a mapping");
                break;
            }
            if (args.type == TV_UNDEF) {
                rc = tv_undef_fail(c, pos, args);
                break;
            }
            long k = tt_dict_find_str(args.d, s + i + 1, e - i - 1);
            if (k < 0) {
                rc = tt_fail_at(c->t, pos, "KeyError: '%.*s'", (int)(e - i - 1), s + i + 1);
                break;
            }
            v = args.d->v[k];
            have_v = 1;
            used_mapping = 1;
            i = e + 1;
        }
        char flags[8];
        size_t nf = 0;
        while (i < n && strchr("-+ #0", s[i]) && nf < sizeof flags - 1) flags[nf++] = s[i++];
        flags[nf] = 0;
        int64_t width = -1, prec = -1;
        if (i < n && s[i] == '*') {
            if (next >= pos_args->n || pos_args->v[next].type != TV_INT) {
                rc = tt_fail_at(c->t, pos, "* wants int");
                break;
            }
            width = pos_args->v[next++].i;
            i++;
        } else if (i < n && s[i] >= '0' && s[i] <= '9') {
            width = 0;
            while (i < n && s[i] >= '0' && s[i] <= '9' && width < 100000) width = width * 10 + (s[i++] - '0');
        }
        if (i < n && s[i] == '.') {
            i++;
            prec = 0;
            if (i < n && s[i] == '*') {
                if (next >= pos_args->n || pos_args->v[next].type != TV_INT) {
                    rc = tt_fail_at(c->t, pos, "* wants int");
                    break;
                }
                prec = pos_args->v[next++].i;
                i++;
            } else
                while (i < n && s[i] >= '0' && s[i] <= '9' && prec < 10000) prec = prec * 10 + (s[i++] - '0');
        }
        while (i < n && strchr("hlL", s[i])) i++;
        if (i >= n) {
            rc = tt_fail_at(c->t, pos, "incomplete format");
            break;
        }
        char conv = s[i++];
        if (conv == '%') {
            rc = tt_buf_putc(&b, '%');
            continue;
        }
        if (!have_v) {
            if (mapping) {
                v = args; /* '%s' % {'a': 1} formats the dict itself */
                used_mapping = 1;
            } else {
                if (next >= pos_args->n) {
                    rc = tt_fail_at(c->t, pos, "not enough arguments for format string");
                    break;
                }
                v = pos_args->v[next++];
            }
        }
        int left = strchr(flags, '-') != NULL, zero = strchr(flags, '0') != NULL && !left;
        tt_buf body = {0};
        const char *signs = "";
        if (conv == 's' || conv == 'r' || conv == 'a') {
            rc = conv == 's' ? tv_str_append(&body, v) : tv_repr_append(&body, v);
            if (!rc && fmt->markup && !(conv == 's' && v.type == TV_STR && v.s->markup)) {
                /* Markup % x: x's text escaped */
                tv_str *t = tt_str_new(c->a, body.p ? body.p : "", body.n), *e = t ? tt_escape(c->a, t) : NULL;
                if (!e) rc = -1;
                else {
                    body.n = 0;
                    rc = tt_buf_put(&body, e->s, e->len);
                }
            }
            if (!rc && prec >= 0) {
                tv_str *t = tt_str_new(c->a, body.p ? body.p : "", body.n);
                if (!t) rc = -1;
                else body.n = tt_utf8_offset(t, (size_t)prec);
            }
            zero = 0;
        } else if (strchr("diuxXoc", conv)) {
            int64_t x;
            if (v.type == TV_INT || v.type == TV_BOOL) x = v.type == TV_BOOL ? v.b : v.i;
            else if (v.type == TV_FLOAT && conv != 'c' && conv != 'x' && conv != 'X' && conv != 'o') {
                if (!isfinite(v.f)) {
                    tt_buf_free(&body);
                    rc = tt_fail_at(c->t, pos, "cannot convert float %s to integer", isnan(v.f) ? "NaN" : "infinity");
                    break;
                }
                x = (int64_t)v.f;
            } else if (conv == 'c' && v.type == TV_STR && v.s->ncp == 1) {
                rc = tt_buf_put(&body, v.s->s, v.s->len);
                goto padit;
            } else {
                tt_buf_free(&body);
                rc = tt_fail_at(c->t, pos, "%%%c format: a real number is required, not %s", conv, tv_type_name(v));
                break;
            }
            if (conv == 'c') {
                if (x < 0 || x > 0x10FFFF) {
                    tt_buf_free(&body);
                    rc = tt_fail_at(c->t, pos, "%%c arg not in range(0x110000)");
                    break;
                }
                rc = tt_buf_put_cp(&body, (uint32_t)x);
                zero = 0;
                goto padit;
            }
            uint64_t ux = x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
            signs = x < 0 ? "-" : strchr(flags, '+') ? "+" : strchr(flags, ' ') ? " " : "";
            char tmp[80];
            if (conv == 'x') snprintf(tmp, sizeof tmp, "%s%" PRIx64, strchr(flags, '#') ? "0x" : "", ux);
            else if (conv == 'X') snprintf(tmp, sizeof tmp, "%s%" PRIX64, strchr(flags, '#') ? "0X" : "", ux);
            else if (conv == 'o') snprintf(tmp, sizeof tmp, "%s%" PRIo64, strchr(flags, '#') ? "0o" : "", ux);
            else snprintf(tmp, sizeof tmp, "%" PRIu64, ux);
            if (prec > 0 && (int64_t)strlen(tmp) < prec)
                for (int64_t k = (int64_t)strlen(tmp); k < prec && !rc; k++) rc = tt_buf_putc(&body, '0');
            if (!rc) rc = tt_buf_puts(&body, tmp);
        } else if (strchr("eEfFgG", conv)) {
            double x;
            if (v.type == TV_FLOAT) x = v.f;
            else if (v.type == TV_INT || v.type == TV_BOOL) x = (double)(v.type == TV_BOOL ? v.b : v.i);
            else {
                tt_buf_free(&body);
                rc = tt_fail_at(c->t, pos, "must be real number, not %s", tv_type_name(v));
                break;
            }
            signs = signbit(x) && !isnan(x) ? "-" : strchr(flags, '+') ? "+" : strchr(flags, ' ') ? " " : "";
            char f[8] = {'%', 0, 0, 0, 0, 0, 0, 0};
            size_t fk = 1;
            if (strchr(flags, '#')) f[fk++] = '#';
            f[fk++] = '.';
            f[fk++] = '*';
            f[fk++] = conv;
            char tmp[1200];
            snprintf(tmp, sizeof tmp, f, (int)(prec < 0 ? 6 : prec > 1000 ? 1000 : prec), fabs(x));
            if (!isfinite(x)) zero = 0;
            rc = tt_buf_puts(&body, tmp);
        } else {
            tt_buf_free(&body);
            rc = tt_fail_at(c->t, pos, "unsupported format character '%c'", conv);
            break;
        }
    padit:
        if (!rc) {
            size_t len = tt_utf8_count(body.p ? body.p : "", body.n) + strlen(signs);
            int64_t padn = width > (int64_t)len ? width - (int64_t)len : 0;
            if (left) {
                rc = tt_buf_puts(&b, signs) || tt_buf_put(&b, body.p ? body.p : "", body.n);
                for (int64_t k = 0; k < padn && !rc; k++) rc = tt_buf_putc(&b, ' ');
            } else if (zero) {
                rc = tt_buf_puts(&b, signs);
                for (int64_t k = 0; k < padn && !rc; k++) rc = tt_buf_putc(&b, '0');
                if (!rc) rc = tt_buf_put(&b, body.p ? body.p : "", body.n);
            } else {
                for (int64_t k = 0; k < padn && !rc; k++) rc = tt_buf_putc(&b, ' ');
                if (!rc) rc = tt_buf_puts(&b, signs) || tt_buf_put(&b, body.p ? body.p : "", body.n);
            }
        }
        tt_buf_free(&body);
    }
    /* Python skips this check for anything with __getitem__ (a list too) */
    int getitem = mapping || args.type == TV_LIST || (args.type == TV_ITER && args.it->kind == TI_RANGE);
    if (!rc && !getitem && next < pos_args->n)
        rc = tt_fail_at(c->t, pos, "not all arguments converted during string formatting");
    (void)used_mapping;
    if (rc) {
        tt_buf_free(&b);
        return -1;
    }
    if (str_out(c, &b, out)) return -1;
    out->s->markup = fmt->markup;
    return 0;
}

/* ---------------------------------------------------------- dispatch */

static int view(tt_ctx *c, tv_dict *d, int kind, tv *out) {
    tv_list *l = tt_list_new(c->a, d->n);
    if (!l) return -1;
    for (size_t i = 0; i < d->n; i++) {
        if (kind == TI_KEYS) l->v[l->n++] = d->k[i];
        else if (kind == TI_VALUES) l->v[l->n++] = d->v[i];
        else {
            tv_list *p = tt_list_new(c->a, 2);
            if (!p) return -1;
            p->v[0] = d->k[i];
            p->v[1] = d->v[i];
            p->n = 2;
            l->v[l->n].type = TV_TUPLE;
            l->v[l->n++].l = p;
        }
    }
    tv_iter *it = tt_zalloc(c->a, sizeof *it);
    if (!it) return -1;
    it->kind = kind;
    it->items = l;
    out->type = TV_ITER;
    out->it = it;
    return 0;
}

static int str_method(tt_ctx *c, uint32_t pos, tv_func *f, tt_args *a, tv *out);

/* Markup's methods (markupsafe): most escape their string arguments and
 * return Markup; split & co. return lists of Markup; join escapes the items. */
static int markup_method(tt_ctx *c, uint32_t pos, tv_func *f, tt_args *a, tv *out) {
    int id = f->id - TF_METHOD_BASE;
    int wrapped = id == M_CAPITALIZE || id == M_TITLE || id == M_LOWER || id == M_UPPER || id == M_REPLACE ||
                  id == M_LJUST || id == M_RJUST || id == M_LSTRIP || id == M_RSTRIP || id == M_CENTER ||
                  id == M_STRIP || id == M_SWAPCASE || id == M_ZFILL || id == M_PARTITION || id == M_RPARTITION;
    tt_args e = *a;
    if (wrapped || id == M_JOIN) {
        size_t n = a->n + a->nkw;
        tv *v = tt_alloc(c->a, (n ? n : 1) * sizeof *v);
        if (!v) return -1;
        for (size_t i = 0; i < a->n; i++) v[i] = a->v[i];
        for (size_t i = 0; i < a->nkw; i++) v[a->n + i] = a->kwv[i];
        for (size_t i = 0; i < n && wrapped; i++)
            if (v[i].type == TV_STR && !(v[i].s = tt_escape(c->a, v[i].s))) return -1;
        if (id == M_JOIN && a->n == 1) {
            tv_list *l, *esc;
            if (tv_iterate(c, pos, a->v[0], &l) || !(esc = tt_list_new(c->a, l->n))) return -1;
            for (size_t i = 0; i < l->n; i++) {
                tv x = l->v[i];
                if (x.type == TV_STR) {
                    if (!(x.s = tt_escape(c->a, x.s))) return -1;
                } else if (x.type != TV_UNDEF) {
                    tv_str *t;
                    if (tv_to_str(c, x, &t) || !(t = tt_escape(c->a, t))) return -1;
                    x.type = TV_STR;
                    x.s = t;
                }
                esc->v[esc->n++] = x;
            }
            v[0].type = TV_LIST;
            v[0].l = esc;
        }
        e.v = v;
        e.kwv = v + a->n;
    }
    if (str_method(c, pos, f, &e, out)) return -1;
    int items = id == M_SPLIT || id == M_RSPLIT || id == M_SPLITLINES || id == M_PARTITION || id == M_RPARTITION;
    if (items && (out->type == TV_LIST || out->type == TV_TUPLE)) {
        for (size_t i = 0; i < out->l->n; i++)
            if (out->l->v[i].type == TV_STR && !(out->l->v[i].s = tt_markup(c->a, out->l->v[i].s))) return -1;
    } else if ((wrapped || id == M_JOIN || id == M_FORMAT) && out->type == TV_STR) {
        if (!(out->s = tt_markup(c->a, out->s))) return -1;
    }
    return 0;
}

int tt_method_call(tt_ctx *c, uint32_t pos, tv_func *f, tt_args *a, tv *out) {
    if (f->self.type == TV_STR && f->self.s->markup) return markup_method(c, pos, f, a, out);
    return str_method(c, pos, f, a, out);
}

static int str_method(tt_ctx *c, uint32_t pos, tv_func *f, tt_args *a, tv *out) {
    int id = f->id - TF_METHOD_BASE;
    tv self = f->self;
    if (self.type == TV_DICT) {
        if (id != M_GET && (a->n || a->nkw)) return tt_fail_at(c->t, pos, "dict method takes no arguments");
        switch (id) {
        case M_KEYS: return view(c, self.d, TI_KEYS, out);
        case M_VALUES: return view(c, self.d, TI_VALUES, out);
        case M_ITEMS: return view(c, self.d, TI_ITEMS, out);
        case M_DICT_COPY: {
            tv_dict *d = tt_dict_new(c->a, self.d->n);
            if (!d) return -1;
            for (size_t i = 0; i < self.d->n; i++)
                if (tt_dict_set(c->a, d, self.d->k[i], self.d->v[i])) return -1;
            out->type = TV_DICT;
            out->d = d;
            return 0;
        }
        case M_GET: {
            if (a->nkw || a->n < 1 || a->n > 2) return tt_fail_at(c->t, pos, "get expected 1 or 2 arguments");
            tv k = a->v[0];
            if (k.type == TV_LIST || k.type == TV_DICT) return tt_fail_at(c->t, pos, "unhashable type: '%s'", tv_type_name(k));
            long i = tt_dict_find(self.d, k);
            *out = i >= 0 ? self.d->v[i] : (a->n == 2 ? a->v[1] : tv_none());
            return 0;
        }
        }
    }
    if (self.type == TV_LIST || self.type == TV_TUPLE) {
        switch (id) {
        case M_LIST_COPY: {
            tv_list *l = tt_list_new(c->a, self.l->n);
            if (!l) return -1;
            if (self.l->n) memcpy(l->v, self.l->v, self.l->n * sizeof(tv));
            l->n = self.l->n;
            out->type = TV_LIST;
            out->l = l;
            return 0;
        }
        case M_LIST_COUNT:
        case M_LIST_INDEX: {
            if (a->nkw || a->n < 1) return tt_fail_at(c->t, pos, "%s expected an argument", id == M_LIST_COUNT ? "count" : "index");
            int64_t n = 0;
            for (size_t i = 0; i < self.l->n; i++)
                if (tv_eq(self.l->v[i], a->v[0])) {
                    if (id == M_LIST_INDEX) {
                        *out = tv_int((int64_t)i);
                        return 0;
                    }
                    n++;
                }
            if (id == M_LIST_INDEX) return tt_fail_at(c->t, pos, "value is not in %s", tv_type_name(self));
            *out = tv_int(n);
            return 0;
        }
        }
    }
    if (self.type != TV_STR) return tt_fail_at(c->t, pos, "internal error: method %d", id);
    tv_str *s = self.s;
    tt_args none = {0};
    switch (id) {
    case M_STRIP: return strip(c, pos, s, a, 1, 1, out, "strip");
    case M_LSTRIP: return strip(c, pos, s, a, 1, 0, out, "lstrip");
    case M_RSTRIP: return strip(c, pos, s, a, 0, 1, out, "rstrip");
    case M_SPLIT: return split(c, pos, s, a, 0, out);
    case M_RSPLIT: return split(c, pos, s, a, 1, out);
    case M_STARTSWITH: return affix(c, pos, s, a, 0, out);
    case M_ENDSWITH: return affix(c, pos, s, a, 1, out);
    case M_FIND:
    case M_RFIND:
    case M_INDEX:
    case M_RINDEX:
    case M_COUNT: return find(c, pos, s, a, id, out);
    case M_REPLACE: return replace(c, pos, s, a, out);
    case M_UPPER:
    case M_LOWER:
    case M_CASEFOLD:
    case M_SWAPCASE:
    case M_CAPITALIZE:
    case M_TITLE:
        if (argn(c, pos, method_name(id), a, 0, 0)) return -1;
        return casemap(c, s, id, out);
    case M_ISALNUM:
    case M_ISALPHA:
    case M_ISASCII:
    case M_ISDECIMAL:
    case M_ISDIGIT:
    case M_ISNUMERIC:
    case M_ISSPACE:
    case M_ISLOWER:
    case M_ISUPPER:
    case M_ISTITLE:
        if (argn(c, pos, method_name(id), a, 0, 0)) return -1;
        return predicate(c, s, id, out);
    case M_CENTER:
    case M_LJUST:
    case M_RJUST:
    case M_ZFILL: return pad(c, pos, s, a, id, out);
    case M_PARTITION: return partition(c, pos, s, a, 0, out);
    case M_RPARTITION: return partition(c, pos, s, a, 1, out);
    case M_REMOVEPREFIX:
    case M_REMOVESUFFIX: {
        if (argn(c, pos, method_name(id), a, 1, 1)) return -1;
        if (a->v[0].type != TV_STR) return tt_fail_at(c->t, pos, "must be str, not %s", tv_type_name(a->v[0]));
        const tv_str *x = a->v[0].s;
        if (x->len <= s->len) {
            if (id == M_REMOVEPREFIX && !memcmp(s->s, x->s, x->len)) return sub_str(c, s, x->len, s->len, out);
            if (id == M_REMOVESUFFIX && x->len && !memcmp(s->s + s->len - x->len, x->s, x->len))
                return sub_str(c, s, 0, s->len - x->len, out);
        }
        *out = self;
        return 0;
    }
    case M_SPLITLINES: return splitlines(c, pos, s, a, out);
    case M_JOIN: return str_join(c, pos, s, a, out);
    case M_FORMAT: return str_format(c, pos, s, a, out);
    default:
        (void)none;
        return tt_fail_at(c->t, pos, "str.%s() is not supported by tune", f->name ? f->name : "?");
    }
}
