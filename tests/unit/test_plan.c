/* test_plan.c - the memory plan: totals are the sum of the buffers, the
 * activation slots the trainer will allocate sum to the priced activations,
 * checkpointing and QLoRA shrink what they should, sizes parse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "model/source.h"
#include "plan/plan.h"
#include "util/error.h"
#include "util/size.h"

static const tn_plan_buffer *find(const tn_plan *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->buffers[i].name, name)) return &p->buffers[i];
    return NULL;
}

static void test_totals_and_slots(void **state) {
    const char *presets[] = {"llama-3.2-3b-instruct", "gemma-2-9b-it", "granite-4.0-h-tiny", "qwen2.5-0.5b-instruct"};
    for (size_t k = 0; k < 4; k++) {
        tn_model_source src;
        assert_int_equal(tn_model_source_open(presets[k], &src), 0);
        tn_plan_settings s;
        tn_plan_default_settings(&src.spec, &s);
        for (int kind = 0; kind < TN_PLAN_COUNT; kind++) {
            tn_plan p;
            tn_plan_make(&src.spec, TN_DTYPE_BF16, &s, (tn_plan_kind)kind, &p);
            uint64_t sum = 0;
            for (int i = 0; i < p.n; i++) sum += p.buffers[i].bytes;
            assert_int_equal(sum, p.total);
        }
        tn_plan p;
        tn_plan_make(&src.spec, TN_DTYPE_BF16, &s, TN_PLAN_LORA, &p);
        uint64_t slots_bytes = 0;
        for (int l = 0; l < src.spec.n_layers; l++) {
            tn_slot slots[TN_MAX_SLOTS];
            int n = tn_plan_activation_layout(&src.spec, &s, l, slots);
            assert_true(n > 0 && n <= TN_MAX_SLOTS);
            for (int i = 0; i < n; i++) slots_bytes += slots[i].elements * 4;
        }
        const tn_plan_buffer *b = find(&p, "saved activations");
        assert_non_null(b);
        assert_int_equal(b->bytes, slots_bytes);
    }
}

static void test_checkpointing_and_qlora_shrink(void **state) {
    tn_model_source src;
    assert_int_equal(tn_model_source_open("gemma-2-9b-it", &src), 0);
    tn_plan_settings s;
    tn_plan_default_settings(&src.spec, &s);
    tn_plan lora, qlora, ck;
    tn_plan_make(&src.spec, TN_DTYPE_BF16, &s, TN_PLAN_LORA, &lora);
    tn_plan_make(&src.spec, TN_DTYPE_BF16, &s, TN_PLAN_QLORA, &qlora);
    s.grad_checkpoint = 1;
    tn_plan_make(&src.spec, TN_DTYPE_BF16, &s, TN_PLAN_QLORA, &ck);
    assert_true(qlora.total < lora.total);
    assert_true(ck.total < qlora.total);
    /* The claim, by the plan: Gemma 2 9B QLoRA (checkpointed) fits
     * in 16 GiB; LoRA on the bf16 base does not, even checkpointed. */
    uint64_t budget = 16ull << 30;
    assert_true(ck.total <= budget);
    tn_plan_make(&src.spec, TN_DTYPE_BF16, &s, TN_PLAN_LORA, &lora);
    assert_true(lora.total > budget);
}

static void test_llama3b_lora_fits_16g(void **state) {
    tn_model_source src;
    assert_int_equal(tn_model_source_open("llama-3.2-3b-instruct", &src), 0);
    tn_plan_settings s;
    tn_plan_default_settings(&src.spec, &s);
    tn_plan p;
    tn_plan_make(&src.spec, TN_DTYPE_BF16, &s, TN_PLAN_LORA, &p);
    assert_true(p.total <= (16ull << 30));
    /* LoRA parameters: rank 16 on all seven projections of 28 layers. */
    const tn_plan_buffer *b = find(&p, "lora parameters");
    assert_non_null(b);
    assert_int_equal(b->bytes, 4ull * 28 * 16 * ((3072 + 3072) * 2 + (3072 + 1024) * 2 + (3072 + 8192) * 3));
}

static void test_quant_bytes(void **state) {
    assert_int_equal(tn_quant_bytes(TN_QUANT_Q8_0, 64), 68);
    assert_int_equal(tn_quant_bytes(TN_QUANT_Q4_K, 512), 288);
    /* NF4: 256 weights -> 128 B of nibbles, 4 absmax codes, one fp32 group
     * scale and the tensor's fp32 absmax offset */
    assert_int_equal(tn_quant_bytes(TN_QUANT_NF4, 256), 128 + 4 + 4 + 4);
}

static void test_sizes(void **state) {
    uint64_t b;
    assert_int_equal(tn_parse_size("16G", "--budget", &b), 0);
    assert_int_equal(b, 16ull << 30);
    assert_int_equal(tn_parse_size("1.5G", "--budget", &b), 0);
    assert_int_equal(b, 3ull << 29);
    assert_int_equal(tn_parse_size("512M", "--budget", &b), 0);
    assert_int_equal(b, 512ull << 20);
    assert_int_equal(tn_parse_size("100", "--budget", &b), 0);
    assert_int_equal(b, 100);
    assert_int_not_equal(tn_parse_size("12Q", "--budget", &b), 0);
    assert_int_not_equal(tn_parse_size("lots", "--budget", &b), 0);
    assert_non_null(strstr(tn_error(), "--budget"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_totals_and_slots), cmocka_unit_test(test_checkpointing_and_qlora_shrink),
        cmocka_unit_test(test_llama3b_lora_fits_16g), cmocka_unit_test(test_quant_bytes), cmocka_unit_test(test_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
