/* gpu.c - LoRA training on a CUDA device (see gpu.h).
 *
 * One layer, as forward.c (x the layer input, rm the residual multiplier):
 *   xn = norm1(x); q,k,v = xn·Wᵀ (+ b) + s·(xn·Aᵀ)·Bᵀ; rope(q, k)
 *   a = attention(q, k, v); o = a·Woᵀ (+ LoRA); [Gemma 2: o = post_norm(o)]
 *   m = x + rm·o; xn2 = norm2(m); g, u = xn2·Wᵀ; h = act(g)·u
 *   d = h·Wdᵀ (+ LoRA); [Gemma 2: d = post_norm(d)]; x' = m + rm·d
 * Saved per layer: x, rstd1, q, k, v (after rope), a, lse, m, rstd2, g, u,
 * x·Aᵀ of each adapted module (and Gemma's branch outputs); backward
 * rebuilds xn, xn2 and h. A checkpointed layer saves only x and runs its
 * forward again, into one shared set of slots, before its backward.
 *
 * The LoRA product in bf16 with fp32 accumulation:
 *   forward   xa = x·Aᵀ;  y += s·xa·Bᵀ
 *   backward  dB += s·dyᵀ·xa;  dxa = s·dy·B;  dA += dxaᵀ·x;  dx += dxa·A
 * with fp32 gradients (cuBLASLt writes fp32 from bf16 operands) and bf16
 * copies of A and B refreshed after every update.
 *
 * Modules that read the same input share their thin products (each re-reads
 * or re-writes a whole [T, in] activation): the adapted ones of a group (q,
 * k, v; gate, up; o and down alone) have their A's contiguous on the device,
 * [A_1; A_2; ...] = A_g [n·r, in], so
 *   forward   xa_g = x·A_gᵀ [T, n·r] once;  y_j += s·xa_j·B_jᵀ (xa_j: columns j·r.. of xa_g)
 *   backward  dxa_j = s·dy_j·B_j into columns j·r.. of dxa_g [T, n·r];  then once
 *             dA_g += dxa_gᵀ·x;  dx += dxa_g·A_g
 * The device layout of the LoRA parameters (p, p16, grad, moments; the
 * optimizer is elementwise): per layer, the A's of its adapted modules in
 * table order, then their B's (lora_layout); tn_gpu_upload / download map it
 * to and from tn_lora's host layout (each module [A][B]) a matrix at a time. */
#define _POSIX_C_SOURCE 200809L
#include "train/gpu.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dtype.h"
#include "plan/gpu_plan.h"
#include "train/forward_internal.h"
#include "util/error.h"
#include "util/size.h"

#ifndef TN_CUDA

/* A build without the CUDA backend: tn_gpu_open says so; nothing else can
 * be reached without a device. */
int tn_gpu_available(void) { return 0; }
int tn_gpu_open(tn_gpu **out, tn_model *m, tn_lora *lora, const tn_gpu_options *o) {
    *out = NULL;
    return tn_fail("--device cuda: this build has no CUDA backend (build with `make CUDA=1` on a machine with nvcc)");
}
void tn_gpu_close(tn_gpu *g) {}
const char *tn_gpu_name(const tn_gpu *g) { return "none"; }
int tn_gpu_checkpointed(const tn_gpu *g) { return 0; }
uint64_t tn_gpu_planned(const tn_gpu *g) { return 0; }
int tn_gpu_used(tn_gpu *g, uint64_t *used, uint64_t *total) { return tn_fail("no CUDA backend in this build"); }
double tn_gpu_step(tn_gpu *g, const int32_t *ids, const int32_t *labels, int B, int S, int want_grads, double grad_scale,
                   int64_t *counted) {
    tn_fail("no CUDA backend in this build");
    return NAN;
}
int tn_gpu_logits(tn_gpu *g, const int32_t *ids, int B, int S, float *logits) { return tn_fail("no CUDA backend in this build"); }
int tn_gpu_zero_grads(tn_gpu *g) { return tn_fail("no CUDA backend in this build"); }
int tn_gpu_grads_finish(tn_gpu *g, double scale, double max_norm, double *norm) { return tn_fail("no CUDA backend in this build"); }
int tn_gpu_adamw(tn_gpu *g, tn_adamw *opt, double lr) { return tn_fail("no CUDA backend in this build"); }
int tn_gpu_download(tn_gpu *g, tn_lora *lora, tn_adamw *opt) { return tn_fail("no CUDA backend in this build"); }
int tn_gpu_upload(tn_gpu *g, const tn_lora *lora, const tn_adamw *opt) { return tn_fail("no CUDA backend in this build"); }
int tn_gpu_download_grads(tn_gpu *g, float *grads) { return tn_fail("no CUDA backend in this build"); }
void tn_gpu_profile(tn_gpu *g, int on) {}
void tn_gpu_profile_report(tn_gpu *g, FILE *f, int steps) {}

#else

#include "nn/backend.h"
#if defined(__has_include)
#if __has_include("nn/flash_attention.h")
#include "nn/flash_attention.h"
#define HAVE_FLASH 1
#endif
#endif
#ifndef HAVE_FLASH
#define HAVE_FLASH 0
#endif

int tn_gpu_available(void) { return 1; }

#define BF TN_BF16
#define TRY(x)                                                                                                         \
    do {                                                                                                               \
        if ((x) != 0) return -1;                                                                                       \
    } while (0)

/* Profiling (TN_GPU_PROFILE=1, or tn_gpu_profile): each operation bracketed by
 * events in its category; the bench prints the sums. */
enum { P_GEMM, P_LORA, P_ATTN_F, P_ATTN_B, P_NORM, P_ELEM, P_HEAD, P_LOSS, P_OPT, P_COUNT };
static const char *const prof_names[P_COUNT] = {"base products", "LoRA products", "attention fwd", "attention bwd",
                                                "norms", "elementwise", "head products", "loss", "optimizer"};
#define PROF(g, cat, call)                                                                                             \
    do {                                                                                                               \
        if ((g)->profile) tn_cuda_prof_begin((g)->ctx, cat);                                                           \
        int rc_ = (call);                                                                                              \
        if ((g)->profile) tn_cuda_prof_end((g)->ctx);                                                                  \
        if (rc_ != 0) return -1;                                                                                       \
    } while (0)


typedef struct {
    void *w[TN_MOD_COUNT];     /* bf16 [out, in] */
    float *bias[TN_MOD_COUNT]; /* fp32 [out] or NULL */
    void *norm1, *norm2, *post_mixer, *post_mlp; /* bf16 [H] */
} dev_layer;

typedef struct {
    void *b[S_BF16_COUNT];
    float *f[F_COUNT];
} slots;

struct tn_gpu {
    tn_cuda *ctx;
    tn_model *m;
    tn_lora *lora;
    const tn_spec *s;
    int L, H, Q, KV, F, V, nh, nkv, hd, r;
    int max_tokens, max_seq;
    int checkpointed; /* layers [0, checkpointed) keep only x */
    int flash;
    float rm, eps, scale_lora, inv_logit_scale, final_cap, attn_cap, attn_scale;
    int one_plus, geglu, sandwich, n_mods_max;
    /* weights */
    dev_layer layer[TN_MAX_LAYERS];
    void *embed, *head, *final_norm;
    float *cosd, *sind;
    /* LoRA */
    int64_t n_params;
    float *p, *grad, *mom1, *mom2;
    void *p16;
    int64_t *dev_a, *dev_b; /* [lora->n] offsets of each module's A and B in the device layout */
    /* activations */
    void *arena;
    uint64_t arena_bytes, planned, context;
    slots saved[TN_MAX_LAYERS + 1]; /* [L].b[S_X] is the final norm's input */
    slots scratch;
    void *xn, *hbuf, *dres, *dbranch, *dpre, *dbig, *dxa, *fn_out, *logits;
    float *frstd, *losses, *rstd_tmp;
    void *flash_ws;
    float *f32_att; /* the fp32 attention path's buffers (no flash kernel for this head size) */
    int32_t *ids, *labels, *pos;
    int pos_B, pos_S;
    int chunk_rows;
    int32_t *host_labels;
    int profile;
    double prof_ms[P_COUNT];
};

/* ---- sizes ------------------------------------------------------------- */

static int mods_in_layer(const tn_lora *lora, int l) {
    int n = 0;
    if (!lora) return 0;
    for (int k = 0; k < TN_MOD_COUNT; k++) n += lora->index[l * TN_MOD_COUNT + k] >= 0;
    return n;
}

static int flash_fits(const tn_spec *s) {
    if (!HAVE_FLASH) return 0;
    const char *e = getenv("TN_GPU_ATTENTION");
    if (e && !strcmp(e, "simple")) return 0;
    return tn_gpu_flash_head(s);
}

/* The plan's inputs for this model and adapter. */
static tn_gpu_plan_in plan_in(const tn_spec *s, const tn_lora *lora, int batch, int seq) {
    tn_gpu_plan_in in = {.batch = batch, .seq = seq, .rank = lora ? lora->rank : 0, .lora_params = lora ? lora->n_params : 0,
                         .flash = flash_fits(s)};
    for (int l = 0; l < s->n_layers; l++) in.mods_max = mods_in_layer(lora, l) > in.mods_max ? mods_in_layer(lora, l) : in.mods_max;
    return in;
}

/* ---- weights ----------------------------------------------------------- */

static int upload_bf16(tn_gpu *g, void **dst, const float *src, int64_t n, const char *what) {
    if (!src) {
        *dst = NULL;
        return 0;
    }
    TRY(tn_cuda_alloc(g->ctx, dst, (size_t)n * 2, what));
    uint16_t *h = tn_malloc((size_t)n * 2, "bf16 staging");
    if (!h) return -1;
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) h[i] = tn_f32_to_bf16(src[i]);
    int rc = tn_cuda_upload(g->ctx, *dst, h, (size_t)n * 2);
    free(h);
    return rc;
}

static int upload_f32(tn_gpu *g, float **dst, const float *src, int64_t n, const char *what) {
    if (!src) {
        *dst = NULL;
        return 0;
    }
    TRY(tn_cuda_alloc(g->ctx, (void **)dst, (size_t)n * 4, what));
    return tn_cuda_upload(g->ctx, *dst, src, (size_t)n * 4);
}

static int upload_weights(tn_gpu *g) {
    tn_model *m = g->m;
    const tn_spec *s = g->s;
    for (int l = 0; l < g->L; l++) {
        tn_layer_view v;
        TRY(tn_model_layer_view(m, l, &v));
        dev_layer *d = &g->layer[l];
        for (int k = 0; k < TN_MOD_COUNT; k++) {
            if (!v.w[k] || !tn_module_applies(s, l, (tn_module)k)) continue;
            int in, out;
            tn_module_dims(s, (tn_module)k, &in, &out);
            TRY(upload_bf16(g, &d->w[k], v.w[k], (int64_t)in * out, "weights"));
            TRY(upload_f32(g, &d->bias[k], v.bias[k], out, "biases"));
        }
        TRY(upload_bf16(g, &d->norm1, v.norm1, g->H, "norms"));
        TRY(upload_bf16(g, &d->norm2, v.norm2, g->H, "norms"));
        TRY(upload_bf16(g, &d->post_mixer, v.post_mixer, g->H, "norms"));
        TRY(upload_bf16(g, &d->post_mlp, v.post_mlp, g->H, "norms"));
    }
    TRY(upload_bf16(g, &g->embed, m->embed_view, (int64_t)g->V * g->H, "embeddings"));
    if (m->head_view == m->embed_view) g->head = g->embed;
    else TRY(upload_bf16(g, &g->head, m->head_view, (int64_t)g->V * g->H, "output head"));
    TRY(upload_bf16(g, &g->final_norm, m->final_norm, g->H, "final norm"));
    int64_t nt = (int64_t)m->rope.max_pos * m->rope.half;
    TRY(upload_f32(g, &g->cosd, m->rope.cos, nt, "rope table"));
    TRY(upload_f32(g, &g->sind, m->rope.sin, nt, "rope table"));
    return 0;
}

/* ---- LoRA state -------------------------------------------------------- */

/* The device layout: layer by layer, the A's [r, in] of the layer's adapted
 * modules in table order, then their B's [out, r] in the same order. The
 * adapted modules of a group (q, k, v; gate, up) are neighbours in table
 * order with nothing adapted between them, so their A's are one [n·r, in]
 * matrix (checked here: same in, offsets end to end). */
static int lora_layout(tn_gpu *g) {
    const tn_lora *lo = g->lora;
    int64_t r = g->r, off = 0;
    g->dev_a = tn_malloc((size_t)lo->n * sizeof *g->dev_a, "LoRA layout");
    g->dev_b = tn_malloc((size_t)lo->n * sizeof *g->dev_b, "LoRA layout");
    if (!g->dev_a || !g->dev_b) return -1;
    for (int i = 0; i < lo->n; i++) g->dev_a[i] = g->dev_b[i] = -1;
    for (int l = 0; l < g->L; l++) {
        for (int k = 0; k < TN_MOD_COUNT; k++) {
            int i = lo->index[l * TN_MOD_COUNT + k];
            if (i < 0) continue;
            g->dev_a[i] = off;
            off += r * lo->mods[i].in;
        }
        for (int k = 0; k < TN_MOD_COUNT; k++) {
            int i = lo->index[l * TN_MOD_COUNT + k];
            if (i < 0) continue;
            g->dev_b[i] = off;
            off += r * lo->mods[i].out;
        }
    }
    if (off != lo->n_params) return tn_fail("gpu: the LoRA device layout holds %lld of %lld parameters (a bug)", (long long)off, (long long)lo->n_params);
    for (int i = 0; i < lo->n; i++)
        if (g->dev_a[i] < 0 || g->dev_b[i] < 0) return tn_fail("gpu: LoRA module %d is not in the device layout (a bug)", i);
    static const int groups[2][2] = {{TN_MOD_Q, TN_MOD_V}, {TN_MOD_GATE, TN_MOD_UP}};
    for (int l = 0; l < g->L; l++)
        for (int gi = 0; gi < 2; gi++) {
            int prev = -1;
            for (int k = groups[gi][0]; k <= groups[gi][1]; k++) {
                int i = lo->index[l * TN_MOD_COUNT + k];
                if (i < 0) continue;
                if (prev >= 0 && (lo->mods[i].in != lo->mods[prev].in || g->dev_a[i] != g->dev_a[prev] + r * lo->mods[prev].in))
                    return tn_fail("gpu: layer %d: the A's of %s and %s are not one matrix (a bug)", l, tn_module_names[lo->mods[prev].module],
                                   tn_module_names[k]);
                prev = i;
            }
        }
    return 0;
}

static int64_t mod_index(const tn_gpu *g, const tn_lora_module *mod) { return mod - g->lora->mods; }
static void *a16(const tn_gpu *g, const tn_lora_module *mod) { return (uint16_t *)g->p16 + g->dev_a[mod_index(g, mod)]; }
static void *b16(const tn_gpu *g, const tn_lora_module *mod) { return (uint16_t *)g->p16 + g->dev_b[mod_index(g, mod)]; }
static float *da_of(const tn_gpu *g, const tn_lora_module *mod) { return g->grad + g->dev_a[mod_index(g, mod)]; }
static float *db_of(const tn_gpu *g, const tn_lora_module *mod) { return g->grad + g->dev_b[mod_index(g, mod)]; }

/* Host layout (tn_lora's: module by module, [A][B], offsets as in lora->params)
 * to the device layout, or back (up = 0; each download waits), a matrix at a
 * time. host and dev each hold n_params floats. */
static int lora_copy(tn_gpu *g, float *dev, float *host, int up) {
    const tn_lora *lo = g->lora;
    for (int i = 0; i < lo->n; i++) {
        const tn_lora_module *mod = &lo->mods[i];
        int64_t ha = mod->a - lo->params, hb = mod->b - lo->params;
        size_t na = (size_t)g->r * mod->in * 4, nb = (size_t)g->r * mod->out * 4;
        if (up) {
            TRY(tn_cuda_upload(g->ctx, dev + g->dev_a[i], host + ha, na));
            TRY(tn_cuda_upload(g->ctx, dev + g->dev_b[i], host + hb, nb));
        } else {
            TRY(tn_cuda_download(g->ctx, host + ha, dev + g->dev_a[i], na));
            TRY(tn_cuda_download(g->ctx, host + hb, dev + g->dev_b[i], nb));
        }
    }
    return 0;
}

static int refresh_bf16(tn_gpu *g) { return g->n_params ? tn_cuda_to_bf16(g->ctx, g->p16, g->p, g->n_params) : 0; }

int tn_gpu_upload(tn_gpu *g, const tn_lora *lora, const tn_adamw *opt) {
    if (!g->n_params) return 0;
    if (lora->n_params != g->n_params) return tn_fail("gpu: the adapter has %lld parameters, the device %lld", (long long)lora->n_params, (long long)g->n_params);
    TRY(lora_copy(g, g->p, lora->params, 1));
    if (opt && opt->m) {
        TRY(lora_copy(g, g->mom1, opt->m, 1));
        TRY(lora_copy(g, g->mom2, opt->v, 1));
    }
    return refresh_bf16(g);
}

int tn_gpu_download(tn_gpu *g, tn_lora *lora, tn_adamw *opt) {
    if (!g->n_params) return 0;
    if (lora->n_params != g->n_params) return tn_fail("gpu: the adapter has %lld parameters, the device %lld", (long long)lora->n_params, (long long)g->n_params);
    TRY(lora_copy(g, g->p, lora->params, 0));
    if (opt && opt->m) {
        TRY(lora_copy(g, g->mom1, opt->m, 0));
        TRY(lora_copy(g, g->mom2, opt->v, 0));
    }
    return 0;
}

int tn_gpu_download_grads(tn_gpu *g, float *grads) { return g->n_params ? lora_copy(g, g->grad, grads, 0) : 0; }

int tn_gpu_zero_grads(tn_gpu *g) { return g->n_params ? tn_cuda_memset(g->ctx, g->grad, 0, (size_t)g->n_params * 4) : 0; }

int tn_gpu_grads_finish(tn_gpu *g, double scale, double max_norm, double *norm) {
    *norm = 0;
    if (!g->n_params) return 0;
    if (scale != 1.0) PROF(g, P_OPT, tn_cuda_scale_f32(g->ctx, g->grad, (float)scale, g->n_params));
    double ss;
    TRY(tn_cuda_sumsq(g->ctx, g->grad, g->n_params, &ss));
    *norm = sqrt(ss);
    /* as torch's clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1 */
    if (max_norm > 0 && isfinite(*norm)) {
        double c = max_norm / (*norm + 1e-6);
        if (c < 1.0) TRY(tn_cuda_scale_f32(g->ctx, g->grad, (float)c, g->n_params));
    }
    return 0;
}

int tn_gpu_adamw(tn_gpu *g, tn_adamw *opt, double lr) {
    if (!g->n_params) return 0;
    opt->step++;
    PROF(g, P_OPT, tn_cuda_adamw_update(g->ctx, g->p, g->grad, g->mom1, g->mom2, g->n_params, lr, opt->beta1, opt->beta2, opt->eps,
                                        opt->weight_decay, opt->step));
    PROF(g, P_OPT, refresh_bf16(g));
    if (g->profile) TRY(tn_cuda_prof_collect(g->ctx, g->prof_ms, P_COUNT));
    return 0;
}

/* ---- open / close ------------------------------------------------------ */

static void *carve(char **p, uint64_t bytes) {
    if (!bytes) return NULL;
    void *r = *p;
    *p += tn_gpu_align(bytes);
    return r;
}

static void carve_slots(char **p, slots *sl, const uint64_t bb[S_BF16_COUNT], const uint64_t fb[F_COUNT], int x_only) {
    memset(sl, 0, sizeof *sl);
    for (int i = 0; i < S_BF16_COUNT; i++)
        if (!x_only || i == S_X) sl->b[i] = carve(p, bb[i]);
    for (int i = 0; i < F_COUNT && !x_only; i++) sl->f[i] = carve(p, fb[i]);
}

int tn_gpu_open(tn_gpu **out, tn_model *m, tn_lora *lora, const tn_gpu_options *o) {
    const tn_spec *s = &m->spec;
    *out = NULL;
    if (s->family->hybrid) return tn_fail("--device cuda: %s (Mamba2 hybrid) layers are not on the GPU yet; train it on the CPU", s->model_type);
    if (m->master) return tn_fail("--device cuda trains LoRA adapters; full fine-tuning runs on the CPU for now");
    if (lora && lora->dropout > 0) return tn_fail("--device cuda: LoRA dropout is not on the GPU yet (use --dropout 0, or the CPU)");
    tn_gpu *g = tn_calloc(1, sizeof *g, "gpu trainer");
    if (!g) return -1;
    g->m = m, g->lora = lora, g->s = s;
    g->L = (int)s->n_layers, g->H = (int)s->hidden, g->nh = (int)s->n_heads, g->nkv = (int)s->n_kv_heads, g->hd = (int)s->head_dim;
    g->Q = g->nh * g->hd, g->KV = g->nkv * g->hd, g->F = (int)s->intermediate, g->V = (int)s->vocab_size;
    g->r = lora ? lora->rank : 0;
    g->max_tokens = o->max_batch * o->max_seq, g->max_seq = o->max_seq;
    g->rm = tn_spec_residual_multiplier(s);
    g->eps = (float)s->rms_eps;
    g->one_plus = s->family->norm == TN_NORM_RMS_ONE_PLUS;
    g->geglu = s->family->activation == TN_ACT_GELU_TANH;
    g->sandwich = s->family->sandwich_norms;
    g->scale_lora = lora ? lora->scale : 0;
    g->inv_logit_scale = (s->family->multipliers && s->logits_scaling != 1.0) ? (float)(1.0 / s->logits_scaling) : 1.0f;
    g->final_cap = s->family->softcaps && s->final_softcap > 0 ? (float)s->final_softcap : 0.0f;
    g->attn_cap = s->family->softcaps ? (float)s->attn_softcap : 0.0f;
    g->attn_scale = tn_spec_attention_scale(s);
    g->flash = flash_fits(s);
    if (tn_cuda_init(&g->ctx, o->device) != 0) {
        free(g);
        return -1;
    }
    *out = g;
    {
        size_t f0, t0;
        TRY(tn_cuda_mem_info(g->ctx, &f0, &t0));
        g->context = (uint64_t)(t0 - f0); /* the context, cuBLASLt's handle and workspace (and any other process) */
    }
    if (upload_weights(g) != 0) return -1;
    /* LoRA state */
    if (lora && lora->n_params) {
        g->n_params = lora->n_params;
        size_t n = (size_t)g->n_params * 4;
        TRY(tn_cuda_alloc(g->ctx, (void **)&g->p, n, "LoRA weights"));
        TRY(tn_cuda_alloc(g->ctx, (void **)&g->grad, n, "LoRA gradients"));
        TRY(tn_cuda_alloc(g->ctx, (void **)&g->mom1, n, "AdamW moments"));
        TRY(tn_cuda_alloc(g->ctx, (void **)&g->mom2, n, "AdamW moments"));
        TRY(tn_cuda_alloc(g->ctx, &g->p16, (size_t)g->n_params * 2, "LoRA bf16 copies"));
        TRY(tn_cuda_memset(g->ctx, g->mom1, 0, n));
        TRY(tn_cuda_memset(g->ctx, g->mom2, 0, n));
        TRY(tn_cuda_memset(g->ctx, g->grad, 0, n));
        TRY(lora_layout(g));
        TRY(tn_gpu_upload(g, lora, NULL));
    }
    /* Checkpointing: as asked, or as many layers as free memory needs. */
    int ck = o->checkpoint_layers;
    int T = g->max_tokens;
    tn_gpu_plan plan;
    tn_gpu_plan_in pin = plan_in(s, lora, o->max_batch, o->max_seq);
    if (ck == -1) ck = g->L;
    if (ck == -2) {
        size_t free_b, total_b;
        TRY(tn_cuda_mem_info(g->ctx, &free_b, &total_b));
        if (o->budget) {
            /* the budget holds the context and the weights already placed */
            uint64_t used_now = (uint64_t)(total_b - free_b);
            uint64_t room = o->budget > used_now ? o->budget - used_now : 0;
            if (room < free_b) free_b = (size_t)room;
        }
        uint64_t reserve = (uint64_t)64 << 20; /* the allocator's granularity, the reductions' buffer */
        ck = free_b > reserve ? tn_gpu_plan_fit(s, &pin, free_b - reserve, 1, &plan) : -1;
        if (ck < 0) {
            char a[32];
            tn_gpu_plan_make(s, &pin, g->L, &plan);
            return tn_fail("--device cuda: the activations of %d x %d tokens need %s more than the device has free, even with every "
                           "layer checkpointed (a smaller --batch or --max-seq-length)",
                           o->max_batch, o->max_seq, tn_format_gib(plan.total - plan.weights - plan.lora + reserve - free_b, a, sizeof a));
        }
    }
    if (ck < 0) ck = 0;
    if (ck > g->L) ck = g->L;
    g->checkpointed = ck;
    tn_gpu_plan_make(s, &pin, ck, &plan);
    g->planned = plan.total + g->context;
    uint64_t arena = plan.total - plan.weights - plan.lora;
    TRY(tn_cuda_alloc(g->ctx, &g->arena, arena, "activations"));
    g->arena_bytes = arena;
    char *p = g->arena;
    uint64_t bb[S_BF16_COUNT], fb[F_COUNT], w[W_COUNT];
    g->n_mods_max = pin.mods_max;
    tn_gpu_slot_sizes(s, T, pin.mods_max, g->r, bb, fb);
    for (int l = 0; l < g->L; l++) carve_slots(&p, &g->saved[l], bb, fb, l < ck);
    g->saved[g->L].b[S_X] = carve(&p, (uint64_t)T * g->H * 2);
    if (ck > 0) carve_slots(&p, &g->scratch, bb, fb, 0);
    tn_gpu_work_sizes(s, o->max_batch, o->max_seq, g->r, g->flash, w);
    g->xn = carve(&p, w[W_XN]);
    g->hbuf = carve(&p, w[W_H]);
    g->dres = carve(&p, w[W_DRES]);
    g->dbranch = carve(&p, w[W_DBRANCH]);
    g->dpre = carve(&p, w[W_DPRE]);
    g->dbig = carve(&p, w[W_DBIG]);
    g->dxa = carve(&p, w[W_DXA]);
    g->fn_out = carve(&p, w[W_FN]);
    g->logits = carve(&p, w[W_LOGITS]);
    g->frstd = carve(&p, w[W_FRSTD]);
    g->losses = carve(&p, w[W_LOSSES]);
    g->rstd_tmp = carve(&p, w[W_RSTD]);
    g->ids = carve(&p, w[W_IDS]);
    g->labels = carve(&p, w[W_LABELS]);
    g->pos = carve(&p, w[W_POS]);
    g->flash_ws = carve(&p, w[W_FLASH]);
    g->f32_att = carve(&p, w[W_F32ATT]);
    if ((uint64_t)(p - (char *)g->arena) > arena) return tn_fail("gpu: the activation layout overran its plan (a bug)");
    g->chunk_rows = tn_gpu_chunk_rows(s, T);
    g->host_labels = tn_malloc((size_t)T * 2 * sizeof *g->host_labels, "labels");
    if (!g->host_labels) return -1;
    return tn_cuda_sync(g->ctx);
}

void tn_gpu_close(tn_gpu *g) {
    if (!g) return;
    if (g->ctx) {
        for (int l = 0; l < g->L; l++) {
            dev_layer *d = &g->layer[l];
            for (int k = 0; k < TN_MOD_COUNT; k++) tn_cuda_dfree(d->w[k]), tn_cuda_dfree(d->bias[k]);
            tn_cuda_dfree(d->norm1), tn_cuda_dfree(d->norm2), tn_cuda_dfree(d->post_mixer), tn_cuda_dfree(d->post_mlp);
        }
        if (g->head != g->embed) tn_cuda_dfree(g->head);
        tn_cuda_dfree(g->embed), tn_cuda_dfree(g->final_norm), tn_cuda_dfree(g->cosd), tn_cuda_dfree(g->sind);
        tn_cuda_dfree(g->p), tn_cuda_dfree(g->grad), tn_cuda_dfree(g->mom1), tn_cuda_dfree(g->mom2), tn_cuda_dfree(g->p16);
        tn_cuda_dfree(g->arena);
        tn_cuda_free(g->ctx);
    }
    free(g->host_labels);
    free(g->dev_a), free(g->dev_b);
    free(g);
}

const char *tn_gpu_name(const tn_gpu *g) { return tn_cuda_device_name(g->ctx); }
int tn_gpu_checkpointed(const tn_gpu *g) { return g->checkpointed; }
uint64_t tn_gpu_planned(const tn_gpu *g) { return g->planned; }
int tn_gpu_used(tn_gpu *g, uint64_t *used, uint64_t *total) {
    size_t f, t;
    TRY(tn_cuda_mem_info(g->ctx, &f, &t));
    *used = (uint64_t)(t - f), *total = (uint64_t)t;
    return 0;
}

/* ---- Linear with LoRA ---------------------------------------------------- */

static const tn_lora_module *mod_of(const tn_gpu *g, int l, tn_module k) { return tn_train_lora_mod(g->lora, l, k); }

/* The LoRA group of an adapted module k of layer l: the adapted modules of
 * the layer that read its input (of q, k, v; of gate, up; k alone otherwise),
 * in table order. Their A's are one matrix A_g [n·r, in] starting at the
 * first one's (lora_layout), and their x·Aᵀ one [T, n·r] block of the layer's
 * S_XA slot (row stride n·r; module k's r columns start at pos·r), placed
 * after the blocks of the adapted modules before the group in table order:
 * the slot holds [T, r] per adapted module, as before grouping. */
typedef struct {
    const tn_lora_module *first; /* the group's first adapted module: A_g and dA_g start at its A */
    int n;                       /* adapted modules in the group */
    int pos;                     /* k's place among them */
    uint16_t *xa;                /* x·A_gᵀ [T, n·r] */
} lora_group;

static void group_of(const tn_gpu *g, const slots *sl, int l, tn_module k, int T, lora_group *gr) {
    int k0 = (int)k, k1 = (int)k;
    if (k == TN_MOD_Q || k == TN_MOD_K || k == TN_MOD_V) k0 = TN_MOD_Q, k1 = TN_MOD_V;
    else if (k == TN_MOD_GATE || k == TN_MOD_UP) k0 = TN_MOD_GATE, k1 = TN_MOD_UP;
    const int *idx = g->lora->index + l * TN_MOD_COUNT;
    int before = 0;
    for (int j = 0; j < k0; j++) before += idx[j] >= 0;
    gr->first = NULL, gr->n = 0, gr->pos = 0;
    for (int j = k0; j <= k1; j++) {
        if (idx[j] < 0) continue;
        if (!gr->first) gr->first = &g->lora->mods[idx[j]];
        if (j < (int)k) gr->pos++;
        gr->n++;
    }
    gr->xa = (uint16_t *)sl->b[S_XA] + (int64_t)before * T * g->r;
}

/* y = x·Wᵀ (+ b) + s·(x·Aᵀ)·Bᵀ */
static int linear_forward(tn_gpu *g, void *y, const void *x, int l, tn_module k, const slots *sl, int T) {
    const dev_layer *d = &g->layer[l];
    int in, out;
    tn_module_dims(g->s, k, &in, &out);
    PROF(g, P_GEMM, tn_cuda_gemm_xwt(g->ctx, y, BF, x, d->w[k], BF, T, in, out, 1.f, 0.f));
    if (d->bias[k]) PROF(g, P_ELEM, tn_cuda_add_bias(g->ctx, y, d->bias[k], BF, T, out));
    const tn_lora_module *mod = mod_of(g, l, k);
    if (!mod) return 0;
    lora_group gr;
    group_of(g, sl, l, k, T, &gr);
    int r = g->r, ld = gr.n * r;
    /* the group's first module computes xa_g = x·A_gᵀ for all of it (layer_forward runs a group's modules in table order) */
    if (gr.pos == 0) PROF(g, P_LORA, tn_cuda_gemm_xwt(g->ctx, gr.xa, BF, x, a16(g, gr.first), BF, T, in, ld, 1.f, 0.f));
    const uint16_t *xa = gr.xa + (int64_t)gr.pos * r;
    PROF(g, P_LORA, tn_cuda_gemm_xwt_ld(g->ctx, y, out, BF, xa, ld, b16(g, mod), r, BF, T, r, out, g->scale_lora, 1.f));
    return 0;
}

/* dx = dy·W + beta·dx (+ s·(dy·B)·A); dB += s·dyᵀ·xa; dA += (s·dy·B)ᵀ·x */
static int linear_backward(tn_gpu *g, void *dx, float beta, const void *dy, const void *x, int l, tn_module k, const slots *sl, int T,
                           int want_grads) {
    const dev_layer *d = &g->layer[l];
    int in, out;
    tn_module_dims(g->s, k, &in, &out);
    PROF(g, P_GEMM, tn_cuda_gemm_dyw(g->ctx, dx, BF, dy, d->w[k], BF, T, in, out, 1.f, beta));
    const tn_lora_module *mod = mod_of(g, l, k);
    if (!mod || !want_grads) return 0;
    lora_group gr;
    group_of(g, sl, l, k, T, &gr);
    int r = g->r, ld = gr.n * r;
    const uint16_t *xa = gr.xa + (int64_t)gr.pos * r;
    uint16_t *dxa = (uint16_t *)g->dxa + (int64_t)gr.pos * r; /* module k's columns of dxa_g [T, n·r] */
    float s = g->scale_lora;
    PROF(g, P_LORA, tn_cuda_gemm_dytx_ld(g->ctx, db_of(g, mod), r, TN_F32, dy, out, xa, ld, BF, T, r, out, s, 1.f));
    PROF(g, P_LORA, tn_cuda_gemm_dyw_ld(g->ctx, dxa, ld, BF, dy, out, b16(g, mod), r, BF, T, r, out, s, 0.f));
    /* the group's last module adds dA_g and dx for all of it: layer_backward runs a group's modules in table order,
     * all with the same x and dx, and only the first of them (adapted or not) writes dx with beta = 0 */
    if (gr.pos < gr.n - 1) return 0;
    PROF(g, P_LORA, tn_cuda_gemm_dytx(g->ctx, da_of(g, gr.first), TN_F32, g->dxa, x, BF, T, in, ld, 1.f, 1.f));
    PROF(g, P_LORA, tn_cuda_gemm_dyw(g->ctx, dx, BF, g->dxa, a16(g, gr.first), BF, T, in, ld, 1.f, 1.f));
    return 0;
}

/* ---- attention ------------------------------------------------------------ */

static int attention_forward(tn_gpu *g, slots *sl, int l, int B, int S) {
    int T = B * S, window = tn_spec_layer_window(g->s, l);
#if HAVE_FLASH
    if (g->flash)
        return tn_cuda_flash_attention_forward(g->ctx, sl->b[S_ATT], sl->f[F_LSE], sl->b[S_Q], sl->b[S_K], sl->b[S_V], B, S, g->nh, g->nkv,
                                               g->hd, g->attn_scale, g->attn_cap, window);
#endif
    /* fp32 path: convert, run the simple kernel, convert back */
    float *q = g->f32_att, *o = q + (int64_t)T * g->Q, *k = o + (int64_t)T * g->Q, *v = k + (int64_t)T * g->KV;
    TRY(tn_cuda_to_f32(g->ctx, q, sl->b[S_Q], (int64_t)T * g->Q));
    TRY(tn_cuda_to_f32(g->ctx, k, sl->b[S_K], (int64_t)T * g->KV));
    TRY(tn_cuda_to_f32(g->ctx, v, sl->b[S_V], (int64_t)T * g->KV));
    TRY(tn_cuda_attention_forward(g->ctx, o, sl->f[F_LSE], q, k, v, B, S, g->nh, g->nkv, g->hd, g->attn_scale, g->attn_cap, window));
    return tn_cuda_to_bf16(g->ctx, sl->b[S_ATT], o, (int64_t)T * g->Q);
}

/* dq, dk, dv (bf16, written) from datt */
static int attention_backward(tn_gpu *g, void *dq, void *dk, void *dv, const void *datt, slots *sl, int l, int B, int S) {
    int T = B * S, window = tn_spec_layer_window(g->s, l);
#if HAVE_FLASH
    if (g->flash)
        return tn_cuda_flash_attention_backward(g->ctx, dq, dk, dv, datt, sl->b[S_ATT], sl->f[F_LSE], sl->b[S_Q], sl->b[S_K], sl->b[S_V],
                                                g->flash_ws, B, S, g->nh, g->nkv, g->hd, g->attn_scale, g->attn_cap, window);
#endif
    int64_t TQ = (int64_t)T * g->Q, TKV = (int64_t)T * g->KV;
    float *q = g->f32_att, *o = q + TQ, *k = o + TQ, *v = k + TKV, *dq32 = v + TKV, *do32 = dq32 + TQ, *dk32 = do32 + TQ, *dv32 = dk32 + TKV;
    TRY(tn_cuda_to_f32(g->ctx, q, sl->b[S_Q], TQ));
    TRY(tn_cuda_to_f32(g->ctx, o, sl->b[S_ATT], TQ));
    TRY(tn_cuda_to_f32(g->ctx, k, sl->b[S_K], TKV));
    TRY(tn_cuda_to_f32(g->ctx, v, sl->b[S_V], TKV));
    TRY(tn_cuda_to_f32(g->ctx, do32, datt, TQ));
    TRY(tn_cuda_memset(g->ctx, dq32, 0, (size_t)TQ * 4));
    TRY(tn_cuda_memset(g->ctx, dk32, 0, (size_t)TKV * 4));
    TRY(tn_cuda_memset(g->ctx, dv32, 0, (size_t)TKV * 4));
    TRY(tn_cuda_attention_backward(g->ctx, dq32, dk32, dv32, do32, o, sl->f[F_LSE], q, k, v, B, S, g->nh, g->nkv, g->hd, g->attn_scale,
                                   g->attn_cap, window));
    TRY(tn_cuda_to_bf16(g->ctx, dq, dq32, TQ));
    TRY(tn_cuda_to_bf16(g->ctx, dk, dk32, TKV));
    return tn_cuda_to_bf16(g->ctx, dv, dv32, TKV);
}

/* ---- one layer ----------------------------------------------------------- */

static slots *slots_of(tn_gpu *g, int l) { return l < g->checkpointed ? &g->scratch : &g->saved[l]; }

static int mlp_act_forward(tn_gpu *g, void *h, const void *gt, const void *u, int64_t n) {
    return g->geglu ? tn_cuda_geglu_forward(g->ctx, h, gt, u, BF, n) : tn_cuda_swiglu_forward(g->ctx, h, gt, u, BF, n);
}

static int layer_forward(tn_gpu *g, int l, int B, int S) {
    int T = B * S, H = g->H;
    const dev_layer *d = &g->layer[l];
    slots *sl = slots_of(g, l);
    void *x = g->saved[l].b[S_X], *out = g->saved[l + 1].b[S_X];
    int64_t TH = (int64_t)T * H;
    PROF(g, P_NORM, tn_cuda_rmsnorm_forward(g->ctx, g->xn, sl->f[F_RSTD1], x, d->norm1, BF, T, H, g->eps, g->one_plus));
    TRY(linear_forward(g, sl->b[S_Q], g->xn, l, TN_MOD_Q, sl, T));
    TRY(linear_forward(g, sl->b[S_K], g->xn, l, TN_MOD_K, sl, T));
    TRY(linear_forward(g, sl->b[S_V], g->xn, l, TN_MOD_V, sl, T));
    if (g->s->rope != TN_ROPE_NONE) {
        PROF(g, P_ELEM, tn_cuda_rope_forward(g->ctx, sl->b[S_Q], BF, g->cosd, g->sind, g->pos, T, g->nh, g->hd));
        PROF(g, P_ELEM, tn_cuda_rope_forward(g->ctx, sl->b[S_K], BF, g->cosd, g->sind, g->pos, T, g->nkv, g->hd));
    }
    PROF(g, P_ATTN_F, attention_forward(g, sl, l, B, S));
    void *o = g->sandwich ? sl->b[S_MIXB] : g->dpre;
    TRY(linear_forward(g, o, sl->b[S_ATT], l, TN_MOD_O, sl, T));
    if (g->sandwich) {
        PROF(g, P_NORM, tn_cuda_rmsnorm_forward(g->ctx, g->dpre, sl->f[F_RSTD_PM], o, d->post_mixer, BF, T, H, g->eps, g->one_plus));
        o = g->dpre;
    }
    PROF(g, P_ELEM, tn_cuda_residual_forward(g->ctx, sl->b[S_MID], x, o, g->rm, BF, TH));
    PROF(g, P_NORM, tn_cuda_rmsnorm_forward(g->ctx, g->xn, sl->f[F_RSTD2], sl->b[S_MID], d->norm2, BF, T, H, g->eps, g->one_plus));
    TRY(linear_forward(g, sl->b[S_G], g->xn, l, TN_MOD_GATE, sl, T));
    TRY(linear_forward(g, sl->b[S_U], g->xn, l, TN_MOD_UP, sl, T));
    PROF(g, P_ELEM, mlp_act_forward(g, g->hbuf, sl->b[S_G], sl->b[S_U], (int64_t)T * g->F));
    void *dn = g->sandwich ? sl->b[S_MLPB] : g->dpre;
    TRY(linear_forward(g, dn, g->hbuf, l, TN_MOD_DOWN, sl, T));
    if (g->sandwich) {
        PROF(g, P_NORM, tn_cuda_rmsnorm_forward(g->ctx, g->dpre, sl->f[F_RSTD_PF], dn, d->post_mlp, BF, T, H, g->eps, g->one_plus));
        dn = g->dpre;
    }
    PROF(g, P_ELEM, tn_cuda_residual_forward(g->ctx, out, sl->b[S_MID], dn, g->rm, BF, TH));
    return 0;
}

/* d(branch) = rm·dres: dres itself when rm = 1 (it is only read until the
 * norm's backward adds into it), else scaled into dbranch. */
static int branch_grad(tn_gpu *g, void **dbr, int64_t n) {
    if (g->rm == 1.0f) {
        *dbr = g->dres;
        return 0;
    }
    *dbr = g->dbranch;
    PROF(g, P_ELEM, tn_cuda_axpby(g->ctx, g->dbranch, g->dres, g->rm, 0.f, BF, n));
    return 0;
}

/* On entry g->dres holds dL/d(layer output); on exit dL/d(layer input). */
static int layer_backward(tn_gpu *g, int l, int B, int S, int want_grads) {
    int T = B * S, H = g->H, F = g->F;
    const dev_layer *d = &g->layer[l];
    slots *sl = slots_of(g, l);
    void *x = g->saved[l].b[S_X];
    int64_t TH = (int64_t)T * H, TF = (int64_t)T * F;
    /* MLP branch: out = mid + rm·post(d) */
    void *ddown;
    TRY(branch_grad(g, &ddown, TH));
    if (g->sandwich) {
        PROF(g, P_ELEM, tn_cuda_memset(g->ctx, g->dpre, 0, (size_t)TH * 2));
        PROF(g, P_NORM, tn_cuda_rmsnorm_backward(g->ctx, g->dpre, NULL, ddown, sl->b[S_MLPB], d->post_mlp, sl->f[F_RSTD_PF], BF, T, H,
                                                 g->one_plus));
        ddown = g->dpre;
    }
    PROF(g, P_ELEM, mlp_act_forward(g, g->hbuf, sl->b[S_G], sl->b[S_U], TF)); /* h, rebuilt */
    uint16_t *dh = g->dbig, *dg = g->hbuf;
    TRY(linear_backward(g, dh, 0.f, ddown, g->hbuf, l, TN_MOD_DOWN, sl, T, want_grads));
    /* dg written over h (no longer needed), du over dh */
    PROF(g, P_ELEM, tn_cuda_glu_backward_write(g->ctx, g->geglu, dg, dh, dh, sl->b[S_G], sl->b[S_U], BF, TF));
    void *du = dh;
    PROF(g, P_NORM, tn_cuda_rmsnorm_forward(g->ctx, g->xn, g->rstd_tmp, sl->b[S_MID], d->norm2, BF, T, H, g->eps, g->one_plus)); /* xn2 */
    TRY(linear_backward(g, g->dpre, 0.f, dg, g->xn, l, TN_MOD_GATE, sl, T, want_grads));
    TRY(linear_backward(g, g->dpre, 1.f, du, g->xn, l, TN_MOD_UP, sl, T, want_grads));
    PROF(g, P_NORM, tn_cuda_rmsnorm_backward(g->ctx, g->dres, NULL, g->dpre, sl->b[S_MID], d->norm2, sl->f[F_RSTD2], BF, T, H, g->one_plus));
    /* attention branch: mid = x + rm·post(o) */
    void *do_;
    TRY(branch_grad(g, &do_, TH));
    if (g->sandwich) {
        PROF(g, P_ELEM, tn_cuda_memset(g->ctx, g->dpre, 0, (size_t)TH * 2));
        PROF(g, P_NORM, tn_cuda_rmsnorm_backward(g->ctx, g->dpre, NULL, do_, sl->b[S_MIXB], d->post_mixer, sl->f[F_RSTD_PM], BF, T, H,
                                                 g->one_plus));
        do_ = g->dpre;
    }
    int64_t TQ = (int64_t)T * g->Q, TKV = (int64_t)T * g->KV;
    uint16_t *datt = g->dbig, *dq = datt + TQ, *dk = dq + TQ, *dv = dk + TKV;
    TRY(linear_backward(g, datt, 0.f, do_, sl->b[S_ATT], l, TN_MOD_O, sl, T, want_grads));
    PROF(g, P_ATTN_B, attention_backward(g, dq, dk, dv, datt, sl, l, B, S));
    if (g->s->rope != TN_ROPE_NONE) {
        PROF(g, P_ELEM, tn_cuda_rope_backward(g->ctx, dq, BF, g->cosd, g->sind, g->pos, T, g->nh, g->hd));
        PROF(g, P_ELEM, tn_cuda_rope_backward(g->ctx, dk, BF, g->cosd, g->sind, g->pos, T, g->nkv, g->hd));
    }
    PROF(g, P_NORM, tn_cuda_rmsnorm_forward(g->ctx, g->xn, g->rstd_tmp, x, d->norm1, BF, T, H, g->eps, g->one_plus)); /* xn */
    void *dxn = g->sandwich ? g->dbranch : g->dpre; /* not do_'s buffer */
    if (dxn == do_) dxn = g->dbranch;
    TRY(linear_backward(g, dxn, 0.f, dq, g->xn, l, TN_MOD_Q, sl, T, want_grads));
    TRY(linear_backward(g, dxn, 1.f, dk, g->xn, l, TN_MOD_K, sl, T, want_grads));
    TRY(linear_backward(g, dxn, 1.f, dv, g->xn, l, TN_MOD_V, sl, T, want_grads));
    PROF(g, P_NORM, tn_cuda_rmsnorm_backward(g->ctx, g->dres, NULL, dxn, x, d->norm1, sl->f[F_RSTD1], BF, T, H, g->one_plus));
    return 0;
}

/* ---- whole model ------------------------------------------------------------ */

static int prepare(tn_gpu *g, const int32_t *ids, int B, int S) {
    int T = B * S;
    if (T > g->max_tokens || S > g->max_seq)
        return tn_fail("batch of %d x %d tokens is larger than the %d tokens (sequences of at most %d) the device was sized for", B, S,
                       g->max_tokens, g->max_seq);
    if (S > g->m->rope.max_pos) return tn_fail("sequence of %d tokens is longer than the rope table (%d)", S, g->m->rope.max_pos);
    if (g->pos_B != B || g->pos_S != S) {
        int32_t *pos = g->host_labels + T; /* scratch */
        for (int t = 0; t < T; t++) pos[t] = t % S;
        TRY(tn_cuda_upload(g->ctx, g->pos, pos, (size_t)T * 4));
        g->pos_B = B, g->pos_S = S;
    }
    TRY(tn_cuda_upload(g->ctx, g->ids, ids, (size_t)T * 4));
    PROF(g, P_ELEM, tn_cuda_embedding_forward(g->ctx, g->saved[0].b[S_X], g->embed, g->ids, BF, T, g->H, g->m->embed_scale));
    for (int l = 0; l < g->L; l++) TRY(layer_forward(g, l, B, S));
    PROF(g, P_NORM, tn_cuda_rmsnorm_forward(g->ctx, g->fn_out, g->frstd, g->saved[g->L].b[S_X], g->final_norm, BF, T, g->H, g->eps, g->one_plus));
    return 0;
}

static int step(tn_gpu *g, const int32_t *ids, int B, int S, int want_grads, double grad_scale, double *loss) {
    int T = B * S, H = g->H, V = g->V;
    TRY(prepare(g, ids, B, S));
    /* the head and the loss, a chunk of rows at a time; the chunk's logits
     * become their gradient, and its rows of d(final norm output) are written */
    for (int r0 = 0; r0 < T; r0 += g->chunk_rows) {
        int rows = T - r0 < g->chunk_rows ? T - r0 : g->chunk_rows;
        const uint16_t *fn = (const uint16_t *)g->fn_out + (int64_t)r0 * H;
        PROF(g, P_HEAD, tn_cuda_gemm_xwt(g->ctx, g->logits, BF, fn, g->head, BF, rows, H, V, g->inv_logit_scale, 0.f));
        PROF(g, P_LOSS, tn_cuda_cross_entropy_bf16(g->ctx, g->logits, g->losses + r0, g->labels + r0, rows, V, g->final_cap, (float)grad_scale));
        if (want_grads)
            PROF(g, P_HEAD, tn_cuda_gemm_dyw(g->ctx, (uint16_t *)g->dbranch + (int64_t)r0 * H, BF, g->logits, g->head, BF, rows, H, V,
                                            g->inv_logit_scale, 0.f));
    }
    if (want_grads) {
        PROF(g, P_ELEM, tn_cuda_memset(g->ctx, g->dres, 0, (size_t)T * H * 2));
        PROF(g, P_NORM, tn_cuda_rmsnorm_backward(g->ctx, g->dres, NULL, g->dbranch, g->saved[g->L].b[S_X], g->final_norm, g->frstd, BF, T, H,
                                                 g->one_plus));
        for (int l = g->L - 1; l >= 0; l--) {
            if (l < g->checkpointed) TRY(layer_forward(g, l, B, S));
            TRY(layer_backward(g, l, B, S, 1));
        }
    }
    TRY(tn_cuda_sum(g->ctx, g->losses, T, loss));
    if (g->profile) TRY(tn_cuda_prof_collect(g->ctx, g->prof_ms, P_COUNT));
    return 0;
}

double tn_gpu_step(tn_gpu *g, const int32_t *ids, const int32_t *labels, int B, int S, int want_grads, double grad_scale, int64_t *counted) {
    int T = B * S;
    int32_t *shifted = g->host_labels;
    int64_t n_count = tn_shift_labels(labels, T, S, shifted);
    if (counted) *counted = n_count;
    if (grad_scale <= 0) grad_scale = n_count ? 1.0 / (double)n_count : 0.0;
    double loss;
    if (tn_cuda_upload(g->ctx, g->labels, shifted, (size_t)T * 4) != 0 || step(g, ids, B, S, want_grads, grad_scale, &loss) != 0) return NAN;
    return loss;
}

void tn_gpu_profile(tn_gpu *g, int on) {
    g->profile = on;
    memset(g->prof_ms, 0, sizeof g->prof_ms);
}

void tn_gpu_profile_report(tn_gpu *g, FILE *f, int steps) {
    double total = 0;
    for (int i = 0; i < P_COUNT; i++) total += g->prof_ms[i];
    fprintf(f, "device time per step by category (events around each operation; %d steps):\n", steps);
    for (int i = 0; i < P_COUNT; i++)
        fprintf(f, "  %-16s %8.2f ms  %5.1f%%\n", prof_names[i], g->prof_ms[i] / steps, total > 0 ? 100.0 * g->prof_ms[i] / total : 0.0);
    fprintf(f, "  %-16s %8.2f ms\n", "sum", total / steps);
}

int tn_gpu_logits(tn_gpu *g, const int32_t *ids, int B, int S, float *logits) {
    int T = B * S, H = g->H, V = g->V;
    TRY(prepare(g, ids, B, S));
    uint16_t *h = tn_malloc((size_t)g->chunk_rows * V * 2, "logits");
    if (!h) return -1;
    for (int r0 = 0; r0 < T; r0 += g->chunk_rows) {
        int rows = T - r0 < g->chunk_rows ? T - r0 : g->chunk_rows;
        const uint16_t *fn = (const uint16_t *)g->fn_out + (int64_t)r0 * H;
        if (tn_cuda_gemm_xwt(g->ctx, g->logits, BF, fn, g->head, BF, rows, H, V, g->inv_logit_scale, 0.f) != 0 ||
            tn_cuda_download(g->ctx, h, g->logits, (size_t)rows * V * 2) != 0) {
            free(h);
            return -1;
        }
        float *dst = logits + (int64_t)r0 * V;
        for (int64_t i = 0; i < (int64_t)rows * V; i++) {
            float z = tn_bf16_to_f32(h[i]);
            dst[i] = g->final_cap > 0 ? g->final_cap * tanhf(z / g->final_cap) : z;
        }
    }
    free(h);
    return 0;
}

#endif
