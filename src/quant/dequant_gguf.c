/* dequant_gguf.c - the ggml types of dequant_gguf.h that quant.h does not
 * write, transcribed from ggml's dequantize_row_q4_1, _q5_1, _q2_K, _q3_K,
 * _q5_K, _iq4_nl and _iq4_xs (same operations in the same order, so the
 * floats are the same bit for bit; tests/unit/test_gguf_import.c checks
 * them against llama.cpp's prebuilt libggml-base). */
#include "quant/dequant_gguf.h"

#include <string.h>

#include "io/dtype.h"
#include "quant/quant.h"

enum { T_F32 = 0, T_F16 = 1, T_Q4_0 = 2, T_Q4_1 = 3, T_Q5_0 = 6, T_Q5_1 = 7, T_Q8_0 = 8, T_Q2_K = 10, T_Q3_K = 11, T_Q4_K = 12,
       T_Q5_K = 13, T_Q6_K = 14, T_IQ4_NL = 20, T_IQ4_XS = 23, T_F64 = 28, T_BF16 = 30 };

static float f16_at(const uint8_t *p) { return tn_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

static const int8_t kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

static void dq_q4_1(const uint8_t *x, float *y, int64_t k) {
    for (int64_t i = 0; i < k / 32; i++, x += 20) {
        const float d = f16_at(x), m = f16_at(x + 2);
        for (int j = 0; j < 16; ++j) {
            const int x0 = (x[4 + j] & 0x0F), x1 = (x[4 + j] >> 4);
            y[i * 32 + j + 0] = x0 * d + m;
            y[i * 32 + j + 16] = x1 * d + m;
        }
    }
}

static void dq_q5_1(const uint8_t *x, float *y, int64_t k) {
    for (int64_t i = 0; i < k / 32; i++, x += 24) {
        const float d = f16_at(x), m = f16_at(x + 2);
        uint32_t qh;
        memcpy(&qh, x + 4, sizeof qh);
        for (int j = 0; j < 16; ++j) {
            const uint8_t xh_0 = (uint8_t)(((qh >> (j + 0)) << 4) & 0x10);
            const uint8_t xh_1 = (uint8_t)(((qh >> (j + 12))) & 0x10);
            const int x0 = (x[8 + j] & 0x0F) | xh_0, x1 = (x[8 + j] >> 4) | xh_1;
            y[i * 32 + j + 0] = x0 * d + m;
            y[i * 32 + j + 16] = x1 * d + m;
        }
    }
}

/* block_q2_K: scales[16], qs[64], d, dmin */
static void dq_q2_k(const uint8_t *x, float *y, int64_t k) {
    for (int64_t i = 0; i < k / 256; i++, x += 84) {
        const float d = f16_at(x + 80), min = f16_at(x + 82);
        const uint8_t *q = x + 16, *scales = x;
        int is = 0;
        float dl, ml;
        for (int n = 0; n < 256; n += 128) {
            int shift = 0;
            for (int j = 0; j < 4; ++j) {
                uint8_t sc = scales[is++];
                dl = d * (sc & 0xF), ml = min * (sc >> 4);
                for (int l = 0; l < 16; ++l) *y++ = dl * ((int8_t)((q[l] >> shift) & 3)) - ml;
                sc = scales[is++];
                dl = d * (sc & 0xF), ml = min * (sc >> 4);
                for (int l = 0; l < 16; ++l) *y++ = dl * ((int8_t)((q[l + 16] >> shift) & 3)) - ml;
                shift += 2;
            }
            q += 32;
        }
    }
}

/* block_q3_K: hmask[32], qs[64], scales[12], d */
static void dq_q3_k(const uint8_t *x, float *y, int64_t k) {
    const uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
    uint32_t aux[4];
    const int8_t *scales = (const int8_t *)aux;
    for (int64_t i = 0; i < k / 256; i++, x += 110) {
        const float d_all = f16_at(x + 108);
        const uint8_t *q = x + 32, *hm = x;
        uint8_t m = 1;
        memcpy(aux, x + 96, 12);
        uint32_t tmp = aux[2];
        aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
        aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
        aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
        aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
        int is = 0;
        float dl;
        for (int n = 0; n < 256; n += 128) {
            int shift = 0;
            for (int j = 0; j < 4; ++j) {
                dl = d_all * (scales[is++] - 32);
                for (int l = 0; l < 16; ++l) *y++ = dl * ((int8_t)((q[l + 0] >> shift) & 3) - ((hm[l + 0] & m) ? 0 : 4));
                dl = d_all * (scales[is++] - 32);
                for (int l = 0; l < 16; ++l) *y++ = dl * ((int8_t)((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
                shift += 2;
                m <<= 1;
            }
            q += 32;
        }
    }
}

static void get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

/* block_q5_K: d, dmin, scales[12], qh[32], qs[128] */
static void dq_q5_k(const uint8_t *x, float *y, int64_t k) {
    for (int64_t i = 0; i < k / 256; i++, x += 176) {
        const uint8_t *ql = x + 48, *qh = x + 16, *sc_p = x + 4;
        const float d = f16_at(x), min = f16_at(x + 2);
        int is = 0;
        uint8_t sc, m;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < 256; j += 64) {
            get_scale_min_k4(is + 0, sc_p, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            get_scale_min_k4(is + 1, sc_p, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            ql += 32;
            is += 2;
            u1 = (uint8_t)(u1 << 2);
            u2 = (uint8_t)(u2 << 2);
        }
    }
}

static void dq_iq4_nl(const uint8_t *x, float *y, int64_t k) {
    for (int64_t i = 0; i < k / 32; i++, x += 18, y += 32) {
        const uint8_t *qs = x + 2;
        const float d = f16_at(x);
        for (int j = 0; j < 16; ++j) {
            y[j + 0] = d * kvalues_iq4nl[qs[j] & 0xf];
            y[j + 16] = d * kvalues_iq4nl[qs[j] >> 4];
        }
    }
}

/* block_iq4_xs: d, u16 scales_h, scales_l[4], qs[128] */
static void dq_iq4_xs(const uint8_t *x, float *y, int64_t k) {
    for (int64_t i = 0; i < k / 256; i++, x += 136) {
        const uint8_t *qs = x + 8;
        const float d = f16_at(x);
        const uint16_t scales_h = (uint16_t)(x[2] | (x[3] << 8));
        for (int ib = 0; ib < 8; ++ib) {
            const int ls = ((x[4 + ib / 2] >> 4 * (ib % 2)) & 0xf) | (((scales_h >> 2 * ib) & 3) << 4);
            const float dl = d * (ls - 32);
            for (int j = 0; j < 16; ++j) {
                y[j + 0] = dl * kvalues_iq4nl[qs[j] & 0xf];
                y[j + 16] = dl * kvalues_iq4nl[qs[j] >> 4];
            }
            y += 32;
            qs += 16;
        }
    }
}

int tn_gguf_can_dequantize(int t) {
    switch (t) {
    case T_F32: case T_F16: case T_BF16: case T_F64: case T_Q4_0: case T_Q4_1: case T_Q5_0: case T_Q5_1: case T_Q8_0:
    case T_Q2_K: case T_Q3_K: case T_Q4_K: case T_Q5_K: case T_Q6_K: case T_IQ4_NL: case T_IQ4_XS: return 1;
    }
    return 0;
}

const char *tn_gguf_dequantize_list(void) { return "F32, F16, BF16, F64, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS"; }

void tn_gguf_dequantize_row(int t, const void *src, float *y, int64_t n) {
    const uint8_t *x = src;
    switch (t) {
    case T_Q4_1: dq_q4_1(x, y, n); break;
    case T_Q5_1: dq_q5_1(x, y, n); break;
    case T_Q2_K: dq_q2_k(x, y, n); break;
    case T_Q3_K: dq_q3_k(x, y, n); break;
    case T_Q5_K: dq_q5_k(x, y, n); break;
    case T_IQ4_NL: dq_iq4_nl(x, y, n); break;
    case T_IQ4_XS: dq_iq4_xs(x, y, n); break;
    case T_F64:
        for (int64_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, x + 8 * i, 8);
            y[i] = (float)v;
        }
        break;
    default: tn_dequantize_row((tn_ggml_type)t, src, y, n); break;
    }
}
