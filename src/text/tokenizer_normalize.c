/* tokenizer_normalize.c - normalizers (tokenizers' normalizers/): the
 * string -> string steps applied to each piece of text between added tokens.
 *
 *   NFC, NFD, NFKC, NFKD   Unicode normalization through utf8proc
 *   Lowercase              char::to_lowercase, per character
 *   Strip                  whitespace off the left and/or right
 *   Replace                every match of a string or regex -> content
 *   Prepend                a prefix on non-empty text
 *   ByteLevel              bytes -> GPT-2's printable characters
 *   Sequence               the above in order */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text/tokenizer_internal.h"
#include "util/error.h"

enum { N_SEQ, N_NFC, N_NFD, N_NFKC, N_NFKD, N_LOWER, N_STRIP, N_REPLACE, N_PREPEND, N_BYTELEVEL };

struct tk_norm {
    int kind;
    tk_norm **kids;
    size_t n_kids;
    char *str; /* Replace content, Prepend prefix */
    size_t str_n;
    int left, right;
    tk_regex *re;
};

const char *tk_type(const cJSON *json, const char *where, const char *what) {
    if (!cJSON_IsObject(json)) {
        tn_fail("%s: %s: expected an object with a \"type\", got %s", where, what,
                cJSON_IsArray(json) ? "a list" : cJSON_IsString(json) ? "a string" : "another value");
        return NULL;
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(json, "type");
    if (!cJSON_IsString(t)) {
        tn_fail("%s: %s: missing field 'type' (expected a string)", where, what);
        return NULL;
    }
    return t->valuestring;
}

void tk_norm_free(tk_norm *nm) {
    if (!nm) return;
    for (size_t i = 0; i < nm->n_kids; i++) tk_norm_free(nm->kids[i]);
    free(nm->kids);
    free(nm->str);
    if (nm->re) tk_regex_free(nm->re);
    free(nm->re);
    free(nm);
}

static int str_field(const cJSON *json, const char *key, const char *where, const char *what,
                     char **out, size_t *n) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(json, key);
    if (!cJSON_IsString(it))
        return tn_fail("%s: %s: field '%s': expected a string", where, what, key);
    *out = tn_strdup(it->valuestring);
    if (!*out) return -1;
    *n = strlen(*out);
    return 0;
}

int tk_norm_load(const cJSON *json, const char *where, tk_norm **out) {
    *out = NULL;
    if (!json || cJSON_IsNull(json)) return 0;
    const char *type = tk_type(json, where, "normalizer");
    if (!type) return -1;
    tk_norm *nm = tn_calloc(1, sizeof *nm, "a normalizer");
    if (!nm) return -1;
    if (!strcmp(type, "Sequence")) {
        nm->kind = N_SEQ;
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(json, "normalizers");
        if (!cJSON_IsArray(list)) {
            tn_fail("%s: normalizer Sequence: field 'normalizers': expected a list", where);
            goto fail;
        }
        size_t n = (size_t)cJSON_GetArraySize(list);
        nm->kids = tn_calloc(n, sizeof *nm->kids, "normalizers");
        if (!nm->kids) goto fail;
        const cJSON *it;
        cJSON_ArrayForEach(it, list) {
            if (tk_norm_load(it, where, &nm->kids[nm->n_kids])) goto fail;
            if (nm->kids[nm->n_kids]) nm->n_kids++;
        }
    } else if (!strcmp(type, "NFC")) nm->kind = N_NFC;
    else if (!strcmp(type, "NFD")) nm->kind = N_NFD;
    else if (!strcmp(type, "NFKC")) nm->kind = N_NFKC;
    else if (!strcmp(type, "NFKD")) nm->kind = N_NFKD;
    else if (!strcmp(type, "Lowercase")) nm->kind = N_LOWER;
    else if (!strcmp(type, "ByteLevel")) nm->kind = N_BYTELEVEL;
    else if (!strcmp(type, "Strip")) {
        nm->kind = N_STRIP;
        nm->left = nm->right = 1;
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(json, "strip_left");
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(json, "strip_right");
        if (cJSON_IsBool(l)) nm->left = cJSON_IsTrue(l);
        if (cJSON_IsBool(r)) nm->right = cJSON_IsTrue(r);
    } else if (!strcmp(type, "Prepend")) {
        nm->kind = N_PREPEND;
        if (str_field(json, "prepend", where, "normalizer Prepend", &nm->str, &nm->str_n)) goto fail;
    } else if (!strcmp(type, "Replace")) {
        nm->kind = N_REPLACE;
        if (str_field(json, "content", where, "normalizer Replace", &nm->str, &nm->str_n)) goto fail;
        nm->re = tn_calloc(1, sizeof *nm->re, "a pattern");
        if (!nm->re ||
            tk_regex_load(cJSON_GetObjectItemCaseSensitive(json, "pattern"), where, nm->re))
            goto fail;
    } else {
        tn_fail("%s: normalizer type '%s' is not supported (supported: Sequence, NFC, NFD, NFKC, "
                "NFKD, Lowercase, Strip, Replace, Prepend, ByteLevel)",
                where, type);
        goto fail;
    }
    *out = nm;
    return 0;
fail:
    tk_norm_free(nm);
    return -1;
}

static int is_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) return 0;
    return 1;
}

static int unicode_form(int kind, const char *s, size_t n, tk_buf *out) {
    /* ASCII is its own normal form in all four. */
    if (is_ascii(s, n)) return tk_buf_add(out, s, n);
    int opt = UTF8PROC_STABLE;
    if (kind == N_NFC || kind == N_NFKC) opt |= UTF8PROC_COMPOSE;
    else opt |= UTF8PROC_DECOMPOSE;
    if (kind == N_NFKC || kind == N_NFKD) opt |= UTF8PROC_COMPAT;
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t r =
        utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst, (utf8proc_option_t)opt);
    if (r < 0) {
        free(dst);
        return tn_fail("Unicode normalization failed: %s", utf8proc_errmsg(r));
    }
    int rc = tk_buf_add(out, dst, (size_t)r);
    free(dst);
    return rc;
}

static int lowercase(const char *s, size_t n, tk_buf *out) {
    for (size_t i = 0; i < n;) {
        size_t len;
        uint32_t c = tk_utf8_decode(s + i, &len);
        i += len;
        char u[8];
        size_t k;
        if (c == 0x130) { /* the one unconditional multi-character lowercase */
            memcpy(u, "i\xCC\x87", 3);
            k = 3;
        } else {
            k = tk_utf8_encode((uint32_t)utf8proc_tolower((utf8proc_int32_t)c), u);
        }
        if (tk_buf_add(out, u, k)) return -1;
    }
    return 0;
}

static int strip(const tk_norm *nm, const char *s, size_t n, tk_buf *out) {
    size_t a = 0, b = n, len;
    if (nm->left)
        while (a < b && tk_is_whitespace(tk_utf8_decode(s + a, &len))) a += len;
    if (nm->right)
        while (b > a) {
            size_t k = b - 1;
            while (k > a && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
            if (!tk_is_whitespace(tk_utf8_decode(s + k, &len))) break;
            b = k;
        }
    return tk_buf_add(out, s + a, b - a);
}

static int replace(const tk_norm *nm, const char *s, size_t n, tk_buf *out) {
    size_t pos = 0, last = 0, ms, me;
    while (pos <= n) {
        int r = tk_regex_find(nm->re, s, n, pos, &ms, &me);
        if (r < 0) return -1;
        if (r == 0) break;
        if (tk_buf_add(out, s + last, ms - last) || tk_buf_add(out, nm->str, nm->str_n)) return -1;
        last = me;
        if (me > ms) pos = me;
        else if (me < n) pos = me + tk_utf8_len((unsigned char)s[me]);
        else break;
    }
    return tk_buf_add(out, s + last, n - last);
}

int tk_norm_apply(const tk_norm *nm, const char *s, size_t n, tk_buf *out) {
    out->n = 0;
    if (tk_buf_reserve(out, n)) return -1;
    out->p[0] = 0;
    switch (nm->kind) {
    case N_SEQ: {
        /* Ping-pong between out and a temporary. */
        if (tk_buf_add(out, s, n)) return -1;
        tk_buf tmp = {0};
        for (size_t i = 0; i < nm->n_kids; i++) {
            if (tk_norm_apply(nm->kids[i], out->p, out->n, &tmp)) {
                tk_buf_free(&tmp);
                return -1;
            }
            tk_buf sw = *out;
            *out = tmp;
            tmp = sw;
        }
        tk_buf_free(&tmp);
        return 0;
    }
    case N_NFC:
    case N_NFD:
    case N_NFKC:
    case N_NFKD: return unicode_form(nm->kind, s, n, out);
    case N_LOWER: return lowercase(s, n, out);
    case N_STRIP: return strip(nm, s, n, out);
    case N_REPLACE: return replace(nm, s, n, out);
    case N_PREPEND:
        if (n && tk_buf_add(out, nm->str, nm->str_n)) return -1;
        return tk_buf_add(out, s, n);
    case N_BYTELEVEL: return tk_bytelevel_map(s, n, out);
    }
    return tn_fail("normalizer: unknown kind %d", nm->kind);
}
