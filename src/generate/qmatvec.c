/* qmatvec.c - see qmatvec.h. The block layouts are ggml's (quant/quant.h);
 * each kernel is the dequantizer of quant/dequant.c with the stores turned
 * into products with x, accumulated in 16 lanes. */
#include "generate/qmatvec.h"

#include <stdlib.h>
#include <string.h>

#include "io/dtype.h"
#include "io/gguf_read.h"
#include "quant/dequant_gguf.h"
#include "quant/quant.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define TN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TN_CLONES
#endif

#define LANES 16

static inline float f16_at(const uint8_t *p) { return tn_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

static inline float hsum(const float *acc) {
    float s = 0;
    for (int j = 0; j < LANES; j++) s += acc[j];
    return s;
}

TN_CLONES static float dot_q8_0(const uint8_t *b, const float *x, int64_t n) {
    float acc[LANES] = {0};
    for (int64_t i = 0; i < n / 32; i++, b += 34, x += 32) {
        const float d = f16_at(b);
        const int8_t *q = (const int8_t *)(b + 2);
        for (int j = 0; j < LANES; j++) acc[j] += d * ((float)q[j] * x[j] + (float)q[j + 16] * x[j + 16]);
    }
    return hsum(acc);
}

TN_CLONES static float dot_q4_0(const uint8_t *b, const float *x, int64_t n) {
    float acc[LANES] = {0};
    for (int64_t i = 0; i < n / 32; i++, b += 18, x += 32) {
        const float d = f16_at(b);
        const uint8_t *q = b + 2;
        for (int j = 0; j < LANES; j++) acc[j] += d * ((float)((q[j] & 0x0F) - 8) * x[j] + (float)((q[j] >> 4) - 8) * x[j + 16]);
    }
    return hsum(acc);
}

TN_CLONES static float dot_q5_0(const uint8_t *b, const float *x, int64_t n) {
    float acc[LANES] = {0};
    for (int64_t i = 0; i < n / 32; i++, b += 22, x += 32) {
        const float d = f16_at(b);
        uint32_t qh;
        memcpy(&qh, b + 2, 4);
        const uint8_t *q = b + 6;
        for (int j = 0; j < LANES; j++) {
            const int x0 = (int)((q[j] & 0x0F) | (((qh >> j) << 4) & 0x10)) - 16;
            const int x1 = (int)((q[j] >> 4) | ((qh >> (j + 12)) & 0x10)) - 16;
            acc[j] += d * ((float)x0 * x[j] + (float)x1 * x[j + 16]);
        }
    }
    return hsum(acc);
}

static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

TN_CLONES static float dot_q4_k(const uint8_t *b, const float *x, int64_t n) {
    float acc[LANES] = {0};
    for (int64_t i = 0; i < n / 256; i++, b += 144) {
        const float d = f16_at(b), dmin = f16_at(b + 2);
        const uint8_t *sc = b + 4, *q = b + 16;
        for (int c = 0; c < 4; c++, q += 32, x += 64) {
            uint8_t s1, m1, s2, m2;
            scale_min_k4(2 * c, sc, &s1, &m1);
            scale_min_k4(2 * c + 1, sc, &s2, &m2);
            const float d1 = d * s1, n1 = dmin * m1, d2 = d * s2, n2 = dmin * m2;
            for (int j = 0; j < LANES; j++) {
                const float lo = (float)(q[j] & 0xF) * x[j] + (float)(q[j + 16] & 0xF) * x[j + 16];
                const float hi = (float)(q[j] >> 4) * x[j + 32] + (float)(q[j + 16] >> 4) * x[j + 48];
                acc[j] += d1 * lo - n1 * (x[j] + x[j + 16]) + d2 * hi - n2 * (x[j + 32] + x[j + 48]);
            }
        }
    }
    return hsum(acc);
}

TN_CLONES static float dot_q6_k(const uint8_t *b, const float *x, int64_t n) {
    float acc[LANES] = {0};
    for (int64_t i = 0; i < n / 256; i++, b += 210) {
        const float d = f16_at(b + 208);
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, x += 128)
            for (int half = 0; half < 2; half++) {
                const int o = half * 16;
                const float a1 = d * sc[half], a2 = d * sc[half + 2], a3 = d * sc[half + 4], a4 = d * sc[half + 6];
                for (int j = 0; j < LANES; j++) {
                    const int l = o + j;
                    const int q1 = (int)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    const int q2 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    const int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    const int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    acc[j] += a1 * ((float)q1 * x[l]) + a2 * ((float)q2 * x[l + 32]) + a3 * ((float)q3 * x[l + 64]) + a4 * ((float)q4 * x[l + 96]);
                }
            }
    }
    return hsum(acc);
}

int tn_qmatvec_fast(int type) {
    return type == TN_GGML_Q8_0 || type == TN_GGML_Q4_0 || type == TN_GGML_Q5_0 || type == TN_GGML_Q4_K || type == TN_GGML_Q6_K;
}

void tn_qmatvec(int type, const void *w, const float *x, float *y, int64_t rows, int64_t cols) {
    const uint64_t row_bytes = (uint64_t)(cols / tn_gguf_type_block(type)) * (uint64_t)tn_gguf_type_bytes(type);
    const uint8_t *base = w;
    float (*dot)(const uint8_t *, const float *, int64_t) = NULL;
    switch (type) {
    case TN_GGML_Q8_0: dot = dot_q8_0; break;
    case TN_GGML_Q4_0: dot = dot_q4_0; break;
    case TN_GGML_Q5_0: dot = dot_q5_0; break;
    case TN_GGML_Q4_K: dot = dot_q4_k; break;
    case TN_GGML_Q6_K: dot = dot_q6_k; break;
    default: break;
    }
    if (dot) {
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
        for (int64_t r = 0; r < rows; r++) y[r] = dot(base + (uint64_t)r * row_bytes, x, cols);
        return;
    }
    /* Other types: 256 values (a whole number of blocks of every ggml type) at a time. */
    const int blk = tn_gguf_type_block(type);
    const uint64_t chunk_bytes = (uint64_t)(256 / blk) * (uint64_t)tn_gguf_type_bytes(type);
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *p = base + (uint64_t)r * row_bytes;
        float buf[256];
        double s = 0;
        for (int64_t c = 0; c < cols; c += 256) {
            const int64_t m = cols - c < 256 ? cols - c : 256;
            tn_gguf_dequantize_row(type, p + (uint64_t)(c / 256) * chunk_bytes, buf, m);
            for (int64_t k = 0; k < m; k++) s += (double)buf[k] * x[c + k];
        }
        y[r] = (float)s;
    }
}
