/* tokenizer_map.c - the tokenizer's hash maps, open addressing with linear
 * probing: token text -> id (262k entries for Gemma 3), (id, id) -> merge
 * (515k), and the pre-token cache of the BPE model. */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_internal.h"
#include "util/error.h"

/* A multiply-xorshift hash over 8-byte words: tokens are short, so this is
 * mostly one or two rounds. */
uint64_t tk_hash(const void *data, size_t n) {
    const unsigned char *s = data;
    uint64_t h = 0x243F6A8885A308D3ull ^ (n * 0x9E3779B97F4A7C15ull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, s, n);
        h = (h ^ w) * 0x94D049BB133111EBull;
        h ^= h >> 31;
    }
    h *= 0xD6E8FEB86659FD93ull;
    h ^= h >> 32;
    return h;
}

static size_t pow2_at_least(size_t n) {
    size_t p = 16;
    while (p < n) p *= 2;
    return p;
}

/* ---- string map ---- */

int tk_strmap_init(tk_strmap *m, size_t expected) {
    memset(m, 0, sizeof *m);
    m->cap_entries = expected > 8 ? expected : 8;
    size_t slots = pow2_at_least(m->cap_entries * 2);
    m->key_off = malloc(m->cap_entries * sizeof *m->key_off);
    m->key_len = malloc(m->cap_entries * sizeof *m->key_len);
    m->val = malloc(m->cap_entries * sizeof *m->val);
    m->hash32 = malloc(m->cap_entries * sizeof *m->hash32);
    m->slots = calloc(slots, sizeof *m->slots);
    m->arena_cap = m->cap_entries * 8;
    m->arena = malloc(m->arena_cap);
    m->mask = slots - 1;
    if (!m->key_off || !m->key_len || !m->val || !m->hash32 || !m->slots || !m->arena) {
        tk_strmap_free(m);
        return tn_fail("out of memory for a table of %zu tokens", expected);
    }
    return 0;
}

void tk_strmap_free(tk_strmap *m) {
    free(m->arena);
    free(m->key_off);
    free(m->key_len);
    free(m->val);
    free(m->hash32);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* The slot keeps the hash beside the entry index, so that a probe touches
 * the entry's text only when the hashes agree: one cache miss per lookup
 * instead of three. */
static int64_t find_slot(const tk_strmap *m, const char *k, size_t n, uint32_t h32, size_t *slot) {
    size_t i = h32 & m->mask;
    for (;;) {
        uint64_t sl = m->slots[i];
        if (!sl) {
            *slot = i;
            return -1;
        }
        if ((uint32_t)(sl >> 32) == h32) {
            uint32_t e = (uint32_t)sl - 1;
            if (m->key_len[e] == n && !memcmp(m->arena + m->key_off[e], k, n)) {
                *slot = i;
                return e;
            }
        }
        i = (i + 1) & m->mask;
    }
}

static int grow_slots(tk_strmap *m) {
    size_t slots = (m->mask + 1) * 2;
    uint64_t *s = calloc(slots, sizeof *s);
    if (!s) return tn_fail("out of memory growing a token table");
    size_t mask = slots - 1;
    for (size_t e = 0; e < m->count; e++) {
        size_t i = m->hash32[e] & mask;
        while (s[i]) i = (i + 1) & mask;
        s[i] = ((uint64_t)m->hash32[e] << 32) | ((uint64_t)e + 1);
    }
    free(m->slots);
    m->slots = s;
    m->mask = mask;
    return 0;
}

static int grow_entries(tk_strmap *m) {
    size_t cap = m->cap_entries * 2;
    uint32_t *a = realloc(m->key_off, cap * sizeof *a);
    if (a) m->key_off = a;
    uint32_t *b = a ? realloc(m->key_len, cap * sizeof *b) : NULL;
    if (b) m->key_len = b;
    int32_t *c = b ? realloc(m->val, cap * sizeof *c) : NULL;
    if (c) m->val = c;
    uint32_t *d = c ? realloc(m->hash32, cap * sizeof *d) : NULL;
    if (d) m->hash32 = d;
    if (!d) return tn_fail("out of memory growing a token table to %zu entries", cap);
    m->cap_entries = cap;
    return 0;
}

uint32_t tk_strmap_hash(const char *k, size_t n) { return (uint32_t)tk_hash(k, n); }

void tk_strmap_prefetch(const tk_strmap *m, uint32_t h) {
    if (m->slots) __builtin_prefetch(&m->slots[h & m->mask]);
}

int64_t tk_strmap_put(tk_strmap *m, const char *k, size_t n, int32_t v) {
    return tk_strmap_put_h(m, k, n, (uint32_t)tk_hash(k, n), v);
}

int64_t tk_strmap_put_h(tk_strmap *m, const char *k, size_t n, uint32_t h32, int32_t v) {
    size_t slot;
    int64_t e = find_slot(m, k, n, h32, &slot);
    if (e >= 0) {
        m->val[e] = v;
        return e;
    }
    if (n > UINT32_MAX || m->arena_n + n > UINT32_MAX)
        return tn_fail("token table over 4 GiB of text");
    if (m->count == m->cap_entries && grow_entries(m)) return -1;
    if (m->arena_n + n + 1 > m->arena_cap) {
        size_t cap = m->arena_cap * 2;
        while (cap < m->arena_n + n + 1) cap *= 2;
        char *a = realloc(m->arena, cap);
        if (!a) return tn_fail("out of memory growing a token table's text to %zu bytes", cap);
        m->arena = a;
        m->arena_cap = cap;
    }
    memcpy(m->arena + m->arena_n, k, n);
    m->arena[m->arena_n + n] = 0; /* keys stay NUL-terminated */
    e = (int64_t)m->count++;
    m->key_off[e] = (uint32_t)m->arena_n;
    m->key_len[e] = (uint32_t)n;
    m->val[e] = v;
    m->hash32[e] = h32;
    m->arena_n += n + 1;
    m->slots[slot] = ((uint64_t)h32 << 32) | ((uint64_t)e + 1);
    if (m->count * 2 > m->mask + 1 && grow_slots(m)) return -1;
    return e;
}

int32_t tk_strmap_get(const tk_strmap *m, const char *k, size_t n) {
    return tk_strmap_get_h(m, k, n, (uint32_t)tk_hash(k, n));
}

int32_t tk_strmap_get_h(const tk_strmap *m, const char *k, size_t n, uint32_t h) {
    if (!m->slots) return -1;
    size_t slot;
    int64_t e = find_slot(m, k, n, h, &slot);
    return e >= 0 ? m->val[e] : -1;
}

/* ---- pair map ---- */

int tk_pairmap_init(tk_pairmap *m, size_t expected) {
    memset(m, 0, sizeof *m);
    size_t slots = pow2_at_least(expected * 2 + 16);
    m->keys = malloc(slots * sizeof *m->keys);
    m->rank = malloc(slots * sizeof *m->rank);
    m->id = malloc(slots * sizeof *m->id);
    if (!m->keys || !m->rank || !m->id) {
        tk_pairmap_free(m);
        return tn_fail("out of memory for a table of %zu merges", expected);
    }
    memset(m->keys, 0xFF, slots * sizeof *m->keys);
    m->mask = slots - 1;
    return 0;
}

/* Later entries overwrite earlier ones, as a Rust HashMap built by collect()
 * does. The caller sizes the table for every merge, so it never fills. */
void tk_pairmap_put(tk_pairmap *m, uint32_t a, uint32_t b, uint32_t rank, uint32_t id) {
    uint64_t k = ((uint64_t)a << 32) | b;
    size_t i = (size_t)((k * 0x9E3779B97F4A7C15ull) >> 20) & m->mask;
    while (m->keys[i] != UINT64_MAX && m->keys[i] != k) i = (i + 1) & m->mask;
    if (m->keys[i] == UINT64_MAX) m->count++;
    m->keys[i] = k;
    m->rank[i] = rank;
    m->id[i] = id;
}

void tk_pairmap_free(tk_pairmap *m) {
    free(m->keys);
    free(m->rank);
    free(m->id);
    memset(m, 0, sizeof *m);
}

/* ---- cache ---- */

int tk_cache_init(tk_cache *c, size_t max_entries, size_t max_ids) {
    memset(c, 0, sizeof *c);
    c->max_entries = max_entries;
    c->max_ids = max_ids;
    return tk_strmap_init(&c->keys, 1024);
}

const int32_t *tk_cache_get(const tk_cache *c, const char *k, size_t n) {
    int32_t off = tk_strmap_get(&c->keys, k, n);
    return off >= 0 ? c->ids + off : NULL;
}

/* When the cache is full it starts again empty: simpler than LRU, and the
 * words that matter come back within a few thousand pre-tokens. */
void tk_cache_put(tk_cache *c, const char *k, size_t n, const int32_t *ids, size_t count) {
    if (c->keys.count >= c->max_entries || c->ids_n + count + 1 > c->max_ids) {
        tk_strmap_free(&c->keys);
        c->ids_n = 0;
        if (tk_strmap_init(&c->keys, 1024)) {
            tn_clear_error();
            return;
        }
    }
    if (!c->keys.slots) return;
    if (c->ids_n + count + 1 > c->ids_cap) {
        size_t cap = c->ids_cap ? c->ids_cap * 2 : 4096;
        while (cap < c->ids_n + count + 1) cap *= 2;
        int32_t *p = realloc(c->ids, cap * sizeof *p);
        if (!p) return; /* a cache may forget */
        c->ids = p;
        c->ids_cap = cap;
    }
    size_t off = c->ids_n;
    c->ids[off] = (int32_t)count;
    memcpy(c->ids + off + 1, ids, count * sizeof *ids);
    if (tk_strmap_put(&c->keys, k, n, (int32_t)off) < 0) {
        tn_clear_error();
        return;
    }
    c->ids_n += count + 1;
}

void tk_cache_free(tk_cache *c) {
    tk_strmap_free(&c->keys);
    free(c->ids);
    memset(c, 0, sizeof *c);
}
