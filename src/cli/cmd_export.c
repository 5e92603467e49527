/* cmd_export.c - `tune export MODEL --gguf OUT.gguf --type T [--adapter DIR]`
 * and `tune export MODEL --adapter DIR --gguf-adapter OUT.gguf`: GGUF files
 * for llama.cpp (src/export/). */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "export/export.h"
#include "model/gguf_import.h"
#include "util/error.h"
#include "util/platform.h"

static const char help[] =
    "usage: tune export MODEL --gguf OUT.gguf [--type TYPE] [--adapter DIR]\n"
    "       tune export MODEL --adapter DIR --gguf-adapter OUT.gguf\n\n"
    "Writes a GGUF file that llama.cpp (Ollama, LM Studio) loads: the model, with a LoRA adapter\n"
    "fused on the fly when --adapter is given, or the adapter alone as a GGUF LoRA adapter to\n"
    "apply at run time (llama.cpp --lora) on the GGUF of the same base. Tensor names, Q/K\n"
    "permutation, metadata and tokenizer follow llama.cpp's convert_hf_to_gguf.py; quantized\n"
    "types follow llama-quantize (bit-identical blocks). One tensor is in memory at a time; the\n"
    "file is written under a temporary name and renamed when complete.\n"
    "MODEL may be a GGUF file: --gguf-adapter then writes the adapter for that very file (e.g. one\n"
    "trained by `tune train FILE.gguf`); --gguf re-exports it (dequantized to F32 first).\n\n"
    "options:\n"
    "  --gguf OUT.gguf          the model file to write\n"
    "  --type TYPE              f32, f16 (default), bf16, q8_0, q4_0, q4_k_m, q6_k. K-quants need\n"
    "                           rows that are a multiple of 256 values; others fall back as\n"
    "                           llama-quantize does (Q4_K -> Q5_0, Q6_K -> Q8_0, then F16)\n"
    "  --adapter DIR            a PEFT or mlx-lm LoRA adapter\n"
    "  --gguf-adapter OUT.gguf  write the adapter as a GGUF LoRA adapter (needs --adapter)\n"
    "  --dequantized DIR        also write DIR: an HF folder (F32) of the weights exactly as the\n"
    "                           GGUF holds them (quantized, then dequantized as ggml does), to\n"
    "                           measure what the type costs with `tune eval` / `tune logits`\n";

/* The folder of an output path must exist. */
static int check_parent(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) return 0;
    if (slash == dir) slash[1] = 0;
    else *slash = 0;
    if (!tn_is_directory(dir)) return tn_fail("%s: the folder %s does not exist", path, dir);
    return 0;
}

int cmd_export(int argc, char **argv) {
    const char *model = NULL, *gguf = NULL, *gguf_adapter = NULL, *adapter = NULL, *type_name = "f16", *dequantized = NULL, *v;
    tn_args a = tn_args_start(argc, argv, "export");
    while (tn_args_next(&a)) {
        if (tn_arg_flag(&a, "--help") || tn_arg_flag(&a, "-h")) {
            fputs(help, stdout);
            return TN_EXIT_OK;
        } else if (tn_arg_value(&a, "--model", &v)) model = v;
        else if (tn_arg_value(&a, "--gguf", &v)) gguf = v;
        else if (tn_arg_value(&a, "--gguf-adapter", &v)) gguf_adapter = v;
        else if (tn_arg_value(&a, "--adapter", &v)) adapter = v;
        else if (tn_arg_value(&a, "--dequantized", &v)) dequantized = v;
        else if (tn_arg_value(&a, "--type", &v) || tn_arg_value(&a, "--outtype", &v)) type_name = v;
        else if (tn_arg_positional(&a, &v)) {
            if (model) {
                tn_fail("export: unexpected argument '%s' (the model is already %s)", v, model);
                a.failed = 1;
            } else model = v;
        } else tn_arg_unknown(&a);
    }
    if (a.failed) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
    if (!model || (!gguf && !gguf_adapter))
        return fprintf(stderr, "tune export: needs MODEL and --gguf OUT.gguf or --gguf-adapter OUT.gguf\n%s", help), TN_EXIT_USAGE;
    if (gguf && gguf_adapter)
        return fprintf(stderr, "tune export: --gguf and --gguf-adapter are separate exports; run them one at a time\n"), TN_EXIT_USAGE;
    if (dequantized && !gguf) return fprintf(stderr, "tune export: --dequantized goes with --gguf\n"), TN_EXIT_USAGE;
    if (gguf_adapter && !adapter) return fprintf(stderr, "tune export: --gguf-adapter needs --adapter DIR\n"), TN_EXIT_USAGE;
    int type = tn_file_type_parse(type_name ? type_name : "");
    if (type < 0)
        return fprintf(stderr, "tune: --type: expected one of %s, got '%s'\n", tn_file_type_list(), type_name ? type_name : ""),
               TN_EXIT_USAGE;
    const char *out = gguf ? gguf : gguf_adapter;
    if (check_parent(out)) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
    /* A GGUF base: for an adapter only its metadata and norms are needed
     * (the names and the Q/K permutation come from the family table); a
     * model is dequantized to F32 first (re-quantized, fused on the way). */
    char base_dir[4096] = "";
    const char *base = model;
    if (tn_is_gguf_file(model)) {
        if (gguf_adapter ? tn_gguf_base_temp(model, base_dir, sizeof base_dir, 0) : tn_gguf_unpack_temp(model, base_dir, sizeof base_dir))
            return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
        base = base_dir;
    }
    tn_export_job *job = NULL;
    int rc = gguf ? tn_gguf_export_prepare(&job, base, adapter, gguf, (tn_file_type)type)
                  : tn_gguf_adapter_prepare(&job, base, adapter, gguf_adapter);
    if (!rc && dequantized) rc = tn_gguf_export_set_dequantized(job, dequantized);
    if (rc) {
        fprintf(stderr, "tune: %s\n", tn_error());
        tn_export_free(job);
        if (base_dir[0]) tn_gguf_remove_temp(base_dir);
        return TN_EXIT_USAGE;
    }
    rc = tn_export_run(job);
    tn_export_free(job);
    if (base_dir[0]) tn_gguf_remove_temp(base_dir);
    if (rc) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_FAILED;
    return TN_EXIT_OK;
}
