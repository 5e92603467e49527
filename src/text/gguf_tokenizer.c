/* gguf_tokenizer.c - GGUF tokenizer metadata -> tokenizer.json and friends
 * (see gguf_tokenizer.h). The JSON is written as text (a 262k vocabulary
 * and 515k merges are too many for a DOM). Sources: llama.cpp's
 * src/llama-vocab.cpp (what each tokenizer.ggml.pre means, token types,
 * defaults) and transformers' convert_slow_tokenizer.py (merges from
 * SentencePiece scores). */
#define _POSIX_C_SOURCE 200809L
#include "text/gguf_tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/atomic_file.h"
#include "util/error.h"
#include "util/platform.h"

enum { TOK_NORMAL = 1, TOK_UNKNOWN = 2, TOK_CONTROL = 3, TOK_USER_DEFINED = 4, TOK_UNUSED = 5, TOK_BYTE = 6 };

/* ---- a growing text buffer ---- */

typedef struct {
    char *p;
    size_t n, cap;
    int failed;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            tn_fail("out of memory (tokenizer.json of %zu bytes)", cap);
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_cat(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sb_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A JSON string literal of s[0..n) (valid UTF-8, checked by the caller). */
static void sb_json(sbuf *b, const char *s, size_t n) {
    sb_add(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        sb_add(b, s + run, i - run);
        run = i + 1;
        char esc[8];
        if (c == '"') sb_add(b, "\\\"", 2);
        else if (c == '\\') sb_add(b, "\\\\", 2);
        else if (c == '\n') sb_add(b, "\\n", 2);
        else if (c == '\r') sb_add(b, "\\r", 2);
        else if (c == '\t') sb_add(b, "\\t", 2);
        else {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_add(b, esc, 6);
        }
    }
    sb_add(b, s + run, n - run);
    sb_add(b, "\"", 1);
}

static void sb_jstr(sbuf *b, const char *s) { sb_json(b, s, strlen(s)); }

/* Whether s[0..n) is valid UTF-8 (shortest forms, no surrogates). */
static int utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
        if (!len || c > 0xF4 || i + (size_t)len > n) return 0;
        for (int k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[i + 1] < 0xA0) return 0;
        if (c == 0xED && s[i + 1] >= 0xA0) return 0;
        if (c == 0xF0 && s[i + 1] < 0x90) return 0;
        if (c == 0xF4 && s[i + 1] >= 0x90) return 0;
        i += (size_t)len;
    }
    return 1;
}

/* Code points in s[0..n) (valid UTF-8). */
static size_t utf8_chars(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

/* ---- what each tokenizer.ggml.pre means ---- */

typedef enum { S_END, S_SPLIT, S_DIGITS, S_DIGITS_GROUPED, S_BYTELEVEL_RE, S_PUNCT } step_kind;

typedef struct {
    step_kind kind;
    const char *regex;
} step;

typedef struct {
    const char *names[12];
    int nfc;           /* Hugging Face's tokenizer has an NFC normalizer */
    int ignore_merges; /* a pre-token that is a token is that token (llama.cpp's ignore_merges) */
    int add_bos;       /* llama.cpp's default when add_bos_token is absent */
    step steps[8];     /* then ByteLevel (without its regex) unless a step used it */
} pre_entry;

/* Hugging Face's originals where llama.cpp adapted them for std::regex. */
#define RE_LLAMA3 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN35                                                                                                           \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|" \
    "\\s+(?!\\S)|\\s+"
#define RE_TEKKEN                                                                                                            \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}" \
    "\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_GPT4O                                                                                                             \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n"  \
    "\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?"    \
    "[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_PORO " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+"
#define SPLIT(r) {S_SPLIT, r}
#define BYTELEVEL_RE {S_BYTELEVEL_RE, NULL}
#define DIGITS {S_DIGITS, NULL}

static const pre_entry pre_table[] = {
    {{"llama-bpe", "llama3", "llama-v3", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"}, 0, 1, 1, {SPLIT(RE_LLAMA3)}},
    {{"dbrx", "smaug-bpe", "glm4", "chatglm-bpe"}, 0, 0, 0, {SPLIT(RE_LLAMA3)}},
    {{"qwen2", "deepseek-r1-qwen"}, 1, 0, 0, {SPLIT(RE_QWEN2)}},
    {{"qwen35"}, 0, 0, 0, {SPLIT(RE_QWEN35)}}, /* no normalizer: decomposed accents stay apart (the test vectors) */
    {{"kormo", "f2llmv2", "stablelm2", "megrez", "grok-2", "hunyuan", "solar-open"}, 0, 0, 0, {SPLIT(RE_QWEN2)}},
    {{"tekken"}, 0, 1, 1, {SPLIT(RE_TEKKEN)}},
    {{"gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"}, 0, 0, 0, {SPLIT(RE_GPT4O)}},
    {{"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum", "modern-bert", "exaone4"},
     0, 0, 0, {BYTELEVEL_RE}},
    {{"jina-v1-en", "jina-v2-code", "roberta-bpe", "jais", "trillion", "granite-docling"}, 0, 0, 0, {BYTELEVEL_RE}},
    /* GPT-NeoX's tokenizer (MPT, OLMo) normalizes to NFC. */
    {{"mpt", "olmo"}, 1, 0, 0, {BYTELEVEL_RE}},
    {{"starcoder", "refact", "smollm", "codeshell", "exaone", "minerva-7b"}, 0, 0, 0, {DIGITS, BYTELEVEL_RE}},
    /* Cohere's tokenizer normalizes to NFC. */
    {{"command-r"}, 1, 0, 0, {DIGITS, BYTELEVEL_RE}},
    {{"falcon"}, 0, 0, 0, {{S_PUNCT, NULL}, BYTELEVEL_RE, {S_DIGITS_GROUPED, NULL}, SPLIT("[0-9][0-9][0-9]")}},
    {{"deepseek-llm"},
     0,
     0,
     0,
     {SPLIT("[\r\n]"),
      SPLIT("\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+"),
      SPLIT("\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+"), SPLIT("\\s+$"), SPLIT("[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"), DIGITS}},
    {{"deepseek-coder"}, 0, 0, 0, {SPLIT("[\r\n]"), SPLIT("\\s?\\p{L}+"), SPLIT("\\s?\\p{P}+"), SPLIT("[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"), DIGITS}},
    {{"deepseek-v3", "hunyuan-dense", "joyai-llm"},
     0,
     0,
     0,
     {SPLIT("\\p{N}{1,3}"), SPLIT("[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+"),
      SPLIT("[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|"
            "\\s*[\r\n]+|\\s+(?!\\S)|\\s+")}},
    {{"seed-coder"},
     0,
     0,
     0,
     {SPLIT("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\r\n]+|\\s*[\r\n]+|\\s+(?!\\S)|\\s+")}},
    {{"bailingmoe", "bailingmoe2", "llada-moe"},
     0,
     0,
     0,
     {SPLIT("'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+")}},
    {{"tiny_aya", "cohere2moe"}, 0, 0, 0, {SPLIT("\\d{1,3}(?=(?:\\d{3})*\\b)"), SPLIT(RE_GPT4O)}},
    {{"minicpm5"},
     0,
     1,
     0,
     {SPLIT("\\p{N}{1,3}"),
      SPLIT("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")}},
    {{"exaone-moe"},
     0,
     0,
     0,
     {SPLIT("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|"
            "\\s*[\\r\\n]|\\s+(?!\\S)|\\s+")}},
    {{"jais-2"},
     0,
     0,
     0,
     {SPLIT("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s{512}(?!\\S)|"
            "\\s{256}(?!\\S)|\\s{128}(?!\\S)|\\s{64}(?!\\S)|\\s{32}(?!\\S)|\\s{16}(?!\\S)|\\s{8}(?!\\S)|\\s{4}(?!\\S)|\\s{1,2}(?!\\S)|\\s{1}")}},
    {{"poro-chat", "bloom", "gpt3-finnish"}, 0, 0, 0, {SPLIT(RE_PORO)}},
    {{"viking"}, 0, 0, 0, {SPLIT(RE_PORO), SPLIT("\\p{N}")}},
    {{"chameleon"},
     0,
     0,
     1,
     {SPLIT("<sentinel:[0-9]+>"), SPLIT("(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z"), SPLIT("([\\t\\n]|    |  )"), SPLIT("\\p{N}"),
      SPLIT("[\\p{P}!-/:-@\\[-`{-~]"), SPLIT(RE_GPT2)}},
    {{"laguna"}, 0, 0, 0, {SPLIT("[^\\n]+|[\\n]+"), SPLIT(RE_QWEN2)}},
    /* llama.cpp's fallback for BPE vocabularies without (or with "default") tokenizer.ggml.pre. */
    {{"default", ""}, 0, 0, 0, {SPLIT("[\\p{P}\\$\\+<=>\\^~\\|]+"), SPLIT(RE_GPT2), SPLIT("\\p{N}+"), SPLIT("[0-9][0-9][0-9]")}},
};

static const pre_entry *find_pre(const char *name) {
    for (size_t i = 0; i < sizeof pre_table / sizeof pre_table[0]; i++)
        for (int k = 0; k < 12 && pre_table[i].names[k]; k++)
            if (!strcmp(pre_table[i].names[k], name)) return &pre_table[i];
    return NULL;
}

static void write_split(sbuf *b, const char *regex) {
    sb_cat(b, "{\"type\": \"Split\", \"pattern\": {\"Regex\": ");
    sb_jstr(b, regex);
    sb_cat(b, "}, \"behavior\": \"Isolated\", \"invert\": false}");
}

static void write_pre_tokenizer(sbuf *b, const pre_entry *e) {
    sb_cat(b, "{\"type\": \"Sequence\", \"pretokenizers\": [");
    int bytelevel = 0;
    for (int i = 0; i < 8 && e->steps[i].kind != S_END; i++) {
        if (i) sb_cat(b, ", ");
        switch (e->steps[i].kind) {
        case S_SPLIT: write_split(b, e->steps[i].regex); break;
        case S_DIGITS: sb_cat(b, "{\"type\": \"Digits\", \"individual_digits\": true}"); break;
        case S_DIGITS_GROUPED: sb_cat(b, "{\"type\": \"Digits\", \"individual_digits\": false}"); break;
        case S_PUNCT:
            /* tokenizers' Punctuation (ASCII punctuation or a P* character,
             * runs kept together) as a Split. */
            write_split(b, "[\\p{P}!-/:-@\\[-`{-~]+");
            break;
        case S_BYTELEVEL_RE:
            sb_cat(b, "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true}");
            bytelevel = 1;
            break;
        case S_END: break;
        }
    }
    if (!bytelevel) sb_cat(b, ", {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": false}");
    sb_cat(b, "]}");
}

/* ---- the vocabulary ---- */

typedef struct {
    const tn_gguf *g;
    const char *path;
    char model[32];
    char pre[64];
    int64_t n;
    const char **text; /* [n] into the mapping, or into owned[] */
    size_t *len;
    int32_t *type;
    float *score;
    char **owned; /* [n] replacement texts ([EMPTY_i]) */
    /* string -> id, open addressing */
    int64_t *slot;
    size_t mask;
    int64_t bos, eos, unk, pad, eot, eom;
    int add_bos, add_eos, add_space_prefix;
    int rstrip_specials; /* Phi-3 */
    const pre_entry *pre_e;
} vocab;

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int64_t vocab_find(const vocab *v, const char *s, size_t n) {
    for (size_t h = (size_t)fnv(s, n) & v->mask; v->slot[h]; h = (h + 1) & v->mask) {
        int64_t id = v->slot[h] - 1;
        if (v->len[id] == n && !memcmp(v->text[id], s, n)) return id;
    }
    return -1;
}

static void vocab_free(vocab *v) {
    if (v->owned)
        for (int64_t i = 0; i < v->n; i++) free(v->owned[i]);
    free(v->owned);
    free(v->text), free(v->len), free(v->type), free(v->score), free(v->slot);
}

/* An optional id key: -1 when absent or outside the vocabulary (llama.cpp
 * warns and keeps its default then). */
static int64_t opt_id(const vocab *v, const char *key, int64_t dflt) {
    int64_t id = dflt;
    int r = tn_gguf_get_int(v->g, key, &id);
    if (r < 0) return -2;
    if (r == 0) id = dflt;
    return id >= 0 && id < v->n ? id : -1;
}

static int load_vocab(vocab *v, const tn_gguf *g) {
    memset(v, 0, sizeof *v);
    v->g = g;
    v->path = g->path;
    const char *s;
    size_t n;
    int r = tn_gguf_get_str(g, "tokenizer.ggml.model", &s, &n);
    if (r < 0) return -1;
    if (r == 0) return tn_fail("%s: no tokenizer (tokenizer.ggml.model is missing; expected gpt2, llama or gemma4)", g->path);
    snprintf(v->model, sizeof v->model, "%.*s", (int)(n < 31 ? n : 31), s);
    r = tn_gguf_get_str(g, "tokenizer.ggml.pre", &s, &n);
    if (r < 0) return -1;
    snprintf(v->pre, sizeof v->pre, "%.*s", r ? (int)(n < 63 ? n : 63) : 0, r ? s : "");
    int spm = !strcmp(v->model, "llama");
    if (strcmp(v->model, "gpt2") && !spm && strcmp(v->model, "gemma4")) {
        const char *what = !strcmp(v->model, "bert") ? " (WordPiece)" : !strcmp(v->model, "t5") ? " (Unigram)" : "";
        return tn_fail("%s: tokenizer.ggml.model '%s'%s is not supported (expected gpt2: byte-level BPE, llama: SentencePiece BPE, or gemma4)",
                       g->path, v->model, what);
    }
    if (!strcmp(v->model, "gpt2")) {
        /* Pre-tokenizers that work on raw UTF-8 with U+2581 for spaces, as gemma4's. */
        if (!strcmp(v->pre, "gemma4") || !strcmp(v->pre, "granite-embed-multi-311m") || !strcmp(v->pre, "sarvam-moe")) {
            snprintf(v->model, sizeof v->model, "gemma4");
        } else {
            v->pre_e = find_pre(v->pre);
            if (!v->pre_e)
                return tn_fail("%s: tokenizer.ggml.pre '%s' is not supported (its pre-tokenizer needs llama.cpp's own code, or is unknown to this "
                               "build)",
                               g->path, v->pre);
        }
    }
    const tn_gguf_kv *toks, *types = NULL, *scores = NULL;
    if ((r = tn_gguf_get_arr(g, "tokenizer.ggml.tokens", TN_GGUF_STRING, &toks)) <= 0)
        return r < 0 ? -1 : tn_fail("%s: tokenizer.ggml.tokens is missing (expected the list of tokens)", g->path);
    if (tn_gguf_get_arr(g, "tokenizer.ggml.token_type", TN_GGUF_I32, &types) < 0 ||
        tn_gguf_get_arr(g, "tokenizer.ggml.scores", TN_GGUF_F32, &scores) < 0)
        return -1;
    if (toks->n == 0 || toks->n > INT32_MAX) return tn_fail("%s: tokenizer.ggml.tokens holds %llu tokens (expected 1 to 2^31-1)", g->path, (unsigned long long)toks->n);
    v->n = (int64_t)toks->n;
    if (types && types->n < toks->n)
        return tn_fail("%s: tokenizer.ggml.token_type has %llu entries for %lld tokens", g->path, (unsigned long long)types->n, (long long)v->n);
    if (scores && scores->n < toks->n)
        return tn_fail("%s: tokenizer.ggml.scores has %llu entries for %lld tokens", g->path, (unsigned long long)scores->n, (long long)v->n);
    if (spm && !scores) return tn_fail("%s: a SentencePiece (llama) vocabulary without tokenizer.ggml.scores", g->path);
    v->text = calloc((size_t)v->n, sizeof *v->text);
    v->len = calloc((size_t)v->n, sizeof *v->len);
    v->type = calloc((size_t)v->n, sizeof *v->type);
    v->score = calloc((size_t)v->n, sizeof *v->score);
    v->owned = calloc((size_t)v->n, sizeof *v->owned);
    size_t cap = 16;
    while (cap < (size_t)v->n * 2) cap *= 2;
    v->slot = calloc(cap, sizeof *v->slot);
    v->mask = cap - 1;
    if (!v->text || !v->len || !v->type || !v->score || !v->owned || !v->slot) return tn_fail("out of memory (vocabulary of %lld)", (long long)v->n);
    for (int64_t i = 0; i < v->n; i++) {
        v->text[i] = tn_gguf_arr_str(toks, (uint64_t)i, &v->len[i]);
        if (v->len[i] == 0) { /* llama.cpp's name for an empty token */
            char tmp[32];
            snprintf(tmp, sizeof tmp, "[EMPTY_%lld]", (long long)i);
            if (!(v->owned[i] = tn_strdup(tmp))) return -1;
            v->text[i] = v->owned[i];
            v->len[i] = strlen(tmp);
        }
        if (!utf8_valid((const unsigned char *)v->text[i], v->len[i]) || memchr(v->text[i], 0, v->len[i]))
            return tn_fail("%s: token %lld is not valid UTF-8 text (tokenizer.json cannot hold it)", g->path, (long long)i);
        v->type[i] = types ? (int32_t)tn_gguf_arr_int(types, (uint64_t)i) : TOK_NORMAL;
        v->score[i] = scores ? (float)tn_gguf_arr_float(scores, (uint64_t)i) : 0.0f;
        if (vocab_find(v, v->text[i], v->len[i]) >= 0)
            return tn_fail("%s: token %lld '%.*s' appears twice in tokenizer.ggml.tokens (llama.cpp refuses such a vocabulary)", g->path, (long long)i,
                           (int)(v->len[i] > 60 ? 60 : v->len[i]), v->text[i]);
        size_t h = (size_t)fnv(v->text[i], v->len[i]) & v->mask;
        while (v->slot[h]) h = (h + 1) & v->mask;
        v->slot[h] = i + 1;
    }
    /* Special ids and flags, with llama.cpp's defaults. */
    int gemma4 = !strcmp(v->model, "gemma4");
    v->bos = opt_id(v, "tokenizer.ggml.bos_token_id", spm ? 1 : -1);
    v->eos = opt_id(v, "tokenizer.ggml.eos_token_id", spm ? 2 : -1);
    v->unk = opt_id(v, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1);
    v->pad = opt_id(v, "tokenizer.ggml.padding_token_id", -1);
    v->eot = opt_id(v, "tokenizer.ggml.eot_token_id", -1);
    v->eom = opt_id(v, "tokenizer.ggml.eom_token_id", -1);
    if (v->bos == -2 || v->eos == -2 || v->unk == -2 || v->pad == -2 || v->eot == -2 || v->eom == -2) return -1;
    v->add_bos = spm || gemma4 || (v->pre_e && v->pre_e->add_bos);
    v->add_eos = 0;
    v->add_space_prefix = spm;
    if (tn_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos) < 0 ||
        tn_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos) < 0 ||
        tn_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix) < 0)
        return -1;
    if (gemma4) v->add_bos = 1, v->add_space_prefix = 0; /* llama.cpp forces BOS for Gemma 4 */
    if (v->add_bos && v->bos < 0) v->add_bos = 0;
    if (v->add_eos && v->eos < 0) v->add_eos = 0;
    /* Phi-3's special tokens eat the spaces after them (llama.cpp sets
     * RSTRIP by the model's name, as Hugging Face's tokenizer.json does). */
    const char *name;
    if (tn_gguf_get_str(g, "general.name", &name, &n) > 0) {
        char lower[128];
        size_t k = 0;
        for (; k < n && k < sizeof lower - 1; k++) lower[k] = (char)((name[k] >= 'A' && name[k] <= 'Z') ? name[k] + 32 : name[k]);
        lower[k] = 0;
        v->rstrip_specials = strstr(lower, "phi-3") || strstr(lower, "phi3");
    }
    return 0;
}

/* ---- merges ---- */

typedef struct {
    float score;
    uint32_t len_l, len_r; /* in code points */
    int64_t id, l, r;
} spm_merge;

static int cmp_spm_merge(const void *pa, const void *pb) {
    const spm_merge *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->len_l != b->len_l) return a->len_l > b->len_l ? -1 : 1;
    if (a->len_r != b->len_r) return a->len_r > b->len_r ? -1 : 1;
    if (a->id != b->id) return a->id < b->id ? -1 : 1;
    if (a->l != b->l) return a->l < b->l ? -1 : 1;
    return (a->r > b->r) - (a->r < b->r);
}

static void write_pair(sbuf *b, const char *l, size_t ln, const char *r, size_t rn, int first) {
    sb_cat(b, first ? "\n    [" : ",\n    [");
    sb_json(b, l, ln);
    sb_add(b, ", ", 2);
    sb_json(b, r, rn);
    sb_add(b, "]", 1);
}

/* SentencePiece: every split of a piece (at a character boundary) into two
 * pieces of the vocabulary is a merge, ranked by the piece's score, longer
 * left then right parts first, then vocabulary order (transformers'
 * generate_merges). Unused tokens take no part. */
static int write_spm_merges(sbuf *b, const vocab *v) {
    size_t cap = 1024, n = 0;
    spm_merge *m = malloc(cap * sizeof *m);
    if (!m) return tn_fail("out of memory");
    for (int64_t id = 0; id < v->n; id++) {
        if (v->type[id] == TOK_UNUSED) continue;
        const char *s = v->text[id];
        size_t len = v->len[id];
        for (size_t i = 1; i < len; i++) {
            if (((unsigned char)s[i] & 0xC0) == 0x80) continue;
            int64_t l = vocab_find(v, s, i), r = vocab_find(v, s + i, len - i);
            if (l < 0 || r < 0 || v->type[l] == TOK_UNUSED || v->type[r] == TOK_UNUSED) continue;
            if (n == cap) {
                spm_merge *p = realloc(m, (cap *= 2) * sizeof *m);
                if (!p) return free(m), tn_fail("out of memory (%zu merges)", cap);
                m = p;
            }
            m[n++] = (spm_merge){v->score[id], (uint32_t)utf8_chars(s, i), (uint32_t)utf8_chars(s + i, len - i), id, l, r};
        }
    }
    qsort(m, n, sizeof *m, cmp_spm_merge);
    for (size_t i = 0; i < n; i++) write_pair(b, v->text[m[i].l], v->len[m[i].l], v->text[m[i].r], v->len[m[i].r], i == 0);
    free(m);
    return 0;
}

/* tokenizer.ggml.merges, "a b" split at the first space after the first
 * byte (llama.cpp's reading); merges whose parts or result are not tokens
 * are left out (Hugging Face refuses them, llama.cpp never applies them),
 * and a repeated pair keeps its first rank. */
static int write_gguf_merges(sbuf *b, const vocab *v, int64_t *dropped) {
    const tn_gguf_kv *mk;
    int r = tn_gguf_get_arr(v->g, "tokenizer.ggml.merges", TN_GGUF_STRING, &mk);
    if (r < 0) return -1;
    if (r == 0) return tn_fail("%s: a BPE vocabulary without tokenizer.ggml.merges (llama.cpp refuses it too)", v->path);
    /* seen pairs: open addressing over (l, r) */
    size_t cap = 16;
    while (cap < (size_t)mk->n * 2) cap *= 2;
    uint64_t *seen = calloc(cap, sizeof *seen);
    if (!seen) return tn_fail("out of memory (%llu merges)", (unsigned long long)mk->n);
    int first = 1;
    *dropped = 0;
    char *joined = NULL;
    size_t joined_cap = 0;
    for (uint64_t i = 0; i < mk->n; i++) {
        size_t n;
        const char *s = tn_gguf_arr_str(mk, i, &n);
        const char *sp = n > 1 ? memchr(s + 1, ' ', n - 1) : NULL;
        if (!sp) {
            (*dropped)++;
            continue;
        }
        size_t ln = (size_t)(sp - s), rn = n - ln - 1;
        int64_t l = vocab_find(v, s, ln), rr = vocab_find(v, sp + 1, rn);
        if (n > joined_cap) {
            char *p = realloc(joined, joined_cap = n * 2);
            if (!p) return free(joined), free(seen), tn_fail("out of memory");
            joined = p;
        }
        memcpy(joined, s, ln);
        memcpy(joined + ln, sp + 1, rn);
        if (l < 0 || rr < 0 || vocab_find(v, joined, ln + rn) < 0) {
            (*dropped)++;
            continue;
        }
        uint64_t key = ((uint64_t)l << 32) | (uint64_t)rr, k1 = key + 1;
        size_t h = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
        int dup = 0;
        for (; seen[h]; h = (h + 1) & (cap - 1))
            if (seen[h] == k1) dup = 1;
        if (dup) {
            (*dropped)++;
            continue;
        }
        seen[h] = k1;
        write_pair(b, s, ln, sp + 1, rn, first);
        first = 0;
    }
    free(joined);
    free(seen);
    return 0;
}

/* ---- tokenizer.json ---- */

static int is_added(const vocab *v, int64_t id) {
    return v->type[id] == TOK_CONTROL || v->type[id] == TOK_USER_DEFINED || v->type[id] == TOK_UNKNOWN;
}

static void write_added(sbuf *b, const vocab *v) {
    sb_cat(b, "  \"added_tokens\": [");
    int first = 1;
    for (int64_t id = 0; id < v->n; id++) {
        if (!is_added(v, id)) continue;
        int special = v->type[id] != TOK_USER_DEFINED;
        int rstrip = 0;
        if (v->rstrip_specials) {
            const char *t = v->text[id];
            size_t n = v->len[id];
            rstrip = v->type[id] == TOK_CONTROL || (n == 4 && !memcmp(t, "</s>", 4));
            if ((n == 5 && !memcmp(t, "<unk>", 5)) || (n == 3 && !memcmp(t, "<s>", 3)) || (n == 13 && !memcmp(t, "<|endoftext|>", 13))) rstrip = 0;
        }
        sb_printf(b, "%s\n    {\"id\": %lld, \"content\": ", first ? "" : ",", (long long)id);
        sb_json(b, v->text[id], v->len[id]);
        sb_printf(b, ", \"single_word\": false, \"lstrip\": false, \"rstrip\": %s, \"normalized\": false, \"special\": %s}", rstrip ? "true" : "false",
                  special ? "true" : "false");
        first = 0;
    }
    sb_cat(b, "\n  ],\n");
}

static void write_post(sbuf *b, const vocab *v, int bytelevel) {
    if (!v->add_bos && !v->add_eos) {
        sb_cat(b, bytelevel ? "  \"post_processor\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": false, \"use_regex\": true},\n"
                            : "  \"post_processor\": null,\n");
        return;
    }
    sb_cat(b, "  \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [");
    for (int pass = 0; pass < 2; pass++) {
        if (pass) sb_cat(b, "], \"pair\": [");
        const char *seq[2] = {"A", "B"};
        for (int k = 0; k <= pass; k++) {
            if (v->add_bos) {
                sb_cat(b, "{\"SpecialToken\": {\"id\": ");
                sb_json(b, v->text[v->bos], v->len[v->bos]);
                sb_printf(b, ", \"type_id\": %d}}, ", k);
            }
            sb_printf(b, "{\"Sequence\": {\"id\": \"%s\", \"type_id\": %d}}", seq[k], k);
            if (v->add_eos) {
                sb_cat(b, ", {\"SpecialToken\": {\"id\": ");
                sb_json(b, v->text[v->eos], v->len[v->eos]);
                sb_printf(b, ", \"type_id\": %d}}", k);
            }
            if (k < pass) sb_cat(b, ", ");
        }
    }
    sb_cat(b, "], \"special_tokens\": {");
    int64_t ids[2] = {v->add_bos ? v->bos : -1, v->add_eos ? v->eos : -1};
    int first = 1;
    for (int k = 0; k < 2; k++) {
        if (ids[k] < 0 || (k == 1 && ids[1] == ids[0])) continue;
        if (!first) sb_cat(b, ", ");
        first = 0;
        sb_json(b, v->text[ids[k]], v->len[ids[k]]);
        sb_cat(b, ": {\"id\": ");
        sb_json(b, v->text[ids[k]], v->len[ids[k]]);
        sb_printf(b, ", \"ids\": [%lld], \"tokens\": [", (long long)ids[k]);
        sb_json(b, v->text[ids[k]], v->len[ids[k]]);
        sb_cat(b, "]}");
    }
    sb_cat(b, "}},\n");
}

static int write_tokenizer_json(sbuf *b, const vocab *v) {
    int spm = !strcmp(v->model, "llama"), gemma4 = !strcmp(v->model, "gemma4");
    sb_cat(b, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n");
    write_added(b, v);
    if (spm || gemma4) {
        if (v->add_space_prefix)
            sb_cat(b, "  \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", \"prepend\": \"\xe2\x96\x81\"}, "
                      "{\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\xe2\x96\x81\"}]},\n");
        else
            sb_cat(b, "  \"normalizer\": {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\xe2\x96\x81\"},\n");
        sb_cat(b, "  \"pre_tokenizer\": null,\n");
    } else {
        sb_cat(b, v->pre_e->nfc ? "  \"normalizer\": {\"type\": \"NFC\"},\n" : "  \"normalizer\": null,\n");
        sb_cat(b, "  \"pre_tokenizer\": ");
        write_pre_tokenizer(b, v->pre_e);
        sb_cat(b, ",\n");
    }
    write_post(b, v, !spm && !gemma4);
    if (spm || gemma4)
        sb_printf(b, "  \"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": \"\xe2\x96\x81\"}, "
                     "\"content\": \" \"}, {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}%s]},\n",
                  v->add_space_prefix ? ", {\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}" : "");
    else
        sb_cat(b, "  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true},\n");
    sb_cat(b, "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": ");
    if ((spm || gemma4) && v->unk >= 0) sb_json(b, v->text[v->unk], v->len[v->unk]);
    else sb_cat(b, "null");
    sb_printf(b, ",\n    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n    \"fuse_unk\": %s,\n    \"byte_fallback\": %s,\n"
                 "    \"ignore_merges\": %s,\n    \"vocab\": {",
              spm || gemma4 ? "true" : "false", spm || gemma4 ? "true" : "false", v->pre_e && v->pre_e->ignore_merges ? "true" : "false");
    for (int64_t id = 0; id < v->n; id++) {
        sb_cat(b, id ? ",\n      " : "\n      ");
        sb_json(b, v->text[id], v->len[id]);
        sb_printf(b, ": %lld", (long long)id);
    }
    sb_cat(b, "\n    },\n    \"merges\": [");
    int64_t dropped = 0;
    if (spm ? write_spm_merges(b, v) : write_gguf_merges(b, v, &dropped)) return -1;
    sb_cat(b, "\n    ]\n  }\n}\n");
    return b->failed ? -1 : 0;
}

/* ---- tokenizer_config.json and generation_config.json ---- */

static void config_token(sbuf *b, const vocab *v, const char *key, int64_t id) {
    sb_printf(b, "  \"%s\": ", key);
    if (id >= 0) sb_json(b, v->text[id], v->len[id]);
    else sb_cat(b, "null");
    sb_cat(b, ",\n");
}

static int write_config_json(sbuf *b, const vocab *v) {
    const tn_gguf *g = v->g;
    sb_cat(b, "{\n");
    config_token(b, v, "bos_token", v->bos);
    config_token(b, v, "eos_token", v->eos);
    config_token(b, v, "unk_token", v->unk);
    config_token(b, v, "pad_token", v->pad);
    sb_printf(b, "  \"add_bos_token\": %s,\n  \"add_eos_token\": %s,\n  \"clean_up_tokenization_spaces\": false,\n",
              v->add_bos ? "true" : "false", v->add_eos ? "true" : "false");
    /* The chat template, and named ones (tokenizer.chat_template.NAME) as transformers' list. */
    const char *tpl;
    size_t n;
    int r = tn_gguf_get_str(g, "tokenizer.chat_template", &tpl, &n);
    if (r < 0) return -1;
    int n_named = 0;
    const char *prefix = "tokenizer.chat_template.";
    for (int64_t i = 0; i < g->n_kv; i++)
        if (!strncmp(g->kv[i].key, prefix, strlen(prefix)) && g->kv[i].type == TN_GGUF_STRING) n_named++;
    if (n_named == 0 && r) {
        sb_cat(b, "  \"chat_template\": ");
        sb_json(b, tpl, n);
        sb_cat(b, ",\n");
    } else if (n_named) {
        sb_cat(b, "  \"chat_template\": [");
        int first = 1;
        if (r) {
            sb_cat(b, "{\"name\": \"default\", \"template\": ");
            sb_json(b, tpl, n);
            sb_cat(b, "}");
            first = 0;
        }
        for (int64_t i = 0; i < g->n_kv; i++) {
            const tn_gguf_kv *kv = &g->kv[i];
            if (strncmp(kv->key, prefix, strlen(prefix)) || kv->type != TN_GGUF_STRING) continue;
            sb_cat(b, first ? "{\"name\": " : ", {\"name\": ");
            sb_jstr(b, kv->key + strlen(prefix));
            sb_cat(b, ", \"template\": ");
            sb_json(b, (const char *)kv->data, (size_t)kv->n);
            sb_cat(b, "}");
            first = 0;
        }
        sb_cat(b, "],\n");
    }
    sb_cat(b, "  \"tokenizer_class\": \"PreTrainedTokenizerFast\"\n}\n");
    return b->failed ? -1 : 0;
}

static int check_templates(const vocab *v) {
    const tn_gguf *g = v->g;
    for (int64_t i = 0; i < g->n_kv; i++) {
        const tn_gguf_kv *kv = &g->kv[i];
        if (strncmp(kv->key, "tokenizer.chat_template", 23) || kv->type != TN_GGUF_STRING) continue;
        if (!utf8_valid(kv->data, (size_t)kv->n) || memchr(kv->data, 0, (size_t)kv->n))
            return tn_fail("%s: %s is not valid UTF-8 text", g->path, kv->key);
    }
    return 0;
}

static int write_file(const char *dir, const char *name, const sbuf *b) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return tn_write_file_atomic(path, b->p, b->n);
}

int tn_gguf_write_tokenizer(const tn_gguf *g, const char *dir) {
    vocab v;
    sbuf tj = {0}, tc = {0}, gc = {0};
    int rc = -1;
    if (load_vocab(&v, g) || check_templates(&v)) goto done;
    if (write_tokenizer_json(&tj, &v) || write_config_json(&tc, &v)) goto done;
    /* generation_config.json: the ids that end a turn. */
    int64_t stops[3] = {v.eos, v.eot, v.eom};
    sb_cat(&gc, "{\n  \"eos_token_id\": [");
    int first = 1;
    for (int k = 0; k < 3; k++) {
        if (stops[k] < 0 || (k > 0 && stops[k] == stops[0]) || (k == 2 && stops[2] == stops[1])) continue;
        sb_printf(&gc, "%s%lld", first ? "" : ", ", (long long)stops[k]);
        first = 0;
    }
    sb_cat(&gc, "]");
    if (v.bos >= 0) sb_printf(&gc, ",\n  \"bos_token_id\": %lld", (long long)v.bos);
    if (v.pad >= 0) sb_printf(&gc, ",\n  \"pad_token_id\": %lld", (long long)v.pad);
    sb_cat(&gc, "\n}\n");
    if (gc.failed) goto done;
    if (write_file(dir, "tokenizer.json", &tj) || write_file(dir, "tokenizer_config.json", &tc) || write_file(dir, "generation_config.json", &gc))
        goto done;
    rc = 0;
done:
    vocab_free(&v);
    free(tj.p), free(tc.p), free(gc.p);
    return rc;
}

tn_tokenizer *tn_gguf_tokenizer_load(const tn_gguf *g) {
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tune-gguf-tok-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) return tn_fail("cannot create a temporary folder under %s", tmp && *tmp ? tmp : "/tmp"), NULL;
    tn_tokenizer *t = NULL;
    if (tn_gguf_write_tokenizer(g, dir) == 0) {
        t = tn_tokenizer_load(dir);
        if (!t) tn_fail_prefix("%s (as tokenizer.json)", g->path);
    }
    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json", "generation_config.json"};
    for (int k = 0; k < 3; k++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, files[k]);
        unlink(p);
    }
    rmdir(dir);
    return t;
}
