/* tokenizer_bpe.c - the BPE model of tokenizers (models/bpe/model.rs and
 * word.rs), step for step, since ties decide ids:
 *
 *   1. the pre-token is cut into characters; each becomes its vocabulary id,
 *      or its bytes' "<0xXX>" ids (byte_fallback), or the unknown token
 *      (consecutive unknowns fused into one when fuse_unk);
 *   2. every adjacent pair that has a merge goes into a min-heap keyed by
 *      (merge rank, position); the lowest is applied, stale entries (whose
 *      pair changed since) are skipped, and the new neighbours' pairs pushed;
 *   3. with ignore_merges, a pre-token that is itself in the vocabulary is
 *      that one id, without merging.
 *
 * A cache of pre-token -> ids (pre-tokens under 256 bytes) makes repeated
 * words one hash lookup.
 *
 * SentencePiece-style tokenizers (Llama 2, Mistral, Gemma) have no
 * pre-tokenizer that splits words, so a whole paragraph is one pre-token and
 * one heap of merges. It is cut into words first where that cannot change the
 * result: a merge across a cut between characters x and y would make a token
 * containing "xy", so a cut before '▁' is exact whenever no vocabulary token
 * contains '▁' after the character x in front of it. The words then go
 * through the cache like any other pre-tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_internal.h"
#include "util/error.h"

#define CACHE_MAX_LEN 256

/* ---- loading ---- */

/* Entries are read in batches: parse BATCH of them, prefetch their hash
 * slots, then insert. */
#define BATCH 64

static int flush_vocab(tk_bpe *m, tk_buf *keys, const uint32_t *off, const uint32_t *len,
                       const int32_t *ids, size_t k) {
    uint32_t h[BATCH];
    for (size_t i = 0; i < k; i++) {
        h[i] = tk_strmap_hash(keys->p + off[i], len[i]);
        tk_strmap_prefetch(&m->vocab, h[i]);
    }
    for (size_t i = 0; i < k; i++)
        if (tk_strmap_put_h(&m->vocab, keys->p + off[i], len[i], h[i], ids[i]) < 0) return -1;
    keys->n = 0;
    return 0;
}

static int read_vocab(tk_bpe *m, tk_json *j) {
    tk_buf key = {0}, keys = {0};
    uint32_t off[BATCH], len[BATCH];
    int32_t ids[BATCH];
    size_t k = 0;
    int first = 1, more, rc = -1;
    int64_t max_id = -1;
    if (tk_json_expect(j, '{')) return -1;
    while ((more = tk_json_more(j, '}', &first)) == 1) {
        int64_t id;
        if (tk_json_string(j, &key) || tk_json_expect(j, ':')) goto done;
        const char *at = j->p;
        if (tk_json_int(j, &id)) goto done;
        if (id < 0 || id >= INT32_MAX) {
            j->p = at;
            tk_json_fail(j, "a token id in [0, 2^31-1)");
            goto done;
        }
        if (key.n > UINT32_MAX / 2) {
            tk_json_fail(j, "a shorter token");
            goto done;
        }
        off[k] = (uint32_t)keys.n;
        len[k] = (uint32_t)key.n;
        ids[k] = (int32_t)id;
        if (tk_buf_add(&keys, key.p ? key.p : "", key.n)) goto done;
        if (++k == BATCH) {
            if (flush_vocab(m, &keys, off, len, ids, k)) goto done;
            k = 0;
        }
        if (id > max_id) max_id = id;
    }
    if (more < 0 || flush_vocab(m, &keys, off, len, ids, k)) goto done;
    m->n_ids = (int32_t)(max_id + 1);
    rc = 0;
done:
    tk_buf_free(&key);
    tk_buf_free(&keys);
    return rc;
}

/* A batch of merges: a, b and a+b (without b's continuing_subword_prefix)
 * for each, as spans of one buffer. */
typedef struct {
    tk_buf text;
    uint32_t off[BATCH][3], len[BATCH][3];
    size_t rank[BATCH];
    size_t k;
} merge_batch;

static int batch_add(tk_bpe *m, merge_batch *mb, size_t rank, const char *a, size_t an,
                     const char *b, size_t bn) {
    size_t skip = m->prefix_n <= bn ? m->prefix_n : bn;
    const char *part[3] = {a, b, NULL};
    size_t plen[3] = {an, bn, an + bn - skip};
    size_t i = mb->k++;
    mb->rank[i] = rank;
    for (int p = 0; p < 3; p++) {
        mb->off[i][p] = (uint32_t)mb->text.n;
        mb->len[i][p] = (uint32_t)plen[p];
        int rc = p < 2 ? tk_buf_add(&mb->text, part[p], plen[p])
                       : tk_buf_add(&mb->text, a, an) || tk_buf_add(&mb->text, b + skip, bn - skip);
        /* NUL-terminate each part for messages. */
        if (rc || tk_buf_addc(&mb->text, 0)) return -1;
    }
    return 0;
}

static int batch_flush(tk_bpe *m, merge_batch *mb, const char *where) {
    uint32_t h[BATCH][3];
    for (size_t i = 0; i < mb->k; i++)
        for (int p = 0; p < 3; p++) {
            h[i][p] = tk_strmap_hash(mb->text.p + mb->off[i][p], mb->len[i][p]);
            tk_strmap_prefetch(&m->vocab, h[i][p]);
        }
    for (size_t i = 0; i < mb->k; i++) {
        int32_t id[3];
        for (int p = 0; p < 3; p++) {
            const char *s = mb->text.p + mb->off[i][p];
            id[p] = tk_strmap_get_h(&m->vocab, s, mb->len[i][p], h[i][p]);
            if (id[p] < 0)
                return tn_fail("%s: model.merges[%zu]: %s '%s' is not in model.vocab", where,
                               mb->rank[i], p < 2 ? "token" : "merged token", s);
        }
        tk_pairmap_put(&m->merges, (uint32_t)id[0], (uint32_t)id[1], (uint32_t)mb->rank[i],
                       (uint32_t)id[2]);
    }
    mb->k = 0;
    mb->text.n = 0;
    return 0;
}

/* Counts the merges without reading them, to size the table once. */
static size_t count_members(const char *p, const char *end) {
    size_t n = 0;
    int depth = 0, in_str = 0;
    for (; p < end; p++) {
        char c = *p;
        if (in_str) {
            if (c == '\\') p++;
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == '"') {
            in_str = 1;
            if (depth == 1) n++;
        } else if (c == '[') {
            if (depth == 1) n++;
            depth++;
        } else if (c == ']') {
            if (--depth == 0) break;
        }
    }
    return n;
}

static int read_merges(tk_bpe *m, tk_json *j, const char *where) {
    tk_buf s = {0}, s2 = {0};
    merge_batch *mb = tn_calloc(1, sizeof *mb, "merges");
    int first = 1, more, rc = -1;
    size_t rank = 0;
    if (!mb) return -1;
    tk_json_ws(j);
    if (tk_pairmap_init(&m->merges, count_members(j->p, j->end))) goto done;
    if (tk_json_expect(j, '[')) goto done;
    while ((more = tk_json_more(j, ']', &first)) == 1) {
        char c = tk_json_peek(j);
        if (c == '"') {
            /* Legacy "a b": exactly one space (line.split(' ') must give 2). */
            if (tk_json_string(j, &s)) goto done;
            char *sp = s.n ? memchr(s.p, ' ', s.n) : NULL;
            if (!sp || memchr(sp + 1, ' ', s.n - (size_t)(sp - s.p) - 1)) {
                tn_fail("%s: model.merges[%zu]: expected \"A B\" with one space, got \"%s\"", where,
                        rank, s.n ? s.p : "");
                goto done;
            }
            if (batch_add(m, mb, rank, s.p, (size_t)(sp - s.p), sp + 1,
                          s.n - (size_t)(sp - s.p) - 1))
                goto done;
        } else if (c == '[') {
            j->p++;
            if (tk_json_string(j, &s) || tk_json_expect(j, ',') || tk_json_string(j, &s2) ||
                tk_json_expect(j, ']'))
                goto done;
            if (batch_add(m, mb, rank, s.p ? s.p : "", s.n, s2.p ? s2.p : "", s2.n)) goto done;
        } else {
            tk_json_fail(j, "a merge (\"A B\" or [\"A\", \"B\"])");
            goto done;
        }
        if (mb->k == BATCH && batch_flush(m, mb, where)) goto done;
        rank++;
    }
    if (more < 0 || batch_flush(m, mb, where)) goto done;
    rc = 0;
done:
    tk_buf_free(&s);
    tk_buf_free(&s2);
    tk_buf_free(&mb->text);
    free(mb);
    return rc;
}

static int opt_string(const cJSON *f, const char *key, const char *where, char **out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(f, key);
    if (!it || cJSON_IsNull(it)) return 0;
    if (!cJSON_IsString(it))
        return tn_fail("%s: model.%s: expected a string or null, got %s", where, key,
                       cJSON_IsNumber(it) ? "a number" : "another type");
    *out = tn_strdup(it->valuestring);
    return *out ? 0 : -1;
}

static int opt_bool(const cJSON *f, const char *key, const char *where, int *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(f, key);
    if (!it || cJSON_IsNull(it)) return 0;
    if (!cJSON_IsBool(it)) return tn_fail("%s: model.%s: expected true or false", where, key);
    *out = cJSON_IsTrue(it);
    return 0;
}

/* The characters that come before '▁' inside vocabulary tokens. With
 * decorations (subword prefix / suffix) a word's characters depend on where
 * the word ends, so no cuts then; nor with too many such characters. */
static void find_cuts(tk_bpe *m) {
    static const char META[] = "\xE2\x96\x81";
    m->cut_n = 0;
    if (m->prefix_n || m->suffix_n || tk_strmap_get(&m->vocab, META, 3) < 0) return;
    for (size_t e = 0; e < m->vocab.count; e++) {
        const char *k = m->vocab.arena + m->vocab.key_off[e];
        size_t n = m->vocab.key_len[e];
        for (size_t i = 1; i + 3 <= n; i++) {
            if (memcmp(k + i, META, 3)) continue;
            size_t j = i - 1, len;
            while (j > 0 && ((unsigned char)k[j] & 0xC0) == 0x80) j--;
            uint32_t c = tk_utf8_decode(k + j, &len);
            size_t a = 0;
            while (a < m->n_cut_after && m->cut_after[a] != c) a++;
            if (a == m->n_cut_after) {
                if (a == sizeof m->cut_after / sizeof m->cut_after[0]) return; /* too many */
                m->cut_after[m->n_cut_after++] = c;
            }
        }
    }
    memcpy(m->cut_char, META, 3);
    m->cut_n = 3;
}

int tk_bpe_load(tk_bpe *m, const char *where, const tk_json *vocab_span,
                const tk_json *merges_span, const cJSON *f) {
    memset(m, 0, sizeof *m);
    m->unk_id = -1;
    char *unk = NULL;
    const cJSON *drop = cJSON_GetObjectItemCaseSensitive(f, "dropout");
    if (drop && !cJSON_IsNull(drop) && !(cJSON_IsNumber(drop) && drop->valuedouble == 0.0))
        return tn_fail("%s: model.dropout: expected null or 0 (dropout makes ids random), got %s",
                       where, cJSON_IsNumber(drop) ? "a non-zero number" : "another type");
    if (opt_string(f, "unk_token", where, &unk) ||
        opt_string(f, "continuing_subword_prefix", where, &m->prefix) ||
        opt_string(f, "end_of_word_suffix", where, &m->suffix) ||
        opt_bool(f, "fuse_unk", where, &m->fuse_unk) ||
        opt_bool(f, "byte_fallback", where, &m->byte_fallback) ||
        opt_bool(f, "ignore_merges", where, &m->ignore_merges))
        goto fail;
    m->prefix_n = m->prefix ? strlen(m->prefix) : 0;
    m->suffix_n = m->suffix ? strlen(m->suffix) : 0;
    if (!vocab_span) {
        tn_fail("%s: model: missing field 'vocab' (expected an object of token: id)", where);
        goto fail;
    }
    if (!merges_span) {
        tn_fail("%s: model: missing field 'merges' (expected a list)", where);
        goto fail;
    }
    tk_json vj = *vocab_span, mj = *merges_span;
    /* A vocabulary entry is ~20 bytes of JSON; start the table near its size. */
    if (tk_strmap_init(&m->vocab, (size_t)(vj.end - vj.p) / 24 + 16) || read_vocab(m, &vj) ||
        read_merges(m, &mj, where))
        goto fail;
    /* The table no longer changes: point into its text. */
    m->id_str = calloc((size_t)m->n_ids + 1, sizeof *m->id_str);
    m->id_len = calloc((size_t)m->n_ids + 1, sizeof *m->id_len);
    if (!m->id_str || !m->id_len) {
        tn_fail("out of memory for %d token names", m->n_ids);
        goto fail;
    }
    for (size_t e = 0; e < m->vocab.count; e++) {
        int32_t id = m->vocab.val[e];
        m->id_str[id] = m->vocab.arena + m->vocab.key_off[e];
        m->id_len[id] = m->vocab.key_len[e];
    }
    if (unk) {
        m->unk_id = tk_strmap_get(&m->vocab, unk, strlen(unk));
        if (m->unk_id < 0) {
            tn_fail("%s: model.unk_token '%s' is not in model.vocab", where, unk);
            goto fail;
        }
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        m->byte_ids[b] = tk_strmap_get(&m->vocab, name, 6);
    }
    if (tk_cache_init(&m->cache, 1 << 16, 1 << 20)) goto fail;
    find_cuts(m);
    free(unk);
    return 0;
fail:
    free(unk);
    tk_bpe_free(m);
    return -1;
}

void tk_bpe_free(tk_bpe *m) {
    tk_strmap_free(&m->vocab);
    tk_pairmap_free(&m->merges);
    tk_cache_free(&m->cache);
    free(m->id_str);
    free(m->id_len);
    free(m->prefix);
    free(m->suffix);
    free(m->syms);
    free(m->heap);
    free(m->tmp);
    tk_buf_free(&m->piece);
    memset(m, 0, sizeof *m);
}

/* ---- the merge loop ---- */

static int merge_less(const tk_merge *a, const tk_merge *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(tk_merge *h, size_t *n, tk_merge x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!merge_less(&x, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static tk_merge heap_pop(tk_merge *h, size_t *n) {
    tk_merge top = h[0], x = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const tk_merge *best = &x;
        if (l < *n && merge_less(&h[l], best)) m = l, best = &h[l];
        if (r < *n && merge_less(&h[r], best)) m = r;
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (*n) h[i] = x;
    return top;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return tn_fail("out of memory for a pre-token of %zu characters", need);
    *p = q;
    *cap = c;
    return 0;
}

static void add_sym(tk_bpe *m, size_t *ns, int32_t c, uint32_t len) {
    size_t i = (*ns)++;
    m->syms[i].c = c;
    m->syms[i].len = len;
    m->syms[i].prev = (int32_t)i - 1;
    m->syms[i].next = -1;
    if (i) m->syms[i - 1].next = (int32_t)i;
}

/* Looks up one character (with prefix/suffix decorations when configured). */
static int32_t char_id(tk_bpe *m, const char *c, size_t cn, int is_first, int is_last) {
    if ((!m->prefix_n || is_first) && (!m->suffix_n || !is_last))
        return tk_strmap_get(&m->vocab, c, cn);
    m->piece.n = 0;
    if (!is_first && tk_buf_add(&m->piece, m->prefix, m->prefix_n)) return -2;
    if (tk_buf_add(&m->piece, c, cn)) return -2;
    if (is_last && tk_buf_add(&m->piece, m->suffix, m->suffix_n)) return -2;
    return tk_strmap_get(&m->vocab, m->piece.p, m->piece.n);
}

static int merge_word(tk_bpe *m, const char *s, size_t n, size_t *count) {
    /* At most one symbol per byte. */
    if (grow((void **)&m->syms, &m->syms_cap, n + 1, sizeof *m->syms) ||
        grow((void **)&m->heap, &m->heap_cap, 2 * n + 2, sizeof *m->heap))
        return -1;
    size_t ns = 0;
    int32_t unk_pending = -1; /* unk id waiting to be added */
    uint32_t unk_len = 0;
    for (size_t i = 0; i < n;) {
        size_t cn = tk_utf8_len((unsigned char)s[i]);
        if (i + cn > n) cn = n - i;
        int32_t id = char_id(m, s + i, cn, i == 0, i + cn == n);
        if (id == -2) return -1;
        if (id >= 0) {
            if (unk_pending >= 0) {
                add_sym(m, &ns, unk_pending, unk_len);
                unk_pending = -1;
            }
            add_sym(m, &ns, id, (uint32_t)cn);
        } else {
            int done = 0;
            if (m->byte_fallback) {
                /* The decorated form's bytes, as tokenizers does. */
                const char *bytes = s + i;
                size_t bn = cn;
                if ((m->prefix_n && i != 0) || (m->suffix_n && i + cn == n)) {
                    bytes = m->piece.p;
                    bn = m->piece.n;
                }
                size_t k = 0;
                while (k < bn && m->byte_ids[(unsigned char)bytes[k]] >= 0) k++;
                if (k == bn) {
                    if (grow((void **)&m->syms, &m->syms_cap, ns + bn + n - i + 1,
                             sizeof *m->syms))
                        return -1;
                    for (k = 0; k < bn; k++)
                        add_sym(m, &ns, m->byte_ids[(unsigned char)bytes[k]], 1);
                    done = 1;
                }
            }
            if (!done && m->unk_id >= 0) {
                if (unk_pending >= 0 && m->fuse_unk) {
                    unk_len += (uint32_t)cn;
                } else {
                    if (unk_pending >= 0) add_sym(m, &ns, unk_pending, unk_len);
                    unk_pending = m->unk_id;
                    unk_len = (uint32_t)cn;
                }
            }
            /* With neither, tokenizers drops the character silently. */
        }
        i += cn;
    }
    if (unk_pending >= 0) add_sym(m, &ns, unk_pending, unk_len);
    if (grow((void **)&m->heap, &m->heap_cap, 2 * ns + 2, sizeof *m->heap)) return -1;

    tk_sym *sy = m->syms;
    tk_merge *h = m->heap;
    size_t hn = 0;
    uint32_t rank, nid;
    for (size_t i = 0; i + 1 < ns; i++)
        if (tk_pairmap_get(&m->merges, (uint32_t)sy[i].c, (uint32_t)sy[i + 1].c, &rank, &nid))
            heap_push(h, &hn, (tk_merge){rank, (uint32_t)i, nid});
    while (hn) {
        tk_merge top = heap_pop(h, &hn);
        tk_sym *cur = &sy[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        tk_sym right = sy[cur->next];
        if (!tk_pairmap_get(&m->merges, (uint32_t)cur->c, (uint32_t)right.c, &rank, &nid) ||
            nid != top.id)
            continue;
        int32_t next_pos = cur->next;
        cur->c = (int32_t)top.id;
        cur->len += right.len;
        cur->next = right.next;
        sy[next_pos].len = 0;
        if (right.next >= 0) sy[right.next].prev = (int32_t)top.pos;
        if (cur->prev >= 0 &&
            tk_pairmap_get(&m->merges, (uint32_t)sy[cur->prev].c, (uint32_t)cur->c, &rank, &nid)) {
            if (grow((void **)&m->heap, &m->heap_cap, hn + 2, sizeof *m->heap)) return -1;
            h = m->heap;
            heap_push(h, &hn, (tk_merge){rank, (uint32_t)cur->prev, nid});
        }
        if (cur->next >= 0 &&
            tk_pairmap_get(&m->merges, (uint32_t)cur->c, (uint32_t)sy[cur->next].c, &rank, &nid)) {
            if (grow((void **)&m->heap, &m->heap_cap, hn + 2, sizeof *m->heap)) return -1;
            h = m->heap;
            heap_push(h, &hn, (tk_merge){rank, top.pos, nid});
        }
    }
    /* Survivors, in order, into tmp. */
    if (grow((void **)&m->tmp, &m->tmp_cap, ns + 1, sizeof *m->tmp)) return -1;
    size_t k = 0;
    for (size_t i = 0; i < ns; i++)
        if (sy[i].len) m->tmp[k++] = sy[i].c;
    *count = k;
    return 0;
}

/* One word: the cache, or the merges. */
static int encode_word(tk_bpe *m, const char *s, size_t n, tn_ids *out) {
    if (n < CACHE_MAX_LEN) {
        const int32_t *hit = tk_cache_get(&m->cache, s, n);
        if (hit) {
            for (int32_t i = 0; i < hit[0]; i++)
                if (tn_ids_push(out, hit[1 + i])) return -1;
            return 0;
        }
    }
    size_t count;
    if (merge_word(m, s, n, &count)) return -1;
    if (n < CACHE_MAX_LEN) tk_cache_put(&m->cache, s, n, m->tmp, count);
    for (size_t i = 0; i < count; i++)
        if (tn_ids_push(out, m->tmp[i])) return -1;
    return 0;
}

int tk_bpe_encode(tk_bpe *m, const char *s, size_t n, tn_ids *out) {
    if (n == 0) return 0;
    if (m->ignore_merges) {
        int32_t id = tk_strmap_get(&m->vocab, s, n);
        if (id >= 0) return tn_ids_push(out, id);
    }
    if (!m->cut_n || n < 64) return encode_word(m, s, n, out);
    size_t start = 0;
    for (const char *p = s + 1; (p = memchr(p, m->cut_char[0], (size_t)(s + n - p)));) {
        size_t at = (size_t)(p - s);
        if (at + m->cut_n > n) break;
        if (memcmp(p, m->cut_char, m->cut_n)) {
            p++;
            continue;
        }
        size_t j = at - 1, len;
        while (j > start && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
        uint32_t before = tk_utf8_decode(s + j, &len);
        size_t a = 0;
        while (a < m->n_cut_after && m->cut_after[a] != before) a++;
        if (a == m->n_cut_after && at > start) {
            if (encode_word(m, s + start, at - start, out)) return -1;
            start = at;
        }
        p += m->cut_n;
    }
    return encode_word(m, s + start, n - start, out);
}
