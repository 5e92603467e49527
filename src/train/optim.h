/* optim.h - AdamW exactly as torch.optim.AdamW (bias-corrected moments,
 * decoupled weight decay), learning-rate schedules with warmup, clipping by
 * global norm, and the non-finite guard. */
#ifndef TUNE_OPTIM_H
#define TUNE_OPTIM_H

#include <stdint.h>

typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
    int64_t step; /* updates done */
    int64_t n;
    float *m, *v; /* [n] */
} tn_adamw;

int tn_adamw_init(tn_adamw *o, int64_t n, double lr, double weight_decay);
void tn_adamw_free(tn_adamw *o);
/* One update of params with grads at learning rate lr (the schedule's):
 *   p ← p·(1 − lr·wd); m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²
 *   p ← p − (lr / (1−β1ᵗ)) · m / (sqrt(v) / sqrt(1−β2ᵗ) + ε) */
void tn_adamw_update(tn_adamw *o, float *params, const float *grads, double lr);

typedef enum { TN_SCHEDULE_CONSTANT, TN_SCHEDULE_LINEAR, TN_SCHEDULE_COSINE } tn_schedule_kind;
typedef struct {
    tn_schedule_kind kind;
    double lr;
    int64_t warmup, total;
    double min_lr; /* the floor of linear / cosine decay */
} tn_schedule;
/* "constant" / "linear" / "cosine"; -1 when unknown. */
int tn_schedule_from_name(const char *name);
const char *tn_schedule_name(tn_schedule_kind k);
/* Learning rate of update number `step` (0-based), as transformers'
 * get_{constant,linear,cosine}_schedule_with_warmup: lr·step/warmup during
 * warmup (so the first update has lr 0 when warmup > 0), then constant, or
 * decaying linearly or along a half cosine to min_lr at `total`. */
double tn_schedule_lr(const tn_schedule *s, int64_t step);

/* Global L2 norm of grads; scales them to max_norm when above (max_norm > 0).
 * Returns the norm before clipping (NaN or inf when not finite). */
double tn_clip_grad_norm(float *grads, int64_t n, double max_norm);

#endif
