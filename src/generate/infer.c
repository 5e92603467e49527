/* infer.c - see infer.h. Symbols as in train/forward.c. */
#include "generate/infer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate/pool.h"
#include "generate/qmatvec.h"
#include "nn/ops.h"
#include "io/dtype.h"
#include "quant/dequant_gguf.h"
#include "quant/quant.h"
#include "util/error.h"

#define CHUNK 64

/* Granite 4.0-H: buffers after the logits in the same allocation (infer.h
 * is shared): the recurrent state of every Mamba layer (the conv window, the
 * last K-1 rows of xBC before the conv, and the SSM state [heads, P, N]),
 * zeroed when a sequence starts at position 0, and the chunk buffers of the
 * mixer, the shared MLP and the experts. */
typedef struct {
    int nh, P, G, N, K, di, Cc, W, Fs, E, k, FE;
    float *conv_cache, *ssm; /* [L][K-1][Cc], [L][nh*P*N] */
    float *zx, *win, *xbc, *dt, *y, *yn, *gu, *hs, *router, *egu, *eh, *eo; /* eh: the experts' scratch */
} hyb_bufs;

static void hyb_dims(const tn_spec *sp, hyb_bufs *b) {
    memset(b, 0, sizeof *b);
    b->nh = (int)sp->mamba_heads, b->P = (int)sp->mamba_head_dim, b->G = (int)sp->mamba_groups, b->N = (int)sp->mamba_state;
    b->K = (int)sp->mamba_kernel, b->di = b->nh * b->P, b->Cc = b->di + 2 * b->G * b->N, b->W = (int)tn_spec_dim(sp, TN_DIM_MAMBA_IN);
    b->Fs = (int)sp->shared_intermediate, b->E = (int)sp->n_experts, b->k = (int)sp->n_experts_per_token, b->FE = (int)sp->intermediate;
}

static int64_t hybrid_elems(const tn_spec *sp) {
    if (!sp->family->hybrid) return 0;
    hyb_bufs b;
    hyb_dims(sp, &b);
    int64_t L = sp->n_layers, C = CHUNK, H = sp->hidden;
    return L * ((int64_t)(b.K - 1) * b.Cc + (int64_t)b.nh * b.P * b.N) + C * ((int64_t)b.W + 2 * b.Cc + b.nh + 2 * b.di + 3 * b.Fs) +
           2 * (int64_t)(b.K - 1) * b.Cc + C * (b.E > 0 ? b.E : 0) +
           (b.E > 0 ? C * b.k * (2 * (int64_t)b.FE + H) + C * (2 * H + 6 * (int64_t)b.FE) : 0);
}

static void hyb_carve(const tn_infer *s, const tn_spec *sp, hyb_bufs *b) {
    hyb_dims(sp, b);
    int64_t L = sp->n_layers, C = CHUNK;
    float *p = s->logits + sp->vocab_size;
    b->conv_cache = p, p += L * (b->K - 1) * b->Cc;
    b->ssm = p, p += L * (int64_t)b->nh * b->P * b->N;
    b->zx = p, p += C * b->W;
    b->win = p, p += (C + b->K - 1) * b->Cc;
    b->xbc = p, p += (C + b->K - 1) * b->Cc;
    b->dt = p, p += C * b->nh;
    b->y = p, p += C * b->di;
    b->yn = p, p += C * b->di;
    b->gu = p, p += C * 2 * b->Fs;
    b->hs = p, p += C * b->Fs;
    b->router = p, p += C * (b->E > 0 ? b->E : 0);
    if (b->E > 0) { /* experts: gate|up [C·k, 2FE], out [C·k, H], tn_hybrid_moe_forward's scratch */
        b->egu = p, p += C * b->k * 2 * b->FE;
        b->eo = p, p += C * b->k * sp->hidden;
        b->eh = p;
    }
}

int tn_infer_init(tn_infer *s, const tn_model *m, const tn_lora *lora, int max_ctx) {
    memset(s, 0, sizeof *s);
    const tn_spec *sp = &m->spec;
    int64_t L = sp->n_layers, H = sp->hidden, Q = sp->n_heads * sp->head_dim, KV = sp->n_kv_heads * sp->head_dim;
    int64_t F = sp->intermediate, V = sp->vocab_size, C = CHUNK;
    if (max_ctx > m->rope.max_pos) return tn_fail("context of %d tokens is more than the %d the rope table holds", max_ctx, m->rope.max_pos);
    s->max_ctx = max_ctx;
    s->chunk = CHUNK;
    int64_t r = lora ? lora->rank : 0;
    int64_t total = 2 * L * max_ctx * KV + C * (3 * H + 2 * Q + 2 * KV + 3 * F + r) + V + hybrid_elems(sp);
    float *p = tn_calloc((size_t)total, sizeof(float), "kv cache and inference buffers");
    if (!p) return -1;
    s->k = p, p += L * max_ctx * KV;
    s->v = p, p += L * max_ctx * KV;
    s->x = p, p += C * H;
    s->xn = p, p += C * H;
    s->o = p, p += C * H;
    s->q = p, p += C * Q;
    s->att = p, p += C * Q;
    s->kk = p, p += C * KV;
    s->vv = p, p += C * KV;
    s->g = p, p += C * F;
    s->u = p, p += C * F;
    s->h = p, p += C * F;
    s->xa = p, p += C * r;
    s->logits = p;
    if (!getenv("TUNE_DECODE_FP32") && tn_infer_attach_16bit(s, m, NULL) != 0) {
        tn_infer_free(s);
        return -1;
    }
    return 0;
}

/* A 2-D tensor [out, in] stored in BF16 or F16 (as a ggml type), else -1. */
static int stored16(const tn_model *m, const char *name, int64_t in, int64_t out, const void **data) {
    const tn_tensor_info *t = tn_safetensors_find(&m->st, name);
    if (!t || t->n_dims != 2 || t->shape[0] != out || t->shape[1] != in) return -1;
    if (t->dtype != TN_DTYPE_BF16 && t->dtype != TN_DTYPE_F16) return -1;
    *data = tn_safetensors_data(&m->st, t);
    return t->dtype == TN_DTYPE_BF16 ? TN_GGML_BF16 : TN_GGML_F16;
}

int tn_infer_attach_16bit(tn_infer *s, const tn_model *m, int *attached) {
    const tn_spec *sp = &m->spec;
    if (attached) *attached = 0;
    if (s->qw || m->master || m->qbase || m->gguf || sp->quant_bits > 0) return 0;
    tn_qweights *qw = tn_calloc(1, sizeof *qw, "16-bit weight table");
    if (!qw) return -1;
    char name[256];
    const void *d;
    int type;
    for (int l = 0; l < sp->n_layers; l++) {
        int whole = 1;
        for (int k = 0; k < TN_MOD_COUNT; k++) {
            if (!tn_module_applies(sp, l, (tn_module)k)) continue;
            int in, out;
            tn_module_dims(sp, (tn_module)k, &in, &out);
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, tn_module_paths[k]);
            if ((type = stored16(m, name, in, out, &d)) < 0) {
                whole = 0;
                continue;
            }
            qw->mat[l][k] = (tn_qmat){d, type, 0};
            qw->by_type[type]++, qw->n++;
        }
        qw->whole[l] = (unsigned char)whole;
    }
    if ((type = stored16(m, sp->tied_embeddings ? "model.embed_tokens.weight" : "lm_head.weight", sp->hidden, sp->vocab_size, &d)) >= 0)
        qw->head = (tn_qmat){d, type, 0}, qw->by_type[type]++, qw->n++;
    if (!qw->n) {
        free(qw);
        return 0;
    }
    s->qw = qw;
    if (attached) *attached = qw->n;
    return 0;
}

void tn_infer_free(tn_infer *s) {
    free(s->k);
    if (s->qw) tn_gguf_close(&s->qw->g);
    free(s->qw);
    free(s->qtmp);
    memset(s, 0, sizeof *s);
}

void tn_infer_reset(tn_infer *s) { s->pos = 0; }

static const tn_gguf_tensor *find_matrix(const tn_gguf *g, const char *name, int64_t in, int64_t out) {
    const tn_gguf_tensor *t = tn_gguf_find_tensor(g, name);
    if (!t || t->n_dims != 2 || t->ne[0] != in || t->ne[1] != out) return NULL;
    if (t->type == 0 || t->type == 28 || !tn_gguf_can_dequantize(t->type)) return NULL; /* F32 F64 (F16, BF16: qmatvec's 16-bit rows) */
    return t;
}

int tn_infer_attach_gguf(tn_infer *s, const tn_model *m, const char *gguf_path, int *attached) {
    const tn_spec *sp = &m->spec;
    if (attached) *attached = 0;
    if (sp->family->hybrid || !sp->family->gguf_layer) return 0;
    if (s->qw) { /* 16-bit rows of the model's own folder: the GGUF's blocks instead */
        tn_gguf_close(&s->qw->g);
        free(s->qw);
        s->qw = NULL;
    }
    tn_qweights *qw = tn_calloc(1, sizeof *qw, "quantized weight table");
    if (!qw) return -1;
    if (tn_gguf_open(gguf_path, &qw->g) != 0) return free(qw), -1;
    char hf[256], want[256], name[256];
    for (int l = 0; l < sp->n_layers; l++) {
        int whole = 1;
        for (int k = 0; k < TN_MOD_COUNT; k++) {
            if (!tn_module_applies(sp, l, (tn_module)k)) continue;
            int in, out;
            tn_module_dims(sp, (tn_module)k, &in, &out);
            snprintf(want, sizeof want, "model.layers.%d.%s.weight", l, tn_module_paths[k]);
            for (const tn_gguf_name *e = sp->family->gguf_layer; e->hf; e++) {
                if (!TN_GGUF_NAME_APPLIES(e, sp)) continue;
                snprintf(hf, sizeof hf, e->hf, l);
                if (strcmp(hf, want)) continue;
                if (e->transform != TN_GGUF_COPY && e->transform != TN_GGUF_PERMUTE_Q && e->transform != TN_GGUF_PERMUTE_K) break;
                snprintf(name, sizeof name, e->gguf, l);
                const tn_gguf_tensor *t = find_matrix(&qw->g, name, in, out);
                if (!t) break;
                int heads = e->transform == TN_GGUF_PERMUTE_Q ? (int)sp->n_heads : e->transform == TN_GGUF_PERMUTE_K ? (int)sp->n_kv_heads : 0;
                if (heads && out % (2 * heads)) break;
                qw->mat[l][k] = (tn_qmat){t->data, t->type, heads};
                if (t->type >= 0 && t->type < 64) qw->by_type[t->type]++;
                qw->n++;
                break;
            }
            if (!qw->mat[l][k].w) whole = 0;
        }
        /* every matrix of the layer read in place: one-token steps skip its
         * fp32 view (a GGUF base would dequantize the layer for nothing) */
        qw->whole[l] = (unsigned char)whole;
    }
    const tn_gguf_tensor *h = find_matrix(&qw->g, sp->tied_embeddings ? "token_embd.weight" : "output.weight", sp->hidden, sp->vocab_size);
    if (h) {
        qw->head = (tn_qmat){h->data, h->type, 0}, qw->n++;
        if (h->type >= 0 && h->type < 64) qw->by_type[h->type]++;
    }
    int64_t Q = sp->n_heads * sp->head_dim, KV = sp->n_kv_heads * sp->head_dim;
    if (!qw->n || !(s->qtmp = tn_malloc(sizeof(float) * (size_t)(Q > KV ? Q : KV), "decode buffer"))) {
        int none = !qw->n;
        tn_gguf_close(&qw->g);
        free(qw);
        return none ? 0 : -1;
    }
    s->qw = qw;
    if (attached) *attached = qw->n;
    return 0;
}

/* y[out] = W·x for a quantized matrix, rows back to rotate-half order when
 * stored permuted. */
static void qmatvec(float *y, const float *x, const tn_qmat *q, int in, int out, float *tmp) {
    if (!q->perm_heads) {
        tn_qmatvec(q->type, q->w, x, y, out, in);
        return;
    }
    tn_qmatvec(q->type, q->w, x, tmp, out, in);
    const int hd = out / q->perm_heads, half = hd / 2;
    for (int r = 0; r < out; r++) y[(r / hd) * hd + (r % 2) * half + (r % hd) / 2] = tmp[r];
}

/* y[n, out] = x[n, in]·Wᵀ + b (+ LoRA); q (may be NULL): the quantized
 * matrix to read instead of w when n is 1. */
static void linear_q(const tn_qmat *q, float *tmp, float *y, const float *x, const float *w, const float *b, int n, int in, int out,
                     const tn_lora *lora, int layer, tn_module k, float *xa) {
    if (q && q->w && n == 1) {
        qmatvec(y, x, q, in, out, tmp);
        if (b)
            for (int i = 0; i < out; i++) y[i] += b[i];
    } else tn_matmul_forward(y, x, w, b, n, in, out, 0);
    if (!lora) return;
    int idx = lora->index[layer * TN_MOD_COUNT + k];
    if (idx < 0) return;
    const tn_lora_module *mod = &lora->mods[idx];
    tn_matmul_forward(xa, x, mod->a, NULL, n, in, lora->rank, 0);
    for (int64_t i = 0; i < (int64_t)n * lora->rank; i++) xa[i] *= lora->scale;
    tn_matmul_forward(y, xa, mod->b, NULL, n, lora->rank, out, 1);
}

/* Attention of query i (position p0 + i), head h, over the cache. */
static void attend_one(const tn_infer *s, const tn_spec *sp, int l, int p0, int i, int h) {
    int nh = (int)sp->n_heads, nkv = (int)sp->n_kv_heads, hd = (int)sp->head_dim, KV = nkv * hd, Q = nh * hd;
    float scale = tn_spec_attention_scale(sp);
    float cap = sp->family->softcaps ? (float)sp->attn_softcap : 0.0f;
    int window = tn_spec_layer_window(sp, l);
    const float *K = s->k + (int64_t)l * s->max_ctx * KV, *Vc = s->v + (int64_t)l * s->max_ctx * KV;
    int pos = p0 + i, kvh = h / (nh / nkv);
    int j0 = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
    const float *q = s->q + (int64_t)i * Q + (int64_t)h * hd;
    float local[4096];
    float *w = (pos - j0 + 1) <= 4096 ? local : malloc(sizeof(float) * (size_t)(pos - j0 + 1));
    float mx = -INFINITY;
    for (int j = j0; j <= pos; j++) {
        const float *kj = K + (int64_t)j * KV + (int64_t)kvh * hd;
        float acc[8] = {0}, d = 0; /* 8 partial sums: the compiler vectorises them */
        int e = 0;
        for (; e + 8 <= hd; e += 8)
            for (int k = 0; k < 8; k++) acc[k] += q[e + k] * kj[e + k];
        for (; e < hd; e++) d += q[e] * kj[e];
        d += ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        d *= scale;
        if (cap > 0) d = cap * tanhf(d / cap);
        w[j - j0] = d;
        if (d > mx) mx = d;
    }
    float sum = 0;
    for (int j = j0; j <= pos; j++) sum += (w[j - j0] = expf(w[j - j0] - mx));
    float *out = s->att + (int64_t)i * Q + (int64_t)h * hd;
    for (int e = 0; e < hd; e++) out[e] = 0;
    for (int j = j0; j <= pos; j++) {
        const float *vj = Vc + (int64_t)j * KV + (int64_t)kvh * hd;
        float p = w[j - j0] / sum;
        for (int e = 0; e < hd; e++) out[e] += p * vj[e];
    }
    if (w != local) free(w);
}

typedef struct {
    const tn_infer *s;
    const tn_spec *sp;
    int l, p0;
} attend_job;

/* One token's heads spread over the decode pool (generate/pool.h). */
static void attend_heads(void *ctx, int ith, int nth) {
    const attend_job *a = ctx;
    const int nh = (int)a->sp->n_heads; /* contiguous heads: a thread reads fewer kv heads */
    for (int h = ith * nh / nth; h < (ith + 1) * nh / nth; h++) attend_one(a->s, a->sp, a->l, a->p0, 0, h);
}

/* Attention of n new queries (positions p0..p0+n-1) over the cache. */
static void attend(const tn_infer *s, const tn_spec *sp, int l, int p0, int n) {
    int nh = (int)sp->n_heads;
    if (n == 1 && tn_pool_threads() > 1) {
        attend_job a = {s, sp, l, p0};
        tn_pool_run(attend_heads, &a);
        return;
    }
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int i = 0; i < n; i++)
        for (int h = 0; h < nh; h++) attend_one(s, sp, l, p0, i, h);
}

/* One Granite 4.0-H layer over n new tokens (as train/hybrid.c), carrying
 * the Mamba state across calls. */
/* The k of r[E] largest (first index on ties) and their softmax weights:
 * train/hybrid.c's routing of one token. */
static void route1(const float *r, int E, int k, int *idx, float *w) {
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

/* Granite 4.0-H's experts for one token x [H], added into y [H] as
 * tn_hybrid_moe_forward does (y += Σ_j w_j·expert_j(x), j in order), each
 * chosen expert's two matrices read in their stored BF16/F16 rows instead
 * of converted to fp32. */
static void experts16(const tn_model *m, int l, const hyb_bufs *b, const float *x, float *y) {
    const tn_spec *sp = &m->spec;
    const int H = (int)sp->hidden, E = b->E, k = b->k, FE = b->FE;
    const int type = m->hyb->exp_dtype == TN_DTYPE_BF16 ? TN_GGML_BF16 : TN_GGML_F16;
    const uint64_t nin = 2 * (uint64_t)FE * H, nout = (uint64_t)H * FE;
    int idx[256];
    float w[256];
    tn_matmul_forward(b->router, x, m->hyb->p[l][TN_HYB_ROUTER], NULL, 1, H, E, 0);
    route1(b->router, E, k < 256 ? k : 256, idx, w);
    for (int j = 0; j < k && j < 256; j++) {
        float *gu = b->egu + (int64_t)j * 2 * FE, *eo = b->eo + (int64_t)j * H;
        tn_qmatvec(type, m->hyb->exp[l][0] + 2 * idx[j] * nin, x, gu, 2 * FE, H);
        tn_swiglu_forward(b->eh, gu, gu + FE, FE);
        tn_qmatvec(type, m->hyb->exp[l][1] + 2 * idx[j] * nout, b->eh, eo, H, FE);
    }
    for (int j = 0; j < k && j < 256; j++)
        for (int o = 0; o < H; o++) y[o] += w[j] * b->eo[(int64_t)j * H + o];
}

#define QM(k) (s->qw ? &s->qw->mat[l][k] : NULL)
static void hybrid_layer(tn_infer *s, const tn_model *m, const tn_lora *lora, const tn_layer_view *v, hyb_bufs *b, int l, int n, float *rstd) {
    const tn_spec *sp = &m->spec;
    int H = (int)sp->hidden, Q = (int)(sp->n_heads * sp->head_dim), KV = (int)(sp->n_kv_heads * sp->head_dim);
    float eps = (float)sp->rms_eps, rm = (float)sp->residual_multiplier;
    const float *const *hw = m->hyb->p[l];
    tn_rmsnorm_forward(s->xn, rstd, s->x, v->norm1, n, H, eps, 0);
    if (sp->layer_kind[l] == TN_LAYER_MAMBA) {
        int di = b->di, Cc = b->Cc, W = b->W, K1 = b->K - 1, GN = b->G * b->N;
        linear_q(QM(TN_MOD_IN_PROJ), s->qtmp, b->zx, s->xn, v->w[TN_MOD_IN_PROJ], v->bias[TN_MOD_IN_PROJ], n, H, W, lora, l, TN_MOD_IN_PROJ, s->xa);
        /* the conv over [cached K-1 rows | n new rows]; its first K-1 outputs are not used */
        float *cache = b->conv_cache + (int64_t)l * K1 * Cc;
        memcpy(b->win, cache, (size_t)K1 * Cc * sizeof(float));
        for (int i = 0; i < n; i++) memcpy(b->win + (int64_t)(K1 + i) * Cc, b->zx + (int64_t)i * W + di, (size_t)Cc * sizeof(float));
        tn_mamba_conv1d_forward(b->xbc, b->win, Cc, hw[TN_HYB_CONV_W], hw[TN_HYB_CONV_B], 1, K1 + n, Cc, b->K);
        memcpy(cache, b->win + (int64_t)n * Cc, (size_t)K1 * Cc * sizeof(float));
        const float *xbc = b->xbc + (int64_t)K1 * Cc;
        tn_mamba_dt_forward(b->dt, b->zx + di + Cc, W, hw[TN_HYB_DT_BIAS], n, b->nh, 0.0f, INFINITY);
        float *state = b->ssm + (int64_t)l * b->nh * b->P * b->N;
        tn_mamba_scan_forward(b->y, state, xbc, Cc, b->dt, hw[TN_HYB_A_LOG], xbc + di, xbc + di + GN, Cc, hw[TN_HYB_D], state, 1, n, b->nh,
                              b->P, b->G, b->N, TN_MAMBA_CHUNK);
        tn_mamba_gated_norm_forward(b->yn, rstd, b->y, b->zx, W, hw[TN_HYB_NORM], n, di, di, eps);
        linear_q(QM(TN_MOD_OUT_PROJ), s->qtmp, s->o, b->yn, v->w[TN_MOD_OUT_PROJ], v->bias[TN_MOD_OUT_PROJ], n, di, H, lora, l, TN_MOD_OUT_PROJ, s->xa);
    } else {
        linear_q(QM(TN_MOD_Q), s->qtmp, s->q, s->xn, v->w[TN_MOD_Q], v->bias[TN_MOD_Q], n, H, Q, lora, l, TN_MOD_Q, s->xa);
        linear_q(QM(TN_MOD_K), s->qtmp, s->kk, s->xn, v->w[TN_MOD_K], v->bias[TN_MOD_K], n, H, KV, lora, l, TN_MOD_K, s->xa);
        linear_q(QM(TN_MOD_V), s->qtmp, s->vv, s->xn, v->w[TN_MOD_V], v->bias[TN_MOD_V], n, H, KV, lora, l, TN_MOD_V, s->xa);
        if (sp->rope != TN_ROPE_NONE) {
            int32_t pos[CHUNK];
            for (int i = 0; i < n; i++) pos[i] = s->pos + i;
            tn_rope_forward(s->q, &m->rope, pos, n, (int)sp->n_heads, (int)sp->head_dim);
            tn_rope_forward(s->kk, &m->rope, pos, n, (int)sp->n_kv_heads, (int)sp->head_dim);
        }
        float *Kc = s->k + (int64_t)l * s->max_ctx * KV, *Vc = s->v + (int64_t)l * s->max_ctx * KV;
        memcpy(Kc + (int64_t)s->pos * KV, s->kk, (size_t)n * KV * sizeof(float));
        memcpy(Vc + (int64_t)s->pos * KV, s->vv, (size_t)n * KV * sizeof(float));
        attend(s, sp, l, s->pos, n);
        linear_q(QM(TN_MOD_O), s->qtmp, s->o, s->att, v->w[TN_MOD_O], v->bias[TN_MOD_O], n, Q, H, lora, l, TN_MOD_O, s->xa);
    }
    for (int64_t i = 0; i < (int64_t)n * H; i++) s->x[i] += rm * s->o[i];
    tn_rmsnorm_forward(s->xn, rstd, s->x, v->norm2, n, H, eps, 0);
    int Fs = b->Fs;
    linear_q(QM(TN_MOD_INPUT_LINEAR), s->qtmp, b->gu, s->xn, v->w[TN_MOD_INPUT_LINEAR], v->bias[TN_MOD_INPUT_LINEAR], n, H, 2 * Fs, lora, l, TN_MOD_INPUT_LINEAR, s->xa);
    for (int i = 0; i < n; i++) tn_swiglu_forward(b->hs + (int64_t)i * Fs, b->gu + (int64_t)i * 2 * Fs, b->gu + (int64_t)i * 2 * Fs + Fs, Fs);
    linear_q(QM(TN_MOD_OUTPUT_LINEAR), s->qtmp, s->o, b->hs, v->w[TN_MOD_OUTPUT_LINEAR], v->bias[TN_MOD_OUTPUT_LINEAR], n, Fs, H, lora, l, TN_MOD_OUTPUT_LINEAR, s->xa);
    if (b->E > 0 && n == 1 && m->hyb->exp[l][0] && m->hyb->exp[l][1] && !m->hyb->qexp) /* one token: the stored 16-bit rows */
        experts16(m, l, b, s->xn, s->o);
    else if (b->E > 0) /* the experts, grouped by expert (train/hybrid.c); the scratch holds tn_hybrid_moe_scratch(sp, CHUNK) */
        tn_hybrid_moe_forward(m, l, s->xn, n, s->o, b->router, b->egu, b->eo, b->eh);
    for (int64_t i = 0; i < (int64_t)n * H; i++) s->x[i] += rm * s->o[i];
}

static int forward_chunk(tn_infer *s, tn_model *m, const tn_lora *lora, const int32_t *tokens, int n) {
    const tn_spec *sp = &m->spec;
    int H = (int)sp->hidden, Q = (int)(sp->n_heads * sp->head_dim), KV = (int)(sp->n_kv_heads * sp->head_dim), F = (int)sp->intermediate;
    int V = (int)sp->vocab_size, L = (int)sp->n_layers;
    int one_plus = sp->family->norm == TN_NORM_RMS_ONE_PLUS;
    float eps = (float)sp->rms_eps, rm = tn_spec_residual_multiplier(sp);
    int32_t pos[CHUNK];
    for (int i = 0; i < n; i++) pos[i] = s->pos + i;
    tn_embedding_forward(s->x, m->embed_view, tokens, n, H, m->embed_scale);
    float rstd[CHUNK];
    hyb_bufs hb;
    if (sp->family->hybrid) {
        hyb_carve(s, sp, &hb);
        if (s->pos == 0) /* a new sequence: no recurrent state yet */
            memset(hb.conv_cache, 0, (size_t)(hb.ssm - hb.conv_cache + L * (int64_t)hb.nh * hb.P * hb.N) * sizeof(float));
    }
    for (int l = 0; l < L; l++) {
        tn_layer_view v; /* one token over a layer whose matrices are all attached: their fp32 copies are not needed */
        if (n == 1 && s->qw && s->qw->whole[l]) tn_model_layer_small(m, l, &v);
        else if (tn_model_layer_view(m, l, &v) != 0) return -1;
        if (sp->family->hybrid) {
            hybrid_layer(s, m, lora, &v, &hb, l, n, rstd);
            continue;
        }
        tn_rmsnorm_forward(s->xn, rstd, s->x, v.norm1, n, H, eps, one_plus);
        linear_q(QM(TN_MOD_Q), s->qtmp, s->q, s->xn, v.w[TN_MOD_Q], v.bias[TN_MOD_Q], n, H, Q, lora, l, TN_MOD_Q, s->xa);
        linear_q(QM(TN_MOD_K), s->qtmp, s->kk, s->xn, v.w[TN_MOD_K], v.bias[TN_MOD_K], n, H, KV, lora, l, TN_MOD_K, s->xa);
        linear_q(QM(TN_MOD_V), s->qtmp, s->vv, s->xn, v.w[TN_MOD_V], v.bias[TN_MOD_V], n, H, KV, lora, l, TN_MOD_V, s->xa);
        if (sp->rope != TN_ROPE_NONE) {
            tn_rope_forward(s->q, &m->rope, pos, n, (int)sp->n_heads, (int)sp->head_dim);
            tn_rope_forward(s->kk, &m->rope, pos, n, (int)sp->n_kv_heads, (int)sp->head_dim);
        }
        float *K = s->k + (int64_t)l * s->max_ctx * KV, *Vc = s->v + (int64_t)l * s->max_ctx * KV;
        memcpy(K + (int64_t)s->pos * KV, s->kk, (size_t)n * KV * sizeof(float));
        memcpy(Vc + (int64_t)s->pos * KV, s->vv, (size_t)n * KV * sizeof(float));
        attend(s, sp, l, s->pos, n);
        linear_q(QM(TN_MOD_O), s->qtmp, s->o, s->att, v.w[TN_MOD_O], v.bias[TN_MOD_O], n, Q, H, lora, l, TN_MOD_O, s->xa);
        if (sp->family->sandwich_norms) {
            tn_rmsnorm_forward(s->xn, rstd, s->o, v.post_mixer, n, H, eps, one_plus);
            memcpy(s->o, s->xn, (size_t)n * H * sizeof(float));
        }
        for (int64_t i = 0; i < (int64_t)n * H; i++) s->x[i] += rm * s->o[i];
        tn_rmsnorm_forward(s->xn, rstd, s->x, v.norm2, n, H, eps, one_plus);
        linear_q(QM(TN_MOD_GATE), s->qtmp, s->g, s->xn, v.w[TN_MOD_GATE], v.bias[TN_MOD_GATE], n, H, F, lora, l, TN_MOD_GATE, s->xa);
        linear_q(QM(TN_MOD_UP), s->qtmp, s->u, s->xn, v.w[TN_MOD_UP], v.bias[TN_MOD_UP], n, H, F, lora, l, TN_MOD_UP, s->xa);
        if (sp->family->activation == TN_ACT_GELU_TANH) tn_geglu_forward(s->h, s->g, s->u, (int64_t)n * F);
        else tn_swiglu_forward(s->h, s->g, s->u, (int64_t)n * F);
        linear_q(QM(TN_MOD_DOWN), s->qtmp, s->o, s->h, v.w[TN_MOD_DOWN], v.bias[TN_MOD_DOWN], n, F, H, lora, l, TN_MOD_DOWN, s->xa);
        if (sp->family->sandwich_norms) {
            tn_rmsnorm_forward(s->xn, rstd, s->o, v.post_mlp, n, H, eps, one_plus);
            memcpy(s->o, s->xn, (size_t)n * H * sizeof(float));
        }
        for (int64_t i = 0; i < (int64_t)n * H; i++) s->x[i] += rm * s->o[i];
    }
    /* Logits of the last position only. */
    tn_rmsnorm_forward(s->xn, rstd, s->x + (int64_t)(n - 1) * H, m->final_norm, 1, H, eps, one_plus);
#undef QM
    if (s->qw && s->qw->head.w) tn_qmatvec(s->qw->head.type, s->qw->head.w, s->xn, s->logits, V, H);
    else tn_matmul_forward(s->logits, s->xn, m->head_view, NULL, 1, H, V, 0);
    if (sp->family->multipliers && sp->logits_scaling != 1.0)
        for (int i = 0; i < V; i++) s->logits[i] /= (float)sp->logits_scaling;
    if (sp->family->softcaps && sp->final_softcap > 0) tn_softcap_forward(s->logits, s->logits, (float)sp->final_softcap, V);
    s->pos += n;
    return 0;
}

int tn_infer_forward(tn_infer *s, tn_model *m, const tn_lora *lora, const int32_t *tokens, int n) {
    if (s->pos + n > s->max_ctx) return tn_fail("context full: %d + %d tokens exceed the %d the cache holds", s->pos, n, s->max_ctx);
    for (int i = 0; i < n; i += CHUNK) {
        int c = n - i < CHUNK ? n - i : CHUNK;
        if (forward_chunk(s, m, lora, tokens + i, c) != 0) return -1;
    }
    return 0;
}
