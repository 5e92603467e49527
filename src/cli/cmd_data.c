/* cmd_data.c - `tune data MODEL DATA`: what the trainer will see of a
 * dataset - counts per split, token lengths, one sample with its masked part
 * marked, padding at the batch size, and every problem found. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "data/batch.h"
#include "data/dataset.h"
#include "io/json.h"
#include "util/error.h"
#include "util/size.h"

static const char help[] =
    "usage: tune data MODEL DATA [options]\n\n"
    "Reads a dataset as `tune train` will and reports on it. DATA is a folder with\n"
    "train.jsonl, valid.jsonl and/or test.jsonl (mlx-lm's layout), or one .jsonl file\n"
    "(taken as the train split). MODEL is the model folder (its tokenizer.json,\n"
    "tokenizer_config.json and chat template). Records, one JSON object a line, with\n"
    "one format per file, set by its first record:\n"
    "  chat         {\"messages\": [{\"role\": ..., \"content\": ...}, ...], \"tools\"?: [...]}\n"
    "  completions  {\"prompt\": ..., \"completion\": ...}  (a user/assistant chat through the\n"
    "               model's template; prompt + completion as text if it has none)\n"
    "  text         {\"text\": ...}  (EOS appended)\n\n"
    "Prints: records, samples and tokens per split; a histogram of token lengths (before\n"
    "truncation); the first sample, decoded, its lines marked 'masked |' (not trained)\n"
    "and 'trained |'; batches and the padding fraction at --batch; every problem: empty\n"
    "content, unknown role, over --max-seq-length (truncated), duplicate (in any split),\n"
    "and samples left out: the template raised, --mask-prompt could not find the prompt\n"
    "(its tokens are not a prefix of the whole sequence's), nothing left to train.\n\n"
    "options:\n"
    "  --json                  one JSON object on stdout instead of the text report\n"
    "  --max-seq-length N      truncate samples to N tokens (default 2048)\n"
    "  --mask-prompt           train only on the last assistant turn / the completion\n"
    "  --batch N               sequences per batch (alias --batch-size; default 4)\n"
    "  --seed S                the seed of the batch order (default 0)\n"
    "  --pack isolated|shared  pack samples into rows of --pack-length tokens; isolated:\n"
    "                          attention stays inside each sample (positions restart);\n"
    "                          shared: each row is one causal sequence\n"
    "  --pack-length N         row length when packing (default --max-seq-length)\n"
    "  --train FILE, --valid FILE, --test FILE   explicit files instead of DATA\n"
    "  --chat-key K, --prompt-key K, --completion-key K, --text-key K\n"
    "                          record keys (default messages, prompt, completion, text)\n"
    "  --raw-completions       completions as prompt + completion text, no template\n"
    "  --var KEY=JSON          a chat template variable (repeatable), e.g. date_string\n"
    "  --date YYYY-MM-DD       the day strftime_now() sees (default: today)\n"
    "  --max-line-bytes SIZE   longest JSON line accepted (default 16M)\n"
    "  --model DIR, --data DIR the same as the positional arguments\n"
    "  --dump samples|batches[:SPLIT[:EPOCH]]\n"
    "                          instead of the report, every sample's ids and mask offset, or\n"
    "                          an epoch's batches (ids, labels, positions, segments), one JSON\n"
    "                          object a line\n\n"
    "exit: 0 report printed; 1 some samples are left out (see problems); 2 bad usage or\n"
    "bad input (a line that is not a record: FILE:LINE: what, expected, got).\n";

static int parse_date(const char *s, struct tm *tm) {
    int y, m, d;
    char extra;
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-' || sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &extra) != 3)
        return tn_fail("--date: expected YYYY-MM-DD, got '%s'", s);
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] || (m == 2 && d == 29 && !leap))
        return tn_fail("--date: expected a valid date, got '%s'", s);
    memset(tm, 0, sizeof *tm);
    tm->tm_year = y - 1900;
    tm->tm_mon = m - 1;
    tm->tm_mday = d;
    tm->tm_isdst = -1;
    return 0;
}

/* ---- statistics ---- */

typedef struct {
    int32_t min, max, median, p95;
    double mean;
    int64_t trained;
} split_stats;

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static void stats_of(const tn_data_split *s, split_stats *st) {
    memset(st, 0, sizeof *st);
    if (!s->n) return;
    int32_t *v = malloc(s->n * sizeof *v);
    if (!v) return;
    double sum = 0;
    for (size_t i = 0; i < s->n; i++) {
        v[i] = s->samples[i].len;
        sum += v[i];
        st->trained += tn_sample_targets(&s->samples[i]);
    }
    qsort(v, s->n, sizeof *v, cmp_i32);
    st->min = v[0];
    st->max = v[s->n - 1];
    st->median = v[(s->n - 1) / 2];
    st->p95 = v[(size_t)((double)(s->n - 1) * 0.95 + 0.5)];
    st->mean = sum / (double)s->n;
    free(v);
}

/* Histogram of lengths before truncation, bins (2^(k-1), 2^k], from 1..16. */
enum { HBINS = 32 };
typedef struct {
    int64_t lo[HBINS], hi[HBINS], count[HBINS], over[HBINS]; /* over: above --max-seq-length */
    int n;
} histogram;

static void histogram_of(tn_dataset *ds, histogram *h) {
    int32_t limit = ds->opt.max_seq_length;
    memset(h, 0, sizeof *h);
    int32_t maxlen = 1;
    for (int s = 0; s < TN_SPLITS; s++)
        for (size_t i = 0; i < ds->splits[s].n; i++)
            if (ds->splits[s].samples[i].full_len > maxlen) maxlen = ds->splits[s].samples[i].full_len;
    int64_t hi = 16, lo = 1;
    while (h->n < HBINS) {
        h->lo[h->n] = lo;
        h->hi[h->n] = hi;
        h->n++;
        if (hi >= maxlen) break;
        lo = hi + 1;
        hi *= 2;
    }
    for (int s = 0; s < TN_SPLITS; s++)
        for (size_t i = 0; i < ds->splits[s].n; i++) {
            int32_t L = ds->splits[s].samples[i].full_len;
            for (int b = 0; b < h->n; b++)
                if (L <= h->hi[b]) {
                    h->count[b]++;
                    h->over[b] += limit > 0 && L > limit;
                    break;
                }
        }
}

typedef struct {
    int present;
    int batches, rows;
    double padding, unsorted;
} batching;

static int batching_of(const tn_data_split *s, const tn_batch_options *bo, uint64_t seed, batching *b) {
    memset(b, 0, sizeof *b);
    if (!s->path) return 0;
    tn_epoch e;
    if (tn_epoch_plan(&e, s, bo, seed, 0)) return -1;
    b->present = 1;
    b->batches = e.n_batches;
    b->rows = e.n_rows;
    b->padding = tn_epoch_padding(&e);
    b->unsorted = tn_padding_unsorted(s, bo->batch_size, seed);
    tn_epoch_free(&e);
    return 0;
}

/* The decoded text of ids (malloc'd). */
static char *decode(tn_tokenizer *t, const int32_t *ids, size_t n) {
    char *s = NULL;
    size_t len = 0;
    if (n == 0) return tn_strdup("");
    if (tn_tokenizer_decode(t, ids, n, 0, &s, &len)) return NULL;
    return s;
}

/* The first sample of the first split present. */
static const tn_data_split *sample_split(tn_dataset *ds) {
    for (int s = 0; s < TN_SPLITS; s++)
        if (ds->splits[s].path && ds->splits[s].n) return &ds->splits[s];
    return NULL;
}

static const char *pack_name(tn_pack_mode m) {
    return m == TN_PACK_ISOLATED ? "isolated" : m == TN_PACK_SHARED ? "shared" : "none";
}

/* ---- the text report ---- */

static void put_tagged(FILE *f, const char *tag, const char *text, size_t max) {
    size_t n = strlen(text);
    size_t shown = n > max ? max : n;
    fprintf(f, "  %s | ", tag);
    for (size_t i = 0; i < shown; i++) {
        fputc(text[i], f);
        if (text[i] == '\n') fprintf(f, "  %s | ", tag);
    }
    if (shown < n) fprintf(f, "... (%zu more bytes)", n - shown);
    fputc('\n', f);
}

static void text_report(FILE *f, tn_dataset *ds, const char *model, const char *data, const tn_batch_options *bo,
                        uint64_t seed) {
    const tn_data_options *o = &ds->opt;
    fprintf(f, "model  %s (chat template: %s)\n", model, tn_chat_origin(ds->chat) ? tn_chat_origin(ds->chat) : "none");
    fprintf(f, "data   %s\n", data ? data : "(files given)");
    fprintf(f, "       max-seq-length %d, mask-prompt %s, batch %d, seed %llu, pack %s\n", o->max_seq_length,
            o->mask_prompt ? "on" : "off", bo->batch_size, (unsigned long long)seed, pack_name(bo->pack));
    fprintf(f, "       eos %d, pad %d; EOS appended to %ld samples", ds->eos_id, ds->pad_id, ds->eos_added);
    if (ds->bos_added) fprintf(f, "; BOS put before %ld renderings that lacked it", ds->bos_added);
    fprintf(f, "\n\n");
    fprintf(f, "%-6s %-12s %8s %8s %9s %9s %9s %8s %6s %7s %6s\n", "split", "format", "records", "samples", "tokens",
            "trained", "truncated", "left-out", "min", "median", "max");
    for (int s = 0; s < TN_SPLITS; s++) {
        const tn_data_split *sp = &ds->splits[s];
        if (!sp->path) continue;
        split_stats st;
        stats_of(sp, &st);
        fprintf(f, "%-6s %-12s %8zu %8zu %9zu %9lld %9zu %8zu %6d %7d %6d\n", sp->name, tn_data_format_name(sp->format),
                sp->n_records, sp->n, sp->n_tokens, (long long)st.trained, sp->n_truncated, sp->n_left_out, st.min,
                st.median, st.max);
    }
    for (int s = 0; s < TN_SPLITS; s++)
        if (ds->splits[s].path) fprintf(f, "  %s: %s\n", ds->splits[s].name, ds->splits[s].path);

    histogram h;
    histogram_of(ds, &h);
    int64_t top = 1;
    for (int b = 0; b < h.n; b++)
        if (h.count[b] > top) top = h.count[b];
    fprintf(f, "\ntoken lengths before truncation (all splits):\n");
    for (int b = 0; b < h.n; b++) {
        int bar = (int)((h.count[b] * 40 + top - 1) / top);
        fprintf(f, "  %6lld-%-6lld %-40.*s %lld", (long long)h.lo[b], (long long)h.hi[b], bar,
                "########################################", (long long)h.count[b]);
        if (h.over[b]) fprintf(f, "  (%lld over --max-seq-length: truncated)", (long long)h.over[b]);
        fputc('\n', f);
    }

    const tn_data_split *ss = sample_split(ds);
    if (ss) {
        const tn_sample *x = &ss->samples[0];
        const int32_t *ids = tn_sample_ids(ss, 0);
        char *masked = decode(ds->tok, ids, (size_t)x->offset);
        char *trained = decode(ds->tok, ids + x->offset, (size_t)(x->len - x->offset));
        fprintf(f, "\nsample %s:%ld (%s): %d tokens, %d masked, %d trained%s\n", ss->path, x->line,
                tn_data_format_name(ss->format), x->len, x->offset, tn_sample_targets(x),
                x->offset ? "" : " (all but the first, which nothing predicts)");
        if (masked && *masked) put_tagged(f, "masked ", masked, 4000);
        if (trained) put_tagged(f, "trained", trained, 4000);
        free(masked);
        free(trained);
    }

    fprintf(f, "\nbatches of %d, grouped by length%s:\n", bo->batch_size,
            bo->pack ? (bo->pack == TN_PACK_ISOLATED ? ", packed (attention inside each sample)"
                                                     : ", packed (attention across the row)")
                     : "");
    for (int s = 0; s < TN_SPLITS; s++) {
        batching b;
        if (batching_of(&ds->splits[s], bo, seed, &b) || !b.present) continue;
        fprintf(f, "  %-6s %5d batches", ds->splits[s].name, b.batches);
        if (bo->pack) fprintf(f, " (%d rows)", b.rows);
        fprintf(f, ", padding %.1f%% (unsorted batches of samples: %.1f%%)\n", 100 * b.padding, 100 * b.unsorted);
    }

    const tn_problems *p = &ds->problems;
    size_t total = tn_problems_total(p);
    fprintf(f, "\nproblems: %zu", total);
    if (total) {
        fprintf(f, " (");
        int first = 1;
        for (int k = 0; k < TN_PROBLEM_KINDS; k++)
            if (p->count[k]) {
                fprintf(f, "%s%zu %s", first ? "" : ", ", p->count[k], tn_problem_kind_name((tn_problem_kind)k));
                first = 0;
            }
        fprintf(f, ")");
    }
    fprintf(f, "\n");
    size_t shown[TN_PROBLEM_KINDS] = {0};
    for (size_t i = 0; i < p->n; i++) {
        const tn_problem *q = &p->items[i];
        if (shown[q->kind]++ >= 20) continue;
        fprintf(f, "  %s:%ld: %s%s: %s\n", q->file, q->line, tn_problem_kind_name(q->kind),
                tn_problem_is_severe(q->kind) ? " (left out)" : "", q->message);
    }
    for (int k = 0; k < TN_PROBLEM_KINDS; k++)
        if (p->count[k] > 20)
            fprintf(f, "  ... and %zu more %s problems (--json lists up to 1000 of each kind)\n", p->count[k] - 20,
                    tn_problem_kind_name((tn_problem_kind)k));
}

/* ---- the JSON report ---- */

static cJSON *json_report(tn_dataset *ds, const char *model, const char *data, const tn_batch_options *bo,
                          uint64_t seed) {
    const tn_data_options *o = &ds->opt;
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON_AddStringToObject(root, "model", model);
    if (data) cJSON_AddStringToObject(root, "data", data);
    else cJSON_AddNullToObject(root, "data");
    if (tn_chat_origin(ds->chat)) cJSON_AddStringToObject(root, "chat_template", tn_chat_origin(ds->chat));
    else cJSON_AddNullToObject(root, "chat_template");
    cJSON *opt = cJSON_AddObjectToObject(root, "options");
    cJSON_AddNumberToObject(opt, "max_seq_length", o->max_seq_length);
    cJSON_AddBoolToObject(opt, "mask_prompt", o->mask_prompt);
    cJSON_AddNumberToObject(opt, "batch", bo->batch_size);
    cJSON_AddNumberToObject(opt, "seed", (double)seed);
    cJSON_AddStringToObject(opt, "pack", pack_name(bo->pack));
    if (bo->pack) cJSON_AddNumberToObject(opt, "pack_length", bo->pack_length);
    cJSON *tok = cJSON_AddObjectToObject(root, "tokens");
    cJSON_AddNumberToObject(tok, "eos", ds->eos_id);
    cJSON_AddNumberToObject(tok, "pad", ds->pad_id);
    cJSON_AddNumberToObject(tok, "eos_appended", (double)ds->eos_added);
    cJSON_AddNumberToObject(tok, "bos_prepended", (double)ds->bos_added);

    cJSON *splits = cJSON_AddObjectToObject(root, "splits");
    for (int s = 0; s < TN_SPLITS; s++) {
        const tn_data_split *sp = &ds->splits[s];
        if (!sp->path) continue;
        split_stats st;
        stats_of(sp, &st);
        batching b;
        if (batching_of(sp, bo, seed, &b)) {
            cJSON_Delete(root);
            return NULL;
        }
        cJSON *j = cJSON_AddObjectToObject(splits, sp->name);
        cJSON_AddStringToObject(j, "file", sp->path);
        cJSON_AddStringToObject(j, "format", tn_data_format_name(sp->format));
        cJSON_AddNumberToObject(j, "records", (double)sp->n_records);
        cJSON_AddNumberToObject(j, "samples", (double)sp->n);
        cJSON_AddNumberToObject(j, "tokens", (double)sp->n_tokens);
        cJSON_AddNumberToObject(j, "trained_tokens", (double)st.trained);
        cJSON_AddNumberToObject(j, "truncated", (double)sp->n_truncated);
        cJSON_AddNumberToObject(j, "left_out", (double)sp->n_left_out);
        cJSON_AddNumberToObject(j, "blank_lines", (double)sp->n_blank);
        cJSON *len = cJSON_AddObjectToObject(j, "length");
        cJSON_AddNumberToObject(len, "min", st.min);
        cJSON_AddNumberToObject(len, "median", st.median);
        cJSON_AddNumberToObject(len, "p95", st.p95);
        cJSON_AddNumberToObject(len, "max", st.max);
        cJSON_AddNumberToObject(len, "mean", st.mean);
        cJSON_AddNumberToObject(j, "batches", b.batches);
        cJSON_AddNumberToObject(j, "rows", b.rows);
        cJSON_AddNumberToObject(j, "padding_fraction", b.padding);
        cJSON_AddNumberToObject(j, "padding_fraction_unsorted", b.unsorted);
    }

    histogram h;
    histogram_of(ds, &h);
    cJSON *hist = cJSON_AddArrayToObject(root, "histogram");
    for (int b = 0; b < h.n; b++) {
        cJSON *bin = cJSON_CreateObject();
        cJSON_AddNumberToObject(bin, "lo", (double)h.lo[b]);
        cJSON_AddNumberToObject(bin, "hi", (double)h.hi[b]);
        cJSON_AddNumberToObject(bin, "count", (double)h.count[b]);
        cJSON_AddNumberToObject(bin, "over_limit", (double)h.over[b]);
        cJSON_AddItemToArray(hist, bin);
    }

    const tn_data_split *ss = sample_split(ds);
    if (ss) {
        const tn_sample *x = &ss->samples[0];
        const int32_t *ids = tn_sample_ids(ss, 0);
        cJSON *smp = cJSON_AddObjectToObject(root, "sample");
        cJSON_AddStringToObject(smp, "split", ss->name);
        cJSON_AddStringToObject(smp, "file", ss->path);
        cJSON_AddNumberToObject(smp, "line", (double)x->line);
        cJSON_AddNumberToObject(smp, "tokens", x->len);
        cJSON_AddNumberToObject(smp, "masked", x->offset);
        cJSON_AddNumberToObject(smp, "trained", tn_sample_targets(x));
        char *masked = decode(ds->tok, ids, (size_t)x->offset);
        char *trained = decode(ds->tok, ids + x->offset, (size_t)(x->len - x->offset));
        cJSON_AddStringToObject(smp, "masked_text", masked ? masked : "");
        cJSON_AddStringToObject(smp, "trained_text", trained ? trained : "");
        free(masked);
        free(trained);
        cJSON_AddItemToObject(smp, "ids", cJSON_CreateIntArray(ids, x->len));
    }

    const tn_problems *p = &ds->problems;
    cJSON *counts = cJSON_AddObjectToObject(root, "problem_counts");
    for (int k = 0; k < TN_PROBLEM_KINDS; k++)
        cJSON_AddNumberToObject(counts, tn_problem_kind_name((tn_problem_kind)k), (double)p->count[k]);
    cJSON_AddNumberToObject(root, "problems_total", (double)tn_problems_total(p));
    cJSON *list = cJSON_AddArrayToObject(root, "problems");
    for (size_t i = 0; i < p->n; i++) {
        const tn_problem *q = &p->items[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "kind", tn_problem_kind_name(q->kind));
        cJSON_AddBoolToObject(j, "left_out", tn_problem_is_severe(q->kind));
        cJSON_AddStringToObject(j, "file", q->file);
        cJSON_AddNumberToObject(j, "line", (double)q->line);
        cJSON_AddStringToObject(j, "message", q->message);
        cJSON_AddItemToArray(list, j);
    }
    return root;
}

/* Also dumps every sample's ids and labels as JSON lines (for tests and
 * scripts): {"split", "line", "ids", "offset"}. */
static int dump_samples(FILE *f, tn_dataset *ds) {
    for (int s = 0; s < TN_SPLITS; s++) {
        const tn_data_split *sp = &ds->splits[s];
        for (size_t i = 0; i < sp->n; i++) {
            const tn_sample *x = &sp->samples[i];
            const int32_t *ids = tn_sample_ids(sp, i);
            fprintf(f, "{\"split\": \"%s\", \"line\": %ld, \"offset\": %d, \"full_len\": %d, \"ids\": [", sp->name,
                    x->line, x->offset, x->full_len);
            for (int32_t t = 0; t < x->len; t++) fprintf(f, "%s%d", t ? ", " : "", ids[t]);
            fprintf(f, "]}\n");
        }
    }
    return 0;
}

/* Dumps the batches of one epoch as JSON lines: {"B", "S", "ids", "labels",
 * "positions", "segments"}. */
static int dump_batches(FILE *f, const tn_data_split *s, const tn_batch_options *bo, uint64_t seed, int epoch) {
    tn_epoch e;
    tn_batch b = {0};
    if (tn_epoch_plan(&e, s, bo, seed, epoch)) return -1;
    int rc = 0;
    for (int i = 0; i < e.n_batches && !rc; i++) {
        if ((rc = tn_batch_fill(&b, &e, i, s, bo))) break;
        size_t n = (size_t)b.B * (size_t)b.S;
        const int32_t *arr[4] = {b.ids, b.labels, b.positions, b.segments};
        const char *names[4] = {"ids", "labels", "positions", "segments"};
        fprintf(f, "{\"B\": %d, \"S\": %d, \"tokens\": %lld, \"targets\": %lld", b.B, b.S, (long long)b.n_tokens,
                (long long)b.n_targets);
        for (int a = 0; a < 4; a++) {
            fprintf(f, ", \"%s\": [", names[a]);
            for (size_t t = 0; t < n; t++) fprintf(f, "%s%d", t ? ", " : "", arr[a][t]);
            fprintf(f, "]");
        }
        fprintf(f, "}\n");
    }
    tn_batch_free(&b);
    tn_epoch_free(&e);
    return rc;
}

int cmd_data(int argc, char **argv) {
    tn_data_options o;
    tn_data_options_default(&o);
    tn_batch_options bo = {4, TN_PACK_NONE, 0, 0};
    const char *model = NULL, *data = NULL, *v, *dump = NULL;
    int json = 0, rc = TN_EXIT_USAGE, dump_epoch = 0;
    uint64_t seed = 0;
    struct tm day;
    const char **vars = calloc((size_t)argc + 1, sizeof *vars);
    if (!vars) {
        fprintf(stderr, "tune: out of memory\n");
        return TN_EXIT_FAILED;
    }
    tn_args a = tn_args_start(argc, argv, "data");
    while (tn_args_next(&a)) {
        int64_t x;
        if (tn_arg_flag(&a, "--help") || tn_arg_flag(&a, "-h")) {
            fputs(help, stdout);
            free(vars);
            return TN_EXIT_OK;
        } else if (tn_arg_flag(&a, "--json")) json = 1;
        else if (tn_arg_flag(&a, "--mask-prompt")) o.mask_prompt = 1;
        else if (tn_arg_flag(&a, "--raw-completions")) o.raw_completions = 1;
        else if (tn_arg_value(&a, "--max-seq-length", &v)) {
            if (!v || tn_arg_int("--max-seq-length", v, 0, 1 << 30, &x)) a.failed = 1;
            else o.max_seq_length = (int)x;
        } else if (tn_arg_value(&a, "--batch", &v) || tn_arg_value(&a, "--batch-size", &v)) {
            if (!v || tn_arg_int("--batch", v, 1, 1 << 20, &x)) a.failed = 1;
            else bo.batch_size = (int)x;
        } else if (tn_arg_value(&a, "--seed", &v)) {
            if (!v || tn_arg_int("--seed", v, 0, INT64_MAX, &x)) a.failed = 1;
            else seed = (uint64_t)x;
        } else if (tn_arg_value(&a, "--pack", &v)) {
            if (v && !strcmp(v, "isolated")) bo.pack = TN_PACK_ISOLATED;
            else if (v && !strcmp(v, "shared")) bo.pack = TN_PACK_SHARED;
            else if (v) {
                tn_fail("--pack: expected isolated (attention inside each sample) or shared (across the row), got '%s'",
                        v);
                a.failed = 1;
            }
        } else if (tn_arg_value(&a, "--pack-length", &v)) {
            if (!v || tn_arg_int("--pack-length", v, 1, 1 << 30, &x)) a.failed = 1;
            else bo.pack_length = (int)x;
        } else if (tn_arg_value(&a, "--max-line-bytes", &v)) {
            uint64_t bytes;
            if (!v || tn_parse_size(v, "--max-line-bytes", &bytes)) a.failed = 1;
            else o.max_line_bytes = (size_t)bytes;
        } else if (tn_arg_value(&a, "--date", &v)) {
            if (!v || parse_date(v, &day)) a.failed = 1;
            else o.date = &day;
        } else if (tn_arg_value(&a, "--var", &v)) vars[o.n_vars++] = v;
        else if (tn_arg_value(&a, "--train", &v)) o.files[TN_SPLIT_TRAIN] = v;
        else if (tn_arg_value(&a, "--valid", &v)) o.files[TN_SPLIT_VALID] = v;
        else if (tn_arg_value(&a, "--test", &v)) o.files[TN_SPLIT_TEST] = v;
        else if (tn_arg_value(&a, "--chat-key", &v)) o.keys.chat = v;
        else if (tn_arg_value(&a, "--prompt-key", &v)) o.keys.prompt = v;
        else if (tn_arg_value(&a, "--completion-key", &v)) o.keys.completion = v;
        else if (tn_arg_value(&a, "--text-key", &v)) o.keys.text = v;
        else if (tn_arg_value(&a, "--dump", &v)) dump = v; /* samples | batches[:SPLIT[:EPOCH]] (tests) */
        else if (tn_arg_value(&a, "--model", &v)) model = v;
        else if (tn_arg_value(&a, "--data", &v)) data = v;
        else if (tn_arg_positional(&a, &v)) {
            if (!model) model = v;
            else if (!data) data = v;
            else {
                tn_fail("tune data: unexpected argument '%s' (the model is '%s', the data '%s')", v, model, data);
                a.failed = 1;
            }
        } else
            tn_arg_unknown(&a);
    }
    o.vars = vars;
    tn_dataset ds;
    int loaded = 0;
    if (a.failed) goto fail;
    if (!model) {
        tn_fail("tune data: expected a model folder (see tune data --help)");
        goto fail;
    }
    if (!data && !o.files[0] && !o.files[1] && !o.files[2]) {
        tn_fail("tune data: expected a data folder or --train/--valid/--test files (see tune data --help)");
        goto fail;
    }
    if (bo.pack && !bo.pack_length) bo.pack_length = o.max_seq_length;
    if (tn_dataset_load(&ds, model, data, &o)) goto fail;
    loaded = 1;
    bo.pad_id = ds.pad_id;
    if (dump) {
        rc = TN_EXIT_OK;
        if (!strcmp(dump, "samples")) dump_samples(stdout, &ds);
        else if (!strncmp(dump, "batches", 7)) {
            char split[16] = "train";
            if (dump[7] == ':') sscanf(dump + 8, "%15[a-z]:%d", split, &dump_epoch);
            tn_data_split *s = tn_dataset_split(&ds, split);
            if (!s) {
                tn_fail("--dump %s: no split '%s'", dump, split);
                goto fail;
            }
            if (dump_batches(stdout, s, &bo, seed, dump_epoch)) goto fail;
        } else {
            tn_fail("--dump: expected samples or batches[:SPLIT[:EPOCH]], got '%s'", dump);
            goto fail;
        }
        goto done;
    }
    if (json) {
        cJSON *j = json_report(&ds, model, data, &bo, seed);
        char *s = j ? cJSON_Print(j) : NULL;
        cJSON_Delete(j);
        if (!s) {
            if (!j) goto fail;
            tn_fail("out of memory printing the report");
            goto fail;
        }
        puts(s);
        free(s);
    } else {
        text_report(stdout, &ds, model, data, &bo, seed);
    }
    rc = tn_problems_severe(&ds.problems) ? TN_EXIT_FAILED : TN_EXIT_OK;
    if (fflush(stdout)) rc = TN_EXIT_FAILED;
    goto done;
fail:
    fprintf(stderr, "tune: %s\n", tn_error());
done:
    if (loaded) tn_dataset_free(&ds);
    free(vars);
    return rc;
}
