/* gpu_train_bench.c - LoRA training speed and device memory of `--device
 * cuda` (issue 7), the counterpart of ../shared/bench/hf_peft_baseline.py:
 * the same step (LoRA r on all seven projections, alpha 2r, dropout 0,
 * AdamW, labels = inputs) on random tokens, timed over `steps` steps after
 * `warm` warm-up steps, the device synchronised at both ends (the loss of
 * each step is read back, which waits for it). Prints one JSON line as the
 * baseline does, plus the device memory in use (cudaMemGetInfo: the whole
 * process, CUDA context included), the plan's prediction and the MFU.
 *
 * Model FLOPs per token (recompute not counted): 4·N_matrix for the frozen
 * products (forward, and the activation gradient in backward; no weight
 * gradient) + 12·r·Σ(in+out) for the LoRA products (forward 2, backward 4
 * of the three shapes, roughly) + attention 6·S·hd·nh per layer (causal:
 * QKᵀ and PV forward over S/2 keys on average, four such products backward).
 *
 * usage: gpu_train_bench MODEL_DIR NAME [seq 2048] [batch 4] [--ckpt N|all|auto] [--steps 8] [--warm 3] [--rank 16]
 *        [--budget-gib G (with --ckpt auto: the whole process within G GiB)] [--peak TFLOPS (989.4, H100 SXM dense bf16)] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/gpu.h"
#include "train/model.h"
#include "train/optim.h"
#include "util/error.h"
#include "util/platform.h"
#include "util/rng.h"

#ifndef TN_CUDA
int main(void) {
    fprintf(stderr, "gpu_train_bench: build with make CUDA=1\n");
    return 1;
}
#else

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: gpu_train_bench MODEL_DIR NAME [seq] [batch] [--ckpt N|all|auto] [--steps N] [--warm N] [--rank R]\n");
        return 2;
    }
    const char *dir = argv[1], *name = argv[2];
    int seq = 2048, batch = 4, steps = 8, warm = 3, rank = 16, ckpt = -2, npos = 0;
    double peak = 989.4;
    uint64_t budget = 0;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--ckpt") && i + 1 < argc) {
            const char *v = argv[++i];
            ckpt = !strcmp(v, "all") ? -1 : !strcmp(v, "auto") ? -2 : atoi(v);
        } else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warm") && i + 1 < argc) warm = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rank") && i + 1 < argc) rank = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--peak") && i + 1 < argc) peak = atof(argv[++i]);
        else if (!strcmp(argv[i], "--budget-gib") && i + 1 < argc) budget = (uint64_t)(atof(argv[++i]) * 1073741824.0);
        else if (npos == 0) seq = atoi(argv[i]), npos++;
        else batch = atoi(argv[i]);
    }
    tn_model m;
    if (tn_model_open(dir, seq, &m) != 0) {
        fprintf(stderr, "gpu_train_bench: %s\n", tn_error());
        return 1;
    }
    const tn_spec *s = &m.spec;
    tn_targets targets;
    if (tn_targets_parse(s, "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", &targets) != 0) {
        fprintf(stderr, "gpu_train_bench: %s\n", tn_error());
        return 1;
    }
    tn_lora lora;
    tn_adamw opt;
    if (tn_lora_init(&lora, &m, &targets, rank, 2.0 * rank, 0, 0.0, -1, 0) != 0 || tn_adamw_init(&opt, lora.n_params, 1e-4, 0.01) != 0) {
        fprintf(stderr, "gpu_train_bench: %s\n", tn_error());
        return 1;
    }
    tn_gpu *g;
    tn_gpu_options go = {.max_batch = batch, .max_seq = seq, .checkpoint_layers = ckpt, .budget = budget};
    if (tn_gpu_open(&g, &m, &lora, &go) != 0) {
        fprintf(stderr, "gpu_train_bench: %s\n", tn_error());
        return 1;
    }
    int T = batch * seq;
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    tn_rng r;
    tn_rng_seed(&r, 1234, 0);
    for (int t = 0; t < T; t++) ids[t] = (int32_t)(tn_rng_uniform(&r) * (double)s->vocab_size) % (int32_t)s->vocab_size;
    double loss = 0, t0 = 0;
    for (int i = 0; i < warm + steps; i++) {
        if (i == warm) t0 = tn_seconds();
        int64_t counted;
        double norm;
        if (tn_gpu_zero_grads(g) != 0) goto fail;
        double sum = tn_gpu_step(g, ids, ids, batch, seq, 1, 1.0, &counted);
        if (isnan(sum) || tn_gpu_grads_finish(g, 1.0 / (double)counted, 0, &norm) != 0 || tn_gpu_adamw(g, &opt, 1e-4) != 0) goto fail;
        loss = sum / (double)counted;
    }
    double dt = tn_seconds() - t0;
    if (getenv("TN_GPU_PROFILE")) {
        /* a few more steps with every operation timed, after the timed ones */
        tn_gpu_profile(g, 1);
        for (int i = 0; i < 3; i++) {
            int64_t counted;
            double norm;
            if (tn_gpu_zero_grads(g) != 0 || isnan(tn_gpu_step(g, ids, ids, batch, seq, 1, 1.0, &counted)) ||
                tn_gpu_grads_finish(g, 1.0 / (double)counted, 0, &norm) != 0 || tn_gpu_adamw(g, &opt, 1e-4) != 0)
                goto fail;
        }
        tn_gpu_profile_report(g, stderr, 3);
        tn_gpu_profile(g, 0);
    }
    uint64_t used, total;
    if (tn_gpu_used(g, &used, &total) != 0) goto fail;
    /* model FLOPs per token */
    double nmat = 0, lora_io = 0;
    for (int l = 0; l < s->n_layers; l++)
        for (int k = 0; k < TN_MOD_COUNT; k++) {
            if (!tn_module_applies(s, l, (tn_module)k)) continue;
            int in, out;
            tn_module_dims(s, (tn_module)k, &in, &out);
            nmat += (double)in * out;
            lora_io += (double)in + out;
        }
    nmat += (double)s->vocab_size * s->hidden;
    double attn = 6.0 * seq * (double)s->head_dim * (double)s->n_heads * (double)s->n_layers;
    double flops_tok = 4.0 * nmat + 12.0 * rank * lora_io + attn;
    double tok_s = (double)T * steps / dt;
    printf("{\"impl\": \"tune\", \"model\": \"%s\", \"seq\": %d, \"bs\": %d, \"ckpt_layers\": %d, \"layers\": %d, \"rank\": %d, \"gpu\": \"%s\", "
           "\"tok_s\": %.0f, \"device_used_gib\": %.2f, \"planned_gib\": %.2f, \"loss\": %.4f, \"gflop_per_token\": %.2f, \"tflops\": %.1f, "
           "\"mfu\": %.3f}\n",
           name, seq, batch, tn_gpu_checkpointed(g), (int)s->n_layers, rank, tn_gpu_name(g), tok_s, used / 1073741824.0,
           tn_gpu_planned(g) / 1073741824.0, loss, flops_tok / 1e9, tok_s * flops_tok / 1e12, tok_s * flops_tok / 1e12 / peak);
    fflush(stdout);
    tn_gpu_close(g);
    free(ids);
    return 0;
fail:
    fprintf(stderr, "gpu_train_bench: %s\n", tn_error());
    return 1;
}
#endif
