/* tokenizer.c - loading tokenizer.json (+ tokenizer_config.json) and the
 * encode / decode pipelines; see tokenizer.h for the steps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "text/tokenizer_internal.h"
#include "util/error.h"
#include "util/platform.h"

#define MAX_TOKENIZER_BYTES ((size_t)1 << 30)
#define MAX_CONFIG_BYTES ((size_t)64 << 20)

/* ---- ids ---- */

int tn_ids_push(tn_ids *v, int32_t id) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        int32_t *p = realloc(v->ids, cap * sizeof *p);
        if (!p) return tn_fail("out of memory for %zu token ids", cap);
        v->ids = p;
        v->cap = cap;
    }
    v->ids[v->n++] = id;
    return 0;
}

void tn_ids_free(tn_ids *v) {
    free(v->ids);
    v->ids = NULL;
    v->n = v->cap = 0;
}

/* ---- loading ---- */

/* tokenizer.json's top level, read member by member: the model's vocab and
 * merges stay as spans for the pull reader, every other member becomes a
 * small cJSON tree. */
typedef struct {
    cJSON *top;   /* members other than "model" */
    cJSON *model; /* model members other than vocab / merges */
    tk_json vocab, merges;
    int has_vocab, has_merges;
} doc;

static int add_member(cJSON *obj, const char *key, const char *a, const char *b, const char *where) {
    cJSON *v = tn_json_parse(a, (size_t)(b - a), where);
    if (!v) return -1;
    /* Later duplicates win, as in serde. */
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    cJSON_AddItemToObject(obj, key, v);
    return 0;
}

static int read_model(tk_json *j, doc *d) {
    tk_buf key = {0};
    int first = 1, more, rc = -1;
    if (tk_json_peek(j) != '{') {
        tk_json_fail(j, "the model, an object");
        goto done;
    }
    j->p++;
    while ((more = tk_json_more(j, '}', &first)) == 1) {
        const char *a, *b;
        if (tk_json_string(j, &key) || tk_json_expect(j, ':')) goto done;
        tk_json span = *j;
        if (tk_json_skip(j, &a, &b)) goto done;
        if (key.n == 5 && !memcmp(key.p, "vocab", 5)) {
            d->vocab = span;
            d->has_vocab = 1;
        } else if (key.n == 6 && !memcmp(key.p, "merges", 6)) {
            d->merges = span;
            d->has_merges = 1;
        } else if (add_member(d->model, key.p ? key.p : "", a, b, j->where)) {
            goto done;
        }
    }
    rc = more;
done:
    tk_buf_free(&key);
    return rc;
}

static int read_doc(tk_json *j, doc *d) {
    tk_buf key = {0};
    int first = 1, more, rc = -1, has_model = 0;
    d->top = cJSON_CreateObject();
    d->model = cJSON_CreateObject();
    if (!d->top || !d->model) {
        tn_fail("out of memory reading %s", j->where);
        goto done;
    }
    if (tk_json_peek(j) != '{') {
        tk_json_fail(j, "a tokenizer.json object");
        goto done;
    }
    j->p++;
    while ((more = tk_json_more(j, '}', &first)) == 1) {
        const char *a, *b;
        if (tk_json_string(j, &key) || tk_json_expect(j, ':')) goto done;
        if (key.n == 5 && !memcmp(key.p, "model", 5)) {
            if (read_model(j, d)) goto done;
            has_model = 1;
        } else if (tk_json_skip(j, &a, &b) || add_member(d->top, key.p ? key.p : "", a, b, j->where)) {
            goto done;
        }
    }
    if (more < 0) goto done;
    if (tk_json_peek(j)) {
        tk_json_fail(j, "the end of the file after the top-level object");
        goto done;
    }
    if (!has_model) {
        tn_fail("%s: missing field 'model' (expected the tokenizer's model; is this a "
                "tokenizer.json?)",
                j->where);
        goto done;
    }
    rc = 0;
done:
    tk_buf_free(&key);
    return rc;
}

static int flag(const cJSON *obj, const char *key, int dflt, const char *where, size_t i, int *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsBool(it))
        return tn_fail("%s: added_tokens[%zu].%s: expected true or false", where, i, key);
    *out = cJSON_IsTrue(it);
    return 0;
}

static int load_added(tn_tokenizer *t, const cJSON *list) {
    if (!list || cJSON_IsNull(list)) return tk_strmap_init(&t->added_map, 16);
    if (!cJSON_IsArray(list))
        return tn_fail("%s: field 'added_tokens': expected a list, got %s", t->where,
                       tn_json_type_name(list));
    size_t n = (size_t)cJSON_GetArraySize(list);
    t->added = tn_calloc(n, sizeof *t->added, "added tokens");
    if (!t->added || tk_strmap_init(&t->added_map, n + 16)) return -1;
    const cJSON *it;
    size_t i = 0;
    cJSON_ArrayForEach(it, list) {
        tk_added *a = &t->added[i];
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
        int64_t id;
        char what[64];
        snprintf(what, sizeof what, "added_tokens[%zu].id", i);
        if (!cJSON_IsString(c))
            return tn_fail("%s: added_tokens[%zu]: field 'content': expected a string", t->where, i);
        if (tn_json_as_int(cJSON_GetObjectItemCaseSensitive(it, "id"), what, t->where, 0,
                           INT32_MAX - 1, &id))
            return -1;
        a->content = tn_strdup(c->valuestring);
        if (!a->content) return -1;
        t->n_added = i + 1; /* owned from here on */
        a->n = strlen(a->content);
        a->id = (int32_t)id;
        if (flag(it, "special", 0, t->where, i, &a->special) ||
            flag(it, "lstrip", 0, t->where, i, &a->lstrip) ||
            flag(it, "rstrip", 0, t->where, i, &a->rstrip) ||
            flag(it, "single_word", 0, t->where, i, &a->single_word) ||
            flag(it, "normalized", !a->special, t->where, i, &a->normalized))
            return -1;
        i++;
        if (a->n && tk_strmap_put(&t->added_map, a->content, a->n, a->id) < 0) return -1;
    }
    return 0;
}

static int32_t config_token(tn_tokenizer *t, const cJSON *cfg, const char *key) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(it)) it = cJSON_GetObjectItemCaseSensitive(it, "content");
    if (!cJSON_IsString(it)) return -1;
    return tn_tokenizer_token_id(t, it->valuestring, strlen(it->valuestring));
}

static int load_config(tn_tokenizer *t, const char *path) {
    for (int i = 0; i < 4; i++) t->special_ids[i] = -1;
    if (!path) return 0;
    cJSON *cfg = tn_json_parse_file(path, MAX_CONFIG_BYTES);
    if (!cfg) return -1;
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return tn_fail("%s: expected a JSON object", path);
    }
    t->special_ids[TN_TOK_BOS] = config_token(t, cfg, "bos_token");
    t->special_ids[TN_TOK_EOS] = config_token(t, cfg, "eos_token");
    t->special_ids[TN_TOK_PAD] = config_token(t, cfg, "pad_token");
    t->special_ids[TN_TOK_UNK] = config_token(t, cfg, "unk_token");
    cJSON_Delete(cfg);
    return 0;
}

static int load_model(tn_tokenizer *t, doc *d) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(d->model, "type");
    if (type && !cJSON_IsString(type))
        return tn_fail("%s: model.type: expected a string", t->where);
    /* tokenizers accepts a model without "type" and guesses it from its fields. */
    const char *ty = type ? type->valuestring : d->has_merges ? "BPE" : "(none)";
    if (strcmp(ty, "BPE"))
        return tn_fail("%s: model type '%s' is not supported (supported: BPE)", t->where, ty);
    return tk_bpe_load(&t->bpe, t->where, d->has_vocab ? &d->vocab : NULL,
                       d->has_merges ? &d->merges : NULL, d->model);
}

tn_tokenizer *tn_tokenizer_load_files(const char *path, const char *config) {
    tn_tokenizer *t = tn_calloc(1, sizeof *t, "a tokenizer");
    if (!t) return NULL;
    doc d = {0};
    size_t n = 0;
    char *text = NULL;
    t->where = tn_strdup(path);
    if (!t->where) goto fail;
    text = tn_read_file(path, MAX_TOKENIZER_BYTES, &n);
    if (!text) goto fail;
    if (!tk_utf8_valid(text, n)) {
        tn_fail("%s: not valid UTF-8 (expected JSON text)", path);
        goto fail;
    }
    tk_json j = {text, text, text + n, t->where};
    if (read_doc(&j, &d) || load_model(t, &d) ||
        load_added(t, cJSON_GetObjectItemCaseSensitive(d.top, "added_tokens")) ||
        tk_norm_load(cJSON_GetObjectItemCaseSensitive(d.top, "normalizer"), t->where, &t->norm) ||
        tk_pretok_load(cJSON_GetObjectItemCaseSensitive(d.top, "pre_tokenizer"), t->where,
                       &t->pretok) ||
        tk_post_load(cJSON_GetObjectItemCaseSensitive(d.top, "post_processor"), t->where,
                     &t->post) ||
        tk_decoder_load(cJSON_GetObjectItemCaseSensitive(d.top, "decoder"), t->where, &t->decoder))
        goto fail;
    if (tk_trie_build(&t->trie_raw, t->added, t->n_added, 0, NULL) ||
        tk_trie_build(&t->trie_norm, t->added, t->n_added, 1, t->norm))
        goto fail;
    /* One id space over the model and the added tokens. */
    t->n_ids = t->bpe.n_ids;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].id >= t->n_ids) t->n_ids = t->added[i].id + 1;
    t->by_id = tn_calloc((size_t)t->n_ids + 1, sizeof *t->by_id, "the token table");
    if (!t->by_id) goto fail;
    for (size_t i = 0; i < t->n_added; i++)
        if (!t->by_id[t->added[i].id]) t->by_id[t->added[i].id] = &t->added[i];
    for (size_t k = 0; k < t->post.n_prefix + t->post.n_suffix; k++) {
        int32_t id = k < t->post.n_prefix ? t->post.prefix[k] : t->post.suffix[k - t->post.n_prefix];
        if (id < 0 || id >= t->n_ids) {
            tn_fail("%s: post_processor: special token id %d is outside the vocabulary (0..%d)",
                    path, id, t->n_ids - 1);
            goto fail;
        }
    }
    if (load_config(t, config)) goto fail;
    cJSON_Delete(d.top);
    cJSON_Delete(d.model);
    free(text);
    return t;
fail:
    cJSON_Delete(d.top);
    cJSON_Delete(d.model);
    free(text);
    tn_tokenizer_free(t);
    return NULL;
}

tn_tokenizer *tn_tokenizer_load(const char *model) {
    if (!tn_is_directory(model)) {
        size_t n = strlen(model);
        if (n >= 5 && !strcmp(model + n - 5, ".gguf")) {
            tn_fail("%s: reading a tokenizer from a GGUF file is not supported yet (expected a "
                    "model folder with tokenizer.json)",
                    model);
            return NULL;
        }
        if (!tn_file_exists(model)) {
            tn_fail("%s: no such file or folder (expected a model folder with tokenizer.json)",
                    model);
            return NULL;
        }
        return tn_tokenizer_load_files(model, NULL);
    }
    size_t n = strlen(model) + 32;
    char *tj = malloc(n), *tc = malloc(n);
    tn_tokenizer *t = NULL;
    if (!tj || !tc) {
        tn_fail("out of memory");
        goto done;
    }
    snprintf(tj, n, "%s/tokenizer.json", model);
    snprintf(tc, n, "%s/tokenizer_config.json", model);
    if (!tn_file_exists(tj)) {
        tn_fail("%s: missing tokenizer.json (expected a Hugging Face tokenizer in the model "
                "folder)",
                model);
        goto done;
    }
    t = tn_tokenizer_load_files(tj, tn_file_exists(tc) ? tc : NULL);
done:
    free(tj);
    free(tc);
    return t;
}

void tn_tokenizer_free(tn_tokenizer *t) {
    if (!t) return;
    tk_bpe_free(&t->bpe);
    tk_norm_free(t->norm);
    tk_pretok_free(t->pretok);
    tk_post_free(&t->post);
    tk_decoder_free(t->decoder);
    for (size_t i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    tk_strmap_free(&t->added_map);
    tk_trie_free(&t->trie_raw);
    tk_trie_free(&t->trie_norm);
    free(t->by_id);
    tk_buf_free(&t->norm_buf);
    free(t->where);
    free(t);
}

/* ---- lookups ---- */

const char *tn_tokenizer_token(const tn_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_ids) return NULL;
    if (t->by_id[id]) {
        *len = t->by_id[id]->n;
        return t->by_id[id]->content;
    }
    if (id < t->bpe.n_ids && t->bpe.id_str[id]) {
        *len = t->bpe.id_len[id];
        return t->bpe.id_str[id];
    }
    return NULL;
}

int32_t tn_tokenizer_token_id(const tn_tokenizer *t, const char *tok, size_t len) {
    int32_t id = tk_strmap_get(&t->added_map, tok, len);
    return id >= 0 ? id : tk_strmap_get(&t->bpe.vocab, tok, len);
}

int32_t tn_tokenizer_vocab_size(const tn_tokenizer *t) { return t->n_ids; }

int tn_tokenizer_is_special(const tn_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_ids && t->by_id[id] && t->by_id[id]->special;
}

int32_t tn_tokenizer_special_id(const tn_tokenizer *t, tn_special_role role) {
    return (unsigned)role < 4 ? t->special_ids[role] : -1;
}

const int32_t *tn_tokenizer_prefix(const tn_tokenizer *t, size_t *n) {
    *n = t->post.n_prefix;
    return t->post.prefix;
}

const int32_t *tn_tokenizer_suffix(const tn_tokenizer *t, size_t *n) {
    *n = t->post.n_suffix;
    return t->post.suffix;
}

/* ---- encoding ---- */

typedef struct {
    tn_tokenizer *t;
    tn_ids *out;
    int first; /* the segment being pre-tokenized starts the text */
} enc;

static int on_piece(void *c, const char *s, size_t n) {
    enc *e = c;
    return tk_bpe_encode(&e->t->bpe, s, n, e->out);
}

static int on_normalized(void *c, const char *s, size_t n, size_t off, int32_t id) {
    enc *e = c;
    if (id >= 0) return tn_ids_push(e->out, id);
    return tk_pretok_run(e->t->pretok, s, n, e->first && off == 0, on_piece, e);
}

static int on_raw(void *c, const char *s, size_t n, size_t off, int32_t id) {
    enc *e = c;
    tn_tokenizer *t = e->t;
    if (id >= 0) return tn_ids_push(e->out, id);
    if (t->norm) {
        if (tk_norm_apply(t->norm, s, n, &t->norm_buf)) return -1;
        s = t->norm_buf.p;
        n = t->norm_buf.n;
    }
    e->first = off == 0;
    if (!n) return 0;
    if (!t->trie_norm.empty) return tk_trie_split(&t->trie_norm, s, n, on_normalized, e);
    return tk_pretok_run(t->pretok, s, n, e->first, on_piece, e);
}

int tn_tokenizer_encode(tn_tokenizer *t, const char *text, size_t len, int add_special,
                        tn_ids *out) {
    char *fixed = NULL;
    if (!tk_utf8_valid(text, len)) {
        fixed = tn_utf8_sanitize(text, len, &len, NULL);
        if (!fixed) return -1;
        text = fixed;
    }
    enc e = {t, out, 1};
    int rc = 0;
    for (size_t i = 0; add_special && i < t->post.n_prefix && !rc; i++)
        rc = tn_ids_push(out, t->post.prefix[i]);
    if (!rc && len) {
        if (!t->trie_raw.empty) rc = tk_trie_split(&t->trie_raw, text, len, on_raw, &e);
        else rc = on_raw(&e, text, len, 0, -1);
    }
    for (size_t i = 0; add_special && i < t->post.n_suffix && !rc; i++)
        rc = tn_ids_push(out, t->post.suffix[i]);
    free(fixed);
    return rc;
}

/* ---- decoding ---- */

int tn_tokenizer_decode(const tn_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                        char **text_out, size_t *len_out) {
    tk_strlist toks = {0};
    tk_buf out = {0};
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *s = tn_tokenizer_token(t, ids[i], &len);
        if (!s) {
            tn_fail("token id %d at position %zu is not in the vocabulary (expected 0..%d)", ids[i],
                    i, t->n_ids - 1);
            goto done;
        }
        if (skip_special && tn_tokenizer_is_special(t, ids[i])) continue;
        if (tk_strlist_add(&toks, s, len)) goto done;
    }
    if (t->decoder && tk_decoder_run(t->decoder, &toks)) goto done;
    /* Without a decoder tokenizers joins with spaces. */
    if (tk_buf_reserve(&out, 0)) goto done;
    for (size_t i = 0; i < toks.n; i++) {
        if (!t->decoder && i && tk_buf_addc(&out, ' ')) goto done;
        if (tk_buf_add(&out, toks.text.p + toks.off[i], toks.len[i])) goto done;
    }
    *text_out = out.p;
    *len_out = out.n;
    out.p = NULL;
    rc = 0;
done:
    tk_strlist_free(&toks);
    tk_buf_free(&out);
    return rc;
}
