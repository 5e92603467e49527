/* ops.h - the operations of the model, each a _forward and a _backward, on
 * the CPU in fp32 (the reference backend; CUDA mirrors this interface later).
 *
 * Symbols: T = tokens in the batch (B sequences x S positions, sequence-major:
 * token t = b * S + s), C = channels, V = vocabulary, nh / nkv = query / key-
 * value heads, hd = head dim. Activations are row-major [T, C]; weights are
 * PyTorch's [out, in], so a Linear is y = x · Wᵀ.
 *
 * Conventions: backward functions ACCUMULATE (+=) into their input gradients
 * (dx, dq, ...) and into weight gradients, so residual branches and shared
 * inputs sum for free; callers zero the buffers they own. A NULL gradient
 * pointer means "not needed" (e.g. the frozen base's dW in LoRA training).
 *
 * Every function exists for float (suffix-less) and double (_d suffix, used
 * by the finite-difference gradient tests); the two are one source compiled
 * twice (cpu/ops_impl.h). */
#ifndef TUNE_OPS_H
#define TUNE_OPS_H

#include <stdint.h>

#define TN_IGNORE_INDEX (-100)

/* Rope table for positions [0, max_pos): cos/sin [max_pos, hd/2] of
 * angle = pos * inv_freq[i], inv_freq[i] = theta^(-2i/hd), optionally
 * rescaled as Llama 3 does (factor, low/high freq factors, original max
 * positions: wavelengths above orig/low are divided by factor, below
 * orig/high kept, smooth in between) or linearly (positions / factor). */
typedef struct {
    int max_pos, half;
    float *cos, *sin;     /* [max_pos * half] */
    double *cos_d, *sin_d; /* same in double, for the tests */
} tn_rope_table;

typedef enum { TN_ROPE_SCALE_NONE, TN_ROPE_SCALE_LLAMA3, TN_ROPE_SCALE_LINEAR } tn_rope_scaling;
typedef struct {
    double theta;
    tn_rope_scaling scaling;
    double factor, low_freq_factor, high_freq_factor;
    int original_max_pos;
} tn_rope_params;

int tn_rope_table_init(tn_rope_table *t, int max_pos, int head_dim, const tn_rope_params *p);
void tn_rope_table_free(tn_rope_table *t);
/* The inverse frequencies after scaling, [hd/2] (GGUF's rope_freqs holds
 * the per-pair factors derived from these). */
void tn_rope_inv_freq(double *inv_freq, int head_dim, const tn_rope_params *p);

#define TN_OPS_DECLARE(real, sfx)                                                                                     \
    /* y[T,out] = x[T,in] · W[out,in]ᵀ (+ bias[out]); accumulate: y += instead of = */                            \
    void tn_matmul_forward##sfx(real *y, const real *x, const real *w, const real *bias, int T, int in, int out,     \
                                int accumulate);                                                                      \
    /* dx += dy · W; dw += dyᵀ · x; dbias += Σ_t dy */                                                                \
    void tn_matmul_backward##sfx(real *dx, real *dw, real *dbias, const real *dy, const real *x, const real *w, int T, \
                                 int in, int out);                                                                    \
    /* rstd[t] = 1/sqrt(mean_c x² + eps); y = x · rstd · g, g = w or (1 + w) (one_plus) */                            \
    void tn_rmsnorm_forward##sfx(real *y, real *rstd, const real *x, const real *w, int T, int C, real eps,          \
                                 int one_plus);                                                                       \
    /* dx += rstd·(dy⊙g − x̂·mean(dy⊙g⊙x̂)), x̂ = x·rstd; dw += Σ_t dy⊙x̂ */                                              \
    void tn_rmsnorm_backward##sfx(real *dx, real *dw, const real *dy, const real *x, const real *w, const real *rstd, \
                                  int T, int C, int one_plus);                                                        \
    /* In place on x[T, n_heads*hd], Hugging Face's rotate-half layout: for i < hd/2,                                 \
     * (x_i, x_{i+hd/2}) -> (x_i cos − x_{i+hd/2} sin, x_{i+hd/2} cos + x_i sin), angle of position pos[t] */         \
    void tn_rope_forward##sfx(real *x, const tn_rope_table *rt, const int32_t *pos, int T, int n_heads, int hd);      \
    /* In place on dx: the transposed rotation (angle −θ) */                                                           \
    void tn_rope_backward##sfx(real *dx, const tn_rope_table *rt, const int32_t *pos, int T, int n_heads, int hd);    \
    /* Causal attention, B sequences of S tokens. q [T, nh*hd], k and v [T, nkv*hd], query head h uses kv head        \
     * h / (nh/nkv). s_ij = scale·q_i·k_j; if softcap > 0, s = softcap·tanh(s/softcap); j ≤ i, and i − j < window    \
     * when window > 0; p = softmax_j(s); out_i = Σ_j p_ij v_j. Saves lse[t*nh + h] = log Σ_j exp(s_ij) so backward \
     * rebuilds p row by row; no [S, S] buffer is kept. */                                                            \
    void tn_attention_forward##sfx(real *out, real *lse, const real *q, const real *k, const real *v, int B, int S,   \
                                   int nh, int nkv, int hd, real scale, real softcap, int window);                    \
    void tn_attention_backward##sfx(real *dq, real *dk, real *dv, const real *dout, const real *out,                \
                                    const real *lse, const real *q, const real *k, const real *v, int B, int S,       \
                                    int nh, int nkv, int hd, real scale, real softcap, int window);                   \
    /* h = silu(g)·u, silu(g) = g·σ(g) */                                                                             \
    void tn_swiglu_forward##sfx(real *h, const real *g, const real *u, int64_t n);                                    \
    void tn_swiglu_backward##sfx(real *dg, real *du, const real *dh, const real *g, const real *u, int64_t n);      \
    /* h = gelu_tanh(g)·u, gelu_tanh(g) = ½g(1 + tanh(√(2/π)(g + 0.044715g³))) */                                     \
    void tn_geglu_forward##sfx(real *h, const real *g, const real *u, int64_t n);                                     \
    void tn_geglu_backward##sfx(real *dg, real *du, const real *dh, const real *g, const real *u, int64_t n);       \
    /* y = c·tanh(x/c), in place allowed */                                                                           \
    void tn_softcap_forward##sfx(real *y, const real *x, real c, int64_t n);                                          \
    /* dx += dy·(1 − (y/c)²), from the output y */                                                                    \
    void tn_softcap_backward##sfx(real *dx, const real *dy, const real *y, real c, int64_t n);                        \
    /* y[t] = scale·E[ids[t]] (E [V, C]) */                                                                           \
    void tn_embedding_forward##sfx(real *y, const real *e, const int32_t *ids, int T, int C, real scale);            \
    /* dE[ids[t]] += scale·dy[t] */                                                                                   \
    void tn_embedding_backward##sfx(real *de, const real *dy, const int32_t *ids, int T, int C, real scale);        \
    /* Cross-entropy of a chunk of rows, in place: on entry logits [rows, V] (already scaled and soft-capped by the   \
     * caller's ops); on exit the gradient grad_scale·(softmax − onehot) for rows whose label ≠ TN_IGNORE_INDEX,      \
     * zero for ignored rows. Returns Σ over counted rows of −log softmax[label]; *counted gets their number. */       \
    double tn_cross_entropy_forward_backward##sfx(real *logits, const int32_t *labels, int rows, int V,             \
                                                  real grad_scale, int *counted);                                 \
    /* The same behind a soft-cap (Gemma 2's final logits), fused: on entry raw logits z; the loss is taken on        \
     * s = c·tanh(z/c), and on exit the buffer holds the gradient with respect to z,                                 \
     * grad_scale·(softmax(s) − onehot)·(1 − (s/c)²), so no copy of the capped chunk is needed. softcap ≤ 0: no cap. */ \
    double tn_cross_entropy_softcap_forward_backward##sfx(real *logits, const int32_t *labels, int rows, int V,     \
                                                          real softcap, real grad_scale, int *counted);

TN_OPS_DECLARE(float, )
TN_OPS_DECLARE(double, _d)

#endif
