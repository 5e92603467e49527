/* test_qmatvec.c - the quantized matrix-vector products of generate/
 * qmatvec.h against dequantize-then-multiply (in double) on random rows,
 * per type: Q4_0, Q5_0, Q8_0, Q4_K, Q6_K (own kernels) and a type that takes
 * the generic path (Q5_K built by hand from random bytes). The two differ
 * only in the order of float additions, so each row must agree within a
 * few ulps of Σ|w·x|, with fp32 activations (tn_qmatvec_fp32_act = 1). With
 * int8 activations (the default) x is quantized per 32 values with scale
 * d = amax/127, each value off by at most d/2, so a row may differ from the
 * exact product by Σ_blocks Σ|w|·amax/254 (plus float rounding). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "generate/qmatvec.h"
#include "io/gguf_read.h"
#include "quant/dequant_gguf.h"
#include "quant/quant.h"

static uint64_t rng = 88172645463325252ull;
static double uni(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static int int8_act; /* 1: check against the int8 activation bound */

static void check(int type, const void *w, int64_t rows, int64_t cols, const float *x) {
    float *y = malloc(sizeof(float) * (size_t)rows), *row = malloc(sizeof(float) * (size_t)cols);
    assert_non_null(y);
    assert_non_null(row);
    tn_qmatvec(type, w, x, y, rows, cols);
    uint64_t rb = (uint64_t)(cols / tn_gguf_type_block(type)) * (uint64_t)tn_gguf_type_bytes(type);
    for (int64_t r = 0; r < rows; r++) {
        tn_gguf_dequantize_row(type, (const uint8_t *)w + (uint64_t)r * rb, row, cols);
        double s = 0, a = 0, bound = 0;
        for (int64_t c = 0; c < cols; c++) s += (double)row[c] * x[c], a += fabs((double)row[c] * x[c]);
        for (int64_t c = 0; int8_act && c < cols; c += 32) {
            double amax = 0, sw = 0;
            for (int j = 0; j < 32; j++) amax = fmax(amax, fabs(x[c + j])), sw += fabs(row[c + j]);
            bound += sw * amax / 254;
        }
        if (!(fabs(y[r] - s) <= bound + 1e-5 * (a + bound) + 1e-30)) {
            print_error("%s row %lld (%s activations): %.9g vs %.9g (sum |wx| %g, bound %g)\n", tn_gguf_type_name(type), (long long)r,
                        int8_act ? "int8" : "fp32", (double)y[r], s, a, bound);
            fail();
        }
    }
    free(y);
    free(row);
}

static void test_types(void **state) {
    (void)state;
    tn_qmatvec_fp32_act = !int8_act;
    const int types[] = {TN_GGML_Q4_0, TN_GGML_Q5_0, TN_GGML_Q8_0, TN_GGML_Q4_K, TN_GGML_Q6_K};
    const int64_t rows = 67, cols = 1024;
    float *w = malloc(sizeof(float) * rows * cols), *x = malloc(sizeof(float) * cols);
    void *q = malloc((size_t)rows * cols * 2);
    for (int64_t i = 0; i < rows * cols; i++) w[i] = (float)((uni() - 0.5) * (i % 7 == 0 ? 3.0 : 0.2));
    for (int64_t i = 0; i < cols; i++) x[i] = (float)(uni() * 2 - 1);
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        assert_true(tn_qmatvec_fast(types[k]));
        assert_int_not_equal(tn_quant_rows((tn_ggml_type)types[k], w, q, rows, cols), 0);
        check(types[k], q, rows, cols, x);
    }
    /* Q5_K (id 13): random bytes with small fp16 scales take the generic path. */
    const int q5k = 13;
    assert_false(tn_qmatvec_fast(q5k));
    uint8_t *b = q;
    uint64_t n = (uint64_t)rows * (cols / 256) * 176;
    for (uint64_t i = 0; i < n; i++) b[i] = (uint8_t)(uni() * 256);
    for (uint64_t i = 0; i < n; i += 176) b[i] = 0x00, b[i + 1] = 0x20, b[i + 2] = 0x00, b[i + 3] = 0x1c; /* d 2^-7, dmin 2^-8 */
    check(q5k, q, rows, cols, x);
    free(w), free(x), free(q);
}

/* The portable C kernels (what ARM and pre-AVX2 machines run), forced. */
static void test_types_portable(void **state) {
    tn_qmatvec_portable_only = 1;
    test_types(state);
    tn_qmatvec_portable_only = 0;
}

/* int8 activations: AVX-512 VNNI kernels where there, the AVX2 ones, then the
 * portable ones forced;
 * the bound must hold and be used (not the exact product up to ulps). */
static void test_types_int8(void **state) {
    int8_act = 1;
    test_types(state);
    tn_qmatvec_no_vnni = 1;
    test_types(state);
    tn_qmatvec_no_vnni = 0;
    tn_qmatvec_portable_only = 1;
    test_types(state);
    tn_qmatvec_portable_only = 0;
    int8_act = 0;
}

/* The two int8 paths (AVX2 and portable C) agree to float rounding, and the
 * int8 result is not the fp32 one (the switch does switch). */
static void test_int8_paths_agree(void **state) {
    (void)state;
    const int types[] = {TN_GGML_Q4_0, TN_GGML_Q5_0, TN_GGML_Q8_0, TN_GGML_Q4_K, TN_GGML_Q6_K};
    const int64_t rows = 19, cols = 512;
    float *w = malloc(sizeof(float) * rows * cols), *x = malloc(sizeof(float) * cols), y[3][19];
    void *q = malloc((size_t)rows * cols * 2);
    for (int64_t i = 0; i < rows * cols; i++) w[i] = (float)(uni() - 0.5);
    for (int64_t i = 0; i < cols; i++) x[i] = (float)(uni() * 2 - 1) * (i % 5 == 0 ? 4.0f : 1.0f);
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        assert_int_not_equal(tn_quant_rows((tn_ggml_type)types[k], w, q, rows, cols), 0);
        tn_qmatvec_fp32_act = 0, tn_qmatvec_portable_only = 0;
        tn_qmatvec(types[k], q, x, y[0], rows, cols);
        tn_qmatvec_portable_only = 1;
        tn_qmatvec(types[k], q, x, y[1], rows, cols);
        tn_qmatvec_fp32_act = 1;
        tn_qmatvec(types[k], q, x, y[2], rows, cols);
        tn_qmatvec_portable_only = 0;
        int differs = 0;
        for (int r = 0; r < rows; r++) {
            assert_true(fabsf(y[0][r] - y[1][r]) <= 1e-4f * (1 + fabsf(y[1][r])));
            differs |= y[1][r] != y[2][r];
        }
        assert_true(differs);
    }
    free(w), free(x), free(q);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_types), cmocka_unit_test(test_types_portable), cmocka_unit_test(test_types_int8),
                                       cmocka_unit_test(test_int8_paths_agree)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
