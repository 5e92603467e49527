/* cmd_logits.c - `tune logits MODEL [--adapter DIR] --ids 1,2,3 [--greedy N]`:
 * the training engine's forward pass (tn_model_logits) on a fixed token
 * sequence, teacher-forced, as next-token probabilities, and a greedy
 * continuation. The reference that exported files are compared with
 * (tests/e2e/export_llama.sh runs llama.cpp on the GGUF beside it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "io/json.h"
#include "model/gguf_import.h"
#include "train/adapter.h"
#include "train/model.h"
#include "util/error.h"
#include "util/platform.h"

static const char help[] =
    "usage: tune logits MODEL [--adapter DIR] (--ids 1,2,3 | --ids-file F.json) [--greedy N] [--top K]\n\n"
    "Runs the model (with the adapter) on the token ids and prints one JSON object (MODEL: a\n"
    "Hugging Face folder, or a GGUF file whose layer matrices are read from its own blocks):\n"
    "  {\"ids\": [...], \"probs\": [[p(next = v) for each v] for each position],\n"
    "   \"greedy\": [N ids, each the argmax after the previous ones]}\n"
    "With --top K, \"top\" replaces \"probs\": [[[id, p], ... K of them] for each position].\n"
    "Probabilities are the softmax of the final logits (after soft-caps and scaling).\n";

static int parse_ids(const char *text, int32_t **ids, int *n) {
    cJSON *arr = NULL;
    char buf[64];
    int cap = 16;
    *n = 0;
    *ids = malloc((size_t)cap * sizeof **ids);
    if (!*ids) return tn_fail("out of memory");
    if (text[0] == '[') {
        arr = tn_json_parse(text, strlen(text), "--ids");
        if (!arr || !cJSON_IsArray(arr)) {
            cJSON_Delete(arr);
            return tn_fail("--ids: expected a JSON array of ids");
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) {
            if (!cJSON_IsNumber(it)) {
                cJSON_Delete(arr);
                return tn_fail("--ids: expected numbers");
            }
            if (*n == cap) {
                int32_t *p = realloc(*ids, (size_t)(cap *= 2) * sizeof *p);
                if (!p) return cJSON_Delete(arr), tn_fail("out of memory");
                *ids = p;
            }
            (*ids)[(*n)++] = (int32_t)it->valuedouble;
        }
        cJSON_Delete(arr);
        return 0;
    }
    for (const char *p = text; *p;) {
        size_t k = strcspn(p, ",");
        if (k == 0 || k >= sizeof buf) return tn_fail("--ids: expected 1,2,3, got '%s'", text);
        memcpy(buf, p, k);
        buf[k] = 0;
        char *end;
        long v = strtol(buf, &end, 10);
        if (*end) return tn_fail("--ids: '%s' is not an integer", buf);
        if (*n == cap) {
            int32_t *q = realloc(*ids, (size_t)(cap *= 2) * sizeof *q);
            if (!q) return tn_fail("out of memory");
            *ids = q;
        }
        (*ids)[(*n)++] = (int32_t)v;
        p += k;
        if (*p == ',') p++;
    }
    return 0;
}

/* Softmax of one row into p (double precision). */
static void softmax(const float *logits, int64_t V, double *p) {
    double mx = -INFINITY, sum = 0;
    for (int64_t v = 0; v < V; v++) mx = logits[v] > mx ? logits[v] : mx;
    for (int64_t v = 0; v < V; v++) sum += (p[v] = exp((double)logits[v] - mx));
    for (int64_t v = 0; v < V; v++) p[v] /= sum;
}

int cmd_logits(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *ids_text = NULL, *ids_file = NULL, *v;
    int64_t greedy = 0, top = 0;
    tn_args a = tn_args_start(argc, argv, "logits");
    while (tn_args_next(&a)) {
        if (tn_arg_flag(&a, "--help") || tn_arg_flag(&a, "-h")) {
            fputs(help, stdout);
            return TN_EXIT_OK;
        } else if (tn_arg_value(&a, "--model", &v)) model = v;
        else if (tn_arg_value(&a, "--adapter", &v)) adapter = v;
        else if (tn_arg_value(&a, "--ids", &v)) ids_text = v;
        else if (tn_arg_value(&a, "--ids-file", &v)) ids_file = v;
        else if (tn_arg_value(&a, "--greedy", &v)) { if (!v || tn_arg_int("--greedy", v, 0, 1 << 16, &greedy)) a.failed = 1; }
        else if (tn_arg_value(&a, "--top", &v)) { if (!v || tn_arg_int("--top", v, 1, 1 << 20, &top)) a.failed = 1; }
        else if (tn_arg_positional(&a, &v)) model = v;
        else tn_arg_unknown(&a);
    }
    if (a.failed) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
    if (!model || (!ids_text && !ids_file)) return fprintf(stderr, "tune logits: needs MODEL and --ids\n%s", help), TN_EXIT_USAGE;
    char *file_text = NULL;
    if (ids_file && !(file_text = tn_read_file(ids_file, 64u << 20, NULL))) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
    int32_t *ids = NULL;
    int n = 0;
    int rc = parse_ids(file_text ? file_text : ids_text, &ids, &n);
    free(file_text);
    if (rc || n == 0) {
        if (!rc) tn_fail("--ids: no ids");
        free(ids);
        return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
    }
    int total = n + (int)greedy;
    tn_model m;
    tn_lora lora;
    int have_lora = 0;
    tn_activations acts;
    memset(&acts, 0, sizeof acts);
    float *logits = NULL;
    double *p = NULL;
    int32_t *seq = NULL;
    rc = TN_EXIT_USAGE;
    /* A GGUF: its layer matrices read from the file's own blocks, as
     * training on it does (model/gguf_import.h). */
    char gguf_dir[4096] = "";
    if (tn_is_gguf_file(model)) {
        if (tn_gguf_base_temp(model, gguf_dir, sizeof gguf_dir, 1) != 0) {
            fprintf(stderr, "tune: %s\n", tn_error());
            free(ids);
            return TN_EXIT_USAGE;
        }
        model = gguf_dir;
    }
    if (tn_model_open(model, total, &m) != 0) {
        fprintf(stderr, "tune: %s\n", tn_error());
        free(ids);
        if (gguf_dir[0]) tn_gguf_remove_temp(gguf_dir);
        return TN_EXIT_USAGE;
    }
    const int64_t V = m.spec.vocab_size;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V) {
            fprintf(stderr, "tune: --ids: id %d is outside the vocabulary (expected 0..%lld)\n", ids[i], (long long)V - 1);
            goto out;
        }
    if (adapter) {
        if (tn_adapter_load(&lora, &m, adapter) != 0) {
            fprintf(stderr, "tune: %s\n", tn_error());
            goto out;
        }
        have_lora = 1;
    }
    rc = TN_EXIT_FAILED;
    tn_plan_settings ps = {.seq = total, .batch = 1};
    logits = malloc((size_t)total * (size_t)V * sizeof *logits);
    p = malloc((size_t)V * sizeof *p);
    seq = malloc((size_t)total * sizeof *seq);
    if (!logits || !p || !seq || tn_activations_alloc(&acts, &m, have_lora ? &lora : NULL, &ps) != 0) {
        fprintf(stderr, "tune: %s\n", logits && p && seq ? tn_error() : "out of memory");
        goto out;
    }
    memcpy(seq, ids, (size_t)n * sizeof *seq);
    if (tn_activations_shape(&acts, 1, n) || tn_model_logits(&m, have_lora ? &lora : NULL, &acts, seq, logits)) {
        fprintf(stderr, "tune: %s\n", tn_error());
        goto out;
    }
    printf("{\"ids\": [");
    for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
    printf("],\n \"%s\": [", top ? "top" : "probs");
    for (int t = 0; t < n; t++) {
        softmax(logits + (int64_t)t * V, V, p);
        printf("%s\n  [", t ? "," : "");
        if (top) {
            for (int64_t k = 0; k < top && k < V; k++) {
                int64_t best = -1;
                for (int64_t u = 0; u < V; u++)
                    if (p[u] >= 0 && (best < 0 || p[u] > p[best])) best = u;
                printf("%s[%lld, %.9g]", k ? ", " : "", (long long)best, p[best]);
                p[best] = -1;
            }
        } else {
            for (int64_t u = 0; u < V; u++) printf("%s%.9g", u ? "," : "", p[u]);
        }
        printf("]");
    }
    printf("]");
    if (greedy) {
        /* one full forward per token: no cache, the reference's own math */
        printf(",\n \"greedy\": [");
        for (int g = 0; g < greedy; g++) {
            int len = n + g;
            if (g > 0 && (tn_activations_shape(&acts, 1, len) || tn_model_logits(&m, have_lora ? &lora : NULL, &acts, seq, logits))) {
                fprintf(stderr, "tune: %s\n", tn_error());
                goto out;
            }
            const float *last = logits + (int64_t)(len - 1) * V;
            int64_t best = 0;
            for (int64_t u = 1; u < V; u++)
                if (last[u] > last[best]) best = u;
            seq[len] = (int32_t)best;
            printf("%s%lld", g ? ", " : "", (long long)best);
        }
        printf("]");
    }
    printf("}\n");
    rc = TN_EXIT_OK;
out:
    tn_activations_free(&acts);
    if (have_lora) tn_lora_free(&lora);
    tn_model_close(&m);
    if (gguf_dir[0]) tn_gguf_remove_temp(gguf_dir);
    free(logits), free(p), free(seq), free(ids);
    return rc;
}
