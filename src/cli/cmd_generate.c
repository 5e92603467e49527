/* cmd_generate.c - `tune generate MODEL [--adapter DIR] (--prompt TEXT | --chat)`:
 * the model's chat template applied (unless --raw), a KV cache, tokens
 * streamed to stdout as they come, stop on the model's end-of-turn tokens,
 * statistics on stderr. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "data/chat.h"
#include "generate/infer.h"
#include "generate/sample.h"
#include "io/json.h"
#include "model/gguf_import.h"
#include "text/tokenizer.h"
#include "train/adapter.h"
#include "util/error.h"
#include "util/platform.h"
#include "util/size.h"

static const char help[] =
    "usage: tune generate MODEL [--adapter DIR] (--prompt TEXT | --chat) [options]\n\n"
    "Text generation with a KV cache from a Hugging Face folder or a GGUF file (with or\n"
    "without a LoRA adapter folder). The model's chat template is applied to the prompt\n"
    "unless --raw. The text goes to stdout as it is generated; statistics go to stderr.\n"
    "A GGUF file is read in place: its layer matrices stay in the file (dequantized a layer\n"
    "at a time for the prompt, read as stored while decoding); the embeddings, head and norms\n"
    "go to a temporary folder under $TMPDIR in F32 while it runs (see docs/gguf.md).\n\n"
    "options:\n"
    "  --system TEXT        a system message (chat template)\n"
    "  --raw                no chat template: the prompt is the text, with BOS as the tokenizer adds it\n"
    "  --max-tokens N (256) --temp T (0.8; 0 = greedy) --top-k K (40) --top-p P (0.95) --min-p P (0.05)\n"
    "  --repeat-penalty R (1.0) --seed S (0) --max-context N (2048)\n"
    "  --chat               an interactive conversation on stdin (an empty line ends it)\n";

/* The ids that end a turn: the tokenizer's EOS, generation_config.json's
 * eos_token_id (a number or a list), and the end-of-turn tokens of the
 * supported families that this vocabulary holds. */
static const char *const end_of_turn[] = {"<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<end_of_turn>", "<|end_of_text|>", "</s>", "<|endoftext|>", NULL};

typedef struct {
    int32_t ids[32];
    int n;
} stop_set;

static void stop_add(stop_set *s, int32_t id) {
    if (id < 0 || s->n >= 32) return;
    for (int i = 0; i < s->n; i++)
        if (s->ids[i] == id) return;
    s->ids[s->n++] = id;
}

static int is_stop(const stop_set *s, int32_t id) {
    for (int i = 0; i < s->n; i++)
        if (s->ids[i] == id) return 1;
    return 0;
}

static void load_stops(stop_set *st, const tn_tokenizer *tok, const char *model) {
    stop_add(st, tn_tokenizer_special_id(tok, TN_TOK_EOS));
    for (int i = 0; end_of_turn[i]; i++) stop_add(st, tn_tokenizer_token_id(tok, end_of_turn[i], strlen(end_of_turn[i])));
    char path[4200];
    snprintf(path, sizeof path, "%s/generation_config.json", model);
    if (!tn_file_exists(path)) return;
    cJSON *g = tn_json_parse_file(path, 1 << 20);
    if (!g) return;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(g, "eos_token_id");
    if (cJSON_IsNumber(e)) stop_add(st, (int32_t)e->valuedouble);
    else if (cJSON_IsArray(e)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, e) if (cJSON_IsNumber(it)) stop_add(st, (int32_t)it->valuedouble);
    }
    cJSON_Delete(g);
}

/* Length of the longest prefix of s[0..n) that ends on a whole UTF-8 character. */
static size_t complete_utf8(const char *s, size_t n) {
    size_t i = n;
    int back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) i--, back++;
    if (i == 0) return n;
    unsigned char lead = (unsigned char)s[i - 1];
    int need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
    return back >= need ? n : i - 1;
}

typedef struct {
    tn_model m;
    tn_lora lora;
    int have_lora;
    tn_tokenizer *tok;
    tn_chat *chat;
    tn_infer inf;
    tn_sampler smp;
    stop_set stops;
    int32_t *ctx; /* the tokens in the cache */
    int n_ctx;
    int max_tokens;
} gen_state;

/* Feeds ids (reusing the cached prefix they share with the context), then
 * samples until a stop token or max_tokens; streams text to `out`.
 * Returns the generated ids in *gen (malloc'd). */
static int run_turn(gen_state *g, const int32_t *ids, int n, FILE *out, int32_t **gen, int *n_gen, double *t_prompt, double *t_gen) {
    int common = 0;
    while (common < n && common < g->n_ctx && common < g->inf.pos && g->ctx[common] == ids[common]) common++;
    if (common == n) common = n - 1; /* the last prompt token must run to give logits */
    g->inf.pos = common;
    g->n_ctx = common;
    double t0 = tn_seconds();
    if (tn_infer_forward(&g->inf, &g->m, g->have_lora ? &g->lora : NULL, ids + common, n - common) != 0) return -1;
    memcpy(g->ctx + common, ids + common, (size_t)(n - common) * sizeof *ids);
    g->n_ctx = n;
    *t_prompt = tn_seconds() - t0;
    t0 = tn_seconds();
    int32_t *out_ids = tn_malloc((size_t)(g->max_tokens + 1) * sizeof *out_ids, "generated tokens");
    if (!out_ids) return -1;
    int k = 0;
    size_t printed = 0;
    int V = (int)g->m.spec.vocab_size;
    while (k < g->max_tokens) {
        int32_t t = tn_sample(&g->smp, g->inf.logits, V, g->ctx, g->n_ctx);
        if (is_stop(&g->stops, t)) break;
        out_ids[k++] = t;
        char *text = NULL;
        size_t len = 0;
        if (tn_tokenizer_decode(g->tok, out_ids, (size_t)k, 1, &text, &len) == 0) {
            size_t upto = complete_utf8(text, len);
            if (upto > printed) {
                fwrite(text + printed, 1, upto - printed, out);
                fflush(out);
                printed = upto;
            }
            free(text);
        }
        if (g->n_ctx >= g->inf.max_ctx) {
            fprintf(stderr, "\ntune generate: the context of %d tokens is full\n", g->inf.max_ctx);
            break;
        }
        g->ctx[g->n_ctx++] = t;
        if (tn_infer_forward(&g->inf, &g->m, g->have_lora ? &g->lora : NULL, &t, 1) != 0) {
            free(out_ids);
            return -1;
        }
    }
    *t_gen = tn_seconds() - t0;
    *gen = out_ids;
    *n_gen = k;
    return 0;
}

static int encode_messages(gen_state *g, cJSON *messages, int raw, const char *text, tn_ids *ids) {
    ids->n = 0;
    if (raw || !g->chat || !tn_chat_has_template(g->chat)) return tn_tokenizer_encode(g->tok, text, strlen(text), 1, ids);
    char *json = cJSON_PrintUnformatted(messages);
    size_t len;
    char *rendered = tn_chat_render(g->chat, json, strlen(json), NULL, 0, 1, &len);
    free(json);
    if (!rendered) return -1;
    int rc = tn_tokenizer_encode(g->tok, rendered, len, 0, ids);
    free(rendered);
    return rc;
}

/* Whether a GGUF runs through the whole-model F32 copy (tn_gguf_unpack_temp)
 * rather than as a GGUF base: asked for (TUNE_GGUF_UNPACK, TUNE_GGUF_FP32),
 * or Granite 4.0-H (granitehybrid), which decodes from fp32 layer views
 * only. A file that does not open goes the base way, whose error names it. */
static int unpack_whole(const char *path) {
    const char *e = getenv("TUNE_GGUF_UNPACK");
    if ((e && *e && strcmp(e, "0")) || getenv("TUNE_GGUF_FP32")) return 1;
    tn_gguf g;
    if (tn_gguf_open(path, &g) != 0) return 0;
    const char *arch;
    size_t n;
    int hybrid = tn_gguf_get_str(&g, "general.architecture", &arch, &n) == 1 && n == 13 && !memcmp(arch, "granitehybrid", 13);
    tn_gguf_close(&g);
    return hybrid;
}

/* The bytes of the files in a folder (no subfolders). */
static uint64_t dir_bytes(const char *dir) {
    uint64_t total = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    char p[4400];
    struct stat st;
    while ((e = readdir(d))) {
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *prompt = NULL, *system = NULL, *v;
    int raw = 0, chat = 0;
    int64_t n;
    double d;
    int64_t max_tokens = 256, seed = 0, max_ctx = 2048, top_k = 40;
    double temp = 0.8, top_p = 0.95, min_p = 0.05, rp = 1.0;
    tn_args a = tn_args_start(argc, argv, "generate");
    while (tn_args_next(&a)) {
        if (tn_arg_flag(&a, "--help") || tn_arg_flag(&a, "-h")) {
            fputs(help, stdout);
            return TN_EXIT_OK;
        } else if (tn_arg_value(&a, "--model", &v)) model = v;
        else if (tn_arg_value(&a, "--adapter", &v)) adapter = v;
        else if (tn_arg_value(&a, "--prompt", &v)) prompt = v;
        else if (tn_arg_value(&a, "--system", &v)) system = v;
        else if (tn_arg_flag(&a, "--raw")) raw = 1;
        else if (tn_arg_flag(&a, "--chat")) chat = 1;
        else if (tn_arg_value(&a, "--max-tokens", &v)) { if (!v || tn_arg_int("--max-tokens", v, 1, 1 << 20, &n)) a.failed = 1; else max_tokens = n; }
        else if (tn_arg_value(&a, "--seed", &v)) { if (!v || tn_arg_int("--seed", v, 0, INT64_MAX, &n)) a.failed = 1; else seed = n; }
        else if (tn_arg_value(&a, "--max-context", &v)) { if (!v || tn_arg_int("--max-context", v, 16, 1 << 22, &n)) a.failed = 1; else max_ctx = n; }
        else if (tn_arg_value(&a, "--top-k", &v)) { if (!v || tn_arg_int("--top-k", v, 0, 1 << 24, &n)) a.failed = 1; else top_k = n; }
        else if (tn_arg_value(&a, "--temp", &v) || tn_arg_value(&a, "--temperature", &v)) { if (!v || tn_arg_double("--temp", v, &d) || d < 0) a.failed = 1, tn_fail("--temp: expected a number >= 0"); else temp = d; }
        else if (tn_arg_value(&a, "--top-p", &v)) { if (!v || tn_arg_double("--top-p", v, &d)) a.failed = 1; else top_p = d; }
        else if (tn_arg_value(&a, "--min-p", &v)) { if (!v || tn_arg_double("--min-p", v, &d)) a.failed = 1; else min_p = d; }
        else if (tn_arg_value(&a, "--repeat-penalty", &v)) { if (!v || tn_arg_double("--repeat-penalty", v, &d) || d <= 0) a.failed = 1, tn_fail("--repeat-penalty: expected a number > 0"); else rp = d; }
        else if (tn_arg_positional(&a, &v)) model = v;
        else tn_arg_unknown(&a);
    }
    if (a.failed) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
    if (!model || (!prompt && !chat)) return fprintf(stderr, "tune generate: needs MODEL and --prompt TEXT or --chat\n%s", help), TN_EXIT_USAGE;
    /* A GGUF file is read as a GGUF base (model/gguf_import.h): a temporary
     * folder with the config, the tokenizer files and the small tensors in
     * F32, the layer matrices left in the file (the prompt dequantizes a
     * layer at a time, decoding reads the stored rows). The whole model in
     * F32 (the older path) with TUNE_GGUF_UNPACK=1 or TUNE_GGUF_FP32=1, and
     * for Granite 4.0-H, whose decode does not read GGUF blocks in place. */
    const char *source = model;
    char gguf_dir[4096] = "";
    if (tn_is_directory(model) == 0) {
        if (!tn_file_exists(model)) return fprintf(stderr, "tune: %s: no such file or folder\n", model), TN_EXIT_USAGE;
        double t0 = tn_seconds();
        int whole = unpack_whole(model);
        if ((whole ? tn_gguf_unpack_temp(model, gguf_dir, sizeof gguf_dir) : tn_gguf_base_temp(model, gguf_dir, sizeof gguf_dir, 1)) != 0)
            return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
        char size[32];
        tn_format_gib(dir_bytes(gguf_dir), size, sizeof size);
        if (whole)
            fprintf(stderr, "tune generate: %s dequantized to F32 in %.1f s (%s under %s while generating)\n", model, tn_seconds() - t0, size, gguf_dir);
        else
            fprintf(stderr, "tune generate: %s read in place, its layer matrices never copied (embeddings, head and norms in F32: %s under %s, %.1f s)\n",
                    model, size, gguf_dir, tn_seconds() - t0);
        model = gguf_dir;
    }

    gen_state g;
    memset(&g, 0, sizeof g);
    g.max_tokens = (int)max_tokens;
    int rc = TN_EXIT_USAGE;
    if (tn_model_open(model, (int)max_ctx, &g.m) != 0) {
        fprintf(stderr, "tune: %s\n", tn_error());
        goto out_model;
    }
    if (adapter) {
        if (tn_adapter_load(&g.lora, &g.m, adapter) != 0) {
            fprintf(stderr, "tune: %s\n", tn_error());
            goto out_model;
        }
        g.have_lora = 1;
    }
    g.tok = tn_tokenizer_load(model);
    if (!g.tok) {
        fprintf(stderr, "tune: %s\n", tn_error());
        goto out_lora;
    }
    g.chat = raw ? NULL : tn_chat_load(model);
    if (!raw && !g.chat) {
        fprintf(stderr, "tune: %s\n", tn_error());
        goto out_tok;
    }
    if (!raw && !tn_chat_has_template(g.chat)) fprintf(stderr, "tune generate: %s has no chat template: the prompt is used as raw text\n", source);
    load_stops(&g.stops, g.tok, model);
    if (tn_infer_init(&g.inf, &g.m, g.have_lora ? &g.lora : NULL, (int)max_ctx) != 0 ||
        tn_sampler_init(&g.smp, (int)g.m.spec.vocab_size, (uint64_t)seed) != 0) {
        fprintf(stderr, "tune: %s\n", tn_error());
        goto out_chat;
    }
    if (gguf_dir[0] && !getenv("TUNE_GGUF_FP32")) { /* decode from the GGUF's quantized blocks (TUNE_GGUF_FP32=1: from the fp32 copy) */
        int nq = 0;
        if (tn_infer_attach_gguf(&g.inf, &g.m, source, &nq) != 0) {
            fprintf(stderr, "tune: %s\n", tn_error());
            tn_infer_free(&g.inf);
            tn_sampler_free(&g.smp);
            goto out_chat;
        }
        if (nq) {
            char types[512] = "";
            size_t len = 0;
            for (int t = 0; t < 64 && len < sizeof types - 40; t++)
                if (g.inf.qw->by_type[t]) len += (size_t)snprintf(types + len, sizeof types - len, "%s%s %d", len ? ", " : "", tn_gguf_type_name(t), g.inf.qw->by_type[t]);
            fprintf(stderr, "tune generate: decoding reads %d quantized matrices of %s in place (%s)\n", nq, source, types);
        }
    }
    if (!gguf_dir[0] && g.inf.qw) /* a BF16/F16 folder: tn_infer_init attached its stored rows */
        fprintf(stderr, "tune generate: decoding reads %d matrices of %s in place (%s)\n", g.inf.qw->n, source,
                g.inf.qw->by_type[30] ? "BF16" : "F16");
    g.smp.temp = temp, g.smp.top_k = (int)top_k, g.smp.top_p = top_p, g.smp.min_p = min_p, g.smp.repeat_penalty = rp;
    g.ctx = tn_malloc((size_t)max_ctx * sizeof *g.ctx, "context");
    if (!g.ctx) goto out_inf;
    cJSON *messages = cJSON_CreateArray();
    if (system) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "system");
        cJSON_AddStringToObject(m, "content", system);
        cJSON_AddItemToArray(messages, m);
    }
    tn_ids ids = {0};
    char line[65536];
    double t_prompt_all = 0, t_gen_all = 0;
    int64_t n_prompt_all = 0, n_gen_all = 0;
    for (;;) {
        const char *user = prompt;
        if (chat) {
            fprintf(stderr, "> ");
            if (!fgets(line, sizeof line, stdin)) break;
            size_t l = strlen(line);
            while (l && (line[l - 1] == '\n' || line[l - 1] == '\r')) line[--l] = 0;
            if (!l) break;
            user = line;
        }
        cJSON *um = cJSON_CreateObject();
        cJSON_AddStringToObject(um, "role", "user");
        cJSON_AddStringToObject(um, "content", user);
        cJSON_AddItemToArray(messages, um);
        if (encode_messages(&g, messages, raw, user, &ids) != 0 || ids.n == 0) {
            fprintf(stderr, "tune: %s\n", ids.n == 0 ? "the prompt encodes to no tokens" : tn_error());
            rc = TN_EXIT_FAILED;
            break;
        }
        if ((int64_t)ids.n >= max_ctx) {
            fprintf(stderr, "tune: the prompt has %zu tokens, the context %lld (raise --max-context)\n", ids.n, (long long)max_ctx);
            rc = TN_EXIT_FAILED;
            break;
        }
        int32_t *gen = NULL;
        int n_gen = 0;
        double tp, tg;
        if (run_turn(&g, ids.ids, (int)ids.n, stdout, &gen, &n_gen, &tp, &tg) != 0) {
            fprintf(stderr, "tune: %s\n", tn_error());
            rc = TN_EXIT_FAILED;
            break;
        }
        fputc('\n', stdout);
        fflush(stdout);
        t_prompt_all += tp, t_gen_all += tg, n_prompt_all += (int64_t)ids.n, n_gen_all += n_gen;
        char *text = NULL;
        size_t len = 0;
        tn_tokenizer_decode(g.tok, gen, (size_t)n_gen, 1, &text, &len);
        cJSON *am = cJSON_CreateObject();
        cJSON_AddStringToObject(am, "role", "assistant");
        cJSON_AddStringToObject(am, "content", text ? text : "");
        cJSON_AddItemToArray(messages, am);
        free(text);
        free(gen);
        rc = TN_EXIT_OK;
        if (!chat) break;
    }
    char gb[32];
    fprintf(stderr, "tune generate: prompt %lld tokens at %.1f tokens/s, generated %lld tokens at %.1f tokens/s, peak memory %s (rss)\n",
            (long long)n_prompt_all, t_prompt_all > 0 ? n_prompt_all / t_prompt_all : 0.0, (long long)n_gen_all,
            t_gen_all > 0 ? n_gen_all / t_gen_all : 0.0, tn_format_gib(tn_peak_rss(), gb, sizeof gb));
    tn_ids_free(&ids);
    cJSON_Delete(messages);
    free(g.ctx);
out_inf:
    tn_sampler_free(&g.smp);
    tn_infer_free(&g.inf);
out_chat:
    if (g.chat) tn_chat_free(g.chat);
out_tok:
    tn_tokenizer_free(g.tok);
out_lora:
    if (g.have_lora) tn_lora_free(&g.lora);
out_model:
    tn_model_close(&g.m);
    if (gguf_dir[0]) tn_gguf_remove_temp(gguf_dir);
    return rc;
}
