#include "generate/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

int tn_sampler_init(tn_sampler *s, int vocab, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->temp = 0.8, s->top_p = 0.95, s->min_p = 0.05, s->repeat_penalty = 1.0, s->top_k = 40, s->repeat_last_n = 64;
    tn_rng_seed(&s->rng, seed, 0x5a3b1e);
    s->idx = tn_malloc((size_t)vocab * sizeof *s->idx, "sampler");
    s->prob = tn_malloc((size_t)vocab * sizeof *s->prob, "sampler");
    s->cap = vocab;
    return s->idx && s->prob ? 0 : -1;
}

void tn_sampler_free(tn_sampler *s) {
    free(s->idx);
    free(s->prob);
    memset(s, 0, sizeof *s);
}

static const float *cmp_logits;
static int by_logit_desc(const void *a, const void *b) {
    float x = cmp_logits[*(const int32_t *)a], y = cmp_logits[*(const int32_t *)b];
    if (x != y) return x < y ? 1 : -1;
    return *(const int32_t *)a - *(const int32_t *)b;
}

int32_t tn_sample(tn_sampler *s, float *logits, int V, const int32_t *hist, int n_hist) {
    /* Repetition penalty (CTRL / llama.cpp): positive logits divided,
     * negative multiplied, once per distinct recent token. */
    if (s->repeat_penalty != 1.0 && n_hist > 0) {
        int from = s->repeat_last_n > 0 && n_hist > s->repeat_last_n ? n_hist - s->repeat_last_n : 0;
        for (int i = from; i < n_hist; i++) {
            int32_t t = hist[i];
            int seen = 0;
            for (int j = from; j < i && !seen; j++) seen = hist[j] == t;
            if (seen || t < 0 || t >= V) continue;
            logits[t] = logits[t] > 0 ? logits[t] / (float)s->repeat_penalty : logits[t] * (float)s->repeat_penalty;
        }
    }
    if (s->temp <= 0) {
        int32_t best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
    /* Candidates sorted by logit (top-k first bounds the sort). */
    int n = V;
    for (int i = 0; i < V; i++) s->idx[i] = i;
    cmp_logits = logits;
    qsort(s->idx, (size_t)V, sizeof *s->idx, by_logit_desc);
    if (s->top_k > 0 && s->top_k < n) n = s->top_k;
    double mx = logits[s->idx[0]], sum = 0;
    for (int i = 0; i < n; i++) sum += (s->prob[i] = (float)exp(logits[s->idx[i]] - mx));
    if (s->top_p < 1.0) {
        double cum = 0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            cum += s->prob[i] / sum;
            if (cum >= s->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (s->min_p > 0) {
        int keep = 1;
        while (keep < n && s->prob[keep] >= s->min_p * s->prob[0]) keep++;
        n = keep;
    }
    /* Temperature over the survivors. */
    sum = 0;
    for (int i = 0; i < n; i++) sum += (s->prob[i] = (float)exp((logits[s->idx[i]] - mx) / s->temp));
    double r = tn_rng_uniform_double(&s->rng) * sum, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += s->prob[i];
        if (r < acc) return s->idx[i];
    }
    return s->idx[n - 1];
}
