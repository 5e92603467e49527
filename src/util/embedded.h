/* embedded.h - files compiled into the binary (see tools/embed.c). */
#ifndef TUNE_EMBEDDED_H
#define TUNE_EMBEDDED_H

#include <stddef.h>

typedef struct {
    const char *name; /* file name without folder, e.g. "gemma-2-9b-it.json" */
    const char *data; /* NUL-terminated */
    size_t size;
} tn_embedded_file;

/* The presets: the published config.json of each supported model. */
extern const tn_embedded_file tn_preset_files[];
extern const int tn_preset_files_count;

/* The demo's own files (src/demo/): the tiny model's config. */
extern const tn_embedded_file tn_demo_files[];
extern const int tn_demo_files_count;

#endif
