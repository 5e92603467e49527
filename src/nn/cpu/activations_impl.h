/* activations_impl.h - the gated MLP activations (SwiGLU for Llama, Qwen2,
 * Mistral, Granite; GeGLU with tanh GELU for Gemma 2) and the soft-cap.
 * Elementwise, so any split among threads gives the same bits. Included by
 * ops_impl.h. */

/* SwiGLU forward: h = silu(g) · u, silu(g) = g · σ(g), σ(g) = 1 / (1 + e^−g). */
void FN(tn_swiglu_forward)(real *h, const real *g, const real *u, int64_t n) {
#pragma omp parallel for if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        real sig = 1 / (1 + EXP(-g[i]));
        h[i] = g[i] * sig * u[i];
    }
}

/* SwiGLU backward, with silu'(g) = σ(g) · (1 + g · (1 − σ(g))):
 *
 *     dg += dh · u · silu'(g)
 *     du += dh · silu(g)                                                  */
void FN(tn_swiglu_backward)(real *dg, real *du, const real *dh, const real *g, const real *u, int64_t n) {
#pragma omp parallel for if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        real sig = 1 / (1 + EXP(-g[i]));
        if (dg) dg[i] += dh[i] * u[i] * sig * (1 + g[i] * (1 - sig));
        if (du) du[i] += dh[i] * g[i] * sig;
    }
}

/* GELU with the tanh approximation (PyTorch's approximate="tanh"):
 *
 *     gelu(g) = ½ g (1 + tanh(a)),  a = √(2/π) (g + 0.044715 g³)
 *
 * computed through the identity ½(1 + tanh a) = σ(2a) as g · σ(2a): one exp
 * instead of tanh (four times slower in glibc), and as accurate - σ is
 * evaluated as 1/(1 + e^−2a), which has no cancellation for either sign of a
 * and saturates to 0 or 1 without overflow trouble. */
#define GELU_K ((real)0.7978845608028654) /* √(2/π) */
#define GELU_C ((real)0.044715)

static inline real gelu_sigma(real x) { return 1 / (1 + EXP(-2 * GELU_K * (x + GELU_C * x * x * x))); }

/* GeGLU forward: h = gelu(g) · u. */
void FN(tn_geglu_forward)(real *h, const real *g, const real *u, int64_t n) {
#pragma omp parallel for if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) h[i] = g[i] * gelu_sigma(g[i]) * u[i];
}

/* GeGLU backward. With σ = σ(2a) and 1 − tanh² a = 4σ(1 − σ):
 *
 *     gelu'(g) = ½(1 + tanh a) + ½ g (1 − tanh² a) · a'
 *              = σ + 2 g σ (1 − σ) · √(2/π) (1 + 3·0.044715 g²)
 *     dg += dh · u · gelu'(g)
 *     du += dh · gelu(g)                                                  */
void FN(tn_geglu_backward)(real *dg, real *du, const real *dh, const real *g, const real *u, int64_t n) {
#pragma omp parallel for if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        real x = g[i], sg = gelu_sigma(x);
        if (dg) {
            real d = sg + 2 * x * sg * (1 - sg) * GELU_K * (1 + 3 * GELU_C * x * x);
            dg[i] += dh[i] * u[i] * d;
        }
        if (du) du[i] += dh[i] * x * sg;
    }
}

/* Soft-cap (Gemma 2's final logits): y = c · tanh(x / c). In place allowed. */
void FN(tn_softcap_forward)(real *y, const real *x, real c, int64_t n) {
#pragma omp parallel for if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = c * TANH(x[i] / c);
}

/* Soft-cap backward from the output: tanh(x/c) = y/c, so
 *
 *     dx += dy · (1 − (y/c)²)
 *
 * dx must not be dy: it accumulates. (For the final logits before the loss,
 * tn_cross_entropy_softcap_forward_backward does both in place.) */
void FN(tn_softcap_backward)(real *dx, const real *dy, const real *y, real c, int64_t n) {
#pragma omp parallel for if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        real r = y[i] / c;
        dx[i] += dy[i] * (1 - r * r);
    }
}
