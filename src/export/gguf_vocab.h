/* gguf_vocab.h - a Hugging Face tokenizer (tokenizer.json,
 * tokenizer_config.json, chat_template.jinja) as GGUF tokenizer metadata,
 * the way llama.cpp's convert_hf_to_gguf.py and gguf-py write it.
 *
 * Byte-level BPE (Llama 3, Qwen2, Granite) becomes tokenizer.ggml.model
 * "gpt2" with tokens, token types and merges ("a b"); BPE with byte
 * fallback (SentencePiece-style: Mistral v0.x, Gemma 2) becomes "llama"
 * with tokens, scores and types, llama.cpp's SentencePiece tokenizer then
 * merging the highest-scoring pair first. Without a tokenizer.model to
 * take SentencePiece's own scores from, a token's score is minus the rank
 * of the first merge that makes it (so the highest-scoring pair is the
 * lowest-ranked merge, as Hugging Face's BPE picks it); tokens no merge
 * makes score below every merge. Token types: 1 normal, 2 unknown, 3
 * control (special added tokens, and added tokens that look special:
 * <|...|>), 4 user-defined (other added tokens), 5 unused (the [PAD{i}]
 * entries that pad the list to config.json's vocab_size), 6 byte (<0xXX>).
 *
 * tokenizer.ggml.pre: from the pre-tokenizer in tokenizer.json when it is
 * one llama.cpp knows (the Llama 3, Qwen2, GPT-2 and Tekken regexes;
 * StarCoder's digits + byte-level = "refact"), choosing the family's own
 * name when several share the regex ("llama-bpe" / "dbrx"); otherwise the
 * family's name with a warning. Special ids, add_bos / add_eos, the space
 * prefix and the chat template(s) are written as gguf-py's SpecialVocab
 * does. */
#ifndef TUNE_GGUF_VOCAB_H
#define TUNE_GGUF_VOCAB_H

#include "io/gguf_write.h"
#include "model/spec.h"

int tn_gguf_add_vocab(tn_gguf_writer *w, const char *model_dir, const tn_spec *spec);

#endif
