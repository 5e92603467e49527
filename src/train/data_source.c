/* data_source.c - a dataset folder as the trainer's batch source: the
 * dataset is tokenized once (src/data/dataset.c); each split's epochs are
 * planned by src/data/batch.c as a pure function of (seed, epoch), so a
 * resumed run sees the very batches it would have seen. */
#include "train/data_source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/batch.h"
#include "util/error.h"

typedef struct {
    tn_dataset ds;
    tn_batch_options bo;
    uint64_t seed;
    tn_epoch epoch[TN_SPLITS];
    int64_t epoch_no[TN_SPLITS]; /* -1: none planned */
    tn_batch batch;
} source;

static int plan(source *s, int split, int64_t epoch) {
    if (s->epoch_no[split] == epoch) return 0;
    if (s->epoch_no[split] >= 0) tn_epoch_free(&s->epoch[split]);
    s->epoch_no[split] = -1;
    if (tn_epoch_plan(&s->epoch[split], &s->ds.splits[split], &s->bo, s->seed, (int)epoch) != 0) return -1;
    s->epoch_no[split] = epoch;
    return 0;
}

static int64_t n_batches(void *ctx, int split) {
    source *s = ctx;
    if (!s->ds.splits[split].path || s->ds.splits[split].n == 0) return 0;
    if (plan(s, split, s->epoch_no[split] >= 0 ? s->epoch_no[split] : 0) != 0) return -1;
    return s->epoch[split].n_batches;
}

static int get(void *ctx, int split, int64_t epoch, int64_t index, tn_batch_view *out) {
    source *s = ctx;
    if (plan(s, split, epoch) != 0) return -1;
    if (tn_batch_fill(&s->batch, &s->epoch[split], (int)index, &s->ds.splits[split], &s->bo) != 0) return -1;
    out->B = s->batch.B, out->S = s->batch.S;
    out->ids = s->batch.ids, out->labels = s->batch.labels;
    return 0;
}

int tn_data_source_open(tn_batch_source *src, const char *model, const char *data_dir, int max_seq, int batch, int mask_prompt,
                        uint64_t seed, const struct tm *date) {
    memset(src, 0, sizeof *src);
    source *s = tn_calloc(1, sizeof *s, "data source");
    if (!s) return -1;
    tn_data_options o;
    tn_data_options_default(&o);
    o.max_seq_length = max_seq;
    o.mask_prompt = mask_prompt;
    o.date = date;
    if (tn_dataset_load(&s->ds, model, data_dir, &o) != 0) {
        free(s);
        return -1;
    }
    if (!s->ds.splits[TN_SPLIT_TRAIN].path || s->ds.splits[TN_SPLIT_TRAIN].n == 0) {
        tn_dataset_free(&s->ds);
        free(s);
        return tn_fail("%s: no training samples (expected train.jsonl with at least one usable record)", data_dir);
    }
    size_t left_out = 0, truncated = 0;
    for (int k = 0; k < TN_SPLITS; k++) left_out += s->ds.splits[k].n_left_out, truncated += s->ds.splits[k].n_truncated;
    if (left_out || truncated)
        fprintf(stderr, "tune: %s: %zu sample%s left out, %zu truncated to %d tokens (tune data %s %s lists them)\n", data_dir, left_out,
                left_out == 1 ? "" : "s", truncated, max_seq, model, data_dir);
    s->bo.batch_size = batch;
    s->bo.pack = TN_PACK_NONE;
    s->bo.pad_id = s->ds.pad_id;
    s->seed = seed;
    int longest = 2;
    for (int k = 0; k < TN_SPLITS; k++) {
        s->epoch_no[k] = -1;
        for (size_t i = 0; i < s->ds.splits[k].n; i++)
            if (s->ds.splits[k].samples[i].len > longest) longest = s->ds.splits[k].samples[i].len;
    }
    src->ctx = s;
    src->n_batches = n_batches;
    src->get = get;
    src->max_seq = longest;
    src->max_batch = batch;
    return 0;
}

void tn_data_source_close(tn_batch_source *src) {
    source *s = src->ctx;
    if (!s) return;
    for (int k = 0; k < TN_SPLITS; k++)
        if (s->epoch_no[k] >= 0) tn_epoch_free(&s->epoch[k]);
    tn_batch_free(&s->batch);
    tn_dataset_free(&s->ds);
    free(s);
    src->ctx = NULL;
}

const char *tn_data_source_time(const tn_batch_source *src, char *buf, int cap) {
    const source *s = src->ctx;
    buf[0] = 0;
    const struct tm *t = s && s->ds.chat ? tn_chat_time(s->ds.chat) : NULL;
    if (t) strftime(buf, (size_t)cap, "%Y-%m-%d %H:%M:%S", t);
    return buf;
}
