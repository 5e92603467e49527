/* safetensors_write.h - write a safetensors checkpoint one tensor at a time
 * (peak memory: one tensor), sharded with an index past a size limit, every
 * file atomically (temporary name, then rename). */
#ifndef TUNE_SAFETENSORS_WRITE_H
#define TUNE_SAFETENSORS_WRITE_H

#include <stdint.h>

#include "io/dtype.h"
#include "io/safetensors.h"

typedef struct {
    const char *name;
    tn_dtype dtype;
    int n_dims;
    int64_t shape[TN_MAX_DIMS];
} tn_tensor_desc;

/* Produces the bytes of tensor i into buf (n_bytes long); returns 0 or -1. */
typedef int (*tn_tensor_fill)(void *ctx, int i, void *buf, uint64_t n_bytes);

/* Writes tensors [0, n) into `dir`: model.safetensors, or when the total
 * exceeds shard_bytes, model-0000k-of-0000n.safetensors and
 * model.safetensors.index.json. `metadata` (may be NULL) is a JSON object of
 * strings for __metadata__. Pass base_name "adapter_model" etc. to name the
 * file(s) differently. */
int tn_safetensors_write(const char *dir, const char *base_name, const tn_tensor_desc *tensors, int n, uint64_t shard_bytes,
                         const char *metadata_json, tn_tensor_fill fill, void *ctx);

#endif
