#include "data/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/encode.h"
#include "data/lines.h"
#include "util/error.h"
#include "util/platform.h"

static const char *const split_names[TN_SPLITS] = {"train", "valid", "test"};

void tn_data_options_default(tn_data_options *o) {
    memset(o, 0, sizeof *o);
    o->keys = (tn_data_keys){"messages", "prompt", "completion", "text"};
    o->max_seq_length = 2048;
    o->max_line_bytes = (size_t)16 << 20;
}

int tn_data_find_files(const char *dir, char *paths[TN_SPLITS]) {
    int found = 0;
    for (int s = 0; s < TN_SPLITS; s++) {
        size_t n = strlen(dir) + strlen(split_names[s]) + 8;
        char *p = tn_malloc(n, "a path");
        if (!p) {
            for (int k = 0; k < s; k++) free(paths[k]), paths[k] = NULL;
            return -1;
        }
        snprintf(p, n, "%s/%s.jsonl", dir, split_names[s]);
        if (tn_file_exists(p)) {
            paths[s] = p;
            found++;
        } else {
            free(p);
            paths[s] = NULL;
        }
    }
    return found;
}

tn_data_split *tn_dataset_split(tn_dataset *ds, const char *name) {
    for (int s = 0; s < TN_SPLITS; s++)
        if (!strcmp(name, split_names[s])) return ds->splits[s].path ? &ds->splits[s] : NULL;
    return NULL;
}

/* ---- duplicates: an open-addressing set of 64-bit sample hashes ---- */

static uint64_t sample_hash(const int32_t *ids, size_t n, int32_t offset) {
    uint64_t h = 0xcbf29ce484222325ull;
    const unsigned char *b = (const unsigned char *)ids;
    for (size_t i = 0; i < n * sizeof *ids; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    h = (h ^ (uint64_t)(uint32_t)offset) * 0x100000001b3ull;
    h ^= h >> 29;
    return h ? h : 1;
}

/* Finds hash; if absent, inserts it with val and returns -1. */
static int64_t dup_find_or_add(tn_dataset *ds, uint64_t h, uint32_t val) {
    if (2 * (ds->dup_n + 1) > ds->dup_cap) {
        size_t nc = ds->dup_cap ? ds->dup_cap * 2 : 1024;
        uint64_t *k = calloc(nc, sizeof *k);
        uint32_t *v = calloc(nc, sizeof *v);
        if (!k || !v) {
            free(k);
            free(v);
            return -2;
        }
        for (size_t i = 0; i < ds->dup_cap; i++) {
            if (!ds->dup_keys[i]) continue;
            size_t j = ds->dup_keys[i] & (nc - 1);
            while (k[j]) j = (j + 1) & (nc - 1);
            k[j] = ds->dup_keys[i];
            v[j] = ds->dup_vals[i];
        }
        free(ds->dup_keys);
        free(ds->dup_vals);
        ds->dup_keys = k;
        ds->dup_vals = v;
        ds->dup_cap = nc;
    }
    size_t j = h & (ds->dup_cap - 1);
    while (ds->dup_keys[j]) {
        if (ds->dup_keys[j] == h) return ds->dup_vals[j];
        j = (j + 1) & (ds->dup_cap - 1);
    }
    ds->dup_keys[j] = h;
    ds->dup_vals[j] = val;
    ds->dup_n++;
    return -1;
}

/* ---- one split ---- */

static int store(tn_data_split *s, const int32_t *ids, int32_t len, int32_t offset, int32_t full_len, long line) {
    if (s->n_tokens + (size_t)len > s->cap_tokens) {
        size_t nc = s->cap_tokens ? s->cap_tokens : 4096;
        while (nc < s->n_tokens + (size_t)len) nc *= 2;
        int32_t *t = realloc(s->tokens, nc * sizeof *t);
        if (!t) return tn_fail("out of memory storing %zu tokens", nc);
        s->tokens = t;
        s->cap_tokens = nc;
    }
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 256;
        tn_sample *x = realloc(s->samples, nc * sizeof *x);
        if (!x) return tn_fail("out of memory storing %zu samples", nc);
        s->samples = x;
        s->cap = nc;
    }
    memcpy(s->tokens + s->n_tokens, ids, (size_t)len * sizeof *ids);
    s->samples[s->n++] = (tn_sample){s->n_tokens, len, offset, full_len, line};
    s->n_tokens += (size_t)len;
    return 0;
}

static int is_blank_line(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r", s[i])) return 0;
    return 1;
}

/* A sample that cannot be trained: an error when strict, else left out. */
static int severe(tn_dataset *ds, tn_data_split *s, tn_problem_kind kind, long line) {
    if (ds->opt.strict) return tn_fail_prefix("%s:%ld", s->path, line);
    s->n_left_out++;
    return tn_problems_add(&ds->problems, kind, s->path, line, "%s", tn_error());
}

static int load_split(tn_dataset *ds, int si, tn_encoder *enc) {
    tn_data_split *s = &ds->splits[si];
    const tn_data_options *o = &ds->opt;
    tn_lines r;
    if (tn_lines_open(&r, s->path, o->max_line_bytes)) return -1;
    const char *line;
    size_t n;
    int rc;
    long first_line = 0;
    tn_ids ids = {0};
    while ((rc = tn_lines_next(&r, &line, &n)) > 0) {
        if (is_blank_line(line, n)) {
            s->n_blank++;
            continue;
        }
        tn_record rec;
        if (tn_record_parse(&rec, line, n, s->format, first_line, &o->keys, s->path, r.lineno, &ds->problems)) {
            rc = -1;
            break;
        }
        if (!first_line) {
            first_line = r.lineno;
            s->format = rec.format;
            rc = 0;
            if (o->mask_prompt && rec.format == TN_FORMAT_TEXT) {
                tn_fail("%s:%ld: --mask-prompt needs prompts, and text records have none (expected chat or "
                        "completions records, got '%s')",
                        s->path, r.lineno, o->keys.text);
                rc = -1;
            } else if (rec.format == TN_FORMAT_CHAT && !tn_chat_has_template(ds->chat)) {
                tn_fail("%s:%ld: chat records need a chat template, and the model has none (expected chat_template "
                        "in tokenizer_config.json or a chat_template.jinja)",
                        s->path, r.lineno);
                rc = -1;
            }
            if (rc) {
                tn_record_free(&rec);
                break;
            }
        }
        s->n_records++;
        ids.n = 0;
        int32_t offset = 0;
        tn_problem_kind kind = TN_PROBLEM_TEMPLATE;
        int e = tn_encode_record(enc, &rec, &ids, &offset, &kind);
        tn_record_free(&rec);
        if (e < 0) {
            tn_fail_prefix("%s:%ld", s->path, r.lineno);
            rc = -1;
            break;
        }
        if (e > 0) {
            if (severe(ds, s, kind, r.lineno)) {
                rc = -1;
                break;
            }
            continue;
        }
        int32_t full = (int32_t)ids.n, len = full;
        if (o->max_seq_length > 0 && len > o->max_seq_length) len = o->max_seq_length;
        tn_sample x = {0, len, offset, full, r.lineno};
        if (tn_sample_targets(&x) == 0) {
            if (len < full)
                tn_fail("nothing to train: the prompt's %d tokens fill all %d tokens of --max-seq-length", offset, len);
            else if (len <= 1)
                tn_fail("nothing to train: the sample is %d token%s long", len, len == 1 ? "" : "s");
            else
                tn_fail("nothing to train: the prompt takes all %d tokens", len);
            if (severe(ds, s, TN_PROBLEM_NO_TARGET, r.lineno)) {
                rc = -1;
                break;
            }
            continue;
        }
        if (len < full) {
            s->n_truncated++;
            if (tn_problems_add(&ds->problems, TN_PROBLEM_TOO_LONG, s->path, r.lineno,
                                "%d tokens, over --max-seq-length %d: truncated (%d tokens dropped)", full, len,
                                full - len)) {
                rc = -1;
                break;
            }
        }
        int64_t dup = dup_find_or_add(ds, sample_hash(ids.ids, ids.n, offset), ((uint32_t)si << 30) | (uint32_t)s->n);
        if (dup == -2) {
            rc = tn_fail("out of memory checking duplicates");
            break;
        }
        if (dup >= 0) {
            const tn_data_split *os = &ds->splits[dup >> 30];
            const tn_sample *orig = &os->samples[dup & ((1u << 30) - 1)];
            if (tn_problems_add(&ds->problems, TN_PROBLEM_DUPLICATE, s->path, r.lineno,
                                "duplicate of %s:%ld (same tokens%s)", os->path, orig->line,
                                offset ? " and prompt" : "")) {
                rc = -1;
                break;
            }
        }
        if (store(s, ids.ids, len, offset, full, r.lineno)) {
            rc = -1;
            break;
        }
    }
    tn_ids_free(&ids);
    tn_lines_close(&r);
    if (rc < 0) return -1;
    if (s->n_records == 0)
        return tn_fail("%s: empty (expected JSON lines with one record each, got %s)", s->path,
                       r.lineno ? "only blank lines" : "an empty file");
    return 0;
}

static int setup(tn_dataset *ds, const char *data, const tn_data_options *o) {
    ds->opt = *o;
    int any = 0;
    for (int s = 0; s < TN_SPLITS; s++) {
        ds->splits[s].name = split_names[s];
        if (o->files[s] && !(ds->splits[s].path = tn_strdup(o->files[s]))) return -1;
        any |= o->files[s] != NULL;
    }
    if (!any) {
        if (!data) return tn_fail("no data given (expected a folder with train.jsonl, valid.jsonl, test.jsonl, or a .jsonl file)");
        if (tn_is_directory(data)) {
            char *paths[TN_SPLITS];
            int found = tn_data_find_files(data, paths);
            if (found < 0) return -1;
            if (found == 0)
                return tn_fail("%s: no train.jsonl, valid.jsonl or test.jsonl (expected at least one)", data);
            for (int s = 0; s < TN_SPLITS; s++) ds->splits[s].path = paths[s];
        } else if (tn_file_exists(data)) {
            if (!(ds->splits[TN_SPLIT_TRAIN].path = tn_strdup(data))) return -1;
        } else {
            return tn_fail("%s: no such file or folder (expected a data folder or a .jsonl file)", data);
        }
    }
    return 0;
}

static int load_all(tn_dataset *ds) {
    const tn_data_options *o = &ds->opt;
    if (ds->chat) {
        for (int i = 0; i < o->n_vars; i++)
            if (tn_chat_set_var_arg(ds->chat, o->vars[i])) return -1;
        if (o->date) tn_chat_set_time(ds->chat, o->date);
    }
    ds->eos_id = tn_tokenizer_special_id(ds->tok, TN_TOK_EOS);
    ds->pad_id = tn_tokenizer_special_id(ds->tok, TN_TOK_PAD);
    if (ds->pad_id < 0) ds->pad_id = ds->eos_id >= 0 ? ds->eos_id : 0;
    tn_encoder enc = {ds->tok, ds->chat, o->mask_prompt, o->raw_completions, ds->eos_id, 0, 0};
    for (int s = 0; s < TN_SPLITS; s++) {
        if (!ds->splits[s].path) continue;
        if (load_split(ds, s, &enc)) return -1;
    }
    ds->bos_added = enc.bos_added;
    ds->eos_added = enc.eos_added;
    return 0;
}

int tn_dataset_load_with(tn_dataset *ds, tn_tokenizer *tok, tn_chat *chat, const char *data,
                         const tn_data_options *o) {
    memset(ds, 0, sizeof *ds);
    ds->tok = tok;
    ds->chat = chat;
    if (setup(ds, data, o) || load_all(ds)) {
        tn_dataset_free(ds);
        return -1;
    }
    return 0;
}

int tn_dataset_load(tn_dataset *ds, const char *model, const char *data, const tn_data_options *o) {
    memset(ds, 0, sizeof *ds);
    if (setup(ds, data, o)) goto fail;
    if (!(ds->tok = tn_tokenizer_load(model))) goto fail;
    ds->own_tok = 1;
    if (!(ds->chat = tn_chat_load(model))) goto fail;
    ds->own_chat = 1;
    if (load_all(ds)) goto fail;
    return 0;
fail:
    tn_dataset_free(ds);
    return -1;
}

void tn_dataset_free(tn_dataset *ds) {
    for (int s = 0; s < TN_SPLITS; s++) {
        free(ds->splits[s].path);
        free(ds->splits[s].tokens);
        free(ds->splits[s].samples);
    }
    tn_problems_free(&ds->problems);
    if (ds->own_tok) tn_tokenizer_free(ds->tok);
    if (ds->own_chat) tn_chat_free(ds->chat);
    free(ds->dup_keys);
    free(ds->dup_vals);
    memset(ds, 0, sizeof *ds);
}
