/* check_gpu.c - `make check-gpu`: every CUDA operation of nn/backend.h against
 * the CPU operation of nn/ops.h (the reference) on random inputs drawn fresh
 * each run (seed from the clock, printed so a failure can be replayed with
 * TN_SEED=...). Outputs that an operation writes (rather than accumulates
 * into) are poisoned with NaN bytes before the kernel runs, so an element left
 * unwritten fails; gradients that accumulate start from the same random values
 * on both sides. Prints per operation ‖gpu − cpu‖/‖cpu‖ and the largest
 * absolute difference, and exits 1 if any exceeds its tolerance or is not
 * finite.
 *
 * Tolerances (normwise relative error):
 *   fp32 in and out: 1e-5. Both sides compute in fp32 and differ only in the
 *     order of sums and in the last bits of expf/tanhf/rsqrtf (a few ulp,
 *     ~1e-7 each); sums over K terms in another order give about sqrt(K)·6e-8
 *     (~2e-6 at K = 1024). 1e-5 leaves room for that and catches any real
 *     error (a wrong index or a missing term is ≥ 1e-3).
 *   bf16 storage: inputs are rounded to bf16 on the host first and the CPU
 *     reference runs in fp32 on those same values, so the only difference is
 *     the one rounding of each bf16 output. bf16 has 8 significant bits: the
 *     rounding's relative error is at most u = 2^-8 (3.9e-3) per element, so
 *     at most u normwise (about u/2.4 on random data: 1.4e-3 to 2.4e-3 were
 *     measured on an H200); tolerance 4e-3, just above the bound. fp32
 *     outputs from bf16 operands (matmul) keep the fp32 tolerance.
 * A test program: on a CUDA error it prints the message and exits 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/backend.h"
#include "nn/flash_attention.h"
#include "nn/ops.h"
#include "train/optim.h"
#include "util/error.h"
#include "util/rng.h"

#define TOL_F32 1e-5
#define TOL_BF16 4e-3

static tn_cuda *ctx;
static tn_rng rng;
static int failures, checks;

#define CK(call)                                                                                              \
    do {                                                                                                      \
        if ((call) != 0) {                                                                                    \
            fprintf(stderr, "check_gpu: %s:%d: %s\n", __FILE__, __LINE__, tn_error());                        \
            exit(1);                                                                                          \
        }                                                                                                     \
    } while (0)

/* Every buffer of one test, freed by release(). */
static void *dev_bufs[256], *host_bufs[256];
static int n_dev, n_host;

static void *hmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p || n_host == 256) {
        fprintf(stderr, "check_gpu: out of host memory\n");
        exit(1);
    }
    return host_bufs[n_host++] = p;
}

static void release(void) {
    for (int i = 0; i < n_dev; i++) tn_cuda_dfree(dev_bufs[i]);
    for (int i = 0; i < n_host; i++) free(host_bufs[i]);
    n_dev = n_host = 0;
}

static void *dalloc(size_t bytes) {
    void *p;
    CK(tn_cuda_alloc(ctx, &p, bytes, "check buffer"));
    if (n_dev == 256) exit(1);
    return dev_bufs[n_dev++] = p;
}

static float bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

/* n values, normal·scale (+ shift), rounded to bf16 when dt is bf16. */
static float *hrand(int64_t n, float scale, float shift, tn_dev_dtype dt) {
    float *h = hmalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        h[i] = shift + scale * tn_rng_normal(&rng);
        if (dt == TN_BF16) h[i] = bf16_round(h[i]);
    }
    return h;
}

static float *hcopy(const float *h, int64_t n) {
    float *c = hmalloc((size_t)n * sizeof(float));
    memcpy(c, h, (size_t)n * sizeof(float));
    return c;
}

/* A device copy of h stored as dt. */
static void *dput(const float *h, int64_t n, tn_dev_dtype dt) {
    void *d = dalloc((size_t)n * tn_dev_dtype_size(dt));
    if (dt == TN_F32) {
        CK(tn_cuda_upload(ctx, d, h, (size_t)n * 4));
    } else {
        float *tmp = dalloc((size_t)n * 4);
        CK(tn_cuda_upload(ctx, tmp, h, (size_t)n * 4));
        CK(tn_cuda_to_bf16(ctx, d, tmp, n));
    }
    return d;
}

/* A device buffer of n elements of dt filled with NaN bytes (0xFF.. is a NaN in fp32 and in bf16). */
static void *dpoison(int64_t n, tn_dev_dtype dt) {
    void *d = dalloc((size_t)n * tn_dev_dtype_size(dt));
    CK(tn_cuda_memset(ctx, d, 0xff, (size_t)n * tn_dev_dtype_size(dt)));
    return d;
}

static float *dget(const void *d, int64_t n, tn_dev_dtype dt) {
    float *h = hmalloc((size_t)n * sizeof(float));
    if (dt == TN_F32) {
        CK(tn_cuda_download(ctx, h, d, (size_t)n * 4));
    } else {
        float *tmp = dalloc((size_t)n * 4);
        CK(tn_cuda_to_f32(ctx, tmp, d, n));
        CK(tn_cuda_download(ctx, h, tmp, (size_t)n * 4));
    }
    return h;
}

/* Compares the device result d (n elements of dt) with the reference ref. */
static void compare(const char *op, const void *d, tn_dev_dtype dt, const float *ref, int64_t n, double tol) {
    const float *got = dget(d, n, dt);
    double num = 0, den = 0, maxd = 0;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) bad++;
        double e = (double)got[i] - ref[i];
        num += e * e, den += (double)ref[i] * ref[i];
        if (fabs(e) > maxd) maxd = fabs(e);
    }
    double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    int ok = bad == 0 && rel <= tol;
    checks++;
    if (!ok) failures++;
    printf("%-34s %-4s n=%-9lld rel %.2e  max|diff| %.2e  tol %.0e  %s", op, dt == TN_BF16 ? "bf16" : "f32",
           (long long)n, rel, maxd, tol, ok ? "ok" : "FAIL");
    if (bad) printf(" (%lld not finite)", (long long)bad);
    printf("\n");
}

static double tol_of(tn_dev_dtype dt) { return dt == TN_BF16 ? TOL_BF16 : TOL_F32; }

/* ---- the checks ------------------------------------------------------- */

static void check_matmul(tn_dev_dtype in_dt, tn_dev_dtype out_dt, int T, int in, int out, int with_bias) {
    char name[64];
    float *x = hrand((int64_t)T * in, 1, 0, in_dt), *w = hrand((int64_t)out * in, 0.05f, 0, in_dt);
    float *bias = with_bias ? hrand(out, 1, 0, TN_F32) : NULL;
    float *y = hmalloc((size_t)T * out * 4);
    tn_matmul_forward(y, x, w, bias, T, in, out, 0);
    void *dx = dput(x, (int64_t)T * in, in_dt), *dw = dput(w, (int64_t)out * in, in_dt);
    void *dy = dpoison((int64_t)T * out, out_dt);
    CK(tn_cuda_matmul_forward(ctx, dy, out_dt, dx, dw, in_dt, with_bias ? dput(bias, out, TN_F32) : NULL, T, in, out,
                              0));
    snprintf(name, sizeof name, "matmul_forward%s %dx%dx%d", with_bias ? "+bias" : "", T, in, out);
    compare(name, dy, out_dt, y, (int64_t)T * out, tol_of(out_dt));

    /* accumulate, and backward into random dx, dw */
    float *y0 = hrand((int64_t)T * out, 1, 0, out_dt), *y1 = hcopy(y0, (int64_t)T * out);
    tn_matmul_forward(y1, x, w, NULL, T, in, out, 1);
    void *dy0 = dput(y0, (int64_t)T * out, out_dt);
    CK(tn_cuda_matmul_forward(ctx, dy0, out_dt, dx, dw, in_dt, NULL, T, in, out, 1));
    compare("matmul_forward accumulate", dy0, out_dt, y1, (int64_t)T * out, tol_of(out_dt));

    float *g = hrand((int64_t)T * out, 1, 0, in_dt);
    float *gx = hrand((int64_t)T * in, 1, 0, out_dt), *gw = hrand((int64_t)out * in, 1, 0, out_dt);
    float *gx1 = hcopy(gx, (int64_t)T * in), *gw1 = hcopy(gw, (int64_t)out * in);
    tn_matmul_backward(gx1, gw1, NULL, g, x, w, T, in, out);
    void *dg = dput(g, (int64_t)T * out, in_dt), *dgx = dput(gx, (int64_t)T * in, out_dt),
         *dgw = dput(gw, (int64_t)out * in, out_dt);
    CK(tn_cuda_matmul_backward(ctx, dgx, dgw, out_dt, dg, dx, dw, in_dt, T, in, out));
    compare("matmul_backward dx", dgx, out_dt, gx1, (int64_t)T * in, tol_of(out_dt));
    compare("matmul_backward dw", dgw, out_dt, gw1, (int64_t)out * in, tol_of(out_dt));
    release();
}

static void check_rmsnorm(tn_dev_dtype dt, int T, int C, int one_plus) {
    float *x = hrand((int64_t)T * C, 2, 0.3f, dt), *w = hrand(C, 0.2f, one_plus ? 0 : 1, dt);
    float *y = hmalloc((size_t)T * C * 4), *rstd = hmalloc((size_t)T * 4);
    tn_rmsnorm_forward(y, rstd, x, w, T, C, 1e-6f, one_plus);
    void *dx = dput(x, (int64_t)T * C, dt), *dw = dput(w, C, dt), *dy = dpoison((int64_t)T * C, dt);
    float *drstd = dpoison(T, TN_F32);
    CK(tn_cuda_rmsnorm_forward(ctx, dy, drstd, dx, dw, dt, T, C, 1e-6f, one_plus));
    compare(one_plus ? "rmsnorm_forward (1+w)" : "rmsnorm_forward", dy, dt, y, (int64_t)T * C, tol_of(dt));
    compare("rmsnorm_forward rstd", drstd, TN_F32, rstd, T, TOL_F32);

    float *g = hrand((int64_t)T * C, 1, 0, dt), *gx = hrand((int64_t)T * C, 1, 0, dt), *gw = hrand(C, 1, 0, TN_F32);
    float *gx1 = hcopy(gx, (int64_t)T * C), *gw1 = hcopy(gw, C);
    tn_rmsnorm_backward(gx1, gw1, g, x, w, rstd, T, C, one_plus);
    void *dg = dput(g, (int64_t)T * C, dt), *dgx = dput(gx, (int64_t)T * C, dt);
    float *dgw = dput(gw, C, TN_F32);
    CK(tn_cuda_rmsnorm_backward(ctx, dgx, dgw, dg, dx, dw, drstd, dt, T, C, one_plus));
    compare("rmsnorm_backward dx", dgx, dt, gx1, (int64_t)T * C, tol_of(dt));
    /* dw sums T terms of bf16-rounded products in fp32 on both sides: fp32 tolerance */
    compare("rmsnorm_backward dw", dgw, TN_F32, gw1, C, TOL_F32);
    release();
}

static void check_rope(tn_dev_dtype dt, int T, int nh, int hd) {
    tn_rope_table rt;
    tn_rope_params p = {.theta = 500000, .scaling = TN_ROPE_SCALE_LLAMA3, .factor = 32, .low_freq_factor = 1,
                        .high_freq_factor = 4, .original_max_pos = 8192};
    int max_pos = 4096;
    CK(tn_rope_table_init(&rt, max_pos, hd, &p));
    int32_t *pos = hmalloc((size_t)T * 4);
    for (int t = 0; t < T; t++) pos[t] = (int32_t)(tn_rng_next(&rng) % (uint64_t)max_pos);
    int64_t n = (int64_t)T * nh * hd;
    float *x = hrand(n, 1, 0, dt), *x1 = hcopy(x, n);
    tn_rope_forward(x1, &rt, pos, T, nh, hd);
    void *dx = dput(x, n, dt);
    float *dcos = dput(rt.cos, (int64_t)max_pos * (hd / 2), TN_F32), *dsin = dput(rt.sin, (int64_t)max_pos * (hd / 2), TN_F32);
    int32_t *dpos = dalloc((size_t)T * 4);
    CK(tn_cuda_upload(ctx, dpos, pos, (size_t)T * 4));
    CK(tn_cuda_rope_forward(ctx, dx, dt, dcos, dsin, dpos, T, nh, hd));
    compare("rope_forward (in place)", dx, dt, x1, n, tol_of(dt));
    float *g = hrand(n, 1, 0, dt), *g1 = hcopy(g, n);
    tn_rope_backward(g1, &rt, pos, T, nh, hd);
    void *dg = dput(g, n, dt);
    CK(tn_cuda_rope_backward(ctx, dg, dt, dcos, dsin, dpos, T, nh, hd));
    compare("rope_backward (in place)", dg, dt, g1, n, tol_of(dt));
    tn_rope_table_free(&rt);
    release();
}

static void check_glu(tn_dev_dtype dt, int64_t n, int gelu) {
    float *g = hrand(n, 2, 0, dt), *u = hrand(n, 1, 0, dt), *h = hmalloc((size_t)n * 4);
    (gelu ? tn_geglu_forward : tn_swiglu_forward)(h, g, u, n);
    void *dg = dput(g, n, dt), *du = dput(u, n, dt), *dh = dpoison(n, dt);
    CK((gelu ? tn_cuda_geglu_forward : tn_cuda_swiglu_forward)(ctx, dh, dg, du, dt, n));
    compare(gelu ? "geglu_forward" : "swiglu_forward", dh, dt, h, n, tol_of(dt));
    float *dy = hrand(n, 1, 0, dt), *gg = hrand(n, 1, 0, dt), *gu = hrand(n, 1, 0, dt);
    float *gg1 = hcopy(gg, n), *gu1 = hcopy(gu, n);
    (gelu ? tn_geglu_backward : tn_swiglu_backward)(gg1, gu1, dy, g, u, n);
    void *ddy = dput(dy, n, dt), *dgg = dput(gg, n, dt), *dgu = dput(gu, n, dt);
    CK((gelu ? tn_cuda_geglu_backward : tn_cuda_swiglu_backward)(ctx, dgg, dgu, ddy, dg, du, dt, n));
    compare(gelu ? "geglu_backward dg" : "swiglu_backward dg", dgg, dt, gg1, n, tol_of(dt));
    compare(gelu ? "geglu_backward du" : "swiglu_backward du", dgu, dt, gu1, n, tol_of(dt));
    release();
}

static void check_softcap(tn_dev_dtype dt, int64_t n, float c) {
    float *x = hrand(n, 40, 0, dt), *y = hmalloc((size_t)n * 4);
    tn_softcap_forward(y, x, c, n);
    void *dx = dput(x, n, dt), *dy = dpoison(n, dt);
    CK(tn_cuda_softcap_forward(ctx, dy, dx, dt, c, n));
    compare("softcap_forward", dy, dt, y, n, tol_of(dt));
    /* backward from the output as stored (bf16-rounded y on the device side) */
    float *yr = dget(dy, n, dt);
    float *g = hrand(n, 1, 0, dt), *gx = hrand(n, 1, 0, dt), *gx1 = hcopy(gx, n);
    tn_softcap_backward(gx1, g, yr, c, n);
    void *dg = dput(g, n, dt), *dgx = dput(gx, n, dt);
    CK(tn_cuda_softcap_backward(ctx, dgx, dg, dy, dt, c, n));
    compare("softcap_backward", dgx, dt, gx1, n, tol_of(dt));
    release();
}

static void check_embedding(tn_dev_dtype dt, int T, int V, int C) {
    float *e = hrand((int64_t)V * C, 1, 0, dt), *y = hmalloc((size_t)T * C * 4);
    int32_t *ids = hmalloc((size_t)T * 4);
    for (int t = 0; t < T; t++) ids[t] = (int32_t)(tn_rng_next(&rng) % (uint64_t)V);
    float scale = sqrtf((float)C);
    tn_embedding_forward(y, e, ids, T, C, scale);
    void *de = dput(e, (int64_t)V * C, dt), *dy = dpoison((int64_t)T * C, dt);
    int32_t *dids = dalloc((size_t)T * 4);
    CK(tn_cuda_upload(ctx, dids, ids, (size_t)T * 4));
    CK(tn_cuda_embedding_forward(ctx, dy, de, dids, dt, T, C, scale));
    compare("embedding_forward", dy, dt, y, (int64_t)T * C, tol_of(dt));
    release();
}

static void check_cross_entropy(int rows, int V, float softcap) {
    int64_t n = (int64_t)rows * V;
    float *z = hrand(n, softcap > 0 ? 30 : 3, 0, TN_F32), *z1 = hcopy(z, n);
    int32_t *labels = hmalloc((size_t)rows * 4);
    for (int r = 0; r < rows; r++)
        labels[r] = r % 7 == 3 ? TN_IGNORE_INDEX : (int32_t)(tn_rng_next(&rng) % (uint64_t)V);
    int counted = 0;
    float gs = 1.0f / rows;
    double loss = softcap > 0 ? tn_cross_entropy_softcap_forward_backward(z1, labels, rows, V, softcap, gs, &counted)
                              : tn_cross_entropy_forward_backward(z1, labels, rows, V, gs, &counted);
    float *dz = dput(z, n, TN_F32), *dl = dpoison(rows, TN_F32);
    int32_t *dlab = dalloc((size_t)rows * 4);
    CK(tn_cuda_upload(ctx, dlab, labels, (size_t)rows * 4));
    CK(tn_cuda_cross_entropy_forward_backward(ctx, dz, dl, dlab, rows, V, softcap, gs));
    compare(softcap > 0 ? "cross_entropy+softcap grad" : "cross_entropy grad", dz, TN_F32, z1, n, TOL_F32);
    float *l = dget(dl, rows, TN_F32);
    double sum = 0;
    for (int r = 0; r < rows; r++) sum += l[r];
    float lossf = (float)loss;
    compare(softcap > 0 ? "cross_entropy+softcap loss (sum)" : "cross_entropy loss (sum)", dput((float[]){(float)sum}, 1, TN_F32),
            TN_F32, &lossf, 1, TOL_F32);
    release();
}

static void check_adamw(int64_t n) {
    float *p = hrand(n, 1, 0, TN_F32), *p1 = hcopy(p, n);
    tn_adamw o;
    CK(tn_adamw_init(&o, n, 1e-3, 0.01));
    float *dp = dput(p, n, TN_F32), *dm = dalloc((size_t)n * 4), *dv = dalloc((size_t)n * 4);
    CK(tn_cuda_memset(ctx, dm, 0, (size_t)n * 4));
    CK(tn_cuda_memset(ctx, dv, 0, (size_t)n * 4));
    for (int step = 1; step <= 3; step++) {
        float *g = hrand(n, 0.1f, 0, TN_F32);
        tn_adamw_update(&o, p1, g, 1e-3);
        CK(tn_cuda_adamw_update(ctx, dp, dput(g, n, TN_F32), dm, dv, n, 1e-3, o.beta1, o.beta2, o.eps, 0.01, step));
    }
    compare("adamw_update x3 params", dp, TN_F32, p1, n, TOL_F32);
    compare("adamw_update x3 m", dm, TN_F32, o.m, n, TOL_F32);
    compare("adamw_update x3 v", dv, TN_F32, o.v, n, TOL_F32);
    tn_adamw_free(&o);
    release();
}

static void check_attention(int B, int S, int nh, int nkv, int hd, float softcap, int window) {
    char name[96];
    int64_t T = (int64_t)B * S, nq = T * nh * hd, nk = T * nkv * hd;
    float scale = 1.0f / sqrtf((float)hd);
    float *q = hrand(nq, 1, 0, TN_F32), *k = hrand(nk, 1, 0, TN_F32), *v = hrand(nk, 1, 0, TN_F32);
    float *out = hmalloc((size_t)nq * 4), *lse = hmalloc((size_t)T * nh * 4);
    tn_attention_forward(out, lse, q, k, v, B, S, nh, nkv, hd, scale, softcap, window);
    float *dq_ = dput(q, nq, TN_F32), *dk_ = dput(k, nk, TN_F32), *dv_ = dput(v, nk, TN_F32);
    float *dout = dpoison(nq, TN_F32), *dlse = dpoison(T * nh, TN_F32);
    CK(tn_cuda_attention_forward(ctx, dout, dlse, dq_, dk_, dv_, B, S, nh, nkv, hd, scale, softcap, window));
    snprintf(name, sizeof name, "attention_forward S%d %d/%d hd%d c%g w%d", S, nh, nkv, hd, softcap, window);
    compare(name, dout, TN_F32, out, nq, TOL_F32);
    compare("attention_forward lse", dlse, TN_F32, lse, T * nh, TOL_F32);

    float *g = hrand(nq, 1, 0, TN_F32);
    float *gq = hrand(nq, 1, 0, TN_F32), *gk = hrand(nk, 1, 0, TN_F32), *gv = hrand(nk, 1, 0, TN_F32);
    float *gq1 = hcopy(gq, nq), *gk1 = hcopy(gk, nk), *gv1 = hcopy(gv, nk);
    tn_attention_backward(gq1, gk1, gv1, g, out, lse, q, k, v, B, S, nh, nkv, hd, scale, softcap, window);
    float *dg = dput(g, nq, TN_F32), *dgq = dput(gq, nq, TN_F32), *dgk = dput(gk, nk, TN_F32), *dgv = dput(gv, nk, TN_F32);
    CK(tn_cuda_attention_backward(ctx, dgq, dgk, dgv, dg, dout, dlse, dq_, dk_, dv_, B, S, nh, nkv, hd, scale, softcap,
                                  window));
    compare("attention_backward dq", dgq, TN_F32, gq1, nq, TOL_F32);
    compare("attention_backward dk", dgk, TN_F32, gk1, nk, TOL_F32);
    compare("attention_backward dv", dgv, TN_F32, gv1, nk, TOL_F32);
    release();
}

/* Flash attention (nn/flash_attention.h, bf16 storage) against the CPU fp32 reference run on the same
 * bf16-rounded q, k, v, dout. Tolerance TOL_FLASH = 1e-2 normwise for the bf16 outputs: besides the final
 * rounding of each output (≤ u = 2^-8 = 3.9e-3 per element), the kernels round P = softmax and dS to bf16 as
 * operands of the products P·V, Pᵀ·dO, dSᵀ·Q and dS·K (a relative error ≤ u on each term of those sums,
 * partly averaging out), and the backward starts from the bf16-rounded out (D = rowsum(dO∘O)), so the error
 * sits between u/2 and 2u; 1e-2 leaves room for that and still catches a wrong index or mask (≥ 5e-2).
 * lse is fp32 from exact bf16 products summed in fp32 and ex2.approx: 1e-4. The backward WRITES dq, dk,
 * dv: they are poisoned, and the CPU reference accumulates into zeros. qscale scales q (large scores to
 * exercise the soft-cap). */
#define TOL_FLASH 1e-2
static void check_flash_attention(int B, int S, int nh, int nkv, int hd, float softcap, int window, float qscale) {
    char name[96];
    int64_t T = (int64_t)B * S, nq = T * nh * hd, nk = T * nkv * hd;
    float scale = 1.0f / sqrtf((float)hd);
    float *q = hrand(nq, qscale, 0, TN_BF16), *k = hrand(nk, 1, 0, TN_BF16), *v = hrand(nk, 1, 0, TN_BF16);
    float *out = hmalloc((size_t)nq * 4), *lse = hmalloc((size_t)T * nh * 4);
    tn_attention_forward(out, lse, q, k, v, B, S, nh, nkv, hd, scale, softcap, window);
    void *dq_ = dput(q, nq, TN_BF16), *dk_ = dput(k, nk, TN_BF16), *dv_ = dput(v, nk, TN_BF16);
    void *dout = dpoison(nq, TN_BF16);
    float *dlse = dpoison(T * nh, TN_F32);
    CK(tn_cuda_flash_attention_forward(ctx, dout, dlse, dq_, dk_, dv_, B, S, nh, nkv, hd, scale, softcap, window));
    snprintf(name, sizeof name, "flash_fwd B%d S%d %d/%d hd%d c%g w%d", B, S, nh, nkv, hd, softcap, window);
    compare(name, dout, TN_BF16, out, nq, TOL_FLASH);
    compare("flash_fwd lse", dlse, TN_F32, lse, T * nh, 1e-4);

    float *g = hrand(nq, 1, 0, TN_BF16);
    float *gq = hmalloc((size_t)nq * 4), *gk = hmalloc((size_t)nk * 4), *gv = hmalloc((size_t)nk * 4);
    memset(gq, 0, (size_t)nq * 4), memset(gk, 0, (size_t)nk * 4), memset(gv, 0, (size_t)nk * 4);
    tn_attention_backward(gq, gk, gv, g, out, lse, q, k, v, B, S, nh, nkv, hd, scale, softcap, window);
    void *dg = dput(g, nq, TN_BF16), *dgq = dpoison(nq, TN_BF16), *dgk = dpoison(nk, TN_BF16),
         *dgv = dpoison(nk, TN_BF16);
    void *ws = dalloc(tn_cuda_flash_attention_workspace(B, S, nh, nkv, hd));
    CK(tn_cuda_flash_attention_backward(ctx, dgq, dgk, dgv, dg, dout, dlse, dq_, dk_, dv_, ws, B, S, nh, nkv, hd,
                                        scale, softcap, window));
    compare("flash_bwd dq", dgq, TN_BF16, gq, nq, TOL_FLASH);
    compare("flash_bwd dk", dgk, TN_BF16, gk, nk, TOL_FLASH);
    compare("flash_bwd dv", dgv, TN_BF16, gv, nk, TOL_FLASH);
    release();
}

/* ---- timing ----------------------------------------------------------- */

typedef struct {
    void *y, *x, *w;
    int T, in, out;
} mm_args;
static int mm_run(void *a) {
    mm_args *m = a;
    return tn_cuda_matmul_forward(ctx, m->y, TN_BF16, m->x, m->w, TN_BF16, NULL, m->T, m->in, m->out, 0);
}

typedef struct {
    float *out, *lse, *q, *k, *v;
    int B, S, nh, nkv, hd;
} at_args;
static int at_run(void *a) {
    at_args *m = a;
    return tn_cuda_attention_forward(ctx, m->out, m->lse, m->q, m->k, m->v, m->B, m->S, m->nh, m->nkv, m->hd,
                                     1.0f / sqrtf((float)m->hd), 0, 0);
}

static void timings(void) {
    /* Llama-3.2-3B's MLP up projection on a batch of 4 x 2048 tokens: [8192, 3072] · [8192, 3072]ᵀ, bf16. */
    mm_args m = {.T = 8192, .in = 3072, .out = 8192};
    m.x = dput(hrand((int64_t)m.T * m.in, 1, 0, TN_BF16), (int64_t)m.T * m.in, TN_BF16);
    m.w = dput(hrand((int64_t)m.out * m.in, 0.02f, 0, TN_BF16), (int64_t)m.out * m.in, TN_BF16);
    m.y = dalloc((size_t)m.T * m.out * 2);
    double ms;
    CK(tn_cuda_time_ms(ctx, mm_run, &m, 10, 15, &ms));
    double flop = 2.0 * m.T * m.in * m.out;
    printf("timing: bf16 matmul %dx%d·%dx%dᵀ (fp32 accumulate, bf16 out): %.3f ms, %.0f TFLOP/s\n", m.T, m.in, m.out,
           m.in, ms, flop / ms / 1e9);
    release();
    /* Llama-3.2-3B attention, one sequence of 2048: 24 query heads, 8 kv heads, hd 128, fp32 (the simple kernel). */
    at_args a = {.B = 1, .S = 2048, .nh = 24, .nkv = 8, .hd = 128};
    int64_t nq = (int64_t)a.B * a.S * a.nh * a.hd, nk = (int64_t)a.B * a.S * a.nkv * a.hd;
    a.q = dput(hrand(nq, 1, 0, TN_F32), nq, TN_F32);
    a.k = dput(hrand(nk, 1, 0, TN_F32), nk, TN_F32);
    a.v = dput(hrand(nk, 1, 0, TN_F32), nk, TN_F32);
    a.out = dalloc((size_t)nq * 4), a.lse = dalloc((size_t)a.B * a.S * a.nh * 4);
    CK(tn_cuda_time_ms(ctx, at_run, &a, 3, 7, &ms));
    double aflop = 4.0 * a.B * a.nh * a.hd * ((double)a.S * (a.S + 1) / 2); /* QKᵀ and PV over the causal half */
    printf("timing: attention_forward (simple kernel) B1 S2048 24/8 hd128: %.3f ms, %.1f TFLOP/s\n", ms,
           aflop / ms / 1e9);
    release();
}

/* Flash attention timing: NSET input sets used in turn (so repeats do not run out of L2), CUDA events, median
 * of repeats (tn_cuda_time_ms). FLOPs counted for the causal half: forward 2·2·B·nh·S²·hd/2 (QKᵀ and PV),
 * backward 2.5 times that (QKᵀ, dO·Vᵀ, dV, dK, dQ). */
enum { FA_SETS = 2 };
typedef struct {
    void *q[FA_SETS], *k[FA_SETS], *v[FA_SETS], *out[FA_SETS], *dout[FA_SETS], *dq, *dk, *dv, *ws;
    float *lse[FA_SETS];
    int B, S, nh, nkv, hd, window, it;
    float cap;
} fa_args;
static int fa_fwd_run(void *a) {
    fa_args *f = a;
    int i = f->it++ % FA_SETS;
    return tn_cuda_flash_attention_forward(ctx, f->out[i], f->lse[i], f->q[i], f->k[i], f->v[i], f->B, f->S, f->nh,
                                           f->nkv, f->hd, 1.0f / sqrtf((float)f->hd), f->cap, f->window);
}
static int fa_bwd_run(void *a) {
    fa_args *f = a;
    int i = f->it++ % FA_SETS;
    return tn_cuda_flash_attention_backward(ctx, f->dq, f->dk, f->dv, f->dout[i], f->out[i], f->lse[i], f->q[i],
                                            f->k[i], f->v[i], f->ws, f->B, f->S, f->nh, f->nkv, f->hd,
                                            1.0f / sqrtf((float)f->hd), f->cap, f->window);
}

static void time_flash(const char *model, int B, int S, int nh, int nkv, int hd, float cap, int window) {
    fa_args f = {.B = B, .S = S, .nh = nh, .nkv = nkv, .hd = hd, .window = window, .cap = cap};
    int64_t T = (int64_t)B * S, nq = T * nh * hd, nk = T * nkv * hd;
    for (int i = 0; i < FA_SETS; i++) {
        f.q[i] = dput(hrand(nq, 1, 0, TN_BF16), nq, TN_BF16);
        f.k[i] = dput(hrand(nk, 1, 0, TN_BF16), nk, TN_BF16);
        f.v[i] = dput(hrand(nk, 1, 0, TN_BF16), nk, TN_BF16);
        f.dout[i] = dput(hrand(nq, 1, 0, TN_BF16), nq, TN_BF16);
        f.out[i] = dalloc((size_t)nq * 2), f.lse[i] = dalloc((size_t)T * nh * 4);
        f.it = i;
        CK(fa_fwd_run(&f));
    }
    f.dq = dalloc((size_t)nq * 2), f.dk = dalloc((size_t)nk * 2), f.dv = dalloc((size_t)nk * 2);
    f.ws = dalloc(tn_cuda_flash_attention_workspace(B, S, nh, nkv, hd));
    double fms, bms, flop = 2.0 * 2.0 * B * nh * (double)S * S * hd / 2;
    CK(tn_cuda_time_ms(ctx, fa_fwd_run, &f, 10, 15, &fms));
    CK(tn_cuda_time_ms(ctx, fa_bwd_run, &f, 10, 15, &bms));
    printf("timing: flash %-13s B%d S%d %d/%d hd%d c%g w%d: forward %.3f ms %.0f TFLOP/s, backward %.3f ms %.0f "
           "TFLOP/s\n",
           model, B, S, nh, nkv, hd, cap, window, fms, flop / fms / 1e9, bms, 2.5 * flop / bms / 1e9);
    release();
}

static void flash_timings(void) {
    time_flash("Llama-3.2-3B", 4, 2048, 24, 8, 128, 0, 0);
    time_flash("Gemma-2-2B", 4, 2048, 8, 4, 256, 50, 4096);
    time_flash("Qwen2.5-1.5B", 4, 2048, 12, 2, 128, 0, 0);
}

static void flash_checks(void) {
    check_flash_attention(2, 1000, 8, 2, 64, 0, 0, 1);
    check_flash_attention(2, 2048, 24, 8, 128, 0, 0, 1);
    check_flash_attention(2, 1000, 8, 4, 256, 50, 48, 20);
    check_flash_attention(2, 1000, 6, 2, 128, 0, 17, 1);
    check_flash_attention(1, 2048, 4, 4, 256, 50, 4096, 20);
}

int main(int argc, char **argv) {
    const char *env = getenv("TN_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    tn_rng_seed(&rng, seed, 7);
    if (tn_cuda_init(&ctx, 0)) {
        fprintf(stderr, "check_gpu: %s\n", tn_error());
        return 1;
    }
    size_t fr = 0, tot = 0;
    CK(tn_cuda_mem_info(ctx, &fr, &tot));
    printf("check_gpu: %s, %.1f GiB, seed %llu (TN_SEED=%llu replays)\n", tn_cuda_device_name(ctx), tot / 1073741824.0,
           (unsigned long long)seed, (unsigned long long)seed);
    /* --flash: only the flash-attention checks and timings; --time-flash: only its timings. */
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "--flash") || !strcmp(mode, "--time-flash")) {
        if (!strcmp(mode, "--flash")) flash_checks();
        flash_timings();
        printf("check_gpu: %d of %d checks passed on %s\n", checks - failures, checks, tn_cuda_device_name(ctx));
        tn_cuda_free(ctx);
        return failures ? 1 : 0;
    }

    check_matmul(TN_F32, TN_F32, 384, 640, 1712, 1);
    check_matmul(TN_BF16, TN_F32, 384, 640, 1712, 0);
    check_matmul(TN_BF16, TN_BF16, 256, 1024, 768, 0);
    for (int dt = 0; dt < 2; dt++) {
        check_rmsnorm((tn_dev_dtype)dt, 300, 640, 0);
        check_rmsnorm((tn_dev_dtype)dt, 77, 2304, 1);
        check_rope((tn_dev_dtype)dt, 300, 6, 128);
        check_glu((tn_dev_dtype)dt, 300 * 1712 + 5, 0);
        check_glu((tn_dev_dtype)dt, 300 * 1712 + 5, 1);
        check_softcap((tn_dev_dtype)dt, 100003, 30);
        check_embedding((tn_dev_dtype)dt, 300, 5003, 640);
    }
    check_cross_entropy(64, 50007, 0);
    check_cross_entropy(33, 32003, 30);
    check_adamw(1000003);
    check_attention(2, 200, 8, 2, 64, 0, 0);
    check_attention(1, 300, 4, 4, 128, 0, 0);
    check_attention(2, 160, 4, 2, 256, 50, 48);
    check_attention(1, 130, 6, 3, 32, 0, 17);
    flash_checks();
    timings();
    flash_timings();

    printf("check_gpu: %d of %d checks passed on %s\n", checks - failures, checks, tn_cuda_device_name(ctx));
    tn_cuda_free(ctx);
    return failures ? 1 : 0;
}
