/* test_ops.c - every operation of nn/ops.h against its finite differences,
 * the float build against the double build, and the += contract of backward.
 *
 * Gradient check (double): random inputs x and a random upstream gradient dy
 * from the seeded generator; for every input element x_k, the central
 * difference of L = Σ dy·y,
 *
 *     g_k ≈ Σ_i dy_i (y_i(x + h e_k) − y_i(x − h e_k)) / 2h,
 *
 * is compared with the analytic backward by err = |a − g| / max(|a|, |g|, 1e-2).
 * Differencing y elementwise (rather than two sums L) leaves only the rounding
 * of y itself, ~1e-16·|y| / 2h per output, summed over every output x_k moves
 * (up to ~500 in the S = 133 attention case); the truncation term is
 * h²·y'''/6. Measured worst errors over all operations: 2.4e-7 at h = 1e-6,
 * 7.5e-8 at 3e-6, 1.8e-8 at 1e-5 - falling as 1/h, so rounding dominates and
 * truncation is still below 1e-8 at h = 1e-5, which is used. With inputs and
 * gradients of order one, the floor 1e-2 stops near-zero gradients (which
 * have no relative precision) from dominating. A wrong term in a backward
 * gives errors of 1e-3 and more (a dropped soft-cap factor or GQA head: > 1),
 * so FD_TOL = 1e-6 sits 50x above the noise and far below any bug.
 *
 * Float against double: the same inputs rounded to float; the float outputs
 * and gradients must agree with the double ones within F32_TOL, relative to
 * the largest magnitude of the array. These shapes sum at most ~130 terms,
 * so a faithful float build is within a few dozen ulp (measured worst:
 * 1.5e-6, attention's dk); F32_TOL = 1e-5 fails on any difference of meaning
 * (a missing term, a float/double mix-up that changes an algorithm) and not
 * on rounding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"
#include "util/rng.h"

#define FD_H 1e-5
#define FD_TOL 1e-6
#define FD_FLOOR 1e-2
#define F32_TOL 1e-5

/* ---- helpers ------------------------------------------------------------ */

static tn_rng rng;

static double *randn(size_t n, double sd) {
    double *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = sd * tn_rng_normal(&rng);
    return x;
}

static double *zeros(size_t n) { return calloc(n, sizeof(double)); }

static double *copy_d(const double *x, size_t n) {
    double *y = malloc(n * sizeof *y);
    memcpy(y, x, n * sizeof *y);
    return y;
}

static float *to_f(const double *x, size_t n) {
    float *y = malloc(n * sizeof *y);
    for (size_t i = 0; i < n; i++) y[i] = (float)x[i];
    return y;
}

static float *zeros_f(size_t n) { return calloc(n, sizeof(float)); }

/* The forward of one operation, reading its inputs from ctx, writing y. */
typedef void (*forward_fn)(void *ctx, double *y);

/* Largest err over the elements of x (an input that ctx points to). */
static double fd_check(const char *op, const char *input, forward_fn f, void *ctx, double *x, size_t nx,
                       const double *analytic, const double *dy, size_t ny) {
    double *yp = malloc(ny * sizeof *yp), *ym = malloc(ny * sizeof *ym);
    double worst = 0;
    size_t worst_k = 0;
    double worst_a = 0, worst_g = 0;
    for (size_t k = 0; k < nx; k++) {
        double x0 = x[k];
        x[k] = x0 + FD_H;
        f(ctx, yp);
        x[k] = x0 - FD_H;
        f(ctx, ym);
        x[k] = x0;
        double g = 0;
        for (size_t i = 0; i < ny; i++) g += dy[i] * (yp[i] - ym[i]);
        g /= 2 * FD_H;
        double a = analytic[k];
        double den = fmax(fmax(fabs(a), fabs(g)), FD_FLOOR);
        double err = fabs(a - g) / den;
        if (err > worst || k == 0) {
            worst = err;
            worst_k = k;
            worst_a = a;
            worst_g = g;
        }
    }
    printf("fd  %-34s d%-5s max rel err %.2e  (element %zu: analytic %.9g, numeric %.9g)\n", op, input, worst,
           worst_k, worst_a, worst_g);
    free(yp);
    free(ym);
    if (worst > FD_TOL) fail_msg("%s: gradient of %s off by %.3g (> %.0e)", op, input, worst, FD_TOL);
    return worst;
}

/* Norm-wise relative difference of a float array from a double one. */
static void f32_check(const char *op, const char *what, const float *f, const double *d, size_t n) {
    double scale = 0, diff = 0;
    for (size_t i = 0; i < n; i++) {
        scale = fmax(scale, fabs(d[i]));
        diff = fmax(diff, fabs((double)f[i] - d[i]));
    }
    double rel = scale > 0 ? diff / scale : diff;
    printf("f32 %-34s %-6s max diff / max |x| = %.2e\n", op, what, rel);
    if (rel > F32_TOL) fail_msg("%s: float %s differs from double by %.3g (> %.0e)", op, what, rel, F32_TOL);
}

/* backward(prefilled r) must equal r + backward(zero). */
static void accumulate_check(const char *op, const char *what, const double *with_r, const double *r,
                             const double *from_zero, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double want = r[i] + from_zero[i];
        if (fabs(with_r[i] - want) > 1e-12 * fmax(1, fabs(want)))
            fail_msg("%s: d%s[%zu] = %.17g, want prefilled %.17g + gradient %.17g: backward must accumulate", op,
                     what, i, with_r[i], r[i], from_zero[i]);
    }
}


static int setup(void **state) {
    tn_rng_seed(&rng, 1234, tn_hash_string("test_ops"));
    return 0;
}

/* ---- matmul ------------------------------------------------------------- */

typedef struct {
    double *x, *w, *b;
    int T, in, out;
} matmul_ctx;

static void matmul_fwd(void *p, double *y) {
    matmul_ctx *c = p;
    tn_matmul_forward_d(y, c->x, c->w, c->b, c->T, c->in, c->out, 0);
}

static void test_matmul(void **state) {
    enum { T = 6, IN = 8, OUT = 5 };
    matmul_ctx c = {randn(T * IN, 1), randn(OUT * IN, 1), randn(OUT, 1), T, IN, OUT};
    double *dy = randn(T * OUT, 1);
    double *dx = zeros(T * IN), *dw = zeros(OUT * IN), *db = zeros(OUT);
    tn_matmul_backward_d(dx, dw, db, dy, c.x, c.w, T, IN, OUT);
    fd_check("matmul", "x", matmul_fwd, &c, c.x, T * IN, dx, dy, T * OUT);
    fd_check("matmul", "w", matmul_fwd, &c, c.w, OUT * IN, dw, dy, T * OUT);
    fd_check("matmul", "bias", matmul_fwd, &c, c.b, OUT, db, dy, T * OUT);

    /* += in backward, and NULL gradients skipped. */
    double *rx = randn(T * IN, 1), *rw = randn(OUT * IN, 1), *rb = randn(OUT, 1);
    double *ax = copy_d(rx, T * IN), *aw = copy_d(rw, OUT * IN), *ab = copy_d(rb, OUT);
    tn_matmul_backward_d(ax, aw, ab, dy, c.x, c.w, T, IN, OUT);
    accumulate_check("matmul", "x", ax, rx, dx, T * IN);
    accumulate_check("matmul", "w", aw, rw, dw, OUT * IN);
    accumulate_check("matmul", "bias", ab, rb, db, OUT);
    double *only_w = zeros(OUT * IN);
    tn_matmul_backward_d(NULL, only_w, NULL, dy, c.x, c.w, T, IN, OUT);
    assert_memory_equal(only_w, dw, OUT * IN * sizeof(double));

    /* accumulate = 1 adds to y. */
    double *y = malloc(T * OUT * sizeof *y), *y0 = randn(T * OUT, 1), *ya = NULL;
    matmul_fwd(&c, y);
    ya = copy_d(y0, T * OUT);
    tn_matmul_forward_d(ya, c.x, c.w, c.b, T, IN, OUT, 1);
    accumulate_check("matmul forward", "y", ya, y0, y, T * OUT);

    /* float */
    float *xf = to_f(c.x, T * IN), *wf = to_f(c.w, OUT * IN), *bf = to_f(c.b, OUT), *dyf = to_f(dy, T * OUT);
    float *yf = zeros_f(T * OUT), *dxf = zeros_f(T * IN), *dwf = zeros_f(OUT * IN), *dbf = zeros_f(OUT);
    tn_matmul_forward(yf, xf, wf, bf, T, IN, OUT, 0);
    tn_matmul_backward(dxf, dwf, dbf, dyf, xf, wf, T, IN, OUT);
    f32_check("matmul", "y", yf, y, T * OUT);
    f32_check("matmul", "dx", dxf, dx, T * IN);
    f32_check("matmul", "dw", dwf, dw, OUT * IN);
    f32_check("matmul", "dbias", dbf, db, OUT);

    free(c.x), free(c.w), free(c.b), free(dy), free(dx), free(dw), free(db), free(rx), free(rw), free(rb);
    free(ax), free(aw), free(ab), free(only_w), free(y), free(y0), free(ya);
    free(xf), free(wf), free(bf), free(dyf), free(yf), free(dxf), free(dwf), free(dbf);
}

/* ---- rmsnorm ------------------------------------------------------------ */

typedef struct {
    double *x, *w, *rstd;
    int T, C, one_plus;
} rmsnorm_ctx;

static void rmsnorm_fwd(void *p, double *y) {
    rmsnorm_ctx *c = p;
    tn_rmsnorm_forward_d(y, c->rstd, c->x, c->w, c->T, c->C, 1e-5, c->one_plus);
}

static void test_rmsnorm(void **state) {
    enum { T = 6, C = 8 };
    for (int one_plus = 0; one_plus <= 1; one_plus++) {
        const char *op = one_plus ? "rmsnorm (1 + w)" : "rmsnorm";
        rmsnorm_ctx c = {randn(T * C, 1.5), randn(C, 0.5), zeros(T), T, C, one_plus};
        if (!one_plus)
            for (int i = 0; i < C; i++) c.w[i] += 1;
        double *dy = randn(T * C, 1), *y = zeros(T * C);
        rmsnorm_fwd(&c, y);
        double *dx = zeros(T * C), *dw = zeros(C);
        tn_rmsnorm_backward_d(dx, dw, dy, c.x, c.w, c.rstd, T, C, one_plus);
        fd_check(op, "x", rmsnorm_fwd, &c, c.x, T * C, dx, dy, T * C);
        fd_check(op, "w", rmsnorm_fwd, &c, c.w, C, dw, dy, T * C);
        rmsnorm_fwd(&c, y); /* fd_check left rstd from a perturbed x */

        double *rx = randn(T * C, 1), *rw = randn(C, 1);
        double *ax = copy_d(rx, T * C), *aw = copy_d(rw, C);
        tn_rmsnorm_backward_d(ax, aw, dy, c.x, c.w, c.rstd, T, C, one_plus);
        accumulate_check(op, "x", ax, rx, dx, T * C);
        accumulate_check(op, "w", aw, rw, dw, C);

        float *xf = to_f(c.x, T * C), *wf = to_f(c.w, C), *dyf = to_f(dy, T * C);
        float *yf = zeros_f(T * C), *rstdf = zeros_f(T), *dxf = zeros_f(T * C), *dwf = zeros_f(C);
        tn_rmsnorm_forward(yf, rstdf, xf, wf, T, C, 1e-5f, one_plus);
        tn_rmsnorm_backward(dxf, dwf, dyf, xf, wf, rstdf, T, C, one_plus);
        f32_check(op, "y", yf, y, T * C);
        f32_check(op, "rstd", rstdf, c.rstd, T);
        f32_check(op, "dx", dxf, dx, T * C);
        f32_check(op, "dw", dwf, dw, C);

        free(c.x), free(c.w), free(c.rstd), free(dy), free(y), free(dx), free(dw), free(rx), free(rw), free(ax);
        free(aw), free(xf), free(wf), free(dyf), free(yf), free(rstdf), free(dxf), free(dwf);
    }
}

/* ---- rope --------------------------------------------------------------- */

typedef struct {
    double *x;
    const tn_rope_table *rt;
    const int32_t *pos;
    int T, nh, hd;
} rope_ctx;

static void rope_fwd(void *p, double *y) {
    rope_ctx *c = p;
    memcpy(y, c->x, (size_t)c->T * c->nh * c->hd * sizeof *y);
    tn_rope_forward_d(y, c->rt, c->pos, c->T, c->nh, c->hd);
}

static void test_rope(void **state) {
    enum { T = 6, NH = 2, HD = 8, N = T * NH * HD };
    /* Frequencies 1, 0.1, 0.01, 0.001 (wavelengths 6.3, 63, 628, 6283)
     * against original 1024 / high 4 = 256 and 1024 / low 1 = 1024: two
     * pairs kept, one smoothed, one divided by the factor. */
    tn_rope_params p = {.theta = 10000, .scaling = TN_ROPE_SCALE_LLAMA3, .factor = 8, .low_freq_factor = 1,
                        .high_freq_factor = 4, .original_max_pos = 1024};
    tn_rope_table rt;
    assert_int_equal(tn_rope_table_init(&rt, 64, HD, &p), 0);
    int32_t pos[T] = {0, 1, 2, 37, 50, 63};
    rope_ctx c = {randn(N, 1), &rt, pos, T, NH, HD};
    double *dy = randn(N, 1), *y = zeros(N);
    rope_fwd(&c, y);
    double *dx = copy_d(dy, N);
    tn_rope_backward_d(dx, &rt, pos, T, NH, HD);
    fd_check("rope (llama3)", "x", rope_fwd, &c, c.x, N, dx, dy, N);

    float *xf = to_f(c.x, N), *gf = to_f(dy, N);
    tn_rope_forward(xf, &rt, pos, T, NH, HD);
    tn_rope_backward(gf, &rt, pos, T, NH, HD);
    f32_check("rope (llama3)", "y", xf, y, N);
    f32_check("rope (llama3)", "dx", gf, dx, N);

    /* Backward then forward is the identity (the rotation is orthogonal). */
    double *z = copy_d(dx, N);
    tn_rope_forward_d(z, &rt, pos, T, NH, HD);
    for (int i = 0; i < N; i++) assert_true(fabs(z[i] - dy[i]) < 1e-14);

    tn_rope_table_free(&rt);
    free(c.x), free(dy), free(y), free(dx), free(xf), free(gf), free(z);
}

/* ---- attention ---------------------------------------------------------- */

typedef struct {
    double *q, *k, *v, *lse;
    int B, S, nh, nkv, hd, window;
    double scale, softcap;
} attn_ctx;

static void attn_fwd(void *p, double *y) {
    attn_ctx *c = p;
    tn_attention_forward_d(y, c->lse, c->q, c->k, c->v, c->B, c->S, c->nh, c->nkv, c->hd, c->scale, c->softcap,
                           c->window);
}

/* The brief's shape (B 2, S 5, 4 query heads on 2 kv heads, hd 4); one
 * longer than the kernel's 64-row query blocks (S 133: three blocks, the
 * last partial, and a window of 70 that reaches across them); and plain
 * multi-head attention (nh = nkv), where dk, dv take a separate path. Each
 * with window off and on, soft-cap off and on. */
static void test_attention(void **state) {
    static const struct {
        int B, S, nh, nkv, hd, window;
    } shapes[] = {{2, 5, 4, 2, 4, 3}, {1, 133, 2, 1, 2, 70}, {2, 5, 2, 2, 4, 3}};
    for (size_t sh = 0; sh < sizeof shapes / sizeof *shapes; sh++) {
        const int B = shapes[sh].B, S = shapes[sh].S, NH = shapes[sh].nh, NKV = shapes[sh].nkv, HD = shapes[sh].hd;
        const int T = B * S, NQ = T * NH * HD, NK = T * NKV * HD;
        for (int window = 0; window <= shapes[sh].window; window += shapes[sh].window) {
            for (int cap = 0; cap <= 5; cap += 5) {
                char op[96];
                snprintf(op, sizeof op, "attention (S %d, %d/%d heads, window %d, softcap %d)", S, NH, NKV, window,
                         cap);
                /* Scores of several units, so the soft-cap bends them. */
                attn_ctx c = {randn(NQ, 1.5), randn(NK, 1.5), randn(NK, 1), zeros(T * NH), B, S, NH, NKV, HD,
                              window, 0.7, cap};
                double *dy = randn(NQ, 1), *out = zeros(NQ);
                attn_fwd(&c, out);
                double *dq = zeros(NQ), *dk = zeros(NK), *dv = zeros(NK);
                tn_attention_backward_d(dq, dk, dv, dy, out, c.lse, c.q, c.k, c.v, B, S, NH, NKV, HD, c.scale,
                                        c.softcap, window);
                fd_check(op, "q", attn_fwd, &c, c.q, NQ, dq, dy, NQ);
                fd_check(op, "k", attn_fwd, &c, c.k, NK, dk, dy, NQ);
                fd_check(op, "v", attn_fwd, &c, c.v, NK, dv, dy, NQ);
                attn_fwd(&c, out);

                double *rq = randn(NQ, 1), *rk = randn(NK, 1), *rv = randn(NK, 1);
                double *aq = copy_d(rq, NQ), *ak = copy_d(rk, NK), *av = copy_d(rv, NK);
                tn_attention_backward_d(aq, ak, av, dy, out, c.lse, c.q, c.k, c.v, B, S, NH, NKV, HD, c.scale,
                                        c.softcap, window);
                accumulate_check(op, "q", aq, rq, dq, NQ);
                accumulate_check(op, "k", ak, rk, dk, NK);
                accumulate_check(op, "v", av, rv, dv, NK);
                /* Each gradient alone, the others NULL. */
                double *oq = zeros(NQ), *ok = zeros(NK), *ov = zeros(NK);
                tn_attention_backward_d(oq, NULL, NULL, dy, out, c.lse, c.q, c.k, c.v, B, S, NH, NKV, HD, c.scale,
                                        c.softcap, window);
                tn_attention_backward_d(NULL, ok, NULL, dy, out, c.lse, c.q, c.k, c.v, B, S, NH, NKV, HD, c.scale,
                                        c.softcap, window);
                tn_attention_backward_d(NULL, NULL, ov, dy, out, c.lse, c.q, c.k, c.v, B, S, NH, NKV, HD, c.scale,
                                        c.softcap, window);
                assert_memory_equal(oq, dq, NQ * sizeof(double));
                assert_memory_equal(ok, dk, NK * sizeof(double));
                assert_memory_equal(ov, dv, NK * sizeof(double));

                float *qf = to_f(c.q, NQ), *kf = to_f(c.k, NK), *vf = to_f(c.v, NK), *dyf = to_f(dy, NQ);
                float *outf = zeros_f(NQ), *lsef = zeros_f(T * NH), *dqf = zeros_f(NQ), *dkf = zeros_f(NK),
                      *dvf = zeros_f(NK);
                tn_attention_forward(outf, lsef, qf, kf, vf, B, S, NH, NKV, HD, 0.7f, (float)cap, window);
                tn_attention_backward(dqf, dkf, dvf, dyf, outf, lsef, qf, kf, vf, B, S, NH, NKV, HD, 0.7f,
                                      (float)cap, window);
                f32_check(op, "out", outf, out, NQ);
                f32_check(op, "lse", lsef, c.lse, T * NH);
                f32_check(op, "dq", dqf, dq, NQ);
                f32_check(op, "dk", dkf, dk, NK);
                f32_check(op, "dv", dvf, dv, NK);

                free(c.q), free(c.k), free(c.v), free(c.lse), free(dy), free(out), free(dq), free(dk), free(dv);
                free(rq), free(rk), free(rv), free(aq), free(ak), free(av), free(oq), free(ok), free(ov);
                free(qf), free(kf), free(vf), free(dyf), free(outf), free(lsef), free(dqf), free(dkf), free(dvf);
            }
        }
    }
}

/* ---- swiglu, geglu, softcap --------------------------------------------- */

typedef struct {
    double *g, *u;
    int64_t n;
    int geglu;
} glu_ctx;

static void glu_fwd(void *p, double *h) {
    glu_ctx *c = p;
    if (c->geglu)
        tn_geglu_forward_d(h, c->g, c->u, c->n);
    else
        tn_swiglu_forward_d(h, c->g, c->u, c->n);
}

static void test_glu(void **state) {
    enum { N = 48 };
    for (int geglu = 0; geglu <= 1; geglu++) {
        const char *op = geglu ? "geglu (tanh)" : "swiglu";
        glu_ctx c = {randn(N, 2), randn(N, 1), N, geglu};
        double *dy = randn(N, 1), *h = zeros(N), *dg = zeros(N), *du = zeros(N);
        glu_fwd(&c, h);
        if (geglu)
            tn_geglu_backward_d(dg, du, dy, c.g, c.u, N);
        else
            tn_swiglu_backward_d(dg, du, dy, c.g, c.u, N);
        fd_check(op, "g", glu_fwd, &c, c.g, N, dg, dy, N);
        fd_check(op, "u", glu_fwd, &c, c.u, N, du, dy, N);

        double *rg = randn(N, 1), *ru = randn(N, 1), *ag = copy_d(rg, N), *au = copy_d(ru, N);
        if (geglu)
            tn_geglu_backward_d(ag, au, dy, c.g, c.u, N);
        else
            tn_swiglu_backward_d(ag, au, dy, c.g, c.u, N);
        accumulate_check(op, "g", ag, rg, dg, N);
        accumulate_check(op, "u", au, ru, du, N);

        float *gf = to_f(c.g, N), *uf = to_f(c.u, N), *dyf = to_f(dy, N);
        float *hf = zeros_f(N), *dgf = zeros_f(N), *duf = zeros_f(N);
        if (geglu) {
            tn_geglu_forward(hf, gf, uf, N);
            tn_geglu_backward(dgf, duf, dyf, gf, uf, N);
        } else {
            tn_swiglu_forward(hf, gf, uf, N);
            tn_swiglu_backward(dgf, duf, dyf, gf, uf, N);
        }
        f32_check(op, "h", hf, h, N);
        f32_check(op, "dg", dgf, dg, N);
        f32_check(op, "du", duf, du, N);
        free(c.g), free(c.u), free(dy), free(h), free(dg), free(du), free(rg), free(ru), free(ag), free(au);
        free(gf), free(uf), free(dyf), free(hf), free(dgf), free(duf);
    }
}

/* Known values: gelu_tanh(1) = ½(1 + tanh(√(2/π)·1.044715)) = 0.8411919906082768,
 * silu(1) = 1/(1 + e⁻¹) = 0.7310585786300049 (python3: math.tanh, math.exp). */
static void test_glu_values(void **state) {
    double g = 1, u = 1, h;
    tn_geglu_forward_d(&h, &g, &u, 1);
    assert_true(fabs(h - 0.8411919906082768) < 1e-15);
    tn_swiglu_forward_d(&h, &g, &u, 1);
    assert_true(fabs(h - 0.7310585786300049) < 1e-15);
}

/* GeGLU is computed as g·σ(2a); against the textbook ½g(1 + tanh a) in long
 * double over [−12, 12] (both tails saturated). A float evaluation carries
 * the rounding of its argument 2a into the exponential, so its error bound is
 * ~ε_f·(1 + |2a|) relative to the size of the terms it sums (the value |v|;
 * for the derivative σ + |2gσ(1 − σ)a'|, as it crosses zero near g = −0.75).
 * Errors must stay within 8x that bound, or 1e-30 (float underflows near
 * g = −10). (For a < −11, 1 + tanh a cancels even in long double, so there
 * the reference uses σ(2a) too.) */
static void test_geglu_sweep(void **state) {
    enum { N = 2401 };
    float g[N], u[N], h[N], dg[N] = {0}, du[N] = {0}, dh[N];
    for (int i = 0; i < N; i++) g[i] = -12 + 0.01f * i, u[i] = 1, dh[i] = 1;
    tn_geglu_forward(h, g, u, N);
    tn_geglu_backward(dg, du, dh, g, u, N);
    const long double k = 0.7978845608028654L, c = 0.044715L, eps = 5.96e-8L;
    double worst = 0, worst_d = 0;
    for (int i = 0; i < N; i++) {
        long double x = g[i], a = k * (x + c * x * x * x), da = k * (1 + 3 * c * x * x);
        long double sg = a > -11 ? (1 + tanhl(a)) / 2 : 1 / (1 + expl(-2 * a)); /* σ(2a) = ½(1 + tanh a) */
        long double v = x * sg, d = sg + 2 * x * sg * (1 - sg) * da;
        long double bound = eps * (1 + fabsl(2 * a));
        long double rv = fabsl(h[i] - v) / (bound * fabsl(v) + 1e-30L);
        long double rd = fabsl(dg[i] - d) / (bound * (sg + fabsl(2 * x * sg * (1 - sg) * da)) + 1e-30L);
        worst = fmax(worst, (double)rv);
        worst_d = fmax(worst_d, (double)rd);
        assert_true(du[i] == h[i]);
    }
    printf("geglu float vs tanh formula over [-12, 12]: error / (eps_f (1 + |2a|) |terms|): value %.2f, derivative "
           "%.2f\n", worst, worst_d);
    assert_true(worst < 8 && worst_d < 8);
}

typedef struct {
    double *x, c;
    int64_t n;
} softcap_ctx;

static void softcap_fwd(void *p, double *y) {
    softcap_ctx *c = p;
    tn_softcap_forward_d(y, c->x, c->c, c->n);
}

static void test_softcap(void **state) {
    enum { N = 48 };
    softcap_ctx c = {randn(N, 8), 5, N};
    double *dy = randn(N, 1), *y = zeros(N), *dx = zeros(N);
    softcap_fwd(&c, y);
    tn_softcap_backward_d(dx, dy, y, c.c, N);
    fd_check("softcap", "x", softcap_fwd, &c, c.x, N, dx, dy, N);
    double *r = randn(N, 1), *a = copy_d(r, N);
    tn_softcap_backward_d(a, dy, y, c.c, N);
    accumulate_check("softcap", "x", a, r, dx, N);
    /* In place: y over x, then dx over dy. */
    double *inplace = copy_d(c.x, N);
    tn_softcap_forward_d(inplace, inplace, c.c, N);
    assert_memory_equal(inplace, y, N * sizeof(double));

    float *xf = to_f(c.x, N), *dyf = to_f(dy, N), *yf = zeros_f(N), *dxf = zeros_f(N);
    tn_softcap_forward(yf, xf, 5, N);
    tn_softcap_backward(dxf, dyf, yf, 5, N);
    f32_check("softcap", "y", yf, y, N);
    f32_check("softcap", "dx", dxf, dx, N);
    free(c.x), free(dy), free(y), free(dx), free(r), free(a), free(inplace), free(xf), free(dyf), free(yf);
    free(dxf);
}

/* ---- embedding ---------------------------------------------------------- */

typedef struct {
    double *e;
    const int32_t *ids;
    int T, C;
    double scale;
} emb_ctx;

static void emb_fwd(void *p, double *y) {
    emb_ctx *c = p;
    tn_embedding_forward_d(y, c->e, c->ids, c->T, c->C, c->scale);
}

static void test_embedding(void **state) {
    enum { V = 7, T = 6, C = 8 };
    int32_t ids[T] = {3, 0, 6, 3, 3, 1}; /* repeats add into one row */
    emb_ctx c = {randn(V * C, 1), ids, T, C, 1.7};
    double *dy = randn(T * C, 1), *y = zeros(T * C), *de = zeros(V * C);
    emb_fwd(&c, y);
    tn_embedding_backward_d(de, dy, ids, T, C, c.scale);
    fd_check("embedding", "E", emb_fwd, &c, c.e, V * C, de, dy, T * C);
    for (int cc = 0; cc < C; cc++) assert_true(de[2 * C + cc] == 0); /* id 2 unused */
    double *r = randn(V * C, 1), *a = copy_d(r, V * C);
    tn_embedding_backward_d(a, dy, ids, T, C, c.scale);
    accumulate_check("embedding", "E", a, r, de, V * C);

    float *ef = to_f(c.e, V * C), *dyf = to_f(dy, T * C), *yf = zeros_f(T * C), *def = zeros_f(V * C);
    tn_embedding_forward(yf, ef, ids, T, C, 1.7f);
    tn_embedding_backward(def, dyf, ids, T, C, 1.7f);
    f32_check("embedding", "y", yf, y, T * C);
    f32_check("embedding", "dE", def, de, V * C);
    free(c.e), free(dy), free(y), free(de), free(r), free(a), free(ef), free(dyf), free(yf), free(def);
}

/* ---- cross-entropy ------------------------------------------------------ */

typedef struct {
    double *logits, *work;
    const int32_t *labels;
    int rows, V;
} ce_ctx;

static void ce_fwd(void *p, double *loss) {
    ce_ctx *c = p;
    memcpy(c->work, c->logits, (size_t)c->rows * c->V * sizeof(double));
    *loss = tn_cross_entropy_forward_backward_d(c->work, c->labels, c->rows, c->V, 1, NULL);
}

static void test_cross_entropy(void **state) {
    enum { ROWS = 6, V = 7, N = ROWS * V };
    int32_t labels[ROWS] = {2, TN_IGNORE_INDEX, 0, 6, TN_IGNORE_INDEX, 2};
    ce_ctx c = {randn(N, 2), zeros(N), labels, ROWS, V};
    double grad_scale = 0.37;
    double *grad = copy_d(c.logits, N);
    int counted = -1;
    double loss = tn_cross_entropy_forward_backward_d(grad, labels, ROWS, V, grad_scale, &counted);
    assert_int_equal(counted, 4);
    /* The loss by the definition, −log softmax[label], over counted rows. */
    double want = 0;
    for (int r = 0; r < ROWS; r++) {
        if (labels[r] == TN_IGNORE_INDEX) continue;
        double z = 0;
        for (int v = 0; v < V; v++) z += exp(c.logits[r * V + v]);
        want += log(z) - c.logits[r * V + labels[r]];
    }
    assert_true(fabs(loss - want) < 1e-12 * fabs(want));
    /* Ignored rows: zero gradient. Counted rows: each sums to zero. */
    for (int r = 0; r < ROWS; r++) {
        double s = 0;
        for (int v = 0; v < V; v++) {
            if (labels[r] == TN_IGNORE_INDEX) assert_true(grad[r * V + v] == 0);
            s += grad[r * V + v];
        }
        assert_true(fabs(s) < 1e-15);
    }
    double dy = grad_scale; /* the upstream gradient of the scalar loss */
    fd_check("cross-entropy", "logits", ce_fwd, &c, c.logits, N, grad, &dy, 1);

    float *lf = to_f(c.logits, N);
    int counted_f = -1;
    double loss_f = tn_cross_entropy_forward_backward(lf, labels, ROWS, V, (float)grad_scale, &counted_f);
    assert_int_equal(counted_f, 4);
    printf("f32 %-34s %-6s rel diff = %.2e\n", "cross-entropy", "loss", fabs(loss_f - loss) / loss);
    assert_true(fabs(loss_f - loss) < F32_TOL * loss);
    f32_check("cross-entropy", "dlogit", lf, grad, N);
    free(c.logits), free(c.work), free(grad), free(lf);
}

/* The fused soft-capped loss: gradient with respect to the raw logits by
 * finite differences, and the same values as soft-cap, loss, soft-cap
 * backward done one after the other. */
typedef struct {
    double *logits, *work, cap;
    const int32_t *labels;
    int rows, V;
} ce_cap_ctx;

static void ce_cap_fwd(void *p, double *loss) {
    ce_cap_ctx *c = p;
    memcpy(c->work, c->logits, (size_t)c->rows * c->V * sizeof(double));
    *loss = tn_cross_entropy_softcap_forward_backward_d(c->work, c->labels, c->rows, c->V, c->cap, 1, NULL);
}

static void test_cross_entropy_softcap(void **state) {
    enum { ROWS = 5, V = 9, N = ROWS * V };
    int32_t labels[ROWS] = {8, 0, TN_IGNORE_INDEX, 4, 4};
    ce_cap_ctx c = {randn(N, 6), zeros(N), 5, labels, ROWS, V}; /* |z| up to ~20: well into the cap */
    double grad_scale = 0.61;
    double *grad = copy_d(c.logits, N);
    int counted = -1;
    double loss = tn_cross_entropy_softcap_forward_backward_d(grad, labels, ROWS, V, c.cap, grad_scale, &counted);
    assert_int_equal(counted, 4);
    for (int v = 0; v < V; v++) assert_true(grad[2 * V + v] == 0);
    double dy = grad_scale;
    fd_check("cross-entropy (softcap 5)", "logits", ce_cap_fwd, &c, c.logits, N, grad, &dy, 1);

    /* Unfused: cap, plain loss in place, then the cap's backward into a zeroed buffer. */
    double *capped = zeros(N), *dz = zeros(N);
    tn_softcap_forward_d(capped, c.logits, c.cap, N);
    double *g = copy_d(capped, N);
    double loss2 = tn_cross_entropy_forward_backward_d(g, labels, ROWS, V, grad_scale, NULL);
    tn_softcap_backward_d(dz, g, capped, c.cap, N);
    assert_true(fabs(loss - loss2) < 1e-13 * loss2);
    for (int i = 0; i < N; i++) assert_true(fabs(grad[i] - dz[i]) < 1e-15);

    /* softcap 0 is the plain loss, bit for bit. */
    double *a = copy_d(c.logits, N), *b = copy_d(c.logits, N);
    double la = tn_cross_entropy_softcap_forward_backward_d(a, labels, ROWS, V, 0, grad_scale, NULL);
    double lb = tn_cross_entropy_forward_backward_d(b, labels, ROWS, V, grad_scale, NULL);
    assert_true(la == lb);
    assert_memory_equal(a, b, N * sizeof(double));

    float *lf = to_f(c.logits, N);
    double loss_f = tn_cross_entropy_softcap_forward_backward(lf, labels, ROWS, V, 5, (float)grad_scale, NULL);
    printf("f32 %-34s %-6s rel diff = %.2e\n", "cross-entropy (softcap 5)", "loss", fabs(loss_f - loss) / loss);
    assert_true(fabs(loss_f - loss) < F32_TOL * loss);
    f32_check("cross-entropy (softcap 5)", "dlogit", lf, grad, N);
    free(c.logits), free(c.work), free(grad), free(capped), free(dz), free(g), free(a), free(b), free(lf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_matmul, setup),       cmocka_unit_test_setup(test_rmsnorm, setup),
        cmocka_unit_test_setup(test_rope, setup),         cmocka_unit_test_setup(test_attention, setup),
        cmocka_unit_test_setup(test_glu, setup),          cmocka_unit_test(test_glu_values), cmocka_unit_test(test_geglu_sweep),
        cmocka_unit_test_setup(test_softcap, setup),      cmocka_unit_test_setup(test_embedding, setup),
        cmocka_unit_test_setup(test_cross_entropy, setup), cmocka_unit_test_setup(test_cross_entropy_softcap, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
