/* test_safetensors.c - the reader on valid files (single and sharded, written
 * by our writer) and on a corpus of broken files, each of which must give its
 * own clear error naming the file and the tensor, never a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "io/safetensors_write.h"
#include "util/error.h"
#include "util/platform.h"

static char dir[256];

static int setup(void **state) {
    snprintf(dir, sizeof dir, "/tmp/tune-st-test-%d", (int)getpid());
    assert_int_equal(tn_make_dirs(dir), 0);
    return 0;
}

static int teardown(void **state) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes a raw safetensors file: header text (length taken as given unless
 * claimed_len != 0) then `data_len` bytes of data. */
static const char *write_raw(const char *name, const char *header, uint64_t claimed_len, size_t data_len) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t n = claimed_len ? claimed_len : strlen(header);
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)(n >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < data_len; i++) fputc((int)(i & 0xff), f);
    fclose(f);
    return path;
}

/* Opening must fail with a message holding every given fragment. */
static void expect_error(const char *path, const char *frag1, const char *frag2) {
    tn_safetensors st;
    tn_clear_error();
    assert_int_not_equal(tn_safetensors_open(path, &st), 0);
    const char *msg = tn_error();
    if (!strstr(msg, frag1) || (frag2 && !strstr(msg, frag2)))
        fail_msg("error '%s' lacks '%s'%s%s", msg, frag1, frag2 ? " or " : "", frag2 ? frag2 : "");
}

static void test_valid_file(void **state) {
    const char *p = write_raw("ok.safetensors",
                              "{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[8,24]},"
                              "\"a\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]}}",
                              0, 24);
    tn_safetensors st;
    assert_int_equal(tn_safetensors_open(p, &st), 0);
    assert_int_equal(st.n_tensors, 2);
    const tn_tensor_info *a = tn_safetensors_find(&st, "a"), *b = tn_safetensors_find(&st, "b");
    assert_non_null(a);
    assert_non_null(b);
    assert_null(tn_safetensors_find(&st, "c"));
    assert_int_equal(a->dtype, TN_DTYPE_BF16);
    assert_int_equal(b->n_elements, 4);
    assert_int_equal(((const unsigned char *)tn_safetensors_data(&st, b))[0], 8);
    tn_safetensors_close(&st);
}

static void test_truncated_data(void **state) {
    expect_error(write_raw("trunc.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 0, 10),
                 "trunc.safetensors: tensor 'w'", "past the end of the data");
}

static void test_header_past_end(void **state) {
    expect_error(write_raw("hdr.safetensors", "{}", 1000, 0), "hdr.safetensors", "runs past the end of the file");
}

static void test_header_2gb_claim(void **state) {
    expect_error(write_raw("huge.safetensors", "{}", 2ull << 30, 0), "huge.safetensors", "is not sane");
}

static void test_overlap(void **state) {
    expect_error(write_raw("overlap.safetensors",
                           "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                           0, 12),
                 "overlap.safetensors: tensors 'a' and 'b' overlap", NULL);
}

static void test_size_mismatch(void **state) {
    expect_error(write_raw("size.safetensors", "{\"w\":{\"dtype\":\"F16\",\"shape\":[3,3],\"data_offsets\":[0,16]}}", 0, 16),
                 "tensor 'w': shape [3, 3] of F16 needs 18 bytes", "give 16");
}

static void test_not_json(void **state) {
    expect_error(write_raw("notjson.safetensors", "{\"w\": [1, 2", 0, 0), "notjson.safetensors", "not valid JSON");
}

static void test_header_not_object(void **state) {
    expect_error(write_raw("array.safetensors", "[1,2]", 0, 0), "array.safetensors", "expected a JSON object");
}

static void test_unknown_dtype(void **state) {
    expect_error(write_raw("dtype.safetensors", "{\"w\":{\"dtype\":\"F8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 0, 1),
                 "tensor 'w': unknown dtype 'F8'", NULL);
}

static void test_bad_shape(void **state) {
    expect_error(write_raw("shape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 0, 4),
                 "shape[0]", "expected an integer");
}

static void test_shape_overflow(void **state) {
    expect_error(write_raw("ovf.safetensors",
                           "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}", 0, 4),
                 "tensor 'w'", "too large");
}

static void test_offsets_reversed(void **state) {
    expect_error(write_raw("rev.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,2]}}", 0, 4),
                 "end before begin", NULL);
}

static void test_duplicate_names(void **state) {
    expect_error(write_raw("dup.safetensors",
                           "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                           "\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                           0, 2),
                 "tensor 'w' appears twice", NULL);
}

static void test_too_short(void **state) {
    char path[512];
    snprintf(path, sizeof path, "%s/short.safetensors", dir);
    FILE *f = fopen(path, "wb");
    fputs("abc", f);
    fclose(f);
    expect_error(path, "short.safetensors: 3 bytes", NULL);
}

static void test_missing_file(void **state) {
    char path[512];
    snprintf(path, sizeof path, "%s/absent.safetensors", dir);
    expect_error(path, "absent.safetensors: cannot open", NULL);
}

static void test_metadata_not_strings(void **state) {
    expect_error(write_raw("meta.safetensors", "{\"__metadata__\":{\"a\":1}}", 0, 0), "__metadata__ 'a'", "expected a string");
}

static int fill_counting(void *ctx, int i, void *buf, uint64_t n) {
    for (uint64_t k = 0; k < n; k++) ((unsigned char *)buf)[k] = (unsigned char)(i * 31 + k);
    return 0;
}

static void test_sharded_roundtrip(void **state) {
    char sd[300];
    snprintf(sd, sizeof sd, "%s/sharded", dir);
    assert_int_equal(tn_make_dirs(sd), 0);
    tn_tensor_desc t[3] = {
        {"x.weight", TN_DTYPE_F32, 2, {4, 4}},
        {"y.weight", TN_DTYPE_BF16, 1, {16}},
        {"z.weight", TN_DTYPE_F16, 2, {8, 2}},
    };
    /* A 40-byte shard limit forces three shards. */
    assert_int_equal(tn_safetensors_write(sd, "model", t, 3, 40, NULL, fill_counting, NULL), 0);
    tn_safetensors st;
    assert_int_equal(tn_safetensors_open(sd, &st), 0);
    assert_int_equal(st.n_files, 3);
    assert_int_equal(st.n_tensors, 3);
    const tn_tensor_info *z = tn_safetensors_find(&st, "z.weight");
    assert_non_null(z);
    assert_int_equal(z->shape[0], 8);
    assert_int_equal(((const unsigned char *)tn_safetensors_data(&st, z))[1], (unsigned char)(2 * 31 + 1));
    tn_safetensors_close(&st);
    /* A missing shard is named. */
    char shard[400];
    snprintf(shard, sizeof shard, "%s/model-00002-of-00003.safetensors", sd);
    assert_int_equal(unlink(shard), 0);
    expect_error(sd, "shard 'model-00002-of-00003.safetensors'", "is missing");
}

static void test_index_names_wrong_shard(void **state) {
    char sd[300], path[400];
    snprintf(sd, sizeof sd, "%s/badindex", dir);
    assert_int_equal(tn_make_dirs(sd), 0);
    tn_tensor_desc t[1] = {{"x.weight", TN_DTYPE_F32, 1, {2}}};
    assert_int_equal(tn_safetensors_write(sd, "model", t, 1, 1000, NULL, fill_counting, NULL), 0);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", sd);
    FILE *f = fopen(path, "w");
    fputs("{\"weight_map\": {\"x.weight\": \"model.safetensors\", \"y.weight\": \"model.safetensors\"}}", f);
    fclose(f);
    expect_error(sd, "tensor 'y.weight' is listed in shard 'model.safetensors' but not found there", NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_file),        cmocka_unit_test(test_truncated_data),
        cmocka_unit_test(test_header_past_end),   cmocka_unit_test(test_header_2gb_claim),
        cmocka_unit_test(test_overlap),           cmocka_unit_test(test_size_mismatch),
        cmocka_unit_test(test_not_json),          cmocka_unit_test(test_header_not_object),
        cmocka_unit_test(test_unknown_dtype),     cmocka_unit_test(test_bad_shape),
        cmocka_unit_test(test_shape_overflow),    cmocka_unit_test(test_offsets_reversed),
        cmocka_unit_test(test_duplicate_names),   cmocka_unit_test(test_too_short),
        cmocka_unit_test(test_missing_file),      cmocka_unit_test(test_metadata_not_strings),
        cmocka_unit_test(test_sharded_roundtrip), cmocka_unit_test(test_index_names_wrong_shard),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
