/* data_source.h - a dataset folder (src/data/) as the trainer's batch source. */
#ifndef TUNE_DATA_SOURCE_H
#define TUNE_DATA_SOURCE_H

#include <stdint.h>
#include <time.h>

#include "train/trainer.h"

/* date: pins the clock the chat template reads (strftime_now), as a resumed
 * run must see the same rendering; NULL = now. Samples left out (template
 * errors, masks that cannot hold) are counted on stderr. */
int tn_data_source_open(tn_batch_source *src, const char *model, const char *data_dir, int max_seq, int batch, int mask_prompt,
                        uint64_t seed, const struct tm *date);
/* The clock the templates were rendered with ("YYYY-MM-DD HH:MM:SS"). */
const char *tn_data_source_time(const tn_batch_source *src, char *buf, int cap);
void tn_data_source_close(tn_batch_source *src);

#endif
