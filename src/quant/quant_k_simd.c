/* quant_k_simd.c - the scale searches of Q4_K and Q6_K eight sub-blocks at a
 * time with AVX2, bit-identical to the scalar code in quant_k.c.
 *
 * Each SIMD lane runs one sub-block through exactly the scalar sequence of
 * float operations (the same operands, the same order: sums accumulate
 * element 0, 1, 2, ... as in the loops of ggml's make_qkx2_quants and
 * make_qx_quants); branches become lane masks. Add, multiply, divide and
 * square root round the same in a lane as in a scalar instruction, and no
 * fused multiply-add is emitted (the target is "avx2" without "fma"), so the
 * results are the same bits. tests/unit/test_quant.c compares with ggml. */
#include "quant/quant_k_simd.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2")))

int tn_quant_have_avx2(void) {
    static int known = -1;
    if (known < 0) known = __builtin_cpu_supports("avx2") && !getenv("TUNE_NO_SIMD");
    return known;
}

/* nearest_int, lane-wise: the integer in the mantissa of fval + 1.5·2^23. */
AVX2 static inline __m256i nearest_int8(__m256 f) {
    __m256i i = _mm256_castps_si256(_mm256_add_ps(f, _mm256_set1_ps(12582912.f)));
    return _mm256_sub_epi32(_mm256_and_si256(i, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x00400000));
}

AVX2 static inline __m256i clamp8(__m256i v, int lo, int hi) {
    return _mm256_max_epi32(_mm256_set1_epi32(lo), _mm256_min_epi32(_mm256_set1_epi32(hi), v));
}

AVX2 static inline __m256 sel(__m256 mask, __m256 yes, __m256 no) { return _mm256_blendv_ps(no, yes, mask); }

AVX2 static inline __m256 absf(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

/* Q4_K: make_qkx2_quants(32, 15, x, weights, L, &min, Laux, -1, 0.1, 20,
 * false) for the 8 sub-blocks of one super-block, weights sqrt(mean x²) + |x|. */
AVX2 void tn_q4k_search_avx2(const float *x, uint8_t *L, float *scales, float *mins) {
    const __m256i stride = _mm256_setr_epi32(0, 32, 64, 96, 128, 160, 192, 224);
    __m256 X[32], W[32];
    __m256i Lv[32], La[32];
    __m256 sum_x2 = _mm256_setzero_ps();
    for (int i = 0; i < 32; i++) {
        X[i] = _mm256_i32gather_ps(x + i, stride, 4);
        sum_x2 = _mm256_add_ps(sum_x2, _mm256_mul_ps(X[i], X[i]));
    }
    const __m256 av_x = _mm256_sqrt_ps(_mm256_div_ps(sum_x2, _mm256_set1_ps(32.0f)));
    for (int i = 0; i < 32; i++) W[i] = _mm256_add_ps(av_x, absf(X[i]));
    const int nmax = 15;
    const float rmin = -1.f, rdelta = 0.1f;
    const int nstep = 20;
    __m256 min = X[0], max = X[0], sum_w = W[0];
    __m256 sum_x = _mm256_mul_ps(sum_w, X[0]);
    for (int i = 1; i < 32; i++) {
        min = sel(_mm256_cmp_ps(X[i], min, _CMP_LT_OQ), X[i], min);
        max = sel(_mm256_cmp_ps(X[i], max, _CMP_GT_OQ), X[i], max);
        sum_w = _mm256_add_ps(sum_w, W[i]);
        sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(W[i], X[i]));
    }
    const __m256 zero = _mm256_setzero_ps();
    min = sel(_mm256_cmp_ps(min, zero, _CMP_GT_OQ), zero, min);
    const __m256 flat = _mm256_cmp_ps(max, min, _CMP_EQ_OQ), flat_min = min;
    __m256 iscale = _mm256_div_ps(_mm256_set1_ps((float)nmax), _mm256_sub_ps(max, min));
    __m256 scale = _mm256_div_ps(_mm256_set1_ps(1.0f), iscale);
    __m256 best_error = zero;
    for (int i = 0; i < 32; i++) {
        __m256i l = clamp8(nearest_int8(_mm256_mul_ps(iscale, _mm256_sub_ps(X[i], min))), 0, nmax);
        Lv[i] = l;
        __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, _mm256_cvtepi32_ps(l)), min), X[i]);
        diff = _mm256_mul_ps(diff, diff);
        best_error = _mm256_add_ps(best_error, _mm256_mul_ps(W[i], diff));
    }
    for (int is = 0; is <= nstep; ++is) {
        const float t = rmin + rdelta * is + nmax;
        /* min moves with each better candidate, as in the scalar loop */
        iscale = _mm256_div_ps(_mm256_set1_ps(t), _mm256_sub_ps(max, min));
        __m256 sum_l = zero, sum_l2 = zero, sum_xl = zero;
        for (int i = 0; i < 32; i++) {
            __m256i l = clamp8(nearest_int8(_mm256_mul_ps(iscale, _mm256_sub_ps(X[i], min))), 0, nmax);
            La[i] = l;
            const __m256 lf = _mm256_cvtepi32_ps(l), wl = _mm256_mul_ps(W[i], lf);
            sum_l = _mm256_add_ps(sum_l, wl);
            sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, lf));
            sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, X[i]));
        }
        const __m256 D = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
        const __m256 pos = _mm256_cmp_ps(D, zero, _CMP_GT_OQ);
        if (_mm256_movemask_ps(pos) == 0) continue;
        __m256 this_scale = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)), D);
        __m256 this_min = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)), D);
        const __m256 clip = _mm256_cmp_ps(this_min, zero, _CMP_GT_OQ);
        this_min = sel(clip, zero, this_min);
        this_scale = sel(clip, _mm256_div_ps(sum_xl, sum_l2), this_scale);
        __m256 cur_error = zero;
        for (int i = 0; i < 32; i++) {
            __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(this_scale, _mm256_cvtepi32_ps(La[i])), this_min), X[i]);
            diff = _mm256_mul_ps(diff, diff);
            cur_error = _mm256_add_ps(cur_error, _mm256_mul_ps(W[i], diff));
        }
        const __m256 better = _mm256_and_ps(pos, _mm256_cmp_ps(cur_error, best_error, _CMP_LT_OQ));
        const __m256i bi = _mm256_castps_si256(better);
        for (int i = 0; i < 32; i++) Lv[i] = _mm256_blendv_epi8(Lv[i], La[i], bi);
        best_error = sel(better, cur_error, best_error);
        scale = sel(better, this_scale, scale);
        min = sel(better, this_min, min);
    }
    /* flat sub-blocks: L = 0, scale 0, the min as it was */
    scale = sel(flat, zero, scale);
    min = sel(flat, flat_min, min);
    const __m256i fi = _mm256_castps_si256(flat);
    int32_t lanes[8];
    for (int i = 0; i < 32; i++) {
        _mm256_storeu_si256((__m256i *)(void *)lanes, _mm256_andnot_si256(fi, Lv[i]));
        for (int j = 0; j < 8; j++) L[32 * j + i] = (uint8_t)lanes[j];
    }
    _mm256_storeu_ps(scales, scale);
    _mm256_storeu_ps(mins, _mm256_xor_ps(min, _mm256_set1_ps(-0.0f))); /* -min, as the scalar code negates */
}

/* Q6_K: make_qx_quants(16, 32, x, L, rmse_type 1, NULL) for 8 of the 16
 * sub-blocks (x points at the first, 16 values each). */
AVX2 void tn_q6k_search_avx2(const float *x, int8_t *L, float *scales) {
    const __m256i stride = _mm256_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112);
    const int nmax = 32;
    __m256 X[16], W[16];
    __m256i Lv[16], La[16];
    const __m256 zero = _mm256_setzero_ps();
    __m256 max = zero, amax = zero;
    for (int i = 0; i < 16; i++) {
        X[i] = _mm256_i32gather_ps(x + i, stride, 4);
        W[i] = _mm256_mul_ps(X[i], X[i]);
        const __m256 ax = absf(X[i]), gt = _mm256_cmp_ps(ax, amax, _CMP_GT_OQ);
        amax = sel(gt, ax, amax);
        max = sel(gt, X[i], max);
    }
    const __m256 tiny = _mm256_cmp_ps(amax, _mm256_set1_ps(1e-15f), _CMP_LT_OQ);
    __m256 iscale = _mm256_div_ps(_mm256_set1_ps((float)-nmax), max);
    __m256 sumlx = zero, suml2 = zero;
    for (int i = 0; i < 16; i++) {
        __m256i l = clamp8(nearest_int8(_mm256_mul_ps(iscale, X[i])), -nmax, nmax - 1);
        Lv[i] = _mm256_add_epi32(l, _mm256_set1_epi32(nmax));
        const __m256 lf = _mm256_cvtepi32_ps(l);
        sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(_mm256_mul_ps(W[i], X[i]), lf));
        suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(W[i], lf), lf));
    }
    __m256 scale = sel(_mm256_cmp_ps(suml2, zero, _CMP_NEQ_UQ), _mm256_div_ps(sumlx, suml2), zero);
    __m256 best = _mm256_mul_ps(scale, sumlx);
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = _mm256_div_ps(_mm256_set1_ps(-(nmax + 0.1f * is)), max);
        sumlx = suml2 = zero;
        for (int i = 0; i < 16; i++) {
            __m256i l = clamp8(nearest_int8(_mm256_mul_ps(iscale, X[i])), -nmax, nmax - 1);
            La[i] = l;
            const __m256 lf = _mm256_cvtepi32_ps(l);
            sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(_mm256_mul_ps(W[i], X[i]), lf));
            suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(W[i], lf), lf));
        }
        const __m256 better = _mm256_and_ps(_mm256_cmp_ps(suml2, zero, _CMP_GT_OQ),
                                            _mm256_cmp_ps(_mm256_mul_ps(sumlx, sumlx), _mm256_mul_ps(best, suml2), _CMP_GT_OQ));
        if (_mm256_movemask_ps(better) == 0) continue;
        const __m256i bi = _mm256_castps_si256(better);
        for (int i = 0; i < 16; i++) Lv[i] = _mm256_blendv_epi8(Lv[i], _mm256_add_epi32(La[i], _mm256_set1_epi32(nmax)), bi);
        scale = sel(better, _mm256_div_ps(sumlx, suml2), scale);
        best = sel(better, _mm256_mul_ps(scale, sumlx), best);
    }
    scale = sel(tiny, zero, scale);
    const __m256i ti = _mm256_castps_si256(tiny);
    int32_t lanes[8];
    for (int i = 0; i < 16; i++) {
        _mm256_storeu_si256((__m256i *)(void *)lanes, _mm256_andnot_si256(ti, Lv[i]));
        for (int j = 0; j < 8; j++) L[16 * j + i] = (int8_t)lanes[j];
    }
    _mm256_storeu_ps(scales, scale);
}

#else
int tn_quant_have_avx2(void) { return 0; }
void tn_q4k_search_avx2(const float *x, uint8_t *L, float *scales, float *mins) { (void)x, (void)L, (void)scales, (void)mins; }
void tn_q6k_search_avx2(const float *x, int8_t *L, float *scales) { (void)x, (void)L, (void)scales; }
#endif
