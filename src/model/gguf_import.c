/* gguf_import.c - GGUF model file -> Hugging Face folder (see
 * gguf_import.h). The names, transforms and keys are the family tables of
 * model/families.c read backwards. */
#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE 700
#include "model/gguf_import.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/json.h"
#include "io/safetensors_write.h"
#include "model/spec.h"
#include "quant/dequant_gguf.h"
#include "text/gguf_tokenizer.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/platform.h"

#define NAME_MAX_LEN 256

/* One GGUF tensor on its way to the folder. */
typedef struct {
    const tn_gguf_tensor *t;
    const tn_gguf_tensor *t2; /* the second half (ffn_up) of a joined [gate; up] */
    char hf[NAME_MAX_LEN];
    tn_gguf_transform transform;
    int n_dims;
    int64_t shape[TN_GGUF_MAX_DIMS]; /* PyTorch order */
    int64_t rows, cols;              /* shape as [rows, cols] (1-D: [n, 1]) */
} mapped;

typedef struct {
    const char *path;
    tn_gguf g;
    const tn_family *family;
    char arch[64];
    cJSON *config;
    tn_spec spec;
    mapped *m;
    int n;
    const tn_gguf_tensor *rope_freqs;
    float *scratch; /* dequantized rows before a permutation */
    int64_t scratch_elems;
} importer;

/* ---- small helpers ---- */

/* The shortest decimal that reads back as the same float: GGUF keeps f32,
 * config.json the decimal the model's authors wrote (1e-05, not
 * 9.999999747378752e-06). */
static double shortest_f32(double v) {
    float f = (float)v;
    char buf[64];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if ((float)strtod(buf, NULL) == f) return strtod(buf, NULL);
    }
    return (double)f;
}

static int get_u(importer *im, const char *key, int64_t *out, int required) {
    char k[160];
    snprintf(k, sizeof k, "%s.%s", im->arch, key);
    const tn_gguf_kv *kv = tn_gguf_find(&im->g, k);
    if (kv && kv->type == TN_GGUF_ARRAY) {
        /* Per-layer values (llama.cpp allows them): all equal, or refused. */
        if (kv->elem_type == TN_GGUF_STRING || kv->n == 0) return tn_fail("%s: %s: expected an integer or a list of integers", im->path, k);
        int64_t v0 = tn_gguf_arr_int(kv, 0);
        for (uint64_t i = 1; i < kv->n; i++)
            if (tn_gguf_arr_int(kv, i) != v0)
                return tn_fail("%s: %s differs between layers (%lld in layer 0, %lld in layer %llu): tune runs layers of one shape", im->path, k,
                               (long long)v0, (long long)tn_gguf_arr_int(kv, i), (unsigned long long)i);
        *out = v0;
        return 1;
    }
    int r = tn_gguf_get_int(&im->g, k, out);
    if (r < 0) return -1;
    if (r == 0 && required) return tn_fail("%s: missing key %s (expected a %s model's metadata)", im->path, k, im->arch);
    if (r == 1 && *out < 0) return tn_fail("%s: %s is %lld (expected a size >= 0)", im->path, k, (long long)*out);
    return r;
}

static int get_f(importer *im, const char *key, double *out) {
    char k[160];
    snprintf(k, sizeof k, "%s.%s", im->arch, key);
    int r = tn_gguf_get_float(&im->g, k, out);
    if (r == 1) *out = shortest_f32(*out);
    return r;
}

/* ---- rope_freqs.weight -> Llama 3 rope scaling ---- */

/* The factors the exporter (and convert_hf_to_gguf.py) computes. */
static void llama3_factors(double theta, int dim, double factor, double lo, double hi, double orig, float *out) {
    const double lo_wl = orig / lo, hi_wl = orig / hi;
    for (int i = 0; i < dim / 2; i++) {
        float freq = 1.0f / powf((float)theta, (float)(2 * i) / (float)dim);
        double wl = 2 * 3.14159265358979323846 / (double)freq;
        double f;
        if (wl < hi_wl) f = 1;
        else if (wl > lo_wl) f = factor;
        else {
            double s = (orig / wl - lo) / (hi - lo);
            f = 1 / ((1 - s) / factor + s);
        }
        out[i] = (float)f;
    }
}

/* Recovers (factor, low, high, original max position) from the factors:
 * with u = 1 / wavelength, 1/f is the line s = a·u + b clamped to [0, 1]
 * between 1/factor and 1 (s = (orig·u − low) / (high − low)). Two factors
 * strictly inside give a and b; with fewer, Llama 3's low = 1, high = 4
 * are assumed. original_max_position_embeddings is an integer; low and
 * high follow from it. The result must give the factors back. */
static int rope_from_factors(importer *im, cJSON *config, double theta, int64_t head_dim) {
    const tn_gguf_tensor *t = im->rope_freqs;
    const int half = (int)head_dim / 2;
    if (t->type != 0 || t->n_elements != (uint64_t)half)
        return tn_fail("%s: rope_freqs.weight: %s of %llu values (expected F32 of head_dim / 2 = %d)", im->path, tn_gguf_type_name(t->type),
                       (unsigned long long)t->n_elements, half);
    float f[512], back[512];
    if (half > 512) return tn_fail("%s: head_dim %lld is too large for rope_freqs", im->path, (long long)head_dim);
    memcpy(f, t->data, (size_t)half * 4);
    double factor = 0;
    for (int i = 0; i < half; i++) {
        if (!(f[i] >= 1.0f) || !isfinite(f[i]))
            return tn_fail("%s: rope_freqs.weight[%d] is %g (expected Llama 3 scaling factors >= 1)", im->path, i, (double)f[i]);
        if (f[i] > factor) factor = f[i];
    }
    if (factor == 1.0) return 0; /* no scaling */
    double u[512], s[512];
    int inside[512], n_in = 0;
    double u_hi_min = INFINITY, u_lo_max = 0; /* the unscaled (s >= 1) and fully scaled (s <= 0) ends */
    for (int i = 0; i < half; i++) {
        float freq = 1.0f / powf((float)theta, (float)(2 * i) / (float)head_dim);
        u[i] = (double)freq / (2 * 3.14159265358979323846);
        s[i] = (1.0 / f[i] - 1.0 / factor) / (1.0 - 1.0 / factor);
        if (fabs(f[i] - 1.0) < 1e-6) u_hi_min = fmin(u_hi_min, u[i]);
        else if (fabs(f[i] - factor) < 1e-6 * factor) u_lo_max = fmax(u_lo_max, u[i]);
        else inside[n_in++] = i;
    }
    double a, b;
    if (n_in >= 2) {
        int i0 = inside[0], i1 = inside[n_in - 1];
        a = (s[i0] - s[i1]) / (u[i0] - u[i1]);
        b = s[i0] - a * u[i0];
    } else if (n_in == 1) { /* low = 1, high = 4: s = (orig·u − 1) / 3 */
        a = (3 * s[inside[0]] + 1) / u[inside[0]] / 3, b = -1.0 / 3;
    } else { /* orig between 4 / u_hi_min and 1 / u_lo_max */
        double o = isfinite(u_hi_min) && u_lo_max > 0 ? sqrt(4 / u_hi_min / u_lo_max) : isfinite(u_hi_min) ? 4 / u_hi_min : 1 / u_lo_max;
        a = o / 3, b = -1.0 / 3;
    }
    if (!(a > 0) || !(b < 0))
        return tn_fail("%s: rope_freqs.weight does not follow Llama 3's rope scaling (the only rope_freqs tune reads)", im->path);
    double orig = round(-a / b); /* low = 1 */
    if (orig < 1) orig = 1;
    double d = orig / a, lo = -b * d, hi = lo + d;
    /* Round numbers (1 and 4 for Llama 3) when they give the same factors. */
    double lo_r = fabs(lo - round(lo)) < 1e-4 * fmax(1, fabs(lo)) ? round(lo) : lo;
    double hi_r = fabs(hi - round(hi)) < 1e-4 * fmax(1, fabs(hi)) ? round(hi) : hi;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0) llama3_factors(theta, (int)head_dim, factor, lo_r, hi_r, orig, back);
        int same = 1;
        for (int i = 0; i < half && same; i++) same = fabs((double)back[i] - (double)f[i]) <= 1e-5 * f[i];
        if (pass == 0 && same) {
            lo = lo_r, hi = hi_r;
            break;
        }
        if (pass == 1) llama3_factors(theta, (int)head_dim, factor, lo, hi, orig, back);
    }
    for (int i = 0; i < half; i++)
        if (fabs((double)back[i] - (double)f[i]) > 1e-5 * f[i])
            return tn_fail("%s: rope_freqs.weight[%d] = %g, but Llama 3 scaling with factor %g, low %g, high %g, original %g gives %g: not a rope "
                           "scaling tune reads",
                           im->path, i, (double)f[i], factor, lo, hi, orig, (double)back[i]);
    cJSON *rs = cJSON_AddObjectToObject(config, "rope_scaling");
    cJSON_AddStringToObject(rs, "rope_type", "llama3");
    cJSON_AddNumberToObject(rs, "factor", shortest_f32(factor));
    cJSON_AddNumberToObject(rs, "low_freq_factor", lo);
    cJSON_AddNumberToObject(rs, "high_freq_factor", hi);
    cJSON_AddNumberToObject(rs, "original_max_position_embeddings", orig);
    return 0;
}

/* ---- config.json ---- */

static const char *hf_architecture(const char *model_type) {
    if (!strcmp(model_type, "llama")) return "LlamaForCausalLM";
    if (!strcmp(model_type, "qwen2")) return "Qwen2ForCausalLM";
    if (!strcmp(model_type, "gemma2")) return "Gemma2ForCausalLM";
    if (!strcmp(model_type, "granite")) return "GraniteForCausalLM";
    if (!strcmp(model_type, "granitemoehybrid")) return "GraniteMoeHybridForCausalLM";
    return "";
}

/* Granite 4.0-H: the layer types from attention.head_count_kv (one value
 * a layer, 0 for a Mamba2 layer), the mamba_* fields from the ssm.* keys
 * and the tensors present (biases), the experts' counts, "nope" unless
 * rope.scaling.finetuned says the attention layers use rope. */
static int hybrid_config(importer *im, cJSON *c, int64_t layers, int64_t hidden, int64_t ff, int64_t *kv_heads) {
    tn_gguf *g = &im->g;
    char k[160];
    snprintf(k, sizeof k, "%s.attention.head_count_kv", im->arch);
    const tn_gguf_kv *kv = tn_gguf_find(g, k);
    if (!kv) return tn_fail("%s: missing key %s (one value a layer, 0 for a Mamba2 layer)", im->path, k);
    if (layers > TN_MAX_LAYERS) return tn_fail("%s: %lld layers (tune reads at most %d)", im->path, (long long)layers, TN_MAX_LAYERS);
    int64_t per[TN_MAX_LAYERS];
    if (kv->type == TN_GGUF_ARRAY) {
        if (kv->elem_type == TN_GGUF_STRING || kv->n != (uint64_t)layers)
            return tn_fail("%s: %s: expected %lld integers (one a layer), got %llu values", im->path, k, (long long)layers, (unsigned long long)kv->n);
        for (int64_t l = 0; l < layers; l++) per[l] = tn_gguf_arr_int(kv, (uint64_t)l);
    } else {
        int64_t v;
        if (tn_gguf_get_int(g, k, &v) != 1) return tn_fail("%s: %s: expected an integer or a list of integers", im->path, k);
        for (int64_t l = 0; l < layers; l++) per[l] = v;
    }
    *kv_heads = 0;
    cJSON *types = cJSON_AddArrayToObject(c, "layer_types");
    int64_t first_mamba = -1;
    for (int64_t l = 0; l < layers; l++) {
        if (per[l] < 0) return tn_fail("%s: %s[%lld] is %lld (expected >= 0)", im->path, k, (long long)l, (long long)per[l]);
        if (per[l] > 0 && *kv_heads > 0 && per[l] != *kv_heads)
            return tn_fail("%s: %s differs between attention layers (%lld and %lld): tune runs attention layers of one shape", im->path, k,
                           (long long)*kv_heads, (long long)per[l]);
        if (per[l] > 0) *kv_heads = per[l];
        else if (first_mamba < 0) first_mamba = l;
        cJSON_AddItemToArray(types, cJSON_CreateString(per[l] ? "attention" : "mamba"));
    }
    if (*kv_heads == 0 && get_u(im, "attention.head_count", kv_heads, 1) < 0) return -1;
    int64_t conv = 4, state = 0, groups = 1, inner = 0, heads = 0;
    if (get_u(im, "ssm.conv_kernel", &conv, 1) < 0 || get_u(im, "ssm.state_size", &state, 1) < 0 || get_u(im, "ssm.group_count", &groups, 1) < 0 ||
        get_u(im, "ssm.inner_size", &inner, 1) < 0 || get_u(im, "ssm.time_step_rank", &heads, 1) < 0)
        return -1;
    if (conv <= 0 || state <= 0 || groups <= 0 || inner <= 0 || heads <= 0 || inner % heads)
        return tn_fail("%s: %s.ssm.* keys: conv_kernel %lld, state_size %lld, group_count %lld, inner_size %lld, time_step_rank %lld (expected "
                       "positive sizes, inner_size a multiple of time_step_rank, the Mamba2 head count)",
                       im->path, im->arch, (long long)conv, (long long)state, (long long)groups, (long long)inner, (long long)heads);
    cJSON_AddNumberToObject(c, "mamba_d_conv", (double)conv);
    cJSON_AddNumberToObject(c, "mamba_d_state", (double)state);
    cJSON_AddNumberToObject(c, "mamba_n_groups", (double)groups);
    cJSON_AddNumberToObject(c, "mamba_n_heads", (double)heads);
    cJSON_AddNumberToObject(c, "mamba_d_head", (double)(inner / heads));
    cJSON_AddNumberToObject(c, "mamba_expand", (double)inner / (double)hidden);
    char t[NAME_MAX_LEN];
    int64_t ml = first_mamba >= 0 ? first_mamba : 0;
    snprintf(t, sizeof t, "blk.%lld.ssm_conv1d.bias", (long long)ml);
    cJSON_AddBoolToObject(c, "mamba_conv_bias", first_mamba < 0 || tn_gguf_find_tensor(g, t) != NULL);
    snprintf(t, sizeof t, "blk.%lld.ssm_in.bias", (long long)ml);
    cJSON_AddBoolToObject(c, "mamba_proj_bias", first_mamba >= 0 && tn_gguf_find_tensor(g, t) != NULL);
    /* Experts; the shared MLP's size from its key, else its gate's rows. */
    int64_t experts = 0, used = 0, shared = -1;
    if (get_u(im, "expert_count", &experts, 0) < 0 || get_u(im, "expert_used_count", &used, 0) < 0 ||
        get_u(im, "expert_shared_feed_forward_length", &shared, 0) < 0)
        return -1;
    if (shared < 0) {
        const tn_gguf_tensor *gate = tn_gguf_find_tensor(g, experts > 0 ? "blk.0.ffn_gate_shexp.weight" : "blk.0.ffn_gate.weight");
        shared = gate && gate->n_dims == 2 ? gate->ne[1] : ff;
    }
    cJSON_AddNumberToObject(c, "shared_intermediate_size", (double)shared);
    cJSON_AddNumberToObject(c, "num_local_experts", (double)experts);
    cJSON_AddNumberToObject(c, "num_experts_per_tok", (double)(experts > 0 ? used : 0));
    int ft = 0;
    snprintf(k, sizeof k, "%s.rope.scaling.finetuned", im->arch);
    if (tn_gguf_get_bool(g, k, &ft) < 0) return -1;
    cJSON_AddStringToObject(c, "position_embedding_type", ft ? "rope" : "nope");
    return 0;
}

static int build_config(importer *im) {
    tn_gguf *g = &im->g;
    cJSON *c = im->config = cJSON_CreateObject();
    if (!c) return tn_fail("out of memory");
    const tn_family *f = im->family;
    cJSON *archs = cJSON_AddArrayToObject(c, "architectures");
    cJSON_AddItemToArray(archs, cJSON_CreateString(hf_architecture(f->model_type)));
    cJSON_AddStringToObject(c, "model_type", f->model_type);
    int64_t hidden, layers, ff, heads, kv_heads, ctx = 2048, head_dim, vocab = 0, rope_dim, v_dim;
    if (get_u(im, "embedding_length", &hidden, 1) < 0 || get_u(im, "block_count", &layers, 1) < 0 || get_u(im, "feed_forward_length", &ff, 1) < 0 ||
        get_u(im, "attention.head_count", &heads, 1) < 0 || get_u(im, "context_length", &ctx, 0) < 0)
        return -1;
    if (hidden <= 0 || layers <= 0 || ff <= 0 || heads <= 0)
        return tn_fail("%s: %s.embedding_length, block_count, feed_forward_length and attention.head_count must be positive (got %lld, %lld, %lld, "
                       "%lld)",
                       im->path, im->arch, (long long)hidden, (long long)layers, (long long)ff, (long long)heads);
    kv_heads = heads;
    head_dim = hidden / heads;
    int r;
    if (f->hybrid) {
        if (hybrid_config(im, c, layers, hidden, ff, &kv_heads)) return -1;
    } else if (get_u(im, "attention.head_count_kv", &kv_heads, 0) < 0)
        return -1;
    if (get_u(im, "attention.key_length", &head_dim, 0) < 0) return -1;
    v_dim = head_dim;
    rope_dim = head_dim;
    if (get_u(im, "attention.value_length", &v_dim, 0) < 0 || get_u(im, "rope.dimension_count", &rope_dim, 0) < 0) return -1;
    if (v_dim != head_dim)
        return tn_fail("%s: %s.attention.value_length %lld differs from key_length %lld (tune's attention needs them equal)", im->path, im->arch,
                       (long long)v_dim, (long long)head_dim);
    if (rope_dim != head_dim)
        return tn_fail("%s: %s.rope.dimension_count %lld differs from the head size %lld (partial rotary embeddings are not supported)", im->path,
                       im->arch, (long long)rope_dim, (long long)head_dim);
    /* The vocabulary: {arch}.vocab_size, else the embedding's rows. */
    const tn_gguf_tensor *emb = tn_gguf_find_tensor(g, "token_embd.weight");
    if (!emb || emb->n_dims != 2) return tn_fail("%s: missing tensor token_embd.weight (a 2-D [vocab, hidden] matrix)", im->path);
    if ((r = get_u(im, "vocab_size", &vocab, 0)) < 0) return -1;
    if (r == 0) vocab = emb->ne[1];
    cJSON_AddNumberToObject(c, "vocab_size", (double)vocab);
    cJSON_AddNumberToObject(c, "hidden_size", (double)hidden);
    cJSON_AddNumberToObject(c, "intermediate_size", (double)ff);
    cJSON_AddNumberToObject(c, "num_hidden_layers", (double)layers);
    cJSON_AddNumberToObject(c, "num_attention_heads", (double)heads);
    cJSON_AddNumberToObject(c, "num_key_value_heads", (double)kv_heads);
    cJSON_AddNumberToObject(c, "head_dim", (double)head_dim);
    cJSON_AddNumberToObject(c, "max_position_embeddings", (double)(ctx > 0 ? ctx : 2048));
    double eps = f->default_rms_eps, theta = 10000;
    if (get_f(im, "attention.layer_norm_rms_epsilon", &eps) < 0 || get_f(im, "rope.freq_base", &theta) < 0) return -1;
    cJSON_AddNumberToObject(c, "rms_norm_eps", eps);
    cJSON_AddNumberToObject(c, "rope_theta", theta);
    /* Biases and tied embeddings, from the tensors present. */
    int q_bias = tn_gguf_find_tensor(g, "blk.0.attn_q.bias") != NULL, o_bias = tn_gguf_find_tensor(g, "blk.0.attn_output.bias") != NULL;
    int mlp_bias = tn_gguf_find_tensor(g, "blk.0.ffn_up.bias") != NULL;
    if (!f->qkv_bias && q_bias != o_bias)
        return tn_fail("%s: q/k/v biases %s an output bias: a %s model has all four or none", im->path, q_bias ? "without" : "with", f->model_type);
    cJSON_AddBoolToObject(c, "attention_bias", f->qkv_bias ? o_bias : q_bias);
    cJSON_AddBoolToObject(c, "mlp_bias", mlp_bias);
    cJSON_AddBoolToObject(c, "tie_word_embeddings", tn_gguf_find_tensor(g, "output.weight") == NULL);
    cJSON_AddStringToObject(c, "torch_dtype", "float32");
    int64_t id;
    if (tn_gguf_get_int(g, "tokenizer.ggml.bos_token_id", &id) == 1) cJSON_AddNumberToObject(c, "bos_token_id", (double)id);
    if (tn_gguf_get_int(g, "tokenizer.ggml.eos_token_id", &id) == 1) cJSON_AddNumberToObject(c, "eos_token_id", (double)id);
    /* Rope scaling. */
    const char *st;
    size_t sn;
    char key[160];
    snprintf(key, sizeof key, "%s.rope.scaling.type", im->arch);
    if ((r = tn_gguf_get_str(g, key, &st, &sn)) < 0) return -1;
    if (r == 1 && !(sn == 4 && !memcmp(st, "none", 4))) {
        double factor = 1;
        if (!(sn == 6 && !memcmp(st, "linear", 6)))
            return tn_fail("%s: %s is '%.*s' (tune reads linear and Llama 3 rope scaling)", im->path, key, (int)(sn > 40 ? 40 : sn), st);
        if (get_f(im, "rope.scaling.factor", &factor) < 0) return -1;
        if (!(factor > 0)) return tn_fail("%s: %s.rope.scaling.factor is %g (expected > 0)", im->path, im->arch, factor);
        if (factor != 1) {
            cJSON *rs = cJSON_AddObjectToObject(c, "rope_scaling");
            cJSON_AddStringToObject(rs, "rope_type", "linear");
            cJSON_AddNumberToObject(rs, "factor", factor);
        }
    }
    if (im->rope_freqs && rope_from_factors(im, c, theta, head_dim)) return -1;
    /* The family's own numbers. */
    if (f->softcaps) {
        double attn_cap = 50, final_cap = 30;
        int64_t window = 0;
        if (get_f(im, "attn_logit_softcapping", &attn_cap) < 0 || get_f(im, "final_logit_softcapping", &final_cap) < 0 ||
            get_u(im, "attention.sliding_window", &window, 0) < 0)
            return -1;
        cJSON_AddNumberToObject(c, "attn_logit_softcapping", attn_cap);
        cJSON_AddNumberToObject(c, "final_logit_softcapping", final_cap);
        if (window > 0) cJSON_AddNumberToObject(c, "sliding_window", (double)window);
        /* llama.cpp keeps no query_pre_attn_scalar: 1/sqrt(head_dim), or
         * 1/sqrt(hidden / heads) for the 27B (46 layers). */
        cJSON_AddNumberToObject(c, "query_pre_attn_scalar", layers == 46 ? (double)(hidden / heads) : (double)head_dim);
        cJSON_AddStringToObject(c, "hidden_activation", "gelu_pytorch_tanh");
    }
    if (f->multipliers) {
        static const char *const keys[4][2] = {{"embedding_scale", "embedding_multiplier"}, {"residual_scale", "residual_multiplier"},
                                               {"attention.scale", "attention_multiplier"}, {"logit_scale", "logits_scaling"}};
        for (int k = 0; k < 4; k++) {
            double v;
            if ((r = get_f(im, keys[k][0], &v)) < 0) return -1;
            if (r == 1) cJSON_AddNumberToObject(c, keys[k][1], v);
        }
    }
    if (tn_spec_from_config(c, im->path, &im->spec)) return tn_fail_prefix("metadata as config.json");
    if (im->spec.vocab_size != emb->ne[1])
        return tn_fail("%s: token_embd.weight has %lld rows but the vocabulary holds %lld tokens", im->path, (long long)emb->ne[1],
                       (long long)im->spec.vocab_size);
    return 0;
}

/* ---- tensors ---- */

/* The HF name of GGUF tensor `name` (and its transform) from the family's
 * tables; 0 when found. */
static int hf_name_of(const tn_family *f, const char *name, int64_t n_layers, const tn_spec *spec, char *hf, tn_gguf_transform *tr) {
    for (const tn_gguf_name *e = f->gguf_global; e->hf; e++)
        if (!strcmp(e->gguf, name)) {
            snprintf(hf, NAME_MAX_LEN, "%s", e->hf);
            *tr = e->transform;
            return 0;
        }
    int layer;
    char rest[NAME_MAX_LEN];
    if (sscanf(name, "blk.%d.%255s", &layer, rest) != 2 || layer < 0 || layer >= n_layers) return -1;
    char want[NAME_MAX_LEN];
    for (const tn_gguf_name *e = f->gguf_layer; e->hf; e++) {
        if (!TN_GGUF_NAME_APPLIES(e, spec)) continue;
        snprintf(want, sizeof want, e->gguf, layer);
        if (!strcmp(want, name)) {
            snprintf(hf, NAME_MAX_LEN, e->hf, layer);
            *tr = e->transform;
            return 0;
        }
    }
    return -1;
}

/* The GGUF name of HF tensor `hf` (for messages). */
static const char *gguf_name_of(const tn_family *f, const tn_spec *spec, const char *hf, char *out) {
    for (const tn_gguf_name *e = f->gguf_global; e->hf; e++)
        if (!strcmp(e->hf, hf)) return snprintf(out, NAME_MAX_LEN, "%s", e->gguf), out;
    int layer;
    if (sscanf(hf, "model.layers.%d.", &layer) == 1) {
        char want[NAME_MAX_LEN];
        for (const tn_gguf_name *e = f->gguf_layer; e->hf; e++) {
            if (!TN_GGUF_NAME_APPLIES(e, spec)) continue;
            snprintf(want, sizeof want, e->hf, layer);
            if (!strcmp(want, hf)) return snprintf(out, NAME_MAX_LEN, e->gguf, layer), out;
        }
    }
    return snprintf(out, NAME_MAX_LEN, "(no GGUF name)"), out;
}

/* The shape of the Hugging Face tensor, from the GGUF tensor's (in
 * PyTorch order) and the transform; 0 when it fits the transform. */
static int hf_shape(importer *im, mapped *m) {
    const tn_gguf_tensor *t = m->t;
    m->n_dims = t->n_dims;
    for (int d = 0; d < t->n_dims; d++) m->shape[d] = t->ne[t->n_dims - 1 - d];
    char a[96];
    switch (m->transform) {
    case TN_GGUF_NEG_EXP:
    case TN_GGUF_COLUMN: /* [H, 1] -> [H] */
        if (m->n_dims != 2 || m->shape[1] != 1) break;
        m->n_dims = 1;
        return 0;
    case TN_GGUF_SQUEEZE: /* [C, K] -> [C, 1, K] */
        if (m->n_dims != 2) break;
        m->n_dims = 3, m->shape[2] = m->shape[1], m->shape[1] = 1;
        return 0;
    case TN_GGUF_GROUPS: /* [G, d / G] -> [d] */
        if (m->n_dims != 2) break;
        m->n_dims = 1, m->shape[0] *= m->shape[1];
        return 0;
    case TN_GGUF_FIRST_HALF: /* [..., F, C] -> [..., 2F, C] once joined with its second half */
        if (m->n_dims < 2) break;
        m->shape[m->n_dims - 2] *= 2;
        return 0;
    default: return 0;
    }
    return tn_fail("%s: tensor %s has shape %s, which is not what tune's export writes for Hugging Face's %s", im->path, t->name,
                   tn_shape_string(m->shape, m->n_dims, a, sizeof a), m->hf);
}

static int map_tensors(importer *im) {
    tn_gguf *g = &im->g;
    im->m = tn_calloc((size_t)(g->n_tensors ? g->n_tensors : 1), sizeof *im->m, "tensor map");
    if (!im->m) return -1;
    /* Pass 0 maps every tensor but the second halves of joined matrices
     * (ffn_up beside ffn_gate); pass 1 attaches those to their first half. */
    for (int pass = 0; pass < 2; pass++)
        for (int64_t i = 0; i < g->n_tensors; i++) {
            const tn_gguf_tensor *t = &g->tensors[i];
            if (!strcmp(t->name, "rope_freqs.weight")) continue;
            mapped tmp = {0}, *m = &tmp;
            if (hf_name_of(im->family, t->name, im->spec.n_layers, &im->spec, m->hf, &m->transform))
                return tn_fail("%s: tensor '%s' is not part of a %s model as tune knows it (no Hugging Face name in the family table)", im->path,
                               t->name, im->arch);
            if ((m->transform == TN_GGUF_SECOND_HALF) != (pass == 1)) continue;
            if (!tn_gguf_can_dequantize(t->type))
                return tn_fail("%s: tensor '%s' has type %s, which tune does not read (it reads %s)", im->path, t->name, tn_gguf_type_name(t->type),
                               tn_gguf_dequantize_list());
            if (pass == 1) {
                mapped *first = NULL;
                for (int k = 0; k < im->n && !first; k++)
                    if (im->m[k].transform == TN_GGUF_FIRST_HALF && !strcmp(im->m[k].hf, m->hf)) first = &im->m[k];
                if (!first) return tn_fail("%s: tensor %s has no first half (the gate rows of Hugging Face's %s)", im->path, t->name, m->hf);
                if (first->t2) return tn_fail("%s: tensor %s: Hugging Face's %s already has its second half", im->path, t->name, m->hf);
                int same = t->n_dims == first->t->n_dims;
                for (int d = 0; same && d < t->n_dims; d++) same = t->ne[d] == first->t->ne[d];
                if (!same) return tn_fail("%s: tensors %s and %s differ in shape (the halves of Hugging Face's %s)", im->path, first->t->name, t->name, m->hf);
                first->t2 = t;
                continue;
            }
            m->t = t;
            if (hf_shape(im, m)) return -1;
            m->rows = m->n_dims ? m->shape[0] : 1;
            int64_t n = 1;
            for (int d = 0; d < m->n_dims; d++) n *= m->shape[d];
            m->cols = m->rows ? n / m->rows : 1;
            if (m->n_dims == 1) m->cols = 1;
            im->m[im->n++] = *m;
        }
    for (int k = 0; k < im->n; k++)
        if (im->m[k].transform == TN_GGUF_FIRST_HALF && !im->m[k].t2)
            return tn_fail("%s: tensor %s has no second half (the up rows of Hugging Face's %s)", im->path, im->m[k].t->name, im->m[k].hf);
    return 0;
}

static const mapped *find_mapped(const importer *im, const char *hf) {
    for (int i = 0; i < im->n; i++)
        if (!strcmp(im->m[i].hf, hf)) return &im->m[i];
    return NULL;
}

/* Every tensor the family's table expects is there with its shape, and
 * every tensor present is expected. */
static int check_tensors(importer *im) {
    const tn_spec *s = &im->spec;
    unsigned char *used = calloc((size_t)im->n + 1, 1);
    if (!used) return tn_fail("out of memory");
    char name[NAME_MAX_LEN], gname[NAME_MAX_LEN], a[96], b[96];
    int rc = -1;
    for (int l = -1; l < s->n_layers; l++) {
        const tn_tensor_rule *rules = l < 0 ? s->family->global_rules : s->family->layer_rules;
        for (const tn_tensor_rule *r = rules; r->name; r++) {
            if (!tn_rule_applies(s, r, l)) continue;
            snprintf(name, sizeof name, r->name, l);
            const mapped *m = find_mapped(im, name);
            int64_t want[3];
            for (int d = 0; d < r->n_dims; d++) want[d] = tn_spec_dim(s, r->shape[d]);
            if (!m) {
                tn_fail("%s: missing tensor %s %s (Hugging Face's %s)", im->path, gguf_name_of(s->family, s, name, gname),
                        tn_shape_string(want, r->n_dims, a, sizeof a), name);
                goto done;
            }
            used[m - im->m] = 1;
            int ok = m->n_dims == r->n_dims;
            for (int d = 0; ok && d < r->n_dims; d++) ok = m->shape[d] == want[d];
            if (!ok) {
                tn_fail("%s: tensor %s has shape %s, expected %s for this model's metadata", im->path, m->t->name,
                        tn_shape_string(m->shape, m->n_dims, a, sizeof a), tn_shape_string(want, r->n_dims, b, sizeof b));
                goto done;
            }
        }
    }
    for (int i = 0; i < im->n; i++)
        if (!used[i]) {
            tn_fail("%s: tensor %s is not part of a %s model with this metadata", im->path, im->m[i].t->name, s->model_type);
            goto done;
        }
    rc = 0;
done:
    free(used);
    return rc;
}

/* The rows of a [rows, cols] matrix from interleaved pairs back to
 * rotate-half per head: the inverse of the exporter's tn_permute_rows,
 * HF row h·hd + k·hd/2 + i = GGUF row h·hd + 2i + k. */
static void unpermute_rows(const float *src, float *dst, int64_t rows, int64_t cols, int64_t heads) {
    const int64_t hd = rows / heads, half = hd / 2;
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t h = r / hd, i = (r % hd) / 2, k = r % 2;
        memcpy(dst + (h * hd + k * half + i) * cols, src + r * cols, (size_t)cols * sizeof(float));
    }
}

static void dequantize(const tn_gguf_tensor *t, float *out) {
    const int64_t ne0 = t->ne[0] ? t->ne[0] : 1;
    const int64_t rows = (int64_t)(t->n_elements / (uint64_t)ne0);
    const uint64_t row_bytes = (uint64_t)(ne0 / tn_gguf_type_block(t->type)) * (uint64_t)tn_gguf_type_bytes(t->type);
    if (t->n_elements == 0) return;
#pragma omp parallel for schedule(static) if (rows > 64 && t->n_elements > 65536)
    for (int64_t r = 0; r < rows; r++) tn_gguf_dequantize_row(t->type, (const unsigned char *)t->data + (uint64_t)r * row_bytes, out + r * ne0, ne0);
}

/* [gate; up] from two GGUF tensors of [..., F, C]: per outer block
 * (expert), the F gate rows then the F up rows. */
static int fill_joined(importer *im, const mapped *m, float *out, uint64_t n_bytes) {
    const uint64_t n = m->t->n_elements;
    if (n_bytes != 2 * n * 4) return tn_fail("internal: %s: %llu bytes for 2 x %llu values", m->hf, (unsigned long long)n_bytes, (unsigned long long)n);
    float *half = tn_malloc((size_t)(n > 0 ? 2 * n : 1) * sizeof(float), "fp32 gate / up buffer");
    if (!half) return -1;
    dequantize(m->t, half);
    dequantize(m->t2, half + n);
    const int64_t block = m->t->ne[0] * m->t->ne[1]; /* F x C values an expert */
    const int64_t outer = block ? (int64_t)n / block : 0;
    for (int64_t e = 0; e < outer; e++) {
        memcpy(out + 2 * e * block, half + e * block, (size_t)block * sizeof(float));
        memcpy(out + (2 * e + 1) * block, half + n + e * block, (size_t)block * sizeof(float));
    }
    free(half);
    return 0;
}

static int fill(void *ctx, int i, void *buf, uint64_t n_bytes) {
    importer *im = ctx;
    const mapped *m = &im->m[i];
    float *out = buf;
    if (m->t2) return fill_joined(im, m, out, n_bytes);
    if (n_bytes != m->t->n_elements * 4) return tn_fail("internal: %s: %llu bytes for %llu values", m->hf, (unsigned long long)n_bytes,
                                                       (unsigned long long)m->t->n_elements);
    switch (m->transform) {
    case TN_GGUF_PERMUTE_Q:
    case TN_GGUF_PERMUTE_K: {
        int64_t heads = m->transform == TN_GGUF_PERMUTE_Q ? im->spec.n_heads : im->spec.n_kv_heads;
        if (heads <= 0 || m->rows % (2 * heads))
            return tn_fail("%s: tensor %s: %lld rows do not split into %lld heads of pairs", im->path, m->t->name, (long long)m->rows, (long long)heads);
        dequantize(m->t, im->scratch);
        unpermute_rows(im->scratch, out, m->rows, m->cols, heads);
        break;
    }
    case TN_GGUF_PLUS_ONE: {
        dequantize(m->t, out);
        /* (1 + w) - 1 is exact for stored values in [0.5, 2] (Sterbenz), so
         * the forward's 1 + w gives back the stored value. */
        for (uint64_t k = 0; k < m->t->n_elements; k++) out[k] -= 1.0f;
        break;
    }
    case TN_GGUF_NEG_EXP: {
        /* ssm_a = -exp(A_log): A_log = log(-ssm_a) */
        dequantize(m->t, out);
        for (uint64_t k = 0; k < m->t->n_elements; k++) {
            if (!(out[k] < 0.0f) || !isfinite(out[k]))
                return tn_fail("%s: tensor %s[%llu] is %g (expected -exp(A_log) < 0)", im->path, m->t->name, (unsigned long long)k, (double)out[k]);
            out[k] = logf(-out[k]);
        }
        break;
    }
    default: dequantize(m->t, out); break; /* COLUMN, SQUEEZE, GROUPS: the same values in the same order */
    }
    return 0;
}

static int write_config(importer *im, const char *dir) {
    char *text = cJSON_Print(im->config);
    if (!text) return tn_fail("out of memory");
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = tn_write_file_atomic(path, text, strlen(text));
    free(text);
    return rc;
}

static void importer_free(importer *im) {
    tn_gguf_close(&im->g);
    cJSON_Delete(im->config);
    free(im->m);
    free(im->scratch);
}

static int open_importer(importer *im, const char *gguf_path) {
    memset(im, 0, sizeof *im);
    im->path = gguf_path;
    if (tn_gguf_open(gguf_path, &im->g)) return -1;
    tn_gguf *g = &im->g;
    const char *s;
    size_t n;
    int r = tn_gguf_get_str(g, "general.type", &s, &n);
    if (r < 0) return -1;
    if (r == 1 && n == 7 && !memcmp(s, "adapter", 7))
        return tn_fail("%s: a LoRA adapter GGUF (general.type \"adapter\"), not a model: give the base model, and the adapter as --adapter (an "
                       "adapter folder)",
                       gguf_path);
    if ((r = tn_gguf_get_str(g, "general.architecture", &s, &n)) <= 0)
        return r < 0 ? -1 : tn_fail("%s: missing key general.architecture (expected a model GGUF)", gguf_path);
    snprintf(im->arch, sizeof im->arch, "%.*s", (int)(n < 63 ? n : 63), s);
    for (int i = 0; tn_families[i]; i++)
        if (tn_families[i]->gguf_arch && !strcmp(tn_families[i]->gguf_arch, im->arch)) {
            im->family = tn_families[i];
            break;
        }
    if (!im->family || !im->family->gguf_layer)
        return tn_fail("%s: general.architecture '%s' is not supported (tune reads GGUF models of architecture llama (also Mistral), qwen2, gemma2, "
                       "granite and granitehybrid)",
                       gguf_path, im->arch);
    im->rope_freqs = tn_gguf_find_tensor(g, "rope_freqs.weight");
    if (build_config(im) || map_tensors(im) || check_tensors(im)) return -1;
    /* Scratch for the permuted matrices. */
    for (int i = 0; i < im->n; i++)
        if ((im->m[i].transform == TN_GGUF_PERMUTE_Q || im->m[i].transform == TN_GGUF_PERMUTE_K) &&
            (int64_t)im->m[i].t->n_elements > im->scratch_elems)
            im->scratch_elems = (int64_t)im->m[i].t->n_elements;
    if (im->scratch_elems && !(im->scratch = tn_malloc((size_t)im->scratch_elems * sizeof(float), "fp32 permutation buffer"))) return -1;
    return 0;
}

/* An adaptable layer matrix (a family-table rule with a LoRA name): what
 * a GGUF base folder leaves in the GGUF. */
static int is_layer_matrix(const tn_spec *s, const char *hf) {
    int layer;
    if (sscanf(hf, "model.layers.%d.", &layer) != 1) return 0;
    char want[NAME_MAX_LEN];
    for (const tn_tensor_rule *r = s->family->layer_rules; r->name; r++) {
        if (!r->lora || r->n_dims != 2) continue;
        snprintf(want, sizeof want, r->name, layer);
        if (!strcmp(want, hf)) return 1;
    }
    return 0;
}

/* The marker of a GGUF base folder: the GGUF (absolute path), the name it
 * was given by, and the bytes of the layer matrices left in it. */
static int write_marker(importer *im, const char *dir) {
    char abs[4096];
    if (!realpath(im->path, abs)) return tn_fail("%s: cannot resolve the path", im->path);
    uint64_t bytes = 0;
    for (int i = 0; i < im->n; i++)
        if (is_layer_matrix(&im->spec, im->m[i].hf)) bytes += im->m[i].t->n_bytes + (im->m[i].t2 ? im->m[i].t2->n_bytes : 0);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "gguf", abs);
    cJSON_AddStringToObject(j, "name", im->path);
    cJSON_AddNumberToObject(j, "layer_bytes", (double)bytes);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return tn_fail("out of memory");
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, TN_GGUF_BASE_MARKER);
    int rc = tn_write_file_atomic(path, text, strlen(text));
    free(text);
    return rc;
}

/* base: 0 every tensor; 1 all but the layer matrices, with the marker;
 * 2 only the 1-D tensors (norms, biases), with the marker. */
static int to_hf(const char *gguf_path, const char *out_dir, int base) {
    importer im;
    int rc = -1;
    tn_tensor_desc *d = NULL;
    if (open_importer(&im, gguf_path)) goto done;
    if (tn_make_dirs(out_dir)) goto done;
    if (base) { /* keep only what the folder holds */
        if (write_marker(&im, out_dir)) goto done;
        int n = 0;
        for (int i = 0; i < im.n; i++)
            if (!is_layer_matrix(&im.spec, im.m[i].hf) && (base == 1 || im.m[i].n_dims == 1)) im.m[n++] = im.m[i];
        im.n = n;
    }
    d = tn_calloc((size_t)(im.n ? im.n : 1), sizeof *d, "tensor list");
    if (!d) goto done;
    for (int i = 0; i < im.n; i++) {
        d[i].name = im.m[i].hf;
        d[i].dtype = TN_DTYPE_F32;
        d[i].n_dims = im.m[i].n_dims;
        for (int k = 0; k < im.m[i].n_dims; k++) d[i].shape[k] = im.m[i].shape[k];
    }
    if (tn_gguf_write_tokenizer(&im.g, out_dir) || write_config(&im, out_dir)) goto done;
    if (tn_safetensors_write(out_dir, "model", d, im.n, UINT64_MAX, "{\"format\": \"pt\"}", fill, &im)) goto done;
    rc = 0;
done:
    free(d);
    importer_free(&im);
    return rc;
}

int tn_gguf_to_hf(const char *gguf_path, const char *out_dir) { return to_hf(gguf_path, out_dir, 0); }

int tn_gguf_base_of(const char *dir, char *gguf, size_t cap, char *name, size_t name_cap, uint64_t *layer_bytes) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, TN_GGUF_BASE_MARKER);
    if (!tn_file_exists(path)) return 0;
    cJSON *j = tn_json_parse_file(path, 1 << 20);
    if (!j) return -1;
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(j, "gguf"), *n = cJSON_GetObjectItemCaseSensitive(j, "name"),
                *b = cJSON_GetObjectItemCaseSensitive(j, "layer_bytes");
    if (!cJSON_IsString(g) || !cJSON_IsString(n) || !cJSON_IsNumber(b)) {
        cJSON_Delete(j);
        return tn_fail("%s: expected {\"gguf\": path, \"name\": string, \"layer_bytes\": number}", path);
    }
    if (gguf) snprintf(gguf, cap, "%s", g->valuestring);
    if (name) snprintf(name, name_cap, "%s", n->valuestring);
    if (layer_bytes) *layer_bytes = (uint64_t)b->valuedouble;
    cJSON_Delete(j);
    return 1;
}

int tn_is_gguf_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char magic[4] = {0};
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    struct stat st;
    return n == 4 && !memcmp(magic, "GGUF", 4) && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

void tn_gguf_remove_temp(const char *dir) {
    DIR *dd = opendir(dir);
    if (dd) {
        struct dirent *e;
        char p[4400];
        while ((e = readdir(dd))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(dd);
    }
    rmdir(dir);
}

static int unpack(const char *gguf_path, char *dir, size_t cap, int base) {
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = "/tmp";
    if ((size_t)snprintf(dir, cap, "%s/tune-gguf-XXXXXX", tmp) >= cap) return tn_fail("temporary folder name too long");
    if (!mkdtemp(dir)) return tn_fail("cannot create a temporary folder under %s (set TMPDIR to a folder with room for the model in F32)", tmp);
    if (to_hf(gguf_path, dir, base)) {
        tn_gguf_remove_temp(dir);
        return -1;
    }
    return 0;
}

int tn_gguf_unpack_temp(const char *gguf_path, char *dir, size_t cap) { return unpack(gguf_path, dir, cap, 0); }

int tn_gguf_base_temp(const char *gguf_path, char *dir, size_t cap, int weights) { return unpack(gguf_path, dir, cap, weights ? 1 : 2); }
