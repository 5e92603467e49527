/* spec.h - a model's architecture as data.
 *
 * config.json -> tn_spec: the numbers (sizes, epsilons, multipliers, layer
 * kinds) of one checkpoint. tn_family: the facts shared by every model of an
 * architecture family (llama, mistral, qwen2, gemma2, granite,
 * granitemoehybrid), including the table of tensors a checkpoint must hold.
 * Loader, planner, trainer and exporter read these; no code elsewhere asks
 * "which family is this?". */
#ifndef TUNE_SPEC_H
#define TUNE_SPEC_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "io/dtype.h"
#include "io/safetensors.h"

#define TN_MAX_LAYERS 512
#define TN_MAX_TARGETS 16

typedef enum { TN_LAYER_ATTENTION, TN_LAYER_MAMBA } tn_layer_kind;
typedef enum { TN_NORM_RMS, TN_NORM_RMS_ONE_PLUS } tn_norm_style; /* w*x or (1+w)*x */
typedef enum { TN_ACT_SILU, TN_ACT_GELU_TANH } tn_activation;
typedef enum { TN_ROPE_NONE, TN_ROPE_DEFAULT, TN_ROPE_LLAMA3, TN_ROPE_LINEAR } tn_rope_kind;
typedef enum { TN_EMBED_SCALE_NONE, TN_EMBED_SCALE_SQRT_HIDDEN, TN_EMBED_SCALE_MULTIPLIER } tn_embed_scale;

/* Sizes that tensor shapes are written in (resolved by tn_spec_dim). */
typedef enum {
    TN_DIM_NONE,
    TN_DIM_ONE,
    TN_DIM_HIDDEN,
    TN_DIM_VOCAB,
    TN_DIM_Q,          /* heads * head_dim */
    TN_DIM_KV,         /* kv heads * head_dim */
    TN_DIM_FF,         /* intermediate_size */
    TN_DIM_FF2,        /* 2 * intermediate_size (fused gate+up of experts) */
    TN_DIM_SHARED_FF,  /* shared_intermediate_size */
    TN_DIM_SHARED_FF2, /* 2 * shared_intermediate_size */
    TN_DIM_EXPERTS,
    TN_DIM_MAMBA_IN,    /* in_proj rows: 2 * d_inner + 2 * groups * d_state + heads */
    TN_DIM_MAMBA_CONV,  /* conv channels: d_inner + 2 * groups * d_state */
    TN_DIM_MAMBA_INNER, /* d_inner = heads * head_dim */
    TN_DIM_MAMBA_HEADS,
    TN_DIM_MAMBA_KERNEL,
} tn_dim;

/* When a tensor rule applies (all set bits must hold). */
enum {
    TN_WHEN_ATTENTION = 1u << 0, /* attention layers */
    TN_WHEN_MAMBA = 1u << 1,     /* Mamba2 layers */
    TN_WHEN_EXPERTS = 1u << 2,   /* num_local_experts > 0 */
    TN_WHEN_QKV_BIAS = 1u << 3,
    TN_WHEN_O_BIAS = 1u << 4,
    TN_WHEN_MLP_BIAS = 1u << 5,
    TN_WHEN_CONV_BIAS = 1u << 6,
    TN_WHEN_MAMBA_PROJ_BIAS = 1u << 7,
    TN_WHEN_UNTIED = 1u << 8, /* lm_head present */
};

/* One tensor of a checkpoint. Per-layer names hold "%d" for the layer. */
typedef struct {
    const char *name;
    int n_dims;
    tn_dim shape[3];
    unsigned when;
    const char *lora; /* module name usable in --targets, or NULL (not a Linear) */
    int in_dim, out_dim; /* for LoRA: indices into shape (out = rows) */
} tn_tensor_rule;

typedef enum {
    TN_STAGE_LORA,
    TN_STAGE_QLORA,
    TN_STAGE_FULL,
    TN_STAGE_FUSE,
    TN_STAGE_GGUF,
    TN_STAGE_GENERATE,
    TN_STAGE_COUNT
} tn_stage;

/* GGUF export (llama.cpp's convert_hf_to_gguf.py and src/llama-arch.cpp).
 * A tensor's transform on the way from Hugging Face's layout to llama.cpp's. */
typedef enum {
    TN_GGUF_COPY,      /* as stored */
    TN_GGUF_PERMUTE_Q, /* rows from rotate-half to interleaved pairs, query heads */
    TN_GGUF_PERMUTE_K, /* the same with the key/value head count */
    TN_GGUF_PLUS_ONE,  /* w + 1 (norms that scale by 1 + w) */
    /* Mamba2 (convert_hf_to_gguf.py's Mamba2Model): */
    TN_GGUF_NEG_EXP,    /* A_log [H] -> ssm_a = -exp(A_log), shaped [H, 1] */
    TN_GGUF_COLUMN,     /* D [H] -> [H, 1] */
    TN_GGUF_SQUEEZE,    /* conv1d [C, 1, K] or MLX's [C, K, 1] -> [C, K] */
    TN_GGUF_GROUPS,     /* norm [d_inner] -> [groups, d_inner / groups] */
    /* A fused gate+up matrix split by rows (along its second-to-last axis,
     * per expert for a 3-D tensor): the first half, and the second. */
    TN_GGUF_FIRST_HALF,
    TN_GGUF_SECOND_HALF,
} tn_gguf_transform;

/* HF tensor name ("%d" = layer) -> GGUF tensor name ("%d" = layer).
 * `experts`: 0 always, 1 only for a model with routed experts, -1 only for
 * one without (Granite hybrid's shared MLP is ffn_* or ffn_*_shexp). One HF
 * tensor may give several GGUF tensors (split gate / up). */
typedef struct {
    const char *hf;
    const char *gguf;
    tn_gguf_transform transform;
    int experts;
} tn_gguf_name;
/* Whether a GGUF name entry applies to this model. */
#define TN_GGUF_NAME_APPLIES(g, spec) ((g)->experts == 0 || ((g)->experts > 0) == ((spec)->n_experts > 0))

/* Where a GGUF metadata value comes from (the spec's numbers). */
typedef enum {
    TN_GK_END,
    TN_GK_CONTEXT,      /* u32 max_position_embeddings */
    TN_GK_HIDDEN,       /* u32 hidden_size */
    TN_GK_LAYERS,       /* u32 num_hidden_layers */
    TN_GK_FF,           /* u32 intermediate_size */
    TN_GK_HEADS,        /* u32 num_attention_heads */
    TN_GK_KV_HEADS,     /* u32 num_key_value_heads */
    TN_GK_HEAD_DIM,     /* u32 head_dim */
    TN_GK_VOCAB,        /* u32 vocab_size */
    TN_GK_RMS_EPS,      /* f32 rms_norm_eps */
    TN_GK_ROPE_THETA,   /* f32 rope_theta */
    TN_GK_ATTN_SOFTCAP, /* f32 attn_logit_softcapping */
    TN_GK_FINAL_SOFTCAP, /* f32 final_logit_softcapping */
    TN_GK_SLIDING_WINDOW, /* u32 sliding_window */
    TN_GK_EMBED_MULT,   /* f32 embedding_multiplier */
    TN_GK_RESIDUAL_MULT, /* f32 residual_multiplier */
    TN_GK_ATTN_MULT,    /* f32 attention_multiplier */
    TN_GK_LOGITS_SCALE, /* f32 logits_scaling */
    /* Granite hybrid (convert_hf_to_gguf.py's GraniteHybridModel) */
    TN_GK_CONTEXT_HYBRID, /* u32: 2^20 without rope (as the converter writes), else max_position_embeddings */
    TN_GK_KV_HEADS_LAYERS, /* i32 array: kv heads per layer, 0 for a Mamba2 layer */
    TN_GK_ROPE_FINETUNED, /* bool: whether attention uses rope */
    TN_GK_SSM_CONV,       /* u32 mamba_d_conv */
    TN_GK_SSM_STATE,      /* u32 mamba_d_state */
    TN_GK_SSM_GROUPS,     /* u32 mamba_n_groups */
    TN_GK_SSM_INNER,      /* u32 d_inner = heads * head_dim */
    TN_GK_SSM_DT_RANK,    /* u32 mamba_n_heads */
    TN_GK_EXPERTS,        /* u32 num_local_experts (absent when 0) */
    TN_GK_EXPERTS_USED,   /* u32 num_experts_per_tok (absent without experts) */
    TN_GK_SHARED_FF,      /* u32 shared_intermediate_size (absent without experts) */
} tn_gguf_value;

/* "{arch}.<key>" = value. */
typedef struct {
    const char *key;
    tn_gguf_value value;
} tn_gguf_key;

/* Another converter's name for (a part of) a Hugging Face tensor: `alt`
 * holds rows [part·R/parts, (part+1)·R/parts) of each [R, C] matrix of
 * `hf` (per expert for a stacked [E, R, C]); "%d" is the layer index.
 * NULL-terminated. */
typedef struct {
    const char *hf, *alt;
    int part, parts;
} tn_tensor_alias;

typedef struct {
    const char *model_type;   /* config.json's model_type */
    const char *description;  /* "Llama 3.x" */
    const char *gguf_arch;    /* llama.cpp's architecture string */
    tn_norm_style norm;
    tn_activation activation;
    tn_embed_scale embed_scale;
    int qkv_bias;            /* q/k/v biases always present (Qwen2) */
    int sandwich_norms;      /* pre+post norms around both branches (Gemma 2) */
    int softcaps;            /* attention and final logit soft-caps (Gemma 2) */
    int alternating_window;  /* sliding window on even layers (Gemma 2) */
    int multipliers;         /* Granite's embedding/residual/attention/logits multipliers */
    int hybrid;              /* layer_types mixes Mamba2 and attention */
    int default_tied;        /* tie_word_embeddings when config.json omits it */
    double default_rms_eps;
    const tn_tensor_rule *global_rules;
    const tn_tensor_rule *layer_rules;
    /* What this build implements for the family, stage by stage: NULL when
     * implemented, else the reason it is not. */
    const char *not_implemented[TN_STAGE_COUNT];
    /* GGUF export: tensor names and transforms (global and per layer,
     * NULL-terminated), the {arch}.* metadata keys, and the llama.cpp
     * pre-tokenizer name for a byte-level BPE vocabulary of this family
     * (tokenizer.ggml.pre) when the tokenizer's own pre-tokenizer does not
     * say otherwise. */
    const tn_gguf_name *gguf_global, *gguf_layer;
    const tn_gguf_key *gguf_keys;
    const char *gguf_tokenizer_pre;
    /* Names other converters give the family's tensors (mlx-lm's sanitize),
     * read as the Hugging Face tensors they come from; NULL = none. */
    const tn_tensor_alias *aliases;
} tn_family;

typedef struct {
    const tn_family *family;
    char model_type[64];
    int64_t vocab_size, hidden, intermediate, n_layers, n_heads, n_kv_heads, head_dim;
    int64_t max_position;
    double rms_eps;
    double rope_theta;
    tn_rope_kind rope;
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int64_t rope_original_max_position;
    int tied_embeddings;
    int attention_bias, mlp_bias;
    tn_dtype dtype; /* torch_dtype of config.json */
    /* Gemma 2 */
    double query_pre_attn_scalar, attn_softcap, final_softcap;
    int64_t sliding_window; /* 0 = none */
    /* Granite */
    double embedding_multiplier, residual_multiplier, attention_multiplier, logits_scaling;
    /* Granite hybrid */
    tn_layer_kind layer_kind[TN_MAX_LAYERS];
    int64_t mamba_heads, mamba_head_dim, mamba_state, mamba_groups, mamba_kernel;
    int mamba_conv_bias, mamba_proj_bias;
    int64_t shared_intermediate, n_experts, n_experts_per_token;
    /* MLX quantized checkpoint (0 bits = not quantized) */
    int64_t quant_bits, quant_group_size;
    /* A GGUF base folder (model/gguf_import.h): the bytes of the layer
     * matrices that stay in the GGUF's blocks (0 = not such a folder) */
    uint64_t gguf_layer_bytes;
} tn_spec;

/* The supported families, and lookup by model_type (NULL when unknown). */
extern const tn_family *const tn_families[];
const tn_family *tn_family_find(const char *model_type);
/* "llama, mistral, qwen2, gemma2, granite, granitemoehybrid" */
const char *tn_family_list(void);

/* config.json (parsed) -> spec. `where` names the file in errors. */
int tn_spec_from_config(const cJSON *config, const char *where, tn_spec *spec);
/* Reads DIR/config.json, or a .json file, into a spec. */
int tn_spec_load(const char *path, tn_spec *spec);

int64_t tn_spec_dim(const tn_spec *spec, tn_dim d);

/* Attention and residual facts every backend uses: the sliding window of
 * layer l (0 = none; Gemma 2 slides on even layers), the query scale
 * (Granite's attention_multiplier, Gemma 2's query_pre_attn_scalar^-1/2,
 * else head_dim^-1/2) and the multiplier of each residual branch. */
int tn_spec_layer_window(const tn_spec *spec, int layer);
float tn_spec_attention_scale(const tn_spec *spec);
float tn_spec_residual_multiplier(const tn_spec *spec);
/* The dtype the weights are stored in: the one holding most bytes of the
 * checkpoint (config.json's when st is NULL or empty, and for MLX's packed
 * U32 weights, whose float dtype is that of their scales). */
tn_dtype tn_spec_stored_dtype(const tn_spec *spec, const tn_safetensors *st);
/* Whether a rule applies to layer `layer` (-1 for global rules). */
int tn_rule_applies(const tn_spec *spec, const tn_tensor_rule *rule, int layer);

/* Parameter counts from the spec alone (tied embeddings counted once). */
typedef struct {
    uint64_t total;
    uint64_t embedding; /* embed_tokens (and lm_head when untied, counted in total too) */
    uint64_t lm_head;   /* 0 when tied */
    uint64_t active;    /* per token: total less the experts not routed to */
    uint64_t norms;     /* 1-D tensors */
} tn_param_counts;
void tn_spec_count_params(const tn_spec *spec, tn_param_counts *out);

/* Checks a checkpoint against the family's table: every expected tensor is
 * present with the right shape, every tensor is explained. Writes at most
 * `cap` bytes of report into `report` (one problem a line); returns the number
 * of problems. */
int tn_spec_check_tensors(const tn_spec *spec, const tn_safetensors *st, char *report, int cap);

/* The stored tensors holding Hugging Face tensor `hf` (a layer tensor's
 * name, layer filled in): itself (1 part), or the family's aliases in part
 * order; returns the number of parts (at most 4), 0 when absent. */
int tn_tensor_parts(const tn_spec *spec, const tn_safetensors *st, const char *hf, const tn_tensor_info **parts);
/* When stored tensor `name` is an alias part: the Hugging Face name into hf
 * and the part index; returns 1, else 0. */
int tn_alias_of(const tn_spec *spec, const char *name, char *hf, int cap, int *part);
/* An MLX affine-quantized weight (U32 packed along its last axis, with
 * .scales and .biases of the same leading dims, [.., in/group]): its bits
 * and group size, from the shapes (config.json's group first; mlx-lm may
 * quantize single layers differently, e.g. Granite 4.0-H's router at 8
 * bits). Returns 1 when `t` is one, else 0. */
int tn_mlx_layout(const tn_spec *spec, const tn_safetensors *st, const tn_tensor_info *t, int *bits, int64_t *group);

/* LoRA targets: parses "q_proj,v_proj" (NULL = the family's default, all
 * its linear modules); fails naming a module the family lacks. */
typedef struct {
    int n;
    const char *names[TN_MAX_TARGETS];
} tn_targets;
int tn_targets_parse(const tn_spec *spec, const char *list, tn_targets *out);
/* Trainable LoRA parameters for rank r in the last `layers` layers (-1 = all). */
uint64_t tn_lora_param_count(const tn_spec *spec, const tn_targets *t, int rank, int layers);

#endif
