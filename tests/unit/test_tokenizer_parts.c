/* test_tokenizer_parts.c - the tokenizer's parts one at a time, with the
 * expectations of Hugging Face tokenizers' own unit tests where it has them
 * (normalizer.rs split behaviours, metaspace.rs, digits.rs, byte_fallback.rs,
 * added_vocabulary.rs): UTF-8 repair, the ByteLevel table, normalizers,
 * pre-tokenizers, added-token matching and decoders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "text/tokenizer_internal.h"
#include "util/error.h"

static cJSON *parse(const char *json) {
    cJSON *j = tn_json_parse(json, strlen(json), "test");
    if (!j) fail_msg("bad test JSON: %s", tn_error());
    return j;
}

/* ---- UTF-8 ---- */

static void expect_sanitized_n(const char *in, size_t n, const char *want, size_t want_n,
                               size_t want_replaced) {
    size_t len, replaced;
    char *out = tn_utf8_sanitize(in, n, &len, &replaced);
    assert_non_null(out);
    assert_int_equal(len, want_n);
    assert_memory_equal(out, want, len);
    assert_int_equal(replaced, want_replaced);
    assert_true(tk_utf8_valid(out, len));
    free(out);
}

static void expect_sanitized(const char *in, size_t n, const char *want, size_t want_replaced) {
    expect_sanitized_n(in, n, want, strlen(want), want_replaced);
}

/* The outputs are Python's bytes.decode("utf-8", "replace"). */
static void test_utf8_sanitize(void **state) {
#define FFFD "\xEF\xBF\xBD"
    expect_sanitized("plain", 5, "plain", 0);
    expect_sanitized("\xff", 1, FFFD, 1);
    expect_sanitized("a\xe2\x82" "b", 4, "a" FFFD "b", 1);           /* truncated: one */
    expect_sanitized("x\xf0\x9f\x98 y", 6, "x" FFFD " y", 1);
    expect_sanitized("\xc0\xaf", 2, FFFD FFFD, 2);                    /* overlong: each */
    expect_sanitized("\xe0\x80\xaf", 3, FFFD FFFD FFFD, 3);
    expect_sanitized("\xed\xa0\x80", 3, FFFD FFFD FFFD, 3);           /* surrogate */
    expect_sanitized("\xf4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD, 4); /* > U+10FFFF */
    expect_sanitized("\x80\x81", 2, FFFD FFFD, 2);
    expect_sanitized("\xc3\x28", 2, FFFD "(", 1);
    expect_sanitized_n("a\0b", 3, "a\0b", 3, 0);
    expect_sanitized("\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80", 0);
    assert_false(tk_utf8_valid("abcdefgh\xff", 9));
    assert_true(tk_utf8_valid("abcdefghijklmnop\xc3\xa9", 18));
}

static void test_bytelevel_table(void **state) {
    const tk_byte_char *t = tk_byte_to_char();
    assert_memory_equal(t[' '].s, "\xC4\xA0", 2); /* U+0120 'Ġ' */
    assert_memory_equal(t['\n'].s, "\xC4\x8A", 2); /* U+010A 'Ċ' */
    assert_int_equal(t['A'].n, 1);
    assert_int_equal(t['A'].s[0], 'A');
    assert_memory_equal(t[0xAD].s, "\xC5\x83", 2); /* the last one: U+0143 */
    for (int b = 0; b < 256; b++) {
        size_t len;
        assert_int_equal(tk_char_to_byte(tk_utf8_decode(t[b].s, &len)), b);
    }
    assert_int_equal(tk_char_to_byte(0x20), -1);
    assert_int_equal(tk_char_to_byte(0x4E00), -1);
}

static void test_char_classes(void **state) {
    assert_true(tk_is_whitespace(' ') && tk_is_whitespace(0x85) && tk_is_whitespace(0x3000));
    assert_false(tk_is_whitespace(0x200B)); /* zero width space is not White_Space */
    assert_true(tk_is_numeric('7') && tk_is_numeric(0x0663) && tk_is_numeric(0x00BD));
    assert_false(tk_is_numeric('x'));
    assert_true(tk_is_word_char('_') && tk_is_word_char(0x0301) && tk_is_word_char(0x65E5));
    assert_false(tk_is_word_char('-') || tk_is_word_char(' '));
}

/* ---- normalizers ---- */

static void expect_norm(const char *json, const char *in, const char *want) {
    cJSON *j = parse(json);
    tk_norm *nm = NULL;
    if (tk_norm_load(j, "test", &nm)) fail_msg("%s", tn_error());
    tk_buf out = {0};
    if (tk_norm_apply(nm, in, strlen(in), &out)) fail_msg("%s", tn_error());
    assert_int_equal(out.n, strlen(want));
    assert_memory_equal(out.p, want, out.n);
    tk_buf_free(&out);
    tk_norm_free(nm);
    cJSON_Delete(j);
}

static void test_normalizers(void **state) {
    expect_norm("{\"type\":\"NFC\"}", "e\xCC\x81 A\xCC\x8A", "\xC3\xA9 \xC3\x85");
    expect_norm("{\"type\":\"NFD\"}", "\xC3\xA9", "e\xCC\x81");
    expect_norm("{\"type\":\"NFKC\"}", "\xEF\xAC\x81 \xEF\xBC\xA1", "fi A");
    expect_norm("{\"type\":\"NFKD\"}", "\xE2\x84\xAB", "A\xCC\x8A"); /* angstrom */
    expect_norm("{\"type\":\"Lowercase\"}", "HeLLo \xC3\x84 \xC4\xB0", "hello \xC3\xA4 i\xCC\x87");
    expect_norm("{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true}", " \t a b \xE3\x80\x80",
                "a b");
    expect_norm("{\"type\":\"Strip\",\"strip_left\":false,\"strip_right\":true}", "  a  ", "  a");
    expect_norm("{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xE2\x96\x81\"}",
                " a  b", "\xE2\x96\x81" "a" "\xE2\x96\x81\xE2\x96\x81" "b");
    expect_norm("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"\\\\s+\"},\"content\":\" \"}",
                "a \t\n b", "a b");
    expect_norm("{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"}", "hi", "\xE2\x96\x81hi");
    expect_norm("{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"}", "", "");
    expect_norm("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"},"
                "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xE2\x96\x81\"}]}",
                "a b", "\xE2\x96\x81" "a\xE2\x96\x81" "b");
    expect_norm("{\"type\":\"ByteLevel\"}", "a b\n", "a\xC4\xA0" "b\xC4\x8A");
}

/* ---- pre-tokenizers ---- */

typedef struct {
    char pieces[32][64];
    int n;
} collected;

static int collect(void *ctx, const char *s, size_t n) {
    collected *c = ctx;
    assert_true(c->n < 32 && n < 64);
    memcpy(c->pieces[c->n], s, n);
    c->pieces[c->n][n] = 0;
    c->n++;
    return 0;
}

/* want: pieces separated by '|' */
static void expect_pretok(const char *json, const char *in, int first, const char *want) {
    cJSON *j = parse(json);
    tk_pretok *pt = NULL;
    if (tk_pretok_load(j, "test", &pt)) fail_msg("%s", tn_error());
    collected c = {0};
    if (tk_pretok_run(pt, in, strlen(in), first, collect, &c)) fail_msg("%s", tn_error());
    char got[1024] = "";
    for (int i = 0; i < c.n; i++) {
        if (i) strcat(got, "|");
        strcat(got, c.pieces[i]);
    }
    if (strcmp(got, want)) fail_msg("%s on '%s': got '%s', want '%s'", json, in, got, want);
    tk_pretok_free(pt);
    cJSON_Delete(j);
}

#define SPLIT(b) "{\"type\":\"Split\",\"pattern\":{\"String\":\"-\"},\"behavior\":\"" b "\",\"invert\":false}"

/* normalizer.rs's split test. */
static void test_split_behaviours(void **state) {
    const char *s = "The-final--countdown";
    expect_pretok(SPLIT("Removed"), s, 1, "The|final|countdown");
    expect_pretok(SPLIT("Isolated"), s, 1, "The|-|final|-|-|countdown");
    expect_pretok(SPLIT("MergedWithPrevious"), s, 1, "The-|final-|-|countdown");
    expect_pretok(SPLIT("MergedWithNext"), s, 1, "The|-final|-|-countdown");
    expect_pretok(SPLIT("Contiguous"), s, 1, "The|-|final|--|countdown");
    expect_pretok(SPLIT("MergedWithNext"), "-a-", 1, "-a|-");
    expect_pretok(SPLIT("MergedWithPrevious"), "-a-", 1, "-|a-");
    expect_pretok("{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\s+\"},\"behavior\":\"Removed\","
                  "\"invert\":true}",
                  "a  b c", 1, "  | ");
    expect_pretok("{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\p{N}{1,3}\"},\"behavior\":\"Isolated\"}",
                  "x12345y", 1, "x|123|45|y");
    /* Llama 3's own pattern. */
    expect_pretok("{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|"
                  "\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
                  "\"behavior\":\"Isolated\",\"invert\":false}",
                  "I'M here  now!!\n\n  x", 1, "I|'M| here| | now|!!\n\n| | x");
}

static void test_pretokenizers(void **state) {
    /* metaspace.rs */
    const char *ms = "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"always\","
                     "\"split\":true}";
    expect_pretok(ms, "Hey friend!", 1, "\xE2\x96\x81Hey|\xE2\x96\x81" "friend!");
    expect_pretok(ms, "Hey   friend!", 1,
                  "\xE2\x96\x81Hey|\xE2\x96\x81|\xE2\x96\x81|\xE2\x96\x81" "friend!");
    const char *first = "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"first\","
                        "\"split\":false}";
    expect_pretok(first, " Hey ", 1, "\xE2\x96\x81Hey\xE2\x96\x81");
    expect_pretok(first, "how", 0, "how");
    expect_pretok(first, "how", 1, "\xE2\x96\x81how");
    expect_pretok("{\"type\":\"Metaspace\",\"replacement\":\"_\",\"add_prefix_space\":false}", "a b", 1, "a|_b");
    /* digits.rs */
    expect_pretok("{\"type\":\"Digits\",\"individual_digits\":false}", "Hey 123 friend!", 1,
                  "Hey |123| friend!");
    expect_pretok("{\"type\":\"Digits\",\"individual_digits\":true}", "Hey 123 friend!", 1,
                  "Hey |1|2|3| friend!");
    /* byte_level.rs */
    expect_pretok("{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":true}", "Hello my friend",
                  1, "\xC4\xA0Hello|\xC4\xA0my|\xC4\xA0" "friend");
    expect_pretok("{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}", "a b\n", 1,
                  "a\xC4\xA0" "b\xC4\x8A");
    expect_pretok("{\"type\":\"Whitespace\"}", "Hey man!", 1, "Hey|man|!");
    expect_pretok("{\"type\":\"WhitespaceSplit\"}", " Hey  man!\t", 1, "Hey|man!");
    expect_pretok("{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"WhitespaceSplit\"},"
                  "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":true}]}]}",
                  "ab12 c3", 1, "ab|1|2|c|3");
}

static void expect_load_error(int (*load)(const cJSON *, const char *, void *), const char *json,
                              const char *want) {
    cJSON *j = parse(json);
    void *out = NULL;
    tn_clear_error();
    assert_int_not_equal(load(j, "tokenizer.json", &out), 0);
    assert_null(out);
    if (!strstr(tn_error(), want)) fail_msg("error '%s' lacks '%s'", tn_error(), want);
    cJSON_Delete(j);
}

static int load_pretok(const cJSON *j, const char *w, void *out) { return tk_pretok_load(j, w, out); }
static int load_norm(const cJSON *j, const char *w, void *out) { return tk_norm_load(j, w, out); }
static int load_dec(const cJSON *j, const char *w, void *out) { return tk_decoder_load(j, w, out); }

static void test_unknown_components(void **state) {
    expect_load_error(load_pretok, "{\"type\":\"Punctuation\"}", "pre_tokenizer type 'Punctuation'");
    expect_load_error(load_pretok, "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\"},{\"type\":\"Nope\"}]}",
                      "'Nope'");
    expect_load_error(load_pretok, "{\"pattern\":1}", "missing field 'type'");
    expect_load_error(load_pretok, "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[a\"},\"behavior\":\"Isolated\"}",
                      "PCRE2");
    expect_load_error(load_pretok, "{\"type\":\"Split\",\"pattern\":{\"String\":\"a\"},\"behavior\":\"Sideways\"}",
                      "got 'Sideways'");
    expect_load_error(load_pretok, "{\"type\":\"Metaspace\",\"replacement\":\"ab\"}", "one character");
    expect_load_error(load_norm, "{\"type\":\"BertNormalizer\"}", "normalizer type 'BertNormalizer'");
    expect_load_error(load_norm, "{\"type\":\"Replace\",\"pattern\":{\"Other\":1},\"content\":\"\"}",
                      "expected {\"String\"");
    expect_load_error(load_dec, "{\"type\":\"WordPiece\"}", "decoder type 'WordPiece'");
    expect_load_error(load_dec, "[1]", "expected an object");
    tk_post p = {0};
    cJSON *j = parse("{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\"}},"
                     "{\"Sequence\":{\"id\":\"A\"}}],\"special_tokens\":{}}");
    assert_int_not_equal(tk_post_load(j, "tokenizer.json", &p), 0);
    assert_non_null(strstr(tn_error(), "'<s>' is not in special_tokens"));
    tk_post_free(&p);
    cJSON_Delete(j);
}

static void test_post_processors(void **state) {
    tk_post p = {0};
    cJSON *j = parse(
        "{\"type\":\"Sequence\",\"processors\":[{\"type\":\"ByteLevel\"},"
        "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
        "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"SpecialToken\":{\"id\":\"</s>\",\"type_id\":0}}],"
        "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]},"
        "\"</s>\":{\"id\":\"</s>\",\"ids\":[2,3],\"tokens\":[\"</s>\",\"x\"]}}},"
        "{\"type\":\"RobertaProcessing\",\"sep\":[\"</s>\",9],\"cls\":[\"<s>\",8]}]}");
    if (tk_post_load(j, "t", &p)) fail_msg("%s", tn_error());
    /* Each processor wraps the one before: cls <s> A </s> x sep */
    assert_int_equal(p.n_prefix, 2);
    assert_int_equal(p.prefix[0], 8);
    assert_int_equal(p.prefix[1], 1);
    assert_int_equal(p.n_suffix, 3);
    assert_int_equal(p.suffix[0], 2);
    assert_int_equal(p.suffix[1], 3);
    assert_int_equal(p.suffix[2], 9);
    tk_post_free(&p);
    cJSON_Delete(j);
}

/* ---- decoders ---- */

/* tokens and want: items separated by '|'; want is the list after decoding */
static void expect_decode(const char *json, const char *tokens, const char *want) {
    cJSON *j = parse(json);
    tk_decoder *d = NULL;
    if (tk_decoder_load(j, "test", &d)) fail_msg("%s", tn_error());
    tk_strlist l = {0};
    for (const char *p = tokens;;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        tk_strlist_add(&l, p, n);
        if (!bar) break;
        p = bar + 1;
    }
    if (tk_decoder_run(d, &l)) fail_msg("%s", tn_error());
    char got[512] = "";
    for (size_t i = 0; i < l.n; i++) {
        if (i) strcat(got, "|");
        strncat(got, l.text.p + l.off[i], l.len[i]);
    }
    if (strcmp(got, want)) fail_msg("%s on '%s': got '%s', want '%s'", json, tokens, got, want);
    tk_strlist_free(&l);
    tk_decoder_free(d);
    cJSON_Delete(j);
}

static void test_decoders(void **state) {
    /* byte_fallback.rs */
    const char *bf = "{\"type\":\"ByteFallback\"}";
    expect_decode(bf, "Hey|friend!", "Hey|friend!");
    expect_decode(bf, "<0x61>", "a");
    expect_decode(bf, "<0xE5>", FFFD);
    expect_decode(bf, "<0xE5>|<0x8f>", FFFD "|" FFFD);
    expect_decode(bf, "<0xE5>|<0x8f>|<0xab>", "\xE5\x8F\xAB");
    expect_decode(bf, "<0xE5>|<0x8f>|<0xab>|a", "\xE5\x8F\xAB|a");
    expect_decode(bf, "<0xE5>|<0x8f>|a", FFFD "|" FFFD "|a");
    expect_decode(bf, "<0xZZ>|<0x6>", "<0xZZ>|<0x6>");
    /* metaspace.rs */
    expect_decode("{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"always\"}",
                  "\xE2\x96\x81Hey|\xE2\x96\x81" "friend!", "Hey| friend!");
    expect_decode("{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"never\"}",
                  "\xE2\x96\x81Hey|\xE2\x96\x81" "friend!", " Hey| friend!");
    /* strip.rs: start/stop counts of one character */
    expect_decode("{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}", "  a |b", " a |b");
    expect_decode("{\"type\":\"Strip\",\"content\":\"x\",\"start\":0,\"stop\":2}", "axxx", "ax");
    expect_decode("{\"type\":\"Fuse\"}", "a|b|c", "abc");
    expect_decode("{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xE2\x96\x81\"},\"content\":\" \"}",
                  "\xE2\x96\x81" "a|b\xE2\x96\x81", " a|b ");
    expect_decode("{\"type\":\"ByteLevel\"}", "\xC4\xA0Hello|\xC4\xA0world\xC4\x8A", " Hello world\n");
    /* Bytes that are not UTF-8 become U+FFFD; a token outside the table passes as is. */
    expect_decode("{\"type\":\"ByteLevel\"}", "\xC3\xA2|<|\xE6\x97\xA5", FFFD "<\xE6\x97\xA5");
    expect_decode("{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":"
                  "\"\xE2\x96\x81\"},\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},"
                  "{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]}",
                  "\xE2\x96\x81Hi|<0x0A>|\xE2\x96\x81there", "Hi\n there");
}

/* ---- added tokens ---- */

typedef struct {
    char text[16][64];
    int32_t id[16];
    int n;
} segments;

static int collect_seg(void *ctx, const char *s, size_t n, size_t off, int32_t id) {
    segments *g = ctx;
    assert_true(g->n < 16 && n < 64);
    memcpy(g->text[g->n], s, n);
    g->text[g->n][n] = 0;
    g->id[g->n++] = id;
    return 0;
}

static tk_added tok(const char *content, int32_t id, int special, int lstrip, int rstrip, int single) {
    tk_added a = {(char *)content, strlen(content), id, special, lstrip, rstrip, single, !special};
    return a;
}

static void expect_split(const tk_trie *t, const char *in, const char *want) {
    segments g = {0};
    if (tk_trie_split(t, in, strlen(in), collect_seg, &g)) fail_msg("%s", tn_error());
    char got[512] = "";
    for (int i = 0; i < g.n; i++) {
        char one[96];
        snprintf(one, sizeof one, "%s%s=%d", i ? "|" : "", g.text[i], g.id[i]);
        strcat(got, one);
    }
    if (strcmp(got, want)) fail_msg("'%s': got '%s', want '%s'", in, got, want);
}

/* added_vocabulary.rs: options_use_cases, test_single_word_is_correct,
 * test_lstrip_unicode_space (the text already lowercased). */
static void test_added_tokens(void **state) {
    tk_added a[] = {tok("my", 0, 0, 1, 1, 0), tok("name", 1, 0, 0, 0, 0), tok("ony", 2, 0, 0, 0, 1),
                    tok("[CLS]", 3, 1, 0, 0, 0), tok("[SEP]", 4, 1, 0, 0, 0)};
    tk_trie raw, norm;
    assert_int_equal(tk_trie_build(&raw, a, 5, 0, NULL), 0);
    assert_int_equal(tk_trie_build(&norm, a, 5, 1, NULL), 0);
    expect_split(&raw, "[CLS] My name is Anthony [SEP]", "[CLS]=3| My name is Anthony =-1|[SEP]=4");
    expect_split(&norm, " my name is anthony ", " my =0|name=1| is anthony =-1");
    tk_trie_free(&raw);
    tk_trie_free(&norm);

    tk_added m[] = {tok("<mask>", 0, 0, 0, 0, 1)};
    assert_int_equal(tk_trie_build(&norm, m, 1, 1, NULL), 0);
    expect_split(&norm, "<mask> my name <mask> a<mask> <mask>ony <mask>",
                 "<mask>=0| my name =-1|<mask>=0| a<mask> <mask>ony =-1|<mask>=0");
    expect_split(&norm, "<mask>, <mask>- \xE2\x97\x8C\xCC\xB0<mask>",
                 "<mask>=0|, =-1|<mask>=0|- \xE2\x97\x8C\xCC\xB0<mask>=-1");
    tk_trie_free(&norm);

    tk_added l[] = {tok("<mask>", 0, 0, 1, 1, 1)};
    assert_int_equal(tk_trie_build(&norm, l, 1, 1, NULL), 0);
    expect_split(&norm, "hi <mask> there\t<mask>\t<mask>\xE2\x80\x80",
                 "hi=-1| <mask> =0|there=-1|\t<mask>\t=0|<mask>\xE2\x80\x80=0");
    tk_trie_free(&norm);

    /* Leftmost first, then longest; matching resumes after a match. */
    tk_added o[] = {tok("ab", 0, 1, 0, 0, 0), tok("abc", 1, 1, 0, 0, 0), tok("bcd", 2, 1, 0, 0, 0),
                    tok("\n", 3, 0, 0, 0, 0), tok("\n\n", 4, 0, 0, 0, 0)};
    for (int i = 3; i < 5; i++) o[i].normalized = 0;
    assert_int_equal(tk_trie_build(&raw, o, 5, 0, NULL), 0);
    expect_split(&raw, "xabcd", "x=-1|abc=1|d=-1");
    expect_split(&raw, "xbcdab", "x=-1|bcd=2|ab=0");
    expect_split(&raw, "a\n\n\nb", "a=-1|\n\n=4|\n=3|b=-1");
    expect_split(&raw, "", "");
    tk_trie_free(&raw);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_sanitize),    cmocka_unit_test(test_bytelevel_table),
        cmocka_unit_test(test_char_classes),     cmocka_unit_test(test_normalizers),
        cmocka_unit_test(test_split_behaviours), cmocka_unit_test(test_pretokenizers),
        cmocka_unit_test(test_unknown_components), cmocka_unit_test(test_post_processors),
        cmocka_unit_test(test_decoders),         cmocka_unit_test(test_added_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
