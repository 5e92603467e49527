/* plan.c - buffer by buffer sizes of inference, LoRA, QLoRA and full
 * fine-tuning runs on the CPU backend (fp32 compute). docs/memory-plan.md
 * gives the reasoning for each buffer.
 *
 * Symbols: T = batch x seq tokens, H = hidden, Q = heads x head_dim,
 * KV = kv heads x head_dim, F = intermediate, V = vocab, L = layers. */
#include "plan/plan.h"

#include "quant/nf4.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const kind_names[TN_PLAN_COUNT] = {"inference", "lora", "qlora", "full"};
const char *tn_plan_kind_name(tn_plan_kind k) { return kind_names[k]; }

const char *tn_quant_name(tn_quant q) {
    switch (q) {
    case TN_QUANT_NONE: return "none";
    case TN_QUANT_NF4: return "nf4";
    case TN_QUANT_Q4_K: return "q4_k";
    case TN_QUANT_Q8_0: return "q8_0";
    }
    return "?";
}

int tn_quant_from_name(const char *name) {
    if (!strcmp(name, "nf4")) return TN_QUANT_NF4;
    if (!strcmp(name, "q4_k")) return TN_QUANT_Q4_K;
    if (!strcmp(name, "q8_0")) return TN_QUANT_Q8_0;
    return -1;
}

/* NF4 (QLoRA paper): 4 bits a weight, one 8-bit absmax per 64 weights, one
 * fp32 scale per 256 absmaxes (double quantization). Q4_K: 144 bytes per 256
 * weights. Q8_0: 34 bytes per 32. */
uint64_t tn_quant_bytes(tn_quant q, uint64_t n) {
    switch (q) {
    case TN_QUANT_NONE: return n * 4;
    case TN_QUANT_NF4: return tn_nf4_bytes((int64_t)n);
    case TN_QUANT_Q4_K: return (n + 255) / 256 * 144;
    case TN_QUANT_Q8_0: return (n + 31) / 32 * 34;
    }
    return n * 4;
}

void tn_plan_default_settings(const tn_spec *spec, tn_plan_settings *s) {
    memset(s, 0, sizeof *s);
    s->seq = 2048;
    s->batch = 1;
    s->rank = 16;
    s->layers = -1;
    s->qlora = TN_QUANT_NF4;
    tn_targets_parse(spec, NULL, &s->targets);
}

static void add(tn_plan *p, const char *name, uint64_t bytes, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void add(tn_plan *p, const char *name, uint64_t bytes, const char *fmt, ...) {
    if (p->n >= TN_PLAN_MAX_BUFFERS || bytes == 0) return;
    tn_plan_buffer *b = &p->buffers[p->n++];
    snprintf(b->name, sizeof b->name, "%s", name);
    b->bytes = bytes;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->detail, sizeof b->detail, fmt, ap);
    va_end(ap);
    p->total += bytes;
}

int64_t tn_plan_loss_chunk_rows(const tn_spec *spec, int64_t tokens) {
    /* Keep one fp32 chunk of logits near 128 MiB: 256 rows for a 128k
     * vocabulary, 128 for 256k; never more rows than there are tokens. */
    int64_t rows = (128ll << 20) / (4 * spec->vocab_size);
    if (rows < 16) rows = 16;
    if (rows > tokens) rows = tokens;
    return rows;
}

static int layer_adapted(const tn_plan_settings *s, const tn_spec *spec, int layer) {
    return s->layers < 0 || layer >= spec->n_layers - s->layers;
}

static int is_target(const tn_plan_settings *s, const char *module) {
    for (int i = 0; i < s->targets.n; i++)
        if (!strcmp(s->targets.names[i], module)) return 1;
    return 0;
}

int tn_plan_activation_layout(const tn_spec *spec, const tn_plan_settings *s, int layer, tn_slot *slots) {
    uint64_t T = (uint64_t)(s->batch * s->seq);
    uint64_t H = (uint64_t)spec->hidden;
    int n = 0;
#define SLOT(sid, nm, el) (slots[n].id = (sid), slots[n].name = (nm), slots[n].elements = (el), n++)
    /* Norm outputs and the gated activation are not saved: backward rebuilds
     * them from the saved input and rstd (O(T x H)) and from gate and up
     * (O(T x F)), which costs little next to the matrix products. */
    SLOT(TN_SLOT_X, "x (layer input)", T * H);
    SLOT(TN_SLOT_NORM1_RSTD, "norm1 rstd", T);
    int mamba = spec->family->hybrid && spec->layer_kind[layer] == TN_LAYER_MAMBA;
    if (mamba) {
        uint64_t inner = (uint64_t)tn_spec_dim(spec, TN_DIM_MAMBA_INNER);
        uint64_t conv = (uint64_t)tn_spec_dim(spec, TN_DIM_MAMBA_CONV);
        uint64_t heads = (uint64_t)spec->mamba_heads;
        uint64_t chunks = ((uint64_t)s->seq + 255) / 256;
        SLOT(TN_SLOT_MAMBA_IN, "in_proj out (z, xBC, dt)", T * (uint64_t)tn_spec_dim(spec, TN_DIM_MAMBA_IN));
        SLOT(TN_SLOT_MAMBA_CONV, "conv1d out", T * conv);
        SLOT(TN_SLOT_MAMBA_DT, "dt (softplus)", T * heads);
        SLOT(TN_SLOT_MAMBA_STATES, "ssm chunk states", (uint64_t)s->batch * chunks * heads * (uint64_t)spec->mamba_head_dim * (uint64_t)spec->mamba_state);
        SLOT(TN_SLOT_MAMBA_SCAN, "scan out", T * inner);
        SLOT(TN_SLOT_MAMBA_NORM, "gated norm out", T * inner);
        SLOT(TN_SLOT_MAMBA_NORM_RSTD, "gated norm rstd", T * (uint64_t)spec->mamba_groups);
    } else {
        uint64_t Q = (uint64_t)(spec->n_heads * spec->head_dim), KV = (uint64_t)(spec->n_kv_heads * spec->head_dim);
        SLOT(TN_SLOT_Q, "q (roped)", T * Q);
        SLOT(TN_SLOT_K, "k (roped)", T * KV);
        SLOT(TN_SLOT_V, "v", T * KV);
        SLOT(TN_SLOT_LSE, "attention logsumexp", T * (uint64_t)spec->n_heads);
        SLOT(TN_SLOT_ATT, "attention out", T * Q);
    }
    if (spec->family->sandwich_norms) {
        SLOT(TN_SLOT_MIXER_BRANCH, "mixer branch (pre post-norm)", T * H);
        SLOT(TN_SLOT_MIXER_POST_RSTD, "post-mixer norm rstd", T);
    }
    SLOT(TN_SLOT_X_MID, "x mid (after mixer residual)", T * H);
    SLOT(TN_SLOT_NORM2_RSTD, "norm2 rstd", T);
    uint64_t F = (uint64_t)(spec->family->hybrid ? spec->shared_intermediate : spec->intermediate);
    SLOT(TN_SLOT_GATE, "mlp gate", T * F);
    SLOT(TN_SLOT_UP, "mlp up", T * F);
    if (spec->n_experts > 0) {
        uint64_t k = (uint64_t)spec->n_experts_per_token, FE = (uint64_t)spec->intermediate;
        SLOT(TN_SLOT_ROUTER, "router probabilities", T * (uint64_t)spec->n_experts);
        SLOT(TN_SLOT_EXPERTS_GATE_UP, "experts gate and up", T * k * 2 * FE);
        SLOT(TN_SLOT_EXPERTS_OUT, "experts out", T * k * H);
    }
    if (spec->family->sandwich_norms) {
        SLOT(TN_SLOT_MLP_BRANCH, "mlp branch (pre post-norm)", T * H);
        SLOT(TN_SLOT_MLP_POST_RSTD, "post-mlp norm rstd", T);
    }
    /* LoRA: x·A of every adapted module, needed for dB. */
    if (s->rank > 0 && layer_adapted(s, spec, layer)) {
        uint64_t r = 0;
        for (const tn_tensor_rule *rule = spec->family->layer_rules; rule->name; rule++)
            if (rule->lora && tn_rule_applies(spec, rule, layer) && is_target(s, rule->lora)) r += (uint64_t)s->rank;
        if (r) SLOT(TN_SLOT_LORA_XA, "lora x·A (all targets)", T * r);
    }
#undef SLOT
    return n;
}

static uint64_t layer_saved_bytes(const tn_spec *spec, const tn_plan_settings *s, int layer) {
    tn_slot slots[TN_MAX_SLOTS];
    int n = tn_plan_activation_layout(spec, s, layer, slots);
    uint64_t el = 0;
    for (int i = 0; i < n; i++) el += slots[i].elements;
    return el * 4;
}

/* Bytes of the linear (2-D and expert) weights of the layers, and of the
 * largest single layer and matrix, for conversion workspaces. */
typedef struct {
    uint64_t layer_linear, embed, lm_head, norms_and_small, largest_layer, largest_matrix;
} weight_census;

static void census(const tn_spec *spec, weight_census *w) {
    memset(w, 0, sizeof *w);
    for (const tn_tensor_rule *r = spec->family->global_rules; r->name; r++) {
        if (!tn_rule_applies(spec, r, -1)) continue;
        uint64_t n = 1;
        for (int i = 0; i < r->n_dims; i++) n *= (uint64_t)tn_spec_dim(spec, r->shape[i]);
        if (!strcmp(r->name, "model.embed_tokens.weight")) w->embed = n;
        else if (!strcmp(r->name, "lm_head.weight")) w->lm_head = n;
        else w->norms_and_small += n;
    }
    for (int l = 0; l < spec->n_layers; l++) {
        uint64_t layer = 0;
        for (const tn_tensor_rule *r = spec->family->layer_rules; r->name; r++) {
            if (!tn_rule_applies(spec, r, l)) continue;
            uint64_t n = 1;
            for (int i = 0; i < r->n_dims; i++) n *= (uint64_t)tn_spec_dim(spec, r->shape[i]);
            if (r->n_dims >= 2 && n > 4096) {
                w->layer_linear += n;
                /* the layer workspace holds the adaptable matrices (Granite
                 * 4.0-H's experts go through their own, one expert) */
                if (r->lora || !spec->family->hybrid) layer += n;
                if (n > w->largest_matrix) w->largest_matrix = n;
            } else {
                w->norms_and_small += n;
            }
        }
        if (layer > w->largest_layer) w->largest_layer = layer;
    }
}

/* Granite 4.0-H: the tensors the trainer keeps in fp32 (the Mamba mixer's
 * conv1d, dt_bias, A_log, D and norm, the router: src/train/model.c's
 * load_hybrid), the experts ([E, 2FE, H] and [E, H, FE] per MoE layer,
 * converted or dequantized one expert at a time into a workspace of
 * 3·FE·H), and the experts' bytes quantized per expert matrix. */
static int expert_rule(const tn_tensor_rule *r) { return r->n_dims == 3 && r->shape[0] == TN_DIM_EXPERTS; }
static int hybrid_fp32_rule(const tn_tensor_rule *r) {
    return !r->lora && ((strstr(r->name, ".mamba.") && !strstr(r->name, "_proj.")) || strstr(r->name, ".router."));
}

typedef struct {
    uint64_t fp32_small, experts, expert_ws, experts_quantized;
} hybrid_census;

static void census_hybrid(const tn_spec *spec, tn_quant q, hybrid_census *h) {
    memset(h, 0, sizeof *h);
    if (!spec->family->hybrid) return;
    uint64_t H = (uint64_t)spec->hidden, FE = (uint64_t)spec->intermediate, E = (uint64_t)(spec->n_experts > 0 ? spec->n_experts : 0);
    for (int l = 0; l < spec->n_layers; l++)
        for (const tn_tensor_rule *r = spec->family->layer_rules; r->name; r++) {
            if (!tn_rule_applies(spec, r, l)) continue;
            uint64_t n = 1;
            for (int i = 0; i < r->n_dims; i++) n *= (uint64_t)tn_spec_dim(spec, r->shape[i]);
            if (hybrid_fp32_rule(r)) h->fp32_small += n;
            if (expert_rule(r)) {
                h->experts += n;
                int in = r->shape[1] == TN_DIM_FF2; /* input_linear [E, 2FE, H], output_linear [E, H, FE] */
                h->experts_quantized += E * tn_quant_bytes(q, in ? 2 * FE * H : H * FE);
            }
        }
    if (E) h->expert_ws = 3 * FE * H;
}

void tn_plan_work_elements(const tn_spec *spec, const tn_plan_settings *s, tn_plan_work *w) {
    uint64_t T = (uint64_t)(s->batch * s->seq), H = (uint64_t)spec->hidden, V = (uint64_t)spec->vocab_size;
    uint64_t Q = (uint64_t)(spec->n_heads * spec->head_dim), KV = (uint64_t)(spec->n_kv_heads * spec->head_dim);
    uint64_t F = (uint64_t)(spec->family->hybrid ? spec->shared_intermediate : spec->intermediate);
    w->widest = 2 * F > 2 * Q + 2 * KV ? 2 * F : 2 * Q + 2 * KV;
    w->rebuilt = F > H ? F : H;
    if (spec->family->hybrid) {
        /* Mamba backward: d(in_proj out) [T, W], d(conv out) [T, C], d(dt)
         * [T, heads] and d(scan out) [T, d_inner]; the shared MLP's d(h),
         * d(gate | up) [T, 3F]. The rebuilt buffer also holds d(norm out)
         * [T, d_inner]. */
        uint64_t inner = (uint64_t)tn_spec_dim(spec, TN_DIM_MAMBA_INNER);
        uint64_t in = (uint64_t)tn_spec_dim(spec, TN_DIM_MAMBA_IN) + (uint64_t)tn_spec_dim(spec, TN_DIM_MAMBA_CONV) +
                      (uint64_t)spec->mamba_heads + inner;
        if (in > w->widest) w->widest = in;
        if (3 * F > w->widest) w->widest = 3 * F;
        if (inner > w->rebuilt) w->rebuilt = inner;
        /* The experts (train/hybrid.c, tn_hybrid_moe_forward and its
         * backward) work in the widest buffer, grouped by expert: at most
         * T rows of [2H + 6FE]. */
        uint64_t moe = spec->n_experts > 0 ? 2 * H + 6 * (uint64_t)spec->intermediate : 0;
        if (moe > w->widest) w->widest = moe;
    }
    w->final_norm = T * (2 * H + 1);
    w->logits = (uint64_t)tn_plan_loss_chunk_rows(spec, (int64_t)T) * V;
    w->workspace = T * (3 * H + w->rebuilt + w->widest + (uint64_t)(s->rank > 0 ? s->rank : 0));
    if (s->rank > 0 && s->dropout > 0) w->workspace += T * w->rebuilt;
}

void tn_plan_make(const tn_spec *spec, tn_dtype stored, const tn_plan_settings *s, tn_plan_kind kind, tn_plan *p) {
    memset(p, 0, sizeof *p);
    p->kind = kind;
    weight_census w;
    census(spec, &w);
    hybrid_census hyb;
    census_hybrid(spec, s->qlora, &hyb);
    uint64_t esz = tn_dtype_size(stored);
    const char *dn = tn_dtype_name(stored);
    uint64_t T = (uint64_t)(s->batch * s->seq), H = (uint64_t)spec->hidden, V = (uint64_t)spec->vocab_size;
    uint64_t Q = (uint64_t)(spec->n_heads * spec->head_dim), KV = (uint64_t)(spec->n_kv_heads * spec->head_dim);
    uint64_t F = (uint64_t)(spec->family->hybrid ? spec->shared_intermediate : spec->intermediate);
    uint64_t all_weights = w.layer_linear + w.embed + w.lm_head + w.norms_and_small;
    int L = (int)spec->n_layers;

    /* Weights. */
    if (kind == TN_PLAN_FULL) {
        add(p, "weights (fp32 master)", all_weights * 4, "%llu parameters x 4 B", (unsigned long long)all_weights);
    } else if (kind == TN_PLAN_QLORA) {
        /* Each layer matrix quantized on its own (NF4 blocks of 64 with
         * double-quantized scales; ggml blocks along the rows). */
        uint64_t qb = hyb.experts_quantized, qn = hyb.experts;
        for (int l = 0; l < L; l++)
            for (const tn_tensor_rule *r = spec->family->layer_rules; r->name; r++) {
                if (!tn_rule_applies(spec, r, l) || r->n_dims < 2) continue;
                /* Granite 4.0-H: the adaptable matrices here, the experts
                 * per expert matrix (above), conv1d and router in fp32 */
                if (spec->family->hybrid && !r->lora) continue;
                uint64_t n = 1;
                for (int i = 0; i < r->n_dims; i++) n *= (uint64_t)tn_spec_dim(spec, r->shape[i]);
                if (n <= 4096 && !spec->family->hybrid) continue;
                qb += tn_quant_bytes(s->qlora, n), qn += n;
            }
        add(p, "weights: layers (quantized)", qb, "%llu linear weights in %s", (unsigned long long)(spec->family->hybrid ? qn : w.layer_linear),
            tn_quant_name(s->qlora));
        add(p, "weights: embeddings and head", (w.embed + w.lm_head) * esz, "%llu parameters kept in %s", (unsigned long long)(w.embed + w.lm_head), dn);
        add(p, "weights: norms and small", w.norms_and_small * 4, "%llu parameters in fp32", (unsigned long long)w.norms_and_small);
        add(p, "fp32 layer workspace", w.largest_layer * 4, "one layer's matrices dequantized to fp32 (%llu weights)", (unsigned long long)w.largest_layer);
    } else if (spec->gguf_layer_bytes > 0 && kind != TN_PLAN_QLORA) {
        /* A GGUF base: the layer matrices in the file's own blocks (mapped),
         * the rest in fp32 once. */
        add(p, "weights: layers (GGUF blocks)", spec->gguf_layer_bytes, "%llu linear weights in the GGUF's own types (mmap'd)",
            (unsigned long long)w.layer_linear);
        add(p, "weights: embeddings and head", (w.embed + w.lm_head) * 4, "%llu parameters dequantized to fp32 once", (unsigned long long)(w.embed + w.lm_head));
        add(p, "weights: norms and small", w.norms_and_small * 4, "%llu parameters in fp32", (unsigned long long)w.norms_and_small);
        add(p, "fp32 layer workspace", w.largest_layer * 4, "one layer's matrices dequantized to fp32 (%llu weights)", (unsigned long long)w.largest_layer);
    } else if (spec->quant_bits > 0) {
        /* An MLX-quantized checkpoint as it is: the linear weights and the
         * embeddings packed (bits each) with a scale and a bias per group in
         * the float dtype; unpacked a layer at a time. */
        uint64_t packed = w.layer_linear + w.embed + w.lm_head;
        uint64_t bytes = packed * (uint64_t)spec->quant_bits / 8 + packed / (uint64_t)spec->quant_group_size * 2 * esz +
                         w.norms_and_small * esz;
        add(p, "weights (MLX packed)", bytes, "%llu weights in %lld bits, groups of %lld with %s scale and bias (mmap'd)",
            (unsigned long long)packed, (long long)spec->quant_bits, (long long)spec->quant_group_size, dn);
        add(p, "fp32 layer workspace", w.largest_layer * 4, "one layer's matrices unpacked to fp32 (%llu weights)", (unsigned long long)w.largest_layer);
    } else {
        add(p, "weights", all_weights * esz, "%llu parameters x %llu B (%s, mmap'd)", (unsigned long long)all_weights, (unsigned long long)esz, dn);
        if (stored != TN_DTYPE_F32)
            add(p, "fp32 layer workspace", w.largest_layer * 4, "one layer's matrices converted from %s to fp32 (%llu weights)", dn, (unsigned long long)w.largest_layer);
    }
    /* Granite 4.0-H: the Mamba tensors and the router in fp32 (views into an
     * F32 mapping, priced with the weights; else converted once); the
     * experts stay in the checkpoint's dtype (or quantized) and go through
     * a workspace of one expert in fp32 (src/train/model.c). */
    if (kind != TN_PLAN_FULL && spec->family->hybrid) {
        if (stored != TN_DTYPE_F32 || kind == TN_PLAN_QLORA)
            add(p, "fp32 Mamba tensors, router", hyb.fp32_small * 4, "%llu weights (conv1d, dt_bias, A_log, D, norm, router) in fp32",
                (unsigned long long)hyb.fp32_small);
        if (hyb.expert_ws && (stored != TN_DTYPE_F32 || kind == TN_PLAN_QLORA))
            add(p, "fp32 expert workspace", hyb.expert_ws * 4, "one expert's input and output matrices converted to fp32 where used (%llu weights)",
                (unsigned long long)hyb.expert_ws);
    }
    /* The output head ([V, H], lm_head or the tied embeddings) is used by
     * every logits chunk: kept converted to fp32 once. */
    if (kind != TN_PLAN_FULL && stored != TN_DTYPE_F32) {
        uint64_t head = w.lm_head ? w.lm_head : w.embed;
        add(p, "fp32 output head", head * 4, "%s [%llu, %llu] converted once", w.lm_head ? "lm_head" : "tied embeddings", (unsigned long long)V, (unsigned long long)H);
    }

    if (kind == TN_PLAN_INFERENCE) {
        /* KV cache for attention layers, recurrent state for Mamba2 layers,
         * at the full sequence length for the whole batch. */
        int attn = 0, mamba = 0;
        for (int l = 0; l < L; l++) (spec->family->hybrid && spec->layer_kind[l] == TN_LAYER_MAMBA) ? mamba++ : attn++;
        add(p, "kv cache", 2ull * (uint64_t)attn * T * KV * 4, "2 x %d attention layers x %llu tokens x %llu x 4 B", attn, (unsigned long long)T, (unsigned long long)KV);
        if (mamba) {
            uint64_t conv = (uint64_t)tn_spec_dim(spec, TN_DIM_MAMBA_CONV), inner = (uint64_t)tn_spec_dim(spec, TN_DIM_MAMBA_INNER);
            uint64_t per = conv * (uint64_t)(spec->mamba_kernel - 1) + inner * (uint64_t)spec->mamba_state;
            add(p, "recurrent state", (uint64_t)mamba * (uint64_t)s->batch * per * 4, "%d Mamba2 layers: conv window and SSM state", mamba);
        }
        uint64_t widest = F > Q + 2 * KV ? F : Q + 2 * KV;
        add(p, "activations (prompt chunk)", (uint64_t)s->batch * 512 * (4 * H + 3 * widest) * 4, "prompt processed 512 tokens at a time");
        add(p, "logits", (uint64_t)s->batch * V * 4, "one row of %llu per sequence", (unsigned long long)V);
        add(p, "runtime", TN_RUNTIME_OVERHEAD, "code, BLAS and OpenMP buffers, allocator slack");
        return;
    }

    /* Trainable parameters, their gradients, AdamW moments. */
    if (kind == TN_PLAN_FULL) {
        add(p, "gradients", all_weights * 4, "fp32, one per parameter");
        add(p, "adamw moments", all_weights * 8, "m and v in fp32");
    } else {
        uint64_t lp = tn_lora_param_count(spec, &s->targets, s->rank, s->layers);
        add(p, "lora parameters", lp * 4, "%llu parameters (rank %d) in fp32", (unsigned long long)lp, s->rank);
        add(p, "lora gradients", lp * 4, "fp32");
        add(p, "adamw moments", lp * 8, "m and v in fp32");
    }

    /* Saved activations: every slot of every layer, or with checkpointing
     * the layer inputs plus one layer's slots rebuilt during backward. */
    tn_plan_settings ls = *s;
    if (kind == TN_PLAN_FULL) ls.rank = 0;
    uint64_t saved = 0, largest = 0;
    for (int l = 0; l < L; l++) {
        uint64_t b = layer_saved_bytes(spec, &ls, l);
        saved += b;
        if (b > largest) largest = b;
    }
    if (s->grad_checkpoint) {
        add(p, "saved activations", (uint64_t)L * T * H * 4, "checkpointed: %d layer inputs x %llu tokens x %llu x 4 B", L, (unsigned long long)T, (unsigned long long)H);
        add(p, "recompute workspace", largest, "one layer's activations, rebuilt during backward");
    } else {
        add(p, "saved activations", saved, "%d layers, fp32, for %llu tokens (docs/memory-plan.md lists the slots)", L, (unsigned long long)T);
    }
    tn_plan_work wk;
    tn_plan_work_elements(spec, &ls, &wk);
    add(p, "final norm", wk.final_norm * 4, "last layer output, its normed copy and rstd, fp32");
    add(p, "backward workspace", wk.workspace * 4, "d residual + 2 scratch [T, H], rebuilt norm/activation [T, %llu], widest gradients [T, %llu]%s",
        (unsigned long long)wk.rebuilt, (unsigned long long)wk.widest, ls.rank ? ", LoRA [T, r]" : "");
    int64_t rows = tn_plan_loss_chunk_rows(spec, (int64_t)T);
    add(p, "logits chunk", wk.logits * 4, "%lld rows x %llu vocab, fp32; loss and its gradient computed chunk by chunk", (long long)rows,
        (unsigned long long)V);
    add(p, "batch tokens", T * 8, "ids and labels");
    add(p, "runtime", TN_RUNTIME_OVERHEAD, "code, BLAS and OpenMP buffers, allocator slack");
}
