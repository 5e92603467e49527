#define _POSIX_C_SOURCE 200809L
#include "data/chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "text/chat_template.h"
#include "util/error.h"
#include "util/platform.h"

struct tn_chat {
    tn_chat_template *ct; /* NULL: the model has no chat template */
    char *origin;
    tn_chat_var *vars;
    char **var_mem; /* names and values, owned */
    size_t n_vars;
    struct tm now;
};

enum { MAX_CONFIG = 64 << 20 };

/* The folder of MODEL: itself when it is one, else its dirname. */
static char *model_dir(const char *model) {
    if (tn_is_directory(model)) return tn_strdup(model);
    char *d = tn_strdup(model);
    if (!d) return NULL;
    char *slash = strrchr(d, '/');
    if (slash) *slash = 0;
    else strcpy(d, ".");
    return d;
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = tn_malloc(n, "a path");
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Where the model's template is (where text/chat_template.c looks for it):
 * its path, or NULL - with *err 0 when the model has none, 1 on an error. */
static char *find_template(const char *dir, int *err) {
    *err = 1;
    char *jinja = join(dir, "chat_template.jinja");
    if (!jinja) return NULL;
    if (tn_file_exists(jinja)) {
        *err = 0;
        return jinja;
    }
    free(jinja);
    char *cfg_path = join(dir, "tokenizer_config.json");
    if (!cfg_path) return NULL;
    if (!tn_file_exists(cfg_path)) {
        free(cfg_path);
        *err = 0;
        return NULL;
    }
    cJSON *cfg = tn_json_parse_file(cfg_path, MAX_CONFIG);
    if (!cfg) {
        free(cfg_path);
        return NULL;
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    int has = t && !cJSON_IsNull(t);
    cJSON_Delete(cfg);
    *err = 0;
    if (!has) {
        free(cfg_path);
        return NULL;
    }
    return cfg_path;
}

tn_chat *tn_chat_load(const char *model) {
    tn_chat *c = tn_calloc(1, sizeof *c, "a chat template");
    char *dir = c ? model_dir(model) : NULL;
    if (!dir) goto fail;
    int err;
    c->origin = find_template(dir, &err);
    if (err) goto fail;
    if (c->origin && !(c->ct = tn_chat_template_load(dir))) goto fail;
    /* One clock for the whole dataset: every sample sees the same date. */
    time_t now = time(NULL);
    localtime_r(&now, &c->now);
    free(dir);
    return c;
fail:
    free(dir);
    tn_chat_free(c);
    return NULL;
}

void tn_chat_free(tn_chat *c) {
    if (!c) return;
    tn_chat_template_free(c->ct);
    for (size_t i = 0; i < 2 * c->n_vars; i++) free(c->var_mem[i]);
    free(c->var_mem);
    free(c->vars);
    free(c->origin);
    free(c);
}

int tn_chat_has_template(const tn_chat *c) { return c && c->ct; }
const char *tn_chat_origin(const tn_chat *c) { return c ? c->origin : NULL; }
void tn_chat_set_time(tn_chat *c, const struct tm *tm) { c->now = *tm; }
const struct tm *tn_chat_time(const tn_chat *c) { return &c->now; }

int tn_chat_set_var(tn_chat *c, const char *name, const char *json, size_t n) {
    char *k = tn_strdup(name), *v = tn_malloc(n + 1, "a variable");
    tn_chat_var *nv = realloc(c->vars, (c->n_vars + 1) * sizeof *nv);
    if (nv) c->vars = nv;
    char **nm = realloc(c->var_mem, 2 * (c->n_vars + 1) * sizeof *nm);
    if (nm) c->var_mem = nm;
    if (!k || !v || !nv || !nm) {
        free(k);
        free(v);
        return tn_fail("out of memory setting a template variable");
    }
    memcpy(v, json, n);
    v[n] = 0;
    /* validate now, so a bad --var fails before any sample */
    cJSON *j = cJSON_ParseWithLength(v, n);
    if (!j) {
        tn_fail("variable '%s': expected a JSON value, got '%.60s'", k, v);
        free(k);
        free(v);
        return -1;
    }
    cJSON_Delete(j);
    c->var_mem[2 * c->n_vars] = k;
    c->var_mem[2 * c->n_vars + 1] = v;
    c->vars[c->n_vars++] = (tn_chat_var){k, v};
    return 0;
}

int tn_chat_set_var_arg(tn_chat *c, const char *arg) {
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) return tn_fail("--var '%s': expected KEY=JSON", arg);
    size_t kn = (size_t)(eq - arg);
    char *key = tn_malloc(kn + 1, "a variable name");
    if (!key) return -1;
    memcpy(key, arg, kn);
    key[kn] = 0;
    int rc = tn_chat_set_var(c, key, eq + 1, strlen(eq + 1));
    if (rc) tn_fail_prefix("--var");
    free(key);
    return rc;
}

char *tn_chat_render(tn_chat *c, const char *messages, size_t n, const char *tools, size_t tools_n,
                     int add_generation_prompt, size_t *len) {
    if (!c || !c->ct) {
        tn_fail("the model has no chat template");
        return NULL;
    }
    char *req = NULL;
    const char *json = messages;
    size_t jn = n;
    if (tools) {
        static const char a[] = "{\"messages\": ", b[] = ", \"tools\": ";
        jn = sizeof a - 1 + n + sizeof b - 1 + tools_n + 1;
        if (!(req = tn_malloc(jn + 1, "a chat request"))) return NULL;
        size_t o = 0;
        memcpy(req + o, a, sizeof a - 1), o += sizeof a - 1;
        memcpy(req + o, messages, n), o += n;
        memcpy(req + o, b, sizeof b - 1), o += sizeof b - 1;
        memcpy(req + o, tools, tools_n), o += tools_n;
        req[o++] = '}';
        req[o] = 0;
        json = req;
    }
    tn_chat_request rq = {json, jn, "messages", add_generation_prompt, &c->now, c->vars, c->n_vars};
    char *out = tn_chat_template_apply(c->ct, &rq, len);
    free(req);
    return out;
}
