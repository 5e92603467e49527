/* test_mamba_ops.c - the Mamba2 operations of nn/ops.h (cpu/mamba_impl.h):
 * each against its finite differences in double, the float build against
 * the double build, the += contract of backward; then the whole mixer
 * (in_proj, conv, dt, scan, gated norm, out_proj, wired as forward.c wires
 * them, reading the splits in place through row strides) against
 * transformers' GraniteMoeHybridMambaLayer: forward and every gradient, in
 * float64, from tests/data/mamba/mixer_golden.safetensors (made by
 * tests/data/make_mamba_golden.py with transformers 5.17).
 *
 * The finite-difference check is test_ops.c's: the central difference of
 * L = Σ dy·y with h = 1e-5, err = |a − g| / max(|a|, |g|, 1e-2), FD_TOL
 * 1e-6 (rounding noise ~1e-8 at these sizes; a wrong term gives > 1e-3).
 * Inputs are kept away from the two kinks (softplus's threshold 20 and the
 * clamp's ends) by more than h. */
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

#include "io/safetensors.h"
#include "nn/ops.h"
#include "util/error.h"
#include "util/rng.h"

#define FD_H 1e-5
#define FD_TOL 1e-6
#define FD_FLOOR 1e-2
#define F32_TOL 1e-5

/* ---- helpers (as in test_ops.c) ----------------------------------------- */

static tn_rng rng;

static double *randn(size_t n, double sd) {
    double *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = sd * tn_rng_normal(&rng);
    return x;
}

static double *uniform(size_t n, double lo, double hi) {
    double *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * tn_rng_uniform_double(&rng);
    return x;
}

static double *zeros(size_t n) { return calloc(n ? n : 1, sizeof(double)); }

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

static float *zeros_f(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

typedef void (*forward_fn)(void *ctx, double *y);

static double worst_fd; /* the largest error of the last fd_check, for the summary */

static double fd_check(const char *op, const char *input, forward_fn f, void *ctx, double *x, size_t nx,
                       const double *analytic, const double *dy, size_t ny) {
    double *yp = malloc(ny * sizeof *yp), *ym = malloc(ny * sizeof *ym);
    double worst = 0, worst_a = 0, worst_g = 0;
    size_t worst_k = 0;
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
        double err = fabs(a - g) / fmax(fmax(fabs(a), fabs(g)), FD_FLOOR);
        if (err > worst || k == 0) worst = err, worst_k = k, worst_a = a, worst_g = g;
    }
    printf("fd  %-44s d%-7s max rel err %.2e  (element %zu: analytic %.9g, numeric %.9g)\n", op, input, worst,
           worst_k, worst_a, worst_g);
    free(yp);
    free(ym);
    if (worst > FD_TOL) fail_msg("%s: gradient of %s off by %.3g (> %.0e)", op, input, worst, FD_TOL);
    worst_fd = worst;
    return worst;
}

/* max |f − d| / max |d|. */
static double rel_diff_fd(const float *f, const double *d, size_t n) {
    double scale = 0, diff = 0;
    for (size_t i = 0; i < n; i++) {
        scale = fmax(scale, fabs(d[i]));
        diff = fmax(diff, fabs((double)f[i] - d[i]));
    }
    return scale > 0 ? diff / scale : diff;
}

static double rel_diff_dd(const double *a, const double *d, size_t n) {
    double scale = 0, diff = 0;
    for (size_t i = 0; i < n; i++) {
        scale = fmax(scale, fabs(d[i]));
        diff = fmax(diff, fabs(a[i] - d[i]));
    }
    return scale > 0 ? diff / scale : diff;
}

static void f32_check(const char *op, const char *what, const float *f, const double *d, size_t n) {
    double rel = rel_diff_fd(f, d, n);
    printf("f32 %-44s %-8s max diff / max |x| = %.2e\n", op, what, rel);
    if (rel > F32_TOL) fail_msg("%s: float %s differs from double by %.3g (> %.0e)", op, what, rel, F32_TOL);
}

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
    tn_rng_seed(&rng, 1234, tn_hash_string("test_mamba_ops"));
    return 0;
}

/* ---- conv1d + SiLU ------------------------------------------------------- */

typedef struct {
    double *x, *w, *b;
    int B, S, C, K, ldx;
} conv_ctx;

static void conv_fwd(void *p, double *y) {
    conv_ctx *c = p;
    tn_mamba_conv1d_forward_d(y, c->x, c->ldx, c->w, c->b, c->B, c->S, c->C, c->K);
}

/* x is read from rows of ldx = C + 3 (as from in_proj's output); the three
 * extra columns must get neither gradient nor influence. */
static void test_conv1d(void **state) {
    enum { B = 2, S = 5, C = 6, K = 4, LDX = C + 3, T = B * S };
    conv_ctx c = {randn(T * LDX, 1), randn(C * K, 0.6), randn(C, 0.5), B, S, C, K, LDX};
    double *dy = randn(T * C, 1), *y = zeros(T * C);
    conv_fwd(&c, y);
    double *dx = zeros(T * LDX), *dw = zeros(C * K), *db = zeros(C);
    tn_mamba_conv1d_backward_d(dx, dw, db, dy, c.x, LDX, c.w, c.b, B, S, C, K);
    fd_check("conv1d+silu (K 4, strided x)", "x", conv_fwd, &c, c.x, T * LDX, dx, dy, T * C);
    fd_check("conv1d+silu (K 4, strided x)", "w", conv_fwd, &c, c.w, C * K, dw, dy, T * C);
    fd_check("conv1d+silu (K 4, strided x)", "bias", conv_fwd, &c, c.b, C, db, dy, T * C);
    for (int t = 0; t < T; t++)
        for (int j = C; j < LDX; j++) assert_true(dx[t * LDX + j] == 0);

    /* Causality and the left padding, directly: token 0 of each sequence
     * sees only the last tap. */
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < C; ch++) {
            double u = c.w[ch * K + K - 1] * c.x[(size_t)b * S * LDX + ch] + c.b[ch];
            assert_true(fabs(y[(size_t)b * S * C + ch] - u / (1 + exp(-u))) < 1e-15);
        }
    /* bias NULL is bias 0. */
    double *b0 = zeros(C), *y0 = zeros(T * C), *yn = zeros(T * C);
    tn_mamba_conv1d_forward_d(y0, c.x, LDX, c.w, b0, B, S, C, K);
    tn_mamba_conv1d_forward_d(yn, c.x, LDX, c.w, NULL, B, S, C, K);
    assert_memory_equal(y0, yn, T * C * sizeof(double));

    double *rx = randn(T * LDX, 1), *rw = randn(C * K, 1), *rb = randn(C, 1);
    double *ax = copy_d(rx, T * LDX), *aw = copy_d(rw, C * K), *ab = copy_d(rb, C);
    tn_mamba_conv1d_backward_d(ax, aw, ab, dy, c.x, LDX, c.w, c.b, B, S, C, K);
    accumulate_check("conv1d", "x", ax, rx, dx, T * LDX);
    accumulate_check("conv1d", "w", aw, rw, dw, C * K);
    accumulate_check("conv1d", "bias", ab, rb, db, C);
    double *only_w = zeros(C * K);
    tn_mamba_conv1d_backward_d(NULL, only_w, NULL, dy, c.x, LDX, c.w, c.b, B, S, C, K);
    assert_memory_equal(only_w, dw, C * K * sizeof(double));

    float *xf = to_f(c.x, T * LDX), *wf = to_f(c.w, C * K), *bf = to_f(c.b, C), *dyf = to_f(dy, T * C);
    float *yf = zeros_f(T * C), *dxf = zeros_f(T * LDX), *dwf = zeros_f(C * K), *dbf = zeros_f(C);
    tn_mamba_conv1d_forward(yf, xf, LDX, wf, bf, B, S, C, K);
    tn_mamba_conv1d_backward(dxf, dwf, dbf, dyf, xf, LDX, wf, bf, B, S, C, K);
    f32_check("conv1d", "y", yf, y, T * C);
    f32_check("conv1d", "dx", dxf, dx, T * LDX);
    f32_check("conv1d", "dw", dwf, dw, C * K);
    f32_check("conv1d", "dbias", dbf, db, C);

    free(c.x), free(c.w), free(c.b), free(dy), free(y), free(dx), free(dw), free(db), free(b0), free(y0), free(yn);
    free(rx), free(rw), free(rb), free(ax), free(aw), free(ab), free(only_w);
    free(xf), free(wf), free(bf), free(dyf), free(yf), free(dxf), free(dwf), free(dbf);
}

/* ---- dt = clamp(softplus(dt + dt_bias)) ---------------------------------- */

typedef struct {
    double *raw, *bias, lo, hi;
    int T, H, ld;
} dt_ctx;

static void dt_fwd(void *p, double *y) {
    dt_ctx *c = p;
    tn_mamba_dt_forward_d(y, c->raw, c->ld, c->bias, c->T, c->H, c->lo, c->hi);
}

static double softplus_ref(double v) { return v > 20 ? v : log1p(exp(v)); }

/* Values from −6 to 6 and two past the threshold (v = 25, 31); without a
 * clamp, and with (0.3, 1.5), which bites on both sides. */
static void test_dt(void **state) {
    enum { T = 10, H = 3, LD = H + 4 };
    for (int clamp = 0; clamp <= 1; clamp++) {
        const char *op = clamp ? "dt softplus (clamp 0.3, 1.5)" : "dt softplus (limit 0, inf)";
        dt_ctx c = {uniform(T * LD, -6, 6), randn(H, 0.5), clamp ? 0.3 : 0, clamp ? 1.5 : INFINITY, T, H, LD};
        c.raw[3 * LD + 1] = 25 - c.bias[1];
        c.raw[7 * LD + 2] = 31 - c.bias[2];
        for (int t = 0; t < T; t++) /* stay 1e-3 away from the kinks */
            for (int h = 0; h < H; h++) {
                double *r = &c.raw[t * LD + h];
                double v = *r + c.bias[h], sp = softplus_ref(v);
                if (fabs(v - 20) < 1e-3 || fabs(sp - c.lo) < 1e-3 || fabs(sp - c.hi) < 1e-3) *r += 2e-3;
            }
        double *dy = randn(T * H, 1), *y = zeros(T * H);
        dt_fwd(&c, y);
        int clamped = 0;
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++) {
                double want = softplus_ref(c.raw[t * LD + h] + c.bias[h]);
                want = want < c.lo ? c.lo : want > c.hi ? c.hi : want;
                clamped += want == c.lo || want == c.hi;
                assert_true(fabs(y[t * H + h] - want) <= 1e-15 * fmax(1, want));
            }
        if (clamp) assert_true(clamped >= 4);
        double *draw = zeros(T * LD), *dbias = zeros(H);
        tn_mamba_dt_backward_d(draw, LD, dbias, dy, c.raw, c.bias, T, H, c.lo, c.hi);
        fd_check(op, "dt", dt_fwd, &c, c.raw, T * LD, draw, dy, T * H);
        fd_check(op, "dt_bias", dt_fwd, &c, c.bias, H, dbias, dy, T * H);

        double *rr = randn(T * LD, 1), *rb = randn(H, 1), *ar = copy_d(rr, T * LD), *ab = copy_d(rb, H);
        tn_mamba_dt_backward_d(ar, LD, ab, dy, c.raw, c.bias, T, H, c.lo, c.hi);
        accumulate_check(op, "dt", ar, rr, draw, T * LD);
        accumulate_check(op, "dt_bias", ab, rb, dbias, H);

        float *rf = to_f(c.raw, T * LD), *bf = to_f(c.bias, H), *dyf = to_f(dy, T * H);
        float *yf = zeros_f(T * H), *drf = zeros_f(T * LD), *dbf = zeros_f(H);
        tn_mamba_dt_forward(yf, rf, LD, bf, T, H, (float)c.lo, (float)c.hi);
        tn_mamba_dt_backward(drf, LD, dbf, dyf, rf, bf, T, H, (float)c.lo, (float)c.hi);
        f32_check(op, "dt", yf, y, T * H);
        f32_check(op, "ddt", drf, draw, T * LD);
        f32_check(op, "ddt_bias", dbf, dbias, H);
        free(c.raw), free(c.bias), free(dy), free(y), free(draw), free(dbias), free(rr), free(rb), free(ar), free(ab);
        free(rf), free(bf), free(dyf), free(yf), free(drf), free(dbf);
    }
}

/* ---- the selective scan ------------------------------------------------- */

typedef struct {
    double *x, *dt, *A_log, *bc, *D, *h0, *states;
    int B, S, H, P, G, N, chunk, ldx, ldbc;
} scan_ctx;

static void scan_fwd(void *p, double *y) {
    scan_ctx *c = p;
    tn_mamba_scan_forward_d(y, c->states, c->x, c->ldx, c->dt, c->A_log, c->bc, c->bc + c->G * c->N, c->ldbc, c->D,
                            c->h0, c->B, c->S, c->H, c->P, c->G, c->N, c->chunk);
}

/* The recurrence written out once more, the obvious way, for the forward. */
static void scan_naive(double *y, const scan_ctx *c) {
    int H = c->H, P = c->P, N = c->N, hpg = H / c->G;
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < H; h++) {
            double st[16][16];
            for (int p = 0; p < P; p++)
                for (int n = 0; n < N; n++) st[p][n] = c->h0 ? c->h0[((b * H + h) * P + p) * N + n] : 0;
            for (int s = 0; s < c->S; s++) {
                int t = b * c->S + s, g = h / hpg;
                double d = c->dt[t * H + h], a = exp(-exp(c->A_log[h]) * d);
                for (int p = 0; p < P; p++) {
                    double xp = c->x[t * c->ldx + h * P + p], acc = 0;
                    for (int n = 0; n < N; n++) {
                        st[p][n] = a * st[p][n] + d * xp * c->bc[t * c->ldbc + g * N + n];
                        acc += st[p][n] * c->bc[t * c->ldbc + c->G * N + g * N + n];
                    }
                    y[t * H * P + h * P + p] = acc + c->D[h] * xp;
                }
            }
        }
}

/* B 2, S 5, H 2, P 3, N 4; G 1 and 2; chunks of 2 (three per sequence, the
 * last partial, so backward restarts from saved states) and of 256; x read
 * from rows of H·P + 2, B and C side by side in rows of 2GN + 1, as in the
 * conv's output. One case starts from a given state h0. */
static void test_scan(void **state) {
    enum { B = 2, S = 5, H = 2, P = 3, N = 4, T = B * S };
    static const struct {
        int G, chunk, h0;
    } cases[] = {{1, 2, 0}, {2, 2, 0}, {1, 256, 0}, {2, 256, 0}, {2, 2, 1}};
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        const int G = cases[ci].G, chunk = cases[ci].chunk, LDX = H * P + 2, LDBC = 2 * G * N + 1;
        const int NX = T * LDX, NBC = T * LDBC, NY = T * H * P;
        const size_t NS = (size_t)tn_mamba_states_count(B, S, H, P, N, chunk);
        char op[96];
        snprintf(op, sizeof op, "scan (G %d, chunk %d%s)", G, chunk, cases[ci].h0 ? ", h0" : "");
        scan_ctx c = {randn(NX, 1), uniform(T * H, 0.2, 1.2), randn(H, 0.5), randn(NBC, 1), randn(H, 1),
                      cases[ci].h0 ? randn((size_t)B * H * P * N, 1) : NULL, zeros(NS), B, S, H, P, G, N, chunk,
                      LDX, LDBC};
        double *dy = randn(NY, 1), *y = zeros(NY), *yn = zeros(NY);
        scan_fwd(&c, y);
        scan_naive(yn, &c);
        for (int i = 0; i < NY; i++) assert_true(fabs(y[i] - yn[i]) < 1e-13 * fmax(1, fabs(yn[i])));
        /* the last saved chunk is the final state */
        double *dx = zeros(NX), *ddt = zeros(T * H), *dA = zeros(H), *dbc = zeros(NBC), *dD = zeros(H);
        tn_mamba_scan_backward_d(dx, ddt, dA, dbc, dbc + G * N, dD, dy, c.states, c.x, LDX, c.dt, c.A_log, c.bc,
                                 c.bc + G * N, LDBC, c.D, c.h0, B, S, H, P, G, N, chunk);
        fd_check(op, "x", scan_fwd, &c, c.x, NX, dx, dy, NY);
        fd_check(op, "dt", scan_fwd, &c, c.dt, T * H, ddt, dy, NY);
        fd_check(op, "A_log", scan_fwd, &c, c.A_log, H, dA, dy, NY);
        fd_check(op, "B|C", scan_fwd, &c, c.bc, NBC, dbc, dy, NY);
        fd_check(op, "D", scan_fwd, &c, c.D, H, dD, dy, NY);
        for (int t = 0; t < T; t++) {
            for (int j = H * P; j < LDX; j++) assert_true(dx[t * LDX + j] == 0);
            assert_true(dbc[t * LDBC + LDBC - 1] == 0);
        }
        scan_fwd(&c, y); /* fd_check left states from a perturbed input */

        double *rx = randn(NX, 1), *rdt = randn(T * H, 1), *rA = randn(H, 1), *rbc = randn(NBC, 1), *rD = randn(H, 1);
        double *ax = copy_d(rx, NX), *adt = copy_d(rdt, T * H), *aA = copy_d(rA, H), *abc = copy_d(rbc, NBC),
               *aD = copy_d(rD, H);
        tn_mamba_scan_backward_d(ax, adt, aA, abc, abc + G * N, aD, dy, c.states, c.x, LDX, c.dt, c.A_log, c.bc,
                                 c.bc + G * N, LDBC, c.D, c.h0, B, S, H, P, G, N, chunk);
        accumulate_check(op, "x", ax, rx, dx, NX);
        accumulate_check(op, "dt", adt, rdt, ddt, T * H);
        accumulate_check(op, "A_log", aA, rA, dA, H);
        accumulate_check(op, "B|C", abc, rbc, dbc, NBC);
        accumulate_check(op, "D", aD, rD, dD, H);
        /* Only dB wanted: the same dB. */
        double *only_b = zeros(NBC);
        tn_mamba_scan_backward_d(NULL, NULL, NULL, only_b, NULL, NULL, dy, c.states, c.x, LDX, c.dt, c.A_log, c.bc,
                                 c.bc + G * N, LDBC, c.D, c.h0, B, S, H, P, G, N, chunk);
        for (int t = 0; t < T; t++)
            for (int j = 0; j < G * N; j++) assert_true(only_b[t * LDBC + j] == dbc[t * LDBC + j]);

        /* The chunking is only where states are saved: chunk 1 (every state)
         * gives the same output bits and the same gradients. */
        double *s1 = zeros((size_t)tn_mamba_states_count(B, S, H, P, N, 1)), *y1 = zeros(NY);
        tn_mamba_scan_forward_d(y1, s1, c.x, LDX, c.dt, c.A_log, c.bc, c.bc + G * N, LDBC, c.D, c.h0, B, S, H, P, G, N,
                                1);
        assert_memory_equal(y1, y, NY * sizeof(double));
        double *dx1 = zeros(NX), *ddt1 = zeros(T * H), *dA1 = zeros(H), *dbc1 = zeros(NBC), *dD1 = zeros(H);
        tn_mamba_scan_backward_d(dx1, ddt1, dA1, dbc1, dbc1 + G * N, dD1, dy, s1, c.x, LDX, c.dt, c.A_log, c.bc,
                                 c.bc + G * N, LDBC, c.D, c.h0, B, S, H, P, G, N, 1);
        assert_true(rel_diff_dd(dx1, dx, NX) < 1e-14 && rel_diff_dd(ddt1, ddt, T * H) < 1e-14);
        assert_true(rel_diff_dd(dA1, dA, H) < 1e-14 && rel_diff_dd(dbc1, dbc, NBC) < 1e-14);
        assert_true(rel_diff_dd(dD1, dD, H) < 1e-14);
        /* The final state: the last saved chunk, equal for both chunkings. */
        int nc = (S + chunk - 1) / chunk;
        for (int b = 0; b < B; b++)
            assert_memory_equal(c.states + ((size_t)b * nc + nc - 1) * H * P * N, s1 + ((size_t)b * S + S - 1) * H * P * N,
                                (size_t)H * P * N * sizeof(double));

        /* Generation: one token at a time with S = 1, the cache both h0 and
         * states (in place, allowed for a single chunk), gives the same bits. */
        {
            double *cache = c.h0 ? copy_d(c.h0, (size_t)B * H * P * N) : zeros((size_t)B * H * P * N);
            double *xs = zeros((size_t)B * H * P), *dts = zeros((size_t)B * H), *bcs = zeros((size_t)B * 2 * G * N);
            double *ys = zeros((size_t)B * H * P);
            for (int s = 0; s < S; s++) {
                for (int b = 0; b < B; b++) {
                    int t = b * S + s;
                    memcpy(xs + b * H * P, c.x + t * LDX, (size_t)H * P * sizeof(double));
                    memcpy(dts + b * H, c.dt + t * H, (size_t)H * sizeof(double));
                    memcpy(bcs + b * 2 * G * N, c.bc + t * LDBC, (size_t)2 * G * N * sizeof(double));
                }
                tn_mamba_scan_forward_d(ys, cache, xs, H * P, dts, c.A_log, bcs, bcs + G * N, 2 * G * N, c.D, cache, B, 1,
                                        H, P, G, N, chunk);
                for (int b = 0; b < B; b++)
                    assert_memory_equal(ys + b * H * P, y + (b * S + s) * H * P, (size_t)H * P * sizeof(double));
            }
            free(cache), free(xs), free(dts), free(bcs), free(ys);
        }

        float *xf = to_f(c.x, NX), *dtf = to_f(c.dt, T * H), *Af = to_f(c.A_log, H), *bcf = to_f(c.bc, NBC);
        float *Df = to_f(c.D, H), *h0f = c.h0 ? to_f(c.h0, (size_t)B * H * P * N) : NULL, *dyf = to_f(dy, NY);
        float *yf = zeros_f(NY), *sf = zeros_f(NS), *dxf = zeros_f(NX), *ddtf = zeros_f(T * H), *dAf = zeros_f(H);
        float *dbcf = zeros_f(NBC), *dDf = zeros_f(H);
        tn_mamba_scan_forward(yf, sf, xf, LDX, dtf, Af, bcf, bcf + G * N, LDBC, Df, h0f, B, S, H, P, G, N, chunk);
        tn_mamba_scan_backward(dxf, ddtf, dAf, dbcf, dbcf + G * N, dDf, dyf, sf, xf, LDX, dtf, Af, bcf, bcf + G * N,
                               LDBC, Df, h0f, B, S, H, P, G, N, chunk);
        f32_check(op, "y", yf, y, NY);
        f32_check(op, "states", sf, c.states, NS);
        f32_check(op, "dx", dxf, dx, NX);
        f32_check(op, "ddt", ddtf, ddt, T * H);
        f32_check(op, "dA_log", dAf, dA, H);
        f32_check(op, "dB|dC", dbcf, dbc, NBC);
        f32_check(op, "dD", dDf, dD, H);

        free(c.x), free(c.dt), free(c.A_log), free(c.bc), free(c.D), free(c.h0), free(c.states);
        free(dy), free(y), free(yn), free(dx), free(ddt), free(dA), free(dbc), free(dD);
        free(rx), free(rdt), free(rA), free(rbc), free(rD), free(ax), free(adt), free(aA), free(abc), free(aD);
        free(only_b), free(s1), free(y1), free(dx1), free(ddt1), free(dA1), free(dbc1), free(dD1);
        free(xf), free(dtf), free(Af), free(bcf), free(Df), free(h0f), free(dyf), free(yf), free(sf), free(dxf);
        free(ddtf), free(dAf), free(dbcf), free(dDf);
    }
}

/* ---- gated RMSNorm -------------------------------------------------------- */

typedef struct {
    double *x, *z, *w, *rstd;
    int T, C, gs, ldz;
} gn_ctx;

static void gn_fwd(void *p, double *y) {
    gn_ctx *c = p;
    tn_mamba_gated_norm_forward_d(y, c->rstd, c->x, c->z, c->ldz, c->w, c->T, c->C, c->gs, 1e-5);
}

static void test_gated_norm(void **state) {
    enum { T = 10, C = 8, LDZ = C + 3 };
    const int sizes[] = {8, 4, 2};
    for (int si = 0; si < 3; si++) {
        const int gs = sizes[si], ng = C / gs;
        char op[96];
        snprintf(op, sizeof op, "gated rmsnorm (group %d of %d)", gs, C);
        gn_ctx c = {randn(T * C, 1.5), randn(T * LDZ, 1.5), randn(C, 0.5), zeros(T * ng), T, C, gs, LDZ};
        for (int i = 0; i < C; i++) c.w[i] += 1;
        double *dy = randn(T * C, 1), *y = zeros(T * C);
        gn_fwd(&c, y);
        /* by the definition */
        for (int t = 0; t < T; t++)
            for (int j = 0; j < ng; j++) {
                double g[8], ss = 0;
                for (int k = 0; k < gs; k++) {
                    double zz = c.z[t * LDZ + j * gs + k];
                    g[k] = c.x[t * C + j * gs + k] * zz / (1 + exp(-zz));
                    ss += g[k] * g[k];
                }
                double r = 1 / sqrt(ss / gs + 1e-5);
                for (int k = 0; k < gs; k++)
                    assert_true(fabs(y[t * C + j * gs + k] - c.w[j * gs + k] * g[k] * r) < 1e-14);
            }
        double *dx = zeros(T * C), *dz = zeros(T * LDZ), *dw = zeros(C);
        tn_mamba_gated_norm_backward_d(dx, dz, dw, dy, c.x, c.z, LDZ, c.w, c.rstd, T, C, gs);
        fd_check(op, "x", gn_fwd, &c, c.x, T * C, dx, dy, T * C);
        fd_check(op, "z", gn_fwd, &c, c.z, T * LDZ, dz, dy, T * C);
        fd_check(op, "w", gn_fwd, &c, c.w, C, dw, dy, T * C);
        gn_fwd(&c, y);

        double *rx = randn(T * C, 1), *rz = randn(T * LDZ, 1), *rw = randn(C, 1);
        double *ax = copy_d(rx, T * C), *az = copy_d(rz, T * LDZ), *aw = copy_d(rw, C);
        tn_mamba_gated_norm_backward_d(ax, az, aw, dy, c.x, c.z, LDZ, c.w, c.rstd, T, C, gs);
        accumulate_check(op, "x", ax, rx, dx, T * C);
        accumulate_check(op, "z", az, rz, dz, T * LDZ);
        accumulate_check(op, "w", aw, rw, dw, C);

        float *xf = to_f(c.x, T * C), *zf = to_f(c.z, T * LDZ), *wf = to_f(c.w, C), *dyf = to_f(dy, T * C);
        float *yf = zeros_f(T * C), *rf = zeros_f(T * ng), *dxf = zeros_f(T * C), *dzf = zeros_f(T * LDZ);
        float *dwf = zeros_f(C);
        tn_mamba_gated_norm_forward(yf, rf, xf, zf, LDZ, wf, T, C, gs, 1e-5f);
        tn_mamba_gated_norm_backward(dxf, dzf, dwf, dyf, xf, zf, LDZ, wf, rf, T, C, gs);
        f32_check(op, "y", yf, y, T * C);
        f32_check(op, "dx", dxf, dx, T * C);
        f32_check(op, "dz", dzf, dz, T * LDZ);
        f32_check(op, "dw", dwf, dw, C);
        free(c.x), free(c.z), free(c.w), free(c.rstd), free(dy), free(y), free(dx), free(dz), free(dw);
        free(rx), free(rz), free(rw), free(ax), free(az), free(aw);
        free(xf), free(zf), free(wf), free(dyf), free(yf), free(rf), free(dxf), free(dzf), free(dwf);
    }
}

/* ---- the whole mixer ------------------------------------------------------ */

/* The layer as transformers' torch_forward computes it, from the operations
 * (see docs/mamba2.md):
 *
 *     zxbcdt = x · in_projᵀ                 [T, W], W = d_inner + C + H
 *     xbc    = conv1d+silu(zxbcdt[:, d_inner : d_inner + C])      C = d_inner + 2GN
 *     dt     = softplus(zxbcdt[:, d_inner + C :] + dt_bias)
 *     y      = scan(xbc[:, :d_inner], dt, A_log, xbc[:, d_inner : +GN], xbc[:, d_inner + GN :], D)
 *     yn     = norm_w ⊙ rmsnorm(y ⊙ silu(zxbcdt[:, :d_inner]))   one group of d_inner
 *     out    = yn · out_projᵀ                                                     */
typedef struct {
    int hidden, H, P, G, N, K, chunk;
    double eps, lo, hi;
} mixer_dims;

enum { W_IN, W_CONV, W_CONVB, W_DTB, W_ALOG, W_D, W_NORM, W_OUT, N_W };
static const char *const w_names[N_W] = {"in_proj", "conv_w", "conv_b", "dt_bias", "A_log", "D", "norm_w", "out_proj"};

static void mixer_sizes(const mixer_dims *m, size_t n[N_W]) {
    int di = m->H * m->P, C = di + 2 * m->G * m->N, W = di + C + m->H;
    n[W_IN] = (size_t)W * m->hidden, n[W_CONV] = (size_t)C * m->K, n[W_CONVB] = C, n[W_DTB] = m->H;
    n[W_ALOG] = m->H, n[W_D] = m->H, n[W_NORM] = di, n[W_OUT] = (size_t)m->hidden * di;
}

#define MIXER_DEF(real, sfx)                                                                                          \
    typedef struct {                                                                                                  \
        real *zxbcdt, *xbc, *dt, *y, *yn, *rstd, *states;                                                             \
    } mixer_act##sfx;                                                                                                 \
    static void mixer_alloc##sfx(mixer_act##sfx *a, const mixer_dims *m, int B, int S) {                              \
        int T = B * S, di = m->H * m->P, C = di + 2 * m->G * m->N, W = di + C + m->H;                                 \
        a->zxbcdt = calloc((size_t)T * W, sizeof(real));                                                              \
        a->xbc = calloc((size_t)T * C, sizeof(real));                                                                 \
        a->dt = calloc((size_t)T * m->H, sizeof(real));                                                               \
        a->y = calloc((size_t)T * di, sizeof(real));                                                                  \
        a->yn = calloc((size_t)T * di, sizeof(real));                                                                 \
        a->rstd = calloc((size_t)T, sizeof(real));                                                                    \
        a->states = calloc((size_t)tn_mamba_states_count(B, S, m->H, m->P, m->N, m->chunk), sizeof(real));           \
    }                                                                                                                 \
    static void mixer_free##sfx(mixer_act##sfx *a) {                                                                  \
        free(a->zxbcdt), free(a->xbc), free(a->dt), free(a->y), free(a->yn), free(a->rstd), free(a->states);           \
    }                                                                                                                 \
    static void mixer_forward##sfx(real *out, mixer_act##sfx *a, real *const w[N_W], const real *x,                  \
                                   const mixer_dims *m, int B, int S) {                                               \
        int T = B * S, di = m->H * m->P, GN = m->G * m->N, C = di + 2 * GN, W = di + C + m->H;                        \
        tn_matmul_forward##sfx(a->zxbcdt, x, w[W_IN], NULL, T, m->hidden, W, 0);                                      \
        tn_mamba_conv1d_forward##sfx(a->xbc, a->zxbcdt + di, W, w[W_CONV], w[W_CONVB], B, S, C, m->K);                \
        tn_mamba_dt_forward##sfx(a->dt, a->zxbcdt + di + C, W, w[W_DTB], T, m->H, (real)m->lo, (real)m->hi);          \
        tn_mamba_scan_forward##sfx(a->y, a->states, a->xbc, C, a->dt, w[W_ALOG], a->xbc + di, a->xbc + di + GN, C,    \
                                   w[W_D], NULL, B, S, m->H, m->P, m->G, m->N, m->chunk);                             \
        tn_mamba_gated_norm_forward##sfx(a->yn, a->rstd, a->y, a->zxbcdt, W, w[W_NORM], T, di, di, (real)m->eps);    \
        tn_matmul_forward##sfx(out, a->yn, w[W_OUT], NULL, T, di, m->hidden, 0);                                      \
    }                                                                                                                 \
    /* dx and dw[] accumulate; needs the activations of mixer_forward */                                            \
    static void mixer_backward##sfx(real *dx, real *const dw[N_W], const real *dout, const mixer_act##sfx *a,        \
                                    real *const w[N_W], const real *x, const mixer_dims *m, int B, int S) {           \
        int T = B * S, di = m->H * m->P, GN = m->G * m->N, C = di + 2 * GN, W = di + C + m->H;                        \
        real *dyn = calloc((size_t)T * di, sizeof(real)), *dy = calloc((size_t)T * di, sizeof(real));                 \
        real *dz = calloc((size_t)T * W, sizeof(real)), *dxbc = calloc((size_t)T * C, sizeof(real));                  \
        real *ddt = calloc((size_t)T * m->H, sizeof(real));                                                           \
        tn_matmul_backward##sfx(dyn, dw[W_OUT], NULL, dout, a->yn, w[W_OUT], T, di, m->hidden);                       \
        tn_mamba_gated_norm_backward##sfx(dy, dz, dw[W_NORM], dyn, a->y, a->zxbcdt, W, w[W_NORM], a->rstd, T, di, di); \
        tn_mamba_scan_backward##sfx(dxbc, ddt, dw[W_ALOG], dxbc + di, dxbc + di + GN, dw[W_D], dy, a->states, a->xbc, \
                                    C, a->dt, w[W_ALOG], a->xbc + di, a->xbc + di + GN, C, w[W_D], NULL, B, S, m->H,  \
                                    m->P, m->G, m->N, m->chunk);                                                      \
        tn_mamba_dt_backward##sfx(dz + di + C, W, dw[W_DTB], ddt, a->zxbcdt + di + C, w[W_DTB], T, m->H, (real)m->lo, \
                                  (real)m->hi);                                                                       \
        tn_mamba_conv1d_backward##sfx(dz + di, dw[W_CONV], dw[W_CONVB], dxbc, a->zxbcdt + di, W, w[W_CONV],          \
                                      w[W_CONVB], B, S, C, m->K);                                                     \
        tn_matmul_backward##sfx(dx, dw[W_IN], NULL, dz, x, w[W_IN], T, m->hidden, W);                                 \
        free(dyn), free(dy), free(dz), free(dxbc), free(ddt);                                                         \
    }

MIXER_DEF(double, _d)
MIXER_DEF(float, )

/* A golden file's tensor as doubles (F64 or F32 stored). */
static double *golden(const tn_safetensors *st, const char *name, size_t want) {
    const tn_tensor_info *t = tn_safetensors_find(st, name);
    if (!t) fail_msg("tensor %s missing from the golden file", name);
    if (t->n_elements != want) fail_msg("%s: %llu elements, want %zu", name, (unsigned long long)t->n_elements, want);
    double *v = malloc(want * sizeof *v);
    const char *p = tn_safetensors_data(st, t);
    for (size_t i = 0; i < want; i++) {
        if (t->dtype == TN_DTYPE_F64)
            memcpy(&v[i], p + 8 * i, 8);
        else if (t->dtype == TN_DTYPE_F32) {
            float f;
            memcpy(&f, p + 4 * i, 4);
            v[i] = f;
        } else
            fail_msg("%s: unexpected dtype", name);
    }
    return v;
}

#define GOLDEN "tests/data/mamba/mixer_golden.safetensors"
#define FIXTURE "tests/fixtures/granitehybrid/model.safetensors"

/* Against transformers: y and every gradient of L = Σ dy·y, double against
 * float64 (rel 1e-12, measured ~1e-15: only the order of operations differs, chunked against
 * sequential), and float against float64 and against transformers' own
 * float32 output (1e-5). Weights: the fixture's layer 0, or stored in the
 * golden file (prefix.w.*). Prints the largest differences. */
static void golden_case(const tn_safetensors *gs, const tn_safetensors *fix, const char *prefix, const mixer_dims *m) {
    enum { B = 2, S = 12 };
    int T = B * S;
    size_t n[N_W], nx = (size_t)T * m->hidden;
    mixer_sizes(m, n);
    char name[128];
    double *w[N_W];
    for (int i = 0; i < N_W; i++) {
        if (fix) {
            static const char *const hf[N_W] = {"in_proj.weight", "conv1d.weight", "conv1d.bias", "dt_bias",
                                                "A_log",          "D",             "norm.weight", "out_proj.weight"};
            snprintf(name, sizeof name, "model.layers.0.mamba.%s", hf[i]);
            w[i] = golden(fix, name, n[i]);
        } else {
            snprintf(name, sizeof name, "%s.w.%s", prefix, w_names[i]);
            w[i] = golden(gs, name, n[i]);
        }
    }
    snprintf(name, sizeof name, "%s.x", prefix);
    double *x = golden(gs, name, nx);
    snprintf(name, sizeof name, "%s.dy", prefix);
    double *dout = golden(gs, name, nx);
    snprintf(name, sizeof name, "%s.y", prefix);
    double *y_ref = golden(gs, name, nx);
    snprintf(name, sizeof name, "%s.y32", prefix);
    double *y32_ref = golden(gs, name, nx);

    mixer_act_d a;
    mixer_alloc_d(&a, m, B, S);
    double *y = zeros(nx), *dx = zeros(nx), *dw[N_W];
    for (int i = 0; i < N_W; i++) dw[i] = zeros(n[i]);
    mixer_forward_d(y, &a, w, x, m, B, S);
    mixer_backward_d(dx, dw, dout, &a, w, x, m, B, S);
    double r = rel_diff_dd(y, y_ref, nx);
    printf("golden %-4s double y        vs transformers f64: %.2e\n", prefix, r);
    assert_true(r < 1e-12);
    snprintf(name, sizeof name, "%s.dx", prefix);
    double *ref = golden(gs, name, nx);
    r = rel_diff_dd(dx, ref, nx);
    printf("golden %-4s double dx       vs transformers f64: %.2e\n", prefix, r);
    assert_true(r < 1e-12);
    free(ref);
    for (int i = 0; i < N_W; i++) {
        snprintf(name, sizeof name, "%s.d.%s", prefix, w_names[i]);
        ref = golden(gs, name, n[i]);
        r = rel_diff_dd(dw[i], ref, n[i]);
        printf("golden %-4s double d%-8s vs transformers f64: %.2e\n", prefix, w_names[i], r);
        if (r >= 1e-12) fail_msg("%s: d%s differs from transformers by %.3g", prefix, w_names[i], r);
        free(ref);
    }

    /* float: the same weights and input rounded to float */
    mixer_act af;
    mixer_alloc(&af, m, B, S);
    float *wf[N_W], *dwf[N_W], *xf = to_f(x, nx), *doutf = to_f(dout, nx), *yf = zeros_f(nx), *dxf = zeros_f(nx);
    for (int i = 0; i < N_W; i++) wf[i] = to_f(w[i], n[i]), dwf[i] = zeros_f(n[i]);
    mixer_forward(yf, &af, wf, xf, m, B, S);
    mixer_backward(dxf, dwf, doutf, &af, wf, xf, m, B, S);
    double r64 = rel_diff_fd(yf, y_ref, nx), r32 = rel_diff_fd(yf, y32_ref, nx);
    printf("golden %-4s float  y        vs transformers f64: %.2e, vs transformers f32: %.2e\n", prefix, r64, r32);
    assert_true(r64 < F32_TOL && r32 < F32_TOL);
    r = rel_diff_fd(dxf, dx, nx);
    printf("golden %-4s float  dx       vs double: %.2e\n", prefix, r);
    assert_true(r < F32_TOL);
    for (int i = 0; i < N_W; i++) {
        r = rel_diff_fd(dwf[i], dw[i], n[i]);
        printf("golden %-4s float  d%-8s vs double: %.2e\n", prefix, w_names[i], r);
        if (r >= F32_TOL) fail_msg("%s: float d%s differs from double by %.3g", prefix, w_names[i], r);
    }

    mixer_free_d(&a);
    mixer_free(&af);
    for (int i = 0; i < N_W; i++) free(w[i]), free(dw[i]), free(wf[i]), free(dwf[i]);
    free(x), free(dout), free(y_ref), free(y32_ref), free(y), free(dx), free(xf), free(doutf), free(yf), free(dxf);
}

/* The fixture's dims (config.json: mamba_n_heads 8, d_head 16, groups 1,
 * d_state 16, d_conv 4, rms_norm_eps 1e-5); the golden file runs
 * transformers at chunk_size 5. */
static const mixer_dims FIX_DIMS = {64, 8, 16, 1, 16, 4, 5, 1e-5, 0, INFINITY};
static const mixer_dims G2_DIMS = {16, 4, 8, 2, 4, 4, 5, 1e-5, 0, INFINITY};

static void test_mixer_golden(void **state) {
    tn_safetensors gs, fix;
    if (tn_safetensors_open(GOLDEN, &gs) != 0) fail_msg("%s", tn_error());
    if (tn_safetensors_open(FIXTURE, &fix) != 0) fail_msg("%s", tn_error());
    golden_case(&gs, &fix, "fix", &FIX_DIMS);
    golden_case(&gs, NULL, "g2", &G2_DIMS);
    mixer_dims clamp = G2_DIMS;
    clamp.lo = 0.3, clamp.hi = 1.5;
    golden_case(&gs, NULL, "g2c", &clamp);
    tn_safetensors_close(&gs);
    tn_safetensors_close(&fix);
}

/* The fixture's layer 0 at its real chunk size on random input: finite,
 * the same bits on a second run, float within 1e-5 of double. */
static void test_mixer_fixture(void **state) {
    enum { B = 2, S = 5 };
    tn_safetensors fix;
    if (tn_safetensors_open(FIXTURE, &fix) != 0) fail_msg("%s", tn_error());
    mixer_dims m = FIX_DIMS;
    m.chunk = TN_MAMBA_CHUNK;
    size_t n[N_W], nx = (size_t)B * S * m.hidden;
    mixer_sizes(&m, n);
    static const char *const hf[N_W] = {"in_proj.weight", "conv1d.weight", "conv1d.bias", "dt_bias",
                                        "A_log",          "D",             "norm.weight", "out_proj.weight"};
    double *w[N_W];
    float *wf[N_W];
    char name[128];
    for (int i = 0; i < N_W; i++) {
        snprintf(name, sizeof name, "model.layers.0.mamba.%s", hf[i]);
        w[i] = golden(&fix, name, n[i]);
        wf[i] = to_f(w[i], n[i]);
    }
    double *x = randn(nx, 1), *y = zeros(nx), *y2 = zeros(nx);
    float *xf = to_f(x, nx), *yf = zeros_f(nx), *yf2 = zeros_f(nx);
    mixer_act_d a;
    mixer_act af;
    mixer_alloc_d(&a, &m, B, S);
    mixer_alloc(&af, &m, B, S);
    mixer_forward_d(y, &a, w, x, &m, B, S);
    mixer_forward_d(y2, &a, w, x, &m, B, S);
    mixer_forward(yf, &af, wf, xf, &m, B, S);
    mixer_forward(yf2, &af, wf, xf, &m, B, S);
    double amax = 0;
    for (size_t i = 0; i < nx; i++) {
        assert_true(isfinite(y[i]) && isfinite(yf[i]));
        amax = fmax(amax, fabs(y[i]));
    }
    assert_true(amax > 1e-3);
    assert_memory_equal(y, y2, nx * sizeof(double));
    assert_memory_equal(yf, yf2, nx * sizeof(float));
    f32_check("mixer (fixture layer 0, chunk 256)", "y", yf, y, nx);
    mixer_free_d(&a);
    mixer_free(&af);
    for (int i = 0; i < N_W; i++) free(w[i]), free(wf[i]);
    free(x), free(y), free(y2), free(xf), free(yf), free(yf2);
    tn_safetensors_close(&fix);
}

/* The composite's own finite differences (n_groups 2, chunk 2): the wiring
 * of strides and splits, every weight and the input. */
typedef struct {
    double *w[N_W], *x;
    mixer_act_d a;
    mixer_dims m;
    int B, S;
} mixer_ctx;

static void mixer_fwd(void *p, double *y) {
    mixer_ctx *c = p;
    mixer_forward_d(y, &c->a, c->w, c->x, &c->m, c->B, c->S);
}

static void test_mixer_fd(void **state) {
    mixer_ctx c = {.m = G2_DIMS, .B = 2, .S = 5};
    c.m.chunk = 2;
    size_t n[N_W], nx = (size_t)c.B * c.S * c.m.hidden;
    mixer_sizes(&c.m, n);
    for (int i = 0; i < N_W; i++) c.w[i] = randn(n[i], i == W_IN || i == W_OUT ? 0.3 : 0.5);
    for (int i = 0; i < (int)n[W_NORM]; i++) c.w[W_NORM][i] += 1;
    for (int i = 0; i < (int)n[W_D]; i++) c.w[W_D][i] += 1;
    c.x = randn(nx, 1);
    mixer_alloc_d(&c.a, &c.m, c.B, c.S);
    double *dy = randn(nx, 1), *y = zeros(nx), *dx = zeros(nx), *dw[N_W];
    for (int i = 0; i < N_W; i++) dw[i] = zeros(n[i]);
    mixer_fwd(&c, y);
    mixer_backward_d(dx, dw, dy, &c.a, c.w, c.x, &c.m, c.B, c.S);
    fd_check("mixer (G 2, chunk 2)", "x", mixer_fwd, &c, c.x, nx, dx, dy, nx);
    for (int i = 0; i < N_W; i++) fd_check("mixer (G 2, chunk 2)", w_names[i], mixer_fwd, &c, c.w[i], n[i], dw[i], dy, nx);
    mixer_free_d(&c.a);
    for (int i = 0; i < N_W; i++) free(c.w[i]), free(dw[i]);
    free(c.x), free(dy), free(y), free(dx);
}

/* ---- threads ---------------------------------------------------------------- */

/* Shapes past every parallel threshold (S 300: two chunks of 256, the second
 * partial): each operation's forward and backward give the same bits on one
 * thread and on two (float build, as the trainer runs it). */
typedef struct {
    float *y, *states, *rstd, *dx, *ddt, *dA, *dbc, *dD, *dn, *dz, *dw, *db, *dy2;
} thread_out;

static void thread_run(thread_out *o, const float *xbc, const float *dt, const float *A_log, const float *D,
                       const float *dy, const float *z, const float *w, const float *cw, const float *cb, int B, int S,
                       int H, int P, int G, int N, int K) {
    int T = B * S, di = H * P, GN = G * N, C = di + 2 * GN;
    size_t NS = (size_t)tn_mamba_states_count(B, S, H, P, N, TN_MAMBA_CHUNK);
    o->y = zeros_f((size_t)T * di), o->states = zeros_f(NS), o->rstd = zeros_f((size_t)T * G);
    o->dx = zeros_f((size_t)T * C), o->ddt = zeros_f((size_t)T * H), o->dA = zeros_f(H), o->dbc = zeros_f((size_t)T * C);
    o->dD = zeros_f(H), o->dn = zeros_f((size_t)T * di), o->dz = zeros_f((size_t)T * di), o->dw = zeros_f(di), o->db = zeros_f(C);
    o->dy2 = zeros_f((size_t)T * C);
    float *conv = zeros_f((size_t)T * C), *dcw = zeros_f((size_t)C * K);
    tn_mamba_conv1d_forward(conv, xbc, C, cw, cb, B, S, C, K);
    tn_mamba_conv1d_backward(o->dy2, dcw, o->db, dy, xbc, C, cw, cb, B, S, C, K);
    tn_mamba_scan_forward(o->y, o->states, conv, C, dt, A_log, conv + di, conv + di + GN, C, D, NULL, B, S, H, P, G, N,
                          TN_MAMBA_CHUNK);
    tn_mamba_scan_backward(o->dx, o->ddt, o->dA, o->dbc + di, o->dbc + di + GN, o->dD, dy, o->states, conv, C, dt,
                           A_log, conv + di, conv + di + GN, C, D, NULL, B, S, H, P, G, N, TN_MAMBA_CHUNK);
    float *yn = zeros_f((size_t)T * di);
    tn_mamba_gated_norm_forward(yn, o->rstd, o->y, z, di, w, T, di, di / G, 1e-5f);
    tn_mamba_gated_norm_backward(o->dn, o->dz, o->dw, dy, o->y, z, di, w, o->rstd, T, di, di / G);
    memcpy(o->y, yn, (size_t)T * di * sizeof(float)); /* keep the norm's output as y */
    free(conv), free(dcw), free(yn);
}

static void test_threads(void **state) {
    enum { B = 2, S = 300, H = 4, P = 16, G = 2, N = 16, K = 4, T = B * S, DI = H * P, C = DI + 2 * G * N };
    double *d_xbc = randn((size_t)T * C, 1), *d_dt = uniform((size_t)T * H, 0.05, 0.6), *d_A = randn(H, 0.5);
    double *d_D = randn(H, 1), *d_dy = randn((size_t)T * C, 1), *d_z = randn((size_t)T * DI, 1), *d_w = randn(DI, 1);
    double *d_cw = randn((size_t)C * K, 0.5), *d_cb = randn(C, 0.3);
    float *xbc = to_f(d_xbc, (size_t)T * C), *dt = to_f(d_dt, (size_t)T * H), *A = to_f(d_A, H), *D = to_f(d_D, H);
    float *dy = to_f(d_dy, (size_t)T * C), *z = to_f(d_z, (size_t)T * DI), *w = to_f(d_w, DI);
    float *cw = to_f(d_cw, (size_t)C * K), *cb = to_f(d_cb, C);
    thread_out o[2];
    int saved = omp_get_max_threads();
    for (int r = 0; r < 2; r++) {
        omp_set_num_threads(r == 0 ? 1 : 2);
        thread_run(&o[r], xbc, dt, A, D, dy, z, w, cw, cb, B, S, H, P, G, N, K);
    }
    omp_set_num_threads(saved);
    size_t NS = (size_t)tn_mamba_states_count(B, S, H, P, N, TN_MAMBA_CHUNK);
    assert_memory_equal(o[0].y, o[1].y, (size_t)T * DI * sizeof(float));
    assert_memory_equal(o[0].states, o[1].states, NS * sizeof(float));
    assert_memory_equal(o[0].dx, o[1].dx, (size_t)T * C * sizeof(float));
    assert_memory_equal(o[0].ddt, o[1].ddt, (size_t)T * H * sizeof(float));
    assert_memory_equal(o[0].dA, o[1].dA, H * sizeof(float));
    assert_memory_equal(o[0].dbc, o[1].dbc, (size_t)T * C * sizeof(float));
    assert_memory_equal(o[0].dD, o[1].dD, H * sizeof(float));
    assert_memory_equal(o[0].dn, o[1].dn, (size_t)T * DI * sizeof(float));
    assert_memory_equal(o[0].dz, o[1].dz, (size_t)T * DI * sizeof(float));
    assert_memory_equal(o[0].dw, o[1].dw, DI * sizeof(float));
    assert_memory_equal(o[0].db, o[1].db, C * sizeof(float));
    assert_memory_equal(o[0].dy2, o[1].dy2, (size_t)T * C * sizeof(float));
    for (int r = 0; r < 2; r++) {
        thread_out *q = &o[r];
        free(q->y), free(q->states), free(q->rstd), free(q->dx), free(q->ddt), free(q->dA), free(q->dbc), free(q->dD);
        free(q->dn), free(q->dz), free(q->dw), free(q->db), free(q->dy2);
    }
    free(d_xbc), free(d_dt), free(d_A), free(d_D), free(d_dy), free(d_z), free(d_w), free(d_cw), free(d_cb);
    free(xbc), free(dt), free(A), free(D), free(dy), free(z), free(w), free(cw), free(cb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_conv1d, setup),     cmocka_unit_test_setup(test_dt, setup),
        cmocka_unit_test_setup(test_scan, setup),       cmocka_unit_test_setup(test_gated_norm, setup),
        cmocka_unit_test_setup(test_mixer_fd, setup),   cmocka_unit_test_setup(test_mixer_fixture, setup),
        cmocka_unit_test_setup(test_mixer_golden, setup),   cmocka_unit_test_setup(test_threads, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
