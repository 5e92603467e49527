/* template_internal.h - what the pieces of the chat-template interpreter
 * share: the arena, values, tokens, the syntax tree and the render context.
 *
 * The interpreter follows Python's jinja2 (3.1) as Hugging Face configures
 * it for chat templates: ImmutableSandboxedEnvironment, trim_blocks,
 * lstrip_blocks, the loopcontrols extension, and the globals
 * raise_exception / strftime_now and HF's tojson filter. Values follow
 * Python's semantics (str() and repr(), ==, truthiness, int/float
 * arithmetic), because a rendered prompt must be byte-identical to what
 * jinja2 prints.
 *
 * Pieces (one file each):
 *   template_value.c    arena, strings, lists, dicts, Python str()/repr(),
 *                       equality, ordering, truthiness
 *   template_lexer.c    source -> tokens (whitespace control as jinja2 does)
 *   template_parser.c   tokens -> syntax tree (errors with line:column)
 *   template_eval.c     the tree walker: scopes, statements, expressions
 *   template_builtins.c filters, tests and global functions
 *   template_methods.c  str / dict / list methods, %-formatting, str.format
 *   template_json.c     JSON text -> values, and json.dumps (tojson)
 *   template.c          the public interface (template.h)
 *
 * Memory: a compiled template owns an arena (tokens, tree, constants); each
 * render owns an arena for every value it makes and frees it at the end.
 * Values handed in by the caller (tn_template_vars) live in their own arena
 * and are never modified (the sandbox is immutable), so one set of
 * variables can be rendered many times, from several threads. */
#ifndef TUNE_TEMPLATE_INTERNAL_H
#define TUNE_TEMPLATE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "text/template.h"

/* ---------------------------------------------------------------- arena */

typedef struct tt_block tt_block;
typedef struct {
    tt_block *head;
    size_t total; /* bytes handed out */
    size_t limit; /* 0: none; else allocations past it fail */
} tt_arena;

/* 16-byte aligned, uninitialised; NULL (with tn_fail) past the limit or
 * when memory runs out. */
void *tt_alloc(tt_arena *a, size_t n);
void *tt_zalloc(tt_arena *a, size_t n);
void tt_arena_free(tt_arena *a);

/* A growable byte buffer on the heap (output, string building). */
typedef struct {
    char *p;
    size_t n, cap;
} tt_buf;

int tt_buf_put(tt_buf *b, const char *s, size_t n);
int tt_buf_putc(tt_buf *b, char c);
int tt_buf_puts(tt_buf *b, const char *s);
int tt_buf_printf(tt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int tt_buf_put_cp(tt_buf *b, uint32_t cp); /* one code point as UTF-8 */
void tt_buf_free(tt_buf *b);

/* --------------------------------------------------------------- values */

typedef enum {
    TV_UNDEF,  /* jinja2's Undefined: prints "", falsy, iterates empty */
    TV_NONE,
    TV_BOOL,
    TV_INT,    /* Python int, kept in 64 bits (overflow is an error) */
    TV_FLOAT,
    TV_STR,
    TV_LIST,
    TV_TUPLE,
    TV_DICT,   /* insertion-ordered, as Python's dict */
    TV_ITER,   /* generators, reversed(), dict views, range */
    TV_NS,     /* namespace(): the one mutable object */
    TV_MACRO,
    TV_FUNC,   /* a global function or a bound method */
    TV_LOOP,   /* the `loop` variable of a for loop */
} tv_type;

typedef struct tv_str tv_str;
typedef struct tv_list tv_list;
typedef struct tv_dict tv_dict;
typedef struct tv_iter tv_iter;
typedef struct tv_undef tv_undef;
typedef struct tv_macro tv_macro;
typedef struct tv_func tv_func;
typedef struct tv_loop tv_loop;

typedef struct tv {
    uint8_t type;
    union {
        int b;
        int64_t i;
        double f;
        tv_str *s;
        tv_list *l;   /* TV_LIST, TV_TUPLE */
        tv_dict *d;   /* TV_DICT, TV_NS */
        tv_iter *it;
        tv_undef *u;  /* may be NULL: an anonymous undefined */
        tv_macro *m;
        tv_func *fn;
        tv_loop *loop;
    };
} tv;

struct tv_str {
    size_t len;     /* bytes */
    size_t ncp;     /* code points (Python's len) */
    uint8_t markup; /* markupsafe's Markup (from |safe, |e): + and % escape the other side */
    char s[];       /* UTF-8, NUL-terminated */
};

struct tv_list {
    size_t n, cap;
    tv *v;
};

struct tv_dict {
    size_t n, cap;
    tv *k, *v;
};

typedef enum {
    TI_GENERATOR, /* select/map/... : truthy, no len, consumed once */
    TI_REVERSED,  /* reversed(list): as a generator */
    TI_KEYS,      /* dict views: len, truthy when not empty */
    TI_VALUES,
    TI_ITEMS,
    TI_RANGE,
} tv_iter_kind;

struct tv_iter {
    int kind;
    tv_list *items; /* materialised items */
    size_t pos;     /* generators: items before pos are consumed */
    int64_t start, stop, step; /* range, for repr */
    const char *gen_name;      /* generator's function, for repr */
    const char *error;         /* generators: raised once the items run out */
};

/* Why a value is undefined, for the error raised when it is used. */
struct tv_undef {
    const char *name;  /* variable or attribute name, or NULL */
    const char *owner; /* "dict object" ..., NULL for a variable */
    int64_t index;     /* for "has no element N" (owner set, name NULL) */
    const char *hint;  /* a full message that replaces the above */
    int unsafe;        /* sandbox: calling it is a security error */
};

/* --------------------------------------------------------------- tokens */

typedef enum {
    TK_EOF,
    TK_DATA,
    TK_VAR_BEGIN,
    TK_VAR_END,
    TK_BLOCK_BEGIN,
    TK_BLOCK_END,
    TK_NAME,
    TK_STRING,
    TK_INT,
    TK_FLOAT,
    /* operators */
    TK_ADD, TK_SUB, TK_MUL, TK_DIV, TK_FLOORDIV, TK_POW, TK_MOD, TK_TILDE,
    TK_LBRACKET, TK_RBRACKET, TK_LPAREN, TK_RPAREN, TK_LBRACE, TK_RBRACE,
    TK_EQ, TK_NE, TK_GT, TK_GTEQ, TK_LT, TK_LTEQ,
    TK_ASSIGN, TK_DOT, TK_COLON, TK_PIPE, TK_COMMA, TK_SEMICOLON,
} tt_tok_type;

typedef struct {
    uint8_t type;
    uint32_t pos;  /* byte offset in the (newline-normalised) source */
    const char *s; /* NAME: in the source; STRING/DATA: decoded (arena) */
    size_t n;
    int64_t i;
    double f;
} tt_token;

typedef struct {
    tt_token *v;
    size_t n, cap;
} tt_tokens;

/* ----------------------------------------------------------------- tree */

typedef enum {
    /* expressions */
    E_CONST, E_NAME, E_GETATTR, E_GETITEM, E_SLICE, E_CALL, E_FILTER, E_TEST,
    E_BINOP, E_CONCAT, E_COMPARE, E_AND, E_OR, E_NOT, E_NEG, E_POS, E_COND,
    E_LIST, E_TUPLE, E_DICT,
    /* statements */
    S_TEXT, S_PRINT, S_IF, S_FOR, S_SET, S_SETBLOCK, S_MACRO, S_CALLBLOCK,
    S_FILTERBLOCK, S_WITH, S_BREAK, S_CONTINUE, S_SCOPE,
} tt_node_kind;

typedef struct tt_node tt_node;

typedef struct {
    tt_node **v;
    size_t n;
} tt_nodes;

/* Arguments of a call, filter or test. */
typedef struct {
    tt_nodes args;
    size_t nkw;
    const char **kwnames;
    tt_node **kwvals;
    tt_node *star;     /* *args */
    tt_node *dstar;    /* **kwargs */
} tt_callargs;

struct tt_node {
    uint8_t kind;
    uint8_t op;   /* BINOP: TK_*; COMPARE: unused; FILTER/TEST: unused */
    uint8_t literal; /* expression of constants only (see template_eval.c) */
    uint32_t pos; /* byte offset, for line:column */
    union {
        tv cval;                                   /* E_CONST */
        const char *name;                          /* E_NAME */
        struct { tt_node *obj; const char *attr; } getattr;
        struct { tt_node *obj, *key; } getitem;
        struct { tt_node *obj, *start, *stop, *step; } slice;
        struct { tt_node *fn; tt_callargs ca; } call;
        struct { tt_node *arg; int id; const char *fname; tt_callargs ca; } filter; /* arg NULL: filter block */
        struct { tt_node *arg; int id; const char *tname; tt_callargs ca; } test;
        struct { tt_node *l, *r; } bin;           /* BINOP, AND, OR */
        tt_node *un;                               /* NOT, NEG, POS */
        struct { tt_node *first; size_t n; uint8_t *ops; tt_node **rhs; } cmp; /* ops: TK_EQ.., or 'i' in, 'n' not in */
        struct { tt_node *test, *then, *els; } cond; /* els may be NULL */
        tt_nodes items;                            /* CONCAT, LIST, TUPLE */
        struct { tt_nodes keys, vals; } dict;
        /* statements */
        struct { const char *s; size_t n; } text;
        tt_node *print;
        struct { tt_node *test; tt_nodes body; tt_node *els_if; tt_nodes els; } sif; /* elif chain through els_if */
        struct {
            tt_node *target, *iter, *filter;
            tt_nodes body, els;
            int recursive;
        } sfor;
        struct { tt_node *target; tt_node *value; } set;    /* target: NAME, TUPLE of NAME, or GETATTR (namespace) */
        struct { tt_node *target; tt_node *filter; tt_nodes body; } setblock;
        struct {
            const char *name;
            size_t nparams;
            const char **params;
            tt_node **defaults; /* NULL where none */
            tt_nodes body;
            int uses_varargs, uses_kwargs, uses_caller;
        } macro;                                    /* S_MACRO; also a call block's caller */
        struct { tt_node *call; tt_node *caller; } callblock; /* caller: an S_MACRO node */
        struct { tt_node *filter; tt_nodes body; } filterblock; /* filter: chain of E_FILTER, innermost arg NULL */
        struct { size_t n; tt_node **targets; tt_node **values; tt_nodes body; } with;
        tt_nodes scope;                             /* S_SCOPE: body in its own scope ({% generation %}) */
    };
};

/* ----------------------------------------------------- compiled template */

struct tn_template {
    char *name;     /* for messages: "DIR/tokenizer_config.json (chat_template)" */
    char *src;      /* normalised source */
    size_t n;
    tt_arena arena; /* tokens, tree, constants */
    tt_nodes body;
};

/* line:column (1-based, column in characters) of a byte offset. */
void tt_line_col(const char *src, size_t n, uint32_t pos, int *line, int *col);
/* tn_fail("NAME:LINE:COL: message") */
int tt_fail_at(const tn_template *t, uint32_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

int tt_lex(tn_template *t, tt_tokens *out);
int tt_parse(tn_template *t, const tt_tokens *toks);
/* Marks the expressions jinja2's optimizer folds (node->literal). */
void tt_mark_literals(tt_nodes body);

/* Filters and tests are resolved when the template is compiled (jinja2
 * refuses an unknown name at compile time too). Returns the id, or -1 when
 * jinja2 has no such filter, or -2 when jinja2 has it but tune does not. */
int tt_filter_id(const char *name);
int tt_test_id(const char *name);

/* --------------------------------------------------------------- render */

typedef struct tt_scope tt_scope;
struct tt_scope {
    tt_scope *parent; /* NULL: the template's top level */
    size_t n, cap;
    const char **names;
    tv *vals;
};

struct tn_template_vars {
    tt_arena arena;
    size_t n, cap;
    const char **names;
    tv *vals;
    int have_time;
    struct tm now;
};

/* Sets a variable to a value made in v->arena. */
int tt_vars_set_value(tn_template_vars *v, const char *name, tv val);

typedef struct {
    const tn_template *t;
    tt_arena *a;
    tt_buf *out;
    tt_scope *top;
    const tn_template_vars *vars;
    struct tm now;
    int depth;   /* macro nesting, to stop runaway recursion */
    int folding;    /* evaluating constants as jinja2 does at compile time */
    int print_fold; /* ... for a whole {{ }}: any value is kept */
} tt_ctx;

/* Evaluated arguments of a call. */
typedef struct {
    size_t n;
    tv *v;
    size_t nkw;
    const char **kwn;
    tv *kwv;
} tt_args;

/* struct tv_func: ids are TF_* below. */
struct tv_func {
    int id;
    tv self;    /* bound methods: the object */
    int state;  /* joiner: used yet */
    tv_str *sep;
    const char *name; /* methods: the attribute name */
};

struct tv_macro {
    const tt_node *node;   /* S_MACRO */
    tt_scope *closure;     /* where it was defined */
    const tv_macro *caller; /* call block: the caller passed in */
};

struct tv_loop {
    tv_list *items;
    size_t index0;
    tv last_changed;
    int changed_set;
};

/* Global functions and methods. */
enum {
    TF_RANGE = 1, TF_DICT, TF_NAMESPACE, TF_RAISE, TF_STRFTIME, TF_JOINER, TF_JOINER_CALL,
    TF_CYCLER_UNSUPPORTED, TF_LIPSUM_UNSUPPORTED,
    TF_LOOP_CYCLE, TF_LOOP_CHANGED,
    TF_METHOD_BASE = 100, /* + tt_method ids (template_methods.c) */
};

/* values: constructors (arena of the context) */
tv tv_undef_named(tt_ctx *c, const char *name);
tv tv_undef_attr(tt_ctx *c, const char *owner, const char *attr);
tv tv_undef_hint(tt_ctx *c, const char *hint);
tv tv_bool(int b);
tv tv_int(int64_t i);
tv tv_float(double f);
tv tv_none(void);
tv_str *tt_str_new(tt_arena *a, const char *s, size_t n);
int tv_str_make(tt_arena *a, const char *s, size_t n, tv *out);
/* Markup(s): s itself when it is one already, else a marked copy */
tv_str *tt_markup(tt_arena *a, tv_str *s);
/* markupsafe.escape(s) for a string: s when Markup, else HTML-escaped Markup */
tv_str *tt_escape(tt_arena *a, tv_str *s);
tv_list *tt_list_new(tt_arena *a, size_t cap);
int tt_list_push(tt_arena *a, tv_list *l, tv v);
tv_dict *tt_dict_new(tt_arena *a, size_t cap);
/* Sets d[k] = v (replacing an equal key's value in place). */
int tt_dict_set(tt_arena *a, tv_dict *d, tv k, tv v);
/* Returns the index of a key equal to k, or -1. */
long tt_dict_find(const tv_dict *d, tv k);
long tt_dict_find_str(const tv_dict *d, const char *s, size_t n);

/* Python semantics */
const char *tv_type_name(tv v); /* "str", "int", "dict", ... as Python names them */
int tv_truth(tv v);
int tv_eq(tv a, tv b);
/* <0, 0, >0 in *r; -1 with an error when Python refuses to order them. */
int tv_cmp(tt_ctx *c, uint32_t pos, tv a, tv b, int *r);
/* str(v) and repr(v) appended to b */
int tv_str_append(tt_buf *b, tv v);
int tv_repr_append(tt_buf *b, tv v);
/* str(v) as a string value */
int tv_to_str(tt_ctx *c, tv v, tv_str **out);
void tt_fmt_float(double x, char out[40]);
/* The error for using an undefined value ("'x' is undefined"). */
int tv_undef_fail(tt_ctx *c, uint32_t pos, tv v);

/* UTF-8 helpers */
size_t tt_utf8_count(const char *s, size_t n);
/* byte offset of the first occurrence of nd in h, or -1 (memmem) */
long tt_find(const char *h, size_t hn, const char *nd, size_t nn);
/* decode one code point at s (n bytes left); sets *len; invalid bytes -> U+FFFD, len 1 */
uint32_t tt_utf8_next(const char *s, size_t n, size_t *len);
/* byte offset of code point index i (i <= ncp) */
size_t tt_utf8_offset(const tv_str *s, size_t i);
int tt_py_isspace(uint32_t cp);

/* Iteration: materialises anything iterable as a list (consuming a
 * generator). Undefined iterates empty. Errors for non-iterables. */
int tv_iterate(tt_ctx *c, uint32_t pos, tv v, tv_list **out);
/* len(v), or an error */
int tv_len(tt_ctx *c, uint32_t pos, tv v, int64_t *out);
/* `needle in hay` */
int tv_contains(tt_ctx *c, uint32_t pos, tv hay, tv needle, int *out);

/* Attribute and item access as the sandbox does it. */
int tt_getattr(tt_ctx *c, uint32_t pos, tv obj, const char *attr, tv *out);
int tt_getitem(tt_ctx *c, uint32_t pos, tv obj, tv key, tv *out);
int tt_slice(tt_ctx *c, uint32_t pos, tv obj, tv start, tv stop, tv step, tv *out);

/* evaluator entry points used by builtins */
int tt_call_value(tt_ctx *c, uint32_t pos, tv fn, tt_args *a, tv *out);
int tt_call_filter(tt_ctx *c, uint32_t pos, int id, tv in, tt_args *a, tv *out);
int tt_call_test(tt_ctx *c, uint32_t pos, int id, tv in, tt_args *a, int *out);
int tt_call_builtin(tt_ctx *c, uint32_t pos, tv_func *f, tt_args *a, tv *out);
int tt_binop(tt_ctx *c, uint32_t pos, int op, tv l, tv r, tv *out);

/* methods (template_methods.c) */
int tt_method_lookup(tt_ctx *c, tv obj, const char *attr, tv *out); /* 1 found, 0 not, -1 error */
int tt_method_call(tt_ctx *c, uint32_t pos, tv_func *f, tt_args *a, tv *out);
int tt_percent_format(tt_ctx *c, uint32_t pos, tv_str *fmt, tv args, tv *out);
/* Python's str.upper() of one code point (full case mapping) */
int tt_put_upper(tt_buf *b, uint32_t cp);

/* JSON (template_json.c) */
int tt_json_parse(tt_arena *a, const char *text, size_t n, const char *where, tv *out);
typedef struct {
    int ensure_ascii;
    int have_indent;
    const char *indent; /* the indent unit */
    size_t indent_len;
    const char *item_sep, *key_sep;
    int sort_keys;
} tt_json_opts;
int tt_json_dump(tt_ctx *c, uint32_t pos, tv v, const tt_json_opts *o, tt_buf *b);

/* Argument binding: slots[] hold defaults on entry; provided[i] set for
 * arguments given. Fails (Python's TypeError text) on unknown keywords or
 * too many positionals, or when a required one (i < nreq) is missing. */
int tt_bind(tt_ctx *c, uint32_t pos, const char *fname, tt_args *a, size_t np,
            const char *const *pnames, size_t nreq, tv *slots, int *provided);

#define TT_MAX_DEPTH 200      /* parser nesting and macro recursion */
#define TT_MAX_RANGE 100000   /* jinja2's sandbox limit on range() */

#endif
