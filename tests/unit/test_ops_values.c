/* test_ops_values.c - operations against values computed another way: rope
 * tables against direct cos/sin and against Python's llama3 rescaling, the
 * cross-entropy on a hand-computed case, attention against a naive [S, S]
 * reference; and the same bits from 1, 2 and 3 threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"
#include "util/error.h"
#include "util/rng.h"

static tn_rng rng;

static int setup(void **state) {
    tn_rng_seed(&rng, 99, tn_hash_string("test_ops_values"));
    return 0;
}

static double *randn(size_t n, double sd) {
    double *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = sd * tn_rng_normal(&rng);
    return x;
}

static float *randn_f(size_t n, double sd) {
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)sd * tn_rng_normal(&rng);
    return x;
}

static void assert_close(double got, double want, double rel, const char *what) {
    if (!(fabs(got - want) <= rel * fmax(fabs(want), 1e-300)))
        fail_msg("%s: got %.17g, want %.17g (rel %.3g > %.0e)", what, got, want, fabs(got - want) / fabs(want), rel);
}

/* ---- rope ------------------------------------------------------------------ */

/* No scaling: the table is cos/sin(pos · theta^(−2i/hd)) and the forward is
 * transformers' x·cos + rotate_half(x)·sin, written here the long way. */
static void test_rope_plain(void **state) {
    enum { HD = 16, HALF = HD / 2, MAXP = 100, NH = 3, T = 4 };
    tn_rope_params p = {.theta = 10000, .scaling = TN_ROPE_SCALE_NONE};
    tn_rope_table rt;
    assert_int_equal(tn_rope_table_init(&rt, MAXP, HD, &p), 0);
    assert_int_equal(rt.half, HALF);
    for (int pos = 0; pos < MAXP; pos++)
        for (int i = 0; i < HALF; i++) {
            double angle = pos * pow(10000.0, -2.0 * i / HD);
            size_t k = (size_t)pos * HALF + i;
            assert_true(fabs(rt.cos_d[k] - cos(angle)) < 1e-15 && fabs(rt.sin_d[k] - sin(angle)) < 1e-15);
            assert_true(rt.cos[k] == (float)rt.cos_d[k] && rt.sin[k] == (float)rt.sin_d[k]);
        }
    int32_t pos[T] = {0, 5, 99, 42};
    double *x = randn(T * NH * HD, 1), *y = malloc(T * NH * HD * sizeof *y);
    memcpy(y, x, T * NH * HD * sizeof *y);
    tn_rope_forward_d(y, &rt, pos, T, NH, HD);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < NH; h++) {
            const double *xh = x + (t * NH + h) * HD;
            for (int d = 0; d < HD; d++) {
                double angle = pos[t] * pow(10000.0, -2.0 * (d % HALF) / HD);
                double rot = d < HALF ? -xh[d + HALF] : xh[d - HALF]; /* rotate_half */
                double want = xh[d] * cos(angle) + rot * sin(angle);
                assert_true(fabs(y[(t * NH + h) * HD + d] - want) < 1e-14);
            }
        }
    tn_rope_table_free(&rt);
    free(x), free(y);
}

/* Llama 3.2's rope_scaling (factor 32, low 1, high 4, original 8192, theta
 * 500000, head dim 128) against an independent Python computation of
 * transformers' _compute_llama3_parameters in double:
 *
 *   import math
 *   def llama3(theta, hd, factor, low, high, orig):
 *       out = []
 *       for i in range(0, hd, 2):
 *           f = 1.0 / theta ** (i / hd); wl = 2 * math.pi / f
 *           if wl < orig / high: g = f
 *           elif wl > orig / low: g = f / factor
 *           else:
 *               s = (orig / wl - low) / (high - low); g = (1 - s) * f / factor + s * f
 *           out.append(g)
 *       return out
 *   inv = llama3(500000.0, 128, 32.0, 1.0, 4.0, 8192)
 *   print([repr(inv[i]) for i in (0, 20, 30, 40, 45, 63)])
 *   for pos, i in ((1000, 20), (1000, 40), (77, 45), (4095, 63)):
 *       print(repr(math.cos(pos * inv[i])), repr(math.sin(pos * inv[i])))
 *
 * Pair 20 (wavelength 379) is kept, 30 (2948) is in the smooth band
 * [2048, 8192], 40 and above are divided by 32. */
static void test_rope_llama3(void **state) {
    tn_rope_params p = {.theta = 500000, .scaling = TN_ROPE_SCALE_LLAMA3, .factor = 32, .low_freq_factor = 1,
                        .high_freq_factor = 4, .original_max_pos = 8192};
    double inv[64];
    tn_rope_inv_freq(inv, 128, &p);
    static const struct {
        int i;
        double want;
    } freqs[] = {{0, 1.0},
                 {20, 0.016560440080994446},
                 {30, 0.001290547928209264},
                 {40, 8.570255489881478e-06},
                 {45, 3.0744096694909034e-06},
                 {63, 7.672314972286278e-08}};
    for (size_t k = 0; k < sizeof freqs / sizeof *freqs; k++) assert_close(inv[freqs[k].i], freqs[k].want, 1e-14, "inv_freq");
    tn_rope_table rt;
    assert_int_equal(tn_rope_table_init(&rt, 4096, 128, &p), 0);
    static const struct {
        int pos, i;
        double cos, sin;
    } vals[] = {{1000, 20, -0.6581203423130288, -0.752912753932208},
                {1000, 40, 0.9999632755852017, 0.00857015057708544},
                {77, 45, 0.9999999719795615, 0.000236729542339711},
                {4095, 63, 0.9999999506450563, 0.0003141812929463229}};
    for (size_t k = 0; k < sizeof vals / sizeof *vals; k++) {
        size_t at = (size_t)vals[k].pos * 64 + vals[k].i;
        /* An angle of ~16 rad carries ~1e-15 of its own rounding. */
        assert_true(fabs(rt.cos_d[at] - vals[k].cos) < 1e-13);
        assert_true(fabs(rt.sin_d[at] - vals[k].sin) < 1e-13);
    }
    tn_rope_table_free(&rt);
}

/* Linear scaling: positions divided by the factor. */
static void test_rope_linear(void **state) {
    tn_rope_params p = {.theta = 10000, .scaling = TN_ROPE_SCALE_LINEAR, .factor = 4};
    tn_rope_table rt;
    assert_int_equal(tn_rope_table_init(&rt, 50, 8, &p), 0);
    for (int pos = 0; pos < 50; pos++)
        for (int i = 0; i < 4; i++) {
            double angle = (pos / 4.0) * pow(10000.0, -2.0 * i / 8);
            assert_true(fabs(rt.cos_d[pos * 4 + i] - cos(angle)) < 1e-15);
            assert_true(fabs(rt.sin_d[pos * 4 + i] - sin(angle)) < 1e-15);
        }
    tn_rope_table_free(&rt);
}

static void test_rope_bad_params(void **state) {
    tn_rope_params p = {.theta = 10000, .scaling = TN_ROPE_SCALE_NONE};
    tn_rope_table rt;
    assert_int_not_equal(tn_rope_table_init(&rt, 10, 7, &p), 0);
    assert_non_null(strstr(tn_error(), "head dim"));
    p.scaling = TN_ROPE_SCALE_LLAMA3;
    p.factor = 8, p.low_freq_factor = 4, p.high_freq_factor = 1, p.original_max_pos = 8192;
    assert_int_not_equal(tn_rope_table_init(&rt, 10, 8, &p), 0);
    assert_non_null(strstr(tn_error(), "low_freq_factor"));
    assert_null(rt.cos);
}

/* ---- cross-entropy ----------------------------------------------------- */

/* logits (1, 2, 3), label 2. In Python:
 *   lse = math.log(math.exp(1) + math.exp(2) + math.exp(3))
 *   lse - 3 = 0.40760596444438013
 *   softmax = [exp(x - lse)] = 0.09003057317038048, 0.2447284710547977, 0.665240955774822 */
static void test_cross_entropy_known(void **state) {
    double l[3] = {1, 2, 3};
    int32_t label = 2;
    int counted = 0;
    double loss = tn_cross_entropy_forward_backward_d(l, &label, 1, 3, 0.5, &counted);
    assert_int_equal(counted, 1);
    assert_close(loss, 0.40760596444438013, 1e-14, "loss");
    assert_close(l[0], 0.5 * 0.09003057317038048, 1e-15, "dlogit 0");
    assert_close(l[1], 0.5 * 0.2447284710547977, 1e-15, "dlogit 1");
    assert_close(l[2], 0.5 * (0.665240955774822 - 1), 1e-14, "dlogit 2");
    float lf[3] = {1, 2, 3};
    double loss_f = tn_cross_entropy_forward_backward(lf, &label, 1, 3, 0.5f, &counted);
    assert_close(loss_f, 0.40760596444438013, 1e-6, "float loss");
    assert_close(lf[0], 0.5 * 0.09003057317038048, 1e-6, "float dlogit 0");
    assert_close(lf[2], 0.5 * (0.665240955774822 - 1), 1e-6, "float dlogit 2");

    /* Far-apart logits stay finite: loss = 1000 − 0 + log(1 + e^−1000 + ...). */
    float big[3] = {1000, 0, -1000};
    label = 1;
    loss_f = tn_cross_entropy_forward_backward(big, &label, 1, 3, 1, &counted);
    assert_close(loss_f, 1000, 1e-7, "far-apart loss");
    assert_true(fabsf(big[0] - 1) < 1e-6f && fabsf(big[1] + 1) < 1e-6f && big[2] == 0);

    /* A chunk of ignored rows: nothing counted, zero loss, zero gradient. */
    float ign[6] = {1, 2, 3, 4, 5, 6};
    int32_t labels[2] = {TN_IGNORE_INDEX, TN_IGNORE_INDEX};
    counted = -1;
    assert_true(tn_cross_entropy_forward_backward(ign, labels, 2, 3, 1, &counted) == 0);
    assert_int_equal(counted, 0);
    for (int i = 0; i < 6; i++) assert_true(ign[i] == 0);
}

/* ---- attention against the naive [S, S] computation --------------------- */

/* S = 150 spans three of the kernel's 64-row query blocks; the window of 70
 * reaches back across a block boundary. */
static void test_attention_naive(void **state) {
    enum { B = 2, S = 150, NH = 4, NKV = 2, HD = 8, T = B * S };
    double *q = randn(T * NH * HD, 1), *k = randn(T * NKV * HD, 1), *v = randn(T * NKV * HD, 1);
    double *out = malloc(T * NH * HD * sizeof *out), *lse = malloc(T * NH * sizeof *lse);
    double *s = malloc(S * sizeof *s);
    const double scale = 1 / sqrt(HD);
    for (int window = 0; window <= 70; window += 70)
        for (int cap = 0; cap <= 2; cap += 2) {
            tn_attention_forward_d(out, lse, q, k, v, B, S, NH, NKV, HD, scale, cap, window);
            for (int b = 0; b < B; b++)
                for (int h = 0; h < NH; h++) {
                    int g = h / (NH / NKV);
                    for (int i = 0; i < S; i++) {
                        double z = 0;
                        for (int j = 0; j < S; j++) {
                            double dot = 0;
                            for (int d = 0; d < HD; d++)
                                dot += q[((b * S + i) * NH + h) * HD + d] * k[((b * S + j) * NKV + g) * HD + d];
                            dot *= scale;
                            if (cap) dot = cap * tanh(dot / cap);
                            int visible = j <= i && (window == 0 || i - j < window);
                            s[j] = visible ? exp(dot) : 0;
                            z += s[j];
                        }
                        assert_close(lse[(b * S + i) * NH + h], log(z), 1e-13, "lse");
                        for (int d = 0; d < HD; d++) {
                            double o = 0;
                            for (int j = 0; j < S; j++) o += s[j] / z * v[((b * S + j) * NKV + g) * HD + d];
                            assert_true(fabs(out[((b * S + i) * NH + h) * HD + d] - o) < 1e-13);
                        }
                    }
                }
        }
    free(q), free(k), free(v), free(out), free(lse), free(s);
}

/* ---- the same bits from any number of threads --------------------------- */

typedef struct {
    float *data;
    size_t n;
} buf;

/* Runs every parallel float operation on shapes big enough to use threads;
 * returns the outputs and gradients concatenated. */
static float *run_all(int threads, size_t *n_out) {
    omp_set_num_threads(threads);
    tn_rng_seed(&rng, 7, 7);
    enum { B = 2, S = 150, NH = 4, NKV = 2, HD = 16, T = B * S, C = 1024, V = 1000, ROWS = 70 };
    size_t nq = (size_t)T * NH * HD, nk = (size_t)T * NKV * HD;
    size_t total = nq * 2 + nk * 2 + T * NH + (size_t)T * C * 2 + C * 2 + (size_t)ROWS * V + 1 + C + 2 * C;
    float *res = calloc(total, sizeof *res), *r = res;
    /* attention, window and soft-cap on */
    float *q = randn_f(nq, 1), *k = randn_f(nk, 1), *v = randn_f(nk, 1), *dout = randn_f(nq, 1);
    float *out = r; r += nq;
    float *lse = r; r += T * NH;
    tn_attention_forward(out, lse, q, k, v, B, S, NH, NKV, HD, 0.25f, 30, 70);
    float *dq = r; r += nq;
    float *dk = r; r += nk;
    float *dv = r; r += nk;
    tn_attention_backward(dq, dk, dv, dout, out, lse, q, k, v, B, S, NH, NKV, HD, 0.25f, 30, 70);
    /* rmsnorm backward (dw sums over rows) */
    float *x = randn_f((size_t)T * C, 1), *w = randn_f(C, 1), *dy = randn_f((size_t)T * C, 1);
    float *y = r; r += (size_t)T * C;
    float rstd[T];
    tn_rmsnorm_forward(y, rstd, x, w, T, C, 1e-6f, 0);
    float *dx = r; r += (size_t)T * C;
    float *dw = r; r += C;
    tn_rmsnorm_backward(dx, dw, dy, x, w, rstd, T, C, 0);
    /* embedding backward with repeated ids */
    int32_t ids[T];
    for (int t = 0; t < T; t++) ids[t] = t % 5;
    float *de = calloc(5 * C, sizeof *de);
    tn_embedding_backward(de, dy, ids, T, C, 1.5f);
    memcpy(r, de, C * sizeof *r); r += C;
    /* matmul's bias gradient */
    float *db = r; r += C;
    float *dbw = calloc((size_t)C * C, sizeof *dbw);
    tn_matmul_backward(NULL, NULL, db, dy, x, dbw, T, C, C);
    /* cross-entropy over two row blocks */
    float *logits = r; r += (size_t)ROWS * V;
    for (size_t i = 0; i < (size_t)ROWS * V; i++) logits[i] = 3 * tn_rng_normal(&rng);
    int32_t labels[ROWS];
    for (int i = 0; i < ROWS; i++) labels[i] = i % 9 == 0 ? TN_IGNORE_INDEX : (i * 37) % V;
    *r++ = (float)tn_cross_entropy_forward_backward(logits, labels, ROWS, V, 1.0f / 60, NULL);
    r += C; /* rmsnorm dw via one_plus below */
    tn_rmsnorm_backward(NULL, r - C, dy, x, w, rstd, T, C, 1);
    free(q), free(k), free(v), free(dout), free(x), free(w), free(dy), free(de), free(dbw);
    *n_out = (size_t)(r - res);
    assert_true(*n_out <= total);
    return res;
}

static void test_thread_count_invariance(void **state) {
    int saved = omp_get_max_threads();
    size_t n1, n2, n3;
    float *one = run_all(1, &n1), *two = run_all(2, &n2), *three = run_all(3, &n3);
    omp_set_num_threads(saved);
    assert_int_equal(n1, n2);
    assert_int_equal(n1, n3);
    assert_memory_equal(one, two, n1 * sizeof(float));
    assert_memory_equal(one, three, n1 * sizeof(float));
    free(one), free(two), free(three);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_rope_plain, setup),      cmocka_unit_test(test_rope_llama3),
        cmocka_unit_test(test_rope_linear),                  cmocka_unit_test(test_rope_bad_params),
        cmocka_unit_test(test_cross_entropy_known),          cmocka_unit_test_setup(test_attention_naive, setup),
        cmocka_unit_test(test_thread_count_invariance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
