/* atomic_file.h - outputs that are complete or absent.
 *
 * An output is written to "<path>.tmp.<pid>", flushed and fsync'd, then
 * renamed over <path>. On any failure the temporary file is removed, so a
 * crash or a full disk never leaves a file that looks complete. */
#ifndef TUNE_ATOMIC_FILE_H
#define TUNE_ATOMIC_FILE_H

#include <stdio.h>

typedef struct {
    FILE *f;
    char path[4096];
    char tmp_path[4200];
    int failed;
} tn_atomic_file;

int tn_atomic_open(tn_atomic_file *af, const char *path);
/* Writes n bytes; remembers failure (checked at commit). */
int tn_atomic_write(tn_atomic_file *af, const void *data, size_t n);
/* Flush, fsync, close, rename. On failure removes the temporary file. */
int tn_atomic_commit(tn_atomic_file *af);
/* Abandons the output, removing the temporary file. */
void tn_atomic_abort(tn_atomic_file *af);

/* Writes a whole buffer to path atomically. */
int tn_write_file_atomic(const char *path, const void *data, size_t n);

#endif
