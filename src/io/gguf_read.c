/* gguf_read.c - the GGUF reader of gguf_read.h. Parsing walks a cursor over
 * the mapping; every read first checks that the bytes are there, so a
 * truncated or lying file ends in a message, never past the mapping. */
#include "io/gguf_read.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

/* ---- ggml's type table (ggml.c type_traits; ids 4, 5, 31-33, 36-38 were
 * removed from ggml and are refused) ---- */

typedef struct {
    const char *name;
    int block, bytes;
} type_info;

static const type_info ggml_types[] = {
    [0] = {"F32", 1, 4},         [1] = {"F16", 1, 2},       [2] = {"Q4_0", 32, 18},     [3] = {"Q4_1", 32, 20},
    [6] = {"Q5_0", 32, 22},      [7] = {"Q5_1", 32, 24},    [8] = {"Q8_0", 32, 34},     [9] = {"Q8_1", 32, 36},
    [10] = {"Q2_K", 256, 84},    [11] = {"Q3_K", 256, 110}, [12] = {"Q4_K", 256, 144},  [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},   [15] = {"Q8_K", 256, 292}, [16] = {"IQ2_XXS", 256, 66}, [17] = {"IQ2_XS", 256, 74},
    [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50}, [20] = {"IQ4_NL", 32, 18},  [21] = {"IQ3_S", 256, 110},
    [22] = {"IQ2_S", 256, 82},   [23] = {"IQ4_XS", 256, 136}, [24] = {"I8", 1, 1},      [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},        [27] = {"I64", 1, 8},      [28] = {"F64", 1, 8},       [29] = {"IQ1_M", 256, 56},
    [30] = {"BF16", 1, 2},       [34] = {"TQ1_0", 256, 54}, [35] = {"TQ2_0", 256, 66},  [39] = {"MXFP4", 32, 17},
    [40] = {"NVFP4", 64, 36},    [41] = {"Q1_0", 128, 18},  [42] = {"Q2_0", 64, 18},
};
#define N_GGML_TYPES ((int)(sizeof ggml_types / sizeof ggml_types[0]))

const char *tn_gguf_type_name(int t) { return t >= 0 && t < N_GGML_TYPES ? ggml_types[t].name : NULL; }
int tn_gguf_type_block(int t) { return tn_gguf_type_name(t) ? ggml_types[t].block : 0; }
int tn_gguf_type_bytes(int t) { return tn_gguf_type_name(t) ? ggml_types[t].bytes : 0; }

/* Value types: name and size (0: variable). */
static const struct {
    const char *name;
    int size;
} value_types[] = {
    {"u8", 1}, {"i8", 1}, {"u16", 2}, {"i16", 2}, {"u32", 4}, {"i32", 4}, {"f32", 4},
    {"bool", 1}, {"string", 0}, {"array", 0}, {"u64", 8}, {"i64", 8}, {"f64", 8},
};
#define N_VALUE_TYPES 13u

const char *tn_gguf_value_type_name(uint32_t t) { return t < N_VALUE_TYPES ? value_types[t].name : "unknown"; }

/* ---- little-endian decoding ---- */

static uint64_t le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* ---- the cursor ---- */

typedef struct {
    const unsigned char *base;
    uint64_t size, pos;
    const char *path;
} cursor;

static uint64_t left(const cursor *c) { return c->size - c->pos; }

/* "what" names the field in the message. */
static int take(cursor *c, uint64_t n, const char *what, const unsigned char **out) {
    if (n > left(c))
        return tn_fail("%s: truncated: %s needs %llu bytes at offset %llu, the file has %llu left (file size %llu)", c->path, what,
                       (unsigned long long)n, (unsigned long long)c->pos, (unsigned long long)left(c), (unsigned long long)c->size);
    *out = c->base + c->pos;
    c->pos += n;
    return 0;
}

static int take_u32(cursor *c, const char *what, uint32_t *v) {
    const unsigned char *p = NULL;
    if (take(c, 4, what, &p)) return -1;
    *v = (uint32_t)le(p, 4);
    return 0;
}

static int take_u64(cursor *c, const char *what, uint64_t *v) {
    const unsigned char *p = NULL;
    if (take(c, 8, what, &p)) return -1;
    *v = le(p, 8);
    return 0;
}

/* A string: u64 length, bytes. The length is checked against what is left
 * before anything else (a 2 GB claim in a small file is a message). */
static int take_string(cursor *c, const char *what, const unsigned char **s, uint64_t *n) {
    uint64_t at = c->pos;
    if (take_u64(c, what, n)) return -1;
    if (*n > left(c))
        return tn_fail("%s: %s at offset %llu claims %llu bytes, past the end of the file (expected at most %llu)", c->path, what,
                       (unsigned long long)at, (unsigned long long)*n, (unsigned long long)left(c));
    return take(c, *n, what, s);
}

/* ---- opening ---- */

void tn_gguf_close(tn_gguf *g) {
    if (g->kv)
        for (int64_t i = 0; i < g->n_kv; i++) {
            free(g->kv[i].key);
            free(g->kv[i].str_off);
        }
    free(g->kv);
    free(g->tensors);
    free(g->kv_sorted);
    free(g->tensor_sorted);
    free(g->path);
    tn_unmap_file(&g->file);
    memset(g, 0, sizeof *g);
}

/* Sorting indices by name (qsort has no context argument: one sort at a
 * time, which is all that opening needs). */
static const tn_gguf *sort_g;
static int by_key(const void *a, const void *b) {
    return strcmp(sort_g->kv[*(const int64_t *)a].key, sort_g->kv[*(const int64_t *)b].key);
}
static int by_name(const void *a, const void *b) {
    return strcmp(sort_g->tensors[*(const int64_t *)a].name, sort_g->tensors[*(const int64_t *)b].name);
}

static int sorted_index(tn_gguf *g, int64_t n, int tensors, int64_t **out) {
    *out = tn_malloc((size_t)(n ? n : 1) * sizeof **out, "GGUF index");
    if (!*out) return -1;
    for (int64_t i = 0; i < n; i++) (*out)[i] = i;
    sort_g = g;
    qsort(*out, (size_t)n, sizeof **out, tensors ? by_name : by_key);
    sort_g = NULL;
    for (int64_t i = 1; i < n; i++) {
        int64_t a = (*out)[i - 1], b = (*out)[i];
        if (a > b) {
            int64_t t = a;
            a = b, b = t;
        }
        if (tensors && !strcmp(g->tensors[a].name, g->tensors[b].name))
            return tn_fail("%s: duplicate tensor name '%s' (tensors %lld and %lld; llama.cpp refuses the file)", g->path, g->tensors[a].name,
                           (long long)a, (long long)b);
        if (!tensors && !strcmp(g->kv[a].key, g->kv[b].key))
            return tn_fail("%s: duplicate key '%s' (key-values %lld and %lld; llama.cpp refuses the file)", g->path, g->kv[a].key,
                           (long long)a, (long long)b);
    }
    return 0;
}

/* One value of type t (not an array) at the cursor: checks it and moves past. */
static int skip_value(cursor *c, uint32_t t, const char *key) {
    const unsigned char *p;
    if (t == TN_GGUF_STRING) {
        uint64_t n;
        char what[160];
        snprintf(what, sizeof what, "the string value of key '%.100s'", key);
        return take_string(c, what, &p, &n);
    }
    char what[160];
    snprintf(what, sizeof what, "the %s value of key '%.100s'", value_types[t].name, key);
    if (take(c, (uint64_t)value_types[t].size, what, &p)) return -1;
    if (t == TN_GGUF_BOOL && *p > 1)
        return tn_fail("%s: key '%.100s': bool value at offset %llu is %u (expected 0 or 1)", c->path, key, (unsigned long long)c->pos - 1, *p);
    return 0;
}

static int read_kv(cursor *c, tn_gguf *g, int64_t i) {
    tn_gguf_kv *kv = &g->kv[i];
    const unsigned char *s;
    uint64_t n;
    char what[64];
    snprintf(what, sizeof what, "key %lld", (long long)i);
    if (take_string(c, what, &s, &n)) return -1;
    if (n == 0) return tn_fail("%s: key %lld at offset %llu is empty (expected a name)", c->path, (long long)i, (unsigned long long)(c->pos - 8));
    if (memchr(s, 0, n)) return tn_fail("%s: key %lld holds a NUL byte (expected a name)", c->path, (long long)i);
    kv->key = tn_malloc(n + 1, "GGUF key");
    if (!kv->key) return -1;
    memcpy(kv->key, s, n);
    kv->key[n] = 0;
    char field[160];
    snprintf(field, sizeof field, "the value type of key '%.100s'", kv->key);
    if (take_u32(c, field, &kv->type)) return -1;
    if (kv->type >= N_VALUE_TYPES)
        return tn_fail("%s: key '%.100s' has value type %u (expected 0..12: u8, i8, u16, i16, u32, i32, f32, bool, string, array, u64, i64, f64)",
                       c->path, kv->key, kv->type);
    if (kv->type != TN_GGUF_ARRAY) {
        uint64_t at = c->pos;
        if (skip_value(c, kv->type, kv->key)) return -1;
        if (kv->type == TN_GGUF_STRING) {
            kv->n = le(c->base + at, 8);
            kv->data = c->base + at + 8;
        } else {
            kv->n = 1;
            kv->data = c->base + at;
        }
        return 0;
    }
    snprintf(field, sizeof field, "the array header of key '%.100s'", kv->key);
    if (take_u32(c, field, &kv->elem_type) || take_u64(c, field, &kv->n)) return -1;
    if (kv->elem_type >= N_VALUE_TYPES || kv->elem_type == TN_GGUF_ARRAY)
        return tn_fail("%s: key '%.100s': array element type %u (expected a scalar or string type, 0..12 but not 9: arrays of arrays "
                       "are not GGUF)",
                       c->path, kv->key, kv->elem_type);
    uint64_t min = kv->elem_type == TN_GGUF_STRING ? 8 : (uint64_t)value_types[kv->elem_type].size;
    if (kv->n > left(c) / min)
        return tn_fail("%s: key '%.100s': array of %llu %s at offset %llu needs at least %llu bytes, the file has %llu left", c->path, kv->key,
                       (unsigned long long)kv->n, value_types[kv->elem_type].name, (unsigned long long)c->pos,
                       (unsigned long long)(kv->n > UINT64_MAX / min ? UINT64_MAX : kv->n * min), (unsigned long long)left(c));
    kv->data = c->base + c->pos;
    if (kv->elem_type == TN_GGUF_STRING) {
        kv->str_off = tn_malloc((size_t)(kv->n ? kv->n : 1) * sizeof *kv->str_off, "GGUF string array");
        if (!kv->str_off) return -1;
        for (uint64_t k = 0; k < kv->n; k++) {
            kv->str_off[k] = (uint64_t)(c->base + c->pos - kv->data);
            uint64_t len;
            snprintf(field, sizeof field, "element %llu of key '%.100s'", (unsigned long long)k, kv->key);
            if (take_string(c, field, &s, &len)) return -1;
        }
        return 0;
    }
    if (kv->elem_type == TN_GGUF_BOOL) {
        for (uint64_t k = 0; k < kv->n; k++)
            if (kv->data[k] > 1)
                return tn_fail("%s: key '%.100s': element %llu is %u (expected a bool, 0 or 1)", c->path, kv->key, (unsigned long long)k,
                               kv->data[k]);
    }
    const unsigned char *p;
    snprintf(field, sizeof field, "the array of key '%.100s'", kv->key);
    return take(c, kv->n * min, field, &p);
}

static int read_tensor_info(cursor *c, tn_gguf *g, int64_t i) {
    tn_gguf_tensor *t = &g->tensors[i];
    const unsigned char *s;
    uint64_t n;
    char what[64];
    snprintf(what, sizeof what, "the name of tensor %lld", (long long)i);
    if (take_string(c, what, &s, &n)) return -1;
    if (n >= sizeof t->name)
        return tn_fail("%s: tensor %lld: name of %llu bytes ('%.40s...'; expected fewer than 64, as ggml's GGML_MAX_NAME)", c->path,
                       (long long)i, (unsigned long long)n, (const char *)s);
    if (n == 0 || memchr(s, 0, n)) return tn_fail("%s: tensor %lld: empty name or a NUL byte in it (expected a name)", c->path, (long long)i);
    memcpy(t->name, s, n);
    t->name[n] = 0;
    uint32_t nd, type;
    char field[160];
    snprintf(field, sizeof field, "the n_dims of tensor '%s'", t->name);
    if (take_u32(c, field, &nd)) return -1;
    if (nd > TN_GGUF_MAX_DIMS) return tn_fail("%s: tensor '%s' has %u dimensions (expected at most %d)", c->path, t->name, nd, TN_GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    uint64_t elems = 1;
    int overflow = 0;
    for (int d = 0; d < TN_GGUF_MAX_DIMS; d++) {
        uint64_t v = 1;
        snprintf(field, sizeof field, "dimension %d of tensor '%s'", d, t->name);
        if (d < t->n_dims && take_u64(c, field, &v)) return -1;
        if (v > (uint64_t)INT64_MAX)
            return tn_fail("%s: tensor '%s': dimension %d is %lld (expected a size >= 0)", c->path, t->name, d, (long long)(int64_t)v);
        t->ne[d] = (int64_t)v;
        if (v && elems > (uint64_t)INT64_MAX / v) overflow = 1;
        elems *= v;
    }
    char shape[128];
    if (overflow)
        return tn_fail("%s: tensor '%s' with shape %s has more than 2^63 elements", c->path, t->name, tn_gguf_shape_string(t, shape, sizeof shape));
    t->n_elements = elems;
    snprintf(field, sizeof field, "the ggml type of tensor '%s'", t->name);
    if (take_u32(c, field, &type)) return -1;
    if (!tn_gguf_type_name((int)type))
        return tn_fail("%s: tensor '%s' has ggml type %u, which ggml does not define (expected 0..42 less the removed 4, 5, 31-33, 36-38)",
                       c->path, t->name, type);
    t->type = (int)type;
    const int64_t block = tn_gguf_type_block(t->type);
    if (t->ne[0] % block)
        return tn_fail("%s: tensor '%s' of type %s has rows of %lld values (expected a multiple of the block size %lld)", c->path, t->name,
                       tn_gguf_type_name(t->type), (long long)t->ne[0], (long long)block);
    uint64_t blocks = elems / (uint64_t)block, bytes = (uint64_t)tn_gguf_type_bytes(t->type);
    if (blocks > UINT64_MAX / 2 / bytes) return tn_fail("%s: tensor '%s': size in bytes overflows", c->path, t->name);
    t->n_bytes = blocks * bytes;
    snprintf(field, sizeof field, "the offset of tensor '%s'", t->name);
    if (take_u64(c, field, &t->offset)) return -1;
    return 0;
}

static int parse(tn_gguf *g) {
    cursor c = {g->file.data, g->file.size, 0, g->path};
    if (c.size < 4) return tn_fail("%s: truncated: %llu bytes (expected a GGUF file, at least 24 bytes of header)", g->path, (unsigned long long)c.size);
    if (memcmp(c.base, "GGUF", 4)) {
        char shown[8];
        for (int i = 0; i < 4; i++) shown[i] = (c.base[i] >= 32 && c.base[i] < 127) ? (char)c.base[i] : '?';
        shown[4] = 0;
        return tn_fail("%s: not a GGUF file: it starts with '%s' (0x%02x%02x%02x%02x), expected the magic 'GGUF'", g->path, shown, c.base[0],
                       c.base[1], c.base[2], c.base[3]);
    }
    c.pos = 4;
    uint64_t nt, nkv;
    if (take_u32(&c, "the version", &g->version) || take_u64(&c, "the tensor count", &nt) || take_u64(&c, "the key-value count", &nkv))
        return -1;
    if (g->version != 2 && g->version != 3)
        return tn_fail("%s: GGUF version %u (expected 3, or 2 which has the same layout; version 1 is no longer supported by llama.cpp)",
                       g->path, g->version);
    /* A key-value takes at least 8 + 1 + 4 + 1 bytes, a tensor info 8 + 1 + 4 + 4 + 8. */
    if (nkv > left(&c) / 14)
        return tn_fail("%s: key-value count %llu cannot fit in the %llu bytes left (expected at most %llu)", g->path, (unsigned long long)nkv,
                       (unsigned long long)left(&c), (unsigned long long)(left(&c) / 14));
    if (nt > left(&c) / 25)
        return tn_fail("%s: tensor count %llu cannot fit in the %llu bytes left (expected at most %llu)", g->path, (unsigned long long)nt,
                       (unsigned long long)left(&c), (unsigned long long)(left(&c) / 25));
    g->n_kv = (int64_t)nkv;
    g->n_tensors = (int64_t)nt;
    g->kv = tn_calloc((size_t)(nkv ? nkv : 1), sizeof *g->kv, "GGUF key-values");
    g->tensors = tn_calloc((size_t)(nt ? nt : 1), sizeof *g->tensors, "GGUF tensor infos");
    if (!g->kv || !g->tensors) return -1;
    for (int64_t i = 0; i < g->n_kv; i++)
        if (read_kv(&c, g, i)) {
            g->n_kv = i + 1; /* free what was read */
            return -1;
        }
    if (sorted_index(g, g->n_kv, 0, &g->kv_sorted)) return -1;
    g->alignment = 32;
    const tn_gguf_kv *al = tn_gguf_find(g, "general.alignment");
    if (al) {
        if (al->type != TN_GGUF_U32)
            return tn_fail("%s: general.alignment has type %s (expected u32)", g->path, tn_gguf_value_type_name(al->type));
        g->alignment = le(al->data, 4);
        if (g->alignment == 0 || (g->alignment & (g->alignment - 1)))
            return tn_fail("%s: general.alignment is %llu (expected a power of two)", g->path, (unsigned long long)g->alignment);
    }
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (read_tensor_info(&c, g, i)) return -1;
    if (sorted_index(g, g->n_tensors, 1, &g->tensor_sorted)) return -1;
    /* The data section starts at the next multiple of the alignment. */
    uint64_t start = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
    if (start < c.pos) start = UINT64_MAX; /* overflow: caught below */
    if (g->n_tensors > 0 && start > c.size)
        return tn_fail("%s: truncated: the tensor data should start at offset %llu, past the end of the file (%llu bytes)", g->path,
                       (unsigned long long)start, (unsigned long long)c.size);
    g->data_offset = start > c.size ? c.size : start;
    const uint64_t data_size = c.size - g->data_offset;
    uint64_t expected = 0;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        tn_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment)
            return tn_fail("%s: tensor '%s': offset %llu is not a multiple of the alignment %llu", g->path, t->name, (unsigned long long)t->offset,
                           (unsigned long long)g->alignment);
        if (t->offset > data_size || t->n_bytes > data_size - t->offset)
            return tn_fail("%s: tensor '%s': data [%llu, %llu) of the data section runs past the end of the file (the data section holds %llu "
                           "bytes; truncated file?)",
                           g->path, t->name, (unsigned long long)t->offset, (unsigned long long)(t->offset + t->n_bytes),
                           (unsigned long long)data_size);
        if (t->offset != expected)
            return tn_fail("%s: tensor '%s': offset %llu, expected %llu (each tensor follows the previous one, padded to %llu bytes, as "
                           "llama.cpp requires)",
                           g->path, t->name, (unsigned long long)t->offset, (unsigned long long)expected, (unsigned long long)g->alignment);
        t->data = c.base + g->data_offset + t->offset;
        expected = t->offset + (t->n_bytes + g->alignment - 1) / g->alignment * g->alignment;
    }
    return 0;
}

int tn_gguf_open(const char *path, tn_gguf *g) {
    memset(g, 0, sizeof *g);
    g->path = tn_strdup(path);
    if (!g->path) return -1;
    if (tn_map_file(path, &g->file) || parse(g)) {
        tn_gguf_close(g);
        return -1;
    }
    return 0;
}

/* ---- lookups ---- */

const tn_gguf_kv *tn_gguf_find(const tn_gguf *g, const char *key) {
    int64_t lo = 0, hi = g->n_kv;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->kv[g->kv_sorted[mid]].key, key);
        if (c == 0) return &g->kv[g->kv_sorted[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const tn_gguf_tensor *tn_gguf_find_tensor(const tn_gguf *g, const char *name) {
    int64_t lo = 0, hi = g->n_tensors;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->tensors[g->tensor_sorted[mid]].name, name);
        if (c == 0) return &g->tensors[g->tensor_sorted[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static int is_int_type(uint32_t t) {
    return t == TN_GGUF_U8 || t == TN_GGUF_I8 || t == TN_GGUF_U16 || t == TN_GGUF_I16 || t == TN_GGUF_U32 || t == TN_GGUF_I32 ||
           t == TN_GGUF_U64 || t == TN_GGUF_I64;
}

/* An integer of type t at p; *ok = 0 for a u64 above INT64_MAX. */
static int64_t int_at(const unsigned char *p, uint32_t t, int *ok) {
    *ok = 1;
    switch (t) {
    case TN_GGUF_U8:
    case TN_GGUF_BOOL: return p[0];
    case TN_GGUF_I8: return (int8_t)p[0];
    case TN_GGUF_U16: return (int64_t)le(p, 2);
    case TN_GGUF_I16: return (int16_t)le(p, 2);
    case TN_GGUF_U32: return (int64_t)le(p, 4);
    case TN_GGUF_I32: return (int32_t)le(p, 4);
    case TN_GGUF_U64: {
        uint64_t v = le(p, 8);
        if (v > (uint64_t)INT64_MAX) *ok = 0;
        return (int64_t)v;
    }
    case TN_GGUF_I64: return (int64_t)le(p, 8);
    }
    *ok = 0;
    return 0;
}

static double float_at(const unsigned char *p, uint32_t t) {
    if (t == TN_GGUF_F32) {
        uint32_t u = (uint32_t)le(p, 4);
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    if (t == TN_GGUF_F64) {
        uint64_t u = le(p, 8);
        double d;
        memcpy(&d, &u, 8);
        return d;
    }
    int ok;
    return (double)int_at(p, t, &ok);
}

static int wrong_type(const tn_gguf *g, const tn_gguf_kv *kv, const char *expected) {
    const char *got = tn_gguf_value_type_name(kv->type);
    if (kv->type == TN_GGUF_ARRAY)
        return tn_fail("%s: key '%s' is an array of %s (expected %s)", g->path, kv->key, tn_gguf_value_type_name(kv->elem_type), expected);
    return tn_fail("%s: key '%s' has type %s (expected %s)", g->path, kv->key, got, expected);
}

int tn_gguf_get_int(const tn_gguf *g, const char *key, int64_t *out) {
    const tn_gguf_kv *kv = tn_gguf_find(g, key);
    if (!kv) return 0;
    int ok;
    if (!is_int_type(kv->type)) return wrong_type(g, kv, "an integer");
    int64_t v = int_at(kv->data, kv->type, &ok);
    if (!ok) return tn_fail("%s: key '%s': %llu is too large (expected at most 2^63-1)", g->path, key, (unsigned long long)le(kv->data, 8));
    *out = v;
    return 1;
}

int tn_gguf_get_float(const tn_gguf *g, const char *key, double *out) {
    const tn_gguf_kv *kv = tn_gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type != TN_GGUF_F32 && kv->type != TN_GGUF_F64 && !is_int_type(kv->type)) return wrong_type(g, kv, "a number");
    *out = float_at(kv->data, kv->type);
    return 1;
}

int tn_gguf_get_bool(const tn_gguf *g, const char *key, int *out) {
    const tn_gguf_kv *kv = tn_gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type != TN_GGUF_BOOL) return wrong_type(g, kv, "a bool");
    *out = kv->data[0] != 0;
    return 1;
}

int tn_gguf_get_str(const tn_gguf *g, const char *key, const char **s, size_t *len) {
    const tn_gguf_kv *kv = tn_gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type != TN_GGUF_STRING) return wrong_type(g, kv, "a string");
    *s = (const char *)kv->data;
    *len = (size_t)kv->n;
    return 1;
}

char *tn_gguf_get_strdup(const tn_gguf *g, const char *key, int *failed) {
    const char *s = NULL;
    size_t n = 0;
    *failed = 0;
    int r = tn_gguf_get_str(g, key, &s, &n);
    if (r <= 0) {
        *failed = r < 0;
        return NULL;
    }
    if (memchr(s, 0, n)) {
        *failed = 1;
        return tn_fail("%s: key '%s': the string holds a NUL byte", g->path, key), NULL;
    }
    char *c = tn_malloc(n + 1, "GGUF string");
    if (!c) {
        *failed = 1;
        return NULL;
    }
    memcpy(c, s, n);
    c[n] = 0;
    return c;
}

int tn_gguf_get_arr(const tn_gguf *g, const char *key, int elem_type, const tn_gguf_kv **out) {
    const tn_gguf_kv *kv = tn_gguf_find(g, key);
    if (!kv) return 0;
    char want[64];
    snprintf(want, sizeof want, "an array%s%s", elem_type >= 0 ? " of " : "", elem_type >= 0 ? tn_gguf_value_type_name((uint32_t)elem_type) : "");
    if (kv->type != TN_GGUF_ARRAY) return wrong_type(g, kv, want);
    if (elem_type >= 0 && kv->elem_type != (uint32_t)elem_type) {
        /* Numbers of another width are accepted where the caller reads them through arr_int / arr_float. */
        int want_num = elem_type != TN_GGUF_STRING, have_num = kv->elem_type != TN_GGUF_STRING;
        int want_float = elem_type == TN_GGUF_F32 || elem_type == TN_GGUF_F64;
        int have_float = kv->elem_type == TN_GGUF_F32 || kv->elem_type == TN_GGUF_F64;
        if (!(want_num && have_num && (want_float || !have_float))) return wrong_type(g, kv, want);
    }
    *out = kv;
    return 1;
}

const char *tn_gguf_arr_str(const tn_gguf_kv *kv, uint64_t i, size_t *len) {
    const unsigned char *p = kv->data + kv->str_off[i];
    *len = (size_t)le(p, 8);
    return (const char *)p + 8;
}

int64_t tn_gguf_arr_int(const tn_gguf_kv *kv, uint64_t i) {
    int ok;
    if (kv->elem_type == TN_GGUF_F32 || kv->elem_type == TN_GGUF_F64) return (int64_t)tn_gguf_arr_float(kv, i);
    return int_at(kv->data + i * (uint64_t)value_types[kv->elem_type].size, kv->elem_type, &ok);
}

double tn_gguf_arr_float(const tn_gguf_kv *kv, uint64_t i) {
    return float_at(kv->data + i * (uint64_t)value_types[kv->elem_type].size, kv->elem_type);
}

const char *tn_gguf_shape_string(const tn_gguf_tensor *t, char *buf, int cap) {
    int n = snprintf(buf, (size_t)cap, "[");
    for (int d = t->n_dims - 1; d >= 0 && n < cap; d--) n += snprintf(buf + n, (size_t)(cap - n), "%lld%s", (long long)t->ne[d], d ? ", " : "");
    if (n < cap) snprintf(buf + n, (size_t)(cap - n), "]");
    return buf;
}
