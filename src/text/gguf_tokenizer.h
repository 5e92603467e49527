/* gguf_tokenizer.h - a GGUF file's tokenizer metadata (tokenizer.ggml.*,
 * tokenizer.chat_template) as the Hugging Face files that describe the same
 * tokenizer: tokenizer.json, tokenizer_config.json and
 * generation_config.json, which the tokenizer of text/tokenizer.h and the
 * chat template then read as they read any model folder.
 *
 * What each GGUF tokenizer model becomes (docs/gguf.md has the details):
 *
 *   gpt2    byte-level BPE: tokens -> model.vocab, merges ("a b") ->
 *           model.merges in order; tokenizer.ggml.pre names the
 *           pre-tokenizer, written as Hugging Face's own tokenizer.json does
 *           for that model family where llama.cpp adapted the regex
 *           (llama-bpe, qwen2, tekken, gpt-4o, ...), else as llama.cpp's list
 *           of regexes (each a Split, then ByteLevel without its regex).
 *   llama   SentencePiece BPE with byte fallback: spaces -> U+2581 (with a
 *           leading U+2581 when add_space_prefix, the default), merges
 *           rebuilt from the scores as transformers' SentencePieceExtractor
 *           does (every split of a piece into two pieces, ranked by the
 *           piece's score), so Hugging Face's BPE merges the best-scoring
 *           pair first, as SentencePiece and llama.cpp do.
 *   gemma4  BPE with merges over raw UTF-8 (U+2581 for spaces, byte
 *           fallback), as Gemma's tokenizer.json.
 *
 * Token types: control (3) and user-defined (4) tokens become added tokens
 * (special for control; both matched in the raw text, as llama.cpp does),
 * unknown (2) the BPE's unk_token; normal, byte (6) and unused (5) tokens
 * are plain vocabulary entries. BOS / EOS are added by a TemplateProcessing
 * post-processor when add_bos_token / add_eos_token say so (llama.cpp's
 * defaults when absent: BOS for SentencePiece and for the llama-bpe and
 * tekken pre-tokenizers). WordPiece (bert), Unigram (t5), RWKV and PLaMo-2
 * vocabularies are refused with a message. */
#ifndef TUNE_GGUF_TOKENIZER_H
#define TUNE_GGUF_TOKENIZER_H

#include "io/gguf_read.h"
#include "text/tokenizer.h"

/* Writes DIR/tokenizer.json, DIR/tokenizer_config.json and
 * DIR/generation_config.json (eos / eot / eom ids) from g's metadata. */
int tn_gguf_write_tokenizer(const tn_gguf *g, const char *dir);

/* The tokenizer of g, through the same files in a temporary folder
 * (removed before returning). */
tn_tokenizer *tn_gguf_tokenizer_load(const tn_gguf *g);

#endif
