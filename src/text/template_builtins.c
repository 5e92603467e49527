#define _POSIX_C_SOURCE 200809L
/* template_builtins.c - jinja2's filters and tests, the globals chat
 * templates call (range, dict, namespace, joiner, raise_exception,
 * strftime_now) and HF's tojson. Each follows the jinja2 3.1 function of
 * the same name (filters.py, tests.py, utils.py), including its quirks:
 * select/map/items return generators (always truthy, no len, consumed
 * once), `first` of an empty sequence is undefined, `default` replaces
 * only undefined unless its second argument is true. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#include "text/template_internal.h"
#include "util/error.h"

/* ------------------------------------------------------------------ names */

enum {
    F_ABS = 1, F_ATTR, F_BATCH, F_CAPITALIZE, F_CENTER, F_DEFAULT, F_DICTSORT, F_ESCAPE, F_FIRST, F_FLOAT,
    F_FORCEESCAPE, F_FORMAT, F_INDENT, F_INT, F_ITEMS, F_JOIN, F_LAST, F_LENGTH, F_LIST, F_LOWER, F_MAP, F_MAX,
    F_MIN, F_REJECT, F_REJECTATTR, F_REPLACE, F_REVERSE, F_ROUND, F_SAFE, F_SELECT, F_SELECTATTR, F_SORT,
    F_STRING, F_SUM, F_TITLE, F_TOJSON, F_TRIM, F_TRUNCATE, F_UNIQUE, F_UPPER, F_WORDCOUNT,
};

static const struct {
    const char *name;
    int id;
} filters[] = {
    {"abs", F_ABS}, {"attr", F_ATTR}, {"batch", F_BATCH}, {"capitalize", F_CAPITALIZE}, {"center", F_CENTER},
    {"count", F_LENGTH}, {"d", F_DEFAULT}, {"default", F_DEFAULT}, {"dictsort", F_DICTSORT}, {"e", F_ESCAPE},
    {"escape", F_ESCAPE}, {"first", F_FIRST}, {"float", F_FLOAT}, {"forceescape", F_FORCEESCAPE},
    {"format", F_FORMAT}, {"indent", F_INDENT}, {"int", F_INT}, {"items", F_ITEMS}, {"join", F_JOIN},
    {"last", F_LAST}, {"length", F_LENGTH}, {"list", F_LIST}, {"lower", F_LOWER}, {"map", F_MAP},
    {"max", F_MAX}, {"min", F_MIN}, {"reject", F_REJECT}, {"rejectattr", F_REJECTATTR}, {"replace", F_REPLACE},
    {"reverse", F_REVERSE}, {"round", F_ROUND}, {"safe", F_SAFE}, {"select", F_SELECT},
    {"selectattr", F_SELECTATTR}, {"sort", F_SORT}, {"string", F_STRING}, {"sum", F_SUM}, {"title", F_TITLE},
    {"tojson", F_TOJSON}, {"trim", F_TRIM}, {"truncate", F_TRUNCATE}, {"unique", F_UNIQUE}, {"upper", F_UPPER},
    {"wordcount", F_WORDCOUNT},
    /* in jinja2, not in tune */
    {"filesizeformat", -2}, {"groupby", -2}, {"pprint", -2}, {"random", -2}, {"slice", -2}, {"striptags", -2},
    {"urlencode", -2}, {"urlize", -2}, {"wordwrap", -2}, {"xmlattr", -2},
};

enum {
    T_ODD = 1, T_EVEN, T_DIVISIBLEBY, T_DEFINED, T_UNDEFINED, T_FILTER, T_TEST, T_NONE, T_BOOLEAN, T_FALSE, T_TRUE,
    T_INTEGER, T_FLOAT, T_LOWER, T_UPPER, T_STRING, T_MAPPING, T_NUMBER, T_SEQUENCE, T_ITERABLE, T_CALLABLE,
    T_SAMEAS, T_ESCAPED, T_IN, T_EQ, T_NE, T_GT, T_GE, T_LT, T_LE,
};

static const struct {
    const char *name;
    int id;
} tests[] = {
    {"odd", T_ODD}, {"even", T_EVEN}, {"divisibleby", T_DIVISIBLEBY}, {"defined", T_DEFINED},
    {"undefined", T_UNDEFINED}, {"filter", T_FILTER}, {"test", T_TEST}, {"none", T_NONE},
    {"boolean", T_BOOLEAN}, {"false", T_FALSE}, {"true", T_TRUE}, {"integer", T_INTEGER}, {"float", T_FLOAT},
    {"lower", T_LOWER}, {"upper", T_UPPER}, {"string", T_STRING}, {"mapping", T_MAPPING}, {"number", T_NUMBER},
    {"sequence", T_SEQUENCE}, {"iterable", T_ITERABLE}, {"callable", T_CALLABLE}, {"sameas", T_SAMEAS},
    {"escaped", T_ESCAPED}, {"in", T_IN}, {"==", T_EQ}, {"eq", T_EQ}, {"equalto", T_EQ}, {"!=", T_NE},
    {"ne", T_NE}, {">", T_GT}, {"gt", T_GT}, {"greaterthan", T_GT}, {"ge", T_GE}, {">=", T_GE}, {"<", T_LT},
    {"lt", T_LT}, {"lessthan", T_LT}, {"<=", T_LE}, {"le", T_LE},
};

int tt_filter_id(const char *name) {
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
        if (!strcmp(filters[i].name, name)) return filters[i].id;
    return -1;
}

int tt_test_id(const char *name) {
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (!strcmp(tests[i].name, name)) return tests[i].id;
    return -1;
}

static const char *filter_name(int id) {
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
        if (filters[i].id == id) return filters[i].name;
    return "?";
}

/* ---------------------------------------------------------------- helpers */

int tt_bind(tt_ctx *c, uint32_t pos, const char *fname, tt_args *a, size_t np, const char *const *pnames,
            size_t nreq, tv *slots, int *provided) {
    for (size_t i = 0; i < np; i++) provided[i] = 0;
    if (a->n > np) return tt_fail_at(c->t, pos, "%s() takes at most %zu argument(s) (%zu given)", fname, np, a->n);
    for (size_t i = 0; i < a->n; i++) {
        slots[i] = a->v[i];
        provided[i] = 1;
    }
    for (size_t k = 0; k < a->nkw; k++) {
        size_t i;
        for (i = 0; i < np; i++)
            if (!strcmp(pnames[i], a->kwn[k])) break;
        if (i == np) return tt_fail_at(c->t, pos, "%s() got an unexpected keyword argument '%s'", fname, a->kwn[k]);
        if (provided[i]) return tt_fail_at(c->t, pos, "%s() got multiple values for argument '%s'", fname, a->kwn[k]);
        slots[i] = a->kwv[k];
        provided[i] = 1;
    }
    for (size_t i = 0; i < nreq; i++)
        if (!provided[i]) return tt_fail_at(c->t, pos, "%s() missing required argument '%s'", fname, pnames[i]);
    return 0;
}

#define BIND(fname, nreq, ...)                                                                       \
    const char *const pn_[] = {__VA_ARGS__};                                                         \
    enum { NP_ = sizeof pn_ / sizeof pn_[0] };                                                       \
    int given_[NP_];                                                                                 \
    if (tt_bind(c, pos, fname, a, NP_, pn_, nreq, arg, given_)) return -1

static int buf_to_str(tt_ctx *c, tt_buf *b, tv *out) {
    int rc = tv_str_make(c->a, b->p ? b->p : "", b->n, out);
    tt_buf_free(b);
    return rc;
}

static int make_gen(tt_ctx *c, tv_list *items, const char *name, int kind, tv *out) {
    tv_iter *it = tt_zalloc(c->a, sizeof *it);
    if (!it) return -1;
    it->kind = kind;
    it->items = items;
    it->gen_name = name;
    out->type = TV_ITER;
    out->it = it;
    return 0;
}

static int is_int(tv v) { return v.type == TV_INT || v.type == TV_BOOL; }
static int64_t ival(tv v) { return v.type == TV_BOOL ? v.b : v.i; }

static int want_int(tt_ctx *c, uint32_t pos, tv v, const char *what, int64_t *out) {
    if (!is_int(v)) {
        tt_fail_at(c->t, pos, "%s: expected an integer, got '%s'", what, tv_type_name(v));
        return -1;
    }
    *out = ival(v);
    return 0;
}

static int want_str(tt_ctx *c, uint32_t pos, tv v, const char *what, tv_str **out) {
    if (v.type != TV_STR) {
        tt_fail_at(c->t, pos, "%s: expected a string, got '%s'", what, tv_type_name(v));
        return -1;
    }
    *out = v.s;
    return 0;
}

/* str.lower() of a string value (utf8proc's simple case mapping) */
static int str_lower(tt_ctx *c, tv v, tv *out) {
    tt_buf b = {0};
    size_t i = 0;
    while (i < v.s->len) {
        size_t k;
        uint32_t cp = tt_utf8_next(v.s->s + i, v.s->len - i, &k);
        if (tt_buf_put_cp(&b, cp < 0x80 ? (uint32_t)(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp)
                                       : (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp))) {
            tt_buf_free(&b);
            return -1;
        }
        i += k;
    }
    return buf_to_str(c, &b, out);
}

/* Attribute spec of map/selectattr/sort/...: "a.b.0" -> parts */
typedef struct {
    size_t n;
    tv part[16];
    tv dflt;
    int have_dflt;
    int lower; /* ignore_case postprocess */
} getter;

static int getter_make(tt_ctx *c, uint32_t pos, tv attr, getter *g) {
    memset(g, 0, sizeof *g);
    if (attr.type == TV_NONE || attr.type == TV_UNDEF) return 0;
    if (attr.type != TV_STR) {
        g->part[0] = attr;
        g->n = 1;
        return 0;
    }
    const char *s = attr.s->s;
    size_t len = attr.s->len, a = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.') continue;
        if (g->n == 16) return tt_fail_at(c->t, pos, "attribute path too long");
        int digits = i > a;
        for (size_t j = a; j < i; j++)
            if (s[j] < '0' || s[j] > '9') digits = 0;
        if (digits && i - a < 18) g->part[g->n++] = tv_int(strtoll(s + a, NULL, 10));
        else if (tv_str_make(c->a, s + a, i - a, &g->part[g->n++])) return -1;
        a = i + 1;
    }
    return 0;
}

static int getter_get(tt_ctx *c, uint32_t pos, const getter *g, tv item, tv *out) {
    for (size_t i = 0; i < g->n; i++)
        if (tt_getitem(c, pos, item, g->part[i], &item)) return -1;
    if (g->have_dflt && item.type == TV_UNDEF) item = g->dflt;
    if (g->lower && item.type == TV_STR) return str_lower(c, item, out);
    *out = item;
    return 0;
}

/* Stable merge sort of values by keys (Python's sorted, reverse kept stable). */
typedef struct {
    tv key, val;
} kv;

static int kv_less(tt_ctx *c, uint32_t pos, const kv *x, const kv *y, int reverse, int *r) {
    int k;
    if (tv_cmp(c, pos, reverse ? y->key : x->key, reverse ? x->key : y->key, &k)) return -1;
    *r = k < 0;
    return 0;
}

static int merge_sort(tt_ctx *c, uint32_t pos, kv *v, kv *tmp, size_t n, int reverse) {
    if (n < 2) return 0;
    size_t h = n / 2;
    if (merge_sort(c, pos, v, tmp, h, reverse) || merge_sort(c, pos, v + h, tmp, n - h, reverse)) return -1;
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int less;
        if (kv_less(c, pos, &v[j], &v[i], reverse, &less)) return -1;
        tmp[k++] = less ? v[j++] : v[i++];
    }
    while (i < h) tmp[k++] = v[i++];
    while (j < n) tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
    return 0;
}

static int sort_kv(tt_ctx *c, uint32_t pos, kv *v, size_t n, int reverse) {
    kv *tmp = tt_alloc(c->a, (n ? n : 1) * sizeof *tmp);
    if (!tmp) return -1;
    return merge_sort(c, pos, v, tmp, n, reverse);
}

/* markupsafe's escape (|e) and forceescape */
static int html_escape(tt_ctx *c, tv v, int force, tv *out) {
    tv_str *s;
    if (tv_to_str(c, v, &s)) return -1;
    if (force && s->markup && !(s = tt_str_new(c->a, s->s, s->len))) return -1;
    if (!(s = tt_escape(c->a, s))) return -1;
    out->type = TV_STR;
    out->s = s;
    return 0;
}

/* str.splitlines() boundaries: returns the length of the line break at i, or 0 */
static size_t line_break_at(const char *s, size_t n, size_t i) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '\r') return (i + 1 < n && s[i + 1] == '\n') ? 2 : 1;
    if (ch == '\n' || ch == 0x0B || ch == 0x0C || ch == 0x1C || ch == 0x1D || ch == 0x1E) return 1;
    if (ch >= 0x80) {
        size_t k;
        uint32_t cp = tt_utf8_next(s + i, n - i, &k);
        if (cp == 0x85 || cp == 0x2028 || cp == 0x2029) return k;
    }
    return 0;
}

/* ---------------------------------------------------------------- filters */

static int f_indent(tt_ctx *c, uint32_t pos, tv in, tt_args *a, tv *out) {
    tv arg[3] = {tv_int(4), tv_bool(0), tv_bool(0)};
    BIND("indent", 0, "width", "first", "blank");
    if (in.type != TV_STR) return tt_fail_at(c->t, pos, "indent: expected a string, got '%s'", tv_type_name(in));
    tv_str *unit = NULL;
    tt_buf ind = {0};
    if (arg[0].type == TV_STR) unit = arg[0].s;
    else {
        int64_t w;
        if (want_int(c, pos, arg[0], "indent width", &w)) return -1;
        for (int64_t i = 0; i < w; i++)
            if (tt_buf_putc(&ind, ' ')) return -1;
    }
    const char *is = unit ? unit->s : (ind.p ? ind.p : "");
    size_t il = unit ? unit->len : ind.n;
    /* the lines of s + "\n": s cut at every line break, the last piece
     * kept even when empty */
    const char *s = in.s->s;
    size_t n = in.s->len, i = 0;
    tt_buf b = {0};
    int rc = 0, first_line = 1, blank = tv_truth(arg[2]);
    for (;;) {
        size_t e = i, brk = 0;
        while (e < n && !(brk = line_break_at(s, n, e))) e++;
        if (!first_line) {
            rc = tt_buf_putc(&b, '\n');
            if (!rc && (blank || e > i)) rc = tt_buf_put(&b, is, il);
        }
        if (!rc) rc = tt_buf_put(&b, s + i, e - i);
        first_line = 0;
        if (rc || e >= n) break;
        i = e + brk;
    }
    tt_buf res = {0};
    if (!rc && tv_truth(arg[1])) rc = tt_buf_put(&res, is, il);
    if (!rc) rc = tt_buf_put(&res, b.p ? b.p : "", b.n);
    tt_buf_free(&b);
    tt_buf_free(&ind);
    if (rc) {
        tt_buf_free(&res);
        return -1;
    }
    return buf_to_str(c, &res, out);
}

static int f_join(tt_ctx *c, uint32_t pos, tv in, tt_args *a, tv *out) {
    tv arg[2] = {tv_none(), tv_none()};
    BIND("join", 0, "d", "attribute");
    tv_str *sep;
    if (!given_[0]) {
        if (tv_str_make(c->a, "", 0, &arg[0])) return -1;
    }
    if (tv_to_str(c, arg[0], &sep)) return -1;
    tv_list *l;
    if (tv_iterate(c, pos, in, &l)) return -1;
    getter g;
    if (getter_make(c, pos, arg[1], &g)) return -1;
    tt_buf b = {0};
    for (size_t i = 0; i < l->n; i++) {
        tv x = l->v[i];
        if (g.n && getter_get(c, pos, &g, x, &x)) goto fail;
        if ((i && tt_buf_put(&b, sep->s, sep->len)) || tv_str_append(&b, x)) goto fail;
    }
    return buf_to_str(c, &b, out);
fail:
    tt_buf_free(&b);
    return -1;
}

/* select / reject / selectattr / rejectattr */
static int f_select(tt_ctx *c, uint32_t pos, tv in, tt_args *a, int attr, int reject, tv_list *res) {
    size_t off = 0;
    getter g;
    memset(&g, 0, sizeof g);
    if (attr) {
        if (a->n < 1) return tt_fail_at(c->t, pos, "missing parameter for attribute name");
        if (getter_make(c, pos, a->v[0], &g)) return -1;
        off = 1;
    }
    int test = 0;
    tt_args targs = {0};
    if (a->n > off) {
        tv_str *name;
        if (want_str(c, pos, a->v[off], "test name", &name)) return -1;
        test = tt_test_id(name->s);
        if (test < 0) return tt_fail_at(c->t, pos, "no test named '%s'", name->s);
        targs.n = a->n - off - 1;
        targs.v = a->v + off + 1;
        targs.nkw = a->nkw;
        targs.kwn = a->kwn;
        targs.kwv = a->kwv;
    }
    tv_list *l;
    if (tv_iterate(c, pos, in, &l)) return -1;
    for (size_t i = 0; i < l->n; i++) {
        tv x = l->v[i];
        if (attr && getter_get(c, pos, &g, x, &x)) return -1;
        int ok;
        if (test) {
            if (tt_call_test(c, pos, test, x, &targs, &ok)) return -1;
        } else
            ok = tv_truth(x);
        if (ok != reject && tt_list_push(c->a, res, l->v[i])) return -1;
    }
    return 0;
}

static int f_map(tt_ctx *c, uint32_t pos, tv in, tt_args *a, tv_list *res) {
    getter g;
    int fid = 0;
    tt_args fargs = {0};
    memset(&g, 0, sizeof g);
    if (a->n == 0 && a->nkw > 0) {
        tv arg[2] = {tv_none(), tv_none()};
        BIND("map", 1, "attribute", "default");
        if (getter_make(c, pos, arg[0], &g)) return -1;
        if (given_[1] && arg[1].type != TV_NONE) {
            g.dflt = arg[1];
            g.have_dflt = 1;
        }
    } else {
        if (a->n == 0) return tt_fail_at(c->t, pos, "map requires a filter argument");
        tv_str *name;
        if (want_str(c, pos, a->v[0], "filter name", &name)) return -1;
        fid = tt_filter_id(name->s);
        if (fid < 0) return tt_fail_at(c->t, pos, "no filter named '%s'", name->s);
        fargs.n = a->n - 1;
        fargs.v = a->v + 1;
        fargs.nkw = a->nkw;
        fargs.kwn = a->kwn;
        fargs.kwv = a->kwv;
    }
    tv_list *l;
    if (tv_iterate(c, pos, in, &l)) return -1;
    for (size_t i = 0; i < l->n; i++) {
        tv x;
        if (fid ? tt_call_filter(c, pos, fid, l->v[i], &fargs, &x) : getter_get(c, pos, &g, l->v[i], &x)) return -1;
        if (tt_list_push(c->a, res, x)) return -1;
    }
    return 0;
}

static int f_sort(tt_ctx *c, uint32_t pos, tv in, tt_args *a, tv *out) {
    tv arg[3] = {tv_bool(0), tv_bool(0), tv_none()};
    BIND("sort", 0, "reverse", "case_sensitive", "attribute");
    tv_list *l;
    if (tv_iterate(c, pos, in, &l)) return -1;
    /* make_multi_attrgetter: keys are lists, one value per comma-separated
     * attribute (so equal keys never reach '<') */
    getter gs[8];
    size_t ng = 0;
    if (arg[2].type == TV_STR) {
        const char *s = arg[2].s->s;
        size_t len = arg[2].s->len, st = 0;
        for (size_t i = 0; i <= len; i++) {
            if (i < len && s[i] != ',') continue;
            if (ng == 8) return tt_fail_at(c->t, pos, "sort: too many attributes");
            tv part;
            if (tv_str_make(c->a, s + st, i - st, &part) || getter_make(c, pos, part, &gs[ng])) return -1;
            gs[ng].lower = !tv_truth(arg[1]);
            ng++;
            st = i + 1;
        }
    } else {
        if (getter_make(c, pos, arg[2], &gs[0])) return -1;
        gs[0].lower = !tv_truth(arg[1]);
        ng = 1;
    }
    kv *v = tt_alloc(c->a, (l->n ? l->n : 1) * sizeof *v);
    if (!v) return -1;
    for (size_t i = 0; i < l->n; i++) {
        v[i].val = l->v[i];
        tv_list *k = tt_list_new(c->a, ng);
        if (!k) return -1;
        for (size_t j = 0; j < ng; j++)
            if (getter_get(c, pos, &gs[j], l->v[i], &k->v[k->n++])) return -1;
        v[i].key.type = TV_LIST;
        v[i].key.l = k;
    }
    if (sort_kv(c, pos, v, l->n, tv_truth(arg[0]))) return -1;
    tv_list *res = tt_list_new(c->a, l->n);
    if (!res) return -1;
    for (size_t i = 0; i < l->n; i++) res->v[res->n++] = v[i].val;
    out->type = TV_LIST;
    out->l = res;
    return 0;
}

static int f_dictsort(tt_ctx *c, uint32_t pos, tv in, tt_args *a, tv *out) {
    tv arg[3] = {tv_bool(0), tv_none(), tv_bool(0)};
    BIND("dictsort", 0, "case_sensitive", "by", "reverse");
    int by = 0;
    if (given_[1]) {
        if (arg[1].type == TV_STR && !strcmp(arg[1].s->s, "value")) by = 1;
        else if (!(arg[1].type == TV_STR && !strcmp(arg[1].s->s, "key")))
            return tt_fail_at(c->t, pos, "You can only sort by either \"key\" or \"value\"");
    }
    if (in.type != TV_DICT) return tt_fail_at(c->t, pos, "dictsort: expected a mapping, got '%s'", tv_type_name(in));
    size_t n = in.d->n;
    kv *v = tt_alloc(c->a, (n ? n : 1) * sizeof *v);
    if (!v) return -1;
    for (size_t i = 0; i < n; i++) {
        tv_list *pair = tt_list_new(c->a, 2);
        if (!pair) return -1;
        pair->v[0] = in.d->k[i];
        pair->v[1] = in.d->v[i];
        pair->n = 2;
        v[i].val.type = TV_TUPLE;
        v[i].val.l = pair;
        v[i].key = by ? in.d->v[i] : in.d->k[i];
        if (!tv_truth(arg[0]) && v[i].key.type == TV_STR && str_lower(c, v[i].key, &v[i].key)) return -1;
    }
    if (sort_kv(c, pos, v, n, tv_truth(arg[2]))) return -1;
    tv_list *res = tt_list_new(c->a, n);
    if (!res) return -1;
    for (size_t i = 0; i < n; i++) res->v[res->n++] = v[i].val;
    out->type = TV_LIST;
    out->l = res;
    return 0;
}

static int f_minmax(tt_ctx *c, uint32_t pos, tv in, tt_args *a, int max, tv *out) {
    tv arg[2] = {tv_bool(0), tv_none()};
    BIND(max ? "max" : "min", 0, "case_sensitive", "attribute");
    tv_list *l;
    if (tv_iterate(c, pos, in, &l)) return -1;
    if (l->n == 0) {
        *out = tv_undef_hint(c, "No aggregated item, sequence was empty.");
        return 0;
    }
    getter g;
    if (getter_make(c, pos, arg[1], &g)) return -1;
    g.lower = !tv_truth(arg[0]);
    tv best = l->v[0], bk;
    if (getter_get(c, pos, &g, best, &bk)) return -1;
    for (size_t i = 1; i < l->n; i++) {
        tv k;
        int r;
        if (getter_get(c, pos, &g, l->v[i], &k) || tv_cmp(c, pos, k, bk, &r)) return -1;
        if (max ? r > 0 : r < 0) {
            best = l->v[i];
            bk = k;
        }
    }
    *out = best;
    return 0;
}

static int f_unique(tt_ctx *c, uint32_t pos, tv in, tt_args *a, tv_list *res) {
    tv arg[2] = {tv_bool(0), tv_none()};
    BIND("unique", 0, "case_sensitive", "attribute");
    tv_list *l, *seen = tt_list_new(c->a, 0);
    if (!seen || tv_iterate(c, pos, in, &l)) return -1;
    getter g;
    if (getter_make(c, pos, arg[1], &g)) return -1;
    g.lower = !tv_truth(arg[0]);
    for (size_t i = 0; i < l->n; i++) {
        tv k;
        if (getter_get(c, pos, &g, l->v[i], &k)) return -1;
        if (k.type == TV_LIST || k.type == TV_DICT) return tt_fail_at(c->t, pos, "unhashable type: '%s'", tv_type_name(k));
        int dup = 0;
        for (size_t j = 0; j < seen->n && !dup; j++) dup = tv_eq(seen->v[j], k);
        if (!dup && (tt_list_push(c->a, seen, k) || tt_list_push(c->a, res, l->v[i]))) return -1;
    }
    return 0;
}

/* Python's int(str, base) */
static int parse_py_int(const char *s, size_t n, int base, int64_t *out) {
    size_t i = 0, e = n;
    while (i < e && tt_py_isspace((unsigned char)s[i])) i++;
    while (e > i && tt_py_isspace((unsigned char)s[e - 1])) e--;
    int neg = 0;
    if (i < e && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i + 1 < e && s[i] == '0') {
        char k = (char)(s[i + 1] | 0x20);
        if ((k == 'x' && (base == 16 || base == 0)) || (k == 'o' && (base == 8 || base == 0)) ||
            (k == 'b' && (base == 2 || base == 0))) {
            base = k == 'x' ? 16 : k == 'o' ? 8 : 2;
            i += 2;
            if (i < e && s[i] == '_') i++;
        }
    }
    if (base == 0) base = 10;
    if (i >= e) return -1;
    uint64_t v = 0;
    int prev_us = 1;
    for (; i < e; i++) {
        if (s[i] == '_') {
            if (prev_us) return -1;
            prev_us = 1;
            continue;
        }
        int d;
        char ch = s[i];
        if (ch >= '0' && ch <= '9') d = ch - '0';
        else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') d = (ch | 0x20) - 'a' + 10;
        else return -1;
        if (d >= base) return -1;
        if (v > ((uint64_t)INT64_MAX + 1 - (uint64_t)d) / (uint64_t)base) return -2;
        v = v * (uint64_t)base + (uint64_t)d;
        prev_us = 0;
    }
    if (prev_us) return -1;
    if (!neg && v > (uint64_t)INT64_MAX) return -2;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* Python's float(str) */
static int parse_py_float(const char *s, size_t n, double *out) {
    size_t i = 0, e = n;
    while (i < e && tt_py_isspace((unsigned char)s[i])) i++;
    while (e > i && tt_py_isspace((unsigned char)s[e - 1])) e--;
    if (i >= e || e - i > 200) return -1;
    char tmp[256];
    size_t m = 0;
    for (size_t j = i; j < e; j++) {
        if (s[j] == '_') {
            if (j == i || j + 1 >= e || !(s[j - 1] >= '0' && s[j - 1] <= '9') || !(s[j + 1] >= '0' && s[j + 1] <= '9'))
                return -1;
            continue;
        }
        if (s[j] == 'x' || s[j] == 'X' || s[j] == 'p' || s[j] == 'P') return -1; /* no hex floats */
        tmp[m++] = s[j];
    }
    tmp[m] = 0;
    char *end;
    *out = strtod(tmp, &end);
    return *end == 0 && end != tmp ? 0 : -1;
}

static int f_int(tt_ctx *c, uint32_t pos, tv in, tt_args *a, tv *out) {
    tv arg[2] = {tv_int(0), tv_int(10)};
    BIND("int", 0, "default", "base");
    if (in.type == TV_UNDEF) return tv_undef_fail(c, pos, in);
    int64_t base;
    if (want_int(c, pos, arg[1], "int base", &base)) return -1;
    if (in.type == TV_INT || in.type == TV_BOOL) {
        *out = tv_int(ival(in));
        return 0;
    }
    double f;
    if (in.type == TV_FLOAT) f = in.f;
    else if (in.type == TV_STR) {
        int64_t v;
        int r = parse_py_int(in.s->s, in.s->len, (int)base, &v);
        if (r == 0) {
            *out = tv_int(v);
            return 0;
        }
        if (r == -2) return tt_fail_at(c->t, pos, "int: value too large (tune keeps integers in 64 bits)");
        if (parse_py_float(in.s->s, in.s->len, &f)) {
            *out = arg[0];
            return 0;
        }
    } else {
        *out = arg[0];
        return 0;
    }
    if (isnan(f)) {
        *out = arg[0];
        return 0;
    }
    if (isinf(f)) return tt_fail_at(c->t, pos, "cannot convert float infinity to integer");
    if (f >= 9223372036854775808.0 || f < -9223372036854775808.0)
        return tt_fail_at(c->t, pos, "int: value too large (tune keeps integers in 64 bits)");
    *out = tv_int((int64_t)f);
    return 0;
}

static int f_float(tt_ctx *c, uint32_t pos, tv in, tt_args *a, tv *out) {
    tv arg[1] = {tv_float(0.0)};
    BIND("float", 0, "default");
    if (in.type == TV_UNDEF) return tv_undef_fail(c, pos, in);
    double f;
    if (in.type == TV_FLOAT) *out = in;
    else if (in.type == TV_INT || in.type == TV_BOOL) *out = tv_float((double)ival(in));
    else if (in.type == TV_STR && !parse_py_float(in.s->s, in.s->len, &f)) *out = tv_float(f);
    else *out = arg[0];
    return 0;
}

static int f_tojson(tt_ctx *c, uint32_t pos, tv in, tt_args *a, tv *out) {
    tv arg[4] = {tv_bool(0), tv_none(), tv_none(), tv_bool(0)};
    BIND("tojson", 0, "ensure_ascii", "indent", "separators", "sort_keys");
    tt_json_opts o = {0};
    o.ensure_ascii = tv_truth(arg[0]);
    o.sort_keys = tv_truth(arg[3]);
    tt_buf ind = {0};
    if (arg[1].type == TV_STR) {
        o.have_indent = 1;
        o.indent = arg[1].s->s;
        o.indent_len = arg[1].s->len;
    } else if (arg[1].type != TV_NONE) {
        int64_t w;
        if (want_int(c, pos, arg[1], "tojson indent", &w)) return -1;
        for (int64_t i = 0; i < w; i++)
            if (tt_buf_putc(&ind, ' ')) return -1;
        o.have_indent = 1;
        o.indent = ind.p ? ind.p : "";
        o.indent_len = ind.n;
    }
    o.item_sep = o.have_indent ? "," : ", ";
    o.key_sep = ": ";
    if (arg[2].type != TV_NONE) {
        tv_list *l;
        if (tv_iterate(c, pos, arg[2], &l)) goto fail;
        if (l->n != 2 || l->v[0].type != TV_STR || l->v[1].type != TV_STR) {
            tt_fail_at(c->t, pos, "tojson separators: expected two strings");
            goto fail;
        }
        o.item_sep = l->v[0].s->s;
        o.key_sep = l->v[1].s->s;
    }
    tt_buf b = {0};
    if (tt_json_dump(c, pos, in, &o, &b)) {
        tt_buf_free(&b);
        goto fail;
    }
    tt_buf_free(&ind);
    return buf_to_str(c, &b, out);
fail:
    tt_buf_free(&ind);
    return -1;
}

static int f_replace(tt_ctx *c, uint32_t pos, tv in, tt_args *a, tv *out) {
    tv arg[3] = {tv_none(), tv_none(), tv_none()};
    BIND("replace", 2, "old", "new", "count");
    tv_str *s, *old, *nw;
    if (tv_to_str(c, in, &s) || tv_to_str(c, arg[0], &old) || tv_to_str(c, arg[1], &nw)) return -1;
    /* do_replace works on str(s): a Markup comes out plain */
    if (s->markup && !(s = tt_str_new(c->a, s->s, s->len))) return -1;
    tt_args m = {0};
    tv mv[3];
    mv[0].type = TV_STR;
    mv[0].s = old;
    mv[1].type = TV_STR;
    mv[1].s = nw;
    mv[2] = arg[2].type == TV_NONE ? tv_int(-1) : arg[2];
    m.n = 3;
    m.v = mv;
    tv self = {.type = TV_STR};
    self.s = s;
    tv meth;
    int r = tt_method_lookup(c, self, "replace", &meth);
    if (r <= 0) return -1;
    return tt_method_call(c, pos, meth.fn, &m, out);
}

/* a string method applied to soft_str(value) */
static int via_method(tt_ctx *c, uint32_t pos, tv in, const char *name, tt_args *a, tv *out) {
    tv_str *s;
    if (tv_to_str(c, in, &s)) return -1;
    tv self = {.type = TV_STR}, meth;
    self.s = s;
    int r = tt_method_lookup(c, self, name, &meth);
    if (r <= 0) return r < 0 ? -1 : tt_fail_at(c->t, pos, "internal error: no str.%s", name);
    return tt_method_call(c, pos, meth.fn, a, out);
}

static int f_title(tt_ctx *c, uint32_t pos, tv in, tv *out) {
    /* "".join(w[0].upper() + w[1:].lower() for w in re.split(r"([-\s({\[<]+)", s) if w) */
    tv_str *s;
    if (tv_to_str(c, in, &s)) return -1;
    tt_buf b = {0};
    size_t i = 0;
    int at_start = 1;
    while (i < s->len) {
        size_t k;
        uint32_t cp = tt_utf8_next(s->s + i, s->len - i, &k);
        int sep = cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || tt_py_isspace(cp);
        int rc;
        if (sep) {
            rc = tt_buf_put_cp(&b, cp);
            at_start = 1;
        } else if (at_start) {
            rc = tt_put_upper(&b, cp);
            at_start = 0;
        } else
            rc = tt_buf_put_cp(&b, (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp));
        if (rc) {
            tt_buf_free(&b);
            return -1;
        }
        i += k;
    }
    return buf_to_str(c, &b, out);
}

static int f_truncate(tt_ctx *c, uint32_t pos, tv in, tt_args *a, tv *out) {
    tv arg[4] = {tv_int(255), tv_bool(0), tv_none(), tv_int(5)};
    BIND("truncate", 0, "length", "killwords", "end", "leeway");
    tv_str *s, *end;
    if (!given_[2] && tv_str_make(c->a, "...", 3, &arg[2])) return -1;
    if (want_str(c, pos, arg[2], "truncate end", &end)) return -1;
    int64_t length, leeway;
    if (want_int(c, pos, arg[0], "truncate length", &length) || want_int(c, pos, arg[3], "truncate leeway", &leeway))
        return -1;
    if (length < (int64_t)end->ncp) return tt_fail_at(c->t, pos, "expected length >= %zu, got %" PRId64, end->ncp, length);
    if (leeway < 0) return tt_fail_at(c->t, pos, "expected leeway >= 0, got %" PRId64, leeway);
    if (in.type != TV_STR) {
        /* anything with a len() passes when short enough */
        int64_t n;
        if (tv_len(c, pos, in, &n)) return -1;
        if (n <= length + leeway) {
            *out = in;
            return 0;
        }
        return tt_fail_at(c->t, pos, "truncate: expected a string, got '%s'", tv_type_name(in));
    }
    s = in.s;
    if ((int64_t)s->ncp <= length + leeway) {
        out->type = TV_STR;
        out->s = s;
        return 0;
    }
    size_t cut = tt_utf8_offset(s, (size_t)(length - (int64_t)end->ncp));
    size_t keep = cut;
    if (!tv_truth(arg[1])) {
        for (size_t j = cut; j > 0; j--)
            if (s->s[j - 1] == ' ') {
                keep = j - 1;
                break;
            }
    }
    tt_buf b = {0};
    if (tt_buf_put(&b, s->s, keep) || tt_buf_put(&b, end->s, end->len)) {
        tt_buf_free(&b);
        return -1;
    }
    return buf_to_str(c, &b, out);
}

static int f_round(tt_ctx *c, uint32_t pos, tv in, tt_args *a, tv *out) {
    tv arg[2] = {tv_int(0), tv_none()};
    BIND("round", 0, "precision", "method");
    int64_t prec;
    if (want_int(c, pos, arg[0], "round precision", &prec)) return -1;
    const char *method = "common";
    if (given_[1]) {
        if (arg[1].type != TV_STR || (strcmp(arg[1].s->s, "common") && strcmp(arg[1].s->s, "ceil") &&
                                      strcmp(arg[1].s->s, "floor")))
            return tt_fail_at(c->t, pos, "method must be common, ceil or floor");
        method = arg[1].s->s;
    }
    if (in.type != TV_INT && in.type != TV_BOOL && in.type != TV_FLOAT)
        return tt_fail_at(c->t, pos, "round: expected a number, got '%s'", tv_type_name(in));
    if (!strcmp(method, "common")) {
        if (in.type != TV_FLOAT) {
            *out = tv_int(ival(in)); /* round(int, n >= 0) is the int */
            return 0;
        }
        if (!isfinite(in.f) || prec > 300) {
            *out = in;
            return 0;
        }
        if (prec >= 0) {
            char tmp[400];
            snprintf(tmp, sizeof tmp, "%.*f", (int)prec, in.f);
            *out = tv_float(strtod(tmp, NULL));
        } else {
            double p = pow(10.0, (double)-prec);
            *out = tv_float(nearbyint(in.f / p) * p);
        }
        return 0;
    }
    double p = pow(10.0, (double)prec), x = in.type == TV_FLOAT ? in.f : (double)ival(in);
    *out = tv_float((method[0] == 'c' ? ceil(x * p) : floor(x * p)) / p);
    return 0;
}

static int f_reverse(tt_ctx *c, uint32_t pos, tv in, tv *out) {
    if (in.type == TV_STR) {
        return tt_slice(c, pos, in, tv_none(), tv_none(), tv_int(-1), out);
    }
    tv_list *l;
    if (tv_iterate(c, pos, in, &l)) return -1;
    tv_list *r = tt_list_new(c->a, l->n);
    if (!r) return -1;
    for (size_t i = l->n; i-- > 0;) r->v[r->n++] = l->v[i];
    if (in.type == TV_ITER && (in.it->kind == TI_GENERATOR || in.it->kind == TI_REVERSED)) {
        out->type = TV_LIST; /* list(value); rv.reverse() */
        out->l = r;
        return 0;
    }
    if (make_gen(c, r, NULL, TI_REVERSED, out)) return -1;
    out->it->gen_name = in.type == TV_LIST ? "list_reverseiterator" : in.type == TV_DICT ? "dict_reversekeyiterator"
                        : (in.type == TV_ITER && in.it->kind == TI_RANGE) ? "range_iterator" : "reversed";
    return 0;
}

static int f_first_last(tt_ctx *c, uint32_t pos, tv in, int last, tv *out) {
    if (!last && in.type == TV_ITER && (in.it->kind == TI_GENERATOR || in.it->kind == TI_REVERSED)) {
        if (in.it->pos < in.it->items->n) *out = in.it->items->v[in.it->pos++];
        else if (in.it->error) return tn_fail("%s", in.it->error);
        else *out = tv_undef_hint(c, "No first item, sequence was empty.");
        return 0;
    }
    if (last && in.type == TV_ITER && (in.it->kind == TI_GENERATOR || in.it->kind == TI_REVERSED))
        return tt_fail_at(c->t, pos, "'%s' object is not reversible", tv_type_name(in));
    if (last && in.type == TV_NS) return tt_fail_at(c->t, pos, "'Namespace' object is not reversible");
    tv_list *l;
    if (tv_iterate(c, pos, in, &l)) return -1;
    if (l->n == 0) *out = tv_undef_hint(c, last ? "No last item, sequence was empty." : "No first item, sequence was empty.");
    else *out = l->v[last ? l->n - 1 : 0];
    return 0;
}

static int f_sum(tt_ctx *c, uint32_t pos, tv in, tt_args *a, tv *out) {
    tv arg[2] = {tv_none(), tv_int(0)};
    BIND("sum", 0, "attribute", "start");
    tv_list *l;
    if (tv_iterate(c, pos, in, &l)) return -1;
    getter g;
    if (getter_make(c, pos, arg[0], &g)) return -1;
    tv acc = arg[1];
    for (size_t i = 0; i < l->n; i++) {
        tv x;
        if (getter_get(c, pos, &g, l->v[i], &x) || tt_binop(c, pos, TK_ADD, acc, x, &acc)) return -1;
    }
    *out = acc;
    return 0;
}

static int f_batch(tt_ctx *c, uint32_t pos, tv in, tt_args *a, tv_list *res) {
    tv arg[2] = {tv_none(), tv_none()};
    BIND("batch", 1, "linecount", "fill_with");
    int64_t n;
    if (want_int(c, pos, arg[0], "batch linecount", &n)) return -1;
    if (n <= 0) return tt_fail_at(c->t, pos, "batch: linecount must be positive");
    tv_list *l, *cur = NULL;
    if (tv_iterate(c, pos, in, &l)) return -1;
    for (size_t i = 0; i < l->n; i++) {
        if (!cur && !(cur = tt_list_new(c->a, (size_t)n))) return -1;
        cur->v[cur->n++] = l->v[i];
        if ((int64_t)cur->n == n) {
            tv x = {.type = TV_LIST};
            x.l = cur;
            if (tt_list_push(c->a, res, x)) return -1;
            cur = NULL;
        }
    }
    if (cur) {
        if (given_[1] && arg[1].type != TV_NONE)
            while ((int64_t)cur->n < n) cur->v[cur->n++] = arg[1];
        tv x = {.type = TV_LIST};
        x.l = cur;
        if (tt_list_push(c->a, res, x)) return -1;
    }
    return 0;
}

static int f_items(tt_ctx *c, uint32_t pos, tv in, tv_list *res) {
    if (in.type == TV_UNDEF) return 0;
    if (in.type != TV_DICT) return tt_fail_at(c->t, pos, "Can only get item pairs from a mapping.");
    for (size_t i = 0; i < in.d->n; i++) {
        tv_list *p = tt_list_new(c->a, 2);
        if (!p) return -1;
        p->v[0] = in.d->k[i];
        p->v[1] = in.d->v[i];
        p->n = 2;
        tv t = {.type = TV_TUPLE};
        t.l = p;
        if (tt_list_push(c->a, res, t)) return -1;
    }
    return 0;
}

/* jinja2 writes select, map, unique, batch and items as generators: nothing
 * runs until the result is iterated, and an error surfaces only when the
 * items are consumed up to it (a never-consumed generator never fails; a
 * falsy input to select/map yields nothing at all). Here the items are
 * computed at once and an error is kept in the generator for that moment. */
static int generator_filter(tt_ctx *c, uint32_t pos, int id, tv in, tt_args *a, tv *out) {
    tv_list *res = tt_list_new(c->a, 0);
    if (!res) return -1;
    int rc = 0;
    const char *name = "select_or_reject";
    switch (id) {
    case F_MAP: name = "sync_do_map"; rc = tv_truth(in) ? f_map(c, pos, in, a, res) : 0; break;
    case F_SELECT: rc = tv_truth(in) ? f_select(c, pos, in, a, 0, 0, res) : 0; break;
    case F_REJECT: rc = tv_truth(in) ? f_select(c, pos, in, a, 0, 1, res) : 0; break;
    case F_SELECTATTR: rc = tv_truth(in) ? f_select(c, pos, in, a, 1, 0, res) : 0; break;
    case F_REJECTATTR: rc = tv_truth(in) ? f_select(c, pos, in, a, 1, 1, res) : 0; break;
    case F_UNIQUE: name = "sync_do_unique"; rc = f_unique(c, pos, in, a, res); break;
    case F_BATCH: name = "do_batch"; rc = f_batch(c, pos, in, a, res); break;
    default: name = "do_items"; rc = f_items(c, pos, in, res); break;
    }
    if (make_gen(c, res, name, TI_GENERATOR, out)) return -1;
    if (rc) {
        const char *m = tn_error();
        size_t n = strlen(m);
        char *copy = tt_alloc(c->a, n + 1);
        if (!copy) return -1;
        memcpy(copy, m, n + 1);
        out->it->error = copy;
    }
    return 0;
}

static int f_wordcount(tt_ctx *c, tv in, tv *out) {
    tv_str *s;
    if (tv_to_str(c, in, &s)) return -1;
    int64_t n = 0;
    int inword = 0;
    size_t i = 0;
    while (i < s->len) {
        size_t k;
        uint32_t cp = tt_utf8_next(s->s + i, s->len - i, &k);
        int w = cp == '_' || (cp < 0x80 ? ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') || (cp >= '0' && cp <= '9')
                                         : utf8proc_category((utf8proc_int32_t)cp) <= UTF8PROC_CATEGORY_NO);
        if (w && !inword) n++;
        inword = w;
        i += k;
    }
    *out = tv_int(n);
    return 0;
}

int tt_call_filter(tt_ctx *c, uint32_t pos, int id, tv in, tt_args *a, tv *out) {
    tt_args none = {0};
    switch (id) {
    case F_LENGTH: {
        int64_t n;
        if (a->n || a->nkw) return tt_fail_at(c->t, pos, "length() takes no arguments");
        if (tv_len(c, pos, in, &n)) return -1;
        *out = tv_int(n);
        return 0;
    }
    case F_DEFAULT: {
        tv arg[2] = {tv_none(), tv_bool(0)};
        BIND("default", 0, "default_value", "boolean");
        if (!given_[0] && tv_str_make(c->a, "", 0, &arg[0])) return -1;
        *out = (in.type == TV_UNDEF || (tv_truth(arg[1]) && !tv_truth(in))) ? arg[0] : in;
        return 0;
    }
    case F_TRIM: {
        tv arg[1] = {tv_none()};
        BIND("trim", 0, "chars");
        tt_args m = {.n = 1, .v = arg};
        return via_method(c, pos, in, "strip", &m, out);
    }
    case F_UPPER: return via_method(c, pos, in, "upper", &none, out);
    case F_LOWER: return via_method(c, pos, in, "lower", &none, out);
    case F_CAPITALIZE: return via_method(c, pos, in, "capitalize", &none, out);
    case F_TITLE: return f_title(c, pos, in, out);
    case F_CENTER: {
        tv arg[1] = {tv_int(80)};
        BIND("center", 0, "width");
        tt_args m = {.n = 1, .v = arg};
        return via_method(c, pos, in, "center", &m, out);
    }
    case F_STRING:
    case F_SAFE: {
        tv_str *s;
        if (tv_to_str(c, in, &s)) return -1;
        if (id == F_SAFE && !(s = tt_markup(c->a, s))) return -1;
        out->type = TV_STR;
        out->s = s;
        return 0;
    }
    case F_ESCAPE:
    case F_FORCEESCAPE: return html_escape(c, in, id == F_FORCEESCAPE, out);
    case F_JOIN: return f_join(c, pos, in, a, out);
    case F_FIRST: return f_first_last(c, pos, in, 0, out);
    case F_LAST: return f_first_last(c, pos, in, 1, out);
    case F_LIST: {
        tv_list *l;
        if (tv_iterate(c, pos, in, &l)) return -1;
        tv_list *copy = tt_list_new(c->a, l->n);
        if (!copy) return -1;
        if (l->n) memcpy(copy->v, l->v, l->n * sizeof(tv));
        copy->n = l->n;
        out->type = TV_LIST;
        out->l = copy;
        return 0;
    }
    case F_MAP:
    case F_SELECT:
    case F_REJECT:
    case F_SELECTATTR:
    case F_REJECTATTR:
    case F_UNIQUE:
    case F_BATCH:
    case F_ITEMS: return generator_filter(c, pos, id, in, a, out);
    case F_INT: return f_int(c, pos, in, a, out);
    case F_FLOAT: return f_float(c, pos, in, a, out);
    case F_TOJSON: return f_tojson(c, pos, in, a, out);
    case F_REPLACE: return f_replace(c, pos, in, a, out);
    case F_DICTSORT: return f_dictsort(c, pos, in, a, out);
    case F_SORT: return f_sort(c, pos, in, a, out);
    case F_MIN: return f_minmax(c, pos, in, a, 0, out);
    case F_MAX: return f_minmax(c, pos, in, a, 1, out);
    case F_SUM: return f_sum(c, pos, in, a, out);
    case F_REVERSE: return f_reverse(c, pos, in, out);
    case F_INDENT: return f_indent(c, pos, in, a, out);
    case F_TRUNCATE: return f_truncate(c, pos, in, a, out);
    case F_ROUND: return f_round(c, pos, in, a, out);
    case F_WORDCOUNT: return f_wordcount(c, in, out);
    case F_ABS:
        if (in.type == TV_INT || in.type == TV_BOOL) {
            int64_t v = ival(in);
            if (v == INT64_MIN) return tt_fail_at(c->t, pos, "integer overflow");
            *out = tv_int(v < 0 ? -v : v);
        } else if (in.type == TV_FLOAT)
            *out = tv_float(fabs(in.f));
        else if (in.type == TV_UNDEF)
            return tv_undef_fail(c, pos, in);
        else
            return tt_fail_at(c->t, pos, "bad operand type for abs(): '%s'", tv_type_name(in));
        return 0;
    case F_ATTR: {
        tv arg[1] = {tv_none()};
        BIND("attr", 1, "name");
        /* Python's getattr only: no fallback to items */
        tv_str *name;
        if (tv_to_str(c, arg[0], &name)) return -1;
        if (in.type == TV_NS || in.type == TV_LOOP || in.type == TV_UNDEF) return tt_getattr(c, pos, in, name->s, out);
        int r = tt_method_lookup(c, in, name->s, out);
        if (r < 0) return -1;
        if (!r) *out = tv_undef_attr(c, "object", name->s);
        return 0;
    }
    case F_FORMAT: {
        tv_str *s;
        if (tv_to_str(c, in, &s)) return -1;
        if (a->n && a->nkw) return tt_fail_at(c->t, pos, "can't handle positional and keyword arguments at the same time");
        tv args;
        if (a->nkw) {
            tv_dict *d = tt_dict_new(c->a, a->nkw);
            if (!d) return -1;
            for (size_t i = 0; i < a->nkw; i++) {
                tv k;
                if (tv_str_make(c->a, a->kwn[i], strlen(a->kwn[i]), &k) || tt_dict_set(c->a, d, k, a->kwv[i])) return -1;
            }
            args.type = TV_DICT;
            args.d = d;
        } else {
            tv_list *l = tt_list_new(c->a, a->n);
            if (!l) return -1;
            for (size_t i = 0; i < a->n; i++) l->v[l->n++] = a->v[i];
            args.type = TV_TUPLE;
            args.l = l;
        }
        return tt_percent_format(c, pos, s, args, out);
    }
    default: return tt_fail_at(c->t, pos, "filter '%s' is not supported by tune", filter_name(id));
    }
}

/* ------------------------------------------------------------------ tests */

static int test_arg(tt_ctx *c, uint32_t pos, const char *name, tt_args *a, tv *arg) {
    const char *const pn[] = {"value"};
    int given;
    return tt_bind(c, pos, name, a, 1, pn, 1, arg, &given);
}

int tt_call_test(tt_ctx *c, uint32_t pos, int id, tv v, tt_args *a, int *out) {
    tv arg;
    int k;
    switch (id) {
    case T_DEFINED: *out = v.type != TV_UNDEF; return 0;
    case T_UNDEFINED: *out = v.type == TV_UNDEF; return 0;
    case T_NONE: *out = v.type == TV_NONE; return 0;
    case T_BOOLEAN: *out = v.type == TV_BOOL; return 0;
    case T_FALSE: *out = v.type == TV_BOOL && !v.b; return 0;
    case T_TRUE: *out = v.type == TV_BOOL && v.b; return 0;
    case T_INTEGER: *out = v.type == TV_INT; return 0;
    case T_FLOAT: *out = v.type == TV_FLOAT; return 0;
    case T_NUMBER: *out = v.type == TV_INT || v.type == TV_FLOAT || v.type == TV_BOOL; return 0;
    case T_STRING: *out = v.type == TV_STR; return 0;
    case T_MAPPING: *out = v.type == TV_DICT; return 0;
    case T_CALLABLE: *out = v.type == TV_MACRO || v.type == TV_FUNC || v.type == TV_UNDEF; return 0;
    case T_ESCAPED: *out = 0; return 0;
    case T_ITERABLE:
        *out = v.type == TV_UNDEF || v.type == TV_STR || v.type == TV_LIST || v.type == TV_TUPLE ||
               v.type == TV_DICT || v.type == TV_ITER;
        return 0;
    case T_SEQUENCE:
        *out = v.type == TV_UNDEF || v.type == TV_STR || v.type == TV_LIST || v.type == TV_TUPLE ||
               v.type == TV_DICT || (v.type == TV_ITER && v.it->kind == TI_RANGE);
        return 0;
    case T_ODD:
    case T_EVEN: {
        tv r;
        if (tt_binop(c, pos, TK_MOD, v, tv_int(2), &r)) return -1;
        *out = tv_eq(r, tv_int(id == T_ODD ? 1 : 0));
        return 0;
    }
    case T_DIVISIBLEBY: {
        tv r;
        if (test_arg(c, pos, "divisibleby", a, &arg) || tt_binop(c, pos, TK_MOD, v, arg, &r)) return -1;
        *out = tv_eq(r, tv_int(0));
        return 0;
    }
    case T_LOWER:
    case T_UPPER: {
        tv_str *s;
        if (tv_to_str(c, v, &s)) return -1;
        int cased = 0, ok = 1;
        size_t i = 0;
        while (i < s->len) {
            size_t n;
            uint32_t cp = tt_utf8_next(s->s + i, s->len - i, &n);
            utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
            if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LT) {
                cased = 1;
                if (id == T_LOWER) ok = 0;
            } else if (cat == UTF8PROC_CATEGORY_LL) {
                cased = 1;
                if (id == T_UPPER) ok = 0;
            }
            i += n;
        }
        *out = cased && ok;
        return 0;
    }
    case T_FILTER:
    case T_TEST: {
        *out = v.type == TV_STR && (id == T_FILTER ? tt_filter_id(v.s->s) > 0 : tt_test_id(v.s->s) > 0);
        return 0;
    }
    case T_SAMEAS:
        if (test_arg(c, pos, "sameas", a, &arg)) return -1;
        if (v.type != arg.type) *out = 0;
        else if (v.type == TV_NONE || v.type == TV_UNDEF) *out = v.type == TV_NONE;
        else if (v.type == TV_BOOL) *out = v.b == arg.b;
        else if (v.type == TV_INT) *out = v.i == arg.i && v.i >= -5 && v.i <= 256; /* CPython's small ints */
        else if (v.type == TV_FLOAT) *out = 0;
        else *out = v.l == arg.l; /* same object */
        return 0;
    case T_IN:
        if (test_arg(c, pos, "in", a, &arg)) return -1;
        return tv_contains(c, pos, arg, v, out);
    case T_EQ:
        if (test_arg(c, pos, "eq", a, &arg)) return -1;
        *out = tv_eq(v, arg);
        return 0;
    case T_NE:
        if (test_arg(c, pos, "ne", a, &arg)) return -1;
        *out = !tv_eq(v, arg);
        return 0;
    case T_GT:
    case T_GE:
    case T_LT:
    case T_LE:
        if (test_arg(c, pos, "comparison", a, &arg) || tv_cmp(c, pos, v, arg, &k)) return -1;
        *out = id == T_GT ? k > 0 : id == T_GE ? k >= 0 : id == T_LT ? k < 0 : k <= 0;
        return 0;
    }
    return tt_fail_at(c->t, pos, "internal error: test %d", id);
}

/* ---------------------------------------------------------------- globals */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* datetime.strftime: %f, %z and %Z handled as Python does for a naive
 * datetime, the rest by the C library in the "C" locale (as CPython). */
static int do_strftime(tt_ctx *c, uint32_t pos, const tv_str *fmt, tv *out) {
    struct tm tm = c->now;
    int64_t days = days_from_civil(tm.tm_year + 1900, (unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday);
    tm.tm_wday = (int)(((days % 7) + 7 + 4) % 7);
    tm.tm_yday = (int)(days - days_from_civil(tm.tm_year + 1900, 1, 1));
    tt_buf f = {0};
    for (size_t i = 0; i < fmt->len; i++) {
        int rc;
        if (fmt->s[i] == '%' && i + 1 < fmt->len) {
            char k = fmt->s[i + 1];
            if (k == 'f') rc = tt_buf_puts(&f, "000000");
            else if (k == 'z' || k == 'Z') rc = 0;
            else rc = tt_buf_put(&f, fmt->s + i, 2);
            i++;
        } else
            rc = tt_buf_putc(&f, fmt->s[i]);
        if (rc) {
            tt_buf_free(&f);
            return -1;
        }
    }
    if (!f.p || f.n == 0) {
        tt_buf_free(&f);
        return tv_str_make(c->a, "", 0, out);
    }
    size_t cap = 256 + f.n * 8;
    char *buf = malloc(cap);
    if (!buf) {
        tt_buf_free(&f);
        return tn_fail("out of memory in strftime");
    }
    size_t n = strftime(buf, cap, f.p, &tm);
    int rc = tv_str_make(c->a, buf, n, out);
    free(buf);
    tt_buf_free(&f);
    (void)pos;
    return rc;
}

static int make_dict(tt_ctx *c, uint32_t pos, tt_args *a, const char *fname, tv_dict **out) {
    *out = NULL;
    tv_dict *d = tt_dict_new(c->a, 0);
    if (!d) return -1;
    if (a->n > 1) return tt_fail_at(c->t, pos, "%s expected at most 1 argument, got %zu", fname, a->n);
    if (a->n == 1) {
        tv src = a->v[0];
        if (src.type == TV_DICT || src.type == TV_NS) {
            for (size_t i = 0; i < src.d->n; i++)
                if (tt_dict_set(c->a, d, src.d->k[i], src.d->v[i])) return -1;
        } else {
            tv_list *l;
            if (tv_iterate(c, pos, src, &l)) return -1;
            for (size_t i = 0; i < l->n; i++) {
                tv_list *p;
                if (tv_iterate(c, pos, l->v[i], &p)) return -1;
                if (p->n != 2)
                    return tt_fail_at(c->t, pos, "dictionary update sequence element #%zu has length %zu; 2 is required",
                                      i, p->n);
                if (tt_dict_set(c->a, d, p->v[0], p->v[1])) return -1;
            }
        }
    }
    for (size_t i = 0; i < a->nkw; i++) {
        tv k;
        if (tv_str_make(c->a, a->kwn[i], strlen(a->kwn[i]), &k) || tt_dict_set(c->a, d, k, a->kwv[i])) return -1;
    }
    *out = d;
    return 0;
}

int tt_call_builtin(tt_ctx *c, uint32_t pos, tv_func *f, tt_args *a, tv *out) {
    if (f->id >= TF_METHOD_BASE) return tt_method_call(c, pos, f, a, out);
    switch (f->id) {
    case TF_RANGE: {
        if (a->nkw) return tt_fail_at(c->t, pos, "range() takes no keyword arguments");
        if (a->n < 1 || a->n > 3) return tt_fail_at(c->t, pos, "range expected 1 to 3 arguments, got %zu", a->n);
        int64_t p[3] = {0, 0, 1};
        for (size_t i = 0; i < a->n; i++) {
            if (!is_int(a->v[i]))
                return tt_fail_at(c->t, pos, "'%s' object cannot be interpreted as an integer", tv_type_name(a->v[i]));
        }
        if (a->n == 1) p[1] = ival(a->v[0]);
        else {
            p[0] = ival(a->v[0]);
            p[1] = ival(a->v[1]);
            if (a->n == 3) p[2] = ival(a->v[2]);
        }
        if (p[2] == 0) return tt_fail_at(c->t, pos, "range() arg 3 must not be zero");
        double len = p[2] > 0 ? ceil(((double)p[1] - (double)p[0]) / (double)p[2])
                              : ceil(((double)p[0] - (double)p[1]) / (double)-p[2]);
        if (len < 0) len = 0;
        if (len > TT_MAX_RANGE)
            return tt_fail_at(c->t, pos, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).",
                              TT_MAX_RANGE);
        tv_list *l = tt_list_new(c->a, (size_t)len);
        if (!l) return -1;
        for (int64_t x = p[0]; p[2] > 0 ? x < p[1] : x > p[1]; x += p[2]) l->v[l->n++] = tv_int(x);
        if (make_gen(c, l, NULL, TI_RANGE, out)) return -1;
        out->it->start = p[0];
        out->it->stop = p[1];
        out->it->step = p[2];
        return 0;
    }
    case TF_DICT:
    case TF_NAMESPACE: {
        tv_dict *d;
        if (make_dict(c, pos, a, f->id == TF_DICT ? "dict" : "namespace", &d)) return -1;
        out->type = f->id == TF_DICT ? TV_DICT : TV_NS;
        out->d = d;
        return 0;
    }
    case TF_RAISE: {
        if (a->n != 1 || a->nkw) return tt_fail_at(c->t, pos, "raise_exception() takes exactly one argument");
        tv_str *msg;
        if (tv_to_str(c, a->v[0], &msg)) return -1;
        return tt_fail_at(c->t, pos, "%s", msg->s);
    }
    case TF_STRFTIME: {
        if (a->n != 1 || a->nkw) return tt_fail_at(c->t, pos, "strftime_now() takes exactly one argument");
        tv_str *fmt;
        if (want_str(c, pos, a->v[0], "strftime_now format", &fmt)) return -1;
        return do_strftime(c, pos, fmt, out);
    }
    case TF_JOINER: {
        tv arg[1] = {tv_none()};
        BIND("joiner", 0, "sep");
        tv_func *j = tt_zalloc(c->a, sizeof *j);
        if (!j) return -1;
        j->id = TF_JOINER_CALL;
        if (!given_[0]) {
            if (tv_str_make(c->a, ", ", 2, &arg[0])) return -1;
        }
        if (tv_to_str(c, arg[0], &j->sep)) return -1;
        out->type = TV_FUNC;
        out->fn = j;
        return 0;
    }
    case TF_JOINER_CALL:
        if (!f->state) {
            f->state = 1;
            return tv_str_make(c->a, "", 0, out);
        }
        out->type = TV_STR;
        out->s = f->sep;
        return 0;
    case TF_LOOP_CYCLE:
        if (a->n == 0) return tt_fail_at(c->t, pos, "no items for cycling given");
        *out = a->v[f->self.loop->index0 % a->n];
        return 0;
    case TF_LOOP_CHANGED: {
        tv_loop *lp = f->self.loop;
        tv_list *l = tt_list_new(c->a, a->n);
        if (!l) return -1;
        for (size_t i = 0; i < a->n; i++) l->v[l->n++] = a->v[i];
        tv cur = {.type = TV_TUPLE};
        cur.l = l;
        if (!lp->changed_set || !tv_eq(lp->last_changed, cur)) {
            lp->changed_set = 1;
            lp->last_changed = cur;
            *out = tv_bool(1);
        } else
            *out = tv_bool(0);
        return 0;
    }
    case TF_CYCLER_UNSUPPORTED: return tt_fail_at(c->t, pos, "cycler() is not supported by tune");
    case TF_LIPSUM_UNSUPPORTED: return tt_fail_at(c->t, pos, "lipsum() is not supported by tune");
    }
    return tt_fail_at(c->t, pos, "internal error: function %d", f->id);
}
