/* gguf_import.h - a GGUF model file as a Hugging Face folder that tune runs:
 * the inverse of `tune export --gguf` (src/export/gguf_model.c), for
 * `tune doctor`'s reload of the GGUFs it exported, `fuse`, and `generate`
 * on Granite 4.0-H GGUFs; `generate`, `eval`, `logits` and `train` on dense
 * GGUFs use the GGUF base below (layer matrices left in the file).
 *
 *   metadata  {arch}.* keys -> config.json for the families whose GGUF
 *             tables model/families.c holds (llama, also Mistral; qwen2;
 *             gemma2; granite; granitehybrid: layer_types from the per-layer
 *             attention.head_count_kv, 0 for Mamba2 layers, mamba_* from
 *             ssm.*, the experts' counts, "nope" position embeddings unless
 *             rope.scaling.finetuned); rope_freqs.weight -> Llama 3 rope scaling
 *             (the parameters recovered from the factors, and checked to
 *             give those factors back); Gemma 2's query scale is
 *             1/sqrt(head_dim), as llama.cpp computes it (hidden / heads
 *             for the 46-layer 27B, as llama.cpp does).
 *   weights   every tensor dequantized to fp32 as ggml does (quant/
 *             dequant_gguf.h), the export transforms undone (Q/K rows from
 *             interleaved pairs back to rotate-half, Gemma's norms w - 1,
 *             Granite 4.0-H's A_log = log(-ssm_a), conv1d [C, K] ->
 *             [C, 1, K], D [H, 1] -> [H], norm [G, d/G] -> [d], ffn_gate
 *             and ffn_up (or the experts' halves) joined as [gate; up],
 *             shapes back to PyTorch order), under Hugging Face names, in
 *             one F32 model.safetensors;
 *   tokenizer text/gguf_tokenizer.h: tokenizer.json, tokenizer_config.json
 *             (with the chat template), generation_config.json.
 *
 * Why a folder rather than a second loader: every consumer of a model
 * (tn_model_open, the tokenizer, the chat template, generate's stop tokens)
 * already reads folders, and the F32 safetensors are mmap'd with direct
 * views, so the weights are read from the page cache rather than copied
 * into the heap. The price is disk: 4 bytes a parameter under $TMPDIR
 * (a 7B model: 28 GB), written one tensor at a time (peak memory: the
 * largest tensor in fp32 twice). The GGUF base (tn_gguf_base_temp) avoids
 * it for the layer matrices; docs/gguf.md. */
#ifndef TUNE_GGUF_IMPORT_H
#define TUNE_GGUF_IMPORT_H

#include <stddef.h>
#include <stdint.h>

#include "io/gguf_read.h"

/* 1 when path is a regular file that starts with the GGUF magic. */
int tn_is_gguf_file(const char *path);

/* Writes into out_dir (created when absent) from the GGUF file:
 * config.json, model.safetensors (F32), tokenizer files. Errors name
 * the GGUF file (a bad file, an unsupported architecture or type) or the
 * folder (a failed write). */
int tn_gguf_to_hf(const char *gguf_path, const char *out_dir);

/* The same into a fresh temporary folder ($TMPDIR or /tmp,
 * "tune-gguf-XXXXXX"), whose path goes to dir; remove it with
 * tn_gguf_remove_temp when done. On failure nothing is left behind. */
int tn_gguf_unpack_temp(const char *gguf_path, char *dir, size_t cap);
/* Removes the files of a folder made by tn_gguf_unpack_temp, then the
 * folder (it holds no subfolders). */
void tn_gguf_remove_temp(const char *dir);

/* A GGUF as a frozen base, its layer matrices left in the file: a
 * temporary folder like tn_gguf_unpack_temp's (config.json, the tokenizer
 * files) whose model.safetensors holds, in F32, every tensor but the
 * adaptable layer matrices (embeddings, head, norms, biases, Granite
 * 4.0-H's Mamba tensors and experts) when `weights`, or only the 1-D
 * tensors (norms, biases) when not (enough for the spec and an adapter's
 * export), and a marker, TN_GGUF_BASE_MARKER, naming the GGUF. tn_model_open
 * on such a folder reads the layer matrices from the GGUF's own blocks,
 * dequantizing a layer at a time. Remove it with tn_gguf_remove_temp. */
#define TN_GGUF_BASE_MARKER "tune-gguf-base.json"
int tn_gguf_base_temp(const char *gguf_path, char *dir, size_t cap, int weights);
/* 1 when dir is a GGUF base folder: the GGUF's absolute path to gguf, the
 * path it was given as to name, the bytes of its layer matrices (either
 * may be NULL); 0 when not; -1 on a bad marker. */
int tn_gguf_base_of(const char *dir, char *gguf, size_t cap, char *name, size_t name_cap, uint64_t *layer_bytes);

#endif
