/* encode.h - a record -> its token ids and the first trained position.
 *
 * chat         ids = tokenize(render(messages, tools)) with no special tokens
 *              added (transformers' apply_chat_template(tokenize=True) adds
 *              none: the template writes BOS itself). Should the template not
 *              begin with the tokenizer's BOS prefix although the tokenizer
 *              adds one, the prefix is put in front (counted in bos_added).
 * completions  with a chat template: the chat of [user: prompt, assistant:
 *              completion] (mlx-lm); without one, or with raw_completions:
 *              tokenize(prompt + completion) with special tokens.
 * text         tokenize(text) with special tokens.
 *
 * EOS: appended when the sequence does not end a turn already - for text
 * and raw completions when the last id is not EOS (as mlx-lm does), for chat
 * when the last token that is not whitespace is not a special token (every
 * template we know ends the assistant turn with one: <|eot_id|>,
 * <|im_end|>, <end_of_turn>, </s>, <|end_of_text|>).
 *
 * --mask-prompt (offset): the number of tokens of the prompt - the chat
 * rendered without its last message and with add_generation_prompt=true
 * (mlx-lm's rule), or the prompt text alone for raw completions. Those ids
 * must be a prefix of the full sequence's ids; if they are not, the sample
 * is refused (TN_PROBLEM_MASK) rather than masked at the wrong place. */
#ifndef TUNE_DATA_ENCODE_H
#define TUNE_DATA_ENCODE_H

#include <stdint.h>

#include "data/chat.h"
#include "data/problems.h"
#include "data/record.h"
#include "text/tokenizer.h"

typedef struct {
    tn_tokenizer *tok;
    tn_chat *chat;       /* NULL, or without a template: no chat records */
    int mask_prompt;
    int raw_completions; /* completions as plain text even with a template */
    int32_t eos;         /* appended where the turn is not ended */
    /* counters */
    long bos_added, eos_added;
} tn_encoder;

/* 0: *ids holds the sample (appended to), *offset the first trained
 * position (0 without mask_prompt). 1: the sample cannot be used, *kind says
 * why (TN_PROBLEM_TEMPLATE or TN_PROBLEM_MASK) and tn_error() explains.
 * -1: an error (tokenizer failure, out of memory). */
int tn_encode_record(tn_encoder *e, const tn_record *r, tn_ids *ids, int32_t *offset, tn_problem_kind *kind);

/* The rendered text of a record: full (add_generation_prompt false) or, with
 * prompt, the part --mask-prompt leaves out. Malloc'd; NULL with a message. */
char *tn_encode_render(tn_encoder *e, const tn_record *r, int prompt, size_t *len);

#endif
