/* batch.h - samples -> batches the trainer consumes.
 *
 *   tn_batch_options bo = {.batch_size = 4, .pad_id = ds.pad_id};
 *   tn_epoch ep;
 *   for (int epoch = 0; ...; epoch++) {
 *       tn_epoch_plan(&ep, train, &bo, seed, epoch);       // pure function of (split, bo, seed, epoch)
 *       for (int i = 0; i < ep.n_batches; i++) {
 *           tn_batch_fill(&b, &ep, i, train, &bo);         // b.ids, b.labels [B*S]
 *           ...
 *       }
 *       tn_epoch_free(&ep);
 *   }
 *   tn_batch_free(&b);
 *
 * Resuming at optimizer step k (one batch a step): epoch = k / n_batches,
 * batch = k % n_batches. n_batches is the same for every epoch of a split.
 *
 * Length grouping (no packing): the samples are sorted by length, longest
 * first (ties in a seeded random order), cut into batches of batch_size
 * consecutive samples (the last, of the shortest, may be smaller), and the
 * batches are shuffled. A batch is B rows
 * of S = its longest sample, so padding stays small.
 *
 * Packing: samples go into rows of pack_length tokens (best fit, longest
 * first); rows of similar fill are grouped into batches as above. Two
 * explicit modes:
 *   TN_PACK_ISOLATED  attention stays inside each sample: positions restart
 *                     at 0 for each sample; the trainer must mask attention
 *                     across segments (segments[] says which sample a
 *                     token is in).
 *   TN_PACK_SHARED    the row is one causal sequence: positions run 0..S-1
 *                     across samples, a sample may attend to the ones
 *                     before it in its row (segments[] still given).
 *
 * Labels are unshifted (Hugging Face style: the trainer predicts labels[t]
 * from positions < t): labels[t] = ids[t] for trained tokens and
 * TN_IGNORE_INDEX (-100) for the prompt (--mask-prompt), for padding, and
 * for the first token of every sample (it has nothing before it in its
 * sample to be predicted from). So n_targets = count(labels != -100) is the
 * number of terms in the loss. */
#ifndef TUNE_DATA_BATCH_H
#define TUNE_DATA_BATCH_H

#include <stdint.h>

#include "data/dataset.h"

typedef enum { TN_PACK_NONE, TN_PACK_ISOLATED, TN_PACK_SHARED } tn_pack_mode;

typedef struct {
    int batch_size;    /* B: rows per batch */
    tn_pack_mode pack;
    int pack_length;   /* row capacity when packing; 0 = the longest sample */
    int32_t pad_id;    /* ids of padding (tn_dataset.pad_id: the pad token, else EOS) */
} tn_batch_options;

/* One epoch's order: which samples make which row of which batch. */
typedef struct {
    int n_batches, n_rows;
    int32_t *batch_row; /* [n_batches+1]: batch b is rows batch_row[b] .. batch_row[b+1]-1 */
    int32_t *row_item;  /* [n_rows+1]: row r is items[row_item[r] .. row_item[r+1]-1] */
    int32_t *items;     /* sample indices into split->samples */
    int32_t *row_len;   /* [n_rows] tokens in each row */
    int64_t tokens;     /* sum of sample lengths */
    int64_t slots;      /* sum over batches of B*S */
} tn_epoch;

typedef struct {
    int B, S;
    int32_t *ids;       /* [B*S] token ids, padding = pad_id */
    int32_t *labels;    /* [B*S] ids or TN_IGNORE_INDEX */
    int32_t *positions; /* [B*S] position of each token (0 for padding) */
    int32_t *segments;  /* [B*S] index of the sample within its row, -1 for padding */
    int n_samples;
    int64_t n_tokens;   /* not padding */
    int64_t n_targets;  /* labels != TN_IGNORE_INDEX */
    size_t cap;         /* allocated B*S */
} tn_batch;

int tn_epoch_plan(tn_epoch *e, const tn_data_split *s, const tn_batch_options *o, uint64_t seed, int epoch);
void tn_epoch_free(tn_epoch *e);
/* Padding over the epoch: 1 - tokens / slots. */
double tn_epoch_padding(const tn_epoch *e);

/* Fills batch i of the epoch (reusing b's buffers; start with b = {0}). */
int tn_batch_fill(tn_batch *b, const tn_epoch *e, int i, const tn_data_split *s, const tn_batch_options *o);
void tn_batch_free(tn_batch *b);

/* The padding of batches of batch_size samples drawn in a random order (no
 * length grouping): what grouping saves, for the report. */
double tn_padding_unsorted(const tn_data_split *s, int batch_size, uint64_t seed);

#endif
