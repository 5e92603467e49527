/* tokenizer_utf8.c - UTF-8 for the tokenizer: repair of invalid input,
 * decoding, the character classes Rust's tokenizers uses, and GPT-2's
 * ByteLevel table (every byte as a printable character). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text/tokenizer_internal.h"
#include "util/error.h"

/* ---- buffers ---- */

int tk_buf_reserve(tk_buf *b, size_t extra) {
    if (b->n + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return tn_fail("out of memory growing a text buffer to %zu bytes", cap);
    b->p = p;
    b->cap = cap;
    return 0;
}

int tk_buf_add(tk_buf *b, const void *s, size_t n) {
    if (tk_buf_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

int tk_buf_addc(tk_buf *b, char c) { return tk_buf_add(b, &c, 1); }

void tk_buf_free(tk_buf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* ---- decoding ---- */

uint32_t tk_utf8_decode(const char *str, size_t *len) {
    const unsigned char *s = (const unsigned char *)str;
    if (s[0] < 0x80) {
        *len = 1;
        return s[0];
    }
    if (s[0] < 0xE0) {
        *len = 2;
        return ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    }
    if (s[0] < 0xF0) {
        *len = 3;
        return ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    }
    *len = 4;
    return ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
           ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

size_t tk_utf8_encode(uint32_t cp, char *o) {
    unsigned char *out = (unsigned char *)o;
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid sequence at s[i] (1..4), or 0 with *bad set to the
 * number of bytes of its maximal invalid subpart (at least 1). The bounds of
 * the second byte follow the Unicode table of well-formed sequences. */
static size_t valid_at(const unsigned char *s, size_t n, size_t i, size_t *bad) {
    unsigned char b = s[i];
    if (b < 0x80) return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) need = 1;
    else if (b == 0xE0) need = 2, lo = 0xA0;
    else if (b == 0xED) need = 2, hi = 0x9F;
    else if (b >= 0xE1 && b <= 0xEF) need = 2;
    else if (b == 0xF0) need = 3, lo = 0x90;
    else if (b == 0xF4) need = 3, hi = 0x8F;
    else if (b >= 0xF1 && b <= 0xF3) need = 3;
    else {
        *bad = 1;
        return 0;
    }
    size_t j = i + 1;
    for (size_t k = 0; k < need; k++, j++) {
        if (j >= n || s[j] < lo || s[j] > hi) {
            *bad = j - i;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

int tk_utf8_valid(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        /* Eight ASCII bytes at a time. */
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        size_t bad, k = valid_at(s, n, i, &bad);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

char *tn_utf8_sanitize(const char *str, size_t n, size_t *len_out, size_t *replaced) {
    const unsigned char *s = (const unsigned char *)str;
    tk_buf b = {0};
    size_t count = 0;
    if (tk_buf_reserve(&b, n)) return NULL;
    size_t i = 0, run = 0; /* run: start of the pending valid bytes */
    while (i < n) {
        size_t bad, k = valid_at(s, n, i, &bad);
        if (k) {
            i += k;
            continue;
        }
        if (tk_buf_add(&b, s + run, i - run) || tk_buf_add(&b, "\xEF\xBF\xBD", 3)) {
            tk_buf_free(&b);
            return NULL;
        }
        count++;
        i += bad;
        run = i;
    }
    if (tk_buf_add(&b, s + run, n - run)) {
        tk_buf_free(&b);
        return NULL;
    }
    *len_out = b.n;
    if (replaced) *replaced = count;
    return b.p;
}

/* ---- classes ---- */

int tk_is_whitespace(uint32_t c) {
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

int tk_is_numeric(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

int tk_is_word_char(uint32_t c) {
    if (c < 0x80)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               c == '_';
    if (c == 0x200C || c == 0x200D) return 1;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC:
        return 1;
    default:
        return 0;
    }
}

/* ---- ByteLevel ---- */

static tk_byte_char byte_chars[256];
static int16_t char_bytes[324]; /* code points 0..323 -> byte, -1 */
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
 * the other 68 bytes take 256, 257, ... in byte order. */
static void build_table(void) {
    int next = 256;
    for (int i = 0; i < 324; i++) char_bytes[i] = -1;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        int cp = keep ? b : next++;
        byte_chars[b].n = (unsigned char)tk_utf8_encode((uint32_t)cp, byte_chars[b].s);
        char_bytes[cp] = (int16_t)b;
    }
}

const tk_byte_char *tk_byte_to_char(void) {
    pthread_once(&table_once, build_table);
    return byte_chars;
}

int tk_char_to_byte(uint32_t cp) {
    pthread_once(&table_once, build_table);
    return cp < 324 ? char_bytes[cp] : -1;
}

int tk_bytelevel_map(const char *s, size_t n, tk_buf *out) {
    const tk_byte_char *t = tk_byte_to_char();
    if (tk_buf_reserve(out, 2 * n)) return -1;
    char *o = out->p + out->n;
    for (size_t i = 0; i < n; i++) {
        const tk_byte_char *c = &t[(unsigned char)s[i]];
        o[0] = c->s[0];
        if (c->n == 2) {
            o[1] = c->s[1];
            o += 2;
        } else {
            o += 1;
        }
    }
    out->n = (size_t)(o - out->p);
    out->p[out->n] = 0;
    return 0;
}
