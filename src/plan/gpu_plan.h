/* gpu_plan.h - the device memory of LoRA training with `--device cuda`
 * (train/gpu.c), from the spec alone: the frozen base in bf16, the LoRA
 * state (fp32 weights, gradients, two AdamW moments, bf16 copies), the
 * activations each layer saves (or only its input when checkpointed), and
 * the workspaces every layer shares. train/gpu.c carves its one activation
 * allocation from exactly these sizes, so the plan is the allocator; the
 * CUDA context and library handles come on top (measured at open by the
 * trainer; estimated for `tune check`). */
#ifndef TUNE_GPU_PLAN_H
#define TUNE_GPU_PLAN_H

#include <stdint.h>

#include "model/spec.h"

/* The context, cuBLASLt's handle and its 32 MiB workspace, as measured with
 * CUDA 13.0 on an H100 and an H200 (driver 580): about 0.52 GiB. */
#define TN_GPU_CONTEXT_BYTES ((uint64_t)558 << 20)

typedef struct {
    uint64_t weights, lora, saved_per_layer, checkpointed_per_layer, shared, total;
} tn_gpu_plan;

typedef struct {
    int batch, seq, rank;
    int mods_max;         /* adapted modules in the layer that has the most */
    int64_t lora_params;  /* LoRA parameters in all */
    int flash;            /* the flash kernels run (head size 64, 128 or 256) */
} tn_gpu_plan_in;

/* Sizes for `checkpointed` layers keeping only their input (the first ones). */
void tn_gpu_plan_make(const tn_spec *s, const tn_gpu_plan_in *in, int checkpointed, tn_gpu_plan *p);
/* The fewest checkpointed layers for which the allocations fit in `room`
 * bytes (beyond what the weights and LoRA state take when `activations_only`);
 * -1 when not even every layer checkpointed fits. p receives that plan. */
int tn_gpu_plan_fit(const tn_spec *s, const tn_gpu_plan_in *in, uint64_t room, int activations_only, tn_gpu_plan *p);
/* Whether the flash kernels take this head size. */
int tn_gpu_flash_head(const tn_spec *s);

/* For train/gpu.c: the slots of a layer and the shared workspaces, in bytes,
 * in the order they are carved. */
enum { S_X, S_Q, S_K, S_V, S_ATT, S_MID, S_G, S_U, S_MIXB, S_MLPB, S_XA, S_BF16_COUNT };
enum { F_RSTD1, F_LSE, F_RSTD2, F_RSTD_PM, F_RSTD_PF, F_COUNT };
enum { W_XN, W_H, W_DRES, W_DBRANCH, W_DPRE, W_DBIG, W_DXA, W_FN, W_LOGITS, W_FRSTD, W_LOSSES, W_RSTD, W_IDS, W_LABELS,
       W_POS, W_FLASH, W_F32ATT, W_COUNT };
/* The most LoRA modules sharing one input (q, k, v). */
enum { LORA_GROUP_MAX = 3 };
uint64_t tn_gpu_align(uint64_t x);
void tn_gpu_slot_sizes(const tn_spec *s, int T, int nmods, int r, uint64_t bb[S_BF16_COUNT], uint64_t fb[F_COUNT]);
uint64_t tn_gpu_slots_bytes(const uint64_t bb[S_BF16_COUNT], const uint64_t fb[F_COUNT], int x_only);
int tn_gpu_chunk_rows(const tn_spec *s, int T);
void tn_gpu_work_sizes(const tn_spec *s, int B, int S, int r, int flash, uint64_t w[W_COUNT]);

#endif
