/* source.h - what a MODEL argument names: a Hugging Face folder, a
 * config.json file, or a built-in preset. */
#ifndef TUNE_SOURCE_H
#define TUNE_SOURCE_H

#include "model/spec.h"

typedef enum { TN_SOURCE_FOLDER, TN_SOURCE_CONFIG, TN_SOURCE_PRESET } tn_source_kind;

typedef struct {
    tn_source_kind kind;
    char path[4096]; /* folder, config file, or preset name */
    tn_spec spec;
} tn_model_source;

/* Resolves `arg` (folder, then file, then preset) and reads its config.
 * Fails naming the argument when it is none of these. */
int tn_model_source_open(const char *arg, tn_model_source *src);

#endif
