/* train_config.h - mlx-lm's LoRA config file (-c config.yaml) mapped onto
 * tune train's options, so an mlx-lm user's file works as it is. Keys with
 * no meaning here are named in an error, never silently ignored. */
#ifndef TUNE_TRAIN_CONFIG_H
#define TUNE_TRAIN_CONFIG_H

#include "train/trainer.h"

typedef struct {
    const char *data;          /* data: folder */
    int mask_prompt;           /* mask_prompt */
    char *owned[32];           /* strings kept alive for the options */
    int n_owned;
} tn_train_config_extra;

/* Reads path into o (options given on the command line afterwards override
 * it). */
int tn_train_config_load(const char *path, tn_train_options *o, tn_train_config_extra *x);
void tn_train_config_free(tn_train_config_extra *x);

#endif
