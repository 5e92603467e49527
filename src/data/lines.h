/* lines.h - a JSONL file, one line at a time, never the whole file at once.
 *
 *   tn_lines r;
 *   if (tn_lines_open(&r, "train.jsonl", 16 << 20)) return -1;
 *   const char *line; size_t n; int rc;
 *   while ((rc = tn_lines_next(&r, &line, &n)) > 0) ... r.lineno ...
 *   tn_lines_close(&r);
 *   if (rc < 0) return -1;
 *
 * A line is the bytes up to '\n' (a trailing '\r' and, on line 1, a UTF-8
 * byte-order mark are dropped). Each line is checked to be valid UTF-8
 * (the strict definition: no overlong forms, no surrogates, nothing above
 * U+10FFFF). A line longer than max_line bytes is an error; the reader
 * streams over it to measure it, so a 1 GB line costs no memory. */
#ifndef TUNE_DATA_LINES_H
#define TUNE_DATA_LINES_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    FILE *f;
    const char *path;
    long lineno;       /* of the line last returned (1-based) */
    size_t max_line;   /* bytes */
    char *buf;         /* the current line, NUL-terminated */
    size_t cap;
    char *chunk;       /* read buffer */
    size_t chunk_len, chunk_pos;
    int eof;
    unsigned long long bytes; /* bytes read so far */
} tn_lines;

int tn_lines_open(tn_lines *r, const char *path, size_t max_line);
/* 1 with the next line in *line, *n (valid until the next call), 0 at the
 * end of the file, -1 on error (read error, invalid UTF-8, a line too long):
 * the message names "PATH:LINE". */
int tn_lines_next(tn_lines *r, const char **line, size_t *n);
void tn_lines_close(tn_lines *r);

/* The byte offset of the first invalid UTF-8 sequence in s[0..n), or n when
 * all of it is valid. */
size_t tn_utf8_invalid_at(const char *s, size_t n);

#endif
