/* quant_types.c - the ggml type table (block sizes, bytes, names) and
 * tn_quant_rows, which converts or quantizes whole rows on all cores. */
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "io/dtype.h"
#include "quant/quant.h"
#include "util/error.h"

typedef struct {
    tn_ggml_type type;
    const char *name;
    int block, bytes;
    void (*quantize_row)(const float *x, void *dst, int64_t n);
} type_info;

static const type_info types[] = {
    {TN_GGML_F32, "F32", 1, 4, NULL},
    {TN_GGML_F16, "F16", 1, 2, NULL},
    {TN_GGML_BF16, "BF16", 1, 2, NULL},
    {TN_GGML_Q4_0, "Q4_0", 32, 18, tn_quantize_row_q4_0},
    {TN_GGML_Q5_0, "Q5_0", 32, 22, tn_quantize_row_q5_0},
    {TN_GGML_Q8_0, "Q8_0", 32, 34, tn_quantize_row_q8_0},
    {TN_GGML_Q4_K, "Q4_K", 256, 144, tn_quantize_row_q4_k},
    {TN_GGML_Q6_K, "Q6_K", 256, 210, tn_quantize_row_q6_k},
};

static const type_info *info(int t) {
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if ((int)types[i].type == t) return &types[i];
    return NULL;
}

int tn_ggml_type_known(int t) { return info(t) != NULL; }
const char *tn_ggml_type_name(tn_ggml_type t) { return info(t) ? info(t)->name : "?"; }
int tn_ggml_block_size(tn_ggml_type t) { return info(t) ? info(t)->block : 0; }
int tn_ggml_type_size(tn_ggml_type t) { return info(t) ? info(t)->bytes : 0; }
int tn_ggml_is_quantized(tn_ggml_type t) { return info(t) && info(t)->quantize_row != NULL; }

uint64_t tn_ggml_row_size(tn_ggml_type t, int64_t n) {
    const type_info *ti = info(t);
    return ti ? (uint64_t)(n / ti->block) * (uint64_t)ti->bytes : 0;
}

#if defined(__x86_64__) && defined(__GNUC__)
/* fp32 -> fp16 eight at a time with F16C (round to nearest even, as
 * tn_f32_to_f16; only NaN payloads could differ, and weights hold none). */
__attribute__((target("f16c,avx"))) static void f16c_row(const float *src, unsigned char *out, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(void *)(out + 2 * i), h);
    }
    for (; i < n; i++) {
        uint16_t h = tn_f32_to_f16(src[i]);
        out[2 * i] = (unsigned char)(h & 0xff);
        out[2 * i + 1] = (unsigned char)(h >> 8);
    }
}
static int have_f16c(void) {
    static int known = -1;
    if (known < 0) known = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
    return known;
}
#else
static void f16c_row(const float *src, unsigned char *out, int64_t n) { (void)src, (void)out, (void)n; }
static int have_f16c(void) { return 0; }
#endif

uint64_t tn_quant_rows(tn_ggml_type t, const float *src, void *dst, int64_t nrows, int64_t n_per_row) {
    const type_info *ti = info(t);
    if (!ti) return (uint64_t)tn_fail("ggml type %d is not supported", (int)t), 0;
    if (n_per_row <= 0 || n_per_row % ti->block) {
        tn_fail("rows of %lld values cannot be stored as %s (expected a multiple of %d)", (long long)n_per_row, ti->name, ti->block);
        return 0;
    }
    const uint64_t row_bytes = tn_ggml_row_size(t, n_per_row);
    unsigned char *out = dst;
    if (t == TN_GGML_F32) {
        memcpy(dst, src, (size_t)(nrows * n_per_row) * 4);
        return (uint64_t)nrows * row_bytes;
    }
    if (t == TN_GGML_F16 && have_f16c()) {
        const int64_t n = nrows * n_per_row, chunk = 1 << 16;
#pragma omp parallel for schedule(static) if (n > chunk)
        for (int64_t c = 0; c < (n + chunk - 1) / chunk; c++)
            f16c_row(src + c * chunk, out + 2 * c * chunk, n - c * chunk < chunk ? n - c * chunk : chunk);
        return (uint64_t)nrows * row_bytes;
    }
    if (t == TN_GGML_F16 || t == TN_GGML_BF16) {
        const int64_t n = nrows * n_per_row;
        const int bf = t == TN_GGML_BF16;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = bf ? tn_f32_to_bf16(src[i]) : tn_f32_to_f16(src[i]);
            out[2 * i] = (unsigned char)(h & 0xff);
            out[2 * i + 1] = (unsigned char)(h >> 8);
        }
        return (uint64_t)nrows * row_bytes;
    }
    /* One row per iteration: dynamic scheduling keeps the cores even when
     * rows are few and wide. */
#pragma omp parallel for schedule(dynamic, 1) if (nrows > 1 && nrows * n_per_row > 16384)
    for (int64_t r = 0; r < nrows; r++) ti->quantize_row(src + r * n_per_row, out + (uint64_t)r * row_bytes, n_per_row);
    return (uint64_t)nrows * row_bytes;
}
