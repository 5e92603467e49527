/* test_gguf_read.c - the GGUF reader on files written by tune's writer
 * (every value type read back) and on a corpus of broken files built byte
 * by byte: each must give its own message naming the file and what was
 * expected, never a crash (the suite runs under ASan and UBSan). Every
 * truncation of a valid file, and a few thousand random byte changes, are
 * opened too. */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/gguf_read.h"
#include "io/gguf_write.h"
#include "util/error.h"
#include "util/platform.h"
#include "util/rng.h"

static char dir[256];

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/tune-gguf-read-test-%d", (int)getpid());
    return tn_make_dirs(dir) == 0 ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- building files byte by byte ---- */

typedef struct {
    unsigned char *p;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *s, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void u32(bytes *b, uint32_t v) {
    unsigned char x[4];
    for (int i = 0; i < 4; i++) x[i] = (unsigned char)(v >> (8 * i));
    put(b, x, 4);
}
static void u64(bytes *b, uint64_t v) {
    unsigned char x[8];
    for (int i = 0; i < 8; i++) x[i] = (unsigned char)(v >> (8 * i));
    put(b, x, 8);
}
static void str(bytes *b, const char *s) {
    u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void header(bytes *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    put(b, "GGUF", 4);
    u32(b, version);
    u64(b, n_tensors);
    u64(b, n_kv);
}
static void kv_str(bytes *b, const char *key, const char *v) {
    str(b, key);
    u32(b, TN_GGUF_STRING);
    str(b, v);
}
static void kv_u32(bytes *b, const char *key, uint32_t v) {
    str(b, key);
    u32(b, TN_GGUF_U32);
    u32(b, v);
}
static void tensor(bytes *b, const char *name, int n_dims, const uint64_t *ne, uint32_t type, uint64_t offset) {
    str(b, name);
    u32(b, (uint32_t)n_dims);
    for (int i = 0; i < n_dims; i++) u64(b, ne[i]);
    u32(b, type);
    u64(b, offset);
}
static void pad(bytes *b, size_t align) {
    while (b->n % align) put(b, "", 1);
}
static void zeros(bytes *b, size_t n) {
    for (size_t i = 0; i < n; i++) put(b, "\0", 1);
}

static const char *save(const char *name, const bytes *b) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (b->n) assert_int_equal(fwrite(b->p, 1, b->n, f), b->n);
    fclose(f);
    return path;
}

/* A valid file: two keys, tensor "a" F32 [4] at 0 and "b" Q8_0 [2, 32] at 32. */
static void valid_file(bytes *b) {
    header(b, 3, 2, 2);
    kv_str(b, "general.architecture", "llama");
    kv_u32(b, "llama.block_count", 2);
    uint64_t ne_a[1] = {4}, ne_b[2] = {32, 2};
    tensor(b, "a", 1, ne_a, 0, 0);
    tensor(b, "b", 2, ne_b, 8, 32);
    pad(b, 32);
    for (int i = 0; i < 4; i++) {
        float v = (float)i + 0.5f;
        put(b, &v, 4);
    }
    zeros(b, 16);
    for (int i = 0; i < 68; i++) put(b, &(unsigned char){(unsigned char)i}, 1);
}

/* Opening must fail with a message naming the file and holding frag. */
static void expect_error(const char *path, const char *frag1, const char *frag2) {
    tn_gguf g;
    tn_clear_error();
    assert_int_not_equal(tn_gguf_open(path, &g), 0);
    const char *msg = tn_error();
    if (!strstr(msg, path) || !strstr(msg, frag1) || (frag2 && !strstr(msg, frag2)))
        fail_msg("error '%s' lacks the path or '%s'%s%s", msg, frag1, frag2 ? " or " : "", frag2 ? frag2 : "");
}

/* ---- valid files ---- */

static int fill_tensor(void *ctx, int i, void *buf, uint64_t n) {
    (void)ctx;
    for (uint64_t k = 0; k < n; k++) ((unsigned char *)buf)[k] = (unsigned char)(k * 7 + (uint64_t)i);
    return 0;
}

static void test_writer_round_trip(void **state) {
    (void)state;
    tn_gguf_writer *w = tn_gguf_writer_new();
    const char *strs[3] = {"one", "", "thr\xc3\xa9\xe2\x96\x81"};
    int32_t ints[3] = {-1, 0, 2147483647};
    float floats[2] = {1.5f, -0.25f};
    assert_int_equal(tn_gguf_set_str(w, "general.architecture", "qwen2"), 0);
    assert_int_equal(tn_gguf_set_u32(w, "qwen2.block_count", 24), 0);
    assert_int_equal(tn_gguf_set_i32(w, "x.neg", -7), 0);
    assert_int_equal(tn_gguf_set_f32(w, "qwen2.rope.freq_base", 1e6f), 0);
    assert_int_equal(tn_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", 1), 0);
    assert_int_equal(tn_gguf_set_arr_str(w, "tokenizer.ggml.tokens", strs, NULL, 3), 0);
    assert_int_equal(tn_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", ints, 3), 0);
    assert_int_equal(tn_gguf_set_arr_f32(w, "tokenizer.ggml.scores", floats, 2), 0);
    int64_t ne1[2] = {64, 3}, ne2[1] = {5}, ne3[2] = {256, 2};
    assert_int_equal(tn_gguf_add_tensor(w, "blk.0.attn_q.weight", TN_GGML_Q8_0, 2, ne1), 0);
    assert_int_equal(tn_gguf_add_tensor(w, "output_norm.weight", TN_GGML_F32, 1, ne2), 1);
    assert_int_equal(tn_gguf_add_tensor(w, "token_embd.weight", TN_GGML_Q6_K, 2, ne3), 2);
    char path[512];
    snprintf(path, sizeof path, "%s/written.gguf", dir);
    assert_int_equal(tn_gguf_write(w, path, fill_tensor, NULL), 0);
    tn_gguf_writer_free(w);

    tn_gguf g;
    assert_int_equal(tn_gguf_open(path, &g), 0);
    assert_int_equal(g.version, 3);
    assert_int_equal(g.n_kv, 8);
    assert_int_equal(g.n_tensors, 3);
    assert_int_equal(g.alignment, 32);
    const char *s;
    size_t n;
    int64_t iv;
    double fv;
    int bv;
    assert_int_equal(tn_gguf_get_str(&g, "general.architecture", &s, &n), 1);
    assert_int_equal(n, 5);
    assert_memory_equal(s, "qwen2", 5);
    assert_int_equal(tn_gguf_get_int(&g, "qwen2.block_count", &iv), 1);
    assert_int_equal(iv, 24);
    assert_int_equal(tn_gguf_get_int(&g, "x.neg", &iv), 1);
    assert_int_equal(iv, -7);
    assert_int_equal(tn_gguf_get_float(&g, "qwen2.rope.freq_base", &fv), 1);
    assert_true(fv == 1e6);
    assert_int_equal(tn_gguf_get_float(&g, "qwen2.block_count", &fv), 1); /* integers read as numbers */
    assert_true(fv == 24);
    assert_int_equal(tn_gguf_get_bool(&g, "tokenizer.ggml.add_bos_token", &bv), 1);
    assert_int_equal(bv, 1);
    assert_int_equal(tn_gguf_get_int(&g, "missing", &iv), 0);
    int failed;
    char *dup = tn_gguf_get_strdup(&g, "general.architecture", &failed);
    assert_string_equal(dup, "qwen2");
    free(dup);
    /* wrong types say what they are */
    tn_clear_error();
    assert_int_equal(tn_gguf_get_int(&g, "general.architecture", &iv), -1);
    assert_non_null(strstr(tn_error(), "'general.architecture' has type string (expected an integer)"));
    assert_int_equal(tn_gguf_get_bool(&g, "qwen2.block_count", &bv), -1);
    const tn_gguf_kv *arr;
    assert_int_equal(tn_gguf_get_arr(&g, "tokenizer.ggml.tokens", TN_GGUF_STRING, &arr), 1);
    assert_int_equal(arr->n, 3);
    for (int i = 0; i < 3; i++) {
        s = tn_gguf_arr_str(arr, (uint64_t)i, &n);
        assert_int_equal(n, strlen(strs[i]));
        assert_memory_equal(s, strs[i], n);
    }
    assert_int_equal(tn_gguf_get_arr(&g, "tokenizer.ggml.token_type", TN_GGUF_I32, &arr), 1);
    for (int i = 0; i < 3; i++) assert_int_equal(tn_gguf_arr_int(arr, (uint64_t)i), ints[i]);
    assert_int_equal(tn_gguf_get_arr(&g, "tokenizer.ggml.scores", TN_GGUF_F32, &arr), 1);
    assert_true(tn_gguf_arr_float(arr, 1) == -0.25);
    tn_clear_error();
    assert_int_equal(tn_gguf_get_arr(&g, "tokenizer.ggml.tokens", TN_GGUF_F32, &arr), -1);
    assert_non_null(strstr(tn_error(), "is an array of string (expected an array of f32)"));
    /* tensors */
    const tn_gguf_tensor *t = tn_gguf_find_tensor(&g, "blk.0.attn_q.weight");
    assert_non_null(t);
    assert_int_equal(t->type, TN_GGML_Q8_0);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[0], 64);
    assert_int_equal(t->ne[1], 3);
    assert_int_equal(t->n_elements, 192);
    assert_int_equal(t->n_bytes, 3 * 2 * 34);
    assert_int_equal(((const unsigned char *)t->data)[1], 7);
    char shape[64];
    assert_string_equal(tn_gguf_shape_string(t, shape, sizeof shape), "[3, 64]");
    t = tn_gguf_find_tensor(&g, "token_embd.weight");
    assert_non_null(t);
    assert_int_equal(t->n_bytes, 2 * 210);
    assert_int_equal(t->offset % 32, 0);
    assert_int_equal(((const unsigned char *)t->data)[3], 21 + 2);
    assert_null(tn_gguf_find_tensor(&g, "nope"));
    assert_string_equal(tn_gguf_type_name(14), "Q6_K");
    assert_int_equal(tn_gguf_type_block(10), 256);
    assert_int_equal(tn_gguf_type_bytes(10), 84);
    assert_null(tn_gguf_type_name(4));
    tn_gguf_close(&g);
}

static void test_valid_raw_and_alignment(void **state) {
    (void)state;
    bytes b = {0};
    valid_file(&b);
    tn_gguf g;
    assert_int_equal(tn_gguf_open(save("valid.gguf", &b), &g), 0);
    const tn_gguf_tensor *a = tn_gguf_find_tensor(&g, "a");
    float v;
    memcpy(&v, (const unsigned char *)a->data + 8, 4);
    assert_true(v == 2.5f);
    assert_int_equal(g.version, 3);
    tn_gguf_close(&g);
    free(b.p);
    /* general.alignment 64: the data and the offsets follow it; version 2 reads the same. */
    memset(&b, 0, sizeof b);
    header(&b, 2, 2, 1);
    kv_u32(&b, "general.alignment", 64);
    uint64_t ne[1] = {4};
    tensor(&b, "x", 1, ne, 0, 0);
    tensor(&b, "y", 1, ne, 0, 64);
    pad(&b, 64);
    zeros(&b, 80);
    assert_int_equal(tn_gguf_open(save("align64.gguf", &b), &g), 0);
    assert_int_equal(g.alignment, 64);
    assert_int_equal(g.data_offset % 64, 0);
    tn_gguf_close(&g);
    free(b.p);
}

/* ---- broken files ---- */

static void test_every_truncation(void **state) {
    (void)state;
    bytes b = {0};
    valid_file(&b);
    for (size_t n = 0; n < b.n; n++) {
        bytes t = {b.p, n, n};
        const char *path = save("trunc.gguf", &t);
        tn_gguf g;
        tn_clear_error();
        if (tn_gguf_open(path, &g) == 0) fail_msg("a file cut to %zu of %zu bytes opened", n, b.n);
        const char *msg = tn_error();
        if (!strstr(msg, path) || (!strstr(msg, "truncated") && !strstr(msg, "past the end") && !strstr(msg, "cannot fit")))
            fail_msg("cut to %zu bytes: '%s'", n, msg);
    }
    free(b.p);
}

static void test_bad_magic_and_version(void **state) {
    (void)state;
    bytes b = {0};
    valid_file(&b);
    b.p[3] = 'X';
    expect_error(save("magic.gguf", &b), "not a GGUF file: it starts with 'GGUX'", "expected the magic 'GGUF'");
    b.p[3] = 'F';
    b.p[4] = 1;
    expect_error(save("v1.gguf", &b), "GGUF version 1 (expected 3", NULL);
    b.p[4] = 4;
    expect_error(save("v4.gguf", &b), "GGUF version 4", NULL);
    free(b.p);
    memset(&b, 0, sizeof b);
    expect_error(save("empty.gguf", &b), "truncated: 0 bytes", NULL);
}

static void test_counts(void **state) {
    (void)state;
    bytes b = {0};
    header(&b, 3, 0, (uint64_t)1 << 40);
    zeros(&b, 64);
    expect_error(save("kvcount.gguf", &b), "key-value count 1099511627776 cannot fit", NULL);
    free(b.p);
    memset(&b, 0, sizeof b);
    header(&b, 3, UINT64_MAX, 0);
    zeros(&b, 64);
    expect_error(save("tcount.gguf", &b), "tensor count 18446744073709551615 cannot fit", NULL);
    free(b.p);
}

static void test_keys(void **state) {
    (void)state;
    bytes b = {0};
    header(&b, 3, 0, 2);
    kv_u32(&b, "llama.block_count", 2);
    kv_u32(&b, "llama.block_count", 3);
    expect_error(save("dupkey.gguf", &b), "duplicate key 'llama.block_count'", NULL);
    free(b.p);

    memset(&b, 0, sizeof b);
    header(&b, 3, 0, 1);
    str(&b, "general.name");
    u32(&b, TN_GGUF_STRING);
    u64(&b, (uint64_t)1 << 31); /* a 2 GB string in a small file */
    put(&b, "abc", 3);
    expect_error(save("bigstr.gguf", &b), "claims 2147483648 bytes, past the end of the file", "general.name");
    free(b.p);

    memset(&b, 0, sizeof b);
    header(&b, 3, 0, 1);
    u64(&b, UINT64_MAX); /* key length */
    zeros(&b, 32);
    expect_error(save("bigkey.gguf", &b), "key 0 at offset 24 claims 18446744073709551615 bytes", NULL);
    free(b.p);

    memset(&b, 0, sizeof b);
    header(&b, 3, 0, 1);
    str(&b, "");
    u32(&b, TN_GGUF_U32);
    u32(&b, 1);
    expect_error(save("emptykey.gguf", &b), "key 0 at offset 24 is empty", NULL);
    free(b.p);

    memset(&b, 0, sizeof b);
    header(&b, 3, 0, 1);
    str(&b, "x");
    u32(&b, 13);
    u32(&b, 1);
    expect_error(save("vtype.gguf", &b), "key 'x' has value type 13", NULL);
    free(b.p);

    memset(&b, 0, sizeof b);
    header(&b, 3, 0, 1);
    str(&b, "x");
    u32(&b, TN_GGUF_ARRAY);
    u32(&b, TN_GGUF_ARRAY);
    u64(&b, 1);
    zeros(&b, 32);
    expect_error(save("nested.gguf", &b), "arrays of arrays are not GGUF", NULL);
    free(b.p);

    memset(&b, 0, sizeof b);
    header(&b, 3, 0, 1);
    str(&b, "tokens");
    u32(&b, TN_GGUF_ARRAY);
    u32(&b, TN_GGUF_STRING);
    u64(&b, (uint64_t)1 << 40);
    zeros(&b, 32);
    expect_error(save("bigarr.gguf", &b), "array of 1099511627776 string", "the file has 32 left");
    free(b.p);

    memset(&b, 0, sizeof b);
    header(&b, 3, 0, 1);
    str(&b, "tokens");
    u32(&b, TN_GGUF_ARRAY);
    u32(&b, TN_GGUF_STRING);
    u64(&b, 2);
    str(&b, "ok");
    u64(&b, 1000); /* the second string runs past the end */
    put(&b, "short", 5);
    expect_error(save("arrstr.gguf", &b), "element 1", "claims 1000 bytes");
    free(b.p);

    memset(&b, 0, sizeof b);
    header(&b, 3, 0, 1);
    str(&b, "flag");
    u32(&b, TN_GGUF_BOOL);
    put(&b, "\x02", 1);
    expect_error(save("bool.gguf", &b), "bool value at offset", "is 2 (expected 0 or 1)");
    free(b.p);

    memset(&b, 0, sizeof b);
    header(&b, 3, 0, 1);
    kv_u32(&b, "general.alignment", 48);
    expect_error(save("align48.gguf", &b), "general.alignment is 48 (expected a power of two)", NULL);
    free(b.p);

    memset(&b, 0, sizeof b);
    header(&b, 3, 0, 1);
    str(&b, "general.alignment");
    u32(&b, TN_GGUF_U64);
    u64(&b, 32);
    expect_error(save("alignu64.gguf", &b), "general.alignment has type u64 (expected u32)", NULL);
    free(b.p);
}

/* A file with one key and the given tensor infos; data_bytes of data. */
static const char *tensor_file(const char *name, void (*infos)(bytes *), int n_tensors, size_t data_bytes) {
    static bytes b;
    free(b.p);
    memset(&b, 0, sizeof b);
    header(&b, 3, (uint64_t)n_tensors, 1);
    kv_str(&b, "general.architecture", "llama");
    infos(&b);
    pad(&b, 32);
    zeros(&b, data_bytes);
    return save(name, &b);
}

static void dup_tensor(bytes *b) {
    uint64_t ne[1] = {8};
    tensor(b, "w", 1, ne, 0, 0);
    tensor(b, "w", 1, ne, 0, 32);
}
static void past_end(bytes *b) {
    uint64_t ne[2] = {64, 64};
    tensor(b, "blk.0.attn_q.weight", 2, ne, 0, 0);
}
static void misaligned(bytes *b) {
    uint64_t ne[1] = {8};
    tensor(b, "a", 1, ne, 0, 0);
    tensor(b, "b", 1, ne, 0, 33);
}
static void not_running(bytes *b) {
    uint64_t ne[1] = {8};
    tensor(b, "a", 1, ne, 0, 0);
    tensor(b, "b", 1, ne, 0, 0);
}
static void five_dims(bytes *b) {
    uint64_t ne[5] = {1, 1, 1, 1, 1};
    tensor(b, "a", 5, ne, 0, 0);
}
static void unknown_type(bytes *b) {
    uint64_t ne[1] = {8};
    tensor(b, "a", 1, ne, 4, 0);
}
static void huge_type(bytes *b) {
    uint64_t ne[1] = {8};
    tensor(b, "a", 1, ne, 99, 0);
}
static void bad_block(bytes *b) {
    uint64_t ne[2] = {31, 2};
    tensor(b, "a", 2, ne, 8, 0);
}
static void negative_dim(bytes *b) {
    uint64_t ne[2] = {32, UINT64_MAX};
    tensor(b, "a", 2, ne, 0, 0);
}
static void overflow_dims(bytes *b) {
    uint64_t ne[3] = {(uint64_t)1 << 32, (uint64_t)1 << 32, 4};
    tensor(b, "a", 3, ne, 0, 0);
}
static void long_name(bytes *b) {
    uint64_t ne[1] = {8};
    tensor(b, "blk.0.a_name_that_is_far_too_long_for_ggml_which_keeps_64_bytes.weight", 1, ne, 0, 0);
}

static void test_tensor_infos(void **state) {
    (void)state;
    expect_error(tensor_file("duptensor.gguf", dup_tensor, 2, 64), "duplicate tensor name 'w'", NULL);
    expect_error(tensor_file("pastend.gguf", past_end, 1, 1000), "tensor 'blk.0.attn_q.weight': data [0, 16384) of the data section runs past the end",
                 "holds 1000 bytes");
    expect_error(tensor_file("misaligned.gguf", misaligned, 2, 128), "tensor 'b': offset 33 is not a multiple of the alignment 32", NULL);
    expect_error(tensor_file("overlap.gguf", not_running, 2, 128), "tensor 'b': offset 0, expected 32", NULL);
    expect_error(tensor_file("dims.gguf", five_dims, 1, 32), "tensor 'a' has 5 dimensions (expected at most 4)", NULL);
    expect_error(tensor_file("type4.gguf", unknown_type, 1, 32), "tensor 'a' has ggml type 4, which ggml does not define", NULL);
    expect_error(tensor_file("type99.gguf", huge_type, 1, 32), "ggml type 99", NULL);
    expect_error(tensor_file("block.gguf", bad_block, 1, 128), "tensor 'a' of type Q8_0 has rows of 31 values (expected a multiple of the block size 32)",
                 NULL);
    expect_error(tensor_file("negdim.gguf", negative_dim, 1, 32), "tensor 'a': dimension 1 is -1 (expected a size >= 0)", NULL);
    expect_error(tensor_file("overflow.gguf", overflow_dims, 1, 32), "has more than 2^63 elements", NULL);
    expect_error(tensor_file("longname.gguf", long_name, 1, 32), "name of 70 bytes", "expected fewer than 64");
}

/* Random single-byte changes and cuts of a valid file: no crash, and a
 * message whenever opening fails. */
static void test_mutations(void **state) {
    (void)state;
    bytes b = {0};
    valid_file(&b);
    unsigned char *orig = malloc(b.n);
    memcpy(orig, b.p, b.n);
    tn_rng r;
    tn_rng_seed(&r, 1234, 1);
    int opened = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(b.p, orig, b.n);
        int changes = 1 + (int)(tn_rng_next(&r) % 3);
        for (int k = 0; k < changes; k++) {
            size_t at = (size_t)(tn_rng_next(&r) % 200 < 180 ? tn_rng_next(&r) % 140 : tn_rng_next(&r) % b.n);
            if (at >= b.n) at = b.n - 1;
            b.p[at] = (unsigned char)tn_rng_next(&r);
        }
        bytes t = {b.p, it % 5 == 0 ? (size_t)(tn_rng_next(&r) % b.n) : b.n, b.n};
        tn_gguf g;
        tn_clear_error();
        const char *path = save("mutated.gguf", &t);
        if (tn_gguf_open(path, &g) == 0) {
            opened++;
            for (int64_t i = 0; i < g.n_kv; i++) {
                const tn_gguf_kv *kv = &g.kv[i];
                if (kv->type == TN_GGUF_ARRAY && kv->elem_type == TN_GGUF_STRING)
                    for (uint64_t e = 0; e < kv->n; e++) {
                        size_t n;
                        tn_gguf_arr_str(kv, e, &n);
                    }
            }
            tn_gguf_close(&g);
        } else if (!strstr(tn_error(), path)) {
            fail_msg("mutation %d: message without the path: %s", it, tn_error());
        }
    }
    fprintf(stderr, "test_gguf_read: %d of 3000 mutated files still valid\n", opened);
    free(orig);
    free(b.p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_round_trip), cmocka_unit_test(test_valid_raw_and_alignment), cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_bad_magic_and_version), cmocka_unit_test(test_counts),          cmocka_unit_test(test_keys),
        cmocka_unit_test(test_tensor_infos),      cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
