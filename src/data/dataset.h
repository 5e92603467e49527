/* dataset.h - JSONL files -> tokenized samples, split by split.
 *
 *   tn_data_options o;
 *   tn_data_options_default(&o);          // max_seq_length 2048, no masking
 *   o.mask_prompt = 1;
 *   tn_dataset ds;
 *   if (tn_dataset_load(&ds, "model_dir", "data_dir", &o)) -> tn_error(), exit 2
 *   tn_data_split *train = tn_dataset_split(&ds, "train");   // NULL if absent
 *   ... tn_epoch_plan(train, ...)  (data/batch.h)
 *   tn_dataset_free(&ds);
 *
 * A data folder holds train.jsonl, valid.jsonl, test.jsonl (mlx-lm's
 * convention; each optional, at least one present); a .jsonl path is taken
 * as the train split alone; o.files[] names files explicitly instead.
 * Each file has one format, set by its first record (data/record.h).
 *
 * Every sample is tokenized once (data/encode.h), truncated to
 * max_seq_length (counted in n_truncated and reported as a problem), and
 * stored as ids plus `offset`, the first position whose token is trained.
 * Samples that cannot be trained as asked are left out and reported
 * (data/problems.h). Errors stop the load: "FILE:LINE: what (expected X,
 * got Y)". */
#ifndef TUNE_DATA_DATASET_H
#define TUNE_DATA_DATASET_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "data/chat.h"
#include "data/problems.h"
#include "data/record.h"
#include "text/tokenizer.h"

enum { TN_SPLIT_TRAIN, TN_SPLIT_VALID, TN_SPLIT_TEST, TN_SPLITS };

typedef struct {
    tn_data_keys keys;     /* "messages", "prompt", "completion", "text" */
    int max_seq_length;    /* tokens; longer samples are truncated; 0 = no limit */
    int mask_prompt;       /* train only the last assistant turn / the completion */
    int raw_completions;   /* completions as prompt + completion text, not through the chat template */
    size_t max_line_bytes; /* a longer line is an error; default 16 MiB */
    const char *files[TN_SPLITS]; /* explicit files per split (override the folder) */
    const char *const *vars;      /* "KEY=JSON" chat template variables */
    int n_vars;
    const struct tm *date; /* pins strftime_now (else: the time of loading, the same for every sample) */
    int strict;            /* 1: a severe problem (template, mask, no_target) is an error, not a left-out sample */
} tn_data_options;

void tn_data_options_default(tn_data_options *o);

/* One sample: ids are split->tokens[start .. start+len). Positions
 * [0, offset) are prompt (masked); [offset, len) are trained. */
typedef struct {
    size_t start;
    int32_t len;      /* after truncation */
    int32_t offset;   /* first trained position (0 = all; position 0 is never a target) */
    int32_t full_len; /* before truncation */
    long line;        /* 1-based line in split->path */
} tn_sample;

typedef struct {
    const char *name;      /* "train", "valid", "test" */
    char *path;            /* the file read; NULL when the split is absent */
    tn_data_format format; /* set by its first record */
    int32_t *tokens;       /* every sample's ids, back to back */
    size_t n_tokens, cap_tokens;
    tn_sample *samples;
    size_t n, cap;
    size_t n_records;   /* JSON records read (samples + left out) */
    size_t n_truncated; /* samples cut to max_seq_length */
    size_t n_left_out;  /* severe problems: not in samples */
    size_t n_blank;     /* blank lines skipped */
} tn_data_split;

typedef struct {
    tn_data_split splits[TN_SPLITS]; /* a split with path == NULL is absent */
    tn_problems problems;
    tn_tokenizer *tok;
    tn_chat *chat;
    int own_tok, own_chat;
    int32_t eos_id, pad_id; /* pad: the tokenizer's pad token, else EOS */
    long bos_added, eos_added;
    tn_data_options opt;
    /* duplicate detection across splits: hash -> (split, sample) */
    uint64_t *dup_keys;
    uint32_t *dup_vals;
    size_t dup_cap, dup_n;
} tn_dataset;

/* Loads MODEL's tokenizer and chat template, then every split of DATA (a
 * folder or a .jsonl file; NULL when o->files names them). */
int tn_dataset_load(tn_dataset *ds, const char *model, const char *data, const tn_data_options *o);
/* The same with a tokenizer and chat template the caller owns (chat may be
 * NULL: no chat records then). */
int tn_dataset_load_with(tn_dataset *ds, tn_tokenizer *tok, tn_chat *chat, const char *data,
                         const tn_data_options *o);
void tn_dataset_free(tn_dataset *ds);

/* The split called name ("train", "valid", "test"), NULL when absent. */
tn_data_split *tn_dataset_split(tn_dataset *ds, const char *name);

/* A sample's ids. */
static inline const int32_t *tn_sample_ids(const tn_data_split *s, size_t i) {
    return s->tokens + s->samples[i].start;
}
/* Positions t with offset <= t < len and t >= 1: the targets a causal
 * model is trained on. */
static inline int32_t tn_sample_targets(const tn_sample *x) {
    int32_t from = x->offset > 1 ? x->offset : 1;
    return x->len > from ? x->len - from : 0;
}

/* Finds train.jsonl, valid.jsonl, test.jsonl in dir (NULL where absent;
 * malloc'd). Returns the number found, -1 on error. */
int tn_data_find_files(const char *dir, char *paths[TN_SPLITS]);

#endif
