/* infer.h - inference with a KV cache for the dense families: the prompt in
 * chunks (matrix products through BLAS on one layer's fp32 weights at a
 * time), then one token at a time (matrix-vector products read straight from
 * the stored f32 / bf16 / f16 weights or a GGUF's quantized blocks), with a
 * LoRA adapter applied on the fly. The same math as the training forward (train/forward.c); tests hold
 * them equal. */
#ifndef TUNE_INFER_H
#define TUNE_INFER_H

#include <stdint.h>

#include "io/gguf_read.h"
#include "train/model.h"

/* A matrix kept in its GGUF type (a quantized ggml type), read in place by
 * the single-token matrix-vector products (generate/qmatvec.h); perm_heads
 * > 0: the rows are in llama.cpp's interleaved-pair order of that many heads
 * (Llama's Q and K), put back to rotate-half after the product. */
typedef struct {
    const void *w;
    int type, perm_heads;
} tn_qmat;
typedef struct {
    tn_gguf g; /* the GGUF the matrices are in (zeroed for 16-bit rows of the model's own mapping) */
    tn_qmat mat[TN_MAX_LAYERS][TN_MOD_COUNT];
    tn_qmat head;
    int n; /* matrices attached, head included */
    int by_type[64]; /* of them, per ggml type */
    unsigned char whole[TN_MAX_LAYERS]; /* every matrix of layer l attached: decoding converts none of it */
} tn_qweights;

typedef struct {
    int max_ctx;     /* positions the cache holds */
    int pos;         /* tokens processed so far */
    float *k, *v;    /* [L][max_ctx][KV] */
    float *x, *xn, *q, *kk, *vv, *att, *o, *g, *u, *h, *logits, *xa;
    int chunk;       /* prompt tokens processed at once */
    tn_qweights *qw; /* quantized matrices of a GGUF (NULL: none) */
    float *qtmp;     /* [max(Q, KV)] rows before un-permuting */
} tn_infer;

/* Also attaches the model's layer matrices and head stored in BF16 or F16
 * (tn_infer_attach_16bit) unless TUNE_DECODE_FP32 is set. */
int tn_infer_init(tn_infer *s, const tn_model *m, const tn_lora *lora, int max_ctx);
/* Decoding one token then reads the layer matrices (and the head, and
 * Granite 4.0-H's experts) stored in BF16 or F16 in the model's own mapping
 * row by row (generate/qmatvec.h: widened to fp32 exactly), converting
 * nothing; the prompt keeps the fp32 layer workspace and BLAS. F32 tensors,
 * QLoRA-quantized bases, GGUF bases and full fine-tuning keep their paths.
 * *attached (may be NULL) gets the count of matrices, head included. */
int tn_infer_attach_16bit(tn_infer *s, const tn_model *m, int *attached);
void tn_infer_free(tn_infer *s);
/* Reads the model's layer matrices and head from the GGUF file it was
 * imported from (model/gguf_import.h) where they are quantized: decoding
 * one token then multiplies by the stored blocks instead of the fp32 copy
 * (prompt chunks keep the fp32 weights and BLAS). The GGUF stays mapped
 * until tn_infer_free. Matrices in a float type are left to the fp32 path.
 * *attached (may be NULL) gets the count. */
int tn_infer_attach_gguf(tn_infer *s, const tn_model *m, const char *gguf_path, int *attached);
void tn_infer_reset(tn_infer *s);
/* Runs n tokens at positions pos.. pos+n-1; on return s->logits [V] holds
 * the next-token logits after the last one (scaled and soft-capped as the
 * model does). */
int tn_infer_forward(tn_infer *s, tn_model *m, const tn_lora *lora, const int32_t *tokens, int n);

#endif
