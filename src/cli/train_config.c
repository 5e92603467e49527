#include "cli/train_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util/error.h"

static char *keep(tn_train_config_extra *x, const char *s) {
    if (x->n_owned >= (int)(sizeof x->owned / sizeof x->owned[0])) return NULL;
    return x->owned[x->n_owned++] = tn_strdup(s);
}

static int as_double(const char *path, int line, const char *key, const char *v, double *out) {
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end) return tn_fail("%s:%d: %s: expected a number, got '%s'", path, line, key, v);
    *out = d;
    return 0;
}

static int as_int(const char *path, int line, const char *key, const char *v, int64_t *out) {
    char *end;
    long long d = strtoll(v, &end, 10);
    if (end == v || *end) return tn_fail("%s:%d: %s: expected an integer, got '%s'", path, line, key, v);
    *out = d;
    return 0;
}

static int as_bool(const char *path, int line, const char *key, const char *v, int *out) {
    if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "yes")) *out = 1;
    else if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "no")) *out = 0;
    else return tn_fail("%s:%d: %s: expected true or false, got '%s'", path, line, key, v);
    return 0;
}

/* A flat view of the YAML: "key" or "parent.key" -> scalar, with lists of
 * scalars joined by commas (lora_parameters.keys). */
typedef struct {
    char key[400];
    char value[1024];
    int line;
} entry;

/* "a.b.c": the keys of the enclosing mappings, then the current one. */
static void full_key(char *out, size_t cap, char cur_key[][128], int depth) {
    out[0] = 0;
    for (int d = 1; d <= depth; d++) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s", d > 1 ? "." : "", cur_key[d]);
    }
}

static int collect(yaml_parser_t *p, const char *path, entry *out, int cap, int *n) {
    yaml_event_t ev;
    int depth = 0, expect_key[5] = {0}, in_seq = 0;
    char cur_key[5][128];
    memset(cur_key, 0, sizeof cur_key);
    for (;;) {
        if (!yaml_parser_parse(p, &ev))
            return tn_fail("%s:%zu: not valid YAML (%s)", path, p->problem_mark.line + 1, p->problem ? p->problem : "?");
        int line = (int)ev.start_mark.line + 1;
        yaml_event_type_t t = ev.type;
        if (t == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        if (t == YAML_MAPPING_START_EVENT) {
            if (depth >= 3) {
                yaml_event_delete(&ev);
                return tn_fail("%s:%d: mappings nested this deep are not part of mlx-lm's config", path, line);
            }
            depth++;
            expect_key[depth] = 1;
        } else if (t == YAML_MAPPING_END_EVENT) {
            depth--;
            if (depth > 0) expect_key[depth] = 1;
        } else if (t == YAML_SEQUENCE_START_EVENT) {
            in_seq = 1;
            if (*n < cap) {
                entry *e = &out[(*n)++];
                full_key(e->key, sizeof e->key, cur_key, depth);
                e->value[0] = 0;
                e->line = line;
            }
        } else if (t == YAML_SEQUENCE_END_EVENT) {
            in_seq = 0;
            expect_key[depth] = 1;
        } else if (t == YAML_SCALAR_EVENT) {
            const char *v = (const char *)ev.data.scalar.value;
            if (in_seq) {
                entry *e = &out[*n - 1];
                size_t l = strlen(e->value);
                snprintf(e->value + l, sizeof e->value - l, "%s%s", l ? "," : "", v);
            } else if (expect_key[depth]) {
                snprintf(cur_key[depth], sizeof cur_key[0], "%s", v);
                expect_key[depth] = 0;
            } else {
                if (*n < cap) {
                    entry *e = &out[(*n)++];
                    full_key(e->key, sizeof e->key, cur_key, depth);
                    snprintf(e->value, sizeof e->value, "%s", v);
                    e->line = line;
                }
                expect_key[depth] = 1;
            }
        }
        yaml_event_delete(&ev);
    }
}

int tn_train_config_load(const char *path, tn_train_options *o, tn_train_config_extra *x) {
    FILE *f = fopen(path, "rb");
    if (!f) return tn_fail("%s: cannot open", path);
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);
    entry es[128];
    int n = 0;
    int rc = collect(&p, path, es, 128, &n);
    yaml_parser_delete(&p);
    fclose(f);
    if (rc) return rc;
    double scale = -1;
    for (int i = 0; i < n && !rc; i++) {
        const char *k = es[i].key, *v = es[i].value;
        int line = es[i].line;
        int64_t iv = 0;
        int bv = 0;
        if (!strcmp(k, "model")) o->model = keep(x, v);
        else if (!strcmp(k, "data")) x->data = keep(x, v);
        else if (!strcmp(k, "adapter_path")) o->out = keep(x, v);
        else if (!strcmp(k, "resume_adapter_file")) o->init_adapter = keep(x, v);
        else if (!strcmp(k, "train")) { if (!(rc = as_bool(path, line, k, v, &bv)) && !bv) rc = tn_fail("%s:%d: train: false asks for no training; use `tune eval` instead", path, line); }
        else if (!strcmp(k, "fine_tune_type")) {
            if (!strcmp(v, "full")) o->full = 1;
            else if (strcmp(v, "lora")) rc = tn_fail("%s:%d: fine_tune_type '%s' is not supported (expected lora or full)", path, line, v);
        } else if (!strcmp(k, "num_layers")) { if (!(rc = as_int(path, line, k, v, &iv))) o->layers = (int)iv; }
        else if (!strcmp(k, "batch_size")) { if (!(rc = as_int(path, line, k, v, &iv))) o->batch = (int)iv; }
        else if (!strcmp(k, "iters")) { if (!(rc = as_int(path, line, k, v, &iv))) o->iters = iv; }
        else if (!strcmp(k, "epochs")) { if (!(rc = as_int(path, line, k, v, &iv))) o->epochs = (int)iv; }
        else if (!strcmp(k, "val_batches")) { if (!(rc = as_int(path, line, k, v, &iv))) o->val_batches = iv; }
        else if (!strcmp(k, "learning_rate")) rc = as_double(path, line, k, v, &o->lr);
        else if (!strcmp(k, "steps_per_report")) { if (!(rc = as_int(path, line, k, v, &iv))) o->report_every = iv; }
        else if (!strcmp(k, "steps_per_eval")) { if (!(rc = as_int(path, line, k, v, &iv))) o->val_every = iv; }
        else if (!strcmp(k, "save_every")) { if (!(rc = as_int(path, line, k, v, &iv))) o->save_every = iv; }
        else if (!strcmp(k, "max_seq_length")) { if (!(rc = as_int(path, line, k, v, &iv))) o->max_seq = (int)iv; }
        else if (!strcmp(k, "grad_checkpoint")) rc = as_bool(path, line, k, v, &o->grad_checkpoint);
        else if (!strcmp(k, "grad_accumulation_steps")) { if (!(rc = as_int(path, line, k, v, &iv))) o->grad_accum = (int)iv; }
        else if (!strcmp(k, "seed")) { if (!(rc = as_int(path, line, k, v, &iv))) o->seed = (uint64_t)iv; }
        else if (!strcmp(k, "mask_prompt")) rc = as_bool(path, line, k, v, &x->mask_prompt);
        else if (!strcmp(k, "lora_parameters.rank")) { if (!(rc = as_int(path, line, k, v, &iv))) o->rank = (int)iv; }
        else if (!strcmp(k, "lora_parameters.scale")) rc = as_double(path, line, k, v, &scale);
        else if (!strcmp(k, "lora_parameters.alpha")) rc = as_double(path, line, k, v, &o->alpha);
        else if (!strcmp(k, "lora_parameters.dropout")) rc = as_double(path, line, k, v, &o->dropout);
        else if (!strcmp(k, "lora_parameters.keys")) {
            /* mlx-lm names modules by path ("self_attn.q_proj"): keep the last part. */
            char buf[1024] = "";
            const char *s = v;
            while (*s) {
                const char *e = strchr(s, ',');
                size_t len = e ? (size_t)(e - s) : strlen(s);
                const char *dot = s;
                for (const char *q = s; q < s + len; q++)
                    if (*q == '.') dot = q + 1;
                size_t bl = strlen(buf);
                snprintf(buf + bl, sizeof buf - bl, "%s%.*s", bl ? "," : "", (int)(s + len - dot), dot);
                s += len;
                if (*s == ',') s++;
            }
            o->targets = keep(x, buf);
        } else if (!strcmp(k, "lr_schedule.name")) {
            int sk = tn_schedule_from_name(v);
            if (sk < 0) rc = tn_fail("%s:%d: lr_schedule name '%s' is not supported (expected cosine_decay, linear or constant)", path, line, v);
            else o->schedule = (tn_schedule_kind)sk;
        } else if (!strcmp(k, "lr_schedule.warmup")) { if (!(rc = as_int(path, line, k, v, &iv))) o->warmup = iv; }
        else if (!strcmp(k, "lr_schedule.arguments")) {
            /* mlx-lm's cosine_decay(init, decay_steps, end): the end value is the floor */
            char *c1 = strchr(v, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
            if (c2) o->min_lr = strtod(c2 + 1, NULL);
        } else if (!strcmp(k, "lr_schedule.warmup_init")) { /* warmup starts from 0 here, as transformers does */ }
        else if (!strcmp(k, "optimizer")) {
            if (strcmp(v, "adamw") && strcmp(v, "adam")) rc = tn_fail("%s:%d: optimizer '%s' is not supported (tune uses AdamW)", path, line, v);
        } else if (!strcmp(k, "optimizer_config.adamw.weight_decay")) rc = as_double(path, line, k, v, &o->weight_decay);
        else if (!strcmp(k, "test") || !strcmp(k, "test_batches") || !strcmp(k, "steps_per_report") || !strcmp(k, "wandb") ||
                 !strcmp(k, "report_to") || !strcmp(k, "project_name")) {
            /* reporting and testing choices: test with `tune eval`; progress goes to stderr and log.jsonl */
            if (!strcmp(k, "test") && !as_bool(path, line, k, v, &bv) && bv)
                rc = tn_fail("%s:%d: test: true is not run by tune train; run `tune eval --data DIR` after training", path, line);
            else if (!strcmp(k, "wandb") || !strcmp(k, "report_to"))
                rc = tn_fail("%s:%d: %s: reporting to external services is not supported (tune writes log.jsonl and loss.svg)", path, line, k);
        } else
            rc = tn_fail("%s:%d: key '%s' has no meaning for tune train (see tune train --help for what the config may hold)", path, line, k);
    }
    if (!rc && scale > 0) o->alpha = scale * o->rank; /* mlx-lm's raw scale = alpha / r */
    return rc;
}

void tn_train_config_free(tn_train_config_extra *x) {
    for (int i = 0; i < x->n_owned; i++) free(x->owned[i]);
    x->n_owned = 0;
}
