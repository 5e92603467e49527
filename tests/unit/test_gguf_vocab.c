/* test_gguf_vocab.c - tokenizers read from GGUF metadata
 * (text/gguf_tokenizer.h) against references:
 *
 * 1. llama.cpp's own tokenizer test vectors: models/ggml-vocab-*.gguf with
 *    .inp (texts) and .out (the ids Hugging Face's tokenizers give,
 *    encode(text, add_special_tokens=False)), from the source bundle that
 *    node-llama-cpp ships (llama/gitRelease.bundle, checked out into a
 *    temporary folder; TUNE_LLAMA_SRC may name a checkout instead). Prints
 *    matched/total per vocabulary and requires every supported one to match
 *    exactly; WordPiece (bert) must be refused with a message. Without the
 *    bundle the part is skipped (it says so).
 * 2. Each dense fixture's tokenizer, exported into a GGUF by tune export and
 *    read back: the same ids as the fixture's tokenizer.json for every case
 *    of tokenizer_tests.json and the rendered chat, with and without special
 *    tokens, the same decoded text, and the chat template rendering the
 *    fixture's chat exactly. */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/chat.h"
#include "export/export.h"
#include "io/gguf_read.h"
#include "io/json.h"
#include "text/gguf_tokenizer.h"
#include "util/error.h"
#include "util/platform.h"

static char tmp[256];       /* this test's scratch folder */
static char models[4400];   /* llama.cpp's models/ folder, or "" */

static const char *root(void) {
    const char *r = getenv("TUNE_ROOT");
    return r && *r ? r : ".";
}

static int setup(void **state) {
    (void)state;
    snprintf(tmp, sizeof tmp, "/tmp/tune-gguf-vocab-%d", (int)getpid());
    if (tn_make_dirs(tmp)) return -1;
    const char *src = getenv("TUNE_LLAMA_SRC");
    if (src && *src) {
        snprintf(models, sizeof models, "%s/models", src);
        return 0;
    }
    char bundle[4200], cmd[9000];
    snprintf(bundle, sizeof bundle, "%s/node_modules/node-llama-cpp/llama/gitRelease.bundle", root());
    if (!tn_file_exists(bundle)) {
        fprintf(stderr, "test_gguf_vocab: %s not found (run scripts/setup.sh); skipping llama.cpp's test vectors\n", bundle);
        return 0;
    }
    snprintf(cmd, sizeof cmd,
             "git clone -q --no-checkout '%s' '%s/llama' 2>/dev/null && git -C '%s/llama' checkout -q HEAD -- 'models/ggml-vocab-*'", bundle,
             tmp, tmp);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_gguf_vocab: could not check out models/ from %s\n", bundle);
        return -1;
    }
    snprintf(models, sizeof models, "%s/llama/models", tmp);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* Runs one vocabulary's vectors; returns matched, sets *total (-1 when the
 * vocabulary has no vectors). */
static int run_vectors(const char *name, int *total, char *why, size_t why_cap) {
    char path[4600], p2[4700];
    snprintf(path, sizeof path, "%s/ggml-vocab-%s.gguf", models, name);
    *total = -1;
    why[0] = 0;
    tn_gguf g;
    if (tn_gguf_open(path, &g)) {
        snprintf(why, why_cap, "%s", tn_error());
        return 0;
    }
    tn_tokenizer *t = tn_gguf_tokenizer_load(&g);
    tn_gguf_close(&g);
    if (!t) {
        snprintf(why, why_cap, "%s", tn_error());
        return 0;
    }
    size_t ni, no;
    snprintf(p2, sizeof p2, "%s.inp", path);
    char *inp = tn_file_exists(p2) ? tn_read_file(p2, 1 << 24, &ni) : NULL;
    snprintf(p2, sizeof p2, "%s.out", path);
    char *out = tn_file_exists(p2) ? tn_read_file(p2, 1 << 24, &no) : NULL;
    int ok = 0;
    if (inp && out) {
        *total = 0;
        const char *sep = "\n__ggml_vocab_test__\n";
        char *ip = inp, *op = out;
        while (*ip) {
            char *e = strstr(ip, sep), *ol = strchr(op, '\n');
            if (!e || !ol) break;
            *ol = 0;
            tn_ids ids = {0};
            assert_int_equal(tn_tokenizer_encode(t, ip, (size_t)(e - ip), 0, &ids), 0);
            /* the expected ids, as test-tokenizer-0 reads them (spaces around stripped) */
            int same = 1;
            size_t k = 0;
            for (char *q = op; *q;) {
                while (*q == ' ' || *q == '\r') q++;
                if (!*q) break;
                long v = strtol(q, &q, 10);
                if (k >= ids.n || ids.ids[k] != v) same = 0;
                k++;
            }
            if (k != ids.n) same = 0;
            if (same) ok++;
            else fprintf(stderr, "  %s: mismatch on '%.*s'\n", name, (int)(e - ip > 60 ? 60 : e - ip), ip);
            (*total)++;
            tn_ids_free(&ids);
            ip = e + strlen(sep);
            op = ol + 1;
        }
    }
    free(inp);
    free(out);
    tn_tokenizer_free(t);
    return ok;
}

static void test_llama_cpp_vectors(void **state) {
    (void)state;
    if (!models[0]) skip();
    /* Every vocabulary of the bundle: with vectors, all must match; the
     * unsupported tokenizer models must be refused by name. */
    static const struct {
        const char *name;
        const char *refused; /* message fragment, or NULL */
    } vocabs[] = {
        {"llama-spm", NULL}, {"llama-bpe", NULL}, {"qwen2", NULL},  {"qwen35", NULL},    {"refact", NULL},         {"starcoder", NULL},
        {"gpt-2", NULL},     {"mpt", NULL},       {"falcon", NULL}, {"command-r", NULL}, {"deepseek-llm", NULL},   {"deepseek-coder", NULL},
        {"phi-3", NULL},     {"gemma-4", NULL},   {"aquila", NULL}, {"baichuan", NULL},  {"gpt-neox", NULL},
        {"bert-bge", "tokenizer.ggml.model 'bert' (WordPiece) is not supported"},
        {"nomic-bert-moe", "tokenizer.ggml.model 't5' (Unigram) is not supported"},
    };
    int all_ok = 1;
    for (size_t i = 0; i < sizeof vocabs / sizeof vocabs[0]; i++) {
        int total;
        char why[2048];
        double t0 = tn_seconds();
        int ok = run_vectors(vocabs[i].name, &total, why, sizeof why);
        if (vocabs[i].refused) {
            fprintf(stderr, "test_gguf_vocab: %-15s refused: %s\n", vocabs[i].name, why);
            if (!strstr(why, vocabs[i].refused)) all_ok = 0;
            continue;
        }
        if (why[0]) {
            fprintf(stderr, "test_gguf_vocab: %-15s FAILED to load: %s\n", vocabs[i].name, why);
            all_ok = 0;
        } else if (total < 0) {
            fprintf(stderr, "test_gguf_vocab: %-15s loads (no test vectors in the bundle)\n", vocabs[i].name);
        } else {
            fprintf(stderr, "test_gguf_vocab: %-15s %d/%d matched (%.1f s)\n", vocabs[i].name, ok, total, tn_seconds() - t0);
            if (ok != total || total == 0) all_ok = 0;
        }
    }
    assert_true(all_ok);
}

/* ---- the fixtures' tokenizers through GGUF ---- */

static void encode_same(tn_tokenizer *a, tn_tokenizer *b, const char *text, const char *family) {
    for (int sp = 0; sp < 2; sp++) {
        tn_ids x = {0}, y = {0};
        assert_int_equal(tn_tokenizer_encode(a, text, strlen(text), sp, &x), 0);
        assert_int_equal(tn_tokenizer_encode(b, text, strlen(text), sp, &y), 0);
        if (x.n != y.n || (x.n && memcmp(x.ids, y.ids, x.n * sizeof *x.ids)))
            fail_msg("%s: ids differ (add_special %d) on '%.60s'", family, sp, text);
        char *da = NULL, *db = NULL;
        size_t la = 0, lb = 0;
        assert_int_equal(tn_tokenizer_decode(a, y.ids, y.n, 0, &da, &la), 0);
        assert_int_equal(tn_tokenizer_decode(b, y.ids, y.n, 0, &db, &lb), 0);
        if (la != lb || (la && memcmp(da, db, la))) fail_msg("%s: decoded text differs on '%.60s'", family, text);
        free(da), free(db);
        tn_ids_free(&x), tn_ids_free(&y);
    }
}

static void test_fixture_round_trip(void **state) {
    (void)state;
    static const char *const families[] = {"llama", "mistral", "qwen2", "gemma2", "granite", "llama-wide"};
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        char fx[4200], gguf[512], dir[512], p[4400];
        snprintf(fx, sizeof fx, "%s/tests/fixtures/%s", root(), families[f]);
        snprintf(gguf, sizeof gguf, "%s/%s.gguf", tmp, families[f]);
        snprintf(dir, sizeof dir, "%s/%s.tok", tmp, families[f]);
        tn_export_job *job;
        if (tn_gguf_export_prepare(&job, fx, NULL, gguf, TN_FT_F32) || tn_export_run(job)) fail_msg("export %s: %s", families[f], tn_error());
        tn_export_free(job);
        tn_gguf g;
        assert_int_equal(tn_gguf_open(gguf, &g), 0);
        assert_int_equal(tn_make_dirs(dir), 0);
        if (tn_gguf_write_tokenizer(&g, dir)) fail_msg("%s: %s", families[f], tn_error());
        tn_gguf_close(&g);
        tn_tokenizer *a = tn_tokenizer_load(dir), *b = tn_tokenizer_load(fx);
        assert_non_null(a);
        assert_non_null(b);
        snprintf(p, sizeof p, "%s/tokenizer_tests.json", fx);
        cJSON *tests = tn_json_parse_file(p, 1 << 24);
        assert_non_null(tests);
        const cJSON *c;
        int n = 0;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(tests, "cases")) {
            encode_same(a, b, cJSON_GetObjectItem(c, "text")->valuestring, families[f]);
            n++;
        }
        const cJSON *chat = cJSON_GetObjectItem(tests, "chat");
        const char *chat_text = cJSON_GetStringValue(cJSON_GetObjectItem(chat, "text"));
        if (chat_text) encode_same(a, b, chat_text, families[f]);
        /* special ids */
        for (int r = 0; r < 4; r++)
            if (tn_tokenizer_special_id(b, (tn_special_role)r) >= 0 && r != TN_TOK_PAD)
                assert_int_equal(tn_tokenizer_special_id(a, (tn_special_role)r), tn_tokenizer_special_id(b, (tn_special_role)r));
        /* the chat template renders the fixture's chat */
        if (chat_text) {
            tn_chat *ch = tn_chat_load(dir);
            assert_non_null(ch);
            assert_true(tn_chat_has_template(ch));
            const cJSON *extra = cJSON_GetObjectItem(chat, "extra_context"), *e;
            cJSON_ArrayForEach(e, extra) {
                char *js = cJSON_PrintUnformatted(e);
                assert_int_equal(tn_chat_set_var(ch, e->string, js, strlen(js)), 0);
                free(js);
            }
            char *msgs = cJSON_PrintUnformatted(cJSON_GetObjectItem(chat, "messages"));
            size_t len;
            char *out = tn_chat_render(ch, msgs, strlen(msgs), NULL, 0, cJSON_IsTrue(cJSON_GetObjectItem(chat, "add_generation_prompt")), &len);
            if (!out) fail_msg("%s: chat render: %s", families[f], tn_error());
            if (strcmp(out, chat_text)) fail_msg("%s: the GGUF's chat template renders\n%s\ninstead of\n%s", families[f], out, chat_text);
            free(out), free(msgs);
            tn_chat_free(ch);
        }
        fprintf(stderr, "test_gguf_vocab: %-10s through GGUF: %d cases + chat, same ids, text and template\n", families[f], n);
        cJSON_Delete(tests);
        tn_tokenizer_free(a), tn_tokenizer_free(b);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_cpp_vectors),
        cmocka_unit_test(test_fixture_round_trip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
