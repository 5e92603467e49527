/* gpu_plan.c - see gpu_plan.h. */
#include "plan/gpu_plan.h"

#include <string.h>

#include "nn/flash_plan.h"
#include "train/model.h" /* tn_module_applies, tn_module_dims */

uint64_t tn_gpu_align(uint64_t x) { return (x + 255) & ~(uint64_t)255; }

/* bytes of each slot for T tokens: bf16 activations, fp32 statistics */
void tn_gpu_slot_sizes(const tn_spec *s, int T, int nmods, int r, uint64_t bb[S_BF16_COUNT], uint64_t fb[F_COUNT]) {
    int64_t H = s->hidden, Q = s->n_heads * s->head_dim, KV = s->n_kv_heads * s->head_dim, F = s->intermediate;
    int sw = s->family->sandwich_norms;
    memset(bb, 0, sizeof(uint64_t) * S_BF16_COUNT);
    memset(fb, 0, sizeof(uint64_t) * F_COUNT);
    bb[S_X] = (uint64_t)T * H * 2;
    bb[S_Q] = (uint64_t)T * Q * 2, bb[S_K] = bb[S_V] = (uint64_t)T * KV * 2, bb[S_ATT] = (uint64_t)T * Q * 2;
    bb[S_MID] = (uint64_t)T * H * 2, bb[S_G] = bb[S_U] = (uint64_t)T * F * 2;
    if (sw) bb[S_MIXB] = bb[S_MLPB] = (uint64_t)T * H * 2;
    bb[S_XA] = (uint64_t)T * r * nmods * 2;
    fb[F_RSTD1] = fb[F_RSTD2] = (uint64_t)T * 4;
    fb[F_LSE] = (uint64_t)T * s->n_heads * 4;
    if (sw) fb[F_RSTD_PM] = fb[F_RSTD_PF] = (uint64_t)T * 4;
}

uint64_t tn_gpu_slots_bytes(const uint64_t bb[S_BF16_COUNT], const uint64_t fb[F_COUNT], int x_only) {
    uint64_t t = 0;
    for (int i = 0; i < S_BF16_COUNT; i++)
        if (!x_only || i == S_X) t += tn_gpu_align(bb[i]);
    for (int i = 0; i < F_COUNT && !x_only; i++) t += tn_gpu_align(fb[i]);
    return t;
}

int tn_gpu_chunk_rows(const tn_spec *s, int T) {
    int64_t rows = ((int64_t)64 << 20) / (int64_t)s->vocab_size; /* ~128 MiB of bf16 logits */
    if (rows < 64) rows = 64;
    if (rows > T) rows = T;
    return (int)rows;
}

void tn_gpu_work_sizes(const tn_spec *s, int B, int S, int r, int flash, uint64_t w[W_COUNT]) {
    int T = B * S;
    int64_t H = s->hidden, Q = s->n_heads * s->head_dim, KV = s->n_kv_heads * s->head_dim, F = s->intermediate, V = s->vocab_size;
    int64_t wide = H > F ? H : F;
    int64_t big = F > 2 * Q + 2 * KV ? F : 2 * Q + 2 * KV; /* dh (then du), or datt, dq, dk, dv */
    memset(w, 0, sizeof(uint64_t) * W_COUNT);
    w[W_XN] = (uint64_t)T * H * 2;
    w[W_H] = (uint64_t)T * wide * 2;
    w[W_DRES] = w[W_DBRANCH] = w[W_DPRE] = (uint64_t)T * H * 2;
    w[W_DBIG] = (uint64_t)T * big * 2;
    w[W_DXA] = (uint64_t)T * LORA_GROUP_MAX * (r > 0 ? r : 1) * 2; /* dxa of a group, [T, n·r] */
    w[W_FN] = (uint64_t)T * H * 2;
    w[W_LOGITS] = (uint64_t)tn_gpu_chunk_rows(s, T) * V * 2;
    w[W_FRSTD] = w[W_LOSSES] = w[W_RSTD] = (uint64_t)T * 4;
    w[W_IDS] = w[W_LABELS] = w[W_POS] = (uint64_t)T * 4;
    if (flash) w[W_FLASH] = tn_flash_workspace_bytes(B, S, (int)s->n_heads, (int)s->n_kv_heads, (int)s->head_dim);
    /* fp32 attention: q, out, dq, dout [T, Q] and k, v, dk, dv [T, KV] */
    if (!flash) w[W_F32ATT] = (uint64_t)T * (4 * Q + 4 * KV) * 4;
}

int tn_gpu_flash_head(const tn_spec *s) { return s->head_dim == 64 || s->head_dim == 128 || s->head_dim == 256; }

/* The base in bf16 (biases fp32 where the family has them), the norms, the
 * embeddings (and the head unless tied), the rope tables for seq positions. */
static uint64_t weights_bytes(const tn_spec *s, int seq) {
    uint64_t t = 0;
    for (int l = 0; l < s->n_layers; l++) {
        for (int k = 0; k < TN_MOD_COUNT; k++) {
            if (!tn_module_applies(s, l, (tn_module)k)) continue;
            int in, out;
            tn_module_dims(s, (tn_module)k, &in, &out);
            t += tn_gpu_align((uint64_t)in * out * 2) + tn_gpu_align((uint64_t)out * 4); /* bias priced whether present or not */
        }
        t += 4 * tn_gpu_align((uint64_t)s->hidden * 2);
    }
    uint64_t e = tn_gpu_align((uint64_t)s->vocab_size * s->hidden * 2);
    t += e + (s->tied_embeddings ? 0 : e) + tn_gpu_align((uint64_t)s->hidden * 2);
    t += 2 * tn_gpu_align((uint64_t)seq * (s->head_dim / 2) * 4);
    return t;
}

void tn_gpu_plan_make(const tn_spec *s, const tn_gpu_plan_in *in, int checkpointed, tn_gpu_plan *p) {
    int T = in->batch * in->seq, L = (int)s->n_layers;
    memset(p, 0, sizeof *p);
    p->weights = weights_bytes(s, in->seq);
    p->lora = in->lora_params ? 4 * tn_gpu_align((uint64_t)in->lora_params * 4) + tn_gpu_align((uint64_t)in->lora_params * 2) : 0;
    uint64_t bb[S_BF16_COUNT], fb[F_COUNT], w[W_COUNT];
    tn_gpu_slot_sizes(s, T, in->mods_max, in->rank, bb, fb);
    p->saved_per_layer = tn_gpu_slots_bytes(bb, fb, 0);
    p->checkpointed_per_layer = tn_gpu_slots_bytes(bb, fb, 1);
    tn_gpu_work_sizes(s, in->batch, in->seq, in->rank, in->flash, w);
    uint64_t shared = tn_gpu_align((uint64_t)T * s->hidden * 2); /* the final norm's input */
    for (int i = 0; i < W_COUNT; i++) shared += tn_gpu_align(w[i]);
    if (checkpointed > 0) shared += p->saved_per_layer; /* the scratch set the checkpointed layers share */
    p->shared = shared;
    if (checkpointed > L) checkpointed = L;
    p->total = p->weights + p->lora + (uint64_t)checkpointed * p->checkpointed_per_layer +
               (uint64_t)(L - checkpointed) * p->saved_per_layer + p->shared;
}

int tn_gpu_plan_fit(const tn_spec *s, const tn_gpu_plan_in *in, uint64_t room, int activations_only, tn_gpu_plan *p) {
    for (int ck = 0; ck <= (int)s->n_layers; ck++) {
        tn_gpu_plan_make(s, in, ck, p);
        uint64_t need = activations_only ? p->total - p->weights - p->lora : p->total;
        if (need <= room) return ck;
    }
    return -1;
}
