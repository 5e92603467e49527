/* cmd_train.c - `tune train MODEL --data DIR --out DIR [options]`. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/train_config.h"
#include "io/json.h"
#include "model/gguf_import.h"
#include "plan/plan.h"
#include "train/data_source.h"
#include "train/trainer.h"
#include "util/error.h"
#include "util/platform.h"
#include "util/size.h"

static const char help[] =
    "usage: tune train MODEL --data DIR --out DIR [options] [-c config.yaml]\n\n"
    "LoRA fine-tuning on the CPU, numerically as transformers + PEFT + torch's AdamW.\n"
    "MODEL is a Hugging Face folder or a GGUF file (F32 ... Q4_K_M): a GGUF is the frozen base as\n"
    "llama.cpp runs it, its layer matrices dequantized from the file's own blocks a layer at a\n"
    "time; export the adapter for that same file with `tune export FILE.gguf --adapter OUT\n"
    "--gguf-adapter A.gguf`.\n"
    "DIR holds train.jsonl (and valid.jsonl): chat {\"messages\"}, completions {\"prompt\",\n"
    "\"completion\"} or text {\"text\"} records. Writes into --out: adapter_model.safetensors and\n"
    "adapter_config.json (PEFT's format), log.jsonl, loss.svg and checkpoints/NNNNNNN/.\n\n"
    "model and adapter:\n"
    "  --rank R (8)  --alpha A (16)  --dropout P (0)  --rslora  --targets LIST (all)  --layers N (all)\n"
    "  --init-adapter DIR    start from a PEFT or mlx-lm adapter\n"
    "  --resume DIR          continue from a checkpoint (checkpoints/NNNNNNN), bit for bit\n"
    "  --fine-tune-type lora|full\n"
    "  --qlora[=nf4|q4_k|q8_0]  LoRA on a frozen base stored quantized (default nf4)\n"
    "optimisation:\n"
    "  --lr X (1e-5)  --weight-decay X (0)  --schedule constant|linear|cosine  --warmup N  --min-lr X\n"
    "  --batch N (4)  --grad-accum N (1)  --iters N (1000) | --epochs N  --clip NORM (off)\n"
    "  --max-seq-length N (2048)  --mask-prompt  --grad-checkpoint  --seed S (0)  --max-bad-steps N (5)\n"
    "device:\n"
    "  --device cpu|cuda (cpu)  cuda: LoRA on an NVIDIA GPU (a `make CUDA=1` build): bf16 base, fp32 LoRA\n"
    "                        weights and AdamW state; checkpoints as few layers as the free memory needs\n"
    "  --checkpoint-layers N  with cuda: checkpoint exactly N layers (--grad-checkpoint: all)\n"
    "reporting and saving:\n"
    "  --val-every N (200)  --val-batches N (25)  --save-every N (100)\n"
    "  --budget SIZE         refuse, before loading weights, a run whose memory plan exceeds SIZE\n"
    "  -c config.yaml        mlx-lm's LoRA config keys (command-line options override it)\n";

static int fail_usage(void) {
    fprintf(stderr, "tune: %s\n", tn_error());
    return TN_EXIT_USAGE;
}

int cmd_train(int argc, char **argv) {
    tn_train_options o;
    tn_train_defaults(&o);
    tn_train_config_extra x = {0};
    const char *data = NULL, *v;
    int mask_prompt = 0;
    char gguf_dir[4096] = "";
    /* The config file first, so that the command line overrides it. */
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) {
            if (tn_train_config_load(argv[i + 1], &o, &x) != 0) {
                tn_train_config_free(&x);
                return fail_usage();
            }
            data = x.data;
            mask_prompt = x.mask_prompt;
        }
    tn_args a = tn_args_start(argc, argv, "train");
    int64_t n;
    double d;
#define INT_OPT(name, lo, hi, dst) \
    else if (tn_arg_value(&a, name, &v)) { if (!v || tn_arg_int(name, v, lo, hi, &n)) return fail_usage(); dst = n; }
#define NUM_OPT(name, dst) \
    else if (tn_arg_value(&a, name, &v)) { if (!v || tn_arg_double(name, v, &d)) return fail_usage(); dst = d; }
    while (tn_args_next(&a)) {
        if (tn_arg_flag(&a, "--help") || tn_arg_flag(&a, "-h")) {
            fputs(help, stdout);
            return TN_EXIT_OK;
        } else if (tn_arg_value(&a, "-c", &v) || tn_arg_value(&a, "--config", &v)) {
        } else if (tn_arg_value(&a, "--model", &v)) o.model = v;
        else if (tn_arg_value(&a, "--data", &v)) data = v;
        else if (tn_arg_value(&a, "--out", &v) || tn_arg_value(&a, "--adapter-path", &v)) o.out = v;
        else if (tn_arg_value(&a, "--init-adapter", &v)) o.init_adapter = v;
        else if (tn_arg_value(&a, "--resume", &v)) o.resume = v;
        else if (tn_arg_value(&a, "--targets", &v)) o.targets = v;
        else if (tn_arg_value(&a, "--fine-tune-type", &v)) {
            if (!v) return fail_usage();
            if (!strcmp(v, "full")) o.full = 1;
            else if (!strcmp(v, "lora")) o.full = 0;
            else if (!strcmp(v, "dora")) return fprintf(stderr, "tune: --fine-tune-type dora: DoRA is not implemented in this build yet\n"), TN_EXIT_USAGE;
            else return fprintf(stderr, "tune: --fine-tune-type: expected lora or full, got '%s'\n", v), TN_EXIT_USAGE;
        } else if (tn_arg_value(&a, "--schedule", &v)) {
            int k = v ? tn_schedule_from_name(v) : -1;
            if (k < 0) return fprintf(stderr, "tune: --schedule: expected constant, linear or cosine, got '%s'\n", v ? v : ""), TN_EXIT_USAGE;
            o.schedule = (tn_schedule_kind)k;
        } else if (tn_arg_value(&a, "--budget", &v)) {
            if (!v || tn_parse_size(v, "--budget", &o.budget)) return fail_usage();
        } else if (tn_arg_flag(&a, "--qlora")) o.qlora = TN_QUANT_NF4;
        else if (!strncmp(argv[a.i], "--qlora=", 8)) {
            int q = tn_quant_from_name(argv[a.i] + 8);
            if (q <= 0) return fprintf(stderr, "tune: --qlora: expected nf4, q4_k or q8_0, got '%s'\n", argv[a.i] + 8), TN_EXIT_USAGE;
            o.qlora = q;
        } else if (tn_arg_flag(&a, "--mask-prompt")) mask_prompt = 1;
        else if (tn_arg_flag(&a, "--grad-checkpoint")) o.grad_checkpoint = 1;
        else if (tn_arg_value(&a, "--device", &v)) {
            if (!v) return fail_usage();
            if (!strcmp(v, "cuda")) o.cuda = 1;
            else if (!strcmp(v, "cpu")) o.cuda = 0;
            else return fprintf(stderr, "tune: --device: expected cpu or cuda, got '%s'\n", v), TN_EXIT_USAGE;
        }
        else if (tn_arg_flag(&a, "--rslora")) o.rslora = 1;
        INT_OPT("--rank", 1, 4096, o.rank)
        INT_OPT("--checkpoint-layers", 0, 1 << 20, o.checkpoint_layers)
        NUM_OPT("--alpha", o.alpha)
        NUM_OPT("--dropout", o.dropout)
        INT_OPT("--layers", -1, 1 << 20, o.layers)
        NUM_OPT("--lr", o.lr)
        NUM_OPT("--learning-rate", o.lr)
        NUM_OPT("--weight-decay", o.weight_decay)
        NUM_OPT("--min-lr", o.min_lr)
        NUM_OPT("--clip", o.clip)
        INT_OPT("--warmup", 0, INT64_MAX / 2, o.warmup)
        INT_OPT("--batch-size", 1, 1 << 16, o.batch)
        INT_OPT("--batch", 1, 1 << 16, o.batch)
        INT_OPT("--grad-accum", 1, 1 << 16, o.grad_accum)
        INT_OPT("--iters", 1, INT64_MAX / 2, o.iters)
        INT_OPT("--epochs", 1, 1 << 20, o.epochs)
        INT_OPT("--max-seq-length", 2, 1 << 24, o.max_seq)
        INT_OPT("--seed", 0, INT64_MAX, o.seed)
        INT_OPT("--val-every", 0, INT64_MAX / 2, o.val_every)
        INT_OPT("--val-batches", 0, INT64_MAX / 2, o.val_batches)
        INT_OPT("--save-every", 0, INT64_MAX / 2, o.save_every)
        INT_OPT("--max-bad-steps", 1, 1 << 20, o.max_bad_steps)
        else if (tn_arg_positional(&a, &v)) o.model = v;
        else tn_arg_unknown(&a);
    }
#undef INT_OPT
#undef NUM_OPT
    int rc = TN_EXIT_USAGE;
    if (a.failed) {
        fail_usage();
        goto done;
    }
    if (!o.model || !data || !o.out) {
        fprintf(stderr, "tune train: needs MODEL, --data DIR and --out DIR\n%s", help);
        goto done;
    }
    if (o.dropout < 0 || o.dropout >= 1) {
        fprintf(stderr, "tune: --dropout: expected a probability in [0, 1), got %g\n", o.dropout);
        goto done;
    }
    /* A resumed run renders the data with the clock of the first run (chat
     * templates may print today's date). */
    struct tm pinned, *date = NULL;
    if (o.resume) {
        char path[4200];
        snprintf(path, sizeof path, "%s/state.json", o.resume);
        cJSON *st = tn_json_parse_file(path, 1 << 20);
        if (!st) {
            fail_usage();
            goto done;
        }
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(st, "data_time");
        memset(&pinned, 0, sizeof pinned);
        if (cJSON_IsString(dt) && sscanf(dt->valuestring, "%d-%d-%d %d:%d:%d", &pinned.tm_year, &pinned.tm_mon, &pinned.tm_mday,
                                         &pinned.tm_hour, &pinned.tm_min, &pinned.tm_sec) == 6) {
            pinned.tm_year -= 1900, pinned.tm_mon -= 1;
            mktime(&pinned); /* fills the weekday */
            date = &pinned;
        }
        cJSON_Delete(st);
    }
    /* A GGUF base: its layer matrices stay in the file's blocks; the rest
     * (config, tokenizer, embeddings, norms) goes to a temporary folder. */
    if (tn_is_gguf_file(o.model)) {
        double t0 = tn_seconds();
        if (tn_gguf_base_temp(o.model, gguf_dir, sizeof gguf_dir, 1) != 0) {
            fail_usage();
            goto done;
        }
        fprintf(stderr, "tune train: %s is the frozen base: its layer matrices are read from the file's own blocks a layer at a time; the "
                        "rest dequantized to F32 in %.1f s (under %s while training)\n",
                o.model, tn_seconds() - t0, gguf_dir);
        o.model = gguf_dir;
    }
    tn_batch_source src;
    if (tn_data_source_open(&src, o.model, data, o.max_seq, o.batch, mask_prompt, o.seed, date) != 0) {
        fail_usage();
        goto done;
    }
    char data_time[64];
    o.data_time = tn_data_source_time(&src, data_time, sizeof data_time);
    rc = tn_train_run(&o, &src) == 0 ? TN_EXIT_OK : TN_EXIT_FAILED;
    if (rc) fprintf(stderr, "tune: %s\n", tn_error());
    tn_data_source_close(&src);
done:
    if (gguf_dir[0]) tn_gguf_remove_temp(gguf_dir);
    tn_train_config_free(&x);
    return rc;
}
