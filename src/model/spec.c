/* spec.c - config.json -> tn_spec, parameter counts, and the check of a
 * checkpoint's tensors against its family's table. */
#include "model/spec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "model/gguf_import.h"
#include "util/error.h"
#include "util/platform.h"

/* A required positive integer field. */
static int need_int(const cJSON *c, const char *key, const char *where, int64_t *out) {
    if (tn_json_int(c, key, where, out) != 0) return -1;
    if (*out <= 0) return tn_fail("%s: field '%s': expected a positive integer, got %lld", where, key, (long long)*out);
    return 0;
}

/* An optional number; keeps *out (the default) when absent. */
static int opt_num(const cJSON *c, const char *key, const char *where, double *out) {
    return tn_json_opt_num(c, key, where, out) < 0 ? -1 : 0;
}

static int opt_int(const cJSON *c, const char *key, const char *where, int64_t *out) {
    return tn_json_opt_int(c, key, where, out) < 0 ? -1 : 0;
}

static int opt_bool(const cJSON *c, const char *key, const char *where, int *out) {
    return tn_json_opt_bool(c, key, where, out) < 0 ? -1 : 0;
}

/* Rope settings: published checkpoints write rope_theta and rope_scaling at
 * the top level; transformers 5 writes rope_parameters {rope_type,
 * rope_theta, factor, ...}. Both are read. */
static int parse_rope(const cJSON *c, const char *where, tn_spec *s) {
    s->rope_theta = 10000.0;
    if (opt_num(c, "rope_theta", where, &s->rope_theta)) return -1;
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(c, "rope_parameters");
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(c, "rope_scaling");
    if (params && !cJSON_IsNull(params)) {
        if (!cJSON_IsObject(params))
            return tn_fail("%s: field 'rope_parameters': expected an object, got %s", where, tn_json_type_name(params));
        /* Per-layer-type rope parameters ({"full_attention": {...}, ...}) are
         * not used by the supported families. */
        if (opt_num(params, "rope_theta", where, &s->rope_theta)) return -1;
        if (!scaling || cJSON_IsNull(scaling)) scaling = params;
    }
    if (s->family->hybrid) {
        int bad;
        const char *pe = tn_json_opt_str(c, "position_embedding_type", where, &bad);
        if (bad) return -1;
        if (!pe || !strcmp(pe, "nope")) {
            s->rope = TN_ROPE_NONE;
            return 0;
        }
        if (strcmp(pe, "rope")) return tn_fail("%s: field 'position_embedding_type': expected \"nope\" or \"rope\", got \"%s\"", where, pe);
    }
    s->rope = TN_ROPE_DEFAULT;
    if (!scaling || cJSON_IsNull(scaling)) return 0;
    if (!cJSON_IsObject(scaling))
        return tn_fail("%s: field 'rope_scaling': expected an object or null, got %s", where, tn_json_type_name(scaling));
    int bad;
    const char *type = tn_json_opt_str(scaling, "rope_type", where, &bad);
    if (bad) return -1;
    if (!type) type = tn_json_opt_str(scaling, "type", where, &bad);
    if (bad) return -1;
    if (!type || !strcmp(type, "default")) return 0;
    if (!strcmp(type, "llama3")) {
        s->rope = TN_ROPE_LLAMA3;
        if (tn_json_num(scaling, "factor", where, &s->rope_factor) ||
            tn_json_num(scaling, "low_freq_factor", where, &s->rope_low_freq_factor) ||
            tn_json_num(scaling, "high_freq_factor", where, &s->rope_high_freq_factor) ||
            tn_json_int(scaling, "original_max_position_embeddings", where, &s->rope_original_max_position))
            return tn_fail_prefix("rope_scaling (llama3)");
        return 0;
    }
    if (!strcmp(type, "linear")) {
        s->rope = TN_ROPE_LINEAR;
        return tn_json_num(scaling, "factor", where, &s->rope_factor);
    }
    return tn_fail("%s: rope_scaling type '%s' is not supported (expected default, llama3 or linear)", where, type);
}

static int parse_hybrid(const cJSON *c, const char *where, tn_spec *s) {
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(c, "layer_types");
    if (!types || cJSON_IsNull(types)) types = cJSON_GetObjectItemCaseSensitive(c, "layers_block_type");
    if (!cJSON_IsArray(types))
        return tn_fail("%s: missing field 'layer_types' (expected a list of \"mamba\" / \"attention\", one per layer)", where);
    if (cJSON_GetArraySize(types) != s->n_layers)
        return tn_fail("%s: field 'layer_types': %d entries for %lld layers", where, cJSON_GetArraySize(types), (long long)s->n_layers);
    int i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, types) {
        if (cJSON_IsString(t) && !strcmp(t->valuestring, "mamba")) s->layer_kind[i] = TN_LAYER_MAMBA;
        else if (cJSON_IsString(t) && !strcmp(t->valuestring, "attention")) s->layer_kind[i] = TN_LAYER_ATTENTION;
        else return tn_fail("%s: layer_types[%d]: expected \"mamba\" or \"attention\"", where, i);
        i++;
    }
    s->mamba_state = 256, s->mamba_groups = 1, s->mamba_kernel = 4;
    s->mamba_conv_bias = 1, s->mamba_proj_bias = 0;
    double expand = 2;
    if (opt_int(c, "mamba_d_state", where, &s->mamba_state) || opt_int(c, "mamba_n_groups", where, &s->mamba_groups) ||
        opt_int(c, "mamba_d_conv", where, &s->mamba_kernel) || opt_bool(c, "mamba_conv_bias", where, &s->mamba_conv_bias) ||
        opt_bool(c, "mamba_proj_bias", where, &s->mamba_proj_bias) || opt_num(c, "mamba_expand", where, &expand) ||
        opt_int(c, "mamba_n_heads", where, &s->mamba_heads) || opt_int(c, "mamba_d_head", where, &s->mamba_head_dim))
        return -1;
    int64_t inner = (int64_t)llround(expand * (double)s->hidden);
    if (s->mamba_heads <= 0) s->mamba_heads = 128;
    if (s->mamba_head_dim <= 0) s->mamba_head_dim = inner / s->mamba_heads;
    if (s->mamba_heads * s->mamba_head_dim != inner)
        return tn_fail("%s: mamba_n_heads (%lld) x mamba_d_head (%lld) must equal mamba_expand x hidden_size (%lld)",
                       where, (long long)s->mamba_heads, (long long)s->mamba_head_dim, (long long)inner);
    s->shared_intermediate = s->intermediate;
    if (opt_int(c, "shared_intermediate_size", where, &s->shared_intermediate) ||
        opt_int(c, "num_local_experts", where, &s->n_experts) ||
        opt_int(c, "num_experts_per_tok", where, &s->n_experts_per_token))
        return -1;
    if (s->n_experts > 0 && (s->n_experts_per_token <= 0 || s->n_experts_per_token > s->n_experts))
        return tn_fail("%s: num_experts_per_tok %lld must be in [1, num_local_experts = %lld]", where,
                       (long long)s->n_experts_per_token, (long long)s->n_experts);
    return 0;
}

int tn_spec_from_config(const cJSON *c, const char *where, tn_spec *s) {
    memset(s, 0, sizeof *s);
    if (!cJSON_IsObject(c)) return tn_fail("%s: expected a JSON object", where);
    const char *mt = tn_json_str(c, "model_type", where);
    if (!mt) return -1;
    s->family = tn_family_find(mt);
    if (!s->family)
        return tn_fail("%s: model_type '%s' is not supported (supported families: %s)", where, mt, tn_family_list());
    snprintf(s->model_type, sizeof s->model_type, "%s", mt);
    const tn_family *f = s->family;
    if (need_int(c, "vocab_size", where, &s->vocab_size) || need_int(c, "hidden_size", where, &s->hidden) ||
        need_int(c, "intermediate_size", where, &s->intermediate) ||
        need_int(c, "num_hidden_layers", where, &s->n_layers) ||
        need_int(c, "num_attention_heads", where, &s->n_heads))
        return -1;
    if (s->n_layers > TN_MAX_LAYERS)
        return tn_fail("%s: num_hidden_layers %lld is more than the %d supported", where, (long long)s->n_layers, TN_MAX_LAYERS);
    s->n_kv_heads = s->n_heads;
    if (opt_int(c, "num_key_value_heads", where, &s->n_kv_heads)) return -1;
    if (s->n_kv_heads <= 0 || s->n_heads % s->n_kv_heads)
        return tn_fail("%s: num_key_value_heads %lld must divide num_attention_heads %lld", where,
                       (long long)s->n_kv_heads, (long long)s->n_heads);
    s->head_dim = s->hidden / s->n_heads;
    if (opt_int(c, "head_dim", where, &s->head_dim)) return -1;
    if (s->head_dim <= 0 || (s->head_dim % 2))
        return tn_fail("%s: head_dim %lld must be positive and even", where, (long long)s->head_dim);
    s->max_position = 2048;
    if (opt_int(c, "max_position_embeddings", where, &s->max_position)) return -1;
    s->rms_eps = f->default_rms_eps;
    if (opt_num(c, "rms_norm_eps", where, &s->rms_eps)) return -1;
    s->tied_embeddings = f->default_tied;
    if (opt_bool(c, "tie_word_embeddings", where, &s->tied_embeddings)) return -1;
    if (opt_bool(c, "attention_bias", where, &s->attention_bias) || opt_bool(c, "mlp_bias", where, &s->mlp_bias)) return -1;
    /* transformers 5 writes "dtype", published checkpoints "torch_dtype". */
    s->dtype = TN_DTYPE_F32;
    int bad;
    const char *dt = tn_json_opt_str(c, "torch_dtype", where, &bad);
    if (bad) return -1;
    if (!dt) dt = tn_json_opt_str(c, "dtype", where, &bad);
    if (bad) return -1;
    if (dt) {
        int d = tn_dtype_from_torch_name(dt);
        if (d < 0) return tn_fail("%s: torch_dtype '%s' is not supported (expected bfloat16, float16 or float32)", where, dt);
        s->dtype = (tn_dtype)d;
    }
    if (parse_rope(c, where, s)) return -1;
    if (f->softcaps) {
        s->query_pre_attn_scalar = (double)s->head_dim;
        s->attn_softcap = 50.0, s->final_softcap = 30.0;
        if (opt_num(c, "query_pre_attn_scalar", where, &s->query_pre_attn_scalar) ||
            opt_num(c, "attn_logit_softcapping", where, &s->attn_softcap) ||
            opt_num(c, "final_logit_softcapping", where, &s->final_softcap))
            return -1;
    }
    if (opt_int(c, "sliding_window", where, &s->sliding_window)) return -1;
    if (f->multipliers) {
        s->embedding_multiplier = s->residual_multiplier = s->logits_scaling = 1.0;
        s->attention_multiplier = 1.0 / sqrt((double)s->head_dim);
        if (opt_num(c, "embedding_multiplier", where, &s->embedding_multiplier) ||
            opt_num(c, "residual_multiplier", where, &s->residual_multiplier) ||
            opt_num(c, "attention_multiplier", where, &s->attention_multiplier) ||
            opt_num(c, "logits_scaling", where, &s->logits_scaling))
            return -1;
    }
    if (f->hybrid) {
        if (parse_hybrid(c, where, s)) return -1;
    }
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(c, "quantization");
    if (!q || cJSON_IsNull(q)) q = cJSON_GetObjectItemCaseSensitive(c, "quantization_config");
    if (q && cJSON_IsObject(q) && cJSON_GetObjectItemCaseSensitive(q, "bits")) {
        if (tn_json_int(q, "bits", where, &s->quant_bits) || tn_json_int(q, "group_size", where, &s->quant_group_size))
            return tn_fail_prefix("quantization");
        if (s->quant_bits <= 0 || 32 % s->quant_bits || s->quant_group_size <= 0)
            return tn_fail("%s: quantization: bits %lld / group_size %lld not supported (bits must divide 32)", where,
                           (long long)s->quant_bits, (long long)s->quant_group_size);
    }
    return 0;
}

int tn_spec_load(const char *path, tn_spec *spec) {
    char file[4096];
    if (tn_is_directory(path)) snprintf(file, sizeof file, "%s/config.json", path);
    else snprintf(file, sizeof file, "%s", path);
    cJSON *c = tn_json_parse_file(file, 16u * 1024 * 1024);
    if (!c) return -1;
    int rc = tn_spec_from_config(c, file, spec);
    cJSON_Delete(c);
    if (rc == 0 && tn_is_directory(path) && tn_gguf_base_of(path, NULL, 0, NULL, 0, &spec->gguf_layer_bytes) < 0) rc = -1;
    return rc;
}

int64_t tn_spec_dim(const tn_spec *s, tn_dim d) {
    switch (d) {
    case TN_DIM_NONE: return 0;
    case TN_DIM_ONE: return 1;
    case TN_DIM_HIDDEN: return s->hidden;
    case TN_DIM_VOCAB: return s->vocab_size;
    case TN_DIM_Q: return s->n_heads * s->head_dim;
    case TN_DIM_KV: return s->n_kv_heads * s->head_dim;
    case TN_DIM_FF: return s->intermediate;
    case TN_DIM_FF2: return 2 * s->intermediate;
    case TN_DIM_SHARED_FF: return s->shared_intermediate;
    case TN_DIM_SHARED_FF2: return 2 * s->shared_intermediate;
    case TN_DIM_EXPERTS: return s->n_experts;
    case TN_DIM_MAMBA_INNER: return s->mamba_heads * s->mamba_head_dim;
    case TN_DIM_MAMBA_CONV: return s->mamba_heads * s->mamba_head_dim + 2 * s->mamba_groups * s->mamba_state;
    case TN_DIM_MAMBA_IN:
        return 2 * s->mamba_heads * s->mamba_head_dim + 2 * s->mamba_groups * s->mamba_state + s->mamba_heads;
    case TN_DIM_MAMBA_HEADS: return s->mamba_heads;
    case TN_DIM_MAMBA_KERNEL: return s->mamba_kernel;
    }
    return 0;
}

int tn_spec_layer_window(const tn_spec *s, int l) {
    if (!s->sliding_window) return 0;
    if (s->family->alternating_window) return (l % 2 == 0) ? (int)s->sliding_window : 0;
    return (int)s->sliding_window;
}

float tn_spec_attention_scale(const tn_spec *s) {
    if (s->family->multipliers) return (float)s->attention_multiplier;
    if (s->family->softcaps) return (float)(1.0 / sqrt(s->query_pre_attn_scalar));
    return (float)(1.0 / sqrt((double)s->head_dim));
}

float tn_spec_residual_multiplier(const tn_spec *s) { return s->family->multipliers ? (float)s->residual_multiplier : 1.0f; }

tn_dtype tn_spec_stored_dtype(const tn_spec *spec, const tn_safetensors *st) {
    if (!st || st->n_tensors == 0) return spec->dtype;
    uint64_t bytes[TN_DTYPE_COUNT] = {0};
    for (int i = 0; i < st->n_tensors; i++) bytes[st->tensors[i].dtype] += st->tensors[i].n_bytes;
    int best = spec->dtype;
    for (int d = 0; d < TN_DTYPE_COUNT; d++)
        if (bytes[d] > bytes[best]) best = d;
    if (best == TN_DTYPE_U32) best = spec->dtype;
    return (tn_dtype)best;
}

int tn_rule_applies(const tn_spec *s, const tn_tensor_rule *r, int layer) {
    unsigned w = r->when;
    int mamba = layer >= 0 && s->family->hybrid && s->layer_kind[layer] == TN_LAYER_MAMBA;
    if ((w & TN_WHEN_ATTENTION) && mamba) return 0;
    if ((w & TN_WHEN_MAMBA) && !mamba) return 0;
    if ((w & TN_WHEN_EXPERTS) && s->n_experts <= 0) return 0;
    if ((w & TN_WHEN_QKV_BIAS) && !(s->family->qkv_bias || s->attention_bias)) return 0;
    if ((w & TN_WHEN_O_BIAS) && !s->attention_bias) return 0;
    if ((w & TN_WHEN_MLP_BIAS) && !s->mlp_bias) return 0;
    if ((w & TN_WHEN_CONV_BIAS) && !s->mamba_conv_bias) return 0;
    if ((w & TN_WHEN_MAMBA_PROJ_BIAS) && !s->mamba_proj_bias) return 0;
    if ((w & TN_WHEN_UNTIED) && s->tied_embeddings) return 0;
    return 1;
}

static uint64_t rule_numel(const tn_spec *s, const tn_tensor_rule *r) {
    uint64_t n = 1;
    for (int i = 0; i < r->n_dims; i++) n *= (uint64_t)tn_spec_dim(s, r->shape[i]);
    return n;
}

void tn_spec_count_params(const tn_spec *s, tn_param_counts *out) {
    memset(out, 0, sizeof *out);
    uint64_t inactive = 0;
    for (const tn_tensor_rule *r = s->family->global_rules; r->name; r++) {
        if (!tn_rule_applies(s, r, -1)) continue;
        uint64_t n = rule_numel(s, r);
        out->total += n;
        if (!strcmp(r->name, "model.embed_tokens.weight")) out->embedding += n;
        if (!strcmp(r->name, "lm_head.weight")) out->lm_head = n, out->embedding += n;
        if (r->n_dims == 1) out->norms += n;
    }
    for (int l = 0; l < s->n_layers; l++)
        for (const tn_tensor_rule *r = s->family->layer_rules; r->name; r++) {
            if (!tn_rule_applies(s, r, l)) continue;
            uint64_t n = rule_numel(s, r);
            out->total += n;
            if (r->n_dims == 1) out->norms += n;
            /* Expert tensors lead with the expert axis: a token uses k of E. */
            if (r->shape[0] == TN_DIM_EXPERTS && r->n_dims == 3 && s->n_experts > 0)
                inactive += n / (uint64_t)s->n_experts * (uint64_t)(s->n_experts - s->n_experts_per_token);
        }
    out->active = out->total - inactive;
}

/* Appends one line to the report, counting the problem. */
static void report_line(char *report, int cap, int *used, int *problems, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
#include <stdarg.h>
static void report_line(char *report, int cap, int *used, int *problems, const char *fmt, ...) {
    (*problems)++;
    if (*used >= cap - 1) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(report + *used, (size_t)(cap - *used), fmt, ap);
    va_end(ap);
    if (n > 0) *used = *used + n < cap ? *used + n : cap - 1;
}

/* "<base>.scales" / "<base>.biases" of "<base>.weight". */
static const tn_tensor_info *mlx_aux(const tn_safetensors *st, const char *name, const char *what) {
    const char *w = strstr(name, ".weight");
    if (!w) return NULL;
    char aux[512];
    snprintf(aux, sizeof aux, "%.*s.%s", (int)(w - name), name, what);
    return tn_safetensors_find(st, aux);
}

int tn_mlx_layout(const tn_spec *s, const tn_safetensors *st, const tn_tensor_info *t, int *bits, int64_t *group) {
    if (!s || s->quant_bits <= 0 || t->dtype != TN_DTYPE_U32 || t->n_dims < 2) return 0;
    const tn_tensor_info *sc = mlx_aux(st, t->name, "scales");
    if (!sc || sc->n_dims != t->n_dims || sc->shape[sc->n_dims - 1] <= 0) return 0;
    const int64_t words = t->shape[t->n_dims - 1], groups = sc->shape[sc->n_dims - 1];
    const int64_t tries[4] = {s->quant_group_size, 64, 32, 128};
    for (int i = 0; i < 4; i++) {
        const int64_t cols = groups * tries[i];
        if (cols <= 0 || (32 * words) % cols) continue;
        const int64_t b = 32 * words / cols;
        if (b == 2 || b == 4 || b == 8) {
            *bits = (int)b, *group = tries[i];
            return 1;
        }
    }
    return 0;
}

static const char *alias_name(const tn_tensor_alias *a, const char *pattern, const char *hf, char *out, int cap) {
    /* the layer index of hf by the alias's Hugging Face pattern */
    int l;
    char probe[512];
    if (sscanf(hf, "model.layers.%d.", &l) != 1) return NULL;
    snprintf(probe, sizeof probe, a->hf, l);
    if (strcmp(probe, hf)) return NULL;
    snprintf(out, (size_t)cap, pattern, l);
    return out;
}

int tn_tensor_parts(const tn_spec *s, const tn_safetensors *st, const char *hf, const tn_tensor_info **parts) {
    const tn_tensor_info *t = tn_safetensors_find(st, hf);
    if (t) {
        parts[0] = t;
        return 1;
    }
    int n = 0;
    if (!s) return 0;
    for (const tn_tensor_alias *a = s->family->aliases; a && a->hf; a++) {
        char alt[512];
        if (!alias_name(a, a->alt, hf, alt, sizeof alt)) continue;
        const tn_tensor_info *x = tn_safetensors_find(st, alt);
        if (!x || a->part != n || n >= 4) return 0;
        parts[n++] = x;
        if (n == a->parts) return n;
    }
    return 0;
}

int tn_alias_of(const tn_spec *s, const char *name, char *hf, int cap, int *part) {
    int l;
    if (!s || sscanf(name, "model.layers.%d.", &l) != 1) return 0;
    for (const tn_tensor_alias *a = s->family->aliases; a && a->hf; a++) {
        char alt[512];
        snprintf(alt, sizeof alt, a->alt, l);
        if (strcmp(alt, name)) continue;
        snprintf(hf, (size_t)cap, a->hf, l);
        *part = a->part;
        return 1;
    }
    return 0;
}

/* One stored tensor against its expected shape `want`. A quantized (MLX
 * affine) Linear: weight U32 [.., out, in*bits/32], scales and biases
 * [.., out, in/group]. */
static void check_stored(const tn_spec *s, const tn_tensor_rule *r, const int64_t *want, const tn_tensor_info *t, const tn_safetensors *st,
                         unsigned char *seen, char *report, int cap, int *used, int *problems) {
    const char *name = t->name;
    const int nd = r->n_dims;
    char a[96], b[96];
    seen[t - st->tensors] = 1;
    int bits = 0;
    int64_t group = 0;
    if (nd >= 2 && t->dtype == TN_DTYPE_U32 && s->quant_bits > 0) {
        if (!tn_mlx_layout(s, st, t, &bits, &group)) bits = (int)s->quant_bits, group = s->quant_group_size;
        int64_t qshape[3];
        for (int i = 0; i < nd; i++) qshape[i] = want[i];
        qshape[nd - 1] = want[nd - 1] * bits / 32;
        int ok = t->n_dims == nd;
        for (int i = 0; ok && i < nd; i++) ok = t->shape[i] == qshape[i];
        if (!ok)
            report_line(report, cap, used, problems, "tensor %s has shape %s, expected %s (%d-bit packed)\n", name,
                        tn_shape_string(t->shape, t->n_dims, a, sizeof a), tn_shape_string(qshape, nd, b, sizeof b), bits);
        const char *base_end = strstr(name, ".weight");
        if (!base_end) return;
        for (int k = 0; k < 2; k++) {
            char aux[512];
            snprintf(aux, sizeof aux, "%.*s.%s", (int)(base_end - name), name, k ? "biases" : "scales");
            int64_t ashape[3];
            for (int i = 0; i < nd; i++) ashape[i] = want[i];
            ashape[nd - 1] = want[nd - 1] / group;
            const tn_tensor_info *x = tn_safetensors_find(st, aux);
            if (!x) report_line(report, cap, used, problems, "missing tensor %s %s\n", aux, tn_shape_string(ashape, nd, a, sizeof a));
            else {
                seen[x - st->tensors] = 1;
                int aok = x->n_dims == nd;
                for (int i = 0; aok && i < nd; i++) aok = x->shape[i] == ashape[i];
                if (!aok)
                    report_line(report, cap, used, problems, "tensor %s has shape %s, expected %s\n", aux,
                                tn_shape_string(x->shape, x->n_dims, a, sizeof a), tn_shape_string(ashape, nd, b, sizeof b));
            }
        }
        return;
    }
    int ok = t->n_dims == nd;
    for (int i = 0; ok && i < nd; i++) ok = t->shape[i] == want[i];
    /* MLX stores the Mamba2 conv1d weight as [C, K, 1]; the bytes are the same. */
    if (!ok && nd == 3 && r->shape[1] == TN_DIM_ONE && t->n_dims == 3)
        ok = t->shape[0] == want[0] && t->shape[1] == want[2] && t->shape[2] == 1;
    if (!ok)
        report_line(report, cap, used, problems, "tensor %s has shape %s, expected %s\n", name,
                    tn_shape_string(t->shape, t->n_dims, a, sizeof a), tn_shape_string(want, nd, b, sizeof b));
    else if (t->dtype != TN_DTYPE_F32 && t->dtype != TN_DTYPE_F16 && t->dtype != TN_DTYPE_BF16)
        report_line(report, cap, used, problems, "tensor %s has dtype %s, expected F32, F16 or BF16\n", name, tn_dtype_name(t->dtype));
}

/* Tensor `name` of rule r: stored under its name or as the family's
 * aliases (each part holding its share of the rows). */
static int check_one(const tn_spec *s, const tn_tensor_rule *r, const char *name, const tn_safetensors *st,
                     unsigned char *seen, char *report, int cap, int *used, int *problems) {
    int64_t want[3];
    for (int i = 0; i < r->n_dims; i++) want[i] = tn_spec_dim(s, r->shape[i]);
    const tn_tensor_info *parts[4];
    int n = tn_tensor_parts(s, st, name, parts);
    char a[96];
    if (!n) {
        report_line(report, cap, used, problems, "missing tensor %s %s\n", name, tn_shape_string(want, r->n_dims, a, sizeof a));
        return 0;
    }
    if (n > 1 && r->n_dims >= 2) want[r->n_dims - 2] /= n;
    for (int k = 0; k < n; k++) check_stored(s, r, want, parts[k], st, seen, report, cap, used, problems);
    return 0;
}

int tn_spec_check_tensors(const tn_spec *s, const tn_safetensors *st, char *report, int cap) {
    int used = 0, problems = 0;
    if (cap > 0) report[0] = 0;
    unsigned char *seen = calloc((size_t)st->n_tensors + 1, 1);
    if (!seen) {
        report_line(report, cap, &used, &problems, "out of memory\n");
        return problems;
    }
    char name[512];
    for (const tn_tensor_rule *r = s->family->global_rules; r->name; r++)
        if (tn_rule_applies(s, r, -1)) check_one(s, r, r->name, st, seen, report, cap, &used, &problems);
    for (int l = 0; l < s->n_layers; l++)
        for (const tn_tensor_rule *r = s->family->layer_rules; r->name; r++) {
            if (!tn_rule_applies(s, r, l)) continue;
            snprintf(name, sizeof name, r->name, l);
            check_one(s, r, name, st, seen, report, cap, &used, &problems);
        }
    for (int i = 0; i < st->n_tensors; i++) {
        if (seen[i]) continue;
        /* A tied checkpoint may still carry lm_head.weight (a copy). */
        if (s->tied_embeddings && !strcmp(st->tensors[i].name, "lm_head.weight")) continue;
        report_line(report, cap, &used, &problems, "unexpected tensor %s (not part of a %s model with this config)\n",
                    st->tensors[i].name, s->model_type);
    }
    free(seen);
    return problems;
}

/* Each LoRA target module the family has, in table order. */
static int family_targets(const tn_family *f, const char **names, int cap) {
    int n = 0;
    for (const tn_tensor_rule *r = f->layer_rules; r->name; r++) {
        if (!r->lora) continue;
        int dup = 0;
        for (int i = 0; i < n; i++) dup |= !strcmp(names[i], r->lora);
        if (!dup && n < cap) names[n++] = r->lora;
    }
    return n;
}

int tn_targets_parse(const tn_spec *s, const char *list, tn_targets *out) {
    const char *avail[TN_MAX_TARGETS];
    int n_avail = family_targets(s->family, avail, TN_MAX_TARGETS);
    out->n = 0;
    if (!list || !*list || !strcmp(list, "all")) {
        for (int i = 0; i < n_avail; i++) out->names[out->n++] = avail[i];
        return 0;
    }
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int found = -1;
        for (int i = 0; i < n_avail; i++)
            if (strlen(avail[i]) == len && !strncmp(avail[i], p, len)) found = i;
        if (found < 0) {
            char known[512] = "";
            for (int i = 0; i < n_avail; i++) {
                strcat(known, i ? ", " : "");
                strcat(known, avail[i]);
            }
            return tn_fail("--targets: '%.*s' is not a module of %s models (expected some of: %s)", (int)len, p,
                           s->model_type, known);
        }
        int dup = 0;
        for (int i = 0; i < out->n; i++) dup |= out->names[i] == avail[found];
        if (!dup) out->names[out->n++] = avail[found];
        p += len;
        if (*p == ',') p++;
    }
    return 0;
}

uint64_t tn_lora_param_count(const tn_spec *s, const tn_targets *t, int rank, int layers) {
    uint64_t n = 0;
    int first = (layers < 0 || layers >= s->n_layers) ? 0 : (int)s->n_layers - layers;
    for (int l = first; l < s->n_layers; l++)
        for (const tn_tensor_rule *r = s->family->layer_rules; r->name; r++) {
            if (!r->lora || !tn_rule_applies(s, r, l)) continue;
            for (int i = 0; i < t->n; i++)
                if (!strcmp(t->names[i], r->lora))
                    n += (uint64_t)rank * (uint64_t)(tn_spec_dim(s, r->shape[r->in_dim]) + tn_spec_dim(s, r->shape[r->out_dim]));
        }
    return n;
}
