/* cmd_demo.c - `tune demo`: the pipeline on the embedded tiny model and
 * data, each output's location printed: init a 4-layer Llama-shaped model
 * of 0.85 M parameters (config and a 512-entry byte-level BPE tokenizer
 * compiled into tune), check it, generate from it (noise: it is random),
 * train it from scratch on 30 questions and answers about tune (full
 * fine-tuning), evaluate, generate again, export a q8_0 GGUF and generate
 * from that file. */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "util/atomic_file.h"
#include "util/embedded.h"
#include "util/error.h"
#include "util/platform.h"

static const char help[] =
    "usage: tune demo [--out DIR] [--iters N]\n\n"
    "Runs the pipeline on the embedded tiny model: writes a randomly initialised 4-layer\n"
    "Llama-shaped model (0.85 M parameters, 512-token vocabulary), checks it, generates from\n"
    "it, trains it from scratch on 30 questions and answers about tune (full fine-tuning,\n"
    "--iters steps, default 250), evaluates it, generates again, exports a q8_0 GGUF for\n"
    "llama.cpp and generates from that file. Outputs go to DIR\n"
    "(default ./tune-demo). Takes well under a minute on two cores.\n";

static int run(const char *title, int (*cmd)(int, char **), int argc, char **argv) {
    fprintf(stderr, "\n== %s: tune", title);
    for (int i = 0; i < argc; i++) fprintf(stderr, " %s", argv[i]);
    fprintf(stderr, "\n");
    fflush(stdout);
    int rc = cmd(argc, argv);
    fflush(stdout);
    if (rc != 0) fprintf(stderr, "tune demo: stage '%s' failed (exit %d)\n", title, rc);
    return rc;
}

static int write_embedded(const char *name, const char *dir, const char *as) {
    for (int i = 0; i < tn_demo_files_count; i++)
        if (!strcmp(tn_demo_files[i].name, name)) {
            char path[4200];
            snprintf(path, sizeof path, "%s/%s", dir, as);
            return tn_write_file_atomic(path, tn_demo_files[i].data, tn_demo_files[i].size);
        }
    return tn_fail("the embedded file %s is missing from this build", name);
}

int cmd_demo(int argc, char **argv) {
    const char *out = "tune-demo", *v;
    const char *iters = "250";
    tn_args a = tn_args_start(argc, argv, "demo");
    while (tn_args_next(&a)) {
        if (tn_arg_flag(&a, "--help") || tn_arg_flag(&a, "-h")) {
            fputs(help, stdout);
            return TN_EXIT_OK;
        } else if (tn_arg_value(&a, "--out", &v)) {
            out = v;
        } else if (tn_arg_value(&a, "--iters", &v)) {
            iters = v;
        } else {
            tn_arg_unknown(&a);
        }
    }
    if (a.failed) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
    char cfg[4200], model[4200], data[4200], trained[4200], gguf[4200];
    snprintf(cfg, sizeof cfg, "%s/tiny-config.json", out);
    snprintf(model, sizeof model, "%s/model", out);
    snprintf(data, sizeof data, "%s/data", out);
    snprintf(trained, sizeof trained, "%s/trained", out);
    snprintf(gguf, sizeof gguf, "%s/trained-q8_0.gguf", out);
    if (tn_make_dirs(out) || tn_make_dirs(data) || write_embedded("tiny-config.json", out, "tiny-config.json") ||
        write_embedded("demo-train.jsonl", data, "train.jsonl") || write_embedded("demo-valid.jsonl", data, "valid.jsonl"))
        return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_FAILED;

    char *init_argv[] = {"init", cfg, "--out", model, "--seed", "0"};
    if (run("init", cmd_init, 6, init_argv)) return TN_EXIT_FAILED;
    if (write_embedded("tiny-tokenizer.json", model, "tokenizer.json") ||
        write_embedded("tiny-tokenizer_config.json", model, "tokenizer_config.json"))
        return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_FAILED;
    char *check_argv[] = {"check", model, "--max-seq-length", "192", "--batch", "8", "--budget", "16G"};
    char *before_argv[] = {"generate", model, "--prompt", "What is tune?", "--temp", "0", "--max-tokens", "24"};
    char *train_argv[] = {"train", model, "--data", data, "--out", trained, "--fine-tune-type", "full", "--iters", (char *)iters,
                          "--batch", "8", "--lr", "5e-3", "--schedule", "cosine", "--warmup", "20", "--weight-decay", "0.01",
                          "--val-every", "50", "--save-every", "0", "--seed", "0", "--max-seq-length", "192"};
    char *eval_before[] = {"eval", model, "--data", data, "--split", "valid"};
    char *eval_after[] = {"eval", trained, "--data", data, "--split", "valid"};
    char *after_argv[] = {"generate", trained, "--prompt", "What is tune?", "--temp", "0", "--max-tokens", "64"};
    char *after2_argv[] = {"generate", trained, "--prompt", "What is LoRA?", "--temp", "0", "--max-tokens", "64"};
    if (run("check", cmd_check, 8, check_argv)) return TN_EXIT_FAILED;
    if (run("generate before training (random weights)", cmd_generate, 8, before_argv)) return TN_EXIT_FAILED;
    if (run("eval before training", cmd_eval, 6, eval_before)) return TN_EXIT_FAILED;
    if (run("train from scratch", cmd_train, (int)(sizeof train_argv / sizeof *train_argv), train_argv)) return TN_EXIT_FAILED;
    if (run("eval after training", cmd_eval, 6, eval_after)) return TN_EXIT_FAILED;
    if (run("generate after training", cmd_generate, 8, after_argv)) return TN_EXIT_FAILED;
    if (run("generate after training", cmd_generate, 8, after2_argv)) return TN_EXIT_FAILED;
    char *export_argv[] = {"export", trained, "--gguf", gguf, "--type", "q8_0"};
    char *gguf_argv[] = {"generate", gguf, "--prompt", "What is tune?", "--temp", "0", "--max-tokens", "64"};
    if (run("export GGUF for llama.cpp / Ollama / LM Studio", cmd_export, 6, export_argv)) return TN_EXIT_FAILED;
    if (run("generate from the GGUF", cmd_generate, 8, gguf_argv)) return TN_EXIT_FAILED;
    fprintf(stderr,
            "\ntune demo: done.\n"
            "  model (random init):  %s/ (config.json, model.safetensors, tokenizer.json, tokenizer_config.json)\n"
            "  data:                 %s/ (train.jsonl: 30 questions and answers about tune; valid.jsonl: 4 of them)\n"
            "  trained model:        %s/ (model.safetensors, log.jsonl, loss.svg)\n"
            "  GGUF (q8_0):          %s (llama.cpp, Ollama, LM Studio load it)\n",
            model, data, trained, gguf);
    return TN_EXIT_OK;
}
