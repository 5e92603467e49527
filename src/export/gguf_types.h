/* gguf_types.h - which ggml type each tensor of a GGUF file gets, for a file
 * type, as llama.cpp decides it (convert_hf_to_gguf.py for F32 / F16 /
 * BF16 / Q8_0, src/llama-quant.cpp for the rest):
 *
 * - 1-D tensors, norms ("*_norm.weight") and biases stay F32.
 * - Q4_K_M: Q4_K; attn_v and ffn_down Q6_K in layers where
 *   i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2.
 * - Every quantized type: the output matrix (token_embd when the model ties
 *   its embeddings) is Q6_K, unless the type is Q8_0 (kept), or its rows do
 *   not fit the type's blocks (Q8_0).
 * - Rows that are not a multiple of the type's block fall back:
 *   Q4_K -> Q5_0, Q6_K -> Q8_0, then F16 when even 32 does not divide them. */
#ifndef TUNE_GGUF_TYPES_H
#define TUNE_GGUF_TYPES_H

#include <stdint.h>

#include "export/export.h"
#include "quant/quant.h"

/* general.file_type of a file type. */
int tn_file_type_id(tn_file_type t);

/* The type of GGUF tensor `name` (n_dims, rows of ne0 values, in `layer` of
 * n_layers, -1 outside the layers). *wanted gets the type chosen before a
 * fallback (equal to the result when none happened). */
tn_ggml_type tn_gguf_tensor_type(tn_file_type ft, const char *name, int n_dims, int64_t ne0, int layer, int n_layers, int tied,
                                 tn_ggml_type *wanted);

#endif
