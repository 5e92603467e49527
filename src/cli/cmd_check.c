/* cmd_check.c - `tune check MODEL|PRESET`: what this build can do with a
 * model and how much memory each kind of run takes, from config.json and
 * tensor headers alone (no weight data is read). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "io/json.h"
#include "plan/gpu_plan.h"
#include "train/model.h"
#include "io/safetensors.h"
#include "model/gguf_import.h"
#include "model/presets.h"
#include "model/source.h"
#include "plan/plan.h"
#include "util/error.h"
#include "util/platform.h"
#include "util/size.h"

static const char *const stage_names[TN_STAGE_COUNT] = {"lora", "qlora", "full", "fuse", "gguf", "generate"};

static const char help[] =
    "usage: tune check MODEL|PRESET [options]\n"
    "       tune check --all [options]\n\n"
    "Says, before anything is loaded, which stages this build can run for the model and\n"
    "how much memory inference, LoRA, QLoRA and full fine-tuning take, against a budget.\n"
    "Reads config.json and the safetensors headers only. MODEL is a Hugging Face folder, a\n"
    "config.json file, or a preset name (tune check --all lists them).\n\n"
    "options:\n"
    "  --max-seq-length N   longest sequence in tokens (default 2048)\n"
    "  --batch N            sequences per step (default 1; alias --batch-size)\n"
    "  --rank R             LoRA rank (default 16)\n"
    "  --targets LIST       modules to adapt, comma-separated (default: all linear modules)\n"
    "  --layers N           adapt only the last N layers (default all; -1 = all)\n"
    "  --grad-checkpoint    save layer inputs only and recompute during backward\n"
    "  --qlora[=KIND]       4-bit base kind priced by the QLoRA plan: nf4 (default), q4_k, q8_0\n"
    "  --budget SIZE        memory budget, e.g. 16G (default: this machine's RAM)\n"
    "  --all                one line per preset: the compatibility table\n"
    "  --device cuda        also the device plan of `tune train --device cuda` (bf16 base, LoRA state,\n"
    "                       activations per layer saved or checkpointed, workspaces, CUDA context) and\n"
    "                       the fewest checkpointed layers that fit --budget\n"
    "  --json               one JSON object on stdout\n\n"
    "exit: 0 checked (whatever the verdicts), 1 the checkpoint does not match its config,\n"
    "      2 bad usage or unreadable input\n";

typedef struct {
    tn_plan_settings settings;
    const char *targets_text;
    int have_budget;
    uint64_t budget;
    int json, all;
    int cuda; /* --device cuda: the device plan of train/gpu.c too */
    const char *model;
} check_options;

/* The device plan of `tune train --device cuda` for these settings (LoRA on
 * the dense families): plan/gpu_plan.h. */
static void gpu_plan_in_of(const tn_spec *spec, const tn_plan_settings *s, uint64_t lora_params, tn_gpu_plan_in *in) {
    memset(in, 0, sizeof *in);
    in->batch = (int)s->batch, in->seq = (int)s->seq, in->rank = s->rank, in->lora_params = (int64_t)lora_params;
    in->flash = tn_gpu_flash_head(spec);
    int L = (int)spec->n_layers, first = s->layers < 0 || s->layers >= L ? 0 : L - s->layers;
    for (int l = first; l < L; l++) {
        int n = 0;
        for (int k = 0; k < TN_MOD_COUNT; k++) {
            if (!tn_module_applies(spec, l, (tn_module)k)) continue;
            for (int i = 0; i < s->targets.n; i++)
                if (!strcmp(s->targets.names[i], tn_module_names[k])) {
                    n++;
                    break;
                }
        }
        if (n > in->mods_max) in->mods_max = n;
    }
}

/* Settings that would make a plan fit, in the order a user would try them. */
static void suggest(const tn_spec *spec, tn_dtype stored, const check_options *o, tn_plan_kind kind, char *out, int cap) {
    out[0] = 0;
    tn_plan p;
    tn_plan_settings s = o->settings;
    char gib[32];
    if (!s.grad_checkpoint && kind != TN_PLAN_INFERENCE) {
        s.grad_checkpoint = 1;
        tn_plan_make(spec, stored, &s, kind, &p);
        if (p.total <= o->budget) {
            snprintf(out, (size_t)cap, "fits with --grad-checkpoint (%s)", tn_format_gib(p.total, gib, sizeof gib));
            return;
        }
    }
    if (kind == TN_PLAN_LORA) {
        tn_plan_make(spec, stored, &s, TN_PLAN_QLORA, &p);
        if (p.total <= o->budget) {
            snprintf(out, (size_t)cap, "fits as QLoRA%s (%s)", s.grad_checkpoint && !o->settings.grad_checkpoint ? " with --grad-checkpoint" : "",
                     tn_format_gib(p.total, gib, sizeof gib));
            return;
        }
    }
    if (s.batch > 1) {
        s.batch = 1;
        tn_plan_make(spec, stored, &s, kind, &p);
        if (p.total <= o->budget) {
            snprintf(out, (size_t)cap, "fits with --batch 1%s (%s)", s.grad_checkpoint && !o->settings.grad_checkpoint ? " --grad-checkpoint" : "",
                     tn_format_gib(p.total, gib, sizeof gib));
            return;
        }
    }
    for (int64_t seq = s.seq / 2; seq >= 64; seq /= 2) {
        s.seq = seq;
        tn_plan_make(spec, stored, &s, kind, &p);
        if (p.total <= o->budget) {
            snprintf(out, (size_t)cap, "fits with --max-seq-length %lld%s%s (%s)", (long long)seq,
                     s.batch != o->settings.batch ? " --batch 1" : "",
                     s.grad_checkpoint && !o->settings.grad_checkpoint ? " --grad-checkpoint" : "", tn_format_gib(p.total, gib, sizeof gib));
            return;
        }
    }
    s.seq = 64;
    s.batch = 1;
    s.grad_checkpoint = 1;
    tn_plan_make(spec, stored, &s, kind, &p);
    snprintf(out, (size_t)cap, "does not fit at any setting: it needs %s even at sequence 64, batch 1, with checkpointing",
             tn_format_gib(p.total, gib, sizeof gib));
}

static void stage_verdict(const tn_spec *spec, tn_stage st, int *ok, const char **why) {
    const char *reason = spec->family->not_implemented[st];
    *ok = reason == NULL;
    static const char *const what[TN_STAGE_COUNT] = {
        [TN_STAGE_LORA] = "tune train (CPU), held to transformers + PEFT by the golden tests",
        [TN_STAGE_QLORA] = "tune train --qlora[=nf4|q4_k|q8_0] (CPU; base quantized at load)",
        [TN_STAGE_FULL] = "tune train --fine-tune-type full (CPU)",
        [TN_STAGE_FUSE] = "tune fuse",
        [TN_STAGE_GGUF] = "tune export --gguf",
        [TN_STAGE_GENERATE] = "tune generate (Hugging Face folders, with or without an adapter)",
    };
    *why = reason ? reason : what[st];
    /* An MLX-quantized checkpoint is a frozen quantized base already. */
    if (!reason && spec->gguf_layer_bytes) {
        static const char *const gg[TN_STAGE_COUNT] = {
            [TN_STAGE_LORA] = "tune train FILE.gguf (CPU) on the file's own blocks, a layer dequantized at a time; export --gguf-adapter for it",
            [TN_STAGE_QLORA] = "the GGUF is quantized already: plain tune train is LoRA on its blocks",
            [TN_STAGE_FULL] = "a GGUF's quantized blocks cannot be trained whole: tune fuse dequantizes them first",
            [TN_STAGE_FUSE] = "tune fuse FILE.gguf --adapter DIR (dequantized to F32, fused; --gguf --type to re-quantize)",
            [TN_STAGE_GENERATE] = "tune generate FILE.gguf",
        };
        if (gg[st]) *ok = st != TN_STAGE_QLORA && st != TN_STAGE_FULL, *why = gg[st];
    }
    if (!reason && spec->quant_bits) {
        static const char *const mlx[TN_STAGE_COUNT] = {
            [TN_STAGE_LORA] = "tune train (CPU) on the MLX-quantized base as it is: a layer dequantized at a time, embeddings once",
            [TN_STAGE_QLORA] = "the checkpoint is MLX-quantized already: plain tune train is LoRA on that quantized base",
            [TN_STAGE_FULL] = "MLX-quantized weights cannot be trained whole: tune fuse dequantizes them first",
        };
        if (mlx[st]) *ok = st == TN_STAGE_LORA, *why = mlx[st];
    }
}

static int check_source(const check_options *o, const char *gguf);

/* A GGUF file: its metadata as a config, its layer matrices priced as the
 * file's blocks (model/gguf_import.h; nothing is dequantized but norms). */
static int check_one_model(const check_options *o) {
    if (!tn_is_gguf_file(o->model)) return check_source(o, NULL);
    char dir[4096];
    if (tn_gguf_base_temp(o->model, dir, sizeof dir, 0) != 0) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
    check_options g = *o;
    g.model = dir;
    int rc = check_source(&g, o->model);
    tn_gguf_remove_temp(dir);
    return rc;
}

static int check_source(const check_options *o, const char *gguf) {
    tn_model_source src;
    if (tn_model_source_open(o->model, &src) != 0) return TN_EXIT_USAGE;
    tn_spec *spec = &src.spec;
    if (gguf) {
        if (tn_gguf_base_of(o->model, NULL, 0, NULL, 0, &spec->gguf_layer_bytes) != 1) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
        snprintf(src.path, sizeof src.path, "%s", gguf);
    }
    tn_plan_settings settings = o->settings;
    if (tn_targets_parse(spec, o->targets_text, &settings.targets) != 0) return TN_EXIT_USAGE;

    tn_safetensors st;
    int have_weights = 0, problems = 0;
    char report[8192] = "";
    if (src.kind == TN_SOURCE_FOLDER && !gguf) { /* a GGUF's tensors were checked against the family table when read */
        char probe[4200];
        snprintf(probe, sizeof probe, "%s/model.safetensors.index.json", src.path);
        int has_index = tn_file_exists(probe);
        snprintf(probe, sizeof probe, "%s/model.safetensors", src.path);
        if (has_index || tn_file_exists(probe)) {
            if (tn_safetensors_open(src.path, &st) != 0) return TN_EXIT_USAGE;
            have_weights = 1;
            problems = tn_spec_check_tensors(spec, &st, report, sizeof report);
        }
    }
    tn_dtype stored = tn_spec_stored_dtype(spec, have_weights ? &st : NULL);
    tn_param_counts pc;
    tn_spec_count_params(spec, &pc);
    uint64_t lora_params = tn_lora_param_count(spec, &settings.targets, settings.rank, settings.layers);
    check_options eff = *o;
    eff.settings = settings;

    tn_plan plans[TN_PLAN_COUNT];
    for (int k = 0; k < TN_PLAN_COUNT; k++) tn_plan_make(spec, stored, &settings, (tn_plan_kind)k, &plans[k]);

    char b1[32], b2[32], b3[32];
    if (o->json) {
        cJSON *root = cJSON_CreateObject();
        cJSON *m = cJSON_AddObjectToObject(root, "model");
        cJSON_AddStringToObject(m, "source", src.path);
        cJSON_AddStringToObject(m, "family", spec->model_type);
        cJSON_AddStringToObject(m, "description", spec->family->description);
        cJSON_AddNumberToObject(m, "params_total", (double)pc.total);
        cJSON_AddNumberToObject(m, "params_embedding", (double)pc.embedding);
        cJSON_AddNumberToObject(m, "params_active", (double)pc.active);
        cJSON_AddNumberToObject(m, "params_lora", (double)lora_params);
        cJSON_AddStringToObject(m, "dtype", tn_dtype_name(stored));
        cJSON_AddBoolToObject(m, "weights_checked", have_weights);
        /* The tensors the family table expects for this config (names and
         * PyTorch shapes), whether or not weights are present. */
        cJSON *expected = cJSON_AddArrayToObject(m, "tensors");
        for (int l = -1; l < spec->n_layers; l++)
            for (const tn_tensor_rule *r = l < 0 ? spec->family->global_rules : spec->family->layer_rules; r->name; r++) {
                if (!tn_rule_applies(spec, r, l)) continue;
                char name[512];
                snprintf(name, sizeof name, r->name, l);
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "name", name);
                cJSON *shape = cJSON_AddArrayToObject(e, "shape");
                for (int d = 0; d < r->n_dims; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)tn_spec_dim(spec, r->shape[d])));
                cJSON_AddItemToArray(expected, e);
            }
        cJSON *probs = cJSON_AddArrayToObject(m, "tensor_problems");
        for (char *line = report; *line;) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = 0;
            cJSON_AddItemToArray(probs, cJSON_CreateString(line));
            if (!nl) break;
            line = nl + 1;
        }
        cJSON *stages = cJSON_AddObjectToObject(root, "stages");
        for (int s = 0; s < TN_STAGE_COUNT; s++) {
            int ok;
            const char *why;
            stage_verdict(spec, (tn_stage)s, &ok, &why);
            cJSON *e = cJSON_AddObjectToObject(stages, stage_names[s]);
            cJSON_AddBoolToObject(e, "ok", ok);
            cJSON_AddStringToObject(e, "why", why);
        }
        cJSON *ps = cJSON_AddObjectToObject(root, "plans");
        for (int k = 0; k < TN_PLAN_COUNT; k++) {
            cJSON *e = cJSON_AddObjectToObject(ps, tn_plan_kind_name((tn_plan_kind)k));
            cJSON *bufs = cJSON_AddArrayToObject(e, "buffers");
            for (int i = 0; i < plans[k].n; i++) {
                cJSON *b = cJSON_CreateObject();
                cJSON_AddStringToObject(b, "name", plans[k].buffers[i].name);
                cJSON_AddNumberToObject(b, "bytes", (double)plans[k].buffers[i].bytes);
                cJSON_AddStringToObject(b, "detail", plans[k].buffers[i].detail);
                cJSON_AddItemToArray(bufs, b);
            }
            cJSON_AddNumberToObject(e, "total_bytes", (double)plans[k].total);
            int fits = plans[k].total <= o->budget;
            cJSON_AddBoolToObject(e, "fits", fits);
            if (!fits) {
                char sug[256];
                suggest(spec, stored, &eff, (tn_plan_kind)k, sug, sizeof sug);
                cJSON_AddStringToObject(e, "suggestion", sug);
            }
        }
        cJSON *set = cJSON_AddObjectToObject(root, "settings");
        cJSON_AddNumberToObject(set, "max_seq_length", (double)settings.seq);
        cJSON_AddNumberToObject(set, "batch", (double)settings.batch);
        cJSON_AddNumberToObject(set, "rank", settings.rank);
        cJSON_AddNumberToObject(set, "layers", settings.layers);
        cJSON_AddBoolToObject(set, "grad_checkpoint", settings.grad_checkpoint);
        cJSON_AddStringToObject(set, "qlora", tn_quant_name(settings.qlora));
        cJSON *tg = cJSON_AddArrayToObject(set, "targets");
        for (int i = 0; i < settings.targets.n; i++) cJSON_AddItemToArray(tg, cJSON_CreateString(settings.targets.names[i]));
        cJSON_AddNumberToObject(root, "budget_bytes", (double)o->budget);
        if (o->cuda) {
            tn_gpu_plan_in gin;
            tn_gpu_plan gp, gall;
            gpu_plan_in_of(spec, &settings, lora_params, &gin);
            tn_gpu_plan_make(spec, &gin, 0, &gp);
            tn_gpu_plan_make(spec, &gin, (int)spec->n_layers, &gall);
            cJSON *g = cJSON_AddObjectToObject(root, "gpu_plan");
            cJSON_AddNumberToObject(g, "layers", (double)spec->n_layers);
            cJSON_AddNumberToObject(g, "weights_bytes", (double)gp.weights);
            cJSON_AddNumberToObject(g, "lora_bytes", (double)gp.lora);
            cJSON_AddNumberToObject(g, "saved_per_layer_bytes", (double)gp.saved_per_layer);
            cJSON_AddNumberToObject(g, "checkpointed_per_layer_bytes", (double)gp.checkpointed_per_layer);
            cJSON_AddNumberToObject(g, "shared_bytes", (double)gp.shared);
            cJSON_AddNumberToObject(g, "scratch_bytes", (double)gp.saved_per_layer); /* added once any layer is checkpointed */
            cJSON_AddNumberToObject(g, "context_bytes", (double)TN_GPU_CONTEXT_BYTES);
            cJSON_AddNumberToObject(g, "total_none_checkpointed_bytes", (double)(gp.total + TN_GPU_CONTEXT_BYTES));
            cJSON_AddNumberToObject(g, "total_all_checkpointed_bytes", (double)(gall.total + TN_GPU_CONTEXT_BYTES));
            if (o->have_budget) {
                tn_gpu_plan fit;
                int ck = o->budget > TN_GPU_CONTEXT_BYTES ? tn_gpu_plan_fit(spec, &gin, o->budget - TN_GPU_CONTEXT_BYTES, 0, &fit) : -1;
                cJSON_AddNumberToObject(g, "checkpointed_to_fit", ck);
                if (ck >= 0) cJSON_AddNumberToObject(g, "total_to_fit_bytes", (double)(fit.total + TN_GPU_CONTEXT_BYTES));
            }
        }
        char *text = cJSON_PrintUnformatted(root);
        if (text) puts(text);
        free(text);
        cJSON_Delete(root);
    } else {
        const char *kinds[] = {"folder", "config", "preset"};
        printf("model      %s (%s: %s, %s)\n", src.path, spec->model_type, spec->family->description, gguf ? "GGUF file" : kinds[src.kind]);
        printf("params     %s total (%llu), embeddings %s%s, stored %s", tn_format_count(pc.total, b1, sizeof b1),
               (unsigned long long)pc.total, tn_format_count(pc.embedding, b2, sizeof b2), spec->tied_embeddings ? " (tied)" : "",
               tn_dtype_name(stored));
        if (spec->quant_bits)
            printf(" (MLX %lld-bit affine, groups of %lld)", (long long)spec->quant_bits, (long long)spec->quant_group_size);
        if (gguf) printf(" (GGUF: layer matrices %s in the file's own types)", tn_format_gib(spec->gguf_layer_bytes, b3, sizeof b3));
        printf("\n");
        if (pc.active != pc.total)
            printf("           %s active per token (%lld of %lld experts routed)\n", tn_format_count(pc.active, b1, sizeof b1),
                   (long long)spec->n_experts_per_token, (long long)spec->n_experts);
        printf("lora       rank %d on", settings.rank);
        for (int i = 0; i < settings.targets.n; i++) printf("%s%s", i ? "," : " ", settings.targets.names[i]);
        printf(" in %s layers: %s trainable (%llu)\n", settings.layers < 0 ? "all" : "the last", tn_format_count(lora_params, b1, sizeof b1),
               (unsigned long long)lora_params);
        if (settings.layers >= 0) printf("           (last %d of %lld layers)\n", settings.layers, (long long)spec->n_layers);
        if (have_weights) {
            if (problems == 0) printf("tensors    %d tensors in %d file%s match the %s table\n", st.n_tensors, st.n_files, st.n_files > 1 ? "s" : "", spec->model_type);
            else printf("tensors    %d problem%s:\n%s", problems, problems > 1 ? "s" : "", report);
        } else {
            printf(gguf ? "tensors    every tensor's name, shape and type checked against the family's table when the GGUF was read\n"
                        : "tensors    no weights here: counts and plans from config.json alone\n");
        }
        printf("\nstages\n");
        for (int s = 0; s < TN_STAGE_COUNT; s++) {
            int ok;
            const char *why;
            stage_verdict(spec, (tn_stage)s, &ok, &why);
            printf("  %-9s %-4s %s\n", stage_names[s], ok ? "yes" : "no", why);
        }
        printf("\nmemory plans (cpu, fp32 compute; seq %lld, batch %lld%s) against a budget of %s\n", (long long)settings.seq,
               (long long)settings.batch, settings.grad_checkpoint ? ", gradient checkpointing" : "", tn_format_gib(o->budget, b3, sizeof b3));
        for (int k = 0; k < TN_PLAN_COUNT; k++) {
            const tn_plan *p = &plans[k];
            int fits = p->total <= o->budget;
            printf("  %-10s %12s  %s", tn_plan_kind_name(p->kind), tn_format_gib(p->total, b1, sizeof b1), fits ? "fits" : "does not fit");
            if (k == TN_PLAN_QLORA) printf(" (%s base)", tn_quant_name(settings.qlora));
            if (!fits) {
                char sug[256];
                suggest(spec, stored, &eff, (tn_plan_kind)k, sug, sizeof sug);
                printf(": %s", sug);
            }
            printf("\n");
            for (int i = 0; i < p->n; i++)
                printf("    %-30s %12s  %s\n", p->buffers[i].name, tn_format_gib(p->buffers[i].bytes, b1, sizeof b1), p->buffers[i].detail);
        }
        if (o->cuda) {
            tn_gpu_plan_in gin;
            tn_gpu_plan gp, gall;
            gpu_plan_in_of(spec, &settings, lora_params, &gin);
            tn_gpu_plan_make(spec, &gin, 0, &gp);
            tn_gpu_plan_make(spec, &gin, (int)spec->n_layers, &gall);
            printf("\ndevice plan (--device cuda: LoRA, bf16 base and activations, %s attention; seq %lld, batch %lld)\n",
                   gin.flash ? "flash" : "fp32 reference", (long long)settings.seq, (long long)settings.batch);
            printf("    %-30s %12s  %s\n", "weights", tn_format_gib(gp.weights, b1, sizeof b1), "bf16 matrices, norms, embeddings, rope tables");
            printf("    %-30s %12s  %s\n", "LoRA state", tn_format_gib(gp.lora, b1, sizeof b1), "fp32 weights, gradients, 2 AdamW moments; bf16 copies");
            printf("    %-30s %12s  %s\n", "activations per layer", tn_format_gib(gp.saved_per_layer, b1, sizeof b1), "saved (bf16; fp32 statistics)");
            printf("    %-30s %12s  %s\n", "  when checkpointed", tn_format_gib(gp.checkpointed_per_layer, b1, sizeof b1), "its input only");
            printf("    %-30s %12s  %s\n", "workspaces", tn_format_gib(gp.shared, b1, sizeof b1), "logits chunk, gradients, flash workspace");
            printf("    %-30s %12s  %s\n", "CUDA context", tn_format_gib(TN_GPU_CONTEXT_BYTES, b1, sizeof b1), "and cuBLASLt (measured, CUDA 13, H100/H200)");
            printf("  %-32s %12s\n", "total, no layer checkpointed", tn_format_gib(gp.total + TN_GPU_CONTEXT_BYTES, b1, sizeof b1));
            printf("  %-32s %12s\n", "total, every layer checkpointed", tn_format_gib(gall.total + TN_GPU_CONTEXT_BYTES, b1, sizeof b1));
            if (o->have_budget) {
                tn_gpu_plan fit;
                int ck = o->budget > TN_GPU_CONTEXT_BYTES ? tn_gpu_plan_fit(spec, &gin, o->budget - TN_GPU_CONTEXT_BYTES, 0, &fit) : -1;
                if (ck >= 0)
                    printf("  against %s: fits with %d of %lld layers checkpointed (%s)\n", tn_format_gib(o->budget, b1, sizeof b1), ck,
                           (long long)spec->n_layers, tn_format_gib(fit.total + TN_GPU_CONTEXT_BYTES, b2, sizeof b2));
                else
                    printf("  against %s: does not fit even with every layer checkpointed (a smaller --batch or --max-seq-length)\n",
                           tn_format_gib(o->budget, b1, sizeof b1));
            }
        }
    }
    if (have_weights) tn_safetensors_close(&st);
    return problems ? TN_EXIT_FAILED : TN_EXIT_OK;
}

/* The compatibility table of all presets. */
static int check_all(const check_options *o) {
    cJSON *root = o->json ? cJSON_CreateObject() : NULL;
    cJSON *rows = root ? cJSON_AddArrayToObject(root, "presets") : NULL;
    char b1[32], b2[32], b3[32], b4[32];
    if (!o->json) {
        printf("presets at seq %lld, batch %lld, rank %d%s, budget %s (cpu plans)\n\n", (long long)o->settings.seq, (long long)o->settings.batch,
               o->settings.rank, o->settings.grad_checkpoint ? ", gradient checkpointing" : "", tn_format_gib(o->budget, b1, sizeof b1));
        printf("%-26s %-17s %9s %7s  %-22s %-22s %-22s %s\n", "preset", "family", "params", "dtype", "inference", "lora", "qlora",
               "full");
    }
    for (int i = 0; i < tn_preset_count(); i++) {
        char name[128];
        tn_preset_name(i, name, sizeof name);
        tn_model_source src;
        if (tn_model_source_open(name, &src) != 0) return TN_EXIT_USAGE;
        tn_plan_settings s = o->settings;
        if (tn_targets_parse(&src.spec, o->targets_text, &s.targets) != 0) {
            tn_targets_parse(&src.spec, NULL, &s.targets);
        }
        tn_param_counts pc;
        tn_spec_count_params(&src.spec, &pc);
        tn_plan plans[TN_PLAN_COUNT];
        for (int k = 0; k < TN_PLAN_COUNT; k++) tn_plan_make(&src.spec, src.spec.dtype, &s, (tn_plan_kind)k, &plans[k]);
        check_options eff = *o;
        eff.settings = s;
        if (o->json) {
            cJSON *r = cJSON_CreateObject();
            cJSON_AddStringToObject(r, "preset", name);
            cJSON_AddStringToObject(r, "family", src.spec.model_type);
            cJSON_AddNumberToObject(r, "params_total", (double)pc.total);
            cJSON_AddNumberToObject(r, "params_active", (double)pc.active);
            cJSON_AddNumberToObject(r, "params_lora", (double)tn_lora_param_count(&src.spec, &s.targets, s.rank, s.layers));
            cJSON_AddStringToObject(r, "dtype", tn_dtype_name(src.spec.dtype));
            cJSON *st = cJSON_AddObjectToObject(r, "stages");
            for (int g = 0; g < TN_STAGE_COUNT; g++) {
                int ok;
                const char *why;
                stage_verdict(&src.spec, (tn_stage)g, &ok, &why);
                cJSON *e = cJSON_AddObjectToObject(st, stage_names[g]);
                cJSON_AddBoolToObject(e, "ok", ok);
                cJSON_AddStringToObject(e, "why", why);
            }
            cJSON *ps = cJSON_AddObjectToObject(r, "plans");
            for (int k = 0; k < TN_PLAN_COUNT; k++) {
                cJSON *e = cJSON_AddObjectToObject(ps, tn_plan_kind_name((tn_plan_kind)k));
                cJSON_AddNumberToObject(e, "total_bytes", (double)plans[k].total);
                cJSON_AddBoolToObject(e, "fits", plans[k].total <= o->budget);
                if (plans[k].total > o->budget) {
                    char sug[256];
                    suggest(&src.spec, src.spec.dtype, &eff, (tn_plan_kind)k, sug, sizeof sug);
                    cJSON_AddStringToObject(e, "suggestion", sug);
                }
            }
            cJSON_AddItemToArray(rows, r);
        } else {
            char cells[TN_PLAN_COUNT][40];
            for (int k = 0; k < TN_PLAN_COUNT; k++)
                snprintf(cells[k], sizeof cells[k], "%s %s", tn_format_gib(plans[k].total, b2, sizeof b2),
                         plans[k].total <= o->budget ? "fits" : "NO");
            char params[32];
            if (pc.active != pc.total)
                snprintf(params, sizeof params, "%s/%s", tn_format_count(pc.total, b3, sizeof b3), tn_format_count(pc.active, b4, sizeof b4));
            else
                snprintf(params, sizeof params, "%s", tn_format_count(pc.total, b3, sizeof b3));
            printf("%-26s %-17s %9s %7s  %-22s %-22s %-22s %s\n", name, src.spec.model_type, params, tn_dtype_name(src.spec.dtype), cells[0],
                   cells[1], cells[2], cells[3]);
            for (int k = TN_PLAN_LORA; k < TN_PLAN_COUNT; k++)
                if (plans[k].total > o->budget) {
                    char sug[256];
                    suggest(&src.spec, src.spec.dtype, &eff, (tn_plan_kind)k, sug, sizeof sug);
                    printf("%-26s   %s: %s\n", "", tn_plan_kind_name((tn_plan_kind)k), sug);
                }
        }
    }
    if (o->json) {
        cJSON_AddNumberToObject(root, "budget_bytes", (double)o->budget);
        char *text = cJSON_PrintUnformatted(root);
        if (text) puts(text);
        free(text);
        cJSON_Delete(root);
    } else {
        printf("\nstage verdicts and their reasons: tune check PRESET\n");
    }
    return TN_EXIT_OK;
}

int cmd_check(int argc, char **argv) {
    check_options o;
    memset(&o, 0, sizeof o);
    o.settings.seq = 2048;
    o.settings.batch = 1;
    o.settings.rank = 16;
    o.settings.layers = -1;
    o.settings.qlora = TN_QUANT_NF4;
    tn_args a = tn_args_start(argc, argv, "check");
    const char *v;
    int64_t n;
    while (tn_args_next(&a)) {
        if (tn_arg_flag(&a, "--help") || tn_arg_flag(&a, "-h")) {
            fputs(help, stdout);
            return TN_EXIT_OK;
        } else if (tn_arg_value(&a, "--max-seq-length", &v)) {
            if (!v || tn_arg_int("--max-seq-length", v, 1, 1 << 24, &n)) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
            o.settings.seq = n;
        } else if (tn_arg_value(&a, "--batch-size", &v) || tn_arg_value(&a, "--batch", &v)) {
            if (!v || tn_arg_int("--batch", v, 1, 1 << 16, &n)) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
            o.settings.batch = n;
        } else if (tn_arg_value(&a, "--rank", &v)) {
            if (!v || tn_arg_int("--rank", v, 1, 4096, &n)) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
            o.settings.rank = (int)n;
        } else if (tn_arg_value(&a, "--layers", &v)) {
            if (!v || tn_arg_int("--layers", v, -1, 1 << 20, &n)) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
            o.settings.layers = (int)n;
        } else if (tn_arg_value(&a, "--targets", &v)) {
            o.targets_text = v;
        } else if (tn_arg_flag(&a, "--grad-checkpoint")) {
            o.settings.grad_checkpoint = 1;
        } else if (tn_arg_flag(&a, "--qlora")) {
            o.settings.qlora = TN_QUANT_NF4;
        } else if (!strncmp(argv[a.i], "--qlora=", 8)) {
            int q = tn_quant_from_name(argv[a.i] + 8);
            if (q < 0) return fprintf(stderr, "tune: --qlora: expected nf4, q4_k or q8_0, got '%s'\n", argv[a.i] + 8), TN_EXIT_USAGE;
            o.settings.qlora = (tn_quant)q;
        } else if (tn_arg_value(&a, "--budget", &v)) {
            if (!v || tn_parse_size(v, "--budget", &o.budget)) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
            o.have_budget = 1;
        } else if (tn_arg_value(&a, "--device", &v)) {
            if (!v || (strcmp(v, "cuda") && strcmp(v, "cpu"))) return fprintf(stderr, "tune: --device: expected cpu or cuda, got '%s'\n", v ? v : ""), TN_EXIT_USAGE;
            o.cuda = !strcmp(v, "cuda");
        } else if (tn_arg_flag(&a, "--json")) {
            o.json = 1;
        } else if (tn_arg_flag(&a, "--all")) {
            o.all = 1;
        } else if (tn_arg_value(&a, "--model", &v)) {
            o.model = v;
        } else if (tn_arg_positional(&a, &v)) {
            if (o.model) return fprintf(stderr, "tune check: more than one model given ('%s' and '%s')\n", o.model, v), TN_EXIT_USAGE;
            o.model = v;
        } else {
            tn_arg_unknown(&a);
        }
    }
    if (a.failed) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
    if (!o.have_budget) o.budget = tn_physical_memory();
    if (o.all) return check_all(&o);
    if (!o.model) return fprintf(stderr, "tune check: no model given\n%s", help), TN_EXIT_USAGE;
    int rc = check_one_model(&o);
    if (rc == TN_EXIT_USAGE) fprintf(stderr, "tune: %s\n", tn_error());
    return rc;
}
