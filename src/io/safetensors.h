/* safetensors.h - read safetensors checkpoints: one file, or shards listed by
 * model.safetensors.index.json. Files are mmap'd; opening reads only the
 * headers (the pages of weight data are touched only when a tensor's bytes
 * are used).
 *
 * File layout: u64 little-endian N, N bytes of JSON header, data. The header
 * maps tensor name -> {"dtype", "shape", "data_offsets": [begin, end]} (offsets
 * relative to the data section), plus an optional "__metadata__" object of
 * strings. Every rule is checked: N sane and inside the file, valid JSON,
 * known dtypes, end - begin == product(shape) * size(dtype), offsets inside the
 * data, no two tensors overlapping, no duplicate names. */
#ifndef TUNE_SAFETENSORS_H
#define TUNE_SAFETENSORS_H

#include <stdint.h>

#include "io/dtype.h"
#include "util/platform.h"

#define TN_MAX_DIMS 8
/* A header larger than this is refused before it is read (the largest real
 * headers are a few MB). */
#define TN_SAFETENSORS_MAX_HEADER (100u * 1024 * 1024)

typedef struct {
    char *name;
    tn_dtype dtype;
    int n_dims;
    int64_t shape[TN_MAX_DIMS];
    uint64_t n_elements;
    uint64_t n_bytes;
    uint64_t data_offset; /* from the start of the file */
    int file;             /* index into tn_safetensors.files */
} tn_tensor_info;

typedef struct {
    int n_files;
    char **paths;           /* [n_files] */
    tn_mapped_file *files;  /* [n_files] */
    int n_tensors;
    tn_tensor_info *tensors; /* sorted by name */
    uint64_t total_bytes;   /* sum of tensor data sizes */
} tn_safetensors;

/* Opens `path`: a .safetensors file, an index .json, or a folder holding
 * model.safetensors.index.json or model.safetensors (or exactly one
 * *.safetensors file). Returns 0, or -1 with a message naming file and tensor. */
int tn_safetensors_open(const char *path, tn_safetensors *st);
void tn_safetensors_close(tn_safetensors *st);

/* Looks a tensor up by name; NULL when absent. */
const tn_tensor_info *tn_safetensors_find(const tn_safetensors *st, const char *name);
/* The tensor's bytes in the mapping. */
const void *tn_safetensors_data(const tn_safetensors *st, const tn_tensor_info *t);
/* "[2048, 64]" */
const char *tn_shape_string(const int64_t *shape, int n_dims, char *buf, int cap);

#endif
