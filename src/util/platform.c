#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700
#define _DARWIN_C_SOURCE
#include "util/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if defined(__APPLE__)
#include <sys/sysctl.h>
#endif

#include "util/error.h"

int tn_map_file(const char *path, tn_mapped_file *out) {
    out->data = NULL;
    out->size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return tn_fail("%s: cannot open (%s)", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return tn_fail("%s: cannot stat (%s)", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return tn_fail("%s: not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return tn_fail("%s: cannot map (%s)", path, strerror(errno));
        }
        out->data = p;
        out->size = (size_t)st.st_size;
    }
    close(fd);
    return 0;
}

void tn_unmap_file(tn_mapped_file *m) {
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

char *tn_read_file(const char *path, size_t max_bytes, size_t *size_out) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        tn_fail("%s: cannot open (%s)", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        tn_fail("%s: not a regular file", path);
        return NULL;
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        tn_fail("%s: file is %lld bytes, more than the %zu this reader accepts", path,
                (long long)st.st_size, max_bytes);
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    char *buf = tn_malloc(n + 1, path);
    if (!buf) {
        fclose(f);
        return NULL;
    }
    if (n && fread(buf, 1, n, f) != n) {
        free(buf);
        fclose(f);
        tn_fail("%s: read error", path);
        return NULL;
    }
    fclose(f);
    buf[n] = 0;
    if (size_out) *size_out = n;
    return buf;
}

uint64_t tn_physical_memory(void) {
#if defined(__APPLE__)
    uint64_t mem = 0;
    size_t len = sizeof mem;
    if (sysctlbyname("hw.memsize", &mem, &len, NULL, 0) == 0) return mem;
    return 0;
#else
    long pages = sysconf(_SC_PHYS_PAGES);
    long page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return 0;
    return (uint64_t)pages * (uint64_t)page;
#endif
}

int tn_runnable_threads(void) {
#if defined(__linux__)
    char buf[128];
    int fd = open("/proc/loadavg", O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    int spaces = 0;
    for (char *p = buf; *p; p++)
        if (*p == ' ' && ++spaces == 3) return atoi(p + 1); /* "0.52 0.58 0.59 2/512 ...": running/total */
    return -1;
#else
    return -1;
#endif
}

uint64_t tn_peak_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
#if defined(__APPLE__)
    return (uint64_t)ru.ru_maxrss; /* bytes on macOS */
#else
    return (uint64_t)ru.ru_maxrss * 1024u; /* KiB on Linux */
#endif
}

double tn_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void tn_platform_start(int argc, char **argv) {
    (void)argc;
    if (getenv("OMP_WAIT_POLICY") || getenv("TUNE_NO_REEXEC")) return;
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    setenv("TUNE_NO_REEXEC", "1", 1);
#if defined(__linux__)
    execv("/proc/self/exe", argv);
#endif
    execvp(argv[0], argv);
    /* If the program cannot be run again, go on with the default policy. */
}

void tn_release_pages(const void *addr, size_t len) {
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || !addr || !len) return;
    uintptr_t start = ((uintptr_t)addr + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t end = ((uintptr_t)addr + len) & ~((uintptr_t)page - 1);
    if (end > start) madvise((void *)start, end - start, MADV_DONTNEED);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

int tn_remove_tree(const char *dir) {
    struct stat st;
    if (lstat(dir, &st) != 0) return errno == ENOENT ? 0 : tn_fail("%s: cannot remove (%s)", dir, strerror(errno));
    if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) return tn_fail("%s: cannot remove (%s)", dir, strerror(errno));
    return 0;
}

int tn_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int tn_is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int tn_make_dirs(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof buf) return tn_fail("%s: path too long", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return tn_fail("%s: cannot create directory (%s)", buf, strerror(errno));
            buf[i] = c;
        }
    }
    if (!tn_is_directory(path)) return tn_fail("%s: exists and is not a directory", path);
    return 0;
}
