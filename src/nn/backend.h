/* backend.h - the device side of the operations of nn/ops.h: memory, copies,
 * one stream, and each operation on device pointers, so that the model code
 * can be written once against one interface (ARCHITECTURE.md: model code once,
 * kernels per backend). The CPU backend is nn/ops.h itself (host pointers,
 * fp32, the reference); this header is the CUDA backend (the .cu files of src/nn/cuda,
 * built with `make CUDA=1`). Without CUDA=1 nothing here is linked (callers
 * guard on TN_CUDA, which `make CUDA=1` defines).
 *
 * Same symbols and conventions as ops.h: T tokens, C channels, V vocabulary,
 * nh / nkv heads, hd head dim; activations row-major [T, C]; weights [out, in]
 * (y = x · Wᵀ); backward functions ACCUMULATE (+=) into gradients; a NULL
 * gradient is skipped. Every pointer passed to a tn_cuda_ operation is device
 * memory (tn_cuda_alloc) unless its comment says host. Work is queued on the
 * context's stream and runs asynchronously: results are visible to the host
 * after tn_cuda_download (which waits) or tn_cuda_sync.
 *
 * Element types: activations marked `void *` are stored as `dt` (TN_F32 or
 * TN_BF16: bfloat16 storage), and every kernel computes and accumulates in
 * fp32. Per-row statistics (rstd, lse), losses, the cross-entropy chunk and
 * everything the optimizer touches (LoRA master weights, gradients, moments)
 * are fp32. Attention is fp32 for now (docs/cuda.md).
 *
 * Errors: every function returns 0, or -1 after tn_fail() with the file, line
 * and CUDA / cuBLASLt message (launch errors are checked after each launch). */
#ifndef TUNE_BACKEND_H
#define TUNE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { TN_F32 = 0, TN_BF16 = 1 } tn_dev_dtype;
static inline size_t tn_dev_dtype_size(tn_dev_dtype dt) { return dt == TN_BF16 ? 2 : 4; }

/* One device, one stream, one cuBLASLt handle and its workspace. */
typedef struct tn_cuda tn_cuda;

int tn_cuda_init(tn_cuda **out, int device);
void tn_cuda_free(tn_cuda *ctx);
/* The device's name ("NVIDIA H100 80GB HBM3"); memory free and total (cudaMemGetInfo). */
const char *tn_cuda_device_name(const tn_cuda *ctx);
int tn_cuda_mem_info(tn_cuda *ctx, size_t *free_bytes, size_t *total_bytes);

int tn_cuda_alloc(tn_cuda *ctx, void **p, size_t bytes, const char *what);
void tn_cuda_dfree(void *p);
/* Host -> device and device -> host (the latter waits for the stream). */
int tn_cuda_upload(tn_cuda *ctx, void *dst, const void *src, size_t bytes);
int tn_cuda_download(tn_cuda *ctx, void *dst, const void *src, size_t bytes);
int tn_cuda_memset(tn_cuda *ctx, void *p, int byte, size_t bytes);
int tn_cuda_sync(tn_cuda *ctx);
/* fp32 <-> bf16 conversion on the device (round to nearest even), n elements. */
int tn_cuda_to_bf16(tn_cuda *ctx, void *dst, const float *src, int64_t n);
int tn_cuda_to_f32(tn_cuda *ctx, float *dst, const void *src, int64_t n);
/* Timing on the stream: elapsed milliseconds of fn(arg) run `iters` times, median of `reps` repeats. */
int tn_cuda_time_ms(tn_cuda *ctx, int (*fn)(void *), void *arg, int iters, int reps, double *ms);

/* ---- operations ------------------------------------------------------- */

/* y[T,out] = x[T,in] · W[out,in]ᵀ (+ bias[out], fp32, only when y is fp32); accumulate: y += instead of =.
 * x, w of type in_dt; y of type out_dt (bf16 x bf16 -> fp32 or bf16; fp32 x fp32 -> fp32, true fp32 math). */
int tn_cuda_matmul_forward(tn_cuda *ctx, void *y, tn_dev_dtype out_dt, const void *x, const void *w, tn_dev_dtype in_dt,
                           const float *bias, int T, int in, int out, int accumulate);
/* dx[T,in] += dy · W; dw[out,in] += dyᵀ · x (NULL: skipped). dy, x, w of type in_dt; dx, dw of type out_dt. */
int tn_cuda_matmul_backward(tn_cuda *ctx, void *dx, void *dw, tn_dev_dtype out_dt, const void *dy, const void *x,
                            const void *w, tn_dev_dtype in_dt, int T, int in, int out);

/* rstd[t] = 1/sqrt(mean_c x² + eps) (fp32); y = x·rstd·g, g = w or 1 + w (one_plus); x, y, w of type dt. */
int tn_cuda_rmsnorm_forward(tn_cuda *ctx, void *y, float *rstd, const void *x, const void *w, tn_dev_dtype dt, int T,
                            int C, float eps, int one_plus);
/* dx += rstd·(dy⊙g − x̂·mean(dy⊙g⊙x̂)) (dt), dw += Σ_t dy⊙x̂ (fp32). */
int tn_cuda_rmsnorm_backward(tn_cuda *ctx, void *dx, float *dw, const void *dy, const void *x, const void *w,
                             const float *rstd, tn_dev_dtype dt, int T, int C, int one_plus);

/* In place on x [T, n_heads·hd] (rotate-half layout); cos, sin: the table of ops.h's tn_rope_table copied to the
 * device, [max_pos, hd/2] fp32; pos [T] int32 on the device. Backward: the rotation by −θ, in place on dx. */
int tn_cuda_rope_forward(tn_cuda *ctx, void *x, tn_dev_dtype dt, const float *cos, const float *sin, const int32_t *pos,
                         int T, int n_heads, int hd);
int tn_cuda_rope_backward(tn_cuda *ctx, void *dx, tn_dev_dtype dt, const float *cos, const float *sin,
                          const int32_t *pos, int T, int n_heads, int hd);

/* h = silu(g)·u (swiglu) or gelu_tanh(g)·u (geglu); backward dg += ..., du += ... (NULL: skipped). */
int tn_cuda_swiglu_forward(tn_cuda *ctx, void *h, const void *g, const void *u, tn_dev_dtype dt, int64_t n);
int tn_cuda_swiglu_backward(tn_cuda *ctx, void *dg, void *du, const void *dh, const void *g, const void *u,
                            tn_dev_dtype dt, int64_t n);
int tn_cuda_geglu_forward(tn_cuda *ctx, void *h, const void *g, const void *u, tn_dev_dtype dt, int64_t n);
int tn_cuda_geglu_backward(tn_cuda *ctx, void *dg, void *du, const void *dh, const void *g, const void *u,
                           tn_dev_dtype dt, int64_t n);

/* dg = dh·u·act'(g), du = dh·act(g) WRITTEN (gelu: geglu, else swiglu); du may be dh itself. */
int tn_cuda_glu_backward_write(tn_cuda *ctx, int gelu, void *dg, void *du, const void *dh, const void *g, const void *u,
                               tn_dev_dtype dt, int64_t n);

/* y = c·tanh(x/c) (in place allowed); backward dx += dy·(1 − (y/c)²) from the output y. */
int tn_cuda_softcap_forward(tn_cuda *ctx, void *y, const void *x, tn_dev_dtype dt, float c, int64_t n);
int tn_cuda_softcap_backward(tn_cuda *ctx, void *dx, const void *dy, const void *y, tn_dev_dtype dt, float c, int64_t n);

/* y[t] = scale·E[ids[t]], E [V, C]; ids [T] int32 on the device. */
int tn_cuda_embedding_forward(tn_cuda *ctx, void *y, const void *e, const int32_t *ids, tn_dev_dtype dt, int T, int C,
                              float scale);

/* Cross-entropy of a chunk of rows, in place on fp32 logits [rows, V]: on exit grad_scale·(softmax(s) − onehot)
 * (times 1 − (s/c)² when softcap c > 0, s = c·tanh(z/c)), zero for rows labelled TN_IGNORE_INDEX. losses[r]
 * (fp32, device) receives −log softmax(s)_label, 0 for ignored rows; the caller sums them. */
int tn_cuda_cross_entropy_forward_backward(tn_cuda *ctx, float *logits, float *losses, const int32_t *labels,
                                           int rows, int V, float softcap, float grad_scale);

/* Causal GQA attention, as ops.h's tn_attention_forward/backward, fp32: q [T, nh·hd], k, v [T, nkv·hd], out
 * [T, nh·hd], lse [T·nh] saved for backward; window > 0 limits i − j < window; softcap > 0 caps the scores.
 * hd ≤ 256 and a multiple of 32. Never materialises [S, S]. dq, dk, dv accumulate. */
int tn_cuda_attention_forward(tn_cuda *ctx, float *out, float *lse, const float *q, const float *k, const float *v,
                              int B, int S, int nh, int nkv, int hd, float scale, float softcap, int window);
int tn_cuda_attention_backward(tn_cuda *ctx, float *dq, float *dk, float *dv, const float *dout, const float *out,
                               const float *lse, const float *q, const float *k, const float *v, int B, int S,
                               int nh, int nkv, int hd, float scale, float softcap, int window);

/* AdamW as train/optim.h's tn_adamw_update, one kernel over all n parameters (fp32 p, g, m, v); step is the
 * update's number counted from 1 (for the bias corrections). */
int tn_cuda_adamw_update(tn_cuda *ctx, float *p, const float *g, float *m, float *v, int64_t n, double lr,
                         double beta1, double beta2, double eps, double weight_decay, int64_t step);


/* ---- products with scalars, and the elementwise pieces of a layer -------- */

/* y = alpha·x·Wᵀ + beta·y; dx = alpha·dy·W + beta·dx; dw = alpha·dyᵀ·x + beta·dw (shapes as the matmul above;
 * beta = 0 overwrites whatever the output held). */
int tn_cuda_gemm_xwt(tn_cuda *ctx, void *y, tn_dev_dtype out_dt, const void *x, const void *w, tn_dev_dtype in_dt,
                     int T, int in, int out, float alpha, float beta);
int tn_cuda_gemm_dyw(tn_cuda *ctx, void *dx, tn_dev_dtype out_dt, const void *dy, const void *w, tn_dev_dtype in_dt,
                     int T, int in, int out, float alpha, float beta);
int tn_cuda_gemm_dytx(tn_cuda *ctx, void *dw, tn_dev_dtype out_dt, const void *dy, const void *x, tn_dev_dtype in_dt,
                      int T, int in, int out, float alpha, float beta);
/* The same three with each operand's row stride (row-major leading dimension, in elements, at least its row's
 * length), for column blocks of wider buffers (the LoRA products of modules that share an input):
 *   y[T,out] (ldy) = alpha·x[T,in] (ldx)·W[out,in] (ldw)ᵀ + beta·y
 *   dx[T,in] (lddx) = alpha·dy[T,out] (lddy)·W[out,in] (ldw) + beta·dx
 *   dw[out,in] (lddw) = alpha·dy[T,out] (lddy)ᵀ·x[T,in] (ldx) + beta·dw
 * Elements outside each operand's columns are neither read nor written. */
int tn_cuda_gemm_xwt_ld(tn_cuda *ctx, void *y, int ldy, tn_dev_dtype out_dt, const void *x, int ldx, const void *w, int ldw,
                        tn_dev_dtype in_dt, int T, int in, int out, float alpha, float beta);
int tn_cuda_gemm_dyw_ld(tn_cuda *ctx, void *dx, int lddx, tn_dev_dtype out_dt, const void *dy, int lddy, const void *w, int ldw,
                        tn_dev_dtype in_dt, int T, int in, int out, float alpha, float beta);
int tn_cuda_gemm_dytx_ld(tn_cuda *ctx, void *dw, int lddw, tn_dev_dtype out_dt, const void *dy, int lddy, const void *x, int ldx,
                         tn_dev_dtype in_dt, int T, int in, int out, float alpha, float beta);

/* y = alpha·x + beta·y over n elements of type dt (beta = 0: y is not read). */
int tn_cuda_axpby(tn_cuda *ctx, void *y, const void *x, float alpha, float beta, tn_dev_dtype dt, int64_t n);
/* out = a + c·b (the residual add with Granite's multiplier; out may be a). */
int tn_cuda_residual_forward(tn_cuda *ctx, void *out, const void *a, const void *b, float c, tn_dev_dtype dt, int64_t n);
/* y[t, j] += bias[j] (fp32 bias), y [T, C] of type dt. */
int tn_cuda_add_bias(tn_cuda *ctx, void *y, const float *bias, tn_dev_dtype dt, int T, int C);
/* *out (host) = Σ x² over n fp32 elements, in double across blocks (waits for the stream). */
int tn_cuda_sumsq(tn_cuda *ctx, const float *x, int64_t n, double *out);
/* x *= s, fp32, in place. */
int tn_cuda_scale_f32(tn_cuda *ctx, float *x, float s, int64_t n);
/* Cross-entropy of a chunk as tn_cuda_cross_entropy_forward_backward, on bf16 logits (computed in fp32), the
 * gradient written over them in bf16. */
int tn_cuda_cross_entropy_bf16(tn_cuda *ctx, void *logits, float *losses, const int32_t *labels, int rows, int V,
                               float softcap, float grad_scale);
/* *out (host) = Σ x over n fp32 elements (waits for the stream). */
int tn_cuda_sum(tn_cuda *ctx, const float *x, int64_t n, double *out);

/* A profiler for whole steps: begin/end bracket queued work of a category
 * (events on the stream; a begin inside an open bracket is ignored);
 * collect waits and adds each category's milliseconds into ms[cat]. */
int tn_cuda_prof_begin(tn_cuda *ctx, int cat);
int tn_cuda_prof_end(tn_cuda *ctx);
int tn_cuda_prof_collect(tn_cuda *ctx, double *ms, int n_cats);

#ifdef __cplusplus
}
#endif

#endif
