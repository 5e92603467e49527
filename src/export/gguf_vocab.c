/* gguf_vocab.c - tokenizer metadata for GGUF (see gguf_vocab.h). */
#include "export/gguf_vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "util/error.h"
#include "util/platform.h"

enum { TOK_NORMAL = 1, TOK_UNKNOWN = 2, TOK_CONTROL = 3, TOK_USER_DEFINED = 4, TOK_UNUSED = 5, TOK_BYTE = 6 };

/* The pieces of the vocabulary being built, [n] each. */
typedef struct {
    int64_t n;
    char **text;
    size_t *len;
    int32_t *type;
    float *score;
    int *set; /* the id has a token (else it is padding) */
} vocab;

static void vocab_free(vocab *v) {
    if (v->text)
        for (int64_t i = 0; i < v->n; i++) free(v->text[i]);
    free(v->text), free(v->len), free(v->type), free(v->score), free(v->set);
}

static int vocab_alloc(vocab *v, int64_t n) {
    memset(v, 0, sizeof *v);
    v->n = n;
    v->text = calloc((size_t)n, sizeof *v->text);
    v->len = calloc((size_t)n, sizeof *v->len);
    v->type = calloc((size_t)n, sizeof *v->type);
    v->score = calloc((size_t)n, sizeof *v->score);
    v->set = calloc((size_t)n, sizeof *v->set);
    if (!v->text || !v->len || !v->type || !v->score || !v->set) return tn_fail("out of memory (vocabulary of %lld)", (long long)n);
    return 0;
}

static int vocab_put(vocab *v, int64_t id, const char *s, size_t n, int type) {
    char *copy = malloc(n + 1);
    if (!copy) return tn_fail("out of memory");
    memcpy(copy, s, n);
    copy[n] = 0;
    free(v->text[id]);
    v->text[id] = copy;
    v->len[id] = n;
    v->type[id] = type;
    v->set[id] = 1;
    return 0;
}

/* A string -> id table (open addressing, FNV-1a). */
typedef struct {
    int64_t *slot; /* id + 1, 0 empty */
    size_t mask;
    const vocab *v;
} str_index;

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int index_build(str_index *ix, const vocab *v) {
    size_t cap = 16;
    while (cap < (size_t)v->n * 2) cap *= 2;
    ix->slot = calloc(cap, sizeof *ix->slot);
    if (!ix->slot) return tn_fail("out of memory");
    ix->mask = cap - 1;
    ix->v = v;
    for (int64_t id = 0; id < v->n; id++) {
        if (!v->set[id]) continue;
        size_t h = (size_t)fnv(v->text[id], v->len[id]) & ix->mask;
        while (ix->slot[h]) h = (h + 1) & ix->mask;
        ix->slot[h] = id + 1;
    }
    return 0;
}

static int64_t index_find(const str_index *ix, const char *s, size_t n) {
    size_t h = (size_t)fnv(s, n) & ix->mask;
    for (; ix->slot[h]; h = (h + 1) & ix->mask) {
        int64_t id = ix->slot[h] - 1;
        if (ix->v->len[id] == n && !memcmp(ix->v->text[id], s, n)) return id;
    }
    return -1;
}

/* A token that llama.cpp's converter marks as control although the
 * tokenizer does not call it special (does_token_look_special). */
static int looks_special(const char *s) {
    size_t n = strlen(s);
    if (!strcmp(s, "<pad>") || !strcmp(s, "<mask>") || !strcmp(s, "<2mass>") || !strcmp(s, "[@BOS@]")) return 1;
    if (n >= 4 && !strncmp(s, "<|", 2) && !strcmp(s + n - 2, "|>")) return 1;
    if (n >= 8 && !strncmp(s, "<unused", 7) && s[n - 1] == '>') return 1;
    /* "<｜" ... "｜>" (DeepSeek's full-width bar) */
    if (n >= 8 && !strncmp(s, "<\xef\xbd\x9c", 4) && !strcmp(s + n - 4, "\xef\xbd\x9c>")) return 1;
    return 0;
}

static int is_byte_token(const char *s, size_t n) {
    static const char hex[] = "0123456789ABCDEFabcdef";
    return n == 6 && !strncmp(s, "<0x", 3) && strchr(hex, s[3]) && strchr(hex, s[4]) && s[5] == '>';
}

/* Pre-tokenizer signatures llama.cpp knows (llama-vocab.cpp), each with the
 * tokenizer.ggml.pre names that use it. */
typedef struct {
    const char *regex; /* Split regex; NULL: "Digits + ByteLevel(use_regex)" */
    const char *names[3];
} pre_signature;

static const pre_signature pre_signatures[] = {
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
     {"llama-bpe", "dbrx", NULL}},
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
     {"qwen2", NULL, NULL}},
    {"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
     {"tekken", NULL, NULL}},
    {NULL, {"refact", NULL, NULL}},
};

/* Finds the first Split regex and whether Digits / ByteLevel(use_regex)
 * appear, in a pre-tokenizer (possibly a Sequence). */
static void scan_pre(const cJSON *p, const char **regex, int *digits, int *bytelevel_regex) {
    if (!cJSON_IsObject(p)) return;
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "type"));
    if (!type) return;
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers")) scan_pre(it, regex, digits, bytelevel_regex);
    } else if (!strcmp(type, "Split") && !*regex) {
        *regex = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "pattern"), "Regex"));
    } else if (!strcmp(type, "Digits")) {
        *digits = 1;
    } else if (!strcmp(type, "ByteLevel")) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(p, "use_regex");
        if (!u || cJSON_IsTrue(u)) *bytelevel_regex = 1;
    }
}

static const char *choose_pre(const cJSON *tok, const tn_spec *spec, const char *path) {
    const char *regex = NULL;
    int digits = 0, blr = 0;
    scan_pre(cJSON_GetObjectItemCaseSensitive(tok, "pre_tokenizer"), &regex, &digits, &blr);
    const char *family = spec->family->gguf_tokenizer_pre;
    for (size_t i = 0; i < sizeof pre_signatures / sizeof pre_signatures[0]; i++) {
        const pre_signature *sg = &pre_signatures[i];
        int match = sg->regex ? (regex && !strcmp(regex, sg->regex)) : (!regex && digits && blr);
        if (!match) continue;
        for (int k = 0; k < 3 && sg->names[k]; k++)
            if (family && !strcmp(sg->names[k], family)) return family;
        return sg->names[0];
    }
    if (!regex && !digits && blr) return "gpt-2";
    fprintf(stderr, "tune: warning: %s: pre-tokenizer not recognised; writing tokenizer.ggml.pre \"%s\" (the %s family's)\n", path,
            family ? family : "default", spec->model_type);
    return family ? family : "default";
}

/* tokenizer_config.json's X_token: a string or {"content": ...}. */
static const char *config_token(const cJSON *cfg, const char *key) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsString(e)) return e->valuestring;
    if (cJSON_IsObject(e)) return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "content"));
    return NULL;
}

/* The id of an added token by content (first match), or -1. */
static int64_t added_id(const cJSON *added, const char *content) {
    const cJSON *a;
    cJSON_ArrayForEach(a, added) {
        const char *c = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "content"));
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        if (c && cJSON_IsNumber(id) && !strcmp(c, content)) return (int64_t)id->valuedouble;
    }
    return -1;
}

/* Whether TemplateProcessing's single template starts (ends) with this
 * special token. */
static int template_has(const cJSON *pp, const char *token, int at_end) {
    if (!cJSON_IsObject(pp) || !token) return 0;
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pp, "type"));
    if (!type) return 0;
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(pp, "processors")) if (template_has(it, token, at_end)) return 1;
        return 0;
    }
    if (strcmp(type, "TemplateProcessing")) return 0;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
    int n = cJSON_GetArraySize(single);
    if (n < 2) return 0;
    const cJSON *e = cJSON_GetArrayItem(single, at_end ? n - 1 : 0);
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "SpecialToken"), "id"));
    return id && !strcmp(id, token);
}

/* Whether the normalizer (or a Metaspace pre-tokenizer) puts "▁" in front
 * of the text: llama.cpp's add_space_prefix. */
static int has_space_prefix(const cJSON *n) {
    if (!cJSON_IsObject(n)) return 0;
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(n, "type"));
    if (!type) return 0;
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(n, "normalizers")) if (has_space_prefix(it)) return 1;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(n, "pretokenizers")) if (has_space_prefix(it)) return 1;
        return 0;
    }
    if (!strcmp(type, "Prepend")) {
        const char *p = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(n, "prepend"));
        return p && !strcmp(p, "\xe2\x96\x81");
    }
    if (!strcmp(type, "Metaspace")) {
        const char *scheme = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(n, "prepend_scheme"));
        const cJSON *aps = cJSON_GetObjectItemCaseSensitive(n, "add_prefix_space");
        return scheme ? strcmp(scheme, "never") != 0 : cJSON_IsTrue(aps);
    }
    return 0;
}

/* Writes tokenizer.chat_template (and named templates) from
 * chat_template.jinja, else tokenizer_config.json's chat_template. */
static int add_chat_template(tn_gguf_writer *w, const char *dir, const cJSON *cfg) {
    char path[4200];
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    if (tn_file_exists(path)) {
        size_t n;
        char *text = tn_read_file(path, 64u << 20, &n);
        if (!text) return -1;
        int rc = tn_gguf_set_str(w, "tokenizer.chat_template", text);
        free(text);
        return rc;
    }
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    if (cJSON_IsString(ct)) return tn_gguf_set_str(w, "tokenizer.chat_template", ct->valuestring);
    if (!cJSON_IsArray(ct)) return 0;
    const cJSON *it;
    const char *names[64];
    char named[64][128];
    int n_named = 0;
    cJSON_ArrayForEach(it, ct) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "name"));
        const char *tpl = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "template"));
        if (!name || !tpl || !*name) continue;
        if (!strcmp(name, "default")) {
            if (tn_gguf_set_str(w, "tokenizer.chat_template", tpl)) return -1;
            continue;
        }
        if (n_named == 64) continue;
        char clean[96];
        size_t k = 0;
        for (; name[k] && k < sizeof clean - 1; k++) {
            char c = name[k];
            clean[k] = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) ? c : '_';
        }
        clean[k] = 0;
        snprintf(named[n_named], sizeof named[0], "tokenizer.chat_template.%s", clean);
        if (tn_gguf_has_key(w, named[n_named])) continue;
        if (tn_gguf_set_str(w, named[n_named], tpl)) return -1;
        names[n_named] = named[n_named] + strlen("tokenizer.chat_template.");
        n_named++;
    }
    return n_named ? tn_gguf_set_arr_str(w, "tokenizer.chat_templates", names, NULL, (uint64_t)n_named) : 0;
}

int tn_gguf_add_vocab(tn_gguf_writer *w, const char *dir, const tn_spec *spec) {
    char path[4200], cfg_path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    snprintf(cfg_path, sizeof cfg_path, "%s/tokenizer_config.json", dir);
    if (!tn_file_exists(path))
        return tn_fail("%s: missing (a GGUF file carries the tokenizer; expected tokenizer.json beside config.json)", path);
    cJSON *tok = tn_json_parse_file(path, (size_t)1 << 30);
    if (!tok) return -1;
    cJSON *cfg = tn_file_exists(cfg_path) ? tn_json_parse_file(cfg_path, 64u << 20) : cJSON_CreateObject();
    char config_path[4200];
    snprintf(config_path, sizeof config_path, "%s/config.json", dir);
    cJSON *config = tn_file_exists(config_path) ? tn_json_parse_file(config_path, 64u << 20) : NULL;
    vocab v = {0};
    str_index ix = {0};
    const char **texts = NULL;
    int rc = -1;
    if (!cfg) goto done;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tok, "model");
    const char *mtype = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(model, "type"));
    if (!mtype || strcmp(mtype, "BPE")) {
        tn_fail("%s: model.type is %s: GGUF export supports BPE tokenizers (byte-level or with byte fallback)", path,
                mtype ? mtype : "missing");
        goto done;
    }
    const cJSON *vmap = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(tok, "added_tokens");
    int spm = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback"));
    if (!cJSON_IsObject(vmap)) {
        tn_fail("%s: model.vocab: expected an object of token -> id, got %s", path, tn_json_type_name(vmap));
        goto done;
    }
    if (vocab_alloc(&v, spec->vocab_size)) goto done;
    /* The model's vocabulary, then the added tokens over it. */
    const cJSON *e;
    cJSON_ArrayForEach(e, vmap) {
        int64_t id = cJSON_IsNumber(e) ? (int64_t)e->valuedouble : -1;
        if (id < 0 || id >= v.n) {
            tn_fail("%s: token %s has id %lld, outside the model's vocabulary (config.json vocab_size %lld)", path, e->string,
                    (long long)id, (long long)v.n);
            goto done;
        }
        size_t n = strlen(e->string);
        if (vocab_put(&v, id, e->string, n, spm && is_byte_token(e->string, n) ? TOK_BYTE : TOK_NORMAL)) goto done;
    }
    const char *unk = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(model, "unk_token"));
    /* The unknown token (control instead when it is also a special added
     * token, as the converter leaves it). */
    if (spm && unk) {
        for (int64_t id = 0; id < v.n; id++)
            if (v.set[id] && !strcmp(v.text[id], unk)) v.type[id] = TOK_UNKNOWN;
    }
    cJSON_ArrayForEach(e, added) {
        const cJSON *jid = cJSON_GetObjectItemCaseSensitive(e, "id");
        const char *content = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "content"));
        int64_t id = cJSON_IsNumber(jid) ? (int64_t)jid->valuedouble : -1;
        if (!content || id < 0 || id >= v.n) {
            tn_fail("%s: added token %s has id %lld, outside the model's vocabulary (config.json vocab_size %lld)", path,
                    content ? content : "(no content)", (long long)id, (long long)v.n);
            goto done;
        }
        int special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special"));
        int type = special || looks_special(content) ? TOK_CONTROL : TOK_USER_DEFINED;
        if (type == TOK_USER_DEFINED && spm) {
            /* user-defined spaces are pre-normalised: "▁" -> " " */
            size_t n = strlen(content);
            char *t = malloc(n + 1);
            if (!t) goto done;
            size_t k = 0;
            for (size_t i = 0; i < n;) {
                if (!strncmp(content + i, "\xe2\x96\x81", 3)) t[k++] = ' ', i += 3;
                else t[k++] = content[i++];
            }
            int r = vocab_put(&v, id, t, k, type);
            free(t);
            if (r) goto done;
        } else if (vocab_put(&v, id, content, strlen(content), type)) {
            goto done;
        }
    }
    /* Merges: GGUF's "a b" strings (gpt2), or scores (SentencePiece). */
    int64_t n_merges = cJSON_GetArraySize(merges);
    char **merge_text = NULL;
    if (n_merges > 0) {
        merge_text = calloc((size_t)n_merges, sizeof *merge_text);
        if (!merge_text) goto done;
    }
    int64_t k = 0;
    cJSON_ArrayForEach(e, merges) {
        char buf[2048];
        if (cJSON_IsString(e)) {
            snprintf(buf, sizeof buf, "%s", e->valuestring);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            /* [a, b]: spaces inside a part become U+0120, as gguf-py writes them */
            size_t o = 0;
            for (int part = 0; part < 2; part++) {
                const char *s = cJSON_GetArrayItem(e, part)->valuestring;
                for (; *s && o + 3 < sizeof buf; s++) {
                    if (*s == ' ') buf[o++] = (char)0xc4, buf[o++] = (char)0xa0;
                    else buf[o++] = *s;
                }
                if (part == 0 && o + 1 < sizeof buf) buf[o++] = ' ';
            }
            buf[o] = 0;
        } else {
            tn_fail("%s: model.merges[%lld]: expected \"a b\" or [\"a\", \"b\"]", path, (long long)k);
            for (int64_t i = 0; i < k; i++) free(merge_text[i]);
            free(merge_text);
            goto done;
        }
        merge_text[k++] = tn_strdup(buf);
    }
    if (spm) {
        /* score = -rank of the first merge making the token */
        for (int64_t id = 0; id < v.n; id++) v.score[id] = v.type[id] == TOK_NORMAL ? -(float)(n_merges + id) : 0.0f;
        if (index_build(&ix, &v) == 0) {
            for (int64_t r = n_merges - 1; r >= 0; r--) {
                char *sp = strchr(merge_text[r], ' ');
                if (!sp) continue;
                char joined[2048];
                size_t a = (size_t)(sp - merge_text[r]);
                snprintf(joined, sizeof joined, "%.*s%s", (int)a, merge_text[r], sp + 1);
                int64_t id = index_find(&ix, joined, strlen(joined));
                if (id >= 0 && v.type[id] == TOK_NORMAL) v.score[id] = -(float)r;
            }
        }
    }
    /* Padding, then the arrays. */
    for (int64_t id = 0; id < v.n; id++) {
        if (v.set[id]) continue;
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%lld]", (long long)id);
        if (vocab_put(&v, id, pad, strlen(pad), TOK_UNUSED)) goto merges_done;
        v.score[id] = spm ? -1000.0f : 0.0f;
    }
    texts = malloc((size_t)v.n * sizeof *texts);
    if (!texts) goto merges_done;
    for (int64_t id = 0; id < v.n; id++) texts[id] = v.text[id];
    if (tn_gguf_set_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2") ||
        tn_gguf_set_str(w, "tokenizer.ggml.pre", spm ? "default" : choose_pre(tok, spec, path)) ||
        tn_gguf_set_arr_str(w, "tokenizer.ggml.tokens", texts, v.len, (uint64_t)v.n) ||
        (spm && tn_gguf_set_arr_f32(w, "tokenizer.ggml.scores", v.score, (uint64_t)v.n)) ||
        tn_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", v.type, (uint64_t)v.n) ||
        (!spm && n_merges > 0 && tn_gguf_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merge_text, NULL, (uint64_t)n_merges)))
        goto merges_done;
    /* Special tokens: tokenizer_config.json's, else config.json's ids. */
    static const struct {
        const char *typ, *key;
    } specials[] = {
        {"bos", "tokenizer.ggml.bos_token_id"},       {"eos", "tokenizer.ggml.eos_token_id"},
        {"unk", "tokenizer.ggml.unknown_token_id"},   {"sep", "tokenizer.ggml.seperator_token_id"},
        {"pad", "tokenizer.ggml.padding_token_id"},   {"mask", "tokenizer.ggml.mask_token_id"},
    };
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(tok, "post_processor");
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) {
        char key[32];
        snprintf(key, sizeof key, "%s_token", specials[i].typ);
        const char *content = config_token(cfg, key);
        int64_t id = content ? added_id(added, content) : -1;
        if (id < 0 && config) {
            snprintf(key, sizeof key, "%s_token_id", specials[i].typ);
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(config, key);
            if (cJSON_IsNumber(c) && c->valuedouble >= 0) id = (int64_t)c->valuedouble;
        }
        if (id >= 0 && id < v.n && tn_gguf_set_u32(w, specials[i].key, (uint32_t)id)) goto merges_done;
    }
    int add_bos = template_has(pp, config_token(cfg, "bos_token"), 0);
    int add_eos = template_has(pp, config_token(cfg, "eos_token"), 1);
    tn_json_opt_bool(cfg, "add_bos_token", cfg_path, &add_bos);
    tn_json_opt_bool(cfg, "add_eos_token", cfg_path, &add_eos);
    if (tn_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", add_bos) || tn_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", add_eos))
        goto merges_done;
    if (spm && tn_gguf_set_bool(w, "tokenizer.ggml.add_space_prefix",
                                has_space_prefix(cJSON_GetObjectItemCaseSensitive(tok, "normalizer")) ||
                                    has_space_prefix(cJSON_GetObjectItemCaseSensitive(tok, "pre_tokenizer"))))
        goto merges_done;
    if (add_chat_template(w, dir, cfg)) goto merges_done;
    rc = 0;
merges_done:
    for (int64_t i = 0; i < n_merges; i++) free(merge_text ? merge_text[i] : NULL);
    free(merge_text);
done:
    free(texts);
    free(ix.slot);
    vocab_free(&v);
    cJSON_Delete(tok);
    cJSON_Delete(cfg);
    cJSON_Delete(config);
    return rc;
}
