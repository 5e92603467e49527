/* tokenizer_post.c - post-processors (tokenizers' processors/) for a
 * single sequence: what goes before it and after it when add_special is on.
 *
 *   TemplateProcessing  "single": [{"SpecialToken": {"id": NAME}},
 *                       {"Sequence": {"id": "A"}}, ...], NAME's ids in
 *                       "special_tokens"
 *   BertProcessing      [cls] A [sep];  RobertaProcessing: the same
 *   ByteLevel           nothing (it only trims offsets)
 *   Sequence            each applied to the result of the one before */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_internal.h"
#include "util/error.h"

static int append(int32_t **v, size_t *n, const int32_t *ids, size_t k) {
    if (!k) return 0;
    int32_t *p = realloc(*v, (*n + k) * sizeof *p);
    if (!p) return tn_fail("out of memory for special tokens");
    memcpy(p + *n, ids, k * sizeof *p);
    *v = p;
    *n += k;
    return 0;
}

static int prepend(int32_t **v, size_t *n, const int32_t *ids, size_t k) {
    if (!k) return 0;
    int32_t *p = malloc((*n + k) * sizeof *p);
    if (!p) return tn_fail("out of memory for special tokens");
    memcpy(p, ids, k * sizeof *p);
    if (*n) memcpy(p + k, *v, *n * sizeof *p);
    free(*v);
    *v = p;
    *n += k;
    return 0;
}

static int template_ids(const cJSON *specials, const char *name, const char *where, tk_post *p,
                        int before) {
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(specials, name);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(sp, "ids");
    if (!cJSON_IsArray(ids))
        return tn_fail("%s: post_processor TemplateProcessing: special token '%s' is not in "
                       "special_tokens (expected an entry with \"ids\")",
                       where, name);
    const cJSON *it;
    cJSON_ArrayForEach(it, ids) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= 2147483647.0 ||
            it->valuedouble != (double)(int32_t)it->valuedouble)
            return tn_fail("%s: post_processor TemplateProcessing: special token '%s': expected "
                           "integer ids",
                           where, name);
        int32_t id = (int32_t)it->valuedouble;
        if (before ? append(&p->prefix, &p->n_prefix, &id, 1)
                   : append(&p->suffix, &p->n_suffix, &id, 1))
            return -1;
    }
    return 0;
}

static int load_template(const cJSON *json, const char *where, tk_post *p) {
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(json, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(json, "special_tokens");
    if (!cJSON_IsArray(single))
        return tn_fail("%s: post_processor TemplateProcessing: field 'single': expected a list",
                       where);
    int seen_a = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, single) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        const cJSON *sq = cJSON_GetObjectItemCaseSensitive(it, "Sequence");
        if (st) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(st, "id");
            if (!cJSON_IsString(id))
                return tn_fail("%s: post_processor TemplateProcessing: SpecialToken: expected a "
                               "string id",
                               where);
            if (template_ids(specials, id->valuestring, where, p, !seen_a)) return -1;
        } else if (sq) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(sq, "id");
            if (!cJSON_IsString(id) || strcmp(id->valuestring, "A") || seen_a)
                return tn_fail("%s: post_processor TemplateProcessing: 'single' must hold "
                               "Sequence A once",
                               where);
            seen_a = 1;
        } else {
            return tn_fail("%s: post_processor TemplateProcessing: 'single' items are "
                           "SpecialToken or Sequence",
                           where);
        }
    }
    if (!seen_a)
        return tn_fail("%s: post_processor TemplateProcessing: 'single' has no Sequence A", where);
    return 0;
}

/* "cls": ["<s>", 0] */
static int pair_id(const cJSON *json, const char *key, const char *where, const char *type,
                   int32_t *id) {
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(json, key);
    const cJSON *v = cJSON_GetArrayItem(pr, 1);
    if (!cJSON_IsArray(pr) || !cJSON_IsNumber(v) || v->valuedouble < 0)
        return tn_fail("%s: post_processor %s: field '%s': expected [token, id]", where, type, key);
    *id = (int32_t)v->valuedouble;
    return 0;
}

int tk_post_load(const cJSON *json, const char *where, tk_post *p) {
    if (!json || cJSON_IsNull(json)) return 0;
    const char *type = tk_type(json, where, "post_processor");
    if (!type) return -1;
    if (!strcmp(type, "ByteLevel")) return 0;
    if (!strcmp(type, "TemplateProcessing")) return load_template(json, where, p);
    if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        int32_t cls, sep;
        if (pair_id(json, "cls", where, type, &cls) || pair_id(json, "sep", where, type, &sep))
            return -1;
        return append(&p->prefix, &p->n_prefix, &cls, 1) ||
                       append(&p->suffix, &p->n_suffix, &sep, 1)
                   ? -1
                   : 0;
    }
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(json, "processors");
        if (!cJSON_IsArray(list))
            return tn_fail("%s: post_processor Sequence: field 'processors': expected a list",
                           where);
        const cJSON *it;
        cJSON_ArrayForEach(it, list) {
            tk_post q = {0};
            if (tk_post_load(it, where, &q) ||
                prepend(&p->prefix, &p->n_prefix, q.prefix, q.n_prefix) ||
                append(&p->suffix, &p->n_suffix, q.suffix, q.n_suffix)) {
                tk_post_free(&q);
                return -1;
            }
            tk_post_free(&q);
        }
        return 0;
    }
    return tn_fail("%s: post_processor type '%s' is not supported (supported: TemplateProcessing, "
                   "ByteLevel, BertProcessing, RobertaProcessing, Sequence)",
                   where, type);
}

void tk_post_free(tk_post *p) {
    free(p->prefix);
    free(p->suffix);
    memset(p, 0, sizeof *p);
}
