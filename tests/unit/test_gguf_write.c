/* test_gguf_write.c - the GGUF writer: the bytes of a small file checked
 * field by field against the layout in gguf_write.h (header, key-values of
 * every kind, tensor infos with innermost-first dims, 32-byte alignment of
 * the data section and of every tensor); refusals (duplicate keys and
 * tensors, long names, rows a type cannot take); and atomicity (a failing
 * tensor leaves no file and no temporary). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/gguf_write.h"
#include "util/error.h"
#include "util/platform.h"

static char path[256];

typedef struct {
    const unsigned char *p;
    size_t n, o;
} reader;

static uint64_t rd(reader *r, int bytes) {
    assert_true(r->o + (size_t)bytes <= r->n);
    uint64_t v = 0;
    for (int k = 0; k < bytes; k++) v |= (uint64_t)r->p[r->o + k] << (8 * k);
    r->o += (size_t)bytes;
    return v;
}

static void want_string(reader *r, const char *s) {
    uint64_t n = rd(r, 8);
    assert_int_equal(n, strlen(s));
    assert_memory_equal(r->p + r->o, s, n);
    r->o += n;
}

static int fill(void *ctx, int i, void *buf, uint64_t n) {
    (void)ctx;
    memset(buf, 0x10 + i, n);
    return 0;
}

static int fill_fails(void *ctx, int i, void *buf, uint64_t n) {
    (void)ctx, (void)buf, (void)n;
    return i == 1 ? tn_fail("tensor %d: no data", i) : 0;
}

static void test_layout(void **state) {
    (void)state;
    snprintf(path, sizeof path, "/tmp/tune-gguf-test-%d.gguf", (int)getpid());
    tn_gguf_writer *w = tn_gguf_writer_new();
    assert_non_null(w);
    const char *toks[] = {"a", "bc"};
    int32_t types[] = {1, 3};
    float scores[] = {0.5f, -1.0f};
    assert_int_equal(tn_gguf_set_str(w, "general.architecture", "llama"), 0);
    assert_int_equal(tn_gguf_set_u32(w, "llama.block_count", 2), 0);
    assert_int_equal(tn_gguf_set_f32(w, "llama.rope.freq_base", 10000.0f), 0);
    assert_int_equal(tn_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", 1), 0);
    assert_int_equal(tn_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 2), 0);
    assert_int_equal(tn_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", types, 2), 0);
    assert_int_equal(tn_gguf_set_arr_f32(w, "tokenizer.ggml.scores", scores, 2), 0);
    assert_int_equal(tn_gguf_set_u32(w, "llama.block_count", 3), -1); /* duplicate */
    int64_t ne_a[2] = {3, 2}, ne_b[1] = {5}, ne_q[2] = {64, 3};
    assert_int_equal(tn_gguf_add_tensor(w, "a.weight", TN_GGML_F32, 2, ne_a), 0);
    assert_int_equal(tn_gguf_add_tensor(w, "b.weight", TN_GGML_F16, 1, ne_b), 1);
    assert_int_equal(tn_gguf_add_tensor(w, "q.weight", TN_GGML_Q8_0, 2, ne_q), 2);
    assert_int_equal(tn_gguf_add_tensor(w, "a.weight", TN_GGML_F32, 2, ne_a), -1);
    int64_t bad[2] = {40, 2};
    assert_int_equal(tn_gguf_add_tensor(w, "k.weight", TN_GGML_Q4_K, 2, bad), -1);
    assert_non_null(strstr(tn_error(), "multiple of 256"));
    assert_int_equal(tn_gguf_add_tensor(w, "a_name_that_is_far_too_long_for_ggml_which_allows_63_bytes.weight", TN_GGML_F32, 2, ne_a), -1);
    assert_int_equal(tn_gguf_write(w, path, fill, NULL), 0);
    tn_gguf_writer_free(w);

    size_t n;
    unsigned char *b = (unsigned char *)tn_read_file(path, 1 << 20, &n);
    assert_non_null(b);
    reader r = {b, n, 0};
    assert_memory_equal(b, "GGUF", 4);
    r.o = 4;
    assert_int_equal(rd(&r, 4), 3);
    assert_int_equal(rd(&r, 8), 3); /* tensors */
    assert_int_equal(rd(&r, 8), 7); /* key-values */
    want_string(&r, "general.architecture");
    assert_int_equal(rd(&r, 4), TN_GGUF_STRING);
    want_string(&r, "llama");
    want_string(&r, "llama.block_count");
    assert_int_equal(rd(&r, 4), TN_GGUF_U32);
    assert_int_equal(rd(&r, 4), 2);
    want_string(&r, "llama.rope.freq_base");
    assert_int_equal(rd(&r, 4), TN_GGUF_F32);
    uint32_t fbits = (uint32_t)rd(&r, 4);
    float f;
    memcpy(&f, &fbits, 4);
    assert_true(f == 10000.0f);
    want_string(&r, "tokenizer.ggml.add_bos_token");
    assert_int_equal(rd(&r, 4), TN_GGUF_BOOL);
    assert_int_equal(rd(&r, 1), 1);
    want_string(&r, "tokenizer.ggml.tokens");
    assert_int_equal(rd(&r, 4), TN_GGUF_ARRAY);
    assert_int_equal(rd(&r, 4), TN_GGUF_STRING);
    assert_int_equal(rd(&r, 8), 2);
    want_string(&r, "a");
    want_string(&r, "bc");
    want_string(&r, "tokenizer.ggml.token_type");
    assert_int_equal(rd(&r, 4), TN_GGUF_ARRAY);
    assert_int_equal(rd(&r, 4), TN_GGUF_I32);
    assert_int_equal(rd(&r, 8), 2);
    assert_int_equal(rd(&r, 4), 1);
    assert_int_equal(rd(&r, 4), 3);
    want_string(&r, "tokenizer.ggml.scores");
    assert_int_equal(rd(&r, 4), TN_GGUF_ARRAY);
    assert_int_equal(rd(&r, 4), TN_GGUF_F32);
    assert_int_equal(rd(&r, 8), 2);
    r.o += 8;
    /* tensor infos: sizes 24, 10, 3 * 68; offsets padded to 32 */
    const char *names[3] = {"a.weight", "b.weight", "q.weight"};
    const uint64_t want_off[3] = {0, 32, 64}, sizes[3] = {24, 10, 204};
    const int want_type[3] = {TN_GGML_F32, TN_GGML_F16, TN_GGML_Q8_0};
    for (int i = 0; i < 3; i++) {
        want_string(&r, names[i]);
        int nd = (int)rd(&r, 4);
        for (int d = 0; d < nd; d++) rd(&r, 8);
        assert_int_equal(rd(&r, 4), want_type[i]);
        assert_int_equal(rd(&r, 8), want_off[i]);
    }
    size_t data = (r.o + 31) / 32 * 32;
    for (size_t k = r.o; k < data; k++) assert_int_equal(b[k], 0);
    assert_int_equal(n, data + 64 + 224); /* the last tensor padded too */
    for (int i = 0; i < 3; i++)
        for (uint64_t k = 0; k < sizes[i]; k++) assert_int_equal(b[data + want_off[i] + k], 0x10 + i);
    free(b);
    unlink(path);
}

static void test_failed_write_leaves_nothing(void **state) {
    (void)state;
    snprintf(path, sizeof path, "/tmp/tune-gguf-fail-%d.gguf", (int)getpid());
    tn_gguf_writer *w = tn_gguf_writer_new();
    int64_t ne[1] = {8};
    assert_int_equal(tn_gguf_add_tensor(w, "x", TN_GGML_F32, 1, ne), 0);
    assert_int_equal(tn_gguf_add_tensor(w, "y", TN_GGML_F32, 1, ne), 1);
    assert_int_equal(tn_gguf_write(w, path, fill_fails, NULL), -1);
    assert_non_null(strstr(tn_error(), "tensor y"));
    tn_gguf_writer_free(w);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    assert_false(tn_file_exists(path));
    assert_false(tn_file_exists(tmp));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_failed_write_leaves_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
