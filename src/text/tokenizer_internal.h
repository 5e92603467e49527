/* tokenizer_internal.h - what the tokenizer_*.c files share; not for callers.
 *
 *   tokenizer.c           loading tokenizer.json / tokenizer_config.json, the
 *                         encode and decode pipelines
 *   tokenizer_json.c      a pull reader for the big parts of tokenizer.json
 *                         (model.vocab, model.merges) without a DOM
 *   tokenizer_map.c       hash maps: string -> id, (id, id) -> merge, cache
 *   tokenizer_utf8.c      UTF-8 decoding, repair, character classes, the
 *                         ByteLevel byte <-> character table
 *   tokenizer_bpe.c       the BPE model
 *   tokenizer_normalize.c normalizers
 *   tokenizer_pretok.c    pre-tokenizers and the split behaviours
 *   tokenizer_added.c     added-token matching (leftmost-longest trie)
 *   tokenizer_post.c      post-processors (BOS/EOS)
 *   tokenizer_decode.c    decoders */
#ifndef TUNE_TOKENIZER_INTERNAL_H
#define TUNE_TOKENIZER_INTERNAL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "text/tokenizer.h"

/* ---- byte buffers ---------------------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
} tk_buf;

int tk_buf_reserve(tk_buf *b, size_t extra);
int tk_buf_add(tk_buf *b, const void *s, size_t n);
int tk_buf_addc(tk_buf *b, char c);
void tk_buf_free(tk_buf *b);

/* ---- UTF-8 (tokenizer_utf8.c) ----------------------------------------- */

/* Length of the character starting at s (s valid UTF-8, n >= 1). */
static inline size_t tk_utf8_len(unsigned char c) {
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}
/* Decodes one character of valid UTF-8; *len gets its byte length. */
uint32_t tk_utf8_decode(const char *s, size_t *len);
/* Encodes cp into out (4 bytes room); returns the length. */
size_t tk_utf8_encode(uint32_t cp, char *out);
/* 1 when s[0..n) is valid UTF-8. */
int tk_utf8_valid(const char *s, size_t n);
/* Rust's char::is_whitespace (Unicode White_Space). */
int tk_is_whitespace(uint32_t cp);
/* Rust's char::is_numeric (general category Nd, Nl or No). */
int tk_is_numeric(uint32_t cp);
/* The regex crate's \w: alphabetic, marks, decimal digits, connector
 * punctuation, joiners (approximated through general categories). */
int tk_is_word_char(uint32_t cp);
/* GPT-2's byte -> character table, as UTF-8 (1 or 2 bytes each). */
typedef struct {
    char s[2];
    unsigned char n;
} tk_byte_char;
extern const tk_byte_char *tk_byte_to_char(void);
/* Character -> byte (-1 when cp is not one of the 256 characters). */
int tk_char_to_byte(uint32_t cp);
/* Appends the ByteLevel mapping of s[0..n) to out. */
int tk_bytelevel_map(const char *s, size_t n, tk_buf *out);

/* ---- hash maps (tokenizer_map.c) -------------------------------------- */

uint64_t tk_hash(const void *s, size_t n);

/* String -> int32. Keys are copied into an arena. */
typedef struct {
    char *arena;
    size_t arena_n, arena_cap;
    uint32_t *key_off, *key_len;
    int32_t *val;
    uint32_t *hash32;
    size_t count, cap_entries;
    uint64_t *slots; /* hash << 32 | (entry index + 1); 0 = empty */
    size_t mask;
} tk_strmap;

int tk_strmap_init(tk_strmap *m, size_t expected);
/* Inserts or overwrites; returns the entry index, or -1. */
int64_t tk_strmap_put(tk_strmap *m, const char *k, size_t n, int32_t v);
/* Returns the value, or -1 when absent. */
int32_t tk_strmap_get(const tk_strmap *m, const char *k, size_t n);
/* The same with the hash computed beforehand (tk_strmap_hash), so that a
 * batch of lookups can prefetch their slots first (loading 262k tokens and
 * 515k merges is mostly waiting for memory). */
uint32_t tk_strmap_hash(const char *k, size_t n);
void tk_strmap_prefetch(const tk_strmap *m, uint32_t h);
int32_t tk_strmap_get_h(const tk_strmap *m, const char *k, size_t n, uint32_t h);
int64_t tk_strmap_put_h(tk_strmap *m, const char *k, size_t n, uint32_t h, int32_t v);
void tk_strmap_free(tk_strmap *m);

/* (left id, right id) -> (rank, merged id). */
typedef struct {
    uint64_t *keys; /* UINT64_MAX = empty */
    uint32_t *rank, *id;
    size_t count, mask;
} tk_pairmap;

int tk_pairmap_init(tk_pairmap *m, size_t expected);
void tk_pairmap_put(tk_pairmap *m, uint32_t a, uint32_t b, uint32_t rank, uint32_t id);
/* Returns 1 and sets rank/id when present. */
static inline int tk_pairmap_get(const tk_pairmap *m, uint32_t a, uint32_t b, uint32_t *rank,
                                 uint32_t *id) {
    uint64_t k = ((uint64_t)a << 32) | b;
    size_t i = (size_t)((k * 0x9E3779B97F4A7C15ull) >> 20) & m->mask;
    for (;;) {
        uint64_t kk = m->keys[i];
        if (kk == k) {
            *rank = m->rank[i];
            *id = m->id[i];
            return 1;
        }
        if (kk == UINT64_MAX) return 0;
        i = (i + 1) & m->mask;
    }
}
void tk_pairmap_free(tk_pairmap *m);

/* Pre-token -> ids, for the BPE model. Cleared when full. */
typedef struct {
    tk_strmap keys;  /* value = offset into ids */
    int32_t *ids;    /* per entry: count, then the ids */
    size_t ids_n, ids_cap;
    size_t max_entries, max_ids;
} tk_cache;

int tk_cache_init(tk_cache *c, size_t max_entries, size_t max_ids);
/* Returns a pointer to {count, ids...} or NULL. */
const int32_t *tk_cache_get(const tk_cache *c, const char *k, size_t n);
void tk_cache_put(tk_cache *c, const char *k, size_t n, const int32_t *ids, size_t count);
void tk_cache_free(tk_cache *c);

/* ---- JSON pull reader (tokenizer_json.c) ------------------------------ */

typedef struct {
    const char *text, *p, *end;
    const char *where; /* file name for messages */
} tk_json;

/* Fails with "where:LINE:COL: what (expected X, got Y)". */
int tk_json_fail(const tk_json *j, const char *expected);
void tk_json_ws(tk_json *j);
/* Consumes c after whitespace, or fails. */
int tk_json_expect(tk_json *j, char c);
/* Peeks at the next non-space character (0 at the end). */
char tk_json_peek(tk_json *j);
/* Reads a string, unescaped, into out (out->n reset). */
int tk_json_string(tk_json *j, tk_buf *out);
/* Reads an integer. */
int tk_json_int(tk_json *j, int64_t *v);
/* Skips any value; start and stop get its span. */
int tk_json_skip(tk_json *j, const char **start, const char **stop);
/* After '{' or '[' was consumed: 1 when another member follows (eating the
 * ',' between members), 0 at the closing bracket (eaten), -1 on error. */
int tk_json_more(tk_json *j, char close, int *first);

/* ---- the BPE model (tokenizer_bpe.c) ---------------------------------- */

typedef struct tk_sym {
    int32_t c;
    int32_t prev, next;
    uint32_t len;
} tk_sym;

typedef struct tk_merge {
    uint32_t rank;
    uint32_t pos;
    uint32_t id;
} tk_merge;

typedef struct {
    tk_strmap vocab;
    const char **id_str;
    uint32_t *id_len;
    int32_t n_ids;
    tk_pairmap merges;
    int32_t unk_id;
    int fuse_unk, byte_fallback, ignore_merges;
    char *prefix, *suffix;
    size_t prefix_n, suffix_n;
    int32_t byte_ids[256];
    tk_cache cache;
    tk_sym *syms;
    size_t syms_cap;
    tk_merge *heap;
    size_t heap_cap;
    int32_t *tmp;
    size_t tmp_cap;
    tk_buf piece; /* prefix/suffix decorated characters */
    /* Safe cuts of long pre-tokens (see split_points in tokenizer_bpe.c):
     * before cut_char ('▁') unless the character before it is one of
     * cut_after[]. */
    char cut_char[4];
    size_t cut_n;
    uint32_t cut_after[16];
    size_t n_cut_after;
} tk_bpe;

/* Reads model (already past its type check): vocab and merges spans come
 * from the pull reader, the small fields from cJSON. */
int tk_bpe_load(tk_bpe *m, const char *where, const tk_json *vocab_span, const tk_json *merges_span,
                const cJSON *fields);
/* Appends the ids of one pre-token. */
int tk_bpe_encode(tk_bpe *m, const char *s, size_t n, tn_ids *out);
void tk_bpe_free(tk_bpe *m);

/* ---- normalizers (tokenizer_normalize.c) ------------------------------ */

typedef struct tk_norm tk_norm;
/* NULL json (JSON null) gives NULL with no error; check tn_error otherwise. */
int tk_norm_load(const cJSON *json, const char *where, tk_norm **out);
/* out = normalize(s); out->n reset first. */
int tk_norm_apply(const tk_norm *nm, const char *s, size_t n, tk_buf *out);
void tk_norm_free(tk_norm *nm);

/* ---- pre-tokenizers (tokenizer_pretok.c) ------------------------------ */

typedef struct tk_pretok tk_pretok;
/* Receives each final pre-token. */
typedef int (*tk_piece_fn)(void *ctx, const char *s, size_t n);

int tk_pretok_load(const cJSON *json, const char *where, tk_pretok **out);
/* Splits s (first: it starts the original text) and hands each pre-token to
 * fn. With no pre-tokenizer (NULL), s itself is the one pre-token. */
int tk_pretok_run(tk_pretok *pt, const char *s, size_t n, int first, tk_piece_fn fn, void *ctx);
void tk_pretok_free(tk_pretok *pt);

/* A compiled PCRE2 pattern, shared by Split, Replace and ByteLevel. */
typedef struct {
    pcre2_code *code;
    pcre2_match_data *md;
    int jit;
    char *literal; /* {"String": ...} patterns match as plain text */
    size_t literal_n;
} tk_regex;

/* pattern: {"String": s} or {"Regex": r}. */
int tk_regex_load(const cJSON *pattern, const char *where, tk_regex *re);
int tk_regex_compile(const char *src, size_t n, const char *where, tk_regex *re);
/* Finds the next match at or after start: 1 and [*ms, *me), 0 none, -1 error. */
int tk_regex_find(tk_regex *re, const char *s, size_t n, size_t start, size_t *ms, size_t *me);
void tk_regex_free(tk_regex *re);

/* ---- added tokens (tokenizer_added.c) --------------------------------- */

typedef struct {
    char *content;
    size_t n;
    int32_t id;
    int special, lstrip, rstrip, single_word, normalized;
} tk_added;

typedef struct {
    int32_t first; /* first child node, -1 */
    int32_t next;  /* next sibling, -1 */
    int32_t token; /* index into the token list, -1 */
    unsigned char byte;
} tk_trie_node;

typedef struct {
    tk_trie_node *nodes;
    size_t n, cap;
    int32_t root_child[256];
    const tk_added *tokens;
    int empty;
} tk_trie;

int tk_trie_build(tk_trie *t, const tk_added *tokens, size_t count, int normalized,
                  const tk_norm *nm);
/* Splits s into segments: fn(ctx, s, n, token_id) with token_id -1 for text
 * between matches. Follows AddedVocabulary::find_matches (lstrip, rstrip,
 * single_word). */
typedef int (*tk_segment_fn)(void *ctx, const char *s, size_t n, size_t offset, int32_t id);
int tk_trie_split(const tk_trie *t, const char *s, size_t n, tk_segment_fn fn, void *ctx);
void tk_trie_free(tk_trie *t);

/* ---- post-processors (tokenizer_post.c) ------------------------------- */

typedef struct {
    int32_t *prefix, *suffix;
    size_t n_prefix, n_suffix;
} tk_post;

int tk_post_load(const cJSON *json, const char *where, tk_post *out);
void tk_post_free(tk_post *p);

/* ---- decoders (tokenizer_decode.c) ------------------------------------ */

/* A list of strings in one arena. */
typedef struct {
    tk_buf text;
    size_t *off, *len;
    size_t n, cap;
} tk_strlist;

int tk_strlist_add(tk_strlist *l, const char *s, size_t n);
void tk_strlist_free(tk_strlist *l);

typedef struct tk_decoder tk_decoder;
int tk_decoder_load(const cJSON *json, const char *where, tk_decoder **out);
/* Runs the decoder chain on tokens (replaced by the result). */
int tk_decoder_run(const tk_decoder *d, tk_strlist *tokens);
void tk_decoder_free(tk_decoder *d);

/* ---- the tokenizer ---------------------------------------------------- */

struct tn_tokenizer {
    char *where; /* tokenizer.json path */
    tk_bpe bpe;
    tk_norm *norm;
    tk_pretok *pretok;
    tk_post post;
    tk_decoder *decoder;
    tk_added *added;
    size_t n_added;
    tk_strmap added_map; /* content -> id */
    tk_trie trie_raw, trie_norm;
    int32_t n_ids;           /* max id + 1 over model and added tokens */
    const tk_added **by_id;  /* id -> added token (n_ids entries) or NULL */
    int32_t special_ids[4];  /* bos, eos, pad, unk from tokenizer_config.json */
    /* scratch */
    tk_buf norm_buf;
};

/* Reads "type" of a component; fails naming where. */
const char *tk_type(const cJSON *json, const char *where, const char *what);

#endif
