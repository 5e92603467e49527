/* gpu.h - LoRA training of the dense families on a CUDA device
 * (`--device cuda`): the frozen base in bf16 on the device, the LoRA master
 * weights, gradients and AdamW moments in fp32 beside it, activations in
 * bf16 with fp32 statistics. The layer sequence is forward.c's (same slots,
 * same rebuilt values in backward), run through nn/backend.h; the CPU
 * engine is the reference it is tested against (tests/gpu/).
 *
 * Only in builds with `make CUDA=1` (TN_CUDA); tn_gpu_available() says
 * whether this build has it. */
#ifndef TUNE_GPU_H
#define TUNE_GPU_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "train/model.h"
#include "train/optim.h"

typedef struct tn_gpu tn_gpu;

typedef struct {
    int max_batch, max_seq;
    /* Activation checkpointing: the first `checkpoint_layers` layers keep
     * only their input and run forward again in backward (-1: every layer;
     * -2: as many as the device's free memory needs, from the plan). */
    int checkpoint_layers;
    int device;
    /* With checkpoint_layers -2: the most device memory the whole process
     * may hold, CUDA context included (0: what the device has free). */
    uint64_t budget;
} tn_gpu_options;

/* The device memory plan: plan/gpu_plan.h. */

int tn_gpu_available(void);
/* Uploads the model's weights (as bf16) and the adapter, sizes the
 * activations for o->max_batch x o->max_seq. */
int tn_gpu_open(tn_gpu **out, tn_model *m, tn_lora *lora, const tn_gpu_options *o);
void tn_gpu_close(tn_gpu *g);
const char *tn_gpu_name(const tn_gpu *g);
int tn_gpu_checkpointed(const tn_gpu *g);
/* Planned bytes (the allocations, plus the CUDA context and library
 * handles as measured when the device was opened), and the device's bytes in use now (cudaMemGetInfo: the
 * whole device, this process's context included). */
uint64_t tn_gpu_planned(const tn_gpu *g);
int tn_gpu_used(tn_gpu *g, uint64_t *used, uint64_t *total);

/* As tn_model_step: forward and (want_grads) backward of a batch, the LoRA
 * gradients of grad_scale·(summed loss) added to the device's gradients.
 * Returns the summed loss (waits for the device); *counted the tokens. */
double tn_gpu_step(tn_gpu *g, const int32_t *ids, const int32_t *labels, int B, int S, int want_grads, double grad_scale,
                   int64_t *counted);
/* Logits [B·S, V] fp32 on the host, of every position (tests, eval). */
int tn_gpu_logits(tn_gpu *g, const int32_t *ids, int B, int S, float *logits);

int tn_gpu_zero_grads(tn_gpu *g);
/* grads *= scale; returns the global norm after scaling (before clipping)
 * in *norm; clips to max_norm when max_norm > 0 and the norm is above. */
int tn_gpu_grads_finish(tn_gpu *g, double scale, double max_norm, double *norm);
/* One AdamW update (opt's hyperparameters; opt->step is incremented as
 * tn_adamw_update does); the moments live on the device. */
int tn_gpu_adamw(tn_gpu *g, tn_adamw *opt, double lr);
/* LoRA parameters (and, with opt, the moments) device -> host, for saves. */
int tn_gpu_download(tn_gpu *g, tn_lora *lora, tn_adamw *opt);
/* The device's LoRA gradients -> host [n_params] (tests). */
int tn_gpu_download_grads(tn_gpu *g, float *grads);
/* Profiling: with on, every operation is bracketed by device events by
 * category (slower: for finding what holds a step back); the report prints
 * the milliseconds per step of each category since tn_gpu_profile(g, 1). */
void tn_gpu_profile(tn_gpu *g, int on);
void tn_gpu_profile_report(tn_gpu *g, FILE *f, int steps);
/* host -> device (after a resume or --init-adapter load). */
int tn_gpu_upload(tn_gpu *g, const tn_lora *lora, const tn_adamw *opt);

#endif
