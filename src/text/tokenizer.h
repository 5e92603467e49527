/* tokenizer.h - Hugging Face tokenizer.json, read and run in C: ids identical
 * to the Rust `tokenizers` library (Tokenizer.from_file(...).encode(text,
 * add_special_tokens)).
 *
 * The pipeline, as tokenizers runs it (docs/tokenizer.md has the details):
 *
 *   bytes -> valid UTF-8 (invalid sequences become U+FFFD, one per maximal
 *            invalid subpart, as Python's and JavaScript's decoders do)
 *         -> added tokens with normalized=false split out of the raw text
 *         -> each remaining segment normalized (NFC, Replace, Prepend, ...)
 *         -> added tokens with normalized=true split out of it
 *         -> pre-tokenizers (Split on the file's regex through PCRE2,
 *            ByteLevel, Metaspace, Digits, ...) cut it into pre-tokens
 *         -> the BPE model turns each pre-token into ids
 *         -> the post-processor adds BOS/EOS (unless add_special is 0)
 *
 * A component type that is not implemented is a load error naming it. The
 * tokenizer keeps a cache of pre-tokens and scratch buffers: one tokenizer
 * must not be used by two threads at once. */
#ifndef TUNE_TOKENIZER_H
#define TUNE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct tn_tokenizer tn_tokenizer;

/* A growable list of token ids. Start with {0}; free with tn_ids_free. */
typedef struct {
    int32_t *ids;
    size_t n, cap;
} tn_ids;

int tn_ids_push(tn_ids *v, int32_t id);
void tn_ids_free(tn_ids *v);

/* Loads MODEL's tokenizer: a folder holding tokenizer.json (and, if present,
 * tokenizer_config.json), or the path of a tokenizer.json itself. */
tn_tokenizer *tn_tokenizer_load(const char *model);
/* The same from explicit files; config_json may be NULL. */
tn_tokenizer *tn_tokenizer_load_files(const char *tokenizer_json, const char *config_json);
void tn_tokenizer_free(tn_tokenizer *t);

/* Appends the ids of text[0..len) to out. add_special: 1 adds what the
 * post-processor adds (BOS/EOS); special tokens written in the text are
 * recognised either way (Hugging Face's add_special_tokens). */
int tn_tokenizer_encode(tn_tokenizer *t, const char *text, size_t len, int add_special, tn_ids *out);

/* The text of ids (malloc'd, NUL-terminated, *len_out without the NUL).
 * skip_special drops special added tokens. Ids outside the vocabulary are an
 * error. */
int tn_tokenizer_decode(const tn_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                        char **text_out, size_t *len_out);

/* The token string of an id (not NUL-terminated; *len set), or NULL. */
const char *tn_tokenizer_token(const tn_tokenizer *t, int32_t id, size_t *len);
/* The id of a token string (added tokens first, then the model), or -1. */
int32_t tn_tokenizer_token_id(const tn_tokenizer *t, const char *token, size_t len);
/* One more than the largest id (model and added tokens). */
int32_t tn_tokenizer_vocab_size(const tn_tokenizer *t);
/* 1 when id is a special added token. */
int tn_tokenizer_is_special(const tn_tokenizer *t, int32_t id);

/* Ids of tokenizer_config.json's bos_token, eos_token, pad_token, unk_token
 * (-1 when absent or not in the vocabulary). */
typedef enum { TN_TOK_BOS, TN_TOK_EOS, TN_TOK_PAD, TN_TOK_UNK } tn_special_role;
int32_t tn_tokenizer_special_id(const tn_tokenizer *t, tn_special_role role);
/* The ids the post-processor puts before and after a single sequence. */
const int32_t *tn_tokenizer_prefix(const tn_tokenizer *t, size_t *n);
const int32_t *tn_tokenizer_suffix(const tn_tokenizer *t, size_t *n);

/* Replaces invalid UTF-8 in s[0..n) with U+FFFD (one per maximal invalid
 * subpart, the WHATWG / Unicode "best practice" that Python's
 * bytes.decode(errors="replace"), JavaScript's TextDecoder and Rust's
 * String::from_utf8_lossy all follow). Returns a malloc'd NUL-terminated copy
 * and its length, and the count of replacements in *replaced. */
char *tn_utf8_sanitize(const char *s, size_t n, size_t *len_out, size_t *replaced);

#endif
