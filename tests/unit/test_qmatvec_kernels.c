/* test_qmatvec_kernels.c - each int8-activation kernel of generate/qmatvec.c
 * (Q4_0, Q5_0, Q8_0, Q4_K, Q6_K; on every path this CPU has: AVX-512 VNNI,
 * AVX2, portable C) against the fp32 reference, dequantize-then-dot
 * (tn_gguf_dequantize_row, then Σ w·x in double), on rows of random blocks:
 * random bytes (every bit pattern of the quants, fifth bits, 6-bit scales
 * and mins) with random fp16 scales, 37 rows (the decode pool's chunks end
 * inside them) and block counts that leave each kernel's tails (1, 3, 5, 29
 * blocks of 32; 1, 3, 19 super-blocks of 256).
 *
 * Exact part. When every x lies on its block's int8 grid (x = k·2^-7 with
 * |k| <= 127 and some |k| = 127 in each block of 32), quantizing x loses
 * nothing, so a kernel differs from the reference by float rounding alone:
 * the integer sums per block are exact in int32, and each block's term
 * (weight scale x x scale x integer, < 2^24 in magnitude before scaling so
 * exact in fp32) takes at most 4 roundings (scale products, product, the
 * fused add) before being added into an fp32 accumulator with at most nb
 * other terms (nb = blocks of 32 in the row). Each term is at most
 * Σ_block |w·x| (Q4_K: Σ (|d·sc·q| + |dmin·m|)·|x|, its scale and min parts
 * being separate terms), so with u = 2^-24, A = Σ over the row of those,
 *     |kernel - reference| <= (nb + 4)·u·A + (dequantization's 1 ulp)·A,
 * and the test allows (nb + 8)·4u·A: 4x margin over that bound, at most
 * 4·10^-5 of A for these rows (152 blocks), well below what one unit
 * wrong in one weight's integer does (|d|·|x|, about 1/|w|·|x| of A's
 * average term, ~10^-3 of A here).
 *
 * Quantized part. With x off the grid (uniform in [-1, 1], a few 4x larger),
 * each x value moves by at most half its block's step amax/127, so the
 * result may differ from the reference by Σ_blocks Σ|w|·amax/254 (plus the
 * rounding above); the test allows exactly that.
 *
 * Paths. The SIMD and portable kernels compute the same integers and differ
 * only in the order of the fp32 additions: on x on the grid each is within
 * the exact-part tolerance of the reference, so they are within twice that
 * of each other.
 *
 * Each check prints the largest difference found and its ratio to the
 * tolerance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate/qmatvec.h"
#include "io/dtype.h"
#include "io/gguf_read.h"
#include "quant/dequant_gguf.h"
#include "quant/quant.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next32(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}
static double uni(void) { return (double)next32() / 4294967296.0; }

#define ROWS 37

/* A random fp16 scale of either sign, magnitude in [2^-10, 2^-6). */
static void put_f16(uint8_t *p, int sign) {
    float v = (float)ldexp(1.0 + uni(), -10 + (int)(next32() % 4));
    if (sign && (next32() & 1)) v = -v;
    uint16_t h = tn_f32_to_f16(v);
    p[0] = (uint8_t)(h & 0xFF), p[1] = (uint8_t)(h >> 8);
}

/* rows x cols of random blocks of `type`. */
static uint8_t *random_rows(int type, int64_t cols) {
    const int bs = tn_gguf_type_block(type), bb = tn_gguf_type_bytes(type);
    const int64_t nblk = ROWS * (cols / bs);
    uint8_t *w = malloc((size_t)(nblk * bb));
    assert_non_null(w);
    for (int64_t i = 0; i < nblk * bb; i++) w[i] = (uint8_t)next32();
    for (int64_t i = 0; i < nblk; i++) {
        uint8_t *b = w + i * bb;
        switch (type) {
        case TN_GGML_Q4_K: put_f16(b, 0), put_f16(b + 2, 0); break; /* d, dmin (ggml's are >= 0) */
        case TN_GGML_Q6_K: put_f16(b + 208, 1); break;
        default: put_f16(b, 1); break; /* Q4_0, Q5_0, Q8_0: d first */
        }
    }
    return w;
}

/* Per value c of row r: the dequantized weight and the magnitude A counts
 * for it (|w|, or Q4_K's |d·sc·q| + |dmin·m|). */
static void reference_row(int type, const uint8_t *row, int64_t cols, float *w, double *mag) {
    tn_gguf_dequantize_row(type, row, w, cols);
    for (int64_t c = 0; c < cols; c++) mag[c] = fabs(w[c]);
    if (type != TN_GGML_Q4_K) return;
    for (int64_t i = 0; i < cols / 256; i++) {
        const uint8_t *b = row + 144 * i, *sc = b + 4, *q = b + 16;
        const double d = tn_f16_to_f32((uint16_t)(b[0] | b[1] << 8)), dmin = tn_f16_to_f32((uint16_t)(b[2] | b[3] << 8));
        for (int j = 0; j < 8; j++) {
            int s, m;
            if (j < 4) s = sc[j] & 63, m = sc[j + 4] & 63;
            else s = (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4), m = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
            for (int l = 0; l < 32; l++) {
                const int v = j & 1 ? q[32 * (j / 2) + l] >> 4 : q[32 * (j / 2) + l] & 0xF;
                mag[256 * i + 32 * j + l] = fabs(d * s * v) + fabs(dmin * m);
            }
        }
    }
}

/* x on the int8 grid (exact quantization) or off it. */
static void make_x(float *x, int64_t cols, int on_grid) {
    for (int64_t b = 0; b < cols / 32; b++)
        for (int j = 0; j < 32; j++) {
            float *v = &x[32 * b + j];
            if (on_grid) {
                int k = (int)(next32() % 255) - 127;
                if (j == (int)(b % 32)) k = next32() & 1 ? 127 : -127;
                *v = (float)ldexp(k, -7);
            } else *v = (float)((uni() * 2 - 1) * (next32() % 9 == 0 ? 4.0 : 1.0));
        }
}

typedef struct {
    double worst_ratio, worst_diff;
} stats;

/* y from the kernels against the reference; returns 0 when a row fails. */
static int compare(int type, const uint8_t *w, int64_t cols, const float *x, const float *y, int on_grid, stats *st) {
    const int64_t rb = (cols / tn_gguf_type_block(type)) * tn_gguf_type_bytes(type), nb = cols / 32;
    float *wr = malloc(sizeof(float) * (size_t)cols);
    double *mag = malloc(sizeof(double) * (size_t)cols);
    int ok = 1;
    for (int r = 0; r < ROWS; r++) {
        reference_row(type, w + r * rb, cols, wr, mag);
        double s = 0, A = 0, qb = 0;
        for (int64_t c = 0; c < cols; c++) s += (double)wr[c] * x[c], A += mag[c] * fabs(x[c]);
        for (int64_t b = 0; !on_grid && b < nb; b++) {
            double amax = 0, sw = 0;
            for (int j = 0; j < 32; j++) amax = fmax(amax, fabs(x[32 * b + j])), sw += fabs(wr[32 * b + j]);
            qb += sw * amax / 254;
        }
        const double tol = qb + (double)(nb + 8) * ldexp(1, -22) * (A + qb) + 1e-30;
        const double diff = fabs((double)y[r] - s);
        if (diff / tol > st->worst_ratio) st->worst_ratio = diff / tol;
        if (diff > st->worst_diff) st->worst_diff = diff;
        if (!(diff <= tol)) {
            print_error("%s cols %lld row %d (%s, x %s the grid): %.9g vs reference %.9g, diff %.3g > tolerance %.3g\n", tn_gguf_type_name(type),
                        (long long)cols, r, tn_qmatvec_kernels(), on_grid ? "on" : "off", (double)y[r], s, diff, tol);
            ok = 0;
        }
    }
    free(wr), free(mag);
    return ok;
}

static const int TYPES[] = {TN_GGML_Q4_0, TN_GGML_Q5_0, TN_GGML_Q8_0, TN_GGML_Q4_K, TN_GGML_Q6_K};
static const int64_t COLS32[] = {32, 96, 160, 928, 896, 4864};
static const int64_t COLS256[] = {256, 768, 4864};

/* paths: 0 fastest on this CPU, 1 AVX2 (no VNNI), 2 portable */
static void set_path(int p) {
    tn_qmatvec_fp32_act = 0;
    tn_qmatvec_no_vnni = p == 1;
    tn_qmatvec_portable_only = p == 2;
}

static void run_types(int on_grid) {
    int all_ok = 1;
    for (size_t t = 0; t < sizeof TYPES / sizeof *TYPES; t++) {
        const int type = TYPES[t], k256 = tn_gguf_type_block(type) == 256;
        const int64_t *cols_list = k256 ? COLS256 : COLS32;
        const size_t ncols = k256 ? sizeof COLS256 / sizeof *COLS256 : sizeof COLS32 / sizeof *COLS32;
        for (int p = 0; p < 3; p++) {
            set_path(p);
            if (p == 1 && strcmp(tn_qmatvec_kernels(), "avx2") != 0) continue; /* no AVX2 here, or the same as path 0 */
            stats st = {0, 0};
            for (size_t k = 0; k < ncols; k++) {
                const int64_t cols = cols_list[k];
                uint8_t *w = random_rows(type, cols);
                float *x = malloc(sizeof(float) * (size_t)cols), y[ROWS];
                make_x(x, cols, on_grid);
                tn_qmatvec(type, w, x, y, ROWS, cols);
                all_ok &= compare(type, w, cols, x, y, on_grid, &st);
                free(w), free(x);
            }
            print_message("%-4s %-11s x %s the grid: largest |kernel - reference| %.3g, %.2g of the tolerance\n", tn_gguf_type_name(type),
                          tn_qmatvec_kernels(), on_grid ? "on " : "off", st.worst_diff, st.worst_ratio);
        }
    }
    set_path(0);
    tn_qmatvec_fp32_act = -1;
    assert_true(all_ok);
}

static void test_kernels_exact(void **state) {
    (void)state;
    run_types(1);
}

static void test_kernels_quantized(void **state) {
    (void)state;
    run_types(0);
}

/* The SIMD kernels against the portable ones on the same rows and x. */
static void test_simd_vs_portable(void **state) {
    (void)state;
    int all_ok = 1;
    for (size_t t = 0; t < sizeof TYPES / sizeof *TYPES; t++) {
        const int type = TYPES[t];
        const int64_t cols = tn_gguf_type_block(type) == 256 ? 4864 : 928;
        uint8_t *w = random_rows(type, cols);
        float *x = malloc(sizeof(float) * (size_t)cols), *wr = malloc(sizeof(float) * (size_t)cols), yp[ROWS], ys[ROWS];
        double *mag = malloc(sizeof(double) * (size_t)cols);
        make_x(x, cols, 1);
        set_path(2);
        tn_qmatvec(type, w, x, yp, ROWS, cols);
        const int64_t rb = (cols / tn_gguf_type_block(type)) * tn_gguf_type_bytes(type);
        for (int p = 0; p < 2; p++) {
            set_path(p);
            if (strcmp(tn_qmatvec_kernels(), "portable") == 0 || (p == 1 && strcmp(tn_qmatvec_kernels(), "avx2") != 0)) continue;
            tn_qmatvec(type, w, x, ys, ROWS, cols);
            double worst = 0, worst_ratio = 0;
            for (int r = 0; r < ROWS; r++) {
                reference_row(type, w + r * rb, cols, wr, mag);
                double A = 0;
                for (int64_t c = 0; c < cols; c++) A += mag[c] * fabs(x[c]);
                const double tol = 2 * (double)(cols / 32 + 8) * ldexp(1, -22) * A + 1e-30, diff = fabs((double)ys[r] - yp[r]);
                worst = fmax(worst, diff), worst_ratio = fmax(worst_ratio, diff / tol);
                if (!(diff <= tol)) {
                    print_error("%s row %d: %s %.9g vs portable %.9g (tolerance %.3g)\n", tn_gguf_type_name(type), r, tn_qmatvec_kernels(),
                                (double)ys[r], (double)yp[r], tol);
                    all_ok = 0;
                }
            }
            print_message("%-4s %-11s vs portable: largest difference %.3g, %.2g of the tolerance\n", tn_gguf_type_name(type),
                          tn_qmatvec_kernels(), worst, worst_ratio);
        }
        free(w), free(x), free(wr), free(mag);
    }
    set_path(0);
    tn_qmatvec_fp32_act = -1;
    assert_true(all_ok);
}

/* x's quantization: the AVX2 quantizer gives the portable one's bytes, ties
 * (x/d exactly k + 0.5) included, and the portable one is what qmatvec.h
 * says: d = amax/127, round half to even, the sums. */
static void test_quantize_x(void **state) {
    (void)state;
    enum { N = 32 * 41 };
    float x[N];
    for (int i = 0; i < N; i++) x[i] = (float)((uni() * 2 - 1) * (next32() % 7 == 0 ? 1e3 : 1.0));
    for (int j = 0; j < 32; j++) x[32 + j] = (float)j - 16.5f; /* block 1: amax 16.5 */
    for (int j = 0; j < 32; j++) x[64 + j] = j == 0 ? 127.0f : (float)(j % 9) - 3.5f; /* block 2: d = 1, ties at ±0.5, ±1.5 ... */
    for (int j = 0; j < 32; j++) x[96 + j] = 0; /* block 3: all zero */
    int8_t q[2][N];
    float d[2][N / 32];
    int32_t s16[2][N / 16], s32[2][N / 32];
    for (int p = 0; p < 2; p++) {
        set_path(p ? 2 : 0);
        tn_qmatvec_quantize_x(x, N, q[p], d[p], s16[p], s32[p]);
    }
    set_path(0);
    tn_qmatvec_fp32_act = -1;
    assert_memory_equal(q[0], q[1], sizeof q[0]);
    assert_memory_equal(d[0], d[1], sizeof d[0]);
    assert_memory_equal(s16[0], s16[1], sizeof s16[0]);
    assert_memory_equal(s32[0], s32[1], sizeof s32[0]);
    for (int b = 0; b < N / 32; b++) {
        float amax = 0;
        int32_t t[2] = {0, 0};
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * b + j]));
        assert_true(d[1][b] == amax / 127.0f);
        for (int j = 0; j < 32; j++) {
            const float v = amax > 0 ? x[32 * b + j] * (127.0f / amax) : 0.0f, r = nearbyintf(v);
            assert_true(q[1][32 * b + j] == (int8_t)r);
            assert_true(fabsf(v - r) <= 0.5f);
            if (fabsf(v - r) == 0.5f) assert_true(fmodf(r, 2.0f) == 0.0f); /* ties to even */
            t[j / 16] += q[1][32 * b + j];
        }
        assert_int_equal(s16[1][2 * b], t[0]);
        assert_int_equal(s16[1][2 * b + 1], t[1]);
        assert_int_equal(s32[1][b], t[0] + t[1]);
    }
    assert_int_equal(q[1][64 + 1], -2); /* block 2: -2.5 -> -2 */
    assert_int_equal(q[1][64 + 2], -2);  /* -1.5 -> -2 */
    assert_int_equal(q[1][64 + 3], 0);   /* -0.5 -> 0 */
    assert_int_equal(q[1][64 + 4], 0);   /* 0.5 -> 0 */
    assert_int_equal(q[1][64 + 5], 2);   /* 1.5 -> 2 */
    print_message("quantize_x: the AVX2 and the portable quantizer give the same bytes on %d values (ties included)\n", N);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_kernels_exact), cmocka_unit_test(test_kernels_quantized),
                                       cmocka_unit_test(test_simd_vs_portable), cmocka_unit_test(test_quantize_x)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
