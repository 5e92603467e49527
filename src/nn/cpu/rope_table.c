/* rope_table.c - the rotary embedding's frequencies and its cos/sin tables,
 * with the rescalings of Llama 3 and of linear position interpolation. All
 * computed in double; the float tables are the double ones rounded. */
#include <math.h>
#include <stdlib.h>

#include "nn/ops.h"
#include "util/error.h"

/* inv_freq[i] = theta^(−2i/hd), i < hd/2, then rescaled:
 *
 * LINEAR (transformers' "linear"): inv_freq / factor, the same as dividing
 * positions by factor.
 *
 * LLAMA3 (transformers' _compute_llama3_parameters): with
 * wavelen = 2π / inv_freq, L = original_max_pos,
 *     wavelen < L / high_freq_factor   ->  inv_freq             (kept)
 *     wavelen > L / low_freq_factor    ->  inv_freq / factor    (scaled)
 *     otherwise, with smooth = (L / wavelen − low) / (high − low):
 *                                          (1 − smooth) · inv_freq / factor + smooth · inv_freq
 * (transformers computes this in float32; here it is double, which moves
 * an angle by at most ~1e-7 of itself.) */
void tn_rope_inv_freq(double *inv_freq, int head_dim, const tn_rope_params *p) {
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        double f = pow(p->theta, -(double)(2 * i) / head_dim);
        if (p->scaling == TN_ROPE_SCALE_LINEAR) {
            f /= p->factor;
        } else if (p->scaling == TN_ROPE_SCALE_LLAMA3) {
            double L = p->original_max_pos;
            double low_wavelen = L / p->low_freq_factor, high_wavelen = L / p->high_freq_factor;
            double wavelen = 2 * 3.14159265358979323846 / f;
            if (wavelen > low_wavelen) {
                f = f / p->factor;
            } else if (wavelen >= high_wavelen) {
                double smooth = (L / wavelen - p->low_freq_factor) / (p->high_freq_factor - p->low_freq_factor);
                f = (1 - smooth) * f / p->factor + smooth * f;
            }
        }
        inv_freq[i] = f;
    }
}

int tn_rope_table_init(tn_rope_table *t, int max_pos, int head_dim, const tn_rope_params *p) {
    *t = (tn_rope_table){0};
    if (max_pos <= 0) return tn_fail("rope table: max positions must be positive, got %d", max_pos);
    if (head_dim <= 0 || head_dim % 2)
        return tn_fail("rope table: head dim must be positive and even, got %d", head_dim);
    if (!(p->theta > 0)) return tn_fail("rope table: theta must be positive, got %g", p->theta);
    if (p->scaling != TN_ROPE_SCALE_NONE && !(p->factor > 0))
        return tn_fail("rope table: scaling factor must be positive, got %g", p->factor);
    if (p->scaling == TN_ROPE_SCALE_LLAMA3) {
        if (!(p->low_freq_factor > 0) || !(p->high_freq_factor > p->low_freq_factor))
            return tn_fail("rope table: llama3 scaling needs 0 < low_freq_factor < high_freq_factor, got %g and %g",
                           p->low_freq_factor, p->high_freq_factor);
        if (p->original_max_pos <= 0)
            return tn_fail("rope table: llama3 scaling needs original_max_position_embeddings > 0, got %d",
                           p->original_max_pos);
    }
    int half = head_dim / 2;
    size_t n = (size_t)max_pos * half;
    double *inv_freq = tn_malloc(half * sizeof(double), "rope frequencies");
    t->cos = tn_malloc(n * sizeof(float), "rope table");
    t->sin = tn_malloc(n * sizeof(float), "rope table");
    t->cos_d = tn_malloc(n * sizeof(double), "rope table");
    t->sin_d = tn_malloc(n * sizeof(double), "rope table");
    if (!inv_freq || !t->cos || !t->sin || !t->cos_d || !t->sin_d) {
        free(inv_freq);
        tn_rope_table_free(t);
        return -1;
    }
    t->max_pos = max_pos;
    t->half = half;
    tn_rope_inv_freq(inv_freq, head_dim, p);
    for (int pos = 0; pos < max_pos; pos++) {
        for (int i = 0; i < half; i++) {
            double angle = pos * inv_freq[i];
            size_t k = (size_t)pos * half + i;
            t->cos_d[k] = cos(angle);
            t->sin_d[k] = sin(angle);
            t->cos[k] = (float)t->cos_d[k];
            t->sin[k] = (float)t->sin_d[k];
        }
    }
    free(inv_freq);
    return 0;
}

void tn_rope_table_free(tn_rope_table *t) {
    free(t->cos);
    free(t->sin);
    free(t->cos_d);
    free(t->sin_d);
    *t = (tn_rope_table){0};
}
