/* tokenizer_added.c - finding added tokens in text, as tokenizers'
 * AddedVocabulary::find_matches does with its Aho-Corasick automaton in
 * leftmost-longest mode: the match that starts first wins, and of those
 * starting at the same byte the longest; matching resumes after it. A byte
 * trie scanned from each position gives the same matches; the root's
 * children sit in a 256-entry table so that text without token-initial bytes
 * costs one lookup per byte.
 *
 * Then, per match: single_word drops it when a word character touches it;
 * lstrip / rstrip widen it over neighbouring whitespace (never into the
 * previous match). */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_internal.h"
#include "util/error.h"

static int32_t new_node(tk_trie *t, unsigned char byte) {
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        tk_trie_node *p = realloc(t->nodes, cap * sizeof *p);
        if (!p) {
            tn_fail("out of memory for the added-token table");
            return -1;
        }
        t->nodes = p;
        t->cap = cap;
    }
    tk_trie_node *nd = &t->nodes[t->n];
    nd->first = nd->next = nd->token = -1;
    nd->byte = byte;
    return (int32_t)t->n++;
}

static int insert(tk_trie *t, const char *s, size_t n, int32_t token) {
    if (!n) return 0;
    unsigned char b0 = (unsigned char)s[0];
    int32_t node = t->root_child[b0];
    if (node < 0) {
        if ((node = new_node(t, b0)) < 0) return -1;
        t->root_child[b0] = node;
    }
    for (size_t i = 1; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        int32_t c = t->nodes[node].first;
        while (c >= 0 && t->nodes[c].byte != b) c = t->nodes[c].next;
        if (c < 0) {
            if ((c = new_node(t, b)) < 0) return -1;
            t->nodes[c].next = t->nodes[node].first;
            t->nodes[node].first = c;
        }
        node = c;
    }
    /* Identical contents: the first keeps the match (patterns are tried in
     * order). */
    if (t->nodes[node].token < 0) t->nodes[node].token = token;
    t->empty = 0;
    return 0;
}

int tk_trie_build(tk_trie *t, const tk_added *tokens, size_t count, int normalized,
                  const tk_norm *nm) {
    memset(t, 0, sizeof *t);
    for (int i = 0; i < 256; i++) t->root_child[i] = -1;
    t->tokens = tokens;
    t->empty = 1;
    tk_buf buf = {0};
    /* Special tokens first, then the others, as refresh_added_tokens orders
     * its patterns. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < count; i++) {
            const tk_added *a = &tokens[i];
            if (!a->normalized != !normalized || (pass == 0) != (a->special != 0)) continue;
            const char *s = a->content;
            size_t n = a->n;
            if (normalized && nm) {
                /* Normalized tokens match their normalized form. */
                if (tk_norm_apply(nm, a->content, a->n, &buf)) goto fail;
                s = buf.p;
                n = buf.n;
            }
            if (insert(t, s, n, (int32_t)i)) goto fail;
        }
    }
    tk_buf_free(&buf);
    return 0;
fail:
    tk_buf_free(&buf);
    tk_trie_free(t);
    return -1;
}

void tk_trie_free(tk_trie *t) {
    free(t->nodes);
    memset(t, 0, sizeof *t);
}

/* The character ending just before s[at] (at > 0). */
static uint32_t char_before(const char *s, size_t at, size_t *start) {
    size_t k = at - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    size_t len;
    *start = k;
    return tk_utf8_decode(s + k, &len);
}

int tk_trie_split(const tk_trie *t, const char *s, size_t n, tk_segment_fn fn, void *ctx) {
    size_t start_offset = 0, i = 0;
    while (i < n) {
        int32_t node = t->root_child[(unsigned char)s[i]];
        if (node < 0) {
            i++;
            continue;
        }
        int32_t best = -1;
        size_t best_end = 0, j = i + 1;
        for (;;) {
            if (t->nodes[node].token >= 0) {
                best = t->nodes[node].token;
                best_end = j;
            }
            if (j >= n) break;
            unsigned char b = (unsigned char)s[j];
            int32_t c = t->nodes[node].first;
            while (c >= 0 && t->nodes[c].byte != b) c = t->nodes[c].next;
            if (c < 0) break;
            node = c;
            j++;
        }
        if (best < 0) {
            i++;
            continue;
        }
        const tk_added *a = &t->tokens[best];
        size_t start = i, stop = best_end, len, k;
        i = best_end; /* the automaton resumes after the match either way */
        if (a->single_word) {
            int start_space = start == 0 || !tk_is_word_char(char_before(s, start, &k));
            int stop_space = stop == n || !tk_is_word_char(tk_utf8_decode(s + stop, &len));
            if (!start_space || !stop_space) continue;
        }
        if (a->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                uint32_t c = char_before(s, ns, &k);
                if (!tk_is_whitespace(c)) break;
                ns = k;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip)
            while (stop < n && tk_is_whitespace(tk_utf8_decode(s + stop, &len))) stop += len;
        if (start < start_offset) start = start_offset;
        if (start_offset < start && fn(ctx, s + start_offset, start - start_offset, start_offset, -1))
            return -1;
        if (fn(ctx, s + start, stop - start, start, a->id)) return -1;
        start_offset = stop;
        if (i < stop) i = stop;
    }
    if (start_offset < n && fn(ctx, s + start_offset, n - start_offset, start_offset, -1)) return -1;
    return 0;
}
