/* tokenizer_decode.c - decoders (tokenizers' decoders/): token strings
 * back to text. Each decoder maps a list of strings to a list of strings;
 * the tokenizer joins the final list.
 *
 *   ByteLevel     printable characters -> bytes, all tokens at once, then
 *                 invalid UTF-8 -> U+FFFD (String::from_utf8_lossy)
 *   Replace       per token, every match of a pattern -> content
 *   ByteFallback  runs of "<0xXX>" tokens -> their bytes as text, or one
 *                 U+FFFD per byte when the run is not valid UTF-8
 *   Fuse          all tokens -> one
 *   Strip         per token, up to `start` / `stop` copies of a character
 *                 off the left / right
 *   Metaspace     '▁' -> ' ', except that the first token drops its '▁'s
 *                 unless prepend_scheme is "never"
 *   Sequence      the above in order */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_internal.h"
#include "util/error.h"

int tk_metaspace_fields(const cJSON *json, const char *where, char *repl, size_t *repl_n,
                        int *prepend_never);

enum { D_SEQ, D_BYTELEVEL, D_REPLACE, D_BYTEFALLBACK, D_FUSE, D_STRIP, D_METASPACE };

struct tk_decoder {
    int kind;
    tk_decoder **kids;
    size_t n_kids;
    tk_regex *re;
    char *content;
    size_t content_n;
    uint32_t strip_char;
    size_t start, stop;
    char repl[8];
    size_t repl_n;
    int prepend_never;
};

/* ---- string lists ---- */

int tk_strlist_add(tk_strlist *l, const char *s, size_t n) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        size_t *o = realloc(l->off, cap * sizeof *o);
        if (!o) return tn_fail("out of memory decoding");
        l->off = o;
        size_t *q = realloc(l->len, cap * sizeof *q);
        if (!q) return tn_fail("out of memory decoding");
        l->len = q;
        l->cap = cap;
    }
    l->off[l->n] = l->text.n;
    l->len[l->n] = n;
    if (tk_buf_add(&l->text, s, n)) return -1;
    l->n++;
    return 0;
}

void tk_strlist_free(tk_strlist *l) {
    tk_buf_free(&l->text);
    free(l->off);
    free(l->len);
    memset(l, 0, sizeof *l);
}

#define ITEM(l, i) ((l)->text.p + (l)->off[i])

/* ---- loading ---- */

void tk_decoder_free(tk_decoder *d) {
    if (!d) return;
    for (size_t i = 0; i < d->n_kids; i++) tk_decoder_free(d->kids[i]);
    free(d->kids);
    if (d->re) tk_regex_free(d->re);
    free(d->re);
    free(d->content);
    free(d);
}

static int size_field(const cJSON *json, const char *key, const char *where, size_t *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(json, key);
    if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 1e9)
        return tn_fail("%s: decoder Strip: field '%s': expected a count", where, key);
    *out = (size_t)it->valuedouble;
    return 0;
}

int tk_decoder_load(const cJSON *json, const char *where, tk_decoder **out) {
    *out = NULL;
    if (!json || cJSON_IsNull(json)) return 0;
    const char *type = tk_type(json, where, "decoder");
    if (!type) return -1;
    tk_decoder *d = tn_calloc(1, sizeof *d, "a decoder");
    if (!d) return -1;
    if (!strcmp(type, "Sequence")) {
        d->kind = D_SEQ;
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(json, "decoders");
        if (!cJSON_IsArray(list)) {
            tn_fail("%s: decoder Sequence: field 'decoders': expected a list", where);
            goto fail;
        }
        d->kids = tn_calloc((size_t)cJSON_GetArraySize(list), sizeof *d->kids, "decoders");
        if (!d->kids) goto fail;
        const cJSON *it;
        cJSON_ArrayForEach(it, list) {
            if (tk_decoder_load(it, where, &d->kids[d->n_kids])) goto fail;
            if (d->kids[d->n_kids]) d->n_kids++;
        }
    } else if (!strcmp(type, "ByteLevel")) {
        d->kind = D_BYTELEVEL;
    } else if (!strcmp(type, "ByteFallback")) {
        d->kind = D_BYTEFALLBACK;
    } else if (!strcmp(type, "Fuse")) {
        d->kind = D_FUSE;
    } else if (!strcmp(type, "Replace")) {
        d->kind = D_REPLACE;
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(json, "content");
        if (!cJSON_IsString(c)) {
            tn_fail("%s: decoder Replace: field 'content': expected a string", where);
            goto fail;
        }
        d->content = tn_strdup(c->valuestring);
        d->re = tn_calloc(1, sizeof *d->re, "a pattern");
        if (!d->content || !d->re ||
            tk_regex_load(cJSON_GetObjectItemCaseSensitive(json, "pattern"), where, d->re))
            goto fail;
        d->content_n = strlen(d->content);
    } else if (!strcmp(type, "Strip")) {
        d->kind = D_STRIP;
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(json, "content");
        size_t len;
        if (!cJSON_IsString(c) || !c->valuestring[0] ||
            tk_utf8_len((unsigned char)c->valuestring[0]) != strlen(c->valuestring)) {
            tn_fail("%s: decoder Strip: field 'content': expected one character", where);
            goto fail;
        }
        d->strip_char = tk_utf8_decode(c->valuestring, &len);
        if (size_field(json, "start", where, &d->start) || size_field(json, "stop", where, &d->stop))
            goto fail;
    } else if (!strcmp(type, "Metaspace")) {
        d->kind = D_METASPACE;
        if (tk_metaspace_fields(json, where, d->repl, &d->repl_n, &d->prepend_never)) goto fail;
    } else {
        tn_fail("%s: decoder type '%s' is not supported (supported: Sequence, ByteLevel, Replace, "
                "ByteFallback, Fuse, Strip, Metaspace)",
                where, type);
        goto fail;
    }
    *out = d;
    return 0;
fail:
    tk_decoder_free(d);
    return -1;
}

/* ---- running ---- */

static int bytelevel(const tk_strlist *in, tk_strlist *out) {
    tk_buf bytes = {0};
    int rc = -1;
    for (size_t i = 0; i < in->n; i++) {
        const char *s = ITEM(in, i);
        size_t n = in->len[i], start = bytes.n, len;
        int ok = 1;
        for (size_t k = 0; k < n; k += len) {
            int b = tk_char_to_byte(tk_utf8_decode(s + k, &len));
            if (b < 0) {
                ok = 0;
                break;
            }
            if (tk_buf_addc(&bytes, (char)b)) goto done;
        }
        if (!ok) { /* a token outside the table passes as its own bytes */
            bytes.n = start;
            if (tk_buf_add(&bytes, s, n)) goto done;
        }
    }
    size_t fixed_n;
    char *fixed = tn_utf8_sanitize(bytes.p ? bytes.p : "", bytes.n, &fixed_n, NULL);
    if (!fixed) goto done;
    rc = tk_strlist_add(out, fixed, fixed_n);
    free(fixed);
done:
    tk_buf_free(&bytes);
    return rc;
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* u8::from_str_radix(&token[3..5], 16) on "<0xXX>". */
static int byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    if (s[3] == '+') return hexval(s[4]);
    int h = hexval(s[3]), l = hexval(s[4]);
    return h < 0 || l < 0 ? -1 : h * 16 + l;
}

static int flush_bytes(tk_buf *pending, tk_strlist *out) {
    if (!pending->n) return 0;
    int rc = 0;
    if (tk_utf8_valid(pending->p, pending->n)) {
        rc = tk_strlist_add(out, pending->p, pending->n);
    } else {
        for (size_t k = 0; k < pending->n && !rc; k++) rc = tk_strlist_add(out, "\xEF\xBF\xBD", 3);
    }
    pending->n = 0;
    return rc;
}

static int bytefallback(const tk_strlist *in, tk_strlist *out) {
    tk_buf pending = {0};
    int rc = 0;
    for (size_t i = 0; i < in->n && !rc; i++) {
        int b = byte_token(ITEM(in, i), in->len[i]);
        if (b >= 0) {
            rc = tk_buf_addc(&pending, (char)b);
        } else {
            rc = flush_bytes(&pending, out);
            if (!rc) rc = tk_strlist_add(out, ITEM(in, i), in->len[i]);
        }
    }
    if (!rc) rc = flush_bytes(&pending, out);
    tk_buf_free(&pending);
    return rc;
}

static int replace_one(const tk_decoder *d, const char *s, size_t n, tk_buf *o) {
    size_t pos = 0, last = 0, ms, me;
    o->n = 0;
    for (;;) {
        int r = tk_regex_find(d->re, s, n, pos, &ms, &me);
        if (r < 0) return -1;
        if (r == 0) break;
        if (tk_buf_add(o, s + last, ms - last) || tk_buf_add(o, d->content, d->content_n)) return -1;
        last = me;
        if (me > ms) pos = me;
        else if (me < n) pos = me + tk_utf8_len((unsigned char)s[me]);
        else break;
    }
    return tk_buf_add(o, s + last, n - last);
}

static int strip_one(const tk_decoder *d, const char *s, size_t n, tk_buf *o) {
    size_t a = 0, b = n, cut = 0, len;
    while (cut < d->start && a < b && tk_utf8_decode(s + a, &len) == d->strip_char) {
        a += len;
        cut++;
    }
    cut = 0;
    while (cut < d->stop && b > a) {
        size_t k = b - 1;
        while (k > a && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
        if (tk_utf8_decode(s + k, &len) != d->strip_char) break;
        b = k;
        cut++;
    }
    o->n = 0;
    return tk_buf_add(o, s + a, b - a);
}

static int metaspace_one(const tk_decoder *d, const char *s, size_t n, int first, tk_buf *o) {
    o->n = 0;
    if (tk_buf_reserve(o, n)) return -1;
    for (size_t i = 0; i < n;) {
        if (n - i >= d->repl_n && !memcmp(s + i, d->repl, d->repl_n)) {
            if (!(first && !d->prepend_never) && tk_buf_addc(o, ' ')) return -1;
            i += d->repl_n;
        } else {
            if (tk_buf_addc(o, s[i])) return -1;
            i++;
        }
    }
    return 0;
}

static int run(const tk_decoder *d, const tk_strlist *in, tk_strlist *out) {
    tk_buf tmp = {0};
    int rc = 0;
    switch (d->kind) {
    case D_BYTELEVEL: return bytelevel(in, out);
    case D_BYTEFALLBACK: return bytefallback(in, out);
    case D_FUSE: return tk_strlist_add(out, in->text.p ? in->text.p : "", in->text.n);
    case D_REPLACE:
    case D_STRIP:
    case D_METASPACE:
        for (size_t i = 0; i < in->n && !rc; i++) {
            const char *s = ITEM(in, i);
            size_t n = in->len[i];
            rc = d->kind == D_REPLACE ? replace_one(d, s, n, &tmp)
                 : d->kind == D_STRIP ? strip_one(d, s, n, &tmp)
                                      : metaspace_one(d, s, n, i == 0, &tmp);
            if (!rc) rc = tk_strlist_add(out, tmp.p ? tmp.p : "", tmp.n);
        }
        tk_buf_free(&tmp);
        return rc;
    case D_SEQ: {
        tk_strlist cur = {0};
        for (size_t i = 0; i < in->n && !rc; i++) rc = tk_strlist_add(&cur, ITEM(in, i), in->len[i]);
        for (size_t k = 0; k < d->n_kids && !rc; k++) {
            tk_strlist next = {0};
            rc = run(d->kids[k], &cur, &next);
            tk_strlist_free(&cur);
            cur = next;
        }
        for (size_t i = 0; i < cur.n && !rc; i++) rc = tk_strlist_add(out, ITEM(&cur, i), cur.len[i]);
        tk_strlist_free(&cur);
        return rc;
    }
    }
    return tn_fail("decoder: unknown kind %d", d->kind);
}

int tk_decoder_run(const tk_decoder *d, tk_strlist *tokens) {
    tk_strlist out = {0};
    if (run(d, tokens, &out)) {
        tk_strlist_free(&out);
        return -1;
    }
    tk_strlist_free(tokens);
    *tokens = out;
    return 0;
}
