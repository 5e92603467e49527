/* qmatvec.c - see qmatvec.h. The block layouts are ggml's (quant/quant.h);
 * each kernel is the dequantizer of quant/dequant.c with the stores turned
 * into products with x, accumulated in 16 lanes. */
#include "generate/qmatvec.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "generate/pool.h"
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

TN_CLONES static float dot_q8_0(const uint8_t *b, const float *x, int64_t n, const float *bsum) {
    (void)bsum;
    float acc[LANES] = {0};
    for (int64_t i = 0; i < n / 32; i++, b += 34, x += 32) {
        const float d = f16_at(b);
        const int8_t *q = (const int8_t *)(b + 2);
        for (int j = 0; j < LANES; j++) acc[j] += d * ((float)q[j] * x[j] + (float)q[j + 16] * x[j + 16]);
    }
    return hsum(acc);
}

TN_CLONES static float dot_q4_0(const uint8_t *b, const float *x, int64_t n, const float *bsum) {
    (void)bsum;
    float acc[LANES] = {0};
    for (int64_t i = 0; i < n / 32; i++, b += 18, x += 32) {
        const float d = f16_at(b);
        const uint8_t *q = b + 2;
        for (int j = 0; j < LANES; j++) acc[j] += d * ((float)((q[j] & 0x0F) - 8) * x[j] + (float)((q[j] >> 4) - 8) * x[j + 16]);
    }
    return hsum(acc);
}

TN_CLONES static float dot_q5_0(const uint8_t *b, const float *x, int64_t n, const float *bsum) {
    (void)bsum;
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

TN_CLONES static float dot_q4_k(const uint8_t *b, const float *x, int64_t n, const float *bsum) {
    (void)bsum;
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

TN_CLONES static float dot_q6_k(const uint8_t *b, const float *x, int64_t n, const float *bsum) {
    (void)bsum;
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


/* ---- 16-bit rows (BF16, F16 of a Hugging Face folder or a GGUF): each
 * weight widened to fp32 (exact: every bf16 and f16 value is an fp32
 * value) and multiplied by fp32 x, so the result is convert-then-multiply
 * up to the order of the float additions. Portable: 16 lanes the compiler
 * vectorises (GCC clones for AVX-512 and AVX2 on x86-64); the values past
 * the last whole 16 added one by one. */
static inline float bf16_at(const uint8_t *p) {
    const uint32_t u = (uint32_t)(p[0] | (p[1] << 8)) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

TN_CLONES static float dot_bf16(const uint8_t *b, const float *x, int64_t n) {
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += bf16_at(b + 2 * (i + j)) * x[i + j];
    float s = hsum(acc);
    for (; i < n; i++) s += bf16_at(b + 2 * i) * x[i];
    return s;
}

static float dot_f16(const uint8_t *b, const float *x, int64_t n) {
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += f16_at(b + 2 * (i + j)) * x[i + j];
    float s = hsum(acc);
    for (; i < n; i++) s += f16_at(b + 2 * i) * x[i];
    return s;
}


/* ---- int8 activations: x quantized once per product into blocks of 32
 * (fp32 scale d = amax/127, int8 values, as llama.cpp's quantize_row_q8_0
 * but with an fp32 scale), sums of the int8 values per 16 for the offsets
 * (Q4_0's 8, Q5_0's 16, Q6_K's 32) and mins (Q4_K). The weights' integers
 * multiply x's int8 values exactly; each block's integer sum is scaled by
 * the weight's and x's scales. */
typedef struct {
    const int8_t *q;  /* cols values */
    const float *d;   /* cols/32 scales */
    const int32_t *s; /* cols/16 sums of q */
    const int32_t *s32; /* cols/32 sums of q */
} tn_xq;

static void quantize_x(const float *x, int64_t n, int8_t *q, float *d, int32_t *s, int32_t *s32) {
    for (int64_t b = 0; b < n / 32; b++, x += 32, q += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
        const float db = amax / 127.0f, id = db > 0 ? 127.0f / amax : 0.0f;
        d[b] = db;
        for (int h = 0; h < 2; h++) {
            int32_t t = 0;
            for (int j = 16 * h; j < 16 * h + 16; j++) {
                q[j] = (int8_t)lrintf(x[j] * id);
                t += q[j];
            }
            s[2 * b + h] = t;
        }
        s32[b] = s[2 * b] + s[2 * b + 1];
    }
}

static float i8_q8_0(const uint8_t *b, const tn_xq *x, int64_t n) {
    float acc = 0;
    for (int64_t i = 0; i < n / 32; i++, b += 34) {
        const int8_t *q = (const int8_t *)(b + 2), *v = x->q + 32 * i;
        int32_t t = 0;
        for (int j = 0; j < 32; j++) t += q[j] * v[j];
        acc += f16_at(b) * x->d[i] * (float)t;
    }
    return acc;
}

static float i8_q4_0(const uint8_t *b, const tn_xq *x, int64_t n) {
    float acc = 0;
    for (int64_t i = 0; i < n / 32; i++, b += 18) {
        const uint8_t *q = b + 2;
        const int8_t *v = x->q + 32 * i;
        int32_t t = 0;
        for (int j = 0; j < 16; j++) t += ((q[j] & 0x0F) - 8) * v[j] + ((q[j] >> 4) - 8) * v[j + 16];
        acc += f16_at(b) * x->d[i] * (float)t;
    }
    return acc;
}

static float i8_q5_0(const uint8_t *b, const tn_xq *x, int64_t n) {
    float acc = 0;
    for (int64_t i = 0; i < n / 32; i++, b += 22) {
        uint32_t qh;
        memcpy(&qh, b + 2, 4);
        const uint8_t *q = b + 6;
        const int8_t *v = x->q + 32 * i;
        int32_t t = 0;
        for (int j = 0; j < 16; j++) {
            const int x0 = (int)((q[j] & 0x0F) | (((qh >> j) << 4) & 0x10)) - 16;
            const int x1 = (int)((q[j] >> 4) | ((qh >> (j + 12)) & 0x10)) - 16;
            t += x0 * v[j] + x1 * v[j + 16];
        }
        acc += f16_at(b) * x->d[i] * (float)t;
    }
    return acc;
}

static float i8_q4_k(const uint8_t *b, const tn_xq *x, int64_t n) {
    float acc = 0;
    for (int64_t i = 0; i < n / 256; i++, b += 144) {
        const float d = f16_at(b), dmin = f16_at(b + 2);
        const uint8_t *sc = b + 4, *q = b + 16;
        for (int c = 0; c < 4; c++, q += 32) {
            const int64_t k = 8 * i + 2 * c; /* x block of the low nibbles; k + 1 the high */
            const int8_t *v = x->q + 32 * k;
            uint8_t s1, m1, s2, m2;
            scale_min_k4(2 * c, sc, &s1, &m1);
            scale_min_k4(2 * c + 1, sc, &s2, &m2);
            int32_t lo = 0, hi = 0;
            for (int j = 0; j < 32; j++) lo += (q[j] & 0xF) * v[j], hi += (q[j] >> 4) * v[j + 32];
            acc += x->d[k] * (d * s1 * (float)lo - dmin * m1 * (float)(x->s[2 * k] + x->s[2 * k + 1])) +
                   x->d[k + 1] * (d * s2 * (float)hi - dmin * m2 * (float)(x->s[2 * k + 2] + x->s[2 * k + 3]));
        }
    }
    return acc;
}

static float i8_q6_k(const uint8_t *b, const tn_xq *x, int64_t n) {
    float acc = 0;
    for (int64_t i = 0; i < n / 256; i++, b += 210) {
        const float d = f16_at(b + 208);
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8) {
            const int64_t k0 = 8 * i + 4 * h; /* x blocks k0..k0+3: values 32k.. of this half */
            int32_t t[8] = {0};                /* per 16 values: t[2k + half] */
            for (int l = 0; l < 32; l++) {
                const int hf = l >> 4;
                const int8_t *v = x->q + 32 * k0 + l;
                t[0 + hf] += ((int)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32) * v[0];
                t[2 + hf] += ((int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32) * v[32];
                t[4 + hf] += ((int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32) * v[64];
                t[6 + hf] += ((int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32) * v[96];
            }
            for (int k = 0; k < 4; k++) acc += d * x->d[k0 + k] * (float)(sc[2 * k] * t[2 * k] + sc[2 * k + 1] * t[2 * k + 1]);
        }
    }
    return acc;
}

#if defined(__x86_64__) && defined(__GNUC__)
/* AVX2 + FMA + F16C kernels (x86-64-v3), chosen at run time: the int8 (or
 * unpacked nibble) values widened to fp32 eight at a time and multiplied
 * into 8 lanes by FMA; the same sums as the portable kernels in another
 * order. */
#include <immintrin.h>
#define V3 __attribute__((target("avx2,fma,f16c")))
#define CVT8(v) _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v))

V3 static inline float v3_f16(const uint8_t *p) {
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(p[0] | (p[1] << 8))));
}
V3 static inline __m256 v3_dot16(__m128i q, const float *x) {
    __m256 a = _mm256_mul_ps(CVT8(q), _mm256_loadu_ps(x));
    return _mm256_fmadd_ps(CVT8(_mm_srli_si128(q, 8)), _mm256_loadu_ps(x + 8), a);
}
V3 static inline __m256 v3_dot32(__m256i q, const float *x) {
    return _mm256_add_ps(v3_dot16(_mm256_castsi256_si128(q), x), v3_dot16(_mm256_extracti128_si256(q, 1), x + 16));
}
V3 static inline float v3_hsum(__m256 v) {
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}

V3 static float v3_q8_0(const uint8_t *b, const float *x, int64_t n, const float *bsum) {
    (void)bsum;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 32; i++, b += 34, x += 32)
        acc = _mm256_fmadd_ps(_mm256_set1_ps(v3_f16(b)), v3_dot32(_mm256_loadu_si256((const __m256i *)(b + 2)), x), acc);
    return v3_hsum(acc);
}

V3 static float v3_q4_0(const uint8_t *b, const float *x, int64_t n, const float *bsum) {
    (void)bsum;
    __m256 acc = _mm256_setzero_ps();
    const __m128i m4 = _mm_set1_epi8(0x0F), k8 = _mm_set1_epi8(8);
    for (int64_t i = 0; i < n / 32; i++, b += 18, x += 32) {
        __m128i q = _mm_loadu_si128((const __m128i *)(b + 2));
        __m128i lo = _mm_sub_epi8(_mm_and_si128(q, m4), k8), hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), m4), k8);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(v3_f16(b)), _mm256_add_ps(v3_dot16(lo, x), v3_dot16(hi, x + 16)), acc);
    }
    return v3_hsum(acc);
}

V3 static float v3_q5_0(const uint8_t *b, const float *x, int64_t n, const float *bsum) {
    (void)bsum;
    __m256 acc = _mm256_setzero_ps();
    const __m128i m4 = _mm_set1_epi8(0x0F);
    /* byte j of the fifth-bit mask: 0xFF where bit j of qh is set (llama.cpp's bytes_from_bits_32) */
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0x0000000000000000);
    const __m256i bits = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe), ones = _mm256_set1_epi64x(-1);
    const __m256i b10 = _mm256_set1_epi8(0x10), k16 = _mm256_set1_epi8(16);
    for (int64_t i = 0; i < n / 32; i++, b += 22, x += 32) {
        uint32_t qh;
        memcpy(&qh, b + 2, 4);
        __m256i hb = _mm256_cmpeq_epi8(_mm256_or_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf), bits), ones);
        __m128i q = _mm_loadu_si128((const __m128i *)(b + 6));
        __m256i nib = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m4), _mm_and_si128(q, m4));
        __m256i v = _mm256_sub_epi8(_mm256_or_si256(nib, _mm256_and_si256(hb, b10)), k16);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(v3_f16(b)), v3_dot32(v, x), acc);
    }
    return v3_hsum(acc);
}

V3 static float v3_q4_k(const uint8_t *b, const float *x, int64_t n, const float *bsum) {
    __m256 acc = _mm256_setzero_ps();
    float corr = 0;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t i = 0; i < n / 256; i++, b += 144) {
        const float d = v3_f16(b), dmin = v3_f16(b + 2);
        const uint8_t *sc = b + 4, *q = b + 16;
        for (int c = 0; c < 4; c++, q += 32, x += 64, bsum += 2) {
            uint8_t s1, m1, s2, m2;
            scale_min_k4(2 * c, sc, &s1, &m1);
            scale_min_k4(2 * c + 1, sc, &s2, &m2);
            __m256i qq = _mm256_loadu_si256((const __m256i *)q);
            __m256i lo = _mm256_and_si256(qq, m4), hi = _mm256_and_si256(_mm256_srli_epi16(qq, 4), m4);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * s1), v3_dot32(lo, x), acc);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * s2), v3_dot32(hi, x + 32), acc);
            corr += dmin * m1 * bsum[0] + dmin * m2 * bsum[1];
        }
    }
    return v3_hsum(acc) - corr;
}

V3 static float v3_q6_k(const uint8_t *b, const float *x, int64_t n, const float *bsum) {
    (void)bsum;
    __m256 acc = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3), k32 = _mm256_set1_epi8(32);
    for (int64_t i = 0; i < n / 256; i++, b += 210) {
        const float d = v3_f16(b + 208);
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, x += 128) {
            __m256i L0 = _mm256_loadu_si256((const __m256i *)ql), L1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i Hh = _mm256_loadu_si256((const __m256i *)qh);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(L0, m4), _mm256_slli_epi16(_mm256_and_si256(Hh, m3), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(L1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(Hh, 2), m3), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(L0, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(Hh, 4), m3), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(L1, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(Hh, 6), m3), 4));
            for (int k = 0; k < 4; k++) {
                __m256i v = _mm256_sub_epi8(q[k], k32);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sc[2 * k]), v3_dot16(_mm256_castsi256_si128(v), x + 32 * k), acc);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sc[2 * k + 1]), v3_dot16(_mm256_extracti128_si256(v, 1), x + 32 * k + 16), acc);
            }
        }
    }
    return v3_hsum(acc);
}


/* quantize_x with AVX2: the same values bit for bit (the max of |x| is
 * exact, the scale the same scalar division, and cvtps2dq rounds to
 * nearest-even as lrintf does in the default rounding mode). */
V3 static void v3_quantize_x(const float *x, int64_t n, int8_t *q, float *d, int32_t *s, int32_t *s32) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t b = 0; b < n / 32; b++, x += 32, q += 32) {
        const __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8), v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
        const __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                       _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float db = amax / 127.0f, id = db > 0 ? 127.0f / amax : 0.0f;
        d[b] = db;
        const __m256 vid = _mm256_set1_ps(id);
        const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, vid)), i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, vid));
        const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, vid)), i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, vid));
        const __m256i lo = _mm256_add_epi32(i0, i1), hi = _mm256_add_epi32(i2, i3);
        __m128i h = _mm_hadd_epi32(_mm_add_epi32(_mm256_castsi256_si128(lo), _mm256_extracti128_si256(lo, 1)),
                                   _mm_add_epi32(_mm256_castsi256_si128(hi), _mm256_extracti128_si256(hi, 1)));
        h = _mm_hadd_epi32(h, h); /* [Σ first 16, Σ last 16, ...] */
        s[2 * b] = _mm_cvtsi128_si32(h), s[2 * b + 1] = _mm_extract_epi32(h, 1);
        s32[b] = s[2 * b] + s[2 * b + 1];
        const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        _mm256_storeu_si256((__m256i *)q, _mm256_permutevar8x32_epi32(p, order));
    }
}

/* int8 activations (see tn_xq): qmatvec_x86.h's kernels, for AVX2
 * (maddubs multiplies unsigned by signed bytes into int16 pairs, madd sums
 * the pairs into 8 int32 lanes) and for AVX-512 VNNI (vpdpbusd does both in
 * one instruction; Zen 4, Ice Lake and later). */
#define KATTR V3
#define KN(name) v3i_##name
#define UDOT(u, s) _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1))
/* byte k of the fifth-bit mask: 0xFF where bit k of qh is set (llama.cpp's bytes_from_bits_32) */
#define HIBIT5(u, p) v3_hibit5((u), (p))
V3 static inline __m256i v3_hibit5(__m256i u, const uint8_t *p) {
    uint32_t qh;
    memcpy(&qh, p, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0x0000000000000000);
    const __m256i hb = _mm256_cmpeq_epi8(_mm256_or_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf), _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe)),
                                         _mm256_set1_epi64x(-1));
    return _mm256_or_si256(u, _mm256_and_si256(hb, _mm256_set1_epi8(0x10)));
}
#include "generate/qmatvec_x86.h"
#undef KATTR
#undef KN
#undef UDOT
#undef HIBIT5

#define VN __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")))
#define KATTR VN
#define KN(name) vni_##name
#define UDOT(u, s) _mm256_dpbusd_epi32(_mm256_setzero_si256(), (u), (s))
#define HIBIT5(u, p) vn_hibit5((u), (p))
VN static inline __m256i vn_hibit5(__m256i u, const uint8_t *p) {
    uint32_t qh;
    memcpy(&qh, p, 4);
    return _mm256_mask_add_epi8(u, (__mmask32)qh, u, _mm256_set1_epi8(0x10));
}
#include "generate/qmatvec_x86.h"
#undef KATTR
#undef KN
#undef UDOT
#undef HIBIT5

/* 16-bit rows, AVX2 + FMA + F16C: 8 weights widened at a time (BF16: the
 * 16 bits shifted to the top of a 32-bit lane; F16: vcvtph2ps), four
 * accumulators of 8 lanes over 32 values, then 8 at a time, the last < 8
 * one by one. */
#define V3_BF8(p) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))
#define V3_H8(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define V3_DOT16(NAME, LOAD, SCALAR)                                                                                              \
    V3 static float NAME(const uint8_t *b, const float *x, int64_t n) {                                                          \
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();          \
        int64_t i = 0;                                                                                                            \
        for (; i + 32 <= n; i += 32) {                                                                                            \
            a0 = _mm256_fmadd_ps(LOAD(b + 2 * i), _mm256_loadu_ps(x + i), a0);                                                    \
            a1 = _mm256_fmadd_ps(LOAD(b + 2 * i + 16), _mm256_loadu_ps(x + i + 8), a1);                                           \
            a2 = _mm256_fmadd_ps(LOAD(b + 2 * i + 32), _mm256_loadu_ps(x + i + 16), a2);                                          \
            a3 = _mm256_fmadd_ps(LOAD(b + 2 * i + 48), _mm256_loadu_ps(x + i + 24), a3);                                          \
        }                                                                                                                         \
        for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(LOAD(b + 2 * i), _mm256_loadu_ps(x + i), a0);                             \
        float s = v3_hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));                                           \
        for (; i < n; i++) s += SCALAR(b + 2 * i) * x[i];                                                                        \
        return s;                                                                                                                 \
    }
V3_DOT16(v3_bf16, V3_BF8, bf16_at)
V3_DOT16(v3_f16row, V3_H8, v3_f16)

/* 16-bit rows, AVX-512 (F, BW, VL): 16 weights at a time, four accumulators
 * of 16 lanes over 64 values, then 16 at a time, the last < 16 by a masked
 * load (zeros beyond the row: they add 0·0). */
#define V5 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl")))
#define V5_BF16(v) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16))
#define V5_H16(v) _mm512_cvtph_ps(v)
#define V5_DOT16(NAME, CVT)                                                                                                       \
    V5 static float NAME(const uint8_t *b, const float *x, int64_t n) {                                                          \
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();          \
        int64_t i = 0;                                                                                                            \
        for (; i + 64 <= n; i += 64) {                                                                                            \
            a0 = _mm512_fmadd_ps(CVT(_mm256_loadu_si256((const __m256i *)(b + 2 * i))), _mm512_loadu_ps(x + i), a0);             \
            a1 = _mm512_fmadd_ps(CVT(_mm256_loadu_si256((const __m256i *)(b + 2 * i + 32))), _mm512_loadu_ps(x + i + 16), a1);    \
            a2 = _mm512_fmadd_ps(CVT(_mm256_loadu_si256((const __m256i *)(b + 2 * i + 64))), _mm512_loadu_ps(x + i + 32), a2);    \
            a3 = _mm512_fmadd_ps(CVT(_mm256_loadu_si256((const __m256i *)(b + 2 * i + 96))), _mm512_loadu_ps(x + i + 48), a3);    \
        }                                                                                                                         \
        for (; i + 16 <= n; i += 16)                                                                                              \
            a0 = _mm512_fmadd_ps(CVT(_mm256_loadu_si256((const __m256i *)(b + 2 * i))), _mm512_loadu_ps(x + i), a0);             \
        if (i < n) {                                                                                                              \
            const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);                                                                 \
            a1 = _mm512_fmadd_ps(CVT(_mm256_maskz_loadu_epi16(m, b + 2 * i)), _mm512_maskz_loadu_ps(m, x + i), a1);              \
        }                                                                                                                         \
        return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));                                 \
    }
V5_DOT16(v5_bf16, V5_BF16)
V5_DOT16(v5_f16row, V5_H16)

static int have_avx512(void) {
    static int v = -1;
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    }
    return v && !tn_qmatvec_portable_only && !tn_qmatvec_no_avx512;
}

static int have_vnni(void) {
    static int v = -1;
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512f");
    }
    return v && !tn_qmatvec_portable_only && !tn_qmatvec_no_vnni;
}

static int have_v3(void) {
    static int v = -1;
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    }
    return v && !tn_qmatvec_portable_only;
}
#define TN_HAVE_V3 1
#endif

/* One product on the decode pool (generate/pool.h): rows handed out in
 * chunks of a multiple of 16 (whole cache lines of y) from a shared counter,
 * so that a thread the system delays takes fewer, and holds up the others
 * for one small chunk at most. */
typedef struct {
    float (*idot)(const uint8_t *, const tn_xq *, int64_t);
    float (*fdot)(const uint8_t *, const float *, int64_t); /* instead of idot when set (16-bit rows: x in fp32) */
    const float *xf;
    const uint8_t *base;
    uint64_t row_bytes;
    const tn_xq *x;
    float *y;
    int64_t rows, cols, chunk;
    atomic_llong next;
} mv_job;

static void mv_rows(void *ctx, int ith, int nth) {
    (void)ith, (void)nth;
    mv_job *j = ctx;
    for (;;) {
        const int64_t r0 = atomic_fetch_add_explicit(&j->next, j->chunk, memory_order_relaxed);
        if (r0 >= j->rows) break;
        const int64_t r1 = r0 + j->chunk < j->rows ? r0 + j->chunk : j->rows;
        if (j->fdot)
            for (int64_t r = r0; r < r1; r++) j->y[r] = j->fdot(j->base + (uint64_t)r * j->row_bytes, j->xf, j->cols);
        else
            for (int64_t r = r0; r < r1; r++) j->y[r] = j->idot(j->base + (uint64_t)r * j->row_bytes, j->x, j->cols);
    }
}

/* The rows of a product on the pool, or OpenMP (TUNE_POOL=0, small
 * products, few rows). */
static void run_rows(mv_job *j) {
    const int64_t rows = j->rows, cols = j->cols;
    const int nth = tn_pool_threads();
    if (nth > 1 && rows * cols > 32768 && rows >= 32) {
        /* ~64K weights a chunk (tens of microseconds), at least 2 chunks a thread */
        int64_t chunk = (65536 / cols + 15) & ~(int64_t)15;
        const int64_t most = (rows / (2 * nth) + 15) & ~(int64_t)15;
        if (chunk > most) chunk = most;
        j->chunk = chunk < 16 ? 16 : chunk;
        atomic_store_explicit(&j->next, 0, memory_order_relaxed);
        tn_pool_run(mv_rows, j);
        return;
    }
    if (j->fdot) {
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
        for (int64_t r = 0; r < rows; r++) j->y[r] = j->fdot(j->base + (uint64_t)r * j->row_bytes, j->xf, cols);
    } else {
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
        for (int64_t r = 0; r < rows; r++) j->y[r] = j->idot(j->base + (uint64_t)r * j->row_bytes, j->x, cols);
    }
}

int tn_qmatvec_portable_only = -1;
int tn_qmatvec_fp32_act = -1;
int tn_qmatvec_no_vnni = 0;
int tn_qmatvec_no_avx512 = 0;

void tn_qmatvec_quantize_x(const float *x, int64_t n, int8_t *q, float *d, int32_t *s16, int32_t *s32) {
    if (tn_qmatvec_portable_only < 0) tn_qmatvec_portable_only = getenv("TUNE_NO_SIMD") != NULL;
#ifdef TN_HAVE_V3
    if (have_v3()) {
        v3_quantize_x(x, n, q, d, s16, s32);
        return;
    }
#endif
    quantize_x(x, n, q, d, s16, s32);
}

/* The 16-bit row kernel the flags and the CPU choose. */
static float (*dot16_for(int type))(const uint8_t *, const float *, int64_t) {
    if (tn_qmatvec_portable_only < 0) tn_qmatvec_portable_only = getenv("TUNE_NO_SIMD") != NULL;
#ifdef TN_HAVE_V3
    if (have_v3() && have_avx512()) return type == TN_GGML_BF16 ? v5_bf16 : v5_f16row;
    if (have_v3()) return type == TN_GGML_BF16 ? v3_bf16 : v3_f16row;
#endif
    return type == TN_GGML_BF16 ? dot_bf16 : dot_f16;
}

const char *tn_qmatvec_kernels16(void) {
    if (tn_qmatvec_portable_only < 0) tn_qmatvec_portable_only = getenv("TUNE_NO_SIMD") != NULL;
#ifdef TN_HAVE_V3
    if (have_v3() && have_avx512()) return "avx512";
    if (have_v3()) return "avx2";
#endif
    return "portable";
}

const char *tn_qmatvec_kernels(void) {
    if (tn_qmatvec_portable_only < 0) tn_qmatvec_portable_only = getenv("TUNE_NO_SIMD") != NULL;
#ifdef TN_HAVE_V3
    if (have_v3() && have_vnni()) return "avx512-vnni";
    if (have_v3()) return "avx2";
#endif
    return "portable";
}

int tn_qmatvec_fast(int type) {
    return type == TN_GGML_F16 || type == TN_GGML_BF16 || type == TN_GGML_Q8_0 || type == TN_GGML_Q4_0 || type == TN_GGML_Q5_0 || type == TN_GGML_Q4_K || type == TN_GGML_Q6_K;
}

void tn_qmatvec(int type, const void *w, const float *x, float *y, int64_t rows, int64_t cols) {
    if (tn_qmatvec_portable_only < 0) tn_qmatvec_portable_only = getenv("TUNE_NO_SIMD") != NULL;
    const uint64_t row_bytes = (uint64_t)(cols / tn_gguf_type_block(type)) * (uint64_t)tn_gguf_type_bytes(type);
    const uint8_t *base = w;
    if (type == TN_GGML_F16 || type == TN_GGML_BF16) {
        mv_job job = {NULL, dot16_for(type), x, base, (uint64_t)cols * 2, NULL, y, rows, cols, 0, 0};
        run_rows(&job);
        return;
    }
    float (*dot)(const uint8_t *, const float *, int64_t, const float *) = NULL;
    switch (type) {
    case TN_GGML_Q8_0: dot = dot_q8_0; break;
    case TN_GGML_Q4_0: dot = dot_q4_0; break;
    case TN_GGML_Q5_0: dot = dot_q5_0; break;
    case TN_GGML_Q4_K: dot = dot_q4_k; break;
    case TN_GGML_Q6_K: dot = dot_q6_k; break;
    default: break;
    }
    if (tn_qmatvec_fp32_act < 0) tn_qmatvec_fp32_act = getenv("TUNE_QMATVEC_FP32") != NULL;
    if (dot && !tn_qmatvec_fp32_act) {
        float (*idot)(const uint8_t *, const tn_xq *, int64_t) = NULL;
        switch (type) {
        case TN_GGML_Q8_0: idot = i8_q8_0; break;
        case TN_GGML_Q4_0: idot = i8_q4_0; break;
        case TN_GGML_Q5_0: idot = i8_q5_0; break;
        case TN_GGML_Q4_K: idot = i8_q4_k; break;
        case TN_GGML_Q6_K: idot = i8_q6_k; break;
        default: break;
        }
#ifdef TN_HAVE_V3
        if (have_v3()) switch (type) {
            case TN_GGML_Q8_0: idot = v3i_q8_0; break;
            case TN_GGML_Q4_0: idot = v3i_q4_0; break;
            case TN_GGML_Q5_0: idot = v3i_q5_0; break;
            case TN_GGML_Q4_K: idot = v3i_q4_k; break;
            case TN_GGML_Q6_K: idot = v3i_q6_k; break;
            default: break;
            }
        if (have_v3() && have_vnni()) switch (type) {
            case TN_GGML_Q8_0: idot = vni_q8_0; break;
            case TN_GGML_Q4_0: idot = vni_q4_0; break;
            case TN_GGML_Q5_0: idot = vni_q5_0; break;
            case TN_GGML_Q4_K: idot = vni_q4_k; break;
            case TN_GGML_Q6_K: idot = vni_q6_k; break;
            default: break;
            }
#endif
        int8_t *xq = malloc((size_t)cols + sizeof(float) * (size_t)(cols / 32) + sizeof(int32_t) * (size_t)(cols / 16 + cols / 32) + 64);
        if (xq) {
            float *xd = (float *)(xq + ((cols + 63) & ~(int64_t)63));
            int32_t *xs = (int32_t *)(xd + cols / 32), *xs32 = xs + cols / 16;
#ifdef TN_HAVE_V3
            if (have_v3()) v3_quantize_x(x, cols, xq, xd, xs, xs32);
            else
#endif
                quantize_x(x, cols, xq, xd, xs, xs32);
            const tn_xq X = {xq, xd, xs, xs32};
            mv_job job = {idot, NULL, NULL, base, row_bytes, &X, y, rows, cols, 0, 0};
            run_rows(&job);
            free(xq);
            return;
        }
    }
    float bsum[4096]; /* Σx per 32 values (Q4_K's mins), up to 131072 columns */
#ifdef TN_HAVE_V3
    if (dot && have_v3() && (type != TN_GGML_Q4_K || cols <= 32 * 4096)) {
        switch (type) {
        case TN_GGML_Q8_0: dot = v3_q8_0; break;
        case TN_GGML_Q4_0: dot = v3_q4_0; break;
        case TN_GGML_Q5_0: dot = v3_q5_0; break;
        case TN_GGML_Q4_K: dot = v3_q4_k; break;
        case TN_GGML_Q6_K: dot = v3_q6_k; break;
        default: break;
        }
        if (type == TN_GGML_Q4_K)
            for (int64_t c = 0; c < cols / 32; c++) {
                float t = 0;
                for (int j = 0; j < 32; j++) t += x[32 * c + j];
                bsum[c] = t;
            }
    }
#endif
    if (dot) {
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
        for (int64_t r = 0; r < rows; r++) y[r] = dot(base + (uint64_t)r * row_bytes, x, cols, bsum);
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
