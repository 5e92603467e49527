/* adapter.h - LoRA adapters on disk: PEFT's format (the native one:
 * adapter_model.safetensors + adapter_config.json, lora_A [r, in],
 * lora_B [out, r], scale = lora_alpha / r, or / sqrt(r) with use_rslora) and
 * mlx-lm's (adapters.safetensors, lora_a [in, r], lora_b [r, out], a raw
 * scale), which is read and converted. */
#ifndef TUNE_ADAPTER_H
#define TUNE_ADAPTER_H

#include "train/model.h"

/* Writes lora into dir (created) in PEFT's format, each file atomically.
 * base_model names the base in adapter_config.json. */
int tn_adapter_save(const tn_lora *lora, const tn_model *m, const char *dir, const char *base_model);
/* Reads a PEFT or mlx-lm adapter from dir into a freshly initialised lora
 * matching its config; every tensor must fit the model. */
int tn_adapter_load(tn_lora *lora, const tn_model *m, const char *dir);

#endif
