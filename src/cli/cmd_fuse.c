/* cmd_fuse.c - `tune fuse MODEL --adapter DIR (--out DIR [--dtype] | --gguf
 * OUT.gguf [--type T])`: the adapter merged into the weights, as a Hugging
 * Face folder (src/export/fuse.c) or a GGUF file (src/export/gguf_model.c),
 * from a Hugging Face folder or a GGUF file (dequantized to F32 first,
 * model/gguf_import.h); then how far the fused model's logits moved from
 * base + adapter on a fixed batch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "export/export.h"
#include "model/gguf_import.h"
#include "train/adapter.h"
#include "train/model.h"
#include "util/error.h"
#include "util/platform.h"
#include "util/size.h"

static const char help[] =
    "usage: tune fuse MODEL --adapter DIR --out DIR [--dtype f32|f16|bf16] [--max-shard-size SIZE]\n"
    "       tune fuse MODEL --adapter DIR --gguf OUT.gguf [--type TYPE]\n\n"
    "Merges a LoRA adapter (PEFT or mlx-lm) into the model: W' = W + scale·B·A, computed in fp32\n"
    "and stored in the model's dtype (or --dtype). Writes a Hugging Face folder that transformers,\n"
    "vLLM and `tune export` read: config.json, the tokenizer files, generation_config.json,\n"
    "model.safetensors (sharded with an index past --max-shard-size, default 5 GB as\n"
    "transformers counts: 5·10^9 bytes). MLX 4-bit (affine) bases are dequantized first.\n"
    "MODEL may be a GGUF file (F32 ... Q4_K_M): it is dequantized to F32 (a temporary folder of 4\n"
    "bytes a parameter), fused, and written as a folder (--out) or re-quantized as a GGUF (--gguf,\n"
    "--type as `tune export`). Then the fused model (the output, read back) and base + adapter run\n"
    "a fixed batch of 32 tokens and the largest logit difference is printed, absolute and relative\n"
    "to the largest |logit| (`logits moved: ...`). Outputs are written under a temporary name and\n"
    "renamed when complete.\n\n"
    "options:\n"
    "  --adapter DIR          the adapter folder\n"
    "  --out DIR              the fused model folder (new, empty, or an earlier fuse's output)\n"
    "  --dtype T              f32, f16 or bf16 (default: each tensor's own dtype)\n"
    "  --max-shard-size SIZE  largest shard (5G = 5 GiB; default 5000000000 bytes)\n"
    "  --gguf OUT.gguf        write a GGUF file instead of a folder (the adapter fused in fp32)\n"
    "  --type TYPE            its type: f32, f16 (default), bf16, q8_0, q4_0, q4_k_m, q6_k\n";

/* Logits of a fixed batch (FUSE_CHECK_TOKENS pseudo-random ids, the same for
 * every model of a vocabulary) from a folder, with the adapter if any. */
#define FUSE_CHECK_TOKENS 32
static int fixed_logits(const char *dir, const char *adapter, float **out, int64_t *n_out) {
    tn_model m;
    *out = NULL;
    if (tn_model_open(dir, FUSE_CHECK_TOKENS, &m) != 0) return -1;
    tn_lora lora;
    int have = 0, rc = -1;
    if (adapter) {
        if (tn_adapter_load(&lora, &m, adapter) != 0) goto out;
        have = 1;
    }
    int32_t ids[FUSE_CHECK_TOKENS];
    for (int i = 0; i < FUSE_CHECK_TOKENS; i++) ids[i] = (int32_t)(((uint64_t)i * 2654435761u + 12345u) % (uint64_t)m.spec.vocab_size);
    tn_activations a;
    tn_plan_settings ps = {.seq = FUSE_CHECK_TOKENS, .batch = 1};
    if (tn_activations_alloc(&a, &m, have ? &lora : NULL, &ps) != 0) goto out;
    *n_out = FUSE_CHECK_TOKENS * m.spec.vocab_size;
    *out = tn_malloc((size_t)*n_out * sizeof(float), "logits");
    if (*out && tn_activations_shape(&a, 1, FUSE_CHECK_TOKENS) == 0) rc = tn_model_logits(&m, have ? &lora : NULL, &a, ids, *out);
    tn_activations_free(&a);
out:
    if (have) tn_lora_free(&lora);
    tn_model_close(&m);
    return rc;
}

/* Prints how far the fused model's logits are from base + adapter. */
static int report_moved(const char *base_dir, const char *adapter, const char *fused_dir, const char *fused_name) {
    float *ref = NULL, *got = NULL;
    int64_t n_ref = 0, n_got = 0;
    int rc = -1;
    if (fixed_logits(base_dir, adapter, &ref, &n_ref) || fixed_logits(fused_dir, NULL, &got, &n_got)) goto done;
    if (n_ref != n_got) {
        tn_fail("%s: %lld logits, base + adapter %lld", fused_name, (long long)n_got, (long long)n_ref);
        goto done;
    }
    double diff = 0, scale = 0;
    for (int64_t i = 0; i < n_ref; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!(d <= diff)) diff = d; /* NaN counts */
        if (fabs((double)ref[i]) > scale) scale = fabs((double)ref[i]);
    }
    fprintf(stderr, "tune fuse: logits moved: largest abs %.3g, relative %.3g (%s against base + adapter, %d fixed tokens; relative to the "
                    "largest |logit| %.3g)\n",
            diff, scale > 0 ? diff / scale : diff, fused_name, FUSE_CHECK_TOKENS, scale);
    rc = 0;
done:
    free(ref), free(got);
    return rc;
}

int cmd_fuse(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *out = NULL, *gguf = NULL, *type_name = NULL, *v;
    tn_dtype dtype = TN_DTYPE_COUNT;
    uint64_t shard = 5000000000ull;
    tn_args a = tn_args_start(argc, argv, "fuse");
    while (tn_args_next(&a)) {
        if (tn_arg_flag(&a, "--help") || tn_arg_flag(&a, "-h")) {
            fputs(help, stdout);
            return TN_EXIT_OK;
        } else if (tn_arg_value(&a, "--model", &v)) model = v;
        else if (tn_arg_value(&a, "--adapter", &v) || tn_arg_value(&a, "--adapter-path", &v)) adapter = v;
        else if (tn_arg_value(&a, "--out", &v) || tn_arg_value(&a, "--save-path", &v)) out = v;
        else if (tn_arg_value(&a, "--gguf", &v)) gguf = v;
        else if (tn_arg_value(&a, "--type", &v)) type_name = v;
        else if (tn_arg_value(&a, "--dtype", &v)) {
            if (!v) a.failed = 1;
            else if (!strcmp(v, "f32") || !strcmp(v, "float32")) dtype = TN_DTYPE_F32;
            else if (!strcmp(v, "f16") || !strcmp(v, "float16")) dtype = TN_DTYPE_F16;
            else if (!strcmp(v, "bf16") || !strcmp(v, "bfloat16")) dtype = TN_DTYPE_BF16;
            else {
                tn_fail("--dtype: expected f32, f16 or bf16, got '%s'", v);
                a.failed = 1;
            }
        } else if (tn_arg_value(&a, "--max-shard-size", &v)) {
            if (!v || tn_parse_size(v, "--max-shard-size", &shard)) a.failed = 1;
            else if (shard == 0) {
                tn_fail("--max-shard-size: expected a positive size, got '%s'", v);
                a.failed = 1;
            }
        } else if (tn_arg_positional(&a, &v)) {
            if (model) {
                tn_fail("fuse: unexpected argument '%s' (the model is already %s)", v, model);
                a.failed = 1;
            } else model = v;
        } else tn_arg_unknown(&a);
    }
    if (a.failed) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
    if (!model || !adapter || (!out && !gguf))
        return fprintf(stderr, "tune fuse: needs MODEL, --adapter DIR and --out DIR (or --gguf OUT.gguf)\n%s", help), TN_EXIT_USAGE;
    if (out && gguf) return fprintf(stderr, "tune fuse: --out and --gguf are separate outputs; run them one at a time\n"), TN_EXIT_USAGE;
    if (type_name && !gguf) return fprintf(stderr, "tune fuse: --type goes with --gguf (a folder takes --dtype)\n"), TN_EXIT_USAGE;
    if (gguf && dtype != TN_DTYPE_COUNT) return fprintf(stderr, "tune fuse: --dtype goes with --out (a GGUF takes --type)\n"), TN_EXIT_USAGE;
    int type = tn_file_type_parse(type_name ? type_name : "f16");
    if (type < 0)
        return fprintf(stderr, "tune: --type: expected one of %s, got '%s'\n", tn_file_type_list(), type_name), TN_EXIT_USAGE;
    /* A GGUF base: dequantized to an F32 folder first. */
    char base_dir[4096] = "", back_dir[4096] = "";
    const char *base = model;
    if (tn_is_gguf_file(model)) {
        double t0 = tn_seconds();
        if (tn_gguf_unpack_temp(model, base_dir, sizeof base_dir) != 0) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
        fprintf(stderr, "tune fuse: %s dequantized to F32 in %.1f s (under %s while fusing)\n", model, tn_seconds() - t0, base_dir);
        base = base_dir;
    }
    tn_export_job *job = NULL;
    int rc = TN_EXIT_OK;
    if (gguf ? tn_gguf_export_prepare(&job, base, adapter, gguf, (tn_file_type)type) : tn_fuse_prepare(&job, base, adapter, out, dtype, shard)) {
        fprintf(stderr, "tune: %s\n", tn_error());
        rc = TN_EXIT_USAGE;
        goto done;
    }
    if (tn_export_run(job)) {
        fprintf(stderr, "tune: %s\n", tn_error());
        rc = TN_EXIT_FAILED;
        goto done;
    }
    /* The output read back (a GGUF dequantized as ggml does) against base + adapter. */
    const char *fused = out;
    if (gguf) {
        if (tn_gguf_unpack_temp(gguf, back_dir, sizeof back_dir) != 0) { /* written, but not readable by tune (an architecture it does not read back) */
            fprintf(stderr, "tune fuse: logits not compared: %s\n", tn_error());
            goto done;
        }
        fused = back_dir;
    }
    if (report_moved(base, adapter, fused, gguf ? gguf : out) != 0) {
        fprintf(stderr, "tune: %s\n", tn_error());
        rc = TN_EXIT_FAILED;
    }
done:
    tn_export_free(job);
    if (base_dir[0]) tn_gguf_remove_temp(base_dir);
    if (back_dir[0]) tn_gguf_remove_temp(back_dir);
    return rc;
}
