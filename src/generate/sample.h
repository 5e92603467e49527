/* sample.h - choosing the next token from logits, in llama.cpp's order:
 * repetition penalty over the recent tokens, top-k, top-p, min-p, then
 * temperature; temperature 0 is greedy (argmax after the penalty). Seeded. */
#ifndef TUNE_SAMPLE_H
#define TUNE_SAMPLE_H

#include <stdint.h>

#include "util/rng.h"

typedef struct {
    double temp, top_p, min_p, repeat_penalty;
    int top_k, repeat_last_n;
    tn_rng rng;
    /* scratch */
    int32_t *idx;
    float *prob;
    int cap;
} tn_sampler;

int tn_sampler_init(tn_sampler *s, int vocab, uint64_t seed);
void tn_sampler_free(tn_sampler *s);
/* logits [V] are modified (penalty). history: the tokens so far. */
int32_t tn_sample(tn_sampler *s, float *logits, int V, const int32_t *history, int n_history);

#endif
