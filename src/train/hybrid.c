/* hybrid.c - Granite 4.0-H (granitemoehybrid) layers on the CPU: forward
 * and backward with LoRA, as transformers' GraniteMoeHybridDecoderLayer.
 *
 *   xn = input_layernorm(x)
 *   o  = Mamba2 mixer(xn) (docs/mamba2.md)  or  attention(xn) without rope,
 *        scale attention_multiplier
 *   mid = x + rm·o;  xn2 = post_attention_layernorm(mid)
 *   gu = xn2·input_linearᵀ (+ LoRA): gate = gu[:, :F], up = gu[:, F:]
 *   mlp = (silu(gate)·up)·output_linearᵀ (+ LoRA)
 *   [MoE: r = xn2·routerᵀ; the top k of r, softmax over those k; each
 *    chosen expert's SwiGLU (input_linear [2FE, H] = gate rows then up rows,
 *    output_linear [H, FE]), weighted and added to mlp. No LoRA there.]
 *   out = mid + rm·mlp
 *
 * Backward: gradients with respect to the activations through every step
 * (scan, conv, dt, gated norm, experts and router) and LoRA gradients only;
 * the Mamba tensors, experts and router stay frozen. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/forward_internal.h"
#include "util/error.h"

typedef struct {
    int H, nh, P, G, N, K, di, C, W;
} mamba_dims;

static mamba_dims mdims(const tn_spec *s) {
    mamba_dims md;
    md.H = (int)s->hidden, md.nh = (int)s->mamba_heads, md.P = (int)s->mamba_head_dim, md.G = (int)s->mamba_groups;
    md.N = (int)s->mamba_state, md.K = (int)s->mamba_kernel;
    md.di = md.nh * md.P, md.C = md.di + 2 * md.G * md.N, md.W = (int)tn_spec_dim(s, TN_DIM_MAMBA_IN);
    return md;
}

#define LIN_F(y, x, k, in, out)                                                                                                   \
    tn_train_linear_forward(y, x, v.w[k], v.bias[k], T, in, out, lora, tn_train_lora_mod(lora, l, k), tn_train_xa_slot(lora, xa, l, k, T), \
                            a->lora_tmp, a->dropped)
#define LIN_B(dx, dy, x, k, in, out)                                                                                              \
    tn_train_linear_backward(dx, NULL, NULL, dy, x, v.w[k], T, in, out, lora, tn_train_lora_mod(lora, l, k),                     \
                             tn_train_xa_slot(lora, xa, l, k, T), a->lora_tmp, want_grads, a->dropped)

/* Indices of the k largest of r[E] (first index on ties, as torch.topk on
 * CPU), and their softmax weights. */
static void route(const float *r, int E, int k, int *idx, float *w) {
    unsigned char used[256] = {0};
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int e = 0; e < E; e++)
            if (!used[e] && (best < 0 || r[e] > r[best])) best = e;
        used[best] = 1;
        idx[j] = best;
    }
    float mx = r[idx[0]], sum = 0;
    for (int j = 0; j < k; j++) sum += (w[j] = expf(r[idx[j]] - mx));
    for (int j = 0; j < k; j++) w[j] /= sum;
}

/* Experts: y[T, H] += Σ_j w_j · expert_j(xn2). */
static int moe_forward(const tn_model *m, float **sl, const float *xn2, float *y, int l, int T) {
    const tn_spec *s = &m->spec;
    int H = (int)s->hidden, E = (int)s->n_experts, k = (int)s->n_experts_per_token, FE = (int)s->intermediate;
    if (E > 256 || k > E) return tn_fail("%s: %d experts, top %d: unsupported", m->path, E, k);
    const float *Wi = m->hyb->p[l][TN_HYB_EXP_IN], *Wo = m->hyb->p[l][TN_HYB_EXP_OUT], *Wr = m->hyb->p[l][TN_HYB_ROUTER];
    float *h = malloc((size_t)FE * sizeof *h);
    if (!h) return tn_fail("out of memory");
    tn_matmul_forward(sl[TN_SLOT_ROUTER], xn2, Wr, NULL, T, H, E, 0);
    for (int t = 0; t < T; t++) {
        int idx[256];
        float w[256];
        route(sl[TN_SLOT_ROUTER] + (int64_t)t * E, E, k, idx, w);
        const float *xt = xn2 + (int64_t)t * H;
        for (int j = 0; j < k; j++) {
            int e = idx[j];
            float *gu = sl[TN_SLOT_EXPERTS_GATE_UP] + ((int64_t)t * k + j) * 2 * FE;
            float *eo = sl[TN_SLOT_EXPERTS_OUT] + ((int64_t)t * k + j) * H;
            tn_matmul_forward(gu, xt, Wi + (int64_t)e * 2 * FE * H, NULL, 1, H, 2 * FE, 0);
            tn_swiglu_forward(h, gu, gu + FE, FE);
            tn_matmul_forward(eo, h, Wo + (int64_t)e * H * FE, NULL, 1, FE, H, 0);
            float *yt = y + (int64_t)t * H;
            for (int o = 0; o < H; o++) yt[o] += w[j] * eo[o];
        }
    }
    free(h);
    return 0;
}

/* dxn2 += d(experts)/d(xn2)ᵀ · dy, through the experts and the router. */
static int moe_backward(const tn_model *m, float **sl, const float *xn2, const float *dy, float *dxn2, int l, int T) {
    const tn_spec *s = &m->spec;
    int H = (int)s->hidden, E = (int)s->n_experts, k = (int)s->n_experts_per_token, FE = (int)s->intermediate;
    const float *Wi = m->hyb->p[l][TN_HYB_EXP_IN], *Wo = m->hyb->p[l][TN_HYB_EXP_OUT], *Wr = m->hyb->p[l][TN_HYB_ROUTER];
    float *buf = malloc((size_t)(H + 4 * FE) * sizeof *buf);
    if (!buf) return tn_fail("out of memory");
    float *deo = buf, *h = deo + H, *dh = h + FE, *dgu = dh + FE;
    for (int t = 0; t < T; t++) {
        int idx[256];
        float w[256], dw[256];
        route(sl[TN_SLOT_ROUTER] + (int64_t)t * E, E, k, idx, w);
        const float *xt = xn2 + (int64_t)t * H, *dyt = dy + (int64_t)t * H;
        float *dxt = dxn2 + (int64_t)t * H;
        float wdw = 0;
        for (int j = 0; j < k; j++) {
            int e = idx[j];
            const float *gu = sl[TN_SLOT_EXPERTS_GATE_UP] + ((int64_t)t * k + j) * 2 * FE;
            const float *eo = sl[TN_SLOT_EXPERTS_OUT] + ((int64_t)t * k + j) * H;
            float acc = 0;
            for (int o = 0; o < H; o++) acc += dyt[o] * eo[o], deo[o] = w[j] * dyt[o];
            dw[j] = acc;
            wdw += w[j] * acc;
            tn_swiglu_forward(h, gu, gu + FE, FE);
            memset(dh, 0, (size_t)3 * FE * sizeof *dh);
            tn_matmul_backward(dh, NULL, NULL, deo, h, Wo + (int64_t)e * H * FE, 1, FE, H);
            tn_swiglu_backward(dgu, dgu + FE, dh, gu, gu + FE, FE);
            tn_matmul_backward(dxt, NULL, NULL, dgu, xt, Wi + (int64_t)e * 2 * FE * H, 1, H, 2 * FE);
        }
        /* softmax over the k chosen logits */
        for (int j = 0; j < k; j++) {
            float dl = w[j] * (dw[j] - wdw);
            const float *wr = Wr + (int64_t)idx[j] * H;
            for (int i = 0; i < H; i++) dxt[i] += dl * wr[i];
        }
    }
    free(buf);
    return 0;
}

int tn_hybrid_layer_forward(tn_model *m, const tn_lora *lora, tn_activations *a, int l, const dims *d) {
    const tn_spec *s = d->s;
    tn_layer_view v;
    if (tn_model_layer_view(m, l, &v) != 0) return -1;
    float **sl = a->slot[l];
    float *x = sl[TN_SLOT_X], *xn = a->xn, *out = a->slot[l + 1][TN_SLOT_X];
    int T = d->T, H = d->H, F = (int)s->shared_intermediate;
    float eps = (float)s->rms_eps, rm = tn_spec_residual_multiplier(s);
    float *xa = sl[TN_SLOT_LORA_XA];
    const float *const *hw = m->hyb->p[l];
    tn_rmsnorm_forward(xn, sl[TN_SLOT_NORM1_RSTD], x, v.norm1, T, H, eps, 0);
    float *o = a->ws;
    if (s->layer_kind[l] == TN_LAYER_MAMBA) {
        mamba_dims md = mdims(s);
        int di = md.di, C = md.C, W = md.W, GN = md.G * md.N;
        float *zx = sl[TN_SLOT_MAMBA_IN], *xbc = sl[TN_SLOT_MAMBA_CONV], *dt = sl[TN_SLOT_MAMBA_DT];
        LIN_F(zx, xn, TN_MOD_IN_PROJ, H, W);
        tn_mamba_conv1d_forward(xbc, zx + di, W, hw[TN_HYB_CONV_W], hw[TN_HYB_CONV_B], d->B, d->S, C, md.K);
        tn_mamba_dt_forward(dt, zx + di + C, W, hw[TN_HYB_DT_BIAS], T, md.nh, 0.0f, INFINITY);
        tn_mamba_scan_forward(sl[TN_SLOT_MAMBA_SCAN], sl[TN_SLOT_MAMBA_STATES], xbc, C, dt, hw[TN_HYB_A_LOG], xbc + di, xbc + di + GN, C,
                              hw[TN_HYB_D], NULL, d->B, d->S, md.nh, md.P, md.G, md.N, TN_MAMBA_CHUNK);
        tn_mamba_gated_norm_forward(sl[TN_SLOT_MAMBA_NORM], sl[TN_SLOT_MAMBA_NORM_RSTD], sl[TN_SLOT_MAMBA_SCAN], zx, W, hw[TN_HYB_NORM], T,
                                    di, di, eps);
        LIN_F(o, sl[TN_SLOT_MAMBA_NORM], TN_MOD_OUT_PROJ, di, H);
    } else {
        int Q = d->Q, KV = d->KV;
        LIN_F(sl[TN_SLOT_Q], xn, TN_MOD_Q, H, Q);
        LIN_F(sl[TN_SLOT_K], xn, TN_MOD_K, H, KV);
        LIN_F(sl[TN_SLOT_V], xn, TN_MOD_V, H, KV);
        if (s->rope != TN_ROPE_NONE) {
            tn_rope_forward(sl[TN_SLOT_Q], &m->rope, d->pos, T, (int)s->n_heads, (int)s->head_dim);
            tn_rope_forward(sl[TN_SLOT_K], &m->rope, d->pos, T, (int)s->n_kv_heads, (int)s->head_dim);
        }
        tn_attention_forward(sl[TN_SLOT_ATT], sl[TN_SLOT_LSE], sl[TN_SLOT_Q], sl[TN_SLOT_K], sl[TN_SLOT_V], d->B, d->S, (int)s->n_heads,
                             (int)s->n_kv_heads, (int)s->head_dim, tn_spec_attention_scale(s), 0.0f, 0);
        LIN_F(o, sl[TN_SLOT_ATT], TN_MOD_O, Q, H);
    }
    float *mid = sl[TN_SLOT_X_MID];
    for (int64_t i = 0; i < (int64_t)T * H; i++) mid[i] = x[i] + rm * o[i];
    tn_rmsnorm_forward(xn, sl[TN_SLOT_NORM2_RSTD], mid, v.norm2, T, H, eps, 0);
    float *gu = a->dbig, *h = a->dbig + (int64_t)T * 2 * F;
    LIN_F(gu, xn, TN_MOD_INPUT_LINEAR, H, 2 * F);
    for (int t = 0; t < T; t++) {
        memcpy(sl[TN_SLOT_GATE] + (int64_t)t * F, gu + (int64_t)t * 2 * F, (size_t)F * sizeof *gu);
        memcpy(sl[TN_SLOT_UP] + (int64_t)t * F, gu + (int64_t)t * 2 * F + F, (size_t)F * sizeof *gu);
    }
    tn_swiglu_forward(h, sl[TN_SLOT_GATE], sl[TN_SLOT_UP], (int64_t)T * F);
    float *mlp = a->ws;
    LIN_F(mlp, h, TN_MOD_OUTPUT_LINEAR, F, H);
    if (s->n_experts > 0 && moe_forward(m, sl, xn, mlp, l, T) != 0) return -1;
    for (int64_t i = 0; i < (int64_t)T * H; i++) out[i] = mid[i] + rm * mlp[i];
    return 0;
}

int tn_hybrid_layer_backward(tn_model *m, tn_lora *lora, tn_activations *a, int l, const dims *d, int want_grads) {
    const tn_spec *s = d->s;
    tn_layer_view v;
    if (tn_model_layer_view(m, l, &v) != 0) return -1;
    float **sl = a->slot[l];
    int T = d->T, H = d->H, F = (int)s->shared_intermediate;
    float eps = (float)s->rms_eps, rm = tn_spec_residual_multiplier(s);
    float *xa = sl[TN_SLOT_LORA_XA];
    const float *const *hw = m->hyb->p[l];
    float *dres = a->dres, *dbranch = a->dtmp;
    int64_t TH = (int64_t)T * H;

    /* MLP: out = mid + rm·(shared(xn2) + experts(xn2)). */
    for (int64_t i = 0; i < TH; i++) dbranch[i] = rm * dres[i];
    float *h = a->xn, *dh = a->dbig, *dgu = a->dbig + (int64_t)T * F;
    tn_swiglu_forward(h, sl[TN_SLOT_GATE], sl[TN_SLOT_UP], (int64_t)T * F);
    memset(dh, 0, (size_t)T * 3 * F * sizeof *dh);
    LIN_B(dh, dbranch, h, TN_MOD_OUTPUT_LINEAR, F, H);
    for (int t = 0; t < T; t++)
        tn_swiglu_backward(dgu + (int64_t)t * 2 * F, dgu + (int64_t)t * 2 * F + F, dh + (int64_t)t * F, sl[TN_SLOT_GATE] + (int64_t)t * F,
                           sl[TN_SLOT_UP] + (int64_t)t * F, F);
    float *xn2 = a->xn, *dxn2 = a->ws;
    tn_rmsnorm_forward(xn2, a->ws, sl[TN_SLOT_X_MID], v.norm2, T, H, eps, 0); /* rebuild; rstd into ws, overwritten next */
    memset(dxn2, 0, (size_t)TH * sizeof *dxn2);
    LIN_B(dxn2, dgu, xn2, TN_MOD_INPUT_LINEAR, H, 2 * F);
    if (s->n_experts > 0 && moe_backward(m, sl, xn2, dbranch, dxn2, l, T) != 0) return -1;
    tn_rmsnorm_backward(dres, NULL, dxn2, sl[TN_SLOT_X_MID], v.norm2, sl[TN_SLOT_NORM2_RSTD], T, H, 0);

    /* Mixer: mid = x + rm·o. */
    for (int64_t i = 0; i < TH; i++) dbranch[i] = rm * dres[i];
    float *dz_in = NULL; /* d(input of the mixer's first Linear) */
    if (s->layer_kind[l] == TN_LAYER_MAMBA) {
        mamba_dims md = mdims(s);
        int di = md.di, C = md.C, W = md.W, GN = md.G * md.N;
        const float *zx = sl[TN_SLOT_MAMBA_IN], *xbc = sl[TN_SLOT_MAMBA_CONV], *dt = sl[TN_SLOT_MAMBA_DT];
        float *dyn = a->xn;
        memset(dyn, 0, (size_t)T * di * sizeof *dyn);
        LIN_B(dyn, dbranch, sl[TN_SLOT_MAMBA_NORM], TN_MOD_OUT_PROJ, di, H);
        float *dzx = a->dbig, *dxbc = dzx + (int64_t)T * W, *ddt = dxbc + (int64_t)T * C, *dy = ddt + (int64_t)T * md.nh;
        memset(dzx, 0, (size_t)T * (W + C + md.nh + di) * sizeof *dzx);
        tn_mamba_gated_norm_backward(dy, dzx, NULL, dyn, sl[TN_SLOT_MAMBA_SCAN], zx, W, hw[TN_HYB_NORM], sl[TN_SLOT_MAMBA_NORM_RSTD], T, di,
                                     di);
        tn_mamba_scan_backward(dxbc, ddt, NULL, dxbc + di, dxbc + di + GN, NULL, dy, sl[TN_SLOT_MAMBA_STATES], xbc, C, dt, hw[TN_HYB_A_LOG],
                               xbc + di, xbc + di + GN, C, hw[TN_HYB_D], NULL, d->B, d->S, md.nh, md.P, md.G, md.N, TN_MAMBA_CHUNK);
        tn_mamba_dt_backward(dzx + di + C, W, NULL, ddt, zx + di + C, hw[TN_HYB_DT_BIAS], T, md.nh, 0.0f, INFINITY);
        tn_mamba_conv1d_backward(dzx + di, NULL, NULL, dxbc, zx + di, W, hw[TN_HYB_CONV_W], hw[TN_HYB_CONV_B], d->B, d->S, C, md.K);
        float *xn = a->xn;
        tn_rmsnorm_forward(xn, a->ws, sl[TN_SLOT_X], v.norm1, T, H, eps, 0);
        float *dxn = dbranch;
        memset(dxn, 0, (size_t)TH * sizeof *dxn);
        LIN_B(dxn, dzx, xn, TN_MOD_IN_PROJ, H, W);
        dz_in = dxn;
    } else {
        int Q = d->Q, KV = d->KV;
        float *datt = a->dbig, *dq = datt + (int64_t)T * Q, *dk = dq + (int64_t)T * Q, *dv = dk + (int64_t)T * KV;
        memset(datt, 0, (size_t)T * (2 * Q + 2 * KV) * sizeof *datt);
        LIN_B(datt, dbranch, sl[TN_SLOT_ATT], TN_MOD_O, Q, H);
        tn_attention_backward(dq, dk, dv, datt, sl[TN_SLOT_ATT], sl[TN_SLOT_LSE], sl[TN_SLOT_Q], sl[TN_SLOT_K], sl[TN_SLOT_V], d->B, d->S,
                              (int)s->n_heads, (int)s->n_kv_heads, (int)s->head_dim, tn_spec_attention_scale(s), 0.0f, 0);
        if (s->rope != TN_ROPE_NONE) {
            tn_rope_backward(dq, &m->rope, d->pos, T, (int)s->n_heads, (int)s->head_dim);
            tn_rope_backward(dk, &m->rope, d->pos, T, (int)s->n_kv_heads, (int)s->head_dim);
        }
        float *xn = a->xn;
        tn_rmsnorm_forward(xn, a->ws, sl[TN_SLOT_X], v.norm1, T, H, eps, 0);
        float *dxn = dbranch;
        memset(dxn, 0, (size_t)TH * sizeof *dxn);
        LIN_B(dxn, dq, xn, TN_MOD_Q, H, Q);
        LIN_B(dxn, dk, xn, TN_MOD_K, H, KV);
        LIN_B(dxn, dv, xn, TN_MOD_V, H, KV);
        dz_in = dxn;
    }
    tn_rmsnorm_backward(dres, NULL, dz_in, sl[TN_SLOT_X], v.norm1, sl[TN_SLOT_NORM1_RSTD], T, H, 0);
    return 0;
}
