/* quant_k.c - the 256-value "K" super-block formats Q4_K and Q6_K, as
 * ggml's quantize_row_q4_K_ref and quantize_row_q6_K_ref compute them.
 *
 * Q4_K: 8 sub-blocks of 32, x ≈ d·sc_j·q - dmin·m_j with q in [0, 15]. Each
 *   sub-block's (scale, min) comes from make_qkx2_quants: a search over 21
 *   candidate scales, each fitted by weighted least squares (weights
 *   sqrt(mean x²) + |x|), keeping the one of least weighted squared error.
 *   The 8 scales and 8 mins are then quantized to 6 bits against their
 *   maxima (d = max scale / 63, dmin = max min / 63) and q recomputed with
 *   the rounded values.
 * Q6_K: 16 sub-blocks of 16, x ≈ d·sc_j·q with q in [-32, 31]. Each
 *   sub-block's scale comes from make_qx_quants (rmse_type 1: weights x²,
 *   19 candidate scales around nmax / max), then the 16 scales are quantized
 *   to int8 against the largest in magnitude (d = -max / 128).
 *
 * The float arithmetic follows ggml's expressions term by term (the same
 * operands in the same order, no fused multiply-add): the bytes are the same
 * as the reference's, which tests/unit/test_quant.c checks against ggml.
 * With AVX2 the searches run 8 sub-blocks at a time (quant_k_simd.c), the
 * same operations lane by lane; TUNE_NO_SIMD=1 forces the scalar code. */
#include <math.h>
#include <string.h>

#include "io/dtype.h"
#include "quant/quant.h"
#include "quant/quant_k_simd.h"

#define QK_K 256
#define GROUP_MAX_EPS 1e-15f

static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int imin(int a, int b) { return a < b ? a : b; }

/* Round to nearest (ties to even) through the float's mantissa: adding
 * 1.5·2^23 leaves the integer in the low mantissa bits. Valid for
 * |fval| <= 4194303, which every caller guarantees. */
static inline int nearest_int(float fval) {
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

static void put_f16(uint8_t *p, float v) {
    uint16_t h = tn_f32_to_f16(v);
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}

static float get_f16(const uint8_t *p) { return tn_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

/* Symmetric quantization of n values to [-nmax, nmax-1] (stored + nmax in
 * L), rmse_type 1 (weights x²), no importance weights: ggml's
 * make_qx_quants(n, nmax, x, L, 1, NULL). Returns the scale. */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = 0;
    float amax = 0;
    for (int i = 0; i < n; ++i) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0;
    float suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = imax(-nmax, imin(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * x[i]);
            l = imax(-nmax, imin(nmax - 1, l));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Asymmetric quantization of n values to [0, nmax] with a min: ggml's
 * make_qkx2_quants(n, nmax, x, weights, L, &min, Laux, rmin, rdelta, nstep,
 * use_mad = false). Returns the scale; *the_min gets -min (>= 0). */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min, uint8_t *Laux,
                              float rmin, float rdelta, int nstep) {
    float min = x[0];
    float max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = diff * diff;
        float w = weights[i];
        best_error += w * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * (x[i] - min));
            l = imax(0, imin(nmax, l));
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = diff * diff;
                float w = weights[i];
                cur_error += w * diff;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* The 6-bit scale and min of sub-block j from Q4_K's 12 packed bytes. */
static inline void get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

/* Q4_K block: d (2), dmin (2), scales (12), qs (128). */
void tn_quantize_row_q4_k(const float *x, void *dst, int64_t n) {
    uint8_t *y = dst;
    uint8_t L[QK_K];
    uint8_t Laux[32];
    float weights[32];
    float mins[QK_K / 32];
    float scales[QK_K / 32];
    const int simd = tn_quant_have_avx2();
    for (int64_t i = 0; i < n / QK_K; i++, y += 144, x += QK_K) {
        uint8_t *ysc = y + 4, *q = y + 16;
        float max_scale = 0;
        float max_min = 0;
        if (simd) tn_q4k_search_avx2(x, L, scales, mins);
        else
            for (int j = 0; j < QK_K / 32; ++j) {
                float sum_x2 = 0;
                for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
                float av_x = sqrtf(sum_x2 / 32);
                for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
                scales[j] = make_qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -1.f, 0.1f, 20);
            }
        for (int j = 0; j < QK_K / 32; ++j) {
            float scale = scales[j];
            if (scale > max_scale) max_scale = scale;
            float min = mins[j];
            if (min > max_min) max_min = min;
        }
        float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        for (int j = 0; j < QK_K / 32; ++j) {
            uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
            uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
            ls = ls < 63 ? ls : 63;
            lm = lm < 63 ? lm : 63;
            if (j < 4) {
                ysc[j] = ls;
                ysc[j + 4] = lm;
            } else {
                ysc[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
                ysc[j - 4] |= (uint8_t)((ls >> 4) << 6);
                ysc[j - 0] |= (uint8_t)((lm >> 4) << 6);
            }
        }
        put_f16(y, max_scale / 63.f);
        put_f16(y + 2, max_min / 63.f);
        uint8_t sc, m;
        for (int j = 0; j < QK_K / 32; ++j) {
            get_scale_min_k4(j, ysc, &sc, &m);
            const float d = get_f16(y) * sc;
            if (!d) continue;
            const float dm = get_f16(y + 2) * m;
            for (int ii = 0; ii < 32; ++ii) {
                int l = nearest_int((x[32 * j + ii] + dm) / d);
                l = imax(0, imin(15, l));
                L[32 * j + ii] = (uint8_t)l;
            }
        }
        for (int j = 0; j < QK_K; j += 64) {
            for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
            q += 32;
        }
    }
}

/* Q6_K block: ql (128), qh (64), scales (16 int8), d (2). */
void tn_quantize_row_q6_k(const float *x, void *dst, int64_t n) {
    uint8_t *y = dst;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    const int simd = tn_quant_have_avx2();
    for (int64_t i = 0; i < n / QK_K; i++, y += 210, x += QK_K) {
        int8_t *ysc = (int8_t *)(y + 192);
        float max_scale = 0;
        float max_abs_scale = 0;
        if (simd) {
            tn_q6k_search_avx2(x, L, scales);
            tn_q6k_search_avx2(x + 128, L + 128, scales + 8);
        } else
            for (int ib = 0; ib < QK_K / 16; ++ib) scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
        for (int ib = 0; ib < QK_K / 16; ++ib) {
            const float scale = scales[ib];
            const float abs_scale = fabsf(scale);
            if (abs_scale > max_abs_scale) {
                max_abs_scale = abs_scale;
                max_scale = scale;
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(y, 0, 210);
            put_f16(y + 208, 0.f);
            continue;
        }
        float iscale = -128.f / max_scale;
        put_f16(y + 208, 1 / iscale);
        for (int ib = 0; ib < QK_K / 16; ++ib) ysc[ib] = (int8_t)imin(127, nearest_int(iscale * scales[ib]));
        for (int j = 0; j < QK_K / 16; ++j) {
            float d = get_f16(y + 208) * ysc[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii) {
                int l = nearest_int(x[16 * j + ii] / d);
                l = imax(-32, imin(31, l));
                L[16 * j + ii] = (int8_t)(l + 32);
            }
        }
        uint8_t *ql = y, *qh = y + 128;
        for (int j = 0; j < QK_K; j += 128) {
            for (int l = 0; l < 32; ++l) {
                const uint8_t q1 = L[j + l + 0] & 0xF;
                const uint8_t q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF;
                const uint8_t q4 = L[j + l + 96] & 0xF;
                ql[l + 0] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
            }
            ql += 64;
            qh += 32;
        }
    }
}
