/* test_qlora.c - LoRA on a quantized base (NF4, Q4_K, Q8_0): the NF4 codec,
 * the plan's sizes, and the correctness bar: a training step on the
 * quantized base equals the same step on its dequantized weights in fp32.
 * Also prints the QLoRA against LoRA loss curve on the llama fixture. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan/plan.h"
#include "quant/nf4.h"
#include "train/adapter.h"
#include "train/model.h"
#include "train/optim.h"
#include "util/error.h"
#include "util/rng.h"

static void test_nf4_codec(void **state) {
    enum { N = 64 * 300 + 17 }; /* several groups and a short last block */
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    tn_rng r;
    tn_rng_seed(&r, 5, 6);
    for (int i = 0; i < N; i++) x[i] = 0.02f * tn_rng_normal(&r);
    void *q = malloc(tn_nf4_bytes(N));
    tn_nf4_quantize(x, N, q);
    tn_nf4_dequantize(q, N, y);
    /* Each value is a level times its block's decoded absmax, and the
     * nearest such: the error is at most half the widest level gap
     * (0.1609 - 0.0796... the largest gap is 1 - 0.7230) times the absmax,
     * plus the absmax's own int8 error. */
    double worst = 0, num = 0, den = 0;
    for (int b = 0; b < (N + 63) / 64; b++) {
        float am = 0;
        for (int i = b * 64; i < N && i < (b + 1) * 64; i++) am = fmaxf(am, fabsf(x[i]));
        for (int i = b * 64; i < N && i < (b + 1) * 64; i++) {
            double e = fabs((double)x[i] - y[i]) / am;
            if (e > worst) worst = e;
            num += ((double)x[i] - y[i]) * ((double)x[i] - y[i]), den += (double)x[i] * x[i];
        }
    }
    printf("  NF4: worst error %.3f of the block absmax, relative RMS error %.3f\n", worst, sqrt(num / den));
    assert_true(worst < (1.0 - 0.7229568) / 2 + 0.02);
    assert_true(sqrt(num / den) < 0.12);
    assert_int_equal(tn_nf4_bytes(N), 4 + 4 * 2 + 301 + (N + 1) / 2);
    assert_int_equal(tn_quant_bytes(TN_QUANT_NF4, N), tn_nf4_bytes(N));
    free(x), free(y), free(q);
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

/* Loss and LoRA gradients of batch 0 on `m` with the fixture's adapter. */
static double step(tn_model *m, const int32_t *ids, const int32_t *labels, float **grads, int64_t *n) {
    tn_lora lora;
    if (tn_adapter_load(&lora, m, "tests/fixtures/llama/lora/init_adapter") != 0) fail_msg("%s", tn_error());
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

static void test_step_equals_dequantized(void **state) {
    tn_safetensors bt;
    if (tn_safetensors_open("tests/fixtures/llama/lora/batches.safetensors", &bt) != 0) fail_msg("%s", tn_error());
    int32_t *ids = ints(&bt, "input_ids"), *labels = ints(&bt, "labels");
    const int kinds[] = {TN_QUANT_NF4, TN_QUANT_Q8_0};
    for (int k = 0; k < 2; k++) {
        tn_model q, d;
        if (tn_model_open("tests/fixtures/llama", 16, &q) != 0 || tn_model_open("tests/fixtures/llama", 16, &d) != 0) fail_msg("%s", tn_error());
        if (tn_model_quantize_base(&q, kinds[k]) != 0) fail_msg("%s", tn_error());
        /* d: the same weights, dequantized once, as plain fp32 weights. */
        assert_int_equal(tn_model_make_trainable(&d, -1), 0);
        for (int l = 0; l < q.spec.n_layers; l++) {
            tn_layer_view v;
            assert_int_equal(tn_model_layer_view(&q, l, &v), 0);
            for (int mod = 0; mod < TN_MOD_COUNT; mod++) {
                if (!tn_module_applies(&q.spec, l, (tn_module)mod)) continue;
                char name[256];
                snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, tn_module_paths[mod]);
                const tn_tensor_info *t = tn_safetensors_find(&d.st, name);
                memcpy(d.master + d.master_off[t - d.st.tensors], v.w[mod], t->n_elements * sizeof(float));
            }
        }
        float *gq, *gd;
        int64_t n;
        double lq = step(&q, ids, labels, &gq, &n), ld = step(&d, ids, labels, &gd, &n);
        double num = 0, den = 0;
        for (int64_t i = 0; i < n; i++) num += ((double)gq[i] - gd[i]) * ((double)gq[i] - gd[i]), den += (double)gd[i] * gd[i];
        printf("  %s base: loss %.6f, on its dequantized fp32 weights %.6f; LoRA gradients differ by %.2e relative\n",
               tn_quant_name((tn_quant)kinds[k]), lq, ld, sqrt(num / den));
        assert_true(fabs(lq - ld) < 1e-6);
        assert_true(sqrt(num / den) < 1e-6);
        free(gq), free(gd);
        tn_model_close(&q);
        tn_model_close(&d);
    }
    free(ids), free(labels);
    tn_safetensors_close(&bt);
}

/* The curve, reported (not asserted beyond finiteness and learning). */
static void test_qlora_curve(void **state) {
    tn_safetensors bt;
    if (tn_safetensors_open("tests/fixtures/llama/lora/batches.safetensors", &bt) != 0) fail_msg("%s", tn_error());
    int32_t *ids = ints(&bt, "input_ids"), *labels = ints(&bt, "labels");
    double curve[2][20];
    for (int qk = 0; qk < 2; qk++) {
        tn_model m;
        if (tn_model_open("tests/fixtures/llama", 16, &m) != 0) fail_msg("%s", tn_error());
        if (qk && tn_model_quantize_base(&m, TN_QUANT_NF4) != 0) fail_msg("%s", tn_error());
        tn_lora lora;
        if (tn_adapter_load(&lora, &m, "tests/fixtures/llama/lora/init_adapter") != 0) fail_msg("%s", tn_error());
        tn_plan_settings ps = {.seq = 16, .batch = 2};
        tn_activations a;
        assert_int_equal(tn_activations_alloc(&a, &m, &lora, &ps), 0);
        tn_adamw opt;
        tn_adamw_init(&opt, lora.n_params, 1e-2, 0.01);
        for (int s = 0; s < 20; s++) {
            memset(lora.grads, 0, (size_t)lora.n_params * sizeof(float));
            int64_t c;
            curve[qk][s] = tn_model_step(&m, &lora, &a, ids + s * 32, labels + s * 32, 1, 0, &c) / (double)c;
            tn_adamw_update(&opt, lora.params, lora.grads, 1e-2);
        }
        tn_adamw_free(&opt);
        tn_activations_free(&a);
        tn_lora_free(&lora);
        tn_model_close(&m);
    }
    printf("  llama fixture, 20 AdamW steps: step  LoRA     QLoRA(nf4)\n");
    for (int s = 0; s < 20; s += 4) printf("                                    %2d  %.4f   %.4f\n", s, curve[0][s], curve[1][s]);
    for (int s = 0; s < 20; s++) assert_true(isfinite(curve[1][s]) && fabs(curve[1][s] - curve[0][s]) < 0.5);
    free(ids), free(labels);
    tn_safetensors_close(&bt);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_nf4_codec), cmocka_unit_test(test_step_equals_dequantized),
                                       cmocka_unit_test(test_qlora_curve)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
