/* quant_legacy.c - the 32-value block formats Q4_0, Q5_0 and Q8_0, as
 * ggml's quantize_row_q4_0_ref, _q5_0_ref and _q8_0_ref compute them.
 *
 * Each block of 32 values x gets one scale d (stored as fp16) and integers q
 * with x ≈ d·q:
 *   Q8_0: d = amax / 127,              q = round(x / d)           in [-127, 127]
 *   Q4_0: d = m / -8 (m: the value of largest magnitude, sign kept),
 *         q = min(15, trunc(x / d + 8.5)) - 8                     in [-8, 7]
 *   Q5_0: d = m / -16, q = min(31, trunc(x / d + 16.5)) - 16      in [-16, 15]
 * Dividing by the signed extreme maps it to exactly -8 (-16), so the 4-bit
 * range is used fully on the side that needs it. Every expression keeps
 * ggml's order of float operations: the bytes are the same. */
#include <math.h>
#include <string.h>

#include "io/dtype.h"
#include "quant/quant.h"

enum { QK = 32 };

static void put_f16(uint8_t *p, float v) {
    uint16_t h = tn_f32_to_f16(v);
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}

/* The value of largest magnitude (the first one on ties), and that magnitude. */
static float signed_extreme(const float *x, float *amax_out) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK; j++) {
        const float v = x[j];
        if (amax < fabsf(v)) {
            amax = fabsf(v);
            max = v;
        }
    }
    *amax_out = amax;
    return max;
}

void tn_quantize_row_q4_0(const float *x, void *dst, int64_t n) {
    uint8_t *y = dst; /* 18 bytes a block: d, qs[16] */
    for (int64_t i = 0; i < n / QK; i++, x += QK, y += 18) {
        float amax;
        const float max = signed_extreme(x, &amax);
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        put_f16(y, d);
        for (int j = 0; j < QK / 2; ++j) {
            const float x0 = x[0 + j] * id;
            const float x1 = x[QK / 2 + j] * id;
            int8_t t0 = (int8_t)(x0 + 8.5f), t1 = (int8_t)(x1 + 8.5f);
            const uint8_t xi0 = (uint8_t)(t0 < 15 ? t0 : 15);
            const uint8_t xi1 = (uint8_t)(t1 < 15 ? t1 : 15);
            y[2 + j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

void tn_quantize_row_q5_0(const float *x, void *dst, int64_t n) {
    uint8_t *y = dst; /* 22 bytes a block: d, qh (u32 LE), qs[16] */
    for (int64_t i = 0; i < n / QK; i++, x += QK, y += 22) {
        float amax;
        const float max = signed_extreme(x, &amax);
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        put_f16(y, d);
        uint32_t qh = 0;
        for (int j = 0; j < QK / 2; ++j) {
            const float x0 = x[0 + j] * id;
            const float x1 = x[QK / 2 + j] * id;
            int8_t t0 = (int8_t)(x0 + 16.5f), t1 = (int8_t)(x1 + 16.5f);
            const uint8_t xi0 = (uint8_t)(t0 < 31 ? t0 : 31);
            const uint8_t xi1 = (uint8_t)(t1 < 31 ? t1 : 31);
            y[6 + j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
            qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
            qh |= ((xi1 & 0x10u) >> 4) << (j + QK / 2);
        }
        for (int k = 0; k < 4; k++) y[2 + k] = (uint8_t)(qh >> (8 * k));
    }
}

void tn_quantize_row_q8_0(const float *x, void *dst, int64_t n) {
    uint8_t *y = dst; /* 34 bytes a block: d, qs[32] */
    for (int64_t i = 0; i < n / QK; i++, x += QK, y += 34) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) {
            const float a = fabsf(x[j]);
            amax = amax > a ? amax : a;
        }
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        put_f16(y, d);
        for (int j = 0; j < QK; ++j) {
            const float x0 = x[j] * id;
            y[2 + j] = (uint8_t)(int8_t)roundf(x0);
        }
    }
}
