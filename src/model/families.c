/* families.c - the table of facts for each supported architecture family.
 * Tensor names are Hugging Face's; "%d" is the layer index. Shapes are
 * PyTorch order ([out, in] for a Linear). Sources: transformers' modeling
 * files of each family, and ../shared/reference/FORMATS.md. */
#include <string.h>

#include "model/spec.h"

#define R1(n, a, w) {n, 1, {a, TN_DIM_NONE, TN_DIM_NONE}, w, NULL, 0, 0}
#define LINEAR(n, out, in, w, target) {n, 2, {out, in, TN_DIM_NONE}, w, target, 1, 0}
#define END {NULL, 0, {TN_DIM_NONE, TN_DIM_NONE, TN_DIM_NONE}, 0, NULL, 0, 0}

/* Tensors outside the layers, common to every family. */
static const tn_tensor_rule global_rules[] = {
    {"model.embed_tokens.weight", 2, {TN_DIM_VOCAB, TN_DIM_HIDDEN, TN_DIM_NONE}, 0, NULL, 1, 0},
    R1("model.norm.weight", TN_DIM_HIDDEN, 0),
    {"lm_head.weight", 2, {TN_DIM_VOCAB, TN_DIM_HIDDEN, TN_DIM_NONE}, TN_WHEN_UNTIED, NULL, 1, 0},
    END,
};

#define ATTENTION_RULES                                                                          \
    LINEAR("model.layers.%d.self_attn.q_proj.weight", TN_DIM_Q, TN_DIM_HIDDEN, TN_WHEN_ATTENTION, "q_proj"), \
    LINEAR("model.layers.%d.self_attn.k_proj.weight", TN_DIM_KV, TN_DIM_HIDDEN, TN_WHEN_ATTENTION, "k_proj"), \
    LINEAR("model.layers.%d.self_attn.v_proj.weight", TN_DIM_KV, TN_DIM_HIDDEN, TN_WHEN_ATTENTION, "v_proj"), \
    LINEAR("model.layers.%d.self_attn.o_proj.weight", TN_DIM_HIDDEN, TN_DIM_Q, TN_WHEN_ATTENTION, "o_proj"), \
    R1("model.layers.%d.self_attn.q_proj.bias", TN_DIM_Q, TN_WHEN_ATTENTION | TN_WHEN_QKV_BIAS),       \
    R1("model.layers.%d.self_attn.k_proj.bias", TN_DIM_KV, TN_WHEN_ATTENTION | TN_WHEN_QKV_BIAS),      \
    R1("model.layers.%d.self_attn.v_proj.bias", TN_DIM_KV, TN_WHEN_ATTENTION | TN_WHEN_QKV_BIAS),      \
    R1("model.layers.%d.self_attn.o_proj.bias", TN_DIM_HIDDEN, TN_WHEN_ATTENTION | TN_WHEN_O_BIAS)

#define GATED_MLP_RULES                                                                          \
    LINEAR("model.layers.%d.mlp.gate_proj.weight", TN_DIM_FF, TN_DIM_HIDDEN, 0, "gate_proj"),    \
    LINEAR("model.layers.%d.mlp.up_proj.weight", TN_DIM_FF, TN_DIM_HIDDEN, 0, "up_proj"),        \
    LINEAR("model.layers.%d.mlp.down_proj.weight", TN_DIM_HIDDEN, TN_DIM_FF, 0, "down_proj"),    \
    R1("model.layers.%d.mlp.gate_proj.bias", TN_DIM_FF, TN_WHEN_MLP_BIAS),                       \
    R1("model.layers.%d.mlp.up_proj.bias", TN_DIM_FF, TN_WHEN_MLP_BIAS),                         \
    R1("model.layers.%d.mlp.down_proj.bias", TN_DIM_HIDDEN, TN_WHEN_MLP_BIAS)

/* Llama, Mistral, Qwen2, Granite: two RMSNorms a layer. */
static const tn_tensor_rule llama_layer_rules[] = {
    R1("model.layers.%d.input_layernorm.weight", TN_DIM_HIDDEN, 0),
    ATTENTION_RULES,
    R1("model.layers.%d.post_attention_layernorm.weight", TN_DIM_HIDDEN, 0),
    GATED_MLP_RULES,
    END,
};

/* Gemma 2: four norms a layer, the post norms on each branch's output. */
static const tn_tensor_rule gemma2_layer_rules[] = {
    R1("model.layers.%d.input_layernorm.weight", TN_DIM_HIDDEN, 0),
    ATTENTION_RULES,
    R1("model.layers.%d.post_attention_layernorm.weight", TN_DIM_HIDDEN, 0),
    R1("model.layers.%d.pre_feedforward_layernorm.weight", TN_DIM_HIDDEN, 0),
    GATED_MLP_RULES,
    R1("model.layers.%d.post_feedforward_layernorm.weight", TN_DIM_HIDDEN, 0),
    END,
};

/* Granite 4.0-H: Mamba2 or attention mixer, then a shared gated MLP
 * (input_linear = [gate; up]) and optionally routed experts. */
static const tn_tensor_rule granitehybrid_layer_rules[] = {
    R1("model.layers.%d.input_layernorm.weight", TN_DIM_HIDDEN, 0),
    ATTENTION_RULES,
    LINEAR("model.layers.%d.mamba.in_proj.weight", TN_DIM_MAMBA_IN, TN_DIM_HIDDEN, TN_WHEN_MAMBA, "in_proj"),
    R1("model.layers.%d.mamba.in_proj.bias", TN_DIM_MAMBA_IN, TN_WHEN_MAMBA | TN_WHEN_MAMBA_PROJ_BIAS),
    {"model.layers.%d.mamba.conv1d.weight", 3, {TN_DIM_MAMBA_CONV, TN_DIM_ONE, TN_DIM_MAMBA_KERNEL},
     TN_WHEN_MAMBA, NULL, 0, 0},
    R1("model.layers.%d.mamba.conv1d.bias", TN_DIM_MAMBA_CONV, TN_WHEN_MAMBA | TN_WHEN_CONV_BIAS),
    R1("model.layers.%d.mamba.dt_bias", TN_DIM_MAMBA_HEADS, TN_WHEN_MAMBA),
    R1("model.layers.%d.mamba.A_log", TN_DIM_MAMBA_HEADS, TN_WHEN_MAMBA),
    R1("model.layers.%d.mamba.D", TN_DIM_MAMBA_HEADS, TN_WHEN_MAMBA),
    R1("model.layers.%d.mamba.norm.weight", TN_DIM_MAMBA_INNER, TN_WHEN_MAMBA),
    LINEAR("model.layers.%d.mamba.out_proj.weight", TN_DIM_HIDDEN, TN_DIM_MAMBA_INNER, TN_WHEN_MAMBA, "out_proj"),
    R1("model.layers.%d.mamba.out_proj.bias", TN_DIM_HIDDEN, TN_WHEN_MAMBA | TN_WHEN_MAMBA_PROJ_BIAS),
    R1("model.layers.%d.post_attention_layernorm.weight", TN_DIM_HIDDEN, 0),
    LINEAR("model.layers.%d.shared_mlp.input_linear.weight", TN_DIM_SHARED_FF2, TN_DIM_HIDDEN, 0, "input_linear"),
    LINEAR("model.layers.%d.shared_mlp.output_linear.weight", TN_DIM_HIDDEN, TN_DIM_SHARED_FF, 0, "output_linear"),
    {"model.layers.%d.block_sparse_moe.input_linear.weight", 3, {TN_DIM_EXPERTS, TN_DIM_FF2, TN_DIM_HIDDEN},
     TN_WHEN_EXPERTS, NULL, 0, 0},
    {"model.layers.%d.block_sparse_moe.output_linear.weight", 3, {TN_DIM_EXPERTS, TN_DIM_HIDDEN, TN_DIM_FF},
     TN_WHEN_EXPERTS, NULL, 0, 0},
    {"model.layers.%d.block_sparse_moe.router.layer.weight", 2, {TN_DIM_EXPERTS, TN_DIM_HIDDEN, TN_DIM_NONE},
     TN_WHEN_EXPERTS, NULL, 0, 0},
    END,
};

/* mlx-lm's names for Granite 4.0-H (mlx_lm/models/granitemoehybrid.py,
 * Model.sanitize). With experts: each expert's input_linear [2·FE, H] split
 * by rows into SwitchGLU's gate_proj (first half) and up_proj (second half),
 * stacked [E, FE, H]; output_linear renamed down_proj [E, H, FE]; the router
 * (router.layer) and shared_mlp keep Hugging Face's names. Dense (no
 * experts, e.g. granite-4.0-h-micro): shared_mlp.input_linear [2·F, H]
 * split by rows (mx.split(.., 2, axis=0)) into mlp.gate_proj and
 * mlp.up_proj [F, H], output_linear renamed mlp.down_proj [H, F]. */
static const tn_tensor_alias granitehybrid_aliases[] = {
    {"model.layers.%d.block_sparse_moe.input_linear.weight", "model.layers.%d.block_sparse_moe.switch_mlp.gate_proj.weight", 0, 2},
    {"model.layers.%d.block_sparse_moe.input_linear.weight", "model.layers.%d.block_sparse_moe.switch_mlp.up_proj.weight", 1, 2},
    {"model.layers.%d.block_sparse_moe.output_linear.weight", "model.layers.%d.block_sparse_moe.switch_mlp.down_proj.weight", 0, 1},
    {"model.layers.%d.shared_mlp.input_linear.weight", "model.layers.%d.mlp.gate_proj.weight", 0, 2},
    {"model.layers.%d.shared_mlp.input_linear.weight", "model.layers.%d.mlp.up_proj.weight", 1, 2},
    {"model.layers.%d.shared_mlp.output_linear.weight", "model.layers.%d.mlp.down_proj.weight", 0, 1},
    {NULL, NULL, 0, 0},
};

/* GGUF names and transforms (llama.cpp's src/llama-arch.cpp and
 * convert_hf_to_gguf.py): Llama-style rope families permute Q and K rows
 * (and their biases) from rotate-half to interleaved pairs; Qwen2 and
 * Gemma 2 use NEOX rope and are not permuted; Gemma 2 stores its norms as
 * w + 1. */
static const tn_gguf_name gguf_global[] = {
    {"model.embed_tokens.weight", "token_embd.weight", TN_GGUF_COPY, 0},
    {"model.norm.weight", "output_norm.weight", TN_GGUF_COPY, 0},
    {"lm_head.weight", "output.weight", TN_GGUF_COPY, 0},
    {NULL, NULL, TN_GGUF_COPY, 0},
};

#define GGUF_MLP_NAMES                                                                       \
    {"model.layers.%d.mlp.gate_proj.weight", "blk.%d.ffn_gate.weight", TN_GGUF_COPY, 0},        \
    {"model.layers.%d.mlp.up_proj.weight", "blk.%d.ffn_up.weight", TN_GGUF_COPY, 0},            \
    {"model.layers.%d.mlp.down_proj.weight", "blk.%d.ffn_down.weight", TN_GGUF_COPY, 0},        \
    {"model.layers.%d.mlp.gate_proj.bias", "blk.%d.ffn_gate.bias", TN_GGUF_COPY, 0},            \
    {"model.layers.%d.mlp.up_proj.bias", "blk.%d.ffn_up.bias", TN_GGUF_COPY, 0},                \
    {"model.layers.%d.mlp.down_proj.bias", "blk.%d.ffn_down.bias", TN_GGUF_COPY, 0},            \
    {NULL, NULL, TN_GGUF_COPY, 0}

#define GGUF_ATTN_NAMES(qt, kt)                                                              \
    {"model.layers.%d.self_attn.q_proj.weight", "blk.%d.attn_q.weight", qt, 0},                 \
    {"model.layers.%d.self_attn.k_proj.weight", "blk.%d.attn_k.weight", kt, 0},                 \
    {"model.layers.%d.self_attn.v_proj.weight", "blk.%d.attn_v.weight", TN_GGUF_COPY, 0},       \
    {"model.layers.%d.self_attn.o_proj.weight", "blk.%d.attn_output.weight", TN_GGUF_COPY, 0},  \
    {"model.layers.%d.self_attn.q_proj.bias", "blk.%d.attn_q.bias", qt, 0},                     \
    {"model.layers.%d.self_attn.k_proj.bias", "blk.%d.attn_k.bias", kt, 0},                     \
    {"model.layers.%d.self_attn.v_proj.bias", "blk.%d.attn_v.bias", TN_GGUF_COPY, 0},           \
    {"model.layers.%d.self_attn.o_proj.bias", "blk.%d.attn_output.bias", TN_GGUF_COPY, 0}

static const tn_gguf_name gguf_llama_layer[] = {
    {"model.layers.%d.input_layernorm.weight", "blk.%d.attn_norm.weight", TN_GGUF_COPY, 0},
    GGUF_ATTN_NAMES(TN_GGUF_PERMUTE_Q, TN_GGUF_PERMUTE_K),
    {"model.layers.%d.post_attention_layernorm.weight", "blk.%d.ffn_norm.weight", TN_GGUF_COPY, 0},
    GGUF_MLP_NAMES,
};

static const tn_gguf_name gguf_qwen2_layer[] = {
    {"model.layers.%d.input_layernorm.weight", "blk.%d.attn_norm.weight", TN_GGUF_COPY, 0},
    GGUF_ATTN_NAMES(TN_GGUF_COPY, TN_GGUF_COPY),
    {"model.layers.%d.post_attention_layernorm.weight", "blk.%d.ffn_norm.weight", TN_GGUF_COPY, 0},
    GGUF_MLP_NAMES,
};

static const tn_gguf_name gguf_gemma2_global[] = {
    {"model.embed_tokens.weight", "token_embd.weight", TN_GGUF_COPY, 0},
    {"model.norm.weight", "output_norm.weight", TN_GGUF_PLUS_ONE, 0},
    {NULL, NULL, TN_GGUF_COPY, 0},
};

static const tn_gguf_name gguf_gemma2_layer[] = {
    {"model.layers.%d.input_layernorm.weight", "blk.%d.attn_norm.weight", TN_GGUF_PLUS_ONE, 0},
    GGUF_ATTN_NAMES(TN_GGUF_COPY, TN_GGUF_COPY),
    {"model.layers.%d.post_attention_layernorm.weight", "blk.%d.post_attention_norm.weight", TN_GGUF_PLUS_ONE, 0},
    {"model.layers.%d.pre_feedforward_layernorm.weight", "blk.%d.ffn_norm.weight", TN_GGUF_PLUS_ONE, 0},
    {"model.layers.%d.post_feedforward_layernorm.weight", "blk.%d.post_ffw_norm.weight", TN_GGUF_PLUS_ONE, 0},
    GGUF_MLP_NAMES,
};

/* Granite 4.0-H (GraniteHybridModel over Mamba2Model and GraniteMoeModel):
 * attention rows permuted as for Llama (undo_permute; without rope the
 * permutation, the same for Q and K within each head, changes nothing), the
 * Mamba2 transforms, the shared MLP's fused [gate; up] split by rows (into
 * ffn_gate / ffn_up, or ffn_*_shexp beside routed experts), the experts'
 * fused input_linear split per expert into ffn_gate_exps / ffn_up_exps. */
static const tn_gguf_name gguf_granitehybrid_layer[] = {
    {"model.layers.%d.input_layernorm.weight", "blk.%d.attn_norm.weight", TN_GGUF_COPY, 0},
    GGUF_ATTN_NAMES(TN_GGUF_PERMUTE_Q, TN_GGUF_PERMUTE_K),
    {"model.layers.%d.mamba.in_proj.weight", "blk.%d.ssm_in.weight", TN_GGUF_COPY, 0},
    {"model.layers.%d.mamba.in_proj.bias", "blk.%d.ssm_in.bias", TN_GGUF_COPY, 0},
    {"model.layers.%d.mamba.conv1d.weight", "blk.%d.ssm_conv1d.weight", TN_GGUF_SQUEEZE, 0},
    {"model.layers.%d.mamba.conv1d.bias", "blk.%d.ssm_conv1d.bias", TN_GGUF_COPY, 0},
    {"model.layers.%d.mamba.dt_bias", "blk.%d.ssm_dt.bias", TN_GGUF_COPY, 0},
    {"model.layers.%d.mamba.A_log", "blk.%d.ssm_a", TN_GGUF_NEG_EXP, 0},
    {"model.layers.%d.mamba.D", "blk.%d.ssm_d", TN_GGUF_COLUMN, 0},
    {"model.layers.%d.mamba.norm.weight", "blk.%d.ssm_norm.weight", TN_GGUF_GROUPS, 0},
    {"model.layers.%d.mamba.out_proj.weight", "blk.%d.ssm_out.weight", TN_GGUF_COPY, 0},
    {"model.layers.%d.mamba.out_proj.bias", "blk.%d.ssm_out.bias", TN_GGUF_COPY, 0},
    {"model.layers.%d.post_attention_layernorm.weight", "blk.%d.ffn_norm.weight", TN_GGUF_COPY, 0},
    {"model.layers.%d.shared_mlp.input_linear.weight", "blk.%d.ffn_gate.weight", TN_GGUF_FIRST_HALF, -1},
    {"model.layers.%d.shared_mlp.input_linear.weight", "blk.%d.ffn_up.weight", TN_GGUF_SECOND_HALF, -1},
    {"model.layers.%d.shared_mlp.output_linear.weight", "blk.%d.ffn_down.weight", TN_GGUF_COPY, -1},
    {"model.layers.%d.shared_mlp.input_linear.weight", "blk.%d.ffn_gate_shexp.weight", TN_GGUF_FIRST_HALF, 1},
    {"model.layers.%d.shared_mlp.input_linear.weight", "blk.%d.ffn_up_shexp.weight", TN_GGUF_SECOND_HALF, 1},
    {"model.layers.%d.shared_mlp.output_linear.weight", "blk.%d.ffn_down_shexp.weight", TN_GGUF_COPY, 1},
    {"model.layers.%d.block_sparse_moe.input_linear.weight", "blk.%d.ffn_gate_exps.weight", TN_GGUF_FIRST_HALF, 1},
    {"model.layers.%d.block_sparse_moe.input_linear.weight", "blk.%d.ffn_up_exps.weight", TN_GGUF_SECOND_HALF, 1},
    {"model.layers.%d.block_sparse_moe.output_linear.weight", "blk.%d.ffn_down_exps.weight", TN_GGUF_COPY, 1},
    {"model.layers.%d.block_sparse_moe.router.layer.weight", "blk.%d.ffn_gate_inp.weight", TN_GGUF_COPY, 1},
    {NULL, NULL, TN_GGUF_COPY, 0},
};

/* {arch}.* keys. key_length / value_length are written for every family
 * (llama.cpp reads them when present and defaults to hidden / heads). */
#define GGUF_COMMON_KEYS                                                                          \
    {"context_length", TN_GK_CONTEXT}, {"embedding_length", TN_GK_HIDDEN}, {"block_count", TN_GK_LAYERS},   \
    {"feed_forward_length", TN_GK_FF}, {"attention.head_count", TN_GK_HEADS},                               \
    {"attention.head_count_kv", TN_GK_KV_HEADS}, {"attention.layer_norm_rms_epsilon", TN_GK_RMS_EPS},      \
    {"rope.freq_base", TN_GK_ROPE_THETA}, {"attention.key_length", TN_GK_HEAD_DIM},                         \
    {"attention.value_length", TN_GK_HEAD_DIM}

static const tn_gguf_key gguf_llama_keys[] = {
    GGUF_COMMON_KEYS, {"vocab_size", TN_GK_VOCAB}, {"rope.dimension_count", TN_GK_HEAD_DIM}, {NULL, TN_GK_END},
};

static const tn_gguf_key gguf_qwen2_keys[] = {GGUF_COMMON_KEYS, {NULL, TN_GK_END}};

static const tn_gguf_key gguf_gemma2_keys[] = {
    GGUF_COMMON_KEYS,
    {"attn_logit_softcapping", TN_GK_ATTN_SOFTCAP},
    {"final_logit_softcapping", TN_GK_FINAL_SOFTCAP},
    {"attention.sliding_window", TN_GK_SLIDING_WINDOW},
    {NULL, TN_GK_END},
};

static const tn_gguf_key gguf_granite_keys[] = {
    GGUF_COMMON_KEYS,
    {"vocab_size", TN_GK_VOCAB},
    {"rope.dimension_count", TN_GK_HEAD_DIM},
    {"attention.scale", TN_GK_ATTN_MULT},
    {"embedding_scale", TN_GK_EMBED_MULT},
    {"residual_scale", TN_GK_RESIDUAL_MULT},
    {"logit_scale", TN_GK_LOGITS_SCALE},
    {NULL, TN_GK_END},
};

/* GraniteHybridModel.set_gguf_parameters: GraniteMoeModel's keys (the
 * Granite multipliers), the ssm.* keys, head_count_kv per layer (0 marks a
 * Mamba2 layer), rope.scaling.finetuned false without rope (llama.cpp then
 * skips rope) and context_length 2^20 then; experts' counts with experts. */
static const tn_gguf_key gguf_granitehybrid_keys[] = {
    {"context_length", TN_GK_CONTEXT_HYBRID}, {"embedding_length", TN_GK_HIDDEN}, {"block_count", TN_GK_LAYERS},
    {"feed_forward_length", TN_GK_FF}, {"attention.head_count", TN_GK_HEADS},
    {"attention.head_count_kv", TN_GK_KV_HEADS_LAYERS}, {"attention.layer_norm_rms_epsilon", TN_GK_RMS_EPS},
    {"rope.freq_base", TN_GK_ROPE_THETA}, {"attention.key_length", TN_GK_HEAD_DIM},
    {"attention.value_length", TN_GK_HEAD_DIM},
    {"vocab_size", TN_GK_VOCAB},
    {"rope.dimension_count", TN_GK_HEAD_DIM},
    {"attention.scale", TN_GK_ATTN_MULT},
    {"embedding_scale", TN_GK_EMBED_MULT},
    {"residual_scale", TN_GK_RESIDUAL_MULT},
    {"logit_scale", TN_GK_LOGITS_SCALE},
    {"expert_count", TN_GK_EXPERTS},
    {"expert_used_count", TN_GK_EXPERTS_USED},
    {"expert_shared_feed_forward_length", TN_GK_SHARED_FF},
    {"ssm.conv_kernel", TN_GK_SSM_CONV},
    {"ssm.state_size", TN_GK_SSM_STATE},
    {"ssm.group_count", TN_GK_SSM_GROUPS},
    {"ssm.inner_size", TN_GK_SSM_INNER},
    {"ssm.time_step_rank", TN_GK_SSM_DT_RANK},
    {"rope.scaling.finetuned", TN_GK_ROPE_FINETUNED},
    {NULL, TN_GK_END},
};

/* What this build implements, stage by stage (NULL = implemented). Stages
 * land issue by issue; each entry names the work still missing. */
#define NOT_YET_DENSE                                                                    \
    {                                                                                    \
    }

static const tn_family llama = {
    .model_type = "llama", .description = "Llama 3.x", .gguf_arch = "llama",
    .norm = TN_NORM_RMS, .activation = TN_ACT_SILU, .embed_scale = TN_EMBED_SCALE_NONE,
    .default_tied = 0, .default_rms_eps = 1e-6,
    .global_rules = global_rules, .layer_rules = llama_layer_rules,
    .not_implemented = NOT_YET_DENSE,
    .gguf_global = gguf_global, .gguf_layer = gguf_llama_layer, .gguf_keys = gguf_llama_keys,
    .gguf_tokenizer_pre = "llama-bpe",
};

static const tn_family mistral = {
    .model_type = "mistral", .description = "Mistral", .gguf_arch = "llama",
    .norm = TN_NORM_RMS, .activation = TN_ACT_SILU, .embed_scale = TN_EMBED_SCALE_NONE,
    .default_tied = 0, .default_rms_eps = 1e-6,
    .global_rules = global_rules, .layer_rules = llama_layer_rules,
    .not_implemented = NOT_YET_DENSE,
    .gguf_global = gguf_global, .gguf_layer = gguf_llama_layer, .gguf_keys = gguf_llama_keys,
    .gguf_tokenizer_pre = "tekken",
};

static const tn_family qwen2 = {
    .model_type = "qwen2", .description = "Qwen 2 / 2.5", .gguf_arch = "qwen2",
    .norm = TN_NORM_RMS, .activation = TN_ACT_SILU, .embed_scale = TN_EMBED_SCALE_NONE,
    .qkv_bias = 1, .default_tied = 0, .default_rms_eps = 1e-6,
    .global_rules = global_rules, .layer_rules = llama_layer_rules,
    .not_implemented = NOT_YET_DENSE,
    .gguf_global = gguf_global, .gguf_layer = gguf_qwen2_layer, .gguf_keys = gguf_qwen2_keys,
    .gguf_tokenizer_pre = "qwen2",
};

static const tn_family gemma2 = {
    .model_type = "gemma2", .description = "Gemma 2", .gguf_arch = "gemma2",
    .norm = TN_NORM_RMS_ONE_PLUS, .activation = TN_ACT_GELU_TANH,
    .embed_scale = TN_EMBED_SCALE_SQRT_HIDDEN, .sandwich_norms = 1, .softcaps = 1,
    .alternating_window = 1, .default_tied = 1, .default_rms_eps = 1e-6,
    .global_rules = global_rules, .layer_rules = gemma2_layer_rules,
    .not_implemented = NOT_YET_DENSE,
    .gguf_global = gguf_gemma2_global, .gguf_layer = gguf_gemma2_layer, .gguf_keys = gguf_gemma2_keys,
    .gguf_tokenizer_pre = "default",
};

static const tn_family granite = {
    .model_type = "granite", .description = "Granite 3.x", .gguf_arch = "granite",
    .norm = TN_NORM_RMS, .activation = TN_ACT_SILU, .embed_scale = TN_EMBED_SCALE_MULTIPLIER,
    .multipliers = 1, .default_tied = 1, .default_rms_eps = 1e-6,
    .global_rules = global_rules, .layer_rules = llama_layer_rules,
    .not_implemented = NOT_YET_DENSE,
    .gguf_global = gguf_global, .gguf_layer = gguf_llama_layer, .gguf_keys = gguf_granite_keys,
    .gguf_tokenizer_pre = "refact",
};

static const tn_family granitemoehybrid = {
    .model_type = "granitemoehybrid", .description = "Granite 4.0-H (Mamba2 hybrid)",
    .gguf_arch = "granitehybrid", .norm = TN_NORM_RMS, .activation = TN_ACT_SILU,
    .embed_scale = TN_EMBED_SCALE_MULTIPLIER, .multipliers = 1, .hybrid = 1,
    .default_tied = 1, .default_rms_eps = 1e-6,
    .global_rules = global_rules, .layer_rules = granitehybrid_layer_rules,
    .not_implemented = {
        /* LoRA and QLoRA: implemented (src/train/hybrid.c), held to
         * transformers + PEFT. */
        [TN_STAGE_FULL] = "needs the weight gradients of the Mamba2 tensors, experts and router, not in this build yet",
    },
    .gguf_global = gguf_global, .gguf_layer = gguf_granitehybrid_layer, .gguf_keys = gguf_granitehybrid_keys,
    .gguf_tokenizer_pre = "dbrx", .aliases = granitehybrid_aliases,
};

const tn_family *const tn_families[] = {&llama, &mistral, &qwen2, &gemma2, &granite, &granitemoehybrid, NULL};

const tn_family *tn_family_find(const char *model_type) {
    for (int i = 0; tn_families[i]; i++)
        if (!strcmp(tn_families[i]->model_type, model_type)) return tn_families[i];
    return NULL;
}

const char *tn_family_list(void) {
    return "llama, mistral, qwen2, gemma2, granite, granitemoehybrid";
}
