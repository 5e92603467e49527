/* forward_internal.h - what forward.c shares with hybrid.c (Granite 4.0-H
 * layers): the batch dimensions, the Linear with LoRA, module lookups. */
#ifndef TUNE_FORWARD_INTERNAL_H
#define TUNE_FORWARD_INTERNAL_H

#include "train/model.h"

typedef struct {
    const tn_spec *s;
    int T, B, S, H, Q, KV, F;
    const int32_t *pos;
} dims;

void tn_train_linear_forward(float *y, const float *x, const float *w, const float *b, int T, int in, int out, const tn_lora *lora,
                             const tn_lora_module *mod, float *xa, float *tmp, float *dropped);
void tn_train_linear_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w, int T, int in, int out,
                              const tn_lora *lora, const tn_lora_module *mod, const float *xa, float *tmp, int want_grads, float *dropped);
const tn_lora_module *tn_train_lora_mod(const tn_lora *lora, int l, tn_module k);
float *tn_train_xa_slot(const tn_lora *lora, float *base, int l, tn_module k, int T);

int tn_hybrid_layer_forward(tn_model *m, const tn_lora *lora, tn_activations *a, int l, const dims *d);
int tn_hybrid_layer_backward(tn_model *m, tn_lora *lora, tn_activations *a, int l, const dims *d, int want_grads);

#endif
