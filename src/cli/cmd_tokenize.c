/* cmd_tokenize.c - `tune tokenize MODEL` and `tune detokenize MODEL`
 * (design/CLI.md): stdin verbatim -> one JSON array of ids (or of token
 * strings); a JSON array of ids -> the text. --jsonl does many at once, one
 * JSON value per line, for tests and scripts that would otherwise load the
 * tokenizer once per string. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "io/json.h"
#include "text/tokenizer.h"
#include "util/error.h"
#include "util/platform.h"

static const char tok_help[] =
    "usage: tune tokenize MODEL [--no-special] [--tokens] [--jsonl]\n\n"
    "Reads stdin verbatim (a trailing newline is text) and prints one JSON array of\n"
    "token ids, identical to Hugging Face tokenizers' encode(text).ids. MODEL is a\n"
    "folder with tokenizer.json (and tokenizer_config.json), or a tokenizer.json.\n"
    "Special tokens written in the text are always recognised. Invalid UTF-8 is\n"
    "replaced by U+FFFD first (one per maximal invalid sequence).\n\n"
    "options:\n"
    "  --model MODEL   the model, instead of the positional argument\n"
    "  --no-special    add no BOS/EOS from the post-processor (add_special_tokens=False)\n"
    "  --tokens        print token strings instead of ids\n"
    "  --jsonl         each stdin line is a JSON string, or an object with \"text\" (a\n"
    "                  string) or \"hex\" (the bytes in hex, for NUL or invalid UTF-8);\n"
    "                  prints one array per line\n"
    "  --stats         print load and encode times and MB/s on stderr\n";

static const char detok_help[] =
    "usage: tune detokenize MODEL [--skip-special] [--jsonl]\n\n"
    "Reads a JSON array of token ids from stdin and prints the text they decode to,\n"
    "as Hugging Face tokenizers' decode(ids) does, with nothing added.\n\n"
    "options:\n"
    "  --model MODEL    the model, instead of the positional argument\n"
    "  --skip-special   leave out special tokens (skip_special_tokens=True)\n"
    "  --jsonl          each stdin line is a JSON array of ids; prints one JSON string\n"
    "                   per line\n";

static int fail_usage(void) {
    fprintf(stderr, "tune: %s\n", tn_error());
    return TN_EXIT_USAGE;
}

static char *read_stdin(size_t *n) {
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        tn_fail("out of memory reading stdin");
        return NULL;
    }
    for (;;) {
        if (len == cap) {
            cap *= 2;
            char *p = realloc(buf, cap + 1);
            if (!p) {
                free(buf);
                tn_fail("out of memory reading stdin (%zu bytes so far)", len);
                return NULL;
            }
            buf = p;
        }
        size_t k = fread(buf + len, 1, cap - len, stdin);
        len += k;
        if (k == 0) break;
    }
    if (ferror(stdin)) {
        free(buf);
        tn_fail("stdin: read error");
        return NULL;
    }
    buf[len] = 0;
    *n = len;
    return buf;
}

/* A JSON string of valid UTF-8 text. */
static void put_json_string(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        default:
            if (c < 0x20 || c == 0x7F) fprintf(f, "\\u%04x", c);
            else fputc(c, f);
        }
    }
    fputc('"', f);
}

static void put_ids(FILE *f, const tn_tokenizer *t, const tn_ids *ids, int tokens) {
    if (tokens) {
        fputc('[', f);
        for (size_t i = 0; i < ids->n; i++) {
            if (i) fputs(", ", f);
            size_t len = 0;
            const char *s = tn_tokenizer_token(t, ids->ids[i], &len);
            put_json_string(f, s ? s : "", s ? len : 0);
        }
        fputs("]\n", f);
        return;
    }
    /* Ids by hand: printf would take longer than the tokenizing. */
    char buf[4096];
    size_t k = 0;
    buf[k++] = '[';
    for (size_t i = 0; i < ids->n; i++) {
        if (k > sizeof buf - 16) {
            fwrite(buf, 1, k, f);
            k = 0;
        }
        if (i) {
            buf[k++] = ',';
            buf[k++] = ' ';
        }
        char d[12];
        int nd = 0;
        uint32_t v = (uint32_t)ids->ids[i];
        do d[nd++] = (char)('0' + v % 10);
        while ((v /= 10));
        while (nd) buf[k++] = d[--nd];
    }
    buf[k++] = ']';
    buf[k++] = '\n';
    fwrite(buf, 1, k, f);
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* One --jsonl line of `tokenize` -> its bytes (malloc'd). */
static char *line_text(const char *line, size_t n, long lineno, size_t *len) {
    cJSON *j = cJSON_ParseWithLength(line, n);
    char *out = NULL;
    if (!j) {
        tn_fail("stdin:%ld: not valid JSON (expected a string or {\"text\"|\"hex\": ...})", lineno);
        return NULL;
    }
    const cJSON *v = j, *hex = NULL;
    if (cJSON_IsObject(j)) {
        v = cJSON_GetObjectItemCaseSensitive(j, "text");
        hex = cJSON_GetObjectItemCaseSensitive(j, "hex");
    }
    if (cJSON_IsString(v)) {
        /* cJSON keeps the string's length only through strlen: \u0000 ends it. */
        out = tn_strdup(v->valuestring);
        if (out) *len = strlen(out);
    } else if (cJSON_IsString(hex)) {
        size_t hn = strlen(hex->valuestring);
        out = malloc(hn / 2 + 1);
        if (!out) {
            tn_fail("out of memory");
        } else if (hn % 2) {
            tn_fail("stdin:%ld: \"hex\": expected an even number of hex digits", lineno);
            free(out);
            out = NULL;
        } else {
            for (size_t i = 0; i < hn / 2; i++) {
                int h = hexval(hex->valuestring[2 * i]), l = hexval(hex->valuestring[2 * i + 1]);
                if (h < 0 || l < 0) {
                    tn_fail("stdin:%ld: \"hex\": expected hex digits", lineno);
                    free(out);
                    out = NULL;
                    break;
                }
                out[i] = (char)(h * 16 + l);
            }
            if (out) *len = hn / 2;
        }
    } else {
        tn_fail("stdin:%ld: expected a JSON string or an object with \"text\" or \"hex\"", lineno);
    }
    cJSON_Delete(j);
    return out;
}

typedef int (*line_fn)(void *ctx, const char *line, size_t n, long lineno);

/* Calls fn for each non-empty stdin line (without its newline). */
static int each_line(line_fn fn, void *ctx) {
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int rc = 0;
    for (;;) {
        /* getline is POSIX 2008, not C11: read by hand. */
        size_t n = 0;
        int c;
        while ((c = getchar()) != EOF && c != '\n') {
            if (n + 1 >= cap) {
                size_t nc = cap ? cap * 2 : 4096;
                char *p = realloc(line, nc);
                if (!p) {
                    free(line);
                    return tn_fail("out of memory reading stdin");
                }
                line = p;
                cap = nc;
            }
            line[n++] = (char)c;
        }
        if (c == EOF && n == 0) break;
        lineno++;
        if (n && (rc = fn(ctx, line, n, lineno))) break;
        if (c == EOF) break;
    }
    free(line);
    return rc;
}

typedef struct {
    tn_tokenizer *t;
    int add_special, tokens;
} tok_ctx;

static int tokenize_line(void *c, const char *line, size_t n, long lineno) {
    tok_ctx *tc = c;
    size_t len = 0;
    char *text = line_text(line, n, lineno, &len);
    if (!text) return TN_EXIT_USAGE;
    tn_ids ids = {0};
    int rc = tn_tokenizer_encode(tc->t, text, len, tc->add_special, &ids);
    free(text);
    if (rc) {
        tn_fail_prefix("stdin:%ld", lineno);
        tn_ids_free(&ids);
        return TN_EXIT_FAILED;
    }
    put_ids(stdout, tc->t, &ids, tc->tokens);
    tn_ids_free(&ids);
    return 0;
}

/* MODEL as the positional argument or --model. */
static int model_arg(tn_args *a, const char **model) {
    const char *v;
    if (tn_arg_value(a, "--model", &v) || tn_arg_positional(a, &v)) {
        if (!v) return 1;
        if (*model) {
            tn_fail("tune %s: more than one model given ('%s' and '%s')", a->cmd, *model, v);
            a->failed = 1;
            return 1;
        }
        *model = v;
        return 1;
    }
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    tn_args a = tn_args_start(argc, argv, "tokenize");
    const char *model = NULL;
    int add_special = 1, tokens = 0, jsonl = 0, stats = 0;
    while (tn_args_next(&a)) {
        if (tn_arg_flag(&a, "--help") || tn_arg_flag(&a, "-h")) {
            fputs(tok_help, stdout);
            return TN_EXIT_OK;
        } else if (tn_arg_flag(&a, "--no-special")) add_special = 0;
        else if (tn_arg_flag(&a, "--tokens")) tokens = 1;
        else if (tn_arg_flag(&a, "--jsonl")) jsonl = 1;
        else if (tn_arg_flag(&a, "--stats")) stats = 1;
        else if (!model_arg(&a, &model)) tn_arg_unknown(&a);
    }
    if (a.failed) return fail_usage();
    if (!model) return fprintf(stderr, "tune tokenize: no model given\n%s", tok_help), TN_EXIT_USAGE;
    double t0 = tn_seconds();
    tn_tokenizer *t = tn_tokenizer_load(model);
    if (!t) return fail_usage();
    double t_load = tn_seconds() - t0;
    int rc = TN_EXIT_OK;
    if (jsonl) {
        tok_ctx c = {t, add_special, tokens};
        rc = each_line(tokenize_line, &c);
        if (rc < 0) rc = TN_EXIT_USAGE;
    } else {
        size_t n = 0;
        char *text = read_stdin(&n);
        tn_ids ids = {0};
        double t1 = tn_seconds();
        if (!text) rc = TN_EXIT_USAGE;
        else if (tn_tokenizer_encode(t, text, n, add_special, &ids)) rc = TN_EXIT_FAILED;
        double t_enc = tn_seconds() - t1;
        if (!rc && stats)
            fprintf(stderr, "tokenize: loaded in %.3f s; %.2f MB -> %zu tokens in %.3f s (%.1f MB/s)\n",
                    t_load, n / 1e6, ids.n, t_enc, t_enc > 0 ? n / 1e6 / t_enc : 0.0);
        if (!rc) put_ids(stdout, t, &ids, tokens);
        free(text);
        tn_ids_free(&ids);
    }
    if (rc) fprintf(stderr, "tune: %s\n", tn_error());
    tn_tokenizer_free(t);
    if (fflush(stdout)) rc = TN_EXIT_FAILED;
    return rc;
}

/* A JSON array of ids (where names it in errors) -> the decoded text. */
static int decode_json(tn_tokenizer *t, const char *text, size_t n, const char *where,
                       int skip_special, char **out, size_t *out_n) {
    cJSON *j = tn_json_parse(text, n, where);
    if (!j) return TN_EXIT_USAGE;
    int rc = TN_EXIT_OK;
    tn_ids ids = {0};
    if (!cJSON_IsArray(j)) {
        tn_fail("%s: expected a JSON array of token ids, got %s", where, tn_json_type_name(j));
        rc = TN_EXIT_USAGE;
    }
    const cJSON *it;
    int k = 0;
    cJSON_ArrayForEach(it, j) {
        if (rc) break;
        int64_t id;
        char what[48];
        snprintf(what, sizeof what, "item %d", k++);
        if (tn_json_as_int(it, what, where, 0, INT32_MAX, &id) || tn_ids_push(&ids, (int32_t)id))
            rc = TN_EXIT_USAGE;
    }
    if (!rc && tn_tokenizer_decode(t, ids.ids, ids.n, skip_special, out, out_n)) {
        tn_fail_prefix("%s", where);
        rc = TN_EXIT_USAGE;
    }
    tn_ids_free(&ids);
    cJSON_Delete(j);
    return rc;
}

typedef struct {
    tn_tokenizer *t;
    int skip_special;
} detok_ctx;

static int detokenize_line(void *c, const char *line, size_t n, long lineno) {
    detok_ctx *dc = c;
    char where[48], *text;
    size_t len;
    snprintf(where, sizeof where, "stdin:%ld", lineno);
    int rc = decode_json(dc->t, line, n, where, dc->skip_special, &text, &len);
    if (rc) return rc;
    put_json_string(stdout, text, len);
    fputc('\n', stdout);
    free(text);
    return 0;
}

int cmd_detokenize(int argc, char **argv) {
    tn_args a = tn_args_start(argc, argv, "detokenize");
    const char *model = NULL;
    int skip_special = 0, jsonl = 0;
    while (tn_args_next(&a)) {
        if (tn_arg_flag(&a, "--help") || tn_arg_flag(&a, "-h")) {
            fputs(detok_help, stdout);
            return TN_EXIT_OK;
        } else if (tn_arg_flag(&a, "--skip-special")) skip_special = 1;
        else if (tn_arg_flag(&a, "--jsonl")) jsonl = 1;
        else if (!model_arg(&a, &model)) tn_arg_unknown(&a);
    }
    if (a.failed) return fail_usage();
    if (!model)
        return fprintf(stderr, "tune detokenize: no model given\n%s", detok_help), TN_EXIT_USAGE;
    tn_tokenizer *t = tn_tokenizer_load(model);
    if (!t) return fail_usage();
    int rc;
    if (jsonl) {
        detok_ctx c = {t, skip_special};
        rc = each_line(detokenize_line, &c);
        if (rc < 0) rc = TN_EXIT_USAGE;
    } else {
        size_t n, len;
        char *in = read_stdin(&n), *text = NULL;
        rc = !in ? TN_EXIT_USAGE : decode_json(t, in, n, "stdin", skip_special, &text, &len);
        if (!rc) fwrite(text, 1, len, stdout);
        free(in);
        free(text);
    }
    if (rc) fprintf(stderr, "tune: %s\n", tn_error());
    tn_tokenizer_free(t);
    if (fflush(stdout)) rc = TN_EXIT_FAILED;
    return rc;
}
