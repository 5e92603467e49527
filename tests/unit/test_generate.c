/* test_generate.c - inference with the KV cache equals the training
 * forward (itself held to transformers by test_train_golden): for every
 * dense fixture family, the next-token logits after each prefix of a
 * sequence, fed token by token and as one chunk, with and without a LoRA
 * adapter; sampling with a seed is reproducible; temperature 0 is argmax. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate/infer.h"
#include "generate/sample.h"
#include "train/adapter.h"
#include "util/error.h"

static double max_rel(const float *a, const float *b, int n) {
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), den += (double)b[i] * b[i];
    return sqrt(num / den);
}

static void check_family(const char *fam, int with_lora) {
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fixtures/%s", fam);
    tn_model m;
    if (tn_model_open(dir, 128, &m) != 0) fail_msg("%s", tn_error());
    tn_lora lora, *lp = NULL;
    if (with_lora) {
        char ad[300];
        snprintf(ad, sizeof ad, "%s/lora/final_adapter", dir);
        if (tn_adapter_load(&lora, &m, ad) != 0) fail_msg("%s", tn_error());
        lp = &lora;
    }
    enum { S = 80 }; /* more than one 64-token chunk */
    int V = (int)m.spec.vocab_size;
    int32_t ids[S];
    for (int i = 0; i < S; i++) ids[i] = (i * 37 + 11) % V;
    tn_plan_settings ps = {.seq = S, .batch = 1};
    tn_activations a;
    assert_int_equal(tn_activations_alloc(&a, &m, lp, &ps), 0);
    float *ref = malloc((size_t)S * V * sizeof *ref);
    assert_int_equal(tn_model_logits(&m, lp, &a, ids, ref), 0);
    tn_infer one, chunk;
    assert_int_equal(tn_infer_init(&one, &m, lp, S), 0);
    assert_int_equal(tn_infer_init(&chunk, &m, lp, S), 0);
    double worst = 0;
    for (int t = 0; t < S; t++) {
        assert_int_equal(tn_infer_forward(&one, &m, lp, ids + t, 1), 0);
        double e = max_rel(one.logits, ref + (int64_t)t * V, V);
        if (e > worst) worst = e;
    }
    assert_int_equal(tn_infer_forward(&chunk, &m, lp, ids, S), 0);
    double ec = max_rel(chunk.logits, ref + (int64_t)(S - 1) * V, V);
    printf("  %-10s%s token by token: worst relative difference %.2e; one chunk: %.2e\n", fam, with_lora ? " + LoRA" : "       ", worst, ec);
    assert_true(worst < 1e-5);
    assert_true(ec < 1e-5);
    tn_infer_free(&one);
    tn_infer_free(&chunk);
    tn_activations_free(&a);
    free(ref);
    if (lp) tn_lora_free(lp);
    tn_model_close(&m);
}

static void test_cache_equals_training_forward(void **state) {
    const char *fams[] = {"llama", "mistral", "qwen2", "gemma2", "granite", "granitehybrid", "granitehybrid-moe"};
    for (size_t i = 0; i < sizeof fams / sizeof *fams; i++) {
        check_family(fams[i], 0);
        check_family(fams[i], 1);
    }
}

static void test_sampling(void **state) {
    enum { V = 50 };
    float logits[V], copy[V];
    for (int i = 0; i < V; i++) logits[i] = (float)sin(i * 1.7) * 3;
    tn_sampler a, b;
    assert_int_equal(tn_sampler_init(&a, V, 42), 0);
    assert_int_equal(tn_sampler_init(&b, V, 42), 0);
    a.temp = b.temp = 0.9;
    for (int k = 0; k < 100; k++) {
        memcpy(copy, logits, sizeof copy);
        int32_t x = tn_sample(&a, copy, V, NULL, 0);
        memcpy(copy, logits, sizeof copy);
        assert_int_equal(x, tn_sample(&b, copy, V, NULL, 0));
    }
    a.temp = 0;
    int32_t best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    memcpy(copy, logits, sizeof copy);
    assert_int_equal(tn_sample(&a, copy, V, NULL, 0), best);
    /* top-k 1 is greedy at any temperature */
    a.temp = 5, a.top_k = 1;
    memcpy(copy, logits, sizeof copy);
    assert_int_equal(tn_sample(&a, copy, V, NULL, 0), best);
    tn_sampler_free(&a);
    tn_sampler_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_cache_equals_training_forward), cmocka_unit_test(test_sampling)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
