#define _POSIX_C_SOURCE 200809L
/* check_train_gpu.c - `make check-gpu`, second part: the LoRA training step
 * of --device cuda (train/gpu.c) against the CPU engine (train/forward.c, the
 * reference that matches transformers + PEFT to ~1e-5 on these fixtures), on
 * each model folder given, with random tokens and random nonzero LoRA B
 * (PEFT starts B at zero, which would leave every dA zero and hide errors in
 * the A path). Compared, each as ‖gpu − cpu‖/‖cpu‖ with its largest
 * difference: the logits of every position, the summed loss, and the LoRA
 * gradients (whole, and the worst module). Then the same step with every
 * layer checkpointed must give the same gradients (it recomputes the same
 * products), and the fp32 reference attention kernel in place of the flash
 * kernel must agree within bf16 tolerance. The first model runs again with
 * a partial target list ("q_proj,v_proj,down_proj", the first layer not
 * adapted) and the second with "k_proj,v_proj,o_proj,up_proj": the device
 * groups the LoRA products of modules that share an input (q, k, v; gate,
 * up), and these give groups with gaps, groups starting past their first
 * module, lone members and layers with no group.
 *
 * Tolerances: the device stores the base weights and every activation in
 * bf16 (8 significant bits, rounding error u = 2^-8 = 3.9e-3 per value) and
 * accumulates in fp32, as PEFT's bf16 run does. Through a few layers the
 * per-element roundings partly average out but also compound through the
 * norms and products: logits and loss within 2e-2 normwise, gradients
 * (a difference of products of rounded values) within 5e-2. A wrong index,
 * a missing term or a wrong scale shows as 0.3 or more.
 *
 * usage: check_train_gpu MODEL_DIR... ; exits 1 on any failure. The models are
 * made by `make check-gpu` with `tune init tests/gpu/configs/FAMILY.json`: the
 * fixtures' configs with head sizes the device kernels take (64, 128, 256),
 * sliding windows shorter than the sequence, bf16 weights. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "train/gpu.h"
#include "train/model.h"
#include "util/error.h"
#include "util/rng.h"

#ifndef TN_CUDA
int main(void) {
    fprintf(stderr, "check_train_gpu: build with make CUDA=1\n");
    return 1;
}
#else

#define TOL_OUT 2e-2
#define TOL_GRAD 5e-2

static int failures;

static double rel(const float *a, const float *b, int64_t n, double *maxdiff) {
    double num = 0, den = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d, den += (double)b[i] * b[i];
        if (fabs(d) > mx || d != d) mx = fabs(d);
    }
    if (maxdiff) *maxdiff = mx;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void report(const char *fix, const char *what, double r, double mx, double tol) {
    int ok = r <= tol && isfinite(r);
    printf("  %-10s %-34s rel %.3e  max %.3e  %s\n", fix, what, r, mx, ok ? "ok" : "FAIL");
    if (!ok) failures++;
}

#define CK(x)                                                                                                          \
    do {                                                                                                               \
        if ((x) != 0) {                                                                                                \
            fprintf(stderr, "check_train_gpu: %s: %s\n", dir, tn_error());                                            \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

/* targets: NULL (all) or a --targets list, adapting all layers but the first */
static void check_fixture(const char *dir, uint64_t seed, const char *targets) {
    const char *base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    char fixb[64];
    snprintf(fixb, sizeof fixb, "%s%s", base, targets ? "/part" : "");
    const char *fix = fixb;
    int B = 2, S = 100, T = B * S;
    tn_model m;
    CK(tn_model_open(dir, S, &m));
    const tn_spec *s = &m.spec;
    if (s->family->hybrid) {
        printf("  %-10s skipped: Mamba2 hybrid layers are not on the GPU yet\n", fix);
        tn_model_close(&m);
        return;
    }
    /* Random biases where the family has them (tune init writes zeros):
     * the views point at the model's fp32 copies of its small tensors
     * (16-bit checkpoints), which both engines read. */
    tn_rng rb;
    tn_rng_seed(&rb, seed, 3);
    for (int l = 0; l < s->n_layers; l++) {
        tn_layer_view v;
        CK(tn_model_layer_view(&m, l, &v));
        for (int k = 0; k < TN_MOD_COUNT; k++) {
            if (!v.bias[k]) continue;
            int in, out;
            tn_module_dims(s, (tn_module)k, &in, &out);
            float *b = (float *)v.bias[k];
            for (int j = 0; j < out; j++) b[j] = 0.2f * (2.0f * (float)tn_rng_uniform(&rb) - 1.0f);
        }
    }
    tn_targets tg;
    CK(tn_targets_parse(s, targets, &tg));
    tn_lora lora;
    int layers = targets && s->n_layers > 1 ? (int)s->n_layers - 1 : -1;
    CK(tn_lora_init(&lora, &m, &tg, 8, 16, 0, 0.0, layers, seed));
    if (targets) printf("  %-10s targets %s, layers %d..%d: %d modules\n", fix, targets, lora.first_layer, (int)s->n_layers - 1, lora.n);
    tn_rng r;
    tn_rng_seed(&r, seed, 7);
    for (int i = 0; i < lora.n; i++) {
        tn_lora_module *mod = &lora.mods[i];
        for (int64_t j = 0; j < (int64_t)lora.rank * mod->out; j++) mod->b[j] = 0.05f * (2.0f * (float)tn_rng_uniform(&r) - 1.0f);
    }
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    for (int t = 0; t < T; t++) ids[t] = (int32_t)(tn_rng_uniform(&r) * (double)s->vocab_size) % (int32_t)s->vocab_size;
    int64_t V = s->vocab_size, n = lora.n_params;
    float *lc = malloc((size_t)T * V * 4), *lg = malloc((size_t)T * V * 4), *gc = malloc((size_t)n * 4), *gg = malloc((size_t)n * 4),
          *g2 = malloc((size_t)n * 4), *gf = malloc((size_t)n * 4);
    /* CPU reference */
    tn_activations a;
    tn_plan_settings ps = {.seq = S, .batch = B};
    CK(tn_activations_alloc(&a, &m, &lora, &ps));
    CK(tn_model_logits(&m, &lora, &a, ids, lc));
    memset(lora.grads, 0, (size_t)n * 4);
    int64_t cnt;
    double loss_c = tn_model_step(&m, &lora, &a, ids, ids, 1, 0, &cnt);
    memcpy(gc, lora.grads, (size_t)n * 4);
    tn_activations_free(&a);
    /* device: flash attention, then the fp32 reference attention kernel
     * (each against the CPU), then every layer checkpointed */
    double mx, e;
    for (int pass = 0; pass < 3; pass++) {
        const char *how = pass == 1 ? "fp32 attn" : pass == 2 ? "ckpt all" : "flash";
        if (pass == 1) setenv("TN_GPU_ATTENTION", "simple", 1);
        else unsetenv("TN_GPU_ATTENTION");
        tn_gpu *g;
        tn_gpu_options go = {.max_batch = B, .max_seq = S, .checkpoint_layers = pass == 2 ? -1 : 0};
        CK(tn_gpu_open(&g, &m, &lora, &go));
        CK(tn_gpu_zero_grads(g));
        double loss_g = tn_gpu_step(g, ids, ids, B, S, 1, 0, &cnt);
        CK(tn_gpu_download_grads(g, pass == 2 ? g2 : gg));
        char what[128];
        if (pass < 2) {
            CK(tn_gpu_logits(g, ids, B, S, lg));
            e = rel(lg, lc, (int64_t)T * V, &mx);
            snprintf(what, sizeof what, "%s: logits", how);
            report(fix, what, e, mx, TOL_OUT);
            float lcf = (float)loss_c, lgf = (float)loss_g;
            e = rel(&lgf, &lcf, 1, &mx);
            snprintf(what, sizeof what, "%s: loss (summed)", how);
            report(fix, what, e, mx, TOL_OUT);
            e = rel(gg, gc, n, &mx);
            snprintf(what, sizeof what, "%s: LoRA gradients (all)", how);
            report(fix, what, e, mx, TOL_GRAD);
            double worst = 0, wmx = 0;
            int wi = 0;
            for (int i = 0; i < lora.n; i++) {
                tn_lora_module *mod = &lora.mods[i];
                int64_t off = mod->a - lora.params, len = (int64_t)lora.rank * (mod->in + mod->out);
                double ei = rel(gg + off, gc + off, len, &mx);
                if (ei > worst) worst = ei, wmx = mx, wi = i;
            }
            snprintf(what, sizeof what, "%s: LoRA grads (worst: %d.%s)", how, lora.mods[wi].layer, tn_module_names[lora.mods[wi].module]);
            report(fix, what, worst, wmx, TOL_GRAD);
            if (pass == 0) memcpy(gf, gg, (size_t)n * 4); /* the flash pass's gradients, for the checkpointed pass */
        }
        tn_gpu_close(g);
    }
    e = rel(g2, gf, n, &mx);
    report(fix, "ckpt all = none (flash, gradients)", e, mx, 1e-6);
    unsetenv("TN_GPU_ATTENTION");
    free(lc), free(lg), free(gc), free(gg), free(g2), free(gf), free(ids);
    tn_lora_free(&lora);
    tn_model_close(&m);
}

int main(int argc, char **argv) {
    uint64_t seed = getenv("TN_SEED") ? strtoull(getenv("TN_SEED"), NULL, 10) : (uint64_t)time(NULL);
    printf("check_train_gpu: seed %llu (TN_SEED= replays)\n", (unsigned long long)seed);
    for (int i = 1; i < argc; i++) check_fixture(argv[i], seed + (uint64_t)i, NULL);
    if (argc > 1) check_fixture(argv[1], seed + 101, "q_proj,v_proj,down_proj");
    if (argc > 2) check_fixture(argv[2], seed + 102, "k_proj,v_proj,o_proj,up_proj");
    printf("check_train_gpu: %s (%d failed)\n", failures ? "FAILED" : "all passed", failures);
    return failures ? 1 : 0;
}
#endif
