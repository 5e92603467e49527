/* flash_attention.h - tensor-core flash attention for training on the CUDA
 * backend (src/nn/cuda/flash_attention.cu): bf16 storage, fp32 accumulation,
 * causal GQA with optional soft-cap and sliding window. Same semantics as the
 * fp32 tn_cuda_attention_forward/backward of nn/backend.h and the CPU
 * tn_attention_forward/backward of nn/ops.h (the reference), except that the
 * backward WRITES dq, dk, dv instead of accumulating. docs/cuda.md. */
#ifndef TUNE_FLASH_ATTENTION_H
#define TUNE_FLASH_ATTENTION_H

#include <stddef.h>

#include "nn/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Causal GQA attention, FlashAttention-2 style (never materialises [S, S]).
 * q [B·S, nh·hd], k, v [B·S, nkv·hd], out [B·S, nh·hd]: bf16, token-major rows (row t = b·S + s), head h at columns h·hd..
 * kv head of query head h: h / (nh / nkv). lse [B·S·nh] fp32, index t·nh + h: log-sum-exp of the (scaled, capped) scores, saved for backward.
 * scale multiplies q·k; softcap > 0: s = c·tanh(s/c) after scaling; window > 0: key j visible to query i iff i − window < j ≤ i.
 * hd in {64, 128, 256} (others: return tn_fail). */
int tn_cuda_flash_attention_forward(tn_cuda *ctx, void *out, float *lse, const void *q, const void *k, const void *v,
                                    int B, int S, int nh, int nkv, int hd, float scale, float softcap, int window);
/* Bytes of device workspace the backward needs for these sizes (fp32 dq accumulator, row sums D = rowsum(dO∘O), …). */
size_t tn_cuda_flash_attention_workspace(int B, int S, int nh, int nkv, int hd);
/* dq, dk, dv bf16, same layouts as q, k, v: WRITTEN (=), not accumulated. dout, out bf16; lse from the forward. */
int tn_cuda_flash_attention_backward(tn_cuda *ctx, void *dq, void *dk, void *dv, const void *dout, const void *out, const float *lse,
                                     const void *q, const void *k, const void *v, void *workspace,
                                     int B, int S, int nh, int nkv, int hd, float scale, float softcap, int window);

#ifdef __cplusplus
}
#endif

#endif
