/* platform.h - the few operating-system facts tune needs, kept in one file
 * so that the rest of the code is plain C11 + POSIX (Linux and macOS). */
#ifndef TUNE_PLATFORM_H
#define TUNE_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

/* A read-only mapping of a whole file. */
typedef struct {
    const unsigned char *data; /* NULL for an empty file */
    size_t size;
} tn_mapped_file;

int tn_map_file(const char *path, tn_mapped_file *out);
void tn_unmap_file(tn_mapped_file *m);

/* Reads a whole file into a NUL-terminated buffer (caller frees). Refuses
 * files over max_bytes with a message naming the file. */
char *tn_read_file(const char *path, size_t max_bytes, size_t *size_out);

/* Physical memory of this machine, in bytes (0 if unknown). */
uint64_t tn_physical_memory(void);
/* Peak resident set size of this process, in bytes. */
uint64_t tn_peak_rss(void);
/* Threads of the whole system running or waiting for a CPU now (Linux: the
 * run queue count of /proc/loadavg); -1 where the system does not say. */
int tn_runnable_threads(void);
/* Monotonic seconds. */
double tn_seconds(void);

/* OpenMP's worker threads spin between parallel regions by default; on a
 * two-core machine shared with other work (or with OpenBLAS's own threads)
 * that spinning costs up to 10x. Unless the user chose a policy, tune runs
 * with OMP_WAIT_POLICY=PASSIVE: libgomp reads it when it is loaded, so this
 * sets it and executes the program again (once). Call first in main. */
void tn_platform_start(int argc, char **argv);

/* Tells the kernel that the pages of a read-only file mapping are not needed
 * now (they are read again from the file if touched), so they leave the
 * resident set. */
void tn_release_pages(const void *addr, size_t len);

/* Removes a folder and everything under it (no shell involved); 0 when it
 * is gone or was never there. */
int tn_remove_tree(const char *dir);

int tn_file_exists(const char *path);
int tn_is_directory(const char *path);
/* mkdir -p */
int tn_make_dirs(const char *path);

#endif
