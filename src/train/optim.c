#include "train/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

int tn_adamw_init(tn_adamw *o, int64_t n, double lr, double weight_decay) {
    memset(o, 0, sizeof *o);
    o->lr = lr, o->beta1 = 0.9, o->beta2 = 0.999, o->eps = 1e-8, o->weight_decay = weight_decay;
    o->n = n;
    o->m = tn_calloc((size_t)n, sizeof(float), "adamw m");
    o->v = tn_calloc((size_t)n, sizeof(float), "adamw v");
    return o->m && o->v ? 0 : -1;
}

void tn_adamw_free(tn_adamw *o) {
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

void tn_adamw_update(tn_adamw *o, float *p, const float *g, double lr) {
    o->step++;
    /* torch computes the corrections in double (Python floats) and applies
     * them in fp32 tensors; so do we. */
    double bc1 = 1.0 - pow(o->beta1, (double)o->step);
    double bc2_sqrt = sqrt(1.0 - pow(o->beta2, (double)o->step));
    float step_size = (float)(lr / bc1);
    float decay = (float)(1.0 - lr * o->weight_decay);
    float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps, bc2s = (float)bc2_sqrt;
#pragma omp parallel for if (o->n > 100000)
    for (int64_t i = 0; i < o->n; i++) {
        float gi = g[i];
        p[i] *= decay;
        o->m[i] = o->m[i] * b1 + (1.0f - b1) * gi; /* lerp, as torch's exp_avg.lerp_(grad, 1 - beta1) */
        o->v[i] = o->v[i] * b2 + (1.0f - b2) * gi * gi;
        float denom = sqrtf(o->v[i]) / bc2s + eps;
        p[i] -= step_size * (o->m[i] / denom);
    }
}

int tn_schedule_from_name(const char *name) {
    if (!strcmp(name, "constant")) return TN_SCHEDULE_CONSTANT;
    if (!strcmp(name, "linear")) return TN_SCHEDULE_LINEAR;
    if (!strcmp(name, "cosine") || !strcmp(name, "cosine_decay")) return TN_SCHEDULE_COSINE;
    return -1;
}

const char *tn_schedule_name(tn_schedule_kind k) {
    static const char *const n[] = {"constant", "linear", "cosine"};
    return n[k];
}

double tn_schedule_lr(const tn_schedule *s, int64_t step) {
    if (step < s->warmup) return s->lr * (double)step / (double)s->warmup;
    if (s->kind == TN_SCHEDULE_CONSTANT || s->total <= s->warmup) return s->lr;
    double progress = (double)(step - s->warmup) / (double)(s->total - s->warmup);
    if (progress > 1) progress = 1;
    double f = s->kind == TN_SCHEDULE_LINEAR ? 1.0 - progress : 0.5 * (1.0 + cos(3.14159265358979323846 * progress));
    return s->min_lr + (s->lr - s->min_lr) * f;
}

double tn_clip_grad_norm(float *g, int64_t n, double max_norm) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (double)g[i] * g[i];
    double norm = sqrt(sum);
    if (max_norm > 0 && isfinite(norm) && norm > max_norm) {
        float c = (float)(max_norm / (norm + 1e-6));
        for (int64_t i = 0; i < n; i++) g[i] *= c;
    }
    return norm;
}
