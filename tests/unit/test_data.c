/* test_data.c - the dataset pipeline's parts: the line reader (long lines,
 * CRLF, BOM, invalid UTF-8), raw JSON spans, record checks and their
 * messages, batching (every sample once, labels, padding arithmetic,
 * determinism per (seed, epoch), packing positions and segments), and a
 * dataset loaded through the llama fixture (counts, truncation, duplicates,
 * left-out samples, strict mode). */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/batch.h"
#include "data/dataset.h"
#include "data/json_span.h"
#include "data/lines.h"
#include "data/record.h"
#include "nn/ops.h"
#include "util/error.h"

static char tmpdir[64];

static int setup_dir(void **state) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tune_data_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes bytes to tmpdir/name; returns the path (static buffer per call site). */
static const char *write_file(const char *name, const char *bytes, size_t n) {
    static char paths[8][256];
    static int k;
    char *p = paths[k++ % 8];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
    return p;
}

static const char *write_text(const char *name, const char *text) { return write_file(name, text, strlen(text)); }

static void assert_contains(const char *hay, const char *needle) {
    if (!strstr(hay, needle)) fail_msg("expected '%s' in '%s'", needle, hay);
}

/* ---- lines ---- */

static void test_lines_basic(void **state) {
    const char *p = write_text("a.jsonl", "\xEF\xBB\xBF{\"a\": 1}\r\n\n  \n{\"b\": 2}");
    tn_lines r;
    assert_int_equal(tn_lines_open(&r, p, 1024), 0);
    const char *line;
    size_t n;
    assert_int_equal(tn_lines_next(&r, &line, &n), 1);
    assert_string_equal(line, "{\"a\": 1}"); /* BOM and \r dropped */
    assert_int_equal(r.lineno, 1);
    assert_int_equal(tn_lines_next(&r, &line, &n), 1);
    assert_int_equal(n, 0);
    assert_int_equal(tn_lines_next(&r, &line, &n), 1);
    assert_string_equal(line, "  ");
    assert_int_equal(tn_lines_next(&r, &line, &n), 1);
    assert_string_equal(line, "{\"b\": 2}"); /* no final newline */
    assert_int_equal(r.lineno, 4);
    assert_int_equal(tn_lines_next(&r, &line, &n), 0);
    tn_lines_close(&r);
}

static void test_lines_too_long(void **state) {
    /* line 2 is 5000 bytes, over a 1 KiB limit: an error naming it, and
     * nothing of it kept beyond the limit */
    char *big = malloc(5000 + 32);
    memset(big, 'x', 5000 + 32);
    memcpy(big, "{}\n", 3);
    big[3 + 5000] = '\n';
    const char *p = write_file("long.jsonl", big, 3 + 5000 + 1);
    free(big);
    tn_lines r;
    assert_int_equal(tn_lines_open(&r, p, 1024), 0);
    const char *line;
    size_t n;
    assert_int_equal(tn_lines_next(&r, &line, &n), 1);
    assert_int_equal(tn_lines_next(&r, &line, &n), -1);
    assert_contains(tn_error(), "long.jsonl:2: line too long (expected a JSON record of at most 1 KiB, got 5000 bytes");
    assert_true(r.cap <= 4096); /* the line was streamed over, not buffered */
    tn_lines_close(&r);
}

static void test_lines_invalid_utf8(void **state) {
    const char *p = write_text("bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"a\xC3\x28\"}\n");
    tn_lines r;
    assert_int_equal(tn_lines_open(&r, p, 1024), 0);
    const char *line;
    size_t n;
    assert_int_equal(tn_lines_next(&r, &line, &n), 1);
    assert_int_equal(tn_lines_next(&r, &line, &n), -1);
    assert_contains(tn_error(), "bad.jsonl:2: invalid UTF-8 at byte 12 of the line (expected UTF-8 text, got byte 0xC3)");
    tn_lines_close(&r);
}

static void test_utf8_validator(void **state) {
    struct {
        const char *s;
        size_t bad;
    } cases[] = {
        {"plain", 5},
        {"\xC3\xA9", 2},             /* é */
        {"\xF0\x9F\x98\x8A", 4},     /* emoji */
        {"a\xC0\x80", 1},            /* overlong NUL */
        {"\xE0\x80\xAF", 0},         /* overlong / */
        {"ab\xED\xA0\x80", 2},       /* surrogate */
        {"\xF4\x90\x80\x80", 0},     /* above U+10FFFF */
        {"x\xE2\x82", 1},            /* truncated */
        {"\x80", 0},                 /* lone continuation */
        {"\xF5\x80\x80\x80", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(tn_utf8_invalid_at(cases[i].s, strlen(cases[i].s)), cases[i].bad);
}

/* ---- json spans ---- */

static void test_json_span(void **state) {
    const char *s = "{\"a\\\"b\": \"}{\", \"x\": [1, {\"y\": \"]\"}, \"s\\\\\"], \"m\\u0065ssages\": [ {\"k\": 1.0} ,2 ]}";
    tn_span sp;
    assert_int_equal(tn_json_member_span(s, strlen(s), "x", &sp), 0);
    assert_int_equal(strncmp(s + sp.start, "[1, {\"y\": \"]\"}, \"s\\\\\"]", sp.len), 0);
    assert_int_equal(tn_json_member_span(s, strlen(s), "messages", &sp), 0); /* escaped key */
    assert_int_equal(strncmp(s + sp.start, "[ {\"k\": 1.0} ,2 ]", sp.len), 0);
    tn_span el[4];
    assert_int_equal(tn_json_array_spans(s, sp, el, 4), 2);
    assert_int_equal(strncmp(s + el[0].start, "{\"k\": 1.0}", el[0].len), 0);
    assert_int_equal(el[1].len, 1);
    assert_int_equal(tn_json_member_span(s, strlen(s), "missing", &sp), 1);
    tn_span empty = {0, 2};
    assert_int_equal(tn_json_array_spans("[]", empty, el, 4), 0);
}

/* ---- records ---- */

static const tn_data_keys keys = {"messages", "prompt", "completion", "text"};

/* Parses line as line 3 of "f.jsonl" in a file whose format is expect. */
static int parse(const char *line, tn_data_format expect, tn_problems *p, tn_record *r) {
    return tn_record_parse(r, line, strlen(line), expect, 1, &keys, "f.jsonl", 3, p);
}

static void expect_error(const char *line, tn_data_format expect, const char *msg) {
    tn_problems p = {0};
    tn_record r;
    tn_clear_error();
    if (parse(line, expect, &p, &r) == 0) fail_msg("accepted: %s", line);
    assert_contains(tn_error(), msg);
    tn_problems_free(&p);
}

static void test_record_errors(void **state) {
    expect_error("{\"text\": \"abc", 0, "f.jsonl:3: not valid JSON: the line ends inside a string (expected a closing '\"', got the end of the line)");
    expect_error("{\"messages\": [{\"role\": \"user\"}", 0, "f.jsonl:3: not valid JSON: the line ends inside an object or list (expected a closing ']', got the end of the line)");
    expect_error("{\"text\": 'x'}", 0, "f.jsonl:3: not valid JSON at column 10 (expected valid JSON, got ''x'}')");
    expect_error("{\"text\": \"a\"} extra", 0, "f.jsonl:3: not valid JSON at column 15 (expected the end of the line after the object, got 'extra')");
    expect_error("[1, 2]", 0, "f.jsonl:3: expected a JSON object, got an array");
    expect_error("{\"foo\": 1, \"bar\": 2}", 0,
                 "f.jsonl:3: not a chat, completions or text record (expected 'messages', 'prompt' and 'completion', or 'text', got keys 'foo', 'bar')");
    expect_error("{\"text\": 5}", 0, "f.jsonl:3: field 'text': expected a string, got a number");
    expect_error("{\"prompt\": \"a\", \"completion\": null}", 0, "f.jsonl:3: field 'completion': expected a string, got null");
    expect_error("{\"messages\": \"hi\"}", 0, "f.jsonl:3: field 'messages': expected a list of messages, got a string");
    expect_error("{\"messages\": []}", 0, "f.jsonl:3: field 'messages': expected at least one message, got an empty list");
    expect_error("{\"messages\": [\"hi\"]}", 0, "f.jsonl:3: messages[0]: expected an object {\"role\", \"content\"}, got a string");
    expect_error("{\"messages\": [{\"content\": \"x\"}]}", 0, "f.jsonl:3: messages[0]: missing field 'role' (expected a string)");
    expect_error("{\"messages\": [{\"role\": 1, \"content\": \"x\"}]}", 0, "f.jsonl:3: messages[0]: field 'role': expected a string, got a number");
    expect_error("{\"messages\": [{\"role\": \"user\"}]}", 0, "f.jsonl:3: messages[0] (user): missing field 'content' (expected a string)");
    expect_error("{\"messages\": [{\"role\": \"user\", \"content\": 7}]}", 0,
                 "f.jsonl:3: messages[0] (user): field 'content': expected a string, a list of parts or null, got a number");
    expect_error("{\"messages\": [{\"role\": \"user\", \"content\": [1]}]}", 0, "f.jsonl:3: messages[0].content[0]: expected an object");
    expect_error("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": {}}", 0,
                 "f.jsonl:3: field 'tools': expected a list of tool definitions, got an object");
    /* one format per file */
    expect_error("{\"text\": \"a\"}", TN_FORMAT_CHAT,
                 "f.jsonl:3: a text record in a chat file (expected 'messages' as on line 1, got keys 'text'); a file holds one format");
    expect_error("{\"prompt\": \"a\"}", TN_FORMAT_COMPLETIONS,
                 "f.jsonl:3: not a completions record (expected 'prompt' and 'completion' as on line 1, got keys 'prompt')");
}

static void test_record_ok_and_problems(void **state) {
    tn_problems p = {0};
    tn_record r;
    const char *line = "{\"messages\": [{\"role\": \"wizard\", \"content\": \" \"}, {\"role\": \"assistant\", "
                       "\"content\": null, \"tool_calls\": [{\"function\": {\"name\": \"f\"}}]}], \"id\": 3}";
    assert_int_equal(parse(line, 0, &p, &r), 0);
    assert_int_equal(r.format, TN_FORMAT_CHAT);
    assert_int_equal(r.n_messages, 2);
    assert_string_equal(r.last_role, "assistant");
    assert_int_equal(p.count[TN_PROBLEM_ROLE], 1);
    assert_int_equal(p.count[TN_PROBLEM_EMPTY], 1); /* the blank one; a tool call is content */
    assert_contains(p.items[0].message, "unknown role 'wizard'");
    assert_int_equal(p.items[0].line, 3);
    assert_int_equal(strncmp(line + r.last_message.start, "{\"role\": \"assistant\"", 20), 0);
    tn_record_free(&r);
    /* completions come first in mlx-lm's detection order */
    assert_int_equal(parse("{\"text\": \"t\", \"prompt\": \"p\", \"completion\": \"\"}", 0, &p, &r), 0);
    assert_int_equal(r.format, TN_FORMAT_COMPLETIONS);
    assert_int_equal(p.count[TN_PROBLEM_EMPTY], 2);
    assert_int_equal(strncmp(line, line, 1), 0);
    tn_record_free(&r);
    tn_problems_free(&p);
}

/* ---- batching on a hand-made split ---- */

/* A split whose sample i has len[i] tokens (ids 1000*i + t) and offset off[i]. */
static void make_split(tn_data_split *s, const int32_t *len, const int32_t *off, size_t n) {
    memset(s, 0, sizeof *s);
    s->name = "train";
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += (size_t)len[i];
    s->tokens = malloc(total * sizeof *s->tokens);
    s->samples = calloc(n, sizeof *s->samples);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        s->samples[i] = (tn_sample){at, len[i], off ? off[i] : 0, len[i], (long)i + 1};
        for (int32_t t = 0; t < len[i]; t++) s->tokens[at++] = 1000 * (int32_t)i + t;
    }
    s->n = n;
    s->n_tokens = total;
}

static void free_split(tn_data_split *s) {
    free(s->tokens);
    free(s->samples);
}

static void test_padding_arithmetic(void **state) {
    /* lengths 2,3,4,5 in batches of 2, grouped: {2,3} and {4,5}:
     * slots 2*3 + 2*5 = 16, tokens 14, padding 2/16 */
    int32_t len[] = {5, 2, 4, 3};
    tn_data_split s;
    make_split(&s, len, NULL, 4);
    tn_batch_options bo = {2, TN_PACK_NONE, 0, -1};
    tn_epoch e;
    assert_int_equal(tn_epoch_plan(&e, &s, &bo, 7, 0), 0);
    assert_int_equal(e.n_batches, 2);
    assert_int_equal(e.tokens, 14);
    assert_int_equal(e.slots, 16);
    assert_true(tn_epoch_padding(&e) == 0.125);
    tn_batch b = {0};
    int64_t pads = 0;
    for (int i = 0; i < e.n_batches; i++) {
        assert_int_equal(tn_batch_fill(&b, &e, i, &s, &bo), 0);
        assert_int_equal(b.B, 2);
        assert_true(b.S == 3 || b.S == 5);
        for (int t = 0; t < b.B * b.S; t++) pads += b.segments[t] < 0;
    }
    assert_int_equal(pads, 2);
    tn_batch_free(&b);
    tn_epoch_free(&e);
    free_split(&s);
}

/* Checks an epoch: every sample exactly once, rows within capacity, and each
 * batch's ids/labels/positions/segments against the samples. */
static void check_epoch(const tn_data_split *s, const tn_batch_options *bo, uint64_t seed, int epoch, int cap) {
    tn_epoch e;
    assert_int_equal(tn_epoch_plan(&e, s, bo, seed, epoch), 0);
    int *seen = calloc(s->n, sizeof *seen);
    tn_batch b = {0};
    int64_t tokens = 0, slots = 0;
    for (int i = 0; i < e.n_batches; i++) {
        assert_int_equal(tn_batch_fill(&b, &e, i, s, bo), 0);
        assert_true(b.B >= 1 && b.B <= bo->batch_size);
        slots += (int64_t)b.B * b.S;
        int64_t targets = 0;
        for (int r = 0; r < b.B; r++) {
            const int32_t *ids = b.ids + (size_t)r * b.S, *lab = b.labels + (size_t)r * b.S;
            const int32_t *pos = b.positions + (size_t)r * b.S, *seg = b.segments + (size_t)r * b.S;
            int t = 0, k = 0;
            while (t < b.S && seg[t] >= 0) {
                assert_int_equal(seg[t], k);
                int idx = ids[t] / 1000; /* which sample */
                const tn_sample *x = &s->samples[idx];
                seen[idx]++;
                for (int j = 0; j < x->len; j++, t++) {
                    assert_int_equal(ids[t], 1000 * idx + j);
                    assert_int_equal(seg[t], k);
                    int trained = j >= x->offset && j > 0;
                    assert_int_equal(lab[t], trained ? ids[t] : TN_IGNORE_INDEX);
                    targets += trained;
                    assert_int_equal(pos[t], bo->pack == TN_PACK_SHARED ? t : j);
                }
                tokens += x->len;
                k++;
            }
            if (bo->pack == TN_PACK_NONE) assert_int_equal(k, 1);
            assert_true(t <= cap);
            for (; t < b.S; t++) {
                assert_int_equal(seg[t], -1);
                assert_int_equal(lab[t], TN_IGNORE_INDEX);
                assert_int_equal(ids[t], bo->pad_id);
            }
        }
        assert_int_equal(targets, b.n_targets);
    }
    for (size_t i = 0; i < s->n; i++) assert_int_equal(seen[i], 1);
    assert_int_equal(tokens, e.tokens);
    assert_int_equal(slots, e.slots);
    free(seen);
    tn_batch_free(&b);
    tn_epoch_free(&e);
}

/* The list of (row lengths of each batch, sample order) of an epoch, as text. */
static char *epoch_signature(const tn_data_split *s, const tn_batch_options *bo, uint64_t seed, int epoch, int *n_batches) {
    tn_epoch e;
    assert_int_equal(tn_epoch_plan(&e, s, bo, seed, epoch), 0);
    size_t cap = 16 * (s->n + (size_t)e.n_rows + (size_t)e.n_batches) + 16, o = 0;
    char *sig = malloc(cap);
    for (int b = 0; b < e.n_batches; b++) {
        o += (size_t)snprintf(sig + o, cap - o, "|");
        for (int r = e.batch_row[b]; r < e.batch_row[b + 1]; r++)
            for (int k = e.row_item[r]; k < e.row_item[r + 1]; k++) o += (size_t)snprintf(sig + o, cap - o, "%d,", e.items[k]);
    }
    *n_batches = e.n_batches;
    tn_epoch_free(&e);
    return sig;
}

static void test_batches_grouped_and_deterministic(void **state) {
    enum { N = 203 };
    int32_t len[N], off[N];
    uint32_t x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        len[i] = 1 + (int32_t)((x >> 16) % 60);
        off[i] = (int32_t)((x >> 8) % (uint32_t)len[i]);
    }
    len[7] = 1; /* a one-token sample has no target */
    tn_data_split s;
    make_split(&s, len, off, N);
    for (int pack = 0; pack < 3; pack++) {
        tn_batch_options bo = {8, (tn_pack_mode)pack, pack ? 64 : 0, 99};
        for (int epoch = 0; epoch < 3; epoch++) check_epoch(&s, &bo, 42, epoch, pack ? 64 : 60);
        int nb0, nb1, nb2;
        char *a = epoch_signature(&s, &bo, 42, 0, &nb0);
        char *a2 = epoch_signature(&s, &bo, 42, 0, &nb1);
        char *b = epoch_signature(&s, &bo, 42, 1, &nb2);
        assert_string_equal(a, a2);          /* a pure function of (seed, epoch) */
        assert_true(strcmp(a, b) != 0);      /* another epoch, another order */
        assert_int_equal(nb0, nb2);          /* the same number of batches every epoch */
        int nb3;
        char *c = epoch_signature(&s, &bo, 43, 0, &nb3);
        assert_true(strcmp(a, c) != 0);
        assert_int_equal(nb0, nb3);
        free(a), free(a2), free(b), free(c);
    }
    /* grouping: batches hold consecutive lengths, so padding is far below
     * random batches' */
    tn_batch_options bo = {8, TN_PACK_NONE, 0, 0};
    tn_epoch e;
    assert_int_equal(tn_epoch_plan(&e, &s, &bo, 1, 0), 0);
    assert_int_equal(e.n_batches, (N + 7) / 8);
    for (int b = 0; b < e.n_batches; b++) {
        int lo = 1 << 30, hi = 0;
        for (int r = e.batch_row[b]; r < e.batch_row[b + 1]; r++) {
            lo = e.row_len[r] < lo ? e.row_len[r] : lo;
            hi = e.row_len[r] > hi ? e.row_len[r] : hi;
        }
        /* no sample outside the batch lies strictly between its shortest and longest */
        int inside = 0;
        for (int i = 0; i < N; i++) inside += len[i] > lo && len[i] < hi;
        assert_true(inside <= e.batch_row[b + 1] - e.batch_row[b]);
    }
    assert_true(tn_epoch_padding(&e) < 0.05);
    assert_true(tn_padding_unsorted(&s, 8, 1) > 0.3);
    tn_epoch_free(&e);
    /* packing fills rows: padding small, far fewer rows than samples */
    tn_batch_options pk = {4, TN_PACK_ISOLATED, 64, 0};
    assert_int_equal(tn_epoch_plan(&e, &s, &pk, 1, 0), 0);
    assert_true(e.n_rows < N / 2);
    assert_true(tn_epoch_padding(&e) < 0.1);
    tn_epoch_free(&e);
    /* a sample longer than a packed row is an error, not a silent cut */
    pk.pack_length = 32;
    assert_int_equal(tn_epoch_plan(&e, &s, &pk, 1, 0), -1);
    assert_contains(tn_error(), "does not fit a packed row of 32");
    free_split(&s);
}

/* ---- a dataset through the llama fixture ---- */

#define LLAMA "tests/fixtures/llama"

static void test_dataset_llama(void **state) {
    tn_data_options o;
    tn_data_options_default(&o);
    o.mask_prompt = 1;
    const char *vars[] = {"date_string=\"26 Jul 2024\""};
    o.vars = vars;
    o.n_vars = 1;
    tn_dataset ds;
    assert_int_equal(tn_dataset_load(&ds, LLAMA, "tests/data/chat", &o), 0);
    tn_data_split *tr = tn_dataset_split(&ds, "train"), *va = tn_dataset_split(&ds, "valid");
    assert_non_null(tr);
    assert_non_null(va);
    assert_non_null(tn_dataset_split(&ds, "test"));
    assert_int_equal(tr->n, 8);
    assert_int_equal(va->n, 3);
    assert_int_equal(tr->format, TN_FORMAT_CHAT);
    assert_int_equal(ds.eos_id, 510);
    assert_int_equal(ds.pad_id, 510); /* no pad token: EOS */
    for (size_t i = 0; i < tr->n; i++) {
        const tn_sample *x = &tr->samples[i];
        const int32_t *ids = tn_sample_ids(tr, i);
        assert_int_equal(ids[0], 501);          /* BOS once */
        assert_true(ids[1] != 501);
        assert_int_equal(ids[x->len - 1], 510); /* <|eot_id|> ends the turn: no EOS added */
        assert_int_equal(ids[x->offset - 1], 301); /* the prompt ends with the header's "\n\n" */
        assert_true(x->offset > 0 && x->offset < x->len);
    }
    assert_int_equal(ds.eos_added, 0);
    assert_int_equal(tn_problems_total(&ds.problems), 0);
    tn_dataset_free(&ds);
}

static void test_dataset_problems(void **state) {
    const char *train = write_text(
        "train.jsonl",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello there, how are you today?\"}]}\n"
        "\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello there, how are you today?\"}]}\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Only a question?\"}]}\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"\"}]}\n");
    const char *valid = write_text(
        "valid.jsonl",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello there, how are you today?\"}]}\n");
    tn_data_options o;
    tn_data_options_default(&o);
    o.mask_prompt = 1;
    o.files[TN_SPLIT_TRAIN] = train;
    o.files[TN_SPLIT_VALID] = valid;
    o.max_seq_length = 80; /* the prompt (system header with date) is ~70 tokens */
    const char *vars[] = {"date_string=\"26 Jul 2024\""};
    o.vars = vars;
    o.n_vars = 1;
    tn_dataset ds;
    assert_int_equal(tn_dataset_load(&ds, LLAMA, NULL, &o), 0);
    tn_data_split *tr = &ds.splits[TN_SPLIT_TRAIN];
    assert_int_equal(tr->n_records, 4);
    assert_int_equal(tr->n_blank, 1);
    assert_int_equal(ds.problems.count[TN_PROBLEM_DUPLICATE], 2); /* line 3, and valid:1 */
    assert_int_equal(ds.problems.count[TN_PROBLEM_MASK], 1);      /* line 4 ends with the user */
    assert_int_equal(ds.problems.count[TN_PROBLEM_EMPTY], 1);     /* line 5 */
    assert_int_equal(ds.problems.count[TN_PROBLEM_TOO_LONG], 3);
    assert_int_equal(tr->n_truncated, 2);
    assert_int_equal(tr->n_left_out, 1);
    assert_int_equal(tr->n, 3);
    for (size_t i = 0; i < ds.problems.n; i++) {
        const tn_problem *p = &ds.problems.items[i];
        if (p->kind == TN_PROBLEM_DUPLICATE && p->file == ds.splits[TN_SPLIT_VALID].path) {
            assert_int_equal(p->line, 1);
            assert_contains(p->message, "duplicate of ");
            assert_contains(p->message, "train.jsonl:1");
        }
        if (p->kind == TN_PROBLEM_MASK) {
            assert_int_equal(p->line, 4);
            assert_contains(p->message, "the last message is from 'user'");
        }
    }
    for (size_t i = 0; i < tr->n; i++) assert_true(tr->samples[i].len <= 80);
    tn_dataset_free(&ds);

    /* a limit that leaves nothing after the prompt: left out (no_target) */
    o.max_seq_length = 40;
    assert_int_equal(tn_dataset_load(&ds, LLAMA, NULL, &o), 0);
    assert_int_equal(ds.splits[TN_SPLIT_TRAIN].n, 0);
    assert_true(ds.problems.count[TN_PROBLEM_NO_TARGET] >= 3);
    tn_dataset_free(&ds);

    /* strict: the first sample that cannot be trained is an error */
    o.max_seq_length = 2048;
    o.strict = 1;
    assert_int_equal(tn_dataset_load(&ds, LLAMA, NULL, &o), -1);
    assert_contains(tn_error(), "train.jsonl:4: --mask-prompt: the last message is from 'user'");
}

static void test_dataset_errors(void **state) {
    tn_data_options o;
    tn_data_options_default(&o);
    tn_dataset ds;
    o.files[TN_SPLIT_TRAIN] = write_text("empty.jsonl", "");
    assert_int_equal(tn_dataset_load(&ds, LLAMA, NULL, &o), -1);
    assert_contains(tn_error(), "empty.jsonl: empty (expected JSON lines with one record each, got an empty file)");
    o.files[TN_SPLIT_TRAIN] = write_text("blank.jsonl", "\n  \n");
    assert_int_equal(tn_dataset_load(&ds, LLAMA, NULL, &o), -1);
    assert_contains(tn_error(), "got only blank lines");
    o.files[TN_SPLIT_TRAIN] = write_text("mixed.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"prompt\": \"p\", \"completion\": \"c\"}\n");
    assert_int_equal(tn_dataset_load(&ds, LLAMA, NULL, &o), -1);
    assert_contains(tn_error(), "mixed.jsonl:3: a completions record in a text file");
    o.mask_prompt = 1;
    o.files[TN_SPLIT_TRAIN] = write_text("text.jsonl", "{\"text\": \"a\"}\n");
    assert_int_equal(tn_dataset_load(&ds, LLAMA, NULL, &o), -1);
    assert_contains(tn_error(), "text.jsonl:1: --mask-prompt needs prompts");
    o.files[TN_SPLIT_TRAIN] = NULL;
    assert_int_equal(tn_dataset_load(&ds, LLAMA, "tests/data/nowhere", &o), -1);
    assert_contains(tn_error(), "tests/data/nowhere: no such file or folder");
    assert_int_equal(tn_dataset_load(&ds, LLAMA, "tests/fixtures", &o), -1);
    assert_contains(tn_error(), "no train.jsonl, valid.jsonl or test.jsonl");
}

/* A model without a chat template: completions become text, chat is an error. */
static void test_no_template(void **state) {
    char model[300], cmd[1600];
    snprintf(model, sizeof model, "%s/plain", tmpdir);
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && cp " LLAMA "/tokenizer.json '%s'/ && "
             "python3 -c \"import json,sys; c=json.load(open('" LLAMA "/tokenizer_config.json')); "
             "c.pop('chat_template'); json.dump(c, open(sys.argv[1] + '/tokenizer_config.json', 'w'))\" '%s'",
             model, model, model);
    if (system(cmd) != 0) skip();
    tn_data_options o;
    tn_data_options_default(&o);
    o.mask_prompt = 1;
    o.files[TN_SPLIT_TRAIN] = write_text("c.jsonl", "{\"prompt\": \"2 + 2 =\", \"completion\": \" 4\"}\n");
    tn_dataset ds;
    assert_int_equal(tn_dataset_load(&ds, model, NULL, &o), 0);
    const tn_sample *x = &ds.splits[0].samples[0];
    const int32_t *ids = tn_sample_ids(&ds.splits[0], 0);
    assert_int_equal(ids[0], 501);
    assert_int_equal(ids[x->len - 1], 510); /* EOS appended */
    assert_int_equal(ds.eos_added, 1);
    assert_true(x->offset > 1 && x->offset < x->len - 1);
    tn_dataset_free(&ds);
    o.files[TN_SPLIT_TRAIN] = write_text("m.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n");
    assert_int_equal(tn_dataset_load(&ds, model, NULL, &o), -1);
    assert_contains(tn_error(), "m.jsonl:1: chat records need a chat template, and the model has none");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_basic),
        cmocka_unit_test(test_lines_too_long),
        cmocka_unit_test(test_lines_invalid_utf8),
        cmocka_unit_test(test_utf8_validator),
        cmocka_unit_test(test_json_span),
        cmocka_unit_test(test_record_errors),
        cmocka_unit_test(test_record_ok_and_problems),
        cmocka_unit_test(test_padding_arithmetic),
        cmocka_unit_test(test_batches_grouped_and_deterministic),
        cmocka_unit_test(test_dataset_llama),
        cmocka_unit_test(test_dataset_problems),
        cmocka_unit_test(test_dataset_errors),
        cmocka_unit_test(test_no_template),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
