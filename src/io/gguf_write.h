/* gguf_write.h - write a GGUF file (version 3, little-endian), one tensor in
 * memory at a time, atomically (a temporary name renamed when complete).
 *
 * File layout (ggml's gguf.h):
 *   "GGUF"  u32 version (3)  u64 tensor count  u64 key-value count
 *   key-values: u64 key length, key bytes, u32 value type, value
 *               (strings: u64 length + bytes; arrays: u32 element type,
 *                u64 count, elements; bool: 1 byte)
 *   tensor infos: name (as a string, < 64 bytes), u32 n_dims (<= 4),
 *               u64 ne[n_dims] innermost first (PyTorch's shape reversed),
 *               u32 ggml type, u64 offset into the data section
 *   zero padding to the alignment (32, general.alignment is not written)
 *   data: each tensor at its offset, each padded to the alignment
 *
 * Keys and tensors are collected first (values are serialised as they are
 * set), then tn_gguf_write streams the data: fill() produces tensor i's
 * bytes into a buffer the size of the largest tensor. A duplicate key or
 * tensor name, a name too long, or a row length the type does not allow is
 * refused when it is added. */
#ifndef TUNE_GGUF_WRITE_H
#define TUNE_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "quant/quant.h"

#define TN_GGUF_ALIGNMENT 32
#define TN_GGUF_MAX_NAME 63

/* GGUF value types. */
enum {
    TN_GGUF_U8 = 0, TN_GGUF_I8 = 1, TN_GGUF_U16 = 2, TN_GGUF_I16 = 3, TN_GGUF_U32 = 4, TN_GGUF_I32 = 5,
    TN_GGUF_F32 = 6, TN_GGUF_BOOL = 7, TN_GGUF_STRING = 8, TN_GGUF_ARRAY = 9, TN_GGUF_U64 = 10,
    TN_GGUF_I64 = 11, TN_GGUF_F64 = 12,
};

typedef struct tn_gguf_writer tn_gguf_writer;

tn_gguf_writer *tn_gguf_writer_new(void);
void tn_gguf_writer_free(tn_gguf_writer *w);

/* Key-values, in the order they are set. Each returns 0 or -1 (duplicate
 * key, out of memory). */
int tn_gguf_set_u32(tn_gguf_writer *w, const char *key, uint32_t v);
int tn_gguf_set_i32(tn_gguf_writer *w, const char *key, int32_t v);
int tn_gguf_set_f32(tn_gguf_writer *w, const char *key, float v);
int tn_gguf_set_bool(tn_gguf_writer *w, const char *key, int v);
int tn_gguf_set_str(tn_gguf_writer *w, const char *key, const char *v);
/* An array of n strings; lens may be NULL (NUL-terminated strings). */
int tn_gguf_set_arr_str(tn_gguf_writer *w, const char *key, const char *const *v, const size_t *lens, uint64_t n);
int tn_gguf_set_arr_i32(tn_gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
int tn_gguf_set_arr_f32(tn_gguf_writer *w, const char *key, const float *v, uint64_t n);
/* Whether a key was set. */
int tn_gguf_has_key(const tn_gguf_writer *w, const char *key);

/* Declares a tensor: ne innermost first (ne[0] = row length). Returns its
 * index (tensors are written in this order) or -1. */
int tn_gguf_add_tensor(tn_gguf_writer *w, const char *name, tn_ggml_type type, int n_dims, const int64_t *ne);
int tn_gguf_n_tensors(const tn_gguf_writer *w);
uint64_t tn_gguf_tensor_bytes(const tn_gguf_writer *w, int i);

/* Produces tensor i's bytes (n_bytes) into buf; 0 or -1 with a message. */
typedef int (*tn_gguf_fill)(void *ctx, int i, void *buf, uint64_t n_bytes);

/* Writes the file at path: under "<path>.tmp.<pid>", renamed when complete;
 * on any failure (a fill error, a full disk) nothing is left behind. */
int tn_gguf_write(tn_gguf_writer *w, const char *path, tn_gguf_fill fill, void *ctx);

#endif
