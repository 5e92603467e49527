/* tokenizer_pretok.c - pre-tokenizers (tokenizers' pre_tokenizers/):
 * they cut normalized text into the pieces the model sees.
 *
 *   Split          the file's own pattern ({"Regex"} through PCRE2 with UTF
 *                  and Unicode properties, JIT-compiled; {"String"} as plain
 *                  text), with a delimiter behaviour and optional invert
 *   ByteLevel      optional prefix space, optional GPT-2 regex split, then
 *                  bytes -> printable characters
 *   Metaspace      ' ' -> '▁', prepend '▁' (always / first / never), split
 *                  before each '▁'
 *   Digits         digits apart from the rest (each alone, or in runs)
 *   Whitespace     \w+|[^\w\s]+ runs; WhitespaceSplit: split on whitespace
 *   Sequence       the above in order
 *
 * Pieces flow depth-first through the steps: each step hands each of its
 * pieces to the next step at once, so no list of pieces is ever built and
 * each step reuses its own two scratch buffers. */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_internal.h"
#include "util/error.h"

/* ---- patterns ---- */

/* memmem is a GNU extension; this is the C11 spelling. */
static const char *find_bytes(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn > hn) return NULL;
    const char *end = h + hn - nn + 1;
    for (const char *p = h; p < end;) {
        p = memchr(p, nd[0], (size_t)(end - p));
        if (!p) return NULL;
        if (!memcmp(p, nd, nn)) return p;
        p++;
    }
    return NULL;
}

int tk_regex_compile(const char *src, size_t n, const char *where, tk_regex *re) {
    memset(re, 0, sizeof *re);
    int err;
    PCRE2_SIZE off;
    re->code = pcre2_compile((PCRE2_SPTR)src, n, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
    if (!re->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return tn_fail("%s: pattern /%.*s/: %s at offset %zu (PCRE2)", where, (int)n, src,
                       (const char *)msg, (size_t)off);
    }
    re->jit = pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE) == 0;
    re->md = pcre2_match_data_create_from_pattern(re->code, NULL);
    if (!re->md) {
        tk_regex_free(re);
        return tn_fail("out of memory for a pattern's match data");
    }
    return 0;
}

int tk_regex_load(const cJSON *pattern, const char *where, tk_regex *re) {
    memset(re, 0, sizeof *re);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(pattern, "String");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(pattern, "Regex");
    if (cJSON_IsString(s)) {
        re->literal = tn_strdup(s->valuestring);
        if (!re->literal) return -1;
        re->literal_n = strlen(re->literal);
        return 0;
    }
    if (cJSON_IsString(r)) return tk_regex_compile(r->valuestring, strlen(r->valuestring), where, re);
    return tn_fail("%s: pattern: expected {\"String\": ...} or {\"Regex\": ...}", where);
}

void tk_regex_free(tk_regex *re) {
    if (re->md) pcre2_match_data_free(re->md);
    if (re->code) pcre2_code_free(re->code);
    free(re->literal);
    memset(re, 0, sizeof *re);
}

int tk_regex_find(tk_regex *re, const char *s, size_t n, size_t start, size_t *ms, size_t *me) {
    if (start > n) return 0;
    if (!re->code) {
        /* An empty literal matches nothing (tokenizers' Pattern for &str). */
        if (!re->literal_n) return 0;
        const char *hit = find_bytes(s + start, n - start, re->literal, re->literal_n);
        if (!hit) return 0;
        *ms = (size_t)(hit - s);
        *me = *ms + re->literal_n;
        return 1;
    }
    /* The text is valid UTF-8 (checked once on the way in): no check per call,
     * which would make splitting quadratic. */
    int rc = re->jit ? pcre2_jit_match(re->code, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK,
                                       re->md, NULL)
                     : pcre2_match(re->code, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, re->md,
                                   NULL);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        return tn_fail("pattern match failed: %s (PCRE2)", (const char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(re->md);
    *ms = ov[0];
    *me = ov[1];
    return 1;
}

/* ---- steps ---- */

enum { P_SEQ, P_SPLIT, P_BYTELEVEL, P_METASPACE, P_DIGITS, P_WHITESPACE, P_WSSPLIT };
enum { B_REMOVED, B_ISOLATED, B_MERGED_PREV, B_MERGED_NEXT, B_CONTIGUOUS };
enum { PREPEND_NEVER, PREPEND_ALWAYS, PREPEND_FIRST };

struct tk_pretok {
    int kind;
    tk_regex re;
    int behavior, invert;
    int add_prefix_space, use_regex;
    char repl[8];
    size_t repl_n;
    int prepend, split;
    int individual;
    tk_pretok **steps; /* Sequence, flattened */
    size_t n_steps;
    tk_buf a, b;
};

/* GPT-2's pattern, which ByteLevel applies when use_regex is true. */
static const char GPT2_RE[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

void tk_pretok_free(tk_pretok *pt) {
    if (!pt) return;
    for (size_t i = 0; i < pt->n_steps; i++) tk_pretok_free(pt->steps[i]);
    free(pt->steps);
    tk_regex_free(&pt->re);
    tk_buf_free(&pt->a);
    tk_buf_free(&pt->b);
    free(pt);
}

static int get_bool(const cJSON *json, const char *key, int dflt) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(json, key);
    return cJSON_IsBool(it) ? cJSON_IsTrue(it) : dflt;
}

static int load_metaspace(const cJSON *json, const char *where, const char *what, char *repl,
                          size_t *repl_n, int *prepend, int *split) {
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(json, "replacement");
    if (!cJSON_IsString(r) || !r->valuestring[0] ||
        tk_utf8_len((unsigned char)r->valuestring[0]) != strlen(r->valuestring))
        return tn_fail("%s: %s Metaspace: field 'replacement': expected one character", where, what);
    *repl_n = strlen(r->valuestring);
    memcpy(repl, r->valuestring, *repl_n);
    *prepend = PREPEND_ALWAYS;
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(json, "prepend_scheme");
    if (cJSON_IsString(ps)) {
        if (!strcmp(ps->valuestring, "always")) *prepend = PREPEND_ALWAYS;
        else if (!strcmp(ps->valuestring, "first")) *prepend = PREPEND_FIRST;
        else if (!strcmp(ps->valuestring, "never")) *prepend = PREPEND_NEVER;
        else
            return tn_fail("%s: %s Metaspace: prepend_scheme: expected always, first or never, "
                           "got '%s'",
                           where, what, ps->valuestring);
    }
    const cJSON *aps = cJSON_GetObjectItemCaseSensitive(json, "add_prefix_space");
    if (cJSON_IsFalse(aps)) *prepend = PREPEND_NEVER;
    *split = get_bool(json, "split", 1);
    return 0;
}

/* Metaspace is also a decoder; tokenizer_decode.c reads it the same way. */
int tk_metaspace_fields(const cJSON *json, const char *where, char *repl, size_t *repl_n,
                        int *prepend_never) {
    int prepend, split;
    if (load_metaspace(json, where, "decoder", repl, repl_n, &prepend, &split)) return -1;
    *prepend_never = prepend == PREPEND_NEVER;
    return 0;
}

static int load_step(const cJSON *json, const char *where, tk_pretok *seq);

static int add_step(tk_pretok *seq, tk_pretok *st) {
    tk_pretok **s = realloc(seq->steps, (seq->n_steps + 1) * sizeof *s);
    if (!s) {
        tk_pretok_free(st);
        return tn_fail("out of memory for pre-tokenizers");
    }
    seq->steps = s;
    seq->steps[seq->n_steps++] = st;
    return 0;
}

static int load_step(const cJSON *json, const char *where, tk_pretok *seq) {
    const char *type = tk_type(json, where, "pre_tokenizer");
    if (!type) return -1;
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(json, "pretokenizers");
        if (!cJSON_IsArray(list))
            return tn_fail("%s: pre_tokenizer Sequence: field 'pretokenizers': expected a list",
                           where);
        const cJSON *it;
        cJSON_ArrayForEach(it, list) if (load_step(it, where, seq)) return -1;
        return 0;
    }
    tk_pretok *st = tn_calloc(1, sizeof *st, "a pre-tokenizer");
    if (!st) return -1;
    if (!strcmp(type, "Split")) {
        st->kind = P_SPLIT;
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(json, "behavior");
        const char *bs = cJSON_IsString(b) ? b->valuestring : "";
        if (!strcmp(bs, "Removed")) st->behavior = B_REMOVED;
        else if (!strcmp(bs, "Isolated")) st->behavior = B_ISOLATED;
        else if (!strcmp(bs, "MergedWithPrevious")) st->behavior = B_MERGED_PREV;
        else if (!strcmp(bs, "MergedWithNext")) st->behavior = B_MERGED_NEXT;
        else if (!strcmp(bs, "Contiguous")) st->behavior = B_CONTIGUOUS;
        else {
            tn_fail("%s: pre_tokenizer Split: behavior: expected Removed, Isolated, "
                    "MergedWithPrevious, MergedWithNext or Contiguous, got '%s'",
                    where, bs);
            goto fail;
        }
        st->invert = get_bool(json, "invert", 0);
        if (tk_regex_load(cJSON_GetObjectItemCaseSensitive(json, "pattern"), where, &st->re))
            goto fail;
    } else if (!strcmp(type, "ByteLevel")) {
        st->kind = P_BYTELEVEL;
        st->add_prefix_space = get_bool(json, "add_prefix_space", 1);
        st->use_regex = get_bool(json, "use_regex", 1);
        if (st->use_regex && tk_regex_compile(GPT2_RE, sizeof GPT2_RE - 1, where, &st->re))
            goto fail;
    } else if (!strcmp(type, "Metaspace")) {
        st->kind = P_METASPACE;
        if (load_metaspace(json, where, "pre_tokenizer", st->repl, &st->repl_n, &st->prepend,
                           &st->split))
            goto fail;
        st->re.literal = tn_strdup(st->repl);
        if (!st->re.literal) goto fail;
        st->re.literal_n = st->repl_n;
    } else if (!strcmp(type, "Digits")) {
        st->kind = P_DIGITS;
        st->individual = get_bool(json, "individual_digits", 0);
    } else if (!strcmp(type, "Whitespace")) {
        st->kind = P_WHITESPACE;
        static const char WS_RE[] = "\\w+|[^\\w\\s]+";
        if (tk_regex_compile(WS_RE, sizeof WS_RE - 1, where, &st->re)) goto fail;
    } else if (!strcmp(type, "WhitespaceSplit")) {
        st->kind = P_WSSPLIT;
    } else {
        tn_fail("%s: pre_tokenizer type '%s' is not supported (supported: Sequence, Split, "
                "ByteLevel, Metaspace, Digits, Whitespace, WhitespaceSplit)",
                where, type);
        goto fail;
    }
    return add_step(seq, st);
fail:
    tk_pretok_free(st);
    return -1;
}

int tk_pretok_load(const cJSON *json, const char *where, tk_pretok **out) {
    *out = NULL;
    if (!json || cJSON_IsNull(json)) return 0;
    tk_pretok *seq = tn_calloc(1, sizeof *seq, "pre-tokenizers");
    if (!seq) return -1;
    seq->kind = P_SEQ;
    if (load_step(json, where, seq)) {
        tk_pretok_free(seq);
        return -1;
    }
    *out = seq;
    return 0;
}

/* ---- splitting ---- */

typedef int (*emit_fn)(void *ctx, const char *s, size_t n, int first);

/* What a split looks for: a pattern, or characters of a class. */
typedef struct {
    tk_regex *re;
    int (*is)(uint32_t);
} matcher;

static int next_match(const matcher *m, const char *s, size_t n, size_t pos, size_t *ms,
                      size_t *me) {
    if (m->re) return tk_regex_find(m->re, s, n, pos, ms, me);
    /* tokenizers' Pattern for Fn(char) -> bool: each matching character is a
     * match of its own. */
    while (pos < n) {
        size_t len;
        uint32_t c = tk_utf8_decode(s + pos, &len);
        if (m->is(c)) {
            *ms = pos;
            *me = pos + len;
            return 1;
        }
        pos += len;
    }
    return 0;
}

/* The behaviours of NormalizedString::split, as a stream: segments (gaps
 * and matches) come in order; at most one piece is held back to be extended
 * (MergedWithPrevious, Contiguous) or a match waits for what follows
 * (MergedWithNext). Empty pieces are dropped, as PreTokenizedString does. */
typedef struct {
    const char *s;
    int behavior, first;
    emit_fn emit;
    void *ctx;
    int held, prev_match;
    size_t ha, hb;
} splitter;

static int out_piece(splitter *sp, size_t a, size_t b) {
    if (b <= a) return 0;
    return sp->emit(sp->ctx, sp->s + a, b - a, sp->first && a == 0);
}

static int segment(splitter *sp, size_t a, size_t b, int is_match) {
    int rc = 0;
    switch (sp->behavior) {
    case B_ISOLATED: rc = out_piece(sp, a, b); break;
    case B_REMOVED:
        if (!is_match) rc = out_piece(sp, a, b);
        break;
    case B_CONTIGUOUS:
    case B_MERGED_PREV: {
        int extend = sp->behavior == B_CONTIGUOUS ? is_match == sp->prev_match
                                                  : is_match && !sp->prev_match;
        if (extend && sp->held) {
            sp->hb = b;
        } else {
            if (sp->held) rc = out_piece(sp, sp->ha, sp->hb);
            sp->held = 1;
            sp->ha = a;
            sp->hb = b;
        }
        sp->prev_match = is_match;
        break;
    }
    case B_MERGED_NEXT:
        if (sp->held) {
            if (!is_match) {
                rc = out_piece(sp, sp->ha, b);
                sp->held = 0;
            } else {
                rc = out_piece(sp, sp->ha, sp->hb);
                sp->ha = a;
                sp->hb = b;
            }
        } else if (is_match) {
            sp->held = 1;
            sp->ha = a;
            sp->hb = b;
        } else {
            rc = out_piece(sp, a, b);
        }
        break;
    }
    return rc;
}

static int split_emit(const char *s, size_t n, const matcher *m, int behavior, int invert,
                      int first, emit_fn emit, void *ctx) {
    splitter sp = {s, behavior, first, emit, ctx, 0, 0, 0, 0};
    size_t pos = 0, prev = 0, ms, me;
    for (;;) {
        int r = next_match(m, s, n, pos, &ms, &me);
        if (r < 0) return -1;
        if (r == 0) break;
        if (prev != ms && segment(&sp, prev, ms, invert)) return -1;
        if (segment(&sp, ms, me, !invert)) return -1;
        prev = me;
        if (me > ms) pos = me;
        else if (me < n) pos = me + tk_utf8_len((unsigned char)s[me]);
        else break;
    }
    if (prev != n && segment(&sp, prev, n, invert)) return -1;
    if (sp.held) return out_piece(&sp, sp.ha, sp.hb);
    return 0;
}

/* ---- running ---- */

typedef struct {
    tk_pretok *seq;
    size_t i;
    tk_piece_fn fn;
    void *ctx;
} chain;

static int run_step(tk_pretok *st, const char *s, size_t n, int first, emit_fn emit, void *ctx);

static int chain_emit(void *c, const char *s, size_t n, int first) {
    chain *ch = c;
    if (ch->i == ch->seq->n_steps) return ch->fn(ch->ctx, s, n);
    chain next = *ch;
    next.i++;
    return run_step(ch->seq->steps[ch->i], s, n, first, chain_emit, &next);
}

typedef struct {
    tk_pretok *st;
    emit_fn emit;
    void *ctx;
} bl_ctx;

/* ByteLevel: map one (regex-split) piece and pass it on. */
static int bl_emit(void *c, const char *s, size_t n, int first) {
    bl_ctx *b = c;
    b->st->b.n = 0;
    if (tk_bytelevel_map(s, n, &b->st->b)) return -1;
    return b->emit(b->ctx, b->st->b.p, b->st->b.n, first);
}

static int is_space_char(uint32_t c) { return tk_is_whitespace(c); }

static int run_step(tk_pretok *st, const char *s, size_t n, int first, emit_fn emit, void *ctx) {
    switch (st->kind) {
    case P_SPLIT: {
        matcher m = {&st->re, NULL};
        return split_emit(s, n, &m, st->behavior, st->invert, first, emit, ctx);
    }
    case P_BYTELEVEL: {
        const char *src = s;
        size_t sn = n;
        if (st->add_prefix_space && (n == 0 || s[0] != ' ')) {
            st->a.n = 0;
            if (tk_buf_addc(&st->a, ' ') || tk_buf_add(&st->a, s, n)) return -1;
            src = st->a.p;
            sn = st->a.n;
        }
        bl_ctx b = {st, emit, ctx};
        if (!st->use_regex) return bl_emit(&b, src, sn, first);
        matcher m = {&st->re, NULL};
        return split_emit(src, sn, &m, B_ISOLATED, 0, first, bl_emit, &b);
    }
    case P_METASPACE: {
        tk_buf *a = &st->a;
        a->n = 0;
        int pre = st->prepend == PREPEND_ALWAYS || (st->prepend == PREPEND_FIRST && first);
        if (pre && !(n >= st->repl_n && !memcmp(s, st->repl, st->repl_n))) {
            /* The text after replacement starts with '▁' if s starts with ' '. */
            if (!(n && s[0] == ' ') && tk_buf_add(a, st->repl, st->repl_n)) return -1;
        }
        for (size_t i = 0; i < n; i++) {
            if (s[i] == ' ') {
                if (tk_buf_add(a, st->repl, st->repl_n)) return -1;
            } else if (tk_buf_addc(a, s[i])) {
                return -1;
            }
        }
        if (!st->split) return emit(ctx, a->p, a->n, first);
        matcher m = {&st->re, NULL};
        return split_emit(a->p, a->n, &m, B_MERGED_NEXT, 0, first, emit, ctx);
    }
    case P_DIGITS: {
        matcher m = {NULL, tk_is_numeric};
        return split_emit(s, n, &m, st->individual ? B_ISOLATED : B_CONTIGUOUS, 0, first, emit,
                          ctx);
    }
    case P_WHITESPACE: {
        matcher m = {&st->re, NULL};
        return split_emit(s, n, &m, B_REMOVED, 1, first, emit, ctx);
    }
    case P_WSSPLIT: {
        matcher m = {NULL, is_space_char};
        return split_emit(s, n, &m, B_REMOVED, 0, first, emit, ctx);
    }
    }
    return tn_fail("pre_tokenizer: unknown kind %d", st->kind);
}

int tk_pretok_run(tk_pretok *pt, const char *s, size_t n, int first, tk_piece_fn fn, void *ctx) {
    if (n == 0) return 0;
    if (!pt) return fn(ctx, s, n);
    chain ch = {pt, 0, fn, ctx};
    return chain_emit(&ch, s, n, first);
}
