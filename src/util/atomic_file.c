#define _POSIX_C_SOURCE 200809L
#include "util/atomic_file.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"

int tn_atomic_open(tn_atomic_file *af, const char *path) {
    memset(af, 0, sizeof *af);
    if (strlen(path) >= sizeof af->path) return tn_fail("%s: path too long", path);
    snprintf(af->path, sizeof af->path, "%s", path);
    snprintf(af->tmp_path, sizeof af->tmp_path, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp_path, "wb");
    if (!af->f) return tn_fail("%s: cannot create (%s)", af->tmp_path, strerror(errno));
    return 0;
}

int tn_atomic_write(tn_atomic_file *af, const void *data, size_t n) {
    if (af->failed) return -1;
    if (n && fwrite(data, 1, n, af->f) != n) {
        af->failed = errno ? errno : EIO;
        return tn_fail("%s: write failed (%s)", af->path, strerror(af->failed));
    }
    return 0;
}

int tn_atomic_commit(tn_atomic_file *af) {
    int err = af->failed;
    if (!err && fflush(af->f) != 0) err = errno;
    if (!err && fsync(fileno(af->f)) != 0 && errno != EINVAL) err = errno;
    if (fclose(af->f) != 0 && !err) err = errno;
    af->f = NULL;
    if (err) {
        remove(af->tmp_path);
        return tn_fail("%s: write failed (%s); nothing was written", af->path, strerror(err));
    }
    if (rename(af->tmp_path, af->path) != 0) {
        err = errno;
        remove(af->tmp_path);
        return tn_fail("%s: cannot rename into place (%s)", af->path, strerror(err));
    }
    return 0;
}

void tn_atomic_abort(tn_atomic_file *af) {
    if (af->f) fclose(af->f);
    af->f = NULL;
    remove(af->tmp_path);
}

int tn_write_file_atomic(const char *path, const void *data, size_t n) {
    tn_atomic_file af;
    if (tn_atomic_open(&af, path) != 0) return -1;
    tn_atomic_write(&af, data, n);
    return tn_atomic_commit(&af);
}
