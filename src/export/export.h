/* export.h - a fine-tuned model out of tune: fuse (a Hugging Face folder),
 * GGUF model files for llama.cpp (F32 ... Q4_K_M), and GGUF LoRA adapters.
 *
 * Each job runs in two steps so the caller can tell bad input from a failed
 * write (CLI.md: exit 2 vs exit 1): *_prepare reads and checks everything
 * (config, tensor table, adapter shapes, tokenizer) and writes nothing;
 * *_run writes, streaming one tensor at a time, every output under a
 * temporary name renamed only when complete. */
#ifndef TUNE_EXPORT_H
#define TUNE_EXPORT_H

#include <stdint.h>

#include "io/dtype.h"

/* GGUF file types (general.file_type in parentheses). */
typedef enum {
    TN_FT_F32,    /* all F32 (0) */
    TN_FT_F16,    /* 2-D weights F16, norms and biases F32 (1) */
    TN_FT_BF16,   /* (32) */
    TN_FT_Q8_0,   /* (7) */
    TN_FT_Q4_0,   /* output matrix Q6_K (2) */
    TN_FT_Q4_K_M, /* Q4_K; output, and attn_v / ffn_down of some layers, Q6_K (15) */
    TN_FT_Q6_K,   /* (18) */
    TN_FT_COUNT
} tn_file_type;

/* "q4_k_m" -> TN_FT_Q4_K_M; -1 when unknown. */
int tn_file_type_parse(const char *name);
const char *tn_file_type_name(tn_file_type t);
/* The list for messages: "f32, f16, bf16, q8_0, q4_0, q4_k_m, q6_k". */
const char *tn_file_type_list(void);

typedef struct tn_export_job tn_export_job;

/* A GGUF model file from an HF folder, the adapter (optional) fused on the
 * fly in fp32. */
int tn_gguf_export_prepare(tn_export_job **job, const char *model_dir, const char *adapter_dir, const char *out_path, tn_file_type type);
/* With a GGUF model job: also write dir, an HF folder (F32) holding every
 * weight exactly as the GGUF stores it (quantized, then dequantized as
 * ggml does), in Hugging Face's layout: the model llama.cpp computes with,
 * for comparisons with tune's own engine. */
int tn_gguf_export_set_dequantized(tn_export_job *job, const char *dir);
/* A GGUF LoRA adapter (general.type "adapter") for the GGUF of that base. */
int tn_gguf_adapter_prepare(tn_export_job **job, const char *model_dir, const char *adapter_dir, const char *out_path);
/* An HF folder with W' = W + scale·B·A (fp32 math), tensors stored in
 * `dtype` (TN_DTYPE_COUNT: the model's own), shards of at most shard_bytes. */
int tn_fuse_prepare(tn_export_job **job, const char *model_dir, const char *adapter_dir, const char *out_dir, tn_dtype dtype,
                    uint64_t shard_bytes);

/* Writes the output; progress lines and a summary go to stderr. */
int tn_export_run(tn_export_job *job);
void tn_export_free(tn_export_job *job);

#endif
