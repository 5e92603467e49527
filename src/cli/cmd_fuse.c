/* cmd_fuse.c - `tune fuse MODEL --adapter DIR --out DIR [--dtype]`: the
 * adapter merged into the weights, as a Hugging Face folder (src/export/fuse.c). */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "export/export.h"
#include "util/error.h"
#include "util/size.h"

static const char help[] =
    "usage: tune fuse MODEL --adapter DIR --out DIR [--dtype f32|f16|bf16] [--max-shard-size SIZE]\n\n"
    "Merges a LoRA adapter (PEFT or mlx-lm) into the model: W' = W + scale·B·A, computed in fp32\n"
    "and stored in the model's dtype (or --dtype). Writes a Hugging Face folder that transformers,\n"
    "vLLM and `tune export` read: config.json, the tokenizer files, generation_config.json,\n"
    "model.safetensors (sharded with an index past --max-shard-size, default 5 GB as\n"
    "transformers counts: 5·10^9 bytes). MLX 4-bit (affine) bases are dequantized first.\n"
    "The folder is written under a temporary name and renamed when complete.\n\n"
    "options:\n"
    "  --adapter DIR          the adapter folder\n"
    "  --out DIR              the fused model folder (new, empty, or an earlier fuse's output)\n"
    "  --dtype T              f32, f16 or bf16 (default: each tensor's own dtype)\n"
    "  --max-shard-size SIZE  largest shard (5G = 5 GiB; default 5000000000 bytes)\n";

int cmd_fuse(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *out = NULL, *v;
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
    if (!model || !adapter || !out) return fprintf(stderr, "tune fuse: needs MODEL, --adapter DIR and --out DIR\n%s", help), TN_EXIT_USAGE;
    tn_export_job *job = NULL;
    if (tn_fuse_prepare(&job, model, adapter, out, dtype, shard)) {
        fprintf(stderr, "tune: %s\n", tn_error());
        tn_export_free(job);
        return TN_EXIT_USAGE;
    }
    int rc = tn_export_run(job);
    tn_export_free(job);
    if (rc) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_FAILED;
    return TN_EXIT_OK;
}
