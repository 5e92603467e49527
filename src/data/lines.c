#include "data/lines.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

enum { CHUNK = 1 << 16 };

int tn_lines_open(tn_lines *r, const char *path, size_t max_line) {
    memset(r, 0, sizeof *r);
    r->path = path;
    r->max_line = max_line ? max_line : (size_t)16 << 20;
    r->f = fopen(path, "rb");
    if (!r->f) return tn_fail("%s: cannot open (%s)", path, strerror(errno));
    r->chunk = tn_malloc(CHUNK, "a line reader");
    if (!r->chunk) {
        fclose(r->f);
        r->f = NULL;
        return -1;
    }
    return 0;
}

void tn_lines_close(tn_lines *r) {
    if (r->f) fclose(r->f);
    free(r->buf);
    free(r->chunk);
    r->f = NULL;
    r->buf = r->chunk = NULL;
}

/* Refills the read buffer; 0 at end of file, -1 on a read error. */
static int refill(tn_lines *r) {
    if (r->eof) return 0;
    r->chunk_len = fread(r->chunk, 1, CHUNK, r->f);
    r->chunk_pos = 0;
    r->bytes += r->chunk_len;
    if (r->chunk_len < CHUNK) {
        if (ferror(r->f)) return tn_fail("%s:%ld: read error", r->path, r->lineno + 1);
        r->eof = 1;
    }
    return r->chunk_len > 0;
}

static int append(tn_lines *r, size_t *len, const char *p, size_t k) {
    if (*len + k + 1 > r->cap) {
        size_t nc = r->cap ? r->cap : 4096;
        while (nc < *len + k + 1) nc *= 2;
        char *b = realloc(r->buf, nc);
        if (!b) return tn_fail("%s:%ld: out of memory reading a line of %zu bytes", r->path, r->lineno, *len + k);
        r->buf = b;
        r->cap = nc;
    }
    memcpy(r->buf + *len, p, k);
    *len += k;
    return 0;
}

static const char *human(size_t bytes, char *out, size_t n) {
    if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) snprintf(out, n, "%zu MiB", bytes >> 20);
    else if (bytes >= 1024 && bytes % 1024 == 0) snprintf(out, n, "%zu KiB", bytes >> 10);
    else snprintf(out, n, "%zu bytes", bytes);
    return out;
}

int tn_lines_next(tn_lines *r, const char **line, size_t *n) {
    size_t len = 0, total = 0;
    int seen = 0, rc;
    for (;;) {
        if (r->chunk_pos == r->chunk_len) {
            if ((rc = refill(r)) < 0) return -1;
            if (rc == 0) break;
        }
        seen = 1;
        const char *p = r->chunk + r->chunk_pos;
        size_t avail = r->chunk_len - r->chunk_pos;
        const char *nl = memchr(p, '\n', avail);
        size_t k = nl ? (size_t)(nl - p) : avail;
        r->chunk_pos += k + (nl != NULL);
        total += k;
        /* Keep what fits; past the limit only count (the line is an error). */
        if (total <= r->max_line) {
            if (append(r, &len, p, k)) return -1;
        }
        if (nl) break;
    }
    if (!seen) return 0;
    r->lineno++;
    if (total > r->max_line) {
        char lim[64];
        return tn_fail("%s:%ld: line too long (expected a JSON record of at most %s, got %zu bytes; "
                       "--max-line-bytes raises the limit)",
                       r->path, r->lineno, human(r->max_line, lim, sizeof lim), total);
    }
    if (append(r, &len, "", 0)) return -1;
    char *s = r->buf;
    if (len && s[len - 1] == '\r') len--;
    if (r->lineno == 1 && len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) {
        memmove(s, s + 3, len - 3);
        len -= 3;
    }
    s[len] = 0;
    size_t bad = tn_utf8_invalid_at(s, len);
    if (bad < len) {
        return tn_fail("%s:%ld: invalid UTF-8 at byte %zu of the line (expected UTF-8 text, got byte 0x%02X)",
                       r->path, r->lineno, bad + 1, (unsigned char)s[bad]);
    }
    *line = s;
    *n = len;
    return 1;
}

size_t tn_utf8_invalid_at(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) k = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            if (c == 0xE0) lo = 0xA0;      /* no overlong */
            else if (c == 0xED) hi = 0x9F; /* no surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            if (c == 0xF0) lo = 0x90;
            else if (c == 0xF4) hi = 0x8F; /* at most U+10FFFF */
        } else {
            return i;
        }
        if (i + k >= n) return i; /* truncated at the end */
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t j = 2; j <= k; j++)
            if (s[i + j] < 0x80 || s[i + j] > 0xBF) return i;
        i += k + 1;
    }
    return n;
}
