/* qmatvec_x86.h - the x86 int8-activation kernels of qmatvec.c, included
 * there twice: once for AVX2 (maddubs + madd pairs the bytes into int32
 * lanes; the fifth bits of Q5_0 spread by shuffle/compare) and once for
 * AVX-512 VNNI (vpdpbusd; the fifth bits added under a byte mask). Not a
 * public header. The includer defines:
 *   KN(name)    the kernel's name
 *   KATTR       the target attribute of the set of instructions
 *   UDOT(u, s)  8 int32 lanes: lane j = Σ_{k=4j..4j+3} u[k]·s[k] (u unsigned
 *               bytes, s signed bytes; no saturation for the ranges below)
 *   HIBIT5(u, p) u with 0x10 added to byte k where bit k of the u32 at p is set
 *
 * Each kernel computes the same integers as the portable kernels of
 * qmatvec.c (i8_*): the product of the weights' integers with x's int8
 * values, summed exactly in int32 per 32 values (per 16 for Q6_K), then
 * scaled in fp32 by the weight's and x's block scales. What differs is the
 * layout of the work: four blocks of 32 at a time, their lane sums reduced
 * by a tree of horizontal adds to one int32 per block, the offsets (Q4_0's
 * 8, Q5_0's 16, Q6_K's 32) and Q4_K's mins taken off with x's block sums in
 * the integer (or vector) domain, and the four blocks' fp16 scales
 * converted together; the fp32 additions come in another order. */

/* The four blocks' lane sums t0..t3 -> [Σt0, Σt1, Σt2, Σt3]. */
KATTR static inline __m128i KN(reduce4)(__m256i t0, __m256i t1, __m256i t2, __m256i t3) {
    const __m256i e = _mm256_hadd_epi32(_mm256_hadd_epi32(t0, t1), _mm256_hadd_epi32(t2, t3));
    return _mm_add_epi32(_mm256_castsi256_si128(e), _mm256_extracti128_si256(e, 1));
}

/* The fp16 scales at p, p + stride, p + 2 stride, p + 3 stride as 4 floats. */
KATTR static inline __m128 KN(f16x4)(const uint8_t *p, int stride) {
    __m128i g = _mm_setr_epi16((short)(p[0] | (p[1] << 8)), (short)(p[stride] | (p[stride + 1] << 8)),
                               (short)(p[2 * stride] | (p[2 * stride + 1] << 8)), (short)(p[3 * stride] | (p[3 * stride + 1] << 8)), 0, 0,
                               0, 0);
    return _mm_cvtph_ps(g);
}

KATTR static inline float KN(hsum4)(__m128 a) {
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}

KATTR static inline float KN(hsum8)(__m256 v) { return KN(hsum4)(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1))); }

/* 32 unsigned nibbles of 16 bytes: bytes 0..15 the low nibbles, 16..31 the high. */
KATTR static inline __m256i KN(nib32)(const uint8_t *p) {
    const __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
    return _mm256_and_si256(_mm256_srlv_epi64(q, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0F));
}

#define XQ(k) _mm256_loadu_si256((const __m256i *)(x->q + 32 * (k)))

KATTR static float KN(q8_0)(const uint8_t *b, const tn_xq *x, int64_t n) {
    const int64_t nb = n / 32;
    __m128 acc = _mm_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4, b += 4 * 34) {
        __m256i t[4];
        _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
            const __m256i w = _mm256_loadu_si256((const __m256i *)(b + 34 * k + 2));
            t[k] = UDOT(_mm256_sign_epi8(w, w), _mm256_sign_epi8(XQ(i + k), w));
        }
        const __m128 dd = _mm_mul_ps(KN(f16x4)(b, 34), _mm_loadu_ps(x->d + i));
        acc = _mm_fmadd_ps(dd, _mm_cvtepi32_ps(KN(reduce4)(t[0], t[1], t[2], t[3])), acc);
    }
    float r = KN(hsum4)(acc);
    for (; i < nb; i++, b += 34) {
        const __m256i w = _mm256_loadu_si256((const __m256i *)(b + 2));
        const __m256i t = UDOT(_mm256_sign_epi8(w, w), _mm256_sign_epi8(XQ(i), w));
        r += v3_f16(b) * x->d[i] * (float)KN(hsum8)(_mm256_cvtepi32_ps(t));
    }
    return r;
}

KATTR static float KN(q4_0)(const uint8_t *b, const tn_xq *x, int64_t n) {
    const int64_t nb = n / 32;
    __m128 acc = _mm_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4, b += 4 * 18) {
        __m256i t[4];
        _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) t[k] = UDOT(KN(nib32)(b + 18 * k + 2), XQ(i + k));
        __m128i s = KN(reduce4)(t[0], t[1], t[2], t[3]);
        s = _mm_sub_epi32(s, _mm_slli_epi32(_mm_loadu_si128((const __m128i *)(x->s32 + i)), 3));
        const __m128 dd = _mm_mul_ps(KN(f16x4)(b, 18), _mm_loadu_ps(x->d + i));
        acc = _mm_fmadd_ps(dd, _mm_cvtepi32_ps(s), acc);
    }
    float r = KN(hsum4)(acc);
    for (; i < nb; i++, b += 18) {
        const __m256i t = UDOT(KN(nib32)(b + 2), XQ(i));
        r += v3_f16(b) * x->d[i] * (KN(hsum8)(_mm256_cvtepi32_ps(t)) - (float)(8 * x->s32[i]));
    }
    return r;
}

KATTR static float KN(q5_0)(const uint8_t *b, const tn_xq *x, int64_t n) {
    const int64_t nb = n / 32;
    __m128 acc = _mm_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4, b += 4 * 22) {
        __m256i t[4];
        _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) t[k] = UDOT(HIBIT5(KN(nib32)(b + 22 * k + 6), b + 22 * k + 2), XQ(i + k));
        __m128i s = KN(reduce4)(t[0], t[1], t[2], t[3]);
        s = _mm_sub_epi32(s, _mm_slli_epi32(_mm_loadu_si128((const __m128i *)(x->s32 + i)), 4));
        const __m128 dd = _mm_mul_ps(KN(f16x4)(b, 22), _mm_loadu_ps(x->d + i));
        acc = _mm_fmadd_ps(dd, _mm_cvtepi32_ps(s), acc);
    }
    float r = KN(hsum4)(acc);
    for (; i < nb; i++, b += 22) {
        const __m256i t = UDOT(HIBIT5(KN(nib32)(b + 6), b + 2), XQ(i));
        r += v3_f16(b) * x->d[i] * (KN(hsum8)(_mm256_cvtepi32_ps(t)) - (float)(16 * x->s32[i]));
    }
    return r;
}

/* Q4_K: a super-block of 256 (8 sub-blocks of 32 = 8 blocks of x), its
 * 6-bit scales and mins unpacked as llama.cpp's utmp trick does; the 8
 * sub-block sums times the scales in int32, scaled by x's 8 block scales,
 * and the mins times x's 8 block sums likewise. */
KATTR static float KN(q4_k)(const uint8_t *b, const tn_xq *x, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t i = 0; i < n / 256; i++, b += 144) {
        uint32_t u[4];
        memcpy(u, b + 4, 12);
        const uint32_t k1 = 0x3f3f3f3f, k2 = 0x0f0f0f0f, k3 = 0x03030303;
        u[3] = ((u[2] >> 4) & k2) | (((u[1] >> 6) & k3) << 4);
        const uint32_t mins_lo = u[1] & k1;
        u[1] = (u[2] & k2) | (((u[0] >> 6) & k3) << 4);
        u[0] &= k1;
        u[2] = mins_lo; /* u[0..1]: 8 scales, u[2..3]: 8 mins */
        const uint8_t *q = b + 16;
        __m256i t[8];
        _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++) {
            const __m256i qq = _mm256_loadu_si256((const __m256i *)(q + 32 * c));
            t[2 * c] = UDOT(_mm256_and_si256(qq, m4), XQ(8 * i + 2 * c));
            t[2 * c + 1] = UDOT(_mm256_and_si256(_mm256_srli_epi16(qq, 4), m4), XQ(8 * i + 2 * c + 1));
        }
        const __m256i s = _mm256_set_m128i(KN(reduce4)(t[4], t[5], t[6], t[7]), KN(reduce4)(t[0], t[1], t[2], t[3]));
        const __m256i sc = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)u));
        const __m256i mn = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(u + 2)));
        const __m256 dx = _mm256_loadu_ps(x->d + 8 * i);
        const __m256i xs = _mm256_loadu_si256((const __m256i *)(x->s32 + 8 * i));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(v3_f16(b)), _mm256_mul_ps(dx, _mm256_cvtepi32_ps(_mm256_mullo_epi32(s, sc))), acc);
        acc = _mm256_fnmadd_ps(_mm256_set1_ps(v3_f16(b + 2)), _mm256_mul_ps(dx, _mm256_cvtepi32_ps(_mm256_mullo_epi32(xs, mn))), acc);
    }
    return KN(hsum8)(acc);
}

/* Q6_K: per half of a super-block (128 values = 4 blocks of x), the 6-bit
 * values of the 4 blocks, their sums per 16 values from two levels of the
 * tree ([b0 lo, b1 lo, b2 lo, b3 lo, b0 hi, ...]), less 32 times x's sums
 * per 16, times the int8 scales (one per 16) in int32, then x's scales. */
KATTR static float KN(q6_k)(const uint8_t *b, const tn_xq *x, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
    const __m256i order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    for (int64_t i = 0; i < n / 256; i++, b += 210) {
        const __m256 d = _mm256_set1_ps(v3_f16(b + 208));
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8) {
            const int64_t k0 = 8 * i + 4 * h;
            const __m256i L0 = _mm256_loadu_si256((const __m256i *)ql), L1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            const __m256i H = _mm256_loadu_si256((const __m256i *)qh);
            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(L0, m4), _mm256_slli_epi16(_mm256_and_si256(H, m3), 4));
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(L1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(H, 2), m3), 4));
            const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(L0, 4), m4),
                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(H, 4), m3), 4));
            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(L1, 4), m4),
                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(H, 6), m3), 4));
            const __m256i e = _mm256_hadd_epi32(_mm256_hadd_epi32(UDOT(q0, XQ(k0)), UDOT(q1, XQ(k0 + 1))),
                                                _mm256_hadd_epi32(UDOT(q2, XQ(k0 + 2)), UDOT(q3, XQ(k0 + 3))));
            const __m256i xs = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)(x->s + 2 * k0)), order);
            const __m256i s8 = _mm256_permutevar8x32_epi32(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)sc)), order);
            const __m256i v = _mm256_mullo_epi32(_mm256_sub_epi32(e, _mm256_slli_epi32(xs, 5)), s8);
            const __m256 dx = _mm256_broadcast_ps((const __m128 *)(x->d + k0));
            acc = _mm256_fmadd_ps(_mm256_mul_ps(d, dx), _mm256_cvtepi32_ps(v), acc);
        }
    }
    return KN(hsum8)(acc);
}

#undef XQ
