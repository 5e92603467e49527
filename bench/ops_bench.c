/* ops_bench.c - `make bench-ops`: how fast the CPU operations run here.
 *
 *   1. OpenBLAS's sgemm on the MLP shape of Qwen2.5-0.5B at T = 512 tokens
 *      (in 896, out 4864), in the three forms a Linear needs: y = x·Wᵀ,
 *      dx = dy·W, dW = dyᵀ·x; plus the attention projections' shapes. This
 *      is the ceiling the training step is measured against.
 *   2. Attention forward and backward at B = 1, S = 512, 14 query heads,
 *      2 kv heads, hd 64 (Qwen2.5-0.5B), causal, then with a window and a
 *      soft-cap (Gemma 2's options).
 *   3. Cross-entropy on a chunk of 64 rows of a 151936 vocabulary.
 *   4. The other per-layer operations at the same shapes (T = 512, C = 896,
 *      MLP 4864): rmsnorm, rope on q, SwiGLU, each forward + backward.
 *
 * Each figure is the median of several runs after a warm-up. Wall time on a
 * shared machine suffers from other load (a descheduled thread stalls every
 * barrier), so the sgemm and attention figures are repeated on one thread,
 * timed by that thread's CPU time, which other load hardly moves. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/ops.h"
#include "util/rng.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *randn(size_t n, float sd, tn_rng *r) {
    float *x = malloc(n * sizeof *x);
    if (!x) {
        fprintf(stderr, "ops_bench: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) x[i] = sd * tn_rng_normal(r);
    return x;
}

enum { REPS = 7 };

/* ---- sgemm ------------------------------------------------------------------ */

static void bench_gemm(const char *what, int T, int in, int out, tn_rng *r) {
    float *x = randn((size_t)T * in, 1, r), *w = randn((size_t)out * in, 0.05f, r);
    float *dy = randn((size_t)T * out, 1, r), *y = malloc((size_t)T * out * sizeof *y);
    float *dx = calloc((size_t)T * in, sizeof *dx), *dw = calloc((size_t)out * in, sizeof *dw);
    double flop = 2.0 * T * in * out;
    const char *forms[3] = {"y = x·Wᵀ", "dx += dy·W", "dW += dyᵀ·x"};
    for (int form = 0; form < 3; form++) {
        double times[REPS];
        for (int rep = -1; rep < REPS; rep++) {
            double t0 = now();
            if (form == 0)
                tn_matmul_forward(y, x, w, NULL, T, in, out, 0);
            else if (form == 1)
                tn_matmul_backward(dx, NULL, NULL, dy, x, w, T, in, out);
            else
                tn_matmul_backward(NULL, dw, NULL, dy, x, w, T, in, out);
            if (rep >= 0) times[rep] = now() - t0;
        }
        qsort(times, REPS, sizeof *times, cmp_double);
        printf("  %-16s T=%d in=%d out=%-5d %-12s %7.2f ms  %6.1f GFLOP/s (best %6.1f)\n", what, T, in, out,
               forms[form], times[REPS / 2] * 1e3, flop / times[REPS / 2] * 1e-9, flop / times[0] * 1e-9);
    }
    free(x), free(w), free(dy), free(y), free(dx), free(dw);
}

/* ---- attention ------------------------------------------------------------- */

static void bench_attention(int B, int S, int nh, int nkv, int hd, float softcap, int window, tn_rng *r) {
    size_t T = (size_t)B * S, nq = T * nh * hd, nk = T * nkv * hd;
    float *q = randn(nq, 1, r), *k = randn(nk, 1, r), *v = randn(nk, 1, r), *dout = randn(nq, 1, r);
    float *out = malloc(nq * sizeof *out), *lse = malloc(T * nh * sizeof *lse);
    float *dq = calloc(nq, sizeof *dq), *dk = calloc(nk, sizeof *dk), *dv = calloc(nk, sizeof *dv);
    float scale = 1 / sqrtf((float)hd);
    /* Score pairs (i, j) each query head visits. */
    double pairs = 0;
    for (int i = 0; i < S; i++) pairs += window > 0 && window < i + 1 ? window : i + 1;
    pairs *= (double)B * nh;
    double tf[REPS], tb[REPS];
    for (int rep = -1; rep < REPS; rep++) {
        double t0 = now();
        tn_attention_forward(out, lse, q, k, v, B, S, nh, nkv, hd, scale, softcap, window);
        double t1 = now();
        tn_attention_backward(dq, dk, dv, dout, out, lse, q, k, v, B, S, nh, nkv, hd, scale, softcap, window);
        double t2 = now();
        if (rep >= 0) tf[rep] = t1 - t0, tb[rep] = t2 - t1;
    }
    qsort(tf, REPS, sizeof *tf, cmp_double);
    qsort(tb, REPS, sizeof *tb, cmp_double);
    double f = tf[REPS / 2], b = tb[REPS / 2];
    /* The algorithm's own flops: forward q·k and p·v (2 products of hd per
     * pair); backward s, dp, dq, dk, dv (5; the two-pass kernel does 7). */
    double fl_f = pairs * 2 * 2 * hd, fl_b = pairs * 5 * 2 * hd;
    printf("  B=%d S=%d nh=%d nkv=%d hd=%d softcap=%g window=%d: forward %.1f ms (%.1f GFLOP/s), backward %.1f ms "
           "(%.1f GFLOP/s), total %.1f ms\n",
           B, S, nh, nkv, hd, softcap, window, f * 1e3, fl_f / f * 1e-9, b * 1e3, fl_b / b * 1e-9, (f + b) * 1e3);
    free(q), free(k), free(v), free(dout), free(out), free(lse), free(dq), free(dk), free(dv);
}

/* ---- cross-entropy --------------------------------------------------------- */

static void bench_cross_entropy(int rows, int V, tn_rng *r) {
    float *logits0 = randn((size_t)rows * V, 2, r), *logits = malloc((size_t)rows * V * sizeof *logits);
    int32_t *labels = malloc(rows * sizeof *labels);
    for (int i = 0; i < rows; i++) labels[i] = (i * 7919) % V;
    double times[REPS];
    for (int rep = -1; rep < REPS; rep++) {
        memcpy(logits, logits0, (size_t)rows * V * sizeof *logits);
        double t0 = now();
        tn_cross_entropy_forward_backward(logits, labels, rows, V, 1.0f / rows, NULL);
        if (rep >= 0) times[rep] = now() - t0;
    }
    qsort(times, REPS, sizeof *times, cmp_double);
    printf("  rows=%d V=%d: %.2f ms (%.2f ns per logit)\n", rows, V, times[REPS / 2] * 1e3,
           times[REPS / 2] / ((double)rows * V) * 1e9);
    free(logits0), free(logits), free(labels);
}

/* ---- the other operations of a layer -------------------------------------- */

static double median_ms(double *t) {
    qsort(t, REPS, sizeof *t, cmp_double);
    return t[REPS / 2] * 1e3;
}

static void bench_layer_ops(int T, int C, int F, int nh, int hd, tn_rng *r) {
    double t[REPS];
    /* rmsnorm */
    float *x = randn((size_t)T * C, 1, r), *w = randn(C, 1, r), *dy = randn((size_t)T * C, 1, r);
    float *y = malloc((size_t)T * C * sizeof *y), *rstd = malloc(T * sizeof *rstd);
    float *dx = calloc((size_t)T * C, sizeof *dx), *dw = calloc(C, sizeof *dw);
    for (int rep = -1; rep < REPS; rep++) {
        double t0 = now();
        tn_rmsnorm_forward(y, rstd, x, w, T, C, 1e-6f, 0);
        tn_rmsnorm_backward(dx, dw, dy, x, w, rstd, T, C, 0);
        if (rep >= 0) t[rep] = now() - t0;
    }
    printf("  rmsnorm  T=%d C=%d: %.3f ms\n", T, C, median_ms(t));
    /* rope on q */
    tn_rope_params p = {.theta = 1000000, .scaling = TN_ROPE_SCALE_NONE};
    tn_rope_table rt;
    if (tn_rope_table_init(&rt, T, hd, &p)) exit(1);
    int32_t *pos = malloc(T * sizeof *pos);
    for (int i = 0; i < T; i++) pos[i] = i;
    float *qx = randn((size_t)T * nh * hd, 1, r);
    for (int rep = -1; rep < REPS; rep++) {
        double t0 = now();
        tn_rope_forward(qx, &rt, pos, T, nh, hd);
        tn_rope_backward(qx, &rt, pos, T, nh, hd);
        if (rep >= 0) t[rep] = now() - t0;
    }
    printf("  rope     T=%d heads=%d hd=%d: %.3f ms\n", T, nh, hd, median_ms(t));
    tn_rope_table_free(&rt);
    /* swiglu */
    size_t n = (size_t)T * F;
    float *g = randn(n, 1, r), *u = randn(n, 1, r), *dh = randn(n, 1, r), *h = malloc(n * sizeof *h);
    float *dg = calloc(n, sizeof *dg), *du = calloc(n, sizeof *du);
    for (int rep = -1; rep < REPS; rep++) {
        double t0 = now();
        tn_swiglu_forward(h, g, u, (int64_t)n);
        tn_swiglu_backward(dg, du, dh, g, u, (int64_t)n);
        if (rep >= 0) t[rep] = now() - t0;
    }
    printf("  swiglu   n=%zu: %.3f ms\n", n, median_ms(t));
    free(x), free(w), free(dy), free(y), free(rstd), free(dx), free(dw), free(pos), free(qx);
    free(g), free(u), free(dh), free(h), free(dg), free(du);
}

/* ---- one thread, CPU time ---------------------------------------------------- */

static void bench_one_thread(tn_rng *r) {
    int omp_saved = omp_get_max_threads(), blas_saved = openblas_get_num_threads();
    omp_set_num_threads(1);
    openblas_set_num_threads(1);
    int T = 512, in = 896, out = 4864;
    float *x = randn((size_t)T * in, 1, r), *w = randn((size_t)out * in, 0.05f, r), *y = malloc((size_t)T * out * 4);
    double t[REPS];
    for (int rep = -1; rep < REPS; rep++) {
        double t0 = cpu_now();
        tn_matmul_forward(y, x, w, NULL, T, in, out, 0);
        if (rep >= 0) t[rep] = cpu_now() - t0;
    }
    qsort(t, REPS, sizeof *t, cmp_double);
    printf("  sgemm T=%d in=%d out=%d y = x·Wᵀ: %.1f GFLOP/s per core\n", T, in, out,
           2.0 * T * in * out / t[REPS / 2] * 1e-9);
    free(x), free(w), free(y);
    int B = 1, S = 512, nh = 14, nkv = 2, hd = 64;
    size_t nq = (size_t)B * S * nh * hd, nk = (size_t)B * S * nkv * hd;
    float *q = randn(nq, 1, r), *k = randn(nk, 1, r), *v = randn(nk, 1, r), *dout = randn(nq, 1, r);
    float *o = malloc(nq * 4), *lse = malloc((size_t)B * S * nh * 4), *dq = calloc(nq, 4), *dk = calloc(nk, 4),
          *dv = calloc(nk, 4);
    double tf[REPS], tb[REPS];
    for (int rep = -1; rep < REPS; rep++) {
        double t0 = cpu_now();
        tn_attention_forward(o, lse, q, k, v, B, S, nh, nkv, hd, 0.125f, 0, 0);
        double t1 = cpu_now();
        tn_attention_backward(dq, dk, dv, dout, o, lse, q, k, v, B, S, nh, nkv, hd, 0.125f, 0, 0);
        if (rep >= 0) tf[rep] = t1 - t0, tb[rep] = cpu_now() - t1;
    }
    qsort(tf, REPS, sizeof *tf, cmp_double);
    qsort(tb, REPS, sizeof *tb, cmp_double);
    printf("  attention B=%d S=%d nh=%d nkv=%d hd=%d: forward %.1f ms, backward %.1f ms (CPU time of one core)\n", B,
           S, nh, nkv, hd, tf[REPS / 2] * 1e3, tb[REPS / 2] * 1e3);
    free(q), free(k), free(v), free(dout), free(o), free(lse), free(dq), free(dk), free(dv);
    omp_set_num_threads(omp_saved);
    openblas_set_num_threads(blas_saved);
}

int main(void) {
    tn_rng r;
    tn_rng_seed(&r, 1, 1);
    printf("ops_bench: %d OpenMP threads, %d OpenBLAS threads (%s)\n", omp_get_max_threads(),
           openblas_get_num_threads(), openblas_get_config());
    /* Half a second of products first: OpenBLAS's threads start and the
     * clocks settle before the first figure. */
    {
        float *a = randn(512 * 896, 1, &r), *w = randn(4864 * 896, 1, &r), *y = malloc(512 * 4864 * sizeof *y);
        for (double t0 = now(); now() - t0 < 0.5;) tn_matmul_forward(y, a, w, NULL, 512, 896, 4864, 0);
        free(a), free(w), free(y);
    }
    printf("sgemm (OpenBLAS, through tn_matmul_*):\n");
    bench_gemm("mlp gate/up", 512, 896, 4864, &r);
    bench_gemm("mlp down", 512, 4864, 896, &r);
    bench_gemm("attn q/o", 512, 896, 896, &r);
    bench_gemm("attn k/v", 512, 896, 128, &r);
    printf("attention (tn_attention_forward / _backward):\n");
    bench_attention(1, 512, 14, 2, 64, 0, 0, &r);
    bench_attention(1, 512, 14, 2, 64, 50, 256, &r);
    printf("cross-entropy (tn_cross_entropy_forward_backward):\n");
    bench_cross_entropy(64, 151936, &r);
    printf("other layer operations, forward + backward:\n");
    bench_layer_ops(512, 896, 4864, 14, 64, &r);
    printf("one thread, timed by its CPU time (insensitive to other load):\n");
    bench_one_thread(&r);
    return 0;
}
