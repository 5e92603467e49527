/* gguf_types.c - llama.cpp's per-tensor type rules (see gguf_types.h). */
#include "export/gguf_types.h"

#include <string.h>

static const struct {
    const char *name;
    tn_ggml_type base;
    int file_type;
} file_types[TN_FT_COUNT] = {
    [TN_FT_F32] = {"f32", TN_GGML_F32, 0},       [TN_FT_F16] = {"f16", TN_GGML_F16, 1},
    [TN_FT_BF16] = {"bf16", TN_GGML_BF16, 32},   [TN_FT_Q8_0] = {"q8_0", TN_GGML_Q8_0, 7},
    [TN_FT_Q4_0] = {"q4_0", TN_GGML_Q4_0, 2},    [TN_FT_Q4_K_M] = {"q4_k_m", TN_GGML_Q4_K, 15},
    [TN_FT_Q6_K] = {"q6_k", TN_GGML_Q6_K, 18},
};

int tn_file_type_parse(const char *name) {
    for (int i = 0; i < TN_FT_COUNT; i++)
        if (!strcmp(file_types[i].name, name)) return i;
    return -1;
}

const char *tn_file_type_name(tn_file_type t) { return file_types[t].name; }
const char *tn_file_type_list(void) { return "f32, f16, bf16, q8_0, q4_0, q4_k_m, q6_k"; }
int tn_file_type_id(tn_file_type t) { return file_types[t].file_type; }

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* llama-quant.cpp's use_more_bits. */
static int use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* tensor_type_fallback: a type whose blocks do not fit the rows. */
static tn_ggml_type fallback(tn_ggml_type t, int64_t ne0) {
    if (ne0 % tn_ggml_block_size(t) == 0) return t;
    tn_ggml_type r = t == TN_GGML_Q4_K ? TN_GGML_Q5_0 : t == TN_GGML_Q6_K ? TN_GGML_Q8_0 : t;
    return ne0 % tn_ggml_block_size(r) == 0 ? r : TN_GGML_F16;
}

tn_ggml_type tn_gguf_tensor_type(tn_file_type ft, const char *name, int n_dims, int64_t ne0, int layer, int n_layers, int tied,
                                 tn_ggml_type *wanted) {
    tn_ggml_type t = file_types[ft].base;
    /* convert_hf_to_gguf.py keeps these F32 too: the Mamba2 conv kernel, the MoE router */
    if (n_dims < 2 || ends_with(name, "_norm.weight") || !ends_with(name, "weight") || ends_with(name, "ssm_conv1d.weight") ||
        ends_with(name, "ffn_gate_inp.weight"))
        t = TN_GGML_F32;
    *wanted = t;
    if (!tn_ggml_is_quantized(t)) return t;
    int output = !strcmp(name, "output.weight") || (tied && !strcmp(name, "token_embd.weight"));
    if (output) {
        if (ne0 % tn_ggml_block_size(t)) t = TN_GGML_Q8_0;
        else if (t != TN_GGML_Q8_0) t = TN_GGML_Q6_K;
    } else if (ft == TN_FT_Q4_K_M && layer >= 0 && (strstr(name, "attn_v.weight") || strstr(name, "ffn_down"))) {
        if (use_more_bits(layer, n_layers)) t = TN_GGML_Q6_K;
    }
    *wanted = t;
    return fallback(t, ne0);
}
