/* gguf_write.c - the GGUF v3 writer of gguf_write.h. */
#include "io/gguf_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/atomic_file.h"
#include "util/error.h"

typedef struct {
    char name[TN_GGUF_MAX_NAME + 1];
    tn_ggml_type type;
    int n_dims;
    int64_t ne[4];
    uint64_t bytes;
} tensor_info;

struct tn_gguf_writer {
    unsigned char *kv; /* serialised key-values */
    size_t kv_len, kv_cap;
    uint64_t n_kv;
    char **keys;
    size_t keys_cap;
    tensor_info *tensors;
    int n_tensors, tensors_cap;
};

tn_gguf_writer *tn_gguf_writer_new(void) { return tn_calloc(1, sizeof(tn_gguf_writer), "GGUF writer"); }

void tn_gguf_writer_free(tn_gguf_writer *w) {
    if (!w) return;
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    free(w->kv);
    free(w->tensors);
    free(w);
}

static int reserve(tn_gguf_writer *w, size_t more) {
    if (w->kv_len + more <= w->kv_cap) return 0;
    size_t cap = w->kv_cap ? w->kv_cap : 4096;
    while (cap < w->kv_len + more) cap *= 2;
    unsigned char *p = realloc(w->kv, cap);
    if (!p) return tn_fail("out of memory (GGUF metadata of %zu bytes)", cap);
    w->kv = p;
    w->kv_cap = cap;
    return 0;
}

static int put(tn_gguf_writer *w, const void *p, size_t n) {
    if (n == 0) return 0;
    if (reserve(w, n)) return -1;
    memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
    return 0;
}

static int put_u32(tn_gguf_writer *w, uint32_t v) {
    unsigned char b[4];
    for (int k = 0; k < 4; k++) b[k] = (unsigned char)(v >> (8 * k));
    return put(w, b, 4);
}

static int put_u64(tn_gguf_writer *w, uint64_t v) {
    unsigned char b[8];
    for (int k = 0; k < 8; k++) b[k] = (unsigned char)(v >> (8 * k));
    return put(w, b, 8);
}

static int put_string(tn_gguf_writer *w, const char *s, size_t n) { return put_u64(w, n) || put(w, s, n) ? -1 : 0; }

int tn_gguf_has_key(const tn_gguf_writer *w, const char *key) {
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->keys[i], key)) return 1;
    return 0;
}

/* Starts a key-value: the key and the value type. */
static int begin_kv(tn_gguf_writer *w, const char *key, uint32_t type) {
    if (tn_gguf_has_key(w, key)) return tn_fail("GGUF key %s set twice", key);
    if (w->n_kv == w->keys_cap) {
        size_t cap = w->keys_cap ? 2 * w->keys_cap : 64;
        char **k = realloc(w->keys, cap * sizeof *k);
        if (!k) return tn_fail("out of memory");
        w->keys = k;
        w->keys_cap = cap;
    }
    char *copy = tn_strdup(key);
    if (!copy) return -1;
    w->keys[w->n_kv++] = copy;
    return put_string(w, key, strlen(key)) || put_u32(w, type) ? -1 : 0;
}

int tn_gguf_set_u32(tn_gguf_writer *w, const char *key, uint32_t v) { return begin_kv(w, key, TN_GGUF_U32) || put_u32(w, v) ? -1 : 0; }

int tn_gguf_set_i32(tn_gguf_writer *w, const char *key, int32_t v) {
    return begin_kv(w, key, TN_GGUF_I32) || put_u32(w, (uint32_t)v) ? -1 : 0;
}

int tn_gguf_set_f32(tn_gguf_writer *w, const char *key, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    return begin_kv(w, key, TN_GGUF_F32) || put_u32(w, u) ? -1 : 0;
}

int tn_gguf_set_bool(tn_gguf_writer *w, const char *key, int v) {
    unsigned char b = v ? 1 : 0;
    return begin_kv(w, key, TN_GGUF_BOOL) || put(w, &b, 1) ? -1 : 0;
}

int tn_gguf_set_str(tn_gguf_writer *w, const char *key, const char *v) {
    return begin_kv(w, key, TN_GGUF_STRING) || put_string(w, v, strlen(v)) ? -1 : 0;
}

int tn_gguf_set_arr_str(tn_gguf_writer *w, const char *key, const char *const *v, const size_t *lens, uint64_t n) {
    if (begin_kv(w, key, TN_GGUF_ARRAY) || put_u32(w, TN_GGUF_STRING) || put_u64(w, n)) return -1;
    for (uint64_t i = 0; i < n; i++)
        if (put_string(w, v[i], lens ? lens[i] : strlen(v[i]))) return -1;
    return 0;
}

int tn_gguf_set_arr_i32(tn_gguf_writer *w, const char *key, const int32_t *v, uint64_t n) {
    if (begin_kv(w, key, TN_GGUF_ARRAY) || put_u32(w, TN_GGUF_I32) || put_u64(w, n)) return -1;
    for (uint64_t i = 0; i < n; i++)
        if (put_u32(w, (uint32_t)v[i])) return -1;
    return 0;
}

int tn_gguf_set_arr_f32(tn_gguf_writer *w, const char *key, const float *v, uint64_t n) {
    if (begin_kv(w, key, TN_GGUF_ARRAY) || put_u32(w, TN_GGUF_F32) || put_u64(w, n)) return -1;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        if (put_u32(w, u)) return -1;
    }
    return 0;
}

int tn_gguf_add_tensor(tn_gguf_writer *w, const char *name, tn_ggml_type type, int n_dims, const int64_t *ne) {
    if (strlen(name) > TN_GGUF_MAX_NAME) return tn_fail("GGUF tensor name %s is %zu bytes (expected at most %d)", name, strlen(name), TN_GGUF_MAX_NAME);
    if (n_dims < 1 || n_dims > 4) return tn_fail("GGUF tensor %s: %d dimensions (expected 1 to 4)", name, n_dims);
    if (!tn_ggml_type_known((int)type)) return tn_fail("GGUF tensor %s: ggml type %d is not supported", name, (int)type);
    for (int i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name)) return tn_fail("GGUF tensor %s added twice", name);
    uint64_t rows = 1;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] <= 0) return tn_fail("GGUF tensor %s: dimension %d is %lld (expected > 0)", name, d, (long long)ne[d]);
        if (d > 0) rows *= (uint64_t)ne[d];
    }
    int block = tn_ggml_block_size(type);
    if (ne[0] % block)
        return tn_fail("GGUF tensor %s: rows of %lld values cannot be %s (expected a multiple of %d)", name, (long long)ne[0],
                       tn_ggml_type_name(type), block);
    if (w->n_tensors == w->tensors_cap) {
        int cap = w->tensors_cap ? 2 * w->tensors_cap : 256;
        tensor_info *t = realloc(w->tensors, (size_t)cap * sizeof *t);
        if (!t) return tn_fail("out of memory");
        w->tensors = t;
        w->tensors_cap = cap;
    }
    tensor_info *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++) t->ne[d] = ne[d];
    t->bytes = rows * tn_ggml_row_size(type, ne[0]);
    return w->n_tensors++;
}

int tn_gguf_n_tensors(const tn_gguf_writer *w) { return w->n_tensors; }
uint64_t tn_gguf_tensor_bytes(const tn_gguf_writer *w, int i) { return w->tensors[i].bytes; }

static uint64_t pad_to(uint64_t n) { return (n + TN_GGUF_ALIGNMENT - 1) / TN_GGUF_ALIGNMENT * TN_GGUF_ALIGNMENT; }

int tn_gguf_write(tn_gguf_writer *w, const char *path, tn_gguf_fill fill, void *ctx) {
    /* The header and tensor infos, built in a second buffer. */
    tn_gguf_writer h = {0};
    int rc = put(&h, "GGUF", 4) || put_u32(&h, 3) || put_u64(&h, (uint64_t)w->n_tensors) || put_u64(&h, w->n_kv) ||
             put(&h, w->kv, w->kv_len);
    uint64_t offset = 0, largest = 0;
    for (int i = 0; i < w->n_tensors && !rc; i++) {
        const tensor_info *t = &w->tensors[i];
        rc = put_string(&h, t->name, strlen(t->name)) || put_u32(&h, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims && !rc; d++) rc = put_u64(&h, (uint64_t)t->ne[d]);
        rc = rc || put_u32(&h, (uint32_t)t->type) || put_u64(&h, offset);
        offset += pad_to(t->bytes);
        if (t->bytes > largest) largest = t->bytes;
    }
    static const unsigned char zeros[TN_GGUF_ALIGNMENT];
    if (!rc) rc = put(&h, zeros, pad_to(h.kv_len) - h.kv_len);
    if (rc) {
        free(h.kv);
        return -1;
    }
    unsigned char *buf = largest ? malloc(largest) : NULL;
    if (largest && !buf) {
        free(h.kv);
        return tn_fail("%s: out of memory (%llu bytes for one tensor)", path, (unsigned long long)largest);
    }
    tn_atomic_file af;
    if (tn_atomic_open(&af, path) != 0) {
        free(h.kv);
        free(buf);
        return -1;
    }
    rc = tn_atomic_write(&af, h.kv, h.kv_len);
    free(h.kv);
    for (int i = 0; i < w->n_tensors && !rc; i++) {
        const tensor_info *t = &w->tensors[i];
        if (fill(ctx, i, buf, t->bytes) != 0) {
            rc = tn_fail_prefix("%s: tensor %s", path, t->name);
            break;
        }
        rc = tn_atomic_write(&af, buf, t->bytes) || tn_atomic_write(&af, zeros, pad_to(t->bytes) - t->bytes);
    }
    free(buf);
    if (rc) {
        tn_atomic_abort(&af);
        return -1;
    }
    return tn_atomic_commit(&af);
}
