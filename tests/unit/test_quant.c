/* test_quant.c - tune's quantizers against ggml's own, byte for byte.
 *
 * llama.cpp's prebuilt library (npm node-llama-cpp, package
 * @node-llama-cpp/linux-x64: bins/<platform>/libggml-base.so) exports
 * ggml_quantize_chunk, the routine llama-quantize runs (without an
 * importance matrix it calls quantize_row_*_ref). It is loaded with dlopen
 * and given the same random rows as tn_quant_rows, per type: Q4_0, Q5_0,
 * Q8_0, Q4_K, Q6_K and the float conversions F16, BF16, F32. The rows mix
 * normal values at several scales with the edge cases of the block
 * formats: all zeros, constants, one outlier, values below the K-quants'
 * all-zero threshold (1e-15), exact halves, a negative extreme, huge and
 * tiny magnitudes. The blocks are then turned back into floats by tune's
 * and ggml's dequantize_row_* and those compared bit for bit too (what
 * llama.cpp computes with is what `tune export --dequantized` writes).
 * Without node_modules the test is skipped (it says so). */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dlfcn.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant.h"
#include "util/rng.h"

typedef size_t (*quantize_chunk_fn)(int type, const float *src, void *dst, int64_t start, int64_t nrows, int64_t n_per_row,
                                    const float *imatrix);

typedef void (*dequantize_row_fn)(const void *x, float *y, int64_t k);

static void *lib;
static quantize_chunk_fn ggml_quantize_chunk;
static char lib_path[4096];

static int find_ggml(void) {
    const char *root = getenv("TUNE_ROOT");
    char pattern[4200];
    snprintf(pattern, sizeof pattern, "%s/node_modules/@node-llama-cpp/linux-x64/bins/*/libggml-base.so", root ? root : ".");
    glob_t g;
    int found = 0;
    if (glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc > 0) {
        snprintf(lib_path, sizeof lib_path, "%s", g.gl_pathv[0]);
        found = 1;
    }
    globfree(&g);
    return found;
}

static int setup(void **state) {
    (void)state;
    if (!find_ggml()) {
        fprintf(stderr, "test_quant: llama.cpp's libggml-base.so not found under node_modules (run scripts/setup.sh); skipping\n");
        return 0;
    }
    lib = dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "test_quant: dlopen %s: %s\n", lib_path, dlerror());
        return -1;
    }
    ggml_quantize_chunk = (quantize_chunk_fn)dlsym(lib, "ggml_quantize_chunk");
    if (!ggml_quantize_chunk) {
        fprintf(stderr, "test_quant: %s has no ggml_quantize_chunk\n", lib_path);
        return -1;
    }
    fprintf(stderr, "test_quant: comparing with %s\n", lib_path);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    if (lib) dlclose(lib);
    return 0;
}

/* Fills rows with a mix of distributions and edge cases, one kind per
 * 32-value stretch, so every block format meets every case. */
static void fill_rows(float *x, int64_t nrows, int64_t n, uint64_t seed) {
    tn_rng r;
    tn_rng_seed(&r, seed, 1);
    for (int64_t i = 0; i < nrows * n; i += 32) {
        int kind = (int)(tn_rng_next(&r) % 14);
        float scale = powf(10.0f, (float)(tn_rng_next(&r) % 9) - 5.0f); /* 1e-5 .. 1e3 */
        for (int j = 0; j < 32 && i + j < nrows * n; j++) {
            float v;
            switch (kind) {
            case 0: v = 0.0f; break;                                       /* all zero */
            case 1: v = 0.75f * scale; break;                              /* constant */
            case 2: v = j == 7 ? 50.0f * scale : tn_rng_normal(&r) * scale; break; /* outlier */
            case 3: v = tn_rng_normal(&r) * 1e-17f; break;                 /* below GROUP_MAX_EPS */
            case 4: v = (float)((int)(tn_rng_next(&r) % 17) - 8) * 0.5f; break; /* exact halves */
            case 5: v = j == 3 ? -9.0f * scale : tn_rng_uniform(&r) * scale; break; /* negative extreme */
            case 6: v = tn_rng_uniform(&r) * scale; break;                 /* one-signed: min clamps to 0 */
            case 7: v = -tn_rng_uniform(&r) * scale; break;
            case 8: v = tn_rng_normal(&r) * 3e4f; break;                   /* large (f16 range) */
            case 9: v = tn_rng_normal(&r) * 1e-6f; break;                  /* f16 subnormal scales */
            default: v = tn_rng_normal(&r) * scale; break;
            }
            x[i + j] = v;
        }
    }
}

typedef struct {
    tn_ggml_type type;
    int64_t nrows, n;
} shape_case;

static void compare_type(tn_ggml_type t, int64_t nrows, int64_t n, uint64_t seed) {
    float *x = malloc((size_t)(nrows * n) * sizeof *x);
    uint64_t bytes = (uint64_t)nrows * tn_ggml_row_size(t, n);
    unsigned char *ours = malloc(bytes), *theirs = malloc(bytes);
    assert_non_null(x);
    assert_non_null(ours);
    assert_non_null(theirs);
    fill_rows(x, nrows, n, seed);
    memset(ours, 0xAA, bytes);
    memset(theirs, 0x55, bytes);
    assert_int_equal(tn_quant_rows(t, x, ours, nrows, n), bytes);
    size_t got = ggml_quantize_chunk((int)t, x, theirs, 0, nrows, n, NULL);
    assert_int_equal(got, bytes);
    uint64_t diff = 0, first = UINT64_MAX;
    for (uint64_t i = 0; i < bytes; i++)
        if (ours[i] != theirs[i]) {
            if (first == UINT64_MAX) first = i;
            diff++;
        }
    int bs = tn_ggml_type_size(t);
    printf("%-5s %4lld x %5lld: %10llu bytes, %llu differ\n", tn_ggml_type_name(t), (long long)nrows, (long long)n,
           (unsigned long long)bytes, (unsigned long long)diff);
    if (diff) {
        uint64_t blk = first / (uint64_t)bs;
        printf("  first difference at byte %llu (block %llu); block bytes ours / ggml:\n  ", (unsigned long long)first,
               (unsigned long long)blk);
        for (int k = 0; k < bs && k < 48; k++) printf("%02x", ours[blk * bs + k]);
        printf("\n  ");
        for (int k = 0; k < bs && k < 48; k++) printf("%02x", theirs[blk * bs + k]);
        printf("\n");
    }
    free(x);
    free(ours);
    free(theirs);
    assert_int_equal(diff, 0);
}

static void test_bytes_equal_ggml(void **state) {
    (void)state;
    if (!ggml_quantize_chunk) skip();
    static const tn_ggml_type all[] = {TN_GGML_Q4_0, TN_GGML_Q5_0, TN_GGML_Q8_0, TN_GGML_Q4_K,
                                       TN_GGML_Q6_K, TN_GGML_F16,  TN_GGML_BF16, TN_GGML_F32};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
        tn_ggml_type t = all[k];
        int b = tn_ggml_block_size(t);
        int64_t wide = b == 256 ? 512 : 96;
        compare_type(t, 1, b, 11 + k);         /* one block */
        compare_type(t, 37, wide, 101 + k);    /* several blocks a row, odd row count */
        compare_type(t, 64, 4096, 1001 + k);   /* many rows: threads */
    }
}

static void test_dequantize_equals_ggml(void **state) {
    (void)state;
    if (!ggml_quantize_chunk) skip();
    static const struct {
        tn_ggml_type t;
        const char *fn;
    } all[] = {{TN_GGML_Q4_0, "dequantize_row_q4_0"}, {TN_GGML_Q5_0, "dequantize_row_q5_0"}, {TN_GGML_Q8_0, "dequantize_row_q8_0"},
               {TN_GGML_Q4_K, "dequantize_row_q4_K"}, {TN_GGML_Q6_K, "dequantize_row_q6_K"}};
    const int64_t nrows = 64, n = 4096;
    float *x = malloc((size_t)(nrows * n) * sizeof *x), *ours = malloc((size_t)(nrows * n) * sizeof *x),
          *theirs = malloc((size_t)(nrows * n) * sizeof *x);
    assert_non_null(x), assert_non_null(ours), assert_non_null(theirs);
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
        dequantize_row_fn ref = (dequantize_row_fn)dlsym(lib, all[k].fn);
        assert_non_null(ref);
        uint64_t bytes = (uint64_t)nrows * tn_ggml_row_size(all[k].t, n);
        unsigned char *q = malloc(bytes);
        assert_non_null(q);
        fill_rows(x, nrows, n, 77 + k);
        assert_int_equal(tn_quant_rows(all[k].t, x, q, nrows, n), bytes);
        tn_dequantize_row(all[k].t, q, ours, nrows * n);
        ref(q, theirs, nrows * n);
        int64_t diff = 0;
        double err = 0, norm = 0;
        for (int64_t i = 0; i < nrows * n; i++) {
            if (memcmp(&ours[i], &theirs[i], 4)) diff++;
            err += ((double)ours[i] - x[i]) * ((double)ours[i] - x[i]);
            norm += (double)x[i] * x[i];
        }
        printf("%-5s dequantized: %lld values, %lld differ from ggml; relative error of the round trip %.2e\n", tn_ggml_type_name(all[k].t),
               (long long)(nrows * n), (long long)diff, norm > 0 ? sqrt(err / norm) : 0.0);
        free(q);
        assert_int_equal(diff, 0);
    }
    free(x), free(ours), free(theirs);
}

/* Rows whose length the type does not allow are refused with a message. */
static void test_refuses_bad_rows(void **state) {
    (void)state;
    float x[300] = {0};
    unsigned char out[1024];
    assert_int_equal(tn_quant_rows(TN_GGML_Q4_K, x, out, 1, 64), 0);
    assert_int_equal(tn_quant_rows(TN_GGML_Q8_0, x, out, 1, 40), 0);
    assert_int_equal(tn_ggml_row_size(TN_GGML_Q6_K, 512), 420);
    assert_int_equal(tn_ggml_row_size(TN_GGML_Q5_0, 64), 44);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_equal_ggml),
        cmocka_unit_test(test_dequantize_equals_ggml),
        cmocka_unit_test(test_refuses_bad_rows),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
