/* test_qmatvec16.c - decoding from 16-bit rows (generate/qmatvec.h with
 * ggml types BF16 and F16; generate/infer.c's tn_infer_attach_16bit).
 *
 * (1) The kernels - portable C, AVX2 + F16C and AVX-512 where this CPU has
 * them - against convert-then-multiply: each weight widened to fp32 by
 * io/dtype.h's converters, the products summed in double. Widening is exact
 * (every bf16 and f16 value, subnormals included, is an fp32 value), so a
 * kernel differs from that sum only by the rounding of its fp32 products
 * and additions. Every kernel adds a value into a lane that holds at most
 * cols/8 + 4 earlier terms (8 lanes or more; the loop over the last whole
 * 8 or 16 and the tail add a few), then combines at most 16 lanes and the
 * < 16 tail values: a chain of at most cols/8 + 36 roundings, each off by at
 * most u = 2^-24 relative, so |y - exact| <= (cols/8 + 36)·u·Σ|w·x| (the
 * classic bound of recursive summation, Higham 4.2, with the chain's
 * length). The test fails past that bound and prints the largest
 * difference in units of u·Σ|w·x| per kernel. Columns cover the tails of
 * every kernel (1..17, 31..33, 63..65, 896 + 5) and a product big enough for
 * the decode pool.
 *
 * (2) Greedy decoding from a 16-bit folder equals decoding from its F32 copy:
 * each dense fixture family and Granite 4.0-H with experts, saved as BF16 and
 * as F16, then that folder written again as F32 (the same values); 24 greedy
 * tokens after a prompt, token by token, must be the same tokens with
 * next-token logits within 1e-5 (relative, as test_generate) - the 16-bit
 * folder decodes from its stored rows, the F32 copy from fp32 views. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "generate/infer.h"
#include "generate/qmatvec.h"
#include "io/dtype.h"
#include "io/safetensors_write.h"
#include "quant/quant.h"
#include "util/error.h"
#include "util/platform.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double uni(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* A value spread over many binades (f16 subnormals included), either sign. */
static float spread(void) {
    double v = ldexp(0.5 + uni(), (int)(uni() * 24) - 20);
    return (float)(uni() < 0.5 ? -v : v);
}

static float widen(int type, uint16_t h) { return type == TN_GGML_BF16 ? tn_bf16_to_f32(h) : tn_f16_to_f32(h); }

/* Largest |y - exact| / (u·Σ|w·x|) of every row of every width, with the
 * kernels the flags choose now. */
static double kernel_worst(int type) {
    static const int64_t widths[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 901, 4099};
    const double u = ldexp(1, -24);
    double worst = 0;
    for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++) {
        const int64_t cols = widths[wi], rows = cols > 1000 ? 40 : 5;
        uint16_t *w = malloc(sizeof *w * (size_t)(rows * cols));
        float *x = malloc(sizeof *x * (size_t)cols), *y = malloc(sizeof *y * (size_t)rows);
        assert_non_null(w), assert_non_null(x), assert_non_null(y);
        for (int64_t i = 0; i < rows * cols; i++) {
            const float v = spread();
            w[i] = type == TN_GGML_BF16 ? tn_f32_to_bf16(v) : tn_f32_to_f16(v);
        }
        for (int64_t c = 0; c < cols; c++) x[c] = spread();
        uint8_t *bytes = malloc((size_t)(rows * cols) * 2); /* little-endian, as stored */
        assert_non_null(bytes);
        for (int64_t i = 0; i < rows * cols; i++) bytes[2 * i] = (uint8_t)(w[i] & 0xFF), bytes[2 * i + 1] = (uint8_t)(w[i] >> 8);
        tn_qmatvec(type, bytes, x, y, rows, cols);
        for (int64_t r = 0; r < rows; r++) {
            double s = 0, a = 0;
            for (int64_t c = 0; c < cols; c++) {
                const double p = (double)widen(type, w[r * cols + c]) * x[c];
                s += p, a += fabs(p);
            }
            const double d = fabs((double)y[r] - s) / (u * a), bound = (double)cols / 8 + 36;
            if (d > worst) worst = d;
            if (!(d <= bound))
                fail_msg("%s %s kernel, %lld columns, row %lld: %.9g against %.9g (%.1f u·Σ|wx|, bound %.1f)", type == TN_GGML_BF16 ? "BF16" : "F16",
                         tn_qmatvec_kernels16(), (long long)cols, (long long)r, (double)y[r], s, d, bound);
        }
        free(w), free(x), free(y), free(bytes);
    }
    return worst;
}

static void test_kernels(void **state) {
    (void)state;
    const int types[] = {TN_GGML_BF16, TN_GGML_F16};
    /* portable, then AVX2 (AVX-512 off), then whatever the CPU offers */
    const struct {
        int portable, no_avx512;
    } modes[] = {{1, 1}, {0, 1}, {0, 0}};
    char seen[3][16] = {"", "", ""};
    for (int mo = 0; mo < 3; mo++) {
        tn_qmatvec_portable_only = modes[mo].portable, tn_qmatvec_no_avx512 = modes[mo].no_avx512;
        const char *k = tn_qmatvec_kernels16();
        int dup = 0;
        for (int j = 0; j < mo; j++) dup |= !strcmp(seen[j], k);
        snprintf(seen[mo], sizeof seen[mo], "%s", k);
        if (dup) {
            printf("  (no %s kernels on this CPU)\n", mo == 1 ? "AVX2" : "AVX-512");
            continue;
        }
        for (int t = 0; t < 2; t++)
            printf("  %-4s %-8s kernel: largest difference %.2f u·Σ|w·x| (bound cols/8 + 36)\n", types[t] == TN_GGML_BF16 ? "BF16" : "F16", k,
                   kernel_worst(types[t]));
    }
    tn_qmatvec_portable_only = -1, tn_qmatvec_no_avx512 = 0;
}

static char tmp[256];

static double max_rel(const float *a, const float *b, int n) {
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), den += (double)b[i] * b[i];
    return sqrt(num / den);
}

enum { PROMPT = 5, GEN = 24 };

/* Greedy decoding: the prompt as one chunk, then GEN tokens one at a time;
 * tokens into out, each step's logits into logits [GEN][V]. */
static void greedy(const char *dir, int32_t *out, float *logits, int *attached) {
    tn_model m;
    if (tn_model_open(dir, 64, &m) != 0) fail_msg("%s", tn_error());
    const int V = (int)m.spec.vocab_size;
    tn_infer s;
    assert_int_equal(tn_infer_init(&s, &m, NULL, 64), 0);
    *attached = s.qw ? s.qw->n : 0;
    int32_t ids[PROMPT];
    for (int i = 0; i < PROMPT; i++) ids[i] = (i * 37 + 11) % V;
    assert_int_equal(tn_infer_forward(&s, &m, NULL, ids, PROMPT), 0);
    for (int t = 0; t < GEN; t++) {
        int32_t best = 0;
        for (int i = 1; i < V; i++)
            if (s.logits[i] > s.logits[best]) best = i;
        out[t] = best;
        assert_int_equal(tn_infer_forward(&s, &m, NULL, &best, 1), 0);
        memcpy(logits + (int64_t)t * V, s.logits, sizeof(float) * (size_t)V);
    }
    tn_infer_free(&s);
    tn_model_close(&m);
}

/* The checkpoint of folder `from` with every floating tensor in dtype `to`
 * (from F32, BF16 or F16; exact where `to` holds the values), config.json
 * copied as it is, into folder `dir`. */
typedef struct {
    const tn_safetensors *st;
    tn_dtype to;
} convert_ctx;

static float value_at(const tn_tensor_info *t, const uint8_t *p, uint64_t i) {
    if (t->dtype == TN_DTYPE_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    const uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
    return t->dtype == TN_DTYPE_BF16 ? tn_bf16_to_f32(h) : tn_f16_to_f32(h);
}

static int convert_fill(void *ctx, int i, void *buf, uint64_t n_bytes) {
    const convert_ctx *c = ctx;
    const tn_tensor_info *t = &c->st->tensors[i];
    const uint8_t *p = tn_safetensors_data(c->st, t);
    for (uint64_t e = 0; e < t->n_elements; e++) {
        const float v = value_at(t, p, e);
        if (c->to == TN_DTYPE_F32) memcpy((uint8_t *)buf + 4 * e, &v, 4);
        else {
            const uint16_t h = c->to == TN_DTYPE_BF16 ? tn_f32_to_bf16(v) : tn_f32_to_f16(v);
            ((uint8_t *)buf)[2 * e] = (uint8_t)(h & 0xFF), ((uint8_t *)buf)[2 * e + 1] = (uint8_t)(h >> 8);
        }
    }
    (void)n_bytes;
    return 0;
}

static void convert_folder(const char *from, const char *dir, tn_dtype to) {
    tn_safetensors st;
    if (tn_safetensors_open(from, &st) != 0) fail_msg("%s", tn_error());
    tn_tensor_desc *d = calloc((size_t)st.n_tensors, sizeof *d);
    assert_non_null(d);
    for (int i = 0; i < st.n_tensors; i++) {
        const tn_tensor_info *t = &st.tensors[i];
        assert_true(t->dtype == TN_DTYPE_F32 || t->dtype == TN_DTYPE_BF16 || t->dtype == TN_DTYPE_F16);
        d[i].name = t->name, d[i].dtype = to, d[i].n_dims = t->n_dims;
        for (int k = 0; k < t->n_dims; k++) d[i].shape[k] = (int64_t)t->shape[k];
    }
    assert_int_equal(tn_make_dirs(dir), 0);
    convert_ctx c = {&st, to};
    if (tn_safetensors_write(dir, "model", d, st.n_tensors, UINT64_MAX, NULL, convert_fill, &c) != 0) fail_msg("%s", tn_error());
    free(d);
    tn_safetensors_close(&st);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "cp '%s/config.json' '%s/'", from, dir);
    assert_int_equal(system(cmd), 0);
}

static void test_folder_equals_f32_copy(void **state) {
    (void)state;
    snprintf(tmp, sizeof tmp, "/tmp/tune-qmatvec16-%d", (int)getpid());
    assert_int_equal(tn_make_dirs(tmp), 0);
    const char *fams[] = {"llama", "qwen2", "gemma2", "granite", "granitehybrid", "granitehybrid-moe", "llama-wide"};
    const tn_dtype dtypes[] = {TN_DTYPE_BF16, TN_DTYPE_F16};
    for (size_t f = 0; f < sizeof fams / sizeof *fams; f++)
        for (int d = 0; d < 2; d++) {
            char src[300], d16[300], d32[300];
            snprintf(src, sizeof src, "tests/fixtures/%s", fams[f]);
            snprintf(d16, sizeof d16, "%s/%s-16", tmp, fams[f]);
            snprintf(d32, sizeof d32, "%s/%s-32", tmp, fams[f]);
            convert_folder(src, d16, dtypes[d]);
            convert_folder(d16, d32, TN_DTYPE_F32);
            tn_model m;
            if (tn_model_open(d16, 64, &m) != 0) fail_msg("%s", tn_error());
            const int V = (int)m.spec.vocab_size;
            tn_model_close(&m);
    int32_t t16[GEN], t32[GEN];
            float *l16 = malloc(sizeof(float) * (size_t)GEN * V), *l32 = malloc(sizeof(float) * (size_t)GEN * V);
            assert_non_null(l16), assert_non_null(l32);
            int n16, n32;
            greedy(d16, t16, l16, &n16);
            greedy(d32, t32, l32, &n32);
            double worst = 0;
            for (int t = 0; t < GEN; t++) {
                const double e = max_rel(l16 + (int64_t)t * V, l32 + (int64_t)t * V, V);
                if (e > worst) worst = e;
            }
            printf("  %-18s %s: %d matrices read in place; %d greedy tokens %s the F32 copy's, logits within %.2e\n", fams[f],
                   dtypes[d] == TN_DTYPE_BF16 ? "BF16" : "F16 ", n16, GEN, memcmp(t16, t32, sizeof t16) ? "DIFFER from" : "equal", worst);
            assert_true(n16 > 0);
            assert_int_equal(n32, 0);
            assert_memory_equal(t16, t32, sizeof t16);
            assert_true(worst < 1e-5);
            free(l16), free(l32);
        }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_kernels), cmocka_unit_test(test_folder_equals_f32_copy)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
