/* cmd_doctor.c - `tune doctor MODEL [--data DIR] [--budget SIZE] [--json]`:
 * the whole checklist a user would run by hand for a new model, each output
 * reloaded and its logits compared with base + adapter on a fixed batch:
 *   check -> data -> train (a few LoRA steps) -> fuse (HF folder) -> reload
 *   the fused folder -> greedy generation from fused vs base + adapter ->
 *   GGUF f16 and q8_0, each file read back (its metadata as the config, its
 *   tensors dequantized) and run.
 * One line per stage, `STAGE ok|FAILED  detail`, then a summary table with
 * the largest difference at each stage; exit 1 when any stage failed. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "export/export.h"
#include "generate/infer.h"
#include "io/json.h"
#include "model/gguf_import.h"
#include "model/source.h"
#include "plan/plan.h"
#include "train/adapter.h"
#include "train/data_source.h"
#include "train/trainer.h"
#include "util/atomic_file.h"
#include "util/embedded.h"
#include "util/error.h"
#include "util/platform.h"
#include "util/size.h"

static const char help[] =
    "usage: tune doctor MODEL [--data DIR] [--adapter DIR] [--budget SIZE] [--out DIR] [--json]\n\n"
    "Runs the whole chain on MODEL and proves each output: memory check, a few LoRA training\n"
    "steps, fuse to a Hugging Face folder, reload it, greedy generation from the fused model\n"
    "against base + adapter, GGUF export (f16 and q8_0). Each output's logits on a fixed batch\n"
    "are compared with base + adapter. Without --data it trains on a small built-in text set;\n"
    "with --adapter it checks that adapter instead of training one.\n"
    "Outputs go to --out (default: a temporary folder, removed at the end).\n\n"
    "exit: 0 every stage ok, 1 a stage failed, 2 bad usage or input\n";

#define MAX_STAGES 12
typedef struct {
    const char *name;
    int ok, ran;
    double diff; /* largest relative logit difference, or NAN */
    char detail[512];
} stage;

typedef struct {
    stage st[MAX_STAGES];
    int n, json;
} report;

static stage *begin(report *r, const char *name) {
    stage *s = &r->st[r->n++];
    memset(s, 0, sizeof *s);
    s->name = name;
    s->diff = NAN;
    return s;
}

static void end(report *r, stage *s, int ok, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#include <stdarg.h>
static void end(report *r, stage *s, int ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->detail, sizeof s->detail, fmt, ap);
    va_end(ap);
    s->ok = ok, s->ran = 1;
    if (!r->json) {
        printf("%-10s %-6s  %s\n", s->name, ok ? "ok" : "FAILED", s->detail);
        fflush(stdout);
    }
}

/* ‖a − b‖ / ‖b‖ and the fraction of rows whose argmax agrees. */
static double compare(const float *a, const float *b, int rows, int V, double *top1) {
    double num = 0, den = 0;
    int agree = 0;
    for (int r = 0; r < rows; r++) {
        const float *x = a + (int64_t)r * V, *y = b + (int64_t)r * V;
        int ax = 0, ay = 0;
        for (int i = 0; i < V; i++) {
            num += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
            den += (double)y[i] * y[i];
            if (x[i] > x[ax]) ax = i;
            if (y[i] > y[ay]) ay = i;
        }
        agree += ax == ay;
    }
    *top1 = (double)agree / rows;
    return sqrt(num) / (sqrt(den) + 1e-30);
}

/* Logits of `ids` ([1, n]) for a model folder, with an optional adapter. */
static int logits_of(const char *dir, const char *adapter, const int32_t *ids, int n, float **out) {
    tn_model m;
    if (tn_model_open(dir, n, &m) != 0) return -1;
    tn_lora lora;
    int have = 0, rc = -1;
    if (adapter) {
        if (tn_adapter_load(&lora, &m, adapter) != 0) goto out;
        have = 1;
    }
    tn_activations a;
    tn_plan_settings ps = {.seq = n, .batch = 1};
    if (tn_activations_alloc(&a, &m, have ? &lora : NULL, &ps) != 0) goto out;
    *out = tn_malloc((size_t)n * m.spec.vocab_size * sizeof(float), "logits");
    if (*out) rc = tn_model_logits(&m, have ? &lora : NULL, &a, ids, *out);
    tn_activations_free(&a);
out:
    if (have) tn_lora_free(&lora);
    tn_model_close(&m);
    return rc;
}

/* Greedy tokens from a folder (+ adapter) after a prompt. */
static int greedy_of(const char *dir, const char *adapter, const int32_t *ids, int n, int k, int32_t *gen) {
    tn_model m;
    if (tn_model_open(dir, n + k + 1, &m) != 0) return -1;
    tn_lora lora;
    int have = 0, rc = -1;
    if (adapter) {
        if (tn_adapter_load(&lora, &m, adapter) != 0) goto out;
        have = 1;
    }
    tn_infer s;
    if (tn_infer_init(&s, &m, have ? &lora : NULL, n + k + 1) != 0) goto out;
    rc = tn_infer_forward(&s, &m, have ? &lora : NULL, ids, n);
    int V = (int)m.spec.vocab_size;
    for (int i = 0; i < k && rc == 0; i++) {
        int32_t best = 0;
        for (int j = 1; j < V; j++)
            if (s.logits[j] > s.logits[best]) best = j;
        gen[i] = best;
        rc = tn_infer_forward(&s, &m, have ? &lora : NULL, &best, 1);
    }
    tn_infer_free(&s);
out:
    if (have) tn_lora_free(&lora);
    tn_model_close(&m);
    return rc;
}

/* The built-in data: the demo's questions and answers as plain text. */
static int write_builtin_data(const char *dir) {
    const tn_embedded_file *src = NULL;
    for (int i = 0; i < tn_demo_files_count; i++)
        if (!strcmp(tn_demo_files[i].name, "demo-train.jsonl")) src = &tn_demo_files[i];
    if (!src) return tn_fail("the built-in data is missing from this build");
    cJSON *out = NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    const char *p = src->data;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        cJSON *rec = cJSON_ParseWithLength(p, n);
        const cJSON *msgs = rec ? cJSON_GetObjectItem(rec, "messages") : NULL;
        if (cJSON_GetArraySize(msgs) == 2) {
            out = cJSON_CreateObject();
            char text[2048];
            snprintf(text, sizeof text, "Question: %s\nAnswer: %s", cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "content")->valuestring,
                     cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 1), "content")->valuestring);
            cJSON_AddStringToObject(out, "text", text);
            char *line = cJSON_PrintUnformatted(out);
            size_t ln = strlen(line);
            if (len + ln + 2 > cap) {
                cap = (len + ln + 2) * 2;
                buf = realloc(buf, cap);
            }
            memcpy(buf + len, line, ln);
            len += ln;
            buf[len++] = '\n';
            free(line);
            cJSON_Delete(out);
        }
        cJSON_Delete(rec);
        p += n + (nl ? 1 : 0);
    }
    char path[4400];
    snprintf(path, sizeof path, "%s/train.jsonl", dir);
    int rc = tn_write_file_atomic(path, buf, len);
    free(buf);
    return rc;
}


int cmd_doctor(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *outdir = NULL, *given_adapter = NULL, *v;
    uint64_t budget = 0;
    report r = {0};
    tn_args a = tn_args_start(argc, argv, "doctor");
    while (tn_args_next(&a)) {
        if (tn_arg_flag(&a, "--help") || tn_arg_flag(&a, "-h")) {
            fputs(help, stdout);
            return TN_EXIT_OK;
        } else if (tn_arg_value(&a, "--model", &v)) model = v;
        else if (tn_arg_value(&a, "--data", &v)) data = v;
        else if (tn_arg_value(&a, "--out", &v)) outdir = v;
        else if (tn_arg_value(&a, "--adapter", &v)) given_adapter = v;
        else if (tn_arg_value(&a, "--budget", &v)) {
            if (!v || tn_parse_size(v, "--budget", &budget)) a.failed = 1;
        } else if (tn_arg_flag(&a, "--json")) r.json = 1;
        else if (tn_arg_positional(&a, &v)) model = v;
        else tn_arg_unknown(&a);
    }
    if (a.failed) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
    if (!model) return fprintf(stderr, "tune doctor: no model given\n%s", help), TN_EXIT_USAGE;
    if (!tn_is_directory(model)) return fprintf(stderr, "tune: %s: doctor takes a Hugging Face model folder\n", model), TN_EXIT_USAGE;
    if (!budget) budget = tn_physical_memory();
    char work[4096];
    int temp = !outdir;
    if (temp) {
        snprintf(work, sizeof work, "/tmp/tune-doctor-XXXXXX");
        if (!mkdtemp(work)) return fprintf(stderr, "tune: cannot create a temporary folder\n"), TN_EXIT_FAILED;
    } else {
        snprintf(work, sizeof work, "%s", outdir);
        if (tn_make_dirs(work) != 0) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
    }
    char adapter[4200], fused[4200], ddir[4300], g16[4200], g8[4200], d16[4200], d8[4200];
    snprintf(adapter, sizeof adapter, "%s/adapter", work);
    snprintf(fused, sizeof fused, "%s/fused", work);
    snprintf(g16, sizeof g16, "%s/model-f16.gguf", work);
    snprintf(g8, sizeof g8, "%s/model-q8_0.gguf", work);
    snprintf(d16, sizeof d16, "%s/gguf-f16-weights", work);
    snprintf(d8, sizeof d8, "%s/gguf-q8_0-weights", work);
    int failed = 0, usage = 0;
    float *ref = NULL;
    int32_t ids[64];
    int n_ids = 0;
    tn_dtype stored = TN_DTYPE_F32;

    /* 1. check: the family, the table, the plan against the budget. */
    stage *s = begin(&r, "check");
    tn_model_source src;
    if (tn_model_source_open(model, &src) != 0) {
        end(&r, s, 0, "%s", tn_error());
        usage = 1;
        goto summary;
    }
    tn_safetensors st;
    if (tn_safetensors_open(model, &st) != 0) {
        end(&r, s, 0, "%s", tn_error());
        usage = 1;
        goto summary;
    }
    char report_text[2048];
    int problems = tn_spec_check_tensors(&src.spec, &st, report_text, sizeof report_text);
    stored = tn_spec_stored_dtype(&src.spec, &st);
    tn_safetensors_close(&st);
    tn_plan_settings ps;
    tn_plan_default_settings(&src.spec, &ps);
    ps.seq = 256, ps.rank = 8;
    tn_plan plan;
    tn_plan_make(&src.spec, stored, &ps, TN_PLAN_LORA, &plan);
    char g1[32], g2[32];
    if (problems) {
        char *nl = strchr(report_text, '\n');
        if (nl) *nl = 0;
        end(&r, s, 0, "%d tensor problem%s (%s)", problems, problems > 1 ? "s" : "", report_text);
        failed = 1;
        goto summary;
    }
    if (src.spec.family->not_implemented[TN_STAGE_LORA]) {
        end(&r, s, 0, "%s: %s", src.spec.model_type, src.spec.family->not_implemented[TN_STAGE_LORA]);
        failed = 1;
        goto summary;
    }
    if (plan.total > budget) {
        end(&r, s, 0, "LoRA at seq 256 needs %s, over the budget of %s", tn_format_gib(plan.total, g1, sizeof g1),
            tn_format_gib(budget, g2, sizeof g2));
        failed = 1;
        goto summary;
    }
    end(&r, s, 1, "%s (%s), stored %s; LoRA at seq 256 needs %s of %s", src.spec.model_type, src.spec.family->description,
        tn_dtype_name(stored), tn_format_gib(plan.total, g1, sizeof g1), tn_format_gib(budget, g2, sizeof g2));

    /* 2. data. */
    s = begin(&r, "data");
    if (!data) {
        snprintf(ddir, sizeof ddir, "%s/data", work);
        if (tn_make_dirs(ddir) != 0 || write_builtin_data(ddir) != 0) {
            end(&r, s, 0, "%s", tn_error());
            failed = 1;
            goto summary;
        }
        data = ddir;
    }
    tn_batch_source bs;
    if (tn_data_source_open(&bs, model, data, 256, 4, 0, 0, NULL) != 0) {
        end(&r, s, 0, "%s", tn_error());
        usage = 1;
        goto summary;
    }
    tn_batch_view bv;
    if (bs.get(bs.ctx, TN_SPLIT_TRAIN, 0, 0, &bv) != 0) {
        end(&r, s, 0, "%s", tn_error());
        tn_data_source_close(&bs);
        failed = 1;
        goto summary;
    }
    n_ids = bv.S < 64 ? bv.S : 64;
    memcpy(ids, bv.ids, (size_t)n_ids * sizeof *ids);
    end(&r, s, 1, "%s: %lld training batches; fixed batch: the first %d tokens of the first", data,
        (long long)bs.n_batches(bs.ctx, TN_SPLIT_TRAIN), n_ids);

    /* 3. train a few LoRA steps (lr high enough that the adapter matters). */
    s = begin(&r, "train");
    if (given_adapter) {
        tn_data_source_close(&bs);
        snprintf(adapter, sizeof adapter, "%s", given_adapter);
        tn_model am;
        tn_lora al;
        if (tn_model_open(model, 16, &am) != 0) {
            end(&r, s, 0, "%s", tn_error());
            failed = 1;
            goto summary;
        }
        int arc = tn_adapter_load(&al, &am, adapter);
        if (arc == 0) tn_lora_free(&al);
        tn_model_close(&am);
        if (arc != 0) {
            end(&r, s, 0, "the adapter does not fit this model: %s", tn_error());
            failed = 1;
            goto summary;
        }
        end(&r, s, 1, "no training: the given adapter %s/", adapter);
        goto trained;
    }
    tn_train_options to;
    tn_train_defaults(&to);
    to.model = model, to.out = adapter, to.rank = 8, to.alpha = 16, to.lr = 1e-2, to.iters = 6, to.batch = 4, to.max_seq = 256;
    to.val_every = 0, to.save_every = 0, to.seed = 1;
    int trc = tn_train_run(&to, &bs);
    tn_data_source_close(&bs);
    if (trc != 0) {
        end(&r, s, 0, "%s", tn_error());
        failed = 1;
        goto summary;
    }
    end(&r, s, 1, "6 LoRA steps (rank 8, all projections): %s/", adapter);
trained:
    if (logits_of(model, adapter, ids, n_ids, &ref) != 0) {
        fprintf(stderr, "tune: %s\n", tn_error());
        failed = 1;
        goto summary;
    }
    float *base = NULL;
    if (logits_of(model, NULL, ids, n_ids, &base) == 0) {
        double t;
        s->diff = compare(ref, base, n_ids, (int)src.spec.vocab_size, &t);
        free(base);
    }

    /* 4. fuse, and 5. the fused folder reloaded against base + adapter. */
    s = begin(&r, "fuse");
    tn_export_job *job = NULL;
    if (tn_fuse_prepare(&job, model, adapter, fused, TN_DTYPE_COUNT, 5000000000ull) != 0 || tn_export_run(job) != 0) {
        end(&r, s, 0, "%s", tn_error());
        tn_export_free(job);
        failed = 1;
        goto summary;
    }
    tn_export_free(job);
    end(&r, s, 1, "%s/ (stored %s)", fused, tn_dtype_name(stored));
    s = begin(&r, "reload");
    float *got = NULL;
    /* The fused weights are rounded to the stored dtype once. */
    double tol = stored == TN_DTYPE_F32 ? 1e-4 : stored == TN_DTYPE_F16 ? 1e-2 : 3e-2, top1 = 0;
    if (logits_of(fused, NULL, ids, n_ids, &got) != 0) {
        end(&r, s, 0, "%s", tn_error());
        failed = 1;
    } else {
        s->diff = compare(got, ref, n_ids, (int)src.spec.vocab_size, &top1);
        int ok = s->diff <= tol;
        end(&r, s, ok, "fused folder vs base + adapter: logits differ by %.2e relative (bound %.0e), top token agrees on %.0f%%", s->diff,
            tol, 100 * top1);
        failed |= !ok;
        free(got);
    }

    /* 6. greedy generation: fused vs base + adapter. */
    s = begin(&r, "generate");
    int32_t ga[16], gb[16];
    int np = n_ids < 16 ? n_ids : 16;
    if (greedy_of(model, adapter, ids, np, 16, ga) != 0 || greedy_of(fused, NULL, ids, np, 16, gb) != 0) {
        end(&r, s, 0, "%s", tn_error());
        failed = 1;
    } else {
        int same = 0;
        while (same < 16 && ga[same] == gb[same]) same++;
        int ok = same == 16 || stored != TN_DTYPE_F32;
        end(&r, s, ok, "16 greedy tokens after a %d-token prompt: %d identical%s", np, same,
            same < 16 && stored != TN_DTYPE_F32 ? " (16-bit rounding of the fused weights)" : "");
        failed |= !ok;
    }

    /* 7-8. GGUF f16 and q8_0: the weights as each file stores them. */
    const struct {
        const char *name, *path, *dir;
        tn_file_type type;
        double tol;
    } gg[2] = {{"gguf-f16", g16, d16, TN_FT_F16, 3e-2}, {"gguf-q8_0", g8, d8, TN_FT_Q8_0, 1e-1}};
    for (int k = 0; k < 2; k++) {
        s = begin(&r, gg[k].name);
        job = NULL;
        if (tn_gguf_export_prepare(&job, model, adapter, gg[k].path, gg[k].type) != 0 || tn_export_run(job) != 0) {
            end(&r, s, 0, "%s", tn_error());
            tn_export_free(job);
            failed = 1;
            continue;
        }
        tn_export_free(job);
        /* Reload the file as written: metadata -> config, tensors
         * dequantized with the export transforms undone, as llama.cpp reads
         * them (model/gguf_import.h). */
        if (tn_gguf_to_hf(gg[k].path, gg[k].dir) != 0 || logits_of(gg[k].dir, NULL, ids, n_ids, &got) != 0) {
            end(&r, s, 0, "%s", tn_error());
            failed = 1;
            continue;
        }
        s->diff = compare(got, ref, n_ids, (int)src.spec.vocab_size, &top1);
        int ok = s->diff <= gg[k].tol;
        end(&r, s, ok, "%s reloaded vs base + adapter: logits differ by %.2e relative (bound %.0e), top token agrees on %.0f%%",
            gg[k].path, s->diff, gg[k].tol, 100 * top1);
        failed |= !ok;
        free(got);
    }

summary:
    free(ref);
    if (r.json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "model", model);
        cJSON_AddBoolToObject(root, "ok", !failed && !usage);
        cJSON *arr = cJSON_AddArrayToObject(root, "stages");
        for (int i = 0; i < r.n; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "stage", r.st[i].name);
            cJSON_AddBoolToObject(e, "ok", r.st[i].ok);
            cJSON_AddStringToObject(e, "detail", r.st[i].detail);
            if (!isnan(r.st[i].diff)) cJSON_AddNumberToObject(e, "max_relative_diff", r.st[i].diff);
            cJSON_AddItemToArray(arr, e);
        }
        char *t = cJSON_PrintUnformatted(root);
        puts(t);
        free(t);
        cJSON_Delete(root);
    } else {
        printf("\n%-10s %-7s %s\n", "stage", "result", "largest relative logit difference");
        for (int i = 0; i < r.n; i++) {
            printf("%-10s %-7s ", r.st[i].name, r.st[i].ok ? "ok" : "FAILED");
            if (!isnan(r.st[i].diff)) printf("%.2e%s\n", r.st[i].diff, !strcmp(r.st[i].name, "train") ? " (adapter vs base: the training moved it)" : "");
            else printf("-\n");
        }
    }
    if (temp) tn_remove_tree(work);
    return usage ? TN_EXIT_USAGE : failed ? TN_EXIT_FAILED : TN_EXIT_OK;
}
