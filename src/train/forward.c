/* forward.c - the forward and backward passes of the dense families over a
 * batch, with LoRA, written once for llama, mistral, qwen2, gemma2 and
 * granite: the family's facts (norm style, activation, sandwich norms,
 * soft-caps, sliding window, multipliers) come from its table.
 *
 * One layer, forward (x the layer input, rm the residual multiplier):
 *   xn = norm1(x); q,k,v = xn·Wᵀ (+ b) (+ s·(xn·Aᵀ)·Bᵀ); rope(q, k)
 *   a = attention(q, k, v); o = a·Woᵀ (+ LoRA); [Gemma 2: o = post_norm(o)]
 *   m = x + rm·o; xn2 = norm2(m); g, u = xn2·Wᵀ; h = act(g)·u
 *   d = h·Wdᵀ (+ LoRA); [Gemma 2: d = post_norm(d)]; x' = m + rm·d
 * Backward runs the same steps in reverse, rebuilding xn, xn2 and h from the
 * saved x, m, rstd, g and u (docs/memory-plan.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/forward_internal.h"
#include "train/model.h"
#include "util/error.h"
#include "util/rng.h"

static void mlp_act_forward(const tn_spec *s, float *h, const float *g, const float *u, int64_t n) {
    if (s->family->activation == TN_ACT_GELU_TANH) tn_geglu_forward(h, g, u, n);
    else tn_swiglu_forward(h, g, u, n);
}

static void mlp_act_backward(const tn_spec *s, float *dg, float *du, const float *dh, const float *g, const float *u, int64_t n) {
    if (s->family->activation == TN_ACT_GELU_TANH) tn_geglu_backward(dg, du, dh, g, u, n);
    else tn_swiglu_backward(dg, du, dh, g, u, n);
}

/* ---- activations ---------------------------------------------------- */

static void lora_settings(const tn_model *m, const tn_lora *lora, int B, int S, tn_plan_settings *ps) {
    memset(ps, 0, sizeof *ps);
    ps->seq = S;
    ps->batch = B;
    ps->layers = -1;
    ps->rank = lora ? lora->rank : 0;
    if (lora) {
        ps->layers = (int)m->spec.n_layers - lora->first_layer;
        /* targets: the modules the adapter holds */
        for (int k = 0; k < TN_MOD_COUNT; k++)
            for (int i = 0; i < lora->n; i++)
                if (lora->mods[i].module == (tn_module)k) {
                    ps->targets.names[ps->targets.n++] = tn_module_names[k];
                    break;
                }
    }
}

int tn_activations_alloc(tn_activations *a, const tn_model *m, const tn_lora *lora, const tn_plan_settings *settings) {
    memset(a, 0, sizeof *a);
    const tn_spec *s = &m->spec;
    int B = (int)settings->batch, S = (int)settings->seq, L = (int)s->n_layers;
    int64_t T = (int64_t)B * S, H = s->hidden;
    a->B = B, a->S = S, a->grad_checkpoint = settings->grad_checkpoint;
    tn_plan_settings ps;
    lora_settings(m, lora, B, S, &ps);
    ps.grad_checkpoint = settings->grad_checkpoint;
    ps.dropout = lora ? lora->dropout : 0;
    /* Sizes: per layer slots (or layer inputs + one shared set), then the
     * final input/norm, logits chunk(s) and the backward workspace. */
    tn_slot slots[TN_MAX_SLOTS];
    int64_t per_layer_total = 0, largest = 0;
    for (int l = 0; l < L; l++) {
        int n = tn_plan_activation_layout(s, &ps, l, slots);
        int64_t sum = 0;
        for (int i = 0; i < n; i++) sum += (int64_t)slots[i].elements;
        per_layer_total += sum;
        if (sum > largest) largest = sum;
    }
    int64_t saved = a->grad_checkpoint ? (int64_t)L * T * H + largest : per_layer_total;
    a->chunk_rows = tn_plan_loss_chunk_rows(s, T);
    tn_plan_work wk;
    tn_plan_work_elements(s, &ps, &wk);
    int64_t total = saved + (int64_t)(wk.final_norm + wk.logits + wk.workspace);
    a->arena = tn_calloc((size_t)total, sizeof(float), "activations");
    if (!a->arena) return -1;
    float *p = a->arena;
    float *shared = NULL;
    for (int l = 0; l < L; l++) {
        int n = tn_plan_activation_layout(s, &ps, l, slots);
        if (a->grad_checkpoint) {
            if (!shared) {
                shared = p + (int64_t)L * T * H;
                p = shared;
            }
            float *q = shared;
            for (int i = 0; i < n; i++) {
                if (slots[i].id == TN_SLOT_X) continue;
                a->slot[l][slots[i].id] = q;
                q += slots[i].elements;
            }
            a->slot[l][TN_SLOT_X] = a->arena + (int64_t)l * T * H;
        } else {
            for (int i = 0; i < n; i++) {
                a->slot[l][slots[i].id] = p;
                p += slots[i].elements;
            }
        }
    }
    if (a->grad_checkpoint) p = shared + largest;
    a->slot[L][TN_SLOT_X] = p, p += T * H; /* the final norm's input */
    a->final_norm_out = p, p += T * H;
    a->final_rstd = p, p += T;
    a->logits = p, p += (int64_t)wk.logits;
    a->xn = p, p += T * (int64_t)wk.rebuilt;
    a->dres = p, p += T * H;
    a->dtmp = p, p += T * H;
    a->ws = p, p += T * H;
    a->dbig = p, p += T * (int64_t)wk.widest;
    a->lora_tmp = p, p += T * ps.rank;
    if (ps.rank > 0 && ps.dropout > 0) a->dropped = p, p += T * (int64_t)wk.rebuilt;
    a->max_tokens = T;
    a->max_seq = S;
    return 0;
}

int tn_activations_shape(tn_activations *a, int B, int S) {
    if ((int64_t)B * S > a->max_tokens || S > a->max_seq)
        return tn_fail("batch of %d x %d tokens is larger than the %lld tokens (sequences of at most %d) planned", B, S,
                       (long long)a->max_tokens, a->max_seq);
    a->B = B, a->S = S;
    return 0;
}

void tn_activations_free(tn_activations *a) {
    free(a->arena);
    memset(a, 0, sizeof *a);
}

/* ---- Linear with LoRA -------------------------------------------------- */

/* LoRA dropout, as PEFT: y = x·Wᵀ + s·(drop(x)·Aᵀ)·Bᵀ with drop(x) = x·m/(1−p),
 * m ~ Bernoulli(1−p) drawn per element. The mask of (step key, layer,
 * module) is a pure function of those, so backward draws it again instead
 * of storing it. Returns x itself when no dropout applies. */
static const float *lora_input(const tn_lora *lora, const tn_lora_module *mod, const float *x, int T, int in, float *buf) {
    if (!lora->training || lora->dropout <= 0 || !buf) return x;
    float keep = (float)(1.0 - lora->dropout), inv = 1.0f / keep;
    int64_t n = (int64_t)T * in;
    const int64_t chunk = 1 << 16;
    uint64_t stream = lora->dropout_key * 0x9e3779b97f4a7c15ull + (uint64_t)mod->layer * 131 + (uint64_t)mod->module;
#pragma omp parallel for if (n > chunk)
    for (int64_t c = 0; c < (n + chunk - 1) / chunk; c++) {
        tn_rng r;
        tn_rng_seed(&r, stream, (uint64_t)c);
        int64_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
        for (int64_t i = c * chunk; i < end; i++) buf[i] = tn_rng_uniform(&r) < keep ? x[i] * inv : 0.0f;
    }
    return buf;
}

/* y = x·Wᵀ (+ b) + s·(x·Aᵀ)·Bᵀ, saving xa = x·Aᵀ [T, r]. */
void tn_train_linear_forward(float *y, const float *x, const float *w, const float *b, int T, int in, int out, const tn_lora *lora,
                           const tn_lora_module *mod, float *xa, float *tmp, float *dropped) {
    tn_matmul_forward(y, x, w, b, T, in, out, 0);
    if (!mod) return;
    int r = lora->rank;
    tn_matmul_forward(xa, lora_input(lora, mod, x, T, in, dropped), mod->a, NULL, T, in, r, 0);
    for (int64_t i = 0; i < (int64_t)T * r; i++) tmp[i] = lora->scale * xa[i];
    tn_matmul_forward(y, tmp, mod->b, NULL, T, r, out, 1);
}

/* dx += dy·W + s·(dy·B)·A (masked by dropout); dB += s·dyᵀ·xa;
 * dA += (s·dy·B)ᵀ·drop(x). */
void tn_train_linear_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w, int T, int in, int out,
                            const tn_lora *lora, const tn_lora_module *mod, const float *xa, float *tmp, int want_grads, float *dropped) {
    tn_matmul_backward(dx, want_grads ? dw : NULL, want_grads ? dbias : NULL, dy, x, w, T, in, out);
    if (!mod || !want_grads) return;
    int r = lora->rank;
    for (int64_t i = 0; i < (int64_t)T * r; i++) tmp[i] = lora->scale * xa[i];
    /* db += dyᵀ·(s·xa) */
    tn_matmul_backward(NULL, mod->db, NULL, dy, tmp, mod->b, T, r, out);
    /* tmp = s·dy·B */
    memset(tmp, 0, (size_t)T * r * sizeof *tmp);
    tn_matmul_backward(tmp, NULL, NULL, dy, xa, mod->b, T, r, out);
    for (int64_t i = 0; i < (int64_t)T * r; i++) tmp[i] *= lora->scale;
    const float *xin = lora_input(lora, mod, x, T, in, dropped);
    if (xin == x) {
        tn_matmul_backward(dx, mod->da, NULL, tmp, x, mod->a, T, in, r);
    } else {
        /* d(drop(x)) = tmp·A, then through the mask: reuse `dropped` for it
         * once dA has been taken from drop(x). */
        tn_matmul_backward(NULL, mod->da, NULL, tmp, xin, mod->a, T, in, r);
        float keep = (float)(1.0 - lora->dropout), inv = 1.0f / keep;
        float *mask_src = dropped; /* holds drop(x): nonzero exactly where kept (or x was 0) */
        /* dx_i += (tmp·A)_i · m_i/(1−p): recompute the mask as drop(x) != 0
         * would lose kept zeros, so draw it again into `dropped` as 0 / inv. */
        int64_t n = (int64_t)T * in;
        const int64_t chunk = 1 << 16;
        uint64_t stream = lora->dropout_key * 0x9e3779b97f4a7c15ull + (uint64_t)mod->layer * 131 + (uint64_t)mod->module;
#pragma omp parallel for if (n > chunk)
        for (int64_t c = 0; c < (n + chunk - 1) / chunk; c++) {
            tn_rng rr;
            tn_rng_seed(&rr, stream, (uint64_t)c);
            int64_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
            for (int64_t i = c * chunk; i < end; i++) mask_src[i] = tn_rng_uniform(&rr) < keep ? inv : 0.0f;
        }
        /* dxa = tmp·A row by row, scaled by the mask, added to dx */
        for (int t = 0; t < T; t++) {
            float *dxt = dx + (int64_t)t * in;
            const float *mt = mask_src + (int64_t)t * in;
            const float *tt = tmp + (int64_t)t * r;
            for (int j = 0; j < r; j++) {
                const float *aj = mod->a + (int64_t)j * in;
                float tj = tt[j];
                for (int i = 0; i < in; i++) dxt[i] += tj * aj[i] * mt[i];
            }
        }
    }
}

const tn_lora_module *tn_train_lora_mod(const tn_lora *lora, int l, tn_module k) {
    if (!lora) return NULL;
    int i = lora->index[l * TN_MOD_COUNT + k];
    return i < 0 ? NULL : &lora->mods[i];
}

/* The x·A slot of module k of layer l: adapted modules in table order. */
float *tn_train_xa_slot(const tn_lora *lora, float *base, int l, tn_module k, int T) {
    if (!lora || !base) return NULL;
    int n = 0;
    for (int j = 0; j < (int)k; j++)
        if (lora->index[l * TN_MOD_COUNT + j] >= 0) n++;
    return base + (int64_t)n * T * lora->rank;
}

/* ---- one layer ------------------------------------------------------- */


/* Forward of layer l from slot X of l into slot X of l + 1. */
static int layer_forward(tn_model *m, const tn_lora *lora, tn_activations *a, int l, const dims *d) {
    const tn_spec *s = d->s;
    if (s->family->hybrid) return tn_hybrid_layer_forward(m, lora, a, l, d);
    tn_layer_view v;
    if (tn_model_layer_view(m, l, &v) != 0) return -1;
    float **sl = a->slot[l];
    float *x = sl[TN_SLOT_X], *xn = a->xn, *out = a->slot[l + 1][TN_SLOT_X];
    int T = d->T, H = d->H, Q = d->Q, KV = d->KV, F = d->F;
    int one_plus = s->family->norm == TN_NORM_RMS_ONE_PLUS;
    float eps = (float)s->rms_eps, rm = tn_spec_residual_multiplier(s);
    float *xa = sl[TN_SLOT_LORA_XA];
    tn_rmsnorm_forward(xn, sl[TN_SLOT_NORM1_RSTD], x, v.norm1, T, H, eps, one_plus);
    tn_train_linear_forward(sl[TN_SLOT_Q], xn, v.w[TN_MOD_Q], v.bias[TN_MOD_Q], T, H, Q, lora, tn_train_lora_mod(lora, l, TN_MOD_Q), tn_train_xa_slot(lora, xa, l, TN_MOD_Q, T), a->lora_tmp, a->dropped);
    tn_train_linear_forward(sl[TN_SLOT_K], xn, v.w[TN_MOD_K], v.bias[TN_MOD_K], T, H, KV, lora, tn_train_lora_mod(lora, l, TN_MOD_K), tn_train_xa_slot(lora, xa, l, TN_MOD_K, T), a->lora_tmp, a->dropped);
    tn_train_linear_forward(sl[TN_SLOT_V], xn, v.w[TN_MOD_V], v.bias[TN_MOD_V], T, H, KV, lora, tn_train_lora_mod(lora, l, TN_MOD_V), tn_train_xa_slot(lora, xa, l, TN_MOD_V, T), a->lora_tmp, a->dropped);
    if (s->rope != TN_ROPE_NONE) {
        tn_rope_forward(sl[TN_SLOT_Q], &m->rope, d->pos, T, (int)s->n_heads, (int)s->head_dim);
        tn_rope_forward(sl[TN_SLOT_K], &m->rope, d->pos, T, (int)s->n_kv_heads, (int)s->head_dim);
    }
    tn_attention_forward(sl[TN_SLOT_ATT], sl[TN_SLOT_LSE], sl[TN_SLOT_Q], sl[TN_SLOT_K], sl[TN_SLOT_V], d->B, d->S, (int)s->n_heads,
                         (int)s->n_kv_heads, (int)s->head_dim, tn_spec_attention_scale(s), s->family->softcaps ? (float)s->attn_softcap : 0.0f,
                         tn_spec_layer_window(s, l));
    float *o = s->family->sandwich_norms ? sl[TN_SLOT_MIXER_BRANCH] : a->ws;
    tn_train_linear_forward(o, sl[TN_SLOT_ATT], v.w[TN_MOD_O], v.bias[TN_MOD_O], T, Q, H, lora, tn_train_lora_mod(lora, l, TN_MOD_O), tn_train_xa_slot(lora, xa, l, TN_MOD_O, T), a->lora_tmp, a->dropped);
    if (s->family->sandwich_norms) {
        tn_rmsnorm_forward(a->ws, sl[TN_SLOT_MIXER_POST_RSTD], o, v.post_mixer, T, H, eps, one_plus);
        o = a->ws;
    }
    float *mid = sl[TN_SLOT_X_MID];
    for (int64_t i = 0; i < (int64_t)T * H; i++) mid[i] = x[i] + rm * o[i];
    tn_rmsnorm_forward(xn, sl[TN_SLOT_NORM2_RSTD], mid, v.norm2, T, H, eps, one_plus);
    tn_train_linear_forward(sl[TN_SLOT_GATE], xn, v.w[TN_MOD_GATE], v.bias[TN_MOD_GATE], T, H, F, lora, tn_train_lora_mod(lora, l, TN_MOD_GATE), tn_train_xa_slot(lora, xa, l, TN_MOD_GATE, T), a->lora_tmp, a->dropped);
    tn_train_linear_forward(sl[TN_SLOT_UP], xn, v.w[TN_MOD_UP], v.bias[TN_MOD_UP], T, H, F, lora, tn_train_lora_mod(lora, l, TN_MOD_UP), tn_train_xa_slot(lora, xa, l, TN_MOD_UP, T), a->lora_tmp, a->dropped);
    float *h = a->xn; /* xn2 is no longer needed: h takes its place */
    mlp_act_forward(s, h, sl[TN_SLOT_GATE], sl[TN_SLOT_UP], (int64_t)T * F);
    float *dn = s->family->sandwich_norms ? sl[TN_SLOT_MLP_BRANCH] : a->ws;
    tn_train_linear_forward(dn, h, v.w[TN_MOD_DOWN], v.bias[TN_MOD_DOWN], T, F, H, lora, tn_train_lora_mod(lora, l, TN_MOD_DOWN), tn_train_xa_slot(lora, xa, l, TN_MOD_DOWN, T), a->lora_tmp, a->dropped);
    if (s->family->sandwich_norms) {
        tn_rmsnorm_forward(a->ws, sl[TN_SLOT_MLP_POST_RSTD], dn, v.post_mlp, T, H, eps, one_plus);
        dn = a->ws;
    }
    for (int64_t i = 0; i < (int64_t)T * H; i++) out[i] = mid[i] + rm * dn[i];
    return 0;
}

/* Backward of layer l: on entry a->dres holds dL/d(layer output); on exit
 * dL/d(layer input). */
static int layer_backward(tn_model *m, tn_lora *lora, tn_activations *a, int l, const dims *d, int want_grads) {
    const tn_spec *s = d->s;
    if (s->family->hybrid) return tn_hybrid_layer_backward(m, lora, a, l, d, want_grads);
    tn_layer_view v;
    if (tn_model_layer_view(m, l, &v) != 0) return -1;
    float **sl = a->slot[l];
    int T = d->T, H = d->H, Q = d->Q, KV = d->KV, F = d->F;
    int one_plus = s->family->norm == TN_NORM_RMS_ONE_PLUS;
    float eps = (float)s->rms_eps, rm = tn_spec_residual_multiplier(s);
    float *xa = sl[TN_SLOT_LORA_XA], *tmp = a->lora_tmp;
    float *dres = a->dres, *dbranch = a->dtmp, *dpre = a->ws;
    int64_t TH = (int64_t)T * H;

    /* MLP branch: out = mid + rm·post(d). */
    for (int64_t i = 0; i < TH; i++) dbranch[i] = rm * dres[i];
    float *ddown = dbranch;
    if (s->family->sandwich_norms) {
        memset(dpre, 0, (size_t)TH * sizeof *dpre);
        tn_rmsnorm_backward(dpre, want_grads ? v.dpost_mlp : NULL, dbranch, sl[TN_SLOT_MLP_BRANCH], v.post_mlp, sl[TN_SLOT_MLP_POST_RSTD], T, H, one_plus);
        ddown = dpre;
    }
    float *h = a->xn;
    mlp_act_forward(s, h, sl[TN_SLOT_GATE], sl[TN_SLOT_UP], (int64_t)T * F);
    float *dh = a->dbig, *dg = a->dbig + (int64_t)T * F;
    memset(dh, 0, (size_t)T * F * sizeof *dh);
    tn_train_linear_backward(dh, v.dw[TN_MOD_DOWN], v.dbias[TN_MOD_DOWN], ddown, h, v.w[TN_MOD_DOWN], T, F, H, lora, tn_train_lora_mod(lora, l, TN_MOD_DOWN), tn_train_xa_slot(lora, xa, l, TN_MOD_DOWN, T), tmp, want_grads, a->dropped);
    /* dg and du: du overwrites dh in place after dg is formed. */
    memset(dg, 0, (size_t)T * F * sizeof *dg);
    float *du = a->xn; /* h no longer needed */
    memset(du, 0, (size_t)T * F * sizeof *du);
    mlp_act_backward(s, dg, du, dh, sl[TN_SLOT_GATE], sl[TN_SLOT_UP], (int64_t)T * F);
    memcpy(dh, du, (size_t)T * F * sizeof *dh); /* dh now holds du */
    float *dxn2 = dbranch;
    memset(dxn2, 0, (size_t)TH * sizeof *dxn2);
    float *xn2 = a->xn;
    tn_rmsnorm_forward(xn2, a->ws, sl[TN_SLOT_X_MID], v.norm2, T, H, eps, one_plus); /* rebuild; a->ws gets a copy of rstd */
    tn_train_linear_backward(dxn2, v.dw[TN_MOD_GATE], v.dbias[TN_MOD_GATE], dg, xn2, v.w[TN_MOD_GATE], T, H, F, lora, tn_train_lora_mod(lora, l, TN_MOD_GATE), tn_train_xa_slot(lora, xa, l, TN_MOD_GATE, T), tmp, want_grads, a->dropped);
    tn_train_linear_backward(dxn2, v.dw[TN_MOD_UP], v.dbias[TN_MOD_UP], dh, xn2, v.w[TN_MOD_UP], T, H, F, lora, tn_train_lora_mod(lora, l, TN_MOD_UP), tn_train_xa_slot(lora, xa, l, TN_MOD_UP, T), tmp, want_grads, a->dropped);
    tn_rmsnorm_backward(dres, want_grads ? v.dnorm2 : NULL, dxn2, sl[TN_SLOT_X_MID], v.norm2, sl[TN_SLOT_NORM2_RSTD], T, H, one_plus);

    /* Attention branch: mid = x + rm·post(o). */
    for (int64_t i = 0; i < TH; i++) dbranch[i] = rm * dres[i];
    float *do_ = dbranch;
    if (s->family->sandwich_norms) {
        memset(dpre, 0, (size_t)TH * sizeof *dpre);
        tn_rmsnorm_backward(dpre, want_grads ? v.dpost_mixer : NULL, dbranch, sl[TN_SLOT_MIXER_BRANCH], v.post_mixer, sl[TN_SLOT_MIXER_POST_RSTD], T, H, one_plus);
        do_ = dpre;
    }
    float *datt = a->dbig, *dq = datt + (int64_t)T * Q, *dk = dq + (int64_t)T * Q, *dv = dk + (int64_t)T * KV;
    memset(datt, 0, (size_t)T * (2 * Q + 2 * KV) * sizeof *datt);
    tn_train_linear_backward(datt, v.dw[TN_MOD_O], v.dbias[TN_MOD_O], do_, sl[TN_SLOT_ATT], v.w[TN_MOD_O], T, Q, H, lora, tn_train_lora_mod(lora, l, TN_MOD_O), tn_train_xa_slot(lora, xa, l, TN_MOD_O, T), tmp, want_grads, a->dropped);
    tn_attention_backward(dq, dk, dv, datt, sl[TN_SLOT_ATT], sl[TN_SLOT_LSE], sl[TN_SLOT_Q], sl[TN_SLOT_K], sl[TN_SLOT_V], d->B, d->S,
                          (int)s->n_heads, (int)s->n_kv_heads, (int)s->head_dim, tn_spec_attention_scale(s),
                          s->family->softcaps ? (float)s->attn_softcap : 0.0f, tn_spec_layer_window(s, l));
    if (s->rope != TN_ROPE_NONE) {
        tn_rope_backward(dq, &m->rope, d->pos, T, (int)s->n_heads, (int)s->head_dim);
        tn_rope_backward(dk, &m->rope, d->pos, T, (int)s->n_kv_heads, (int)s->head_dim);
    }
    float *xn = a->xn;
    tn_rmsnorm_forward(xn, a->ws, sl[TN_SLOT_X], v.norm1, T, H, eps, one_plus);
    float *dxn = dbranch;
    memset(dxn, 0, (size_t)TH * sizeof *dxn);
    tn_train_linear_backward(dxn, v.dw[TN_MOD_Q], v.dbias[TN_MOD_Q], dq, xn, v.w[TN_MOD_Q], T, H, Q, lora, tn_train_lora_mod(lora, l, TN_MOD_Q), tn_train_xa_slot(lora, xa, l, TN_MOD_Q, T), tmp, want_grads, a->dropped);
    tn_train_linear_backward(dxn, v.dw[TN_MOD_K], v.dbias[TN_MOD_K], dk, xn, v.w[TN_MOD_K], T, H, KV, lora, tn_train_lora_mod(lora, l, TN_MOD_K), tn_train_xa_slot(lora, xa, l, TN_MOD_K, T), tmp, want_grads, a->dropped);
    tn_train_linear_backward(dxn, v.dw[TN_MOD_V], v.dbias[TN_MOD_V], dv, xn, v.w[TN_MOD_V], T, H, KV, lora, tn_train_lora_mod(lora, l, TN_MOD_V), tn_train_xa_slot(lora, xa, l, TN_MOD_V, T), tmp, want_grads, a->dropped);
    tn_rmsnorm_backward(dres, want_grads ? v.dnorm1 : NULL, dxn, sl[TN_SLOT_X], v.norm1, sl[TN_SLOT_NORM1_RSTD], T, H, one_plus);
    return 0;
}

/* ---- whole model ------------------------------------------------------ */

static void embed(tn_model *m, tn_activations *a, const int32_t *ids, int T) {
    tn_embedding_forward(a->slot[0][TN_SLOT_X], m->embed_view, ids, T, (int)m->spec.hidden, m->embed_scale);
}

static int forward_layers(tn_model *m, const tn_lora *lora, tn_activations *a, const dims *d) {
    for (int l = 0; l < d->s->n_layers; l++)
        if (layer_forward(m, lora, a, l, d) != 0) return -1;
    int L = (int)d->s->n_layers;
    tn_rmsnorm_forward(a->final_norm_out, a->final_rstd, a->slot[L][TN_SLOT_X], m->final_norm, d->T, d->H, (float)d->s->rms_eps,
                       d->s->family->norm == TN_NORM_RMS_ONE_PLUS);
    return 0;
}

/* Logits of rows [r0, r0 + rows) into buf: head product, Granite's scaling,
 * and (when cap) Gemma's final soft-cap; the loss applies the cap itself. */
static void logits_rows(tn_model *m, tn_activations *a, int r0, int rows, float *buf, int cap) {
    const tn_spec *s = &m->spec;
    int H = (int)s->hidden, V = (int)s->vocab_size;
    tn_matmul_forward(buf, a->final_norm_out + (int64_t)r0 * H, m->head_view, NULL, rows, H, V, 0);
    if (s->family->multipliers && s->logits_scaling != 1.0) {
        float inv = (float)(1.0 / s->logits_scaling);
        for (int64_t i = 0; i < (int64_t)rows * V; i++) buf[i] *= inv;
    }
    if (cap && s->family->softcaps && s->final_softcap > 0) tn_softcap_forward(buf, buf, (float)s->final_softcap, (int64_t)rows * V);
}

static dims dims_of(const tn_model *m, const tn_activations *a, int32_t *pos) {
    const tn_spec *s = &m->spec;
    dims d = {s, a->B * a->S, a->B, a->S, (int)s->hidden, (int)(s->n_heads * s->head_dim), (int)(s->n_kv_heads * s->head_dim),
              (int)s->intermediate, pos};
    for (int t = 0; t < d.T; t++) pos[t] = t % a->S;
    return d;
}

int tn_model_logits(tn_model *m, tn_lora *lora, tn_activations *a, const int32_t *ids, float *logits) {
    int T = a->B * a->S;
    int32_t *pos = tn_malloc((size_t)T * sizeof *pos, "positions");
    if (!pos) return -1;
    dims d = dims_of(m, a, pos);
    embed(m, a, ids, T);
    int rc = forward_layers(m, lora, a, &d);
    for (int r0 = 0; rc == 0 && r0 < T; r0 += (int)a->chunk_rows) {
        int rows = T - r0 < a->chunk_rows ? T - r0 : (int)a->chunk_rows;
        logits_rows(m, a, r0, rows, logits + (int64_t)r0 * m->spec.vocab_size, 1);
    }
    free(pos);
    return rc;
}

int64_t tn_shift_labels(const int32_t *labels, int T, int S, int32_t *shifted) {
    int64_t n = 0;
    for (int t = 0; t < T; t++) {
        shifted[t] = (t % S == S - 1) ? TN_IGNORE_INDEX : labels[t + 1];
        n += shifted[t] != TN_IGNORE_INDEX;
    }
    return n;
}

double tn_model_step(tn_model *m, tn_lora *lora, tn_activations *a, const int32_t *ids, const int32_t *labels, int want_grads,
                     double grad_scale, int64_t *counted) {
    const tn_spec *s = &m->spec;
    int T = a->B * a->S, H = (int)s->hidden, V = (int)s->vocab_size, L = (int)s->n_layers;
    int32_t *pos = tn_malloc((size_t)T * 2 * sizeof *pos, "positions");
    if (!pos) return NAN;
    int32_t *shifted = pos + T;
    dims d = dims_of(m, a, pos);
    int64_t n_count = tn_shift_labels(labels, T, a->S, shifted);
    if (counted) *counted = n_count;
    if (grad_scale <= 0) grad_scale = n_count ? 1.0 / (double)n_count : 0.0;
    /* With checkpointing the forward keeps only layer inputs: the slots it
     * writes are shared and rebuilt before each layer's backward. */
    embed(m, a, ids, T);
    if (forward_layers(m, lora, a, &d) != 0) {
        free(pos);
        return NAN;
    }
    double loss = 0;
    float *dxf = a->dtmp;
    if (want_grads) memset(dxf, 0, (size_t)T * H * sizeof *dxf);
    /* Gemma 2's final soft-cap is fused with the loss: the chunk holds the
     * raw logits, and on return their gradient. */
    float cap = s->family->softcaps && s->final_softcap > 0 ? (float)s->final_softcap : 0.0f;
    for (int r0 = 0; r0 < T; r0 += (int)a->chunk_rows) {
        int rows = T - r0 < a->chunk_rows ? T - r0 : (int)a->chunk_rows;
        float *buf = a->logits;
        logits_rows(m, a, r0, rows, buf, 0);
        int cnt = 0;
        loss += tn_cross_entropy_softcap_forward_backward(buf, shifted + r0, rows, V, cap, (float)grad_scale, &cnt);
        if (!want_grads) continue;
        /* buf = dL/d(scaled logits): back through Granite's scaling. */
        if (s->family->multipliers && s->logits_scaling != 1.0) {
            float inv = (float)(1.0 / s->logits_scaling);
            for (int64_t i = 0; i < (int64_t)rows * V; i++) buf[i] *= inv;
        }
        tn_matmul_backward(dxf + (int64_t)r0 * H, m->dhead, NULL, buf, a->final_norm_out + (int64_t)r0 * H, m->head_view, rows, H, V);
    }
    if (want_grads) {
        memset(a->dres, 0, (size_t)T * H * sizeof *a->dres);
        tn_rmsnorm_backward(a->dres, m->dfinal_norm, dxf, a->slot[L][TN_SLOT_X], m->final_norm, a->final_rstd, T, H,
                            s->family->norm == TN_NORM_RMS_ONE_PLUS);
        for (int l = L - 1; l >= 0; l--) {
            if (a->grad_checkpoint && layer_forward(m, lora, a, l, &d) != 0) {
                free(pos);
                return NAN;
            }
            if (layer_backward(m, lora, a, l, &d, want_grads) != 0) {
                free(pos);
                return NAN;
            }
            if (m->master && l <= m->first_trained) break; /* nothing below is trained */
        }
        /* dres is now dL/d(embedded input) when every layer ran backward */
        if (m->dembed) tn_embedding_backward(m->dembed, a->dres, ids, T, H, m->embed_scale);
    }
    free(pos);
    return loss;
}
