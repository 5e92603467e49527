#include "quant/nf4.h"

#include <math.h>
#include <string.h>

/* bitsandbytes' NF4 code (create_normal_map(offset=0.9677083), 4 bits). */
const float tn_nf4_levels[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f, -0.18477343022823334f,
    -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
};

/* Layout: [fp32 offset][fp32 group scales][int8 absmax codes][nibbles] */
static int64_t n_blocks(int64_t n) { return (n + TN_NF4_BLOCK - 1) / TN_NF4_BLOCK; }
static int64_t n_groups(int64_t n) { return (n_blocks(n) + TN_NF4_GROUP - 1) / TN_NF4_GROUP; }

uint64_t tn_nf4_bytes(int64_t n) { return 4 + 4 * (uint64_t)n_groups(n) + (uint64_t)n_blocks(n) + (uint64_t)(n + 1) / 2; }

static int nearest(float v) {
    /* midpoints between consecutive levels decide, as bitsandbytes' tree does */
    int best = 0;
    float bd = fabsf(v - tn_nf4_levels[0]);
    for (int i = 1; i < 16; i++) {
        float d = fabsf(v - tn_nf4_levels[i]);
        if (d < bd) bd = d, best = i;
    }
    return best;
}

void tn_nf4_quantize(const float *x, int64_t n, void *dst) {
    int64_t nb = n_blocks(n), ng = n_groups(n);
    unsigned char *p = dst;
    float *offset = (float *)(void *)p;
    float *scales = offset + 1;
    int8_t *codes = (int8_t *)(scales + ng);
    unsigned char *nib = (unsigned char *)(codes + nb);
    /* first level: per-block absmax */
    float absmax_stack[TN_NF4_GROUP];
    double mean = 0;
    for (int64_t b = 0; b < nb; b++) {
        float m = 0;
        for (int64_t i = b * TN_NF4_BLOCK; i < n && i < (b + 1) * TN_NF4_BLOCK; i++) m = fmaxf(m, fabsf(x[i]));
        mean += m;
    }
    mean /= (double)(nb ? nb : 1);
    *offset = (float)mean;
    for (int64_t g = 0; g < ng; g++) {
        int64_t b0 = g * TN_NF4_GROUP, b1 = b0 + TN_NF4_GROUP < nb ? b0 + TN_NF4_GROUP : nb;
        float gmax = 0;
        for (int64_t b = b0; b < b1; b++) {
            float m = 0;
            for (int64_t i = b * TN_NF4_BLOCK; i < n && i < (b + 1) * TN_NF4_BLOCK; i++) m = fmaxf(m, fabsf(x[i]));
            absmax_stack[b - b0] = m - *offset;
            gmax = fmaxf(gmax, fabsf(absmax_stack[b - b0]));
        }
        float s = gmax / 127.0f;
        scales[g] = s;
        for (int64_t b = b0; b < b1; b++) {
            int c = s > 0 ? (int)lrintf(absmax_stack[b - b0] / s) : 0;
            codes[b] = (int8_t)(c > 127 ? 127 : c < -127 ? -127 : c);
            /* the weights are coded against the absmax as it will be decoded */
            float am = *offset + s * (float)codes[b];
            float inv = am > 0 ? 1.0f / am : 0.0f;
            for (int64_t i = b * TN_NF4_BLOCK; i < n && i < (b + 1) * TN_NF4_BLOCK; i++) {
                int q = nearest(x[i] * inv);
                if (i % 2 == 0) nib[i / 2] = (unsigned char)q;
                else nib[i / 2] |= (unsigned char)(q << 4);
            }
        }
    }
}

void tn_nf4_dequantize(const void *src, int64_t n, float *dst) {
    int64_t nb = n_blocks(n), ng = n_groups(n);
    const float *offset = src, *scales = offset + 1;
    const int8_t *codes = (const int8_t *)(scales + ng);
    const unsigned char *nib = (const unsigned char *)(codes + nb);
#pragma omp parallel for if (n > (1 << 16))
    for (int64_t b = 0; b < nb; b++) {
        float am = *offset + scales[b / TN_NF4_GROUP] * (float)codes[b];
        for (int64_t i = b * TN_NF4_BLOCK; i < n && i < (b + 1) * TN_NF4_BLOCK; i++) {
            int q = (i % 2 == 0) ? (nib[i / 2] & 15) : (nib[i / 2] >> 4);
            dst[i] = tn_nf4_levels[q] * am;
        }
    }
}
