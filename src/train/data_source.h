/* data_source.h - a dataset folder (src/data/) as the trainer's batch source. */
#ifndef TUNE_DATA_SOURCE_H
#define TUNE_DATA_SOURCE_H

#include <stdint.h>

#include "train/trainer.h"

int tn_data_source_open(tn_batch_source *src, const char *model, const char *data_dir, int max_seq, int batch, int mask_prompt,
                        uint64_t seed);
void tn_data_source_close(tn_batch_source *src);

#endif
