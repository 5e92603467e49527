/* dequant.c - block formats back to fp32, as ggml's dequantize_row_q4_0,
 * _q5_0, _q8_0, _q4_K and _q6_K compute them (x = d·q, or d·sc·q - dmin·m
 * for Q4_K), and the float types. Used to write "what the GGUF holds" as an
 * HF folder (tune export --dequantized) and checked byte for byte against
 * ggml in tests/unit/test_quant.c. */
#include <string.h>

#include "io/dtype.h"
#include "quant/quant.h"

static float f16_at(const uint8_t *p) { return tn_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

static void get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

static void dq_q4_0(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / 32; i++, x += 18, y += 32) {
        const float d = f16_at(x);
        for (int j = 0; j < 16; ++j) {
            const int x0 = (x[2 + j] & 0x0F) - 8;
            const int x1 = (x[2 + j] >> 4) - 8;
            y[j] = x0 * d;
            y[j + 16] = x1 * d;
        }
    }
}

static void dq_q5_0(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / 32; i++, x += 22, y += 32) {
        const float d = f16_at(x);
        uint32_t qh = (uint32_t)x[2] | ((uint32_t)x[3] << 8) | ((uint32_t)x[4] << 16) | ((uint32_t)x[5] << 24);
        for (int j = 0; j < 16; ++j) {
            const uint8_t xh_0 = (uint8_t)(((qh >> (j + 0)) << 4) & 0x10);
            const uint8_t xh_1 = (uint8_t)(((qh >> (j + 12))) & 0x10);
            const int32_t x0 = ((x[6 + j] & 0x0F) | xh_0) - 16;
            const int32_t x1 = ((x[6 + j] >> 4) | xh_1) - 16;
            y[j] = x0 * d;
            y[j + 16] = x1 * d;
        }
    }
}

static void dq_q8_0(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / 32; i++, x += 34, y += 32) {
        const float d = f16_at(x);
        for (int j = 0; j < 32; ++j) y[j] = (int8_t)x[2 + j] * d;
    }
}

static void dq_q4_k(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / 256; i++, x += 144) {
        const uint8_t *q = x + 16, *scales = x + 4;
        const float d = f16_at(x);
        const float min = f16_at(x + 2);
        int is = 0;
        uint8_t sc, m;
        for (int j = 0; j < 256; j += 64) {
            get_scale_min_k4(is + 0, scales, &sc, &m);
            const float d1 = d * sc;
            const float m1 = min * m;
            get_scale_min_k4(is + 1, scales, &sc, &m);
            const float d2 = d * sc;
            const float m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
            q += 32;
            is += 2;
        }
    }
}

static void dq_q6_k(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / 256; i++, x += 210) {
        const float d = f16_at(x + 208);
        const uint8_t *ql = x, *qh = x + 128;
        const int8_t *sc = (const int8_t *)(x + 192);
        for (int k = 0; k < 256; k += 128) {
            for (int l = 0; l < 32; ++l) {
                int is = l / 16;
                const int8_t q1 = (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int8_t q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int8_t q3 = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l + 0] = d * sc[is + 0] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

void tn_dequantize_row(tn_ggml_type t, const void *src, float *y, int64_t n) {
    const uint8_t *x = src;
    switch (t) {
    case TN_GGML_F32: memcpy(y, src, (size_t)n * 4); break;
    case TN_GGML_F16:
        for (int64_t i = 0; i < n; i++) y[i] = f16_at(x + 2 * i);
        break;
    case TN_GGML_BF16:
        for (int64_t i = 0; i < n; i++) y[i] = tn_bf16_to_f32((uint16_t)(x[2 * i] | (x[2 * i + 1] << 8)));
        break;
    case TN_GGML_Q4_0: dq_q4_0(x, y, n); break;
    case TN_GGML_Q5_0: dq_q5_0(x, y, n); break;
    case TN_GGML_Q8_0: dq_q8_0(x, y, n); break;
    case TN_GGML_Q4_K: dq_q4_k(x, y, n); break;
    case TN_GGML_Q6_K: dq_q6_k(x, y, n); break;
    }
}
