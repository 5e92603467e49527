/* model.c - opening a checkpoint for training: fp32 views of the weights,
 * the rope table, the LoRA adapter's parameters and the activation arena
 * carved from the memory plan's slots. The passes are in forward.c. */
#include "train/model.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/tensor_read.h"
#include "io/gguf_read.h"
#include "model/gguf_import.h"
#include "quant/dequant_gguf.h"
#include "io/safetensors_write.h"
#include "plan/plan.h"
#include "quant/nf4.h"
#include "quant/quant.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/platform.h"
#include "util/rng.h"

const char *const tn_module_names[TN_MOD_COUNT] = {"q_proj",  "k_proj",   "v_proj",       "o_proj",       "gate_proj", "up_proj",
                                                   "down_proj", "in_proj", "out_proj", "input_linear", "output_linear"};

/* HF names of the modules and norms, relative to "model.layers.N." */
const char *const tn_module_paths[TN_MOD_COUNT] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                                        "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj",
                                                        "mamba.in_proj",    "mamba.out_proj",   "shared_mlp.input_linear",
                                                        "shared_mlp.output_linear"};

static const tn_tensor_rule *module_rule(const tn_spec *s, tn_module k) {
    for (const tn_tensor_rule *r = s->family->layer_rules; r->name; r++)
        if (r->lora && !strcmp(r->lora, tn_module_names[k])) return r;
    return NULL;
}

int tn_module_applies(const tn_spec *s, int l, tn_module k) {
    const tn_tensor_rule *r = module_rule(s, k);
    return r && tn_rule_applies(s, r, l);
}

void tn_module_dims(const tn_spec *s, tn_module k, int *in, int *out) {
    const tn_tensor_rule *r = module_rule(s, k);
    *in = r ? (int)tn_spec_dim(s, r->shape[1]) : 0;
    *out = r ? (int)tn_spec_dim(s, r->shape[0]) : 0;
}

/* An MLX affine-quantized Linear (weight U32, eight 4-bit values a word
 * along the input axis, with .scales and .biases): read from the file as it
 * is and dequantized where needed (tensor_read.c). */
static int mlx_packed(const tn_model *m, const tn_tensor_info *t) {
    int bits;
    int64_t group;
    return tn_mlx_layout(&m->spec, &m->st, t, &bits, &group);
}

/* Elements of a tensor as fp32 (MLX: the unpacked [out, in]; bits per
 * tensor, as mlx-lm may quantize single layers differently). */
static uint64_t fp32_elems(const tn_model *m, const tn_tensor_info *t) {
    int bits;
    int64_t group;
    return tn_mlx_layout(&m->spec, &m->st, t, &bits, &group) ? t->n_elements * (uint64_t)(32 / bits) : t->n_elements;
}

static int convert_to_f32(const tn_model *m, const tn_tensor_info *t, float *dst) {
    if (mlx_packed(m, t)) return tn_tensor_read_f32(&m->st, &m->spec, t->name, dst, m->path);
    const void *src = tn_safetensors_data(&m->st, t);
    uint64_t n = t->n_elements;
    switch (t->dtype) {
    case TN_DTYPE_F32: memcpy(dst, src, n * 4); return 0;
    case TN_DTYPE_BF16: {
        const unsigned char *p = src;
#pragma omp parallel for if (n > 65536)
        for (int64_t i = 0; i < (int64_t)n; i++) dst[i] = tn_bf16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
        return 0;
    }
    case TN_DTYPE_F16: {
        const unsigned char *p = src;
#pragma omp parallel for if (n > 65536)
        for (int64_t i = 0; i < (int64_t)n; i++) dst[i] = tn_f16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
        return 0;
    }
    default: return tn_fail("%s: tensor %s: dtype %s cannot be used as weights", m->path, t->name, tn_dtype_name(t->dtype));
    }
}

/* A direct fp32 pointer into the mapping when the tensor is F32 and
 * aligned, else NULL. */
static const float *direct_view(const tn_model *m, const tn_tensor_info *t) {
    if (t->dtype != TN_DTYPE_F32) return NULL;
    const void *p = tn_safetensors_data(&m->st, t);
    return ((uintptr_t)p % 4 == 0) ? p : NULL;
}

static const tn_tensor_info *need(const tn_model *m, const char *name) {
    const tn_tensor_info *t = tn_safetensors_find(&m->st, name);
    if (!t) tn_fail("%s: missing tensor %s", m->path, name);
    return t;
}

/* A layer matrix: stored under its Hugging Face name (*t, returns its fp32
 * element count), or only as the family's aliases (mlx-lm's dense
 * mlp.gate_proj / up_proj / down_proj for Granite 4.0-H's shared_mlp): *t
 * NULL, read through tn_tensor_read_f32. Returns -1 when absent. */
static int64_t matrix_elems(const tn_model *m, const char *name, const tn_tensor_info **t) {
    *t = tn_safetensors_find(&m->st, name);
    if (*t) return (int64_t)fp32_elems(m, *t);
    int64_t shape[TN_MAX_DIMS], n = 1;
    int nd = tn_tensor_logical_shape(&m->st, &m->spec, name, shape);
    if (nd < 0) return tn_fail("%s: missing tensor %s", m->path, name);
    for (int d = 0; d < nd; d++) n *= shape[d];
    return n;
}

/* The small tensors (norms, biases) of every layer, copied to fp32 once. */
typedef struct {
    const char *suffix;
    int slot;
} small_name;

enum { SMALL_NORM1, SMALL_NORM2, SMALL_POST_MIXER, SMALL_POST_MLP, SMALL_BIAS0, SMALL_PER_LAYER = SMALL_BIAS0 + TN_MOD_COUNT };

/* per-layer fp32 pointers to the small tensors, kept beside the model */
typedef struct {
    const float *p[TN_MAX_LAYERS][SMALL_PER_LAYER];
} small_index;

static small_index *small_of(const tn_model *m) { return (small_index *)(void *)m->small; }

static int load_small(tn_model *m) {
    const tn_spec *s = &m->spec;
    /* first pass: size */
    uint64_t total = 0;
    char name[512];
    const tn_tensor_info *t;
    for (int l = 0; l < s->n_layers; l++)
        for (const tn_tensor_rule *r = s->family->layer_rules; r->name; r++)
            if (r->n_dims == 1 && tn_rule_applies(s, r, l)) {
                snprintf(name, sizeof name, r->name, l);
                if (!(t = need(m, name))) return -1;
                total += t->n_elements;
            }
    if (!(t = need(m, "model.norm.weight"))) return -1;
    total += t->n_elements;
    size_t header = sizeof(small_index);
    m->small = tn_malloc(header + total * 4, "norms and biases");
    if (!m->small) return -1;
    memset(m->small, 0, header);
    float *dst = (float *)((char *)m->small + header);
    small_index *ix = small_of(m);
    for (int l = 0; l < s->n_layers; l++) {
        static const char *const norms[2][4] = {
            {"input_layernorm", "post_attention_layernorm", NULL, NULL},
            {"input_layernorm", "pre_feedforward_layernorm", "post_attention_layernorm", "post_feedforward_layernorm"},
        };
        int sandwich = s->family->sandwich_norms;
        for (int k = 0; k < 4; k++) {
            if (!norms[sandwich][k]) continue;
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, norms[sandwich][k]);
            if (!(t = need(m, name)) || convert_to_f32(m, t, dst)) return -1;
            ix->p[l][k] = dst;
            dst += t->n_elements;
        }
        for (int k = 0; k < TN_MOD_COUNT; k++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, tn_module_paths[k]);
            t = tn_safetensors_find(&m->st, name);
            if (!t) continue;
            if (convert_to_f32(m, t, dst)) return -1;
            ix->p[l][SMALL_BIAS0 + k] = dst;
            dst += t->n_elements;
        }
    }
    t = need(m, "model.norm.weight");
    if (convert_to_f32(m, t, dst)) return -1;
    m->final_norm = dst;
    return 0;
}

/* Granite 4.0-H's Mamba tensors and router as fp32: a view into the
 * mapping when stored F32 and aligned, else a converted copy. The experts:
 * a view when F32, else the stored BF16/F16 bytes, converted one expert at a
 * time where used (tn_hybrid_expert) into a workspace of one expert. */
static int64_t expert_ws_elems(const tn_spec *s) { return 3 * s->intermediate * s->hidden; }

static int load_hybrid(tn_model *m) {
    const tn_spec *s = &m->spec;
    m->hyb = tn_calloc(1, sizeof *m->hyb, "hybrid weights");
    if (!m->hyb) return -1;
    static const char *const names[TN_HYB_COUNT] = {"mamba.conv1d.weight", "mamba.conv1d.bias", "mamba.dt_bias", "mamba.A_log", "mamba.D",
                                                    "mamba.norm.weight", "block_sparse_moe.input_linear.weight",
                                                    "block_sparse_moe.output_linear.weight", "block_sparse_moe.router.layer.weight"};
    int stored_experts = 0;
    for (int l = 0; l < s->n_layers; l++)
        for (int k = 0; k < TN_HYB_COUNT; k++) {
            int mamba = s->layer_kind[l] == TN_LAYER_MAMBA;
            if (k <= TN_HYB_NORM && !mamba) continue;
            if (k == TN_HYB_CONV_B && !s->mamba_conv_bias) continue;
            if (k >= TN_HYB_EXP_IN && s->n_experts <= 0) continue;
            char name[512];
            snprintf(name, sizeof name, "model.layers.%d.%s", l, names[k]);
            int expert = k == TN_HYB_EXP_IN || k == TN_HYB_EXP_OUT;
            const tn_tensor_info *parts[4];
            int np = expert ? tn_tensor_parts(s, &m->st, name, parts) : 0;
            if (np && (np > 1 || strcmp(parts[0]->name, name) || mlx_packed(m, parts[0]))) {
                /* mlx-lm's switch_mlp names, or MLX-quantized: read by name an
                 * expert at a time (tn_hybrid_expert) */
                m->hyb->exp_named = 1;
                stored_experts = 1;
                continue;
            }
            const tn_tensor_info *t = need(m, name);
            if (!t) return -1;
            const float *d = direct_view(m, t);
            if (!d && expert && !mlx_packed(m, t) && (t->dtype == TN_DTYPE_BF16 || t->dtype == TN_DTYPE_F16)) {
                m->hyb->exp[l][k - TN_HYB_EXP_IN] = tn_safetensors_data(&m->st, t);
                m->hyb->exp_dtype = t->dtype;
                stored_experts = 1;
                continue;
            }
            if (!d) {
                float *c = tn_malloc(fp32_elems(m, t) * 4, "fp32 hybrid tensor");
                if (!c) return -1;
                m->hyb->copies[m->hyb->n_copies++] = c;
                if (convert_to_f32(m, t, c)) return -1;
                d = c;
            }
            m->hyb->p[l][k] = d;
        }
    if (stored_experts) {
        m->hyb->expert_ws = tn_malloc((size_t)expert_ws_elems(s) * sizeof(float), "fp32 expert workspace");
        if (!m->hyb->expert_ws) return -1;
    }
    return 0;
}

/* One expert's matrix (which: 0 input_linear, 1 output_linear) from the
 * quantized base into dst. */
static void expert_dequantize(const tn_model *m, int l, int e, int which, float *dst) {
    const tn_spec *s = &m->spec;
    int64_t H = s->hidden, FE = s->intermediate;
    int64_t rows = which ? H : 2 * FE, cols = which ? FE : H;
    const unsigned char *q = m->qbase + m->hyb->qexp[((int64_t)l * s->n_experts + e) * 2 + which];
    if (m->qkind == TN_QUANT_NF4) {
        tn_nf4_dequantize(q, rows * cols, dst);
        return;
    }
    tn_ggml_type gt = m->qkind == TN_QUANT_Q4_K ? TN_GGML_Q4_K : TN_GGML_Q8_0;
    uint64_t row = tn_ggml_row_size(gt, cols);
#pragma omp parallel for if (rows * cols > 65536)
    for (int64_t r = 0; r < rows; r++) tn_dequantize_row(gt, q + (uint64_t)r * row, dst + r * cols, cols);
}

/* n 16-bit values (BF16 or F16) from src into dst as fp32. */
static void widen16(const unsigned char *p, int dtype, int64_t n, float *dst) {
    if (dtype == TN_DTYPE_BF16) {
#pragma omp parallel for if (n > 65536)
        for (int64_t i = 0; i < n; i++) dst[i] = tn_bf16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
    } else {
#pragma omp parallel for if (n > 65536)
        for (int64_t i = 0; i < n; i++) dst[i] = tn_f16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
    }
}

void tn_hybrid_expert(const tn_model *m, int l, int e, const float **wi, const float **wo) {
    const tn_spec *s = &m->spec;
    const tn_hybrid_weights *hw = m->hyb;
    int64_t nin = 2 * s->intermediate * s->hidden, nout = s->hidden * s->intermediate;
    float *ws = hw->expert_ws;
    if (hw->qexp) {
        expert_dequantize(m, l, e, 0, ws);
        expert_dequantize(m, l, e, 1, ws + nin);
        *wi = ws, *wo = ws + nin;
        return;
    }
    if (hw->exp_named) {
        char name[2][256];
        snprintf(name[0], sizeof name[0], "model.layers.%d.block_sparse_moe.input_linear.weight", l);
        snprintf(name[1], sizeof name[1], "model.layers.%d.block_sparse_moe.output_linear.weight", l);
        /* the shapes were checked at open: a failure here is a broken mapping */
        if (tn_tensor_read_slab_f32(&m->st, s, name[0], e, ws, m->path) || tn_tensor_read_slab_f32(&m->st, s, name[1], e, ws + nin, m->path))
            memset(ws, 0, (size_t)(nin + nout) * sizeof(float));
        *wi = ws, *wo = ws + nin;
        return;
    }
    if (hw->p[l][TN_HYB_EXP_IN]) *wi = hw->p[l][TN_HYB_EXP_IN] + e * nin;
    else widen16(hw->exp[l][0] + 2 * e * nin, hw->exp_dtype, nin, ws), *wi = ws;
    if (hw->p[l][TN_HYB_EXP_OUT]) *wo = hw->p[l][TN_HYB_EXP_OUT] + e * nout;
    else widen16(hw->exp[l][1] + 2 * e * nout, hw->exp_dtype, nout, ws + nin), *wo = ws + nin;
}

/* ---- a GGUF base: the layer matrices in the GGUF's own blocks ---------- */

/* One adaptable matrix in the GGUF: one tensor, or two stacked by rows
 * (Granite 4.0-H's input_linear = ffn_gate; ffn_up), each [rows, cols] of
 * ggml type `type`; perm_heads > 0 when llama.cpp's converter permuted the
 * rows (Q/K of Llama-style families) into interleaved pairs per head. */
typedef struct {
    const unsigned char *data[2];
    int type[2], parts, perm_heads;
    int64_t rows, cols;
    uint64_t row_bytes[2];
} gguf_matrix;

struct tn_gguf_base {
    tn_gguf g;
    char name[4096];
    char file[4096];
    int by_type[64];
    gguf_matrix mat[TN_MAX_LAYERS][TN_MOD_COUNT];
};

const char *tn_model_gguf_base(const tn_model *m, const int **by_type) {
    if (by_type) *by_type = m->gguf ? m->gguf->by_type : NULL;
    return m->gguf ? m->gguf->name : NULL;
}

static int gguf_base_open(tn_model *m) {
    const tn_spec *s = &m->spec;
    struct tn_gguf_base *gb = tn_calloc(1, sizeof *gb, "GGUF base table");
    if (!gb) return -1;
    m->gguf = gb;
    if (tn_gguf_base_of(m->path, gb->file, sizeof gb->file, gb->name, sizeof gb->name, NULL) != 1) return -1;
    if (!s->family->gguf_layer) return tn_fail("%s: GGUF bases of %s models are not supported", gb->name, s->model_type);
    if (tn_gguf_open(gb->file, &gb->g)) return -1;
    char want[256], hf[256], name[256];
    for (int l = 0; l < s->n_layers; l++)
        for (int k = 0; k < TN_MOD_COUNT; k++) {
            if (!tn_module_applies(s, l, (tn_module)k)) continue;
            int in, out;
            tn_module_dims(s, (tn_module)k, &in, &out);
            gguf_matrix *q = &gb->mat[l][k];
            snprintf(want, sizeof want, "model.layers.%d.%s.weight", l, tn_module_paths[k]);
            for (const tn_gguf_name *e = s->family->gguf_layer; e->hf; e++) {
                if (!TN_GGUF_NAME_APPLIES(e, s)) continue;
                snprintf(hf, sizeof hf, e->hf, l);
                if (strcmp(hf, want)) continue;
                snprintf(name, sizeof name, e->gguf, l);
                int part = e->transform == TN_GGUF_SECOND_HALF;
                int halves = e->transform == TN_GGUF_FIRST_HALF || e->transform == TN_GGUF_SECOND_HALF;
                if (e->transform != TN_GGUF_COPY && e->transform != TN_GGUF_PERMUTE_Q && e->transform != TN_GGUF_PERMUTE_K && !halves)
                    return tn_fail("%s: tensor %s: its GGUF transform is not one a trained matrix can have", gb->name, name);
                const tn_gguf_tensor *t = tn_gguf_find_tensor(&gb->g, name);
                int64_t rows = halves ? out / 2 : out;
                if (!t) return tn_fail("%s: missing tensor %s (Hugging Face's %s)", gb->name, name, want);
                if (t->n_dims != 2 || t->ne[0] != in || t->ne[1] != rows)
                    return tn_fail("%s: tensor %s has %d dims [%lld, %lld], expected [%d, %lld] (ne0 = in features) for %s", gb->name, name, t->n_dims,
                                   (long long)t->ne[0], (long long)t->ne[1], in, (long long)rows, want);
                if (!tn_gguf_can_dequantize(t->type))
                    return tn_fail("%s: tensor %s has type %s, which tune does not read (it reads %s)", gb->name, name, tn_gguf_type_name(t->type),
                                   tn_gguf_dequantize_list());
                q->data[part] = t->data;
                q->type[part] = t->type;
                q->row_bytes[part] = (uint64_t)(in / tn_gguf_type_block(t->type)) * (uint64_t)tn_gguf_type_bytes(t->type);
                q->rows = rows, q->cols = in;
                q->parts = halves ? 2 : 1;
                q->perm_heads = e->transform == TN_GGUF_PERMUTE_Q ? (int)s->n_heads : e->transform == TN_GGUF_PERMUTE_K ? (int)s->n_kv_heads : 0;
                if (q->perm_heads && rows % (2 * q->perm_heads))
                    return tn_fail("%s: tensor %s: %lld rows do not split into %d heads of pairs", gb->name, name, (long long)rows, q->perm_heads);
                if (t->type >= 0 && t->type < 64) gb->by_type[t->type]++;
            }
            if (!q->data[0] || (q->parts == 2 && !q->data[1]))
                return tn_fail("%s: no GGUF tensor holds Hugging Face's %s", gb->name, want);
        }
    return 0;
}

/* Layer l's matrix k from the GGUF's blocks into ws (rows back to
 * rotate-half order when permuted: HF row h·hd + k·hd/2 + i = GGUF row
 * h·hd + 2i + k, as the importer undoes it). */
static void gguf_matrix_read(const gguf_matrix *q, float *ws) {
    for (int p = 0; p < q->parts; p++) {
        float *dst = ws + (int64_t)p * q->rows * q->cols;
        const int64_t hd = q->perm_heads ? q->rows / q->perm_heads : 0, half = hd / 2;
#pragma omp parallel for schedule(static) if (q->rows * q->cols > 65536)
        for (int64_t r = 0; r < q->rows; r++) {
            int64_t to = q->perm_heads ? (r / hd) * hd + (r % 2) * half + (r % hd) / 2 : r;
            tn_gguf_dequantize_row(q->type[p], q->data[p] + (uint64_t)r * q->row_bytes[p], dst + to * q->cols, q->cols);
        }
    }
}

int tn_model_open(const char *dir, int max_seq, tn_model *m) {
    memset(m, 0, sizeof *m);
    snprintf(m->path, sizeof m->path, "%s", dir);
    if (tn_spec_load(dir, &m->spec) != 0) return -1;
    tn_spec *s = &m->spec;
    if (tn_safetensors_open(dir, &m->st) != 0) return -1;
    if (s->gguf_layer_bytes && gguf_base_open(m) != 0) {
        tn_model_close(m);
        return -1;
    }
    char report[4096];
    /* A GGUF base folder lacks the layer matrices by design; the importer
     * checked every tensor of the GGUF against the family table. */
    int problems = m->gguf ? 0 : tn_spec_check_tensors(s, &m->st, report, sizeof report);
    if (problems) {
        char *nl = strchr(report, '\n');
        if (nl) *nl = 0;
        tn_fail("%s: the checkpoint does not match its config (%d problem%s; first: %s)", dir, problems, problems > 1 ? "s" : "", report);
        tn_model_close(m);
        return -1;
    }
    tn_rope_params rp = {s->rope_theta, TN_ROPE_SCALE_NONE, 1, 1, 1, 0};
    if (s->rope == TN_ROPE_LLAMA3) {
        rp.scaling = TN_ROPE_SCALE_LLAMA3;
        rp.factor = s->rope_factor, rp.low_freq_factor = s->rope_low_freq_factor, rp.high_freq_factor = s->rope_high_freq_factor;
        rp.original_max_pos = (int)s->rope_original_max_position;
    } else if (s->rope == TN_ROPE_LINEAR) {
        rp.scaling = TN_ROPE_SCALE_LINEAR, rp.factor = s->rope_factor;
    }
    if (tn_rope_table_init(&m->rope, max_seq, (int)s->head_dim, &rp) != 0) goto fail;
    if (load_small(m) != 0) goto fail;
    /* Embeddings and head. */
    const tn_tensor_info *e = need(m, "model.embed_tokens.weight");
    if (!e) goto fail;
    m->embed_view = direct_view(m, e);
    if (!m->embed_view) {
        m->embed_copy = tn_malloc(fp32_elems(m, e) * 4, "fp32 embeddings");
        if (!m->embed_copy || convert_to_f32(m, e, m->embed_copy)) goto fail;
        m->embed_view = m->embed_copy;
    }
    if (s->tied_embeddings) {
        m->head_view = m->embed_view;
    } else {
        const tn_tensor_info *h = need(m, "lm_head.weight");
        if (!h) goto fail;
        m->head_view = direct_view(m, h);
        if (!m->head_view) {
            m->head = tn_malloc(fp32_elems(m, h) * 4, "fp32 output head");
            if (!m->head || convert_to_f32(m, h, m->head)) goto fail;
            m->head_view = m->head;
        }
    }
    /* Embedding scale: Gemma multiplies by sqrt(H) rounded to the model's
     * dtype; Granite by embedding_multiplier. */
    m->embed_scale = 1.0f;
    if (s->family->embed_scale == TN_EMBED_SCALE_SQRT_HIDDEN) {
        float v = (float)sqrt((double)s->hidden);
        if (s->dtype == TN_DTYPE_BF16) v = tn_bf16_to_f32(tn_f32_to_bf16(v));
        else if (s->dtype == TN_DTYPE_F16) v = tn_f16_to_f32(tn_f32_to_f16(v));
        m->embed_scale = v;
    } else if (s->family->embed_scale == TN_EMBED_SCALE_MULTIPLIER) {
        m->embed_scale = (float)s->embedding_multiplier;
    }
    /* Layer workspace when any matrix needs converting. */
    int64_t largest = 0;
    for (int l = 0; l < s->n_layers; l++) {
        int64_t sum = 0, direct = 1;
        char name[512];
        for (int k = 0; k < TN_MOD_COUNT; k++) {
            if (!tn_module_applies(s, l, (tn_module)k)) continue;
            if (m->gguf) {
                const gguf_matrix *q = &m->gguf->mat[l][k];
                sum += (int64_t)q->parts * q->rows * q->cols;
                direct = 0;
                continue;
            }
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, tn_module_paths[k]);
            const tn_tensor_info *t;
            int64_t n = matrix_elems(m, name, &t);
            if (n < 0) goto fail;
            sum += n;
            if (!t || !direct_view(m, t)) direct = 0;
        }
        if (!direct && sum > largest) largest = sum;
    }
    if (largest) {
        m->layer_ws = tn_malloc((size_t)largest * 4, "fp32 layer workspace");
        if (!m->layer_ws) goto fail;
        m->layer_ws_elems = largest;
    }
    if (s->family->hybrid && load_hybrid(m) != 0) goto fail;
    return 0;
fail:
    tn_model_close(m);
    return -1;
}

static float *master_of(const tn_model *m, const char *name, int grad) {
    const tn_tensor_info *t = tn_safetensors_find(&m->st, name);
    if (!t || !m->master) return NULL;
    return (grad ? m->master_grad : m->master) + m->master_off[t - m->st.tensors];
}

int tn_model_make_trainable(tn_model *m, int layers) {
    const tn_spec *s = &m->spec;
    if (m->gguf)
        return tn_fail("%s: full fine-tuning of a GGUF base is not possible (its layers are quantized blocks): train a LoRA adapter on it, or "
                       "fine-tune the Hugging Face folder it came from", m->gguf->name);
    if (s->quant_bits)
        return tn_fail("%s: full fine-tuning of a quantized (MLX %lld-bit) checkpoint is not possible: train a LoRA adapter on it, or "
                       "dequantize it first (tune fuse)", m->path, (long long)s->quant_bits);
    if (s->family->hybrid)
        return tn_fail("%s: full fine-tuning of %s needs the Mamba2 and expert weight gradients, not in this build yet", m->path, s->model_type);
    int L = (int)s->n_layers;
    m->first_trained = (layers < 0 || layers >= L) ? 0 : L - layers;
    m->master_off = tn_malloc((size_t)m->st.n_tensors * sizeof *m->master_off, "master offsets");
    if (!m->master_off) return -1;
    int64_t n = 0;
    for (int i = 0; i < m->st.n_tensors; i++) m->master_off[i] = n, n += (int64_t)m->st.tensors[i].n_elements;
    m->n_master = n;
    m->master = tn_malloc((size_t)n * sizeof(float), "fp32 master weights");
    m->master_grad = tn_calloc((size_t)n, sizeof(float), "weight gradients");
    if (!m->master || !m->master_grad) return -1;
    for (int i = 0; i < m->st.n_tensors; i++)
        if (convert_to_f32(m, &m->st.tensors[i], m->master + m->master_off[i])) return -1;
    /* Every view now points into the master copy. */
    small_index *ix = small_of(m);
    char name[512];
    static const char *const norms[2][4] = {
        {"input_layernorm", "post_attention_layernorm", NULL, NULL},
        {"input_layernorm", "pre_feedforward_layernorm", "post_attention_layernorm", "post_feedforward_layernorm"},
    };
    for (int l = 0; l < L; l++) {
        for (int k = 0; k < 4; k++) {
            if (!norms[s->family->sandwich_norms][k]) continue;
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, norms[s->family->sandwich_norms][k]);
            ix->p[l][k] = master_of(m, name, 0);
        }
        for (int k = 0; k < TN_MOD_COUNT; k++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, tn_module_paths[k]);
            if (ix->p[l][SMALL_BIAS0 + k]) ix->p[l][SMALL_BIAS0 + k] = master_of(m, name, 0);
        }
    }
    m->final_norm = master_of(m, "model.norm.weight", 0);
    free(m->embed_copy), m->embed_copy = NULL;
    free(m->head), m->head = NULL;
    m->embed_view = master_of(m, "model.embed_tokens.weight", 0);
    m->head_view = s->tied_embeddings ? m->embed_view : master_of(m, "lm_head.weight", 0);
    if (m->first_trained == 0) {
        m->dembed = master_of(m, "model.embed_tokens.weight", 1);
        m->dhead = s->tied_embeddings ? m->dembed : master_of(m, "lm_head.weight", 1);
        m->dfinal_norm = master_of(m, "model.norm.weight", 1);
    }
    return 0;
}

typedef struct {
    const tn_model *m;
    tn_dtype dtype;
} save_ctx;

static int fill_weight(void *vctx, int i, void *buf, uint64_t n_bytes) {
    const save_ctx *c = vctx;
    const tn_model *m = c->m;
    const tn_tensor_info *t = &m->st.tensors[i];
    for (uint64_t e = 0; e < t->n_elements; e++) {
        float v = m->master[m->master_off[i] + (int64_t)e];
        if (c->dtype == TN_DTYPE_F32) ((float *)buf)[e] = v;
        else if (c->dtype == TN_DTYPE_BF16) ((uint16_t *)buf)[e] = tn_f32_to_bf16(v);
        else ((uint16_t *)buf)[e] = tn_f32_to_f16(v);
    }
    (void)n_bytes;
    return 0;
}

int tn_model_save(const tn_model *m, const char *dir, tn_dtype dtype) {
    if (!m->master) return tn_fail("%s: no trained weights to save", m->path);
    if (tn_make_dirs(dir) != 0) return -1;
    tn_tensor_desc *d = tn_calloc((size_t)m->st.n_tensors, sizeof *d, "tensor list");
    if (!d) return -1;
    for (int i = 0; i < m->st.n_tensors; i++) {
        const tn_tensor_info *t = &m->st.tensors[i];
        d[i].name = t->name;
        d[i].dtype = dtype;
        d[i].n_dims = t->n_dims;
        memcpy(d[i].shape, t->shape, sizeof d[i].shape);
    }
    save_ctx c = {m, dtype};
    int rc = tn_safetensors_write(dir, "model", d, m->st.n_tensors, 5000000000ull, "{\"format\":\"pt\"}", fill_weight, &c);
    free(d);
    if (rc) return rc;
    /* config.json, and the tokenizer and generation files when present, so
     * the folder is a complete model. */
    static const char *const files[] = {"config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                        "generation_config.json", "chat_template.jinja", NULL};
    for (int i = 0; files[i] && rc == 0; i++) {
        char src[4200], dst[4200];
        snprintf(src, sizeof src, "%s/%s", m->path, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
        if (i > 0 && !tn_file_exists(src)) continue;
        size_t n = 0;
        char *text = tn_read_file(src, 256u << 20, &n);
        if (!text) return -1;
        rc = tn_write_file_atomic(dst, text, n);
        free(text);
    }
    return rc;
}

/* Module k of layer l: its Hugging Face name into name and its [rows, cols]
 * ([out, in]), stored as itself or as the family's aliases. */
typedef struct {
    char name[256];
    int64_t rows, cols;
} module_matrix;

static int module_shape(const tn_model *m, int l, int k, module_matrix *mm) {
    snprintf(mm->name, sizeof mm->name, "model.layers.%d.%s.weight", l, tn_module_paths[k]);
    int64_t shape[TN_MAX_DIMS];
    if (tn_tensor_logical_shape(&m->st, &m->spec, mm->name, shape) != 2) return tn_fail("%s: missing matrix %s", m->path, mm->name);
    mm->rows = shape[0], mm->cols = shape[1];
    return 0;
}

static uint64_t quant_size(int kind, int64_t rows, int64_t cols) {
    if (kind == TN_QUANT_NF4) return tn_nf4_bytes(rows * cols);
    return (uint64_t)rows * tn_ggml_row_size(kind == TN_QUANT_Q4_K ? TN_GGML_Q4_K : TN_GGML_Q8_0, cols);
}

int tn_model_quantize_base(tn_model *m, int kind) {
    const tn_spec *s = &m->spec;
    if (m->gguf)
        return tn_fail("%s: a GGUF base is already quantized (LoRA trains on its own blocks): train without --qlora", m->gguf->name);
    if (s->quant_bits)
        return tn_fail("%s: the checkpoint is already quantized (MLX %lld-bit): train LoRA on it as it is, without --qlora", m->path,
                       (long long)s->quant_bits);
    /* Granite 4.0-H's experts: each expert's input_linear [2FE, H] and
     * output_linear [H, FE] quantized on its own. */
    int E = s->family->hybrid && s->n_experts > 0 ? (int)s->n_experts : 0;
    int64_t H = s->hidden, FE = s->intermediate;
    uint64_t *qexp = NULL;
    int L = (int)s->n_layers;
    tn_ggml_type gt = kind == TN_QUANT_Q4_K ? TN_GGML_Q4_K : TN_GGML_Q8_0;
    m->qoff = tn_malloc((size_t)L * TN_MOD_COUNT * sizeof *m->qoff, "quantized offsets");
    if (!m->qoff) return -1;
    uint64_t total = 0, largest = 0, largest_layer = 0;
    for (int l = 0; l < L; l++) {
        uint64_t layer = 0;
        for (int k = 0; k < TN_MOD_COUNT; k++) {
            if (!tn_module_applies(s, l, (tn_module)k)) continue;
            module_matrix t;
            if (module_shape(m, l, k, &t)) return -1;
            if (kind != TN_QUANT_NF4 && t.cols % tn_ggml_block_size(gt))
                return tn_fail("%s: --qlora %s needs rows that are a multiple of %d values; %s has rows of %lld (use --qlora nf4)", m->path,
                               kind == TN_QUANT_Q4_K ? "q4_k" : "q8_0", tn_ggml_block_size(gt), t.name, (long long)t.cols);
            m->qoff[l * TN_MOD_COUNT + k] = total;
            total += quant_size(kind, t.rows, t.cols);
            const uint64_t n = (uint64_t)(t.rows * t.cols);
            if (n > largest) largest = n;
            layer += n;
        }
        if (layer > largest_layer) largest_layer = layer;
    }
    if (E) {
        for (int w = 0; w < 2; w++) {
            int64_t cols = w ? FE : H;
            if (kind != TN_QUANT_NF4 && cols % tn_ggml_block_size(gt))
                return tn_fail("%s: --qlora %s needs rows that are a multiple of %d values; the experts' %s has rows of %lld (use --qlora nf4)",
                               m->path, kind == TN_QUANT_Q4_K ? "q4_k" : "q8_0", tn_ggml_block_size(gt), w ? "output_linear" : "input_linear",
                               (long long)cols);
        }
        qexp = tn_malloc((size_t)L * E * 2 * sizeof *qexp, "quantized expert offsets");
        if (!qexp) return -1;
        for (int l = 0; l < L; l++)
            for (int e = 0; e < E; e++)
                for (int w = 0; w < 2; w++) {
                    int64_t rows = w ? H : 2 * FE, cols = w ? FE : H;
                    qexp[((int64_t)l * E + e) * 2 + w] = total;
                    total += kind == TN_QUANT_NF4 ? tn_nf4_bytes(rows * cols) : (uint64_t)rows * tn_ggml_row_size(gt, cols);
                }
    }
    m->qbase = tn_malloc(total, "quantized base");
    float *tmp = tn_malloc(largest * sizeof(float), "quantization buffer");
    if (!m->qbase || !tmp) {
        free(tmp), free(qexp);
        return -1;
    }
    m->qbytes = total;
    for (int l = 0; l < L; l++)
        for (int k = 0; k < TN_MOD_COUNT; k++) {
            if (!tn_module_applies(s, l, (tn_module)k)) continue;
            module_matrix t;
            /* read once (tensor_read.c): the 16-bit original's pages go */
            if (module_shape(m, l, k, &t) || tn_tensor_read_f32(&m->st, s, t.name, tmp, m->path)) {
                free(tmp), free(qexp);
                return -1;
            }
            unsigned char *dst = m->qbase + m->qoff[l * TN_MOD_COUNT + k];
            if (kind == TN_QUANT_NF4) tn_nf4_quantize(tmp, t.rows * t.cols, dst);
            else if (!tn_quant_rows(gt, tmp, dst, t.rows, t.cols)) {
                free(tmp), free(qexp);
                return -1;
            }
        }
    for (int l = 0; l < L && E; l++) {
        for (int e = 0; e < E; e++) {
            const float *wi, *wo;
            tn_hybrid_expert(m, l, e, &wi, &wo); /* fp32 from the checkpoint: m->hyb->qexp is set below */
            for (int w = 0; w < 2; w++) {
                int64_t rows = w ? H : 2 * FE, cols = w ? FE : H;
                const float *src = w ? wo : wi;
                unsigned char *dst = m->qbase + qexp[((int64_t)l * E + e) * 2 + w];
                if (kind == TN_QUANT_NF4) tn_nf4_quantize(src, rows * cols, dst);
                else if (!tn_quant_rows(gt, src, dst, rows, cols)) {
                    free(tmp), free(qexp);
                    return -1;
                }
            }
        }
        static const char *const en[2] = {"block_sparse_moe.input_linear.weight", "block_sparse_moe.output_linear.weight"};
        for (int w = 0; w < 2; w++) {
            char name[512];
            snprintf(name, sizeof name, "model.layers.%d.%s", l, en[w]);
            const tn_tensor_info *t = need(m, name);
            if (t) tn_release_pages(tn_safetensors_data(&m->st, t), t->n_bytes);
        }
    }
    free(tmp);
    if (E) {
        m->hyb->qexp = qexp;
        if (!m->hyb->expert_ws && !(m->hyb->expert_ws = tn_malloc((size_t)expert_ws_elems(s) * sizeof(float), "fp32 expert workspace")))
            return -1;
    }
    if ((uint64_t)m->layer_ws_elems < largest_layer) {
        free(m->layer_ws);
        m->layer_ws = tn_malloc(largest_layer * sizeof(float), "fp32 layer workspace");
        if (!m->layer_ws) return -1;
        m->layer_ws_elems = (int64_t)largest_layer;
    }
    m->qkind = kind;
    return 0;
}

void tn_model_close(tn_model *m) {
    if (m->gguf) tn_gguf_close(&m->gguf->g);
    free(m->gguf);
    if (m->hyb)
        for (int i = 0; i < m->hyb->n_copies; i++) free(m->hyb->copies[i]);
    if (m->hyb) free(m->hyb->qexp), free(m->hyb->expert_ws);
    free(m->hyb);
    free(m->qbase);
    free(m->qoff);
    free(m->master);
    free(m->master_grad);
    free(m->master_off);
    tn_rope_table_free(&m->rope);
    free(m->head);
    free(m->embed_copy);
    free(m->small);
    free(m->layer_ws);
    tn_safetensors_close(&m->st);
    memset(m, 0, sizeof *m);
}

int tn_model_layer_view(tn_model *m, int l, tn_layer_view *v) {
    memset(v, 0, sizeof *v);
    small_index *ix = small_of(m);
    v->norm1 = ix->p[l][SMALL_NORM1];
    v->norm2 = ix->p[l][SMALL_NORM2];
    v->post_mixer = ix->p[l][SMALL_POST_MIXER];
    v->post_mlp = ix->p[l][SMALL_POST_MLP];
    float *ws = m->layer_ws;
    char name[512];
    if (m->master) {
        int trained = l >= m->first_trained;
        static const char *const norms[2][4] = {
            {"input_layernorm", "post_attention_layernorm", NULL, NULL},
            {"input_layernorm", "pre_feedforward_layernorm", "post_attention_layernorm", "post_feedforward_layernorm"},
        };
        float **dn[4] = {&v->dnorm1, &v->dnorm2, &v->dpost_mixer, &v->dpost_mlp};
        for (int k = 0; k < 4 && trained; k++) {
            if (!norms[m->spec.family->sandwich_norms][k]) continue;
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, norms[m->spec.family->sandwich_norms][k]);
            *dn[k] = master_of(m, name, 1);
        }
        for (int k = 0; k < TN_MOD_COUNT; k++) {
            v->bias[k] = ix->p[l][SMALL_BIAS0 + k];
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, tn_module_paths[k]);
            v->w[k] = master_of(m, name, 0);
            if (trained) v->dw[k] = master_of(m, name, 1);
            snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, tn_module_paths[k]);
            if (trained && v->bias[k]) v->dbias[k] = master_of(m, name, 1);
        }
        return 0;
    }
    if (m->gguf) {
        for (int k = 0; k < TN_MOD_COUNT; k++) {
            if (!tn_module_applies(&m->spec, l, (tn_module)k)) continue;
            v->bias[k] = ix->p[l][SMALL_BIAS0 + k];
            const gguf_matrix *q = &m->gguf->mat[l][k];
            if (q->parts == 1 && !q->perm_heads && q->type[0] == 0) { /* F32 in the file's order: a view, no copy */
                v->w[k] = (const float *)(const void *)q->data[0];
                continue;
            }
            gguf_matrix_read(q, ws);
            v->w[k] = ws;
            ws += (int64_t)q->parts * q->rows * q->cols;
        }
        return 0;
    }
    if (m->qbase) {
        for (int k = 0; k < TN_MOD_COUNT; k++) {
            if (!tn_module_applies(&m->spec, l, (tn_module)k)) continue;
            v->bias[k] = ix->p[l][SMALL_BIAS0 + k];
            module_matrix t;
            if (module_shape(m, l, k, &t)) return -1;
            const int64_t rows = t.rows, cols = t.cols;
            const unsigned char *q = m->qbase + m->qoff[l * TN_MOD_COUNT + k];
            if (m->qkind == TN_QUANT_NF4) {
                tn_nf4_dequantize(q, rows * cols, ws);
            } else {
                tn_ggml_type gt = m->qkind == TN_QUANT_Q4_K ? TN_GGML_Q4_K : TN_GGML_Q8_0;
                uint64_t row = tn_ggml_row_size(gt, cols);
#pragma omp parallel for if (rows * cols > 65536)
                for (int64_t r = 0; r < rows; r++) tn_dequantize_row(gt, q + (uint64_t)r * row, ws + r * cols, cols);
            }
            v->w[k] = ws;
            ws += rows * cols;
        }
        return 0;
    }
    for (int k = 0; k < TN_MOD_COUNT; k++) {
        if (!tn_module_applies(&m->spec, l, (tn_module)k)) continue;
        v->bias[k] = ix->p[l][SMALL_BIAS0 + k];
        snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, tn_module_paths[k]);
        const tn_tensor_info *t;
        const int64_t n = matrix_elems(m, name, &t);
        if (n < 0) return -1;
        if (!t) { /* stored as the family's aliases: their parts' rows in order */
            if (tn_tensor_read_f32(&m->st, &m->spec, name, ws, m->path)) return -1;
            v->w[k] = ws;
            ws += n;
            continue;
        }
        const float *d = direct_view(m, t);
        if (d) {
            v->w[k] = d;
        } else {
            if (convert_to_f32(m, t, ws)) return -1;
            v->w[k] = ws;
            ws += fp32_elems(m, t);
        }
    }
    return 0;
}

int tn_model_layer_small(const tn_model *m, int l, tn_layer_view *v) {
    memset(v, 0, sizeof *v);
    const small_index *ix = small_of(m);
    v->norm1 = ix->p[l][SMALL_NORM1];
    v->norm2 = ix->p[l][SMALL_NORM2];
    v->post_mixer = ix->p[l][SMALL_POST_MIXER];
    v->post_mlp = ix->p[l][SMALL_POST_MLP];
    for (int k = 0; k < TN_MOD_COUNT; k++)
        if (tn_module_applies(&m->spec, l, (tn_module)k)) v->bias[k] = ix->p[l][SMALL_BIAS0 + k];
    return 0;
}

int tn_lora_init(tn_lora *lora, const tn_model *m, const tn_targets *targets, int rank, double alpha, int rslora, double dropout, int layers,
                 uint64_t seed) {
    memset(lora, 0, sizeof *lora);
    const tn_spec *s = &m->spec;
    int L = (int)s->n_layers;
    lora->rank = rank;
    lora->alpha = alpha;
    lora->rslora = rslora;
    lora->dropout = dropout;
    lora->scale = (float)(rslora ? alpha / sqrt((double)rank) : alpha / rank);
    lora->first_layer = (layers < 0 || layers >= L) ? 0 : L - layers;
    lora->index = tn_malloc((size_t)L * TN_MOD_COUNT * sizeof *lora->index, "lora index");
    lora->mods = tn_calloc((size_t)L * TN_MOD_COUNT, sizeof *lora->mods, "lora modules");
    if (!lora->index || !lora->mods) return -1;
    int64_t total = 0;
    for (int l = 0; l < L; l++)
        for (int k = 0; k < TN_MOD_COUNT; k++) {
            lora->index[l * TN_MOD_COUNT + k] = -1;
            if (l < lora->first_layer || !tn_module_applies(s, l, (tn_module)k)) continue;
            int want = 0;
            for (int i = 0; i < targets->n; i++) want |= !strcmp(targets->names[i], tn_module_names[k]);
            if (!want) continue;
            tn_lora_module *mod = &lora->mods[lora->n];
            mod->layer = l;
            mod->module = (tn_module)k;
            tn_module_dims(s, (tn_module)k, &mod->in, &mod->out);
            lora->index[l * TN_MOD_COUNT + k] = lora->n++;
            total += (int64_t)rank * (mod->in + mod->out);
        }
    lora->n_params = total;
    lora->params = tn_calloc((size_t)total, sizeof(float), "lora parameters");
    lora->grads = tn_calloc((size_t)total, sizeof(float), "lora gradients");
    if (!lora->params || !lora->grads) return -1;
    int64_t off = 0;
    for (int i = 0; i < lora->n; i++) {
        tn_lora_module *mod = &lora->mods[i];
        mod->a = lora->params + off, mod->da = lora->grads + off;
        off += (int64_t)rank * mod->in;
        mod->b = lora->params + off, mod->db = lora->grads + off;
        off += (int64_t)rank * mod->out;
        /* PEFT: kaiming_uniform(a = sqrt(5)) on A, i.e. U(±1/sqrt(in)); B = 0. */
        tn_rng r;
        char name[128];
        snprintf(name, sizeof name, "lora.%d.%s", mod->layer, tn_module_names[mod->module]);
        tn_rng_seed(&r, seed, tn_hash_string(name));
        float bound = 1.0f / sqrtf((float)mod->in);
        for (int64_t j = 0; j < (int64_t)rank * mod->in; j++) mod->a[j] = bound * (2.0f * tn_rng_uniform(&r) - 1.0f);
    }
    return 0;
}

void tn_lora_free(tn_lora *lora) {
    free(lora->index);
    free(lora->mods);
    free(lora->params);
    free(lora->grads);
    memset(lora, 0, sizeof *lora);
}
