/* plan.h - the memory plan: every buffer a run will allocate, with its size,
 * computed before anything is loaded (ARCHITECTURE.md, decision 1).
 *
 * `tune check` prints these plans; the trainer carves its allocations from
 * the same functions (tn_plan_activation_layout gives the per-layer slots),
 * so the prediction and the allocation cannot drift apart. docs/memory-plan.md
 * explains every buffer. */
#ifndef TUNE_PLAN_H
#define TUNE_PLAN_H

#include <stdint.h>

#include "model/spec.h"

typedef enum { TN_QUANT_NONE, TN_QUANT_NF4, TN_QUANT_Q4_K, TN_QUANT_Q8_0 } tn_quant;
typedef enum { TN_PLAN_INFERENCE, TN_PLAN_LORA, TN_PLAN_QLORA, TN_PLAN_FULL, TN_PLAN_COUNT } tn_plan_kind;

typedef struct {
    int64_t seq;          /* --max-seq-length */
    int64_t batch;        /* --batch */
    int rank;             /* --rank */
    tn_targets targets;   /* --targets */
    int layers;           /* --layers: last N layers adapted (-1 = all) */
    int grad_checkpoint;  /* --grad-checkpoint: save layer inputs only, recompute */
    tn_quant qlora;       /* --qlora kind for the QLoRA plan */
    double dropout;       /* LoRA dropout: > 0 adds a [T, max(H, F)] buffer for dropped inputs */
} tn_plan_settings;

#define TN_PLAN_MAX_BUFFERS 24

typedef struct {
    char name[48];
    uint64_t bytes;
    char detail[160]; /* how the size is made up */
} tn_plan_buffer;

typedef struct {
    tn_plan_kind kind;
    int n;
    tn_plan_buffer buffers[TN_PLAN_MAX_BUFFERS];
    uint64_t total;
} tn_plan;

const char *tn_plan_kind_name(tn_plan_kind k);
const char *tn_quant_name(tn_quant q);
/* "nf4" -> TN_QUANT_NF4; -1 when unknown. */
int tn_quant_from_name(const char *name);
/* Bytes a quantized Linear of n elements takes (blocks and scales included). */
uint64_t tn_quant_bytes(tn_quant q, uint64_t n);

void tn_plan_default_settings(const tn_spec *spec, tn_plan_settings *s);
/* Fills `plan` for one kind of run. The weights are priced in `stored`, the
 * checkpoint's dtype. */
void tn_plan_make(const tn_spec *spec, tn_dtype stored, const tn_plan_settings *s, tn_plan_kind kind, tn_plan *plan);

/* Rows of the [rows x vocab] logits chunk the loss is computed in. */
int64_t tn_plan_loss_chunk_rows(const tn_spec *spec, int64_t tokens);

/* Activations saved by the forward pass of one layer, slot by slot (fp32
 * elements), for `tokens` = batch x seq tokens. The trainer allocates these
 * slots; the plan sums them. Returns the number of slots. */
#define TN_MAX_SLOTS 24
typedef enum {
    TN_SLOT_X,          /* layer input [T, H] */
    TN_SLOT_NORM1_RSTD, /* [T] */
    TN_SLOT_Q,          /* roped queries [T, Q] */
    TN_SLOT_K,          /* roped keys [T, KV] */
    TN_SLOT_V,          /* [T, KV] */
    TN_SLOT_LSE,        /* attention logsumexp [T, heads] */
    TN_SLOT_ATT,        /* attention output [T, Q] */
    TN_SLOT_MIXER_BRANCH,   /* o_proj output before the post norm [T, H] (Gemma 2) */
    TN_SLOT_MIXER_POST_RSTD,
    TN_SLOT_X_MID,      /* residual after the mixer [T, H] */
    TN_SLOT_NORM2_RSTD,
    TN_SLOT_GATE,       /* [T, F] */
    TN_SLOT_UP,         /* [T, F] */
    TN_SLOT_MLP_BRANCH, /* down_proj output before the post norm [T, H] (Gemma 2) */
    TN_SLOT_MLP_POST_RSTD,
    TN_SLOT_LORA_XA,    /* x·A of every adapted module, [T, r] each, in table order */
    TN_SLOT_MAMBA_IN, TN_SLOT_MAMBA_CONV, TN_SLOT_MAMBA_DT, TN_SLOT_MAMBA_STATES, TN_SLOT_MAMBA_SCAN,
    TN_SLOT_MAMBA_NORM, TN_SLOT_MAMBA_NORM_RSTD,
    TN_SLOT_ROUTER, TN_SLOT_EXPERTS_GATE_UP, TN_SLOT_EXPERTS_OUT,
    TN_SLOT_COUNT
} tn_slot_id;
typedef struct {
    tn_slot_id id;
    const char *name;
    uint64_t elements;
} tn_slot;
int tn_plan_activation_layout(const tn_spec *spec, const tn_plan_settings *s, int layer, tn_slot *slots);

/* Elements (fp32) of the buffers around the layers, shared by the plan and
 * the trainer's allocation: the final layer output, its normed copy and
 * rstd; the logits chunk (the final soft-cap is fused with the loss); the backward workspace: the residual gradient, two
 * [T, H] scratch buffers, the rebuilt normed input or gated activation
 * [T, max(H, F)], the widest intermediate gradients and the LoRA [T, r]
 * (and, with LoRA dropout, the dropped input [T, max(H, F)]). */
typedef struct {
    uint64_t final_norm, logits, workspace, widest, rebuilt;
} tn_plan_work;
void tn_plan_work_elements(const tn_spec *spec, const tn_plan_settings *s, tn_plan_work *w);

/* The fixed cost of the program itself (code, BLAS and OpenMP buffers,
 * allocator slack), priced in every plan. */
#define TN_RUNTIME_OVERHEAD (96ull << 20)

#endif
