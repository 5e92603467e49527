/* test_tokenizer.c - whole tokenizers built from small tokenizer.json texts:
 * the BPE model (merge order and ties, unknown tokens fused or not, byte
 * fallback, subword prefixes, ignore_merges, the cache), the pipeline around
 * it (added tokens, normalizer, post-processor, decode), tokenizer_config.json,
 * and bad files: each a message naming the file and the problem, never a
 * crash. The real tokenizers are tested end to end (tests/e2e/tokenizer_*). */
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

#include "text/tokenizer.h"
#include "util/error.h"

static char dir[64];

static int setup(void **state) {
    snprintf(dir, sizeof dir, "/tmp/tune-test-tok-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    char p[128];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    unlink(p);
    rmdir(dir);
    return 0;
}

static void write_file(const char *name, const char *text, size_t n) {
    char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    fclose(f);
}

static tn_tokenizer *load(const char *json) {
    write_file("tokenizer.json", json, strlen(json));
    tn_tokenizer *t = tn_tokenizer_load(dir);
    if (!t) fail_msg("load failed: %s", tn_error());
    return t;
}

static void expect_load_error(const char *json, const char *want) {
    write_file("tokenizer.json", json, strlen(json));
    tn_clear_error();
    tn_tokenizer *t = tn_tokenizer_load(dir);
    if (t) fail_msg("loaded, expected an error containing '%s'", want);
    if (!strstr(tn_error(), want)) fail_msg("error '%s' lacks '%s'", tn_error(), want);
    if (!strstr(tn_error(), "tokenizer")) fail_msg("error '%s' names no file", tn_error());
}

/* want: ids separated by spaces */
static void expect_ids(tn_tokenizer *t, const char *text, int add_special, const char *want) {
    tn_ids ids = {0};
    if (tn_tokenizer_encode(t, text, strlen(text), add_special, &ids)) fail_msg("%s", tn_error());
    char got[512] = "";
    for (size_t i = 0; i < ids.n; i++) {
        char one[16];
        snprintf(one, sizeof one, "%s%d", i ? " " : "", ids.ids[i]);
        strcat(got, one);
    }
    if (strcmp(got, want)) fail_msg("'%s': got [%s], want [%s]", text, got, want);
    tn_ids_free(&ids);
}

static void expect_decoded(tn_tokenizer *t, const int32_t *ids, size_t n, int skip, const char *want) {
    char *s;
    size_t len;
    if (tn_tokenizer_decode(t, ids, n, skip, &s, &len)) fail_msg("%s", tn_error());
    if (len != strlen(want) || memcmp(s, want, len)) fail_msg("decoded '%s', want '%s'", s, want);
    free(s);
}

/* models/bpe/model.rs: test_tokenize_with_and_without_dropout, test_unk_*. */
static void test_bpe_merges(void **state) {
    tn_tokenizer *t = load(
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"u\":0,\"n\":1,\"r\":2,\"e\":3,\"l\":4,\"a\":5,"
        "\"t\":6,\"d\":7,\"re\":8,\"at\":9,\"ed\":10,\"un\":11,\"ated\":12,\"rel\":13,\"related\":14,"
        "\"unrelated\":15,\"aa\":16},\"merges\":[\"r e\",\"a t\",\"e d\",\"u n\",\"at ed\",\"re l\","
        "\"rel ated\",\"un related\",\"a a\"]}}");
    expect_ids(t, "unrelated", 1, "15");
    expect_ids(t, "unrelat", 1, "11 13 9");
    /* Equal ranks: the leftmost pair merges first. */
    expect_ids(t, "aaa", 1, "16 5");
    expect_ids(t, "aaaa", 1, "16 16");
    /* Characters outside the vocabulary vanish without unk or byte fallback,
     * and their neighbours then merge. */
    expect_ids(t, "uxn", 1, "11");
    expect_ids(t, "", 1, "");
    tn_tokenizer_free(t);
}

static void test_bpe_unknown(void **state) {
    const char *v = "\"vocab\":{\"<unk>\":0,\"a\":1,\"b\":2},\"merges\":[],\"unk_token\":\"<unk>\"";
    char json[512];
    snprintf(json, sizeof json, "{\"model\":{\"type\":\"BPE\",%s}}", v);
    tn_tokenizer *t = load(json);
    expect_ids(t, "c", 1, "0");
    expect_ids(t, "cc", 1, "0 0");
    expect_ids(t, "accb", 1, "1 0 0 2");
    tn_tokenizer_free(t);
    snprintf(json, sizeof json, "{\"model\":{\"type\":\"BPE\",%s,\"fuse_unk\":true}}", v);
    t = load(json);
    expect_ids(t, "cc", 1, "0");
    expect_ids(t, "accb", 1, "1 0 2");
    tn_tokenizer_free(t);
    /* An unk_token that is not in the vocabulary is refused. */
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[],\"unk_token\":\"<unk>\"}}",
                      "unk_token '<unk>' is not in model.vocab");
}

static void test_bpe_byte_fallback(void **state) {
    char json[8192];
    int k = snprintf(json, sizeof json, "{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,"
                                        "\"unk_token\":\"<unk>\",\"vocab\":{\"<unk>\":0,\"a\":1");
    for (int b = 0; b < 256; b++) k += snprintf(json + k, sizeof json - k, ",\"<0x%02X>\":%d", b, b + 2);
    snprintf(json + k, sizeof json - k, "},\"merges\":[]}}");
    tn_tokenizer *t = load(json);
    /* 'é' is C3 A9: ids 2 + 0xC3, 2 + 0xA9 */
    expect_ids(t, "a\xC3\xA9" "a", 1, "1 197 171 1");
    tn_tokenizer_free(t);
}

static void test_bpe_prefix_suffix(void **state) {
    tn_tokenizer *t = load("{\"model\":{\"type\":\"BPE\",\"continuing_subword_prefix\":\"##\","
                           "\"vocab\":{\"a\":0,\"##b\":1,\"##c\":2,\"ab\":3,\"abc\":4},"
                           "\"merges\":[\"a ##b\",\"ab ##c\"]}}");
    expect_ids(t, "abc", 1, "4");
    expect_ids(t, "ab", 1, "3");
    tn_tokenizer_free(t);
    t = load("{\"model\":{\"type\":\"BPE\",\"end_of_word_suffix\":\"</w>\","
             "\"vocab\":{\"a\":0,\"b</w>\":1,\"ab</w>\":2,\"b\":3},\"merges\":[[\"a\",\"b</w>\"]]}}");
    expect_ids(t, "ab", 1, "2");
    expect_ids(t, "bab", 1, "3 2");
    tn_tokenizer_free(t);
}

static void test_bpe_ignore_merges(void **state) {
    /* "abc" is in the vocabulary but no merge builds it. */
    const char *base = "\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"abc\":4},\"merges\":[\"a b\"]";
    char json[512];
    snprintf(json, sizeof json, "{\"model\":{\"type\":\"BPE\",%s,\"ignore_merges\":false}}", base);
    tn_tokenizer *t = load(json);
    expect_ids(t, "abc", 1, "3 2");
    expect_ids(t, "abc", 1, "3 2"); /* from the cache */
    tn_tokenizer_free(t);
    snprintf(json, sizeof json, "{\"model\":{\"type\":\"BPE\",%s,\"ignore_merges\":true}}", base);
    t = load(json);
    expect_ids(t, "abc", 1, "4");
    tn_tokenizer_free(t);
}

/* Long pre-tokens are cut before '▁' except after a character that some
 * token holds in front of '▁' (here '>'): the ids are those of one heap. */
static void test_bpe_cuts(void **state) {
    tn_tokenizer *t = load("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"\xE2\x96\x81\":0,\"a\":1,\">\":2,"
                           "\">\xE2\x96\x81\":3,\"\xE2\x96\x81\x61\":4,\"b\":5},"
                           "\"merges\":[\"> \xE2\x96\x81\",\"\xE2\x96\x81 a\"]}}");
    char in[512] = "", want[1024] = "";
    for (int i = 0; i < 40; i++) {
        strcat(in, i % 2 ? ">\xE2\x96\x81" "a" : "b\xE2\x96\x81" "a");
        strcat(want, i % 2 ? (i ? " 3 1" : "3 1") : (i ? " 5 4" : "5 4"));
    }
    expect_ids(t, in, 0, want);
    tn_tokenizer_free(t);
}

/* A SentencePiece-style tokenizer in miniature: Prepend + Replace, BOS from
 * TemplateProcessing, added tokens, the Llama 2 decoder. */
static const char *SPM =
    "{\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true,\"normalized\":false},"
    "{\"id\":1,\"content\":\"<s>\",\"special\":true,\"normalized\":false},"
    "{\"id\":2,\"content\":\"</s>\",\"special\":true,\"normalized\":false},"
    "{\"id\":9,\"content\":\"<x>\",\"special\":false,\"normalized\":false}],"
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"},"
    "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xE2\x96\x81\"}]},"
    "\"pre_tokenizer\":null,"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\","
    "\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[],\"special_tokens\":{\"<s>\":"
    "{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]}}},"
    "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":"
    "\"\xE2\x96\x81\"},\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\","
    "\"content\":\" \",\"start\":1,\"stop\":0}]},"
    "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":true,\"byte_fallback\":true,"
    "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2,\"\xE2\x96\x81\":3,\"h\":4,\"i\":5,\"\xE2\x96\x81h\":6,"
    "\"\xE2\x96\x81hi\":7,\"<0x0A>\":8},\"merges\":[\"\xE2\x96\x81 h\",\"\xE2\x96\x81h i\"]}}";

static void test_pipeline(void **state) {
    tn_tokenizer *t = load(SPM);
    expect_ids(t, "hi", 1, "1 7");
    expect_ids(t, "hi", 0, "7");
    expect_ids(t, "hi hi", 0, "7 7");
    /* Each segment between added tokens is normalized on its own: a '▁' is
     * prepended after "<s>" too. */
    expect_ids(t, "hi<s>hi</s>", 0, "7 1 7 2");
    expect_ids(t, "<x>hi", 0, "9 7");
    /* Unknown characters fuse into one <unk>; '\n' falls back to its byte,
     * which tokenizers adds before the pending <unk> (merge_word flushes the
     * unknown only when a known character follows). */
    expect_ids(t, "hqq\n", 0, "6 8 0");
    expect_ids(t, "hqqh", 0, "6 0 4");
    size_t n;
    assert_int_equal(tn_tokenizer_prefix(t, &n)[0], 1);
    assert_int_equal(n, 1);
    assert_null(tn_tokenizer_suffix(t, &n));
    assert_int_equal(tn_tokenizer_vocab_size(t), 10);
    assert_true(tn_tokenizer_is_special(t, 1));
    assert_false(tn_tokenizer_is_special(t, 9));
    assert_false(tn_tokenizer_is_special(t, 7));
    assert_int_equal(tn_tokenizer_token_id(t, "\xE2\x96\x81hi", 5), 7);
    assert_int_equal(tn_tokenizer_token_id(t, "<x>", 3), 9);
    assert_int_equal(tn_tokenizer_token_id(t, "zz", 2), -1);
    size_t len;
    assert_memory_equal(tn_tokenizer_token(t, 7, &len), "\xE2\x96\x81hi", 5);
    assert_null(tn_tokenizer_token(t, 42, &len));
    const int32_t ids[] = {1, 7, 3, 4, 8, 2};
    expect_decoded(t, ids, 6, 0, "<s> hi h\n</s>");
    expect_decoded(t, ids, 6, 1, "hi h\n");
    expect_decoded(t, ids + 1, 1, 0, "hi");
    expect_decoded(t, ids, 0, 0, "");
    const int32_t bad[] = {7, 10};
    char *s;
    assert_int_not_equal(tn_tokenizer_decode(t, bad, 2, 0, &s, &len), 0);
    assert_non_null(strstr(tn_error(), "token id 10 at position 1"));
    /* Invalid UTF-8 becomes U+FFFD, which falls back to its three bytes (no
     * byte tokens but <0x0A> here, so: <unk>). */
    expect_ids(t, "h\xff", 0, "6 0");
    assert_int_equal(tn_tokenizer_special_id(t, TN_TOK_BOS), -1);
    tn_tokenizer_free(t);
}

static void test_config(void **state) {
    const char *cfg = "{\"bos_token\":\"<s>\",\"eos_token\":{\"content\":\"</s>\",\"lstrip\":false},"
                      "\"pad_token\":null,\"unk_token\":\"<nope>\",\"chat_template\":\"{{ x }}\"}";
    write_file("tokenizer_config.json", cfg, strlen(cfg));
    tn_tokenizer *t = load(SPM);
    assert_int_equal(tn_tokenizer_special_id(t, TN_TOK_BOS), 1);
    assert_int_equal(tn_tokenizer_special_id(t, TN_TOK_EOS), 2);
    assert_int_equal(tn_tokenizer_special_id(t, TN_TOK_PAD), -1);
    assert_int_equal(tn_tokenizer_special_id(t, TN_TOK_UNK), -1);
    tn_tokenizer_free(t);
    write_file("tokenizer_config.json", "{\"bos_token\": ", 14);
    expect_load_error(SPM, "tokenizer_config.json");
    char p[128];
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    unlink(p);
}

static void test_bad_files(void **state) {
    char p[128];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    unlink(p);
    tn_clear_error();
    assert_null(tn_tokenizer_load("/nonexistent/model"));
    assert_non_null(strstr(tn_error(), "no such file or folder"));
    assert_null(tn_tokenizer_load(dir)); /* no tokenizer.json yet */
    assert_non_null(strstr(tn_error(), "missing tokenizer.json"));
    assert_null(tn_tokenizer_load("model.gguf"));
    assert_non_null(strstr(tn_error(), "GGUF"));

    const char *V = "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]";
    char j[1024];
    expect_load_error("", "expected a tokenizer.json object");
    expect_load_error("{\"model\": {\"type\": \"BPE\",", "tokenizer.json:1:");
    expect_load_error("{\"model\": {}} trailing", "end of the file");
    expect_load_error("{\"version\": \"1.0\"}", "missing field 'model'");
    expect_load_error("\xff\xfe{}", "not valid UTF-8");
    expect_load_error("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", "model type 'WordPiece'");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"merges\":[]}}", "missing field 'vocab'");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{}}}", "missing field 'merges'");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}", "token id in");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1.5},\"merges\":[]}}", "not a fraction");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"\\ud800\":0},\"merges\":[]}}", "surrogate");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a\"]}}", "one space");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a a\"]}}",
                      "merged token 'aa' is not in model.vocab");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[7]}}", "a merge");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[],\"dropout\":0.1}}",
                      "dropout");
    snprintf(j, sizeof j, "{\"added_tokens\":{},\"model\":{\"type\":\"BPE\",%s}}", V);
    expect_load_error(j, "'added_tokens': expected a list");
    snprintf(j, sizeof j, "{\"added_tokens\":[{\"id\":\"x\",\"content\":\"<s>\"}],\"model\":{\"type\":\"BPE\",%s}}", V);
    expect_load_error(j, "added_tokens[0].id");
    snprintf(j, sizeof j, "{\"added_tokens\":[{\"id\":3,\"content\":\"<s>\",\"special\":\"yes\"}],"
                          "\"model\":{\"type\":\"BPE\",%s}}", V);
    expect_load_error(j, "added_tokens[0].special");
    snprintf(j, sizeof j, "{\"normalizer\":{\"type\":\"Precompiled\"},\"model\":{\"type\":\"BPE\",%s}}", V);
    expect_load_error(j, "normalizer type 'Precompiled' is not supported");
    snprintf(j, sizeof j, "{\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":"
                          "{\"id\":\"<s>\"}},{\"Sequence\":{\"id\":\"A\"}}],\"special_tokens\":{\"<s>\":{\"ids\":[99]}}},"
                          "\"model\":{\"type\":\"BPE\",%s}}", V);
    expect_load_error(j, "special token id 99 is outside the vocabulary");
    /* Deep nesting is refused, not a stack overflow. */
    char *deep = malloc(4200);
    strcpy(deep, "{\"x\":");
    for (int i = 0; i < 2000; i++) strcat(deep, "[");
    strcat(deep, "]}");
    expect_load_error(deep, "nesting");
    free(deep);
    /* And a good one still loads after all that. */
    snprintf(j, sizeof j, "{\"model\":{\"type\":\"BPE\",%s}}", V);
    tn_tokenizer *t = load(j);
    expect_ids(t, "abab", 1, "2 2");
    tn_tokenizer_free(t);
}

/* GPT-2's byte -> character mapping, written out independently of the
 * library's table. */
static int byte_char(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return b;
    int n = 0;
    for (int k = 0; k < b; k++)
        if (!((k >= 33 && k <= 126) || (k >= 161 && k <= 172) || (k >= 174 && k <= 255))) n++;
    return 256 + n;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* Random bytes through a byte-level tokenizer: no crash, and decode(encode(s))
 * is s with invalid UTF-8 replaced. */
static void test_random_bytes_round_trip(void **state) {
    char *json = malloc(16384);
    int k = snprintf(json, 16384, "{\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                                  "\"use_regex\":true},\"decoder\":{\"type\":\"ByteLevel\"},"
                                  "\"model\":{\"type\":\"BPE\",\"vocab\":{");
    for (int b = 0; b < 256; b++) {
        int c = byte_char(b);
        if (c == '"' || c == '\\') k += snprintf(json + k, 16384 - k, "\"\\%c\":%d,", c, b);
        else if (c < 0x80) k += snprintf(json + k, 16384 - k, "\"%c\":%d,", c, b);
        else k += snprintf(json + k, 16384 - k, "\"\\u%04x\":%d,", c, b);
    }
    snprintf(json + k, 16384 - k, "\"he\":256,\"\\u0120t\":257,\"\\u0120the\":258},"
                                  "\"merges\":[\"h e\",\"\\u0120t he\",\"\\u0120 t\"]}}");
    tn_tokenizer *t = load(json);
    free(json);
    expect_ids(t, " the", 0, "258");
    char in[256];
    for (int it = 0; it < 400; it++) {
        size_t n = rnd() % sizeof in;
        for (size_t i = 0; i < n; i++) in[i] = it % 2 ? (char)rnd() : " the\n\xc3\xa9\xff\xe2\x82"[rnd() % 10];
        tn_ids ids = {0};
        if (tn_tokenizer_encode(t, in, n, 0, &ids)) fail_msg("%s", tn_error());
        char *out, *want;
        size_t out_n, want_n;
        if (tn_tokenizer_decode(t, ids.ids, ids.n, 0, &out, &out_n)) fail_msg("%s", tn_error());
        want = tn_utf8_sanitize(in, n, &want_n, NULL);
        assert_int_equal(out_n, want_n);
        assert_memory_equal(out, want, out_n);
        free(out);
        free(want);
        tn_ids_free(&ids);
    }
    tn_tokenizer_free(t);
}

/* Every prefix of a tokenizer.json, and seeded byte flips: a clean error or
 * a tokenizer, never a crash or a leak. */
static void test_damaged_files(void **state) {
    size_t n = strlen(SPM), loaded = 0;
    char *buf = malloc(n + 1);
    for (size_t cut = 0; cut <= n; cut++) {
        write_file("tokenizer.json", SPM, cut);
        tn_tokenizer *t = tn_tokenizer_load(dir);
        if (t) {
            loaded++;
            tn_ids ids = {0};
            assert_int_equal(tn_tokenizer_encode(t, "hi <s>", 6, 1, &ids), 0);
            tn_ids_free(&ids);
            tn_tokenizer_free(t);
        } else {
            assert_true(strlen(tn_error()) > 10);
        }
    }
    assert_int_equal(loaded, 1); /* only the whole file */
    for (int it = 0; it < 300; it++) {
        memcpy(buf, SPM, n);
        for (int f = 0; f < 3; f++) buf[rnd() % n] = (char)(rnd() % 128);
        write_file("tokenizer.json", buf, n);
        tn_tokenizer *t = tn_tokenizer_load(dir);
        if (t) {
            tn_ids ids = {0};
            if (tn_tokenizer_encode(t, "hi <s>\n", 7, 1, &ids) == 0) {
                char *s;
                size_t len;
                if (tn_tokenizer_decode(t, ids.ids, ids.n, 0, &s, &len) == 0) free(s);
            }
            tn_ids_free(&ids);
            tn_tokenizer_free(t);
        }
    }
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bpe_merges),      cmocka_unit_test(test_bpe_unknown),
        cmocka_unit_test(test_bpe_byte_fallback), cmocka_unit_test(test_bpe_prefix_suffix),
        cmocka_unit_test(test_bpe_ignore_merges), cmocka_unit_test(test_bpe_cuts),
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_config),          cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_random_bytes_round_trip), cmocka_unit_test(test_damaged_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
