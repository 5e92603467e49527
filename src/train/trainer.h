/* trainer.h - `tune train`'s loop: optimizer steps over batches from a data
 * source, with gradient accumulation, clipping, the non-finite guard,
 * schedules, validation, a JSONL log, a loss plot, atomic adapter saves and
 * checkpoints from which a resumed run continues bit for bit. */
#ifndef TUNE_TRAINER_H
#define TUNE_TRAINER_H

#include <stdint.h>

#include "data/dataset.h" /* TN_SPLIT_TRAIN, TN_SPLIT_VALID, TN_SPLIT_TEST */
#include "train/model.h"
#include "train/optim.h"

typedef struct {
    int B, S;
    const int32_t *ids, *labels; /* [B·S]; labels unshifted, TN_IGNORE_INDEX where not trained */
} tn_batch_view;

/* Where batches come from. The order of a split's batches in an epoch must
 * be a pure function of (seed, epoch), so that resume is exact. */
typedef struct {
    void *ctx;
    int64_t (*n_batches)(void *ctx, int split);
    int (*get)(void *ctx, int split, int64_t epoch, int64_t index, tn_batch_view *out);
    int max_seq;   /* longest sequence of any batch */
    int max_batch; /* most sequences in a batch */
} tn_batch_source;

typedef struct {
    const char *model, *out, *init_adapter, *resume;
    int full;  /* --fine-tune-type full */
    int qlora; /* tn_quant of plan.h: the frozen base stored quantized (0 = no) */
    int rank;
    double alpha, dropout;
    int rslora;
    const char *targets;
    int layers;
    double lr, weight_decay, clip, min_lr;
    tn_schedule_kind schedule;
    int64_t warmup;
    int batch, grad_accum;
    int64_t iters;
    int epochs;
    int max_seq;
    int grad_checkpoint;
    int cuda;              /* --device cuda: LoRA on the GPU (train/gpu.h) */
    int checkpoint_layers; /* --device cuda: layers checkpointed (-2: as free memory needs) */
    uint64_t seed;
    int64_t val_every, val_batches, save_every, report_every;
    int max_bad_steps;
    uint64_t budget; /* 0: none */
    const char *data_time; /* written into checkpoints: the clock the data was rendered with */
} tn_train_options;

void tn_train_defaults(tn_train_options *o);
/* Runs the whole training; returns 0, or -1 with the message set. */
int tn_train_run(const tn_train_options *o, tn_batch_source *src);

/* Mean loss over up to max_batches batches of a split (all when <= 0). */
int tn_evaluate(tn_model *m, tn_lora *lora, tn_activations *a, tn_batch_source *src, int split, int64_t max_batches, double *loss,
                int64_t *tokens);

#endif
