/* test_spec.c - config.json -> spec for every family, parameter counts of the
 * presets against the published counts, both rope spellings, and errors for
 * bad configs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "io/json.h"
#include "model/presets.h"
#include "model/source.h"
#include "model/spec.h"
#include "util/error.h"

static void spec_of(const char *text, tn_spec *s, int expect_ok) {
    cJSON *c = tn_json_parse(text, strlen(text), "test-config.json");
    assert_non_null(c);
    int rc = tn_spec_from_config(c, "test-config.json", s);
    cJSON_Delete(c);
    if (expect_ok && rc != 0) fail_msg("config rejected: %s", tn_error());
    if (!expect_ok) assert_int_not_equal(rc, 0);
}

/* Published totals (transformers' num_parameters of the real checkpoints). */
static void test_preset_counts(void **state) {
    static const struct {
        const char *preset;
        uint64_t total;
    } want[] = {
        {"llama-3.2-1b-instruct", 1235814400ull}, {"llama-3.2-3b-instruct", 3212749824ull},
        {"llama-3.1-8b-instruct", 8030261248ull}, {"qwen2.5-0.5b-instruct", 494032768ull},
        {"qwen2.5-1.5b-instruct", 1543714304ull}, {"qwen2.5-3b-instruct", 3085938688ull},
        {"qwen2.5-7b-instruct", 7615616512ull},   {"mistral-7b-instruct-v0.3", 7248023552ull},
        {"gemma-2-2b-it", 2614341888ull},         {"gemma-2-9b-it", 9241705984ull},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        tn_model_source src;
        if (tn_model_source_open(want[i].preset, &src) != 0) fail_msg("%s: %s", want[i].preset, tn_error());
        tn_param_counts pc;
        tn_spec_count_params(&src.spec, &pc);
        if (pc.total != want[i].total)
            fail_msg("%s: counted %llu parameters, published %llu", want[i].preset, (unsigned long long)pc.total,
                     (unsigned long long)want[i].total);
    }
}

static void test_every_preset_parses(void **state) {
    char name[128];
    assert_true(tn_preset_count() >= 14);
    for (int i = 0; i < tn_preset_count(); i++) {
        tn_model_source src;
        if (tn_model_source_open(tn_preset_name(i, name, sizeof name), &src) != 0) fail_msg("%s: %s", name, tn_error());
    }
    /* Hugging Face ids and any case resolve too. */
    tn_model_source src;
    assert_int_equal(tn_model_source_open("google/Gemma-2-9B-it", &src), 0);
    assert_string_equal(src.spec.model_type, "gemma2");
}

static void test_moe_active(void **state) {
    tn_model_source src;
    assert_int_equal(tn_model_source_open("granite-4.0-h-tiny", &src), 0);
    tn_param_counts pc;
    tn_spec_count_params(&src.spec, &pc);
    assert_true(pc.active < pc.total);
    /* 64 experts, 6 routed: the expert weights count 6/64 in the active total. */
    assert_int_equal(src.spec.n_experts, 64);
    assert_int_equal(src.spec.n_experts_per_token, 6);
    assert_true(pc.total > 6900000000ull && pc.total < 7000000000ull);
}

static void test_llama3_rope_both_spellings(void **state) {
    tn_spec a, b;
    spec_of("{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":8,\"intermediate_size\":16,\"num_hidden_layers\":1,"
            "\"num_attention_heads\":2,\"rope_theta\":500000.0,\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":32.0,"
            "\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192}}",
            &a, 1);
    spec_of("{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":8,\"intermediate_size\":16,\"num_hidden_layers\":1,"
            "\"num_attention_heads\":2,\"rope_parameters\":{\"rope_type\":\"llama3\",\"rope_theta\":500000.0,\"factor\":32.0,"
            "\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192}}",
            &b, 1);
    assert_int_equal(a.rope, TN_ROPE_LLAMA3);
    assert_int_equal(b.rope, TN_ROPE_LLAMA3);
    assert_true(a.rope_theta == 500000.0 && b.rope_theta == 500000.0);
    assert_true(a.rope_factor == 32.0 && b.rope_factor == 32.0);
    assert_int_equal(a.rope_original_max_position, b.rope_original_max_position);
    assert_int_equal(a.n_kv_heads, 2); /* defaults to the head count */
    assert_int_equal(a.head_dim, 4);
}

static void test_unknown_family(void **state) {
    tn_spec s;
    tn_clear_error();
    spec_of("{\"model_type\":\"gpt2\"}", &s, 0);
    assert_non_null(strstr(tn_error(), "model_type 'gpt2' is not supported"));
    assert_non_null(strstr(tn_error(), "llama, mistral, qwen2, gemma2, granite, granitemoehybrid"));
}

static void test_missing_field(void **state) {
    tn_spec s;
    spec_of("{\"model_type\":\"qwen2\",\"vocab_size\":10,\"hidden_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2}", &s, 0);
    assert_non_null(strstr(tn_error(), "test-config.json: missing field 'intermediate_size'"));
}

static void test_wrong_type(void **state) {
    tn_spec s;
    spec_of("{\"model_type\":\"llama\",\"vocab_size\":\"many\",\"hidden_size\":8,\"intermediate_size\":16,\"num_hidden_layers\":1,"
            "\"num_attention_heads\":2}",
            &s, 0);
    assert_non_null(strstr(tn_error(), "field 'vocab_size': expected an integer, got a string"));
}

static void test_bad_gqa(void **state) {
    tn_spec s;
    spec_of("{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":8,\"intermediate_size\":16,\"num_hidden_layers\":1,"
            "\"num_attention_heads\":4,\"num_key_value_heads\":3}",
            &s, 0);
    assert_non_null(strstr(tn_error(), "num_key_value_heads 3 must divide num_attention_heads 4"));
}

static void test_hybrid_layer_types(void **state) {
    tn_spec s;
    spec_of("{\"model_type\":\"granitemoehybrid\",\"vocab_size\":10,\"hidden_size\":8,\"intermediate_size\":16,"
            "\"num_hidden_layers\":2,\"num_attention_heads\":2,\"layer_types\":[\"mamba\"]}",
            &s, 0);
    assert_non_null(strstr(tn_error(), "'layer_types': 1 entries for 2 layers"));
    spec_of("{\"model_type\":\"granitemoehybrid\",\"vocab_size\":10,\"hidden_size\":8,\"intermediate_size\":16,"
            "\"num_hidden_layers\":2,\"num_attention_heads\":2,\"layer_types\":[\"mamba\",\"attention\"],"
            "\"mamba_n_heads\":4,\"mamba_d_head\":4,\"mamba_d_state\":8}",
            &s, 1);
    assert_int_equal(s.layer_kind[0], TN_LAYER_MAMBA);
    assert_int_equal(s.layer_kind[1], TN_LAYER_ATTENTION);
    assert_int_equal(s.rope, TN_ROPE_NONE);
    assert_int_equal(tn_spec_dim(&s, TN_DIM_MAMBA_IN), 2 * 16 + 2 * 8 + 4);
}

static void test_targets(void **state) {
    tn_model_source src;
    assert_int_equal(tn_model_source_open("llama-3.2-1b-instruct", &src), 0);
    tn_targets t;
    assert_int_equal(tn_targets_parse(&src.spec, NULL, &t), 0);
    assert_int_equal(t.n, 7);
    assert_int_equal(tn_targets_parse(&src.spec, "q_proj,v_proj", &t), 0);
    assert_int_equal(t.n, 2);
    /* rank 8 on q (2048 -> 2048) and v (2048 -> 512) in 16 layers */
    assert_int_equal(tn_lora_param_count(&src.spec, &t, 8, -1), 16ull * 8 * (2048 + 2048 + 2048 + 512));
    assert_int_equal(tn_lora_param_count(&src.spec, &t, 8, 4), 4ull * 8 * (2048 + 2048 + 2048 + 512));
    assert_int_not_equal(tn_targets_parse(&src.spec, "q_proj,in_proj", &t), 0);
    assert_non_null(strstr(tn_error(), "'in_proj' is not a module of llama models"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_preset_counts),     cmocka_unit_test(test_every_preset_parses),
        cmocka_unit_test(test_moe_active),        cmocka_unit_test(test_llama3_rope_both_spellings),
        cmocka_unit_test(test_unknown_family),    cmocka_unit_test(test_missing_field),
        cmocka_unit_test(test_wrong_type),        cmocka_unit_test(test_bad_gqa),
        cmocka_unit_test(test_hybrid_layer_types), cmocka_unit_test(test_targets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
