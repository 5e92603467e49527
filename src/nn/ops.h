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

/* ---- Mamba2 mixer (Granite 4.0-H), cpu/mamba_impl.h ----------------------
 *
 * The mixer of transformers' GraniteMoeHybridMambaLayer (= BambaMixer,
 * torch_forward) as separate operations; docs/mamba2.md has the whole layer.
 * Symbols: B sequences of S tokens (T = B·S, token t = b·S + s), H heads of
 * P channels (d_inner = H·P), G groups (H/G heads each; head h reads group
 * h / (H/G)), N = d_state, K = d_conv, C = channels of the conv (d_inner +
 * 2·G·N). Inputs that are slices of a wider row (z, xBC and dt are columns of
 * in_proj's output; x, B and C columns of the conv's output) are read with a
 * row stride ld* (elements between consecutive tokens), and their gradients
 * are accumulated with the same stride, so no split is ever copied.
 * Backward accumulates (+=); NULL gradients are skipped. */
#define TN_MAMBA_CHUNK 256
/* Per-chunk states saved by the scan for backward: [B, ceil(S/chunk), H, P, N]. */
static inline int64_t tn_mamba_states_count(int B, int S, int H, int P, int N, int chunk) {
    return (int64_t)B * ((S + chunk - 1) / chunk) * H * P * N;
}

#define TN_MAMBA_OPS_DECLARE(real, sfx)                                                                               \
    /* Causal depthwise conv + SiLU: u[t,c] = Σ_{k<K} w[c,k]·x[t−K+1+k, c] + bias[c] (x = 0 before the sequence's   \
     * start), y[t,c] = silu(u). x rows of stride ldx, y [T, C] dense, w [C, K] (HF [C, 1, K]), bias may be NULL. */ \
    void tn_mamba_conv1d_forward##sfx(real *y, const real *x, int ldx, const real *w, const real *bias, int B,      \
                                      int S, int C, int K);                                                           \
    /* dx (stride ldx) += ..., dw [C, K] += ..., dbias [C] += ...; recomputes u from x. */                            \
    void tn_mamba_conv1d_backward##sfx(real *dx, real *dw, real *dbias, const real *dy, const real *x, int ldx,     \
                                       const real *w, const real *bias, int B, int S, int C, int K);                  \
    /* dt[t,h] = clamp(softplus(dt_raw[t,h] + dt_bias[h]), lo, hi); softplus(v) = v when v > 20 (PyTorch's          \
     * threshold), else log1p(e^v). dt_raw rows of stride ld, dt [T, H] dense. time_step_limit (0, inf) = no clamp. */ \
    void tn_mamba_dt_forward##sfx(real *dt, const real *dt_raw, int ld, const real *dt_bias, int T, int H, real lo,   \
                                  real hi);                                                                           \
    /* ddt_raw (stride ld) += g, ddt_bias += Σ_t g, g = ddt·σ(v) (1 when v > 20; 0 where the clamp bit). */           \
    void tn_mamba_dt_backward##sfx(real *ddt_raw, int ld, real *ddt_bias, const real *ddt, const real *dt_raw,        \
                                   const real *dt_bias, int T, int H, real lo, real hi);                              \
    /* Selective scan, per sequence b and head h (g its group), with A_h = −exp(A_log[h]), state h_t [P, N]:        \
     *     h_t = exp(dt_t·A_h)·h_{t−1} + (dt_t·x_t) ⊗ B_t,   h_{−1} = h0 (NULL: 0)                                    \
     *     y_t = h_t · C_t + D[h]·x_t                                                                                 \
     * x [T, H, P] with row stride ldx, B and C [T, G, N] with row stride ldbc, dt [T, H], y [T, H·P] dense.         \
     * states (NULL: not saved) receives the state at the end of every chunk of `chunk` positions,                   \
     * [B, ceil(S/chunk), H, P, N] (tn_mamba_states_count); its last chunk is the final state. h0 [B, H, P, N];     \
     * h0 == states is allowed when S ≤ chunk (generation: the cache updated in place, one token at a time). */      \
    void tn_mamba_scan_forward##sfx(real *y, real *states, const real *x, int ldx, const real *dt,                   \
                                    const real *A_log, const real *Bm, const real *Cm, int ldbc, const real *D,       \
                                    const real *h0, int B, int S, int H, int P, int G, int N, int chunk);             \
    /* Backward from the saved states: recomputes each chunk's states, then runs the adjoint recurrence backwards.   \
     * dx (stride ldx), ddt [T, H], dA_log [H], dB, dC (stride ldbc), dD [H]; same h0 as forward. */                 \
    void tn_mamba_scan_backward##sfx(real *dx, real *ddt, real *dA_log, real *dB, real *dC, real *dD,               \
                                     const real *dy, const real *states, const real *x, int ldx, const real *dt,     \
                                     const real *A_log, const real *Bm, const real *Cm, int ldbc, const real *D,      \
                                     const real *h0, int B, int S, int H, int P, int G, int N, int chunk);            \
    /* Gated RMSNorm in groups of group_size channels (C a multiple of it): g = x ⊙ silu(z),                          \
     * rstd[t,j] = 1/sqrt(mean_{c in group j} g_c² + eps), y = w ⊙ (g·rstd). x, y [T, C] dense, z rows of stride     \
     * ldz, rstd [T, C/group_size] saved for backward. transformers' torch path: group_size = C (one group, whatever \
     * n_groups is); mamba_ssm's kernel and llama.cpp: group_size = C/n_groups. Same when n_groups = 1. */           \
    void tn_mamba_gated_norm_forward##sfx(real *y, real *rstd, const real *x, const real *z, int ldz, const real *w, \
                                          int T, int C, int group_size, real eps);                                    \
    /* dx [T, C] += ..., dz (stride ldz) += ..., dw [C] += Σ_t dy ⊙ g·rstd */                                          \
    void tn_mamba_gated_norm_backward##sfx(real *dx, real *dz, real *dw, const real *dy, const real *x,             \
                                           const real *z, int ldz, const real *w, const real *rstd, int T, int C,     \
                                           int group_size);

TN_MAMBA_OPS_DECLARE(float, )
TN_MAMBA_OPS_DECLARE(double, _d)

#endif
