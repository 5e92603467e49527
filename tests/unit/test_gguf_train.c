/* test_gguf_train.c - LoRA on a GGUF file as the frozen base
 * (model/gguf_import.h's tn_gguf_base_temp; train/model.c reads the layer
 * matrices from the file's own blocks a layer at a time). Each fixture is
 * exported here to a GGUF of some type, then one LoRA step (forward and
 * backward, B non-zero so every gradient is) runs on
 *   - the GGUF base (blocks dequantized a layer at a time, Q/K rows put
 *     back from llama.cpp's interleaved order), and
 *   - the same GGUF dequantized whole into an F32 Hugging Face folder
 *     (tn_gguf_to_hf, what `tune generate FILE.gguf` runs),
 * and the loss and every LoRA gradient must be equal bit for bit: both
 * dequantize with the same ggml row functions and run the same forward.
 * Mixed files: llama-wide (256 wide) Q4_K_M is Q4_K with Q6_K in some
 * layers' attn_v / ffn_down; the 64-wide fixtures' Q4_K_M falls back to
 * Q5_0 / Q8_0; F16 and Q8_0 too; qwen2 (biases, no permutation), gemma2
 * (w + 1 norms). Also: the plan prices the blocks, QLoRA and full
 * fine-tuning on top are refused, and the adapter names the GGUF. */
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

#include "export/export.h"
#include "io/gguf_read.h"
#include "io/json.h"
#include "model/gguf_import.h"
#include "plan/plan.h"
#include "train/adapter.h"
#include "train/model.h"
#include "util/error.h"
#include "util/platform.h"

enum { B = 2, S = 12 };

/* One step with a LoRA of rank 4 on every module, A from the seed and B
 * filled with small deterministic values; the gradients are copied out. */
static double step(tn_model *m, float **grads, int64_t *n) {
    tn_targets t;
    if (tn_targets_parse(&m->spec, NULL, &t) != 0) fail_msg("%s", tn_error());
    tn_lora lora;
    if (tn_lora_init(&lora, m, &t, 4, 8, 0, 0, -1, 7) != 0) fail_msg("%s", tn_error());
    for (int i = 0; i < lora.n; i++)
        for (int64_t j = 0; j < (int64_t)lora.rank * lora.mods[i].out; j++) lora.mods[i].b[j] = 0.01f * (float)((j * 7 + i * 3) % 11 - 5);
    int32_t ids[B * S], labels[B * S];
    for (int i = 0; i < B * S; i++) ids[i] = labels[i] = (int32_t)(((uint64_t)i * 2654435761u + 17u) % (uint64_t)m->spec.vocab_size);
    tn_plan_settings ps = {.seq = S, .batch = B};
    tn_activations a;
    assert_int_equal(tn_activations_alloc(&a, m, &lora, &ps), 0);
    assert_int_equal(tn_activations_shape(&a, B, S), 0);
    int64_t c = 0;
    double loss = tn_model_step(m, &lora, &a, ids, labels, 1, 0, &c) / (double)c;
    *n = lora.n_params;
    *grads = malloc((size_t)lora.n_params * sizeof(float));
    memcpy(*grads, lora.grads, (size_t)lora.n_params * sizeof(float));
    tn_activations_free(&a);
    tn_lora_free(&lora);
    return loss;
}

static void step_equals_dequantized(const char *fixture, tn_file_type type) {
    char dir[256], gguf[300], plain[300], cmd[320];
    snprintf(dir, sizeof dir, "/tmp/tune-gguf-train-%d", (int)getpid());
    snprintf(gguf, sizeof gguf, "%s/m.gguf", dir);
    snprintf(plain, sizeof plain, "%s/plain", dir);
    assert_int_equal(tn_make_dirs(dir), 0);
    tn_export_job *job = NULL;
    if (tn_gguf_export_prepare(&job, fixture, NULL, gguf, type) || tn_export_run(job)) fail_msg("export %s: %s", fixture, tn_error());
    tn_export_free(job);
    if (tn_gguf_to_hf(gguf, plain) != 0) fail_msg("%s", tn_error());
    char base[4096];
    if (tn_gguf_base_temp(gguf, base, sizeof base, 1) != 0) fail_msg("%s", tn_error());

    tn_spec spec;
    if (tn_spec_load(base, &spec) != 0) fail_msg("%s", tn_error());
    assert_true(spec.gguf_layer_bytes > 0);
    tn_model q, d;
    if (tn_model_open(base, S, &q) != 0) fail_msg("%s", tn_error());
    if (tn_model_open(plain, S, &d) != 0) fail_msg("%s", tn_error());
    const int *by_type = NULL;
    assert_non_null(tn_model_gguf_base(&q, &by_type));
    char types[256] = "";
    size_t len = 0;
    for (int k = 0; k < 64; k++)
        if (by_type[k]) len += (size_t)snprintf(types + len, sizeof types - len, "%s%s %d", len ? ", " : "", tn_gguf_type_name(k), by_type[k]);
    /* The plan prices the layer matrices as the file's blocks. */
    tn_plan plan;
    tn_plan_settings ps = {.seq = S, .batch = B, .rank = 4, .layers = -1};
    assert_int_equal(tn_targets_parse(&spec, NULL, &ps.targets), 0);
    tn_plan_make(&spec, TN_DTYPE_F32, &ps, TN_PLAN_LORA, &plan);
    int priced = 0;
    for (int i = 0; i < plan.n; i++) priced |= !strcmp(plan.buffers[i].name, "weights: layers (GGUF blocks)") && plan.buffers[i].bytes == spec.gguf_layer_bytes;
    assert_true(priced);

    float *gq, *gd;
    int64_t n;
    double lq = step(&q, &gq, &n), ld = step(&d, &gd, &n);
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)gq[i] - gd[i])), scale = fmax(scale, fabs((double)gd[i]));
    printf("  %s %s (%s): loss %.7f on the GGUF base, %.7f on its dequantized F32 folder; largest LoRA gradient difference %.2e (of %.2e)\n",
           fixture, tn_file_type_name(type), types, lq, ld, worst, scale);
    assert_true(lq == ld);
    assert_true(worst == 0);
    assert_true(scale > 0);
    free(gq), free(gd);

    /* QLoRA and full fine-tuning on top: refused, naming the GGUF. */
    assert_int_not_equal(tn_model_quantize_base(&q, TN_QUANT_NF4), 0);
    assert_non_null(strstr(tn_error(), "without --qlora"));
    assert_int_not_equal(tn_model_make_trainable(&q, -1), 0);
    assert_non_null(strstr(tn_error(), gguf));
    /* The adapter's base is the GGUF, not the temporary folder. */
    tn_targets t;
    assert_int_equal(tn_targets_parse(&q.spec, NULL, &t), 0);
    tn_lora lora;
    assert_int_equal(tn_lora_init(&lora, &q, &t, 4, 8, 0, 0, -1, 7), 0);
    char adir[320], cfg[400];
    snprintf(adir, sizeof adir, "%s/adapter", dir);
    assert_int_equal(tn_adapter_save(&lora, &q, adir, base), 0);
    snprintf(cfg, sizeof cfg, "%s/adapter_config.json", adir);
    cJSON *j = tn_json_parse_file(cfg, 1 << 20);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "base_model_name_or_path")->valuestring, gguf);
    cJSON_Delete(j);
    tn_lora_free(&lora);

    tn_model_close(&q);
    tn_model_close(&d);
    tn_gguf_remove_temp(base);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_llama_wide_q4_k_m(void **state) { step_equals_dequantized("tests/fixtures/llama-wide", TN_FT_Q4_K_M); }
static void test_llama_wide_q6_k(void **state) { step_equals_dequantized("tests/fixtures/llama-wide", TN_FT_Q6_K); }
static void test_llama_q8_0(void **state) { step_equals_dequantized("tests/fixtures/llama", TN_FT_Q8_0); }
static void test_llama_q4_k_m(void **state) { step_equals_dequantized("tests/fixtures/llama", TN_FT_Q4_K_M); }
static void test_llama_f16(void **state) { step_equals_dequantized("tests/fixtures/llama", TN_FT_F16); }
static void test_qwen2_q4_0(void **state) { step_equals_dequantized("tests/fixtures/qwen2", TN_FT_Q4_0); }
static void test_gemma2_q8_0(void **state) { step_equals_dequantized("tests/fixtures/gemma2", TN_FT_Q8_0); }
static void test_granitehybrid_q8_0(void **state) { step_equals_dequantized("tests/fixtures/granitehybrid", TN_FT_Q8_0); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_wide_q4_k_m), cmocka_unit_test(test_llama_wide_q6_k), cmocka_unit_test(test_llama_q8_0),
        cmocka_unit_test(test_llama_q4_k_m),      cmocka_unit_test(test_llama_f16),       cmocka_unit_test(test_qwen2_q4_0),
        cmocka_unit_test(test_gemma2_q8_0),       cmocka_unit_test(test_granitehybrid_q8_0),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
