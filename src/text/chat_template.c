#define _POSIX_C_SOURCE 200809L
/* chat_template.c - loads a model folder's chat templates and special
 * tokens, and renders a conversation the way transformers'
 * apply_chat_template does (see chat_template.h). */
#include "text/chat_template.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "text/template_internal.h"
#include "util/error.h"
#include "util/platform.h"

#define CT_MAX_FILE ((size_t)256 << 20)

typedef struct {
    char *name;
    tn_template *t; /* NULL when it failed to compile */
    char *error;    /* why, reported when it is used */
} named_template;

struct tn_chat_template {
    named_template *v;
    size_t n;
    int single; /* one unnamed template (a string, or chat_template.jinja alone) */
    /* special tokens, as strings; NULL when unset */
    char *tok[7];
    char **extra; /* additional_special_tokens */
    size_t n_extra;
};

static const char *const token_keys[7] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                          "pad_token", "cls_token", "mask_token"};

static int add_template(tn_chat_template *ct, const char *name, const char *src, size_t n, const char *where) {
    named_template *v = realloc(ct->v, (ct->n + 1) * sizeof *v);
    if (!v) return tn_fail("out of memory loading chat templates");
    ct->v = v;
    named_template *nt = &ct->v[ct->n];
    memset(nt, 0, sizeof *nt);
    nt->name = tn_strdup(name);
    if (!nt->name) return -1;
    ct->n++;
    nt->t = tn_template_compile(src, n, where);
    if (!nt->t) {
        nt->error = tn_strdup(tn_error());
        if (!nt->error) return -1;
    }
    return 0;
}

/* A token written as a string or as an AddedToken object {"content": ...}. */
static int token_text(const cJSON *item, const char *key, const char *where, char **out) {
    *out = NULL;
    if (!item || cJSON_IsNull(item)) return 0;
    if (cJSON_IsString(item)) {
        if (!item->valuestring[0]) return 0; /* transformers keeps only truthy tokens */
        *out = tn_strdup(item->valuestring);
        return *out ? 0 : -1;
    }
    if (cJSON_IsObject(item)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(item, "content");
        if (cJSON_IsString(c)) {
            if (!c->valuestring[0]) return 0;
            *out = tn_strdup(c->valuestring);
            return *out ? 0 : -1;
        }
    }
    return tn_fail("%s: field '%s': expected a string or an object with \"content\", got %s", where, key,
                   tn_json_type_name(item));
}

static int read_tokens(tn_chat_template *ct, const cJSON *cfg, const char *where) {
    for (int i = 0; i < 7; i++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(cfg, token_keys[i]);
        if (!item) continue;
        char *s;
        if (token_text(item, token_keys[i], where, &s)) return -1;
        free(ct->tok[i]);
        ct->tok[i] = s;
    }
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(cfg, "additional_special_tokens");
    if (extra && !cJSON_IsNull(extra)) {
        if (!cJSON_IsArray(extra))
            return tn_fail("%s: field 'additional_special_tokens': expected a list, got %s", where,
                           tn_json_type_name(extra));
        for (size_t i = 0; i < ct->n_extra; i++) free(ct->extra[i]);
        free(ct->extra);
        ct->extra = NULL;
        ct->n_extra = 0;
        int n = cJSON_GetArraySize(extra);
        if (n > 0) {
            ct->extra = calloc((size_t)n, sizeof *ct->extra);
            if (!ct->extra) return tn_fail("out of memory");
            const cJSON *it;
            cJSON_ArrayForEach(it, extra) {
                char *s;
                if (token_text(it, "additional_special_tokens", where, &s)) return -1;
                if (s) ct->extra[ct->n_extra++] = s;
            }
        }
    }
    return 0;
}

static int load_jinja_files(tn_chat_template *ct, const char *dir, int *found) {
    char path[8192];
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    *found = 0;
    if (!tn_file_exists(path)) return 0;
    size_t n;
    char *src = tn_read_file(path, CT_MAX_FILE, &n);
    if (!src) return -1;
    int rc = add_template(ct, "default", src, n, path);
    free(src);
    if (rc) return -1;
    *found = 1;
    ct->single = 1;
    snprintf(path, sizeof path, "%s/additional_chat_templates", dir);
    if (!tn_is_directory(path)) return 0;
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l <= 6 || strcmp(e->d_name + l - 6, ".jinja")) continue;
        char file[8192 + 256], name[256];
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        snprintf(name, sizeof name, "%.*s", (int)(l - 6), e->d_name);
        src = tn_read_file(file, CT_MAX_FILE, &n);
        if (!src) {
            closedir(d);
            return -1;
        }
        rc = add_template(ct, name, src, n, file);
        free(src);
        if (rc) {
            closedir(d);
            return -1;
        }
        ct->single = 0;
    }
    closedir(d);
    return 0;
}

tn_chat_template *tn_chat_template_load(const char *dir_arg) {
    tn_chat_template *ct = calloc(1, sizeof *ct);
    if (!ct) {
        tn_fail("out of memory loading a chat template");
        return NULL;
    }
    char model_dir[4096];
    snprintf(model_dir, sizeof model_dir, "%s", dir_arg);
    for (size_t l = strlen(model_dir); l > 1 && model_dir[l - 1] == '/'; l--) model_dir[l - 1] = 0;
    char path[8192], where[8300];
    int found_jinja;
    if (load_jinja_files(ct, model_dir, &found_jinja)) goto fail;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", model_dir);
    if (tn_file_exists(path)) {
        cJSON *cfg = tn_json_parse_file(path, CT_MAX_FILE);
        if (!cfg) goto fail;
        if (!cJSON_IsObject(cfg)) {
            tn_fail("%s: expected a JSON object, got %s", path, tn_json_type_name(cfg));
            cJSON_Delete(cfg);
            goto fail;
        }
        int rc = read_tokens(ct, cfg, path);
        const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
        if (!rc && !found_jinja && tpl && !cJSON_IsNull(tpl)) {
            if (cJSON_IsString(tpl)) {
                snprintf(where, sizeof where, "%s[chat_template]", path);
                rc = add_template(ct, "default", tpl->valuestring, strlen(tpl->valuestring), where);
                ct->single = 1;
            } else if (cJSON_IsArray(tpl)) {
                const cJSON *it;
                int k = 0;
                cJSON_ArrayForEach(it, tpl) {
                    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
                    const cJSON *tx = cJSON_GetObjectItemCaseSensitive(it, "template");
                    if (!cJSON_IsString(nm) || !cJSON_IsString(tx)) {
                        rc = tn_fail("%s: chat_template[%d]: expected {\"name\": string, \"template\": string}", path, k);
                        break;
                    }
                    snprintf(where, sizeof where, "%s[chat_template:%s]", path, nm->valuestring);
                    if ((rc = add_template(ct, nm->valuestring, tx->valuestring, strlen(tx->valuestring), where)))
                        break;
                    k++;
                }
            } else {
                rc = tn_fail("%s: field 'chat_template': expected a string or a list of {name, template}, got %s", path,
                             tn_json_type_name(tpl));
            }
        }
        cJSON_Delete(cfg);
        if (rc) goto fail;
    }
    snprintf(path, sizeof path, "%s/special_tokens_map.json", model_dir);
    if (tn_file_exists(path)) {
        cJSON *m = tn_json_parse_file(path, CT_MAX_FILE);
        if (!m) goto fail;
        int rc = cJSON_IsObject(m) ? read_tokens(ct, m, path) : tn_fail("%s: expected a JSON object", path);
        cJSON_Delete(m);
        if (rc) goto fail;
    }
    if (ct->n == 0) {
        if (!tn_is_directory(model_dir)) tn_fail("%s: not a folder (expected a model folder)", model_dir);
        else
            tn_fail("%s: no chat template (expected chat_template.jinja, or 'chat_template' in tokenizer_config.json)",
                    model_dir);
        goto fail;
    }
    return ct;
fail:
    tn_chat_template_free(ct);
    return NULL;
}

void tn_chat_template_free(tn_chat_template *ct) {
    if (!ct) return;
    for (size_t i = 0; i < ct->n; i++) {
        free(ct->v[i].name);
        tn_template_free(ct->v[i].t);
        free(ct->v[i].error);
    }
    free(ct->v);
    for (int i = 0; i < 7; i++) free(ct->tok[i]);
    for (size_t i = 0; i < ct->n_extra; i++) free(ct->extra[i]);
    free(ct->extra);
    free(ct);
}

static const named_template *find(const tn_chat_template *ct, const char *name) {
    for (size_t i = 0; i < ct->n; i++)
        if (!strcmp(ct->v[i].name, name)) return &ct->v[i];
    return NULL;
}

int tn_chat_template_has(const tn_chat_template *ct, const char *name) { return find(ct, name) != NULL; }

char *tn_chat_template_apply(const tn_chat_template *ct, const tn_chat_request *rq, size_t *len) {
    const char *where = rq->where ? rq->where : "messages";
    tn_template_vars *v = tn_template_vars_new();
    if (!v) return NULL;
    char *out = NULL;
    tv root, messages, tools = tv_none(), documents = tv_none();
    int have_tools = 0;
    if (tt_json_parse(&v->arena, rq->json, rq->json_len, where, &root)) goto done;
    if (root.type == TV_LIST) messages = root;
    else if (root.type == TV_DICT) {
        long i = tt_dict_find_str(root.d, "messages", 8);
        if (i < 0) {
            tn_fail("%s: expected a list of messages or an object with \"messages\", got an object without it", where);
            goto done;
        }
        messages = root.d->v[i];
        if ((i = tt_dict_find_str(root.d, "tools", 5)) >= 0 && root.d->v[i].type != TV_NONE) {
            tools = root.d->v[i];
            have_tools = 1;
        }
        if ((i = tt_dict_find_str(root.d, "documents", 9)) >= 0) documents = root.d->v[i];
    } else {
        tn_fail("%s: expected a list of messages or an object with \"messages\", got %s", where,
                root.type == TV_STR ? "a string" : root.type == TV_NONE ? "null" : "a number or boolean");
        goto done;
    }
    /* which template */
    const named_template *nt = NULL;
    if (ct->single) nt = &ct->v[0];
    else {
        if (have_tools) nt = find(ct, "tool_use");
        if (!nt) nt = find(ct, "default");
        if (!nt) {
            tn_fail("the model has several chat templates and none named \"default\"");
            goto done;
        }
    }
    if (!nt->t) {
        tn_fail("%s", nt->error ? nt->error : "the chat template did not compile");
        goto done;
    }
    /* variables: special tokens, then the call's own, then the caller's */
    for (int i = 0; i < 7; i++)
        if (ct->tok[i] && tn_template_vars_set_string(v, token_keys[i], ct->tok[i])) goto done;
    if (ct->n_extra &&
        tn_template_vars_set_strings(v, "additional_special_tokens", (const char *const *)ct->extra, ct->n_extra))
        goto done;
    for (size_t i = 0; i < rq->n_vars; i++) {
        const char *name = rq->vars[i].name;
        if (!strcmp(name, "messages") || !strcmp(name, "tools") || !strcmp(name, "documents") ||
            !strcmp(name, "add_generation_prompt")) {
            tn_fail("variable '%s' is set by the request itself (expected another name)", name);
            goto done;
        }
        char w[300];
        snprintf(w, sizeof w, "variable '%s'", name);
        if (tn_template_vars_set_json(v, name, rq->vars[i].json, strlen(rq->vars[i].json), w)) goto done;
    }
    if (tt_vars_set_value(v, "messages", messages) || tt_vars_set_value(v, "tools", tools) ||
        tt_vars_set_value(v, "documents", documents) ||
        tn_template_vars_set_bool(v, "add_generation_prompt", rq->add_generation_prompt))
        goto done;
    if (rq->now) tn_template_vars_set_time(v, rq->now);
    out = tn_template_render(nt->t, v, len);
done:
    tn_template_vars_free(v);
    return out;
}
