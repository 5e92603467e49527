/* gguf_read.h - read a GGUF file (versions 2 and 3, little-endian; the layout
 * is in gguf_write.h). The file is mmap'd and checked whole when it is
 * opened, so that every accessor afterwards is a plain lookup:
 *
 *   - magic "GGUF", version 2 or 3, tensor and key-value counts that the
 *     file's size can hold (checked before anything is allocated);
 *   - each key: non-empty, no NUL byte, inside the file, not seen before;
 *     each value: a known type (arrays of scalars or strings, not of
 *     arrays), every string length and array size inside the file, bools
 *     0 or 1;
 *   - general.alignment, when present, a u32 power of two (default 32);
 *   - each tensor info: a name under 64 bytes without NUL, not seen before;
 *     n_dims <= 4; every ne >= 0 and their product representable; a ggml
 *     type that ggml knows; ne[0] a multiple of the type's block size;
 *     the offset a multiple of the alignment, equal to the sum of the
 *     previous tensors' padded sizes (llama.cpp's rule), and its data
 *     inside the file.
 *
 * Every error names the file and says what was expected and what was found
 * ("FILE: tensor 'blk.0.attn_q.weight': offset 40 is not a multiple of the
 * alignment 32"). Values stay in the mapping: strings are not
 * NUL-terminated (pointer and length), numbers are decoded on access. */
#ifndef TUNE_GGUF_READ_H
#define TUNE_GGUF_READ_H

#include <stddef.h>
#include <stdint.h>

#include "io/gguf_write.h" /* TN_GGUF_U8 ... TN_GGUF_F64 value types */
#include "util/platform.h"

#define TN_GGUF_MAX_DIMS 4

/* One key-value. For a scalar, data points at the value; for a string, at
 * its bytes (n = length); for an array, at its first element (n = count,
 * elem_type = the elements' type; a string array keeps each element's
 * offset from data in str_off). */
typedef struct {
    char *key;
    uint32_t type;
    uint32_t elem_type;
    uint64_t n;
    const unsigned char *data;
    uint64_t *str_off;
} tn_gguf_kv;

typedef struct {
    char name[64];
    int type;                     /* ggml type id */
    int n_dims;                   /* 0..4 */
    int64_t ne[TN_GGUF_MAX_DIMS]; /* innermost first (PyTorch's shape reversed); 1 past n_dims */
    uint64_t n_elements, n_bytes;
    uint64_t offset;              /* in the data section */
    const void *data;             /* in the mapping */
} tn_gguf_tensor;

typedef struct {
    char *path;
    tn_mapped_file file;
    uint32_t version;
    uint64_t alignment;
    int64_t n_kv, n_tensors;
    tn_gguf_kv *kv;          /* [n_kv] in file order */
    tn_gguf_tensor *tensors; /* [n_tensors] in file order */
    int64_t *kv_sorted, *tensor_sorted; /* indices sorted by key / name, for lookups */
    uint64_t data_offset;    /* start of the data section in the file */
} tn_gguf;

/* Maps and checks path. Returns 0, or -1 with a message naming the file. */
int tn_gguf_open(const char *path, tn_gguf *g);
void tn_gguf_close(tn_gguf *g);

/* ggml types: name ("Q4_K"; NULL for an id ggml does not define), values
 * per block and bytes per block. */
const char *tn_gguf_type_name(int type);
int tn_gguf_type_block(int type);
int tn_gguf_type_bytes(int type);
/* "u32", "string", "array" ... of a value type. */
const char *tn_gguf_value_type_name(uint32_t type);

/* Lookups; NULL when absent. */
const tn_gguf_kv *tn_gguf_find(const tn_gguf *g, const char *key);
const tn_gguf_tensor *tn_gguf_find_tensor(const tn_gguf *g, const char *name);

/* Typed getters: 1 when found (value in *out), 0 when absent (*out kept),
 * -1 with a message when the key holds another type. Integers accept every
 * integer type (and reject a u64 above INT64_MAX); floats accept f32, f64
 * and integers; bools accept bool only. A string is returned as a pointer
 * into the mapping and a length. */
int tn_gguf_get_int(const tn_gguf *g, const char *key, int64_t *out);
int tn_gguf_get_float(const tn_gguf *g, const char *key, double *out);
int tn_gguf_get_bool(const tn_gguf *g, const char *key, int *out);
int tn_gguf_get_str(const tn_gguf *g, const char *key, const char **s, size_t *len);
/* The same as a malloc'd NUL-terminated copy (NULL when absent or on error:
 * tn_error() is set only on error). A string holding a NUL byte is an error. */
char *tn_gguf_get_strdup(const tn_gguf *g, const char *key, int *failed);
/* An array whose elements have type elem_type (TN_GGUF_STRING, or an
 * integer / float type; pass -1 for any): 1 found, 0 absent, -1 wrong type. */
int tn_gguf_get_arr(const tn_gguf *g, const char *key, int elem_type, const tn_gguf_kv **out);

/* Element i of an array (i < kv->n, not checked again): a string (pointer
 * and length), an integer (any integer or bool type), a float (f32, f64 or
 * integer). */
const char *tn_gguf_arr_str(const tn_gguf_kv *kv, uint64_t i, size_t *len);
int64_t tn_gguf_arr_int(const tn_gguf_kv *kv, uint64_t i);
double tn_gguf_arr_float(const tn_gguf_kv *kv, uint64_t i);

/* "[2048, 64]": the tensor's shape in PyTorch order (outermost first). */
const char *tn_gguf_shape_string(const tn_gguf_tensor *t, char *buf, int cap);

#endif
