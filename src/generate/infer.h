/* infer.h - inference with a KV cache for the dense families: the prompt in
 * chunks (matrix products through BLAS on one layer's fp32 weights at a
 * time), then one token at a time (matrix-vector products read straight from
 * the stored f32 / bf16 / f16 weights), with a LoRA adapter applied on the
 * fly. The same math as the training forward (train/forward.c); tests hold
 * them equal. */
#ifndef TUNE_INFER_H
#define TUNE_INFER_H

#include <stdint.h>

#include "train/model.h"

typedef struct {
    int max_ctx;     /* positions the cache holds */
    int pos;         /* tokens processed so far */
    float *k, *v;    /* [L][max_ctx][KV] */
    float *x, *xn, *q, *kk, *vv, *att, *o, *g, *u, *h, *logits, *xa;
    int chunk;       /* prompt tokens processed at once */
} tn_infer;

int tn_infer_init(tn_infer *s, const tn_model *m, const tn_lora *lora, int max_ctx);
void tn_infer_free(tn_infer *s);
void tn_infer_reset(tn_infer *s);
/* Runs n tokens at positions pos.. pos+n-1; on return s->logits [V] holds
 * the next-token logits after the last one (scaled and soft-capped as the
 * model does). */
int tn_infer_forward(tn_infer *s, tn_model *m, const tn_lora *lora, const int32_t *tokens, int n);

#endif
