#define _POSIX_C_SOURCE 200809L
/* template_eval.c - walks the syntax tree: scopes, statements, expressions,
 * calls and macros, with jinja2's scoping rules:
 *   - the template's top level is one scope; `if` opens none;
 *   - each iteration of a for loop is a fresh scope over the enclosing one
 *     (a `set` inside a loop is gone at the next iteration and after it);
 *   - macros, call blocks, `with`, `{% set %}...{% endset %}` bodies and
 *     filter blocks have their own scopes;
 *   - a macro sees the scope it was defined in as it is when called;
 *   - names not found in any scope come from the render's variables, then
 *     the globals (range, dict, namespace, raise_exception, ...). */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "text/template_internal.h"
#include "util/error.h"

enum { EX_OK = 0, EX_BREAK = 1, EX_CONTINUE = 2 };

static int eval(tt_ctx *c, tt_scope *sc, const tt_node *e, tv *out);
static int exec_body(tt_ctx *c, tt_scope *sc, tt_nodes body);

/* ------------------------------------------------------------------ scopes */

static tt_scope *scope_new(tt_ctx *c, tt_scope *parent) {
    tt_scope *s = tt_zalloc(c->a, sizeof *s);
    if (s) s->parent = parent;
    return s;
}

static int scope_set(tt_ctx *c, tt_scope *s, const char *name, tv v) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name)) {
            s->vals[i] = v;
            return 0;
        }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        const char **nn = tt_alloc(c->a, cap * sizeof *nn);
        tv *nv = tt_alloc(c->a, cap * sizeof *nv);
        if (!nn || !nv) return -1;
        if (s->n) {
            memcpy(nn, s->names, s->n * sizeof *nn);
            memcpy(nv, s->vals, s->n * sizeof *nv);
        }
        s->names = nn;
        s->vals = nv;
        s->cap = cap;
    }
    s->names[s->n] = name;
    s->vals[s->n] = v;
    s->n++;
    return 0;
}

static const struct {
    const char *name;
    int id;
} globals[] = {
    {"range", TF_RANGE},         {"dict", TF_DICT},       {"namespace", TF_NAMESPACE},
    {"raise_exception", TF_RAISE}, {"strftime_now", TF_STRFTIME}, {"joiner", TF_JOINER},
    {"cycler", TF_CYCLER_UNSUPPORTED}, {"lipsum", TF_LIPSUM_UNSUPPORTED},
};

static int lookup(tt_ctx *c, tt_scope *sc, const char *name, tv *out) {
    for (tt_scope *s = sc; s; s = s->parent)
        for (size_t i = s->n; i-- > 0;)
            if (!strcmp(s->names[i], name)) {
                *out = s->vals[i];
                return 0;
            }
    const tn_template_vars *v = c->vars;
    if (v)
        for (size_t i = 0; i < v->n; i++)
            if (!strcmp(v->names[i], name)) {
                *out = v->vals[i];
                return 0;
            }
    for (size_t i = 0; i < sizeof globals / sizeof globals[0]; i++)
        if (!strcmp(globals[i].name, name)) {
            tv_func *f = tt_zalloc(c->a, sizeof *f);
            if (!f) return -1;
            f->id = globals[i].id;
            out->type = TV_FUNC;
            out->fn = f;
            return 0;
        }
    *out = tv_undef_named(c, name);
    return 0;
}

/* --------------------------------------------------------------- arguments */

static int args_push(tt_ctx *c, tt_args *a, size_t *cap, tv v) {
    if (a->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        tv *nv = tt_alloc(c->a, nc * sizeof *nv);
        if (!nv) return -1;
        if (a->n) memcpy(nv, a->v, a->n * sizeof *nv);
        a->v = nv;
        *cap = nc;
    }
    a->v[a->n++] = v;
    return 0;
}

static int kw_push(tt_ctx *c, tt_args *a, size_t *cap, const char *name, tv v) {
    for (size_t i = 0; i < a->nkw; i++)
        if (!strcmp(a->kwn[i], name)) {
            a->kwv[i] = v; /* jinja2 builds a dict: the last one wins */
            return 0;
        }
    if (a->nkw == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        const char **nn = tt_alloc(c->a, nc * sizeof *nn);
        tv *nv = tt_alloc(c->a, nc * sizeof *nv);
        if (!nn || !nv) return -1;
        if (a->nkw) {
            memcpy(nn, a->kwn, a->nkw * sizeof *nn);
            memcpy(nv, a->kwv, a->nkw * sizeof *nv);
        }
        a->kwn = nn;
        a->kwv = nv;
        *cap = nc;
    }
    a->kwn[a->nkw] = name;
    a->kwv[a->nkw] = v;
    a->nkw++;
    return 0;
}

static int eval_args(tt_ctx *c, tt_scope *sc, const tt_callargs *ca, tt_args *a) {
    memset(a, 0, sizeof *a);
    size_t cap = 0, kcap = 0;
    for (size_t i = 0; i < ca->args.n; i++) {
        tv v;
        if (eval(c, sc, ca->args.v[i], &v) || args_push(c, a, &cap, v)) return -1;
    }
    if (ca->star) {
        tv v;
        tv_list *l;
        if (eval(c, sc, ca->star, &v) || tv_iterate(c, ca->star->pos, v, &l)) return -1;
        for (size_t i = 0; i < l->n; i++)
            if (args_push(c, a, &cap, l->v[i])) return -1;
    }
    for (size_t i = 0; i < ca->nkw; i++) {
        tv v;
        if (eval(c, sc, ca->kwvals[i], &v) || kw_push(c, a, &kcap, ca->kwnames[i], v)) return -1;
    }
    if (ca->dstar) {
        tv v;
        if (eval(c, sc, ca->dstar, &v)) return -1;
        if (v.type != TV_DICT)
            return tt_fail_at(c->t, ca->dstar->pos, "argument after ** must be a mapping, not %s", tv_type_name(v));
        for (size_t i = 0; i < v.d->n; i++) {
            if (v.d->k[i].type != TV_STR) return tt_fail_at(c->t, ca->dstar->pos, "keywords must be strings");
            if (kw_push(c, a, &kcap, v.d->k[i].s->s, v.d->v[i])) return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ output */

static int output(tt_ctx *c, tv v) { return tv_str_append(c->out, v); }

/* Runs body into a fresh buffer; returns its text as a string value.
 * A break or continue inside (a set block in a loop: jinja2 compiles it
 * inline) is passed up, and the text dropped. */
static int capture(tt_ctx *c, tt_scope *sc, tt_nodes body, tv *out) {
    tt_buf buf = {0}, *saved = c->out;
    c->out = &buf;
    int rc = exec_body(c, sc, body);
    c->out = saved;
    if (rc != EX_OK) {
        tt_buf_free(&buf);
        return rc;
    }
    rc = tv_str_make(c->a, buf.p ? buf.p : "", buf.n, out);
    tt_buf_free(&buf);
    return rc;
}

/* ------------------------------------------------------------------ macros */

static int call_macro(tt_ctx *c, uint32_t pos, const tv_macro *m, tt_args *a, tv *out) {
    const tt_node *n = m->node;
    const char *mname = n->macro.name ? n->macro.name : "caller";
    if (c->depth >= TT_MAX_DEPTH)
        return tt_fail_at(c->t, pos, "macros nested more than %d deep (runaway recursion?)", TT_MAX_DEPTH);
    tt_scope *sc = scope_new(c, m->closure);
    if (!sc) return -1;
    size_t np = n->macro.nparams;
    int *given = tt_zalloc(c->a, (np + 1) * sizeof *given);
    tv *vals = tt_alloc(c->a, (np + 1) * sizeof *vals);
    if (!given || !vals) return -1;
    tv_list *varargs = tt_list_new(c->a, 0);
    tv_dict *kwargs = tt_dict_new(c->a, 0);
    if (!varargs || !kwargs) return -1;
    for (size_t i = 0; i < a->n; i++) {
        if (i < np) {
            vals[i] = a->v[i];
            given[i] = 1;
        } else if (n->macro.uses_varargs) {
            if (tt_list_push(c->a, varargs, a->v[i])) return -1;
        } else
            return tt_fail_at(c->t, pos, "macro '%s' takes not more than %zu argument(s)", mname, np);
    }
    tv caller = {.type = TV_UNDEF};
    int have_caller = 0;
    for (size_t k = 0; k < a->nkw; k++) {
        size_t i;
        for (i = 0; i < np; i++)
            if (!strcmp(n->macro.params[i], a->kwn[k])) break;
        if (i < np) {
            if (given[i])
                return tt_fail_at(c->t, pos, "macro '%s' got multiple values for argument '%s'", mname, a->kwn[k]);
            vals[i] = a->kwv[k];
            given[i] = 1;
        } else if (!strcmp(a->kwn[k], "caller") && n->macro.uses_caller) {
            caller = a->kwv[k];
            have_caller = 1;
        } else if (n->macro.uses_kwargs) {
            tv key;
            if (tv_str_make(c->a, a->kwn[k], strlen(a->kwn[k]), &key) || tt_dict_set(c->a, kwargs, key, a->kwv[k]))
                return -1;
        } else
            return tt_fail_at(c->t, pos, "macro '%s' takes no keyword argument '%s'", mname, a->kwn[k]);
    }
    c->depth++;
    for (size_t i = 0; i < np; i++) {
        if (!given[i]) {
            if (n->macro.defaults[i]) {
                if (eval(c, sc, n->macro.defaults[i], &vals[i])) {
                    c->depth--;
                    return -1;
                }
            } else {
                vals[i] = tv_undef_named(c, n->macro.params[i]);
            }
        }
        if (scope_set(c, sc, n->macro.params[i], vals[i])) {
            c->depth--;
            return -1;
        }
    }
    int rc = 0;
    if (n->macro.uses_varargs) {
        tv v = {.type = TV_TUPLE};
        v.l = varargs;
        rc |= scope_set(c, sc, "varargs", v);
    }
    if (n->macro.uses_kwargs) {
        tv v = {.type = TV_DICT};
        v.d = kwargs;
        rc |= scope_set(c, sc, "kwargs", v);
    }
    if (n->macro.uses_caller) {
        if (!have_caller) caller = tv_undef_hint(c, "No caller defined");
        rc |= scope_set(c, sc, "caller", caller);
    }
    if (!rc) rc = capture(c, sc, n->macro.body, out);
    c->depth--;
    return rc ? -1 : 0; /* break/continue cannot cross a macro (refused when parsed) */
}

int tt_call_value(tt_ctx *c, uint32_t pos, tv fn, tt_args *a, tv *out) {
    switch (fn.type) {
    case TV_MACRO: return call_macro(c, pos, fn.m, a, out);
    case TV_FUNC: return tt_call_builtin(c, pos, fn.fn, a, out);
    case TV_UNDEF: return tv_undef_fail(c, pos, fn);
    default: return tt_fail_at(c->t, pos, "'%s' object is not callable", tv_type_name(fn));
    }
}

/* ------------------------------------------------------------- arithmetic */

static int num(tv v) { return v.type == TV_INT || v.type == TV_BOOL || v.type == TV_FLOAT; }
static int64_t as_i(tv v) { return v.type == TV_BOOL ? v.b : v.i; }
static double as_f(tv v) { return v.type == TV_FLOAT ? v.f : (double)as_i(v); }

static int overflow(tt_ctx *c, uint32_t pos) {
    return tt_fail_at(c->t, pos, "integer overflow (tune keeps integers in 64 bits)");
}

static int repeat(tt_ctx *c, uint32_t pos, tv seq, int64_t k, tv *out) {
    if (k < 0) k = 0;
    if (seq.type == TV_STR) {
        if (k && seq.s->len && (uint64_t)k > (64u << 20) / seq.s->len)
            return tt_fail_at(c->t, pos, "string repetition too large");
        tt_buf b = {0};
        for (int64_t i = 0; i < k; i++)
            if (tt_buf_put(&b, seq.s->s, seq.s->len)) {
                tt_buf_free(&b);
                return -1;
            }
        int rc = tv_str_make(c->a, b.p ? b.p : "", b.n, out);
        if (!rc) out->s->markup = seq.s->markup;
        tt_buf_free(&b);
        return rc;
    }
    if (k && seq.l->n && (uint64_t)k > (8u << 20) / seq.l->n) return tt_fail_at(c->t, pos, "list repetition too large");
    tv_list *l = tt_list_new(c->a, (size_t)k * seq.l->n);
    if (!l) return -1;
    for (int64_t i = 0; i < k; i++)
        for (size_t j = 0; j < seq.l->n; j++) l->v[l->n++] = seq.l->v[j];
    out->type = seq.type;
    out->l = l;
    return 0;
}

static double py_fmod(double x, double y) {
    double m = fmod(x, y);
    if (m != 0) {
        if ((y < 0) != (m < 0)) m += y;
    } else
        m = copysign(0.0, y);
    return m;
}

static double py_floordiv(double x, double y) {
    double m = fmod(x, y);
    double div = (x - m) / y;
    if (m != 0 && ((y < 0) != (m < 0))) div -= 1.0;
    double fl;
    if (div != 0) {
        fl = floor(div);
        if (div - fl > 0.5) fl += 1.0;
    } else
        fl = copysign(0.0, x / y);
    return fl;
}

static const char *op_text(int op) {
    switch (op) {
    case TK_ADD: return "+";
    case TK_SUB: return "-";
    case TK_MUL: return "*";
    case TK_DIV: return "/";
    case TK_FLOORDIV: return "//";
    case TK_MOD: return "%";
    default: return "**";
    }
}

int tt_binop(tt_ctx *c, uint32_t pos, int op, tv l, tv r, tv *out) {
    /* str % x is str.__mod__: x's own operators are never asked */
    if (op == TK_MOD && l.type == TV_STR) return tt_percent_format(c, pos, l.s, r, out);
    if (l.type == TV_UNDEF) return tv_undef_fail(c, pos, l);
    if (r.type == TV_UNDEF) return tv_undef_fail(c, pos, r);
    if (num(l) && num(r)) {
        int fl = l.type == TV_FLOAT || r.type == TV_FLOAT;
        int64_t a = as_i(l), b = as_i(r), res;
        double x = as_f(l), y = as_f(r);
        switch (op) {
        case TK_ADD:
            if (fl) *out = tv_float(x + y);
            else if (__builtin_add_overflow(a, b, &res)) return overflow(c, pos);
            else *out = tv_int(res);
            return 0;
        case TK_SUB:
            if (fl) *out = tv_float(x - y);
            else if (__builtin_sub_overflow(a, b, &res)) return overflow(c, pos);
            else *out = tv_int(res);
            return 0;
        case TK_MUL:
            if (fl) *out = tv_float(x * y);
            else if (__builtin_mul_overflow(a, b, &res)) return overflow(c, pos);
            else *out = tv_int(res);
            return 0;
        case TK_DIV:
            if (y == 0) return tt_fail_at(c->t, pos, "division by zero");
            *out = tv_float(x / y);
            return 0;
        case TK_FLOORDIV:
        case TK_MOD:
            if (fl ? y == 0 : b == 0)
                return tt_fail_at(c->t, pos, op == TK_MOD ? "modulo by zero" : "integer division or modulo by zero");
            if (fl) {
                *out = tv_float(op == TK_MOD ? py_fmod(x, y) : py_floordiv(x, y));
                return 0;
            }
            if (a == INT64_MIN && b == -1) return overflow(c, pos);
            {
                int64_t q = a / b, m = a % b;
                if (m != 0 && ((m < 0) != (b < 0))) {
                    q -= 1;
                    m += b;
                }
                *out = tv_int(op == TK_MOD ? m : q);
            }
            return 0;
        case TK_POW:
            if (!fl && b >= 0) {
                int64_t acc = 1, base = a;
                int64_t e = b;
                while (e) {
                    if (e & 1)
                        if (__builtin_mul_overflow(acc, base, &acc)) return overflow(c, pos);
                    e >>= 1;
                    if (e && __builtin_mul_overflow(base, base, &base)) return overflow(c, pos);
                }
                *out = tv_int(acc);
                return 0;
            }
            if (x == 0 && y < 0) return tt_fail_at(c->t, pos, "0.0 cannot be raised to a negative power");
            if (x < 0 && y != floor(y))
                return tt_fail_at(c->t, pos, "a negative number raised to a fractional power is complex "
                                             "(not supported)");
            *out = tv_float(pow(x, y));
            return 0;
        }
    }
    if (op == TK_ADD) {
        if (l.type == TV_STR && r.type == TV_STR) {
            /* Markup + str escapes the str, and so does str + Markup */
            int markup = l.s->markup || r.s->markup;
            tv_str *ls = markup ? tt_escape(c->a, l.s) : l.s, *rs = markup ? tt_escape(c->a, r.s) : r.s;
            if (!ls || !rs) return -1;
            l.s = ls;
            r.s = rs;
            tv_str *s = tt_alloc(c->a, sizeof(tv_str) + l.s->len + r.s->len + 1);
            if (!s) return -1;
            s->markup = (uint8_t)markup;
            s->len = l.s->len + r.s->len;
            s->ncp = l.s->ncp + r.s->ncp;
            memcpy(s->s, l.s->s, l.s->len);
            memcpy(s->s + l.s->len, r.s->s, r.s->len);
            s->s[s->len] = 0;
            out->type = TV_STR;
            out->s = s;
            return 0;
        }
        if ((l.type == TV_LIST || l.type == TV_TUPLE) && l.type == r.type) {
            tv_list *n = tt_list_new(c->a, l.l->n + r.l->n);
            if (!n) return -1;
            for (size_t i = 0; i < l.l->n; i++) n->v[n->n++] = l.l->v[i];
            for (size_t i = 0; i < r.l->n; i++) n->v[n->n++] = r.l->v[i];
            out->type = l.type;
            out->l = n;
            return 0;
        }
        if (l.type == TV_STR)
            return tt_fail_at(c->t, pos, "can only concatenate str (not \"%s\") to str", tv_type_name(r));
        if (l.type == TV_LIST)
            return tt_fail_at(c->t, pos, "can only concatenate list (not \"%s\") to list", tv_type_name(r));
    }
    if (op == TK_MUL) {
        int ls = l.type == TV_STR || l.type == TV_LIST || l.type == TV_TUPLE;
        int rs = r.type == TV_STR || r.type == TV_LIST || r.type == TV_TUPLE;
        if (ls && (r.type == TV_INT || r.type == TV_BOOL)) return repeat(c, pos, l, as_i(r), out);
        if (rs && (l.type == TV_INT || l.type == TV_BOOL)) return repeat(c, pos, r, as_i(l), out);
    }
    if (op == TK_MOD && l.type == TV_STR) return tt_percent_format(c, pos, l.s, r, out);
    return tt_fail_at(c->t, pos, "unsupported operand type(s) for %s: '%s' and '%s'", op_text(op), tv_type_name(l),
                      tv_type_name(r));
}

/* ---------------------------------------------------------- expressions */

static int eval_filter(tt_ctx *c, tt_scope *sc, const tt_node *e, const tv *input, tv *out);

static int eval_list(tt_ctx *c, tt_scope *sc, tt_nodes items, tv_list **out) {
    tv_list *l = tt_list_new(c->a, items.n);
    if (!l) return -1;
    for (size_t i = 0; i < items.n; i++)
        if (eval(c, sc, items.v[i], &l->v[l->n++])) return -1;
    *out = l;
    return 0;
}

static int compare(tt_ctx *c, uint32_t pos, int op, tv l, tv r, int *res) {
    int k;
    switch (op) {
    case TK_EQ: *res = tv_eq(l, r); return 0;
    case TK_NE: *res = !tv_eq(l, r); return 0;
    case 'i': return tv_contains(c, pos, r, l, res);
    case 'n':
        if (tv_contains(c, pos, r, l, res)) return -1;
        *res = !*res;
        return 0;
    }
    if (tv_cmp(c, pos, l, r, &k)) return -1;
    switch (op) {
    case TK_LT: *res = k < 0; break;
    case TK_LTEQ: *res = k <= 0; break;
    case TK_GT: *res = k > 0; break;
    default: *res = k >= 0; break;
    }
    return 0;
}

/* jinja2's optimizer evaluates, at compile time, every expression made of
 * constants only (no names, no calls, no filter that needs the render
 * context) and keeps the result when it can be written as a Python literal;
 * a whole {{ ... }} of constants is printed from its compile-time value
 * whatever it is. The one place where that differs from running it: a slice
 * then goes through the sandbox's getitem (a failure is an undefined value)
 * rather than a plain subscript (a failure raises). mark() records which
 * nodes qualify; eval() folds them as jinja2 does. */
static int mark(tt_node *e);

static int mark_all(tt_nodes l) {
    int all = 1;
    for (size_t i = 0; i < l.n; i++) all &= mark(l.v[i]);
    return all;
}

static int mark_args(const tt_callargs *ca) {
    int all = mark_all(ca->args);
    for (size_t i = 0; i < ca->nkw; i++) all &= mark(ca->kwvals[i]);
    if (ca->star) all &= mark(ca->star) & 0;
    if (ca->dstar) all &= mark(ca->dstar) & 0;
    return all;
}

static void mark_stmts(tt_nodes body);

static int mark(tt_node *e) {
    if (!e) return 1;
    int lit = 0;
    switch (e->kind) {
    case E_CONST: lit = 1; break;
    case E_NAME: lit = 0; break;
    case E_CALL: mark(e->call.fn); mark_args(&e->call.ca); lit = 0; break;
    case E_GETATTR: lit = mark(e->getattr.obj); break;
    case E_GETITEM: lit = mark(e->getitem.obj) & mark(e->getitem.key); break;
    case E_SLICE: lit = mark(e->slice.obj) & mark(e->slice.start) & mark(e->slice.stop) & mark(e->slice.step); break;
    case E_FILTER: {
        const char *f = e->filter.fname;
        lit = mark(e->filter.arg) & mark_args(&e->filter.ca) & (e->filter.arg != NULL) & (e->filter.id > 0);
        if (f && (!strcmp(f, "map") || !strcmp(f, "select") || !strcmp(f, "reject") || !strcmp(f, "selectattr") ||
                  !strcmp(f, "rejectattr")))
            lit = 0;
        break;
    }
    case E_TEST: lit = mark(e->test.arg) & mark_args(&e->test.ca) & (e->test.id > 0); break;
    case E_BINOP:
    case E_AND:
    case E_OR: lit = mark(e->bin.l) & mark(e->bin.r); break;
    case E_NOT:
    case E_NEG:
    case E_POS: lit = mark(e->un); break;
    case E_COND: lit = mark(e->cond.test) & mark(e->cond.then) & mark(e->cond.els); break;
    case E_COMPARE:
        lit = mark(e->cmp.first);
        for (size_t i = 0; i < e->cmp.n; i++) lit &= mark(e->cmp.rhs[i]);
        break;
    case E_CONCAT:
    case E_LIST:
    case E_TUPLE: lit = mark_all(e->items); break;
    case E_DICT: lit = mark_all(e->dict.keys) & mark_all(e->dict.vals); break;
    /* statements: mark the expressions inside */
    case S_PRINT: mark(e->print); return 0;
    case S_IF:
        for (tt_node *b = e; b; b = b->sif.els_if) {
            mark(b->sif.test);
            mark_stmts(b->sif.body);
            if (!b->sif.els_if) mark_stmts(b->sif.els);
        }
        return 0;
    case S_FOR:
        mark(e->sfor.iter);
        mark(e->sfor.filter);
        mark_stmts(e->sfor.body);
        mark_stmts(e->sfor.els);
        return 0;
    case S_SET: mark(e->set.value); return 0;
    case S_SETBLOCK: mark(e->setblock.filter); mark_stmts(e->setblock.body); return 0;
    case S_MACRO:
        for (size_t i = 0; i < e->macro.nparams; i++) mark(e->macro.defaults[i]);
        mark_stmts(e->macro.body);
        return 0;
    case S_CALLBLOCK: mark(e->callblock.call); mark(e->callblock.caller); return 0;
    case S_FILTERBLOCK: mark(e->filterblock.filter); mark_stmts(e->filterblock.body); return 0;
    case S_WITH:
        for (size_t i = 0; i < e->with.n; i++) mark(e->with.values[i]);
        mark_stmts(e->with.body);
        return 0;
    case S_SCOPE: mark_stmts(e->scope); return 0;
    default: return 0;
    }
    e->literal = (uint8_t)lit;
    return lit;
}

static void mark_stmts(tt_nodes body) {
    for (size_t i = 0; i < body.n; i++) mark(body.v[i]);
}

void tt_mark_literals(tt_nodes body) { mark_stmts(body); }

/* has_safe_repr(): a value jinja2 can write into compiled code */
static int safe_repr(tv v) {
    switch (v.type) {
    case TV_NONE:
    case TV_BOOL:
    case TV_INT:
    case TV_FLOAT:
    case TV_STR: return 1;
    case TV_LIST:
    case TV_TUPLE:
        for (size_t i = 0; i < v.l->n; i++)
            if (!safe_repr(v.l->v[i])) return 0;
        return 1;
    case TV_DICT:
        for (size_t i = 0; i < v.d->n; i++)
            if (!safe_repr(v.d->k[i]) || !safe_repr(v.d->v[i])) return 0;
        return 1;
    case TV_ITER: return v.it->kind == TI_RANGE;
    default: return 0;
    }
}

static int eval_node(tt_ctx *c, tt_scope *sc, const tt_node *e, tv *out);

/* Folds a constant expression as jinja2's compiler does: any value for a
 * whole {{ }} (print = 1), a literal-writable one elsewhere; otherwise (or
 * when folding fails) it is evaluated at run time. */
static int eval(tt_ctx *c, tt_scope *sc, const tt_node *e, tv *out) {
    int print = c->print_fold;
    c->print_fold = 0;
    if (!e->literal || c->folding || e->kind == E_CONST) return eval_node(c, sc, e, out);
    c->folding = 1;
    int rc = eval_node(c, sc, e, out);
    c->folding = 0;
    if (!rc && (print || safe_repr(*out))) return 0;
    return eval_node(c, sc, e, out);
}

static int eval_node(tt_ctx *c, tt_scope *sc, const tt_node *e, tv *out) {
    tv a, b;
    switch (e->kind) {
    case E_CONST: *out = e->cval; return 0;
    case E_NAME: return lookup(c, sc, e->name, out);
    case E_GETATTR:
        if (eval(c, sc, e->getattr.obj, &a)) return -1;
        return tt_getattr(c, e->pos, a, e->getattr.attr, out);
    case E_GETITEM:
        if (eval(c, sc, e->getitem.obj, &a) || eval(c, sc, e->getitem.key, &b)) return -1;
        return tt_getitem(c, e->pos, a, b, out);
    case E_SLICE: {
        tv parts[3];
        const tt_node *pn[3] = {e->slice.start, e->slice.stop, e->slice.step};
        if (eval(c, sc, e->slice.obj, &a)) return -1;
        for (int i = 0; i < 3; i++) {
            if (!pn[i]) parts[i] = tv_none();
            else if (eval(c, sc, pn[i], &parts[i])) return -1;
        }
        if (tt_slice(c, e->pos, a, parts[0], parts[1], parts[2], out)) {
            if (!c->folding) return -1;
            *out = tv_undef_hint(c, "no such slice");
        }
        return 0;
    }
    case E_CALL: {
        tt_args args;
        if (eval(c, sc, e->call.fn, &a) || eval_args(c, sc, &e->call.ca, &args)) return -1;
        return tt_call_value(c, e->pos, a, &args, out);
    }
    case E_FILTER: return eval_filter(c, sc, e, NULL, out);
    case E_TEST: {
        if (e->test.id < 0) return tt_fail_at(c->t, e->pos, "no test named '%s'", e->test.tname);
        tt_args args;
        int r;
        if (eval(c, sc, e->test.arg, &a) || eval_args(c, sc, &e->test.ca, &args) ||
            tt_call_test(c, e->pos, e->test.id, a, &args, &r))
            return -1;
        *out = tv_bool(r);
        return 0;
    }
    case E_BINOP:
        if (eval(c, sc, e->bin.l, &a) || eval(c, sc, e->bin.r, &b)) return -1;
        return tt_binop(c, e->pos, e->op, a, b, out);
    case E_CONCAT: {
        tt_buf buf = {0};
        for (size_t i = 0; i < e->items.n; i++)
            if (eval(c, sc, e->items.v[i], &a) || tv_str_append(&buf, a)) {
                tt_buf_free(&buf);
                return -1;
            }
        int rc = tv_str_make(c->a, buf.p ? buf.p : "", buf.n, out);
        tt_buf_free(&buf);
        return rc;
    }
    case E_COMPARE: {
        if (eval(c, sc, e->cmp.first, &a)) return -1;
        int r = 1;
        for (size_t i = 0; i < e->cmp.n && r; i++) {
            if (eval(c, sc, e->cmp.rhs[i], &b) || compare(c, e->cmp.rhs[i]->pos, e->cmp.ops[i], a, b, &r))
                return -1;
            a = b;
        }
        *out = tv_bool(r);
        return 0;
    }
    case E_AND:
        if (eval(c, sc, e->bin.l, &a)) return -1;
        if (!tv_truth(a)) {
            *out = a;
            return 0;
        }
        return eval(c, sc, e->bin.r, out);
    case E_OR:
        if (eval(c, sc, e->bin.l, &a)) return -1;
        if (tv_truth(a)) {
            *out = a;
            return 0;
        }
        return eval(c, sc, e->bin.r, out);
    case E_NOT:
        if (eval(c, sc, e->un, &a)) return -1;
        *out = tv_bool(!tv_truth(a));
        return 0;
    case E_NEG:
    case E_POS:
        if (eval(c, sc, e->un, &a)) return -1;
        if (a.type == TV_UNDEF) return tv_undef_fail(c, e->pos, a);
        if (a.type == TV_FLOAT) *out = tv_float(e->kind == E_NEG ? -a.f : a.f);
        else if (a.type == TV_INT || a.type == TV_BOOL) {
            int64_t i = as_i(a);
            if (e->kind == E_NEG && i == INT64_MIN) return overflow(c, e->pos);
            *out = tv_int(e->kind == E_NEG ? -i : i);
        } else
            return tt_fail_at(c->t, e->pos, "bad operand type for unary %c: '%s'", e->kind == E_NEG ? '-' : '+',
                              tv_type_name(a));
        return 0;
    case E_COND:
        if (eval(c, sc, e->cond.test, &a)) return -1;
        if (tv_truth(a)) return eval(c, sc, e->cond.then, out);
        if (e->cond.els) return eval(c, sc, e->cond.els, out);
        *out = tv_undef_hint(c, "the inline if-expression evaluated to false and no else section was defined");
        return 0;
    case E_LIST:
    case E_TUPLE:
        if (eval_list(c, sc, e->items, &out->l)) return -1;
        out->type = e->kind == E_LIST ? TV_LIST : TV_TUPLE;
        return 0;
    case E_DICT: {
        tv_dict *d = tt_dict_new(c->a, e->dict.keys.n);
        if (!d) return -1;
        for (size_t i = 0; i < e->dict.keys.n; i++) {
            if (eval(c, sc, e->dict.keys.v[i], &a) || eval(c, sc, e->dict.vals.v[i], &b)) return -1;
            if (a.type == TV_LIST || a.type == TV_DICT || a.type == TV_NS)
                return tt_fail_at(c->t, e->dict.keys.v[i]->pos, "unhashable type: '%s'", tv_type_name(a));
            if (tt_dict_set(c->a, d, a, b)) return -1;
        }
        out->type = TV_DICT;
        out->d = d;
        return 0;
    }
    default: return tt_fail_at(c->t, e->pos, "internal error: not an expression");
    }
}

/* A filter node; when the chain bottoms out with no argument (filter
 * blocks, {% set x | f %}), *input is what it filters. */
static int eval_filter(tt_ctx *c, tt_scope *sc, const tt_node *e, const tv *input, tv *out) {
    tv in;
    if (e->filter.arg) {
        if (e->filter.arg->kind == E_FILTER) {
            if (eval_filter(c, sc, e->filter.arg, input, &in)) return -1;
        } else if (eval(c, sc, e->filter.arg, &in))
            return -1;
    } else
        in = *input;
    if (e->filter.id < 0) return tt_fail_at(c->t, e->pos, "no filter named '%s'", e->filter.fname);
    tt_args args;
    if (eval_args(c, sc, &e->filter.ca, &args)) return -1;
    return tt_call_filter(c, e->pos, e->filter.id, in, &args, out);
}

/* ------------------------------------------------------------- statements */

static int assign(tt_ctx *c, tt_scope *sc, const tt_node *target, tv v) {
    if (target->kind == E_NAME) return scope_set(c, sc, target->name, v);
    if (target->kind == E_GETATTR) {
        tv ns;
        if (lookup(c, sc, target->getattr.obj->name, &ns)) return -1;
        if (ns.type != TV_NS)
            return tt_fail_at(c->t, target->pos, "cannot assign attribute on non-namespace object");
        tv key;
        if (tv_str_make(c->a, target->getattr.attr, strlen(target->getattr.attr), &key)) return -1;
        return tt_dict_set(c->a, ns.d, key, v);
    }
    /* a tuple of targets */
    tv_list *l;
    if (tv_iterate(c, target->pos, v, &l)) return -1;
    if (l->n != target->items.n)
        return tt_fail_at(c->t, target->pos, "%s values to unpack (expected %zu, got %zu)",
                          l->n > target->items.n ? "too many" : "not enough", target->items.n, l->n);
    for (size_t i = 0; i < l->n; i++)
        if (assign(c, sc, target->items.v[i], l->v[i])) return -1;
    return 0;
}

static int exec_for(tt_ctx *c, tt_scope *sc, const tt_node *s) {
    tv seq;
    tv_list *items;
    if (eval(c, sc, s->sfor.iter, &seq) || tv_iterate(c, s->sfor.iter->pos, seq, &items)) return -1;
    if (s->sfor.filter) {
        tv_list *kept = tt_list_new(c->a, 0);
        if (!kept) return -1;
        for (size_t i = 0; i < items->n; i++) {
            tt_scope *fs = scope_new(c, sc);
            tv t;
            if (!fs || assign(c, fs, s->sfor.target, items->v[i]) || eval(c, fs, s->sfor.filter, &t)) return -1;
            if (tv_truth(t) && tt_list_push(c->a, kept, items->v[i])) return -1;
        }
        items = kept;
    }
    if (items->n == 0) {
        tt_scope *es = scope_new(c, sc);
        if (!es) return -1;
        int rc = exec_body(c, es, s->sfor.els);
        return rc < 0 ? -1 : EX_OK;
    }
    tv_loop *lp = tt_zalloc(c->a, sizeof *lp);
    if (!lp) return -1;
    lp->items = items;
    tv loopv = {.type = TV_LOOP};
    loopv.loop = lp;
    for (size_t i = 0; i < items->n; i++) {
        lp->index0 = i;
        tt_scope *is = scope_new(c, sc);
        if (!is || assign(c, is, s->sfor.target, items->v[i]) || scope_set(c, is, "loop", loopv)) return -1;
        int rc = exec_body(c, is, s->sfor.body);
        if (rc < 0) return -1;
        if (rc == EX_BREAK) break;
    }
    return EX_OK;
}

static int exec_stmt(tt_ctx *c, tt_scope *sc, const tt_node *s) {
    tv v;
    switch (s->kind) {
    case S_TEXT: return tt_buf_put(c->out, s->text.s, s->text.n);
    case S_PRINT: {
        c->print_fold = 1;
        int rc = eval(c, sc, s->print, &v);
        c->print_fold = 0;
        if (rc) return -1;
        return output(c, v);
    }
    case S_IF:
        for (const tt_node *b = s; b; b = b->sif.els_if) {
            if (eval(c, sc, b->sif.test, &v)) return -1;
            if (tv_truth(v)) return exec_body(c, sc, b->sif.body);
            if (!b->sif.els_if) return exec_body(c, sc, b->sif.els);
        }
        return EX_OK;
    case S_FOR: return exec_for(c, sc, s);
    case S_SET:
        if (eval(c, sc, s->set.value, &v)) return -1;
        return assign(c, sc, s->set.target, v);
    case S_SETBLOCK: {
        tt_scope *bs = scope_new(c, sc);
        if (!bs) return -1;
        int rc = capture(c, bs, s->setblock.body, &v);
        if (rc) return rc;
        if (s->setblock.filter) {
            tv f;
            if (eval_filter(c, sc, s->setblock.filter, &v, &f)) return -1;
            v = f;
        }
        return assign(c, sc, s->setblock.target, v);
    }
    case S_MACRO: {
        tv_macro *m = tt_zalloc(c->a, sizeof *m);
        if (!m) return -1;
        m->node = s;
        m->closure = sc;
        v.type = TV_MACRO;
        v.m = m;
        return scope_set(c, sc, s->macro.name, v);
    }
    case S_CALLBLOCK: {
        const tt_node *call = s->callblock.call;
        tv fn, res;
        tt_args args;
        if (eval(c, sc, call->call.fn, &fn) || eval_args(c, sc, &call->call.ca, &args)) return -1;
        tv_macro *m = tt_zalloc(c->a, sizeof *m);
        if (!m) return -1;
        m->node = s->callblock.caller;
        m->closure = sc;
        tv cv = {.type = TV_MACRO};
        cv.m = m;
        size_t kcap = args.nkw;
        if (kw_push(c, &args, &kcap, "caller", cv)) return -1;
        if (tt_call_value(c, call->pos, fn, &args, &res)) return -1;
        return output(c, res);
    }
    case S_FILTERBLOCK: {
        tt_scope *bs = scope_new(c, sc);
        tv r;
        if (!bs) return -1;
        int rc = capture(c, bs, s->filterblock.body, &v);
        if (rc) return rc;
        if (eval_filter(c, sc, s->filterblock.filter, &v, &r)) return -1;
        return output(c, r);
    }
    case S_WITH: {
        tt_scope *ws = scope_new(c, sc);
        if (!ws) return -1;
        for (size_t i = 0; i < s->with.n; i++)
            if (eval(c, sc, s->with.values[i], &v) || assign(c, ws, s->with.targets[i], v)) return -1;
        return exec_body(c, ws, s->with.body);
    }
    case S_SCOPE: {
        tt_scope *bs = scope_new(c, sc);
        if (!bs) return -1;
        return exec_body(c, bs, s->scope);
    }
    case S_BREAK: return EX_BREAK;
    case S_CONTINUE: return EX_CONTINUE;
    default: return tt_fail_at(c->t, s->pos, "internal error: not a statement");
    }
}

static int exec_body(tt_ctx *c, tt_scope *sc, tt_nodes body) {
    for (size_t i = 0; i < body.n; i++) {
        int rc = exec_stmt(c, sc, body.v[i]);
        if (rc) return rc; /* error, break or continue */
    }
    return EX_OK;
}

/* ------------------------------------------------------------------ render */

char *tn_template_render(const tn_template *t, const tn_template_vars *v, size_t *len) {
    tt_arena arena = {0};
    arena.limit = (size_t)2 << 30;
    tt_buf out = {0};
    tt_ctx c = {0};
    c.t = t;
    c.a = &arena;
    c.out = &out;
    c.vars = v;
    if (v && v->have_time) c.now = v->now;
    else {
        time_t now = time(NULL);
        localtime_r(&now, &c.now);
    }
    c.top = scope_new(&c, NULL);
    int rc = c.top ? exec_body(&c, c.top, t->body) : -1;
    tt_arena_free(&arena);
    if (rc < 0) {
        tt_buf_free(&out);
        return NULL;
    }
    if (tt_buf_put(&out, "", 0)) {
        tt_buf_free(&out);
        return NULL;
    }
    if (len) *len = out.n;
    return out.p;
}
