/* model.h - a checkpoint ready to run: the spec, the mapped weights with
 * fp32 views, the LoRA adapter, and the forward and backward passes of the
 * dense families (llama, mistral, qwen2, gemma2, granite) on the CPU.
 *
 * Symbols: B sequences of S tokens, T = B·S, H hidden, Q = heads·hd,
 * KV = kv heads·hd, F intermediate, V vocabulary, r LoRA rank. */
#ifndef TUNE_MODEL_H
#define TUNE_MODEL_H

#include <stdint.h>

#include "io/safetensors.h"
#include "model/spec.h"
#include "nn/ops.h"
#include "plan/plan.h"

/* The adaptable Linear modules of a layer, in family-table order: the dense
 * families' seven, then Granite 4.0-H's Mamba projections and shared MLP.
 * A layer holds a subset (tn_module_applies): attention modules are absent
 * from Mamba layers, gate/up/down from hybrids. */
typedef enum {
    TN_MOD_Q, TN_MOD_K, TN_MOD_V, TN_MOD_O, TN_MOD_GATE, TN_MOD_UP, TN_MOD_DOWN,
    TN_MOD_IN_PROJ, TN_MOD_OUT_PROJ, TN_MOD_INPUT_LINEAR, TN_MOD_OUTPUT_LINEAR,
    TN_MOD_COUNT
} tn_module;
extern const char *const tn_module_names[TN_MOD_COUNT];
/* Their paths inside a layer ("self_attn.q_proj"), as checkpoints and PEFT
 * adapters name them. */
extern const char *const tn_module_paths[TN_MOD_COUNT];
/* Whether layer l of the model has module k (the family table's rule with
 * that `lora` name applies there), and its in/out features. */
int tn_module_applies(const tn_spec *s, int l, tn_module k);
void tn_module_dims(const tn_spec *s, tn_module k, int *in, int *out);

/* Granite 4.0-H's per-layer tensors that are not adaptable Linears. As
 * fp32 (views into an F32 mapping or converted copies, small): the Mamba
 * mixer's conv1d weight [C, K] and bias [C], dt_bias, A_log, D [heads],
 * norm weight [d_inner], and the router [E, H]. The experts' input_linear
 * [E, 2FE, H] and output_linear [E, H, FE] stay in the checkpoint's dtype
 * (p[l][TN_HYB_EXP_*] is a direct view only when the mapping is F32; else
 * exp[l][*] points at the stored BF16/F16 data) or, with QLoRA, quantized
 * per expert matrix (qexp: [L][E][2] offsets into m->qbase), or (exp_named)
 * MLX-quantized / split into mlx-lm's switch_mlp tensors, and are
 * converted to fp32 one expert at a time where used (tn_hybrid_expert,
 * into expert_ws). */
enum { TN_HYB_CONV_W, TN_HYB_CONV_B, TN_HYB_DT_BIAS, TN_HYB_A_LOG, TN_HYB_D, TN_HYB_NORM, TN_HYB_EXP_IN, TN_HYB_EXP_OUT,
       TN_HYB_ROUTER, TN_HYB_COUNT };
typedef struct {
    const float *p[TN_MAX_LAYERS][TN_HYB_COUNT];
    float *copies[TN_MAX_LAYERS * TN_HYB_COUNT];
    int n_copies;
    const unsigned char *exp[TN_MAX_LAYERS][2]; /* stored 16-bit experts (input, output) */
    int exp_dtype;                              /* their tn_dtype */
    uint64_t *qexp;                             /* QLoRA: [L][E][2] offsets into qbase, or NULL */
    float *expert_ws;                           /* [3·FE·H]: one expert's two matrices in fp32 */
    int exp_named;                              /* experts read by name, an expert at a time (tn_tensor_read_slab_f32):
                                                   MLX-quantized or under mlx-lm's names (switch_mlp) */
} tn_hybrid_weights;

typedef struct {
    int layer;
    tn_module module;
    int in, out;
    float *a, *b;   /* lora_A [r, in], lora_B [out, r] (PEFT layout) */
    float *da, *db; /* their gradients */
} tn_lora_module;

typedef struct {
    int rank;
    double alpha;
    int rslora;    /* scale = alpha / sqrt(r) instead of alpha / r */
    float scale;
    double dropout;
    int n;                     /* adapted modules */
    tn_lora_module *mods;      /* [n] */
    int *index;                /* [layers * TN_MOD_COUNT] -> module or -1 */
    int64_t n_params;
    float *params, *grads;     /* [n_params] each, contiguous */
    int first_layer;           /* layers [first_layer, L) are adapted */
    uint64_t dropout_key;      /* set per micro-step: dropout masks are a pure function of it */
    int training;              /* dropout applies only while training */
} tn_lora;

/* fp32 views of one layer's weights (into the mapping, a workspace, or the
 * master copy of full fine-tuning) and, when the layer is trained whole,
 * of their gradients (NULL otherwise). */
typedef struct {
    const float *w[TN_MOD_COUNT], *bias[TN_MOD_COUNT];
    const float *norm1, *norm2, *post_mixer, *post_mlp;
    float *dw[TN_MOD_COUNT], *dbias[TN_MOD_COUNT];
    float *dnorm1, *dnorm2, *dpost_mixer, *dpost_mlp;
} tn_layer_view;

typedef struct {
    tn_spec spec;
    tn_safetensors st;
    char path[4096];
    tn_rope_table rope;
    float *head;      /* [V, H] fp32 output head (NULL: points into the mapping) */
    const float *head_view;
    float *embed_copy; /* fp32 embeddings when stored in 16 bits */
    const float *embed_view;
    const float *final_norm;
    float *small;      /* fp32 copies of the norms and biases when stored in 16 bits */
    float *layer_ws;   /* fp32 workspace for one layer's matrices (16-bit checkpoints) */
    int64_t layer_ws_elems;
    float embed_scale;
    /* Full fine-tuning: every tensor in fp32 (the master copy), its
     * gradient, and the first layer trained (embeddings, final norm and head
     * are trained when all layers are). NULL master: weights are frozen. */
    float *master, *master_grad;
    int64_t n_master;
    int64_t *master_off; /* [st.n_tensors] offset of each tensor in master */
    int first_trained;
    float *dembed, *dhead, *dfinal_norm;
    /* QLoRA: the layers' matrices kept quantized (NF4, Q4_K or Q8_0) and
     * dequantized one layer at a time into layer_ws. */
    int qkind; /* tn_quant; 0 = none */
    unsigned char *qbase;
    uint64_t qbytes;
    uint64_t *qoff; /* [layers * TN_MOD_COUNT] */
    tn_hybrid_weights *hyb; /* Granite 4.0-H only */
    /* A GGUF base (a folder of model/gguf_import.h's tn_gguf_base_temp):
     * the layer matrices read from the GGUF's own blocks, whatever their
     * ggml type, a layer at a time into layer_ws (NULL: none). */
    struct tn_gguf_base *gguf;
} tn_model;

/* The GGUF a model's layer matrices come from (NULL when none), the path as
 * the user gave it; *by_type (64 counts, may be NULL) the matrices per ggml
 * type. */
const char *tn_model_gguf_base(const tn_model *m, const int **by_type);

/* Quantizes the base's layer matrices (kind: TN_QUANT_NF4, _Q4_K, _Q8_0 of
 * plan.h) for QLoRA; the mapped 16-bit weights are released afterwards. */
int tn_model_quantize_base(tn_model *m, int kind);

/* Makes the weights trainable for full fine-tuning of the last `layers`
 * layers (-1 = all, embeddings and head included). */
int tn_model_make_trainable(tn_model *m, int layers);
/* Writes the (trained) weights as a Hugging Face folder: config.json and
 * model.safetensors in `dtype`, atomically. */
int tn_model_save(const tn_model *m, const char *dir, tn_dtype dtype);

/* Opens a model folder: config, safetensors (checked against the family's
 * table), rope table for max_seq positions. Fails for families whose
 * training stages this build lacks. */
int tn_model_open(const char *dir, int max_seq, tn_model *m);
void tn_model_close(tn_model *m);
/* Expert e of layer l in fp32: *wi = input_linear [2FE, H], *wo =
 * output_linear [H, FE]; views into an F32 mapping, or converted
 * (BF16/F16) / dequantized (QLoRA) into the model's expert workspace, which
 * the next call overwrites. */
void tn_hybrid_expert(const tn_model *m, int l, int e, const float **wi, const float **wo);
/* The experts of layer l over T rows of x [T, H]: router logits [T, E]
 * into `router`, each chosen expert's gate|up [T·k, 2FE] into `gu` and
 * output [T·k, H] into `eo` (row t·k + j for the j-th choice of token t),
 * and y[t] += Σ_j w_tj · eo[t·k + j] (j in order). Tokens are grouped by
 * expert: one product per expert over its rows, each expert converted once.
 * scratch: tn_hybrid_moe_scratch(spec, T) floats. */
int tn_hybrid_moe_forward(const tn_model *m, int l, const float *x, int T, float *y, float *router, float *gu, float *eo, float *scratch);
int64_t tn_hybrid_moe_scratch(const tn_spec *s, int64_t T);

/* Fills v with fp32 views of layer l's weights (converting into the layer
 * workspace when the checkpoint is 16-bit). */
int tn_model_layer_view(tn_model *m, int l, tn_layer_view *v);
/* Layer l's norms and biases alone (matrices NULL, nothing converted): for
 * callers that read the matrices themselves (generate/infer.c decoding
 * from 16-bit rows). Not for full fine-tuning's master copy. */
int tn_model_layer_small(const tn_model *m, int l, tn_layer_view *v);

/* LoRA: rank, alpha, targets, last `layers` layers (-1 = all). A uniform in
 * ±1/sqrt(in) from (seed), B zero, as PEFT initialises. */
int tn_lora_init(tn_lora *lora, const tn_model *m, const tn_targets *targets, int rank, double alpha, int rslora,
                 double dropout, int layers, uint64_t seed);
void tn_lora_free(tn_lora *lora);

/* Activations of a batch, carved from the plan's slots. */
typedef struct {
    int B, S;
    int grad_checkpoint;
    float *arena;
    float *slot[TN_MAX_LAYERS][TN_SLOT_COUNT]; /* per layer; with checkpointing all but X share one set */
    float *final_norm_out, *final_rstd;     /* [T, H], [T] */
    float *logits;                          /* [rows, V] chunk */
    int64_t chunk_rows;
    float *ws;                              /* backward workspace */
    float *xn;                              /* [T, max(H, F)] rebuilt normed input / activation */
    float *dres, *dtmp;                     /* [T, H] residual gradient and scratch */
    float *dbig;                            /* [T, widest] */
    float *lora_tmp;                        /* [T, r] */
    float *dropped;                         /* [T, max(H, F)] dropped LoRA input (dropout > 0) */
    int64_t max_tokens;                     /* B·S the arena was carved for */
    int max_seq;
} tn_activations;

/* Uses the arena for a batch of B sequences of S tokens (B·S no more than
 * it was allocated for). */
int tn_activations_shape(tn_activations *a, int B, int S);

int tn_activations_alloc(tn_activations *a, const tn_model *m, const tn_lora *lora, const tn_plan_settings *s);
void tn_activations_free(tn_activations *a);

/* One forward and backward pass over a batch: ids and labels [B, S]
 * (labels TN_IGNORE_INDEX where masked; the loss at position t uses
 * labels[t+1], as transformers shifts). Adds the LoRA gradients of the mean
 * loss over all counted tokens (grad_scale = 1 / counted tokens, or the
 * caller's) into lora->grads. Returns the summed loss; *counted the tokens.
 * lora may be NULL (forward only when want_grads is 0). */
/* The labels each position is scored against, as transformers shifts them:
 * position t predicts token t + 1 of its sequence, the last position of each
 * of the T / S sequences none (TN_IGNORE_INDEX). Returns the positions
 * counted. Both engines (forward.c, gpu.c) score through it. */
int64_t tn_shift_labels(const int32_t *labels, int T, int S, int32_t *shifted);

double tn_model_step(tn_model *m, tn_lora *lora, tn_activations *a, const int32_t *ids, const int32_t *labels,
                     int want_grads, double grad_scale, int64_t *counted);

/* Forward only: logits [B·S, V] of every position (for tests and eval). */
int tn_model_logits(tn_model *m, tn_lora *lora, tn_activations *a, const int32_t *ids, float *logits);

#endif
