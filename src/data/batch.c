#include "data/batch.h"

#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"
#include "util/error.h"
#include "util/rng.h"

/* The generator of an epoch's order: its own stream per epoch. */
static void epoch_rng(tn_rng *r, uint64_t seed, int epoch) {
    tn_rng_seed(r, seed, tn_hash_string("data.order") + (uint64_t)(uint32_t)epoch);
}

static void shuffle(int32_t *a, size_t n, tn_rng *r) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(tn_rng_next(r) % i); /* bias <= n / 2^64 */
        int32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

typedef struct {
    int32_t len;
    uint64_t key;
    int32_t idx;
} sort_item;

static int by_len_up(const void *pa, const void *pb) {
    const sort_item *a = pa, *b = pb;
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

static int by_len_down(const void *pa, const void *pb) { return by_len_up(pb, pa); }

/* Indices 0..n-1 sorted by len (up or down), ties in a random order. */
static int32_t *sorted_order(const int32_t *len, size_t n, tn_rng *r, int down) {
    sort_item *it = tn_malloc(n * sizeof *it, "a sort");
    int32_t *out = tn_malloc(n * sizeof *out, "an order");
    if (!it || !out) {
        free(it);
        free(out);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) it[i] = (sort_item){len[i], tn_rng_next(r), (int32_t)i};
    qsort(it, n, sizeof *it, down ? by_len_down : by_len_up);
    for (size_t i = 0; i < n; i++) out[i] = it[i].idx;
    free(it);
    return out;
}

void tn_epoch_free(tn_epoch *e) {
    free(e->batch_row);
    free(e->row_item);
    free(e->items);
    free(e->row_len);
    memset(e, 0, sizeof *e);
}

double tn_epoch_padding(const tn_epoch *e) { return e->slots ? 1.0 - (double)e->tokens / (double)e->slots : 0.0; }

/* Best fit: bins indexed by free space; a max-tree over "has a bin with this
 * much free space" finds the smallest free space >= L in O(log C). */
typedef struct {
    int size;   /* leaves, a power of two > capacity */
    int32_t *count; /* bins per free space (leaves) */
    int32_t **bins; /* bins per free space: a stack */
    int32_t *nb, *cb;
    uint8_t *any;   /* tree: any bin in the subtree */
} fit_tree;

static void fit_set(fit_tree *t, int leaf) {
    int i = t->size + leaf;
    t->any[i] = t->nb[leaf] > 0;
    for (i /= 2; i >= 1; i /= 2) t->any[i] = t->any[2 * i] | t->any[2 * i + 1];
}

/* Smallest leaf >= lo with a bin, or -1. */
static int fit_find(const fit_tree *t, int lo) {
    int i = t->size + lo;
    if (t->any[i]) return lo;
    /* climb until a right sibling subtree has a bin */
    while (i > 1) {
        if (!(i & 1) && t->any[i + 1]) {
            i = i + 1;
            while (i < t->size) i = t->any[2 * i] ? 2 * i : 2 * i + 1;
            return i - t->size;
        }
        i /= 2;
    }
    return -1;
}

static int fit_push(fit_tree *t, int leaf, int32_t bin) {
    if (t->nb[leaf] == t->cb[leaf]) {
        int nc = t->cb[leaf] ? 2 * t->cb[leaf] : 4;
        int32_t *p = realloc(t->bins[leaf], (size_t)nc * sizeof *p);
        if (!p) return tn_fail("out of memory packing");
        t->bins[leaf] = p;
        t->cb[leaf] = nc;
    }
    t->bins[leaf][t->nb[leaf]++] = bin;
    if (t->nb[leaf] == 1) fit_set(t, leaf);
    return 0;
}

static int32_t fit_pop(fit_tree *t, int leaf) {
    int32_t bin = t->bins[leaf][--t->nb[leaf]];
    if (t->nb[leaf] == 0) fit_set(t, leaf);
    return bin;
}

static void fit_free(fit_tree *t) {
    if (t->bins)
        for (int i = 0; i < t->size; i++) free(t->bins[i]);
    free(t->bins);
    free(t->nb);
    free(t->cb);
    free(t->any);
}

/* Packs samples (in `order`, longest first) into rows of capacity cap.
 * Fills row_of[k] for order[k]; returns the number of rows, -1 on error. */
static int pack_rows(const int32_t *len, const int32_t *order, size_t n, int cap, int32_t *row_of, int32_t **row_len_out) {
    fit_tree t = {0};
    t.size = 1;
    while (t.size <= cap) t.size *= 2;
    t.bins = calloc((size_t)t.size, sizeof *t.bins);
    t.nb = calloc((size_t)t.size, sizeof *t.nb);
    t.cb = calloc((size_t)t.size, sizeof *t.cb);
    t.any = calloc((size_t)(2 * t.size), 1);
    int32_t *row_len = malloc((n ? n : 1) * sizeof *row_len);
    int rows = 0;
    if (!t.bins || !t.nb || !t.cb || !t.any || !row_len) {
        tn_fail("out of memory packing");
        goto fail;
    }
    for (size_t k = 0; k < n; k++) {
        int L = len[order[k]];
        int free_space = fit_find(&t, L);
        int32_t bin;
        if (free_space < 0) {
            bin = rows++;
            row_len[bin] = 0;
        } else {
            bin = fit_pop(&t, free_space);
        }
        row_len[bin] += L;
        row_of[k] = bin;
        if (cap - row_len[bin] > 0 && fit_push(&t, cap - row_len[bin], bin)) goto fail;
    }
    fit_free(&t);
    *row_len_out = row_len;
    return rows;
fail:
    fit_free(&t);
    free(row_len);
    return -1;
}

int tn_epoch_plan(tn_epoch *e, const tn_data_split *s, const tn_batch_options *o, uint64_t seed, int epoch) {
    memset(e, 0, sizeof *e);
    size_t n = s->n;
    int B = o->batch_size;
    if (B < 1) return tn_fail("batch size: expected at least 1, got %d", B);
    if (n > (size_t)INT32_MAX / 2) return tn_fail("%s: %zu samples (expected fewer than 2^30)", s->name, n);
    tn_rng r;
    epoch_rng(&r, seed, epoch);
    int32_t *len = tn_malloc((n ? n : 1) * sizeof *len, "sample lengths");
    int32_t *order = NULL, *row_of = NULL, *rows_sorted = NULL;
    int rc = -1, maxlen = 0;
    if (!len) return -1;
    for (size_t i = 0; i < n; i++) {
        len[i] = s->samples[i].len;
        if (len[i] > maxlen) maxlen = len[i];
        e->tokens += len[i];
    }
    int packing = o->pack != TN_PACK_NONE;
    int cap = o->pack_length > 0 ? o->pack_length : maxlen;
    if (packing && maxlen > cap) {
        tn_fail("%s: a sample of %d tokens does not fit a packed row of %d (expected --pack-length >= the longest "
                "sample, or a smaller --max-seq-length)",
                s->name, maxlen, cap);
        goto out;
    }
    /* longest first: a smaller last batch then holds the shortest samples */
    if (!(order = sorted_order(len, n, &r, 1))) goto out;
    e->items = tn_malloc((n ? n : 1) * sizeof *e->items, "an epoch");
    if (!e->items) goto out;
    if (!packing) {
        /* one sample a row, rows in length order */
        e->n_rows = (int)n;
        e->row_item = tn_malloc((n + 1) * sizeof *e->row_item, "an epoch");
        e->row_len = tn_malloc((n ? n : 1) * sizeof *e->row_len, "an epoch");
        if (!e->row_item || !e->row_len) goto out;
        for (size_t k = 0; k < n; k++) {
            e->items[k] = order[k];
            e->row_item[k] = (int32_t)k;
            e->row_len[k] = len[order[k]];
        }
        e->row_item[n] = (int32_t)n;
    } else {
        row_of = tn_malloc((n ? n : 1) * sizeof *row_of, "an epoch");
        if (!row_of) goto out;
        int32_t *row_len = NULL;
        int rows = pack_rows(len, order, n, cap, row_of, &row_len);
        if (rows < 0) goto out;
        /* rows sorted by fill (ties random) so a batch's rows are alike */
        rows_sorted = sorted_order(row_len, (size_t)rows, &r, 0);
        int32_t *rank = tn_malloc(((size_t)rows + 1) * sizeof *rank, "an epoch");
        e->row_item = tn_calloc((size_t)rows + 1, sizeof *e->row_item, "an epoch");
        e->row_len = tn_malloc(((size_t)rows + 1) * sizeof *e->row_len, "an epoch");
        if (!rows_sorted || !rank || !e->row_item || !e->row_len) {
            free(rank);
            free(row_len);
            goto out;
        }
        for (int k = 0; k < rows; k++) {
            rank[rows_sorted[k]] = k;
            e->row_len[k] = row_len[rows_sorted[k]];
        }
        /* counting sort of the items by their row's rank, keeping pack order */
        for (size_t k = 0; k < n; k++) e->row_item[rank[row_of[k]] + 1]++;
        for (int k = 0; k < rows; k++) e->row_item[k + 1] += e->row_item[k];
        int32_t *fill = tn_malloc(((size_t)rows + 1) * sizeof *fill, "an epoch");
        if (!fill) {
            free(rank);
            free(row_len);
            goto out;
        }
        memcpy(fill, e->row_item, (size_t)rows * sizeof *fill);
        for (size_t k = 0; k < n; k++) e->items[fill[rank[row_of[k]]]++] = order[k];
        free(fill);
        free(rank);
        free(row_len);
        e->n_rows = rows;
    }
    /* batches of B consecutive rows, then their order shuffled */
    int nb = (e->n_rows + B - 1) / B;
    int32_t *perm = tn_malloc(((size_t)nb + 1) * sizeof *perm, "an epoch");
    e->batch_row = tn_malloc(((size_t)nb + 1) * sizeof *e->batch_row, "an epoch");
    int32_t *new_row_item = tn_malloc(((size_t)e->n_rows + 1) * sizeof *new_row_item, "an epoch");
    int32_t *new_row_len = tn_malloc(((size_t)e->n_rows + 1) * sizeof *new_row_len, "an epoch");
    int32_t *new_items = tn_malloc((n ? n : 1) * sizeof *new_items, "an epoch");
    if (!perm || !e->batch_row || !new_row_item || !new_row_len || !new_items) {
        free(perm);
        free(new_row_item);
        free(new_row_len);
        free(new_items);
        goto out;
    }
    for (int b = 0; b < nb; b++) perm[b] = b;
    shuffle(perm, (size_t)nb, &r);
    /* rewrite rows and items in batch order so batch b's rows are contiguous */
    int row = 0;
    int32_t item = 0;
    for (int b = 0; b < nb; b++) {
        int first = perm[b] * B, last = first + B < e->n_rows ? first + B : e->n_rows;
        e->batch_row[b] = row;
        int S = 0;
        for (int k = first; k < last; k++) {
            new_row_len[row] = e->row_len[k];
            new_row_item[row] = item;
            for (int32_t j = e->row_item[k]; j < e->row_item[k + 1]; j++) new_items[item++] = e->items[j];
            if (e->row_len[k] > S) S = e->row_len[k];
            row++;
        }
        e->slots += (int64_t)(last - first) * S;
    }
    e->batch_row[nb] = row;
    new_row_item[row] = item;
    free(perm);
    free(e->row_item);
    free(e->row_len);
    free(e->items);
    e->row_item = new_row_item;
    e->row_len = new_row_len;
    e->items = new_items;
    e->n_batches = nb;
    rc = 0;
out:
    free(len);
    free(order);
    free(row_of);
    free(rows_sorted);
    if (rc) tn_epoch_free(e);
    return rc;
}

static int grow(int32_t **p, size_t n) {
    int32_t *q = realloc(*p, n * sizeof *q);
    if (!q) return tn_fail("out of memory for a batch of %zu tokens", n);
    *p = q;
    return 0;
}

int tn_batch_fill(tn_batch *b, const tn_epoch *e, int i, const tn_data_split *s, const tn_batch_options *o) {
    if (i < 0 || i >= e->n_batches) return tn_fail("batch %d: expected 0 <= batch < %d", i, e->n_batches);
    int r0 = e->batch_row[i], r1 = e->batch_row[i + 1];
    int B = r1 - r0, S = 0;
    for (int r = r0; r < r1; r++)
        if (e->row_len[r] > S) S = e->row_len[r];
    size_t need = (size_t)B * (size_t)S;
    if (need > b->cap) {
        if (grow(&b->ids, need) || grow(&b->labels, need) || grow(&b->positions, need) || grow(&b->segments, need))
            return -1;
        b->cap = need;
    }
    b->B = B;
    b->S = S;
    b->n_samples = 0;
    b->n_tokens = b->n_targets = 0;
    int shared = o->pack == TN_PACK_SHARED;
    for (int r = r0; r < r1; r++) {
        size_t base = (size_t)(r - r0) * (size_t)S;
        int t = 0;
        for (int32_t k = e->row_item[r]; k < e->row_item[r + 1]; k++) {
            const tn_sample *x = &s->samples[e->items[k]];
            const int32_t *ids = s->tokens + x->start;
            int seg = k - e->row_item[r];
            for (int j = 0; j < x->len; j++, t++) {
                b->ids[base + t] = ids[j];
                int trained = j >= x->offset && j > 0;
                b->labels[base + t] = trained ? ids[j] : TN_IGNORE_INDEX;
                b->positions[base + t] = shared ? t : j;
                b->segments[base + t] = seg;
                b->n_targets += trained;
            }
            b->n_samples++;
        }
        b->n_tokens += t;
        for (; t < S; t++) {
            b->ids[base + t] = o->pad_id;
            b->labels[base + t] = TN_IGNORE_INDEX;
            b->positions[base + t] = 0;
            b->segments[base + t] = -1;
        }
    }
    return 0;
}

void tn_batch_free(tn_batch *b) {
    free(b->ids);
    free(b->labels);
    free(b->positions);
    free(b->segments);
    memset(b, 0, sizeof *b);
}

double tn_padding_unsorted(const tn_data_split *s, int batch_size, uint64_t seed) {
    size_t n = s->n;
    if (!n || batch_size < 1) return 0.0;
    int32_t *idx = malloc(n * sizeof *idx);
    if (!idx) return 0.0;
    for (size_t i = 0; i < n; i++) idx[i] = (int32_t)i;
    tn_rng r;
    tn_rng_seed(&r, seed, tn_hash_string("data.unsorted"));
    shuffle(idx, n, &r);
    int64_t tokens = 0, slots = 0;
    for (size_t a = 0; a < n; a += (size_t)batch_size) {
        size_t z = a + (size_t)batch_size < n ? a + (size_t)batch_size : n;
        int S = 0;
        for (size_t k = a; k < z; k++) {
            int L = s->samples[idx[k]].len;
            tokens += L;
            if (L > S) S = L;
        }
        slots += (int64_t)(z - a) * S;
    }
    free(idx);
    return slots ? 1.0 - (double)tokens / (double)slots : 0.0;
}
