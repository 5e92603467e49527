/* test_mlx_train.c - LoRA on an MLX affine 4-bit checkpoint (mlx-community's
 * layout) as a frozen quantized base. The checkpoint is made here from the
 * llama fixture: each Linear weight and the embedding quantized per group of
 * 64 (scale = (max-min)/15, bias = min, q = round((w-bias)/scale)), eight
 * values a U32 word, lowest bits first, and config.json's "quantization"
 * block. Beside it the same weights dequantized, as a plain F32 folder: a
 * LoRA step on the quantized base equals the step on that folder.
 *
 * Granite 4.0-H too, its conv1d in MLX's layout. With TUNE_MLX_OUT=DIR set,
 * only writes the checkpoint of TUNE_MLX_SRC (default the llama fixture) to
 * DIR (for tests/e2e/train_mlx.sh). */
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

#include "io/safetensors_write.h"
#include "model/spec.h"
#include "plan/plan.h"
#include "train/adapter.h"
#include "train/model.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/platform.h"

enum { GROUP = 64, BITS = 4 };

typedef struct {
    tn_tensor_desc d[256];
    void *data[256];
    uint64_t bytes[256];
    int n;
} out_set;

static int fill(void *ctx, int i, void *buf, uint64_t n_bytes) {
    const out_set *o = ctx;
    memcpy(buf, o->data[i], n_bytes);
    return 0;
}

static void add(out_set *o, const char *name, tn_dtype dt, int n_dims, const int64_t *shape, void *data, uint64_t bytes) {
    tn_tensor_desc *d = &o->d[o->n];
    d->name = tn_strdup(name);
    d->dtype = dt;
    d->n_dims = n_dims;
    for (int k = 0; k < n_dims; k++) d->shape[k] = shape[k];
    o->data[o->n] = data;
    o->bytes[o->n++] = bytes;
}

static void free_set(out_set *o) {
    for (int i = 0; i < o->n; i++) free((void *)o->d[i].name), free(o->data[i]);
}

static int quantized_name(const char *n) {
    static const char *const ends[] = {"_proj.weight", "_linear.weight", "embed_tokens.weight", "lm_head.weight", NULL};
    size_t len = strlen(n);
    for (int i = 0; ends[i]; i++)
        if (len >= strlen(ends[i]) && !strcmp(n + len - strlen(ends[i]), ends[i])) return 1;
    return 0;
}

/* Copies config.json (with or without the quantization block) and the
 * tokenizer files. */
static void copy_side_files(const char *src_dir, const char *dir, int quant) {
    static const char *const files[] = {"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json", NULL};
    for (int i = 0; files[i]; i++) {
        char src[512], dst[512];
        snprintf(src, sizeof src, "%s/%s", src_dir, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
        size_t n = 0;
        char *text = tn_read_file(src, 1u << 26, &n);
        assert_non_null(text);
        if (i == 0 && quant) {
            char *brace = strchr(text, '{');
            assert_non_null(brace);
            char *out = malloc(n + 128);
            int head = (int)(brace - text) + 1;
            int k = snprintf(out, n + 128, "%.*s\n  \"quantization\": {\"group_size\": %d, \"bits\": %d},%s", head, text, GROUP, BITS, brace + 1);
            assert_int_equal(tn_write_file_atomic(dst, out, (size_t)k), 0);
            free(out);
        } else {
            assert_int_equal(tn_write_file_atomic(dst, text, n), 0);
        }
        free(text);
    }
}

/* Writes fixture `src`'s MLX checkpoint to `mlx` and, when `plain` is not
 * NULL, its dequantized weights as F32 to `plain`. The Mamba conv1d goes
 * into MLX's layout, [C, K, 1] (Hugging Face's is [C, 1, K]). */
static void make_mlx(const char *src, const char *mlx, const char *plain) {
    tn_safetensors st;
    if (tn_safetensors_open(src, &st) != 0) fail_msg("%s", tn_error());
    out_set *q = calloc(1, sizeof *q), *f = calloc(1, sizeof *f);
    int n_quant = 0;
    for (int i = 0; i < st.n_tensors; i++) {
        const tn_tensor_info *t = &st.tensors[i];
        assert_int_equal(t->dtype, TN_DTYPE_F32);
        const float *w = tn_safetensors_data(&st, t);
        float *plainw = malloc(t->n_bytes);
        memcpy(plainw, w, t->n_bytes);
        if (t->n_dims == 2 && quantized_name(t->name) && t->shape[1] % GROUP == 0) {
            const int64_t rows = t->shape[0], cols = t->shape[1], ng = cols / GROUP;
            uint32_t *packed = calloc((size_t)(rows * cols / 8), 4);
            float *sc = malloc((size_t)(rows * ng) * 4), *bi = malloc((size_t)(rows * ng) * 4);
            for (int64_t r = 0; r < rows; r++)
                for (int64_t g = 0; g < ng; g++) {
                    const float *x = w + r * cols + g * GROUP;
                    float lo = x[0], hi = x[0];
                    for (int j = 1; j < GROUP; j++) lo = fminf(lo, x[j]), hi = fmaxf(hi, x[j]);
                    float scale = (hi - lo) / 15.0f, bias = lo;
                    sc[r * ng + g] = scale, bi[r * ng + g] = bias;
                    for (int j = 0; j < GROUP; j++) {
                        float v = scale > 0 ? roundf((x[j] - bias) / scale) : 0.0f;
                        uint32_t qv = v < 0 ? 0 : v > 15 ? 15 : (uint32_t)v;
                        int64_t c = g * GROUP + j;
                        packed[(r * cols + c) / 8] |= qv << (4 * (c % 8));
                        plainw[r * cols + c] = scale * (float)qv + bias;
                    }
                }
            char base[256], name[300];
            snprintf(base, sizeof base, "%.*s", (int)(strlen(t->name) - strlen(".weight")), t->name);
            int64_t pshape[2] = {rows, cols / 8}, gshape[2] = {rows, ng};
            add(q, t->name, TN_DTYPE_U32, 2, pshape, packed, (uint64_t)(rows * cols / 8) * 4);
            snprintf(name, sizeof name, "%s.scales", base);
            add(q, name, TN_DTYPE_F32, 2, gshape, sc, (uint64_t)(rows * ng) * 4);
            snprintf(name, sizeof name, "%s.biases", base);
            add(q, name, TN_DTYPE_F32, 2, gshape, bi, (uint64_t)(rows * ng) * 4);
            n_quant++;
        } else {
            void *copy = malloc(t->n_bytes);
            memcpy(copy, w, t->n_bytes);
            int64_t shape[TN_MAX_DIMS];
            memcpy(shape, t->shape, sizeof shape);
            if (strstr(t->name, "conv1d.weight") && t->n_dims == 3 && shape[1] == 1) shape[1] = shape[2], shape[2] = 1;
            add(q, t->name, TN_DTYPE_F32, t->n_dims, shape, copy, t->n_bytes);
        }
        add(f, t->name, TN_DTYPE_F32, t->n_dims, t->shape, plainw, t->n_bytes);
    }
    assert_true(n_quant >= 5); /* the Linears of 2+ layers, and the embedding */
    assert_int_equal(tn_make_dirs(mlx), 0);
    assert_int_equal(tn_safetensors_write(mlx, "model", q->d, q->n, 5000000000ull, NULL, fill, q), 0);
    copy_side_files(src, mlx, 1);
    if (plain) {
        assert_int_equal(tn_make_dirs(plain), 0);
        assert_int_equal(tn_safetensors_write(plain, "model", f->d, f->n, 5000000000ull, NULL, fill, f), 0);
        copy_side_files(src, plain, 0);
    }
    free_set(q), free_set(f);
    free(q), free(f);
    tn_safetensors_close(&st);
}

static int32_t *ints(const tn_safetensors *st, const char *name) {
    const tn_tensor_info *t = tn_safetensors_find(st, name);
    int32_t *out = malloc(t->n_elements * sizeof *out);
    for (uint64_t i = 0; i < t->n_elements; i++) {
        int64_t v;
        memcpy(&v, (const char *)tn_safetensors_data(st, t) + 8 * i, 8);
        out[i] = (int32_t)v;
    }
    return out;
}

static double step(tn_model *m, const char *src, const int32_t *ids, const int32_t *labels, float **grads, int64_t *n) {
    tn_lora lora;
    char adapter[256];
    snprintf(adapter, sizeof adapter, "%s/lora/init_adapter", src);
    if (tn_adapter_load(&lora, m, adapter) != 0) fail_msg("%s", tn_error());
    tn_plan_settings ps = {.seq = 16, .batch = 2};
    tn_activations a;
    assert_int_equal(tn_activations_alloc(&a, m, &lora, &ps), 0);
    int64_t c;
    double loss = tn_model_step(m, &lora, &a, ids, labels, 1, 0, &c) / (double)c;
    *n = lora.n_params;
    *grads = malloc((size_t)lora.n_params * sizeof(float));
    memcpy(*grads, lora.grads, (size_t)lora.n_params * sizeof(float));
    tn_activations_free(&a);
    tn_lora_free(&lora);
    return loss;
}

static void step_equals_dequantized(const char *src) {
    char dir[256], mlx[300], plain[300], cmd[320], path[300];
    snprintf(dir, sizeof dir, "/tmp/tune-mlx-train-%d", (int)getpid());
    snprintf(mlx, sizeof mlx, "%s/mlx", dir);
    snprintf(plain, sizeof plain, "%s/plain", dir);
    make_mlx(src, mlx, plain);

    /* The checkpoint matches its config (what `tune check` verifies). */
    tn_spec spec;
    if (tn_spec_load(mlx, &spec) != 0) fail_msg("%s", tn_error());
    assert_int_equal(spec.quant_bits, 4);
    assert_int_equal(spec.quant_group_size, 64);
    tn_safetensors st;
    assert_int_equal(tn_safetensors_open(mlx, &st), 0);
    char report[4096];
    int problems = tn_spec_check_tensors(&spec, &st, report, sizeof report);
    if (problems) fail_msg("%s", report);
    tn_safetensors_close(&st);

    tn_safetensors bt;
    snprintf(path, sizeof path, "%s/lora/batches.safetensors", src);
    if (tn_safetensors_open(path, &bt) != 0) fail_msg("%s", tn_error());
    int32_t *ids = ints(&bt, "input_ids"), *labels = ints(&bt, "labels");
    tn_model q, d;
    if (tn_model_open(mlx, 16, &q) != 0) fail_msg("%s", tn_error());
    if (tn_model_open(plain, 16, &d) != 0) fail_msg("%s", tn_error());
    /* The packed weights stay as they are in the mapping; only the
     * embedding is dequantized whole. */
    assert_non_null(q.embed_copy);
    assert_true(q.layer_ws != NULL);
    assert_int_equal(memcmp(q.embed_view, d.embed_view, (size_t)(q.spec.vocab_size * q.spec.hidden) * sizeof(float)), 0);
    /* QLoRA on top is refused (full fine-tuning too, below). */
    if (!q.spec.family->hybrid) assert_int_not_equal(tn_model_quantize_base(&q, TN_QUANT_NF4), 0);

    float *gq, *gd;
    int64_t n;
    double lq = step(&q, src, ids, labels, &gq, &n), ld = step(&d, src, ids, labels, &gd, &n);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)gq[i] - gd[i]));
    printf("  %s, MLX 4-bit base: loss %.6f, on its dequantized F32 folder %.6f; LoRA gradients differ by at most %.2e\n", src, lq, ld, worst);
    assert_true(lq == ld);
    assert_true(worst == 0);
    free(gq), free(gd);
    tn_model_close(&q);
    tn_model_close(&d);

    tn_model full;
    if (tn_model_open(mlx, 16, &full) != 0) fail_msg("%s", tn_error());
    assert_int_not_equal(tn_model_make_trainable(&full, -1), 0);
    assert_non_null(strstr(tn_error(), "quantized"));
    tn_model_close(&full);

    free(ids), free(labels);
    tn_safetensors_close(&bt);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_llama(void **state) { step_equals_dequantized("tests/fixtures/llama"); }
/* Granite 4.0-H: Mamba in_proj/out_proj and the shared MLP quantized, the
 * conv1d in MLX's [C, K, 1]. */
static void test_granitehybrid(void **state) { step_equals_dequantized("tests/fixtures/granitehybrid"); }

int main(void) {
    const char *out = getenv("TUNE_MLX_OUT");
    if (out && *out) {
        const char *src = getenv("TUNE_MLX_SRC");
        make_mlx(src && *src ? src : "tests/fixtures/llama", out, NULL);
        return 0;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_llama), cmocka_unit_test(test_granitehybrid)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
