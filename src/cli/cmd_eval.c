/* cmd_eval.c - `tune eval MODEL [--adapter DIR] --data DIR`: loss and
 * perplexity on a split (test.jsonl by default). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "model/gguf_import.h"
#include "train/adapter.h"
#include "train/data_source.h"
#include "train/trainer.h"
#include "util/error.h"

static const char help[] =
    "usage: tune eval MODEL [--adapter DIR] --data DIR [options]\n\n"
    "Mean cross-entropy (per trained token) and perplexity of the model, with a LoRA adapter\n"
    "if given, on a split of the data folder. MODEL may be a GGUF file: its layer matrices\n"
    "are read from the file's blocks (see docs/gguf.md).\n\n"
    "options:\n"
    "  --split test|valid|train   which file (default test, else valid)\n"
    "  --max-seq-length N (2048)  --batch N (4)  --mask-prompt  --max-batches N (all)\n"
    "  --json                     one JSON object: {\"loss\", \"perplexity\", \"tokens\"}\n";

int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *data = NULL, *split_name = NULL, *v;
    int64_t max_seq = 2048, batch = 4, max_batches = 0;
    int json = 0, mask = 0;
    tn_args a = tn_args_start(argc, argv, "eval");
    while (tn_args_next(&a)) {
        if (tn_arg_flag(&a, "--help") || tn_arg_flag(&a, "-h")) {
            fputs(help, stdout);
            return TN_EXIT_OK;
        } else if (tn_arg_value(&a, "--model", &v)) model = v;
        else if (tn_arg_value(&a, "--adapter", &v)) adapter = v;
        else if (tn_arg_value(&a, "--data", &v)) data = v;
        else if (tn_arg_value(&a, "--split", &v)) split_name = v;
        else if (tn_arg_value(&a, "--max-seq-length", &v)) { if (!v || tn_arg_int("--max-seq-length", v, 2, 1 << 24, &max_seq)) a.failed = 1; }
        else if (tn_arg_value(&a, "--batch", &v) || tn_arg_value(&a, "--batch-size", &v)) { if (!v || tn_arg_int("--batch", v, 1, 1 << 16, &batch)) a.failed = 1; }
        else if (tn_arg_value(&a, "--max-batches", &v)) { if (!v || tn_arg_int("--max-batches", v, 0, INT64_MAX / 2, &max_batches)) a.failed = 1; }
        else if (tn_arg_flag(&a, "--json")) json = 1;
        else if (tn_arg_flag(&a, "--mask-prompt")) mask = 1;
        else if (tn_arg_positional(&a, &v)) model = v;
        else tn_arg_unknown(&a);
    }
    if (a.failed) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
    if (!model || !data) return fprintf(stderr, "tune eval: needs MODEL and --data DIR\n%s", help), TN_EXIT_USAGE;
    /* A GGUF: its layer matrices read from the file's own blocks, a layer
     * at a time, as training on it does (model/gguf_import.h). */
    char gguf_dir[4096] = "";
    if (tn_is_gguf_file(model)) {
        if (tn_gguf_base_temp(model, gguf_dir, sizeof gguf_dir, 1) != 0) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
        model = gguf_dir;
    }
    tn_batch_source src;
    if (tn_data_source_open(&src, model, data, (int)max_seq, (int)batch, mask, 0, NULL) != 0) {
        fprintf(stderr, "tune: %s\n", tn_error());
        if (gguf_dir[0]) tn_gguf_remove_temp(gguf_dir);
        return TN_EXIT_USAGE;
    }
    int split = -1;
    if (!split_name) split = src.n_batches(src.ctx, TN_SPLIT_TEST) > 0 ? TN_SPLIT_TEST : TN_SPLIT_VALID;
    else if (!strcmp(split_name, "test")) split = TN_SPLIT_TEST;
    else if (!strcmp(split_name, "valid")) split = TN_SPLIT_VALID;
    else if (!strcmp(split_name, "train")) split = TN_SPLIT_TRAIN;
    int rc = TN_EXIT_USAGE;
    tn_model m;
    tn_lora lora;
    int have_lora = 0;
    tn_activations acts;
    memset(&acts, 0, sizeof acts);
    if (split < 0) {
        fprintf(stderr, "tune: --split: expected test, valid or train, got '%s'\n", split_name);
        goto out_src;
    }
    if (src.n_batches(src.ctx, split) <= 0) {
        fprintf(stderr, "tune: %s: no %s samples\n", data, split == TN_SPLIT_TEST ? "test (or valid)" : split == TN_SPLIT_VALID ? "valid" : "train");
        goto out_src;
    }
    if (tn_model_open(model, src.max_seq, &m) != 0) {
        fprintf(stderr, "tune: %s\n", tn_error());
        goto out_src;
    }
    if (adapter) {
        if (tn_adapter_load(&lora, &m, adapter) != 0) {
            fprintf(stderr, "tune: %s\n", tn_error());
            goto out_model;
        }
        have_lora = 1;
    }
    tn_plan_settings ps = {.seq = src.max_seq, .batch = src.max_batch};
    if (tn_activations_alloc(&acts, &m, have_lora ? &lora : NULL, &ps) != 0) {
        fprintf(stderr, "tune: %s\n", tn_error());
        goto out_lora;
    }
    double loss;
    int64_t tokens;
    if (tn_evaluate(&m, have_lora ? &lora : NULL, &acts, &src, split, max_batches, &loss, &tokens) != 0) {
        fprintf(stderr, "tune: %s\n", tn_error());
        rc = TN_EXIT_FAILED;
        goto out_acts;
    }
    if (json) printf("{\"loss\": %.6f, \"perplexity\": %.6f, \"tokens\": %lld}\n", loss, exp(loss), (long long)tokens);
    else printf("loss %.4f, perplexity %.3f over %lld tokens\n", loss, exp(loss), (long long)tokens);
    rc = TN_EXIT_OK;
out_acts:
    tn_activations_free(&acts);
out_lora:
    if (have_lora) tn_lora_free(&lora);
out_model:
    tn_model_close(&m);
out_src:
    tn_data_source_close(&src);
    if (gguf_dir[0]) tn_gguf_remove_temp(gguf_dir);
    return rc;
}
