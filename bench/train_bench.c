/* train_bench.c - training speed and memory of the CPU engine (issue 4,
 * items 8 and 9): LoRA steps on a model folder (a Qwen2.5-0.5B-shaped random
 * model made with `tune init qwen2.5-0.5b-instruct`) at sequence S, batch B,
 * on random tokens. Prints tokens/s, the FLOP rate the step implies (model
 * FLOPs: 6·N_matrix·tokens for the base products of forward and activation
 * backward... see below), OpenBLAS's own sgemm rate on this machine in the
 * same run, and the plan's predicted peak beside the measured peak RSS.
 *
 * usage: train_bench MODEL_DIR [seq 512] [batch 1] [steps 3] [--grad-checkpoint] [--qlora] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "plan/plan.h"
#include "train/model.h"
#include "train/optim.h"
#include "util/error.h"
#include "util/platform.h"
#include "util/rng.h"
#include "util/size.h"

static double sgemm_rate(int M, int N, int K) {
    float *a = malloc((size_t)M * K * 4), *b = malloc((size_t)N * K * 4), *c = malloc((size_t)M * N * 4);
    for (int64_t i = 0; i < (int64_t)M * K; i++) a[i] = (float)(i % 7) * 0.1f;
    for (int64_t i = 0; i < (int64_t)N * K; i++) b[i] = (float)(i % 5) * 0.1f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
    double t0 = tn_seconds();
    int reps = 5;
    for (int r = 0; r < reps; r++) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
    double dt = tn_seconds() - t0;
    free(a), free(b), free(c);
    return 2.0 * M * N * K * reps / dt;
}

int main(int argc, char **argv) {
    tn_platform_start(argc, argv); /* OMP_WAIT_POLICY=PASSIVE, as tune runs */
    if (argc < 2) {
        fprintf(stderr, "usage: train_bench MODEL_DIR [seq] [batch] [steps] [--grad-checkpoint]\n");
        return 2;
    }
    int S = argc > 2 ? atoi(argv[2]) : 512, B = argc > 3 ? atoi(argv[3]) : 1, steps = argc > 4 ? atoi(argv[4]) : 3;
    int ckpt = 0, qlora = 0;
    for (int i = 5; i < argc; i++) {
        if (!strcmp(argv[i], "--grad-checkpoint")) ckpt = 1;
        else if (!strcmp(argv[i], "--qlora")) qlora = TN_QUANT_NF4;
    }
    tn_model m;
    if (tn_model_open(argv[1], S, &m) != 0) return fprintf(stderr, "%s\n", tn_error()), 1;
    const tn_spec *s = &m.spec;
    tn_dtype stored = tn_spec_stored_dtype(s, &m.st);
    if (qlora && tn_model_quantize_base(&m, qlora) != 0) return fprintf(stderr, "%s\n", tn_error()), 1;
    tn_targets tg;
    tn_targets_parse(s, NULL, &tg);
    tn_lora lora;
    if (tn_lora_init(&lora, &m, &tg, 16, 32, 0, 0, -1, 1) != 0) return fprintf(stderr, "%s\n", tn_error()), 1;
    tn_plan_settings ps = {.seq = S, .batch = B, .grad_checkpoint = ckpt};
    tn_activations a;
    if (tn_activations_alloc(&a, &m, &lora, &ps) != 0) return fprintf(stderr, "%s\n", tn_error()), 1;
    tn_adamw opt;
    tn_adamw_init(&opt, lora.n_params, 1e-4, 0);
    int T = B * S;
    int32_t *ids = malloc((size_t)T * 4), *labels = malloc((size_t)T * 4);
    tn_rng r;
    tn_rng_seed(&r, 1, 2);
    for (int t = 0; t < T; t++) ids[t] = labels[t] = (int32_t)(tn_rng_next(&r) % (uint64_t)s->vocab_size);
    lora.training = 1;
    double best = 1e30, loss = 0;
    for (int k = 0; k < steps; k++) {
        memset(lora.grads, 0, (size_t)lora.n_params * 4);
        double t0 = tn_seconds();
        int64_t c;
        loss = tn_model_step(&m, &lora, &a, ids, labels, 1, 0, &c) / (double)c;
        tn_adamw_update(&opt, lora.params, lora.grads, 1e-4);
        double dt = tn_seconds() - t0;
        if (dt < best) best = dt;
        fprintf(stderr, "step %d: %.2f s, loss %.4f\n", k + 1, dt, loss);
    }
    /* Model FLOPs per token of a LoRA step: the base matrices run in the
     * forward (2 FLOPs per weight) and in the activation backward (2 more),
     * the head likewise, plus attention (QKᵀ and PV: 4·S·Q per layer forward,
     * 8·S·Q backward, halved by causality); LoRA's own products are small
     * and counted too. Recompute (checkpointing) is not counted. */
    tn_param_counts pc;
    tn_spec_count_params(s, &pc);
    /* mixtures of experts: the routed experts only (pc.active) */
    double matrix = (double)((s->n_experts > 0 ? pc.active : pc.total) - pc.norms) - (double)s->vocab_size * s->hidden * (s->tied_embeddings ? 1 : 2);
    double head = (double)s->vocab_size * s->hidden;
    double Q = (double)(s->n_heads * s->head_dim);
    double per_token = 4.0 * (matrix + head) + (double)s->n_layers * 6.0 * S * Q + 6.0 * (double)lora.n_params;
    double flops = per_token * T / best;
    double peak_sgemm = sgemm_rate(T, (int)s->intermediate, (int)s->hidden);
    tn_plan plan;
    tn_plan_settings pp = ps;
    pp.rank = 16, pp.layers = -1, pp.targets = tg, pp.qlora = qlora ? (tn_quant)qlora : TN_QUANT_NF4;
    tn_plan_make(s, stored, &pp, qlora ? TN_PLAN_QLORA : TN_PLAN_LORA, &plan);
    char g1[32], g2[32];
    printf("model %s (%s, %.1f M parameters), seq %d, batch %d%s, %s rank 16 on all projections\n", argv[1], s->model_type,
           pc.total / 1e6, S, B, ckpt ? ", gradient checkpointing" : "", qlora ? "QLoRA (nf4 base)" : "LoRA");
    printf("step %.2f s (best of %d), %.1f tokens/s, %.1f GFLOP/s model FLOPs (%.2f GFLOP per token)\n", best, steps, T / best, flops / 1e9,
           per_token / 1e9);
    printf("OpenBLAS sgemm [%d x %lld x %lld] in the same run: %.1f GFLOP/s -> the step runs at %.0f%% of it\n", T,
           (long long)s->intermediate, (long long)s->hidden, peak_sgemm / 1e9, 100.0 * flops / peak_sgemm);
    printf("memory: plan %s, measured peak RSS %s (%+.1f%%)\n", tn_format_gib(plan.total, g1, sizeof g1),
           tn_format_gib(tn_peak_rss(), g2, sizeof g2), 100.0 * ((double)tn_peak_rss() - (double)plan.total) / (double)plan.total);
    tn_activations_free(&a);
    tn_lora_free(&lora);
    tn_adamw_free(&opt);
    tn_model_close(&m);
    free(ids), free(labels);
    return 0;
}
