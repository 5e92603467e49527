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
 *    output_linear [H, FE]), weighted and added to mlp. No LoRA there.
 *    Tokens are grouped by expert: one product per expert over its rows,
 *    each expert converted to fp32 once a pass (tn_hybrid_expert).]
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

int64_t tn_hybrid_moe_scratch(const tn_spec *s, int64_t T) {
    /* forward: gathered rows [T, H], gate|up [T, 2FE], h [T, FE], out [T, H];
     * backward: gate|up, h, d(out) [T, H], dh [T, FE], d(gate|up) [T, 2FE],
     * dx [T, H]. */
    if (s->n_experts <= 0) return 0;
    return T * (2 * s->hidden + 6 * s->intermediate);
}

/* The routing of T tokens from the router logits: idx[t·k + j], w[t·k + j]
 * (softmax over the k), and the rows r = t·k + j grouped by expert, in
 * increasing r: order[start[e] .. start[e+1]). */
typedef struct {
    int *idx, *order, start[257];
    float *w;
} routing;

static int routing_make(routing *rt, const float *router, int T, int E, int k) {
    rt->idx = malloc((size_t)T * k * sizeof *rt->idx);
    rt->order = malloc((size_t)T * k * sizeof *rt->order);
    rt->w = malloc((size_t)T * k * sizeof *rt->w);
    if (!rt->idx || !rt->order || !rt->w) {
        free(rt->idx), free(rt->order), free(rt->w);
        return tn_fail("out of memory");
    }
    for (int t = 0; t < T; t++) route(router + (int64_t)t * E, E, k, rt->idx + (int64_t)t * k, rt->w + (int64_t)t * k);
    int count[256] = {0};
    for (int64_t r = 0; r < (int64_t)T * k; r++) count[rt->idx[r]]++;
    rt->start[0] = 0;
    for (int e = 0; e < E; e++) rt->start[e + 1] = rt->start[e] + count[e], count[e] = rt->start[e];
    for (int64_t r = 0; r < (int64_t)T * k; r++) rt->order[count[rt->idx[r]]++] = (int)r;
    return 0;
}

static void routing_free(routing *rt) { free(rt->idx), free(rt->order), free(rt->w); }

int tn_hybrid_moe_forward(const tn_model *m, int l, const float *x, int T, float *y, float *router, float *gu, float *eo, float *scratch) {
    const tn_spec *s = &m->spec;
    int H = (int)s->hidden, E = (int)s->n_experts, k = (int)s->n_experts_per_token, FE = (int)s->intermediate;
    if (E > 256 || k > E) return tn_fail("%s: %d experts, top %d: unsupported", m->path, E, k);
    tn_matmul_forward(router, x, m->hyb->p[l][TN_HYB_ROUTER], NULL, T, H, E, 0);
    routing rt;
    if (routing_make(&rt, router, T, E, k) != 0) return -1;
    float *X = scratch, *G = X + (int64_t)T * H, *Hh = G + (int64_t)T * 2 * FE, *O = Hh + (int64_t)T * FE;
    for (int e = 0; e < E; e++) {
        int n = rt.start[e + 1] - rt.start[e];
        const int *rows = rt.order + rt.start[e];
        if (!n) continue;
        const float *wi, *wo;
        tn_hybrid_expert(m, l, e, &wi, &wo);
        for (int i = 0; i < n; i++) memcpy(X + (int64_t)i * H, x + (int64_t)(rows[i] / k) * H, (size_t)H * sizeof *X);
        tn_matmul_forward(G, X, wi, NULL, n, H, 2 * FE, 0);
        for (int i = 0; i < n; i++) tn_swiglu_forward(Hh + (int64_t)i * FE, G + (int64_t)i * 2 * FE, G + (int64_t)i * 2 * FE + FE, FE);
        tn_matmul_forward(O, Hh, wo, NULL, n, FE, H, 0);
        for (int i = 0; i < n; i++) {
            memcpy(gu + (int64_t)rows[i] * 2 * FE, G + (int64_t)i * 2 * FE, (size_t)2 * FE * sizeof *G);
            memcpy(eo + (int64_t)rows[i] * H, O + (int64_t)i * H, (size_t)H * sizeof *O);
        }
    }
#pragma omp parallel for if ((int64_t)T * k * H >= 65536)
    for (int t = 0; t < T; t++) {
        float *yt = y + (int64_t)t * H;
        for (int j = 0; j < k; j++) {
            const float *et = eo + ((int64_t)t * k + j) * H;
            float wj = rt.w[(int64_t)t * k + j];
            for (int o = 0; o < H; o++) yt[o] += wj * et[o];
        }
    }
    routing_free(&rt);
    return 0;
}

/* dxn2 += d(experts)/d(xn2)ᵀ · dy, through the experts (grouped by expert
 * as in forward) and the router. */
static int moe_backward(const tn_model *m, float **sl, const float *xn2, const float *dy, float *dxn2, int l, int T, float *scratch) {
    const tn_spec *s = &m->spec;
    int H = (int)s->hidden, E = (int)s->n_experts, k = (int)s->n_experts_per_token, FE = (int)s->intermediate;
    const float *Wr = m->hyb->p[l][TN_HYB_ROUTER];
    routing rt;
    if (routing_make(&rt, sl[TN_SLOT_ROUTER], T, E, k) != 0) return -1;
    float *G = scratch, *Hh = G + (int64_t)T * 2 * FE, *dO = Hh + (int64_t)T * FE, *dH = dO + (int64_t)T * H;
    float *dG = dH + (int64_t)T * FE, *dX = dG + (int64_t)T * 2 * FE;
    for (int e = 0; e < E; e++) {
        int n = rt.start[e + 1] - rt.start[e];
        const int *rows = rt.order + rt.start[e];
        if (!n) continue;
        const float *wi, *wo;
        tn_hybrid_expert(m, l, e, &wi, &wo);
        for (int i = 0; i < n; i++) {
            int r = rows[i];
            const float *dyt = dy + (int64_t)(r / k) * H;
            float wr = rt.w[r], *d = dO + (int64_t)i * H;
            for (int o = 0; o < H; o++) d[o] = wr * dyt[o];
            memcpy(G + (int64_t)i * 2 * FE, sl[TN_SLOT_EXPERTS_GATE_UP] + (int64_t)r * 2 * FE, (size_t)2 * FE * sizeof *G);
            tn_swiglu_forward(Hh + (int64_t)i * FE, G + (int64_t)i * 2 * FE, G + (int64_t)i * 2 * FE + FE, FE);
        }
        memset(dH, 0, (size_t)n * FE * sizeof *dH);
        tn_matmul_backward(dH, NULL, NULL, dO, Hh, wo, n, FE, H);
        memset(dG, 0, (size_t)n * 2 * FE * sizeof *dG);
        for (int i = 0; i < n; i++)
            tn_swiglu_backward(dG + (int64_t)i * 2 * FE, dG + (int64_t)i * 2 * FE + FE, dH + (int64_t)i * FE, G + (int64_t)i * 2 * FE,
                               G + (int64_t)i * 2 * FE + FE, FE);
        memset(dX, 0, (size_t)n * H * sizeof *dX);
        tn_matmul_backward(dX, NULL, NULL, dG, xn2, wi, n, H, 2 * FE);
        for (int i = 0; i < n; i++) {
            float *dxt = dxn2 + (int64_t)(rows[i] / k) * H;
            const float *d = dX + (int64_t)i * H;
            for (int o = 0; o < H; o++) dxt[o] += d[o];
        }
    }
    /* the router: softmax over the k chosen logits */
#pragma omp parallel for if ((int64_t)T * k * H >= 65536)
    for (int t = 0; t < T; t++) {
        const float *dyt = dy + (int64_t)t * H, *w = rt.w + (int64_t)t * k;
        float *dxt = dxn2 + (int64_t)t * H, dw[256], wdw = 0;
        for (int j = 0; j < k; j++) {
            const float *eo = sl[TN_SLOT_EXPERTS_OUT] + ((int64_t)t * k + j) * H;
            float acc = 0;
            for (int o = 0; o < H; o++) acc += dyt[o] * eo[o];
            dw[j] = acc;
            wdw += w[j] * acc;
        }
        for (int j = 0; j < k; j++) {
            float dl = w[j] * (dw[j] - wdw);
            const float *wr = Wr + (int64_t)rt.idx[(int64_t)t * k + j] * H;
            for (int i = 0; i < H; i++) dxt[i] += dl * wr[i];
        }
    }
    routing_free(&rt);
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
    if (s->n_experts > 0 &&
        tn_hybrid_moe_forward(m, l, xn, T, mlp, sl[TN_SLOT_ROUTER], sl[TN_SLOT_EXPERTS_GATE_UP], sl[TN_SLOT_EXPERTS_OUT], a->dbig) != 0)
        return -1;
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
    if (s->n_experts > 0 && moe_backward(m, sl, xn2, dbranch, dxn2, l, T, a->dbig) != 0) return -1;
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
