/* main.c - `tune COMMAND ...`: finds the command and runs it. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "util/error.h"
#include "util/platform.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"check", cmd_check, "compatibility and memory plan, from config.json and tensor headers"},
    {"init", cmd_init, "write a randomly initialised checkpoint of a preset or config"},
    {"train", cmd_train, "LoRA or full fine-tuning on JSONL data (PEFT-format adapters)"},
    {"eval", cmd_eval, "loss and perplexity on a data split, with or without an adapter"},
    {"generate", cmd_generate, "text generation with a KV cache, the chat template, sampling"},
    {"fuse", cmd_fuse, "merge a LoRA adapter into the weights: a Hugging Face folder"},
    {"export", cmd_export, "GGUF for llama.cpp (f32 ... q4_k_m), with the adapter fused, or the adapter alone"},
    {"logits", cmd_logits, "next-token probabilities and a greedy continuation of token ids, as JSON"},
    {"doctor", cmd_doctor, "the whole chain on a model, each output reloaded and compared"},
    {"demo", cmd_demo, "run the pipeline on the embedded tiny model"},
    {"template", cmd_template, "a model's chat template applied to messages, as transformers renders it"},
    {"tokenize", cmd_tokenize, "text on stdin -> token ids, as Hugging Face tokenizers gives them"},
    {"detokenize", cmd_detokenize, "token ids on stdin -> text"},
    {"data", cmd_data, "dataset report: formats, token lengths, masking, padding, problems"},
};
static const int n_commands = (int)(sizeof commands / sizeof commands[0]);

static void usage(FILE *f) {
    fprintf(f, "usage: tune COMMAND [MODEL] [options]\n\n"
               "Fine-tune small open LLMs on one machine: check, train, fuse, export, generate.\n\n"
               "commands:\n");
    for (int i = 0; i < n_commands; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`tune COMMAND --help` describes each command.\n");
}

int main(int argc, char **argv) {
    tn_platform_start(argc, argv);
    if (argc < 2) {
        usage(stderr);
        return TN_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return TN_EXIT_OK;
    }
    for (int i = 0; i < n_commands; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "tune: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return TN_EXIT_USAGE;
}
