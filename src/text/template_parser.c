/* template_parser.c - tokens -> syntax tree, following jinja2's parser
 * (precedence, the statements chat templates use, and its quirks: a
 * filter binds tighter than a unary minus's operand, `a if b` without else
 * is undefined, adjacent strings concatenate). Errors name line:column. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/template_internal.h"
#include "util/error.h"

typedef struct {
    tn_template *t;
    const tt_token *tok;
    size_t n, i;
    int depth;    /* expression nesting, against stack exhaustion */
    int in_loop;  /* break/continue allowed */
    int soft;     /* inside an if: unknown filters fail only when run */
    /* names a macro body uses, for varargs/kwargs/caller */
    int saw_varargs, saw_kwargs, saw_caller;
} parser;

static const tt_token *cur(parser *P) { return &P->tok[P->i < P->n ? P->i : P->n - 1]; }
static const tt_token *peek(parser *P, size_t k) {
    size_t j = P->i + k;
    return &P->tok[j < P->n ? j : P->n - 1];
}
static const tt_token *advance(parser *P) {
    const tt_token *t = cur(P);
    if (P->i < P->n - 1) P->i++;
    return t;
}

static int is_name(const tt_token *t, const char *name) {
    return t->type == TK_NAME && t->n == strlen(name) && !memcmp(t->s, name, t->n);
}

static const char *tok_desc(int type) {
    switch (type) {
    case TK_EOF: return "end of template";
    case TK_DATA: return "template data";
    case TK_VAR_BEGIN: return "begin of print statement";
    case TK_VAR_END: return "end of print statement";
    case TK_BLOCK_BEGIN: return "begin of statement block";
    case TK_BLOCK_END: return "end of statement block";
    case TK_NAME: return "name";
    case TK_STRING: return "string";
    case TK_INT: return "integer";
    case TK_FLOAT: return "float";
    case TK_ADD: return "+";
    case TK_SUB: return "-";
    case TK_MUL: return "*";
    case TK_DIV: return "/";
    case TK_FLOORDIV: return "//";
    case TK_POW: return "**";
    case TK_MOD: return "%";
    case TK_TILDE: return "~";
    case TK_LBRACKET: return "[";
    case TK_RBRACKET: return "]";
    case TK_LPAREN: return "(";
    case TK_RPAREN: return ")";
    case TK_LBRACE: return "{";
    case TK_RBRACE: return "}";
    case TK_EQ: return "==";
    case TK_NE: return "!=";
    case TK_GT: return ">";
    case TK_GTEQ: return ">=";
    case TK_LT: return "<";
    case TK_LTEQ: return "<=";
    case TK_ASSIGN: return "=";
    case TK_DOT: return ".";
    case TK_COLON: return ":";
    case TK_PIPE: return "|";
    case TK_COMMA: return ",";
    case TK_SEMICOLON: return ";";
    }
    return "token";
}

static int fail_got(parser *P, const char *expected) {
    const tt_token *t = cur(P);
    if (t->type == TK_NAME || t->type == TK_INT || t->type == TK_FLOAT)
        return tt_fail_at(P->t, t->pos, "unexpected '%.*s' (expected %s)", (int)(t->n > 40 ? 40 : t->n), t->s,
                          expected);
    if (t->type == TK_STRING) return tt_fail_at(P->t, t->pos, "unexpected string (expected %s)", expected);
    return tt_fail_at(P->t, t->pos, "unexpected '%s' (expected %s)", tok_desc(t->type), expected);
}

static int expect(parser *P, int type) {
    if (cur(P)->type != type) {
        char what[64];
        snprintf(what, sizeof what, "'%s'", tok_desc(type));
        return fail_got(P, what);
    }
    advance(P);
    return 0;
}

static tt_node *node(parser *P, int kind, uint32_t pos) {
    tt_node *n = tt_zalloc(&P->t->arena, sizeof *n);
    if (n) {
        n->kind = (uint8_t)kind;
        n->pos = pos;
    }
    return n;
}

static const char *intern(parser *P, const char *s, size_t n) {
    char *c = tt_alloc(&P->t->arena, n + 1);
    if (!c) return NULL;
    memcpy(c, s, n);
    c[n] = 0;
    return c;
}

/* growable node list */
typedef struct {
    tt_node **v;
    size_t n, cap;
} nlist;

static int nl_push(parser *P, nlist *l, tt_node *x) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        tt_node **v = tt_alloc(&P->t->arena, cap * sizeof *v);
        if (!v) return -1;
        if (l->n) memcpy(v, l->v, l->n * sizeof *v);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = x;
    return 0;
}

static tt_nodes nl_done(nlist *l) {
    tt_nodes r = {l->v, l->n};
    return r;
}

static tt_node *parse_expression(parser *P, int with_condexpr);
static tt_node *parse_unary(parser *P, int with_filter);
static tt_node *parse_primary(parser *P);
static tt_node *parse_postfix(parser *P, tt_node *n);
static tt_node *parse_filter_expr(parser *P, tt_node *n);
static tt_node *parse_tuple(parser *P, int simplified, int with_condexpr, const char *extra_end, int explicit_parens);

static int enter(parser *P) {
    if (++P->depth > TT_MAX_DEPTH) {
        tt_fail_at(P->t, cur(P)->pos, "nested too deeply (more than %d levels)", TT_MAX_DEPTH);
        return -1;
    }
    return 0;
}

static int parse_call_args(parser *P, tt_callargs *ca) {
    uint32_t at = cur(P)->pos;
    if (expect(P, TK_LPAREN)) return -1;
    nlist args = {0}, kwv = {0};
    const char **kwn = NULL;
    size_t nkw = 0, kwcap = 0;
    int require_comma = 0;
    memset(ca, 0, sizeof *ca);
    while (cur(P)->type != TK_RPAREN) {
        if (require_comma) {
            if (expect(P, TK_COMMA)) return -1;
            if (cur(P)->type == TK_RPAREN) break;
        }
        if (cur(P)->type == TK_MUL) {
            if (ca->star || ca->dstar) return tt_fail_at(P->t, at, "invalid syntax for function call expression");
            advance(P);
            if (!(ca->star = parse_expression(P, 1))) return -1;
        } else if (cur(P)->type == TK_POW) {
            if (ca->dstar) return tt_fail_at(P->t, at, "invalid syntax for function call expression");
            advance(P);
            if (!(ca->dstar = parse_expression(P, 1))) return -1;
        } else if (cur(P)->type == TK_NAME && peek(P, 1)->type == TK_ASSIGN) {
            if (ca->dstar) return tt_fail_at(P->t, at, "invalid syntax for function call expression");
            const tt_token *k = advance(P);
            advance(P);
            tt_node *v = parse_expression(P, 1);
            if (!v) return -1;
            if (nkw == kwcap) {
                size_t cap = kwcap ? kwcap * 2 : 4;
                const char **nk = tt_alloc(&P->t->arena, cap * sizeof *nk);
                if (!nk) return -1;
                if (nkw) memcpy(nk, kwn, nkw * sizeof *nk);
                kwn = nk;
                kwcap = cap;
            }
            if (!(kwn[nkw++] = intern(P, k->s, k->n)) || nl_push(P, &kwv, v)) return -1;
        } else {
            if (ca->star || ca->dstar || nkw)
                return tt_fail_at(P->t, cur(P)->pos, "invalid syntax for function call expression "
                                                      "(a positional argument after a keyword argument)");
            tt_node *v = parse_expression(P, 1);
            if (!v || nl_push(P, &args, v)) return -1;
        }
        require_comma = 1;
    }
    if (expect(P, TK_RPAREN)) return -1;
    ca->args = nl_done(&args);
    ca->nkw = nkw;
    ca->kwnames = kwn;
    ca->kwvals = kwv.v;
    return 0;
}

static const char *dotted_name(parser *P) {
    const tt_token *t = cur(P);
    if (t->type != TK_NAME) {
        fail_got(P, "a name");
        return NULL;
    }
    advance(P);
    char buf[256];
    size_t n = t->n < sizeof buf - 1 ? t->n : sizeof buf - 1;
    memcpy(buf, t->s, n);
    while (cur(P)->type == TK_DOT) {
        advance(P);
        const tt_token *u = cur(P);
        if (u->type != TK_NAME) {
            fail_got(P, "a name");
            return NULL;
        }
        advance(P);
        if (n + 1 + u->n < sizeof buf - 1) {
            buf[n++] = '.';
            memcpy(buf + n, u->s, u->n);
            n += u->n;
        }
    }
    return intern(P, buf, n);
}

static tt_node *parse_filter(parser *P, tt_node *arg, int start_inline) {
    while (cur(P)->type == TK_PIPE || start_inline) {
        if (!start_inline) advance(P);
        start_inline = 0;
        uint32_t at = cur(P)->pos;
        const char *name = dotted_name(P);
        if (!name) return NULL;
        tt_node *f = node(P, E_FILTER, at);
        if (!f) return NULL;
        f->filter.arg = arg;
        f->filter.fname = name;
        f->filter.id = tt_filter_id(name);
        if (f->filter.id == -2) {
            tt_fail_at(P->t, at, "filter '%s' is not supported by tune (see docs/templates.md)", name);
            return NULL;
        }
        if (f->filter.id < 0 && !P->soft) {
            tt_fail_at(P->t, at, "no filter named '%s'", name);
            return NULL;
        }
        if (cur(P)->type == TK_LPAREN && parse_call_args(P, &f->filter.ca)) return NULL;
        arg = f;
    }
    return arg;
}

static tt_node *parse_test(parser *P, tt_node *arg) {
    uint32_t at = advance(P)->pos; /* 'is' */
    int negated = 0;
    if (is_name(cur(P), "not")) {
        advance(P);
        negated = 1;
    }
    uint32_t name_at = cur(P)->pos;
    const char *name = dotted_name(P);
    if (!name) return NULL;
    tt_node *t = node(P, E_TEST, name_at);
    if (!t) return NULL;
    t->test.arg = arg;
    t->test.tname = name;
    t->test.id = tt_test_id(name);
    if (t->test.id == -2) {
        tt_fail_at(P->t, name_at, "test '%s' is not supported by tune (see docs/templates.md)", name);
        return NULL;
    }
    if (t->test.id < 0 && !P->soft) {
        tt_fail_at(P->t, name_at, "no test named '%s'", name);
        return NULL;
    }
    const tt_token *c = cur(P);
    if (c->type == TK_LPAREN) {
        if (parse_call_args(P, &t->test.ca)) return NULL;
    } else if ((c->type == TK_NAME || c->type == TK_STRING || c->type == TK_INT || c->type == TK_FLOAT ||
                c->type == TK_LPAREN || c->type == TK_LBRACKET || c->type == TK_LBRACE) &&
               !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
        if (is_name(c, "is")) {
            tt_fail_at(P->t, c->pos, "you cannot chain multiple tests with is");
            return NULL;
        }
        tt_node *a = parse_primary(P);
        if (!a || !(a = parse_postfix(P, a))) return NULL;
        tt_node **v = tt_alloc(&P->t->arena, sizeof *v);
        if (!v) return NULL;
        v[0] = a;
        t->test.ca.args.v = v;
        t->test.ca.args.n = 1;
    }
    if (negated) {
        tt_node *n = node(P, E_NOT, at);
        if (!n) return NULL;
        n->un = t;
        return n;
    }
    return t;
}

static tt_node *parse_subscribed(parser *P) {
    uint32_t at = cur(P)->pos;
    tt_node *parts[3] = {NULL, NULL, NULL};
    if (cur(P)->type == TK_COLON) {
        advance(P);
    } else {
        tt_node *e = parse_expression(P, 1);
        if (!e) return NULL;
        if (cur(P)->type != TK_COLON) return e;
        advance(P);
        parts[0] = e;
    }
    if (cur(P)->type != TK_COLON && cur(P)->type != TK_RBRACKET && cur(P)->type != TK_COMMA) {
        if (!(parts[1] = parse_expression(P, 1))) return NULL;
    }
    if (cur(P)->type == TK_COLON) {
        advance(P);
        if (cur(P)->type != TK_RBRACKET && cur(P)->type != TK_COMMA) {
            if (!(parts[2] = parse_expression(P, 1))) return NULL;
        }
    }
    tt_node *s = node(P, E_SLICE, at);
    if (!s) return NULL;
    s->slice.start = parts[0];
    s->slice.stop = parts[1];
    s->slice.step = parts[2];
    return s;
}

static tt_node *parse_subscript(parser *P, tt_node *obj) {
    const tt_token *t = advance(P);
    if (t->type == TK_DOT) {
        const tt_token *a = cur(P);
        if (a->type == TK_NAME) {
            advance(P);
            tt_node *g = node(P, E_GETATTR, t->pos);
            if (!g || !(g->getattr.attr = intern(P, a->s, a->n))) return NULL;
            g->getattr.obj = obj;
            return g;
        }
        if (a->type != TK_INT) {
            fail_got(P, "a name or number after '.'");
            return NULL;
        }
        advance(P);
        tt_node *k = node(P, E_CONST, a->pos), *g = node(P, E_GETITEM, t->pos);
        if (!k || !g) return NULL;
        k->cval = tv_int(a->i);
        g->getitem.obj = obj;
        g->getitem.key = k;
        return g;
    }
    /* '[' */
    nlist args = {0};
    while (cur(P)->type != TK_RBRACKET) {
        if (args.n && expect(P, TK_COMMA)) return NULL;
        tt_node *a = parse_subscribed(P);
        if (!a || nl_push(P, &args, a)) return NULL;
    }
    if (expect(P, TK_RBRACKET)) return NULL;
    if (args.n == 1 && args.v[0]->kind == E_SLICE) {
        args.v[0]->slice.obj = obj;
        return args.v[0];
    }
    tt_node *key;
    if (args.n == 1) key = args.v[0];
    else {
        for (size_t i = 0; i < args.n; i++)
            if (args.v[i]->kind == E_SLICE) {
                tt_fail_at(P->t, args.v[i]->pos, "slices inside a tuple subscript are not supported");
                return NULL;
            }
        if (!(key = node(P, E_TUPLE, t->pos))) return NULL;
        key->items = nl_done(&args);
    }
    tt_node *g = node(P, E_GETITEM, t->pos);
    if (!g) return NULL;
    g->getitem.obj = obj;
    g->getitem.key = key;
    return g;
}

static tt_node *parse_call(parser *P, tt_node *fn) {
    tt_node *c = node(P, E_CALL, cur(P)->pos);
    if (!c) return NULL;
    c->call.fn = fn;
    if (parse_call_args(P, &c->call.ca)) return NULL;
    return c;
}

static tt_node *parse_postfix(parser *P, tt_node *n) {
    for (;;) {
        int t = cur(P)->type;
        if (t == TK_DOT || t == TK_LBRACKET) n = parse_subscript(P, n);
        else if (t == TK_LPAREN) n = parse_call(P, n);
        else break;
        if (!n) return NULL;
    }
    return n;
}

static tt_node *parse_filter_expr(parser *P, tt_node *n) {
    for (;;) {
        const tt_token *t = cur(P);
        if (t->type == TK_PIPE) n = parse_filter(P, n, 0);
        else if (is_name(t, "is")) n = parse_test(P, n);
        else if (t->type == TK_LPAREN) n = parse_call(P, n);
        else break;
        if (!n) return NULL;
    }
    return n;
}

static tt_node *parse_list_or_dict(parser *P, int dict) {
    uint32_t at = advance(P)->pos;
    nlist keys = {0}, vals = {0};
    int close = dict ? TK_RBRACE : TK_RBRACKET;
    while (cur(P)->type != close) {
        if (vals.n && expect(P, TK_COMMA)) return NULL;
        if (cur(P)->type == close) break;
        if (dict) {
            tt_node *k = parse_expression(P, 1);
            if (!k || expect(P, TK_COLON)) return NULL;
            tt_node *v = parse_expression(P, 1);
            if (!v || nl_push(P, &keys, k) || nl_push(P, &vals, v)) return NULL;
        } else {
            tt_node *v = parse_expression(P, 1);
            if (!v || nl_push(P, &vals, v)) return NULL;
        }
    }
    if (expect(P, close)) return NULL;
    tt_node *n = node(P, dict ? E_DICT : E_LIST, at);
    if (!n) return NULL;
    if (dict) {
        n->dict.keys = nl_done(&keys);
        n->dict.vals = nl_done(&vals);
    } else
        n->items = nl_done(&vals);
    return n;
}

static tt_node *parse_primary(parser *P) {
    const tt_token *t = cur(P);
    tt_node *n;
    switch (t->type) {
    case TK_NAME:
        advance(P);
        if (is_name(t, "true") || is_name(t, "True") || is_name(t, "false") || is_name(t, "False")) {
            if (!(n = node(P, E_CONST, t->pos))) return NULL;
            n->cval = tv_bool(t->s[0] == 't' || t->s[0] == 'T');
        } else if (is_name(t, "none") || is_name(t, "None")) {
            if (!(n = node(P, E_CONST, t->pos))) return NULL;
            n->cval = tv_none();
        } else {
            if (!(n = node(P, E_NAME, t->pos)) || !(n->name = intern(P, t->s, t->n))) return NULL;
            if (!strcmp(n->name, "varargs")) P->saw_varargs = 1;
            else if (!strcmp(n->name, "kwargs")) P->saw_kwargs = 1;
            else if (!strcmp(n->name, "caller")) P->saw_caller = 1;
        }
        return n;
    case TK_STRING: {
        advance(P);
        tt_buf b = {0};
        if (tt_buf_put(&b, t->s, t->n)) return NULL;
        while (cur(P)->type == TK_STRING) {
            const tt_token *u = advance(P);
            if (tt_buf_put(&b, u->s, u->n)) {
                tt_buf_free(&b);
                return NULL;
            }
        }
        n = node(P, E_CONST, t->pos);
        tv_str *s = n ? tt_str_new(&P->t->arena, b.p ? b.p : "", b.n) : NULL;
        tt_buf_free(&b);
        if (!s) return NULL;
        n->cval.type = TV_STR;
        n->cval.s = s;
        return n;
    }
    case TK_INT:
    case TK_FLOAT:
        advance(P);
        if (!(n = node(P, E_CONST, t->pos))) return NULL;
        n->cval = t->type == TK_INT ? tv_int(t->i) : tv_float(t->f);
        return n;
    case TK_LPAREN:
        advance(P);
        n = parse_tuple(P, 0, 1, NULL, 1);
        if (!n || expect(P, TK_RPAREN)) return NULL;
        return n;
    case TK_LBRACKET: return parse_list_or_dict(P, 0);
    case TK_LBRACE: return parse_list_or_dict(P, 1);
    default: fail_got(P, "an expression"); return NULL;
    }
}

static tt_node *parse_unary(parser *P, int with_filter) {
    if (enter(P)) return NULL;
    const tt_token *t = cur(P);
    tt_node *n;
    if (t->type == TK_SUB || t->type == TK_ADD) {
        advance(P);
        tt_node *operand = parse_unary(P, 0);
        if (!operand || !(n = node(P, t->type == TK_SUB ? E_NEG : E_POS, t->pos))) return NULL;
        n->un = operand;
    } else {
        n = parse_primary(P);
    }
    if (n) n = parse_postfix(P, n);
    if (n && with_filter) n = parse_filter_expr(P, n);
    P->depth--;
    return n;
}

static tt_node *binop(parser *P, int kind, int op, uint32_t pos, tt_node *l, tt_node *r) {
    tt_node *n = node(P, kind, pos);
    if (!n) return NULL;
    n->op = (uint8_t)op;
    n->bin.l = l;
    n->bin.r = r;
    return n;
}

static tt_node *parse_pow(parser *P) {
    tt_node *l = parse_unary(P, 1);
    while (l && cur(P)->type == TK_POW) {
        uint32_t at = advance(P)->pos;
        tt_node *r = parse_unary(P, 1);
        l = r ? binop(P, E_BINOP, TK_POW, at, l, r) : NULL;
    }
    return l;
}

static tt_node *parse_math2(parser *P) {
    tt_node *l = parse_pow(P);
    for (;;) {
        int t = cur(P)->type;
        if (!l || (t != TK_MUL && t != TK_DIV && t != TK_FLOORDIV && t != TK_MOD)) return l;
        uint32_t at = advance(P)->pos;
        tt_node *r = parse_pow(P);
        l = r ? binop(P, E_BINOP, t, at, l, r) : NULL;
    }
}

static tt_node *parse_concat(parser *P) {
    tt_node *first = parse_math2(P);
    if (!first || cur(P)->type != TK_TILDE) return first;
    nlist items = {0};
    if (nl_push(P, &items, first)) return NULL;
    uint32_t at = cur(P)->pos;
    while (cur(P)->type == TK_TILDE) {
        advance(P);
        tt_node *x = parse_math2(P);
        if (!x || nl_push(P, &items, x)) return NULL;
    }
    tt_node *n = node(P, E_CONCAT, at);
    if (!n) return NULL;
    n->items = nl_done(&items);
    return n;
}

static tt_node *parse_math1(parser *P) {
    tt_node *l = parse_concat(P);
    for (;;) {
        int t = cur(P)->type;
        if (!l || (t != TK_ADD && t != TK_SUB)) return l;
        uint32_t at = advance(P)->pos;
        tt_node *r = parse_concat(P);
        l = r ? binop(P, E_BINOP, t, at, l, r) : NULL;
    }
}

static tt_node *parse_compare(parser *P) {
    uint32_t at = cur(P)->pos;
    tt_node *first = parse_math1(P);
    if (!first) return NULL;
    uint8_t ops[64];
    tt_node *rhs[64];
    size_t n = 0;
    for (;;) {
        const tt_token *t = cur(P);
        uint8_t op;
        if (t->type == TK_EQ || t->type == TK_NE || t->type == TK_GT || t->type == TK_GTEQ || t->type == TK_LT ||
            t->type == TK_LTEQ) {
            op = t->type;
            advance(P);
        } else if (is_name(t, "in")) {
            op = 'i';
            advance(P);
        } else if (is_name(t, "not") && is_name(peek(P, 1), "in")) {
            op = 'n';
            advance(P);
            advance(P);
        } else
            break;
        if (n == 64) {
            tt_fail_at(P->t, t->pos, "comparison chain too long");
            return NULL;
        }
        tt_node *r = parse_math1(P);
        if (!r) return NULL;
        ops[n] = op;
        rhs[n] = r;
        n++;
    }
    if (!n) return first;
    tt_node *c = node(P, E_COMPARE, at);
    if (!c) return NULL;
    c->cmp.first = first;
    c->cmp.n = n;
    c->cmp.ops = tt_alloc(&P->t->arena, n);
    c->cmp.rhs = tt_alloc(&P->t->arena, n * sizeof(tt_node *));
    if (!c->cmp.ops || !c->cmp.rhs) return NULL;
    memcpy(c->cmp.ops, ops, n);
    memcpy(c->cmp.rhs, rhs, n * sizeof(tt_node *));
    return c;
}

static tt_node *parse_not(parser *P) {
    if (is_name(cur(P), "not")) {
        if (enter(P)) return NULL;
        uint32_t at = advance(P)->pos;
        tt_node *x = parse_not(P);
        P->depth--;
        if (!x) return NULL;
        tt_node *n = node(P, E_NOT, at);
        if (n) n->un = x;
        return n;
    }
    return parse_compare(P);
}

static tt_node *parse_and(parser *P) {
    tt_node *l = parse_not(P);
    while (l && is_name(cur(P), "and")) {
        uint32_t at = advance(P)->pos;
        tt_node *r = parse_not(P);
        l = r ? binop(P, E_AND, 0, at, l, r) : NULL;
    }
    return l;
}

static tt_node *parse_or(parser *P) {
    tt_node *l = parse_and(P);
    while (l && is_name(cur(P), "or")) {
        uint32_t at = advance(P)->pos;
        tt_node *r = parse_and(P);
        l = r ? binop(P, E_OR, 0, at, l, r) : NULL;
    }
    return l;
}

static tt_node *parse_condexpr(parser *P) {
    if (enter(P)) return NULL;
    uint32_t at = cur(P)->pos;
    tt_node *e1 = parse_or(P);
    while (e1 && is_name(cur(P), "if")) {
        advance(P);
        tt_node *e2 = parse_or(P), *e3 = NULL;
        if (!e2) return NULL;
        if (is_name(cur(P), "else")) {
            advance(P);
            if (!(e3 = parse_condexpr(P))) return NULL;
        }
        tt_node *c = node(P, E_COND, at);
        if (!c) return NULL;
        c->cond.test = e2;
        c->cond.then = e1;
        c->cond.els = e3;
        e1 = c;
        at = cur(P)->pos;
    }
    P->depth--;
    return e1;
}

static tt_node *parse_expression(parser *P, int with_condexpr) {
    return with_condexpr ? parse_condexpr(P) : parse_or(P);
}

static int is_tuple_end(parser *P, const char *extra_end) {
    int t = cur(P)->type;
    if (t == TK_VAR_END || t == TK_BLOCK_END || t == TK_RPAREN) return 1;
    return extra_end && is_name(cur(P), extra_end);
}

static tt_node *parse_tuple(parser *P, int simplified, int with_condexpr, const char *extra_end, int explicit_parens) {
    uint32_t at = cur(P)->pos;
    nlist args = {0};
    int is_tuple = 0;
    for (;;) {
        if (args.n && expect(P, TK_COMMA)) return NULL;
        if (is_tuple_end(P, extra_end)) break;
        tt_node *x = simplified ? parse_primary(P) : parse_expression(P, with_condexpr);
        if (!x || nl_push(P, &args, x)) return NULL;
        if (cur(P)->type == TK_COMMA) is_tuple = 1;
        else break;
    }
    if (!is_tuple) {
        if (args.n) return args.v[0];
        if (!explicit_parens) {
            fail_got(P, "an expression");
            return NULL;
        }
    }
    tt_node *n = node(P, E_TUPLE, at);
    if (n) n->items = nl_done(&args);
    return n;
}

/* --------------------------------------------------------------- statements */

static int parse_body(parser *P, nlist *body, const char *const *ends);

/* An assignment target: a name, ns.attr (with_ns), or a tuple of those. */
static tt_node *parse_assign_target(parser *P, int with_ns, int name_only, const char *extra_end) {
    const tt_token *t = cur(P);
    if (name_only || (with_ns && peek(P, 1)->type == TK_DOT)) {
        if (t->type != TK_NAME) {
            fail_got(P, "a name");
            return NULL;
        }
        advance(P);
        tt_node *n = node(P, E_NAME, t->pos);
        if (!n || !(n->name = intern(P, t->s, t->n))) return NULL;
        if (!name_only && cur(P)->type == TK_DOT) {
            advance(P);
            const tt_token *a = cur(P);
            if (a->type != TK_NAME) {
                fail_got(P, "an attribute name");
                return NULL;
            }
            advance(P);
            tt_node *g = node(P, E_GETATTR, t->pos);
            if (!g || !(g->getattr.attr = intern(P, a->s, a->n))) return NULL;
            g->getattr.obj = n;
            return g;
        }
        return n;
    }
    /* parse_tuple(simplified=True) with names (and ns.attr) only */
    uint32_t at = t->pos;
    nlist items = {0};
    int is_tuple = 0;
    for (;;) {
        if (items.n && expect(P, TK_COMMA)) return NULL;
        if (is_tuple_end(P, extra_end) || cur(P)->type == TK_ASSIGN) break;
        tt_node *x;
        if (cur(P)->type == TK_NAME && (with_ns && peek(P, 1)->type == TK_DOT)) x = parse_assign_target(P, 1, 0, NULL);
        else {
            x = parse_primary(P);
            if (x && x->kind != E_NAME) {
                tt_fail_at(P->t, x->pos, "can't assign to this expression (expected a name)");
                return NULL;
            }
        }
        if (!x || nl_push(P, &items, x)) return NULL;
        if (cur(P)->type == TK_COMMA) is_tuple = 1;
        else break;
    }
    if (!is_tuple) {
        if (items.n) return items.v[0];
        fail_got(P, "a name");
        return NULL;
    }
    tt_node *n = node(P, E_TUPLE, at);
    if (n) n->items = nl_done(&items);
    return n;
}

static int end_block(parser *P) { return expect(P, TK_BLOCK_END); }

/* Parses statements up to a block whose first name is in ends; leaves the
 * stream at that name. */
static int parse_statements(parser *P, nlist *body, const char *const *ends) {
    if (cur(P)->type == TK_COLON) advance(P);
    if (end_block(P)) return -1;
    if (parse_body(P, body, ends)) return -1;
    if (cur(P)->type == TK_EOF) {
        char want[160] = "";
        for (int i = 0; ends && ends[i]; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s'%s'", i ? (ends[i + 1] ? ", " : " or ") : "",
                     ends[i]);
        return tt_fail_at(P->t, cur(P)->pos, "unexpected end of template (expected %s)", want);
    }
    return 0;
}

static int parse_signature(parser *P, tt_node *m) {
    if (expect(P, TK_LPAREN)) return -1;
    size_t cap = 0;
    while (cur(P)->type != TK_RPAREN) {
        if (m->macro.nparams && expect(P, TK_COMMA)) return -1;
        tt_node *a = parse_assign_target(P, 0, 1, NULL);
        if (!a) return -1;
        tt_node *def = NULL;
        if (cur(P)->type == TK_ASSIGN) {
            advance(P);
            if (!(def = parse_expression(P, 1))) return -1;
        } else if (m->macro.nparams && m->macro.defaults[m->macro.nparams - 1])
            return tt_fail_at(P->t, a->pos, "non-default argument follows default argument");
        if (m->macro.nparams == cap) {
            size_t nc = cap ? cap * 2 : 4;
            const char **np = tt_alloc(&P->t->arena, nc * sizeof *np);
            tt_node **nd = tt_alloc(&P->t->arena, nc * sizeof *nd);
            if (!np || !nd) return -1;
            if (cap) {
                memcpy(np, m->macro.params, cap * sizeof *np);
                memcpy(nd, m->macro.defaults, cap * sizeof *nd);
            }
            m->macro.params = np;
            m->macro.defaults = nd;
            cap = nc;
        }
        m->macro.params[m->macro.nparams] = a->name;
        m->macro.defaults[m->macro.nparams] = def;
        m->macro.nparams++;
    }
    return expect(P, TK_RPAREN);
}

/* body of a macro or call block: own loop and name tracking */
static int parse_macro_body(parser *P, tt_node *m, const char *end) {
    int sl = P->in_loop, ss = P->soft, sv = P->saw_varargs, sk = P->saw_kwargs, sc = P->saw_caller;
    P->in_loop = 0;
    P->soft = 0;
    P->saw_varargs = P->saw_kwargs = P->saw_caller = 0;
    const char *ends[] = {end, NULL};
    nlist body = {0};
    if (parse_statements(P, &body, ends)) return -1;
    advance(P);
    m->macro.body = nl_done(&body);
    m->macro.uses_varargs = P->saw_varargs;
    m->macro.uses_kwargs = P->saw_kwargs;
    m->macro.uses_caller = P->saw_caller;
    P->in_loop = sl;
    P->soft = ss;
    P->saw_varargs = sv | P->saw_varargs;
    P->saw_kwargs = sk | P->saw_kwargs;
    P->saw_caller = sc | P->saw_caller;
    return 0;
}

static tt_node *parse_statement_inner(parser *P);

/* Statements nest through recursion: deep nesting is refused. */
static tt_node *parse_statement(parser *P) {
    if (enter(P)) return NULL;
    tt_node *n = parse_statement_inner(P);
    P->depth--;
    return n;
}

static tt_node *parse_statement_inner(parser *P) {
    const tt_token *t = cur(P);
    if (t->type != TK_NAME) {
        fail_got(P, "a statement name");
        return NULL;
    }
    uint32_t at = t->pos;
    tt_node *n;
    if (is_name(t, "if")) {
        tt_node *top = NULL, *last = NULL;
        for (;;) {
            advance(P); /* if / elif */
            tt_node *c = node(P, S_IF, at);
            if (!c || !(c->sif.test = parse_tuple(P, 0, 0, NULL, 0))) return NULL;
            const char *ends[] = {"elif", "else", "endif", NULL};
            nlist body = {0};
            int ss = P->soft;
            P->soft = 1;
            if (parse_statements(P, &body, ends)) return NULL;
            c->sif.body = nl_done(&body);
            if (last) last->sif.els_if = c;
            else top = c;
            last = c;
            if (is_name(cur(P), "elif")) {
                at = cur(P)->pos;
                P->soft = ss;
                continue;
            }
            if (is_name(cur(P), "else")) {
                advance(P);
                const char *ends2[] = {"endif", NULL};
                nlist els = {0};
                if (parse_statements(P, &els, ends2)) return NULL;
                c->sif.els = nl_done(&els);
            }
            P->soft = ss;
            advance(P); /* endif */
            return top;
        }
    }
    if (is_name(t, "for")) {
        advance(P);
        if (!(n = node(P, S_FOR, at))) return NULL;
        if (!(n->sfor.target = parse_assign_target(P, 0, 0, "in"))) return NULL;
        if (!is_name(cur(P), "in")) {
            fail_got(P, "'in'");
            return NULL;
        }
        advance(P);
        if (!(n->sfor.iter = parse_tuple(P, 0, 0, "recursive", 0))) return NULL;
        if (is_name(cur(P), "if")) {
            advance(P);
            if (!(n->sfor.filter = parse_expression(P, 1))) return NULL;
        }
        if (is_name(cur(P), "recursive")) {
            tt_fail_at(P->t, cur(P)->pos, "recursive loops are not supported by tune");
            return NULL;
        }
        int sl = P->in_loop, ss = P->soft;
        P->in_loop = 1;
        P->soft = 0;
        const char *ends[] = {"endfor", "else", NULL};
        nlist body = {0};
        if (parse_statements(P, &body, ends)) return NULL;
        n->sfor.body = nl_done(&body);
        P->in_loop = sl;
        if (is_name(cur(P), "else")) {
            advance(P);
            const char *ends2[] = {"endfor", NULL};
            nlist els = {0};
            if (parse_statements(P, &els, ends2)) return NULL;
            n->sfor.els = nl_done(&els);
        }
        P->soft = ss;
        advance(P);
        return n;
    }
    if (is_name(t, "set")) {
        advance(P);
        tt_node *target = parse_assign_target(P, 1, 0, NULL);
        if (!target) return NULL;
        if (cur(P)->type == TK_ASSIGN) {
            advance(P);
            if (!(n = node(P, S_SET, at))) return NULL;
            n->set.target = target;
            if (!(n->set.value = parse_tuple(P, 0, 1, NULL, 0))) return NULL;
            return n;
        }
        if (!(n = node(P, S_SETBLOCK, at))) return NULL;
        n->setblock.target = target;
        if (cur(P)->type == TK_PIPE) {
            if (!(n->setblock.filter = parse_filter(P, NULL, 0))) return NULL;
        }
        const char *ends[] = {"endset", NULL};
        nlist body = {0};
        if (parse_statements(P, &body, ends)) return NULL;
        advance(P);
        n->setblock.body = nl_done(&body);
        return n;
    }
    if (is_name(t, "macro")) {
        advance(P);
        if (!(n = node(P, S_MACRO, at))) return NULL;
        const tt_token *nm = cur(P);
        if (nm->type != TK_NAME) {
            fail_got(P, "a macro name");
            return NULL;
        }
        advance(P);
        if (!(n->macro.name = intern(P, nm->s, nm->n))) return NULL;
        if (parse_signature(P, n) || parse_macro_body(P, n, "endmacro")) return NULL;
        return n;
    }
    if (is_name(t, "call")) {
        advance(P);
        tt_node *caller = node(P, S_MACRO, at);
        if (!caller || !(n = node(P, S_CALLBLOCK, at))) return NULL;
        if (cur(P)->type == TK_LPAREN && parse_signature(P, caller)) return NULL;
        tt_node *call = parse_expression(P, 1);
        if (!call) return NULL;
        if (call->kind != E_CALL) {
            tt_fail_at(P->t, call->pos, "expected a call after {%% call %%}");
            return NULL;
        }
        n->callblock.call = call;
        n->callblock.caller = caller;
        if (parse_macro_body(P, caller, "endcall")) return NULL;
        return n;
    }
    if (is_name(t, "filter")) {
        advance(P);
        if (!(n = node(P, S_FILTERBLOCK, at))) return NULL;
        if (!(n->filterblock.filter = parse_filter(P, NULL, 1))) return NULL;
        const char *ends[] = {"endfilter", NULL};
        nlist body = {0};
        if (parse_statements(P, &body, ends)) return NULL;
        advance(P);
        n->filterblock.body = nl_done(&body);
        return n;
    }
    if (is_name(t, "with")) {
        advance(P);
        if (!(n = node(P, S_WITH, at))) return NULL;
        nlist targets = {0}, values = {0};
        while (cur(P)->type != TK_BLOCK_END) {
            if (targets.n && expect(P, TK_COMMA)) return NULL;
            tt_node *tg = parse_assign_target(P, 0, 0, NULL);
            if (!tg || expect(P, TK_ASSIGN)) return NULL;
            tt_node *v = parse_expression(P, 1);
            if (!v || nl_push(P, &targets, tg) || nl_push(P, &values, v)) return NULL;
        }
        n->with.n = targets.n;
        n->with.targets = targets.v;
        n->with.values = values.v;
        const char *ends[] = {"endwith", NULL};
        nlist body = {0};
        if (parse_statements(P, &body, ends)) return NULL;
        advance(P);
        n->with.body = nl_done(&body);
        return n;
    }
    if (is_name(t, "generation")) { /* transformers' AssistantTracker: the body, as a call block's */
        advance(P);
        if (!(n = node(P, S_SCOPE, at))) return NULL;
        const char *ends[] = {"endgeneration", NULL};
        nlist body = {0};
        int sl = P->in_loop;
        P->in_loop = 0; /* the body is a function: no break out of it */
        int rc = parse_statements(P, &body, ends);
        P->in_loop = sl;
        if (rc) return NULL;
        advance(P);
        n->scope = nl_done(&body);
        return n;
    }
    if (is_name(t, "print")) {
        advance(P);
        if (!(n = node(P, S_PRINT, at)) || !(n->print = parse_tuple(P, 0, 1, NULL, 0))) return NULL;
        return n;
    }
    if (is_name(t, "break") || is_name(t, "continue")) {
        if (!P->in_loop) {
            tt_fail_at(P->t, at, "'%.*s' outside of a loop", (int)t->n, t->s);
            return NULL;
        }
        advance(P);
        return node(P, t->s[0] == 'b' ? S_BREAK : S_CONTINUE, at);
    }
    static const char *const unsupported[] = {"block", "extends", "include", "import", "from", "autoescape",
                                              "do", "trans", "pluralize", NULL};
    for (int i = 0; unsupported[i]; i++)
        if (is_name(t, unsupported[i])) {
            tt_fail_at(P->t, at, "the '%s' tag is not supported by tune (see docs/templates.md)", unsupported[i]);
            return NULL;
        }
    tt_fail_at(P->t, at, "unknown tag '%.*s'", (int)(t->n > 40 ? 40 : t->n), t->s);
    return NULL;
}

static int at_end(parser *P, const char *const *ends) {
    if (!ends) return 0;
    for (int i = 0; ends[i]; i++)
        if (is_name(cur(P), ends[i])) return 1;
    return 0;
}

static int parse_body(parser *P, nlist *body, const char *const *ends) {
    for (;;) {
        const tt_token *t = cur(P);
        if (t->type == TK_EOF) return 0;
        if (t->type == TK_DATA) {
            advance(P);
            tt_node *n = node(P, S_TEXT, t->pos);
            if (!n) return -1;
            n->text.s = t->s;
            n->text.n = t->n;
            if (nl_push(P, body, n)) return -1;
        } else if (t->type == TK_VAR_BEGIN) {
            advance(P);
            tt_node *n = node(P, S_PRINT, t->pos);
            if (!n || !(n->print = parse_tuple(P, 0, 1, NULL, 0)) || expect(P, TK_VAR_END) || nl_push(P, body, n))
                return -1;
        } else if (t->type == TK_BLOCK_BEGIN) {
            advance(P);
            if (at_end(P, ends)) return 0;
            tt_node *n = parse_statement(P);
            if (!n || end_block(P) || nl_push(P, body, n)) return -1;
        } else {
            return fail_got(P, "template data or a tag");
        }
    }
}

int tt_parse(tn_template *t, const tt_tokens *toks) {
    parser P = {0};
    P.t = t;
    P.tok = toks->v;
    P.n = toks->n;
    nlist body = {0};
    if (parse_body(&P, &body, NULL)) return -1;
    if (cur(&P)->type != TK_EOF) return fail_got(&P, "end of template");
    t->body = nl_done(&body);
    return 0;
}
